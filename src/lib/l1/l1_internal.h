/* l1_internal.h: what the two-tier cache needs from L1 beyond its public API.
 *
 * A write from the cache is split in two so the cache can put the same entry in both tiers:
 * strata__l1_prepare builds and validates the entry (applying the namespace's TTL rules once, so
 * both tiers agree), the cache writes its encoding to Redis, then strata__l1_store links it.
 */
#ifndef STRATA_L1_INTERNAL_H
#define STRATA_L1_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <strata/l1.h>

#include "l1/entry.h"
#include "l1/tags.h"

#define STRATA__NO_TICKET      UINT64_MAX
#define STRATA__L1_INVALIDATED 100 /* strata__l1_store: not linked, an invalidation raced it */

/* An address resolved once per call: the stored key (strata_key_build with L1's prefix and key
 * limit), its hash, and where its parts start. What a call passes down instead of rebuilding it
 * in every layer it crosses. */
typedef struct l1_addr {
    char buf[STRATA_STORED_KEY_MAX(STRATA_KEY_MAX_LIMIT)];
    size_t len, tenant_off, tenant_len, user_off;
    uint64_t hash;
} l1_addr;

typedef struct l1_write {
    const strata_key *k;
    const struct l1_addr *at; /* k's address, when the caller resolved it already; or NULL */
    const void *value;
    size_t len;
    const strata_set_opts *opts; /* NULL: defaults */
    uint64_t now_ms;
    const uint64_t *tag_versions; /* NULL: from L1's tag table (created if unknown) */
    int absolute;                 /* 1: created_ms / expires_ms below are the entry's (a copy
                                     from the shared tier); 0: computed from the TTL rules */
    uint64_t created_ms, expires_ms;
} l1_write;

/* Validates a write and builds its entry, not yet linked: *out holds the caller's reference.
 * Returns the errors of strata_l1_set (except EEXISTS and EQUOTA, which come from store). */
int strata__l1_prepare(strata_l1 *l1, const l1_write *w, struct strata_value **out);

/* Links a prepared entry (the shard takes its own reference; the caller keeps and later
 * releases its own with strata_value_release). With a ticket other than STRATA__NO_TICKET,
 * links only if the key's ticket still has that value. Returns 0, STRATA_EEXISTS (NX),
 * STRATA_EQUOTA, STRATA_ENOMEM or STRATA__L1_INVALIDATED. */
int strata__l1_store(strata_l1 *l1, struct strata_value *e, unsigned flags, uint64_t now_ms,
                     uint64_t ticket);

/* Drops a prepared entry that was never stored. NULL is a no-op. */
void strata__l1_discard(struct strata_value *e);

/* Fills *a for k. Returns 0 or a key error (strata_key_build's). */
int strata__l1_resolve(const strata_l1 *l1, const strata_key *k, l1_addr *a);

/* How strata__l1_get_ex reads. */
enum l1_get_flags {
    L1_GET_UNKNOWN_TAGS_OK = 1, /* a tag this L1 does not know makes a miss, not an invalidation */
    L1_GET_STALE = 2            /* an entry past its expiry but still kept is answered too (its
                                   freshness is the caller's to judge) */
};

/* strata_l1_get, read as flags (enum l1_get_flags) say. */
int strata__l1_get_ex(strata_l1 *l1, const strata_key *k, uint64_t now_ms, unsigned flags,
                      strata_value **out);
/* The same for an address already resolved from k. */
int strata__l1_get_at(strata_l1 *l1, const strata_key *k, const l1_addr *a, uint64_t now_ms,
                      unsigned flags, strata_value **out);
/* strata_l1_del for an address already resolved. */
int strata__l1_del_at(strata_l1 *l1, const l1_addr *a, uint64_t now_ms);

/* strata_l1_clear with several patterns in one pass: removes what matches any of
 * patterns[0..npatterns) (npatterns 0: every key), each entry counted once. */
int strata__l1_clear_any(strata_l1 *l1, const char *ns, const char *tenant,
                         const char *const *patterns, size_t npatterns, size_t *removed);
const char *strata__l1_prefix(strata_l1 *l1);
strata_tags *strata__l1_tags(strata_l1 *l1);

/* Gives k's fresh value a new life without rewriting it: created = now_ms, expires = now_ms +
 * ttl_ms exactly (no namespace rules, no jitter); with only_pinned, only a pinned value (one
 * written to L1 alone). Returns 0, STRATA_ENOTFOUND, STRATA_EINVAL (ttl_ms 0) or a key error.
 * What strata_cache_touch does to this instance's copy when that copy is the one to touch. */
int strata__l1_restamp(strata_l1 *l1, const strata_key *k, uint64_t ttl_ms, uint64_t now_ms,
                       int only_pinned);

/* A soft purge of k's value at now_ms: a fresh value expires now, its stale windows counting from
 * now (one with no window is removed); a stale one keeps its times. With only_pinned, only a
 * pinned value (one written to L1 alone). Returns 0, STRATA_ENOTFOUND (none, or past its
 * windows) or a key error. What strata_cache_expire does to this instance's copy. */
int strata__l1_expire(strata_l1 *l1, const strata_key *k, uint64_t now_ms, int only_pinned);

/* strata__l1_expire on every entry strata__l1_clear_any would remove; *expired (may be NULL)
 * counts those made stale (not those stale already). Returns 0 or STRATA_EBADNAME. */
int strata__l1_expire_any(strata_l1 *l1, const char *ns, const char *tenant,
                          const char *const *patterns, size_t npatterns, uint64_t now_ms,
                          size_t *expired);

/* A soft invalidation of a tag of a tenant (NULL: default) at now_ms: entries written with the
 * tag before it are stale from now_ms instead of invalid (l1/tags.h). Returns 0, STRATA_EBADNAME,
 * STRATA_EBADTEXT or STRATA_ENOMEM. */
int strata__l1_tag_soften(strata_l1 *l1, const char *tenant, const char *tag, uint64_t now_ms);

/* Tickets: enable (once, before any other thread uses L1), read, and the invalidations that
 * bump them. */
int strata__l1_enable_tickets(strata_l1 *l1, size_t slots);
uint64_t strata__l1_ticket(strata_l1 *l1, uint64_t hash);
void strata__l1_invalidate_stored(strata_l1 *l1, const char *stored, size_t len);
/* Learns a tag's version and soft record (NULL: none) read from Redis (tag_hash:
 * strata__tag_hash; key_hash: the hash of the tag's stored key, whose ticket was read before the
 * version), unless invalidated meanwhile. */
void strata__l1_tag_learn(strata_l1 *l1, uint64_t tag_hash, uint64_t key_hash, uint64_t version,
                          const tag_soft *soft, uint64_t ticket);
/* A tag's stored key changed in Redis: bump its ticket, forget its version. */
void strata__l1_tag_forget(strata_l1 *l1, uint64_t tag_hash, uint64_t key_hash);

/* Turns a prepared entry that could not be stored into a plain value for the caller (drops its
 * tenant-scope reference; strata_value_release then frees it). */
void strata__l1_detach(struct strata_value *e);

/* Every entry and every tag version: after a FLUSHDB, a lost invalidation link, an outage. */
void strata__l1_invalidate_all(strata_l1 *l1);

#endif
