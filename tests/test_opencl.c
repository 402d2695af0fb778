/* test_opencl.c: what is particular to the OpenCL backend, beyond the op-by-op comparison of
 * test_backend_ops.c: device listing and selection errors, the on-disk program cache (written,
 * reused, rebuilt when corrupt), the fused launches (RoPE q + RoPE k + KV store, GLU + RMSNORM)
 * and the sequences that must not fuse, and the shapes that take the other kernel paths (tiled
 * ternary GEMM for large batches, attention split over the ring for decode, the q8r LM head),
 * batches recorded into a command buffer and replayed (cl_khr_command_buffer), and buffers
 * carved from reserved blocks.
 * Every result is compared with the CPU backend, the reference. Skips without an OpenCL device.
 */
#include "../backends/backend.h"
#include "../models/format.h"
#include "test.h"

#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifdef RTR_HAVE_OPENCL
#include "../backends/opencl_impl.h"

/* ---- a buffer on both backends ---- */
typedef struct {
    rtr_buf *b[2]; /* [0] cpu, [1] opencl */
    void *host; /* kept alive: the CPU backend aliases weight data */
    size_t n;
} twin;

static rtr_backend *be[2];
static uint64_t rng = 0x2545f4914f6cdd1dull;

static uint32_t rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}
static float frand(float lo, float hi) { return lo + (hi - lo) * (float)(rnd() & 0xffffff) / 16777216.0f; }

static twin *tw_new(size_t n, const void *host, int flags) {
    twin *t = calloc(1, sizeof *t);
    t->n = n;
    if (host) {
        t->host = malloc(n);
        memcpy(t->host, host, n);
    }
    for (int i = 0; i < 2; i++) {
        rtr_err e = {0};
        t->b[i] = be[i]->ops->buf_new(be[i], n, t->host, flags, &e);
        if (!t->b[i]) {
            fprintf(stderr, "buf_new(%zu): %s\n", n, e.msg);
            exit(1);
        }
    }
    return t;
}

static twin *tw_rand(size_t nf, float lo, float hi) {
    float *x = malloc(nf * 4);
    for (size_t i = 0; i < nf; i++) x[i] = frand(lo, hi);
    twin *t = tw_new(nf * 4, x, 0);
    free(x);
    return t;
}

static void tw_free(twin *t) {
    for (int i = 0; i < 2; i++) be[i]->ops->buf_free(be[i], t->b[i]);
    free(t->host);
    free(t);
}

static rtr_ref T(twin *t, size_t off) {
    rtr_ref r = {(rtr_buf *)t, off};
    return r;
}

static rtr_op side(const rtr_op *o, int i) {
    rtr_op r = *o;
    rtr_ref *refs[] = {&r.dst, &r.dst2, &r.dst3, &r.a, &r.b, &r.c, &r.d, &r.e};
    for (size_t j = 0; j < sizeof refs / sizeof refs[0]; j++)
        if (refs[j]->buf) refs[j]->buf = ((twin *)refs[j]->buf)->b[i];
    if (o->kind == RTR_OP_MATMUL_T2 || o->kind == RTR_OP_MATMUL_F)
        for (int m = 0; m < 3; m++) {
            if (r.p.mm.w[m].buf) r.p.mm.w[m].buf = ((twin *)r.p.mm.w[m].buf)->b[i];
            if (o->kind == RTR_OP_MATMUL_T2 && r.p.mm.out[m].buf)
                r.p.mm.out[m].buf = ((twin *)r.p.mm.out[m].buf)->b[i];
        }
    return r;
}

/* One batch of ops on both sides. With peek set, twin *peek is read back on the OpenCL side
 * after op peek_after, inside the batch (it must see every op before it). */
static int run(const rtr_op *ops, int n, const char *what, twin *peek, int peek_after, void *peek_out) {
    for (int i = 0; i < 2; i++) {
        rtr_err e = {0};
        int rc = be[i]->ops->begin(be[i], &e);
        for (int j = 0; j < n && !rc; j++) {
            rtr_op o = side(&ops[j], i);
            rc = be[i]->ops->run(be[i], &o, &e);
            if (!rc && i == 1 && peek && j == peek_after)
                rc = be[1]->ops->buf_read(be[1], peek->b[1], 0, peek_out, peek->n, &e);
        }
        rtr_err e2;
        int rc2 = be[i]->ops->end(be[i], rc ? &e2 : &e);
        if (rc || rc2) {
            CHECK(0, "%s on %s: %s", what, i ? "opencl" : "cpu", e.msg);
            return -1;
        }
    }
    return 0;
}

/* max |opencl - cpu| <= abs_tol + rel * max |cpu| */
static void cmp(twin *t, float abs_tol, float rel, const char *what) {
    float *r = malloc(t->n + 4), *g = malloc(t->n + 4);
    rtr_err e = {0};
    if (be[0]->ops->buf_read(be[0], t->b[0], 0, r, t->n, &e) ||
        be[1]->ops->buf_read(be[1], t->b[1], 0, g, t->n, &e)) {
        CHECK(0, "%s: read: %s", what, e.msg);
        free(r);
        free(g);
        return;
    }
    size_t n = t->n / 4, at = 0;
    double scale = 0, worst = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(r[i]));
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)g[i] - r[i]);
        if (!(d <= worst)) {
            worst = d;
            at = i;
        }
    }
    CHECK(worst <= abs_tol + rel * scale, "%s: element %zu is %.8g, cpu %.8g (max diff %.3g, scale %.3g)",
          what, at, g[at], r[at], worst, scale);
    free(r);
    free(g);
}

