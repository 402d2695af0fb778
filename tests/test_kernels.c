/* test_kernels.c: every CPU kernel set usable on this machine against references computed here.
 *
 * Ternary products are checked exactly against int8 weight matrices multiplied directly (the
 * weights are packed with rtr_t2_pack_row, so the kernels' unpacking is checked too), including
 * the worst cases for int16 intermediate sums. quant_row is checked code for code against the
 * formula of the model spec (ties to even). q8_gemm is exact; f16/bf16 products and the
 * attention helpers are checked against double-precision sums within a stated tolerance.
 * Sets the CPU lacks are reported as skipped.
 */
#include "test.h"
#include "../kernels/kernels.h"
#include "../models/format.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void) {
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (uint32_t)(rng >> 32);
}
static float rndf(void) { return (float)((int32_t)rnd()) / 2147483648.0f; } /* [-1, 1) */

static void *xmalloc(size_t n) {
    void *p = calloc(n ? n : 1, 1);
    if (!p) { fprintf(stderr, "out of memory\n"); exit(2); }
    return p;
}

/* ---------------- ternary ---------------- */

enum { X_RANDOM, X_MIN, X_MAX, X_ALT };
enum { W_RANDOM, W_PLUS, W_MINUS, W_SIGN_X, W_SPARSE };

/* One case: W [nrows][k] ternary, x [ntok][kpad]; every set must give exactly W.x */
static void t2_case(const rtr_kernels *ks, int k, int nrows, int ntok, int xmode, int wmode,
                    int null_xsum) {
    int kpad = (k + 127) / 128 * 128;
    size_t rb = rtr_t2_row_bytes((uint64_t)k), os = (size_t)nrows + 3;
    int8_t *wt = xmalloc((size_t)nrows * k);
    uint8_t *wp = xmalloc((size_t)nrows * rb);
    int8_t *x = xmalloc((size_t)ntok * kpad);
    int32_t *xsum = xmalloc(sizeof(int32_t) * ntok);
    int32_t *out = xmalloc(sizeof(int32_t) * os * ntok);
    int64_t *want = xmalloc(sizeof(int64_t) * nrows * ntok);
    for (int t = 0; t < ntok; t++)
        for (int j = 0; j < kpad; j++) {
            int v = 0;
            if (j < k) switch (xmode) {
                case X_RANDOM: v = (int)(rnd() % 256) - 128; break;
                case X_MIN: v = -128; break;
                case X_MAX: v = 127; break;
                default: v = (j + t) % 2 ? 127 : -128; break;
                }
            x[(size_t)t * kpad + j] = (int8_t)v;
        }
    for (int r = 0; r < nrows; r++) {
        for (int j = 0; j < k; j++) {
            int v;
            switch (wmode) {
            case W_RANDOM: v = (int)(rnd() % 3) - 1; break;
            case W_PLUS: v = 1; break;
            case W_MINUS: v = -1; break;
            case W_SIGN_X: v = x[j] < 0 ? -1 : 1; break; /* every product positive (token 0) */
            default: v = rnd() % 16 == 0 ? ((rnd() & 1) ? 1 : -1) : 0; break;
            }
            wt[(size_t)r * k + j] = (int8_t)v;
        }
        rtr_t2_pack_row(wt + (size_t)r * k, (uint64_t)k, wp + (size_t)r * rb);
    }
    for (int t = 0; t < ntok; t++) {
        int32_t s = 0;
        for (int j = 0; j < kpad; j++) s += x[(size_t)t * kpad + j];
        xsum[t] = s;
        for (int r = 0; r < nrows; r++) {
            int64_t acc = 0;
            for (int j = 0; j < k; j++) acc += (int64_t)wt[(size_t)r * k + j] * x[(size_t)t * kpad + j];
            want[(size_t)t * nrows + r] = acc;
        }
    }
    for (size_t i = 0; i < os * ntok; i++) out[i] = 0x5a5a5a5a;
    ks->t2_gemm(wp, rb, nrows, x, null_xsum ? NULL : xsum, kpad, ntok, out, os);
    int bad = 0, first = -1;
    for (int t = 0; t < ntok; t++)
        for (size_t r = 0; r < os; r++) {
            int32_t got = out[(size_t)t * os + r];
            int ok = r < (size_t)nrows ? got == want[(size_t)t * nrows + r] : got == 0x5a5a5a5a;
            if (!ok && !bad++) first = t * (int)os + (int)r;
        }
    CHECK(!bad, "%s t2_gemm k=%d rows=%d ntok=%d x=%d w=%d%s: %d wrong (first at %d: %d, want %lld)",
          ks->name, k, nrows, ntok, xmode, wmode, null_xsum ? " xsum=NULL" : "", bad, first,
          first >= 0 ? out[first] : 0,
          first >= 0 && first % (int)os < nrows ? (long long)want[(size_t)(first / (int)os) * nrows + first % (int)os] : 0LL);
    free(wt); free(wp); free(x); free(xsum); free(out); free(want);
}

