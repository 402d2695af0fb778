/* tokenizer_build.c: the converter side of the tokenizer (models/tokenizer.h).
 * Reads a vocabulary from a Hugging Face tokenizer.json or from GGUF-style arrays into an
 * rtr_tok_src (token bytes with the GPT-2 byte-to-unicode mapping undone, token types, merges
 * resolved to id pairs), then writes the tokenizer.* tensors with their hash tables precomputed
 * so that the reader only sets pointers (docs/tokenizer-format.md). */
#include "tokenizer.h"

#include <stdlib.h>
#include <string.h>

#define MAX_VOCAB (1 << 24)

struct rtr_tok_src {
    int n_vocab;
    char *buf; size_t buf_len, buf_cap; /* token bytes, in any order */
    size_t *start; uint32_t *len;       /* per id: where its bytes are in buf */
    uint8_t *type;                      /* per id: RTR_TOKT_* */
    int n_merges;
    uint32_t *merges;                   /* per rank: left, right, result */
    int pre, ignore_merges, nfc;
    uint32_t *vh; size_t vcap;          /* build-time lookup: bytes -> id (id, or EMPTY) */
};

/* ---- hashes shared with the reader ---- */
uint64_t rtr_tok_hash_bytes(const void *p, size_t n) { return rtr_hash64(p, n, 0); }
uint64_t rtr_tok_hash_pair(uint32_t left, uint32_t right) {
    uint64_t z = ((uint64_t)left << 32 | right) + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* ---- GPT-2 byte-level alphabet: code point -> byte, or -1 ---- */
static int bl_direct(unsigned b) { return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174; }
static int bl_byte(unsigned cp) {
    if (cp < 256) return bl_direct(cp) ? (int)cp : -1;
    unsigned k = cp - 256;
    if (k < 33) return (int)k;
    if (k < 67) return (int)(127 + k - 33);
    if (k == 67) return 173;
    return -1;
}

/* Decodes one UTF-8 code point (the JSON reader already validated it); returns its length. */
static int utf8_dec(const unsigned char *p, size_t n, unsigned *cp) {
    unsigned c = p[0];
    if (c < 0x80) { *cp = c; return 1; }
    int k = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
    if (!k || (size_t)k > n) return 0;
    unsigned v = c & (0x7F >> k);
    for (int i = 1; i < k; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        v = v << 6 | (p[i] & 63);
    }
    *cp = v;
    return k;
}

/* Byte-level text -> raw bytes into out (capacity n suffices); returns the length or -1. */
static long bl_decode(const char *s, size_t n, char *out) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, o = 0;
    while (i < n) {
        unsigned cp;
        int k = utf8_dec(p + i, n - i, &cp);
        if (!k) return -1;
        int b = bl_byte(cp);
        if (b < 0) return -1;
        out[o++] = (char)b;
        i += (size_t)k;
    }
    return (long)o;
}

/* ---- the source object ---- */
static int src_new(rtr_tok_src **out, int n_vocab, rtr_err *err) {
    rtr_tok_src *s = calloc(1, sizeof *s);
    if (!s) return rtr_seterr(err, RTR_ENOMEM, "out of memory");
    s->n_vocab = n_vocab;
    s->start = calloc((size_t)n_vocab, sizeof *s->start);
    s->len = calloc((size_t)n_vocab, sizeof *s->len);
    s->type = malloc((size_t)n_vocab);
    if (!s->start || !s->len || !s->type) { rtr_tok_src_free(s); return rtr_seterr(err, RTR_ENOMEM, "out of memory"); }
    memset(s->type, 0, (size_t)n_vocab); /* 0: not yet set */
    *out = s;
    return 0;
}

void rtr_tok_src_free(rtr_tok_src *s) {
    if (!s) return;
    free(s->buf); free(s->start); free(s->len); free(s->type); free(s->merges); free(s->vh);
    free(s);
}

int rtr_tok_src_n_vocab(const rtr_tok_src *s) { return s->n_vocab; }

/* Reserves n bytes at the end of buf; returns their offset or (size_t)-1. */
static size_t buf_reserve(rtr_tok_src *s, size_t n) {
    if (s->buf_len + n > s->buf_cap) {
        size_t cap = (s->buf_len + n) * 2 + 4096;
        char *nb = realloc(s->buf, cap);
        if (!nb) return (size_t)-1;
        s->buf = nb;
        s->buf_cap = cap;
    }
    size_t at = s->buf_len;
    s->buf_len += n;
    return at;
}

