/* glu.cl: the element-wise ops. RTR_OP_GLU: dst = act(a) * b with act relu2 (0), silu (1) or
 * gelu_tanh (2); RTR_OP_ADD: dst += a. Global size: the element count (rounded up); the count
 * arrives as i[0] (low 32 bits) and i[1] (high 32 bits). */
__kernel void glu(__global float *dst, __global const float *a, __global const float *b,
                  rtr_params P) {
    size_t n = (size_t)(uint)P.i[0] | ((size_t)(uint)P.i[1] << 32), i = get_global_id(0);
    if (i >= n) return;
    float g = a[P.off[1] + i], y;
    if (P.i[2] == 0) {
        float t = g > 0.0f ? g : 0.0f;
        y = t * t;
    } else if (P.i[2] == 1) {
        y = g / (1.0f + exp(-g));
    } else {
        y = 0.5f * g * (1.0f + tanh(0.7978845608f * (g + 0.044715f * g * g * g)));
    }
    dst[P.off[0] + i] = y * b[P.off[2] + i];
}

__kernel void add(__global float *dst, __global const float *a, rtr_params P) {
    size_t n = (size_t)(uint)P.i[0] | ((size_t)(uint)P.i[1] << 32), i = get_global_id(0);
    if (i >= n) return;
    dst[P.off[0] + i] += a[P.off[1] + i];
}
