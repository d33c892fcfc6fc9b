/* cache/cache_internal.h: the cache object, shared by the files of the two-tier layer
 * (cache.c, twotier.c, touch.c, loop.c) and by the features that run on a cache's Redis. */
#ifndef STRATA_CACHE_INTERNAL_H
#define STRATA_CACHE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <strata/cache.h>

#include "cache/format.h"
#include "cache/tier.h"
#include "redis/client.h"

struct strata_cache {
    strata_l1 *l1;
    redis_client *redis; /* NULL: no shared tier */
    int coherent;        /* the client keeps an invalidation link (else L1 holds only L1-only
                            writes) */
    strata_log_fn log;
    void *log_arg;
    tier pool;               /* how the synchronous calls reach Redis (ops NULL: no shared tier) */
    uint64_t (*clock)(void); /* wall-clock ms: strata_now_ms, or a test's fake */
    atomic_uint_fast64_t hits, misses, errors, fallbacks;
    pthread_mutex_t rng_lock;
    uint64_t rng;
};

/* Replaces how the cache reaches Redis and reads the clock, for unit tests: a fake Redis behind
 * the tier interface (ops NULL: memory only; otherwise the cache acts as one with a shared tier,
 * and events reach it through strata__cache_events) and a fake clock (NULL: keep the clock).
 * Call before any other use. */
void strata__cache_use(strata_cache *c, const tier_ops *ops, void *self, int coherent,
                       uint64_t (*clock)(void));
/* The handlers the cache gives its Redis client (what a fake Redis raises in tests). */
redis_events strata__cache_events(strata_cache *c);

/* The thread's fallback reason (cache/reason.c): set by calls as they start (NONE) and fall
 * back, and by operations just before their callbacks. */
void strata__reason_set(int reason);
/* The reason a failure of tier t (STRATA_EUNAVAILABLE, _ETIMEDOUT, ...) gives. */
int strata__reason_of(tier t, int failure);

/* Fills *out from an INFO reply. Returns 0, or STRATA_EPROTO for a reply that is not INFO's. */
int strata__redis_info_parse(const redisReply *r, strata_redis_info *out);

/* How a loop's calls reach Redis (its pipelined connection), for the features. */
tier strata__loop_tier(strata_loop *lp);

#endif