/* Sets token id from text: byte-level decoded when bytelevel, else raw. */
static int set_token(rtr_tok_src *s, int id, const char *text, size_t n, int bytelevel, int type,
                     rtr_err *err) {
    if (n > 65535) return rtr_seterr(err, RTR_EFORMAT, "token %d is %zu bytes long", id, n);
    size_t at = buf_reserve(s, n);
    if (at == (size_t)-1) return rtr_seterr(err, RTR_ENOMEM, "out of memory");
    long len = (long)n;
    if (bytelevel) {
        len = bl_decode(text, n, s->buf + at);
        if (len < 0) return rtr_seterr(err, RTR_EFORMAT, "token %d (\"%.40s\") is not byte-level text", id, text);
        s->buf_len = at + (size_t)len;
    } else if (n) {
        memcpy(s->buf + at, text, n);
    }
    s->start[id] = at;
    s->len[id] = (uint32_t)len;
    s->type[id] = (uint8_t)type;
    return 0;
}

static size_t pow2_at_least(size_t n) {
    size_t c = 16;
    while (c < n) c <<= 1;
    return c;
}

static int src_lookup(const rtr_tok_src *s, const char *p, size_t n) {
    if (!s->vh) return -1;
    size_t mask = s->vcap - 1, i = rtr_tok_hash_bytes(p, n) & mask;
    for (size_t probe = 0; probe < s->vcap; probe++, i = (i + 1) & mask) {
        uint32_t id = s->vh[i];
        if (id == RTR_TOK_EMPTY) return -1;
        if (s->len[id] == n && !memcmp(s->buf + s->start[id], p, n)) return (int)id;
    }
    return -1;
}

/* Builds the bytes -> id lookup (the lowest id wins for duplicate texts; empty tokens skipped). */
static int build_lookup(rtr_tok_src *s, rtr_err *err) {
    s->vcap = pow2_at_least((size_t)s->n_vocab * 2);
    s->vh = malloc(s->vcap * sizeof *s->vh);
    if (!s->vh) return rtr_seterr(err, RTR_ENOMEM, "out of memory");
    memset(s->vh, 0xFF, s->vcap * sizeof *s->vh);
    size_t mask = s->vcap - 1;
    for (int id = 0; id < s->n_vocab; id++) {
        if (!s->len[id]) continue;
        const char *p = s->buf + s->start[id];
        size_t n = s->len[id], i = rtr_tok_hash_bytes(p, n) & mask;
        for (;; i = (i + 1) & mask) {
            uint32_t o = s->vh[i];
            if (o == RTR_TOK_EMPTY) { s->vh[i] = (uint32_t)id; break; }
            if (s->len[o] == n && !memcmp(s->buf + s->start[o], p, n)) break;
        }
    }
    return 0;
}

int rtr_tok_src_find(const rtr_tok_src *s, const char *text) {
    return src_lookup(s, text, strlen(text));
}

/* Adds merge `rank` from its two byte-level halves. */
static int add_merge(rtr_tok_src *s, int rank, const char *a, size_t an, const char *b, size_t bn,
                     char *tmp, rtr_err *err) {
    long la = bl_decode(a, an, tmp), lb = la < 0 ? -1 : bl_decode(b, bn, tmp + la);
    if (la < 0 || lb < 0) return rtr_seterr(err, RTR_EFORMAT, "merge %d is not byte-level text", rank);
    int l = src_lookup(s, tmp, (size_t)la), r = src_lookup(s, tmp + la, (size_t)lb);
    int m = src_lookup(s, tmp, (size_t)(la + lb));
    if (l < 0 || r < 0 || m < 0)
        return rtr_seterr(err, RTR_EFORMAT, "merge %d (\"%.*s %.*s\"): %s not in the vocabulary", rank,
                          (int)(an > 40 ? 40 : an), a, (int)(bn > 40 ? 40 : bn), b,
                          m >= 0 || (l >= 0 && r >= 0) ? "result" : "a part");
    s->merges[3 * rank] = (uint32_t)l;
    s->merges[3 * rank + 1] = (uint32_t)r;
    s->merges[3 * rank + 2] = (uint32_t)m;
    return 0;
}

static int set_pre(rtr_tok_src *s, const char *pre, rtr_err *err) {
    if (!strcmp(pre, "llama3") || !strcmp(pre, "llama-bpe")) { s->pre = RTR_PRE_LLAMA3; return 0; }
    if (!strcmp(pre, "qwen2")) { s->pre = RTR_PRE_QWEN2; return 0; }
    return rtr_seterr(err, RTR_EFORMAT, "unsupported pre-tokenizer \"%s\" (llama3 and qwen2 are)", pre);
}

