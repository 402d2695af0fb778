/* mm_t2_vec.comp: MATMUL_T2 for one token (decode), up to three ternary matrices sharing one
 * int8 input row of at most 8192 columns, optionally with the quantizing RMSNORM in front and
 * the gated activation (GLU) or, for q/k/v, the ROPE of q and k and the KV_STORE of k and v
 * behind, all in one dispatch.
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
 * int32: one dot product a byte lane on the codes remapped to w + 1 (step 3), less the row's
 * code sum.
 *
 * GLU mode (PC_GLU = 1 + act): matrices 0 and 1 are gate and up of equal size; a workgroup takes
 * rows j0.. of both (gate in its first half of rows, up in the second) and writes
 * act(gate) * up into out0 and up into out1, as the GLU op in place on the gate rows would.
 *
 * RoPE/KV mode (PC_RKV != 0): the q/k/v product of one token also does the ROPE of q and k and
 * the KV_STORE of k and v that follow it, from the row sums in shared memory (rkv_row orders
 * the rows so that a workgroup holds both halves of every rotation pair).
 *
 * Specialization picks the variants the host builds: NG (the fused norm's row words an
 * invocation holds in registers) and MAXU (weight pieces an invocation), since registers decide
 * how many workgroups a multiprocessor holds at once. */
#version 450
#extension GL_EXT_control_flow_attributes : enable
layout(constant_id = 1) const uint WGS = 256;
layout(constant_id = 2) const uint FUSED = 0;
layout(constant_id = 3) const uint NG = 8; /* fused: input words an invocation normalizes, NG * WGS * 4 >= kpad */
layout(constant_id = 4) const uint MAXU = 8; /* 16-byte weight pieces an invocation, lpr * MAXU >= kpad / 64 */
#define WG WGS
layout(local_size_x_id = 1) in;
#include "vk_common.glsl"

layout(std430, binding = 0) RTR_SHARED readonly buffer BX { uvec4 X[]; };   /* int8 [kpad] */
layout(std430, binding = 1) RTR_SHARED readonly buffer BS { uint XS[]; };   /* f32 1/s */
layout(std430, binding = 0) RTR_SHARED writeonly buffer BXW { uint XW[]; }; /* the same, written when fused */
layout(std430, binding = 1) RTR_SHARED writeonly buffer BSW { uint XSW[]; };
layout(std430, binding = 2) readonly buffer BW0 { uvec4 W0[]; };
layout(std430, binding = 3) readonly buffer BW1 { uvec4 W1[]; };
layout(std430, binding = 4) readonly buffer BW2 { uvec4 W2[]; };
layout(std430, binding = 5) RTR_SHARED buffer BO0 { uint O0[]; };
layout(std430, binding = 6) RTR_SHARED buffer BO1 { uint O1[]; };
layout(std430, binding = 7) RTR_SHARED buffer BO2 { uint O2[]; };
layout(std430, binding = 8) RTR_SHARED readonly buffer BNA { vec4 NA[]; }; /* fused: the norm's f32 input row */
layout(std430, binding = 9) readonly buffer BNW { vec4 NW[]; }; /* fused: the norm's weights */
layout(std430, binding = 10) readonly buffer BSL { int SL[]; };  /* RoPE/KV: the token's ring slot */
layout(std430, binding = 11) readonly buffer BPO { int POS[]; }; /* RoPE/KV: its position */
layout(std430, binding = 12) readonly buffer BTB { uint TAB[]; }; /* RoPE/KV: inverse frequencies */
layout(std430, binding = 13) RTR_SHARED writeonly buffer BKC { uint KC[]; }; /* RoPE/KV: the layer's caches */
layout(std430, binding = 14) RTR_SHARED writeonly buffer BVC { uint VC[]; };

