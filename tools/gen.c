/* gen.c: the token loop of run and chat (see gen.h). */
#include "gen.h"
#include "cli.h"

#include <errno.h>
#include <string.h>

int gen_is_end(const rtr_model *m, int32_t id) {
    rtr_model_info mi;
    rtr_model_get_info(m, &mi);
    return id == mi.eos || id == mi.eot;
}

static void keep(const gen_opts *o, gen_result *res, const char *s, size_t n) {
    if (!o->capture || !o->capture_cap) return;
    size_t room = o->capture_cap - 1 - res->captured;
    if (n > room) n = room;
    memcpy(o->capture + res->captured, s, n);
    res->captured += n;
    o->capture[res->captured] = 0;
}

static int emit(const char *s, size_t n, gen_result *res) {
    if (!n) return 0;
    if (fwrite(s, 1, n, stdout) != n || fflush(stdout)) {
        res->out_closed = 1;
        res->out_errno = errno == EPIPE ? 0 : errno ? errno : EIO; /* a full disk is an error */
        return -1;
    }
    return 0;
}

int gen_run(rtr_session *s, const rtr_model *m, rtr_sampler *sp, const gen_opts *o,
            gen_result *res, rtr_err *err) {
    memset(res, 0, sizeof *res);
    if (o->capture && o->capture_cap) o->capture[0] = 0;
    rtr_model_info mi;
    rtr_model_get_info(m, &mi);
    rtr_detok dt = {{0}, 0};
    char text[512];
    double t0 = rtr_now();
    int r = 0;
    if (o->color && !o->print_ids) emit(o->color, strlen(o->color), res);
    /* plain greedy decoding: the backend picks each next token after the first (only its id
     * comes back), where the logits would otherwise be read back and scanned on the host, and
     * evaluates it before the host has seen it where it can */
    int greedy = rtr_sampler_greedy(sp);
    int32_t next = -1;
    while (o->n_predict < 0 || res->n_gen < o->n_predict) {
        if (cli_interrupted) { res->interrupted = 1; break; }
        int32_t id = next >= 0 ? next : rtr_sample(sp, rtr_logits(s));
        rtr_sampler_accept(sp, id);
        res->n_gen++;
        int end = (id == mi.eos || id == mi.eot);
        if (end && !o->ignore_eos) { res->stopped_eos = 1; break; }
        if (o->print_ids) {
            int n = snprintf(text, sizeof text, res->n_gen > 1 ? " %d" : "%d", id);
            if (emit(text, (size_t)n, res)) break;
        } else if (!rtr_token_is_special(m, id)) {
            int n = rtr_detok_push(&dt, m, id, text, sizeof text);
            keep(o, res, text, (size_t)n);
            if (emit(text, (size_t)n, res)) break;
        }
        if (o->n_predict >= 0 && res->n_gen >= o->n_predict) break;
        if ((r = greedy ? rtr_eval_argmax_ahead(s, id, &next, err) : rtr_eval(s, &id, 1, err))) {
            if (r == RTR_EINTR) { res->interrupted = 1; r = 0; }
            break;
        }
    }
    if (!o->print_ids && !res->out_closed) {
        int n = rtr_detok_flush(&dt, text, sizeof text);
        keep(o, res, text, (size_t)n);
        emit(text, (size_t)n, res);
    }
    if (o->color && !o->print_ids && !res->out_closed) emit("\033[0m", 4, res);
    res->seconds = rtr_now() - t0;
    return r;
}
