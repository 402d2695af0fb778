/* opencl_cmdbuf.c: a batch's launches recorded once and replayed, where the device offers
 * cl_khr_command_buffer. Decode runs the same ~150 launches (same kernels, buffers and
 * parameters; only buffer contents change) token after token, and each clEnqueueNDRangeKernel
 * costs the host microseconds. So between begin and end the launches are logged instead of
 * enqueued; at end, a log equal to the last batch's is recorded into a command buffer (the
 * second time it is seen) or replayed from it (every time after), with one call; any other log
 * goes out launch by launch as before. Anything that must reach the queue mid-batch (a buffer
 * write or read, a freed or grown buffer) spills the log first, in order. Each recorded launch
 * runs a kernel object of its own, its arguments left as recorded while the command buffer
 * lives: the extension captures arguments when a command is recorded, but PoCL 3.1 reads them
 * when the buffer runs.
 * Owns b->cmd: the entry points, the two logs and the command buffer. The logs are allocated
 * with the backend; only a recording (a new batch seen twice: the second token, and again when
 * the attention's scanned span grows) creates driver objects. ROTOR_OPENCL_NOCMDBUF=1 turns it
 * off (for comparison), and so does the profiler (which needs an event a launch). The entry points are those of the extension's
 * revisions 0.9.x, declared in opencl_impl.h so that OpenCL 1.2 headers are enough.
 */
#include "opencl_impl.h"

#include <stdlib.h>
#include <string.h>

#define CMD_CAP 1024 /* launches a batch can log; a longer batch spills and goes out directly */
#define CL_DEVICE_EXTENSIONS_WITH_VERSION_ 0x1060
#define CL_DEVICE_COMMAND_BUFFER_REQUIRED_QUEUE_PROPERTIES_ 0x12AA

/* The extension's version as the device reports it (OpenCL 3.0), or -1 where it cannot say. */
static long ext_version(cl_device_id dev) {
    typedef struct {
        cl_uint version;
        char name[64];
    } name_version;
    size_t sz = 0;
    if (clGetDeviceInfo(dev, CL_DEVICE_EXTENSIONS_WITH_VERSION_, 0, NULL, &sz) != CL_SUCCESS || !sz) return -1;
    name_version *nv = malloc(sz);
    long v = -1;
    if (nv && clGetDeviceInfo(dev, CL_DEVICE_EXTENSIONS_WITH_VERSION_, sz, nv, NULL) == CL_SUCCESS)
        for (size_t i = 0; i < sz / sizeof *nv; i++)
            if (!strncmp(nv[i].name, "cl_khr_command_buffer", sizeof nv[i].name)) v = nv[i].version;
    free(nv);
    return v;
}

void cl_cmdbuf_init(cl_backend *b, int offered, cl_command_queue_properties qprops) {
    cl_cmd *c = &b->cmd;
    memset(c, 0, sizeof *c);
    if (!offered || b->prof_path || rtr_env_flag("ROTOR_OPENCL_NOCMDBUF")) return;
    long v = ext_version(b->dev);
    if (v >= 0 && (v >> 22) != 0) return; /* a major version past the 0.9.x this is written for */
    cl_bitfield req = 0;
    if (clGetDeviceInfo(b->dev, CL_DEVICE_COMMAND_BUFFER_REQUIRED_QUEUE_PROPERTIES_, sizeof req, &req, NULL) !=
            CL_SUCCESS ||
        (req & ~(cl_bitfield)qprops))
        return;
    c->create = (cl_cb_create_fn)clGetExtensionFunctionAddressForPlatform(b->plat, "clCreateCommandBufferKHR");
    c->ndrange = (cl_cb_ndrange_fn)clGetExtensionFunctionAddressForPlatform(b->plat, "clCommandNDRangeKernelKHR");
    c->finalize = (cl_cb_one_fn)clGetExtensionFunctionAddressForPlatform(b->plat, "clFinalizeCommandBufferKHR");
    c->release = (cl_cb_one_fn)clGetExtensionFunctionAddressForPlatform(b->plat, "clReleaseCommandBufferKHR");
    c->enqueue = (cl_cb_enqueue_fn)clGetExtensionFunctionAddressForPlatform(b->plat, "clEnqueueCommandBufferKHR");
    if (!c->create || !c->ndrange || !c->finalize || !c->release || !c->enqueue) return;
    c->log = malloc(sizeof *c->log * CMD_CAP);
    c->last = malloc(sizeof *c->last * CMD_CAP);
    c->kern = calloc(CMD_CAP, sizeof *c->kern);
    c->kern_k = calloc(CMD_CAP, sizeof *c->kern_k);
    if (!c->log || !c->last || !c->kern || !c->kern_k) {
        cl_cmdbuf_free(b);
        return;
    }
    c->on = 1;
}

/* the command buffer held, released (its launches may name a buffer about to go) */
void cl_cmdbuf_drop(cl_backend *b) {
    cl_cmd *c = &b->cmd;
    if (c->cb) c->release(c->cb);
    c->cb = NULL;
    c->n_last = 0;
}

