/* gguf_writer.c: the test-only GGUF writer declared in gguf_writer.h.
 * Key/values accumulate in one byte buffer, tensors in a list; gw_write lays out the header,
 * the tensor records and the data (each tensor aligned to 32 bytes, the GGUF default). */
#include "gguf_writer.h"
#include "../models/format.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *name;
    uint32_t type, ndim;
    uint64_t ne[4];
    uint8_t *data;
    size_t size;
} gw_tensor_t;

struct gw {
    uint8_t *kv;
    size_t kv_len, kv_cap;
    uint64_t n_kv;
    gw_tensor_t *t;
    size_t nt, tcap;
    int failed;
};

gw *gw_new(void) { return calloc(1, sizeof(gw)); }

void gw_free(gw *w) {
    if (!w) return;
    for (size_t i = 0; i < w->nt; i++) { free(w->t[i].name); free(w->t[i].data); }
    free(w->t);
    free(w->kv);
    free(w);
}

static void put(gw *w, const void *p, size_t n) {
    if (w->failed) return;
    if (w->kv_len + n > w->kv_cap) {
        size_t nc = (w->kv_len + n) * 2 + 1024;
        uint8_t *nk = realloc(w->kv, nc);
        if (!nk) { w->failed = 1; return; }
        w->kv = nk;
        w->kv_cap = nc;
    }
    memcpy(w->kv + w->kv_len, p, n);
    w->kv_len += n;
}
static void put_u32(gw *w, uint32_t v) { put(w, &v, 4); }
static void put_u64(gw *w, uint64_t v) { put(w, &v, 8); }
static void put_str(gw *w, const char *s, size_t n) { put_u64(w, n); put(w, s, n); }
static void key(gw *w, const char *k, uint32_t type) { put_str(w, k, strlen(k)); put_u32(w, type); w->n_kv++; }

void gw_str(gw *w, const char *k, const char *v) { key(w, k, 8); put_str(w, v, strlen(v)); }
void gw_u32(gw *w, const char *k, uint32_t v) { key(w, k, 4); put_u32(w, v); }
void gw_i32(gw *w, const char *k, int32_t v) { key(w, k, 5); put(w, &v, 4); }
void gw_f32(gw *w, const char *k, float v) { key(w, k, 6); put(w, &v, 4); }
void gw_bool(gw *w, const char *k, int v) { uint8_t b = v != 0; key(w, k, 7); put(w, &b, 1); }

void gw_str_arr(gw *w, const char *k, const char *const *s, const size_t *lens, size_t n) {
    key(w, k, 9);
    put_u32(w, 8);
    put_u64(w, n);
    for (size_t i = 0; i < n; i++) put_str(w, s[i], lens[i]);
}

void gw_i32_arr(gw *w, const char *k, const int32_t *v, size_t n) {
    key(w, k, 9);
    put_u32(w, 5);
    put_u64(w, n);
    put(w, v, n * 4);
}

void gw_tensor(gw *w, const char *name, uint32_t type, int ndim, const uint64_t *ne, const void *data, size_t size) {
    if (w->failed) return;
    if (w->nt == w->tcap) {
        size_t nc = w->tcap ? w->tcap * 2 : 64;
        gw_tensor_t *nt = realloc(w->t, nc * sizeof *nt);
        if (!nt) { w->failed = 1; return; }
        w->t = nt;
        w->tcap = nc;
    }
    gw_tensor_t *t = &w->t[w->nt];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    t->data = malloc(size ? size : 1);
    if (!t->name || !t->data) { free(t->name); free(t->data); w->failed = 1; return; }
    memcpy(t->data, data, size);
    t->size = size;
    t->type = type;
    t->ndim = (uint32_t)ndim;
    for (int i = 0; i < ndim; i++) t->ne[i] = ne[i];
    w->nt++;
}

