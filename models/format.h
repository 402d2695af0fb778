/* format.h: the .rotor file: reading (mmap, zero-copy, bounds-checked) and writing.
 * docs/format.md is the specification; this header owns the constants it names.
 * The reader never trusts the file: every offset and size is checked before use. */
#ifndef ROTOR_FORMAT_H
#define ROTOR_FORMAT_H

#include "../rotor.h"
#include <stdio.h>

#define RTR_MAGIC "ROTORFMT"
#define RTR_FORMAT_VERSION 1u
#define RTR_ALIGN 4096u
#define RTR_HEADER_BYTES 64u
#define RTR_DIR_ENTRY_BYTES 128u
#define RTR_NAME_MAX 56 /* including the terminating NUL */
#define RTR_MAX_DIMS 4
#define RTR_T2_BLOCK 128 /* ternary weights per block; 32 bytes */

/* Tensor types. Values are part of the file format. */
enum {
    RTR_T_F32 = 0,
    RTR_T_F16 = 1,
    RTR_T_BF16 = 2,
    RTR_T_T2 = 3,  /* ternary, 2 bits a weight, 128-weight blocks; see docs/format.md */
    RTR_T_Q8R = 4, /* int8 rows padded to 64, then one f32 scale per row */
    RTR_T_U8 = 5,
    RTR_T_I32 = 6,
    RTR_T_U32 = 7,
    RTR_T_COUNT
};
const char *rtr_type_name(int type);

/* Metadata value types. */
enum { RTR_M_INT = 1, RTR_M_FLOAT = 2, RTR_M_STR = 3 };

typedef struct {
    char name[RTR_NAME_MAX];
    uint32_t type;
    uint32_t ndim;
    uint64_t shape[RTR_MAX_DIMS]; /* outermost first: a matrix is {rows N, columns K} */
    uint64_t offset;              /* absolute file offset, RTR_ALIGN-aligned */
    uint64_t size;                /* bytes */
    uint64_t checksum;            /* rtr_hash64 of the data */
    float scale;                  /* T2: the per-tensor scale alpha (W = alpha * W_t) */
    uint32_t flags;
    const void *data;             /* reader only: pointer into the map */
} rtr_tensor;

typedef struct {
    int fd;
    const uint8_t *map;
    uint64_t size;
    const uint8_t *meta;
    uint64_t meta_size;
    rtr_tensor *tensors;
    uint32_t n_tensors;
} rtr_file;

/* Bytes a tensor of this type and shape occupies, or 0 if the shape is invalid. */
uint64_t rtr_tensor_bytes(int type, int ndim, const uint64_t *shape);
/* Row stride in bytes of a 2-D T2 / Q8R / float matrix with k columns. */
uint64_t rtr_t2_row_bytes(uint64_t k);
uint64_t rtr_q8r_row_bytes(uint64_t k);
/* Columns of a T2 row padded to whole blocks: the length of the int8 activation rows (zero past
 * k) that a ternary product reads. */
uint64_t rtr_t2_kpad(uint64_t k);

/* Opens path read-only (without blocking on a FIFO) and checks that it is a regular file: *fd
 * and *size on success, RTR_EIO and err otherwise (every model-file reader starts here). */
int rtr_open_regular(const char *path, int *fd, uint64_t *size, rtr_err *err);
/* Opens and checks magic, version, header checksum, directory bounds, sizes and alignment. */
int rtr_file_open(rtr_file *f, const char *path, rtr_err *err);
void rtr_file_close(rtr_file *f);
/* Checks every tensor checksum and every T2 code; progress(done, total, ud) may be NULL. */
int rtr_file_verify(const rtr_file *f, void (*progress)(uint64_t, uint64_t, void *), void *ud,
                    rtr_err *err);

const rtr_tensor *rtr_file_tensor(const rtr_file *f, const char *name);
/* Metadata lookups return 0 when found, RTR_EFORMAT when missing or of another type. */
int rtr_meta_int(const rtr_file *f, const char *key, int64_t *out);
int rtr_meta_float(const rtr_file *f, const char *key, double *out);
int rtr_meta_str(const rtr_file *f, const char *key, const char **s, size_t *len);

uint64_t rtr_hash64(const void *data, size_t n, uint64_t seed);

/* ---- writer: metadata in memory, tensors streamed to a temporary file, renamed on success ---- */
typedef struct rtr_writer rtr_writer;
int rtr_writer_new(rtr_writer **out, const char *path, rtr_err *err);
int rtr_writer_meta_int(rtr_writer *w, const char *key, int64_t v);
int rtr_writer_meta_float(rtr_writer *w, const char *key, double v);
int rtr_writer_meta_str(rtr_writer *w, const char *key, const char *s, size_t len);
/* Declares a tensor; data follows in the same order through rtr_writer_data. */
int rtr_writer_tensor(rtr_writer *w, const char *name, int type, int ndim, const uint64_t *shape,
                      float scale, rtr_err *err);
/* Writes the bytes of the tensors in declaration order, in pieces of any size. */
int rtr_writer_data(rtr_writer *w, const void *data, size_t n, rtr_err *err);
/* Completes the file (directory, checksums) and renames it into place. */
int rtr_writer_finish(rtr_writer *w, rtr_err *err);
/* Removes the temporary file and frees everything. Safe after finish. */
void rtr_writer_free(rtr_writer *w);
uint64_t rtr_writer_bytes(const rtr_writer *w);

/* Ternary packing: w has k values in {-1,0,+1}; out gets rtr_t2_row_bytes(k) bytes. */
void rtr_t2_pack_row(const int8_t *w, uint64_t k, uint8_t *out);
/* Returns the value of weight j of a packed row (-1, 0, +1) or 2 for the invalid code 11. */
int rtr_t2_get(const uint8_t *row, uint64_t j);

/* Half-precision conversions. */
float rtr_f16_to_f32(uint16_t h);
uint16_t rtr_f32_to_f16(float f);
float rtr_bf16_to_f32(uint16_t h);
uint16_t rtr_f32_to_bf16(float f);

#endif
