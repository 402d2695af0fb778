/* t2_avx2.c: the ternary matrix product for AVX2, and the avx2 kernel table.
 *
 * A 32-byte T2 block holds 128 weights as four 32-weight slices (bits 0-1, 2-3, 4-5, 6-7 of each
 * byte). A slice is unpacked with a shift, an AND and a pshufb that maps each code to c = w + 1
 * in {0, 1, 2}; maddubs(c, x) then gives pairs c0*x0 + c1*x1, and sum(c*x) - sum(x) = sum(w*x).
 *
 * No saturation or overflow is possible for any int8 x: a maddubs pair is at most 2*2*128 = 512
 * in magnitude, so 32 slices summed in int16 stay within +-16384; sums are then widened to int32
 * with madd(., 1).
 *
 * ntok = 1 (decode) streams the weights: four rows at a time share the loaded activations.
 * ntok > 1 (prefill) first unpacks four rows x KC weights into an L1 buffer, then runs that block
 * against the tokens two at a time, so each unpacked weight serves every token of the batch.
 */
#include "isa.h"

#include <immintrin.h>
#include <string.h>

#define KC 2048 /* weights per row unpacked at once: 4 rows x 2 KB stay in L1 */
#define SUB 32  /* 32-weight slices summed in int16 before widening: |sum| <= 32*512 */

/* code -> c = w + 1: 00 -> 1 (w 0), 01 -> 0 (w -1), 10 -> 2 (w +1); 11 never reaches a kernel */
#define LUT_WP1 _mm256_setr_epi8(1, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, \
                                 1, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)

static inline __m256i slice(__m256i v, __m256i lut, __m256i m3) {
    return _mm256_shuffle_epi8(lut, _mm256_and_si256(v, m3));
}

/* sum(c*x) over one block, as 16 int16 lanes (each within +-2048) */
static inline __m256i block_dot(const uint8_t *p, __m256i x0, __m256i x1, __m256i x2, __m256i x3,
                                __m256i lut, __m256i m3) {
    __m256i v = _mm256_loadu_si256((const __m256i *)p);
    __m256i s0 = _mm256_maddubs_epi16(slice(v, lut, m3), x0);
    __m256i s1 = _mm256_maddubs_epi16(slice(_mm256_srli_epi16(v, 2), lut, m3), x1);
    __m256i s2 = _mm256_maddubs_epi16(slice(_mm256_srli_epi16(v, 4), lut, m3), x2);
    __m256i s3 = _mm256_maddubs_epi16(slice(_mm256_srli_epi16(v, 6), lut, m3), x3);
    return _mm256_add_epi16(_mm256_add_epi16(s0, s1), _mm256_add_epi16(s2, s3));
}

/* [sum a0, sum a1, sum a2, sum a3] */
static inline __m128i hsum4(__m256i a0, __m256i a1, __m256i a2, __m256i a3) {
    __m256i s = _mm256_hadd_epi32(_mm256_hadd_epi32(a0, a1), _mm256_hadd_epi32(a2, a3));
    return _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
}

static inline int32_t hsum1(__m256i a) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

/* ---- ntok = 1: stream the rows ---- */

static void gemv4(const uint8_t *w, size_t rb, const int8_t *x, int nb, int32_t xsum,
                  int32_t *out) {
    const __m256i lut = LUT_WP1, m3 = _mm256_set1_epi8(3), one = _mm256_set1_epi16(1);
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    const uint8_t *w0 = w, *w1 = w + rb, *w2 = w + 2 * rb, *w3 = w + 3 * rb;
    for (int b = 0; b < nb; b++) {
        const int8_t *xb = x + (size_t)b * 128;
        __m256i x0 = _mm256_loadu_si256((const __m256i *)xb);
        __m256i x1 = _mm256_loadu_si256((const __m256i *)(xb + 32));
        __m256i x2 = _mm256_loadu_si256((const __m256i *)(xb + 64));
        __m256i x3 = _mm256_loadu_si256((const __m256i *)(xb + 96));
        size_t o = (size_t)b * 32;
        a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(block_dot(w0 + o, x0, x1, x2, x3, lut, m3), one));
        a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(block_dot(w1 + o, x0, x1, x2, x3, lut, m3), one));
        a2 = _mm256_add_epi32(a2, _mm256_madd_epi16(block_dot(w2 + o, x0, x1, x2, x3, lut, m3), one));
        a3 = _mm256_add_epi32(a3, _mm256_madd_epi16(block_dot(w3 + o, x0, x1, x2, x3, lut, m3), one));
    }
    __m128i s = _mm_sub_epi32(hsum4(a0, a1, a2, a3), _mm_set1_epi32(xsum));
    _mm_storeu_si128((__m128i *)out, s);
}

