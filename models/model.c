/* model.c: opening a .rotor model: hyper-parameters from the metadata, shape checks for every
 * tensor the architecture needs, backend selection with fallback to the CPU, and the weight
 * buffers (aliases of the mapped file on the CPU, one upload on a GPU). Also the tokenizer
 * entry points of rotor.h that need the model, and the probe of its device's read bandwidth. */
#include "model.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int rtr_seterr(rtr_err *err, int code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

double rtr_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

const char *rtr_strerror(int code) {
    switch (code) {
    case RTR_OK: return "ok";
    case RTR_EIO: return "i/o error";
    case RTR_EFORMAT: return "bad format";
    case RTR_ENOMEM: return "out of memory";
    case RTR_EBACKEND: return "backend error";
    case RTR_EARG: return "bad argument";
    case RTR_EINTR: return "interrupted";
    case RTR_ENOSPC: return "no space left";
    }
    return "error";
}

const char *rtr_backends_compiled(void) {
    return "cpu"
#ifdef RTR_HAVE_VULKAN
           " vulkan"
#endif
#ifdef RTR_HAVE_OPENCL
           " opencl"
#endif
        ;
}

static int meta_i(const rtr_file *f, const char *k, int64_t lo, int64_t hi, int def, int *out, rtr_err *err) {
    int64_t v;
    if (rtr_meta_int(f, k, &v)) {
        if (def != INT32_MIN) { *out = def; return 0; }
        return rtr_seterr(err, RTR_EFORMAT, "metadata key %s is missing", k);
    }
    if (v < lo || v > hi) return rtr_seterr(err, RTR_EFORMAT, "metadata %s = %lld is out of range", k, (long long)v);
    *out = (int)v;
    return 0;
}

static int read_hparams(rtr_model *m, rtr_err *err) {
    const rtr_file *f = &m->f;
    rtr_hparams *h = &m->hp;
    const char *s;
    size_t l;
    if (rtr_meta_str(f, "general.arch", &s, &l) || l >= sizeof m->arch)
        return rtr_seterr(err, RTR_EFORMAT, "metadata general.arch is missing");
    memcpy(m->arch, s, l);
    m->arch[l] = 0;
    if (strcmp(m->arch, "bitnet") && strcmp(m->arch, "bitnet-qwen3"))
        return rtr_seterr(err, RTR_EFORMAT, "unknown architecture '%s'", m->arch);
    int r = 0;
    r = r ? r : meta_i(f, "model.n_vocab", 1, 1 << 22, INT32_MIN, &h->n_vocab, err);
    r = r ? r : meta_i(f, "model.n_embd", 1, 1 << 16, INT32_MIN, &h->n_embd, err);
    r = r ? r : meta_i(f, "model.n_layer", 1, 1024, INT32_MIN, &h->n_layer, err);
    r = r ? r : meta_i(f, "model.n_head", 1, 1024, INT32_MIN, &h->n_head, err);
    r = r ? r : meta_i(f, "model.n_head_kv", 1, 1024, INT32_MIN, &h->n_head_kv, err);
    r = r ? r : meta_i(f, "model.head_dim", 2, 1024, INT32_MIN, &h->head_dim, err);
    r = r ? r : meta_i(f, "model.n_ff", 1, 1 << 18, INT32_MIN, &h->n_ff, err);
    r = r ? r : meta_i(f, "model.max_ctx", 1, 1 << 24, 4096, &h->max_ctx, err);
    r = r ? r : meta_i(f, "model.sub_norms", 0, 1, 0, &h->sub_norms, err);
    r = r ? r : meta_i(f, "model.in_norms", 0, 1, 0, &h->in_norms, err);
    r = r ? r : meta_i(f, "model.qk_norm", 0, 1, 0, &h->qk_norm, err);
    r = r ? r : meta_i(f, "tokenizer.bos", -1, h->n_vocab - 1, -1, &h->bos, err);
    r = r ? r : meta_i(f, "tokenizer.eos", -1, h->n_vocab - 1, -1, &h->eos, err);
    r = r ? r : meta_i(f, "tokenizer.eot", -1, h->n_vocab - 1, -1, &h->eot, err);
    r = r ? r : meta_i(f, "tokenizer.add_bos", 0, 1, 0, &h->add_bos, err);
    r = r ? r : meta_i(f, "tokenizer.add_eos", 0, 1, 0, &h->add_eos, err);
    if (r) return r;
    if (h->n_head % h->n_head_kv || h->head_dim % 2)
        return rtr_seterr(err, RTR_EFORMAT, "n_head %d is not a multiple of n_head_kv %d (or odd head_dim)", h->n_head, h->n_head_kv);
    double d;
    h->rope_theta = rtr_meta_float(f, "model.rope_theta", &d) ? 10000.0f : (float)d;
    h->norm_eps = rtr_meta_float(f, "model.norm_eps", &d) ? 1e-5f : (float)d;
    h->embd_scale = rtr_meta_float(f, "model.embd_scale", &d) ? 1.0f : (float)d;
    if (!(h->rope_theta > 0) || !(h->norm_eps > 0) || !isfinite(h->embd_scale))
        return rtr_seterr(err, RTR_EFORMAT, "bad rope_theta, norm_eps or embd_scale");
    h->act = RTR_ACT_RELU2;
    if (!rtr_meta_str(f, "model.act", &s, &l)) {
        if (l == 4 && !memcmp(s, "silu", 4)) h->act = RTR_ACT_SILU;
        else if (l == 9 && !memcmp(s, "gelu_tanh", 9)) h->act = RTR_ACT_GELU_TANH;
        else if (!(l == 5 && !memcmp(s, "relu2", 5))) return rtr_seterr(err, RTR_EFORMAT, "unknown activation '%.*s'", (int)l, s);
    }
    h->pooling_last = !rtr_meta_str(f, "model.pooling", &s, &l) && l == 4 && !memcmp(s, "last", 4);
    return 0;
}

