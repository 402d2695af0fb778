/* rotor.h: the public interface of the rotor engine for ternary (1.58-bit) language models.
 *
 * A model (rtr_model) is a memory-mapped .rotor file plus the backend that runs it; it never
 * changes after rtr_model_open. A session (rtr_session) is one timeline on a model: the KV ring,
 * scratch activations, logits and position. Many sessions may share one model.
 *
 * Ownership: whoever calls *_open / *_new calls *_close / *_free. Pointers returned by rtr_*
 * are borrowed and live as long as the object they came from.
 * Errors: functions return 0 (or a count) on success and a negative RTR_E* code on failure, with
 * a one-line message in the caller's rtr_err. Library code never prints and never exits.
 *
 *   rtr_model *m; rtr_session *s; rtr_err e;
 *   rtr_model_open(&m, "model.rotor", NULL, &e);
 *   rtr_session_new(&s, m, NULL, &e);
 *   int ids[64]; int n = rtr_tokenize(m, "Hello", 5, RTR_TOK_BOS, ids, 64);
 *   rtr_eval(s, ids, n, &e);               // logits of the last token: rtr_logits(s)
 */
#ifndef ROTOR_H
#define ROTOR_H

#include <stddef.h>
#include <stdint.h>

#define RTR_VERSION "0.1.0"

enum {
    RTR_OK = 0,
    RTR_EIO = -1,      /* a file could not be read or written */
    RTR_EFORMAT = -2,  /* a file is not what it claims to be, or is damaged */
    RTR_ENOMEM = -3,   /* out of memory (host or device) */
    RTR_EBACKEND = -4, /* a backend failed or is missing */
    RTR_EARG = -5,     /* a caller passed something impossible */
    RTR_EINTR = -6,    /* interrupted by the caller's cancel flag */
    RTR_ENOSPC = -7,   /* no space left on a device */
};

typedef struct {
    int code;
    char msg[256];
} rtr_err;

