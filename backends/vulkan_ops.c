/* vulkan_ops.c: the Vulkan backend's op half: checking each op against backend.h (sizes,
 * offsets, bounds: a bad op is an error here, never an out-of-bounds access on the device),
 * the descriptor-set cache, barriers between dependent ops, and recording a batch.
 *
 * Every shader has the same set layout: ten storage buffers. An operand is bound from its
 * offset rounded down to the device's alignment, and the remainder goes in the push constants;
 * a set is made once per distinct (buffers, ranges) and kept, so a layer's ops find theirs in a
 * hash table. A barrier goes between two ops only when one writes what the other touches.
 * Two op pairs of the graph are fused into one dispatch when nothing they write overlaps
 * anything else they touch: a one-token quantizing RMSNORM and the ternary product of its
 * output (each matmul workgroup normalizes the row itself), that product and the GLU of its
 * gate/up outputs, and the ROPE of the keys and their KV_STORE. A decode step of 2B4T then
 * takes 6 dependent dispatches a layer, not 13. */
#include "vulkan_impl.h"
#include "../models/format.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- op checks ---- */

typedef struct {
    vk_access a[12];
    int open[12]; /* extent runs to the end of the buffer (KV ring writes by slot) */
    int n;
} acc_list;

static int mul3(size_t a, size_t b, size_t c, size_t *out) {
    size_t t;
    if (__builtin_mul_overflow(a, b, &t) || __builtin_mul_overflow(t, c, out)) return 0;
    return 1;
}

/* Adds operand r of bytes (checked: present, aligned, inside its buffer and the device's
 * storage range). Absent optional operands are skipped. */
static int need(const vk_backend *vk, acc_list *l, rtr_ref r, size_t bytes, int w, int optional, int open,
                const char *what, rtr_err *err) {
    if (!r.buf) {
        if (optional) return 0;
        return rtr_seterr(err, RTR_EARG, "vulkan: %s is missing", what);
    }
    if (r.off % 4) return rtr_seterr(err, RTR_EARG, "vulkan: %s offset %zu is not 4-byte aligned", what, r.off);
    if (r.off > r.buf->size || bytes > r.buf->size - r.off)
        return rtr_seterr(err, RTR_EARG, "vulkan: %s (%zu bytes at %zu) runs past its buffer of %zu bytes", what,
                          bytes, r.off, r.buf->size);
    size_t resid = r.off % vk->align;
    if (!open && bytes + resid > vk->max_range)
        return rtr_seterr(err, RTR_EARG, "vulkan: %s of %zu bytes exceeds the device's storage buffer range (%llu)",
                          what, bytes, (unsigned long long)vk->max_range);
    if (open) bytes = r.buf->size - r.off;
    l->open[l->n] = open;
    l->a[l->n++] = (vk_access){r.buf, r.off, r.off + bytes, w};
    return 0;
}

static size_t kpad128(int n) { return (size_t)rtr_t2_kpad((uint64_t)n); }

static int float_type(int t) { return t == RTR_T_F32 || t == RTR_T_F16 || t == RTR_T_BF16 || t == RTR_T_Q8R; }

static int table_bytes(int type, int rows, int d, size_t *out) {
    size_t rb;
    switch (type) {
    case RTR_T_F32: return mul3((size_t)rows, (size_t)d, 4, out);
    case RTR_T_F16: case RTR_T_BF16: return mul3((size_t)rows, (size_t)d, 2, out);
    default: rb = (size_t)rtr_q8r_row_bytes((uint64_t)d) + 4; return mul3((size_t)rows, rb, 1, out);
    }
}

#define NEED(ref, bytes, w, opt, what)                                                 \
    do {                                                                               \
        int rc_ = need(vk, l, ref, bytes, w, opt, 0, what, err);                       \
        if (rc_) return rc_;                                                           \
    } while (0)
#define BAD(...) return rtr_seterr(err, RTR_EARG, __VA_ARGS__)
#define SZ(a, b, c) (mul3((size_t)(a), (size_t)(b), (size_t)(c), &sz) ? sz : (size_t)-1)

#define VK_ARGMAX_WG 256      /* argmax.comp's workgroup size */
#define VK_ARGMAX_GROUPS 128  /* workgroups a row it aims at: about a device's compute units */

/* Workgroups of an argmax row: 1 (one scans the row), or several, each a stretch of *chunk
 * values (a multiple of the workgroup size), the last of a row to finish joining their
 * (value, index) pairs in the split scratch, where they fit (H100, 128256 logits: 123 us a call
 * in one workgroup, 32 us in 16; BENCH.md). */
static uint32_t argmax_groups(const vk_backend *vk, const rtr_op *op, uint32_t *chunk) {
    uint64_t n = (uint64_t)op->p.add.n, c = (n + VK_ARGMAX_GROUPS - 1) / VK_ARGMAX_GROUPS;
    c = (c + VK_ARGMAX_WG - 1) / VK_ARGMAX_WG * VK_ARGMAX_WG;
    uint64_t g = (n + c - 1) / c;
    *chunk = (uint32_t)c;
    if (vk->argmax1 || g < 2 || (uint64_t)op->rows > VK_CNT_BYTES / 4 || (uint64_t)op->rows > 65535 ||
        (uint64_t)op->rows * g * 8 > vk->part->size)
        return 1;
    return (uint32_t)g;
}

