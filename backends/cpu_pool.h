/* cpu_pool.h: the CPU backend's thread pool. Threads are created once; each parallel section
 * runs fn(arg, ith, nth) on every thread (the caller is thread 0) and returns when all are done.
 * Workers spin briefly between sections (ops come back to back in the token loop), then sleep. */
#ifndef ROTOR_CPU_POOL_H
#define ROTOR_CPU_POOL_H

typedef struct rtr_pool rtr_pool;
typedef void (*rtr_pool_fn)(void *arg, int ith, int nth);

rtr_pool *rtr_pool_new(int n_threads); /* NULL on failure; n_threads >= 1 */
void rtr_pool_free(rtr_pool *p);
int rtr_pool_size(const rtr_pool *p);
void rtr_pool_run(rtr_pool *p, rtr_pool_fn fn, void *arg);
/* Physical cores of this machine (logical CPUs if unknown). */
int rtr_physical_cores(void);

#endif
