/* glu.cl: the element-wise ops. RTR_OP_GLU: dst = act(a) * b (glu_act in _common.cl; the host
 * fuses a GLU into the RMSNORM that follows it where it can); RTR_OP_ADD: dst += a.
 * Global size: the element count (rounded up); the count arrives as i[0] (low 32 bits) and
 * i[1] (high 32 bits). */
__kernel void glu(__global float *dst, __global const float *a, __global const float *b,
                  rtr_params P) {
    size_t n = (size_t)(uint)P.i[0] | ((size_t)(uint)P.i[1] << 32), i = get_global_id(0);
    if (i >= n) return;
    float y = glu_act(a[P.off[1] + i], P.i[2]);
    dst[P.off[0] + i] = y * b[P.off[2] + i];
}

__kernel void add(__global float *dst, __global const float *a, rtr_params P) {
    size_t n = (size_t)(uint)P.i[0] | ((size_t)(uint)P.i[1] << 32), i = get_global_id(0);
    if (i >= n) return;
    dst[P.off[0] + i] += a[P.off[1] + i];
}