/* The op's operands as accesses, after checking its parameters. */
static int op_accesses(const vk_backend *vk, const rtr_op *op, acc_list *l, rtr_err *err) {
    l->n = 0;
    int rows = op->rows;
    size_t sz;
    if (rows < 1 || rows > (1 << 24)) BAD("vulkan: op %d: bad row count %d", op->kind, rows);
    switch (op->kind) {
    case RTR_OP_EMBED: {
        int t = op->p.emb.type, d = op->p.emb.d, nr = op->p.emb.n_rows;
        if (!float_type(t) || d < 1 || nr < 1) BAD("vulkan: embed: bad table (type %d, %d x %d)", t, nr, d);
        size_t tb;
        if (!table_bytes(t, nr, d, &tb)) BAD("vulkan: embed: table too large");
        NEED(op->a, tb, 0, 0, "embed table");
        NEED(op->b, SZ(rows, 4, 1), 0, 0, "embed ids");
        NEED(op->dst, SZ(rows, d, 4), 1, 0, "embed output");
        break;
    }
    case RTR_OP_RMSNORM:
    case RTR_OP_QUANT: {
        int n = op->p.norm.n, norm = op->kind == RTR_OP_RMSNORM;
        if (n < 1) BAD("vulkan: norm: bad row length %d", n);
        if (norm && !(op->p.norm.eps >= 0)) BAD("vulkan: norm: bad eps");
        NEED(op->a, SZ(rows, n, 4), norm && op->b.buf, 0, "norm input");
        if (norm) {
            NEED(op->b, SZ(rows, n, 4), 0, 1, "norm residual");
            NEED(op->c, SZ(n, 4, 1), 0, 1, "norm weight");
            NEED(op->dst, SZ(rows, n, 4), 1, 1, "norm output");
        }
        NEED(op->dst2, SZ(rows, kpad128(n), 1), 1, norm, "quantized output");
        if (op->dst2.buf) NEED(op->dst3, SZ(rows, 4, 1), 1, 0, "quantization scales");
        if (!op->dst.buf && !op->dst2.buf) BAD("vulkan: norm: no output");
        break;
    }
    case RTR_OP_MATMUL_T2: {
        int nm = op->p.mm.n_mat, k = op->p.mm.k;
        if (nm < 1 || nm > 3) BAD("vulkan: matmul: %d matrices (1 to 3)", nm);
        if (k < 1) BAD("vulkan: matmul: bad k %d", k);
        size_t total = 0;
        NEED(op->a, SZ(rows, kpad128(k), 1), 0, 0, "matmul input");
        NEED(op->b, SZ(rows, 4, 1), 0, 0, "matmul input scales");
        for (int i = 0; i < nm; i++) {
            int n = op->p.mm.n[i];
            if (n < 1) BAD("vulkan: matmul: bad row count %d", n);
            total += (size_t)n;
            NEED(op->p.mm.w[i], SZ(n, rtr_t2_row_bytes((uint64_t)k), 1), 0, 0, "matmul weights");
            NEED(op->p.mm.out[i], SZ(rows, n, 4), 1, 0, "matmul output");
        }
        if ((total + vk->nt_mm - 1) / vk->nt_mm > 65535ull * 65535ull || (rows + VK_TMAX - 1) / VK_TMAX > 65535)
            BAD("vulkan: matmul too large");
        break;
    }
    case RTR_OP_MATMUL_F: {
        int t = op->p.mf.type, n = op->p.mf.n, k = op->p.mf.k;
        if (!float_type(t) || n < 1 || k < 1) BAD("vulkan: matmul_f: bad weights (type %d, %d x %d)", t, n, k);
        size_t wb;
        if (!table_bytes(t, n, k, &wb)) BAD("vulkan: matmul_f: weights too large");
        NEED(op->a, SZ(rows, k, 4), 0, 0, "matmul_f input");
        NEED(op->p.mm.w[0], wb, 0, 0, "matmul_f weights");
        NEED(op->dst, SZ(rows, n, 4), 1, 0, "matmul_f output");
        if ((n + vk->nt_mm - 1) / vk->nt_mm > 65535u * 65535u || (rows + VK_TMAX - 1) / VK_TMAX > 65535)
            BAD("vulkan: matmul_f too large");
        break;
    }
    case RTR_OP_ROPE: {
        int nh = op->p.rope.n_head, hd = op->p.rope.head_dim, rd = op->p.rope.rot_dim;
        if (nh < 1 || hd < 2 || rd < 2 || rd > hd || rd % 2 || rd > 2048)
            BAD("vulkan: rope: bad shape (%d heads of %d, %d rotated)", nh, hd, rd);
        if (!(op->p.rope.theta > 0) || !isfinite(op->p.rope.theta)) BAD("vulkan: rope: bad theta");
        NEED(op->a, SZ(rows, nh, (size_t)hd * 4), 1, 0, "rope input");
        NEED(op->b, SZ(rows, 4, 1), 0, 0, "rope positions");
        break;
    }
    case RTR_OP_KV_STORE: {
        int n = op->p.kv.n, t = op->p.kv.type;
        if (n < 2 || n % 2) BAD("vulkan: kv_store: row length %d must be even", n);
        if (t != RTR_T_F16 && t != RTR_T_F32) BAD("vulkan: kv_store: cache type %d (f16 or f32)", t);
        size_t es = t == RTR_T_F32 ? 4 : 2;
        NEED(op->a, SZ(rows, n, 4), 0, 0, "kv_store keys");
        NEED(op->b, SZ(rows, n, 4), 0, 0, "kv_store values");
        NEED(op->c, SZ(rows, 4, 1), 0, 0, "kv_store slots");
        int rc = need(vk, l, op->dst, (size_t)n * es, 1, 0, 1, "key cache", err);
        if (!rc) rc = need(vk, l, op->dst2, (size_t)n * es, 1, 0, 1, "value cache", err);
        if (rc) return rc;
        break;
    }
    case RTR_OP_ATTN: {
        int nh = op->p.attn.n_head, nkv = op->p.attn.n_kv, hd = op->p.attn.head_dim, cap = op->p.attn.cap;
        if (nh < 1 || nkv < 1 || nh % nkv || nh > 65535) BAD("vulkan: attn: bad head counts %d / %d", nh, nkv);
        if (hd < 2 || hd % 2 || hd > 256) BAD("vulkan: attn: head_dim %d must be even and at most 256", hd);
        if (cap < 1) BAD("vulkan: attn: bad ring size %d", cap);
        int t = op->p.attn.kv_type;
        if (t != RTR_T_F16 && t != RTR_T_F32) BAD("vulkan: attn: cache type %d (f16 or f32)", t);
        size_t es = t == RTR_T_F32 ? 4 : 2;
        if (rows > 65535) BAD("vulkan: attn: too many rows");
        NEED(op->a, SZ(rows, nh, (size_t)hd * 4), 0, 0, "attn queries");
        NEED(op->b, SZ(cap, nkv, (size_t)hd * es), 0, 0, "key cache");
        NEED(op->c, SZ(cap, nkv, (size_t)hd * es), 0, 0, "value cache");
        NEED(op->d, SZ(cap, 4, 1), 0, 0, "slot positions");
        NEED(op->e, SZ(rows, 4, 1), 0, 0, "query positions");
        NEED(op->dst, SZ(rows, nh, (size_t)hd * 4), 1, 0, "attn output");
        break;
    }
    case RTR_OP_GLU:
    case RTR_OP_ADD: {
        int n = op->kind == RTR_OP_GLU ? op->p.glu.n : op->p.add.n;
        if (n < 1) BAD("vulkan: bad row length %d", n);
        if (op->kind == RTR_OP_GLU && (op->p.glu.act < 0 || op->p.glu.act > 2)) BAD("vulkan: glu: unknown activation %d", op->p.glu.act);
        NEED(op->a, SZ(rows, n, 4), 0, 0, "elementwise input");
        if (op->kind == RTR_OP_GLU) NEED(op->b, SZ(rows, n, 4), 0, 0, "glu gate input");
        NEED(op->dst, SZ(rows, n, 4), 1, 0, "elementwise output");
        break;
    }
    case RTR_OP_ARGMAX:
        if (op->p.add.n < 1) BAD("vulkan: argmax over %d values", op->p.add.n);
        NEED(op->a, SZ(rows, op->p.add.n, 4), 0, 0, "argmax input");
        NEED(op->dst, SZ(rows, 4, 1), 1, 0, "argmax output");
        uint32_t chunk, ng = argmax_groups(vk, op, &chunk);
        if (ng > 1) { /* its pairs and counters */
            l->a[l->n++] = (vk_access){vk->part, 0, (size_t)rows * ng * 8, 1};
            l->a[l->n++] = (vk_access){vk->cnt, 0, (size_t)rows * 4, 1};
        }
        break;
    default: BAD("vulkan: unknown op %d", op->kind);
    }
    return 0;
}

/* A copy of op holding only the fields its kind uses (everything else zero), so that two
 * batches of the same ops compare equal byte for byte. */
static void normalize(const rtr_op *op, rtr_op *o) {
    memset(o, 0, sizeof *o);
    o->kind = op->kind;
    o->rows = op->rows;
    const rtr_ref *src[8] = {&op->dst, &op->dst2, &op->dst3, &op->a, &op->b, &op->c, &op->d, &op->e};
    rtr_ref *dst[8] = {&o->dst, &o->dst2, &o->dst3, &o->a, &o->b, &o->c, &o->d, &o->e};
    for (int i = 0; i < 8; i++)
        if (src[i]->buf) { dst[i]->buf = src[i]->buf; dst[i]->off = src[i]->off; }
    switch (op->kind) {
    case RTR_OP_EMBED:
        o->p.emb.type = op->p.emb.type; o->p.emb.n_rows = op->p.emb.n_rows;
        o->p.emb.d = op->p.emb.d; o->p.emb.scale = op->p.emb.scale;
        break;
    case RTR_OP_RMSNORM: case RTR_OP_QUANT:
        o->p.norm.n = op->p.norm.n;
        o->p.norm.eps = op->kind == RTR_OP_RMSNORM ? op->p.norm.eps : 0.0f;
        break;
    case RTR_OP_MATMUL_T2:
        o->p.mm.n_mat = op->p.mm.n_mat; o->p.mm.k = op->p.mm.k; o->p.mm.accum = op->p.mm.accum != 0;
        for (int i = 0; i < op->p.mm.n_mat; i++) {
            o->p.mm.w[i].buf = op->p.mm.w[i].buf; o->p.mm.w[i].off = op->p.mm.w[i].off;
            o->p.mm.out[i].buf = op->p.mm.out[i].buf; o->p.mm.out[i].off = op->p.mm.out[i].off;
            o->p.mm.n[i] = op->p.mm.n[i]; o->p.mm.alpha[i] = op->p.mm.alpha[i];
        }
        break;
    case RTR_OP_MATMUL_F: {
        rtr_ref w = op->p.mm.w[0];
        o->p.mm.w[0].buf = w.buf; o->p.mm.w[0].off = w.off; /* beside p.mf in the union */
        o->p.mf.type = op->p.mf.type; o->p.mf.n = op->p.mf.n; o->p.mf.k = op->p.mf.k;
        break;
    }
    case RTR_OP_ROPE:
        o->p.rope.n_head = op->p.rope.n_head; o->p.rope.head_dim = op->p.rope.head_dim;
        o->p.rope.rot_dim = op->p.rope.rot_dim; o->p.rope.theta = op->p.rope.theta;
        break;
    case RTR_OP_KV_STORE: o->p.kv.n = op->p.kv.n; o->p.kv.type = op->p.kv.type; break;
    case RTR_OP_ATTN:
        o->p.attn.n_head = op->p.attn.n_head; o->p.attn.n_kv = op->p.attn.n_kv;
        o->p.attn.head_dim = op->p.attn.head_dim; o->p.attn.cap = op->p.attn.cap;
        o->p.attn.n_sink = op->p.attn.n_sink; o->p.attn.window = op->p.attn.window;
        o->p.attn.scale = op->p.attn.scale; o->p.attn.kv_type = op->p.attn.kv_type;
        break;
    case RTR_OP_GLU: o->p.glu.n = op->p.glu.n; o->p.glu.act = op->p.glu.act; break;
    case RTR_OP_ADD: case RTR_OP_ARGMAX: o->p.add.n = op->p.add.n; break;
    }
}

