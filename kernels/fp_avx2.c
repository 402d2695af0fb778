/* fp_avx2.c: the float, int8 and quantization kernels for AVX2 + FMA + F16C.
 *
 * f16/bf16 rows are widened to f32 eight at a time (vcvtph2ps, or a 16-bit shift for bf16) and
 * multiplied with FMA; one token runs four rows at a time with two accumulators each, batches
 * run tiles of four rows x two tokens so each converted weight serves two tokens. q8_gemm widens
 * both operands to int16 and uses madd, which is exact for every int8 input (no maddubs
 * saturation); for one token it reads the rows one after another as a single stream, which
 * measured faster from memory than four interleaved rows. quant_row gives the same codes as the
 * scalar set bit for bit.
 */
#include "isa.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

static inline float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float f16_1(uint16_t h) { return _cvtsh_ss(h); }
static inline float bf16_1(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline __m256 ld_f16(const uint16_t *p) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}
static inline __m256 ld_bf16(const uint16_t *p) {
    __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

/* Decode of the heads (f16 and 8-bit) streams four rows at a time and prefetches, once a cache
 * line, the same spot of the next four (element J + AHEAD of each): the hardware prefetchers of
 * server cores do not keep four streams that far ahead on their own. */
#define PREFETCH4(P0, P1, P2, P3, J, AHEAD)                                                     \
    do {                                                                                          \
        _mm_prefetch((const char *)((P0) + (J) + (AHEAD)), _MM_HINT_T0);                          \
        _mm_prefetch((const char *)((P1) + (J) + (AHEAD)), _MM_HINT_T0);                          \
        _mm_prefetch((const char *)((P2) + (J) + (AHEAD)), _MM_HINT_T0);                          \
        _mm_prefetch((const char *)((P3) + (J) + (AHEAD)), _MM_HINT_T0);                          \
    } while (0)
/* The two half-precision gemms differ only in the load; one body, instantiated twice. */
#define HALF_GEMM(NAME, LD, ONE)                                                                  \
    void NAME(const uint16_t *w, int nrows, int k, const float *x, int ntok, float *y,           \
              size_t ldy) {                                                                       \
        int k16 = k & ~15, k8 = k & ~7;                                                           \
        if (ntok == 1) {                                                                          \
            int r = 0;                                                                            \
            for (; r + 4 <= nrows; r += 4) {                                                      \
                const uint16_t *w0 = w + (size_t)r * k, *w1 = w0 + k, *w2 = w1 + k, *w3 = w2 + k; \
                __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                       \
                __m256 b0 = a0, b1 = a0, b2 = a0, b3 = a0;                                        \
                int j = 0;                                                                        \
                for (; j < k16; j += 16) {                                                        \
                    if (!(j & 31)) PREFETCH4(w0, w1, w2, w3, j, 4 * (size_t)k);                  \
                    __m256 x0 = _mm256_loadu_ps(x + j), x1 = _mm256_loadu_ps(x + j + 8);          \
                    a0 = _mm256_fmadd_ps(LD(w0 + j), x0, a0);                                     \
                    a1 = _mm256_fmadd_ps(LD(w1 + j), x0, a1);                                     \
                    a2 = _mm256_fmadd_ps(LD(w2 + j), x0, a2);                                     \
                    a3 = _mm256_fmadd_ps(LD(w3 + j), x0, a3);                                     \
                    b0 = _mm256_fmadd_ps(LD(w0 + j + 8), x1, b0);                                 \
                    b1 = _mm256_fmadd_ps(LD(w1 + j + 8), x1, b1);                                 \
                    b2 = _mm256_fmadd_ps(LD(w2 + j + 8), x1, b2);                                 \
                    b3 = _mm256_fmadd_ps(LD(w3 + j + 8), x1, b3);                                 \
                }                                                                                 \
                for (; j < k8; j += 8) {                                                          \
                    __m256 x0 = _mm256_loadu_ps(x + j);                                           \
                    a0 = _mm256_fmadd_ps(LD(w0 + j), x0, a0);                                     \
                    a1 = _mm256_fmadd_ps(LD(w1 + j), x0, a1);                                     \
                    a2 = _mm256_fmadd_ps(LD(w2 + j), x0, a2);                                     \
                    a3 = _mm256_fmadd_ps(LD(w3 + j), x0, a3);                                     \
                }                                                                                 \
                float s0 = hsum_ps(_mm256_add_ps(a0, b0)), s1 = hsum_ps(_mm256_add_ps(a1, b1));   \
                float s2 = hsum_ps(_mm256_add_ps(a2, b2)), s3 = hsum_ps(_mm256_add_ps(a3, b3));   \
                for (; j < k; j++) {                                                              \
                    s0 += ONE(w0[j]) * x[j]; s1 += ONE(w1[j]) * x[j];                             \
                    s2 += ONE(w2[j]) * x[j]; s3 += ONE(w3[j]) * x[j];                             \
                }                                                                                 \
                y[r] = s0; y[r + 1] = s1; y[r + 2] = s2; y[r + 3] = s3;                           \
            }                                                                                     \
            for (; r < nrows; r++) {                                                              \
                const uint16_t *w0 = w + (size_t)r * k;                                           \
                __m256 a0 = _mm256_setzero_ps();                                                  \
                int j = 0;                                                                        \
                for (; j < k8; j += 8) a0 = _mm256_fmadd_ps(LD(w0 + j), _mm256_loadu_ps(x + j), a0); \
                float s0 = hsum_ps(a0);                                                           \
                for (; j < k; j++) s0 += ONE(w0[j]) * x[j];                                       \
                y[r] = s0;                                                                        \
            }                                                                                     \
            return;                                                                               \
        }                                                                                         \
        /* batches: tiles of 4 rows x 2 tokens (rows and tokens past the end repeat the last) */  \
        for (int r = 0; r < nrows; r += 4) {                                                      \
            const uint16_t *wr[4];                                                                \
            for (int i = 0; i < 4; i++) wr[i] = w + (size_t)(r + i < nrows ? r + i : nrows - 1) * k; \
            for (int t = 0; t < ntok; t += 2) {                                                   \
                const float *xa = x + (size_t)t * k;                                              \
                const float *xb = x + (size_t)(t + 1 < ntok ? t + 1 : t) * k;                     \
                __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                       \
                __m256 b0 = a0, b1 = a0, b2 = a0, b3 = a0;                                        \
                int j = 0;                                                                        \
                for (; j < k8; j += 8) {                                                          \
                    __m256 xa0 = _mm256_loadu_ps(xa + j), xb0 = _mm256_loadu_ps(xb + j);          \
                    __m256 v0 = LD(wr[0] + j), v1 = LD(wr[1] + j);                                \
                    a0 = _mm256_fmadd_ps(v0, xa0, a0); b0 = _mm256_fmadd_ps(v0, xb0, b0);         \
                    a1 = _mm256_fmadd_ps(v1, xa0, a1); b1 = _mm256_fmadd_ps(v1, xb0, b1);         \
                    __m256 v2 = LD(wr[2] + j), v3 = LD(wr[3] + j);                                \
                    a2 = _mm256_fmadd_ps(v2, xa0, a2); b2 = _mm256_fmadd_ps(v2, xb0, b2);         \
                    a3 = _mm256_fmadd_ps(v3, xa0, a3); b3 = _mm256_fmadd_ps(v3, xb0, b3);         \
                }                                                                                 \
                float sa[4] = {hsum_ps(a0), hsum_ps(a1), hsum_ps(a2), hsum_ps(a3)};               \
                float sb[4] = {hsum_ps(b0), hsum_ps(b1), hsum_ps(b2), hsum_ps(b3)};               \
                for (; j < k; j++)                                                                \
                    for (int i = 0; i < 4; i++) {                                                 \
                        float wv = ONE(wr[i][j]);                                                 \
                        sa[i] += wv * xa[j]; sb[i] += wv * xb[j];                                 \
                    }                                                                             \
                for (int i = 0; i < 4 && r + i < nrows; i++) {                                    \
                    y[(size_t)t * ldy + r + i] = sa[i];                                           \
                    if (t + 1 < ntok) y[(size_t)(t + 1) * ldy + r + i] = sb[i];                   \
                }                                                                                 \
            }                                                                                     \
        }                                                                                         \
    }

HALF_GEMM(rtr_f16_gemm_avx2, ld_f16, f16_1)
HALF_GEMM(rtr_bf16_gemm_avx2, ld_bf16, bf16_1)

/* ---- int8 x int8 rows ---- */

static inline __m256i ld_i16(const int8_t *p) {
    return _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)p));
}

