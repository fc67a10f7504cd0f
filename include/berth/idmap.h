/* A hash map from ids (NUL-terminated strings: Docker's container ids) to
 * pointers, for what must not cost a scan per container when a host runs
 * 100,000 of them: the registry's lookups by id, the Docker client's
 * inspect queue and the set of listed ids a resync sweeps against.
 *
 * Keys are borrowed: each must stay valid and unchanged while it is in the
 * map (it lives in the value, or beside it). Values are never NULL (NULL
 * means absent). Open addressing, linear probing, deletion by backward
 * shift (no tombstones, so a queue that churns keeps short probes), grown
 * at half load. Return convention: 0 / -1 (errno ENOMEM) for insertions. */
#ifndef BERTH_IDMAP_H
#define BERTH_IDMAP_H

#include <stddef.h>

struct idmap;

struct idmap *idmap_new(void);
void idmap_free(struct idmap *m);

/* The value under key, or NULL. */
void *idmap_get(const struct idmap *m, const char *key);
/* Inserts key -> val, or replaces the key pointer and value of an equal
 * key already there (which never fails). val must not be NULL. */
int idmap_put(struct idmap *m, const char *key, void *val);
/* Removes key; returns its value, or NULL if it was absent. */
void *idmap_del(struct idmap *m, const char *key);
/* Forgets every key (the memory stays for the next use). */
void idmap_clear(struct idmap *m);
size_t idmap_count(const struct idmap *m);

#endif
