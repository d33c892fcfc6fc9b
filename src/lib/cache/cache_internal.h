/* cache_internal.h: what the synchronous (cache.c) and asynchronous (cache_async.c) halves of the
 * two-tier cache share: the cache itself and the steps both paths take, so they cannot disagree
 * on what a Redis reply means or when L1 may keep a value. */
#ifndef STRATA_CACHE_INTERNAL_H
#define STRATA_CACHE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <strata/cache.h>

#include "redis/coherence.h"
#include "cache/format.h"
#include "redis/l2.h"

struct strata_cache {
    strata_l1 *l1;
    l2 *l2;          /* NULL: no shared tier */
    coherence *link; /* NULL: coherence off (L1 then holds only L1-only writes) */
    strata_log_fn log;
    void *log_arg;
    atomic_uint_fast64_t hits, misses, errors, fallbacks;
    pthread_mutex_t rng_lock;
    uint64_t rng;
    struct rl_state *rl;
};

/* May L1's copies of shared keys be served? Only while every invalidation reaches us. */
int strata__cache_l1_trusted(strata_cache *c);
/* Is the breaker open (Redis known down)? */
int strata__cache_l2_down(strata_cache *c);
/* After a call that closed an open breaker: drop L1, which may have missed writes. */
void strata__cache_recovered(strata_cache *c, int recovered);
/* A random non-zero 64-bit value (tag versions). */
uint64_t strata__cache_random(strata_cache *c);
/* Is rc a failure of Redis (as opposed to an answer or a bad argument)? */
int strata__cache_failure(int rc);

/* Given an entry read from Redis and the current versions of its tags (have[i] for f->tags[i];
 * 0 for a missing one), returns the value to serve (*out, the caller's reference) or
 * STRATA_ENOTFOUND, and keeps it in L1 when L1 is trusted and the key's ticket has not moved. */
int strata__cache_judge(strata_cache *c, const strata_key *k, const format_view *f,
                        const uint64_t *have, uint64_t ticket, strata_value **out);

/* Encodes a prepared entry for Redis: *blob (caller frees), its length, and the PX to give it.
 * Returns 0, 1 (already past its deadline: nothing to store) or STRATA_ENOMEM. */
int strata__cache_encode(struct strata_value *e, uint64_t now, char **blob, size_t *blen,
                         uint64_t *px);

/* Completes a write once Redis answered l2rc: keeps e in L1 as the rules say, consumes the
 * caller's reference to e, and returns the write's status (0, STRATA_OK_L1_ONLY, STRATA_EEXISTS,
 * or an error). */
int strata__cache_finish_set(strata_cache *c, struct strata_value *e, unsigned flags, uint64_t now,
                             uint64_t ticket, int l2rc);

/* Sends one command on the loop's pipelined connection (deadlines and the queue bound apply).
 * Returns STRATA_PENDING: cb(reply, arg) follows exactly once, with NULL when Redis failed or the
 * loop is freed (the reply is freed after cb returns); or STRATA_EUNAVAILABLE (no Redis, breaker
 * open, queue full), cb never called. Used by the rate limiter. */
int strata__loop_send(strata_loop *lp, const l2_cmd *cmd,
                      void (*cb)(const redisReply *r, void *arg), void *arg);
strata_cache *strata__loop_cache(strata_loop *lp);

/* The rate limiter's state (ratelimit.c), created with the cache. */
struct rl_state *strata__rl_new(void);
void strata__rl_free(struct rl_state *rl);

#endif
