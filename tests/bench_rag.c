/* bench_rag.c: retrieval latency over a large index: 100k chunks of 1024-d int8 vectors (10
 * chunks per document) with synthetic text, then the vector scan, BM25 and the fused hybrid
 * search, each timed over 30 queries (median and worst) after one warm-up query.
 * Not run by `make test`. Build and run (the index is built once and kept):
 *   make && cc -O2 -D_GNU_SOURCE -pthread -o build/bench_rag tests/bench_rag.c \
 *       $(find build -name '*.o' ! -name rotor.o ! -path '*tests*') \
 *       -lm -lutf8proc -lsqlite3 [-lvulkan -lOpenCL]
 *   build/bench_rag [/tmp/bench_rag.sqlite [CHUNKS [DIM]]]
 * Wall times count waiting on a busy machine; the CPU times beside them do not.
 */
#include "../tools/rag_search.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t rng = 88172645463325252ull;
static uint64_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void word(char *o, uint64_t k) { sprintf(o, "w%llx", (unsigned long long)(k % 20000)); }

static void random_vec(float *v, int dim) {
    double ss = 0;
    for (int i = 0; i < dim; i++) {
        v[i] = (float)((int64_t)(next() % 20001) - 10000) / 10000.0f;
        ss += (double)v[i] * v[i];
    }
    for (int i = 0; i < dim; i++) v[i] = (float)(v[i] / sqrt(ss));
}

static int build(const char *path, int chunks, int dim) {
    rag_db *db;
    rtr_err e = {0};
    if (rag_db_open(&db, path, RAG_DB_WRITE, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    rag_db_conf c = {0};
    snprintf(c.model_id, sizeof c.model_id, "bench-%d", dim);
    c.dim = dim;
    snprintf(c.chunker, sizeof c.chunker, "bench");
    if (rag_db_conf_apply(db, &c, &e) < 0) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    enum { PER_DOC = 10, WORDS = 60 };
    char *text = malloc(PER_DOC * WORDS * 8 + 16);
    float *vecs = malloc((size_t)PER_DOC * dim * sizeof *vecs);
    rag_chunk ch[PER_DOC];
    double t0 = rtr_now();
    for (int d = 0; d < chunks / PER_DOC; d++) {
        size_t n = 0;
        for (int k = 0; k < PER_DOC; k++) {
            ch[k].start = n;
            for (int w = 0; w < WORDS; w++) {
                /* Zipf-ish: small word numbers are common */
                uint64_t r = next() % 20000;
                word(text + n, r * r / 20000);
                n += strlen(text + n);
                text[n++] = ' ';
            }
            ch[k].end = n;
            ch[k].byte_start = (int64_t)ch[k].start;
            ch[k].byte_end = (int64_t)n;
            ch[k].line_start = ch[k].line_end = k + 1;
            ch[k].n_tokens = WORDS;
            random_vec(vecs + (size_t)k * dim, dim);
        }
        text[n] = 0;
        rag_text t = {.text = text, .len = n, .src_len = n};
        char p[64];
        snprintf(p, sizeof p, "/bench/doc%06d.txt", d);
        uint8_t h[16] = {0};
        if (rag_db_doc_put(db, p, "text", (int64_t)n, 0, h, &t, ch, PER_DOC, vecs, dim, &e)) {
            fprintf(stderr, "%s\n", e.msg);
            return 1;
        }
        if (d % 1000 == 999) fprintf(stderr, "\rbuilding: %d chunks", (d + 1) * PER_DOC);
    }
    fprintf(stderr, "\rbuilt %d chunks of %d-d in %.1f s\n", chunks, dim, rtr_now() - t0);
    free(text);
    free(vecs);
    rag_db_close(db);
    return 0;
}

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *what, double *ms, double *cpu, int n) {
    qsort(ms, (size_t)n, sizeof *ms, cmp_d);
    qsort(cpu, (size_t)n, sizeof *cpu, cmp_d);
    printf("%-26s median %7.2f ms  worst %7.2f ms  (CPU time: median %7.2f ms)\n", what, ms[n / 2],
           ms[n - 1], cpu[n / 2]);
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "/tmp/bench_rag.sqlite";
    int chunks = argc > 2 ? atoi(argv[2]) : 100000, dim = argc > 3 ? atoi(argv[3]) : 1024;
    if (chunks < 10 || dim < 1 || dim > 8192) {
        fprintf(stderr, "bad arguments\n");
        return 1;
    }
    if (access(path, R_OK) && build(path, chunks, dim)) return 1;
    rag_db *db;
    rtr_err e = {0};
    if (rag_db_open(&db, path, RAG_DB_READ, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    rag_db_stats st;
    rag_db_stats_get(db, &st, &e);
    printf("index: %lld chunks, %lld vectors of %d-d\n", (long long)st.chunks,
           (long long)st.vectors, dim);
    enum { Q = 30, DEPTH = 50 };
    float *q = malloc((size_t)dim * sizeof *q);
    int64_t ids[DEPTH];
    float sc[DEPTH];
    double bs[DEPTH], tv[Q], tb[Q], th[Q], cv[Q], cb[Q], ch[Q];
    char text[256];
    for (int i = -1; i < Q; i++) {
        random_vec(q, dim);
        size_t n = 0;
        for (int w = 0; w < 6; w++) {
            word(text + n, next() % 3000);
            n += strlen(text + n);
            text[n++] = ' ';
        }
        text[n] = 0;
        double t0 = rtr_now(), c0 = cpu_now();
        int nv = rag_vec_top(db, q, dim, DEPTH, ids, sc, &e);
        double t1 = rtr_now(), c1 = cpu_now();
        int nb = rag_bm25(db, text, n, DEPTH, ids, bs, &e);
        double t2 = rtr_now(), c2 = cpu_now();
        rag_hit *h;
        int nh;
        rag_search_opts so = {5, 0};
        int rc = rag_search(db, text, n, q, dim, &so, &h, &nh, &e);
        double t3 = rtr_now(), c3 = cpu_now();
        if (nv < 0 || nb < 0 || rc) {
            fprintf(stderr, "%s\n", e.msg);
            return 1;
        }
        rag_hits_free(h, nh);
        if (i < 0) continue; /* warm-up */
        tv[i] = (t1 - t0) * 1e3;
        tb[i] = (t2 - t1) * 1e3;
        th[i] = (t3 - t2) * 1e3;
        cv[i] = (c1 - c0) * 1e3;
        cb[i] = (c2 - c1) * 1e3;
        ch[i] = (c3 - c2) * 1e3;
    }
    report("vector scan (top 50)", tv, cv, Q);
    report("BM25 (6 words, top 50)", tb, cb, Q);
    report("hybrid search (k 5)", th, ch, Q);
    free(q);
    rag_db_close(db);
    return 0;
}
