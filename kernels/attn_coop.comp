/* attn_coop.comp: ATTN for batches of query rows (prefill) on matrix hardware, through NV
 * cooperative matrices (16 x 16 x 16, f16 x f16 -> f32, subgroups of 32): the same operands,
 * push constants and visibility rule as attn_batch.comp, for head_dim a multiple of 16 up to 128.
 *
 * Precision: each f32 operand x is split into f16 parts hi (x cut to 10 mantissa bits) and
 * lo = f16((x - hi) 2^11) (scaled, to stay clear of f16 subnormals, which hardware may flush),
 * and a product is hi.hi + (lo.hi + hi.lo) 2^-11 (lo.lo, about 2^-22 of it, is left out), all
 * summed in f32:
 * close to f32 math, which the f32 cache promises (BitNet's int8 activations turn small errors
 * into flipped codes). With an f16 cache the keys and values are exact in f16 and have no lo.
 *
 * A workgroup is two subgroups and takes 32 query rows of one head, 16 a subgroup. Queries,
 * scaled and split, are fragments held in registers. The ring is walked 32 slots at a time; a
 * chunk no row can see is skipped after one look at its slot positions. Otherwise its keys and
 * values are split into shared memory, and each subgroup
 * - multiplies its queries by the keys (f32 scores, through a shared tile to the lanes),
 * - runs the online softmax in f32: lane 2r + i owns row r's slots 16i .. 16i + 15; the pair
 *   shares maxima and sums by shuffles; invisible pairs weigh 0; the weights go back to shared
 *   memory split in two,
 * - multiplies the weights by the values, 16 dims at a time, and each lane rescales and adds
 *   its 8 of them (row r, dims 8i .. 8i + 7 of each block) to its f32 output in registers. */
#version 450
#extension GL_EXT_control_flow_attributes : enable
#extension GL_NV_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_vote : require
#extension GL_KHR_shader_subgroup_shuffle : require
#extension GL_EXT_shader_explicit_arithmetic_types : require
#define WG 64
#define CH 32    /* slots a chunk */
#define HDMAX 128
#define LO_UP 2048.0 /* lo parts are kept scaled up by 2^11 */
#define KS 17u   /* uvec4 a shared key/value row: 128 f16 + 16 bytes of padding */
layout(local_size_x = WG) in;

#include "attn_rows.glsl"

shared uvec4 ks[CH * KS], kl[CH * KS]; /* keys of the chunk, hi and lo (the queries' at the start) */
shared uvec4 vs[CH * KS], vl[CH * KS]; /* values of the chunk, hi and lo */
shared uvec4 st[2 * 16 * 8];           /* per subgroup: 16 x 32 f32 scores, then 16 x 16 f32 outputs */
shared uvec4 pt[2 * 16 * 4], pl[2 * 16 * 4]; /* per subgroup: 16 x 32 weights, hi and lo */
shared int sps[CH];
shared uint anyv[2];

#define FQ fcoopmatNV<16, gl_ScopeSubgroup, 16, 16>
#define FS fcoopmatNV<32, gl_ScopeSubgroup, 16, 16>

bool visible(int spos, int qp) {
    return spos >= 0 && qp >= 0 && spos <= qp && (spos < pc.n_sink || qp - spos < pc.window);
}

/* x with its f32 mantissa cut to f16's 10 bits: exact in f16 (in f16's normal range), and
 * x - hi16(x) is exact in f32. Done on the bits, so that no compiler folds a round trip
 * through f16 away. */
vec4 hi16(vec4 x) { return uintBitsToFloat(floatBitsToUint(x) & 0xffffe000u); }
vec2 hi16(vec2 x) { return uintBitsToFloat(floatBitsToUint(x) & 0xffffe000u); }

/* 8 floats split into f16 parts hi and lo (clamped to the f16 range: an infinity times a zero
 * weight would be NaN) */
void split8(vec4 a, vec4 b, out uvec4 hi, out uvec4 lo) {
    a = clamp(a, -65504.0, 65504.0);
    b = clamp(b, -65504.0, 65504.0);
    vec4 ha = hi16(a), hb = hi16(b);
    hi = uvec4(packHalf2x16(ha.xy), packHalf2x16(ha.zw), packHalf2x16(hb.xy), packHalf2x16(hb.zw));
    a = (a - ha) * LO_UP;
    b = (b - hb) * LO_UP;
    lo = uvec4(packHalf2x16(a.xy), packHalf2x16(a.zw), packHalf2x16(b.xy), packHalf2x16(b.zw));
}

