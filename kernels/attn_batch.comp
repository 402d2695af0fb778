/* attn_batch.comp: ATTN for batches of query rows (prefill) over the KV ring, f32 math.
 *
 * attn.comp gives every (head, row) its own workgroup, so a 512-token prompt reads each key and
 * value row hundreds of times. Here a workgroup takes QR consecutive query rows of one head and
 * reads each cached row once for all of them. It walks the ring CH slots at a time:
 * - scores: invocation l loads key row base + l (16-byte reads, KB in flight) and dots it with
 *   the QR query rows held in shared memory; invisible (row, slot) pairs score -inf (visibility
 *   rule of backend.h);
 * - an online softmax per row: the chunk's row maxima and sums come from shared-memory
 *   reductions over P (QR x CH), and each row's running max m, sum and output are rescaled;
 * - values: invocation (gi, wi) owns dims 8 wi .. 8 wi + 7 and the slots gi, gi + G, ...; each
 *   value piece is read once and added into all QR rows' sums.
 * At the end the G groups' sums meet in shared memory, one row at a time.
 * The host uses it for f16 or f32 caches with head_dim a multiple of 8 (at most 256) whose rows
 * start on 16 bytes; anything else goes to attn.comp. */
#version 450
#extension GL_EXT_control_flow_attributes : enable
#define WG 128
#define CH 128
#define QR 8
#define KB 8
layout(local_size_x = WG) in;
#include "vk_common.glsl"

#include "attn_rows.glsl"

shared float qsh[QR * 256];
shared float P[QR * CH];
shared float part[QR * 16];
shared float rowv[QR];
shared float comb[WG * 8];

/* Row r's maximum (or sum) of P[r][0..CH) into rowv[r], for every r < QR: each of the WG
 * invocations folds 8 entries of one row, then one invocation a row folds the 16 partials.
 * Called in uniform control flow; P must be complete (a barrier before). */
void rows_fold(bool is_max) {
    uint l = gl_LocalInvocationIndex, r = l / 16, pi = l % 16;
    float v = is_max ? uintBitsToFloat(0xff800000u) : 0.0;
    for (uint i = 0; i < CH / 16; i++) {
        float x = P[r * CH + pi * (CH / 16) + i];
        v = is_max ? max(v, x) : v + x;
    }
    part[r * 16 + pi] = v;
    barrier();
    if (l < QR) {
        float t = part[l * 16];
        for (uint i = 1; i < 16; i++) t = is_max ? max(t, part[l * 16 + i]) : t + part[l * 16 + i];
        rowv[l] = t;
    }
    barrier();
}

