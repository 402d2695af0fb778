/* cpu.c: the CPU backend: host buffers (weights alias the mapped file), every op of backend.h
 * run at once on the thread pool with the kernel set chosen for this CPU. It is also the
 * reference the GPU backends are tested against. */
#include "backend.h"
#include "cpu_pool.h"
#include "../kernels/kernels.h"
#include "../models/format.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct rtr_buf {
    uint8_t *p;
    size_t size;
    int owned;
};

typedef struct {
    float *f;     /* f32 scratch */
    int8_t *q;    /* int8 scratch */
    int32_t *i;   /* int32 scratch */
    size_t nf, nq, ni;
} scratch;

typedef struct {
    rtr_backend base;
    const rtr_kernels *k;
    rtr_pool *pool;
    scratch *sc; /* one per thread */
    int nth;
} cpu_backend;

#define PTR(ref) ((ref).buf->p + (ref).off)
#define F32(ref) ((float *)PTR(ref))

static int grow(void **p, size_t *have, size_t want, size_t elt) {
    if (*have >= want) return 0;
    void *n = realloc(*p, want * elt);
    if (!n) return -1;
    *p = n;
    *have = want;
    return 0;
}

/* Scratch grows on the first batch of a given size and is then reused: the token loop does not
 * allocate once the first token has run. */
static int reserve(cpu_backend *b, size_t nf, size_t nq, size_t ni) {
    for (int t = 0; t < b->nth; t++) {
        scratch *s = &b->sc[t];
        if (grow((void **)&s->f, &s->nf, nf, 4) || grow((void **)&s->q, &s->nq, nq, 1) ||
            grow((void **)&s->i, &s->ni, ni, 4))
            return RTR_ENOMEM;
    }
    return 0;
}

static void split(int n, int ith, int nth, int align, int *lo, int *hi) {
    int chunks = (n + align - 1) / align;
    int per = chunks / nth, rem = chunks % nth;
    int c0 = ith * per + (ith < rem ? ith : rem), c1 = c0 + per + (ith < rem);
    *lo = c0 * align;
    *hi = c1 * align < n ? c1 * align : n;
}

/* ---- buffers ---- */
static rtr_buf *cpu_buf_new(rtr_backend *be, size_t bytes, const void *host, int flags, rtr_err *err) {
    (void)be;
    rtr_buf *b = calloc(1, sizeof *b);
    if (!b) { rtr_seterr(err, RTR_ENOMEM, "out of memory"); return NULL; }
    b->size = bytes;
    if (host && (flags & RTR_BUF_WEIGHT)) { b->p = (uint8_t *)host; return b; }
    size_t sz = (bytes + 63) / 64 * 64;
    /* calloc: large zeroed buffers (the KV ring) come as untouched pages, so a context too big
     * for this machine fails here instead of later */
    b->p = host ? aligned_alloc(64, sz ? sz : 64) : calloc(1, sz ? sz : 64);
    if (!b->p) { free(b); rtr_seterr(err, RTR_ENOMEM, "out of memory allocating %zu MB", bytes >> 20); return NULL; }
    b->owned = 1;
    if (host) memcpy(b->p, host, bytes);
    return b;
}
static void cpu_buf_free(rtr_backend *be, rtr_buf *b) {
    (void)be;
    if (!b) return;
    if (b->owned) free(b->p);
    free(b);
}
static int cpu_buf_write(rtr_backend *be, rtr_buf *b, size_t off, const void *src, size_t n, rtr_err *err) {
    (void)be;
    if (!b->owned || off > b->size || n > b->size - off) return rtr_seterr(err, RTR_EARG, "cpu: write out of bounds");
    memcpy(b->p + off, src, n);
    return 0;
}
static int cpu_buf_read(rtr_backend *be, rtr_buf *b, size_t off, void *dst, size_t n, rtr_err *err) {
    (void)be;
    if (off > b->size || n > b->size - off) return rtr_seterr(err, RTR_EARG, "cpu: read out of bounds");
    memcpy(dst, b->p + off, n);
    return 0;
}
static const void *cpu_buf_view(rtr_backend *be, rtr_buf *b, size_t off, size_t n, rtr_err *err) {
    (void)be;
    if (off > b->size || n > b->size - off) {
        rtr_seterr(err, RTR_EARG, "cpu: view out of bounds");
        return NULL;
    }
    return b->p + off;
}
static int cpu_begin(rtr_backend *be, rtr_err *err) { (void)be; (void)err; return 0; }
static int cpu_end(rtr_backend *be, rtr_err *err) { (void)be; (void)err; return 0; }

/* ---- ops ---- */
typedef struct { cpu_backend *b; const rtr_op *op; } job;

static void row_to_f32(int type, const uint8_t *base, size_t row, int d, float *out) {
    switch (type) {
    case RTR_T_F32: memcpy(out, base + row * (size_t)d * 4, (size_t)d * 4); break;
    case RTR_T_F16: { const uint16_t *s = (const uint16_t *)base + row * (size_t)d; for (int i = 0; i < d; i++) out[i] = rtr_f16_to_f32(s[i]); break; }
    case RTR_T_BF16: { const uint16_t *s = (const uint16_t *)base + row * (size_t)d; for (int i = 0; i < d; i++) out[i] = rtr_bf16_to_f32(s[i]); break; }
    }
}

