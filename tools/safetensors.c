/* safetensors.c: mapping and checking .safetensors files.
 * Layout: an 8-byte little-endian header length, a JSON object {name: {dtype, shape,
 * data_offsets: [begin, end]}, "__metadata__": {...}}, then the data; offsets are relative to
 * the first byte after the header. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "safetensors.h"
#include "json.h"
#include "../models/format.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MAX_HEADER (256u << 20)

struct rtr_st_file {
    char *path, *base;
    void *map;
    size_t size;
};

static const struct { const char *name; int size; } dtypes[RTR_ST_COUNT] = {
    {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4}, {"I16", 2},
    {"I8", 1},  {"U64", 8}, {"U32", 4}, {"U16", 2},  {"U8", 1},   {"BOOL", 1},
    {"F8_E4M3", 1}, {"F8_E5M2", 1},
};

const char *rtr_st_dtype_name(int d) { return d >= 0 && d < RTR_ST_COUNT ? dtypes[d].name : "?"; }
int rtr_st_dtype_size(int d) { return d >= 0 && d < RTR_ST_COUNT ? dtypes[d].size : 0; }

void rtr_st_init(rtr_st *s) { memset(s, 0, sizeof *s); }

rtr_st_tensor *rtr_st_find(const rtr_st *s, const char *name) {
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->t[i].name, name)) return &s->t[i];
    return NULL;
}

void rtr_st_free(rtr_st *s) {
    for (size_t i = 0; i < s->n; i++) free(s->t[i].name);
    for (size_t i = 0; i < s->nfiles; i++) {
        if (s->files[i].map) munmap(s->files[i].map, s->files[i].size);
        free(s->files[i].path);
    }
    free(s->t);
    free(s->files);
    memset(s, 0, sizeof *s);
}

float rtr_st_get_f32(const rtr_st_tensor *t, uint64_t i) {
    const uint8_t *p = t->data;
    switch (t->dtype) {
    case RTR_ST_F32: { float f; memcpy(&f, p + 4 * i, 4); return f; }
    case RTR_ST_F64: { double d; memcpy(&d, p + 8 * i, 8); return (float)d; }
    case RTR_ST_F16: return rtr_f16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
    case RTR_ST_BF16: return rtr_bf16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
    }
    return 0;
}

static int parse_tensor(rtr_st_tensor *t, const rtr_json *v, const uint8_t *data, uint64_t data_size,
                        const char *base, rtr_err *err) {
    const char *nm = t->name;
    if (!v || v->type != RTR_JSON_OBJ)
        return rtr_seterr(err, RTR_EFORMAT, "%s: tensor %s: header entry is not an object", base, nm);
    const rtr_json *dt = rtr_json_get(v, "dtype"), *sh = rtr_json_get(v, "shape"),
                   *of = rtr_json_get(v, "data_offsets");
    if (!dt || dt->type != RTR_JSON_STR || !sh || sh->type != RTR_JSON_ARR || !of ||
        of->type != RTR_JSON_ARR || of->n != 2)
        return rtr_seterr(err, RTR_EFORMAT, "%s: tensor %s: header entry lacks dtype, shape or data_offsets", base, nm);
    t->dtype = -1;
    for (int i = 0; i < RTR_ST_COUNT; i++)
        if (!strcmp(dt->str, dtypes[i].name)) t->dtype = i;
    if (t->dtype < 0)
        return rtr_seterr(err, RTR_EFORMAT, "%s: tensor %s: unknown dtype %.32s", base, nm, dt->str);
    if (sh->n > RTR_ST_MAX_DIMS)
        return rtr_seterr(err, RTR_EFORMAT, "%s: tensor %s: %zu dimensions", base, nm, sh->n);
    t->ndim = (int)sh->n;
    uint64_t n = 1;
    for (size_t i = 0; i < sh->n; i++) {
        int64_t d;
        if (!rtr_json_int(&sh->items[i], &d) || d < 0 || d > (1ll << 40))
            return rtr_seterr(err, RTR_EFORMAT, "%s: tensor %s: bad shape", base, nm);
        t->shape[i] = (uint64_t)d;
        if (d && n > UINT64_MAX / 16 / (uint64_t)d)
            return rtr_seterr(err, RTR_EFORMAT, "%s: tensor %s: shape too large", base, nm);
        n *= (uint64_t)d;
    }
    t->n = n;
    int64_t b, e;
    if (!rtr_json_int(&of->items[0], &b) || !rtr_json_int(&of->items[1], &e) || b < 0 || e < b)
        return rtr_seterr(err, RTR_EFORMAT, "%s: tensor %s: bad data_offsets", base, nm);
    if ((uint64_t)e > data_size)
        return rtr_seterr(err, RTR_EFORMAT, "%s: tensor %s: data past the end of the file (truncated?)", base, nm);
    if ((uint64_t)(e - b) != n * (uint64_t)dtypes[t->dtype].size)
        return rtr_seterr(err, RTR_EFORMAT, "%s: tensor %s: %lld data bytes for %llu elements of %s", base, nm,
                          (long long)(e - b), (unsigned long long)n, dtypes[t->dtype].name);
    t->data = data + b;
    t->size = (uint64_t)(e - b);
    return 0;
}

int rtr_st_add_file(rtr_st *s, const char *path, rtr_err *err) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    int fd;
    uint64_t fsize;
    int orc = rtr_open_regular(path, &fd, &fsize, err);
    if (orc) return orc;
    size_t size = (size_t)fsize;
    if (size < 8) {
        close(fd);
        return rtr_seterr(err, RTR_EFORMAT, "%s: too short to be a safetensors file", base);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return rtr_seterr(err, RTR_EIO, "%s: mmap: %s", path, strerror(errno));
    struct rtr_st_file *nf = realloc(s->files, (s->nfiles + 1) * sizeof *nf);
    if (!nf) { munmap(map, size); return rtr_seterr(err, RTR_ENOMEM, "out of memory"); }
    s->files = nf;
    struct rtr_st_file *f = &s->files[s->nfiles];
    f->path = strdup(path);
    if (!f->path) { munmap(map, size); return rtr_seterr(err, RTR_ENOMEM, "out of memory"); }
    f->base = f->path + (base - path);
    f->map = map;
    f->size = size;
    s->nfiles++;

    const uint8_t *m = map;
    uint64_t hl;
    memcpy(&hl, m, 8);
    if (hl > MAX_HEADER || hl > size - 8)
        return rtr_seterr(err, RTR_EFORMAT, "%s: header length %llu does not fit the file (truncated or not safetensors)",
                          base, (unsigned long long)hl);
    rtr_json *root;
    rtr_err je;
    if (rtr_json_parse((const char *)m + 8, (size_t)hl, &root, &je))
        return rtr_seterr(err, RTR_EFORMAT, "%s: corrupt header: %s", base, je.msg);
    int r = 0;
    if (root->type != RTR_JSON_OBJ) r = rtr_seterr(err, RTR_EFORMAT, "%s: corrupt header: not a JSON object", base);
    const uint8_t *data = m + 8 + hl;
    uint64_t data_size = size - 8 - hl;
    for (size_t i = 0; !r && i < root->n; i++) {
        if (!strcmp(root->keys[i], "__metadata__")) continue;
        if (strlen(root->keys[i]) != root->key_lens[i] || !root->key_lens[i]) {
            r = rtr_seterr(err, RTR_EFORMAT, "%s: corrupt header: bad tensor name", base);
            break;
        }
        if (rtr_st_find(s, root->keys[i])) {
            r = rtr_seterr(err, RTR_EFORMAT, "%s: tensor %s appears twice", base, root->keys[i]);
            break;
        }
        if (s->n == s->cap) {
            size_t nc = s->cap ? s->cap * 2 : 64;
            rtr_st_tensor *nt = realloc(s->t, nc * sizeof *nt);
            if (!nt) { r = rtr_seterr(err, RTR_ENOMEM, "out of memory"); break; }
            s->t = nt;
            s->cap = nc;
        }
        rtr_st_tensor *t = &s->t[s->n];
        memset(t, 0, sizeof *t);
        t->name = strdup(root->keys[i]);
        if (!t->name) { r = rtr_seterr(err, RTR_ENOMEM, "out of memory"); break; }
        t->file = f->base;
        s->n++;
        r = parse_tensor(t, &root->items[i], data, data_size, base, err);
    }
    rtr_json_free(root);
    return r;
}
