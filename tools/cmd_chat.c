/* cmd_chat.c: `rotor chat`: a terminal chat that keeps the conversation in the KV ring, so each
 * turn evaluates only its new tokens and the chat never runs out of context (the ring forgets
 * the oldest turns, keeping the attention sinks). Reads turns line by line when stdin is not a
 * terminal, so it can be scripted. Commands: /exit, /clear, /regen, /help. */
#include "cli.h"
#include "gen.h"
#include "rag_prompt.h"
#include "sampling_args.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_TURN_TOKENS (1 << 20)

static void usage(void) {
    fprintf(stdout,
            "usage: rotor chat -m MODEL [options]\n"
            "  -s, --system TEXT      system prompt\n"
            "  -n, --predict N        most tokens per answer (default -1: until end of turn)\n"
            "  -c, --ctx-size N       KV ring slots (default: model max, at most 4096)\n"
            "  -t, --threads N        CPU threads\n"
            "      --backend NAME     auto, cpu, vulkan, opencl\n"
            "      --special          special-token strings typed in the chat become control tokens\n"
            "      --color on|off|auto  colour the answers (default auto: on a terminal)\n"
            "      --ignore-eos       answers end only at -n or Ctrl-C (for tests)\n"
            "      --no-warmup        no untimed pass through the kernels on a GPU before the chat\n"
            "      --rag FILE.sqlite  each question retrieves sources from the index; answers cite them\n"
            "  -k N                   sources per question (default 4)\n"
            "%s"
            "in the chat: /exit, /clear (new conversation), /regen (answer again), /help\n"
            "Ctrl-C stops an answer; Ctrl-C at an empty prompt or Ctrl-D leaves.\n",
            SAMPLING_HELP);
}

typedef struct {
    rtr_model *m;
    rtr_session *s;
    rtr_sampler *sp;
    const char *system;
    int special;
    int32_t *ids;
    int cap;
    int pending_eot;   /* the last answer ended without its end-of-turn token in the cache */
    int answer_start;  /* session position where the last answer began, -1 if none */
    int32_t last_prompt_tok;
    rag_ctx *rag;
    rag_prompt rp;
    char *answer;
    rtr_model_info mi;
} chat_state;

/* Tokens for one user turn after what the cache holds. The first turn carries BOS and the
 * system prompt; later turns start with the end-of-turn token the previous answer left out. */
static int turn_tokens(chat_state *c, const char *user) {
    int special = c->special;
    if (c->rag) {
        rtr_err e;
        rag_prompt_free(&c->rp);
        memset(&c->rp, 0, sizeof c->rp);
        if (rag_prompt_build(c->rag, user, &c->rp, &e)) { cli_error("%s", e.msg); return RTR_EIO; }
        user = c->rp.message;
        special = 0; /* document text is data */
    }
    rtr_chat_msg msgs[2];
    int nm = 0;
    int first = rtr_session_pos(c->s) == 0;
    if (first && c->system) msgs[nm++] = (rtr_chat_msg){"system", c->system};
    msgs[nm++] = (rtr_chat_msg){"user", user};
    int off = 0;
    if (!first && c->pending_eot && c->mi.eot >= 0) c->ids[off++] = c->mi.eot;
    int n = rtr_chat_tokenize(c->m, msgs, nm, 1, special, c->ids + off, c->cap - off);
    if (n < 0) return n;
    if (n > c->cap - off) return RTR_EARG;
    if (!first && c->mi.bos >= 0 && n > 0 && c->ids[off] == c->mi.bos) {
        memmove(c->ids + off, c->ids + off + 1, (size_t)(n - 1) * 4); /* one BOS per conversation */
        n--;
    }
    return off + n;
}

static int answer(chat_state *c, const gen_opts *go0) {
    rtr_err e = {0};
    gen_result gr;
    gen_opts go = *go0;
    if (c->rag) { go.capture = c->answer; go.capture_cap = 1 << 16; }
    c->answer_start = rtr_session_pos(c->s);
    int r = gen_run(c->s, c->m, c->sp, &go, &gr, &e);
    fputc('\n', stdout);
    if (c->rag && !r) {
        char *src = rag_prompt_sources(&c->rp, c->answer);
        if (src) { fputs(src, stdout); free(src); }
    }
    fflush(stdout);
    if (r) return cli_error("%s", e.msg), -1;
    /* generated tokens except the last were evaluated; an end token is added with the next turn */
    c->pending_eot = 1;
    if (gr.interrupted) {
        if (cli_interrupted == SIGTERM) return -2; /* SIGTERM ends the chat; Ctrl-C only the answer */
        cli_interrupted = 0;
        fprintf(stderr, "[interrupted]\n");
    }
    if (gr.out_errno) return cli_error("cannot write the output: %s", strerror(gr.out_errno)), -1;
    return gr.out_closed ? -3 : 0; /* the reader of stdout went away: leave quietly */
}

