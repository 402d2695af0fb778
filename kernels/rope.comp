/* rope.comp: in-place half-split (NeoX) RoPE over a [rows][n_head][head_dim]; one invocation a
 * (row, head, pair). The inverse frequencies come from a table the backend computes on the host
 * exactly as the CPU backend does, so the f32 angles agree (rope_cs in vk_common.glsl). */
#version 450
#define WG 256
layout(local_size_x = WG) in;
#include "vk_common.glsl"

layout(std430, binding = 0) buffer BA { uint A[]; };
layout(std430, binding = 1) readonly buffer BP { int P[]; };
layout(std430, binding = 2) readonly buffer BT { uint T[]; }; /* inv freq [half] */

layout(push_constant) uniform PC {
    uint o[RTR_NOFF]; /* the operands' offsets, packed (vk_bind.glsl) */
    uint rows, n_head, head_dim, half_;
} pc;

void main() {
    uint idx = flat_group() * WG + gl_LocalInvocationIndex;
    uint per_row = pc.n_head * pc.half_;
    if (idx >= pc.rows * per_row) return;
    uint r = idx / per_row, rem = idx % per_row, h = rem / pc.half_, i = rem % pc.half_;
    vec2 cs = rope_cs(P[OFF(1) / 4 + r], uintBitsToFloat(T[OFF(2) / 4 + i]));
    float c = cs.x, s = cs.y;
    uint b = OFF(0) / 4 + (r * pc.n_head + h) * pc.head_dim + i;
    float x0 = uintBitsToFloat(A[b]), x1 = uintBitsToFloat(A[b + pc.half_]);
    precise float y0 = x0 * c - x1 * s;
    precise float y1 = x1 * c + x0 * s;
    A[b] = floatBitsToUint(y0);
    A[b + pc.half_] = floatBitsToUint(y1);
}
