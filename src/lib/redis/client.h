/* redis/client.h: strata's one Redis client, the owner of everything about Redis.
 *
 * Its connections (the synchronous pool here, each event loop's pipelined connections in
 * redis/pipe.c, the invalidation links in redis/link.c), the handshake before any command, the
 * deadlines, reconnects, the circuit breaker and the read-only state all belong to it. Callers
 * (the two-tier cache, touch, rate limits, and next the leases) send commands and get replies or
 * a failure; they never see a connection, never feed the breaker, and learn what happened to
 * Redis as a whole through the events they registered (redis_events), not through flags
 * returned from every call.
 *
 * hiredis is used for what it does well, the RESP reader (commands are formatted by cmd.c); the
 * client owns every socket: the pool's and the link's (redis/sock.c, for threads that may wait)
 * and each loop's pipelined connections (redis/pipe.c, on libevent events, routed by
 * redis/conn.c), plain or TLS (redis/tls.c).
 */
#ifndef STRATA_REDIS_CLIENT_H
#define STRATA_REDIS_CLIENT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>
#include <strata/cache.h>

#include "redis/breaker.h"
#include "redis/cluster_map.h"
#include "redis/cmd.h"
#include "redis/redis_url.h"

typedef struct redis_client redis_client;

/* What the client tells its owner. Each may be called from any thread (a synchronous caller's,
 * an event loop's, the link's), so handlers must be thread-safe; NULL members are skipped. */
typedef struct redis_events {
    /* Redis answered again after the breaker had opened: what was kept meanwhile may be stale. */
    void (*recovered)(void *arg);
    /* The invalidation link is subscribed (again). Called before link_up() turns true, so the
     * owner can drop what it kept while nobody told it of changes. */
    void (*link_up)(void *arg);
    /* A key under the tracked prefix changed in Redis; key NULL: everything (FLUSHDB). */
    void (*invalidated)(const char *key, size_t len, void *arg);
    /* A message on <prefix>!lease (a lease was released or filled): the value's stored key.
     * From the link's thread. */
    void (*lease_message)(const char *key, size_t len, void *arg);
    /* The invalidation link was lost: changes are not heard until link_up. From the link's
     * thread. */
    void (*link_down)(void *arg);
    void *arg;
} redis_events;

/* Creates the client for cfg (url already parsed, or made by strata__sentinel_url when
 * cfg->sentinels is set: the sentinel watcher then names the primary). With
 * track_prefix (e.g. "strata:"), it also starts the invalidation link for keys under it.
 * Connects lazily: an unreachable Redis is normal operation. Returns 0, STRATA_ENOMEM or
 * STRATA_ETHREAD. */
int strata__redis_new(const strata_redis_config *cfg, const redis_url *url,
                      const char *track_prefix, const redis_events *ev, strata_log_fn log,
                      void *log_arg, redis_client **out);
/* Stops the link, closes the pool. Every redis_conn on it must be freed first. NULL: no-op. */
void strata__redis_free(redis_client *cl);

/* ---- synchronous calls (the pool) --------------------------------------------------------- */

/* Runs n commands pipelined on one pooled connection. Returns 0 with replies[i] set (the caller
 * frees each with freeReplyObject; any may be an error reply), STRATA_EUNAVAILABLE (breaker open,
 * cannot connect) or STRATA_ETIMEDOUT; on failure no reply is returned. */
int strata__redis_run(redis_client *cl, const redis_cmd *cmds, size_t n, redisReply **replies);

/* PING on the one Redis, or on every primary of a cluster, one after the other: each node's
 * round trip is kept for strata__redis_nodes, *latency_us is the longest. Returns 0, or the first
 * failure (the other nodes are still asked). */
int strata__redis_ping(redis_client *cl, uint64_t *latency_us);

/* Keeps a ping's round trip to node (-1: the one Redis or the sentinels' primary). */
void strata__redis_note_latency(redis_client *cl, int node, uint64_t us);
/* The nodes a whole-keyspace walk or a ping visits into out (CLUSTER_PRIMARIES entries): -1 (the
 * one Redis), or every primary of a cluster. Returns how many, 0 while a cluster's map is not
 * known. */
unsigned strata__redis_walk_nodes(redis_client *cl, int *out);

/* Runs cmd (without a key: FLUSHDB) on the one Redis, or on every primary of a cluster. Returns 0
 * with *reply (the caller frees it: the first error reply if a node refused, else the last
 * answer), or a failure as strata__redis_run (some nodes may have run it). */
int strata__redis_run_every(redis_client *cl, const redis_cmd *cmd, redisReply **reply);

/* SCAN MATCH pattern over the whole keyspace (every primary of a cluster), UNLINKing in batches
 * the keys keep() accepts.
 * Sets *removed. Returns 0, STRATA_EREADONLY, STRATA_EPROTO or a failure as strata__redis_run. */
int strata__redis_scan_unlink(redis_client *cl, const char *pattern,
                              int (*keep)(const char *, size_t, void *), void *arg,
                              size_t *removed);

/* One SCAN page from cursor: calls each() for every key and sets next (the cursor after it, "0"
 * when done) and *found. A cluster's cursor also says which primary the walk is on. Returns 0 or a
 * failure as strata__redis_run. */
int strata__redis_scan_page(redis_client *cl, const char *cursor, const char *pattern,
                            const char *count, int (*each)(const char *, size_t, void *), void *arg,
                            char *next, size_t next_cap, size_t *found);

/* ---- state -------------------------------------------------------------------------------- */

