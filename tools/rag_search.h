/* rag_search.h: retrieval over a RAG index, and the embedding model behind it.
 *
 * rag_search runs BM25 (FTS5) on the query text and, when given a query vector, a full scan of
 * the stored int8 vectors; the two ranked lists are fused by reciprocal rank
 * (score = sum of 1 / (60 + rank)). Raw BM25 scores and cosines are never compared.
 * rag_embedder wraps an embedding .rotor model as a rag_embed_fn / rag_count_fn pair.
 */
#ifndef ROTOR_RAG_SEARCH_H
#define ROTOR_RAG_SEARCH_H

#include "rag_db.h"

#define RAG_RRF_K 60
#define RAG_QUERY_PREFIX "Instruct: Given a question, retrieve passages that answer it\nQuery: "

typedef struct {
    int64_t chunk_id, doc_id;
    char *path, *text; /* owned by the array; freed by rag_hits_free */
    int64_t byte_start, byte_end; /* in the file */
    int line_start, line_end;
    double score; /* fused score, higher is better */
    int bm25_rank, vec_rank; /* 1-based rank in each list; 0: not in that list */
    double bm25; /* FTS5 bm25() (lower is better) when bm25_rank */
    float cosine; /* cosine from the int8 codes when vec_rank */
} rag_hit;

typedef struct {
    int k; /* hits returned (default 5) */
    int depth; /* candidates taken from each list (default max(50, 4k)) */
} rag_search_opts;

/* Top hits for the query text (and qvec, dim floats, when not NULL; its dim must match the
 * index). *out is malloc'd; free with rag_hits_free. A query without searchable words and no
 * vector gives 0 hits. */
int rag_search(rag_db *db, const char *query, size_t len, const float *qvec, int dim,
               const rag_search_opts *o, rag_hit **out, int *n, rtr_err *err);
void rag_hits_free(rag_hit *h, int n);

/* The lists themselves: up to depth chunk ids, best first. Return the count or < 0. */
int rag_bm25(rag_db *db, const char *query, size_t len, int depth, int64_t *ids, double *scores,
             rtr_err *err);
int rag_vec_top(rag_db *db, const float *qvec, int dim, int depth, int64_t *ids, float *scores,
                rtr_err *err);

/* The FTS5 MATCH expression for free text: words quoted and joined by OR, so '-', ':', '"',
 * '*' and keywords are plain text. "" when there are no words. malloc'd; NULL on OOM. */
char *rag_fts_query(const char *text, size_t len);

/* out[r] = scales[r] * qs * sum_j codes[r*dp + j] * q[j] for n rows, dp = dim rounded up to
 * 64 (the Q8R layout: rows and q zero past dim). */
void rag_scan_i8(const int8_t *codes, const float *scales, int n, int dim, const int8_t *q,
                 float qs, float *out);

/* ---- the embedding model ---- */
typedef struct rag_embedder rag_embedder;

/* Opens path as an embedding model (general.arch with pooling; see rtr_model_get_info). */
int rag_embedder_open(rag_embedder **out, const char *path, const rtr_model_opts *mo, rtr_err *err);
void rag_embedder_free(rag_embedder *e);
int rag_embedder_dim(const rag_embedder *e);
const char *rag_embedder_id(const rag_embedder *e); /* the identity the index records */
rtr_model *rag_embedder_model(rag_embedder *e);
int rag_embedder_ctx(const rag_embedder *e); /* most tokens one text may have */
/* rag_embed_fn and rag_count_fn for ud = the embedder. Texts longer than the model's context
 * are cut (EOS kept last). On failure rag_embedder_err says why. */
int rag_embedder_embed(void *e, const char *text, size_t len, float *out);
int rag_embedder_count(void *e, const char *text, size_t len);
/* The query side: RAG_QUERY_PREFIX + text. */
int rag_embedder_embed_query(rag_embedder *e, const char *text, size_t len, float *out);
const char *rag_embedder_err(const rag_embedder *e);

/* "NAME size=BYTES meta=HASH": the file name, its size and a hash of the .rotor header and
 * metadata. A different model (or a converted-again one) gets a different identity. */
int rag_model_identity(const char *path, char *out, size_t cap, rtr_err *err);

#endif
