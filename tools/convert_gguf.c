/* convert_gguf.c: GGUF files (bitnet.cpp / llama.cpp) -> .rotor.
 * Architectures: bitnet, bitnet-b1.58, bitnet-25 (the 2B4T graph) and qwen3 with BitLinear input
 * norms (*_norm_in, the BitNet embedding model). Ternary tensors come as I2_S (spec §3.3: 128-
 * value blocks, MSB first, f32 scale after the codes), TQ1_0 or TQ2_0 (one fp16 d per 256 values,
 * which must be the same in every non-zero block), or as float weights that are ternarized here.
 * The vocabulary comes from tokenizer.ggml.* (GPT-2 style BPE only). GGUF dims are reversed
 * against ours: ne0 is the contiguous K. */
#include "convert.h"
#include "gguf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    rtr_gguf g;
    const rtr_cv_item *items;
    rtr_gguf_tensor **w;
    float *fbuf;
    size_t fcap;
} gg_ctx;

static int gkey_int(const rtr_gguf *g, const char *arch, const char *key, int64_t *v) {
    char k[160];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    return rtr_gguf_int(g, k, v);
}
static int gkey_float(const rtr_gguf *g, const char *arch, const char *key, double *v) {
    char k[160];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    return rtr_gguf_float(g, k, v);
}

static int gguf_name(const char *rn, char *out, size_t cap) {
    if (!strcmp(rn, "tok_embd")) return snprintf(out, cap, "token_embd.weight") > 0;
    if (!strcmp(rn, "output_norm") || !strcmp(rn, "output")) return snprintf(out, cap, "%s.weight", rn) > 0;
    int layer, off = 0;
    if (sscanf(rn, "blk.%d.%n", &layer, &off) != 1 || !off) return 0;
    char part[64];
    snprintf(part, sizeof part, "%s", rn + off);
    char *dot = strstr(part, ".in_norm");
    if (dot) *dot = 0;
    const char *p = !strcmp(part, "attn_o") ? "attn_output" : part;
    snprintf(out, cap, "blk.%d.%s%s.weight", layer, p, dot ? "_norm_in" : "");
    return 1;
}

static int is_float_type(uint32_t t) { return t == RTR_GGML_F32 || t == RTR_GGML_F16 || t == RTR_GGML_BF16; }

static float g_f32(const rtr_gguf_tensor *t, uint64_t i) {
    const uint8_t *p = t->data;
    if (t->type == RTR_GGML_F32) { float f; memcpy(&f, p + 4 * i, 4); return f; }
    uint16_t h = (uint16_t)(p[2 * i] | p[2 * i + 1] << 8);
    return t->type == RTR_GGML_F16 ? rtr_f16_to_f32(h) : rtr_bf16_to_f32(h);
}

static int gg_bind(gg_ctx *c, const rtr_cv_item *items, size_t n, rtr_err *err) {
    const char *f = c->g.base;
    char nm[128];
    for (size_t i = 0; i < n; i++) {
        const rtr_cv_item *it = &items[i];
        if (!gguf_name(it->name, nm, sizeof nm)) return rtr_seterr(err, RTR_EARG, "no GGUF name for %s", it->name);
        rtr_gguf_tensor *t = rtr_gguf_tensor_find(&c->g, nm);
        if (!t) return rtr_seterr(err, RTR_EFORMAT, "%s: missing tensor %s", f, nm);
        t->used = 1;
        c->w[i] = t;
        int ok_type;
        if (it->kind == RTR_CV_NORM) {
            if (t->ne[0] != it->cols || t->n != it->cols)
                return rtr_seterr(err, RTR_EFORMAT, "%s: tensor %s: shape {%llu, %llu}, expected {%llu}", f, nm,
                                  (unsigned long long)t->ne[0], (unsigned long long)t->ne[1], (unsigned long long)it->cols);
            ok_type = is_float_type(t->type);
        } else {
            if (t->ne[0] != it->cols || t->ne[1] != it->rows || t->n != it->rows * it->cols)
                return rtr_seterr(err, RTR_EFORMAT, "%s: tensor %s: shape {%llu, %llu}, expected {%llu, %llu}", f, nm,
                                  (unsigned long long)t->ne[0], (unsigned long long)t->ne[1],
                                  (unsigned long long)it->cols, (unsigned long long)it->rows);
            if (it->kind == RTR_CV_T2) {
                ok_type = is_float_type(t->type) || t->type == RTR_GGML_I2_S || t->type == RTR_GGML_TQ1_0 ||
                          t->type == RTR_GGML_TQ2_0;
                if (is_float_type(t->type) && t->n > c->fcap) c->fcap = t->n;
            } else {
                ok_type = is_float_type(t->type);
            }
        }
        if (!ok_type)
            return rtr_seterr(err, RTR_EFORMAT, "%s: tensor %s: type %s is not supported here (%s)", f, nm,
                              rtr_ggml_type_name(t->type),
                              it->kind == RTR_CV_T2 ? "use i2_s, tq1_0, tq2_0 or a float type" : "use f32, f16 or bf16");
    }
    for (uint64_t i = 0; i < c->g.n_t; i++)
        if (!c->g.t[i].used)
            return rtr_seterr(err, RTR_EFORMAT, "%s: unexpected tensor %s (not part of this architecture)", f, c->g.t[i].name);
    return 0;
}

