/* test_parity.c: the forward pass against the tiny-bitnet fixture's references (transformers
 * float32 and a float64 re-implementation), with the tolerances its README gives: last-position
 * logits of every sequence, top-5 ids and logits at every position, 32-token greedy
 * continuations. Runs on every backend compiled in (GPU backends skip when no device exists)
 * and on every CPU kernel set this CPU supports. ROTOR_PARITY_BACKENDS limits the list. */
#include "../rotor.h"
#include "../tools/cli.h"
#include "test.h"

#include <math.h>
#include <string.h>
#include <sys/stat.h>

#define V 128256
#define MAXT 256

typedef struct { char name[16]; int n; int32_t ids[MAXT]; } seq;
typedef struct { int id[5]; float lg[5]; float margin, noise; } top5;
typedef struct { int tok; float logit, margin; } gstep;

static int read_inputs(const char *dir, seq *s, int cap) {
    char p[512];
    snprintf(p, sizeof p, "%s/inputs.txt", dir);
    FILE *f = fopen(p, "r");
    if (!f) return -1;
    int n = 0;
    char line[8192];
    while (n < cap && fgets(line, sizeof line, f)) {
        char *t = strtok(line, " \n");
        if (!t) continue;
        snprintf(s[n].name, sizeof s[n].name, "%s", t);
        s[n].n = 0;
        while ((t = strtok(NULL, " \n")) && s[n].n < MAXT) s[n].ids[s[n].n++] = atoi(t);
        n++;
    }
    fclose(f);
    return n;
}

static int read_top5(const char *dir, const char *name, const char *suffix, top5 *t, int cap) {
    char p[512];
    snprintf(p, sizeof p, "%s/top5_%s%s.txt", dir, name, suffix);
    FILE *f = fopen(p, "r");
    if (!f) return -1;
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof line, f) && n < cap) {
        if (line[0] == '#') continue;
        int pos;
        top5 *x = &t[n];
        if (sscanf(line, "%d %d %f %d %f %d %f %d %f %d %f %f %f", &pos, &x->id[0], &x->lg[0], &x->id[1], &x->lg[1],
                   &x->id[2], &x->lg[2], &x->id[3], &x->lg[3], &x->id[4], &x->lg[4], &x->margin, &x->noise) >= 12)
            n++;
    }
    fclose(f);
    return n;
}

static int read_greedy(const char *dir, const char *name, const char *suffix, gstep *g, int cap) {
    char p[512];
    snprintf(p, sizeof p, "%s/greedy_%s%s.txt", dir, name, suffix);
    FILE *f = fopen(p, "r");
    if (!f) return -1;
    char line[512];
    int n = 0;
    while (fgets(line, sizeof line, f) && n < cap) {
        if (line[0] == '#') continue;
        int step, id2;
        float l2;
        if (sscanf(line, "%d %d %f %d %f %f", &step, &g[n].tok, &g[n].logit, &id2, &l2, &g[n].margin) == 6) n++;
    }
    fclose(f);
    return n;
}

static float *read_f32(const char *dir, const char *file, size_t n) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    FILE *f = fopen(p, "rb");
    if (!f) return NULL;
    float *v = malloc(n * 4);
    if (v && fread(v, 4, n, f) != n) { free(v); v = NULL; }
    fclose(f);
    return v;
}

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++) if (x[i] > x[b]) b = i;
    return b;
}

