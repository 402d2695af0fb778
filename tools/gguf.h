/* gguf.h: a reader for GGUF files (versions 2 and 3) as llama.cpp and bitnet.cpp write them.
 * The file is memory-mapped; rtr_gguf_open walks the whole header (every key/value and tensor
 * record), checking each length, count and offset against the file, so later lookups can trust
 * what they are given. Tensor data is used in place. */
#ifndef ROTOR_GGUF_H
#define ROTOR_GGUF_H

#include "../rotor.h"

/* value types */
enum {
    RTR_GGUF_U8, RTR_GGUF_I8, RTR_GGUF_U16, RTR_GGUF_I16, RTR_GGUF_U32, RTR_GGUF_I32,
    RTR_GGUF_F32, RTR_GGUF_BOOL, RTR_GGUF_STR, RTR_GGUF_ARR, RTR_GGUF_U64, RTR_GGUF_I64,
    RTR_GGUF_F64, RTR_GGUF_NTYPES
};

/* tensor types this reader can size (ggml ids; 34-36 as in bitnet.cpp's fork) */
enum {
    RTR_GGML_F32 = 0, RTR_GGML_F16 = 1, RTR_GGML_Q4_0 = 2, RTR_GGML_Q4_1 = 3, RTR_GGML_Q5_0 = 6,
    RTR_GGML_Q5_1 = 7, RTR_GGML_Q8_0 = 8, RTR_GGML_Q8_1 = 9, RTR_GGML_Q2_K = 10,
    RTR_GGML_Q3_K = 11, RTR_GGML_Q4_K = 12, RTR_GGML_Q5_K = 13, RTR_GGML_Q6_K = 14,
    RTR_GGML_Q8_K = 15, RTR_GGML_I8 = 24, RTR_GGML_I16 = 25, RTR_GGML_I32 = 26,
    RTR_GGML_I64 = 27, RTR_GGML_F64 = 28, RTR_GGML_BF16 = 30, RTR_GGML_TQ1_0 = 34,
    RTR_GGML_TQ2_0 = 35, RTR_GGML_I2_S = 36
};

typedef struct {
    const char *key;       /* not NUL-terminated: klen bytes */
    size_t klen;
    uint32_t type;         /* RTR_GGUF_* */
    const uint8_t *val;    /* scalar: the value; STR: the u64 length prefix; ARR: first element */
    uint32_t arr_type;     /* ARR only */
    uint64_t arr_n;        /* ARR only */
} rtr_gguf_kv;

typedef struct {
    char *name;            /* NUL-terminated copy */
    uint32_t ndim;
    uint64_t ne[4];        /* ne[0] is the contiguous dimension (K of a matrix) */
    uint64_t n;            /* element count */
    uint32_t type;         /* RTR_GGML_* */
    const uint8_t *data;
    uint64_t size;         /* bytes */
    int used;              /* free for the caller */
} rtr_gguf_tensor;

typedef struct {
    const uint8_t *map;
    size_t size;
    uint32_t version;
    const char *base;      /* file base name, for messages */
    char *path;
    rtr_gguf_kv *kv;
    uint64_t n_kv;
    rtr_gguf_tensor *t;
    uint64_t n_t;
} rtr_gguf;

int rtr_gguf_open(rtr_gguf *g, const char *path, rtr_err *err);
void rtr_gguf_close(rtr_gguf *g);
/* 1 if the file starts with the GGUF magic */
int rtr_gguf_probe(const char *path);

const rtr_gguf_kv *rtr_gguf_find(const rtr_gguf *g, const char *key);
/* Typed lookups: 1 when the key exists with a compatible type (any integer or bool for int,
 * any number for float), else 0. */
int rtr_gguf_int(const rtr_gguf *g, const char *key, int64_t *out);
int rtr_gguf_float(const rtr_gguf *g, const char *key, double *out);
int rtr_gguf_str(const rtr_gguf *g, const char *key, const char **s, size_t *len);
/* Arrays of strings: malloc'd pointer and length arrays (pointing into the map). */
int rtr_gguf_str_array(const rtr_gguf *g, const rtr_gguf_kv *kv, const char ***strs, size_t **lens,
                       rtr_err *err);
/* Arrays of integers, converted to int32 (malloc'd). */
int rtr_gguf_i32_array(const rtr_gguf *g, const rtr_gguf_kv *kv, int32_t **out, rtr_err *err);

rtr_gguf_tensor *rtr_gguf_tensor_find(const rtr_gguf *g, const char *name);
const char *rtr_ggml_type_name(uint32_t type);

#endif
