/* glu.comp: gated activation dst = act(a) * b over rows * n floats (relu2, silu, gelu_tanh),
 * and ADD (act 3): dst += a. One invocation an element. */
#version 450
#define WG 256
layout(local_size_x = WG) in;
#include "vk_common.glsl"

layout(std430, binding = 0) readonly buffer BA { uint A[]; };
layout(std430, binding = 1) readonly buffer BB { uint B[]; };
layout(std430, binding = 2) buffer BD { uint D[]; };

layout(push_constant) uniform PC {
    uint o[RTR_NOFF]; /* the operands' offsets, packed (vk_bind.glsl) */
    uint total, act;
} pc;

void main() {
    uint i = flat_group() * WG + gl_LocalInvocationIndex;
    if (i >= pc.total) return;
    float g = uintBitsToFloat(A[OFF(0) / 4 + i]);
    uint di = OFF(2) / 4 + i;
    if (pc.act == 3) {
        precise float s = uintBitsToFloat(D[di]) + g;
        D[di] = floatBitsToUint(s);
        return;
    }
    float u = uintBitsToFloat(B[OFF(1) / 4 + i]);
    float y = glu_act(g, u, pc.act);
    D[di] = floatBitsToUint(y);
}
