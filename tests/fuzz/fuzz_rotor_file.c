/* fuzz_rotor_file.c: libFuzzer target for the .rotor reader (models/format.c) and everything
 * that trusts what it accepts: metadata lookups, rtr_file_verify, the tokenizer reader
 * (models/tokenizer.c) and model opening (models/model.c) with a short evaluation on the CPU.
 *
 * Random bytes almost never pass the header checksum, so before the file is handed over the
 * target repairs what a damaged file could not repair by chance: the header's file size, each
 * tensor checksum whose range lies inside the file, and then the header checksum. The checks
 * behind those fields are covered by tests/bad_input.sh; here the fuzzer reaches the bounds
 * checks of metadata, directory, shapes, offsets and tokenizer tables. Properties: every
 * accepted tensor lies inside the map, metadata values lie inside the metadata block. */
#include "fuzz_common.h"
#include "../../models/format.h"
#include "../../models/tokenizer.h"

static uint64_t rd64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

/* Makes the checksums and size field of a (possibly damaged) .rotor image self-consistent. */
static void repair(uint8_t *b, size_t n) {
    if (n < RTR_HEADER_BYTES || memcmp(b, RTR_MAGIC, 8)) return;
    uint64_t moff = rd64(b + 24), msize = rd64(b + 32), doff = rd64(b + 40);
    uint32_t nt = rd32(b + 48);
    memcpy(b + 16, &(uint64_t){n}, 8);
    if (moff > n || msize > n - moff || doff > n || (uint64_t)nt * RTR_DIR_ENTRY_BYTES > n - doff) return;
    for (uint32_t i = 0; i < nt; i++) {
        uint8_t *e = b + doff + (uint64_t)i * RTR_DIR_ENTRY_BYTES;
        uint64_t off = rd64(e + 96), size = rd64(e + 104);
        if (off <= n && size <= n - off) memcpy(e + 112, &(uint64_t){rtr_hash64(b + off, size, 0)}, 8);
    }
    size_t hl = 56 + msize + (size_t)nt * RTR_DIR_ENTRY_BYTES;
    uint8_t *h = malloc(hl);
    if (!h) return;
    memcpy(h, b, 56);
    memcpy(h + 56, b + moff, msize);
    memcpy(h + 56 + msize, b + doff, (size_t)nt * RTR_DIR_ENTRY_BYTES);
    memcpy(b + 56, &(uint64_t){rtr_hash64(h, hl, 0)}, 8);
    free(h);
}

static const char *const int_keys[] = {"model.n_vocab", "model.n_embd", "model.n_layer", "model.n_head",
                                       "model.n_head_kv", "model.n_ff", "tokenizer.n_vocab", "tokenizer.bos"};

static void use_tokenizer(const rtr_file *f) {
    rtr_tokenizer *t;
    rtr_err e;
    if (rtr_tok_load(&t, f, &e)) return;
    static const char *const texts[] = {"Hello world! 123 <|eot_id|>", "  \n\n\tçé 中文 😀 'll 's",
                                        "<user_word>x", ""};
    int32_t ids[256];
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        for (int sp = 0; sp < 2; sp++) {
            int n = rtr_tok_encode(t, texts[i], strlen(texts[i]), sp, ids, 256);
            FZ_ASSERT(n >= 0 || n == RTR_ENOMEM, "encode failed with %d on valid text", n);
            for (int k = 0; k < n && k < 256; k++)
                FZ_ASSERT(ids[k] >= 0 && ids[k] < rtr_tok_n_vocab(t), "id %d out of range", ids[k]);
        }
    int nv = rtr_tok_n_vocab(t);
    for (int id = -1; id <= nv && id < 4096; id++) {
        size_t l;
        const char *s = rtr_tok_bytes(t, id, &l);
        FZ_ASSERT(s != NULL, "rtr_tok_bytes gave NULL");
        if (l) FZ_ASSERT((const uint8_t *)s >= f->map && (const uint8_t *)s + l <= f->map + f->size, "token %d outside the map", id);
        rtr_tok_type(t, id);
        if (l && l < 64) rtr_tok_find(t, s, l);
    }
    rtr_tok_free(t);
}

