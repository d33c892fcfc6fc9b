/* l2.h: the shared tier's synchronous client: a pool of hiredis connections behind a breaker. */
#ifndef STRATA_L2_H
#define STRATA_L2_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>
#include <strata/cache.h>

#include "redis/breaker.h"
#include "redis/l2_cmd.h"
#include "redis/redis_url.h"

typedef struct l2 l2;

int strata__l2_new(const strata_redis_config *cfg, const redis_url *url, strata_log_fn log,
                   void *log_arg, l2 **out);
void strata__l2_free(l2 *l);

/* A connected, authenticated context with the configured timeouts (db selected), or NULL with
 * the reason in errbuf. Used by the pool and by the invalidation link. */
redisContext *strata__l2_connect(l2 *l, char *errbuf, size_t errcap);

/* Runs one command on a pooled connection. Returns 0 with *reply set (caller frees with
 * freeReplyObject; it may be an error reply), or STRATA_EUNAVAILABLE (breaker open, cannot
 * connect), STRATA_ETIMEDOUT. Failures and successes feed the breaker; a READONLY error reply
 * marks the tier read-only. *recovered (may be NULL) is set when this call closed an open
 * breaker. */
int strata__l2_run(l2 *l, const l2_cmd *cmd, redisReply **reply, int *recovered);

/* Runs several commands on one connection, pipelined. replies[i] as above; on failure none are
 * returned. */
int strata__l2_run_many(l2 *l, const l2_cmd *cmds, size_t n, redisReply **replies, int *recovered);

/* SCAN MATCH pattern over the whole keyspace, UNLINKing in batches the keys keep() accepts.
 * Sets *removed. Returns 0 or a failure as strata__l2_run. */
int strata__l2_scan_unlink(l2 *l, const char *pattern, int (*keep)(const char *, size_t, void *),
                           void *arg, size_t *removed);

/* One SCAN page from cursor: calls each() for every key and sets next (the cursor after it, "0"
 * when done) and *found. Returns 0 or a failure as strata__l2_run. */
int strata__l2_scan_page(l2 *l, const char *cursor, const char *pattern, const char *count,
                         int (*each)(const char *, size_t, void *), void *arg, char *next,
                         size_t next_cap, size_t *found);

/* Whether writes are skipped (forced, or a replica / READONLY reply was seen). */
int strata__l2_readonly(l2 *l);

/* Calls fail fast while the breaker is open. */
breaker *strata__l2_breaker(l2 *l);

/* A line to the cache's log (level 0 error, 1 warning, 2 info). */
void strata__l2_log(l2 *l, int level, const char *msg);

/* Records a failure message for stats and health. */
void strata__l2_note_error(l2 *l, const char *msg);
void strata__l2_last_error(l2 *l, char *out, size_t cap);

/* The configuration as given (for the async connections and the link). */
const strata_redis_config *strata__l2_config(l2 *l);

/* The parsed URL; host is already resolved to a numeric address when it was a name (resolved once
 * at creation, so an event loop never blocks in getaddrinfo). */
const redis_url *strata__l2_url(l2 *l);

/* Records the outcome of a call made elsewhere (the async connections). Returns 1 when this
 * success closed an open breaker. */
int strata__l2_succeeded(l2 *l);
void strata__l2_failed(l2 *l, const char *why);
/* Asks a read-only Redis again whether it is still a replica (a failover may have promoted it),
 * at most every 2 s; a no-op otherwise. Blocks up to the socket timeout: call it from a thread
 * that may wait (the invalidation link's), never an event loop. */
void strata__l2_recheck_role(l2 *l);

/* 1 unless the last call to Redis failed. */
int strata__l2_last_ok(l2 *l);

/* A reply that says the server is read-only. */
void strata__l2_saw_readonly(l2 *l);

#endif
