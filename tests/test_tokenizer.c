/* test_tokenizer.c: the byte-level BPE tokenizer (models/tokenizer*.c) against reference ids.
 * Builds a .rotor holding only the tokenizer from the fixtures' tokenizer.json files, then checks
 * every line of llama3-tokenizer/vectors.jsonl and the peer vocabulary test, the Qwen2 ids of
 * tiny-bitnet-embed, detokenization, invalid input and damaged tokenizer tensors.
 * `test_tokenizer --bench [FILE]` measures encoding speed instead (tests/bench_tokenizer.sh). */
#include "../models/tokenizer.h"
#include "test.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

static char tmpdir[256];

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    for (;;) {
        if (n + 4096 > cap) b = realloc(b, cap *= 2);
        size_t r = fread(b + n, 1, cap - n - 1, f);
        if (!r) break;
        n += r;
    }
    fclose(f);
    b[n] = 0;
    *len = n;
    return b;
}

/* gunzips through the gzip tool into memory */
static char *gunzip(const char *path, size_t *len) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "gzip -dc '%s' 2>/dev/null", path);
    FILE *p = popen(cmd, "r");
    if (!p) return NULL;
    size_t cap = 1 << 20, n = 0;
    char *b = malloc(cap);
    size_t r;
    while ((r = fread(b + n, 1, cap - n - 1, p)) > 0) {
        n += r;
        if (n + 1 >= cap) b = realloc(b, cap *= 2);
    }
    int st = pclose(p);
    if (st != 0 || n == 0) { free(b); return NULL; }
    b[n] = 0;
    *len = n;
    return b;
}

/* tokenizer.json text -> .rotor file at path; returns 0 or an error code */
static int build_rotor(const char *json, size_t len, const char *path, rtr_err *e) {
    rtr_json *j;
    int rc = rtr_json_parse(json, len, &j, e);
    if (rc) return rc;
    rtr_tok_src *src;
    rc = rtr_tok_src_from_hf(&src, j, e);
    rtr_json_free(j);
    if (rc) return rc;
    rtr_writer *w;
    if (!(rc = rtr_writer_new(&w, path, e))) {
        rc = rtr_tok_write(w, src, e);
        if (!rc) rc = rtr_writer_finish(w, e);
        rtr_writer_free(w);
    }
    rtr_tok_src_free(src);
    return rc;
}

typedef struct {
    rtr_file f;
    rtr_tokenizer *t;
} opened;

static int open_tok(opened *o, const char *path, rtr_err *e) {
    memset(o, 0, sizeof *o);
    int rc = rtr_file_open(&o->f, path, e);
    if (rc) return rc;
    rc = rtr_tok_load(&o->t, &o->f, e);
    if (rc) rtr_file_close(&o->f);
    return rc;
}
static void close_tok(opened *o) {
    rtr_tok_free(o->t);
    rtr_file_close(&o->f);
}

/* detokenizes ids through the streaming repair into a malloc'd buffer */
static char *detok(const rtr_tokenizer *t, const int32_t *ids, int n, size_t *len) {
    size_t cap = 64, o = 0;
    for (int i = 0; i < n; i++) { size_t l; rtr_tok_bytes(t, ids[i], &l); cap += l + 8; }
    char *out = malloc(cap);
    rtr_detok d = {0};
    for (int i = 0; i < n; i++) {
        size_t l;
        const char *b = rtr_tok_bytes(t, ids[i], &l);
        o += (size_t)rtr_detok_push_bytes(&d, b, l, out + o, cap - o);
    }
    o += (size_t)rtr_detok_flush(&d, out + o, cap - o);
    *len = o;
    return out;
}

static int ids_equal(const int32_t *a, int na, const int32_t *b, int nb) {
    return na == nb && (na == 0 || !memcmp(a, b, (size_t)na * 4));
}

static void show_ids(const char *what, const int32_t *ids, int n) {
    fprintf(stderr, "  %s:", what);
    for (int i = 0; i < n && i < 40; i++) fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, n > 40 ? " ...\n" : "\n");
}

