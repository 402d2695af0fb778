/* test_backend_ops.c: every op of backends/backend.h on every compiled-in backend other than
 * "cpu", against the CPU backend (the reference), with random inputs of awkward sizes: rows 1,
 * 7 and more than a matmul chunk, k not a multiple of 128, odd head counts, GQA ratios 1 to 4,
 * a ring that wrapped, sinks and a window. Ternary and q8 products must match exactly (both
 * sides scale the exact int32 sum the same way); float ops within the tolerance each check
 * names. Also: buffer transfers at odd offsets, a multi-op batch replayed with new inputs, bad
 * ops rejected with an error, and the CPU backend's own one-row attention over long rings (its
 * split path) against float64, which runs with or without a GPU backend.
 * A backend whose create() fails (no device) is a skip with the reason. ROTOR_TEST_BACKEND=name
 * limits the run to one backend. The Vulkan backend runs twice: as the device allows, and with
 * ROTOR_VK_PORTABLE=1 (core Vulkan 1.1 shaders and staged transfers only). */
#include "../backends/backend.h"
#include "../models/format.h"
#include "test.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    rtr_buf *b[2]; /* [0] cpu, [1] backend under test */
    void *host;    /* the data both were made from (the CPU aliases weights) */
    size_t n;
} tbuf;

typedef struct {
    rtr_backend *be[2];
    const char *name;
    uint64_t rng;
    int broken;
} ctx;

/* ---- helpers ---- */

static uint32_t rnd(ctx *c) {
    c->rng ^= c->rng << 13;
    c->rng ^= c->rng >> 7;
    c->rng ^= c->rng << 17;
    return (uint32_t)(c->rng >> 16);
}
static float frand(ctx *c, float lo, float hi) { return lo + (hi - lo) * (float)(rnd(c) & 0xffffff) / 16777216.0f; }

static tbuf *tb_new(ctx *c, size_t n, const void *host, int flags) {
    tbuf *t = calloc(1, sizeof *t);
    t->n = n;
    if (host) {
        t->host = malloc(n ? n : 1);
        memcpy(t->host, host, n);
    }
    for (int i = 0; i < 2; i++) {
        rtr_err e = {0};
        t->b[i] = c->be[i]->ops->buf_new(c->be[i], n, t->host, flags, &e);
        if (!t->b[i]) {
            CHECK(0, "%s: buf_new(%zu): %s", c->name, n, e.msg);
            c->broken = 1;
        }
    }
    return t;
}

static void tb_free(ctx *c, tbuf *t) {
    if (!t) return;
    for (int i = 0; i < 2; i++)
        if (t->b[i]) c->be[i]->ops->buf_free(c->be[i], t->b[i]);
    free(t->host);
    free(t);
}

static rtr_ref TR(tbuf *t, size_t off) { rtr_ref r = {(rtr_buf *)t, off}; return r; }

/* The op with its tbuf references replaced by side i's buffers. */
static rtr_op xlate(const rtr_op *o, int i) {
    rtr_op r = *o;
    rtr_ref *refs[] = {&r.dst, &r.dst2, &r.dst3, &r.a, &r.b, &r.c, &r.d, &r.e};
    for (size_t j = 0; j < sizeof refs / sizeof refs[0]; j++)
        if (refs[j]->buf) refs[j]->buf = ((tbuf *)refs[j]->buf)->b[i];
    if (o->kind == RTR_OP_MATMUL_T2)
        for (int m = 0; m < o->p.mm.n_mat; m++) {
            r.p.mm.w[m].buf = ((tbuf *)o->p.mm.w[m].buf)->b[i];
            r.p.mm.out[m].buf = ((tbuf *)o->p.mm.out[m].buf)->b[i];
        }
    if (o->kind == RTR_OP_MATMUL_F) r.p.mm.w[0].buf = ((tbuf *)o->p.mm.w[0].buf)->b[i];
    return r;
}

/* Runs ops as one batch on both sides; returns 0 when both succeeded. */
static int run_ops(ctx *c, const rtr_op *ops, int n, const char *what) {
    if (c->broken) return -1;
    for (int i = 0; i < 2; i++) {
        rtr_backend *be = c->be[i];
        rtr_err e = {0};
        int rc = be->ops->begin(be, &e);
        for (int j = 0; j < n && !rc; j++) {
            rtr_op o = xlate(&ops[j], i);
            rc = be->ops->run(be, &o, &e);
        }
        if (!rc) rc = be->ops->end(be, &e);
        else {
            rtr_err e2;
            be->ops->end(be, &e2);
        }
        if (rc) {
            CHECK(0, "%s: %s on %s: %s", c->name, what, i ? c->name : "cpu", e.msg);
            return -1;
        }
    }
    return 0;
}

static int tb_read(ctx *c, tbuf *t, void *cpu, void *gpu) {
    rtr_err e = {0};
    if (c->be[0]->ops->buf_read(c->be[0], t->b[0], 0, cpu, t->n, &e) ||
        c->be[1]->ops->buf_read(c->be[1], t->b[1], 0, gpu, t->n, &e)) {
        CHECK(0, "%s: buf_read: %s", c->name, e.msg);
        return -1;
    }
    return 0;
}

/* max |g - r| / (abs + rel * scale) <= 1 passes; scale = max |r| over the buffer, or |r| of
 * the element itself with elementwise */
static void cmp_f32x(ctx *c, tbuf *t, float abs_tol, float rel, int elementwise, const char *what) {
    size_t n = t->n / 4;
    float *r = malloc(t->n + 4), *g = malloc(t->n + 4);
    if (tb_read(c, t, r, g)) { free(r); free(g); return; }
    float scale = 0;
    for (size_t i = 0; i < n; i++) if (fabsf(r[i]) > scale) scale = fabsf(r[i]);
    double worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)g[i] - r[i]);
        if (isnan(g[i]) != isnan(r[i])) d = INFINITY;
        if (isnan(g[i]) && isnan(r[i])) d = 0;
        double q = d / (abs_tol + rel * (elementwise ? fabsf(r[i]) : scale) + 1e-30);
        if (q > worst || (isnan(q) && worst == worst)) { worst = q; at = i; }
    }
    CHECK(worst <= 1.0, "%s: %s: element %zu is %.9g, cpu %.9g (scale %.3g, %.2fx the tolerance)", c->name, what, at,
          g[at], r[at], scale, worst);
    free(r);
    free(g);
}

static void cmp_f32(ctx *c, tbuf *t, float abs_tol, float rel, const char *what) {
    cmp_f32x(c, t, abs_tol, rel, 0, what);
}

/* f16 buffers, decoded, with cmp_f32's tolerance rule */
static void cmp_f16(ctx *c, tbuf *t, float abs_tol, float rel, const char *what) {
    size_t n = t->n / 2;
    uint16_t *r = malloc(t->n + 2), *g = malloc(t->n + 2);
    if (tb_read(c, t, r, g)) { free(r); free(g); return; }
    float scale = 0;
    for (size_t i = 0; i < n; i++) if (fabsf(rtr_f16_to_f32(r[i])) > scale) scale = fabsf(rtr_f16_to_f32(r[i]));
    double worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        double q = fabs((double)rtr_f16_to_f32(g[i]) - rtr_f16_to_f32(r[i])) / (abs_tol + rel * scale + 1e-30);
        if (q > worst) { worst = q; at = i; }
    }
    CHECK(worst <= 1.0, "%s: %s: f16 element %zu is %.6g, cpu %.6g (%.2fx the tolerance)", c->name, what, at,
          rtr_f16_to_f32(g[at]), rtr_f16_to_f32(r[at]), worst);
    free(r);
    free(g);
}

static void cmp_bytes(ctx *c, tbuf *t, const char *what) {
    uint8_t *r = malloc(t->n + 1), *g = malloc(t->n + 1);
    if (tb_read(c, t, r, g)) { free(r); free(g); return; }
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < t->n; i++)
        if (r[i] != g[i] && !bad++) first = i;
    CHECK(!bad, "%s: %s: %zu of %zu bytes differ, first at %zu (%02x, cpu %02x)", c->name, what, bad, t->n, first,
          g[first], r[first]);
    free(r);
    free(g);
}

/* int8 rows: codes may differ by one where a float input sat on a rounding edge */
static void cmp_codes(ctx *c, tbuf *t, size_t allowed, const char *what) {
    int8_t *r = malloc(t->n + 1), *g = malloc(t->n + 1);
    if (tb_read(c, t, r, g)) { free(r); free(g); return; }
    size_t off1 = 0, big = 0;
    for (size_t i = 0; i < t->n; i++) {
        int d = abs(r[i] - g[i]);
        off1 += d == 1;
        big += d > 1;
    }
    CHECK(!big && off1 <= allowed, "%s: %s: %zu codes off by one (%zu allowed), %zu further off", c->name, what, off1,
          allowed, big);
    free(r);
    free(g);
}

static float *rand_f32(ctx *c, size_t n, float lo, float hi) {
    float *x = malloc(n * 4 + 4);
    for (size_t i = 0; i < n; i++) x[i] = frand(c, lo, hi);
    return x;
}

static uint16_t *rand_f16(ctx *c, size_t n, float lo, float hi) {
    uint16_t *x = malloc(n * 2 + 2);
    for (size_t i = 0; i < n; i++) x[i] = rtr_f32_to_f16(frand(c, lo, hi));
    return x;
}

/* ---- ops ---- */

static void t_embed(ctx *c) {
    static const int types[] = {RTR_T_F32, RTR_T_F16, RTR_T_BF16, RTR_T_Q8R};
    static const int dims[] = {1, 7, 130, 300};
    for (int ti = 0; ti < 4; ti++)
        for (int di = 0; di < 4; di++) {
            int t = types[ti], d = dims[di], nr = 37, rows = di % 2 ? 7 : 1;
            size_t rb = rtr_q8r_row_bytes((uint64_t)d), tbytes = t == RTR_T_F32 ? (size_t)nr * d * 4
                                                            : t == RTR_T_Q8R ? (size_t)nr * (rb + 4) : (size_t)nr * d * 2;
            uint8_t *tab = malloc(tbytes);
            if (t == RTR_T_F32) for (size_t i = 0; i < (size_t)nr * d; i++) ((float *)tab)[i] = frand(c, -2, 2);
            else if (t == RTR_T_F16) for (size_t i = 0; i < (size_t)nr * d; i++) ((uint16_t *)tab)[i] = rtr_f32_to_f16(frand(c, -2, 2));
            else if (t == RTR_T_BF16) for (size_t i = 0; i < (size_t)nr * d; i++) ((uint16_t *)tab)[i] = rtr_f32_to_bf16(frand(c, -2, 2));
            else {
                for (size_t i = 0; i < (size_t)nr * rb; i++) tab[i] = (uint8_t)rnd(c);
                for (int i = 0; i < nr; i++) { float s = frand(c, 0.001f, 0.1f); memcpy(tab + (size_t)nr * rb + i * 4, &s, 4); }
            }
            int32_t ids[7];
            for (int i = 0; i < rows; i++) ids[i] = (int32_t)(rnd(c) % (uint32_t)nr);
            tbuf *tb = tb_new(c, tbytes, tab, RTR_BUF_WEIGHT), *ib = tb_new(c, (size_t)rows * 4, ids, 0);
            tbuf *out = tb_new(c, (size_t)rows * d * 4, NULL, 0);
            rtr_op op = {0};
            op.kind = RTR_OP_EMBED; op.rows = rows; op.a = TR(tb, 0); op.b = TR(ib, 0); op.dst = TR(out, 0);
            op.p.emb.type = t; op.p.emb.n_rows = nr; op.p.emb.d = d; op.p.emb.scale = di == 2 ? 0.5f : 1.0f;
            char what[64];
            snprintf(what, sizeof what, "embed %s d=%d rows=%d", rtr_type_name(t), d, rows);
            if (!run_ops(c, &op, 1, what)) cmp_f32(c, out, 0, 0, what);
            tb_free(c, tb); tb_free(c, ib); tb_free(c, out);
            free(tab);
        }
}

