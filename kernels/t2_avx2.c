/* t2_avx2.c: the ternary matrix product for AVX2, and the avx2 kernel table.
 *
 * A 32-byte T2 block holds 128 weights as four 32-weight slices (bits 0-1, 2-3, 4-5, 6-7 of each
 * byte): the low nibbles hold slices 0 and 1, the high nibbles slices 2 and 3. Two pshufb tables
 * map a nibble to c = w + 1 in {0, 1, 2} of either slice; maddubs(c, x) then gives pairs
 * c0*x0 + c1*x1, and sum(c*x) - sum(x) = sum(w*x).
 *
 * No saturation or overflow is possible for any int8 x: a maddubs pair lies in [-512, 508], so
 * the decode path widens each block's four slices (at most +-2048) to int32 with madd(., 1), and
 * the batch path sums at most 64 slices in int16 (exact, see tile4x2) before widening.
 *
 * ntok = 1 (decode) streams the weights row after row (see gemv for why not several rows).
 * ntok > 1 (prefill) first unpacks four rows x KC weights into an L1 buffer, then runs that block
 * against the tokens two at a time, so each unpacked weight serves every token of the batch.
 */
#include "isa.h"

#include <immintrin.h>
#include <string.h>

#define KC 2048 /* weights per row unpacked at once: 4 rows x 2 KB stay in L1 */
_Static_assert(KC / 32 <= 64, "tile4x2 sums KC/32 slices in int16: at most 64 are exact");

/* c = w + 1 for the code in bits 0-1 (LUT_LO) or bits 2-3 (LUT_HI) of a nibble:
 * 00 -> 1 (w 0), 01 -> 0 (w -1), 10 -> 2 (w +1); 11 never reaches a kernel (files are checked) */
#define LUT_LO _mm256_setr_epi8(1, 0, 2, 1, 1, 0, 2, 1, 1, 0, 2, 1, 1, 0, 2, 1, \
                                1, 0, 2, 1, 1, 0, 2, 1, 1, 0, 2, 1, 1, 0, 2, 1)
#define LUT_HI _mm256_setr_epi8(1, 1, 1, 1, 0, 0, 0, 0, 2, 2, 2, 2, 1, 1, 1, 1, \
                                1, 1, 1, 1, 0, 0, 0, 0, 2, 2, 2, 2, 1, 1, 1, 1)

typedef short v16i16 __attribute__((vector_size(32))); /* int16 lanes for plain += */

/* The four slices of one block as c = w + 1 bytes */
typedef struct { __m256i c0, c1, c2, c3; } slices;
static inline slices unpack(const uint8_t *p) {
    const __m256i m4 = _mm256_set1_epi8(15);
    __m256i v = _mm256_loadu_si256((const __m256i *)p);
    __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
    slices s = {_mm256_shuffle_epi8(LUT_LO, lo), _mm256_shuffle_epi8(LUT_HI, lo),
                _mm256_shuffle_epi8(LUT_LO, hi), _mm256_shuffle_epi8(LUT_HI, hi)};
    return s;
}

/* sum(c*x) over one block as int16 lanes (each within +-2048) */
static inline v16i16 block_dot(const uint8_t *p, const int8_t *x) {
    slices s = unpack(p);
    v16i16 a = (v16i16)_mm256_maddubs_epi16(s.c0, _mm256_loadu_si256((const __m256i *)x));
    a += (v16i16)_mm256_maddubs_epi16(s.c1, _mm256_loadu_si256((const __m256i *)(x + 32)));
    a += (v16i16)_mm256_maddubs_epi16(s.c2, _mm256_loadu_si256((const __m256i *)(x + 64)));
    a += (v16i16)_mm256_maddubs_epi16(s.c3, _mm256_loadu_si256((const __m256i *)(x + 96)));
    return a;
}

/* int16 lanes summed pairwise into 8 int32 */
static inline __m256i widen(v16i16 a) { return _mm256_madd_epi16((__m256i)a, _mm256_set1_epi16(1)); }

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

/* One row at a time, so the matrix is read as one sequential stream: measured on Zen 3, this
 * streams 20-50% faster from memory than four interleaved rows (short rows of 640 or 1728 bytes
 * never let the hardware prefetcher lock on to four streams), and the activations come from L1
 * either way. A software prefetch runs PF_AHEAD bytes ahead; past the end it is harmless. */
#define PF_AHEAD 4096

static void gemv(const uint8_t *w, size_t rb, int nrows, const int8_t *x, int nb, int32_t xsum,
                 int32_t *out) {
    for (int r = 0; r < nrows; r++) {
        const uint8_t *p = w + (size_t)r * rb;
        __m256i a0 = _mm256_setzero_si256(), a1 = a0;
        int b = 0;
        for (; b + 2 <= nb; b += 2) { /* one cache line of weights per step */
            _mm_prefetch((const char *)(p + PF_AHEAD + (size_t)b * 32), _MM_HINT_T0);
            a0 = _mm256_add_epi32(a0, widen(block_dot(p + (size_t)b * 32, x + (size_t)b * 128)));
            a1 = _mm256_add_epi32(a1, widen(block_dot(p + (size_t)b * 32 + 32, x + (size_t)b * 128 + 128)));
        }
        if (b < nb) a0 = _mm256_add_epi32(a0, widen(block_dot(p + (size_t)b * 32, x + (size_t)b * 128)));
        out[r] = hsum1(_mm256_add_epi32(a0, a1)) - xsum;
    }
}

