/* convert_hf.c: Hugging Face model folders -> .rotor.
 * Reads config.json (BitNetForCausalLM, or a Qwen3 backbone with BitNet quantization and
 * per-projection norms), the safetensors weights (one file or shards named by
 * model.safetensors.index.json), tokenizer.json[.gz], tokenizer_config.json and, when present,
 * generation_config.json and the sentence-transformers pooling config. Linear weights may be
 * packed (U8 + weight_scale, spec §3.1) or float master weights, ternarized per spec §2.1.
 * Every tensor is bound and checked before the output file is created. */
#include "convert.h"
#include "json.h"
#include "safetensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- config.json ---- */

static int jint(const rtr_json *o, const char *key, int64_t *v) { return rtr_json_int(rtr_json_get(o, key), v); }
static int jnum(const rtr_json *o, const char *key, double *v) {
    const rtr_json *j = rtr_json_get(o, key);
    if (!j || j->type != RTR_JSON_NUM) return 0;
    *v = j->num;
    return 1;
}
static const char *jstr(const rtr_json *o, const char *key) {
    const rtr_json *j = rtr_json_get(o, key);
    return j && j->type == RTR_JSON_STR ? j->str : NULL;
}
static int jbool(const rtr_json *o, const char *key, int *v) {
    const rtr_json *j = rtr_json_get(o, key);
    if (!j || j->type != RTR_JSON_BOOL) return 0;
    *v = j->boolean;
    return 1;
}
/* an id given as a number or as the first element of a list */
static int jid(const rtr_json *o, const char *key, int *v) {
    const rtr_json *j = rtr_json_get(o, key);
    int64_t x;
    if (j && j->type == RTR_JSON_ARR && j->n) j = &j->items[0];
    if (!rtr_json_int(j, &x) || x < 0 || x > INT32_MAX) return 0;
    *v = (int)x;
    return 1;
}

