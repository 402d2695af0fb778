/* mm_t2_vec.comp: MATMUL_T2 for one token (decode), up to three ternary matrices sharing one
 * int8 input row of at most 8192 columns, optionally with the quantizing RMSNORM in front and
 * the gated activation (GLU) behind, all in one dispatch.
 *
 * Decode moves a few megabytes per product, so what decides its time is how many weight bytes
 * are in flight at once, not arithmetic. Every invocation therefore issues all of its weight
 * loads (up to MAXU 16-byte reads) before anything else, and only then builds the input row in
 * shared memory: copied from X, or (FUSED) normalized and quantized from the f32 row by every
 * workgroup for itself, with workgroup 0 also writing the int8 row and its 1/s where the norm op
 * would have. The loads' latency hides the norm.
 *
 * pc.lpr invocations ("lanes") share a weight row; a workgroup takes WGS / lpr rows of the
 * matrices numbered one after the other. Lane l reads the row's 16-byte pieces l, l + lpr, ...
 * A piece is half h of a 32-byte T2 block b (words 4h..4h+3); its bit plane g meets the
 * activation words 8g+4h..8g+4h+3 of the block, one uvec4 of shared memory. Sums are exact in
 * int32 as in mm_t2.comp (2 w = c - 3 m per 2-bit code c with low bit m).
 *
 * GLU mode (pc.glu = 1 + act): matrices 0 and 1 are gate and up of equal size; a workgroup takes
 * rows j0.. of both (gate in its first half of rows, up in the second) and writes
 * act(gate) * up into out0 and up into out1, as the GLU op in place on the gate rows would. */
#version 450
layout(constant_id = 1) const uint WGS = 256;
layout(constant_id = 2) const uint FUSED = 0;
#define WG WGS
layout(local_size_x_id = 1) in;
#include "vk_common.glsl"

layout(std430, binding = 0) readonly buffer BX { uvec4 X[]; };   /* int8 [kpad] */
layout(std430, binding = 1) readonly buffer BS { uint XS[]; };   /* f32 1/s */
layout(std430, binding = 0) writeonly buffer BXW { uint XW[]; }; /* the same, written when fused */
layout(std430, binding = 1) writeonly buffer BSW { uint XSW[]; };
layout(std430, binding = 2) readonly buffer BW0 { uvec4 W0[]; };
layout(std430, binding = 3) readonly buffer BW1 { uvec4 W1[]; };
layout(std430, binding = 4) readonly buffer BW2 { uvec4 W2[]; };
layout(std430, binding = 5) buffer BO0 { uint O0[]; };
layout(std430, binding = 6) buffer BO1 { uint O1[]; };
layout(std430, binding = 7) buffer BO2 { uint O2[]; };
layout(std430, binding = 8) readonly buffer BNA { vec4 NA[]; }; /* fused: the norm's f32 input row */
layout(std430, binding = 9) readonly buffer BNW { vec4 NW[]; }; /* fused: the norm's weights */

layout(push_constant) uniform PC {
    uint o[10];
    uint kw4;     /* 16-byte pieces per weight row (kpad / 64) */
    uint lpr;     /* lanes per row: 4, 8, 16 or 32, with kw4 <= lpr * MAXU */
    uint n0, n1, n2;
    uint accum;
    uint glu;     /* 0, or 1 + the activation */
    float alpha0, alpha1, alpha2;
    uint fuse;    /* 0, or 1 + (2 if the norm has weights) */
    float eps;
    uint k;       /* fused: the norm's row length */
} pc;

#define MAXU 8u
#define MAXX 512u /* uvec4 of int8 input: kpad <= 8192 */
shared uvec4 xq[MAXX];
shared int part[WGS];
shared float gate[WGS];
float row_xs;

/* The RMSNORM + quantization of norm.comp for the one input row, into xq (f32 arithmetic in
 * the CPU's order, so that the codes match it exactly). */
const uint MAXG = (MAXX * 4 + WGS - 1) / WGS; /* input words an invocation quantizes */
void fused_norm() {
    uint l = gl_LocalInvocationIndex, ab = pc.o[8] / 16, wb = pc.o[9] / 16, n = pc.k, n4 = (n + 3) / 4;
    bool hasw = (pc.fuse & 2u) != 0;
    vec4 y[MAXG], wv[MAXG];
    float ss = 0.0;
    for (uint i = 0; i < MAXG; i++) {
        uint g = l + i * WG;
        y[i] = vec4(0.0);
        wv[i] = vec4(1.0);
        if (g < n4) {
            y[i] = NA[ab + g];
            if (hasw) wv[i] = NW[wb + g];
        }
    }
    for (uint i = 0; i < MAXG; i++)
        for (uint e = 0; e < 4; e++)
            if ((l + i * WG) * 4 + e < n) ss += y[i][e] * y[i][e];
    ss = wg_sum(ss);
    float inv = 1.0 / sqrt(ss / float(n) + pc.eps);
    float m = 0.0;
    for (uint i = 0; i < MAXG; i++)
        for (uint e = 0; e < 4; e++) {
            precise float v = y[i][e] * inv;
            v = v * wv[i][e];
            y[i][e] = (l + i * WG) * 4 + e < n ? v : 0.0;
            float a = abs(y[i][e]);
            if (a > m) m = a;
        }
    m = wg_max(m);
    if (!(m > 1e-5)) m = 1e-5;
    float s = div_rn(127.0, m);
    bool writer = gl_WorkGroupID.x == 0 && gl_WorkGroupID.y == 0;
    for (uint i = 0; i < MAXG; i++) {
        uint g = l + i * WG;
        if (g >= pc.kw4 * 16) break; /* words of the padded row */
        uint word = 0;
        for (uint e = 0; e < 4; e++) {
            precise float v = y[i][e] * s;
            v = v < 127.0 ? v : 127.0;
            v = v > -128.0 ? v : -128.0;
            word |= (uint(int(roundEven(v))) & 0xffu) << (8 * e);
        }
        xq[g / 4][g % 4] = word;
        if (writer) XW[pc.o[0] / 4 + g] = word;
    }
    row_xs = div_rn(m, 127.0);
    if (writer && l == 0) XSW[pc.o[1] / 4] = floatBitsToUint(row_xs);
}

