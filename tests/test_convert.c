/* test_convert.c: the converter (tools/convert*.c, tools/gguf.c, tools/safetensors.c) against the
 * fixtures. The reference is the fixture's own safetensors, read here independently (header
 * through the JSON reader, packing decoded by the spec formula): every ternary code, scale, norm
 * and embedding value of the .rotor must match it. Then the same model through master weights,
 * shards and GGUF files (I2_S, TQ1_0, TQ2_0; F16, F32, BF16 embeddings; written by
 * tests/gguf_writer.c from the fixture tensors) must give the same file contents. Last, damaged
 * inputs and damaged .rotor files must fail with one clear message and leave nothing behind. */
#include "../tools/convert.h"
#include "../tools/gguf.h"
#include "../tools/json.h"
#include "test.h"
#include "gguf_writer.h"
/* the Makefile links test programs with the library only; the writer is test code */
#include "gguf_writer.c"

#include <dirent.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char tmpdir[256];
static char fixdir[4096];

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint8_t *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    uint8_t *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) { free(b); b = NULL; }
    fclose(f);
    if (b) { b[n] = 0; *len = (size_t)n; }
    return b;
}

static int spit(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int ok = fwrite(p, 1, n, f) == n;
    return fclose(f) == 0 && ok ? 0 : -1;
}

static char *tpath(const char *name) {
    static char buf[8][1024];
    static int k;
    char *p = buf[k++ & 7];
    snprintf(p, 1024, "%s/%s", tmpdir, name);
    return p;
}

static char *fpath(const char *rel) {
    static char buf[8][4400];
    static int k;
    char *p = buf[k++ & 7];
    snprintf(p, 4400, "%s/%.200s", fixdir, rel);
    return p;
}

/* files in tmpdir whose name contains ".tmp" (the writer's temporary files) */
static int leftovers(void) {
    DIR *d = opendir(tmpdir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".tmp")) n++;
    if (d) closedir(d);
    return n;
}

/* ---- an independent view of a safetensors file ---- */
typedef struct {
    uint8_t *buf;
    size_t len;
    rtr_json *hdr;
    const uint8_t *data;
} stf;

static int stf_open(stf *s, const char *path) {
    memset(s, 0, sizeof *s);
    s->buf = slurp(path, &s->len);
    if (!s->buf || s->len < 8) return -1;
    uint64_t hl;
    memcpy(&hl, s->buf, 8);
    rtr_err e;
    if (rtr_json_parse((const char *)s->buf + 8, (size_t)hl, &s->hdr, &e)) return -1;
    s->data = s->buf + 8 + hl;
    return 0;
}

static void stf_close(stf *s) {
    rtr_json_free(s->hdr);
    free(s->buf);
}

/* data of a tensor, with dtype, up to two dims and byte size */
static const uint8_t *stf_get(const stf *s, const char *name, const char **dtype, int64_t shape[2], size_t *bytes) {
    const rtr_json *t = rtr_json_get(s->hdr, name);
    if (!t) return NULL;
    const rtr_json *sh = rtr_json_get(t, "shape"), *of = rtr_json_get(t, "data_offsets");
    *dtype = rtr_json_get(t, "dtype")->str;
    shape[0] = shape[1] = 1;
    for (size_t i = 0; i < sh->n && i < 2; i++) rtr_json_int(&sh->items[i], &shape[i]);
    int64_t b, e;
    rtr_json_int(&of->items[0], &b);
    rtr_json_int(&of->items[1], &e);
    *bytes = (size_t)(e - b);
    return s->data + b;
}

static float bf16(const uint8_t *p, size_t i) { return rtr_bf16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8)); }

/* ---- a safetensors writer for assembling test folders ---- */
typedef struct {
    char name[128];
    char dtype[8];
    int ndim;
    int64_t shape[2];
    const void *data;
    size_t size;
} stw;

static int stw_write(const char *path, const stw *t, int n) {
    size_t cap = 256 + (size_t)n * 256, hl = 0, off = 0;
    char *h = malloc(cap);
    hl += (size_t)snprintf(h + hl, cap - hl, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int i = 0; i < n; i++) {
        hl += (size_t)snprintf(h + hl, cap - hl, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", t[i].name, t[i].dtype);
        for (int d = 0; d < t[i].ndim; d++) hl += (size_t)snprintf(h + hl, cap - hl, d ? ",%lld" : "%lld", (long long)t[i].shape[d]);
        hl += (size_t)snprintf(h + hl, cap - hl, "],\"data_offsets\":[%zu,%zu]}", off, off + t[i].size);
        off += t[i].size;
    }
    hl += (size_t)snprintf(h + hl, cap - hl, "}");
    while (hl % 8) h[hl++] = ' ';
    FILE *f = fopen(path, "wb");
    if (!f) { free(h); return -1; }
    uint64_t l = hl;
    fwrite(&l, 8, 1, f);
    fwrite(h, 1, hl, f);
    for (int i = 0; i < n; i++) fwrite(t[i].data, 1, t[i].size, f);
    free(h);
    return fclose(f);
}

/* every tensor of an existing safetensors file, as stw entries (data points into s) */
static int stw_from(const stf *s, stw *out, int cap) {
    int n = 0;
    for (size_t i = 0; i < s->hdr->n && n < cap; i++) {
        if (!strcmp(s->hdr->keys[i], "__metadata__")) continue;
        stw *t = &out[n++];
        memset(t, 0, sizeof *t);
        snprintf(t->name, sizeof t->name, "%s", s->hdr->keys[i]);
        const char *dt;
        t->data = stf_get(s, t->name, &dt, t->shape, &t->size);
        snprintf(t->dtype, sizeof t->dtype, "%s", dt);
        t->ndim = (int)rtr_json_get(&s->hdr->items[i], "shape")->n;
    }
    return n;
}

static int stw_drop(stw *t, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(t[i].name, name)) { t[i] = t[n - 1]; return n - 1; }
    return n;
}

static void make_folder(const char *dir, const char *fix) {
    mkdir(dir, 0755);
    char a[1024], b[1024];
    static const char *files[] = {"config.json", "tokenizer.json", "tokenizer.json.gz", "tokenizer_config.json"};
    for (int i = 0; i < 4; i++) {
        snprintf(a, sizeof a, "%s/%s", fix, files[i]);
        snprintf(b, sizeof b, "%s/%s", dir, files[i]);
        if (access(a, R_OK) == 0) { unlink(b); if (symlink(a, b)) perror("symlink"); }
    }
}

/* ---- the rotor <-> HF name map (spec §3.1 and the embedding fixture's README) ---- */
static const char *lin_rotor[7] = {"attn_q", "attn_k", "attn_v", "attn_o", "ffn_gate", "ffn_up", "ffn_down"};
static const char *lin_hf[7] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                                "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};
static const char *lin_gguf[7] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};

typedef struct { const char *rotor, *hf, *gguf; } norm_name;
static const norm_name norms_2b4t[] = {
    {"attn_norm", "input_layernorm", "attn_norm"}, {"ffn_norm", "post_attention_layernorm", "ffn_norm"},
    {"attn_sub_norm", "self_attn.attn_sub_norm", "attn_sub_norm"}, {"ffn_sub_norm", "mlp.ffn_sub_norm", "ffn_sub_norm"}};
static const norm_name norms_embed[] = {
    {"attn_norm", "input_layernorm", "attn_norm"}, {"ffn_norm", "post_attention_layernorm", "ffn_norm"},
    {"attn_q_norm", "self_attn.q_norm", "attn_q_norm"}, {"attn_k_norm", "self_attn.k_norm", "attn_k_norm"}};

