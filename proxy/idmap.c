#include "berth/idmap.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "berth/hash.h"

#define MIN_SLOTS 16

struct slot {
    const char *key; /* NULL: empty */
    void *val;
    uint32_t hash; /* kept: growing and shifting need no rehash */
};

struct idmap {
    struct slot *slots;
    size_t nslots; /* a power of two, or 0 before the first insertion */
    size_t n;
};

static uint32_t hash_key(const char *key)
{
    return hash_bytes(HASH_INIT, key, strlen(key));
}

struct idmap *idmap_new(void) { return calloc(1, sizeof(struct idmap)); }

void idmap_free(struct idmap *m)
{
    if (!m)
        return;
    free(m->slots);
    free(m);
}

/* The slot holding key, or the empty one where it would go. */
static size_t find(const struct idmap *m, const char *key, uint32_t h)
{
    size_t mask = m->nslots - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        const struct slot *s = &m->slots[i];
        if (!s->key || (s->hash == h && strcmp(s->key, key) == 0))
            return i;
    }
}

void *idmap_get(const struct idmap *m, const char *key)
{
    if (!m->n)
        return NULL;
    return m->slots[find(m, key, hash_key(key))].val;
}

static int grow(struct idmap *m)
{
    size_t nslots = m->nslots ? m->nslots * 2 : MIN_SLOTS;
    struct slot *slots = calloc(nslots, sizeof *slots);
    if (!slots) {
        errno = ENOMEM;
        return -1;
    }
    struct idmap bigger = {slots, nslots, m->n};
    for (size_t i = 0; i < m->nslots; i++)
        if (m->slots[i].key)
            slots[find(&bigger, m->slots[i].key, m->slots[i].hash)] = m->slots[i];
    free(m->slots);
    *m = bigger;
    return 0;
}

int idmap_put(struct idmap *m, const char *key, void *val)
{
    uint32_t h = hash_key(key);
    if (m->n) {
        struct slot *s = &m->slots[find(m, key, h)];
        if (s->key) { /* a replacement never allocates */
            s->key = key;
            s->val = val;
            return 0;
        }
    }
    /* At most half full: probes stay short even for unlucky keys. */
    if ((m->n + 1) * 2 > m->nslots && grow(m) < 0)
        return -1;
    m->slots[find(m, key, h)] = (struct slot){key, val, h};
    m->n++;
    return 0;
}

void *idmap_del(struct idmap *m, const char *key)
{
    if (!m->n)
        return NULL;
    size_t mask = m->nslots - 1, hole = find(m, key, hash_key(key));
    void *val = m->slots[hole].val;
    if (!val)
        return NULL;
    /* Backward shift: move up each later entry of the run that may sit in
     * the hole, so no probe ever stops early at it. */
    for (size_t i = (hole + 1) & mask; m->slots[i].key; i = (i + 1) & mask) {
        size_t home = m->slots[i].hash & mask;
        /* Stays if its home lies cyclically in (hole, i]. */
        if (hole <= i ? (home > hole && home <= i) : (home > hole || home <= i))
            continue;
        m->slots[hole] = m->slots[i];
        hole = i;
    }
    m->slots[hole] = (struct slot){0};
    m->n--;
    return val;
}

void idmap_clear(struct idmap *m)
{
    if (m->slots)
        memset(m->slots, 0, m->nslots * sizeof *m->slots);
    m->n = 0;
}

size_t idmap_count(const struct idmap *m) { return m->n; }
