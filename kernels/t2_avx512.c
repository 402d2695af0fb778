/* t2_avx512.c: the ternary and int8 products for AVX-512 VNNI, and the avx512vnni kernel table.
 *
 * Same unpacking as the AVX2 set (c = w + 1 in {0, 1, 2} through a pshufb table, then
 * sum(c*x) - sum(x)), but vpdpbusd multiplies c (unsigned) by x (signed) and accumulates straight
 * into int32 lanes without saturation, so no int16 stage exists to overflow. One 512-bit register
 * holds two T2 blocks; activations for a block pair are gathered into matching 512-bit vectors.
 * q8_gemm widens int8 to int16 and uses vpdpwssd (exact for every input). The 8-bit head on float
 * activations (q8f_gemm) widens sixteen weights an instruction; the other float kernels and
 * quant_row are the AVX2 ones: they run unchanged on any AVX-512 CPU.
 */
#include "isa.h"

#include <immintrin.h>
#include <string.h>

#define KC 2048 /* weights per row unpacked at once (4 rows x 2 KB) */
#define UNROLL4 _Pragma("GCC unroll 4") /* keeps small arrays of accumulators in registers */

static inline __m512i lut_wp1(void) {
    /* code -> w + 1: 00 -> 1, 01 -> 0, 10 -> 2, 11 -> 1 (never reaches a kernel) */
    return _mm512_broadcast_i32x4(_mm_setr_epi8(1, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0));
}

static inline __m512i slice(__m512i v, int sh, __m512i lut, __m512i m3) {
    return _mm512_shuffle_epi8(lut, _mm512_and_si512(_mm512_srli_epi16(v, (unsigned)sh), m3));
}

/* 32 bytes at p in the low half, 32 bytes at p2 in the high half (p2 NULL: zeros) */
static inline __m512i pair(const void *p, const void *p2) {
    __m512i v = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_loadu_si256((const __m256i *)p), 0);
    if (p2) v = _mm512_inserti64x4(v, _mm256_loadu_si256((const __m256i *)p2), 1);
    return v;
}

static inline __m512i block_pair_dot(__m512i acc, __m512i v, const __m512i xv[4], __m512i lut,
                                     __m512i m3) {
    acc = _mm512_dpbusd_epi32(acc, slice(v, 0, lut, m3), xv[0]);
    acc = _mm512_dpbusd_epi32(acc, slice(v, 2, lut, m3), xv[1]);
    acc = _mm512_dpbusd_epi32(acc, slice(v, 4, lut, m3), xv[2]);
    acc = _mm512_dpbusd_epi32(acc, slice(v, 6, lut, m3), xv[3]);
    return acc;
}

/* rows w[0..nr-1] (nr <= 4) against one token: out[r] = sum(w*x) */
static void gemv(const uint8_t *w, size_t rb, int nr, const int8_t *x, int nb, int32_t xsum,
                 int32_t *out) {
    const __m512i lut = lut_wp1(), m3 = _mm512_set1_epi8(3);
    __m512i acc[4];
    UNROLL4 for (int r = 0; r < 4; r++) acc[r] = _mm512_setzero_si512();
    for (int b = 0; b < nb; b += 2) {
        int two = b + 1 < nb;
        const int8_t *x0 = x + (size_t)b * 128, *x1 = two ? x0 + 128 : NULL;
        __m512i xv[4];
        UNROLL4 for (int i = 0; i < 4; i++) xv[i] = pair(x0 + 32 * i, x1 ? x1 + 32 * i : NULL);
        UNROLL4 for (int r = 0; r < nr; r++) {
            const uint8_t *p = w + (size_t)r * rb + (size_t)b * 32;
            /* the same spot of the next group's row: a steady stream 4 rows ahead, which the
             * hardware prefetchers of server cores do not keep up with on their own */
            _mm_prefetch((const char *)(p + 4 * rb), _MM_HINT_T0);
            __m512i v = two ? _mm512_loadu_si512(p) : pair(p, NULL);
            acc[r] = block_pair_dot(acc[r], v, xv, lut, m3);
        }
    }
    for (int r = 0; r < nr; r++) out[r] = _mm512_reduce_add_epi32(acc[r]) - xsum;
}