int rtr_tok_src_from_arrays(rtr_tok_src **out, int n_vocab, const char *const *tokens,
                            const size_t *token_lens, const int32_t *types, int n_merges,
                            const char *const *merges, const size_t *merge_lens, const char *pre,
                            rtr_err *err) {
    *out = NULL;
    if (n_vocab <= 0 || n_vocab > MAX_VOCAB || n_merges < 0 || n_merges > MAX_VOCAB * 4)
        return rtr_seterr(err, RTR_EFORMAT, "tokenizer: %d tokens and %d merges is not plausible", n_vocab, n_merges);
    rtr_tok_src *s;
    int rc = src_new(&s, n_vocab, err);
    if (rc) return rc;
    if ((rc = set_pre(s, pre ? pre : "", err))) goto fail;
    s->ignore_merges = s->pre == RTR_PRE_LLAMA3;
    s->nfc = s->pre == RTR_PRE_QWEN2;
    for (int i = 0; i < n_vocab; i++) {
        int t = types ? types[i] : RTR_TOKT_NORMAL;
        if (t < RTR_TOKT_NORMAL || t > RTR_TOKT_BYTE) t = RTR_TOKT_NORMAL;
        int bl = t == RTR_TOKT_NORMAL || t == RTR_TOKT_UNKNOWN || t == RTR_TOKT_UNUSED;
        size_t n = token_lens ? token_lens[i] : strlen(tokens[i]);
        rc = set_token(s, i, tokens[i], n, bl, t, err);
        if (rc && bl && t != RTR_TOKT_NORMAL) rc = set_token(s, i, tokens[i], n, 0, t, err);
        if (rc) goto fail;
    }
    if ((rc = build_lookup(s, err))) goto fail;
    s->n_merges = n_merges;
    s->merges = malloc((size_t)(n_merges ? n_merges : 1) * 3 * sizeof *s->merges);
    if (!s->merges) { rc = rtr_seterr(err, RTR_ENOMEM, "out of memory"); goto fail; }
    for (int i = 0; i < n_merges; i++) {
        size_t n = merge_lens ? merge_lens[i] : strlen(merges[i]);
        const char *sp = memchr(merges[i], ' ', n);
        if (!sp || sp == merges[i] || sp == merges[i] + n - 1) {
            rc = rtr_seterr(err, RTR_EFORMAT, "merge %d is not \"a b\"", i);
            goto fail;
        }
        char *tmp = malloc(n + 1);
        if (!tmp) { rc = rtr_seterr(err, RTR_ENOMEM, "out of memory"); goto fail; }
        size_t an = (size_t)(sp - merges[i]);
        rc = add_merge(s, i, merges[i], an, sp + 1, n - an - 1, tmp, err);
        free(tmp);
        if (rc) goto fail;
    }
    *out = s;
    return 0;
fail:
    rtr_tok_src_free(s);
    return rc;
}

