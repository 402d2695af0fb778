/* rag_search.c: retrieval over a RAG index: BM25 through FTS5 (user text quoted word by word),
 * a brute-force scan of the int8 vectors (one SELECT, each document's vectors scanned in place
 * from SQLite's pages), and reciprocal rank fusion of the two lists. The vector scan runs on a
 * second thread with its own read-only connection while BM25 runs on the caller's; each list is
 * read from one snapshot (a read transaction), so a concurrent indexer never shows half a
 * document, and a chunk that an indexer removed between the two snapshots is dropped.
 * Library code: errors through rtr_err, nothing printed.
 */
#include "rag_search.h"
#include "../kernels/kernels.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ==== FTS5 query text ==== */

static int is_word_byte(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80;
}

/* Words that match nearly every chunk of English text; dropped when other words remain. */
static int stopword(const char *w, size_t n) {
    static const char *const list[] = {"a",     "an",    "and",  "are",  "as",   "at",   "be",
                                       "by",    "can",   "do",   "does", "for",  "from", "how",
                                       "i",     "in",    "is",   "it",   "of",   "on",   "or",
                                       "that",  "the",   "this", "to",   "was",  "what", "when",
                                       "where", "which", "who",  "why",  "with", "you",  NULL};
    char low[8];
    if (n >= sizeof low) return 0;
    for (size_t i = 0; i < n; i++) low[i] = (char)(w[i] >= 'A' && w[i] <= 'Z' ? w[i] + 32 : w[i]);
    low[n] = 0;
    for (const char *const *p = list; *p; p++)
        if (!strcmp(low, *p)) return 1;
    return 0;
}

char *rag_fts_query(const char *text, size_t len) {
    enum { MAX_TERMS = 64 };
    size_t st[MAX_TERMS], ln[MAX_TERMS];
    int nt = 0, content = 0;
    for (size_t i = 0; i < len && nt < MAX_TERMS;) {
        if (!is_word_byte((unsigned char)text[i])) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < len && is_word_byte((unsigned char)text[j])) j++;
        int dup = 0;
        for (int k = 0; k < nt && !dup; k++)
            dup = ln[k] == j - i && !strncasecmp(text + st[k], text + i, j - i);
        if (!dup) {
            st[nt] = i;
            ln[nt] = j - i;
            content += !stopword(text + i, j - i);
            nt++;
        }
        i = j;
    }
    size_t cap = 1;
    for (int k = 0; k < nt; k++) cap += ln[k] + 6;
    char *q = malloc(cap);
    if (!q) return NULL;
    size_t w = 0;
    for (int k = 0; k < nt; k++) {
        if (content && stopword(text + st[k], ln[k])) continue;
        if (w) {
            memcpy(q + w, " OR ", 4);
            w += 4;
        }
        q[w++] = '"'; /* a word holds no '"', so nothing inside needs doubling */
        memcpy(q + w, text + st[k], ln[k]);
        w += ln[k];
        q[w++] = '"';
    }
    q[w] = 0;
    return q;
}

/* ==== BM25 ==== */

static int dberr(rag_db *db, rtr_err *err, const char *what) {
    sqlite3 *s = rag_db_sqlite(db);
    int ec = sqlite3_errcode(s);
    return rtr_seterr(err,
                      ec == SQLITE_NOMEM         ? RTR_ENOMEM
                          : ec == SQLITE_CORRUPT ? RTR_EFORMAT
                                                 : RTR_EIO,
                      "%s: %s: %s", rag_db_path(db), what, sqlite3_errmsg(s));
}

int rag_bm25(rag_db *db, const char *query, size_t len, int depth, int64_t *ids, double *scores,
             rtr_err *err) {
    char *q = rag_fts_query(query, len);
    if (!q) return rtr_seterr(err, RTR_ENOMEM, "out of memory");
    if (!*q || depth <= 0) {
        free(q);
        return 0;
    }
    sqlite3_stmt *s;
    int n = 0, rc;
    if (sqlite3_prepare_v2(
            rag_db_sqlite(db),
            "SELECT rowid, bm25(chunks_fts) FROM chunks_fts WHERE chunks_fts MATCH ?1 "
            "ORDER BY rank LIMIT ?2",
            -1, &s, NULL)) {
        free(q);
        return dberr(db, err, "full-text search");
    }
    sqlite3_bind_text(s, 1, q, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 2, depth);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW && n < depth) {
        ids[n] = sqlite3_column_int64(s, 0);
        if (scores) scores[n] = sqlite3_column_double(s, 1);
        n++;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) n = dberr(db, err, "full-text search");
    sqlite3_finalize(s);
    free(q);
    return n;
}