int vk_op_check(vk_backend *vk, const rtr_op *op, rtr_op *norm, rtr_err *err) {
    acc_list l;
    int rc = op_accesses(vk, op, &l, err);
    if (rc) return rc;
    normalize(op, norm);
    return 0;
}

/* ---- descriptor sets ---- */

static uint64_t key_hash(const vk_dkey *k) {
    const uint8_t *p = (const uint8_t *)k;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < sizeof *k; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static int table_put(vk_dent *tab, size_t cap, const vk_dent *e) {
    size_t i = key_hash(&e->key) & (cap - 1);
    while (tab[i].used) i = (i + 1) & (cap - 1);
    tab[i] = *e;
    return 0;
}

static int table_grow(vk_backend *vk, size_t cap, rtr_err *err) {
    vk_dent *n = calloc(cap, sizeof *n);
    if (!n) return rtr_seterr(err, RTR_ENOMEM, "out of memory");
    for (size_t i = 0; i < vk->dcap; i++)
        if (vk->dtab[i].used) table_put(n, cap, &vk->dtab[i]);
    free(vk->dtab);
    vk->dtab = n;
    vk->dcap = cap;
    return 0;
}

static int new_pool(vk_backend *vk, rtr_err *err) {
    VkDescriptorPool *np = realloc(vk->dpools, (size_t)(vk->n_dpools + 1) * sizeof *np);
    if (!np) return rtr_seterr(err, RTR_ENOMEM, "out of memory");
    vk->dpools = np;
    VkDescriptorPoolSize ps = {VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 256 * VK_NBIND};
    VkDescriptorPoolCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
                                     .flags = VK_DESCRIPTOR_POOL_CREATE_FREE_DESCRIPTOR_SET_BIT,
                                     .maxSets = 256, .poolSizeCount = 1, .pPoolSizes = &ps};
    VkResult r = vkCreateDescriptorPool(vk->dev, &ci, NULL, &vk->dpools[vk->n_dpools]);
    if (r != VK_SUCCESS) return vk_fail(vk, r, "vkCreateDescriptorPool", err);
    vk->n_dpools++;
    return 0;
}

static VkDescriptorSet desc_get(vk_backend *vk, const vk_dkey *k, rtr_err *err) {
    if ((vk->dcount + 1) * 2 > vk->dcap && table_grow(vk, vk->dcap ? vk->dcap * 2 : 256, err)) return VK_NULL_HANDLE;
    size_t i = key_hash(k) & (vk->dcap - 1);
    for (; vk->dtab[i].used; i = (i + 1) & (vk->dcap - 1))
        if (!memcmp(&vk->dtab[i].key, k, sizeof *k)) return vk->dtab[i].set;
    vk_dent e = {.key = *k, .used = 1};
    VkDescriptorSetAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO, .descriptorSetCount = 1,
                                      .pSetLayouts = &vk->dsl};
    VkResult r = VK_ERROR_OUT_OF_POOL_MEMORY;
    if (vk->n_dpools) {
        ai.descriptorPool = vk->dpools[vk->n_dpools - 1];
        r = vkAllocateDescriptorSets(vk->dev, &ai, &e.set);
    }
    if (r == VK_ERROR_OUT_OF_POOL_MEMORY || r == VK_ERROR_FRAGMENTED_POOL) {
        if (new_pool(vk, err)) return VK_NULL_HANDLE;
        ai.descriptorPool = vk->dpools[vk->n_dpools - 1];
        r = vkAllocateDescriptorSets(vk->dev, &ai, &e.set);
    }
    if (r != VK_SUCCESS) { vk_fail(vk, r, "vkAllocateDescriptorSets", err); return VK_NULL_HANDLE; }
    e.pool = vk->n_dpools - 1;
    VkDescriptorBufferInfo bi[VK_NBIND];
    VkWriteDescriptorSet w = {.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET, .dstSet = e.set, .descriptorCount = VK_NBIND,
                              .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, .pBufferInfo = bi};
    for (int b = 0; b < VK_NBIND; b++) bi[b] = (VkDescriptorBufferInfo){k->b[b], k->off[b], k->range[b]};
    vkUpdateDescriptorSets(vk->dev, 1, &w, 0, NULL);
    vk->dtab[i] = e;
    vk->dcount++;
    return e.set;
}

/* A buffer is going away: drop the sets that name it and every recording (they may too). */
void vk_forget_buffer(vk_backend *vk, const rtr_buf *b) {
    for (int i = 0; i < VK_NREC; i++) vk->rec[i].valid = 0;
    if (!vk->dcap) return;
    vk_dent *n = calloc(vk->dcap, sizeof *n);
    size_t cnt = 0;
    for (size_t i = 0; i < vk->dcap; i++) {
        vk_dent *e = &vk->dtab[i];
        if (!e->used) continue;
        int hit = 0;
        for (int j = 0; j < VK_NBIND; j++) hit |= e->key.b[j] == b->buf;
        if (hit || !n) vkFreeDescriptorSets(vk->dev, vk->dpools[e->pool], 1, &e->set);
        else { table_put(n, vk->dcap, e); cnt++; }
    }
    if (n) { free(vk->dtab); vk->dtab = n; vk->dcount = cnt; }
    else memset(vk->dtab, 0, vk->dcap * sizeof *vk->dtab), vk->dcount = 0;
}

void vk_desc_free_all(vk_backend *vk) {
    for (int i = 0; i < vk->n_dpools; i++) vkDestroyDescriptorPool(vk->dev, vk->dpools[i], NULL);
    free(vk->dpools);
    free(vk->dtab);
    vk->dpools = NULL;
    vk->dtab = NULL;
    vk->n_dpools = 0;
    vk->dcap = vk->dcount = 0;
}

/* ---- recording ---- */

#define P VK_NOFF /* push constants: the operands' offsets (four a word), then each shader's parameters */

typedef struct {
    vk_backend *vk;
    vk_rec *rec;
    VkCommandBuffer cb;
    VkPipeline cur;
    rtr_ref ref[VK_NBIND];
    uint32_t pc[32];
    /* dispatch chaining (kernels/vk_chain.glsl): the next counter, the workgroups of the last
     * dispatch when it was chained (0 when not), the chain word of the dispatch being recorded,
     * and whether the counters were zeroed in this recording */
    uint32_t ch_step, ch_prev, ch_word;
    int ch_zeroed;
} rec_ctx;

/* Puts a barrier before the next dispatch when it touches what an earlier one since the last
 * barrier wrote, or writes what one read. */
static void depend(rec_ctx *c, const vk_access *a, int n) {
    vk_backend *vk = c->vk;
    int need = vk->n_pend + n > VK_NPEND || c->ch_prev; /* after a chained dispatch: always */
    c->ch_prev = 0;
    for (int i = 0; i < n && !need; i++)
        for (int j = 0; j < vk->n_pend && !need; j++) {
            const vk_access *p = &vk->pend[j];
            need = p->b == a[i].b && p->lo < a[i].hi && a[i].lo < p->hi && (p->w || a[i].w);
        }
    if (need) {
        VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER, .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT,
                              .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT};
        vkCmdPipelineBarrier(c->cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1,
                             &mb, 0, NULL, 0, NULL);
        vk->n_pend = 0;
    }
    for (int i = 0; i < n; i++) vk->pend[vk->n_pend++] = a[i];
}

static void clear_refs(rec_ctx *c) { memset(c->ref, 0, sizeof c->ref); }

/* Orders the next dispatch (groups workgroups, accesses a) after the ones before it and returns
 * its chain word (kernels/vk_chain.glsl), for a shader that can be chained: no barrier when the
 * dispatch before was chained too (the shader waits for that one's workgroups instead), a full
 * barrier after unchained ones, the counters zeroed at the recording's first chained dispatch.
 * Where the backend does not chain, the usual dependency barrier and 0. */