static void t_norm(ctx *c) {
    static const int ns[] = {1, 7, 100, 129, 2560, 6912};
    for (int ni = 0; ni < 6; ni++)
        for (int v = 0; v < 4; v++) {
            int n = ns[ni], rows = (ni + v) % 2 ? 7 : 1, kp = (n + 127) / 128 * 128;
            int res = v & 1, w = v != 2, quant = v >= 2, dst = v != 3;
            size_t sz = (size_t)rows * n;
            float *x = rand_f32(c, sz, -3, 3), *r = rand_f32(c, sz, -1, 1), *wt = rand_f32(c, (size_t)n, 0.01f, 2);
            tbuf *a = tb_new(c, sz * 4, x, 0), *rb = tb_new(c, sz * 4, r, 0), *wb = tb_new(c, (size_t)n * 4, wt, RTR_BUF_WEIGHT);
            tbuf *d = tb_new(c, sz * 4, NULL, 0), *q = tb_new(c, (size_t)rows * kp, NULL, 0), *s = tb_new(c, (size_t)rows * 4, NULL, 0);
            rtr_op op = {0};
            op.kind = RTR_OP_RMSNORM; op.rows = rows; op.a = TR(a, 0);
            if (res) op.b = TR(rb, 0);
            if (w) op.c = TR(wb, 0);
            if (dst) op.dst = TR(d, 0);
            if (quant) { op.dst2 = TR(q, 0); op.dst3 = TR(s, 0); }
            op.p.norm.n = n; op.p.norm.eps = 1e-5f;
            char what[96];
            snprintf(what, sizeof what, "rmsnorm n=%d rows=%d res=%d w=%d quant=%d", n, rows, res, w, quant);
            if (!run_ops(c, &op, 1, what)) {
                if (res) cmp_f32(c, a, 0, 0, what);
                if (dst) cmp_f32(c, d, 0, 1e-5f, what);
                if (quant) { cmp_codes(c, q, 2 + (size_t)rows * n / 500, what); cmp_f32(c, s, 0, 1e-5f, what); }
            }
            tb_free(c, a); tb_free(c, rb); tb_free(c, wb); tb_free(c, d); tb_free(c, q); tb_free(c, s);
            free(x); free(r); free(wt);
        }
}

static void t_quant(ctx *c) {
    static const int ns[] = {1, 5, 128, 130, 640, 2560};
    for (int ni = 0; ni < 6; ni++) {
        int n = ns[ni], rows = ni % 2 ? 7 : 3, kp = (n + 127) / 128 * 128;
        size_t sz = (size_t)rows * n;
        float *x = rand_f32(c, sz, -5, 5);
        for (int i = 0; i < n; i++) x[i] = 0; /* row 0: all zero (absmax floor) */
        if (n >= 5) { /* row 1: exact ties on the rounding grid (s = 1) */
            float *r1 = x + n;
            for (int i = 0; i < n; i++) r1[i] = (float)((int)(rnd(c) % 200) - 100) + 0.5f;
            r1[0] = 127.0f;
        }
        tbuf *a = tb_new(c, sz * 4, x, 0), *q = tb_new(c, (size_t)rows * kp, NULL, 0), *s = tb_new(c, (size_t)rows * 4, NULL, 0);
        /* dirty the padding so that the zero fill is tested */
        uint8_t *junk = malloc((size_t)rows * kp);
        memset(junk, 0x5a, (size_t)rows * kp);
        for (int i = 0; i < 2; i++) c->be[i]->ops->buf_write(c->be[i], q->b[i], 0, junk, (size_t)rows * kp, NULL);
        free(junk);
        rtr_op op = {0};
        op.kind = RTR_OP_QUANT; op.rows = rows; op.a = TR(a, 0); op.dst2 = TR(q, 0); op.dst3 = TR(s, 0); op.p.norm.n = n;
        char what[64];
        snprintf(what, sizeof what, "quant n=%d rows=%d", n, rows);
        if (!run_ops(c, &op, 1, what)) { cmp_bytes(c, q, what); cmp_f32(c, s, 0, 0, what); }
        tb_free(c, a); tb_free(c, q); tb_free(c, s);
        free(x);
    }
}

static void t_matmul_t2(ctx *c) {
    static const int ks[] = {128, 384, 640, 130, 2560};
    static const int rowss[] = {1, 7, 9, 17, 70, 130};
    static const int shapes[][4] = {{1, 1, 0, 0}, {1, 7, 0, 0}, {3, 40, 7, 7}, {2, 33, 70, 0}, {3, 5, 1, 300}};
    int cases = 0;
    for (int ki = 0; ki < 5; ki++)
        for (int si = 0; si < 5; si++) {
            int k = ks[ki], rows = rowss[(ki + si) % 6], kp = (k + 127) / 128 * 128, accum = (ki + si) % 3 == 1;
            int nm = shapes[si][0];
            if (k == 2560 && si != 2) continue;
            size_t rb = rtr_t2_row_bytes((uint64_t)k);
            int8_t *x = calloc((size_t)rows * kp, 1);
            for (int t = 0; t < rows; t++)
                for (int j = 0; j < k; j++) x[(size_t)t * kp + j] = (int8_t)(rnd(c) & 0xff); /* -128 included */
            float *xs = rand_f32(c, (size_t)rows, 0.001f, 0.05f);
            tbuf *xa = tb_new(c, (size_t)rows * kp, x, 0), *xsb = tb_new(c, (size_t)rows * 4, xs, 0);
            tbuf *w[3] = {0}, *o[3] = {0};
            rtr_op op = {0};
            op.kind = RTR_OP_MATMUL_T2; op.rows = rows; op.a = TR(xa, 0); op.b = TR(xsb, 0);
            op.p.mm.n_mat = nm; op.p.mm.k = k; op.p.mm.accum = accum;
            for (int m = 0; m < nm; m++) {
                int n = shapes[si][1 + m];
                uint8_t *wb = malloc((size_t)n * rb);
                int8_t *row = malloc((size_t)k);
                for (int r = 0; r < n; r++) {
                    for (int j = 0; j < k; j++) row[j] = (int8_t)((int)(rnd(c) % 3) - 1);
                    rtr_t2_pack_row(row, (uint64_t)k, wb + (size_t)r * rb);
                }
                float *init = rand_f32(c, (size_t)rows * n, -1, 1);
                w[m] = tb_new(c, (size_t)n * rb, wb, RTR_BUF_WEIGHT);
                o[m] = tb_new(c, (size_t)rows * n * 4, init, 0);
                op.p.mm.w[m] = TR(w[m], 0); op.p.mm.out[m] = TR(o[m], 0); op.p.mm.n[m] = n;
                op.p.mm.alpha[m] = frand(c, 0.5f, 2.0f);
                free(wb); free(row); free(init);
            }
            char what[96];
            snprintf(what, sizeof what, "matmul_t2 k=%d rows=%d mats=%d accum=%d", k, rows, nm, accum);
            if (!run_ops(c, &op, 1, what))
                for (int m = 0; m < nm; m++) cmp_f32(c, o[m], 0, 1e-5f, what);
            for (int m = 0; m < nm; m++) { tb_free(c, w[m]); tb_free(c, o[m]); }
            tb_free(c, xa); tb_free(c, xsb);
            free(x); free(xs);
            cases++;
        }
}

/* RMSNORM (quantizing) then the product of its output, one token, as the graph runs them
 * (GPU backends may fuse the pair) */
static void t_norm_matmul(ctx *c) {
    /* 3072 and 3073: the largest row of the GPU's short-row fused norm and the first past it;
     * rows past it with one matrix (2B4T's down projection) and with three */
    static const int ks[] = {100, 640, 2560, 6912, 3072, 3073, 6912, 4000};
    for (int ki = 0; ki < (int)(sizeof ks / sizeof ks[0]); ki++) {
        int k = ks[ki], kp = (k + 127) / 128 * 128, nm = ki % 2 ? 3 : 1, ns[3] = {33, 7, 64}, withw = ki != 1;
        size_t rb = rtr_t2_row_bytes((uint64_t)k);
        float *x = rand_f32(c, (size_t)k, -3, 3), *w = rand_f32(c, (size_t)k, 0.1f, 1.5f);
        tbuf *xa = tb_new(c, (size_t)k * 4, x, 0), *wn = tb_new(c, (size_t)k * 4, w, RTR_BUF_WEIGHT);
        tbuf *qa = tb_new(c, (size_t)kp, NULL, 0), *qs = tb_new(c, 4, NULL, 0), *wt[3] = {0}, *o[3] = {0};
        rtr_op ops[2];
        memset(ops, 0, sizeof ops);
        ops[0].kind = RTR_OP_RMSNORM; ops[0].rows = 1; ops[0].a = TR(xa, 0); ops[0].dst2 = TR(qa, 0); ops[0].dst3 = TR(qs, 0);
        if (withw) ops[0].c = TR(wn, 0);
        ops[0].p.norm.n = k; ops[0].p.norm.eps = 1e-5f;
        ops[1].kind = RTR_OP_MATMUL_T2; ops[1].rows = 1; ops[1].a = TR(qa, 0); ops[1].b = TR(qs, 0);
        ops[1].p.mm.n_mat = nm; ops[1].p.mm.k = k; ops[1].p.mm.accum = ki == 2;
        int8_t *row = malloc((size_t)k);
        for (int m = 0; m < nm; m++) {
            uint8_t *wb = malloc((size_t)ns[m] * rb);
            for (int r = 0; r < ns[m]; r++) {
                for (int j = 0; j < k; j++) row[j] = (int8_t)((int)(rnd(c) % 3) - 1);
                rtr_t2_pack_row(row, (uint64_t)k, wb + (size_t)r * rb);
            }
            float *init = rand_f32(c, (size_t)ns[m], -1, 1);
            wt[m] = tb_new(c, (size_t)ns[m] * rb, wb, RTR_BUF_WEIGHT);
            o[m] = tb_new(c, (size_t)ns[m] * 4, init, 0);
            ops[1].p.mm.w[m] = TR(wt[m], 0); ops[1].p.mm.out[m] = TR(o[m], 0); ops[1].p.mm.n[m] = ns[m];
            ops[1].p.mm.alpha[m] = 1.25f;
            free(wb); free(init);
        }
        char what[96];
        snprintf(what, sizeof what, "rmsnorm+matmul_t2 k=%d mats=%d", k, nm);
        if (!run_ops(c, ops, 2, what)) {
            cmp_codes(c, qa, 2, what);
            cmp_f32(c, qs, 0, 1e-5f, what);
            for (int m = 0; m < nm; m++) cmp_f32(c, o[m], 0, 3e-3f, what);
        }
        for (int m = 0; m < nm; m++) { tb_free(c, wt[m]); tb_free(c, o[m]); }
        tb_free(c, xa); tb_free(c, wn); tb_free(c, qa); tb_free(c, qs);
        free(x); free(w); free(row);
    }
}