/* checks one text against reference ids; with roundtrip, also that detokenizing gives it back */
static int check_text(const rtr_tokenizer *t, const char *text, size_t len, const int32_t *ref,
                      int nref, int roundtrip, const char *where) {
    int cap = (int)len + 8;
    int32_t *ids = malloc((size_t)cap * 4);
    int n = rtr_tok_encode(t, text, len, 1, ids, cap);
    int ok = n >= 0 && ids_equal(ids, n, ref, nref);
    CHECK(ok, "%s: ids differ for \"%.60s\"", where, text);
    if (!ok) { show_ids("got ", ids, n); show_ids("want", ref, nref); }
    if (roundtrip && n >= 0) {
        size_t dl;
        char *d = detok(t, ids, n, &dl);
        CHECK(dl == len && !memcmp(d, text, len), "%s: detokenizing \"%.60s\" does not give it back", where, text);
        free(d);
    }
    free(ids);
    return ok;
}

static void test_vectors(const rtr_tokenizer *t) {
    char path[512];
    snprintf(path, sizeof path, "%s/llama3-tokenizer/vectors.jsonl", test_fixtures());
    size_t len;
    char *txt = slurp(path, &len);
    if (!txt) { SKIP("%s missing", path); return; }
    int lines = 0, good = 0;
    for (char *p = txt, *nl; *p; p = nl + 1) {
        nl = strchr(p, '\n');
        if (!nl) nl = p + strlen(p);
        if (nl > p) {
            rtr_json *j;
            rtr_err e;
            if (rtr_json_parse(p, (size_t)(nl - p), &j, &e)) {
                CHECK(0, "vectors line %d: %s", lines + 1, e.msg);
            } else {
                const rtr_json *tx = rtr_json_get(j, "text"), *ids = rtr_json_get(j, "ids");
                int32_t *ref = malloc((ids->n + 1) * 4);
                for (size_t i = 0; i < ids->n; i++) ref[i] = (int32_t)ids->items[i].num;
                char where[64];
                snprintf(where, sizeof where, "vectors.jsonl:%d", lines + 1);
                good += check_text(t, tx->str, tx->len, ref, (int)ids->n, 1, where);
                free(ref);
                rtr_json_free(j);
            }
            lines++;
        }
        if (!*nl) break;
    }
    fprintf(stderr, "vectors.jsonl: %d of %d lines match\n", good, lines);
    CHECK(lines >= 400, "only %d vector lines", lines);
    free(txt);
}

static void test_peer(const rtr_tokenizer *t) {
    char pi[512], po[512];
    snprintf(pi, sizeof pi, "%s/llama3-tokenizer/peer-vocab-test.inp", test_fixtures());
    snprintf(po, sizeof po, "%s/llama3-tokenizer/peer-vocab-test.out", test_fixtures());
    size_t li, lo;
    char *in = slurp(pi, &li), *out = slurp(po, &lo);
    if (!in || !out) { SKIP("peer vocab test missing"); free(in); free(out); return; }
    const char *sep = "\n__ggml_vocab_test__\n";
    char *p = in, *q = out;
    int n = 0, good = 0;
    for (;;) {
        char *s = strstr(p, sep);
        if (!s) break;
        char *ql = strchr(q, '\n');
        if (!ql) { CHECK(0, "peer .out has fewer lines than .inp has inputs"); break; }
        *ql = 0;
        int32_t ref[4096];
        int nref = 0;
        for (char *r = q, *end; nref < 4096; r = end) {
            long v = strtol(r, &end, 10);
            if (end == r) break;
            ref[nref++] = (int32_t)v;
        }
        char where[64];
        snprintf(where, sizeof where, "peer-vocab-test #%d", n + 1);
        good += check_text(t, p, (size_t)(s - p), ref, nref, 1, where);
        n++;
        p = s + strlen(sep);
        q = ql + 1;
    }
    fprintf(stderr, "peer-vocab-test: %d of %d inputs match\n", good, n);
    CHECK(n == 46, "peer test: %d inputs (want 46)", n);
    free(in);
    free(out);
}

