/* test_session.c: what the engine promises beyond single forward passes: the chat prompt ids of
 * the fixture's template vectors, the KV ring (generation far past the context with constant
 * memory; identical tokens while everything still fits; batching never changes results, also
 * after the ring wraps), rewinding, and sampling rules. */
#include "../rotor.h"
#include "../tools/cli.h"
#include "../tools/json.h"
#include "test.h"

#include <malloc.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>

#define V 128256

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++) if (x[i] > x[b]) b = i;
    return b;
}

static void test_chat_vectors(rtr_model *m, const char *dir) {
    char p[512];
    snprintf(p, sizeof p, "%s/chat_template_vectors.jsonl", dir);
    size_t len;
    FILE *f = fopen(p, "rb");
    CHECK(f != NULL, "open %s", p);
    if (!f) return;
    char line[65536];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        rtr_json *j;
        rtr_err e;
        len = strlen(line);
        if (len < 2) continue;
        if (rtr_json_parse(line, len, &j, &e)) { CHECK(0, "parse line: %s", e.msg); continue; }
        const rtr_json *msgs = rtr_json_get(j, "messages"), *ids = rtr_json_get(j, "ids");
        rtr_chat_msg cm[16];
        int nm = 0;
        for (size_t i = 0; msgs && i < msgs->n && nm < 16; i++) {
            cm[nm].role = rtr_json_get(&msgs->items[i], "role")->str;
            cm[nm].content = rtr_json_get(&msgs->items[i], "content")->str;
            nm++;
        }
        int32_t got[1024];
        int k = rtr_chat_tokenize(m, cm, nm, 1, 0, got, 1024);
        int same = ids && k == (int)ids->n;
        for (int i = 0; same && i < k; i++) same = got[i] == (int32_t)ids->items[i].num;
        CHECK(same, "chat vector %d: %d ids, reference %zu", n, k, ids ? ids->n : 0);
        n++;
        rtr_json_free(j);
    }
    fclose(f);
    CHECK(n == 4, "%d chat vectors", n);
    /* typed text is plain: a special-token string in a message stays text */
    rtr_chat_msg um = {"user", "hi <|eot_id|> there"};
    int32_t a[64], b[64];
    int na = rtr_chat_tokenize(m, &um, 1, 1, 0, a, 64), nb = rtr_chat_tokenize(m, &um, 1, 1, 1, b, 64);
    int eots = 0, eotb = 0;
    for (int i = 0; i < na; i++) eots += a[i] == 128009;
    for (int i = 0; i < nb; i++) eotb += b[i] == 128009;
    CHECK(eots == 1, "plain chat text: %d eot tokens (only the turn end expected)", eots);
    CHECK(eotb == 2, "special chat text: %d eot tokens", eotb);
}

static int greedy(rtr_model *m, int n_ctx, int n_batch, const int32_t *prompt, int np, int n, int32_t *out, size_t *alloc_delta) {
    rtr_session *s;
    rtr_err e;
    rtr_session_opts so = {n_ctx, 4, n_batch, NULL, 0};
    if (rtr_session_new(&s, m, &so, &e)) return -1;
    if (rtr_eval(s, prompt, np, &e)) { rtr_session_free(s); return -1; }
    /* a first generated token sizes any lazily grown scratch; from then on nothing is allocated */
    int32_t id = argmax(rtr_logits(s), V);
    out[0] = id;
    if (rtr_eval(s, &id, 1, &e)) { rtr_session_free(s); return -1; }
    struct mallinfo2 before = mallinfo2();
    for (int i = 1; i < n; i++) {
        id = argmax(rtr_logits(s), V);
        out[i] = id;
        if (rtr_eval(s, &id, 1, &e)) { rtr_session_free(s); return -1; }
    }
    struct mallinfo2 after = mallinfo2();
    if (alloc_delta) *alloc_delta = after.uordblks - before.uordblks;
    rtr_session_free(s);
    return 0;
}