/* One token through the gate/up product and the GLU of its outputs, with and without the
 * quantizing RMSNORM in front, each activation (GPU backends may fuse all three) */
static void t_matmul_glu(ctx *c) {
    static const int cfg[][3] = {{640, 100, 0}, {2560, 523, 1}, {2560, 6912, 2}, {6912, 77, 0}};
    for (int ci = 0; ci < 4; ci++) {
        int k = cfg[ci][0], n = cfg[ci][1], act = cfg[ci][2], kp = (k + 127) / 128 * 128, withnorm = ci != 1;
        size_t rb = rtr_t2_row_bytes((uint64_t)k);
        float *x = rand_f32(c, (size_t)k, -3, 3), *w = rand_f32(c, (size_t)k, 0.1f, 1.5f);
        int8_t *q = malloc((size_t)kp), *row = malloc((size_t)k);
        for (int j = 0; j < kp; j++) q[j] = j < k ? (int8_t)((int)(rnd(c) % 255) - 127) : 0;
        float qsv = 0.02f;
        uint8_t *wb = malloc((size_t)2 * n * rb);
        for (int r = 0; r < 2 * n; r++) {
            for (int j = 0; j < k; j++) row[j] = (int8_t)((int)(rnd(c) % 3) - 1);
            rtr_t2_pack_row(row, (uint64_t)k, wb + (size_t)r * rb);
        }
        tbuf *xa = tb_new(c, (size_t)k * 4, x, 0), *wn = tb_new(c, (size_t)k * 4, w, RTR_BUF_WEIGHT);
        tbuf *qa = tb_new(c, (size_t)kp, withnorm ? NULL : q, 0), *qs = tb_new(c, 4, withnorm ? NULL : &qsv, 0);
        tbuf *wt = tb_new(c, (size_t)2 * n * rb, wb, RTR_BUF_WEIGHT);
        tbuf *g = tb_new(c, (size_t)n * 4, NULL, 0), *u = tb_new(c, (size_t)n * 4, NULL, 0);
        rtr_op ops[3];
        memset(ops, 0, sizeof ops);
        int no = 0;
        if (withnorm) {
            ops[no].kind = RTR_OP_RMSNORM; ops[no].rows = 1; ops[no].a = TR(xa, 0); ops[no].c = TR(wn, 0);
            ops[no].dst2 = TR(qa, 0); ops[no].dst3 = TR(qs, 0); ops[no].p.norm.n = k; ops[no].p.norm.eps = 1e-5f; no++;
        }
        ops[no].kind = RTR_OP_MATMUL_T2; ops[no].rows = 1; ops[no].a = TR(qa, 0); ops[no].b = TR(qs, 0);
        ops[no].p.mm.n_mat = 2; ops[no].p.mm.k = k;
        ops[no].p.mm.w[0] = TR(wt, 0); ops[no].p.mm.w[1] = TR(wt, (size_t)n * rb);
        ops[no].p.mm.out[0] = TR(g, 0); ops[no].p.mm.out[1] = TR(u, 0);
        ops[no].p.mm.n[0] = ops[no].p.mm.n[1] = n; ops[no].p.mm.alpha[0] = 0.8f; ops[no].p.mm.alpha[1] = 1.3f; no++;
        ops[no].kind = RTR_OP_GLU; ops[no].rows = 1; ops[no].a = TR(g, 0); ops[no].b = TR(u, 0); ops[no].dst = TR(g, 0);
        ops[no].p.glu.n = n; ops[no].p.glu.act = act; no++;
        char what[96];
        snprintf(what, sizeof what, "%smatmul_t2+glu k=%d n=%d act=%d", withnorm ? "rmsnorm+" : "", k, n, act);
        if (!run_ops(c, ops, no, what)) {
            if (withnorm) cmp_codes(c, qa, 2, what);
            /* relu2 squares the product: compare relative to the largest output */
            cmp_f32(c, g, 0, 3e-3f, what);
            cmp_f32(c, u, 0, 3e-3f, what);
        }
        tbuf *all[] = {xa, wn, qa, qs, wt, g, u};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) tb_free(c, all[i]);
        free(x); free(w); free(q); free(row); free(wb);
    }
}

static void t_matmul_f(ctx *c) {
    static const int types[] = {RTR_T_F32, RTR_T_F16, RTR_T_BF16, RTR_T_Q8R};
    static const int ks[] = {1, 7, 130, 640};
    static const int ns[] = {1, 7, 100, 37};
    static const int rowss[] = {1, 3, 9, 1};
    /* then one token of every type at 2B4T's k and at a k longer than a GPU's one-token kernel
     * takes in one run of loads (f32 1536, f16/bf16 3072, q8r 6144 values) */
    for (int ti = 0; ti < 4; ti++)
        for (int ki = 0; ki < 6; ki++) {
            int t = types[ti], k = ki < 4 ? ks[ki] : ki == 4 ? 2560 : 6400;
            int n = ki < 4 ? ns[(ki + ti) % 4] : 37, rows = ki < 4 ? rowss[(ki + 2 * ti) % 4] : 1;
            size_t kq = rtr_q8r_row_bytes((uint64_t)k), wbytes = t == RTR_T_F32 ? (size_t)n * k * 4
                                                          : t == RTR_T_Q8R ? (size_t)n * (kq + 4) : (size_t)n * k * 2;
            uint8_t *wt = calloc(wbytes, 1);
            double *mag = calloc((size_t)n, sizeof *mag);
            for (int r = 0; r < n; r++)
                for (int j = 0; j < k; j++) {
                    float v = frand(c, -1, 1);
                    size_t i = (size_t)r * k + j;
                    if (t == RTR_T_F32) ((float *)wt)[i] = v;
                    else if (t == RTR_T_F16) ((uint16_t *)wt)[i] = rtr_f32_to_f16(v);
                    else if (t == RTR_T_BF16) ((uint16_t *)wt)[i] = rtr_f32_to_bf16(v);
                    else wt[(size_t)r * kq + j] = (uint8_t)(rnd(c) & 0xff);
                }
            if (t == RTR_T_Q8R)
                for (int r = 0; r < n; r++) { float s = frand(c, 0.001f, 0.01f); memcpy(wt + (size_t)n * kq + r * 4, &s, 4); }
            float *x = rand_f32(c, (size_t)rows * k, -2, 2);
            tbuf *wb = tb_new(c, wbytes, wt, RTR_BUF_WEIGHT), *xa = tb_new(c, (size_t)rows * k * 4, x, 0);
            tbuf *out = tb_new(c, (size_t)rows * n * 4, NULL, 0);
            rtr_op op = {0};
            op.kind = RTR_OP_MATMUL_F; op.rows = rows; op.a = TR(xa, 0); op.dst = TR(out, 0);
            op.p.mf.type = t; op.p.mf.n = n; op.p.mf.k = k;
            op.p.mm.w[0] = TR(wb, 0);
            char what[96];
            snprintf(what, sizeof what, "matmul_f %s k=%d n=%d rows=%d", rtr_type_name(t), k, n, rows);
            /* float sums in another order: relative to the largest output, plus a term for
             * cancellation (sum of |w x| is at most 2k here; q8r: |scale w x| <= 0.01*128*2) */
            if (!run_ops(c, &op, 1, what))
                cmp_f32(c, out, (t == RTR_T_Q8R ? 2.6e-6f : 2e-6f) * (float)k, 1e-5f, what);
            tb_free(c, wb); tb_free(c, xa); tb_free(c, out);
            free(wt); free(mag); free(x);
        }
}

static void t_rope(ctx *c) {
    static const int cfg[][3] = {{1, 8, 8}, {3, 64, 64}, {5, 128, 128}, {2, 64, 32}, {20, 128, 128}};
    for (int ci = 0; ci < 5; ci++) {
        int nh = cfg[ci][0], hd = cfg[ci][1], rd = cfg[ci][2], rows = ci % 2 ? 7 : 1;
        size_t sz = (size_t)rows * nh * hd;
        float *x = rand_f32(c, sz, -2, 2);
        int32_t pos[7];
        for (int i = 0; i < rows; i++) pos[i] = i == 0 ? 0 : (int32_t)(rnd(c) % 5000);
        if (rows == 1 && ci == 4) pos[0] = 4095;
        tbuf *a = tb_new(c, sz * 4, x, 0), *p = tb_new(c, (size_t)rows * 4, pos, 0);
        rtr_op op = {0};
        op.kind = RTR_OP_ROPE; op.rows = rows; op.a = TR(a, 0); op.b = TR(p, 0);
        op.p.rope.n_head = nh; op.p.rope.head_dim = hd; op.p.rope.rot_dim = rd;
        op.p.rope.theta = ci % 2 ? 10000.0f : 500000.0f;
        char what[64];
        snprintf(what, sizeof what, "rope heads=%d hd=%d rot=%d rows=%d", nh, hd, rd, rows);
        if (!run_ops(c, &op, 1, what)) cmp_f32(c, a, 0, 2e-6f, what);
        tb_free(c, a); tb_free(c, p);
        free(x);
    }
}

/* ROPE of the keys, then their KV_STORE, as the graph runs them (GPU backends may fuse them) */
static void t_rope_kv(ctx *c) {
    static const int cfg[][4] = {{1, 40, 1, 0}, {5, 128, 7, 1}, {2, 64, 3, 0}, {3, 8, 2, 1}, {2, 6, 2, 0}};
    for (int ci = 0; ci < 5; ci++) {
        int nkv = cfg[ci][0], hd = cfg[ci][1], rows = cfg[ci][2], f32 = cfg[ci][3], n = nkv * hd, cap = 50;
        size_t es = f32 ? 4 : 2, sz = (size_t)rows * n;
        float *k = rand_f32(c, sz, -2, 2), *v = rand_f32(c, sz, -2, 2);
        int32_t pos[7], slot[7];
        for (int r = 0; r < rows; r++) { pos[r] = (int32_t)(rnd(c) % 3000); slot[r] = (r * 7 + ci) % cap; }
        tbuf *kb = tb_new(c, sz * 4, k, 0), *vb = tb_new(c, sz * 4, v, 0), *pb = tb_new(c, (size_t)rows * 4, pos, 0);
        tbuf *sb = tb_new(c, (size_t)rows * 4, slot, 0);
        tbuf *kc = tb_new(c, (size_t)cap * n * es, NULL, 0), *vc = tb_new(c, (size_t)cap * n * es, NULL, 0);
        rtr_op ops[2];
        memset(ops, 0, sizeof ops);
        ops[0].kind = RTR_OP_ROPE; ops[0].rows = rows; ops[0].a = TR(kb, 0); ops[0].b = TR(pb, 0);
        ops[0].p.rope.n_head = nkv; ops[0].p.rope.head_dim = hd; ops[0].p.rope.rot_dim = hd; ops[0].p.rope.theta = 500000;
        ops[1].kind = RTR_OP_KV_STORE; ops[1].rows = rows; ops[1].a = TR(kb, 0); ops[1].b = TR(vb, 0); ops[1].c = TR(sb, 0);
        ops[1].dst = TR(kc, 0); ops[1].dst2 = TR(vc, 0); ops[1].p.kv.n = n; ops[1].p.kv.type = f32 ? RTR_T_F32 : RTR_T_F16;
        char what[96];
        snprintf(what, sizeof what, "rope+kv_store %s kv heads=%d hd=%d rows=%d", f32 ? "f32" : "f16", nkv, hd, rows);
        if (!run_ops(c, ops, 2, what)) {
            cmp_f32(c, kb, 0, 2e-6f, what);
            if (f32) { cmp_f32(c, kc, 0, 2e-6f, what); cmp_bytes(c, vc, what); }
            else { cmp_f16(c, kc, 0, 1e-3f, what); cmp_bytes(c, vc, what); }
        }
        tbuf *all[] = {kb, vb, pb, sb, kc, vc};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) tb_free(c, all[i]);
        free(k); free(v);
    }
}

