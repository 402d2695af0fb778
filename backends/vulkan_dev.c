/* vulkan_dev.c: finding Vulkan devices and what they can do: the instance, each device's
 * capabilities as the shaders need them (subgroups, int8 and integer dot products, 8/16-bit
 * storage, the memory model, cooperative matrices) and the --list-devices lines. */
#include "vulkan_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int vk_make_instance(VkInstance *out, rtr_err *err) {
    uint32_t ver = VK_API_VERSION_1_0;
    PFN_vkEnumerateInstanceVersion ev = (PFN_vkEnumerateInstanceVersion)vkGetInstanceProcAddr(NULL, "vkEnumerateInstanceVersion");
    if (ev) ev(&ver);
    if (ver < VK_API_VERSION_1_1)
        return rtr_seterr(err, RTR_EBACKEND, "vulkan: the Vulkan loader is older than 1.1");
    VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO, .pApplicationName = "rotor",
                             .pEngineName = "rotor", .apiVersion = ver < VK_API_VERSION_1_3 ? ver : VK_API_VERSION_1_3};
    VkInstanceCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO, .pApplicationInfo = &app};
    VkResult r = vkCreateInstance(&ci, NULL, out);
    if (r == VK_ERROR_INCOMPATIBLE_DRIVER || r == VK_ERROR_INITIALIZATION_FAILED)
        return rtr_seterr(err, RTR_EBACKEND, "vulkan: no Vulkan driver found (%s)", vk_result_name(r));
    if (r != VK_SUCCESS) return vk_fail(NULL, r, "vkCreateInstance", err);
    return 0;
}

int vk_has_ext(VkPhysicalDevice pd, const char *name) {
    uint32_t n = 0;
    if (vkEnumerateDeviceExtensionProperties(pd, NULL, &n, NULL) != VK_SUCCESS || !n) return 0;
    VkExtensionProperties *e = malloc(n * sizeof *e);
    int found = 0;
    if (e && vkEnumerateDeviceExtensionProperties(pd, NULL, &n, e) == VK_SUCCESS)
        for (uint32_t i = 0; i < n && !found; i++) found = !strcmp(e[i].extensionName, name);
    free(e);
    return found;
}


/* Which cooperative-matrix shaders can run (COOP_I8: mm_t2_coop.comp, COOP_F16: attn_coop.comp):
 * VK_NV_cooperative_matrix with their shape at subgroup scope (16 x 8 x 32 int8 -> int32;
 * 16 x 16 x 16 f16 -> f32), subgroups of 32 (with vote and shuffle for the attention), int8
 * arithmetic and the Vulkan memory model (mem_model, as the device reports it). */
static int coop_shapes(VkInstance inst, VkPhysicalDevice pd, const vk_caps *c, int v12, uint32_t sg_ops, int mem_model) {
    if (!v12 || !mem_model || !c->int8 || c->sg_size != 32 || !vk_has_ext(pd, VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME))
        return 0;
    PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesNV get = (PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesNV)
        vkGetInstanceProcAddr(inst, "vkGetPhysicalDeviceCooperativeMatrixPropertiesNV");
    VkPhysicalDeviceCooperativeMatrixFeaturesNV cf = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV};
    VkPhysicalDeviceFeatures2 f2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &cf};
    vkGetPhysicalDeviceFeatures2(pd, &f2);
    if (!get || !cf.cooperativeMatrix) return 0;
    VkCooperativeMatrixPropertiesNV props[64];
    uint32_t n = 0;
    if (get(pd, &n, NULL) != VK_SUCCESS) return 0;
    if (n > 64) n = 64;
    for (uint32_t i = 0; i < n; i++) props[i] = (VkCooperativeMatrixPropertiesNV){.sType = VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_NV};
    if (get(pd, &n, props) < 0) return 0;
    int mask = 0;
    uint32_t need_ops = VK_SUBGROUP_FEATURE_VOTE_BIT | VK_SUBGROUP_FEATURE_SHUFFLE_BIT;
    for (uint32_t i = 0; i < n; i++) {
        const VkCooperativeMatrixPropertiesNV *q = &props[i];
        if (q->scope != VK_SCOPE_SUBGROUP_NV) continue;
        if (q->MSize == 16 && q->NSize == 8 && q->KSize == 32 && q->AType == VK_COMPONENT_TYPE_SINT8_NV &&
            q->BType == VK_COMPONENT_TYPE_SINT8_NV && q->CType == VK_COMPONENT_TYPE_SINT32_NV &&
            q->DType == VK_COMPONENT_TYPE_SINT32_NV)
            mask |= COOP_I8;
        if (q->MSize == 16 && q->NSize == 16 && q->KSize == 16 && q->AType == VK_COMPONENT_TYPE_FLOAT16_NV &&
            q->BType == VK_COMPONENT_TYPE_FLOAT16_NV && q->CType == VK_COMPONENT_TYPE_FLOAT32_NV &&
            q->DType == VK_COMPONENT_TYPE_FLOAT32_NV && (sg_ops & need_ops) == need_ops)
            mask |= COOP_F16;
    }
    return mask;
}

