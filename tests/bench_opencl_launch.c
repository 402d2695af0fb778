/* bench_opencl_launch.c: what a kernel launch costs the host on an OpenCL platform, and which
 * queue setups let two kernels run at the same time. One-token decode enqueues about 150 small
 * kernels a token, so the driver's cost per clEnqueueNDRangeKernel, and the device's per launch,
 * bound tokens per second as surely as the kernels do.
 *   1. host time per enqueue of an empty kernel with 2 buffer arguments, 16, and 14 plus a
 *      188-byte struct by value (the shape of rotor's one-token products), with the arguments
 *      left alone, and with the struct and ten buffers set again before every launch;
 *   2. device time per launch: LAUNCHES launches of the 2-argument kernel queued behind a user
 *      event, then released, so that the device runs them back to back with the host out of
 *      the way (one work-group, and 132 x 256 work-items: an H100's multiprocessors once over);
 *      then other ways to order the same dependent launches: an out-of-order queue with each
 *      launch waiting on the last one's event, or with a barrier between launches; a 12-byte
 *      buffer write before every launch (what the token's small uploads cost on the device);
 *      and, where the device offers cl_khr_command_buffer, the launches recorded once in a
 *      command buffer and replayed;
 *   3. concurrency: a kernel that polls a flag (giving up after POLLS polls) is enqueued first,
 *      a kernel that sets the flag second, on one in-order queue, on one out-of-order queue and
 *      on two in-order queues. The poller sees the flag only where the two run at once.
 * Not run by `make test`. Build and run on the machine to measure (the first GPU device found,
 * else the first device):
 *   make build/tests/bench_opencl_launch && build/tests/bench_opencl_launch
 */
#define CL_USE_DEPRECATED_OPENCL_1_2_APIS
#include <CL/cl.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define POLLS 4000000
#define LAUNCHES 5000

static const char *src =
    "typedef struct { ulong off[14]; int i[14]; float f[5]; } prm;\n"
    "__kernel void k2(__global int *a, __global int *b) { if (get_global_id(0) == 0) a[0] += b[0]; }\n"
    "#define B(x) __global int *x\n"
    "__kernel void k16(B(a), B(b), B(c), B(d), B(e), B(f), B(g), B(h), B(i), B(j), B(k), B(l), B(m),\n"
    "                  B(n), B(o), B(p)) { if (get_global_id(0) == 0) a[0] += b[0]; }\n"
    "__kernel void k14p(B(a), B(b), B(c), B(d), B(e), B(f), B(g), B(h), B(i), B(j), B(k), B(l), B(m),\n"
    "                   B(n), prm P) { if (get_global_id(0) == 0) a[P.i[0]] += b[0]; }\n"
    "__kernel void poller(__global volatile int *flag, __global int *out) {\n"
    "    if (get_global_id(0) != 0) return;\n"
    "    int i = 0;\n"
    "    while (i < " "4000000" " && atomic_add(flag, 0) == 0) i++;\n"
    "    out[0] = i;\n"
    "}\n"
    "__kernel void setter(__global volatile int *flag) { if (get_global_id(0) == 0) atomic_xchg(flag, 1); }\n";

typedef struct {
    cl_ulong off[14];
    cl_int i[14];
    cl_float f[5];
} prm;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* cl_khr_command_buffer's entry points (as in its revisions 0.9.x), declared here so that the
 * OpenCL 1.2 headers the project builds with are enough */
typedef void *cmdbuf;
typedef cmdbuf (*cb_create_fn)(cl_uint, const cl_command_queue *, const cl_ulong *, cl_int *);
typedef cl_int (*cb_ndrange_fn)(cmdbuf, cl_command_queue, const cl_ulong *, cl_kernel, cl_uint, const size_t *,
                                const size_t *, const size_t *, cl_uint, const cl_uint *, cl_uint *, void *);
