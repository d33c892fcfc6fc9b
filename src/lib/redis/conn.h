/* redis/conn.h: one event loop's way to Redis, part of the Redis client: every call made on a
 * loop goes through it, to the loop's pipelined connection (redis/pipe.c) to the one Redis, or
 * on a Redis Cluster to the pipe of the node each command's key belongs to.
 *
 * A call is a batch of commands and gets one callback with every reply, in its order, whatever
 * the nodes they went to; MOVED and ASK are followed here, so a caller never sees a cluster.
 */
#ifndef STRATA_REDIS_CONN_H
#define STRATA_REDIS_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "redis/client.h"
#include "redis/pipe.h"

struct event_base;
typedef struct redis_conn redis_conn;

/* Opens the loop's connection object on base (used only from base's thread); nothing connects
 * before the first call. Returns 0 or STRATA_ENOMEM. */
int strata__conn_new(redis_client *cl, struct event_base *base, redis_conn **out);

/* Closes it: every call still in it gets STRATA_ETIMEDOUT. NULL is a no-op. */
void strata__conn_free(redis_conn *c);

/* Sends n commands (n >= 1), pipelined per node, as one call: cb follows once, with all n
 * replies (as redis_reply_cb says). Arguments are copied before this returns. Returns
 * STRATA_PENDING, or STRATA_EUNAVAILABLE (the breaker is open, no connection could be started,
 * no cluster slot map yet) or STRATA_ENOMEM, and then cb is never called. */
int strata__conn_send(redis_conn *c, const redis_cmd *cmds, size_t n, redis_reply_cb cb, void *arg);

/* PINGs every node in use (the one Redis, or each primary of a cluster) from this loop; each
 * node's round trip is kept by the client (strata__redis_nodes). cb follows once with 0 and the
 * longest round trip, or the first failure. Returns STRATA_PENDING, or a failure (cb never
 * called). */
typedef void (*redis_ping_cb)(int status, uint64_t latency_us, void *arg);
int strata__conn_ping(redis_conn *c, redis_ping_cb cb, void *arg);

/* The client this connection belongs to. */
redis_client *strata__conn_client(redis_conn *c);

/* 1 while strata__conn_free is failing the calls: nobody waits for their answers any more. */
int strata__conn_closing(redis_conn *c);

#endif