/* reference ternary values of a packed HF tensor: row n is in bits 2*(n/P) of packed row n%P */
static int8_t *ref_unpack(const stf *s, const char *name, int64_t *rows, int64_t *cols, float *scale) {
    const char *dt;
    int64_t sh[2];
    size_t bytes;
    const uint8_t *p = stf_get(s, name, &dt, sh, &bytes);
    char sn[256];
    snprintf(sn, sizeof sn, "%s_scale", name);
    int64_t ssh[2];
    size_t sb;
    const uint8_t *sp = stf_get(s, sn, &dt, ssh, &sb);
    if (!p || !sp) return NULL;
    *scale = bf16(sp, 0);
    int64_t P = sh[0], K = sh[1], N = 4 * P;
    int8_t *w = malloc((size_t)(N * K));
    for (int64_t n = 0; n < N; n++)
        for (int64_t k = 0; k < K; k++) w[n * K + k] = (int8_t)(((p[(n % P) * K + k] >> (2 * (n / P))) & 3) - 1);
    *rows = N;
    *cols = K;
    return w;
}

static int meta_is(const rtr_file *f, const char *key, int64_t want) {
    int64_t v;
    return !rtr_meta_int(f, key, &v) && v == want;
}
static int meta_str_is(const rtr_file *f, const char *key, const char *want) {
    const char *s;
    size_t l;
    return !rtr_meta_str(f, key, &s, &l) && l == strlen(want) && !memcmp(s, want, l);
}

/* Checks a converted file against the fixture safetensors: codes, scales, norms, embedding. */
static void check_against_fixture(const char *rotor, const char *fix, int embed_model) {
    rtr_file f;
    rtr_err e;
    stf s;
    char st_path[1024];
    snprintf(st_path, sizeof st_path, "%s/model.safetensors", fix);
    if (rtr_file_open(&f, rotor, &e) || stf_open(&s, st_path)) { CHECK(0, "open %s: %s", rotor, e.msg); return; }
    CHECK(!rtr_file_verify(&f, NULL, NULL, &e), "verify %s: %s", rotor, e.msg);
    int layers = 2, bad_codes = 0, bad_scales = 0, bad_norms = 0, missing = 0;
    for (int l = 0; l < layers; l++) {
        for (int j = 0; j < 7; j++) {
            char hn[128], rn[64];
            snprintf(hn, sizeof hn, "model.layers.%d.%s.weight", l, lin_hf[j]);
            snprintf(rn, sizeof rn, "blk.%d.%s", l, lin_rotor[j]);
            int64_t N, K;
            float sc;
            int8_t *w = ref_unpack(&s, hn, &N, &K, &sc);
            const rtr_tensor *t = rtr_file_tensor(&f, rn);
            if (!w || !t || t->type != RTR_T_T2 || t->shape[0] != (uint64_t)N || t->shape[1] != (uint64_t)K) {
                missing++;
                free(w);
                continue;
            }
            uint64_t rb = rtr_t2_row_bytes((uint64_t)K);
            for (int64_t n = 0; n < N; n++)
                for (int64_t k = 0; k < K; k++)
                    bad_codes += rtr_t2_get((const uint8_t *)t->data + n * rb, (uint64_t)k) != w[n * K + k];
            bad_scales += t->scale != sc;
            free(w);
        }
        const norm_name *nn = embed_model ? norms_embed : norms_2b4t;
        for (int j = 0; j < 4 + (embed_model ? 7 : 0); j++) {
            char hn[128], rn[64];
            if (j < 4) {
                snprintf(hn, sizeof hn, "model.layers.%d.%s.weight", l, nn[j].hf);
                snprintf(rn, sizeof rn, "blk.%d.%s", l, nn[j].rotor);
            } else {
                snprintf(hn, sizeof hn, "model.layers.%d.%s.rms_norm.weight", l, lin_hf[j - 4]);
                snprintf(rn, sizeof rn, "blk.%d.%s.in_norm", l, lin_rotor[j - 4]);
            }
            const char *dt;
            int64_t sh[2];
            size_t bytes;
            const uint8_t *p = stf_get(&s, hn, &dt, sh, &bytes);
            const rtr_tensor *t = rtr_file_tensor(&f, rn);
            if (!p || !t || t->type != RTR_T_F32 || t->shape[0] != (uint64_t)sh[0]) { missing++; continue; }
            for (int64_t i = 0; i < sh[0]; i++) bad_norms += ((const float *)t->data)[i] != bf16(p, (size_t)i);
        }
    }
    const char *dt;
    int64_t sh[2];
    size_t bytes;
    const uint8_t *p = stf_get(&s, "model.norm.weight", &dt, sh, &bytes);
    const rtr_tensor *t = rtr_file_tensor(&f, "output_norm");
    if (p && t) for (int64_t i = 0; i < sh[0]; i++) bad_norms += ((const float *)t->data)[i] != bf16(p, (size_t)i);
    else missing++;
    p = stf_get(&s, "model.embed_tokens.weight", &dt, sh, &bytes);
    t = rtr_file_tensor(&f, "tok_embd");
    CHECK(p && t && t->type == RTR_T_BF16 && t->size == bytes && !memcmp(t->data, p, bytes),
          "%s: tok_embd equals the fixture's bf16 embedding", rotor);
    CHECK(!missing, "%s: %d tensors missing or of the wrong type/shape", rotor, missing);
    CHECK(!bad_codes, "%s: %d ternary codes differ from the fixture", rotor, bad_codes);
    CHECK(!bad_scales, "%s: %d scales differ from weight_scale", rotor, bad_scales);
    CHECK(!bad_norms, "%s: %d norm values differ", rotor, bad_norms);
    CHECK(!rtr_file_tensor(&f, "output"), "%s: tied model has no output tensor", rotor);
    stf_close(&s);
    rtr_file_close(&f);
}

static int convert_hf(const char *dir, const char *out, int head, rtr_err *e) {
    rtr_convert_opts o = {0};
    o.head = head;
    unlink(out);
    return rtr_convert_hf(dir, out, &o, NULL, e);
}