int rtr_cv_from_config(const char *file, const rtr_json *c, rtr_cv_model *m, rtr_err *err) {
    if (!c || c->type != RTR_JSON_OBJ) return rtr_seterr(err, RTR_EFORMAT, "%s: not a JSON object", file);
    const char *mt = jstr(c, "model_type");
    const rtr_json *archs = rtr_json_get(c, "architectures");
    const char *a0 = archs && archs->type == RTR_JSON_ARR && archs->n && archs->items[0].type == RTR_JSON_STR
                         ? archs->items[0].str : NULL;
    const rtr_json *qc = rtr_json_get(c, "quantization_config");
    int bitnet_q = qc && jstr(qc, "quant_method") && !strcmp(jstr(qc, "quant_method"), "bitnet");
    int use_rms = 0;
    jbool(qc, "use_rms_norm", &use_rms);
    snprintf(m->pooling, sizeof m->pooling, "none");
    m->embd_scale = 1.0;
    m->tied = 1;
    if ((mt && !strcmp(mt, "bitnet")) || (a0 && !strcmp(a0, "BitNetForCausalLM"))) {
        snprintf(m->arch, sizeof m->arch, "bitnet");
        m->sub_norms = 1;
        snprintf(m->act, sizeof m->act, "relu2");
        m->norm_eps = 1e-5;
    } else if (mt && !strcmp(mt, "qwen3") && bitnet_q && use_rms) {
        snprintf(m->arch, sizeof m->arch, "bitnet-qwen3");
        m->in_norms = m->qk_norm = 1;
        snprintf(m->act, sizeof m->act, "silu");
        snprintf(m->pooling, sizeof m->pooling, "last");
        m->norm_eps = 1e-6;
    } else {
        return rtr_seterr(err, RTR_EFORMAT, "%s: unknown architecture %s%s", file,
                          mt ? mt : a0 ? a0 : "(no model_type)",
                          mt && !strcmp(mt, "qwen3") ? " (not a BitNet model: no bitnet quantization_config with use_rms_norm)" : "");
    }
    int64_t v;
#define REQ(key, field)                                                                           \
    if (!jint(c, key, &v) || v <= 0 || v > INT32_MAX)                                             \
        return rtr_seterr(err, RTR_EFORMAT, "%s: missing or bad %s", file, key);                  \
    m->field = (int)v;
    REQ("hidden_size", n_embd);
    REQ("num_hidden_layers", n_layer);
    REQ("num_attention_heads", n_head);
    REQ("intermediate_size", n_ff);
    REQ("vocab_size", n_vocab);
#undef REQ
    m->n_head_kv = m->n_head;
    if (jint(c, "num_key_value_heads", &v) && v > 0 && v <= INT32_MAX) m->n_head_kv = (int)v;
    m->head_dim = m->n_embd / m->n_head;
    const rtr_json *hd = rtr_json_get(c, "head_dim");
    if (hd && hd->type != RTR_JSON_NULL) {
        if (!rtr_json_int(hd, &v) || v <= 0 || v > 65536) return rtr_seterr(err, RTR_EFORMAT, "%s: bad head_dim", file);
        m->head_dim = (int)v;
    }
    m->max_ctx = 2048;
    if (jint(c, "max_position_embeddings", &v) && v > 0 && v <= INT32_MAX) m->max_ctx = (int)v;
    m->rope_theta = 10000.0;
    const rtr_json *rp = rtr_json_get(c, "rope_parameters");
    if (!jnum(c, "rope_theta", &m->rope_theta)) jnum(rp, "rope_theta", &m->rope_theta);
    jnum(c, "rms_norm_eps", &m->norm_eps);
    const rtr_json *rs = rtr_json_get(c, "rope_scaling");
    const char *rst = rs ? jstr(rs, "rope_type") ? jstr(rs, "rope_type") : jstr(rs, "type") : NULL;
    if (!rst && rp) rst = jstr(rp, "rope_type");
    if (rs && rs->type != RTR_JSON_NULL && (!rst || strcmp(rst, "default")))
        return rtr_seterr(err, RTR_EFORMAT, "%s: rope_scaling %s is not supported", file, rst ? rst : "(unknown)");
    if (rp && rst && strcmp(rst, "default"))
        return rtr_seterr(err, RTR_EFORMAT, "%s: rope type %s is not supported", file, rst);
    int swa = 0;
    if (jbool(c, "use_sliding_window", &swa) && swa)
        return rtr_seterr(err, RTR_EFORMAT, "%s: sliding-window attention is not supported", file);
    const char *act = jstr(c, "hidden_act");
    if (act) {
        if (!strcmp(act, "relu2")) snprintf(m->act, sizeof m->act, "relu2");
        else if (!strcmp(act, "silu") || !strcmp(act, "swish")) snprintf(m->act, sizeof m->act, "silu");
        else if (!strcmp(act, "gelu_pytorch_tanh") || !strcmp(act, "gelu_tanh")) snprintf(m->act, sizeof m->act, "gelu_tanh");
        else return rtr_seterr(err, RTR_EFORMAT, "%s: unsupported hidden_act %s", file, act);
    }
    int tie = 1;
    if (!strcmp(m->arch, "bitnet") && jbool(c, "tie_word_embeddings", &tie)) m->tied = tie;
    m->bos = m->eos = m->eot = -1;
    jid(c, "bos_token_id", &m->bos);
    jid(c, "eos_token_id", &m->eos);
    return 0;
}

/* ---- the safetensors source ---- */

typedef struct {
    rtr_st st;
    const char *dir;
    const char *prefix;         /* "model." or "" */
    const rtr_cv_item *items;
    rtr_st_tensor **w, **s;     /* per item: weight, weight_scale */
    float *fbuf;
    size_t fcap;
} hf_ctx;

static const struct { const char *rotor, *hf; } layer_map[] = {
    {"attn_norm", "input_layernorm"},          {"attn_q", "self_attn.q_proj"},
    {"attn_k", "self_attn.k_proj"},            {"attn_v", "self_attn.v_proj"},
    {"attn_o", "self_attn.o_proj"},            {"attn_sub_norm", "self_attn.attn_sub_norm"},
    {"attn_q_norm", "self_attn.q_norm"},       {"attn_k_norm", "self_attn.k_norm"},
    {"ffn_norm", "post_attention_layernorm"},  {"ffn_gate", "mlp.gate_proj"},
    {"ffn_up", "mlp.up_proj"},                 {"ffn_down", "mlp.down_proj"},
    {"ffn_sub_norm", "mlp.ffn_sub_norm"},
};

