/* inflate.h: a small DEFLATE (RFC 1951) and gzip (RFC 1952) decoder, enough to read the
 * compressed tokenizer.json.gz that some model folders ship. Bounds-checked throughout: a damaged
 * stream gives RTR_EFORMAT with a short reason, never an out-of-bounds read or write. */
#ifndef ROTOR_INFLATE_H
#define ROTOR_INFLATE_H

#include "../rotor.h"

/* Decompresses a whole gzip file (every member, concatenated) into a malloc'd buffer with one
 * NUL byte after the data (not counted in *out_len). Checks the CRC-32 and length of each
 * member. Output larger than max_out bytes is refused (RTR_EFORMAT). */
int rtr_gunzip(const uint8_t *in, size_t in_len, size_t max_out, uint8_t **out, size_t *out_len,
               rtr_err *err);

/* Raw DEFLATE: decompresses in[0..in_len) into a malloc'd buffer (NUL-terminated as above);
 * *used gets the number of input bytes the stream occupied. */
int rtr_inflate(const uint8_t *in, size_t in_len, size_t max_out, uint8_t **out, size_t *out_len,
                size_t *used, rtr_err *err);

uint32_t rtr_crc32(uint32_t crc, const uint8_t *p, size_t n);

#endif