/* ---- 1. Hugging Face conversion of both fixtures ---- */
static void test_hf(void) {
    rtr_err e;
    double t0 = now(), c0 = cpu_now();
    int r = convert_hf(fpath("tiny-bitnet"), tpath("hf.rotor"), 0, &e);
    double dt = now() - t0, dc = cpu_now() - c0;
    CHECK(!r, "convert tiny-bitnet: %s", e.msg);
    if (r) return;
    fprintf(stderr, "tiny-bitnet HF conversion: %.3f s wall, %.3f s CPU\n", dt, dc);
    check_against_fixture(tpath("hf.rotor"), fpath("tiny-bitnet"), 0);
    rtr_file f;
    if (!rtr_file_open(&f, tpath("hf.rotor"), &e)) {
        CHECK(meta_str_is(&f, "general.arch", "bitnet"), "general.arch");
        CHECK(meta_is(&f, "model.n_vocab", 128256) && meta_is(&f, "model.n_embd", 128) && meta_is(&f, "model.n_layer", 2) &&
              meta_is(&f, "model.n_head", 4) && meta_is(&f, "model.n_head_kv", 1) && meta_is(&f, "model.head_dim", 32) &&
              meta_is(&f, "model.n_ff", 384) && meta_is(&f, "model.max_ctx", 256), "shape metadata");
        double th = 0, eps = 0, es = 0;
        rtr_meta_float(&f, "model.rope_theta", &th);
        rtr_meta_float(&f, "model.norm_eps", &eps);
        rtr_meta_float(&f, "model.embd_scale", &es);
        CHECK(th == 500000.0 && eps == 1e-5 && es == 1.0, "rope_theta %g, eps %g, embd_scale %g", th, eps, es);
        CHECK(meta_str_is(&f, "model.act", "relu2") && meta_is(&f, "model.sub_norms", 1) && meta_is(&f, "model.in_norms", 0) &&
              meta_is(&f, "model.qk_norm", 0) && meta_str_is(&f, "model.pooling", "none"), "act and norm flags");
        CHECK(meta_is(&f, "tokenizer.bos", 128000) && meta_is(&f, "tokenizer.eos", 128001) && meta_is(&f, "tokenizer.eot", 128009) &&
              meta_is(&f, "tokenizer.add_bos", 1) && meta_is(&f, "tokenizer.add_eos", 0), "special tokens");
        CHECK(meta_str_is(&f, "chat.template", rtr_cv_template_2b4t), "chat template from tokenizer_config.json");
        CHECK(meta_str_is(&f, "general.converter", "rotor " RTR_VERSION), "general.converter");
        rtr_file_close(&f);
    }

    r = convert_hf(fpath("tiny-bitnet-embed"), tpath("hf-embed.rotor"), 0, &e);
    CHECK(!r, "convert tiny-bitnet-embed: %s", e.msg);
    if (!r) {
        check_against_fixture(tpath("hf-embed.rotor"), fpath("tiny-bitnet-embed"), 1);
        if (!rtr_file_open(&f, tpath("hf-embed.rotor"), &e)) {
            CHECK(meta_str_is(&f, "general.arch", "bitnet-qwen3"), "embed arch");
            CHECK(meta_is(&f, "model.n_vocab", 151936) && meta_is(&f, "model.n_embd", 32) && meta_is(&f, "model.head_dim", 16) &&
                  meta_is(&f, "model.n_head", 4) && meta_is(&f, "model.n_head_kv", 2) && meta_is(&f, "model.n_ff", 96),
                  "embed shape");
            CHECK(meta_str_is(&f, "model.act", "silu") && meta_is(&f, "model.in_norms", 1) && meta_is(&f, "model.qk_norm", 1) &&
                  meta_is(&f, "model.sub_norms", 0) && meta_str_is(&f, "model.pooling", "last"), "embed flags");
            CHECK(meta_is(&f, "tokenizer.eos", 151643) && meta_is(&f, "tokenizer.add_eos", 1) &&
                  meta_is(&f, "tokenizer.add_bos", 0) && meta_is(&f, "tokenizer.bos", -1), "embed special tokens");
            double th = 0;
            rtr_meta_float(&f, "model.rope_theta", &th);
            CHECK(th == 1e6, "embed rope_theta %g", th);
            rtr_file_close(&f);
        }
    }
}

/* Compares two converted files: the same tensors with identical bytes and scales, except those
 * listed in skip (prefix match). */
static void same_tensors(const char *a, const char *b, const char *skip, const char *what) {
    rtr_file fa, fb;
    rtr_err e;
    if (rtr_file_open(&fa, a, &e)) { CHECK(0, "%s: open %s: %s", what, a, e.msg); return; }
    if (rtr_file_open(&fb, b, &e)) { CHECK(0, "%s: open %s: %s", what, b, e.msg); rtr_file_close(&fa); return; }
    CHECK(!rtr_file_verify(&fb, NULL, NULL, &e), "%s: verify: %s", what, e.msg);
    CHECK(fa.n_tensors == fb.n_tensors, "%s: %u vs %u tensors", what, fa.n_tensors, fb.n_tensors);
    int diff = 0;
    for (uint32_t i = 0; i < fa.n_tensors; i++) {
        const rtr_tensor *x = &fa.tensors[i], *y = rtr_file_tensor(&fb, x->name);
        if (skip && !strncmp(x->name, skip, strlen(skip))) continue;
        if (!y || x->type != y->type || x->size != y->size || memcmp(x->shape, y->shape, sizeof x->shape) ||
            memcmp(x->data, y->data, x->size) || x->scale != y->scale) {
            if (diff++ < 3) fprintf(stderr, "  %s: tensor %s differs\n", what, x->name);
        }
    }
    CHECK(!diff, "%s: %d tensors differ", what, diff);
    rtr_file_close(&fa);
    rtr_file_close(&fb);
}

/* codes equal; scales within bf16 rounding (master alpha is float32, weight_scale bf16) */
static void same_codes(const char *a, const char *b, const char *what) {
    rtr_file fa, fb;
    rtr_err e;
    if (rtr_file_open(&fa, a, &e) || rtr_file_open(&fb, b, &e)) { CHECK(0, "%s: %s", what, e.msg); return; }
    int n = 0, diff = 0, sdiff = 0;
    for (uint32_t i = 0; i < fa.n_tensors; i++) {
        const rtr_tensor *x = &fa.tensors[i], *y = rtr_file_tensor(&fb, x->name);
        if (!y) { diff++; continue; }
        if (x->type == RTR_T_T2) {
            n++;
            diff += x->size != y->size || memcmp(x->data, y->data, x->size);
            sdiff += fabsf(x->scale - y->scale) > x->scale * (1.0f / 256);
        } else {
            diff += x->size != y->size || memcmp(x->data, y->data, x->size);
        }
    }
    CHECK(n == 14 && !diff, "%s: %d of %d tensors differ", what, diff, fa.n_tensors);
    CHECK(!sdiff, "%s: %d scales beyond bf16 rounding", what, sdiff);
    rtr_file_close(&fa);
    rtr_file_close(&fb);
}

/* ---- 2. master weights, shards ---- */
static void test_master(const char *fix, const char *packed_rotor, const char *tag) {
    char dir[512], p[1024];
    snprintf(dir, sizeof dir, "%s/master-%s", tmpdir, tag);
    make_folder(dir, fpath(fix));
    stf model, master;
    snprintf(p, sizeof p, "%s/model.safetensors", fpath(fix));
    if (stf_open(&model, p)) { CHECK(0, "open %s", p); return; }
    snprintf(p, sizeof p, "%s/master_linear_weights.bf16.safetensors", fpath(fix));
    if (stf_open(&master, p)) { CHECK(0, "open %s", p); stf_close(&model); return; }
    stw t[128], m[32];
    int n = stw_from(&model, t, 128), nm = stw_from(&master, m, 32);
    for (int i = 0; i < nm; i++) { /* replace packed weight and scale by the master */
        char sn[160];
        snprintf(sn, sizeof sn, "%.120s_scale", m[i].name);
        n = stw_drop(t, n, sn);
        n = stw_drop(t, n, m[i].name);
        t[n++] = m[i];
    }
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    CHECK(!stw_write(p, t, n), "write %s", p);
    rtr_err e;
    char out[600];
    snprintf(out, sizeof out, "%s/master-%s.rotor", tmpdir, tag);
    int r = convert_hf(dir, out, 0, &e);
    CHECK(!r, "%s master conversion: %s", tag, e.msg);
    if (!r) same_codes(packed_rotor, out, tag);

    /* the packed model split in two shards with an index */
    snprintf(dir, sizeof dir, "%s/shards-%s", tmpdir, tag);
    make_folder(dir, fpath(fix));
    n = stw_from(&model, t, 128);
    int half = n / 2;
    snprintf(p, sizeof p, "%s/model-00001-of-00002.safetensors", dir);
    CHECK(!stw_write(p, t, half), "write shard 1");
    snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", dir);
    CHECK(!stw_write(p, t + half, n - half), "write shard 2");
    size_t cap = 64 + (size_t)n * 200, l = 0;
    char *idx = malloc(cap);
    l += (size_t)snprintf(idx + l, cap - l, "{\"metadata\":{},\"weight_map\":{");
    for (int i = 0; i < n; i++)
        l += (size_t)snprintf(idx + l, cap - l, "%s\"%s\":\"model-0000%d-of-00002.safetensors\"", i ? "," : "", t[i].name,
                              i < half ? 1 : 2);
    l += (size_t)snprintf(idx + l, cap - l, "}}");
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    spit(p, idx, l);
    free(idx);
    snprintf(out, sizeof out, "%s/shards-%s.rotor", tmpdir, tag);
    r = convert_hf(dir, out, 0, &e);
    CHECK(!r, "%s sharded conversion: %s", tag, e.msg);
    if (!r) same_tensors(packed_rotor, out, NULL, "sharded = single file");
    stf_close(&model);
    stf_close(&master);
}

