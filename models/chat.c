/* chat.c: turning a conversation into token ids with the model's chat format.
 * rotor renders the formats it recognises in the model's Jinja template rather than running
 * Jinja: 2B4T's "Role: content<|eot_id|>" (the default for the bitnet architecture), Llama-3
 * headers, and ChatML. Each message is tokenized as one piece between special tokens, as the
 * reference tokenizes the rendered string; message content is plain text unless the caller
 * allows special tokens in it. */
#include "model.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

enum { FMT_BITNET, FMT_LLAMA3, FMT_CHATML };

static int detect(const rtr_model *m) {
    const char *t = m->chat_template;
    if (t && strstr(t, "<|start_header_id|>")) return FMT_LLAMA3;
    if (t && strstr(t, "<|im_start|>")) return FMT_CHATML;
    return FMT_BITNET;
}

typedef struct { int32_t *ids; int cap, n; } out_ids;

static void put(out_ids *o, int32_t id) {
    if (o->n < o->cap) o->ids[o->n] = id;
    o->n++;
}

static int put_text(const rtr_model *m, out_ids *o, const char *s, size_t len, int special) {
    int r = rtr_tok_encode(m->tok, s, len, special, o->n < o->cap ? o->ids + o->n : NULL,
                           o->n < o->cap ? o->cap - o->n : 0);
    if (r < 0) return r;
    o->n += r;
    return 0;
}

static int special_id(const rtr_model *m, const char *text) {
    return rtr_tok_find(m->tok, text, strlen(text));
}

static void trim(const char **s, size_t *len) {
    while (*len && isspace((unsigned char)**s)) { (*s)++; (*len)--; }
    while (*len && isspace((unsigned char)(*s)[*len - 1])) (*len)--;
}

int rtr_chat_tokenize(const rtr_model *m, const rtr_chat_msg *msgs, int n_msgs, int add_gen,
                      int allow_special, int32_t *ids, int cap) {
    out_ids o = {ids, cap, 0};
    int fmt = detect(m), r;
    if (m->hp.bos >= 0 && m->hp.add_bos) put(&o, m->hp.bos);
    int eot = m->hp.eot >= 0 ? m->hp.eot : m->hp.eos;
    size_t buf_cap = 256;
    for (int i = 0; i < n_msgs; i++) buf_cap += strlen(msgs[i].role) + strlen(msgs[i].content) + 64;
    char *buf = malloc(buf_cap);
    if (!buf) return RTR_ENOMEM;
    for (int i = 0; i < n_msgs; i++) {
        const char *c = msgs[i].content, *role = msgs[i].role;
        size_t cl = strlen(c);
        if (fmt == FMT_BITNET) {
            trim(&c, &cl);
            /* "Role: content" is one piece: the role is capitalised, content trimmed */
            size_t rl = strlen(role);
            memcpy(buf, role, rl);
            if (rl) buf[0] = (char)toupper((unsigned char)buf[0]);
            memcpy(buf + rl, ": ", 2);
            memcpy(buf + rl + 2, c, cl);
            if ((r = put_text(m, &o, buf, rl + 2 + cl, allow_special)) < 0) goto fail;
            if (eot < 0) { r = RTR_EFORMAT; goto fail; }
            put(&o, eot);
        } else if (fmt == FMT_LLAMA3) {
            int sh = special_id(m, "<|start_header_id|>"), eh = special_id(m, "<|end_header_id|>");
            if (sh < 0 || eh < 0 || eot < 0) { r = RTR_EFORMAT; goto fail; }
            trim(&c, &cl);
            put(&o, sh);
            if ((r = put_text(m, &o, role, strlen(role), 0)) < 0) goto fail;
            put(&o, eh);
            memcpy(buf, "\n\n", 2);
            memcpy(buf + 2, c, cl);
            if ((r = put_text(m, &o, buf, cl + 2, allow_special)) < 0) goto fail;
            put(&o, eot);
        } else {
            int st = special_id(m, "<|im_start|>"), en = special_id(m, "<|im_end|>");
            if (st < 0 || en < 0) { r = RTR_EFORMAT; goto fail; }
            put(&o, st);
            size_t rl = strlen(role);
            memcpy(buf, role, rl);
            buf[rl] = '\n';
            memcpy(buf + rl + 1, c, cl);
            if ((r = put_text(m, &o, buf, rl + 1 + cl, allow_special)) < 0) goto fail;
            put(&o, en);
            if ((r = put_text(m, &o, "\n", 1, 0)) < 0) goto fail;
        }
    }
    if (add_gen) {
        if (fmt == FMT_BITNET) r = put_text(m, &o, "Assistant: ", 11, 0);
        else if (fmt == FMT_LLAMA3) {
            int sh = special_id(m, "<|start_header_id|>"), eh = special_id(m, "<|end_header_id|>");
            if (sh < 0 || eh < 0) { r = RTR_EFORMAT; goto fail; }
            put(&o, sh);
            r = put_text(m, &o, "assistant", 9, 0);
            put(&o, eh);
            if (!r) r = put_text(m, &o, "\n\n", 2, 0);
        } else {
            int st = special_id(m, "<|im_start|>");
            if (st < 0) { r = RTR_EFORMAT; goto fail; }
            put(&o, st);
            r = put_text(m, &o, "assistant\n", 10, 0);
        }
        if (r < 0) goto fail;
    }
    free(buf);
    return o.n;
fail:
    free(buf);
    return r < 0 ? r : RTR_EFORMAT;
}