static void op_embed(void *v, int ith, int nth) {
    job *j = v;
    const rtr_op *op = j->op;
    int lo, hi;
    split(op->rows, ith, nth, 1, &lo, &hi);
    const int32_t *ids = (const int32_t *)PTR(op->b);
    const uint8_t *tab = PTR(op->a);
    int d = op->p.emb.d;
    for (int r = lo; r < hi; r++) {
        float *out = F32(op->dst) + (size_t)r * d;
        size_t id = (size_t)ids[r];
        if (op->p.emb.type == RTR_T_Q8R) {
            size_t rb = rtr_q8r_row_bytes((uint64_t)d);
            const int8_t *s = (const int8_t *)tab + id * rb;
            float sc;
            memcpy(&sc, tab + (size_t)op->p.emb.n_rows * rb + id * 4, 4);
            for (int i = 0; i < d; i++) out[i] = s[i] * sc;
        } else row_to_f32(op->p.emb.type, tab, id, d, out);
        if (op->p.emb.scale != 1.0f)
            for (int i = 0; i < d; i++) out[i] *= op->p.emb.scale;
    }
}

/* The sum of x[i]^2 in eight running sums, one a lane of a vector register, joined at the end:
 * a single running sum makes every addition wait for the one before (a norm of 2560 took as
 * long as the rest of its row's work). */
static float sum_sq(const float *x, int n) {
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) acc[k] += x[i + k] * x[i + k];
    for (; i < n; i++) acc[i & 7] += x[i] * x[i];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

static void op_rmsnorm(void *v, int ith, int nth) {
    job *j = v;
    const rtr_op *op = j->op;
    int lo, hi, n = op->p.norm.n, kpad = (int)rtr_t2_kpad((uint64_t)n);
    split(op->rows, ith, nth, 1, &lo, &hi);
    const float *w = op->c.buf ? F32(op->c) : NULL;
    float *tmp = j->b->sc[ith].f;
    for (int r = lo; r < hi; r++) {
        float *x = F32(op->a) + (size_t)r * n;
        if (op->b.buf) {
            const float *d = F32(op->b) + (size_t)r * n;
            for (int i = 0; i < n; i++) x[i] += d[i];
        }
        float ss = sum_sq(x, n);
        float inv = 1.0f / sqrtf(ss / (float)n + op->p.norm.eps);
        float *y = op->dst.buf ? F32(op->dst) + (size_t)r * n : tmp;
        for (int i = 0; i < n; i++) y[i] = x[i] * inv * (w ? w[i] : 1.0f);
        if (op->dst2.buf) {
            int32_t sum;
            float s = j->b->k->quant_row(y, n, kpad, (int8_t *)PTR(op->dst2) + (size_t)r * kpad, &sum);
            F32(op->dst3)[r] = s;
        }
    }
}

static void op_quant(void *v, int ith, int nth) {
    job *j = v;
    const rtr_op *op = j->op;
    int lo, hi, n = op->p.norm.n, kpad = (int)rtr_t2_kpad((uint64_t)n);
    split(op->rows, ith, nth, 1, &lo, &hi);
    for (int r = lo; r < hi; r++) {
        int32_t sum;
        F32(op->dst3)[r] = j->b->k->quant_row(F32(op->a) + (size_t)r * n, n, kpad,
                                               (int8_t *)PTR(op->dst2) + (size_t)r * kpad, &sum);
    }
}

#define MM_ROWS 64 /* rows of one weight chunk: the int32 scratch holds MM_ROWS x tokens */

static void op_matmul_t2(void *v, int ith, int nth) {
    job *j = v;
    const rtr_op *op = j->op;
    const rtr_kernels *k = j->b->k;
    int ntok = op->rows, kk = op->p.mm.k, kpad = (int)rtr_t2_kpad((uint64_t)kk);
    size_t rb = rtr_t2_row_bytes((uint64_t)kk);
    const int8_t *x = (const int8_t *)PTR(op->a);
    const float *xs = F32(op->b);
    int32_t *xsum = j->b->sc[ith].i, *acc = xsum + ntok;
    for (int t = 0; t < ntok; t++) {
        int32_t s = 0;
        const int8_t *q = x + (size_t)t * kpad;
        for (int i = 0; i < kpad; i++) s += q[i];
        xsum[t] = s;
    }
    int total = 0;
    for (int m = 0; m < op->p.mm.n_mat; m++) total += op->p.mm.n[m];
    int lo, hi;
    split(total, ith, nth, 16, &lo, &hi);
    int base = 0;
    for (int m = 0; m < op->p.mm.n_mat; m++) {
        int n = op->p.mm.n[m];
        int a0 = lo > base ? lo - base : 0, a1 = hi - base < n ? hi - base : n;
        const uint8_t *w = PTR(op->p.mm.w[m]);
        float *out = F32(op->p.mm.out[m]);
        float alpha = op->p.mm.alpha[m];
        for (int r0 = a0; r0 < a1; r0 += MM_ROWS) {
            int nr = a1 - r0 < MM_ROWS ? a1 - r0 : MM_ROWS;
            k->t2_gemm(w + (size_t)r0 * rb, rb, nr, x, xsum, kpad, ntok, acc, MM_ROWS);
            for (int t = 0; t < ntok; t++) {
                float f = alpha * xs[t];
                float *o = out + (size_t)t * n + r0;
                const int32_t *a = acc + (size_t)t * MM_ROWS;
                if (op->p.mm.accum) for (int r = 0; r < nr; r++) o[r] += (float)a[r] * f;
                else for (int r = 0; r < nr; r++) o[r] = (float)a[r] * f;
            }
        }
        base += n;
    }
}

