/* rag_index.c: one indexing pass of rag-index: walk, skip what is unchanged, read, chunk, embed,
 * store one document per transaction, then remove documents that are gone. See rag_index.h.
 * Library code: errors through rtr_err, nothing printed; the caller draws progress.
 */
#include "rag_index.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rag_index_chunker_id(const rag_index_opts *o, char *out, size_t cap) {
    rag_chunk_opts d;
    rag_chunk_defaults(&d);
    int t = o->chunk.tokens > 0 ? o->chunk.tokens : d.tokens;
    int ov = o->chunk.overlap >= 0 ? o->chunk.overlap : d.overlap;
    if (ov >= t) ov = t / 2; /* as rag_chunk_text does */
    snprintf(out, cap, "tokens=%d overlap=%d count=%s", t, ov, o->chunk.count ? "model" : "bytes");
}

static int cmp_path(const void *a, const void *b) {
    return strcmp(((const rag_doc_ref *)a)->path, ((const rag_doc_ref *)b)->path);
}

/* Is path the root itself or under it? */
static int under(const char *path, const char *root) {
    size_t n = strlen(root);
    if (n == 1 && root[0] == '/') return 1;
    return !strncmp(path, root, n) && (path[n] == '/' || path[n] == 0);
}

static void emit(const rag_index_opts *o, int ev, const char *path, const rag_index_stats *st) {
    if (o->progress) o->progress(o->progress_ud, ev, path, st);
}

/* Reads, chunks, embeds and stores one file. *kept = 1 when the document stays in the index. */
static int one_file(rag_db *db, const rag_index_opts *o, const rag_file *f, rag_index_stats *st,
                    float **vecs, size_t *vcap, int *kept, rtr_err *err) {
    *kept = 0;
    rag_doc_state old;
    int found = rag_db_doc_find(db, f->path, &old, err);
    if (found < 0) return found;
    if (found && old.size == f->size && old.mtime_ns == f->mtime_ns) {
        st->unchanged++;
        *kept = 1;
        return 0;
    }
    rag_text t;
    int64_t size, mtime;
    uint8_t hash[16];
    int unstable, why;
    int r =
        rag_extract(f->path, f->kind, o->max_bytes, &t, &size, &mtime, hash, &unstable, &why, err);
    if (r < 0) return r;
    if (r == 0) {
        st->skipped[why]++;
        return 0;
    }
    /* a file that changed while it was read gets an mtime no file has: the next run reads it
     * again */
    if (unstable) {
        st->unstable++;
        mtime = INT64_MIN;
    }
    emit(o, RAG_EV_FILE_READ, f->path, st);
    if (found && !memcmp(old.hash, hash, 16)) {
        rag_text_free(&t);
        st->unchanged++;
        *kept = 1;
        return unstable ? 0 : rag_db_doc_touch(db, old.id, size, mtime, err);
    }
    if (t.n_replaced) st->replaced++;
    rag_chunk *ch = NULL;
    int n = 0, rc = rag_chunk_text(&t, &o->chunk, &ch, &n, err);
    if (rc) goto out;
    const float *v = NULL;
    if (o->embed && n > 0) {
        size_t need = (size_t)n * (size_t)o->dim;
        if (need > *vcap) {
            float *nv = realloc(*vecs, need * sizeof *nv);
            if (!nv) {
                rc = rtr_seterr(err, RTR_ENOMEM, "out of memory embedding %s", f->path);
                goto out;
            }
            *vecs = nv;
            *vcap = need;
        }
        for (int i = 0; i < n; i++) {
            if (o->cancel && *o->cancel) {
                rc = rtr_seterr(err, RTR_EINTR, "interrupted");
                goto out;
            }
            rc = o->embed(o->embed_ud, t.text + ch[i].start, ch[i].end - ch[i].start,
                          *vecs + (size_t)i * o->dim);
            if (rc) {
                rc = rtr_seterr(err, rc < 0 ? rc : RTR_EBACKEND, "%s: embedding chunk %d failed",
                                f->path, i + 1);
                goto out;
            }
        }
        v = *vecs;
    }
    rc = rag_db_doc_put(db, f->path, rag_kind_name(f->kind), size, mtime, hash, &t, ch, n, v,
                        o->embed ? o->dim : 0, err);
    if (!rc) {
        st->indexed++;
        st->chunks += (uint64_t)n;
        for (int i = 0; i < n; i++) st->tokens += (uint64_t)(ch[i].n_tokens > 0 ? ch[i].n_tokens : 0);
        *kept = 1;
    }
out:
    free(ch);
    rag_text_free(&t);
    return rc;
}

