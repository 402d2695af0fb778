/* fp_neon.c: the float, int8 and quantization kernels for ARMv8.2 (fp16 conversion, dotprod).
 *
 * f16 rows widen with fcvtl, bf16 rows with a 16-bit left shift, then FMA; four rows at a time
 * for one token, tiles of four rows x two tokens for batches. q8_gemm uses sdot (exact).
 * quant_row gives the scalar set's codes bit for bit: fmaxnm/fminnm ignore NaN the way the
 * scalar comparisons do, and fcvtns rounds half to even.
 */
#include "isa.h"

#include <arm_neon.h>
#include <math.h>
#include <string.h>

static inline float32x4_t ld_f16(const uint16_t *p) {
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p)));
}
static inline float32x4_t ld_bf16(const uint16_t *p) {
    return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16));
}
static inline float f16_1(uint16_t h) { return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h))), 0); }
static inline float bf16_1(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

#define HALF_GEMM(NAME, LD, ONE)                                                                  \
    void NAME(const uint16_t *w, int nrows, int k, const float *x, int ntok, float *y,           \
              size_t ldy) {                                                                       \
        int k8 = k & ~7, k4 = k & ~3;                                                             \
        for (int r = 0; r < nrows; r += 4) {                                                      \
            const uint16_t *wr[4];                                                                \
            for (int i = 0; i < 4; i++) wr[i] = w + (size_t)(r + i < nrows ? r + i : nrows - 1) * k; \
            for (int t = 0; t < ntok; t += 2) {                                                   \
                const float *xa = x + (size_t)t * k;                                              \
                const float *xb = x + (size_t)(t + 1 < ntok ? t + 1 : t) * k;                     \
                float32x4_t z = vdupq_n_f32(0);                                                   \
                float32x4_t a0 = z, a1 = z, a2 = z, a3 = z, b0 = z, b1 = z, b2 = z, b3 = z;       \
                float32x4_t c0 = z, c1 = z, c2 = z, c3 = z;                                       \
                int j = 0;                                                                        \
                if (ntok == 1) {                                                                  \
                    for (; j < k8; j += 8) { /* two accumulators per row */                       \
                        float32x4_t x0 = vld1q_f32(xa + j), x1 = vld1q_f32(xa + j + 4);           \
                        a0 = vfmaq_f32(a0, LD(wr[0] + j), x0); c0 = vfmaq_f32(c0, LD(wr[0] + j + 4), x1); \
                        a1 = vfmaq_f32(a1, LD(wr[1] + j), x0); c1 = vfmaq_f32(c1, LD(wr[1] + j + 4), x1); \
                        a2 = vfmaq_f32(a2, LD(wr[2] + j), x0); c2 = vfmaq_f32(c2, LD(wr[2] + j + 4), x1); \
                        a3 = vfmaq_f32(a3, LD(wr[3] + j), x0); c3 = vfmaq_f32(c3, LD(wr[3] + j + 4), x1); \
                    }                                                                             \
                }                                                                                 \
                for (; j < k4; j += 4) {                                                          \
                    float32x4_t xa0 = vld1q_f32(xa + j), xb0 = vld1q_f32(xb + j);                 \
                    float32x4_t v0 = LD(wr[0] + j), v1 = LD(wr[1] + j);                           \
                    float32x4_t v2 = LD(wr[2] + j), v3 = LD(wr[3] + j);                           \
                    a0 = vfmaq_f32(a0, v0, xa0); b0 = vfmaq_f32(b0, v0, xb0);                     \
                    a1 = vfmaq_f32(a1, v1, xa0); b1 = vfmaq_f32(b1, v1, xb0);                     \
                    a2 = vfmaq_f32(a2, v2, xa0); b2 = vfmaq_f32(b2, v2, xb0);                     \
                    a3 = vfmaq_f32(a3, v3, xa0); b3 = vfmaq_f32(b3, v3, xb0);                     \
                }                                                                                 \
                float sa[4] = {vaddvq_f32(vaddq_f32(a0, c0)), vaddvq_f32(vaddq_f32(a1, c1)),      \
                               vaddvq_f32(vaddq_f32(a2, c2)), vaddvq_f32(vaddq_f32(a3, c3))};     \
                float sb[4] = {vaddvq_f32(b0), vaddvq_f32(b1), vaddvq_f32(b2), vaddvq_f32(b3)};   \
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

HALF_GEMM(rtr_f16_gemm_neon, ld_f16, f16_1)
HALF_GEMM(rtr_bf16_gemm_neon, ld_bf16, bf16_1)

/* int8 rows of kq = round_up(k, 64); x zero past k, so whole 16-byte steps are exact */
void rtr_q8_gemm_neon(const int8_t *w, const float *scale, int nrows, int k, const int8_t *x,
                      const float *xs, int ntok, float *y, size_t ldy) {
    size_t kq = (size_t)(k + 63) / 64 * 64;
    for (int r = 0; r < nrows; r += 4) {
        const int8_t *wr[4];
        for (int i = 0; i < 4; i++) wr[i] = w + (size_t)(r + i < nrows ? r + i : nrows - 1) * kq;
        for (int t = 0; t < ntok; t += 2) {
            const int8_t *xa = x + (size_t)t * kq, *xb = x + (size_t)(t + 1 < ntok ? t + 1 : t) * kq;
            int32x4_t z = vdupq_n_s32(0);
            int32x4_t a0 = z, a1 = z, a2 = z, a3 = z, b0 = z, b1 = z, b2 = z, b3 = z;
            for (size_t j = 0; j < kq; j += 16) {
                int8x16_t va = vld1q_s8(xa + j), vb = vld1q_s8(xb + j);
                int8x16_t v0 = vld1q_s8(wr[0] + j), v1 = vld1q_s8(wr[1] + j);
                int8x16_t v2 = vld1q_s8(wr[2] + j), v3 = vld1q_s8(wr[3] + j);
                a0 = vdotq_s32(a0, v0, va); b0 = vdotq_s32(b0, v0, vb);
                a1 = vdotq_s32(a1, v1, va); b1 = vdotq_s32(b1, v1, vb);
                a2 = vdotq_s32(a2, v2, va); b2 = vdotq_s32(b2, v2, vb);
                a3 = vdotq_s32(a3, v3, va); b3 = vdotq_s32(b3, v3, vb);
            }
            int32_t sa[4] = {vaddvq_s32(a0), vaddvq_s32(a1), vaddvq_s32(a2), vaddvq_s32(a3)};
            int32_t sb[4] = {vaddvq_s32(b0), vaddvq_s32(b1), vaddvq_s32(b2), vaddvq_s32(b3)};
            for (int i = 0; i < 4 && r + i < nrows; i++) {
                y[(size_t)t * ldy + r + i] = scale[r + i] * xs[t] * (float)sa[i];
                if (t + 1 < ntok) y[(size_t)(t + 1) * ldy + r + i] = scale[r + i] * xs[t + 1] * (float)sb[i];
            }
        }
    }
}

float rtr_quant_row_neon(const float *x, int n, int kpad, int8_t *q, int32_t *sum) {
    float32x4_t mx = vdupq_n_f32(0);
    int i = 0;
    for (; i + 4 <= n; i += 4) mx = vmaxnmq_f32(mx, vabsq_f32(vld1q_f32(x + i)));
    float m = vmaxnmvq_f32(mx);
    for (; i < n; i++) {
        float a = fabsf(x[i]);
        if (a > m) m = a;
    }
    if (!(m > 1e-5f)) m = 1e-5f;
    float s = 127.0f / m;
    const float32x4_t vs = vdupq_n_f32(s), hi = vdupq_n_f32(127.0f), lo = vdupq_n_f32(-128.0f);
    int32x4_t acc = vdupq_n_s32(0);
    for (i = 0; i + 8 <= n; i += 8) {
        /* fminnm(NaN, 127) = 127 like the scalar clamp; then fcvtns: nearest, ties to even */
        int32x4_t c0 = vcvtnq_s32_f32(vmaxnmq_f32(vminnmq_f32(vmulq_f32(vld1q_f32(x + i), vs), hi), lo));
        int32x4_t c1 = vcvtnq_s32_f32(vmaxnmq_f32(vminnmq_f32(vmulq_f32(vld1q_f32(x + i + 4), vs), hi), lo));
        acc = vaddq_s32(acc, vaddq_s32(c0, c1));
        int16x8_t h = vcombine_s16(vmovn_s32(c0), vmovn_s32(c1));
        vst1_s8(q + i, vmovn_s16(h));
    }
    int32_t total = vaddvq_s32(acc);
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

float rtr_dot_f32_f16_neon(const float *x, const uint16_t *y, int n) {
    float32x4_t a = vdupq_n_f32(0), b = a;
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        a = vfmaq_f32(a, vld1q_f32(x + i), ld_f16(y + i));
        b = vfmaq_f32(b, vld1q_f32(x + i + 4), ld_f16(y + i + 4));
    }
    float s = vaddvq_f32(vaddq_f32(a, b));
    for (; i < n; i++) s += x[i] * f16_1(y[i]);
    return s;
}

float rtr_dot_f32_neon(const float *x, const float *y, int n) {
    float32x4_t a = vdupq_n_f32(0), b = a;
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        a = vfmaq_f32(a, vld1q_f32(x + i), vld1q_f32(y + i));
        b = vfmaq_f32(b, vld1q_f32(x + i + 4), vld1q_f32(y + i + 4));
    }
    float s = vaddvq_f32(vaddq_f32(a, b));
    for (; i < n; i++) s += x[i] * y[i];
    return s;
}

void rtr_axpy_f32_neon(float a, const float *v, float *y, int n) {
    int i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vfmaq_n_f32(vld1q_f32(y + i), vld1q_f32(v + i), a));
    for (; i < n; i++) y[i] += a * v[i];
}

void rtr_axpy_f16_neon(float a, const uint16_t *v, float *y, int n) {
    int i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vfmaq_n_f32(vld1q_f32(y + i), ld_f16(v + i), a));
    for (; i < n; i++) y[i] += a * f16_1(v[i]);
}

/* ---- attention over a list of cache rows: the row kernels above, one row at a time ---- */

void rtr_attn_dots_f32_neon(const float *q, const float *rows, size_t stride, const int32_t *idx,
                            int n, int hd, float scale, float *out) {
    for (int i = 0; i < n; i++) out[i] = scale * rtr_dot_f32_neon(q, rows + (size_t)idx[i] * stride, hd);
}

void rtr_attn_dots_f16_neon(const float *q, const uint16_t *rows, size_t stride, const int32_t *idx,
                            int n, int hd, float scale, float *out) {
    for (int i = 0; i < n; i++) out[i] = scale * rtr_dot_f32_f16_neon(q, rows + (size_t)idx[i] * stride, hd);
}

void rtr_attn_wsum_f32_neon(const float *p, const float *rows, size_t stride, const int32_t *idx,
                            int n, int hd, float *out) {
    for (int i = 0; i < n; i++) rtr_axpy_f32_neon(p[i], rows + (size_t)idx[i] * stride, out, hd);
}

void rtr_attn_wsum_f16_neon(const float *p, const uint16_t *rows, size_t stride, const int32_t *idx,
                            int n, int hd, float *out) {
    for (int i = 0; i < n; i++) rtr_axpy_f16_neon(p[i], rows + (size_t)idx[i] * stride, out, hd);
}

/* ---- 8-bit weights against float activations (the q8 LM head) ---- */

void rtr_q8f_gemm_neon(const int8_t *w, const float *scale, int nrows, int k, const float *x, int ntok,
                       float *y, size_t ldy) {
    size_t kq = (size_t)(k + 63) / 64 * 64;
    int k16 = k & ~15;
    for (int t = 0; t < ntok; t++) {
        const float *xt = x + (size_t)t * k;
        for (int r = 0; r < nrows; r++) {
            const int8_t *p = w + (size_t)r * kq;
            float32x4_t a0 = vdupq_n_f32(0), a1 = a0, a2 = a0, a3 = a0;
            int j = 0;
            for (; j < k16; j += 16) {
                int8x16_t b = vld1q_s8(p + j);
                int16x8_t lo = vmovl_s8(vget_low_s8(b)), hi = vmovl_s8(vget_high_s8(b));
                a0 = vfmaq_f32(a0, vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo))), vld1q_f32(xt + j));
                a1 = vfmaq_f32(a1, vcvtq_f32_s32(vmovl_s16(vget_high_s16(lo))), vld1q_f32(xt + j + 4));
                a2 = vfmaq_f32(a2, vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi))), vld1q_f32(xt + j + 8));
                a3 = vfmaq_f32(a3, vcvtq_f32_s32(vmovl_s16(vget_high_s16(hi))), vld1q_f32(xt + j + 12));
            }
            float s = vaddvq_f32(vaddq_f32(vaddq_f32(a0, a1), vaddq_f32(a2, a3)));
            for (; j < k; j++) s += (float)p[j] * xt[j];
            y[(size_t)t * ldy + r] = scale[r] * s;
        }
    }
}
