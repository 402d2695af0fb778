/* isa.h: functions shared between the files of the instruction-set kernel sets (not public).
 * Each set's tables live in its t2_<isa>.c; the float, int8 and quantization kernels in
 * fp_<isa>.c. The AVX-512 sets reuse the AVX2 float kernels, which run on any AVX-512 CPU, all
 * but the 8-bit head (t2_avx512.c has its own). */
#ifndef ROTOR_KERNELS_ISA_H
#define ROTOR_KERNELS_ISA_H

#include "kernels.h"

#define RTR_FP_DECLS(isa)                                                                         \
    void rtr_f16_gemm_##isa(const uint16_t *w, int nrows, int k, const float *x, int ntok,        \
                            float *y, size_t ldy);                                                 \
    void rtr_bf16_gemm_##isa(const uint16_t *w, int nrows, int k, const float *x, int ntok,       \
                             float *y, size_t ldy);                                                \
    void rtr_q8_gemm_##isa(const int8_t *w, const float *scale, int nrows, int k, const int8_t *x, \
                           const float *xs, int ntok, float *y, size_t ldy);                       \
    void rtr_q8f_gemm_##isa(const int8_t *w, const float *scale, int nrows, int k, const float *x, \
                            int ntok, float *y, size_t ldy);                                       \
    float rtr_quant_row_##isa(const float *x, int n, int kpad, int8_t *q, int32_t *sum);           \
    float rtr_dot_f32_f16_##isa(const float *x, const uint16_t *y, int n);                         \
    void rtr_axpy_f16_##isa(float a, const uint16_t *v, float *y, int n);                          \
    float rtr_dot_f32_##isa(const float *x, const float *y, int n);                                \
    void rtr_axpy_f32_##isa(float a, const float *v, float *y, int n);                          \
    void rtr_attn_dots_f32_##isa(const float *q, const float *rows, size_t stride,                \
                                 const int32_t *idx, int n, int hd, float scale, float *out);     \
    void rtr_attn_dots_f16_##isa(const float *q, const uint16_t *rows, size_t stride,             \
                                 const int32_t *idx, int n, int hd, float scale, float *out);     \
    void rtr_attn_wsum_f32_##isa(const float *p, const float *rows, size_t stride,                \
                                 const int32_t *idx, int n, int hd, float *out);                  \
    void rtr_attn_wsum_f16_##isa(const float *p, const uint16_t *rows, size_t stride,             \
                                 const int32_t *idx, int n, int hd, float *out);

RTR_FP_DECLS(avx2)

/* The members of a kernel table that the AVX2 float kernels fill (every x86 set above scalar
 * uses them: they run unchanged on any AVX-512 CPU). */
#define RTR_AVX2_FLOAT_KERNELS RTR_AVX2_FLOAT_KERNELS_BUT_Q8F, .q8f_gemm = rtr_q8f_gemm_avx2
/* the same without the 8-bit head, for a set that has its own */
#define RTR_AVX2_FLOAT_KERNELS_BUT_Q8F                                                            \
    .f16_gemm = rtr_f16_gemm_avx2, .bf16_gemm = rtr_bf16_gemm_avx2,                               \
    .quant_row = rtr_quant_row_avx2, .dot_f32_f16 = rtr_dot_f32_f16_avx2,                        \
    .axpy_f16 = rtr_axpy_f16_avx2, .dot_f32 = rtr_dot_f32_avx2, .axpy_f32 = rtr_axpy_f32_avx2,     \
    .attn_dots_f32 = rtr_attn_dots_f32_avx2, .attn_dots_f16 = rtr_attn_dots_f16_avx2,             \
    .attn_wsum_f32 = rtr_attn_wsum_f32_avx2, .attn_wsum_f16 = rtr_attn_wsum_f16_avx2
/* The same for the AVX-512 sets (avx512vnni, amx), with their own 8-bit head. */
#define RTR_AVX512_FLOAT_KERNELS RTR_AVX2_FLOAT_KERNELS_BUT_Q8F, .q8f_gemm = rtr_q8f_gemm_avx512
RTR_FP_DECLS(neon)
void rtr_q8f_gemm_avx512(const int8_t *w, const float *scale, int nrows, int k, const float *x, int ntok, float *y,
                         size_t ldy);
void rtr_q8_gemm_avx512vnni(const int8_t *w, const float *scale, int nrows, int k, const int8_t *x,
                            const float *xs, int ntok, float *y, size_t ldy);

#endif
