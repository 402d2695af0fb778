/* opencl.c: the OpenCL backend's device side: platform and device choice through the ICD
 * loader, buffers, and the begin/end of a batch (end_ahead/wait_ahead: up to two batches in
 * flight, each one's few result bytes copied out behind it). The kernel program and its disk
 * cache are in opencl_prog.c, the ops themselves in opencl_ops.c. Written for OpenCL 1.2 hosts and
 * OpenCL C 1.2 devices; nothing here prints or exits. Environment: ROTOR_OPENCL_NO_PTX=1 keeps
 * the portable int8 dot product on NVIDIA; ROTOR_OPENCL_NOVEC=1 sends one-token products to the
 * older gemv kernels, ROTOR_OPENCL_NOVECGLU=1 gives a gate/up pair the general one-token kernel
 * instead of matmul_t2_vec_g, ROTOR_OPENCL_NORKV=1 keeps the RoPE and KV store out of the q/k/v
 * product, ROTOR_OPENCL_NOATTN4=1 runs attention through the 8-head build of attn.cl,
 * ROTOR_OPENCL_ATTN_GROUPED=1 gives a work-group of one-row attention a whole group of query
 * heads instead of one, ROTOR_OPENCL_ATTN_SPLITS=N caps the splits of decode attention,
 * ROTOR_OPENCL_MERGE_LAUNCH=1 merges them in a launch of their own, ROTOR_OPENCL_FULLARGS=1
 * runs every one-token product through the kernels of all arguments, ROTOR_OPENCL_NOFVEC=1 a
 * one-token LM head through matmul_f instead of matmul_f_vec, ROTOR_OPENCL_NOPIN=1 views
 * of host-read buffers through malloc'd memory, ROTOR_OPENCL_NOATTNDEC=1 one-row attention through
 * attn1 instead of attn_dec and ROTOR_OPENCL_NOCMDBUF=1 every batch launch by launch even where
 * cl_khr_command_buffer could replay it, ROTOR_OPENCL_NOPOOL=1 buffers made one by one instead of
 * carved from reserved blocks and ROTOR_OPENCL_NOPOOLARGS=1 launches without the blocks for
 * arguments (all for comparison); ROTOR_OPENCL_POOL=1 carves weights from a block even where the
 * device could read the mapped file; ROTOR_OPENCL_FLUSH=first,every sets the enqueues before a
 * batch's first clFlush and between later ones (4,32); ROTOR_OPENCL_ARGMAX1=1 finds a row's
 * largest value in one work-group instead of several;
 * ROTOR_OPENCL_PROFILE=FILE writes device time per kernel to FILE when the backend is destroyed.
 */
#include "opencl_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STAGE_BYTES (1u << 20) /* small buf_writes are staged here and enqueued without waiting */
#define UPLOAD_CHUNK ((size_t)64 << 20)

static const char *const kernel_names[K_COUNT] = {
    [K_EMBED] = "embed",
    [K_RMSNORM] = "rmsnorm",
    [K_GEMV_T2] = "matmul_t2_gemv",
    [K_GEMM_T2] = "matmul_t2_gemm",
    [K_T2_VEC] = "matmul_t2_vec",
    [K_T2_VEC_S] = "matmul_t2_vec_s",
    [K_T2_VEC_G] = "matmul_t2_vec_g",
    [K_T2_VEC1] = "matmul_t2_vec1",
    [K_T2_VEC_S1] = "matmul_t2_vec_s1",
    [K_T2_VEC_G2] = "matmul_t2_vec_g2",
    [K_T2_VEC_P] = "matmul_t2_vec_p",
    [K_T2_VEC_S_P] = "matmul_t2_vec_s_p",
    [K_T2_VEC_G_P] = "matmul_t2_vec_g_p",
    [K_MATMUL_F] = "matmul_f",
    [K_MATMUL_F_VEC] = "matmul_f_vec",
    [K_ROPE_KV] = "rope_kv",
    [K_ATTN] = "attn",
    [K_ATTN4] = "attn4",
    [K_ATTN4S] = "attn4s",
    [K_ATTN1] = "attn1",
    [K_ATTN1S] = "attn1s",
    [K_ATTN_DEC] = "attn_dec",
    [K_ATTN_DEC_P] = "attn_dec_p",
    [K_ATTN_MERGE] = "attn_merge",
    [K_GLU] = "glu",
    [K_ADD] = "add",
    [K_ARGMAX] = "argmax",
    [K_ARGMAX_SPLIT] = "argmax_split",
};

const char *cl_kernel_name(int k) { return kernel_names[k]; }