static inline int32_t hsum_i32(__m256i a) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

/* Rows are kq = round_up(k, 64) long and x is zero past k, so whole 16-byte steps are exact. */
void rtr_q8_gemm_avx2(const int8_t *w, const float *scale, int nrows, int k, const int8_t *x,
                      const float *xs, int ntok, float *y, size_t ldy) {
    size_t kq = (size_t)(k + 63) / 64 * 64;
    for (int r = 0; r < nrows; r += 4) {
        const int8_t *wr[4];
        for (int i = 0; i < 4; i++) wr[i] = w + (size_t)(r + i < nrows ? r + i : nrows - 1) * kq;
        if (ntok == 1) { /* decode: row after row, one sequential stream */
            for (int i = 0; i < 4 && r + i < nrows; i++) {
                const int8_t *p = wr[i];
                __m256i a0 = _mm256_setzero_si256(), a1 = a0;
                for (size_t j = 0; j < kq; j += 64) {
                    _mm_prefetch((const char *)(p + j + 4096), _MM_HINT_T0);
                    a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(ld_i16(p + j), ld_i16(x + j)));
                    a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(ld_i16(p + j + 16), ld_i16(x + j + 16)));
                    a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(ld_i16(p + j + 32), ld_i16(x + j + 32)));
                    a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(ld_i16(p + j + 48), ld_i16(x + j + 48)));
                }
                y[r + i] = scale[r + i] * xs[0] * (float)hsum_i32(_mm256_add_epi32(a0, a1));
            }
            continue;
        }
        for (int t = 0; t < ntok; t += 2) {
            const int8_t *xa = x + (size_t)t * kq, *xb = x + (size_t)(t + 1 < ntok ? t + 1 : t) * kq;
            __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
            __m256i b0 = a0, b1 = a0, b2 = a0, b3 = a0;
            for (size_t j = 0; j < kq; j += 16) {
                __m256i xa0 = ld_i16(xa + j), xb0 = ld_i16(xb + j);
                __m256i v0 = ld_i16(wr[0] + j), v1 = ld_i16(wr[1] + j);
                a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(v0, xa0));
                b0 = _mm256_add_epi32(b0, _mm256_madd_epi16(v0, xb0));
                a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(v1, xa0));
                b1 = _mm256_add_epi32(b1, _mm256_madd_epi16(v1, xb0));
                __m256i v2 = ld_i16(wr[2] + j), v3 = ld_i16(wr[3] + j);
                a2 = _mm256_add_epi32(a2, _mm256_madd_epi16(v2, xa0));
                b2 = _mm256_add_epi32(b2, _mm256_madd_epi16(v2, xb0));
                a3 = _mm256_add_epi32(a3, _mm256_madd_epi16(v3, xa0));
                b3 = _mm256_add_epi32(b3, _mm256_madd_epi16(v3, xb0));
            }
            int32_t sa[4] = {hsum_i32(a0), hsum_i32(a1), hsum_i32(a2), hsum_i32(a3)};
            int32_t sb[4] = {hsum_i32(b0), hsum_i32(b1), hsum_i32(b2), hsum_i32(b3)};
            for (int i = 0; i < 4 && r + i < nrows; i++) {
                y[(size_t)t * ldy + r + i] = scale[r + i] * xs[t] * (float)sa[i];
                if (t + 1 < ntok) y[(size_t)(t + 1) * ldy + r + i] = scale[r + i] * xs[t + 1] * (float)sb[i];
            }
        }
    }
}