static void cmp_bytes(twin *t, const char *what) {
    uint8_t *r = malloc(t->n), *g = malloc(t->n);
    rtr_err e = {0};
    be[0]->ops->buf_read(be[0], t->b[0], 0, r, t->n, &e);
    be[1]->ops->buf_read(be[1], t->b[1], 0, g, t->n, &e);
    size_t bad = 0;
    for (size_t i = 0; i < t->n; i++) bad += r[i] != g[i];
    CHECK(!bad, "%s: %zu of %zu bytes differ", what, bad, t->n);
    free(r);
    free(g);
}

/* int8 codes: off by one allowed where a value sat on a rounding edge */
static void cmp_codes(twin *t, size_t allowed, const char *what) {
    int8_t *r = malloc(t->n), *g = malloc(t->n);
    rtr_err e = {0};
    be[0]->ops->buf_read(be[0], t->b[0], 0, r, t->n, &e);
    be[1]->ops->buf_read(be[1], t->b[1], 0, g, t->n, &e);
    size_t off1 = 0, big = 0;
    for (size_t i = 0; i < t->n; i++) {
        int d = abs(r[i] - g[i]);
        off1 += d == 1;
        big += d > 1;
    }
    CHECK(!big && off1 <= allowed, "%s: %zu codes off by one, %zu further", what, off1, big);
    free(r);
    free(g);
}

/* ---- device and program cache ---- */

static void t_devices(void) {
    char list[4096] = "";
    int n = rtr_opencl_list_devices(list, sizeof list);
    CHECK(n >= 1 && strstr(list, "0: "), "list_devices: %d devices, '%s'", n, list);
    rtr_backend_cfg cfg = {.device = 999};
    rtr_err e = {0};
    rtr_backend *b = NULL;
    CHECK(rtr_opencl_backend_create(&b, &cfg, &e) == RTR_EBACKEND && strstr(e.msg, "999"), "device 999: %s",
          e.msg);
    CHECK(be[1]->desc[0], "backend has no description");
}

static int find_cache_file(const char *dir, char *path, size_t cap) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *de;
    int found = 0;
    while ((de = readdir(d)))
        if (!strncmp(de->d_name, "opencl-", 7) && strstr(de->d_name, ".bin") && !strstr(de->d_name, ".tmp")) {
            snprintf(path, cap, "%s/%s", dir, de->d_name);
            found = 1;
        }
    closedir(d);
    return found;
}

static int create_ok(const char *what) {
    rtr_backend_cfg cfg = {.device = -1};
    rtr_err e = {0};
    rtr_backend *b = NULL;
    int rc = rtr_opencl_backend_create(&b, &cfg, &e);
    CHECK(rc == 0, "%s: %s", what, e.msg);
    if (rc) return 0;
    /* the fresh backend works: one ADD */
    float x[4] = {1, 2, 3, 4}, y[4];
    rtr_buf *buf = b->ops->buf_new(b, 16, x, 0, &e);
    rtr_op op = {0};
    op.kind = RTR_OP_ADD;
    op.rows = 1;
    op.a = op.dst = (rtr_ref){buf, 0};
    op.p.add.n = 4;
    int ok = buf && !b->ops->begin(b, &e) && !b->ops->run(b, &op, &e) && !b->ops->end(b, &e) &&
             !b->ops->buf_read(b, buf, 0, y, 16, &e) && y[3] == 8;
    CHECK(ok, "%s: the backend does not compute: %s", what, e.msg);
    if (buf) b->ops->buf_free(b, buf);
    b->ops->destroy(b);
    return 1;
}