static void test_misc(const rtr_tokenizer *t) {
    int32_t ids[256];
    CHECK(rtr_tok_n_vocab(t) == 128256, "n_vocab %d", rtr_tok_n_vocab(t));
    CHECK(rtr_tok_encode(t, "ab\xff", 3, 1, ids, 256) == RTR_EARG, "invalid byte rejected");
    CHECK(rtr_tok_encode(t, "\xc3", 1, 1, ids, 256) == RTR_EARG, "truncated sequence rejected");
    CHECK(rtr_tok_encode(t, "\xed\xa0\x80", 3, 1, ids, 256) == RTR_EARG, "surrogate rejected");
    CHECK(rtr_tok_encode(t, "\xc0\x80", 2, 1, ids, 256) == RTR_EARG, "overlong rejected");
    CHECK(rtr_tok_encode(t, "", 0, 1, ids, 256) == 0, "empty text");
    /* allow_special */
    const char *s = "Hi<|eot_id|>";
    int n = rtr_tok_encode(t, s, strlen(s), 1, ids, 256);
    CHECK(n == 2 && ids[1] == 128009, "special matched (n %d)", n);
    n = rtr_tok_encode(t, s, strlen(s), 0, ids, 256);
    int has = 0;
    for (int i = 0; i < n; i++) has |= ids[i] >= 128000;
    CHECK(n > 2 && !has, "allow_special=0 keeps <|eot_id|> as text (n %d)", n);
    size_t dl;
    char *d = detok(t, ids, n, &dl);
    CHECK(dl == strlen(s) && !memcmp(d, s, dl), "plain special detokenizes back");
    free(d);
    /* cap: count is returned, only cap written */
    ids[1] = -7;
    n = rtr_tok_encode(t, "Hello world", 11, 1, ids, 1);
    CHECK(n == 2 && ids[0] == 9906 && ids[1] == -7, "cap respected (n %d)", n);
    /* lookups */
    CHECK(rtr_tok_find(t, "Hello", 5) == 9906, "find Hello");
    CHECK(rtr_tok_find(t, " world", 6) == 1917, "find ' world'");
    CHECK(rtr_tok_find(t, "<|begin_of_text|>", 17) == 128000, "find BOS");
    CHECK(rtr_tok_find(t, "no such token ever", 18) == -1, "find missing");
    CHECK(rtr_tok_is_special(t, 128009) && !rtr_tok_is_special(t, 9906), "is_special");
    size_t l;
    const char *b = rtr_tok_bytes(t, 220, &l);
    CHECK(l == 1 && b[0] == ' ', "token 220 is a space");
    b = rtr_tok_bytes(t, 128256, &l);
    CHECK(l == 0 && b && !*b, "out-of-range id gives \"\"");
    b = rtr_tok_bytes(t, -1, &l);
    CHECK(l == 0, "negative id gives \"\"");
    /* long runs: a 100000-byte word must not take quadratic time. Judged against a 10000-byte
     * word encoded in the same process, so a slow or busy machine slows both: linear work is
     * ~10x, quadratic ~100x; the 20x bound has an absolute allowance for timer noise. */
    size_t big = 100000;
    char *x = malloc(big);
    memset(x, 'a', big);
    int32_t *many = malloc(big * 4);
    double t_small = 1e9, t_big = 1e9;
    for (int r = 0; r < 3; r++) {
        double t0 = now();
        n = rtr_tok_encode(t, x, big / 10, 1, many, (int)big);
        double t1 = now();
        if (t1 - t0 < t_small) t_small = t1 - t0;
        n = rtr_tok_encode(t, x, big, 1, many, (int)big);
        if (now() - t1 < t_big) t_big = now() - t1;
    }
    d = detok(t, many, n > 0 ? n : 0, &dl);
    CHECK(n > 0 && dl == big && !memcmp(d, x, big), "100000 'a' round trip (n %d)", n);
    CHECK(t_big < 20 * t_small + 0.02, "100000 'a' took %.1f ms, 10000 took %.1f ms: worse than linear",
          t_big * 1e3, t_small * 1e3);
    free(d);
    free(x);
    free(many);
}

static void test_detok(void) {
    rtr_detok d = {0};
    char out[64];
    /* "é" split across two pushes */
    int n = rtr_detok_push_bytes(&d, "a\xc3", 2, out, sizeof out);
    CHECK(n == 1 && out[0] == 'a' && d.npend == 1, "incomplete held back");
    n = rtr_detok_push_bytes(&d, "\xa9", 1, out, sizeof out);
    CHECK(n == 2 && !memcmp(out, "\xc3\xa9", 2), "completed");
    /* 4-byte emoji one byte at a time */
    const char *em = "\xf0\x9f\x98\x80";
    int tot = 0;
    for (int i = 0; i < 4; i++) tot += rtr_detok_push_bytes(&d, em + i, 1, out + tot, sizeof out - (size_t)tot);
    CHECK(tot == 4 && !memcmp(out, em, 4), "emoji byte by byte");
    /* invalid: lone continuation, bad lead, interrupted sequence, pending at flush */
    n = rtr_detok_push_bytes(&d, "\x80x\xffy\xe2\x82z", 7, out, sizeof out);
    CHECK(n == 3 + 1 + 3 + 1 + 3 + 1 && !memcmp(out, "\xef\xbf\xbdx\xef\xbf\xbdy\xef\xbf\xbdz", 12), "invalid -> U+FFFD (n %d)", n);
    n = rtr_detok_push_bytes(&d, "\xe2\x82", 2, out, sizeof out);
    CHECK(n == 0, "pending");
    n = rtr_detok_flush(&d, out, sizeof out);
    CHECK(n == 3 && !memcmp(out, "\xef\xbf\xbd", 3) && d.npend == 0, "flush emits U+FFFD");
    n = rtr_detok_push_bytes(&d, "\xed\xa0\x80", 3, out, sizeof out);
    CHECK(n == 9, "surrogate bytes -> 3 x U+FFFD (n %d)", n);
    n = rtr_detok_push_bytes(&d, "abcdef", 6, out, 3);
    CHECK(n == 3 && !memcmp(out, "abc", 3), "cap respected");
}

