/* tokenizer.c: the reader side of the byte-level BPE tokenizer (models/tokenizer.h).
 * Loading points into the mapped .rotor file and checks tensor sizes; encoding splits out added
 * tokens, pre-tokenizes with a hand-written equivalent of the Llama-3 / Qwen2 split regex
 * (Unicode classes from utf8proc), then merges bytes by rank with a heap per pre-token.
 * Also the streaming UTF-8 repair used by the detokenizer. */
#include "tokenizer.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

struct rtr_tokenizer {
    int n_vocab, n_merges, pre, ignore_merges, nfc;
    const uint32_t *off;   /* n_vocab + 1 */
    const uint8_t *bytes;
    uint64_t n_bytes;
    const uint8_t *type;   /* n_vocab */
    const uint32_t *vh;    /* 2 * (vmask + 1): tag, id */
    uint64_t vmask;
    const uint32_t *mh;    /* 4 * (mmask + 1): left, right, rank, result */
    uint64_t mmask;
    uint64_t vprobe, mprobe; /* most slots a lookup visits (from the file, at most the table) */
    const int32_t *spec;   /* added tokens, by first byte, longest first */
    int n_spec;
    int spec_first[257];   /* spec[spec_first[b] .. spec_first[b+1]) start with byte b */
    int32_t byte_id[256];
};

/* ---- lookups (every value read from the file is checked) ---- */
static const uint8_t *tok_span(const rtr_tokenizer *t, int64_t id, size_t *len) {
    if (id < 0 || id >= t->n_vocab) return NULL;
    uint32_t a = t->off[id], b = t->off[id + 1];
    if (a > b || b > t->n_bytes) return NULL;
    *len = b - a;
    return t->bytes + a;
}

/* id of the exact byte string, -1 if none; type_want 0 accepts any type */
static int32_t lookup(const rtr_tokenizer *t, const void *p, size_t n, int type_want) {
    uint64_t h = rtr_tok_hash_bytes(p, n), i = h & t->vmask;
    uint32_t tag = (uint32_t)(h >> 32);
    for (uint64_t probe = 0; probe < t->vprobe; probe++, i = (i + 1) & t->vmask) {
        uint32_t id = t->vh[2 * i + 1];
        if (id == RTR_TOK_EMPTY) return -1;
        if (t->vh[2 * i] != tag) continue;
        size_t l;
        const uint8_t *s = tok_span(t, id, &l);
        if (s && l == n && !memcmp(s, p, n))
            return (!type_want || t->type[id] == type_want) ? (int32_t)id : -1;
    }
    return -1;
}

/* merge of (l, r): returns the result id and sets *rank, or -1 */
static int32_t merge_of(const rtr_tokenizer *t, int32_t l, int32_t r, uint32_t *rank) {
    if (!t->mh) return -1;
    uint64_t i = rtr_tok_hash_pair((uint32_t)l, (uint32_t)r) & t->mmask;
    for (uint64_t probe = 0; probe < t->mprobe; probe++, i = (i + 1) & t->mmask) {
        const uint32_t *e = t->mh + 4 * i;
        if (e[0] == RTR_TOK_EMPTY) return -1;
        if (e[0] == (uint32_t)l && e[1] == (uint32_t)r) {
            if (e[3] >= (uint32_t)t->n_vocab) return -1;
            *rank = e[2];
            return (int32_t)e[3];
        }
    }
    return -1;
}

/* ---- loading ---- */
static const rtr_tensor *need(const rtr_file *f, const char *name, int type, rtr_err *err) {
    const rtr_tensor *x = rtr_file_tensor(f, name);
    if (!x) { rtr_seterr(err, RTR_EFORMAT, "tokenizer: tensor %s is missing", name); return NULL; }
    if ((int)x->type != type || x->ndim != 1 || !x->data ||
        x->size != rtr_tensor_bytes(type, 1, x->shape)) {
        rtr_seterr(err, RTR_EFORMAT, "tokenizer: tensor %s has the wrong type or shape", name);
        return NULL;
    }
    return x;
}

