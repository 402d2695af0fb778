/* t2_neon.c: the ternary matrix product for ARMv8.2 (dotprod), and the neon kernel table.
 *
 * A 32-byte T2 block is read as two 16-byte halves. The low nibble of each byte holds the codes
 * of slices 0 and 1, the high nibble those of slices 2 and 3; a table lookup (tbl) per slice turns
 * a nibble into the signed weight -1, 0 or +1, and sdot multiplies four weights by four int8
 * activations straight into int32 lanes: exact for every input, no correction term needed.
 *
 * ntok = 1 streams four rows at a time sharing the loaded activations; ntok > 1 unpacks four rows
 * x KC weights into a buffer and runs it against four tokens at a time (16 accumulators).
 */
#include "isa.h"

#include <arm_neon.h>
#include <string.h>

#define KC 2048 /* weights per row unpacked at once: 4 rows x 2 KB */

/* w for the code in bits 0-1 (lo) or bits 2-3 (hi) of a nibble: 00 0, 01 -1, 10 +1 (11: 0) */
static const int8_t lut_lo_tab[16] = {0, -1, 1, 0, 0, -1, 1, 0, 0, -1, 1, 0, 0, -1, 1, 0};
static const int8_t lut_hi_tab[16] = {0, 0, 0, 0, -1, -1, -1, -1, 1, 1, 1, 1, 0, 0, 0, 0};

typedef struct { int8x16_t s0, s1, s2, s3; } half_slices; /* 16 weights of each slice */

static inline half_slices unpack16(uint8x16_t v, int8x16_t llo, int8x16_t lhi) {
    uint8x16_t lo = vandq_u8(v, vdupq_n_u8(15)), hi = vshrq_n_u8(v, 4);
    half_slices h = {vqtbl1q_s8(llo, lo), vqtbl1q_s8(lhi, lo), vqtbl1q_s8(llo, hi),
                     vqtbl1q_s8(lhi, hi)};
    return h;
}

/* acc += W(block) . x(block), both halves */
static inline int32x4_t block_dot(int32x4_t acc, const uint8_t *p, const int8_t *x, int8x16_t llo,
                                  int8x16_t lhi) {
    half_slices a = unpack16(vld1q_u8(p), llo, lhi), b = unpack16(vld1q_u8(p + 16), llo, lhi);
    acc = vdotq_s32(acc, a.s0, vld1q_s8(x));
    acc = vdotq_s32(acc, b.s0, vld1q_s8(x + 16));
    acc = vdotq_s32(acc, a.s1, vld1q_s8(x + 32));
    acc = vdotq_s32(acc, b.s1, vld1q_s8(x + 48));
    acc = vdotq_s32(acc, a.s2, vld1q_s8(x + 64));
    acc = vdotq_s32(acc, b.s2, vld1q_s8(x + 80));
    acc = vdotq_s32(acc, a.s3, vld1q_s8(x + 96));
    acc = vdotq_s32(acc, b.s3, vld1q_s8(x + 112));
    return acc;
}

/* rows w[0..nr-1], nr <= 4, against one token */
static void gemv(const uint8_t *w, size_t rb, int nr, const int8_t *x, int nb, int32_t *out) {
    const int8x16_t llo = vld1q_s8(lut_lo_tab), lhi = vld1q_s8(lut_hi_tab);
    int32x4_t a0 = vdupq_n_s32(0), a1 = a0, a2 = a0, a3 = a0;
    if (nr == 4) {
        const uint8_t *w1 = w + rb, *w2 = w + 2 * rb, *w3 = w + 3 * rb;
        for (int b = 0; b < nb; b++) {
            const int8_t *xb = x + (size_t)b * 128;
            size_t o = (size_t)b * 32;
            __builtin_prefetch(w + 4 * rb + o);
            __builtin_prefetch(w1 + 4 * rb + o);
            __builtin_prefetch(w2 + 4 * rb + o);
            __builtin_prefetch(w3 + 4 * rb + o);
            a0 = block_dot(a0, w + o, xb, llo, lhi);
            a1 = block_dot(a1, w1 + o, xb, llo, lhi);
            a2 = block_dot(a2, w2 + o, xb, llo, lhi);
            a3 = block_dot(a3, w3 + o, xb, llo, lhi);
        }
        out[0] = vaddvq_s32(a0); out[1] = vaddvq_s32(a1);
        out[2] = vaddvq_s32(a2); out[3] = vaddvq_s32(a3);
        return;
    }
    for (int r = 0; r < nr; r++) {
        int32x4_t a = vdupq_n_s32(0);
        for (int b = 0; b < nb; b++)
            a = block_dot(a, w + (size_t)r * rb + (size_t)b * 32, x + (size_t)b * 128, llo, lhi);
        out[r] = vaddvq_s32(a);
    }
}

