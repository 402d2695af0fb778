/* rag_prompt.c: what `rotor run` / `rotor chat --rag` need from an index: open it with its
 * embedding model (or fall back to BM25), retrieve sources for a question, build the user
 * message with numbered, delimited sources (document text kept apart as data pieces), and
 * format the list of cited sources after the answer.
 * Library code: errors through rtr_err, nothing printed.
 */
#include "rag_prompt.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct rag_ctx {
    rag_db *db;
    rag_embedder *emb;
    float *qvec;
    int dim;
    rag_ctx_opts o;
    char note[1280];
};

void rag_ctx_defaults(rag_ctx_opts *o) {
    memset(o, 0, sizeof *o);
    o->mo.backend = "auto";
    o->mo.device = -1;
    o->k = 4;
    o->max_source_bytes = 12000;
}

int rag_ctx_open(rag_ctx **out, const rag_ctx_opts *o, rtr_err *err) {
    *out = NULL;
    rag_ctx *c = calloc(1, sizeof *c);
    if (!c) return rtr_seterr(err, RTR_ENOMEM, "out of memory");
    c->o = *o;
    if (c->o.k <= 0) c->o.k = 4;
    if (!c->o.max_source_bytes) c->o.max_source_bytes = 12000;
    int rc = rag_db_open(&c->db, o->db_path, RAG_DB_READ, err);
    if (rc) goto fail;
    rag_db_conf conf;
    if ((rc = rag_db_conf_get(c->db, &conf, err))) goto fail;
    if (!conf.model_id[0] || o->bm25_only) {
        if (o->embed_model && !o->bm25_only)
            snprintf(c->note, sizeof c->note, "%s has no vectors: BM25 only (-m ignored)",
                     o->db_path);
        *out = c;
        return 0;
    }
    const char *mp = o->embed_model ? o->embed_model : conf.model_path;
    char id[512];
    rtr_err e2 = {0};
    if (!mp[0] || access(mp, R_OK) || rag_model_identity(mp, id, sizeof id, &e2)) {
        if (o->embed_model) {
            rc = rtr_seterr(err, e2.code ? e2.code : RTR_EIO, "%s: %s", mp,
                            e2.code ? e2.msg : "cannot read");
            goto fail;
        }
        snprintf(c->note, sizeof c->note,
                 "BM25 only: the index's embedding model %s is not available (pass -m)", mp);
        *out = c;
        return 0;
    }
    if (strcmp(id, conf.model_id)) {
        if (o->embed_model) {
            rc = rtr_seterr(err, RTR_EARG, "%s is not the embedding model %s was built with (%s)",
                            mp, o->db_path, conf.model_id);
            goto fail;
        }
        snprintf(c->note, sizeof c->note, "BM25 only: %s changed since the index was built", mp);
        *out = c;
        return 0;
    }
    if ((rc = rag_embedder_open(&c->emb, mp, &o->mo, err))) goto fail;
    c->dim = rag_embedder_dim(c->emb);
    if (c->dim != conf.dim) {
        rc = rtr_seterr(err, RTR_EFORMAT, "%s: vectors are %d-d but %s gives %d", o->db_path,
                        conf.dim, mp, c->dim);
        goto fail;
    }
    if (!(c->qvec = malloc((size_t)c->dim * sizeof *c->qvec))) {
        rc = rtr_seterr(err, RTR_ENOMEM, "out of memory");
        goto fail;
    }
    *out = c;
    return 0;
fail:
    rag_ctx_close(c);
    return rc;
}

void rag_ctx_close(rag_ctx *c) {
    if (!c) return;
    rag_embedder_free(c->emb);
    rag_db_close(c->db);
    free(c->qvec);
    free(c);
}

const char *rag_ctx_note(const rag_ctx *c) { return c->note; }

int rag_ctx_search(rag_ctx *c, const char *question, int k, rag_hit **hits, int *n, rtr_err *err) {
    size_t len = strlen(question);
    const float *qv = NULL;
    if (c->emb) {
        int rc = rag_embedder_embed_query(c->emb, question, len, c->qvec);
        if (rc) return rtr_seterr(err, rc, "embedding the question: %s", rag_embedder_err(c->emb));
        qv = c->qvec;
    }
    rag_search_opts so = {k > 0 ? k : c->o.k, 0};
    return rag_search(c->db, question, len, qv, c->dim, &so, hits, n, err);
}

/* ==== building the message ==== */

typedef struct {
    char *s;
    size_t n, cap;
    size_t *cut; /* piece boundaries: offsets where a piece ends */
    int *data;
    int np, npcap;
    int oom;
} sbuf;

static void put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

