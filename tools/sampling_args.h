/* sampling_args.h: the sampling flags shared by run, chat and bench, with llama.cpp's names
 * and defaults (temp 0.8, top-k 40, top-p 0.95, min-p 0.05, repeat penalty off). */
#ifndef ROTOR_SAMPLING_ARGS_H
#define ROTOR_SAMPLING_ARGS_H

#include "../rotor.h"

#define SAMPLING_HELP                                                                      \
    "      --temp T           temperature (default 0.8; 0 = greedy)\n"                      \
    "      --top-k N          keep the N most likely tokens (default 40; 0 = off)\n"        \
    "      --top-p P          nucleus sampling (default 0.95; 1 = off)\n"                   \
    "      --min-p P          drop tokens below P x the top probability (default 0.05)\n"   \
    "      --repeat-penalty F penalise recent tokens (default 1.0 = off)\n"                 \
    "      --repeat-last-n N  window for the penalty (default 64)\n"                        \
    "      --seed N           random seed (default -1: different every run)\n"

/* Consumes argv[*i] if it is a sampling flag; seed gets -1 or the value. */
int sampling_arg(rtr_sampler_params *p, long *seed, int argc, char **argv, int *i, int *bad);
/* Applies seed (-1: from the clock and pid). */
void sampling_seed(rtr_sampler_params *p, long seed);

#endif
