/* rope_kv.cl: RTR_OP_ROPE and RTR_OP_KV_STORE, alone or fused (the q RoPE, the k RoPE and the
 * store of k and v into the ring become one launch). Heads [0, nh0) of x0 and [nh0, nh0+nh1) of x1
 * are rotated in place: half-split (NeoX) pairs (i, i + rot_dim/2), pair i's inverse frequency
 * tab[i] (the host's table), cos/sin by rope_cs.
 * With store set, the (rotated) x1 heads and the nh1 heads of v also go to slot slot[r] of the
 * caches kc / vc (f16, round to nearest even, or f32; slots outside [0, max_slots) skipped).
 * A plain KV_STORE is the case nh0 = 0, rot_dim = 0.
 * Params: off x0, pos, x1, v, kc, vc, slot (caches in elements of their type), tab; i nh0, nh1,
 * head_dim, rot_dim, store, max_slots, kv_f32, cache row (elements).
 * Global size: (head_dim rounded up, nh0 + nh1 + (store ? nh1 : 0), rows). */
__kernel void rope_kv(__global float *x0, __global const int *pos, __global float *x1,
                      __global const float *v, __global float *kc, __global float *vc,
                      __global const int *slot, __global const float *tab, rtr_params P) {
    const int nh0 = P.i[0], nh1 = P.i[1], hd = P.i[2], rd = P.i[3], store = P.i[4], f32 = P.i[6];
    int j = get_global_id(0), hh = get_global_id(1), r = get_global_id(2), half_ = rd / 2;
    if (j >= hd) return;
    int s = -1;
    if (store) {
        s = slot[P.off[6] + r];
        if (s < 0 || s >= P.i[5]) s = -1;
    }
    size_t crow = (size_t)(s < 0 ? 0 : s) * P.i[7];
    if (hh >= nh0 + nh1) {
        int vh = hh - nh0 - nh1;
        float vv = v[P.off[3] + ((size_t)r * nh1 + vh) * hd + j];
        if (s >= 0) cache_put(vc, P.off[5] + crow + (size_t)vh * hd + j, vv, f32);
        return;
    }
    int isk = hh >= nh0, put = isk && s >= 0;
    __global float *x = isk ? x1 + P.off[2] + ((size_t)r * nh1 + (hh - nh0)) * hd
                            : x0 + P.off[0] + ((size_t)r * nh0 + hh) * hd;
    size_t ci = P.off[4] + crow + (size_t)(hh - nh0) * hd;
    if (j < half_) {
        float2 cs = rope_cs((float)pos[P.off[1] + r], tab[P.off[7] + j]);
        float c = cs.x, sn = cs.y;
        float a0 = x[j], a1 = x[j + half_];
        float y0 = a0 * c - a1 * sn, y1 = a1 * c + a0 * sn;
        x[j] = y0;
        x[j + half_] = y1;
        if (put) {
            cache_put(kc, ci + j, y0, f32);
            cache_put(kc, ci + j + half_, y1, f32);
        }
    } else if (j >= rd && put) {
        cache_put(kc, ci + j, x[j], f32);
    }
}
