/* opencl_prog.c: the OpenCL backend's kernel program: built at start-up from the embedded
 * kernels/NAME.cl sources (cl_source.h) with the options this device takes, its binary cached on
 * disk under $XDG_CACHE_HOME/rotor or ~/.cache/rotor (keyed by device, driver and options; a
 * damaged or foreign cache file is rebuilt, never trusted), and the kernels and work-group sizes
 * taken from it. */
#include "opencl_impl.h"
#include "../models/format.h"

#include "cl_source.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CL_PROGRAM_MAGIC "RTRCLBIN"

/* ---- program cache ---- */

/* $XDG_CACHE_HOME/rotor or ~/.cache/rotor, created if missing; 0 if neither is known */
static int cache_dir(char *buf, size_t cap) {
    const char *x = getenv("XDG_CACHE_HOME"), *h = getenv("HOME");
    int w;
    if (x && x[0] == '/')
        w = snprintf(buf, cap, "%s/rotor", x);
    else if (h && h[0]) {
        w = snprintf(buf, cap, "%s/.cache", h);
        if (w > 0 && (size_t)w < cap) mkdir(buf, 0755);
        w = snprintf(buf, cap, "%s/.cache/rotor", h);
    } else
        return 0;
    if (w <= 0 || (size_t)w >= cap) return 0;
    mkdir(buf, 0755);
    return 1;
}

static uint64_t program_key(cl_backend *b, const char *opts) {
    char s[512];
    uint64_t h = rtr_hash64(rtr_cl_source, sizeof rtr_cl_source - 1, 0x726f746f72636cull);
    h = rtr_hash64(opts, strlen(opts), h);
    cl_device_info what[] = {CL_DEVICE_NAME, CL_DEVICE_VENDOR, CL_DRIVER_VERSION, CL_DEVICE_VERSION};
    for (size_t i = 0; i < sizeof what / sizeof what[0]; i++) {
        cl_dev_str(b->dev, what[i], s, sizeof s);
        h = rtr_hash64(s, strlen(s), h);
    }
    if (clGetPlatformInfo(b->plat, CL_PLATFORM_VERSION, sizeof s, s, NULL) == CL_SUCCESS) {
        s[sizeof s - 1] = 0;
        h = rtr_hash64(s, strlen(s), h);
    }
    return h;
}

/* Cache file: magic, key, size, hash of the binary, binary. Anything that does not check out
 * is ignored (and rebuilt). Returns a malloc'd binary or NULL. */
static unsigned char *cache_load(const char *path, uint64_t key, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    unsigned char hdr[32], *bin = NULL;
    uint64_t k, n, h;
    if (fread(hdr, 1, 32, f) == 32 && !memcmp(hdr, CL_PROGRAM_MAGIC, 8)) {
        memcpy(&k, hdr + 8, 8);
        memcpy(&n, hdr + 16, 8);
        memcpy(&h, hdr + 24, 8);
        if (k == key && n > 0 && n < ((uint64_t)1 << 30) && (bin = malloc(n))) {
            if (fread(bin, 1, n, f) != n || rtr_hash64(bin, n, key) != h || fgetc(f) != EOF) {
                free(bin);
                bin = NULL;
            } else
                *len = n;
        }
    }
    fclose(f);
    return bin;
}

static void cache_store(const char *path, uint64_t key, const unsigned char *bin, size_t n) {
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid()) >= (int)sizeof tmp) return;
    FILE *f = fopen(tmp, "wb");
    if (!f) return;
    unsigned char hdr[32];
    uint64_t nn = n, h = rtr_hash64(bin, n, key);
    memcpy(hdr, CL_PROGRAM_MAGIC, 8);
    memcpy(hdr + 8, &key, 8);
    memcpy(hdr + 16, &nn, 8);
    memcpy(hdr + 24, &h, 8);
    int ok = fwrite(hdr, 1, 32, f) == 32 && fwrite(bin, 1, n, f) == n;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path)) unlink(tmp);
}

/* A new rotor, driver or device writes a new cache file beside the old ones: files not used for
 * CACHE_KEEP_DAYS are removed whenever a new one is written (a used file is touched on load). */
