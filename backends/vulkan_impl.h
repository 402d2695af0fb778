/* vulkan_impl.h: what the parts of the Vulkan backend share. vulkan.c owns the backend's setup,
 * memory, buffers, transfers and submission; vulkan_dev.c finding devices and their
 * capabilities; vulkan_pipe.c the pipelines; vulkan_ops.c op checking, descriptor sets,
 * barriers and command recording. Internal to backends/vulkan*.c. */
#ifndef ROTOR_VULKAN_IMPL_H
#define ROTOR_VULKAN_IMPL_H

#include "backend.h"
#include <vulkan/vulkan.h>

struct rtr_buf {
    VkBuffer buf;
    VkDeviceMemory mem;
    size_t size;        /* bytes the caller asked for */
    VkDeviceSize vsize; /* the VkBuffer's size: size rounded up to 16 */
    uint8_t *map;       /* host mapping, or NULL: transfers then go through staging */
    uint8_t *view;      /* without a mapping: buf_view's host copy (RTR_BUF_HOST: made with the buffer) */
    int flags;
};

/* pipelines: one per shader, the matmuls twice (TMAX 1 for decode, VK_TMAX for batches), the
 * ternary matmul once more with the norm fused in (decode), the float one with the argmax
 * (VP_MMF_1A, greedy decoding's head) */
enum {
    VP_EMBED, VP_NORM, VP_MMT2_1, VP_MMT2_N, VP_MMT2_V, VP_MMT2_VF, VP_MMT2_VS, VP_MMT2_VG, VP_MMT2_G, VP_MMT2_C, VP_MMF_1, VP_MMF_N,
    VP_ROPE, VP_KV, VP_ATTN, VP_ATTND, VP_ATTNB, VP_ATTNC, VP_GLU, VP_ARGMAX, VP_MMF_1A, VP_COUNT
};
/* invocations of a one-token matmul workgroup (mm_t2_vec.comp) for short rows (q/k/v, o), gate/up
 * pairs and long rows (down); ROTOR_VK_VEC_WG sets others (vk_backend.vec_wg, vulkan_pipe.c) */
#define VK_WG_VEC_S 256
#define VK_WG_VEC_G 256
#define VK_WG_VEC_L 512
/* mm_t2_vec.comp's fused-norm variants hold the norm's row in registers, NG words an invocation
 * of a workgroup of wg: VK_VEC_KMAX / 4 / wg for rows up to VK_VEC_KMAX (VP_MMT2_VF), enough for
 * VK_VEC_SHORT_K for shorter rows (VP_MMT2_VS, and VP_MMT2_VG for gate/up pairs). Fewer
 * registers, more workgroups resident at once (BENCH.md). */
#define VK_VEC_SHORT_K 3072u
/* 16-byte weight pieces an invocation holds (MAXU), for short rows, gate/up pairs and long rows:
 * a 2560-wide row in 4 lanes (40 pieces), a 6912-wide one in 16 (108) */
#define VK_VEC_MAXU_S 10
#define VK_VEC_MAXUG 10
#define VK_VEC_MAXU_L 7
#define VK_VEC_KMAX 8192
#define VK_GEMM_SHARED 18432 /* bytes of shared memory mm_t2_gemm.comp takes */
#define VK_COOP_SHARED 43144 /* and attn_coop.comp, the larger of the two matrix shaders */
enum { COOP_I8 = 1, COOP_F16 = 2 }; /* cooperative-matrix shaders a device can run */
#define VK_GEMM_MIN 17        /* batches from this many tokens up use it */
#define VK_ATTND_WG 512       /* invocations of attn_dec.comp (one-row attention over short rings) */
#define VK_ATTND_MAXCAP 512   /* the longest ring it takes (128 slots a split) */

#define VK_NBIND 16  /* storage buffers every shader's set layout has (RTR_NBIND of kernels/vk_bind.glsl) */
#define VK_NOFF ((VK_NBIND + 3) / 4) /* push-constant words of their offsets, four a word */
#define VK_BIND_CHAIN 15 /* the binding of the dispatch-chaining counters (kernels/vk_chain.glsl) */
#define VK_CHAIN_N 4096 /* chaining counters: chained dispatches a batch, at most */
#define VK_TMAX 8    /* tokens a matmul workgroup takes at once in batches */
#define VK_NREC 4    /* recorded batches kept for replay */
#define VK_NPEND 64  /* accesses tracked since the last barrier */
#define VK_CNT_BYTES (64u << 10) /* attention split counters: (row, head) pairs when split */

typedef struct {
    VkBuffer b[VK_NBIND];
    VkDeviceSize off[VK_NBIND], range[VK_NBIND];
} vk_dkey;

typedef struct {
    vk_dkey key;
    VkDescriptorSet set;
    int used, pool;
} vk_dent;

typedef struct {
    const rtr_buf *b;
    size_t lo, hi;
    int w;
} vk_access;

/* A batch ended ahead: its fence, and the bytes to read once it is done (already read: done). */
typedef struct {
    VkFence fence;
    rtr_buf *b;
    size_t off, n;
    int done;
    unsigned char data[16];
} vk_ahead;