/* Finds a tensor and checks its type class and shape. */
static const rtr_tensor *want(rtr_model *m, const char *name, int kind, uint64_t d0, uint64_t d1, rtr_err *err) {
    const rtr_tensor *t = rtr_file_tensor(&m->f, name);
    if (!t) { rtr_seterr(err, RTR_EFORMAT, "tensor %s is missing", name); return NULL; }
    int ok;
    if (kind == 'n') ok = t->type == RTR_T_F32 && t->ndim == 1 && t->shape[0] == d0;
    else if (kind == 't') ok = t->type == RTR_T_T2 && t->ndim == 2 && t->shape[0] == d0 && t->shape[1] == d1;
    else ok = (t->type == RTR_T_F32 || t->type == RTR_T_F16 || t->type == RTR_T_BF16 || t->type == RTR_T_Q8R) &&
              t->ndim == 2 && t->shape[0] == d0 && t->shape[1] == d1;
    if (!ok) {
        rtr_seterr(err, RTR_EFORMAT, "tensor %s has type %s and shape [%llu,%llu], expected %s [%llu,%llu]", name,
                   rtr_type_name((int)t->type), (unsigned long long)t->shape[0],
                   (unsigned long long)(t->ndim > 1 ? t->shape[1] : 0),
                   kind == 'n' ? "f32" : kind == 't' ? "t2" : "a float type", (unsigned long long)d0,
                   (unsigned long long)(kind == 'n' ? 0 : d1));
        return NULL;
    }
    return t;
}

typedef struct { uint64_t done, total; const rtr_model_opts *o; } upload_state;

static rtr_buf *upload(rtr_model *m, const rtr_tensor *t, rtr_err *err) {
    m->bytes_per_token += t->size;
    return m->be->ops->buf_new(m->be, t->size, t->data, RTR_BUF_WEIGHT, err);
}

