/* cli.h: the subcommands of the rotor binary and the small helpers they share.
 * Each subcommand is `int rtr_cmd_NAME(int argc, char **argv)` (argv[0] is the subcommand name)
 * and returns the process exit status. Tools, unlike the library, talk to the user: results to
 * stdout, messages and timings to stderr, one line per error, prefixed "rotor: ". */
#ifndef ROTOR_CLI_H
#define ROTOR_CLI_H

#include "../rotor.h"
#include <stdio.h>

int rtr_cmd_convert(int argc, char **argv);
int rtr_cmd_run(int argc, char **argv);
int rtr_cmd_chat(int argc, char **argv);
int rtr_cmd_bench(int argc, char **argv);
int rtr_cmd_tokenize(int argc, char **argv);
int rtr_cmd_embed(int argc, char **argv);
int rtr_cmd_rag_index(int argc, char **argv);

/* Prints "rotor: MESSAGE" to stderr and returns 1 (for `return cli_error(...)`). */
int cli_error(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* Option parsing: flag matches "-x" / "--long" / "--long=value". When a value is needed it is
 * taken from "=value" or the next argument (advancing *i). Returns 1 when argv[*i] is this
 * option; sets *bad (and prints an error) when its value is missing or malformed. */
int cli_opt(int argc, char **argv, int *i, const char *shrt, const char *lng, const char **val, int *bad);
int cli_flag(char **argv, int i, const char *shrt, const char *lng);
int cli_int(const char *s, long lo, long hi, long *out);   /* 1 if s is an integer in range */
int cli_float(const char *s, double *out);                 /* 1 if s is a finite number */

/* Reads a whole file ("-" for stdin) into a NUL-terminated buffer; returns NULL (and prints an
 * error) on failure. */
char *cli_read_file(const char *path, size_t *len);
/* Reads all of stdin when it is not a terminal; NULL when it is a terminal or empty. */
char *cli_read_stdin(size_t *len);

/* Progress bar on stderr, drawn only when stderr is a terminal. */
typedef struct { double start, last; int tty; const char *label; } cli_progress;
void cli_progress_init(cli_progress *p, const char *label);
void cli_progress_update(cli_progress *p, uint64_t done, uint64_t total, const char *unit);
void cli_progress_end(cli_progress *p);

/* Shared model flags (-m, --backend, --device, -t, --kernel, --cache-type, --verbose) for
 * run/chat/bench/embed. */
typedef struct {
    const char *model;
    rtr_model_opts mo;
    int kv_f16; /* --cache-type f16 */
} cli_model_args;
void cli_model_args_init(cli_model_args *a);
/* Consumes argv[*i] if it is a model flag; returns 1 if consumed, sets *bad on a bad value. */
int cli_model_arg(cli_model_args *a, int argc, char **argv, int *i, int *bad);
/* Opens the model, printing one error line on failure and the backend fallback note if any. */
rtr_model *cli_open_model(const cli_model_args *a);

/* Set by the SIGINT/SIGTERM handler the tools install; generation loops poll it. */
extern volatile int cli_interrupted;
void cli_install_signals(void);

/* The session's untimed warm-up pass (rtr_session_warmup): 0, or the exit status after one
 * error line (130 when interrupted). */
int cli_warmup(rtr_session *s);

#endif
