/* fuzz_common.h: helpers shared by the fuzz targets in tests/fuzz/: handing fuzz input to
 * parsers that take a path (an anonymous memory file named /proc/self/fd/N), a scratch folder
 * for targets that write files, the repository root for fixtures, and FZ_ASSERT, which aborts
 * (a finding) when a property the parser promises does not hold.
 * Each target defines LLVMFuzzerTestOneInput; built by tests/fuzz.mk with libFuzzer, or with
 * tests/fuzz/replay.c into one program that runs saved inputs (the regression test). */
#ifndef ROTOR_FUZZ_COMMON_H
#define ROTOR_FUZZ_COMMON_H

#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FZ_ASSERT(cond, ...)                                                                   \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "fuzz property failed at %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                                      \
            fputc('\n', stderr);                                                               \
            abort();                                                                           \
        }                                                                                      \
    } while (0)

/* Puts data in an anonymous memory file; path gets a name that open() accepts. Returns the fd
 * (close it when done) or -1. */
static inline int fz_memfile(const uint8_t *data, size_t size, char path[64]) {
    int fd = memfd_create("fuzz", MFD_CLOEXEC);
    if (fd < 0) return -1;
    size_t done = 0;
    while (done < size) {
        ssize_t w = write(fd, data + done, size - done);
        if (w <= 0) { close(fd); return -1; }
        done += (size_t)w;
    }
    snprintf(path, 64, "/proc/self/fd/%d", fd);
    return fd;
}

/* A private scratch folder (on /dev/shm when there is one), made once per process and removed
 * with whatever is in it when the process exits normally. */
static char fz_scratch_dir[256];
static inline void fz_scratch_remove(void) {
    DIR *d = opendir(fz_scratch_dir);
    if (!d) return;
    struct dirent *e;
    char path[600];
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') {
            snprintf(path, sizeof path, "%s/%s", fz_scratch_dir, e->d_name);
            unlink(path);
        }
    closedir(d);
    rmdir(fz_scratch_dir);
}
static inline const char *fz_scratch(void) {
    if (!fz_scratch_dir[0]) {
        const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        snprintf(fz_scratch_dir, sizeof fz_scratch_dir, "%s/rotor-fuzz.%ld", base, (long)getpid());
        mkdir(fz_scratch_dir, 0700);
        atexit(fz_scratch_remove);
    }
    return fz_scratch_dir;
}

/* Path of a file of the repository: ROTOR_ROOT or the working directory (the repo root). */
static inline void fz_repo_path(char *out, size_t cap, const char *rel) {
    const char *root = getenv("ROTOR_ROOT");
    snprintf(out, cap, "%s%s%s", root ? root : "", root ? "/" : "", rel);
}

/* Reads a whole file; NULL on failure. */
static inline char *fz_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) { free(b); b = NULL; }
    fclose(f);
    if (b) { b[n] = 0; *len = (size_t)n; }
    return b;
}

/* 1 if s[0..n) is valid UTF-8 (no surrogates, no overlongs, at most U+10FFFF). */
static inline int fz_utf8_valid(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) { i++; continue; }
        int k;
        uint32_t cp, min;
        if (c >= 0xC2 && c <= 0xDF) { k = 1; cp = c & 0x1F; min = 0x80; }
        else if (c >= 0xE0 && c <= 0xEF) { k = 2; cp = c & 0x0F; min = 0x800; }
        else if (c >= 0xF0 && c <= 0xF4) { k = 3; cp = c & 0x07; min = 0x10000; }
        else return 0;
        if (n - i <= (size_t)k) return 0;
        for (int j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80) return 0;
            cp = cp << 6 | (s[i + j] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        i += (size_t)k + 1;
    }
    return 1;
}

#endif
