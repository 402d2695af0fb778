/* mm_f.comp: MATMUL_F, the float-weight product of the LM head: dst[t][r] = W[r] . a[t].
 * W is f32, f16, bf16 (read as 32-bit words, two halves each) or q8r (int8 rows of kq bytes,
 * zero past k, then one f32 scale per row: dst = scale[r] * (W[r] . a[t]), the activations
 * staying float as on the CPU).
 * Same team layout as mm_t2.comp: one team a weight row, TMAX tokens at a time. One token with
 * subgroups, 16-byte aligned rows and operands (row_vec): 16-byte weight pieces, HU of them a
 * lane in flight, so that a one-token head streams its weights near the memory's speed.
 * RTR_AMAX (one token, subgroups, 64-bit atomics): the ARGMAX that follows the head as well, so
 * that greedy decoding needs no dispatch of its own for it. Every row's value becomes a 64-bit
 * key that orders as the sequential rule of backend.h does (the value's order above, the lower
 * index above on ties; a NaN counts as -inf, a NaN first value as +inf, -0 as +0); each
 * workgroup puts its best into binding 4's word 0 by atomicMax and counts itself in word 1, and
 * the last to count writes the chosen index to binding 5 and puts both words back to 0. */
#version 450
#extension GL_EXT_control_flow_attributes : enable
#ifdef RTR_AMAX
#ifndef RTR_SG
#error "RTR_AMAX needs RTR_SG"
#endif
#extension GL_ARB_gpu_shader_int64 : require
#extension GL_EXT_shader_atomic_int64 : require
#endif
#define WG 128
layout(local_size_x = WG) in;
#include "vk_common.glsl"

layout(constant_id = 0) const uint TMAX = 1;

layout(std430, binding = 0) readonly buffer BX { uint X[]; };   /* f32 [rows][k] */
layout(std430, binding = 1) readonly buffer BS { uint XS[]; };  /* unused (bound to X) */
layout(std430, binding = 2) readonly buffer BW { uint W[]; };
layout(std430, binding = 3) writeonly buffer BD { uint D[]; };
layout(std430, binding = 0) readonly buffer BX4 { vec4 X4[]; };  /* the same, 16 bytes a read */
layout(std430, binding = 2) readonly buffer BW4 { uvec4 W4[]; };
#ifdef RTR_AMAX
layout(std430, binding = 4) coherent buffer BAK { uint64_t AK[]; }; /* the best key, the count */
layout(std430, binding = 5) writeonly buffer BID { uint ID[]; };    /* the chosen index */
#endif

layout(push_constant) uniform PC {
    uint o[RTR_NOFF]; /* the operands' offsets, packed (vk_bind.glsl) */
    uint type;  /* 0 f32, 1 f16, 2 bf16, 4 q8r (RTR_T_*) */
    uint n, k, rows, nt;
    uint kq;    /* q8r: bytes per row */
    uint groups; /* RTR_AMAX: the workgroups of the dispatch */
} pc;

#ifndef RTR_SG
#define TPR 16u
shared float red_x[TMAX * WG];
#endif

/* two elements of a 16-bit float word: f16 or bf16 */
vec2 pair(uint w) {
    return pc.type == 1 ? unpackHalf2x16(w) : vec2(uintBitsToFloat(w << 16), uintBitsToFloat(w & 0xffff0000u));
}

/* the four signed bytes of a q8r word, the first in the low byte */
vec4 bytes4(uint w) {
    return vec4(float(int(w << 24) >> 24), float(int(w << 16) >> 24), float(int(w << 8) >> 24), float(int(w) >> 24));
}

#ifdef RTR_SG
#define HU 4u /* 16-byte weight pieces a lane has in flight (row_vec) */

/* Whether row_vec serves: one token, f16/bf16 rows of a multiple of 8 elements or q8r rows of a
 * multiple of 16 bytes (k a multiple of 4), weights and activations 16-byte aligned. */
bool vec_ok() {
    bool f16 = (pc.type == 1 || pc.type == 2) && pc.k % 8 == 0, q8 = pc.type == 4 && pc.kq % 16 == 0 && pc.k % 4 == 0;
    return TMAX == 1 && (f16 || q8) && OFF(0) % 16 == 0 && OFF(2) % 16 == 0;
}

