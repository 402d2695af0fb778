/* opencl_impl.h: what backends/opencl.c (device, buffers, batches), backends/opencl_prog.c (the
 * kernel program and its disk cache) and backends/opencl_ops.c (one enqueue per op) share.
 * Private to the OpenCL backend. */
#ifndef ROTOR_OPENCL_IMPL_H
#define ROTOR_OPENCL_IMPL_H

#include "backend.h"

#include <CL/cl.h>

struct rtr_buf {
    cl_mem mem;
    size_t bytes;
    cl_mem pool; /* the block mem was carved from (reserve; its offset is in the backend's pmap), or NULL */
    /* buf_view's host copy: RTR_BUF_HOST buffers of a discrete device get page-locked memory (a
     * buffer of CL_MEM_ALLOC_HOST_PTR mapped for good, pin), which the device writes at full
     * speed, other RTR_BUF_HOST buffers a malloc'd copy made with them, any other buffer one
     * made on its first view */
    cl_mem pin;
    unsigned char *host;
};

/* Mirror of rtr_params in kernels/_common.cl: element offsets of the buffer arguments, then
 * integer and float scalars. Passed by value as each kernel's last argument. */
typedef struct {
    cl_ulong off[15];
    cl_int i[14];
    cl_float f[5];
} cl_params;

enum {
    K_EMBED,
    K_RMSNORM,
    K_GEMV_T2,
    K_GEMM_T2,
    K_T2_VEC,
    K_T2_VEC_S,
    K_T2_VEC_G,
    K_T2_VEC1, /* the three above with fewer arguments: one matrix, */
    K_T2_VEC_S1,
    K_T2_VEC_G2, /* a gate/up pair */
    K_T2_VEC_P,  /* the first three with blocks for arguments (pooled in opencl_ops.c) */
    K_T2_VEC_S_P,
    K_T2_VEC_G_P,
    K_MATMUL_F,
    K_MATMUL_F_VEC, /* one token */
    K_ROPE_KV,
    K_ATTN,
    K_ATTN4,
    K_ATTN4S,
    K_ATTN1, /* one head a work-group (one-row attention) */
    K_ATTN1S,
    K_ATTN_DEC, /* one row, one head a work-group, every read of a chunk at once (attn_dec.cl) */
    K_ATTN_DEC_P, /* the same with the session's block for an argument */
    K_ATTN_MERGE,
    K_GLU,
    K_ADD,
    K_ARGMAX,
    K_ARGMAX_SPLIT, /* a row over several work-groups, the last joining them */
    K_COUNT
};
#define CL_MAX_ARGS 16
#define CL_PMAP 4096 /* sub-buffers whose block a launch may take instead (pool_of in opencl_ops.c) */
#define CL_ROPE_MAX 16 /* (theta, rot_dim) pairs with a table of inverse frequencies in rope_tab */
#define CL_ROPE_FLOATS 16384 /* rope_tab's size */
#define CL_ATTN_CNT 4096 /* attention (row, head group) pairs whose splits merge in the attention launch */
#define CL_AM_CNT 64 /* rows argmax_split takes at most (a counter each) */

/* One kernel launch, ready to enqueue. */
typedef struct {
    int k, nmem;
    cl_mem m[CL_MAX_ARGS]; /* NULL: the dummy buffer */
    cl_params p;
    cl_uint dims;
    size_t g[3], l[3];
} cl_launch;

/* cl_khr_command_buffer's entry points (revisions 0.9.x), and what opencl_cmdbuf.c keeps */
typedef void *(*cl_cb_create_fn)(cl_uint, const cl_command_queue *, const cl_ulong *, cl_int *);
typedef cl_int (*cl_cb_ndrange_fn)(void *, cl_command_queue, const cl_ulong *, cl_kernel, cl_uint, const size_t *,
                                   const size_t *, const size_t *, cl_uint, const cl_uint *, cl_uint *, void *);
