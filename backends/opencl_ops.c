/* opencl_ops.c: the ops of backend.h on an OpenCL device, enqueued on the in-order queue. Each
 * op is validated and turned into one launch descriptor (two for the q8r LM head, and for split
 * attention only with ROTOR_OPENCL_MERGE_LAUNCH: its last split merges them); submitting one
 * sets the buffer arguments that changed, passes one cl_params by value and enqueues (a
 * one-token product through the build of its kernel with only the arguments it uses, which the
 * driver enqueues faster). Three patterns of the model graph are fused to save launches: RoPE(q),
 * RoPE(k), KV_STORE of k and v become one rope_kv launch; a GLU followed by the RMSNORM of its
 * output becomes one rmsnorm launch; and (decode) the quantizing RMSNORM of one row, the ternary
 * product of its output and the GLU of a gate/up pair's outputs become one matmul_t2_vec launch,
 * which a one-token q/k/v product also does with the RoPEs and KV store behind it (RoPE/KV mode).
 * For that, a RoPE, GLU, such RMSNORM or one-token product is held back until the next op (or
 * end, buf_read, buf_write) shows whether it fuses; ops still take effect in order. A product
 * matmul_t2_vec cannot take runs after its norm, unfused.
 * No allocation here except the scratch buffer growing on the first batch of a new shape. The
 * kernels are the .cl files of kernels/.
 */
#include "opencl_impl.h"
#include "../models/format.h"

#include <string.h>

#define GEMV_MAX_ROWS 16 /* batches up to this use the gemv kernels, larger ones the tiled gemm */

static size_t round_up(size_t x, size_t m) { return (x + m - 1) / m * m; }

/* A one-token product without RoPE/KV mode goes to the build of its kernel with only the
 * arguments it uses, where there is one (one matrix, or a gate/up pair): fewer to enqueue. */
static const cl_launch *thin(const cl_backend *b, const cl_launch *L, cl_launch *T) {
    if (b->full_args || L->p.i[10] || L->nmem != 15) return L;
    int one = L->p.i[3] == 0 && L->p.i[4] == 0, two = !one && L->p.i[4] == 0 && L->k == K_T2_VEC_G;
    if (L->k == K_T2_VEC && one) T->k = K_T2_VEC1;
    else if (L->k == K_T2_VEC_S && one) T->k = K_T2_VEC_S1;
    else if (two) T->k = K_T2_VEC_G2;
    else return L;
    /* matmul_t2_vec's arguments: a, nw, q, qs, w0, w1, w2, o0, o1, o2, pos, slot, kc, vc, tab */
    static const int keep1[6] = {0, 1, 2, 3, 4, 7}, keep2[8] = {0, 1, 2, 3, 4, 5, 7, 8};
    T->nmem = one ? 6 : 8;
    for (int i = 0; i < T->nmem; i++) T->m[i] = L->m[one ? keep1[i] : keep2[i]];
    T->p = L->p;
    T->dims = L->dims;
    memcpy(T->g, L->g, sizeof T->g);
    memcpy(T->l, L->l, sizeof T->l);
    return T;
}

int cl_set_args(cl_backend *b, cl_kernel kk, const cl_launch *L, cl_mem *last, rtr_err *err) {
    cl_int rc;
    for (int i = 0; i < L->nmem; i++) {
        cl_mem m = L->m[i] ? L->m[i] : b->dummy;
        if (last && last[i] == m) continue;
        if ((rc = clSetKernelArg(kk, (cl_uint)i, sizeof m, &m)) != CL_SUCCESS)
            return cl_fail(err, "clSetKernelArg", rc);
        if (last) last[i] = m;
    }
    if ((rc = clSetKernelArg(kk, (cl_uint)L->nmem, sizeof L->p, &L->p)) != CL_SUCCESS)
        return cl_fail(err, "clSetKernelArg", rc);
    return 0;
}

int cl_enqueue_launch(cl_backend *b, const cl_launch *L, rtr_err *err) {
    cl_kernel kk = b->k[L->k];
    int r = cl_set_args(b, kk, L, b->last_arg[L->k], err);
    if (r) return r;
    cl_int rc;
    cl_event *ev = NULL;
    if (b->prof_path && b->prof_n < b->prof_cap) {
        ev = &b->prof_ev[b->prof_n];
        b->prof_k[b->prof_n] = L->k;
    }
    rc = clEnqueueNDRangeKernel(b->q, kk, L->dims, NULL, L->g, L->l, 0, NULL, ev);
    if (ev && rc == CL_SUCCESS) b->prof_n++;
    if (rc != CL_SUCCESS) return cl_fail(err, "clEnqueueNDRangeKernel", rc);
    if (++b->pending >= (b->flushed ? b->flush_every : b->flush_first)) {
        clFlush(b->q);
        b->pending = 0;
        b->flushed = 1;
    }
    return 0;
}

/* A one-token product or attn_dec whose activations are all in one block of the backend's (the
 * session's buffers, reserved together) and whose weights are all in another (the model's) goes
 * to the build of its kernel that takes the blocks, with the parameters' offsets counted from
 * their starts: three arguments to enqueue instead of up to fifteen (the driver's cost grows
 * with them). Roles: A an activation, W a weight, B kept as it is; elt: the element size its
 * offset counts in (0: the KV cache's, 2 or 4). */
static const cl_launch *pooled(const cl_backend *b, const cl_launch *L, cl_launch *T) {
    static const char vec_role[15] = "AWAAWWWAAAAAAAB", attn_role[8] = "AAAAAABB";
    static const unsigned char vec_elt[15] = {4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 0, 0, 4},
                               attn_elt[8] = {4, 0, 0, 4, 4, 4, 4, 4};
    int attn = L->k == K_ATTN_DEC;
    if (b->no_pool_launch || (!attn && L->nmem != 15) || (attn && L->nmem != 8)) return L;
    const char *role = attn ? attn_role : vec_role;
    const unsigned char *elt = attn ? attn_elt : vec_elt;
    int cache = attn ? (L->p.i[9] ? 4 : 2) : (L->p.i[10] & 2 ? 4 : 2);
    cl_mem pa = NULL, pw = NULL;
    *T = *L;
    for (int i = 0; i < L->nmem; i++) {
        cl_mem pool;
        size_t base;
        if (role[i] == 'B' || !L->m[i]) continue;
        if (!cl_pool_of(b, L->m[i], &pool, &base)) return L;
        cl_mem *want = role[i] == 'A' ? &pa : &pw;
        if (*want && *want != pool) return L;
        *want = pool;
        T->p.off[i] += base / (elt[i] ? elt[i] : (size_t)cache);
    }
    if (!pa || (!attn && !pw)) return L;
    T->k = attn ? K_ATTN_DEC_P : L->k == K_T2_VEC ? K_T2_VEC_P : L->k == K_T2_VEC_S ? K_T2_VEC_S_P : K_T2_VEC_G_P;
    T->nmem = 3;
    T->m[0] = pa;
    T->m[1] = attn ? L->m[6] : pw;
    T->m[2] = attn ? L->m[7] : L->m[14];
    return T;
}