/* ---- damaged files: a copy of the good tokenizer with one tensor changed ---- */
typedef void (*mutator)(const char *name, uint8_t *data, uint64_t *n_elems, int *type);

static int write_mutant(const rtr_file *f, const char *path, mutator mut, const char *drop, int probe_meta) {
    rtr_writer *w;
    rtr_err e;
    if (rtr_writer_new(&w, path, &e)) return -1;
    const char *s;
    size_t sl;
    int64_t v;
    static const char *skeys[] = {"tokenizer.model", "tokenizer.pre", "tokenizer.normalizer"};
    static const char *ikeys[] = {"tokenizer.n_vocab", "tokenizer.n_merges", "tokenizer.ignore_merges",
                                  "tokenizer.vocab_probe", "tokenizer.merge_probe"};
    for (int i = 0; i < 3; i++)
        if (!rtr_meta_str(f, skeys[i], &s, &sl)) rtr_writer_meta_str(w, skeys[i], s, sl);
    for (int i = 0; i < (probe_meta ? 5 : 3); i++)
        if (!rtr_meta_int(f, ikeys[i], &v)) rtr_writer_meta_int(w, ikeys[i], v);
    int rc = 0;
    for (uint32_t i = 0; i < f->n_tensors && !rc; i++) {
        const rtr_tensor *x = &f->tensors[i];
        if (drop && !strcmp(x->name, drop)) continue;
        uint8_t *d = malloc(x->size + 64);
        memcpy(d, x->data, x->size);
        uint64_t n = x->shape[0];
        int type = (int)x->type;
        if (mut) mut(x->name, d, &n, &type);
        rc = rtr_writer_tensor(w, x->name, type, 1, &n, 1.0f, &e);
        if (!rc) rc = rtr_writer_data(w, d, (size_t)rtr_tensor_bytes(type, 1, &n), &e);
        free(d);
    }
    if (!rc) rc = rtr_writer_finish(w, &e);
    rtr_writer_free(w);
    return rc;
}

