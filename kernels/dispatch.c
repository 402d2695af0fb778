/* dispatch.c: picks a kernel set at run time from what this CPU and its OS support.
 *
 * x86-64: cpuid for the instruction sets, xgetbv for the register state the OS saves (AVX needs
 * XMM+YMM state, AVX-512 also the opmask and upper ZMM state). aarch64: getauxval(AT_HWCAP).
 * Sets compiled for another architecture are simply not listed.
 */
#include "kernels.h"

#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>

static uint64_t xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (uint64_t)hi << 32 | lo;
}

/* bit 0: avx2+fma+f16c usable; bit 1: avx512 f/bw/vl/vnni usable; bit 2: also AMX tiles with
 * int8 (the OS saves tile state; the process must still ask for it, see usable) */
static int x86_features(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    int fma = c >> 12 & 1, osxsave = c >> 27 & 1, avx = c >> 28 & 1, f16c = c >> 29 & 1;
    if (!osxsave || !avx) return 0;
    uint64_t xcr0 = xgetbv0();
    if ((xcr0 & 0x6) != 0x6) return 0; /* the OS does not save YMM registers */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    int avx2 = b >> 5 & 1, f = b >> 16 & 1, bw = b >> 30 & 1, vl = b >> 31 & 1, vnni = c >> 11 & 1;
    int out = 0;
    if (avx2 && fma && f16c) out |= 1;
    if ((out & 1) && f && bw && vl && vnni && (xcr0 & 0xe6) == 0xe6) out |= 2;
    int amx_tile = d >> 24 & 1, amx_int8 = d >> 25 & 1;
    if ((out & 2) && amx_tile && amx_int8 && (xcr0 & 0x60000) == 0x60000) out |= 4;
    return out;
}

int rtr_amx_enable(void);

static int usable(const rtr_kernels *k) {
    int f = x86_features();
    /* Linux hands out the tile registers' state only on request (arch_prctl); a refusal leaves
     * the set unusable */
    if (k == &rtr_kernels_amx) return (f & 4) && rtr_amx_enable();
    if (k == &rtr_kernels_avx512vnni) return (f & 2) != 0;
    if (k == &rtr_kernels_avx2) return (f & 1) != 0;
    return 1;
}

static const rtr_kernels *const sets[] = {&rtr_kernels_amx, &rtr_kernels_avx512vnni, &rtr_kernels_avx2,
                                          &rtr_kernels_scalar};

#elif defined(__aarch64__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDHP
#define HWCAP_ASIMDHP (1 << 10)
#endif
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif

static int usable(const rtr_kernels *k) {
    if (k == &rtr_kernels_neon) {
        unsigned long hw = getauxval(AT_HWCAP);
        return (hw & HWCAP_ASIMDDP) && (hw & HWCAP_ASIMDHP);
    }
    return 1;
}

static const rtr_kernels *const sets[] = {&rtr_kernels_neon, &rtr_kernels_scalar};

#else
static int usable(const rtr_kernels *k) { (void)k; return 1; }
static const rtr_kernels *const sets[] = {&rtr_kernels_scalar};
#endif

#define N_SETS (int)(sizeof sets / sizeof sets[0])

const rtr_kernels *rtr_kernels_pick(const char *name) {
    for (int i = 0; i < N_SETS; i++) {
        if (name && strcmp(name, sets[i]->name) != 0) continue;
        if (usable(sets[i])) return sets[i];
        if (name) return NULL;
    }
    return NULL;
}

int rtr_kernels_available(const rtr_kernels **out, int cap) {
    int n = 0;
    for (int i = 0; i < N_SETS; i++)
        if (usable(sets[i])) {
            if (n < cap) out[n] = sets[i];
            n++;
        }
    return n < cap ? n : cap;
}
