/* kv_store.cl: RTR_OP_KV_STORE. Row r of k and v goes into slot slot[r] of the two ring caches,
 * as f16 (round to nearest even) or, with P.i[2] set, as f32; slots outside [0, max_slots) are
 * skipped. Cache offsets are in elements of the cache type. Global size: (n rounded up, rows). */
__kernel void kv_store(__global float *kc, __global float *vc, __global const float *k,
                       __global const float *v, __global const int *slot, rtr_params P) {
    const int n = P.i[0], max_slots = P.i[1], f32 = P.i[2];
    int j = get_global_id(0), r = get_global_id(1);
    if (j >= n) return;
    int s = slot[P.off[4] + r];
    if (s < 0 || s >= max_slots) return;
    size_t src = (size_t)r * n + j, d = (size_t)s * n + j;
    float kv = k[P.off[2] + src], vv = v[P.off[3] + src];
    if (f32) {
        kc[P.off[0] + d] = kv;
        vc[P.off[1] + d] = vv;
    } else {
        vstore_half_rte(kv, d, (__global half *)kc + P.off[0]);
        vstore_half_rte(vv, d, (__global half *)vc + P.off[1]);
    }
}
