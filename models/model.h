/* model.h: what an open model and a session hold (internal to the engine).
 * rtr_model owns the mapped file, the tokenizer, the backend and the weight buffers; the graph
 * (graph.c) reads these to build the forward pass of every architecture it knows. */
#ifndef ROTOR_MODEL_H
#define ROTOR_MODEL_H

#include "../rotor.h"
#include "../backends/backend.h"
#include "format.h"
#include "tokenizer.h"

/* projections of a layer, in the order the graph runs them */
enum { P_Q, P_K, P_V, P_O, P_GATE, P_UP, P_DOWN, P_COUNT };

typedef struct {
    rtr_buf *attn_norm, *ffn_norm;
    rtr_buf *attn_sub_norm, *ffn_sub_norm; /* 2B4T SubLN (NULL otherwise) */
    rtr_buf *q_norm, *k_norm;              /* QK-norm (NULL otherwise) */
    rtr_buf *w[P_COUNT];                   /* ternary projections */
    float alpha[P_COUNT];
    rtr_buf *in_norm[P_COUNT];             /* per-projection input norms (embedding models) */
} rtr_layer;

typedef struct {
    int n_vocab, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, max_ctx;
    float rope_theta, norm_eps, embd_scale;
    int act, sub_norms, in_norms, qk_norm, pooling_last;
    int bos, eos, eot, add_bos, add_eos;
} rtr_hparams;

struct rtr_model {
    rtr_file f;
    rtr_tokenizer *tok;
    rtr_backend *be;
    rtr_hparams hp;
    char arch[32];
    char note[256];
    const char *chat_template; /* NUL-terminated copy */
    rtr_buf *tok_embd, *output, *output_norm;
    int embd_type, output_type;
    rtr_layer *layers;
    uint64_t bytes_per_token;
};

struct rtr_session {
    rtr_model *m;
    int n_ctx, n_sink, n_batch, cap, slack, kv_type;
    int pos;
    int ahead;                    /* 1: position pos - 1 holds a token evaluated ahead (rtr_eval_argmax_ahead) */
    int32_t ahead_id;             /* that token */
    int copy;                     /* the device copy (0: tok, spos; 1: tok2, spos2) the next batch ahead uses */
    const volatile int *cancel;
    int32_t *slot_pos;            /* host mirror of the ring's positions [cap] */
    int dirty_lo[2], dirty_hi[2]; /* slot_pos[lo..hi) changed since device copy 0 / 1 was written */
    int32_t *h_tok;               /* host staging [3 n_batch]: a batch of n is ids, positions, slots */
    int32_t *h_ids, *h_pos, *h_slot;  /* the current batch's three runs of h_tok */
    float *logits;                /* [n_vocab], zeros: what view shows before the first batch */
    const float *view;            /* the last batch's logits (or pooled row): the backend's view of out */
    rtr_buf *kc, *vc;             /* [n_layer][cap][kv_dim] f16 */
    rtr_buf *spos, *tok;          /* slot positions [cap]; a batch's h_tok, written at once */
    rtr_buf *spos2, *tok2;        /* a second copy of both for batches run ahead (one token), so that
                                   * the host writes one while the device reads the other; NULL
                                   * where the backend cannot run ahead */
    rtr_buf *x, *xn, *q, *k, *v, *att, *g, *u, *qa, *qs, *out, *top; /* top: rtr_eval_argmax's id */
    size_t bytes;
};

#endif