/* HF name of an item's weight; 0 if the name is not one we map */
static int hf_name(const hf_ctx *h, const char *rn, char *out, size_t cap) {
    if (!strcmp(rn, "tok_embd")) return snprintf(out, cap, "%sembed_tokens.weight", h->prefix) > 0;
    if (!strcmp(rn, "output_norm")) return snprintf(out, cap, "%snorm.weight", h->prefix) > 0;
    if (!strcmp(rn, "output")) return snprintf(out, cap, "lm_head.weight") > 0;
    int layer, off = 0;
    if (sscanf(rn, "blk.%d.%n", &layer, &off) != 1 || !off) return 0;
    char part[64];
    snprintf(part, sizeof part, "%s", rn + off);
    char *dot = strstr(part, ".in_norm");
    if (dot) *dot = 0;
    for (size_t i = 0; i < sizeof layer_map / sizeof layer_map[0]; i++)
        if (!strcmp(part, layer_map[i].rotor)) {
            snprintf(out, cap, "%slayers.%d.%s.%s", h->prefix, layer, layer_map[i].hf, dot ? "rms_norm.weight" : "weight");
            return 1;
        }
    return 0;
}

static int is_float(int dt) { return dt == RTR_ST_F32 || dt == RTR_ST_F16 || dt == RTR_ST_BF16 || dt == RTR_ST_F64; }

static void shape_str(const rtr_st_tensor *t, char *out, size_t cap) {
    size_t o = (size_t)snprintf(out, cap, "[");
    for (int i = 0; i < t->ndim && o < cap; i++) o += (size_t)snprintf(out + o, cap - o, i ? ", %llu" : "%llu", (unsigned long long)t->shape[i]);
    if (o < cap) snprintf(out + o, cap - o, "]");
}

static int bad_shape(const rtr_st_tensor *t, const char *want, rtr_err *err) {
    char got[96];
    shape_str(t, got, sizeof got);
    return rtr_seterr(err, RTR_EFORMAT, "%s: tensor %s: shape %s %s, expected %s", t->file, t->name, got,
                      rtr_st_dtype_name(t->dtype), want);
}

