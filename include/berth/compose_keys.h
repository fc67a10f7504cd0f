/* The registry's Compose network keys: "db.backend" for the alias db on
 * network "lab_backend", whose labels say project "lab", key "backend"
 * (registry.h's last reading of a name).
 *
 * Kept per container endpoint and per network, never swept: each key has
 * a table of the names below it, <label>.<key> (a container's name or
 * alias on one of the key's networks; "" for the key alone), each with how
 * many of the key's networks hold it and, when one does, which. So a
 * lookup is a hash lookup per key the name could end in, however many
 * projects share the key (every project has a "default"), and a miss
 * costs no more than a hit. An endpoint joining or leaving touches its own
 * labels; a network's key changing re-keys the endpoints on that network
 * only. An ambiguous name is warned about once per set of networks that
 * hold it: the mark lives with the name and goes when that set changes.
 * Return convention: 0 / -1 (errno ENOMEM), NULL (errno ENOMEM). */
#ifndef BERTH_COMPOSE_KEYS_H
#define BERTH_COMPOSE_KEYS_H

#include <stdbool.h>
#include <stddef.h>

struct compose_keys;
/* One container endpoint on a network. */
struct ck_member;

struct compose_keys *compose_keys_new(void);
/* Frees the table; every member must have left. */
void compose_keys_free(struct compose_keys *k);

/* Network net's Compose project and key: both NULL (or an empty key) for
 * none, replacing what was known. Its endpoints are re-keyed. On failure
 * the network is left without a key. */
int compose_keys_set(struct compose_keys *k, const char *net, const char *project,
                     const char *key);

/* Every network loses its key, as far as any lookup after the sets that
 * follow can tell; a network set again with the same key and project keeps
 * its endpoints counted. So loading the full network list, as every network
 * event does, re-keys only the networks that changed. */
void compose_keys_forget_all(struct compose_keys *k);

/* A container's endpoint on net, known there as name and aliases (all
 * borrowed: they must stay valid until it leaves). Nothing joins when it
 * fails. */
struct ck_member *compose_keys_join(struct compose_keys *k, const char *net,
                                    const char *name, char *const *aliases,
                                    size_t naliases);
/* NULL is a no-op. */
void compose_keys_leave(struct compose_keys *k, struct ck_member *m);

/* name (len bytes, not NUL-terminated, any case) read as <label>.<key>:
 * the whole name as a key, then what follows each dot, the first whose
 * networks hold the label. Returns -1 when none does, or the name is
 * ambiguous (warned about once: the full names to use); 0 for a key alone
 * held by several networks (it exists, with no address); 1 with the full
 * name, <label>.<network> (lower case), in full, to look up instead. */
int compose_keys_resolve(struct compose_keys *k, const char *name, size_t len,
                         char *full, size_t size);

/* True when a name exists below name read through a key: "internal.backend"
 * for the alias "pg.internal" on lab_backend. */
bool compose_keys_has_below(struct compose_keys *k, const char *name, size_t len);

#endif
