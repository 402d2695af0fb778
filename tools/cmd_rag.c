/* cmd_rag.c: `rotor rag-index`: index folders into an SQLite file (incrementally, with a
 * progress bar and a summary), or query an index (--query) and print ranked hits.
 * The work is done by rag_index.c and rag_search.c; this file parses flags and talks.
 */
#include "cli.h"
#include "rag_index.h"
#include "rag_prompt.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f) {
    fprintf(
        f,
        "usage: rotor rag-index DIR... --db FILE.sqlite [-m EMBED_MODEL] [options]\n"
        "       rotor rag-index --db FILE.sqlite --query TEXT [-k N] [--json] [-m EMBED_MODEL]\n"
        "       rotor rag-index --db FILE.sqlite --stats\n"
        "\n"
        "Indexes text, Markdown, source code and HTML under each DIR (or a single file) into\n"
        "FILE.sqlite: chunks, a full-text index and, with an embedding model, vectors.\n"
        "Running it again only reads what changed. Without -m, --chunk-tokens and --overlap,\n"
        "the model and settings the index was built with are used again.\n"
        "\n"
        "indexing:\n"
        "  --db FILE           the index (created if missing)\n"
        "  -m, --model FILE    embedding model (.rotor with pooling)\n"
        "  --no-embed          no vectors: full-text search only\n"
        "  --chunk-tokens N    tokens per chunk (default 400)\n"
        "  --overlap N         tokens repeated between neighbouring chunks (default 60)\n"
        "  --max-size MB       skip files larger than this (default 16)\n"
        "  -q, --quiet         no summary\n"
        "query:\n"
        "  --query TEXT        print the best chunks: path:lines  score  first line\n"
        "  -k N                how many (default 5)\n"
        "  --json              a JSON array instead\n"
        "  --bm25              full-text ranking alone\n"
        "model: --backend auto|cpu|vulkan|opencl, --device N, -t N, --kernel NAME, --verbose\n");
}

typedef struct {
    cli_progress bar;
    char label[128];
    double last;
    double t0;
} progress_ud;

static void on_progress(void *ud, int ev, const char *path, const rag_index_stats *st) {
    (void)path;
    progress_ud *p = ud;
    if (ev == RAG_EV_FILE_READ) return;
    double now = rtr_now(), el = now - p->t0;
    if (ev == RAG_EV_FILE_DONE && now - p->last < 0.1 && st->done < st->files) return;
    p->last = now;
    snprintf(p->label, sizeof p->label, "indexing: %llu chunks, %.1f chunks/s",
             (unsigned long long)st->chunks, el > 0 ? (double)st->chunks / el : 0.0);
    cli_progress_update(&p->bar, st->done, st->files, "files");
}

/* "/real/dir/" + base of path, for files that may not exist yet. */
static char *side_path(const char *db, const char *suffix) {
    char dir[PATH_MAX], real[PATH_MAX];
    const char *slash = strrchr(db, '/');
    const char *base = slash ? slash + 1 : db;
    int dl = slash ? (int)(slash - db) : 0;
    if (slash)
        snprintf(dir, sizeof dir, "%.*s", dl > 0 ? dl : 1, db); /* "/x.sqlite": "/" */
    else
        snprintf(dir, sizeof dir, ".");
    if (!realpath(dir, real)) return NULL;
    size_t n = strlen(real) + strlen(base) + strlen(suffix) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s%s", strcmp(real, "/") ? real : "", base, suffix);
    return p;
}

static void print_summary(const rag_index_stats *st, rag_db *db, const rag_db_conf *conf) {
    fprintf(stderr, "rotor: %llu file%s indexed (%llu chunks) in %.1f s",
            (unsigned long long)st->indexed, st->indexed == 1 ? "" : "s",
            (unsigned long long)st->chunks, st->seconds);
    if (st->chunks && st->seconds > 0)
        fprintf(stderr, ", %.2f chunks/s, %.0f tokens/s", (double)st->chunks / st->seconds,
                (double)st->tokens / st->seconds);
    fprintf(stderr, "; %llu unchanged, %llu removed", (unsigned long long)st->unchanged,
            (unsigned long long)st->removed);
    int any = 0;
    for (int i = 0; i < RAG_SKIP_N; i++) {
        if (!st->skipped[i]) continue;
        fprintf(stderr, "%s %llu %s", any ? "," : "; skipped:", (unsigned long long)st->skipped[i],
                rag_skip_name(i));
        any = 1;
    }
    fputc('\n', stderr);
    if (st->replaced)
        fprintf(stderr, "rotor: %llu files had invalid UTF-8 (replaced by U+FFFD)\n",
                (unsigned long long)st->replaced);
    if (st->unstable)
        fprintf(stderr,
                "rotor: %llu files changed while being read; they are read again next run\n",
                (unsigned long long)st->unstable);
    if (st->wiped)
        fprintf(stderr,
                "rotor: settings or embedding model changed: everything was indexed again\n");
    rag_db_stats s;
    if (!rag_db_stats_get(db, &s, NULL))
        fprintf(stderr, "rotor: %s: %lld documents, %lld chunks, %lld vectors%s%s\n",
                rag_db_path(db), (long long)s.docs, (long long)s.chunks, (long long)s.vectors,
                conf->model_id[0] ? " from " : "", conf->model_id);
}

