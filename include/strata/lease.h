/* lease.h: leases: exactly one caller among all instances sharing a Redis computes a missing value.
 *
 * A caller that misses a key asks for its lease. One caller, across every instance on the Redis,
 * gets it, with a token (128 random bits, URL-safe base64); the others hear that the lease is held
 * and for how long. The holder computes the value and fills it with its token: the value is
 * stored (exactly as strata_cache_set stores it) and the lease released in one atomic step, and
 * only while the token is still the holder's, so a holder that outlived its lease can never
 * overwrite the one that took over. A holder that dies loses its lease after lease_ms.
 *
 * In Redis a lease is one key beside the value key, in the same Redis Cluster slot (the scripts
 * run unchanged on a cluster; docs/architecture.md, "Leases"), taken with SET NX PX and released,
 * extended or filled by compare-and-act scripts. A release or a fill is published on the channel
 * "<prefix>!lease" (the message is the value's stored key), for waiters. When Redis is not
 * configured or cannot answer, leases fall back to this process: a table in the leases object
 * gives each key's lease to one caller of the process (tokens are checked there too), never an
 * error. With Redis up, Redis alone decides.
 *
 * A leases object is its own object on a cache (the cache knows nothing of it); free it before
 * the cache.
 *
 *     strata_leases *ls;
 *     strata_leases_new(cache, &ls);
 *     strata_lease_grant g;
 *     int rc = strata_lease_acquire(ls, &k, 30000, STRATA_LEASE_MISS, &g);
 *     if (rc == STRATA_OK) {                              // we compute
 *         ... compute value ...
 *         rc = strata_lease_fill(ls, &k, g.token, value, len, &opts);
 *         // 0: stored and released; STRATA_ENOTHOLDER: our lease was lost, nothing written
 *     } else if (rc == STRATA_EEXISTS) {                  // a value is there: read it
 *     } else if (rc == STRATA_EHELD) {                    // someone computes: g.held_ms left
 *     }
 *
 * Callers that do not get the lease can wait for the holder's value instead of polling:
 * strata_lease_wait (below) makes one process ask Redis once per key however many of its callers
 * want it (a flight table), and wakes them when the value is stored, the lease released, or the
 * holder's lease runs out.
 *
 *     strata_lease_wait_opts o = {.lease_ms = 30000, .wait_ms = 5000, .takeover = 1};
 *     strata_lease_answer a;
 *     switch (strata_lease_wait(ls, &k, &o, &a)) {      // after a miss
 *     case STRATA_OK:     use(a.value); strata_value_release(a.value); break;
 *     case STRATA_LEASED: compute; strata_lease_fill(ls, &k, a.grant.token, ...); break;
 *     case STRATA_EHELD:  // not available: someone still computes (a.grant.held_ms left)
 *     case STRATA_EBUSY:  // too many waiters in this process: try later
 *     }
 *
 * strata_cache_remember (remember.h: get, or compute once and fill) builds on these calls, and so
 * will the HTTP protocol (issue 13's next step).
 */
#ifndef STRATA_LEASE_H
#define STRATA_LEASE_H

#include <stddef.h>
#include <stdint.h>

#include <strata/cache.h>

