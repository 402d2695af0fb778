/* vulkan.c: the Vulkan backend's device half: device selection and setup, memory and buffers,
 * transfers (staging for weights and read-back, an upload ring for small per-batch writes), and
 * begin/run/end with a fenced submit that never waits forever. Finding devices and their
 * capabilities lives in vulkan_dev.c, the pipelines in vulkan_pipe.c, op checking and command
 * recording in vulkan_ops.c.
 *
 * Memory: weights and large buffers are device-local, uploaded through a staging buffer in
 * chunks; RTR_BUF_HOST buffers live in host-visible (cached) memory; other small buffers
 * (ids, positions, slot tables, per-row scales) go to device-local host-visible memory when the
 * device has it, so writing them is a memcpy. A write to a buffer the host cannot map is copied
 * into the upload ring and queued: it reaches the device before the next batch's ops.
 * Batches: run() only checks and collects ops; end() replays an identical earlier recording
 * (decode repeats the same ops every token) or records a new one, then submits and waits;
 * end_ahead() submits without waiting (two batches in flight at most, a fence each), and
 * wait_ahead() waits for the oldest and reads its few bytes.
 * Environment (tuning and test aids, all off by default): ROTOR_VK_PORTABLE=1 keeps to core
 * Vulkan 1.1 (no subgroup or dot product shaders, no mapped device memory), to test those paths
 * on any device. For comparison: ROTOR_VK_NOFUSE=1 turns off the fusions of vulkan_ops.c;
 * ROTOR_VK_NOPOLL=1 waits for every batch blocking; ROTOR_VK_NOVEC=1, ROTOR_VK_NOGEMM=1 and
 * ROTOR_VK_NOATTNB=1 send one-token products, batched products and batched attention back to
 * the older general shaders (mm_t2.comp, attn.comp), and ROTOR_VK_NOATTND=1 one-row attention
 * over short rings (attn_dec.comp); ROTOR_VK_NOCOOP=1 keeps batched products
 * and attention off the matrix hardware (mm_t2_coop.comp, attn_coop.comp); ROTOR_VK_NOVECGLU=1
 * gives a gate/up pair the general short-row variant of mm_t2_vec.comp instead of its own;
 * ROTOR_VK_ARGMAX1=1 finds a row's largest value in one workgroup instead of several, and
 * ROTOR_VK_NOAMAX=1 keeps greedy decoding's argmax out of the LM head's product (mm_f.comp);
 * ROTOR_VK_NOVMM=1 keeps the chained shaders off the Vulkan memory model (vk_chain.glsl).
 * Tuning: ROTOR_VK_VEC_WG=N or S,G,L sets mm_t2_vec.comp's workgroup sizes (128, 256, 512 or
 * 1024; S for short rows such as q/k/v and o, G for gate/up pairs, L for long rows such as
 * down; default 256,256,512), ROTOR_VK_VEC_LANES=N or S,G,L the fewest lanes a weight row
 * (4, 8, 16 or 32; more where a row needs them) and ROTOR_VK_VEC_PIECES=N or S,G,L the 16-byte
 * weight pieces an invocation holds (4 to 16; default 10,10,7);
 * ROTOR_VK_ATTN_SPLITS=N caps how many splits decode attention makes of the ring;
 * ROTOR_VK_PROFILE=FILE writes device time per dispatch kind to FILE when the backend is
 * destroyed, with the driver's statistics of each pipeline (registers, shared memory) where it
 * reports them. */
#include "vulkan_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VK_TIMEOUT_NS 60000000000ull /* a batch that takes longer is treated as a hang */
#define VK_STAGE_BYTES (64u << 20)
#define VK_RING_BYTES (1u << 20)
#define VK_SMALL_BYTES (1u << 20)
#define VK_PART_BYTES (2u << 20)

const char *vk_result_name(VkResult r) {
    switch (r) {
    case VK_ERROR_OUT_OF_HOST_MEMORY: return "out of host memory";
    case VK_ERROR_OUT_OF_DEVICE_MEMORY: return "out of device memory";
    case VK_ERROR_INITIALIZATION_FAILED: return "initialization failed";
    case VK_ERROR_DEVICE_LOST: return "device lost";
    case VK_ERROR_MEMORY_MAP_FAILED: return "memory map failed";
    case VK_ERROR_EXTENSION_NOT_PRESENT: return "extension not present";
    case VK_ERROR_FEATURE_NOT_PRESENT: return "feature not present";
    case VK_ERROR_INCOMPATIBLE_DRIVER: return "incompatible driver";
    case VK_ERROR_TOO_MANY_OBJECTS: return "too many objects";
    case VK_ERROR_OUT_OF_POOL_MEMORY: return "out of pool memory";
    case VK_TIMEOUT: return "timeout";
    default: return "error";
    }
}

int vk_fail(vk_backend *vk, VkResult r, const char *what, rtr_err *err) {
    if (r == VK_ERROR_DEVICE_LOST && vk) vk->lost = 1;
    int code = (r == VK_ERROR_OUT_OF_HOST_MEMORY || r == VK_ERROR_OUT_OF_DEVICE_MEMORY) ? RTR_ENOMEM : RTR_EBACKEND;
    return rtr_seterr(err, code, "vulkan: %s failed (%s, %d)", what, vk_result_name(r), (int)r);
}

static int lost_err(rtr_err *err) {
    return rtr_seterr(err, RTR_EBACKEND, "vulkan: the device was lost or hung earlier; nothing more can run");
}

/* ---- submission ---- */

/* Submits command buffers and waits for them with a timeout. A hang or device loss marks the
 * backend lost: every later call fails instead of touching the device. The driver's blocking
 * wait wakes this thread tens of microseconds after the GPU is done, which a decode step of two
 * milliseconds feels (BENCH.md); so a short batch whose duration is known from its last run
 * (*last, seconds; NULL or 0 when not) sleeps through all but the last VK_POLL_S of that time
 * and then polls the fence. One that overruns its last time by far, or is long or new, is
 * waited for blocking. */
#define VK_POLL_S 200e-6
#define VK_POLL_MAX_S 50e-3
/* The end of a wait for fence f whose last result was r (VK_TIMEOUT or VK_NOT_READY: not yet
 * signalled): waits the rest of VK_TIMEOUT_NS, and a hang or failure marks the backend lost;
 * the fence is reset for its next submit. */
static int fence_done(vk_backend *vk, VkFence f, VkResult r, rtr_err *err) {
    if (r == VK_TIMEOUT || r == VK_NOT_READY) r = vkWaitForFences(vk->dev, 1, &f, VK_TRUE, VK_TIMEOUT_NS);
    if (r == VK_TIMEOUT) {
        vk->lost = 1;
        return rtr_seterr(err, RTR_EBACKEND, "vulkan: the GPU did not finish a batch within %llu s (hung)",
                          VK_TIMEOUT_NS / 1000000000ull);
    }
    if (r != VK_SUCCESS) { vk->lost = 1; return vk_fail(vk, r, "waiting for the GPU", err); }
    vkResetFences(vk->dev, 1, &f);
    return 0;
}

