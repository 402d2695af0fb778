/* mm_t2.comp: MATMUL_T2, up to three ternary matrices sharing one int8 input, in one dispatch.
 *
 * The rows of the three matrices are numbered one after the other; a team of invocations (a
 * subgroup, or 16 invocations in the plain variant) computes one weight row for up to TMAX
 * tokens, so each weight word is loaded once per TMAX tokens (TMAX = 1 for decode, 8 for
 * batches; the grid's z covers the token chunks). Team lanes read consecutive 32-bit words of
 * the row: coalesced.
 *
 * A T2 word (bytes 4i..4i+3 of a 32-byte block) holds 16 weights: bit plane g (bits 2g, 2g+1
 * of each byte) gives weights 32g+4i..32g+4i+3 of the block, which meet the activation word
 * 8g+i of the block. Codes: 00 = 0, 01 = -1, 10 = +1. With c the 2-bit code and m its low
 * bit, c - 3m = 2w, so for each plane: 2 (w . x) = dot(x, c) - 3 dot(x, m), two packed int8
 * dot products per four weights, summed exactly in int32.
 */
#version 450
layout(constant_id = 0) const uint TMAX = 1;
layout(constant_id = 1) const uint WGS = 128;
#define WG WGS
layout(local_size_x_id = 1) in;
#include "vk_common.glsl"

layout(std430, binding = 0) readonly buffer BX { uint X[]; };   /* int8 [rows][kpad] */
layout(std430, binding = 1) readonly buffer BS { uint XS[]; };  /* f32 1/s per row */
layout(std430, binding = 2) readonly buffer BW0 { uint W0[]; };
layout(std430, binding = 3) readonly buffer BW1 { uint W1[]; };
layout(std430, binding = 4) readonly buffer BW2 { uint W2[]; };
layout(std430, binding = 5) buffer BO0 { uint O0[]; };
layout(std430, binding = 6) buffer BO1 { uint O1[]; };
layout(std430, binding = 7) buffer BO2 { uint O2[]; };

layout(push_constant) uniform PC {
    uint o[RTR_NOFF]; /* the operands' offsets, packed (vk_bind.glsl) */
    uint kw;      /* words per weight row (kpad / 16) */
    uint rows;    /* tokens */
    uint n0, n1, n2;
    uint accum;
    uint nt;      /* weight rows per workgroup */
    float alpha0, alpha1, alpha2;
} pc;

#ifndef RTR_SG
#define TPR 16u
shared int red_i[TMAX * WG];
#endif

/* Partial sums of one lane over its words of weight row wrow (word offset) for the tokens
 * t0 .. t0+nt-1. W is one of the three weight buffers. */
#define ROW_DOT(W)                                                                     \
    for (uint i = lane; i < pc.kw; i += tpr) {                                         \
        uint wv = W[wrow + i];                                                         \
        uint xo = (i >> 3) * 32u + (i & 7u);                                           \
        uint c0 = wv & 0x03030303u, c1 = (wv >> 2) & 0x03030303u;                      \
        uint c2 = (wv >> 4) & 0x03030303u, c3 = (wv >> 6) & 0x03030303u;              \
        uint m0 = c0 & 0x01010101u, m1 = c1 & 0x01010101u;                             \
        uint m2 = c2 & 0x01010101u, m3 = c3 & 0x01010101u;                             \
        for (uint t = 0; t < TMAX; t++) {                                              \
            if (t >= ntok) break;                                                      \
            uint x0, x1, x2, x3;                                                       \
            uint xb = xbase + t * xw + xo;                                             \
            x0 = X[xb]; x1 = X[xb + 8]; x2 = X[xb + 16]; x3 = X[xb + 24];              \
            ac[t] += dot_su(x0, c0) + dot_su(x1, c1) + dot_su(x2, c2) + dot_su(x3, c3); \
            am[t] += dot_su(x0, m0) + dot_su(x1, m1) + dot_su(x2, m2) + dot_su(x3, m3); \
        }                                                                              \
    }

void main() {
    uint grp = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
    uint t0 = gl_WorkGroupID.z * TMAX;
    uint ntok = min(TMAX, pc.rows - t0);
    uint xw = pc.kw * 4; /* words per activation row */
    uint xbase = OFF(0) / 4 + t0 * xw;
    uint total = pc.n0 + pc.n1 + pc.n2;
#ifdef RTR_SG
    uint lane = gl_SubgroupInvocationID, tpr = gl_SubgroupSize;
    /* the host sized the grid for pc.nt rows a workgroup; loop in case the subgroup count
     * differs from what it assumed */
    for (uint row = grp * pc.nt + gl_SubgroupID; row < min((grp + 1) * pc.nt, total); row += gl_NumSubgroups) {
#else
    uint lane = gl_LocalInvocationIndex % TPR, tpr = TPR;
    uint row = grp * pc.nt + gl_LocalInvocationIndex / TPR;
    bool live = row < total;
    {
#endif
        int ac[TMAX], am[TMAX];
        for (uint t = 0; t < TMAX; t++) { ac[t] = 0; am[t] = 0; }
        uint mat = 0, lr = row;
        if (lr >= pc.n0) { lr -= pc.n0; mat = 1; if (lr >= pc.n1) { lr -= pc.n1; mat = 2; } }
#ifndef RTR_SG
        if (live) {
#endif
        if (mat == 0) { uint wrow = OFF(2) / 4 + lr * pc.kw; ROW_DOT(W0) }
        else if (mat == 1) { uint wrow = OFF(3) / 4 + lr * pc.kw; ROW_DOT(W1) }
        else { uint wrow = OFF(4) / 4 + lr * pc.kw; ROW_DOT(W2) }
#ifndef RTR_SG
        }
#endif
        int dots[TMAX];
#ifdef RTR_SG
        for (uint t = 0; t < TMAX; t++) dots[t] = subgroupAdd(ac[t] - 3 * am[t]);
        bool leader = subgroupElect();
#else
        uint l = gl_LocalInvocationIndex;
        for (uint t = 0; t < TMAX; t++) red_i[t * WG + l] = ac[t] - 3 * am[t];
        barrier();
        for (uint s = TPR / 2; s > 0; s >>= 1) {
            if (lane < s)
                for (uint t = 0; t < TMAX; t++) red_i[t * WG + l] += red_i[t * WG + l + s];
            barrier();
        }
        for (uint t = 0; t < TMAX; t++) dots[t] = red_i[t * WG + l];
        bool leader = lane == 0 && live;
#endif
        if (leader) {
            uint n = mat == 0 ? pc.n0 : mat == 1 ? pc.n1 : pc.n2;
            float alpha = mat == 0 ? pc.alpha0 : mat == 1 ? pc.alpha1 : pc.alpha2;
            uint ob = OFF(5 + mat) / 4 + t0 * n + lr;
            for (uint t = 0; t < TMAX; t++) {
                if (t >= ntok) break;
                precise float f = alpha * uintBitsToFloat(XS[OFF(1) / 4 + t0 + t]);
                precise float v = float(dots[t] >> 1) * f;
                uint oi = ob + t * n;
                if (mat == 0) { if (pc.accum != 0) v = uintBitsToFloat(O0[oi]) + v; O0[oi] = floatBitsToUint(v); }
                else if (mat == 1) { if (pc.accum != 0) v = uintBitsToFloat(O1[oi]) + v; O1[oi] = floatBitsToUint(v); }
                else { if (pc.accum != 0) v = uintBitsToFloat(O2[oi]) + v; O2[oi] = floatBitsToUint(v); }
            }
        }
    }
}
