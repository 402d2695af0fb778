/* cmd_run.c: `rotor run`: one prompt (-p, -f, or piped stdin), generated text streamed to
 * stdout, one timing line on stderr. Also the debugging switches scripts and tests rely on. */
#include "cli.h"
#include "gen.h"
#include "rag_prompt.h"
#include "sampling_args.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(void) {
    fprintf(stdout,
            "usage: rotor run -m MODEL [-p TEXT | -f FILE | < stdin] [options]\n"
            "  -n, --predict N        tokens to generate (-1: until end of text; default -1)\n"
            "  -c, --ctx-size N       KV ring slots (default: model max, at most 4096)\n"
            "  -b, --batch-size N     prompt tokens per evaluation step (default 512)\n"
            "      --sinks N          ring slots never evicted (default 4)\n"
            "      --cache-type T     KV cache precision: f32 (default, reference-exact) or f16 (half the memory)\n"
            "  -t, --threads N        CPU threads (default: physical cores)\n"
            "      --backend NAME     auto, cpu, vulkan, opencl (default auto)\n"
            "      --device N         GPU index (rotor --list-devices)\n"
            "      --chat             wrap the prompt in the model's chat template\n"
            "  -s, --system TEXT      system prompt for --chat\n"
            "      --no-bos           do not add the model's BOS token\n"
            "      --no-special       special-token strings in the prompt are plain text\n"
            "      --prompt-ids LIST  exact token ids (comma-separated) instead of text\n"
            "      --logits-out FILE  float32 logits of the last prompt position\n"
            "      --print-ids        print generated ids instead of text\n"
            "      --ignore-eos       keep generating past end-of-text\n"
            "  -q, --quiet            no timing line\n"
            "      --no-warmup        no untimed pass through the kernels on a GPU before the prompt\n"
            "      --rag FILE.sqlite  answer from an index made by rotor rag-index, citing sources\n"
            "                         (implies --chat); -k N sources (default 4)\n"
            "%s",
            SAMPLING_HELP);
}

static int parse_ids(const char *s, int32_t **out, int *n) {
    int cap = 16, k = 0;
    int32_t *ids = malloc((size_t)cap * 4);
    if (!ids) return -1;
    while (*s) {
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (end == s || errno || v < 0 || v > INT32_MAX) { free(ids); return -1; }
        if (k == cap) {
            int32_t *n2 = realloc(ids, (size_t)(cap *= 2) * 4);
            if (!n2) { free(ids); return -1; }
            ids = n2;
        }
        ids[k++] = (int32_t)v;
        s = end;
        if (*s == ',') s++;
        else if (*s) { free(ids); return -1; }
    }
    *out = ids;
    *n = k;
    return k ? 0 : -1;
}