void main() {
    uint h = gl_WorkGroupID.x, r0 = gl_WorkGroupID.y * QR, l = gl_LocalInvocationIndex, hd = pc.hd;
    uint kvh = h / (pc.n_head / pc.n_kv), h8 = hd / 8, kstride = pc.n_kv * hd; /* elements a slot */
    const float NEG_INF = uintBitsToFloat(0xff800000u);
    /* query rows (zeros past the batch) and their positions */
    for (uint i = l; i < QR * hd; i += WG) {
        uint r = i / hd, d = i % hd;
        qsh[r * 256 + d] = r0 + r < pc.rows ? uintBitsToFloat(Q[OFF(0) / 4 + ((r0 + r) * pc.n_head + h) * hd + d]) : 0.0;
    }
    int qp[QR];
    int qmax = -1;
    [[unroll]] for (uint r = 0; r < QR; r++) {
        qp[r] = r0 + r < pc.rows ? QP[OFF(4) / 4 + r0 + r] : -1;
        qmax = max(qmax, qp[r]);
    }
    barrier();
    uint G = WG / h8, wi = l % h8, gi = l / h8;
    bool vact = gi < G;
    float m[QR], lsum[QR];
    vec4 acca[QR], accb[QR];
    [[unroll]] for (uint r = 0; r < QR; r++) { m[r] = NEG_INF; lsum[r] = 0.0; acca[r] = vec4(0.0); accb[r] = vec4(0.0); }
    for (uint base = 0; base < pc.cap; base += CH) {
        uint s = base + l;
        int spos = s < pc.cap ? SP[OFF(3) / 4 + s] : -1;
        bool anyv = false;
        bool vis[QR];
        [[unroll]] for (uint r = 0; r < QR; r++) {
            vis[r] = spos >= 0 && spos <= qp[r] && (spos < pc.n_sink || qp[r] - spos < pc.window);
            anyv = anyv || vis[r];
        }
        float sc[QR];
        [[unroll]] for (uint r = 0; r < QR; r++) sc[r] = 0.0;
        if (anyv) {
            uint el = s * kstride + kvh * hd;
            for (uint w0 = 0; w0 < h8; w0 += KB) {
                vec4 ka[KB], kb[KB];
                [[unroll]] for (uint u = 0; u < KB; u++) {
                    ka[u] = kb[u] = vec4(0.0);
                    if (w0 + u < h8) kpiece(el, w0 + u, ka[u], kb[u]);
                }
                [[unroll]] for (uint u = 0; u < KB; u++) {
                    if (w0 + u >= h8) break;
                    uint e = 8 * (w0 + u);
                    [[unroll]] for (uint r = 0; r < QR; r++) {
                        uint qb = r * 256 + e;
                        sc[r] += dot(vec4(qsh[qb], qsh[qb + 1], qsh[qb + 2], qsh[qb + 3]), ka[u]) +
                                 dot(vec4(qsh[qb + 4], qsh[qb + 5], qsh[qb + 6], qsh[qb + 7]), kb[u]);
                    }
                }
            }
        }
        [[unroll]] for (uint r = 0; r < QR; r++) {
            sc[r] = vis[r] ? sc[r] * pc.scale : NEG_INF;
            P[r * CH + l] = sc[r];
        }
        barrier();
        rows_fold(true);
        float corr[QR];
        bool live = false;
        [[unroll]] for (uint r = 0; r < QR; r++) {
            float cm = rowv[r];
            float mn = max(m[r], cm);
            corr[r] = mn == NEG_INF ? 1.0 : exp(m[r] - mn);
            float e = vis[r] ? exp(sc[r] - mn) : 0.0;
            P[r * CH + l] = e;
            m[r] = mn;
            live = live || cm != NEG_INF;
        }
        barrier();
        if (!live) continue; /* nothing visible to any row in this chunk (uniform) */
        rows_fold(false);
        [[unroll]] for (uint r = 0; r < QR; r++) {
            lsum[r] = lsum[r] * corr[r] + rowv[r];
            acca[r] *= corr[r];
            accb[r] *= corr[r];
        }
        uint jn = min(CH, pc.cap - base);
        if (vact)
            for (uint j = gi; j < jn; j += G) {
                vec4 va, vb;
                vpiece((base + j) * kstride + kvh * hd, wi, va, vb);
                [[unroll]] for (uint r = 0; r < QR; r++) {
                    float pj = P[r * CH + j];
                    acca[r] += pj * va;
                    accb[r] += pj * vb;
                }
            }
        barrier(); /* P is rewritten by the next chunk */
    }
    /* the G groups' sums, one row at a time */
    [[unroll]] for (uint r = 0; r < QR; r++) {
        if (vact) {
            uint cb = gi * hd + 8 * wi;
            [[unroll]] for (uint e = 0; e < 4; e++) { comb[cb + e] = acca[r][e]; comb[cb + 4 + e] = accb[r][e]; }
        }
        barrier();
        if (r0 + r < pc.rows)
            for (uint d = l; d < hd; d += WG) {
                float t = 0.0;
                for (uint g = 0; g < G; g++) t += comb[g * hd + d];
                D[OFF(5) / 4 + ((r0 + r) * pc.n_head + h) * hd + d] = floatBitsToUint(lsum[r] > 0.0 ? t / lsum[r] : 0.0);
            }
        barrier();
    }
}