static int submit_wait(vk_backend *vk, const VkCommandBuffer *cbs, int n, double *last, rtr_err *err) {
    VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = (uint32_t)n, .pCommandBuffers = cbs};
    double t0 = rtr_now();
    VkResult r = vkQueueSubmit(vk->queue, 1, &si, vk->fence);
    if (r != VK_SUCCESS) { vk->lost = r == VK_ERROR_DEVICE_LOST; return vk_fail(vk, r, "vkQueueSubmit", err); }
    r = VK_NOT_READY;
    if (last && *last > 0 && *last < VK_POLL_MAX_S && !vk->no_poll) {
        if (*last > VK_POLL_S) r = vkWaitForFences(vk->dev, 1, &vk->fence, VK_TRUE, (uint64_t)((*last - VK_POLL_S) * 1e9));
        while ((r == VK_TIMEOUT || r == VK_NOT_READY) && rtr_now() - t0 < 2 * *last + VK_POLL_S)
            r = vkGetFenceStatus(vk->dev, vk->fence);
    }
    int rc = fence_done(vk, vk->fence, r, err);
    if (!rc && last) *last = rtr_now() - t0;
    return rc;
}

/* Every command buffer starts and ends with a full barrier: earlier submissions' writes are
 * visible to it, and its writes to the host and to later transfers. */
static void cb_full_barrier(VkCommandBuffer cb, int to_host) {
    VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                          .srcAccessMask = VK_ACCESS_MEMORY_WRITE_BIT,
                          .dstAccessMask = VK_ACCESS_MEMORY_READ_BIT | VK_ACCESS_MEMORY_WRITE_BIT |
                                           (to_host ? VK_ACCESS_HOST_READ_BIT : 0)};
    vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_ALL_COMMANDS_BIT,
                         VK_PIPELINE_STAGE_ALL_COMMANDS_BIT | (to_host ? VK_PIPELINE_STAGE_HOST_BIT : 0), 0, 1, &mb,
                         0, NULL, 0, NULL);
}

static int cb_begin(vk_backend *vk, VkCommandBuffer cb, int once, rtr_err *err) {
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                   .flags = once ? VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT : 0};
    VkResult r = vkBeginCommandBuffer(cb, &bi);
    if (r != VK_SUCCESS) return vk_fail(vk, r, "vkBeginCommandBuffer", err);
    cb_full_barrier(cb, 0);
    return 0;
}

/* Sends the queued uploads now (before a read-back or a synchronous transfer). */
static int flush_uploads(vk_backend *vk, rtr_err *err) {
    if (!vk->up_open) return 0;
    vk->up_open = 0;
    vk->ring_used = 0;
    cb_full_barrier(vk->up_cb, 1);
    VkResult r = vkEndCommandBuffer(vk->up_cb);
    if (r != VK_SUCCESS) return vk_fail(vk, r, "vkEndCommandBuffer", err);
    int rc = submit_wait(vk, &vk->up_cb, 1, NULL, err);
    vkResetCommandBuffer(vk->up_cb, 0);
    return rc;
}

static int open_uploads(vk_backend *vk, rtr_err *err) {
    if (vk->up_open) return 0;
    int rc = cb_begin(vk, vk->up_cb, 1, err);
    if (!rc) vk->up_open = 1;
    return rc;
}

/* One synchronous copy between buffers (staging <-> device-local). */
static int copy_now(vk_backend *vk, VkBuffer src, VkDeviceSize soff, VkBuffer dst, VkDeviceSize doff,
                    VkDeviceSize n, rtr_err *err) {
    int rc = cb_begin(vk, vk->xfer_cb, 1, err);
    if (rc) return rc;
    VkBufferCopy reg = {soff, doff, n};
    vkCmdCopyBuffer(vk->xfer_cb, src, dst, 1, &reg);
    cb_full_barrier(vk->xfer_cb, 1);
    VkResult r = vkEndCommandBuffer(vk->xfer_cb);
    if (r != VK_SUCCESS) return vk_fail(vk, r, "vkEndCommandBuffer", err);
    rc = submit_wait(vk, &vk->xfer_cb, 1, NULL, err);
    vkResetCommandBuffer(vk->xfer_cb, 0);
    return rc;
}

/* ---- memory and buffers ---- */

static int pick_type(const vk_backend *vk, uint32_t bits, VkMemoryPropertyFlags want, VkMemoryPropertyFlags avoid) {
    for (uint32_t i = 0; i < vk->memp.memoryTypeCount; i++) {
        VkMemoryPropertyFlags f = vk->memp.memoryTypes[i].propertyFlags;
        if ((bits >> i & 1) && (f & want) == want && !(f & avoid)) return (int)i;
    }
    return -1;
}

static int type_for(const vk_backend *vk, uint32_t bits, int kind) {
    const VkMemoryPropertyFlags DL = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, HV = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT,
                                HC = VK_MEMORY_PROPERTY_HOST_COHERENT_BIT, CA = VK_MEMORY_PROPERTY_HOST_CACHED_BIT;
    int t = -1;
    switch (kind) {
    case VK_MEM_HOST:
        if ((t = pick_type(vk, bits, HV | HC | CA, 0)) < 0) t = pick_type(vk, bits, HV | HC, 0);
        break;
    case VK_MEM_STAGE:
        if ((t = pick_type(vk, bits, HV | HC, DL)) < 0) t = pick_type(vk, bits, HV | HC, 0);
        break;
    case VK_MEM_SMALL:
        if (!vk->portable && (t = pick_type(vk, bits, DL | HV | HC, 0)) >= 0) break;
        /* fall through */
    default:
        if ((t = pick_type(vk, bits, DL, HV)) < 0 && (t = pick_type(vk, bits, DL, 0)) < 0) t = pick_type(vk, bits, 0, 0);
    }
    return t;
}