/* May a call go to Redis now (the breaker)? Exactly one caller gets yes as the probe while it is
 * open; that caller must then send, so its outcome is reported. */
int strata__redis_allow(redis_client *cl);
/* Whether writes are skipped (forced, or a replica / a READONLY reply was seen). */
int strata__redis_readonly(redis_client *cl);
/* The breaker is open: Redis is known down. */
int strata__redis_down(redis_client *cl);
/* Every change under the tracked prefix reaches the owner (the link is subscribed and answered
 * its last keep-alive in time). 0 without a link. */
int strata__redis_link_up(redis_client *cl);

/* Counters and state for stats (strata_l2_stats's Redis part). */
typedef struct redis_state {
    const char *breaker; /* static */
    int available, readonly, link_up;
    uint64_t breaker_opens, invalidations, link_drops;
    char last_error[128];
    const char *topology; /* "single", "sentinel" or "cluster" (static) */
    int tls;
    char primary[300]; /* the target as named, "host:port"; "" while none is known */
    unsigned nodes;    /* the nodes in use: 1 once a target is known, else 0; a cluster's
                          primaries */
} redis_state;
void strata__redis_state(redis_client *cl, redis_state *out);

const strata_redis_config *strata__redis_config(redis_client *cl);

/* The nodes the client has had as its target and the failures counted against each (every
 * strata__redis_failed, against the target of the moment): fills out[0..cap), returns how many
 * there are (strata_cache_redis_nodes). */
size_t strata__redis_nodes(redis_client *cl, strata_redis_node *out, size_t cap);

/* ---- for the client's own parts (pipe.c, conn.c, script.c) ---------------------------------- */

/* The parsed URL (credentials, db). Its host and port are not the target's (a name resolved
 * again, a primary from the sentinels): connect with strata__redis_target. */
const redis_url *strata__redis_url(redis_client *cl);
/* Where to connect now: *out the URL with the target's numeric host and port, name the name
 * to verify with TLS ("" for the context's own), *gen the target's generation. Returns 0, or
 * -1 when no target is known yet (the sentinels have not answered). */
int strata__redis_target(redis_client *cl, redis_url *out, char *name, size_t cap, uint64_t *gen);
/* The target's generation: a connection made for another one must be made again. */
uint64_t strata__redis_gen(redis_client *cl);
/* The primary is found through sentinels: every connection confirms it with ROLE. */
int strata__redis_via_sentinel(redis_client *cl);
/* A connection is being made (again): a host name is looked up again, off the loops, for the
 * next one. Never blocks. */
void strata__redis_reconnecting(redis_client *cl);
/* A connection found the target is not the primary: the sentinels are asked again. */
void strata__redis_not_primary(redis_client *cl);
/* Whether a reply to ROLE says master. */
int strata__redis_role_is_master(const redisReply *r);
/* The TLS context every connection makes its session from; NULL for plain TCP. */
const struct redis_tls *strata__redis_tls(redis_client *cl);
/* A connected, authenticated connection (db selected), or NULL with the reason in errbuf. The
 * pool's and the link's. */
struct redis_sock *strata__redis_connect(redis_client *cl, char *errbuf, size_t errcap);
/* The outcome of a call: feeds the breaker (a success that closes it raises `recovered`). */
void strata__redis_succeeded(redis_client *cl);
void strata__redis_failed(redis_client *cl, const char *why);
/* Looks at a reply for what it says about the server (READONLY: a replica). */
void strata__redis_saw_reply(redis_client *cl, const redisReply *r);
/* Records a failure message for stats and health. */
void strata__redis_note_error(redis_client *cl, const char *msg);

/* ---- Redis Cluster, for the client's own parts (conn.c) ------------------------------------ */

/* MOVED / ASK hops followed for one command before its error stands. */
#define CLUSTER_REDIRECTS 5

/* Whether the client routes by slot (REDIS_CLUSTER). The rest of this part is for clusters. */
int strata__redis_is_cluster(redis_client *cl);
/* The node (an index that never changes) for c: its key's slot's primary, any primary for a
 * command without a key; -1 while no slot map names one. */
int strata__redis_cmd_node(redis_client *cl, const redis_cmd *c);
int strata__redis_any_node(redis_client *cl);
/* c's slot (its key's), or -1 for a command without a key; and the node for such a slot now, as
 * strata__redis_cmd_node says it (for a call formatted before any map named a node). */
int strata__redis_cmd_slot(const redis_cmd *c);
int strata__redis_slot_node(redis_client *cl, int key_slot);
/* How long a loop's call may wait for the cluster's first slot map: its deadline, the socket
 * timeout (as a call on a single Redis' pipe waits for the connection being made), in ms. */
unsigned strata__redis_first_map_ms(redis_client *cl);
/* Whether r, answered by node from, is a redirection: the node it names (*ask set: ASK, send
 * ASKING first; else MOVED, and the map is read again), or -1. */
int strata__redis_redirected(redis_client *cl, const redisReply *r, int from, int *ask);
/* Where node is: the URL's credentials with the node's address (the name TLS verifies). */
void strata__redis_node_target(redis_client *cl, int node, redis_url *out);
/* A connected, authenticated connection to node (the pool's), or NULL with err. */
struct redis_sock *strata__redis_connect_node(redis_client *cl, int node, char *err, size_t cap);
/* A call to node failed: as strata__redis_failed, counted against that node, and the map is
 * read again (a failover moves the node's slots). */
void strata__redis_node_failed(redis_client *cl, int node, const char *why);

#endif