static int load_weights(rtr_model *m, rtr_err *err) {
    rtr_hparams *h = &m->hp;
    int D = h->n_embd, qd = h->n_head * h->head_dim, kvd = h->n_head_kv * h->head_dim, F = h->n_ff;
    const rtr_tensor *t;
    if (m->be->ops->reserve) { /* what the uploads below will take, as one block where the backend can */
        size_t total = 0;
        for (uint32_t i = 0; i < m->f.n_tensors; i++) {
            const rtr_tensor *x = &m->f.tensors[i];
            if (!strncmp(x->name, "blk.", 4) || !strcmp(x->name, "tok_embd") || !strcmp(x->name, "output_norm") ||
                (!strcmp(x->name, "output") && !h->pooling_last))
                total += (size_t)x->size;
        }
        m->be->ops->reserve(m->be, total, RTR_BUF_WEIGHT);
    }
    char name[RTR_NAME_MAX];
    if (!(t = want(m, "tok_embd", 'f', (uint64_t)h->n_vocab, (uint64_t)D, err))) return err->code;
    m->embd_type = (int)t->type;
    if (!(m->tok_embd = m->be->ops->buf_new(m->be, t->size, t->data, RTR_BUF_WEIGHT, err))) return err->code;
    const rtr_tensor *out = rtr_file_tensor(&m->f, "output");
    if (out) {
        if (!(out = want(m, "output", 'f', (uint64_t)h->n_vocab, (uint64_t)D, err))) return err->code;
        m->output_type = (int)out->type;
        if (!h->pooling_last && !(m->output = upload(m, out, err))) return err->code;
    } else {
        m->output = m->tok_embd;
        m->output_type = m->embd_type;
        if (!h->pooling_last) m->bytes_per_token += t->size;
    }
    if (!(t = want(m, "output_norm", 'n', (uint64_t)D, 0, err)) || !(m->output_norm = upload(m, t, err))) return err->code;
    m->layers = calloc((size_t)h->n_layer, sizeof *m->layers);
    if (!m->layers) return rtr_seterr(err, RTR_ENOMEM, "out of memory");
    static const char *pn[P_COUNT] = {"attn_q", "attn_k", "attn_v", "attn_o", "ffn_gate", "ffn_up", "ffn_down"};
    const uint64_t pd[P_COUNT][2] = {{(uint64_t)qd, (uint64_t)D}, {(uint64_t)kvd, (uint64_t)D}, {(uint64_t)kvd, (uint64_t)D},
                                     {(uint64_t)D, (uint64_t)qd}, {(uint64_t)F, (uint64_t)D}, {(uint64_t)F, (uint64_t)D},
                                     {(uint64_t)D, (uint64_t)F}};
#define NORM(field, nm, dim)                                                             \
    do {                                                                                 \
        snprintf(name, sizeof name, "blk.%d." nm, l);                                    \
        if (!(t = want(m, name, 'n', (uint64_t)(dim), 0, err)) || !(L->field = upload(m, t, err))) \
            return err->code;                                                            \
    } while (0)
    for (int l = 0; l < h->n_layer; l++) {
        rtr_layer *L = &m->layers[l];
        NORM(attn_norm, "attn_norm", D);
        NORM(ffn_norm, "ffn_norm", D);
        if (h->sub_norms) { NORM(attn_sub_norm, "attn_sub_norm", qd); NORM(ffn_sub_norm, "ffn_sub_norm", F); }
        if (h->qk_norm) { NORM(q_norm, "attn_q_norm", h->head_dim); NORM(k_norm, "attn_k_norm", h->head_dim); }
        for (int p = 0; p < P_COUNT; p++) {
            snprintf(name, sizeof name, "blk.%d.%s", l, pn[p]);
            if (!(t = want(m, name, 't', pd[p][0], pd[p][1], err)) || !(L->w[p] = upload(m, t, err))) return err->code;
            L->alpha[p] = t->scale;
            if (h->in_norms) {
                snprintf(name, sizeof name, "blk.%d.%s.in_norm", l, pn[p]);
                if (!(t = want(m, name, 'n', pd[p][1], 0, err)) || !(L->in_norm[p] = upload(m, t, err))) return err->code;
            }
        }
    }
#undef NORM
    return 0;
}