/* Every launch goes out through here: logged while a command buffer may take the batch
 * (opencl_cmdbuf.c), else enqueued. */
static int submit(cl_backend *b, const cl_launch *L, rtr_err *err) {
    cl_launch T;
    if (L->k == K_T2_VEC || L->k == K_T2_VEC_S || L->k == K_T2_VEC_G || L->k == K_ATTN_DEC) {
        const cl_launch *P = pooled(b, L, &T);
        if (P == L && L->k != K_ATTN_DEC) P = thin(b, L, &T);
        L = P;
    }
    for (cl_uint d = 0; d < L->dims; d++)
        if (L->g[d] == 0) return 0;
    return b->cmd.recording ? cl_cmdbuf_log(b, L, err) : cl_enqueue_launch(b, L, err);
}

/* Enqueues a held-back op, if any; a HELD_QKV chain that stopped short goes out as its product
 * followed by the ROPEs it had taken, run as ops of their own (which may be held in turn). */
int cl_flush_held(cl_backend *b, rtr_err *err) {
    while (b->held) {
        int kind = b->held, r;
        rtr_op ropes[2];
        int nr = kind == HELD_QKV ? b->held_n - 1 : 0;
        for (int i = 0; i < nr; i++) ropes[i] = b->held_op[1 + i];
        b->held = 0;
        if ((r = submit(b, &b->held_launch, err))) return r;
        for (int i = 0; i < nr; i++)
            if ((r = cl_run(&b->base, &ropes[i], err))) return r;
    }
    return 0;
}

static void set_launch(cl_launch *L, int k, int nmem, const cl_mem *m, const cl_params *p, cl_uint dims,
                       const size_t *g, const size_t *l) {
    L->k = k;
    L->nmem = nmem;
    memcpy(L->m, m, sizeof(cl_mem) * (size_t)nmem);
    L->p = *p;
    L->dims = dims;
    for (cl_uint d = 0; d < dims; d++) {
        L->g[d] = g[d];
        L->l[d] = l[d];
    }
}

static cl_mem M(rtr_ref r) { return r.buf ? r.buf->mem : NULL; }

/* element offset of a reference; the byte offset must be a multiple of the element size */
static int eoff(rtr_ref r, size_t elt, cl_ulong *out, const char *what, rtr_err *err) {
    if (r.off % elt)
        return rtr_seterr(err, RTR_EARG, "opencl: %s offset %zu is not %zu-byte aligned", what, r.off, elt);
    *out = r.buf ? r.off / elt : 0;
    return 0;
}

static int need(rtr_ref r, const char *what, rtr_err *err) {
    return r.buf ? 0 : rtr_seterr(err, RTR_EARG, "opencl: operand %s is missing", what);
}

/* the operand must hold bytes from its offset on */
static int span(rtr_ref r, uint64_t bytes, const char *what, rtr_err *err) {
    if (r.buf && (r.off > r.buf->bytes || bytes > r.buf->bytes - r.off))
        return rtr_seterr(err, RTR_EARG, "opencl: %s: %llu bytes at offset %zu overrun its buffer of %zu",
                          what, (unsigned long long)bytes, r.off, r.buf->bytes);
    return 0;
}

static int same_ref(rtr_ref a, rtr_ref b) { return a.buf == b.buf && a.off == b.off; }

#define U(x) ((uint64_t)(x))

/* ---- ops ---- */

static int op_embed(cl_backend *b, const rtr_op *op, cl_launch *L, int *nl, rtr_err *err) {
    (void)b;
    int t = op->p.emb.type, d = op->p.emb.d, r;
    if (t != RTR_T_F32 && t != RTR_T_F16 && t != RTR_T_BF16 && t != RTR_T_Q8R)
        return rtr_seterr(err, RTR_EARG, "opencl: embed: unsupported table type %d", t);
    if ((r = need(op->dst, "dst", err)) || (r = need(op->a, "table", err)) || (r = need(op->b, "ids", err)))
        return r;
    if (d <= 0 || op->p.emb.n_rows <= 0)
        return rtr_seterr(err, RTR_EARG, "opencl: embed of %d x %d", op->p.emb.n_rows, d);
    uint64_t tb = t == RTR_T_Q8R ? U(op->p.emb.n_rows) * (rtr_q8r_row_bytes(U(d)) + 4)
                                 : U(op->p.emb.n_rows) * U(d) * (t == RTR_T_F32 ? 4 : 2);
    if ((r = span(op->dst, U(op->rows) * U(d) * 4, "embed dst", err)) ||
        (r = span(op->a, tb, "embed table", err)) || (r = span(op->b, U(op->rows) * 4, "embed ids", err)))
        return r;
    cl_params p = {0};
    r = eoff(op->dst, 4, &p.off[0], "embed dst", err);
    r = r ? r : eoff(op->a, t == RTR_T_F16 || t == RTR_T_BF16 ? 2 : 4, &p.off[1], "embed table", err);
    r = r ? r : eoff(op->b, 4, &p.off[2], "embed ids", err);
    if (r) return r;
    p.off[1] = op->a.off; /* the kernel indexes the table in bytes */
    p.i[0] = t;
    p.i[1] = op->p.emb.n_rows;
    p.i[2] = d;
    p.f[0] = op->p.emb.scale;
    cl_mem m[3] = {M(op->dst), M(op->a), M(op->b)};
    size_t g[2] = {round_up((size_t)d, 64), (size_t)op->rows}, l[2] = {64, 1};
    set_launch(&L[(*nl)++], K_EMBED, 3, m, &p, 2, g, l);
    return 0;
}

/* rmsnorm kernel flags (kernels/rmsnorm.cl) */
enum { NF_RESID = 1, NF_WEIGHT = 2, NF_DST = 4, NF_QUANT = 8, NF_NONORM = 16, NF_GLU = 32 };

static int norm_prep(cl_backend *b, cl_launch *L, int rows, int n, int flags, float eps, rtr_ref a,
                     rtr_ref res, rtr_ref w, rtr_ref dst, rtr_ref q, rtr_ref qs, rtr_err *err) {
    cl_params p = {0};
    if (n <= 0) return rtr_seterr(err, RTR_EARG, "opencl: norm of rows of %d", n);
    uint64_t rb = U(rows) * U(n) * 4;
    int r = span(a, rb, "norm input", err);
    r = r ? r : span(res, rb, "norm residual", err);
    r = r ? r : span(w, U(n) * 4, "norm weight", err);
    r = r ? r : span(dst, rb, "norm dst", err);
    r = r ? r : span(q, U(rows) * rtr_t2_kpad(U(n)), "quant dst", err);
    r = r ? r : span(qs, U(rows) * 4, "quant scales", err);
    r = r ? r : eoff(a, 4, &p.off[0], "norm input", err);
    r = r ? r : eoff(res, 4, &p.off[1], "norm residual", err);
    r = r ? r : eoff(w, 4, &p.off[2], "norm weight", err);
    r = r ? r : eoff(dst, 4, &p.off[3], "norm dst", err);
    r = r ? r : eoff(q, 1, &p.off[4], "quant dst", err);
    r = r ? r : eoff(qs, 4, &p.off[5], "quant scales", err);
    if (r) return r;
    p.i[0] = n;
    p.i[1] = flags;
    p.i[2] = (cl_int)rtr_t2_kpad(U(n));
    p.f[0] = eps;
    cl_mem m[8] = {M(a), M(res), M(w), M(dst), M(q), M(qs), NULL, NULL};
    size_t g = (size_t)rows * b->norm_wg, l = b->norm_wg;
    set_launch(L, K_RMSNORM, 8, m, &p, 1, &g, &l);
    return 0;
}