static void putf(sbuf *b, const char *fmt, ...) {
    char tmp[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* Ends the current piece (is_data says what it held). */
static void cut(sbuf *b, int is_data) {
    if (b->oom) return;
    size_t start = b->np ? b->cut[b->np - 1] : 0;
    if (b->n == start) return;
    if (b->np == b->npcap) {
        int cap = b->npcap ? b->npcap * 2 : 16;
        size_t *c = realloc(b->cut, (size_t)cap * sizeof *c);
        if (c) b->cut = c;
        int *d = realloc(b->data, (size_t)cap * sizeof *d);
        if (d) b->data = d;
        if (!c || !d) {
            b->oom = 1;
            return;
        }
        b->npcap = cap;
    }
    b->cut[b->np] = b->n;
    b->data[b->np++] = is_data;
}

/* Path for people: relative to the working folder when it lies under it. */
static const char *shown_path(const char *path, char *cwd, size_t cap) {
    if (!getcwd(cwd, cap)) return path;
    size_t n = strlen(cwd);
    if (n > 1 && !strncmp(path, cwd, n) && path[n] == '/') return path + n + 1;
    return path;
}

/* Bytes of s that fit in max, cut at a character boundary. */
static size_t fit_utf8(const char *s, size_t len, size_t max) {
    if (len <= max) return len;
    while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80) max--;
    return max;
}

int rag_prompt_build(rag_ctx *c, const char *question, rag_prompt *out, rtr_err *err) {
    memset(out, 0, sizeof *out);
    int rc = rag_ctx_search(c, question, c->o.k, &out->hits, &out->n_hits, err);
    if (rc) return rc;
    sbuf b = {0};
    char cwd[4096];
    static const char instr[] =
        "Answer the question using the numbered sources below. Cite each source you use as [n], "
        "for example [1]. If the sources do not contain the answer, say so.\n\n";
    if (out->n_hits) put(&b, instr, sizeof instr - 1);
    size_t budget = c->o.max_source_bytes;
    int used = 0;
    for (int i = 0; i < out->n_hits; i++) {
        const rag_hit *h = &out->hits[i];
        size_t tl = strlen(h->text);
        if (used && tl > budget) break;
        size_t take = fit_utf8(h->text, tl, budget);
        putf(&b, "--- source [%d]: %s, lines %d-%d ---\n", i + 1,
             shown_path(h->path, cwd, sizeof cwd), h->line_start, h->line_end);
        cut(&b, 0);
        put(&b, h->text, take);
        cut(&b, 1);
        putf(&b, "%s\n--- end of source [%d] ---\n\n", take < tl ? " [...]" : "", i + 1);
        budget -= take;
        used++;
    }
    /* sources cut by the budget are not offered */
    for (int i = used; i < out->n_hits; i++) {
        free(out->hits[i].path);
        free(out->hits[i].text);
    }
    out->n_hits = used;
    if (used) put(&b, "Question: ", 10);
    cut(&b, 0);
    put(&b, question, strlen(question));
    cut(&b, 1);
    if (b.oom || !b.s) {
        free(b.s);
        free(b.cut);
        free(b.data);
        rag_prompt_free(out);
        return rtr_seterr(err, RTR_ENOMEM, "out of memory");
    }
    out->message = b.s;
    out->len = b.n;
    out->pieces = calloc((size_t)(b.np ? b.np : 1), sizeof *out->pieces);
    if (!out->pieces) {
        free(b.cut);
        free(b.data);
        rag_prompt_free(out);
        return rtr_seterr(err, RTR_ENOMEM, "out of memory");
    }
    for (int i = 0; i < b.np; i++) {
        size_t start = i ? b.cut[i - 1] : 0;
        out->pieces[i] = (rag_piece){b.s + start, b.cut[i] - start, b.data[i]};
    }
    out->n_pieces = b.np;
    free(b.cut);
    free(b.data);
    return 0;
}

char *rag_prompt_sources(const rag_prompt *p, const char *answer) {
    if (!p->n_hits) return NULL;
    unsigned char *cited = calloc((size_t)p->n_hits + 1, 1);
    if (!cited) return NULL;
    int any = 0;
    for (const char *a = answer; a && (a = strchr(a, '[')); a++) {
        char *end;
        long v = strtol(a + 1, &end, 10);
        if (end != a + 1 && *end == ']' && v >= 1 && v <= p->n_hits) {
            cited[v] = 1;
            any = 1;
        }
    }
    sbuf b = {0};
    char cwd[4096];
    put(&b, "Sources:\n", 9);
    for (int i = 0; i < p->n_hits; i++) {
        if (any && !cited[i + 1]) continue;
        const rag_hit *h = &p->hits[i];
        putf(&b, "[%d] %s:%d-%d\n", i + 1, shown_path(h->path, cwd, sizeof cwd), h->line_start,
             h->line_end);
    }
    free(cited);
    free(b.cut);
    free(b.data);
    if (b.oom) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

void rag_prompt_free(rag_prompt *p) {
    free(p->message);
    free(p->pieces);
    rag_hits_free(p->hits, p->n_hits);
    memset(p, 0, sizeof *p);
}