static void test_t2(const rtr_kernels *ks) {
    static const int kk[] = {128, 384, 2560, 6912, 1152, 100};
    static const int nr[] = {1, 3, 5, 17, 64};
    static const int nt[] = {1, 2, 3, 7, 16};
    for (size_t a = 0; a < sizeof kk / sizeof *kk; a++)
        for (size_t b = 0; b < sizeof nr / sizeof *nr; b++)
            for (size_t c = 0; c < sizeof nt / sizeof *nt; c++)
                t2_case(ks, kk[a], nr[b], nt[c], X_RANDOM, W_RANDOM, 0);
    /* worst cases for intermediate sums: every product -128, +127, +128 or -128 with signs */
    static const int adv_k[] = {128, 2560, 6912, 8320};
    for (size_t a = 0; a < sizeof adv_k / sizeof *adv_k; a++)
        for (int ntok = 1; ntok <= 3; ntok += 2) {
            t2_case(ks, adv_k[a], 5, ntok, X_MIN, W_PLUS, 0);
            t2_case(ks, adv_k[a], 5, ntok, X_MIN, W_MINUS, 0);
            t2_case(ks, adv_k[a], 5, ntok, X_MAX, W_PLUS, 0);
            t2_case(ks, adv_k[a], 5, ntok, X_MAX, W_MINUS, 0);
            t2_case(ks, adv_k[a], 4, ntok, X_ALT, W_SIGN_X, 0);
            t2_case(ks, adv_k[a], 4, ntok, X_ALT, W_RANDOM, 0);
        }
    t2_case(ks, 2560, 9, 5, X_RANDOM, W_SPARSE, 0);
    t2_case(ks, 384, 7, 1, X_RANDOM, W_RANDOM, 1);
    t2_case(ks, 6912, 6, 70, X_RANDOM, W_RANDOM, 1);
    /* batches of 16 tokens and more (the amx set's tiles: 32 rows x 32 tokens, 64 packed at
     * once), with row and token counts off every tile edge, and extreme sums */
    static const int big_nt[] = {16, 33, 64, 97};
    for (size_t c = 0; c < sizeof big_nt / sizeof *big_nt; c++) {
        t2_case(ks, 2560, 47, big_nt[c], X_RANDOM, W_RANDOM, 0);
        t2_case(ks, 384, 16, big_nt[c], X_RANDOM, W_RANDOM, c == 1);
    }
    t2_case(ks, 8192, 33, 17, X_MIN, W_PLUS, 0);
    t2_case(ks, 8192, 33, 17, X_MAX, W_MINUS, 0);
    t2_case(ks, 8320, 5, 20, X_MIN, W_MINUS, 0);
}

/* ---------------- activation quantization ---------------- */

/* The spec (bitnet.md 2.2): s = 127 / max(max|x|, 1e-5) in float32, q = clamp(rint(x*s)). */
static float quant_ref(const float *x, int n, int8_t *q, int32_t *sum) {
    float m = 0;
    for (int i = 0; i < n; i++) m = fmaxf(m, fabsf(x[i]));
    m = fmaxf(m, 1e-5f);
    float s = 127.0f / m;
    int32_t total = 0;
    for (int i = 0; i < n; i++) {
        float v = nearbyintf(x[i] * s);
        q[i] = (int8_t)(v > 127 ? 127 : v < -128 ? -128 : v);
        total += q[i];
    }
    *sum = total;
    return m / 127.0f;
}

