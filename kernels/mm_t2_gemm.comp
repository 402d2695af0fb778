/* mm_t2_gemm.comp: MATMUL_T2 for batches of tokens (prefill), up to three ternary matrices
 * sharing one int8 input, as tiled matrix-matrix work.
 *
 * A workgroup of 64 invocations takes a tile of 64 weight rows x 64 tokens; each invocation
 * computes an 8 x 8 block of it (rows tr + 8i, tokens tc + 8j). Per 128-weight block, every
 * invocation unpacks one weight row's 32 bytes into bytes c = w + 1 in shared memory (word
 * 8p + u holds bit plane p of word u, the weights that meet activation word 8p + u) and copies 8
 * of the tokens' 16-byte activation pieces, so each weight is unpacked once per 64 tokens and
 * each activation read once per 64 rows; the 8 x 8 block then takes 4 packed signed x unsigned
 * dot products per 16 bytes from shared memory, and w . x = c . x - sum x. (Signed x signed
 * packed dot products gave wrong sums on one driver; signed x unsigned ones are what every
 * other shader here uses.) Shared rows are 36 words apart (32 + 4 of padding) so that the 16-byte reads of
 * a row group hit distinct banks. Exact int32 sums; out = alpha * xs[t] * sum (or +=).
 * The grid: x over the row tiles of matrix 0, then 1, then 2 (tiles0, tiles1 given); y over the
 * token tiles. Weights and activations start on 16 bytes (the host checks). */
#version 450
#extension GL_EXT_control_flow_attributes : enable
#define WG 64
layout(local_size_x = WG) in;
#include "vk_common.glsl"

#include "mm_t2_batch.glsl"

#define LDS 9u /* uvec4 per shared row: 32 words + 4 of padding */
shared uvec4 wl[64 * LDS];
shared uvec4 xl[64 * LDS];

/* bit plane p of four T2 words as unsigned bytes c = w + 1: 10 -> 2, 00 -> 1, 01 -> 0 (no
 * byte borrows: 1 + plus - minus is never negative) */
uvec4 planes(uvec4 w, uint p) {
    uvec4 plus = (w >> (2u * p + 1u)) & 0x01010101u, minus = (w >> (2u * p)) & 0x01010101u;
    return (plus + 0x01010101u) - minus;
}

void main() {
    uint l = gl_LocalInvocationIndex, tr = l & 7u, tc = l >> 3;
    MM_TILE(mat, tile, n);
    uint row0 = tile * 64u, tok0 = gl_WorkGroupID.y * 64u, xw4 = pc.kw4 * 4u;
    uint wrow = row0 + l;
    bool wlive = wrow < n;
    uint wb = OFF(2 + mat) / 16 + (wlive ? wrow : 0u) * pc.kw4;
    int acc[8][8], xsum[8]; /* sum of c x, and of x: w . x = c . x - sum x */
    [[unroll]] for (uint j = 0; j < 8; j++) {
        xsum[j] = 0;
        [[unroll]] for (uint i = 0; i < 8; i++) acc[i][j] = 0;
    }
    for (uint kb = 0; kb < pc.kw4 / 2; kb++) {
        /* this invocation's weight row, unpacked */
        uvec4 wa = uvec4(0u), wc = uvec4(0u);
        if (wlive) {
            MM_BLOCK(mat, wb, kb, wa, wc)
        }
        [[unroll]] for (uint p = 0; p < 4; p++) {
            wl[l * LDS + 2u * p] = planes(wa, p);
            wl[l * LDS + 2u * p + 1u] = planes(wc, p);
        }
        /* 64 tokens x 8 pieces of this block */
        [[unroll]] for (uint e = 0; e < 8; e++) {
            uint idx = l + 64u * e, tk = idx >> 3, part = idx & 7u;
            uvec4 v = uvec4(0u);
            if (tok0 + tk < pc.ntok) v = X[OFF(0) / 16 + (tok0 + tk) * xw4 + kb * 8u + part];
            xl[tk * LDS + part] = v;
        }
        barrier();
        [[unroll]] for (uint c = 0; c < 8; c++) {
            uvec4 a[8];
            [[unroll]] for (uint i = 0; i < 8; i++) a[i] = wl[(tr + 8u * i) * LDS + c];
            [[unroll]] for (uint j = 0; j < 8; j++) {
                uvec4 b = xl[(tc + 8u * j) * LDS + c];
                /* one add into the accumulator per dot product: the form a compiler turns into
                 * dot-and-accumulate instructions */
                int s = xsum[j];
                s += dot_su(b.x, 0x01010101u); s += dot_su(b.y, 0x01010101u);
                s += dot_su(b.z, 0x01010101u); s += dot_su(b.w, 0x01010101u);
                xsum[j] = s;
                [[unroll]] for (uint i = 0; i < 8; i++) {
                    int t = acc[i][j];
                    t += dot_su(b.x, a[i].x); t += dot_su(b.y, a[i].y);
                    t += dot_su(b.z, a[i].z); t += dot_su(b.w, a[i].w);
                    acc[i][j] = t;
                }
            }
        }
        barrier();
    }
    float alpha = mat == 0 ? pc.alpha0 : mat == 1 ? pc.alpha1 : pc.alpha2;
    uint ob = OFF(5 + mat) / 4;
    [[unroll]] for (uint j = 0; j < 8; j++) {
        uint t = tok0 + tc + 8u * j;
        if (t >= pc.ntok) break;
        precise float f = alpha * uintBitsToFloat(XS[OFF(1) / 4 + t]);
        [[unroll]] for (uint i = 0; i < 8; i++) {
            uint row = row0 + tr + 8u * i;
            if (row >= n) continue;
            precise float v = float(acc[i][j] - xsum[j]) * f;
            uint oi = ob + t * n + row;
            MM_PUT(mat, oi, v)
        }
    }
}