static uint32_t chain_order(rec_ctx *c, const vk_access *a, int n, uint64_t groups) {
    vk_backend *vk = c->vk;
    if (!vk->chain || groups > 0xffff || c->ch_step >= VK_CHAIN_N) {
        depend(c, a, n);
        return 0;
    }
    if (!c->ch_prev) {
        VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                              .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
                              .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT};
        if (!c->ch_zeroed) {
            /* word 0, the error word, stays: a batch ahead may start before the host has
             * read the one before it */
            vkCmdFillBuffer(c->cb, vk->sync->buf, 4, vk->sync->vsize - 4, 0);
            c->ch_zeroed = 1;
        }
        vkCmdPipelineBarrier(c->cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                             VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &mb, 0, NULL, 0, NULL);
    }
    vk->n_pend = 0;
    c->ch_word = 0x80000000u | c->ch_step++ << 16 | c->ch_prev;
    return c->ch_word;
}

static void bind_range(const vk_backend *vk, rtr_ref r, VkDeviceSize *base, VkDeviceSize *range) {
    *base = r.off / vk->align * vk->align;
    *range = r.buf->vsize - *base;
    if (*range > vk->max_range) *range = vk->max_range;
}

/* Binds pipeline p with the operands in c->ref, pushes npc words of c->pc (the first VK_NOFF
 * are filled here with the operands' offsets inside their bound ranges) and dispatches. */
static int dispatch(rec_ctx *c, int p, int npc, uint32_t gx, uint32_t gy, uint32_t gz, rtr_err *err) {
    vk_backend *vk = c->vk;
    vk_dkey k;
    memset(&k, 0, sizeof k);
    if (c->ch_word) c->ref[VK_BIND_CHAIN] = (rtr_ref){vk->sync, 0};
    c->ch_prev = c->ch_word ? gx * gy * gz : 0;
    c->ch_word = 0;
    memset(c->pc, 0, VK_NOFF * sizeof c->pc[0]);
    for (int i = 0; i < VK_NBIND; i++) {
        if (!c->ref[i].buf) {
            k.b[i] = vk->dummy->buf;
            k.range[i] = vk->dummy->vsize;
            continue;
        }
        k.b[i] = c->ref[i].buf->buf;
        bind_range(vk, c->ref[i], &k.off[i], &k.range[i]);
        c->pc[i / 4] |= (uint32_t)(c->ref[i].off - k.off[i]) << (i % 4 * 8); /* below vk->align <= 256 */
    }
    VkDescriptorSet set = desc_get(vk, &k, err);
    if (!set) return err ? err->code : RTR_EBACKEND;
    if (c->cur != vk->pipe[p]) {
        vkCmdBindPipeline(c->cb, VK_PIPELINE_BIND_POINT_COMPUTE, vk->pipe[p]);
        c->cur = vk->pipe[p];
    }
    vkCmdBindDescriptorSets(c->cb, VK_PIPELINE_BIND_POINT_COMPUTE, vk->playout, 0, 1, &set, 0, NULL);
    vkCmdPushConstants(c->cb, vk->playout, VK_SHADER_STAGE_COMPUTE_BIT, 0, (uint32_t)npc * 4, c->pc);
    vkCmdDispatch(c->cb, gx, gy, gz);
    vk_rec *rec = c->rec;
    if (rec && rec->qp && rec->nq < VK_PROF_Q) {
        int e = 0;
        while (e < vk->n_prof && !(vk->prof[e].pipe == p && vk->prof[e].gx == gx && vk->prof[e].gy == gy &&
                                   vk->prof[e].gz == gz))
            e++;
        if (e == vk->n_prof && e < VK_PROF_K) vk->prof[vk->n_prof++] = (vk_prof){p, gx, gy, gz, 0, 0};
        if (e < VK_PROF_K) {
            rec->pkey[rec->nq - 1] = (uint8_t)e;
            vkCmdWriteTimestamp(c->cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, rec->qp, (uint32_t)rec->nq++);
        }
    }
    return 0;
}

/* groups laid out over x (at most 65535) and y */
static void grid(uint64_t groups, uint32_t *gx, uint32_t *gy) {
    if (!groups) groups = 1;
    *gx = groups < 65535 ? (uint32_t)groups : 65535;
    *gy = (uint32_t)((groups + *gx - 1) / *gx);
}

static uint32_t fbits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

static int find_rope(const vk_backend *vk, float theta, int rot) {
    for (int i = 0; i < vk->n_rope; i++)
        if (vk->rope[i].theta == theta && vk->rope[i].rot == rot) return i;
    return -1;
}

/* The operands every ternary-product shader binds the same way: int8 input and scales at 0
 * and 1, weights at 2..4, outputs at 5..7; row counts pushed at P+2..4 and alphas at P+7..9.
 * Returns the rows of all matrices. */
static uint64_t bind_matmul(rec_ctx *c, const rtr_op *mm) {
    uint64_t total = 0;
    c->ref[0] = mm->a; c->ref[1] = mm->b;
    for (int i = 0; i < 3; i++) {
        int on = i < mm->p.mm.n_mat;
        if (on) { c->ref[2 + i] = mm->p.mm.w[i]; c->ref[5 + i] = mm->p.mm.out[i]; }
        c->pc[P + 2 + i] = on ? (uint32_t)mm->p.mm.n[i] : 0;
        c->pc[P + 7 + i] = on ? fbits(mm->p.mm.alpha[i]) : 0;
        total += on ? (uint64_t)mm->p.mm.n[i] : 0;
    }
    return total;
}

static int rec_norm(rec_ctx *c, const rtr_op *op, rtr_err *err) {
    int n = op->p.norm.n, norm = op->kind == RTR_OP_RMSNORM;
    clear_refs(c);
    c->ref[0] = op->a; c->ref[4] = op->dst2; c->ref[5] = op->dst3;
    if (norm) { c->ref[1] = op->b; c->ref[2] = op->c; c->ref[3] = op->dst; }
    c->pc[P + 0] = (uint32_t)op->rows;
    c->pc[P + 1] = (uint32_t)n;
    c->pc[P + 2] = (uint32_t)kpad128(n);
    c->pc[P + 3] = (norm && op->b.buf ? 1u : 0) | (norm && op->c.buf ? 2u : 0) | (norm && op->dst.buf ? 4u : 0) |
                (op->dst2.buf ? 8u : 0) | (norm ? 16u : 0);
    c->pc[P + 4] = fbits(norm ? op->p.norm.eps : 0.0f);
    uint32_t gx, gy;
    grid((uint64_t)op->rows, &gx, &gy);
    return dispatch(c, VP_NORM, P + 5, gx, gy, 1, err);
}

/* MATMUL_F; am: the one-token ARGMAX of its output after it, taken in the same dispatch
 * (amax_fusable), or NULL */
static int rec_matmul_f(rec_ctx *c, const rtr_op *op, const rtr_op *am, acc_list *l, rtr_err *err) {
    vk_backend *vk = c->vk;
    int t = op->p.mf.type, n = op->p.mf.n, k = op->p.mf.k, rows = op->rows;
    size_t kq = (size_t)rtr_q8r_row_bytes((uint64_t)k);
    clear_refs(c);
    c->ref[0] = op->a;
    c->ref[1] = op->a; /* the shader's second input is unused here */
    if (am) { /* its key and count, and the index it writes */
        l->a[l->n++] = (vk_access){vk->akey, 0, 16, 1};
        l->a[l->n++] = (vk_access){am->dst.buf, am->dst.off, am->dst.off + 4, 1};
        c->ref[4] = (rtr_ref){vk->akey, 0};
        c->ref[5] = am->dst;
    }
    depend(c, l->a, l->n);
    c->ref[2] = op->p.mm.w[0]; c->ref[3] = op->dst;
    c->pc[P + 0] = (uint32_t)t; c->pc[P + 1] = (uint32_t)n; c->pc[P + 2] = (uint32_t)k; c->pc[P + 3] = (uint32_t)rows;
    c->pc[P + 4] = vk->nt_mm; c->pc[P + 5] = (uint32_t)kq;
    uint32_t gx, gy, tm = rows == 1 ? 1 : VK_TMAX;
    grid((n + vk->nt_mm - 1) / vk->nt_mm, &gx, &gy);
    c->pc[P + 6] = gx * gy;
    return dispatch(c, am ? VP_MMF_1A : rows == 1 ? VP_MMF_1 : VP_MMF_N, P + 7, gx, gy, (uint32_t)(rows + tm - 1) / tm, err);
}

/* Whether am, the op after op, is the ARGMAX of op's one-token MATMUL_F output that
 * rec_matmul_f can take into the product (greedy decoding's LM head and choice). */
