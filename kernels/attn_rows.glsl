/* attn_rows.glsl: the operands and push constants of the two batched attention shaders
 * (attn_batch.comp, attn_coop.comp): queries, caches, slot and query positions, output; then
 * attn_common.glsl. */
#include "vk_bind.glsl"
layout(std430, binding = 0) readonly buffer BQ { uint Q[]; };
layout(std430, binding = 1) readonly buffer BK4 { uvec4 K4[]; };
layout(std430, binding = 2) readonly buffer BV4 { uvec4 V4[]; };
layout(std430, binding = 3) readonly buffer BSP { int SP[]; };
layout(std430, binding = 4) readonly buffer BQP { int QP[]; };
layout(std430, binding = 5) writeonly buffer BD { uint D[]; };

layout(push_constant) uniform PC {
    uint o[RTR_NOFF]; /* the operands' offsets, packed (vk_bind.glsl) */
    uint n_head, n_kv, hd, cap;
    int n_sink, window;
    float scale;
    uint rows, f32;
} pc;

#include "attn_common.glsl"
