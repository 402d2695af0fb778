/* norm.comp: RMSNORM (optional fused residual add and int8 quantization) and QUANT.
 * One workgroup per row. Each invocation owns groups of four elements (one word of the int8
 * output) through every pass, so a, dst and the residual may alias without races.
 * Quantization matches the CPU quant_row bit for bit: s = 127 / max(absmax, 1e-5) rounded
 * correctly, q = rint(clamp(x * s, -128, 127)), 1/s stored as absmax / 127. */
#version 450
#define WG 256
layout(local_size_x = WG) in;
#include "vk_common.glsl"

layout(std430, binding = 0) buffer BA { uint A[]; };            /* rows x n, f32 (rw) */
layout(std430, binding = 1) readonly buffer BB { uint R[]; };   /* residual */
layout(std430, binding = 2) readonly buffer BC { uint W[]; };   /* weights [n] */
layout(std430, binding = 3) writeonly buffer BD { uint D[]; };  /* normalized f32 */
layout(std430, binding = 4) writeonly buffer BQ { uint Q[]; };  /* int8 rows of kpad */
layout(std430, binding = 5) writeonly buffer BS { uint S[]; };  /* 1/s per row */

layout(push_constant) uniform PC {
    uint o[RTR_NOFF]; /* the operands' offsets, packed (vk_bind.glsl) */
    uint rows, n, kpad, flags;
    float eps;
} pc;

#define F_RES 1u
#define F_W 2u
#define F_DST 4u
#define F_QUANT 8u
#define F_NORM 16u

void main() {
    uint row = flat_group();
    if (row >= pc.rows) return; /* whole workgroup */
    uint l = gl_LocalInvocationIndex, n = pc.n;
    uint ab = OFF(0) / 4 + row * n, rb = OFF(1) / 4 + row * n, wb = OFF(2) / 4;
    uint db = OFF(3) / 4 + row * n, qb = OFF(4) / 4 + row * (pc.kpad / 4);
    uint ng = (n + 3) / 4;

    float ss = 0.0;
    for (uint g = l; g < ng; g += WG)
        for (uint e = 0; e < 4; e++) {
            uint j = g * 4 + e;
            if (j >= n) break;
            float x = uintBitsToFloat(A[ab + j]);
            if ((pc.flags & F_RES) != 0) {
                x += uintBitsToFloat(R[rb + j]);
                A[ab + j] = floatBitsToUint(x);
            }
            ss += x * x;
        }
    float inv = 1.0;
    if ((pc.flags & F_NORM) != 0) {
        ss = wg_sum(ss);
        inv = 1.0 / sqrt(ss / float(n) + pc.eps);
    }

    if ((pc.flags & F_QUANT) == 0) {
        for (uint g = l; g < ng; g += WG)
            for (uint e = 0; e < 4; e++) {
                uint j = g * 4 + e;
                if (j >= n) break;
                precise float y = uintBitsToFloat(A[ab + j]) * inv;
                if ((pc.flags & F_W) != 0) y = y * uintBitsToFloat(W[wb + j]);
                D[db + j] = floatBitsToUint(y);
            }
        return;
    }

    float m = 0.0;
    for (uint g = l; g < ng; g += WG)
        for (uint e = 0; e < 4; e++) {
            uint j = g * 4 + e;
            if (j >= n) break;
            precise float y = uintBitsToFloat(A[ab + j]) * inv;
            if ((pc.flags & F_W) != 0) y = y * uintBitsToFloat(W[wb + j]);
            float a = abs(y);
            if (a > m) m = a; /* NaN never wins, as on the CPU */
        }
    m = wg_max(m);
    if (!(m > 1e-5)) m = 1e-5;
    float s = div_rn(127.0, m);
    uint nw = pc.kpad / 4;
    for (uint g = l; g < nw; g += WG) {
        uint word = 0;
        for (uint e = 0; e < 4; e++) {
            uint j = g * 4 + e;
            if (j >= n) break;
            precise float y = uintBitsToFloat(A[ab + j]) * inv;
            if ((pc.flags & F_W) != 0) y = y * uintBitsToFloat(W[wb + j]);
            if ((pc.flags & F_DST) != 0) D[db + j] = floatBitsToUint(y);
            precise float v = y * s;
            v = v < 127.0 ? v : 127.0;
            v = v > -128.0 ? v : -128.0;
            word |= (uint(int(roundEven(v))) & 0xffu) << (8 * e);
        }
        Q[qb + g] = word;
    }
    if (l == 0) S[OFF(5) / 4 + row] = floatBitsToUint(div_rn(m, 127.0));
}