/* Finds and checks the tensors of every item; then refuses tensors nothing asked for. */
static int hf_bind(hf_ctx *h, const rtr_cv_item *items, size_t n, int tied, rtr_err *err) {
    char nm[256], sn[300], want[96];
    for (size_t i = 0; i < n; i++) {
        const rtr_cv_item *it = &items[i];
        if (!hf_name(h, it->name, nm, sizeof nm)) return rtr_seterr(err, RTR_EARG, "no Hugging Face name for %s", it->name);
        rtr_st_tensor *t = rtr_st_find(&h->st, nm);
        if (!t) return rtr_seterr(err, RTR_EFORMAT, "%s: missing tensor %s", h->dir, nm);
        t->used = 1;
        h->w[i] = t;
        if (it->kind == RTR_CV_NORM) {
            snprintf(want, sizeof want, "[%llu] float", (unsigned long long)it->cols);
            if (t->ndim != 1 || t->shape[0] != it->cols || !is_float(t->dtype)) return bad_shape(t, want, err);
        } else if (it->kind == RTR_CV_EMBD || it->kind == RTR_CV_OUTPUT) {
            snprintf(want, sizeof want, "[%llu, %llu] float", (unsigned long long)it->rows, (unsigned long long)it->cols);
            if (t->ndim != 2 || t->shape[0] != it->rows || t->shape[1] != it->cols || !is_float(t->dtype))
                return bad_shape(t, want, err);
        } else {
            snprintf(sn, sizeof sn, "%s_scale", nm);
            rtr_st_tensor *s = rtr_st_find(&h->st, sn);
            if (t->dtype == RTR_ST_U8 || t->dtype == RTR_ST_I8) {
                snprintf(want, sizeof want, "[%llu, %llu] U8 (packed) or [%llu, %llu] float",
                         (unsigned long long)it->rows / 4, (unsigned long long)it->cols,
                         (unsigned long long)it->rows, (unsigned long long)it->cols);
                if (t->ndim != 2 || it->rows % 4 || t->shape[0] * 4 != it->rows || t->shape[1] != it->cols)
                    return bad_shape(t, want, err);
                if (!s) return rtr_seterr(err, RTR_EFORMAT, "%s: missing tensor %s (the scale of packed %s)", h->dir, sn, nm);
                if (s->n != 1 || !is_float(s->dtype))
                    return rtr_seterr(err, RTR_EFORMAT, "%s: tensor %s: expected one float, got %llu %s", s->file, sn,
                                      (unsigned long long)s->n, rtr_st_dtype_name(s->dtype));
                s->used = 1;
                h->s[i] = s;
            } else if (is_float(t->dtype)) {
                snprintf(want, sizeof want, "[%llu, %llu]", (unsigned long long)it->rows, (unsigned long long)it->cols);
                if (t->ndim != 2 || t->shape[0] != it->rows || t->shape[1] != it->cols) return bad_shape(t, want, err);
                if (s) return rtr_seterr(err, RTR_EFORMAT, "%s: tensor %s: a weight_scale next to float weights", s->file, sn);
                if (it->rows * it->cols > h->fcap) h->fcap = it->rows * it->cols;
            } else {
                return rtr_seterr(err, RTR_EFORMAT, "%s: tensor %s: dtype %s is not a ternary or float weight", t->file,
                                  nm, rtr_st_dtype_name(t->dtype));
            }
        }
    }
    for (size_t i = 0; i < h->st.n; i++) {
        rtr_st_tensor *t = &h->st.t[i];
        if (t->used) continue;
        size_t l = strlen(t->name);
        if ((tied && !strcmp(t->name, "lm_head.weight")) || (l > 19 && !strcmp(t->name + l - 19, "rotary_emb.inv_freq")))
            continue;
        return rtr_seterr(err, RTR_EFORMAT, "%s: unexpected tensor %s (not part of this architecture)", t->file, t->name);
    }
    return 0;
}

static size_t item_index(const hf_ctx *h, const rtr_cv_item *it) { return (size_t)(it - h->items); }

static int hf_mat_type(void *ctx, const rtr_cv_item *it) {
    const rtr_st_tensor *t = ((hf_ctx *)ctx)->w[item_index(ctx, it)];
    return t->dtype == RTR_ST_BF16 ? RTR_T_BF16 : t->dtype == RTR_ST_F16 ? RTR_T_F16 : RTR_T_F32;
}

static int hf_rows(void *ctx, const rtr_cv_item *it, uint64_t r0, uint64_t n, void *dst, rtr_err *err) {
    (void)err;
    const rtr_st_tensor *t = ((hf_ctx *)ctx)->w[item_index(ctx, it)];
    uint64_t K = it->cols;
    if (t->dtype == RTR_ST_F64) {
        float *f = dst;
        for (uint64_t i = 0; i < n * K; i++) f[i] = rtr_st_get_f32(t, r0 * K + i);
    } else {
        size_t es = (size_t)rtr_st_dtype_size(t->dtype);
        memcpy(dst, t->data + r0 * K * es, n * K * es);
    }
    return 0;
}

static int hf_norm(void *ctx, const rtr_cv_item *it, float *dst, rtr_err *err) {
    (void)err;
    const rtr_st_tensor *t = ((hf_ctx *)ctx)->w[item_index(ctx, it)];
    for (uint64_t i = 0; i < it->cols; i++) dst[i] = rtr_st_get_f32(t, i);
    return 0;
}