static uint64_t rng_state = 88172645463325252ull;
static uint32_t rnd(void) {
    rng_state ^= rng_state << 13; rng_state ^= rng_state >> 7; rng_state ^= rng_state << 17;
    return (uint32_t)rng_state;
}
static void m_short_offsets(const char *nm, uint8_t *d, uint64_t *n, int *ty) { (void)d; (void)ty; if (!strcmp(nm, "tokenizer.token_offsets")) *n -= 1; }
static void m_wrong_type(const char *nm, uint8_t *d, uint64_t *n, int *ty) { (void)d; (void)n; if (!strcmp(nm, "tokenizer.token_type")) *ty = RTR_T_I32, *n /= 4; }
static void m_offsets_past_end(const char *nm, uint8_t *d, uint64_t *n, int *ty) {
    (void)ty;
    if (!strcmp(nm, "tokenizer.token_offsets")) { uint32_t v = 0xFFFFFFF0u; for (uint64_t i = *n / 2; i < *n; i++) memcpy(d + 4 * i, &v, 4); }
}
static void m_vhash_odd(const char *nm, uint8_t *d, uint64_t *n, int *ty) { (void)d; (void)ty; if (!strcmp(nm, "tokenizer.vocab_hash")) *n -= 2; }
static void m_mhash_small(const char *nm, uint8_t *d, uint64_t *n, int *ty) { (void)d; (void)ty; if (!strcmp(nm, "tokenizer.merge_hash")) *n = 64; }
static void m_special_bad(const char *nm, uint8_t *d, uint64_t *n, int *ty) {
    (void)n; (void)ty;
    if (!strcmp(nm, "tokenizer.special_ids")) { int32_t v = 99999999; memcpy(d, &v, 4); }
}
static void m_special_unsorted(const char *nm, uint8_t *d, uint64_t *n, int *ty) {
    (void)n; (void)ty;
    if (!strcmp(nm, "tokenizer.special_ids")) { int32_t v = 220; memcpy(d + 4 * (*n - 1), &v, 4); }
}
static void m_garbage_merges(const char *nm, uint8_t *d, uint64_t *n, int *ty) {
    (void)ty;
    if (!strcmp(nm, "tokenizer.merge_hash")) for (uint64_t i = 0; i < *n; i++) { uint32_t v = rnd() % 300000; memcpy(d + 4 * i, &v, 4); }
}
static void m_full_merges(const char *nm, uint8_t *d, uint64_t *n, int *ty) {
    (void)ty;
    if (!strcmp(nm, "tokenizer.merge_hash")) for (uint64_t i = 0; i < *n; i++) { uint32_t v = 7; memcpy(d + 4 * i, &v, 4); }
}
static void m_garbage_vocab(const char *nm, uint8_t *d, uint64_t *n, int *ty) {
    (void)ty;
    if (!strcmp(nm, "tokenizer.vocab_hash")) for (uint64_t i = 0; i < *n; i += 2) { uint32_t v = rnd() % 200000; memcpy(d + 4 * i + 4, &v, 4); }
    if (!strcmp(nm, "tokenizer.token_offsets")) for (uint64_t i = 1000; i < 2000; i++) { uint32_t v = rnd(); memcpy(d + 4 * i, &v, 4); }
}

/* writes a damaged copy and checks that loading fails cleanly or encoding stays in bounds */
static void damaged_case(const rtr_file *good, const char *path, const char *what, mutator m,
                         const char *drop, int must_fail, int probe_meta) {
    const char *text = "Hello world, this is a test of damaged tables: 12345 \xc3\xa9t\xc3\xa9 <|eot_id|> \xf0\x9f\xa6\x99";
    if (write_mutant(good, path, m, drop, probe_meta)) { CHECK(0, "%s: could not write", what); return; }
    opened o;
    rtr_err e = {0};
    int rc = open_tok(&o, path, &e);
    if (must_fail) {
        CHECK(rc == RTR_EFORMAT && strstr(e.msg, "tokenizer"), "%s: load gave %d '%s'", what, rc, e.msg);
        if (!rc) close_tok(&o);
        return;
    }
    /* may load or not; if it loads, encoding must stay in bounds and return sane ids */
    if (rc) { CHECK(rc == RTR_EFORMAT, "%s: rc %d", what, rc); return; }
    int32_t ids[512];
    int n = rtr_tok_encode(o.t, text, strlen(text), 1, ids, 512);
    int ok = n >= 0 && n <= 512;
    for (int i = 0; ok && i < n; i++) ok = ids[i] >= 0 && ids[i] < rtr_tok_n_vocab(o.t);
    CHECK(ok, "%s: encode gave %d or bad ids", what, n);
    size_t l;
    for (int i = 0; i < 2000; i++) rtr_tok_bytes(o.t, i, &l);
    close_tok(&o);
}

