/* vk_bind.glsl: how many storage buffers every Vulkan shader's descriptor set holds (VK_NBIND in
 * backends/vulkan_impl.h); binding 15 holds the dispatch-chaining counters (vk_chain.glsl).
 * Push constants open with the operands' byte offsets inside their bound ranges, o[RTR_NOFF]:
 * each is below the device's storage-buffer offset alignment (at most 256), so four go in a
 * word, offset i in byte i % 4 of word i / 4; OFF(i) reads it. */
#ifndef RTR_NBIND
#define RTR_NBIND 16
#endif
#define RTR_NOFF ((RTR_NBIND + 3) / 4)
#define OFF(i) ((pc.o[(i) >> 2] >> (((i) & 3u) * 8u)) & 0xffu)
