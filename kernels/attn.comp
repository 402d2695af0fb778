/* attn.comp: ATTN over the ring (f16 or f32 K/V), f32 math. One workgroup per (head, row, split): a
 * split takes a run of slots (a multiple of 32, so that a short ring still spreads over many
 * workgroups) and walks it in chunks of up to CH slots, keeping an online softmax (running max m,
 * sum l, weighted V sum). Per chunk, invocation i scores slot i of the chunk (visibility rule of
 * backend.h, then q . K * scale), the chunk max and sum come from workgroup reductions, and the
 * V rows are summed by groups of invocations taking alternate slots, combined at the end. When
 * head_dim is a multiple of 8 and rows start on 16 bytes, keys and values are read 8 dims a
 * piece (attn_common.glsl), several pieces in flight at once, each invocation of a group
 * owning 8 dims; otherwise 2 dims a read. Decode uses this shader; batches of rows go to
 * attn_batch.comp where it applies. With one split the result goes to dst; with
 * several, each split writes (m, l, acc[hd]) to the scratch and counts itself in a per-(row,
 * head) counter: the last split to arrive merges them (out = sum_s acc_s e^(m_s - M) / sum_s l_s
 * e^(m_s - M)) and resets the counter, so the merge needs no dispatch of its own. head_dim is
 * even, <= 256. */
#version 450
#extension GL_EXT_control_flow_attributes : enable
#define WG 128
#define CH 128
#define KB 8 /* key reads in flight an invocation */
#define VB 4 /* value rows in flight a group */
layout(local_size_x = WG) in;
#include "vk_common.glsl"

layout(std430, binding = 0) RTR_SHARED readonly buffer BQ { uint Q[]; };
layout(std430, binding = 1) RTR_SHARED readonly buffer BK { uint K[]; };
layout(std430, binding = 1) RTR_SHARED readonly buffer BK4 { uvec4 K4[]; }; /* the same, 16 bytes a read */
layout(std430, binding = 2) RTR_SHARED readonly buffer BV { uint V[]; };
layout(std430, binding = 2) RTR_SHARED readonly buffer BV4 { uvec4 V4[]; };
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
    uint nsplit, sps, f32; /* sps: slots a split */
    uint chain; /* vk_chain.glsl */
} pc;
#include "vk_chain.glsl"

/* elements 2w, 2w+1 of the row starting at element e0 of a cache */
vec2 kpair(uint e0, uint w) {
    if (pc.f32 != 0) return vec2(uintBitsToFloat(K[OFF(1) / 4 + e0 + 2 * w]), uintBitsToFloat(K[OFF(1) / 4 + e0 + 2 * w + 1]));
    return unpackHalf2x16(K[OFF(1) / 4 + e0 / 2 + w]);
}
vec2 vpair(uint e0, uint w) {
    if (pc.f32 != 0) return vec2(uintBitsToFloat(V[OFF(2) / 4 + e0 + 2 * w]), uintBitsToFloat(V[OFF(2) / 4 + e0 + 2 * w + 1]));
    return unpackHalf2x16(V[OFF(2) / 4 + e0 / 2 + w]);
}

#include "attn_common.glsl"

shared float qsh[256];
shared float p[CH];
shared float comb[WG * 8]; /* groups x head dims: at most (WG / (hd / 8)) hd */
shared uint last;

