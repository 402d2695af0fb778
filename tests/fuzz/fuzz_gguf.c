/* fuzz_gguf.c: libFuzzer target for the GGUF reader (tools/gguf.c) and the GGUF converter
 * front end (tools/convert_gguf.c) behind it.
 * When rtr_gguf_open accepts the input, every key, value, array element and tensor it reports
 * must lie inside the file, the typed lookups and array readers must work on every key, and
 * then the converter gets the same file: it may refuse it, but only with a clean error, and
 * whatever it writes must open as a .rotor file. */
#include "fuzz_common.h"
#include "../../models/format.h"
#include "../../tools/convert.h"
#include "../../tools/gguf.h"

#define INSIDE(g, p, n) \
    ((const uint8_t *)(p) >= (g)->map && (uint64_t)(n) <= (uint64_t)((g)->map + (g)->size - (const uint8_t *)(p)))

static const int esize[RTR_GGUF_NTYPES] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

static void check(const rtr_gguf *g) {
    rtr_err e;
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const rtr_gguf_kv *kv = &g->kv[i];
        FZ_ASSERT(INSIDE(g, kv->key, kv->klen), "key %llu outside the file", (unsigned long long)i);
        char key[300];
        int named = kv->klen < sizeof key && !memchr(kv->key, 0, kv->klen);
        if (named) {
            memcpy(key, kv->key, kv->klen);
            key[kv->klen] = 0;
            const rtr_gguf_kv *f = rtr_gguf_find(g, key);
            FZ_ASSERT(f && f <= kv, "find(%s) misses it", key);
        }
        if (kv->type == RTR_GGUF_STR) {
            uint64_t l;
            FZ_ASSERT(INSIDE(g, kv->val, 8), "string length outside the file");
            memcpy(&l, kv->val, 8);
            FZ_ASSERT(INSIDE(g, kv->val + 8, l), "string of %llu bytes runs outside the file", (unsigned long long)l);
        } else if (kv->type == RTR_GGUF_ARR) {
            if (kv->arr_type == RTR_GGUF_STR) {
                const char **s;
                size_t *l;
                if (!rtr_gguf_str_array(g, kv, &s, &l, &e)) {
                    for (uint64_t k = 0; k < kv->arr_n; k++)
                        FZ_ASSERT(INSIDE(g, s[k], l[k]), "array string %llu outside the file", (unsigned long long)k);
                    free(s);
                    free(l);
                }
            } else if (kv->arr_type < RTR_GGUF_NTYPES && esize[kv->arr_type]) {
                FZ_ASSERT(INSIDE(g, kv->val, kv->arr_n * (uint64_t)esize[kv->arr_type]), "array runs outside the file");
                int32_t *a;
                if (!rtr_gguf_i32_array(g, kv, &a, &e)) free(a);
            }
        } else {
            FZ_ASSERT(kv->type < RTR_GGUF_NTYPES && INSIDE(g, kv->val, esize[kv->type]), "value outside the file");
        }
        if (named) {
            int64_t iv;
            double dv;
            const char *s;
            size_t l;
            rtr_gguf_int(g, key, &iv);
            rtr_gguf_float(g, key, &dv);
            if (rtr_gguf_str(g, key, &s, &l)) FZ_ASSERT(INSIDE(g, s, l), "string outside the file");
        }
    }
    for (uint64_t i = 0; i < g->n_t; i++) {
        const rtr_gguf_tensor *t = &g->t[i];
        FZ_ASSERT(t->ndim >= 1 && t->ndim <= 4 && t->n, "tensor %s: bad shape", t->name);
        FZ_ASSERT(INSIDE(g, t->data, t->size), "tensor %s: data outside the file", t->name);
        FZ_ASSERT(rtr_gguf_tensor_find(g, t->name) == t, "tensor %s found elsewhere", t->name);
        rtr_ggml_type_name(t->type);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[64];
    int fd = fz_memfile(data, size, path);
    if (fd < 0) return 0;
    rtr_gguf g;
    rtr_err err = {0};
    int r = rtr_gguf_open(&g, path, &err);
    FZ_ASSERT(r == 0 || r == RTR_EFORMAT || r == RTR_ENOMEM || r == RTR_EIO, "return %d", r);
    if (r) {
        FZ_ASSERT(err.msg[0], "no error message");
        close(fd);
        return 0;
    }
    check(&g);
    rtr_gguf_close(&g);

    char out[300];
    snprintf(out, sizeof out, "%s/gguf.rotor", fz_scratch());
    rtr_convert_opts o = {0};
    rtr_convert_stats st;
    r = rtr_convert_gguf(path, out, &o, &st, &err);
    FZ_ASSERT(r <= 0 && r != RTR_EINTR, "convert returned %d", r);
    if (r == 0) {
        rtr_file f;
        int ro = rtr_file_open(&f, out, &err);
        FZ_ASSERT(ro == 0, "the converter wrote a file that does not open: %s", err.msg);
        FZ_ASSERT(rtr_file_verify(&f, NULL, NULL, &err) == 0, "the converter wrote a file that does not verify: %s", err.msg);
        rtr_file_close(&f);
        unlink(out);
    } else {
        FZ_ASSERT(err.msg[0], "convert failed without a message");
        FZ_ASSERT(access(out, F_OK) != 0, "a failed conversion left %s", out);
    }
    close(fd);
    return 0;
}