static int amax_fusable(const vk_backend *vk, const rtr_op *op, const rtr_op *am) {
    return vk->amax && am && op->kind == RTR_OP_MATMUL_F && am->kind == RTR_OP_ARGMAX && op->rows == 1 && am->rows == 1 &&
           am->a.buf == op->dst.buf && am->a.off == op->dst.off && am->p.add.n == op->p.mf.n;
}

#define VK_ATTNB_QR 8  /* query rows a workgroup of attn_batch.comp */
#define VK_ATTNC_QR 32 /* and of attn_coop.comp */

/* The split scratch (per bytes a split) and the counters of `pairs` (row, head) pairs, bound as
 * bindings 6 and 7 of the decode attention shaders; with several splits they join the
 * attention's accesses. */
static void bind_splits(rec_ctx *c, acc_list *l, size_t per, uint32_t ns, size_t pairs) {
    vk_backend *vk = c->vk;
    c->ref[6] = (rtr_ref){vk->part, 0};
    c->ref[7] = (rtr_ref){vk->cnt, 0};
    if (ns > 1) {
        l->a[l->n++] = (vk_access){vk->part, 0, per * ns, 1};
        l->a[l->n++] = (vk_access){vk->cnt, 0, pairs * 4, 1};
    }
}

static int rec_attn(rec_ctx *c, const rtr_op *op, acc_list *l, rtr_err *err) {
    vk_backend *vk = c->vk;
    int nh = op->p.attn.n_head, hd = op->p.attn.head_dim, cap = op->p.attn.cap, rows = op->rows;
    /* what every attention shader binds and pushes first: q, K, V, slot and query positions,
     * output; n_head, n_kv, head_dim, cap, n_sink, window, scale */
    clear_refs(c);
    c->ref[0] = op->a; c->ref[1] = op->b; c->ref[2] = op->c; c->ref[3] = op->d; c->ref[4] = op->e; c->ref[5] = op->dst;
    c->pc[P + 0] = (uint32_t)nh; c->pc[P + 1] = (uint32_t)op->p.attn.n_kv; c->pc[P + 2] = (uint32_t)hd;
    c->pc[P + 3] = (uint32_t)cap; c->pc[P + 4] = (uint32_t)op->p.attn.n_sink; c->pc[P + 5] = (uint32_t)op->p.attn.window;
    c->pc[P + 6] = fbits(op->p.attn.scale);
    if (!vk->no_attnb && rows > 1 && hd % 8 == 0 && hd <= 256 && op->b.off % 16 == 0 && op->c.off % 16 == 0) {
        depend(c, l->a, l->n);
        /* batches: several query rows a workgroup share every key and value read */
        c->pc[P + 7] = (uint32_t)rows;
        c->pc[P + 8] = op->p.attn.kv_type == RTR_T_F32;
        /* on f16 matrix hardware, batches as large as the products' go to attn_coop.comp */
        if ((vk->coop & COOP_F16) && rows >= VK_GEMM_MIN && hd % 16 == 0 && hd <= 128)
            return dispatch(c, VP_ATTNC, P + 9, (uint32_t)nh, (uint32_t)((rows + VK_ATTNC_QR - 1) / VK_ATTNC_QR), 1, err);
        return dispatch(c, VP_ATTNB, P + 9, (uint32_t)nh, (uint32_t)((rows + VK_ATTNB_QR - 1) / VK_ATTNB_QR), 1, err);
    }
    size_t per = (size_t)rows * nh * (hd + 2) * 4;
    uint32_t fit = (uint32_t)(vk->part->size / per);
    /* one row over a short ring, head_dim a power of two from 32 to 128: attn_dec.comp, with every
     * key and value of its split of 128 slots read before its chained wait */
    uint32_t nd = (uint32_t)(cap + VK_ATTND_WG / 4 - 1) / (VK_ATTND_WG / 4);
    if (!vk->no_attnd && rows == 1 && cap <= VK_ATTND_MAXCAP && (hd == 32 || hd == 64 || hd == 128) && nd <= fit &&
        (size_t)nh <= VK_CNT_BYTES / 4 && op->a.off % 16 == 0 && op->b.off % 16 == 0 && op->c.off % 16 == 0) {
        bind_splits(c, l, per, nd, (size_t)nh);
        c->pc[P + 7] = nd;
        c->pc[P + 8] = op->p.attn.kv_type == RTR_T_F32;
        c->pc[P + 9] = chain_order(c, l->a, l->n, (uint64_t)nh * nd);
        return dispatch(c, VP_ATTND, P + 10, (uint32_t)nh, 1, nd, err);
    }
    /* split the ring across workgroups (runs of a multiple of 32 slots) when there are too few
     * (head, row) pairs to fill the device; the partial results meet in the scratch, where the
     * last split merges them. About 512 workgroups in all: at a depth of 3072 tokens on the
     * H100, tg128 434-442 against 379-387 with 256 (BENCH.md) */
    uint32_t nu = (uint32_t)(cap + 31) / 32, want = (uint32_t)((512 + rows * nh - 1) / (rows * nh));
    uint32_t ns = want;
    if (ns > nu) ns = nu;
    /* but a ring of up to 256 slots in one split, a longer one in splits of at least 64 slots: on
     * the H100 one workgroup a head over 256 slots beat splitting them (12.2 against 14.5 us a
     * call), and 8 splits of a 512-slot ring beat 2 (tg512 545-553 against 493-502; BENCH.md) */
    if (cap <= 256) ns = 1;
    else if (ns > (uint32_t)(cap + 63) / 64) ns = (uint32_t)(cap + 63) / 64;
    if (ns > 64) ns = 64;
    if (ns > fit) ns = fit;
    if (vk->attn_splits > 0 && (uint32_t)vk->attn_splits < ns) ns = (uint32_t)vk->attn_splits;
    if ((size_t)rows * nh > VK_CNT_BYTES / 4 || ns < 1) ns = 1;
    uint32_t ups = (nu + ns - 1) / ns;
    ns = (nu + ups - 1) / ups;
    bind_splits(c, l, per, ns, (size_t)rows * nh);
    c->pc[P + 7] = ns; c->pc[P + 8] = ups * 32;
    c->pc[P + 9] = op->p.attn.kv_type == RTR_T_F32;
    c->pc[P + 10] = chain_order(c, l->a, l->n, (uint64_t)nh * (uint64_t)rows * ns);
    return dispatch(c, VP_ATTN, P + 11, (uint32_t)nh, (uint32_t)rows, ns, err);
}

/* slots of the K/V caches that fit in their bound ranges (the shader skips the others) */
static uint64_t kv_max_slots(const vk_backend *vk, const rtr_op *op) {
    uint64_t ms = UINT32_MAX, es = op->p.kv.type == RTR_T_F32 ? 4 : 2;
    const rtr_ref *caches[2] = {&op->dst, &op->dst2};
    for (int i = 0; i < 2; i++) {
        VkDeviceSize base, range;
        bind_range(vk, *caches[i], &base, &range);
        uint64_t s = (range - (caches[i]->off - base)) / ((uint64_t)op->p.kv.n * es);
        if (s < ms) ms = s;
    }
    return ms;
}

/* Row tiles over a product's matrices (grid x of mm_t2_gemm.comp, 64 rows a tile, and of
 * mm_t2_coop.comp, 128). */
static uint64_t gemm_tiles(const rtr_op *op, uint64_t tile) {
    uint64_t t = 0;
    for (int i = 0; i < op->p.mm.n_mat; i++) t += ((uint64_t)op->p.mm.n[i] + tile - 1) / tile;
    return t;
}

/* Batches of VK_GEMM_MIN tokens or more go to mm_t2_gemm.comp when its operands start on 16
 * bytes and its grid fits in x and y. */
static int gemm_ok(const vk_backend *vk, const rtr_op *op) {
    if (vk->no_gemm || op->rows < VK_GEMM_MIN || op->a.off % 16) return 0;
    for (int i = 0; i < op->p.mm.n_mat; i++)
        if (op->p.mm.w[i].off % 16) return 0;
    return gemm_tiles(op, 64) <= 65535 && ((uint64_t)op->rows + 63) / 64 <= 65535;
}