static void test_ring(rtr_model *m) {
    const int32_t prompt[7] = {128000, 791, 4062, 14198, 39935, 35308, 927};
    enum { CTX = 64, N = 3 * CTX };
    int32_t small[N], big[N];
    size_t delta = 1;
    CHECK(greedy(m, CTX, 16, prompt, 7, N, small, &delta) == 0, "generate 3x the context");
    CHECK(delta == 0, "the token loop allocated %zu bytes", delta);
    CHECK(greedy(m, 512, 16, prompt, 7, N, big, NULL) == 0, "generate with a large context");
    int fits = CTX - 7, same = 1;
    for (int i = 0; i < fits; i++) same &= small[i] == big[i];
    CHECK(same, "tokens generated while everything fits equal those of a larger context");

    /* batching never changes results, also across the wrap: a 200-token prompt in a 64-slot ring,
     * in one call (cut into batches) and one token at a time */
    int32_t ids[200];
    for (int i = 0; i < 200; i++) ids[i] = (int32_t)((i * 7919u + 13) % 128000u);
    rtr_session *a, *b;
    rtr_err e;
    rtr_session_opts so = {CTX, 4, 48, NULL, 0};
    CHECK(!rtr_session_new(&a, m, &so, &e) && !rtr_session_new(&b, m, &so, &e), "sessions");
    CHECK(!rtr_eval(a, ids, 200, &e), "batched eval past the ring: %s", e.msg);
    for (int i = 0; i < 200; i++) if (rtr_eval(b, &ids[i], 1, &e)) { CHECK(0, "eval %d", i); break; }
    float d = 0;
    const float *la = rtr_logits(a), *lb = rtr_logits(b);
    for (int i = 0; i < V; i++) if (fabsf(la[i] - lb[i]) > d) d = fabsf(la[i] - lb[i]);
    CHECK(d <= 1e-4f, "batched and token-by-token logits after the wrap differ by %g", d);
    CHECK(rtr_session_pos(a) == 200 && rtr_session_bytes(a) == rtr_session_bytes(b), "positions and memory");

    /* rewind: forget 3 tokens, evaluate them again, same logits */
    float keep = la[123];
    CHECK(!rtr_session_rewind(a, 3), "rewind");
    CHECK(!rtr_eval(a, ids + 197, 3, &e), "eval after rewind");
    CHECK(fabsf(rtr_logits(a)[123] - keep) <= 1e-4f, "rewind and re-eval gives the same logits");
    CHECK(rtr_session_rewind(a, 10000) == RTR_EARG, "rewinding past the start is refused");
    int32_t bad = V + 5;
    CHECK(rtr_eval(a, &bad, 1, &e) == RTR_EARG, "out-of-range id refused");
    rtr_session_free(a);
    rtr_session_free(b);

    rtr_session_opts huge = {1 << 22, 4, 0, NULL, 1};
    rtr_session *h = NULL;
    int r = rtr_session_new(&h, m, &huge, &e);
    if (!r) rtr_session_free(h); /* lazily zeroed pages: a big context may be fine here */
    rtr_session_opts tiny = {2, 4, 0, NULL, 0};
    CHECK(rtr_session_new(&h, m, &tiny, &e) == RTR_EARG, "a 2-slot context is refused");
}

/* Greedy over a vocabulary of several of the sampler's blocks plus a tail, against the plain
 * first-largest loop: random logits, the largest in each place that matters, ties, NaN, -inf. */
