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
/* strata__tt_get; with stale_ok, an entry past its expiry but still kept (within its grace or
 * stale-if-error window) is answered too, with STRATA_OK_STALE (strata_cache_get_stale). */
int strata__tt_get_ex(strata_cache *c, tier t, const strata_key *k, uint64_t now, int stale_ok,
                      strata_get_cb cb, void *arg, strata_value **out);
int strata__tt_set(strata_cache *c, tier t, const strata_key *k, const void *value, size_t len,
                   const strata_set_opts *opts, uint64_t now, strata_done_cb cb, void *arg);
/* A write that Redis takes through a script instead of SET (a lease's fill: features/lease.c):
 * the entry is built exactly as strata__tt_set builds it (TTL rules, jitter, tag versions, the
 * stored format), then sent as EVALSHA with KEYS = the entry's key, keys[0..nkeys); ARGV = the
 * encoded entry, its PX in ms ("0": no expiry), args[0..nargs). The script answers 1 when it
 * stored the entry (then L1 links it, as after a SET) and 0 when it refused: the write's status
 * is then `refused` and L1 is left as it was (2, where the script has that answer: `superseded`,
 * likewise). Redis unavailable, failing or read-only: the write
 * lands in L1 alone (STRATA_OK_L1_ONLY), as a SET's would. The strings are copied. */
typedef struct tt_script_write {
    redis_script *script;
    unsigned nkeys, nargs; /* at most 2 keys, 3 arguments */
    const char *keys[2], *args[3];
    size_t key_lens[2], arg_lens[3];
    int refused;    /* the status when the script answers 0 */
    int superseded; /* the status when it answers 2 (0: 2 is not an answer of this script) */
} tt_script_write;

int strata__tt_set_via(strata_cache *c, tier t, const strata_key *k, const void *value, size_t len,
                       const strata_set_opts *opts, const tt_script_write *via, uint64_t now,
                       strata_done_cb cb, void *arg);
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
