/* synthetic.c: random models of a real shape, for tests and benchmarks without a checkpoint.
 * Ternary weights are uniform over {-1, 0, +1} (a third zeros) with alpha in [0.5, 1); the
 * embedding is F16 with roughly N(0,1) values (a sum of four uniforms, rescaled); norm weights
 * lie in [0.8, 1.2]. Every tensor, and every embedding row, draws from its own splitmix64 stream
 * derived from the seed and the tensor name, so output depends only on (shape, seed, tokenizer)
 * and chunking never changes it. The tokenizer is a real one (Llama-3 by default). */
#include "convert.h"
#include "json.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    const char *name, *arch, *act;
    int n_vocab, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, max_ctx;
    double theta, eps;
} shape;

static const shape shapes[] = {
    {"bitnet-2b4t", "bitnet", "relu2", 128256, 2560, 30, 20, 5, 128, 6912, 4096, 500000.0, 1e-5},
    {"tiny", "bitnet", "relu2", 128256, 128, 2, 4, 1, 32, 384, 256, 500000.0, 1e-5},
    {"bitnet-embed-0.6b", "bitnet-qwen3", "silu", 151936, 1024, 28, 16, 8, 128, 3072, 32768, 1e6, 1e-6},
};

int rtr_synthetic_shape_known(const char *name) {
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        if (!strcmp(shapes[i].name, name)) return 1;
    return 0;
}

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

typedef struct {
    uint64_t seed;
    uint16_t *normal;   /* f16 of a rescaled sum of four 16-bit uniforms, indexed by the sum */
    uint8_t valid[81];  /* the bytes whose four 2-bit fields are all codes 00, 01 or 10 */
} syn_ctx;

static uint64_t stream(const syn_ctx *c, const char *name, uint64_t sub) {
    uint64_t s = c->seed ^ rtr_hash64(name, strlen(name), 0x5eed) ^ (sub * 0xD1B54A32D192ED03ull);
    splitmix(&s);
    return s;
}

static int syn_mat_type(void *ctx, const rtr_cv_item *it) { (void)ctx; (void)it; return RTR_T_F16; }

static int syn_rows(void *ctx, const rtr_cv_item *it, uint64_t r0, uint64_t n, void *dst, rtr_err *err) {
    (void)err;
    const syn_ctx *c = ctx;
    uint16_t *o = dst;
    for (uint64_t r = 0; r < n; r++) {
        uint64_t s = stream(c, it->name, r0 + r);
        for (uint64_t j = 0; j < it->cols; j++) {
            uint64_t x = splitmix(&s);
            uint32_t sum = (uint32_t)(x & 0xffff) + (uint32_t)(x >> 16 & 0xffff) + (uint32_t)(x >> 32 & 0xffff) +
                           (uint32_t)(x >> 48);
            *o++ = c->normal[sum];
        }
    }
    return 0;
}

static int syn_norm(void *ctx, const rtr_cv_item *it, float *dst, rtr_err *err) {
    (void)err;
    uint64_t s = stream(ctx, it->name, 0);
    for (uint64_t j = 0; j < it->cols; j++) dst[j] = 0.8f + 0.4f * (float)(splitmix(&s) >> 40) / (float)(1 << 24);
    return 0;
}

static int syn_t2(void *ctx, const rtr_cv_item *it, uint8_t *dst, float *alpha, rtr_err *err) {
    const syn_ctx *c = ctx;
    uint64_t s = stream(c, it->name, 0), rb = rtr_t2_row_bytes(it->cols);
    *alpha = 0.5f + 0.5f * (float)(splitmix(&s) >> 40) / (float)(1 << 24);
    if (it->cols % RTR_T2_BLOCK == 0) { /* every byte is one of the 81 valid ones */
        uint64_t n = it->rows * rb, x = 0;
        for (uint64_t i = 0; i < n; i++) {
            if (!(i & 7)) x = splitmix(&s);
            dst[i] = c->valid[((x & 0xff) * 81) >> 8];
            x >>= 8;
        }
        return 0;
    }
    int8_t *w = malloc(it->cols);
    if (!w) return rtr_seterr(err, RTR_ENOMEM, "out of memory");
    for (uint64_t r = 0; r < it->rows; r++) {
        for (uint64_t j = 0; j < it->cols; j++) w[j] = (int8_t)(splitmix(&s) % 3) - 1;
        rtr_t2_pack_row(w, it->cols, dst + r * rb);
    }
    free(w);
    return 0;
}

static int default_tokenizer(char *out, size_t cap) {
    static const char rel[] = "models/llama3-tokenizer.json";
    if (access(rel, R_OK) == 0) return snprintf(out, cap, "%s", rel), 1;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *sl = strrchr(exe, '/');
        if (sl) {
            *sl = 0;
            snprintf(out, cap, "%s/%s", exe, rel);
            if (access(out, R_OK) == 0) return 1;
        }
    }
    return 0;
}

static int find_tok(const rtr_cv_model *m, const char *a, const char *b) {
    int id = rtr_tok_src_find(m->tok, a);
    return id >= 0 || !b ? id : rtr_tok_src_find(m->tok, b);
}