/* ==== vectors ==== */

#define SCAN_BLOCK 256

/* k: the CPU kernel set, picked once per search (picking asks the CPU each time) */
static void scan(const rtr_kernels *k, const int8_t *codes, const float *scales, int n, int dim,
                 const int8_t *q, float qs, float *out) {
    if (k && k->q8_gemm) {
        k->q8_gemm(codes, scales, n, dim, q, &qs, 1, out, (size_t)n);
        return;
    }
    size_t dp = (size_t)(dim + 63) / 64 * 64;
    for (int r = 0; r < n; r++) {
        const int8_t *row = codes + (size_t)r * dp;
        int32_t acc = 0;
        for (int j = 0; j < dim; j++) acc += row[j] * q[j];
        out[r] = scales[r] * qs * (float)acc;
    }
}

void rag_scan_i8(const int8_t *codes, const float *scales, int n, int dim, const int8_t *q,
                 float qs, float *out) {
    scan(rtr_kernels_pick(NULL), codes, scales, n, dim, q, qs, out);
}

/* Min-heap of the best `cap` (score, id) pairs. */
typedef struct {
    float *s;
    int64_t *id;
    int n, cap;
} topk;

static void heap_push(topk *h, float s, int64_t id) {
    if (h->n == h->cap) {
        if (!(s > h->s[0])) return;
        int i = 0; /* replace the root, sift down */
        for (;;) {
            int l = 2 * i + 1, r = l + 1, m = i;
            float ms = s;
            if (l < h->n && h->s[l] < ms) {
                m = l;
                ms = h->s[l];
            }
            if (r < h->n && h->s[r] < ms) m = r;
            if (m == i) break;
            h->s[i] = h->s[m];
            h->id[i] = h->id[m];
            i = m;
        }
        h->s[i] = s;
        h->id[i] = id;
        return;
    }
    int i = h->n++;
    while (i > 0) {
        int p = (i - 1) / 2;
        if (h->s[p] <= s) break;
        h->s[i] = h->s[p];
        h->id[i] = h->id[p];
        i = p;
    }
    h->s[i] = s;
    h->id[i] = id;
}

typedef struct {
    float s;
    int64_t id;
} scored;

static int cmp_scored(const void *a, const void *b) {
    const scored *x = a, *y = b;
    if (x->s != y->s) return x->s < y->s ? 1 : -1;
    return x->id < y->id ? -1 : x->id > y->id;
}