/* a ring of cap slots holding positions 0..filled-1 placed as a session would (sinks first,
 * the rest wrapping), empty slots -1 */
static void fill_ring(ctx *c, int32_t *spos, int cap, int filled, int sink) {
    for (int s = 0; s < cap; s++) spos[s] = -1;
    int ring = cap - sink;
    for (int p = 0; p < filled; p++) {
        int s = p < sink ? p : sink + (p - sink) % ring;
        spos[s] = p;
    }
    (void)c;
}

/* One KV_STORE of the batch's rows into the ring, then ATTN over it (f16 or f32 cache); with
 * hide, the query positions see nothing (zeros). */
static void kv_attn_case(ctx *c, int nh, int nkv, int hd, int cap, int filled, int sink, int window, int rows, int f32, int hide) {
    int kvn = nkv * hd, es = f32 ? 4 : 2;
    if (rows > filled) rows = filled;
    int32_t *spos = malloc((size_t)cap * 4);
    fill_ring(c, spos, cap, filled, sink);
    size_t cbytes = (size_t)cap * kvn * es;
    void *kc = f32 ? (void *)rand_f32(c, (size_t)cap * kvn, -1, 1) : (void *)rand_f16(c, (size_t)cap * kvn, -1, 1);
    void *vc = f32 ? (void *)rand_f32(c, (size_t)cap * kvn, -1, 1) : (void *)rand_f16(c, (size_t)cap * kvn, -1, 1);
    float *q = rand_f32(c, (size_t)rows * nh * hd, -1.5f, 1.5f);
    float *kn = rand_f32(c, (size_t)rows * kvn, -1, 1), *vn = rand_f32(c, (size_t)rows * kvn, -1, 1);
    int32_t qpos[70], slots[70];
    /* the newest rows: positions filled-rows .. filled-1, stored in their slots first */
    for (int r = 0; r < rows; r++) {
        int p = filled - rows + r;
        qpos[r] = p;
        slots[r] = p < sink ? p : sink + (p - sink) % (cap - sink);
    }
    if (hide) qpos[0] = -5;
    tbuf *K = tb_new(c, cbytes, kc, 0), *Vb = tb_new(c, cbytes, vc, 0), *sp = tb_new(c, (size_t)cap * 4, spos, 0);
    tbuf *qb = tb_new(c, (size_t)rows * nh * hd * 4, q, 0), *knb = tb_new(c, (size_t)rows * kvn * 4, kn, 0);
    tbuf *vnb = tb_new(c, (size_t)rows * kvn * 4, vn, 0), *qp = tb_new(c, (size_t)rows * 4, qpos, 0);
    tbuf *sl = tb_new(c, (size_t)rows * 4, slots, 0), *out = tb_new(c, (size_t)rows * nh * hd * 4, NULL, 0);
    rtr_op ops[2] = {{0}, {0}};
    ops[0].kind = RTR_OP_KV_STORE; ops[0].rows = rows; ops[0].a = TR(knb, 0); ops[0].b = TR(vnb, 0);
    ops[0].c = TR(sl, 0); ops[0].dst = TR(K, 0); ops[0].dst2 = TR(Vb, 0); ops[0].p.kv.n = kvn;
    ops[0].p.kv.type = f32 ? RTR_T_F32 : RTR_T_F16;
    ops[1].p.attn.kv_type = ops[0].p.kv.type;
    ops[1].kind = RTR_OP_ATTN; ops[1].rows = rows; ops[1].a = TR(qb, 0); ops[1].b = TR(K, 0); ops[1].c = TR(Vb, 0);
    ops[1].d = TR(sp, 0); ops[1].e = TR(qp, 0); ops[1].dst = TR(out, 0);
    ops[1].p.attn.n_head = nh; ops[1].p.attn.n_kv = nkv; ops[1].p.attn.head_dim = hd; ops[1].p.attn.cap = cap;
    ops[1].p.attn.n_sink = sink; ops[1].p.attn.window = window; ops[1].p.attn.scale = 1.0f / sqrtf((float)hd);
    char what[128];
    snprintf(what, sizeof what, "kv_store+attn %s heads=%d/%d hd=%d cap=%d filled=%d sink=%d window=%d rows=%d",
             f32 ? "f32" : "f16", nh, nkv, hd, cap, filled, sink, window, rows);
    if (!run_ops(c, ops, 2, what)) {
        cmp_bytes(c, K, what);
        cmp_bytes(c, Vb, what);
        /* batches of 17 rows or more may run on split f16 matrix inputs (backend.h) */
        if (rows >= 17) cmp_f32(c, out, 2e-5f, 2e-4f, what);
        else cmp_f32(c, out, 1e-6f, 2e-5f, what);
    }
    tbuf *all[] = {K, Vb, sp, qb, knb, vnb, qp, sl, out};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) tb_free(c, all[i]);
    free(spos); free(kc); free(vc); free(q); free(kn); free(vn);
}

static void t_kv_attn(ctx *c) {
    static const int cfg[][7] = {
        /* n_head, n_kv, hd, cap, filled, n_sink, window */
        {1, 1, 2, 5, 5, 0, 1000},   {3, 3, 6, 37, 20, 0, 1000}, {4, 2, 64, 300, 290, 4, 1000},
        {8, 2, 128, 200, 450, 4, 150}, {5, 5, 64, 129, 129, 2, 60}, {3, 1, 256, 40, 30, 0, 1000},
        {20, 5, 128, 520, 700, 4, 512}, {6, 3, 32, 64, 1, 0, 1000},
        {12, 2, 64, 100, 90, 2, 1000}, /* 6 query heads a KV head: GPU kernels for more than 4 */
    };
    /* prefill-sized batches: (shape, rows), f16 and f32 caches alternating */
    static const int big[][2] = {{6, 70}, {6, 40}, {2, 33}, {4, 24}, {3, 20}, {1, 17}};
    for (int ci = 0; ci < 17; ci++) {
        int f32 = ci >= 8 && (ci < 10 || ci % 2), cj = ci < 8 ? ci : ci < 10 ? ci - 6 : ci < 16 ? big[ci - 10][0] : 8;
        int rows = ci >= 10 && ci < 16 ? big[ci - 10][1] : ci % 3 ? 7 : 1;
        kv_attn_case(c, cfg[cj][0], cfg[cj][1], cfg[cj][2], cfg[cj][3], cfg[cj][4], cfg[cj][5], cfg[cj][6], rows, f32, ci == 7);
    }
}

/* One row (decode) over rings of up to 512 slots, the shapes GPU backends give a kernel of their
 * own (128-slot splits): one split, a ring that ends mid-split, several visible splits merged,
 * visible splits with invisible ones between them (sinks and a window), a wrapped ring, nothing
 * visible, on both cache types. (Run last, so that the cases before draw the same random data.) */
static void t_attn_decode(ctx *c) {
    static const int dec[][8] = {
        /* n_head, n_kv, hd, cap, filled, n_sink, window, f32 */
        {20, 5, 128, 256, 100, 0, 4096, 1}, {20, 5, 128, 256, 100, 0, 4096, 0}, {8, 2, 128, 256, 200, 0, 4096, 1},
        {8, 2, 128, 512, 460, 0, 4096, 0},  {4, 4, 64, 512, 600, 4, 100, 1},    {4, 1, 64, 512, 600, 4, 100, 0},
        {6, 2, 32, 100, 100, 0, 4096, 0},   {6, 2, 32, 384, 1000, 2, 300, 1},   {2, 1, 128, 128, 128, 0, 4096, 1},
        {3, 1, 128, 300, 260, 0, 4096, 0}, {2, 1, 256, 300, 280, 0, 4096, 0}, {3, 3, 256, 200, 150, 2, 90, 1},
    };
    for (int i = 0; i < (int)(sizeof dec / sizeof dec[0]); i++)
        kv_attn_case(c, dec[i][0], dec[i][1], dec[i][2], dec[i][3], dec[i][4], dec[i][5], dec[i][6], 1, dec[i][7], 0);
    kv_attn_case(c, 4, 2, 64, 256, 120, 0, 4096, 1, 1, 1);
}

static void t_glu_add(ctx *c) {
    static const int ns[] = {1, 7, 1000, 6912};
    for (int act = 0; act <= 3; act++)
        for (int ni = 0; ni < 4; ni++) {
            int n = ns[ni], rows = ni % 2 ? 3 : 1;
            size_t sz = (size_t)rows * n;
            float *g = rand_f32(c, sz, -8, 8), *u = rand_f32(c, sz, -2, 2);
            if (n >= 7) { g[0] = -100; g[1] = 100; g[2] = -90; g[3] = 0; }
            tbuf *a = tb_new(c, sz * 4, g, 0), *b = tb_new(c, sz * 4, u, 0), *d = tb_new(c, sz * 4, u, 0);
            rtr_op op = {0};
            op.rows = rows; op.a = TR(a, 0); op.dst = TR(d, 0);
            if (act == 3) { op.kind = RTR_OP_ADD; op.p.add.n = n; }
            else { op.kind = RTR_OP_GLU; op.b = TR(b, 0); op.p.glu.n = n; op.p.glu.act = act; }
            char what[64];
            snprintf(what, sizeof what, "%s n=%d rows=%d", act == 3 ? "add" : act == 0 ? "glu relu2" : act == 1 ? "glu silu" : "glu gelu_tanh", n, rows);
            if (!run_ops(c, &op, 1, what)) cmp_f32x(c, d, act == 3 ? 0 : 1e-6f, act == 3 ? 0 : 4e-6f, 1, what);
            tb_free(c, a); tb_free(c, b); tb_free(c, d);
            free(g); free(u);
        }
}

/* A small layer as the graph runs it, a prompt and then one-token steps with new ids and
 * positions written between the batches: the steps are the same op list (replayed by backends
 * that cache recordings). With an f16 or an f32 cache (kt); the rotated q and k, v and both
 * caches are compared too, since GPU backends fuse the RoPE and the KV store into the q/k/v
 * product. */