rtr_buf *vk_buf_make(vk_backend *vk, size_t bytes, int kind, int flags, rtr_err *err) {
    rtr_buf *b = calloc(1, sizeof *b);
    if (!b) { rtr_seterr(err, RTR_ENOMEM, "out of memory"); return NULL; }
    b->size = bytes;
    b->flags = flags;
    b->vsize = (bytes + 15) / 16 * 16;
    if (!b->vsize) b->vsize = 16;
    VkBufferCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .size = b->vsize,
                             .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                                      VK_BUFFER_USAGE_TRANSFER_DST_BIT,
                             .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
    VkResult r = vkCreateBuffer(vk->dev, &ci, NULL, &b->buf);
    if (r != VK_SUCCESS) { free(b); vk_fail(vk, r, "vkCreateBuffer", err); return NULL; }
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(vk->dev, b->buf, &req);
    int t = type_for(vk, req.memoryTypeBits, kind);
    if (t < 0) {
        vkDestroyBuffer(vk->dev, b->buf, NULL);
        free(b);
        rtr_seterr(err, RTR_EBACKEND, "vulkan: no memory type fits a buffer of %zu bytes", bytes);
        return NULL;
    }
    VkMemoryAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO, .allocationSize = req.size,
                               .memoryTypeIndex = (uint32_t)t};
    r = vkAllocateMemory(vk->dev, &ai, NULL, &b->mem);
    if (r != VK_SUCCESS && kind == VK_MEM_SMALL) { /* the host-visible device heap can be small */
        ai.memoryTypeIndex = (uint32_t)(t = type_for(vk, req.memoryTypeBits, VK_MEM_DEV));
        r = vkAllocateMemory(vk->dev, &ai, NULL, &b->mem);
    }
    if (r != VK_SUCCESS) {
        vkDestroyBuffer(vk->dev, b->buf, NULL);
        free(b);
        if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY)
            rtr_seterr(err, RTR_ENOMEM, "vulkan: out of %s memory allocating %.1f MB",
                       r == VK_ERROR_OUT_OF_DEVICE_MEMORY ? "device" : "host", bytes / 1e6);
        else vk_fail(vk, r, "vkAllocateMemory", err);
        return NULL;
    }
    vkBindBufferMemory(vk->dev, b->buf, b->mem, 0);
    VkMemoryPropertyFlags f = vk->memp.memoryTypes[t].propertyFlags;
    int mappable = (f & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT) && (f & VK_MEMORY_PROPERTY_HOST_COHERENT_BIT);
    if (vk->portable && (kind == VK_MEM_DEV || kind == VK_MEM_SMALL)) mappable = 0;
    if (mappable) {
        void *p;
        if ((r = vkMapMemory(vk->dev, b->mem, 0, VK_WHOLE_SIZE, 0, &p)) != VK_SUCCESS) {
            vk_buf_drop(vk, b);
            vk_fail(vk, r, "vkMapMemory", err);
            return NULL;
        }
        b->map = p;
    }
    return b;
}

void vk_buf_drop(vk_backend *vk, rtr_buf *b) {
    if (!b) return;
    if (b->map) vkUnmapMemory(vk->dev, b->mem);
    free(b->view);
    vkDestroyBuffer(vk->dev, b->buf, NULL);
    vkFreeMemory(vk->dev, b->mem, NULL);
    free(b);
}

static int ensure_stage(vk_backend *vk, rtr_err *err) {
    if (!vk->stage && !(vk->stage = vk_buf_make(vk, VK_STAGE_BYTES, VK_MEM_STAGE, 0, err))) return err ? err->code : RTR_ENOMEM;
    if (!vk->stage->map) return rtr_seterr(err, RTR_EBACKEND, "vulkan: staging memory is not mappable");
    return 0;
}

/* Writes through mapping, the upload ring (small writes, queued) or staging (large, now). */
int vk_write(vk_backend *vk, rtr_buf *b, size_t off, const void *src, size_t n, rtr_err *err) {
    if (!n) return 0;
    if (b->map) {
        memcpy(b->map + off, src, n);
        if ((b->flags & RTR_BUF_WEIGHT) && vk->progress) vk->progress(n, n, vk->progress_ud);
        return 0;
    }
    int rc;
    if (n <= VK_RING_BYTES / 4) {
        if (!vk->ring && !(vk->ring = vk_buf_make(vk, VK_RING_BYTES, VK_MEM_STAGE, 0, err))) return err ? err->code : RTR_ENOMEM;
        if (vk->ring_used + n > VK_RING_BYTES && (rc = flush_uploads(vk, err))) return rc;
        if ((rc = open_uploads(vk, err))) return rc;
        memcpy(vk->ring->map + vk->ring_used, src, n);
        VkBufferCopy reg = {vk->ring_used, off, n};
        vkCmdCopyBuffer(vk->up_cb, vk->ring->buf, b->buf, 1, &reg);
        vk->ring_used = (vk->ring_used + n + 15) / 16 * 16;
        return 0;
    }
    if ((rc = flush_uploads(vk, err)) || (rc = ensure_stage(vk, err))) return rc;
    int weight = (b->flags & RTR_BUF_WEIGHT) != 0;
    for (size_t done = 0; done < n;) {
        size_t c = n - done < VK_STAGE_BYTES ? n - done : VK_STAGE_BYTES;
        memcpy(vk->stage->map, (const uint8_t *)src + done, c);
        if ((rc = copy_now(vk, vk->stage->buf, 0, b->buf, off + done, c, err))) return rc;
        done += c;
        if (weight && vk->progress) vk->progress(done, n, vk->progress_ud);
    }
    return 0;
}

static rtr_buf *vkb_buf_new(rtr_backend *be, size_t bytes, const void *host, int flags, rtr_err *err) {
    vk_backend *vk = (vk_backend *)be;
    if (vk->lost) { lost_err(err); return NULL; }
    if (bytes > ((size_t)1 << 40)) {
        rtr_seterr(err, RTR_EARG, "vulkan: buffer of %zu bytes is too large", bytes);
        return NULL;
    }
    int kind = (flags & RTR_BUF_HOST) ? VK_MEM_HOST : (flags & RTR_BUF_WEIGHT) ? VK_MEM_DEV
             : bytes <= VK_SMALL_BYTES ? VK_MEM_SMALL : VK_MEM_DEV;
    rtr_buf *b = vk_buf_make(vk, bytes, kind, flags, err);
    if (!b) return NULL;
    /* a host-read buffer without a mapping gets its view copy now, not on its first view in
     * the token loop */
    if ((flags & RTR_BUF_HOST) && !b->map && !(b->view = malloc(b->size ? b->size : 1))) {
        vk_buf_drop(vk, b);
        rtr_seterr(err, RTR_ENOMEM, "out of memory");
        return NULL;
    }
    int rc = 0;
    if (host) rc = vk_write(vk, b, 0, host, bytes, err);
    else if (b->map) memset(b->map, 0, b->vsize);
    else if (!(rc = open_uploads(vk, err))) vkCmdFillBuffer(vk->up_cb, b->buf, 0, b->vsize, 0);
    if (rc) { vk_buf_drop(vk, b); return NULL; }
    return b;
}

static void vkb_buf_free(rtr_backend *be, rtr_buf *b) {
    vk_backend *vk = (vk_backend *)be;
    if (!b) return;
    if (vk->up_open && !vk->lost) flush_uploads(vk, NULL); /* it may hold copies into b */
    vk_forget_buffer(vk, b);
    vk_buf_drop(vk, b);
}

