/* rag_walk.c: the file side of rag-index: walking folders (hidden entries, binaries, huge files
 * and links out of the root skipped; loops ended by device+inode), reading one file as text
 * (binary sniffing, a content hash, invalid UTF-8 replaced by U+FFFD) and stripping HTML.
 * Every derived text keeps a map back to file offsets so chunks can cite lines of the file.
 * Library code: errors through rtr_err, nothing printed.
 */
#include "rag_walk.h"
#include "../models/format.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_MAX_BYTES (16ull << 20)
#define MAX_DEPTH 128

const char *rag_skip_name(int why) {
    static const char *const names[RAG_SKIP_N] = {
        "hidden", "binary", "too large", "outside root", "duplicate", "special", "unreadable"};
    return why >= 0 && why < RAG_SKIP_N ? names[why] : "?";
}

const char *rag_kind_name(int kind) {
    static const char *const names[] = {"text", "markdown", "code", "html"};
    return kind >= 0 && kind <= RAG_KIND_HTML ? names[kind] : "text";
}

/* ==== offset maps ==== */

void rag_map_free(rag_map *m) {
    free(m->out);
    free(m->src);
    memset(m, 0, sizeof *m);
}

/* Records that out offset o corresponds to src offset s, unless the current segment already
 * says so. Returns 0 or -1 on OOM. */
static int map_mark(rag_map *m, size_t o, size_t s) {
    if (m->n) {
        size_t i = m->n - 1;
        if (o >= m->out[i] && m->src[i] + (o - m->out[i]) == s) return 0;
        if (m->out[i] == o) {
            m->src[i] = s;
            return 0;
        }
    } else if (o == s) {
        return 0;
    }
    if (m->n + 2 > m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        size_t *a = realloc(m->out, cap * sizeof *a);
        if (!a) return -1;
        m->out = a;
        size_t *b = realloc(m->src, cap * sizeof *b);
        if (!b) return -1;
        m->src = b;
        m->cap = cap;
    }
    if (!m->n && o) {
        m->out[0] = 0;
        m->src[0] = 0;
        m->n = 1;
    } /* the identity before o */
    m->out[m->n] = o;
    m->src[m->n] = s;
    m->n++;
    return 0;
}

size_t rag_map_apply(const rag_map *m, size_t o) {
    if (!m->n || o < m->out[0]) return o;
    size_t lo = 0, hi = m->n; /* largest i with out[i] <= o */
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (m->out[mid] <= o)
            lo = mid;
        else
            hi = mid;
    }
    size_t s = m->src[lo] + (o - m->out[lo]);
    if (lo + 1 < m->n && s > m->src[lo + 1]) s = m->src[lo + 1];
    return s;
}

/* ==== UTF-8 ==== */

