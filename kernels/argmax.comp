/* argmax.comp: RTR_OP_ARGMAX, greedy decoding's choice without reading the logits back. With
 * groups = 1, one workgroup a row; otherwise each row is scanned by `groups` workgroups (grid x),
 * each a stretch of `chunk` values, and the last of a row to finish joins their (value, index)
 * pairs (binding 2) after counting itself in the row's counter (binding 3), which it puts back
 * to 0. Each invocation scans every WG-th value of its stretch, UNROLL reads in flight, keeping
 * the first largest it sees; a tree in shared memory then keeps the larger of two, the lower
 * index of equals. A NaN counts as -inf, except a NaN first value, which counts as +inf: the
 * sequential rule of backend.h. Bindings: 0 the rows (f32), 1 the indices (int32). Every
 * barrier is reached by the whole workgroup. */
#version 450
#define WG 256
#define UNROLL 32
layout(local_size_x = WG) in;
#include "vk_common.glsl"

layout(std430, binding = 0) readonly buffer BA { uint A[]; };
layout(std430, binding = 1) buffer BD { uint D[]; };
layout(std430, binding = 2) coherent buffer BPT { uint PT[]; };
layout(std430, binding = 3) coherent buffer BCN { uint CNT[]; };

layout(push_constant) uniform PC {
    uint o[RTR_NOFF]; /* the operands' offsets, packed (vk_bind.glsl) */
    uint n, rows, groups, chunk;
} pc;

shared float bv[WG];
shared int bi[WG];
shared uint last;

/* values lo .. hi of the row from a0: this invocation's first largest */
void scan(uint a0, uint lo, uint hi, uint l, inout float best, inout int bidx) {
    for (uint base = lo; base < hi; base += WG * UNROLL) {
        float v[UNROLL];
        for (uint u = 0; u < UNROLL; u++) {
            uint i = base + u * WG + l;
            v[u] = i < hi ? uintBitsToFloat(A[a0 + i]) : 0.0;
        }
        for (uint u = 0; u < UNROLL; u++) {
            uint i = base + u * WG + l;
            float y = isnan(v[u]) ? uintBitsToFloat(i == 0 ? 0x7f800000u : 0xff800000u) : v[u];
            if (i < hi && (bidx < 0 || y > best)) {
                best = y;
                bidx = int(i);
            }
        }
    }
}

/* the workgroup's first largest of its (best, bidx) pairs into bv[0], bi[0] */
void tree(uint l, float best, int bidx) {
    bv[l] = best;
    bi[l] = bidx;
    barrier();
    for (uint s = WG / 2; s > 0; s >>= 1) {
        if (l < s) {
            float ov = bv[l + s];
            int oi = bi[l + s];
            if (oi >= 0 && (bi[l] < 0 || ov > bv[l] || (ov == bv[l] && oi < bi[l]))) {
                bv[l] = ov;
                bi[l] = oi;
            }
        }
        barrier();
    }
}

void main() {
    uint l = gl_LocalInvocationIndex, n = pc.n;
    float best = 0.0;
    int bidx = -1; /* none yet */
    if (pc.groups <= 1) {
        uint r = flat_group();
        if (r >= pc.rows) return; /* the grid's spare workgroups */
        scan(OFF(0) / 4 + r * n, 0, n, l, best, bidx);
        tree(l, best, bidx);
        if (l == 0) D[OFF(1) / 4 + r] = uint(bi[0]);
        return;
    }
    uint g = gl_WorkGroupID.x, r = gl_WorkGroupID.y, lo = g * pc.chunk, hi = min(n, lo + pc.chunk);
    scan(OFF(0) / 4 + r * n, lo, hi, l, best, bidx);
    tree(l, best, bidx);
    uint pb = OFF(2) / 4 + r * pc.groups * 2;
    if (l == 0) {
        PT[pb + 2 * g] = floatBitsToUint(bv[0]);
        PT[pb + 2 * g + 1] = uint(bi[0]);
    }
    memoryBarrierBuffer();
    barrier();
    uint ci = OFF(3) / 4 + r;
    if (l == 0) last = atomicAdd(CNT[ci], 1u) == pc.groups - 1 ? 1u : 0u;
    barrier();
    uint mine = last;
    memoryBarrierBuffer();
    best = 0.0;
    bidx = -1;
    if (mine != 0)
        for (uint j = l; j < pc.groups; j += WG) {
            float v = uintBitsToFloat(PT[pb + 2 * j]);
            int i = int(PT[pb + 2 * j + 1]);
            if (i >= 0 && (bidx < 0 || v > best || (v == best && i < bidx))) {
                best = v;
                bidx = i;
            }
        }
    tree(l, best, bidx);
    if (mine != 0 && l == 0) {
        D[OFF(1) / 4 + r] = uint(bi[0]);
        CNT[ci] = 0;
    }
}
