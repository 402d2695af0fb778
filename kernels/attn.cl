/* attn.cl: RTR_OP_ATTN over the KV ring, f32 math on the f16 caches.
 * The caches are f16, or f32 when P.i[9] is set (offsets in elements of that type).
 * attn: one work-group per (query row, group of hg query heads sharing one KV head, split of
 * the ring). It walks its slots AWG at a time: each work-item scores one slot against the hg
 * query heads, an online softmax keeps a running max and sum per head, and each work-item
 * accumulates hg outputs of one head dimension (several work-items split the slots when
 * head_dim < AWG). When head_dim is a multiple of 8 and hg <= ATTN_HG8 (every model rotor
 * knows), the values go the way attn.comp reads them instead: a work-item owns 8 dims of every head and every
 * (AWG / (head_dim / 8))-th slot, ATTN_VB8 rows' reads in flight, and the partial sums meet in
 * local memory at the end; each row then takes a few round trips to memory, not one per slot.
 * With one split it writes the normalized output; with several it writes
 * (max, sum, unnormalized acc[head_dim]) per split, and the work-group that finishes last (a
 * counter per (row, group) in cnt, which it puts back to 0) combines them; with P.i[11] = 0
 * attn_merge does that as a launch of its own.
 * Visibility: 0 <= spos <= qpos and (spos < n_sink or qpos - spos < window).
 * Params: off q, K, V, spos, qpos, dst, part; i n_head, n_kv, head_dim, cap, n_sink, window,
 * hg, n_split, chunk, kv_f32, aligned (head_dim and both caches' offsets multiples of 8: every
 * 8-dim piece of a row starts on 16 bytes, whole-vector loads), merge here; f scale. Limits
 * (checked by the host): head_dim <= ATTN_HD_MAX, hg <= ATTN_HG_MAX. */
#define AWG 128
#define ATTN_HG_MAX 8
#define ATTN_HD_MAX 256
#define ATTN_DPT (ATTN_HD_MAX / AWG)
#define ATTN_VB 8 /* value rows a work-item reads at once */
#define ATTN_VB8 8 /* and 8-dim pieces of value rows, in the 8-dims layout (8 measured faster than 4 on the H100) */
#define ATTN_KB 8 /* 8-dim pieces of a key row read at once */
#define ATTN_HG8 4 /* most query heads a work-group in the 8-dims layout (its local memory) */
#if ATTN_HG_MAX * ATTN_HD_MAX + ATTN_HG_MAX * AWG > ATTN_HG8 * 8 * AWG
#error "attn: ql and sc must fit where comb goes"
#endif

/* Dim d of head rh's result: a (its weighted value sum) with the head's running max m and sum ls,
 * normalized into dst with one split, else stored with m and ls in the split's record of part
 * (max, sum, acc[head_dim]). dst_off, part_off: the buffers' element offsets. */
inline void attn_out(__global float *dst, ulong dst_off, __global float *part, ulong part_off, size_t rh, int split,
                     int n_split, int hd, int d, float a, float m, float ls) {
    if (n_split == 1) {
        dst[dst_off + rh * hd + d] = ls > 0.0f ? a / ls : 0.0f;
        return;
    }
    __global float *pp = part + part_off + (rh * n_split + split) * (hd + 2);
    pp[2 + d] = a;
    if (d == 0) {
        pp[0] = m;
        pp[1] = ls;
    }
}

/* Dim d of a head's result from its n_split records in pp (max, sum, acc[head_dim] each):
 * sum_s acc_s e^(m_s - M) / sum_s l_s e^(m_s - M). Read through a volatile pointer, so that a
 * split merging in the attention launch sees the other splits' records, not what a cache of its
 * compute unit holds from an earlier launch. */
inline float split_merge(__global volatile const float *pp, int n_split, int hd, int d, uint mask) {
    float M = -INFINITY;
    for (int s = 0; s < n_split; s++)
        if (mask >> s & 1u) M = fmax(M, pp[(size_t)s * (hd + 2)]);
    float L = 0.0f, a = 0.0f;
    if (M != -INFINITY)
        for (int s = 0; s < n_split; s++) {
            if (!(mask >> s & 1u)) continue;
            float m = pp[(size_t)s * (hd + 2)];
            if (m == -INFINITY) continue;
            float e = exp(m - M);
            L += pp[(size_t)s * (hd + 2) + 1] * e;
            a += pp[(size_t)s * (hd + 2) + 2 + d] * e;
        }
    return L > 0.0f ? a / L : 0.0f;
}