/* Length of the valid UTF-8 sequence at p (at most n bytes), or 0 if it is invalid. */
static int utf8_len(const unsigned char *p, size_t n) {
    unsigned c = p[0];
    if (c < 0x80) return 1;
    int len;
    unsigned min;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        min = 0x10000;
    } else
        return 0;
    if ((size_t)len > n) return 0;
    unsigned cp = c & (0x7F >> len);
    for (int i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

/* Length of the longest prefix at p that could start a valid sequence (>= 1): the bytes one
 * U+FFFD replaces ("maximal subpart", as the Unicode standard recommends). */
static int bad_len(const unsigned char *p, size_t n) {
    unsigned c = p[0];
    int len = c >= 0xC2 && c <= 0xDF ? 2
        : c >= 0xE0 && c <= 0xEF     ? 3
        : c >= 0xF0 && c <= 0xF4     ? 4
                                     : 1;
    unsigned lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80;
    unsigned hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
    int k = 1;
    for (; k < len && (size_t)k < n; k++) {
        unsigned b = p[k];
        if (k == 1 ? (b < lo || b > hi) : (b & 0xC0) != 0x80) break;
    }
    return k;
}

char *rag_utf8_clean(const char *s, size_t len, size_t *out_len, rag_map *map, size_t *n_replaced) {
    const unsigned char *p = (const unsigned char *)s;
    size_t bad = 0;
    for (size_t i = 0; i < len;) {
        int l = utf8_len(p + i, len - i);
        if (l)
            i += (size_t)l;
        else {
            bad++;
            i += (size_t)bad_len(p + i, len - i);
        }
    }
    if (len > (SIZE_MAX - 1) / 3) return NULL;
    char *o = malloc(len + 2 * bad + 1);
    if (!o) return NULL;
    size_t w = 0;
    for (size_t i = 0; i < len;) {
        int l = utf8_len(p + i, len - i);
        if (l) {
            memcpy(o + w, p + i, (size_t)l);
            w += (size_t)l;
            i += (size_t)l;
            continue;
        }
        if (map && map_mark(map, w, i)) {
            free(o);
            return NULL;
        }
        memcpy(o + w, "\xEF\xBF\xBD", 3);
        w += 3;
        i += (size_t)bad_len(p + i, len - i);
        if (map && map_mark(map, w, i)) {
            free(o);
            return NULL;
        }
    }
    o[w] = 0;
    *out_len = w;
    if (n_replaced) *n_replaced = bad;
    return o;
}

/* ==== HTML ==== */

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }
static int is_alpha(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int is_alnum(int c) { return is_alpha(c) || (c >= '0' && c <= '9'); }

/* Case-insensitive: does s[0..n) start with word w? */
static int starts_ci(const char *s, size_t n, const char *w) {
    size_t k = strlen(w);
    if (n < k) return 0;
    for (size_t i = 0; i < k; i++)
        if (lower((unsigned char)s[i]) != w[i]) return 0;
    return 1;
}

static size_t put_utf8(char *o, unsigned cp) {
    if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) cp = 0xFFFD;
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 63));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 63));
        o[2] = (char)(0x80 | (cp & 63));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18);
    o[1] = (char)(0x80 | (cp >> 12 & 63));
    o[2] = (char)(0x80 | (cp >> 6 & 63));
    o[3] = (char)(0x80 | (cp & 63));
    return 4;
}

/* Decodes the entity at s[0] == '&'; returns the bytes consumed (0: not an entity) and writes at
 * most 4 bytes to o (*w their count). */
static size_t entity(const char *s, size_t n, char *o, size_t *w) {
    static const struct {
        const char *name;
        unsigned cp;
    } named[] = {
        {"amp", '&'},       {"lt", '<'},       {"gt", '>'},       {"quot", '"'},
        {"apos", '\''},     {"nbsp", ' '},     {"mdash", 0x2014}, {"ndash", 0x2013},
        {"hellip", 0x2026}, {"copy", 0xA9},    {"reg", 0xAE},     {"lsquo", 0x2018},
        {"rsquo", 0x2019},  {"ldquo", 0x201C}, {"rdquo", 0x201D}, {"laquo", 0xAB},
        {"raquo", 0xBB},    {"middot", 0xB7},  {"times", 0xD7},   {"deg", 0xB0},
    };
    size_t e = 1;
    while (e < n && e < 12 && s[e] != ';' && (is_alnum((unsigned char)s[e]) || s[e] == '#')) e++;
    if (e >= n || s[e] != ';' || e == 1) return 0;
    if (s[1] == '#') {
        unsigned long cp = 0;
        size_t i = 2;
        int hex = i < e && (s[i] == 'x' || s[i] == 'X');
        if (hex) i++;
        if (i == e) return 0;
        for (; i < e; i++) {
            int c = lower((unsigned char)s[i]), d;
            if (c >= '0' && c <= '9')
                d = c - '0';
            else if (hex && c >= 'a' && c <= 'f')
                d = c - 'a' + 10;
            else
                return 0;
            cp = cp * (hex ? 16 : 10) + (unsigned long)d;
            if (cp > 0x10FFFF) cp = 0x110000; /* stays invalid, no overflow */
        }
        *w = put_utf8(o, (unsigned)cp);
        return e + 1;
    }
    for (size_t k = 0; k < sizeof named / sizeof named[0]; k++)
        if (strlen(named[k].name) == e - 1 && !memcmp(s + 1, named[k].name, e - 1)) {
            *w = put_utf8(o, named[k].cp);
            return e + 1;
        }
    return 0;
}