/* W[row] . a for one token, lane's share: 16-byte pieces lane, lane + tpr, ... (8 halves or 16
 * bytes each), HU loads issued before the first is used. */
float row_vec(uint row, uint lane, uint tpr) {
    bool q8 = pc.type == 4;
    uint np = q8 ? pc.kq / 16 : pc.k / 8, wb = OFF(2) / 16 + row * np, xb = OFF(0) / 16;
    uint nx = (pc.k + 3) / 4; /* vec4s of the activation row */
    float acc = 0.0;
    for (uint i0 = 0; i0 < np; i0 += HU * tpr) {
        uvec4 w[HU];
        [[unroll]] for (uint u = 0; u < HU; u++) {
            uint i = i0 + u * tpr + lane;
            w[u] = i < np ? W4[wb + i] : uvec4(0u);
        }
        [[unroll]] for (uint u = 0; u < HU; u++) {
            uint i = i0 + u * tpr + lane;
            if (i >= np) continue;
            if (q8) {
                /* bytes past k are zero; the activations past k read as zero too */
                [[unroll]] for (uint c = 0; c < 4; c++) {
                    uint xi = 4 * i + c, wv = w[u][c];
                    vec4 x = xi < nx ? X4[xb + xi] : vec4(0.0);
                    acc += dot(bytes4(wv), x);
                }
            } else {
                acc += dot(vec4(pair(w[u].x), pair(w[u].y)), X4[xb + 2 * i]) +
                       dot(vec4(pair(w[u].z), pair(w[u].w)), X4[xb + 2 * i + 1]);
            }
        }
    }
    return acc;
}
#endif

#ifdef RTR_AMAX
/* the key of value v at index i: larger for the one the sequential rule keeps */
uint64_t amax_key(float v, uint i) {
    uint u = isnan(v) ? (i == 0u ? 0x7f800000u : 0xff800000u) : floatBitsToUint(v);
    if ((u & 0x7fffffffu) == 0u) u = 0u;
    uint o = (u & 0x80000000u) != 0u ? ~u : u | 0x80000000u;
    return uint64_t(o) << 32 | uint64_t(~i);
}

shared uint64_t sk[WG];

/* the workgroup's best key (best: its subgroup's) into AK[0], and the last workgroup's answer */
void amax_join(uint64_t best) {
    if (subgroupElect()) sk[gl_SubgroupID] = best;
    barrier();
    if (gl_LocalInvocationIndex != 0u) return;
    for (uint i = 1u; i < gl_NumSubgroups; i++) best = max(best, sk[i]);
    uint kb = OFF(4) / 8u;
    if (best > AK[kb]) atomicMax(AK[kb], best); /* a stale read costs only an atomic */
    memoryBarrierBuffer();
    if (atomicAdd(AK[kb + 1u], uint64_t(1)) != uint64_t(pc.groups - 1u)) return;
    memoryBarrierBuffer();
    uint64_t k = atomicExchange(AK[kb], uint64_t(0));
    atomicExchange(AK[kb + 1u], uint64_t(0));
    ID[OFF(5) / 4u] = ~uint(k & 0xffffffffUL);
}
#endif