static void op_matmul_f(void *v, int ith, int nth) {
    job *j = v;
    const rtr_op *op = j->op;
    const rtr_kernels *k = j->b->k;
    int n = op->p.mf.n, kk = op->p.mf.k, ntok = op->rows, lo, hi;
    split(n, ith, nth, 16, &lo, &hi);
    if (lo >= hi) return;
    const float *x = F32(op->a);
    float *y = F32(op->dst);
    const uint8_t *w = PTR(op->p.mm.w[0]);
    switch (op->p.mf.type) {
    case RTR_T_F16:
        k->f16_gemm((const uint16_t *)w + (size_t)lo * kk, hi - lo, kk, x, ntok, y + lo, (size_t)n);
        break;
    case RTR_T_BF16:
        k->bf16_gemm((const uint16_t *)w + (size_t)lo * kk, hi - lo, kk, x, ntok, y + lo, (size_t)n);
        break;
    case RTR_T_F32:
        for (int t = 0; t < ntok; t++)
            for (int r = lo; r < hi; r++) {
                const float *wr = (const float *)w + (size_t)r * kk, *xr = x + (size_t)t * kk;
                float s = 0;
                for (int i = 0; i < kk; i++) s += wr[i] * xr[i];
                y[(size_t)t * n + r] = s;
            }
        break;
    case RTR_T_Q8R: {
        const float *scale = (const float *)(w + (size_t)n * rtr_q8r_row_bytes((uint64_t)kk));
        int kq = (int)rtr_q8r_row_bytes((uint64_t)kk);
        k->q8f_gemm((const int8_t *)w + (size_t)lo * kq, scale + lo, hi - lo, kk, x, ntok, y + lo, (size_t)n);
        break;
    }
    }
}

static void op_rope(void *v, int ith, int nth) {
    job *j = v;
    const rtr_op *op = j->op;
    int nh = op->p.rope.n_head, hd = op->p.rope.head_dim, rd = op->p.rope.rot_dim, half = rd / 2, lo, hi;
    split(op->rows, ith, nth, 1, &lo, &hi);
    const int32_t *pos = (const int32_t *)PTR(op->b);
    float *cs = j->b->sc[ith].f, *sn = cs + half;
    for (int r = lo; r < hi; r++) {
        for (int i = 0; i < half; i++) {
            /* float32 angles, as the reference computes them */
            float inv = rtr_rope_inv_freq(op->p.rope.theta, i, rd);
            float ang = (float)pos[r] * inv;
            cs[i] = (float)cos((double)ang);
            sn[i] = (float)sin((double)ang);
        }
        for (int h = 0; h < nh; h++) {
            float *x = F32(op->a) + ((size_t)r * nh + h) * hd;
            for (int i = 0; i < half; i++) {
                float x0 = x[i], x1 = x[i + half];
                x[i] = x0 * cs[i] - x1 * sn[i];
                x[i + half] = x1 * cs[i] + x0 * sn[i];
            }
        }
    }
}

static void op_kv_store(void *v, int ith, int nth) {
    job *j = v;
    const rtr_op *op = j->op;
    int n = op->p.kv.n, lo, hi;
    split(op->rows, ith, nth, 1, &lo, &hi);
    const int32_t *slot = (const int32_t *)PTR(op->c);
    /* slots that fit in both caches; any other is skipped, as the GPU backends do */
    size_t row = (size_t)n * (op->p.kv.type == RTR_T_F32 ? 4 : 2);
    size_t kcap = op->dst.off <= op->dst.buf->size ? (op->dst.buf->size - op->dst.off) / row : 0;
    size_t vcap = op->dst2.off <= op->dst2.buf->size ? (op->dst2.buf->size - op->dst2.off) / row : 0;
    for (int r = lo; r < hi; r++) {
        if (slot[r] < 0 || (size_t)slot[r] >= kcap || (size_t)slot[r] >= vcap) continue;
        const float *ks = F32(op->a) + (size_t)r * n, *vs = F32(op->b) + (size_t)r * n;
        if (op->p.kv.type == RTR_T_F32) {
            memcpy(F32(op->dst) + (size_t)slot[r] * n, ks, (size_t)n * 4);
            memcpy(F32(op->dst2) + (size_t)slot[r] * n, vs, (size_t)n * 4);
            continue;
        }
        uint16_t *kd = (uint16_t *)PTR(op->dst) + (size_t)slot[r] * n;
        uint16_t *vd = (uint16_t *)PTR(op->dst2) + (size_t)slot[r] * n;
        for (int i = 0; i < n; i++) { kd[i] = rtr_f32_to_f16(ks[i]); vd[i] = rtr_f32_to_f16(vs[i]); }
    }
}