void main() {
    uint h = gl_WorkGroupID.x, r0 = gl_WorkGroupID.y * 32u, l = gl_LocalInvocationIndex;
    uint sg = gl_SubgroupID, lane = gl_SubgroupInvocationID, hd = pc.hd, h8 = hd / 8u, nds = hd / 16u;
    uint kvh = h / (pc.n_head / pc.n_kv), kstride = pc.n_kv * hd;
    const float NEG_INF = uintBitsToFloat(0xff800000u);
    /* queries, scaled, as f16 rows in ks */
    for (uint i = l; i < 32u * h8; i += WG) {
        uint r = i / h8, w = i % h8;
        vec4 a = vec4(0.0), b = vec4(0.0);
        if (r0 + r < pc.rows) {
            uint qb = OFF(0) / 4 + ((r0 + r) * pc.n_head + h) * hd + 8u * w;
            a = vec4(uintBitsToFloat(Q[qb]), uintBitsToFloat(Q[qb + 1]), uintBitsToFloat(Q[qb + 2]), uintBitsToFloat(Q[qb + 3]));
            b = vec4(uintBitsToFloat(Q[qb + 4]), uintBitsToFloat(Q[qb + 5]), uintBitsToFloat(Q[qb + 6]), uintBitsToFloat(Q[qb + 7]));
        }
        uvec4 hi, lo;
        split8(a * pc.scale, b * pc.scale, hi, lo);
        ks[r * KS + w] = hi;
        kl[r * KS + w] = lo;
    }
    barrier();
    FQ qf[HDMAX / 16], qlf[HDMAX / 16];
    [[unroll]] for (uint d = 0; d < HDMAX / 16; d++)
        if (d < nds) {
            coopMatLoadNV(qf[d], ks, 16u * sg * KS + 2u * d, KS, false);
            coopMatLoadNV(qlf[d], kl, 16u * sg * KS + 2u * d, KS, false);
        }
    bool f32 = pc.f32 != 0;
    /* this lane's row and slot half in the softmax; rows of the other subgroup are its own */
    uint myrow = 16u * sg + (lane >> 1), half_ = lane & 1u;
    int qp = r0 + myrow < pc.rows ? QP[OFF(4) / 4 + r0 + myrow] : -1;
    /* for the chunk test: invocation l looks at slot l % 32 for the rows of subgroup sg */
    int qpv[16];
    [[unroll]] for (uint r = 0; r < 16; r++) {
        uint row = r0 + 16u * sg + r;
        qpv[r] = row < pc.rows ? QP[OFF(4) / 4 + row] : -1;
    }
    float m = NEG_INF, lsum = 0.0;
    float acc[HDMAX / 16][8];
    [[unroll]] for (uint d = 0; d < HDMAX / 16; d++)
        [[unroll]] for (uint e = 0; e < 8; e++) acc[d][e] = 0.0;
    barrier(); /* ks is rewritten by the first chunk */
    for (uint base = 0; base < pc.cap; base += CH) {
        uint sl = l % CH;
        int sp = base + sl < pc.cap ? SP[OFF(3) / 4 + base + sl] : -1;
        if (l < CH) sps[l] = sp;
        bool any_ = false;
        [[unroll]] for (uint r = 0; r < 16; r++) any_ = any_ || visible(sp, qpv[r]);
        any_ = subgroupAny(any_);
        if (subgroupElect()) anyv[sg] = any_ ? 1u : 0u;
        barrier();
        bool skip = anyv[0] == 0u && anyv[1] == 0u;
        if (skip) { barrier(); continue; } /* uniform: every invocation read the same flags */
        /* keys and values of the chunk, split (an f16 cache has no lo) */
        for (uint i = l; i < CH * h8; i += WG) {
            uint s = i / h8, w = i % h8;
            uvec4 kh = uvec4(0u), klo = uvec4(0u), vh = uvec4(0u), vlo = uvec4(0u);
            if (base + s < pc.cap && sps[s] >= 0) { /* empty slots may hold anything */
                uint el = (base + s) * kstride + kvh * hd;
                if (f32) {
                    vec4 a, b;
                    kpiece(el, w, a, b);
                    split8(a, b, kh, klo);
                    vpiece(el, w, a, b);
                    split8(a, b, vh, vlo);
                } else {
                    kh = K4[OFF(1) / 16 + el / 8 + w];
                    vh = V4[OFF(2) / 16 + el / 8 + w];
                }
            }
            ks[s * KS + w] = kh;
            vs[s * KS + w] = vh;
            if (f32) { kl[s * KS + w] = klo; vl[s * KS + w] = vlo; }
        }
        barrier();
        /* scores of this subgroup's 16 rows x 32 slots */
        [[unroll]] for (uint kb = 0; kb < 2; kb++) {
            FS s = FS(0.0), sl = FS(0.0);
            [[unroll]] for (uint d = 0; d < HDMAX / 16; d++) {
                if (d < nds) {
                    FQ kf;
                    coopMatLoadNV(kf, ks, 16u * kb * KS + 2u * d, KS, true);
                    s = coopMatMulAddNV(qf[d], kf, s);
                    sl = coopMatMulAddNV(qlf[d], kf, sl);
                    if (f32) {
                        coopMatLoadNV(kf, kl, 16u * kb * KS + 2u * d, KS, true);
                        sl = coopMatMulAddNV(qf[d], kf, sl);
                    }
                }
            }
            s = s + sl * (1.0 / LO_UP);
            coopMatStoreNV(s, st, sg * 128u + 4u * kb, 8u, false);
        }
        subgroupMemoryBarrierShared();
        subgroupBarrier();
        /* online softmax: this lane's row, slots 16 half_ .. + 15 */
        float sc[16];
        float cm = NEG_INF;
        [[unroll]] for (uint j = 0; j < 16; j++) {
            uint slot = 16u * half_ + j;
            uvec4 v4 = st[sg * 128u + (lane >> 1) * 8u + slot / 4u];
            float v = uintBitsToFloat(v4[slot % 4u]);
            bool vis = visible(sps[slot], qp);
            sc[j] = vis ? v : NEG_INF;
            cm = max(cm, sc[j]);
        }
        cm = max(cm, subgroupShuffleXor(cm, 1u));
        float mn = max(m, cm);
        float corr = mn == NEG_INF ? 1.0 : exp(m - mn);
        float ps = 0.0;
        uint pw[8], pwl[8];
        [[unroll]] for (uint j = 0; j < 16; j += 2) {
            vec2 e = vec2(sc[j] == NEG_INF ? 0.0 : exp(sc[j] - mn), sc[j + 1] == NEG_INF ? 0.0 : exp(sc[j + 1] - mn));
            ps += e.x + e.y;
            vec2 eh = hi16(e);
            pw[j / 2] = packHalf2x16(eh);
            pwl[j / 2] = packHalf2x16((e - eh) * LO_UP);
        }
        ps += subgroupShuffleXor(ps, 1u);
        lsum = lsum * corr + ps;
        m = mn;
        uint pb = sg * 64u + (lane >> 1) * 4u + 2u * half_;
        pt[pb] = uvec4(pw[0], pw[1], pw[2], pw[3]);
        pt[pb + 1u] = uvec4(pw[4], pw[5], pw[6], pw[7]);
        pl[pb] = uvec4(pwl[0], pwl[1], pwl[2], pwl[3]);
        pl[pb + 1u] = uvec4(pwl[4], pwl[5], pwl[6], pwl[7]);
        subgroupMemoryBarrierShared();
        subgroupBarrier();
        /* weights x values, 16 dims at a time, into this lane's outputs */
        FQ pf[2], plf[2];
        [[unroll]] for (uint kb = 0; kb < 2; kb++) {
            coopMatLoadNV(pf[kb], pt, sg * 64u + 2u * kb, 4u, false);
            coopMatLoadNV(plf[kb], pl, sg * 64u + 2u * kb, 4u, false);
        }
        [[unroll]] for (uint d = 0; d < HDMAX / 16; d++) {
            if (d < nds) {
                FS o = FS(0.0), ol = FS(0.0);
                [[unroll]] for (uint kb = 0; kb < 2; kb++) {
                    FQ vf;
                    coopMatLoadNV(vf, vs, 16u * kb * KS + 2u * d, KS, false);
                    o = coopMatMulAddNV(pf[kb], vf, o);
                    ol = coopMatMulAddNV(plf[kb], vf, ol);
                    if (f32) {
                        coopMatLoadNV(vf, vl, 16u * kb * KS + 2u * d, KS, false);
                        ol = coopMatMulAddNV(pf[kb], vf, ol);
                    }
                }
                o = o + ol * (1.0 / LO_UP);
                coopMatStoreNV(o, st, sg * 128u, 4u, false);
                subgroupMemoryBarrierShared();
                subgroupBarrier();
                uvec4 a = st[sg * 128u + (lane >> 1) * 4u + 2u * half_];
                uvec4 b = st[sg * 128u + (lane >> 1) * 4u + 2u * half_ + 1u];
                [[unroll]] for (uint e = 0; e < 4; e++) {
                    acc[d][e] = acc[d][e] * corr + uintBitsToFloat(a[e]);
                    acc[d][4 + e] = acc[d][4 + e] * corr + uintBitsToFloat(b[e]);
                }
                subgroupBarrier();
            }
        }
        barrier(); /* ks, vs and sps are rewritten by the next chunk */
    }
    if (r0 + myrow < pc.rows) {
        float inv = lsum > 0.0 ? 1.0 / lsum : 0.0;
        uint ob = OFF(5) / 4 + ((r0 + myrow) * pc.n_head + h) * hd + 8u * half_;
        [[unroll]] for (uint d = 0; d < HDMAX / 16; d++)
            if (d < nds)
                [[unroll]] for (uint e = 0; e < 8; e++) D[ob + 16u * d + e] = floatBitsToUint(acc[d][e] * inv);
    }
}