static void t_cache(void) {
    char dir[] = "/tmp/rotor-clcache.XXXXXX", sub[300], path[600];
    if (!mkdtemp(dir)) {
        SKIP("no temporary folder");
        return;
    }
    const char *old = getenv("XDG_CACHE_HOME");
    char *saved = old ? strdup(old) : NULL;
    setenv("XDG_CACHE_HOME", dir, 1);
    snprintf(sub, sizeof sub, "%s/rotor", dir);
    /* two entries of other builds: one unused for 40 days (removed when a new entry is
     * written), one recent (kept) */
    char stale[600], recent[600];
    snprintf(stale, sizeof stale, "%s/opencl-00000000000000aa.bin", sub);
    snprintf(recent, sizeof recent, "%s/opencl-00000000000000bb.bin", sub);
    mkdir(sub, 0700);
    FILE *fs = fopen(stale, "wb"), *fr = fopen(recent, "wb");
    if (fs) fclose(fs);
    if (fr) fclose(fr);
    struct timespec old_t[2] = {{time(NULL) - 40 * 86400, 0}, {time(NULL) - 40 * 86400, 0}};
    utimensat(AT_FDCWD, stale, old_t, 0);
    if (create_ok("first start (build)")) {
        CHECK(access(stale, F_OK) != 0, "a cache entry unused for 40 days was kept");
        CHECK(access(recent, F_OK) == 0, "a recent cache entry of another build was removed");
        unlink(recent);
        CHECK(find_cache_file(sub, path, sizeof path), "no program binary cached in %s", sub);
        struct stat st1, st2;
        int had = stat(path, &st1) == 0;
        if (create_ok("second start (cached)") && had) {
            CHECK(stat(path, &st2) == 0 && st2.st_ino == st1.st_ino && st2.st_size == st1.st_size,
                  "the cached binary was rewritten on a cached start");
            /* corrupt the middle of the binary: it must be rebuilt, not trusted */
            FILE *f = fopen(path, "r+b");
            if (f) {
                fseek(f, (long)(st1.st_size / 2), SEEK_SET);
                int ch = fgetc(f);
                fseek(f, (long)(st1.st_size / 2), SEEK_SET);
                fputc(ch ^ 0x5a, f);
                fclose(f);
            }
            CHECK(create_ok("start with a corrupt cache entry"), "corrupt cache entry not rebuilt");
            f = fopen(path, "rb");
            unsigned char magic[8] = {0};
            CHECK(f && fread(magic, 1, 8, f) == 8 && !memcmp(magic, "RTRCLBIN", 8),
                  "rebuilt cache entry is not valid");
            if (f) fclose(f);
            /* a truncated entry too */
            if (truncate(path, 20) == 0) create_ok("start with a truncated cache entry");
        }
    }
    if (saved) {
        setenv("XDG_CACHE_HOME", saved, 1);
        free(saved);
    } else
        unsetenv("XDG_CACHE_HOME");
    if (find_cache_file(sub, path, sizeof path)) unlink(path);
    char logp[600];
    snprintf(logp, sizeof logp, "%s/opencl-build.log", sub);
    unlink(logp);
    rmdir(sub);
    rmdir(dir);
}

/* ---- fused and unfused sequences ---- */

/* RoPE q, RoPE k and the KV store, as the model graph issues them; then attention reads it */
static void t_rope_kv(int rows, int nh, int nkv, int hd, int rd, int kvt, int variant) {
    int cap = 40, kvn = nkv * hd;
    size_t elt = kvt == RTR_T_F32 ? 4 : 2;
    twin *q = tw_rand((size_t)rows * nh * hd, -2, 2), *k = tw_rand((size_t)rows * kvn, -2, 2);
    twin *v = tw_rand((size_t)rows * kvn, -1, 1), *att = tw_new((size_t)rows * nh * hd * 4, NULL, 0);
    int32_t pos[16], slot[16], spos[40];
    for (int i = 0; i < cap; i++) spos[i] = -1;
    for (int r = 0; r < rows; r++) {
        pos[r] = 1000 + 37 * r;
        slot[r] = (3 + 5 * r) % cap;
        spos[slot[r]] = pos[r];
    }
    twin *P = tw_new((size_t)rows * 4, pos, 0), *S = tw_new((size_t)rows * 4, slot, 0),
         *SP = tw_new(sizeof spos, spos, 0);
    twin *KC = tw_new((size_t)cap * kvn * elt + 16, NULL, 0),
         *VC = tw_new((size_t)cap * kvn * elt + 16, NULL, 0);
    rtr_op o[4];
    memset(o, 0, sizeof o);
    int n = 0;
    if (variant != 1) { /* variant 1: the k RoPE alone before the store */
        o[n].kind = RTR_OP_ROPE;
        o[n].rows = rows;
        o[n].a = T(q, 0);
        o[n].b = T(P, 0);
        o[n].p.rope.n_head = nh;
        o[n].p.rope.head_dim = hd;
        o[n].p.rope.rot_dim = rd;
        o[n].p.rope.theta = 500000;
        n++;
    }
    o[n].kind = RTR_OP_ROPE;
    o[n].rows = rows;
    o[n].a = T(k, 0);
    o[n].b = T(P, 0);
    o[n].p.rope.n_head = nkv;
    o[n].p.rope.head_dim = hd;
    o[n].p.rope.rot_dim = rd;
    o[n].p.rope.theta = 500000;
    n++;
    if (variant != 2) { /* variant 2: no store after the RoPEs (they must still run) */
        o[n].kind = RTR_OP_KV_STORE;
        o[n].rows = rows;
        o[n].a = T(k, 0);
        o[n].b = T(v, 0);
        o[n].c = T(S, 0);
        o[n].dst = T(KC, elt * 2);
        o[n].dst2 = T(VC, elt * 2);
        o[n].p.kv.n = kvn;
        o[n].p.kv.type = kvt;
        n++;
    }
    o[n].kind = RTR_OP_ATTN;
    o[n].rows = rows;
    o[n].a = T(q, 0);
    o[n].b = T(KC, elt * 2);
    o[n].c = T(VC, elt * 2);
    o[n].d = T(SP, 0);
    o[n].e = T(P, 0);
    o[n].dst = T(att, 0);
    o[n].p.attn.n_head = nh;
    o[n].p.attn.n_kv = nkv;
    o[n].p.attn.head_dim = hd;
    o[n].p.attn.cap = cap;
    o[n].p.attn.n_sink = 4;
    o[n].p.attn.window = 100000;
    o[n].p.attn.scale = 1.0f / sqrtf((float)hd);
    o[n].p.attn.kv_type = kvt;
    n++;
    char what[128];
    snprintf(what, sizeof what, "rope+kv rows=%d heads=%d/%d hd=%d rot=%d %s variant %d", rows, nh, nkv, hd,
             rd, rtr_type_name(kvt), variant);
    if (!run(o, n, what, NULL, 0, NULL)) {
        cmp(q, 0, 2e-6f, what);
        cmp(k, 0, 2e-6f, what);
        if (variant != 2) {
            if (kvt == RTR_T_F16) {
                cmp_bytes(VC, what);
            } else
                cmp(VC, 0, 0, what);
            cmp(KC, 0, 4e-3f, what);
        }
        cmp(att, 0, 2e-3f, what);
    }
    twin *all[] = {q, k, v, att, P, S, SP, KC, VC};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) tw_free(all[i]);
}