static void t_batch(ctx *c, int kt) {
    enum { D = 200, NH = 5, NKV = 1, HD = 40, KVN = NKV * HD, F = 300, V = 50, CAP = 64, MAXR = 9 };
    int kp = (D + 127) / 128 * 128, kpf = (F + 127) / 128 * 128;
    size_t rbd = rtr_t2_row_bytes(D), rbf = rtr_t2_row_bytes(F);
    uint16_t *emb = rand_f16(c, (size_t)V * D, -1, 1);
    float *nw = rand_f32(c, F, 0.5f, 1.5f);
    int8_t *row = malloc(F);
    uint8_t *wq = malloc((size_t)(D + 2 * KVN) * rbd), *wg = malloc((size_t)2 * F * rbd), *wd = malloc((size_t)D * rbf);
    for (int r = 0; r < D + 2 * KVN; r++) { for (int j = 0; j < D; j++) row[j] = (int8_t)(rnd(c) % 3) - 1; rtr_t2_pack_row(row, D, wq + (size_t)r * rbd); }
    for (int r = 0; r < 2 * F; r++) { for (int j = 0; j < D; j++) row[j] = (int8_t)(rnd(c) % 3) - 1; rtr_t2_pack_row(row, D, wg + (size_t)r * rbd); }
    for (int r = 0; r < D; r++) { for (int j = 0; j < F; j++) row[j] = (int8_t)(rnd(c) % 3) - 1; rtr_t2_pack_row(row, F, wd + (size_t)r * rbf); }
    int32_t spos[CAP];
    for (int i = 0; i < CAP; i++) spos[i] = -1;
    tbuf *E = tb_new(c, (size_t)V * D * 2, emb, RTR_BUF_WEIGHT), *NW = tb_new(c, F * 4, nw, RTR_BUF_WEIGHT);
    tbuf *WQ = tb_new(c, (size_t)(D + 2 * KVN) * rbd, wq, RTR_BUF_WEIGHT), *WG = tb_new(c, (size_t)2 * F * rbd, wg, RTR_BUF_WEIGHT);
    tbuf *WD = tb_new(c, (size_t)D * rbf, wd, RTR_BUF_WEIGHT);
    tbuf *ids = tb_new(c, MAXR * 4, NULL, 0), *pos = tb_new(c, MAXR * 4, NULL, 0), *slot = tb_new(c, MAXR * 4, NULL, 0);
    size_t es = kt == RTR_T_F32 ? 4 : 2;
    tbuf *SP = tb_new(c, CAP * 4, spos, 0), *KC = tb_new(c, (size_t)CAP * KVN * es, NULL, 0), *VC = tb_new(c, (size_t)CAP * KVN * es, NULL, 0);
    tbuf *x = tb_new(c, MAXR * D * 4, NULL, 0), *qa = tb_new(c, (size_t)MAXR * kpf, NULL, 0), *qs = tb_new(c, MAXR * 4, NULL, 0);
    tbuf *q = tb_new(c, MAXR * D * 4, NULL, 0), *k = tb_new(c, MAXR * KVN * 4, NULL, 0), *v = tb_new(c, MAXR * KVN * 4, NULL, 0);
    tbuf *att = tb_new(c, MAXR * D * 4, NULL, 0), *g = tb_new(c, (size_t)MAXR * F * 4, NULL, 0), *u = tb_new(c, (size_t)MAXR * F * 4, NULL, 0);
    tbuf *head = tb_new(c, (size_t)V * 4, NULL, RTR_BUF_HOST);
    int p0 = 0;
    for (int step = 0; step < 4 && !c->broken; step++) {
        int n = step == 0 ? MAXR : 1; /* a prompt, then decode steps: identical op lists */
        int32_t hid[MAXR], hpos[MAXR], hsl[MAXR];
        for (int i = 0; i < n; i++) { hid[i] = (int32_t)(rnd(c) % V); hpos[i] = p0 + i; hsl[i] = p0 + i; spos[p0 + i] = p0 + i; }
        for (int s = 0; s < 2; s++) {
            rtr_backend *be = c->be[s];
            be->ops->buf_write(be, ids->b[s], 0, hid, (size_t)n * 4, NULL);
            be->ops->buf_write(be, pos->b[s], 0, hpos, (size_t)n * 4, NULL);
            be->ops->buf_write(be, slot->b[s], 0, hsl, (size_t)n * 4, NULL);
            be->ops->buf_write(be, SP->b[s], 0, spos, sizeof spos, NULL);
        }
        rtr_op o[16];
        memset(o, 0, sizeof o);
        int no = 0;
        o[no].kind = RTR_OP_EMBED; o[no].rows = n; o[no].dst = TR(x, 0); o[no].a = TR(E, 0); o[no].b = TR(ids, 0);
        o[no].p.emb.type = RTR_T_F16; o[no].p.emb.n_rows = V; o[no].p.emb.d = D; o[no].p.emb.scale = 1; no++;
        o[no].kind = RTR_OP_RMSNORM; o[no].rows = n; o[no].a = TR(x, 0); o[no].c = TR(NW, 0); o[no].dst2 = TR(qa, 0);
        o[no].dst3 = TR(qs, 0); o[no].p.norm.n = D; o[no].p.norm.eps = 1e-5f; no++;
        o[no].kind = RTR_OP_MATMUL_T2; o[no].rows = n; o[no].a = TR(qa, 0); o[no].b = TR(qs, 0);
        o[no].p.mm.n_mat = 3; o[no].p.mm.k = D;
        o[no].p.mm.w[0] = TR(WQ, 0); o[no].p.mm.w[1] = TR(WQ, (size_t)D * rbd); o[no].p.mm.w[2] = TR(WQ, (size_t)(D + KVN) * rbd);
        o[no].p.mm.out[0] = TR(q, 0); o[no].p.mm.out[1] = TR(k, 0); o[no].p.mm.out[2] = TR(v, 0);
        o[no].p.mm.n[0] = D; o[no].p.mm.n[1] = KVN; o[no].p.mm.n[2] = KVN;
        o[no].p.mm.alpha[0] = 1.5f; o[no].p.mm.alpha[1] = 0.7f; o[no].p.mm.alpha[2] = 1.1f; no++;
        o[no].kind = RTR_OP_ROPE; o[no].rows = n; o[no].a = TR(q, 0); o[no].b = TR(pos, 0);
        o[no].p.rope.n_head = NH; o[no].p.rope.head_dim = HD; o[no].p.rope.rot_dim = HD; o[no].p.rope.theta = 10000; no++;
        o[no] = o[no - 1]; o[no].a = TR(k, 0); o[no].p.rope.n_head = NKV; no++;
        o[no].kind = RTR_OP_KV_STORE; o[no].rows = n; o[no].a = TR(k, 0); o[no].b = TR(v, 0); o[no].c = TR(slot, 0);
        o[no].dst = TR(KC, 0); o[no].dst2 = TR(VC, 0); o[no].p.kv.n = KVN; o[no].p.kv.type = kt; no++;
        o[no].kind = RTR_OP_ATTN; o[no].rows = n; o[no].a = TR(q, 0); o[no].b = TR(KC, 0); o[no].c = TR(VC, 0);
        o[no].d = TR(SP, 0); o[no].e = TR(pos, 0); o[no].dst = TR(att, 0);
        o[no].p.attn.n_head = NH; o[no].p.attn.n_kv = NKV; o[no].p.attn.head_dim = HD; o[no].p.attn.cap = CAP;
        o[no].p.attn.n_sink = 2; o[no].p.attn.window = 1000; o[no].p.attn.scale = 0.158f;
        o[no].p.attn.kv_type = kt; no++;
        o[no].kind = RTR_OP_RMSNORM; o[no].rows = n; o[no].a = TR(att, 0); o[no].dst2 = TR(qa, 0);
        o[no].dst3 = TR(qs, 0); o[no].p.norm.n = D; o[no].p.norm.eps = 1e-5f; no++;
        o[no] = o[2]; o[no].p.mm.n_mat = 1; o[no].p.mm.out[0] = TR(x, 0); o[no].p.mm.accum = 1; no++;
        o[no].kind = RTR_OP_RMSNORM; o[no].rows = n; o[no].a = TR(x, 0); o[no].dst2 = TR(qa, 0);
        o[no].dst3 = TR(qs, 0); o[no].p.norm.n = D; o[no].p.norm.eps = 1e-5f; no++;
        o[no] = o[2]; o[no].p.mm.n_mat = 2; o[no].p.mm.w[0] = TR(WG, 0); o[no].p.mm.w[1] = TR(WG, (size_t)F * rbd);
        o[no].p.mm.out[0] = TR(g, 0); o[no].p.mm.out[1] = TR(u, 0); o[no].p.mm.n[0] = F; o[no].p.mm.n[1] = F; no++;
        o[no].kind = RTR_OP_GLU; o[no].rows = n; o[no].a = TR(g, 0); o[no].b = TR(u, 0); o[no].dst = TR(g, 0);
        o[no].p.glu.n = F; o[no].p.glu.act = RTR_ACT_RELU2; no++;
        o[no].kind = RTR_OP_RMSNORM; o[no].rows = n; o[no].a = TR(g, 0); o[no].c = TR(NW, 0); o[no].dst2 = TR(qa, 0);
        o[no].dst3 = TR(qs, 0); o[no].p.norm.n = F; o[no].p.norm.eps = 1e-5f; no++;
        o[no].kind = RTR_OP_MATMUL_T2; o[no].rows = n; o[no].a = TR(qa, 0); o[no].b = TR(qs, 0);
        o[no].p.mm.n_mat = 1; o[no].p.mm.k = F; o[no].p.mm.accum = 1; o[no].p.mm.w[0] = TR(WD, 0);
        o[no].p.mm.out[0] = TR(x, 0); o[no].p.mm.n[0] = D; o[no].p.mm.alpha[0] = 0.9f; no++;
        o[no].kind = RTR_OP_RMSNORM; o[no].rows = 1; o[no].a = TR(x, (size_t)(n - 1) * D * 4); o[no].c = TR(NW, 0);
        o[no].dst = TR(att, 0); o[no].p.norm.n = D; o[no].p.norm.eps = 1e-5f; no++;
        o[no].kind = RTR_OP_MATMUL_F; o[no].rows = 1; o[no].a = TR(att, 0); o[no].dst = TR(head, 0);
        o[no].p.mf.type = RTR_T_F16; o[no].p.mf.n = V; o[no].p.mf.k = D; o[no].p.mm.w[0] = TR(E, 0); no++;
        (void)kp;
        char what[64];
        snprintf(what, sizeof what, "layer batch step %d (%d rows, %s cache)", step, n, kt == RTR_T_F32 ? "f32" : "f16");
        if (run_ops(c, o, no, what)) break;
        /* q, k and v, and the caches that hold every step's k and v (q, k, v are rewritten by
         * each step, so they are compared at each); a misplaced element is off by about the
         * scale, an int8 code that rounds the other way by far less */
        cmp_f32(c, q, 1e-4f, 1e-3f, what);
        cmp_f32(c, k, 1e-4f, 1e-3f, what);
        cmp_f32(c, v, 1e-4f, 1e-3f, what);
        if (kt == RTR_T_F32) { cmp_f32(c, KC, 1e-4f, 1e-3f, what); cmp_f32(c, VC, 1e-4f, 1e-3f, what); }
        else { cmp_f16(c, KC, 1e-4f, 2e-3f, what); cmp_f16(c, VC, 1e-4f, 2e-3f, what); }
        /* the residual stream went through int8 quantization twice: compare loosely */
        cmp_f32(c, x, 1e-3f, 2e-3f, what);
        cmp_f32(c, head, 1e-3f, 5e-3f, what);
        /* the output as a view (where a device keeps a host copy, read at the batch's end) */
        float *hr = malloc(head->n);
        rtr_err e = {0};
        int rd = c->be[1]->ops->buf_read(c->be[1], head->b[1], 0, hr, head->n, &e);
        const void *hv = c->be[1]->ops->buf_view(c->be[1], head->b[1], 0, head->n, &e);
        CHECK(!rd && hv && !memcmp(hv, hr, head->n), "%s: %s: a view of the output differs from a read (%s)", c->name,
              what, e.msg);
        free(hr);
        p0 += n;
    }
    tbuf *all[] = {E, NW, WQ, WG, WD, ids, pos, slot, SP, KC, VC, x, qa, qs, q, k, v, att, g, u, head};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) tb_free(c, all[i]);
    free(emb); free(nw); free(row); free(wq); free(wg); free(wd);
}

