/* tokenizer.h: byte-level BPE tokenizers (Llama-3 and Qwen2 pre-tokenizers) stored in .rotor files.
 *
 * Converter side (models/tokenizer_build.c): an rtr_tok_src is built from a Hugging Face
 * tokenizer.json or from GGUF-style arrays, then rtr_tok_write declares and writes the
 * `tokenizer.*` tensors and metadata (docs/tokenizer-format.md).
 * Reader side (models/tokenizer.c): rtr_tok_load points into the mapped file (no copies, no
 * table building) and checks sizes; every id and offset read from the file is bounds-checked
 * when used. An rtr_tokenizer is immutable after load: any number of threads may encode with
 * it at once.
 *
 * Allocation rule: rtr_tok_encode works in stack buffers; it calls malloc only for pre-tokens
 * longer than 256 bytes and, for NFC-normalising vocabularies (Qwen2), once per call for the
 * normalised text. It is never called inside the per-token generation loop. */
#ifndef ROTOR_TOKENIZER_H
#define ROTOR_TOKENIZER_H

#include "../rotor.h"
#include "../tools/json.h"
#include "format.h"

/* llama.cpp token types; the file stores these per token. */
enum {
    RTR_TOKT_NORMAL = 1,
    RTR_TOKT_UNKNOWN = 2,
    RTR_TOKT_CONTROL = 3,      /* special: matched in text only with allow_special */
    RTR_TOKT_USER_DEFINED = 4, /* added, not special: always matched in text */
    RTR_TOKT_UNUSED = 5,
    RTR_TOKT_BYTE = 6,
};

/* Pre-tokenizer variants (metadata tokenizer.pre). */
enum { RTR_PRE_LLAMA3 = 0, RTR_PRE_QWEN2 = 1 };

/* ---- converter side ---- */
typedef struct rtr_tok_src rtr_tok_src; /* converter-side description of a vocabulary */

/* From a parsed HF tokenizer.json (model.vocab, model.merges as "a b" strings or [a,b] pairs,
 * added_tokens with special flags, the Split regex of pre_tokenizer -> "llama3" or "qwen2",
 * an NFC normalizer, model.ignore_merges). */
int rtr_tok_src_from_hf(rtr_tok_src **out, const rtr_json *tokenizer_json, rtr_err *err);
/* From GGUF-style arrays: tokens as byte-level-unicode strings (control and user-defined tokens
 * as plain text), llama.cpp token types (NULL: all normal), merges as "a b" strings, pre =
 * "llama3" | "qwen2" (llama3: ignore_merges on; qwen2: NFC normalisation, as its HF files). */
int rtr_tok_src_from_arrays(rtr_tok_src **out, int n_vocab, const char *const *tokens,
                            const size_t *token_lens, const int32_t *types, int n_merges,
                            const char *const *merges, const size_t *merge_lens, const char *pre,
                            rtr_err *err);
void rtr_tok_src_free(rtr_tok_src *s);
int rtr_tok_src_n_vocab(const rtr_tok_src *s);
int rtr_tok_src_find(const rtr_tok_src *s, const char *text); /* id of an exact token text or -1 */
/* Declares and writes the tokenizer tensors and its metadata keys into w (between other
 * tensors is fine: nothing may be left pending in w when it is called). */
int rtr_tok_write(rtr_writer *w, const rtr_tok_src *s, rtr_err *err);

/* ---- reader side ---- */
typedef struct rtr_tokenizer rtr_tokenizer;
int rtr_tok_load(rtr_tokenizer **out, const rtr_file *f, rtr_err *err); /* zero-copy */
void rtr_tok_free(rtr_tokenizer *t);
int rtr_tok_n_vocab(const rtr_tokenizer *t);
int rtr_tok_pre(const rtr_tokenizer *t); /* RTR_PRE_* */
/* Encodes UTF-8 text (no BOS/EOS: the caller adds them). allow_special: control-token strings
 * in the text become their ids (the reference behaviour); otherwise they are plain text.
 * User-defined added tokens are always matched. Returns the count (may exceed cap; only cap are
 * written), RTR_EARG for invalid UTF-8, RTR_ENOMEM. */
int rtr_tok_encode(const rtr_tokenizer *t, const char *text, size_t len, int allow_special,
                   int32_t *ids, int cap);
/* Raw bytes of a token (special tokens: their text); "" with *len 0 for bad ids. */
const char *rtr_tok_bytes(const rtr_tokenizer *t, int32_t id, size_t *len);
int rtr_tok_type(const rtr_tokenizer *t, int32_t id); /* RTR_TOKT_*, 0 for bad ids */
int rtr_tok_is_special(const rtr_tokenizer *t, int32_t id); /* control tokens */
int rtr_tok_find(const rtr_tokenizer *t, const char *text, size_t len); /* exact token -> id or -1 */

/* Streaming UTF-8 repair for detokenizing: appends bytes to what d holds and writes every
 * complete character to out; an incomplete sequence at the end is kept in d, invalid bytes
 * become U+FFFD (one per maximal invalid subpart). Returns the bytes written; output beyond cap
 * is dropped. Valid UTF-8 needs at most n + 3 bytes; cap >= 3 * n + 3 never drops anything. */
int rtr_detok_push_bytes(rtr_detok *d, const char *bytes, size_t n, char *out, size_t cap);
/* rtr_detok_flush (rotor.h) is implemented in models/tokenizer.c as well. */

/* ---- shared by the builder and the reader (the file format's hash functions) ---- */
uint64_t rtr_tok_hash_bytes(const void *p, size_t n);      /* = rtr_hash64(p, n, 0) */
uint64_t rtr_tok_hash_pair(uint32_t left, uint32_t right); /* splitmix64 of left<<32|right */
#define RTR_TOK_EMPTY 0xFFFFFFFFu

#endif