static int op_rmsnorm(cl_backend *b, const rtr_op *op, cl_launch *L, int *nl, rtr_err *err) {
    int r;
    if ((r = need(op->a, "a", err))) return r;
    int fl = (op->b.buf ? NF_RESID : 0) | (op->c.buf ? NF_WEIGHT : 0) | (op->dst.buf ? NF_DST : 0);
    if (op->dst2.buf) {
        if ((r = need(op->dst3, "dst3", err))) return r;
        fl |= NF_QUANT;
    }
    return norm_prep(b, &L[(*nl)++], op->rows, op->p.norm.n, fl, op->p.norm.eps, op->a, op->b, op->c, op->dst,
                     op->dst2, op->dst3, err);
}

static int op_quant(cl_backend *b, const rtr_op *op, cl_launch *L, int *nl, rtr_err *err) {
    static const rtr_ref none = {NULL, 0};
    int r;
    if ((r = need(op->a, "a", err)) || (r = need(op->dst2, "dst2", err)) || (r = need(op->dst3, "dst3", err)))
        return r;
    return norm_prep(b, &L[(*nl)++], op->rows, op->p.norm.n, NF_QUANT | NF_NONORM, 0.0f, op->a, none, none,
                     none, op->dst2, op->dst3, err);
}

static int op_matmul_t2(cl_backend *b, const rtr_op *op, cl_launch *L, int *nl, rtr_err *err) {
    (void)b;
    int nm = op->p.mm.n_mat, k = op->p.mm.k, gemv = op->rows <= GEMV_MAX_ROWS, r;
    if (nm < 1 || nm > 3) return rtr_seterr(err, RTR_EARG, "opencl: matmul of %d matrices", nm);
    if (k <= 0) return rtr_seterr(err, RTR_EARG, "opencl: matmul with k = %d", k);
    if ((r = need(op->a, "a", err)) || (r = need(op->b, "b", err))) return r;
    uint64_t kpad = rtr_t2_kpad(U(k));
    if ((r = span(op->a, U(op->rows) * kpad, "matmul input", err)) ||
        (r = span(op->b, U(op->rows) * 4, "matmul scales", err)))
        return r;
    cl_params p = {0};
    cl_mem m[8] = {M(op->a), M(op->b)};
    /* weights and activations are read 16 bytes at a time */
    r = eoff(op->a, 16, &p.off[0], "matmul input", err);
    r = r ? r : eoff(op->b, 4, &p.off[1], "matmul scales", err);
    if (r) return r;
    p.off[0] = op->a.off / 4;
    size_t tiles = 0, tm = gemv ? 8 : 64;
    for (int i = 0; i < nm; i++) {
        if ((r = need(op->p.mm.w[i], "w", err)) || (r = need(op->p.mm.out[i], "out", err))) return r;
        if (op->p.mm.n[i] < 0) return rtr_seterr(err, RTR_EARG, "opencl: matmul with n = %d", op->p.mm.n[i]);
        if ((r = span(op->p.mm.w[i], U(op->p.mm.n[i]) * (kpad / 4), "matmul weight", err)) ||
            (r = span(op->p.mm.out[i], U(op->rows) * U(op->p.mm.n[i]) * 4, "matmul output", err)))
            return r;
        if ((r = eoff(op->p.mm.w[i], 16, &p.off[2 + i], "matmul weight", err)) ||
            (r = eoff(op->p.mm.out[i], 4, &p.off[5 + i], "matmul output", err)))
            return r;
        p.off[2 + i] = op->p.mm.w[i].off / 4;
        m[2 + i] = M(op->p.mm.w[i]);
        m[5 + i] = M(op->p.mm.out[i]);
        p.i[2 + i] = op->p.mm.n[i];
        p.f[i] = op->p.mm.alpha[i];
        size_t t = ((size_t)op->p.mm.n[i] + tm - 1) / tm;
        if (i < 2) p.i[5 + i] = (cl_int)t;
        tiles += t;
    }
    p.i[0] = op->rows;
    p.i[1] = (cl_int)rtr_t2_kpad(U(k));
    p.i[7] = op->p.mm.accum;
    if (gemv) {
        size_t g = tiles * 64, l = 64;
        set_launch(&L[(*nl)++], K_GEMV_T2, 8, m, &p, 1, &g, &l);
        return 0;
    }
    size_t g[2] = {tiles * 64, ((size_t)op->rows + 63) / 64}, l[2] = {64, 1};
    set_launch(&L[(*nl)++], K_GEMM_T2, 8, m, &p, 2, g, l);
    return 0;
}

static int op_matmul_f(cl_backend *b, const rtr_op *op, cl_launch *L, int *nl, rtr_err *err) {
    int t = op->p.mf.type, n = op->p.mf.n, k = op->p.mf.k, r;
    rtr_ref w = op->p.mm.w[0];
    if (t != RTR_T_F32 && t != RTR_T_F16 && t != RTR_T_BF16 && t != RTR_T_Q8R)
        return rtr_seterr(err, RTR_EARG, "opencl: matmul_f: unsupported weight type %d", t);
    if (n <= 0 || k <= 0) return rtr_seterr(err, RTR_EARG, "opencl: matmul_f with n = %d, k = %d", n, k);
    if ((r = need(op->a, "a", err)) || (r = need(op->dst, "dst", err)) || (r = need(w, "w", err))) return r;
    uint64_t wb =
        t == RTR_T_Q8R ? U(n) * (rtr_q8r_row_bytes(U(k)) + 4) : U(n) * U(k) * (t == RTR_T_F32 ? 4 : 2);
    if ((r = span(op->a, U(op->rows) * U(k) * 4, "matmul_f input", err)) ||
        (r = span(w, wb, "matmul_f weight", err)) ||
        (r = span(op->dst, U(op->rows) * U(n) * 4, "matmul_f dst", err)))
        return r;
    cl_params p = {0};
    cl_mem m[5] = {M(op->a), M(w), M(op->dst), NULL, NULL};
    if ((r = eoff(op->a, 4, &p.off[0], "matmul_f input", err)) ||
        (r = eoff(w, t == RTR_T_F16 || t == RTR_T_BF16 ? 2 : 4, &p.off[1], "matmul_f weight", err)) ||
        (r = eoff(op->dst, 4, &p.off[2], "matmul_f dst", err)))
        return r;
    p.off[1] = w.off; /* bytes */
    m[3] = m[4] = M(op->a); /* unused by the kernel */
    p.i[0] = t;
    p.i[1] = n;
    p.i[2] = k;
    p.i[3] = op->rows;
    p.i[4] = k % 8 == 0 && w.off % 16 == 0 && op->a.off % 16 == 0;
    size_t g = ((size_t)n + 7) / 8 * 256, l = 256;
    /* one token whose rows fill whole 16-byte pieces: matmul_f_vec, eight rows a work-group too */
    if (op->rows == 1 && p.i[4] && k % 16 == 0 && !b->no_fvec) {
        set_launch(&L[(*nl)++], K_MATMUL_F_VEC, 3, m, &p, 1, &g, &l);
        return 0;
    }
    set_launch(&L[(*nl)++], K_MATMUL_F, 5, m, &p, 1, &g, &l);
    return 0;
}

