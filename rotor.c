/* rotor.c: the rotor command: dispatches to the subcommands in tools/ and prints the version,
 * the compiled-in backends and the devices they see. */
#include "rotor.h"
#include "backends/backend.h"
#include "kernels/kernels.h"
#include "tools/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: rotor COMMAND [options]\n"
            "\n"
            "commands:\n"
            "  convert     Hugging Face or GGUF model -> .rotor (also --synthetic, --verify)\n"
            "  run         one-shot prompt (-p, -f or stdin), text streamed to stdout\n"
            "  chat        interactive chat in the terminal\n"
            "  bench       benchmark prompt processing and generation\n"
            "  tokenize    print the token ids of a text\n"
            "  embed       print the embedding vector of a text (embedding models)\n"
            "  rag-index   index folders into SQLite, or query an index\n"
            "\n"
            "  rotor --version        version, backends and CPU kernels\n"
            "  rotor --list-devices   devices of every compiled-in backend\n"
            "  rotor COMMAND --help   options of one command\n");
}

static int list_devices(void) {
    int n;
    const rtr_backend_entry *const *all = rtr_backend_all(&n);
    char buf[8192];
    for (int i = 0; i < n; i++) {
        buf[0] = 0;
        int c = all[i]->list_devices(buf, sizeof buf);
        printf("%s: %s\n", all[i]->name, c < 0 ? "error listing devices" : c == 0 ? "no devices" : "");
        if (c > 0) fputs(buf, stdout);
    }
    return 0;
}

int main(int argc, char **argv) {
    /* a closed stdin, stdout or stderr would be reused by the next file opened (the model,
     * a converter's output) and read or written as if it were the terminal */
    for (int fd = 0; fd < 3; fd++)
        if (fcntl(fd, F_GETFD) < 0 && errno == EBADF && open("/dev/null", fd ? O_WRONLY : O_RDONLY) != fd) return 1;
    if (argc < 2) { usage(stderr); return 1; }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "-v") || !strcmp(cmd, "version")) {
        const rtr_kernels *ks[8];
        int nk = rtr_kernels_available(ks, 8);
        printf("rotor %s\nbackends: %s\ncpu kernels:", RTR_VERSION, rtr_backends_compiled());
        for (int i = 0; i < nk; i++) printf(" %s", ks[i]->name);
        printf("\n");
        return 0;
    }
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) { usage(stdout); return 0; }
    if (!strcmp(cmd, "--list-devices")) return list_devices();
    static const struct { const char *name; int (*fn)(int, char **); } cmds[] = {
        {"convert", rtr_cmd_convert}, {"run", rtr_cmd_run}, {"chat", rtr_cmd_chat},
        {"bench", rtr_cmd_bench}, {"tokenize", rtr_cmd_tokenize}, {"embed", rtr_cmd_embed},
        {"rag-index", rtr_cmd_rag_index},
    };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (!strcmp(cmd, cmds[i].name)) return cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "rotor: unknown command '%s' (try 'rotor --help')\n", cmd);
    return 1;
}
