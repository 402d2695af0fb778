/* attn_dec.cl: RTR_OP_ATTN of one query row (decode), one query head a work-group, head_dim 64,
 * 128 or 256, f16 or f32 caches with whole-vector alignment: attn.cl's attn1 laid out so that a
 * chunk of the ring costs two round trips to memory instead of five or six. A work-group of
 * AD_WG work-items per (query head, split of the ring) walks its split in chunks of
 * AD_WG * 64 / head_dim slots. First round trip: the query position, the query row, the chunk's
 * slot positions (and, for a short ring in splits, every slot position, to learn which splits
 * see anything, as attn1s does). Second: each work-item reads 64 dims of one key row and 8 dims
 * of 8 value rows, all at once, for the visible slots. Scores are joined across the
 * head_dim / 64 work-items of a key row, the softmax runs online across chunks, and the value
 * sums of the 8-dim pieces meet in local memory at the end.
 * Params and results as attn.cl's (the same part records and merge: with several splits the last
 * one to finish merges them when i[11] is set); i[12] = 1: splits with nothing visible stop early
 * (attn1s). The host picks this kernel only where it applies. */
#define AD_WG 256
#define AD_KP 8 /* 8-dim pieces of a key row a work-item reads: 64 dims */
#define AD_VR 8 /* value rows a work-item reads a chunk */

inline float8 ad_ld8(__global const float *base32, size_t i, int f32) {
    return f32 ? ld8_f32(base32 + i) : ld8_f16((__global const half *)base32 + i);
}

inline int ad_visible(int sp, int p, int n_sink, int window) {
    return sp >= 0 && sp <= p && (sp < n_sink || p - sp < window);
}