/* ---- 3. GGUF ---- */
typedef struct {
    const char *name, *arch;
    uint32_t version, lin_type, embd_type, norm_type;
} gguf_case;

/* tokenizer arrays from an HF tokenizer.json, as llama.cpp's converter lays them out */
static int tok_arrays(const char *path, gw *w, const char *pre) {
    size_t len;
    uint8_t *text;
    rtr_err e;
    if (strstr(path, ".gz")) {
        char *t;
        if (rtr_cv_read_file(path, 1u << 30, &t, &len, &e)) return -1;
        text = (uint8_t *)t;
    } else {
        text = slurp(path, &len);
    }
    rtr_json *j;
    if (!text || rtr_json_parse((const char *)text, len, &j, &e)) { free(text); return -1; }
    free(text);
    const rtr_json *model = rtr_json_get(j, "model"), *vocab = rtr_json_get(model, "vocab"),
                   *merges = rtr_json_get(model, "merges"), *added = rtr_json_get(j, "added_tokens");
    int64_t maxid = -1, id;
    for (size_t i = 0; i < vocab->n; i++) { rtr_json_int(&vocab->items[i], &id); if (id > maxid) maxid = id; }
    for (size_t i = 0; i < added->n; i++) { rtr_json_int(rtr_json_get(&added->items[i], "id"), &id); if (id > maxid) maxid = id; }
    size_t nv = (size_t)maxid + 1;
    const char **tok = calloc(nv, sizeof *tok);
    size_t *tl = calloc(nv, sizeof *tl);
    int32_t *ty = calloc(nv, sizeof *ty);
    for (size_t i = 0; i < vocab->n; i++) {
        rtr_json_int(&vocab->items[i], &id);
        tok[id] = vocab->keys[i];
        tl[id] = vocab->key_lens[i];
        ty[id] = 1;
    }
    for (size_t i = 0; i < added->n; i++) {
        const rtr_json *a = &added->items[i], *c = rtr_json_get(a, "content"), *sp = rtr_json_get(a, "special");
        rtr_json_int(rtr_json_get(a, "id"), &id);
        tok[id] = c->str;
        tl[id] = c->len;
        ty[id] = sp && sp->boolean ? 3 : 4;
    }
    for (size_t i = 0; i < nv; i++)
        if (!tok[i]) { tok[i] = "[PAD]"; tl[i] = 5; ty[i] = 5; }
    char **mg = calloc(merges->n, sizeof *mg);
    size_t *ml = calloc(merges->n, sizeof *ml);
    for (size_t i = 0; i < merges->n; i++) {
        const rtr_json *m = &merges->items[i];
        if (m->type == RTR_JSON_STR) {
            mg[i] = strdup(m->str);
            ml[i] = m->len;
        } else {
            ml[i] = m->items[0].len + 1 + m->items[1].len;
            mg[i] = malloc(ml[i] + 1);
            memcpy(mg[i], m->items[0].str, m->items[0].len);
            mg[i][m->items[0].len] = ' ';
            memcpy(mg[i] + m->items[0].len + 1, m->items[1].str, m->items[1].len + 1);
        }
    }
    gw_str(w, "tokenizer.ggml.model", "gpt2");
    if (pre) gw_str(w, "tokenizer.ggml.pre", pre);
    gw_str_arr(w, "tokenizer.ggml.tokens", tok, tl, nv);
    gw_i32_arr(w, "tokenizer.ggml.token_type", ty, nv);
    gw_str_arr(w, "tokenizer.ggml.merges", (const char *const *)mg, ml, merges->n);
    for (size_t i = 0; i < merges->n; i++) free(mg[i]);
    free(mg); free(ml); free(tok); free(tl); free(ty);
    rtr_json_free(j);
    return 0;
}

/* a matrix (rows > 0) or a vector (rows == 0) of bf16 values, stored as type */
static void put_matrix_embd(gw *w, const char *name, uint32_t type, const uint8_t *bf, int64_t rows, int64_t cols) {
    int nd = rows ? 2 : 1;
    if (!rows) rows = 1;
    uint64_t ne[2] = {(uint64_t)cols, (uint64_t)rows}, n = (uint64_t)(rows * cols);
    if (type == RTR_GGML_BF16) { gw_tensor(w, name, type, nd, ne, bf, n * 2); return; }
    void *buf = malloc(n * 4);
    for (uint64_t i = 0; i < n; i++) {
        float v = bf16(bf, i);
        if (type == RTR_GGML_F32) ((float *)buf)[i] = v;
        else ((uint16_t *)buf)[i] = rtr_f32_to_f16(v);
    }
    gw_tensor(w, name, type, nd, ne, buf, n * (type == RTR_GGML_F32 ? 4 : 2));
    free(buf);
}

static void put_norm(gw *w, const char *name, uint32_t type, const uint8_t *bf, int64_t n) {
    put_matrix_embd(w, name, type, bf, 0, n);
}

