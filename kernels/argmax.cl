/* argmax.cl: RTR_OP_ARGMAX, greedy decoding's choice without sending the logits back. One
 * work-group a row (any power-of-two size up to AM_WG_MAX): each work-item scans every
 * (size)-th value of the row, AM_UNROLL reads in flight, keeping the first largest it sees; a
 * tree in local memory then keeps the larger of two, the lower index of equals. A NaN counts
 * as -inf, except a NaN first value, which counts as +inf: the sequential rule of backend.h.
 * Params: off a, dst; i n. */
#define AM_WG_MAX 1024
#define AM_UNROLL 16

__kernel void argmax(__global const float *a, __global int *dst, rtr_params P) {
    __local float bv[AM_WG_MAX];
    __local int bi[AM_WG_MAX];
    const int n = P.i[0], l = get_local_id(0), wg = get_local_size(0), r = get_group_id(0);
    __global const float *x = a + P.off[0] + (size_t)r * n;
    float best = -INFINITY;
    int bidx = -1; /* none yet */
    for (int base = 0; base < n; base += wg * AM_UNROLL) {
        float v[AM_UNROLL];
        #pragma unroll
        for (int u = 0; u < AM_UNROLL; u++) {
            int i = base + u * wg + l;
            v[u] = i < n ? x[i] : 0.0f;
        }
        #pragma unroll
        for (int u = 0; u < AM_UNROLL; u++) {
            int i = base + u * wg + l;
            float y = isnan(v[u]) ? (i == 0 ? INFINITY : -INFINITY) : v[u];
            if (i < n && (bidx < 0 || y > best)) {
                best = y;
                bidx = i;
            }
        }
    }
    bv[l] = best;
    bi[l] = bidx;
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
    if (l == 0) dst[P.off[1] + r] = bi[0];
}