static int32_t gemv1(const uint8_t *w, const int8_t *x, int nb, int32_t xsum) {
    const __m256i lut = LUT_WP1, m3 = _mm256_set1_epi8(3), one = _mm256_set1_epi16(1);
    __m256i a = _mm256_setzero_si256();
    for (int b = 0; b < nb; b++) {
        const int8_t *xb = x + (size_t)b * 128;
        __m256i x0 = _mm256_loadu_si256((const __m256i *)xb);
        __m256i x1 = _mm256_loadu_si256((const __m256i *)(xb + 32));
        __m256i x2 = _mm256_loadu_si256((const __m256i *)(xb + 64));
        __m256i x3 = _mm256_loadu_si256((const __m256i *)(xb + 96));
        a = _mm256_add_epi32(a, _mm256_madd_epi16(block_dot(w + (size_t)b * 32, x0, x1, x2, x3, lut, m3), one));
    }
    return hsum1(a) - xsum;
}

/* ---- ntok > 1: unpack four rows once, run them against every token ---- */

/* buf[s][r][32]: c for row r, weights 32s..32s+31 of the chunk; rows past nr get c = 0 */
static void unpack4(const uint8_t *w, size_t rb, int nr, int nb, uint8_t *buf) {
    const __m256i lut = LUT_WP1, m3 = _mm256_set1_epi8(3);
    for (int r = 0; r < 4; r++) {
        if (r >= nr) {
            for (int s = 0; s < nb * 4; s++) memset(buf + ((size_t)s * 4 + r) * 32, 0, 32);
            continue;
        }
        const uint8_t *p = w + (size_t)r * rb;
        for (int b = 0; b < nb; b++) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(p + (size_t)b * 32));
            uint8_t *d = buf + ((size_t)b * 16 + r) * 32;
            _mm256_store_si256((__m256i *)d, slice(v, lut, m3));
            _mm256_store_si256((__m256i *)(d + 128), slice(_mm256_srli_epi16(v, 2), lut, m3));
            _mm256_store_si256((__m256i *)(d + 256), slice(_mm256_srli_epi16(v, 4), lut, m3));
            _mm256_store_si256((__m256i *)(d + 384), slice(_mm256_srli_epi16(v, 6), lut, m3));
        }
    }
}

static inline void put4(int32_t *o, __m128i s, int nr, int first, int32_t xsum) {
    if (first) s = _mm_sub_epi32(s, _mm_set1_epi32(xsum));
    if (nr == 4) {
        if (!first) s = _mm_add_epi32(s, _mm_loadu_si128((const __m128i *)o));
        _mm_storeu_si128((__m128i *)o, s);
        return;
    }
    int32_t v[4];
    _mm_storeu_si128((__m128i *)v, s);
    for (int r = 0; r < nr; r++) o[r] = first ? v[r] : o[r] + v[r];
}

#define MAC(acc, c, x) acc = _mm256_add_epi16(acc, _mm256_maddubs_epi16(c, x))
#define WIDEN(acc32, acc16) acc32 = _mm256_add_epi32(acc32, _mm256_madd_epi16(acc16, one))

/* rows r0..r0+3 (unpacked in buf, nst slices) against tokens xa and xb */
static void tile4x2(const uint8_t *buf, int nst, const int8_t *xa, const int8_t *xb,
                    __m128i *ra, __m128i *rbv) {
    const __m256i one = _mm256_set1_epi16(1);
    __m256i A0 = _mm256_setzero_si256(), A1 = A0, A2 = A0, A3 = A0;
    __m256i B0 = A0, B1 = A0, B2 = A0, B3 = A0;
    for (int s0 = 0; s0 < nst; s0 += SUB) {
        int s1 = s0 + SUB < nst ? s0 + SUB : nst;
        __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
        __m256i b0 = a0, b1 = a0, b2 = a0, b3 = a0;
        for (int s = s0; s < s1; s++) {
            const uint8_t *c = buf + (size_t)s * 128;
            __m256i x0 = _mm256_loadu_si256((const __m256i *)(xa + (size_t)s * 32));
            __m256i x1 = _mm256_loadu_si256((const __m256i *)(xb + (size_t)s * 32));
            __m256i c0 = _mm256_load_si256((const __m256i *)c);
            MAC(a0, c0, x0); MAC(b0, c0, x1);
            __m256i c1 = _mm256_load_si256((const __m256i *)(c + 32));
            MAC(a1, c1, x0); MAC(b1, c1, x1);
            __m256i c2 = _mm256_load_si256((const __m256i *)(c + 64));
            MAC(a2, c2, x0); MAC(b2, c2, x1);
            __m256i c3 = _mm256_load_si256((const __m256i *)(c + 96));
            MAC(a3, c3, x0); MAC(b3, c3, x1);
        }
        WIDEN(A0, a0); WIDEN(A1, a1); WIDEN(A2, a2); WIDEN(A3, a3);
        WIDEN(B0, b0); WIDEN(B1, b1); WIDEN(B2, b2); WIDEN(B3, b3);
    }
    *ra = hsum4(A0, A1, A2, A3);
    *rbv = hsum4(B0, B1, B2, B3);
}

