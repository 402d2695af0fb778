/* rag_prompt.h: retrieval-augmented prompts for `rotor run` and `rotor chat --rag FILE.sqlite`.
 *
 *   rag_ctx *rc;  rag_ctx_opts o;  rag_prompt p;  rtr_err e;
 *   rag_ctx_defaults(&o); o.db_path = "notes.sqlite"; o.k = 4;
 *   if (rag_ctx_open(&rc, &o, &e)) { ...e.msg... }      // rag_ctx_note(rc): e.g. "BM25 only: ..."
 *   rag_prompt_build(rc, question, &p, &e);
 *   // chat: use p.message as the user turn, tokenized with special tokens disabled
 *   //       (rtr_chat_tokenize(..., allow_special = 0, ...)).
 *   // raw completion: tokenize p.pieces[i] in order; pieces with .is_data hold document text
 *   //       and must be tokenized with RTR_TOK_PLAIN.
 *   ... generate the answer ...
 *   char *src = rag_prompt_sources(&p, answer);         // "Sources:\n[1] path:3-17\n..."
 *   rag_prompt_free(&p); rag_ctx_close(rc);
 *
 * The index's own embedding model (recorded path, identity checked) is opened for the query
 * vector; when it is missing or differs, retrieval falls back to BM25 and says so in the note.
 */
#ifndef ROTOR_RAG_PROMPT_H
#define ROTOR_RAG_PROMPT_H

#include "rag_search.h"

typedef struct {
    const char *db_path;
    const char *embed_model; /* NULL: the model the index records, if it is still there */
    rtr_model_opts mo; /* how to open the embedding model */
    int k; /* sources per question (default 4) */
    size_t max_source_bytes; /* text of all sources together (default 12000, about 3000 tokens) */
    int bm25_only; /* leave the vectors (and the embedding model) alone */
} rag_ctx_opts;

typedef struct rag_ctx rag_ctx;

void rag_ctx_defaults(rag_ctx_opts *o);
int rag_ctx_open(rag_ctx **out, const rag_ctx_opts *o, rtr_err *err);
void rag_ctx_close(rag_ctx *c);
/* A one-line remark for the user ("" when there is nothing to say). */
const char *rag_ctx_note(const rag_ctx *c);

typedef struct {
    const char *text; /* points into rag_prompt.message */
    size_t len;
    int is_data; /* document text: special-token strings in it are plain text */
} rag_piece;

typedef struct {
    char *message; /* the user message: instruction, numbered sources, then the question */
    size_t len;
    rag_piece *pieces; /* message cut into pieces, in order */
    int n_pieces;
    rag_hit *hits; /* source [i + 1] is hits[i] */
    int n_hits;
} rag_prompt;

/* Retrieves sources for question and builds the message. With no hits the message is the
 * question alone (n_hits 0). */
int rag_prompt_build(rag_ctx *c, const char *question, rag_prompt *out, rtr_err *err);
/* Retrieval alone (for callers that build their own prompt). */
int rag_ctx_search(rag_ctx *c, const char *question, int k, rag_hit **hits, int *n, rtr_err *err);
/* The list of sources to print after the answer: "Sources:\n[1] path:12-40\n...". When answer
 * is given and cites some [n], only those are listed. NULL when there are no sources or on OOM.
 * malloc'd. */
char *rag_prompt_sources(const rag_prompt *p, const char *answer);
void rag_prompt_free(rag_prompt *p);

#endif