/* rope_kv launches (kernels/rope_kv.cl): buffers x0, pos, x1, v, kc, vc, slot, tab */
static int op_rope(cl_backend *b, const rtr_op *op, cl_launch *L, int *nl, rtr_err *err) {
    int nh = op->p.rope.n_head, hd = op->p.rope.head_dim, rd = op->p.rope.rot_dim, r;
    if (hd <= 0 || rd < 0 || rd > hd || rd % 2)
        return rtr_seterr(err, RTR_EARG, "opencl: rope: rot_dim %d of head_dim %d", rd, hd);
    if ((r = need(op->a, "a", err)) || (r = need(op->b, "positions", err))) return r;
    if (nh <= 0) return rtr_seterr(err, RTR_EARG, "opencl: rope over %d heads", nh);
    if ((r = span(op->a, U(op->rows) * U(nh) * U(hd) * 4, "rope x", err)) ||
        (r = span(op->b, U(op->rows) * 4, "rope positions", err)))
        return r;
    cl_params p = {0};
    if ((r = eoff(op->a, 4, &p.off[0], "rope x", err)) ||
        (r = eoff(op->b, 4, &p.off[1], "rope positions", err)) ||
        (r = cl_rope_tab(b, op->p.rope.theta, rd, &p.off[7], err)))
        return r;
    p.i[0] = nh;
    p.i[2] = hd;
    p.i[3] = rd;
    cl_mem m[8] = {M(op->a), M(op->b), NULL, NULL, NULL, NULL, NULL, b->rope_tab};
    size_t g[3] = {round_up((size_t)hd, 64), (size_t)nh, (size_t)op->rows}, l[3] = {64, 1, 1};
    set_launch(&L[(*nl)++], K_ROPE_KV, 8, m, &p, 3, g, l);
    return 0;
}

/* Checks a KV_STORE; with into set, adds the store of k (heads of head_dim hd) and v to the
 * rope_kv launch *into, else makes a launch of its own (rows of n as one head, no rotation). */
static int op_kv_store(cl_backend *b, const rtr_op *op, cl_launch *L, int *nl, rtr_err *err) {
    (void)b;
    int n = op->p.kv.n, r, f32 = op->p.kv.type == RTR_T_F32;
    size_t elt = f32 ? 4 : 2;
    if (n <= 0) return rtr_seterr(err, RTR_EARG, "opencl: kv_store of %d floats", n);
    if (!f32 && op->p.kv.type != RTR_T_F16)
        return rtr_seterr(err, RTR_EARG, "opencl: kv cache type %d", op->p.kv.type);
    if ((r = need(op->dst, "kcache", err)) || (r = need(op->dst2, "vcache", err)) ||
        (r = need(op->a, "k", err)) || (r = need(op->b, "v", err)) || (r = need(op->c, "slots", err)))
        return r;
    if ((r = span(op->a, U(op->rows) * U(n) * 4, "k", err)) ||
        (r = span(op->b, U(op->rows) * U(n) * 4, "v", err)) ||
        (r = span(op->c, U(op->rows) * 4, "slots", err)))
        return r;
    cl_params p = {0};
    if ((r = eoff(op->a, 4, &p.off[2], "k", err)) || (r = eoff(op->b, 4, &p.off[3], "v", err)) ||
        (r = eoff(op->dst, elt, &p.off[4], "kcache", err)) ||
        (r = eoff(op->dst2, elt, &p.off[5], "vcache", err)) || (r = eoff(op->c, 4, &p.off[6], "slots", err)))
        return r;
    /* slots that fit in both caches; the kernel skips any other */
    size_t row = (size_t)n * elt,
           ks = op->dst.off <= op->dst.buf->bytes ? (op->dst.buf->bytes - op->dst.off) / row : 0,
           vs = op->dst2.off <= op->dst2.buf->bytes ? (op->dst2.buf->bytes - op->dst2.off) / row : 0;
    size_t cap = ks < vs ? ks : vs;
    p.i[0] = 0;
    p.i[1] = 1;
    p.i[2] = n;
    p.i[4] = 1;
    p.i[5] = cap > 0x7fffffff ? 0x7fffffff : (cl_int)cap;
    p.i[6] = f32;
    p.i[7] = n;
    cl_mem m[8] = {NULL, NULL, M(op->a), M(op->b), M(op->dst), M(op->dst2), M(op->c), NULL};
    size_t g[3] = {round_up((size_t)n, 64), 2, (size_t)op->rows}, l[3] = {64, 1, 1};
    set_launch(&L[(*nl)++], K_ROPE_KV, 8, m, &p, 3, g, l);
    return 0;
}

#define ATTN_WG 128
#define ATTN_HG_MAX 8
/* Splits of a decode ring at most: past 16 the merge costs more than the splits save (H100, tg128
 * at a depth of 3072 tokens: 292-309 tok/s with 16, 178 with about 100; BENCH.md) */
#define ATTN_SPLIT_MAX 16
#define ATTN_CHUNK_MIN 128
#define ATTN_SKIP_CAP 512
#define ATTN_HD_MAX 256
#define ATTN_DEC_WG 256 /* AD_WG of attn_dec.cl */