int rag_vec_top(rag_db *db, const float *qvec, int dim, int depth, int64_t *ids, float *scores,
                rtr_err *err) {
    if (depth <= 0 || dim <= 0) return 0;
    size_t dpad = (size_t)(dim + 63) / 64 * 64;
    int8_t *q = calloc(dpad, 1);
    int8_t *pad = dpad != (size_t)dim ? calloc(dpad, SCAN_BLOCK) : NULL; /* zeros past dim */
    float *scl = malloc(SCAN_BLOCK * sizeof *scl);
    float *hs = malloc((size_t)depth * sizeof *hs), *part = NULL;
    int64_t *hid = malloc((size_t)depth * sizeof *hid);
    int part_cap = 0, rc = 0;
    sqlite3_stmt *s = NULL;
    if (!q || !hs || !hid || !scl || (dpad != (size_t)dim && !pad)) {
        rc = rtr_seterr(err, RTR_ENOMEM, "out of memory");
        goto done;
    }
    float qs = rag_quant_i8(qvec, dim, q);
    const rtr_kernels *kern = rtr_kernels_pick(NULL); /* AVX2 / AVX-512 VNNI / NEON q8_gemm */
    topk h = {hs, hid, 0, depth};
    if (sqlite3_prepare_v2(rag_db_sqlite(db), "SELECT chunk0, n, dim, scales, codes FROM vecs", -1,
                           &s, NULL)) {
        rc = dberr(db, err, "reading vectors");
        goto done;
    }
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        int64_t chunk0 = sqlite3_column_int64(s, 0);
        int64_t n = sqlite3_column_int64(s, 1), d = sqlite3_column_int64(s, 2);
        const void *sc = sqlite3_column_blob(s, 3);
        int nsc = sqlite3_column_bytes(s, 3);
        const int8_t *codes = sqlite3_column_blob(s, 4);
        int ncodes = sqlite3_column_bytes(s, 4);
        if (d != dim) {
            rc = rtr_seterr(err, RTR_EARG, "%s: the index holds %lld-d vectors, the query is %d-d",
                            rag_db_path(db), (long long)d, dim);
            goto done;
        }
        /* a damaged row is ignored rather than read out of bounds */
        if (n <= 0 || n > (1 << 24) || (int64_t)nsc != n * 4 || (int64_t)ncodes != n * d || !sc ||
            !codes)
            continue;
        if (n > part_cap) {
            float *p = realloc(part, (size_t)n * sizeof *p);
            if (!p) {
                rc = rtr_seterr(err, RTR_ENOMEM, "out of memory");
                goto done;
            }
            part = p;
            part_cap = (int)n;
        }
        /* in blocks: scales copied (the blob may be unaligned for floats), rows padded to the
         * Q8R stride when dim is not a multiple of 64 */
        for (int64_t a = 0; a < n; a += SCAN_BLOCK) {
            int m = (int)(n - a < SCAN_BLOCK ? n - a : SCAN_BLOCK);
            memcpy(scl, (const char *)sc + a * 4, (size_t)m * 4);
            const int8_t *rows = codes + a * dim;
            if (pad) {
                for (int i = 0; i < m; i++)
                    memcpy(pad + (size_t)i * dpad, rows + (size_t)i * dim, (size_t)dim);
                rows = pad;
            }
            scan(kern, rows, scl, m, dim, q, qs, part + a);
        }
        for (int64_t i = 0; i < n; i++) heap_push(&h, part[i], chunk0 + i);
    }
    if (rc != SQLITE_DONE) {
        rc = dberr(db, err, "reading vectors");
        goto done;
    }
    /* best first */
    rc = h.n;
    scored *sorted = malloc((size_t)(h.n ? h.n : 1) * sizeof *sorted);
    if (!sorted) {
        rc = rtr_seterr(err, RTR_ENOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < h.n; i++) sorted[i] = (scored){h.s[i], h.id[i]};
    qsort(sorted, (size_t)h.n, sizeof *sorted, cmp_scored);
    for (int i = 0; i < h.n; i++) {
        ids[i] = sorted[i].id;
        if (scores) scores[i] = sorted[i].s;
    }
    free(sorted);
done:
    sqlite3_finalize(s);
    free(q);
    free(pad);
    free(scl);
    free(hs);
    free(hid);
    free(part);
    return rc;
}

/* ==== fusion ==== */

/* the vector list, searched on its own connection and thread */
typedef struct {
    rag_db *db;
    const float *qvec;
    int dim, depth, n;
    int64_t *ids;
    float *scores;
    rtr_err err;
} vec_job;

static void *vec_thread(void *v) {
    vec_job *j = v;
    if (sqlite3_exec(rag_db_sqlite(j->db), "BEGIN", NULL, NULL, NULL)) {
        j->n = dberr(j->db, &j->err, "starting a read");
        return NULL;
    }
    j->n = rag_vec_top(j->db, j->qvec, j->dim, j->depth, j->ids, j->scores, &j->err);
    sqlite3_exec(rag_db_sqlite(j->db), "COMMIT", NULL, NULL, NULL);
    return NULL;
}

void rag_hits_free(rag_hit *h, int n) {
    if (!h) return;
    for (int i = 0; i < n; i++) {
        free(h[i].path);
        free(h[i].text);
    }
    free(h);
}

static int cmp_hit(const void *a, const void *b) {
    const rag_hit *x = a, *y = b;
    if (x->score != y->score) return x->score < y->score ? 1 : -1;
    return x->chunk_id < y->chunk_id ? -1 : x->chunk_id > y->chunk_id;
}

static int fill_hit(rag_db *db, sqlite3_stmt *s, rag_hit *h, rtr_err *err) {
    sqlite3_reset(s);
    sqlite3_bind_int64(s, 1, h->chunk_id);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_DONE) return 0; /* gone: the caller drops it */
    if (rc != SQLITE_ROW) return dberr(db, err, "reading a chunk");
    const char *p = (const char *)sqlite3_column_text(s, 1),
               *t = (const char *)sqlite3_column_text(s, 6);
    h->doc_id = sqlite3_column_int64(s, 0);
    h->byte_start = sqlite3_column_int64(s, 2);
    h->byte_end = sqlite3_column_int64(s, 3);
    h->line_start = sqlite3_column_int(s, 4);
    h->line_end = sqlite3_column_int(s, 5);
    h->path = strdup(p ? p : "");
    h->text = strdup(t ? t : "");
    if (!h->path || !h->text) return rtr_seterr(err, RTR_ENOMEM, "out of memory");
    return 1;
}