layout(push_constant) uniform PC {
    uint o[RTR_NOFF]; /* the operands' offsets, packed (vk_bind.glsl) */
    uint kw4;     /* 16-byte pieces per weight row (kpad / 64) */
    uint lpr;     /* lanes per row: 4, 8, 16 or 32, with kw4 <= lpr * MAXU */
    uint n0, n1, n2;
    uint mode;    /* bit 0 accumulate; bits 1..3 glu; 4..5 fuse; 6..7 rkv (below) */
    uint chain;   /* vk_chain.glsl */
    float alpha0, alpha1, alpha2;
    float eps;
    uint k;       /* fused: the norm's row length */
    uint hd;      /* RoPE/KV: head_dim, a multiple of 4 */
    uint max_slots, kvn; /* RoPE/KV: slots the bound cache holds, elements a cache row */
} pc;
#define PC_ACCUM (pc.mode & 1u)
#define PC_GLU ((pc.mode >> 1) & 7u)  /* 0, or 1 + the activation */
#define PC_FUSE ((pc.mode >> 4) & 3u) /* 0, or 1 + (2 if the norm has weights) */
#define PC_RKV ((pc.mode >> 6) & 3u)  /* 0, or 1 (+ 2 for an f32 cache): RoPE of q and k, k and v into the ring */
#include "vk_chain.glsl"

#define MAXX 512u /* uvec4 of int8 input: kpad <= 8192 */
shared uvec4 xq[MAXX];
/* Where 16-byte piece i of the input row sits in xq: the eight pieces of 128 bytes are permuted
 * by block so that the lanes of a row, which read one bit plane of consecutive blocks at once,
 * meet eight different 16-byte bank groups instead of two (a 4-way conflict on every read). */
uint xq_at(uint i) { return (i & ~7u) | ((i & 7u) ^ ((i >> 2) & 6u)); }
shared int part[WGS];
shared int xsum; /* the sum of the int8 input row's codes */

/* adds this invocation's share of the input row's code sum into xsum (before the barrier that
 * publishes the row) */
void add_xsum(int t) {
#ifdef RTR_SG
    t = subgroupAdd(t);
    if (subgroupElect()) atomicAdd(xsum, t);
#else
    if (t != 0) atomicAdd(xsum, t);
#endif
}
shared float gate[WGS];
float row_xs;

/* The norm's weights of this invocation's words of the row: constant for the model's life, so
 * read before the chained wait, their latency hidden with the weights'. */
vec4 nwr[NG];
void norm_weights() {
    uint l = gl_LocalInvocationIndex, wb = OFF(9) / 16, n4 = (pc.k + 3) / 4;
    bool hasw = (PC_FUSE & 2u) != 0;
    [[unroll]] for (uint i = 0; i < NG; i++) {
        uint g = l + i * WG;
        nwr[i] = hasw && g < n4 ? NW[wb + g] : vec4(1.0);
    }
}

/* The sum of squares and the largest |x w| of the row in one reduction. */
shared vec2 red2[WGS];
vec2 wg_sum_max(float s, float m) {
#ifdef RTR_SG
    s = subgroupAdd(s);
    m = subgroupMax(m);
    if (subgroupElect()) red2[gl_SubgroupID] = vec2(s, m);
    barrier();
    vec2 r = red2[0];
    for (uint i = 1; i < gl_NumSubgroups; i++) { r.x += red2[i].x; r.y = max(r.y, red2[i].y); }
    barrier();
    return r;
#else
    uint l = gl_LocalInvocationIndex;
    red2[l] = vec2(s, m);
    barrier();
    for (uint h = WG / 2; h > 0; h >>= 1) {
        if (l < h) red2[l] = vec2(red2[l].x + red2[l + h].x, max(red2[l].y, red2[l + h].y));
        barrier();
    }
    vec2 r = red2[0];
    barrier();
    return r;
#endif
}

/* The RMSNORM + quantization of norm.comp for the one input row, into xq, the row held in
 * registers (NG words an invocation). The scale comes from one reduction of the sum of squares
 * and of max |x w| (the largest |x / rms * w| is that times 1 / rms, to within a rounding that
 * the clamp absorbs); each code is then the CPU's f32 arithmetic in its order. */
