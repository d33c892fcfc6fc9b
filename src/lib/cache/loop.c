/* cache/loop.c: strata_loop: the cache's asynchronous calls on an event loop, for servers.
 *
 * Each loop owns one pipelined Redis connection (redis/conn.c) on its libevent base; every call
 * made on the loop goes through it, so a hundred concurrent requests cost one connection and no
 * thread ever waits. The calls are the two-tier logic of cache/twotier.c and cache/touch.c over
 * that connection, following cache.h's convention: a call answers at once when it can (an L1
 * hit, Redis known down, a bad argument) and otherwise returns STRATA_PENDING and calls back
 * exactly once.
 */
#include <stdlib.h>

#include <strata/errors.h>

#include "cache/cache_internal.h"
#include "cache/touch.h"
#include "cache/twotier.h"
#include "redis/conn.h"

struct strata_loop {
    strata_cache *cache;
    redis_conn *conn; /* NULL: no Redis client (memory only, or a test's fake tier) */
    tier t;           /* how this loop's calls reach Redis */
};

int strata_loop_new(strata_cache *c, struct event_base *base, strata_loop **out)
{
    *out = NULL;
    if (c == NULL || base == NULL)
        return STRATA_EINVAL;
    strata_loop *lp = calloc(1, sizeof *lp);
    if (lp == NULL)
        return STRATA_ENOMEM;
    lp->cache = c;
    lp->t = c->pool; /* memory only (ops NULL), or a test's fake shared by its loops */
    if (c->redis != NULL) {
        int rc = strata__conn_new(c->redis, base, &lp->conn);
        if (rc != 0) {
            free(lp);
            return rc;
        }
        lp->t = (tier){&strata__tier_conn, lp->conn};
    }
    *out = lp;
    return 0;
}

void strata_loop_free(strata_loop *lp)
{
    if (lp == NULL)
        return;
    strata__conn_free(lp->conn); /* every pending call gets STRATA_ETIMEDOUT */
    free(lp);
}

tier strata__loop_tier(strata_loop *lp)
{
    return lp->t;
}

int strata_cache_get_async(strata_loop *lp, const strata_key *k, strata_get_cb cb, void *arg,
                           strata_value **out)
{
    strata_cache *c = lp->cache;
    return strata__tt_get(c, lp->t, k, c->clock(), cb, arg, out);
}

int strata_cache_set_async(strata_loop *lp, const strata_key *k, const void *value, size_t len,
                           const strata_set_opts *opts, strata_done_cb cb, void *arg)
{
    strata_cache *c = lp->cache;
    return strata__tt_set(c, lp->t, k, value, len, opts, c->clock(), cb, arg);
}

int strata_cache_del_async(strata_loop *lp, const strata_key *k, strata_done_cb cb, void *arg)
{
    strata_cache *c = lp->cache;
    return strata__tt_del(c, lp->t, k, c->clock(), cb, arg);
}

int strata_cache_del_strict_async(strata_loop *lp, const strata_key *k, strata_done_cb cb,
                                  void *arg)
{
    strata_cache *c = lp->cache;
    return strata__tt_del_strict(c, lp->t, k, c->clock(), cb, arg);
}

int strata_cache_touch_async(strata_loop *lp, const strata_key *k, uint64_t ttl_ms,
                             strata_done_cb cb, void *arg)
{
    strata_cache *c = lp->cache;
    return strata__touch(c, lp->t, k, ttl_ms, c->clock(), cb, arg);
}