static int hf_ternary(void *ctx, const rtr_cv_item *it, int8_t *dst, float *alpha, rtr_err *err) {
    hf_ctx *h = ctx;
    size_t idx = item_index(h, it);
    const rtr_st_tensor *t = h->w[idx], *s = h->s[idx];
    uint64_t N = it->rows, K = it->cols;
    if (s) { /* packed: row n is in bits 2*(n/P) of packed row n%P */
        uint64_t P = N / 4;
        for (uint64_t n = 0; n < N; n++) {
            const uint8_t *src = t->data + (n % P) * K;
            int sh = (int)(2 * (n / P));
            for (uint64_t k = 0; k < K; k++) {
                int code = (src[k] >> sh) & 3;
                if (code == 3)
                    return rtr_seterr(err, RTR_EFORMAT, "%s: tensor %s: invalid packed value 3 (row %llu, column %llu)",
                                      t->file, t->name, (unsigned long long)n, (unsigned long long)k);
                dst[n * K + k] = (int8_t)(code - 1);
            }
        }
        *alpha = rtr_st_get_f32(s, 0);
        if (!(isfinite(*alpha) && *alpha > 0))
            return rtr_seterr(err, RTR_EFORMAT, "%s: tensor %s: scale %g is not a positive number", s->file, s->name, *alpha);
        return 0;
    }
    for (uint64_t i = 0; i < N * K; i++) {
        h->fbuf[i] = rtr_st_get_f32(t, i);
        if (!isfinite(h->fbuf[i]))
            return rtr_seterr(err, RTR_EFORMAT, "%s: tensor %s: non-finite weight at %llu", t->file, t->name, (unsigned long long)i);
    }
    rtr_cv_ternarize(h->fbuf, N * K, dst, alpha);
    return 0;
}

/* ---- folder files ---- */

static int exists(const char *path) { return access(path, R_OK) == 0; }

static int read_json(const char *path, rtr_json **out, rtr_err *err) {
    char *text;
    size_t len;
    int r = rtr_cv_read_file(path, (size_t)64 << 20, &text, &len, err);
    if (r) return r;
    rtr_err e;
    r = rtr_json_parse(text, len, out, &e);
    free(text);
    if (r) return rtr_seterr(err, r, "%s: %s", path, e.msg);
    return 0;
}

static void add_source(rtr_cv_model *m, const char *file) {
    size_t l = strlen(m->source);
    snprintf(m->source + l, sizeof m->source - l, "%s%s", l ? ", " : "", file);
}

static int open_weights(hf_ctx *h, rtr_cv_model *m, rtr_err *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", h->dir);
    if (exists(path)) {
        rtr_json *idx;
        int r = read_json(path, &idx, err);
        if (r) return r;
        const rtr_json *wm = rtr_json_get(idx, "weight_map");
        if (!wm || wm->type != RTR_JSON_OBJ || !wm->n) {
            rtr_json_free(idx);
            return rtr_seterr(err, RTR_EFORMAT, "%s: no weight_map", path);
        }
        add_source(m, "model.safetensors.index.json");
        for (size_t i = 0; !r && i < wm->n; i++) {
            const rtr_json *f = &wm->items[i];
            if (f->type != RTR_JSON_STR || !f->len || strchr(f->str, '/')) {
                r = rtr_seterr(err, RTR_EFORMAT, "%s: bad file name for %s", path, wm->keys[i]);
                break;
            }
            int seen = 0;
            for (size_t j = 0; j < i && !seen; j++) seen = !strcmp(wm->items[j].str, f->str);
            if (seen) continue;
            snprintf(path, sizeof path, "%s/%s", h->dir, f->str);
            r = rtr_st_add_file(&h->st, path, err);
            if (!r) add_source(m, f->str);
        }
        /* every tensor the index names must be where it says */
        for (size_t i = 0; !r && i < wm->n; i++) {
            const rtr_st_tensor *t = rtr_st_find(&h->st, wm->keys[i]);
            if (!t || strcmp(t->file, wm->items[i].str))
                r = rtr_seterr(err, RTR_EFORMAT, "%s: missing tensor %s (listed in model.safetensors.index.json)",
                               wm->items[i].str, wm->keys[i]);
        }
        rtr_json_free(idx);
        return r;
    }
    snprintf(path, sizeof path, "%s/model.safetensors", h->dir);
    if (!exists(path))
        return rtr_seterr(err, RTR_EIO, "%s: no model.safetensors or model.safetensors.index.json", h->dir);
    add_source(m, "model.safetensors");
    return rtr_st_add_file(&h->st, path, err);
}