/* GLU then the quantizing RMSNORM of its output (fused), and the variants that must not fuse */
static void t_glu_norm(int rows, int n, int act, int variant) {
    int kp = (n + 127) / 128 * 128;
    twin *g = tw_rand((size_t)rows * n, -4, 4), *u = tw_rand((size_t)rows * n, -2, 2),
         *res = tw_rand((size_t)rows * n, -1, 1);
    float *wv = malloc((size_t)n * 4);
    for (int i = 0; i < n; i++) wv[i] = frand(0.2f, 1.5f);
    twin *w = tw_new((size_t)n * 4, wv, RTR_BUF_WEIGHT), *qa = tw_new((size_t)rows * kp, NULL, 0);
    twin *qs = tw_new((size_t)rows * 4, NULL, 0), *other = tw_rand((size_t)rows * n, -1, 1);
    free(wv);
    rtr_op o[3];
    memset(o, 0, sizeof o);
    o[0].kind = RTR_OP_GLU;
    o[0].rows = rows;
    o[0].a = T(g, 0);
    o[0].b = T(u, 0);
    o[0].dst = T(g, 0);
    o[0].p.glu.n = n;
    o[0].p.glu.act = act;
    o[1].kind = RTR_OP_RMSNORM;
    o[1].rows = rows;
    o[1].a = T(variant == 2 ? other : g, 0);
    o[1].c = T(w, 0);
    o[1].dst2 = T(qa, 0);
    o[1].dst3 = T(qs, 0);
    o[1].p.norm.n = n;
    o[1].p.norm.eps = 1e-5f;
    if (variant == 1) o[1].b = T(res, 0); /* a residual: not fused */
    int nops = variant == 3 ? 1 : 2; /* variant 3: the batch ends on the GLU */
    float *peek = malloc((size_t)rows * n * 4);
    char what[96];
    snprintf(what, sizeof what, "glu+norm rows=%d n=%d act=%d variant %d", rows, n, act, variant);
    /* variant 4: the GLU output is read back inside the batch, right after the GLU */
    if (!run(o, nops, what, variant == 4 ? g : NULL, 0, peek)) {
        cmp(g, 1e-6f, 1e-5f, what);
        if (variant == 2) cmp(other, 0, 0, what);
        if (nops == 2) {
            cmp_codes(qa, 2 + (size_t)rows * n / 500, what);
            cmp(qs, 0, 1e-5f, what);
        }
        if (variant == 4) {
            float *ref = malloc((size_t)rows * n * 4);
            rtr_err e;
            be[0]->ops->buf_read(be[0], g->b[0], 0, ref, g->n, &e);
            double d = 0;
            for (int i = 0; i < rows * n; i++) d = fmax(d, fabs(ref[i] - peek[i]));
            CHECK(d <= 1e-4, "%s: read inside the batch differs by %g", what, d);
            free(ref);
        }
    }
    free(peek);
    twin *all[] = {g, u, res, w, qa, qs, other};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) tw_free(all[i]);
}

/* one row: a quantizing RMSNORM, then the product of its output (fused into one launch), and
 * then with the product accumulating into the norm's own input (must not fuse) */
