/* format.c: reading and writing .rotor files (docs/format.md).
 * The reader maps the file and checks the header, metadata and directory before anything uses
 * them; tensor data is used in place. The writer streams tensors into a temporary file next to
 * the destination and renames it only when everything is on disk. */
#include "format.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *type_names[RTR_T_COUNT] = {"f32", "f16", "bf16", "t2", "q8r", "u8", "i32", "u32"};

const char *rtr_type_name(int type) {
    return (type >= 0 && type < RTR_T_COUNT) ? type_names[type] : "?";
}

uint64_t rtr_t2_row_bytes(uint64_t k) { return (k + RTR_T2_BLOCK - 1) / RTR_T2_BLOCK * 32; }
uint64_t rtr_q8r_row_bytes(uint64_t k) { return (k + 63) / 64 * 64; }
uint64_t rtr_t2_kpad(uint64_t k) { return (k + RTR_T2_BLOCK - 1) / RTR_T2_BLOCK * RTR_T2_BLOCK; }

static int mul_ok(uint64_t a, uint64_t b, uint64_t *out) {
    if (a && b > UINT64_MAX / a) return 0;
    *out = a * b;
    return 1;
}

uint64_t rtr_tensor_bytes(int type, int ndim, const uint64_t *shape) {
    if (ndim < 1 || ndim > RTR_MAX_DIMS) return 0;
    uint64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] == 0 || shape[i] > (1ull << 40)) return 0;
        if (!mul_ok(n, shape[i], &n)) return 0;
    }
    uint64_t k = shape[ndim - 1], rows = n / k, out;
    switch (type) {
    case RTR_T_F32: case RTR_T_I32: case RTR_T_U32: return mul_ok(n, 4, &out) ? out : 0;
    case RTR_T_F16: case RTR_T_BF16: return mul_ok(n, 2, &out) ? out : 0;
    case RTR_T_U8: return n;
    case RTR_T_T2: return mul_ok(rows, rtr_t2_row_bytes(k), &out) ? out : 0;
    case RTR_T_Q8R: {
        uint64_t d;
        if (!mul_ok(rows, rtr_q8r_row_bytes(k), &d) || !mul_ok(rows, 4, &out)) return 0;
        return d + out;
    }
    }
    return 0;
}

/* ---- hashing: 64-bit, word at a time, streaming-friendly ---- */
#define H_P1 0x9E3779B185EBCA87ull
#define H_P2 0xC2B2AE3D27D4EB4Full
static inline uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
static inline uint64_t h_round(uint64_t h, uint64_t w) { return rotl64(h ^ (w * H_P1), 31) * H_P2; }
static uint64_t h_final(uint64_t h, uint64_t n) {
    h ^= n;
    h ^= h >> 33; h *= H_P2; h ^= h >> 29; h *= H_P1; h ^= h >> 32;
    return h;
}

typedef struct { uint64_t h, n; uint8_t tail[8]; int ntail; } hstate;
static void hs_init(hstate *s, uint64_t seed) { memset(s, 0, sizeof *s); s->h = seed ^ H_P1; }
static void hs_update(hstate *s, const uint8_t *p, size_t n) {
    s->n += n;
    while (s->ntail && n) { s->tail[s->ntail++] = *p++; n--; if (s->ntail == 8) { uint64_t w; memcpy(&w, s->tail, 8); s->h = h_round(s->h, w); s->ntail = 0; } }
    /* four independent lanes would be faster; one keeps the definition short and is ~3 GB/s */
    while (n >= 8) { uint64_t w; memcpy(&w, p, 8); s->h = h_round(s->h, w); p += 8; n -= 8; }
    while (n) { s->tail[s->ntail++] = *p++; n--; }
}
static uint64_t hs_final(hstate *s) {
    uint64_t h = s->h;
    if (s->ntail) { uint64_t w = 0; memcpy(&w, s->tail, s->ntail); h = h_round(h, w); }
    return h_final(h, s->n);
}
uint64_t rtr_hash64(const void *data, size_t n, uint64_t seed) {
    hstate s; hs_init(&s, seed); hs_update(&s, data, n); return hs_final(&s);
}

