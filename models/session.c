/* session.c: sessions and the forward pass. One graph serves every architecture rotor knows
 * (2B4T "bitnet", the "bitnet-qwen3" embedding model), switched by hyper-parameter flags, and is
 * expressed only in backend ops, so it runs unchanged on every backend.
 *
 * The KV cache is a ring of cap = n_ctx + slack slots per layer. Position p lives in slot p while
 * p < cap, later in n_sink + (p - n_sink) mod (cap - n_sink): the first n_sink positions (attention
 * sinks: BOS and the start of the system prompt) are never overwritten. A query at position p
 * sees the sinks and the newest n_ctx - n_sink positions (its window), so the result does not
 * depend on how tokens are batched: once the ring wraps, batches are cut to slack + 1 tokens so
 * that no token's write evicts anything an earlier token of the same batch still needs. */
#include "model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define RING_SLACK 32

static int slot_of(const rtr_session *s, int p) {
    if (p < s->cap) return p;
    return s->n_sink + (p - s->n_sink) % (s->cap - s->n_sink);
}

/* slot_pos[sl] = p, the change remembered for the next device write */
static void set_slot(rtr_session *s, int sl, int p) {
    s->slot_pos[sl] = p;
    for (int c = 0; c < 2; c++) {
        if (sl < s->dirty_lo[c]) s->dirty_lo[c] = sl;
        if (sl >= s->dirty_hi[c]) s->dirty_hi[c] = sl + 1;
    }
}

static void free_bufs(rtr_session *s) {
    rtr_backend *be = s->m->be;
    rtr_buf *bs[] = {s->kc, s->vc, s->spos, s->tok, s->spos2, s->tok2, s->x, s->xn, s->q,
                     s->k, s->v, s->att, s->g, s->u, s->qa, s->qs, s->out, s->top};
    for (size_t i = 0; i < sizeof bs / sizeof bs[0]; i++)
        if (bs[i]) be->ops->buf_free(be, bs[i]);
}