static void quant_check(const rtr_kernels *ks, const float *x, int n, int kpad, const char *what) {
    int8_t *q = xmalloc((size_t)kpad + 16), *want = xmalloc((size_t)n + 1);
    memset(q, 0x55, (size_t)kpad + 16);
    int32_t sum = -1, wsum;
    float inv = ks->quant_row(x, n, kpad, q, &sum), winv = quant_ref(x, n, want, &wsum);
    int bad = 0, first = -1;
    for (int i = 0; i < n; i++)
        if (q[i] != want[i] && !bad++) first = i;
    int pad_ok = 1;
    for (int i = n; i < kpad; i++) pad_ok &= q[i] == 0;
    for (int i = kpad; i < kpad + 16; i++) pad_ok &= q[i] == 0x55;
    CHECK(!bad && sum == wsum && inv == winv && pad_ok,
          "%s quant_row %s n=%d kpad=%d: %d codes differ (first %d: %d want %d), sum %d/%d, "
          "inv %.9g/%.9g, padding %s", ks->name, what, n, kpad, bad, first,
          first >= 0 ? q[first] : 0, first >= 0 ? want[first] : 0, sum, wsum, inv, winv,
          pad_ok ? "ok" : "wrong");
    free(q); free(want);
}

static void test_quant(const rtr_kernels *ks) {
    static const int ns[] = {1, 7, 8, 31, 32, 33, 100, 128, 2560, 6912, 6913};
    float *x = xmalloc(sizeof(float) * 7000);
    for (size_t a = 0; a < sizeof ns / sizeof *ns; a++) {
        int n = ns[a], kpad = (n + 127) / 128 * 128;
        for (int i = 0; i < n; i++) x[i] = rndf() * 3.0f;
        quant_check(ks, x, n, kpad, "random");
        for (int i = 0; i < n; i++) x[i] = rndf() * 1e-7f; /* below the 1e-5 floor */
        quant_check(ks, x, n, kpad, "tiny");
    }
    /* max|x| = 127 makes s exactly 1: halves must go to even, neighbours of halves must not */
    int n = 0;
    x[n++] = 127.0f;
    for (int i = -127; i < 127; i++) {
        float h = (float)i + 0.5f;
        x[n++] = h;
        x[n++] = nextafterf(h, 1000.0f);
        x[n++] = nextafterf(h, -1000.0f);
    }
    quant_check(ks, x, n, (n + 127) / 128 * 128, "ties");
    /* a scale that is not a power of two: x*s lands just beside and on .5 after rounding */
    for (int i = 0; i < 300; i++) x[i] = (float)(i - 150) * 0.0625f + 0.03125f;
    quant_check(ks, x, 300, 384, "quarter-steps");
    for (int i = 0; i < 300; i++) x[i] = (float)(i - 150) / 7.0f;
    quant_check(ks, x, 300, 384, "sevenths");
    for (int i = 0; i < 64; i++) x[i] = 0.0f;
    quant_check(ks, x, 64, 128, "zeros");
    for (int i = 0; i < 64; i++) x[i] = i == 40 ? -5.0f : 1.0f;
    quant_check(ks, x, 64, 64, "negative-max");
    free(x);
}

/* NaN and infinity: no reference exists, but every set must give the scalar set's codes */
static void test_quant_nonfinite(const rtr_kernels *ks) {
    float x[70];
    int8_t q[128], w[128];
    for (int i = 0; i < 70; i++) x[i] = rndf();
    x[3] = NAN; x[20] = -NAN; x[65] = NAN;
    int32_t s1, s2;
    float a = ks->quant_row(x, 70, 128, q, &s1), b = rtr_kernels_scalar.quant_row(x, 70, 128, w, &s2);
    CHECK(!memcmp(q, w, 128) && s1 == s2 && a == b, "%s quant_row with NaN differs from scalar", ks->name);
    x[10] = INFINITY;
    a = ks->quant_row(x, 70, 128, q, &s1); b = rtr_kernels_scalar.quant_row(x, 70, 128, w, &s2);
    CHECK(!memcmp(q, w, 128) && s1 == s2 && a == b, "%s quant_row with inf differs from scalar", ks->name);
}

/* ---------------- half precision and int8 products ---------------- */

/* Float products: |got - exact| <= TOL * sum|w*x| (+ tiny), with the exact sum in double.
 * 2e-5 covers float rounding of sums over 6912 terms in any order; an element lost or counted
 * twice moves small-k cases far beyond it. */
#define TOL 2e-5