const char *cl_errname(cl_int rc) {
    switch (rc) {
    case CL_DEVICE_NOT_FOUND: return "CL_DEVICE_NOT_FOUND";
    case CL_DEVICE_NOT_AVAILABLE: return "CL_DEVICE_NOT_AVAILABLE";
    case CL_COMPILER_NOT_AVAILABLE: return "CL_COMPILER_NOT_AVAILABLE";
    case CL_MEM_OBJECT_ALLOCATION_FAILURE: return "CL_MEM_OBJECT_ALLOCATION_FAILURE";
    case CL_OUT_OF_RESOURCES: return "CL_OUT_OF_RESOURCES";
    case CL_OUT_OF_HOST_MEMORY: return "CL_OUT_OF_HOST_MEMORY";
    case CL_BUILD_PROGRAM_FAILURE: return "CL_BUILD_PROGRAM_FAILURE";
    case CL_INVALID_VALUE: return "CL_INVALID_VALUE";
    case CL_INVALID_DEVICE: return "CL_INVALID_DEVICE";
    case CL_INVALID_BINARY: return "CL_INVALID_BINARY";
    case CL_INVALID_BUFFER_SIZE: return "CL_INVALID_BUFFER_SIZE";
    case CL_INVALID_MEM_OBJECT: return "CL_INVALID_MEM_OBJECT";
    case CL_INVALID_KERNEL_ARGS: return "CL_INVALID_KERNEL_ARGS";
    case CL_INVALID_ARG_SIZE: return "CL_INVALID_ARG_SIZE";
    case CL_INVALID_WORK_GROUP_SIZE: return "CL_INVALID_WORK_GROUP_SIZE";
    case CL_INVALID_WORK_ITEM_SIZE: return "CL_INVALID_WORK_ITEM_SIZE";
    case CL_INVALID_GLOBAL_WORK_SIZE: return "CL_INVALID_GLOBAL_WORK_SIZE";
    case CL_MISALIGNED_SUB_BUFFER_OFFSET: return "CL_MISALIGNED_SUB_BUFFER_OFFSET";
    case CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST: return "CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST";
    case -1001: return "CL_PLATFORM_NOT_FOUND_KHR";
    }
    return "OpenCL error";
}

/* Maps an OpenCL status to RTR_ENOMEM (device memory) or RTR_EBACKEND, with one line. */
int cl_fail(rtr_err *err, const char *what, cl_int rc) {
    int code =
        (rc == CL_MEM_OBJECT_ALLOCATION_FAILURE || rc == CL_OUT_OF_HOST_MEMORY) ? RTR_ENOMEM : RTR_EBACKEND;
    return rtr_seterr(err, code, "opencl: %s: %s (%d)", what, cl_errname(rc), (int)rc);
}

/* ---- devices ---- */

typedef struct {
    cl_platform_id plat;
    cl_device_id dev;
} cl_dev_ref;

/* All devices of all platforms, in platform order. Returns the count (0 when there is no
 * platform) and fills at most cap entries; *why gets a reason when the count is 0. */
static int enum_devices(cl_dev_ref *out, int cap, const char **why) {
    cl_platform_id plats[16];
    cl_uint np = 0;
    cl_int rc = clGetPlatformIDs(16, plats, &np);
    *why = NULL;
    if (rc != CL_SUCCESS || np == 0) {
        *why = "no OpenCL platform (no ICD loader or no installed driver)";
        return 0;
    }
    if (np > 16) np = 16;
    int n = 0;
    for (cl_uint p = 0; p < np; p++) {
        cl_device_id devs[32];
        cl_uint nd = 0;
        if (clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, 32, devs, &nd) != CL_SUCCESS) continue;
        if (nd > 32) nd = 32;
        for (cl_uint d = 0; d < nd; d++) {
            if (n < cap) out[n] = (cl_dev_ref){plats[p], devs[d]};
            n++;
        }
    }
    if (n == 0) *why = "OpenCL platforms have no devices";
    return n;
}

void cl_dev_str(cl_device_id d, cl_device_info what, char *buf, size_t cap) {
    buf[0] = 0;
    if (clGetDeviceInfo(d, what, cap, buf, NULL) != CL_SUCCESS) buf[0] = 0;
    buf[cap - 1] = 0;
}

int cl_has_ext(cl_device_id d, const char *name) {
    size_t sz = 0;
    if (clGetDeviceInfo(d, CL_DEVICE_EXTENSIONS, 0, NULL, &sz) != CL_SUCCESS || !sz) return 0;
    char *e = malloc(sz + 1);
    if (!e) return 0;
    int found = 0;
    if (clGetDeviceInfo(d, CL_DEVICE_EXTENSIONS, sz, e, NULL) == CL_SUCCESS) {
        e[sz] = 0;
        size_t l = strlen(name);
        for (const char *p = e; (p = strstr(p, name)); p += l)
            if ((p == e || p[-1] == ' ') && (p[l] == ' ' || p[l] == 0)) {
                found = 1;
                break;
            }
    }
    free(e);
    return found;
}

static const char *type_name(cl_device_type t) {
    if (t & CL_DEVICE_TYPE_GPU) return "GPU";
    if (t & CL_DEVICE_TYPE_CPU) return "CPU";
    if (t & CL_DEVICE_TYPE_ACCELERATOR) return "accelerator";
    return "other";
}