int rtr_session_new(rtr_session **out, rtr_model *m, const rtr_session_opts *o, rtr_err *err) {
    *out = NULL;
    const rtr_hparams *h = &m->hp;
    rtr_session *s = calloc(1, sizeof *s);
    if (!s) return rtr_seterr(err, RTR_ENOMEM, "out of memory");
    s->m = m;
    s->n_ctx = o && o->n_ctx > 0 ? o->n_ctx : (h->max_ctx < 4096 ? h->max_ctx : 4096);
    s->n_sink = o && o->n_sink > 0 ? o->n_sink : 4;
    s->n_batch = o && o->n_batch > 0 ? o->n_batch : 512;
    s->cancel = o ? o->cancel : NULL;
    /* f32 by default: reference-exact; f16 halves the cache. Embedding passes are short and
     * always use f32. */
    s->kv_type = o && o->kv_f16 && !h->pooling_last ? RTR_T_F16 : RTR_T_F32;
    if (o && o->n_sink < 0) s->n_sink = 0;
    if (s->n_ctx < 8 || s->n_ctx > (1 << 22)) {
        int c = s->n_ctx;
        free(s);
        return rtr_seterr(err, RTR_EARG, "context size %d is out of range (8 .. 4194304)", c);
    }
    if (s->n_sink >= s->n_ctx / 2) s->n_sink = s->n_ctx / 2 - 1;
    if (s->n_batch > s->n_ctx) s->n_batch = s->n_ctx;
    s->slack = RING_SLACK;
    s->cap = s->n_ctx + s->slack;
    int D = h->n_embd, qd = h->n_head * h->head_dim, kvd = h->n_head_kv * h->head_dim, F = h->n_ff, B = s->n_batch;
    int wide = D > qd ? D : qd;
    if (F > wide) wide = F;
    size_t kpad = (size_t)rtr_t2_kpad((uint64_t)wide);
    s->slot_pos = malloc((size_t)s->cap * 4);
    s->h_tok = malloc((size_t)B * 12);
    s->logits = calloc((size_t)h->n_vocab, 4);
    s->view = s->logits;
    if (!s->slot_pos || !s->h_tok || !s->logits) { rtr_session_free(s); return rtr_seterr(err, RTR_ENOMEM, "out of memory"); }
    rtr_backend *be = m->be;
    size_t kv_elt = s->kv_type == RTR_T_F32 ? 4 : 2;
    size_t kvbytes = (size_t)h->n_layer * s->cap * kvd * kv_elt;
    int ahead = be->ops->end_ahead && be->ops->wait_ahead && !h->pooling_last;
    struct { rtr_buf **b; size_t bytes; int flags; } want[] = {
        {&s->kc, kvbytes, 0}, {&s->vc, kvbytes, 0},
        {&s->spos, (size_t)s->cap * 4, 0}, {&s->tok, (size_t)B * 12, 0},
        {&s->spos2, ahead ? (size_t)s->cap * 4 : 0, 0}, {&s->tok2, ahead ? 12 : 0, 0},
        {&s->x, (size_t)B * D * 4, 0}, {&s->xn, (size_t)B * wide * 4, 0}, {&s->q, (size_t)B * qd * 4, 0},
        {&s->k, (size_t)B * kvd * 4, 0}, {&s->v, (size_t)B * kvd * 4, 0}, {&s->att, (size_t)B * qd * 4, 0},
        {&s->g, (size_t)B * F * 4, 0}, {&s->u, (size_t)B * F * 4, 0}, {&s->qa, (size_t)B * kpad, 0},
        {&s->qs, (size_t)B * 4, 0}, {&s->out, (size_t)h->n_vocab * 4, RTR_BUF_HOST}, {&s->top, 4, 0},
    };
    if (be->ops->reserve) { /* the buffers below without flags, as one block where the backend can */
        size_t total = 0;
        for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
            if (!want[i].flags) total += want[i].bytes;
        be->ops->reserve(be, total, 0);
    }
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        if (!want[i].bytes) continue;
        *want[i].b = be->ops->buf_new(be, want[i].bytes, NULL, want[i].flags, err);
        if (!*want[i].b) {
            int code = err ? err->code : RTR_ENOMEM;
            if (code == RTR_ENOMEM && i < 2)
                rtr_seterr(err, code, "not enough memory for a %d-token context (%.0f MB of KV cache); try a smaller -c", s->n_ctx, 2.0 * kvbytes / 1e6);
            rtr_session_free(s);
            return code;
        }
        s->bytes += want[i].bytes;
    }
    rtr_session_reset(s);
    *out = s;
    return 0;
}

void rtr_session_free(rtr_session *s) {
    if (!s) return;
    (void)rtr_session_sync(s, NULL);
    free_bufs(s);
    free(s->slot_pos); free(s->h_tok); free(s->logits);
    free(s);
}

void rtr_session_reset(rtr_session *s) {
    (void)rtr_session_sync(s, NULL);
    for (int i = 0; i < s->cap; i++) s->slot_pos[i] = -1;
    for (int c = 0; c < 2; c++) {
        s->dirty_lo[c] = 0;
        s->dirty_hi[c] = s->cap;
    }
    s->pos = 0;
}

int rtr_session_warmup(rtr_session *s, rtr_err *err) {
    if (s->m->hp.pooling_last || s->cap < 8 || !strcmp(rtr_model_backend(s->m), "cpu")) return 0;
    rtr_session_reset(s);
    int32_t ids[2] = {0, 0}, top = 0; /* id 0 is in every vocabulary */
    int r = rtr_eval(s, ids, 2, err);
    if (!r) r = rtr_eval(s, ids, 1, err);
    for (int i = 0; !r && i < 4; i++) r = rtr_eval_argmax_ahead(s, top, &top, err);
    if (!r) r = rtr_session_sync(s, err);
    rtr_session_reset(s);
    return r;
}