/* Runs every check for one model configuration. */
static void check_model(const char *model, const rtr_model_opts *mo, const char *dir, const char *label) {
    rtr_model *m;
    rtr_err e = {0};
    if (rtr_model_open(&m, model, mo, &e)) {
        if (e.code == RTR_EBACKEND && mo->backend && strcmp(mo->backend, "cpu")) { SKIP("%s: %s", label, e.msg); return; }
        CHECK(0, "%s: open: %s", label, e.msg);
        return;
    }
    seq seqs[8];
    int ns = read_inputs(dir, seqs, 8);
    CHECK(ns == 4, "%s: inputs.txt has %d sequences", label, ns);
    rtr_session *s;
    rtr_session_opts so = {512, 4, 64, NULL, 0}; /* f32 KV cache: a float32 engine */
    if (rtr_session_new(&s, m, &so, &e)) { CHECK(0, "%s: session: %s", label, e.msg); rtr_model_close(m); return; }
    float *pos_logits = malloc((size_t)V * 4);
    static top5 ref[MAXT], ref64[MAXT];
    static gstep gr[64], gr64[64];
    for (int q = 0; q < ns; q++) {
        seq *sq = &seqs[q];
        char f1[64], f2[64];
        /* 1. batched prefill: last-position logits against both references */
        rtr_session_reset(s);
        int r = rtr_eval(s, sq->ids, sq->n, &e);
        CHECK(r == 0, "%s %s: eval: %s", label, sq->name, e.msg);
        if (r) continue;
        snprintf(f1, sizeof f1, "logits_last_%s.f32.bin", sq->name);
        snprintf(f2, sizeof f2, "logits_last_%s.ref-f64.f32.bin", sq->name);
        float *l32 = read_f32(dir, f1, V), *l64 = read_f32(dir, f2, V);
        CHECK(l32 && l64, "%s: missing %s", label, f1);
        if (l32 && l64) {
            const float *lg = rtr_logits(s);
            float d32 = 0, d64 = 0;
            for (int i = 0; i < V; i++) {
                float a = fabsf(lg[i] - l32[i]), b = fabsf(lg[i] - l64[i]);
                if (a > d32) d32 = a;
                if (b > d64) d64 = b;
            }
            float d = d32 < d64 ? d32 : d64;
            int lenient = sq->n > 7; /* len33/len200: a flipped int8 code is a warning up to 1.0 */
            if (lenient && d > 1e-3f && d <= 1.0f) fprintf(stderr, "warning: %s %s: last logits differ by %.2e (likely one flipped int8 code)\n", label, sq->name, d);
            CHECK(d <= (lenient ? 1.0f : 1e-3f), "%s %s: last-position logits max diff %.3e (f32 %.3e, f64 %.3e)", label, sq->name, d, d32, d64);
        }
        free(l32);
        free(l64);
        /* 2. token by token: top-5 at every position */
        int nr = read_top5(dir, sq->name, "", ref, MAXT), nr64 = read_top5(dir, sq->name, ".ref-f64", ref64, MAXT);
        CHECK(nr == sq->n && nr64 == sq->n, "%s %s: top5 files", label, sq->name);
        rtr_session_reset(s);
        int top1_ok = 0, top1_n = 0, close_ok = 0;
        for (int p = 0; p < sq->n && p < nr && p < nr64; p++) {
            if ((r = rtr_eval(s, &sq->ids[p], 1, &e))) { CHECK(0, "%s %s: eval pos %d: %s", label, sq->name, p, e.msg); break; }
            memcpy(pos_logits, rtr_logits(s), (size_t)V * 4);
            int b = argmax(pos_logits, V);
            float top = pos_logits[b];
            int near = fabsf(top - ref[p].lg[0]) <= 1e-3f || fabsf(top - ref64[p].lg[0]) <= 1e-3f;
            if (near || ref[p].noise > 1e-3f) close_ok++;
            int want_id = (ref[p].margin >= 0.5f && b == ref[p].id[0]) || (ref64[p].margin >= 0.5f && b == ref64[p].id[0]);
            if (ref[p].margin >= 0.5f || ref64[p].margin >= 0.5f) { top1_n++; top1_ok += want_id; }
            if (sq->n <= 7) { /* strict: every top-5 logit within 1e-3, ids where neighbours are apart */
                for (int k = 0; k < 5; k++) {
                    float mine = pos_logits[ref[p].id[k]];
                    int ok = fabsf(mine - ref[p].lg[k]) <= 1e-3f || fabsf(pos_logits[ref64[p].id[k]] - ref64[p].lg[k]) <= 1e-3f;
                    CHECK(ok, "%s %s pos %d: top-%d logit %.5f vs %.5f", label, sq->name, p, k + 1, mine, ref[p].lg[k]);
                }
                float gap = ref[p].margin;
                if (gap > 2e-3f) CHECK(b == ref[p].id[0], "%s %s pos %d: top-1 %d, reference %d", label, sq->name, p, b, ref[p].id[0]);
            }
        }
        if (!strcmp(sq->name, "len200")) {
            CHECK(close_ok >= (int)(0.6 * sq->n), "%s len200: top-1 logit close at %d/%d positions", label, close_ok, sq->n);
            CHECK(top1_ok >= (int)ceil(0.95 * top1_n), "%s len200: top-1 id at %d/%d decisive positions", label, top1_ok, top1_n);
        } else {
            CHECK(close_ok == sq->n, "%s %s: top-1 logit close at %d/%d positions", label, sq->name, close_ok, sq->n);
            CHECK(top1_ok == top1_n, "%s %s: top-1 id at %d/%d decisive positions", label, sq->name, top1_ok, top1_n);
        }
        /* 3. greedy continuation with the KV cache */
        int ng = read_greedy(dir, sq->name, "", gr, 64), ng64 = read_greedy(dir, sq->name, ".ref-f64", gr64, 64);
        CHECK(ng == 32 && ng64 == 32, "%s %s: greedy files", label, sq->name);
        rtr_session_reset(s);
        if (rtr_eval(s, sq->ids, sq->n, &e)) { CHECK(0, "%s: %s", label, e.msg); continue; }
        int follow32 = 1, follow64 = 1, steps_ok = 1, chose[64], nchose = 0;
        for (int k = 0; k < ng && k < ng64; k++) {
            int b = argmax(rtr_logits(s), V);
            chose[nchose++] = b;
            follow32 &= b == gr[k].tok;
            follow64 &= b == gr64[k].tok;
            if (!strcmp(sq->name, "len200")) {
                if (k <= 5 && b != gr[k].tok) { steps_ok = 0; CHECK(0, "%s len200 greedy step %d: %d vs %d", label, k, b, gr[k].tok); break; }
                if (!follow32 && !follow64) break; /* left both references after the near tie */
            } else if (b != gr[k].tok) {
                steps_ok = 0;
                CHECK(0, "%s %s greedy step %d: token %d, reference %d (margin %.3f)", label, sq->name, k, b, gr[k].tok, gr[k].margin);
                break;
            }
            int32_t id = b;
            if (rtr_eval(s, &id, 1, &e)) { CHECK(0, "%s: %s", label, e.msg); break; }
        }
        if (steps_ok) CHECK(1, "greedy");
        /* 4. the same steps with the choice made on the backend (rtr_eval_argmax): the same ids */
        rtr_session_reset(s);
        int32_t top = -1;
        if (rtr_eval_argmax(s, sq->ids, sq->n, &top, &e)) { CHECK(0, "%s: %s", label, e.msg); continue; }
        int same = 1;
        for (int k = 0; k < nchose && same; k++) {
            if (top != chose[k]) {
                same = 0;
                CHECK(0, "%s %s: rtr_eval_argmax step %d chose %d, the logits' argmax %d", label, sq->name, k, top, chose[k]);
                break;
            }
            int32_t id = top;
            if (k + 1 < nchose && rtr_eval_argmax(s, &id, 1, &top, &e)) { CHECK(0, "%s: %s", label, e.msg); same = 0; }
        }
        CHECK(!same || rtr_logits(s) == NULL, "%s %s: logits after rtr_eval_argmax", label, sq->name);
        if (same) CHECK(1, "greedy on the backend");
        /* 5. the same steps one token ahead (rtr_eval_argmax_ahead): the same ids, positions that
         * never count the token queued ahead */
        rtr_session_reset(s);
        if (rtr_eval_argmax(s, sq->ids, sq->n, &top, &e)) { CHECK(0, "%s: %s", label, e.msg); continue; }
        same = top == chose[0];
        for (int k = 0; k + 1 < nchose && same; k++) {
            int32_t id = top;
            if (rtr_eval_argmax_ahead(s, id, &top, &e)) { CHECK(0, "%s: %s", label, e.msg); same = 0; break; }
            if (top != chose[k + 1] || rtr_session_pos(s) != sq->n + k + 1) {
                same = 0;
                CHECK(0, "%s %s: ahead step %d chose %d at position %d, the logits' argmax %d at %d", label, sq->name,
                      k, top, rtr_session_pos(s), chose[k + 1], sq->n + k + 1);
            }
        }
        if (same) CHECK(1, "greedy one token ahead");
        /* then a token other than the one chosen: the queued one is dropped, and the logits are
         * those of the same tokens evaluated one by one */
        int m = nchose < 4 ? nchose - 1 : 3;
        if (m < 1) continue;
        int32_t alt = (chose[m] + 1) % V;
        rtr_session_reset(s);
        int ok = !rtr_eval_argmax(s, sq->ids, sq->n, &top, &e);
        for (int k = 0; k < m && ok; k++) ok = !rtr_eval_argmax_ahead(s, top, &top, &e);
        ok = ok && !rtr_eval(s, &alt, 1, &e);
        CHECK(ok, "%s %s: ahead then another token: %s", label, sq->name, ok ? "" : e.msg);
        if (!ok) continue;
        CHECK(rtr_session_pos(s) == sq->n + m + 1, "%s %s: position %d after the other token, want %d", label,
              sq->name, rtr_session_pos(s), sq->n + m + 1);
        memcpy(pos_logits, rtr_logits(s), (size_t)V * 4);
        rtr_session_reset(s);
        ok = !rtr_eval(s, sq->ids, sq->n, &e);
        for (int k = 0; k < m && ok; k++) ok = !rtr_eval(s, &chose[k], 1, &e);
        ok = ok && !rtr_eval(s, &alt, 1, &e);
        CHECK(ok, "%s %s: one by one: %s", label, sq->name, ok ? "" : e.msg);
        if (!ok) continue;
        float dmax = 0;
        for (int i = 0; i < V; i++) {
            float d = fabsf(rtr_logits(s)[i] - pos_logits[i]);
            if (d > dmax) dmax = d;
        }
        CHECK(dmax <= 1e-4f, "%s %s: logits after dropping the token ahead differ by %.3e", label, sq->name, dmax);
    }
    free(pos_logits);
    rtr_session_free(s);
    rtr_model_close(m);
}

