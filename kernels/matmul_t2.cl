/* matmul_t2.cl: RTR_OP_MATMUL_T2, ternary weights (T2) times int8 activations, exact int32
 * sums, then out = alpha * xs[t] * sum (or out += ...). Up to three weight matrices share one
 * launch: work-groups are numbered through matrix 0's row tiles, then 1's, then 2's.
 * Buffers: x (int8 [ntok][kpad], read as words), xs (f32 [ntok]), w0..w2 (T2 rows of kpad/4
 * bytes, read as words), o0..o2 (f32 [ntok][n_m]).
 * Params: off x, xs, w0, w1, w2, o0, o1, o2 (x and w in words); i ntok, kpad, n0, n1, n2,
 * tiles0, tiles1, accum; f alpha0..2.
 * gemv (small batches, below), gemm (larger ones: 64 rows x 64 tokens per work-group of 64
 * work-items, each computing an 8 x 8 block from weights unpacked once into local memory) and
 * vec (one token, with the norm and GLU fusions; at the end); the host picks by batch size. Weights and activations are read 16 bytes at a time and must be
 * 16-byte aligned (the host checks). */
/* picks the matrix of work-group g and its first row tile */
#define T2_SELECT(g, m, tile)                                                                  \
    do {                                                                                       \
        if ((g) < P.i[5]) { m = 0; tile = (g); }                                               \
        else if ((g) < P.i[5] + P.i[6]) { m = 1; tile = (g) - P.i[5]; }                        \
        else { m = 2; tile = (g) - P.i[5] - P.i[6]; }                                          \
    } while (0)

/* gemv: TV_ROWS rows per work-group, TV_LANES work-items along each row reading 16 bytes (half
 * a T2 block, 64 weights) at a time; small work-groups so that even a 640-row matrix spreads
 * over the device. Weights and activations must be 16-byte aligned (the host checks). */
#define TV_ROWS 8
#define TV_LANES 8

