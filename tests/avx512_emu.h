/* avx512_emu.h: plain-C stand-ins for the AVX-512 intrinsics that kernels/t2_avx512.c uses, so
 * that its logic (layouts, lane order, vpdpbusd/vpdpwssd grouping, tails) can be checked on a CPU
 * without AVX-512. tests/avx512.sh compiles t2_avx512.c with `-include tests/avx512_emu.h` and
 * AVX2 flags only. Each function follows the instruction's definition in Intel's SDM; the real
 * instructions are left to the compiler, which maps the intrinsics one to one.
 */
#ifndef ROTOR_AVX512_EMU_H
#define ROTOR_AVX512_EMU_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

typedef struct { uint8_t b[64]; } emu_m512i;

static inline emu_m512i emu_setzero(void) { emu_m512i r; memset(&r, 0, 64); return r; }
static inline emu_m512i emu_loadu(const void *p) { emu_m512i r; memcpy(r.b, p, 64); return r; }
static inline emu_m512i emu_inserti64x4(emu_m512i v, __m256i y, int hi) {
    memcpy(v.b + (hi & 1) * 32, &y, 32);
    return v;
}
static inline emu_m512i emu_broadcast_i32x4(__m128i x) {
    emu_m512i r;
    for (int l = 0; l < 4; l++) memcpy(r.b + 16 * l, &x, 16);
    return r;
}
static inline emu_m512i emu_set1_epi8(char c) { emu_m512i r; memset(r.b, (uint8_t)c, 64); return r; }
static inline emu_m512i emu_srli_epi16(emu_m512i v, unsigned n) {
    emu_m512i r;
    for (int i = 0; i < 32; i++) {
        uint16_t w = (uint16_t)(v.b[2 * i] | v.b[2 * i + 1] << 8);
        w = n > 15 ? 0 : (uint16_t)(w >> n);
        r.b[2 * i] = (uint8_t)w; r.b[2 * i + 1] = (uint8_t)(w >> 8);
    }
    return r;
}
static inline emu_m512i emu_and(emu_m512i a, emu_m512i b) {
    for (int i = 0; i < 64; i++) a.b[i] &= b.b[i];
    return a;
}
/* vpshufb: within each 128-bit lane; index bit 7 zeroes the byte */
static inline emu_m512i emu_shuffle_epi8(emu_m512i t, emu_m512i idx) {
    emu_m512i r;
    for (int i = 0; i < 64; i++)
        r.b[i] = idx.b[i] & 0x80 ? 0 : t.b[(i & ~15) + (idx.b[i] & 15)];
    return r;
}
static inline int32_t emu_i32(const emu_m512i *v, int i) { int32_t x; memcpy(&x, v->b + 4 * i, 4); return x; }
static inline void emu_set_i32(emu_m512i *v, int i, int32_t x) { memcpy(v->b + 4 * i, &x, 4); }
/* vpdpbusd: each dword += four products of unsigned bytes of a and signed bytes of b */
static inline emu_m512i emu_dpbusd(emu_m512i src, emu_m512i a, emu_m512i b) {
    for (int i = 0; i < 16; i++) {
        int64_t s = emu_i32(&src, i);
        for (int j = 0; j < 4; j++) s += (int64_t)a.b[4 * i + j] * (int8_t)b.b[4 * i + j];
        emu_set_i32(&src, i, (int32_t)(uint32_t)s); /* wraps, as the instruction does */
    }
    return src;
}
/* vpdpwssd: each dword += two products of signed words */
static inline emu_m512i emu_dpwssd(emu_m512i src, emu_m512i a, emu_m512i b) {
    for (int i = 0; i < 16; i++) {
        int64_t s = emu_i32(&src, i);
        for (int j = 0; j < 2; j++) {
            int16_t x, y;
            memcpy(&x, a.b + 4 * i + 2 * j, 2); memcpy(&y, b.b + 4 * i + 2 * j, 2);
            s += (int32_t)x * y;
        }
        emu_set_i32(&src, i, (int32_t)(uint32_t)s);
    }
    return src;
}
static inline int emu_reduce_add_epi32(emu_m512i v) {
    uint32_t s = 0;
    for (int i = 0; i < 16; i++) s += (uint32_t)emu_i32(&v, i);
    return (int)s;
}
static inline emu_m512i emu_cvtepi8_epi16(__m256i x) {
    int8_t in[32];
    emu_m512i r;
    memcpy(in, &x, 32);
    for (int i = 0; i < 32; i++) { int16_t w = in[i]; memcpy(r.b + 2 * i, &w, 2); }
    return r;
}

