/* fuzz_json.c: libFuzzer target for the strict JSON reader (tools/json.c).
 * Any bytes go to rtr_json_parse. A small independent validator written here from RFC 8259
 * (plus json.h's extra rules: no lone surrogates, nesting at most 512; a leading byte order mark
 * is ignored, as 8.1 allows) must agree on whether
 * the text is accepted; every decoded string must be valid UTF-8 and NUL-terminated, and the
 * lookups must work on whatever tree comes out. */
#include "fuzz_common.h"
#include "../../tools/json.h"

/* ---- reference validator ---- */
typedef struct { const uint8_t *p, *e; } rv;

static void rv_ws(rv *v) {
    while (v->p < v->e && (*v->p == ' ' || *v->p == '\t' || *v->p == '\n' || *v->p == '\r')) v->p++;
}
static int rv_hex4(rv *v, unsigned *out) {
    if (v->e - v->p < 4) return 0;
    unsigned x = 0;
    for (int i = 0; i < 4; i++) {
        uint8_t c = v->p[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return 0;
        x = x << 4 | (unsigned)d;
    }
    v->p += 4;
    *out = x;
    return 1;
}
static int rv_string(rv *v) {
    v->p++; /* opening quote */
    while (v->p < v->e) {
        uint8_t c = *v->p;
        if (c == '"') { v->p++; return 1; }
        if (c < 0x20) return 0;
        if (c == '\\') {
            if (++v->p >= v->e) return 0;
            c = *v->p++;
            if (c == 'u') {
                unsigned u;
                if (!rv_hex4(v, &u)) return 0;
                if (u >= 0xDC00 && u <= 0xDFFF) return 0;
                if (u >= 0xD800 && u <= 0xDBFF) {
                    unsigned lo;
                    if (v->e - v->p < 2 || v->p[0] != '\\' || v->p[1] != 'u') return 0;
                    v->p += 2;
                    if (!rv_hex4(v, &lo) || lo < 0xDC00 || lo > 0xDFFF) return 0;
                }
            } else if (!strchr("\"\\/bfnrt", c) || !c) {
                return 0;
            }
            continue;
        }
        if (c < 0x80) { v->p++; continue; }
        /* one UTF-8 sequence */
        size_t k = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
        if ((size_t)(v->e - v->p) < k || !fz_utf8_valid(v->p, k)) return 0;
        v->p += k;
    }
    return 0;
}
static int rv_digits(rv *v) {
    const uint8_t *s = v->p;
    while (v->p < v->e && *v->p >= '0' && *v->p <= '9') v->p++;
    return v->p > s;
}
static int rv_number(rv *v) {
    if (*v->p == '-') v->p++;
    if (v->p >= v->e) return 0;
    if (*v->p == '0') v->p++;
    else if (!rv_digits(v)) return 0;
    if (v->p < v->e && *v->p == '.') { v->p++; if (!rv_digits(v)) return 0; }
    if (v->p < v->e && (*v->p == 'e' || *v->p == 'E')) {
        v->p++;
        if (v->p < v->e && (*v->p == '+' || *v->p == '-')) v->p++;
        if (!rv_digits(v)) return 0;
    }
    return 1;
}
static int rv_lit(rv *v, const char *w) {
    size_t n = strlen(w);
    if ((size_t)(v->e - v->p) < n || memcmp(v->p, w, n)) return 0;
    v->p += n;
    return 1;
}
static int rv_value(rv *v, int depth) {
    rv_ws(v);
    if (v->p >= v->e) return 0;
    uint8_t c = *v->p;
    if (c == '"') return rv_string(v);
    if (c == '-' || (c >= '0' && c <= '9')) return rv_number(v);
    if (c == 't') return rv_lit(v, "true");
    if (c == 'f') return rv_lit(v, "false");
    if (c == 'n') return rv_lit(v, "null");
    if (c != '[' && c != '{') return 0;
    if (depth >= RTR_JSON_MAX_DEPTH) return 0;
    int obj = c == '{';
    v->p++;
    rv_ws(v);
    if (v->p < v->e && *v->p == (obj ? '}' : ']')) { v->p++; return 1; }
    for (;;) {
        if (obj) {
            rv_ws(v);
            if (v->p >= v->e || *v->p != '"' || !rv_string(v)) return 0;
            rv_ws(v);
            if (v->p >= v->e || *v->p++ != ':') return 0;
        }
        if (!rv_value(v, depth + 1)) return 0;
        rv_ws(v);
        if (v->p >= v->e) return 0;
        uint8_t d = *v->p++;
        if (d == ',') continue;
        return d == (obj ? '}' : ']');
    }
}
static int rv_document(const uint8_t *d, size_t n) {
    rv v = {d, d + n};
    if (n >= 3 && !memcmp(d, "\xEF\xBB\xBF", 3)) v.p += 3; /* RFC 8259 8.1: a parser MAY ignore a BOM */
    if (!rv_value(&v, 0)) return 0;
    rv_ws(&v);
    return v.p == v.e;
}

/* ---- checks on the parsed tree ---- */
static void walk(const rtr_json *j, int depth) {
    FZ_ASSERT(depth <= RTR_JSON_MAX_DEPTH + 1, "tree deeper than allowed");
    switch (j->type) {
    case RTR_JSON_STR:
        FZ_ASSERT(j->str && j->str[j->len] == 0, "string not NUL-terminated");
        FZ_ASSERT(fz_utf8_valid((const uint8_t *)j->str, j->len), "string is not valid UTF-8");
        break;
    case RTR_JSON_NUM: {
        int64_t iv;
        if (rtr_json_int(j, &iv)) FZ_ASSERT((double)iv == j->num, "rtr_json_int %lld != %g", (long long)iv, j->num);
        break;
    }
    case RTR_JSON_OBJ:
        for (size_t i = 0; i < j->n; i++) {
            FZ_ASSERT(j->keys[i][j->key_lens[i]] == 0, "key not NUL-terminated");
            FZ_ASSERT(fz_utf8_valid((const uint8_t *)j->keys[i], j->key_lens[i]), "key is not valid UTF-8");
            if (strlen(j->keys[i]) == j->key_lens[i]) {
                const rtr_json *g = rtr_json_get(j, j->keys[i]);
                FZ_ASSERT(g && g <= &j->items[i], "rtr_json_get misses key %s", j->keys[i]);
            }
            walk(&j->items[i], depth + 1);
        }
        break;
    case RTR_JSON_ARR:
        for (size_t i = 0; i < j->n; i++) walk(&j->items[i], depth + 1);
        FZ_ASSERT(rtr_json_get(j, "") == NULL, "rtr_json_get on an array");
        break;
    case RTR_JSON_NULL: case RTR_JSON_BOOL: break;
    default: FZ_ASSERT(0, "bad node type %d", j->type);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    rtr_json *root = NULL;
    rtr_err err = {0};
    int r = rtr_json_parse((const char *)data, size, &root, &err);
    int want = rv_document(data, size);
    FZ_ASSERT(r == 0 || r == RTR_EFORMAT || r == RTR_ENOMEM, "unexpected return %d", r);
    if (r != RTR_ENOMEM)
        FZ_ASSERT((r == 0) == want, "reader %s what RFC 8259 %s (%s)", r ? "rejects" : "accepts",
                  want ? "allows" : "forbids", err.msg);
    if (r == 0) {
        FZ_ASSERT(root != NULL, "no root");
        walk(root, 0);
        rtr_json_free(root);
    } else {
        FZ_ASSERT(err.msg[0] && strlen(err.msg) < sizeof err.msg, "no error message");
    }
    return 0;
}