void body() {
    uint h = gl_WorkGroupID.x, r = gl_WorkGroupID.y, sp = gl_WorkGroupID.z;
    uint l = gl_LocalInvocationIndex, hd = pc.hd, hw = hd / 2;
    uint kvh = h / (pc.n_head / pc.n_kv);
    uint qb = OFF(0) / 4 + (r * pc.n_head + h) * hd;
    int qp = QP[OFF(4) / 4 + r]; /* from the host: read before the wait */
    uint s0 = sp * pc.sps, s1 = min(s0 + pc.sps, pc.cap);
    /* the slot positions (from the host too) of the first two chunks, read before the wait */
    int spre0 = s0 + l < s1 ? SP[OFF(3) / 4 + s0 + l] : -1;
    int spre1 = s0 + CH + l < s1 ? SP[OFF(3) / 4 + s0 + CH + l] : -1;
    chain_wait(pc.chain, OFF(15) / 4);
    for (uint d = l; d < hd; d += WG) qsh[d] = uintBitsToFloat(Q[qb + d]);
    barrier();

    const float NEG_INF = uintBitsToFloat(0xff800000u);
    uint G = WG / hw, wi = l % hw, gi = l / hw;
    bool vact = gi < G;
    vec2 acc = vec2(0.0);
    float m = NEG_INF, lsum = 0.0;
    uint kstride = pc.n_kv * hd; /* elements per slot */
    /* 16-byte key reads: f16 rows of whole uvec4s starting on one */
    bool k4 = hd % 8 == 0 && OFF(1) % 16 == 0 && kstride % 8 == 0;
    /* the same for values: G4 groups of hd / 8 invocations, each group its own slots */
    bool v4 = hd % 8 == 0 && OFF(2) % 16 == 0 && kstride % 8 == 0;
    uint G4 = WG / (hd / 8 > 0 ? hd / 8 : 1), wi4 = l % (hd / 8 > 0 ? hd / 8 : 1), gi4 = l / (hd / 8 > 0 ? hd / 8 : 1);
    bool v4act = v4 && gi4 < G4;
    vec4 acc4a = vec4(0.0), acc4b = vec4(0.0);
    for (uint base = s0; base < s1; base += CH) {
        uint s = base + l, jn = min(CH, s1 - base);
        bool vis = false;
        float sc = NEG_INF;
        if (s < s1) {
            int spos = base == s0 ? spre0 : base == s0 + CH ? spre1 : SP[OFF(3) / 4 + s];
            vis = spos >= 0 && spos <= qp && (spos < pc.n_sink || qp - spos < pc.window);
        }
        if (vis) {
            uint kb = s * kstride + kvh * hd;
            float dot = 0.0;
            if (k4) {
                /* KB pieces' reads issued together, then used */
                for (uint w0 = 0; w0 < hd / 8; w0 += KB) {
                    vec4 ka[KB], kc[KB];
                    [[unroll]] for (uint u = 0; u < KB; u++) {
                        ka[u] = kc[u] = vec4(0.0);
                        if (w0 + u < hd / 8) kpiece(kb, w0 + u, ka[u], kc[u]);
                    }
                    [[unroll]] for (uint u = 0; u < KB; u++) {
                        if (w0 + u >= hd / 8) break;
                        uint e = 8 * (w0 + u);
                        dot += qsh[e] * ka[u].x + qsh[e + 1] * ka[u].y + qsh[e + 2] * ka[u].z + qsh[e + 3] * ka[u].w +
                               qsh[e + 4] * kc[u].x + qsh[e + 5] * kc[u].y + qsh[e + 6] * kc[u].z + qsh[e + 7] * kc[u].w;
                    }
                }
            } else
                for (uint w = 0; w < hw; w++) {
                    vec2 kk = kpair(kb, w);
                    dot += qsh[2 * w] * kk.x + qsh[2 * w + 1] * kk.y;
                }
            sc = dot * pc.scale;
        }
        float cm = wg_max(sc);
        if (cm == NEG_INF) continue; /* nothing visible in this chunk (uniform) */
        float mn = max(m, cm);
        float corr = exp(m - mn);
        float e = vis ? exp(sc - mn) : 0.0;
        p[l] = e;
        float cs = wg_sum(e); /* its barriers also publish p */
        lsum = lsum * corr + cs;
        acc *= corr;
        acc4a *= corr;
        acc4b *= corr;
        m = mn;
        if (v4act) {
            /* invocation (gi4, wi4) sums dims 8 wi4.. of the slots gi4, gi4 + G4, ..., VB
             * rows' reads in flight together */
            for (uint j0 = gi4; j0 < jn; j0 += G4 * VB) {
                vec4 va[VB], vb[VB];
                float pj[VB];
                [[unroll]] for (uint u = 0; u < VB; u++) {
                    uint j = j0 + u * G4;
                    pj[u] = j < jn ? p[j] : 0.0;
                    va[u] = vb[u] = vec4(0.0);
                    if (pj[u] != 0.0) vpiece((base + j) * kstride + kvh * hd, wi4, va[u], vb[u]);
                }
                [[unroll]] for (uint u = 0; u < VB; u++) {
                    acc4a += pj[u] * va[u];
                    acc4b += pj[u] * vb[u];
                }
            }
        } else if (vact)
            for (uint j = gi; j < jn; j += G) {
                float pj = p[j];
                if (pj != 0.0) {
                    vec2 vv = vpair((base + j) * kstride + kvh * hd, wi);
                    acc += pj * vv;
                }
            }
        barrier();
    }
    /* the groups' partial sums meet in shared memory; invocation l < hw owns dims 2l, 2l+1 */
    if (v4act) {
        uint cb = gi4 * hd + 8 * wi4;
        [[unroll]] for (uint e = 0; e < 4; e++) { comb[cb + e] = acc4a[e]; comb[cb + 4 + e] = acc4b[e]; }
    } else if (vact) {
        comb[gi * hd + 2 * wi] = acc.x;
        comb[gi * hd + 2 * wi + 1] = acc.y;
    }
    barrier();
    uint ng = v4 ? G4 : G;
    wi = l;
    bool owner = l < hw; /* one invocation a word of the head */
    acc = vec2(0.0);
    if (owner)
        for (uint g = 0; g < ng; g++) acc += vec2(comb[g * hd + 2 * l], comb[g * hd + 2 * l + 1]);
    uint ob = OFF(5) / 4 + (r * pc.n_head + h) * hd + 2 * wi;
    if (pc.nsplit == 1) {
        if (!owner) return;
        vec2 outv = lsum > 0.0 ? acc / lsum : vec2(0.0);
        D[ob] = floatBitsToUint(outv.x);
        D[ob + 1] = floatBitsToUint(outv.y);
        return;
    }
    uint b0 = OFF(6) / 4 + (r * pc.n_head + h) * pc.nsplit * (hd + 2);
    uint pb = b0 + sp * (hd + 2);
    if (owner) {
        if (wi == 0) { PT[pb] = floatBitsToUint(m); PT[pb + 1] = floatBitsToUint(lsum); }
        PT[pb + 2 + 2 * wi] = floatBitsToUint(acc.x);
        PT[pb + 3 + 2 * wi] = floatBitsToUint(acc.y);
    }
    memoryBarrierBuffer();
    barrier();
    uint ci = OFF(7) / 4 + r * pc.n_head + h;
    if (l == 0) last = atomicAdd(CNT[ci], 1u) == pc.nsplit - 1 ? 1u : 0u;
    barrier();
    if (last == 0) return;
    memoryBarrierBuffer();
    float M = NEG_INF;
    for (uint s = 0; s < pc.nsplit; s++) M = max(M, uintBitsToFloat(PT[b0 + s * (hd + 2)]));
    float L = 0.0;
    if (M != NEG_INF)
        for (uint s = 0; s < pc.nsplit; s++)
            L += uintBitsToFloat(PT[b0 + s * (hd + 2) + 1]) * exp(uintBitsToFloat(PT[b0 + s * (hd + 2)]) - M);
    if (owner) {
        vec2 a = vec2(0.0);
        if (L > 0.0)
            for (uint s = 0; s < pc.nsplit; s++) {
                uint b = b0 + s * (hd + 2);
                float f = exp(uintBitsToFloat(PT[b]) - M);
                a += f * vec2(uintBitsToFloat(PT[b + 2 + 2 * wi]), uintBitsToFloat(PT[b + 3 + 2 * wi]));
            }
        vec2 outv = L > 0.0 ? a / L : vec2(0.0);
        D[ob] = floatBitsToUint(outv.x);
        D[ob + 1] = floatBitsToUint(outv.y);
    }
    if (l == 0) CNT[ci] = 0; /* ready for the next dispatch */
}

void main() {
    body();
    chain_signal(pc.chain, OFF(15) / 4);
}