static int start_backend(rtr_model *m, const rtr_model_opts *o, rtr_err *err) {
    rtr_backend_cfg cfg = {0};
    cfg.device = o ? o->device : -1;
    cfg.n_threads = o ? o->n_threads : 0;
    cfg.verbose = o ? o->verbose : 0;
    cfg.kernel = o ? o->kernel : NULL;
    const char *want_be = o && o->backend ? o->backend : "auto";
    if (strcmp(want_be, "auto")) {
        const rtr_backend_entry *e = rtr_backend_find(want_be);
        if (!e) return rtr_seterr(err, RTR_EBACKEND, "backend '%s' is not compiled into this rotor (have: %s)", want_be, rtr_backends_compiled());
        return e->create(&m->be, &cfg, err);
    }
    int n;
    const rtr_backend_entry *const *all = rtr_backend_all(&n);
    char why[256] = "";
    for (int i = 0; i < n; i++) {
        rtr_err e2 = {0};
        cfg.require_gpu = strcmp(all[i]->name, "cpu") != 0;
        if (!all[i]->create(&m->be, &cfg, &e2)) {
            if (why[0] && strcmp(all[i]->name, "cpu") == 0)
                snprintf(m->note, sizeof m->note, "no usable GPU (%.200s); running on the CPU", why);
            return 0;
        }
        if (!why[0]) snprintf(why, sizeof why, "%.250s", e2.msg);
    }
    return rtr_seterr(err, RTR_EBACKEND, "no backend could start: %s", why);
}

int rtr_model_open(rtr_model **out, const char *path, const rtr_model_opts *o, rtr_err *err) {
    *out = NULL;
    rtr_model *m = calloc(1, sizeof *m);
    if (!m) return rtr_seterr(err, RTR_ENOMEM, "out of memory");
    m->f.fd = -1;
    int r = rtr_file_open(&m->f, path, err);
    if (r) { free(m); return r; }
    if ((r = read_hparams(m, err))) goto fail;
    if ((r = rtr_tok_load(&m->tok, &m->f, err))) goto fail;
    if (rtr_tok_n_vocab(m->tok) > m->hp.n_vocab) { r = rtr_seterr(err, RTR_EFORMAT, "tokenizer has more tokens than the model"); goto fail; }
    const char *s;
    size_t l;
    if (rtr_meta_str(&m->f, "chat.template", &s, &l)) { s = ""; l = 0; }
    char *ct = malloc(l + 1);
    if (!ct) { r = rtr_seterr(err, RTR_ENOMEM, "out of memory"); goto fail; }
    memcpy(ct, s, l);
    ct[l] = 0;
    m->chat_template = ct;
    if ((r = start_backend(m, o, err))) goto fail;
    if ((r = load_weights(m, err))) goto fail;
    *out = m;
    return 0;
fail:
    if (err && r != RTR_ENOMEM && r != RTR_EBACKEND && strncmp(err->msg, path, strlen(path))) {
        char tmp[sizeof err->msg];
        snprintf(tmp, sizeof tmp, "%.100s: %.150s", path, err->msg);
        memcpy(err->msg, tmp, sizeof tmp);
    }
    rtr_model_close(m);
    return r;
}

void rtr_model_close(rtr_model *m) {
    if (!m) return;
    if (m->be) {
        const rtr_backend_ops *ops = m->be->ops;
        if (m->layers)
            for (int l = 0; l < m->hp.n_layer; l++) {
                rtr_layer *L = &m->layers[l];
                rtr_buf *bs[] = {L->attn_norm, L->ffn_norm, L->attn_sub_norm, L->ffn_sub_norm, L->q_norm, L->k_norm};
                for (size_t i = 0; i < sizeof bs / sizeof bs[0]; i++) if (bs[i]) ops->buf_free(m->be, bs[i]);
                for (int p = 0; p < P_COUNT; p++) {
                    if (L->w[p]) ops->buf_free(m->be, L->w[p]);
                    if (L->in_norm[p]) ops->buf_free(m->be, L->in_norm[p]);
                }
            }
        if (m->output && m->output != m->tok_embd) ops->buf_free(m->be, m->output);
        if (m->tok_embd) ops->buf_free(m->be, m->tok_embd);
        if (m->output_norm) ops->buf_free(m->be, m->output_norm);
        ops->destroy(m->be);
    }
    free(m->layers);
    free((void *)m->chat_template);
    if (m->tok) rtr_tok_free(m->tok);
    rtr_file_close(&m->f);
    free(m);
}

