/* scalar.c: the reference kernel set, plain C for any CPU.
 *
 * Every other set is checked against these functions: the ternary product must match exactly,
 * quant_row must match bit for bit, float kernels within the tolerances tests/test_kernels.c
 * states. They are written to be obviously right, not fast: one weight at a time, the .rotor T2
 * layout decoded with the formula of kernels.h.
 */
#include "kernels.h"
#include "../models/format.h"

#include <math.h>
#include <string.h>

/* Weight j of a packed T2 row: byte j/128*32 + j%32, bits 2*((j%128)/32); 00 0, 10 +1, 01 -1. */
static int t2_weight(const uint8_t *row, int j) {
    int code = (row[j / 128 * 32 + j % 32] >> (2 * (j % 128 / 32))) & 3;
    return code == 2 ? 1 : code == 1 ? -1 : 0;
}

static void t2_gemm(const uint8_t *w, size_t row_bytes, int nrows, const int8_t *x,
                    const int32_t *xsum, int kpad, int ntok, int32_t *out, size_t out_stride) {
    (void)xsum;
    for (int t = 0; t < ntok; t++)
        for (int r = 0; r < nrows; r++) {
            const uint8_t *row = w + (size_t)r * row_bytes;
            const int8_t *xt = x + (size_t)t * kpad;
            int32_t s = 0;
            for (int j = 0; j < kpad; j++) s += t2_weight(row, j) * xt[j];
            out[(size_t)t * out_stride + r] = s;
        }
}

static void f16_gemm(const uint16_t *w, int nrows, int k, const float *x, int ntok, float *y,
                     size_t ldy) {
    for (int t = 0; t < ntok; t++)
        for (int r = 0; r < nrows; r++) {
            const uint16_t *row = w + (size_t)r * k;
            const float *xt = x + (size_t)t * k;
            float s = 0;
            for (int j = 0; j < k; j++) s += rtr_f16_to_f32(row[j]) * xt[j];
            y[(size_t)t * ldy + r] = s;
        }
}

static void bf16_gemm(const uint16_t *w, int nrows, int k, const float *x, int ntok, float *y,
                      size_t ldy) {
    for (int t = 0; t < ntok; t++)
        for (int r = 0; r < nrows; r++) {
            const uint16_t *row = w + (size_t)r * k;
            const float *xt = x + (size_t)t * k;
            float s = 0;
            for (int j = 0; j < k; j++) s += rtr_bf16_to_f32(row[j]) * xt[j];
            y[(size_t)t * ldy + r] = s;
        }
}

/* The integer sum is exact; every set then scales it as (scale * xs) * sum, in that order. */
static void q8_gemm(const int8_t *w, const float *scale, int nrows, int k, const int8_t *x,
                    const float *xs, int ntok, float *y, size_t ldy) {
    size_t kq = (size_t)(k + 63) / 64 * 64;
    for (int t = 0; t < ntok; t++)
        for (int r = 0; r < nrows; r++) {
            const int8_t *row = w + (size_t)r * kq, *xt = x + (size_t)t * kq;
            int32_t s = 0;
            for (int j = 0; j < k; j++) s += row[j] * xt[j];
            y[(size_t)t * ldy + r] = scale[r] * xs[t] * (float)s;
        }
}

static void q8f_gemm(const int8_t *w, const float *scale, int nrows, int k, const float *x, int ntok,
                     float *y, size_t ldy) {
    size_t kq = (size_t)(k + 63) / 64 * 64;
    for (int t = 0; t < ntok; t++)
        for (int r = 0; r < nrows; r++) {
            const int8_t *row = w + (size_t)r * kq;
            const float *xt = x + (size_t)t * k;
            float s = 0;
            for (int j = 0; j < k; j++) s += (float)row[j] * xt[j];
            y[(size_t)t * ldy + r] = scale[r] * s;
        }
}

/* s = 127 / max(absmax, 1e-5) in float; q = clamp(rint(x * s), -128, 127). A NaN input ends up
 * as 127 (the clamp keeps the bound when the comparison fails), the same in every set. */
static float quant_row(const float *x, int n, int kpad, int8_t *q, int32_t *sum) {
    float m = 0;
    for (int i = 0; i < n; i++) {
        float a = fabsf(x[i]);
        if (a > m) m = a;
    }
    if (!(m > 1e-5f)) m = 1e-5f;
    float s = 127.0f / m;
    int32_t total = 0;
    for (int i = 0; i < n; i++) {
        float v = x[i] * s;
        v = v < 127.0f ? v : 127.0f;
        v = v > -128.0f ? v : -128.0f;
        q[i] = (int8_t)rintf(v);
        total += q[i];
    }
    for (int i = n; i < kpad; i++) q[i] = 0;
    *sum = total;
    return m / 127.0f;
}

static float dot_f32_f16(const float *x, const uint16_t *y, int n) {
    float s = 0;
    for (int i = 0; i < n; i++) s += x[i] * rtr_f16_to_f32(y[i]);
    return s;
}

static void axpy_f16(float a, const uint16_t *v, float *y, int n) {
    for (int i = 0; i < n; i++) y[i] += a * rtr_f16_to_f32(v[i]);
}

static float dot_f32(const float *x, const float *y, int n) {
    float s = 0;
    for (int i = 0; i < n; i++) s += x[i] * y[i];
    return s;
}

static void axpy_f32(float a, const float *v, float *y, int n) {
    for (int i = 0; i < n; i++) y[i] += a * v[i];
}

static void attn_dots_f32(const float *q, const float *rows, size_t stride, const int32_t *idx,
                          int n, int hd, float scale, float *out) {
    for (int i = 0; i < n; i++) out[i] = scale * dot_f32(q, rows + (size_t)idx[i] * stride, hd);
}

static void attn_dots_f16(const float *q, const uint16_t *rows, size_t stride, const int32_t *idx,
                          int n, int hd, float scale, float *out) {
    for (int i = 0; i < n; i++) out[i] = scale * dot_f32_f16(q, rows + (size_t)idx[i] * stride, hd);
}

static void attn_wsum_f32(const float *p, const float *rows, size_t stride, const int32_t *idx,
                          int n, int hd, float *out) {
    for (int i = 0; i < n; i++) axpy_f32(p[i], rows + (size_t)idx[i] * stride, out, hd);
}

static void attn_wsum_f16(const float *p, const uint16_t *rows, size_t stride, const int32_t *idx,
                          int n, int hd, float *out) {
    for (int i = 0; i < n; i++) axpy_f16(p[i], rows + (size_t)idx[i] * stride, out, hd);
}

const rtr_kernels rtr_kernels_scalar = {
    .name = "scalar",
    .t2_gemm = t2_gemm,
    .f16_gemm = f16_gemm,
    .bf16_gemm = bf16_gemm,
    .q8_gemm = q8_gemm,
    .q8f_gemm = q8f_gemm,
    .quant_row = quant_row,
    .dot_f32_f16 = dot_f32_f16,
    .axpy_f16 = axpy_f16,
    .dot_f32 = dot_f32,
    .axpy_f32 = axpy_f32,
    .attn_dots_f32 = attn_dots_f32,
    .attn_dots_f16 = attn_dots_f16,
    .attn_wsum_f32 = attn_wsum_f32,
    .attn_wsum_f16 = attn_wsum_f16,
};