int rtr_session_pos(const rtr_session *s) { return s->pos - s->ahead; }
int rtr_session_ctx(const rtr_session *s) { return s->n_ctx; }
size_t rtr_session_bytes(const rtr_session *s) { return s->bytes; }

int rtr_session_rewind(rtr_session *s, int n) {
    if (rtr_session_sync(s, NULL)) return RTR_EBACKEND;
    if (n < 0 || n > s->pos) return RTR_EARG;
    for (int i = 0; i < n; i++) {
        int p = s->pos - 1 - i, sl = slot_of(s, p);
        if (s->slot_pos[sl] == p) set_slot(s, sl, -1);
    }
    s->pos -= n;
    return 0;
}

const float *rtr_logits(const rtr_session *s) { return s->view; }

static rtr_ref R(rtr_buf *b, size_t off) { rtr_ref r = {b, off}; return r; }
static const rtr_ref NONE = {NULL, 0};

/* Norm of rows of a (optionally after a += b), then int8 quantization into qa/qs. */
static rtr_op norm_quant(const rtr_session *s, int rows, rtr_ref a, rtr_ref resid, rtr_buf *w, int n) {
    rtr_op op = {0};
    op.kind = RTR_OP_RMSNORM;
    op.rows = rows;
    op.a = a; op.b = resid; op.c = R(w, 0);
    op.dst2 = R(s->qa, 0); op.dst3 = R(s->qs, 0);
    op.p.norm.n = n;
    op.p.norm.eps = s->m->hp.norm_eps;
    return op;
}

static rtr_op matmul(const rtr_session *s, int rows, int k, int accum) {
    rtr_op op = {0};
    op.kind = RTR_OP_MATMUL_T2;
    op.rows = rows;
    op.a = R(s->qa, 0); op.b = R(s->qs, 0);
    op.p.mm.k = k;
    op.p.mm.accum = accum;
    return op;
}

static void mm_add(rtr_op *op, const rtr_layer *L, int p, rtr_buf *out, int n) {
    int i = op->p.mm.n_mat++;
    op->p.mm.w[i] = R(L->w[p], 0);
    op->p.mm.out[i] = R(out, 0);
    op->p.mm.n[i] = n;
    op->p.mm.alpha[i] = L->alpha[p];
}

#define RUN(opv) do { rtr_op o_ = (opv); if ((r = ops->run(be, &o_, err))) return r; } while (0)

/* What a batch leaves: nothing (OUT_NONE); the last row's result in s->out, logits for LMs and
 * the final-norm row for embedding models (OUT_VIEW); the logits' argmax in *top, the logits
 * staying on the device (OUT_TOP); or that argmax written where the next one-token batch reads
 * its id, the batch ended without waiting (OUT_AHEAD; OUT_CHAIN: this batch's own id is the
 * one the batch before wrote there). */
enum { OUT_NONE, OUT_VIEW, OUT_TOP, OUT_AHEAD, OUT_CHAIN };

/* One batch of n tokens whose ids, positions and slots are staged in the session, on device copy
 * cp of them (1 only for batches ahead; the one after it uses the other copy, where an ahead
 * batch writes its choice). */