/* One token's attention block as the graph gives it (quantizing norm, q/k/v product, RoPE of q
 * and k, KV store, attention, then the quantizing norm of its output and the o product added to
 * the residual row), which GPU backends fuse into fewer launches: 2B4T's shape on both cache
 * types, a ring that ends mid-way with sinks and a window, a wrapped one, a slot past the caches
 * (nothing stored), rings of 64 to 600 slots. */
static void t_layer_head(ctx *c) {
    static const int cfg[][9] = {
        /* D, n_head, n_kv, hd, cap, filled, n_sink, window, f32 */
        {2560, 20, 5, 128, 256, 100, 0, 4096, 1}, {2560, 20, 5, 128, 256, 100, 0, 4096, 0},
        {1000, 8, 2, 64, 512, 700, 4, 300, 1},    {640, 6, 3, 32, 100, 100, 2, 4096, 0},
        {1000, 8, 2, 64, 600, 550, 0, 4096, 1},   {320, 4, 4, 40, 64, 30, 0, 4096, 0},
    };
    rtr_backend *gb = c->be[1];
    for (int ci = 0; ci < (int)(sizeof cfg / sizeof cfg[0]) && !c->broken; ci++) {
        /* every second case in blocks, as a model's and a session's buffers are (reserve) */
        if (gb->ops->reserve) {
            gb->ops->reserve(gb, ci % 2 ? 0 : 32u << 20, RTR_BUF_WEIGHT);
            gb->ops->reserve(gb, ci % 2 ? 0 : 32u << 20, 0);
        }
        int D = cfg[ci][0], nh = cfg[ci][1], nkv = cfg[ci][2], hd = cfg[ci][3], cap = cfg[ci][4];
        int filled = cfg[ci][5], sink = cfg[ci][6], window = cfg[ci][7], f32 = cfg[ci][8];
        int qd = nh * hd, kvn = nkv * hd, kt = f32 ? RTR_T_F32 : RTR_T_F16, es = f32 ? 4 : 2;
        size_t rb = rtr_t2_row_bytes((uint64_t)D), kp = rtr_t2_kpad((uint64_t)D);
        int nrow = qd + 2 * kvn;
        uint8_t *w = malloc((size_t)nrow * rb);
        int8_t *row = malloc((size_t)D);
        for (int r = 0; r < nrow; r++) {
            for (int j = 0; j < D; j++) row[j] = (int8_t)(rnd(c) % 3) - 1;
            rtr_t2_pack_row(row, D, w + (size_t)r * rb);
        }
        float *x = rand_f32(c, (size_t)D, -2, 2), *nw = rand_f32(c, (size_t)D, 0.5f, 1.5f);
        int32_t *spos = malloc((size_t)cap * 4);
        fill_ring(c, spos, cap, filled, sink);
        int p = filled - 1, sl = p < sink ? p : sink + (p - sink) % (cap - sink);
        if (ci == 3) sl = cap + 5; /* a slot past the caches: nothing stored */
        void *kc = f32 ? (void *)rand_f32(c, (size_t)cap * kvn, -1, 1) : (void *)rand_f16(c, (size_t)cap * kvn, -1, 1);
        void *vc = f32 ? (void *)rand_f32(c, (size_t)cap * kvn, -1, 1) : (void *)rand_f16(c, (size_t)cap * kvn, -1, 1);
        tbuf *W = tb_new(c, (size_t)nrow * rb, w, RTR_BUF_WEIGHT), *NW = tb_new(c, (size_t)D * 4, nw, RTR_BUF_WEIGHT);
        tbuf *X = tb_new(c, (size_t)D * 4, x, 0), *QA = tb_new(c, kp, NULL, 0), *QS = tb_new(c, 4, NULL, 0);
        tbuf *Q = tb_new(c, (size_t)qd * 4, NULL, 0), *K = tb_new(c, (size_t)kvn * 4, NULL, 0), *V = tb_new(c, (size_t)kvn * 4, NULL, 0);
        tbuf *KC = tb_new(c, (size_t)cap * kvn * es, kc, 0), *VC = tb_new(c, (size_t)cap * kvn * es, vc, 0);
        tbuf *SP = tb_new(c, (size_t)cap * 4, spos, 0), *PO = tb_new(c, 4, &p, 0), *SL = tb_new(c, 4, &sl, 0);
        tbuf *AT = tb_new(c, (size_t)qd * 4, NULL, 0);
        /* the o product: D rows of qd, its norm weight, its quantized input */
        size_t orb = rtr_t2_row_bytes((uint64_t)qd), okp = rtr_t2_kpad((uint64_t)qd);
        uint8_t *wo = malloc((size_t)D * orb);
        int8_t *orow = malloc((size_t)qd);
        for (int r = 0; r < D; r++) {
            for (int j = 0; j < qd; j++) orow[j] = (int8_t)(rnd(c) % 3) - 1;
            rtr_t2_pack_row(orow, qd, wo + (size_t)r * orb);
        }
        float *onw = rand_f32(c, (size_t)qd, 0.5f, 1.5f);
        tbuf *WO = tb_new(c, (size_t)D * orb, wo, RTR_BUF_WEIGHT), *ONW = tb_new(c, (size_t)qd * 4, onw, RTR_BUF_WEIGHT);
        tbuf *QA2 = tb_new(c, okp, NULL, 0), *QS2 = tb_new(c, 4, NULL, 0);
        rtr_op o[8];
        memset(o, 0, sizeof o);
        o[0].kind = RTR_OP_RMSNORM; o[0].rows = 1; o[0].a = TR(X, 0); o[0].c = TR(NW, 0); o[0].dst2 = TR(QA, 0);
        o[0].dst3 = TR(QS, 0); o[0].p.norm.n = D; o[0].p.norm.eps = 1e-5f;
        o[1].kind = RTR_OP_MATMUL_T2; o[1].rows = 1; o[1].a = TR(QA, 0); o[1].b = TR(QS, 0); o[1].p.mm.n_mat = 3;
        o[1].p.mm.k = D; o[1].p.mm.w[0] = TR(W, 0); o[1].p.mm.w[1] = TR(W, (size_t)qd * rb);
        o[1].p.mm.w[2] = TR(W, (size_t)(qd + kvn) * rb); o[1].p.mm.out[0] = TR(Q, 0); o[1].p.mm.out[1] = TR(K, 0);
        o[1].p.mm.out[2] = TR(V, 0); o[1].p.mm.n[0] = qd; o[1].p.mm.n[1] = kvn; o[1].p.mm.n[2] = kvn;
        o[1].p.mm.alpha[0] = 1.3f; o[1].p.mm.alpha[1] = 0.8f; o[1].p.mm.alpha[2] = 1.1f;
        o[2].kind = RTR_OP_ROPE; o[2].rows = 1; o[2].a = TR(Q, 0); o[2].b = TR(PO, 0); o[2].p.rope.n_head = nh;
        o[2].p.rope.head_dim = hd; o[2].p.rope.rot_dim = hd; o[2].p.rope.theta = 500000;
        o[3] = o[2]; o[3].a = TR(K, 0); o[3].p.rope.n_head = nkv;
        o[4].kind = RTR_OP_KV_STORE; o[4].rows = 1; o[4].a = TR(K, 0); o[4].b = TR(V, 0); o[4].c = TR(SL, 0);
        o[4].dst = TR(KC, 0); o[4].dst2 = TR(VC, 0); o[4].p.kv.n = kvn; o[4].p.kv.type = kt;
        o[5].kind = RTR_OP_ATTN; o[5].rows = 1; o[5].a = TR(Q, 0); o[5].b = TR(KC, 0); o[5].c = TR(VC, 0);
        o[5].d = TR(SP, 0); o[5].e = TR(PO, 0); o[5].dst = TR(AT, 0); o[5].p.attn.n_head = nh; o[5].p.attn.n_kv = nkv;
        o[5].p.attn.head_dim = hd; o[5].p.attn.cap = cap; o[5].p.attn.n_sink = sink; o[5].p.attn.window = window;
        o[5].p.attn.scale = 1.0f / sqrtf((float)hd); o[5].p.attn.kv_type = kt;
        o[6].kind = RTR_OP_RMSNORM; o[6].rows = 1; o[6].a = TR(AT, 0); o[6].c = TR(ONW, 0); o[6].dst2 = TR(QA2, 0);
        o[6].dst3 = TR(QS2, 0); o[6].p.norm.n = qd; o[6].p.norm.eps = 1e-5f;
        o[7].kind = RTR_OP_MATMUL_T2; o[7].rows = 1; o[7].a = TR(QA2, 0); o[7].b = TR(QS2, 0); o[7].p.mm.n_mat = 1;
        o[7].p.mm.k = qd; o[7].p.mm.w[0] = TR(WO, 0); o[7].p.mm.out[0] = TR(X, 0); o[7].p.mm.n[0] = D;
        o[7].p.mm.alpha[0] = 0.9f; o[7].p.mm.accum = 1;
        char what[128];
        snprintf(what, sizeof what, "layer attention D=%d heads=%d/%d hd=%d cap=%d filled=%d sink=%d window=%d %s", D, nh, nkv,
                 hd, cap, filled, sink, window, f32 ? "f32" : "f16");
        if (!run_ops(c, o, 8, what)) {
            /* QA was overwritten by no op after the q/k/v product (QA2 is the o product's) */
            cmp_bytes(c, QA, what);
            cmp_f32(c, Q, 1e-5f, 1e-5f, what);
            cmp_f32(c, K, 1e-5f, 1e-5f, what);
            cmp_f32(c, V, 1e-5f, 1e-5f, what);
            if (f32) { cmp_f32(c, KC, 1e-5f, 1e-5f, what); cmp_f32(c, VC, 1e-5f, 1e-5f, what); }
            else { cmp_f16(c, KC, 1e-5f, 1e-3f, what); cmp_f16(c, VC, 1e-5f, 1e-3f, what); }
            cmp_f32(c, AT, 1e-5f, 1e-4f, what);
            /* the residual after the o product: an int8 code of the attention's output may round
             * the other way where the attention differs in its last bits */
            cmp_f32(c, X, 1e-4f, 2e-3f, what);
        }
        tbuf *all[] = {W, NW, X, QA, QS, Q, K, V, KC, VC, SP, PO, SL, AT, WO, ONW, QA2, QS2};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) tb_free(c, all[i]);
        free(w); free(row); free(x); free(nw); free(spos); free(kc); free(vc); free(wo); free(orow); free(onw);
    }
    if (gb->ops->reserve) {
        gb->ops->reserve(gb, 0, RTR_BUF_WEIGHT);
        gb->ops->reserve(gb, 0, 0);
    }
}

