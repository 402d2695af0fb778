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
    uint o[10];
    uint total, act;
} pc;

void main() {
    uint i = flat_group() * WG + gl_LocalInvocationIndex;
    if (i >= pc.total) return;
    float g = uintBitsToFloat(A[pc.o[0] / 4 + i]);
    uint di = pc.o[2] / 4 + i;
    if (pc.act == 3) {
        precise float s = uintBitsToFloat(D[di]) + g;
        D[di] = floatBitsToUint(s);
        return;
    }
    float u = uintBitsToFloat(B[pc.o[1] / 4 + i]);
    precise float y;
    if (pc.act == 0) {
        float r = g > 0.0 ? g : 0.0;
        y = r * r * u;
    } else if (pc.act == 1) {
        /* exp(-g) beyond 2^126 leaves the divide's accuracy range: the result is 0 there */
        y = g < -87.0 ? 0.0 : g / (1.0 + exp(-g)) * u;
    } else {
        float t = 0.7978845608 * (g + 0.044715 * g * g * g);
        y = 0.5 * g * (1.0 + tanh(clamp(t, -15.0, 15.0))) * u;
    }
    D[di] = floatBitsToUint(y);
}
