/* cache/tier.h: what the two-tier logic needs from Redis, as a table of functions.
 *
 * The same two-tier code (cache/twotier.c) runs the synchronous calls over the client's pool and
 * the asynchronous ones over a loop's pipelined connection, and unit tests run it over a fake
 * Redis: each is a tier. A tier's send either fails at once (cb never called) or returns
 * STRATA_PENDING and calls cb exactly once, which a synchronous tier does before send returns.
 * Code that sends must therefore not touch its operation after a STRATA_PENDING.
 */
#ifndef STRATA_CACHE_TIER_H
#define STRATA_CACHE_TIER_H

#include <stddef.h>

#include "redis/conn.h"
#include "redis/script.h"

typedef struct tier_ops {
    /* n commands as one batch (redis/conn.h's contract). */
    int (*send)(void *self, const redis_cmd *cmds, size_t n, redis_reply_cb cb, void *arg);
    /* a script, EVALSHA then EVAL on NOSCRIPT (redis/script.h's contract). */
    int (*script)(void *self, redis_script *s, int nargs, const char **args, const size_t *lens,
                  redis_reply_cb cb, void *arg);
    int (*readonly)(void *self); /* writes are skipped */
    int (*down)(void *self);     /* known down: the breaker is open */
    int (*closing)(void *self);  /* failures now mean "nobody waits", not "Redis failed" */
    int (*link_up)(void *self);  /* every change in Redis reaches L1 (the invalidation link) */
    /* PING every node in use, each one's round trip kept (redis/conn.h's strata__conn_ping);
     * NULL (a fake): a PING through send. */
    int (*ping)(void *self, redis_ping_cb cb, void *arg);
    int inline_answers; /* every send answers before it returns (the pool) */
} tier_ops;

typedef struct tier {
    const tier_ops *ops;
    void *self;
} tier;

/* The client's synchronous pool (self: redis_client) and a loop's connection (self:
 * redis_conn). */
extern const tier_ops strata__tier_pool;
extern const tier_ops strata__tier_conn;

#endif
