/* rag_db.h: the SQLite file of a RAG index: schema, settings, one transaction per document,
 * and the writer lock.
 *
 * Schema (PRAGMA user_version 1, WAL mode, 16 KiB pages):
 *   meta(key PRIMARY KEY, value)       schema, embed_model (identity), embed_path, embed_dim,
 *                                      chunker ("tokens=400 overlap=60 count=model|bytes")
 *   docs(id, path UNIQUE, size, mtime_ns, hash BLOB[16], kind, n_chunks, indexed_at)
 *   chunks(id, doc_id, ord, byte_start, byte_end, line_start, line_end, n_tokens, text)
 *       a document's chunks have consecutive ids
 *   chunks_fts                         FTS5 over chunks.text (external content, porter unicode61),
 *                                      kept in step by triggers on chunks
 *   vecs(doc_id PRIMARY KEY, chunk0, n, dim, scales BLOB, codes BLOB)
 *       all vectors of one document: chunk chunk0+i has int8 codes[i*dim..] and f32 scales[i]
 *       (v ~= codes * scale); one row per document keeps a full scan to few rows.
 *
 * Writers hold an flock on PATH.lock for as long as the handle is open: a second writer is
 * refused at open, readers never wait for it (WAL). Every document is replaced in one
 * transaction, so a crash at any moment leaves each document either complete or absent.
 */
#ifndef ROTOR_RAG_DB_H
#define ROTOR_RAG_DB_H

#include "rag_chunk.h"

struct sqlite3;
typedef struct rag_db rag_db;

enum { RAG_DB_READ = 0, RAG_DB_WRITE = 1 };
#define RAG_SCHEMA_VERSION 1

/* Opens (WRITE: creates if needed and takes the writer lock) the index at path. A writer that
 * finds the lock taken fails with RTR_EIO and "... is being indexed by another process". */
int rag_db_open(rag_db **out, const char *path, int mode, rtr_err *err);
void rag_db_close(rag_db *db);
struct sqlite3 *rag_db_sqlite(rag_db *db);
/* A second, read-only connection to the same file, for a thread that reads beside this
 * connection's user; opened on first use, kept (with its warm page map) until rag_db_close. */
int rag_db_second(rag_db *db, rag_db **out, rtr_err *err);
const char *rag_db_path(const rag_db *db);

/* What the index was built with. model_id "" means no embedding model (BM25 only). */
typedef struct {
    char model_id[512];
    char model_path[1024];
    int dim;
    char chunker[128];
} rag_db_conf;

/* Reads the recorded settings (empty fields where none are recorded). */
int rag_db_conf_get(rag_db *db, rag_db_conf *c, rtr_err *err);
/* Makes the index follow c: when model_id, dim or chunker differ from what is recorded, every
 * document is removed (they will be indexed again) in the same transaction that records c.
 * Returns 1 when documents were removed, 0 otherwise, or a negative RTR_E*. */
int rag_db_conf_apply(rag_db *db, const rag_db_conf *c, rtr_err *err);

typedef struct {
    int64_t id, size, mtime_ns;
    uint8_t hash[16];
} rag_doc_state;

/* 1 and *st filled when path is indexed, 0 when not, or a negative RTR_E*. */
int rag_db_doc_find(rag_db *db, const char *path, rag_doc_state *st, rtr_err *err);
/* Records a new size and mtime for a document whose content did not change. */
int rag_db_doc_touch(rag_db *db, int64_t id, int64_t size, int64_t mtime_ns, rtr_err *err);
/* Replaces (or adds) the document at path with these chunks of t and, when dim > 0, their
 * vectors (n * dim floats), all in one transaction. */
int rag_db_doc_put(rag_db *db, const char *path, const char *kind, int64_t size, int64_t mtime_ns,
                   const uint8_t hash[16], const rag_text *t, const rag_chunk *ch, int n,
                   const float *vecs, int dim, rtr_err *err);
int rag_db_doc_remove(rag_db *db, int64_t id, rtr_err *err);

typedef struct {
    int64_t id;
    char *path;
} rag_doc_ref;
/* Every indexed document, sorted by path. Free with rag_doc_refs_free. */
int rag_db_doc_list(rag_db *db, rag_doc_ref **out, size_t *n, rtr_err *err);
void rag_doc_refs_free(rag_doc_ref *r, size_t n);

typedef struct {
    int64_t docs, chunks, vectors;
} rag_db_stats;
int rag_db_stats_get(rag_db *db, rag_db_stats *s, rtr_err *err);

/* int8 storage of one vector: codes = round(v * 127 / max|v|); returns the scale max|v| / 127. */
float rag_quant_i8(const float *v, int dim, int8_t *codes);

#endif
