/* backend.h: the one contract every rotor backend (CPU, Vulkan, OpenCL) implements.
 *
 * A backend owns device buffers and runs ops on them. The model graph (models/graph.c) is written
 * once against this contract: it allocates buffers, then for each evaluated batch calls begin(),
 * run() once per op, and end(), which submits and waits (or end_ahead, which does not). Ops between
 * begin and end may be queued (GPU backends record them into one command buffer); only end(),
 * wait_ahead, buf_read and buf_write wait.
 *
 * Ops take effect in the order run() is called, exactly as if each finished before the next
 * starts: a GPU backend must order every read-after-write, write-after-read and write-after-write
 * between ops (a full barrier between ops is correct). dst may alias a (in-place RMSNORM / ROPE).
 * Data conventions: activations are f32, row-major, one row per token. Every buffer position is
 * an rtr_ref (buffer + byte offset). KV caches are f16 or f32 (p.kv.type / p.attn.kv_type). Ternary weights are RTR_T_T2 rows (see
 * docs/format.md); quantized activations are int8 rows padded with zeros to a multiple of 128,
 * with one f32 per row holding 1/s = absmax/127 (so x ~= q * that).
 * Errors: every function returns 0 or a negative RTR_E* and fills err; nothing prints.
 */
#ifndef ROTOR_BACKEND_H
#define ROTOR_BACKEND_H

#include "../rotor.h"

typedef struct rtr_buf rtr_buf;           /* backend-defined */
typedef struct rtr_backend rtr_backend;

typedef struct {
    rtr_buf *buf; /* NULL: absent operand */
    size_t off;   /* byte offset into buf */
} rtr_ref;

enum rtr_op_kind {
    /* dst[r][0..d) = table row ids[r] (f32/f16/bf16/q8r), times scale.
     * a = table (type e.type, e.n_rows rows of e.d), b = ids (int32 [rows]). */
    RTR_OP_EMBED,
    /* Optional residual first: if b.buf, a[r] += b[r] (a is updated in place).
     * Then dst[r] = a[r] * 1/sqrt(mean(a[r]^2) + eps) * w, w = c (f32 [n]) or 1 if c.buf is NULL.
     * rows of length n. If dst2.buf is set, the normalised row is also quantized to int8
     * into dst2 (row stride kpad = round_up(n,128)) with 1/s per row in dst3, and dst may be absent. */
    RTR_OP_RMSNORM,
    /* int8 absmax quantization of f32 rows: a [rows][n] -> dst2 int8 [rows][kpad], dst3 f32 [rows]
     * (1/s per row). Rounding: half to even. */
    RTR_OP_QUANT,
    /* Up to three ternary products sharing one quantized input (q/k/v, gate/up):
     * out[i][r][0..n[i]) (=|+=) alpha[i] * b[r] * (W_i . q_r), with q = a (int8 [rows][kpad]),
     * the per-row 1/s in b (f32 [rows]), W_i = w[i] (T2, n[i] rows of k columns). accum: add
     * into out instead of overwriting (fused residual). Exact int32 accumulation. */
    RTR_OP_MATMUL_T2,
    /* Float-weight product (the LM head): dst[r][0..n) = W . a[r], W = w[0] of type mf.type
     * (f32, f16, bf16 or q8r; n rows of k columns), a f32 [rows][k]. */
    RTR_OP_MATMUL_F,
    /* In-place half-split (NeoX) RoPE on a [rows][n_head][head_dim], position per row from
     * b (int32 [rows]), the first rot_dim dims of each head rotated, base theta. */
    RTR_OP_ROPE,
    /* K/V into the ring: for each row r, slot = c[r] (int32): kcache[slot][0..n) = a[r],
     * vcache[slot][0..n) = b[r], stored as p.kv.type (RTR_T_F16 or RTR_T_F32).
     * kcache = dst, vcache = dst2. */
    RTR_OP_KV_STORE,
    /* Attention over the ring. q = a [rows][n_head][head_dim]; K = b, V = c ([cap][n_kv][hd] of
     * p.attn.kv_type, f16 or f32);
     * slot positions d (int32 [cap], -1 = empty); query positions e (int32 [rows]). Only the
     * first cap slots are scanned: the graph may pass fewer than the ring holds when it knows
     * the later ones cannot be visible.
     * A slot s is visible to row r when 0 <= spos <= qpos and (spos < n_sink or
     * qpos - spos < window). Query head h reads KV head h / (n_head / n_kv).
     * dst [rows][n_head][head_dim] = softmax(q.K * scale) . V, summed in f32. For batches of 17 rows or
     * more a backend may multiply on f16 matrix hardware with each operand split into two f16
     * parts (relative error about 1e-6 instead of f32's 1e-7). */
    RTR_OP_ATTN,
    /* Gated activation: dst[r][i] = act(a[r][i]) * b[r][i], rows of n. */
    RTR_OP_GLU,
    /* dst[0..n) += a[0..n) over rows*n floats. */
    RTR_OP_ADD,
    /* Greedy choice on the device: dst[r] (int32) = the index of the largest of a[r][0..n) (f32),
     * the first of equals, as "best = 0; if (a[i] > a[best]) best = i" finds it (a NaN never
     * wins, except a NaN a[r][0], which nothing beats). */
    RTR_OP_ARGMAX,
};

enum { RTR_ACT_RELU2 = 0, RTR_ACT_SILU = 1, RTR_ACT_GELU_TANH = 2 };