static int vkb_buf_write(rtr_backend *be, rtr_buf *b, size_t off, const void *src, size_t n, rtr_err *err) {
    vk_backend *vk = (vk_backend *)be;
    if (vk->lost) return lost_err(err);
    if (!b || off > b->size || n > b->size - off) return rtr_seterr(err, RTR_EARG, "vulkan: write out of bounds");
    return vk_write(vk, b, off, src, n, err);
}

static int vkb_buf_read(rtr_backend *be, rtr_buf *b, size_t off, void *dst, size_t n, rtr_err *err) {
    vk_backend *vk = (vk_backend *)be;
    if (vk->lost) return lost_err(err);
    if (!b || off > b->size || n > b->size - off) return rtr_seterr(err, RTR_EARG, "vulkan: read out of bounds");
    int rc = flush_uploads(vk, err);
    if (rc) return rc;
    if (b->map) { memcpy(dst, b->map + off, n); return 0; }
    if ((rc = ensure_stage(vk, err))) return rc;
    for (size_t done = 0; done < n;) {
        size_t c = n - done < VK_STAGE_BYTES ? n - done : VK_STAGE_BYTES;
        if ((rc = copy_now(vk, b->buf, off + done, vk->stage->buf, 0, c, err))) return rc;
        memcpy((uint8_t *)dst + done, vk->stage->map, c);
        done += c;
    }
    return 0;
}

/* a mapped buffer is its own view; another is read into a host copy of its own */
static const void *vkb_buf_view(rtr_backend *be, rtr_buf *b, size_t off, size_t n, rtr_err *err) {
    vk_backend *vk = (vk_backend *)be;
    if (vk->lost) { lost_err(err); return NULL; }
    if (!b || off > b->size || n > b->size - off) {
        rtr_seterr(err, RTR_EARG, "vulkan: view out of bounds");
        return NULL;
    }
    if (b->map) return flush_uploads(vk, err) ? NULL : b->map + off;
    if (!b->view && !(b->view = malloc(b->size ? b->size : 1))) {
        rtr_seterr(err, RTR_ENOMEM, "out of memory");
        return NULL;
    }
    return vkb_buf_read(be, b, off, b->view + off, n, err) ? NULL : b->view + off;
}

/* ---- profiling (ROTOR_VK_PROFILE) ---- */

static void prof_collect(vk_backend *vk, const vk_rec *rec, double wall) {
    uint64_t ts[VK_PROF_Q];
    vk->prof_batches++;
    vk->prof_wall += wall;
    if (!rec->qp || rec->nq < 2 ||
        vkGetQueryPoolResults(vk->dev, rec->qp, 0, (uint32_t)rec->nq, sizeof ts, ts, 8, VK_QUERY_RESULT_64_BIT) != VK_SUCCESS)
        return;
    double per = vk->props.limits.timestampPeriod;
    for (int i = 1; i < rec->nq; i++) {
        double ns = (double)(ts[i] - ts[i - 1]) * per;
        vk_prof *p = &vk->prof[rec->pkey[i - 1]];
        p->calls++;
        p->ns += ns;
        vk->prof_gpu += ns;
    }
}

/* The driver's own figures for each pipeline (registers, shared memory, ...), where the device
 * reports them: what decides how many workgroups a multiprocessor holds at once. */
static void prof_stats(vk_backend *vk, FILE *f, const char *const *names) {
    PFN_vkGetPipelineExecutableStatisticsKHR get =
        (PFN_vkGetPipelineExecutableStatisticsKHR)vkGetDeviceProcAddr(vk->dev, "vkGetPipelineExecutableStatisticsKHR");
    if (!get) return;
    fprintf(f, "pipeline statistics (driver):\n");
    for (int i = 0; i < VP_COUNT; i++) {
        if (!vk->pipe[i]) continue;
        VkPipelineExecutableInfoKHR ei = {.sType = VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_INFO_KHR, .pipeline = vk->pipe[i]};
        VkPipelineExecutableStatisticKHR st[16];
        uint32_t n = 16;
        for (uint32_t j = 0; j < n; j++) st[j] = (VkPipelineExecutableStatisticKHR){.sType = VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_STATISTIC_KHR};
        if (get(vk->dev, &ei, &n, st) < 0) continue;
        fprintf(f, "%-16s", names[i]);
        for (uint32_t j = 0; j < n; j++) {
            fprintf(f, " %s=", st[j].name);
            switch (st[j].format) {
            case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_BOOL32_KHR: fprintf(f, "%u", st[j].value.b32); break;
            case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_INT64_KHR: fprintf(f, "%lld", (long long)st[j].value.i64); break;
            case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_UINT64_KHR: fprintf(f, "%llu", (unsigned long long)st[j].value.u64); break;
            default: fprintf(f, "%g", st[j].value.f64); break;
            }
        }
        fprintf(f, "\n");
    }
}

static void prof_write(vk_backend *vk) {
    static const char *names[VP_COUNT] = {
        [VP_EMBED] = "embed", [VP_NORM] = "norm", [VP_MMT2_1] = "mm_t2_1", [VP_MMT2_N] = "mm_t2_n",
        [VP_MMT2_V] = "mm_t2_vec", [VP_MMT2_VF] = "mm_t2_vec_norm", [VP_MMT2_VS] = "mm_t2_vec_norm_s", [VP_MMT2_VG] = "mm_t2_vec_norm_g", [VP_MMT2_G] = "mm_t2_gemm", [VP_MMT2_C] = "mm_t2_coop", [VP_MMF_1] = "mm_f_1",
        [VP_MMF_N] = "mm_f_n", [VP_ROPE] = "rope", [VP_KV] = "kv_store", [VP_ATTN] = "attn", [VP_ATTND] = "attn_dec", [VP_ATTNB] = "attn_batch", [VP_ATTNC] = "attn_coop", [VP_GLU] = "glu",
        [VP_ARGMAX] = "argmax", [VP_MMF_1A] = "mm_f_1_argmax"};
    FILE *f = fopen(vk->prof_path, "w");
    if (!f) return;
    fprintf(f, "vulkan profile: %s, %ld batches, %.3f s submit to fence, %.3f s between timestamps\n", vk->base.desc,
            vk->prof_batches, vk->prof_wall, vk->prof_gpu * 1e-9);
    fprintf(f, "%-12s %18s %10s %12s %10s\n", "pipeline", "grid", "calls", "total ms", "avg us");
    for (int i = 0; i < vk->n_prof; i++) {
        const vk_prof *p = &vk->prof[i];
        char g[40];
        snprintf(g, sizeof g, "%ux%ux%u", p->gx, p->gy, p->gz);
        if (p->calls)
            fprintf(f, "%-12s %18s %10ld %12.3f %10.2f\n", names[p->pipe], g, p->calls, p->ns * 1e-6, p->ns * 1e-3 / (double)p->calls);
    }
    if (vk->prof_stats) prof_stats(vk, f, names);
    fclose(f);
}