static int forward(rtr_session *s, int n, int cp, int out, int32_t *top, rtr_err *err) {
    rtr_model *m = s->m;
    const rtr_hparams *h = &m->hp;
    rtr_backend *be = m->be;
    const rtr_backend_ops *ops = be->ops;
    int D = h->n_embd, hd = h->head_dim, qd = h->n_head * hd, kvd = h->n_head_kv * hd, F = h->n_ff;
    int r;
    /* ids, positions and slots, staged one run after the other by rtr_eval: one write */
    rtr_buf *tok = cp ? s->tok2 : s->tok, *spos = cp ? s->spos2 : s->spos;
    rtr_ref ids = R(tok, 0), qpos = R(tok, (size_t)n * 4), slots = R(tok, (size_t)n * 8);
    if (out == OUT_CHAIN) r = ops->buf_write(be, tok, 4, s->h_tok + 1, 8, err);
    else r = ops->buf_write(be, tok, 0, s->h_tok, (size_t)n * 12, err);
    if (r) return r;
    int want_out = out != OUT_NONE, ahead = out == OUT_AHEAD || out == OUT_CHAIN;
    if (s->dirty_hi[cp] > s->dirty_lo[cp]) { /* only the slots that changed: one or two a decode step */
        size_t lo = (size_t)s->dirty_lo[cp];
        if ((r = ops->buf_write(be, spos, lo * 4, s->slot_pos + lo, (size_t)(s->dirty_hi[cp] - s->dirty_lo[cp]) * 4, err)))
            return r;
        s->dirty_lo[cp] = s->cap;
        s->dirty_hi[cp] = 0;
    }
    if ((r = ops->begin(be, err))) return r;
    rtr_op op = {0};
    op.kind = RTR_OP_EMBED; op.rows = n;
    op.dst = R(s->x, 0); op.a = R(m->tok_embd, 0); op.b = ids;
    op.p.emb.type = m->embd_type; op.p.emb.n_rows = h->n_vocab; op.p.emb.d = D; op.p.emb.scale = h->embd_scale;
    RUN(op);
    size_t kv_layer = (size_t)s->cap * kvd * (s->kv_type == RTR_T_F32 ? 4 : 2);
    for (int l = 0; l < h->n_layer; l++) {
        const rtr_layer *L = &m->layers[l];
        /* attention block */
        if (h->in_norms) {
            rtr_op nm = norm_quant(s, n, R(s->x, 0), NONE, L->attn_norm, D);
            nm.dst = R(s->xn, 0); nm.dst2 = NONE; nm.dst3 = NONE;
            RUN(nm);
            rtr_buf *outs[3] = {s->q, s->k, s->v};
            int dims[3] = {qd, kvd, kvd};
            for (int p = P_Q; p <= P_V; p++) {
                RUN(norm_quant(s, n, R(s->xn, 0), NONE, L->in_norm[p], D));
                rtr_op mm = matmul(s, n, D, 0);
                mm_add(&mm, L, p, outs[p], dims[p]);
                RUN(mm);
            }
        } else {
            RUN(norm_quant(s, n, R(s->x, 0), NONE, L->attn_norm, D));
            rtr_op mm = matmul(s, n, D, 0);
            mm_add(&mm, L, P_Q, s->q, qd);
            mm_add(&mm, L, P_K, s->k, kvd);
            mm_add(&mm, L, P_V, s->v, kvd);
            RUN(mm);
        }
        if (h->qk_norm) {
            rtr_op qn = {0};
            qn.kind = RTR_OP_RMSNORM; qn.p.norm.n = hd; qn.p.norm.eps = h->norm_eps;
            qn.rows = n * h->n_head; qn.a = R(s->q, 0); qn.dst = R(s->q, 0); qn.c = R(L->q_norm, 0);
            RUN(qn);
            qn.rows = n * h->n_head_kv; qn.a = R(s->k, 0); qn.dst = R(s->k, 0); qn.c = R(L->k_norm, 0);
            RUN(qn);
        }
        rtr_op rp = {0};
        rp.kind = RTR_OP_ROPE; rp.rows = n; rp.b = qpos;
        rp.p.rope.head_dim = hd; rp.p.rope.rot_dim = hd; rp.p.rope.theta = h->rope_theta;
        rp.a = R(s->q, 0); rp.p.rope.n_head = h->n_head;
        RUN(rp);
        rp.a = R(s->k, 0); rp.p.rope.n_head = h->n_head_kv;
        RUN(rp);
        rtr_op kv = {0};
        kv.kind = RTR_OP_KV_STORE; kv.rows = n; kv.a = R(s->k, 0); kv.b = R(s->v, 0); kv.c = slots;
        kv.dst = R(s->kc, kv_layer * l); kv.dst2 = R(s->vc, kv_layer * l); kv.p.kv.n = kvd;
        kv.p.kv.type = s->kv_type;
        RUN(kv);
        rtr_op at = {0};
        at.kind = RTR_OP_ATTN; at.rows = n; at.a = R(s->q, 0);
        at.b = R(s->kc, kv_layer * l); at.c = R(s->vc, kv_layer * l); at.d = R(spos, 0); at.e = qpos;
        at.dst = R(s->att, 0);
        at.p.attn.n_head = h->n_head; at.p.attn.n_kv = h->n_head_kv; at.p.attn.head_dim = hd;
        /* Until the ring wraps, position p sits in slot p, so no slot at or past the batch's end
         * position can be visible: backends scan only that prefix (rounded up so that GPU command
         * buffers recorded for one token can be reused for the next). */
        int end = s->h_pos[n - 1] + 1, scan = s->cap;
        if (end < s->cap && s->pos + n <= s->cap) scan = (end + 255) / 256 * 256 < s->cap ? (end + 255) / 256 * 256 : s->cap;
        at.p.attn.cap = scan; at.p.attn.n_sink = s->n_sink; at.p.attn.window = s->n_ctx - s->n_sink;
        at.p.attn.scale = 1.0f / sqrtf((float)hd);
        at.p.attn.kv_type = s->kv_type;
        RUN(at);
        /* o projection: the attention output is normalized (SubLN or the o input norm), then
         * quantized; the product is added into the residual stream */
        RUN(norm_quant(s, n, R(s->att, 0), NONE, h->in_norms ? L->in_norm[P_O] : L->attn_sub_norm, qd));
        rtr_op mo = matmul(s, n, qd, 1);
        mm_add(&mo, L, P_O, s->x, D);
        RUN(mo);
        /* feed-forward block */
        if (h->in_norms) {
            rtr_op nm = norm_quant(s, n, R(s->x, 0), NONE, L->ffn_norm, D);
            nm.dst = R(s->xn, 0); nm.dst2 = NONE; nm.dst3 = NONE;
            RUN(nm);
            rtr_buf *outs[2] = {s->g, s->u};
            for (int p = P_GATE; p <= P_UP; p++) {
                RUN(norm_quant(s, n, R(s->xn, 0), NONE, L->in_norm[p], D));
                rtr_op mm = matmul(s, n, D, 0);
                mm_add(&mm, L, p, outs[p - P_GATE], F);
                RUN(mm);
            }
        } else {
            RUN(norm_quant(s, n, R(s->x, 0), NONE, L->ffn_norm, D));
            rtr_op mm = matmul(s, n, D, 0);
            mm_add(&mm, L, P_GATE, s->g, F);
            mm_add(&mm, L, P_UP, s->u, F);
            RUN(mm);
        }
        rtr_op gl = {0};
        gl.kind = RTR_OP_GLU; gl.rows = n; gl.a = R(s->g, 0); gl.b = R(s->u, 0); gl.dst = R(s->g, 0);
        gl.p.glu.n = F; gl.p.glu.act = h->act;
        RUN(gl);
        RUN(norm_quant(s, n, R(s->g, 0), NONE, h->in_norms ? L->in_norm[P_DOWN] : L->ffn_sub_norm, F));
        rtr_op md = matmul(s, n, F, 1);
        mm_add(&md, L, P_DOWN, s->x, D);
        RUN(md);
    }
    if (want_out) {
        rtr_op fn = {0};
        fn.kind = RTR_OP_RMSNORM; fn.rows = 1; fn.p.norm.n = D; fn.p.norm.eps = h->norm_eps;
        fn.a = R(s->x, (size_t)(n - 1) * D * 4); fn.c = R(m->output_norm, 0);
        fn.dst = h->pooling_last ? R(s->out, 0) : R(s->xn, 0);
        RUN(fn);
        if (!h->pooling_last) {
            rtr_op hd_ = {0};
            hd_.kind = RTR_OP_MATMUL_F; hd_.rows = 1; hd_.a = R(s->xn, 0); hd_.dst = R(s->out, 0);
            hd_.p.mf.type = m->output_type; hd_.p.mf.n = h->n_vocab; hd_.p.mf.k = D;
            hd_.p.mm.w[0] = R(m->output, 0);
            RUN(hd_);
            if (out != OUT_VIEW) {
                rtr_op am = {0};
                am.kind = RTR_OP_ARGMAX; am.rows = 1; am.a = R(s->out, 0);
                am.dst = ahead ? R(cp ? s->tok : s->tok2, 0) : R(s->top, 0); /* the next batch's id */
                am.p.add.n = h->n_vocab;
                RUN(am);
            }
        }
    }
    if (ahead) {
        s->view = NULL;
        return ops->end_ahead(be, cp ? s->tok : s->tok2, 0, 4, err);
    }
    if ((r = ops->end(be, err))) return r;
    if (out == OUT_TOP) {
        s->view = NULL;
        return ops->buf_read(be, s->top, 0, top, 4, err);
    }
    if (want_out) {
        size_t bytes = (size_t)(h->pooling_last ? D : h->n_vocab) * 4;
        s->view = s->logits;
        rtr_err e2, *ep = err ? err : &e2;
        const float *v = ops->buf_view(be, s->out, 0, bytes, ep);
        if (!v) return ep->code;
        s->view = v;
    }
    return 0;
}