__kernel __attribute__((reqd_work_group_size(TV_ROWS * TV_LANES, 1, 1)))
void matmul_t2_gemv(__global const uint *x, __global const float *xs, __global const uint *w0,
                    __global const uint *w1, __global const uint *w2, __global float *o0,
                    __global float *o1, __global float *o2, rtr_params P) {
    __local int red[GV_TOK][TV_ROWS * TV_LANES];
    const int ntok = P.i[0], kpad = P.i[1], accum = P.i[7];
    int lid = get_local_id(0), lane = lid % TV_LANES, rl = lid / TV_LANES;
    int m, tile;
    T2_SELECT((int)get_group_id(0), m, tile);
    __global const uint *w = m == 0 ? w0 + P.off[2] : m == 1 ? w1 + P.off[3] : w2 + P.off[4];
    __global float *o = m == 0 ? o0 + P.off[5] : m == 1 ? o1 + P.off[6] : o2 + P.off[7];
    const int n = P.i[2 + m];
    const float alpha = P.f[m];
    int row = tile * TV_ROWS + rl, r4 = kpad / 64, x4 = kpad / 16;
    __global const uint4 *x4p = (__global const uint4 *)(x + P.off[0]);
    xs += P.off[1];
    for (int t0 = 0; t0 < ntok; t0 += GV_TOK) {
        int acc[GV_TOK];
        for (int t = 0; t < GV_TOK; t++) acc[t] = 0;
        if (row < n) {
            __global const uint4 *wr = (__global const uint4 *)w + (size_t)row * r4;
            for (int u = lane; u < r4; u += TV_LANES) {
                /* uint4 u is half h of block u/2: words 4h..4h+3, whose plane p pairs with
                 * activation uint4 2p+h of the block */
                uint4 wv = wr[u];
                uint4 pl[4];
                for (int p = 0; p < 4; p++)
                    pl[p] = t2_planes(wv, p);
                __global const uint4 *xu = x4p + (size_t)t0 * x4 + (u >> 1) * 8 + (u & 1);
                for (int t = 0; t < GV_TOK; t++) {
                    if (t0 + t >= ntok) break;
                    __global const uint4 *xt = xu + (size_t)t * x4;
                    int a = acc[t];
                    for (int p = 0; p < 4; p++) {
                        uint4 xv = xt[2 * p];
                        a = dot4(pl[p].s0, xv.s0, a);
                        a = dot4(pl[p].s1, xv.s1, a);
                        a = dot4(pl[p].s2, xv.s2, a);
                        a = dot4(pl[p].s3, xv.s3, a);
                    }
                    acc[t] = a;
                }
            }
        }
        int nt = min(GV_TOK, ntok - t0);
        for (int t = 0; t < GV_TOK; t++)
            if (t < nt) red[t][lid] = acc[t];
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int s = TV_LANES / 2; s > 0; s >>= 1) {
            if (lane < s)
                for (int t = 0; t < GV_TOK; t++)
                    if (t < nt) red[t][lid] += red[t][lid + s];
            barrier(CLK_LOCAL_MEM_FENCE);
        }
        if (lane < nt && row < n) {
            int t = t0 + lane;
            float y = (float)red[lane][rl * TV_LANES] * (alpha * xs[t]);
            size_t oi = (size_t)t * n + row;
            o[oi] = accum ? o[oi] + y : y;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}

#define TM 64
#define TN 64
#define LDS 36 /* words per local row: 32 + 4 of padding keeps 16-byte loads free of bank conflicts */

__kernel __attribute__((reqd_work_group_size(64, 1, 1)))
void matmul_t2_gemm(__global const uint *x, __global const float *xs, __global const uint *w0,
                    __global const uint *w1, __global const uint *w2, __global float *o0,
                    __global float *o1, __global float *o2, rtr_params P) {
    __local uint4 wl4[TM * LDS / 4], xl4[TN * LDS / 4];
    const int ntok = P.i[0], kpad = P.i[1], accum = P.i[7];
    int lid = get_local_id(0), tr = lid & 7, tc = lid >> 3;
    int m, tile;
    T2_SELECT((int)get_group_id(0), m, tile);
    __global const uint *w = m == 0 ? w0 + P.off[2] : m == 1 ? w1 + P.off[3] : w2 + P.off[4];
    __global float *o = m == 0 ? o0 + P.off[5] : m == 1 ? o1 + P.off[6] : o2 + P.off[7];
    const int n = P.i[2 + m];
    const float alpha = P.f[m];
    int row0 = tile * TM, tok0 = get_group_id(1) * TN, r4 = kpad / 64, x4 = kpad / 16;
    __global const uint4 *x4p = (__global const uint4 *)(x + P.off[0]);
    xs += P.off[1];
    int acc[8][8];
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 8; j++) acc[i][j] = 0;
    int wrow = row0 + lid;
    __global const uint4 *wr = (__global const uint4 *)w + (size_t)(wrow < n ? wrow : 0) * r4;
    for (int kb = 0; kb < kpad / 128; kb++) {
        /* weights: work-item lid unpacks the block of row row0+lid into 32 signed-byte words,
         * word 8p+u holding plane p of word u, aligned with activation word 8p+u */
        uint4 wa = (uint4)(0u), wb = (uint4)(0u);
        if (wrow < n) {
            wa = wr[2 * kb];
            wb = wr[2 * kb + 1];
        }
        for (int pl = 0; pl < 4; pl++) {
            wl4[(lid * LDS + pl * 8) / 4] = t2_planes(wa, pl);
            wl4[(lid * LDS + pl * 8 + 4) / 4] = t2_planes(wb, pl);
        }
        /* activations: 64 tokens x 8 uint4 of this block */
        for (int e = 0; e < 8; e++) {
            int idx = lid + 64 * e, tk = idx >> 3, part = idx & 7;
            uint4 v = (uint4)(0u);
            if (tok0 + tk < ntok) v = x4p[(size_t)(tok0 + tk) * x4 + kb * 8 + part];
            xl4[(tk * LDS + part * 4) / 4] = v;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int c = 0; c < 32; c += 4) {
            uint4 a[8];
            for (int i = 0; i < 8; i++) a[i] = wl4[((tr + 8 * i) * LDS + c) / 4];
            for (int j = 0; j < 8; j++) {
                uint4 bv = xl4[((tc + 8 * j) * LDS + c) / 4];
                for (int i = 0; i < 8; i++) {
                    int s = dot4(a[i].s0, bv.s0, acc[i][j]);
                    s = dot4(a[i].s1, bv.s1, s);
                    s = dot4(a[i].s2, bv.s2, s);
                    acc[i][j] = dot4(a[i].s3, bv.s3, s);
                }
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    for (int j = 0; j < 8; j++) {
        int t = tok0 + tc + 8 * j;
        if (t >= ntok) break;
        float f = alpha * xs[t];
        for (int i = 0; i < 8; i++) {
            int row = row0 + tr + 8 * i;
            if (row >= n) continue;
            float y = (float)acc[i][j] * f;
            size_t oi = (size_t)t * n + row;
            o[oi] = accum ? o[oi] + y : y;
        }
    }
}

/* matmul_t2_vec: one token (decode), k <= TV_KMAX, up to three matrices, optionally with the
 * quantizing RMSNORM in front (i[9] = 1, with rmsnorm.cl's arithmetic) and the GLU of a gate/up pair
 * behind (i[6] = 1 + act). Decode is bound by how many weight bytes are in flight, so each
 * work-item first issues all of its weight loads (up to TV_MAXU 16-byte reads), and only then
 * builds the int8 row in local memory (copied from q, or normalized and quantized by every
 * work-group for itself, work-group 0 also writing q and qs); the loads' latency hides the norm.
 * i[5] = lpr work-items share a weight row, TV_WG / lpr rows a work-group, lane l reading the
 * row's 16-byte pieces l, l + lpr, ... GLU mode: matrices 0 and 1 have equal rows; a work-group
 * takes rows j0.. of both (gate rows in its first half, up rows in the second) and writes
 * act(gate) * up into o0 and up into o1, as the GLU op in place on the gate rows would.
 * RoPE/KV mode (i[10] = 1, + 2 for an f32 cache): a one-token q/k/v product also does the ROPE
 * of q and k and the KV_STORE of k and v behind it (tv_rkv_row orders the rows so that a
 * work-group holds both halves of its rotation pairs).
 * Params: off a, nw (floats, multiples of 4), q (words, multiple of 4), qs, w0..w2 (words),
 * o0..o2, pos, slot, kc, vc (elements of the cache type), tab (RoPE inverse frequencies); i n
 * (multiple of 4), kpad, n0..n2, lpr, glu, accum, has weight, fused, rkv, head_dim (a multiple
 * of 4), max_slots, cache row (elements); f alpha0..2, eps. */
#define TV_WG 256

/* acc + one 16-byte piece of a T2 row (half h of a 32-byte block) . its activations: plane p of
 * the piece meets uint4 2p of xu, xu pointing at uint4 h of the block's activations */
/* Where 16-byte piece i of the int8 input row sits in local memory: the eight pieces of 128
 * bytes are permuted by block so that the lanes of a row, which read one bit plane of
 * consecutive blocks at once, meet eight different 16-byte bank groups instead of two. */
inline int xl_at(int i) { return (i & ~7) | ((i & 7) ^ ((i >> 2) & 6)); }

#define TV_MAXU 10 /* the most weight pieces a work-item holds (maxu below: matmul_t2_vec_g) */
#define TV_MAXU_ROW 8 /* the others' (T2_VEC_MAXU of the host) */
#define TV_KMAX 8192
#define TV_NG (TV_KMAX / 4 / TV_WG)

/* the matrix and row of a work-group's row slot rl; 0 when past the end */
inline int tv_row(const rtr_params *P, int grp, int rl, int *m, int *lr) {
    int rpw = TV_WG / P->i[5];
    if (P->i[6]) {
        int h = rpw / 2;
        *m = rl < h ? 0 : 1;
        *lr = grp * h + rl % h;
        return *lr < P->i[2];
    }
    int r = grp * rpw + rl;
    *m = 0;
    if (r >= P->i[2]) { r -= P->i[2]; *m = 1; if (r >= P->i[3]) { r -= P->i[3]; *m = 2; } }
    *lr = r;
    return r < P->i[2 + *m];
}

/* RoPE/KV mode: rows of q and k go in fours, elements (j, j + 1, j + hd/2, j + 1 + hd/2) of a
 * head for j = 0, 2, 4, ...; the weight row of logical row lr of matrix m: */
inline int tv_rkv_row(int m, int lr, int hd) {
    if (m == 2) return lr;
    int i = lr % hd;
    return lr - i + (i / 4) * 2 + (i & 1) + ((i >> 1) & 1) * (hd / 2);
}

/* The four logical rows from lr on of matrix m (x[0..3] in that order), rotated (q, k) as
 * rope_kv.cl does and written, k and v also into slot s of the caches (s < 0: not stored); cs
 * holds the cos and sin of the group's two rotation pairs. */
inline void tv_rkv_store(const rtr_params *P, int m, int lr, __local const float *x, int s, float4 cs,
                         __global float *o0, __global float *o1, __global float *o2,
                         __global float *kc, __global float *vc) {
    const int hd = P->i[11], f32 = (P->i[10] & 2) != 0;
    size_t crow = (size_t)(s < 0 ? 0 : s) * P->i[13];
    if (m == 2) {
        for (int e = 0; e < 4; e++) {
            o2[P->off[9] + lr + e] = x[e];
            if (s >= 0) cache_put(vc, P->off[13] + crow + lr + e, x[e], f32);
        }
        return;
    }
    int j = (lr % hd) / 2, e0 = lr - lr % hd + j, e1 = e0 + hd / 2;
    float2 c0 = cs.s01, c1 = cs.s23;
    float a0 = x[0] * c0.x - x[2] * c0.y, b0 = x[2] * c0.x + x[0] * c0.y;
    float a1 = x[1] * c1.x - x[3] * c1.y, b1 = x[3] * c1.x + x[1] * c1.y;
    __global float *o = m == 0 ? o0 + P->off[7] : o1 + P->off[8];
    o[e0] = a0;
    o[e0 + 1] = a1;
    o[e1] = b0;
    o[e1 + 1] = b1;
    if (m == 1 && s >= 0) {
        size_t c = P->off[12] + crow;
        cache_put(kc, c + e0, a0, f32);
        cache_put(kc, c + e0 + 1, a1, f32);
        cache_put(kc, c + e1, b0, f32);
        cache_put(kc, c + e1 + 1, b1, f32);
    }
}

/* The quantizing RMSNORM of one row as every work-group of a one-token launch does it for
 * itself (rmsnorm.cl's arithmetic): the row a (n floats, n a multiple of 4, float4-aligned) times
 * 1/rms and the weight nw (or 1: hasw = 0), as int8 into xw (words, permuted by xl_at) for the
 * kpad/4 words, their code sum into *xt; wq (work-group 0's q and qs, or 0) gets the words and
 * 1/s too. ng float4 a work-item of TV_WG (a constant once inlined); returns 1/s. */
inline float t2_norm_quant(__global const float4 *a4, __global const float4 *w4, int n, int hasw, float eps, int kpad,
                           const int ng, __local uint *xw, __local float *red, int *xt, __global uint *wq,
                           __global float *wqs) {
    const int n4 = n / 4, lid = get_local_id(0);
    float4 y[TV_NG], ws[TV_NG];
    float ss = 0.0f, mx = 0.0f;
    #pragma unroll
    for (int i = 0; i < ng; i++) {
        int g4 = lid + i * TV_WG;
        y[i] = g4 < n4 ? a4[g4] : (float4)(0.0f);
        ws[i] = hasw && g4 < n4 ? w4[g4] : (float4)(1.0f);
    }
    /* the sum of squares and the largest |x w| in one reduction: the largest |x / rms * w|
     * is that times 1 / rms, to within a rounding the quantizer's clamp absorbs */
    #pragma unroll
    for (int i = 0; i < ng; i++) {
        ss += y[i].s0 * y[i].s0 + y[i].s1 * y[i].s1 + y[i].s2 * y[i].s2 + y[i].s3 * y[i].s3;
        float4 yw = fabs(y[i] * ws[i]);
        mx = fmax(mx, fmax(fmax(yw.s0, yw.s1), fmax(yw.s2, yw.s3)));
    }
    float2 r = wg_sum_max(ss, mx, red);
    float inv = 1.0f / sqrt(r.x / (float)n + eps);
    mx = r.y * inv;
    #pragma unroll
    for (int i = 0; i < ng; i++) y[i] = y[i] * inv * ws[i];
    if (!(mx > 1e-5f)) mx = 1e-5f;
    float s = 127.0f / mx;
    #pragma unroll
    for (int i = 0; i < ng; i++) {
        int g4 = lid + i * TV_WG;
        if (g4 >= kpad / 4) break;
        uint word = (uint)(uchar)quant_i8(y[i].s0, s) | (uint)(uchar)quant_i8(y[i].s1, s) << 8 |
                    (uint)(uchar)quant_i8(y[i].s2, s) << 16 | (uint)(uchar)quant_i8(y[i].s3, s) << 24;
        xw[xl_at(g4 >> 2) * 4 + (g4 & 3)] = word;
        *xt = dot4su(word, 0x01010101u, *xt);
        if (wq) wq[g4] = word;
    }
    if (wq && lid == 0) *wqs = mx / 127.0f;
    return mx / 127.0f;
}

/* Piece j of a T2 row (its 16 bytes w) against the int8 row in xl, added to the four plane
 * sums a: piece j is half j&1 of block j/2; its plane p meets activation uint4 2p + (j&1) of the
 * block. Each 2-bit code becomes w + 1 (0, 1, 2: the low bit replaced by low XOR NOT high) for
 * one signed x unsigned dot product a byte lane: sum w x = sum (w + 1) x - sum x, the last term
 * once a row. Plane p is masked in place, which scales its products by 4^p (at most 2 << 6 =
 * 128 a lane: still a byte), so each plane keeps its own sum, divided exactly at the end
 * (t2_planes_sum). */
inline int4 t2_piece(uint4 w, __local const uint4 *xl, int j, int4 a) {
    int i0 = (j >> 1) * 8 + (j & 1);
    uint4 c = w ^ ((~w >> 1) & 0x55555555u);
    uint4 x0 = xl[xl_at(i0)], x1 = xl[xl_at(i0 + 2)], x2 = xl[xl_at(i0 + 4)], x3 = xl[xl_at(i0 + 6)];
    uint4 c0 = c & 0x03030303u, c1 = c & 0x0c0c0c0cu, c2 = c & 0x30303030u, c3 = c & 0xc0c0c0c0u;
    a.s0 = dot4su(x0.s0, c0.s0, dot4su(x0.s1, c0.s1, dot4su(x0.s2, c0.s2, dot4su(x0.s3, c0.s3, a.s0))));
    a.s1 = dot4su(x1.s0, c1.s0, dot4su(x1.s1, c1.s1, dot4su(x1.s2, c1.s2, dot4su(x1.s3, c1.s3, a.s1))));
    a.s2 = dot4su(x2.s0, c2.s0, dot4su(x2.s1, c2.s1, dot4su(x2.s2, c2.s2, dot4su(x2.s3, c2.s3, a.s2))));
    a.s3 = dot4su(x3.s0, c3.s0, dot4su(x3.s1, c3.s1, dot4su(x3.s2, c3.s2, dot4su(x3.s3, c3.s3, a.s3))));
    return a;
}
inline int t2_planes_sum(int4 a) { return a.s0 + (a.s1 >> 2) + (a.s2 >> 4) + (a.s3 >> 6); }

/* The body of the entry points below; ng and maxu (constants once inlined) are how many float4
 * of the norm's row and how many 16-byte weight pieces a work-item holds in registers. */
inline void t2_vec(__global const float *a, __global const float *nw, __global uint *q,
                   __global float *qs, __global const uint *w0, __global const uint *w1,
                   __global const uint *w2, __global float *o0, __global float *o1,
                   __global float *o2, __global const int *pos, __global const int *slot, __global float *kc,
                   __global float *vc, __global const float *tab, rtr_params P, const int ng, const int maxu,
                   __local uint4 *xl, __local float *red, __local float *gv, __local int *part,
                   __local int *xsum) {
    __local uint *xw = (__local uint *)xl;
    const int n = P.i[0], kpad = P.i[1], lpr = P.i[5], glu = P.i[6], accum = P.i[7], rkv = P.i[10];
    int lid = get_local_id(0), grp = get_group_id(0), rpw = TV_WG / lpr, lane = lid % lpr, kw4 = kpad / 64;
    int m, lr, live = tv_row(&P, grp, lid / lpr, &m, &lr);
    __global const uint *w = m == 0 ? w0 + P.off[4] : m == 1 ? w1 + P.off[5] : w2 + P.off[6];
    int wrow = live ? (rkv ? tv_rkv_row(m, lr, P.i[11]) : lr) : 0;
    __global const uint4 *wr = (__global const uint4 *)w + (size_t)wrow * kw4;
    /* 1. every weight load of this work-item, in flight together */
    uint4 wv[TV_MAXU];
    #pragma unroll
    for (int u = 0; u < maxu; u++) {
        int j = lane + u * lpr;
        wv[u] = live && j < kw4 ? wr[j] : (uint4)(0u);
    }
    /* RoPE/KV: the token's slot, and the cos and sin of the epilogue's rotation pairs, worked
     * out now, behind the weight loads */
    int rs = -1;
    float4 rcs = (float4)(0.0f);
    if (rkv && lid < rpw / 4) {
        rs = slot[P.off[11]];
        if (rs < 0 || rs >= P.i[12]) rs = -1;
        float rp = (float)pos[P.off[10]];
        int hd = P.i[11], j = ((grp * rpw + 4 * lid) % hd) / 2; /* q and k start on whole heads */
        float2 inv = vload2(0, tab + P.off[14] + j);
        rcs = (float4)(rope_cs(rp, inv.x), rope_cs(rp, inv.y));
    }
    /* 2. the int8 input row, and the sum of its codes (step 3) */
    if (lid == 0) *xsum = 0;
    barrier(CLK_LOCAL_MEM_FENCE);
    float xs;
    int xt = 0;
    if (P.i[9]) {
        xs = t2_norm_quant((__global const float4 *)(a + P.off[0]), (__global const float4 *)(nw + P.off[1]), n,
                           P.i[8], P.f[3], kpad, ng, xw, red, &xt, grp == 0 ? q + P.off[2] : 0,
                           qs + P.off[3]);
    } else {
        __global const uint4 *q4 = (__global const uint4 *)(q + P.off[2]);
        for (int i = lid; i < kpad / 16; i += TV_WG) {
            uint4 x = q4[i];
            xl[xl_at(i)] = x;
            xt = dot4su(x.s0, 0x01010101u, dot4su(x.s1, 0x01010101u, dot4su(x.s2, 0x01010101u, dot4su(x.s3, 0x01010101u, xt))));
        }
        xs = qs[P.off[3]];
    }
    wg_add_int(xsum, xt);
    barrier(CLK_LOCAL_MEM_FENCE);
    /* 3. the dot products (t2_piece) */
    int4 acc = (int4)(0);
    #pragma unroll
    for (int u = 0; u < maxu; u++) {
        int j = lane + u * lpr;
        if (j >= kw4) break;
        acc = t2_piece(wv[u], xl, j, acc);
    }
    /* 4. one work-item a row sums its lanes and writes: the row's first lane, the lanes' sums
     * joined by warp shuffles where there are warps (a row's lanes are in one), else work-item
     * r for row r after a pass through local memory */
    int d = t2_planes_sum(acc), row = lid / lpr, owner = lane == 0;
#if defined(RTR_WARPS)
    for (int k = lpr / 2; k > 0; k >>= 1) d += shfl_xor_i(d, k);
#else
    part[lid] = d;
    barrier(CLK_LOCAL_MEM_FENCE);
    row = lid;
    owner = lid < rpw;
    d = 0;
    if (owner)
        for (int i = 0; i < lpr; i++) d += part[lid * lpr + i];
#endif
    if (owner) {
        d -= *xsum;
        live = tv_row(&P, grp, row, &m, &lr);
        float y = (float)d * (P.f[m] * xs);
        if (live && !glu && !rkv) {
            __global float *o = m == 0 ? o0 + P.off[7] : m == 1 ? o1 + P.off[8] : o2 + P.off[9];
            o[lr] = accum ? o[lr] + y : y;
        }
        gv[row] = y;
    }
    /* one barrier for both epilogues, outside any branch (PoCL mishandles barriers under
     * conditions even when they are uniform) */
    barrier(CLK_LOCAL_MEM_FENCE);
    if (rkv) {
        if (lid < rpw / 4 && tv_row(&P, grp, 4 * lid, &m, &lr))
            tv_rkv_store(&P, m, lr, gv + 4 * lid, rs, rcs, o0, o1, o2, kc, vc);
        return;
    }
    if (lid < rpw / 2 && glu && tv_row(&P, grp, lid, &m, &lr)) {
        float up = gv[lid + rpw / 2];
        o0[P.off[7] + lr] = glu_act(gv[lid], glu - 1) * up;
        o1[P.off[8] + lr] = up;
    }
}

#define TV_ARGS                                                                                   \
    __global const float *a, __global const float *nw, __global uint *q, __global float *qs,      \
        __global const uint *w0, __global const uint *w1, __global const uint *w2,                \
        __global float *o0, __global float *o1, __global float *o2, __global const int *pos,       \
        __global const int *slot, __global float *kc, __global float *vc, __global const float *tab, rtr_params P
#define TV_BODY(NG, MAXU)                                                                         \
    __local uint4 xl[TV_KMAX / 16];                                                               \
    __local float red[TV_WG], gv[TV_WG];                                                          \
    __local int part[TV_WG], xsum[1];                                                             \
    t2_vec(a, nw, q, qs, w0, w1, w2, o0, o1, o2, pos, slot, kc, vc, tab, P, NG, MAXU, xl, red, gv, part, xsum)

__kernel __attribute__((reqd_work_group_size(TV_WG, 1, 1))) void matmul_t2_vec(TV_ARGS) { TV_BODY(TV_NG, TV_MAXU_ROW); }

/* the same for norms of rows up to 3072 (2B4T's 2560): fewer registers, so that a compute
 * unit holds more work-groups at once */
#define TV_NG_SHORT 3
__kernel __attribute__((reqd_work_group_size(TV_WG, 1, 1))) void matmul_t2_vec_s(TV_ARGS) { TV_BODY(TV_NG_SHORT, TV_MAXU_ROW); }

/* and for a gate/up pair of such rows: ten pieces a work-item, so that twice the rows a
 * work-group leave half the work-groups, all resident at once */
__kernel __attribute__((reqd_work_group_size(TV_WG, 1, 1))) void matmul_t2_vec_g(TV_ARGS) { TV_BODY(TV_NG_SHORT, TV_MAXU); }

/* The same kernels with only the arguments that one matrix (matmul_t2_vec1, _s1) or a gate/up
 * pair (matmul_t2_vec_g2) use, without RoPE/KV mode: a driver's cost to enqueue a launch grows
 * with its buffer arguments (tests/bench_opencl_launch.c), and most one-token launches are these. */
#define TV_ARGS1                                                                                  \
    __global const float *a, __global const float *nw, __global uint *q, __global float *qs,      \
        __global const uint *w0, __global float *o0, rtr_params P
#define TV_ARGS2                                                                                  \
    __global const float *a, __global const float *nw, __global uint *q, __global float *qs,      \
        __global const uint *w0, __global const uint *w1, __global float *o0, __global float *o1, rtr_params P
#define TV_NO_RKV                                                                                 \
    __global const int *pos = 0, *slot = 0;                                                       \
    __global float *kc = 0, *vc = 0;                                                              \
    __global const float *tab = 0
#define TV_ONE                                                                                    \
    __global const uint *w1 = 0;                                                                  \
    __global float *o1 = 0
#define TV_NO_THIRD                                                                               \
    __global const uint *w2 = 0;                                                                  \
    __global float *o2 = 0
__kernel __attribute__((reqd_work_group_size(TV_WG, 1, 1))) void matmul_t2_vec1(TV_ARGS1) {
    TV_ONE;
    TV_NO_THIRD;
    TV_NO_RKV;
    TV_BODY(TV_NG, TV_MAXU_ROW);
}
__kernel __attribute__((reqd_work_group_size(TV_WG, 1, 1))) void matmul_t2_vec_s1(TV_ARGS1) {
    TV_ONE;
    TV_NO_THIRD;
    TV_NO_RKV;
    TV_BODY(TV_NG_SHORT, TV_MAXU_ROW);
}
__kernel __attribute__((reqd_work_group_size(TV_WG, 1, 1))) void matmul_t2_vec_g2(TV_ARGS2) {
    TV_NO_THIRD;
    TV_NO_RKV;
    TV_BODY(TV_NG_SHORT, TV_MAXU);
}

/* And the three with the session's block A (activations, caches, positions, slots) and the
 * model's W (weights, norm weights) for all of their buffers but the RoPE table: the parameters'
 * offsets then count from the blocks' starts (opencl_ops.c, pooled). Three arguments to enqueue
 * instead of fifteen. */
#define TV_ARGSP __global uchar *A, __global uchar *W, __global const float *tab, rtr_params P
#define TV_POOLED                                                                                 \
    __global const float *a = (__global const float *)A, *nw = (__global const float *)W;        \
    __global uint *q = (__global uint *)A;                                                        \
    __global float *qs = (__global float *)A, *o0 = (__global float *)A, *o1 = o0, *o2 = o0;      \
    __global const uint *w0 = (__global const uint *)W, *w1 = w0, *w2 = w0;                       \
    __global const int *pos = (__global const int *)A, *slot = pos;                               \
    __global float *kc = (__global float *)A, *vc = kc
__kernel __attribute__((reqd_work_group_size(TV_WG, 1, 1))) void matmul_t2_vec_p(TV_ARGSP) {
    TV_POOLED;
    TV_BODY(TV_NG, TV_MAXU_ROW);
}
__kernel __attribute__((reqd_work_group_size(TV_WG, 1, 1))) void matmul_t2_vec_s_p(TV_ARGSP) {
    TV_POOLED;
    TV_BODY(TV_NG_SHORT, TV_MAXU_ROW);
}
__kernel __attribute__((reqd_work_group_size(TV_WG, 1, 1))) void matmul_t2_vec_g_p(TV_ARGSP) {
    TV_POOLED;
    TV_BODY(TV_NG_SHORT, TV_MAXU);
}