static int rec_op(rec_ctx *c, const rtr_op *op, rtr_err *err) {
    vk_backend *vk = c->vk;
    acc_list l;
    int rc = op_accesses(vk, op, &l, err);
    if (rc) return rc;
    if (op->kind != RTR_OP_MATMUL_F && op->kind != RTR_OP_ATTN) depend(c, l.a, l.n);
    uint32_t gx, gy;
    int rows = op->rows;
    clear_refs(c);
    switch (op->kind) {
    case RTR_OP_EMBED:
        c->ref[0] = op->a; c->ref[1] = op->b; c->ref[2] = op->dst;
        c->pc[P + 0] = (uint32_t)op->p.emb.type; c->pc[P + 1] = (uint32_t)op->p.emb.n_rows; c->pc[P + 2] = (uint32_t)op->p.emb.d;
        c->pc[P + 3] = (uint32_t)rows; c->pc[P + 4] = fbits(op->p.emb.scale);
        c->pc[P + 5] = (uint32_t)rtr_q8r_row_bytes((uint64_t)op->p.emb.d);
        grid(((uint64_t)rows * op->p.emb.d + 255) / 256, &gx, &gy);
        return dispatch(c, VP_EMBED, P + 6, gx, gy, 1, err);
    case RTR_OP_RMSNORM:
    case RTR_OP_QUANT:
        return rec_norm(c, op, err);
    case RTR_OP_MATMUL_T2: {
        /* push: kw, rows, n0..n2, accum, rows a workgroup, alpha0..2 */
        uint64_t total = bind_matmul(c, op);
        c->pc[P + 0] = (uint32_t)(kpad128(op->p.mm.k) / 16);
        c->pc[P + 1] = (uint32_t)rows;
        c->pc[P + 5] = op->p.mm.accum ? 1u : 0;
        c->pc[P + 6] = vk->nt_mm;
        if (gemm_ok(vk, op)) {
            uint64_t tr = vk->coop & COOP_I8 ? 128 : 64; /* weight rows a tile */
            uint64_t t0 = ((uint64_t)op->p.mm.n[0] + tr - 1) / tr, t1 = op->p.mm.n_mat > 1 ? ((uint64_t)op->p.mm.n[1] + tr - 1) / tr : 0;
            c->pc[P + 0] = (uint32_t)(kpad128(op->p.mm.k) / 64);
            c->pc[P + 6] = (uint32_t)t0;
            c->pc[P + 7] = (uint32_t)t1;
            for (int i = 0; i < 3; i++) c->pc[P + 8 + i] = i < op->p.mm.n_mat ? fbits(op->p.mm.alpha[i]) : 0;
            return dispatch(c, vk->coop & COOP_I8 ? VP_MMT2_C : VP_MMT2_G, P + 11, (uint32_t)gemm_tiles(op, tr), (uint32_t)(rows + 63) / 64, 1, err);
        }
        uint32_t tm = rows == 1 ? 1 : VK_TMAX;
        grid((total + vk->nt_mm - 1) / vk->nt_mm, &gx, &gy);
        return dispatch(c, rows == 1 ? VP_MMT2_1 : VP_MMT2_N, P + 10, gx, gy, (uint32_t)(rows + tm - 1) / tm, err);
    }
    case RTR_OP_MATMUL_F:
        return rec_matmul_f(c, op, NULL, &l, err);
    case RTR_OP_ROPE: {
        int half = op->p.rope.rot_dim / 2, ri = find_rope(vk, op->p.rope.theta, op->p.rope.rot_dim);
        if (ri < 0) return rtr_seterr(err, RTR_EBACKEND, "vulkan: rope table missing");
        c->ref[0] = op->a; c->ref[1] = op->b; c->ref[2] = (rtr_ref){vk->rope_tab, vk->rope[ri].off};
        c->pc[P + 0] = (uint32_t)rows; c->pc[P + 1] = (uint32_t)op->p.rope.n_head; c->pc[P + 2] = (uint32_t)op->p.rope.head_dim;
        c->pc[P + 3] = (uint32_t)half;
        grid(((uint64_t)rows * op->p.rope.n_head * half + 255) / 256, &gx, &gy);
        return dispatch(c, VP_ROPE, P + 4, gx, gy, 1, err);
    }
    case RTR_OP_KV_STORE: {
        int n = op->p.kv.n;
        uint64_t ms = kv_max_slots(vk, op), es = op->p.kv.type == RTR_T_F32 ? 4 : 2;
        c->ref[0] = op->a; c->ref[1] = op->b; c->ref[2] = op->c; c->ref[3] = op->dst; c->ref[4] = op->dst2;
        c->pc[P + 0] = (uint32_t)rows; c->pc[P + 1] = (uint32_t)n; c->pc[P + 2] = (uint32_t)ms; c->pc[P + 3] = es == 4;
        c->pc[P + 4] = c->pc[P + 5] = c->pc[P + 6] = 0; /* no fused rope */
        grid(((uint64_t)rows * (n / 2) + 255) / 256, &gx, &gy);
        return dispatch(c, VP_KV, P + 7, gx, gy, 1, err);
    }
    case RTR_OP_ATTN:
        return rec_attn(c, op, &l, err);
    case RTR_OP_GLU:
    case RTR_OP_ADD: {
        int add = op->kind == RTR_OP_ADD, n = add ? op->p.add.n : op->p.glu.n;
        c->ref[0] = op->a; c->ref[1] = add ? (rtr_ref){NULL, 0} : op->b; c->ref[2] = op->dst;
        c->pc[P + 0] = (uint32_t)((uint64_t)rows * n);
        c->pc[P + 1] = add ? 3u : (uint32_t)op->p.glu.act;
        grid(((uint64_t)rows * n + 255) / 256, &gx, &gy);
        return dispatch(c, VP_GLU, P + 2, gx, gy, 1, err);
    }
    case RTR_OP_ARGMAX: { /* a workgroup a row, or several (argmax_groups) */
        uint32_t chunk, ng = argmax_groups(vk, op, &chunk);
        c->ref[0] = op->a; c->ref[1] = op->dst;
        c->pc[P + 0] = (uint32_t)op->p.add.n;
        c->pc[P + 1] = (uint32_t)rows;
        c->pc[P + 2] = ng;
        c->pc[P + 3] = chunk;
        if (ng > 1) {
            c->ref[2] = (rtr_ref){vk->part, 0};
            c->ref[3] = (rtr_ref){vk->cnt, 0};
            return dispatch(c, VP_ARGMAX, P + 4, ng, (uint32_t)rows, 1, err);
        }
        grid((uint64_t)rows, &gx, &gy);
        return dispatch(c, VP_ARGMAX, P + 4, gx, gy, 1, err);
    }
    }
    return rtr_seterr(err, RTR_EARG, "vulkan: unknown op %d", op->kind);
}

/* Internal resources the batch needs, made before recording: RoPE frequency tables (computed
 * on the host as the CPU backend computes them). */
int vk_prepare(vk_backend *vk, rtr_err *err) {
    for (int i = 0; i < vk->n_ops; i++) {
        const rtr_op *op = &vk->ops[i];
        if (op->kind != RTR_OP_ROPE || find_rope(vk, op->p.rope.theta, op->p.rope.rot_dim) >= 0) continue;
        int half = op->p.rope.rot_dim / 2;
        float tab[1024];
        if (vk->n_rope == 16 || vk->rope_used + (uint32_t)half * 4 > vk->rope_tab->size)
            return rtr_seterr(err, RTR_EARG, "vulkan: too many distinct RoPE settings");
        for (int j = 0; j < half; j++)
            tab[j] = rtr_rope_inv_freq(op->p.rope.theta, j, op->p.rope.rot_dim);
        int rc = vk_write(vk, vk->rope_tab, vk->rope_used, tab, (size_t)half * 4, err);
        if (rc) return rc;
        vk->rope[vk->n_rope++] = (vk_rope){op->p.rope.theta, op->p.rope.rot_dim, vk->rope_used};
        vk->rope_used += ((uint32_t)half * 4 + 15) / 16 * 16;
    }
    return 0;
}

static int same_ref(rtr_ref a, rtr_ref b) { return a.buf == b.buf && a.off == b.off; }

/* Whether nothing one of the two ops writes overlaps anything else the pair touches, leaving
 * out the first skip_b accesses of b (those it takes from a's results inside the fused
 * dispatch). */
static int disjoint(const acc_list *la, int skip_a, const acc_list *lb, int skip_b) {
    vk_access all[24];
    int n = 0;
    for (int i = skip_a; i < la->n; i++) all[n++] = la->a[i];
    for (int i = skip_b; i < lb->n; i++) all[n++] = lb->a[i];
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            if (i != j && all[i].w && all[i].b == all[j].b && all[i].lo < all[j].hi && all[j].lo < all[i].hi) return 0;
    return 1;
}

