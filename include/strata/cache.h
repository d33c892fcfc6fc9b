/* cache.h: the two-tier cache, and libstrata's asynchronous calling convention.
 *
 * strata_cache is what applications use: a memory tier (L1) in front of the shared tier (L2,
 * Redis; until it is configured, or while it is down, the cache runs on L1 alone). It owns the
 * key prefix and the namespace settings; every call takes a strata_key.
 *
 * Two ways to call it:
 * - synchronous (strata_cache_get, ...): for C programs; may wait on the shared tier, never
 *   longer than its configured timeouts.
 * - asynchronous (strata_cache_get_async, ...): for event loops; never blocks. Each thread that
 *   runs a libevent loop opens its own strata_loop on its event_base and issues calls there.
 *
 * The asynchronous convention, which every async call in libstrata follows:
 * 1. A call returns an int. STRATA_OK (or STRATA_OK_L1_ONLY) means it completed during the call
 *    (an L1 hit, a write with no shared tier): the result is in the out-parameters and the
 *    callback is NOT called. STRATA_PENDING means the callback will be called exactly once, later,
 *    on the loop's thread, from the loop. A negative code means the call failed: nothing is
 *    pending and the callback is never called.
 * 2. A callback gets (status, result, arg): status as the synchronous call would return it,
 *    result owned by the callback from then on (a strata_value to release; NULL on failure).
 * 3. Cancelling is freeing the loop: strata_loop_free() calls every pending callback with
 *    STRATA_ETIMEDOUT before it returns, so no user data is left dangling.
 * 4. Arguments (keys, values, options) are copied before the call returns; the caller may free
 *    them at once.
 */
#ifndef STRATA_CACHE_H
#define STRATA_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include <strata/key.h>
#include <strata/l1.h>
#include <strata/stats.h>
#include <strata/value.h>

#ifdef __cplusplus
extern "C" {
#endif

struct event_base;

typedef struct strata_cache strata_cache;
typedef struct strata_loop strata_loop;

typedef struct strata_cache_config {
    strata_l1_config l1; /* the memory tier (its prefix is the cache's prefix) */
} strata_cache_config;

/* Fills cfg with defaults, reading the environment (STRATA_L1_MAX_MEMORY, STRATA_PREFIX).
 * Returns 0 or the first malformed variable's error (STRATA_ERANGE, STRATA_EBADNAME). */
int strata_cache_config_init(strata_cache_config *cfg);

/* Creates a cache; *out owns it until strata_cache_free(). Returns the errors of strata_l1_new. */
int strata_cache_new(const strata_cache_config *cfg, strata_cache **out);

/* Frees the cache. Every strata_loop on it must be freed first. NULL is a no-op. */
void strata_cache_free(strata_cache *c);

/* The memory tier, for namespace settings, stats and maintenance; owned by the cache. */
strata_l1 *strata_cache_l1(strata_cache *c);

/* Synchronous calls: the same contracts as the strata_l1_* calls of the same name, across both
 * tiers. A write answers STRATA_OK when both tiers hold it and STRATA_OK_L1_ONLY when only the
 * memory tier could (no shared tier, or it is down or read-only). */
int strata_cache_get(strata_cache *c, const strata_key *k, strata_value **out);
int strata_cache_set(strata_cache *c, const strata_key *k, const void *value, size_t len,
                     const strata_set_opts *opts);
int strata_cache_del(strata_cache *c, const strata_key *k);

/* ---- asynchronous calls ------------------------------------------------------------------ */

/* Opens the cache on a libevent base owned by the calling thread. *out is used only from that
 * thread. Returns 0 or STRATA_ENOMEM. */
int strata_loop_new(strata_cache *c, struct event_base *base, strata_loop **out);

/* Fails every pending call (STRATA_ETIMEDOUT to its callback), then frees. NULL is a no-op. */
void strata_loop_free(strata_loop *lp);

typedef void (*strata_get_cb)(int status, strata_value *v, void *arg);
typedef void (*strata_done_cb)(int status, void *arg);

/* Reads k. STRATA_OK: *out holds the value (caller releases). STRATA_ENOTFOUND: a miss known at
 * once. STRATA_PENDING: cb(status, value, arg) follows. Negative: failed, cb never called.
 *
 *     strata_value *v;
 *     int rc = strata_cache_get_async(lp, &k, on_value, req, &v);
 *     if (rc == STRATA_OK) send(v);                 // L1 hit: no callback
 *     else if (rc != STRATA_PENDING) fail(rc);      // miss or error: no callback
 */
int strata_cache_get_async(strata_loop *lp, const strata_key *k, strata_get_cb cb, void *arg,
                           strata_value **out);

/* Writes k. STRATA_OK / STRATA_OK_L1_ONLY: done, cb not called. STRATA_PENDING: cb follows
 * with the final status. Negative: failed (nothing was written), cb never called. */
int strata_cache_set_async(strata_loop *lp, const strata_key *k, const void *value, size_t len,
                           const strata_set_opts *opts, strata_done_cb cb, void *arg);

/* Deletes k; the same convention as strata_cache_set_async. */
int strata_cache_del_async(strata_loop *lp, const strata_key *k, strata_done_cb cb, void *arg);

#ifdef __cplusplus
}
#endif
#endif