typedef struct {
    int kind;
    int rows;
    rtr_ref dst, dst2, dst3;
    rtr_ref a, b, c, d, e;
    union {
        struct { int type, n_rows, d; float scale; } emb;
        struct { int n; float eps; } norm;           /* also QUANT (n) */
        struct {
            int n_mat, k, accum;
            rtr_ref w[3], out[3];
            int n[3];
            float alpha[3];
        } mm;
        struct { int type, n, k; } mf;
        struct { int n_head, head_dim, rot_dim; float theta; } rope;
        struct { int n, type; } kv;                   /* n: floats per row (n_kv * head_dim) */
        struct { int n_head, n_kv, head_dim, cap, n_sink, window, kv_type; float scale; } attn;
        struct { int n, act; } glu;
        struct { int n; } add;                        /* also ARGMAX (n) */
    } p;
} rtr_op;

enum {
    RTR_BUF_WEIGHT = 1, /* read-only for the model's lifetime; host data stays mapped, may alias */
    RTR_BUF_HOST = 2,   /* read back often (logits): keep it host-visible if the device can */
};

typedef struct {
    const char *name;
    void (*destroy)(rtr_backend *be);
    /* host may be NULL (then the buffer is zeroed) */
    rtr_buf *(*buf_new)(rtr_backend *be, size_t bytes, const void *host, int flags, rtr_err *err);
    void (*buf_free)(rtr_backend *be, rtr_buf *b);
    int (*buf_write)(rtr_backend *be, rtr_buf *b, size_t off, const void *src, size_t n, rtr_err *err);
    int (*buf_read)(rtr_backend *be, rtr_buf *b, size_t off, void *dst, size_t n, rtr_err *err);
    /* What buf_read would copy, in place: a host pointer to n bytes of b from off, valid until
     * b is viewed again, written (by buf_write or an op) or freed; other buffers' traffic leaves
     * it alone (NULL and err on failure). For RTR_BUF_HOST buffers it costs no copy beyond the
     * device's own transfer. */
    const void *(*buf_view)(rtr_backend *be, rtr_buf *b, size_t off, size_t n, rtr_err *err);
    /* Optional (NULL where a backend has no use for it): the next buf_new calls with these
     * flags (0 or RTR_BUF_WEIGHT) will total about bytes; the backend may carve them from one
     * block. A hint: on failure the buffers are made one by one as before. */
    void (*reserve)(rtr_backend *be, size_t bytes, int flags);
    int (*begin)(rtr_backend *be, rtr_err *err);
    int (*run)(rtr_backend *be, const rtr_op *op, rtr_err *err);
    int (*end)(rtr_backend *be, rtr_err *err);
    /* Optional pair (NULL where a backend has no use for it; then callers use end and buf_read):
     * end_ahead ends the batch as end does but returns without waiting for it, with n <= 16 bytes
     * of b from off to be read once it is done; wait_ahead waits for the oldest such batch not
     * yet waited for and writes those bytes to dst. At most two are outstanding. While one is,
     * the caller writes (buf_write) or frees nothing that it reads or writes, and no later batch
     * writes its n bytes before wait_ahead has returned them. */
    int (*end_ahead)(rtr_backend *be, rtr_buf *b, size_t off, size_t n, rtr_err *err);
    int (*wait_ahead)(rtr_backend *be, void *dst, rtr_err *err);
} rtr_backend_ops;

struct rtr_backend {
    const rtr_backend_ops *ops;
    char desc[128]; /* device name for logs and bench output */
};

typedef struct {
    int device;        /* -1: first suitable */
    int require_gpu;   /* "auto" selection: fail unless a real GPU (not a CPU driver such as
                        * lavapipe or PoCL's CPU device) is found; explicit --backend leaves it 0 */
    int n_threads;     /* CPU backend */
    int verbose;
    const char *kernel; /* CPU kernel set name or NULL */
    void (*progress)(uint64_t done, uint64_t total, void *ud); /* weight upload progress */
    void *progress_ud;
} rtr_backend_cfg;

/* Each compiled-in backend provides a create function and a device lister. lister appends
 * human-readable lines to out (cap bytes) and returns the device count (< 0 on error). */
typedef struct {
    const char *name;
    int (*create)(rtr_backend **out, const rtr_backend_cfg *cfg, rtr_err *err);
    int (*list_devices)(char *out, size_t cap);
} rtr_backend_entry;

/* The registry (backends/registry.c): compiled-in backends in preference order, GPU first. */
const rtr_backend_entry *rtr_backend_find(const char *name);
const rtr_backend_entry *const *rtr_backend_all(int *n);
/* A tuning or comparison switch of a GPU backend's environment (ROTOR_VK_*, ROTOR_OPENCL_*):
 * set, non-empty and not "0". */
int rtr_env_flag(const char *name);
/* RoPE's inverse frequency of rotation pair i of rot_dim rd, base theta, in float32 as the
 * reference computes it: every backend's angles come from this (backends/registry.c). */
float rtr_rope_inv_freq(float theta, int i, int rd);

int rtr_cpu_backend_create(rtr_backend **out, const rtr_backend_cfg *cfg, rtr_err *err);
int rtr_cpu_list_devices(char *out, size_t cap);
#ifdef RTR_HAVE_VULKAN
int rtr_vulkan_backend_create(rtr_backend **out, const rtr_backend_cfg *cfg, rtr_err *err);
int rtr_vulkan_list_devices(char *out, size_t cap);
#endif
#ifdef RTR_HAVE_OPENCL
int rtr_opencl_backend_create(rtr_backend **out, const rtr_backend_cfg *cfg, rtr_err *err);
int rtr_opencl_list_devices(char *out, size_t cap);
#endif

#endif
