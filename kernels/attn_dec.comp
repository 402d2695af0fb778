/* attn_dec.comp: ATTN for one query row (decode) over a ring of at most a few hundred slots,
 * head_dim a power of two from 32 to 128, f16 or f32 cache. One workgroup of WGS invocations a
 * (head, split of WGS / 4 slots); the host builds it with 512 (256 and 128 measured slower on
 * the H100, BENCH.md).
 *
 * Decode attention is a chain of dependent steps (keys, scores, softmax, values, output), so
 * what decides its time is how much of that chain waits on memory after the dispatch before
 * has finished. Here every key and value the split needs is loaded into registers before the
 * chained wait (vk_chain.glsl): the cached rows of earlier tokens do not change in this step.
 * Only rows this batch stores (slot position at or past the batch's first query position) are
 * read again after the wait. Four invocations take a slot's key (a quarter of its 16-byte
 * pieces each, interleaved so that a slot's reads are contiguous); for the values, invocation
 * (g, d) holds 32-bit word d of the rows of slot group g.
 *
 * Which splits hold a visible slot is worked out by every workgroup alike from the host's slot
 * positions before the wait. Splits with nothing visible do nothing; a single visible split
 * writes the result itself; several write (m, l, acc[hd]) to the scratch and the last to
 * count itself merges them, as attn.comp's splits do. */
#version 450
#extension GL_EXT_control_flow_attributes : enable
layout(constant_id = 1) const uint WGS = 512;
#define WG WGS
#define SPW (WGS / 4u) /* slots a split */
layout(local_size_x_id = 1) in;
#include "vk_common.glsl"

layout(std430, binding = 0) RTR_SHARED readonly buffer BQ { vec4 Q4[]; };
layout(std430, binding = 1) RTR_SHARED readonly buffer BK { uvec4 K4[]; };
layout(std430, binding = 2) RTR_SHARED readonly buffer BV { uint V[]; };
/* The same caches read before the wait: those slots were written by earlier batches, which a
 * barrier at this batch's start made visible, so plain loads serve (and the H100 serves them
 * faster than coherent ones); the rows this batch writes are read again after it, through the
 * RTR_SHARED declarations above. */
layout(std430, binding = 1) readonly buffer BKP { uvec4 K4P[]; };
layout(std430, binding = 2) readonly buffer BVP { uint VP[]; };
layout(std430, binding = 3) readonly buffer BSP { int SP[]; };
layout(std430, binding = 4) readonly buffer BQP { int QP[]; };
layout(std430, binding = 5) RTR_SHARED writeonly buffer BD { uint D[]; };
layout(std430, binding = 6) coherent buffer BPT { uint PT[]; };
layout(std430, binding = 7) coherent buffer BCN { uint CNT[]; };

layout(push_constant) uniform PC {
    uint o[RTR_NOFF]; /* the operands' offsets, packed (vk_bind.glsl) */
    uint n_head, n_kv, hd, cap;
    int n_sink, window;
    float scale;
    uint nsplit, f32;
    uint chain; /* vk_chain.glsl */
} pc;
#include "vk_chain.glsl"

shared uint vmask;        /* splits with a visible slot (at most 32) */
shared int spos_sh[SPW];  /* this split's slot positions */
shared float part[WG];    /* quarter dot products, then nothing */
shared float p_sh[SPW];   /* e^(score - max) a slot */
shared vec2 comb[WG];     /* value sums by (slot group, word) */
shared uint last;

bool visible(int spos, int qp) {
    return spos >= 0 && spos <= qp && (spos < pc.n_sink || qp - spos < pc.window);
}

