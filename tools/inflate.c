/* inflate.c: DEFLATE and gzip decoding (RFC 1951, RFC 1952) for the converter.
 * Huffman codes are decoded through a 10-bit lookup table with a canonical bit-by-bit fallback
 * for longer codes. Input past the end reads as zero bits but consuming any of them is an error,
 * so every read stays inside the caller's buffer; the output grows up to a caller-given cap. */
#include "inflate.h"

#include <stdlib.h>
#include <string.h>

#define FAST_BITS 10
#define MAX_BITS 15

typedef struct {
    uint16_t fast[1 << FAST_BITS]; /* (len << 9) | symbol; 0 = longer code or unused */
    uint16_t count[MAX_BITS + 1];
    uint16_t symbol[320];
} huff;

typedef struct {
    const uint8_t *in;
    size_t len, pos;     /* pos may run past len: those bytes read as zero */
    uint64_t bits;
    int nbits;
    uint8_t *out;
    size_t olen, ocap, omax;
    rtr_err *err;
} inf;

static int bad(inf *s, const char *what) { return rtr_seterr(s->err, RTR_EFORMAT, "deflate: %s", what); }

static void fill(inf *s, int n) {
    while (s->nbits < n) {
        uint64_t b = s->pos < s->len ? s->in[s->pos] : 0;
        s->pos++;
        s->bits |= b << s->nbits;
        s->nbits += 8;
    }
}

/* bits consumed so far exceed the input? */
static int overrun(const inf *s) { return (uint64_t)s->pos * 8 - (uint64_t)s->nbits > (uint64_t)s->len * 8; }

static int getbits(inf *s, int n, uint32_t *v) {
    fill(s, n);
    *v = (uint32_t)(s->bits & ((1ull << n) - 1));
    s->bits >>= n;
    s->nbits -= n;
    return overrun(s) ? bad(s, "unexpected end of compressed data") : 0;
}

/* Builds a decoder from code lengths; over-subscribed sets are errors, incomplete ones are
 * allowed (a decode that lands on an unused code fails then). */
static int build(inf *s, huff *h, const uint8_t *lens, int n) {
    memset(h, 0, sizeof *h);
    for (int i = 0; i < n; i++) h->count[lens[i]]++;
    h->count[0] = 0;
    int left = 1;
    for (int l = 1; l <= MAX_BITS; l++) {
        left <<= 1;
        left -= h->count[l];
        if (left < 0) return bad(s, "over-subscribed Huffman code");
    }
    uint16_t offs[MAX_BITS + 2];
    offs[1] = 0;
    for (int l = 1; l <= MAX_BITS; l++) offs[l + 1] = (uint16_t)(offs[l] + h->count[l]);
    for (int i = 0; i < n; i++)
        if (lens[i]) h->symbol[offs[lens[i]]++] = (uint16_t)i;
    /* fast table: walk the canonical codes in order */
    uint32_t code = 0;
    int idx = 0;
    for (int l = 1; l <= MAX_BITS; l++) {
        for (int c = 0; c < h->count[l]; c++, idx++, code++) {
            if (l > FAST_BITS) continue;
            uint32_t rev = 0;
            for (int b = 0; b < l; b++) rev |= ((code >> b) & 1u) << (l - 1 - b);
            for (uint32_t k = rev; k < (1u << FAST_BITS); k += 1u << l)
                h->fast[k] = (uint16_t)((l << 9) | h->symbol[idx]);
        }
        code <<= 1;
    }
    return 0;
}

static int decode(inf *s, const huff *h, int *sym) {
    fill(s, FAST_BITS);
    uint16_t e = h->fast[s->bits & ((1u << FAST_BITS) - 1)];
    if (e) {
        int l = e >> 9;
        s->bits >>= l;
        s->nbits -= l;
        *sym = e & 511;
        return overrun(s) ? bad(s, "unexpected end of compressed data") : 0;
    }
    int code = 0, first = 0, index = 0;
    for (int l = 1; l <= MAX_BITS; l++) {
        uint32_t b;
        int r = getbits(s, 1, &b);
        if (r) return r;
        code |= (int)b;
        int count = h->count[l];
        if (code - count < first) {
            *sym = h->symbol[index + (code - first)];
            return 0;
        }
        index += count;
        first += count;
        first <<= 1;
        code <<= 1;
    }
    return bad(s, "invalid Huffman code");
}

static int grow(inf *s, size_t need) {
    if (need > s->omax) return rtr_seterr(s->err, RTR_EFORMAT, "deflate: output larger than %zu bytes", s->omax);
    if (need + 1 <= s->ocap) return 0;
    size_t nc = s->ocap ? s->ocap : 65536;
    while (nc < need + 1) nc *= 2;
    uint8_t *p = realloc(s->out, nc);
    if (!p) return rtr_seterr(s->err, RTR_ENOMEM, "out of memory");
    s->out = p;
    s->ocap = nc;
    return 0;
}