static int check_ids(const rtr_session *s, const int32_t *ids, int n, rtr_err *err) {
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= s->m->hp.n_vocab)
            return rtr_seterr(err, RTR_EARG, "token id %d is out of range (vocabulary %d)", ids[i], s->m->hp.n_vocab);
    return 0;
}

/* A batch of n tokens from the session's position stages its ids (ids NULL: -1, the batch
 * before chose it on the device), positions and slots one run after the other, and takes the
 * slots; unstage gives them back when the batch did not happen. */
static void stage(rtr_session *s, const int32_t *ids, int n) {
    s->h_ids = s->h_tok;
    s->h_pos = s->h_tok + n;
    s->h_slot = s->h_tok + 2 * n;
    for (int i = 0; i < n; i++) {
        int p = s->pos + i, sl = slot_of(s, p);
        s->h_ids[i] = ids ? ids[i] : -1;
        s->h_pos[i] = p;
        s->h_slot[i] = sl;
        set_slot(s, sl, p);
    }
}

static void unstage(rtr_session *s, int n) {
    for (int i = 0; i < n; i++)
        if (s->slot_pos[s->h_slot[i]] == s->pos + i) set_slot(s, s->h_slot[i], -1);
}

static int eval(rtr_session *s, const int32_t *ids, int n, int32_t *top, rtr_err *err) {
    int r = rtr_session_sync(s, err);
    if (r) return r;
    if (n <= 0) return rtr_seterr(err, RTR_EARG, "nothing to evaluate");
    if ((r = check_ids(s, ids, n, err))) return r;
    int done = 0;
    while (done < n) {
        if (s->cancel && *s->cancel) return rtr_seterr(err, RTR_EINTR, "interrupted");
        if (s->pos > INT32_MAX - n) return rtr_seterr(err, RTR_EARG, "position counter exhausted");
        int chunk = n - done < s->n_batch ? n - done : s->n_batch;
        /* once a batch would evict, keep it short enough that it cannot evict its own window */
        if (s->pos + chunk > s->cap && chunk > s->slack + 1) {
            int free_slots = s->cap - s->pos;
            chunk = free_slots > s->slack + 1 ? free_slots : s->slack + 1;
        }
        stage(s, ids + done, chunk);
        r = forward(s, chunk, 0, done + chunk < n ? OUT_NONE : top ? OUT_TOP : OUT_VIEW, top, err);
        if (r) {
            unstage(s, chunk);
            return r;
        }
        s->pos += chunk;
        done += chunk;
    }
    return 0;
}