/* e^(s[i] - mx) into s[i] (0 where s[i] is -inf, all 0 when mx is), returning their sum: the
 * softmax's exponentials, four at a time on GCC/Clang vector types (SSE2 or NEON, or scalars),
 * about three times libm's expf on one core, which decode and prompts over a deep ring feel.
 * e^x for x <= 0: n = round(x / ln 2) by the 1.5 * 2^23 trick, r = x - n ln 2 in two parts
 * (Cody-Waite), e^r from Cephes' degree-6 polynomial, times 2^n built in the exponent bits;
 * within 1.3 ulp of e^x in float64 over [-87.3, 0], 0 below. */
typedef float f32x4 __attribute__((vector_size(16)));
typedef int32_t i32x4 __attribute__((vector_size(16)));
static inline f32x4 exp4_nonpos(f32x4 x) {
    const f32x4 lo = {-87.33654f, -87.33654f, -87.33654f, -87.33654f}, magic = {12582912.0f, 12582912.0f, 12582912.0f, 12582912.0f};
    i32x4 under = x < lo;
    x = (f32x4)(((i32x4)x & ~under) | ((i32x4)lo & under));
    f32x4 t = x * 1.44269504088896341f + magic, n = t - magic;
    i32x4 ni = (i32x4)t - (i32x4)magic; /* the low mantissa bits of t hold n */
    f32x4 r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    f32x4 p = 1.9875691500e-4f * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    return (f32x4)((i32x4)(p * (f32x4)((ni + 127) << 23)) & ~under);
}

static float exp_sum(float *s, int n, float mx) {
    if (mx == -INFINITY) {
        memset(s, 0, (size_t)n * sizeof *s);
        return 0;
    }
    f32x4 acc = {0, 0, 0, 0};
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        f32x4 v;
        memcpy(&v, s + i, sizeof v);
        v = exp4_nonpos(v - mx);
        memcpy(s + i, &v, sizeof v);
        acc += v;
    }
    float sum = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for (; i < n; i++) {
        f32x4 v = {s[i] - mx, 0, 0, 0};
        sum += s[i] = exp4_nonpos(v)[0];
    }
    return sum;
}

/* Attention works on items of one KV head, the query heads that share it (a GQA group, or one
 * head when there are too few items to keep every thread busy) and ATTN_RB consecutive query
 * rows. The cached rows any of those rows may see are gathered once; scores and weighted sums
 * then go through them ATTN_CHUNK at a time, each chunk's K (or V) rows staying in L1 while
 * every query of the item uses them. A query's slots that its own row may not see (the causal
 * mask, the window) get no weight. */
#define ATTN_RB 4
#define ATTN_CHUNK 32

/* 0, 1, ..., ATTN_CHUNK - 1: the row list of a packed chunk */
static const int32_t attn_ident[ATTN_CHUNK] = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10,
                                               11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21,
                                               22, 23, 24, 25, 26, 27, 28, 29, 30, 31};

/* The cache rows of one chunk as the attention kernels read them: in place (rows `stride`
 * elements apart, picked by idx), or, when several queries will read them, copied next to one
 * another into pack first. In the cache they lie n_kv * head_dim elements apart, often a
 * multiple of 4 KiB, where every row of a chunk falls into the same L1 sets and evicts the
 * others before the next query of the item reads them. esz: bytes per element. */
typedef struct {
    const void *rows;
    size_t stride;
    const int32_t *idx;
} attn_chunk;

static attn_chunk attn_rows(float *pack, const void *base, size_t stride, size_t esz, const int32_t *idx,
                            int n, int hd, int do_pack) {
    if (!do_pack) return (attn_chunk){base, stride, idx};
    size_t rb = (size_t)hd * esz;
    for (int i = 0; i < n; i++) memcpy((char *)pack + (size_t)i * rb, (const char *)base + (size_t)idx[i] * stride * esz, rb);
    return (attn_chunk){pack, (size_t)hd, attn_ident};
}

static inline int attn_visible(int sp, int p, int n_sink, int window) {
    return sp >= 0 && sp <= p && (sp < n_sink || p - sp < window);
}

static int attn_heads_per_item(const rtr_op *op, int nth) {
    int grp = op->p.attn.n_head / op->p.attn.n_kv, nblk = (op->rows + ATTN_RB - 1) / ATTN_RB;
    return op->p.attn.n_kv * nblk >= 4 * nth ? grp : 1;
}

/* An item's queries: hpi heads of each of its rows, query qi at element offset
 * (qi / hpi) * row + (qi % hpi) * head from a base (of q, and likewise of where its result goes). */