typedef cl_int (*cl_cb_one_fn)(void *);
typedef cl_int (*cl_cb_enqueue_fn)(cl_uint, cl_command_queue *, void *, cl_uint, const cl_event *, cl_event *);
typedef struct {
    int on;        /* offered, usable and not turned off */
    int recording; /* between begin and end: launches go to log */
    cl_cb_create_fn create;
    cl_cb_ndrange_fn ndrange;
    cl_cb_one_fn finalize, release;
    cl_cb_enqueue_fn enqueue;
    cl_launch *log, *last; /* this batch's launches; the last batch's (what cb holds, if cb) */
    int n, n_last;
    void *cb; /* the command buffer of last, or NULL */
    cl_kernel *kern; /* the kernel object of each recorded launch, and its K_* */
    int *kern_k;
    long recorded, replays; /* counts, for tests */
} cl_cmd;

enum { HELD_ROPE = 1, HELD_GLU = 2, HELD_NORM = 3, HELD_MM = 4, HELD_QKV = 5 };

typedef struct {
    rtr_backend base;
    cl_platform_id plat;
    cl_device_id dev;
    cl_context ctx;
    cl_command_queue q;
    cl_program prog;
    cl_kernel k[K_COUNT];
    cl_mem last_arg[K_COUNT][CL_MAX_ARGS]; /* skip clSetKernelArg when a buffer is unchanged */
    size_t norm_wg;   /* work-group size of rmsnorm (power of two) */
    size_t argmax_wg; /* and of argmax (at most 1024) */
    size_t argmax_split_wg; /* and of argmax_split (at most 256; 0: argmax only, or ROTOR_OPENCL_ARGMAX1=1) */
    cl_uint n_cu;
    int attn_splits; /* ROTOR_OPENCL_ATTN_SPLITS: most splits of the ring in attention (tuning) */
    int no_attn4;    /* attention always through the 8-head kernel (ROTOR_OPENCL_NOATTN4), for comparison */
    int no_attn_dec; /* one-row attention through attn1 (ROTOR_OPENCL_NOATTNDEC, or work-groups too small) */
    int attn_grouped; /* one-row attention a head group a work-group (ROTOR_OPENCL_ATTN_GROUPED), for comparison */
    int attn_merge_launch; /* attention splits merged by attn_merge (ROTOR_OPENCL_MERGE_LAUNCH), for comparison */
    int no_fuse_rkv; /* RoPE and KV store kept out of the q/k/v product (ROTOR_OPENCL_NORKV), for comparison */
    int no_vec_glu; /* matmul_t2_vec_g turned off (ROTOR_OPENCL_NOVECGLU), for comparison */
    int no_pin;     /* views of RTR_BUF_HOST buffers through malloc'd memory (ROTOR_OPENCL_NOPIN), for comparison */
    int no_fvec;    /* the LM head of one token through matmul_f (ROTOR_OPENCL_NOFVEC), for comparison */
    int full_args;  /* one-token products always through the kernels of all arguments (ROTOR_OPENCL_FULLARGS) */
    int no_vec; /* matmul_t2_vec unusable (work-group too large) or turned off (ROTOR_OPENCL_NOVEC) */
    int host_unified; /* CPU-like device: weights may alias host memory */
    cl_uint base_align; /* CL_DEVICE_MEM_BASE_ADDR_ALIGN, bytes */
    cl_ulong max_alloc;
    cl_mem attn_cnt; /* CL_ATTN_CNT counters: the splits of an attention (row, head group) that finished */
    cl_mem am_cnt; /* CL_AM_CNT counters: the work-groups of an argmax_split row that finished */
    cl_mem dummy; /* bound where an operand is absent */
    cl_mem rope_tab; /* RoPE inverse frequencies, a run of rot_dim / 2 floats per (theta, rot_dim) */
    struct {
        cl_mem blk; /* the current reservation's block (0: activations, 1: weights), or NULL */
        size_t size, used;
    } res[2];
    struct {
        cl_mem sub, pool; /* sub: NULL free; pool: NULL for a deleted entry */
        size_t base;
    } pmap[CL_PMAP]; /* open addressing on sub */
    int no_pool; /* buffers made one by one, launches without blocks (ROTOR_OPENCL_NOPOOL), for comparison */
    int no_pool_launch; /* launches without blocks (ROTOR_OPENCL_NOPOOLARGS, or the kernels' work-groups too small) */
    int pool_weights; /* weights in blocks on a device that could alias host memory too (ROTOR_OPENCL_POOL=1) */
    struct {
        float theta;
        int rd;
        cl_uint off; /* floats into rope_tab */
    } rope[CL_ROPE_MAX];
    int n_rope;
    cl_uint rope_used; /* floats of rope_tab taken */
    cl_mem scratch; /* attention partials and quantized LM-head input; grows, never shrinks */
    size_t scratch_bytes;
    unsigned char *stage; /* host copies of small buf_writes, alive until the queue drains */
    size_t stage_cap, stage_used;
    /* batches ended ahead (end_ahead), oldest first: each one's bytes land in ahead_dst[slot]
     * (page-locked where the device is not the host) when its event completes */
    cl_event ahead_ev[2];
    size_t ahead_len[2];
    int ahead_first, ahead_n;
    cl_mem ahead_pin;
    unsigned char *ahead_dst, ahead_mem[2 * 16];
    int pending; /* enqueues since the last flush */
    int flushed; /* a clFlush happened since the batch began */
    int flush_first, flush_every; /* enqueues before a batch's first clFlush, and between later ones
                                   * (4 and 32; ROTOR_OPENCL_FLUSH=first,every for tuning) */
    int held; /* HELD_*: a launch held back in case the next op fuses with it */
    int held_n;
    cl_launch held_launch;
    rtr_op held_op[3]; /* the op(s) behind it */
    cl_cmd cmd; /* command-buffer recording and replay (opencl_cmdbuf.c) */
    void (*progress)(uint64_t, uint64_t, void *);
    void *progress_ud;
    /* ROTOR_OPENCL_PROFILE=FILE: device time per kernel, written to FILE when the backend is
     * destroyed (a tuning aid; off by default, and then nothing here costs anything) */
    char *prof_path;
    cl_event *prof_ev;
    int *prof_k, prof_n, prof_cap;
    double prof_ns[K_COUNT], prof_wall, prof_t0, prof_gpu, prof_span;
    long prof_calls[K_COUNT], prof_batches;
} cl_backend;

