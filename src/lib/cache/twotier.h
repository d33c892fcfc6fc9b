/* cache/twotier.h: the two-tier logic, written once for the synchronous and asynchronous calls.
 *
 * Each call takes the tier to reach Redis through (cache/tier.h) and the time it was made (now,
 * wall-clock ms: read once by the public call, so tests drive a fake clock). Each follows
 * cache.h's asynchronous convention: STRATA_OK / STRATA_OK_L1_ONLY / a miss or an error decided
 * during the call (cb not called), or STRATA_PENDING and cb exactly once. Over the synchronous
 * pool, cb is always called before the call returns.
 */
#ifndef STRATA_CACHE_TWOTIER_H
#define STRATA_CACHE_TWOTIER_H

#include <stddef.h>
#include <stdint.h>

#include <strata/cache.h>

#include "cache/tier.h"

int strata__tt_get(strata_cache *c, tier t, const strata_key *k, uint64_t now, strata_get_cb cb,
                   void *arg, strata_value **out);
int strata__tt_set(strata_cache *c, tier t, const strata_key *k, const void *value, size_t len,
                   const strata_set_opts *opts, uint64_t now, strata_done_cb cb, void *arg);
int strata__tt_del(strata_cache *c, tier t, const strata_key *k, uint64_t now, strata_done_cb cb,
                   void *arg);
/* A delete that happens everywhere or not at all: Redis first, then L1. When Redis cannot take
 * it, nothing is deleted and the status is the failure (STRATA_EUNAVAILABLE, STRATA_ETIMEDOUT,
 * STRATA_EREADONLY), never STRATA_OK_L1_ONLY; without a shared tier, L1's delete. */
int strata__tt_del_strict(strata_cache *c, tier t, const strata_key *k, uint64_t now,
                          strata_done_cb cb, void *arg);

/* A random non-zero 64-bit value (tag versions). */
uint64_t strata__tt_random(strata_cache *c);

/* Test hook: called after a Redis read returns and before its value is judged and promoted,
 * so a test can land an invalidation exactly inside that window. NULL in production. */
extern void (*strata__test_after_l2_read)(void *arg);
extern void *strata__test_arg;

#endif
