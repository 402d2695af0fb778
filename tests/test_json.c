/* test_json.c: the JSON reader (tools/json.c): values, escapes, UTF-8, errors with positions,
 * depth limit, and the real 6 MB tokenizer.json fixture (parsed and timed). */
#include "../tools/json.h"
#include "test.h"

#include <string.h>
#include <time.h>

static int parse(const char *s, rtr_json **j, rtr_err *e) { return rtr_json_parse(s, strlen(s), j, e); }

static void bad(const char *s, const char *what) {
    rtr_json *j = NULL;
    rtr_err e = {0};
    int rc = parse(s, &j, &e);
    CHECK(rc == RTR_EFORMAT && j == NULL && strstr(e.msg, "line ") && strstr(e.msg, what),
          "malformed %s: rc %d msg '%s' (want '%s')", s, rc, e.msg, what);
    rtr_json_free(j);
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) { free(b); b = NULL; }
    fclose(f);
    if (b) { b[n] = 0; *len = (size_t)n; }
    return b;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(void) {
    rtr_json *j;
    rtr_err e;
    int64_t iv;

    /* a little of everything */
    const char *doc = " {\"a\": [1, -2.5e3, true, false, null, \"x\"], \"b\": {}, \"c\": [],"
                      " \"\\u00e9\\n\": \"\\ud83d\\ude00 \\\"q\\\" \\\\ \\/ \\b\\f\\r\\t\", \"z\": 0,"
                      " \"big\": 9007199254740992, \"frac\": 0.5, \"nul\": \"a\\u0000b\", \"a\": 7} ";
    CHECK(parse(doc, &j, &e) == 0, "parse: %s", e.msg);
    if (j) {
        CHECK(j->type == RTR_JSON_OBJ && j->n == 9, "object of 9 (type %d, n %zu)", j->type, j->n);
        const rtr_json *a = rtr_json_get(j, "a");
        CHECK(a && a->type == RTR_JSON_ARR && a->n == 6, "array a");
        if (a && a->n == 6) {
            CHECK(rtr_json_int(&a->items[0], &iv) && iv == 1, "1");
            CHECK(a->items[1].type == RTR_JSON_NUM && a->items[1].num == -2500.0, "-2.5e3");
            CHECK(rtr_json_int(&a->items[1], &iv) && iv == -2500, "-2500 integral");
            CHECK(a->items[2].type == RTR_JSON_BOOL && a->items[2].boolean == 1, "true");
            CHECK(a->items[3].type == RTR_JSON_BOOL && a->items[3].boolean == 0, "false");
            CHECK(a->items[4].type == RTR_JSON_NULL, "null");
            CHECK(a->items[5].type == RTR_JSON_STR && a->items[5].len == 1 && !strcmp(a->items[5].str, "x"), "x");
        }
        const rtr_json *b = rtr_json_get(j, "b"), *c = rtr_json_get(j, "c");
        CHECK(b && b->type == RTR_JSON_OBJ && b->n == 0, "empty object");
        CHECK(c && c->type == RTR_JSON_ARR && c->n == 0, "empty array");
        const rtr_json *u = rtr_json_get(j, "\xc3\xa9\n");
        CHECK(u && u->type == RTR_JSON_STR, "escaped key");
        if (u) CHECK(u->len == 17 && !memcmp(u->str, "\xf0\x9f\x98\x80 \"q\" \\ / \b\f\r\t", 17),
                     "escapes decoded (len %zu)", u->len);
        CHECK(rtr_json_get(j, "big") && rtr_json_int(rtr_json_get(j, "big"), &iv) && iv == 9007199254740992LL, "2^53");
        CHECK(!rtr_json_int(rtr_json_get(j, "frac"), &iv), "0.5 not integral");
        CHECK(!rtr_json_int(rtr_json_get(j, "c"), &iv), "array not integral");
        const rtr_json *nul = rtr_json_get(j, "nul");
        CHECK(nul && nul->len == 3 && nul->str[1] == 0 && nul->str[2] == 'b' && nul->str[3] == 0, "embedded NUL");
        const rtr_json *dup = rtr_json_get(j, "a");
        CHECK(dup && dup->type == RTR_JSON_ARR, "duplicate key: first wins");
        CHECK(rtr_json_get(j, "missing") == NULL, "missing key");
        CHECK(rtr_json_get(a, "x") == NULL, "get on array");
        CHECK(j->key_lens[0] == 1 && !strcmp(j->keys[0], "a"), "keys parallel");
    }
    rtr_json_free(j);

    CHECK(parse("\"\xe6\x97\xa5\xf0\x9f\x98\x80\"", &j, &e) == 0 && j->len == 7, "raw UTF-8");
    rtr_json_free(j);
    CHECK(parse("-0", &j, &e) == 0 && j->type == RTR_JSON_NUM, "-0");
    rtr_json_free(j);
    CHECK(parse("\xEF\xBB\xBF[1]", &j, &e) == 0 && j->n == 1, "BOM tolerated");
    rtr_json_free(j);

    /* malformed inputs */
    bad("", "end of input");
    bad("   ", "end of input");
    bad("{", "expected a string key");
    bad("[1,", "end of input");
    bad("[1 2]", "expected ','");
    bad("[1,]", "unexpected character");
    bad("{\"a\":1,}", "expected a string key");
    bad("{\"a\" 1}", "expected ':'");
    bad("{a:1}", "expected a string key");
    bad("\"abc", "unterminated string");
    bad("\"a\\\"", "unterminated string");
    bad("\"a\nb\"", "control character");
    bad("\"\\x\"", "bad escape");
    bad("\"\\u12g4\"", "bad \\u escape");
    bad("\"\\ud800\"", "lone high surrogate");
    bad("\"\\ud800\\u0041\"", "lone high surrogate");
    bad("\"\\udc00\"", "lone low surrogate");
    bad("\"\xc3\"", "invalid UTF-8");
    bad("\"\xc0\xaf\"", "invalid UTF-8");
    bad("\"\xed\xa0\x80\"", "invalid UTF-8");
    bad("\"\xf4\x90\x80\x80\"", "invalid UTF-8");
    bad("\"\xff\"", "invalid UTF-8");
    bad("01", "leading zero");
    bad("1.", "bad number");
    bad("1e", "bad number");
    bad("-", "bad number");
    bad(".5", "unexpected character");
    bad("NaN", "unexpected character");
    bad("tru", "unknown literal");
    bad("nul", "unknown literal");
    bad("[1] x", "trailing characters");
    bad("{} {}", "trailing characters");
    bad("// c\n1", "unexpected character");
    bad("[\n  1,\n  ?]", "line 3 col 3");
    /* depth: 512 nested arrays are fine, 513 are not */
    {
        char deep[1100];
        memset(deep, '[', 512);
        memset(deep + 512, ']', 512);
        deep[1024] = 0;
        CHECK(parse(deep, &j, &e) == 0, "depth 512: %s", e.msg);
        rtr_json_free(j);
        memset(deep, '[', 513);
        memset(deep + 513, ']', 513);
        deep[1026] = 0;
        bad(deep, "nesting deeper than 512");
    }
    /* truncations of a valid document never crash and always fail */
    {
        const char *t = "{\"k\": [\"\\u00e9\", 1.5e2, {\"x\": null}], \"m\": \"\xe6\x97\xa5\"}";
        size_t n = strlen(t);
        int ok = 1;
        for (size_t i = 0; i < n; i++) {
            j = NULL;
            if (rtr_json_parse(t, i, &j, &e) != RTR_EFORMAT) ok = 0;
            rtr_json_free(j);
        }
        CHECK(ok, "every proper prefix is rejected");
        CHECK(rtr_json_parse(t, n, &j, &e) == 0, "whole document parses");
        rtr_json_free(j);
    }

    /* the real tokenizer.json */
    char path[512];
    snprintf(path, sizeof path, "%s/tiny-bitnet/tokenizer.json", test_fixtures());
    size_t len;
    char *txt = slurp(path, &len);
    if (!txt) {
        SKIP("%s not found", path);
    } else {
        /* the parse time is reported, not asserted: `test_tokenizer --bench` measures it */
        double t0 = now();
        int rc = rtr_json_parse(txt, len, &j, &e);
        fprintf(stderr, "tokenizer.json (%.1f MB) parsed in %.1f ms\n", len / 1e6, (now() - t0) * 1e3);
        CHECK(rc == 0, "tokenizer.json: %s", e.msg);
        const rtr_json *m = rtr_json_get(j, "model");
        const rtr_json *v = rtr_json_get(m, "vocab"), *mg = rtr_json_get(m, "merges");
        CHECK(v && v->type == RTR_JSON_OBJ && v->n == 128000, "vocab of 128000 (%zu)", v ? v->n : 0);
        CHECK(mg && mg->type == RTR_JSON_ARR && mg->n == 280147, "280147 merges (%zu)", mg ? mg->n : 0);
        const rtr_json *hello = rtr_json_get(v, "Hello");
        CHECK(hello && rtr_json_int(hello, &iv) && iv == 9906, "vocab[Hello] == 9906");
        const rtr_json *at = rtr_json_get(j, "added_tokens");
        CHECK(at && at->n == 256, "256 added tokens");
        rtr_json_free(j);
        free(txt);
    }
    return test_done("test_json");
}