int rtr_opencl_list_devices(char *out, size_t cap) {
    cl_dev_ref devs[64];
    const char *why;
    int n = enum_devices(devs, 64, &why);
    if (n > 64) n = 64;
    for (int i = 0; i < n; i++) {
        char name[256], plat[256], clc[128];
        cl_device_type t = 0;
        cl_ulong mem = 0;
        cl_dev_str(devs[i].dev, CL_DEVICE_NAME, name, sizeof name);
        cl_dev_str(devs[i].dev, CL_DEVICE_OPENCL_C_VERSION, clc, sizeof clc);
        if (clGetPlatformInfo(devs[i].plat, CL_PLATFORM_NAME, sizeof plat, plat, NULL) != CL_SUCCESS)
            plat[0] = 0;
        plat[sizeof plat - 1] = 0;
        clGetDeviceInfo(devs[i].dev, CL_DEVICE_TYPE, sizeof t, &t, NULL);
        clGetDeviceInfo(devs[i].dev, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof mem, &mem, NULL);
        int fp16 = cl_has_ext(devs[i].dev, "cl_khr_fp16");
        int sg = cl_has_ext(devs[i].dev, "cl_khr_subgroups") || cl_has_ext(devs[i].dev, "cl_intel_subgroups");
        int idot = cl_has_ext(devs[i].dev, "cl_khr_integer_dot_product");
        int cmdbuf = cl_has_ext(devs[i].dev, "cl_khr_command_buffer");
        size_t l = strlen(out);
        if (l < cap)
            snprintf(out + l, cap - l,
                     "  %d: %s [%s] %s, %.1f GiB, %s, fp16 %s, subgroups %s, int dot %s, command buffers %s\n", i,
                     name, type_name(t), plat, (double)mem / (1024.0 * 1024 * 1024), clc, fp16 ? "yes" : "no",
                     sg ? "yes" : "no", idot ? "yes" : "no", cmdbuf ? "yes" : "no");
    }
    if (n == 0 && why) {
        size_t l = strlen(out);
        if (l < cap) snprintf(out + l, cap - l, "  (%s)\n", why);
    }
    return n;
}

/* ---- buffers ---- */

static void drop_host(cl_backend *b, rtr_buf *buf) {
    if (buf->pin) {
        clEnqueueUnmapMemObject(b->q, buf->pin, buf->host, 0, NULL, NULL);
        clFinish(b->q);
        clReleaseMemObject(buf->pin);
    } else free(buf->host);
    buf->pin = NULL;
    buf->host = NULL;
}

/* ---- blocks: buffers carved from one reserved cl_mem, so that a launch may take the block and
 * offsets instead of a buffer argument each (the driver's cost grows with arguments) ---- */

static size_t pmap_slot(cl_mem m) { return (size_t)(((uintptr_t)m >> 4) * 0x9E3779B97F4A7C15ull >> 52) % CL_PMAP; }

int cl_pool_of(const cl_backend *b, cl_mem m, cl_mem *pool, size_t *base) {
    if (!m) return 0;
    for (size_t i = pmap_slot(m), n = 0; n < CL_PMAP && b->pmap[i].sub; i = (i + 1) % CL_PMAP, n++)
        if (b->pmap[i].sub == m && b->pmap[i].pool) {
            *pool = b->pmap[i].pool;
            *base = b->pmap[i].base;
            return 1;
        }
    return 0;
}

static void pmap_put(cl_backend *b, cl_mem sub, cl_mem pool, size_t base) {
    for (size_t i = pmap_slot(sub), n = 0; n < CL_PMAP; i = (i + 1) % CL_PMAP, n++)
        if (!b->pmap[i].sub || !b->pmap[i].pool) { /* free, or a deleted entry */
            b->pmap[i].sub = sub;
            b->pmap[i].pool = pool;
            b->pmap[i].base = base;
            return;
        }
    /* full: the buffer works as any other, its launches take it as an argument of its own */
}

static void pmap_del(cl_backend *b, cl_mem sub) {
    for (size_t i = pmap_slot(sub), n = 0; n < CL_PMAP && b->pmap[i].sub; i = (i + 1) % CL_PMAP, n++)
        if (b->pmap[i].sub == sub && b->pmap[i].pool) {
            b->pmap[i].pool = NULL; /* deleted: probes go on past it */
            return;
        }
}

/* forget a buffer or block that the argument cache may still name */
static void forget_arg(cl_backend *b, cl_mem m) {
    for (int k = 0; k < K_COUNT; k++)
        for (int a = 0; a < CL_MAX_ARGS; a++)
            if (b->last_arg[k][a] == m) b->last_arg[k][a] = NULL;
}

/* where carved buffers start: the device's base alignment, and at least 256 bytes */
static size_t block_align(const cl_backend *b) { return b->base_align > 256 ? b->base_align : 256; }

static void cl_reserve(rtr_backend *be, size_t bytes, int flags) {
    cl_backend *b = (cl_backend *)be;
    int w = (flags & RTR_BUF_WEIGHT) != 0;
    if (flags & ~RTR_BUF_WEIGHT) return;
    if (b->res[w].blk) { /* the block lives on while buffers carved from it do */
        forget_arg(b, b->res[w].blk);
        clReleaseMemObject(b->res[w].blk);
        b->res[w].blk = NULL;
    }
    if (b->no_pool || !bytes || (w && b->host_unified && !b->pool_weights)) return;
    size_t size = bytes + 1024 * block_align(b);
    if (size > b->max_alloc) return;
    cl_int rc;
    cl_mem m = clCreateBuffer(b->ctx, w ? CL_MEM_READ_ONLY : CL_MEM_READ_WRITE, size, NULL, &rc);
    if (rc != CL_SUCCESS) return;
    b->res[w].blk = m;
    b->res[w].size = size;
    b->res[w].used = 0;
}