static void t_norm_t2(int k, int withw, int into_input) {
    int kp = (k + 127) / 128 * 128, ns[2] = {40, 24};
    size_t rb = rtr_t2_row_bytes((uint64_t)k);
    twin *x = tw_rand((size_t)k, -3, 3), *qa = tw_new((size_t)kp, NULL, 0), *qs = tw_new(4, NULL, 0);
    float *wv = malloc((size_t)k * 4);
    for (int i = 0; i < k; i++) wv[i] = frand(0.1f, 1.5f);
    twin *nw = tw_new((size_t)k * 4, wv, RTR_BUF_WEIGHT), *w[2], *o[2];
    free(wv);
    int8_t *row = malloc((size_t)k);
    rtr_op op[2];
    memset(op, 0, sizeof op);
    op[0].kind = RTR_OP_RMSNORM; op[0].rows = 1; op[0].a = T(x, 0); op[0].dst2 = T(qa, 0); op[0].dst3 = T(qs, 0);
    if (withw) op[0].c = T(nw, 0);
    op[0].p.norm.n = k; op[0].p.norm.eps = 1e-5f;
    op[1].kind = RTR_OP_MATMUL_T2; op[1].rows = 1; op[1].a = T(qa, 0); op[1].b = T(qs, 0);
    op[1].p.mm.n_mat = 2; op[1].p.mm.k = k; op[1].p.mm.accum = into_input;
    for (int m = 0; m < 2; m++) {
        int n = into_input && m == 0 ? k : ns[m];
        uint8_t *wb = malloc((size_t)n * rb);
        for (int r = 0; r < n; r++) {
            for (int j = 0; j < k; j++) row[j] = (int8_t)((int)(rnd() % 3) - 1);
            rtr_t2_pack_row(row, (uint64_t)k, wb + (size_t)r * rb);
        }
        w[m] = tw_new((size_t)n * rb, wb, RTR_BUF_WEIGHT);
        o[m] = tw_rand((size_t)n, -1, 1);
        free(wb);
        op[1].p.mm.w[m] = T(w[m], 0); op[1].p.mm.n[m] = n; op[1].p.mm.alpha[m] = 0.5f + m;
        op[1].p.mm.out[m] = T(into_input && m == 0 ? x : o[m], 0);
    }
    char what[96];
    snprintf(what, sizeof what, "norm+matmul_t2 k=%d weight=%d into input=%d", k, withw, into_input);
    if (!run(op, 2, what, NULL, 0, NULL)) {
        cmp_codes(qa, 2, what);
        cmp(qs, 0, 1e-6f, what);
        cmp(x, 0, 1e-4f, what);
        cmp(o[1], 0, 1e-4f, what);
        if (!into_input) cmp(o[0], 0, 1e-4f, what);
    }
    for (int m = 0; m < 2; m++) { tw_free(w[m]); tw_free(o[m]); }
    tw_free(x); tw_free(qa); tw_free(qs); tw_free(nw);
    free(row);
}

/* ---- command buffers ---- */

/* A decode-like batch (norm + product into the input, then norm + product of the result) run
 * again and again with new inputs: the second run is recorded, later ones replayed, and every
 * result must still match the CPU's; a read inside the batch, a freed buffer and a different
 * batch in between must each send it back to launch-by-launch in order. */
static void t_cmdbuf(void) {
    const cl_cmd *cmd = &((cl_backend *)be[1])->cmd;
    if (!cmd->on) {
        SKIP("command buffers: %s", rtr_env_flag("ROTOR_OPENCL_NOCMDBUF") ? "turned off (ROTOR_OPENCL_NOCMDBUF)"
                                                                         : "the device does not offer cl_khr_command_buffer");
        return;
    }
    enum { K = 384, N = 200 };
    size_t rb = rtr_t2_row_bytes(K);
    twin *x = tw_rand(K, -2, 2), *qa = tw_new(K, NULL, 0), *qs = tw_new(4, NULL, 0), *y = tw_new(N * 4, NULL, 0);
    int8_t row[K];
    uint8_t *wb = malloc((size_t)(K + N) * rb);
    for (int r = 0; r < K + N; r++) {
        for (int j = 0; j < K; j++) row[j] = (int8_t)((int)(rnd() % 3) - 1);
        rtr_t2_pack_row(row, K, wb + (size_t)r * rb);
    }
    twin *w = tw_new((size_t)(K + N) * rb, wb, RTR_BUF_WEIGHT);
    free(wb);
    rtr_op op[4];
    memset(op, 0, sizeof op);
    op[0].kind = RTR_OP_RMSNORM; op[0].rows = 1; op[0].a = T(x, 0); op[0].dst2 = T(qa, 0); op[0].dst3 = T(qs, 0);
    op[0].p.norm.n = K; op[0].p.norm.eps = 1e-5f;
    op[1].kind = RTR_OP_MATMUL_T2; op[1].rows = 1; op[1].a = T(qa, 0); op[1].b = T(qs, 0);
    op[1].p.mm.n_mat = 1; op[1].p.mm.k = K; op[1].p.mm.accum = 1; op[1].p.mm.w[0] = T(w, 0);
    op[1].p.mm.n[0] = K; op[1].p.mm.alpha[0] = 0.25f; op[1].p.mm.out[0] = T(x, 0);
    op[2] = op[0];
    op[3] = op[1];
    op[3].p.mm.accum = 0; op[3].p.mm.w[0] = T(w, (size_t)K * rb); op[3].p.mm.n[0] = N; op[3].p.mm.out[0] = T(y, 0);
    long rec0 = cmd->recorded, rep0 = cmd->replays;
    float xin[K], peek[K];
    for (int step = 0; step < 9; step++) {
        for (int j = 0; j < K; j++) xin[j] = frand(-2, 2);
        for (int i = 0; i < 2; i++) {
            rtr_err e = {0};
            CHECK(!be[i]->ops->buf_write(be[i], x->b[i], 0, xin, sizeof xin, &e), "write: %s", e.msg);
        }
        if (step == 5) { /* a buffer freed: the command buffer may name it */
            twin *t = tw_new(64, NULL, 0);
            tw_free(t);
        }
        char what[64];
        snprintf(what, sizeof what, "command buffer step %d", step);
        int rc = step == 4 ? run(op, 4, what, x, 1, peek) /* a read after op 1: spills */
                           : step == 7 ? run(op, 2, what, NULL, 0, NULL) /* another batch */
                                       : run(op, 4, what, NULL, 0, NULL);
        if (rc) break;
        cmp(x, 0, 1e-4f, what);
        if (step != 7) cmp(y, 0, 1e-4f, what);
        if (step == 1) CHECK(cmd->recorded == rec0 + 1 && cmd->replays == rep0, "step 1 recorded (%ld, %ld)", cmd->recorded - rec0, cmd->replays - rep0);
        if (step == 3) CHECK(cmd->replays == rep0 + 2, "steps 2 and 3 replayed (%ld)", cmd->replays - rep0);
        if (step == 5) CHECK(cmd->replays == rep0 + 2 && cmd->recorded == rec0 + 1, "nothing replayed after the read and the free");
        if (step == 6) CHECK(cmd->recorded == rec0 + 2, "recorded again after the free (%ld)", cmd->recorded - rec0);
        if (step == 8) CHECK(cmd->replays == rep0 + 2 && cmd->recorded == rec0 + 2, "a different batch between: not replayed");
    }
    tw_free(x); tw_free(qa); tw_free(qs); tw_free(y); tw_free(w);
}

