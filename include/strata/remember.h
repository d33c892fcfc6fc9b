/* remember.h: get a key, or have exactly one caller among all instances compute and store it.
 *
 * strata_cache_remember is cache-aside with stampede protection, in one call: it reads the key;
 * on a miss it waits for the key's lease (strata_lease_wait: one flight per process, one holder
 * across every instance on the Redis, the other callers coalesced); the one caller given the lease
 * runs the caller's compute callback and fills the value (strata_lease_fill: stored and the lease
 * released atomically); every caller is answered that value. It is a feature over the leases and
 * the cache (it takes the strata_leases of a cache, which the cache knows nothing of).
 *
 * A computation that fails reports an error result (bytes: an upstream's error body, a message):
 * it is stored like a value but flagged STRATA_VALUE_ERROR, so it lives for the namespace's
 * error TTL (strata_ns_config.error_ttl_ms; a shorter ttl_ms wins) and a failing backend is asked
 * once per error TTL, not by every caller. Every caller that gets it, the one that computed it,
 * those that waited and those that read it later, is answered STRATA_OK_ERROR (a success status:
 * a->value is the error result, its flags carry STRATA_VALUE_ERROR), never STRATA_OK.
 *
 * Freshness (the options' grace_ms, stale_if_error_ms and beta, stored with the value with the
 * compute time measured on the cache's clock; strata_set_opts). The read is
 * strata_cache_get_stale, and the value found is judged by strata_value_freshness:
 * - fresh: answered (STRATA_REMEMBER_HIT). Unless this caller's XFetch draw chooses it to
 *   refresh early (a hot key is refreshed shortly before it expires, by one caller: the closer
 *   the expiry and the longer the value took to compute, the likelier): if it can take the
 *   key's lease it computes and is answered its new value; if another holds it, a plain hit;
 * - past its TTL within its grace (stale-while-revalidate): every caller is answered it at once,
 *   STRATA_OK_STALE (source STRATA_REMEMBER_STALE), except the one, across all instances, given
 *   the lease: that one recomputes and is answered the new value;
 * - past its grace, expired, or missing: the wait above. A computation that fails while a copy
 *   is still within its stale-if-error window (or its grace) keeps that copy instead of storing
 *   the error (strata_lease_fail): the caller that computed, every waiter, and every caller for
 *   the namespace's error TTL, is answered the copy, STRATA_OK_STALE, and nobody computes
 *   before the error TTL ends. Without a copy the failure is an error result, as above.
 * A value read after a refresh failed (flagged STRATA_VALUE_STALE) is answered STRATA_OK_STALE
 * too. STRATA_OK_STALE is a success: a->value is the value to serve, marked stale (HTTP: a
 * Warning or X-Cache: STALE). A refresh that gives up (a STRATA_E* code) is answered the value it
 * read, fresh or stale, rather than that code.
 *
 * The compute callback is given a handle and completes it with strata_remember_done: the value
 * (STRATA_OK), an error result (STRATA_OK_ERROR), or a negative STRATA_E* code to give the
 * lease up without storing anything (that code is the caller's answer; a waiter that chose
 * takeover then computes). The bytes are copied by strata_remember_done: the callback keeps its
 * own. The same callback serves both forms:
 * - synchronous: the callback calls strata_remember_done before it returns (on the calling
 *   thread; a callback that returns without doing so gives the lease up, and the call answers
 *   STRATA_EINVAL);
 * - on a loop: the callback may return at once and complete the handle later, on the loop's
 *   thread (after an asynchronous HTTP call to an LLM, say), so the loop never blocks.
 *
 *     static void compute(const strata_key *k, strata_remember_handle *h, void *arg)
 *     {
 *         char body[4096];
 *         int n = fetch_origin(k, body, sizeof body);             // the expensive thing
 *         if (n >= 0)
 *             strata_remember_done(h, STRATA_OK, body, (size_t)n);
 *         else
 *             strata_remember_done(h, STRATA_OK_ERROR, "origin: 502", 11); // cached error_ttl
 *     }
 *
 *     // fresh for a minute; then served stale for 10 s while one caller refreshes it; kept an
 *     // hour for when the origin fails (the copy is served instead of the error)
 *     strata_remember_opts o = {.ttl_ms = 60000, .grace_ms = 10000,
 *                               .stale_if_error_ms = 3600000, .lease_ms = 10000};
 *     strata_remember_answer a;
 *     switch (strata_cache_remember(ls, &k, &o, compute, NULL, &a)) {
 *     case STRATA_OK:       use(a.value); strata_value_release(a.value); break;
 *     case STRATA_OK_STALE: use_marked_stale(a.value); strata_value_release(a.value); break;
 *     case STRATA_OK_ERROR: fail_with(a.value); strata_value_release(a.value); break;
 *     case STRATA_EHELD:    // not available: another caller still computes (wait_end option)
 *     case STRATA_EBUSY:    // too many callers wait in this process: try again later
 *     default:              // an argument error, or the status the computation gave up with
 *     }
 *
 * Redis down or not configured is never an error: the leases fall back to this process (one
 * computation per instance instead of one across instances; grace, stale-if-error and early
 * refresh hold per instance alike).
 */
