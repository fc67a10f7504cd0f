/* SHA-256 (FIPS 180-4), for the docker CLI's context store, which names a
 * context's folder by the hex digest of its name. libcrypto is not linked
 * and one digest of a short name does not justify it. */
#ifndef BERTH_SHA256_H
#define BERTH_SHA256_H

#include <stddef.h>
#include <stdint.h>

/* The digest of len bytes at data. */
void sha256(const void *data, size_t len, uint8_t out[32]);
/* The same as 64 lowercase hex digits and a NUL. */
void sha256_hex(const void *data, size_t len, char out[65]);

#endif
