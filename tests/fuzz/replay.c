/* replay.c: runs saved inputs through the fuzz targets without libFuzzer, for the regression
 * test (tests/fuzz_regress.sh) and for looking at a finding under a debugger or sanitizer.
 *   fuzz_replay TARGET FILE_OR_FOLDER...
 * Every fuzz target is compiled into this program with its entry points renamed
 * (TARGET_one, TARGET_init; see tests/fuzz.mk). Each input is named on stderr before it runs,
 * so a crash names the input. Ends with "TARGET: N inputs" on stdout. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define TARGETS(X) X(fuzz_rotor_file) X(fuzz_safetensors) X(fuzz_gguf) X(fuzz_json) \
    X(fuzz_tokenizer_json) X(fuzz_tokenize) X(fuzz_inflate) X(fuzz_chat) X(fuzz_chunk)

#define DECL(t) int t##_one(const uint8_t *, size_t); __attribute__((weak)) int t##_init(int *, char ***);
TARGETS(DECL)

typedef struct {
    const char *name;
    int (*one)(const uint8_t *, size_t);
    int (*init)(int *, char ***);
} target;

#define ENTRY(t) {#t, t##_one, t##_init},
static const target targets[] = {TARGETS(ENTRY)};

static int run_file(const target *t, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "replay: cannot open %s\n", path); return -1; }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(n > 0 ? (size_t)n : 1);
    if (!b || (n > 0 && fread(b, 1, (size_t)n, f) != (size_t)n)) { fclose(f); free(b); return -1; }
    fclose(f);
    fprintf(stderr, "replay: %s %s\n", t->name, path);
    t->one(b, (size_t)n);
    free(b);
    return 1;
}

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int run_path(const target *t, const char *path) {
    struct stat st;
    if (stat(path, &st)) return 0; /* a missing folder holds no inputs */
    if (!S_ISDIR(st.st_mode)) return run_file(t, path);
    DIR *d = opendir(path);
    if (!d) return -1;
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **nn = realloc(names, cap * sizeof *nn);
            if (!nn) break;
            names = nn;
        }
        size_t l = strlen(path) + strlen(e->d_name) + 2;
        names[n] = malloc(l);
        if (!names[n]) break;
        snprintf(names[n++], l, "%s/%s", path, e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp);
    int count = 0;
    for (size_t i = 0; i < n; i++) {
        struct stat s2;
        if (!stat(names[i], &s2) && S_ISREG(s2.st_mode)) {
            int r = run_file(t, names[i]);
            if (r < 0) count = -1000000;
            else count += r;
        }
        free(names[i]);
    }
    free(names);
    return count;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: fuzz_replay TARGET FILE_OR_FOLDER...\n");
        return 2;
    }
    const target *t = NULL;
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++)
        if (!strcmp(targets[i].name, argv[1])) t = &targets[i];
    if (!t) { fprintf(stderr, "replay: unknown target %s\n", argv[1]); return 2; }
    if (t->init) t->init(&argc, &argv);
    int total = 0, bad = 0;
    for (int i = 2; i < argc; i++) {
        int r = run_path(t, argv[i]);
        if (r < 0) bad = 1;
        else total += r;
    }
    printf("%s: %d inputs\n", t->name, total);
    return bad;
}
