/* gguf.c: reading GGUF v2/v3 headers and locating tensor data.
 * Layout: magic "GGUF", u32 version, u64 tensor count, u64 key/value count, the key/values
 * (u64-length strings, u32 value type, value), the tensor records (name, u32 n_dims, u64 ne[],
 * u32 type, u64 offset), padding to general.alignment (default 32), then the data. Everything
 * is little-endian. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "gguf.h"
#include "../models/format.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int scalar_int(uint32_t t, const uint8_t *p, int64_t *out);
static const int scalar_size[RTR_GGUF_NTYPES] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

typedef struct {
    uint32_t id, blck, tsize;
    const char *name;
} ggml_type_info;

static const ggml_type_info types[] = {
    {RTR_GGML_F32, 1, 4, "f32"},       {RTR_GGML_F16, 1, 2, "f16"},
    {RTR_GGML_Q4_0, 32, 18, "q4_0"},   {RTR_GGML_Q4_1, 32, 20, "q4_1"},
    {RTR_GGML_Q5_0, 32, 22, "q5_0"},   {RTR_GGML_Q5_1, 32, 24, "q5_1"},
    {RTR_GGML_Q8_0, 32, 34, "q8_0"},   {RTR_GGML_Q8_1, 32, 36, "q8_1"},
    {RTR_GGML_Q2_K, 256, 84, "q2_K"},  {RTR_GGML_Q3_K, 256, 110, "q3_K"},
    {RTR_GGML_Q4_K, 256, 144, "q4_K"}, {RTR_GGML_Q5_K, 256, 176, "q5_K"},
    {RTR_GGML_Q6_K, 256, 210, "q6_K"}, {RTR_GGML_Q8_K, 256, 292, "q8_K"},
    {RTR_GGML_I8, 1, 1, "i8"},         {RTR_GGML_I16, 1, 2, "i16"},
    {RTR_GGML_I32, 1, 4, "i32"},       {RTR_GGML_I64, 1, 8, "i64"},
    {RTR_GGML_F64, 1, 8, "f64"},       {RTR_GGML_BF16, 1, 2, "bf16"},
    {RTR_GGML_TQ1_0, 256, 54, "tq1_0"}, {RTR_GGML_TQ2_0, 256, 66, "tq2_0"},
    {RTR_GGML_I2_S, 128, 32, "i2_s"},
};

static const ggml_type_info *type_info(uint32_t id) {
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (types[i].id == id) return &types[i];
    return NULL;
}

const char *rtr_ggml_type_name(uint32_t type) {
    const ggml_type_info *t = type_info(type);
    return t ? t->name : "unknown";
}

typedef struct {
    const uint8_t *p, *end;
    const char *base;
    rtr_err *err;
} cursor;

static int trunc_err(cursor *c, const char *what) {
    return rtr_seterr(c->err, RTR_EFORMAT, "%s: truncated or corrupt GGUF header (%s)", c->base, what);
}

static int take(cursor *c, size_t n, const uint8_t **out, const char *what) {
    if ((size_t)(c->end - c->p) < n) {
        trunc_err(c, what);
        return RTR_EFORMAT;
    }
    *out = c->p;
    c->p += n;
    return 0;
}
static int rd_u32(cursor *c, uint32_t *v, const char *what) {
    const uint8_t *p;
    if (take(c, 4, &p, what)) return RTR_EFORMAT;
    memcpy(v, p, 4);
    return 0;
}
static int rd_u64(cursor *c, uint64_t *v, const char *what) {
    const uint8_t *p;
    if (take(c, 8, &p, what)) return RTR_EFORMAT;
    memcpy(v, p, 8);
    return 0;
}
static int rd_str(cursor *c, const char **s, uint64_t *len, const char *what) {
    uint64_t l;
    if (rd_u64(c, &l, what)) return RTR_EFORMAT;
    if (l > (uint64_t)(c->end - c->p))
        return rtr_seterr(c->err, RTR_EFORMAT, "%s: truncated or corrupt GGUF header: string length %llu runs past the end of the file (%s)",
                          c->base, (unsigned long long)l, what);
    *s = (const char *)c->p;
    *len = l;
    c->p += l;
    return 0;
}

/* Skips one value of type t (arrays nest at most a few levels). */
static int skip_value(cursor *c, uint32_t t, int depth, const char *what) {
    if (t >= RTR_GGUF_NTYPES)
        return rtr_seterr(c->err, RTR_EFORMAT, "%s: unknown value type %u (%s)", c->base, t, what);
    if (t == RTR_GGUF_STR) {
        const char *s;
        uint64_t l;
        return rd_str(c, &s, &l, what);
    }
    if (t == RTR_GGUF_ARR) {
        uint32_t at;
        uint64_t n;
        if (depth > 3) return rtr_seterr(c->err, RTR_EFORMAT, "%s: arrays nested too deeply (%s)", c->base, what);
        if (rd_u32(c, &at, what) || rd_u64(c, &n, what)) return RTR_EFORMAT;
        if (at >= RTR_GGUF_NTYPES)
            return rtr_seterr(c->err, RTR_EFORMAT, "%s: unknown array type %u (%s)", c->base, at, what);
        if (at != RTR_GGUF_STR && at != RTR_GGUF_ARR) {
            uint64_t sz = (uint64_t)scalar_size[at];
            if (n > (uint64_t)(c->end - c->p) / sz)
                return rtr_seterr(c->err, RTR_EFORMAT, "%s: truncated or corrupt GGUF header: array of %llu elements runs past the end of the file (%s)",
                                  c->base, (unsigned long long)n, what);
            c->p += n * sz;
            return 0;
        }
        if (n > (uint64_t)(c->end - c->p) / 8) /* every element needs at least 8 bytes */
            return rtr_seterr(c->err, RTR_EFORMAT, "%s: truncated or corrupt GGUF header: array of %llu elements runs past the end of the file (%s)",
                              c->base, (unsigned long long)n, what);
        for (uint64_t i = 0; i < n; i++)
            if (skip_value(c, at, depth + 1, what)) return RTR_EFORMAT;
        return 0;
    }
    const uint8_t *p;
    return take(c, (size_t)scalar_size[t], &p, what);
}

