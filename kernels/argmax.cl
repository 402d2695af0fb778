/* argmax.cl: RTR_OP_ARGMAX, greedy decoding's choice without sending the logits back.
 * argmax: one work-group a row (any power-of-two size up to AM_WG_MAX); argmax_split: a row over
 * several work-groups, each a stretch of it, the last of a row to finish joining their results
 * (one work-group reads a 128256-logit row at a fraction of the device's bandwidth). A
 * work-item scans every (size)-th value of its stretch, AM_UNROLL reads in flight, keeping the
 * first largest it sees; a tree in local memory then keeps the larger of two, the lower index
 * of equals. A NaN counts as -inf, except a NaN first value, which counts as +inf: the
 * sequential rule of backend.h.
 * Params: off a, dst (argmax_split: part, its (value, index) pairs, a row's after another);
 * i n (argmax_split: i[1] the stretch a work-group scans). */
#define AM_WG_MAX 1024
#define AM_UNROLL 16

/* values lo .. hi of x: this work-item's first largest */
inline void am_scan(__global const float *x, int lo, int hi, int l, int wg, float *best, int *bidx) {
    for (int base = lo; base < hi; base += wg * AM_UNROLL) {
        float v[AM_UNROLL];
        #pragma unroll
        for (int u = 0; u < AM_UNROLL; u++) {
            int i = base + u * wg + l;
            v[u] = i < hi ? x[i] : 0.0f;
        }
        #pragma unroll
        for (int u = 0; u < AM_UNROLL; u++) {
            int i = base + u * wg + l;
            float y = isnan(v[u]) ? (i == 0 ? INFINITY : -INFINITY) : v[u];
            if (i < hi && (*bidx < 0 || y > *best)) {
                *best = y;
                *bidx = i;
            }
        }
    }
}

/* the work-group's first largest of the (bv, bi) pairs (index -1: none) into bv[0], bi[0] */
inline void am_tree(__local float *bv, __local int *bi, int l, int wg) {
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = wg / 2; s > 0; s >>= 1) {
        if (l < s) {
            float ov = bv[l + s];
            int oi = bi[l + s];
            if (oi >= 0 && (bi[l] < 0 || ov > bv[l] || (ov == bv[l] && oi < bi[l]))) {
                bv[l] = ov;
                bi[l] = oi;
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}

__kernel void argmax(__global const float *a, __global int *dst, rtr_params P) {
    __local float bv[AM_WG_MAX];
    __local int bi[AM_WG_MAX];
    const int n = P.i[0], l = get_local_id(0), wg = get_local_size(0), r = get_group_id(0);
    float best = -INFINITY;
    int bidx = -1; /* none yet */
    am_scan(a + P.off[0] + (size_t)r * n, 0, n, l, wg, &best, &bidx);
    bv[l] = best;
    bi[l] = bidx;
    am_tree(bv, bi, l, wg);
    if (l == 0) dst[P.off[1] + r] = bi[0];
}

/* Global size (groups x size, rows); cnt[row] counts the row's finished work-groups and is put
 * back to 0 by the last, which joins the pairs (read through a volatile pointer: the other
 * work-groups wrote them). Every barrier is reached by every work-group. */
__kernel void argmax_split(__global const float *a, __global int *dst, __global float *part, __global int *cnt,
                           rtr_params P) {
    __local float bv[AM_WG_MAX];
    __local int bi[AM_WG_MAX];
    __local int lastp;
    const int n = P.i[0], chunk = P.i[1], l = get_local_id(0), wg = get_local_size(0);
    const int g = get_group_id(0), ng = get_num_groups(0), r = get_group_id(1);
    const int lo = g * chunk, hi = min(n, lo + chunk);
    float best = -INFINITY;
    int bidx = -1;
    am_scan(a + P.off[0] + (size_t)r * n, lo, hi, l, wg, &best, &bidx);
    bv[l] = best;
    bi[l] = bidx;
    am_tree(bv, bi, l, wg);
    __global float *pr = part + P.off[2] + (size_t)r * ng * 2;
    if (l == 0) {
        pr[2 * g] = bv[0];
        pr[2 * g + 1] = as_float(bi[0]);
    }
    barrier(CLK_GLOBAL_MEM_FENCE); /* this work-group's pair written */
    if (l == 0) {
        mem_fence(CLK_GLOBAL_MEM_FENCE);
        lastp = atomic_inc(cnt + r) == ng - 1;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    const int last = lastp;
    best = -INFINITY;
    bidx = -1;
    if (last) {
        mem_fence(CLK_GLOBAL_MEM_FENCE);
        __global volatile const float *vp = pr;
        for (int j = l; j < ng; j += wg) {
            float v = vp[2 * j];
            int i = as_int(vp[2 * j + 1]);
            if (i >= 0 && (bidx < 0 || v > best || (v == best && i < bidx))) {
                best = v;
                bidx = i;
            }
        }
    }
    bv[l] = best;
    bi[l] = bidx;
    am_tree(bv, bi, l, wg);
    if (last && l == 0) {
        dst[P.off[1] + r] = bi[0];
        cnt[r] = 0;
    }
}
