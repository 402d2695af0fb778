/* json.h: a strict JSON (RFC 8259) reader for the converter: tokenizer.json, config.json and the
 * like. The whole tree lives in one arena owned by the root; free it with rtr_json_free(root).
 *
 * Strictness: invalid UTF-8, control characters in strings, bad escapes and lone or mismatched
 * UTF-16 surrogates (\ud800 without its pair) are errors, as are trailing garbage, leading
 * zeros, NaN/Infinity, comments and trailing commas. Nesting deeper than 512 is an error.
 * Duplicate object keys are kept in order; rtr_json_get returns the first. */
#ifndef ROTOR_JSON_H
#define ROTOR_JSON_H

#include "../rotor.h"

enum { RTR_JSON_NULL, RTR_JSON_BOOL, RTR_JSON_NUM, RTR_JSON_STR, RTR_JSON_ARR, RTR_JSON_OBJ };

#define RTR_JSON_MAX_DEPTH 512

typedef struct rtr_json {
    int type;
    double num; int boolean;
    char *str; size_t len;            /* STR: decoded UTF-8, NUL-terminated (may contain NUL) */
    struct rtr_json *items; size_t n; /* ARR elements, or OBJ values */
    char **keys; size_t *key_lens;    /* OBJ keys (decoded, NUL-terminated), parallel to items */
} rtr_json;

/* Parses text (len bytes; no NUL needed). Returns 0, RTR_ENOMEM, or RTR_EFORMAT with
 * "line L col C: what" in err. On success *out is the root; free it with rtr_json_free. */
int rtr_json_parse(const char *text, size_t len, rtr_json **out, rtr_err *err);
/* Frees a tree returned by rtr_json_parse (only the root may be passed). NULL is fine. */
void rtr_json_free(rtr_json *j);
/* The value of key in obj; NULL if absent or obj is not an object. */
const rtr_json *rtr_json_get(const rtr_json *obj, const char *key);
/* 1 and *out set if j is a number with an integral value in int64 range (exact up to 2^53). */
int rtr_json_int(const rtr_json *j, int64_t *out);

#endif