int rtr_gguf_probe(const char *path) {
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return 0;
    char m[4];
    int ok = read(fd, m, 4) == 4 && !memcmp(m, "GGUF", 4);
    close(fd);
    return ok;
}

void rtr_gguf_close(rtr_gguf *g) {
    if (g->map) munmap((void *)g->map, g->size);
    for (uint64_t i = 0; g->t && i < g->n_t; i++) free(g->t[i].name);
    free(g->t);
    free(g->kv);
    free(g->path);
    memset(g, 0, sizeof *g);
}

int rtr_gguf_open(rtr_gguf *g, const char *path, rtr_err *err) {
    memset(g, 0, sizeof *g);
    g->path = strdup(path);
    if (!g->path) return rtr_seterr(err, RTR_ENOMEM, "out of memory");
    const char *b = strrchr(g->path, '/');
    g->base = b ? b + 1 : g->path;
    int fd;
    uint64_t size;
    int orc = rtr_open_regular(path, &fd, &size, err);
    if (orc || size < 24) {
        if (!orc) {
            close(fd);
            orc = rtr_seterr(err, RTR_EFORMAT, "%s: not a GGUF file (too short)", g->base);
        }
        rtr_gguf_close(g);
        return orc;
    }
    void *map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        int r = rtr_seterr(err, RTR_EIO, "%s: mmap: %s", path, strerror(errno));
        rtr_gguf_close(g);
        return r;
    }
    g->map = map;
    g->size = (size_t)size;
    cursor c = {g->map, g->map + g->size, g->base, err};
    int r = RTR_EFORMAT;
    uint64_t nt, nkv;
    if (memcmp(g->map, "GGUF", 4)) { rtr_seterr(err, r, "%s: not a GGUF file (bad magic)", g->base); goto fail; }
    c.p += 4;
    rd_u32(&c, &g->version, "version");
    if (g->version != 2 && g->version != 3) {
        rtr_seterr(err, r, "%s: GGUF version %u is not supported (2 and 3 are)", g->base, g->version);
        goto fail;
    }
    if (rd_u64(&c, &nt, "tensor count") || rd_u64(&c, &nkv, "key count")) goto fail;
    /* each key/value needs >= 13 bytes and each tensor record >= 28: bound the counts first */
    if (nkv > g->size / 13 || nt > g->size / 28 || nt > 65536) {
        rtr_seterr(err, r, "%s: truncated or corrupt GGUF header (%llu tensors and %llu keys cannot fit in %zu bytes)",
                   g->base, (unsigned long long)nt, (unsigned long long)nkv, g->size);
        goto fail;
    }
    g->kv = calloc(nkv ? nkv : 1, sizeof *g->kv);
    g->t = calloc(nt ? nt : 1, sizeof *g->t);
    if (!g->kv || !g->t) { r = rtr_seterr(err, RTR_ENOMEM, "out of memory"); goto fail; }
    uint64_t align = 32;
    for (uint64_t i = 0; i < nkv; i++) {
        rtr_gguf_kv *kv = &g->kv[i];
        uint64_t kl;
        if (rd_str(&c, &kv->key, &kl, "key")) goto fail;
        kv->klen = (size_t)kl;
        if (rd_u32(&c, &kv->type, "value type")) goto fail;
        if (kv->type >= RTR_GGUF_NTYPES) {
            rtr_seterr(err, r, "%s: key %.*s: unknown value type %u", g->base, (int)(kl > 64 ? 64 : kl), kv->key, kv->type);
            goto fail;
        }
        if (kv->type == RTR_GGUF_ARR) {
            const uint8_t *save = c.p;
            if (rd_u32(&c, &kv->arr_type, "array type") || rd_u64(&c, &kv->arr_n, "array length")) goto fail;
            kv->val = c.p;
            c.p = save;
        } else {
            kv->val = c.p;
        }
        char what[80];
        snprintf(what, sizeof what, "key %.*s", (int)(kl > 64 ? 64 : kl), kv->key);
        if (skip_value(&c, kv->type, 0, what)) goto fail;
        if (kl == 17 && !memcmp(kv->key, "general.alignment", 17)) {
            int64_t a;
            if (!scalar_int(kv->type, kv->val, &a) || a <= 0 || a > 65536 || (a & (a - 1))) {
                rtr_seterr(err, r, "%s: bad general.alignment", g->base);
                goto fail;
            }
            align = (uint64_t)a;
        }
        g->n_kv = i + 1;
    }
    for (uint64_t i = 0; i < nt; i++) {
        rtr_gguf_tensor *t = &g->t[i];
        const char *nm;
        uint64_t nl, off;
        if (rd_str(&c, &nm, &nl, "tensor name")) goto fail;
        if (nl == 0 || nl > 256 || memchr(nm, 0, nl)) { rtr_seterr(err, r, "%s: tensor %llu has a bad name", g->base, (unsigned long long)i); goto fail; }
        t->name = strndup(nm, nl);
        if (!t->name) { r = rtr_seterr(err, RTR_ENOMEM, "out of memory"); goto fail; }
        g->n_t = i + 1;
        if (rd_u32(&c, &t->ndim, "tensor dims")) goto fail;
        if (t->ndim < 1 || t->ndim > 4) { rtr_seterr(err, r, "%s: tensor %s: %u dimensions", g->base, t->name, t->ndim); goto fail; }
        t->n = 1;
        for (uint32_t d = 0; d < 4; d++) t->ne[d] = 1;
        for (uint32_t d = 0; d < t->ndim; d++) {
            if (rd_u64(&c, &t->ne[d], "tensor shape")) goto fail;
            if (t->ne[d] == 0 || t->ne[d] > (1ull << 40) || t->n > (1ull << 46) / t->ne[d]) {
                rtr_seterr(err, r, "%s: tensor %s: bad shape", g->base, t->name);
                goto fail;
            }
            t->n *= t->ne[d];
        }
        if (rd_u32(&c, &t->type, "tensor type") || rd_u64(&c, &off, "tensor offset")) goto fail;
        const ggml_type_info *ti = type_info(t->type);
        if (!ti) { rtr_seterr(err, r, "%s: tensor %s: unknown type id %u", g->base, t->name, t->type); goto fail; }
        /* ternary block types may run across rows (flat block stream); the rest are per row */
        int flat = t->type == RTR_GGML_TQ1_0 || t->type == RTR_GGML_TQ2_0 || t->type == RTR_GGML_I2_S;
        if ((flat ? t->n : t->ne[0]) % ti->blck) {
            rtr_seterr(err, r, "%s: tensor %s: %llu elements do not fill %s blocks of %u", g->base, t->name,
                       (unsigned long long)(flat ? t->n : t->ne[0]), ti->name, ti->blck);
            goto fail;
        }
        t->size = t->n / ti->blck * ti->tsize;
        if (t->type == RTR_GGML_I2_S) t->size = t->n / 4 + 32; /* packed codes, then f32 scale, padded */
        t->data = (const uint8_t *)(uintptr_t)off; /* resolved below */
    }
    uint64_t hdr = (uint64_t)(c.p - g->map);
    uint64_t data0 = (hdr + align - 1) / align * align;
    for (uint64_t i = 0; i < nt; i++) {
        rtr_gguf_tensor *t = &g->t[i];
        uint64_t off = (uint64_t)(uintptr_t)t->data;
        if (data0 > g->size || off > g->size - data0 || t->size > g->size - data0 - off) {
            rtr_seterr(err, r, "%s: tensor %s: data runs past the end of the file (truncated?)", g->base, t->name);
            goto fail;
        }
        t->data = g->map + data0 + off;
        for (uint64_t j = 0; j < i; j++)
            if (!strcmp(g->t[j].name, t->name)) { rtr_seterr(err, r, "%s: tensor %s appears twice", g->base, t->name); goto fail; }
    }
    return 0;