static int do_index(const char **roots, int n_roots, const char *dbpath, cli_model_args *ma,
                    int no_embed, int tokens, int overlap, long max_mb, int quiet) {
    rag_db *db;
    rtr_err e = {0};
    if (rag_db_open(&db, dbpath, RAG_DB_WRITE, &e)) return cli_error("%s", e.msg);
    rag_db_conf old;
    if (rag_db_conf_get(db, &old, &e)) {
        rag_db_close(db);
        return cli_error("%s", e.msg);
    }
    /* settings not given again are those the index was built with */
    int old_tokens, old_overlap;
    if (sscanf(old.chunker, "tokens=%d overlap=%d", &old_tokens, &old_overlap) == 2) {
        if (tokens <= 0) tokens = old_tokens;
        if (overlap < 0 && old_overlap < tokens) overlap = old_overlap;
    }
    const char *model = no_embed ? NULL : ma->model;
    if (!no_embed && !model && old.model_id[0]) {
        if (!old.model_path[0] || access(old.model_path, R_OK)) {
            rag_db_close(db);
            return cli_error(
                "%s was built with embedding model %s, which is not at %s; pass -m MODEL "
                "(or --no-embed to drop the vectors)",
                dbpath, old.model_id, old.model_path[0] ? old.model_path : "(unknown)");
        }
        model = old.model_path;
    }
    rag_embedder *emb = NULL;
    char model_real[PATH_MAX];
    if (model) {
        if (!realpath(model, model_real)) {
            rag_db_close(db);
            return cli_error("%s: %s", model, strerror(errno));
        }
        if (rag_embedder_open(&emb, model_real, &ma->mo, &e)) {
            rag_db_close(db);
            return cli_error("%s", e.msg);
        }
        const char *note = rtr_model_note(rag_embedder_model(emb));
        if (note && *note) fprintf(stderr, "rotor: %s\n", note);
    }
    char *ex[5] = {0};
    static const char *const suffix[5] = {"", "-wal", "-shm", "-journal", ".lock"};
    for (int i = 0; i < 5; i++) ex[i] = side_path(dbpath, suffix[i]);

    rag_index_opts o;
    memset(&o, 0, sizeof o);
    o.roots = roots;
    o.n_roots = n_roots;
    rag_chunk_defaults(&o.chunk);
    if (tokens > 0) o.chunk.tokens = tokens;
    if (overlap >= 0) o.chunk.overlap = overlap;
    if (emb) {
        o.chunk.count = rag_embedder_count;
        o.chunk.count_ud = emb;
        o.embed = rag_embedder_embed;
        o.embed_ud = emb;
        o.dim = rag_embedder_dim(emb);
        o.model_id = rag_embedder_id(emb);
        o.model_path = model_real;
    }
    o.max_bytes = (uint64_t)max_mb << 20;
    o.exclude = (const char *const *)ex;
    o.n_exclude = 0;
    for (int i = 0; i < 5; i++)
        if (ex[i]) ex[o.n_exclude++] = ex[i];
    o.cancel = &cli_interrupted;
    progress_ud pu = {0};
    cli_progress_init(&pu.bar, pu.label);
    pu.t0 = rtr_now();
    snprintf(pu.label, sizeof pu.label, "indexing");
    if (!quiet) {
        o.progress = on_progress;
        o.progress_ud = &pu;
    }

    cli_install_signals();
    rag_index_stats st;
    int rc = rag_index_run(db, &o, &st, &e);
    cli_progress_end(&pu.bar);
    int status = 0;
    if (rc == RTR_EINTR) {
        fprintf(stderr,
                "rotor: interrupted after %llu of %llu files; the index is consistent, run "
                "again to finish\n",
                (unsigned long long)st.done, (unsigned long long)st.files);
        status = 130;
    } else if (!rc && cli_interrupted) {
        /* the signal came after the last file: the work is whole, but the user asked to stop */
        fprintf(stderr, "rotor: interrupted after %llu of %llu files; the index is complete\n",
                (unsigned long long)st.done, (unsigned long long)st.files);
        status = 130;
    } else if (rc) {
        status = cli_error("%s", e.msg);
    } else if (!quiet) {
        rag_db_conf now;
        if (rag_db_conf_get(db, &now, &e)) memset(&now, 0, sizeof now);
        print_summary(&st, db, &now);
    }
    for (int i = 0; i < 5; i++) free(ex[i]);
    rag_embedder_free(emb);
    rag_db_close(db);
    return status;
}

