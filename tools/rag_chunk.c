/* rag_chunk.c: splits an extracted document into overlapping chunks for retrieval.
 *
 * The text is first cut into units that end at a boundary of some strength (paragraph > sentence
 * > line > word); units longer than a chunk are cut further at spaces or, failing that, at any
 * character. Units are then packed greedily up to the token target, and each chunk ends at the
 * strongest boundary that still leaves it at least half full. The next chunk starts that many
 * units back that their tokens fit the overlap. Offsets are bytes of the text; the caller's map
 * turns them into file offsets and lines.
 */
#include "rag_chunk.h"
#include "rag_walk.h"

#include <stdlib.h>
#include <string.h>

enum { B_NONE, B_WORD, B_LINE, B_SENTENCE, B_PARA };

typedef struct {
    size_t start, end;
    int tokens;
    int strength; /* of the boundary at its end */
} unit;

typedef struct {
    unit *u;
    size_t n, cap;
} units;

void rag_chunk_defaults(rag_chunk_opts *o) {
    memset(o, 0, sizeof *o);
    o->tokens = 400;
    o->overlap = 60;
}

void rag_text_free(rag_text *t) {
    free(t->text);
    free(t->nl);
    rag_map_free(&t->map1);
    rag_map_free(&t->map2);
    memset(t, 0, sizeof *t);
}

size_t rag_text_src(const rag_text *t, size_t o) {
    size_t s = rag_map_apply(&t->map1, rag_map_apply(&t->map2, o));
    return s > t->src_len ? t->src_len : s;
}

int rag_text_line(const rag_text *t, size_t src_off) {
    size_t lo = 0, hi = t->n_nl; /* newlines before src_off */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (t->nl[mid] < src_off)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (int)(lo + 1 > 0x7fffffff ? 0x7fffffff : lo + 1);
}

static int is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static int count(const rag_chunk_opts *o, const char *s, size_t n) {
    if (!o->count) return (int)((n + 3) / 4 > 0x3fffffff ? 0x3fffffff : (n + 3) / 4);
    return o->count(o->count_ud, s, n);
}

static int push(units *us, size_t start, size_t end, int strength) {
    if (us->n == us->cap) {
        size_t cap = us->cap ? us->cap * 2 : 256;
        unit *u = realloc(us->u, cap * sizeof *u);
        if (!u) return -1;
        us->u = u;
        us->cap = cap;
    }
    us->u[us->n++] = (unit){start, end, 0, strength};
    return 0;
}

/* Length of a sentence terminator at s[i] (".", "!", "?", or the CJK full stops), else 0. */
static size_t terminator(const char *s, size_t n, size_t i) {
    char c = s[i];
    if (c == '.' || c == '!' || c == '?') return 1;
    if (i + 3 <= n &&
        (!memcmp(s + i, "\xE3\x80\x82", 3) || !memcmp(s + i, "\xEF\xBC\x81", 3) ||
         !memcmp(s + i, "\xEF\xBC\x9F", 3)))
        return 3;
    return 0;
}

/* Cuts text into units at paragraph, sentence and line boundaries. */
static int split_units(const char *s, size_t n, units *us) {
    size_t start = 0, i = 0;
    int ended = 0; /* a sentence terminator stands right before the coming line break */
    while (i < n) {
        size_t t = s[i] == '\n' ? 0 : terminator(s, n, i);
        if (s[i] == '\n') {
            /* a line break; blank lines after it make it a paragraph break */
            size_t j = i + 1;
            int para = 0;
            for (size_t k = j; k < n && is_space(s[k]); k++)
                if (s[k] == '\n') {
                    para = 1;
                    j = k + 1;
                }
            if (push(us, start, j, para ? B_PARA : ended ? B_SENTENCE : B_LINE)) return -1;
            start = i = j;
            ended = 0;
            continue;
        }
        if (t) {
            size_t j = i + t;
            while (j < n && (s[j] == '"' || s[j] == '\'' || s[j] == ')' || s[j] == ']')) j++;
            if (j >= n || s[j] == ' ' || s[j] == '\t') {
                while (j < n && (s[j] == ' ' || s[j] == '\t')) j++;
                if (j < n && s[j] == '\n') {
                    i = j;
                    ended = 1;
                    continue;
                } /* the break ends it */
                if (push(us, start, j, B_SENTENCE)) return -1;
                start = i = j;
                continue;
            }
            i = j;
            continue;
        }
        i++;
    }
    if (start < n && push(us, start, n, B_PARA)) return -1;
    return 0;
}

/* Start of the UTF-8 character containing s[i] (never before lo). */
static size_t char_start(const char *s, size_t i, size_t lo) {
    while (i > lo && ((unsigned char)s[i] & 0xC0) == 0x80) i--;
    return i;
}