/* The major version of a Mesa driver ("... Mesa 22.3.6 ..." in its name and information), else 0. */
static int mesa_major(const char *driver) {
    const char *m = strstr(driver, "Mesa ");
    return m && m[5] >= '0' && m[5] <= '9' ? atoi(m + 5) : 0;
}

void vk_query_caps(VkInstance inst, VkPhysicalDevice pd, vk_caps *c) {
    memset(c, 0, sizeof *c);
    VkPhysicalDeviceProperties p;
    vkGetPhysicalDeviceProperties(pd, &p);
    int v13 = p.apiVersion >= VK_API_VERSION_1_3, v12 = p.apiVersion >= VK_API_VERSION_1_2;
    c->dot_ext = !v13 && vk_has_ext(pd, VK_KHR_SHADER_INTEGER_DOT_PRODUCT_EXTENSION_NAME);
    int drv = v12 || vk_has_ext(pd, VK_KHR_DRIVER_PROPERTIES_EXTENSION_NAME);
    VkPhysicalDeviceSubgroupProperties sp = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
    VkPhysicalDeviceDriverProperties dp = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES};
    VkPhysicalDeviceShaderIntegerDotProductProperties ip = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_PROPERTIES};
    VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &sp};
    if (drv) { dp.pNext = p2.pNext; p2.pNext = &dp; }
    if (v13 || c->dot_ext) { ip.pNext = p2.pNext; p2.pNext = &ip; }
    vkGetPhysicalDeviceProperties2(pd, &p2);
    c->sg_size = (int)sp.subgroupSize;
    c->sg = (sp.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) &&
            (sp.supportedOperations & VK_SUBGROUP_FEATURE_BASIC_BIT) &&
            (sp.supportedOperations & VK_SUBGROUP_FEATURE_ARITHMETIC_BIT) &&
            sp.subgroupSize >= 4 && sp.subgroupSize <= 128 && !(sp.subgroupSize & (sp.subgroupSize - 1));
    c->dot_accel = ip.integerDotProduct4x8BitPackedMixedSignednessAccelerated;
    if (drv) snprintf(c->driver, sizeof c->driver, "%s %s", dp.driverName, dp.driverInfo);
    else snprintf(c->driver, sizeof c->driver, "driver %u.%u.%u", VK_API_VERSION_MAJOR(p.driverVersion),
                  VK_API_VERSION_MINOR(p.driverVersion), VK_API_VERSION_PATCH(p.driverVersion));
    VkPhysicalDevice8BitStorageFeatures f8 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_8BIT_STORAGE_FEATURES};
    VkPhysicalDevice16BitStorageFeatures f16 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES, .pNext = &f8};
    VkPhysicalDeviceShaderFloat16Int8Features fi = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES, .pNext = &f16};
    VkPhysicalDeviceShaderIntegerDotProductFeatures fd = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_FEATURES};
    VkPhysicalDeviceFeatures2 f2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &f16};
    if (v12 || vk_has_ext(pd, VK_KHR_SHADER_FLOAT16_INT8_EXTENSION_NAME)) f2.pNext = &fi;
    if (v13 || c->dot_ext) { fd.pNext = f2.pNext; f2.pNext = &fd; }
    VkPhysicalDeviceVulkanMemoryModelFeatures mf = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_MEMORY_MODEL_FEATURES};
    if (v12) { mf.pNext = f2.pNext; f2.pNext = &mf; }
    VkPhysicalDeviceShaderAtomicInt64Features fa = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_ATOMIC_INT64_FEATURES};
    if (v12) { fa.pNext = f2.pNext; f2.pNext = &fa; }
    vkGetPhysicalDeviceFeatures2(pd, &f2);
    c->a64 = f2.features.shaderInt64 && fa.shaderBufferInt64Atomics;
    c->int8 = fi.shaderInt8;
    c->st8 = f8.storageBuffer8BitAccess;
    c->st16 = f16.storageBuffer16BitAccess;
    c->dot = fd.shaderIntegerDotProduct;
    /* Mesa 22.3's lavapipe runs the memory-model shaders wrongly (test_backend_ops: fused norms
     * and GLU products far off); no Mesa before 23 is trusted with them */
    int mesa = mesa_major(c->driver);
    int vmm = v12 && mf.vulkanMemoryModel && mf.vulkanMemoryModelDeviceScope;
    c->vmm = vmm && (mesa == 0 || mesa >= 23);
    c->vmm_mesa = vmm && !c->vmm;
    c->coop = coop_shapes(inst, pd, c, v12, sp.supportedOperations, v12 && mf.vulkanMemoryModel);
}