/* a sub-buffer of sz bytes from the current block of this kind, or NULL */
static cl_mem carve(cl_backend *b, int w, size_t sz) {
    size_t align = block_align(b), at = b->res[w].used;
    if (!b->res[w].blk || sz > b->res[w].size - at) return NULL;
    cl_buffer_region reg = {at, sz};
    cl_int rc;
    cl_mem m = clCreateSubBuffer(b->res[w].blk, w ? CL_MEM_READ_ONLY : CL_MEM_READ_WRITE, CL_BUFFER_CREATE_TYPE_REGION,
                                 &reg, &rc);
    if (rc != CL_SUCCESS) return NULL;
    b->res[w].used = at + (sz + align - 1) / align * align;
    if (b->res[w].used > b->res[w].size) b->res[w].used = b->res[w].size;
    pmap_put(b, m, b->res[w].blk, at);
    return m;
}

static rtr_buf *cl_buf_new(rtr_backend *be, size_t bytes, const void *host, int flags, rtr_err *err) {
    cl_backend *b = (cl_backend *)be;
    if (bytes > b->max_alloc) {
        rtr_seterr(err, RTR_ENOMEM,
                   "opencl: buffer of %zu bytes exceeds the device's largest allocation (%llu)", bytes,
                   (unsigned long long)b->max_alloc);
        return NULL;
    }
    rtr_buf *buf = calloc(1, sizeof *buf);
    if (!buf) {
        rtr_seterr(err, RTR_ENOMEM, "out of memory");
        return NULL;
    }
    buf->bytes = bytes;
    size_t sz = bytes ? (bytes + 63) / 64 * 64 : 64;
    cl_int rc;
    int weight = (flags & RTR_BUF_WEIGHT) != 0;
    if (!(flags & RTR_BUF_HOST) && (buf->mem = carve(b, weight, sz)))
        buf->pool = b->res[weight].blk;
    else if (weight && host && b->host_unified && bytes && (uintptr_t)host % b->base_align == 0) {
        /* the device reads host memory directly: alias the mapped file, as the CPU backend does */
        buf->mem = clCreateBuffer(b->ctx, CL_MEM_READ_ONLY | CL_MEM_USE_HOST_PTR, bytes, (void *)host, &rc);
        if (rc == CL_SUCCESS) return buf;
    }
    cl_mem_flags mf = weight ? CL_MEM_READ_ONLY : CL_MEM_READ_WRITE;
    if (!buf->mem) buf->mem = clCreateBuffer(b->ctx, mf, sz, NULL, &rc);
    if (!buf->mem) goto fail;
    if ((flags & RTR_BUF_HOST) && !b->host_unified && !b->no_pin) {
        /* page-locked memory for views; without it, views fall back to malloc'd memory */
        cl_int r2;
        buf->pin = clCreateBuffer(b->ctx, CL_MEM_READ_WRITE | CL_MEM_ALLOC_HOST_PTR, sz, NULL, &r2);
        if (r2 == CL_SUCCESS)
            buf->host = clEnqueueMapBuffer(b->q, buf->pin, CL_TRUE, CL_MAP_READ | CL_MAP_WRITE, 0, sz, 0, NULL,
                                           NULL, &r2);
        if (r2 != CL_SUCCESS || !buf->host) {
            if (buf->pin) clReleaseMemObject(buf->pin);
            buf->pin = NULL;
            buf->host = NULL;
        }
    }
    /* a host-read buffer's view copy is made now, not on its first view in the token loop */
    if ((flags & RTR_BUF_HOST) && !buf->host && !(buf->host = malloc(sz))) {
        rc = CL_OUT_OF_HOST_MEMORY;
        goto fail;
    }
    if (host) {
        for (size_t done = 0; done < bytes;) {
            size_t n = bytes - done < UPLOAD_CHUNK ? bytes - done : UPLOAD_CHUNK;
            rc = clEnqueueWriteBuffer(b->q, buf->mem, CL_TRUE, done, n, (const char *)host + done, 0, NULL,
                                      NULL);
            if (rc != CL_SUCCESS) goto fail;
            done += n;
            if (weight && b->progress) b->progress(done, bytes, b->progress_ud);
        }
        if (sz > bytes) {
            static const unsigned char zero = 0;
            rc = clEnqueueFillBuffer(b->q, buf->mem, &zero, 1, bytes, sz - bytes, 0, NULL, NULL);
        }
    } else {
        static const unsigned char zero = 0;
        rc = clEnqueueFillBuffer(b->q, buf->mem, &zero, 1, 0, sz, 0, NULL, NULL);
    }
    if (rc == CL_SUCCESS) rc = clFinish(b->q);
    if (rc == CL_SUCCESS) {
        b->stage_used = 0;
        return buf;
    }
fail:
    cl_fail(err, "allocating a buffer", rc);
    drop_host(b, buf);
    if (buf->pool) pmap_del(b, buf->mem);
    if (buf->mem) clReleaseMemObject(buf->mem);
    free(buf);
    return NULL;
}

