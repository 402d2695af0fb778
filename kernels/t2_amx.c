/* t2_amx.c: the amx kernel set: the AVX-512 VNNI set with its batched ternary product on the
 * AMX tile unit (Intel Sapphire Rapids and later), for prompt processing.
 *
 * TDPBSUD multiplies a tile of signed bytes (16 rows x 64) by a tile of unsigned bytes laid out
 * in 4-byte groups (16 lines kk, each holding 4 consecutive k for 16 columns) into 16 x 16 int32
 * sums. The signed tile is 16 tokens' activations straight from x (rows kpad apart); the
 * unsigned one is 16 weight rows of c = w + 1 in {0, 1, 2}, unpacked from T2 into that layout
 * once per call for 32 rows and the whole row; c . x - sum(x) is the exact product, as in the
 * AVX2 and AVX-512 sets. Each step of 64 k loads two activation and two weight tiles and
 * accumulates four 16 x 16 blocks (32 tokens x 32 rows). Every tile is full: rows past the end
 * repeat a real row, tokens past the last whole 32 come from a zero-padded copy, and only the
 * stores check.
 * Batches under 16 tokens, and rows longer than RTR_AMX_KMAX, use the AVX-512 VNNI product.
 * The OS must grant the tile state to the process first (rtr_amx_enable, done by dispatch.c).
 */
#include "isa.h"

#include <immintrin.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define RTR_AMX_KMAX 8192 /* kpad at most: the stack buffers below are sized for it */

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

int rtr_amx_enable(void) {
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
}

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_cfg;

/* tiles 0-3: sums (tokens half i, rows half j at 2i + j), 4-5: activations, 6-7: weights; all 16
 * rows of 64 bytes */
static void config(void) {
    tile_cfg c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int t = 0; t < 8; t++) {
        c.colsb[t] = 64;
        c.rows[t] = 16;
    }
    _tile_loadconfig(&c);
}

/* 16 rows (rows past nr repeat row 0; their sums are dropped) of the T2 blocks into B tiles of
 * c = w + 1: for each 64-k step, 16 lines kk of 16 rows x 4 bytes, the 4 consecutive weights
 * 4kk.. of each row. Those 4 weights sit in one 32-bit word of the row's 32-byte block (word
 * kk % 8, bit plane 2h + kk / 8 for the step's half h of the block): one gather fetches a word
 * from each of the 16 rows, and the plane becomes bytes through a table. */
static void unpack_tiles(const uint8_t *w, size_t rb, int nr, int kpad, uint8_t *bt) {
    const __m512i lut = _mm512_broadcast_i32x4(_mm_setr_epi8(1, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0));
    const __m512i m3 = _mm512_set1_epi8(3);
    int32_t offs[16];
    for (int n = 0; n < 16; n++) offs[n] = (int32_t)((size_t)(n < nr ? n : 0) * rb);
    __m512i vo = _mm512_loadu_si512(offs);
    for (int b = 0; b < kpad / 128; b++) {
        const uint8_t *blk = w + (size_t)b * 32;
        for (int i = 0; i < 8; i++) {
            __m512i v = _mm512_i32gather_epi32(vo, blk + 4 * i, 1);
            for (int p = 0; p < 4; p++) {
                __m512i c = _mm512_shuffle_epi8(lut, _mm512_and_si512(_mm512_srli_epi32(v, 2 * p), m3));
                /* plane p is step 2b + p / 2, line kk = 8 (p % 2) + i */
                _mm512_store_si512(bt + ((size_t)(2 * b + p / 2) * 16 + 8 * (p % 2) + i) * 64, c);
            }
        }
    }
}

static void store_block(const int32_t *c, int t0, int nt, int r0, int nr, const int32_t *xsum, int32_t *out,
                        size_t os) {
    for (int t = 0; t < 16 && t0 + t < nt; t++)
        for (int r = 0; r < 16 && r0 + r < nr; r++)
            out[(size_t)(t0 + t) * os + r0 + r] = c[t * 16 + r] - xsum[t0 + t];
}

