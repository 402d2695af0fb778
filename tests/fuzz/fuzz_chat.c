/* fuzz_chat.c: libFuzzer target for the chat template renderer (models/chat.c:
 * rtr_chat_tokenize) on a model holding the real Llama-3 vocabulary.
 * Input: byte 0 picks the template (bits 0-1: none, 2B4T, Llama-3 headers, ChatML), the
 * generation prompt (bit 2), special tokens in content (bit 3), a model without an end-of-turn
 * id (bit 4) and a small id buffer (bits 5-7); then up to 16 messages as role NUL content NUL.
 * Properties: any roles and contents give a count or a negative error, never a crash; every id
 * written is in the vocabulary; a small buffer gives the same count and the same first ids. */
#include "fuzz_tok.h"
#include "../../models/model.h"

static rtr_file g_file;
static rtr_tokenizer *g_tok;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    fz_llama3_tok("fuzz_chat", &g_file, &g_tok);
    return 0;
}

static const char *const templates[] = {
    NULL,
    "{% for message in messages %}{{ message['role']|capitalize + ': ' + message['content']|trim + '<|eot_id|>' }}{% endfor %}",
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}",
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > 1 << 16) return 0;
    uint8_t ctl = data[0];
    /* copy so that the last string is NUL-terminated */
    char *buf = malloc(size + 1);
    if (!buf) return 0;
    memcpy(buf, data + 1, size - 1);
    buf[size - 1] = buf[size] = 0;
    rtr_chat_msg msgs[16];
    int nm = 0;
    for (size_t p = 0; p < size - 1 && nm < 16;) {
        const char *role = buf + p;
        p += strlen(role) + 1;
        const char *content = p < size ? buf + p : "";
        if (p < size) p += strlen(content) + 1;
        msgs[nm++] = (rtr_chat_msg){role, content};
    }
    rtr_model m;
    memset(&m, 0, sizeof m);
    m.tok = g_tok;
    m.hp.n_vocab = rtr_tok_n_vocab(g_tok);
    m.hp.bos = 128000;
    m.hp.add_bos = 1;
    m.hp.eos = ctl & 16 ? -1 : 128001;
    m.hp.eot = ctl & 16 ? -1 : 128009;
    m.chat_template = templates[ctl & 3];
    int add_gen = (ctl >> 2) & 1, special = (ctl >> 3) & 1, small = ctl >> 5;
    int cap = (int)size * 2 + 64 * (nm + 2);
    int32_t *ids = malloc((size_t)cap * sizeof *ids);
    if (!ids) { free(buf); return 0; }
    int n = rtr_chat_tokenize(&m, msgs, nm, add_gen, special, ids, cap);
    FZ_ASSERT(n >= 0 || n == RTR_EARG || n == RTR_EFORMAT || n == RTR_ENOMEM, "returned %d", n);
    if (n >= 0) {
        FZ_ASSERT(n <= cap, "%d ids for a buffer of %d", n, cap);
        for (int k = 0; k < n; k++) FZ_ASSERT(ids[k] >= 0 && ids[k] < m.hp.n_vocab, "id %d at %d is not in the vocabulary", ids[k], k);
        if (small) {
            int32_t few[8];
            int c = small;
            int n2 = rtr_chat_tokenize(&m, msgs, nm, add_gen, special, few, c);
            FZ_ASSERT(n2 == n, "count %d with %d slots, %d with %d", n2, c, n, cap);
            for (int k = 0; k < c && k < n; k++) FZ_ASSERT(few[k] == ids[k], "id %d differs with a small buffer", k);
        }
    }
    free(ids);
    free(buf);
    return 0;
}