int rtr_eval(rtr_session *s, const int32_t *ids, int n, rtr_err *err) { return eval(s, ids, n, NULL, err); }

int rtr_eval_argmax(rtr_session *s, const int32_t *ids, int n, int32_t *top, rtr_err *err) {
    if (s->m->hp.pooling_last) return rtr_seterr(err, RTR_EARG, "an embedding model has no logits to choose from");
    return eval(s, ids, n, top, err);
}

/* One token at the session's position evaluated ahead: *id, or (id NULL) the one the batch
 * before chose on the device. */
static int eval_ahead1(rtr_session *s, const int32_t *id, rtr_err *err) {
    if (s->cancel && *s->cancel) return rtr_seterr(err, RTR_EINTR, "interrupted");
    if (s->pos == INT32_MAX) return rtr_seterr(err, RTR_EARG, "position counter exhausted");
    stage(s, id, 1);
    int r = forward(s, 1, s->copy, id ? OUT_AHEAD : OUT_CHAIN, NULL, err);
    if (r) {
        unstage(s, 1);
        return r;
    }
    s->copy ^= 1; /* where this batch writes its choice */
    s->pos++;
    return 0;
}

int rtr_session_sync(rtr_session *s, rtr_err *err) {
    if (!s->ahead) return 0;
    s->ahead = 0;
    int32_t c;
    int r = s->m->be->ops->wait_ahead(s->m->be, &c, err);
    int p = s->pos - 1, sl = slot_of(s, p);
    if (s->slot_pos[sl] == p) set_slot(s, sl, -1);
    s->pos--;
    return r;
}

