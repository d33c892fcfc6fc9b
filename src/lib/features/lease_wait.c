/* features/lease_wait.c: waiting for a lease holder's value: strata_lease_wait, sync and async.
 *
 * A caller that missed joins its key's flight (features/flight.c) and looks: the flight's table
 * says what to do, this file does it. The Redis work of a flight (its first acquire, re-reading
 * the value after a change, a takeover) is done by one of its waiters at a time, on that waiter's
 * own thread or loop, over its own tier (the pool for a thread, the loop's connection for a
 * loop), and outside the table's lock; every other waiter rides on it. The value is read through
 * the cache's own read path (cache/twotier.c: L1, then Redis, tags checked, promoted), the lease
 * asked for with lease.c's acquire, so Redis failing falls back exactly as those calls do.
 *
 * A thread waits on its condition variable (CLOCK_MONOTONIC, timed to the first of its deadline,
 * the holder's lease's end and the next poll); a loop's waiter on one event of its loop, armed as
 * that timer and made active by a wake. Wakes come from the link's thread (a lease message, an
 * invalidation: lease.c's watcher), from a thread that fills or releases, and from a flight's
 * work that found the value. One code path serves both: a step of a waiter is "look, then wait,
 * work or leave"; a loop's work that goes to Redis continues in its callback.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <strata/errors.h>
#include <strata/lease.h>

#include "cache/twotier.h"
#include "core/clock.h"
#include "features/lease_internal.h"
#include "l1/l1_internal.h"

/* What a waiter's work asks next. */
enum { ST_END, ST_GET, ST_ACQUIRE, ST_REFRESH };

typedef struct wait_call {
    flight_waiter w; /* the table's view of this caller */
    strata_leases *ls;
    tier t; /* the pool (a thread), or the loop's connection */
    uint64_t lease_ms;
    int async, in_call, delivered;
    pthread_cond_t cv; /* a thread's */
    struct event *ev;  /* a loop's: its timer and its wake */
    strata_lease_wait_cb cb;
    void *arg;
    int stage, after_exists, took_over; /* the work under way */
    flight_found found;
} wait_call;

static int polling(strata_leases *ls)
{
    tier p = ls->c->pool;
    return p.ops == NULL || !p.ops->link_up(p.self);
}

/* ---- a waiter's work ----------------------------------------------------------------------- */

static void on_value(wait_call *q, int status, strata_value *v)
{
    if ((status == STRATA_OK || status == STRATA_OK_L1_ONLY) && v != NULL) {
        q->found.value = v;
        q->stage = ST_END;
        return;
    }
    strata_value_release(v);
    int unread = strata_fallback_reason() != STRATA_REASON_NONE; /* Redis could not be read */
    if (q->after_exists && unread) /* a value is there, unread: ask again soon, do not compute */
        q->found.held = 1, q->stage = ST_END;
    else if (q->after_exists) /* a value is there, yet it reads as a miss (a tag moved) */
        q->stage = ST_REFRESH;
    else if (q->w.wants_lease)
        q->stage = ST_ACQUIRE;
    else
        q->found.missing = 1, q->stage = ST_END;
}

static void on_grant(wait_call *q, int status, const strata_lease_grant *g)
{
    q->stage = ST_END;
    if (status == STRATA_OK) {
        q->found.granted = 1, q->found.g = *g, q->found.lease_ms = q->lease_ms;
    } else if (status == STRATA_EEXISTS && !q->after_exists) {
        q->after_exists = 1, q->stage = ST_GET; /* stored meanwhile: read it */
    } else if (status == STRATA_EHELD) {
        q->found.held = 1, q->found.g.held_ms = g->held_ms;
    } else {
        q->found.failed = status; /* STRATA_ELIMIT, STRATA_ETIMEDOUT (the loop is freed) */
    }
}

static void continue_work(wait_call *q);

static void got_value(int status, strata_value *v, void *arg)
{
    wait_call *q = arg;
    on_value(q, status, v);
    continue_work(q);
}

static void got_grant(int status, const strata_lease_grant *g, void *arg)
{
    wait_call *q = arg;
    on_grant(q, status, g);
    continue_work(q);
}