static void cl_buf_free(rtr_backend *be, rtr_buf *buf) {
    cl_backend *b = (cl_backend *)be;
    if (!buf) return;
    rtr_err e;
    if (b->held) cl_flush_held(b, &e); /* it may use this buffer */
    if (b->cmd.recording) cl_cmdbuf_spill(b, &e);
    cl_cmdbuf_drop(b); /* the command buffer may name it */
    forget_arg(b, buf->mem);
    if (buf->pool) {
        pmap_del(b, buf->mem);
        forget_arg(b, buf->pool);
    }
    drop_host(b, buf);
    clReleaseMemObject(buf->mem);
    free(buf);
}

static int cl_buf_write(rtr_backend *be, rtr_buf *buf, size_t off, const void *src, size_t n, rtr_err *err) {
    cl_backend *b = (cl_backend *)be;
    if (off > buf->bytes || n > buf->bytes - off)
        return rtr_seterr(err, RTR_EARG, "opencl: write out of bounds");
    if (!n) return 0;
    int r = cl_flush_held(b, err);
    if (!r && b->cmd.recording) r = cl_cmdbuf_spill(b, err);
    if (r) return r;
    cl_int rc;
    if (n <= b->stage_cap - b->stage_used) {
        /* copied now, transferred in queue order without waiting; the copy lives until the
         * queue drains (end, buf_read, or a blocking write) */
        unsigned char *s = b->stage + b->stage_used;
        memcpy(s, src, n);
        size_t adv = (n + 63) / 64 * 64;
        b->stage_used = adv < b->stage_cap - b->stage_used ? b->stage_used + adv : b->stage_cap;
        rc = clEnqueueWriteBuffer(b->q, buf->mem, CL_FALSE, off, n, s, 0, NULL, NULL);
        if (rc == CL_SUCCESS && ++b->pending >= 16) {
            clFlush(b->q);
            b->pending = 0;
        }
    } else {
        rc = clEnqueueWriteBuffer(b->q, buf->mem, CL_TRUE, off, n, src, 0, NULL, NULL);
        if (rc == CL_SUCCESS) b->stage_used = 0;
    }
    return rc == CL_SUCCESS ? 0 : cl_fail(err, "clEnqueueWriteBuffer", rc);
}

static int cl_buf_read(rtr_backend *be, rtr_buf *buf, size_t off, void *dst, size_t n, rtr_err *err) {
    cl_backend *b = (cl_backend *)be;
    if (off > buf->bytes || n > buf->bytes - off)
        return rtr_seterr(err, RTR_EARG, "opencl: read out of bounds");
    if (!n) return 0;
    int r = cl_flush_held(b, err);
    if (!r && b->cmd.recording) r = cl_cmdbuf_spill(b, err);
    if (r) return r;
    cl_int rc = clEnqueueReadBuffer(b->q, buf->mem, CL_TRUE, off, n, dst, 0, NULL, NULL);
    if (rc != CL_SUCCESS) return cl_fail(err, "clEnqueueReadBuffer", rc);
    b->stage_used = 0;
    b->pending = 0;
    return 0;
}

static const void *cl_buf_view(rtr_backend *be, rtr_buf *buf, size_t off, size_t n, rtr_err *err) {
    if (off > buf->bytes || n > buf->bytes - off) {
        rtr_seterr(err, RTR_EARG, "opencl: view out of bounds");
        return NULL;
    }
    if (!buf->host && !(buf->host = malloc(buf->bytes ? buf->bytes : 1))) {
        rtr_seterr(err, RTR_ENOMEM, "out of memory");
        return NULL;
    }
    return cl_buf_read(be, buf, off, buf->host + off, n, err) ? NULL : buf->host + off;
}

/* Backend-owned device scratch (attention partials, quantized LM-head input). It grows to the
 * largest request and stays: after the first batch of each shape nothing is allocated. A buffer
 * still in use by queued kernels is kept alive by OpenCL until they finish. */
int cl_scratch(cl_backend *b, size_t bytes, rtr_err *err) {
    if (bytes <= b->scratch_bytes) return 0;
    /* launches logged or recorded so far name the old buffer */
    int r = b->cmd.recording ? cl_cmdbuf_spill(b, err) : 0;
    if (r) return r;
    cl_cmdbuf_drop(b);
    bytes = (bytes + 65535) / 65536 * 65536;
    cl_int rc;
    cl_mem m = clCreateBuffer(b->ctx, CL_MEM_READ_WRITE, bytes, NULL, &rc);
    if (rc != CL_SUCCESS) return cl_fail(err, "allocating scratch", rc);
    if (b->scratch) {
        forget_arg(b, b->scratch);
        clReleaseMemObject(b->scratch);
    }
    b->scratch = m;
    b->scratch_bytes = bytes;
    return 0;
}