#define CACHE_KEEP_DAYS 30
static void cache_prune(const char *dir, const char *keep) {
    DIR *d = opendir(dir);
    if (!d) return;
    time_t now = time(NULL);
    struct dirent *e;
    char p[4200];
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (strncmp(e->d_name, "opencl-", 7) || n < 11 || strcmp(e->d_name + n - 4, ".bin")) continue;
        if (snprintf(p, sizeof p, "%s/%s", dir, e->d_name) >= (int)sizeof p || !strcmp(p, keep)) continue;
        struct stat st;
        if (!stat(p, &st) && now - st.st_mtime > (time_t)CACHE_KEEP_DAYS * 86400) unlink(p);
    }
    closedir(d);
}

static unsigned char *program_binary(cl_program p, cl_device_id dev, size_t *len) {
    cl_uint nd = 0;
    if (clGetProgramInfo(p, CL_PROGRAM_NUM_DEVICES, sizeof nd, &nd, NULL) != CL_SUCCESS || nd != 1)
        return NULL;
    cl_device_id d;
    size_t sz = 0;
    if (clGetProgramInfo(p, CL_PROGRAM_DEVICES, sizeof d, &d, NULL) != CL_SUCCESS || d != dev) return NULL;
    if (clGetProgramInfo(p, CL_PROGRAM_BINARY_SIZES, sizeof sz, &sz, NULL) != CL_SUCCESS || !sz) return NULL;
    unsigned char *bin = malloc(sz);
    if (!bin) return NULL;
    if (clGetProgramInfo(p, CL_PROGRAM_BINARIES, sizeof bin, &bin, NULL) != CL_SUCCESS) {
        free(bin);
        return NULL;
    }
    *len = sz;
    return bin;
}

/* The build log's first non-empty line, and (verbose) the whole log in the cache folder. */
static int build_error(cl_backend *b, cl_program p, cl_int rc, int verbose, rtr_err *err) {
    size_t sz = 0;
    char first[160] = "", where[4300] = "";
    char *log = NULL;
    if (clGetProgramBuildInfo(p, b->dev, CL_PROGRAM_BUILD_LOG, 0, NULL, &sz) == CL_SUCCESS && sz &&
        (log = malloc(sz + 1)) &&
        clGetProgramBuildInfo(p, b->dev, CL_PROGRAM_BUILD_LOG, sz, log, NULL) == CL_SUCCESS) {
        log[sz] = 0;
        const char *s = log;
        while (*s == '\n' || *s == '\r' || *s == ' ') s++;
        size_t l = strcspn(s, "\r\n");
        if (l >= sizeof first) l = sizeof first - 1;
        memcpy(first, s, l);
        first[l] = 0;
        char dir[4096], path[4200];
        if (verbose && cache_dir(dir, sizeof dir) &&
            snprintf(path, sizeof path, "%s/opencl-build.log", dir) < (int)sizeof path) {
            FILE *f = fopen(path, "w");
            if (f) {
                int ok = fputs(log, f) >= 0;
                if ((fclose(f) == 0) && ok) snprintf(where, sizeof where, "%s", path);
            }
        }
    }
    free(log);
    if (where[0])
        return rtr_seterr(err, RTR_EBACKEND, "opencl: kernel build failed (log: %s): %s", where,
                          first[0] ? first : "no build log");
    return rtr_seterr(err, RTR_EBACKEND, "opencl: kernel build failed (%s): %s", cl_errname(rc),
                      first[0] ? first : "no build log");
}

static int build_from_source(cl_backend *b, const char *opts, cl_program *out, int verbose, rtr_err *err) {
    const char *src = rtr_cl_source;
    size_t len = sizeof rtr_cl_source - 1;
    cl_int rc;
    cl_program p = clCreateProgramWithSource(b->ctx, 1, &src, &len, &rc);
    if (rc != CL_SUCCESS) return cl_fail(err, "clCreateProgramWithSource", rc);
    rc = clBuildProgram(p, 1, &b->dev, opts, NULL, NULL);
    if (rc != CL_SUCCESS) {
        int r = build_error(b, p, rc, verbose, err);
        clReleaseProgram(p);
        return r;
    }
    *out = p;
    return 0;
}