/* On a terminal: waits until a line can be read, or returns 0 once Ctrl-C (or SIGTERM) has
 * come. Polling in short steps closes the gap between checking the flag and blocking in read,
 * where a signal would otherwise be lost and the prompt wait forever. A terminal hands out one
 * line per read, so nothing is left waiting in stdin's buffer. */
static int wait_line(void) {
    struct pollfd p = {0, POLLIN, 0};
    while (!cli_interrupted) {
        int r = poll(&p, 1, 200);
        if (r > 0 || (r < 0 && errno != EINTR)) return 1;
    }
    return 0;
}

int rtr_cmd_chat(int argc, char **argv) {
    cli_model_args ma;
    cli_model_args_init(&ma);
    rtr_sampler_params sp;
    rtr_sampler_defaults(&sp);
    long seed = -1, n_predict = -1, n_ctx = 0;
    const char *system = NULL, *color = "auto", *rag = NULL;
    long rag_k = 4;
    int special = 0, ignore_eos = 0, no_warmup = 0, bad = 0;
    for (int i = 1; i < argc && !bad; i++) {
        const char *v;
        if (cli_model_arg(&ma, argc, argv, &i, &bad)) continue;
        if (sampling_arg(&sp, &seed, argc, argv, &i, &bad)) continue;
        if (cli_flag(argv, i, "-h", "--help")) { usage(); return 0; }
        if (cli_opt(argc, argv, &i, "-s", "--system", &v, &bad)) { system = v; continue; }
        if (cli_opt(argc, argv, &i, NULL, "--color", &v, &bad)) { color = v; continue; }
        if (cli_opt(argc, argv, &i, "-n", "--predict", &v, &bad)) {
            if (!bad && !cli_int(v, -1, 1L << 30, &n_predict)) bad = cli_error("-n needs a number >= -1");
            continue;
        }
        if (cli_opt(argc, argv, &i, "-c", "--ctx-size", &v, &bad)) {
            if (!bad && !cli_int(v, 0, 1L << 22, &n_ctx)) bad = cli_error("-c needs a context size");
            continue;
        }
        if (cli_flag(argv, i, NULL, "--special")) { special = 1; continue; }
        if (cli_flag(argv, i, NULL, "--ignore-eos")) { ignore_eos = 1; continue; }
        if (cli_flag(argv, i, NULL, "--no-warmup")) { no_warmup = 1; continue; }
        if (cli_opt(argc, argv, &i, NULL, "--rag", &v, &bad)) { rag = v; continue; }
        if (cli_opt(argc, argv, &i, "-k", "--top-sources", &v, &bad)) {
            if (!bad && !cli_int(v, 1, 100, &rag_k)) bad = cli_error("-k needs a count from 1 to 100");
            continue;
        }
        bad = cli_error("chat: unknown option '%s' (see rotor chat --help)", argv[i]);
    }
    if (bad) return 1;
    sampling_seed(&sp, seed);
    int tty_in = isatty(0), tty_out = isatty(1);
    int use_color = !strcmp(color, "on") || (!strcmp(color, "auto") && tty_out);

    chat_state c = {0};
    c.system = system;
    c.special = special;
    c.answer_start = -1;
    if (!(c.m = cli_open_model(&ma))) return 1;
    rtr_model_get_info(c.m, &c.mi);
    int rc = 1, r = 0;
    rtr_err e = {0};
    char *line = NULL;
    size_t lcap = 0;
    cli_install_signals();
    rtr_session_opts so = {(int)n_ctx, 4, 0, &cli_interrupted, ma.kv_f16};
    if (rtr_session_new(&c.s, c.m, &so, &e)) { cli_error("%s", e.msg); goto out; }
    int wr = no_warmup ? 0 : cli_warmup(c.s);
    if (wr) { rc = wr; goto out; }
    if (rtr_sampler_new(&c.sp, &sp, c.mi.n_vocab)) { cli_error("out of memory"); goto out; }
    c.cap = rtr_session_ctx(c.s) + 16;
    if (rag) {
        rag_ctx_opts ro;
        rag_ctx_defaults(&ro);
        ro.db_path = rag;
        ro.k = (int)rag_k;
        if (rag_ctx_open(&c.rag, &ro, &e)) { cli_error("%s", e.msg); goto out; }
        if (*rag_ctx_note(c.rag)) fprintf(stderr, "rotor: %s\n", rag_ctx_note(c.rag));
        if (!(c.answer = malloc(1 << 16))) { cli_error("out of memory"); goto out; }
    }
    c.ids = malloc((size_t)c.cap * 4);
    if (!c.ids) { cli_error("out of memory"); goto out; }
    gen_opts go = {(int)n_predict, ignore_eos, 0, use_color ? "\033[33m" : NULL, NULL, 0};
    if (tty_in) fprintf(stderr, "rotor chat: /exit to leave, /help for commands\n");
    for (;;) {
        if (tty_in) { fputs(use_color ? "\033[32m> \033[0m" : "> ", stdout); fflush(stdout); }
        errno = 0;
        ssize_t n = tty_in && !wait_line() ? (errno = EINTR, -1) : getline(&line, &lcap, stdin);
        if (n < 0) {
            if (errno == EINTR && cli_interrupted) { /* Ctrl-C at the prompt leaves */
                if (tty_in) fputc('\n', stdout);
                rc = 0;
                if (cli_interrupted == SIGTERM) { cli_error("terminated"); rc = 130; }
                break;
            }
            if (tty_in) fputc('\n', stdout);
            rc = 0; /* end of input */
            break;
        }
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
        if (n == 0) continue;
        if (!strcmp(line, "/exit") || !strcmp(line, "/quit") || !strcmp(line, "/bye")) { rc = 0; break; }
        if (!strcmp(line, "/help")) {
            fprintf(stdout, "/exit leave | /clear new conversation | /regen answer the last question again\n");
            continue;
        }
        if (!strcmp(line, "/clear")) {
            rtr_session_reset(c.s);
            rtr_sampler_reset(c.sp);
            c.pending_eot = 0;
            c.answer_start = -1;
            fprintf(stderr, "[new conversation]\n");
            continue;
        }
        if (!strcmp(line, "/regen")) {
            if (c.answer_start < 0) { fprintf(stderr, "[nothing to regenerate]\n"); continue; }
            /* forget the answer and the last prompt token, then evaluate that token again to
             * get the logits the answer started from */
            if (rtr_session_rewind(c.s, rtr_session_pos(c.s) - c.answer_start + 1)) { fprintf(stderr, "[cannot regenerate]\n"); continue; }
            if (rtr_eval(c.s, &c.last_prompt_tok, 1, &e)) { cli_error("%s", e.msg); goto out; }
            c.pending_eot = 0;
            if ((r = answer(&c, &go))) goto leave;
            continue;
        }
        if (line[0] == '/' && strchr("abcdefghijklmnopqrstuvwxyz", line[1]) && !strchr(line, ' ')) {
            fprintf(stderr, "[unknown command %s; /help lists them]\n", line);
            continue;
        }
        int nt = turn_tokens(&c, line);
        if (nt == RTR_EARG) { cli_error("that line is not valid UTF-8 or too long; try again"); continue; }
        if (nt == RTR_EIO) continue;
        if (nt < 0) { cli_error("cannot build the chat prompt: %s", rtr_strerror(nt)); goto out; }
        if (rtr_eval(c.s, c.ids, nt, &e)) {
            if (e.code == RTR_EINTR && cli_interrupted == SIGTERM) { r = -2; goto leave; }
            if (e.code == RTR_EINTR) { cli_interrupted = 0; fprintf(stderr, "[interrupted]\n"); continue; }
            cli_error("%s", e.msg);
            goto out;
        }
        c.last_prompt_tok = c.ids[nt - 1];
        c.pending_eot = 0;
        if ((r = answer(&c, &go))) goto leave;
    }
    goto out;
leave: /* answer() or an interrupted prompt ended the chat: r says why */
    if (r == -2) { cli_error("terminated"); rc = 130; }
    else if (r == -3) rc = 0;
out:
    if (c.rag) { rag_prompt_free(&c.rp); rag_ctx_close(c.rag); }
    free(c.answer);
    free(line);
    free(c.ids);
    rtr_sampler_free(c.sp);
    rtr_session_free(c.s);
    rtr_model_close(c.m);
    return rc;
}
