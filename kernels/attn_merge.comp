/* attn_merge.comp: combines the splits of attn.comp: with M the largest running max,
 * out = sum_s acc_s e^(m_s - M) / sum_s l_s e^(m_s - M); zero when no slot was visible.
 * One workgroup per (head, row). */
#version 450
#define WG 128
layout(local_size_x = WG) in;
#include "vk_common.glsl"

layout(std430, binding = 5) writeonly buffer BD { uint D[]; };
layout(std430, binding = 6) readonly buffer BPT { uint PT[]; };

layout(push_constant) uniform PC {
    uint o[10];
    uint n_head, n_kv, hd, cap;
    int n_sink, window;
    float scale;
    uint nsplit, cps, f32;
} pc;

void main() {
    uint h = gl_WorkGroupID.x, r = gl_WorkGroupID.y, l = gl_LocalInvocationIndex, hd = pc.hd;
    uint b0 = pc.o[6] / 4 + (r * pc.n_head + h) * pc.nsplit * (hd + 2);
    float M = uintBitsToFloat(0xff800000u);
    for (uint s = 0; s < pc.nsplit; s++) M = max(M, uintBitsToFloat(PT[b0 + s * (hd + 2)]));
    float L = 0.0;
    if (M != uintBitsToFloat(0xff800000u))
        for (uint s = 0; s < pc.nsplit; s++) {
            uint b = b0 + s * (hd + 2);
            L += uintBitsToFloat(PT[b + 1]) * exp(uintBitsToFloat(PT[b]) - M);
        }
    uint ob = pc.o[5] / 4 + (r * pc.n_head + h) * hd;
    for (uint d = l; d < hd; d += WG) {
        float a = 0.0;
        if (L > 0.0)
            for (uint s = 0; s < pc.nsplit; s++) {
                uint b = b0 + s * (hd + 2);
                a += uintBitsToFloat(PT[b + 2 + d]) * exp(uintBitsToFloat(PT[b]) - M);
            }
        D[ob + d] = floatBitsToUint(L > 0.0 ? a / L : 0.0);
    }
}