#ifdef __cplusplus
extern "C" {
#endif

#define STRATA_LEASE_TOKEN_LEN 22                    /* URL-safe base64 of 128 random bits */
#define STRATA_LEASE_MAX_MS    (24ull * 3600 * 1000) /* the longest lease_ms (a day) */
/* The most leases this process holds for itself (Redis unavailable or not configured). */
#define STRATA_LEASE_LOCAL_MAX 4096
/* The most keys this process's callers wait for at once (flights), and the most callers waiting
 * (strata_lease_wait): past either a wait is refused with STRATA_EBUSY. */
#define STRATA_LEASE_FLIGHT_MAX 4096
#define STRATA_LEASE_WAIT_MAX   16384

/* What the caller of an acquire found. */
enum strata_lease_mode {
    /* The caller missed the key: a fresh value already there is answered STRATA_EEXISTS. */
    STRATA_LEASE_MISS = 0,
    /* A value is there but is to be replaced (stale, in its grace period, tag-invalidated): the
     * lease is taken whatever is stored. */
    STRATA_LEASE_REFRESH = 1
};

/* What an acquire gives. */
typedef struct strata_lease_grant {
    char token[STRATA_LEASE_TOKEN_LEN + 1]; /* STRATA_OK: the holder's token; else "" */
    uint64_t held_ms; /* STRATA_EHELD: how long the holder's lease still runs (0: unknown) */
    int local;        /* STRATA_OK: granted by this process alone (Redis unavailable or not
                         configured): other instances do not know of it */
} strata_lease_grant;

typedef struct strata_leases strata_leases;

/* Creates the leases of cache c: its Redis, its prefix; the local table is the object's own.
 * Returns 0 or STRATA_ENOMEM. */
int strata_leases_new(strata_cache *c, strata_leases **out);
/* Frees it (before its cache, after every loop call on it has answered). NULL is a no-op. */
void strata_leases_free(strata_leases *ls);

/* Takes k's lease for lease_ms (1 ms to STRATA_LEASE_MAX_MS) if nobody holds it. Returns
 *   STRATA_OK          granted: out->token is the holder's (out->local: by this process alone);
 *   STRATA_EEXISTS     STRATA_LEASE_MISS and a fresh value is stored (by its stored times: the
 *                      reader may still miss it, e.g. a tag was invalidated; a reader who then
 *                      misses asks again with STRATA_LEASE_REFRESH);
 *   STRATA_EHELD       another caller holds it, for out->held_ms more;
 *   STRATA_ELIMIT      Redis unavailable and this process already holds STRATA_LEASE_LOCAL_MAX
 *                      live leases: no lease (compute and write with a plain set);
 *   STRATA_EINVAL      (lease_ms, mode), STRATA_ENOMEM, or a key error.
 * Redis failing is never an error: the local table decides instead. */
int strata_lease_acquire(strata_leases *ls, const strata_key *k, uint64_t lease_ms, int mode,
                         strata_lease_grant *out);

/* Gives the lease up (compare-and-delete: only the holder's token does; the value is left as it
 * is). Returns 0, STRATA_ENOTHOLDER (expired, taken over, never issued: nothing changed),
 * STRATA_EINVAL (not a token's form), a key error, or, for a token Redis issued while Redis
 * cannot be asked, its failure (STRATA_EUNAVAILABLE, STRATA_ETIMEDOUT, STRATA_EREADONLY,
 * STRATA_EPROTO): the lease then expires by itself. */
int strata_lease_release(strata_leases *ls, const strata_key *k, const char *token);

/* Makes the holder's lease run lease_ms from now (compare-and-PEXPIRE). Returns as
 * strata_lease_release, and STRATA_EINVAL for lease_ms. */
int strata_lease_extend(strata_leases *ls, const strata_key *k, const char *token,
                        uint64_t lease_ms);

/* Stores value[0..len) under k (opts as strata_cache_set: TTL rules, jitter, content type, tags)
 * and releases the lease, atomically, if token is the holder's. Returns
 *   STRATA_OK          Redis took it (and the lease is released), or, for a lease this process
 *                      holds alone, the cache's answer to the write;
 *   STRATA_OK_L1_ONLY  Redis could not be asked: the value landed in this instance's L1 alone
 *                      (a lease Redis issued then expires by itself);
 *   STRATA_ENOTHOLDER  the token is not the holder's: nothing was written, the lease is as it was;
 *   STRATA_EINVAL      (not a token's form, or STRATA_SET_NX: the lease decides who writes), and
 *                      the errors of strata_cache_set (the lease then stays held).
 */
int strata_lease_fill(strata_leases *ls, const strata_key *k, const char *token, const void *value,
                      size_t len, const strata_set_opts *opts);

/* ---- on an event loop (cache.h's convention) ------------------------------------------------
 * Each call returns what was decided during the call (its status as the synchronous call would
 * return it, results in the out-parameters, cb NOT called: the local table, bad arguments), or
 * STRATA_PENDING and cb follows exactly once on the loop's thread. lp must be a loop of the
 * leases' cache. */

/* g is valid during the callback only. */
typedef void (*strata_lease_cb)(int status, const strata_lease_grant *g, void *arg);

int strata_lease_acquire_async(strata_leases *ls, strata_loop *lp, const strata_key *k,
                               uint64_t lease_ms, int mode, strata_lease_cb cb, void *arg,
                               strata_lease_grant *out);
int strata_lease_release_async(strata_leases *ls, strata_loop *lp, const strata_key *k,
                               const char *token, strata_done_cb cb, void *arg);
int strata_lease_extend_async(strata_leases *ls, strata_loop *lp, const strata_key *k,
                              const char *token, uint64_t lease_ms, strata_done_cb cb, void *arg);
int strata_lease_fill_async(strata_leases *ls, strata_loop *lp, const strata_key *k,
                            const char *token, const void *value, size_t len,
                            const strata_set_opts *opts, strata_done_cb cb, void *arg);

/* ---- when the computation fails -------------------------------------------------------------- */

/* The holder's computation failed: err[0..len) is its error result (an upstream's error body, a
 * message). What is stored decides what every waiter and reader is answered until the
 * namespace's error TTL ends, so a failing backend is asked once per error TTL, not by every
 * caller (stale-if-error and negative caching):
 *   STRATA_OK_STALE    a copy of k was still kept past its expiry (within its grace or
 *                      stale-if-error window): it is kept instead, flagged STRATA_VALUE_STALE,
 *                      fresh for the error TTL (exact) with what is left of its windows after
 *                      that; *out is that copy (the caller's to release) and every waiter is
 *                      answered it;
 *   STRATA_OK_ERROR    no such copy: err is stored flagged STRATA_VALUE_ERROR for the error TTL
 *                      (opts' ttl_ms if shorter; its content type and tags), *out NULL;
 *   STRATA_OK          a fresh value was there (written meanwhile): left as it is, the lease
 *                      released, *out is that value;
 *   STRATA_EEXISTS     a value was written between this call's read and its write: nothing
 *                      stored, the lease released;
 *   STRATA_ENOTHOLDER  the token is not the holder's: nothing changed;
 *   STRATA_EINVAL      (not a token's form, STRATA_SET_NX, tags), STRATA_ENOMEM, a key error,
 *                      or the errors of strata_cache_set for the error result.
 * The lease is released in every case but ENOTHOLDER and the argument errors. Redis failing is
 * not an error: the copy or the error result lands in this instance's L1 (strata_lease_fill),
 * and strata_fallback_reason() (cache.h), right after the call or in its callback, is then not
 * STRATA_REASON_NONE. */
int strata_lease_fail(strata_leases *ls, const strata_key *k, const char *token, const void *err,
                      size_t len, const strata_set_opts *opts, strata_value **out);

/* strata_lease_fail on a loop (cache.h's convention): cb(status, value, arg) with the value
 * *out would have held. */
int strata_lease_fail_async(strata_leases *ls, strata_loop *lp, const strata_key *k,
                            const char *token, const void *err, size_t len,
                            const strata_set_opts *opts, strata_get_cb cb, void *arg,
                            strata_value **out);

/* ---- waiting for the holder's value --------------------------------------------------------- */

/* How a caller waits. */
typedef struct strata_lease_wait_opts {
    uint64_t lease_ms; /* the lease this caller takes when it is given it (1 ms to
                          STRATA_LEASE_MAX_MS) */
    uint64_t wait_ms;  /* how long it waits for the holder's value (0 to STRATA_LEASE_MAX_MS) */
    int takeover;      /* 1: while waiting, take the lease when the holder's ends without a value
                          (it expired: the holder died or is late; it was released); 0: never
                          compute after having waited, answer STRATA_EHELD at the end instead */
} strata_lease_wait_opts;

/* What a wait gives. */
typedef struct strata_lease_answer {
    strata_value *value;      /* STRATA_OK: the value; the caller releases it */
    int coalesced;            /* STRATA_OK: it came from another caller's computation or read
                                 (HTTP: X-Cache: HIT-COALESCED), not from this caller's own first
                                 look */
    strata_lease_grant grant; /* STRATA_LEASED: the lease (token, local); STRATA_EHELD:
                                 held_ms, how long the holder's lease still ran as last heard
                                 (0: unknown, or ended) */
} strata_lease_answer;

/* Waits for k's value, to be called after a miss. The process's callers of one key share one
 * flight: its first caller asks Redis for the lease (an acquire in STRATA_LEASE_MISS mode); the
 * others ride on it, with no Redis call of their own. Returns
 *   STRATA_OK          out->value: the value was there, or was stored while the caller waited
 *                      (filled by the holder, or any write: every write of the key wakes the
 *                      waiters);
 *   STRATA_LEASED      the caller holds the lease now (out->grant): it computes and fills, or
 *                      releases. The first caller of a flight gets it when nobody held it; a
 *                      waiter that chose takeover gets it when the holder's lease ends without
 *                      a value (released, or expired: after lease_ms a dead holder's lease is
 *                      the next waiter's);
 *   STRATA_EHELD       not available: the wait ended without a value, the lease still held
 *                      (out->grant.held_ms), or free but the caller did not choose takeover;
 *   STRATA_ELIMIT      Redis cannot decide and this process holds STRATA_LEASE_LOCAL_MAX leases:
 *                      no lease (compute and write with a plain set);
 *   STRATA_EBUSY       STRATA_LEASE_FLIGHT_MAX keys or STRATA_LEASE_WAIT_MAX callers wait
 *                      already (strata serve answers 503 with Retry-After);
 *   STRATA_EINVAL      (options), STRATA_ENOMEM, or a key error.
 * The wait ends by wait_ms (plus, for a caller that chose takeover and finds the lease ended at
 * that moment, one Redis call to take it). How waiters are told (docs/architecture.md,
 * "Leases"): a fill or a release is published on <prefix>!lease and any write of the key is an
 * invalidation, both heard on the cache's invalidation link; the end of the holder's lease is a
 * timer; while the link is down (or without Redis) the flight looks every 50 ms, doubling to 1 s.
 * Redis failing is never an error: the lease is then this process's (single flight per
 * instance), and a local fill or release wakes the waiters at once. Blocks the calling thread
 * (never call it on an event loop: use the async form there). */
int strata_lease_wait(strata_leases *ls, const strata_key *k, const strata_lease_wait_opts *o,
                      strata_lease_answer *out);

/* a is valid during the callback only, but a->value is the callback's to release. */
typedef void (*strata_lease_wait_cb)(int status, strata_lease_answer *a, void *arg);

/* strata_lease_wait on a loop (cache.h's convention: what is decided during the call is returned,
 * cb not called; else STRATA_PENDING and cb once, on the loop's thread). Waiters are woken from
 * other threads (the invalidation link's, a thread that fills) with event_active(), so the
 * loop's event_base must have been made after evthread_use_pthreads() (strata serve calls it; a
 * library user must too). Every wait on a loop must have answered (it does by wait_ms) before
 * the loop is freed. */
int strata_lease_wait_async(strata_leases *ls, strata_loop *lp, const strata_key *k,
                            const strata_lease_wait_opts *o, strata_lease_wait_cb cb, void *arg,
                            strata_lease_answer *out);

/* Counters of the leases. */
typedef struct strata_lease_stats {
    uint64_t acquired; /* leases granted (by Redis or locally) */
    uint64_t held;     /* acquires answered STRATA_EHELD */
    uint64_t present;  /* acquires answered STRATA_EEXISTS */
    uint64_t released, extended, filled;
    uint64_t refused;    /* release, extend or fill with a token not the holder's */
    uint64_t local;      /* calls decided by this process's table (Redis unavailable or absent) */
    uint64_t local_full; /* acquires refused STRATA_ELIMIT: the local table was full */
    uint64_t local_held; /* entries in the local table now (live or not yet swept) */
    uint64_t waits;      /* strata_lease_wait calls (sync and async) */
    uint64_t coalesced;  /* waits answered with a value another caller computed or read */
    uint64_t takeovers;  /* waits answered STRATA_LEASED after the lease was found held */
    uint64_t timeouts;   /* waits answered STRATA_EHELD: the wait ended without a value */
    uint64_t wait_busy;  /* waits refused STRATA_EBUSY: too many flights or waiters */
    uint64_t flights;    /* keys this process's callers wait for now */
    uint64_t waiting;    /* callers waiting now */
    uint64_t stale_kept; /* failures answered with a stale copy kept (strata_lease_fail) */
    uint64_t errors_stored; /* failures answered with the error result stored */
} strata_lease_stats;

void strata_leases_stats(strata_leases *ls, strata_lease_stats *out);

#ifdef __cplusplus
}
#endif
#endif
