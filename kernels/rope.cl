/* rope.cl: RTR_OP_ROPE, in-place half-split (NeoX) rotation of x [rows][n_head][head_dim], the
 * first rot_dim dims of each head, position per row. Angles follow the CPU reference: float32
 * inverse frequency and angle, cos/sin evaluated in double where the device has it.
 * Global size: (rot_dim / 2, n_head, rows). */
__kernel void rope(__global float *x, __global const int *pos, rtr_params P) {
    const int n_head = P.i[0], hd = P.i[1], rd = P.i[2];
    const float theta = P.f[0];
    int i = get_global_id(0), h = get_global_id(1), r = get_global_id(2), half_ = rd / 2;
    if (i >= half_) return;
    x += P.off[0] + ((size_t)r * n_head + h) * hd;
    float p = (float)pos[P.off[1] + r];
#ifdef cl_khr_fp64
    float e = (float)((double)(2 * i) / (double)rd);
    float inv = (float)(1.0 / (double)(float)pow((double)theta, (double)e));
    float ang = p * inv;
    float c = (float)cos((double)ang), s = (float)sin((double)ang);
#else
    float inv = 1.0f / pow(theta, (float)(2 * i) / (float)rd);
    float ang = p * inv;
    float c = cos(ang), s = sin(ang);
#endif
    float x0 = x[i], x1 = x[i + half_];
    x[i] = x0 * c - x1 * s;
    x[i + half_] = x1 * c + x0 * s;
}
