/* vk_bind.glsl: how many storage buffers every Vulkan shader's descriptor set holds (VK_NBIND in
 * backends/vulkan_impl.h); the last one holds the dispatch-chaining counters (vk_chain.glsl).
 * Push constants open with that many operand offsets, o[RTR_NBIND]. */
#ifndef RTR_NBIND
#define RTR_NBIND 16
#endif