/* mm_t2_vec.comp takes one-token products with k <= VK_VEC_KMAX whose int8 input and weights
 * start on 16 bytes (it reads 16 bytes at a time). */
static int vec_ok(const vk_backend *vk, const rtr_op *mm) {
    if (vk->no_vec || mm->kind != RTR_OP_MATMUL_T2 || mm->rows != 1 || kpad128(mm->p.mm.k) > VK_VEC_KMAX ||
        mm->a.off % 16)
        return 0;
    for (int i = 0; i < mm->p.mm.n_mat; i++)
        if (mm->p.mm.w[i].off % 16) return 0;
    return 1;
}

/* The same, with the quantizing RMSNORM in front: its f32 row and weights read 16 bytes at a
 * time too. */
static int vec_norm_ok(const vk_backend *vk, const rtr_op *nm, const rtr_op *mm) {
    return vec_ok(vk, mm) && nm->p.norm.n % 4 == 0 && nm->a.off % 16 == 0 && nm->c.off % 16 == 0;
}

/* A one-token RMSNORM that only quantizes (no residual, no f32 output) followed by the ternary
 * product of its output: the matmul's workgroups do the norm themselves (mm_t2_vec.comp, fused
 * mode). Only when nothing the pair writes overlaps anything else it touches. */
static int fusable(const vk_backend *vk, const rtr_op *nm, const rtr_op *mm, acc_list *la, acc_list *lb) {
    if (nm->kind != RTR_OP_RMSNORM || mm->kind != RTR_OP_MATMUL_T2 || nm->rows != 1 || mm->rows != 1) return 0;
    if (nm->b.buf || nm->dst.buf || !nm->dst2.buf || !nm->dst3.buf) return 0;
    if (mm->p.mm.k != nm->p.norm.n || !vec_norm_ok(vk, nm, mm)) return 0;
    if (!same_ref(mm->a, nm->dst2) || !same_ref(mm->b, nm->dst3)) return 0;
    if (op_accesses(vk, nm, la, NULL) || op_accesses(vk, mm, lb, NULL)) return 0;
    return disjoint(la, 0, lb, 2); /* the product's int8 input and scales come from the norm */
}

/* A ROPE of the keys followed by the KV_STORE of those keys: one dispatch (kv_store.comp's
 * rope mode) rotates them in place and stores them. Whole heads rotated, head_dim % 4 == 0. */
static int rope_kv_fusable(const vk_backend *vk, const rtr_op *rp, const rtr_op *kv, acc_list *la, acc_list *lb) {
    if (rp->kind != RTR_OP_ROPE || kv->kind != RTR_OP_KV_STORE || rp->rows != kv->rows) return 0;
    int hd = rp->p.rope.head_dim;
    if (rp->p.rope.rot_dim != hd || hd % 4 || kv->p.kv.n != rp->p.rope.n_head * hd || !same_ref(kv->a, rp->a)) return 0;
    if (op_accesses(vk, rp, la, NULL) || op_accesses(vk, kv, lb, NULL)) return 0;
    return disjoint(la, 0, lb, 1);
}

/* A ROPE of the queries just before a fusable ROPE(keys) + KV_STORE: the same dispatch rotates
 * them too, when the two ropes agree (positions, frequencies, head_dim) and the queries overlap
 * nothing else the three ops touch. */
static int rope_q_fusable(const vk_backend *vk, const rtr_op *rq, const rtr_op *rk, const acc_list *lb,
                          const acc_list *lc, acc_list *lq) {
    if (rq->kind != RTR_OP_ROPE || rq->rows != rk->rows || rq->p.rope.head_dim != rk->p.rope.head_dim ||
        rq->p.rope.rot_dim != rk->p.rope.rot_dim || rq->p.rope.theta != rk->p.rope.theta || !same_ref(rq->b, rk->b))
        return 0;
    if (op_accesses(vk, rq, lq, NULL)) return 0;
    const vk_access *q = &lq->a[0]; /* the rotated rows */
    const acc_list *ls[2] = {lb, lc};
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < ls[k]->n; i++) {
            const vk_access *o = &ls[k]->a[i];
            if (o->b == q->b && o->lo < q->hi && q->lo < o->hi) return 0;
        }
    return 1;
}

static int rec_rope_kv(rec_ctx *c, const rtr_op *rq, const rtr_op *rp, const rtr_op *kv, acc_list *lq, acc_list *la,
                       acc_list *lb, rtr_err *err) {
    vk_backend *vk = c->vk;
    int ri = find_rope(vk, rp->p.rope.theta, rp->p.rope.rot_dim), rows = kv->rows, n = kv->p.kv.n;
    if (ri < 0) return rtr_seterr(err, RTR_EBACKEND, "vulkan: rope table missing");
    vk_access tab = {vk->rope_tab, vk->rope[ri].off, vk->rope[ri].off + (size_t)rp->p.rope.rot_dim * 2, 0};
    if (rq) depend(c, lq->a, lq->n);
    depend(c, la->a, la->n);
    depend(c, lb->a, lb->n);
    depend(c, &tab, 1);
    clear_refs(c);
    c->ref[0] = kv->a; c->ref[1] = kv->b; c->ref[2] = kv->c; c->ref[3] = kv->dst; c->ref[4] = kv->dst2;
    c->ref[5] = rp->b; c->ref[6] = (rtr_ref){vk->rope_tab, vk->rope[ri].off};
    uint64_t nq = rq ? (uint64_t)rq->p.rope.n_head * rq->p.rope.head_dim : 0;
    if (rq) c->ref[7] = rq->a;
    c->pc[P + 0] = (uint32_t)rows; c->pc[P + 1] = (uint32_t)n; c->pc[P + 2] = (uint32_t)kv_max_slots(vk, kv);
    c->pc[P + 3] = kv->p.kv.type == RTR_T_F32; c->pc[P + 4] = rq ? 2 : 1; c->pc[P + 5] = (uint32_t)rp->p.rope.head_dim;
    c->pc[P + 6] = (uint32_t)nq;
    uint32_t gx, gy;
    grid(((uint64_t)rows * (n / 4) + (uint64_t)rows * (n / 2) + (uint64_t)rows * (nq / 4) + 255) / 256, &gx, &gy);
    return dispatch(c, VP_KV, P + 7, gx, gy, 1, err);
}

/* A one-token gate/up product (two matrices of n rows, no accumulation) followed by the GLU
 * of its two outputs written over the gate rows: mm_t2_vec.comp's GLU mode. */
static int glu_fusable(const vk_backend *vk, const rtr_op *mm, const rtr_op *g, acc_list *lb, acc_list *lg) {
    if (vk->no_fuse || !g || g->kind != RTR_OP_GLU || g->rows != 1 || mm->p.mm.n_mat != 2 || mm->p.mm.accum) return 0;
    int n = mm->p.mm.n[0];
    if (mm->p.mm.n[1] != n || g->p.glu.n != n || !same_ref(g->a, mm->p.mm.out[0]) ||
        !same_ref(g->b, mm->p.mm.out[1]) || !same_ref(g->dst, mm->p.mm.out[0]))
        return 0;
    if (op_accesses(vk, g, lg, NULL)) return 0;
    return disjoint(lb, 0, lg, 3); /* the GLU only reads and rewrites the product's outputs */
}

/* Lanes a weight row for mm_t2_vec.comp: the fewest from `from` up (a power of two, at most 32)
 * that hold a row in vec_maxu pieces each (rows a workgroup = vec_wg / lanes). On the H100 and
 * the H200, fewer lanes a row with more pieces each won at every 2B4T shape (BENCH.md). */
static uint32_t vec_lanes(uint64_t kw4, uint32_t from, uint32_t maxu) {
    uint32_t lpr = from;
    while (lpr < 32 && kw4 > (uint64_t)lpr * maxu) lpr *= 2;
    return lpr;
}

/* The ROPE of q, the ROPE of k and the KV_STORE that follow a one-token q/k/v product, done by
 * the product's workgroups (mm_t2_vec.comp, RoPE/KV mode): the three ops are exactly what the
 * separate dispatches would take (rope_q_fusable, rope_kv_fusable), the ropes rotate the
 * product's first two outputs whole, the store takes its second and third, and none of the
 * product's or its norm's buffers is a cache, the slots, the positions or the rope table. */
typedef struct {
    const rtr_op *rq, *rk, *kv;
    acc_list lq, lk, lkv;
} rkv_ops;