/* buf[s][r][16]: weights of row r at 16s..16s+15 of the chunk, as int8; rows past nr are 0 */
static void unpack4(const uint8_t *w, size_t rb, int nr, int nb, int8_t *buf) {
    const int8x16_t llo = vld1q_s8(lut_lo_tab), lhi = vld1q_s8(lut_hi_tab);
    for (int r = 0; r < 4; r++)
        for (int b = 0; b < nb; b++) {
            int8_t *d = buf + ((size_t)b * 8 * 4 + r) * 16; /* block b: steps 8b..8b+7 */
            if (r >= nr) {
                for (int s = 0; s < 8; s++) memset(d + (size_t)s * 64, 0, 16);
                continue;
            }
            const uint8_t *p = w + (size_t)r * rb + (size_t)b * 32;
            half_slices a = unpack16(vld1q_u8(p), llo, lhi), c = unpack16(vld1q_u8(p + 16), llo, lhi);
            /* slice i covers weights 32i..32i+31: steps 2i (first half) and 2i+1 (second) */
            vst1q_s8(d + 0 * 64, a.s0); vst1q_s8(d + 1 * 64, c.s0);
            vst1q_s8(d + 2 * 64, a.s1); vst1q_s8(d + 3 * 64, c.s1);
            vst1q_s8(d + 4 * 64, a.s2); vst1q_s8(d + 5 * 64, c.s2);
            vst1q_s8(d + 6 * 64, a.s3); vst1q_s8(d + 7 * 64, c.s3);
        }
}