static volatile float g_sink; /* keeps the logits read */

static void use_model(const char *path, int n_vocab_hint) {
    rtr_model *m;
    rtr_err e;
    rtr_model_opts mo = {.backend = "cpu", .device = -1, .n_threads = 1};
    if (rtr_model_open(&m, path, &mo, &e)) {
        FZ_ASSERT(e.msg[0], "model open failed without a message");
        return;
    }
    rtr_model_info mi;
    rtr_model_get_info(m, &mi);
    rtr_session *s;
    rtr_session_opts so = {.n_ctx = 16, .n_sink = 2, .n_batch = 4};
    if (!rtr_session_new(&s, m, &so, &e)) {
        int32_t ids[3] = {mi.bos >= 0 ? mi.bos : 0, 1 % mi.n_vocab, (n_vocab_hint > 2 ? 2 : 0) % mi.n_vocab};
        if (!mi.is_embedding && !rtr_eval(s, ids, 3, &e)) {
            const float *lg = rtr_logits(s);
            float sum = 0;
            for (int i = 0; i < mi.n_vocab; i++) sum += lg[i];
            g_sink = sum;
        }
        rtr_session_free(s);
    }
    rtr_chat_msg msg = {"user", "hi"};
    int32_t ids[64];
    rtr_chat_tokenize(m, &msg, 1, 1, 0, ids, 64);
    rtr_model_close(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *b = malloc(size ? size : 1);
    if (!b) return 0;
    memcpy(b, data, size);
    repair(b, size);
    char path[64];
    int fd = fz_memfile(b, size, path);
    free(b);
    if (fd < 0) return 0;
    rtr_file f;
    rtr_err err = {0};
    int r = rtr_file_open(&f, path, &err);
    FZ_ASSERT(r == 0 || r == RTR_EFORMAT || r == RTR_ENOMEM || r == RTR_EIO, "return %d", r);
    if (r) {
        FZ_ASSERT(err.msg[0], "no error message");
        close(fd);
        return 0;
    }
    FZ_ASSERT(f.meta >= f.map && f.meta_size <= f.size && f.meta + f.meta_size <= f.map + f.size, "metadata outside the map");
    for (uint32_t i = 0; i < f.n_tensors; i++) {
        const rtr_tensor *t = &f.tensors[i];
        FZ_ASSERT((const uint8_t *)t->data >= f.map && t->size <= f.size &&
                  (const uint8_t *)t->data + t->size <= f.map + f.size, "tensor %s outside the map", t->name);
        FZ_ASSERT(t->size == rtr_tensor_bytes((int)t->type, (int)t->ndim, t->shape), "tensor %s: size", t->name);
        FZ_ASSERT(rtr_file_tensor(&f, t->name) == t, "tensor %s found elsewhere", t->name);
    }
    int64_t iv = 0, nv = 0;
    double dv;
    const char *s;
    size_t l;
    for (size_t i = 0; i < sizeof int_keys / sizeof int_keys[0]; i++) rtr_meta_int(&f, int_keys[i], &iv);
    rtr_meta_int(&f, "model.n_vocab", &nv);
    rtr_meta_float(&f, "model.rope_theta", &dv);
    if (!rtr_meta_str(&f, "general.arch", &s, &l))
        FZ_ASSERT((const uint8_t *)s >= f.meta && (const uint8_t *)s + l <= f.meta + f.meta_size, "string outside the metadata");
    if (!rtr_meta_str(&f, "chat.template", &s, &l))
        FZ_ASSERT((const uint8_t *)s >= f.meta && (const uint8_t *)s + l <= f.meta + f.meta_size, "string outside the metadata");
    rtr_file_verify(&f, NULL, NULL, &err);
    use_tokenizer(&f);
    rtr_file_close(&f);
    /* `rotor run` does not verify data first, so neither does this */
    use_model(path, (int)nv);
    close(fd);
    return 0;
}