/* Splits unit u (too many tokens) into pieces of about max_tokens at spaces, appending to out. */
static int split_long(const char *s, const unit *u, int max_tokens, const rag_chunk_opts *o,
                      units *out, rtr_err *err) {
    size_t len = u->end - u->start;
    double bytes_per_tok = u->tokens > 0 ? (double)len / u->tokens : 4.0;
    size_t piece = (size_t)(bytes_per_tok * max_tokens * 0.9);
    if (piece < 16) piece = 16;
    size_t a = u->start;
    while (a < u->end) {
        size_t b = u->end;
        int strength = u->strength;
        if (u->end - a > piece) {
            size_t lim = a + piece, cut = lim;
            while (cut > a + piece / 2 && !is_space(s[cut - 1])) cut--;
            if (cut > a + piece / 2) {
                b = cut;
                strength = B_WORD;
            } else {
                b = char_start(s, lim, a + 1);
                strength = B_NONE;
            }
            if (b <= a) b = lim;
        }
        if (push(out, a, b, strength)) return rtr_seterr(err, RTR_ENOMEM, "out of memory chunking");
        int tk = count(o, s + a, b - a);
        if (tk < 0) return rtr_seterr(err, tk, "token count failed while chunking");
        out->u[out->n - 1].tokens = tk;
        a = b;
    }
    return 0;
}

static int add_chunk(const rag_text *t, size_t a, size_t b, int tokens, rag_chunk **out, int *n,
                     int *cap) {
    while (a < b && is_space(t->text[a])) a++;
    while (b > a && is_space(t->text[b - 1])) b--;
    if (a == b) return 0;
    if (*n == *cap) {
        int nc = *cap ? *cap * 2 : 16;
        rag_chunk *c = realloc(*out, (size_t)nc * sizeof *c);
        if (!c) return -1;
        *out = c;
        *cap = nc;
    }
    rag_chunk *c = &(*out)[(*n)++];
    c->start = a;
    c->end = b;
    c->n_tokens = tokens;
    size_t last = char_start(t->text, b - 1, a);
    size_t s0 = rag_text_src(t, a), s1 = rag_text_src(t, last) + (b - last);
    if (s1 > t->src_len) s1 = t->src_len;
    if (s1 < s0) s1 = s0;
    c->byte_start = (int64_t)s0;
    c->byte_end = (int64_t)s1;
    c->line_start = rag_text_line(t, s0);
    c->line_end = rag_text_line(t, s1 > s0 ? s1 - 1 : s0);
    return 0;
}

int rag_chunk_text(const rag_text *t, const rag_chunk_opts *o, rag_chunk **out, int *n_out,
                   rtr_err *err) {
    *out = NULL;
    *n_out = 0;
    rag_chunk_opts def;
    if (!o) {
        rag_chunk_defaults(&def);
        o = &def;
    }
    int target = o->tokens > 0 ? o->tokens : 400;
    int overlap = o->overlap < 0 ? 0 : o->overlap >= target ? target / 2 : o->overlap;
    units raw = {0}, us = {0};
    int rc = 0, n = 0, cap = 0;
    if (split_units(t->text, t->len, &raw)) {
        rc = rtr_seterr(err, RTR_ENOMEM, "out of memory chunking");
        goto done;
    }
    for (size_t i = 0; i < raw.n && !rc; i++) {
        unit u = raw.u[i];
        u.tokens = count(o, t->text + u.start, u.end - u.start);
        if (u.tokens < 0) {
            rc = rtr_seterr(err, u.tokens, "token count failed while chunking");
            break;
        }
        if (u.tokens > target)
            rc = split_long(t->text, &u, target, o, &us, err);
        else if (push(&us, u.start, u.end, u.strength))
            rc = rtr_seterr(err, RTR_ENOMEM, "out of memory chunking");
        else
            us.u[us.n - 1].tokens = u.tokens;
    }
    size_t i = 0;
    while (!rc && i < us.n) {
        /* the longest run i..j that fits */
        size_t j = i;
        long sum = 0;
        while (j < us.n && (j == i || sum + us.u[j].tokens <= target)) sum += us.u[j++].tokens;
        size_t end = j; /* exclusive */
        if (j < us.n) {
            /* end at the strongest boundary that keeps the chunk at least half full */
            long acc = 0, half = target / 2;
            int best = -1;
            for (size_t p = i; p < j; p++) {
                acc += us.u[p].tokens;
                if (acc >= half && us.u[p].strength >= best) {
                    best = us.u[p].strength;
                    end = p + 1;
                }
            }
        }
        long tokens = 0;
        for (size_t p = i; p < end; p++) tokens += us.u[p].tokens;
        if (add_chunk(t, us.u[i].start, us.u[end - 1].end, (int)tokens, out, &n, &cap)) {
            rc = rtr_seterr(err, RTR_ENOMEM, "out of memory chunking");
            break;
        }
        if (end >= us.n) break;
        /* overlap: take units back from the end while they fit, never back to i */
        size_t s = end;
        long ov = 0;
        while (s > i + 1 && ov + us.u[s - 1].tokens <= overlap) ov += us.u[--s].tokens;
        i = s;
    }
done:
    free(raw.u);
    free(us.u);
    if (rc) {
        free(*out);
        *out = NULL;
        n = 0;
    }
    *n_out = n;
    return rc;
}
