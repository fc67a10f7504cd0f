/* The one hash of berth's tables (flows, names): FNV-1a, 32 bits. Fast on
 * the short keys berth hashes, and none of them is chosen by a remote
 * peer alone in a way that could be steered into one bucket cheaply. */
#ifndef BERTH_HASH_H
#define BERTH_HASH_H

#include <stddef.h>
#include <stdint.h>

#define HASH_INIT 2166136261u

/* Folds n bytes at p into h (start with HASH_INIT). */
uint32_t hash_bytes(uint32_t h, const void *p, size_t n);

#endif