static void half_case(const rtr_kernels *ks, int bf, int nrows, int k, int ntok) {
    uint16_t *w = xmalloc(sizeof(uint16_t) * nrows * k);
    float *x = xmalloc(sizeof(float) * ntok * k), *y = xmalloc(sizeof(float) * ntok * (nrows + 2));
    for (int i = 0; i < nrows * k; i++) {
        float v = rndf() * 2.0f;
        w[i] = bf ? rtr_f32_to_bf16(v) : rtr_f32_to_f16(v);
    }
    for (int i = 0; i < ntok * k; i++) x[i] = rndf();
    size_t ldy = (size_t)nrows + 2;
    for (size_t i = 0; i < ldy * ntok; i++) y[i] = -12345.0f;
    (bf ? ks->bf16_gemm : ks->f16_gemm)(w, nrows, k, x, ntok, y, ldy);
    int bad = 0;
    double worst = 0;
    for (int t = 0; t < ntok; t++)
        for (size_t r = 0; r < ldy; r++) {
            float got = y[(size_t)t * ldy + r];
            if (r >= (size_t)nrows) { bad += got != -12345.0f; continue; }
            double s = 0, a = 0;
            for (int j = 0; j < k; j++) {
                double wv = bf ? rtr_bf16_to_f32(w[r * k + j]) : rtr_f16_to_f32(w[r * k + j]);
                s += wv * x[(size_t)t * k + j];
                a += fabs(wv * x[(size_t)t * k + j]);
            }
            double e = fabs(got - s) / (a + 1e-30);
            if (e > worst) worst = e;
            bad += !(e <= TOL);
        }
    CHECK(!bad, "%s %s_gemm rows=%d k=%d ntok=%d: %d outside tolerance (worst %.3g)", ks->name,
          bf ? "bf16" : "f16", nrows, k, ntok, bad, worst);
    free(w); free(x); free(y);
}

static void test_half(const rtr_kernels *ks) {
    static const int kk[] = {1, 7, 8, 15, 16, 17, 33, 100, 2560, 6912};
    static const int nr[] = {1, 3, 4, 5, 9};
    static const int nt[] = {1, 2, 3, 5};
    for (int bf = 0; bf < 2; bf++)
        for (size_t a = 0; a < sizeof kk / sizeof *kk; a++)
            for (size_t b = 0; b < sizeof nr / sizeof *nr; b++)
                for (size_t c = 0; c < sizeof nt / sizeof *nt; c++)
                    if (kk[a] < 2560 || (nr[b] <= 5 && nt[c] <= 3)) half_case(ks, bf, nr[b], kk[a], nt[c]);
}

/* q8: the integer sum is exact and the scaling is (scale * xs) * sum in every set: bit-exact */
static void q8_case(const rtr_kernels *ks, int nrows, int k, int ntok, int adversarial) {
    size_t kq = (size_t)(k + 63) / 64 * 64, ldy = (size_t)nrows + 1;
    int8_t *w = xmalloc(kq * nrows), *x = xmalloc(kq * ntok);
    float *scale = xmalloc(sizeof(float) * nrows), *xs = xmalloc(sizeof(float) * ntok);
    float *y = xmalloc(sizeof(float) * ldy * ntok);
    for (size_t i = 0; i < kq * nrows; i++)
        w[i] = (int8_t)(i % kq < (size_t)k ? (adversarial ? -128 : (int)(rnd() % 256) - 128) : (int)(rnd() % 256) - 128);
    for (size_t i = 0; i < kq * ntok; i++)
        x[i] = (int8_t)(i % kq < (size_t)k ? (adversarial ? -128 : (int)(rnd() % 256) - 128) : 0);
    for (int r = 0; r < nrows; r++) scale[r] = 0.001f + (rndf() + 1.0f) * 0.01f;
    for (int t = 0; t < ntok; t++) xs[t] = 0.002f + (rndf() + 1.0f) * 0.02f;
    for (size_t i = 0; i < ldy * ntok; i++) y[i] = -1.0f;
    ks->q8_gemm(w, scale, nrows, k, x, xs, ntok, y, ldy);
    int bad = 0;
    for (int t = 0; t < ntok; t++)
        for (size_t r = 0; r < ldy; r++) {
            float got = y[(size_t)t * ldy + r];
            if (r == (size_t)nrows) { bad += got != -1.0f; continue; }
            int64_t s = 0;
            for (int j = 0; j < k; j++) s += (int64_t)w[r * kq + j] * x[(size_t)t * kq + j];
            float want = scale[r] * xs[t] * (float)s;
            bad += got != want;
        }
    CHECK(!bad, "%s q8_gemm rows=%d k=%d ntok=%d%s: %d wrong", ks->name, nrows, k, ntok,
          adversarial ? " (all -128)" : "", bad);
    free(w); free(x); free(scale); free(xs); free(y);
}