/* ---- Hugging Face tokenizer.json ---- */
static const char RE_LLAMA3[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char RE_QWEN2[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static int str_is(const rtr_json *j, const char *s) {
    return j && j->type == RTR_JSON_STR && !strcmp(j->str, s);
}

/* Finds the Split regex of a pre_tokenizer (a Split, or a Sequence holding one). */
static const rtr_json *find_split_regex(const rtr_json *pt) {
    if (!pt || pt->type != RTR_JSON_OBJ) return NULL;
    if (str_is(rtr_json_get(pt, "type"), "Split")) {
        const rtr_json *re = rtr_json_get(rtr_json_get(pt, "pattern"), "Regex");
        return re && re->type == RTR_JSON_STR ? re : NULL;
    }
    if (str_is(rtr_json_get(pt, "type"), "Sequence")) {
        const rtr_json *l = rtr_json_get(pt, "pretokenizers");
        for (size_t i = 0; l && l->type == RTR_JSON_ARR && i < l->n; i++) {
            const rtr_json *r = find_split_regex(&l->items[i]);
            if (r) return r;
        }
    }
    return NULL;
}

int rtr_tok_src_from_hf(rtr_tok_src **out, const rtr_json *tj, rtr_err *err) {
    *out = NULL;
    const rtr_json *model = rtr_json_get(tj, "model");
    const rtr_json *vocab = rtr_json_get(model, "vocab"), *merges = rtr_json_get(model, "merges");
    const rtr_json *added = rtr_json_get(tj, "added_tokens");
    if (!model || !vocab || vocab->type != RTR_JSON_OBJ || !merges || merges->type != RTR_JSON_ARR)
        return rtr_seterr(err, RTR_EFORMAT, "tokenizer.json: no model.vocab / model.merges");
    const rtr_json *mt = rtr_json_get(model, "type");
    if (mt && !str_is(mt, "BPE"))
        return rtr_seterr(err, RTR_EFORMAT, "tokenizer.json: model type %s is not BPE", mt->type == RTR_JSON_STR ? mt->str : "?");
    const rtr_json *bf = rtr_json_get(model, "byte_fallback");
    if (bf && bf->type == RTR_JSON_BOOL && bf->boolean)
        return rtr_seterr(err, RTR_EFORMAT, "tokenizer.json: byte_fallback BPE is not supported");
    if (added && added->type != RTR_JSON_ARR) added = NULL;

    /* pre-tokenizer and normalizer */
    const rtr_json *re = find_split_regex(rtr_json_get(tj, "pre_tokenizer"));
    int pre;
    if (re && !strcmp(re->str, RE_LLAMA3)) pre = RTR_PRE_LLAMA3;
    else if (re && !strcmp(re->str, RE_QWEN2)) pre = RTR_PRE_QWEN2;
    else return rtr_seterr(err, RTR_EFORMAT, "tokenizer.json: pre-tokenizer is neither the Llama-3 nor the Qwen2 split");
    const rtr_json *norm = rtr_json_get(tj, "normalizer");
    int nfc = 0;
    if (norm && norm->type == RTR_JSON_OBJ) {
        if (str_is(rtr_json_get(norm, "type"), "NFC")) nfc = 1;
        else return rtr_seterr(err, RTR_EFORMAT, "tokenizer.json: unsupported normalizer");
    } else if (norm && norm->type != RTR_JSON_NULL) {
        return rtr_seterr(err, RTR_EFORMAT, "tokenizer.json: unsupported normalizer");
    }

    /* ids */
    int64_t maxid = -1, id;
    for (size_t i = 0; i < vocab->n; i++) {
        if (!rtr_json_int(&vocab->items[i], &id) || id < 0 || id >= MAX_VOCAB)
            return rtr_seterr(err, RTR_EFORMAT, "tokenizer.json: vocab entry %zu has a bad id", i);
        if (id > maxid) maxid = id;
    }
    for (size_t i = 0; added && i < added->n; i++) {
        const rtr_json *a = &added->items[i], *c = rtr_json_get(a, "content");
        if (!rtr_json_int(rtr_json_get(a, "id"), &id) || id < 0 || id >= MAX_VOCAB || !c || c->type != RTR_JSON_STR)
            return rtr_seterr(err, RTR_EFORMAT, "tokenizer.json: added token %zu is malformed", i);
        if (id > maxid) maxid = id;
    }
    if (maxid < 0) return rtr_seterr(err, RTR_EFORMAT, "tokenizer.json: empty vocabulary");
    if (merges->n > (size_t)MAX_VOCAB * 4) return rtr_seterr(err, RTR_EFORMAT, "tokenizer.json: too many merges");

    rtr_tok_src *s;
    int rc = src_new(&s, (int)maxid + 1, err);
    if (rc) return rc;
    s->pre = pre;
    s->nfc = nfc;
    const rtr_json *im = rtr_json_get(model, "ignore_merges");
    s->ignore_merges = im && im->type == RTR_JSON_BOOL && im->boolean;
    for (size_t i = 0; i < vocab->n; i++) {
        rtr_json_int(&vocab->items[i], &id);
        if (s->type[id]) { rc = rtr_seterr(err, RTR_EFORMAT, "tokenizer.json: id %d appears twice", (int)id); goto fail; }
        if ((rc = set_token(s, (int)id, vocab->keys[i], vocab->key_lens[i], 1, RTR_TOKT_NORMAL, err))) goto fail;
    }
    for (size_t i = 0; added && i < added->n; i++) {
        const rtr_json *a = &added->items[i], *c = rtr_json_get(a, "content");
        const rtr_json *sp = rtr_json_get(a, "special");
        rtr_json_int(rtr_json_get(a, "id"), &id);
        int t = sp && sp->type == RTR_JSON_BOOL && sp->boolean ? RTR_TOKT_CONTROL : RTR_TOKT_USER_DEFINED;
        if ((rc = set_token(s, (int)id, c->str, c->len, 0, t, err))) goto fail;
    }
    for (int i = 0; i < s->n_vocab; i++)
        if (!s->type[i]) s->type[i] = RTR_TOKT_UNUSED; /* a hole in the id space */
    if ((rc = build_lookup(s, err))) goto fail;

    s->n_merges = (int)merges->n;
    s->merges = malloc((merges->n ? merges->n : 1) * 3 * sizeof *s->merges);
    if (!s->merges) { rc = rtr_seterr(err, RTR_ENOMEM, "out of memory"); goto fail; }
    char *tmp = malloc(2 * 65536 + 8);
    if (!tmp) { rc = rtr_seterr(err, RTR_ENOMEM, "out of memory"); goto fail; }
    for (size_t i = 0; i < merges->n && !rc; i++) {
        const rtr_json *m = &merges->items[i];
        const char *a, *b;
        size_t an, bn;
        if (m->type == RTR_JSON_STR) {
            const char *sp = memchr(m->str, ' ', m->len);
            if (!sp) { rc = rtr_seterr(err, RTR_EFORMAT, "tokenizer.json: merge %zu is not \"a b\"", i); break; }
            a = m->str; an = (size_t)(sp - a); b = sp + 1; bn = m->len - an - 1;
        } else if (m->type == RTR_JSON_ARR && m->n == 2 && m->items[0].type == RTR_JSON_STR &&
                   m->items[1].type == RTR_JSON_STR) {
            a = m->items[0].str; an = m->items[0].len; b = m->items[1].str; bn = m->items[1].len;
        } else {
            rc = rtr_seterr(err, RTR_EFORMAT, "tokenizer.json: merge %zu is malformed", i);
            break;
        }
        if (an > 65536 || bn > 65536) rc = rtr_seterr(err, RTR_EFORMAT, "tokenizer.json: merge %zu too long", i);
        else rc = add_merge(s, (int)i, a, an, b, bn, tmp, err);
    }
    free(tmp);
    if (rc) goto fail;
    *out = s;
    return 0;
fail:
    rtr_tok_src_free(s);
    return rc;
}

/* ---- writing ---- */
static int put_tensor(rtr_writer *w, const char *name, int type, uint64_t n, const void *data,
                      rtr_err *err) {
    uint64_t shape[1] = {n};
    int rc = rtr_writer_tensor(w, name, type, 1, shape, 1.0f, err);
    if (!rc) rc = rtr_writer_data(w, data, (size_t)(n * (type == RTR_T_U8 ? 1 : 4)), err);
    return rc;
}

static int cmp_special(const rtr_tok_src *s, int32_t a, int32_t b) {
    unsigned fa = (unsigned char)s->buf[s->start[a]], fb = (unsigned char)s->buf[s->start[b]];
    if (fa != fb) return fa < fb ? -1 : 1;
    if (s->len[a] != s->len[b]) return s->len[a] > s->len[b] ? -1 : 1;
    return a < b ? -1 : a > b;
}

/* insertion sort by (first byte, longer first, id): a few hundred entries at most */
static void sort_specials(const rtr_tok_src *s, int32_t *v, int n) {
    for (int i = 1; i < n; i++) {
        int32_t x = v[i];
        int j = i;
        while (j > 0 && cmp_special(s, v[j - 1], x) > 0) { v[j] = v[j - 1]; j--; }
        v[j] = x;
    }
}

int rtr_tok_write(rtr_writer *w, const rtr_tok_src *s, rtr_err *err) {
    int rc = 0, nv = s->n_vocab;
    /* the reader refuses a vocabulary without a token for every byte: write none */
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        if (src_lookup(s, &c, 1) < 0) return rtr_seterr(err, RTR_EFORMAT, "tokenizer: the vocabulary has no token for byte 0x%02x", b);
    }
    size_t vcap = pow2_at_least((size_t)nv * 2);
    size_t mcap = pow2_at_least((size_t)s->n_merges + (size_t)s->n_merges / 2 + 1);
    uint64_t total = 0;
    for (int i = 0; i < nv; i++) total += s->len[i];
    if (total >= UINT32_MAX) return rtr_seterr(err, RTR_EARG, "tokenizer: token bytes exceed 4 GiB");
    uint32_t *off = malloc(((size_t)nv + 1) * 4);
    char *bytes = malloc(total ? total : 1);
    uint32_t *vh = malloc(vcap * 8);
    uint32_t *mh = malloc(mcap * 16);
    int32_t *spec = malloc((size_t)nv * 4);
    if (!off || !bytes || !vh || !mh || !spec) { rc = rtr_seterr(err, RTR_ENOMEM, "out of memory"); goto done; }

    uint32_t o = 0;
    int nspec = 0;
    for (int i = 0; i < nv; i++) {
        off[i] = o;
        memcpy(bytes + o, s->buf + s->start[i], s->len[i]);
        o += s->len[i];
        if ((s->type[i] == RTR_TOKT_CONTROL || s->type[i] == RTR_TOKT_USER_DEFINED) && s->len[i]) spec[nspec++] = i;
    }
    off[nv] = o;
    if (!total) bytes[0] = 0;
    sort_specials(s, spec, nspec);

    /* vocab hash: (tag, id) slots; the lowest id wins for duplicate texts */
    memset(vh, 0xFF, vcap * 8);
    size_t vprobe = 1, mprobe = 1; /* longest probe sequence a lookup of a present key needs */
    for (int i = 0; i < nv; i++) {
        if (!s->len[i]) continue;
        const char *p = s->buf + s->start[i];
        uint64_t h = rtr_tok_hash_bytes(p, s->len[i]);
        size_t j = h & (vcap - 1);
        for (size_t k = 1;; j = (j + 1) & (vcap - 1), k++) {
            uint32_t e = vh[2 * j + 1];
            if (e == RTR_TOK_EMPTY) { vh[2 * j] = (uint32_t)(h >> 32); vh[2 * j + 1] = (uint32_t)i; }
            else if (!(s->len[e] == s->len[i] && !memcmp(s->buf + s->start[e], p, s->len[i]))) continue;
            if (k > vprobe) vprobe = k;
            break;
        }
    }
    /* merge hash: (left, right, rank, result) slots; the lowest rank wins for duplicate pairs */
    memset(mh, 0xFF, mcap * 16);
    for (int r = 0; r < s->n_merges; r++) {
        uint32_t l = s->merges[3 * r], rt = s->merges[3 * r + 1];
        size_t j = rtr_tok_hash_pair(l, rt) & (mcap - 1);
        for (size_t k = 1;; j = (j + 1) & (mcap - 1), k++) {
            uint32_t *e = mh + 4 * j;
            if (e[0] == RTR_TOK_EMPTY) { e[0] = l; e[1] = rt; e[2] = (uint32_t)r; e[3] = s->merges[3 * r + 2]; }
            else if (!(e[0] == l && e[1] == rt)) continue;
            if (k > mprobe) mprobe = k;
            break;
        }
    }

    static const char *pres[] = {"llama3", "qwen2"};
    const char *nf = s->nfc ? "nfc" : "none";
    if (rtr_writer_meta_str(w, "tokenizer.model", "gpt2", 4) ||
        rtr_writer_meta_str(w, "tokenizer.pre", pres[s->pre], strlen(pres[s->pre])) ||
        rtr_writer_meta_str(w, "tokenizer.normalizer", nf, strlen(nf)) ||
        rtr_writer_meta_int(w, "tokenizer.n_vocab", nv) ||
        rtr_writer_meta_int(w, "tokenizer.n_merges", s->n_merges) ||
        rtr_writer_meta_int(w, "tokenizer.ignore_merges", s->ignore_merges) ||
        rtr_writer_meta_int(w, "tokenizer.vocab_probe", (int64_t)vprobe) ||
        rtr_writer_meta_int(w, "tokenizer.merge_probe", (int64_t)mprobe)) {
        rc = rtr_seterr(err, RTR_ENOMEM, "tokenizer: cannot add metadata");
        goto done;
    }
    if ((rc = put_tensor(w, "tokenizer.token_offsets", RTR_T_U32, (uint64_t)nv + 1, off, err)) ||
        (rc = put_tensor(w, "tokenizer.token_bytes", RTR_T_U8, total ? total : 1, bytes, err)) ||
        (rc = put_tensor(w, "tokenizer.token_type", RTR_T_U8, (uint64_t)nv, s->type, err)) ||
        (rc = put_tensor(w, "tokenizer.vocab_hash", RTR_T_U32, vcap * 2, vh, err)) ||
        (rc = put_tensor(w, "tokenizer.merge_hash", RTR_T_U32, mcap * 4, mh, err)))
        goto done;
    if (nspec) rc = put_tensor(w, "tokenizer.special_ids", RTR_T_I32, (uint64_t)nspec, spec, err);
done:
    free(off); free(bytes); free(vh); free(mh); free(spec);
    return rc;
}
