/* kv_store.cl: RTR_OP_KV_STORE. Row r of k and v goes, as f16 (round to nearest even), into slot
 * slot[r] of the two ring caches; slots outside [0, max_slots) are skipped.
 * Global size: (n rounded up, rows). */
__kernel void kv_store(__global half *kc, __global half *vc, __global const float *k,
                       __global const float *v, __global const int *slot, rtr_params P) {
    const int n = P.i[0], max_slots = P.i[1];
    int j = get_global_id(0), r = get_global_id(1);
    if (j >= n) return;
    int s = slot[P.off[4] + r];
    if (s < 0 || s >= max_slots) return;
    size_t src = (size_t)r * n + j, d = (size_t)s * n + j;
    vstore_half_rte(k[P.off[2] + src], d, kc + P.off[0]);
    vstore_half_rte(v[P.off[3] + src], d, vc + P.off[1]);
}