void main() {
    uint grp = flat_group();
    uint t0 = gl_WorkGroupID.z * TMAX;
    uint ntok = min(TMAX, pc.rows - t0);
    uint k = pc.k;
#ifdef RTR_AMAX
    uint64_t best = uint64_t(0);
#endif
#ifdef RTR_SG
    uint lane = gl_SubgroupInvocationID, tpr = gl_SubgroupSize;
    for (uint row = grp * pc.nt + gl_SubgroupID; row < min((grp + 1) * pc.nt, pc.n); row += gl_NumSubgroups) {
#else
    uint lane = gl_LocalInvocationIndex % TPR, tpr = TPR;
    uint row = grp * pc.nt + gl_LocalInvocationIndex / TPR;
    bool live = row < pc.n;
    {
#endif
        float acc[TMAX];
        for (uint t = 0; t < TMAX; t++) acc[t] = 0.0;
#ifndef RTR_SG
        if (live) {
#else
        if (vec_ok()) acc[0] = row_vec(row, lane, tpr);
        else
#endif
        if (pc.type == 4) {
            /* word i holds weights 4i..4i+3, each a signed byte */
            uint kw = pc.kq / 4, wb = OFF(2) / 4 + row * kw, xb = OFF(0) / 4 + t0 * k;
            for (uint i = lane; i < (k + 3) / 4; i += tpr) {
                uint wv = W[wb + i];
                vec4 wf = bytes4(wv);
                for (uint t = 0; t < TMAX; t++) {
                    if (t >= ntok) break;
                    uint xi = xb + t * k + 4 * i;
                    if (4 * i + 3 < k)
                        acc[t] += dot(wf, vec4(uintBitsToFloat(X[xi]), uintBitsToFloat(X[xi + 1]),
                                               uintBitsToFloat(X[xi + 2]), uintBitsToFloat(X[xi + 3])));
                    else
                        for (uint e = 0; e < 4 && 4 * i + e < k; e++) acc[t] += wf[e] * uintBitsToFloat(X[xi + e]);
                }
            }
        } else if (pc.type == 0) {
            uint wb = OFF(2) / 4 + row * k, xb = OFF(0) / 4 + t0 * k;
            for (uint i = lane; i < k; i += tpr) {
                float wv = uintBitsToFloat(W[wb + i]);
                for (uint t = 0; t < TMAX; t++) {
                    if (t >= ntok) break;
                    acc[t] += wv * uintBitsToFloat(X[xb + t * k + i]);
                }
            }
        } else if (k % 2 == 0) {
            /* halves, rows starting on a word: word i holds elements 2i, 2i+1 */
            uint wb = OFF(2) / 4 + row * (k / 2), xb = OFF(0) / 4 + t0 * k;
            for (uint i = lane; i < k / 2; i += tpr) {
                uint wv = W[wb + i];
                vec2 wf = pair(wv);
                for (uint t = 0; t < TMAX; t++) {
                    if (t >= ntok) break;
                    uint xi = xb + t * k + 2 * i;
                    acc[t] += wf.x * uintBitsToFloat(X[xi]) + wf.y * uintBitsToFloat(X[xi + 1]);
                }
            }
        } else {
            /* halves: element e of the row is half h0 + e of the buffer */
            uint h0 = OFF(2) / 2 + row * k, xb = OFF(0) / 4 + t0 * k;
            uint w0 = h0 / 2, w1 = (h0 + k + 1) / 2;
            for (uint i = w0 + lane; i < w1; i += tpr) {
                uint wv = W[i];
                int j = int(i * 2) - int(h0); /* element of the low half */
                for (uint e = 0; e < 2; e++, j++) {
                    if (j < 0 || j >= int(k)) continue;
                    float wf = pair(wv)[e];
                    for (uint t = 0; t < TMAX; t++) {
                        if (t >= ntok) break;
                        acc[t] += wf * uintBitsToFloat(X[xb + t * k + uint(j)]);
                    }
                }
            }
        }
#ifndef RTR_SG
        }
#endif
        float res[TMAX];
#ifdef RTR_SG
        for (uint t = 0; t < TMAX; t++) res[t] = subgroupAdd(acc[t]);
        bool leader = subgroupElect();
#else
        uint l = gl_LocalInvocationIndex;
        for (uint t = 0; t < TMAX; t++) red_x[t * WG + l] = acc[t];
        barrier();
        for (uint s = TPR / 2; s > 0; s >>= 1) {
            if (lane < s)
                for (uint t = 0; t < TMAX; t++) red_x[t * WG + l] += red_x[t * WG + l + s];
            barrier();
        }
        for (uint t = 0; t < TMAX; t++) res[t] = red_x[t * WG + l];
        bool leader = lane == 0 && live;
#endif
        float sc = 1.0;
#ifdef RTR_AMAX
        if (pc.type == 4) /* in every lane: each keeps the key */
#else
        if (pc.type == 4 && leader)
#endif
            sc = uintBitsToFloat(W[(OFF(2) + pc.n * pc.kq) / 4 + row]);
        if (leader) {
            for (uint t = 0; t < TMAX; t++) {
                if (t >= ntok) break;
                D[OFF(3) / 4 + (t0 + t) * pc.n + row] = floatBitsToUint(sc * res[t]);
            }
        }
#ifdef RTR_AMAX
        best = max(best, amax_key(sc * res[0], row)); /* the value written; the same in every lane */
#endif
    }
#ifdef RTR_AMAX
    amax_join(best);
#endif
}