static int is_pow2(uint64_t v) { return v && !(v & (v - 1)); }

int rtr_tok_load(rtr_tokenizer **out, const rtr_file *f, rtr_err *err) {
    *out = NULL;
    const char *s;
    size_t sl;
    int64_t nv, nm, im = 0;
    if (rtr_meta_str(f, "tokenizer.model", &s, &sl) || sl != 4 || memcmp(s, "gpt2", 4))
        return rtr_seterr(err, RTR_EFORMAT, "tokenizer: the file has no byte-level BPE tokenizer (tokenizer.model)");
    if (rtr_meta_int(f, "tokenizer.n_vocab", &nv) || nv < 1 || nv > (1 << 24) ||
        rtr_meta_int(f, "tokenizer.n_merges", &nm) || nm < 0 || nm > (1 << 26))
        return rtr_seterr(err, RTR_EFORMAT, "tokenizer: bad tokenizer.n_vocab / n_merges");
    rtr_meta_int(f, "tokenizer.ignore_merges", &im);
    rtr_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return rtr_seterr(err, RTR_ENOMEM, "out of memory");
    t->n_vocab = (int)nv;
    t->n_merges = (int)nm;
    t->ignore_merges = im != 0;
    int rc = RTR_EFORMAT;
    if (rtr_meta_str(f, "tokenizer.pre", &s, &sl)) { rtr_seterr(err, rc, "tokenizer: tokenizer.pre is missing"); goto fail; }
    if (sl == 6 && !memcmp(s, "llama3", 6)) t->pre = RTR_PRE_LLAMA3;
    else if (sl == 5 && !memcmp(s, "qwen2", 5)) t->pre = RTR_PRE_QWEN2;
    else { rtr_seterr(err, rc, "tokenizer: unknown pre-tokenizer \"%.*s\"", (int)(sl > 40 ? 40 : sl), s); goto fail; }
    if (!rtr_meta_str(f, "tokenizer.normalizer", &s, &sl)) {
        if (sl == 3 && !memcmp(s, "nfc", 3)) t->nfc = 1;
        else if (!(sl == 4 && !memcmp(s, "none", 4))) { rtr_seterr(err, rc, "tokenizer: unknown normalizer"); goto fail; }
    }

    const rtr_tensor *x;
    if (!(x = need(f, "tokenizer.token_offsets", RTR_T_U32, err))) goto fail;
    if (x->shape[0] != (uint64_t)nv + 1) { rtr_seterr(err, rc, "tokenizer: token_offsets has %llu entries, want %lld", (unsigned long long)x->shape[0], (long long)nv + 1); goto fail; }
    t->off = x->data;
    if (!(x = need(f, "tokenizer.token_bytes", RTR_T_U8, err))) goto fail;
    t->bytes = x->data;
    t->n_bytes = x->shape[0];
    if (!(x = need(f, "tokenizer.token_type", RTR_T_U8, err))) goto fail;
    if (x->shape[0] != (uint64_t)nv) { rtr_seterr(err, rc, "tokenizer: token_type size mismatch"); goto fail; }
    t->type = x->data;
    if (!(x = need(f, "tokenizer.vocab_hash", RTR_T_U32, err))) goto fail;
    if (x->shape[0] % 2 || !is_pow2(x->shape[0] / 2) || x->shape[0] / 2 < (uint64_t)nv) { rtr_seterr(err, rc, "tokenizer: vocab_hash has a bad size"); goto fail; }
    t->vh = x->data;
    t->vmask = x->shape[0] / 2 - 1;
    if (!(x = need(f, "tokenizer.merge_hash", RTR_T_U32, err))) goto fail;
    if (x->shape[0] % 4 || !is_pow2(x->shape[0] / 4) || x->shape[0] / 4 < (uint64_t)nm) { rtr_seterr(err, rc, "tokenizer: merge_hash has a bad size"); goto fail; }
    t->mh = x->data;
    t->mmask = x->shape[0] / 4 - 1;
    if (rtr_file_tensor(f, "tokenizer.special_ids")) {
        if (!(x = need(f, "tokenizer.special_ids", RTR_T_I32, err))) goto fail;
        if (x->shape[0] > (uint64_t)nv) { rtr_seterr(err, rc, "tokenizer: too many special_ids"); goto fail; }
        t->spec = x->data;
        t->n_spec = (int)x->shape[0];
    }
    /* probe limits bound the work a damaged table can cause */
    int64_t vp = 0, mp = 0;
    rtr_meta_int(f, "tokenizer.vocab_probe", &vp);
    rtr_meta_int(f, "tokenizer.merge_probe", &mp);
    t->vprobe = vp >= 1 && (uint64_t)vp <= t->vmask + 1 ? (uint64_t)vp : t->vmask + 1;
    t->mprobe = mp >= 1 && (uint64_t)mp <= t->mmask + 1 ? (uint64_t)mp : t->mmask + 1;
    /* added tokens: non-empty, valid ids, sorted by first byte */
    for (int i = 0, prev = -1; i < t->n_spec; i++) {
        size_t l;
        const uint8_t *p = tok_span(t, t->spec[i], &l);
        if (!p || !l) { rtr_seterr(err, rc, "tokenizer: special_ids[%d] is not a token", i); goto fail; }
        if (p[0] < prev) { rtr_seterr(err, rc, "tokenizer: special_ids are not sorted"); goto fail; }
        prev = p[0];
    }
    for (int b = 0, i = 0; b <= 256; b++) {
        t->spec_first[b] = i;
        size_t l;
        while (b < 256 && i < t->n_spec && tok_span(t, t->spec[i], &l)[0] == b) i++;
    }
    /* every byte must have a token */
    for (int b = 0; b < 256; b++) {
        uint8_t c = (uint8_t)b;
        t->byte_id[b] = lookup(t, &c, 1, 0);
        if (t->byte_id[b] < 0) { rtr_seterr(err, rc, "tokenizer: byte 0x%02x has no token", b); goto fail; }
    }
    *out = t;
    return 0;
fail:
    free(t);
    return rc;
}