/* ---- batches ---- */

static int vkb_begin(rtr_backend *be, rtr_err *err) {
    vk_backend *vk = (vk_backend *)be;
    if (vk->lost) return lost_err(err);
    vk->recording = 1; /* a batch abandoned after a failed run() is dropped */
    vk->n_ops = 0;
    return 0;
}

static int vkb_run(rtr_backend *be, const rtr_op *op, rtr_err *err) {
    vk_backend *vk = (vk_backend *)be;
    if (vk->lost) return lost_err(err);
    if (!vk->recording) return rtr_seterr(err, RTR_EARG, "vulkan: run() outside begin()/end()");
    if (vk->n_ops == vk->cap_ops) {
        int nc = vk->cap_ops ? vk->cap_ops * 2 : 512;
        rtr_op *n = realloc(vk->ops, (size_t)nc * sizeof *n);
        if (!n) return rtr_seterr(err, RTR_ENOMEM, "out of memory");
        vk->ops = n;
        vk->cap_ops = nc;
    }
    int rc = vk_op_check(vk, op, &vk->ops[vk->n_ops], err);
    if (rc) return rc;
    vk->n_ops++;
    return 0;
}

static int same_ops(const vk_rec *r, const rtr_op *ops, int n) {
    return r->valid && r->n == n && !memcmp(r->ops, ops, (size_t)n * sizeof *ops);
}

/* The batch's recording: the one made for the same ops before, or a new one in the slot used
 * least lately (never one a batch ahead still runs: those are the newest two). */
_Static_assert(VK_NREC >= 3, "a new recording must not replace one of two batches in flight");
static int batch_rec(vk_backend *vk, vk_rec **out, rtr_err *err) {
    int rc = vk_prepare(vk, err);
    if (rc) return rc;
    vk_rec *rec = NULL;
    for (int i = 0; i < VK_NREC && !rec; i++)
        if (same_ops(&vk->rec[i], vk->ops, vk->n_ops)) rec = &vk->rec[i];
    if (!rec) {
        rec = &vk->rec[0];
        for (int i = 1; i < VK_NREC; i++)
            if (!vk->rec[i].valid || (rec->valid && vk->rec[i].stamp < rec->stamp)) rec = &vk->rec[i];
        rec->valid = 0;
        if (rec->cap < vk->n_ops) {
            rtr_op *n = realloc(rec->ops, (size_t)vk->n_ops * sizeof *n);
            if (!n) return rtr_seterr(err, RTR_ENOMEM, "out of memory");
            rec->ops = n;
            rec->cap = vk->n_ops;
        }
        vkResetCommandBuffer(rec->cb, 0);
        if ((rc = cb_begin(vk, rec->cb, 0, err))) return rc;
        if ((rc = vk_record(vk, rec, err))) { vkEndCommandBuffer(rec->cb); vkResetCommandBuffer(rec->cb, 0); return rc; }
        cb_full_barrier(rec->cb, 1);
        VkResult r = vkEndCommandBuffer(rec->cb);
        if (r != VK_SUCCESS) return vk_fail(vk, r, "recording a batch", err);
        memcpy(rec->ops, vk->ops, (size_t)vk->n_ops * sizeof *rec->ops);
        rec->n = vk->n_ops;
        rec->valid = 1;
        rec->last_s = 0;
    }
    rec->stamp = ++vk->stamp;
    *out = rec;
    return 0;
}

/* a chained dispatch that gave up waiting (vk_chain.glsl's word 0, which stays set) */
static int chain_gave_up(vk_backend *vk, rtr_err *err) {
    if (!vk->chain || !((volatile uint32_t *)vk->sync->map)[0]) return 0;
    vk->lost = 1; /* its results are not to be trusted */
    return rtr_seterr(err, RTR_EBACKEND, "vulkan: a chained dispatch gave up waiting for the one before it "
                                         "(ROTOR_VK_NOCHAIN=1 turns chaining off)");
}

static int vkb_end(rtr_backend *be, rtr_err *err) {
    vk_backend *vk = (vk_backend *)be;
    if (vk->lost) return lost_err(err);
    if (!vk->recording) return rtr_seterr(err, RTR_EARG, "vulkan: end() without begin()");
    vk->recording = 0;
    vk_rec *rec;
    int rc = batch_rec(vk, &rec, err);
    if (rc) return rc;
    VkCommandBuffer cbs[2];
    int n = 0;
    if (vk->up_open) {
        vk->up_open = 0;
        VkResult r = vkEndCommandBuffer(vk->up_cb);
        if (r != VK_SUCCESS) return vk_fail(vk, r, "vkEndCommandBuffer", err);
        cbs[n++] = vk->up_cb;
    }
    cbs[n++] = rec->cb;
    double t0 = vk->prof_path ? rtr_now() : 0;
    rc = submit_wait(vk, cbs, n, &rec->last_s, err);
    if (n == 2) { vkResetCommandBuffer(vk->up_cb, 0); vk->ring_used = 0; }
    if (!rc) rc = chain_gave_up(vk, err);
    if (!rc && vk->prof_path) prof_collect(vk, rec, rtr_now() - t0);
    return rc;
}

/* The batch goes to the queue with a fence of its own and is not waited for (uploads queued
 * before it, rare with mapped buffers, are sent and waited for first). Its bytes are read when
 * it is waited for: from the mapping, or through a transfer. Profiling ends batches as end does. */
static int vkb_end_ahead(rtr_backend *be, rtr_buf *b, size_t off, size_t n, rtr_err *err) {
    vk_backend *vk = (vk_backend *)be;
    if (vk->lost) return lost_err(err);
    if (!vk->recording) return rtr_seterr(err, RTR_EARG, "vulkan: end_ahead() without begin()");
    if (!b || n > sizeof vk->ahead[0].data || off > b->size || n > b->size - off)
        return rtr_seterr(err, RTR_EARG, "vulkan: end_ahead of %zu bytes at %zu", n, off);
    if (vk->n_ahead == 2) return rtr_seterr(err, RTR_EARG, "vulkan: a third batch ended ahead");
    int slot = (vk->first_ahead + vk->n_ahead) % 2, rc;
    vk_ahead *a = &vk->ahead[slot];
    a->b = b;
    a->off = off;
    a->n = n;
    a->done = 0;
    if (vk->prof_path) {
        if ((rc = vkb_end(be, err)) || (rc = vkb_buf_read(be, b, off, a->data, n, err))) return rc;
        a->done = 1;
        vk->n_ahead++;
        return 0;
    }
    vk->recording = 0;
    vk_rec *rec;
    if ((rc = batch_rec(vk, &rec, err)) || (rc = flush_uploads(vk, err))) return rc;
    VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &rec->cb};
    VkResult r = vkQueueSubmit(vk->queue, 1, &si, a->fence);
    if (r != VK_SUCCESS) { vk->lost = r == VK_ERROR_DEVICE_LOST; return vk_fail(vk, r, "vkQueueSubmit", err); }
    vk->n_ahead++;
    return 0;
}