typedef cl_int (*cb_one_fn)(cmdbuf);
typedef cl_int (*cb_enqueue_fn)(cl_uint, cl_command_queue *, cmdbuf, cl_uint, const cl_event *, cl_event *);

static int fail(const char *what, cl_int rc) {
    fprintf(stderr, "bench_opencl_launch: %s failed (%d)\n", what, (int)rc);
    return 1;
}

#define TRY(call, what)                                                                           \
    do {                                                                                          \
        cl_int rc_ = (call);                                                                      \
        if (rc_ != CL_SUCCESS) return fail(what, rc_);                                            \
    } while (0)

/* Host microseconds per enqueue of k over LAUNCHES launches (flushed every 32), best of two,
 * with reset() called before each launch when given. */
static int time_enqueue(cl_command_queue q, cl_kernel k, cl_mem *bufs, int reset, double *us) {
    size_t g = 32, l = 32;
    prm P;
    memset(&P, 0, sizeof P);
    *us = 1e30;
    for (int rep = 0; rep < 2; rep++) {
        double t0 = now();
        for (int i = 0; i < LAUNCHES; i++) {
            if (reset) {
                TRY(clSetKernelArg(k, 14, sizeof P, &P), "clSetKernelArg");
                for (int a = 0; a < 10; a++)
                    TRY(clSetKernelArg(k, (cl_uint)a, sizeof(cl_mem), &bufs[(a + i) % 16]), "clSetKernelArg");
            }
            TRY(clEnqueueNDRangeKernel(q, k, 1, NULL, &g, &l, 0, NULL, NULL), "clEnqueueNDRangeKernel");
            if (i % 32 == 31) clFlush(q);
        }
        double t = (now() - t0) * 1e6 / LAUNCHES;
        TRY(clFinish(q), "clFinish");
        if (t < *us) *us = t;
    }
    return 0;
}

/* Releases gate (which holds back the n launches queued on q) and gives the device
 * microseconds per launch until q drains. */
static int drain(cl_event gate, cl_command_queue q, int n, double *us) {
    clFlush(q);
    double t0 = now();
    TRY(clSetUserEventStatus(gate, CL_COMPLETE), "clSetUserEventStatus");
    TRY(clFinish(q), "clFinish");
    *us = (now() - t0) * 1e6 / n;
    clReleaseEvent(gate);
    return 0;
}

enum { DEP_QUEUE, DEP_EVENT, DEP_BARRIER, DEP_WRITE };

/* Device microseconds per launch of k (g work-items in groups of l), LAUNCHES of them queued
 * behind a user event and timed from its release to the end of clFinish, best of two, each
 * after the one before: by the in-order queue q (DEP_QUEUE); on an out-of-order queue q through
 * each launch's event or a barrier between launches; or on an in-order queue with a 12-byte write
 * of buffer wb before each launch. The barrier way runs a tenth of the launches: PoCL makes each
 * barrier depend on every command before it. */
static int time_device(cl_context ctx, cl_command_queue q, cl_kernel k, size_t g, size_t l, int how, cl_mem wb,
                       double *us) {
    static cl_event ev[LAUNCHES];
    static const cl_int words[3] = {1, 2, 3};
    int n = how == DEP_BARRIER ? LAUNCHES / 10 : LAUNCHES;
    *us = 1e30;
    for (int rep = 0; rep < 2; rep++) {
        cl_int rc;
        cl_event gate = clCreateUserEvent(ctx, &rc);
        TRY(rc, "clCreateUserEvent");
        for (int i = 0; i < n; i++) {
            cl_event *wait = i == 0 ? &gate : how == DEP_EVENT ? &ev[i - 1] : NULL;
            cl_uint nw = i == 0 || how == DEP_EVENT ? 1 : 0;
            if (how == DEP_BARRIER && i > 0) TRY(clEnqueueBarrierWithWaitList(q, 0, NULL, NULL), "barrier");
            if (how == DEP_WRITE) {
                TRY(clEnqueueWriteBuffer(q, wb, CL_FALSE, 0, sizeof words, words, nw, wait, NULL), "write");
                nw = 0;
                wait = NULL;
            }
            TRY(clEnqueueNDRangeKernel(q, k, 1, NULL, &g, &l, nw, wait, how == DEP_EVENT ? &ev[i] : NULL),
                "clEnqueueNDRangeKernel");
            if (i % 32 == 31) clFlush(q);
        }
        double t;
        if (drain(gate, q, n, &t)) return 1;
        if (how == DEP_EVENT)
            for (int i = 0; i < n; i++) clReleaseEvent(ev[i]);
        if (t < *us) *us = t;
    }
    return 0;
}

