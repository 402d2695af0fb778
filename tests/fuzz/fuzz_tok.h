/* fuzz_tok.h: building a tokenizer the way the converter does (tokenizer.json -> rtr_tok_src ->
 * .rotor tensors) and loading it back the way a model does, for the tokenizer and chat fuzz
 * targets. The .rotor file goes to the target's scratch folder. */
#ifndef ROTOR_FUZZ_TOK_H
#define ROTOR_FUZZ_TOK_H

#include "fuzz_common.h"
#include "../../models/format.h"
#include "../../models/tokenizer.h"
#include "../../tools/json.h"

/* Returns 0 with *f open and *t loaded, 1 when the JSON or the vocabulary is refused (a clean
 * error, in err), or -1 when a vocabulary the builder accepted could not be written or loaded
 * back (a bug; err says why). */
static inline int fz_build_tok(const char *json, size_t len, const char *path, rtr_file *f,
                               rtr_tokenizer **t, rtr_err *err) {
    rtr_json *j;
    if (rtr_json_parse(json, len, &j, err)) return 1;
    rtr_tok_src *src;
    int r = rtr_tok_src_from_hf(&src, j, err);
    rtr_json_free(j);
    if (r) return r == RTR_ENOMEM ? 1 : (r == RTR_EFORMAT || r == RTR_EARG) ? 1 : -1;
    rtr_writer *w;
    if (rtr_writer_new(&w, path, err)) { rtr_tok_src_free(src); return -1; }
    r = rtr_tok_write(w, src, err);
    rtr_tok_src_free(src);
    if (r) { /* a vocabulary the reader could not use is refused here (RTR_EFORMAT) */
        rtr_writer_free(w);
        return r == RTR_ENOMEM || r == RTR_EFORMAT ? 1 : -1;
    }
    r = rtr_writer_finish(w, err);
    rtr_writer_free(w);
    if (r) return r == RTR_ENOMEM ? 1 : -1;
    if (rtr_file_open(f, path, err)) return -1;
    if (rtr_tok_load(t, f, err)) { rtr_file_close(f); return -1; }
    return 0;
}

/* The targets' start: the real Llama-3 vocabulary (models/llama3-tokenizer.json) built into a
 * .rotor file in the scratch folder and loaded into *f and *t (the file is unlinked: its map
 * stays valid). Exits with a message naming who on failure. */
static inline void fz_llama3_tok(const char *who, rtr_file *f, rtr_tokenizer **t) {
    char src[1024], path[300];
    fz_repo_path(src, sizeof src, "models/llama3-tokenizer.json");
    size_t len;
    char *json = fz_read_file(src, &len);
    if (!json) { fprintf(stderr, "%s: cannot read %s (run from the repository root or set ROTOR_ROOT)\n", who, src); exit(1); }
    snprintf(path, sizeof path, "%s/llama3.rotor", fz_scratch());
    rtr_err err = {0};
    if (fz_build_tok(json, len, path, f, t, &err)) { fprintf(stderr, "%s: %s\n", who, err.msg); exit(1); }
    free(json);
    unlink(path);
}

/* Concatenated bytes of ids[0..n) equal text[0..len)? */
static inline int fz_tok_roundtrip(const rtr_tokenizer *t, const int32_t *ids, int n, const char *text, size_t len) {
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        size_t l;
        const char *b = rtr_tok_bytes(t, ids[i], &l);
        if (l == 0 || l > len - at || memcmp(b, text + at, l)) return 0;
        at += l;
    }
    return at == len;
}

#endif