void rtr_tok_free(rtr_tokenizer *t) { free(t); }
int rtr_tok_n_vocab(const rtr_tokenizer *t) { return t->n_vocab; }
int rtr_tok_pre(const rtr_tokenizer *t) { return t->pre; }

const char *rtr_tok_bytes(const rtr_tokenizer *t, int32_t id, size_t *len) {
    size_t l = 0;
    const uint8_t *p = tok_span(t, id, &l);
    if (len) *len = p ? l : 0;
    return p ? (const char *)p : "";
}

int rtr_tok_type(const rtr_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_vocab ? t->type[id] : 0;
}

int rtr_tok_is_special(const rtr_tokenizer *t, int32_t id) {
    return rtr_tok_type(t, id) == RTR_TOKT_CONTROL;
}

int rtr_tok_find(const rtr_tokenizer *t, const char *text, size_t len) {
    return len ? lookup(t, text, len, 0) : -1;
}

/* ---- output ---- */
typedef struct {
    int32_t *ids;
    int cap, n;
} sink;
static inline void emit(sink *o, int32_t id) {
    if (o->n < o->cap) o->ids[o->n] = id;
    o->n++;
}

/* ---- BPE of one pre-token ---- */
typedef struct { uint64_t key; int32_t l, r, res; } cand; /* key: rank << 32 | position */

static void heap_push(cand *h, int *n, cand c) {
    int i = (*n)++;
    while (i > 0) {
        int p = (i - 1) / 2;
        if (h[p].key <= c.key) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = c;
}

static cand heap_pop(cand *h, int *n) {
    cand top = h[0], last = h[--*n];
    int i = 0, m = *n;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= m) break;
        if (c + 1 < m && h[c + 1].key < h[c].key) c++;
        if (last.key <= h[c].key) break;
        h[i] = h[c];
        i = c;
    }
    if (m) h[i] = last;
    return top;
}

