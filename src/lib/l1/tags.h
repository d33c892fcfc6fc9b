/* tags.h: the table of current tag versions (internal to L1; L2 will fill it from Redis). */
#ifndef STRATA_TAGS_H
#define STRATA_TAGS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct strata_tags strata_tags;

/* A table remembering at most max tags. Returns NULL on out of memory. */
strata_tags *strata__tags_new(size_t max);
void strata__tags_free(strata_tags *t);

/* The identity of a tag within a tenant: a 64-bit hash of (tenant, tag). */
uint64_t strata__tag_hash(const char *tenant, const char *tag);

/* The current version of a tag. When the tag is unknown: with create, a fresh random version is
 * made and returned; without, STRATA_ENOTFOUND (the caller treats the entry as invalid).
 * Returns 0, STRATA_ENOTFOUND or STRATA_ENOMEM. */
int strata__tags_current(strata_tags *t, uint64_t hash, int create, uint64_t *version);

/* Gives a tag a new random version (creating it if unknown). Returns 0 or STRATA_ENOMEM. */
int strata__tags_bump(strata_tags *t, uint64_t hash);

/* Sets a tag's version as the shared tier knows it (creating the tag if unknown), unless the
 * ticket (slot + epoch; slot NULL: no check) no longer sums to expect: checked under the stripe
 * lock, so an invalidation that bumps the ticket and then forgets the tag can never be overtaken
 * by an older read. Returns 0 or STRATA_ENOMEM. */
int strata__tags_put(strata_tags *t, uint64_t hash, uint64_t version, _Atomic uint64_t *slot,
                     _Atomic uint64_t *epoch, uint64_t expect);

/* Forgets a tag (its version changed elsewhere) / every tag. */
void strata__tags_forget(strata_tags *t, uint64_t hash);
void strata__tags_clear(strata_tags *t);

/* Bytes the table holds now (nodes and buckets, allocator overhead included). */
size_t strata__tags_bytes(strata_tags *t);

/* Tags known now. */
size_t strata__tags_count(strata_tags *t);

#endif