static int op_attn(cl_backend *b, const rtr_op *op, cl_launch *L, int *nl, rtr_err *err) {
    int nh = op->p.attn.n_head, nkv = op->p.attn.n_kv, hd = op->p.attn.head_dim, cap = op->p.attn.cap, r;
    int f32 = op->p.attn.kv_type == RTR_T_F32;
    size_t elt = f32 ? 4 : 2;
    if (!f32 && op->p.attn.kv_type != RTR_T_F16)
        return rtr_seterr(err, RTR_EARG, "opencl: kv cache type %d", op->p.attn.kv_type);
    if (nh <= 0 || nkv <= 0 || nh % nkv || hd <= 0 || hd > ATTN_HD_MAX || cap <= 0)
        return rtr_seterr(err, RTR_EARG,
                          "opencl: attention shape n_head %d, n_kv %d, head_dim %d, cap %d is not supported",
                          nh, nkv, hd, cap);
    if ((r = need(op->a, "q", err)) || (r = need(op->b, "K", err)) || (r = need(op->c, "V", err)) ||
        (r = need(op->d, "slot positions", err)) || (r = need(op->e, "query positions", err)) ||
        (r = need(op->dst, "dst", err)))
        return r;
    uint64_t qb = U(op->rows) * U(nh) * U(hd) * 4, cb = U(cap) * U(nkv) * U(hd) * elt;
    if ((r = span(op->a, qb, "q", err)) || (r = span(op->b, cb, "K", err)) ||
        (r = span(op->c, cb, "V", err)) || (r = span(op->d, U(cap) * 4, "slot positions", err)) ||
        (r = span(op->e, U(op->rows) * 4, "query positions", err)) || (r = span(op->dst, qb, "dst", err)))
        return r;
    /* query heads a work-group: a group sharing a key/value head reads them once; one row (decode)
     * has too few groups to fill a device, so one head each (H100, 2B4T: tg512 471-490 against
     * 419-431 tok/s, tg128 @ d3072 371-398 against 314-329; BENCH.md) */
    int grp = nh / nkv, hg = grp < ATTN_HG_MAX ? grp : ATTN_HG_MAX;
    while (grp % hg) hg--;
    if (op->rows == 1 && !b->attn_grouped) hg = 1;
    size_t ngr = (size_t)op->rows * (nh / hg);
    /* few work-groups (decode): split the ring, in runs of a multiple of 32 slots (a short ring
     * too), so the whole device works; at most ATTN_SPLIT_MAX splits, since the last one to
     * finish merges them all */
    int n_split = 1, chunk = cap;
    /* A short ring split in a 4-head kernel goes to attn4s, whose work-groups find the splits
     * with a visible slot first: the others stop early and a single visible one needs no
     * merge, so a ring filled up to ATTN_CHUNK_MIN slots (tg128 from depth 0) runs unsplit
     * (H100: tg128 475-477 against 455-461 in splits of 32; BENCH.md). Longer rings keep attn4:
     * nearly every split sees something there. */
    int can_merge = ngr <= CL_ATTN_CNT && !b->attn_merge_launch; /* splits can merge in the launch */
    int skip = cap <= ATTN_SKIP_CAP && hg <= 4 && !b->no_attn4 && can_merge;
    /* one row of head_dim 64, 128 or 256 (2B4T's 128) with caches on 8-element boundaries:
     * attn_dec, two round trips to memory a chunk of the ring instead of five or six; its
     * work-groups of 256 hold more registers, so the ring is split for two a compute unit, not
     * four (H100, tg128 at a depth of 3072: 393 tok/s against attn1's 420 with four) */
    int dec = op->rows == 1 && hg == 1 && (hd == 64 || hd == 128 || hd == 256) && op->b.off / elt % 8 == 0 &&
              op->c.off / elt % 8 == 0 && !b->no_attn_dec;
    if (ngr < 2 * (size_t)b->n_cu && cap > 32) {
        size_t want = ((dec ? 2 : 4) * (size_t)b->n_cu + ngr - 1) / ngr, most = ((size_t)cap + 31) / 32;
        if (want > ATTN_SPLIT_MAX) want = ATTN_SPLIT_MAX;
        n_split = (int)(want < most ? want : most);
        if (b->attn_splits > 0 && n_split > b->attn_splits) n_split = b->attn_splits;
        chunk = (int)round_up(((size_t)cap + n_split - 1) / n_split, 32);
        /* but a short ring (attn4s below) in splits of at least ATTN_CHUNK_MIN slots */
        if (skip && chunk < ATTN_CHUNK_MIN) chunk = ATTN_CHUNK_MIN;
        n_split = (cap + chunk - 1) / chunk;
    }
    cl_params p = {0};
    if ((r = eoff(op->a, 4, &p.off[0], "q", err)) || (r = eoff(op->b, elt, &p.off[1], "K", err)) ||
        (r = eoff(op->c, elt, &p.off[2], "V", err)) ||
        (r = eoff(op->d, 4, &p.off[3], "slot positions", err)) ||
        (r = eoff(op->e, 4, &p.off[4], "query positions", err)) ||
        (r = eoff(op->dst, 4, &p.off[5], "dst", err)))
        return r;
    p.i[0] = nh;
    p.i[1] = nkv;
    p.i[2] = hd;
    p.i[3] = cap;
    p.i[4] = op->p.attn.n_sink;
    p.i[5] = op->p.attn.window;
    p.i[6] = hg;
    p.i[7] = n_split;
    p.i[8] = chunk;
    p.i[9] = f32;
    p.i[10] = hd % 8 == 0 && p.off[1] % 8 == 0 && p.off[2] % 8 == 0;
    p.f[0] = op->p.attn.scale;
    cl_mem part = NULL;
    if (n_split > 1) {
        if ((r = cl_scratch(b, (size_t)op->rows * nh * n_split * (hd + 2) * 4, err))) return r;
        part = b->scratch;
    }
    /* the last split to finish merges them, where a counter per (row, group) exists */
    int here = n_split > 1 && can_merge;
    p.i[11] = here;
    cl_mem m[8] = {M(op->a), M(op->b), M(op->c), M(op->d), M(op->e), M(op->dst), part, b->attn_cnt};
    size_t g[2] = {ngr * ATTN_WG, (size_t)n_split}, l[2] = {ATTN_WG, 1};
    /* attn1 and attn4 (kernels/attn.cl) hold registers for 1 or 4 query heads a work-group, attn for 8 */
    int k = hg == 1 ? (skip && here ? K_ATTN1S : K_ATTN1)
            : hg <= 4 && !b->no_attn4 ? (skip && here ? K_ATTN4S : K_ATTN4) : K_ATTN;
    if (dec) {
        k = K_ATTN_DEC;
        p.i[12] = skip && here;
        g[0] = (size_t)nh * ATTN_DEC_WG;
        l[0] = ATTN_DEC_WG;
    }
    set_launch(&L[(*nl)++], k, 8, m, &p, 2, g, l);
    if (n_split == 1 || here) return 0;
    cl_mem m2[2] = {part, M(op->dst)};
    size_t g2[2] = {round_up((size_t)hd, 64), (size_t)op->rows * nh}, l2[2] = {64, 1};
    set_launch(&L[(*nl)++], K_ATTN_MERGE, 2, m2, &p, 2, g2, l2);
    return 0;
}