/* ---- little-endian field access ---- */
static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t rd64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static void wr32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void wr64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

/* ---- metadata walking: returns 0 and fills *next, or -1 if the entry is malformed ---- */
typedef struct { const char *key; size_t klen; int type; const uint8_t *val; size_t vlen; } meta_ent;
static int meta_next(const uint8_t *p, const uint8_t *end, meta_ent *e, const uint8_t **next) {
    if (end - p < 3) return -1;
    size_t kl = rd16(p);
    p += 2;
    if ((size_t)(end - p) < kl + 1) return -1;
    e->key = (const char *)p; e->klen = kl; p += kl;
    e->type = *p++;
    switch (e->type) {
    case RTR_M_INT: case RTR_M_FLOAT:
        if (end - p < 8) return -1;
        e->val = p; e->vlen = 8; p += 8; break;
    case RTR_M_STR: {
        if (end - p < 4) return -1;
        size_t l = rd32(p); p += 4;
        if ((size_t)(end - p) < l) return -1;
        e->val = p; e->vlen = l; p += l; break;
    }
    default: return -1;
    }
    *next = p;
    return 0;
}

static int meta_find(const rtr_file *f, const char *key, int type, meta_ent *e) {
    if (!f->meta || f->meta_size < 4) return RTR_EFORMAT;
    uint32_t n = rd32(f->meta);
    const uint8_t *p = f->meta + 4, *end = f->meta + f->meta_size;
    size_t kl = strlen(key);
    for (uint32_t i = 0; i < n; i++) {
        if (meta_next(p, end, e, &p)) return RTR_EFORMAT;
        if (e->klen == kl && !memcmp(e->key, key, kl)) return e->type == type ? 0 : RTR_EFORMAT;
    }
    return RTR_EFORMAT;
}

int rtr_meta_int(const rtr_file *f, const char *key, int64_t *out) {
    meta_ent e;
    int r = meta_find(f, key, RTR_M_INT, &e);
    if (!r) *out = (int64_t)rd64(e.val);
    return r;
}
int rtr_meta_float(const rtr_file *f, const char *key, double *out) {
    meta_ent e;
    int r = meta_find(f, key, RTR_M_FLOAT, &e);
    if (!r) memcpy(out, e.val, 8);
    return r;
}
int rtr_meta_str(const rtr_file *f, const char *key, const char **s, size_t *len) {
    meta_ent e;
    int r = meta_find(f, key, RTR_M_STR, &e);
    if (!r) { *s = (const char *)e.val; if (len) *len = e.vlen; }
    return r;
}

/* ---- reader ---- */
int rtr_open_regular(const char *path, int *fd, uint64_t *size, rtr_err *err) {
    int d = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (d < 0) return rtr_seterr(err, RTR_EIO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(d, &st) || !S_ISREG(st.st_mode)) {
        close(d);
        return rtr_seterr(err, RTR_EIO, "%s: not a regular file", path);
    }
    *fd = d;
    *size = (uint64_t)st.st_size;
    return 0;
}