/* ---- activation quantization: identical codes to the scalar set ---- */

float rtr_quant_row_avx2(const float *x, int n, int kpad, int8_t *q, int32_t *sum) {
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 mx = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) /* max(a, mx) keeps mx when a is NaN, as the scalar loop does */
        mx = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x + i), absmask), mx);
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    float m = _mm_cvtss_f32(m4);
    for (; i < n; i++) {
        float a = fabsf(x[i]);
        if (a > m) m = a;
    }
    if (!(m > 1e-5f)) m = 1e-5f;
    float s = 127.0f / m;
    const __m256 vs = _mm256_set1_ps(s), hi = _mm256_set1_ps(127.0f), lo = _mm256_set1_ps(-128.0f);
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    __m256i acc = _mm256_setzero_si256();
#define QCODE(p)                                                                                  \
    _mm256_cvtps_epi32(_mm256_round_ps(                                                           \
        _mm256_max_ps(_mm256_min_ps(_mm256_mul_ps(_mm256_loadu_ps(p), vs), hi), lo),              \
        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC))
    for (i = 0; i + 32 <= n; i += 32) {
        __m256i c0 = QCODE(x + i), c1 = QCODE(x + i + 8), c2 = QCODE(x + i + 16), c3 = QCODE(x + i + 24);
        acc = _mm256_add_epi32(acc, _mm256_add_epi32(_mm256_add_epi32(c0, c1), _mm256_add_epi32(c2, c3)));
        __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(c0, c1), _mm256_packs_epi32(c2, c3));
        _mm256_storeu_si256((__m256i *)(q + i), _mm256_permutevar8x32_epi32(p, perm));
    }
