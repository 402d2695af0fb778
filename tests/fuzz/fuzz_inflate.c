/* fuzz_inflate.c: libFuzzer target for the gzip / DEFLATE decoder (tools/inflate.c).
 * The input goes through rtr_gunzip as a whole and through rtr_inflate as a raw stream (from
 * byte 0, and from byte 10, where a plain gzip member's stream starts). When zlib is present
 * (FUZZ_ZLIB), raw streams are decoded by zlib as well and both must agree: the same output
 * when either succeeds, failure when the other finds the stream broken (except that rotor, by
 * design, accepts incomplete Huffman codes that zlib refuses). Output is capped at
 * 1 MiB so that small inputs cannot expand without bound. */
#include "fuzz_common.h"
#include "../../tools/inflate.h"
#if FUZZ_ZLIB
#include <zlib.h>
#endif

#define MAX_OUT ((size_t)1 << 20)

#if FUZZ_ZLIB
/* zlib's verdict on a raw stream: 1 decoded completely (out, *n set), 2 over the cap, 3 refused
 * for an incomplete Huffman code (which rotor accepts by design, failing only if the stream
 * then uses an unassigned code), 0 broken. */
static int zlib_raw(const uint8_t *in, size_t n_in, uint8_t *out, size_t *n) {
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, -15) != Z_OK) return -1;
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)n_in;
    z.next_out = out;
    z.avail_out = (uInt)MAX_OUT;
    int r = inflate(&z, Z_FINISH);
    *n = z.total_out;
    int incomplete = r == Z_DATA_ERROR && z.msg && strstr(z.msg, " set");
    inflateEnd(&z);
    return r == Z_STREAM_END ? 1 : (r == Z_BUF_ERROR && z.avail_out == 0) ? 2 : incomplete ? 3 : 0;
}
#endif

static void raw(const uint8_t *in, size_t n) {
    uint8_t *out = NULL;
    size_t olen = 0, used = 0;
    rtr_err err = {0};
    int r = rtr_inflate(in, n, MAX_OUT, &out, &olen, &used, &err);
    FZ_ASSERT(r == 0 || r == RTR_EFORMAT || r == RTR_ENOMEM, "return %d", r);
    if (r == 0) {
        FZ_ASSERT(olen <= MAX_OUT, "output %zu over the cap", olen);
        FZ_ASSERT(used <= n, "used %zu of %zu input bytes", used, n);
        FZ_ASSERT(out && out[olen] == 0, "output not NUL-terminated");
    } else {
        FZ_ASSERT(out == NULL, "output left after an error");
    }
#if FUZZ_ZLIB
    static uint8_t zout[MAX_OUT];
    size_t zn = 0;
    int z = zlib_raw(in, n, zout, &zn);
    if (r == 0) {
        FZ_ASSERT(z == 1 || z == 3, "rotor decodes %zu bytes from a stream zlib rejects", olen);
        if (z == 1) FZ_ASSERT(zn == olen && !memcmp(out, zout, olen), "output differs from zlib's (%zu vs %zu bytes)", olen, zn);
    } else if (z == 1 && r == RTR_EFORMAT) {
        FZ_ASSERT(0, "zlib decodes %zu bytes where rotor says: %s", zn, err.msg);
    }
#endif
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *out = NULL;
    size_t olen = 0;
    rtr_err err = {0};
    int r = rtr_gunzip(data, size, MAX_OUT, &out, &olen, &err);
    FZ_ASSERT(r == 0 || r == RTR_EFORMAT || r == RTR_ENOMEM, "return %d", r);
    if (r == 0) FZ_ASSERT(out && olen <= MAX_OUT && out[olen] == 0, "bad gunzip output");
    else FZ_ASSERT(err.msg[0], "no error message");
    free(out);
    raw(data, size);
    if (size > 10) raw(data + 10, size - 10);
    return 0;
}