int cl_rope_tab(cl_backend *b, float theta, int rd, cl_ulong *off, rtr_err *err) {
    for (int i = 0; i < b->n_rope; i++)
        if (b->rope[i].theta == theta && b->rope[i].rd == rd) {
            *off = b->rope[i].off;
            return 0;
        }
    float tab[1024];
    cl_uint half = (cl_uint)(rd / 2);
    if (rd < 0 || half > 1024) return rtr_seterr(err, RTR_EARG, "opencl: rope: rot_dim %d is not supported", rd);
    if (b->n_rope == CL_ROPE_MAX || b->rope_used + half > CL_ROPE_FLOATS)
        return rtr_seterr(err, RTR_EARG, "opencl: too many distinct RoPE settings");
    /* as every backend computes them */
    for (cl_uint j = 0; j < half; j++) tab[j] = rtr_rope_inv_freq(theta, (int)j, rd);
    /* a part of the table no launch has read yet: no wait for earlier launches is needed, and
     * the call returns once the table is there */
    cl_int rc = half ? clEnqueueWriteBuffer(b->q, b->rope_tab, CL_TRUE, (size_t)b->rope_used * 4, (size_t)half * 4,
                                            tab, 0, NULL, NULL)
                     : CL_SUCCESS;
    if (rc != CL_SUCCESS) return cl_fail(err, "writing the RoPE table", rc);
    b->rope[b->n_rope].theta = theta;
    b->rope[b->n_rope].rd = rd;
    b->rope[b->n_rope++].off = b->rope_used;
    *off = b->rope_used;
    b->rope_used += (half + 3) / 4 * 4;
    return 0;
}

static int cl_begin(rtr_backend *be, rtr_err *err) {
    cl_backend *b = (cl_backend *)be;
    b->flushed = 0;
    if (b->prof_path) b->prof_t0 = rtr_now();
    int r = cl_flush_held(b, err);
    if (!r) cl_cmdbuf_begin(b);
    return r;
}

/* profiling: collect the device times of the batch's launches */
static void prof_collect(cl_backend *b) {
    cl_ulong first = 0, last = 0;
    for (int i = 0; i < b->prof_n; i++) {
        cl_ulong t0 = 0, t1 = 0;
        if (clGetEventProfilingInfo(b->prof_ev[i], CL_PROFILING_COMMAND_START, sizeof t0, &t0, NULL) ==
                CL_SUCCESS &&
            clGetEventProfilingInfo(b->prof_ev[i], CL_PROFILING_COMMAND_END, sizeof t1, &t1, NULL) ==
                CL_SUCCESS &&
            t1 >= t0) {
            b->prof_ns[b->prof_k[i]] += (double)(t1 - t0);
            b->prof_gpu += (double)(t1 - t0);
            if (!first || t0 < first) first = t0;
            if (t1 > last) last = t1;
        }
        b->prof_calls[b->prof_k[i]]++;
        clReleaseEvent(b->prof_ev[i]);
    }
    if (last > first) b->prof_span += (double)(last - first);
    b->prof_n = 0;
    b->prof_batches++;
    b->prof_wall += rtr_now() - b->prof_t0;
}

static void prof_write(cl_backend *b) {
    FILE *f = fopen(b->prof_path, "w");
    if (!f) return;
    fprintf(f,
            "opencl profile: %s, %ld batches, %.3f s between begin and end, %.3f s from each batch's first "
            "kernel start to its last kernel end, %.3f s of kernels\n",
            b->base.desc, b->prof_batches, b->prof_wall, b->prof_span * 1e-9, b->prof_gpu * 1e-9);
    fprintf(f, "%-16s %10s %12s %10s\n", "kernel", "launches", "total ms", "mean us");
    for (int k = 0; k < K_COUNT; k++)
        if (b->prof_calls[k])
            fprintf(f, "%-16s %10ld %12.3f %10.2f\n", kernel_names[k], b->prof_calls[k], b->prof_ns[k] * 1e-6,
                    b->prof_ns[k] * 1e-3 / (double)b->prof_calls[k]);
    fclose(f);
}

static int cl_end(rtr_backend *be, rtr_err *err) {
    cl_backend *b = (cl_backend *)be;
    int r = cl_flush_held(b, err);
    if (!r) r = cl_cmdbuf_end(b, err);
    b->cmd.recording = 0;
    b->pending = 0;
    b->flushed = 0;
    cl_int rc = clFinish(b->q);
    b->stage_used = 0;
    if (b->prof_path) prof_collect(b);
    if (r) return r;
    return rc == CL_SUCCESS ? 0 : cl_fail(err, "clFinish", rc);
}

/* The batch ends without waiting: its copy-out goes behind it on the queue, and the queue is
 * flushed so that the device starts while the host writes and queues the next batch. The
 * staging copies stay alive (the queue has not drained); once they run out a write waits. */
static int cl_end_ahead(rtr_backend *be, rtr_buf *buf, size_t off, size_t n, rtr_err *err) {
    cl_backend *b = (cl_backend *)be;
    if (n > 16 || off > buf->bytes || n > buf->bytes - off)
        return rtr_seterr(err, RTR_EARG, "opencl: end_ahead of %zu bytes at %zu", n, off);
    if (b->ahead_n == 2) return rtr_seterr(err, RTR_EARG, "opencl: a third batch ended ahead");
    if (b->prof_path) { /* the profile needs the batch's events done: end as end does */
        int r = cl_end(be, err);
        if (r) return r;
    }
    int r = cl_flush_held(b, err);
    if (!r) r = cl_cmdbuf_end(b, err);
    b->cmd.recording = 0;
    b->pending = 0;
    b->flushed = 0;
    if (r) return r;
    int slot = (b->ahead_first + b->ahead_n) % 2;
    cl_int rc = clEnqueueReadBuffer(b->q, buf->mem, CL_FALSE, off, n, b->ahead_dst + 16 * slot, 0, NULL,
                                    &b->ahead_ev[slot]);
    if (rc != CL_SUCCESS) return cl_fail(err, "clEnqueueReadBuffer", rc);
    b->ahead_len[slot] = n;
    b->ahead_n++;
    rc = clFlush(b->q);
    return rc == CL_SUCCESS ? 0 : cl_fail(err, "clFlush", rc);
}

