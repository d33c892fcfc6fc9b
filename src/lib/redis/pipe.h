/* redis/pipe.h: one event loop's pipelined connection to one Redis node, part of the Redis
 * client: the client's target (one Redis, or the primary the sentinels name), or one node of a
 * cluster. redis/conn.c routes a loop's calls to its pipes.
 *
 * Every call made on a loop is pipelined on its one connection, so a hundred concurrent requests
 * cost one socket and no thread ever waits. The connection owns its socket, on libevent events,
 * and uses hiredis only to parse replies (cmd.c formats commands), so hiredis 0.14's
 * traps are gone by construction: no blocking name resolution (the client's target is a
 * numeric address, resolved on another thread), deadlines of our own (replies come in order, so the
 * oldest call's deadline is the only one to watch), no disconnect that waits forever, replies that
 * live until the callback returns.
 *
 * The queue is bounded (max_pending calls in flight): past it a call waits, unsent, for room
 * (back-pressure, never a failure by itself); only a Redis that does not answer within the
 * socket timeout, refuses the handshake or drops the connection fails calls.
 */
#ifndef STRATA_REDIS_PIPE_H
#define STRATA_REDIS_PIPE_H

#include <stddef.h>

#include "redis/client.h"

struct event_base;
typedef struct redis_pipe redis_pipe;

/* A batch's outcome: status 0 with replies[0..n) (valid only during the callback; copy what must
 * outlive it, or take a reply by setting replies[i] to NULL and free it yourself; any may be an
 * error reply), or a failure with replies NULL: STRATA_ETIMEDOUT (no
 * answer within the socket timeout, or the connection was freed), STRATA_EUNAVAILABLE (the
 * connection failed or Redis refused its handshake). */
typedef void (*redis_reply_cb)(int status, redisReply **replies, size_t n, void *arg);

/* Opens the connection object on base (used only from base's thread), to cluster node node, or
 * with node -1 to the client's target. It connects when the first call comes. Returns 0 or
 * STRATA_ENOMEM. */
int strata__pipe_new(redis_client *cl, struct event_base *base, int node, redis_pipe **out);

/* Closes the connection: every call still in it gets STRATA_ETIMEDOUT. NULL is a no-op. */
void strata__pipe_free(redis_pipe *c);

/* Sends n commands (n >= 1), pipelined, as one call: cb follows once, with all n
 * replies. Arguments are copied before this returns. Returns STRATA_PENDING, or
 * STRATA_EUNAVAILABLE (the breaker is open, or no connection could be started) or STRATA_ENOMEM,
 * and then cb is never called. */
int strata__pipe_send(redis_pipe *c, const redis_cmd *cmds, size_t n, redis_reply_cb cb, void *arg);

/* The same with the commands already formatted: resp (len bytes, n commands, from malloc) is the
 * pipe's from now on, whatever the outcome. */
int strata__pipe_send_raw(redis_pipe *c, char *resp, size_t len, size_t n, redis_reply_cb cb,
                          void *arg);

#endif
