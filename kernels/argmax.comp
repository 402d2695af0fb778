/* argmax.comp: RTR_OP_ARGMAX, greedy decoding's choice without reading the logits back. One
 * workgroup a row: each invocation scans every WG-th value of the row, UNROLL reads in flight,
 * keeping the first largest it sees; a tree in shared memory then keeps the larger of two, the
 * lower index of equals. A NaN counts as -inf, except a NaN first value, which counts as +inf:
 * the sequential rule of backend.h. Bindings: 0 the rows (f32), 1 the indices (int32). */
#version 450
#define WG 256
#define UNROLL 32
layout(local_size_x = WG) in;
#include "vk_common.glsl"

layout(std430, binding = 0) readonly buffer BA { uint A[]; };
layout(std430, binding = 1) buffer BD { uint D[]; };

layout(push_constant) uniform PC {
    uint o[RTR_NBIND];
    uint n, rows;
} pc;

shared float bv[WG];
shared int bi[WG];

void main() {
    uint r = flat_group(), l = gl_LocalInvocationIndex, n = pc.n, a0 = pc.o[0] / 4 + r * n;
    if (r >= pc.rows) return; /* the grid's spare workgroups */
    float best = 0.0;
    int bidx = -1; /* none yet */
    for (uint base = 0; base < n; base += WG * UNROLL) {
        float v[UNROLL];
        for (uint u = 0; u < UNROLL; u++) {
            uint i = base + u * WG + l;
            v[u] = i < n ? uintBitsToFloat(A[a0 + i]) : 0.0;
        }
        for (uint u = 0; u < UNROLL; u++) {
            uint i = base + u * WG + l;
            float y = isnan(v[u]) ? uintBitsToFloat(i == 0 ? 0x7f800000u : 0xff800000u) : v[u];
            if (i < n && (bidx < 0 || y > best)) {
                best = y;
                bidx = int(i);
            }
        }
    }
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
    if (l == 0) D[pc.o[1] / 4 + r] = uint(bi[0]);
}