/* q8f_gemm: int8 weights (garbage in the padding past k, which must not count) against float
 * activations, within 2e-6 of the float64 sum relative to the sum of magnitudes */
static void q8f_case(const rtr_kernels *ks, int nrows, int k, int ntok) {
    size_t kq = (size_t)(k + 63) / 64 * 64, ldy = (size_t)nrows + 1;
    int8_t *w = xmalloc(kq * nrows);
    float *x = xmalloc(sizeof(float) * (size_t)k * ntok), *scale = xmalloc(sizeof(float) * nrows);
    float *y = xmalloc(sizeof(float) * ldy * ntok);
    for (size_t i = 0; i < kq * nrows; i++) w[i] = (int8_t)((int)(rnd() % 256) - 128);
    for (size_t i = 0; i < (size_t)k * ntok; i++) x[i] = rndf() * (i % 97 == 0 ? 50.0f : 1.0f);
    for (int r = 0; r < nrows; r++) scale[r] = 0.001f + (rndf() + 1.0f) * 0.01f;
    for (size_t i = 0; i < ldy * ntok; i++) y[i] = -1.0f;
    ks->q8f_gemm(w, scale, nrows, k, x, ntok, y, ldy);
    int bad = 0;
    for (int t = 0; t < ntok; t++)
        for (size_t r = 0; r < ldy; r++) {
            float got = y[(size_t)t * ldy + r];
            if (r == (size_t)nrows) { bad += got != -1.0f; continue; }
            double s = 0, m = 0;
            for (int j = 0; j < k; j++) {
                double v = (double)w[r * kq + j] * x[(size_t)t * k + j];
                s += v;
                m += fabs(v);
            }
            bad += !(fabs(got - scale[r] * s) <= 2e-6 * scale[r] * m + 1e-30);
        }
    CHECK(!bad, "%s q8f_gemm rows=%d k=%d ntok=%d: %d outside 2e-6 relative", ks->name, nrows, k, ntok, bad);
    free(w); free(x); free(scale); free(y);
}

static void test_q8(const rtr_kernels *ks) {
    static const int kk[] = {1, 63, 64, 100, 2560, 6912};
    static const int nr[] = {1, 3, 4, 5, 9};
    static const int nt[] = {1, 2, 3};
    for (size_t a = 0; a < sizeof kk / sizeof *kk; a++)
        for (size_t b = 0; b < sizeof nr / sizeof *nr; b++)
            for (size_t c = 0; c < sizeof nt / sizeof *nt; c++) q8_case(ks, nr[b], kk[a], nt[c], 0);
    q8_case(ks, 5, 6912, 3, 1);
    for (size_t a = 0; a < sizeof kk / sizeof *kk; a++)
        for (size_t b = 0; b < sizeof nr / sizeof *nr; b++)
            for (size_t c = 0; c < sizeof nt / sizeof *nt; c++) q8f_case(ks, nr[b], kk[a], nt[c]);
}

