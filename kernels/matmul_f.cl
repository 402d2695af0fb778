/* matmul_f.cl: RTR_OP_MATMUL_F, float-weight product (the LM head): y[t][r] = W[r] . x[t].
 * W is f32 (0), f16 (1), bf16 (2) or q8r (4: int8 rows of kq = round_up(k,64) bytes, then one
 * f32 scale per row; y = scale[r] * (W[r] . x[t]) with x float, as on the CPU).
 * GV_ROWS rows per work-group, GV_LANES work-items along each row, tokens GV_TOK at a time.
 * Params: off x, w (bytes), y; i type, n, k, ntok, aligned (the host saw k % 8 == 0 and
 * 16-byte aligned w and x: wide loads). The last two buffers are unused. */
__kernel __attribute__((reqd_work_group_size(GV_ROWS * GV_LANES, 1, 1)))
void matmul_f(__global const float *x, __global const uchar *w, __global float *y,
              __global const uint *xq, __global const float *xqs, rtr_params P) {
    __local float red[GV_TOK][GV_ROWS * GV_LANES];
    const int type = P.i[0], n = P.i[1], k = P.i[2], ntok = P.i[3], aligned = P.i[4];
    int lid = get_local_id(0), lane = lid % GV_LANES, rl = lid / GV_LANES;
    int row = get_group_id(0) * GV_ROWS + rl, k8 = k & ~7;
    x += P.off[0];
    w += P.off[1];
    y += P.off[2];
    size_t kq = (size_t)(k + 63) / 64 * 64;
    for (int t0 = 0; t0 < ntok; t0 += GV_TOK) {
        float acc[GV_TOK];
        for (int t = 0; t < GV_TOK; t++) acc[t] = 0.0f;
        if (row < n) {
            size_t rb = type == 4 ? (size_t)row * kq : (size_t)row * k;
            for (int j = lane * 8; j < k8; j += GV_LANES * 8) {
                float8 wv;
                if (type == 4) /* rows of kq bytes: 8-byte aligned pieces where w is */
                    wv = aligned ? convert_float8(as_char8(*(__global const uint2 *)(w + rb + j)))
                                 : convert_float8(vload8(0, (__global const char *)w + rb + j));
                else if (aligned) { /* 16-byte aligned rows: one wide load per 8 weights */
                    if (type == 0) wv = ld8_f32((__global const float *)w + rb + j);
                    else if (type == 1) wv = ld8_f16((__global const half *)w + rb + j);
                    else {
                        /* bf16 pairs: the low half of each word is the first value */
                        uint4 u = ((__global const uint4 *)w)[(rb + j) / 8];
                        uint4 hi = u & (uint4)(0xffff0000u), lo = u << 16;
                        wv = as_float8((uint8)(lo.s0, hi.s0, lo.s1, hi.s1, lo.s2, hi.s2, lo.s3, hi.s3));
                    }
                } else if (type == 0) wv = vload8(0, (__global const float *)w + rb + j);
                else if (type == 1) wv = vload_half8(0, (__global const half *)w + rb + j);
                else wv = as_float8(convert_uint8(vload8(0, (__global const ushort *)w + rb + j)) << 16);
                for (int t = 0; t < GV_TOK; t++) {
                    if (t0 + t >= ntok) break;
                    __global const float *xp = x + (size_t)(t0 + t) * k + j;
                    __global const float4 *x4 = (__global const float4 *)xp;
                    float8 xv = aligned ? (float8)(x4[0], x4[1]) : vload8(0, xp);
                    acc[t] += dot(wv.lo, xv.lo) + dot(wv.hi, xv.hi);
                }
            }
            int j = k8 + lane;
            if (j < k) {
                float wv;
                if (type == 4) wv = (float)((__global const char *)w)[rb + j];
                else if (type == 0) wv = ((__global const float *)w)[rb + j];
                else if (type == 1) wv = vload_half(rb + j, (__global const half *)w);
                else wv = as_float((uint)((__global const ushort *)w)[rb + j] << 16);
                for (int t = 0; t < GV_TOK; t++) {
                    if (t0 + t >= ntok) break;
                    acc[t] += wv * x[(size_t)(t0 + t) * k + j];
                }
            }
        }
        int nt = min(GV_TOK, ntok - t0);
        for (int t = 0; t < GV_TOK; t++)
            if (t < nt) red[t][lid] = acc[t];
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int s = GV_LANES / 2; s > 0; s >>= 1) {
            if (lane < s)
                for (int t = 0; t < GV_TOK; t++)
                    if (t < nt)
                        red[t][lid] += red[t][lid + s];
            barrier(CLK_LOCAL_MEM_FENCE);
        }
        if (lane < GV_TOK && t0 + lane < ntok && row < n) {
            float v = red[lane][rl * GV_LANES];
            if (type == 4) v *= ((__global const float *)(w + (size_t)n * kq))[row];
            y[(size_t)(t0 + lane) * n + row] = v;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}

/* matmul_f_vec: the one-token product (decode's LM head), bound by the weights' bytes alone. A
 * work-group of FV_ROWS rows, FV_LANES work-items a row, each reading the row's 16-byte pieces
 * lane, lane + FV_LANES, ...: every piece of a run of FV_MAXP is loaded before any is used, so
 * that enough bytes are in flight to reach the memory's bandwidth (the loop above keeps one
 * load a work-item waiting). The host sends rows whose values fill whole pieces (k a multiple of
 * 16) from 16-byte aligned w and x. Same types and params as matmul_f, one token. */
#define FV_ROWS 8
#define FV_LANES 32
#define FV_MAXP 12

/* piece v (16 bytes of a row of type t) . the floats x[0..) it meets */
inline float fv_dot(uint4 v, __global const float *x, int t) {
    __global const float4 *x4 = (__global const float4 *)x;
    if (t == 0) return dot(as_float4(v), x4[0]);
    if (t == 4) {
        float16 f = convert_float16(as_char16(v));
        return dot(f.s0123, x4[0]) + dot(f.s4567, x4[1]) + dot(f.s89ab, x4[2]) + dot(f.scdef, x4[3]);
    }
    float8 f;
    if (t == 1) f = vload_half8(0, (const __private half *)&v);
    else {
        uint4 hi = v & (uint4)(0xffff0000u), lo = v << 16;
        f = as_float8((uint8)(lo.s0, hi.s0, lo.s1, hi.s1, lo.s2, hi.s2, lo.s3, hi.s3));
    }
    return dot(f.lo, x4[0]) + dot(f.hi, x4[1]);
}

__kernel __attribute__((reqd_work_group_size(FV_ROWS * FV_LANES, 1, 1)))
void matmul_f_vec(__global const float *x, __global const uchar *w, __global float *y, rtr_params P) {
    __local float red[FV_ROWS * FV_LANES];
    const int type = P.i[0], n = P.i[1], k = P.i[2];
    int lid = get_local_id(0), lane = lid % FV_LANES, row = get_group_id(0) * FV_ROWS + lid / FV_LANES;
    x += P.off[0];
    w += P.off[1];
    y += P.off[2];
    const int vpp = type == 4 ? 16 : type == 0 ? 4 : 8, np = k / vpp;
    size_t kq = (size_t)(k + 63) / 64 * 64;
    size_t rb = type == 4 ? (size_t)row * kq : (size_t)row * k * (type == 0 ? 4 : 2);
    __global const uint4 *wr = (__global const uint4 *)(w + rb);
    float acc = 0.0f;
    if (row < n) {
        for (int p0 = lane; p0 < np; p0 += FV_LANES * FV_MAXP) {
            uint4 wv[FV_MAXP];
            #pragma unroll
            for (int u = 0; u < FV_MAXP; u++) {
                int j = p0 + u * FV_LANES;
                wv[u] = j < np ? wr[j] : (uint4)(0u);
            }
            #pragma unroll
            for (int u = 0; u < FV_MAXP; u++) {
                int j = p0 + u * FV_LANES;
                if (j < np) acc += fv_dot(wv[u], x + (size_t)j * vpp, type);
            }
        }
    }
    red[lid] = acc;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = FV_LANES / 2; s > 0; s >>= 1) {
        if (lane < s) red[lid] += red[lid + s];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lane == 0 && row < n) {
        float v = red[lid];
        if (type == 4) v *= ((__global const float *)(w + (size_t)n * kq))[row];
        y[row] = v;
    }
}
