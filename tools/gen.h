/* gen.h: the generation loop shared by `rotor run` and `rotor chat`: sample, stop on the
 * model's end tokens, stream UTF-8-safe text (or ids) to stdout, evaluate the next token.
 * Everything is allocated before the loop starts. */
#ifndef ROTOR_GEN_H
#define ROTOR_GEN_H

#include "../rotor.h"
#include <stdio.h>

typedef struct {
    int n_predict;     /* -1: until an end token */
    int ignore_eos;
    int print_ids;
    const char *color; /* ANSI colour for generated text, or NULL */
    char *capture;     /* optional: the generated text is also kept here (NUL-terminated) */
    size_t capture_cap;
} gen_opts;

typedef struct {
    int n_gen;         /* tokens generated (and evaluated, except the last) */
    int stopped_eos;   /* ended on an end-of-text / end-of-turn token */
    int interrupted;   /* Ctrl-C */
    int out_closed;    /* stdout went away, or writing to it failed */
    int out_errno;     /* why writing failed; 0 when the reader went away (EPIPE) */
    double seconds;    /* generation time */
    size_t captured;   /* bytes kept in gen_opts.capture */
} gen_result;

/* Generates after the session's current state (logits of the last evaluated token must be
 * ready). The end token, when sampled, is not evaluated. Returns 0 or an RTR_E* (err set). */
int gen_run(rtr_session *s, const rtr_model *m, rtr_sampler *sp, const gen_opts *o,
            gen_result *res, rtr_err *err);

int gen_is_end(const rtr_model *m, int32_t id);

#endif