static int cl_wait_ahead(rtr_backend *be, void *dst, rtr_err *err) {
    cl_backend *b = (cl_backend *)be;
    if (!b->ahead_n) return rtr_seterr(err, RTR_EARG, "opencl: no batch was ended ahead");
    int slot = b->ahead_first;
    cl_int rc = clWaitForEvents(1, &b->ahead_ev[slot]), st = CL_COMPLETE;
    if (rc == CL_SUCCESS)
        rc = clGetEventInfo(b->ahead_ev[slot], CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof st, &st, NULL);
    clReleaseEvent(b->ahead_ev[slot]);
    b->ahead_ev[slot] = NULL;
    b->ahead_first = (slot + 1) % 2;
    b->ahead_n--;
    if (rc == CL_SUCCESS && st < 0) rc = st;
    if (rc != CL_SUCCESS) return cl_fail(err, "waiting for a batch", rc);
    memcpy(dst, b->ahead_dst + 16 * slot, b->ahead_len[slot]);
    return 0;
}

static void cl_destroy(rtr_backend *be) {
    cl_backend *b = (cl_backend *)be;
    if (!b) return;
    if (b->q) clFinish(b->q);
    for (int i = 0; i < 2; i++)
        if (b->ahead_ev[i]) clReleaseEvent(b->ahead_ev[i]);
    if (b->ahead_pin) clReleaseMemObject(b->ahead_pin);
    cl_cmdbuf_free(b);
    if (b->prof_path) {
        for (int i = 0; i < b->prof_n; i++) clReleaseEvent(b->prof_ev[i]);
        if (b->prof_batches) prof_write(b);
        free(b->prof_path);
        free(b->prof_ev);
        free(b->prof_k);
    }
    for (int i = 0; i < K_COUNT; i++)
        if (b->k[i]) clReleaseKernel(b->k[i]);
    if (b->prog) clReleaseProgram(b->prog);
    if (b->scratch) clReleaseMemObject(b->scratch);
    if (b->dummy) clReleaseMemObject(b->dummy);
    if (b->rope_tab) clReleaseMemObject(b->rope_tab);
    for (int w = 0; w < 2; w++)
        if (b->res[w].blk) clReleaseMemObject(b->res[w].blk);
    if (b->attn_cnt) clReleaseMemObject(b->attn_cnt);
    if (b->am_cnt) clReleaseMemObject(b->am_cnt);
    if (b->q) clReleaseCommandQueue(b->q);
    if (b->ctx) clReleaseContext(b->ctx);
    free(b->stage);
    free(b);
}

static const rtr_backend_ops cl_ops = {
    .name = "opencl",
    .destroy = cl_destroy,
    .buf_new = cl_buf_new,
    .buf_free = cl_buf_free,
    .buf_write = cl_buf_write,
    .buf_read = cl_buf_read,
    .buf_view = cl_buf_view,
    .reserve = cl_reserve,
    .begin = cl_begin,
    .run = cl_run,
    .end = cl_end,
    .end_ahead = cl_end_ahead,
    .wait_ahead = cl_wait_ahead,
};

