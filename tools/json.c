/* json.c: the strict JSON reader declared in json.h.
 * Recursive descent over the byte buffer. Children of an open array or object collect on a
 * shared pending stack and are copied into the arena when it closes, so every node, key and
 * string of a tree sits in a few large arena chunks that rtr_json_free releases at once. */
#include "json.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct chunk {
    struct chunk *next;
    size_t used, cap;
    max_align_t data[]; /* cap bytes follow */
} chunk;

typedef struct {
    rtr_json root; /* first member: rtr_json_free gets back to the doc from the root */
    chunk *chunks;
} doc;

typedef struct {
    const unsigned char *p, *start, *end;
    doc *d;
    rtr_json *pend; size_t npend, cappend;          /* pending children */
    char **pkeys; size_t *pklen; size_t nkeys, capkeys; /* pending object keys */
    rtr_err *err;
    const unsigned char *errpos;
    const char *errmsg;
    int nomem;
} parser;

static void *arena_alloc(parser *ps, size_t n) {
    n = (n + 15) & ~(size_t)15;
    chunk *c = ps->d->chunks;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > (1u << 20) ? n : (1u << 20);
        c = malloc(sizeof(chunk) + cap);
        if (!c) { ps->nomem = 1; return NULL; }
        c->cap = cap;
        c->used = 0;
        c->next = ps->d->chunks;
        ps->d->chunks = c;
    }
    void *r = (char *)c->data + c->used;
    c->used += n;
    return r;
}

static int fail(parser *ps, const unsigned char *at, const char *msg) {
    if (!ps->errmsg) { ps->errpos = at; ps->errmsg = msg; }
    return -1;
}

static void skip_ws(parser *ps) {
    const unsigned char *p = ps->p, *e = ps->end;
    while (p < e && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) p++;
    ps->p = p;
}

static int hex4(const unsigned char *p, const unsigned char *e, unsigned *out) {
    if (e - p < 4) return 0;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = p[i], d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return 0;
        v = v << 4 | d;
    }
    *out = v;
    return 1;
}

/* Length of the valid UTF-8 sequence at p (lead byte >= 0x80), or 0 if invalid. */
static int utf8_seq(const unsigned char *p, const unsigned char *e) {
    unsigned c = p[0];
    ptrdiff_t left = e - p;
    if (c >= 0xC2 && c <= 0xDF) return (left >= 2 && (p[1] & 0xC0) == 0x80) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (left < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && p[1] < 0xA0) return 0; /* overlong */
        if (c == 0xED && p[1] >= 0xA0) return 0; /* surrogate */
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (left < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80)
            return 0;
        if (c == 0xF0 && p[1] < 0x90) return 0;
        if (c == 0xF4 && p[1] >= 0x90) return 0;
        return 4;
    }
    return 0;
}

static size_t put_utf8(char *o, unsigned cp) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | cp >> 6); o[1] = (char)(0x80 | (cp & 63)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12); o[1] = (char)(0x80 | ((cp >> 6) & 63));
        o[2] = (char)(0x80 | (cp & 63));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18); o[1] = (char)(0x80 | ((cp >> 12) & 63));
    o[2] = (char)(0x80 | ((cp >> 6) & 63)); o[3] = (char)(0x80 | (cp & 63));
    return 4;
}

/* ps->p is at the opening quote. Decodes into the arena. */
static int parse_string(parser *ps, char **out, size_t *outlen) {
    const unsigned char *p = ps->p + 1, *e = ps->end;
    /* find the closing quote to size the buffer: decoded length never exceeds raw length */
    const unsigned char *q = p;
    for (;;) {
        const unsigned char *h = memchr(q, '"', (size_t)(e - q));
        if (!h) return fail(ps, ps->p, "unterminated string");
        const unsigned char *b = h;
        while (b > p && b[-1] == '\\') b--;
        if (((h - b) & 1) == 0) { q = h; break; }
        q = h + 1;
    }
    char *o = arena_alloc(ps, (size_t)(q - p) + 1);
    if (!o) return -1;
    size_t n = 0;
    while (p < q) {
        unsigned c = *p;
        if (c >= 0x20 && c < 0x80 && c != '\\') { o[n++] = (char)c; p++; continue; }
        if (c < 0x20) return fail(ps, p, "control character in string");
        if (c >= 0x80) {
            int k = utf8_seq(p, q);
            if (!k) return fail(ps, p, "invalid UTF-8 in string");
            memcpy(o + n, p, (size_t)k);
            n += (size_t)k;
            p += k;
            continue;
        }
        /* escape */
        if (p + 1 >= q) return fail(ps, p, "bad escape");
        unsigned cp;
        switch (p[1]) {
        case '"': o[n++] = '"'; p += 2; continue;
        case '\\': o[n++] = '\\'; p += 2; continue;
        case '/': o[n++] = '/'; p += 2; continue;
        case 'b': o[n++] = '\b'; p += 2; continue;
        case 'f': o[n++] = '\f'; p += 2; continue;
        case 'n': o[n++] = '\n'; p += 2; continue;
        case 'r': o[n++] = '\r'; p += 2; continue;
        case 't': o[n++] = '\t'; p += 2; continue;
        case 'u':
            if (!hex4(p + 2, q, &cp)) return fail(ps, p, "bad \\u escape");
            if (cp >= 0xDC00 && cp <= 0xDFFF) return fail(ps, p, "lone low surrogate");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned lo;
                if (q - p < 12 || p[6] != '\\' || p[7] != 'u' || !hex4(p + 8, q, &lo) ||
                    lo < 0xDC00 || lo > 0xDFFF)
                    return fail(ps, p, "lone high surrogate");
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                p += 12;
            } else {
                p += 6;
            }
            n += put_utf8(o + n, cp);
            continue;
        default: return fail(ps, p, "bad escape");
        }
    }
    o[n] = 0;
    *out = o;
    *outlen = n;
    ps->p = q + 1;
    return 0;
}

