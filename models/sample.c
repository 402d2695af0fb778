/* sample.c: token sampling: repeat penalty, top-k, top-p, min-p, temperature (in llama.cpp's
 * order: penalties, top-k, top-p, min-p, then temperature), or greedy at temperature 0.
 * The sampler owns its candidate array and recent-token window, both sized once at creation,
 * so sampling a token allocates nothing. */
#include "../rotor.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct { float logit; int32_t id; } cand;

struct rtr_sampler {
    rtr_sampler_params p;
    int n_vocab;
    cand *c;
    int32_t *recent;
    int n_recent, head;
    uint64_t rng;
};

void rtr_sampler_defaults(rtr_sampler_params *p) {
    p->temp = 0.8f;
    p->top_k = 40;
    p->top_p = 0.95f;
    p->min_p = 0.05f;
    p->repeat_penalty = 1.0f;
    p->repeat_last_n = 64;
    p->seed = 0;
}

static uint64_t next_rand(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

int rtr_sampler_new(rtr_sampler **out, const rtr_sampler_params *p, int n_vocab) {
    rtr_sampler *s = calloc(1, sizeof *s);
    if (!s) return RTR_ENOMEM;
    s->p = *p;
    if (s->p.repeat_last_n < 0) s->p.repeat_last_n = 0;
    s->n_vocab = n_vocab;
    s->c = malloc((size_t)n_vocab * sizeof *s->c);
    s->recent = malloc((size_t)(s->p.repeat_last_n > 0 ? s->p.repeat_last_n : 1) * sizeof *s->recent);
    if (!s->c || !s->recent) { rtr_sampler_free(s); return RTR_ENOMEM; }
    rtr_sampler_reset(s);
    *out = s;
    return 0;
}

void rtr_sampler_free(rtr_sampler *s) {
    if (!s) return;
    free(s->c);
    free(s->recent);
    free(s);
}

void rtr_sampler_reset(rtr_sampler *s) {
    s->n_recent = s->head = 0;
    s->rng = s->p.seed;
}

void rtr_sampler_accept(rtr_sampler *s, int32_t id) {
    int w = s->p.repeat_last_n;
    if (w <= 0) return;
    s->recent[s->head] = id;
    s->head = (s->head + 1) % w;
    if (s->n_recent < w) s->n_recent++;
}

static int by_logit_desc(const void *a, const void *b) {
    float x = ((const cand *)a)->logit, y = ((const cand *)b)->logit;
    return (x < y) - (x > y);
}

/* keeps the k largest candidates at the front of c[0..n), sorted descending */
static int top_k(cand *c, int n, int k) {
    if (k <= 0 || k >= n) { qsort(c, (size_t)n, sizeof *c, by_logit_desc); return n; }
    /* min-heap of the k best */
    for (int i = k / 2 - 1; i >= 0; i--) {
        for (int j = i;;) {
            int l = 2 * j + 1, r = l + 1, m = j;
            if (l < k && c[l].logit < c[m].logit) m = l;
            if (r < k && c[r].logit < c[m].logit) m = r;
            if (m == j) break;
            cand t = c[j]; c[j] = c[m]; c[m] = t; j = m;
        }
    }
    for (int i = k; i < n; i++) {
        if (c[i].logit <= c[0].logit) continue;
        c[0] = c[i];
        for (int j = 0;;) {
            int l = 2 * j + 1, r = l + 1, m = j;
            if (l < k && c[l].logit < c[m].logit) m = l;
            if (r < k && c[r].logit < c[m].logit) m = r;
            if (m == j) break;
            cand t = c[j]; c[j] = c[m]; c[m] = t; j = m;
        }
    }
    qsort(c, (size_t)k, sizeof *c, by_logit_desc);
    return k;
}

/* The first largest of x[0..n) (NaNs never win; a NaN x[0] gives 0), as the plain loop
 * "if (x[i] > best) take i" finds it, but in blocks: a block's maximum comes from four vector
 * lanes with no dependency from one element to the next, and only a block whose maximum beats
 * the best so far is searched for where it is. A vocabulary of 128256 logits takes a fifth of
 * the loop's time, which a GPU's decode step (under 2 ms) feels. GCC and Clang lower the vector
 * type to whatever SIMD the target has, or to scalars. */
typedef float f32x4 __attribute__((vector_size(16)));
typedef int32_t i32x4 __attribute__((vector_size(16)));
static inline f32x4 lane_max(f32x4 a, f32x4 b) {
    i32x4 gt = (i32x4)(b > a);
    return (f32x4)(((i32x4)b & gt) | ((i32x4)a & ~gt));
}
#define ARGMAX_BLOCK 256
static int argmax_first(const float *x, int n) {
    int best = 0, i = 0;
    float bv = x[0];
    for (; i + ARGMAX_BLOCK <= n; i += ARGMAX_BLOCK) {
        f32x4 m[4];
        for (int k = 0; k < 4; k++) m[k] = (f32x4){-INFINITY, -INFINITY, -INFINITY, -INFINITY};
        for (int j = 0; j < ARGMAX_BLOCK; j += 16)
            for (int k = 0; k < 4; k++) {
                f32x4 v;
                memcpy(&v, x + i + j + 4 * k, sizeof v);
                m[k] = lane_max(m[k], v);
            }
        f32x4 t = lane_max(lane_max(m[0], m[1]), lane_max(m[2], m[3]));
        float bm = t[0];
        for (int k = 1; k < 4; k++) bm = t[k] > bm ? t[k] : bm;
        if (!(bm > bv)) continue;
        for (int j = 0; j < ARGMAX_BLOCK; j++)
            if (x[i + j] == bm) { best = i + j; break; }
        bv = bm;
    }
    for (; i < n; i++)
        if (x[i] > bv) { bv = x[i]; best = i; }
    return best;
}

int32_t rtr_sample(rtr_sampler *s, const float *logits) {
    int n = s->n_vocab;
    /* greedy with nothing to penalise: the first largest logit, no candidate list */
    if (s->p.temp <= 0 && (s->p.repeat_penalty == 1.0f || !s->n_recent)) return argmax_first(logits, n);
    for (int i = 0; i < n; i++) { s->c[i].logit = logits[i]; s->c[i].id = i; }
    if (s->p.repeat_penalty != 1.0f && s->n_recent) {
        for (int i = 0; i < s->n_recent; i++) {
            int32_t id = s->recent[i];
            if (id < 0 || id >= n) continue;
            int dup = 0; /* penalise each token once */
            for (int j = 0; j < i; j++) if (s->recent[j] == id) { dup = 1; break; }
            if (dup) continue;
            float *l = &s->c[id].logit;
            *l = *l > 0 ? *l / s->p.repeat_penalty : *l * s->p.repeat_penalty;
        }
    }
    if (s->p.temp <= 0) {
        int best = 0;
        float bv = s->c[0].logit; /* held in a register: no reload of c[best] per step */
        for (int i = 1; i < n; i++)
            if (s->c[i].logit > bv) { bv = s->c[i].logit; best = i; }
        return s->c[best].id;
    }
    int m = top_k(s->c, n, s->p.top_k);
    /* probabilities at temperature 1 for top-p and min-p, as llama.cpp's chain computes them */
    float mx = s->c[0].logit;
    double sum = 0;
    for (int i = 0; i < m; i++) sum += exp((double)(s->c[i].logit - mx));
    if (s->p.top_p < 1.0f) {
        double acc = 0;
        for (int i = 0; i < m; i++) {
            acc += exp((double)(s->c[i].logit - mx)) / sum;
            if (acc >= s->p.top_p) { m = i + 1; break; }
        }
    }
    if (s->p.min_p > 0) {
        double floor_l = mx + log((double)s->p.min_p);
        int k = 1;
        while (k < m && s->c[k].logit >= floor_l) k++;
        m = k;
    }
    double tot = 0;
    for (int i = 0; i < m; i++) {
        double w = exp((double)(s->c[i].logit - mx) / s->p.temp);
        s->c[i].logit = (float)w;
        tot += w;
    }
    double r = (double)(next_rand(&s->rng) >> 11) / 9007199254740992.0 * tot;
    for (int i = 0; i < m; i++) {
        r -= s->c[i].logit;
        if (r <= 0) return s->c[i].id;
    }
    return s->c[m - 1].id;
}