typedef struct { size_t row, head; int hpi; } attn_qmap;
static inline size_t attn_at(attn_qmap m, int qi) { return (size_t)(qi / m.hpi) * m.row + (size_t)(qi % m.hpi) * m.head; }

/* Scores of nq queries over the cached K rows idx[0..m): query qi's into sc + qi * ld, a chunk of
 * rows at a time, packed when several queries read it. */
static void attn_scores(const rtr_kernels *k, const rtr_op *op, const char *kbase, const int32_t *idx, int m,
                        const float *q, attn_qmap qm, int nq, float *sc, size_t ld, float *pack) {
    int hd = op->p.attn.head_dim, f32 = op->p.attn.kv_type == RTR_T_F32;
    size_t esz = f32 ? 4 : 2, stride = (size_t)op->p.attn.n_kv * hd;
    for (int i0 = 0; i0 < m; i0 += ATTN_CHUNK) {
        int n = m - i0 < ATTN_CHUNK ? m - i0 : ATTN_CHUNK;
        attn_chunk c = attn_rows(pack, kbase, stride, esz, idx + i0, n, hd, nq > 1);
        for (int qi = 0; qi < nq; qi++) {
            float *srow = sc + (size_t)qi * ld + i0;
            if (f32) k->attn_dots_f32(q + attn_at(qm, qi), c.rows, c.stride, c.idx, n, hd, op->p.attn.scale, srow);
            else k->attn_dots_f16(q + attn_at(qm, qi), c.rows, c.stride, c.idx, n, hd, op->p.attn.scale, srow);
        }
    }
}

/* out + attn_at(om, qi) += sum_i (sc + qi * ld)[i] V[idx[i]] for each of nq queries */
static void attn_wsums(const rtr_kernels *k, const rtr_op *op, const char *vbase, const int32_t *idx, int m,
                       const float *sc, size_t ld, float *out, attn_qmap om, int nq, float *pack) {
    int hd = op->p.attn.head_dim, f32 = op->p.attn.kv_type == RTR_T_F32;
    size_t esz = f32 ? 4 : 2, stride = (size_t)op->p.attn.n_kv * hd;
    for (int i0 = 0; i0 < m; i0 += ATTN_CHUNK) {
        int n = m - i0 < ATTN_CHUNK ? m - i0 : ATTN_CHUNK;
        attn_chunk c = attn_rows(pack, vbase, stride, esz, idx + i0, n, hd, nq > 1);
        for (int qi = 0; qi < nq; qi++) {
            const float *pr = sc + (size_t)qi * ld + i0;
            if (f32) k->attn_wsum_f32(pr, c.rows, c.stride, c.idx, n, hd, out + attn_at(om, qi));
            else k->attn_wsum_f16(pr, c.rows, c.stride, c.idx, n, hd, out + attn_at(om, qi));
        }
    }
}

static void op_attn(void *v, int ith, int nth) {
    job *j = v;
    const rtr_op *op = j->op;
    const rtr_kernels *k = j->b->k;
    int nh = op->p.attn.n_head, nkv = op->p.attn.n_kv, hd = op->p.attn.head_dim, cap = op->p.attn.cap;
    int grp = nh / nkv, rows = op->rows, nblk = (rows + ATTN_RB - 1) / ATTN_RB;
    int hpi = attn_heads_per_item(op, nth), nsub = grp / hpi;
    int n_sink = op->p.attn.n_sink, window = op->p.attn.window;
    const int32_t *spos = (const int32_t *)PTR(op->d), *qpos = (const int32_t *)PTR(op->e);
    const float *Q = F32(op->a);
    float *O = F32(op->dst);
    int f32 = op->p.attn.kv_type == RTR_T_F32;
    float *sc = j->b->sc[ith].f; /* [query of the item][slot of the list], then the packed chunk */
    float *pack = sc + (size_t)ATTN_RB * hpi * cap;
    int32_t *idx = j->b->sc[ith].i;
    /* items dealt out in turn, row blocks fastest: later rows see more slots under the causal
     * mask, so contiguous ranges would leave the last thread most of the work */
    for (int it = ith; it < nkv * nsub * nblk; it += nth) {
        int blk = it % nblk, sub = it / nblk % nsub, kvh = it / nblk / nsub;
        int r0 = blk * ATTN_RB, nr = rows - r0 < ATTN_RB ? rows - r0 : ATTN_RB, h0 = kvh * grp + sub * hpi;
        int pmax = qpos[r0];
        for (int rr = 1; rr < nr; rr++) if (qpos[r0 + rr] > pmax) pmax = qpos[r0 + rr];
        /* before the ring wraps, position p sits in slot p: later slots cannot be visible */
        int last = pmax < cap ? pmax + 1 : cap, m = 0;
        for (int s = 0; s < last; s++)
            for (int rr = 0; rr < nr; rr++)
                if (attn_visible(spos[s], qpos[r0 + rr], n_sink, window)) { idx[m++] = s; break; }
        size_t esz = f32 ? 4 : 2, q0 = ((size_t)r0 * nh + h0) * hd; /* the item's first query row of q and dst */
        const char *kbase = (const char *)PTR(op->b) + (size_t)kvh * hd * esz;
        const char *vbase = (const char *)PTR(op->c) + (size_t)kvh * hd * esz;
        int nq = nr * hpi;
        attn_qmap qm = {(size_t)nh * hd, (size_t)hd, hpi};
        attn_scores(k, op, kbase, idx, m, Q + q0, qm, nq, sc, (size_t)m, pack);
        for (int qi = 0; qi < nq; qi++) {
            float *srow = sc + (size_t)qi * m;
            int p = qpos[r0 + qi / hpi];
            float mx = -INFINITY;
            for (int i = 0; i < m; i++) {
                if (nr > 1 && !attn_visible(spos[idx[i]], p, n_sink, window)) srow[i] = -INFINITY;
                else if (srow[i] > mx) mx = srow[i];
            }
            float sum = exp_sum(srow, m, mx), inv = sum > 0 ? 1.0f / sum : 0;
            for (int i = 0; i < m; i++) srow[i] *= inv;
            memset(O + q0 + attn_at(qm, qi), 0, (size_t)hd * 4);
        }
        attn_wsums(k, op, vbase, idx, m, sc, (size_t)m, O + q0, qm, nq, pack);
    }
}

