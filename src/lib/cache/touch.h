/* cache/touch.h: a value's times change in place, without rewriting it (touch.c): a touch starts
 * its life again from now, an expire (a soft purge) ends it now. */
#ifndef STRATA_CACHE_TOUCH_H
#define STRATA_CACHE_TOUCH_H

#include <stdint.h>

#include <strata/cache.h>

#include "cache/tier.h"

/* strata_cache_touch over tier t at time now (cache/twotier.h's calling convention). */
int strata__touch(strata_cache *c, tier t, const strata_key *k, uint64_t ttl_ms, uint64_t now,
                  strata_done_cb cb, void *arg);

/* strata_cache_expire over tier t at time now (the same convention). */
int strata__expire(strata_cache *c, tier t, const strata_key *k, uint64_t now, strata_done_cb cb,
                   void *arg);

/* The Redis half of strata_cache_expire_any: SCAN MATCH match over the whole keyspace, expiring
 * (as strata_cache_expire does) the keys keep() accepts, a batch of scripts pipelined per page.
 * Sets *expired to the number made stale. Returns 0, or a failure as strata__redis_run (or
 * strata__reply_error's for an error reply: READONLY, NOPERM). */
int strata__expire_scan(strata_cache *c, const char *match,
                        int (*keep)(const char *, size_t, void *), void *arg, uint64_t now,
                        size_t *expired);

#endif
