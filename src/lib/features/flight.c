/* features/flight.c: the flight table: one flight per key this process waits for (flight.h).
 *
 * A chained hash of flights under one mutex, each with a FIFO of waiters. The table decides what
 * a waiter does when it looks (on a time it is given) and applies what a waiter's work found;
 * it never calls Redis, the cache or a lease: features/lease_wait.c does the work, outside the
 * lock. Waiters are woken one at a time when work is to be done (the oldest that wants the lease
 * first: a release it hears is then one acquire, not a look and then an acquire), and all at
 * once when the value is found. Memory: max_flights * (flight + stored key + user key), the
 * waiters being their callers'.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <strata/errors.h>
#include <xxhash.h>

#include "features/flight.h"

#define FT_BUCKETS 1024

struct flight_table {
    pthread_mutex_t lock;
    size_t max_flights, max_waiters, nflights, nwaiters;
    flight *buckets[FT_BUCKETS];
};

int strata__flight_table_new(size_t max_flights, size_t max_waiters, flight_table **out)
{
    *out = NULL;
    flight_table *t = calloc(1, sizeof *t);
    if (t == NULL)
        return STRATA_ENOMEM;
    pthread_mutex_init(&t->lock, NULL);
    t->max_flights = max_flights, t->max_waiters = max_waiters;
    *out = t;
    return 0;
}

static void flight_free(flight *f)
{
    strata_value_release(f->value);
    free(f);
}

void strata__flight_table_free(flight_table *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < FT_BUCKETS; i++)
        for (flight *f = t->buckets[i], *next; f != NULL; f = next)
            next = f->next, flight_free(f);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

void strata__flight_lock(flight_table *t)
{
    pthread_mutex_lock(&t->lock);
}

void strata__flight_unlock(flight_table *t)
{
    pthread_mutex_unlock(&t->lock);
}

pthread_mutex_t *strata__flight_mutex(flight_table *t)
{
    return &t->lock;
}

static flight **find_locked(flight_table *t, uint64_t h, const char *key, size_t klen)
{
    flight **link = &t->buckets[h % FT_BUCKETS];
    while (*link != NULL &&
           ((*link)->hash != h || (*link)->klen != klen || memcmp((*link)->key, key, klen) != 0))
        link = &(*link)->next;
    return link;
}

int strata__flight_join_locked(flight_table *t, const char *key, size_t klen, const strata_key *k,
                               flight_waiter *w, uint64_t now, int *first)
{
    *first = 0;
    if (t->nwaiters >= t->max_waiters)
        return STRATA_EBUSY;
    uint64_t h = XXH3_64bits(key, klen);
    flight **link = find_locked(t, h, key, klen), *f = *link;
    if (f == NULL) {
        if (t->nflights >= t->max_flights)
            return STRATA_EBUSY;
        if ((f = calloc(1, sizeof *f + klen + k->len)) == NULL)
            return STRATA_ENOMEM;
        f->hash = h, f->klen = klen;
        memcpy(f->key, key, klen);
        memcpy(f->key + klen, k->key, k->len);
        snprintf(f->ns, sizeof f->ns, "%s", k->ns);
        if (k->tenant != NULL)
            snprintf(f->tenant, sizeof f->tenant, "%s", k->tenant);
        f->k = (strata_key){f->ns, k->tenant ? f->tenant : NULL, f->key + klen, k->len};
        f->poll_ms = FLIGHT_POLL_MIN_MS;
        f->poll_at = now + FLIGHT_POLL_MIN_MS;
        *link = f;
        t->nflights++;
        *first = 1;
    }
    w->f = f, w->next = NULL, w->prev = f->tail;
    w->woken = w->working = w->done = 0;
    if (f->tail != NULL)
        f->tail->next = w;
    else
        f->head = w;
    f->tail = w;
    f->nwaiters++, t->nwaiters++;
    f->nwant += w->wants_lease != 0;
    return 0;
}

void strata__flight_leave_locked(flight_table *t, flight_waiter *w)
{
    flight *f = w->f;
    if (f == NULL)
        return;
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        f->head = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    else
        f->tail = w->prev;
    f->nwaiters--, t->nwaiters--;
    f->nwant -= w->wants_lease != 0;
    if (w->working) /* it leaves while its work is unfinished (cannot happen: said for safety) */
        f->busy = 0;
    w->f = NULL, w->next = w->prev = NULL;
    if (f->nwaiters == 0 && !f->busy) {
        *find_locked(t, f->hash, f->key, f->klen) = f->next;
        t->nflights--;
        flight_free(f);
    }
}

void strata__flight_wake_locked(flight_waiter *w)
{
    w->woken = 1;
    if (w->cv != NULL)
        pthread_cond_signal(w->cv);
    else if (w->ev != NULL)
        event_active(w->ev, EV_READ, 0);
}

/* Wakes the oldest waiter still waiting other than except, one that wants the lease if
 * prefer_want and there is one. */
static void wake_one(flight *f, int prefer_want, const flight_waiter *except)
{
    flight_waiter *pick = NULL;
    for (flight_waiter *x = f->head; x != NULL; x = x->next) {
        if (x == except || x->done)
            continue;
        if (!prefer_want || x->wants_lease) {
            pick = x;
            break;
        }
        if (pick == NULL)
            pick = x;
    }
    if (pick != NULL)
        strata__flight_wake_locked(pick);
}