int rtr_file_open(rtr_file *f, const char *path, rtr_err *err) {
    memset(f, 0, sizeof *f);
    f->fd = -1;
    int fd, r;
    uint64_t size;
    if ((r = rtr_open_regular(path, &fd, &size, err))) return r;
    if (size < RTR_HEADER_BYTES) {
        close(fd);
        return rtr_seterr(err, RTR_EFORMAT, "%s: too short to be a .rotor file (%llu bytes)", path, (unsigned long long)size);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        close(fd);
        return rtr_seterr(err, RTR_EIO, "%s: mmap: %s", path, strerror(errno));
    }
    f->fd = fd; f->map = map; f->size = size;
    const uint8_t *h = map;
    int rc = RTR_EFORMAT;
    if (memcmp(h, RTR_MAGIC, 8)) { rtr_seterr(err, rc, "%s: not a .rotor file (bad magic)", path); goto fail; }
    uint32_t ver = rd32(h + 8);
    if (ver != RTR_FORMAT_VERSION) { rtr_seterr(err, rc, "%s: .rotor version %u is not supported (this rotor reads %u)", path, ver, RTR_FORMAT_VERSION); goto fail; }
    uint32_t align = rd32(h + 12);
    uint64_t fsize = rd64(h + 16), moff = rd64(h + 24), msize = rd64(h + 32), doff = rd64(h + 40);
    uint32_t nt = rd32(h + 48);
    if (fsize != size) { rtr_seterr(err, rc, "%s: truncated or extended: header says %llu bytes, file has %llu", path, (unsigned long long)fsize, (unsigned long long)size); goto fail; }
    if (align != RTR_ALIGN) { rtr_seterr(err, rc, "%s: unsupported alignment %u", path, align); goto fail; }
    if (nt > 1000000 || moff < RTR_HEADER_BYTES || msize < 4 || moff > size || msize > size - moff ||
        doff < RTR_HEADER_BYTES || doff > size || (uint64_t)nt * RTR_DIR_ENTRY_BYTES > size - doff) {
        rtr_seterr(err, rc, "%s: metadata or directory out of bounds", path); goto fail;
    }
    hstate hs; hs_init(&hs, 0);
    hs_update(&hs, h, 56);
    hs_update(&hs, h + moff, msize);
    hs_update(&hs, h + doff, (size_t)nt * RTR_DIR_ENTRY_BYTES);
    if (hs_final(&hs) != rd64(h + 56)) { rtr_seterr(err, rc, "%s: header checksum mismatch (file damaged)", path); goto fail; }
    f->meta = h + moff; f->meta_size = msize;
    { /* walk the metadata once so lookups can trust it */
        uint32_t n = rd32(f->meta);
        const uint8_t *p = f->meta + 4, *end = f->meta + msize;
        meta_ent e;
        for (uint32_t i = 0; i < n; i++)
            if (meta_next(p, end, &e, &p)) { rtr_seterr(err, rc, "%s: malformed metadata entry %u", path, i); goto fail; }
    }
    f->tensors = calloc(nt ? nt : 1, sizeof(rtr_tensor));
    if (!f->tensors) { rc = rtr_seterr(err, RTR_ENOMEM, "out of memory"); goto fail; }
    f->n_tensors = nt;
    for (uint32_t i = 0; i < nt; i++) {
        const uint8_t *e = h + doff + (uint64_t)i * RTR_DIR_ENTRY_BYTES;
        rtr_tensor *t = &f->tensors[i];
        memcpy(t->name, e, RTR_NAME_MAX);
        if (!memchr(t->name, 0, RTR_NAME_MAX) || !t->name[0]) { rtr_seterr(err, rc, "%s: tensor %u has a bad name", path, i); goto fail; }
        t->type = rd32(e + 56); t->ndim = rd32(e + 60);
        for (int d = 0; d < RTR_MAX_DIMS; d++) t->shape[d] = rd64(e + 64 + 8 * d);
        t->offset = rd64(e + 96); t->size = rd64(e + 104); t->checksum = rd64(e + 112);
        memcpy(&t->scale, e + 120, 4);
        t->flags = rd32(e + 124);
        if (t->type >= RTR_T_COUNT) { rtr_seterr(err, rc, "%s: tensor %s: unknown type %u", path, t->name, t->type); goto fail; }
        uint64_t want = rtr_tensor_bytes((int)t->type, (int)t->ndim, t->shape);
        if (!want || want != t->size) { rtr_seterr(err, rc, "%s: tensor %s: size %llu does not match its shape", path, t->name, (unsigned long long)t->size); goto fail; }
        if (t->offset % RTR_ALIGN || t->offset > size || t->size > size - t->offset) { rtr_seterr(err, rc, "%s: tensor %s: data out of bounds", path, t->name); goto fail; }
        if (t->type == RTR_T_T2 && !(isfinite(t->scale) && t->scale > 0)) { rtr_seterr(err, rc, "%s: tensor %s: bad ternary scale", path, t->name); goto fail; }
        for (uint32_t j = 0; j < i; j++)
            if (!strcmp(f->tensors[j].name, t->name)) { rtr_seterr(err, rc, "%s: tensor %s appears twice", path, t->name); goto fail; }
        t->data = h + t->offset;
    }
    return 0;
fail:
    rtr_file_close(f);
    return rc;
}