static void try_pair(const rtr_tokenizer *t, cand *h, int *nh, const int32_t *id, int a, int b) {
    uint32_t rank;
    int32_t res = merge_of(t, id[a], id[b], &rank);
    if (res >= 0) heap_push(h, nh, (cand){(uint64_t)rank << 32 | (uint32_t)a, id[a], id[b], res});
}

#define WORD_STACK 256

static int bpe_word(const rtr_tokenizer *t, const uint8_t *w, size_t n, sink *o) {
    if (t->ignore_merges || n == 1) {
        int32_t id = n == 1 ? t->byte_id[w[0]] : lookup(t, w, n, RTR_TOKT_NORMAL);
        if (id >= 0) { emit(o, id); return 0; }
    }
    int32_t s_id[WORD_STACK], s_nx[WORD_STACK], s_pv[WORD_STACK];
    cand s_h[3 * WORD_STACK];
    int32_t *id = s_id, *nx = s_nx, *pv = s_pv;
    cand *h = s_h;
    void *mem = NULL;
    if (n > WORD_STACK) {
        if (n > INT_MAX / 4) return RTR_ENOMEM;
        mem = malloc(n * (3 * sizeof(int32_t) + 3 * sizeof(cand)));
        if (!mem) return RTR_ENOMEM;
        h = mem;
        id = (int32_t *)(h + 3 * n);
        nx = id + n;
        pv = nx + n;
    }
    int m = (int)n, nh = 0;
    for (int i = 0; i < m; i++) {
        id[i] = t->byte_id[w[i]];
        nx[i] = i + 1 < m ? i + 1 : -1;
        pv[i] = i - 1;
    }
    for (int i = 0; i + 1 < m; i++) try_pair(t, h, &nh, id, i, i + 1);
    while (nh) {
        cand c = heap_pop(h, &nh);
        int a = (int)(uint32_t)c.key;
        if (id[a] != c.l) continue;
        int b = nx[a];
        if (b < 0 || id[b] != c.r) continue;
        id[a] = c.res;
        id[b] = -1;
        nx[a] = nx[b];
        if (nx[b] >= 0) pv[nx[b]] = a;
        if (pv[a] >= 0) try_pair(t, h, &nh, id, pv[a], a);
        if (nx[a] >= 0) try_pair(t, h, &nh, id, a, nx[a]);
    }
    for (int i = 0; i >= 0; i = nx[i]) emit(o, id[i]);
    free(mem);
    return 0;
}

/* ---- pre-tokenizer: the split regex as a state machine over code points ---- */
enum { C_L = 1, C_N = 2, C_WS = 4, C_NL = 8 };

static inline int dec(const uint8_t *s, size_t len, size_t i, int32_t *cp) {
    unsigned c = s[i];
    if (c < 0x80) { *cp = (int32_t)c; return 1; }
    utf8proc_int32_t v;
    utf8proc_ssize_t k = utf8proc_iterate(s + i, (utf8proc_ssize_t)(len - i), &v);
    if (k <= 0) { *cp = 0xFFFD; return 1; } /* unreachable: the text was validated */
    *cp = v;
    return (int)k;
}

static inline int cls(int32_t c) {
    if (c < 0x80) {
        if ((c | 32) >= 'a' && (c | 32) <= 'z') return C_L;
        if (c >= '0' && c <= '9') return C_N;
        if (c == '\n' || c == '\r') return C_WS | C_NL;
        if (c == ' ' || (c >= 9 && c <= 13)) return C_WS;
        return 0;
    }
    if (c == 0x85) return C_WS;
    switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: return C_L;
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO: return C_N;
    case UTF8PROC_CATEGORY_ZS: case UTF8PROC_CATEGORY_ZL: case UTF8PROC_CATEGORY_ZP: return C_WS;
    default: return 0;
    }
}

/* lower-case ASCII letter for the (?i:...) contractions; U+017F (long s) folds to 's' */
static inline int fold(int32_t c) {
    if (c >= 'A' && c <= 'Z') return c + 32;
    if (c == 0x17F) return 's';
    return c;
}

