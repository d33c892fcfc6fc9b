/* cache/tier.c: the two real tiers: the Redis client's synchronous pool, and a loop's pipelined
 * connection (cache/tier.h). */
#include <stdlib.h>

#include <strata/errors.h>

#include "cache/tier.h"

/* ---- the synchronous pool: the reply is handed over before send returns -------------------- */

static int pool_send(void *self, const redis_cmd *cmds, size_t n, redis_reply_cb cb, void *arg)
{
    redisReply *one = NULL, **replies = n == 1 ? &one : calloc(n, sizeof *replies);
    if (replies == NULL)
        return STRATA_ENOMEM;
    int rc = strata__redis_run(self, cmds, n, replies);
    if (rc == 0) {
        cb(0, replies, n, arg);
        for (size_t i = 0; i < n; i++)
            freeReplyObject(replies[i]);
    }
    if (replies != &one)
        free(replies);
    return rc == 0 ? STRATA_PENDING : rc;
}

static int pool_script(void *self, redis_script *s, int nargs, const char **args,
                       const size_t *lens, redis_reply_cb cb, void *arg)
{
    redisReply *r;
    int rc = strata__script_run(self, s, nargs, args, lens, &r);
    if (rc != 0)
        return rc;
    cb(0, &r, 1, arg);
    freeReplyObject(r);
    return STRATA_PENDING;
}

static int pool_readonly(void *self)
{
    return strata__redis_readonly(self);
}

static int pool_down(void *self)
{
    return strata__redis_down(self);
}

static int never(void *self)
{
    (void)self;
    return 0;
}

static int pool_link_up(void *self)
{
    return strata__redis_link_up(self);
}

static int pool_ping(void *self, redis_ping_cb cb, void *arg)
{
    uint64_t us;
    int rc = strata__redis_ping(self, &us);
    if (rc != 0)
        return rc;
    cb(0, us, arg);
    return STRATA_PENDING;
}

const tier_ops strata__tier_pool = {.send = pool_send,
                                    .script = pool_script,
                                    .readonly = pool_readonly,
                                    .down = pool_down,
                                    .closing = never,
                                    .link_up = pool_link_up,
                                    .ping = pool_ping,
                                    .inline_answers = 1};

/* ---- a loop's connection ------------------------------------------------------------------ */

static int conn_send(void *self, const redis_cmd *cmds, size_t n, redis_reply_cb cb, void *arg)
{
    return strata__conn_send(self, cmds, n, cb, arg);
}

static int conn_script(void *self, redis_script *s, int nargs, const char **args,
                       const size_t *lens, redis_reply_cb cb, void *arg)
{
    return strata__script_send(self, s, nargs, args, lens, cb, arg);
}

static int conn_readonly(void *self)
{
    return strata__redis_readonly(strata__conn_client(self));
}

static int conn_down(void *self)
{
    return strata__redis_down(strata__conn_client(self));
}

static int conn_closing(void *self)
{
    return strata__conn_closing(self);
}

static int conn_link_up(void *self)
{
    return strata__redis_link_up(strata__conn_client(self));
}

static int conn_ping(void *self, redis_ping_cb cb, void *arg)
{
    return strata__conn_ping(self, cb, arg);
}

const tier_ops strata__tier_conn = {.send = conn_send,
                                    .script = conn_script,
                                    .readonly = conn_readonly,
                                    .down = conn_down,
                                    .closing = conn_closing,
                                    .link_up = conn_link_up,
                                    .ping = conn_ping};