static int vkb_wait_ahead(rtr_backend *be, void *dst, rtr_err *err) {
    vk_backend *vk = (vk_backend *)be;
    if (!vk->n_ahead) return rtr_seterr(err, RTR_EARG, "vulkan: no batch was ended ahead");
    vk_ahead *a = &vk->ahead[vk->first_ahead];
    vk->first_ahead = (vk->first_ahead + 1) % 2;
    vk->n_ahead--;
    if (a->done) {
        memcpy(dst, a->data, a->n);
        return 0;
    }
    if (vk->lost) return lost_err(err);
    int rc = fence_done(vk, a->fence, VK_NOT_READY, err);
    if (!rc) rc = chain_gave_up(vk, err);
    if (rc) return rc;
    if (a->b->map) {
        memcpy(dst, a->b->map + a->off, a->n);
        return 0;
    }
    return vkb_buf_read(be, a->b, a->off, dst, a->n, err);
}

/* ---- creation ---- */

static void vkb_destroy(rtr_backend *be) {
    vk_backend *vk = (vk_backend *)be;
    if (!vk) return;
    if (vk->dev) {
        if (!vk->lost) {
            if (vk->up_open) flush_uploads(vk, NULL);
            vkDeviceWaitIdle(vk->dev);
        }
        vk_desc_free_all(vk);
        if (vk->prof_path && vk->prof_batches) prof_write(vk);
        for (int i = 0; i < VK_NREC; i++)
            if (vk->rec[i].qp) vkDestroyQueryPool(vk->dev, vk->rec[i].qp, NULL);
        rtr_buf *own[] = {vk->dummy, vk->ring, vk->stage, vk->part, vk->cnt, vk->akey, vk->rope_tab, vk->sync};
        for (size_t i = 0; i < sizeof own / sizeof own[0]; i++) vk_buf_drop(vk, own[i]);
        for (int i = 0; i < VP_COUNT; i++)
            if (vk->pipe[i]) vkDestroyPipeline(vk->dev, vk->pipe[i], NULL);
        if (vk->playout) vkDestroyPipelineLayout(vk->dev, vk->playout, NULL);
        if (vk->dsl) vkDestroyDescriptorSetLayout(vk->dev, vk->dsl, NULL);
        if (vk->fence) vkDestroyFence(vk->dev, vk->fence, NULL);
        for (int i = 0; i < 2; i++)
            if (vk->ahead[i].fence) vkDestroyFence(vk->dev, vk->ahead[i].fence, NULL);
        if (vk->cpool) vkDestroyCommandPool(vk->dev, vk->cpool, NULL);
        vkDestroyDevice(vk->dev, NULL);
    }
    for (int i = 0; i < VK_NREC; i++) { free(vk->rec[i].ops); free(vk->rec[i].pkey); }
    free(vk->ops);
    free(vk->prof_path);
    if (vk->inst) vkDestroyInstance(vk->inst, NULL);
    free(vk);
}

static const rtr_backend_ops vk_ops = {
    .name = "vulkan",
    .destroy = vkb_destroy,
    .buf_new = vkb_buf_new,
    .buf_free = vkb_buf_free,
    .buf_write = vkb_buf_write,
    .buf_read = vkb_buf_read,
    .buf_view = vkb_buf_view,
    .begin = vkb_begin,
    .run = vkb_run,
    .end = vkb_end,
    .end_ahead = vkb_end_ahead,
    .wait_ahead = vkb_wait_ahead,
};