void body() {
    uint h = gl_WorkGroupID.x, r = gl_WorkGroupID.y, sp = gl_WorkGroupID.z, l = gl_LocalInvocationIndex;
    uint hd = pc.hd, nh = pc.n_head, kvh = h / (nh / pc.n_kv);
    bool f32 = pc.f32 != 0u;
    uint es = f32 ? 4u : 2u, kstride = pc.n_kv * hd; /* elements a slot */
    int qp = QP[OFF(4) / 4 + r], qp0 = QP[OFF(4) / 4];
    const float NEG_INF = uintBitsToFloat(0xff800000u);

    /* 1. before the wait: which splits see anything, and this split's keys and values */
    if (l == 0u) vmask = 0u;
    barrier();
    uint mine = 0u;
    for (uint s = l; s < pc.cap; s += WG)
        if (visible(SP[OFF(3) / 4 + s], qp)) mine |= 1u << (s / SPW);
#ifdef RTR_SG
    mine = subgroupOr(mine);
    if (subgroupElect() && mine != 0u) atomicOr(vmask, mine);
#else
    if (mine != 0u) atomicOr(vmask, mine);
#endif
    uint j = l >> 2, c = l & 3u, s = sp * SPW + j;
    int spos = s < pc.cap ? SP[OFF(3) / 4 + s] : -1;
    bool vis = visible(spos, qp);
    uint npi = hd * es / 64u; /* a quarter of the key row's 16-byte pieces */
    uint kb = OFF(1) / 16 + (s * kstride + kvh * hd) * es / 16u;
    uvec4 kk[8];
    [[unroll]] for (uint u = 0; u < 8u; u++) {
        kk[u] = uvec4(0u);
        if (vis && u < npi) kk[u] = K4P[kb + c + 4u * u];
    }
    if (c == 0u) spos_sh[j] = vis ? spos : -1;
    barrier();
    uint hw = hd * es / 4u, vg = WG / hw, sg = SPW / vg, g = l / hw, d = l % hw;
    uint vb = OFF(2) / 4 + (sp * SPW * kstride + kvh * hd) * es / 4u + d, vstep = kstride * es / 4u;
    uint vw[32];
    [[unroll]] for (uint i = 0; i < 32u; i++) {
        vw[i] = 0u;
        if (i < sg && spos_sh[g * sg + i] >= 0) vw[i] = VP[vb + (g * sg + i) * vstep];
    }
    uint vm = vmask;
    /* a split with nothing visible is done (and frees its multiprocessor early), but for the
     * first when nothing at all is visible: it writes zeros once the wait allows writing */
    if (((vm >> sp) & 1u) == 0u && (vm != 0u || sp != 0u)) return; /* uniform */

    /* 2. after it: the rows this batch wrote, then q */
    chain_wait(pc.chain, OFF(15) / 4);
    uint ob = OFF(5) / 4 + (r * nh + h) * hd;
    if (vm == 0u) { /* uniform */
        if (l < hd) D[ob + l] = 0u;
        return;
    }
    if (vis && spos >= qp0)
        [[unroll]] for (uint u = 0; u < 8u; u++)
            if (u < npi) kk[u] = K4[kb + c + 4u * u];
    [[unroll]] for (uint i = 0; i < 32u; i++)
        if (i < sg) {
            int sj = spos_sh[g * sg + i];
            if (sj >= 0 && sj >= qp0) vw[i] = V[vb + (g * sg + i) * vstep];
        }
    uint qb = OFF(0) / 16 + (r * nh + h) * hd / 4u;
    float dot = 0.0;
    /* straight-line code (guards, no break): constant indices keep kk in registers */
    if (f32) {
        [[unroll]] for (uint u = 0; u < 8u; u++)
            if (u < npi) {
                vec4 q = Q4[qb + c + 4u * u], k = uintBitsToFloat(kk[u]);
                dot += q.x * k.x + q.y * k.y + q.z * k.z + q.w * k.w;
            }
    } else {
        [[unroll]] for (uint u = 0; u < 4u; u++)
            if (u < npi) {
                uint pi = c + 4u * u;
                vec4 qa = Q4[qb + 2u * pi], qc = Q4[qb + 2u * pi + 1u];
                vec2 k0 = unpackHalf2x16(kk[u].x), k1 = unpackHalf2x16(kk[u].y);
                vec2 k2 = unpackHalf2x16(kk[u].z), k3 = unpackHalf2x16(kk[u].w);
                dot += qa.x * k0.x + qa.y * k0.y + qa.z * k1.x + qa.w * k1.y + qc.x * k2.x + qc.y * k2.y + qc.z * k3.x + qc.w * k3.y;
            }
    }

    /* 3. scores and softmax: invocation l < SPW owns slot l */
    part[l] = dot;
    barrier();
    float sc = NEG_INF;
    if (l < SPW && spos_sh[l] >= 0) sc = (part[4u * l] + part[4u * l + 1u] + part[4u * l + 2u] + part[4u * l + 3u]) * pc.scale;
#ifdef RTR_SG
    /* one exchange: each subgroup gives its largest score and its sum of e^(score - that);
     * the split's largest (finite: it has a visible slot) and its sum follow from them */
    float ms = subgroupMax(sc);
    float ss = subgroupAdd(sc != NEG_INF ? exp(sc - ms) : 0.0);
    if (subgroupElect()) comb[gl_SubgroupID] = vec2(ms, ss);
    barrier();
    float m = NEG_INF, lsum = 0.0; /* every subgroup: which ones hold the first SPW is not fixed */
    for (uint i = 0; i < gl_NumSubgroups; i++) m = max(m, comb[i].x);
    for (uint i = 0; i < gl_NumSubgroups; i++)
        if (comb[i].x != NEG_INF) lsum += comb[i].y * exp(comb[i].x - m);
    float e = sc != NEG_INF ? exp(sc - m) : 0.0;
    if (l < SPW) p_sh[l] = e;
    barrier(); /* publishes p_sh, and comb is free again */
#else
    float m = wg_max(sc); /* finite: the split has a visible slot */
    float e = sc != NEG_INF ? exp(sc - m) : 0.0;
    if (l < SPW) p_sh[l] = e;
    float lsum = wg_sum(e); /* its barriers also publish p_sh */
#endif

    /* 4. values: group g's slots, word d */
    vec2 acc = vec2(0.0);
    [[unroll]] for (uint i = 0; i < 32u; i++)
        if (i < sg) acc += p_sh[g * sg + i] * (f32 ? vec2(uintBitsToFloat(vw[i]), 0.0) : unpackHalf2x16(vw[i]));
    comb[l] = acc;
    barrier();
    bool owner = l < hw;
    acc = vec2(0.0);
    if (owner)
        for (uint gi = 0; gi < vg; gi++) acc += comb[gi * hw + l];
    uint nv = bitCount(vm);
    if (nv == 1u) {
        if (!owner) return;
        acc /= lsum;
        if (f32) D[ob + l] = floatBitsToUint(acc.x);
        else { D[ob + 2u * l] = floatBitsToUint(acc.x); D[ob + 2u * l + 1u] = floatBitsToUint(acc.y); }
        return;
    }
    /* several visible splits: partials, merged by the last to arrive */
    uint b0 = OFF(6) / 4 + (r * nh + h) * pc.nsplit * (hd + 2u), pb = b0 + sp * (hd + 2u);
    if (l == 0u) { PT[pb] = floatBitsToUint(m); PT[pb + 1u] = floatBitsToUint(lsum); }
    if (owner) {
        if (f32) PT[pb + 2u + l] = floatBitsToUint(acc.x);
        else { PT[pb + 2u + 2u * l] = floatBitsToUint(acc.x); PT[pb + 3u + 2u * l] = floatBitsToUint(acc.y); }
    }
    memoryBarrierBuffer();
    barrier();
    uint ci = OFF(7) / 4 + r * nh + h;
    if (l == 0u) last = atomicAdd(CNT[ci], 1u) == nv - 1u ? 1u : 0u;
    barrier();
    if (last == 0u) return;
    memoryBarrierBuffer();
    float M = NEG_INF;
    for (uint t = 0; t < pc.nsplit; t++)
        if (((vm >> t) & 1u) != 0u) M = max(M, uintBitsToFloat(PT[b0 + t * (hd + 2u)]));
    if (l < hd) {
        float L = 0.0, a = 0.0;
        for (uint t = 0; t < pc.nsplit; t++) {
            if (((vm >> t) & 1u) == 0u) continue;
            uint b = b0 + t * (hd + 2u);
            float f = exp(uintBitsToFloat(PT[b]) - M);
            L += uintBitsToFloat(PT[b + 1u]) * f;
            a += uintBitsToFloat(PT[b + 2u + l]) * f;
        }
        D[ob + l] = floatBitsToUint(a / L);
    }
    if (l == 0u) CNT[ci] = 0u; /* ready for the next dispatch */
}

void main() {
    body();
    chain_signal(pc.chain, OFF(15) / 4);
}
