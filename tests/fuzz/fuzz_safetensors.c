/* fuzz_safetensors.c: libFuzzer target for the .safetensors reader (tools/safetensors.c).
 * The input is one file. When rtr_st_add_file accepts it, every tensor must lie inside the file
 * exactly where its header's data_offsets say (checked against the input bytes here), have as
 * many bytes as its shape and dtype need, and be readable element by element. The same file
 * added twice must be refused (duplicate names) without leaking. */
#include "fuzz_common.h"
#include "../../tools/json.h"
#include "../../tools/safetensors.h"

static void check_tensors(const rtr_st *s, const uint8_t *data, size_t size) {
    uint64_t hl;
    memcpy(&hl, data, 8);
    rtr_json *root = NULL;
    rtr_err e;
    FZ_ASSERT(hl <= size - 8 && !rtr_json_parse((const char *)data + 8, (size_t)hl, &root, &e),
              "accepted a file whose header does not parse");
    for (size_t i = 0; i < s->n; i++) {
        const rtr_st_tensor *t = &s->t[i];
        FZ_ASSERT(rtr_st_find(s, t->name) == t, "find(%s) gives another tensor", t->name);
        int es = rtr_st_dtype_size(t->dtype);
        FZ_ASSERT(es > 0 && t->size == t->n * (uint64_t)es, "%s: %llu bytes for %llu elements", t->name,
                  (unsigned long long)t->size, (unsigned long long)t->n);
        uint64_t n = 1;
        for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
        FZ_ASSERT(n == t->n, "%s: element count does not match the shape", t->name);
        const rtr_json *v = rtr_json_get(root, t->name), *of = v ? rtr_json_get(v, "data_offsets") : NULL;
        int64_t b, en;
        FZ_ASSERT(of && of->type == RTR_JSON_ARR && of->n == 2 && rtr_json_int(&of->items[0], &b) &&
                  rtr_json_int(&of->items[1], &en), "%s: no data_offsets in the header", t->name);
        FZ_ASSERT(b >= 0 && en >= b && 8 + hl + (uint64_t)en <= size, "%s: data [%lld, %lld) outside the file",
                  t->name, (long long)b, (long long)en);
        FZ_ASSERT(t->size == (uint64_t)(en - b), "%s: size differs from data_offsets", t->name);
        if (t->size) FZ_ASSERT(!memcmp(t->data, data + 8 + hl + b, t->size), "%s: data is not where data_offsets say", t->name);
        float acc = 0;
        for (uint64_t k = 0; k < t->n && k < 4096; k++) acc += rtr_st_get_f32(t, k);
        if (t->n) acc += rtr_st_get_f32(t, t->n - 1);
        (void)acc;
    }
    rtr_json_free(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[64];
    int fd = fz_memfile(data, size, path);
    if (fd < 0) return 0;
    rtr_st s;
    rtr_st_init(&s);
    rtr_err err = {0};
    int r = rtr_st_add_file(&s, path, &err);
    FZ_ASSERT(r == 0 || r == RTR_EFORMAT || r == RTR_ENOMEM || r == RTR_EIO, "return %d", r);
    if (r == 0) {
        check_tensors(&s, data, size);
        size_t n = s.n;
        r = rtr_st_add_file(&s, path, &err);
        if (n) FZ_ASSERT(r == RTR_EFORMAT && strstr(err.msg, "twice"), "a second copy was accepted: %d %s", r, err.msg);
    } else {
        FZ_ASSERT(err.msg[0], "no error message");
    }
    rtr_st_free(&s);
    close(fd);
    return 0;
}