/* ==== queries ==== */

static void json_str(FILE *f, const char *s, size_t n) {
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", f);
        else if (c == '\t')
            fputs("\\t", f);
        else if (c == '\r')
            fputs("\\r", f);
        else if (c < 0x20 || c == 0x7f)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

/* The first non-blank line of text, at most max bytes (cut at a character boundary). */
static void first_line(const char *t, char *out, size_t max) {
    while (*t == ' ' || *t == '\t' || *t == '\n' || *t == '\r') t++;
    size_t n = strcspn(t, "\n");
    while (n && (t[n - 1] == ' ' || t[n - 1] == '\t' || t[n - 1] == '\r')) n--;
    if (n >= max) {
        n = max - 4;
        while (n && ((unsigned char)t[n] & 0xC0) == 0x80) n--;
    }
    size_t w = 0;
    for (size_t i = 0; i < n; i++) out[w++] = (unsigned char)t[i] < 0x20 ? ' ' : t[i];
    if (n < strcspn(t, "\n")) {
        memcpy(out + w, "...", 3);
        w += 3;
    }
    out[w] = 0;
}

static const char *rel_path(const char *p, const char *cwd) {
    size_t n = strlen(cwd);
    if (n > 1 && !strncmp(p, cwd, n) && p[n] == '/') return p + n + 1;
    return p;
}

static int do_query(const char *dbpath, const char *query, int k, int json, int bm25_only,
                    cli_model_args *ma) {
    rag_ctx_opts co;
    rag_ctx_defaults(&co);
    co.db_path = dbpath;
    co.embed_model = ma->model;
    co.mo = ma->mo;
    co.k = k;
    co.bm25_only = bm25_only;
    rag_ctx *c;
    rtr_err e = {0};
    if (rag_ctx_open(&c, &co, &e)) return cli_error("%s", e.msg);
    if (*rag_ctx_note(c)) fprintf(stderr, "rotor: %s\n", rag_ctx_note(c));
    rag_hit *h;
    int n;
    double t0 = rtr_now();
    if (rag_ctx_search(c, query, k, &h, &n, &e)) {
        rag_ctx_close(c);
        return cli_error("%s", e.msg);
    }
    double ms = (rtr_now() - t0) * 1e3;
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) cwd[0] = 0;
    if (json) printf("[");
    for (int i = 0; i < n; i++) {
        const char *p = rel_path(h[i].path, cwd);
        if (json) {
            printf("%s\n  {\"rank\": %d, \"path\": ", i ? "," : "", i + 1);
            json_str(stdout, p, strlen(p));
            printf(
                ", \"line_start\": %d, \"line_end\": %d, \"byte_start\": %lld, \"byte_end\": %lld, "
                "\"score\": %.6f, \"bm25_rank\": %d, \"vec_rank\": %d, \"text\": ",
                h[i].line_start, h[i].line_end, (long long)h[i].byte_start,
                (long long)h[i].byte_end, h[i].score, h[i].bm25_rank, h[i].vec_rank);
            json_str(stdout, h[i].text, strlen(h[i].text));
            printf("}");
        } else {
            char fl[128];
            first_line(h[i].text, fl, sizeof fl);
            printf("%s:%d-%d  %.4f  %s\n", p, h[i].line_start, h[i].line_end, h[i].score, fl);
        }
    }
    if (json) printf("%s]\n", n ? "\n" : "");
    fprintf(stderr, "rotor: %d hits in %.1f ms\n", n, ms);
    rag_hits_free(h, n);
    rag_ctx_close(c);
    return 0;
}

