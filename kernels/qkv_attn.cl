/* qkv_attn.cl: one token's layer head in one launch: the quantizing RMSNORM of the row, the
 * q/k/v product, RoPE of q and k, the KV store and the attention over a short ring (the ops
 * RMSNORM, MATMUL_T2 of three matrices, ROPE, ROPE, KV_STORE, ATTN as the graph gives them). On
 * a device where every launch costs several microseconds whatever it does (BENCH.md), the
 * attention launch and its wait for the product are the cost; here a work-group takes one query
 * head and computes for itself the rows it needs (the head's q rows and its KV head's k and v
 * rows: the k and v of a group's heads are worked out once a head, which the weights' bytes
 * allow), then attends over the ring, taking this token's k and v from local memory. The first
 * head of a KV group writes k and v (and its k, v outputs and the cache), every head its q rows
 * and its attention output. The host sends rings of at most QA_CAP slots (longer ones need the
 * split attention of attn.cl) and rows of at most QA_NG * 4 * QA_WG floats.
 * Buffers: a, nw, q, qs (the norm's input, weight, int8 output and 1/s), w0..w2 (T2), o0..o2
 * (q, k, v outputs), pos, slot, kc, vc (RoPE positions, the token's slot, the caches), spos
 * (slot positions), dst (attention output).
 * Params: off as the buffers (q and w in words, caches in elements of their type); i n, kpad,
 * hd, lpr, n_head, n_kv, has weight, f32 cache, max slots, cap, n_sink, window; f alpha0..2,
 * eps, theta, scale. */
#define QA_WG 512
#define QA_NG 2     /* float4 of the norm's row a work-item */
/* 16-byte weight pieces a work-item holds for a pass of rows, two passes in flight: few enough
 * registers (at most 128) for a work-group of QA_WG on NVIDIA */
#define QA_MAXU 5
#define QA_CAP 512  /* slots of the ring at most */
#define QA_HD 256   /* head_dim at most */
#define QA_TPS 4    /* work-items a slot's score */

/* v rounded to f16 (nearest even) and back, as an f16 cache stores it */
inline float f16_round(float v) {
    ushort u;
    vstore_half_rte(v, 0, (__private half *)&u);
    return vload_half(0, (const __private half *)&u);
}

/* the weight row and matrix of row r of the work-group's 3 hd (q rows of head h, then k and v
 * rows of KV head g) */
inline __global const uint4 *qa_wrow(int r, int hd, int h, int g, int kw4, __global const uint *w0,
                                     __global const uint *w1, __global const uint *w2, const rtr_params *P) {
    int m = r / hd, i = r % hd;
    __global const uint *w = m == 0 ? w0 + P->off[4] : m == 1 ? w1 + P->off[5] : w2 + P->off[6];
    return (__global const uint4 *)w + (size_t)((m == 0 ? h : g) * hd + i) * kw4;
}

/* the weight pieces of pass p: row slot rl of the pass, lane's pieces */
#define QA_LOAD(p, wv)                                                                              \
    do {                                                                                            \
        int r_ = (p) * rpp + rl;                                                                    \
        __global const uint4 *wr_ = qa_wrow(r_ < nrow ? r_ : 0, hd, h, g, kw4, w0, w1, w2, &P);     \
        for (int u = 0; u < QA_MAXU; u++) {                                      \
            int j = lane + u * lpr;                                                                 \
            wv[u] = (p) < npass && r_ < nrow && j < kw4 ? wr_[j] : (uint4)(0u);                     \
        }                                                                                           \
    } while (0)