/* Split merging in the attention launch: each split with a visible slot (bit s of mask) counts
 * itself done in cnt[g] once its records are written, and the last to arrive merges them for
 * its hg heads (rows rh0 ..), then puts the counter back to 0 for the next launch. wg: the
 * work-group's size. */
inline void attn_merge_here(__global float *dst, ulong dst_off, __global float *part, ulong part_off,
                            __global int *cnt, int g, size_t rh0, int hg, int hd, int n_split, uint mask, int wg) {
    int l = get_local_id(0);
    mem_fence(CLK_GLOBAL_MEM_FENCE);
    for (int i = l; i < hg * hd; i += wg) {
        int h = i / hd, d = i % hd;
        __global const float *pp = part + part_off + (rh0 + h) * n_split * (hd + 2);
        dst[dst_off + (rh0 + h) * hd + d] = split_merge(pp, n_split, hd, d, mask);
    }
    if (l == 0) cnt[g] = 0;
}

/* The body of the attn kernels below; HGM (a constant once inlined) is the most query heads a
 * work-group takes, which sizes its registers: the host picks the kernel built for the fewest
 * that hold hg. */
inline void attn_body(__global const float *q, __global const float *Kf, __global const float *Vf,
                      __global const int *spos, __global const int *qpos, __global float *dst,
                      __global float *part, __global int *cnt, rtr_params P, const int HGM,
                      __local float *lmem, __local int *vis, __local int *nvisp, __local int *lastp,
                      __local uint *maskp, const int SKIP) {
    __local float *red = lmem, *ql = lmem + ATTN_HG_MAX * AWG, *sc = ql + ATTN_HG_MAX * ATTN_HD_MAX;
    __local float *comb = ql; /* ATTN_HG8 * 8 * AWG floats */
    const int n_head = P.i[0], n_kv = P.i[1], hd = P.i[2], cap = P.i[3], n_sink = P.i[4];
    const int window = P.i[5], hg = P.i[6], n_split = P.i[7], chunk = P.i[8], f32 = P.i[9], al = P.i[10];
    const float scale = P.f[0];
    int l = get_local_id(0), g = get_group_id(0), split = get_group_id(1);
    int ngr = n_head / hg, r = g / ngr, h0 = (g % ngr) * hg, kvh = h0 / (n_head / n_kv);
    int p = qpos[P.off[4] + r];
    q += P.off[0] + ((size_t)r * n_head + h0) * hd;
    for (int i = l; i < hg * hd; i += AWG) ql[i] = q[i];
    size_t kvs = (size_t)n_kv * hd;
    __global const half *K = (__global const half *)Kf + P.off[1] + (size_t)kvh * hd;
    __global const half *V = (__global const half *)Vf + P.off[2] + (size_t)kvh * hd;
    Kf += P.off[1] + (size_t)kvh * hd;
    Vf += P.off[2] + (size_t)kvh * hd;
    spos += P.off[3];
    /* Short rings split here (SKIP, a build of its own that the host launches only for splits
     * merged here: the code alone slowed the other cases) skip what they cannot see: every
     * work-group works out alike, from the slot positions, which splits hold a visible slot;
     * the others stop now, and a single visible split (or split 0, when nothing is visible)
     * writes the result itself. nse: the splits this work-group's result is one of (1:
     * straight to dst). The barriers sit under no run-time condition (PoCL, see matmul_t2.cl). */
    int nse = n_split;
    uint mask = 0xffffffffu; /* splits that take part (without SKIP, all n_split) */
    if (SKIP) {
        if (l == 0) *maskp = 0u;
        barrier(CLK_LOCAL_MEM_FENCE);
        uint mine = 0u;
        for (int s = l; s < cap; s += AWG) {
            int sp = spos[s];
            if (sp >= 0 && sp <= p && (sp < n_sink || p - sp < window)) mine |= 1u << (s / chunk);
        }
        if (mine) atomic_or(maskp, mine);
        barrier(CLK_LOCAL_MEM_FENCE);
        mask = *maskp;
        if (!(mask >> split & 1u) && (mask || split)) return; /* uniform */
        if (popcount(mask) <= 1) nse = 1;
    }

    /* the V phase: work-item l owns dims d0, d0 + AWG, ... of every head, for slots j = sub
     * (mod nsub) of each chunk */
    int nsub = hd <= AWG ? AWG / hd : 1;
    int d0 = hd <= AWG ? l % hd : l, sub = hd <= AWG ? l / hd : 0;
    int vact = sub < nsub;
    /* the 8-dims layout: work-item l owns dims e8 .. e8 + 7 of slots j = sub8 (mod nsub8) */
    int v8 = hd % 8 == 0 && hg <= ATTN_HG8, pw8 = max(hd / 8, 1); /* (no division by 0 where hd < 8) */
    int nsub8 = v8 ? AWG / pw8 : 1, e8 = v8 ? 8 * (l % pw8) : 0, sub8 = v8 ? l / pw8 : 0;
    float acc[ATTN_HG_MAX][ATTN_DPT], mrun[ATTN_HG_MAX], lpriv[ATTN_HG_MAX];
    float8 acc8[ATTN_HG_MAX];
    for (int h = 0; h < HGM; h++) {
        mrun[h] = -INFINITY;
        lpriv[h] = 0.0f;
        acc8[h] = (float8)(0.0f);
        for (int t = 0; t < ATTN_DPT; t++) acc[h][t] = 0.0f;
    }
    int s0 = split * chunk, s1 = min(cap, s0 + chunk);
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int base = s0; base < s1; base += AWG) {
        int s = base + l, ok = 0;
        if (s < s1) {
            int sp = spos[s];
            ok = sp >= 0 && sp <= p && (sp < n_sink || p - sp < window);
        }
        if (l == 0) *nvisp = 0;
        barrier(CLK_LOCAL_MEM_FENCE);
        if (ok) atomic_inc(nvisp);
        vis[l] = ok;
        float sv[ATTN_HG_MAX];
        for (int h = 0; h < HGM; h++) sv[h] = 0.0f;
        if (ok) {
            __global const half *kr = K + (size_t)s * kvs;
            __global const float *kr32 = Kf + (size_t)s * kvs;
            int d = 0;
            /* ATTN_KB pieces' reads in flight at once */
            for (; d + 8 * ATTN_KB <= hd; d += 8 * ATTN_KB) {
                float8 kk[ATTN_KB];
                #pragma unroll
                for (int u = 0; u < ATTN_KB; u++)
                    kk[u] = al ? (f32 ? ld8_f32(kr32 + d + 8 * u) : ld8_f16(kr + d + 8 * u))
                               : (f32 ? vload8(0, kr32 + d + 8 * u) : vload_half8(0, kr + d + 8 * u));
                #pragma unroll
                for (int u = 0; u < ATTN_KB; u++)
                    for (int h = 0; h < HGM; h++)
                        if (h < hg) {
                            float8 qq = al ? ld8_lf(ql + h * hd + d + 8 * u) : vload8(0, ql + h * hd + d + 8 * u);
                            sv[h] += dot(kk[u].lo, qq.lo) + dot(kk[u].hi, qq.hi);
                        }
            }
            for (; d + 8 <= hd; d += 8) {
                float8 kk = f32 ? vload8(0, kr32 + d) : vload_half8(0, kr + d);
                for (int h = 0; h < HGM; h++)
                    if (h < hg) {
                        float8 qq = vload8(0, ql + h * hd + d);
                        sv[h] += dot(kk.lo, qq.lo) + dot(kk.hi, qq.hi);
                    }
            }
            for (; d < hd; d++) {
                float kk = f32 ? kr32[d] : vload_half(d, kr);
                for (int h = 0; h < HGM; h++)
                    if (h < hg) sv[h] += kk * ql[h * hd + d];
            }
        }
        for (int h = 0; h < HGM; h++)
            if (h < hg) {
                float v = ok ? sv[h] * scale : -INFINITY;
                sc[h * AWG + l] = v;
                red[h * AWG + l] = v;
            }
        barrier(CLK_LOCAL_MEM_FENCE);
        int has = *nvisp, jmax = min(AWG, s1 - base);
        barrier(CLK_LOCAL_MEM_FENCE);
        if (!has) continue;
        for (int st = AWG / 2; st > 0; st >>= 1) {
            if (l < st)
                for (int h = 0; h < HGM; h++)
                    if (h < hg) red[h * AWG + l] = fmax(red[h * AWG + l], red[h * AWG + l + st]);
            barrier(CLK_LOCAL_MEM_FENCE);
        }
        float corr[ATTN_HG_MAX];
        for (int h = 0; h < HGM; h++) {
            corr[h] = 1.0f;
            if (h >= hg) continue;
            float mn = fmax(mrun[h], red[h * AWG]);
            corr[h] = mrun[h] == -INFINITY ? 0.0f : exp(mrun[h] - mn);
            mrun[h] = mn;
            float pv = ok ? exp(sc[h * AWG + l] - mn) : 0.0f;
            sc[h * AWG + l] = pv;
            lpriv[h] = lpriv[h] * corr[h] + pv;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        if (v8) {
            for (int h = 0; h < HGM; h++) acc8[h] *= corr[h];
            if (sub8 < nsub8)
                for (int j0 = sub8; j0 < jmax; j0 += ATTN_VB8 * nsub8) {
                    float8 vv[ATTN_VB8];
                    #pragma unroll
                    for (int u = 0; u < ATTN_VB8; u++) {
                        int j = j0 + u * nsub8;
                        vv[u] = (float8)(0.0f);
                        if (j < jmax && vis[j]) {
                            size_t vi = (size_t)(base + j) * kvs + e8;
                            vv[u] = al ? (f32 ? ld8_f32(Vf + vi) : ld8_f16(V + vi))
                                       : (f32 ? vload8(0, Vf + vi) : vload_half8(0, V + vi));
                        }
                    }
                    #pragma unroll
                    for (int u = 0; u < ATTN_VB8; u++) {
                        int j = j0 + u * nsub8;
                        if (j < jmax && vis[j])
                            for (int h = 0; h < HGM; h++)
                                if (h < hg) acc8[h] += sc[h * AWG + j] * vv[u];
                    }
                }
        } else if (vact) {
            for (int h = 0; h < HGM; h++)
                for (int t = 0; t < ATTN_DPT; t++) acc[h][t] *= corr[h];
            if (has == jmax && hd <= AWG) {
                /* every slot of the chunk visible (the usual case): no test in the loop */
                /* ATTN_VB slots' reads in flight at once, then their sums */
                for (int j0 = sub; j0 < jmax; j0 += ATTN_VB * nsub) {
                    float vv[ATTN_VB];
                    #pragma unroll
                    for (int u = 0; u < ATTN_VB; u++) {
                        int j = j0 + u * nsub;
                        size_t vi = (size_t)(base + (j < jmax ? j : j0)) * kvs + d0;
                        vv[u] = f32 ? Vf[vi] : vload_half(vi, V);
                    }
                    #pragma unroll
                    for (int u = 0; u < ATTN_VB; u++) {
                        int j = j0 + u * nsub;
                        if (j < jmax)
                            for (int h = 0; h < HGM; h++)
                                if (h < hg) acc[h][0] += sc[h * AWG + j] * vv[u];
                    }
                }
            } else {
                for (int j = sub; j < jmax; j += nsub) {
                    if (!vis[j]) continue;
                    __global const half *vr = V + (size_t)(base + j) * kvs;
                    __global const float *vr32 = Vf + (size_t)(base + j) * kvs;
                    for (int t = 0; t < ATTN_DPT; t++) {
                        int d = d0 + t * AWG;
                        if (d < hd && (t == 0 || hd > AWG)) {
                            float vv = f32 ? vr32[d] : vload_half(d, vr);
                            for (int h = 0; h < HGM; h++)
                                if (h < hg) acc[h][t] += sc[h * AWG + j] * vv;
                        }
                    }
                }
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    /* softmax denominators: sum the per-work-item partial sums */
    for (int h = 0; h < HGM; h++)
        if (h < hg) red[h * AWG + l] = lpriv[h];
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int st = AWG / 2; st > 0; st >>= 1) {
        if (l < st)
            for (int h = 0; h < HGM; h++)
                if (h < hg) red[h * AWG + l] += red[h * AWG + l + st];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    float lsum[ATTN_HG_MAX];
    for (int h = 0; h < HGM; h++) lsum[h] = h < hg ? red[h * AWG] : 0.0f;
    /* the partial sums of each (head, dim) meet in local memory, then one work-item a (head, dim)
     * adds them up and writes: in the 8-dims layout nsub8 of them in comb (nsub8 * hd = 8 AWG
     * floats a head), otherwise those of the work-items that split the slots of one dimension in
     * sc (the barrier between stays outside the branches, in uniform control flow) */
    if (v8) {
        for (int h = 0; h < ATTN_HG8; h++)
            if (h < hg && sub8 < nsub8) vstore8(acc8[h], 0, comb + (h * nsub8 + sub8) * hd + e8);
    } else if (vact && sub > 0)
        for (int h = 0; h < HGM; h++)
            if (h < hg) sc[((sub - 1) * hg + h) * hd + d0] = acc[h][0];
    barrier(CLK_LOCAL_MEM_FENCE);
    if (v8)
        for (int i = l; i < hg * hd; i += AWG) {
            int h = i / hd, d = i % hd;
            float a = 0.0f;
            for (int s2 = 0; s2 < nsub8; s2++) a += comb[(h * nsub8 + s2) * hd + d];
            attn_out(dst, P.off[5], part, P.off[6], (size_t)r * n_head + h0 + h, split, nse, hd, d, a, mrun[h],
                     lsum[h]);
        }
    else if (sub == 0 && vact) {
        for (int s2 = 1; s2 < nsub; s2++)
            for (int h = 0; h < HGM; h++)
                if (h < hg) acc[h][0] += sc[((s2 - 1) * hg + h) * hd + d0];
        for (int h = 0; h < HGM; h++) {
            if (h >= hg) break;
            size_t rh = (size_t)r * n_head + h0 + h;
            for (int t = 0; t < ATTN_DPT; t++) {
                int d = d0 + t * AWG;
                if (d >= hd || (t > 0 && hd <= AWG)) continue;
                attn_out(dst, P.off[5], part, P.off[6], rh, split, nse, hd, d, acc[h][t], mrun[h], lsum[h]);
            }
        }
    }
    if (nse == 1 || !P.i[11]) return;
    barrier(CLK_GLOBAL_MEM_FENCE); /* this split's results written */
    if (l == 0) {
        mem_fence(CLK_GLOBAL_MEM_FENCE);
        *lastp = atomic_inc(cnt + g) == (SKIP ? (int)popcount(mask) : n_split) - 1;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    if (*lastp)
        attn_merge_here(dst, P.off[5], part, P.off[6], cnt, g, (size_t)r * n_head + h0, hg, hd, n_split, mask, AWG);
}

#define ATTN_ARGS                                                                                 \
    __global const float *q, __global const float *Kf, __global const float *Vf,                 \
        __global const int *spos, __global const int *qpos, __global float *dst, __global float *part, \
        __global int *cnt, rtr_params P
/* local memory, 20 KB: red, then ql and sc, which the 8-dims layout's partial sums per (head,
 * sub8, dim) (comb) take over once the slots are done */
#define ATTN_BODY(HGM, SKIP)                                                                      \
    __local float4 lmem[(ATTN_HG_MAX * AWG + ATTN_HG8 * 8 * AWG) / 4]; /* >= red + ql + sc too */ \
    __local int vis[AWG];                                                                         \
    __local int nvis, last;                                                                       \
    __local uint vmask;                                                                           \
    attn_body(q, Kf, Vf, spos, qpos, dst, part, cnt, P, HGM, (__local float *)lmem, vis, &nvis, &last, &vmask, SKIP)

__kernel __attribute__((reqd_work_group_size(AWG, 1, 1))) void attn(ATTN_ARGS) { ATTN_BODY(ATTN_HG_MAX, 0); }
/* up to ATTN_HG4 query heads a work-group (2B4T's groups of 4): half the registers */
#define ATTN_HG4 4
__kernel __attribute__((reqd_work_group_size(AWG, 1, 1))) void attn4(ATTN_ARGS) { ATTN_BODY(ATTN_HG4, 0); }
/* and the same skipping splits with nothing visible, for short split rings */
__kernel __attribute__((reqd_work_group_size(AWG, 1, 1))) void attn4s(ATTN_ARGS) { ATTN_BODY(ATTN_HG4, 1); }
/* one query head a work-group (one-row attention: four times the work-groups of attn4 for
 * 2B4T's groups of 4), the fewest registers */
__kernel __attribute__((reqd_work_group_size(AWG, 1, 1))) void attn1(ATTN_ARGS) { ATTN_BODY(1, 0); }
__kernel __attribute__((reqd_work_group_size(AWG, 1, 1))) void attn1s(ATTN_ARGS) { ATTN_BODY(1, 1); }

/* attn_merge: combines the per-split partial results of attn. Global size: (head_dim rounded
 * up, rows * n_head). */
__kernel void attn_merge(__global const float *part, __global float *dst, rtr_params P) {
    const int hd = P.i[2], n_split = P.i[7];
    int d = get_global_id(0);
    size_t rh = get_global_id(1);
    if (d >= hd) return;
    dst[P.off[5] + rh * hd + d] = split_merge(part + P.off[6] + rh * n_split * (hd + 2), n_split, hd, d, 0xffffffffu);
}