/* Loads the program binary from the cache or builds it from source (and caches it). */
static int load_program(cl_backend *b, const char *opts, int verbose, rtr_err *err) {
    char dir[4096], path[4200];
    int have_dir = cache_dir(dir, sizeof dir);
    uint64_t key = program_key(b, opts);
    if (have_dir && snprintf(path, sizeof path, "%s/opencl-%016llx.bin", dir, (unsigned long long)key) >=
                        (int)sizeof path)
        have_dir = 0;
    if (have_dir) {
        size_t n = 0;
        unsigned char *bin = cache_load(path, key, &n);
        if (bin) {
            const unsigned char *bp = bin;
            cl_int rc, st = CL_SUCCESS;
            cl_program p = clCreateProgramWithBinary(b->ctx, 1, &b->dev, &n, &bp, &st, &rc);
            free(bin);
            if (rc == CL_SUCCESS && st == CL_SUCCESS) {
                if (clBuildProgram(p, 1, &b->dev, opts, NULL, NULL) == CL_SUCCESS) {
                    b->prog = p;
                    utimensat(AT_FDCWD, path, NULL, 0); /* in use: kept by cache_prune */
                    return 0;
                }
            }
            if (rc == CL_SUCCESS) clReleaseProgram(p);
        }
    }
    int r = build_from_source(b, opts, &b->prog, verbose, err);
    if (r) return r;
    if (have_dir) {
        size_t n = 0;
        unsigned char *bin = program_binary(b->prog, b->dev, &n);
        if (bin) {
            cache_store(path, key, bin, n);
            cache_prune(dir, path);
        }
        free(bin);
    }
    return 0;
}

/* NVIDIA devices of compute capability 6.1 and up have dp4a, reachable through inline PTX. */
static int nvidia_dp4a(cl_device_id d) {
    if (!cl_has_ext(d, "cl_nv_device_attribute_query")) return 0;
    cl_uint major = 0, minor = 0;
    if (clGetDeviceInfo(d, 0x4000 /* CL_DEVICE_COMPUTE_CAPABILITY_MAJOR_NV */, sizeof major, &major, NULL) !=
            CL_SUCCESS ||
        clGetDeviceInfo(d, 0x4001 /* CL_DEVICE_COMPUTE_CAPABILITY_MINOR_NV */, sizeof minor, &minor, NULL) !=
            CL_SUCCESS)
        return 0;
    return major > 6 || (major == 6 && minor >= 1);
}

/* the largest work-group kernel k allows on the device, 0 where the driver does not say */
static size_t kernel_wg(const cl_backend *b, int k) {
    size_t w = 0;
    return clGetKernelWorkGroupInfo(b->k[k], b->dev, CL_KERNEL_WORK_GROUP_SIZE, sizeof w, &w, NULL) == CL_SUCCESS ? w
                                                                                                                  : 0;
}

/* the largest power of two up to most that kernel k allows (most where the driver does not say) */
static size_t pow2_wg(const cl_backend *b, int k, size_t most) {
    size_t kw = kernel_wg(b, k), w = most;
    if (kw)
        while (w > kw && w > 1) w >>= 1;
    return w;
}

