/* attn_common.glsl: what the attention shaders share: reading 8 dims of a cached key or
 * value row, 16 bytes at a time from an f16 cache or 32 from an f32 one. The including shader
 * declares K4 and V4 (uvec4 views of bindings 1 and 2) and push constants with o[] (packed byte
 * offsets) and f32 (the cache type) first. Rows start on 16 bytes and head_dim is a multiple
 * of 8 (the host checks). */
/* dims 8w .. 8w + 7 of the key (kpiece) or value (vpiece) row starting at element el */
#define RTR_PIECE(NAME, BUF, BI)                                    \
    void NAME(uint el, uint w, out vec4 a, out vec4 b) {            \
        if (pc.f32 != 0) {                                          \
            uint i = OFF(BI) / 16 + el / 4 + 2 * w;                \
            a = uintBitsToFloat(BUF[i]);                            \
            b = uintBitsToFloat(BUF[i + 1]);                        \
        } else {                                                    \
            uvec4 v = BUF[OFF(BI) / 16 + el / 8 + w];              \
            a = vec4(unpackHalf2x16(v.x), unpackHalf2x16(v.y));     \
            b = vec4(unpackHalf2x16(v.z), unpackHalf2x16(v.w));     \
        }                                                           \
    }
RTR_PIECE(kpiece, K4, 1)
RTR_PIECE(vpiece, V4, 2)