/* 2: a block element (paragraph break), 1: a line break element, 0: inline. */
static int tag_break(const char *name, size_t n) {
    static const char *const para[] = {
        "p",     "div",     "h1",      "h2",     "h3",     "h4",   "h5",
        "h6",    "section", "article", "header", "footer", "pre",  "blockquote",
        "table", "ul",      "ol",      "dl",     "title",  "nav",  "main",
        "aside", "figure",  "form",    "hr",     "body",   "html", "head"};
    static const char *const line[] = {"br", "li", "tr", "dt", "dd", "td", "th", "option"};
    char low[16];
    if (n >= sizeof low) return 0;
    for (size_t i = 0; i < n; i++) low[i] = (char)lower((unsigned char)name[i]);
    low[n] = 0;
    for (size_t i = 0; i < sizeof para / sizeof para[0]; i++)
        if (!strcmp(low, para[i])) return 2;
    for (size_t i = 0; i < sizeof line / sizeof line[0]; i++)
        if (!strcmp(low, line[i])) return 1;
    return 0;
}

/* Index just past the end of a tag starting at s[i] == '<' (quotes in attributes respected). */
static size_t tag_end(const char *s, size_t n, size_t i) {
    char q = 0;
    for (i++; i < n; i++) {
        if (q) {
            if (s[i] == q) q = 0;
        } else if (s[i] == '"' || s[i] == '\'')
            q = s[i];
        else if (s[i] == '>')
            return i + 1;
    }
    return n;
}

/* Index of the case-insensitive needle at or after i, or n. */
static size_t find_ci(const char *s, size_t n, size_t i, const char *needle) {
    for (; i < n; i++)
        if (starts_ci(s + i, n - i, needle)) return i;
    return n;
}

char *rag_html_strip(const char *s, size_t len, size_t *out_len, rag_map *map) {
    /* output <= input: a tag that leaves n line breaks is at least n bytes, an entity is longer
     * than its text; 2 bytes of slack all the same */
    char *o = malloc(len + 3);
    if (!o) return NULL;
    size_t w = 0, i = 0;
    int nl_run = 2; /* newlines at the end of the output (start counts as a paragraph break) */
#define MARK()                                                                                     \
    do {                                                                                           \
        if (map && map_mark(map, w, i)) goto oom;                                                  \
    } while (0)
    while (i < len) {
        char c = s[i];
        if (c == '<' && i + 1 < len) {
            size_t rest = len - i;
            if (starts_ci(s + i, rest, "<!--")) {
                size_t e = i + 4;
                while (e < len && !(e + 2 < len && !memcmp(s + e, "-->", 3))) e++;
                i = e + 3 < len ? e + 3 : len;
                MARK();
                continue;
            }
            int nc = (unsigned char)s[i + 1];
            if (is_alpha(nc) || nc == '/' || nc == '!' || nc == '?') {
                size_t a = i + 1 + (nc == '/'), b = a;
                while (b < len && (is_alnum((unsigned char)s[b]) || s[b] == '-' || s[b] == ':'))
                    b++;
                int brk = tag_break(s + a, b - a);
                int skip_body = nc != '/' &&
                    ((b - a == 6 && starts_ci(s + a, b - a, "script")) ||
                     (b - a == 5 && starts_ci(s + a, b - a, "style")));
                i = tag_end(s, len, i);
                if (skip_body) {
                    size_t e = find_ci(s, len, i, b - a == 6 ? "</script" : "</style");
                    i = e < len ? tag_end(s, len, e) : len;
                }
                /* inline tags leave nothing; block tags leave up to a blank line */
                for (int k = nl_run; k < brk; k++) {
                    o[w++] = '\n';
                    nl_run++;
                }
                MARK();
                continue;
            }
        }
        if (c == '&') {
            char buf[4];
            size_t nb = 0, used = entity(s + i, len - i, buf, &nb);
            if (used && nb <= used) { /* decoded text is never longer than its entity */
                memcpy(o + w, buf, nb);
                w += nb;
                i += used;
                nl_run = 0;
                MARK();
                continue;
            }
        }
        o[w++] = c;
        i++;
        nl_run = c == '\n' ? nl_run + 1 : (c == ' ' || c == '\t' || c == '\r') ? nl_run : 0;
    }
#undef MARK
    o[w] = 0;
    *out_len = w;
    return o;
oom:
    free(o);
    return NULL;
}

/* ==== classification by name ==== */

static const char *ext_of(const char *name) {
    const char *d = strrchr(name, '.');
    return d && d != name ? d + 1 : "";
}

static int in_list(const char *ext, const char *const *list) {
    char low[16];
    size_t n = strlen(ext);
    if (!n || n >= sizeof low) return 0;
    for (size_t i = 0; i <= n; i++) low[i] = (char)lower((unsigned char)ext[i]);
    for (; *list; list++)
        if (!strcmp(low, *list)) return 1;
    return 0;
}

