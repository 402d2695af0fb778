/* kernels.h: the CPU compute kernels, one table per instruction set, chosen at run time.
 *
 * Each kernel set (scalar, avx2, avx512vnni, amx, neon) fills an rtr_kernels table; rtr_kernels_pick
 * returns the best one the running CPU supports (or one by name, for tests and benchmarks).
 * The scalar set is the reference: ternary kernels of every other set must equal it exactly
 * (integer arithmetic), float kernels must stay within the tolerances the tests state.
 * Kernels are pure functions over caller memory: no allocation, no threads, no globals written.
 * Callers split work across threads by rows.
 *
 * Ternary rows use the .rotor T2 layout: a row of k weights is rtr_t2_row_bytes(k) bytes, blocks
 * of 128 weights in 32 bytes; weight j of a block is in byte j%32, bits 2*(j/32)..+1; code
 * 00 = 0, 10 = +1, 01 = -1 (11 never reaches a kernel: files are checked).
 * Activations are int8 rows of kpad = round_up(k,128) entries, zero past k.
 */
#ifndef ROTOR_KERNELS_H
#define ROTOR_KERNELS_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *name;
    /* out[t*out_stride + r] = sum_j W[r][j] * x[t*kpad + j] (exact int32), for r < nrows, t < ntok.
     * w points at row 0; rows are row_bytes apart. ntok may be 1 (decode) or a batch (prefill):
     * batched kernels reuse each weight block across tokens. xsum[t] = sum_j x[t*kpad+j]
     * (kernels that compute with w+1 use it; others ignore it; NULL: computed here). */
    void (*t2_gemm)(const uint8_t *w, size_t row_bytes, int nrows, const int8_t *x,
                    const int32_t *xsum, int kpad, int ntok, int32_t *out, size_t out_stride);
    /* y[t*ldy + r] = sum_j W[r][j] * x[t*k + j], W f16 rows of k, for r < nrows, t < ntok. */
    void (*f16_gemm)(const uint16_t *w, int nrows, int k, const float *x, int ntok, float *y,
                     size_t ldy);
    /* The same with bf16 rows (LM heads kept in bf16). */
    void (*bf16_gemm)(const uint16_t *w, int nrows, int k, const float *x, int ntok, float *y,
                      size_t ldy);
    /* Q8R: W int8 rows (stride rtr_q8r_row_bytes(k)) with f32 row scales; x int8 [ntok][kq]
     * (kq = round_up(k,64), zero past k) with 1/s per token in xs:
     * y[t*ldy + r] = scale[r] * xs[t] * sum_j W[r][j]*x[t][j]. The int32 sum is exact and
     * every set evaluates (scale[r] * xs[t]) * (float)sum, so all sets agree bit for bit. */
    void (*q8_gemm)(const int8_t *w, const float *scale, int nrows, int k, const int8_t *x,
                    const float *xs, int ntok, float *y, size_t ldy);
    /* Q8R weights against float activations (the 8-bit LM head): rows as for q8_gemm, x f32
     * [ntok][k]: y[t*ldy + r] = scale[r] * sum_j W[r][j] * x[t][j], summed in f32. Only the
     * weights are 8-bit: quantizing the final hidden state too loses its small components to
     * the per-row absmax wherever a few dimensions are large. */
    void (*q8f_gemm)(const int8_t *w, const float *scale, int nrows, int k, const float *x,
                     int ntok, float *y, size_t ldy);
    /* Quantize one f32 row of n to int8, zero-filled to kpad: s = 127/max(absmax, 1e-5),
     * q = clamp(rint(x*s), -128, 127) (half to even; NaN inputs are skipped by the absmax and
     * give 127). Returns 1/s = max(absmax, 1e-5)/127; *sum gets the sum of the codes.
     * Every set gives the same codes bit for bit. */
    float (*quant_row)(const float *x, int n, int kpad, int8_t *q, int32_t *sum);
    /* dot of f32 x with f16 y of length n; and y += a * f16 v (attention over the f16 cache) */
    float (*dot_f32_f16)(const float *x, const uint16_t *y, int n);
    void (*axpy_f16)(float a, const uint16_t *v, float *y, int n);
    /* the same over an f32 cache */
    float (*dot_f32)(const float *x, const float *y, int n);
    void (*axpy_f32)(float a, const float *v, float *y, int n);
    /* Attention over a list of cache rows: row i is rows + idx[i] * stride elements, hd long.
     * dots: out[i] = scale * dot(q, row i) for i < n. wsum: out[0..hd) += sum_i p[i] * row i.
     * Several rows go through the registers together: one call covers many cached positions. */
    void (*attn_dots_f32)(const float *q, const float *rows, size_t stride, const int32_t *idx,
                          int n, int hd, float scale, float *out);
    void (*attn_dots_f16)(const float *q, const uint16_t *rows, size_t stride, const int32_t *idx,
                          int n, int hd, float scale, float *out);
    void (*attn_wsum_f32)(const float *p, const float *rows, size_t stride, const int32_t *idx,
                          int n, int hd, float *out);
    void (*attn_wsum_f16)(const float *p, const uint16_t *rows, size_t stride, const int32_t *idx,
                          int n, int hd, float *out);
} rtr_kernels;

/* Best set for this CPU, or the named one ("scalar", "avx2", "avx512vnni", "amx", "neon").
 * Returns NULL if the named set is not compiled in or the CPU lacks it. */
const rtr_kernels *rtr_kernels_pick(const char *name);
/* All sets usable on this CPU, best first; returns how many it stored (at most cap). */
int rtr_kernels_available(const rtr_kernels **out, int cap);

extern const rtr_kernels rtr_kernels_scalar;
#if defined(__x86_64__)
extern const rtr_kernels rtr_kernels_avx2;       /* AVX2 + FMA + F16C */
extern const rtr_kernels rtr_kernels_avx512vnni; /* AVX-512 F/BW/VL + VNNI */
extern const rtr_kernels rtr_kernels_amx;        /* the same with AMX-INT8 tiles for batches */
#elif defined(__aarch64__)
extern const rtr_kernels rtr_kernels_neon;       /* ARMv8.2 dotprod + fp16 */
#endif

#endif
