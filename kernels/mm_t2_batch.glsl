/* mm_t2_batch.glsl: what the two batched ternary-product shaders (mm_t2_gemm.comp on int8 dot
 * products, mm_t2_coop.comp on int8 matrix units) share: their operands and push constants, the
 * walk of grid x over the row tiles of matrix 0, then 1, then 2, the weight-block loads and the
 * store of a result. */
#include "vk_bind.glsl"
layout(std430, binding = 0) readonly buffer BX { uvec4 X[]; };  /* int8 [ntok][kpad] */
layout(std430, binding = 1) readonly buffer BS { uint XS[]; };  /* f32 1/s per token */
layout(std430, binding = 2) readonly buffer BW0 { uvec4 W0[]; };
layout(std430, binding = 3) readonly buffer BW1 { uvec4 W1[]; };
layout(std430, binding = 4) readonly buffer BW2 { uvec4 W2[]; };
layout(std430, binding = 5) buffer BO0 { uint O0[]; };
layout(std430, binding = 6) buffer BO1 { uint O1[]; };
layout(std430, binding = 7) buffer BO2 { uint O2[]; };

layout(push_constant) uniform PC {
    uint o[RTR_NOFF]; /* the operands' offsets, packed (vk_bind.glsl) */
    uint kw4;     /* 16-byte pieces per weight row (kpad / 64) */
    uint ntok;
    uint n0, n1, n2;
    uint accum;
    uint tiles0, tiles1;
    float alpha0, alpha1, alpha2;
} pc;

/* this workgroup's matrix MAT and row tile TILE (grid x), and that matrix's row count N */
#define MM_TILE(MAT, TILE, N)                                                                   \
    uint mm_g = gl_WorkGroupID.x, MAT = 0, TILE = mm_g;                                          \
    if (TILE >= pc.tiles0) { TILE -= pc.tiles0; MAT = 1; if (TILE >= pc.tiles1) { TILE -= pc.tiles1; MAT = 2; } } \
    uint N = MAT == 0 ? pc.n0 : MAT == 1 ? pc.n1 : pc.n2

/* the two 16-byte halves WA, WC of 128-weight block KB of the weight row at piece WB */
#define MM_BLOCK(MAT, WB, KB, WA, WC)                                                           \
    if (MAT == 0) { WA = W0[WB + 2u * KB]; WC = W0[WB + 2u * KB + 1u]; }                       \
    else if (MAT == 1) { WA = W1[WB + 2u * KB]; WC = W1[WB + 2u * KB + 1u]; }                  \
    else { WA = W2[WB + 2u * KB]; WC = W2[WB + 2u * KB + 1u]; }

/* result V into element OI of matrix MAT's output, added to it when accumulating */
#define MM_PUT(MAT, OI, V)                                                                      \
    if (MAT == 0) { if (pc.accum != 0) V = uintBitsToFloat(O0[OI]) + V; O0[OI] = floatBitsToUint(V); } \
    else if (MAT == 1) { if (pc.accum != 0) V = uintBitsToFloat(O1[OI]) + V; O1[OI] = floatBitsToUint(V); } \
    else { if (pc.accum != 0) V = uintBitsToFloat(O2[OI]) + V; O2[OI] = floatBitsToUint(V); }