int rag_index_run(rag_db *db, const rag_index_opts *o, rag_index_stats *st, rtr_err *err) {
    memset(st, 0, sizeof *st);
    double t0 = rtr_now();
    if (o->embed && o->dim <= 0) return rtr_seterr(err, RTR_EARG, "embedding size missing");
    rag_db_conf conf = {0};
    snprintf(conf.model_id, sizeof conf.model_id, "%s", o->embed && o->model_id ? o->model_id : "");
    snprintf(conf.model_path, sizeof conf.model_path, "%s",
             o->embed && o->model_path ? o->model_path : "");
    conf.dim = o->embed ? o->dim : 0;
    rag_index_chunker_id(o, conf.chunker, sizeof conf.chunker);
    int rc = rag_db_conf_apply(db, &conf, err);
    if (rc < 0) return rc;
    st->wiped = rc;

    rag_file *files = NULL;
    size_t nf = 0, fcap = 0;
    rag_walk_set *seen = rag_walk_set_new();
    char **roots = calloc((size_t)(o->n_roots > 0 ? o->n_roots : 1), sizeof *roots);
    rag_doc_ref *docs = NULL;
    size_t nd = 0, vcap = 0;
    unsigned char *keep = NULL;
    float *vecs = NULL;
    if (!seen || !roots) {
        rc = rtr_seterr(err, RTR_ENOMEM, "out of memory");
        goto done;
    }
    rag_walk_opts wo = {o->max_bytes, o->exclude, o->n_exclude};
    for (int i = 0; i < o->n_roots; i++) {
        if ((rc = rag_walk(o->roots[i], &wo, seen, &files, &nf, &fcap, st->skipped, err)))
            goto done;
        if (!(roots[i] = realpath(o->roots[i], NULL))) {
            rc = rtr_seterr(err, RTR_EIO, "%s: vanished while indexing", o->roots[i]);
            goto done;
        }
    }
    st->files = nf;
    emit(o, RAG_EV_LISTED, NULL, st);
    if ((rc = rag_db_doc_list(db, &docs, &nd, err))) goto done;
    keep = calloc(nd ? nd : 1, 1);
    if (!keep) {
        rc = rtr_seterr(err, RTR_ENOMEM, "out of memory");
        goto done;
    }

    for (size_t i = 0; i < nf; i++) {
        if (o->cancel && *o->cancel) {
            rc = rtr_seterr(err, RTR_EINTR, "interrupted");
            goto done;
        }
        int kept;
        if ((rc = one_file(db, o, &files[i], st, &vecs, &vcap, &kept, err))) goto done;
        if (kept) {
            rag_doc_ref key = {0, files[i].path};
            rag_doc_ref *d = nd ? bsearch(&key, docs, nd, sizeof *docs, cmp_path) : NULL;
            if (d) keep[d - docs] = 1;
        }
        st->done++;
        emit(o, RAG_EV_FILE_DONE, files[i].path, st);
    }
    /* documents under the roots that this pass did not keep are gone */
    for (size_t i = 0; i < nd; i++) {
        if (keep[i]) continue;
        int mine = 0;
        for (int r = 0; r < o->n_roots && !mine; r++) mine = under(docs[i].path, roots[r]);
        if (!mine) continue;
        if ((rc = rag_db_doc_remove(db, docs[i].id, err))) goto done;
        st->removed++;
    }
done:
    st->seconds = rtr_now() - t0;
    if (roots)
        for (int i = 0; i < o->n_roots; i++) free(roots[i]);
    free(roots);
    rag_files_free(files, nf);
    rag_walk_set_free(seen);
    rag_doc_refs_free(docs, nd);
    free(keep);
    free(vecs);
    return rc;
}