void rtr_file_close(rtr_file *f) {
    if (f->map) munmap((void *)f->map, f->size);
    if (f->fd >= 0) close(f->fd);
    free(f->tensors);
    memset(f, 0, sizeof *f);
    f->fd = -1;
}

const rtr_tensor *rtr_file_tensor(const rtr_file *f, const char *name) {
    for (uint32_t i = 0; i < f->n_tensors; i++)
        if (!strcmp(f->tensors[i].name, name)) return &f->tensors[i];
    return NULL;
}

int rtr_file_verify(const rtr_file *f, void (*progress)(uint64_t, uint64_t, void *), void *ud,
                    rtr_err *err) {
    uint64_t total = 0, done = 0;
    for (uint32_t i = 0; i < f->n_tensors; i++) total += f->tensors[i].size;
    for (uint32_t i = 0; i < f->n_tensors; i++) {
        const rtr_tensor *t = &f->tensors[i];
        if (rtr_hash64(t->data, t->size, 0) != t->checksum)
            return rtr_seterr(err, RTR_EFORMAT, "tensor %s: checksum mismatch (data damaged)", t->name);
        if (t->type == RTR_T_T2) {
            const uint8_t *p = t->data;
            for (uint64_t b = 0; b < t->size; b++) {
                uint8_t v = p[b];
                /* a field holds 11 when both of its bits are set */
                if ((v & (v >> 1)) & 0x55)
                    return rtr_seterr(err, RTR_EFORMAT, "tensor %s: invalid ternary code 11 at byte %llu", t->name, (unsigned long long)b);
            }
            /* padding columns beyond k must be zero codes */
            uint64_t k = t->shape[t->ndim - 1], rb = rtr_t2_row_bytes(k), rows = t->size / rb;
            for (uint64_t r = 0; r < rows && k % RTR_T2_BLOCK; r++)
                for (uint64_t j = k; j < rb * 4; j++)
                    if (rtr_t2_get(p + r * rb, j) != 0)
                        return rtr_seterr(err, RTR_EFORMAT, "tensor %s: non-zero padding in row %llu", t->name, (unsigned long long)r);
        }
        if (t->type == RTR_T_Q8R) {
            uint64_t k = t->shape[t->ndim - 1], rows = t->size / (rtr_q8r_row_bytes(k) + 4);
            const uint8_t *sc = (const uint8_t *)t->data + rows * rtr_q8r_row_bytes(k);
            for (uint64_t r = 0; r < rows; r++) {
                float s; memcpy(&s, sc + 4 * r, 4);
                if (!isfinite(s)) return rtr_seterr(err, RTR_EFORMAT, "tensor %s: row %llu has a non-finite scale", t->name, (unsigned long long)r);
            }
        }
        done += t->size;
        if (progress) progress(done, total, ud);
    }
    return 0;
}

/* ---- ternary packing ---- */
void rtr_t2_pack_row(const int8_t *w, uint64_t k, uint8_t *out) {
    uint64_t rb = rtr_t2_row_bytes(k);
    memset(out, 0, rb);
    for (uint64_t j = 0; j < k; j++) {
        uint8_t code = w[j] > 0 ? 2 : (w[j] < 0 ? 1 : 0);
        uint64_t blk = j / RTR_T2_BLOCK, e = j % RTR_T2_BLOCK;
        out[blk * 32 + (e % 32)] |= (uint8_t)(code << (2 * (e / 32)));
    }
}

int rtr_t2_get(const uint8_t *row, uint64_t j) {
    uint64_t blk = j / RTR_T2_BLOCK, e = j % RTR_T2_BLOCK;
    int code = (row[blk * 32 + (e % 32)] >> (2 * (e / 32))) & 3;
    static const int val[4] = {0, -1, 1, 2};
    return val[code];
}

