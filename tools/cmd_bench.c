/* cmd_bench.c: `rotor bench`: llama-bench style measurements (pp = prompt tokens per second,
 * tg = generated tokens per second, mean and standard deviation over -r repetitions) plus what
 * llama-bench lacks: load time, time to first token, peak memory, bytes read per generated
 * token, the measured memory bandwidth (the CPU's threads reading host memory, or the GPU reading
 * its own) and tg as a fraction of that roofline.
 * -d runs every test after an untimed prompt of that many tokens (llama-bench's depth: "tg128 @
 * d4096"). Generated tokens are chosen greedily on the backend, each next token's evaluation
 * queued before the host waits for the choice where the backend can (rtr_eval_argmax_ahead, as
 * `run --temp 0` does); a tg test's time includes the end of the token queued past its last.
 * Output: -o md (default), csv, json or jsonl. */
#include "cli.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_TESTS 16

static void usage(void) {
    fprintf(stdout,
            "usage: rotor bench -m MODEL [options]\n"
            "  -m, --model FILE       model (or --synthetic SHAPE: generated once into the cache)\n"
            "      --synthetic SHAPE  bitnet-2b4t, tiny, bitnet-embed-0.6b: random weights, real shape\n"
            "  -p, --n-prompt LIST    prompt sizes, comma-separated (default 128)\n"
            "  -n, --n-gen LIST       generation lengths (default 128)\n"
            "  -d, --n-depth LIST     tokens already in the context when each test starts (default 0)\n"
            "  -r, --repetitions N    repetitions of each test (default 3)\n"
            "  -t, --threads N        CPU threads (default: physical cores)\n"
            "      --backend NAME     auto, cpu, vulkan, opencl\n"
            "      --device N         GPU index\n"
            "      --kernel NAME      CPU kernel set (scalar, avx2, avx512vnni, amx, neon)\n"
            "      --no-bandwidth     skip the memory bandwidth measurement (the roofline's; on a GPU it\n"
            "                         streams 512 MB of the device's memory for about a second)\n"
            "      --no-warmup        no untimed run before each test\n"
            "  -o, --output FMT       md, csv, json, jsonl (default md)\n");
}

static int parse_list(const char *s, int *out, int cap) {
    int n = 0;
    while (*s && n < cap) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 0 || v > 1 << 20) return -1;
        out[n++] = (int)v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return -1;
    }
    return n;
}

/* ---- memory bandwidth: every thread sums its own slice of a buffer larger than any cache, once
 * as it comes and once prefetching 4 KB ahead (as the decode kernels do: some cores stream
 * faster so); the roofline takes the faster ---- */
typedef struct { const uint64_t *p; size_t n; uint64_t sum; int prefetch; } bw_job;
static void *bw_read(void *v) {
    bw_job *j = v;
    uint64_t a = 0, b = 0, c = 0, d = 0;
    size_t i = 0;
    if (j->prefetch)
        for (; i + 8 <= j->n; i += 8) {
            __builtin_prefetch(j->p + i + 512);
            a += j->p[i] + j->p[i + 4]; b += j->p[i + 1] + j->p[i + 5];
            c += j->p[i + 2] + j->p[i + 6]; d += j->p[i + 3] + j->p[i + 7];
        }
    for (; i + 4 <= j->n; i += 4) { a += j->p[i]; b += j->p[i + 1]; c += j->p[i + 2]; d += j->p[i + 3]; }
    j->sum = a + b + c + d;
    return NULL;
}