typedef struct { float f[16]; } emu_m512;
static inline emu_m512 emu_setzero_ps(void) { emu_m512 r; memset(&r, 0, 64); return r; }
static inline emu_m512 emu_loadu_ps(const float *p) { emu_m512 r; memcpy(r.f, p, 64); return r; }
static inline emu_m512i emu_cvtepi8_epi32(__m128i x) {
    int8_t in[16];
    emu_m512i r;
    memcpy(in, &x, 16);
    for (int i = 0; i < 16; i++) emu_set_i32(&r, i, in[i]);
    return r;
}
static inline emu_m512 emu_cvtepi32_ps(emu_m512i v) {
    emu_m512 r;
    for (int i = 0; i < 16; i++) r.f[i] = (float)emu_i32(&v, i);
    return r;
}
static inline emu_m512 emu_fmadd_ps(emu_m512 a, emu_m512 b, emu_m512 c) {
    for (int i = 0; i < 16; i++) c.f[i] = __builtin_fmaf(a.f[i], b.f[i], c.f[i]);
    return c;
}
static inline emu_m512 emu_add_ps(emu_m512 a, emu_m512 b) {
    for (int i = 0; i < 16; i++) a.f[i] += b.f[i];
    return a;
}
/* pairwise, halving the width each step as the compiler's sequence does */
static inline float emu_reduce_add_ps(emu_m512 v) {
    for (int w = 8; w >= 1; w /= 2)
        for (int i = 0; i < w; i++) v.f[i] += v.f[i + w];
    return v.f[0];
}

#undef __m512i
#define __m512i emu_m512i
#undef _mm512_setzero_si512
#define _mm512_setzero_si512 emu_setzero
#undef _mm512_loadu_si512
#define _mm512_loadu_si512 emu_loadu
#undef _mm512_load_si512
#define _mm512_load_si512 emu_loadu
#undef _mm512_inserti64x4
#define _mm512_inserti64x4 emu_inserti64x4
#undef _mm512_broadcast_i32x4
#define _mm512_broadcast_i32x4 emu_broadcast_i32x4
#undef _mm512_set1_epi8
#define _mm512_set1_epi8 emu_set1_epi8
#undef _mm512_srli_epi16
#define _mm512_srli_epi16 emu_srli_epi16
#undef _mm512_and_si512
#define _mm512_and_si512 emu_and
#undef _mm512_shuffle_epi8
#define _mm512_shuffle_epi8 emu_shuffle_epi8
#undef _mm512_dpbusd_epi32
#define _mm512_dpbusd_epi32 emu_dpbusd
#undef _mm512_dpwssd_epi32
#define _mm512_dpwssd_epi32 emu_dpwssd
#undef _mm512_reduce_add_epi32
#define _mm512_reduce_add_epi32 emu_reduce_add_epi32
#undef _mm512_cvtepi8_epi16
#define _mm512_cvtepi8_epi16 emu_cvtepi8_epi16
#undef __m512
#define __m512 emu_m512
#undef _mm512_setzero_ps
#define _mm512_setzero_ps emu_setzero_ps
#undef _mm512_loadu_ps
#define _mm512_loadu_ps emu_loadu_ps
#undef _mm512_cvtepi8_epi32
#define _mm512_cvtepi8_epi32 emu_cvtepi8_epi32
#undef _mm512_cvtepi32_ps
#define _mm512_cvtepi32_ps emu_cvtepi32_ps
#undef _mm512_fmadd_ps
#define _mm512_fmadd_ps emu_fmadd_ps
#undef _mm512_add_ps
#define _mm512_add_ps emu_add_ps
#undef _mm512_reduce_add_ps
#define _mm512_reduce_add_ps emu_reduce_add_ps

#endif
