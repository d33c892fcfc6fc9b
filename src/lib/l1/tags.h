/* tags.h: the table of current tag versions (internal to L1; L2 will fill it from Redis). */
#ifndef STRATA_TAGS_H
#define STRATA_TAGS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <strata/l1.h>

typedef struct strata_tags strata_tags;

/* A tag's soft record: the versions soft invalidations retired, newest first, and when. A soft
 * invalidation gives the tag a new version like a hard one, and records the old one here: an entry
 * carrying a retired version is stale from that moment instead of invalid, while the tag still has
 * the version the record was made for (cur). A hard invalidation changes the version again, so the
 * record no longer applies and those entries are invalid. Only the last STRATA_TAG_SOFT_MAX
 * retirements are kept: older entries are invalid (a miss, never a value served too long).
 * (docs/architecture.md, "Tags".) */
#define STRATA_TAG_SOFT_MAX STRATA_TAG_SOFT_KEEP
typedef struct tag_soft {
    uint64_t cur; /* the tag's version this record applies to; 0: no record */
    unsigned n;   /* retired[0..n) */
    struct {
        uint64_t version, at_ms;
    } retired[STRATA_TAG_SOFT_MAX];
} tag_soft;

/* An entry written under tag version want, judged against the tag's current version have and its
 * soft record (NULL: none). Returns 1 (valid; *stale_from is 0, or the moment a soft
 * invalidation made the entry stale: its expiry is at most that) or 0 (invalid). */
int strata__tags_judge(uint64_t want, uint64_t have, const tag_soft *soft, uint64_t *stale_from);

/* The record after a soft invalidation of a tag at version have, made at at_ms, to version next:
 * have retired first, then what old (NULL: none) still says for have (older retirements are
 * kept only while the record is the current one). */
void strata__tags_soft_next(const tag_soft *old, uint64_t have, uint64_t next, uint64_t at_ms,
                            tag_soft *out);

/* A table remembering at most max tags. Returns NULL on out of memory. */
strata_tags *strata__tags_new(size_t max);
void strata__tags_free(strata_tags *t);

/* The identity of a tag within a tenant: a 64-bit hash of (tenant, tag). */
uint64_t strata__tag_hash(const char *tenant, const char *tag);

/* The current version of a tag. When the tag is unknown: with create, a fresh random version is
 * made and returned; without, STRATA_ENOTFOUND (the caller treats the entry as invalid).
 * Returns 0, STRATA_ENOTFOUND or STRATA_ENOMEM. */
int strata__tags_current(strata_tags *t, uint64_t hash, int create, uint64_t *version);

/* Judges an entry written under version want of a tag (strata__tags_judge with what the table
 * knows). Returns 1 or 0 as that does, or STRATA_ENOTFOUND when the tag is not known here. */
int strata__tags_check(strata_tags *t, uint64_t hash, uint64_t want, uint64_t *stale_from);

/* Gives a tag a new random version (creating it if unknown), forgetting its soft record.
 * Returns 0 or STRATA_ENOMEM. */
int strata__tags_bump(strata_tags *t, uint64_t hash);

/* A soft invalidation at now_ms: a new random version, the old one retired in the soft record
 * (strata__tags_soft_next). An unknown tag just gets a version (nothing carries a valid one).
 * Returns 0 or STRATA_ENOMEM. */
int strata__tags_soften(strata_tags *t, uint64_t hash, uint64_t now_ms);

/* Sets a tag's version and soft record (NULL: none) as the shared tier knows them (creating the
 * tag if unknown), unless the
 * ticket (slot + epoch; slot NULL: no check) no longer sums to expect: checked under the stripe
 * lock, so an invalidation that bumps the ticket and then forgets the tag can never be overtaken
 * by an older read. Returns 0 or STRATA_ENOMEM. */
int strata__tags_put(strata_tags *t, uint64_t hash, uint64_t version, const tag_soft *soft,
                     _Atomic uint64_t *slot, _Atomic uint64_t *epoch, uint64_t expect);

/* Forgets a tag (its version changed elsewhere) / every tag. */
void strata__tags_forget(strata_tags *t, uint64_t hash);
void strata__tags_clear(strata_tags *t);

/* Bytes the table holds now (nodes and buckets, allocator overhead included). */
size_t strata__tags_bytes(strata_tags *t);

/* Tags known now. */
size_t strata__tags_count(strata_tags *t);

#endif