static int binary_name(const char *name) {
    static const char *const bin[] = {
        "png",    "jpg",     "jpeg",    "gif",   "bmp",   "ico",         "webp", "tif", "tiff",
        "psd",    "pdf",     "zip",     "gz",    "tgz",   "bz2",         "xz",   "zst", "7z",
        "rar",    "tar",     "jar",     "war",   "class", "o",           "a",    "so",  "dylib",
        "dll",    "exe",     "bin",     "dat",   "iso",   "img",         "dmg",  "deb", "rpm",
        "whl",    "pyc",     "pyo",     "mp3",   "mp4",   "wav",         "flac", "ogg", "m4a",
        "avi",    "mov",     "mkv",     "webm",  "woff",  "woff2",       "ttf",  "otf", "eot",
        "sqlite", "sqlite3", "db",      "rotor", "gguf",  "safetensors", "pt",   "pth", "onnx",
        "npy",    "npz",     "parquet", "xls",   "xlsx",  "doc",         "docx", "ppt", "pptx",
        "odt",    "ods",     "epub",    "wasm",  "lock",  NULL};
    return in_list(ext_of(name), bin);
}

static int kind_of(const char *name) {
    static const char *const md[] = {"md", "markdown", "mdx", "mkd", "rst", "org", "adoc", NULL};
    static const char *const html[] = {"html", "htm", "xhtml", NULL};
    static const char *const code[] = {
        "c",      "h",   "cc",    "cpp",  "cxx",  "hpp", "hh",     "m",     "mm",   "cs",
        "java",   "kt",  "scala", "go",   "rs",   "py",  "rb",     "php",   "pl",   "pm",
        "lua",    "js",  "mjs",   "cjs",  "ts",   "tsx", "jsx",    "sh",    "bash", "zsh",
        "fish",   "ps1", "swift", "zig",  "nim",  "hs",  "ml",     "mli",   "ex",   "exs",
        "erl",    "clj", "el",    "lisp", "scm",  "r",   "jl",     "dart",  "sql",  "glsl",
        "comp",   "cl",  "cu",    "asm",  "s",    "v",   "vhd",    "cmake", "mk",   "make",
        "gradle", "tf",  "proto", "css",  "scss", "vue", "svelte", NULL};
    const char *e = ext_of(name);
    if (in_list(e, md)) return RAG_KIND_MARKDOWN;
    if (in_list(e, html)) return RAG_KIND_HTML;
    if (in_list(e, code) || !strcmp(name, "Makefile") || !strcmp(name, "Dockerfile"))
        return RAG_KIND_CODE;
    return RAG_KIND_TEXT;
}

static int hidden_name(const char *name) {
    return name[0] == '.' || !strcmp(name, "node_modules") || !strcmp(name, "__pycache__");
}

/* ==== visited set: open addressing over (dev, ino) ==== */

struct rag_walk_set {
    uint64_t *dev, *ino; /* ino 0 marks an empty slot; real inodes are never 0 here */
    size_t n, cap;
};

rag_walk_set *rag_walk_set_new(void) { return calloc(1, sizeof(rag_walk_set)); }

void rag_walk_set_free(rag_walk_set *s) {
    if (!s) return;
    free(s->dev);
    free(s->ino);
    free(s);
}

static size_t slot_of(uint64_t dev, uint64_t ino, size_t cap) {
    uint64_t h = (dev * 0x9E3779B97F4A7C15ull) ^ (ino * 0xC2B2AE3D27D4EB4Full);
    return (size_t)(h ^ (h >> 29)) & (cap - 1);
}

/* 1 if (dev, ino) was already in the set, 0 if it was added now, -1 on OOM. */
static int set_add(rag_walk_set *s, uint64_t dev, uint64_t ino) {
    if (!ino) ino = ~0ull;
    if ((s->n + 1) * 2 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        uint64_t *d = calloc(cap, 8), *in = calloc(cap, 8);
        if (!d || !in) {
            free(d);
            free(in);
            return -1;
        }
        for (size_t i = 0; i < s->cap; i++) {
            if (!s->ino[i]) continue;
            size_t j = slot_of(s->dev[i], s->ino[i], cap);
            while (in[j]) j = (j + 1) & (cap - 1);
            d[j] = s->dev[i];
            in[j] = s->ino[i];
        }
        free(s->dev);
        free(s->ino);
        s->dev = d;
        s->ino = in;
        s->cap = cap;
    }
    size_t j = slot_of(dev, ino, s->cap);
    while (s->ino[j]) {
        if (s->dev[j] == dev && s->ino[j] == ino) return 1;
        j = (j + 1) & (s->cap - 1);
    }
    s->dev[j] = dev;
    s->ino[j] = ino;
    s->n++;
    return 0;
}