static int op_glu(cl_backend *b, const rtr_op *op, cl_launch *L, int *nl, rtr_err *err) {
    (void)b;
    int act = op->p.glu.act, r;
    if (act != RTR_ACT_RELU2 && act != RTR_ACT_SILU && act != RTR_ACT_GELU_TANH)
        return rtr_seterr(err, RTR_EARG, "opencl: unknown activation %d", act);
    if ((r = need(op->dst, "dst", err)) || (r = need(op->a, "a", err)) || (r = need(op->b, "b", err)))
        return r;
    if (op->p.glu.n < 0) return rtr_seterr(err, RTR_EARG, "opencl: glu of %d", op->p.glu.n);
    uint64_t gb = U(op->rows) * U(op->p.glu.n) * 4;
    if ((r = span(op->dst, gb, "glu dst", err)) || (r = span(op->a, gb, "glu a", err)) ||
        (r = span(op->b, gb, "glu b", err)))
        return r;
    cl_params p = {0};
    if ((r = eoff(op->dst, 4, &p.off[0], "glu dst", err)) || (r = eoff(op->a, 4, &p.off[1], "glu a", err)) ||
        (r = eoff(op->b, 4, &p.off[2], "glu b", err)))
        return r;
    size_t n = (size_t)op->rows * (size_t)op->p.glu.n;
    p.i[0] = (cl_int)(uint32_t)n;
    p.i[1] = (cl_int)(uint32_t)((uint64_t)n >> 32);
    p.i[2] = act;
    cl_mem m[3] = {M(op->dst), M(op->a), M(op->b)};
    size_t g = round_up(n, 256), l = 256;
    set_launch(&L[(*nl)++], K_GLU, 3, m, &p, 1, &g, &l);
    return 0;
}

static int op_add(cl_backend *b, const rtr_op *op, cl_launch *L, int *nl, rtr_err *err) {
    (void)b;
    int r;
    if ((r = need(op->dst, "dst", err)) || (r = need(op->a, "a", err))) return r;
    if (op->p.add.n < 0) return rtr_seterr(err, RTR_EARG, "opencl: add of %d", op->p.add.n);
    uint64_t ab = U(op->rows) * U(op->p.add.n) * 4;
    if ((r = span(op->dst, ab, "add dst", err)) || (r = span(op->a, ab, "add a", err))) return r;
    cl_params p = {0};
    if ((r = eoff(op->dst, 4, &p.off[0], "add dst", err)) || (r = eoff(op->a, 4, &p.off[1], "add a", err)))
        return r;
    size_t n = (size_t)op->rows * (size_t)op->p.add.n;
    p.i[0] = (cl_int)(uint32_t)n;
    p.i[1] = (cl_int)(uint32_t)((uint64_t)n >> 32);
    cl_mem m[2] = {M(op->dst), M(op->a)};
    size_t g = round_up(n, 256), l = 256;
    set_launch(&L[(*nl)++], K_ADD, 2, m, &p, 1, &g, &l);
    return 0;
}

#define AM_UNROLL 16 /* argmax.cl's reads in flight a work-item */
#define AM_GROUPS_MAX 256 /* work-groups of an argmax_split row at most */

static int op_argmax(cl_backend *b, const rtr_op *op, cl_launch *L, int *nl, rtr_err *err) {
    int n = op->p.add.n, r;
    if (n < 1) return rtr_seterr(err, RTR_EARG, "opencl: argmax over %d values", n);
    if ((r = need(op->a, "argmax input", err)) || (r = need(op->dst, "argmax dst", err)) ||
        (r = span(op->a, U(op->rows) * U(n) * 4, "argmax input", err)) ||
        (r = span(op->dst, U(op->rows) * 4, "argmax dst", err)))
        return r;
    cl_params p = {0};
    if ((r = eoff(op->a, 4, &p.off[0], "argmax input", err)) || (r = eoff(op->dst, 4, &p.off[1], "argmax dst", err)))
        return r;
    p.i[0] = n;
    /* a row of more than one work-group's pass over several (H100, 128256 logits: 40 us a call
     * in one work-group of 1024) */
    size_t wg = b->argmax_split_wg, pass = wg * AM_UNROLL;
    if (wg && op->rows <= CL_AM_CNT && (size_t)n > pass) {
        size_t groups = ((size_t)n + pass - 1) / pass, chunk = pass;
        if (groups > AM_GROUPS_MAX) {
            chunk = round_up(((size_t)n + AM_GROUPS_MAX - 1) / AM_GROUPS_MAX, wg);
            groups = ((size_t)n + chunk - 1) / chunk;
        }
        if ((r = cl_scratch(b, (size_t)op->rows * groups * 8, err))) return r;
        p.i[1] = (cl_int)chunk;
        cl_mem m[4] = {M(op->a), M(op->dst), b->scratch, b->am_cnt};
        size_t g[2] = {groups * wg, (size_t)op->rows}, l[2] = {wg, 1};
        set_launch(&L[(*nl)++], K_ARGMAX_SPLIT, 4, m, &p, 2, g, l);
        return 0;
    }
    cl_mem m[2] = {M(op->a), M(op->dst)};
    size_t g = (size_t)op->rows * b->argmax_wg, l = b->argmax_wg;
    set_launch(&L[(*nl)++], K_ARGMAX, 2, m, &p, 1, &g, &l);
    return 0;
}

static int compatible_ropes(const rtr_op *a, const rtr_op *b) {
    return a->rows == b->rows && same_ref(a->b, b->b) && a->p.rope.head_dim == b->p.rope.head_dim &&
           a->p.rope.rot_dim == b->p.rope.rot_dim && a->p.rope.theta == b->p.rope.theta &&
           !same_ref(a->a, b->a);
}

/* A quantizing RMSNORM of one row, with nothing else to write, may fuse into the product that
 * follows (kernels/matmul_t2.cl, matmul_t2_vec). */
#define T2_VEC_KMAX 8192
static int norm_fusable(const rtr_op *op) {
    return op->rows == 1 && op->dst2.buf && !op->b.buf && !op->dst.buf && op->p.norm.n <= T2_VEC_KMAX &&
           op->a.off % 4 == 0 && op->c.off % 4 == 0 && op->dst3.off % 4 == 0;
}

/* The product reads exactly what the held RMSNORM produced, and writes nothing the norm reads. */
static int norm_feeds(const rtr_op *nm, const rtr_op *mm) {
    if (mm->rows != 1 || !same_ref(mm->a, nm->dst2) || !same_ref(mm->b, nm->dst3) || mm->p.mm.k != nm->p.norm.n)
        return 0;
    for (int i = 0; i < mm->p.mm.n_mat; i++) {
        rtr_buf *o = mm->p.mm.out[i].buf;
        if (o == nm->a.buf || (nm->c.buf && o == nm->c.buf) || o == nm->dst2.buf || o == nm->dst3.buf) return 0;
    }
    return 1;
}

/* matmul_t2_vec (kernels/matmul_t2.cl) takes one-token products with kpad <= 8192 whose int8
 * input starts on 16 bytes; gv is the product's gemv launch (op_matmul_t2), nm the quantizing
 * RMSNORM in front or NULL. Fills F and returns 1, or 0 when the older kernels must do it. */