static void test_attn(const rtr_kernels *ks) {
    static const int ns[] = {1, 7, 8, 9, 16, 31, 64, 100, 128};
    float x[128], y[128], y0[128];
    uint16_t v[128];
    int bad_dot = 0, bad_axpy = 0;
    for (size_t a = 0; a < sizeof ns / sizeof *ns; a++) {
        int n = ns[a];
        for (int i = 0; i < n; i++) {
            x[i] = rndf();
            v[i] = rtr_f32_to_f16(rndf() * 4.0f);
            y[i] = y0[i] = rndf();
        }
        double s = 0, m = 0;
        for (int i = 0; i < n; i++) {
            s += (double)x[i] * rtr_f16_to_f32(v[i]);
            m += fabs((double)x[i] * rtr_f16_to_f32(v[i]));
        }
        float got = ks->dot_f32_f16(x, v, n);
        bad_dot += !(fabs(got - s) <= 5e-6 * m + 1e-30);
        float a_ = rndf();
        ks->axpy_f16(a_, v, y, n);
        for (int i = 0; i < n; i++) {
            double want = y0[i] + (double)a_ * rtr_f16_to_f32(v[i]);
            bad_axpy += !(fabs(y[i] - want) <= 2.5e-7 * (fabs(y0[i]) + fabs(a_ * rtr_f16_to_f32(v[i]))) + 1e-30);
        }
    }
    CHECK(!bad_dot, "%s dot_f32_f16: %d outside 5e-6 relative", ks->name, bad_dot);
    CHECK(!bad_axpy, "%s axpy_f16: %d outside 2.5e-7 relative", ks->name, bad_axpy);
    /* the same over an f32 cache */
    bad_dot = bad_axpy = 0;
    float vf[128];
    for (size_t a = 0; a < sizeof ns / sizeof *ns; a++) {
        int n = ns[a];
        for (int i = 0; i < n; i++) { x[i] = rndf(); vf[i] = rndf() * 4.0f; y[i] = y0[i] = rndf(); }
        double s = 0, m = 0;
        for (int i = 0; i < n; i++) { s += (double)x[i] * vf[i]; m += fabs((double)x[i] * vf[i]); }
        float got = ks->dot_f32(x, vf, n);
        bad_dot += !(fabs(got - s) <= 5e-6 * m + 1e-30);
        float a_ = rndf();
        ks->axpy_f32(a_, vf, y, n);
        for (int i = 0; i < n; i++) {
            double want = y0[i] + (double)a_ * vf[i];
            bad_axpy += !(fabs(y[i] - want) <= 2.5e-7 * (fabs(y0[i]) + fabs(a_ * vf[i])) + 1e-30);
        }
    }
    CHECK(!bad_dot, "%s dot_f32: %d outside 5e-6 relative", ks->name, bad_dot);
    CHECK(!bad_axpy, "%s axpy_f32: %d outside 2.5e-7 relative", ks->name, bad_axpy);
}

/* The row-list attention kernels against float64 over rows picked out of order from a cache of
 * several heads, for head sizes with and without a multiple of 8 or 64 and row counts around the
 * kernels' groups of 8 and 4. */
static void test_attn_rows(const rtr_kernels *ks) {
    enum { SLOTS = 48, NKV = 3, HDMAX = 136 };
    static const int hds[] = {1, 3, 8, 64, 72, 128, 136};
    static const int ns[] = {0, 1, 3, 4, 7, 8, 9, 17, 33, 48};
    static float cf[SLOTS * NKV * HDMAX];
    static uint16_t ch[SLOTS * NKV * HDMAX];
    float q[HDMAX], p[SLOTS], out[SLOTS > HDMAX ? SLOTS : HDMAX];
    int32_t idx[SLOTS];
    int bad[4] = {0};
    for (size_t a = 0; a < sizeof hds / sizeof *hds; a++)
        for (size_t b = 0; b < sizeof ns / sizeof *ns; b++) {
            int hd = hds[a], n = ns[b], kvh = (int)(a + b) % NKV;
            size_t stride = (size_t)NKV * hd;
            for (size_t i = 0; i < SLOTS * stride; i++) {
                cf[i] = rndf() * 4.0f;
                ch[i] = rtr_f32_to_f16(cf[i]);
            }
            for (int i = 0; i < hd; i++) q[i] = rndf();
            for (int i = 0; i < n; i++) {
                idx[i] = (i * 29 + 5) % SLOTS; /* distinct, out of order */
                p[i] = rndf() * 0.5f + 0.5f;
            }
            const float scale = 0.088f;
            for (int f16 = 0; f16 < 2; f16++) {
                const float *rf = cf + (size_t)kvh * hd;
                const uint16_t *rh = ch + (size_t)kvh * hd;
                for (int i = 0; i < SLOTS; i++) out[i] = 12345.0f;
                if (f16) ks->attn_dots_f16(q, rh, stride, idx, n, hd, scale, out);
                else ks->attn_dots_f32(q, rf, stride, idx, n, hd, scale, out);
                for (int i = 0; i < n; i++) {
                    double s = 0, m = 0;
                    for (int c = 0; c < hd; c++) {
                        double w = f16 ? rtr_f16_to_f32(rh[(size_t)idx[i] * stride + c]) : rf[(size_t)idx[i] * stride + c];
                        s += (double)q[c] * w;
                        m += fabs((double)q[c] * w);
                    }
                    bad[f16] += !(fabs(out[i] - scale * s) <= 5e-6 * scale * m + 1e-30);
                }
                bad[f16] += n < SLOTS && out[n] != 12345.0f; /* nothing written past n */
                float o0[HDMAX];
                for (int c = 0; c < hd; c++) out[c] = o0[c] = rndf();
                if (f16) ks->attn_wsum_f16(p, rh, stride, idx, n, hd, out);
                else ks->attn_wsum_f32(p, rf, stride, idx, n, hd, out);
                for (int c = 0; c < hd; c++) {
                    double s = o0[c], m = fabs(o0[c]);
                    for (int i = 0; i < n; i++) {
                        double w = f16 ? rtr_f16_to_f32(rh[(size_t)idx[i] * stride + c]) : rf[(size_t)idx[i] * stride + c];
                        s += p[i] * w;
                        m += fabs(p[i] * w);
                    }
                    bad[2 + f16] += !(fabs(out[c] - s) <= 5e-6 * m + 1e-30);
                }
            }
        }
    CHECK(!bad[0], "%s attn_dots_f32: %d outside 5e-6 relative", ks->name, bad[0]);
    CHECK(!bad[1], "%s attn_dots_f16: %d outside 5e-6 relative", ks->name, bad[1]);
    CHECK(!bad[2], "%s attn_wsum_f32: %d outside 5e-6 relative", ks->name, bad[2]);
    CHECK(!bad[3], "%s attn_wsum_f16: %d outside 5e-6 relative", ks->name, bad[3]);
}

