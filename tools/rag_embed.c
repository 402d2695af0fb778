/* rag_embed.c: an embedding .rotor model behind the rag_embed_fn / rag_count_fn interface that
 * the RAG index and retrieval use, and the model identity an index records.
 * Owns one model, one session and one id buffer, all sized at open; embedding a text allocates
 * nothing. Library code: errors through rtr_err, nothing printed.
 */
#include "rag_search.h"
#include "../models/format.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct rag_embedder {
    rtr_model *m;
    rtr_session *s;
    rtr_model_info info;
    int32_t *ids;
    int cap; /* tokens one text may have (the session's context) */
    char *qbuf; /* prefix + query */
    size_t qcap;
    char id[512];
    rtr_err err;
};

int rag_model_identity(const char *path, char *out, size_t cap, rtr_err *err) {
    rtr_file f;
    int rc = rtr_file_open(&f, path, err);
    if (rc) return rc;
    /* the header and the metadata describe the model; the tensors carry checksums in the
     * directory, which the header's own checksum covers */
    uint64_t h = rtr_hash64(f.map, f.size < RTR_HEADER_BYTES ? f.size : RTR_HEADER_BYTES, 0);
    h = rtr_hash64(f.meta, f.meta_size, h);
    const char *base = strrchr(path, '/');
    snprintf(out, cap, "%s size=%llu meta=%016llx", base ? base + 1 : path,
             (unsigned long long)f.size, (unsigned long long)h);
    rtr_file_close(&f);
    return 0;
}

int rag_embedder_open(rag_embedder **out, const char *path, const rtr_model_opts *mo,
                      rtr_err *err) {
    *out = NULL;
    rag_embedder *e = calloc(1, sizeof *e);
    if (!e) return rtr_seterr(err, RTR_ENOMEM, "out of memory");
    int rc = rag_model_identity(path, e->id, sizeof e->id, err);
    if (rc) goto fail;
    if ((rc = rtr_model_open(&e->m, path, mo, err))) goto fail;
    rtr_model_get_info(e->m, &e->info);
    if (!e->info.is_embedding) {
        rc = rtr_seterr(err, RTR_EARG, "%s is not an embedding model (no pooling)", path);
        goto fail;
    }
    rtr_session_opts so = {0};
    so.n_ctx = e->info.max_ctx > 0 && e->info.max_ctx < 8192 ? e->info.max_ctx : 8192;
    so.n_sink = 0;
    if ((rc = rtr_session_new(&e->s, e->m, &so, err))) goto fail;
    e->cap = rtr_session_ctx(e->s);
    if (e->cap > so.n_ctx) e->cap = so.n_ctx;
    e->ids = malloc((size_t)(e->cap > 0 ? e->cap : 1) * sizeof *e->ids);
    if (!e->ids || e->cap < 2) {
        rc = rtr_seterr(err, e->ids ? RTR_EFORMAT : RTR_ENOMEM, "%s: unusable context size", path);
        goto fail;
    }
    *out = e;
    return 0;
fail:
    rag_embedder_free(e);
    return rc;
}

void rag_embedder_free(rag_embedder *e) {
    if (!e) return;
    if (e->s) rtr_session_free(e->s);
    if (e->m) rtr_model_close(e->m);
    free(e->ids);
    free(e->qbuf);
    free(e);
}

int rag_embedder_dim(const rag_embedder *e) { return e->info.n_embd; }
const char *rag_embedder_id(const rag_embedder *e) { return e->id; }
rtr_model *rag_embedder_model(rag_embedder *e) { return e->m; }
int rag_embedder_ctx(const rag_embedder *e) { return e->cap; }
const char *rag_embedder_err(const rag_embedder *e) { return e->err.msg; }

int rag_embedder_count(void *ud, const char *text, size_t len) {
    rag_embedder *e = ud;
    int n = rtr_tokenize(e->m, text, len, RTR_TOK_PLAIN, e->ids, e->cap);
    if (n < 0) rtr_seterr(&e->err, n, "cannot tokenize text (%s)", rtr_strerror(n));
    return n;
}

int rag_embedder_embed(void *ud, const char *text, size_t len, float *out) {
    rag_embedder *e = ud;
    const int flags = RTR_TOK_BOS | RTR_TOK_PLAIN;
    int n = rtr_tokenize(e->m, text, len, flags | RTR_TOK_EOS, e->ids, e->cap);
    if (n < 0) return rtr_seterr(&e->err, n, "cannot tokenize text (%s)", rtr_strerror(n));
    if (n > e->cap) {
        /* too long: keep the start, and the EOS the pooling reads */
        int eos = e->info.eos;
        n = rtr_tokenize(e->m, text, len, flags, e->ids, e->cap);
        if (n < 0) return rtr_seterr(&e->err, n, "cannot tokenize text (%s)", rtr_strerror(n));
        n = e->cap;
        if (eos >= 0) e->ids[n - 1] = eos;
    }
    if (n == 0) {
        if (e->info.eos < 0) return rtr_seterr(&e->err, RTR_EARG, "empty text");
        e->ids[n++] = e->info.eos;
    }
    return rtr_embed(e->s, e->ids, n, out, &e->err);
}

int rag_embedder_embed_query(rag_embedder *e, const char *text, size_t len, float *out) {
    size_t pl = strlen(RAG_QUERY_PREFIX);
    if (len > SIZE_MAX - pl - 1) return rtr_seterr(&e->err, RTR_EARG, "query too long");
    if (pl + len + 1 > e->qcap) {
        char *b = realloc(e->qbuf, pl + len + 1);
        if (!b) return rtr_seterr(&e->err, RTR_ENOMEM, "out of memory");
        e->qbuf = b;
        e->qcap = pl + len + 1;
    }
    memcpy(e->qbuf, RAG_QUERY_PREFIX, pl);
    memcpy(e->qbuf + pl, text, len);
    e->qbuf[pl + len] = 0;
    return rag_embedder_embed(e, e->qbuf, pl + len, out);
}