/* a token given as "text" or {"content": "text"} in tokenizer_config.json */
static int config_token(const rtr_cv_model *m, const rtr_json *tc, const char *key, int *id) {
    const rtr_json *j = rtr_json_get(tc, key);
    if (j && j->type == RTR_JSON_OBJ) j = rtr_json_get(j, "content");
    if (!j || j->type != RTR_JSON_STR) return 0;
    int v = rtr_tok_src_find(m->tok, j->str);
    if (v < 0) return 0;
    *id = v;
    return 1;
}

static int set_template(rtr_cv_model *m, const char *s, size_t len, rtr_err *err) {
    free(m->chat_template);
    m->chat_template = NULL;
    if (memmem(s, len, "BITNETAssistant", 15)) { s = rtr_cv_template_2b4t; len = strlen(s); }
    m->chat_template = malloc(len + 1);
    if (!m->chat_template) return rtr_seterr(err, RTR_ENOMEM, "out of memory");
    memcpy(m->chat_template, s, len);
    m->chat_template[len] = 0;
    return 0;
}

static int read_tokenizer_side(const char *dir, const rtr_convert_opts *o, rtr_cv_model *m, rtr_err *err) {
    char path[4096];
    int r;
    if (o && o->tokenizer) {
        if ((r = rtr_cv_tok_from_file(o->tokenizer, &m->tok, err))) return r;
        const char *b = strrchr(o->tokenizer, '/');
        add_source(m, b ? b + 1 : o->tokenizer);
    } else {
        snprintf(path, sizeof path, "%s/tokenizer.json", dir);
        if (!exists(path)) snprintf(path, sizeof path, "%s/tokenizer.json.gz", dir);
        if (!exists(path)) return rtr_seterr(err, RTR_EIO, "%s: no tokenizer.json or tokenizer.json.gz", dir);
        if ((r = rtr_cv_tok_from_file(path, &m->tok, err))) return r;
        add_source(m, strrchr(path, '/') + 1);
    }
    int is_embed = !strcmp(m->pooling, "last");
    m->add_bos = !strcmp(m->arch, "bitnet");
    m->add_eos = 0;
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    if (exists(path)) {
        rtr_json *tc;
        if ((r = read_json(path, &tc, err))) return r;
        add_source(m, "tokenizer_config.json");
        jbool(tc, "add_bos_token", &m->add_bos);
        jbool(tc, "add_eos_token", &m->add_eos);
        const rtr_json *bt = rtr_json_get(tc, "bos_token");
        if (bt && bt->type == RTR_JSON_NULL && !m->add_bos) m->bos = -1;
        if (m->bos < 0) config_token(m, tc, "bos_token", &m->bos);
        if (m->eos < 0) config_token(m, tc, "eos_token", &m->eos);
        const rtr_json *ct = rtr_json_get(tc, "chat_template");
        if (ct && ct->type == RTR_JSON_ARR) { /* [{name, template}]: "default", else the first */
            const rtr_json *pick = NULL;
            for (size_t i = 0; i < ct->n; i++) {
                const char *nm = jstr(&ct->items[i], "name");
                if (!pick || (nm && !strcmp(nm, "default"))) pick = rtr_json_get(&ct->items[i], "template");
            }
            ct = pick;
        }
        if (ct && ct->type == RTR_JSON_STR) r = set_template(m, ct->str, ct->len, err);
        rtr_json_free(tc);
        if (r) return r;
    }
    snprintf(path, sizeof path, "%s/chat_template.jinja", dir);
    if (!m->chat_template && exists(path)) {
        char *t;
        size_t tl;
        if ((r = rtr_cv_read_file(path, 1 << 20, &t, &tl, err))) return r;
        r = set_template(m, t, tl, err);
        free(t);
        if (r) return r;
        add_source(m, "chat_template.jinja");
    }
    m->eot = rtr_tok_src_find(m->tok, "<|eot_id|>");
    snprintf(path, sizeof path, "%s/generation_config.json", dir);
    if (exists(path)) {
        rtr_json *gc;
        if ((r = read_json(path, &gc, err))) return r;
        add_source(m, "generation_config.json");
        const rtr_json *e = rtr_json_get(gc, "eos_token_id");
        int64_t v;
        if (m->eos < 0) jid(gc, "eos_token_id", &m->eos);
        /* an extra stop id becomes the end-of-turn token when the vocabulary has no <|eot_id|> */
        for (size_t i = 0; m->eot < 0 && e && e->type == RTR_JSON_ARR && i < e->n; i++)
            if (rtr_json_int(&e->items[i], &v) && v >= 0 && v < m->n_vocab && v != m->eos) m->eot = (int)v;
        rtr_json_free(gc);
    }
    if (is_embed) {
        m->add_eos = 1;
        m->add_bos = 0;
        snprintf(path, sizeof path, "%s/1_Pooling/config.json", dir);
        if (exists(path)) {
            rtr_json *pc;
            if ((r = read_json(path, &pc, err))) return r;
            int f = 0;
            if (jbool(pc, "pooling_mode_mean_tokens", &f) && f) snprintf(m->pooling, sizeof m->pooling, "mean");
            if (jbool(pc, "pooling_mode_cls_token", &f) && f) snprintf(m->pooling, sizeof m->pooling, "cls");
            if (jbool(pc, "pooling_mode_lasttoken", &f) && f) snprintf(m->pooling, sizeof m->pooling, "last");
            rtr_json_free(pc);
            if (strcmp(m->pooling, "last")) m->add_eos = 0;
        }
    }
    return 0;
}