static void test_damaged(const rtr_file *good) {
    char path[512];
    snprintf(path, sizeof path, "%s/bad.rotor", tmpdir);
    struct { const char *what; mutator m; const char *drop; int must_fail; } cases[] = {
        {"token_offsets one short", m_short_offsets, NULL, 1},
        {"token_type of the wrong type", m_wrong_type, NULL, 1},
        {"vocab_hash of odd size", m_vhash_odd, NULL, 1},
        {"merge_hash smaller than the merges", m_mhash_small, NULL, 1},
        {"special id out of range", m_special_bad, NULL, 1},
        {"special ids unsorted", m_special_unsorted, NULL, 1},
        {"token_bytes missing", NULL, "tokenizer.token_bytes", 1},
        {"offsets past the end", m_offsets_past_end, NULL, 0},
        {"garbage merge table", m_garbage_merges, NULL, 0},
        {"merge table without empty slot", m_full_merges, NULL, 0},
        {"garbage vocab table and offsets", m_garbage_vocab, NULL, 0},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (int pm = 0; pm < 2; pm++) /* with and without the probe limits */
            damaged_case(good, path, cases[c].what, cases[c].m, cases[c].drop, cases[c].must_fail, pm);
    unlink(path);
    /* metadata damage */
    rtr_writer *w;
    rtr_err e;
    if (!rtr_writer_new(&w, path, &e)) {
        rtr_writer_meta_str(w, "tokenizer.model", "gpt2", 4);
        rtr_writer_meta_str(w, "tokenizer.pre", "gpt4o", 5);
        rtr_writer_meta_int(w, "tokenizer.n_vocab", 10);
        rtr_writer_meta_int(w, "tokenizer.n_merges", 0);
        uint64_t one = 1;
        uint8_t z = 0;
        rtr_writer_tensor(w, "x", RTR_T_U8, 1, &one, 1.0f, &e);
        rtr_writer_data(w, &z, 1, &e);
        rtr_writer_finish(w, &e);
        rtr_writer_free(w);
        opened o;
        int rc = open_tok(&o, path, &e);
        CHECK(rc == RTR_EFORMAT && strstr(e.msg, "pre-tokenizer"), "unknown pre rejected: %s", e.msg);
        if (!rc) close_tok(&o);
        unlink(path);
    }
}

/* ---- Qwen2 (tiny-bitnet-embed) ---- */
static void test_qwen2(void) {
    char path[512], out[512];
    snprintf(path, sizeof path, "%s/tiny-bitnet-embed/tokenizer.json.gz", test_fixtures());
    size_t len;
    char *json = gunzip(path, &len);
    if (!json) { SKIP("cannot gunzip %s", path); return; }
    snprintf(out, sizeof out, "%s/qwen.rotor", tmpdir);
    rtr_err e = {0};
    int rc = build_rotor(json, len, out, &e);
    free(json);
    CHECK(rc == 0, "qwen2 build: %s", e.msg);
    if (rc) return;
    opened o;
    rc = open_tok(&o, out, &e);
    CHECK(rc == 0, "qwen2 load: %s", e.msg);
    if (rc) return;
    CHECK(rtr_tok_pre(o.t) == RTR_PRE_QWEN2, "qwen2 pre detected");
    CHECK(rtr_tok_n_vocab(o.t) == 151669, "qwen2 n_vocab %d", rtr_tok_n_vocab(o.t));
    snprintf(path, sizeof path, "%s/tiny-bitnet-embed/reference.json", test_fixtures());
    char *ref = slurp(path, &len);
    rtr_json *j = NULL;
    if (!ref || rtr_json_parse(ref, len, &j, &e)) {
        CHECK(0, "reference.json: %s", ref ? e.msg : "missing");
    } else {
        const rtr_json *texts = rtr_json_get(j, "texts");
        int nt = 0;
        for (size_t i = 0; texts && i < texts->n; i++) {
            const rtr_json *tx = rtr_json_get(&texts->items[i], "text"), *ids = rtr_json_get(&texts->items[i], "input_ids");
            if (!tx || !ids || !ids->n) continue;
            /* the reference appends EOS 151643; the tokenizer does not */
            int nref = (int)ids->n - 1;
            int32_t *r = malloc(ids->n * 4);
            for (size_t k = 0; k < ids->n; k++) r[k] = (int32_t)ids->items[k].num;
            CHECK(r[nref] == 151643, "reference ends with EOS");
            char where[96];
            snprintf(where, sizeof where, "qwen2 %s", texts->keys[i]);
            check_text(o.t, tx->str, tx->len, r, nref, 1, where);
            free(r);
            nt++;
        }
        CHECK(nt == 6, "six qwen2 texts (%d)", nt);
    }
    /* Qwen2 specifics: one digit per token, NFC, non-special added tokens always matched */
    int32_t ids[64];
    int n = rtr_tok_encode(o.t, "12345", 5, 1, ids, 64);
    CHECK(n == 5 && ids[0] == 16 && ids[4] == 20, "qwen2 digits one at a time (n %d)", n);
    int32_t a[16], b[16];
    int na = rtr_tok_encode(o.t, "caf\xc3\xa9", 5, 1, a, 16), nb = rtr_tok_encode(o.t, "cafe\xcc\x81", 6, 1, b, 16);
    CHECK(na > 0 && ids_equal(a, na, b, nb), "qwen2 NFC: decomposed e+acute encodes as composed");
    n = rtr_tok_encode(o.t, "<think>", 7, 0, ids, 64);
    CHECK(n == 1 && ids[0] == 151667, "user-defined <think> matched even without allow_special");
    n = rtr_tok_encode(o.t, "<|im_end|>", 10, 0, ids, 64);
    CHECK(n > 1, "control <|im_end|> is text without allow_special");
    rtr_json_free(j);
    free(ref);
    close_tok(&o);
    unlink(out);
}

/* malformed tokenizer.json documents are refused with a message */
static void test_hf_errors(void) {
#define RE_L3 "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}{1,3}| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+"
#define PRE "\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"" RE_L3 "\"}},"
    struct { const char *json, *want; int ok; } cases[] = {
        {"{" PRE "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a b\"]}}", "", 1},
        {"{" PRE "\"model\":{\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[[\"a\",\"b\"]]},\"added_tokens\":[{\"id\":5,\"content\":\"<s>\",\"special\":true}]}", "", 1},
        {"{\"model\":{\"vocab\":{\"a\":0},\"merges\":[]}}", "pre-tokenizer", 0},
        {"{" PRE "\"model\":{\"type\":\"Unigram\",\"vocab\":{\"a\":0},\"merges\":[]}}", "BPE", 0},
        {"{" PRE "\"model\":{\"vocab\":{\"a\":-1},\"merges\":[]}}", "bad id", 0},
        {"{" PRE "\"model\":{\"vocab\":{\"a\":0,\"b\":0},\"merges\":[]}}", "twice", 0},
        {"{" PRE "\"model\":{\"vocab\":{\"a\":0,\"b\":1},\"merges\":[\"a b\"]}}", "not in the vocabulary", 0},
        {"{" PRE "\"model\":{\"vocab\":{\"a\":0,\"b\":1},\"merges\":[\"ab\"]}}", "merge 0", 0},
        {"{" PRE "\"model\":{\"vocab\":{\"a\":0,\"b\":1},\"merges\":[7]}}", "malformed", 0},
        {"{" PRE "\"model\":{\"vocab\":{\"a\\u0000\":0},\"merges\":[]}}", "byte-level", 0},
        {"{" PRE "\"normalizer\":{\"type\":\"NFKC\"},\"model\":{\"vocab\":{\"a\":0},\"merges\":[]}}", "normalizer", 0},
        {"{\"model\":{\"vocab\":[],\"merges\":[]}}", "model.vocab", 0},
        {"[]", "model.vocab", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rtr_json *j;
        rtr_err e = {0};
        if (rtr_json_parse(cases[i].json, strlen(cases[i].json), &j, &e)) { CHECK(0, "case %zu: %s", i, e.msg); continue; }
        rtr_tok_src *s = NULL;
        int rc = rtr_tok_src_from_hf(&s, j, &e);
        if (cases[i].ok) {
            CHECK(rc == 0 && rtr_tok_src_find(s, "ab") == 2, "hf case %zu: %s", i, e.msg);
        } else {
            CHECK(rc == RTR_EFORMAT && !s && strstr(e.msg, cases[i].want), "hf case %zu: rc %d '%s' (want '%s')", i, rc, e.msg, cases[i].want);
        }
        if (s && i == 1) CHECK(rtr_tok_src_n_vocab(s) == 6 && rtr_tok_src_find(s, "<s>") == 5, "added token beyond the vocab");
        rtr_tok_src_free(s);
        rtr_json_free(j);
    }
#undef PRE
#undef RE_L3
}

static int bench(const rtr_tokenizer *t, const char *file) {
    size_t len;
    char *txt = NULL;
    if (file) txt = slurp(file, &len);
    if (!txt) {
        /* default corpus: the English prose of the spec and READMEs, repeated */
        const char *srcs[] = {"../shared/spec/bitnet.md", "tiny-bitnet-embed/README.md", "tiny-bitnet/README.md"};
        size_t cap = 8 << 20;
        txt = malloc(cap);
        len = 0;
        for (int r = 0; len < 4 << 20 && r < 1000; r++)
            for (int i = 0; i < 3; i++) {
                char p[512];
                snprintf(p, sizeof p, "%s/%s", test_fixtures(), srcs[i]);
                size_t l;
                char *s = slurp(p, &l);
                if (s && len + l < cap) { memcpy(txt + len, s, l); len += l; }
                free(s);
            }
        if (!len) { fprintf(stderr, "no corpus\n"); return 1; }
    }
    int32_t *ids = malloc((len + 1) * 4);
    double best = 1e9;
    int n = 0;
    for (int r = 0; r < 5; r++) {
        double t0 = now();
        n = rtr_tok_encode(t, txt, len, 1, ids, (int)len + 1);
        double dt = now() - t0;
        if (dt < best) best = dt;
    }
    printf("encode: %.2f MB in %.1f ms = %.1f MB/s, %d tokens (%.2f bytes/token)\n", len / 1e6,
           best * 1e3, len / 1e6 / best, n, (double)len / (n > 0 ? n : 1));
    free(ids);
    free(txt);
    return 0;
}

int main(int argc, char **argv) {
    const char *td = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/rotor-tok.XXXXXX", td ? td : "/tmp");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    char path[512], rot[512];
    snprintf(path, sizeof path, "%s/tiny-bitnet/tokenizer.json", test_fixtures());
    snprintf(rot, sizeof rot, "%s/llama3.rotor", tmpdir);
    size_t len;
    char *json = slurp(path, &len);
    if (!json) {
        SKIP("%s missing", path);
        rmdir(tmpdir);
        return test_done("test_tokenizer");
    }
    rtr_err e = {0};
    double t0 = now();
    int rc = build_rotor(json, len, rot, &e);
    double t_build = now() - t0;
    free(json);
    CHECK(rc == 0, "build: %s", e.msg);
    opened o;
    t0 = now();
    rc = rc ? rc : open_tok(&o, rot, &e);
    double t_load = now() - t0;
    CHECK(rc == 0, "load: %s", e.msg);
    if (!rc) {
        fprintf(stderr, "llama3 tokenizer: built in %.0f ms, opened in %.2f ms\n", t_build * 1e3, t_load * 1e3);
        if (argc > 1 && !strcmp(argv[1], "--bench")) {
            printf("llama3 tokenizer.json to .rotor vocabulary: %.0f ms; opening it: %.2f ms\n", t_build * 1e3,
                   t_load * 1e3);
            printf("llama3 ");
            rc = bench(o.t, argc > 2 ? argv[2] : NULL);
            close_tok(&o);
            /* Qwen2: no ignore_merges, so every word goes through the merges */
            char gz[512], q[512];
            snprintf(gz, sizeof gz, "%s/tiny-bitnet-embed/tokenizer.json.gz", test_fixtures());
            snprintf(q, sizeof q, "%s/qwen.rotor", tmpdir);
            char *qj = gunzip(gz, &len);
            if (qj && !build_rotor(qj, len, q, &e) && !open_tok(&o, q, &e)) {
                printf("qwen2  ");
                rc |= bench(o.t, argc > 2 ? argv[2] : NULL);
                close_tok(&o);
            }
            free(qj);
            unlink(q);
            unlink(rot);
            rmdir(tmpdir);
            return rc;
        }
        CHECK(rtr_tok_pre(o.t) == RTR_PRE_LLAMA3, "llama3 pre detected");
        test_vectors(o.t);
        test_peer(o.t);
        test_misc(o.t);
        test_damaged(&o.f);
        close_tok(&o);
    }
    test_detok();
    test_hf_errors();
    test_qwen2();
    /* GGUF-style arrays give the same tokenizer as tokenizer.json */
    {
        const char *toks[] = {"a", "b", "c", "ab", "abc", "Ġ", "Ġa", "<|x|>", "<u>"};
        int32_t types[] = {1, 1, 1, 1, 1, 1, 1, 3, 4};
        const char *merges[] = {"a b", "ab c", "Ġ a"};
        rtr_tok_src *s;
        rc = rtr_tok_src_from_arrays(&s, 9, toks, NULL, types, 3, merges, NULL, "qwen2", &e);
        CHECK(rc == 0, "from_arrays: %s", e.msg);
        if (!rc) {
            CHECK(rtr_tok_src_n_vocab(s) == 9 && rtr_tok_src_find(s, " a") == 6 && rtr_tok_src_find(s, "<u>") == 8, "src find");
            rtr_tok_src_free(s);
        }
        rc = rtr_tok_src_from_arrays(&s, 9, toks, NULL, types, 3, merges, NULL, "gpt4o", &e);
        CHECK(rc == RTR_EFORMAT, "unknown pre rejected");
        const char *badm[] = {"a q"};
        rc = rtr_tok_src_from_arrays(&s, 9, toks, NULL, types, 1, badm, NULL, "llama3", &e);
        CHECK(rc == RTR_EFORMAT && strstr(e.msg, "merge"), "merge of unknown token rejected: %s", e.msg);
    }
    unlink(rot);
    rmdir(tmpdir);
    return test_done("test_tokenizer");
}