int rag_search(rag_db *db, const char *query, size_t len, const float *qvec, int dim,
               const rag_search_opts *o, rag_hit **out, int *n_out, rtr_err *err) {
    *out = NULL;
    *n_out = 0;
    int k = o && o->k > 0 ? o->k : 5;
    int depth = o && o->depth > 0 ? o->depth : (k * 4 > 50 ? k * 4 : 50);
    if (depth < k) depth = k;
    sqlite3 *sq = rag_db_sqlite(db);
    int64_t *bid = malloc((size_t)depth * sizeof *bid), *vid = malloc((size_t)depth * sizeof *vid);
    double *bsc = malloc((size_t)depth * sizeof *bsc);
    float *vsc = malloc((size_t)depth * sizeof *vsc);
    rag_hit *c = calloc((size_t)depth * 2, sizeof *c);
    sqlite3_stmt *s = NULL;
    int nb = 0, nv = 0, nc = 0, rc = 0;
    if (!bid || !vid || !bsc || !vsc || !c) {
        rc = rtr_seterr(err, RTR_ENOMEM, "out of memory");
        goto done;
    }
    vec_job vj = {NULL, qvec, dim, depth, 0, vid, vsc, {0}};
    pthread_t th;
    int threaded = qvec && rag_db_second(db, &vj.db, NULL) == 0 &&
                   pthread_create(&th, NULL, vec_thread, &vj) == 0;
    if (sqlite3_exec(sq, "BEGIN", NULL, NULL, NULL)) {
        rc = dberr(db, err, "starting a read");
        if (threaded) pthread_join(th, NULL);
        goto done;
    }
    nb = rag_bm25(db, query, len, depth, bid, bsc, err);
    if (threaded) {
        pthread_join(th, NULL);
        nv = vj.n;
        if (nv < 0 && nb >= 0 && err) *err = vj.err;
    } else if (qvec) /* no thread to be had: one after the other on this connection */
        nv = rag_vec_top(db, qvec, dim, depth, vid, vsc, err);
    if (nb < 0 || nv < 0) {
        rc = nb < 0 ? nb : nv;
        goto end;
    }
    for (int i = 0; i < nb; i++) {
        c[nc] = (rag_hit){.chunk_id = bid[i], .bm25_rank = i + 1, .bm25 = bsc[i]};
        c[nc++].score = 1.0 / (RAG_RRF_K + i + 1);
    }
    for (int i = 0; i < nv; i++) {
        int j = 0;
        while (j < nc && c[j].chunk_id != vid[i]) j++;
        if (j == nc) c[nc++] = (rag_hit){.chunk_id = vid[i]};
        c[j].vec_rank = i + 1;
        c[j].cosine = vsc[i];
        c[j].score += 1.0 / (RAG_RRF_K + i + 1);
    }
    qsort(c, (size_t)nc, sizeof *c, cmp_hit);
    if (sqlite3_prepare_v2(sq,
                           "SELECT c.doc_id, d.path, c.byte_start, c.byte_end, c.line_start, "
                           "c.line_end, c.text FROM chunks c JOIN docs d ON d.id = c.doc_id "
                           "WHERE c.id = ?1",
                           -1, &s, NULL)) {
        rc = dberr(db, err, "reading chunks");
        goto end;
    }
    int w = 0;
    for (int i = 0; i < nc && w < k; i++) {
        int r = fill_hit(db, s, &c[i], err);
        if (r < 0) {
            rc = r;
            goto end;
        }
        if (r) {
            rag_hit tmp = c[w];
            c[w] = c[i];
            c[i] = tmp;
            w++;
        }
    }
    *n_out = w;
end:
    sqlite3_exec(sq, "COMMIT", NULL, NULL, NULL);
done:
    sqlite3_finalize(s);
    free(bid);
    free(vid);
    free(bsc);
    free(vsc);
    if (rc < 0 || !c) {
        rag_hits_free(c, c ? nc : 0);
        *n_out = 0;
        return rc < 0 ? rc : RTR_ENOMEM;
    }
    /* the array keeps its tail of unused candidates; free their strings now */
    for (int i = *n_out; i < nc; i++) {
        free(c[i].path);
        free(c[i].text);
        c[i].path = c[i].text = NULL;
    }
    *out = c;
    return 0;
}