static __m128i tile4x1(const uint8_t *buf, int nst, const int8_t *xa) {
    const __m256i one = _mm256_set1_epi16(1);
    __m256i A0 = _mm256_setzero_si256(), A1 = A0, A2 = A0, A3 = A0;
    for (int s0 = 0; s0 < nst; s0 += SUB) {
        int s1 = s0 + SUB < nst ? s0 + SUB : nst;
        __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
        for (int s = s0; s < s1; s++) {
            const uint8_t *c = buf + (size_t)s * 128;
            __m256i x0 = _mm256_loadu_si256((const __m256i *)(xa + (size_t)s * 32));
            MAC(a0, _mm256_load_si256((const __m256i *)c), x0);
            MAC(a1, _mm256_load_si256((const __m256i *)(c + 32)), x0);
            MAC(a2, _mm256_load_si256((const __m256i *)(c + 64)), x0);
            MAC(a3, _mm256_load_si256((const __m256i *)(c + 96)), x0);
        }
        WIDEN(A0, a0); WIDEN(A1, a1); WIDEN(A2, a2); WIDEN(A3, a3);
    }
    return hsum4(A0, A1, A2, A3);
}

static void gemm_batch(const uint8_t *w, size_t rb, int nrows, const int8_t *x,
                       const int32_t *xsum, int kpad, int ntok, int32_t *out, size_t os) {
    _Alignas(64) uint8_t buf[4 * KC];
    for (int k0 = 0; k0 < kpad; k0 += KC) {
        int kc = kpad - k0 < KC ? kpad - k0 : KC, nb = kc / 128, nst = kc / 32, first = k0 == 0;
        for (int r0 = 0; r0 < nrows; r0 += 4) {
            int nr = nrows - r0 < 4 ? nrows - r0 : 4;
            unpack4(w + (size_t)r0 * rb + (size_t)k0 / 4, rb, nr, nb, buf);
            int t = 0;
            for (; t + 2 <= ntok; t += 2) {
                __m128i sa, sb;
                tile4x2(buf, nst, x + (size_t)t * kpad + k0, x + (size_t)(t + 1) * kpad + k0, &sa, &sb);
                put4(out + (size_t)t * os + r0, sa, nr, first, xsum[t]);
                put4(out + (size_t)(t + 1) * os + r0, sb, nr, first, xsum[t + 1]);
            }
            if (t < ntok)
                put4(out + (size_t)t * os + r0, tile4x1(buf, nst, x + (size_t)t * kpad + k0), nr,
                     first, xsum[t]);
        }
    }
}

static int32_t sum_i8(const int8_t *x, int n) {
    __m256i a = _mm256_setzero_si256();
    const __m256i one8 = _mm256_set1_epi8(1), one = _mm256_set1_epi16(1);
    for (int i = 0; i < n; i += 32)
        a = _mm256_add_epi32(a, _mm256_madd_epi16(
                                    _mm256_maddubs_epi16(one8, _mm256_loadu_si256((const __m256i *)(x + i))), one));
    return hsum1(a);
}

static void t2_gemm(const uint8_t *w, size_t rb, int nrows, const int8_t *x, const int32_t *xsum,
                    int kpad, int ntok, int32_t *out, size_t os) {
    if (!xsum) { /* computed here, 64 tokens at a time */
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
    int nb = kpad / 128, r = 0;
    for (; r + 4 <= nrows; r += 4) gemv4(w + (size_t)r * rb, rb, x, nb, xsum[0], out + r);
    for (; r < nrows; r++) out[r] = gemv1(w + (size_t)r * rb, x, nb, xsum[0]);
}

const rtr_kernels rtr_kernels_avx2 = {
    .name = "avx2",
    .t2_gemm = t2_gemm,
    .f16_gemm = rtr_f16_gemm_avx2,
    .bf16_gemm = rtr_bf16_gemm_avx2,
    .q8_gemm = rtr_q8_gemm_avx2,
    .quant_row = rtr_quant_row_avx2,
    .dot_f32_f16 = rtr_dot_f32_f16_avx2,
    .axpy_f16 = rtr_axpy_f16_avx2,
};
