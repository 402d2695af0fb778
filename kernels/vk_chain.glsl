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
 * recorded instead). Data a chained shader reads after its wait is declared coherent, so that
 * it is not served from a cache the barrier would have invalidated.
 * The including shader defines WG and includes vk_bind.glsl first. */
layout(std430, binding = 15) coherent volatile buffer BCHAIN { uint CHAIN_CNT[]; };

#define CHAIN_SPIN_OUTER 4096u /* polls before giving up: OUTER x INNER (no loop runs 65535 times or */
#define CHAIN_SPIN_INNER 1024u /* more: llvmpipe cuts such loops short) */

/* every invocation, in uniform control flow */
void chain_wait(uint chain, uint base) {
    if ((chain & 0x80000000u) == 0u || (chain & 0xffffu) == 0u) return;
    if (gl_LocalInvocationIndex == 0) {
        uint prev = base + ((chain >> 16) & 0x7fffu) - 1u, want = chain & 0xffffu;
        bool done = false; /* CHAIN_CNT is volatile: every poll is a load from memory */
        for (uint i = 0u; i < CHAIN_SPIN_OUTER && !done; i++)
            for (uint j = 0u; j < CHAIN_SPIN_INNER && !done; j++) done = CHAIN_CNT[prev] >= want;
        if (!done) atomicMax(CHAIN_CNT[base], 1u);
    }
    memoryBarrierBuffer();
    barrier();
}

/* every invocation, in uniform control flow, after the workgroup's last write */
void chain_signal(uint chain, uint base) {
    if ((chain & 0x80000000u) == 0u) return;
    memoryBarrierBuffer();
    barrier();
    if (gl_LocalInvocationIndex == 0) atomicAdd(CHAIN_CNT[base + ((chain >> 16) & 0x7fffu)], 1u);
}