/* Device microseconds per launch replayed from a command buffer of LAUNCHES launches of k
 * recorded on the in-order queue q (one replay at a time: a driver need not allow a command
 * buffer to be pending twice); *us < 0 where the platform lacks the extension's entry points. */
static int time_cmdbuf(cl_platform_id plat, cl_context ctx, cl_command_queue q, cl_kernel k, double *us) {
    cb_create_fn create = (cb_create_fn)clGetExtensionFunctionAddressForPlatform(plat, "clCreateCommandBufferKHR");
    cb_ndrange_fn ndrange = (cb_ndrange_fn)clGetExtensionFunctionAddressForPlatform(plat, "clCommandNDRangeKernelKHR");
    cb_one_fn finalize = (cb_one_fn)clGetExtensionFunctionAddressForPlatform(plat, "clFinalizeCommandBufferKHR");
    cb_one_fn release = (cb_one_fn)clGetExtensionFunctionAddressForPlatform(plat, "clReleaseCommandBufferKHR");
    cb_enqueue_fn enqueue = (cb_enqueue_fn)clGetExtensionFunctionAddressForPlatform(plat, "clEnqueueCommandBufferKHR");
    *us = -1;
    if (!create || !ndrange || !finalize || !release || !enqueue) return 0;
    size_t g = 32, l = 32;
    cl_int rc;
    cmdbuf cb = create(1, &q, NULL, &rc);
    TRY(rc, "clCreateCommandBufferKHR");
    for (int i = 0; i < LAUNCHES; i++) TRY(ndrange(cb, NULL, NULL, k, 1, NULL, &g, &l, 0, NULL, NULL, NULL), "clCommandNDRangeKernelKHR");
    TRY(finalize(cb), "clFinalizeCommandBufferKHR");
    *us = 1e30;
    for (int rep = 0; rep < 2; rep++) {
        cl_event gate = clCreateUserEvent(ctx, &rc);
        TRY(rc, "clCreateUserEvent");
        TRY(enqueue(0, NULL, cb, 1, &gate, NULL), "clEnqueueCommandBufferKHR");
        double t;
        if (drain(gate, q, LAUNCHES, &t)) return 1;
        if (t < *us) *us = t;
    }
    release(cb);
    return 0;
}

/* poller on qa, then setter on qb: the polls the poller made before it saw the flag */
static int concurrent(cl_command_queue qa, cl_command_queue qb, cl_command_queue qw, cl_kernel kp, cl_kernel ks,
                      cl_mem flag, cl_mem out, int *polls) {
    size_t g = 32, l = 32;
    cl_int zero = 0;
    TRY(clEnqueueWriteBuffer(qw, flag, CL_TRUE, 0, sizeof zero, &zero, 0, NULL, NULL), "clEnqueueWriteBuffer");
    TRY(clEnqueueNDRangeKernel(qa, kp, 1, NULL, &g, &l, 0, NULL, NULL), "clEnqueueNDRangeKernel");
    clFlush(qa);
    TRY(clEnqueueNDRangeKernel(qb, ks, 1, NULL, &g, &l, 0, NULL, NULL), "clEnqueueNDRangeKernel");
    clFlush(qb);
    TRY(clFinish(qa), "clFinish");
    TRY(clFinish(qb), "clFinish");
    TRY(clEnqueueReadBuffer(qw, out, CL_TRUE, 0, sizeof *polls, polls, 0, NULL, NULL), "clEnqueueReadBuffer");
    return 0;
}