int rtr_opencl_backend_create(rtr_backend **out, const rtr_backend_cfg *cfg, rtr_err *err) {
    cl_dev_ref devs[64];
    const char *why;
    int n = enum_devices(devs, 64, &why), want = cfg ? cfg->device : -1, pick = -1;
    if (n > 64) n = 64;
    if (n == 0) return rtr_seterr(err, RTR_EBACKEND, "opencl: %s", why);
    if (want >= 0) {
        if (want >= n) return rtr_seterr(err, RTR_EBACKEND, "opencl: no device %d (%d found)", want, n);
        pick = want;
    } else {
        for (int i = 0; i < n && pick < 0; i++) {
            cl_device_type t = 0;
            if (clGetDeviceInfo(devs[i].dev, CL_DEVICE_TYPE, sizeof t, &t, NULL) == CL_SUCCESS &&
                (t & CL_DEVICE_TYPE_GPU))
                pick = i;
        }
        if (pick < 0 && cfg && cfg->require_gpu) return rtr_seterr(err, RTR_EBACKEND, "opencl: no GPU device (only CPU drivers)");
        if (pick < 0) pick = 0;
    }
    cl_backend *b = calloc(1, sizeof *b);
    if (!b) return rtr_seterr(err, RTR_ENOMEM, "out of memory");
    b->base.ops = &cl_ops;
    b->plat = devs[pick].plat;
    b->dev = devs[pick].dev;
    b->progress = cfg ? cfg->progress : NULL;
    b->progress_ud = cfg ? cfg->progress_ud : NULL;
    char name[200], clc[64];
    cl_dev_str(b->dev, CL_DEVICE_NAME, name, sizeof name);
    cl_dev_str(b->dev, CL_DEVICE_OPENCL_C_VERSION, clc, sizeof clc);
    snprintf(b->base.desc, sizeof b->base.desc, "%s", name);
    int r;
    cl_device_type t = 0;
    cl_ulong lmem = 0;
    cl_uint align_bits = 0;
    cl_bool unified = CL_FALSE;
    clGetDeviceInfo(b->dev, CL_DEVICE_TYPE, sizeof t, &t, NULL);
    clGetDeviceInfo(b->dev, CL_DEVICE_LOCAL_MEM_SIZE, sizeof lmem, &lmem, NULL);
    clGetDeviceInfo(b->dev, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof b->n_cu, &b->n_cu, NULL);
    clGetDeviceInfo(b->dev, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof b->max_alloc, &b->max_alloc, NULL);
    clGetDeviceInfo(b->dev, CL_DEVICE_MEM_BASE_ADDR_ALIGN, sizeof align_bits, &align_bits, NULL);
    clGetDeviceInfo(b->dev, CL_DEVICE_HOST_UNIFIED_MEMORY, sizeof unified, &unified, NULL);
    b->host_unified = (t & CL_DEVICE_TYPE_CPU) && unified;
    b->base_align = align_bits >= 8 ? align_bits / 8 : 128;
    if (!b->n_cu) b->n_cu = 1;
    if (strncmp(clc, "OpenCL C 1.0", 12) == 0 || strncmp(clc, "OpenCL C 1.1", 12) == 0) {
        r = rtr_seterr(err, RTR_EBACKEND, "opencl: %s supports only %s (1.2 needed)", name, clc);
        goto fail;
    }
    if (lmem < 24 * 1024) {
        r = rtr_seterr(err, RTR_EBACKEND, "opencl: %s has %llu bytes of local memory (24 KiB needed)", name,
                       (unsigned long long)lmem);
        goto fail;
    }
    cl_int rc;
    cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)b->plat, 0};
    b->ctx = clCreateContext(props, 1, &b->dev, NULL, NULL, &rc);
    if (rc != CL_SUCCESS) {
        r = cl_fail(err, "clCreateContext", rc);
        goto fail;
    }
    const char *prof = getenv("ROTOR_OPENCL_PROFILE");
    if (prof && *prof) {
        b->prof_cap = 8192;
        b->prof_path = strdup(prof);
        b->prof_ev = malloc(sizeof *b->prof_ev * (size_t)b->prof_cap);
        b->prof_k = malloc(sizeof *b->prof_k * (size_t)b->prof_cap);
        if (!b->prof_path || !b->prof_ev || !b->prof_k) {
            r = rtr_seterr(err, RTR_ENOMEM, "out of memory");
            goto fail;
        }
    }
    b->q = clCreateCommandQueue(b->ctx, b->dev, b->prof_path ? CL_QUEUE_PROFILING_ENABLE : 0, &rc);
    if (rc != CL_SUCCESS) {
        r = cl_fail(err, "clCreateCommandQueue", rc);
        goto fail;
    }
    cl_cmdbuf_init(b, cl_has_ext(b->dev, "cl_khr_command_buffer"), b->prof_path ? CL_QUEUE_PROFILING_ENABLE : 0);
    b->dummy = clCreateBuffer(b->ctx, CL_MEM_READ_WRITE, 64, NULL, &rc);
    if (rc == CL_SUCCESS) b->rope_tab = clCreateBuffer(b->ctx, CL_MEM_READ_ONLY, CL_ROPE_FLOATS * 4, NULL, &rc);
    if (rc == CL_SUCCESS) { /* split counters start at 0, and the attention puts them back to 0 */
        static const cl_int zeros[CL_ATTN_CNT];
        b->attn_cnt = clCreateBuffer(b->ctx, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, sizeof zeros, (void *)zeros, &rc);
        if (rc == CL_SUCCESS)
            b->am_cnt = clCreateBuffer(b->ctx, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, CL_AM_CNT * sizeof(cl_int),
                                       (void *)zeros, &rc);
    }
    if (rc != CL_SUCCESS) {
        r = cl_fail(err, "clCreateBuffer", rc);
        goto fail;
    }
    /* where batches ended ahead copy their bytes out: page-locked memory, mapped for good, lets
     * the copy run without the host (plain memory where the device is the host) */
    b->ahead_dst = b->ahead_mem;
    if (!b->host_unified) {
        b->ahead_pin = clCreateBuffer(b->ctx, CL_MEM_READ_WRITE | CL_MEM_ALLOC_HOST_PTR, sizeof b->ahead_mem, NULL, &rc);
        void *h = rc == CL_SUCCESS ? clEnqueueMapBuffer(b->q, b->ahead_pin, CL_TRUE, CL_MAP_READ | CL_MAP_WRITE, 0,
                                                       sizeof b->ahead_mem, 0, NULL, NULL, &rc)
                                   : NULL;
        if (h && rc == CL_SUCCESS) b->ahead_dst = h;
    }
    b->stage_cap = STAGE_BYTES;
    if (!(b->stage = malloc(b->stage_cap))) {
        r = rtr_seterr(err, RTR_ENOMEM, "out of memory");
        goto fail;
    }
    if ((r = cl_build_kernels(b, cfg ? cfg->verbose : 0, err))) goto fail;
    *out = &b->base;
    return 0;
fail:
    cl_destroy(&b->base);
    return r;
}
