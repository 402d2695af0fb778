/* fuzz_tokenizer_json.c: libFuzzer target for the converter's tokenizer path: tokenizer.json
 * -> rtr_tok_src_from_hf (models/tokenizer_build.c) -> rtr_tok_write -> .rotor -> rtr_tok_load
 * (models/tokenizer.c) -> rtr_tok_encode.
 * A vocabulary the builder accepts must write, open and load again; encoding must then give
 * ids in range whose bytes spell the text back exactly (ASCII texts, which no normaliser
 * changes), with or without special tokens. */
#include "fuzz_tok.h"

static const char *const texts[] = {
    "Hello world! It's 2024: 12345 apples, don't they?",
    "  leading\n\n\ttabs   and    runs of spaces   ",
    "<|begin_of_text|>special<|eot_id|> and <user_word> inline",
    "a", "",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[300];
    snprintf(path, sizeof path, "%s/tok.rotor", fz_scratch());
    rtr_file f;
    rtr_tokenizer *t;
    rtr_err err = {0};
    int r = fz_build_tok((const char *)data, size, path, &f, &t, &err);
    FZ_ASSERT(r >= 0, "accepted vocabulary does not round-trip through a .rotor file: %s", err.msg);
    if (r) {
        FZ_ASSERT(err.msg[0], "refused without a message");
        return 0;
    }
    int nv = rtr_tok_n_vocab(t);
    int32_t ids[512];
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        for (int sp = 0; sp < 2; sp++) {
            size_t len = strlen(texts[i]);
            int n = rtr_tok_encode(t, texts[i], len, sp, ids, 512);
            FZ_ASSERT(n >= 0 && n <= 512, "encode of \"%s\" gave %d", texts[i], n);
            for (int k = 0; k < n; k++) FZ_ASSERT(ids[k] >= 0 && ids[k] < nv, "id %d out of range", ids[k]);
            FZ_ASSERT(fz_tok_roundtrip(t, ids, n, texts[i], len), "ids of \"%s\" (special %d) do not spell it", texts[i], sp);
        }
    /* every id's bytes are readable and lie in the file */
    for (int id = 0; id < nv; id++) {
        size_t l;
        const char *b = rtr_tok_bytes(t, id, &l);
        FZ_ASSERT(!l || ((const uint8_t *)b >= f.map && (const uint8_t *)b + l <= f.map + f.size), "token %d outside the file", id);
    }
    rtr_tok_free(t);
    rtr_file_close(&f);
    unlink(path);
    return 0;
}