void fused_norm() {
    uint l = gl_LocalInvocationIndex, ab = OFF(8) / 16, n = pc.k, n4 = (n + 3) / 4;
    vec4 y[NG];
    float ss = 0.0, mx = 0.0;
    [[unroll]] for (uint i = 0; i < NG; i++) {
        uint g = l + i * WG;
        y[i] = vec4(0.0);
        if (g < n4) y[i] = NA[ab + g];
    }
    [[unroll]] for (uint i = 0; i < NG; i++)
        [[unroll]] for (uint e = 0; e < 4; e++)
            if ((l + i * WG) * 4 + e < n) {
                ss += y[i][e] * y[i][e];
                mx = max(mx, abs(y[i][e] * nwr[i][e]));
            }
    vec2 r = wg_sum_max(ss, mx);
    float inv = 1.0 / sqrt(r.x / float(n) + pc.eps);
    float m = r.y * inv;
    [[unroll]] for (uint i = 0; i < NG; i++)
        [[unroll]] for (uint e = 0; e < 4; e++) {
            precise float v = y[i][e] * inv;
            v = v * nwr[i][e];
            y[i][e] = (l + i * WG) * 4 + e < n ? v : 0.0;
        }
    if (!(m > 1e-5)) m = 1e-5;
    float s = div_rn(127.0, m);
    bool writer = gl_WorkGroupID.x == 0 && gl_WorkGroupID.y == 0;
    int xt = 0;
    [[unroll]] for (uint i = 0; i < NG; i++) {
        uint g = l + i * WG;
        if (g >= pc.kw4 * 16) break; /* words of the padded row */
        uint word = 0;
        [[unroll]] for (uint e = 0; e < 4; e++) {
            precise float v = y[i][e] * s;
            v = v < 127.0 ? v : 127.0;
            v = v > -128.0 ? v : -128.0;
            word |= (uint(int(roundEven(v))) & 0xffu) << (8 * e);
        }
        xq[xq_at(g / 4)][g % 4] = word;
        xt += dot_su(word, 0x01010101u);
        if (writer) XW[OFF(0) / 4 + g] = word;
    }
    add_xsum(xt);
    row_xs = div_rn(m, 127.0);
    if (writer && l == 0) XSW[OFF(1) / 4] = floatBitsToUint(row_xs);
}

/* RoPE/KV mode: rows of q and k go in fours, elements (j, j + 1, j + hd/2, j + 1 + hd/2) of a
 * head for j = 0, 2, 4, ..., so that a workgroup (rows a multiple of 4) holds both halves of
 * each rotation pair. The weight row of this lane's row lr of matrix mat: */
uint rkv_row(uint mat, uint lr) {
    if (PC_RKV == 0 || mat == 2) return lr;
    uint hd = pc.hd, i = lr % hd;
    return lr - i + (i / 4) * 2 + (i & 1u) + ((i >> 1) & 1u) * (hd / 2);
}

/* The four rows from lr on of matrix mat (x0..x3 in the order above): q and k rotated as the
 * ROPE op does (kv_store.comp's arithmetic) and written back, k and v also stored in the token's
 * slot of the ring as the KV_STORE op does. slot, pos and the two inverse frequencies were read
 * at the start, their latency hidden behind the weights'. */