/* End (byte offset) of the pre-token that starts at i (< len). */
static size_t pretok_next(const uint8_t *s, size_t len, size_t i, int max_digits) {
    int32_t c0, c1, c2;
    int k0 = dec(s, len, i, &c0), k1 = 0, k2;
    int f0 = cls(c0), f1 = -1;
    size_t j = i + (size_t)k0;
    if (j < len) { k1 = dec(s, len, j, &c1); f1 = cls(c1); }
    /* (?i:'s|'t|'re|'ve|'m|'ll|'d) */
    if (c0 == '\'' && f1 >= 0) {
        int a = fold(c1);
        if (a == 's' || a == 't' || a == 'm' || a == 'd') return j + (size_t)k1;
        if ((a == 'r' || a == 'v' || a == 'l') && j + (size_t)k1 < len) {
            k2 = dec(s, len, j + (size_t)k1, &c2);
            if (fold(c2) == (a == 'l' ? 'l' : 'e')) return j + (size_t)k1 + (size_t)k2;
        }
    }
    /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    if ((f0 & C_L) || (!(f0 & (C_NL | C_L | C_N)) && f1 >= 0 && (f1 & C_L))) {
        size_t e = (f0 & C_L) ? j : j + (size_t)k1;
        while (e < len) {
            int32_t c;
            int k = dec(s, len, e, &c);
            if (!(cls(c) & C_L)) break;
            e += (size_t)k;
        }
        return e;
    }
    /* \p{N}{1,3} (Qwen2: \p{N}) */
    if (f0 & C_N) {
        size_t e = j;
        for (int d = 1; d < max_digits && e < len; d++) {
            int32_t c;
            int k = dec(s, len, e, &c);
            if (!(cls(c) & C_N)) break;
            e += (size_t)k;
        }
        return e;
    }
    /*  ?[^\s\p{L}\p{N}]+[\r\n]* */
    if (!(f0 & (C_WS | C_L | C_N)) || (c0 == ' ' && f1 >= 0 && !(f1 & (C_WS | C_L | C_N)))) {
        size_t e = (f0 & C_WS) ? j + (size_t)k1 : j;
        while (e < len) {
            int32_t c;
            int k = dec(s, len, e, &c);
            if (cls(c) & (C_WS | C_L | C_N)) break;
            e += (size_t)k;
        }
        while (e < len && (s[e] == '\r' || s[e] == '\n')) e++;
        return e;
    }
    /* whitespace: \s*[\r\n]+ | \s+(?!\S) | \s+ */
    size_t e = i, last_nl = 0, last_start = i;
    while (e < len) {
        int32_t c;
        int k = dec(s, len, e, &c);
        int f = cls(c);
        if (!(f & C_WS)) break;
        last_start = e;
        e += (size_t)k;
        if (f & C_NL) last_nl = e;
    }
    if (last_nl) return last_nl;
    if (e == len || last_start == i) return e;
    return last_start;
}

static int encode_plain(const rtr_tokenizer *t, const uint8_t *s, size_t len, sink *o) {
    int maxd = t->pre == RTR_PRE_QWEN2 ? 1 : 3;
    size_t i = 0;
    while (i < len) {
        size_t e = pretok_next(s, len, i, maxd);
        int rc = bpe_word(t, s + i, e - i, o);
        if (rc) return rc;
        i = e;
    }
    return 0;
}

static int encode_segment(const rtr_tokenizer *t, const uint8_t *s, size_t len, sink *o) {
    if (!len) return 0;
    if (t->nfc) {
        size_t i = 0;
        while (i < len && s[i] < 0x80) i++;
        if (i < len) {
            utf8proc_uint8_t *norm = NULL;
            utf8proc_ssize_t n = utf8proc_map(s, (utf8proc_ssize_t)len, &norm, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
            if (n < 0) { free(norm); return n == UTF8PROC_ERROR_NOMEM ? RTR_ENOMEM : RTR_EARG; }
            int rc = encode_plain(t, norm, (size_t)n, o);
            free(norm);
            return rc;
        }
    }
    return encode_plain(t, s, len, o);
}

/* 1 if s[0..n) is valid UTF-8 */
static int utf8_valid(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0x80) { i++; continue; }
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(s + i, (utf8proc_ssize_t)(n - i > 4 ? 4 : n - i), &cp);
        if (k <= 0) return 0;
        i += (size_t)k;
    }
    return 1;
}