/* Writes the fixture model as a GGUF per c; returns 0 on success. */
static int write_gguf(const char *fix, const gguf_case *c, const char *path, int embed_model) {
    stf s;
    char p[1024];
    snprintf(p, sizeof p, "%s/model.safetensors", fpath(fix));
    if (stf_open(&s, p)) return -1;
    gw *w = gw_new();
    const char *a = c->arch;
    char k[128];
#define KEY(fmt) (snprintf(k, sizeof k, fmt, a), k)
    gw_str(w, "general.architecture", a);
    gw_str(w, "general.name", embed_model ? "tiny-embed" : "tiny");
    gw_u32(w, "general.file_type", 40);
    gw_u32(w, KEY("%s.context_length"), embed_model ? 512 : 256);
    gw_u32(w, KEY("%s.embedding_length"), embed_model ? 32 : 128);
    gw_u32(w, KEY("%s.block_count"), 2);
    gw_u32(w, KEY("%s.feed_forward_length"), embed_model ? 96 : 384);
    gw_u32(w, KEY("%s.rope.dimension_count"), embed_model ? 16 : 32);
    gw_f32(w, KEY("%s.rope.freq_base"), embed_model ? 1e6f : 500000.0f);
    gw_u32(w, KEY("%s.attention.head_count"), 4);
    gw_u32(w, KEY("%s.attention.head_count_kv"), embed_model ? 2 : 1);
    gw_f32(w, KEY("%s.attention.layer_norm_rms_epsilon"), embed_model ? 1e-6f : 1e-5f);
    if (embed_model) {
        gw_u32(w, KEY("%s.attention.key_length"), 16);
        gw_u32(w, KEY("%s.attention.value_length"), 16);
        gw_u32(w, KEY("%s.pooling_type"), 3);
    }
#undef KEY
    snprintf(p, sizeof p, "%s/%s", fpath(fix), embed_model ? "tokenizer.json.gz" : "tokenizer.json");
    if (tok_arrays(p, w, embed_model ? "qwen2" : NULL)) { gw_free(w); stf_close(&s); return -1; }
    if (embed_model) {
        gw_u32(w, "tokenizer.ggml.eos_token_id", 151643);
        gw_u32(w, "tokenizer.ggml.padding_token_id", 151643);
        gw_bool(w, "tokenizer.ggml.add_eos_token", 1);
        gw_bool(w, "tokenizer.ggml.add_bos_token", 0);
    } else {
        gw_u32(w, "tokenizer.ggml.bos_token_id", 128000);
        gw_u32(w, "tokenizer.ggml.eos_token_id", 128001);
        gw_bool(w, "tokenizer.ggml.add_bos_token", 1);
        /* the placeholder convert-ms-to-gguf-bitnet.py writes */
        gw_str(w, "tokenizer.chat_template",
               "{% for message in messages %}{% if loop.first %}{{ bos_token }}{% endif %}{% if message['role'] == 'user' %}"
               "{{ 'Human: ' + message['content'] + '\\n\\nBITNETAssistant: ' + eos_token }}{% elif message['role'] == "
               "'assistant' %}{{ message['content'] + eos_token }}{% endif %}{% endfor %}");
    }
    const char *dt;
    int64_t sh[2];
    size_t bytes;
    const uint8_t *e = stf_get(&s, "model.embed_tokens.weight", &dt, sh, &bytes);
    put_matrix_embd(w, "token_embd.weight", c->embd_type, e, sh[0], sh[1]);
    e = stf_get(&s, "model.norm.weight", &dt, sh, &bytes);
    put_norm(w, "output_norm.weight", c->norm_type, e, sh[0]);
    for (int l = 0; l < 2; l++) {
        const norm_name *nn = embed_model ? norms_embed : norms_2b4t;
        for (int j = 0; j < 4; j++) {
            snprintf(p, sizeof p, "model.layers.%d.%s.weight", l, nn[j].hf);
            e = stf_get(&s, p, &dt, sh, &bytes);
            snprintf(p, sizeof p, "blk.%d.%s.weight", l, nn[j].gguf);
            put_norm(w, p, c->norm_type, e, sh[0]);
        }
        for (int j = 0; j < 7; j++) {
            int64_t N, K;
            float sc;
            snprintf(p, sizeof p, "model.layers.%d.%s.weight", l, lin_hf[j]);
            int8_t *v = ref_unpack(&s, p, &N, &K, &sc);
            uint64_t n = (uint64_t)(N * K), ne[2] = {(uint64_t)K, (uint64_t)N};
            uint8_t *q = malloc(n + 64);
            size_t qb = c->lin_type == RTR_GGML_I2_S ? gw_i2s(v, n, sc, q)
                      : c->lin_type == RTR_GGML_TQ2_0 ? gw_tq2(v, n, sc, q) : gw_tq1(v, n, sc, q);
            snprintf(p, sizeof p, "blk.%d.%s.weight", l, lin_gguf[j]);
            gw_tensor(w, p, c->lin_type, 2, ne, q, qb);
            if (embed_model) {
                snprintf(p, sizeof p, "model.layers.%d.%s.rms_norm.weight", l, lin_hf[j]);
                e = stf_get(&s, p, &dt, sh, &bytes);
                snprintf(p, sizeof p, "blk.%d.%s_norm_in.weight", l, lin_gguf[j]);
                put_norm(w, p, c->norm_type, e, sh[0]);
            }
            free(v);
            free(q);
        }
    }
    int r = gw_write(w, path, c->version);
    gw_free(w);
    stf_close(&s);
    return r;
}

/* tok_embd of b holds a's bf16 values in b's type */
static void same_embedding(const char *a, const char *b, const char *what) {
    rtr_file fa, fb;
    rtr_err e;
    if (rtr_file_open(&fa, a, &e) || rtr_file_open(&fb, b, &e)) { CHECK(0, "%s: %s", what, e.msg); return; }
    const rtr_tensor *x = rtr_file_tensor(&fa, "tok_embd"), *y = rtr_file_tensor(&fb, "tok_embd");
    int bad = !x || !y || x->type != RTR_T_BF16 || x->shape[0] != y->shape[0] || x->shape[1] != y->shape[1];
    uint64_t n = bad ? 0 : x->shape[0] * x->shape[1];
    for (uint64_t i = 0; i < n; i++) {
        float v = bf16(x->data, i);
        const uint8_t *q = y->data;
        if (y->type == RTR_T_F32) bad += ((const float *)q)[i] != v;
        else if (y->type == RTR_T_F16) bad += ((const uint16_t *)q)[i] != rtr_f32_to_f16(v);
        else bad += ((const uint16_t *)q)[i] != ((const uint16_t *)x->data)[i];
    }
    CHECK(!bad, "%s: %d embedding values differ", what, bad);
    rtr_file_close(&fa);
    rtr_file_close(&fb);
}

/* The forward pass on a converted file against the fixture's last-position logits of len7. */
static void gguf_parity(const char *model, const char *what) {
    static const int32_t ids[7] = {128000, 791, 4062, 14198, 39935, 35308, 927};
    rtr_model *m;
    rtr_err e = {0};
    rtr_model_opts mo = {"cpu", -1, 2, 0, NULL};
    if (rtr_model_open(&m, model, &mo, &e)) { CHECK(0, "%s: open: %s", what, e.msg); return; }
    rtr_session *s;
    rtr_session_opts so = {64, 4, 64, NULL, 0};
    float *ref = malloc(128256 * 4);
    char p[600];
    snprintf(p, sizeof p, "%s", fpath("tiny-bitnet/logits_last_len7.f32.bin"));
    FILE *f = fopen(p, "rb");
    int ok = ref && f && fread(ref, 4, 128256, f) == 128256;
    if (f) fclose(f);
    CHECK(ok, "read %s", p);
    if (ok && !rtr_session_new(&s, m, &so, &e)) {
        CHECK(!rtr_eval(s, ids, 7, &e), "%s: eval: %s", what, e.msg);
        const float *lg = rtr_logits(s);
        float d = 0;
        for (int i = 0; i < 128256; i++) if (fabsf(lg[i] - ref[i]) > d) d = fabsf(lg[i] - ref[i]);
        CHECK(d <= 1e-3f, "%s: len7 logits differ from the reference by %.3e", what, d);
        rtr_session_free(s);
    }
    free(ref);
    rtr_model_close(m);
}