int rtr_eval_argmax_ahead(rtr_session *s, int32_t id, int32_t *top, rtr_err *err) {
    const rtr_hparams *h = &s->m->hp;
    rtr_backend *be = s->m->be;
    /* no second copy: a backend that cannot run ahead, or an embedding model (refused there) */
    if (!s->tok2) return rtr_eval_argmax(s, &id, 1, top, err);
    int r = check_ids(s, &id, 1, err);
    if (r) return r;
    if (s->ahead && s->ahead_id != id && (r = rtr_session_sync(s, err))) return r;
    int queued = s->ahead; /* id's evaluation is under way */
    s->ahead = 0;
    if (!queued && (r = eval_ahead1(s, &id, err))) return r;
    /* the next token's evaluation goes in behind id's before the host waits for id's choice */
    rtr_err e2;
    int r2 = eval_ahead1(s, NULL, err);
    int32_t c = -1;
    r = be->ops->wait_ahead(be, &c, r2 ? &e2 : err);
    if (r2) return r2;
    s->ahead = 1;
    s->ahead_id = c;
    if (!r && (c < 0 || c >= h->n_vocab))
        r = rtr_seterr(err, RTR_EBACKEND, "the backend chose token %d, outside the vocabulary", c);
    if (r) {
        rtr_session_sync(s, &e2);
        return r;
    }
    *top = c;
    return 0;
}

int rtr_embed(rtr_session *s, const int32_t *ids, int n, float *out, rtr_err *err) {
    const rtr_hparams *h = &s->m->hp;
    if (!h->pooling_last) return rtr_seterr(err, RTR_EARG, "this model is not an embedding model");
    if (n > s->n_ctx) return rtr_seterr(err, RTR_EARG, "text of %d tokens is longer than the context (%d)", n, s->n_ctx);
    rtr_session_reset(s);
    int r = rtr_eval(s, ids, n, err);
    if (r) return r;
    double ss = 0;
    for (int i = 0; i < h->n_embd; i++) ss += (double)s->view[i] * s->view[i];
    float inv = ss > 0 ? (float)(1.0 / sqrt(ss)) : 0;
    for (int i = 0; i < h->n_embd; i++) out[i] = s->view[i] * inv;
    return 0;
}