/* C (tokens x rows) += A (16 tokens x 64 k of x, signed) . B (weights, unsigned): TDPBSUD */
static void amx_gemm(const uint8_t *w, size_t rb, int nrows, const int8_t *x, const int32_t *xsum, int kpad,
                     int ntok, int32_t *out, size_t os) {
    _Alignas(64) uint8_t bt[2][RTR_AMX_KMAX * 16]; /* two row groups' tiles, all steps */
    _Alignas(64) int8_t tail[32 * RTR_AMX_KMAX];     /* tokens past the last whole 32, zero-padded */
    _Alignas(64) int32_t c[4][256];
    int steps = kpad / 64, nfull = ntok / 32 * 32;
    if (nfull < ntok) {
        memset(tail, 0, (size_t)32 * kpad);
        memcpy(tail, x + (size_t)nfull * kpad, (size_t)(ntok - nfull) * kpad);
    }
    config();
    for (int r0 = 0; r0 < nrows; r0 += 32) {
        int nr = nrows - r0 < 32 ? nrows - r0 : 32;
        unpack_tiles(w + (size_t)r0 * rb, rb, nr, kpad, bt[0]);
        int g2 = nr > 16;
        if (g2) unpack_tiles(w + (size_t)(r0 + 16) * rb, rb, nr - 16, kpad, bt[1]);
        for (int t0 = 0; t0 < ntok; t0 += 32) {
            const int8_t *xa = t0 < nfull ? x + (size_t)t0 * kpad : tail;
            _tile_zero(0);
            _tile_zero(1);
            _tile_zero(2);
            _tile_zero(3);
            for (int s = 0; s < steps; s++) {
                _tile_loadd(4, xa + (size_t)s * 64, kpad);
                _tile_loadd(5, xa + (size_t)16 * kpad + (size_t)s * 64, kpad);
                _tile_loadd(6, bt[0] + (size_t)s * 1024, 64);
                _tile_loadd(7, bt[g2] + (size_t)s * 1024, 64);
                _tile_dpbsud(0, 4, 6);
                _tile_dpbsud(1, 4, 7);
                _tile_dpbsud(2, 5, 6);
                _tile_dpbsud(3, 5, 7);
            }
            _tile_stored(0, c[0], 64);
            _tile_stored(1, c[1], 64);
            _tile_stored(2, c[2], 64);
            _tile_stored(3, c[3], 64);
            int32_t *o = out + r0;
            store_block(c[0], t0, ntok, 0, nr, xsum, o, os);
            store_block(c[2], t0 + 16, ntok, 0, nr, xsum, o, os);
            if (g2) {
                store_block(c[1], t0, ntok, 16, nr, xsum, o, os);
                store_block(c[3], t0 + 16, ntok, 16, nr, xsum, o, os);
            }
        }
    }
    _tile_release();
}

static int32_t sum_i8(const int8_t *x, int n) {
    int32_t s = 0;
    for (int i = 0; i < n; i++) s += x[i];
    return s;
}

static void t2_gemm(const uint8_t *w, size_t rb, int nrows, const int8_t *x, const int32_t *xsum, int kpad,
                    int ntok, int32_t *out, size_t os) {
    if (ntok < 16 || kpad > RTR_AMX_KMAX) {
        rtr_kernels_avx512vnni.t2_gemm(w, rb, nrows, x, xsum, kpad, ntok, out, os);
        return;
    }
    if (xsum) {
        amx_gemm(w, rb, nrows, x, xsum, kpad, ntok, out, os);
        return;
    }
    int32_t xs[64];
    for (int t0 = 0; t0 < ntok; t0 += 64) {
        int nt = ntok - t0 < 64 ? ntok - t0 : 64;
        for (int t = 0; t < nt; t++) xs[t] = sum_i8(x + (size_t)(t0 + t) * kpad, kpad);
        t2_gemm(w, rb, nrows, x + (size_t)t0 * kpad, xs, kpad, nt, out + (size_t)t0 * os, os);
    }
}

const rtr_kernels rtr_kernels_amx = {
    .name = "amx",
    .t2_gemm = t2_gemm,
    .q8_gemm = rtr_q8_gemm_avx512vnni,
    RTR_AVX512_FLOAT_KERNELS,
};
