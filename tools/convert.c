/* convert.c: the part of the converter every front end shares: checking hyper-parameters,
 * planning the tensor list, and writing the .rotor file (metadata, tokenizer, embedding, layers,
 * final norm) in bounded memory: the embedding streams in row chunks, ternary matrices one at a
 * time. Also the spec §2.1 ternarizer and file helpers (whole-file reads, tokenizer.json.gz). */
#include "convert.h"
#include "inflate.h"
#include "json.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const char rtr_cv_template_2b4t[] =
    "{% for message in messages %}{{ message['role']|capitalize + ': ' + message['content']|trim + "
    "'<|eot_id|>' }}{% endfor %}{% if add_generation_prompt %}{{ 'Assistant: ' }}{% endif %}";

void rtr_cv_model_free(rtr_cv_model *m) {
    free(m->chat_template);
    rtr_tok_src_free(m->tok);
    m->chat_template = NULL;
    m->tok = NULL;
}

void rtr_cv_ternarize(const float *w, uint64_t n, int8_t *dst, float *alpha) {
    double s = 0;
    for (uint64_t i = 0; i < n; i++) s += fabs((double)w[i]);
    float mean = n ? (float)(s / (double)n) : 0.0f;
    float a = mean > 1e-5f ? mean : 1e-5f;
    float inv = 1.0f / a;
    for (uint64_t i = 0; i < n; i++) {
        float q = rintf(w[i] * inv);
        dst[i] = q >= 1.0f ? 1 : (q <= -1.0f ? -1 : 0); /* NaN becomes 0 */
    }
    *alpha = a;
}