/* Runs the work's stages until one goes to Redis on a loop (STRATA_PENDING: its callback goes
 * on) or the work is done (0). The flight stays while it is busy, so its key may be used. */
static int run_work(wait_call *q)
{
    strata_cache *c = q->ls->c;
    const strata_key *k = &q->w.f->k;
    while (q->stage != ST_END) {
        int rc;
        if (q->stage == ST_GET) {
            strata_value *v = NULL;
            rc = strata__tt_get(c, q->t, k, c->clock(), got_value, q, &v);
            if (rc == STRATA_PENDING)
                return rc;
            on_value(q, rc, v);
        } else {
            strata_lease_grant g;
            int mode = q->stage == ST_REFRESH ? STRATA_LEASE_REFRESH : STRATA_LEASE_MISS;
            rc = strata__lease_acquire_on(q->ls, q->t, k, q->lease_ms, mode, c->clock(), got_grant,
                                          q, &g);
            if (rc == STRATA_PENDING)
                return rc;
            on_grant(q, rc, &g);
        }
    }
    return 0;
}

/* ---- a waiter's steps ---------------------------------------------------------------------- */

static void count_answer(wait_call *q)
{
    strata_leases *ls = q->ls;
    atomic_fetch_add(&ls->waits, 1);
    if (q->w.status == STRATA_OK && q->w.coalesced)
        atomic_fetch_add(&ls->coalesced, 1);
    else if (q->w.status == STRATA_LEASED && q->took_over)
        atomic_fetch_add(&ls->takeovers, 1);
    else if (q->w.status == STRATA_EHELD)
        atomic_fetch_add(&ls->timeouts, 1);
}

static void answer_of(const wait_call *q, strata_lease_answer *a)
{
    memset(a, 0, sizeof *a);
    a->value = q->w.value, a->coalesced = q->w.coalesced, a->grant = q->w.g;
}

/* q has its answer and has left its flight: to the call that is still running, or the callback. */
static void deliver(wait_call *q)
{
    count_answer(q);
    if (!q->async || q->in_call) {
        q->delivered = 1;
        return;
    }
    strata_lease_answer a;
    answer_of(q, &a);
    event_free(q->ev);
    strata_lease_wait_cb cb = q->cb;
    void *arg = q->arg;
    int status = q->w.status;
    free(q);
    cb(status, &a, arg);
}

/* A thread's wait until `until` (monotonic ms) or a wake, on the table's mutex. */
static void thread_wait(wait_call *q, uint64_t until)
{
    if (q->w.woken)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    uint64_t ms = until > now ? until - now : 0;
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000)
        ts.tv_sec++, ts.tv_nsec -= 1000000000;
    pthread_cond_timedwait(&q->cv, strata__flight_mutex(q->ls->flights), &ts);
}

/* With the table locked: q's steps until it must wait (a loop's waiter: its event armed), its
 * work goes to Redis on a loop, or it has its answer. Returns with the table unlocked. */
static void drive_locked(wait_call *q)
{
    flight_table *t = q->ls->flights;
    for (;;) {
        uint64_t now = strata__mono_ms(), until = 0;
        int looked = q->w.f->looked;
        int act = strata__flight_step_locked(t, &q->w, now, polling(q->ls), &until);
        if (act == FLIGHT_DONE) {
            strata__flight_leave_locked(t, &q->w);
            strata__flight_unlock(t);
            deliver(q);
            return;
        }
        if (act == FLIGHT_WAIT) {
            if (!q->async) {
                thread_wait(q, until);
                continue;
            }
            uint64_t ms = until > now ? until - now : 0;
            struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
            event_add(q->ev, &tv);
            strata__flight_unlock(t);
            return;
        }
        strata__flight_unlock(t);
        memset(&q->found, 0, sizeof q->found);
        q->after_exists = 0;
        q->stage = act == FLIGHT_LOOK ? ST_GET : ST_ACQUIRE;
        q->took_over = looked; /* a lease it gets now was found held before */
        if (run_work(q) == STRATA_PENDING)
            return; /* continue_work follows on the loop */
        strata__flight_lock(t);
        strata__flight_found_locked(t, &q->w, &q->found, strata__mono_ms());
        strata_value_release(q->found.value);
    }
}

