/* _common.cl: what every OpenCL kernel of rotor shares: the parameter block, the int8 dot
 * product and ternary unpacking, work-group reductions. The Makefile concatenates the .cl files
 * of kernels/ in name order, so this file (leading underscore) comes first. OpenCL C 1.2;
 * optional features only behind compiler macros (the host defines RTR_PTX_DP4A for NVIDIA
 * devices of compute capability 6.1 and up, and builds again without it if that fails).
 *
 * Every kernel takes its buffers, then one rtr_params by value: element offsets of the buffers
 * (in argument order, in units of the buffer's element type), then integer and float scalars. The
 * host mirrors this struct in backends/opencl_impl.h (cl_params); keep the two identical.
 */
typedef struct {
    ulong off[15];
    int i[14];
    float f[5];
} rtr_params;

/* Eight f16 (16-byte aligned) or f32 (32-byte aligned) values as floats, in whole-vector loads:
 * NVIDIA's compiler turns vload_half8 and vload8 of global memory into eight scalar loads. The
 * halves are converted from a private copy, exactly as vload_half8 would. */
inline float8 ld8_f16(__global const half *p) {
    uint4 u = *(__global const uint4 *)p;
    return vload_half8(0, (const __private half *)&u);
}
inline float8 ld8_f32(__global const float *p) {
    __global const float4 *q = (__global const float4 *)p;
    return (float8)(q[0], q[1]);
}
inline float8 ld8_lf(__local const float *p) { /* the same from local memory */
    __local const float4 *q = (__local const float4 *)p;
    return (float8)(q[0], q[1]);
}

/* cos and sin of position p's angle for a rotation pair of inverse frequency inv (the host's
 * table, worked out as the CPU reference does): the float32 angle of the reference, reduced
 * modulo 2 pi in three steps (Cody-Waite) before float cos and sin, which are accurate near zero
 * (rope_kv.cl, and matmul_t2.cl's q/k/v product with the RoPE behind; vk_common.glsl alike). */
inline float2 rope_cs(float p, float inv) {
    float ang = p * inv;
    float kq = rint(ang * 0.15915494309189535f);
    float red = fma(-kq, 6.28125f, ang);
    red = fma(-kq, 1.9353071693331003e-3f, red);
    red = fma(-kq, 1.0253131677018246e-11f, red);
    return (float2)(cos(red), sin(red));
}

/* element i of a KV cache: f32, or f16 rounded to nearest even */
inline void cache_put(__global float *c, size_t i, float v, int f32) {
    if (f32) c[i] = v;
    else vstore_half_rte(v, i, (__global half *)c);
}

/* gemv shape (matmul_t2.cl, matmul_f.cl): rows per work-group, work-items along each row,
 * tokens per pass. The host launches GV_ROWS * GV_LANES work-items per group. */
#define GV_ROWS 8
#define GV_LANES 32
#define GV_TOK 8

/* c + sum of the four products of a's and b's bytes: dot4 both signed, dot4su a's signed and
 * b's unsigned. One branch a way to reach them (NVIDIA's PTX, the OpenCL C 3.0 feature, plain C). */