/* ---- other kernel paths ---- */

static void t_gemm(int rows, int k, int n0, int n1, int accum) {
    int kp = (k + 127) / 128 * 128, ns[2] = {n0, n1};
    size_t rb = rtr_t2_row_bytes((uint64_t)k);
    int8_t *x = calloc((size_t)rows * kp, 1), *row = malloc((size_t)k);
    for (int t = 0; t < rows; t++)
        for (int j = 0; j < k; j++) x[(size_t)t * kp + j] = (int8_t)(rnd() & 0xff);
    twin *xa = tw_new((size_t)rows * kp, x, 0), *xs = tw_rand((size_t)rows, 0.001f, 0.05f), *w[2], *o[2];
    rtr_op op = {0};
    op.kind = RTR_OP_MATMUL_T2;
    op.rows = rows;
    op.a = T(xa, 0);
    op.b = T(xs, 0);
    op.p.mm.n_mat = 2;
    op.p.mm.k = k;
    op.p.mm.accum = accum;
    for (int m = 0; m < 2; m++) {
        uint8_t *wb = malloc((size_t)ns[m] * rb);
        for (int r = 0; r < ns[m]; r++) {
            for (int j = 0; j < k; j++) row[j] = (int8_t)((int)(rnd() % 3) - 1);
            rtr_t2_pack_row(row, (uint64_t)k, wb + (size_t)r * rb);
        }
        w[m] = tw_new((size_t)ns[m] * rb, wb, RTR_BUF_WEIGHT);
        o[m] = tw_rand((size_t)rows * ns[m], -1, 1);
        free(wb);
        op.p.mm.w[m] = T(w[m], 0);
        op.p.mm.out[m] = T(o[m], 0);
        op.p.mm.n[m] = ns[m];
        op.p.mm.alpha[m] = 0.75f + m;
    }
    char what[96];
    snprintf(what, sizeof what, "matmul_t2 rows=%d k=%d n=%d,%d accum=%d", rows, k, n0, n1, accum);
    if (!run(&op, 1, what, NULL, 0, NULL))
        for (int m = 0; m < 2; m++) cmp(o[m], 0, 1e-6f, what);
    for (int m = 0; m < 2; m++) {
        tw_free(w[m]);
        tw_free(o[m]);
    }
    tw_free(xa);
    tw_free(xs);
    free(x);
    free(row);
}