int main(void) {
    cl_platform_id plats[16];
    cl_uint np = 0;
    TRY(clGetPlatformIDs(16, plats, &np), "clGetPlatformIDs");
    cl_device_id dev = NULL;
    cl_platform_id plat = plats[0];
    for (cl_uint i = 0; i < np && !dev; i++)
        if (clGetDeviceIDs(plats[i], CL_DEVICE_TYPE_GPU, 1, &dev, NULL) != CL_SUCCESS) dev = NULL;
        else plat = plats[i];
    if (!dev) TRY(clGetDeviceIDs(plats[0], CL_DEVICE_TYPE_ALL, 1, &dev, NULL), "clGetDeviceIDs");
    char name[256] = "", drv[256] = "";
    clGetDeviceInfo(dev, CL_DEVICE_NAME, sizeof name, name, NULL);
    clGetDeviceInfo(dev, CL_DRIVER_VERSION, sizeof drv, drv, NULL);
    printf("device: %s (driver %s)\n", name, drv);
    size_t xl = 0;
    clGetDeviceInfo(dev, CL_DEVICE_EXTENSIONS, 0, NULL, &xl);
    char *ext = calloc(1, xl + 1);
    if (ext && clGetDeviceInfo(dev, CL_DEVICE_EXTENSIONS, xl, ext, NULL) == CL_SUCCESS) printf("extensions: %s\n", ext);

    cl_int rc;
    cl_context ctx = clCreateContext(NULL, 1, &dev, NULL, NULL, &rc);
    TRY(rc, "clCreateContext");
    cl_program prog = clCreateProgramWithSource(ctx, 1, &src, NULL, &rc);
    TRY(rc, "clCreateProgramWithSource");
    TRY(clBuildProgram(prog, 1, &dev, "", NULL, NULL), "clBuildProgram");
    cl_kernel k2 = clCreateKernel(prog, "k2", &rc), k16 = clCreateKernel(prog, "k16", &rc);
    cl_kernel k14p = clCreateKernel(prog, "k14p", &rc), kp = clCreateKernel(prog, "poller", &rc);
    cl_kernel ks = clCreateKernel(prog, "setter", &rc);
    TRY(rc, "clCreateKernel");
    cl_mem bufs[16], flag, out;
    for (int i = 0; i < 16; i++) {
        bufs[i] = clCreateBuffer(ctx, CL_MEM_READ_WRITE, 4096, NULL, &rc);
        TRY(rc, "clCreateBuffer");
    }
    flag = clCreateBuffer(ctx, CL_MEM_READ_WRITE, 64, NULL, &rc);
    TRY(rc, "clCreateBuffer");
    out = clCreateBuffer(ctx, CL_MEM_READ_WRITE, 64, NULL, &rc);
    TRY(rc, "clCreateBuffer");
    cl_command_queue q1 = clCreateCommandQueue(ctx, dev, 0, &rc);
    TRY(rc, "clCreateCommandQueue");
    cl_command_queue q2 = clCreateCommandQueue(ctx, dev, 0, &rc);
    TRY(rc, "clCreateCommandQueue");
    cl_command_queue qo = clCreateCommandQueue(ctx, dev, CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE, &rc);
    if (rc != CL_SUCCESS) qo = NULL;

    prm P;
    memset(&P, 0, sizeof P);
    for (cl_uint a = 0; a < 16; a++) {
        TRY(clSetKernelArg(k16, a, sizeof(cl_mem), &bufs[a]), "clSetKernelArg");
        if (a < 2) TRY(clSetKernelArg(k2, a, sizeof(cl_mem), &bufs[a]), "clSetKernelArg");
        if (a < 14) TRY(clSetKernelArg(k14p, a, sizeof(cl_mem), &bufs[a]), "clSetKernelArg");
    }
    TRY(clSetKernelArg(k14p, 14, sizeof P, &P), "clSetKernelArg");
    double us;
    printf("host time per enqueue, empty kernel of 32 work-items, best of 2 x %d launches:\n", LAUNCHES);
    if (time_enqueue(q1, k2, bufs, 0, &us)) return 1;
    printf("  2 buffer arguments                           %6.2f us\n", us);
    if (time_enqueue(q1, k16, bufs, 0, &us)) return 1;
    printf("  16 buffer arguments                          %6.2f us\n", us);
    for (cl_uint a = 0; a < 16; a++) TRY(clSetKernelArg(k16, a, sizeof(cl_mem), &bufs[0]), "clSetKernelArg");
    if (time_enqueue(q1, k16, bufs, 0, &us)) return 1;
    printf("  16 buffer arguments, all the same buffer     %6.2f us\n", us);
    if (time_enqueue(q1, k14p, bufs, 0, &us)) return 1;
    printf("  14 buffers + 188-byte struct                 %6.2f us\n", us);
    if (time_enqueue(q1, k14p, bufs, 1, &us)) return 1;
    printf("  the same, struct and 10 buffers set again    %6.2f us\n", us);

    for (cl_uint a = 0; a < 2; a++) TRY(clSetKernelArg(k2, a, sizeof(cl_mem), &bufs[a]), "clSetKernelArg");
    printf("device time per launch of the 2-argument kernel, %d queued behind a user event:\n", LAUNCHES);
    if (time_device(ctx, q1, k2, 32, 32, DEP_QUEUE, NULL, &us)) return 1;
    printf("  one work-group of 32                         %6.2f us\n", us);
    if (time_device(ctx, q1, k2, 132 * 256, 256, DEP_QUEUE, NULL, &us)) return 1;
    printf("  132 work-groups of 256                       %6.2f us\n", us);
    if (qo) {
        if (time_device(ctx, qo, k2, 32, 32, DEP_EVENT, NULL, &us)) return 1;
        printf("  out-of-order queue, each on the last's event %6.2f us\n", us);
        if (time_device(ctx, qo, k2, 32, 32, DEP_BARRIER, NULL, &us)) return 1;
        printf("  out-of-order queue, barriers between        %6.2f us\n", us);
    }
    if (time_device(ctx, q1, k2, 32, 32, DEP_WRITE, bufs[2], &us)) return 1;
    printf("  a 12-byte buffer write before each launch    %6.2f us\n", us);
    if (ext && strstr(ext, "cl_khr_command_buffer")) {
        if (time_cmdbuf(plat, ctx, q1, k2, &us)) return 1;
        if (us < 0) printf("  command buffer: entry points not found\n");
        else printf("  replayed from a command buffer              %6.2f us\n", us);
    } else {
        printf("  command buffer: cl_khr_command_buffer not offered\n");
    }
    free(ext);

    TRY(clSetKernelArg(kp, 0, sizeof flag, &flag), "clSetKernelArg");
    TRY(clSetKernelArg(kp, 1, sizeof out, &out), "clSetKernelArg");
    TRY(clSetKernelArg(ks, 0, sizeof flag, &flag), "clSetKernelArg");
    struct {
        const char *what;
        cl_command_queue a, b;
    } cases[] = {{"one in-order queue", q1, q1}, {"one out-of-order queue", qo, qo}, {"two in-order queues", q1, q2}};
    printf("a flag poller, then its setter (at most %d polls):\n", POLLS);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        if (!cases[c].a) {
            printf("  %-24s not offered\n", cases[c].what);
            continue;
        }
        int polls = 0;
        if (concurrent(cases[c].a, cases[c].b, q1, kp, ks, flag, out, &polls)) return 1;
        printf("  %-24s %s (%d polls)\n", cases[c].what,
               polls >= POLLS ? "one after the other" : "at the same time", polls);
    }
    return 0;
}
