/* cmd_tokenize.c: `rotor tokenize`, which prints the token ids of a text on one line.
 *   rotor tokenize -m MODEL [-p TEXT | -f FILE | < stdin] [--no-bos] [--plain]
 * The model opens on the CPU backend unless --backend says otherwise: only its tokenizer is used. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: rotor tokenize -m MODEL [-p TEXT | -f FILE | < stdin] [--no-bos] [--plain]\n"
            "  -p, --prompt TEXT  text to tokenize\n"
            "  -f, --file FILE    read the text from FILE (\"-\" for stdin)\n"
            "  --no-bos           do not prepend the model's BOS token\n"
            "  --plain            special-token strings in the text stay plain text\n"
            "Prints the ids on one line, separated by spaces.\n");
}

int rtr_cmd_tokenize(int argc, char **argv) {
    cli_model_args a;
    cli_model_args_init(&a);
    a.mo.backend = "cpu"; /* only the tokenizer is used; --backend may still say otherwise */
    const char *prompt = NULL, *file = NULL;
    int flags = RTR_TOK_BOS;
    for (int i = 1; i < argc; i++) {
        int bad = 0;
        const char *v;
        if (cli_model_arg(&a, argc, argv, &i, &bad)) {
            if (bad) return 1;
        } else if (cli_opt(argc, argv, &i, "-p", "--prompt", &v, &bad)) {
            if (bad) return 1;
            prompt = v;
        } else if (cli_opt(argc, argv, &i, "-f", "--file", &v, &bad)) {
            if (bad) return 1;
            file = v;
        } else if (!strcmp(argv[i], "--no-bos")) {
            flags &= ~RTR_TOK_BOS;
        } else if (!strcmp(argv[i], "--plain")) {
            flags |= RTR_TOK_PLAIN;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return cli_error("tokenize: unknown argument '%s'", argv[i]);
        }
    }
    if (!a.model) return cli_error("tokenize: no model (use -m MODEL)");
    if (prompt && file) return cli_error("tokenize: use either -p or -f, not both");

    char *text = NULL;
    size_t len = 0;
    if (prompt) {
        len = strlen(prompt);
    } else if (file) {
        if (!(text = cli_read_file(file, &len))) return 1;
    } else if (!(text = cli_read_stdin(&len))) {
        return cli_error("tokenize: no text (use -p TEXT, -f FILE or pipe it in)");
    }
    const char *t = prompt ? prompt : text;

    rtr_model *m = cli_open_model(&a);
    if (!m) { free(text); return 1; }
    int rc = 0;
    int cap = len + 16 < (size_t)1 << 30 ? (int)len + 16 : 1 << 30;
    int32_t *ids = malloc((size_t)cap * sizeof *ids);
    int n = ids ? rtr_tokenize(m, t, len, flags, ids, cap) : RTR_ENOMEM;
    if (n > cap) {
        rc = cli_error("tokenize: text too long (%d tokens)", n);
    } else if (n == RTR_EARG) {
        rc = cli_error("tokenize: the text is not valid UTF-8");
    } else if (n < 0) {
        rc = cli_error("tokenize: %s", rtr_strerror(n));
    } else {
        for (int i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
        putchar('\n');
        if (fflush(stdout)) rc = cli_error("tokenize: cannot write the output");
    }
    free(ids);
    free(text);
    rtr_model_close(m);
    return rc;
}