static int parse_number(parser *ps, rtr_json *v) {
    const unsigned char *s = ps->p, *p = s, *e = ps->end;
    if (p < e && *p == '-') p++;
    if (p >= e || !(*p >= '0' && *p <= '9')) return fail(ps, s, "bad number");
    if (*p == '0') {
        p++;
        if (p < e && *p >= '0' && *p <= '9') return fail(ps, s, "leading zero in number");
    } else {
        while (p < e && *p >= '0' && *p <= '9') p++;
    }
    if (p < e && *p == '.') {
        p++;
        if (p >= e || !(*p >= '0' && *p <= '9')) return fail(ps, s, "bad number");
        while (p < e && *p >= '0' && *p <= '9') p++;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < e && (*p == '+' || *p == '-')) p++;
        if (p >= e || !(*p >= '0' && *p <= '9')) return fail(ps, s, "bad number");
        while (p < e && *p >= '0' && *p <= '9') p++;
    }
    size_t n = (size_t)(p - s);
    char buf[64], *tmp = buf;
    if (n >= sizeof buf) {
        tmp = malloc(n + 1);
        if (!tmp) { ps->nomem = 1; return -1; }
    }
    memcpy(tmp, s, n);
    tmp[n] = 0;
    v->num = strtod(tmp, NULL);
    if (tmp != buf) free(tmp);
    v->type = RTR_JSON_NUM;
    ps->p = p;
    return 0;
}

static int push_pending(parser *ps) {
    if (ps->npend == ps->cappend) {
        size_t cap = ps->cappend ? ps->cappend * 2 : 256;
        rtr_json *np = realloc(ps->pend, cap * sizeof *np);
        if (!np) { ps->nomem = 1; return -1; }
        ps->pend = np;
        ps->cappend = cap;
    }
    memset(&ps->pend[ps->npend], 0, sizeof(rtr_json));
    ps->npend++;
    return 0;
}

static int push_key(parser *ps, char *k, size_t len) {
    if (ps->nkeys == ps->capkeys) {
        size_t cap = ps->capkeys ? ps->capkeys * 2 : 256;
        char **nk = realloc(ps->pkeys, cap * sizeof *nk);
        if (!nk) { ps->nomem = 1; return -1; }
        ps->pkeys = nk;
        size_t *nl = realloc(ps->pklen, cap * sizeof *nl);
        if (!nl) { ps->nomem = 1; return -1; }
        ps->pklen = nl;
        ps->capkeys = cap;
    }
    ps->pkeys[ps->nkeys] = k;
    ps->pklen[ps->nkeys] = len;
    ps->nkeys++;
    return 0;
}

static int parse_value(parser *ps, size_t slot, int depth);

/* Moves the last n pending children (and keys, for objects) into the arena-backed node. */
static int close_container(parser *ps, size_t slot, size_t first, size_t kfirst, int is_obj) {
    size_t n = ps->npend - first;
    rtr_json *items = NULL;
    if (n) {
        items = arena_alloc(ps, n * sizeof *items);
        if (!items) return -1;
        memcpy(items, ps->pend + first, n * sizeof *items);
    }
    char **keys = NULL;
    size_t *klen = NULL;
    if (is_obj && n) {
        keys = arena_alloc(ps, n * sizeof *keys);
        klen = arena_alloc(ps, n * sizeof *klen);
        if (!keys || !klen) return -1;
        memcpy(keys, ps->pkeys + kfirst, n * sizeof *keys);
        memcpy(klen, ps->pklen + kfirst, n * sizeof *klen);
    }
    ps->npend = first;
    if (is_obj) ps->nkeys = kfirst;
    rtr_json *v = &ps->pend[slot];
    v->type = is_obj ? RTR_JSON_OBJ : RTR_JSON_ARR;
    v->items = items;
    v->n = n;
    v->keys = keys;
    v->key_lens = klen;
    return 0;
}