/* decode-like attention over a large ring that wrapped, with sinks and a window */
static void t_attn_ring(int rows, int nh, int nkv, int hd, int cap, int filled, int sink, int window,
                        int kvt) {
    size_t elt = kvt == RTR_T_F32 ? 4 : 2, cn = (size_t)cap * nkv * hd;
    twin *q = tw_rand((size_t)rows * nh * hd, -2, 2), *att = tw_new((size_t)rows * nh * hd * 4, NULL, 0);
    void *cache = malloc(cn * elt);
    for (size_t i = 0; i < cn; i++) {
        float v = frand(-2, 2);
        if (elt == 2)
            ((uint16_t *)cache)[i] = rtr_f32_to_f16(v);
        else
            ((float *)cache)[i] = v;
    }
    twin *KC = tw_new(cn * elt, cache, 0);
    for (size_t i = 0; i < cn; i++) {
        float v = frand(-1, 1);
        if (elt == 2)
            ((uint16_t *)cache)[i] = rtr_f32_to_f16(v);
        else
            ((float *)cache)[i] = v;
    }
    twin *VC = tw_new(cn * elt, cache, 0);
    free(cache);
    int32_t *spos = malloc((size_t)cap * 4), qpos[8];
    for (int s = 0; s < cap; s++) spos[s] = -1;
    int total = filled + rows; /* positions 0..total-1; sinks stay, the rest wraps */
    for (int p = 0; p < total; p++) {
        int s = p < sink ? p : sink + (p - sink) % (cap - sink);
        spos[s] = p;
    }
    for (int r = 0; r < rows; r++) qpos[r] = filled + r;
    twin *SP = tw_new((size_t)cap * 4, spos, 0), *QP = tw_new((size_t)rows * 4, qpos, 0);
    free(spos);
    rtr_op op = {0};
    op.kind = RTR_OP_ATTN;
    op.rows = rows;
    op.a = T(q, 0);
    op.b = T(KC, 0);
    op.c = T(VC, 0);
    op.d = T(SP, 0);
    op.e = T(QP, 0);
    op.dst = T(att, 0);
    op.p.attn.n_head = nh;
    op.p.attn.n_kv = nkv;
    op.p.attn.head_dim = hd;
    op.p.attn.cap = cap;
    op.p.attn.n_sink = sink;
    op.p.attn.window = window;
    op.p.attn.scale = 1.0f / sqrtf((float)hd);
    op.p.attn.kv_type = kvt;
    char what[128];
    snprintf(what, sizeof what, "attn rows=%d heads=%d/%d hd=%d cap=%d filled=%d %s", rows, nh, nkv, hd, cap,
             filled, rtr_type_name(kvt));
    if (!run(&op, 1, what, NULL, 0, NULL)) cmp(att, 0, 2e-5f, what);
    twin *all[] = {q, att, KC, VC, SP, QP};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) tw_free(all[i]);
}

static void t_head(int type, int rows, int n, int k) {
    size_t rb = type == RTR_T_Q8R ? rtr_q8r_row_bytes((uint64_t)k) : (size_t)k * (type == RTR_T_F32 ? 4 : 2);
    size_t wbytes = (size_t)n * rb + (type == RTR_T_Q8R ? (size_t)n * 4 : 0);
    uint8_t *w = calloc(wbytes, 1);
    for (int r = 0; r < n; r++)
        for (int j = 0; j < k; j++) {
            float v = frand(-1, 1);
            if (type == RTR_T_F16)
                ((uint16_t *)w)[(size_t)r * k + j] = rtr_f32_to_f16(v);
            else if (type == RTR_T_BF16)
                ((uint16_t *)w)[(size_t)r * k + j] = rtr_f32_to_bf16(v);
            else if (type == RTR_T_F32)
                ((float *)w)[(size_t)r * k + j] = v;
            else
                w[(size_t)r * rb + j] = (uint8_t)rnd();
        }
    if (type == RTR_T_Q8R)
        for (int r = 0; r < n; r++) {
            float s = frand(0.001f, 0.01f);
            memcpy(w + (size_t)n * rb + (size_t)r * 4, &s, 4);
        }
    twin *W = tw_new(wbytes, w, RTR_BUF_WEIGHT), *x = tw_rand((size_t)rows * k, -1, 1);
    twin *y = tw_new((size_t)rows * n * 4, NULL, RTR_BUF_HOST);
    free(w);
    rtr_op op = {0};
    op.kind = RTR_OP_MATMUL_F;
    op.rows = rows;
    op.a = T(x, 0);
    op.dst = T(y, 0);
    op.p.mf.type = type;
    op.p.mf.n = n;
    op.p.mf.k = k;
    op.p.mm.w[0] = T(W, 0);
    char what[96];
    snprintf(what, sizeof what, "matmul_f %s rows=%d n=%d k=%d", rtr_type_name(type), rows, n, k);
    /* q8r: both sides quantize x the same way and scale an exact int32 sum */
    if (!run(&op, 1, what, NULL, 0, NULL))
        cmp(y, 0, type == RTR_T_Q8R ? 1e-5f : 2e-5f * sqrtf((float)k), what);
    tw_free(W);
    tw_free(x);
    tw_free(y);
}

/* Blocks (reserve): buffers carved from a reserved block while it has room, then made one by
 * one; each keeps its own bytes (written and read back without overlap); a reservation past the
 * device's largest allocation, or of nothing, carves nothing. */