/* buf[s][r][64]: c for row r, weights 64s..64s+63 of the chunk; rows past nr get c = 0 */
static void unpack4(const uint8_t *w, size_t rb, int nr, int nb, uint8_t *buf) {
    const __m256i lut = _mm256_broadcastsi128_si256(_mm_setr_epi8(1, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0));
    const __m256i m3 = _mm256_set1_epi8(3);
    for (int r = 0; r < 4; r++) {
        for (int b = 0; b < nb; b++) {
            uint8_t *d = buf + ((size_t)2 * b * 4 + r) * 64; /* slices 0,1 -> step 2b, 2,3 -> 2b+1 */
            if (r >= nr) {
                memset(d, 0, 64);
                memset(d + 256, 0, 64);
                continue;
            }
            __m256i v = _mm256_loadu_si256((const __m256i *)(w + (size_t)r * rb + (size_t)b * 32));
            for (int i = 0; i < 4; i++) {
                __m256i c = _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(v, 2 * i), m3));
                _mm256_store_si256((__m256i *)(d + (i / 2) * 256 + (i % 2) * 32), c);
            }
        }
    }
}

static void gemm_batch(const uint8_t *w, size_t rb, int nrows, const int8_t *x,
                       const int32_t *xsum, int kpad, int ntok, int32_t *out, size_t os) {
    _Alignas(64) uint8_t buf[4 * KC];
    for (int k0 = 0; k0 < kpad; k0 += KC) {
        int kc = kpad - k0 < KC ? kpad - k0 : KC, nst = kc / 64;
        for (int r0 = 0; r0 < nrows; r0 += 4) {
            int nr = nrows - r0 < 4 ? nrows - r0 : 4;
            unpack4(w + (size_t)r0 * rb + (size_t)k0 / 4, rb, nr, kc / 128, buf);
            for (int t0 = 0; t0 < ntok; t0 += 4) {
                int nt = ntok - t0 < 4 ? ntok - t0 : 4;
                const int8_t *xt[4];
                for (int t = 0; t < 4; t++) xt[t] = x + (size_t)(t0 + (t < nt ? t : nt - 1)) * kpad + k0;
                __m512i acc[4][4]; /* [row][token]: fully unrolled into 16 registers */
                UNROLL4 for (int r = 0; r < 4; r++)
                    UNROLL4 for (int t = 0; t < 4; t++) acc[r][t] = _mm512_setzero_si512();
                for (int s = 0; s < nst; s++) {
                    __m512i xv[4];
                    UNROLL4 for (int t = 0; t < 4; t++) xv[t] = _mm512_loadu_si512(xt[t] + (size_t)s * 64);
                    UNROLL4 for (int r = 0; r < 4; r++) {
                        __m512i c = _mm512_load_si512(buf + ((size_t)s * 4 + r) * 64);
                        UNROLL4 for (int t = 0; t < 4; t++) acc[r][t] = _mm512_dpbusd_epi32(acc[r][t], c, xv[t]);
                    }
                }
                for (int t = 0; t < nt; t++) {
                    int32_t *o = out + (size_t)(t0 + t) * os + r0;
                    for (int r = 0; r < nr; r++) {
                        int32_t v = _mm512_reduce_add_epi32(acc[r][t]);
                        o[r] = k0 == 0 ? v - xsum[t0 + t] : o[r] + v;
                    }
                }
            }
        }
    }
}

static int32_t sum_i8(const int8_t *x, int n) {
    int32_t s = 0;
    for (int i = 0; i < n; i++) s += x[i];
    return s;
}

static void t2_gemm(const uint8_t *w, size_t rb, int nrows, const int8_t *x, const int32_t *xsum,
                    int kpad, int ntok, int32_t *out, size_t os) {
    if (!xsum) {
        int32_t xs[64];
        for (int t0 = 0; t0 < ntok; t0 += 64) {
            int nt = ntok - t0 < 64 ? ntok - t0 : 64;
            for (int t = 0; t < nt; t++) xs[t] = sum_i8(x + (size_t)(t0 + t) * kpad, kpad);
            t2_gemm(w, rb, nrows, x + (size_t)t0 * kpad, xs, kpad, nt, out + (size_t)t0 * os, os);
        }
        return;
    }
    if (ntok > 1) {
        gemm_batch(w, rb, nrows, x, xsum, kpad, ntok, out, os);
        return;
    }
    for (int r = 0; r < nrows; r += 4)
        gemv(w + (size_t)r * rb, rb, nrows - r < 4 ? nrows - r : 4, x, kpad / 128, xsum[0], out + r);
}

static inline __m512i ld_i16(const int8_t *p) {
    return _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)p));
}