/* Transfers at odd offsets and sizes, large and small buffers, host-visible ones; bad calls. */
static void t_buffers(ctx *c) {
    rtr_backend *be = c->be[1];
    static const size_t sizes[] = {1, 13, 4096, 3u << 20};
    static const int flags[] = {0, RTR_BUF_HOST, RTR_BUF_WEIGHT, 0};
    for (int si = 0; si < 4; si++) {
        size_t n = sizes[si];
        uint8_t *src = malloc(n), *back = malloc(n);
        for (size_t i = 0; i < n; i++) src[i] = (uint8_t)rnd(c);
        rtr_err e = {0};
        rtr_buf *b = be->ops->buf_new(be, n, si == 2 ? src : NULL, flags[si], &e);
        CHECK(b, "%s: buf_new(%zu): %s", c->name, n, e.msg);
        if (!b) { free(src); free(back); continue; }
        int ok = 1;
        if (si != 2) {
            memset(back, 1, n);
            ok = !be->ops->buf_read(be, b, 0, back, n, &e);
            for (size_t i = 0; i < n && ok; i++) ok = back[i] == 0;
            CHECK(ok, "%s: new buffer of %zu bytes is not zeroed", c->name, n);
            size_t off = n > 8 ? 3 : 0, len = n > 8 ? n - 8 : n, from = n > 8 ? 5 : 0;
            ok = !be->ops->buf_write(be, b, 0, src, n, &e) && !be->ops->buf_write(be, b, off, src + from, len, &e);
            memmove(src + off, src + from, len);
        }
        ok = ok && !be->ops->buf_read(be, b, 0, back, n, &e);
        CHECK(ok && !memcmp(back, src, n), "%s: buffer of %zu bytes does not read back what was written (%s)", c->name, n, e.msg);
        if (n > 8) {
            ok = !be->ops->buf_read(be, b, 1, back, 7, &e);
            CHECK(ok && !memcmp(back, src + 1, 7), "%s: read at offset 1 of %zu-byte buffer", c->name, n);
        }
        const uint8_t *v = be->ops->buf_view(be, b, 0, n, &e);
        CHECK(v && !memcmp(v, src, n), "%s: view of a %zu-byte buffer does not show what was written (%s)", c->name, n,
              v ? "" : e.msg);
        if (n > 8) {
            v = be->ops->buf_view(be, b, 3, 7, &e);
            CHECK(v && !memcmp(v, src + 3, 7), "%s: view at offset 3 of a %zu-byte buffer", c->name, n);
        }
        CHECK(!be->ops->buf_view(be, b, 1, n, &e) && e.code == RTR_EARG, "%s: view past the end accepted", c->name);
        CHECK(be->ops->buf_write(be, b, n, src, 1, &e) == RTR_EARG, "%s: write past the end accepted", c->name);
        CHECK(be->ops->buf_read(be, b, 1, back, n, &e) == RTR_EARG, "%s: read past the end accepted", c->name);
        be->ops->buf_free(be, b);
        free(src);
        free(back);
    }
    /* bad ops fail cleanly, and the backend still works afterwards */
    rtr_err e = {0};
    rtr_buf *small = be->ops->buf_new(be, 64, NULL, 0, &e);
    rtr_op op = {0};
    op.kind = RTR_OP_ADD; op.rows = 1; op.a = (rtr_ref){small, 0}; op.dst = (rtr_ref){small, 0}; op.p.add.n = 16;
    CHECK(!be->ops->begin(be, &e), "%s: begin: %s", c->name, e.msg);
    op.p.add.n = 17; /* 68 bytes of a 64-byte buffer */
    CHECK(be->ops->run(be, &op, &e) == RTR_EARG, "%s: out-of-bounds op accepted", c->name);
    rtr_op at = {0};
    at.kind = RTR_OP_ATTN; at.rows = 1; at.a = at.b = at.c = at.d = at.e = at.dst = (rtr_ref){small, 0};
    at.p.attn.n_head = 3; at.p.attn.n_kv = 2; at.p.attn.head_dim = 2; at.p.attn.cap = 1; at.p.attn.kv_type = RTR_T_F16;
    CHECK(be->ops->run(be, &at, &e) == RTR_EARG, "%s: attention with 3 heads over 2 kv heads accepted", c->name);
    op.kind = 99;
    CHECK(be->ops->run(be, &op, &e) == RTR_EARG, "%s: unknown op accepted", c->name);
    op.kind = RTR_OP_ADD; op.p.add.n = 16;
    CHECK(!be->ops->run(be, &op, &e) && !be->ops->end(be, &e), "%s: valid op after bad ones: %s", c->name, e.msg);
    be->ops->buf_free(be, small);
}

/* the sequential rule of backend.h: the first largest, a NaN never larger (so chosen only first) */
static int seq_argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++) if (x[i] > x[best]) best = i;
    return best;
}

/* ARGMAX (greedy decoding's choice) on rows of 1 to 128256 values: random rows, the largest
 * value repeated (the first wins), NaNs (never chosen unless first), infinities; each backend's
 * answer against the sequential rule of backend.h, computed here. */
static void t_argmax(ctx *c) {
    static const int ns[] = {1, 7, 1000, 4097, 128256};
    for (int ni = 0; ni < 5; ni++)
        for (int kind = 0; kind < 5; kind++) {
            int n = ns[ni], rows = kind == 0 ? 3 : 1;
            size_t sz = (size_t)rows * n;
            float *x = rand_f32(c, sz, -30, 30);
            int pick = n > 2 ? 1 + (int)(rnd(c) % (uint64_t)(n - 2)) : 0;
            if (kind == 1) /* the largest three times: the first of them wins */
                for (int k = 0; k < 3; k++) x[(pick + (size_t)k * (n / 3)) % n] = 50.0f;
            if (kind == 2) { x[pick] = NAN; x[n - 1] = NAN; } /* NaNs never win */
            if (kind == 3) x[0] = NAN;                         /* unless first */
            if (kind == 4) {                                   /* infinities, and a row of -inf */
                for (size_t i = 0; i < sz; i++) x[i] = -INFINITY;
                if (n > 2) { x[pick] = INFINITY; x[n - 1] = INFINITY; }
            }
            int32_t *want = malloc((size_t)rows * 4), *cpu = malloc((size_t)rows * 4), *gpu = malloc((size_t)rows * 4);
            for (int r = 0; r < rows; r++) want[r] = seq_argmax(x + (size_t)r * n, n);
            tbuf *a = tb_new(c, sz * 4, x, 0), *d = tb_new(c, (size_t)rows * 4, NULL, 0);
            rtr_op op = {0};
            op.kind = RTR_OP_ARGMAX; op.rows = rows; op.a = TR(a, 0); op.dst = TR(d, 0); op.p.add.n = n;
            char what[64];
            snprintf(what, sizeof what, "argmax n=%d rows=%d case %d", n, rows, kind);
            if (!run_ops(c, &op, 1, what) && !tb_read(c, d, cpu, gpu))
                for (int r = 0; r < rows; r++) {
                    CHECK(cpu[r] == want[r], "%s: %s: cpu row %d chose %d, expected %d", c->name, what, r, cpu[r], want[r]);
                    CHECK(gpu[r] == want[r], "%s: %s: row %d chose %d, expected %d", c->name, what, r, gpu[r], want[r]);
                }
            tb_free(c, a); tb_free(c, d);
            free(x); free(want); free(cpu); free(gpu);
        }
}

/* The one-token LM head and the ARGMAX of its output in one batch (greedy decoding's end, which
 * a backend may take in one kernel): every float type, 1 to 128256 rows, k on and off a GPU's
 * vector path. Cases: random rows; the largest row three times (the first wins); NaN rows (never
 * chosen); a NaN first row (chosen); all rows zero, +0 and -0 (q8r scales of both signs: the
 * first wins). Each side's choice against the rule applied to its own logits, and in the cases
 * that fix it, against the answer itself. Consecutive cases run on the same backend, so a
 * choice left over from the batch before shows. */
static void t_head_argmax(ctx *c) {
    static const int types[] = {RTR_T_F32, RTR_T_F16, RTR_T_BF16, RTR_T_Q8R};
    static const int ns[] = {1, 7, 1000, 4097, 128256};
    for (int ti = 0; ti < 4; ti++)
        for (int ni = 0; ni < 5; ni++)
            for (int kind = 0; kind < 5; kind++) {
                int t = types[ti], n = ns[ni], k = ni % 2 ? 64 : 36;
                int pick = n > 2 ? 1 + (int)(rnd(c) % (uint64_t)(n - 2)) : 0;
                size_t kq = rtr_q8r_row_bytes((uint64_t)k), es = t == RTR_T_F32 ? 4 : 2;
                size_t wbytes = t == RTR_T_Q8R ? (size_t)n * (kq + 4) : (size_t)n * k * es;
                uint8_t *wt = calloc(wbytes, 1);
                float *x = rand_f32(c, (size_t)k, -2, 2);
                for (int r = 0; r < n; r++) {
                    int top = kind == 1 && (r == pick || r == pick + (n - pick) / 3 || r == pick + 2 * (n - pick) / 3);
                    int nan = (kind == 2 && (r == pick || r == n - 1)) || (kind == 3 && r == 0);
                    for (int j = 0; j < k; j++) {
                        float v = kind == 4 ? 0.0f : top ? (x[j] < 0 ? -1.0f : 1.0f) : frand(c, -0.3f, 0.3f);
                        if (nan && j == k / 2 && t != RTR_T_Q8R) v = NAN;
                        size_t i = (size_t)r * k + j;
                        if (t == RTR_T_F32) ((float *)wt)[i] = v;
                        else if (t == RTR_T_F16) ((uint16_t *)wt)[i] = rtr_f32_to_f16(v);
                        else if (t == RTR_T_BF16) ((uint16_t *)wt)[i] = rtr_f32_to_bf16(v);
                        else wt[(size_t)r * kq + j] = (uint8_t)(int8_t)(v * 127.0f);
                    }
                    if (t == RTR_T_Q8R) {
                        float sc = nan ? NAN : kind == 4 && r % 2 == 0 ? -0.01f : 0.01f; /* -0 first */
                        memcpy(wt + (size_t)n * kq + (size_t)r * 4, &sc, 4);
                    }
                }
                tbuf *wb = tb_new(c, wbytes, wt, RTR_BUF_WEIGHT), *xa = tb_new(c, (size_t)k * 4, x, 0);
                tbuf *lg = tb_new(c, (size_t)n * 4, NULL, 0), *id = tb_new(c, 4, NULL, 0);
                rtr_op op[2];
                memset(op, 0, sizeof op);
                op[0].kind = RTR_OP_MATMUL_F; op[0].rows = 1; op[0].a = TR(xa, 0); op[0].dst = TR(lg, 0);
                op[0].p.mf.type = t; op[0].p.mf.n = n; op[0].p.mf.k = k;
                op[0].p.mm.w[0] = TR(wb, 0);
                op[1].kind = RTR_OP_ARGMAX; op[1].rows = 1; op[1].a = TR(lg, 0); op[1].dst = TR(id, 0); op[1].p.add.n = n;
                char what[96];
                snprintf(what, sizeof what, "head+argmax %s k=%d n=%d case %d", rtr_type_name(t), k, n, kind);
                float *lc = malloc((size_t)n * 4), *lgp = malloc((size_t)n * 4);
                int32_t ic = -1, ig = -1;
                if (!run_ops(c, op, 2, what) && !tb_read(c, lg, lc, lgp) && !tb_read(c, id, &ic, &ig)) {
                    int fixed = kind == 1 ? pick : kind >= 3 ? 0 : -1;
                    CHECK(ic == seq_argmax(lc, n), "%s: %s: cpu chose %d, its logits say %d", c->name, what, ic, seq_argmax(lc, n));
                    CHECK(ig == seq_argmax(lgp, n), "%s: %s: chose %d, its logits say %d", c->name, what, ig, seq_argmax(lgp, n));
                    if (fixed >= 0) CHECK(ig == fixed && ic == fixed, "%s: %s: chose %d (cpu %d), expected %d", c->name, what, ig, ic, fixed);
                    if (kind == 2 && n > 2) CHECK(ig != pick && ig != n - 1, "%s: %s: chose a NaN row %d", c->name, what, ig);
                }
                tb_free(c, wb); tb_free(c, xa); tb_free(c, lg); tb_free(c, id);
                free(wt); free(x); free(lc); free(lgp);
            }
}