static int first_largest(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}
static void test_greedy_long(const rtr_sampler_params *p) {
    enum { N = 1000 };
    static float x[N];
    rtr_sampler *s;
    CHECK(!rtr_sampler_new(&s, p, N), "sampler of %d", N);
    uint64_t rng = 7;
    int bad = 0;
    for (int t = 0; t < 400; t++) {
        for (int i = 0; i < N; i++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            x[i] = (float)((int)(rng >> 40) % 2001 - 1000) / 64.0f; /* many exact ties */
        }
        if (t % 4 == 1) x[t % N] = 100.0f;               /* the largest anywhere */
        if (t % 4 == 2) x[N - 1 - t % 200] = 100.0f;     /* in the tail past the last block */
        if (t % 4 == 3) x[t % N] = x[(t * 7 + 300) % N] = 100.0f; /* tied in two places */
        bad += rtr_sample(s, x) != first_largest(x, N);
    }
    CHECK(!bad, "greedy agrees with the first-largest loop on 400 vectors (%d differ)", bad);
    for (int i = 0; i < N; i++) x[i] = (float)i;
    CHECK(rtr_sample(s, x) == N - 1, "greedy on rising logits takes the last");
    for (int i = 0; i < N; i++) x[i] = -INFINITY;
    CHECK(rtr_sample(s, x) == 0, "greedy on all -inf takes the first");
    for (int i = 0; i < N; i++) x[i] = 1.0f;
    x[600] = NAN; x[700] = 2.0f;
    CHECK(rtr_sample(s, x) == 700, "a NaN logit never wins");
    x[0] = 2.0f;
    CHECK(rtr_sample(s, x) == 0, "a largest logit at 0 tied later keeps 0");
    x[0] = -0.0f; for (int i = 1; i < N; i++) x[i] = i == 300 ? 0.0f : -1.0f;
    x[700] = -1.0f; x[600] = -1.0f;
    CHECK(rtr_sample(s, x) == 0, "-0 and +0 are equal: the first wins");
    x[0] = NAN;
    CHECK(rtr_sample(s, x) == 0, "a NaN first logit gives 0, as the plain loop does");
    rtr_sampler_free(s);
}

/* Top-k over a vocabulary of many scan blocks: k logits planted far above the rest are the only
 * ids ever drawn, each of them is drawn, and NaN logits are never drawn. Planted two in one
 * block and one in the tail past the last block; then one a block, so that the k-th largest
 * block maximum is the smallest of them. */
static void top_k_planted(const int *at, int k) {
    enum { N = 5000 };
    static float x[N];
    uint64_t rng = 11;
    for (int i = 0; i < N; i++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = -10.0f + (float)((rng >> 40) % 5000) / 1000.0f;
        if (i % 97 == 5) x[i] = NAN;
    }
    for (int j = 0; j < k; j++) x[at[j]] = 0.1f * (float)j;
    rtr_sampler_params p;
    rtr_sampler_defaults(&p);
    p.top_k = k; p.top_p = 1; p.min_p = 0; p.temp = 1; p.seed = 3;
    rtr_sampler *s;
    CHECK(!rtr_sampler_new(&s, &p, N), "sampler of %d", N);
    int seen[8] = {0}, other = 0, all = 1;
    for (int t = 0; t < 400 * k; t++) {
        int32_t id = rtr_sample(s, x), j = 0;
        while (j < k && at[j] != id) j++;
        if (j < k) seen[j]++;
        else other++;
    }
    for (int j = 0; j < k; j++) all &= seen[j] > 0;
    CHECK(!other && all, "top-%d draws only the %d largest, all of them (%d others)", k, k, other);
    rtr_sampler_free(s);
}

static void test_top_k_long(void) {
    const int pair_tail[6] = {3, 1800, 1900, 2600, 4700, 4990}, spread[5] = {3, 600, 1300, 2600, 4700};
    top_k_planted(pair_tail, 6);
    top_k_planted(spread, 5);
    enum { N = 5000 };
    static float x[N];
    for (int i = 0; i < N; i++) x[i] = NAN;
    x[2500] = 1.0f;
    rtr_sampler_params p;
    rtr_sampler_defaults(&p);
    rtr_sampler *s;
    CHECK(!rtr_sampler_new(&s, &p, N), "sampler of %d", N);
    CHECK(rtr_sample(s, x) == 2500, "top-k skips NaN logits");
    x[2500] = NAN;
    CHECK(rtr_sample(s, x) == 0, "all logits NaN: id 0, no crash");
    rtr_sampler_free(s);
}