/* Fills err (if not NULL) and returns code. printf-style. */
int rtr_seterr(rtr_err *err, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

typedef struct rtr_model rtr_model;
typedef struct rtr_session rtr_session;

typedef struct {
    const char *backend; /* "auto" (NULL), "cpu", "vulkan", "opencl" */
    int device;          /* device index for GPU backends; -1: the first suitable one */
    int n_threads;       /* CPU threads; 0: one per physical core */
    int verbose;         /* backends may add detail to error messages */
    const char *kernel;  /* CPU kernel set ("scalar", "avx2", ...); NULL: best for this CPU */
} rtr_model_opts;

/* Opens a .rotor file. With backend "auto", a GPU that fails to start falls back to the CPU and
 * the reason is left in rtr_model_note(). */
int rtr_model_open(rtr_model **out, const char *path, const rtr_model_opts *opts, rtr_err *err);
void rtr_model_close(rtr_model *m);
const char *rtr_model_note(const rtr_model *m);    /* fallback notice, "" if none */
const char *rtr_model_backend(const rtr_model *m); /* name of the backend in use */
const char *rtr_model_device(const rtr_model *m);  /* the device it runs on, in words */
const char *rtr_model_arch(const rtr_model *m);
const char *rtr_model_chat_template(const rtr_model *m); /* "" if the file has none */

typedef struct {
    int n_vocab, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, max_ctx;
    int bos, eos, eot;   /* -1 where the model has none */
    int is_embedding;    /* pooled sentence embeddings instead of logits */
    uint64_t file_bytes; /* size of the .rotor file */
    uint64_t weight_bytes_per_token; /* bytes a single-token forward pass reads */
} rtr_model_info;
void rtr_model_get_info(const rtr_model *m, rtr_model_info *info);
/* The model's backend reading a buffer larger than its caches, in GB/s (what bounds one-token
 * decoding): for rotor bench's roofline on a GPU. Takes up to 512 MB of device memory while it
 * runs, less where the device cannot spare it; call it with no batch in flight. */
int rtr_model_read_bandwidth(const rtr_model *m, double *gbs, rtr_err *err);

/* ---- tokenizer ---- */
enum {
    RTR_TOK_BOS = 1,     /* prepend the model's BOS when the model asks for one */
    RTR_TOK_EOS = 2,     /* append EOS when the model asks for one (embedding models) */
    RTR_TOK_PLAIN = 4,   /* special-token strings in the text are plain text */
};
/* Returns the number of ids (which may exceed cap: then only cap are written) or < 0.
 * Text that is not valid UTF-8 is RTR_EARG. */
int rtr_tokenize(const rtr_model *m, const char *text, size_t len, int flags, int32_t *ids,
                 int cap);
/* Raw bytes of one token ("" for ids out of range). */
const char *rtr_token_bytes(const rtr_model *m, int32_t id, size_t *len);
int rtr_token_is_special(const rtr_model *m, int32_t id);

/* Streaming UTF-8-safe detokenizer: feed ids, get complete UTF-8 characters out. */
typedef struct {
    unsigned char pend[8];
    int npend;
} rtr_detok;
/* Writes up to cap bytes of text for id into out and returns the byte count. Incomplete UTF-8
 * sequences are held back until they complete; invalid ones come out as U+FFFD. */
int rtr_detok_push(rtr_detok *d, const rtr_model *m, int32_t id, char *out, size_t cap);
int rtr_detok_flush(rtr_detok *d, char *out, size_t cap);

/* ---- sessions ---- */
typedef struct {
    int n_ctx;     /* KV ring slots; 0: the model's max_ctx, capped at 4096 */
    int n_sink;    /* slots never evicted when the ring wraps (attention sinks); default 4 */
    int n_batch;   /* largest batch one eval step runs; default 512 */
    const volatile int *cancel; /* when *cancel becomes non-zero, rtr_eval returns RTR_EINTR */
    int kv_f16;    /* keep the KV cache in f16: half the memory, no longer reference-exact */
} rtr_session_opts;

int rtr_session_new(rtr_session **out, rtr_model *m, const rtr_session_opts *opts, rtr_err *err);
void rtr_session_free(rtr_session *s);
void rtr_session_reset(rtr_session *s);     /* empty the KV ring; no allocation */
int rtr_session_pos(const rtr_session *s);  /* tokens evaluated so far */
int rtr_session_ctx(const rtr_session *s);  /* n_ctx in use */
size_t rtr_session_bytes(const rtr_session *s); /* KV cache and scratch, host and device */
/* Forgets the newest n tokens (for /regen); only possible while nothing has been evicted.
 * Returns 0 or RTR_EARG. */
int rtr_session_rewind(rtr_session *s, int n);

/* Evaluates ids after what the session holds. Logits of the last id are then in rtr_logits,
 * whose pointer holds until the session's next rtr_eval or rtr_embed. */
int rtr_eval(rtr_session *s, const int32_t *ids, int n, rtr_err *err);
const float *rtr_logits(const rtr_session *s); /* [n_vocab] */
/* The same for greedy decoding: *top = the last id's largest logit's token (the first of equals,
 * as rtr_sample at temperature 0 picks it), chosen where the logits are, so that a GPU sends
 * back that id alone. rtr_logits returns NULL until the next rtr_eval. Language models only. */
int rtr_eval_argmax(rtr_session *s, const int32_t *ids, int n, int32_t *top, rtr_err *err);
/* Greedy decoding one token ahead: as rtr_eval_argmax of the one id, but before it returns, the
 * evaluation of *top is already queued on backends that can (OpenCL, Vulkan): a caller that passes the
 * returned id back next finds it under way, so the device never waits for the host between
 * tokens. Any other call on the session (or an id that is not the one returned) first drops
 * that evaluation; rtr_session_pos never counts it. Elsewhere it is rtr_eval_argmax. */
int rtr_eval_argmax_ahead(rtr_session *s, int32_t id, int32_t *top, rtr_err *err);
/* Drops the evaluation queued ahead, if any, once the device is done with it. */
int rtr_session_sync(rtr_session *s, rtr_err *err);
/* One untimed pass through what generation runs (a two-token batch, a one-token step with
 * logits, greedy steps run ahead), then an empty ring: a GPU driver's first run of each kernel
 * costs far more than the ones after it. GPU backends, language models, rings of 8 or more; else
 * a no-op (the CPU has nothing to warm but the page cache, which the prompt fills). */
int rtr_session_warmup(rtr_session *s, rtr_err *err);

/* Embedding models: evaluates ids from an empty session and writes the pooled, L2-normalised
 * vector (n_embd floats). */
int rtr_embed(rtr_session *s, const int32_t *ids, int n, float *out, rtr_err *err);

/* ---- sampling ---- */
typedef struct {
    float temp;           /* 0: greedy */
    int top_k;            /* 0: off */
    float top_p;          /* 1: off */
    float min_p;          /* 0: off */
    float repeat_penalty; /* 1: off */
    int repeat_last_n;    /* window of recent tokens the penalty looks at */
    uint64_t seed;
} rtr_sampler_params;
void rtr_sampler_defaults(rtr_sampler_params *p);

typedef struct rtr_sampler rtr_sampler;
int rtr_sampler_new(rtr_sampler **out, const rtr_sampler_params *p, int n_vocab);
void rtr_sampler_free(rtr_sampler *sp);
void rtr_sampler_accept(rtr_sampler *sp, int32_t id); /* remember for the repeat penalty */
void rtr_sampler_reset(rtr_sampler *sp);
int32_t rtr_sample(rtr_sampler *sp, const float *logits);
/* 1 when rtr_sample is plain greedy (temperature 0, no repeat penalty): rtr_eval_argmax's top is
 * then its choice */
int rtr_sampler_greedy(const rtr_sampler *sp);

/* ---- chat template ---- */
typedef struct {
    const char *role;    /* "system", "user", "assistant" */
    const char *content;
} rtr_chat_msg;
/* Renders messages with the model's chat format (one BOS, trimmed content, generation prompt
 * when add_gen) and tokenizes it; message content is plain text unless allow_special.
 * Returns the id count or < 0. */
int rtr_chat_tokenize(const rtr_model *m, const rtr_chat_msg *msgs, int n_msgs, int add_gen,
                      int allow_special, int32_t *ids, int cap);

/* ---- utilities shared by the tools ---- */
double rtr_now(void);                 /* monotonic seconds */
const char *rtr_strerror(int code);   /* short name of an RTR_E* code */
const char *rtr_backends_compiled(void); /* e.g. "cpu vulkan opencl" */

#endif
