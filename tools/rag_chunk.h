/* rag_chunk.h: the RAG chunker and the text it works on.
 *
 * A document becomes an rag_text: valid UTF-8 extracted from the file (HTML tags stripped,
 * invalid bytes replaced by U+FFFD) plus a map from text offsets back to file offsets, so every
 * chunk can name its byte and line range in the original file. The chunker splits that text on
 * paragraph and sentence boundaries into pieces of about `tokens` tokens, each overlapping the
 * previous by about `overlap` tokens. Token counts come from a caller's counter (a model's
 * tokenizer) or, without one, bytes/4.
 */
#ifndef ROTOR_RAG_CHUNK_H
#define ROTOR_RAG_CHUNK_H

#include "../rotor.h"

/* Computes one L2-normalised embedding of text into out (dim floats); 0 or a negative RTR_E*. */
typedef int (*rag_embed_fn)(void *ud, const char *text, size_t len, float *out);
/* Counts the tokens of text (>= 0) or returns a negative RTR_E*. */
typedef int (*rag_count_fn)(void *ud, const char *text, size_t len);

/* Piecewise-linear map from offsets of a derived text to offsets of its source: derived offset o
 * in [out[i], out[i+1]) maps to src[i] + (o - out[i]). n == 0 means the identity. */
typedef struct {
    size_t *out, *src;
    size_t n, cap;
} rag_map;

/* One extracted document. text is NUL-terminated valid UTF-8 of len bytes. */
typedef struct {
    char *text;
    size_t len;
    rag_map map1, map2; /* text -> (after map2) intermediate -> (after map1) file offsets */
    size_t *nl; /* file offsets of every '\n' in the file, ascending */
    size_t n_nl;
    size_t src_len; /* bytes of the file */
    size_t n_replaced; /* invalid UTF-8 sequences replaced by U+FFFD */
} rag_text;

/* A chunk: a byte range of the extracted text with its place in the source file. */
typedef struct {
    size_t start, end; /* in rag_text.text */
    int64_t byte_start, byte_end; /* in the source file, end exclusive */
    int line_start, line_end; /* 1-based, inclusive */
    int n_tokens;
} rag_chunk;

typedef struct {
    int tokens; /* target tokens per chunk (default 400) */
    int overlap; /* tokens repeated from the end of the previous chunk (default 60) */
    rag_count_fn count; /* NULL: bytes/4 */
    void *count_ud;
} rag_chunk_opts;

void rag_chunk_defaults(rag_chunk_opts *o);

/* Splits t into chunks (file ranges and lines filled in). *out is malloc'd (free it); a text with
 * nothing but whitespace gives 0 chunks. Returns 0 or a negative RTR_E*. */
int rag_chunk_text(const rag_text *t, const rag_chunk_opts *o, rag_chunk **out, int *n_out,
                   rtr_err *err);

/* Offset in the source file of offset o of t->text, and the 1-based line it lies on. */
size_t rag_text_src(const rag_text *t, size_t o);
int rag_text_line(const rag_text *t, size_t src_off);

void rag_text_free(rag_text *t);

#endif
