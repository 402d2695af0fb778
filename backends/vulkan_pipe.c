/* vulkan_pipe.c: the Vulkan backend's compute pipelines: the SPIR-V built into the binary
 * (shaders.h, one variant a device's features pick), their specialization constants, and the
 * one-token products' settings (workgroup sizes, lanes a row, weight pieces a lane). */
#include "vulkan_impl.h"
#include "shaders.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const rtr_spv_entry *find_spv(const char *name) {
    for (size_t i = 0; i < sizeof rtr_spv_table / sizeof rtr_spv_table[0]; i++)
        if (!strcmp(rtr_spv_table[i].name, name)) return &rtr_spv_table[i];
    return NULL;
}

/* Whether the binary holds shader name (built where the compiler could). */
int vk_has_shader(const char *name) { return find_spv(name) != NULL; }

/* Up to three sizes from environment variable name, "N" or "S,G,L" (short rows, gate/up pairs,
 * long rows; a size missing repeats the one before), each from lo to hi (a power of two where
 * pow2); out keeps its defaults where the variable is unset or a size is out of range. */
static void env_three(const char *name, long lo, long hi, int pow2, uint32_t out[3]) {
    const char *e = getenv(name);
    for (int i = 0; e && i < 3; i++) {
        char *end;
        long v = strtol(e, &end, 10);
        if (end == e || v < lo || v > hi || (pow2 && (v & (v - 1)))) break;
        for (int j = i; j < 3; j++) out[j] = (uint32_t)v;
        if (*end != ',') break;
        e = end + 1;
    }
}

/* mm_t2_vec.comp's workgroup sizes (VK_WG_VEC_S/G/L or ROTOR_VK_VEC_WG), fewest lanes a row
 * (4, or ROTOR_VK_VEC_LANES) and weight pieces an invocation (VK_VEC_MAXU_S/G/L, or
 * ROTOR_VK_VEC_PIECES) for its kinds of rows; the unfused variant takes the short rows'. */
void vk_vec_settings(vk_backend *vk) {
    uint32_t w[3] = {VK_WG_VEC_S, VK_WG_VEC_G, VK_WG_VEC_L}, l[3] = {4, 4, 4}, u[3] = {VK_VEC_MAXU_S, VK_VEC_MAXUG, VK_VEC_MAXU_L};
    env_three("ROTOR_VK_VEC_WG", 128, 1024, 1, w);
    env_three("ROTOR_VK_VEC_LANES", 4, 32, 1, l);
    env_three("ROTOR_VK_VEC_PIECES", 4, 16, 0, u); /* 32 lanes x 4 pieces: VK_VEC_KMAX */
    static const int kind[4] = {[VP_MMT2_V - VP_MMT2_V] = 0, [VP_MMT2_VS - VP_MMT2_V] = 0,
                                [VP_MMT2_VG - VP_MMT2_V] = 1, [VP_MMT2_VF - VP_MMT2_V] = 2};
    for (int i = 0; i < 4; i++) {
        vk->vec_wg[i] = w[kind[i]];
        vk->vec_lanes[i] = l[kind[i]];
        vk->vec_maxu[i] = u[kind[i]];
    }
}

