/* fuzz_chunk.c: libFuzzer target for the RAG document path: HTML stripping and UTF-8 cleaning
 * (tools/rag_walk.h) and the chunker (tools/rag_chunk.c: rag_chunk_text), built into a
 * rag_text the way rag_extract does it.
 * Input: byte 0 picks the document kind (bit 0-1: text, markdown, code, HTML) and the token
 * counter (bit 2: one token per space-separated word instead of bytes/4; bit 3: a counter that
 * fails), bytes 1-2 the tokens per chunk, byte 3 the overlap; the rest is the file.
 * Properties: the extracted text is valid UTF-8; chunks lie inside the text, move forward,
 * never start or end in the middle of a character, map to byte ranges inside the file and to
 * lines that exist, and together cover every non-space byte of the text. With
 * ROTOR_FUZZ_STRICT_CHUNKS=1, every chunk must also start and end past the one before. */
#include "fuzz_common.h"
#include "../../tools/rag_chunk.h"
#include "../../tools/rag_walk.h"

static int count_words(void *ud, const char *s, size_t n) {
    (void)ud;
    int w = 0, in = 0;
    for (size_t i = 0; i < n; i++) {
        int sp = s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r';
        if (!sp && !in) w++;
        in = !sp;
    }
    return w;
}

static int count_fail(void *ud, const char *s, size_t n) {
    (void)ud; (void)s;
    return n > 64 ? RTR_EFORMAT : (int)n / 4;
}

static int g_strict; /* ROTOR_FUZZ_STRICT_CHUNKS=1: chunks move strictly forward */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    const char *s = getenv("ROTOR_FUZZ_STRICT_CHUNKS");
    g_strict = s && *s == '1';
    return 0;
}

static int is_cont(uint8_t c) { return (c & 0xC0) == 0x80; }
static int is_ws(char c) { return c && strchr(" \t\n\r\f\v", c); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 4 || size > 1 << 18) return 0;
    uint8_t ctl = data[0];
    const char *raw = (const char *)data + 4;
    size_t len = size - 4;
    rag_text t;
    memset(&t, 0, sizeof t);
    size_t nl = 0;
    for (size_t i = 0; i < len; i++) nl += raw[i] == '\n';
    t.nl = malloc((nl ? nl : 1) * sizeof *t.nl);
    if (!t.nl) return 0;
    for (size_t i = 0; i < len; i++)
        if (raw[i] == '\n') t.nl[t.n_nl++] = i;
    t.src_len = len;
    const char *src = raw;
    size_t slen = len;
    char *stripped = NULL;
    if ((ctl & 3) == RAG_KIND_HTML) {
        stripped = rag_html_strip(raw, len, &slen, &t.map1);
        if (!stripped) { rag_text_free(&t); return 0; }
        src = stripped;
    }
    t.text = rag_utf8_clean(src, slen, &t.len, &t.map2, &t.n_replaced);
    free(stripped);
    if (!t.text) { rag_text_free(&t); return 0; }
    FZ_ASSERT(t.text[t.len] == 0, "text not NUL-terminated");
    FZ_ASSERT(fz_utf8_valid((const uint8_t *)t.text, t.len), "cleaned text is not valid UTF-8");
    if ((ctl & 3) != RAG_KIND_HTML && fz_utf8_valid((const uint8_t *)raw, len))
        FZ_ASSERT(t.len == len && !memcmp(t.text, raw, len) && t.n_replaced == 0, "clean changed valid UTF-8");

    rag_chunk_opts o;
    rag_chunk_defaults(&o);
    o.tokens = data[1] | (data[2] & 3) << 8; /* 0 means the default */
    o.overlap = data[3] - 16;                /* negative values too */
    if (ctl & 4) o.count = count_words;
    if (ctl & 8) o.count = count_fail;
    rag_chunk *ch = NULL;
    int n = 0;
    rtr_err err = {0};
    int r = rag_chunk_text(&t, &o, &ch, &n, &err);
    if (ctl & 8) {
        FZ_ASSERT(r == 0 || r == RTR_EFORMAT, "returned %d", r);
    } else {
        FZ_ASSERT(r == 0, "chunking failed: %d %s", r, err.msg);
    }
    if (r == 0) {
        size_t covered = 0; /* every non-space byte before this lies in some chunk */
        int lines = (int)t.n_nl + 1;
        for (int i = 0; i < n; i++) {
            const rag_chunk *c = &ch[i];
            FZ_ASSERT(c->start < c->end && c->end <= t.len, "chunk %d [%zu, %zu) of %zu", i, c->start, c->end, t.len);
            FZ_ASSERT(!is_cont((uint8_t)t.text[c->start]) && (c->end == t.len || !is_cont((uint8_t)t.text[c->end])),
                      "chunk %d cuts a character", i);
            if (i) FZ_ASSERT(c->start >= ch[i - 1].start && c->end >= ch[i - 1].end, "chunk %d goes backwards", i);
            /* a chunk that starts or ends where the previous one did repeats a piece of it; the
             * chunker does that today (corpus/fuzz_chunk/end-stalls, duplicate), so moving
             * strictly forward is checked only on request */
            if (i && g_strict)
                FZ_ASSERT(c->start > ch[i - 1].start && c->end > ch[i - 1].end, "chunk %d repeats the end or start of chunk %d", i, i - 1);
            for (size_t k = covered; k < c->start; k++)
                FZ_ASSERT(is_ws(t.text[k]), "byte %zu ('%c') is in no chunk", k, t.text[k]);
            if (c->end > covered) covered = c->end;
            FZ_ASSERT(c->byte_start >= 0 && c->byte_start <= c->byte_end && (size_t)c->byte_end <= t.src_len,
                      "chunk %d file range [%lld, %lld) of %zu", i, (long long)c->byte_start, (long long)c->byte_end, t.src_len);
            FZ_ASSERT(c->line_start >= 1 && c->line_start <= c->line_end && c->line_end <= lines,
                      "chunk %d lines %d-%d of %d", i, c->line_start, c->line_end, lines);
            FZ_ASSERT(c->n_tokens >= 0, "chunk %d has %d tokens", i, c->n_tokens);
        }
        for (size_t k = covered; k < t.len; k++)
            FZ_ASSERT(is_ws(t.text[k]), "byte %zu after the last chunk is in no chunk", k);
    } else {
        FZ_ASSERT(ch == NULL && n == 0, "chunks left after an error");
    }
    free(ch);
    rag_text_free(&t);
    return 0;
}
