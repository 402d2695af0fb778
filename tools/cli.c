/* cli.c: helpers shared by the subcommands: option parsing, reading prompts, progress bars,
 * opening a model from the common flags, and the SIGINT/SIGTERM flag generation loops poll. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

volatile int cli_interrupted;

int cli_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("rotor: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

int cli_flag(char **argv, int i, const char *shrt, const char *lng) {
    return (shrt && !strcmp(argv[i], shrt)) || (lng && !strcmp(argv[i], lng));
}

int cli_opt(int argc, char **argv, int *i, const char *shrt, const char *lng, const char **val, int *bad) {
    const char *a = argv[*i];
    size_t ll = lng ? strlen(lng) : 0;
    if (lng && !strncmp(a, lng, ll) && a[ll] == '=') { *val = a + ll + 1; return 1; }
    if (!cli_flag(argv, *i, shrt, lng)) return 0;
    if (*i + 1 >= argc) {
        cli_error("option %s needs a value", a);
        *bad = 1;
        return 1;
    }
    *val = argv[++*i];
    return 1;
}

int cli_int(const char *s, long lo, long hi, long *out) {
    if (!s || !*s) return 0;
    errno = 0;
    char *end;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

int cli_float(const char *s, double *out) {
    if (!s || !*s) return 0;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v)) return 0;
    *out = v;
    return 1;
}

static char *read_stream(FILE *f, size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    if (!buf) return NULL;
    for (;;) {
        if (n + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) { free(buf); return NULL; }
            buf = nb; cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0) break;
    }
    if (ferror(f)) { free(buf); return NULL; }
    buf[n] = 0;
    *len = n;
    return buf;
}

char *cli_read_file(const char *path, size_t *len) {
    if (!strcmp(path, "-")) {
        char *s = read_stream(stdin, len);
        if (!s) cli_error("cannot read standard input");
        return s;
    }
    FILE *f = fopen(path, "rb");
    if (!f) { cli_error("%s: %s", path, strerror(errno)); return NULL; }
    char *s = read_stream(f, len);
    if (!s) cli_error("%s: read error", path);
    fclose(f);
    return s;
}

char *cli_read_stdin(size_t *len) {
    if (isatty(0)) return NULL;
    char *s = read_stream(stdin, len);
    if (s && *len == 0) { free(s); return NULL; }
    return s;
}

void cli_progress_init(cli_progress *p, const char *label) {
    p->start = p->last = rtr_now();
    p->tty = isatty(2);
    p->label = label;
}

void cli_progress_update(cli_progress *p, uint64_t done, uint64_t total, const char *unit) {
    if (!p->tty) return;
    double now = rtr_now();
    if (now - p->last < 0.1 && done < total) return;
    p->last = now;
    double frac = total ? (double)done / (double)total : 0;
    int w = 30, fill = (int)(frac * w);
    char bar[64];
    for (int i = 0; i < w; i++) bar[i] = i < fill ? '#' : '.';
    bar[w] = 0;
    double el = now - p->start, rate = el > 0 ? done / el : 0;
    double eta = rate > 0 && total > done ? (total - done) / rate : 0;
    if (unit && !strcmp(unit, "B"))
        fprintf(stderr, "\r%s [%s] %3.0f%% %.1f/%.1f MB %.0f MB/s eta %.0fs ", p->label, bar, frac * 100,
                done / 1e6, total / 1e6, rate / 1e6, eta);
    else
        fprintf(stderr, "\r%s [%s] %3.0f%% %llu/%llu %s eta %.0fs ", p->label, bar, frac * 100,
                (unsigned long long)done, (unsigned long long)total, unit ? unit : "", eta);
    fflush(stderr);
}

void cli_progress_end(cli_progress *p) {
    if (p->tty) fprintf(stderr, "\r\033[K");
}

void cli_model_args_init(cli_model_args *a) {
    memset(a, 0, sizeof *a);
    a->mo.backend = "auto";
    a->mo.device = -1;
}

int cli_model_arg(cli_model_args *a, int argc, char **argv, int *i, int *bad) {
    const char *v;
    long n;
    if (cli_opt(argc, argv, i, "-m", "--model", &v, bad)) { a->model = v; return 1; }
    if (cli_opt(argc, argv, i, NULL, "--backend", &v, bad)) {
        if (!*bad && strcmp(v, "auto") && strcmp(v, "cpu") && strcmp(v, "vulkan") && strcmp(v, "opencl")) {
            cli_error("--backend must be auto, cpu, vulkan or opencl (got '%s')", v);
            *bad = 1;
        }
        a->mo.backend = v;
        return 1;
    }
    if (cli_opt(argc, argv, i, NULL, "--device", &v, bad)) {
        if (!*bad && !cli_int(v, 0, 64, &n)) { cli_error("--device needs a device index"); *bad = 1; }
        else a->mo.device = (int)n;
        return 1;
    }
    if (cli_opt(argc, argv, i, "-t", "--threads", &v, bad)) {
        if (!*bad && !cli_int(v, -1, 1024, &n)) { cli_error("-t needs a thread count"); *bad = 1; }
        else a->mo.n_threads = n < 0 ? 0 : (int)n;
        return 1;
    }
    if (cli_opt(argc, argv, i, NULL, "--kernel", &v, bad)) { a->mo.kernel = v; return 1; }
    if (cli_opt(argc, argv, i, "-ctk", "--cache-type", &v, bad)) {
        if (!*bad && strcmp(v, "f16") && strcmp(v, "f32")) { cli_error("--cache-type must be f16 or f32"); *bad = 1; }
        a->kv_f16 = !strcmp(v, "f16");
        return 1;
    }
    if (cli_flag(argv, *i, NULL, "--verbose")) { a->mo.verbose = 1; return 1; }
    return 0;
}

rtr_model *cli_open_model(const cli_model_args *a) {
    if (!a->model) { cli_error("no model given (-m FILE.rotor)"); return NULL; }
    rtr_model *m;
    rtr_err e = {0};
    if (rtr_model_open(&m, a->model, &a->mo, &e)) { cli_error("%s", e.msg); return NULL; }
    const char *note = rtr_model_note(m);
    if (note && *note) fprintf(stderr, "rotor: %s\n", note);
    return m;
}

static void on_signal(int sig) {
    /* The kernel may hand a process-wide signal to any thread that does not block it: a worker
     * of the thread pool, or one a GPU driver started. Only the main thread's blocking reads
     * (the chat prompt) return EINTR, so a signal caught elsewhere is sent on to it. */
    pid_t pid = getpid();
    if ((pid_t)syscall(SYS_gettid) != pid) {
        syscall(SYS_tgkill, pid, pid, sig);
        return;
    }
    if (cli_interrupted && sig == SIGINT) {
        /* a second Ctrl-C while the first is still being handled: leave at once */
        static const char msg[] = "\n";
        ssize_t r = write(2, msg, 1);
        (void)r;
        _exit(130);
    }
    cli_interrupted = sig;
}

void cli_install_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int cli_warmup(rtr_session *s) {
    rtr_err e = {0};
    if (!rtr_session_warmup(s, &e)) return 0;
    if (e.code == RTR_EINTR) {
        cli_error("interrupted while warming up");
        return 130;
    }
    cli_error("%s", e.msg);
    return 1;
}