static const char *type_name(VkPhysicalDeviceType t) {
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return "discrete GPU";
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return "integrated GPU";
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return "virtual GPU";
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return "CPU";
    default: return "other";
    }
}

int rtr_vulkan_list_devices(char *out, size_t cap) {
    VkInstance inst;
    rtr_err e;
    if (vk_make_instance(&inst, &e)) return 0; /* no loader driver: no devices */
    uint32_t n = 0;
    vkEnumeratePhysicalDevices(inst, &n, NULL);
    VkPhysicalDevice *pds = n ? malloc(n * sizeof *pds) : NULL;
    if (n && !pds) { vkDestroyInstance(inst, NULL); return RTR_ENOMEM; }
    if (n) vkEnumeratePhysicalDevices(inst, &n, pds);
    for (uint32_t i = 0; i < n; i++) {
        VkPhysicalDeviceProperties p;
        VkPhysicalDeviceMemoryProperties mp;
        vk_caps c;
        vkGetPhysicalDeviceProperties(pds[i], &p);
        vkGetPhysicalDeviceMemoryProperties(pds[i], &mp);
        vk_query_caps(inst, pds[i], &c);
        char heaps[160] = "";
        for (uint32_t h = 0; h < mp.memoryHeapCount && strlen(heaps) < sizeof heaps - 40; h++)
            snprintf(heaps + strlen(heaps), sizeof heaps - strlen(heaps), "%s%.1f GiB%s", h ? " + " : "",
                     mp.memoryHeaps[h].size / 1073741824.0,
                     mp.memoryHeaps[h].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT ? " device" : " host");
        size_t l = strlen(out);
        if (l >= cap) break;
        snprintf(out + l, cap - l,
                 "  %u: %s (%s), %s, Vulkan %u.%u, heaps %s, subgroup %d%s, int8 %s, 8/16-bit storage %s/%s, "
                 "int dot %s, matrices %s, memory model %s\n",
                 i, p.deviceName, type_name(p.deviceType), c.driver, VK_API_VERSION_MAJOR(p.apiVersion),
                 VK_API_VERSION_MINOR(p.apiVersion), heaps, c.sg_size, c.sg ? " (arith)" : "",
                 c.int8 ? "yes" : "no", c.st8 ? "yes" : "no", c.st16 ? "yes" : "no",
                 !c.dot ? "no" : c.dot_accel ? "yes (accelerated)" : "yes", c.coop == (COOP_I8 | COOP_F16) ? "int8 + f16 (NV)" : c.coop == COOP_I8 ? "int8 (NV)" : c.coop ? "f16 (NV)" : "no",
                 c.vmm ? "yes" : c.vmm_mesa ? "not used (Mesa before 23)" : "no");
    }
    free(pds);
    vkDestroyInstance(inst, NULL);
    return (int)n;
}
