/* t2_attn_o.cl: one token's attention (attn_dec.cl) and the product that follows it (the
 * quantizing RMSNORM of the attention's output and one ternary matrix, matmul_t2_vec_s's work:
 * the o projection) in one launch, which saves the launch between them and lets the product's
 * weight loads overlap the attention. Work-groups 0 .. n_head * n_split - 1 do the attention
 * (head g % n_head, split g / n_head) and count each head's finished result in sync[0]; the
 * rest are the product's work-groups, which issue their weight loads, wait until sync[0] reaches
 * n_head, and read the attention's output past their compute unit's cache. The last of them to
 * finish (sync[1]) puts both counters back to 0 for the next launch. The host uses it only where
 * waiting cannot starve the attention: fewer product work-groups than compute units, so one is
 * always free for an attention work-group, or a device that starts work-groups in order (PoCL).
 * Arguments: the attention's, then the product's norm weight, quantized-row outputs (q, qs),
 * matrix and output; P the attention's parameters (i[13]: sync's index in cnt), P2 the
 * product's (matmul_t2.cl, one matrix, its row a being the attention's dst). */
__kernel __attribute__((reqd_work_group_size(TV_WG, 1, 1))) void attn_o(
    __global const float *q, __global const float *Kf, __global const float *Vf, __global const int *spos,
    __global const int *qpos, __global float *dst, __global float *part, __global int *cnt,
    __global const float *nw, __global uint *qo, __global float *qso, __global const uint *w0, __global float *o0,
    rtr_params P, rtr_params P2) {
    AD_LOCALS;
    __local uint4 xl[TV_KMAX / 16];
    __local float red[TV_WG], gv[TV_WG];
    __local int xpart[TV_WG], xsum[1];
    __global int *sync = cnt + P.i[13];
    const int n_head = P.i[0], na = n_head * P.i[7];
    int g = get_group_id(0);
    if (g < na) {
        attn_dec_body(q, Kf, Vf, spos, qpos, dst, part, cnt, P, g % n_head, g / n_head, sync, AD_LOCAL_ARGS);
        return;
    }
    t2_vec(dst, nw, qo, qso, w0, 0, 0, o0, 0, 0, 0, 0, 0, 0, 0, P2, TV_NG_SHORT, TV_MAXU_ROW, xl, red, gv, xpart,
           xsum, g - na, (__global volatile const int *)sync, n_head);
    if (get_local_id(0) == 0 && atomic_inc(sync + 1) == (int)get_num_groups(0) - na - 1) {
        sync[0] = 0;
        sync[1] = 0;
    }
}
