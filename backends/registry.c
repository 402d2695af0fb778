/* registry.c: the compiled-in backends, in the order "auto" tries them (GPUs first), the
 * environment switches the GPU backends share, and RoPE's inverse frequencies, which every
 * backend must compute alike. */
#include "backend.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const rtr_backend_entry cpu_entry = {"cpu", rtr_cpu_backend_create, rtr_cpu_list_devices};
#ifdef RTR_HAVE_VULKAN
static const rtr_backend_entry vulkan_entry = {"vulkan", rtr_vulkan_backend_create, rtr_vulkan_list_devices};
#endif
#ifdef RTR_HAVE_OPENCL
static const rtr_backend_entry opencl_entry = {"opencl", rtr_opencl_backend_create, rtr_opencl_list_devices};
#endif

static const rtr_backend_entry *const all[] = {
#ifdef RTR_HAVE_VULKAN
    &vulkan_entry,
#endif
#ifdef RTR_HAVE_OPENCL
    &opencl_entry,
#endif
    &cpu_entry,
};

const rtr_backend_entry *const *rtr_backend_all(int *n) {
    *n = (int)(sizeof all / sizeof all[0]);
    return all;
}

const rtr_backend_entry *rtr_backend_find(const char *name) {
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (!strcmp(all[i]->name, name)) return all[i];
    return NULL;
}

int rtr_env_flag(const char *name) {
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0");
}

float rtr_rope_inv_freq(float theta, int i, int rd) { return 1.0f / powf(theta, (float)(2 * i) / (float)rd); }
