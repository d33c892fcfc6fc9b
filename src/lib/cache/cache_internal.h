/* cache/cache_internal.h: the cache object, shared by the files of the two-tier layer
 * (cache.c, twotier.c, touch.c, soft_tag.c, loop.c) and by the features that run on a cache's
 * Redis. */
#ifndef STRATA_CACHE_INTERNAL_H
#define STRATA_CACHE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <strata/cache.h>

#include "cache/format.h"
#include "cache/tier.h"
#include "redis/client.h"

/* What a watcher hears (strata__cache_watch): which change, and the stored key it concerns. */
enum cache_watch_what {
    CACHE_WATCH_KEY = 0,   /* a key under the prefix changed in Redis (an invalidation) */
    CACHE_WATCH_LEASE = 1, /* a message on <prefix>!lease: a lease was released or filled */
    CACHE_WATCH_ALL = 2    /* anything may have changed, or changes are no longer heard (FLUSHDB,
                              the link lost or back, Redis back); key NULL */
};
typedef void (*cache_watch_fn)(int what, const char *key, size_t len, void *arg);
#define CACHE_WATCHERS_MAX 4

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
    atomic_uint_fast64_t expired_soft; /* entries Redis' copies of which a soft purge made stale */
    pthread_mutex_t rng_lock;
    uint64_t rng;
    /* Watchers of changes (the features' leases): called from the link's thread under a read
     * lock, registered under the write lock, so none runs once strata__cache_unwatch returned. */
    pthread_rwlock_t watch_lock;
    struct {
        cache_watch_fn fn;
        void *arg;
    } watchers[CACHE_WATCHERS_MAX];
};

/* Replaces how the cache reaches Redis and reads the clock, for unit tests: a fake Redis behind
 * the tier interface (ops NULL: memory only; otherwise the cache acts as one with a shared tier,
 * and events reach it through strata__cache_events) and a fake clock (NULL: keep the clock).
 * Call before any other use. */
void strata__cache_use(strata_cache *c, const tier_ops *ops, void *self, int coherent,
                       uint64_t (*clock)(void));
/* Replaces the clock alone (a test's fake, with a real Redis: stored times follow the fake clock,
 * Redis' own expiry still runs on real time). Call before any other use. */
void strata__cache_set_clock(strata_cache *c, uint64_t (*clock)(void));
/* The handlers the cache gives its Redis client (what a fake Redis raises in tests). */
redis_events strata__cache_events(strata_cache *c);

/* Hands every change the client reports (invalidations, lease messages, "everything") to
 * fn(what, key, len, arg) too, from whatever thread reports it (the link's, a test's fake): the
 * cache knows nothing of who listens (the features register here, as libuv is handed
 * callbacks). fn must not block, nor call back into the cache's watch calls. Returns 0, or
 * STRATA_ELIMIT past CACHE_WATCHERS_MAX watchers. */
int strata__cache_watch(strata_cache *c, cache_watch_fn fn, void *arg);
/* Removes the watcher (fn, arg); once it returns, fn is not running and will not run. */
void strata__cache_unwatch(strata_cache *c, cache_watch_fn fn, void *arg);

/* The event loop a strata_loop runs on (for features that arm events on it). */
struct event_base *strata__loop_base(strata_loop *lp);

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
