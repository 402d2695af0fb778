/* sampling_args.c: parsing of the sampling flags (see sampling_args.h). */
#include "sampling_args.h"
#include "cli.h"

#include <time.h>
#include <unistd.h>

int sampling_arg(rtr_sampler_params *p, long *seed, int argc, char **argv, int *i, int *bad) {
    const char *v;
    double d;
    long n;
    if (cli_opt(argc, argv, i, NULL, "--temp", &v, bad)) {
        if (!*bad && (!cli_float(v, &d) || d < 0)) *bad = cli_error("--temp needs a number >= 0");
        else p->temp = (float)d;
        return 1;
    }
    if (cli_opt(argc, argv, i, NULL, "--top-k", &v, bad)) {
        if (!*bad && !cli_int(v, 0, 1 << 30, &n)) *bad = cli_error("--top-k needs a count >= 0");
        else p->top_k = (int)n;
        return 1;
    }
    if (cli_opt(argc, argv, i, NULL, "--top-p", &v, bad)) {
        if (!*bad && (!cli_float(v, &d) || d <= 0 || d > 1)) *bad = cli_error("--top-p needs a number in (0, 1]");
        else p->top_p = (float)d;
        return 1;
    }
    if (cli_opt(argc, argv, i, NULL, "--min-p", &v, bad)) {
        if (!*bad && (!cli_float(v, &d) || d < 0 || d > 1)) *bad = cli_error("--min-p needs a number in [0, 1]");
        else p->min_p = (float)d;
        return 1;
    }
    if (cli_opt(argc, argv, i, NULL, "--repeat-penalty", &v, bad)) {
        if (!*bad && (!cli_float(v, &d) || d <= 0)) *bad = cli_error("--repeat-penalty needs a number > 0");
        else p->repeat_penalty = (float)d;
        return 1;
    }
    if (cli_opt(argc, argv, i, NULL, "--repeat-last-n", &v, bad)) {
        if (!*bad && !cli_int(v, 0, 1 << 20, &n)) *bad = cli_error("--repeat-last-n needs a count >= 0");
        else p->repeat_last_n = (int)n;
        return 1;
    }
    if (cli_opt(argc, argv, i, NULL, "--seed", &v, bad)) {
        if (!*bad && !cli_int(v, -1, 0x7fffffffffffffffL, &n)) *bad = cli_error("--seed needs a number >= -1");
        else *seed = n;
        return 1;
    }
    return 0;
}

void sampling_seed(rtr_sampler_params *p, long seed) {
    if (seed >= 0) { p->seed = (uint64_t)seed; return; }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    p->seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40);
}
