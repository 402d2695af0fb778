/* test_rag.c: the RAG index on a generated folder: UTF-8 cleaning and HTML stripping with offset
 * maps, FTS query escaping, the chunker, incremental runs, deletions, model change, binary /
 * huge / hidden files, invalid UTF-8, symlink loops and links out of the root, a file changing
 * during indexing, kill -9 at several points then a rerun (integrity_check, same chunks as a
 * fresh index), a rare phrase found first by BM25 and by hybrid search, a second writer refused,
 * readers during a write, the vector scan against float cosine, and the prompt builder.
 * Vectors come from a deterministic word-hashing embedder, not a model. */
#include "../tools/rag_index.h"
#include "../tools/rag_prompt.h"
#include "../tools/rag_search.h"
#include "test.h"

#include <ctype.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define DIM 64
#define RARE "zymurgical quetzal marmalade"

/* ==== the test embedder: signed feature hashing of lower-cased words ==== */

static int test_embed(void *ud, const char *text, size_t len, float *out) {
    int *calls = ud;
    if (calls) (*calls)++;
    memset(out, 0, DIM * sizeof *out);
    for (size_t i = 0; i < len;) {
        if (!isalnum((unsigned char)text[i])) {
            i++;
            continue;
        }
        uint64_t h = 1469598103934665603ull;
        while (i < len && isalnum((unsigned char)text[i])) {
            h = (h ^ (uint64_t)tolower((unsigned char)text[i])) * 1099511628211ull;
            i++;
        }
        out[h % DIM] += (h >> 32) & 1 ? 1.0f : -1.0f;
    }
    double ss = 0;
    for (int i = 0; i < DIM; i++) ss += (double)out[i] * out[i];
    if (ss > 0)
        for (int i = 0; i < DIM; i++) out[i] = (float)(out[i] / sqrt(ss));
    return 0;
}

/* ==== folder helpers ==== */

static char root[256], dbdir[256];

static void put_file(const char *name, const char *data, size_t len) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", root, name);
    char *slash = strrchr(p, '/');
    *slash = 0;
    mkdir(p, 0755);
    *slash = '/';
    FILE *f = fopen(p, "wb");
    if (!f) {
        fprintf(stderr, "cannot write %s\n", p);
        exit(2);
    }
    fwrite(data, 1, len, f);
    fclose(f);
}
static void put_str(const char *name, const char *s) { put_file(name, s, strlen(s)); }

/* Prose of about n bytes from a small vocabulary, paragraphs and sentences, seeded. */
static char *prose(size_t n, unsigned seed) {
    static const char *const words[] = {
        "river",  "stone",  "lamp",   "orchard", "signal", "copper", "winter", "harbor", "engine",
        "meadow", "ledger", "violet", "thunder", "garden", "mirror", "saddle", "canvas", "pepper"};
    char *s = malloc(n + 64);
    size_t w = 0;
    int in_sent = 0, sents = 0;
    while (w < n) {
        seed = seed * 1103515245u + 12345u;
        const char *wd = words[(seed >> 16) % 18];
        if (!in_sent) {
            s[w++] = (char)toupper((unsigned char)wd[0]);
            wd++;
        }
        size_t l = strlen(wd);
        memcpy(s + w, wd, l);
        w += l;
        in_sent++;
        if (in_sent > 6 + (int)((seed >> 8) % 8)) {
            s[w++] = '.';
            in_sent = 0;
            sents++;
            if (sents % 5 == 0) {
                s[w++] = '\n';
                s[w++] = '\n';
            } else
                s[w++] = ' ';
        } else {
            s[w++] = ' ';
        }
    }
    s[w] = 0;
    return s;
}

static char *path_in(const char *name) {
    static char p[8][512];
    static int k;
    char *o = p[k++ % 8];
    snprintf(o, 512, "%s/%s", root, name);
    return o;
}

/* ==== indexing helper ==== */

typedef struct {
    int kill_after; /* raise SIGKILL after this many files are done (0: never) */
    int kill_in_embed; /* raise SIGKILL in the embedder at this call (0: never) */
    const char *change; /* append to this file when it has just been read */
    int changed;
    int embeds;
} hooks;

static void on_event(void *ud, int ev, const char *path, const rag_index_stats *st) {
    hooks *h = ud;
    if (ev == RAG_EV_FILE_DONE && h->kill_after && (int)st->done >= h->kill_after) raise(SIGKILL);
    if (ev == RAG_EV_FILE_READ && h->change && !strcmp(path, h->change) && !h->changed) {
        FILE *f = fopen(path, "ab");
        fputs("\n\nAppended while indexing: xylophonic dirigible.\n", f);
        fclose(f);
        h->changed = 1;
    }
}