static int rkv_fusable(const vk_backend *vk, const rtr_op *nm, const rtr_op *mm, const rtr_op *const *next, int nnext,
                       const acc_list *lb, rkv_ops *r) {
    if (nnext < 3 || vk->no_fuse || mm->rows != 1 || mm->p.mm.n_mat != 3 || mm->p.mm.accum) return 0;
    r->rq = next[0];
    r->rk = next[1];
    r->kv = next[2];
    if (!rope_kv_fusable(vk, r->rk, r->kv, &r->lk, &r->lkv) || !rope_q_fusable(vk, r->rq, r->rk, &r->lk, &r->lkv, &r->lq))
        return 0;
    int hd = r->rk->p.rope.head_dim;
    if (r->kv->rows != 1 || hd % 4 || !same_ref(r->rq->a, mm->p.mm.out[0]) || !same_ref(r->rk->a, mm->p.mm.out[1]) ||
        !same_ref(r->kv->b, mm->p.mm.out[2]) || mm->p.mm.n[0] != r->rq->p.rope.n_head * hd ||
        mm->p.mm.n[1] != r->kv->p.kv.n || mm->p.mm.n[2] != r->kv->p.kv.n ||
        (r->kv->p.kv.type != RTR_T_F32 && r->kv->p.kv.type != RTR_T_F16))
        return 0;
    const rtr_buf *side[4] = {r->kv->dst.buf, r->kv->dst2.buf, r->kv->c.buf, r->rq->b.buf};
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < lb->n; j++)
            if (lb->a[j].b == side[i]) return 0;
    if (nm)
        for (int i = 0; i < 4; i++)
            if (side[i] == nm->a.buf || side[i] == nm->c.buf || side[i] == nm->dst2.buf || side[i] == nm->dst3.buf) return 0;
    return 1;
}

/* One dispatch of mm_t2_vec.comp for mm, with the norm nm in front and the GLU g or the RoPE/KV
 * ops rk behind when they are given. Every access of the fused ops is one dependency list: the
 * results the ops pass each other never leave the dispatch. */
static int rec_mm_vec(rec_ctx *c, const rtr_op *nm, const rtr_op *mm, const rtr_op *g, const acc_list *la,
                      const acc_list *lb, const acc_list *lg, const rkv_ops *rk, rtr_err *err) {
    vk_backend *vk = c->vk;
    vk_access all[VK_NPEND];
    int n = 0, ri = -1;
    if (rk) {
        ri = find_rope(vk, rk->rk->p.rope.theta, rk->rk->p.rope.rot_dim);
        if (ri < 0) return rtr_seterr(err, RTR_EBACKEND, "vulkan: rope table missing");
        all[n++] = (vk_access){vk->rope_tab, vk->rope[ri].off, vk->rope[ri].off + (size_t)rk->rk->p.rope.rot_dim * 2, 0};
    }
    const acc_list *ls[6] = {la, lb, lg, rk ? &rk->lq : NULL, rk ? &rk->lk : NULL, rk ? &rk->lkv : NULL};
    for (int k = 0; k < 6; k++)
        for (int i = 0; ls[k] && i < ls[k]->n; i++) {
            if (n == VK_NPEND) { /* more than one list holds: at worst a barrier too many */
                depend(c, all, n);
                n = 0;
            }
            all[n++] = ls[k]->a[i];
        }
    clear_refs(c);
    uint64_t total = bind_matmul(c, mm);
    if (nm) { c->ref[8] = nm->a; c->ref[9] = nm->c; }
    if (rk) {
        c->ref[10] = rk->kv->c;
        c->ref[11] = rk->rk->b;
        c->ref[12] = (rtr_ref){vk->rope_tab, vk->rope[ri].off};
        c->ref[13] = rk->kv->dst;
        c->ref[14] = rk->kv->dst2;
    }
    uint64_t kw4 = kpad128(mm->p.mm.k) / 64;
    int pipe = !nm ? VP_MMT2_V : kw4 * 64 > VK_VEC_SHORT_K ? VP_MMT2_VF : g && !c->vk->no_vec_glu ? VP_MMT2_VG : VP_MMT2_VS;
    uint32_t lpr = vec_lanes(kw4, vk->vec_lanes[pipe - VP_MMT2_V], vk->vec_maxu[pipe - VP_MMT2_V]),
             rpw = vk->vec_wg[pipe - VP_MMT2_V] / lpr;
    uint64_t groups = g ? ((uint64_t)mm->p.mm.n[0] + rpw / 2 - 1) / (rpw / 2) : (total + rpw - 1) / rpw;
    uint32_t chain = chain_order(c, all, n, groups);
    c->pc[P + 0] = (uint32_t)kw4;
    c->pc[P + 1] = lpr;
    /* mode: accumulate, glu, fused norm, RoPE/KV (mm_t2_vec.comp's PC_ bits) */
    c->pc[P + 5] = (mm->p.mm.accum ? 1u : 0) | (g ? 1u + (uint32_t)g->p.glu.act : 0) << 1 |
                   (nm ? 1u | (nm->c.buf ? 2u : 0) : 0) << 4 | (rk ? 1u | (rk->kv->p.kv.type == RTR_T_F32 ? 2u : 0) : 0) << 6;
    c->pc[P + 6] = chain;
    c->pc[P + 10] = nm ? fbits(nm->p.norm.eps) : 0;
    c->pc[P + 11] = nm ? (uint32_t)nm->p.norm.n : 0;
    c->pc[P + 12] = rk ? (uint32_t)rk->rk->p.rope.head_dim : 0;
    c->pc[P + 13] = rk ? (uint32_t)kv_max_slots(vk, rk->kv) : 0;
    c->pc[P + 14] = rk ? (uint32_t)rk->kv->p.kv.n : 0;
    uint32_t gx, gy;
    grid(groups, &gx, &gy);
    return dispatch(c, pipe, P + 15, gx, gy, 1, err);
}

int vk_record(vk_backend *vk, vk_rec *rec, rtr_err *err) {
    rec_ctx c = {.vk = vk, .rec = rec, .cb = rec->cb, .ch_step = 1}; /* counter 0: the error word */
    vk->n_pend = 0;
    rec->nq = 0;
    if (rec->qp) {
        vkCmdResetQueryPool(rec->cb, rec->qp, 0, VK_PROF_Q);
        vkCmdWriteTimestamp(rec->cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, rec->qp, 0);
        rec->nq = 1;
    }
    for (int i = 0; i < vk->n_ops; i++) {
        acc_list la, lb, lc;
        int rc;
        const rtr_op *op = &vk->ops[i], *after[4] = {NULL}; /* the (up to) four ops after this one */
        int nafter = 0;
        for (int j = i + 1; j < vk->n_ops && nafter < 4; j++) after[nafter++] = &vk->ops[j];
        const rtr_op *next = after[0], *third = after[1];
        acc_list lg;
        rkv_ops rk;
        if (!vk->no_fuse && next && fusable(vk, op, next, &la, &lb)) {
            int gf = glu_fusable(vk, next, third, &lb, &lg);
            int rf = !gf && rkv_fusable(vk, op, next, after + 1, nafter - 1, &lb, &rk);
            rc = rec_mm_vec(&c, op, next, gf ? third : NULL, &la, &lb, gf ? &lg : NULL, rf ? &rk : NULL, err);
            i += gf ? 2 : rf ? 4 : 1;
        } else if (vec_ok(vk, op) && !op_accesses(vk, op, &lb, NULL)) {
            int gf = glu_fusable(vk, op, next, &lb, &lg);
            int rf = !gf && rkv_fusable(vk, NULL, op, after, nafter, &lb, &rk);
            rc = rec_mm_vec(&c, NULL, op, gf ? next : NULL, NULL, &lb, gf ? &lg : NULL, rf ? &rk : NULL, err);
            i += gf ? 1 : rf ? 3 : 0;
        } else if (!vk->no_fuse && third && rope_kv_fusable(vk, next, third, &lb, &lc) &&
                 rope_q_fusable(vk, op, next, &lb, &lc, &la))
            rc = rec_rope_kv(&c, op, next, third, &la, &lb, &lc, err), i += 2;
        else if (!vk->no_fuse && next && rope_kv_fusable(vk, op, next, &la, &lb))
            rc = rec_rope_kv(&c, NULL, op, next, NULL, &la, &lb, err), i++;
        else if (!vk->no_fuse && amax_fusable(vk, op, next)) {
            acc_list lh;
            rc = op_accesses(vk, op, &lh, err);
            if (!rc) rc = rec_matmul_f(&c, op, next, &lh, err);
            i++;
        } else rc = rec_op(&c, op, err);
        if (rc) return rc;
    }
    return 0;
}