/* ---- ntok > 1: unpack four rows once, run them against every token ---- */

/* buf[s][r][32]: c for row r, weights 32s..32s+31 of the chunk; rows past nr get c = 0 */
static void unpack4(const uint8_t *w, size_t rb, int nr, int nb, uint8_t *buf) {
    for (int r = 0; r < 4; r++) {
        if (r >= nr) {
            for (int s = 0; s < nb * 4; s++) memset(buf + ((size_t)s * 4 + r) * 32, 0, 32);
            continue;
        }
        const uint8_t *p = w + (size_t)r * rb;
        for (int b = 0; b < nb; b++) {
            slices c = unpack(p + (size_t)b * 32);
            uint8_t *d = buf + ((size_t)b * 16 + r) * 32;
            _mm256_store_si256((__m256i *)d, c.c0);
            _mm256_store_si256((__m256i *)(d + 128), c.c1);
            _mm256_store_si256((__m256i *)(d + 256), c.c2);
            _mm256_store_si256((__m256i *)(d + 384), c.c3);
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

#define MAC(acc, c, x) acc += (v16i16)_mm256_maddubs_epi16(c, x)

/* Rows r0..r0+3 (unpacked in buf, nst <= KC/32 slices) against tokens xa and xb. The int16
 * sums wrap modulo 2^16 on the way, which is harmless: the final sum is within [-32768, 32512]
 * (64 slices of at least -512 and at most +508 each), so it is exact. */
static void tile4x2(const uint8_t *buf, int nst, const int8_t *xa, const int8_t *xb,
                    __m128i *ra, __m128i *rbv) {
    v16i16 a0 = {0}, a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    for (const uint8_t *c = buf, *end = buf + (size_t)nst * 128; c < end; c += 128, xa += 32, xb += 32) {
        __m256i x0 = _mm256_loadu_si256((const __m256i *)xa);
        __m256i x1 = _mm256_loadu_si256((const __m256i *)xb);
        __m256i c0 = _mm256_load_si256((const __m256i *)c);
        MAC(a0, c0, x0); MAC(b0, c0, x1);
        __m256i c1 = _mm256_load_si256((const __m256i *)(c + 32));
        MAC(a1, c1, x0); MAC(b1, c1, x1);
        __m256i c2 = _mm256_load_si256((const __m256i *)(c + 64));
        MAC(a2, c2, x0); MAC(b2, c2, x1);
        __m256i c3 = _mm256_load_si256((const __m256i *)(c + 96));
        MAC(a3, c3, x0); MAC(b3, c3, x1);
    }
    *ra = hsum4(widen(a0), widen(a1), widen(a2), widen(a3));
    *rbv = hsum4(widen(b0), widen(b1), widen(b2), widen(b3));
}

static __m128i tile4x1(const uint8_t *buf, int nst, const int8_t *xa) {
    v16i16 a0 = {0}, a1 = a0, a2 = a0, a3 = a0;
    for (const uint8_t *c = buf, *end = buf + (size_t)nst * 128; c < end; c += 128, xa += 32) {
        __m256i x0 = _mm256_loadu_si256((const __m256i *)xa);
        MAC(a0, _mm256_load_si256((const __m256i *)c), x0);
        MAC(a1, _mm256_load_si256((const __m256i *)(c + 32)), x0);
        MAC(a2, _mm256_load_si256((const __m256i *)(c + 64)), x0);
        MAC(a3, _mm256_load_si256((const __m256i *)(c + 96)), x0);
    }
    return hsum4(widen(a0), widen(a1), widen(a2), widen(a3));
}

/* Asks for the next tile's weights while this one computes: rows of a K chunk are strided, so
 * the hardware prefetcher does not find them, and with a short batch (a 7-token prompt) the
 * tile's arithmetic is too short to hide the wait for memory otherwise. */
static inline void prefetch_tile(const uint8_t *w, size_t rb, int r0, int nrows, int k0, int kc) {
    for (int r = r0; r < r0 + 4 && r < nrows; r++) {
        const char *p = (const char *)(w + (size_t)r * rb + (size_t)k0 / 4);
        for (int off = 0; off < kc / 4; off += 64) _mm_prefetch(p + off, _MM_HINT_T1);
    }
}

static void gemm_batch(const uint8_t *w, size_t rb, int nrows, const int8_t *x,
                       const int32_t *xsum, int kpad, int ntok, int32_t *out, size_t os) {
    _Alignas(64) uint8_t buf[4 * KC];
    for (int k0 = 0; k0 < kpad; k0 += KC) {
        int kc = kpad - k0 < KC ? kpad - k0 : KC, nb = kc / 128, nst = kc / 32, first = k0 == 0;
        for (int r0 = 0; r0 < nrows; r0 += 4) {
            int nr = nrows - r0 < 4 ? nrows - r0 : 4;
            unpack4(w + (size_t)r0 * rb + (size_t)k0 / 4, rb, nr, nb, buf);
            prefetch_tile(w, rb, r0 + 8, nrows, k0, kc);
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
    gemv(w, rb, nrows, x, kpad / 128, xsum[0], out);
}

const rtr_kernels rtr_kernels_avx2 = {
    .name = "avx2",
    .t2_gemm = t2_gemm,
    .q8_gemm = rtr_q8_gemm_avx2,
    RTR_AVX2_FLOAT_KERNELS,
};