void cl_cmdbuf_free(cl_backend *b) {
    cl_cmd *c = &b->cmd;
    cl_cmdbuf_drop(b);
    if (c->kern)
        for (int i = 0; i < CMD_CAP; i++)
            if (c->kern[i]) clReleaseKernel(c->kern[i]);
    free(c->log);
    free(c->last);
    free(c->kern);
    free(c->kern_k);
    c->log = c->last = NULL;
    c->kern = NULL;
    c->kern_k = NULL;
    c->on = 0;
}

void cl_cmdbuf_begin(cl_backend *b) {
    b->cmd.recording = b->cmd.on;
    b->cmd.n = 0;
}

/* the logged launches enqueued one by one, and logging stopped for the rest of the batch */
int cl_cmdbuf_spill(cl_backend *b, rtr_err *err) {
    cl_cmd *c = &b->cmd;
    int n = c->n, r = 0;
    c->recording = 0;
    c->n = 0;
    for (int i = 0; i < n && !r; i++) r = cl_enqueue_launch(b, &c->log[i], err);
    return r;
}

int cl_cmdbuf_log(cl_backend *b, const cl_launch *L, rtr_err *err) {
    cl_cmd *c = &b->cmd;
    if (c->n == CMD_CAP) {
        int r = cl_cmdbuf_spill(b, err);
        return r ? r : cl_enqueue_launch(b, L, err);
    }
    c->log[c->n++] = *L;
    return 0;
}

static int same_launch(const cl_launch *x, const cl_launch *y) {
    if (x->k != y->k || x->nmem != y->nmem || x->dims != y->dims) return 0;
    if (memcmp(x->m, y->m, sizeof x->m[0] * (size_t)x->nmem)) return 0;
    if (memcmp(x->g, y->g, sizeof x->g[0] * x->dims) || memcmp(x->l, y->l, sizeof x->l[0] * x->dims)) return 0;
    /* the parameters' fields, not the struct's tail padding */
    return !memcmp(&x->p, &y->p, offsetof(cl_params, f) + sizeof x->p.f);
}

/* The log recorded into a new command buffer and enqueued; 0, or a CL error code. */
static cl_int record(cl_backend *b) {
    rtr_err e;
    cl_cmd *c = &b->cmd;
    cl_int rc;
    void *cb = c->create(1, &b->q, NULL, &rc);
    if (rc != CL_SUCCESS || !cb) return rc != CL_SUCCESS ? rc : CL_OUT_OF_RESOURCES;
    for (int i = 0; i < c->n && rc == CL_SUCCESS; i++) {
        const cl_launch *L = &c->log[i];
        if (!c->kern[i] || c->kern_k[i] != L->k) {
            if (c->kern[i]) clReleaseKernel(c->kern[i]);
            c->kern[i] = clCreateKernel(b->prog, cl_kernel_name(L->k), &rc);
            c->kern_k[i] = L->k;
            if (rc != CL_SUCCESS) {
                c->kern[i] = NULL;
                break;
            }
        }
        if (cl_set_args(b, c->kern[i], L, NULL, &e)) rc = CL_INVALID_KERNEL_ARGS;
        else rc = c->ndrange(cb, NULL, NULL, c->kern[i], L->dims, NULL, L->g, L->l, 0, NULL, NULL, NULL);
    }
    if (rc == CL_SUCCESS) rc = c->finalize(cb);
    if (rc == CL_SUCCESS) rc = c->enqueue(0, NULL, cb, 0, NULL, NULL);
    if (rc != CL_SUCCESS) {
        c->release(cb);
        return rc;
    }
    c->cb = cb;
    c->recorded++;
    return CL_SUCCESS;
}

int cl_cmdbuf_end(cl_backend *b, rtr_err *err) {
    cl_cmd *c = &b->cmd;
    if (!c->recording) return 0;
    c->recording = 0;
    int n = c->n, r = 0, seen = n > 0 && n == c->n_last;
    for (int i = 0; i < n && seen; i++) seen = same_launch(&c->log[i], &c->last[i]);
    if (!seen) {
        cl_cmdbuf_drop(b);
    } else if (c->cb) {
        if (c->enqueue(0, NULL, c->cb, 0, NULL, NULL) == CL_SUCCESS) {
            c->replays++;
            c->n = 0;
            return 0;
        }
        cl_cmdbuf_drop(b); /* then as a driver that cannot: one by one, and off from now on */
        c->on = 0;
        seen = 0;
    } else if (record(b) == CL_SUCCESS) {
        c->n = 0;
        return 0;
    } else {
        c->on = 0;
        seen = 0;
    }
    /* out launch by launch; the log becomes the one the next batch is compared with */
    for (int i = 0; i < n && !r; i++) r = cl_enqueue_launch(b, &c->log[i], err);
    cl_launch *t = c->last;
    c->last = c->log;
    c->log = t;
    c->n_last = r || !c->on ? 0 : n;
    c->n = 0;
    return r;
}
