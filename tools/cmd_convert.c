/* cmd_convert.c: `rotor convert`: a Hugging Face folder, a GGUF file or a synthetic shape to a
 * .rotor file, and `--verify` of an existing one. An existing output is never overwritten
 * without --force; the file appears only when it is complete (the writer renames a temporary
 * file), so a failed or interrupted conversion leaves nothing behind. */
#include "cli.h"
#include "convert.h"
#include "gguf.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: rotor convert SRC -o OUT.rotor [--head f16|q8] [--tokenizer FILE] [--force]\n"
            "       rotor convert --synthetic SHAPE -o OUT.rotor [--seed N] [--head f16|q8] [--tokenizer FILE] [--force]\n"
            "       rotor convert --verify FILE.rotor\n"
            "\n"
            "SRC is a Hugging Face model folder (config.json, *.safetensors, tokenizer.json) or a GGUF file\n"
            "(bitnet / bitnet-b1.58 / bitnet-25, or qwen3 BitNet embedding; I2_S, TQ1_0, TQ2_0 or float).\n"
            "\n"
            "  -o, --output FILE     the .rotor file to write (refused if it exists, unless --force)\n"
            "  --head f16|q8         store the embedding / LM head as f16 or int8 rows (default: as the source)\n"
            "  --synthetic SHAPE     random ternary weights: bitnet-2b4t, tiny, bitnet-embed-0.6b or a config.json\n"
            "  --seed N              seed of the synthetic weights (default 1)\n"
            "  --tokenizer FILE      tokenizer.json[.gz] to use (synthetic default: models/llama3-tokenizer.json)\n"
            "  --force               overwrite OUT if it exists\n"
            "  --verify FILE         check the header, every checksum and every ternary code of FILE\n");
}

static void on_progress(uint64_t done, uint64_t total, void *ud) { cli_progress_update(ud, done, total, "B"); }

static int verify(const char *path) {
    double t0 = rtr_now();
    rtr_file f;
    rtr_err e;
    if (rtr_file_open(&f, path, &e)) return cli_error("%s", e.msg);
    cli_progress p;
    cli_progress_init(&p, "verify");
    int r = rtr_file_verify(&f, on_progress, &p, &e);
    cli_progress_end(&p);
    if (r) {
        rtr_file_close(&f);
        return cli_error("%s: %s", path, e.msg);
    }
    const char *arch = "?";
    size_t al = 1;
    rtr_meta_str(&f, "general.arch", &arch, &al);
    uint64_t t2 = 0;
    for (uint32_t i = 0; i < f.n_tensors; i++) t2 += f.tensors[i].type == RTR_T_T2;
    printf("%s: ok: %u tensors (%llu ternary), %.1f MB, arch %.*s; header, checksums and ternary codes verified in %.2f s\n",
           path, f.n_tensors, (unsigned long long)t2, (double)f.size / 1e6, (int)al, arch, rtr_now() - t0);
    rtr_file_close(&f);
    return 0;
}

int rtr_cmd_convert(int argc, char **argv) {
    const char *src = NULL, *out = NULL, *head = NULL, *synth = NULL, *seed_s = NULL, *tok = NULL, *ver = NULL;
    int force = 0, bad = 0;
    for (int i = 1; i < argc && !bad; i++) {
        if (cli_flag(argv, i, "-h", "--help")) { usage(stdout); return 0; }
        if (cli_opt(argc, argv, &i, "-o", "--output", &out, &bad) || cli_opt(argc, argv, &i, NULL, "--head", &head, &bad) ||
            cli_opt(argc, argv, &i, NULL, "--synthetic", &synth, &bad) || cli_opt(argc, argv, &i, NULL, "--seed", &seed_s, &bad) ||
            cli_opt(argc, argv, &i, NULL, "--tokenizer", &tok, &bad) || cli_opt(argc, argv, &i, NULL, "--verify", &ver, &bad))
            continue;
        if (cli_flag(argv, i, NULL, "--force")) { force = 1; continue; }
        if (argv[i][0] == '-' && argv[i][1]) return cli_error("convert: unknown option %s (see rotor convert --help)", argv[i]);
        if (src) return cli_error("convert: more than one source (%s and %s)", src, argv[i]);
        src = argv[i];
    }
    if (bad) return 1;
    if (ver) {
        if (src || out || synth) return cli_error("convert: --verify takes only the file to check");
        return verify(ver);
    }
    rtr_convert_opts o = {0};
    o.seed = 1;
    if (head) {
        if (!strcmp(head, "f16")) o.head = RTR_HEAD_F16;
        else if (!strcmp(head, "q8")) o.head = RTR_HEAD_Q8;
        else return cli_error("convert: --head must be f16 or q8, not %s", head);
    }
    if (seed_s) {
        long v;
        if (!cli_int(seed_s, 0, 0x7fffffffffffffffL, &v)) return cli_error("convert: --seed needs a non-negative integer, not %s", seed_s);
        if (!synth) return cli_error("convert: --seed applies only to --synthetic");
        o.seed = (uint64_t)v;
    }
    o.tokenizer = tok;
    if (!synth && !src) { usage(stderr); return 1; }
    if (synth && src) return cli_error("convert: give either SRC or --synthetic, not both");
    if (!out) return cli_error("convert: no output file (-o OUT.rotor)");
    struct stat st_out;
    if (!stat(out, &st_out)) {
        if (S_ISDIR(st_out.st_mode)) return cli_error("convert: %s is a directory", out);
        if (!force) return cli_error("convert: %s exists (use --force to overwrite it)", out);
    }
    struct stat st_src;
    if (src && stat(src, &st_src)) return cli_error("%s: no such file or folder", src);

    double t0 = rtr_now();
    cli_progress p;
    cli_progress_init(&p, "convert");
    o.progress = on_progress;
    o.ud = &p;
    cli_install_signals(); /* Ctrl-C stops at the next chunk and removes the temporary file */
    o.cancel = &cli_interrupted;
    rtr_convert_stats st;
    rtr_err e;
    int r;
    if (synth) r = rtr_convert_synthetic(synth, out, &o, &st, &e);
    else if (S_ISDIR(st_src.st_mode)) r = rtr_convert_hf(src, out, &o, &st, &e);
    else if (rtr_gguf_probe(src)) r = rtr_convert_gguf(src, out, &o, &st, &e);
    else {
        const char *b = strrchr(src, '/');
        b = b ? b + 1 : src;
        cli_progress_end(&p);
        if (!strcmp(b, "config.json")) return cli_error("%s: give the model folder, not its config.json", src);
        return cli_error("%s: neither a Hugging Face model folder nor a GGUF file", src);
    }
    cli_progress_end(&p);
    if (r == RTR_EINTR) {
        cli_error("convert: interrupted; %s not written", out);
        return 130;
    }
    if (r) return cli_error("%s", e.msg);
    double dt = rtr_now() - t0;
    double bpw = st.ternary_weights ? 8.0 * (double)st.ternary_bytes / (double)st.ternary_weights : 0;
    printf("%s: %s, %u tensors, %.1f MB, %.3g G ternary weights at %.2f bits/weight, %.2f s\n", out, st.arch,
           st.n_tensors, (double)st.file_bytes / 1e6, (double)st.ternary_weights / 1e9, bpw, dt);
    return 0;
}
