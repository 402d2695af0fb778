/* embed.cl: RTR_OP_EMBED, the token-row gather. dst[r][j] = table[ids[r]][j] * scale for tables of
 * f32, f16, bf16 or q8r (int8 rows padded to 64, then one f32 scale per row). An id outside the
 * table gives a zero row (the engine checks ids before they reach the device).
 * Global size: (d rounded up, rows). */
__kernel void embed(__global float *dst, __global const uchar *tab, __global const int *ids,
                    rtr_params P) {
    const int type = P.i[0], n_rows = P.i[1], d = P.i[2];
    int j = get_global_id(0), r = get_global_id(1);
    if (j >= d) return;
    dst += P.off[0];
    tab += P.off[1];
    ids += P.off[2];
    int id = ids[r];
    float v = 0.0f;
    if (id >= 0 && id < n_rows) {
        size_t e = (size_t)id * d + j;
        if (type == 0) v = ((__global const float *)tab)[e];
        else if (type == 1) v = vload_half(e, (__global const half *)tab);
        else if (type == 2) v = as_float((uint)((__global const ushort *)tab)[e] << 16);
        else if (type == 4) {
            size_t rb = (size_t)(d + 63) / 64 * 64;
            float sc = ((__global const float *)(tab + (size_t)n_rows * rb))[id];
            v = (float)((__global const char *)tab)[(size_t)id * rb + j] * sc;
        }
    }
    dst[(size_t)r * d + j] = v * P.f[0];
}