static int setup(vk_backend *vk, const rtr_backend_cfg *cfg, rtr_err *err) {
    int rc = vk_make_instance(&vk->inst, err);
    if (rc) return rc;
    uint32_t n = 0;
    vkEnumeratePhysicalDevices(vk->inst, &n, NULL);
    if (!n) return rtr_seterr(err, RTR_EBACKEND, "vulkan: no device");
    VkPhysicalDevice pds[16];
    if (n > 16) n = 16;
    vkEnumeratePhysicalDevices(vk->inst, &n, pds);
    int want = cfg ? cfg->device : -1, pick = -1;
    if (want >= (int)n) return rtr_seterr(err, RTR_EBACKEND, "vulkan: device %d does not exist (%u found)", want, n);
    if (want >= 0) pick = want;
    static const VkPhysicalDeviceType pref[] = {VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU, VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU,
                                                VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU, VK_PHYSICAL_DEVICE_TYPE_CPU,
                                                VK_PHYSICAL_DEVICE_TYPE_OTHER};
    for (int t = 0; t < 5 && pick < 0; t++)
        for (uint32_t i = 0; i < n && pick < 0; i++) {
            VkPhysicalDeviceProperties p;
            vkGetPhysicalDeviceProperties(pds[i], &p);
            if (p.deviceType == pref[t] && p.apiVersion >= VK_API_VERSION_1_1) pick = (int)i;
        }
    if (pick < 0) return rtr_seterr(err, RTR_EBACKEND, "vulkan: no device supports Vulkan 1.1");
    if (cfg && cfg->require_gpu && want < 0) {
        VkPhysicalDeviceProperties p;
        vkGetPhysicalDeviceProperties(pds[pick], &p);
        if (p.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU || p.deviceType == VK_PHYSICAL_DEVICE_TYPE_OTHER)
            return rtr_seterr(err, RTR_EBACKEND, "vulkan: only a CPU driver (%s)", p.deviceName);
    }
    vk->pd = pds[pick];
    vkGetPhysicalDeviceProperties(vk->pd, &vk->props);
    vkGetPhysicalDeviceMemoryProperties(vk->pd, &vk->memp);
    if (vk->props.apiVersion < VK_API_VERSION_1_1)
        return rtr_seterr(err, RTR_EBACKEND, "vulkan: %s supports only Vulkan 1.0", vk->props.deviceName);
    uint32_t nq = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(vk->pd, &nq, NULL);
    VkQueueFamilyProperties qf[32];
    if (nq > 32) nq = 32;
    vkGetPhysicalDeviceQueueFamilyProperties(vk->pd, &nq, qf);
    int fam = -1;
    for (uint32_t i = 0; i < nq && fam < 0; i++) /* a compute queue without graphics first */
        if ((qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT) && !(qf[i].queueFlags & VK_QUEUE_GRAPHICS_BIT)) fam = (int)i;
    for (uint32_t i = 0; i < nq && fam < 0; i++)
        if (qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT) fam = (int)i;
    if (fam < 0) return rtr_seterr(err, RTR_EBACKEND, "vulkan: %s has no compute queue", vk->props.deviceName);
    vk->qfam = (uint32_t)fam;

    vk_caps c;
    vk_query_caps(vk->inst, vk->pd, &c);
    const VkPhysicalDeviceLimits *lim = &vk->props.limits;
    vk->portable = rtr_env_flag("ROTOR_VK_PORTABLE");
    vk->no_fuse = rtr_env_flag("ROTOR_VK_NOFUSE"); /* for measuring what the fusions save */
    vk->no_poll = rtr_env_flag("ROTOR_VK_NOPOLL");  /* and what polling the fence saves */
    vk_vec_settings(vk);
    vk->no_vec = rtr_env_flag("ROTOR_VK_NOVEC"); /* the older one-token matmul, for comparison */
    uint32_t wmax = lim->maxComputeWorkGroupInvocations < lim->maxComputeWorkGroupSize[0] ? lim->maxComputeWorkGroupInvocations
                                                                                          : lim->maxComputeWorkGroupSize[0];
    for (int i = 0; i < 4; i++) { /* halved to what the device takes; Vulkan's least is 128 */
        while (vk->vec_wg[i] > wmax && vk->vec_wg[i] > 128) vk->vec_wg[i] /= 2;
        if (vk->vec_wg[i] > wmax) vk->no_vec = 1;
    }
    /* batches through mm_t2.comp and attn.comp, for comparison or for want of shared memory */
    vk->no_gemm = rtr_env_flag("ROTOR_VK_NOGEMM") || lim->maxComputeSharedMemorySize < VK_GEMM_SHARED;
    vk->no_attnb = rtr_env_flag("ROTOR_VK_NOATTNB") || lim->maxComputeSharedMemorySize < VK_GEMM_SHARED;
    /* one-row attention over short rings in attn_dec.comp, or all of it in attn.comp */
    vk->argmax1 = rtr_env_flag("ROTOR_VK_ARGMAX1");
    vk->no_attnd = rtr_env_flag("ROTOR_VK_NOATTND") || lim->maxComputeWorkGroupInvocations < VK_ATTND_WG ||
                   lim->maxComputeWorkGroupSize[0] < VK_ATTND_WG;
    /* the matrix shaders: where the device has them, this build has them (an older glslc builds
     * none) and the tiled shaders they stand in for are in use */
    vk->coop = vk->portable || rtr_env_flag("ROTOR_VK_NOCOOP") || lim->maxComputeSharedMemorySize < VK_COOP_SHARED ? 0 : c.coop;
    if (!vk_has_shader("mm_t2_coop") || vk->no_gemm) vk->coop &= ~COOP_I8;
    if (!vk_has_shader("attn_coop") || vk->no_attnb) vk->coop &= ~COOP_F16;
    vk->no_vec_glu = rtr_env_flag("ROTOR_VK_NOVECGLU");
    const char *as = getenv("ROTOR_VK_ATTN_SPLITS"); /* most splits of the ring in attention */
    vk->attn_splits = as ? atoi(as) : 0;
    vk->sg = c.sg && !vk->portable;
    vk->sg_size = c.sg_size;
    vk->dot = vk->sg && c.dot;
    /* the chained shaders' memory-model variant (vk_chain.glsl) */
    vk->vmm = vk->dot && c.vmm && !rtr_env_flag("ROTOR_VK_NOVMM");
    float prio = 1.0f;
    VkDeviceQueueCreateInfo qi = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO, .queueFamilyIndex = vk->qfam,
                                  .queueCount = 1, .pQueuePriorities = &prio};
    VkPhysicalDeviceShaderIntegerDotProductFeatures fd = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_FEATURES,
                                                          .shaderIntegerDotProduct = VK_TRUE};
    VkPhysicalDeviceCooperativeMatrixFeaturesNV cf = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV,
                                                      .cooperativeMatrix = VK_TRUE};
    VkPhysicalDeviceVulkanMemoryModelFeatures mf = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_MEMORY_MODEL_FEATURES,
                                                    .pNext = &cf, .vulkanMemoryModel = VK_TRUE,
                                                    .vulkanMemoryModelDeviceScope = vk->vmm ? VK_TRUE : VK_FALSE};
    VkPhysicalDeviceShaderFloat16Int8Features f8i = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES,
                                                    .pNext = &mf, .shaderInt8 = VK_TRUE};
    /* the head with the argmax after it (mm_f.comp's RTR_AMAX): 64-bit atomics on buffers */
    vk->amax = vk->sg && c.a64 && vk_has_shader("mm_f__amax") && !rtr_env_flag("ROTOR_VK_NOAMAX");
    VkPhysicalDeviceShaderAtomicInt64Features fa = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_ATOMIC_INT64_FEATURES,
                                                    .shaderBufferInt64Atomics = VK_TRUE};
    VkPhysicalDeviceFeatures ef = {.shaderInt64 = VK_TRUE};
    void *chain = NULL;
    if (vk->amax) { fa.pNext = chain; chain = &fa; }
    if (vk->dot) { fd.pNext = chain; chain = &fd; }
    if (vk->coop) { mf.pNext = &cf; cf.pNext = chain; chain = &f8i; }
    else if (vk->vmm) { mf.pNext = chain; chain = &mf; }
    const char *exts[3];
    uint32_t next = 0;
    const char *prof = getenv("ROTOR_VK_PROFILE");
    VkPhysicalDevicePipelineExecutablePropertiesFeaturesKHR pef = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PIPELINE_EXECUTABLE_PROPERTIES_FEATURES_KHR, .pipelineExecutableInfo = VK_TRUE};
    if (prof && *prof && vk_has_ext(vk->pd, VK_KHR_PIPELINE_EXECUTABLE_PROPERTIES_EXTENSION_NAME)) {
        exts[next++] = VK_KHR_PIPELINE_EXECUTABLE_PROPERTIES_EXTENSION_NAME;
        pef.pNext = chain;
        chain = &pef;
        vk->prof_stats = 1;
    }
    if (vk->dot && c.dot_ext) exts[next++] = VK_KHR_SHADER_INTEGER_DOT_PRODUCT_EXTENSION_NAME;
    if (vk->coop) exts[next++] = VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME;
    VkDeviceCreateInfo di = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO, .pNext = chain,
                             .queueCreateInfoCount = 1, .pQueueCreateInfos = &qi,
                             .enabledExtensionCount = next, .ppEnabledExtensionNames = exts,
                             .pEnabledFeatures = vk->amax ? &ef : NULL};
    VkResult r = vkCreateDevice(vk->pd, &di, NULL, &vk->dev);
    if (r != VK_SUCCESS) return vk_fail(vk, r, "vkCreateDevice", err);
    vkGetDeviceQueue(vk->dev, vk->qfam, 0, &vk->queue);

    if (vk->props.limits.maxPerStageDescriptorStorageBuffers < VK_NBIND)
        return rtr_seterr(err, RTR_EBACKEND, "vulkan: %s allows %u storage buffers per shader, %d are needed",
                          vk->props.deviceName, vk->props.limits.maxPerStageDescriptorStorageBuffers, VK_NBIND);
    vk->align = vk->props.limits.minStorageBufferOffsetAlignment;
    if (vk->align < 16) vk->align = 16;
    if (vk->align > 256) /* the specification's largest: push constants hold offsets below it in a byte */
        return rtr_seterr(err, RTR_EBACKEND, "vulkan: %s aligns storage buffers to %llu bytes (at most 256 are supported)",
                          vk->props.deviceName, (unsigned long long)vk->align);
    vk->max_range = vk->props.limits.maxStorageBufferRange / 16 * 16;
    vk->nt_mm = vk->sg ? 128u / (uint32_t)vk->sg_size : 128u / 16u;

    VkCommandPoolCreateInfo pi = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                  .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT, .queueFamilyIndex = vk->qfam};
    if ((r = vkCreateCommandPool(vk->dev, &pi, NULL, &vk->cpool)) != VK_SUCCESS) return vk_fail(vk, r, "vkCreateCommandPool", err);
    VkCommandBuffer cbs[2 + VK_NREC];
    VkCommandBufferAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO, .commandPool = vk->cpool,
                                      .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY, .commandBufferCount = 2 + VK_NREC};
    if ((r = vkAllocateCommandBuffers(vk->dev, &ai, cbs)) != VK_SUCCESS) return vk_fail(vk, r, "vkAllocateCommandBuffers", err);
    vk->up_cb = cbs[0];
    vk->xfer_cb = cbs[1];
    for (int i = 0; i < VK_NREC; i++) vk->rec[i].cb = cbs[2 + i];
    if (prof && *prof && qf[vk->qfam].timestampValidBits >= 32 && vk->props.limits.timestampPeriod > 0) {
        if (!(vk->prof_path = strdup(prof))) return rtr_seterr(err, RTR_ENOMEM, "out of memory");
        VkQueryPoolCreateInfo qi2 = {.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO, .queryType = VK_QUERY_TYPE_TIMESTAMP,
                                     .queryCount = VK_PROF_Q};
        for (int i = 0; i < VK_NREC; i++) {
            if (!(vk->rec[i].pkey = malloc(VK_PROF_Q))) return rtr_seterr(err, RTR_ENOMEM, "out of memory");
            if ((r = vkCreateQueryPool(vk->dev, &qi2, NULL, &vk->rec[i].qp)) != VK_SUCCESS) return vk_fail(vk, r, "vkCreateQueryPool", err);
        }
    }
    VkFenceCreateInfo fi = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    if ((r = vkCreateFence(vk->dev, &fi, NULL, &vk->fence)) != VK_SUCCESS) return vk_fail(vk, r, "vkCreateFence", err);
    for (int i = 0; i < 2; i++)
        if ((r = vkCreateFence(vk->dev, &fi, NULL, &vk->ahead[i].fence)) != VK_SUCCESS) return vk_fail(vk, r, "vkCreateFence", err);

    VkDescriptorSetLayoutBinding bd[VK_NBIND];
    for (int i = 0; i < VK_NBIND; i++)
        bd[i] = (VkDescriptorSetLayoutBinding){(uint32_t)i, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 1, VK_SHADER_STAGE_COMPUTE_BIT, NULL};
    VkDescriptorSetLayoutCreateInfo li = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO, .bindingCount = VK_NBIND, .pBindings = bd};
    if ((r = vkCreateDescriptorSetLayout(vk->dev, &li, NULL, &vk->dsl)) != VK_SUCCESS) return vk_fail(vk, r, "vkCreateDescriptorSetLayout", err);
    VkPushConstantRange pr = {VK_SHADER_STAGE_COMPUTE_BIT, 0, 128};
    VkPipelineLayoutCreateInfo pli = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO, .setLayoutCount = 1,
                                      .pSetLayouts = &vk->dsl, .pushConstantRangeCount = 1, .pPushConstantRanges = &pr};
    if ((r = vkCreatePipelineLayout(vk->dev, &pli, NULL, &vk->playout)) != VK_SUCCESS) return vk_fail(vk, r, "vkCreatePipelineLayout", err);
    if ((rc = vk_make_pipelines(vk, err))) return rc;

    if (!(vk->dummy = vk_buf_make(vk, 16, VK_MEM_DEV, 0, err)) ||
        !(vk->part = vk_buf_make(vk, VK_PART_BYTES, VK_MEM_DEV, 0, err)) ||
        !(vk->cnt = vk_buf_make(vk, VK_CNT_BYTES, VK_MEM_DEV, 0, err)) ||
        !(vk->akey = vk_buf_make(vk, 16, VK_MEM_DEV, 0, err)) ||
        !(vk->rope_tab = vk_buf_make(vk, 64 << 10, VK_MEM_SMALL, 0, err)) ||
        !(vk->sync = vk_buf_make(vk, VK_CHAIN_N * 4, VK_MEM_SMALL, 0, err)))
        return err ? err->code : RTR_ENOMEM;
    /* dispatch chaining needs the counters' error word readable by the host */
    vk->chain = vk->sync->map && !rtr_env_flag("ROTOR_VK_NOCHAIN");
    if (vk->sync->map) memset(vk->sync->map, 0, vk->sync->vsize);
    for (int i = 0; i < 2; i++) { /* the counters start at 0 */
        rtr_buf *b = i ? vk->akey : vk->cnt;
        if (b->map) memset(b->map, 0, b->vsize);
        else if ((rc = open_uploads(vk, err))) return rc;
        else vkCmdFillBuffer(vk->up_cb, b->buf, 0, b->vsize, 0);
    }
    snprintf(vk->base.desc, sizeof vk->base.desc, "%.80s (Vulkan%s%s%s)", vk->props.deviceName,
             vk->coop ? ", matrices" : vk->dot ? ", int8 dot" : vk->sg ? ", subgroups" : "", vk->portable ? ", portable" : "",
             vk->vmm ? ", memory model" : "");
    return 0;
}

int rtr_vulkan_backend_create(rtr_backend **out, const rtr_backend_cfg *cfg, rtr_err *err) {
    vk_backend *vk = calloc(1, sizeof *vk);
    if (!vk) return rtr_seterr(err, RTR_ENOMEM, "out of memory");
    vk->base.ops = &vk_ops;
    if (cfg) { vk->progress = cfg->progress; vk->progress_ud = cfg->progress_ud; }
    int rc = setup(vk, cfg, err);
    if (rc) { vkb_destroy(&vk->base); return rc; }
    *out = &vk->base;
    return 0;
}
