/* kv_store.comp: K/V rows into the ring: kcache[slot[r]] = a[r], vcache[slot[r]] = b[r], as
 * f16 (one 32-bit word a pair) or f32. One invocation a pair of elements; n is even; slots
 * outside the bound cache (max_slots) are skipped rather than written out of bounds.
 * With rope set, the ROPE of the keys that comes just before is done here too (the backend
 * fuses the two ops): an invocation takes two adjacent rotation pairs (i, i + hd/2) and
 * (i+1, i+1 + hd/2) of one head, rotates them in place in a and stores them; the values get
 * invocations of their own after the keys'. */
#version 450
#define WG 256
layout(local_size_x = WG) in;
#include "vk_common.glsl"

layout(std430, binding = 0) buffer BK { uint KS[]; };
layout(std430, binding = 1) readonly buffer BV { uint VS[]; };
layout(std430, binding = 2) readonly buffer BI { int SL[]; };
layout(std430, binding = 3) writeonly buffer BKC { uint KC[]; };
layout(std430, binding = 4) writeonly buffer BVC { uint VC[]; };
layout(std430, binding = 5) readonly buffer BP { int POS[]; };
layout(std430, binding = 6) readonly buffer BT { uint TAB[]; };

layout(push_constant) uniform PC {
    uint o[10];
    uint rows, n, max_slots, f32, rope, hd;
} pc;

bool slot_of(uint r, out uint s) {
    int slot = SL[pc.o[2] / 4 + r];
    s = uint(slot);
    return slot >= 0 && uint(slot) < pc.max_slots;
}

/* elements e, e+1 (e even) of cache row slot */
void put(bool key, uint slot, uint e, float a, float b) {
    uint base = slot * pc.n + e;
    if (pc.f32 != 0) {
        if (key) { KC[pc.o[3] / 4 + base] = floatBitsToUint(a); KC[pc.o[3] / 4 + base + 1] = floatBitsToUint(b); }
        else { VC[pc.o[4] / 4 + base] = floatBitsToUint(a); VC[pc.o[4] / 4 + base + 1] = floatBitsToUint(b); }
    } else {
        if (key) KC[pc.o[3] / 4 + base / 2] = packHalf2x16(vec2(a, b));
        else VC[pc.o[4] / 4 + base / 2] = packHalf2x16(vec2(a, b));
    }
}

void main() {
    uint idx = flat_group() * WG + gl_LocalInvocationIndex;
    uint hw = pc.n / 2, slot;
    if (pc.rope != 0) {
        uint qw = pc.n / 4, nk = pc.rows * qw; /* key invocations: two pairs each */
        if (idx < nk) {
            uint r = idx / qw, q = idx % qw, hq = pc.hd / 4, h = q / hq, i = 2 * (q % hq), half_ = pc.hd / 2;
            uint b = pc.o[0] / 4 + r * pc.n + h * pc.hd + i;
            int pos = POS[pc.o[5] / 4 + r];
            vec2 cs0 = rope_cs(pos, uintBitsToFloat(TAB[pc.o[6] / 4 + i]));
            vec2 cs1 = rope_cs(pos, uintBitsToFloat(TAB[pc.o[6] / 4 + i + 1]));
            float xa0 = uintBitsToFloat(KS[b]), xa1 = uintBitsToFloat(KS[b + 1]);
            float xb0 = uintBitsToFloat(KS[b + half_]), xb1 = uintBitsToFloat(KS[b + half_ + 1]);
            precise float ya0 = xa0 * cs0.x - xb0 * cs0.y, yb0 = xb0 * cs0.x + xa0 * cs0.y;
            precise float ya1 = xa1 * cs1.x - xb1 * cs1.y, yb1 = xb1 * cs1.x + xa1 * cs1.y;
            KS[b] = floatBitsToUint(ya0); KS[b + 1] = floatBitsToUint(ya1);
            KS[b + half_] = floatBitsToUint(yb0); KS[b + half_ + 1] = floatBitsToUint(yb1);
            if (slot_of(r, slot)) {
                put(true, slot, h * pc.hd + i, ya0, ya1);
                put(true, slot, h * pc.hd + i + half_, yb0, yb1);
            }
            return;
        }
        idx -= nk;
        if (idx >= pc.rows * hw) return;
        uint r = idx / hw, p = idx % hw, s1 = pc.o[1] / 4 + r * pc.n + 2 * p;
        if (slot_of(r, slot)) put(false, slot, 2 * p, uintBitsToFloat(VS[s1]), uintBitsToFloat(VS[s1 + 1]));
        return;
    }
    if (idx >= pc.rows * hw) return;
    uint r = idx / hw, p = idx % hw;
    if (!slot_of(r, slot)) return;
    uint s0 = pc.o[0] / 4 + r * pc.n + 2 * p, s1 = pc.o[1] / 4 + r * pc.n + 2 * p;
    put(true, slot, 2 * p, uintBitsToFloat(KS[s0]), uintBitsToFloat(KS[s0 + 1]));
    put(false, slot, 2 * p, uintBitsToFloat(VS[s1]), uintBitsToFloat(VS[s1 + 1]));
}