int rtr_tok_encode(const rtr_tokenizer *t, const char *text, size_t len, int allow_special,
                   int32_t *ids, int cap) {
    const uint8_t *s = (const uint8_t *)text;
    if (len > (size_t)INT_MAX / 2 || (len && !text) || cap < 0 || (cap && !ids)) return RTR_EARG;
    if (!utf8_valid(s, len)) return RTR_EARG;
    sink o = {ids, cap, 0};
    size_t seg = 0;
    for (size_t i = 0; i < len; i++) {
        int b = s[i], a = t->spec_first[b], z = t->spec_first[b + 1];
        for (; a < z; a++) {
            int32_t id = t->spec[a];
            size_t l;
            const uint8_t *p = tok_span(t, id, &l);
            if (l > len - i || memcmp(p, s + i, l)) continue;
            if (!allow_special && t->type[id] == RTR_TOKT_CONTROL) continue;
            int rc = encode_segment(t, s + seg, i - seg, &o);
            if (rc) return rc;
            emit(&o, id);
            i += l - 1;
            seg = i + 1;
            break;
        }
    }
    int rc = encode_segment(t, s + seg, len - seg, &o);
    return rc ? rc : o.n;
}

/* ---- streaming UTF-8 repair ---- */
static size_t put(char *out, size_t cap, size_t n, const void *p, size_t k) {
    for (size_t i = 0; i < k; i++)
        if (n + i < cap) out[n + i] = ((const char *)p)[i];
    return n + k < cap ? n + k : cap;
}
static const char FFFD[3] = {(char)0xEF, (char)0xBF, (char)0xBD};

/* expected length of a sequence starting with lead byte c, 0 if c cannot start one */
static int seq_len(unsigned c) {
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return 2;
    if (c >= 0xE0 && c <= 0xEF) return 3;
    if (c >= 0xF0 && c <= 0xF4) return 4;
    return 0;
}
/* whether byte b may follow the bytes held so far (lead p0, position k >= 1) */
static int cont_ok(unsigned p0, int k, unsigned b) {
    if ((b & 0xC0) != 0x80) return 0;
    if (k == 1) {
        if (p0 == 0xE0) return b >= 0xA0;
        if (p0 == 0xED) return b < 0xA0;
        if (p0 == 0xF0) return b >= 0x90;
        if (p0 == 0xF4) return b < 0x90;
    }
    return 1;
}

int rtr_detok_push_bytes(rtr_detok *d, const char *bytes, size_t n, char *out, size_t cap) {
    size_t o = 0;
    if (d->npend < 0 || d->npend > 3) d->npend = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned b = (unsigned char)bytes[i];
        if (d->npend) {
            if (cont_ok(d->pend[0], d->npend, b)) {
                d->pend[d->npend++] = (unsigned char)b;
                if (d->npend == seq_len(d->pend[0])) { o = put(out, cap, o, d->pend, (size_t)d->npend); d->npend = 0; }
                continue;
            }
            o = put(out, cap, o, FFFD, 3);
            d->npend = 0;
        }
        int k = seq_len(b);
        if (k == 1) o = put(out, cap, o, &bytes[i], 1);
        else if (k == 0) o = put(out, cap, o, FFFD, 3);
        else { d->pend[0] = (unsigned char)b; d->npend = 1; }
    }
    return (int)o;
}

int rtr_detok_flush(rtr_detok *d, char *out, size_t cap) {
    size_t o = 0;
    if (d->npend > 0 && d->npend <= 3) o = put(out, cap, 0, FFFD, 3);
    d->npend = 0;
    return (int)o;
}