fail:
    rtr_gguf_close(g);
    return r;
}

const rtr_gguf_kv *rtr_gguf_find(const rtr_gguf *g, const char *key) {
    size_t kl = strlen(key);
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (g->kv[i].klen == kl && !memcmp(g->kv[i].key, key, kl)) return &g->kv[i];
    return NULL;
}

static int scalar_int(uint32_t t, const uint8_t *p, int64_t *out) {
    switch (t) {
    case RTR_GGUF_U8: case RTR_GGUF_BOOL: *out = p[0]; return 1;
    case RTR_GGUF_I8: *out = (int8_t)p[0]; return 1;
    case RTR_GGUF_U16: { uint16_t v; memcpy(&v, p, 2); *out = v; return 1; }
    case RTR_GGUF_I16: { int16_t v; memcpy(&v, p, 2); *out = v; return 1; }
    case RTR_GGUF_U32: { uint32_t v; memcpy(&v, p, 4); *out = v; return 1; }
    case RTR_GGUF_I32: { int32_t v; memcpy(&v, p, 4); *out = v; return 1; }
    case RTR_GGUF_U64: { uint64_t v; memcpy(&v, p, 8); *out = (int64_t)v; return v <= INT64_MAX; }
    case RTR_GGUF_I64: { int64_t v; memcpy(&v, p, 8); *out = v; return 1; }
    }
    return 0;
}

