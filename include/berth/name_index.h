/* The registry's name index: lower-case name -> addresses, and address ->
 * container name, kept up to date one container at a time.
 *
 * Each container claims its names (the readings registry.h lists, each
 * with a rank: a lower one wins a clash) and its addresses for PTR. Adding
 * or removing a container touches only its own names, so a change costs
 * the same with 10 containers or 100,000 (rebuilding the whole index after
 * every change took 200 ms at 100,000, and a sync changes it 100,000
 * times). A name's answer is worked out again on its first lookup after
 * one of its claims changed: the addresses of its best rank, by container
 * number, each once.
 * Return convention: NULL (errno ENOMEM) from name_index_add; lookups as
 * registry.h says. */
#ifndef BERTH_NAME_INDEX_H
#define BERTH_NAME_INDEX_H

#include <stdbool.h>
#include <stddef.h>

#include "berth/registry.h"
#include "berth/sockaddr.h"

struct name_index;
/* What one container claimed: given back to take it all out again. */
struct name_ref;

struct name_index *name_index_new(void);
/* Frees the index and every claim still in it. */
void name_index_free(struct name_index *x);

/* Claims c's names and addresses. c->name must stay valid until the claim
 * is removed (PTR answers point at it); the rest is copied. Nothing is
 * claimed when it fails. */
struct name_ref *name_index_add(struct name_index *x, const struct reg_container *c);
/* Takes out everything ref claimed, and frees it. NULL is a no-op. */
void name_index_remove(struct name_index *x, struct name_ref *ref);

/* As registry_resolve_from and registry_ptr. */
int name_index_resolve(struct name_index *x, const char *name, size_t len, int family,
                       size_t first, struct addr *out, size_t max);
int name_index_ptr(struct name_index *x, const struct addr *ip, char *name,
                   size_t len);

/* As registry_has_below. */
bool name_index_has_below(struct name_index *x, const char *name, size_t len);

#endif