/* ==== the walk ==== */

typedef struct {
    const rag_walk_opts *o;
    uint64_t max_bytes;
    const char *root; /* real path of the root */
    size_t root_len;
    rag_walk_set *seen;
    rag_file **files;
    size_t *n, *cap;
    uint64_t *skipped;
    rtr_err *err;
} walk_ctx;

static int inside_root(const walk_ctx *w, const char *real) {
    if (w->root_len == 1) return real[0] == '/'; /* the root is "/" */
    return !strncmp(real, w->root, w->root_len) &&
        (real[w->root_len] == '/' || real[w->root_len] == 0);
}

static int excluded(const walk_ctx *w, const char *path) {
    if (!w->o || !w->o->n_exclude) return 0;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    for (int i = 0; i < w->o->n_exclude; i++) {
        const char *e = w->o->exclude[i], *eb = strrchr(e, '/');
        eb = eb ? eb + 1 : e;
        if (strcmp(base, eb)) continue;
        char real[PATH_MAX];
        if (realpath(path, real) && !strcmp(real, e)) return 1;
        if (!strcmp(path, e)) return 1;
    }
    return 0;
}

static int add_file(walk_ctx *w, const char *path, const struct stat *st, int kind) {
    if (*w->n == *w->cap) {
        size_t cap = *w->cap ? *w->cap * 2 : 256;
        rag_file *f = realloc(*w->files, cap * sizeof *f);
        if (!f) return rtr_seterr(w->err, RTR_ENOMEM, "out of memory listing files");
        *w->files = f;
        *w->cap = cap;
    }
    rag_file *f = &(*w->files)[*w->n];
    f->path = strdup(path);
    if (!f->path) return rtr_seterr(w->err, RTR_ENOMEM, "out of memory listing files");
    f->size = (int64_t)st->st_size;
    f->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
    f->kind = kind;
    (*w->n)++;
    return 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int walk_dir(walk_ctx *w, const char *dir, int depth);

/* One entry: path (link or not) whose own name is name. */
static int walk_entry(walk_ctx *w, const char *path, const char *name, int depth) {
    struct stat st;
    if (lstat(path, &st)) {
        w->skipped[RAG_SKIP_UNREADABLE]++;
        return 0;
    }
    if (S_ISLNK(st.st_mode)) {
        char real[PATH_MAX];
        if (!realpath(path, real) || !inside_root(w, real) || stat(real, &st)) {
            w->skipped[RAG_SKIP_OUTSIDE]++;
            return 0;
        }
        /* a link to a hidden place inside the root stays hidden */
        for (const char *p = real + w->root_len; *p; p++) {
            if (*p != '/') continue;
            char part[256];
            size_t n = strcspn(p + 1, "/");
            snprintf(part, sizeof part, "%.*s", (int)(n < sizeof part ? n : sizeof part - 1),
                     p + 1);
            if (hidden_name(part)) {
                w->skipped[RAG_SKIP_HIDDEN]++;
                return 0;
            }
        }
    }
    if (S_ISDIR(st.st_mode)) {
        int r = set_add(w->seen, (uint64_t)st.st_dev, (uint64_t)st.st_ino);
        if (r < 0) return rtr_seterr(w->err, RTR_ENOMEM, "out of memory walking %s", path);
        if (r) {
            w->skipped[RAG_SKIP_DUP]++;
            return 0;
        }
        if (depth >= MAX_DEPTH) {
            w->skipped[RAG_SKIP_UNREADABLE]++;
            return 0;
        }
        return walk_dir(w, path, depth + 1);
    }
    if (!S_ISREG(st.st_mode)) {
        w->skipped[RAG_SKIP_SPECIAL]++;
        return 0;
    }
    if (excluded(w, path)) return 0;
    if (binary_name(name)) {
        w->skipped[RAG_SKIP_BINARY]++;
        return 0;
    }
    if ((uint64_t)st.st_size > w->max_bytes) {
        w->skipped[RAG_SKIP_LARGE]++;
        return 0;
    }
    int r = set_add(w->seen, (uint64_t)st.st_dev, (uint64_t)st.st_ino);
    if (r < 0) return rtr_seterr(w->err, RTR_ENOMEM, "out of memory walking %s", path);
    if (r) {
        w->skipped[RAG_SKIP_DUP]++;
        return 0;
    }
    return add_file(w, path, &st, kind_of(name));
}

static int walk_dir(walk_ctx *w, const char *dir, int depth) {
    DIR *d = opendir(dir);
    if (!d) {
        w->skipped[RAG_SKIP_UNREADABLE]++;
        return 0;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (hidden_name(e->d_name)) {
            w->skipped[RAG_SKIP_HIDDEN]++;
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **nn = realloc(names, cap * sizeof *nn);
            if (!nn) {
                rc = rtr_seterr(w->err, RTR_ENOMEM, "out of memory reading %s", dir);
                break;
            }
            names = nn;
        }
        if (!(names[n] = strdup(e->d_name))) {
            rc = rtr_seterr(w->err, RTR_ENOMEM, "out of memory reading %s", dir);
            break;
        }
        n++;
    }
    closedir(d);
    if (!rc) qsort(names, n, sizeof *names, cmp_str);
    size_t dl = strlen(dir);
    for (size_t i = 0; i < n && !rc; i++) {
        size_t nl = strlen(names[i]);
        char *p = malloc(dl + nl + 2);
        if (!p) {
            rc = rtr_seterr(w->err, RTR_ENOMEM, "out of memory walking %s", dir);
            break;
        }
        memcpy(p, dir, dl);
        size_t k = dl;
        if (!k || p[k - 1] != '/') p[k++] = '/';
        memcpy(p + k, names[i], nl + 1);
        rc = walk_entry(w, p, names[i], depth);
        free(p);
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    return rc;
}

int rag_walk(const char *root, const rag_walk_opts *o, rag_walk_set *visited, rag_file **files,
             size_t *n, size_t *cap, uint64_t skipped[RAG_SKIP_N], rtr_err *err) {
    char real[PATH_MAX];
    if (!realpath(root, real)) return rtr_seterr(err, RTR_EIO, "%s: %s", root, strerror(errno));
    struct stat st;
    if (stat(real, &st)) return rtr_seterr(err, RTR_EIO, "%s: %s", root, strerror(errno));
    walk_ctx w = {o,       o && o->max_bytes ? o->max_bytes : DEFAULT_MAX_BYTES,
                  real,    strlen(real),
                  visited, files,
                  n,       cap,
                  skipped, err};
    if (S_ISDIR(st.st_mode)) {
        int r = set_add(visited, (uint64_t)st.st_dev, (uint64_t)st.st_ino);
        if (r < 0) return rtr_seterr(err, RTR_ENOMEM, "out of memory");
        if (r) return 0; /* the same folder given twice */
        if (access(real, R_OK | X_OK))
            return rtr_seterr(err, RTR_EIO, "%s: %s", root, strerror(errno));
        return walk_dir(&w, real, 0);
    }
    if (!S_ISREG(st.st_mode)) return rtr_seterr(err, RTR_EARG, "%s: not a folder or a file", root);
    const char *name = strrchr(real, '/');
    return walk_entry(&w, real, name ? name + 1 : real, 0);
}

void rag_files_free(rag_file *f, size_t n) {
    for (size_t i = 0; i < n; i++) free(f[i].path);
    free(f);
}

/* ==== reading one file ==== */

/* Looks binary: a NUL byte anywhere, or many control characters near the start. */
static int looks_binary(const unsigned char *p, size_t n) {
    if (memchr(p, 0, n)) return 1;
    size_t m = n < 8192 ? n : 8192, ctl = 0;
    for (size_t i = 0; i < m; i++)
        if (p[i] < 32 && p[i] != '\n' && p[i] != '\r' && p[i] != '\t' && p[i] != '\f' &&
            p[i] != '\v' && p[i] != 27)
            ctl++;
    return m && ctl * 10 > m;
}

/* Reads the whole of fd (at most limit + 1 bytes). Returns the buffer or NULL (errno set). */
static char *read_all(int fd, uint64_t limit, size_t hint, size_t *len) {
    size_t cap = hint + 1 > limit + 1 ? (size_t)limit + 1 : hint + 1, n = 0;
    if (cap < 4096) cap = 4096;
    char *b = malloc(cap + 1);
    if (!b) {
        errno = ENOMEM;
        return NULL;
    }
    for (;;) {
        if (n == cap) {
            if (cap > limit) break; /* already past the limit: the caller skips it */
            size_t nc = cap * 2 > limit + 1 ? (size_t)limit + 1 : cap * 2;
            char *nb = realloc(b, nc + 1);
            if (!nb) {
                free(b);
                errno = ENOMEM;
                return NULL;
            }
            b = nb;
            cap = nc;
        }
        ssize_t r = read(fd, b + n, cap - n);
        if (r < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            free(b);
            errno = e;
            return NULL;
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    b[n] = 0;
    *len = n;
    return b;
}

static int64_t mtime_ns(const struct stat *st) {
    return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

int rag_extract(const char *path, int kind, uint64_t max_bytes, rag_text *out, int64_t *size,
                int64_t *mtime, uint8_t hash[16], int *unstable, int *why, rtr_err *err) {
    memset(out, 0, sizeof *out);
    *unstable = 0;
    if (!max_bytes) max_bytes = DEFAULT_MAX_BYTES;
    char *raw = NULL;
    size_t len = 0;
    for (int attempt = 0;; attempt++) {
        int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0) {
            *why = RAG_SKIP_UNREADABLE;
            return 0;
        }
        struct stat a, b;
        if (fstat(fd, &a) || !S_ISREG(a.st_mode)) {
            close(fd);
            *why = S_ISREG(a.st_mode) ? RAG_SKIP_UNREADABLE : RAG_SKIP_SPECIAL;
            return 0;
        }
        if ((uint64_t)a.st_size > max_bytes) {
            close(fd);
            *why = RAG_SKIP_LARGE;
            return 0;
        }
        free(raw);
        raw = read_all(fd, max_bytes, (size_t)a.st_size, &len);
        int rerr = errno;
        int st_ok = raw && !fstat(fd, &b);
        close(fd);
        if (!raw) {
            if (rerr == ENOMEM) return rtr_seterr(err, RTR_ENOMEM, "%s: out of memory", path);
            *why = RAG_SKIP_UNREADABLE;
            return 0;
        }
        if (len > max_bytes) {
            free(raw);
            *why = RAG_SKIP_LARGE;
            return 0;
        }
        int same = st_ok && a.st_size == b.st_size && mtime_ns(&a) == mtime_ns(&b) &&
            (uint64_t)len == (uint64_t)b.st_size;
        *size = st_ok ? (int64_t)b.st_size : (int64_t)len;
        *mtime = st_ok ? mtime_ns(&b) : 0;
        if (same) break;
        if (attempt == 2) {
            *unstable = 1;
            break;
        }
    }
    if (looks_binary((const unsigned char *)raw, len)) {
        free(raw);
        *why = RAG_SKIP_BINARY;
        return 0;
    }
    uint64_t h0 = rtr_hash64(raw, len, 0), h1 = rtr_hash64(raw, len, 0x5bd1e9955bd1e995ull);
    memcpy(hash, &h0, 8);
    memcpy(hash + 8, &h1, 8);

    size_t nl = 0;
    for (const char *p = raw; (p = memchr(p, '\n', len - (size_t)(p - raw))); p++) nl++;
    out->nl = malloc((nl ? nl : 1) * sizeof *out->nl);
    if (!out->nl) goto oom;
    out->n_nl = 0;
    for (const char *p = raw; (p = memchr(p, '\n', len - (size_t)(p - raw))); p++)
        out->nl[out->n_nl++] = (size_t)(p - raw);

    const char *src = raw;
    size_t slen = len;
    char *stripped = NULL;
    if (kind == RAG_KIND_HTML) {
        stripped = rag_html_strip(raw, len, &slen, &out->map1);
        if (!stripped) goto oom;
        src = stripped;
    }
    out->src_len = len;
    out->text = rag_utf8_clean(src, slen, &out->len, &out->map2, &out->n_replaced);
    free(stripped);
    if (!out->text) goto oom;
    free(raw);
    return 1;
oom:
    free(raw);
    rag_text_free(out);
    return rtr_seterr(err, RTR_ENOMEM, "%s: out of memory", path);
}