static size_t idx(const gg_ctx *c, const rtr_cv_item *it) { return (size_t)(it - c->items); }

static int gg_mat_type(void *ctx, const rtr_cv_item *it) {
    uint32_t t = ((gg_ctx *)ctx)->w[idx(ctx, it)]->type;
    return t == RTR_GGML_BF16 ? RTR_T_BF16 : t == RTR_GGML_F16 ? RTR_T_F16 : RTR_T_F32;
}

static int gg_rows(void *ctx, const rtr_cv_item *it, uint64_t r0, uint64_t n, void *dst, rtr_err *err) {
    (void)err;
    const rtr_gguf_tensor *t = ((gg_ctx *)ctx)->w[idx(ctx, it)];
    size_t es = t->type == RTR_GGML_F32 ? 4 : 2;
    memcpy(dst, t->data + r0 * it->cols * es, n * it->cols * es);
    return 0;
}

static int gg_norm(void *ctx, const rtr_cv_item *it, float *dst, rtr_err *err) {
    (void)err;
    const rtr_gguf_tensor *t = ((gg_ctx *)ctx)->w[idx(ctx, it)];
    for (uint64_t i = 0; i < it->cols; i++) dst[i] = g_f32(t, i);
    return 0;
}

static int tq_scale(const gg_ctx *c, const rtr_gguf_tensor *t, uint16_t d, int nonzero, uint16_t *first, uint64_t blk,
                    rtr_err *err) {
    if (!nonzero) return 0;
    float df = rtr_f16_to_f32(d);
    if (!(isfinite(df) && df > 0))
        return rtr_seterr(err, RTR_EFORMAT, "%s: tensor %s: block %llu has scale %g", c->g.base, t->name,
                          (unsigned long long)blk, df);
    if (*first == 0xffff) *first = d;
    else if (*first != d)
        return rtr_seterr(err, RTR_EFORMAT,
                          "%s: tensor %s: block %llu has scale %g but block scales must all be %g (not a ternary x alpha tensor)",
                          c->g.base, t->name, (unsigned long long)blk, df, rtr_f16_to_f32(*first));
    return 0;
}

