/* features/lease_internal.h: the leases object, shared by the files of leases (lease.c: the
 * calls on a lease; lease_wait.c: waiting for a holder's value; lease_fail.c: what a failed
 * computation leaves; remember.c: get or compute once, whose counters it keeps), and what unit
 * tests set on it beyond its public API. */
#ifndef STRATA_FEATURES_LEASE_INTERNAL_H
#define STRATA_FEATURES_LEASE_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>

#include <strata/lease.h>

#include "cache/cache_internal.h"
#include "core/tag_key.h"
#include "features/flight.h"
#include "features/lease_table.h"

struct strata_leases {
    strata_cache *c;
    lease_table *local;    /* this process's leases while Redis cannot decide */
    flight_table *flights; /* the keys this process's callers wait for */
    char channel[STRATA_LEASE_CHANNEL_MAX];
    size_t channel_len;
    atomic_uint_fast64_t acquired, held, present, released, extended, filled, refused, local_n,
        local_full;
    atomic_uint_fast64_t waits, coalesced, takeovers, timeouts, wait_busy;
    atomic_uint_fast64_t stale_kept, errors_stored; /* lease_fail.c's */
    struct {                                        /* remember.c's: strata_remember_stats */
        atomic_uint_fast64_t calls, hits, computations, coalesced, negative_hits, failures,
            abandoned, fill_refused, fill_failed, unleased, not_available, stale, early_refreshes,
            stale_refreshes, stale_if_error;
    } rem;
};

/* remember.c's XFetch draw: a uniform number in (0, 1] for strata_value_freshness, from a
 * per-thread generator. A test sets it (before any remember runs) to force the draw: 1 never
 * refreshes early, a small number does. NULL: the generator. */
extern double (*strata__remember_draw)(void);

/* Replaces the local table with an empty one of at most max leases (STRATA_LEASE_LOCAL_MAX by
 * default), so a test reaches the bound with a few keys. Call before use. Returns 0 or
 * STRATA_ENOMEM. */
int strata__leases_local_max(strata_leases *ls, size_t max);

/* Replaces the flight table with an empty one of at most max_flights flights and max_waiters
 * waiters (STRATA_LEASE_FLIGHT_MAX, STRATA_LEASE_WAIT_MAX by default). Call before use. Returns
 * 0 or STRATA_ENOMEM. */
int strata__leases_flight_max(strata_leases *ls, size_t max_flights, size_t max_waiters);

/* strata_lease_acquire over tier t at now (wall-clock ms), cb as the async call's: what
 * lease_wait.c asks on a flight's behalf, over the pool or its loop's connection. */
int strata__lease_acquire_on(strata_leases *ls, tier t, const strata_key *k, uint64_t lease_ms,
                             int mode, uint64_t now, strata_lease_cb cb, void *arg,
                             strata_lease_grant *out);

/* strata_lease_release over tier t at now, cb as the async call's. */
int strata__lease_release_on(strata_leases *ls, tier t, const strata_key *k, const char *token,
                             uint64_t now, strata_done_cb cb, void *arg);

/* strata_lease_fill over tier t at now; with expect (lease_fail.c's kept copy: the expires of
 * the copy as read), stored only if the value stored still has that expiry: otherwise
 * STRATA_EEXISTS, nothing stored and the lease released. */
int strata__lease_fill_on(strata_leases *ls, tier t, const strata_key *k, const char *token,
                          const void *value, size_t len, const strata_set_opts *opts,
                          const uint64_t *expect, uint64_t now, strata_done_cb cb, void *arg);

#endif
