/* redis/conn.h: one event loop's pipelined connection to Redis, part of the Redis client.
 *
 * Every call made on a loop is pipelined on its one connection, so a hundred concurrent requests
 * cost one socket and no thread ever waits. The connection owns its socket, on libevent events,
 * and uses hiredis only to format commands and parse replies, so hiredis 0.14's
 * traps are gone by construction: no blocking name resolution (the client's target is a
 * numeric address, resolved on another thread), deadlines of our own (replies come in order, so the
 * oldest call's deadline is the only one to watch), no disconnect that waits forever, replies that
 * live until the callback returns.
 *
 * The queue is bounded (max_pending calls in flight): past it a call waits, unsent, for room
 * (back-pressure, never a failure by itself); only a Redis that does not answer within the
 * socket timeout, refuses the handshake or drops the connection fails calls.
 */
#ifndef STRATA_REDIS_CONN_H
#define STRATA_REDIS_CONN_H

#include <stddef.h>

#include "redis/client.h"

struct event_base;
typedef struct redis_conn redis_conn;

/* A batch's outcome: status 0 with replies[0..n) (valid only during the callback; copy what must
 * outlive it; any may be an error reply), or a failure with replies NULL: STRATA_ETIMEDOUT (no
 * answer within the socket timeout, or the connection was freed), STRATA_EUNAVAILABLE (the
 * connection failed or Redis refused its handshake). */
typedef void (*redis_reply_cb)(int status, redisReply **replies, size_t n, void *arg);

/* Opens the connection object on base (used only from base's thread). It connects when the first
 * call comes. Returns 0 or STRATA_ENOMEM. */
int strata__conn_new(redis_client *cl, struct event_base *base, redis_conn **out);

/* Closes the connection: every call still in it gets STRATA_ETIMEDOUT. NULL is a no-op. */
void strata__conn_free(redis_conn *c);

/* Sends n commands (n >= 1), pipelined, as one call: cb follows once, with all n
 * replies. Arguments are copied before this returns. Returns STRATA_PENDING, or
 * STRATA_EUNAVAILABLE (the breaker is open, or no connection could be started) or STRATA_ENOMEM,
 * and then cb is never called. */
int strata__conn_send(redis_conn *c, const redis_cmd *cmds, size_t n, redis_reply_cb cb, void *arg);

/* The client this connection belongs to. */
redis_client *strata__conn_client(redis_conn *c);

/* 1 while strata__conn_free is failing the calls: nobody waits for their answers any more. */
int strata__conn_closing(redis_conn *c);

#endif
