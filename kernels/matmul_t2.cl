/* matmul_t2.cl: RTR_OP_MATMUL_T2, ternary weights (T2) times int8 activations, exact int32
 * sums, then out = alpha * xs[t] * sum (or out += ...). Up to three weight matrices share one
 * launch: work-groups are numbered through matrix 0's row tiles, then 1's, then 2's.
 * Buffers: x (int8 [ntok][kpad], read as words), xs (f32 [ntok]), w0..w2 (T2 rows of kpad/4
 * bytes, read as words), o0..o2 (f32 [ntok][n_m]).
 * Params: off x, xs, w0, w1, w2, o0, o1, o2 (x and w in words); i ntok, kpad, n0, n1, n2,
 * tiles0, tiles1, accum; f alpha0..2.
 * gemv: small batches, GV_ROWS rows per work-group, GV_LANES work-items along each row.
 * gemm: batches above GV_TOK, 64 rows x 64 tokens per work-group of 64 work-items, each
 * computing an 8 x 8 block from weights unpacked once into local memory. */
/* picks the matrix of work-group g and its first row tile */
#define T2_SELECT(g, m, tile)                                                                  \
    do {                                                                                       \
        if ((g) < P.i[5]) { m = 0; tile = (g); }                                               \
        else if ((g) < P.i[5] + P.i[6]) { m = 1; tile = (g) - P.i[5]; }                        \
        else { m = 2; tile = (g) - P.i[5] - P.i[6]; }                                          \
    } while (0)

__kernel __attribute__((reqd_work_group_size(GV_ROWS * GV_LANES, 1, 1)))
void matmul_t2_gemv(__global const uint *x, __global const float *xs, __global const uint *w0,
                    __global const uint *w1, __global const uint *w2, __global float *o0,
                    __global float *o1, __global float *o2, rtr_params P) {
    __local int red[GV_TOK][GV_ROWS * GV_LANES];
    const int ntok = P.i[0], kpad = P.i[1], accum = P.i[7];
    int lid = get_local_id(0), lane = lid % GV_LANES, rl = lid / GV_LANES;
    int m, tile;
    T2_SELECT((int)get_group_id(0), m, tile);
    __global const uint *w = m == 0 ? w0 + P.off[2] : m == 1 ? w1 + P.off[3] : w2 + P.off[4];
    __global float *o = m == 0 ? o0 + P.off[5] : m == 1 ? o1 + P.off[6] : o2 + P.off[7];
    const int n = P.i[2 + m];
    const float alpha = P.f[m];
    int row = tile * GV_ROWS + rl, rw = kpad / 16, xw = kpad / 4;
    x += P.off[0];
    xs += P.off[1];
    for (int t0 = 0; t0 < ntok; t0 += GV_TOK) {
        int acc[GV_TOK];
        for (int t = 0; t < GV_TOK; t++) acc[t] = 0;
        if (row < n) {
            __global const uint *wr = w + (size_t)row * rw;
            for (int u = lane; u < rw; u += GV_LANES) {
                uint wv = wr[u];
                uint p0 = t2_plane(wv, 0), p1 = t2_plane(wv, 1), p2 = t2_plane(wv, 2), p3 = t2_plane(wv, 3);
                __global const uint *xu = x + (size_t)t0 * xw + (u >> 3) * 32 + (u & 7);
                for (int t = 0; t < GV_TOK; t++) {
                    if (t0 + t >= ntok) break;
                    __global const uint *xt = xu + (size_t)t * xw;
                    int a = dot4(p0, xt[0], acc[t]);
                    a = dot4(p1, xt[8], a);
                    a = dot4(p2, xt[16], a);
                    acc[t] = dot4(p3, xt[24], a);
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
                    if (t < nt) red[t][lid] += red[t][lid + s];
            barrier(CLK_LOCAL_MEM_FENCE);
        }
        if (lane < GV_TOK && t0 + lane < ntok && row < n) {
            int t = t0 + lane;
            float y = (float)red[lane][rl * GV_LANES] * (alpha * xs[t]);
            size_t oi = (size_t)t * n + row;
            o[oi] = accum ? o[oi] + y : y;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}

#define TM 64
#define TN 64
#define LDS 33

__kernel __attribute__((reqd_work_group_size(64, 1, 1)))
void matmul_t2_gemm(__global const uint *x, __global const float *xs, __global const uint *w0,
                    __global const uint *w1, __global const uint *w2, __global float *o0,
                    __global float *o1, __global float *o2, rtr_params P) {
    __local uint wl[TM * LDS];
    __local uint xl[TN * LDS];
    const int ntok = P.i[0], kpad = P.i[1], accum = P.i[7];
    int lid = get_local_id(0), tr = lid & 7, tc = lid >> 3;
    int m, tile;
    T2_SELECT((int)get_group_id(0), m, tile);
    __global const uint *w = m == 0 ? w0 + P.off[2] : m == 1 ? w1 + P.off[3] : w2 + P.off[4];
    __global float *o = m == 0 ? o0 + P.off[5] : m == 1 ? o1 + P.off[6] : o2 + P.off[7];
    const int n = P.i[2 + m];
    const float alpha = P.f[m];
    int row0 = tile * TM, tok0 = get_group_id(1) * TN, rw = kpad / 16, xw = kpad / 4;
    x += P.off[0];
    xs += P.off[1];
    int acc[8][8];
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 8; j++) acc[i][j] = 0;
    int wrow = row0 + lid;
    __global const uint *wr = w + (size_t)(wrow < n ? wrow : 0) * rw;
    for (int kb = 0; kb < kpad / 128; kb++) {
        /* weights: work-item lid unpacks the 8 words of row row0+lid into 32 signed-byte words,
         * word 8p+u holding plane p of word u, aligned with activation word 8p+u */
        for (int u = 0; u < 8; u++) {
            uint wv = wrow < n ? wr[kb * 8 + u] : 0u;
            for (int pl = 0; pl < 4; pl++) wl[lid * LDS + pl * 8 + u] = t2_plane(wv, pl);
        }
        /* activations: 64 tokens x 32 words of this block */
        for (int e = 0; e < 8; e++) {
            int idx = lid + 64 * e, tk = idx >> 3, part = idx & 7;
            uint4 v = (uint4)(0u);
            if (tok0 + tk < ntok) v = vload4(0, x + (size_t)(tok0 + tk) * xw + kb * 32 + part * 4);
            __local uint *d = xl + tk * LDS + part * 4;
            d[0] = v.s0;
            d[1] = v.s1;
            d[2] = v.s2;
            d[3] = v.s3;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int c = 0; c < 32; c++) {
            uint a[8], b[8];
            for (int i = 0; i < 8; i++) a[i] = wl[(tr + 8 * i) * LDS + c];
            for (int j = 0; j < 8; j++) b[j] = xl[(tc + 8 * j) * LDS + c];
            for (int i = 0; i < 8; i++)
                for (int j = 0; j < 8; j++) acc[i][j] = dot4(a[i], b[j], acc[i][j]);
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