void rkv_store(uint mat, uint lr, float x0, float x1, float x2, float x3, int slot, int pos, vec2 inv) {
    bool put = slot >= 0 && uint(slot) < pc.max_slots, f32 = (PC_RKV & 2u) != 0;
    uint cb = uint(slot) * pc.kvn;
    if (mat == 2) {
        uint ob = OFF(7) / 4 + lr;
        O2[ob] = floatBitsToUint(x0); O2[ob + 1] = floatBitsToUint(x1);
        O2[ob + 2] = floatBitsToUint(x2); O2[ob + 3] = floatBitsToUint(x3);
        if (!put) return;
        uint c = cb + lr;
        if (f32) {
            uint vb = OFF(14) / 4 + c;
            VC[vb] = floatBitsToUint(x0); VC[vb + 1] = floatBitsToUint(x1);
            VC[vb + 2] = floatBitsToUint(x2); VC[vb + 3] = floatBitsToUint(x3);
        } else {
            VC[OFF(14) / 4 + c / 2] = packHalf2x16(vec2(x0, x1));
            VC[OFF(14) / 4 + c / 2 + 1] = packHalf2x16(vec2(x2, x3));
        }
        return;
    }
    uint hd = pc.hd, j = (lr % hd) / 2, e0 = lr - lr % hd + j, e1 = e0 + hd / 2;
    vec2 cs0 = rope_cs(pos, inv.x), cs1 = rope_cs(pos, inv.y);
    precise float a0 = x0 * cs0.x - x2 * cs0.y, b0 = x2 * cs0.x + x0 * cs0.y;
    precise float a1 = x1 * cs1.x - x3 * cs1.y, b1 = x3 * cs1.x + x1 * cs1.y;
    if (mat == 0) {
        uint ob = OFF(5) / 4;
        O0[ob + e0] = floatBitsToUint(a0); O0[ob + e0 + 1] = floatBitsToUint(a1);
        O0[ob + e1] = floatBitsToUint(b0); O0[ob + e1 + 1] = floatBitsToUint(b1);
        return;
    }
    uint ob = OFF(6) / 4;
    O1[ob + e0] = floatBitsToUint(a0); O1[ob + e0 + 1] = floatBitsToUint(a1);
    O1[ob + e1] = floatBitsToUint(b0); O1[ob + e1 + 1] = floatBitsToUint(b1);
    if (!put) return;
    if (f32) {
        uint kb = OFF(13) / 4 + cb;
        KC[kb + e0] = floatBitsToUint(a0); KC[kb + e0 + 1] = floatBitsToUint(a1);
        KC[kb + e1] = floatBitsToUint(b0); KC[kb + e1 + 1] = floatBitsToUint(b1);
    } else {
        KC[OFF(13) / 4 + (cb + e0) / 2] = packHalf2x16(vec2(a0, a1));
        KC[OFF(13) / 4 + (cb + e1) / 2] = packHalf2x16(vec2(b0, b1));
    }
}

