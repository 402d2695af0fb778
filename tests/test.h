/* test.h: the whole C test framework: checks counted per program, a closing line the runner sums.
 * A test program includes this once, calls CHECK / SKIP, and returns test_done("name"). */
#ifndef ROTOR_TEST_H
#define ROTOR_TEST_H

#include <stdio.h>
#include <stdlib.h>

static int test_pass, test_fail, test_skip;

#define CHECK(cond, ...)                                                           \
    do {                                                                           \
        if (cond) test_pass++;                                                     \
        else {                                                                     \
            test_fail++;                                                           \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                   \
            fprintf(stderr, __VA_ARGS__);                                          \
            fputc('\n', stderr);                                                   \
        }                                                                          \
    } while (0)

#define SKIP(...)                                                                  \
    do {                                                                           \
        test_skip++;                                                               \
        fprintf(stderr, "skip: ");                                                 \
        fprintf(stderr, __VA_ARGS__);                                              \
        fputc('\n', stderr);                                                       \
    } while (0)

/* Fixtures live beside the checkout; ROTOR_FIXTURES overrides. */
static inline const char *test_fixtures(void) {
    const char *d = getenv("ROTOR_FIXTURES");
    return d ? d : "../shared/fixtures";
}

static inline int test_done(const char *name) {
    printf("%s: %d passed, %d failed, %d skipped\n", name, test_pass, test_fail, test_skip);
    return test_fail ? 1 : 0;
}

#endif