static int do_stats(const char *dbpath) {
    rag_db *db;
    rtr_err e = {0};
    if (rag_db_open(&db, dbpath, RAG_DB_READ, &e)) return cli_error("%s", e.msg);
    rag_db_conf c;
    rag_db_stats s;
    if (rag_db_conf_get(db, &c, &e) || rag_db_stats_get(db, &s, &e)) {
        rag_db_close(db);
        return cli_error("%s", e.msg);
    }
    printf("documents: %lld\nchunks: %lld\nvectors: %lld\nembedding model: %s\nmodel path: %s\n"
           "dimensions: %d\nchunker: %s\n",
           (long long)s.docs, (long long)s.chunks, (long long)s.vectors,
           c.model_id[0] ? c.model_id : "(none)", c.model_path[0] ? c.model_path : "-", c.dim,
           c.chunker);
    rag_db_close(db);
    return 0;
}

int rtr_cmd_rag_index(int argc, char **argv) {
    cli_model_args ma;
    cli_model_args_init(&ma);
    const char *dbpath = NULL, *query = NULL, *v;
    const char **roots = calloc((size_t)argc + 1, sizeof *roots);
    if (!roots) return cli_error("out of memory");
    int n_roots = 0, bad = 0, json = 0, quiet = 0, no_embed = 0, bm25 = 0, stats = 0;
    long k = 5, tokens = -1, overlap = -1, max_mb = 16;
    for (int i = 1; i < argc && !bad; i++) {
        const char *a = argv[i];
        if (cli_flag(argv, i, "-h", "--help")) {
            usage(stdout);
            free(roots);
            return 0;
        } else if (cli_opt(argc, argv, &i, NULL, "--db", &v, &bad))
            dbpath = v;
        else if (cli_opt(argc, argv, &i, NULL, "--query", &v, &bad))
            query = v;
        else if (cli_opt(argc, argv, &i, "-k", NULL, &v, &bad)) {
            if (!bad && !cli_int(v, 1, 1000, &k))
                bad = cli_error("-k needs a number from 1 to 1000");
        } else if (cli_opt(argc, argv, &i, NULL, "--chunk-tokens", &v, &bad)) {
            if (!bad && !cli_int(v, 16, 100000, &tokens))
                bad = cli_error("--chunk-tokens needs a number from 16 to 100000");
        } else if (cli_opt(argc, argv, &i, NULL, "--overlap", &v, &bad)) {
            if (!bad && !cli_int(v, 0, 100000, &overlap))
                bad = cli_error("--overlap needs a number of tokens");
        } else if (cli_opt(argc, argv, &i, NULL, "--max-size", &v, &bad)) {
            if (!bad && !cli_int(v, 1, 1 << 20, &max_mb))
                bad = cli_error("--max-size needs a size in MB");
        } else if (cli_flag(argv, i, NULL, "--json"))
            json = 1;
        else if (cli_flag(argv, i, "-q", "--quiet"))
            quiet = 1;
        else if (cli_flag(argv, i, NULL, "--no-embed"))
            no_embed = 1;
        else if (cli_flag(argv, i, NULL, "--bm25"))
            bm25 = 1;
        else if (cli_flag(argv, i, NULL, "--stats"))
            stats = 1;
        else if (cli_model_arg(&ma, argc, argv, &i, &bad))
            continue;
        else if (a[0] == '-' && a[1])
            bad = cli_error("rag-index: unknown option '%s' (try --help)", a);
        else
            roots[n_roots++] = a;
    }
    int rc;
    if (bad)
        rc = 1;
    else if (!dbpath)
        rc = cli_error("rag-index needs --db FILE.sqlite (try --help)");
    else if (query && n_roots)
        rc = cli_error("give folders to index or --query, not both");
    else if (query)
        rc = do_query(dbpath, query, (int)k, json, bm25, &ma);
    else if (stats)
        rc = do_stats(dbpath);
    else if (!n_roots)
        rc = cli_error("rag-index needs folders to index, or --query TEXT (try --help)");
    else if (overlap >= 0 && overlap >= (tokens > 0 ? tokens : 400))
        rc = cli_error("--overlap must be smaller than --chunk-tokens");
    else
        rc = do_index(roots, n_roots, dbpath, &ma, no_embed, (int)tokens, (int)overlap, max_mb,
                      quiet);
    free(roots);
    return rc;
}
