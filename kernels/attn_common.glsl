/* attn_common.glsl: what the two attention shaders share: reading 8 dims of a cached key or
 * value row, 16 bytes at a time from an f16 cache or 32 from an f32 one. The including shader
 * declares K4 and V4 (uvec4 views of bindings 1 and 2) and push constants with o[] (byte
 * offsets) and f32 (the cache type) first. Rows start on 16 bytes and head_dim is a multiple
 * of 8 (the host checks). */
/* dims 8w .. 8w + 7 of the cache row starting at element el (f16 or f32 cache) */
void kpiece(uint el, uint w, out vec4 a, out vec4 b) {
    if (pc.f32 != 0) {
        uint i = pc.o[1] / 16 + el / 4 + 2 * w;
        a = uintBitsToFloat(K4[i]);
        b = uintBitsToFloat(K4[i + 1]);
    } else {
        uvec4 v = K4[pc.o[1] / 16 + el / 8 + w];
        a = vec4(unpackHalf2x16(v.x), unpackHalf2x16(v.y));
        b = vec4(unpackHalf2x16(v.z), unpackHalf2x16(v.w));
    }
}
void vpiece(uint el, uint w, out vec4 a, out vec4 b) {
    if (pc.f32 != 0) {
        uint i = pc.o[2] / 16 + el / 4 + 2 * w;
        a = uintBitsToFloat(V4[i]);
        b = uintBitsToFloat(V4[i + 1]);
    } else {
        uvec4 v = V4[pc.o[2] / 16 + el / 8 + w];
        a = vec4(unpackHalf2x16(v.x), unpackHalf2x16(v.y));
        b = vec4(unpackHalf2x16(v.z), unpackHalf2x16(v.w));
    }
}