void body() {
    uint grp = flat_group(), l = gl_LocalInvocationIndex;
    uint lpr = pc.lpr, rpw = WGS / lpr, rl = l / lpr, lane = l % lpr;
    bool glu = PC_GLU != 0;
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
    uint wrow = rkv_row(mat, lr) * pc.kw4 + OFF(2 + mat) / 16;
    [[unroll]] for (uint u = 0; u < MAXU; u++) {
        uint j = lane + u * lpr;
        w[u] = uvec4(0u);
        if (live && j < pc.kw4) {
            if (mat == 0) w[u] = W0[wrow + j];
            else if (mat == 1) w[u] = W1[wrow + j];
            else w[u] = W2[wrow + j];
        }
    }
    /* RoPE/KV: what the epilogue's invocations will need, read now */
    int rslot = 0, rpos = 0;
    vec2 rinv = vec2(0.0);
    if (PC_RKV != 0 && l < rpw / 4) {
        rslot = SL[OFF(10) / 4];
        rpos = POS[OFF(11) / 4];
        uint j = ((grp * rpw + 4 * l) % pc.hd) / 2; /* the same j for q, k (v ignores it) */
        rinv = vec2(uintBitsToFloat(TAB[OFF(12) / 4 + j]), uintBitsToFloat(TAB[OFF(12) / 4 + j + 1]));
    }
    /* 2. the int8 input row, once the dispatch before has written it (chained) */
    if (FUSED != 0) norm_weights();
    if (l == 0) xsum = 0;
    barrier();
    chain_wait(pc.chain, OFF(15) / 4);
    if (FUSED != 0) fused_norm();
    else {
        int xt = 0;
        for (uint i = l; i < pc.kw4 * 4; i += WG) {
            uvec4 x = X[OFF(0) / 16 + i];
            xq[xq_at(i)] = x;
            xt += dot_su(x.x, 0x01010101u) + dot_su(x.y, 0x01010101u) + dot_su(x.z, 0x01010101u) + dot_su(x.w, 0x01010101u);
        }
        add_xsum(xt);
        row_xs = uintBitsToFloat(XS[OFF(1) / 4]);
    }
    barrier();
    /* 3. the dot products. Each 2-bit code c becomes w + 1 (0, 1, 2: c with its low bit
     * replaced by low XOR NOT high), so that one unsigned dot product a byte lane takes it:
     * sum w x = sum (w + 1) x - sum x, the last term xsum once a row. Field g of every byte
     * is masked in place, which scales its dot products by 4^g (at most 2 << 6 = 128 a lane:
     * still a byte), so each field keeps its own sum, divided exactly at the end. */
    int a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    [[unroll]] for (uint u = 0; u < MAXU; u++) {
        uint j = lane + u * lpr;
        if (j >= pc.kw4) break;
        uint xb = (j >> 1) * 8u + (j & 1u);
        uvec4 c = w[u] ^ ((~w[u] >> 1u) & 0x55555555u);
        uvec4 x0 = xq[xq_at(xb)], x1 = xq[xq_at(xb + 2u)], x2 = xq[xq_at(xb + 4u)], x3 = xq[xq_at(xb + 6u)];
        uvec4 c0 = c & 0x03030303u, c1 = c & 0x0c0c0c0cu, c2 = c & 0x30303030u, c3 = c & 0xc0c0c0c0u;
        a0 += dot_su(x0.x, c0.x) + dot_su(x0.y, c0.y) + dot_su(x0.z, c0.z) + dot_su(x0.w, c0.w);
        a1 += dot_su(x1.x, c1.x) + dot_su(x1.y, c1.y) + dot_su(x1.z, c1.z) + dot_su(x1.w, c1.w);
        a2 += dot_su(x2.x, c2.x) + dot_su(x2.y, c2.y) + dot_su(x2.z, c2.z) + dot_su(x2.w, c2.w);
        a3 += dot_su(x3.x, c3.x) + dot_su(x3.y, c3.y) + dot_su(x3.z, c3.z) + dot_su(x3.w, c3.w);
    }
    part[l] = a0 + (a1 >> 2) + (a2 >> 4) + (a3 >> 6);
    barrier();
    /* 4. one invocation a row sums its lanes and writes */
    float v = 0.0;
    if (l < rpw) {
        int d = 0;
        for (uint i = 0; i < lpr; i++) d += part[l * lpr + i];
        d -= xsum;
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
        v = float(d) * f;
        uint oi = OFF(5 + mat) / 4 + lr;
        if (live && !glu && PC_RKV == 0) {
            if (mat == 0) { if (PC_ACCUM != 0) v = uintBitsToFloat(O0[oi]) + v; O0[oi] = floatBitsToUint(v); }
            else if (mat == 1) { if (PC_ACCUM != 0) v = uintBitsToFloat(O1[oi]) + v; O1[oi] = floatBitsToUint(v); }
            else { if (PC_ACCUM != 0) v = uintBitsToFloat(O2[oi]) + v; O2[oi] = floatBitsToUint(v); }
        }
        gate[l] = v;
    }
    if (PC_RKV != 0) { /* uniform */
        barrier();
        if (l < rpw / 4) {
            lr = grp * rpw + 4 * l;
            mat = 0;
            if (lr < pc.n0 + pc.n1 + pc.n2) {
                if (lr >= pc.n0) { lr -= pc.n0; mat = 1; if (lr >= pc.n1) { lr -= pc.n1; mat = 2; } }
                rkv_store(mat, lr, gate[4 * l], gate[4 * l + 1], gate[4 * l + 2], gate[4 * l + 3], rslot, rpos, rinv);
            }
        }
        return;
    }
    if (!glu) return; /* uniform */
    barrier();
    if (l < rpw / 2 && live) {
        float u = gate[l + rpw / 2];
        uint j = grp * (rpw / 2) + l;
        O0[OFF(5) / 4 + j] = floatBitsToUint(glu_act(gate[l], u, PC_GLU - 1));
        O1[OFF(6) / 4 + j] = floatBitsToUint(u);
    }
}

void main() {
    body();
    chain_signal(pc.chain, OFF(15) / 4);
}