int rtr_convert_hf(const char *dir, const char *out, const rtr_convert_opts *o, rtr_convert_stats *st,
                   rtr_err *err) {
    rtr_cv_model m;
    memset(&m, 0, sizeof m);
    hf_ctx h;
    memset(&h, 0, sizeof h);
    rtr_st_init(&h.st);
    h.dir = dir;
    rtr_cv_item *items = NULL;
    size_t n = 0;
    char path[4096];
    snprintf(m.origin, sizeof m.origin, "%s", dir);
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (!exists(path)) return rtr_seterr(err, RTR_EIO, "%s: no config.json (not a Hugging Face model folder)", dir);
    rtr_json *cfg;
    int r = read_json(path, &cfg, err);
    if (r) return r;
    r = rtr_cv_from_config(path, cfg, &m, err);
    rtr_json_free(cfg);
    if (r) return r;
    add_source(&m, "config.json");
    { /* general.name: the folder's name */
        char tmp[512];
        snprintf(tmp, sizeof tmp, "%s", dir);
        size_t l = strlen(tmp);
        while (l > 1 && tmp[l - 1] == '/') tmp[--l] = 0;
        const char *b = strrchr(tmp, '/');
        snprintf(m.name, sizeof m.name, "%s", b ? b + 1 : tmp);
    }
    if ((r = open_weights(&h, &m, err))) goto done;
    h.prefix = rtr_st_find(&h.st, "model.embed_tokens.weight") || !rtr_st_find(&h.st, "embed_tokens.weight") ? "model." : "";
    if ((r = read_tokenizer_side(dir, o, &m, err))) goto done;
    if ((r = rtr_cv_check(&m, err)) || (r = rtr_cv_plan(&m, &items, &n, err))) goto done;
    h.items = items;
    h.w = calloc(n, sizeof *h.w);
    h.s = calloc(n, sizeof *h.s);
    if (!h.w || !h.s) { r = rtr_seterr(err, RTR_ENOMEM, "out of memory"); goto done; }
    if ((r = hf_bind(&h, items, n, m.tied, err))) goto done;
    if (h.fcap && !(h.fbuf = malloc(h.fcap * sizeof(float)))) { r = rtr_seterr(err, RTR_ENOMEM, "out of memory"); goto done; }
    rtr_cv_source src = {&h, hf_mat_type, hf_rows, hf_norm, hf_ternary, NULL};
    r = rtr_cv_write(&m, items, n, &src, out, o, st, err);
done:
    free(items);
    free(h.w);
    free(h.s);
    free(h.fbuf);
    rtr_st_free(&h.st);
    rtr_cv_model_free(&m);
    return r;
}