/* pass p's dot products, its row sums into res (times alpha and 1/s) */
#define QA_DOTS(p, wv)                                                                              \
    do {                                                                                            \
        int4 acc_ = (int4)(0);                                                                      \
        for (int u = 0; u < QA_MAXU; u++) {                                      \
            int j = lane + u * lpr;                                                                 \
            if (j < kw4) acc_ = t2_piece(wv[u], xl, j, acc_);                                       \
        }                                                                                           \
        part[lid] = t2_planes_sum(acc_);                                                            \
        barrier(CLK_LOCAL_MEM_FENCE);                                                               \
        int r_ = (p) * rpp + lid;                                                                   \
        if (lid < rpp && r_ < nrow && (p) < npass) {                                                \
            int d_ = -*xsum;                                                                        \
            for (int i_ = 0; i_ < lpr; i_++) d_ += part[lid * lpr + i_];                            \
            res[r_] = (float)d_ * (P.f[r_ / hd] * xs);                                              \
        }                                                                                           \
        barrier(CLK_LOCAL_MEM_FENCE);                                                               \
    } while (0)

__kernel __attribute__((reqd_work_group_size(QA_WG, 1, 1)))
void qkv_attn(__global const float *a, __global const float *nw, __global uint *q, __global float *qs,
              __global const uint *w0, __global const uint *w1, __global const uint *w2, __global float *o0,
              __global float *o1, __global float *o2, __global const int *pos, __global const int *slot,
              __global float *kc, __global float *vc, __global const int *spos, __global float *dst,
              rtr_params P) {
    __local uint4 xl[TV_KMAX / 16];
    __local float red[QA_WG], res[3 * QA_HD], sc[QA_CAP], part4[QA_WG];
    __local int part[QA_WG], xsum[1];
    __local uint *xw = (__local uint *)xl;
    const int n = P.i[0], kpad = P.i[1], hd = P.i[2], lpr = P.i[3], nh = P.i[4], nkv = P.i[5];
    const int f32 = P.i[7], cap = P.i[9], n_sink = P.i[10], window = P.i[11];
    int lid = get_local_id(0), h = get_group_id(0), grp = nh / nkv, g = h / grp, first = h % grp == 0;
    int kw4 = kpad / 64, lane = lid % lpr, rl = lid / lpr, rpp = QA_WG / lpr, nrow = 3 * hd;
    int npass = (nrow + rpp - 1) / rpp;
    /* 1. the first two passes' weights in flight, and the token's position and slot */
    uint4 wa[QA_MAXU], wb[QA_MAXU];
    QA_LOAD(0, wa);
    QA_LOAD(1, wb);
    int p = pos[P.off[10]], s_now = slot[P.off[11]];
    if (s_now < 0 || s_now >= P.i[8]) s_now = -1;
    /* 2. the int8 input row (work-group 0 also writes q and qs) */
    if (lid == 0) *xsum = 0;
    barrier(CLK_LOCAL_MEM_FENCE);
    int xt = 0;
    float xs = t2_norm_quant((__global const float4 *)(a + P.off[0]), (__global const float4 *)(nw + P.off[1]), n,
                             P.i[6], P.f[3], kpad, QA_NG, QA_WG, xw, red, &xt, h == 0 ? q + P.off[2] : 0,
                             qs + P.off[3]);
    wg_add_int(xsum, xt);
    barrier(CLK_LOCAL_MEM_FENCE);
    /* 3. the 3 hd rows, two passes in flight at a time */
    for (int p0 = 0; p0 < npass; p0 += 2) {
        QA_DOTS(p0, wa);
        QA_LOAD(p0 + 2, wa);
        QA_DOTS(p0 + 1, wb);
        QA_LOAD(p0 + 3, wb);
    }
    /* 4. RoPE of q and k (pairs i, i + hd/2), the outputs and the store */
    __local float *rq = res, *rk = res + hd, *rv = res + 2 * hd;
    if (lid < hd / 2) {
        float2 cs = rope_cs((float)p, lid, hd, P.f[4]);
        float q0 = rq[lid], q1 = rq[lid + hd / 2], k0 = rk[lid], k1 = rk[lid + hd / 2];
        rq[lid] = q0 * cs.x - q1 * cs.y;
        rq[lid + hd / 2] = q1 * cs.x + q0 * cs.y;
        rk[lid] = k0 * cs.x - k1 * cs.y;
        rk[lid + hd / 2] = k1 * cs.x + k0 * cs.y;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    size_t crow = (size_t)nkv * hd;
    for (int i = lid; i < hd; i += QA_WG) {
        o0[P.off[7] + (size_t)h * hd + i] = rq[i];
        if (first) {
            o1[P.off[8] + (size_t)g * hd + i] = rk[i];
            o2[P.off[9] + (size_t)g * hd + i] = rv[i];
            if (s_now >= 0) {
                cache_put(kc, P.off[12] + s_now * crow + (size_t)g * hd + i, rk[i], f32);
                cache_put(vc, P.off[13] + s_now * crow + (size_t)g * hd + i, rv[i], f32);
            }
        }
    }
    /* the token's own slot is read from rk and rv below: as the cache holds them */
    barrier(CLK_LOCAL_MEM_FENCE);
    if (!f32)
        for (int i = lid; i < hd; i += QA_WG) {
            rk[i] = f16_round(rk[i]);
            rv[i] = f16_round(rv[i]);
        }
    barrier(CLK_LOCAL_MEM_FENCE);
    /* 5. scores: QA_TPS work-items a slot, each a quarter of the dims */
    spos += P.off[14];
    __global const half *Kh = (__global const half *)kc + P.off[12] + (size_t)g * hd;
    __global const half *Vh = (__global const half *)vc + P.off[13] + (size_t)g * hd;
    __global const float *Kf = kc + P.off[12] + (size_t)g * hd;
    __global const float *Vf = vc + P.off[13] + (size_t)g * hd;
    const int dq = hd / QA_TPS, spp = QA_WG / QA_TPS;
    const float scale = P.f[5];
    for (int s0 = 0; s0 < cap; s0 += spp) {
        int s = s0 + lid / QA_TPS, t = lid % QA_TPS;
        float d = 0.0f;
        int vis = 0;
        if (s < cap) {
            int sp = spos[s];
            vis = sp >= 0 && sp <= p && (sp < n_sink || p - sp < window);
        }
        if (vis) {
            int d0 = t * dq;
            if (s == s_now)
                for (int i = 0; i < dq; i++) d += rq[d0 + i] * rk[d0 + i];
            else if (f32)
                for (int i = 0; i < dq; i++) d += rq[d0 + i] * Kf[(size_t)s * crow + d0 + i];
            else
                for (int i = 0; i < dq; i++) d += rq[d0 + i] * vload_half((size_t)s * crow + d0 + i, Kh);
        }
        part4[lid] = d;
        barrier(CLK_LOCAL_MEM_FENCE);
        if (t == 0 && s < cap) {
            float v = part4[lid] + part4[lid + 1] + part4[lid + 2] + part4[lid + 3];
            sc[s] = vis ? v * scale : -INFINITY;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    /* 6. softmax over the ring */
    float m = -INFINITY;
    for (int s = lid; s < cap; s += QA_WG) m = fmax(m, sc[s]);
    m = wg_max(m, red);
    float l = 0.0f;
    for (int s = lid; s < cap; s += QA_WG) {
        float e = m == -INFINITY || sc[s] == -INFINITY ? 0.0f : exp(sc[s] - m);
        sc[s] = e;
        l += e;
    }
    l = wg_sum(l, red);
    /* 7. the values: work-item (dim i, group j) sums the slots j, j + ng, ... */
    int ngv = QA_WG / hd, i = lid % hd, j = lid / hd;
    float acc = 0.0f;
    if (j < ngv)
        for (int s = j; s < cap; s += ngv) {
            float e = sc[s];
            if (e == 0.0f) continue;
            float v = s == s_now ? rv[i] : f32 ? Vf[(size_t)s * crow + i] : vload_half((size_t)s * crow + i, Vh);
            acc += e * v;
        }
    part4[lid] = acc;
    barrier(CLK_LOCAL_MEM_FENCE);
    if (lid < hd) {
        float o = 0.0f;
        for (int k = 0; k < ngv; k++) o += part4[k * hd + lid];
        dst[P.off[15] + (size_t)h * hd + lid] = l > 0.0f ? o / l : 0.0f;
    }
}