static void t_blocks(void) {
    cl_backend *b = (cl_backend *)be[1];
    rtr_backend *g = be[1];
    rtr_err e = {0};
    if (b->no_pool) {
        SKIP("blocks: ROTOR_OPENCL_NOPOOL is set");
        return;
    }
    g->ops->reserve(g, 1u << 20, 0);
    if (!b->res[0].blk) {
        SKIP("blocks: the device gave no block of 1 MB");
        return;
    }
    /* two buffers that fill the block but for 128 KB, then one of 192 KB */
    size_t room = b->res[0].size, n[3] = {room / 2 - (64u << 10), room / 2 - (64u << 10), 192u << 10};
    n[0] = n[0] / 256 * 256;
    n[1] = n[0];
    rtr_buf *x[3];
    cl_mem pool[3] = {0};
    size_t base[3] = {0};
    int carved[3];
    for (int i = 0; i < 3; i++) {
        x[i] = g->ops->buf_new(g, n[i], NULL, 0, &e);
        CHECK(x[i] != NULL, "blocks: buffer %d: %s", i, e.msg);
        if (!x[i]) return;
        carved[i] = cl_pool_of(b, x[i]->mem, &pool[i], &base[i]);
    }
    CHECK(carved[0] && carved[1] && pool[0] == pool[1] && base[1] >= base[0] + n[0] && base[1] % 256 == 0,
          "blocks: the first two buffers share a block at aligned, disjoint offsets (%d %d, %zu %zu)", carved[0],
          carved[1], base[0], base[1]);
    CHECK(!carved[2], "blocks: a buffer past the block's room is made on its own");
    unsigned char *w = malloc(n[0]), *r = malloc(n[0]);
    for (int i = 0; i < 3; i++) {
        for (size_t j = 0; j < n[i]; j++) w[j] = (unsigned char)(j * 7 + (size_t)i * 13);
        CHECK(!g->ops->buf_write(g, x[i], 0, w, n[i], &e), "blocks: write %d: %s", i, e.msg);
    }
    for (int i = 0; i < 3; i++) {
        for (size_t j = 0; j < n[i]; j++) w[j] = (unsigned char)(j * 7 + (size_t)i * 13);
        CHECK(!g->ops->buf_read(g, x[i], 0, r, n[i], &e) && !memcmp(w, r, n[i]), "blocks: buffer %d reads back", i);
    }
    for (int i = 0; i < 3; i++) g->ops->buf_free(g, x[i]);
    g->ops->reserve(g, (size_t)-1 / 2, 0); /* past any device's largest allocation */
    rtr_buf *y = g->ops->buf_new(g, 4096, NULL, 0, &e);
    cl_mem pl;
    size_t bs;
    CHECK(y && !cl_pool_of(b, y->mem, &pl, &bs), "blocks: an impossible reservation carves nothing");
    if (y) g->ops->buf_free(g, y);
    g->ops->reserve(g, 0, 0);
    free(w);
    free(r);
}

int main(void) {
    rtr_backend_cfg cfg = {.device = -1, .n_threads = 2};
    rtr_err e = {0};
    if (rtr_cpu_backend_create(&be[0], &cfg, &e)) {
        CHECK(0, "cpu backend: %s", e.msg);
        return test_done("opencl");
    }
    if (rtr_opencl_backend_create(&be[1], &cfg, &e)) {
        SKIP("%s", e.msg);
        be[0]->ops->destroy(be[0]);
        return test_done("opencl");
    }
    fprintf(stderr, "opencl: %s\n", be[1]->desc);
    t_devices();
    t_cache();
    for (int v = 0; v < 3; v++) {
        t_rope_kv(3, 8, 2, 32, 32, RTR_T_F16, v);
        t_rope_kv(1, 20, 5, 128, 128, RTR_T_F32, v);
    }
    t_rope_kv(2, 6, 3, 24, 16, RTR_T_F16, 0); /* partial rotation */
    /* one row, one KV head: the attention ring is split even on a two-core device */
    t_rope_kv(1, 4, 1, 64, 32, RTR_T_F16, 0);
    t_rope_kv(1, 3, 1, 128, 128, RTR_T_F32, 0);
    for (int v = 0; v < 5; v++) t_glu_norm(v == 0 ? 3 : 1, v == 1 ? 6912 : 700, v % 3, v);
    t_norm_t2(2560, 1, 0);
    t_norm_t2(6912, 0, 0);
    t_norm_t2(300, 1, 1);
    t_gemm(70, 384, 64, 130, 1);
    t_gemm(130, 2560, 200, 7, 0);
    t_gemm(513, 128, 65, 1, 0);
    t_attn_ring(1, 20, 5, 128, 4100, 3000, 4, 2000, RTR_T_F16);
    t_attn_ring(1, 8, 1, 64, 1000, 5000, 4, 996, RTR_T_F32);
    t_attn_ring(4, 4, 4, 48, 700, 650, 0, 300, RTR_T_F16);
    t_attn_ring(1, 6, 2, 256, 300, 10, 2, 300, RTR_T_F16);
    t_head(RTR_T_Q8R, 1, 3001, 2560);
    t_head(RTR_T_Q8R, 11, 300, 130);
    t_head(RTR_T_F16, 1, 5003, 2560);
    t_head(RTR_T_BF16, 2, 300, 200);
    t_cmdbuf();
    t_blocks();
    be[1]->ops->destroy(be[1]);
    be[0]->ops->destroy(be[0]);
    return test_done("opencl");
}

#else

int main(void) {
    SKIP("opencl backend not compiled in");
    return test_done("opencl");
}

#endif