const char *rtr_model_note(const rtr_model *m) { return m->note; }
const char *rtr_model_backend(const rtr_model *m) { return m->be->ops->name; }
const char *rtr_model_arch(const rtr_model *m) { return m->arch; }
const char *rtr_model_chat_template(const rtr_model *m) { return m->chat_template; }
const char *rtr_model_device(const rtr_model *m) { return m->be->desc; }

void rtr_model_get_info(const rtr_model *m, rtr_model_info *i) {
    const rtr_hparams *h = &m->hp;
    memset(i, 0, sizeof *i);
    i->n_vocab = h->n_vocab; i->n_embd = h->n_embd; i->n_layer = h->n_layer; i->n_head = h->n_head;
    i->n_head_kv = h->n_head_kv; i->head_dim = h->head_dim; i->n_ff = h->n_ff; i->max_ctx = h->max_ctx;
    i->bos = h->bos; i->eos = h->eos; i->eot = h->eot;
    i->is_embedding = h->pooling_last;
    i->file_bytes = m->f.size;
    i->weight_bytes_per_token = m->bytes_per_token;
}

/* ---- the device's read bandwidth ---- */

#define BW_MAX ((size_t)512 << 20) /* bytes a pass streams: past the largest GPU caches (256 MB) */
#define BW_MIN ((size_t)64 << 20)  /* the least worth timing, where the device spares no more */
#define BW_K 4096                  /* f16 weights a row of the probe's product */
#define BW_PASSES 16               /* passes over the weights a batch, at most */
#define BW_BATCH_S 0.004           /* seconds a timed batch aims at */
#define BW_SPAN_S 1.0              /* seconds of timed batches, at most (at least one batch) */
#define BW_TRIES 256               /* timed batches, at most */
#define BW_FILL ((size_t)4 << 20)  /* bytes of weights a write while filling them */

/* The probe: the one-token float product the LM head runs (the backend's kernel for streaming
 * weights), over n rows of varied halves, `passes` times a batch, each pass into its own
 * output; the batch's time in *secs. */
typedef struct { rtr_buf *w, *x, *d; int n; } bw_bufs;

/* Fills the probe's weights with finite halves of varied bits (a zero-filled buffer can read
 * faster than memory allows where a device compresses what it stores), a chunk at a time. */
static int bw_fill(rtr_backend *be, rtr_buf *w, size_t bytes, rtr_err *err) {
    uint16_t *h = malloc(BW_FILL);
    if (!h) return rtr_seterr(err, RTR_ENOMEM, "out of memory");
    uint64_t s = 0x9e3779b97f4a7c15u;
    int r = 0;
    for (size_t off = 0; off < bytes && !r; off += BW_FILL) {
        size_t n = bytes - off < BW_FILL ? bytes - off : BW_FILL;
        for (size_t i = 0; i < n / 2; i++) {
            if (!(i & 3)) { s ^= s << 13; s ^= s >> 7; s ^= s << 17; } /* xorshift64, four halves a step */
            h[i] = (uint16_t)(s >> (i & 3) * 16) & 0xbfffu;             /* exponent field below 16: finite, under 2 */
        }
        r = be->ops->buf_write(be, w, off, h, n, err);
    }
    free(h);
    return r;
}

static int bw_batch(rtr_backend *be, const bw_bufs *b, int passes, double *secs, rtr_err *err) {
    double t0 = rtr_now();
    int r = be->ops->begin(be, err);
    for (int k = 0; k < passes && !r; k++) {
        rtr_op op;
        memset(&op, 0, sizeof op);
        op.kind = RTR_OP_MATMUL_F;
        op.rows = 1;
        op.a = (rtr_ref){b->x, 0};
        op.dst = (rtr_ref){b->d, (size_t)k * (size_t)b->n * 4};
        op.p.mf.type = RTR_T_F16;
        op.p.mf.n = b->n;
        op.p.mf.k = BW_K;
        op.p.mm.w[0] = (rtr_ref){b->w, 0};
        r = be->ops->run(be, &op, err);
    }
    if (!r) r = be->ops->end(be, err);
    *secs = rtr_now() - t0;
    return r;
}