/* ---------------- selection ---------------- */

static void test_pick(void) {
    const rtr_kernels *all[8];
    int n = rtr_kernels_available(all, 8);
    CHECK(n >= 1 && !strcmp(all[n - 1]->name, "scalar"), "scalar must be available, and last");
    CHECK(rtr_kernels_pick(NULL) == all[0], "pick(NULL) is not the best available set");
    CHECK(rtr_kernels_pick("nonsense") == NULL, "pick(\"nonsense\") returned a set");
    CHECK(rtr_kernels_pick("scalar") == &rtr_kernels_scalar, "pick(\"scalar\")");
    for (int i = 0; i < n; i++) CHECK(rtr_kernels_pick(all[i]->name) == all[i], "pick(%s)", all[i]->name);
    const rtr_kernels *one;
    CHECK(rtr_kernels_available(&one, 1) == 1 && one == all[0], "available() with cap 1");
#if defined(__x86_64__)
    CHECK(rtr_kernels_pick("neon") == NULL, "neon picked on x86-64");
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        CHECK(rtr_kernels_pick("avx2") != NULL && strcmp(all[0]->name, "scalar") != 0,
              "this CPU has AVX2 but the avx2 set is not picked");
#elif defined(__aarch64__)
    CHECK(rtr_kernels_pick("avx2") == NULL, "avx2 picked on aarch64");
#endif
    printf("kernel sets usable here:");
    for (int i = 0; i < n; i++) printf(" %s", all[i]->name);
    printf("\n");
}

int main(void) {
    test_pick();
#if defined(__x86_64__)
    static const char *names[] = {"scalar", "avx2", "avx512vnni", "amx"};
#elif defined(__aarch64__)
    static const char *names[] = {"scalar", "neon"};
#else
    static const char *names[] = {"scalar"};
#endif
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        const rtr_kernels *ks = rtr_kernels_pick(names[i]);
#if defined(RTR_TEST_AVX512_EMULATED) && defined(__x86_64__)
        /* tests/avx512.sh builds the AVX-512 set over plain-C intrinsics: safe on any CPU */
        if (!ks && !strcmp(names[i], "avx512vnni")) ks = &rtr_kernels_avx512vnni;
#endif
        if (!ks) {
            SKIP("%s not supported by this CPU", names[i]);
            continue;
        }
        int before = test_fail;
        test_t2(ks);
        test_quant(ks);
        test_quant_nonfinite(ks);
        test_half(ks);
        test_q8(ks);
        test_attn(ks);
        test_attn_rows(ks);
        printf("%s: %s\n", ks->name, test_fail == before ? "all kernels match" : "FAILURES");
    }
    return test_done("test_kernels");
}