/* Decode over a long ring (one query row, ATTN_SPLIT_MIN candidate slots or more): the
 * candidate slots are cut into S contiguous ranges, and an item is one KV head over one range
 * with every query head that shares it, so that each cached row is read once for the whole GQA
 * group (the items above would read it once a head) and every thread still has work. An item
 * leaves, for each of its heads, the range's largest score, the sum of exp(score - largest)
 * and the V rows weighted by those terms (not yet divided) in its thread's scratch;
 * attn_merge joins the ranges. */
#define ATTN_SPLIT_MIN 512
#define ATTN_SPLIT_SLOTS 256 /* candidate slots a range at least */

/* slots a one-row query may see: before the ring wraps, none past its own position */
static int attn_candidates(const rtr_op *op) {
    int p = ((const int32_t *)PTR(op->e))[0], cap = op->p.attn.cap;
    return p < 0 ? 0 : p < cap ? p + 1 : cap;
}

/* ranges S of the split path, or 0 where the op takes op_attn */
static int attn_ranges(const rtr_op *op, int nth) {
    if (op->rows != 1) return 0;
    int last = attn_candidates(op), nkv = op->p.attn.n_kv;
    if (last < ATTN_SPLIT_MIN) return 0;
    int s = (last + ATTN_SPLIT_SLOTS - 1) / ATTN_SPLIT_SLOTS, most = (4 * nth + nkv - 1) / nkv;
    return s < most ? s : most;
}

/* the partials of item `it` (head qi of its group): in the scratch of the thread that ran it */
static float *attn_part(const cpu_backend *b, const rtr_op *op, int it, int qi, int nth) {
    int grp = op->p.attn.n_head / op->p.attn.n_kv, hd = op->p.attn.head_dim;
    float *base = b->sc[it % nth].f + (size_t)grp * op->p.attn.cap + (size_t)ATTN_CHUNK * hd;
    return base + ((size_t)(it / nth) * grp + qi) * (hd + 2);
}

static void op_attn_ranges(void *v, int ith, int nth) {
    job *j = v;
    const rtr_op *op = j->op;
    const rtr_kernels *k = j->b->k;
    int nh = op->p.attn.n_head, nkv = op->p.attn.n_kv, hd = op->p.attn.head_dim, grp = nh / nkv;
    int last = attn_candidates(op), S = attn_ranges(op, nth), rng = (last + S - 1) / S;
    const int32_t *spos = (const int32_t *)PTR(op->d);
    int p = ((const int32_t *)PTR(op->e))[0], n_sink = op->p.attn.n_sink, window = op->p.attn.window;
    const float *Q = F32(op->a);
    size_t esz = op->p.attn.kv_type == RTR_T_F32 ? 4 : 2;
    float *sc = j->b->sc[ith].f, *pack = sc + (size_t)grp * op->p.attn.cap;
    int32_t *idx = j->b->sc[ith].i;
    for (int it = ith; it < nkv * S; it += nth) {
        int kvh = it / S, lo = it % S * rng, hi = lo + rng < last ? lo + rng : last, m = 0;
        for (int s = lo; s < hi; s++)
            if (attn_visible(spos[s], p, n_sink, window)) idx[m++] = s;
        const char *kbase = (const char *)PTR(op->b) + (size_t)kvh * hd * esz;
        const char *vbase = (const char *)PTR(op->c) + (size_t)kvh * hd * esz;
        attn_qmap qm = {0, (size_t)hd, grp}, pm = {0, (size_t)hd + 2, grp};
        float *part = attn_part(j->b, op, it, 0, nth); /* head qi's partials at part + qi * (hd + 2) */
        attn_scores(k, op, kbase, idx, m, Q + (size_t)kvh * grp * hd, qm, grp, sc, (size_t)rng, pack);
        for (int qi = 0; qi < grp; qi++) {
            float *srow = sc + (size_t)qi * rng, *pq = part + attn_at(pm, qi), mx = -INFINITY;
            for (int i = 0; i < m; i++) if (srow[i] > mx) mx = srow[i];
            pq[1] = exp_sum(srow, m, mx);
            pq[0] = mx;
            memset(pq + 2, 0, (size_t)hd * 4);
        }
        attn_wsums(k, op, vbase, idx, m, sc, (size_t)rng, part + 2, pm, grp, pack);
    }
}