static void run_suite(const rtr_backend_entry *ent, const char *label, rtr_backend *cpu) {
    rtr_backend_cfg cfg = {.device = -1, .n_threads = 2};
    rtr_err e = {0};
    rtr_backend *gpu = NULL;
    if (ent->create(&gpu, &cfg, &e)) {
        if (strcmp(label, ent->name)) SKIP("%s (%s run)", e.msg, label);
        else SKIP("%s", e.msg);
        return;
    }
    fprintf(stderr, "%s: %s\n", label, gpu->desc);
    ctx c = {.be = {cpu, gpu}, .name = label, .rng = 0x9e3779b97f4a7c15ull};
    int before = test_fail;
    t_buffers(&c);
    t_embed(&c);
    t_quant(&c);
    t_norm(&c);
    t_matmul_t2(&c);
    t_norm_matmul(&c);
    t_matmul_glu(&c);
    t_matmul_f(&c);
    t_rope(&c);
    t_rope_kv(&c);
    t_kv_attn(&c);
    t_glu_add(&c);
    t_batch(&c, RTR_T_F16);
    t_batch(&c, RTR_T_F32);
    t_attn_decode(&c);
    t_layer_head(&c);
    t_argmax(&c);
    t_head_argmax(&c);
    fprintf(stderr, "%s: %s\n", label, test_fail == before ? "all ops match the CPU" : "FAILURES above");
    gpu->ops->destroy(gpu);
}

/* The CPU backend itself (the reference of everything above) against a float64 attention for
 * one query row over long rings, where it splits the slots into ranges: GQA 4 and 1, f32 and f16
 * caches, sinks and a window, before and after the ring wrapped, on 1, 2 and 3 threads. */
static void cpu_attn_long(void) {
    static const int cfg[][8] = {
        /* n_head, n_kv, hd, cap, filled, n_sink, window, f32 */
        {8, 2, 64, 1200, 1100, 4, 100000, 1}, {8, 2, 64, 1200, 3000, 4, 900, 0},
        {3, 3, 32, 700, 690, 0, 100000, 0}, {4, 1, 128, 2100, 2050, 2, 1500, 1},
    };
    ctx c0 = {.rng = 99};
    ctx *c = &c0;
    for (int nth = 1; nth <= 3; nth++) {
        rtr_backend_cfg cfg_ = {.device = -1, .n_threads = nth};
        rtr_backend *be = NULL;
        rtr_err e = {0};
        if (rtr_cpu_backend_create(&be, &cfg_, &e)) { CHECK(0, "cpu backend: %s", e.msg); return; }
        for (size_t ci = 0; ci < sizeof cfg / sizeof cfg[0]; ci++) {
            int nh = cfg[ci][0], nkv = cfg[ci][1], hd = cfg[ci][2], cap = cfg[ci][3], filled = cfg[ci][4];
            int sink = cfg[ci][5], window = cfg[ci][6], f32 = cfg[ci][7], kvn = nkv * hd, qp = filled - 1;
            int32_t *spos = malloc((size_t)cap * 4);
            fill_ring(c, spos, cap, filled, sink);
            void *kc = f32 ? (void *)rand_f32(c, (size_t)cap * kvn, -1, 1) : (void *)rand_f16(c, (size_t)cap * kvn, -1, 1);
            void *vc = f32 ? (void *)rand_f32(c, (size_t)cap * kvn, -1, 1) : (void *)rand_f16(c, (size_t)cap * kvn, -1, 1);
            float *q = rand_f32(c, (size_t)nh * hd, -1.5f, 1.5f), *out = malloc((size_t)nh * hd * 4);
            size_t es = f32 ? 4 : 2;
            rtr_buf *K = be->ops->buf_new(be, (size_t)cap * kvn * es, kc, 0, &e), *V = be->ops->buf_new(be, (size_t)cap * kvn * es, vc, 0, &e);
            rtr_buf *SP = be->ops->buf_new(be, (size_t)cap * 4, spos, 0, &e), *QB = be->ops->buf_new(be, (size_t)nh * hd * 4, q, 0, &e);
            rtr_buf *QP = be->ops->buf_new(be, 4, &qp, 0, &e), *OB = be->ops->buf_new(be, (size_t)nh * hd * 4, NULL, 0, &e);
            rtr_op op = {0};
            op.kind = RTR_OP_ATTN; op.rows = 1;
            op.a = (rtr_ref){QB, 0}; op.b = (rtr_ref){K, 0}; op.c = (rtr_ref){V, 0}; op.d = (rtr_ref){SP, 0};
            op.e = (rtr_ref){QP, 0}; op.dst = (rtr_ref){OB, 0};
            op.p.attn.n_head = nh; op.p.attn.n_kv = nkv; op.p.attn.head_dim = hd; op.p.attn.cap = cap;
            op.p.attn.n_sink = sink; op.p.attn.window = window; op.p.attn.kv_type = f32 ? RTR_T_F32 : RTR_T_F16;
            op.p.attn.scale = 1.0f / sqrtf((float)hd);
            int rc = be->ops->begin(be, &e) || be->ops->run(be, &op, &e) || be->ops->end(be, &e) ||
                     be->ops->buf_read(be, OB, 0, out, (size_t)nh * hd * 4, &e);
            CHECK(!rc, "cpu attention (%d threads): %s", nth, e.msg);
            double worst = 0;
            double *w = malloc((size_t)cap * sizeof *w);
            for (int h = 0; h < nh && !rc; h++) {
                int kh = h / (nh / nkv);
                double mx = -INFINITY, sum = 0;
                for (int sl = 0; sl < cap; sl++) {
                    int sp = spos[sl];
                    w[sl] = -INFINITY;
                    if (sp < 0 || sp > qp || !(sp < sink || qp - sp < window)) continue;
                    double d = 0;
                    for (int i = 0; i < hd; i++) {
                        size_t at = (size_t)sl * kvn + (size_t)kh * hd + i;
                        d += (double)q[h * hd + i] * (f32 ? ((float *)kc)[at] : rtr_f16_to_f32(((uint16_t *)kc)[at]));
                    }
                    w[sl] = d / sqrt((double)hd);
                    if (w[sl] > mx) mx = w[sl];
                }
                for (int sl = 0; sl < cap; sl++) sum += w[sl] == -INFINITY ? 0 : exp(w[sl] - mx);
                for (int i = 0; i < hd; i++) {
                    double o = 0;
                    for (int sl = 0; sl < cap; sl++) {
                        if (w[sl] == -INFINITY) continue;
                        size_t at = (size_t)sl * kvn + (size_t)kh * hd + i;
                        o += exp(w[sl] - mx) / sum * (f32 ? ((float *)vc)[at] : rtr_f16_to_f32(((uint16_t *)vc)[at]));
                    }
                    double err = fabs(out[h * hd + i] - o);
                    if (err > worst) worst = err;
                }
            }
            CHECK(!rc && worst < 2e-6, "cpu attention, one row over %d slots (%d heads / %d, %s, %d threads): "
                  "within 2e-6 of float64 (worst %.2e)", cap, nh, nkv, f32 ? "f32" : "f16", nth, worst);
            rtr_buf *bs[] = {K, V, SP, QB, QP, OB};
            for (int i = 0; i < 6; i++) be->ops->buf_free(be, bs[i]);
            free(w); free(spos); free(kc); free(vc); free(q); free(out);
        }
        be->ops->destroy(be);
    }
}

int main(void) {
    rtr_backend_cfg cfg = {.device = -1, .n_threads = 2};
    rtr_err e = {0};
    rtr_backend *cpu = NULL;
    if (rtr_cpu_backend_create(&cpu, &cfg, &e)) {
        CHECK(0, "cpu backend: %s", e.msg);
        return test_done("backend_ops");
    }
    cpu_attn_long();
    const char *only = getenv("ROTOR_TEST_BACKEND");
    int n;
    const rtr_backend_entry *const *all = rtr_backend_all(&n);
    int tested = 0;
    for (int i = 0; i < n; i++) {
        const rtr_backend_entry *ent = all[i];
        if (!strcmp(ent->name, "cpu") || (only && *only && strcmp(only, ent->name))) continue;
        tested++;
        run_suite(ent, ent->name, cpu);
        if (!strcmp(ent->name, "vulkan")) {
            const char *was = getenv("ROTOR_VK_PORTABLE");
            if (!was || !strcmp(was, "0")) {
                setenv("ROTOR_VK_PORTABLE", "1", 1);
                run_suite(ent, "vulkan-portable", cpu);
                unsetenv("ROTOR_VK_PORTABLE");
            }
            if (!rtr_env_flag("ROTOR_VK_NOVMM")) { /* the chained shaders without the memory model too */
                setenv("ROTOR_VK_NOVMM", "1", 1);
                run_suite(ent, "vulkan-novmm", cpu);
                unsetenv("ROTOR_VK_NOVMM");
            }
            if (!getenv("ROTOR_VK_VEC_WG")) { /* the one-token products in other workgroup sizes */
                setenv("ROTOR_VK_VEC_WG", "256", 1);
                run_suite(ent, "vulkan-vec256", cpu);
                setenv("ROTOR_VK_VEC_WG", "128,1024,1024", 1); /* short rows, gate/up, long rows */
                setenv("ROTOR_VK_VEC_PIECES", "4,16,5", 1);          /* 16, 4 and 32 lanes at 2B4T's */
                run_suite(ent, "vulkan-vecmix", cpu);
                unsetenv("ROTOR_VK_VEC_WG");
                unsetenv("ROTOR_VK_VEC_PIECES");
            }
        }
        if (!strcmp(ent->name, "opencl") && !rtr_env_flag("ROTOR_OPENCL_NOCMDBUF")) {
            setenv("ROTOR_OPENCL_NOCMDBUF", "1", 1); /* batches launch by launch, as without command buffers */
            /* and weights in blocks where reserved, even on a device that could alias host memory */
            int pw = !getenv("ROTOR_OPENCL_POOL");
            if (pw) setenv("ROTOR_OPENCL_POOL", "1", 1);
            run_suite(ent, "opencl-direct", cpu);
            unsetenv("ROTOR_OPENCL_NOCMDBUF");
            if (pw) unsetenv("ROTOR_OPENCL_POOL");
        }
    }
    if (!tested) SKIP("no GPU backend compiled in");
    cpu->ops->destroy(cpu);
    return test_done("backend_ops");
}