/* ---- half precision ---- */
float rtr_f16_to_f32(uint16_t h) {
    uint32_t s = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff, u;
    if (e == 0) {
        if (!m) u = s;
        else { /* subnormal */
            e = 127 - 15 + 1;
            while (!(m & 0x400)) { m <<= 1; e--; }
            u = s | (e << 23) | ((m & 0x3ff) << 13);
        }
    } else if (e == 31) u = s | 0x7f800000 | (m << 13);
    else u = s | ((e + 127 - 15) << 23) | (m << 13);
    float f; memcpy(&f, &u, 4); return f;
}

uint16_t rtr_f32_to_f16(float f) {
    uint32_t u; memcpy(&u, &f, 4);
    uint32_t s = (u >> 16) & 0x8000, e = (u >> 23) & 0xff, m = u & 0x7fffff;
    if (e == 0xff) return (uint16_t)(s | 0x7c00 | (m ? 0x200 : 0));
    int ne = (int)e - 127 + 15;
    if (ne >= 31) return (uint16_t)(s | 0x7c00);
    if (ne <= 0) {
        if (ne < -10) return (uint16_t)s;
        m |= 0x800000;
        int shift = 14 - ne;
        uint32_t hm = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (hm & 1))) hm++;
        return (uint16_t)(s | hm);
    }
    uint32_t hm = m >> 13, rem = m & 0x1fff;
    uint32_t r = s | ((uint32_t)ne << 10) | hm;
    if (rem > 0x1000 || (rem == 0x1000 && (hm & 1))) r++; /* carries into the exponent correctly */
    return (uint16_t)r;
}