static int gg_ternary(void *ctx, const rtr_cv_item *it, int8_t *dst, float *alpha, rtr_err *err) {
    gg_ctx *c = ctx;
    const rtr_gguf_tensor *t = c->w[idx(c, it)];
    const uint8_t *p = t->data;
    uint64_t n = t->n;
    int r;
    if (t->type == RTR_GGML_I2_S) {
        static const int8_t val[4] = {-1, 0, 1, 2};
        int any = 0;
        for (uint64_t b = 0; b < n / 128; b++) {
            const uint8_t *q = p + 32 * b;
            int8_t *o = dst + 128 * b;
            for (int j = 0; j < 128; j++) {
                int8_t v = val[(q[j & 31] >> (6 - 2 * (j >> 5))) & 3];
                if (v == 2)
                    return rtr_seterr(err, RTR_EFORMAT, "%s: tensor %s: invalid I2_S code 3 at weight %llu", c->g.base, t->name,
                                      (unsigned long long)(128 * b + (uint64_t)j));
                o[j] = v;
                any |= v;
            }
        }
        memcpy(alpha, p + n / 4, 4);
        if (!any && !(isfinite(*alpha) && *alpha > 0)) *alpha = 1.0f;
        return 0;
    }
    if (t->type == RTR_GGML_TQ2_0) {
        uint16_t first = 0xffff;
        for (uint64_t b = 0; b < n / 256; b++) {
            const uint8_t *q = p + 66 * b;
            int8_t *o = dst + 256 * b;
            int nz = 0;
            for (int e = 0; e < 256; e++) {
                int cc = e >> 7, rr = e & 127, sh = rr >> 5, m = rr & 31;
                int code = (q[32 * cc + m] >> (2 * sh)) & 3;
                if (code == 3)
                    return rtr_seterr(err, RTR_EFORMAT, "%s: tensor %s: invalid TQ2_0 code 3 at weight %llu", c->g.base, t->name,
                                      (unsigned long long)(256 * b + (uint64_t)e));
                o[e] = (int8_t)(code - 1);
                nz |= code != 1;
            }
            if ((r = tq_scale(c, t, (uint16_t)(q[64] | q[65] << 8), nz, &first, b, err))) return r;
        }
        *alpha = first == 0xffff ? 1.0f : rtr_f16_to_f32(first);
        return 0;
    }
    if (t->type == RTR_GGML_TQ1_0) {
        static const uint8_t pow3[5] = {1, 3, 9, 27, 81};
        uint16_t first = 0xffff;
        for (uint64_t b = 0; b < n / 256; b++) {
            const uint8_t *q = p + 54 * b;
            int8_t *o = dst + 256 * b;
            int nz = 0;
            for (int nn = 0; nn < 5; nn++) {
                for (int m = 0; m < 32; m++) {
                    uint8_t x = (uint8_t)(q[m] * pow3[nn]);
                    o[nn * 32 + m] = (int8_t)(((x * 3) >> 8) - 1);
                }
                for (int m = 0; m < 16; m++) {
                    uint8_t x = (uint8_t)(q[32 + m] * pow3[nn]);
                    o[160 + nn * 16 + m] = (int8_t)(((x * 3) >> 8) - 1);
                }
            }
            for (int nn = 0; nn < 4; nn++)
                for (int j = 0; j < 4; j++) {
                    uint8_t x = (uint8_t)(q[48 + j] * pow3[nn]);
                    o[240 + nn * 4 + j] = (int8_t)(((x * 3) >> 8) - 1);
                }
            for (int e = 0; e < 256; e++) nz |= o[e];
            if ((r = tq_scale(c, t, (uint16_t)(q[52] | q[53] << 8), nz, &first, b, err))) return r;
        }
        *alpha = first == 0xffff ? 1.0f : rtr_f16_to_f32(first);
        return 0;
    }
    for (uint64_t i = 0; i < n; i++) {
        c->fbuf[i] = g_f32(t, i);
        if (!isfinite(c->fbuf[i]))
            return rtr_seterr(err, RTR_EFORMAT, "%s: tensor %s: non-finite weight at %llu", c->g.base, t->name, (unsigned long long)i);
    }
    rtr_cv_ternarize(c->fbuf, n, dst, alpha);
    return 0;
}

static int set_template(rtr_cv_model *m, const char *s, size_t len, rtr_err *err) {
    if (memmem(s, len, "BITNETAssistant", 15)) { s = rtr_cv_template_2b4t; len = strlen(s); }
    m->chat_template = malloc(len + 1);
    if (!m->chat_template) return rtr_seterr(err, RTR_ENOMEM, "out of memory");
    memcpy(m->chat_template, s, len);
    m->chat_template[len] = 0;
    return 0;
}