#undef QCODE
    int32_t total = hsum_i32(acc);
    for (; i < n; i++) {
        float v = x[i] * s;
        v = v < 127.0f ? v : 127.0f;
        v = v > -128.0f ? v : -128.0f;
        q[i] = (int8_t)rintf(v);
        total += q[i];
    }
    if (kpad > n) memset(q + n, 0, (size_t)(kpad - n));
    *sum = total;
    return m / 127.0f;
}

/* ---- attention over the f16 cache ---- */

float rtr_dot_f32_f16_avx2(const float *x, const uint16_t *y, int n) {
    __m256 a = _mm256_setzero_ps(), b = a;
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        a = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), ld_f16(y + i), a);
        b = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), ld_f16(y + i + 8), b);
    }
    for (; i + 8 <= n; i += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), ld_f16(y + i), a);
    float s = hsum_ps(_mm256_add_ps(a, b));
    for (; i < n; i++) s += x[i] * f16_1(y[i]);
    return s;
}

float rtr_dot_f32_avx2(const float *x, const float *y, int n) {
    __m256 a = _mm256_setzero_ps(), b = a;
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        a = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), a);
        b = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), b);
    }
    for (; i + 8 <= n; i += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), a);
    float s = hsum_ps(_mm256_add_ps(a, b));
    for (; i < n; i++) s += x[i] * y[i];
    return s;
}

void rtr_axpy_f32_avx2(float a, const float *v, float *y, int n) {
    const __m256 va = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(v + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * v[i];
}

void rtr_axpy_f16_avx2(float a, const uint16_t *v, float *y, int n) {
    const __m256 va = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, ld_f16(v + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * f16_1(v[i]);
}

/* ---- attention over a list of cache rows ---- */

/* dots: eight rows at a time (eight independent FMA chains keep both FMA units busy; the query
 * chunk is loaded once for all eight), then one. Written out register by register: as arrays
 * the compiler keeps the accumulators in memory. */
#define ATTN_DOTS(name, T, LD, DOT1)                                                               \
    void name(const float *q, const T *rows, size_t stride, const int32_t *idx, int n, int hd,     \
              float scale, float *out) {                                                           \
        int i = 0;                                                                                 \
        const __m256 vs = _mm256_set1_ps(scale);                                                   \
        if ((hd & 7) == 0)                                                                         \
            for (; i + 8 <= n; i += 8) {                                                           \
                const T *r0 = rows + (size_t)idx[i] * stride, *r1 = rows + (size_t)idx[i + 1] * stride; \
                const T *r2 = rows + (size_t)idx[i + 2] * stride, *r3 = rows + (size_t)idx[i + 3] * stride; \
                const T *r4 = rows + (size_t)idx[i + 4] * stride, *r5 = rows + (size_t)idx[i + 5] * stride; \
                const T *r6 = rows + (size_t)idx[i + 6] * stride, *r7 = rows + (size_t)idx[i + 7] * stride; \
                __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0; \
                for (int c = 0; c < hd; c += 8) {                                                  \
                    __m256 qv = _mm256_loadu_ps(q + c);                                            \
                    a0 = _mm256_fmadd_ps(qv, LD(r0 + c), a0);                                      \
                    a1 = _mm256_fmadd_ps(qv, LD(r1 + c), a1);                                      \
                    a2 = _mm256_fmadd_ps(qv, LD(r2 + c), a2);                                      \
                    a3 = _mm256_fmadd_ps(qv, LD(r3 + c), a3);                                      \
                    a4 = _mm256_fmadd_ps(qv, LD(r4 + c), a4);                                      \
                    a5 = _mm256_fmadd_ps(qv, LD(r5 + c), a5);                                      \
                    a6 = _mm256_fmadd_ps(qv, LD(r6 + c), a6);                                      \
                    a7 = _mm256_fmadd_ps(qv, LD(r7 + c), a7);                                      \
                }                                                                                  \
                /* transpose-and-add: lane j of s is the sum of aj */                             \
                __m256 h0 = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));        \
                __m256 h1 = _mm256_hadd_ps(_mm256_hadd_ps(a4, a5), _mm256_hadd_ps(a6, a7));        \
                __m256 s = _mm256_add_ps(_mm256_permute2f128_ps(h0, h1, 0x20),                     \
                                         _mm256_permute2f128_ps(h0, h1, 0x31));                    \
                _mm256_storeu_ps(out + i, _mm256_mul_ps(s, vs));                                   \
            }                                                                                      \
        for (; i < n; i++) out[i] = scale * DOT1(q, rows + (size_t)idx[i] * stride, hd);           \
    }