static const uint16_t lbase[29] = {3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31,
                                   35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
static const uint8_t lext[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2,
                                 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const uint16_t dbase[30] = {1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129,
                                   193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097,
                                   6145, 8193, 12289, 16385, 24577};
static const uint8_t dext[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6,
                                 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

static int codes(inf *s, const huff *lit, const huff *dist) {
    for (;;) {
        int sym, r;
        if ((r = decode(s, lit, &sym))) return r;
        if (sym < 256) {
            if ((r = grow(s, s->olen + 1))) return r;
            s->out[s->olen++] = (uint8_t)sym;
        } else if (sym == 256) {
            return 0;
        } else {
            sym -= 257;
            if (sym >= 29) return bad(s, "invalid length symbol");
            uint32_t e, de;
            if ((r = getbits(s, lext[sym], &e))) return r;
            size_t n = lbase[sym] + e;
            int ds;
            if ((r = decode(s, dist, &ds))) return r;
            if (ds >= 30) return bad(s, "invalid distance symbol");
            if ((r = getbits(s, dext[ds], &de))) return r;
            size_t d = dbase[ds] + de;
            if (d > s->olen) return bad(s, "distance too far back");
            if ((r = grow(s, s->olen + n))) return r;
            uint8_t *o = s->out + s->olen;
            for (size_t i = 0; i < n; i++) o[i] = o[(ptrdiff_t)i - (ptrdiff_t)d];
            s->olen += n;
        }
    }
}

static int block_stored(inf *s) {
    s->bits = 0; /* drop the rest of the current byte */
    s->pos -= (size_t)(s->nbits / 8);
    s->nbits = 0;
    if (s->pos > s->len || s->len - s->pos < 4) return bad(s, "truncated stored block");
    unsigned n = s->in[s->pos] | s->in[s->pos + 1] << 8;
    unsigned nn = s->in[s->pos + 2] | s->in[s->pos + 3] << 8;
    s->pos += 4;
    if ((n ^ 0xffffu) != nn) return bad(s, "stored block length check failed");
    if (s->len - s->pos < n) return bad(s, "truncated stored block");
    int r = grow(s, s->olen + n);
    if (r) return r;
    memcpy(s->out + s->olen, s->in + s->pos, n);
    s->olen += n;
    s->pos += n;
    return 0;
}

static int block_fixed(inf *s, huff *lit, huff *dist) {
    uint8_t l[288];
    int i = 0;
    for (; i < 144; i++) l[i] = 8;
    for (; i < 256; i++) l[i] = 9;
    for (; i < 280; i++) l[i] = 7;
    for (; i < 288; i++) l[i] = 8;
    int r = build(s, lit, l, 288);
    if (r) return r;
    for (i = 0; i < 30; i++) l[i] = 5;
    if ((r = build(s, dist, l, 30))) return r;
    return codes(s, lit, dist);
}

static int block_dynamic(inf *s, huff *lit, huff *dist) {
    static const uint8_t order[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
    uint32_t hlit, hdist, hclen, v;
    int r;
    if ((r = getbits(s, 5, &hlit)) || (r = getbits(s, 5, &hdist)) || (r = getbits(s, 4, &hclen))) return r;
    hlit += 257; hdist += 1; hclen += 4;
    if (hlit > 286 || hdist > 30) return bad(s, "bad code counts");
    uint8_t lens[320] = {0};
    for (uint32_t i = 0; i < hclen; i++) {
        if ((r = getbits(s, 3, &v))) return r;
        lens[order[i]] = (uint8_t)v;
    }
    if ((r = build(s, lit, lens, 19))) return r;
    memset(lens, 0, sizeof lens);
    uint32_t i = 0;
    while (i < hlit + hdist) {
        int sym;
        if ((r = decode(s, lit, &sym))) return r;
        if (sym < 16) { lens[i++] = (uint8_t)sym; continue; }
        uint8_t val = 0;
        uint32_t rep;
        if (sym == 16) {
            if (!i) return bad(s, "repeat with no previous length");
            val = lens[i - 1];
            if ((r = getbits(s, 2, &rep))) return r;
            rep += 3;
        } else if (sym == 17) {
            if ((r = getbits(s, 3, &rep))) return r;
            rep += 3;
        } else {
            if ((r = getbits(s, 7, &rep))) return r;
            rep += 11;
        }
        if (i + rep > hlit + hdist) return bad(s, "too many code lengths");
        while (rep--) lens[i++] = val;
    }
    if (!lens[256]) return bad(s, "no end-of-block code");
    if ((r = build(s, lit, lens, (int)hlit))) return r;
    if ((r = build(s, dist, lens + hlit, (int)hdist))) return r;
    return codes(s, lit, dist);
}

/* Inflates one raw DEFLATE stream starting at s->pos; leaves s->pos at the byte after it. */
static int run(inf *s) {
    huff *h = malloc(2 * sizeof(huff));
    if (!h) return rtr_seterr(s->err, RTR_ENOMEM, "out of memory");
    int r = 0;
    uint32_t last = 0, type;
    s->bits = 0;
    s->nbits = 0;
    while (!r && !last) {
        if ((r = getbits(s, 1, &last)) || (r = getbits(s, 2, &type))) break;
        if (type == 0) r = block_stored(s);
        else if (type == 1) r = block_fixed(s, &h[0], &h[1]);
        else if (type == 2) r = block_dynamic(s, &h[0], &h[1]);
        else r = bad(s, "invalid block type");
    }
    free(h);
    if (!r) { /* give back whole unread bytes */
        s->pos -= (size_t)(s->nbits / 8);
        s->nbits = 0;
        s->bits = 0;
    }
    return r;
}

static int finish(inf *s, uint8_t **out, size_t *out_len, int r) {
    if (r) {
        free(s->out);
        return r;
    }
    if ((r = grow(s, s->olen))) { free(s->out); return r; }
    s->out[s->olen] = 0;
    *out = s->out;
    *out_len = s->olen;
    return 0;
}

int rtr_inflate(const uint8_t *in, size_t in_len, size_t max_out, uint8_t **out, size_t *out_len,
                size_t *used, rtr_err *err) {
    inf s = {.in = in, .len = in_len, .omax = max_out, .err = err};
    int r = run(&s);
    if (!r && used) *used = s.pos;
    return finish(&s, out, out_len, r);
}

uint32_t rtr_crc32(uint32_t crc, const uint8_t *p, size_t n) {
    uint32_t t[256];
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        t[i] = c;
    }
    crc = ~crc;
    for (size_t i = 0; i < n; i++) crc = t[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

int rtr_gunzip(const uint8_t *in, size_t in_len, size_t max_out, uint8_t **out, size_t *out_len,
               rtr_err *err) {
    inf s = {.in = in, .len = in_len, .omax = max_out, .err = err};
    int r = 0, members = 0;
    while (!r && s.pos < in_len) {
        size_t p = s.pos;
        if (members && in[p] == 0) break; /* zero padding after the last member */
        if (in_len - p < 18 || in[p] != 0x1f || in[p + 1] != 0x8b) {
            r = rtr_seterr(err, RTR_EFORMAT, "gzip: %s", members ? "garbage after the compressed data" : "not a gzip file");
            break;
        }
        uint8_t flg = in[p + 3];
        if (in[p + 2] != 8 || (flg & 0xe0)) { r = rtr_seterr(err, RTR_EFORMAT, "gzip: unsupported method or flags"); break; }
        p += 10;
        if (flg & 4) { /* FEXTRA */
            if (in_len - p < 2) { r = rtr_seterr(err, RTR_EFORMAT, "gzip: truncated header"); break; }
            size_t xl = in[p] | (size_t)in[p + 1] << 8;
            p += 2;
            if (in_len - p < xl) { r = rtr_seterr(err, RTR_EFORMAT, "gzip: truncated header"); break; }
            p += xl;
        }
        for (int f = 8; f <= 16 && !r; f <<= 1) /* FNAME, FCOMMENT: NUL-terminated */
            if (flg & f) {
                const uint8_t *z = memchr(in + p, 0, in_len - p);
                if (!z) r = rtr_seterr(err, RTR_EFORMAT, "gzip: truncated header");
                else p = (size_t)(z - in) + 1;
            }
        if (r) break;
        if (flg & 2) p += 2; /* FHCRC */
        if (p > in_len) { r = rtr_seterr(err, RTR_EFORMAT, "gzip: truncated header"); break; }
        size_t start = s.olen;
        s.pos = p;
        if ((r = run(&s))) break;
        if (s.pos > in_len || in_len - s.pos < 8) { r = rtr_seterr(err, RTR_EFORMAT, "gzip: truncated trailer"); break; }
        const uint8_t *t = in + s.pos;
        uint32_t crc = (uint32_t)t[0] | (uint32_t)t[1] << 8 | (uint32_t)t[2] << 16 | (uint32_t)t[3] << 24;
        uint32_t isz = (uint32_t)t[4] | (uint32_t)t[5] << 8 | (uint32_t)t[6] << 16 | (uint32_t)t[7] << 24;
        s.pos += 8;
        if (rtr_crc32(0, s.out ? s.out + start : (const uint8_t *)"", s.olen - start) != crc ||
            isz != (uint32_t)(s.olen - start)) {
            r = rtr_seterr(err, RTR_EFORMAT, "gzip: CRC or length check failed (data damaged)");
            break;
        }
        members++;
    }
    return finish(&s, out, out_len, r);
}