/* backends/opencl.c */
int cl_fail(rtr_err *err, const char *what, cl_int rc);
const char *cl_kernel_name(int k);
const char *cl_errname(cl_int rc);
int cl_scratch(cl_backend *b, size_t bytes, rtr_err *err);
/* the block of sub-buffer m and m's byte offset in it; 0 when m is no sub-buffer */
int cl_pool_of(const cl_backend *b, cl_mem m, cl_mem *pool, size_t *base);
/* the offset (floats) in rope_tab of the inverse frequencies for (theta, rot_dim rd), written
 * there the first time they are asked for */
int cl_rope_tab(cl_backend *b, float theta, int rd, cl_ulong *off, rtr_err *err);
/* a device's string attribute what into buf (empty where it has none) */
void cl_dev_str(cl_device_id d, cl_device_info what, char *buf, size_t cap);
/* whether the device lists extension name */
int cl_has_ext(cl_device_id d, const char *name);

/* backends/opencl_prog.c */
/* the program for this device (from the disk cache or built) and every kernel of it */
int cl_build_kernels(cl_backend *b, int verbose, rtr_err *err);

/* backends/opencl_ops.c */
int cl_run(rtr_backend *be, const rtr_op *op, rtr_err *err);
int cl_flush_held(cl_backend *b, rtr_err *err); /* enqueues a held-back launch, if any */
/* L's arguments on kernel kk (the dummy buffer for absent ones), skipping buffers last[] already
 * holds and noting the new ones there; last may be NULL */
int cl_set_args(cl_backend *b, cl_kernel kk, const cl_launch *L, cl_mem *last, rtr_err *err);
int cl_enqueue_launch(cl_backend *b, const cl_launch *L, rtr_err *err); /* onto the queue, now */

/* backends/opencl_cmdbuf.c */
void cl_cmdbuf_init(cl_backend *b, int offered, cl_command_queue_properties qprops);
void cl_cmdbuf_free(cl_backend *b);
void cl_cmdbuf_drop(cl_backend *b);
void cl_cmdbuf_begin(cl_backend *b);
int cl_cmdbuf_log(cl_backend *b, const cl_launch *L, rtr_err *err);
int cl_cmdbuf_spill(cl_backend *b, rtr_err *err);
int cl_cmdbuf_end(cl_backend *b, rtr_err *err);

#endif