/* out = sum_r acc_r e^(max_r - M) / sum_r sum_r e^(max_r - M) over the ranges r of each head */
static void attn_merge(const cpu_backend *b, const rtr_op *op, int S, int nth) {
    int nh = op->p.attn.n_head, nkv = op->p.attn.n_kv, hd = op->p.attn.head_dim, grp = nh / nkv;
    float *O = F32(op->dst);
    for (int h = 0; h < nh; h++) {
        int kvh = h / grp, qi = h % grp;
        float M = -INFINITY, L = 0, *out = O + (size_t)h * hd;
        for (int r = 0; r < S; r++) {
            float mr = attn_part(b, op, kvh * S + r, qi, nth)[0];
            if (mr > M) M = mr;
        }
        memset(out, 0, (size_t)hd * 4);
        if (M == -INFINITY) continue; /* nothing visible */
        for (int r = 0; r < S; r++) {
            const float *part = attn_part(b, op, kvh * S + r, qi, nth);
            if (part[0] == -INFINITY) continue;
            float f = expf(part[0] - M);
            L += part[1] * f;
            for (int d = 0; d < hd; d++) out[d] += part[2 + d] * f;
        }
        float inv = 1.0f / L;
        for (int d = 0; d < hd; d++) out[d] *= inv;
    }
}