static void answer_value(flight_waiter *w, strata_value *v, int coalesced)
{
    w->done = 1, w->status = STRATA_OK, w->value = strata_value_retain(v);
    w->coalesced = coalesced;
}

/* Claims the flight's work for w. */
static int work(flight *f, flight_waiter *w, int action)
{
    f->busy = 1, w->working = 1;
    return action;
}

int strata__flight_step_locked(flight_table *t, flight_waiter *w, uint64_t now, int polling,
                               uint64_t *until)
{
    (void)t;
    flight *f = w->f;
    w->woken = 0;
    if (w->done)
        return FLIGHT_DONE;
    if (f->value != NULL) { /* found while w was not listed yet, or before it looked */
        answer_value(w, f->value, 1);
        return FLIGHT_DONE;
    }
    if (!f->busy) {
        if (!f->looked || (f->acquire_next && w->wants_lease)) {
            f->acquire_next = 0;
            return work(f, w, FLIGHT_ACQUIRE);
        }
        int ended = w->wants_lease && f->held_until != 0 && now >= f->held_until;
        int poll = polling && now >= f->poll_at;
        if (f->dirty || ended || poll) {
            f->dirty = 0;
            if (poll) /* the gap doubles while polls find nothing */
                f->poll_ms =
                    f->poll_ms * 2 > FLIGHT_POLL_MAX_MS ? FLIGHT_POLL_MAX_MS : f->poll_ms * 2;
            f->poll_at = now + f->poll_ms; /* any look counts as a poll */
            return work(f, w, FLIGHT_LOOK);
        }
    }
    if (now >= w->deadline) {
        if (w->wants_lease && !f->busy && (f->held_until == 0 || now >= f->held_until))
            return work(f, w, FLIGHT_ACQUIRE);
        w->done = 1, w->status = STRATA_EHELD;
        w->g.held_ms = f->held_until > now ? f->held_until - now : 0;
        return FLIGHT_DONE;
    }
    *until = w->deadline;
    if (!f->busy) {
        if (w->wants_lease && f->held_until > now && f->held_until < *until)
            *until = f->held_until;
        if (polling && f->poll_at < *until)
            *until = f->poll_at;
    }
    w->until = *until;
    return FLIGHT_WAIT;
}

/* The holder's lease now ends at f->held_until: a waiter that wants the lease and went to sleep
 * while the flight was busy (its timer set to its deadline only) is woken to set its timer to
 * the lease's end, else a dead holder's lease would be taken over at the waiter's deadline, not
 * at its expiry. */
static void wake_for_lease_end(flight *f, const flight_waiter *except)
{
    for (flight_waiter *x = f->head; x != NULL; x = x->next)
        if (x != except && !x->done && x->wants_lease && x->until > f->held_until)
            strata__flight_wake_locked(x);
}

int strata__flight_found_locked(flight_table *t, flight_waiter *w, const flight_found *found,
                                uint64_t now)
{
    (void)t;
    flight *f = w->f;
    f->busy = 0, f->looked = 1, w->working = 0;
    if (found->value != NULL) {
        if (f->value == NULL)
            f->value = strata_value_retain(found->value);
        for (flight_waiter *x = f->head; x != NULL; x = x->next) {
            if (x->done)
                continue;
            answer_value(x, f->value, x != w || f->seen_held);
            if (x != w)
                strata__flight_wake_locked(x);
        }
        return 1;
    }
    if (found->granted) {
        w->done = 1, w->status = STRATA_LEASED, w->g = found->g;
        f->held_until = now + found->lease_ms; /* ours now: the others wait for our fill */
        f->seen_held = 1;
    } else if (found->held) {
        /* An unknown time left (a lease without expiry, a race with its end): soon again. */
        f->held_until = now + (found->g.held_ms ? found->g.held_ms : FLIGHT_POLL_MIN_MS);
        f->seen_held = 1;
    } else if (found->failed != 0) {
        w->done = 1, w->status = found->failed;
    } else if (found->missing && f->nwant > (size_t)(w->wants_lease != 0)) {
        f->acquire_next = 1;
    }
    if (found->granted || found->held)
        wake_for_lease_end(f, w);
    if (f->acquire_next)
        wake_one(f, 1, w);
    else if (f->dirty)
        wake_one(f, 0, w);
    return 0;
}

void strata__flight_notify(flight_table *t, const char *key, size_t klen)
{
    pthread_mutex_lock(&t->lock);
    if (t->nflights == 0) {
        /* the usual case: an invalidation of a key nobody waits for */
    } else if (key == NULL) {
        for (size_t i = 0; i < FT_BUCKETS; i++)
            for (flight *f = t->buckets[i]; f != NULL; f = f->next) {
                f->dirty = 1;
                if (!f->busy)
                    wake_one(f, 1, NULL);
            }
    } else {
        flight *f = *find_locked(t, XXH3_64bits(key, klen), key, klen);
        if (f != NULL) {
            f->dirty = 1;
            if (!f->busy)
                wake_one(f, 1, NULL);
        }
    }
    pthread_mutex_unlock(&t->lock);
}

void strata__flight_counts(flight_table *t, size_t *flights, size_t *waiters)
{
    pthread_mutex_lock(&t->lock);
    *flights = t->nflights, *waiters = t->nwaiters;
    pthread_mutex_unlock(&t->lock);
}