int vk_make_pipelines(vk_backend *vk, rtr_err *err) {
    /* specialization constants: 0 TMAX, 1 workgroup size; mm_t2_vec only: 2 fused norm, 3 its
     * words an invocation, 4 weight pieces an invocation */
    static const struct { const char *shader; uint32_t spec[5]; } P[VP_COUNT] = {
        [VP_EMBED] = {"embed", {0}}, [VP_NORM] = {"norm", {0}}, [VP_MMT2_1] = {"mm_t2", {1, 128, 0}},
        [VP_MMT2_N] = {"mm_t2", {VK_TMAX, 128, 0}},
        [VP_MMT2_V] = {"mm_t2_vec", {0, 0, 0, 1, 0}}, /* sizes: vk_vec_settings */
        [VP_MMT2_VF] = {"mm_t2_vec", {0, 0, 1, 0, 0}},
        [VP_MMT2_VS] = {"mm_t2_vec", {0, 0, 1, 0, 0}},
        [VP_MMT2_VG] = {"mm_t2_vec", {0, 0, 1, 0, 0}},
        [VP_MMT2_G] = {"mm_t2_gemm", {0}}, [VP_MMT2_C] = {"mm_t2_coop", {0}},
        [VP_MMF_1] = {"mm_f", {1, 0, 0}}, [VP_MMF_N] = {"mm_f", {VK_TMAX, 0, 0}},
        [VP_ROPE] = {"rope", {0}}, [VP_KV] = {"kv_store", {0}}, [VP_ATTN] = {"attn", {0}}, [VP_ATTND] = {"attn_dec", {0, VK_ATTND_WG, 0}}, [VP_ATTNB] = {"attn_batch", {0}}, [VP_ATTNC] = {"attn_coop", {0}}, [VP_GLU] = {"glu", {0}},
        [VP_ARGMAX] = {"argmax", {0}}, [VP_MMF_1A] = {"mm_f__amax", {1, 0, 0}},
    };
    for (int i = 0; i < VP_COUNT; i++) {
        if (i >= VP_MMT2_V && i <= VP_MMT2_VG && vk->no_vec) continue;
        if (i == VP_MMT2_G && vk->no_gemm) continue;
        if (i == VP_MMT2_C && !(vk->coop & COOP_I8)) continue;
        if (i == VP_ATTNC && !(vk->coop & COOP_F16)) continue;
        if (i == VP_ATTNB && vk->no_attnb) continue;
        if (i == VP_ATTND && vk->no_attnd) continue;
        if (i == VP_MMF_1A && !vk->amax) continue;
        char name[64];
        int mm = !strncmp(P[i].shader, "mm_", 3);
        snprintf(name, sizeof name, "%s__vmm", P[i].shader); /* built for the chained shaders */
        const rtr_spv_entry *s = vk->vmm ? find_spv(name) : NULL;
        int one = i == VP_MMT2_C || i == VP_ATTNC || i == VP_MMF_1A; /* built once, named in full */
        if (!s) snprintf(name, sizeof name, "%s%s", P[i].shader, one ? "" : vk->dot && mm ? "__dot" : vk->sg ? "__sg" : "");
        if (!s) s = find_spv(name);
        if (!s) return rtr_seterr(err, RTR_EBACKEND, "vulkan: shader %s is not built in", name);
        VkShaderModuleCreateInfo mi = {.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO, .codeSize = s->bytes, .pCode = s->code};
        VkShaderModule mod;
        VkResult r = vkCreateShaderModule(vk->dev, &mi, NULL, &mod);
        if (r != VK_SUCCESS) return vk_fail(vk, r, "vkCreateShaderModule", err);
        VkSpecializationMapEntry me[5] = {{0, 0, 4}, {1, 4, 4}, {2, 8, 4}, {3, 12, 4}, {4, 16, 4}};
        uint32_t spec[5];
        memcpy(spec, P[i].spec, sizeof spec);
        if (i >= VP_MMT2_V && i <= VP_MMT2_VG) { /* vec_spec: the workgroup and NG of this device */
            uint32_t wg = vk->vec_wg[i - VP_MMT2_V];
            spec[1] = wg;
            spec[4] = vk->vec_maxu[i - VP_MMT2_V];
            if (i != VP_MMT2_V) spec[3] = i == VP_MMT2_VF ? VK_VEC_KMAX / 4 / wg : (VK_VEC_SHORT_K + 4 * wg - 1) / (4 * wg);
        }
        uint32_t nspec = spec[4] ? 5 : spec[2] || spec[1] ? 3 : spec[0] ? 1 : 0;
        VkSpecializationInfo spi = {nspec, me, nspec * 4, spec};
        VkComputePipelineCreateInfo ci = {
            .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
            .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO, .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                      .module = mod, .pName = "main", .pSpecializationInfo = nspec ? &spi : NULL},
            .layout = vk->playout, .flags = vk->prof_stats ? VK_PIPELINE_CREATE_CAPTURE_STATISTICS_BIT_KHR : 0};
        r = vkCreateComputePipelines(vk->dev, VK_NULL_HANDLE, 1, &ci, NULL, &vk->pipe[i]);
        vkDestroyShaderModule(vk->dev, mod, NULL);
        if (r != VK_SUCCESS) return vk_fail(vk, r, "creating the compute pipelines", err);
    }
    return 0;
}