#define T2_VEC_WG 256
#define T2_VEC_MAXU 8
#define T2_VEC_NG_SHORT 3 /* TV_NG_SHORT of matmul_t2.cl: float4 of the norm's row a work-item */
#define T2_VEC_MAXUG 10   /* TV_MAXU of matmul_t2.cl: weight pieces a work-item of matmul_t2_vec_g */
static int vec_launch(const cl_backend *b, const rtr_op *nm, const rtr_op *mm, const cl_launch *gv, cl_launch *F) {
    uint64_t kpad = rtr_t2_kpad(U(mm->p.mm.k)), rows = 0;
    if (b->no_vec || mm->rows != 1 || kpad > T2_VEC_KMAX || mm->a.off % 16) return 0;
    if (nm && (nm->p.norm.n % 4 || nm->a.off % 16 || (nm->c.buf && nm->c.off % 16))) return 0;
    for (int i = 0; i < mm->p.mm.n_mat; i++) rows += U(mm->p.mm.n[i]);
    /* lanes a row: the fewest that hold a row in T2_VEC_MAXU pieces each (fewer, fuller
     * work-groups were faster on the H100 at every 2B4T shape) */
    uint64_t kw4 = kpad / 64;
    int lpr = 4;
    while (lpr < 32 && kw4 > (uint64_t)lpr * T2_VEC_MAXU) lpr *= 2;
    *F = *gv;
    /* the short-row kernel holds less of the norm's row in registers; it serves every product
     * without a norm too */
    F->k = !nm || kpad <= 4 * T2_VEC_NG_SHORT * T2_VEC_WG ? K_T2_VEC_S : K_T2_VEC;
    F->nmem = 15; /* the last five (positions, slots, caches, RoPE table) only in RoPE/KV mode (qkv_chain) */
    cl_mem m[15] = {nm ? M(nm->a) : NULL, nm && nm->c.buf ? M(nm->c) : NULL, M(mm->a), M(mm->b), gv->m[2], gv->m[3],
                    gv->m[4], gv->m[5], gv->m[6], gv->m[7], NULL, NULL, NULL, NULL, NULL};
    memcpy(F->m, m, sizeof m);
    memset(&F->p, 0, sizeof F->p);
    F->p.off[0] = nm ? nm->a.off / 4 : 0;
    F->p.off[1] = nm && nm->c.buf ? nm->c.off / 4 : 0;
    F->p.off[2] = mm->a.off / 4;
    F->p.off[3] = mm->b.off / 4;
    for (int i = 0; i < 3; i++) {
        F->p.off[4 + i] = gv->p.off[2 + i];
        F->p.off[7 + i] = gv->p.off[5 + i];
        F->p.i[2 + i] = gv->p.i[2 + i];
        F->p.f[i] = gv->p.f[i];
    }
    F->p.i[0] = nm ? nm->p.norm.n : mm->p.mm.k;
    F->p.i[1] = (cl_int)kpad;
    F->p.i[5] = lpr;
    F->p.i[7] = mm->p.mm.accum;
    F->p.i[8] = nm && nm->c.buf;
    F->p.i[9] = nm != NULL;
    F->p.f[3] = nm ? nm->p.norm.eps : 0.0f;
    F->dims = 1;
    F->g[0] = (size_t)((rows + T2_VEC_WG / U(lpr) - 1) / (T2_VEC_WG / U(lpr))) * T2_VEC_WG;
    F->l[0] = T2_VEC_WG;
    return 1;
}

/* A held matmul_t2_vec launch of a gate/up pair and the GLU of its outputs over the gate rows:
 * the launch takes the GLU (GLU mode: half the work-groups' rows are gate rows). */
static int vec_glu(const cl_backend *b, cl_launch *H, const rtr_op *mm, const rtr_op *g) {
    int n = mm->p.mm.n[0];
    if (g->rows != 1 || g->p.glu.n != n || !same_ref(g->a, mm->p.mm.out[0]) || !same_ref(g->b, mm->p.mm.out[1]) ||
        !same_ref(g->dst, mm->p.mm.out[0]) || g->p.glu.act < 0 || g->p.glu.act > 2)
        return 0;
    if (H->k == K_T2_VEC_S && H->p.i[9] && !b->no_vec_glu) {
        /* matmul_t2_vec_g: more pieces a work-item, so fewer lanes a row */
        int kw4 = H->p.i[1] / 64, lpr = 4;
        while (lpr < 32 && kw4 > lpr * T2_VEC_MAXUG) lpr *= 2;
        H->k = K_T2_VEC_G;
        H->p.i[5] = lpr;
    }
    size_t half = T2_VEC_WG / (size_t)H->p.i[5] / 2;
    H->p.i[6] = 1 + g->p.glu.act;
    H->g[0] = ((size_t)n + half - 1) / half * T2_VEC_WG;
    return 1;
}

/* a vec launch that a GLU may follow */
static int glu_candidate(const rtr_op *mm) {
    return mm->p.mm.n_mat == 2 && mm->p.mm.n[0] == mm->p.mm.n[1] && !mm->p.mm.accum && mm->p.mm.n[0] > 0 &&
           mm->p.mm.out[0].buf != mm->p.mm.out[1].buf;
}

/* A one-token product of three matrices that the ROPE of its first two outputs and the
 * KV_STORE of its last two may follow: held back as HELD_QKV while they arrive. */
static int qkv_candidate(const rtr_op *mm) {
    return mm->p.mm.n_mat == 3 && !mm->p.mm.accum && mm->p.mm.n[1] == mm->p.mm.n[2] &&
           mm->p.mm.n[0] % 4 == 0 && mm->p.mm.n[1] % 4 == 0;
}

/* The next op of a HELD_QKV chain (held_op[0] the product, then the ROPEs taken so far): 1 when
 * it joined (the ROPEs are kept; the KV_STORE turns the held launch into RoPE/KV mode, see
 * matmul_t2.cl, and submits it), 0 when it does not belong. L is op's own launch. */
static int qkv_chain(cl_backend *b, const rtr_op *op, const cl_launch *L, int *rc, rtr_err *err) {
    const rtr_op *mm = &b->held_op[0];
    cl_launch *H = &b->held_launch;
    *rc = 0;
    if (op->kind == RTR_OP_ROPE && b->held_n < 3) {
        int k = b->held_n == 2, hd = op->p.rope.head_dim;
        if (op->rows != 1 || op->p.rope.rot_dim != hd || hd % 4 || !same_ref(op->a, mm->p.mm.out[k]) ||
            op->p.rope.n_head * hd != mm->p.mm.n[k] || (k && !compatible_ropes(&b->held_op[1], op)))
            return 0;
        b->held_op[b->held_n++] = *op;
        return 1;
    }
    if (op->kind != RTR_OP_KV_STORE || b->held_n != 3) return 0;
    const rtr_op *rk = &b->held_op[2];
    if (op->rows != 1 || !same_ref(op->a, mm->p.mm.out[1]) || !same_ref(op->b, mm->p.mm.out[2]) ||
        op->p.kv.n != mm->p.mm.n[1])
        return 0;
    /* the caches, slots and positions are none of the product's (or its norm's) buffers */
    cl_mem side[4] = {L->m[4], L->m[5], L->m[6], M(rk->b)};
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 10; j++)
            if (side[i] && side[i] == H->m[j]) return 0;
    cl_ulong po, to;
    if ((*rc = eoff(rk->b, 4, &po, "positions", err)) ||
        (*rc = cl_rope_tab(b, rk->p.rope.theta, rk->p.rope.head_dim, &to, err)))
        return 1;
    H->m[10] = M(rk->b);
    H->m[11] = L->m[6];
    H->m[12] = L->m[4];
    H->m[13] = L->m[5];
    H->m[14] = b->rope_tab;
    H->p.off[10] = po;
    H->p.off[11] = L->p.off[6];
    H->p.off[12] = L->p.off[4];
    H->p.off[13] = L->p.off[5];
    H->p.off[14] = to;
    H->p.i[10] = 1 | (L->p.i[6] ? 2 : 0);
    H->p.i[11] = rk->p.rope.head_dim;
    H->p.i[12] = L->p.i[5];
    H->p.i[13] = L->p.i[7];
    b->held = 0;
    *rc = submit(b, H, err);
    return 1;
}