/* int8 rows of kq = round_up(k, 64); x zero past k, so whole 32-byte steps are exact */
void rtr_q8_gemm_avx512vnni(const int8_t *w, const float *scale, int nrows, int k, const int8_t *x,
                            const float *xs, int ntok, float *y, size_t ldy) {
    size_t kq = (size_t)(k + 63) / 64 * 64;
    for (int r = 0; r < nrows; r += 4) {
        int nr = nrows - r < 4 ? nrows - r : 4;
        for (int t = 0; t < ntok; t += 2) {
            const int8_t *xa = x + (size_t)t * kq, *xb = x + (size_t)(t + 1 < ntok ? t + 1 : t) * kq;
            __m512i a[4], b[4];
            UNROLL4 for (int i = 0; i < 4; i++) a[i] = b[i] = _mm512_setzero_si512();
            for (size_t j = 0; j < kq; j += 32) {
                __m512i va = ld_i16(xa + j), vb = ld_i16(xb + j);
                UNROLL4 for (int i = 0; i < 4; i++) {
                    __m512i v = ld_i16(w + (size_t)(r + (i < nr ? i : nr - 1)) * kq + j);
                    a[i] = _mm512_dpwssd_epi32(a[i], v, va);
                    b[i] = _mm512_dpwssd_epi32(b[i], v, vb);
                }
            }
            for (int i = 0; i < nr; i++) {
                y[(size_t)t * ldy + r + i] = scale[r + i] * xs[t] * (float)_mm512_reduce_add_epi32(a[i]);
                if (t + 1 < ntok)
                    y[(size_t)(t + 1) * ldy + r + i] = scale[r + i] * xs[t + 1] * (float)_mm512_reduce_add_epi32(b[i]);
            }
        }
    }
}

static inline __m512 ld_i8f16(const int8_t *p) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)p)));
}

/* The 8-bit head against float activations: as the AVX2 kernel (four rows at a time, the next
 * four prefetched once a cache line), with sixteen weights a widening instead of eight, half its
 * instructions per weight (BENCH.md: about 6% more tokens a second with the 8-bit head on a
 * Xeon). The last group repeats its last row rather than running a loop of its own. Rows are
 * kq = round_up(k, 64) bytes; the tail past k & ~15 goes element by element (the padding holds
 * garbage). */
void rtr_q8f_gemm_avx512(const int8_t *w, const float *scale, int nrows, int k, const float *x, int ntok, float *y,
                         size_t ldy) {
    size_t kq = (size_t)(k + 63) / 64 * 64;
    int k32 = k & ~31, k16 = k & ~15;
    for (int t = 0; t < ntok; t++) {
        const float *xt = x + (size_t)t * k;
        for (int r = 0; r < nrows; r += 4) {
            int nr = nrows - r < 4 ? nrows - r : 4;
            const int8_t *p[4];
            UNROLL4 for (int i = 0; i < 4; i++) p[i] = w + (size_t)(r + (i < nr ? i : nr - 1)) * kq;
            __m512 a[4], b[4];
            UNROLL4 for (int i = 0; i < 4; i++) a[i] = b[i] = _mm512_setzero_ps();
            int j = 0;
            for (; j < k32; j += 32) {
                if (!(j & 63)) UNROLL4 for (int i = 0; i < 4; i++) _mm_prefetch((const char *)(p[i] + j + 4 * kq), _MM_HINT_T0);
                __m512 x0 = _mm512_loadu_ps(xt + j), x1 = _mm512_loadu_ps(xt + j + 16);
                UNROLL4 for (int i = 0; i < 4; i++) {
                    a[i] = _mm512_fmadd_ps(ld_i8f16(p[i] + j), x0, a[i]);
                    b[i] = _mm512_fmadd_ps(ld_i8f16(p[i] + j + 16), x1, b[i]);
                }
            }
            for (; j < k16; j += 16) {
                __m512 x0 = _mm512_loadu_ps(xt + j);
                UNROLL4 for (int i = 0; i < 4; i++) a[i] = _mm512_fmadd_ps(ld_i8f16(p[i] + j), x0, a[i]);
            }
            for (int i = 0; i < nr; i++) {
                float s = _mm512_reduce_add_ps(_mm512_add_ps(a[i], b[i]));
                for (int e = j; e < k; e++) s += (float)p[i][e] * xt[e];
                y[(size_t)t * ldy + r + i] = scale[r + i] * s;
            }
        }
    }
}

const rtr_kernels rtr_kernels_avx512vnni = {
    .name = "avx512vnni",
    .t2_gemm = t2_gemm,
    .q8_gemm = rtr_q8_gemm_avx512vnni,
    RTR_AVX512_FLOAT_KERNELS,
};