static int hooked_embed(void *ud, const char *text, size_t len, float *out) {
    hooks *h = ud;
    if (h->kill_in_embed && ++h->embeds >= h->kill_in_embed) raise(SIGKILL);
    return test_embed(NULL, text, len, out);
}

static int run_index(const char *db, const char *model_id, hooks *hk, rag_index_stats *st,
                     rtr_err *e) {
    rag_db *d;
    int rc = rag_db_open(&d, db, RAG_DB_WRITE, e);
    if (rc) return rc;
    const char *roots[1] = {root};
    rag_index_opts o;
    memset(&o, 0, sizeof o);
    o.roots = roots;
    o.n_roots = 1;
    rag_chunk_defaults(&o.chunk);
    o.chunk.tokens = 120; /* small chunks: several per file */
    o.chunk.overlap = 20;
    if (model_id) {
        o.embed = hk ? hooked_embed : test_embed;
        o.embed_ud = hk;
        o.dim = DIM;
        o.model_id = model_id;
        o.model_path = "/nonexistent/test-model.rotor";
    }
    o.max_bytes = 64 << 10;
    if (hk) {
        o.progress = on_event;
        o.progress_ud = hk;
    }
    rc = rag_index_run(d, &o, st, e);
    rag_db_close(d);
    return rc;
}

/* Everything an index holds, canonically: paths, chunk ranges and text, vector codes. */
static char *dump(const char *db) {
    sqlite3 *s;
    if (sqlite3_open_v2(db, &s, SQLITE_OPEN_READONLY, NULL)) return strdup("?");
    sqlite3_stmt *st;
    size_t cap = 1 << 16, n = 0;
    char *o = malloc(cap);
    o[0] = 0;
    const char *q[2] = {
        "SELECT d.path, c.ord, c.byte_start, c.byte_end, c.line_start, c.line_end, c.text "
        "FROM chunks c JOIN docs d ON d.id = c.doc_id ORDER BY d.path, c.ord",
        "SELECT d.path, v.n, hex(v.codes), hex(v.scales), v.chunk0 - (SELECT min(id) FROM chunks "
        "WHERE doc_id = d.id) FROM vecs v JOIN docs d ON d.id = v.doc_id ORDER BY d.path"};
    for (int k = 0; k < 2; k++) {
        if (sqlite3_prepare_v2(s, q[k], -1, &st, NULL)) continue;
        while (sqlite3_step(st) == SQLITE_ROW) {
            for (int c = 0; c < sqlite3_column_count(st); c++) {
                const char *t = (const char *)sqlite3_column_text(st, c);
                size_t l = t ? strlen(t) : 0;
                while (n + l + 2 >= cap) o = realloc(o, cap *= 2);
                memcpy(o + n, t ? t : "", l);
                n += l;
                o[n++] = c + 1 < sqlite3_column_count(st) ? '|' : '\n';
                o[n] = 0;
            }
        }
        sqlite3_finalize(st);
    }
    sqlite3_close(s);
    return o;
}