void main() {
    uint grp = flat_group(), l = gl_LocalInvocationIndex;
    uint lpr = pc.lpr, rpw = WGS / lpr, rl = l / lpr, lane = l % lpr;
    bool glu = pc.glu != 0;
    /* this lane's row: matrix mat, row lr of it */
    uint mat = 0, lr;
    bool live;
    if (glu) {
        uint half_ = rpw / 2;
        mat = rl < half_ ? 0 : 1;
        lr = grp * half_ + (rl % half_);
        live = lr < pc.n0;
    } else {
        lr = grp * rpw + rl;
        live = lr < pc.n0 + pc.n1 + pc.n2;
        if (lr >= pc.n0) { lr -= pc.n0; mat = 1; if (lr >= pc.n1) { lr -= pc.n1; mat = 2; } }
    }
    /* 1. every weight load of this lane, in flight together */
    uvec4 w[MAXU];
    uint wrow = lr * pc.kw4 + pc.o[2 + mat] / 16;
    for (uint u = 0; u < MAXU; u++) {
        uint j = lane + u * lpr;
        w[u] = uvec4(0u);
        if (live && j < pc.kw4) {
            if (mat == 0) w[u] = W0[wrow + j];
            else if (mat == 1) w[u] = W1[wrow + j];
            else w[u] = W2[wrow + j];
        }
    }
    /* 2. the int8 input row */
    if (FUSED != 0) fused_norm();
    else {
        for (uint i = l; i < pc.kw4 * 4; i += WG) xq[i] = X[pc.o[0] / 16 + i];
        row_xs = uintBitsToFloat(XS[pc.o[1] / 4]);
    }
    barrier();
    /* 3. the dot products */
    int ac = 0, am = 0;
    for (uint u = 0; u < MAXU; u++) {
        uint j = lane + u * lpr;
        if (j >= pc.kw4) break;
        uint xb = (j >> 1) * 8u + (j & 1u);
        for (uint g = 0; g < 4; g++) {
            uvec4 c = (w[u] >> (2u * g)) & 0x03030303u, mk = c & 0x01010101u, x = xq[xb + 2u * g];
            ac += dot_su(x.x, c.x) + dot_su(x.y, c.y) + dot_su(x.z, c.z) + dot_su(x.w, c.w);
            am += dot_su(x.x, mk.x) + dot_su(x.y, mk.y) + dot_su(x.z, mk.z) + dot_su(x.w, mk.w);
        }
    }
    part[l] = ac - 3 * am;
    barrier();
    /* 4. one invocation a row sums its lanes and writes */
    float v = 0.0;
    if (l < rpw) {
        int d = 0;
        for (uint i = 0; i < lpr; i++) d += part[l * lpr + i];
        rl = l;
        if (glu) {
            mat = rl < rpw / 2 ? 0 : 1;
            lr = grp * (rpw / 2) + (rl % (rpw / 2));
            live = lr < pc.n0;
        } else {
            lr = grp * rpw + rl;
            live = lr < pc.n0 + pc.n1 + pc.n2;
            mat = 0;
            if (lr >= pc.n0) { lr -= pc.n0; mat = 1; if (lr >= pc.n1) { lr -= pc.n1; mat = 2; } }
        }
        float alpha = mat == 0 ? pc.alpha0 : mat == 1 ? pc.alpha1 : pc.alpha2;
        precise float f = alpha * row_xs;
        v = float(d >> 1) * f;
        uint oi = pc.o[5 + mat] / 4 + lr;
        if (live && !glu) {
            if (mat == 0) { if (pc.accum != 0) v = uintBitsToFloat(O0[oi]) + v; O0[oi] = floatBitsToUint(v); }
            else if (mat == 1) { if (pc.accum != 0) v = uintBitsToFloat(O1[oi]) + v; O1[oi] = floatBitsToUint(v); }
            else { if (pc.accum != 0) v = uintBitsToFloat(O2[oi]) + v; O2[oi] = floatBitsToUint(v); }
        }
        gate[l] = v;
    }
    if (!glu) return; /* uniform */
    barrier();
    if (l < rpw / 2 && live) {
        float u = gate[l + rpw / 2];
        uint j = grp * (rpw / 2) + l;
        O0[pc.o[5] / 4 + j] = floatBitsToUint(glu_act(gate[l], u, pc.glu - 1));
        O1[pc.o[6] / 4 + j] = floatBitsToUint(u);
    }
}
