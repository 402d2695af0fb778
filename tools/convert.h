/* convert.h: turning model checkpoints into .rotor files (the converter library behind
 * `rotor convert`). Three front ends read a source into one description (rtr_cv_model: hyper-
 * parameters, tokenizer, special ids) plus a tensor source (rtr_cv_source); convert.c checks
 * the description, plans the tensor list and writes the file through the rtr_writer.
 *   convert_hf.c     Hugging Face folders (config.json + safetensors + tokenizer.json)
 *   convert_gguf.c   GGUF files from bitnet.cpp / llama.cpp
 *   synthetic.c      random ternary models of a given shape (for tests and benchmarks)
 * Errors name the file and the tensor; nothing is left behind on failure. */
#ifndef ROTOR_CONVERT_H
#define ROTOR_CONVERT_H

#include "../rotor.h"
#include "../models/format.h"
#include "../models/tokenizer.h"

enum { RTR_HEAD_SOURCE = 0, RTR_HEAD_F16, RTR_HEAD_Q8 };

typedef struct {
    int head;                 /* RTR_HEAD_*: type of tok_embd (and output) */
    uint64_t seed;            /* synthetic weights */
    const char *tokenizer;    /* tokenizer.json[.gz] to use instead of the source's own */
    void (*progress)(uint64_t done, uint64_t total, void *ud); /* may be NULL */
    void *ud;
    const volatile int *cancel; /* when *cancel becomes non-zero: RTR_EINTR, nothing written */
} rtr_convert_opts;

typedef struct {
    uint32_t n_tensors;       /* in the written file, tokenizer tensors included */
    uint64_t file_bytes;
    uint64_t ternary_weights; /* weights stored as T2 */
    uint64_t ternary_bytes;   /* their bytes */
    char arch[32];
} rtr_convert_stats;

/* dir: a Hugging Face model folder. */
int rtr_convert_hf(const char *dir, const char *out, const rtr_convert_opts *o, rtr_convert_stats *st,
                   rtr_err *err);
/* path: a .gguf file. */
int rtr_convert_gguf(const char *path, const char *out, const rtr_convert_opts *o,
                     rtr_convert_stats *st, rtr_err *err);
/* shape: "bitnet-2b4t", "tiny", "bitnet-embed-0.6b" or the path of a BitNet config.json.
 * The tokenizer is o->tokenizer, else models/llama3-tokenizer.json. */
int rtr_convert_synthetic(const char *shape, const char *out, const rtr_convert_opts *o,
                          rtr_convert_stats *st, rtr_err *err);
/* 1 if name is one of the built-in synthetic shapes. */
int rtr_synthetic_shape_known(const char *name);

/* ---- shared by the front ends ---- */
typedef struct {
    char arch[32];            /* "bitnet" | "bitnet-qwen3" */
    char name[128];
    char source[512];
    char origin[512];         /* the file or folder converted, for messages */
    int n_vocab, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, max_ctx;
    double rope_theta, norm_eps, embd_scale;
    char act[16];             /* "relu2" | "silu" | "gelu_tanh" */
    char pooling[16];         /* "none" | "last" | "mean" | "cls" */
    int sub_norms, in_norms, qk_norm, tied;
    int bos, eos, eot, add_bos, add_eos;
    char *chat_template;      /* malloc'd; NULL: none */
    rtr_tok_src *tok;
} rtr_cv_model;

enum { RTR_CV_EMBD, RTR_CV_OUTPUT, RTR_CV_NORM, RTR_CV_T2 };

typedef struct {
    char name[RTR_NAME_MAX];  /* .rotor tensor name */
    int kind;                 /* RTR_CV_* */
    uint64_t rows, cols;      /* NORM: rows = 1 */
} rtr_cv_item;

/* What a front end provides. Every function returns 0 or an RTR_E* code with err filled. */
typedef struct {
    void *ctx;
    /* EMBD / OUTPUT: the float type the source holds (RTR_T_F32, F16 or BF16), and rows
     * [r0, r0+n) in that type */
    int (*mat_type)(void *ctx, const rtr_cv_item *it);
    int (*rows)(void *ctx, const rtr_cv_item *it, uint64_t r0, uint64_t n, void *dst, rtr_err *err);
    /* NORM: cols floats */
    int (*norm)(void *ctx, const rtr_cv_item *it, float *dst, rtr_err *err);
    /* T2: rows x cols values in {-1,0,+1} and the scale alpha (W = alpha * W_t) ... */
    int (*ternary)(void *ctx, const rtr_cv_item *it, int8_t *dst, float *alpha, rtr_err *err);
    /* ... or, when set, already packed T2 rows (rtr_t2_row_bytes(cols) bytes each) */
    int (*t2)(void *ctx, const rtr_cv_item *it, uint8_t *dst, float *alpha, rtr_err *err);
} rtr_cv_source;

/* Checks the hyper-parameters for consistency and sane sizes. */
int rtr_cv_check(const rtr_cv_model *m, rtr_err *err);
/* The tensor list of m in file order (malloc'd). */
int rtr_cv_plan(const rtr_cv_model *m, rtr_cv_item **items, size_t *n, rtr_err *err);
/* Writes the file: metadata, tokenizer, then the planned tensors. Fills st when not NULL. */
int rtr_cv_write(const rtr_cv_model *m, const rtr_cv_item *items, size_t n, const rtr_cv_source *src,
                 const char *out, const rtr_convert_opts *o, rtr_convert_stats *st, rtr_err *err);
void rtr_cv_model_free(rtr_cv_model *m);

/* Spec §2.1: alpha = max(mean|w|, 1e-5) in float32, w_t = clamp(rint(w * (1/alpha)), -1, 1). */
void rtr_cv_ternarize(const float *w, uint64_t n, int8_t *dst, float *alpha);
/* Reads a whole file (decompressing it when it ends in .gz) into a NUL-terminated buffer. */
int rtr_cv_read_file(const char *path, size_t max, char **out, size_t *len, rtr_err *err);
/* Parses a tokenizer.json[.gz] file into a tokenizer source. */
int rtr_cv_tok_from_file(const char *path, rtr_tok_src **out, rtr_err *err);
/* Hyper-parameters from a parsed Hugging Face config.json (file names the file for messages). */
int rtr_cv_from_config(const char *file, const rtr_json *config, rtr_cv_model *m, rtr_err *err);
/* The 2B4T chat template (spec §4), used in place of the GGUF placeholder. */
extern const char rtr_cv_template_2b4t[];

#endif