static void hold(cl_backend *b, int kind, const cl_launch *L, const rtr_op *op) {
    b->held = kind;
    b->held_launch = *L;
    b->held_op[0] = *op;
    b->held_n = 1;
}

int cl_run(rtr_backend *be, const rtr_op *op, rtr_err *err) {
    cl_backend *b = (cl_backend *)be;
    cl_launch L[2];
    int nl = 0, r;
    if (op->rows < 0) return rtr_seterr(err, RTR_EARG, "opencl: negative row count");
    switch (op->kind) {
    case RTR_OP_EMBED: r = op_embed(b, op, L, &nl, err); break;
    case RTR_OP_RMSNORM: r = op_rmsnorm(b, op, L, &nl, err); break;
    case RTR_OP_QUANT: r = op_quant(b, op, L, &nl, err); break;
    case RTR_OP_MATMUL_T2: r = op_matmul_t2(b, op, L, &nl, err); break;
    case RTR_OP_MATMUL_F: r = op_matmul_f(b, op, L, &nl, err); break;
    case RTR_OP_ROPE: r = op_rope(b, op, L, &nl, err); break;
    case RTR_OP_KV_STORE: r = op_kv_store(b, op, L, &nl, err); break;
    case RTR_OP_ATTN: r = op_attn(b, op, L, &nl, err); break;
    case RTR_OP_GLU: r = op_glu(b, op, L, &nl, err); break;
    case RTR_OP_ADD: r = op_add(b, op, L, &nl, err); break;
    case RTR_OP_ARGMAX: r = op_argmax(b, op, L, &nl, err); break;
    default: return rtr_seterr(err, RTR_EARG, "opencl: unknown op %d", op->kind);
    }
    if (r || op->rows == 0 || nl == 0) return r;
    cl_launch *H = &b->held_launch;
    if (b->held == HELD_QKV) {
        if (qkv_chain(b, op, &L[0], &r, err)) return r;
        if ((r = cl_flush_held(b, err))) return r;
    }
    if (op->kind == RTR_OP_ROPE) {
        if (b->held == HELD_ROPE && b->held_n == 1 && compatible_ropes(&b->held_op[0], op)) {
            /* second RoPE (k) joins the first (q) as heads nh0.. of the same launch */
            H->m[2] = L[0].m[0];
            H->p.off[2] = L[0].p.off[0];
            H->p.i[1] = L[0].p.i[0];
            H->g[1] += L[0].g[1];
            b->held_op[b->held_n++] = *op;
            return 0;
        }
        if ((r = cl_flush_held(b, err))) return r;
        hold(b, HELD_ROPE, &L[0], op);
        return 0;
    }
    if (op->kind == RTR_OP_KV_STORE && b->held == HELD_ROPE) {
        const rtr_op *k = &b->held_op[b->held_n - 1];
        if (same_ref(op->a, k->a) && op->rows == k->rows &&
            op->p.kv.n == k->p.rope.n_head * k->p.rope.head_dim) {
            if (b->held_n == 1) { /* only the k RoPE: it moves to the stored-heads slot */
                H->m[2] = H->m[0];
                H->p.off[2] = H->p.off[0];
                H->p.i[1] = H->p.i[0];
                H->m[0] = NULL;
                H->p.off[0] = 0;
                H->p.i[0] = 0;
            }
            for (int i = 3; i < 7; i++) {
                H->m[i] = L[0].m[i];
                H->p.off[i] = L[0].p.off[i];
            }
            H->p.i[4] = 1;
            H->p.i[5] = L[0].p.i[5];
            H->p.i[6] = L[0].p.i[6];
            H->p.i[7] = L[0].p.i[7];
            H->g[1] = (size_t)H->p.i[0] + 2 * (size_t)H->p.i[1];
            b->held = 0;
            return submit(b, H, err);
        }
    }
    if (op->kind == RTR_OP_GLU && b->held == HELD_MM && vec_glu(b, H, &b->held_op[0], op)) {
        b->held = 0;
        return submit(b, H, err);
    }
    if (op->kind == RTR_OP_MATMUL_T2 && op->rows == 1) {
        /* one token: matmul_t2_vec, with the held norm in front if it feeds this product, and
         * held back itself when a GLU may follow */
        const rtr_op *nm = b->held == HELD_NORM && norm_feeds(&b->held_op[0], op) ? &b->held_op[0] : NULL;
        cl_launch F;
        if (vec_launch(b, nm, op, &L[0], &F)) {
            if (nm) b->held = 0;
            else if ((r = cl_flush_held(b, err))) return r;
            if (glu_candidate(op)) {
                hold(b, HELD_MM, &F, op);
                return 0;
            }
            if (qkv_candidate(op) && !b->no_fuse_rkv) {
                hold(b, HELD_QKV, &F, op);
                return 0;
            }
            return submit(b, &F, err);
        }
    }
    if (op->kind == RTR_OP_RMSNORM && b->held == HELD_GLU) {
        const rtr_op *g = &b->held_op[0];
        if (same_ref(op->a, g->dst) && !op->b.buf && op->rows == g->rows && op->p.norm.n == g->p.glu.n) {
            /* the norm computes act(a) * b itself and writes it where the GLU would have */
            L[0].p.i[1] |= NF_GLU;
            L[0].p.i[3] = g->p.glu.act;
            L[0].m[6] = H->m[1];
            L[0].m[7] = H->m[2];
            L[0].p.off[6] = H->p.off[1];
            L[0].p.off[7] = H->p.off[2];
            b->held = 0;
            return submit(b, &L[0], err);
        }
    }
    if ((r = cl_flush_held(b, err))) return r;
    if (op->kind == RTR_OP_RMSNORM && norm_fusable(op)) {
        hold(b, HELD_NORM, &L[0], op);
        return 0;
    }
    if (op->kind == RTR_OP_GLU) {
        hold(b, HELD_GLU, &L[0], op);
        return 0;
    }
    for (int i = 0; i < nl && !r; i++) r = submit(b, &L[i], err);
    return r;
}