static double measure_bandwidth(int nth) {
    size_t bytes = (size_t)1 << 30, words = bytes / 8;
    uint64_t *buf = malloc(bytes);
    if (!buf) return 0;
    for (size_t i = 0; i < words; i++) buf[i] = i;
    double best = 0;
    pthread_t th[256];
    bw_job jobs[256];
    if (nth > 256) nth = 256;
    for (int rep = 0; rep < 8; rep++) {
        double t0 = rtr_now();
        for (int t = 0; t < nth; t++) {
            jobs[t].p = buf + words / nth * t;
            jobs[t].n = words / nth;
            jobs[t].prefetch = rep % 2;
            pthread_create(&th[t], NULL, bw_read, &jobs[t]);
        }
        uint64_t s = 0;
        for (int t = 0; t < nth; t++) { pthread_join(th[t], NULL); s += jobs[t].sum; }
        double dt = rtr_now() - t0;
        if (s == 42) fprintf(stderr, " "); /* keeps the sum alive */
        double gbs = (double)(words / nth * nth * 8) / dt / 1e9;
        if (gbs > best) best = gbs;
    }
    free(buf);
    return best;
}

typedef struct { const char *name; int n_prompt, n_gen, n_depth; double mean, sd; } result;

static void stats(const double *v, int n, double *mean, double *sd) {
    double s = 0, q = 0;
    for (int i = 0; i < n; i++) s += v[i];
    *mean = s / n;
    for (int i = 0; i < n; i++) q += (v[i] - *mean) * (v[i] - *mean);
    *sd = n > 1 ? sqrt(q / (n - 1)) : 0;
}

static const char *synthetic_path(const char *shape, char *buf, size_t cap) {
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    char dir[512];
    if (xdg && *xdg) snprintf(dir, sizeof dir, "%s/rotor", xdg);
    else snprintf(dir, sizeof dir, "%s/.cache/rotor", home ? home : "/tmp");
    char parent[512];
    snprintf(parent, sizeof parent, "%s", dir);
    char *slash = strrchr(parent, '/');
    if (slash) { *slash = 0; mkdir(parent, 0755); }
    mkdir(dir, 0755);
    snprintf(buf, cap, "%s/synthetic-%s.rotor", dir, shape);
    struct stat st;
    if (stat(buf, &st) == 0) return buf;
    fprintf(stderr, "rotor: generating a random-weight %s model into %s (once)\n", shape, buf);
    char *args[] = {"convert", "--synthetic", (char *)shape, "-o", buf, NULL};
    if (rtr_cmd_convert(5, args)) return NULL;
    return buf;
}

/* One generated token, greedy: chosen on the backend one token ahead (how 0), on the backend
 * token by token (1), or from the logits on the host (2); ROTOR_BENCH_GREEDY=ahead, device or
 * host, for comparison */
static int step(rtr_session *s, rtr_sampler *greedy, int32_t *id, int how, rtr_err *e) {
    int32_t in = *id;
    if (how == 0) return rtr_eval_argmax_ahead(s, in, id, e);
    if (how == 1) return rtr_eval_argmax(s, &in, 1, id, e);
    if (rtr_eval(s, &in, 1, e)) return -1;
    *id = rtr_sample(greedy, rtr_logits(s));
    return 0;
}

/* an empty context, then d prompt tokens evaluated (untimed) */
static int at_depth(rtr_session *s, const int32_t *ids, int d, rtr_err *e) {
    rtr_session_reset(s);
    return d > 0 ? rtr_eval(s, ids, d, e) : 0;
}