#if defined(RTR_PTX_DP4A)
inline int dot4(uint a, uint b, int c) {
    int d;
    asm("dp4a.s32.s32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
    return d;
}
inline int dot4su(uint a, uint b, int c) {
    int d;
    asm("dp4a.s32.u32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
    return d;
}
#elif defined(__opencl_c_integer_dot_product_input_4x8bit_packed)
inline int dot4(uint a, uint b, int c) { return c + dot_4x8packed_ss_int(a, b); }
inline int dot4su(uint a, uint b, int c) { return c + dot_4x8packed_su_int(a, b); }
#else
inline int dot4(uint a, uint b, int c) {
    int4 x = convert_int4(as_char4(a)), y = convert_int4(as_char4(b));
    return c + x.s0 * y.s0 + x.s1 * y.s1 + x.s2 * y.s2 + x.s3 * y.s3;
}
inline int dot4su(uint a, uint b, int c) {
    int4 x = convert_int4(as_char4(a)), y = convert_int4(as_uchar4(b));
    return c + x.s0 * y.s0 + x.s1 * y.s1 + x.s2 * y.s2 + x.s3 * y.s3;
}
#endif

/* T2: a 32-byte block holds 128 weights; weight j is in byte j%32, bits 2*(j/32) (code 00 = 0,
 * 10 = +1, 01 = -1). A 32-bit word of the block (bytes 4u..4u+3) therefore holds, in bit plane
 * p, the weights of the four consecutive columns 32p+4u..+3. t2_plane turns plane p of a word
 * into four signed bytes, ready for dot4 with the activation word of those columns. */
inline uint t2_plane(uint w, int p) {
    uint plus = (w >> (2 * p + 1)) & 0x01010101u, minus = (w >> (2 * p)) & 0x01010101u;
    return plus | (minus * 0xFFu);
}

inline uint4 t2_planes(uint4 w, int p) {
    return (uint4)(t2_plane(w.s0, p), t2_plane(w.s1, p), t2_plane(w.s2, p), t2_plane(w.s3, p));
}

/* Work-group reductions over a power-of-two local size; buf holds one float per work-item.
 * Every work-item gets the result. With NVIDIA's inline PTX (one-dimensional work-groups of
 * whole 32-wide warps), each warp reduces with shuffles and one barrier joins the warps' results;
 * elsewhere, a tree in local memory (a barrier a level). */
#if defined(RTR_PTX_DP4A)
#define RTR_WARPS 1
inline float shfl_xor(float v, int m) {
    float r;
    asm volatile("shfl.sync.bfly.b32 %0, %1, %2, 0x1f, 0xffffffff;" : "=f"(r) : "f"(v), "r"(m));
    return r;
}
inline int shfl_xor_i(int v, int m) {
    int r;
    asm volatile("shfl.sync.bfly.b32 %0, %1, %2, 0x1f, 0xffffffff;" : "=r"(r) : "r"(v), "r"(m));
    return r;
}
#endif

/* *sum += v over the work-group (before a barrier publishes it): a warp's values joined by
 * shuffles first where they exist */
inline void wg_add_int(__local int *sum, int v) {
#if defined(RTR_WARPS)
    if (get_local_size(0) % 32 == 0) {
        for (int m = 16; m > 0; m >>= 1) v += shfl_xor_i(v, m);
        if (get_local_id(0) % 32 == 0) atomic_add(sum, v);
        return;
    }
#endif
    if (v) atomic_add(sum, v);
}

inline float wg_sum(float v, __local float *buf) {
    int l = get_local_id(0), n = get_local_size(0);
#ifdef RTR_WARPS
    if (n % 32 == 0) {
        for (int m = 16; m > 0; m >>= 1) v += shfl_xor(v, m);
        if (l % 32 == 0) buf[l / 32] = v;
        barrier(CLK_LOCAL_MEM_FENCE);
        float r = 0.0f;
        for (int i = 0; i < n / 32; i++) r += buf[i];
        barrier(CLK_LOCAL_MEM_FENCE);
        return r;
    }
#endif
    buf[l] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = n >> 1; s > 0; s >>= 1) {
        if (l < s) buf[l] += buf[l + s];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    float r = buf[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return r;
}

inline float wg_max(float v, __local float *buf) {
    int l = get_local_id(0), n = get_local_size(0);
#ifdef RTR_WARPS
    if (n % 32 == 0) {
        for (int m = 16; m > 0; m >>= 1) v = fmax(v, shfl_xor(v, m));
        if (l % 32 == 0) buf[l / 32] = v;
        barrier(CLK_LOCAL_MEM_FENCE);
        float r = buf[0];
        for (int i = 1; i < n / 32; i++) r = fmax(r, buf[i]);
        barrier(CLK_LOCAL_MEM_FENCE);
        return r;
    }
#endif
    buf[l] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = n >> 1; s > 0; s >>= 1) {
        if (l < s && buf[l + s] > buf[l]) buf[l] = buf[l + s];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    float r = buf[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return r;
}

/* The sum of s and the largest m over the work-group together: one round of barriers where warp
 * shuffles exist (buf holds at least 2 * local size / 32 floats), else the two above. */
inline float2 wg_sum_max(float s, float m, __local float *buf) {
#ifdef RTR_WARPS
    int l = get_local_id(0), n = get_local_size(0);
    if (n % 32 == 0) {
        for (int k = 16; k > 0; k >>= 1) {
            s += shfl_xor(s, k);
            m = fmax(m, shfl_xor(m, k));
        }
        if (l % 32 == 0) { buf[l / 32] = s; buf[n / 32 + l / 32] = m; }
        barrier(CLK_LOCAL_MEM_FENCE);
        float2 r = (float2)(0.0f, buf[n / 32]);
        for (int i = 0; i < n / 32; i++) { r.x += buf[i]; r.y = fmax(r.y, buf[n / 32 + i]); }
        barrier(CLK_LOCAL_MEM_FENCE);
        return r;
    }
#endif
    float a = wg_sum(s, buf);
    return (float2)(a, wg_max(m, buf));
}

/* the gate activations of RTR_OP_GLU: relu2 (0), silu (1), gelu_tanh (2); gelu's
 * 0.5 g (1 + tanh u) is written as g / (1 + exp(-2u)), exactly 0 and g in the tails */
inline float glu_act(float g, int act) {
    if (act == 0) {
        float t = g > 0.0f ? g : 0.0f;
        return t * t;
    }
    if (act == 1) return g / (1.0f + exp(-g));
    return g / (1.0f + exp(-2.0f * 0.7978845608f * (g + 0.044715f * g * g * g)));
}

/* int8 absmax quantization of one value, exactly as the CPU reference: clamp, then rint */
inline char quant_i8(float y, float s) {
    float v = y * s;
    v = v < 127.0f ? v : 127.0f;
    v = v > -128.0f ? v : -128.0f;
    return (char)rint(v);
}
