/* kv_store.comp: K/V rows into the ring: kcache[slot[r]] = a[r], vcache[slot[r]] = b[r], as
 * f16 (one 32-bit word a pair) or f32. One invocation a pair of elements; n is even; slots
 * outside the bound cache (max_slots) are skipped rather than written out of bounds.
 * With rope set, the ROPE of the keys that comes just before is done here too (the backend
 * fuses the two ops): an invocation takes two adjacent rotation pairs (i, i + hd/2) and
 * (i+1, i+1 + hd/2) of one head, rotates them in place in a and stores them; the values get
 * invocations of their own after the keys'. With rope = 2 the ROPE of the queries that comes
 * before both is done too, by invocations after the values', in place in q (nq per row). */
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
layout(std430, binding = 7) buffer BQ { uint QS[]; };

layout(push_constant) uniform PC {
    uint o[RTR_NOFF]; /* the operands' offsets, packed (vk_bind.glsl) */
    uint rows, n, max_slots, f32, rope, hd, nq;
} pc;

bool slot_of(uint r, out uint s) {
    int slot = SL[OFF(2) / 4 + r];
    s = uint(slot);
    return slot >= 0 && uint(slot) < pc.max_slots;
}

/* elements e, e+1 (e even) of cache row slot */
void put(bool key, uint slot, uint e, float a, float b) {
    uint base = slot * pc.n + e;
    if (pc.f32 != 0) {
        if (key) { KC[OFF(3) / 4 + base] = floatBitsToUint(a); KC[OFF(3) / 4 + base + 1] = floatBitsToUint(b); }
        else { VC[OFF(4) / 4 + base] = floatBitsToUint(a); VC[OFF(4) / 4 + base + 1] = floatBitsToUint(b); }
    } else {
        if (key) KC[OFF(3) / 4 + base / 2] = packHalf2x16(vec2(a, b));
        else VC[OFF(4) / 4 + base / 2] = packHalf2x16(vec2(a, b));
    }
}

/* rotates the two adjacent pairs (i, i + hd/2), (i+1, i+1 + hd/2) at word b of a row of
 * position pos, in place in KS (key) or QS */
void rot2(bool key, uint b, uint i, int pos, out float ya0, out float ya1, out float yb0, out float yb1) {
    uint half_ = pc.hd / 2;
    vec2 cs0 = rope_cs(pos, uintBitsToFloat(TAB[OFF(6) / 4 + i]));
    vec2 cs1 = rope_cs(pos, uintBitsToFloat(TAB[OFF(6) / 4 + i + 1]));
    float xa0, xa1, xb0, xb1;
    if (key) { xa0 = uintBitsToFloat(KS[b]); xa1 = uintBitsToFloat(KS[b + 1]); xb0 = uintBitsToFloat(KS[b + half_]); xb1 = uintBitsToFloat(KS[b + half_ + 1]); }
    else { xa0 = uintBitsToFloat(QS[b]); xa1 = uintBitsToFloat(QS[b + 1]); xb0 = uintBitsToFloat(QS[b + half_]); xb1 = uintBitsToFloat(QS[b + half_ + 1]); }
    precise float a0 = xa0 * cs0.x - xb0 * cs0.y, b0 = xb0 * cs0.x + xa0 * cs0.y;
    precise float a1 = xa1 * cs1.x - xb1 * cs1.y, b1 = xb1 * cs1.x + xa1 * cs1.y;
    ya0 = a0; ya1 = a1; yb0 = b0; yb1 = b1;
    if (key) { KS[b] = floatBitsToUint(a0); KS[b + 1] = floatBitsToUint(a1); KS[b + half_] = floatBitsToUint(b0); KS[b + half_ + 1] = floatBitsToUint(b1); }
    else { QS[b] = floatBitsToUint(a0); QS[b + 1] = floatBitsToUint(a1); QS[b + half_] = floatBitsToUint(b0); QS[b + half_ + 1] = floatBitsToUint(b1); }
}

void main() {
    uint idx = flat_group() * WG + gl_LocalInvocationIndex;
    uint hw = pc.n / 2, slot;
    if (pc.rope != 0) {
        uint qw = pc.n / 4, nk = pc.rows * qw; /* key invocations: two pairs each */
        if (idx < nk) {
            uint r = idx / qw, q = idx % qw, hq = pc.hd / 4, h = q / hq, i = 2 * (q % hq), half_ = pc.hd / 2;
            uint b = OFF(0) / 4 + r * pc.n + h * pc.hd + i;
            float ya0, ya1, yb0, yb1;
            rot2(true, b, i, POS[OFF(5) / 4 + r], ya0, ya1, yb0, yb1);
            if (slot_of(r, slot)) {
                put(true, slot, h * pc.hd + i, ya0, ya1);
                put(true, slot, h * pc.hd + i + half_, yb0, yb1);
            }
            return;
        }
        idx -= nk;
        if (idx < pc.rows * hw) {
            uint r = idx / hw, p = idx % hw, s1 = OFF(1) / 4 + r * pc.n + 2 * p;
            if (slot_of(r, slot)) put(false, slot, 2 * p, uintBitsToFloat(VS[s1]), uintBitsToFloat(VS[s1 + 1]));
            return;
        }
        idx -= pc.rows * hw;
        uint qq = pc.nq / 4;
        if (pc.rope != 2 || idx >= pc.rows * qq) return;
        uint r = idx / qq, q = idx % qq, hq = pc.hd / 4, h = q / hq, i = 2 * (q % hq);
        float ya0, ya1, yb0, yb1;
        rot2(false, OFF(7) / 4 + r * pc.nq + h * pc.hd + i, i, POS[OFF(5) / 4 + r], ya0, ya1, yb0, yb1);
        return;
    }
    if (idx >= pc.rows * hw) return;
    uint r = idx / hw, p = idx % hw;
    if (!slot_of(r, slot)) return;
    uint s0 = OFF(0) / 4 + r * pc.n + 2 * p, s1 = OFF(1) / 4 + r * pc.n + 2 * p;
    put(true, slot, 2 * p, uintBitsToFloat(KS[s0]), uintBitsToFloat(KS[s0 + 1]));
    put(false, slot, 2 * p, uintBitsToFloat(VS[s1]), uintBitsToFloat(VS[s1 + 1]));
}