int rtr_convert_synthetic(const char *name, const char *out, const rtr_convert_opts *o, rtr_convert_stats *st,
                          rtr_err *err) {
    rtr_cv_model m;
    memset(&m, 0, sizeof m);
    syn_ctx c;
    memset(&c, 0, sizeof c);
    c.seed = o ? o->seed : 0;
    rtr_cv_item *items = NULL;
    size_t n = 0;
    int r = 0, vocab = 0;
    snprintf(m.origin, sizeof m.origin, "synthetic %s", name);
    const shape *sh = NULL;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        if (!strcmp(shapes[i].name, name)) sh = &shapes[i];
    if (sh) {
        snprintf(m.arch, sizeof m.arch, "%s", sh->arch);
        snprintf(m.act, sizeof m.act, "%s", sh->act);
        vocab = sh->n_vocab;
        m.n_embd = sh->n_embd; m.n_layer = sh->n_layer; m.n_head = sh->n_head; m.n_head_kv = sh->n_head_kv;
        m.head_dim = sh->head_dim; m.n_ff = sh->n_ff; m.max_ctx = sh->max_ctx;
        m.rope_theta = sh->theta; m.norm_eps = sh->eps;
        m.embd_scale = 1.0;
        m.tied = 1;
        if (!strcmp(sh->arch, "bitnet")) {
            m.sub_norms = 1;
            snprintf(m.pooling, sizeof m.pooling, "none");
        } else {
            m.in_norms = m.qk_norm = 1;
            snprintf(m.pooling, sizeof m.pooling, "last");
        }
    } else { /* a config.json path */
        char *text;
        size_t len;
        rtr_json *j;
        rtr_err e;
        if (access(name, R_OK))
            return rtr_seterr(err, RTR_EARG, "unknown synthetic shape %s (bitnet-2b4t, tiny, bitnet-embed-0.6b or a config.json)", name);
        if ((r = rtr_cv_read_file(name, 1 << 24, &text, &len, err))) return r;
        r = rtr_json_parse(text, len, &j, &e);
        free(text);
        if (r) return rtr_seterr(err, r, "%s: %s", name, e.msg);
        r = rtr_cv_from_config(name, j, &m, err);
        rtr_json_free(j);
        if (r) return r;
        vocab = m.n_vocab;
    }
    char tpath[PATH_MAX + 64];
    const char *tp = o ? o->tokenizer : NULL;
    if (!tp) {
        if (!default_tokenizer(tpath, sizeof tpath))
            return rtr_seterr(err, RTR_EIO, "models/llama3-tokenizer.json not found (give a tokenizer with --tokenizer)");
        tp = tpath;
    }
    if ((r = rtr_cv_tok_from_file(tp, &m.tok, err))) goto done;
    int tv = rtr_tok_src_n_vocab(m.tok);
    m.n_vocab = vocab > tv ? vocab : tv;
    if (!strcmp(m.arch, "bitnet")) {
        m.bos = find_tok(&m, "<|begin_of_text|>", NULL);
        m.eos = find_tok(&m, "<|end_of_text|>", "<|endoftext|>");
        m.add_bos = m.bos >= 0;
        size_t tl = strlen(rtr_cv_template_2b4t);
        if (!(m.chat_template = malloc(tl + 1))) { r = rtr_seterr(err, RTR_ENOMEM, "out of memory"); goto done; }
        memcpy(m.chat_template, rtr_cv_template_2b4t, tl + 1);
    } else {
        m.bos = -1;
        m.eos = find_tok(&m, "<|endoftext|>", "<|end_of_text|>");
        m.add_eos = m.eos >= 0;
    }
    m.eot = find_tok(&m, "<|eot_id|>", NULL);
    snprintf(m.name, sizeof m.name, "synthetic-%s", sh ? sh->name : "config");
    const char *tb = strrchr(tp, '/');
    snprintf(m.source, sizeof m.source, "synthetic %.200s seed %llu, %.200s", sh ? sh->name : name,
             (unsigned long long)c.seed, tb ? tb + 1 : tp);
    if ((r = rtr_cv_check(&m, err)) || (r = rtr_cv_plan(&m, &items, &n, err))) goto done;
    if (!(c.normal = malloc((4 * 65535 + 1) * sizeof *c.normal))) { r = rtr_seterr(err, RTR_ENOMEM, "out of memory"); goto done; }
    for (uint32_t s = 0; s <= 4 * 65535; s++) /* mean 2, variance 1/3 -> N(0,1)-like */
        c.normal[s] = rtr_f32_to_f16((float)(((double)s / 65535.0 - 2.0) * 1.7320508075688772));
    for (int b = 0, k = 0; b < 256; b++)
        if (!((b & (b >> 1)) & 0x55)) c.valid[k++] = (uint8_t)b;
    rtr_cv_source src = {&c, syn_mat_type, syn_rows, syn_norm, NULL, syn_t2};
    r = rtr_cv_write(&m, items, n, &src, out, o, st, err);
done:
    free(items);
    free(c.normal);
    rtr_cv_model_free(&m);
    return r;
}
