/* mm_t2_coop.comp: MATMUL_T2 for batches of tokens (prefill) on int8 matrix hardware, through
 * NV cooperative matrices (16 x 8 x 32, int8 x int8 -> int32, subgroups of 32). The same
 * operands, push constants and grid shape as mm_t2_gemm.comp, with tiles of 128 weight rows x
 * 64 tokens; the backend uses it only where the device lists that matrix shape.
 *
 * A workgroup is four subgroups. Per 128-weight block, every invocation unpacks one weight
 * row's 32 bytes into signed bytes (10 -> 1, 01 -> -1, 00 -> 0) in shared memory, in k
 * order (bit plane p of T2 word u holds the weights of k = 32p + 4u .. 32p + 4u + 3), and copies
 * four of the 64 tokens' 16-byte activation pieces; then subgroup s multiplies its 32 rows by all
 * 64 tokens: four k steps of 32, each 2 row fragments x 8 token fragments. Exact int32 sums; the
 * sums pass through a per-subgroup shared tile (token-major) on their way out:
 * out = alpha * xs[t] * sum (or +=). Weights and activations start on 16 bytes (the host checks). */
#version 450
#extension GL_EXT_control_flow_attributes : enable
#extension GL_NV_cooperative_matrix : require
#extension GL_NV_integer_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_EXT_shader_explicit_arithmetic_types : require
#define WG 128
layout(local_size_x = WG) in;

#include "mm_t2_batch.glsl"

#define ROWS 128u
#define TOKS 64u
#define LDS 9u /* uvec4 per shared row: 128 bytes + 16 of padding */
shared uvec4 wl[ROWS * LDS];
shared uvec4 xl[TOKS * LDS];
shared uvec4 cl[4 * 32]; /* one 16 x 8 int32 fragment per subgroup, token-major */

#define FRAG_A icoopmatNV<8, gl_ScopeSubgroup, 16, 32>
#define FRAG_B icoopmatNV<8, gl_ScopeSubgroup, 32, 8>
#define FRAG_C icoopmatNV<32, gl_ScopeSubgroup, 16, 8>

/* bit plane p of four T2 words as signed bytes: plus -> 0x01, minus -> 0xff */
uvec4 planes(uvec4 w, uint p) {
    uvec4 plus = (w >> (2u * p + 1u)) & 0x01010101u, minus = (w >> (2u * p)) & 0x01010101u;
    return plus | (minus * 0xffu);
}

void main() {
    uint l = gl_LocalInvocationIndex, sg = gl_SubgroupID, lane = gl_SubgroupInvocationID;
    MM_TILE(mat, tile, n);
    uint row0 = tile * ROWS, tok0 = gl_WorkGroupID.y * TOKS, xw4 = pc.kw4 * 4u;
    uint wrow = row0 + l;
    bool wlive = wrow < n;
    uint wb = OFF(2 + mat) / 16 + (wlive ? wrow : 0u) * pc.kw4;
    FRAG_C acc[2][8];
    [[unroll]] for (uint i = 0; i < 2; i++)
        [[unroll]] for (uint j = 0; j < 8; j++) acc[i][j] = FRAG_C(0);
    for (uint kb = 0; kb < pc.kw4 / 2; kb++) {
        uvec4 wa = uvec4(0u), wc = uvec4(0u);
        if (wlive) {
            MM_BLOCK(mat, wb, kb, wa, wc)
        }
        [[unroll]] for (uint p = 0; p < 4; p++) {
            wl[l * LDS + 2u * p] = planes(wa, p);
            wl[l * LDS + 2u * p + 1u] = planes(wc, p);
        }
        [[unroll]] for (uint e = 0; e < 4; e++) {
            uint idx = l + WG * e, tk = idx >> 3, part = idx & 7u;
            uvec4 v = uvec4(0u);
            if (tok0 + tk < pc.ntok) v = X[OFF(0) / 16 + (tok0 + tk) * xw4 + kb * 8u + part];
            xl[tk * LDS + part] = v;
        }
        barrier();
        [[unroll]] for (uint ks = 0; ks < 4; ks++) {
            FRAG_A a[2];
            [[unroll]] for (uint i = 0; i < 2; i++)
                coopMatLoadNV(a[i], wl, (32u * sg + 16u * i) * LDS + 2u * ks, LDS, false);
            [[unroll]] for (uint j = 0; j < 8; j++) {
                FRAG_B b;
                coopMatLoadNV(b, xl, 8u * j * LDS + 2u * ks, LDS, true);
                [[unroll]] for (uint i = 0; i < 2; i++) acc[i][j] = coopMatMulAddNV(a[i], b, acc[i][j]);
            }
        }
        barrier();
    }
    float alpha = mat == 0 ? pc.alpha0 : mat == 1 ? pc.alpha1 : pc.alpha2;
    uint ob = OFF(5 + mat) / 4;
    [[unroll]] for (uint i = 0; i < 2; i++)
        [[unroll]] for (uint j = 0; j < 8; j++) {
            /* fragment (i, j): rows row0 + 32 sg + 16 i + 0..15, tokens tok0 + 8 j + 0..7 */
            coopMatStoreNV(acc[i][j], cl, 32u * sg, 4u, true);
            subgroupMemoryBarrierShared();
            subgroupBarrier();
            [[unroll]] for (uint e = 0; e < 4; e++) {
                uint idx = lane + 32u * e, tt = idx >> 4, rr = idx & 15u;
                int s = int(cl[32u * sg + tt * 4u + (rr >> 2)][rr & 3u]);
                uint t = tok0 + 8u * j + tt, row = row0 + 32u * sg + 16u * i + rr;
                if (t < pc.ntok && row < n) {
                    precise float v = float(s) * (alpha * uintBitsToFloat(XS[OFF(1) / 4 + t]));
                    uint oi = ob + t * n + row;
                    MM_PUT(mat, oi, v)
                }
            }
            subgroupBarrier();
        }
}
