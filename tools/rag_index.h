/* rag_index.h: building and refreshing a RAG index from folders.
 *
 * rag_index_run walks the roots, and for every file: skips it when size and mtime match the
 * index, else reads it and skips it when its content hash matches (recording the new mtime),
 * else chunks it, embeds the chunks and replaces the document in one transaction. Documents
 * under the roots that are gone (or no longer indexable) are removed at the end. A change of
 * embedding model or chunker settings first empties the index. Killing the process at any
 * point leaves a consistent index that a rerun completes.
 */
#ifndef ROTOR_RAG_INDEX_H
#define ROTOR_RAG_INDEX_H

#include "rag_db.h"
#include "rag_walk.h"

typedef struct {
    uint64_t files; /* listed by the walk */
    uint64_t done; /* of those, handled so far */
    uint64_t indexed; /* (re)chunked and stored */
    uint64_t unchanged; /* same size and mtime, or same content */
    uint64_t removed; /* documents deleted from the index */
    uint64_t chunks; /* chunks stored in this run */
    uint64_t tokens; /* their tokens as the chunker counted them (model tokens with a model) */
    uint64_t replaced; /* files with invalid UTF-8 replaced by U+FFFD */
    uint64_t unstable; /* files that changed while being read (indexed again next run) */
    uint64_t skipped[RAG_SKIP_N];
    int wiped; /* the settings changed: every document was indexed again */
    double seconds;
} rag_index_stats;

enum { RAG_EV_LISTED, RAG_EV_FILE_READ, RAG_EV_FILE_DONE };

typedef struct {
    const char *const *roots;
    int n_roots;
    rag_chunk_opts chunk; /* chunk.count NULL: bytes/4 */
    rag_embed_fn embed; /* NULL: no vectors (BM25 only) */
    void *embed_ud;
    int dim; /* vector size when embed is set */
    const char *model_id; /* identity recorded in the index ("" or NULL with no model) */
    const char *model_path;
    uint64_t max_bytes; /* files larger are skipped (0: 16 MiB) */
    const char *const *exclude; /* real paths never indexed (the database and its side files) */
    int n_exclude;
    const volatile int *cancel; /* checked between files; RTR_EINTR when set */
    /* Called after the walk (path NULL), after a file is read, and after it is done. */
    void (*progress)(void *ud, int event, const char *path, const rag_index_stats *st);
    void *progress_ud;
} rag_index_opts;

/* The chunker settings string recorded in the index ("tokens=400 overlap=60 count=bytes"). */
void rag_index_chunker_id(const rag_index_opts *o, char *out, size_t cap);

/* Runs one indexing pass into db (opened RAG_DB_WRITE). st is filled as it goes. */
int rag_index_run(rag_db *db, const rag_index_opts *o, rag_index_stats *st, rtr_err *err);

#endif