/* wsum: 64 output floats stay in eight registers while every row adds to them */
#define ATTN_WSUM(name, T, LD, LD1)                                                                \
    void name(const float *p, const T *rows, size_t stride, const int32_t *idx, int n, int hd,     \
              float *out) {                                                                        \
        int c = 0;                                                                                 \
        for (; c + 64 <= hd; c += 64) {                                                            \
            float *o = out + c;                                                                    \
            __m256 a0 = _mm256_loadu_ps(o), a1 = _mm256_loadu_ps(o + 8), a2 = _mm256_loadu_ps(o + 16); \
            __m256 a3 = _mm256_loadu_ps(o + 24), a4 = _mm256_loadu_ps(o + 32), a5 = _mm256_loadu_ps(o + 40); \
            __m256 a6 = _mm256_loadu_ps(o + 48), a7 = _mm256_loadu_ps(o + 56);                     \
            for (int i = 0; i < n; i++) {                                                          \
                const T *r = rows + (size_t)idx[i] * stride + c;                                   \
                __m256 pv = _mm256_broadcast_ss(p + i);                                            \
                a0 = _mm256_fmadd_ps(pv, LD(r), a0);                                               \
                a1 = _mm256_fmadd_ps(pv, LD(r + 8), a1);                                           \
                a2 = _mm256_fmadd_ps(pv, LD(r + 16), a2);                                          \
                a3 = _mm256_fmadd_ps(pv, LD(r + 24), a3);                                          \
                a4 = _mm256_fmadd_ps(pv, LD(r + 32), a4);                                          \
                a5 = _mm256_fmadd_ps(pv, LD(r + 40), a5);                                          \
                a6 = _mm256_fmadd_ps(pv, LD(r + 48), a6);                                          \
                a7 = _mm256_fmadd_ps(pv, LD(r + 56), a7);                                          \
            }                                                                                      \
            _mm256_storeu_ps(out + c, a0);                                                         \
            _mm256_storeu_ps(out + c + 8, a1);                                                     \
            _mm256_storeu_ps(out + c + 16, a2);                                                    \
            _mm256_storeu_ps(out + c + 24, a3);                                                    \
            _mm256_storeu_ps(out + c + 32, a4);                                                    \
            _mm256_storeu_ps(out + c + 40, a5);                                                    \
            _mm256_storeu_ps(out + c + 48, a6);                                                    \
            _mm256_storeu_ps(out + c + 56, a7);                                                    \
        }                                                                                          \
        for (; c + 8 <= hd; c += 8) {                                                              \
            __m256 a = _mm256_loadu_ps(out + c);                                                   \
            for (int i = 0; i < n; i++)                                                            \
                a = _mm256_fmadd_ps(_mm256_broadcast_ss(p + i), LD(rows + (size_t)idx[i] * stride + c), a); \
            _mm256_storeu_ps(out + c, a);                                                          \
        }                                                                                          \
        for (; c < hd; c++) {                                                                      \
            float a = out[c];                                                                      \
            for (int i = 0; i < n; i++) a += p[i] * LD1(rows[(size_t)idx[i] * stride + c]);       \
            out[c] = a;                                                                            \
        }                                                                                          \
    }

