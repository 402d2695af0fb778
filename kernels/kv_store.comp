/* kv_store.comp: K/V rows into the ring: kcache[slot[r]] = a[r], vcache[slot[r]] = b[r], as
 * f16 (one 32-bit word a pair) or f32. One invocation a pair of elements; n is even; slots
 * outside the bound cache (max_slots) are skipped rather than written out of bounds. */
#version 450
#define WG 256
layout(local_size_x = WG) in;
#include "vk_common.glsl"

layout(std430, binding = 0) readonly buffer BK { uint KS[]; };
layout(std430, binding = 1) readonly buffer BV { uint VS[]; };
layout(std430, binding = 2) readonly buffer BI { int SL[]; };
layout(std430, binding = 3) writeonly buffer BKC { uint KC[]; };
layout(std430, binding = 4) writeonly buffer BVC { uint VC[]; };

layout(push_constant) uniform PC {
    uint o[10];
    uint rows, n, max_slots, f32;
} pc;

void main() {
    uint idx = flat_group() * WG + gl_LocalInvocationIndex;
    uint hw = pc.n / 2;
    if (idx >= pc.rows * hw) return;
    uint r = idx / hw, p = idx % hw;
    int slot = SL[pc.o[2] / 4 + r];
    if (slot < 0 || uint(slot) >= pc.max_slots) return;
    uint s0 = pc.o[0] / 4 + r * pc.n + 2 * p, s1 = pc.o[1] / 4 + r * pc.n + 2 * p;
    if (pc.f32 != 0) {
        uint d = pc.o[3] / 4 + uint(slot) * pc.n + 2 * p, e = pc.o[4] / 4 + uint(slot) * pc.n + 2 * p;
        KC[d] = KS[s0]; KC[d + 1] = KS[s0 + 1];
        VC[e] = VS[s1]; VC[e + 1] = VS[s1 + 1];
        return;
    }
    uint d = uint(slot) * hw + p;
    KC[pc.o[3] / 4 + d] = packHalf2x16(vec2(uintBitsToFloat(KS[s0]), uintBitsToFloat(KS[s0 + 1])));
    VC[pc.o[4] / 4 + d] = packHalf2x16(vec2(uintBitsToFloat(VS[s1]), uintBitsToFloat(VS[s1 + 1])));
}