int rtr_gguf_int(const rtr_gguf *g, const char *key, int64_t *out) {
    const rtr_gguf_kv *kv = rtr_gguf_find(g, key);
    return kv && scalar_int(kv->type, kv->val, out);
}

int rtr_gguf_float(const rtr_gguf *g, const char *key, double *out) {
    const rtr_gguf_kv *kv = rtr_gguf_find(g, key);
    if (!kv) return 0;
    if (kv->type == RTR_GGUF_F32) { float f; memcpy(&f, kv->val, 4); *out = f; return 1; }
    if (kv->type == RTR_GGUF_F64) { memcpy(out, kv->val, 8); return 1; }
    int64_t v;
    if (scalar_int(kv->type, kv->val, &v)) { *out = (double)v; return 1; }
    return 0;
}

int rtr_gguf_str(const rtr_gguf *g, const char *key, const char **s, size_t *len) {
    const rtr_gguf_kv *kv = rtr_gguf_find(g, key);
    if (!kv || kv->type != RTR_GGUF_STR) return 0;
    uint64_t l;
    memcpy(&l, kv->val, 8);
    *s = (const char *)kv->val + 8;
    if (len) *len = (size_t)l;
    return 1;
}

int rtr_gguf_str_array(const rtr_gguf *g, const rtr_gguf_kv *kv, const char ***strs, size_t **lens,
                       rtr_err *err) {
    if (kv->type != RTR_GGUF_ARR || kv->arr_type != RTR_GGUF_STR)
        return rtr_seterr(err, RTR_EFORMAT, "%s: %.*s is not an array of strings", g->base, (int)kv->klen, kv->key);
    const char **s = malloc((kv->arr_n ? kv->arr_n : 1) * sizeof *s);
    size_t *l = malloc((kv->arr_n ? kv->arr_n : 1) * sizeof *l);
    if (!s || !l) { free(s); free(l); return rtr_seterr(err, RTR_ENOMEM, "out of memory"); }
    const uint8_t *p = kv->val; /* lengths were checked when the header was walked */
    for (uint64_t i = 0; i < kv->arr_n; i++) {
        uint64_t n;
        memcpy(&n, p, 8);
        s[i] = (const char *)p + 8;
        l[i] = (size_t)n;
        p += 8 + n;
    }
    *strs = s;
    *lens = l;
    return 0;
}

int rtr_gguf_i32_array(const rtr_gguf *g, const rtr_gguf_kv *kv, int32_t **out, rtr_err *err) {
    int64_t v;
    if (kv->type != RTR_GGUF_ARR || kv->arr_type >= RTR_GGUF_NTYPES || !scalar_int(kv->arr_type, (const uint8_t *)"\0\0\0\0\0\0\0\0", &v))
        return rtr_seterr(err, RTR_EFORMAT, "%s: %.*s is not an array of integers", g->base, (int)kv->klen, kv->key);
    int32_t *a = malloc((kv->arr_n ? kv->arr_n : 1) * sizeof *a);
    if (!a) return rtr_seterr(err, RTR_ENOMEM, "out of memory");
    int sz = scalar_size[kv->arr_type];
    for (uint64_t i = 0; i < kv->arr_n; i++) {
        scalar_int(kv->arr_type, kv->val + i * (uint64_t)sz, &v);
        a[i] = (int32_t)v;
    }
    *out = a;
    return 0;
}

rtr_gguf_tensor *rtr_gguf_tensor_find(const rtr_gguf *g, const char *name) {
    for (uint64_t i = 0; i < g->n_t; i++)
        if (!strcmp(g->t[i].name, name)) return &g->t[i];
    return NULL;
}