int rtr_cmd_bench(int argc, char **argv) {
    cli_model_args ma;
    cli_model_args_init(&ma);
    int pp[MAX_TESTS] = {128}, tg[MAX_TESTS] = {128}, dp[MAX_TESTS] = {0}, npp = 1, ntg = 1, ndp = 1, bad = 0,
        do_bw = 1, warm = 1;
    long reps = 3;
    const char *fmt = "md", *synth = NULL;
    for (int i = 1; i < argc && !bad; i++) {
        const char *v;
        if (cli_model_arg(&ma, argc, argv, &i, &bad)) continue;
        if (cli_flag(argv, i, "-h", "--help")) { usage(); return 0; }
        if (cli_opt(argc, argv, &i, "-p", "--n-prompt", &v, &bad)) {
            if (!bad && (npp = parse_list(v, pp, MAX_TESTS)) < 0) bad = cli_error("-p needs a comma-separated list of sizes");
            continue;
        }
        if (cli_opt(argc, argv, &i, "-n", "--n-gen", &v, &bad)) {
            if (!bad && (ntg = parse_list(v, tg, MAX_TESTS)) < 0) bad = cli_error("-n needs a comma-separated list of sizes");
            continue;
        }
        if (cli_opt(argc, argv, &i, "-d", "--n-depth", &v, &bad)) {
            if (!bad && (ndp = parse_list(v, dp, MAX_TESTS)) < 1) bad = cli_error("-d needs a comma-separated list of depths");
            continue;
        }
        if (cli_opt(argc, argv, &i, "-r", "--repetitions", &v, &bad)) {
            if (!bad && !cli_int(v, 1, 1000, &reps)) bad = cli_error("-r needs a count >= 1");
            continue;
        }
        if (cli_opt(argc, argv, &i, "-o", "--output", &v, &bad)) {
            fmt = v;
            if (!bad && strcmp(v, "md") && strcmp(v, "csv") && strcmp(v, "json") && strcmp(v, "jsonl")) bad = cli_error("-o must be md, csv, json or jsonl");
            continue;
        }
        if (cli_opt(argc, argv, &i, NULL, "--synthetic", &v, &bad)) { synth = v; continue; }
        if (cli_flag(argv, i, NULL, "--no-bandwidth")) { do_bw = 0; continue; }
        if (cli_flag(argv, i, NULL, "--no-warmup")) { warm = 0; continue; }
        bad = cli_error("bench: unknown option '%s' (see rotor bench --help)", argv[i]);
    }
    if (bad) return 1;
    char spath[1024];
    if (synth && !ma.model) {
        if (!(ma.model = synthetic_path(synth, spath, sizeof spath))) return 1;
    }
    double t0 = rtr_now();
    rtr_model *m = cli_open_model(&ma);
    if (!m) return 1;
    double t_load = rtr_now() - t0;
    rtr_model_info mi;
    rtr_model_get_info(m, &mi);
    int maxp = 8;
    for (int i = 0; i < npp; i++) if (pp[i] > maxp) maxp = pp[i];
    int maxg = 8;
    for (int i = 0; i < ntg; i++) if (tg[i] > maxg) maxg = tg[i];
    int maxd = 0;
    for (int i = 0; i < ndp; i++) if (dp[i] > maxd) maxd = dp[i];
    int ctx = (maxp > maxg ? maxp : maxg) + maxd + 16, nids = (maxp > maxd ? maxp : maxd) + 8;
    rtr_session *s = NULL;
    rtr_sampler *greedy = NULL; /* NULL for embedding models */
    const char *gh = getenv("ROTOR_BENCH_GREEDY");
    int how = gh && !strcmp(gh, "host") ? 2 : gh && !strcmp(gh, "device") ? 1 : 0;
    rtr_err e = {0};
    rtr_session_opts so = {ctx, 4, maxp > 512 ? maxp : 512, NULL, ma.kv_f16};
    int rc = 1;
    int32_t *ids = malloc((size_t)nids * 4);
    double *times = malloc((size_t)reps * sizeof(double));
    result *res = malloc((size_t)2 * MAX_TESTS * MAX_TESTS * sizeof *res);
    int nres = 0;
    if (!ids || !times || !res) { cli_error("out of memory"); goto out; }
    if (rtr_session_new(&s, m, &so, &e)) { cli_error("%s", e.msg); goto out; }
    if (!mi.is_embedding) { /* generated tokens are chosen as `rotor run --temp 0` chooses them */
        rtr_sampler_params sp;
        rtr_sampler_defaults(&sp);
        sp.temp = 0;
        sp.repeat_penalty = 1.0f;
        if (rtr_sampler_new(&greedy, &sp, mi.n_vocab)) { cli_error("out of memory"); goto out; }
    }
    uint64_t rng = 12345;
    for (int i = 0; i < nids; i++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        ids[i] = (int32_t)((rng >> 33) % (uint64_t)mi.n_vocab);
    }
    /* time to first token: a 7-token prompt then one token out (greedy) */
    double ttft;
    {
        rtr_session_reset(s);
        double a = rtr_now();
        if (rtr_eval(s, ids, 7, &e)) { cli_error("%s", e.msg); goto out; }
        if (greedy) (void)rtr_sample(greedy, rtr_logits(s));
        ttft = rtr_now() - a;
    }
    /* warm-up */
    rtr_session_reset(s);
    if (rtr_eval(s, ids, 8, &e)) { cli_error("%s", e.msg); goto out; }
    for (int di = 0; di < ndp; di++) {
        int d = dp[di];
        for (int t = 0; t < npp; t++) {
            if (pp[t] == 0) continue;
            /* untimed runs first, as llama-bench does: caches and recorded command buffers fill;
             * repeated for a quarter of a second so that an idle GPU's clocks are up too */
            double w0 = rtr_now();
            for (int n = 0; warm && (n == 0 || (rtr_now() - w0 < 0.25 && n < 16)); n++)
                if (at_depth(s, ids, d, &e) || rtr_eval(s, ids + d % 8, pp[t], &e)) { cli_error("%s", e.msg); goto out; }
            for (int r = 0; r < reps; r++) {
                if (at_depth(s, ids, d, &e)) { cli_error("%s", e.msg); goto out; }
                double a = rtr_now();
                if (rtr_eval(s, ids + d % 8, pp[t], &e)) { cli_error("%s", e.msg); goto out; }
                times[r] = pp[t] / (rtr_now() - a);
            }
            res[nres] = (result){"pp", pp[t], 0, d, 0, 0};
            stats(times, (int)reps, &res[nres].mean, &res[nres].sd);
            nres++;
        }
        for (int t = 0; t < ntg; t++) {
            if (tg[t] == 0 || mi.is_embedding) continue;
            if (warm) { /* an untimed stretch of generation first: 16 tokens, or a quarter second */
                if (at_depth(s, ids, d, &e)) { cli_error("%s", e.msg); goto out; }
                int32_t id = ids[0];
                double w0 = rtr_now();
                for (int k = 0; k < tg[t] && (k < 16 || rtr_now() - w0 < 0.25); k++)
                    if (step(s, greedy, &id, how, &e)) { cli_error("%s", e.msg); goto out; }
            }
            for (int r = 0; r < reps; r++) {
                if (at_depth(s, ids, d, &e)) { cli_error("%s", e.msg); goto out; }
                int32_t id = ids[0];
                double a = rtr_now();
                for (int k = 0; k < tg[t]; k++)
                    if (step(s, greedy, &id, how, &e)) { cli_error("%s", e.msg); goto out; }
                if (rtr_session_sync(s, &e)) { cli_error("%s", e.msg); goto out; }
                times[r] = tg[t] / (rtr_now() - a);
            }
            res[nres] = (result){"tg", 0, tg[t], d, 0, 0};
            stats(times, (int)reps, &res[nres].mean, &res[nres].sd);
            nres++;
        }
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double peak_mb = ru.ru_maxrss / 1024.0;
    int nth = ma.mo.n_threads > 0 ? ma.mo.n_threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    /* the roofline's bandwidth: the CPU's threads reading host memory, or the GPU reading its own */
    int on_cpu = !strcmp(rtr_model_backend(m), "cpu");
    double bw = 0;
    if (do_bw && on_cpu) bw = measure_bandwidth(nth);
    else if (do_bw && rtr_model_read_bandwidth(m, &bw, &e)) {
        fprintf(stderr, "rotor: bench: no roofline: %s\n", e.msg);
        bw = 0;
    }
    double bpt = (double)mi.weight_bytes_per_token;
    double roof = bw > 0 ? bw * 1e9 / bpt : 0;
    const char *name = strrchr(ma.model, '/') ? strrchr(ma.model, '/') + 1 : ma.model;
    const char *dev = rtr_model_device(m);
    if (!strcmp(fmt, "md")) {
        printf("| model | size | backend | device | test | t/s | roofline |\n");
        printf("| --- | ---: | --- | --- | ---: | ---: | ---: |\n");
        for (int i = 0; i < nres; i++) {
            char test[48], frac[32] = "";
            int tl = snprintf(test, sizeof test, "%s%d", res[i].name, res[i].n_prompt + res[i].n_gen);
            if (res[i].n_depth) snprintf(test + tl, sizeof test - (size_t)tl, " @ d%d", res[i].n_depth);
            if (!strcmp(res[i].name, "tg") && roof > 0) snprintf(frac, sizeof frac, "%.0f%%", 100 * res[i].mean / roof);
            printf("| %s | %.2f GiB | %s | %s | %s | %.2f ± %.2f | %s |\n", name, mi.file_bytes / 1073741824.0,
                   rtr_model_backend(m), dev, test, res[i].mean, res[i].sd, frac);
        }
        printf("\nload %.3f s | first token (7-token prompt) %.3f s | peak memory %.0f MB | KV+scratch %.0f MB | "
               "bytes/token %.1f MB",
               t_load, ttft, peak_mb, rtr_session_bytes(s) / 1e6, bpt / 1e6);
        char how[32] = "device reads";
        if (on_cpu) snprintf(how, sizeof how, "%d threads", nth);
        if (bw > 0) printf(" | memory bandwidth %.1f GB/s (%s) | roofline %.1f tok/s", bw, how, roof);
        printf("\n");
    } else {
        int csv = !strcmp(fmt, "csv"), jsonl = !strcmp(fmt, "jsonl");
        if (csv) printf("model,size_bytes,backend,device,test,n_prompt,n_gen,n_depth,avg_ts,stddev_ts,load_s,ttft_s,peak_mb,bytes_per_token,bandwidth_gbs,roofline_ts,roofline_frac\n");
        if (!csv && !jsonl) printf("[\n");
        for (int i = 0; i < nres; i++) {
            double frac = !strcmp(res[i].name, "tg") && roof > 0 ? res[i].mean / roof : 0;
            if (csv)
                printf("%s,%llu,%s,\"%s\",%s,%d,%d,%d,%.3f,%.3f,%.4f,%.4f,%.0f,%.0f,%.2f,%.2f,%.3f\n", name,
                       (unsigned long long)mi.file_bytes, rtr_model_backend(m), dev, res[i].name, res[i].n_prompt, res[i].n_gen,
                       res[i].n_depth, res[i].mean, res[i].sd, t_load, ttft, peak_mb, bpt, bw, roof, frac);
            else
                printf("%s{\"model\": \"%s\", \"size_bytes\": %llu, \"backend\": \"%s\", \"device\": \"%s\", \"test\": \"%s\", "
                       "\"n_prompt\": %d, \"n_gen\": %d, \"n_depth\": %d, \"avg_ts\": %.3f, \"stddev_ts\": %.3f, \"load_s\": %.4f, "
                       "\"ttft_s\": %.4f, \"peak_mb\": %.0f, \"bytes_per_token\": %.0f, \"bandwidth_gbs\": %.2f, "
                       "\"roofline_ts\": %.2f, \"roofline_frac\": %.3f}%s\n",
                       jsonl ? "" : "  ", name, (unsigned long long)mi.file_bytes, rtr_model_backend(m), dev,
                       res[i].name, res[i].n_prompt, res[i].n_gen, res[i].n_depth, res[i].mean, res[i].sd, t_load, ttft, peak_mb,
                       bpt, bw, roof, frac, jsonl || i == nres - 1 ? "" : ",");
        }
        if (!csv && !jsonl) printf("]\n");
    }
    rc = 0;
out:
    rtr_sampler_free(greedy);
    free(ids);
    free(times);
    free(res);
    rtr_session_free(s);
    rtr_model_close(m);
    return rc;
}
