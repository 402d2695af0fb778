/* cpu_pool.c: a small spinning thread pool for the CPU backend (see cpu_pool.h). */
#include "cpu_pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ volatile("yield")
#else
#define cpu_relax() ((void)0)
#endif

/* Between sections a worker first spins (ops follow each other within microseconds), then
 * yields its core (the machine may be busy), then sleeps. */
#define SPIN_ITERS 4000
#define YIELD_ITERS 2000

struct rtr_pool {
    int n;
    pthread_t *th;
    _Atomic unsigned gen;
    _Atomic int pending;
    _Atomic int stop;
    _Atomic int sleepers;
    rtr_pool_fn fn;
    void *arg;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

typedef struct { rtr_pool *p; int ith; } worker_arg;

static void *worker(void *v) {
    worker_arg wa = *(worker_arg *)v;
    free(v);
    rtr_pool *p = wa.p;
    unsigned seen = 0; /* gen at creation: a section started before this thread ran is not missed */
    for (;;) {
        int spins = 0;
        while (atomic_load_explicit(&p->gen, memory_order_acquire) == seen) {
            if (atomic_load(&p->stop)) return NULL;
            if (++spins < SPIN_ITERS) { cpu_relax(); continue; }
            if (spins < SPIN_ITERS + YIELD_ITERS) { sched_yield(); continue; }
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->sleepers, 1);
            while (atomic_load(&p->gen) == seen && !atomic_load(&p->stop)) pthread_cond_wait(&p->cv, &p->mu);
            atomic_fetch_sub(&p->sleepers, 1);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->stop)) return NULL;
        seen = atomic_load(&p->gen);
        p->fn(p->arg, wa.ith, p->n);
        atomic_fetch_sub_explicit(&p->pending, 1, memory_order_release);
    }
}

rtr_pool *rtr_pool_new(int n) {
    if (n < 1) n = 1;
    rtr_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n = n;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->th = calloc((size_t)n, sizeof *p->th);
    if (!p->th) { free(p); return NULL; }
    for (int i = 1; i < n; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (!wa) { p->n = i; rtr_pool_free(p); return NULL; }
        wa->p = p; wa->ith = i;
        if (pthread_create(&p->th[i], NULL, worker, wa)) { free(wa); p->n = i; rtr_pool_free(p); return NULL; }
    }
    return p;
}

void rtr_pool_free(rtr_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++) pthread_join(p->th[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->th);
    free(p);
}

int rtr_pool_size(const rtr_pool *p) { return p->n; }

void rtr_pool_run(rtr_pool *p, rtr_pool_fn fn, void *arg) {
    if (p->n == 1) { fn(arg, 0, 1); return; }
    p->fn = fn;
    p->arg = arg;
    atomic_store(&p->pending, p->n - 1);
    atomic_fetch_add(&p->gen, 1); /* seq_cst: ordered before the sleepers check below */
    if (atomic_load(&p->sleepers)) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    fn(arg, 0, p->n);
    for (int spins = 0; atomic_load_explicit(&p->pending, memory_order_acquire) > 0; spins++) {
        if (spins < SPIN_ITERS) cpu_relax();
        else sched_yield();
    }
}

int rtr_physical_cores(void) {
    /* count distinct (physical id, core id) pairs; fall back to the online CPU count */
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return online > 0 ? (int)online : 1;
    char line[256];
    int phys = -1, pairs[1024][2], np = 0;
    while (fgets(line, sizeof line, f)) {
        int v;
        if (sscanf(line, "physical id : %d", &v) == 1) phys = v;
        else if (sscanf(line, "core id : %d", &v) == 1) {
            int dup = 0;
            for (int i = 0; i < np; i++) if (pairs[i][0] == phys && pairs[i][1] == v) dup = 1;
            if (!dup && np < 1024) { pairs[np][0] = phys; pairs[np][1] = v; np++; }
        }
    }
    fclose(f);
    if (np > 0 && np <= online) return np;
    return online > 0 ? (int)online : 1;
}