/* A recorded batch: its command buffer and the (normalized) ops it was recorded from. */
typedef struct {
    VkCommandBuffer cb;
    rtr_op *ops;
    int n, cap;
    uint64_t stamp;
    int valid;
    double last_s; /* how long its last submit took to finish (0: not run yet) */
    /* ROTOR_VK_PROFILE: a timestamp after each dispatch; pkey[i] is the profile entry of the
     * dispatch that ends at query i + 1 */
    VkQueryPool qp;
    int nq;
    uint8_t *pkey;
} vk_rec;

#define VK_PROF_Q 4096 /* timestamps a recording may take */
#define VK_PROF_K 64   /* profile entries: distinct (pipeline, grid) pairs */
typedef struct {
    int pipe;
    uint32_t gx, gy, gz;
    long calls;
    double ns;
} vk_prof;

typedef struct {
    float theta;
    int rot;
    uint32_t off; /* byte offset in rope_tab */
} vk_rope;

typedef struct {
    rtr_backend base;
    VkInstance inst;
    VkPhysicalDevice pd;
    VkDevice dev;
    VkQueue queue;
    uint32_t qfam;
    VkPhysicalDeviceProperties props;
    VkPhysicalDeviceMemoryProperties memp;
    uint32_t vec_wg[4], vec_lanes[4], vec_maxu[4]; /* VP_MMT2_V + i's workgroup, fewest lanes a row, MAXU */
    int amax; /* the head's product takes the argmax after it (VP_MMF_1A) */
    int sg, dot, vmm, sg_size, portable, chain, no_fuse, no_poll, no_vec, no_vec_glu, no_gemm, no_attnb, no_attnd, argmax1, coop, attn_splits;
    VkDeviceSize align, max_range;
    VkCommandPool cpool;
    VkCommandBuffer up_cb, xfer_cb;
    VkFence fence;
    vk_ahead ahead[2]; /* batches ended ahead (end_ahead), oldest at first_ahead */
    int first_ahead, n_ahead;
    VkDescriptorSetLayout dsl;
    VkPipelineLayout playout;
    VkPipeline pipe[VP_COUNT];
    uint32_t nt_mm; /* weight rows per matmul workgroup */
    /* internal buffers */
    rtr_buf *dummy, *ring, *stage, *part, *cnt, *rope_tab, *sync; /* cnt: attention split counters; sync: chaining */
    rtr_buf *akey; /* VP_MMF_1A's best key and count, zero between its dispatches */
    size_t ring_used;
    int up_open;
    /* descriptor set cache: open addressing on vk_dkey */
    vk_dent *dtab;
    size_t dcap, dcount;
    VkDescriptorPool *dpools;
    int n_dpools;
    /* the batch being collected between begin and end */
    int recording;
    rtr_op *ops;
    int n_ops, cap_ops;
    vk_rec rec[VK_NREC];
    uint64_t stamp;
    vk_access pend[VK_NPEND];
    int n_pend;
    vk_rope rope[16];
    int n_rope;
    uint32_t rope_used;
    int lost;
    void (*progress)(uint64_t, uint64_t, void *);
    void *progress_ud;
    /* ROTOR_VK_PROFILE=FILE: device time per (pipeline, grid), written to FILE when the
     * backend is destroyed (a tuning aid; off by default) */
    char *prof_path;
    vk_prof prof[VK_PROF_K];
    int n_prof;
    long prof_batches;
    double prof_wall, prof_gpu;
    int prof_stats; /* pipelines built with statistics (VK_KHR_pipeline_executable_properties) */
} vk_backend;

/* vulkan.c */
enum { VK_MEM_DEV, VK_MEM_HOST, VK_MEM_STAGE, VK_MEM_SMALL };
rtr_buf *vk_buf_make(vk_backend *vk, size_t bytes, int kind, int flags, rtr_err *err);
void vk_buf_drop(vk_backend *vk, rtr_buf *b);
int vk_write(vk_backend *vk, rtr_buf *b, size_t off, const void *src, size_t n, rtr_err *err);
int vk_fail(vk_backend *vk, VkResult r, const char *what, rtr_err *err);
const char *vk_result_name(VkResult r);

/* vulkan_dev.c */
/* What the shaders may use on a device. */
typedef struct {
    int sg, sg_size, dot, dot_accel, dot_ext, int8, st8, st16;
    int vmm;      /* the Vulkan memory model, device scope included, and used */
    int vmm_mesa; /* the same, but not used: a Mesa before 23 */
    int a64;      /* 64-bit integers and their atomics on storage buffers */
    int coop; /* COOP_* shaders the device can run */
    char driver[VK_MAX_DRIVER_NAME_SIZE + VK_MAX_DRIVER_INFO_SIZE + 2];
} vk_caps;
int vk_make_instance(VkInstance *out, rtr_err *err);
int vk_has_ext(VkPhysicalDevice pd, const char *name);
void vk_query_caps(VkInstance inst, VkPhysicalDevice pd, vk_caps *c);

/* vulkan_pipe.c */
int vk_has_shader(const char *name);
void vk_vec_settings(vk_backend *vk);
int vk_make_pipelines(vk_backend *vk, rtr_err *err);

/* vulkan_ops.c */
int vk_op_check(vk_backend *vk, const rtr_op *op, rtr_op *norm, rtr_err *err);
int vk_prepare(vk_backend *vk, rtr_err *err);
int vk_record(vk_backend *vk, vk_rec *rec, rtr_err *err);
void vk_forget_buffer(vk_backend *vk, const rtr_buf *b);
void vk_desc_free_all(vk_backend *vk);

#endif