static int gg_tokenizer(gg_ctx *c, rtr_cv_model *m, const char *arch, const rtr_convert_opts *o, rtr_err *err) {
    const rtr_gguf *g = &c->g;
    int r;
    if (o && o->tokenizer) {
        if ((r = rtr_cv_tok_from_file(o->tokenizer, &m->tok, err))) return r;
    } else {
        const char *s;
        size_t sl;
        if (rtr_gguf_str(g, "tokenizer.ggml.model", &s, &sl) && !(sl == 4 && !memcmp(s, "gpt2", 4)))
            return rtr_seterr(err, RTR_EFORMAT, "%s: tokenizer model %.*s is not supported (only gpt2-style BPE)", g->base,
                              (int)(sl > 32 ? 32 : sl), s);
        const char *pre = strcmp(arch, "qwen3") ? "llama3" : "qwen2";
        if (rtr_gguf_str(g, "tokenizer.ggml.pre", &s, &sl)) {
            if ((sl == 9 && !memcmp(s, "llama-bpe", 9)) || (sl == 6 && !memcmp(s, "llama3", 6))) pre = "llama3";
            else if (sl == 5 && !memcmp(s, "qwen2", 5)) pre = "qwen2";
            else
                return rtr_seterr(err, RTR_EFORMAT, "%s: pre-tokenizer %.*s is not supported (llama-bpe or qwen2)", g->base,
                                  (int)(sl > 32 ? 32 : sl), s);
        }
        const rtr_gguf_kv *tk = rtr_gguf_find(g, "tokenizer.ggml.tokens");
        const rtr_gguf_kv *tt = rtr_gguf_find(g, "tokenizer.ggml.token_type");
        const rtr_gguf_kv *mg = rtr_gguf_find(g, "tokenizer.ggml.merges");
        if (!tk || !mg) return rtr_seterr(err, RTR_EFORMAT, "%s: no tokenizer.ggml.tokens / merges", g->base);
        if (tk->arr_n > (1u << 24) || mg->arr_n > (1u << 26))
            return rtr_seterr(err, RTR_EFORMAT, "%s: tokenizer arrays too large", g->base);
        if (tt && tt->arr_n != tk->arr_n)
            return rtr_seterr(err, RTR_EFORMAT, "%s: %llu token types for %llu tokens", g->base,
                              (unsigned long long)tt->arr_n, (unsigned long long)tk->arr_n);
        const char **toks = NULL, **merges = NULL;
        size_t *tl = NULL, *ml = NULL;
        int32_t *types = NULL;
        r = rtr_gguf_str_array(g, tk, &toks, &tl, err);
        if (!r) r = rtr_gguf_str_array(g, mg, &merges, &ml, err);
        if (!r && tt) r = rtr_gguf_i32_array(g, tt, &types, err);
        if (!r) {
            rtr_err e;
            r = rtr_tok_src_from_arrays(&m->tok, (int)tk->arr_n, toks, tl, types, (int)mg->arr_n, merges, ml, pre, &e);
            if (r) rtr_seterr(err, r, "%s: %s", g->base, e.msg);
        }
        free(toks); free(tl); free(merges); free(ml); free(types);
        if (r) return r;
    }
    int64_t v;
    int embed = !strcmp(m->pooling, "last");
    m->bos = m->eos = m->eot = -1;
    if (rtr_gguf_int(g, "tokenizer.ggml.bos_token_id", &v) && v >= 0 && v < INT32_MAX) m->bos = (int)v;
    if (rtr_gguf_int(g, "tokenizer.ggml.eos_token_id", &v) && v >= 0 && v < INT32_MAX) m->eos = (int)v;
    m->eot = rtr_tok_src_find(m->tok, "<|eot_id|>");
    if (m->eot < 0 && rtr_gguf_int(g, "tokenizer.ggml.eot_token_id", &v) && v >= 0 && v < INT32_MAX) m->eot = (int)v;
    m->add_bos = !strcmp(m->arch, "bitnet");
    m->add_eos = embed;
    if (rtr_gguf_int(g, "tokenizer.ggml.add_bos_token", &v)) m->add_bos = v != 0;
    if (rtr_gguf_int(g, "tokenizer.ggml.add_eos_token", &v)) m->add_eos = v != 0;
    if (embed && !strcmp(m->pooling, "last")) m->add_eos = 1;
    const char *tpl;
    size_t tpl_len;
    if (rtr_gguf_str(g, "tokenizer.chat_template", &tpl, &tpl_len) && (r = set_template(m, tpl, tpl_len, err))) return r;
    return 0;
}