static void gemm_batch(const uint8_t *w, size_t rb, int nrows, const int8_t *x, int kpad, int ntok,
                       int32_t *out, size_t os) {
    _Alignas(64) int8_t buf[4 * KC];
    for (int k0 = 0; k0 < kpad; k0 += KC) {
        int kc = kpad - k0 < KC ? kpad - k0 : KC, nst = kc / 16;
        for (int r0 = 0; r0 < nrows; r0 += 4) {
            int nr = nrows - r0 < 4 ? nrows - r0 : 4;
            unpack4(w + (size_t)r0 * rb + (size_t)k0 / 4, rb, nr, kc / 128, buf);
            for (int t0 = 0; t0 < ntok; t0 += 4) {
                int nt = ntok - t0 < 4 ? ntok - t0 : 4;
                const int8_t *x0 = x + (size_t)t0 * kpad + k0;
                const int8_t *x1 = x + (size_t)(t0 + (nt > 1 ? 1 : 0)) * kpad + k0;
                const int8_t *x2 = x + (size_t)(t0 + (nt > 2 ? 2 : 0)) * kpad + k0;
                const int8_t *x3 = x + (size_t)(t0 + (nt > 3 ? 3 : 0)) * kpad + k0;
                int32x4_t z = vdupq_n_s32(0);
                int32x4_t a00 = z, a01 = z, a02 = z, a03 = z, a10 = z, a11 = z, a12 = z, a13 = z;
                int32x4_t a20 = z, a21 = z, a22 = z, a23 = z, a30 = z, a31 = z, a32 = z, a33 = z;
                for (int s = 0; s < nst; s++) {
                    const int8_t *c = buf + (size_t)s * 64;
                    int8x16_t v0 = vld1q_s8(x0 + (size_t)s * 16), v1 = vld1q_s8(x1 + (size_t)s * 16);
                    int8x16_t v2 = vld1q_s8(x2 + (size_t)s * 16), v3 = vld1q_s8(x3 + (size_t)s * 16);
                    int8x16_t c0 = vld1q_s8(c), c1 = vld1q_s8(c + 16), c2 = vld1q_s8(c + 32), c3 = vld1q_s8(c + 48);
                    a00 = vdotq_s32(a00, c0, v0); a01 = vdotq_s32(a01, c0, v1);
                    a02 = vdotq_s32(a02, c0, v2); a03 = vdotq_s32(a03, c0, v3);
                    a10 = vdotq_s32(a10, c1, v0); a11 = vdotq_s32(a11, c1, v1);
                    a12 = vdotq_s32(a12, c1, v2); a13 = vdotq_s32(a13, c1, v3);
                    a20 = vdotq_s32(a20, c2, v0); a21 = vdotq_s32(a21, c2, v1);
                    a22 = vdotq_s32(a22, c2, v2); a23 = vdotq_s32(a23, c2, v3);
                    a30 = vdotq_s32(a30, c3, v0); a31 = vdotq_s32(a31, c3, v1);
                    a32 = vdotq_s32(a32, c3, v2); a33 = vdotq_s32(a33, c3, v3);
                }
                /* rows of token t: pairwise adds reduce four accumulators to one vector */
                int32x4_t res[4] = {
                    vpaddq_s32(vpaddq_s32(a00, a10), vpaddq_s32(a20, a30)),
                    vpaddq_s32(vpaddq_s32(a01, a11), vpaddq_s32(a21, a31)),
                    vpaddq_s32(vpaddq_s32(a02, a12), vpaddq_s32(a22, a32)),
                    vpaddq_s32(vpaddq_s32(a03, a13), vpaddq_s32(a23, a33)),
                };
                for (int t = 0; t < nt; t++) {
                    int32_t v[4], *o = out + (size_t)(t0 + t) * os + r0;
                    vst1q_s32(v, res[t]);
                    for (int r = 0; r < nr; r++) o[r] = k0 == 0 ? v[r] : o[r] + v[r];
                }
            }
        }
    }
}

static void t2_gemm(const uint8_t *w, size_t rb, int nrows, const int8_t *x, const int32_t *xsum,
                    int kpad, int ntok, int32_t *out, size_t os) {
    (void)xsum; /* signed weights: no correction term */
    if (ntok > 1) {
        gemm_batch(w, rb, nrows, x, kpad, ntok, out, os);
        return;
    }
    for (int r = 0; r < nrows; r += 4)
        gemv(w + (size_t)r * rb, rb, nrows - r < 4 ? nrows - r : 4, x, kpad / 128, out + r);
}

const rtr_kernels rtr_kernels_neon = {
    .name = "neon",
    .t2_gemm = t2_gemm,
    .f16_gemm = rtr_f16_gemm_neon,
    .bf16_gemm = rtr_bf16_gemm_neon,
    .q8_gemm = rtr_q8_gemm_neon,
    .q8f_gemm = rtr_q8f_gemm_neon,
    .quant_row = rtr_quant_row_neon,
    .dot_f32_f16 = rtr_dot_f32_f16_neon,
    .axpy_f16 = rtr_axpy_f16_neon,
    .dot_f32 = rtr_dot_f32_neon,
    .axpy_f32 = rtr_axpy_f32_neon,
    .attn_dots_f32 = rtr_attn_dots_f32_neon,
    .attn_dots_f16 = rtr_attn_dots_f16_neon,
    .attn_wsum_f32 = rtr_attn_wsum_f32_neon,
    .attn_wsum_f16 = rtr_attn_wsum_f16_neon,
};
