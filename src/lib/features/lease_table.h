/* features/lease_table.h: the leases this process holds for itself, while Redis cannot decide.
 *
 * A table of (stored key -> token, deadline), one mutex, bounded in entries: what makes one caller
 * of the process the holder of a key's lease when Redis is unavailable or not configured
 * (features/lease.c). Time is a parameter (wall-clock ms, the cache's clock). */
#ifndef STRATA_FEATURES_LEASE_TABLE_H
#define STRATA_FEATURES_LEASE_TABLE_H

#include <stddef.h>
#include <stdint.h>

typedef struct lease_table lease_table;

/* A table of at most max leases. Returns 0 or STRATA_ENOMEM. */
int strata__lease_table_new(size_t max, lease_table **out);
void strata__lease_table_free(lease_table *t);

/* Gives key[0..klen)'s lease to token (22 bytes) until now + lease_ms, unless a live one is held.
 * Returns 0, STRATA_EHELD (*left_ms: until the holder's deadline), STRATA_ELIMIT (max live
 * leases already held: expired ones are swept first) or STRATA_ENOMEM. */
int strata__lease_table_acquire(lease_table *t, const char *key, size_t klen, const char *token,
                                uint64_t lease_ms, uint64_t now, uint64_t *left_ms);

/* Whether token holds key's live lease: 1 or 0. */
int strata__lease_table_holds(lease_table *t, const char *key, size_t klen, const char *token,
                              uint64_t now);

/* Releases key's lease if token holds it (live): 0, or STRATA_ENOTHOLDER. */
int strata__lease_table_release(lease_table *t, const char *key, size_t klen, const char *token,
                                uint64_t now);

/* Moves the deadline of token's live lease on key to now + lease_ms: 0, or STRATA_ENOTHOLDER. */
int strata__lease_table_extend(lease_table *t, const char *key, size_t klen, const char *token,
                               uint64_t lease_ms, uint64_t now);

/* Entries held now (live, or expired and not swept yet). */
size_t strata__lease_table_count(lease_table *t);

#endif