/* A loop's work answered: on with it, then with q's steps. */
static void continue_work(wait_call *q)
{
    if (run_work(q) == STRATA_PENDING)
        return;
    flight_table *t = q->ls->flights;
    strata__flight_lock(t);
    strata__flight_found_locked(t, &q->w, &q->found, strata__mono_ms());
    strata_value_release(q->found.value);
    drive_locked(q);
}

/* A loop's waiter: its timer ran out, or it was woken. */
static void on_event(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    wait_call *q = arg;
    flight_table *t = q->ls->flights;
    strata__flight_lock(t);
    if (q->w.working) { /* its work is under way: its end looks again */
        strata__flight_unlock(t);
        return;
    }
    drive_locked(q);
}

/* ---- the calls ----------------------------------------------------------------------------- */

static int check_opts(const strata_lease_wait_opts *o)
{
    if (o == NULL || o->lease_ms == 0 || o->lease_ms > STRATA_LEASE_MAX_MS ||
        o->wait_ms > STRATA_LEASE_MAX_MS)
        return STRATA_EINVAL;
    return 0;
}

/* Joins q to k's flight and takes its first steps. Returns 0 (q delivered during the call, or a
 * loop's q waiting) or a failure (q never joined). */
static int start(wait_call *q, const strata_key *k, const strata_lease_wait_opts *o)
{
    strata_leases *ls = q->ls;
    l1_addr a;
    int rc = strata__l1_resolve(ls->c->l1, k, &a);
    if (rc != 0)
        return rc;
    q->lease_ms = o->lease_ms;
    q->w.wants_lease = o->takeover != 0;
    uint64_t now = strata__mono_ms();
    q->w.deadline = now + o->wait_ms;
    int first;
    strata__flight_lock(ls->flights);
    rc = strata__flight_join_locked(ls->flights, a.buf, a.len, k, &q->w, now, &first);
    if (rc != 0) {
        strata__flight_unlock(ls->flights);
        if (rc == STRATA_EBUSY)
            atomic_fetch_add(&ls->wait_busy, 1);
        return rc;
    }
    drive_locked(q);
    return 0;
}

int strata_lease_wait(strata_leases *ls, const strata_key *k, const strata_lease_wait_opts *o,
                      strata_lease_answer *out)
{
    memset(out, 0, sizeof *out);
    int rc = check_opts(o);
    if (rc != 0)
        return rc;
    wait_call q;
    memset(&q, 0, sizeof q);
    q.ls = ls, q.t = ls->c->pool;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&q.cv, &ca);
    pthread_condattr_destroy(&ca);
    q.w.cv = &q.cv;
    rc = start(&q, k, o);
    pthread_cond_destroy(&q.cv);
    if (rc != 0)
        return rc;
    answer_of(&q, out);
    return q.w.status;
}

int strata_lease_wait_async(strata_leases *ls, strata_loop *lp, const strata_key *k,
                            const strata_lease_wait_opts *o, strata_lease_wait_cb cb, void *arg,
                            strata_lease_answer *out)
{
    memset(out, 0, sizeof *out);
    int rc = check_opts(o);
    if (rc != 0)
        return rc;
    if (cb == NULL || lp == NULL)
        return STRATA_EINVAL;
    wait_call *q = calloc(1, sizeof *q);
    if (q == NULL)
        return STRATA_ENOMEM;
    q->ls = ls, q->t = strata__loop_tier(lp), q->async = 1, q->in_call = 1;
    q->cb = cb, q->arg = arg;
    q->ev = event_new(strata__loop_base(lp), -1, 0, on_event, q);
    if (q->ev == NULL) {
        free(q);
        return STRATA_ENOMEM;
    }
    q->w.ev = q->ev;
    rc = start(q, k, o);
    if (rc == 0 && q->delivered) {
        answer_of(q, out);
        rc = q->w.status;
    } else if (rc == 0) {
        q->in_call = 0;
        return STRATA_PENDING;
    }
    event_free(q->ev);
    free(q);
    return rc;
}