int rtr_cmd_run(int argc, char **argv) {
    cli_model_args ma;
    cli_model_args_init(&ma);
    rtr_sampler_params sp;
    rtr_sampler_defaults(&sp);
    long seed = -1;
    const char *prompt = NULL, *file = NULL, *system = NULL, *ids_arg = NULL, *logits_out = NULL, *rag = NULL;
    long rag_k = 4;
    long n_predict = -1, n_ctx = 0, n_batch = 0, n_sink = 4;
    int chat = 0, no_bos = 0, no_warmup = 0, no_special = 0, print_ids = 0, ignore_eos = 0, quiet = 0, bad = 0;
    for (int i = 1; i < argc && !bad; i++) {
        const char *v;
        if (cli_model_arg(&ma, argc, argv, &i, &bad)) continue;
        if (sampling_arg(&sp, &seed, argc, argv, &i, &bad)) continue;
        if (cli_flag(argv, i, "-h", "--help")) { usage(); return 0; }
        if (cli_opt(argc, argv, &i, "-p", "--prompt", &v, &bad)) { prompt = v; continue; }
        if (cli_opt(argc, argv, &i, "-f", "--file", &v, &bad)) { file = v; continue; }
        if (cli_opt(argc, argv, &i, "-s", "--system", &v, &bad)) { system = v; continue; }
        if (cli_opt(argc, argv, &i, NULL, "--prompt-ids", &v, &bad)) { ids_arg = v; continue; }
        if (cli_opt(argc, argv, &i, NULL, "--logits-out", &v, &bad)) { logits_out = v; continue; }
        if (cli_opt(argc, argv, &i, "-n", "--predict", &v, &bad)) {
            if (!bad && !cli_int(v, -1, 1L << 30, &n_predict)) bad = cli_error("-n needs a number >= -1");
            continue;
        }
        if (cli_opt(argc, argv, &i, "-c", "--ctx-size", &v, &bad)) {
            if (!bad && !cli_int(v, 0, 1L << 22, &n_ctx)) bad = cli_error("-c needs a context size (0 .. 4194304)");
            continue;
        }
        if (cli_opt(argc, argv, &i, "-b", "--batch-size", &v, &bad)) {
            if (!bad && !cli_int(v, 1, 1 << 16, &n_batch)) bad = cli_error("-b needs a batch size >= 1");
            continue;
        }
        if (cli_opt(argc, argv, &i, NULL, "--sinks", &v, &bad)) {
            if (!bad && !cli_int(v, 0, 1 << 16, &n_sink)) bad = cli_error("--sinks needs a count >= 0");
            continue;
        }
        if (cli_flag(argv, i, NULL, "--chat")) { chat = 1; continue; }
        if (cli_opt(argc, argv, &i, NULL, "--rag", &v, &bad)) { rag = v; chat = 1; continue; }
        if (cli_opt(argc, argv, &i, "-k", "--top-sources", &v, &bad)) {
            if (!bad && !cli_int(v, 1, 100, &rag_k)) bad = cli_error("-k needs a count from 1 to 100");
            continue;
        }
        if (cli_flag(argv, i, NULL, "--no-bos")) { no_bos = 1; continue; }
        if (cli_flag(argv, i, NULL, "--no-warmup")) { no_warmup = 1; continue; }
        if (cli_flag(argv, i, NULL, "--no-special")) { no_special = 1; continue; }
        if (cli_flag(argv, i, NULL, "--print-ids")) { print_ids = 1; continue; }
        if (cli_flag(argv, i, NULL, "--ignore-eos")) { ignore_eos = 1; continue; }
        if (cli_flag(argv, i, "-q", "--quiet")) { quiet = 1; continue; }
        bad = cli_error("run: unknown option '%s' (see rotor run --help)", argv[i]);
    }
    if (bad) return 1;
    sampling_seed(&sp, seed);
    if ((prompt != NULL) + (file != NULL) + (ids_arg != NULL) > 1) return cli_error("give only one of -p, -f and --prompt-ids");

    char *text = NULL;
    size_t tlen = 0;
    if (file) {
        if (!(text = cli_read_file(file, &tlen))) return 1;
    } else if (prompt) {
        tlen = strlen(prompt);
        text = malloc(tlen + 1);
        if (!text) return cli_error("out of memory");
        memcpy(text, prompt, tlen + 1);
    } else if (!ids_arg) {
        text = cli_read_stdin(&tlen);
        if (!text) return cli_error("no prompt: give -p TEXT, -f FILE or pipe text on stdin");
    }

    double t_load = rtr_now();
    rtr_model *m = cli_open_model(&ma);
    if (!m) { free(text); return 1; }
    t_load = rtr_now() - t_load;
    rtr_model_info mi;
    rtr_model_get_info(m, &mi);
    int rc = 1;
    int32_t *ids = NULL;
    int n_ids = 0;
    rtr_session *s = NULL;
    rtr_sampler *smp = NULL;
    rtr_err e = {0};
    rag_ctx *rag_c = NULL;
    rag_prompt rp;
    memset(&rp, 0, sizeof rp);
    char *answer = NULL;
    if (rag) {
        rag_ctx_opts ro;
        rag_ctx_defaults(&ro);
        ro.db_path = rag;
        ro.k = (int)rag_k;
        if (rag_ctx_open(&rag_c, &ro, &e)) { cli_error("%s", e.msg); goto out; }
        if (*rag_ctx_note(rag_c)) fprintf(stderr, "rotor: %s\n", rag_ctx_note(rag_c));
        if (rag_prompt_build(rag_c, text, &rp, &e)) { cli_error("%s", e.msg); goto out; }
        if (!(answer = malloc(1 << 16))) { cli_error("out of memory"); goto out; }
    }

    if (ids_arg) {
        if (parse_ids(ids_arg, &ids, &n_ids)) { cli_error("--prompt-ids needs comma-separated token ids"); goto out; }
    } else {
        int cap = (int)(tlen + 16 < (size_t)1 << 28 ? tlen + 16 : (size_t)1 << 28);
        ids = malloc((size_t)cap * 4);
        if (!ids) { cli_error("out of memory"); goto out; }
        if (chat) {
            rtr_chat_msg msgs[2];
            int nm = 0;
            if (system) msgs[nm++] = (rtr_chat_msg){"system", system};
            msgs[nm++] = (rtr_chat_msg){"user", rag ? rp.message : text};
            if (rag) {
                /* documents are data: no special tokens from them, whatever the flags say */
                size_t need = rp.len + tlen + 64;
                if ((size_t)cap < need) {
                    int32_t *n2 = realloc(ids, need * 4);
                    if (!n2) { cli_error("out of memory"); goto out; }
                    ids = n2;
                    cap = (int)need;
                }
            }
            n_ids = rtr_chat_tokenize(m, msgs, nm, 1, rag ? 0 : !no_special, ids, cap);
        } else {
            n_ids = rtr_tokenize(m, text, tlen, (no_bos ? 0 : RTR_TOK_BOS) | (no_special ? RTR_TOK_PLAIN : 0), ids, cap);
        }
        if (n_ids == RTR_EARG) { cli_error("the prompt is not valid UTF-8"); goto out; }
        if (n_ids < 0) { cli_error("cannot tokenize the prompt: %s", rtr_strerror(n_ids)); goto out; }
        if (n_ids > cap) { cli_error("the prompt is too long"); goto out; }
        if (n_ids == 0) { cli_error("the prompt is empty"); goto out; }
    }
    for (int i = 0; i < n_ids; i++)
        if (ids[i] >= mi.n_vocab) { cli_error("token id %d is out of range (vocabulary %d)", ids[i], mi.n_vocab); goto out; }

    cli_install_signals();
    rtr_session_opts so = {(int)n_ctx, (int)n_sink, (int)n_batch, &cli_interrupted, ma.kv_f16};
    if (rtr_session_new(&s, m, &so, &e)) { cli_error("%s", e.msg); goto out; }
    if (n_ids > rtr_session_ctx(s)) {
        cli_error("the prompt is %d tokens, longer than the context (%d); raise -c", n_ids, rtr_session_ctx(s));
        goto out;
    }
    if (rtr_sampler_new(&smp, &sp, mi.n_vocab)) { cli_error("out of memory"); goto out; }
    for (int i = 0; i < n_ids; i++) rtr_sampler_accept(smp, ids[i]);
    if (!no_warmup) { /* counted in the load time */
        double t_w = rtr_now();
        int wr = cli_warmup(s);
        if (wr) { rc = wr; goto out; }
        t_load += rtr_now() - t_w;
    }

    double t_pp = rtr_now();
    if (rtr_eval(s, ids, n_ids, &e)) {
        if (e.code == RTR_EINTR) { cli_error("interrupted while reading the prompt"); rc = 130; goto out; }
        cli_error("%s", e.msg);
        goto out;
    }
    t_pp = rtr_now() - t_pp;
    if (logits_out) {
        FILE *f = fopen(logits_out, "wb");
        if (!f || fwrite(rtr_logits(s), 4, (size_t)mi.n_vocab, f) != (size_t)mi.n_vocab || fclose(f)) {
            cli_error("%s: cannot write logits: %s", logits_out, strerror(errno));
            goto out;
        }
    }
    gen_opts go = {(int)n_predict, ignore_eos, print_ids, NULL, answer, answer ? 1 << 16 : 0};
    gen_result gr;
    if (gen_run(s, m, smp, &go, &gr, &e)) { cli_error("%s", e.msg); goto out; }
    if (!gr.out_closed) {
        fputc('\n', stdout);
        if (rag) {
            char *src = rag_prompt_sources(&rp, answer);
            if (src) { fputs(src, stdout); free(src); }
        }
        fflush(stdout);
    }
    if (gr.out_errno) {
        cli_error("cannot write the output: %s", strerror(gr.out_errno));
        goto out;
    }
    if (gr.interrupted)
        cli_error("interrupted after %d generated tokens", gr.n_gen);
    else if (!quiet)
        fprintf(stderr, "rotor: load %.2f s | prompt %d tokens, %.1f tok/s | generation %d tokens, %.1f tok/s | %s\n",
                t_load, n_ids, n_ids / (t_pp > 0 ? t_pp : 1e-9), gr.n_gen,
                gr.n_gen > 1 ? (gr.n_gen - 1) / (gr.seconds > 0 ? gr.seconds : 1e-9) : 0.0, rtr_model_device(m));
    rc = gr.interrupted ? 130 : 0;
out:
    free(answer);
    if (rag) { rag_prompt_free(&rp); rag_ctx_close(rag_c); }
    rtr_sampler_free(smp);
    rtr_session_free(s);
    rtr_model_close(m);
    free(ids);
    free(text);
    return rc;
}