/* One size: the weights filled, an untimed pass first (the batch's recording), then
 * batches of enough passes to take a few milliseconds (so that a submission's own cost stays
 * small beside them), the best of those that fit in a second: a GPU can stream at a third of
 * its speed for stretches of a second or more (BENCH.md), so a short probe can miss what the
 * memory does. */
static int bw_probe(rtr_backend *be, size_t bytes, double *gbs, rtr_err *err) {
    bw_bufs b = {NULL, NULL, NULL, (int)(bytes / 2 / BW_K)};
    size_t wb = (size_t)b.n * BW_K * 2;
    int r = 0;
    if (!(b.w = be->ops->buf_new(be, wb, NULL, 0, err)) || !(b.x = be->ops->buf_new(be, BW_K * 4, NULL, 0, err)) ||
        !(b.d = be->ops->buf_new(be, (size_t)b.n * 4 * BW_PASSES, NULL, 0, err)))
        r = err->code;
    if (!r) r = bw_fill(be, b.w, wb, err);
    double t = 0, spent = 0, best = 0;
    int passes = 1;
    if (!r) r = bw_batch(be, &b, 1, &t, err);
    if (!r && t < BW_BATCH_S) passes = t > BW_BATCH_S / BW_PASSES ? (int)(BW_BATCH_S / t) + 1 : BW_PASSES;
    if (!r && passes > 1) r = bw_batch(be, &b, passes, &t, err); /* untimed: its recording */
    for (int i = 0; !r && i < BW_TRIES && (i == 0 || spent < BW_SPAN_S); i++) {
        r = bw_batch(be, &b, passes, &t, err);
        double g = t > 0 ? (double)wb * passes / t / 1e9 : 0;
        if (g > best) best = g;
        spent += t;
    }
    rtr_buf *all[3] = {b.w, b.x, b.d};
    for (int i = 0; i < 3; i++)
        if (all[i]) be->ops->buf_free(be, all[i]);
    *gbs = best;
    return r;
}

int rtr_model_read_bandwidth(const rtr_model *m, double *gbs, rtr_err *err) {
    rtr_err e = {0};
    int r = RTR_ENOMEM;
    /* a device short of memory, or whose buffers may not be that large: half as much */
    for (size_t bytes = BW_MAX; bytes >= BW_MIN && r; bytes /= 2)
        if ((r = bw_probe(m->be, bytes, gbs, &e)) && r != RTR_ENOMEM && r != RTR_EARG) break;
    if (r) return rtr_seterr(err, r, "bandwidth probe: %s", e.msg);
    return 0;
}

/* ---- tokenizer entry points ---- */
int rtr_tokenize(const rtr_model *m, const char *text, size_t len, int flags, int32_t *ids, int cap) {
    int n = 0;
    if ((flags & RTR_TOK_BOS) && m->hp.add_bos && m->hp.bos >= 0) {
        if (cap > 0) ids[0] = m->hp.bos;
        n = 1;
    }
    int r = rtr_tok_encode(m->tok, text, len, !(flags & RTR_TOK_PLAIN), cap > n ? ids + n : NULL, cap > n ? cap - n : 0);
    if (r < 0) return r;
    n += r;
    if ((flags & RTR_TOK_EOS) && m->hp.add_eos && m->hp.eos >= 0) {
        if (n < cap) ids[n] = m->hp.eos;
        n++;
    }
    return n;
}

const char *rtr_token_bytes(const rtr_model *m, int32_t id, size_t *len) {
    return rtr_tok_bytes(m->tok, id, len);
}

int rtr_token_is_special(const rtr_model *m, int32_t id) { return rtr_tok_is_special(m->tok, id); }

int rtr_detok_push(rtr_detok *d, const rtr_model *m, int32_t id, char *out, size_t cap) {
    size_t n;
    const char *b = rtr_tok_bytes(m->tok, id, &n);
    return rtr_detok_push_bytes(d, b, n, out, cap);
}