#ifndef STRATA_REMEMBER_H
#define STRATA_REMEMBER_H

#include <stddef.h>
#include <stdint.h>

#include <strata/cache.h>
#include <strata/lease.h>

#ifdef __cplusplus
extern "C" {
#endif

#define STRATA_REMEMBER_LEASE_MS 30000 /* lease_ms when the options give 0 */

/* What a waiter does when its wait ends without a value. */
enum strata_remember_wait_end {
    /* Take the lease and compute, once the holder's lease has ended without a value (it died,
     * gave up, or is late past its lease_ms): the caller always ends with a value, unless
     * wait_ms ran out while the lease was still held (then STRATA_EHELD). */
    STRATA_REMEMBER_TAKEOVER = 0,
    /* Never compute after having waited: answer STRATA_EHELD ("not available") at the end of
     * the wait. Only a caller that finds nobody holding the lease computes. */
    STRATA_REMEMBER_NOT_AVAILABLE = 1
};

/* Options of a remember; NULL means all defaults (zero is every member's default). Initialise
 * with a designated initialiser or memset: the reserved members must be zero. */
typedef struct strata_remember_opts {
    /* How the value is stored: as strata_set_opts (TTL rules, jitter, tags, content type). */
    uint64_t ttl_ms;          /* 0: the namespace default; error results: at most error_ttl */
    uint64_t grace_ms;        /* past its TTL, served stale this long (STRATA_OK_STALE) while one
                                 caller refreshes it; 0: the namespace's; at most
                                 STRATA_STALE_MAX_MS */
    const char *content_type; /* NULL or text up to 255 bytes */
    const char *const *tags;  /* tag names, tenant-scoped */
    size_t ntags;             /* up to STRATA_TAGS_MAX_PER_ENTRY */
    /* How a caller that misses waits: as strata_lease_wait_opts. */
    uint64_t lease_ms; /* how long the computing caller may take (0: STRATA_REMEMBER_LEASE_MS;
                          at most STRATA_LEASE_MAX_MS); a fill after it is refused (the value is
                          still its caller's answer) */
    uint64_t wait_ms;  /* how long a caller waits for another's value (0: lease_ms, so a waiter
                          outlasts a holder that took the same lease_ms) */
    int wait_end;      /* enum strata_remember_wait_end */
    /* Freshness of the value stored (strata_set_opts), served by later remembers: */
    uint64_t stale_if_error_ms; /* past its TTL, kept this long for when a refresh fails: the
                                   copy then answers everyone (STRATA_OK_STALE) for the error
                                   TTL; 0: the namespace's; at most STRATA_STALE_MAX_MS */
    double beta;                /* XFetch weight of the early refresh: 0 the namespace's (default
                                   1), below 0 never early, at most STRATA_BETA_MAX */
    /* Reserved for the options of a later version: zero, or the call answers STRATA_EINVAL, so
     * a program built for a later version that sets them fails loudly here instead of being
     * silently ignored, and the struct keeps its size. */
    uint64_t reserved[2];
} strata_remember_opts;

/* Where an answer's value came from. */
enum strata_remember_source {
    STRATA_REMEMBER_HIT = 0,       /* it was there: the first read, or found by the wait's own
                                      first look */
    STRATA_REMEMBER_COMPUTED = 1,  /* this caller computed it (its own bytes, not read back: also
                                      when the fill was refused or failed) */
    STRATA_REMEMBER_COALESCED = 2, /* another caller computed (or wrote) it while this one
                                      waited (HTTP: X-Cache: HIT-COALESCED) */
    STRATA_REMEMBER_STALE = 3      /* a stale copy (STRATA_OK_STALE, and only then): past its TTL
                                      within its grace while another caller refreshes it, or kept
                                      because a refresh failed (stale-if-error) */
};

/* What a remember gives. */
typedef struct strata_remember_answer {
    strata_value *value; /* STRATA_OK, STRATA_OK_STALE, STRATA_OK_ERROR: the caller's reference
                            to release */
    int source;          /* with a value: enum strata_remember_source */
    uint64_t held_ms;    /* STRATA_EHELD: how long the holder's lease still ran as last heard
                            (0: unknown) */
} strata_remember_answer;

/* One computation under way: given to the compute callback, completed once with
 * strata_remember_done. */
typedef struct strata_remember_handle strata_remember_handle;

/* Computes k's value and completes h. k and h are valid until strata_remember_done(h) is
 * called; arg is the remember call's. */
typedef void (*strata_compute_fn)(const strata_key *k, strata_remember_handle *h, void *arg);

/* Completes the computation of h, exactly once, with
 *   STRATA_OK        value[0..len) is the value: stored with the options' TTL, tags, ...;
 *   STRATA_OK_ERROR  value[0..len) is an error result: stored flagged STRATA_VALUE_ERROR, for
 *                    the namespace's error TTL (or ttl_ms if shorter);
 *   a STRATA_E* code the computation gave up: nothing is stored, the lease is released (a
 *                    waiter that chose takeover computes next), the code is the caller's answer
 *                    (a refresh's caller is answered the value it read instead).
 * The time from the callback's call to this call, on the cache's clock, is stored with the value
 * (its compute time, which XFetch weighs).
 * value is copied before the call returns (value may be NULL when len is 0). Synchronous form:
 * call it from the callback, before it returns. On a loop: from the loop's thread, during the
 * callback or later; the remember's callback then follows from the loop, never from inside this
 * call. Returns 0 (h is no longer valid), or STRATA_EINVAL (status not one of the above, value
 * NULL with len > 0: nothing happened, h is still to be completed). */
int strata_remember_done(strata_remember_handle *h, int status, const void *value, size_t len);

/* Reads k; on a miss, waits for the value or computes it with compute(k, h, arg) when given the
 * lease, and fills it. Blocks the calling thread (never call it on an event loop). Returns
 *   STRATA_OK          out->value is the value (out->source: read, computed, or coalesced);
 *   STRATA_OK_STALE    out->value is a stale copy (out->source STRATA_REMEMBER_STALE): within
 *                      its grace while another caller refreshes it, or kept because the
 *                      computation (this caller's, or the one it waited for) failed;
 *   STRATA_OK_ERROR    out->value is an error result: computed by this caller, by another it
 *                      waited for, or cached (a negative hit);
 *   STRATA_EHELD       not available: the wait ended with the lease still held, or free but
 *                      the options chose STRATA_REMEMBER_NOT_AVAILABLE (out->held_ms);
 *   STRATA_EBUSY       too many callers of this process wait already (strata_lease_wait);
 *   STRATA_EINVAL      (options out of range, reserved members not zero, compute NULL, or
 *                      the callback returned without completing its handle), STRATA_ENOMEM, a
 *                      key error, the errors of strata_cache_set for a value the cache cannot
 *                      take (nothing stored, the lease released), or the code the computation
 *                      gave up with.
 * When the lease could not be had because Redis is away and this process holds
 * STRATA_LEASE_LOCAL_MAX leases (STRATA_ELIMIT), the caller computes anyway and writes with a
 * plain set. A fill refused because the caller's lease had run out (STRATA_ENOTHOLDER: another
 * caller took it over) stores nothing, but the value computed is still the caller's answer.
 * A refresh lease is taken whatever is stored (STRATA_LEASE_REFRESH), so the caller given it
 * reads the key again first: a value another caller stored meanwhile is answered
 * (STRATA_REMEMBER_COALESCED), not computed a second time. Likewise a failure that finds a value
 * written meanwhile answers that value. */
int strata_cache_remember(strata_leases *ls, const strata_key *k, const strata_remember_opts *o,
                          strata_compute_fn compute, void *arg, strata_remember_answer *out);

/* a is valid during the callback only, but a->value is the callback's to release. */
typedef void (*strata_remember_cb)(int status, strata_remember_answer *a, void *arg);

/* strata_cache_remember on a loop, following cache.h's convention: what is decided during the
 * call (an L1 hit, an argument error, a computation completed during its callback with every
 * write answered at once) is returned with *out filled and cb NOT called; otherwise
 * STRATA_PENDING and cb(status, a, arg) once, later, on the loop's thread. compute is called
 * with the same arg, on the loop's thread. Keys and options are copied.
 *
 * Ownership and lifetimes, stated once: a handle belongs to the library from the callback until
 * strata_remember_done; every handle must be completed before its loop is freed (complete it
 * with a negative code, e.g. STRATA_ETIMEDOUT, to cancel: its caller's cb gets that code), and
 * every remember must have answered before its loop, then its leases, are freed. While a handle
 * is pending nothing else of it runs: a handle never completed keeps its caller's cb pending for
 * ever, while the other callers stop waiting for it at their bound (its lease expires after
 * lease_ms and a waiter takes over). Waiters are woken from other threads, so the loop's
 * event_base must have been made after evthread_use_pthreads() (strata_lease_wait_async). */
int strata_cache_remember_async(strata_leases *ls, strata_loop *lp, const strata_key *k,
                                const strata_remember_opts *o, strata_compute_fn compute,
                                strata_remember_cb cb, void *arg, strata_remember_answer *out);

/* Counters of the remember calls made on a leases object (sync and async); the waiting and
 * leases under them are counted in strata_leases_stats too. */
typedef struct strata_remember_stats {
    uint64_t calls;           /* remember calls answered */
    uint64_t hits;            /* answered with a value that was there (STRATA_REMEMBER_HIT) */
    uint64_t computations;    /* compute callbacks run */
    uint64_t coalesced;       /* answered with another caller's value (STRATA_REMEMBER_COALESCED) */
    uint64_t negative_hits;   /* answered STRATA_OK_ERROR with an error result this caller did not
                                 compute: read, or waited for */
    uint64_t failures;        /* computations completed with STRATA_OK_ERROR (stored negative,
                                 or a copy kept instead: stale_if_error) */
    uint64_t abandoned;       /* computations completed with a STRATA_E* code (nothing stored) */
    uint64_t fill_refused;    /* fills refused STRATA_ENOTHOLDER: the lease had run out */
    uint64_t fill_failed;     /* fills that failed otherwise (the value still answered) */
    uint64_t unleased;        /* computations without a lease (STRATA_ELIMIT) */
    uint64_t not_available;   /* answered STRATA_EHELD */
    uint64_t stale;           /* answered STRATA_OK_STALE (STRATA_REMEMBER_STALE) */
    uint64_t early_refreshes; /* computations started by an XFetch draw (the value was fresh) */
    uint64_t stale_refreshes; /* computations started on a value stale within its grace */
    uint64_t stale_if_error;  /* failed computations answered with a kept copy */
} strata_remember_stats;

void strata_leases_remember_stats(strata_leases *ls, strata_remember_stats *out);

#ifdef __cplusplus
}
#endif
#endif