int cl_build_kernels(cl_backend *b, int verbose, rtr_err *err) {
    char opts[256] = "";
    cl_device_fp_config fp = 0;
    clGetDeviceInfo(b->dev, CL_DEVICE_SINGLE_FP_CONFIG, sizeof fp, &fp, NULL);
    if (fp & CL_FP_CORRECTLY_ROUNDED_DIVIDE_SQRT) strcat(opts, "-cl-fp32-correctly-rounded-divide-sqrt ");
    int r = -1;
    /* inline PTX first where it should work; a failed build falls back to portable code */
    if (nvidia_dp4a(b->dev) && !getenv("ROTOR_OPENCL_NO_PTX")) {
        char o2[300];
        snprintf(o2, sizeof o2, "%s-DRTR_PTX_DP4A", opts);
        rtr_err e2;
        r = load_program(b, o2, 0, &e2);
    }
    if (r && (r = load_program(b, opts, verbose, err))) return r;
    for (int i = 0; i < K_COUNT; i++) {
        cl_int rc;
        b->k[i] = clCreateKernel(b->prog, cl_kernel_name(i), &rc);
        if (rc != CL_SUCCESS) return cl_fail(err, cl_kernel_name(i), rc);
    }
    b->norm_wg = pow2_wg(b, K_RMSNORM, 256);
    b->argmax_wg = pow2_wg(b, K_ARGMAX, 1024);
    b->argmax_split_wg = rtr_env_flag("ROTOR_OPENCL_ARGMAX1") ? 0 : pow2_wg(b, K_ARGMAX_SPLIT, 256);
    const char *as = getenv("ROTOR_OPENCL_ATTN_SPLITS");
    b->attn_splits = as ? atoi(as) : 0;
    b->no_attn4 = rtr_env_flag("ROTOR_OPENCL_NOATTN4");
    b->attn_grouped = rtr_env_flag("ROTOR_OPENCL_ATTN_GROUPED");
    b->attn_merge_launch = rtr_env_flag("ROTOR_OPENCL_MERGE_LAUNCH");
    b->no_fuse_rkv = rtr_env_flag("ROTOR_OPENCL_NORKV");
    b->no_vec_glu = rtr_env_flag("ROTOR_OPENCL_NOVECGLU");
    b->no_vec = rtr_env_flag("ROTOR_OPENCL_NOVEC");
    b->full_args = rtr_env_flag("ROTOR_OPENCL_FULLARGS");
    b->no_fvec = rtr_env_flag("ROTOR_OPENCL_NOFVEC");
    b->no_pin = rtr_env_flag("ROTOR_OPENCL_NOPIN");
    b->no_attn_dec = rtr_env_flag("ROTOR_OPENCL_NOATTNDEC");
    b->no_pool = rtr_env_flag("ROTOR_OPENCL_NOPOOL");
    b->pool_weights = rtr_env_flag("ROTOR_OPENCL_POOL");
    b->no_pool_launch = rtr_env_flag("ROTOR_OPENCL_NOPOOLARGS");
    /* the first flush early, so that the device starts while the host enqueues the rest */
    b->flush_first = 4;
    b->flush_every = 32;
    const char *fl = getenv("ROTOR_OPENCL_FLUSH");
    int f1, f2;
    if (fl && sscanf(fl, "%d,%d", &f1, &f2) == 2 && f1 > 0 && f2 > 0) {
        b->flush_first = f1;
        b->flush_every = f2;
    }
    /* the fixed-size kernels need their work-group sizes: the one-token product has an older
     * fallback (matmul_t2_gemv after the norm), attn_dec attn1 and the block launches the
     * buffer-by-buffer ones (both also where the driver does not say); for the rest it is an
     * error */
    for (int k = K_T2_VEC; k <= K_T2_VEC_G2; k++) {
        size_t w = kernel_wg(b, k);
        if (w && w < 256) b->no_vec = 1;
    }
    if (kernel_wg(b, K_ATTN_DEC) < 256) b->no_attn_dec = 1;
    static const int pk[4] = {K_T2_VEC_P, K_T2_VEC_S_P, K_T2_VEC_G_P, K_ATTN_DEC_P};
    for (int i = 0; i < 4; i++)
        if (kernel_wg(b, pk[i]) < 256) b->no_pool_launch = 1;
    static const struct {
        int k;
        size_t need;
    } fixed[] = {{K_GEMV_T2, 64}, {K_GEMM_T2, 64}, {K_MATMUL_F, 256}, {K_MATMUL_F_VEC, 256}, {K_ATTN, 128},
                 {K_ATTN4, 128},   {K_ATTN4S, 128},  {K_ATTN1, 128},    {K_ATTN1S, 128}};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        size_t w = kernel_wg(b, fixed[i].k);
        if (w && w < fixed[i].need)
            return rtr_seterr(err, RTR_EBACKEND, "opencl: kernel %s needs work-groups of %zu, the device allows %zu",
                              cl_kernel_name(fixed[i].k), fixed[i].need, w);
    }
    return 0;
}