static inline float f32_1(float x) { return x; }
ATTN_DOTS(rtr_attn_dots_f32_avx2, float, _mm256_loadu_ps, rtr_dot_f32_avx2)
ATTN_DOTS(rtr_attn_dots_f16_avx2, uint16_t, ld_f16, rtr_dot_f32_f16_avx2)
ATTN_WSUM(rtr_attn_wsum_f32_avx2, float, _mm256_loadu_ps, f32_1)
ATTN_WSUM(rtr_attn_wsum_f16_avx2, uint16_t, ld_f16, f16_1)

/* ---- 8-bit weights against float activations (the q8 LM head) ---- */

/* eight int8 weights as eight floats */
static inline __m256 ld_i8f(const int8_t *p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p)));
}

/* Rows are kq = round_up(k, 64) bytes (zero past k); x rows are k floats, so the tail past the
 * last multiple of 32 goes element by element. Decode streams one row after another. */
void rtr_q8f_gemm_avx2(const int8_t *w, const float *scale, int nrows, int k, const float *x, int ntok,
                       float *y, size_t ldy) {
    size_t kq = (size_t)(k + 63) / 64 * 64;
    int k32 = k & ~31, k16 = k & ~15;
    for (int t = 0; t < ntok; t++) {
        const float *xt = x + (size_t)t * k;
        int r = 0;
        /* four rows at a time, prefetching the next four (PREFETCH4) */
        for (; r + 4 <= nrows; r += 4) {
            const int8_t *p0 = w + (size_t)r * kq, *p1 = p0 + kq, *p2 = p1 + kq, *p3 = p2 + kq;
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
            int j = 0;
            for (; j < k16; j += 16) {
                if (!(j & 63)) PREFETCH4(p0, p1, p2, p3, j, 4 * kq);
                __m256 x0 = _mm256_loadu_ps(xt + j), x1 = _mm256_loadu_ps(xt + j + 8);
                a0 = _mm256_fmadd_ps(ld_i8f(p0 + j), x0, a0);
                a1 = _mm256_fmadd_ps(ld_i8f(p1 + j), x0, a1);
                a2 = _mm256_fmadd_ps(ld_i8f(p2 + j), x0, a2);
                a3 = _mm256_fmadd_ps(ld_i8f(p3 + j), x0, a3);
                b0 = _mm256_fmadd_ps(ld_i8f(p0 + j + 8), x1, b0);
                b1 = _mm256_fmadd_ps(ld_i8f(p1 + j + 8), x1, b1);
                b2 = _mm256_fmadd_ps(ld_i8f(p2 + j + 8), x1, b2);
                b3 = _mm256_fmadd_ps(ld_i8f(p3 + j + 8), x1, b3);
            }
            float s0 = hsum_ps(_mm256_add_ps(a0, b0)), s1 = hsum_ps(_mm256_add_ps(a1, b1));
            float s2 = hsum_ps(_mm256_add_ps(a2, b2)), s3 = hsum_ps(_mm256_add_ps(a3, b3));
            for (; j < k; j++) {
                s0 += (float)p0[j] * xt[j]; s1 += (float)p1[j] * xt[j];
                s2 += (float)p2[j] * xt[j]; s3 += (float)p3[j] * xt[j];
            }
            float *yt = y + (size_t)t * ldy + r;
            yt[0] = scale[r] * s0; yt[1] = scale[r + 1] * s1; yt[2] = scale[r + 2] * s2; yt[3] = scale[r + 3] * s3;
        }
        for (; r < nrows; r++) {
            const int8_t *p = w + (size_t)r * kq;
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            int j = 0;
            for (; j < k32; j += 32) {
                _mm_prefetch((const char *)(p + j + 4096), _MM_HINT_T0);
                a0 = _mm256_fmadd_ps(ld_i8f(p + j), _mm256_loadu_ps(xt + j), a0);
                a1 = _mm256_fmadd_ps(ld_i8f(p + j + 8), _mm256_loadu_ps(xt + j + 8), a1);
                a2 = _mm256_fmadd_ps(ld_i8f(p + j + 16), _mm256_loadu_ps(xt + j + 16), a2);
                a3 = _mm256_fmadd_ps(ld_i8f(p + j + 24), _mm256_loadu_ps(xt + j + 24), a3);
            }
            float s = hsum_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
            for (; j < k; j++) s += (float)p[j] * xt[j];
            y[(size_t)t * ldy + r] = scale[r] * s;
        }
    }
}
