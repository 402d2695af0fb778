/* cmd_embed.c: `rotor embed`: the L2-normalised embedding of one text (-p, -f or stdin) from an
 * embedding model, printed as one line of floats or a JSON array (llama-embedding style).
 * --query adds the retrieval instruction that queries get and documents do not.
 */
#include "cli.h"
#include "rag_search.h"
#include "rag_walk.h"

#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(
        f,
        "usage: rotor embed -m MODEL [-p TEXT | -f FILE | < stdin] [--query] [--json]\n"
        "\n"
        "Prints the normalised embedding vector of the text: one line of space-separated\n"
        "floats, or a JSON array with --json.\n"
        "  -p, --prompt TEXT   the text\n"
        "  -f, --file FILE     read the text from FILE ('-': stdin); a final newline is dropped\n"
        "  --query             embed as a search query (adds the model's query instruction);\n"
        "                      documents are embedded without it\n"
        "  --json              print a JSON array\n"
        "model: --backend auto|cpu|vulkan|opencl, --device N, -t N, --kernel NAME, --verbose\n");
}

int rtr_cmd_embed(int argc, char **argv) {
    cli_model_args ma;
    cli_model_args_init(&ma);
    const char *prompt = NULL, *file = NULL, *v;
    int bad = 0, json = 0, query = 0;
    for (int i = 1; i < argc && !bad; i++) {
        if (cli_flag(argv, i, "-h", "--help")) {
            usage(stdout);
            return 0;
        } else if (cli_opt(argc, argv, &i, "-p", "--prompt", &v, &bad))
            prompt = v;
        else if (cli_opt(argc, argv, &i, "-f", "--file", &v, &bad))
            file = v;
        else if (cli_flag(argv, i, NULL, "--json"))
            json = 1;
        else if (cli_flag(argv, i, NULL, "--query"))
            query = 1;
        else if (cli_model_arg(&ma, argc, argv, &i, &bad))
            continue;
        else
            bad = cli_error("embed: unexpected argument '%s' (try --help)", argv[i]);
    }
    if (bad) return 1;
    if (!ma.model) return cli_error("embed needs a model (-m FILE.rotor)");
    if (prompt && file) return cli_error("give the text with -p or -f, not both");

    char *owned = NULL;
    size_t len = 0;
    if (prompt)
        len = strlen(prompt);
    else if (file && !(owned = cli_read_file(file, &len)))
        return 1;
    else if (!file && !(owned = cli_read_stdin(&len)))
        return cli_error("no text: use -p TEXT, -f FILE or pipe it on stdin");
    const char *text = prompt ? prompt : owned;
    if (owned && len && text[len - 1] == '\n') len -= 1 + (len > 1 && text[len - 2] == '\r');

    size_t clen, nrep = 0;
    char *clean = rag_utf8_clean(text, len, &clen, NULL, &nrep);
    free(owned);
    if (!clean) return cli_error("out of memory");
    if (nrep)
        fprintf(stderr, "rotor: the text is not valid UTF-8; %zu bytes replaced by U+FFFD\n", nrep);

    rag_embedder *e;
    rtr_err err = {0};
    if (rag_embedder_open(&e, ma.model, &ma.mo, &err)) {
        free(clean);
        return cli_error("%s", err.msg);
    }
    const char *note = rtr_model_note(rag_embedder_model(e));
    if (note && *note) fprintf(stderr, "rotor: %s\n", note);
    int dim = rag_embedder_dim(e), status = 0;
    float *out = malloc((size_t)dim * sizeof *out);
    int ntok = rag_embedder_count(e, clean, clen) + 1;
    if (query) ntok += rag_embedder_count(e, RAG_QUERY_PREFIX, strlen(RAG_QUERY_PREFIX));
    if (ntok > rag_embedder_ctx(e))
        fprintf(stderr, "rotor: the text has about %d tokens; only the first %d are embedded\n",
                ntok, rag_embedder_ctx(e));
    int rc = !out ? RTR_ENOMEM
        : query   ? rag_embedder_embed_query(e, clean, clen, out)
                  : rag_embedder_embed(e, clean, clen, out);
    if (rc) {
        status = cli_error("embedding failed: %s", out ? rag_embedder_err(e) : "out of memory");
    } else {
        if (json) putchar('[');
        for (int i = 0; i < dim; i++) printf("%s%.9g", i ? (json ? ", " : " ") : "", out[i]);
        puts(json ? "]" : "");
    }
    free(out);
    free(clean);
    rag_embedder_free(e);
    return status;
}