float rtr_bf16_to_f32(uint16_t h) { uint32_t u = (uint32_t)h << 16; float f; memcpy(&f, &u, 4); return f; }
uint16_t rtr_f32_to_bf16(float f) {
    uint32_t u; memcpy(&u, &f, 4);
    if ((u & 0x7fffffff) > 0x7f800000) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fff + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

/* ---- writer ---- */
struct rtr_writer {
    char *path, *tmp;
    FILE *fp;
    uint8_t *meta; size_t meta_len, meta_cap; uint32_t meta_count;
    rtr_tensor *t; uint32_t nt, tcap;
    uint64_t pos;        /* current file offset */
    uint64_t remaining;  /* bytes still owed to the current tensor */
    hstate hs;
    int failed;
};

static int w_fail(rtr_writer *w, rtr_err *err, const char *what) {
    int e = errno;
    w->failed = 1;
    return rtr_seterr(err, e == ENOSPC ? RTR_ENOSPC : RTR_EIO, "%s: %s: %s", w->path, what,
                      e == ENOSPC ? "no space left on device" : strerror(e));
}

int rtr_writer_new(rtr_writer **out, const char *path, rtr_err *err) {
    rtr_writer *w = calloc(1, sizeof *w);
    if (!w) return rtr_seterr(err, RTR_ENOMEM, "out of memory");
    w->path = strdup(path);
    w->tmp = malloc(strlen(path) + 32);
    if (!w->path || !w->tmp) { rtr_writer_free(w); return rtr_seterr(err, RTR_ENOMEM, "out of memory"); }
    sprintf(w->tmp, "%s.tmp%ld", path, (long)getpid());
    w->fp = fopen(w->tmp, "wb");
    if (!w->fp) {
        int e = errno;
        rtr_seterr(err, RTR_EIO, "%s: cannot create: %s", w->tmp, strerror(e));
        free(w->tmp); w->tmp = NULL;
        rtr_writer_free(w);
        return RTR_EIO;
    }
    static const uint8_t zero[RTR_HEADER_BYTES];
    if (fwrite(zero, 1, sizeof zero, w->fp) != sizeof zero) { int r = w_fail(w, err, "write"); rtr_writer_free(w); return r; }
    w->pos = RTR_HEADER_BYTES;
    uint8_t cnt[4] = {0};
    w->meta_cap = 4096; w->meta = malloc(w->meta_cap);
    if (!w->meta) { rtr_writer_free(w); return rtr_seterr(err, RTR_ENOMEM, "out of memory"); }
    memcpy(w->meta, cnt, 4); w->meta_len = 4;
    *out = w;
    return 0;
}

static int meta_put(rtr_writer *w, const char *key, int type, const void *v, size_t vlen) {
    size_t kl = strlen(key);
    if (kl > 65535 || vlen > UINT32_MAX) return RTR_EARG;
    size_t need = 2 + kl + 1 + (type == RTR_M_STR ? 4 : 0) + vlen;
    if (w->meta_len + need > w->meta_cap) {
        size_t nc = (w->meta_len + need) * 2;
        uint8_t *nm = realloc(w->meta, nc);
        if (!nm) return RTR_ENOMEM;
        w->meta = nm; w->meta_cap = nc;
    }
    uint8_t *p = w->meta + w->meta_len;
    p[0] = (uint8_t)kl; p[1] = (uint8_t)(kl >> 8); p += 2;
    memcpy(p, key, kl); p += kl;
    *p++ = (uint8_t)type;
    if (type == RTR_M_STR) { wr32(p, (uint32_t)vlen); p += 4; }
    memcpy(p, v, vlen); p += vlen;
    w->meta_len = (size_t)(p - w->meta);
    w->meta_count++;
    return 0;
}
int rtr_writer_meta_int(rtr_writer *w, const char *key, int64_t v) { return meta_put(w, key, RTR_M_INT, &v, 8); }
int rtr_writer_meta_float(rtr_writer *w, const char *key, double v) { return meta_put(w, key, RTR_M_FLOAT, &v, 8); }
int rtr_writer_meta_str(rtr_writer *w, const char *key, const char *s, size_t len) { return meta_put(w, key, RTR_M_STR, s, len); }

static int finish_tensor(rtr_writer *w) {
    if (w->nt) w->t[w->nt - 1].checksum = hs_final(&w->hs);
    return 0;
}

static int pad_to(rtr_writer *w, uint64_t align, rtr_err *err) {
    static const uint8_t zero[4096];
    while (w->pos % align) {
        size_t n = (size_t)(align - w->pos % align);
        if (n > sizeof zero) n = sizeof zero;
        if (fwrite(zero, 1, n, w->fp) != n) return w_fail(w, err, "write");
        w->pos += n;
    }
    return 0;
}

int rtr_writer_tensor(rtr_writer *w, const char *name, int type, int ndim, const uint64_t *shape,
                      float scale, rtr_err *err) {
    if (w->failed) return rtr_seterr(err, RTR_EIO, "%s: writer already failed", w->path);
    if (w->remaining) return rtr_seterr(err, RTR_EARG, "tensor %s declared before the previous one was written", name);
    if (strlen(name) >= RTR_NAME_MAX) return rtr_seterr(err, RTR_EARG, "tensor name too long: %s", name);
    uint64_t bytes = rtr_tensor_bytes(type, ndim, shape);
    if (!bytes) return rtr_seterr(err, RTR_EARG, "tensor %s: invalid shape", name);
    finish_tensor(w);
    if (w->nt == w->tcap) {
        uint32_t nc = w->tcap ? w->tcap * 2 : 64;
        rtr_tensor *nt = realloc(w->t, nc * sizeof *nt);
        if (!nt) return rtr_seterr(err, RTR_ENOMEM, "out of memory");
        w->t = nt; w->tcap = nc;
    }
    int r = pad_to(w, RTR_ALIGN, err);
    if (r) return r;
    rtr_tensor *t = &w->t[w->nt++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, RTR_NAME_MAX, "%s", name);
    t->type = (uint32_t)type; t->ndim = (uint32_t)ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->offset = w->pos; t->size = bytes; t->scale = scale;
    w->remaining = bytes;
    hs_init(&w->hs, 0);
    return 0;
}

int rtr_writer_data(rtr_writer *w, const void *data, size_t n, rtr_err *err) {
    if (w->failed) return rtr_seterr(err, RTR_EIO, "%s: writer already failed", w->path);
    if (n > w->remaining) return rtr_seterr(err, RTR_EARG, "tensor %s: more data than its shape holds", w->nt ? w->t[w->nt - 1].name : "?");
    if (n && fwrite(data, 1, n, w->fp) != n) return w_fail(w, err, "write");
    hs_update(&w->hs, data, n);
    w->pos += n; w->remaining -= n;
    return 0;
}

int rtr_writer_finish(rtr_writer *w, rtr_err *err) {
    if (w->failed) return rtr_seterr(err, RTR_EIO, "%s: writer already failed", w->path);
    if (w->remaining) return rtr_seterr(err, RTR_EARG, "tensor %s: %llu bytes missing", w->t[w->nt - 1].name, (unsigned long long)w->remaining);
    finish_tensor(w);
    int r = pad_to(w, 8, err);
    if (r) return r;
    wr32(w->meta, w->meta_count);
    uint64_t moff = w->pos;
    if (fwrite(w->meta, 1, w->meta_len, w->fp) != w->meta_len) return w_fail(w, err, "write");
    w->pos += w->meta_len;
    if ((r = pad_to(w, 8, err))) return r;
    uint64_t doff = w->pos;
    size_t dl = (size_t)w->nt * RTR_DIR_ENTRY_BYTES;
    uint8_t *dir = calloc(1, dl ? dl : 1);
    if (!dir) return rtr_seterr(err, RTR_ENOMEM, "out of memory");
    for (uint32_t i = 0; i < w->nt; i++) {
        uint8_t *e = dir + (size_t)i * RTR_DIR_ENTRY_BYTES;
        const rtr_tensor *t = &w->t[i];
        memcpy(e, t->name, RTR_NAME_MAX);
        wr32(e + 56, t->type); wr32(e + 60, t->ndim);
        for (int d = 0; d < RTR_MAX_DIMS; d++) wr64(e + 64 + 8 * d, t->shape[d]);
        wr64(e + 96, t->offset); wr64(e + 104, t->size); wr64(e + 112, t->checksum);
        memcpy(e + 120, &t->scale, 4); wr32(e + 124, t->flags);
    }
    if (fwrite(dir, 1, dl, w->fp) != dl) { free(dir); return w_fail(w, err, "write"); }
    w->pos += dl;
    uint8_t h[RTR_HEADER_BYTES] = {0};
    memcpy(h, RTR_MAGIC, 8);
    wr32(h + 8, RTR_FORMAT_VERSION); wr32(h + 12, RTR_ALIGN);
    wr64(h + 16, w->pos); wr64(h + 24, moff); wr64(h + 32, w->meta_len); wr64(h + 40, doff);
    wr32(h + 48, w->nt);
    hstate hs; hs_init(&hs, 0);
    hs_update(&hs, h, 56); hs_update(&hs, w->meta, w->meta_len); hs_update(&hs, dir, dl);
    wr64(h + 56, hs_final(&hs));
    free(dir);
    if (fseek(w->fp, 0, SEEK_SET) || fwrite(h, 1, sizeof h, w->fp) != sizeof h) return w_fail(w, err, "write");
    if (fflush(w->fp) || fsync(fileno(w->fp))) return w_fail(w, err, "flush");
    if (fclose(w->fp)) { w->fp = NULL; return w_fail(w, err, "close"); }
    w->fp = NULL;
    if (rename(w->tmp, w->path)) return w_fail(w, err, "rename");
    free(w->tmp); w->tmp = NULL;
    return 0;
}

uint64_t rtr_writer_bytes(const rtr_writer *w) { return w->pos; }

void rtr_writer_free(rtr_writer *w) {
    if (!w) return;
    if (w->fp) fclose(w->fp);
    if (w->tmp) unlink(w->tmp);
    free(w->tmp); free(w->path); free(w->meta); free(w->t);
    free(w);
}
