/* rmsnorm.cl: RTR_OP_RMSNORM and RTR_OP_QUANT, one work-group per row.
 * Flags (P.i[1]): 1 residual (a += b first, written back), 2 weight c, 4 write dst,
 * 8 quantize into q/qs, 16 no normalization (QUANT: the row itself is quantized), 32 the row is
 * first computed as act(ga) * gb and written to a (a GLU op fused in front; act in P.i[3]).
 * The normalized value is computed as x * inv * w in every pass so the quantizer sees exactly
 * what dst receives; with dst aliasing a, the quantizer reads dst instead. */
__kernel void rmsnorm(__global float *a, __global const float *b, __global const float *w,
                      __global float *dst, __global char *q, __global float *qs,
                      __global const float *ga, __global const float *gb, rtr_params P) {
    __local float red[256];
    const int n = P.i[0], fl = P.i[1], kpad = P.i[2];
    const float eps = P.f[0];
    int r = get_group_id(0), l = get_local_id(0), nl = get_local_size(0);
    a += P.off[0] + (size_t)r * n;
    b += P.off[1] + (size_t)r * n;
    w += P.off[2];
    dst += P.off[3] + (size_t)r * n;
    /* every work-item reaches both reductions whatever the flags: no barrier is conditional */
    float ss = 0.0f;
    for (int i = l; i < n; i += nl) {
        float x;
        if (fl & 32) {
            x = glu_act(ga[P.off[6] + (size_t)r * n + i], P.i[3]) * gb[P.off[7] + (size_t)r * n + i];
            a[i] = x;
        } else x = a[i];
        if (fl & 1) {
            x += b[i];
            a[i] = x;
        }
        ss += x * x;
    }
    ss = wg_sum(ss, red);
    float inv = (fl & 16) ? 1.0f : 1.0f / sqrt(ss / (float)n + eps);
    float m = 0.0f;
    for (int i = l; i < n; i += nl) {
        float y = (fl & 16) ? a[i] : a[i] * inv * ((fl & 2) ? w[i] : 1.0f);
        if (fl & 4) dst[i] = y;
        float ab = fabs(y);
        if (ab > m) m = ab;
    }
    m = wg_max(m, red);
    if (!(fl & 8)) return;
    if (!(m > 1e-5f)) m = 1e-5f;
    float s = 127.0f / m;
    q += P.off[4] + (size_t)r * kpad;
    for (int i = l; i < kpad; i += nl) {
        char c = 0;
        if (i < n) {
            float y = (fl & 4) ? dst[i] : (fl & 16) ? a[i] : a[i] * inv * ((fl & 2) ? w[i] : 1.0f);
            c = quant_i8(y, s);
        }
        q[i] = c;
    }
    if (l == 0) qs[P.off[5] + r] = m / 127.0f;
}