static int gg_model(gg_ctx *c, rtr_cv_model *m, const rtr_convert_opts *o, rtr_err *err) {
    const rtr_gguf *g = &c->g;
    const char *a;
    size_t al;
    if (!rtr_gguf_str(g, "general.architecture", &a, &al))
        return rtr_seterr(err, RTR_EFORMAT, "%s: no general.architecture", g->base);
    char arch[64];
    snprintf(arch, sizeof arch, "%.*s", (int)(al < 63 ? al : 63), a);
    m->embd_scale = 1.0;
    snprintf(m->pooling, sizeof m->pooling, "none");
    if (!strcmp(arch, "bitnet") || !strcmp(arch, "bitnet-b1.58") || !strcmp(arch, "bitnet-25")) {
        snprintf(m->arch, sizeof m->arch, "bitnet");
        m->sub_norms = 1;
        snprintf(m->act, sizeof m->act, "relu2");
        char k[96];
        snprintf(k, sizeof k, "%s.hidden_activation", arch);
        const char *ha;
        size_t hl;
        /* some writers record the activation; ReLU² is right for this graph (spec §7.1), so only
         * an explicit relu2 is accepted besides silence */
        if (rtr_gguf_str(g, k, &ha, &hl) && !(hl == 5 && !memcmp(ha, "relu2", 5)) && !(hl == 7 && !memcmp(ha, "relu_sq", 7)))
            return rtr_seterr(err, RTR_EFORMAT, "%s: %s is %.*s; the BitNet 2B4T graph uses relu2", g->base, k,
                              (int)(hl > 32 ? 32 : hl), ha);
    } else if (!strcmp(arch, "qwen3")) {
        if (!rtr_gguf_tensor_find(g, "blk.0.attn_q_norm_in.weight"))
            return rtr_seterr(err, RTR_EFORMAT, "%s: unknown architecture qwen3 without BitLinear input norms (not a BitNet model)",
                              g->base);
        snprintf(m->arch, sizeof m->arch, "bitnet-qwen3");
        m->in_norms = m->qk_norm = 1;
        snprintf(m->act, sizeof m->act, "silu");
        int64_t pt = 3;
        gkey_int(g, arch, "pooling_type", &pt);
        snprintf(m->pooling, sizeof m->pooling, "%s", pt == 1 ? "mean" : pt == 2 ? "cls" : "last");
    } else {
        return rtr_seterr(err, RTR_EFORMAT, "%s: unknown architecture %s", g->base, arch);
    }
    int64_t v;
#define REQ(key, field)                                                                            \
    if (!gkey_int(g, arch, key, &v) || v <= 0 || v > INT32_MAX)                                    \
        return rtr_seterr(err, RTR_EFORMAT, "%s: missing or bad %s.%s", g->base, arch, key);       \
    m->field = (int)v;
    REQ("embedding_length", n_embd);
    REQ("block_count", n_layer);
    REQ("attention.head_count", n_head);
    REQ("feed_forward_length", n_ff);
#undef REQ
    m->n_head_kv = m->n_head;
    if (gkey_int(g, arch, "attention.head_count_kv", &v) && v > 0 && v <= INT32_MAX) m->n_head_kv = (int)v;
    m->head_dim = m->n_embd / m->n_head;
    if (gkey_int(g, arch, "attention.key_length", &v) && v > 0 && v <= 65536) m->head_dim = (int)v;
    m->max_ctx = 2048;
    if (gkey_int(g, arch, "context_length", &v) && v > 0 && v <= INT32_MAX) m->max_ctx = (int)v;
    m->rope_theta = 10000.0;
    gkey_float(g, arch, "rope.freq_base", &m->rope_theta);
    m->norm_eps = 1e-5;
    gkey_float(g, arch, "attention.layer_norm_rms_epsilon", &m->norm_eps);
    const rtr_gguf_tensor *te = rtr_gguf_tensor_find(g, "token_embd.weight");
    if (!te) return rtr_seterr(err, RTR_EFORMAT, "%s: missing tensor token_embd.weight", g->base);
    if (te->ne[1] > INT32_MAX) return rtr_seterr(err, RTR_EFORMAT, "%s: token_embd.weight: bad shape", g->base);
    m->n_vocab = (int)te->ne[1];
    m->tied = !rtr_gguf_tensor_find(g, "output.weight") || !strcmp(m->arch, "bitnet-qwen3");
    const char *nm;
    size_t nl;
    if (rtr_gguf_str(g, "general.name", &nm, &nl)) snprintf(m->name, sizeof m->name, "%.*s", (int)(nl < 127 ? nl : 127), nm);
    else snprintf(m->name, sizeof m->name, "%s", g->base);
    snprintf(m->source, sizeof m->source, "%s", g->base);
    return gg_tokenizer(c, m, arch, o, err);
}

int rtr_convert_gguf(const char *path, const char *out, const rtr_convert_opts *o, rtr_convert_stats *st,
                     rtr_err *err) {
    gg_ctx c;
    memset(&c, 0, sizeof c);
    rtr_cv_model m;
    memset(&m, 0, sizeof m);
    snprintf(m.origin, sizeof m.origin, "%s", path);
    int r = rtr_gguf_open(&c.g, path, err);
    if (r) return r;
    rtr_cv_item *items = NULL;
    size_t n = 0;
    if ((r = gg_model(&c, &m, o, err))) goto done;
    snprintf(m.origin, sizeof m.origin, "%s", c.g.base);
    if ((r = rtr_cv_check(&m, err)) || (r = rtr_cv_plan(&m, &items, &n, err))) goto done;
    c.items = items;
    if (!(c.w = calloc(n, sizeof *c.w))) { r = rtr_seterr(err, RTR_ENOMEM, "out of memory"); goto done; }
    if ((r = gg_bind(&c, items, n, err))) goto done;
    if (c.fcap && !(c.fbuf = malloc(c.fcap * sizeof(float)))) { r = rtr_seterr(err, RTR_ENOMEM, "out of memory"); goto done; }
    rtr_cv_source src = {&c, gg_mat_type, gg_rows, gg_norm, gg_ternary, NULL};
    r = rtr_cv_write(&m, items, n, &src, out, o, st, err);
done:
    free(items);
    free(c.w);
    free(c.fbuf);
    rtr_gguf_close(&c.g);
    rtr_cv_model_free(&m);
    return r;
}