static void test_gguf(void) {
    static const gguf_case cases[] = {
        {"i2s-f16", "bitnet-b1.58", 3, RTR_GGML_I2_S, RTR_GGML_F16, RTR_GGML_F32},
        {"tq1-f32", "bitnet-25", 2, RTR_GGML_TQ1_0, RTR_GGML_F32, RTR_GGML_F32},
        {"tq2-bf16", "bitnet", 3, RTR_GGML_TQ2_0, RTR_GGML_BF16, RTR_GGML_F16},
    };
    rtr_err e;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char g[600], out[600];
        snprintf(g, sizeof g, "%s/%s.gguf", tmpdir, cases[i].name);
        snprintf(out, sizeof out, "%s/%s.rotor", tmpdir, cases[i].name);
        if (write_gguf("tiny-bitnet", &cases[i], g, 0)) { CHECK(0, "write %s", g); continue; }
        unlink(out);
        int r = rtr_convert_gguf(g, out, NULL, NULL, &e);
        CHECK(!r, "convert %s: %s", g, e.msg);
        if (r) continue;
        /* everything but the embedding equals the HF conversion: codes, scales, norms, tokenizer */
        same_tensors(tpath("hf.rotor"), out, "tok_embd", cases[i].name);
        same_embedding(tpath("hf.rotor"), out, cases[i].name);
        /* a bf16 embedding is the fixture's own: the whole forward pass must match */
        if (cases[i].embd_type == RTR_GGML_BF16) gguf_parity(out, cases[i].name);
        rtr_file f;
        if (!rtr_file_open(&f, out, &e)) {
            CHECK(meta_str_is(&f, "general.arch", "bitnet") && meta_is(&f, "tokenizer.eot", 128009) &&
                  meta_is(&f, "tokenizer.bos", 128000) && meta_is(&f, "tokenizer.eos", 128001) &&
                  meta_is(&f, "tokenizer.add_bos", 1) && meta_str_is(&f, "model.act", "relu2") &&
                  meta_is(&f, "model.max_ctx", 256) && meta_is(&f, "model.head_dim", 32),
                  "%s: metadata", cases[i].name);
            CHECK(meta_str_is(&f, "chat.template", rtr_cv_template_2b4t), "%s: placeholder template replaced", cases[i].name);
            CHECK(meta_str_is(&f, "tokenizer.pre", "llama3"), "%s: missing pre -> llama3", cases[i].name);
            rtr_file_close(&f);
        }
    }
    /* --head f16 gives the same embedding bytes from HF bf16 and GGUF f16 */
    rtr_convert_opts o = {0};
    o.head = RTR_HEAD_F16;
    unlink(tpath("hf-f16.rotor"));
    unlink(tpath("gg-f16.rotor"));
    CHECK(!rtr_convert_hf(fpath("tiny-bitnet"), tpath("hf-f16.rotor"), &o, NULL, &e), "hf --head f16: %s", e.msg);
    CHECK(!rtr_convert_gguf(tpath("i2s-f16.gguf"), tpath("gg-f16.rotor"), &o, NULL, &e), "gguf --head f16: %s", e.msg);
    same_tensors(tpath("hf-f16.rotor"), tpath("gg-f16.rotor"), NULL, "--head f16, HF vs GGUF");

    /* the embedding model as a qwen3 GGUF (I2_S, F16 norms and embedding) */
    gguf_case ec = {"embed", "qwen3", 3, RTR_GGML_I2_S, RTR_GGML_BF16, RTR_GGML_F16};
    if (write_gguf("tiny-bitnet-embed", &ec, tpath("embed.gguf"), 1)) { CHECK(0, "write embed.gguf"); return; }
    unlink(tpath("gg-embed.rotor"));
    int r = rtr_convert_gguf(tpath("embed.gguf"), tpath("gg-embed.rotor"), NULL, NULL, &e);
    CHECK(!r, "convert embed.gguf: %s", e.msg);
    if (!r) {
        same_tensors(tpath("hf-embed.rotor"), tpath("gg-embed.rotor"), NULL, "embed GGUF vs HF");
        rtr_file f;
        if (!rtr_file_open(&f, tpath("gg-embed.rotor"), &e)) {
            CHECK(meta_str_is(&f, "general.arch", "bitnet-qwen3") && meta_is(&f, "model.head_dim", 16) &&
                  meta_str_is(&f, "model.pooling", "last") && meta_is(&f, "tokenizer.add_eos", 1) &&
                  meta_is(&f, "tokenizer.eos", 151643) && meta_is(&f, "tokenizer.add_bos", 0),
                  "embed GGUF metadata");
            rtr_file_close(&f);
        }
    }
}

/* ---- 4. --head q8 against the definition: per-row absmax/127 scale, half-to-even rounding ---- */
static void test_head_q8(void) {
    rtr_err e;
    if (convert_hf(fpath("tiny-bitnet"), tpath("q8.rotor"), RTR_HEAD_Q8, &e)) { CHECK(0, "q8: %s", e.msg); return; }
    rtr_file a, b;
    if (rtr_file_open(&a, tpath("hf.rotor"), &e) || rtr_file_open(&b, tpath("q8.rotor"), &e)) { CHECK(0, "open"); return; }
    const rtr_tensor *x = rtr_file_tensor(&a, "tok_embd"), *y = rtr_file_tensor(&b, "tok_embd");
    CHECK(y && y->type == RTR_T_Q8R, "q8 tok_embd type");
    CHECK(!rtr_file_verify(&b, NULL, NULL, &e), "q8 verify: %s", e.msg);
    if (x && y && y->type == RTR_T_Q8R) {
        uint64_t R = x->shape[0], K = x->shape[1], rb = rtr_q8r_row_bytes(K);
        const int8_t *q = y->data;
        const float *sc = (const float *)((const uint8_t *)y->data + R * rb);
        int bad = 0;
        for (uint64_t r = 0; r < R; r++) {
            float amax = 0;
            for (uint64_t k = 0; k < K; k++) amax = fmaxf(amax, fabsf(bf16(x->data, r * K + k)));
            float s = amax / 127.0f;
            bad += sc[r] != s;
            for (uint64_t k = 0; k < K; k++) bad += q[r * rb + k] != (int8_t)nearbyintf(bf16(x->data, r * K + k) / s);
            for (uint64_t k = K; k < rb; k++) bad += q[r * rb + k] != 0;
        }
        CHECK(!bad, "q8 head: %d values differ from absmax/127 rounding", bad);
    }
    rtr_file_close(&a);
    rtr_file_close(&b);
}

/* ---- 5. synthetic ---- */
static void test_synthetic(void) {
    rtr_convert_opts o = {0};
    rtr_convert_stats st;
    rtr_err e;
    char tok[600];
    snprintf(tok, sizeof tok, "%s", fpath("tiny-bitnet/tokenizer.json"));
    o.tokenizer = tok;
    o.seed = 7;
    unlink(tpath("syn1.rotor"));
    unlink(tpath("syn2.rotor"));
    unlink(tpath("syn3.rotor"));
    CHECK(!rtr_convert_synthetic("tiny", tpath("syn1.rotor"), &o, &st, &e), "synthetic tiny: %s", e.msg);
    CHECK(st.ternary_weights == 2ull * (128 * 128 * 2 + 32 * 128 * 2 + 384 * 128 * 3), "ternary weights %llu",
          (unsigned long long)st.ternary_weights);
    CHECK(!rtr_convert_synthetic("tiny", tpath("syn2.rotor"), &o, NULL, &e), "synthetic again: %s", e.msg);
    same_tensors(tpath("syn1.rotor"), tpath("syn2.rotor"), NULL, "synthetic is deterministic");
    o.seed = 8;
    CHECK(!rtr_convert_synthetic("tiny", tpath("syn3.rotor"), &o, NULL, &e), "synthetic seed 8: %s", e.msg);
    rtr_file a, b;
    if (!rtr_file_open(&a, tpath("syn1.rotor"), &e) && !rtr_file_open(&b, tpath("syn3.rotor"), &e)) {
        CHECK(!rtr_file_verify(&a, NULL, NULL, &e), "synthetic verify: %s", e.msg);
        const rtr_tensor *x = rtr_file_tensor(&a, "blk.0.ffn_up"), *y = rtr_file_tensor(&b, "blk.0.ffn_up");
        CHECK(x && y && memcmp(x->data, y->data, x->size), "another seed, other weights");
        /* about a third zeros, alpha in [0.5, 1) */
        uint64_t zeros = 0, n = x ? x->shape[0] * x->shape[1] : 0;
        for (uint64_t r = 0; x && r < x->shape[0]; r++)
            for (uint64_t k = 0; k < x->shape[1]; k++) zeros += !rtr_t2_get((const uint8_t *)x->data + r * rtr_t2_row_bytes(x->shape[1]), k);
        CHECK(n && zeros > n / 4 && zeros < n / 2.4, "zeros %llu of %llu", (unsigned long long)zeros, (unsigned long long)n);
        CHECK(x && x->scale >= 0.5f && x->scale < 1.0f, "alpha %g", x ? x->scale : 0);
        const rtr_tensor *te = rtr_file_tensor(&a, "tok_embd");
        double s = 0, s2 = 0;
        uint64_t ne = te ? te->shape[0] * te->shape[1] : 0;
        for (uint64_t i = 0; i < ne; i++) {
            double v = rtr_f16_to_f32(((const uint16_t *)te->data)[i]);
            s += v;
            s2 += v * v;
        }
        CHECK(te && te->type == RTR_T_F16 && fabs(s / ne) < 0.01 && fabs(s2 / ne - 1) < 0.02, "embedding mean %g var %g",
              s / ne, s2 / ne);
        rtr_file_close(&a);
        rtr_file_close(&b);
    }
    o.seed = 1;
    CHECK(rtr_convert_synthetic("no-such-shape", tpath("syn4.rotor"), &o, NULL, &e) && strstr(e.msg, "no-such-shape"),
          "unknown shape: %s", e.msg);
    /* a shape given as a config.json */
    rtr_convert_opts o2 = o;
    unlink(tpath("syn5.rotor"));
    char cfg[600];
    snprintf(cfg, sizeof cfg, "%s", fpath("tiny-bitnet/config.json"));
    CHECK(!rtr_convert_synthetic(cfg, tpath("syn5.rotor"), &o2, NULL, &e), "synthetic from config.json: %s", e.msg);
}

