/* gguf_writer.h: a small GGUF (v2/v3) writer for tests: key/values, tensors, and encoders for the
 * ternary block types (I2_S as bitnet.cpp lays it out, TQ1_0 and TQ2_0 as ggml does), so that
 * converter tests can build GGUF files from fixture tensors. Not part of the rotor library. */
#ifndef ROTOR_TEST_GGUF_WRITER_H
#define ROTOR_TEST_GGUF_WRITER_H

#include <stddef.h>
#include <stdint.h>

typedef struct gw gw;

gw *gw_new(void);
void gw_free(gw *w);
void gw_str(gw *w, const char *key, const char *val);
void gw_u32(gw *w, const char *key, uint32_t v);
void gw_i32(gw *w, const char *key, int32_t v);
void gw_f32(gw *w, const char *key, float v);
void gw_bool(gw *w, const char *key, int v);
void gw_str_arr(gw *w, const char *key, const char *const *s, const size_t *lens, size_t n);
void gw_i32_arr(gw *w, const char *key, const int32_t *v, size_t n);
/* ne[0] is the contiguous dimension; data is copied */
void gw_tensor(gw *w, const char *name, uint32_t type, int ndim, const uint64_t *ne, const void *data, size_t size);
/* 0 on success, -1 on an I/O or allocation failure (also after any earlier allocation failure) */
int gw_write(gw *w, const char *path, uint32_t version);

/* Ternary encoders over a flat row-major stream of n values in {-1,0,+1}; return bytes written. */
size_t gw_i2s(const int8_t *v, uint64_t n, float alpha, uint8_t *out);  /* n/4 + 32 bytes */
size_t gw_tq2(const int8_t *v, uint64_t n, float alpha, uint8_t *out);  /* n/256 * 66 */
size_t gw_tq1(const int8_t *v, uint64_t n, float alpha, uint8_t *out);  /* n/256 * 54 */

#endif