int main(void) {
    char dir[512], model[512], gg[512];
    snprintf(dir, sizeof dir, "%s/tiny-bitnet", test_fixtures());
    struct stat st;
    if (stat(dir, &st)) { CHECK(0, "fixture folder %s is missing", dir); return test_done("test_parity"); }
    mkdir("build", 0755);
    mkdir("build/tests", 0755);
    snprintf(model, sizeof model, "build/tests/parity-tiny.rotor");
    char *args[] = {"convert", dir, "-o", model, "--force", NULL};
    CHECK(rtr_cmd_convert(5, args) == 0, "convert %s", dir);
    const char *only = getenv("ROTOR_PARITY_BACKENDS");
    const char *bes[] = {"cpu", "vulkan", "opencl"};
    for (int b = 0; b < 3; b++) {
        if (only && !strstr(only, bes[b])) continue;
        if (!strstr(rtr_backends_compiled(), bes[b])) { SKIP("%s backend not compiled in", bes[b]); continue; }
        rtr_model_opts mo = {bes[b], -1, 2, 0, NULL};
        if (!strcmp(bes[b], "cpu")) {
            const char *kern[] = {"scalar", "avx2", "avx512vnni", "amx", "neon"};
            for (int k = 0; k < 5; k++) {
                mo.kernel = kern[k];
                char label[64];
                snprintf(label, sizeof label, "cpu/%s", kern[k]);
                rtr_model *probe;
                rtr_err e;
                if (rtr_model_open(&probe, model, &mo, &e)) { SKIP("%s: %s", label, e.msg); continue; }
                rtr_model_close(probe);
                check_model(model, &mo, dir, label);
            }
        } else {
            check_model(model, &mo, dir, bes[b]);
        }
    }
    /* the same weights through GGUF files (written by tests/gguf.sh or test_convert) */
    snprintf(gg, sizeof gg, "build/tests/parity-tiny-gguf.rotor");
    if (getenv("ROTOR_PARITY_GGUF") && stat(getenv("ROTOR_PARITY_GGUF"), &st) == 0) {
        char *a2[] = {"convert", getenv("ROTOR_PARITY_GGUF"), "-o", gg, "--force", NULL};
        CHECK(rtr_cmd_convert(5, a2) == 0, "convert gguf");
        rtr_model_opts mo = {"cpu", -1, 2, 0, NULL};
        check_model(gg, &mo, dir, "cpu/gguf");
    }
    return test_done("test_parity");
}