/* ---- 6. bad input ---- */
static void expect_fail(int r, const rtr_err *e, const char *out, const char *want, const char *what) {
    CHECK(r != 0 && strstr(e->msg, want), "%s: want an error with \"%s\", got %d \"%s\"", what, want, r, r ? e->msg : "");
    CHECK(!strchr(e->msg, '\n'), "%s: one line", what);
    CHECK(access(out, F_OK) != 0, "%s: no output file", what);
    CHECK(leftovers() == 0, "%s: no temporary file left", what);
}

static void bad_hf(const char *what, const char *want, stw *t, int n, const char *config) {
    char dir[512], p[1024];
    snprintf(dir, sizeof dir, "%s/bad-hf", tmpdir);
    make_folder(dir, fpath("tiny-bitnet"));
    if (config) { snprintf(p, sizeof p, "%s/config.json", dir); unlink(p); spit(p, config, strlen(config)); }
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    unlink(p);
    if (t) stw_write(p, t, n);
    else if (symlink(fpath("tiny-bitnet/model.safetensors"), p)) perror("symlink");
    rtr_err e;
    int r = convert_hf(dir, tpath("bad.rotor"), 0, &e);
    expect_fail(r, &e, tpath("bad.rotor"), want, what);
}

static void test_bad_hf(void) {
    rtr_err e;
    mkdir(tpath("empty"), 0755);
    expect_fail(convert_hf(tpath("empty"), tpath("bad.rotor"), 0, &e), &e, tpath("bad.rotor"), "no config.json", "no config.json");
    bad_hf("unknown architecture", "unknown architecture llama", NULL, 0,
           "{\"model_type\":\"llama\",\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":128}");
    bad_hf("config not JSON", "config.json", NULL, 0, "{\"model_type\": bitnet");
    stf s;
    if (stf_open(&s, fpath("tiny-bitnet/model.safetensors"))) { CHECK(0, "open fixture"); return; }
    stw t[64];
    int n = stw_from(&s, t, 64);
    int m = stw_drop(t, n, "model.layers.1.mlp.ffn_sub_norm.weight");
    bad_hf("missing tensor", "missing tensor model.layers.1.mlp.ffn_sub_norm.weight", t, m, NULL);
    n = stw_from(&s, t, 64);
    t[n] = t[0];
    snprintf(t[n].name, sizeof t[n].name, "model.layers.0.mlp.extra.weight");
    bad_hf("extra tensor", "unexpected tensor model.layers.0.mlp.extra.weight", t, n + 1, NULL);
    n = stw_from(&s, t, 64);
    for (int i = 0; i < n; i++)
        if (!strcmp(t[i].name, "model.layers.0.mlp.ffn_sub_norm.weight")) { t[i].shape[0] = 383; t[i].size -= 2; }
    bad_hf("shape mismatch", "model.layers.0.mlp.ffn_sub_norm.weight: shape [383]", t, n, NULL);
    n = stw_from(&s, t, 64);
    uint8_t *bad = NULL;
    for (int i = 0; i < n; i++)
        if (!strcmp(t[i].name, "model.layers.1.self_attn.o_proj.weight")) {
            bad = malloc(t[i].size);
            memcpy(bad, t[i].data, t[i].size);
            bad[100] = 0xff;
            t[i].data = bad;
        }
    bad_hf("packed value 3", "model.safetensors: tensor model.layers.1.self_attn.o_proj.weight: invalid packed value 3", t, n, NULL);
    free(bad);
    n = stw_from(&s, t, 64);
    for (int i = 0; i < n; i++)
        if (!strcmp(t[i].name, "model.layers.0.self_attn.q_proj.weight")) snprintf(t[i].dtype, sizeof t[i].dtype, "I32"), t[i].shape[1] /= 4;
    bad_hf("wrong dtype", "q_proj.weight", t, n, NULL);

    /* truncated and corrupt files */
    char dir[512], p[1024];
    snprintf(dir, sizeof dir, "%s/bad-hf", tmpdir);
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    unlink(p);
    spit(p, s.buf, s.len - 1000);
    expect_fail(convert_hf(dir, tpath("bad.rotor"), 0, &e), &e, tpath("bad.rotor"), "truncated", "truncated safetensors");
    uint8_t *c = malloc(s.len);
    memcpy(c, s.buf, s.len);
    memcpy(c + 8, "{\"a\":[}", 7);
    unlink(p);
    spit(p, c, s.len);
    expect_fail(convert_hf(dir, tpath("bad.rotor"), 0, &e), &e, tpath("bad.rotor"), "corrupt header", "corrupt header");
    uint64_t huge = 1ull << 62;
    memcpy(c, &huge, 8);
    unlink(p);
    spit(p, c, s.len);
    expect_fail(convert_hf(dir, tpath("bad.rotor"), 0, &e), &e, tpath("bad.rotor"), "header length", "huge header length");
    unlink(p);
    spit(p, c, 5);
    expect_fail(convert_hf(dir, tpath("bad.rotor"), 0, &e), &e, tpath("bad.rotor"), "too short", "5-byte safetensors");
    free(c);
    unlink(p);
    expect_fail(convert_hf(dir, tpath("bad.rotor"), 0, &e), &e, tpath("bad.rotor"), "no model.safetensors", "no weights");
    stf_close(&s);
}

