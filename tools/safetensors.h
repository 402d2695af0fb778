/* safetensors.h: a reader for Hugging Face .safetensors files (one or several shards).
 * Each file is memory-mapped; its JSON header is parsed and every tensor's dtype, shape and data
 * range is checked against the file before anything uses it. */
#ifndef ROTOR_SAFETENSORS_H
#define ROTOR_SAFETENSORS_H

#include "../rotor.h"

enum {
    RTR_ST_F64, RTR_ST_F32, RTR_ST_F16, RTR_ST_BF16,
    RTR_ST_I64, RTR_ST_I32, RTR_ST_I16, RTR_ST_I8,
    RTR_ST_U64, RTR_ST_U32, RTR_ST_U16, RTR_ST_U8,
    RTR_ST_BOOL, RTR_ST_F8_E4M3, RTR_ST_F8_E5M2,
    RTR_ST_COUNT
};
#define RTR_ST_MAX_DIMS 8

typedef struct {
    char *name;
    int dtype;                       /* RTR_ST_* */
    int ndim;                        /* 0 for a scalar */
    uint64_t shape[RTR_ST_MAX_DIMS];
    uint64_t n;                      /* element count */
    const uint8_t *data;             /* into the file's map */
    uint64_t size;                   /* bytes */
    const char *file;                /* base name of the file that holds it */
    int used;                        /* free for the caller (the converter marks what it read) */
} rtr_st_tensor;

typedef struct {
    rtr_st_tensor *t;
    size_t n, cap;
    struct rtr_st_file *files;
    size_t nfiles;
} rtr_st;

void rtr_st_init(rtr_st *s);
/* Maps one file and adds its tensors; a name already present is an error. */
int rtr_st_add_file(rtr_st *s, const char *path, rtr_err *err);
rtr_st_tensor *rtr_st_find(const rtr_st *s, const char *name);
void rtr_st_free(rtr_st *s);

const char *rtr_st_dtype_name(int dtype);
int rtr_st_dtype_size(int dtype);
/* Element i of a float tensor (F64/F32/F16/BF16) as float; 0 for other dtypes. */
float rtr_st_get_f32(const rtr_st_tensor *t, uint64_t i);

#endif
