/* fuzz_tokenize.c: libFuzzer target for rtr_tok_encode (models/tokenizer.c) with the real
 * Llama-3 vocabulary (models/llama3-tokenizer.json, built into a .rotor file once at start),
 * and for the streaming UTF-8 repair of the detokenizer.
 * Properties, for any bytes: invalid UTF-8 is RTR_EARG and valid UTF-8 encodes; the ids are in
 * range and their bytes spell the input exactly (with and without special tokens); a smaller
 * id buffer gives the same count and the same first ids; rtr_detok_push_bytes, fed the input
 * in pieces, gives valid UTF-8, and gives the input back unchanged when it was valid. */
#include "fuzz_tok.h"

static rtr_file g_file;
static rtr_tokenizer *g_tok;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    fz_llama3_tok("fuzz_tokenize", &g_file, &g_tok);
    return 0;
}

static void detok(const uint8_t *data, size_t size, int valid) {
    size_t cap = 3 * size + 8;
    char *out = malloc(cap);
    if (!out) return;
    rtr_detok d = {{0}, 0};
    size_t o = 0, i = 0, step = 1;
    while (i < size) {
        size_t n = size - i < step ? size - i : step;
        o += (size_t)rtr_detok_push_bytes(&d, (const char *)data + i, n, out + o, cap - o);
        i += n;
        step = step % 7 + 1 + (data[i - 1] & 3);
    }
    o += (size_t)rtr_detok_flush(&d, out + o, cap - o);
    FZ_ASSERT(o <= cap, "detok wrote past its cap");
    FZ_ASSERT(fz_utf8_valid((const uint8_t *)out, o), "detok output is not valid UTF-8");
    if (valid) FZ_ASSERT(o == size && !memcmp(out, data, size), "detok changed valid UTF-8");
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 1 << 16) return 0;
    const char *text = (const char *)data;
    int valid = fz_utf8_valid(data, size);
    int cap = (int)size + 8;
    int32_t *ids = malloc((size_t)cap * sizeof *ids);
    if (!ids) return 0;
    int nv = rtr_tok_n_vocab(g_tok);
    for (int sp = 0; sp < 2; sp++) {
        int n = rtr_tok_encode(g_tok, text, size, sp, ids, cap);
        if (!valid) {
            FZ_ASSERT(n == RTR_EARG, "invalid UTF-8 gave %d, not RTR_EARG", n);
            continue;
        }
        FZ_ASSERT(n >= 0 && n <= (int)size, "valid UTF-8 of %zu bytes gave %d", size, n);
        for (int k = 0; k < n; k++) FZ_ASSERT(ids[k] >= 0 && ids[k] < nv, "id %d out of range", ids[k]);
        FZ_ASSERT(fz_tok_roundtrip(g_tok, ids, n, text, size), "ids do not spell the input (special %d)", sp);
        int32_t few[3];
        int m = rtr_tok_encode(g_tok, text, size, sp, few, 3);
        FZ_ASSERT(m == n, "count %d with 3 slots, %d with %d", m, n, cap);
        for (int k = 0; k < n && k < 3; k++) FZ_ASSERT(few[k] == ids[k], "id %d differs with a small buffer", k);
        FZ_ASSERT(rtr_tok_encode(g_tok, text, size, sp, NULL, 0) == n, "count-only call differs");
    }
    free(ids);
    detok(data, size, valid);
    return 0;
}