static int64_t count(const char *db, const char *sql) {
    sqlite3 *s;
    sqlite3_stmt *st;
    int64_t v = -1;
    if (sqlite3_open_v2(db, &s, SQLITE_OPEN_READONLY, NULL)) return -1;
    if (!sqlite3_prepare_v2(s, sql, -1, &st, NULL) && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(s);
    return v;
}

/* PRAGMA integrity_check and the FTS5 index checked against its content table. */
static int db_ok(const char *db) {
    sqlite3 *s;
    sqlite3_stmt *st;
    int ok = 0;
    if (sqlite3_open(db, &s)) return 0;
    if (!sqlite3_prepare_v2(s, "PRAGMA integrity_check", -1, &st, NULL) &&
        sqlite3_step(st) == SQLITE_ROW)
        ok = !strcmp((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
    if (ok &&
        sqlite3_exec(s, "INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('integrity-check', 1)",
                     NULL, NULL, NULL))
        ok = 0;
    sqlite3_close(s);
    return ok;
}

/* Rank (1-based) of the first hit whose path ends in name, 0 if absent. */
static int rank_of(const char *db, const char *query, int hybrid, const char *name) {
    rag_db *d;
    rtr_err e = {0};
    if (rag_db_open(&d, db, RAG_DB_READ, &e)) return -1;
    float q[DIM];
    if (hybrid) test_embed(NULL, query, strlen(query), q);
    rag_hit *h;
    int n, r = 0;
    rag_search_opts so = {10, 0};
    if (rag_search(d, query, strlen(query), hybrid ? q : NULL, DIM, &so, &h, &n, &e)) {
        rag_db_close(d);
        return -1;
    }
    for (int i = 0; i < n && !r; i++) {
        size_t pl = strlen(h[i].path), nl = strlen(name);
        if (pl >= nl && !strcmp(h[i].path + pl - nl, name)) r = i + 1;
    }
    rag_hits_free(h, n);
    rag_db_close(d);
    return r;
}

/* ==== unit tests ==== */

static void test_utf8_html(void) {
    size_t n, rep;
    rag_map m = {0};
    const char bad[] = "ok \xff\xfe mid \xe2\x82 end \xc3\xa9";
    char *c = rag_utf8_clean(bad, sizeof bad - 1, &n, &m, &rep);
    CHECK(c && rep == 3 && !strcmp(c, "ok \xEF\xBF\xBD\xEF\xBF\xBD mid \xEF\xBF\xBD end \xc3\xa9"),
          "utf8 clean: %zu replaced, '%s'", rep, c ? c : "");
    const char *e = strstr(c, "end");
    CHECK(rag_map_apply(&m, (size_t)(e - c)) == (size_t)(strstr(bad, "end") - bad),
          "utf8 map: 'end' maps to %zu", rag_map_apply(&m, (size_t)(e - c)));
    free(c);
    rag_map_free(&m);
    c = rag_utf8_clean("plain", 5, &n, &m, &rep);
    CHECK(c && rep == 0 && m.n == 0 && !strcmp(c, "plain"), "valid text unchanged, identity map");
    free(c);
    /* overlong, surrogate and out-of-range forms are invalid */
    const char *forms[] = {"\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe0\x80\xaf"};
    for (int i = 0; i < 4; i++) {
        c = rag_utf8_clean(forms[i], strlen(forms[i]), &n, NULL, &rep);
        CHECK(c && rep == strlen(forms[i]), "invalid form %d: %zu replaced", i, rep);
        free(c);
    }

    const char html[] = "<html><head><title>T</title><style>p{x:1}</style>"
                        "<script>var a = '<p>no</p>';</script></head>\n"
                        "<body><h1>Head&amp;line</h1><p>One &lt;two&gt; &#233;&#x263A; <b>bold</b>"
                        "</p><!-- hidden comment --><p>Find tomatillo here</p></body></html>";
    char *t = rag_html_strip(html, sizeof html - 1, &n, &m);
    CHECK(t && strstr(t, "Head&line") && strstr(t, "One <two> \xc3\xa9\xe2\x98\xba bold") &&
              !strstr(t, "no</p>") && !strstr(t, "var a") && !strstr(t, "hidden") &&
              !strstr(t, "p{x"),
          "html strip: '%s'", t ? t : "");
    CHECK(t && strstr(t, "line\n\nOne"), "block elements become a paragraph break: '%s'",
          t ? t : "");
    const char *w = t ? strstr(t, "tomatillo") : NULL;
    CHECK(w && rag_map_apply(&m, (size_t)(w - t)) == (size_t)(strstr(html, "tomatillo") - html),
          "html map: word maps back to its source offset");
    free(t);
    rag_map_free(&m);
    /* unterminated constructs end at the end of the input */
    const char *cut[] = {"<p", "<!-- x", "<script>abc", "&#x1234567890;", "a <b c='>"};
    for (int i = 0; i < 5; i++) {
        t = rag_html_strip(cut[i], strlen(cut[i]), &n, NULL);
        CHECK(t != NULL && n <= strlen(cut[i]), "truncated html %d", i);
        free(t);
    }
}

static void test_fts_query(void) {
    char *q = rag_fts_query("foo-bar: \"baz\" NEAR(x) AND* ^col:y", 34);
    CHECK(q && !strcmp(q, "\"foo\" OR \"bar\" OR \"baz\" OR \"NEAR\" OR \"x\" OR \"col\" OR \"y\""),
          "fts escaping: %s", q ? q : "");
    free(q);
    q = rag_fts_query("what is the ternary weight?", 27);
    CHECK(q && !strcmp(q, "\"ternary\" OR \"weight\""), "stopwords dropped: %s", q ? q : "");
    free(q);
    q = rag_fts_query("the", 3);
    CHECK(q && !strcmp(q, "\"the\""), "stopwords kept when alone: %s", q ? q : "");
    free(q);
    q = rag_fts_query("-- :: \"\"", 8);
    CHECK(q && !*q, "punctuation only gives an empty query");
    free(q);
}

static rag_text text_of(const char *s) {
    rag_text t;
    memset(&t, 0, sizeof t);
    t.len = strlen(s);
    t.text = strdup(s);
    t.src_len = t.len;
    size_t n = 0;
    for (size_t i = 0; i < t.len; i++) n += s[i] == '\n';
    t.nl = malloc((n + 1) * sizeof *t.nl);
    for (size_t i = 0; i < t.len; i++)
        if (s[i] == '\n') t.nl[t.n_nl++] = i;
    return t;
}

static void test_chunker(void) {
    char *p = prose(20000, 7);
    rag_text t = text_of(p);
    rag_chunk_opts o;
    rag_chunk_defaults(&o);
    o.tokens = 200;
    o.overlap = 30;
    rag_chunk *c;
    int n;
    rtr_err e = {0};
    CHECK(!rag_chunk_text(&t, &o, &c, &n, &e) && n > 20, "chunker: %d chunks", n);
    int sizes_ok = 1, overlap_ok = 1, cover_ok = 1, ends_ok = 0, lines_ok = 1;
    size_t covered = 0;
    for (int i = 0; i < n; i++) {
        size_t len = c[i].end - c[i].start;
        if (len > 200 * 4 || len < 50 * 4) sizes_ok = 0;
        if (i && c[i].start >= c[i - 1].end) overlap_ok = 0;
        if (c[i].start > covered + 2) cover_ok = 0; /* at most whitespace between chunks */
        covered = c[i].end;
        char last = t.text[c[i].end - 1];
        ends_ok += last == '.';
        int ls = 1;
        for (size_t k = 0; k < c[i].start; k++) ls += t.text[k] == '\n';
        if (ls != c[i].line_start || (int64_t)c[i].start != c[i].byte_start) lines_ok = 0;
    }
    CHECK(sizes_ok, "every chunk between half and the whole token target");
    CHECK(overlap_ok, "neighbouring chunks overlap");
    CHECK(cover_ok && covered + 2 >= t.len, "chunks cover the text");
    CHECK(ends_ok == n, "chunks end at sentence ends (%d of %d)", ends_ok, n);
    CHECK(lines_ok, "line and byte ranges match the text");
    free(c);
    rag_text_free(&t);
    free(p);

    /* one enormous word-free line still splits, at character boundaries */
    size_t big = 50000;
    char *s = malloc(big + 1);
    for (size_t i = 0; i < big; i += 2) memcpy(s + i, "\xc3\xa9", 2);
    s[big] = 0;
    t = text_of(s);
    o.overlap = 0;
    CHECK(!rag_chunk_text(&t, &o, &c, &n, &e) && (size_t)n >= big / 800, "a 50 kB line: %d chunks",
          n);
    int bound = 1;
    for (int i = 0; i < n; i++) bound &= ((unsigned char)t.text[c[i].start] & 0xC0) != 0x80;
    CHECK(bound, "cuts fall on character boundaries");
    free(c);
    rag_text_free(&t);
    free(s);

    t = text_of(" \n\n\t ");
    CHECK(!rag_chunk_text(&t, &o, &c, &n, &e) && n == 0, "whitespace gives no chunks");
    free(c);
    rag_text_free(&t);
}

static void test_scan(void) {
    /* int8 scan against float cosine, for a dim the kernels take as is and one that is padded */
    int dims[2] = {128, 40};
    for (int di = 0; di < 2; di++) {
        int d = dims[di], n = 300;
        size_t dp = (size_t)(d + 63) / 64 * 64;
        float *v = malloc((size_t)n * d * sizeof *v), q[128], sc[300], out[300];
        int8_t *codes = calloc((size_t)n, dp), qc[128] = {0};
        unsigned seed = 1;
        for (int i = 0; i < n * d; i++) {
            seed = seed * 1664525u + 1013904223u;
            v[i] = (float)((seed >> 8) & 0xffff) / 32768.0f - 1;
        }
        for (int i = 0; i < n; i++) {
            double ss = 0;
            for (int j = 0; j < d; j++) ss += (double)v[i * d + j] * v[i * d + j];
            for (int j = 0; j < d; j++) v[i * d + j] /= (float)sqrt(ss);
            sc[i] = rag_quant_i8(v + i * d, d, codes + i * dp);
        }
        memcpy(q, v + 17 * d, (size_t)d * sizeof *q);
        float qs = rag_quant_i8(q, d, qc);
        rag_scan_i8(codes, sc, n, d, qc, qs, out);
        double maxerr = 0;
        int best = 0;
        for (int i = 0; i < n; i++) {
            double dot = 0;
            for (int j = 0; j < d; j++) dot += (double)v[i * d + j] * q[j];
            if (fabs(dot - out[i]) > maxerr) maxerr = fabs(dot - out[i]);
            if (out[i] > out[best]) best = i;
        }
        CHECK(maxerr < 0.02 && best == 17, "scan dim %d: max error %.4f, best %d", d, maxerr, best);
        free(v);
        free(codes);
    }
}

/* Random bytes (biased towards markup and UTF-8 lead bytes) through every text stage. */
static void test_random_input(void) {
    static const char alphabet[] = "<>/&;#x!-'\" \n\t.?abcpscriptyle\xc3\xa9\xe2\xf0\x80\xbf\xff";
    unsigned seed = 12345;
    int ok = 1;
    for (int round = 0; round < 300 && ok; round++) {
        size_t n = (size_t)(seed % 3000);
        char *b = malloc(n + 1);
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            b[i] = (seed >> 20) % 4 ? alphabet[(seed >> 8) % (sizeof alphabet - 1)]
                                    : (char)(seed >> 12);
        }
        size_t hl, cl, rep;
        rag_map m1 = {0}, m2 = {0};
        char *h = rag_html_strip(b, n, &hl, &m1);
        char *c = h ? rag_utf8_clean(h, hl, &cl, &m2, &rep) : NULL;
        if (!h || !c || hl > n) {
            ok = 0;
            break;
        }
        rag_text t = {.text = c, .len = cl, .map1 = m1, .map2 = m2, .src_len = n};
        rag_chunk_opts o;
        rag_chunk_defaults(&o);
        o.tokens = 16 + (int)(seed % 64);
        o.overlap = (int)(seed % 8);
        rag_chunk *ch;
        int nc;
        rtr_err e = {0};
        if (rag_chunk_text(&t, &o, &ch, &nc, &e)) ok = 0;
        for (int i = 0; i < nc && ok; i++)
            ok = ch[i].start < ch[i].end && ch[i].end <= cl && ch[i].byte_start <= ch[i].byte_end &&
                ch[i].byte_end <= (int64_t)n;
        size_t z;
        char *v = rag_utf8_clean(c, cl, &z, NULL, &rep);
        ok = ok && v && rep == 0 && z == cl; /* the output is valid UTF-8 */
        free(v);
        free(ch);
        free(h);
        rag_text_free(&t);
        free(b);
    }
    CHECK(ok, "random input through HTML stripping, UTF-8 cleaning and chunking");
}

/* ==== the generated folder ==== */

static void make_folder(void) {
    char *a = prose(6000, 1), *b = prose(5000, 2), *c = prose(4000, 3);
    put_str("a.md", a);
    /* the rare phrase sits in the middle of b.txt */
    char *bb = malloc(strlen(b) + 200);
    size_t h = strlen(b) / 2;
    while (b[h] != ' ') h++;
    sprintf(bb, "%.*s The %s was sampled at dawn. %s", (int)h, b, RARE, b + h + 1);
    put_str("sub/b.txt", bb);
    put_str("sub/deep/c.c", "/* c.c */\nint main(void) {\n    return 0; /* quokka wombat */\n}\n");
    put_str("page.html",
            "<html><body><h1>Orchard</h1><p>The orchard &amp; the tamarind harbor.</p>"
            "<script>var hidden = 'scriptword';</script></body></html>");
    put_file("blob.dat", "\x00\x01\x02\x03", 4); /* binary by name */
    put_file("noext", "text\x00with nul bytes\n", 19); /* binary by content */
    char *huge = prose(100 << 10, 9); /* over the 64 KiB limit */
    put_str("huge.txt", huge);
    put_str(".hidden/secret.md", "secret hidden words\n");
    put_str(".git/config", "[core]\n");
    put_str("latin1.txt", "caf\xe9 cr\xe8me br\xfbl\xe9\xe9 and more text about the harbor.\n");
    put_str("sub/d.txt", c);
    char lp[512], op[512];
    snprintf(lp, sizeof lp, "%s/sub/deep/loop", root);
    CHECK(!symlink("../..", lp), "symlink loop made"); /* -> root: a loop */
    snprintf(lp, sizeof lp, "%s/outside", root);
    snprintf(op, sizeof op, "%s", dbdir);
    CHECK(!symlink(op, lp), "symlink out of the root made"); /* -> outside the root */
    snprintf(lp, sizeof lp, "%s/alias.md", root);
    CHECK(!symlink("a.md", lp), "symlink to a file made"); /* a second name for a.md */
    snprintf(lp, sizeof lp, "%s/dangling", root);
    CHECK(!symlink("nowhere", lp), "dangling symlink made");
    put_str("../rag-db/outside.txt", "words outside the root\n");
    free(a);
    free(b);
    free(bb);
    free(c);
    free(huge);
}

static void test_index(void) {
    char db[300], db2[300];
    snprintf(db, sizeof db, "%s/i.sqlite", dbdir);
    snprintf(db2, sizeof db2, "%s/fresh.sqlite", dbdir);
    rag_index_stats st;
    rtr_err e = {0};

    /* first run, BM25 only */
    int rc = run_index(db, NULL, NULL, &st, &e);
    CHECK(rc == 0, "index: %s", e.msg);
    CHECK(st.indexed == 6, "6 files indexed (a b c d page latin1), got %llu",
          (unsigned long long)st.indexed);
    CHECK(st.skipped[RAG_SKIP_BINARY] == 2, "2 binary skipped, got %llu",
          (unsigned long long)st.skipped[RAG_SKIP_BINARY]);
    CHECK(st.skipped[RAG_SKIP_LARGE] == 1, "1 huge skipped");
    CHECK(st.skipped[RAG_SKIP_HIDDEN] == 2, "2 hidden skipped, got %llu",
          (unsigned long long)st.skipped[RAG_SKIP_HIDDEN]);
    CHECK(st.skipped[RAG_SKIP_OUTSIDE] == 2,
          "link out of the root and dangling link skipped, got %llu",
          (unsigned long long)st.skipped[RAG_SKIP_OUTSIDE]);
    CHECK(st.skipped[RAG_SKIP_DUP] == 2, "loop and alias visited once, got %llu",
          (unsigned long long)st.skipped[RAG_SKIP_DUP]);
    CHECK(st.replaced == 1, "latin1.txt had invalid UTF-8 replaced");
    CHECK(db_ok(db), "integrity after the first run");
    CHECK(count(db, "SELECT count(*) FROM chunks WHERE text LIKE '%scriptword%'") == 0,
          "script text stripped");
    CHECK(count(db, "SELECT count(*) FROM chunks WHERE text LIKE '%caf\xEF\xBF\xBD cr%'") == 1,
          "U+FFFD stored");
    CHECK(count(db, "SELECT count(*) FROM vecs") == 0, "no vectors without a model");
    CHECK(rank_of(db, RARE, 0, "sub/b.txt") == 1, "rare phrase: b.txt first with BM25 alone");
    CHECK(rank_of(db, "Where was the " RARE " sampled? -x: \"y\"", 0, "sub/b.txt") == 1,
          "question with FTS syntax characters still finds b.txt");
    CHECK(rank_of(db, "quokka", 0, "c.c") == 1, "code file searchable");

    /* unchanged rerun, then a touched file (same content) */
    rc = run_index(db, NULL, NULL, &st, &e);
    CHECK(rc == 0 && st.indexed == 0 && st.unchanged == 6 && st.removed == 0,
          "second run: nothing to do");
    struct timespec ts[2] = {{0, UTIME_OMIT}, {1000000, 0}};
    utimensat(AT_FDCWD, path_in("a.md"), ts, 0);
    rc = run_index(db, NULL, NULL, &st, &e);
    CHECK(rc == 0 && st.indexed == 0 && st.unchanged == 6,
          "touched file: same hash, not re-chunked");
    rc = run_index(db, NULL, NULL, &st, &e);
    CHECK(rc == 0 && st.indexed == 0, "touched file: new mtime recorded");

    /* a changed file */
    int64_t before = count(db, "SELECT count(*) FROM chunks");
    put_str("sub/d.txt", "Completely new content about a saxophone.\n");
    rc = run_index(db, NULL, NULL, &st, &e);
    CHECK(rc == 0 && st.indexed == 1 && st.unchanged == 5, "changed file re-indexed");
    CHECK(rank_of(db, "saxophone", 0, "sub/d.txt") == 1, "new content found");
    CHECK(count(db,
                "SELECT count(*) FROM chunks c JOIN docs d ON d.id = c.doc_id "
                "WHERE d.path LIKE '%/d.txt'") == 1,
          "old chunks of the changed file gone");
    CHECK(count(db, "SELECT count(*) FROM chunks") < before, "chunk count shrank");

    /* a deleted file */
    unlink(path_in("sub/d.txt"));
    rc = run_index(db, NULL, NULL, &st, &e);
    CHECK(rc == 0 && st.removed == 1, "deleted file removed");
    CHECK(rank_of(db, "saxophone", 0, "sub/d.txt") == 0, "deleted file no longer found");
    CHECK(count(db, "SELECT count(*) FROM docs") == 5, "5 documents left");
    CHECK(db_ok(db), "integrity after the incremental runs");

    /* a model appears: everything embedded; the same model again: nothing; another: again */
    rc = run_index(db, "test-model-a", NULL, &st, &e);
    CHECK(rc == 0 && st.wiped && st.indexed == 5, "model added: all re-indexed (%s)", e.msg);
    CHECK(count(db, "SELECT sum(n) FROM vecs") == count(db, "SELECT count(*) FROM chunks"),
          "a vector per chunk");
    rc = run_index(db, "test-model-a", NULL, &st, &e);
    CHECK(rc == 0 && !st.wiped && st.indexed == 0, "same model: nothing re-embedded");
    rc = run_index(db, "test-model-b", NULL, &st, &e);
    CHECK(rc == 0 && st.wiped && st.indexed == 5, "different model: clean re-embed");
    CHECK(rank_of(db, RARE, 1, "sub/b.txt") == 1, "rare phrase: b.txt first in hybrid mode");
    CHECK(rank_of(db, "the tamarind orchard", 1, "page.html") == 1,
          "html page found in hybrid mode");

    /* a second writer is refused; readers work during a write */
    rag_db *w1, *w2, *r;
    CHECK(!rag_db_open(&w1, db, RAG_DB_WRITE, &e), "writer opens");
    rtr_err e2 = {0};
    rc = rag_db_open(&w2, db, RAG_DB_WRITE, &e2);
    CHECK(rc == RTR_EIO && strstr(e2.msg, "another process"), "second writer refused: %s", e2.msg);
    if (!rc) rag_db_close(w2);
    CHECK(!sqlite3_exec(rag_db_sqlite(w1), "BEGIN IMMEDIATE; DELETE FROM vecs;", NULL, NULL, NULL),
          "write in flight");
    CHECK(!rag_db_open(&r, db, RAG_DB_READ, &e), "reader opens during the write");
    CHECK(rank_of(db, RARE, 1, "sub/b.txt") == 1, "reader sees the last committed state");
    rag_db_close(r);
    sqlite3_exec(rag_db_sqlite(w1), "ROLLBACK", NULL, NULL, NULL);
    rag_db_close(w1);

    /* a file changing right after it is read: indexed as read, read again next run */
    put_str("sub/e.txt", "Original text of e about a violin.\n");
    hooks hk = {0};
    hk.change = path_in("sub/e.txt");
    rc = run_index(db, "test-model-b", &hk, &st, &e);
    CHECK(rc == 0 && hk.changed && st.indexed == 1, "file changed during indexing: run completes");
    rc = run_index(db, "test-model-b", NULL, &st, &e);
    CHECK(rc == 0 && st.indexed == 1, "the changed file is indexed again on the next run");
    CHECK(rank_of(db, "xylophonic dirigible", 0, "sub/e.txt") == 1, "its new text is found");

    /* kill -9 at several points, then rerun: consistent, and the same as a fresh index */
    put_str("sub/f.txt", "Another file about a trombone and a piano.\n");
    put_str("sub/g.md", "# G\n\nA file about a cello.\n");
    unlink(path_in("sub/e.txt"));
    rc = run_index(db2, "test-model-b", NULL, &st, &e);
    CHECK(rc == 0, "fresh index: %s", e.msg);
    char *want = dump(db2);
    int kills[][2] = {{1, 0}, {3, 0}, {0, 2}, {0, 9}};
    for (int k = 0; k < 4; k++) {
        /* a different model each round, so every round re-embeds everything */
        char id[32];
        snprintf(id, sizeof id, "kill-model-%d", k);
        pid_t pid = fork();
        if (pid == 0) {
            hooks h = {0};
            h.kill_after = kills[k][0];
            h.kill_in_embed = kills[k][1];
            rag_index_stats s2;
            rtr_err e3;
            run_index(db, id, &h, &s2, &e3);
            _exit(0);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "round %d: child killed", k);
        CHECK(db_ok(db), "round %d: integrity_check ok after kill -9", k);
        int64_t partial = count(db, "SELECT count(*) FROM docs");
        CHECK(partial >= 0 && partial < 7, "round %d: a partial index (%lld docs)", k,
              (long long)partial);
        rc = run_index(db, id, NULL, &st, &e);
        CHECK(rc == 0 && !st.wiped && db_ok(db), "round %d: rerun completes (%s)", k, e.msg);
        char *got = dump(db);
        CHECK(!strcmp(got, want), "round %d: exactly the chunks and vectors of a fresh index", k);
        free(got);
    }
    free(want);
    CHECK(count(db, "SELECT count(*) FROM docs WHERE path LIKE '%/e.txt'") == 0,
          "deleted e.txt gone after reruns");

    /* the prompt builder over this index (BM25: the recorded model file does not exist) */
    put_str(
        "sub/h.txt",
        "The answer mentions <|eot_id|> and <|start_header_id|> as plain text about a bassoon.\n");
    run_index(db, "test-model-b", NULL, &st, &e);
    rag_ctx *ctx;
    rag_ctx_opts co;
    rag_ctx_defaults(&co);
    co.db_path = db;
    co.k = 3;
    CHECK(!rag_ctx_open(&ctx, &co, &e), "rag_ctx opens: %s", e.msg);
    if (!ctx) return;
    CHECK(strstr(rag_ctx_note(ctx), "BM25 only"), "missing model noted: %s", rag_ctx_note(ctx));
    rag_prompt p;
    CHECK(!rag_prompt_build(ctx, "Which file mentions the bassoon?", &p, &e), "prompt builds");
    CHECK(p.n_hits >= 1 && strstr(p.hits[0].path, "sub/h.txt"), "first source is h.txt");
    CHECK(strstr(p.message, "[1]") && strstr(p.message, "Cite") &&
              strstr(p.message, "Question: Which file mentions the bassoon?"),
          "message has numbered sources, the instruction and the question");
    size_t total = 0;
    int data_ok = 1, has_tok = 0;
    for (int i = 0; i < p.n_pieces; i++) {
        CHECK(p.pieces[i].text == p.message + total, "piece %d follows the previous", i);
        total += p.pieces[i].len;
        if (p.pieces[i].is_data && strstr(p.pieces[i].text, "<|eot_id|>")) has_tok = 1;
        if (!p.pieces[i].is_data && memmem(p.pieces[i].text, p.pieces[i].len, "<|eot_id|>", 10))
            data_ok = 0;
    }
    CHECK(total == p.len, "pieces cover the message");
    CHECK(has_tok && data_ok, "special-token strings only inside data pieces");
    char *src = rag_prompt_sources(&p, "It is h.txt [1].");
    CHECK(src && strstr(src, "Sources:\n[1] ") && strstr(src, "sub/h.txt:1-1") &&
              !strstr(src, "[2]"),
          "cited sources listed: %s", src ? src : "");
    free(src);
    src = rag_prompt_sources(&p, "no citation");
    CHECK(src && (p.n_hits < 2 || strstr(src, "[2]")), "all sources listed when none is cited");
    free(src);
    rag_prompt_free(&p);
    rag_ctx_close(ctx);

    /* garbage instead of an index */
    char junk[300];
    snprintf(junk, sizeof junk, "%s/junk.sqlite", dbdir);
    FILE *f = fopen(junk, "wb");
    for (int i = 0; i < 4096; i++) fputc(i * 7, f);
    fclose(f);
    rag_db *jd;
    rc = rag_db_open(&jd, junk, RAG_DB_READ, &e);
    CHECK(rc == RTR_EFORMAT && strstr(e.msg, "not a rotor index"), "junk file refused: %s", e.msg);
    rc = rag_db_open(&jd, junk, RAG_DB_WRITE, &e);
    CHECK(rc == RTR_EFORMAT, "junk file refused for writing: %s", e.msg);
}

int main(void) {
    char base[] = "/tmp/rotor-rag.XXXXXX";
    if (!mkdtemp(base)) {
        perror("mkdtemp");
        return 2;
    }
    snprintf(root, sizeof root, "%s/docs", base);
    snprintf(dbdir, sizeof dbdir, "%s/rag-db", base);
    mkdir(root, 0755);
    mkdir(dbdir, 0755);
    test_utf8_html();
    test_fts_query();
    test_chunker();
    test_scan();
    test_random_input();
    make_folder();
    test_index();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", base);
    return test_done("test_rag");
}
