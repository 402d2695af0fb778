/* embed.comp: EMBED: dst[r] = table[ids[r]] * scale for f32, f16, bf16 and q8r tables (q8r:
 * int8 rows of q8r_row_bytes(d), then one f32 scale per row). Ids outside the table give a zero
 * row. One invocation an output element. */
#version 450
#define WG 256
layout(local_size_x = WG) in;
#include "vk_common.glsl"

layout(std430, binding = 0) readonly buffer BT { uint T[]; };
layout(std430, binding = 1) readonly buffer BI { int ID[]; };
layout(std430, binding = 2) writeonly buffer BD { uint D[]; };

layout(push_constant) uniform PC {
    uint o[RTR_NOFF]; /* the operands' offsets, packed (vk_bind.glsl) */
    uint type, n_rows, d, rows;
    float scale;
    uint rowb; /* q8r bytes per row */
} pc;

void main() {
    uint idx = flat_group() * WG + gl_LocalInvocationIndex;
    if (idx >= pc.rows * pc.d) return;
    uint r = idx / pc.d, j = idx % pc.d;
    int id = ID[OFF(1) / 4 + r];
    float v = 0.0;
    if (id >= 0 && uint(id) < pc.n_rows) {
        uint row = uint(id);
        if (pc.type == 0) v = uintBitsToFloat(T[OFF(0) / 4 + row * pc.d + j]);
        else if (pc.type == 1 || pc.type == 2) {
            uint h = OFF(0) / 2 + row * pc.d + j;
            uint w = T[h / 2];
            if (pc.type == 1) v = unpackHalf2x16(w)[h & 1];
            else v = uintBitsToFloat((h & 1) == 0 ? w << 16 : w & 0xffff0000u);
        } else {
            uint b = OFF(0) + row * pc.rowb + j;
            float q = float(bitfieldExtract(int(T[b / 4]), int(8 * (b & 3)), 8));
            precise float x = q * uintBitsToFloat(T[(OFF(0) + pc.n_rows * pc.rowb) / 4 + row]);
            v = x;
        }
        if (pc.scale != 1.0) { precise float y = v * pc.scale; v = y; }
    }
    D[OFF(2) / 4 + idx] = floatBitsToUint(v);
}