static void test_bad_gguf(void) {
    rtr_err e;
    size_t len;
    uint8_t *g = slurp(tpath("i2s-f16.gguf"), &len);
    if (!g) { CHECK(0, "read i2s-f16.gguf"); return; }
    const char *bp = tpath("bad.gguf"), *out = tpath("bad.rotor");
    struct { size_t cut; const char *want; } cuts[] = {{10, "not a GGUF"}, {30, "truncated or corrupt GGUF header"},
                                                      {2000000, "truncated or corrupt GGUF header"}, {0, "past the end"}};
    cuts[3].cut = len - 1000;
    for (int i = 0; i < 4; i++) {
        unlink(bp);
        spit(bp, g, cuts[i].cut);
        expect_fail(rtr_convert_gguf(bp, out, NULL, NULL, &e), &e, out, cuts[i].want, "truncated GGUF");
    }
    /* a huge length in the first key's string */
    uint8_t *c = malloc(len);
    memcpy(c, g, len);
    uint64_t huge = 0x7fffffffffffff00ull;
    memcpy(c + 24, &huge, 8);
    unlink(bp);
    spit(bp, c, len);
    expect_fail(rtr_convert_gguf(bp, out, NULL, NULL, &e), &e, out, "string length", "huge string length");
    /* huge counts */
    memcpy(c, g, len);
    memcpy(c + 16, &huge, 8);
    unlink(bp);
    spit(bp, c, len);
    expect_fail(rtr_convert_gguf(bp, out, NULL, NULL, &e), &e, out, "cannot fit", "huge key count");
    memcpy(c, g, len);
    uint32_t v1 = 1;
    memcpy(c + 4, &v1, 4);
    unlink(bp);
    spit(bp, c, len);
    expect_fail(rtr_convert_gguf(bp, out, NULL, NULL, &e), &e, out, "version 1", "GGUF v1");
    free(c);
    free(g);

    /* unknown tensor type, inconsistent TQ scales, unknown architecture */
    gw *w = gw_new();
    gw_str(w, "general.architecture", "bitnet");
    uint64_t ne[1] = {4};
    float z[4] = {0};
    gw_tensor(w, "token_embd.weight", 99, 1, ne, z, 16);
    gw_write(w, bp, 3);
    gw_free(w);
    expect_fail(rtr_convert_gguf(bp, out, NULL, NULL, &e), &e, out, "unknown type id 99", "unknown type id");
    w = gw_new();
    gw_str(w, "general.architecture", "llama");
    gw_tensor(w, "token_embd.weight", 0, 1, ne, z, 16);
    gw_write(w, bp, 3);
    gw_free(w);
    expect_fail(rtr_convert_gguf(bp, out, NULL, NULL, &e), &e, out, "unknown architecture llama", "unknown GGUF arch");

    g = slurp(tpath("tq2-bf16.gguf"), &len);
    rtr_gguf gg;
    if (g && !rtr_gguf_open(&gg, tpath("tq2-bf16.gguf"), &e)) {
        rtr_gguf_tensor *t = rtr_gguf_tensor_find(&gg, "blk.1.ffn_up.weight");
        size_t off = (size_t)(t->data - gg.map) + 66 * 3 + 64; /* d of block 3 */
        rtr_gguf_close(&gg);
        uint16_t d;
        memcpy(&d, g + off, 2);
        d ^= 1;
        memcpy(g + off, &d, 2);
        unlink(bp);
        spit(bp, g, len);
        expect_fail(rtr_convert_gguf(bp, out, NULL, NULL, &e), &e, out, "blk.1.ffn_up.weight: block 3 has scale", "TQ2_0 scales differ");
    } else {
        CHECK(0, "open tq2-bf16.gguf");
    }
    free(g);
}

/* recomputes the header checksum after an edit of the directory */
static void fix_header(uint8_t *m) {
    uint64_t moff, msize, doff;
    uint32_t nt;
    memcpy(&moff, m + 24, 8);
    memcpy(&msize, m + 32, 8);
    memcpy(&doff, m + 40, 8);
    memcpy(&nt, m + 48, 4);
    size_t n = 56 + msize + (size_t)nt * RTR_DIR_ENTRY_BYTES;
    uint8_t *b = malloc(n);
    memcpy(b, m, 56);
    memcpy(b + 56, m + moff, msize);
    memcpy(b + 56 + msize, m + doff, (size_t)nt * RTR_DIR_ENTRY_BYTES);
    uint64_t h = rtr_hash64(b, n, 0);
    memcpy(m + 56, &h, 8);
    free(b);
}

static void test_bad_rotor(void) {
    size_t len;
    uint8_t *m = slurp(tpath("hf.rotor"), &len);
    rtr_file f;
    rtr_err e;
    if (!m || rtr_file_open(&f, tpath("hf.rotor"), &e)) { CHECK(0, "read hf.rotor"); free(m); return; }
    const rtr_tensor *t = rtr_file_tensor(&f, "blk.0.attn_q");
    uint64_t off = t->offset, size = t->size;
    uint32_t idx = (uint32_t)(t - f.tensors);
    uint64_t doff;
    memcpy(&doff, m + 40, 8);
    rtr_file_close(&f);
    const char *bp = tpath("bad-file.rotor");
    uint8_t *c = malloc(len);

    memcpy(c, m, len);
    c[off + 5] ^= 0x01;
    spit(bp, c, len);
    CHECK(!rtr_file_open(&f, bp, &e), "flipped byte still opens");
    CHECK(rtr_file_verify(&f, NULL, NULL, &e) && strstr(e.msg, "checksum"), "flipped byte: %s", e.msg);
    rtr_file_close(&f);

    spit(bp, m, len - 4096);
    CHECK(rtr_file_open(&f, bp, &e) && strstr(e.msg, "truncated"), "truncated .rotor: %s", e.msg);

    /* an 11 code, with the tensor checksum and the header fixed so only the code check can see it */
    memcpy(c, m, len);
    c[off + 7] |= 0x03;
    uint64_t h = rtr_hash64(c + off, size, 0);
    memcpy(c + doff + (uint64_t)idx * RTR_DIR_ENTRY_BYTES + 112, &h, 8);
    fix_header(c);
    spit(bp, c, len);
    CHECK(!rtr_file_open(&f, bp, &e), "11 code: opens: %s", e.msg);
    CHECK(rtr_file_verify(&f, NULL, NULL, &e) && strstr(e.msg, "code 11"), "11 code: %s", e.msg);
    rtr_file_close(&f);

    /* offsets: past the end, misaligned */
    uint64_t bad_offs[2] = {len, off + 8};
    for (int i = 0; i < 2; i++) {
        memcpy(c, m, len);
        memcpy(c + doff + (uint64_t)idx * RTR_DIR_ENTRY_BYTES + 96, &bad_offs[i], 8);
        fix_header(c);
        spit(bp, c, len);
        CHECK(rtr_file_open(&f, bp, &e) && strstr(e.msg, "out of bounds"), "bad offset %d: %s", i, e.msg);
    }
    memcpy(c, m, len);
    c[doff + 3] ^= 0x20; /* directory edited without fixing the header checksum */
    spit(bp, c, len);
    CHECK(rtr_file_open(&f, bp, &e) && strstr(e.msg, "header checksum"), "directory edit: %s", e.msg);
    free(c);
    free(m);
}

static void rm_rf(const char *dir) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", dir);
}

int main(void) {
    if (!realpath(test_fixtures(), fixdir)) snprintf(fixdir, sizeof fixdir, "%s", test_fixtures());
    if (access(fpath("tiny-bitnet/model.safetensors"), R_OK)) {
        SKIP("fixtures not found at %s", fixdir);
        return test_done("test_convert");
    }
    /* memory-backed scratch when there is one: the writer fsyncs every file */
    const char *td = getenv("TMPDIR") ? getenv("TMPDIR") : access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(tmpdir, sizeof tmpdir, "%s/rotor-convert-XXXXXX", td);
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    test_hf();
    test_master("tiny-bitnet", tpath("hf.rotor"), "tiny");
    test_master("tiny-bitnet-embed", tpath("hf-embed.rotor"), "embed");
    test_gguf();
    test_head_q8();
    test_synthetic();
    test_bad_hf();
    test_bad_gguf();
    test_bad_rotor();
    rm_rf(tmpdir);
    return test_done("test_convert");
}