int rtr_cv_read_file(const char *path, size_t max, char **out, size_t *len, rtr_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return rtr_seterr(err, RTR_EIO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) || !S_ISREG(st.st_mode)) {
        fclose(f);
        return rtr_seterr(err, RTR_EIO, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > max) {
        fclose(f);
        return rtr_seterr(err, RTR_EFORMAT, "%s: too large (%lld bytes)", path, (long long)st.st_size);
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (!buf) { fclose(f); return rtr_seterr(err, RTR_ENOMEM, "out of memory"); }
    if (fread(buf, 1, n, f) != n) {
        fclose(f);
        free(buf);
        return rtr_seterr(err, RTR_EIO, "%s: read error", path);
    }
    fclose(f);
    buf[n] = 0;
    size_t pl = strlen(path);
    if (pl > 3 && !strcmp(path + pl - 3, ".gz")) {
        uint8_t *d;
        size_t dl;
        rtr_err e;
        int r = rtr_gunzip((const uint8_t *)buf, n, max, &d, &dl, &e);
        free(buf);
        if (r) return rtr_seterr(err, r, "%s: %s", path, e.msg);
        buf = (char *)d;
        n = dl;
    }
    *out = buf;
    *len = n;
    return 0;
}

int rtr_cv_tok_from_file(const char *path, rtr_tok_src **out, rtr_err *err) {
    char *text;
    size_t len;
    int r = rtr_cv_read_file(path, (size_t)1 << 30, &text, &len, err);
    if (r) return r;
    rtr_json *j;
    rtr_err e;
    r = rtr_json_parse(text, len, &j, &e);
    free(text);
    if (r) return rtr_seterr(err, r, "%s: %s", path, e.msg);
    r = rtr_tok_src_from_hf(out, j, &e);
    rtr_json_free(j);
    if (r) return rtr_seterr(err, r, "%s: %s", path, e.msg);
    return 0;
}

/* ---- checks and plan ---- */

static int in_range(long v, long lo, long hi) { return v >= lo && v <= hi; }

int rtr_cv_check(const rtr_cv_model *m, rtr_err *err) {
    const char *n = m->origin;
    if (strcmp(m->arch, "bitnet") && strcmp(m->arch, "bitnet-qwen3"))
        return rtr_seterr(err, RTR_EFORMAT, "%s: unknown architecture %s", n, m->arch);
    if (!in_range(m->n_vocab, 1, 1 << 24) || !in_range(m->n_embd, 1, 1 << 16) ||
        !in_range(m->n_layer, 1, 1024) || !in_range(m->n_head, 1, 4096) ||
        !in_range(m->n_head_kv, 1, m->n_head) || m->n_head % m->n_head_kv ||
        !in_range(m->head_dim, 2, 4096) || m->head_dim % 2 || !in_range(m->n_ff, 1, 1 << 20) ||
        !in_range(m->max_ctx, 1, 1 << 24) || (long)m->n_head * m->head_dim > (1 << 20))
        return rtr_seterr(err, RTR_EFORMAT,
                          "%s: implausible shape (vocab %d, embd %d, layers %d, heads %d/%d, head_dim %d, ff %d, ctx %d)",
                          n, m->n_vocab, m->n_embd, m->n_layer, m->n_head, m->n_head_kv, m->head_dim,
                          m->n_ff, m->max_ctx);
    if (!(m->rope_theta > 0 && isfinite(m->rope_theta)) || !(m->norm_eps > 0 && m->norm_eps < 1) ||
        !(m->embd_scale > 0 && isfinite(m->embd_scale)))
        return rtr_seterr(err, RTR_EFORMAT, "%s: bad rope_theta, norm eps or embedding scale", n);
    if (strcmp(m->act, "relu2") && strcmp(m->act, "silu") && strcmp(m->act, "gelu_tanh"))
        return rtr_seterr(err, RTR_EFORMAT, "%s: unsupported activation %s", n, m->act);
    if (!m->tok) return rtr_seterr(err, RTR_EARG, "%s: no tokenizer", n);
    int tv = rtr_tok_src_n_vocab(m->tok);
    if (tv > m->n_vocab)
        return rtr_seterr(err, RTR_EFORMAT, "%s: the tokenizer has %d tokens but the embedding only %d rows", n, tv,
                          m->n_vocab);
    if (!in_range(m->bos, -1, m->n_vocab - 1) || !in_range(m->eos, -1, m->n_vocab - 1) ||
        !in_range(m->eot, -1, m->n_vocab - 1))
        return rtr_seterr(err, RTR_EFORMAT, "%s: special token id out of range (bos %d, eos %d, eot %d)", n, m->bos,
                          m->eos, m->eot);
    return 0;
}

typedef struct {
    rtr_cv_item *v;
    size_t n, cap;
    int fail;
} plan;

static void add(plan *p, int kind, uint64_t rows, uint64_t cols, const char *fmt, int layer) {
    if (p->n == p->cap) {
        size_t nc = p->cap ? p->cap * 2 : 64;
        rtr_cv_item *nv = realloc(p->v, nc * sizeof *nv);
        if (!nv) { p->fail = 1; return; }
        p->v = nv;
        p->cap = nc;
    }
    rtr_cv_item *it = &p->v[p->n++];
    memset(it, 0, sizeof *it);
    snprintf(it->name, sizeof it->name, fmt, layer);
    it->kind = kind;
    it->rows = rows;
    it->cols = cols;
}

int rtr_cv_plan(const rtr_cv_model *m, rtr_cv_item **items, size_t *n, rtr_err *err) {
    plan p = {0};
    uint64_t E = (uint64_t)m->n_embd, Q = (uint64_t)m->n_head * m->head_dim,
             KV = (uint64_t)m->n_head_kv * m->head_dim, F = (uint64_t)m->n_ff, H = (uint64_t)m->head_dim;
    add(&p, RTR_CV_EMBD, (uint64_t)m->n_vocab, E, "tok_embd", 0);
    for (int l = 0; l < m->n_layer; l++) {
        add(&p, RTR_CV_NORM, 1, E, "blk.%d.attn_norm", l);
        if (m->in_norms) add(&p, RTR_CV_NORM, 1, E, "blk.%d.attn_q.in_norm", l);
        add(&p, RTR_CV_T2, Q, E, "blk.%d.attn_q", l);
        if (m->in_norms) add(&p, RTR_CV_NORM, 1, E, "blk.%d.attn_k.in_norm", l);
        add(&p, RTR_CV_T2, KV, E, "blk.%d.attn_k", l);
        if (m->in_norms) add(&p, RTR_CV_NORM, 1, E, "blk.%d.attn_v.in_norm", l);
        add(&p, RTR_CV_T2, KV, E, "blk.%d.attn_v", l);
        if (m->qk_norm) {
            add(&p, RTR_CV_NORM, 1, H, "blk.%d.attn_q_norm", l);
            add(&p, RTR_CV_NORM, 1, H, "blk.%d.attn_k_norm", l);
        }
        if (m->sub_norms) add(&p, RTR_CV_NORM, 1, Q, "blk.%d.attn_sub_norm", l);
        if (m->in_norms) add(&p, RTR_CV_NORM, 1, Q, "blk.%d.attn_o.in_norm", l);
        add(&p, RTR_CV_T2, E, Q, "blk.%d.attn_o", l);
        add(&p, RTR_CV_NORM, 1, E, "blk.%d.ffn_norm", l);
        if (m->in_norms) add(&p, RTR_CV_NORM, 1, E, "blk.%d.ffn_gate.in_norm", l);
        add(&p, RTR_CV_T2, F, E, "blk.%d.ffn_gate", l);
        if (m->in_norms) add(&p, RTR_CV_NORM, 1, E, "blk.%d.ffn_up.in_norm", l);
        add(&p, RTR_CV_T2, F, E, "blk.%d.ffn_up", l);
        if (m->sub_norms) add(&p, RTR_CV_NORM, 1, F, "blk.%d.ffn_sub_norm", l);
        if (m->in_norms) add(&p, RTR_CV_NORM, 1, F, "blk.%d.ffn_down.in_norm", l);
        add(&p, RTR_CV_T2, E, F, "blk.%d.ffn_down", l);
    }
    add(&p, RTR_CV_NORM, 1, E, "output_norm", 0);
    if (!m->tied) add(&p, RTR_CV_OUTPUT, (uint64_t)m->n_vocab, E, "output", 0);
    if (p.fail) {
        free(p.v);
        return rtr_seterr(err, RTR_ENOMEM, "out of memory");
    }
    *items = p.v;
    *n = p.n;
    return 0;
}

/* ---- writing ---- */

static int out_type(const rtr_cv_item *it, int src_type, int head) {
    if (it->kind == RTR_CV_NORM) return RTR_T_F32;
    if (it->kind == RTR_CV_T2) return RTR_T_T2;
    return head == RTR_HEAD_F16 ? RTR_T_F16 : head == RTR_HEAD_Q8 ? RTR_T_Q8R : src_type;
}

static uint64_t item_bytes(const rtr_cv_item *it, int type) {
    uint64_t shape[2] = {it->rows, it->cols};
    return it->kind == RTR_CV_NORM ? rtr_tensor_bytes(type, 1, &it->cols) : rtr_tensor_bytes(type, 2, shape);
}

static void to_f32(int type, const void *src, float *dst, uint64_t n) {
    const uint8_t *p = src;
    if (type == RTR_T_F32) { memcpy(dst, src, n * 4); return; }
    for (uint64_t i = 0; i < n; i++) {
        uint16_t h = (uint16_t)(p[2 * i] | p[2 * i + 1] << 8);
        dst[i] = type == RTR_T_F16 ? rtr_f16_to_f32(h) : rtr_bf16_to_f32(h);
    }
}

typedef struct {
    rtr_writer *w;
    const rtr_convert_opts *o;
    uint64_t done, total;
    const char *origin;
    rtr_err *err;
} wctx;

static int put(wctx *c, const void *p, size_t n) {
    if (c->o && c->o->cancel && *c->o->cancel) return rtr_seterr(c->err, RTR_EINTR, "interrupted");
    int r = rtr_writer_data(c->w, p, n, c->err);
    if (r) return r;
    c->done += n;
    if (c->o && c->o->progress) c->o->progress(c->done, c->total, c->o->ud);
    return 0;
}

/* tok_embd / output: rows in chunks, converted to the output type */
static int write_matrix(wctx *c, const rtr_cv_source *src, const rtr_cv_item *it, int stype, int otype) {
    uint64_t shape[2] = {it->rows, it->cols};
    int r = rtr_writer_tensor(c->w, it->name, otype, 2, shape, 1.0f, c->err);
    if (r) return r;
    uint64_t K = it->cols, ss = stype == RTR_T_F32 ? 4 : 2;
    uint64_t chunk = (4u << 20) / (K * 4) + 1;
    if (chunk > it->rows) chunk = it->rows;
    uint64_t qrow = rtr_q8r_row_bytes(K);
    void *sbuf = malloc(chunk * K * ss);
    float *f = malloc(chunk * K * sizeof(float));
    uint8_t *obuf = malloc(chunk * (qrow > K * 4 ? qrow : K * 4));
    float *scales = otype == RTR_T_Q8R ? malloc(it->rows * sizeof(float)) : NULL;
    if (!sbuf || !f || !obuf || (otype == RTR_T_Q8R && !scales)) {
        r = rtr_seterr(c->err, RTR_ENOMEM, "out of memory");
        goto done;
    }
    for (uint64_t r0 = 0; r0 < it->rows; r0 += chunk) {
        uint64_t nr = it->rows - r0 < chunk ? it->rows - r0 : chunk, ne = nr * K;
        if ((r = src->rows(src->ctx, it, r0, nr, sbuf, c->err))) goto done;
        if (otype == stype) {
            r = put(c, sbuf, ne * ss);
        } else if (otype == RTR_T_Q8R) {
            to_f32(stype, sbuf, f, ne);
            memset(obuf, 0, nr * qrow);
            for (uint64_t i = 0; i < nr; i++) {
                const float *x = f + i * K;
                float amax = 0;
                for (uint64_t j = 0; j < K; j++) amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
                if (!isfinite(amax)) {
                    r = rtr_seterr(c->err, RTR_EFORMAT, "%s: tensor %s: row %llu is not finite", c->origin,
                                   it->name, (unsigned long long)(r0 + i));
                    goto done;
                }
                float s = amax / 127.0f;
                int8_t *q = (int8_t *)obuf + i * qrow;
                for (uint64_t j = 0; s > 0 && j < K; j++) {
                    float v = rintf(x[j] / s);
                    q[j] = (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
                }
                scales[r0 + i] = s;
            }
            r = put(c, obuf, nr * qrow);
        } else if (otype == RTR_T_F16) {
            to_f32(stype, sbuf, f, ne);
            uint16_t *h = (uint16_t *)obuf;
            for (uint64_t j = 0; j < ne; j++) h[j] = rtr_f32_to_f16(f[j]);
            r = put(c, obuf, ne * 2);
        } else if (otype == RTR_T_F32) {
            to_f32(stype, sbuf, f, ne);
            r = put(c, f, ne * 4);
        } else {
            r = rtr_seterr(c->err, RTR_EARG, "tensor %s: unsupported conversion", it->name);
        }
        if (r) goto done;
    }
    if (otype == RTR_T_Q8R) r = put(c, scales, it->rows * sizeof(float));
done:
    free(sbuf);
    free(f);
    free(obuf);
    free(scales);
    return r;
}

static int set_meta(rtr_writer *w, const rtr_cv_model *m) {
    static const char conv[] = "rotor " RTR_VERSION;
    const char *tpl = m->chat_template ? m->chat_template : "";
    int r = 0;
#define S(k, v) r |= rtr_writer_meta_str(w, k, v, strlen(v))
#define I(k, v) r |= rtr_writer_meta_int(w, k, v)
#define F(k, v) r |= rtr_writer_meta_float(w, k, v)
    S("general.arch", m->arch);
    S("general.name", m->name);
    S("general.source", m->source);
    S("general.converter", conv);
    I("model.n_vocab", m->n_vocab);
    I("model.n_embd", m->n_embd);
    I("model.n_layer", m->n_layer);
    I("model.n_head", m->n_head);
    I("model.n_head_kv", m->n_head_kv);
    I("model.head_dim", m->head_dim);
    I("model.n_ff", m->n_ff);
    I("model.max_ctx", m->max_ctx);
    F("model.rope_theta", m->rope_theta);
    F("model.norm_eps", m->norm_eps);
    S("model.act", m->act);
    I("model.sub_norms", m->sub_norms);
    I("model.in_norms", m->in_norms);
    I("model.qk_norm", m->qk_norm);
    F("model.embd_scale", m->embd_scale);
    S("model.pooling", m->pooling);
    I("tokenizer.bos", m->bos);
    I("tokenizer.eos", m->eos);
    I("tokenizer.eot", m->eot);
    I("tokenizer.add_bos", m->add_bos);
    I("tokenizer.add_eos", m->add_eos);
    S("chat.template", tpl);
#undef S
#undef I
#undef F
    return r;
}

int rtr_cv_write(const rtr_cv_model *m, const rtr_cv_item *items, size_t n, const rtr_cv_source *src,
                 const char *out, const rtr_convert_opts *o, rtr_convert_stats *st, rtr_err *err) {
    int r = rtr_cv_check(m, err);
    if (r) return r;
    int head = o ? o->head : RTR_HEAD_SOURCE;
    wctx c = {.o = o, .origin = m->origin, .err = err};
    uint64_t max_t2 = 0, max_norm = 0, tw = 0, tb = 0;
    for (size_t i = 0; i < n; i++) {
        const rtr_cv_item *it = &items[i];
        int st_ = (it->kind == RTR_CV_EMBD || it->kind == RTR_CV_OUTPUT) ? src->mat_type(src->ctx, it) : RTR_T_F32;
        c.total += item_bytes(it, out_type(it, st_, head));
        if (it->kind == RTR_CV_T2 && it->rows * it->cols > max_t2) max_t2 = it->rows * it->cols;
        if (it->kind == RTR_CV_T2 && it->rows * rtr_t2_row_bytes(it->cols) > max_t2) max_t2 = it->rows * rtr_t2_row_bytes(it->cols);
        if (it->kind == RTR_CV_NORM && it->cols > max_norm) max_norm = it->cols;
    }
    int8_t *tern = malloc(max_t2 ? max_t2 : 1);
    uint8_t *packed = malloc(max_t2 ? max_t2 : 1);
    float *norm = malloc((max_norm ? max_norm : 1) * sizeof(float));
    if (!tern || !packed || !norm) { r = rtr_seterr(err, RTR_ENOMEM, "out of memory"); goto done; }
    if ((r = rtr_writer_new(&c.w, out, err))) { c.w = NULL; goto done; }
    if (set_meta(c.w, m)) { r = rtr_seterr(err, RTR_ENOMEM, "out of memory (metadata)"); goto done; }
    if ((r = rtr_tok_write(c.w, m->tok, err))) goto done;
    for (size_t i = 0; i < n; i++) {
        const rtr_cv_item *it = &items[i];
        if (it->kind == RTR_CV_EMBD || it->kind == RTR_CV_OUTPUT) {
            int stype = src->mat_type(src->ctx, it);
            if ((r = write_matrix(&c, src, it, stype, out_type(it, stype, head)))) goto done;
        } else if (it->kind == RTR_CV_NORM) {
            if ((r = src->norm(src->ctx, it, norm, err))) goto done;
            for (uint64_t j = 0; j < it->cols; j++)
                if (!isfinite(norm[j])) { r = rtr_seterr(err, RTR_EFORMAT, "%s: tensor %s: non-finite value", m->origin, it->name); goto done; }
            if ((r = rtr_writer_tensor(c.w, it->name, RTR_T_F32, 1, &it->cols, 1.0f, err)) ||
                (r = put(&c, norm, it->cols * sizeof(float))))
                goto done;
        } else {
            uint64_t rb = rtr_t2_row_bytes(it->cols), shape[2] = {it->rows, it->cols};
            float alpha = 0;
            if (src->t2) {
                if ((r = src->t2(src->ctx, it, packed, &alpha, err))) goto done;
            } else {
                if ((r = src->ternary(src->ctx, it, tern, &alpha, err))) goto done;
                for (uint64_t row = 0; row < it->rows; row++)
                    rtr_t2_pack_row(tern + row * it->cols, it->cols, packed + row * rb);
            }
            if (!(isfinite(alpha) && alpha > 0)) {
                r = rtr_seterr(err, RTR_EFORMAT, "%s: tensor %s: scale %g is not a positive number", m->origin, it->name, alpha);
                goto done;
            }
            if ((r = rtr_writer_tensor(c.w, it->name, RTR_T_T2, 2, shape, alpha, err)) ||
                (r = put(&c, packed, it->rows * rb)))
                goto done;
            tw += it->rows * it->cols;
            tb += it->rows * rb;
        }
    }
    if ((r = rtr_writer_finish(c.w, err))) goto done;
    if (st) {
        memset(st, 0, sizeof *st);
        snprintf(st->arch, sizeof st->arch, "%s", m->arch);
        st->file_bytes = rtr_writer_bytes(c.w);
        st->ternary_weights = tw;
        st->ternary_bytes = tb;
        rtr_file f;
        rtr_err e;
        if (!rtr_file_open(&f, out, &e)) {
            st->n_tensors = f.n_tensors;
            st->file_bytes = f.size;
            rtr_file_close(&f);
        }
    }
done:
    rtr_writer_free(c.w);
    free(tern);
    free(packed);
    free(norm);
    return r;
}
