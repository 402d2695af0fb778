/* bench_kernels.c: single-thread speed of the CPU kernels on the BitNet 2B4T shapes.
 * Not part of `make test`; build with `make build/tests/bench_kernels` and run
 *   build/tests/bench_kernels [SET [SECONDS [THREADS]]]   (SET: scalar, avx2, ...; default the best)
 *
 * Reports: plain memory read bandwidth (the ceiling for decode); t2_gemm with one token in GB/s
 * of weights, both from cache (one matrix reused) and streamed (a 512 MB ring of copies, as in a
 * real decode step); f16_gemm over the 128256 x 2560 LM head in GB/s; t2_gemm with 128 tokens in
 * GMAC/s, called as the CPU backend does (64 rows at a time), and what that means in prompt
 * tokens per second for the whole 2B4T stack (2.085 G ternary MACs per token).
 * Each figure is the best of several short trials. With one thread they are timed in thread CPU
 * time, so that other work on a shared machine disturbs them as little as possible; with THREADS
 * > 1 the rows are split between threads as the CPU backend does and timed by the wall clock.
 */
#include "../kernels/kernels.h"
#include "../models/format.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int nthreads = 1;

static double now(void) {
    struct timespec ts;
    clock_gettime(nthreads > 1 ? CLOCK_MONOTONIC : CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void *big(size_t n) {
    void *p = aligned_alloc(4096, (n + 4095) / 4096 * 4096);
    if (!p) { fprintf(stderr, "bench_kernels: out of memory (%zu bytes)\n", n); exit(1); }
    return p;
}

static uint64_t rng = 88172645463325252ull;
static uint8_t rnd8(void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return (uint8_t)(rng >> 40); }

typedef struct {
    const rtr_kernels *ks;
    const uint8_t *mem; /* T2 ring */
    size_t ring, mb, rb;
    int rows, k, ntok;
    const int8_t *x;
    const int32_t *xsum;
    int32_t *out;
    const uint16_t *w16;
    const float *xf;
    float *y;
    int8_t *q;
    float *scale;
    uint64_t sink;
} ctx;

/* A job runs call i on its part of the rows (part p of np: rows [lo, hi), multiples of 64). */
typedef void (*job)(ctx *c, long i, int lo, int hi);

/* plain reads, two 8-byte loads per cache line; "rows" here are ring/rows-byte slices */
static void job_read(ctx *c, long i, int lo, int hi) {
    (void)i;
    size_t slice = c->ring / (size_t)c->rows;
    const uint64_t *p = (const uint64_t *)(c->mem + (size_t)lo * slice);
    uint64_t s = 0;
    for (size_t j = 0; j < (size_t)(hi - lo) * slice / 8; j += 8) s += p[j] + p[j + 4];
    c->sink += s;
}
/* 64 rows a call, as backends/cpu.c makes them */
static void t2_rows(ctx *c, const uint8_t *m, int lo, int hi, int ntok) {
    for (int r = lo; r < hi; r += 64)
        c->ks->t2_gemm(m + (size_t)r * c->rb, c->rb, hi - r < 64 ? hi - r : 64, c->x, c->xsum, c->k,
                       ntok, c->out + (size_t)r * ntok, 64);
}
static void job_t2_hot(ctx *c, long i, int lo, int hi) { (void)i; t2_rows(c, c->mem, lo, hi, 1); }
static void job_t2_ring(ctx *c, long i, int lo, int hi) {
    size_t n = c->ring / c->mb;
    t2_rows(c, c->mem + (size_t)(i % (long)n) * c->mb, lo, hi, 1);
}
static void job_t2_batch(ctx *c, long i, int lo, int hi) { (void)i; t2_rows(c, c->mem, lo, hi, c->ntok); }
static void job_f16(ctx *c, long i, int lo, int hi) {
    (void)i;
    c->ks->f16_gemm(c->w16 + (size_t)lo * c->k, hi - lo, c->k, c->xf, c->ntok, c->y + lo, c->rows);
}
static void job_bf16(ctx *c, long i, int lo, int hi) {
    (void)i;
    c->ks->bf16_gemm(c->w16 + (size_t)lo * c->k, hi - lo, c->k, c->xf, c->ntok, c->y + lo, c->rows);
}
static void job_q8(ctx *c, long i, int lo, int hi) {
    (void)i;
    size_t kq = (size_t)(c->k + 63) / 64 * 64;
    c->ks->q8_gemm((const int8_t *)c->w16 + (size_t)lo * kq, c->scale + lo, hi - lo, c->k, c->q,
                   c->scale, c->ntok, c->y + lo, c->rows);
}
static void job_quant(ctx *c, long i, int lo, int hi) {
    int32_t s;
    (void)i; (void)lo; (void)hi;
    c->ks->quant_row(c->xf, c->k, c->k, c->q, &s);
}

/* ---- a minimal pool: workers run part p of every call between two barriers ---- */
static struct {
    pthread_barrier_t start, done;
    job f;
    ctx *c;
    long i;
    int stop;
} pool;

static void part(int p, int *lo, int *hi) {
    int rows = pool.c->rows, chunks = (rows + 63) / 64;
    *lo = chunks * p / nthreads * 64;
    *hi = chunks * (p + 1) / nthreads * 64;
    if (*hi > rows) *hi = rows;
}

static void *worker(void *arg) {
    int p = (int)(intptr_t)arg, lo, hi;
    for (;;) {
        pthread_barrier_wait(&pool.start);
        if (pool.stop) return NULL;
        part(p, &lo, &hi);
        pool.f(pool.c, pool.i, lo, hi);
        pthread_barrier_wait(&pool.done);
    }
}

static void run_call(job f, ctx *c, long i) {
    int lo, hi;
    if (nthreads == 1 || f == job_quant) { f(c, i, 0, c->rows); return; }
    pool.f = f; pool.c = c; pool.i = i;
    pthread_barrier_wait(&pool.start);
    part(0, &lo, &hi);
    f(c, i, lo, hi);
    pthread_barrier_wait(&pool.done);
}

/* best of trials of about 0.15 s each, `secs` in all; returns units per second */
static double best(job f, ctx *c, double units, double secs) {
    double bestr = 0, spent = 0;
    long i = 0;
    run_call(f, c, i++); /* warm up */
    do {
        double t0 = now(), t;
        long n = 0;
        do { run_call(f, c, i++); n++; } while ((t = now() - t0) < 0.15);
        spent += t;
        if (n * units / t > bestr) bestr = n * units / t;
    } while (spent < secs);
    return bestr;
}

int main(int argc, char **argv) {
    ctx c = {0};
    c.ks = rtr_kernels_pick(argc > 1 ? argv[1] : NULL);
    double secs = argc > 2 ? atof(argv[2]) : 1.0;
    nthreads = argc > 3 ? atoi(argv[3]) : 1;
    if (!c.ks) { fprintf(stderr, "bench_kernels: kernel set '%s' not available\n", argv[1]); return 1; }
    if (nthreads < 1 || nthreads > 64) { fprintf(stderr, "bench_kernels: 1 to 64 threads\n"); return 1; }
    pthread_t tid[64];
    pthread_barrier_init(&pool.start, NULL, (unsigned)nthreads);
    pthread_barrier_init(&pool.done, NULL, (unsigned)nthreads);
    for (int t = 1; t < nthreads; t++) pthread_create(&tid[t], NULL, worker, (void *)(intptr_t)t);
    printf("kernel set: %s, %d thread%s, best of trials over %.1f s per figure\n", c.ks->name,
           nthreads, nthreads > 1 ? "s" : "", secs);

    /* 512 MB ring: larger than any cache, like one decode step of 2B4T (521 MB of ternary) */
    c.ring = (size_t)512 << 20;
    uint8_t *mem = big(c.ring);
    for (size_t i = 0; i < c.ring; i++) { /* valid codes only: 0, 1 or 2 in each 2-bit field */
        uint8_t b = 0;
        for (int s = 0; s < 4; s++) b |= (uint8_t)((rnd8() % 3) << (2 * s));
        mem[i] = b;
    }
    c.mem = mem; c.rows = 65536;
    printf("memory read (plain loop)           %6.1f GB/s\n", best(job_read, &c, c.ring / 1e9, secs));

    int8_t *x = big(128 * 6912);
    int32_t *xsum = big(sizeof(int32_t) * 128);
    c.out = big(sizeof(int32_t) * 128 * 6912);
    for (int i = 0; i < 128 * 6912; i++) x[i] = (int8_t)rnd8();
    c.x = x; c.xsum = xsum;
    static const int shapes[2][2] = {{6912, 2560}, {2560, 6912}}; /* rows, k: gate/up, down */
    for (int s = 0; s < 2; s++) {
        c.rows = shapes[s][0]; c.k = shapes[s][1];
        c.rb = rtr_t2_row_bytes(c.k); c.mb = c.rb * c.rows;
        for (int t = 0; t < 128; t++) {
            int32_t a = 0;
            for (int j = 0; j < c.k; j++) a += x[(size_t)t * c.k + j];
            xsum[t] = a;
        }
        double hot = best(job_t2_hot, &c, c.mb / 1e9, secs), cold = best(job_t2_ring, &c, c.mb / 1e9, secs);
        printf("t2_gemm ntok=1   %4d x %4d        %6.1f GB/s cached, %5.1f GB/s streamed\n", c.rows, c.k, hot, cold);
    }
    for (int s = 0; s < 2; s++) {
        c.rows = shapes[s][0]; c.k = shapes[s][1]; c.ntok = 128;
        c.rb = rtr_t2_row_bytes(c.k);
        for (int t = 0; t < 128; t++) {
            int32_t a = 0;
            for (int j = 0; j < c.k; j++) a += x[(size_t)t * c.k + j];
            xsum[t] = a;
        }
        double gmac = best(job_t2_batch, &c, (double)c.rows * c.k * c.ntok / 1e9, secs);
        printf("t2_gemm ntok=128 %4d x %4d        %6.1f GMAC/s (%.1f GOPS): %5.1f prompt tok/s for 2B4T\n",
               c.rows, c.k, gmac, 2 * gmac, gmac / 2.085);
    }
    free(mem);

    /* LM head: 128256 x 2560 half-precision rows (657 MB) */
    c.rows = 128256; c.k = 2560;
    size_t n16 = (size_t)c.rows * c.k;
    uint16_t *w16 = big(n16 * 2);
    for (size_t i = 0; i < n16; i++) w16[i] = (uint16_t)(0x3000 + (rnd8() & 0x3ff) + ((rnd8() & 1) << 15));
    float *xf = big(sizeof(float) * 6912 * 4);
    for (int i = 0; i < 6912 * 4; i++) xf[i] = (float)(rnd8() - 128) / 37.0f;
    c.w16 = w16; c.xf = xf; c.y = big(sizeof(float) * c.rows * 4); c.ntok = 1;
    printf("f16_gemm ntok=1  %d x %d      %6.1f GB/s\n", c.rows, c.k, best(job_f16, &c, n16 * 2 / 1e9, secs));
    printf("bf16_gemm ntok=1 %d x %d      %6.1f GB/s\n", c.rows, c.k, best(job_bf16, &c, n16 * 2 / 1e9, secs));
    c.q = big(6912 * 4);
    c.scale = big(sizeof(float) * c.rows);
    for (int i = 0; i < 6912 * 4; i++) c.q[i] = (int8_t)rnd8();
    for (int i = 0; i < c.rows; i++) c.scale[i] = 0.01f;
    printf("q8_gemm ntok=1   %d x %d      %6.1f GB/s\n", c.rows, c.k, best(job_q8, &c, n16 / 1e9, secs));
    c.ntok = 4;
    printf("f16_gemm ntok=4  %d x %d      %6.1f GFLOP/s\n", c.rows, c.k, best(job_f16, &c, n16 * 8 / 1e9, secs));
    free(w16);

    c.k = 6912;
    printf("quant_row 6912                     %6.2f us\n", 1e6 / best(job_quant, &c, 1, secs / 4));
    printf("(sink %llu)\n", (unsigned long long)(c.sink & 1));
    pool.stop = 1;
    if (nthreads > 1) pthread_barrier_wait(&pool.start);
    for (int t = 1; t < nthreads; t++) pthread_join(tid[t], NULL);
    return 0;
}
