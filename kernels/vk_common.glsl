/* vk_common.glsl: what every Vulkan compute shader of rotor shares: the variant switches, the
 * packed int8 dot products and the workgroup reductions.
 *
 * Each shader is built three ways from one source (see the Makefile): plain (core Vulkan 1.1,
 * shared-memory reductions), __sg (-DRTR_SG: subgroup arithmetic) and, for the matmuls, __dot
 * (-DRTR_SG -DRTR_DOT: SPV_KHR_integer_dot_product, emitted through GL_EXT_spirv_intrinsics
 * because this glslc has no GL_EXT_integer_dot_product). The backend picks the best variant
 * the device reports.
 *
 * Buffers are declared as uint arrays by each shader; every binding has a byte offset in the
 * push constants (OFF(i), packed four to a word: vk_bind.glsl), the distance between the bound
 * range's start and the operand.
 * A shader that includes this defines WG (its workgroup size) first. */
#include "vk_bind.glsl"
/* RTR_SHARED: the buffers chained shaders pass each other (vk_chain.glsl) */
#ifdef RTR_VMM
#pragma use_vulkan_memory_model
#extension GL_KHR_memory_scope_semantics : require
#define RTR_SHARED nonprivate
#else
#define RTR_SHARED coherent
#endif
#ifdef RTR_SG
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif

#ifdef RTR_DOT
#extension GL_EXT_spirv_intrinsics : require
/* OpSDotKHR / OpSUDotKHR on 32-bit words holding four 8-bit lanes (format 0 = 4x8 packed) */
spirv_instruction(extensions = ["SPV_KHR_integer_dot_product"], capabilities = [6019, 6018], id = 4450)
int sdot_packed(int a, int b, spirv_literal int fmt);
spirv_instruction(extensions = ["SPV_KHR_integer_dot_product"], capabilities = [6019, 6018], id = 4452)
int sudot_packed(int a, int b, spirv_literal int fmt);
/* signed x signed lanes */
int dot_ss(uint a, uint b) { return sdot_packed(int(a), int(b), 0); }
/* signed lanes of a x unsigned lanes of b */
int dot_su(uint a, uint b) { return sudot_packed(int(a), int(b), 0); }
#else
int dot_ss(uint a, uint b) {
    ivec4 x = ivec4(bitfieldExtract(int(a), 0, 8), bitfieldExtract(int(a), 8, 8),
                    bitfieldExtract(int(a), 16, 8), bitfieldExtract(int(a), 24, 8));
    ivec4 y = ivec4(bitfieldExtract(int(b), 0, 8), bitfieldExtract(int(b), 8, 8),
                    bitfieldExtract(int(b), 16, 8), bitfieldExtract(int(b), 24, 8));
    return x.x * y.x + x.y * y.y + x.z * y.z + x.w * y.w;
}
int dot_su(uint a, uint b) {
    ivec4 x = ivec4(bitfieldExtract(int(a), 0, 8), bitfieldExtract(int(a), 8, 8),
                    bitfieldExtract(int(a), 16, 8), bitfieldExtract(int(a), 24, 8));
    ivec4 y = ivec4(b & 0xffu, (b >> 8) & 0xffu, (b >> 16) & 0xffu, b >> 24);
    return x.x * y.x + x.y * y.y + x.z * y.z + x.w * y.w;
}
#endif

/* Index of this workgroup in a grid flattened over x and y (large grids are split in two). */
uint flat_group() { return gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x; }

/* Workgroup-wide sum and max (max of values that are never NaN). Every invocation of the
 * workgroup must call them, in uniform control flow; all get the result. */
shared float red_f[WG];
float wg_sum(float v) {
#ifdef RTR_SG
    v = subgroupAdd(v);
    if (subgroupElect()) red_f[gl_SubgroupID] = v;
    barrier();
    float r = 0.0;
    for (uint i = 0; i < gl_NumSubgroups; i++) r += red_f[i];
    barrier();
    return r;
#else
    uint l = gl_LocalInvocationIndex;
    red_f[l] = v;
    barrier();
    for (uint s = WG / 2; s > 0; s >>= 1) {
        if (l < s) red_f[l] += red_f[l + s];
        barrier();
    }
    float r = red_f[0];
    barrier();
    return r;
#endif
}
float wg_max(float v) {
#ifdef RTR_SG
    v = subgroupMax(v);
    if (subgroupElect()) red_f[gl_SubgroupID] = v;
    barrier();
    float r = red_f[0];
    for (uint i = 1; i < gl_NumSubgroups; i++) r = max(r, red_f[i]);
    barrier();
    return r;
#else
    uint l = gl_LocalInvocationIndex;
    red_f[l] = v;
    barrier();
    for (uint s = WG / 2; s > 0; s >>= 1) {
        if (l < s) red_f[l] = max(red_f[l], red_f[l + s]);
        barrier();
    }
    float r = red_f[0];
    barrier();
    return r;
#endif
}

/* a / b correctly rounded, for positive finite a and b: the hardware quotient may be a few
 * ulps off, so the candidate with the smallest exact remainder (by fma) wins. The CPU
 * quantizer divides in IEEE float, and the int8 codes must match it bit for bit. */
float div_rn(float a, float b) {
    float q = a / b;
    uint u = floatBitsToUint(q);
    float best = q;
    precise float r0 = fma(-q, b, a);
    float br = abs(r0);
    for (int d = -2; d <= 2; d++) {
        if (d == 0) continue;
        float c = uintBitsToFloat(uint(int(u) + d));
        precise float r = fma(-c, b, a);
        if (abs(r) < br) { br = abs(r); best = c; }
    }
    return best;
}

/* act(g) * u for the gated activations of backend.h: 0 relu2, 1 silu, 2 gelu_tanh */
float glu_act(float g, float u, uint act) {
    precise float y;
    if (act == 0) {
        float r = g > 0.0 ? g : 0.0;
        y = r * r * u;
    } else if (act == 1) {
        /* exp(-g) beyond 2^126 leaves the divide's accuracy range: the result is 0 there */
        y = g < -87.0 ? 0.0 : g / (1.0 + exp(-g)) * u;
    } else {
        float t = 0.7978845608 * (g + 0.044715 * g * g * g);
        y = 0.5 * g * (1.0 + tanh(clamp(t, -15.0, 15.0))) * u;
    }
    return y;
}

/* cos and sin of pos * inv (RoPE): the f32 angle is reduced modulo 2 pi in three steps
 * (Cody-Waite) first, since GPU sin/cos are accurate only near zero. */
vec2 rope_cs(int pos, float inv) {
    precise float ang = float(pos) * inv;
    float kq = roundEven(ang * 0.15915494309189535);
    precise float red = fma(-kq, 6.28125, ang);
    red = fma(-kq, 1.9353071693331003e-3, red);
    red = fma(-kq, 1.0253131677018246e-11, red);
    return vec2(cos(red), sin(red));
}
