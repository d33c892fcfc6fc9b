/* cache/loop.c: strata_loop: the cache's asynchronous calls on an event loop, for servers.
 *
 * Each loop owns one pipelined Redis connection (redis/conn.c) on its libevent base; every call
 * made on the loop goes through it, so a hundred concurrent requests cost one connection and no
 * thread ever waits. The calls are the two-tier logic of cache/twotier.c and cache/touch.c over
 * that connection, following cache.h's convention: a call answers at once when it can (an L1
 * hit, Redis known down, a bad argument) and otherwise returns STRATA_PENDING and calls back
 * exactly once. Ping and INFO go through the same connection, so a health check measures the
 * path the loop's requests take and never waits for a thread.
 */
#include <stdlib.h>

#include <strata/errors.h>

#include "cache/cache_internal.h"
#include "core/clock.h"
#include "cache/touch.h"
#include "cache/twotier.h"
#include "redis/conn.h"

struct strata_loop {
    strata_cache *cache;
    struct event_base *base;
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
    lp->base = base;
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

struct event_base *strata__loop_base(strata_loop *lp)
{
    return lp->base;
}

int strata_cache_get_async(strata_loop *lp, const strata_key *k, strata_get_cb cb, void *arg,
                           strata_value **out)
{
    strata_cache *c = lp->cache;
    return strata__tt_get(c, lp->t, k, c->clock(), cb, arg, out);
}

int strata_cache_get_stale_async(strata_loop *lp, const strata_key *k, strata_get_cb cb, void *arg,
                                 strata_value **out)
{
    strata_cache *c = lp->cache;
    return strata__tt_get_ex(c, lp->t, k, c->clock(), 1, cb, arg, out);
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

int strata_cache_expire_async(strata_loop *lp, const strata_key *k, strata_done_cb cb, void *arg)
{
    strata_cache *c = lp->cache;
    return strata__expire(c, lp->t, k, c->clock(), cb, arg);
}

/* ---- ping and INFO ------------------------------------------------------------------------ */

typedef struct probe {
    strata_ping_cb ping; /* one of the two */
    strata_info_cb info;
    void *arg;
    uint64_t start_us;
} probe;

static void on_probe(int status, redisReply **replies, size_t n, void *arg)
{
    probe *p = arg;
    strata_redis_info info;
    if (p->ping != NULL) {
        uint64_t took = strata__mono_us() - p->start_us;
        p->ping(status, status == 0 ? took : 0, p->arg);
    } else {
        if (status == 0)
            status = n == 1 ? strata__redis_info_parse(replies[0], &info) : STRATA_EPROTO;
        p->info(status, status == 0 ? &info : NULL, p->arg);
    }
    free(p);
}

static int probe_send(strata_loop *lp, const redis_cmd *cmd, probe *p)
{
    if (p == NULL)
        return STRATA_ENOMEM;
    if (lp->t.ops == NULL) { /* memory only */
        free(p);
        return STRATA_EUNAVAILABLE;
    }
    p->start_us = strata__mono_us();
    int rc = lp->t.ops->send(lp->t.self, cmd, 1, on_probe, p);
    if (rc != STRATA_PENDING)
        free(p); /* failed at once: on_probe is never called */
    return rc;
}

int strata_cache_ping_async(strata_loop *lp, strata_ping_cb cb, void *arg)
{
    if (lp->t.ops != NULL && lp->t.ops->ping != NULL) /* every node, each one's time kept */
        return lp->t.ops->ping(lp->t.self, cb, arg);
    redis_cmd cmd = {.argc = 1, .argv = {"PING"}, .argvlen = {4}};
    probe *p = calloc(1, sizeof *p);
    if (p != NULL)
        p->ping = cb, p->arg = arg;
    return probe_send(lp, &cmd, p);
}

int strata_cache_redis_info_async(strata_loop *lp, strata_info_cb cb, void *arg)
{
    redis_cmd cmd = {.argc = 2, .argv = {"INFO", "everything"}, .argvlen = {4, 10}};
    probe *p = calloc(1, sizeof *p);
    if (p != NULL)
        p->info = cb, p->arg = arg;
    return probe_send(lp, &cmd, p);
}