static void op_glu(void *v, int ith, int nth) {
    job *j = v;
    const rtr_op *op = j->op;
    size_t total = (size_t)op->rows * op->p.glu.n;
    int lo, hi;
    split(op->rows, ith, nth, 1, &lo, &hi);
    size_t a0 = (size_t)lo * op->p.glu.n, a1 = (size_t)hi * op->p.glu.n;
    (void)total;
    const float *g = F32(op->a), *u = F32(op->b);
    float *d = F32(op->dst);
    switch (op->p.glu.act) {
    case RTR_ACT_RELU2:
        for (size_t i = a0; i < a1; i++) { float r = g[i] > 0 ? g[i] : 0; d[i] = r * r * u[i]; }
        break;
    case RTR_ACT_SILU: { /* x / (1 + e^-x) as x / (1 + e) or x e / (1 + e), e = e^-|x|: four at a time */
        size_t i = a0;
        for (; i + 4 <= a1; i += 4) {
            f32x4 x, uu;
            memcpy(&x, g + i, sizeof x);
            memcpy(&uu, u + i, sizeof uu);
            i32x4 neg = x < 0.0f;
            f32x4 e = exp4_nonpos((f32x4)((i32x4)x | (i32x4){INT32_MIN, INT32_MIN, INT32_MIN, INT32_MIN}));
            f32x4 num = (f32x4)(((i32x4)x & ~neg) | ((i32x4)(x * e) & neg)), y = num / (1.0f + e) * uu;
            memcpy(d + i, &y, sizeof y);
        }
        for (; i < a1; i++) d[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
        break;
    }
    case RTR_ACT_GELU_TANH:
        for (size_t i = a0; i < a1; i++) {
            float x = g[i];
            d[i] = 0.5f * x * (1.0f + tanhf(0.7978845608f * (x + 0.044715f * x * x * x))) * u[i];
        }
        break;
    }
}

static void op_add(void *v, int ith, int nth) {
    job *j = v;
    const rtr_op *op = j->op;
    int lo, hi;
    split(op->rows, ith, nth, 1, &lo, &hi);
    size_t n = (size_t)op->p.add.n;
    float *d = F32(op->dst);
    const float *a = F32(op->a);
    for (size_t i = (size_t)lo * n; i < (size_t)hi * n; i++) d[i] += a[i];
}

/* the first largest of each row; a NaN never wins unless it is first (backend.h) */
static void op_argmax(void *v, int ith, int nth) {
    job *j = v;
    const rtr_op *op = j->op;
    int lo, hi, n = op->p.add.n;
    split(op->rows, ith, nth, 1, &lo, &hi);
    for (int r = lo; r < hi; r++) {
        const float *x = F32(op->a) + (size_t)r * n;
        int best = 0;
        for (int i = 1; i < n; i++)
            if (x[i] > x[best]) best = i;
        ((int32_t *)PTR(op->dst))[r] = best;
    }
}

static int cpu_run(rtr_backend *be, const rtr_op *op, rtr_err *err) {
    cpu_backend *b = (cpu_backend *)be;
    job j = {b, op};
    rtr_pool_fn fn = NULL;
    size_t nf = 0, nq = 0, ni = 0;
    switch (op->kind) {
    case RTR_OP_EMBED: fn = op_embed; break;
    case RTR_OP_RMSNORM: fn = op_rmsnorm; nf = (size_t)op->p.norm.n + 128; break;
    case RTR_OP_QUANT: fn = op_quant; break;
    case RTR_OP_MATMUL_T2:
        if (op->p.mm.n_mat < 1 || op->p.mm.n_mat > 3) return rtr_seterr(err, RTR_EARG, "cpu: bad matmul count");
        fn = op_matmul_t2; ni = (size_t)op->rows * (MM_ROWS + 1); break;
    case RTR_OP_MATMUL_F:
        if (op->p.mf.type == RTR_T_BF16 && !b->k->bf16_gemm) return rtr_seterr(err, RTR_EBACKEND, "cpu: no bf16 kernel");
        fn = op_matmul_f;
        break;
    case RTR_OP_ROPE: fn = op_rope; nf = (size_t)op->p.rope.rot_dim + 2; break;
    case RTR_OP_KV_STORE: fn = op_kv_store; break;
    case RTR_OP_ATTN: {
        int nth = rtr_pool_size(b->pool), S = attn_ranges(op, nth), grp = op->p.attn.n_head / op->p.attn.n_kv;
        size_t hd = (size_t)op->p.attn.head_dim, cap = (size_t)op->p.attn.cap;
        ni = cap;
        if (S) {
            size_t items = ((size_t)op->p.attn.n_kv * S + nth - 1) / nth;
            nf = (size_t)grp * cap + ATTN_CHUNK * hd + items * grp * (hd + 2);
            if (reserve(b, nf, nq, ni)) return rtr_seterr(err, RTR_ENOMEM, "cpu: out of memory for scratch");
            rtr_pool_run(b->pool, op_attn_ranges, &j);
            attn_merge(b, op, S, nth);
            return 0;
        }
        fn = op_attn;
        nf = (size_t)ATTN_RB * (size_t)attn_heads_per_item(op, nth) * cap + ATTN_CHUNK * hd;
        break;
    }
    case RTR_OP_GLU: fn = op_glu; break;
    case RTR_OP_ADD: fn = op_add; break;
    case RTR_OP_ARGMAX:
        if (op->p.add.n < 1) return rtr_seterr(err, RTR_EARG, "cpu: argmax over %d values", op->p.add.n);
        fn = op_argmax;
        break;
    default: return rtr_seterr(err, RTR_EARG, "cpu: unknown op %d", op->kind);
    }
    if (reserve(b, nf, nq, ni)) return rtr_seterr(err, RTR_ENOMEM, "cpu: out of memory for scratch");
    rtr_pool_run(b->pool, fn, &j);
    return 0;
}

static void cpu_destroy(rtr_backend *be) {
    cpu_backend *b = (cpu_backend *)be;
    if (!b) return;
    rtr_pool_free(b->pool);
    if (b->sc)
        for (int t = 0; t < b->nth; t++) { free(b->sc[t].f); free(b->sc[t].q); free(b->sc[t].i); }
    free(b->sc);
    free(b);
}

static const rtr_backend_ops cpu_ops = {
    .name = "cpu",
    .destroy = cpu_destroy,
    .buf_new = cpu_buf_new,
    .buf_free = cpu_buf_free,
    .buf_write = cpu_buf_write,
    .buf_read = cpu_buf_read,
    .buf_view = cpu_buf_view,
    .begin = cpu_begin,
    .run = cpu_run,
    .end = cpu_end,
};

int rtr_cpu_backend_create(rtr_backend **out, const rtr_backend_cfg *cfg, rtr_err *err) {
    const rtr_kernels *k = rtr_kernels_pick(cfg ? cfg->kernel : NULL);
    if (!k) return rtr_seterr(err, RTR_EBACKEND, "cpu: kernel set '%s' is not available on this CPU", cfg && cfg->kernel ? cfg->kernel : "?");
    cpu_backend *b = calloc(1, sizeof *b);
    if (!b) return rtr_seterr(err, RTR_ENOMEM, "out of memory");
    b->base.ops = &cpu_ops;
    b->k = k;
    b->nth = cfg && cfg->n_threads > 0 ? cfg->n_threads : rtr_physical_cores();
    b->sc = calloc((size_t)b->nth, sizeof *b->sc);
    b->pool = b->sc ? rtr_pool_new(b->nth) : NULL;
    if (!b->pool) { cpu_destroy(&b->base); return rtr_seterr(err, RTR_ENOMEM, "cpu: cannot start %d threads", b->nth); }
    snprintf(b->base.desc, sizeof b->base.desc, "CPU (%s, %d threads)", k->name, b->nth);
    *out = &b->base;
    return 0;
}

int rtr_cpu_list_devices(char *out, size_t cap) {
    const rtr_kernels *ks[8];
    int nk = rtr_kernels_available(ks, 8);
    size_t l = strlen(out);
    int w = snprintf(out + l, cap - l, "  0: CPU, %d physical cores, kernels:", rtr_physical_cores());
    for (int i = 0; i < nk && w > 0; i++) { l = strlen(out); w = snprintf(out + l, cap - l, " %s", ks[i]->name); }
    l = strlen(out);
    snprintf(out + l, cap - l, "\n");
    return 1;
}
