/* vk_chain.glsl: dispatch chaining, for the one-token (decode) shaders. Where the host chains
 * two dependent dispatches it records no pipeline barrier between them, so the second one's
 * workgroups start while the first still runs, issue what does not depend on it (their weight
 * loads), then wait until every workgroup of the first has counted itself done; each
 * workgroup counts itself in its own dispatch's counter at its end. The counters live in
 * binding 15 (zeroed by the host before a batch's first chained dispatch); word 0 is set when a
 * wait gives up, which the host reports as an error instead of hanging.
 *
 * chain (a push constant): 0 off; else bit 31, the dispatch's counter index in bits 16..30 and
 * in bits 0..15 the workgroups of the dispatch before it to wait for (0: none, a barrier was
 * recorded instead). Data chained shaders pass each other is declared RTR_SHARED
 * (vk_common.glsl). Without RTR_VMM that is `coherent`: every read after the wait goes past the
 * caches a barrier would have invalidated, and the workgroup's writes are ordered before its
 * count by a buffer barrier. With RTR_VMM (the Vulkan memory model) it is `nonprivate`: the
 * count is a device-scope release that makes the workgroup's writes available and the poll
 * that sees it a device-scope acquire that makes them visible, workgroup barriers carrying both
 * to the other invocations, so the reads after the wait are plain loads (on the H100, 7% more
 * decode tokens a second; BENCH.md).
 * The including shader defines WG and includes vk_bind.glsl first. */
layout(std430, binding = 15) coherent volatile buffer BCHAIN { uint CHAIN_CNT[]; };

#ifdef RTR_VMM
#define CHAIN_BAR() controlBarrier(gl_ScopeWorkgroup, gl_ScopeWorkgroup, gl_StorageSemanticsBuffer | gl_StorageSemanticsShared, \
                                   gl_SemanticsAcquireRelease | gl_SemanticsMakeAvailable | gl_SemanticsMakeVisible)
#define CHAIN_POLL(i) atomicLoad(CHAIN_CNT[i], gl_ScopeDevice, gl_StorageSemanticsBuffer, gl_SemanticsAcquire | gl_SemanticsMakeVisible)
#define CHAIN_COUNT(i) atomicAdd(CHAIN_CNT[i], 1u, gl_ScopeDevice, gl_StorageSemanticsBuffer, gl_SemanticsRelease | gl_SemanticsMakeAvailable)
#else
#define CHAIN_BAR() memoryBarrierBuffer(); barrier()
#define CHAIN_POLL(i) CHAIN_CNT[i]
#define CHAIN_COUNT(i) atomicAdd(CHAIN_CNT[i], 1u)
#endif

#define CHAIN_SPIN_OUTER 4096u /* polls before giving up: OUTER x INNER (no loop runs 65535 times or */
#define CHAIN_SPIN_INNER 1024u /* more: llvmpipe cuts such loops short) */

/* every invocation, in uniform control flow */
void chain_wait(uint chain, uint base) {
    if ((chain & 0x80000000u) == 0u || (chain & 0xffffu) == 0u) return;
    if (gl_LocalInvocationIndex == 0) {
        uint prev = base + ((chain >> 16) & 0x7fffu) - 1u, want = chain & 0xffffu;
        bool done = false; /* CHAIN_CNT is volatile: every poll is a load from memory */
        for (uint i = 0u; i < CHAIN_SPIN_OUTER && !done; i++)
            for (uint j = 0u; j < CHAIN_SPIN_INNER && !done; j++) done = CHAIN_POLL(prev) >= want;
        if (!done) atomicMax(CHAIN_CNT[base], 1u);
    }
    CHAIN_BAR();
}

/* every invocation, in uniform control flow, after the workgroup's last write */
void chain_signal(uint chain, uint base) {
    if ((chain & 0x80000000u) == 0u) return;
    CHAIN_BAR();
    if (gl_LocalInvocationIndex == 0) CHAIN_COUNT(base + ((chain >> 16) & 0x7fffu));
}