static int parse_container(parser *ps, size_t slot, int depth, int is_obj) {
    if (depth >= RTR_JSON_MAX_DEPTH) return fail(ps, ps->p, "nesting deeper than 512");
    size_t first = ps->npend, kfirst = ps->nkeys;
    char close = is_obj ? '}' : ']';
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        return close_container(ps, slot, first, kfirst, is_obj);
    }
    for (;;) {
        skip_ws(ps);
        if (is_obj) {
            if (ps->p >= ps->end || *ps->p != '"') return fail(ps, ps->p, "expected a string key");
            char *k;
            size_t kl;
            if (parse_string(ps, &k, &kl) || push_key(ps, k, kl)) return -1;
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != ':') return fail(ps, ps->p, "expected ':'");
            ps->p++;
            skip_ws(ps);
        }
        if (push_pending(ps)) return -1;
        if (parse_value(ps, ps->npend - 1, depth + 1)) return -1;
        skip_ws(ps);
        if (ps->p >= ps->end) return fail(ps, ps->p, is_obj ? "unterminated object" : "unterminated array");
        if (*ps->p == ',') { ps->p++; continue; }
        if (*ps->p == close) { ps->p++; break; }
        return fail(ps, ps->p, is_obj ? "expected ',' or '}'" : "expected ',' or ']'");
    }
    return close_container(ps, slot, first, kfirst, is_obj);
}

static int lit(parser *ps, const char *w) {
    size_t n = strlen(w);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, w, n)) return 0;
    ps->p += n;
    return 1;
}

/* Parses one value into pend[slot] (index, since pend may move). ps->p is at its first byte. */
static int parse_value(parser *ps, size_t slot, int depth) {
    if (ps->p >= ps->end) return fail(ps, ps->p, "unexpected end of input");
    unsigned c = *ps->p;
    switch (c) {
    case '{': return parse_container(ps, slot, depth, 1);
    case '[': return parse_container(ps, slot, depth, 0);
    case '"': {
        char *s;
        size_t n;
        if (parse_string(ps, &s, &n)) return -1;
        rtr_json *v = &ps->pend[slot];
        v->type = RTR_JSON_STR;
        v->str = s;
        v->len = n;
        return 0;
    }
    case 't': case 'f': case 'n': {
        rtr_json *v = &ps->pend[slot];
        if (lit(ps, "true")) { v->type = RTR_JSON_BOOL; v->boolean = 1; return 0; }
        if (lit(ps, "false")) { v->type = RTR_JSON_BOOL; v->boolean = 0; return 0; }
        if (lit(ps, "null")) { v->type = RTR_JSON_NULL; return 0; }
        return fail(ps, ps->p, "unknown literal");
    }
    default:
        if (c == '-' || (c >= '0' && c <= '9')) return parse_number(ps, &ps->pend[slot]);
        return fail(ps, ps->p, "unexpected character");
    }
}

static void free_doc(doc *d) {
    chunk *c = d->chunks;
    while (c) {
        chunk *n = c->next;
        free(c);
        c = n;
    }
    free(d);
}

int rtr_json_parse(const char *text, size_t len, rtr_json **out, rtr_err *err) {
    *out = NULL;
    doc *d = calloc(1, sizeof *d);
    if (!d) return rtr_seterr(err, RTR_ENOMEM, "out of memory parsing JSON");
    parser ps = {0};
    ps.start = ps.p = (const unsigned char *)text;
    ps.end = ps.start + len;
    ps.d = d;
    ps.err = err;
    int rc = push_pending(&ps);
    if (!rc) {
        if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3)) ps.p += 3; /* tolerate a BOM */
        skip_ws(&ps);
        rc = parse_value(&ps, 0, 0);
        if (!rc) {
            skip_ws(&ps);
            if (ps.p != ps.end) rc = fail(&ps, ps.p, "trailing characters after the value");
        }
    }
    if (!rc) d->root = ps.pend[0];
    free(ps.pend);
    free(ps.pkeys);
    free(ps.pklen);
    if (rc) {
        free_doc(d);
        if (ps.nomem) return rtr_seterr(err, RTR_ENOMEM, "out of memory parsing JSON");
        size_t line = 1, col = 1;
        for (const unsigned char *p = ps.start; p < ps.errpos; p++) {
            if (*p == '\n') { line++; col = 1; }
            else if ((*p & 0xC0) != 0x80) col++;
        }
        return rtr_seterr(err, RTR_EFORMAT, "line %zu col %zu: %s", line, col, ps.errmsg);
    }
    *out = &d->root;
    return 0;
}

void rtr_json_free(rtr_json *j) {
    if (j) free_doc((doc *)(void *)j);
}

const rtr_json *rtr_json_get(const rtr_json *obj, const char *key) {
    if (!obj || obj->type != RTR_JSON_OBJ || !key) return NULL;
    size_t kl = strlen(key);
    for (size_t i = 0; i < obj->n; i++)
        if (obj->key_lens[i] == kl && !memcmp(obj->keys[i], key, kl)) return &obj->items[i];
    return NULL;
}

int rtr_json_int(const rtr_json *j, int64_t *out) {
    if (!j || j->type != RTR_JSON_NUM) return 0;
    double v = j->num;
    if (!(v >= -9223372036854775808.0 && v < 9223372036854775808.0) || v != floor(v)) return 0;
    *out = (int64_t)v;
    return 1;
}