int gw_write(gw *w, const char *path, uint32_t version) {
    if (w->failed) return -1;
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int ok = 1;
    uint64_t nt = w->nt;
    ok &= fwrite("GGUF", 1, 4, f) == 4;
    ok &= fwrite(&version, 4, 1, f) == 1;
    ok &= fwrite(&nt, 8, 1, f) == 1;
    ok &= fwrite(&w->n_kv, 8, 1, f) == 1;
    ok &= fwrite(w->kv, 1, w->kv_len, f) == w->kv_len;
    uint64_t off = 0, pos = 24 + w->kv_len;
    for (size_t i = 0; i < w->nt; i++) {
        const gw_tensor_t *t = &w->t[i];
        uint64_t nl = strlen(t->name);
        ok &= fwrite(&nl, 8, 1, f) == 1;
        ok &= fwrite(t->name, 1, nl, f) == nl;
        ok &= fwrite(&t->ndim, 4, 1, f) == 1;
        ok &= fwrite(t->ne, 8, t->ndim, f) == t->ndim;
        ok &= fwrite(&t->type, 4, 1, f) == 1;
        ok &= fwrite(&off, 8, 1, f) == 1;
        pos += 8 + nl + 4 + 8 * t->ndim + 4 + 8;
        off += (t->size + 31) / 32 * 32;
    }
    static const uint8_t zero[32];
    ok &= fwrite(zero, 1, (size_t)((32 - pos % 32) % 32), f) == (size_t)((32 - pos % 32) % 32);
    for (size_t i = 0; i < w->nt; i++) {
        const gw_tensor_t *t = &w->t[i];
        size_t pad = (32 - t->size % 32) % 32;
        ok &= fwrite(t->data, 1, t->size, f) == t->size;
        ok &= fwrite(zero, 1, pad, f) == pad;
    }
    ok &= fclose(f) == 0;
    return ok ? 0 : -1;
}

/* I2_S: 128-value blocks in 32 bytes, value j of a block in byte j%32 at shift 6-2*(j/32),
 * codes 0/1/2 for -1/0/+1; the f32 scale follows the codes, then padding to 32 bytes */
size_t gw_i2s(const int8_t *v, uint64_t n, float alpha, uint8_t *out) {
    memset(out, 0, n / 4 + 32);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t b = i / 128, j = i % 128;
        out[32 * b + j % 32] |= (uint8_t)((v[i] + 1) << (6 - 2 * (j / 32)));
    }
    memcpy(out + n / 4, &alpha, 4);
    return n / 4 + 32;
}

static uint16_t block_d(const int8_t *v, float alpha) {
    for (int i = 0; i < 256; i++)
        if (v[i]) return rtr_f32_to_f16(alpha);
    return 0;
}

/* TQ2_0: {qs[64], d}; value e: byte 32*(e>>7) + (e&31), shift 2*((e&127)>>5), code v+1 */
size_t gw_tq2(const int8_t *v, uint64_t n, float alpha, uint8_t *out) {
    for (uint64_t b = 0; b < n / 256; b++) {
        uint8_t *q = out + 66 * b;
        const int8_t *x = v + 256 * b;
        memset(q, 0, 64);
        for (int e = 0; e < 256; e++) q[32 * (e >> 7) + (e & 31)] |= (uint8_t)((x[e] + 1) << (2 * ((e & 127) >> 5)));
        uint16_t d = block_d(x, alpha);
        q[64] = (uint8_t)d;
        q[65] = (uint8_t)(d >> 8);
    }
    return n / 256 * 66;
}

/* TQ1_0: {qs[48], qh[4], d}; five trits per byte (the first most significant), stored as
 * ceil(q * 256 / 243). qs[m<32] holds values m+32t, qs[32+m] values 160+m+16t, qh[j] values
 * 240+j+4t (four trits, shifted up one place). */
static uint8_t pack_trits(const int8_t *x, int step, int count) {
    unsigned q = 0;
    for (int t = 0; t < count; t++) q = q * 3 + (unsigned)(x[t * step] + 1);
    for (int t = count; t < 5; t++) q *= 3;
    return (uint8_t)((q * 256 + 242) / 243);
}

size_t gw_tq1(const int8_t *v, uint64_t n, float alpha, uint8_t *out) {
    for (uint64_t b = 0; b < n / 256; b++) {
        uint8_t *q = out + 54 * b;
        const int8_t *x = v + 256 * b;
        for (int m = 0; m < 32; m++) q[m] = pack_trits(x + m, 32, 5);
        for (int m = 0; m < 16; m++) q[32 + m] = pack_trits(x + 160 + m, 16, 5);
        for (int j = 0; j < 4; j++) q[48 + j] = pack_trits(x + 240 + j, 4, 4);
        uint16_t d = block_d(x, alpha);
        q[52] = (uint8_t)d;
        q[53] = (uint8_t)(d >> 8);
    }
    return n / 256 * 54;
}