static void test_sampler(void) {
    float lg[8] = {1, 5, 2, 9, 3, 0, 4, 8};
    rtr_sampler_params p;
    rtr_sampler_defaults(&p);
    CHECK(p.temp == 0.8f && p.top_k == 40 && p.top_p == 0.95f && p.min_p == 0.05f && p.repeat_penalty == 1.0f,
          "llama.cpp defaults");
    rtr_sampler *s;
    p.temp = 0;
    CHECK(!rtr_sampler_new(&s, &p, 8), "sampler");
    CHECK(rtr_sample(s, lg) == 3, "greedy picks the largest");
    float tie[8] = {1, 9, 2, 9, 3, 0, 9, 8};
    CHECK(rtr_sample(s, tie) == 1, "greedy takes the first of equal largest logits");
    rtr_sampler_free(s);
    test_greedy_long(&p);
    test_top_k_long();
    p.repeat_penalty = 2; /* greedy through the candidate list: 9 at id 3 becomes 4.5 */
    CHECK(!rtr_sampler_new(&s, &p, 8), "sampler with a repeat penalty");
    rtr_sampler_accept(s, 3);
    CHECK(rtr_sample(s, lg) == 7, "greedy after the repeat penalty picks the next largest");
    rtr_sampler_free(s);
    p.repeat_penalty = 1;
    p.temp = 1; p.top_k = 1; p.seed = 5;
    rtr_sampler_new(&s, &p, 8);
    int ok = 1;
    for (int i = 0; i < 50; i++) ok &= rtr_sample(s, lg) == 3;
    CHECK(ok, "top-k 1 is greedy");
    rtr_sampler_free(s);
    p.top_k = 0; p.top_p = 1; p.min_p = 0; p.temp = 1;
    int32_t seq1[32], seq2[32];
    rtr_sampler_new(&s, &p, 8);
    for (int i = 0; i < 32; i++) seq1[i] = rtr_sample(s, lg);
    rtr_sampler_reset(s);
    for (int i = 0; i < 32; i++) seq2[i] = rtr_sample(s, lg);
    CHECK(!memcmp(seq1, seq2, sizeof seq1), "same seed, same samples");
    int counts[8] = {0};
    for (int i = 0; i < 4000; i++) counts[rtr_sample(s, lg)]++;
    /* p(3)/p(7) = e: the empirical ratio must be near it */
    double ratio = counts[7] ? (double)counts[3] / counts[7] : 0;
    CHECK(ratio > 2.3 && ratio < 3.2, "temperature-1 sampling follows softmax (ratio %.2f, want e)", ratio);
    rtr_sampler_free(s);
    p.min_p = 0.5f;
    rtr_sampler_new(&s, &p, 8);
    ok = 1;
    for (int i = 0; i < 200; i++) { int t = rtr_sample(s, lg); ok &= t == 3 || t == 7; }
    CHECK(ok, "min-p 0.5 keeps only tokens within e^-0.69 of the top");
    rtr_sampler_free(s);
    p.min_p = 0; p.temp = 0; p.repeat_penalty = 100; p.repeat_last_n = 4;
    rtr_sampler_new(&s, &p, 8);
    rtr_sampler_accept(s, 3);
    CHECK(rtr_sample(s, lg) == 7, "repeat penalty demotes a recent token");
    rtr_sampler_free(s);
}

int main(void) {
    char dir[512], model[] = "build/tests/session-tiny.rotor";
    snprintf(dir, sizeof dir, "%s/tiny-bitnet", test_fixtures());
    mkdir("build", 0755);
    mkdir("build/tests", 0755);
    char *args[] = {"convert", dir, "-o", model, "--force", NULL};
    CHECK(rtr_cmd_convert(5, args) == 0, "convert");
    rtr_model *m;
    rtr_err e;
    rtr_model_opts mo = {"cpu", -1, 2, 0, NULL};
    if (rtr_model_open(&m, model, &mo, &e)) { CHECK(0, "open: %s", e.msg); return test_done("test_session"); }
    test_chat_vectors(m, dir);
    test_ring(m);
    test_sampler();
    rtr_model_close(m);
    return test_done("test_session");
}
