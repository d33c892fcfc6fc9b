/* fake_redis.h: a Redis for unit tests, behind the two-tier layer's tier interface.
 *
 * It keeps keys in memory and answers the commands the two-tier logic sends (GET, SET with PX,
 * NX and GET, UNLINK), on a fake clock. It can be down (every send refused at once), stalled
 * (calls are taken, then fail as if their deadline passed), read-only (writes get READONLY), and
 * deferred (answers wait in a queue until fake_redis_flush, as a loop's connection would deliver
 * them later). Several caches may share one fake: instances sharing a Redis. What a real Redis
 * process cannot be made to do on cue (answer between two steps of a read, lose exactly one
 * message) is what it is for; tests against a real redis-server stand beside these.
 */
#ifndef STRATA_TEST_FAKE_REDIS_H
#define STRATA_TEST_FAKE_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include "cache/tier.h"

typedef struct fake_redis fake_redis;

fake_redis *fake_redis_new(void);
void fake_redis_free(fake_redis *f);

/* The tier to give a cache (strata__cache_use(c, &fake_redis_ops, f, ...)). */
extern const tier_ops fake_redis_ops;

/* The fake clock (wall-clock ms) the fakes and the caches under test read. */
extern uint64_t fake_now_ms;
uint64_t fake_clock(void);

/* Faults and modes. */
void fake_redis_down(fake_redis *f, int down);
void fake_redis_stall(fake_redis *f, int stall);
void fake_redis_readonly(fake_redis *f, int ro);
void fake_redis_link(fake_redis *f, int up);
void fake_redis_deferred(fake_redis *f, int deferred);
/* Delivers every deferred answer, in order. Returns how many calls it answered. */
int fake_redis_flush(fake_redis *f);

/* What it holds and what it was asked. */
int fake_redis_has(fake_redis *f, const char *key);
void fake_redis_put(fake_redis *f, const char *key, const char *val, size_t len);
unsigned long fake_redis_commands(fake_redis *f, const char *name); /* "GET", "SET", ... */

#endif