/* The kernels' body; the local arrays are AD_LOCALS'. */
inline void attn_dec_body(__global const float *q, __global const float *Kf, __global const float *Vf,
                          __global const int *spos, __global const int *qpos, __global float *dst,
                          __global float *part, __global int *cnt, rtr_params P, __local float *ql,
                          __local float *comb, __local float *red, __local float *sc, __local int *vis,
                          __local int *lastp, __local uint *vmaskp) {
    const int n_head = P.i[0], n_kv = P.i[1], hd = P.i[2], cap = P.i[3], n_sink = P.i[4], window = P.i[5];
    const int n_split = P.i[7], chunk = P.i[8], f32 = P.i[9], skip = P.i[12];
    const float scale = P.f[0];
    const int l = get_local_id(0), h = get_group_id(0), split = get_group_id(1);
    const int tps = hd / 64, spi = AD_WG / tps;     /* work-items a key row, slots a chunk */
    const int pw8 = hd / 8, rpp = AD_WG / pw8;      /* work-items a value row, rows at once */
    const int e8 = 8 * (l % pw8), vr0 = l / pw8;    /* value dims and first row (of the chunk) */
    const int ks = l / tps, kd = (l % tps) * 64;    /* key slot (of the chunk) and first dim */
    const int kvh = h / (n_head / n_kv);
    const size_t kvs = (size_t)n_kv * hd;
    /* element offsets in the caches' own type (ad_ld8) */
    const size_t koff = P.off[1] + (size_t)kvh * hd, voff = P.off[2] + (size_t)kvh * hd;
    spos += P.off[3];

    /* round trip 1: position, query row, slot positions */
    int p = qpos[P.off[4]];
    if (l < hd) ql[l] = q[P.off[0] + (size_t)h * hd + l];
    int s0 = split * chunk, s1 = min(cap, s0 + chunk);
    uint mine = 0u;
    if (skip)
        for (int s = l; s < cap; s += AD_WG)
            if (ad_visible(spos[s], p, n_sink, window)) mine |= 1u << (s / chunk);
    if (l == 0) *vmaskp = 0u;
    int first = 1, nse = n_split;
    float mrun = -INFINITY, lpriv = 0.0f;
    float8 acc = (float8)(0.0f);
    barrier(CLK_LOCAL_MEM_FENCE);
    if (mine) atomic_or(vmaskp, mine);
    uint mask = 0xffffffffu;
    for (int base = s0; base < s1; base += spi) {
        if (l < spi) vis[l] = base + l < s1 && ad_visible(spos[base + l], p, n_sink, window);
        barrier(CLK_LOCAL_MEM_FENCE);
        if (first && skip) {
            mask = *vmaskp;
            if (!(mask >> split & 1u) && (mask || split)) return; /* uniform */
            if (popcount(mask) <= 1) nse = 1;
        }
        first = 0;
        /* round trip 2: this work-item's piece of one key row and of AD_VR value rows */
        float8 kk[AD_KP], vv[AD_VR];
        int kvis = vis[ks];
        size_t kr = koff + (size_t)(base + ks) * kvs + kd;
        #pragma unroll
        for (int u = 0; u < AD_KP; u++) kk[u] = kvis ? ad_ld8(Kf, kr + 8 * u, f32) : (float8)(0.0f);
        #pragma unroll
        for (int u = 0; u < AD_VR; u++) {
            int j = vr0 + u * rpp;
            vv[u] = vis[j] ? ad_ld8(Vf, voff + (size_t)(base + j) * kvs + e8, f32) : (float8)(0.0f);
        }
        float d = 0.0f;
        #pragma unroll
        for (int u = 0; u < AD_KP; u++) {
            float8 qq = ld8_lf(ql + kd + 8 * u);
            d += dot(kk[u].lo, qq.lo) + dot(kk[u].hi, qq.hi);
        }
        red[l] = d;
        barrier(CLK_LOCAL_MEM_FENCE);
        float v = -INFINITY;
        if (l < spi && vis[l]) {
            float s = 0.0f;
            for (int t = 0; t < tps; t++) s += red[l * tps + t];
            v = s * scale;
        }
        /* (sc is free here: its last readers passed the barrier that ended the last chunk) */
        float mn = fmax(mrun, wg_max(v, sc));
        if (mn == -INFINITY) continue; /* nothing visible yet (uniform); wg_max ended on a barrier */
        float corr = mrun == -INFINITY ? 0.0f : exp(mrun - mn);
        mrun = mn;
        float pv = v == -INFINITY ? 0.0f : exp(v - mn);
        if (l < spi) sc[l] = pv;
        lpriv = lpriv * corr + pv;
        barrier(CLK_LOCAL_MEM_FENCE);
        acc *= corr;
        #pragma unroll
        for (int u = 0; u < AD_VR; u++) acc += sc[vr0 + u * rpp] * vv[u];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    float lsum = wg_sum(lpriv, red);
    vstore8(acc, 0, comb + vr0 * hd + e8);
    barrier(CLK_LOCAL_MEM_FENCE);
    if (l < hd) {
        float a = 0.0f;
        for (int g = 0; g < rpp; g++) a += comb[g * hd + l];
        attn_out(dst, P.off[5], part, P.off[6], (size_t)h, split, nse, hd, l, a, mrun, lsum);
    }
    if (nse == 1 || !P.i[11]) return;
    barrier(CLK_GLOBAL_MEM_FENCE); /* this split's results written */
    if (l == 0) {
        mem_fence(CLK_GLOBAL_MEM_FENCE);
        *lastp = atomic_inc(cnt + h) == (skip ? (int)popcount(mask) : n_split) - 1;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    if (*lastp) attn_merge_here(dst, P.off[5], part, P.off[6], cnt, h, (size_t)h, 1, hd, n_split, mask, AD_WG);
}

/* float4 arrays: ld8_lf and vstore8 read and write the query row and comb a vector at a time,
 * which NVIDIA's devices need aligned to 16 bytes */
#define AD_LOCALS                                                                                 \
    __local float4 ql4[64], comb4[AD_WG * 2];                                                     \
    __local float red[AD_WG], sc[AD_WG];                                                          \
    __local int vis[AD_WG], last;                                                                 \
    __local uint vmask
#define AD_LOCAL_ARGS (__local float *)ql4, (__local float *)comb4, red, sc, vis, &last, &vmask

__kernel __attribute__((reqd_work_group_size(AD_WG, 1, 1))) void attn_dec(ATTN_ARGS) {
    AD_LOCALS;
    attn_dec_body(q, Kf, Vf, spos, qpos, dst, part, cnt, P, AD_LOCAL_ARGS);
}

/* the same with the session's block A for q, the caches, the slot and query positions and dst
 * (opencl_ops.c, pooled): three arguments instead of eight */
__kernel __attribute__((reqd_work_group_size(AD_WG, 1, 1))) void attn_dec_p(__global uchar *A, __global float *part,
                                                                          __global int *cnt, rtr_params P) {
    AD_LOCALS;
    __global const float *f = (__global const float *)A;
    attn_dec_body(f, f, f, (__global const int *)A, (__global const int *)A, (__global float *)A, part, cnt, P,
                  AD_LOCAL_ARGS);
}
