/* features/flight.h: the flight table: per value key, one flight for every caller of this process
 * that waits for the key's value.
 *
 * A flight is what one process knows and does about a key whose value it is waiting for: the
 * callers waiting (a FIFO of waiters), whether one of them is doing the flight's Redis work now
 * (busy: every other waiter rides on it, no Redis call of its own), whether something changed
 * since the last look (dirty: a lease message, an invalidation, a local fill), until when the
 * holder's lease runs, as last heard, and the value once found (answered to every waiter). The
 * table is owned by the leases object (features/lease.c), under one mutex, and bounded: at most
 * max_flights flights and max_waiters waiters in the process.
 *
 * The table holds no lease: who holds a key's lease is decided by Redis, or, while Redis cannot,
 * by features/lease_table.c. A flight only remembers when to ask again, so the two tables never
 * have to agree (a flight that is wrong about the holder asks, and is told).
 *
 * What a waiter does when it looks (strata__flight_step_locked) is decided here, on a time given
 * by the caller, so unit tests drive it on a fake clock; the waiting itself (a condition variable
 * for a thread, an event for a loop) and the Redis work are features/lease_wait.c's. Waking is
 * here: a thread's condition variable is signalled, a loop's event made active (event_active,
 * which needs libevent's thread support, evthread_use_pthreads(), when the waker is another
 * thread).
 *
 * Every function named *_locked expects the caller to hold the table's lock.
 */
#ifndef STRATA_FEATURES_FLIGHT_H
#define STRATA_FEATURES_FLIGHT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <strata/lease.h>

struct event;
typedef struct flight flight;
typedef struct flight_table flight_table;

/* One caller waiting. Its memory is the caller's (a thread's stack, a loop call's allocation);
 * the table links it while it waits. Fields below `f` are the table lock's. */
typedef struct flight_waiter {
    struct flight_waiter *next, *prev; /* in its flight's FIFO */
    flight *f;
    int wants_lease;     /* may be handed the lease (the caller chose takeover) */
    uint64_t deadline;   /* monotonic ms: the end of its wait */
    uint64_t until;      /* when its last FLIGHT_WAIT told it to look again */
    pthread_cond_t *cv;  /* how it is woken: a thread's condition variable, */
    struct event *ev;    /* or a loop's event */
    int woken;           /* set by a wake, cleared by the waiter when it looks */
    int working;         /* it is doing the flight's work (f->busy is its) */
    int done, status;    /* its answer, once decided */
    strata_value *value; /* STRATA_OK: its reference */
    int coalesced;       /* STRATA_OK: the value came from a wait, not from its own first look */
    strata_lease_grant g;
} flight_waiter;

/* One key's flight. */
struct flight {
    flight *next; /* in its bucket */
    uint64_t hash;
    flight_waiter *head, *tail;
    size_t nwaiters, nwant; /* waiters, and those of them that want the lease */
    int busy;               /* a waiter does the flight's work */
    int dirty;              /* something changed since the last look: look again */
    int acquire_next;       /* a look found no value: a waiter that wants the lease asks for it */
    int looked;             /* the first caller's acquire is done */
    int seen_held;          /* the lease was found held: a value found later was waited for */
    uint64_t held_until;    /* monotonic ms: the holder's lease ends, as last heard (0: unknown) */
    uint64_t poll_at, poll_ms; /* without notifications: the next look, and the backoff */
    strata_value *value;       /* found: answered to every waiter (the flight's reference) */
    strata_key k;              /* the caller's address, for the cache's calls (copies below) */
    char ns[STRATA_NAME_MAX + 1], tenant[STRATA_NAME_MAX + 1];
    size_t klen; /* the stored key, then the user key */
    char key[];
};

/* The poll fallback (no notifications: the invalidation link is down, or no Redis): the first look
 * FLIGHT_POLL_MIN_MS after the flight began, then each gap doubled up to FLIGHT_POLL_MAX_MS. */
#define FLIGHT_POLL_MIN_MS 50
#define FLIGHT_POLL_MAX_MS 1000

/* A table of at most max_flights flights and max_waiters waiters. Returns 0 or STRATA_ENOMEM. */
int strata__flight_table_new(size_t max_flights, size_t max_waiters, flight_table **out);
/* Frees it: every waiter must have left. NULL is a no-op. */
void strata__flight_table_free(flight_table *t);

void strata__flight_lock(flight_table *t);
void strata__flight_unlock(flight_table *t);
pthread_mutex_t *strata__flight_mutex(flight_table *t); /* for a thread's timed wait */

/* Adds w to the flight of the stored key key[0..klen) (k: its address), making the flight if
 * there is none; w's wants_lease and deadline are set. *first = 1 when w made it: w then does the
 * flight's first work (the acquire), the flight is busy with it. now: monotonic ms. Returns 0,
 * STRATA_EBUSY (max_flights flights or max_waiters waiters already) or STRATA_ENOMEM. */
int strata__flight_join_locked(flight_table *t, const char *key, size_t klen, const strata_key *k,
                               flight_waiter *w, uint64_t now, int *first);

/* Takes w out of its flight (done or not), and frees the flight when nobody is left in it and
 * nobody works for it. */
void strata__flight_leave_locked(flight_table *t, flight_waiter *w);

/* What a waiter does when it looks. */
enum flight_action {
    FLIGHT_WAIT,    /* wait until *until (monotonic ms), or a wake */
    FLIGHT_LOOK,    /* do the flight's work: re-read the value; if none, and w wants the lease,
                       ask for it (f->busy is w's until strata__flight_idle_locked) */
    FLIGHT_ACQUIRE, /* do the flight's work: ask for the lease for w (the first caller's
                       acquire, a takeover, or w's own at the end of its wait) */
    FLIGHT_DONE     /* w has its answer (w->status ...): leave */
};
/* Decides what w does at now (monotonic ms). polling: nothing tells the flight of changes (the
 * invalidation link is down, or there is no Redis): look every poll gap. In order:
 *   - w has its answer, or the flight has the value (w gets a reference): FLIGHT_DONE;
 *   - nobody works, and something is to be done: a change was heard, the holder's lease has
 *     run out (for a waiter that wants it), a poll is due: FLIGHT_LOOK, or FLIGHT_ACQUIRE when a
 *     look found no value and w wants the lease;
 *   - w's wait is over: FLIGHT_ACQUIRE if w wants the lease, nobody works and the lease is not
 *     known to be held; else the answer "still held" (STRATA_EHELD, g.held_ms as last heard):
 *     FLIGHT_DONE;
 *   - else FLIGHT_WAIT until the first of its deadline, the lease's end (w wants it), the next
 *     poll. */
int strata__flight_step_locked(flight_table *t, flight_waiter *w, uint64_t now, int polling,
                               uint64_t *until);

/* What the work of w (FLIGHT_LOOK / FLIGHT_ACQUIRE) found, applied to its flight. */
typedef struct flight_found {
    strata_value *value;  /* a value (the flight takes its own reference), or NULL */
    int granted;          /* w was granted the lease: g */
    strata_lease_grant g; /* granted; or g.held_ms when held */
    int held;             /* the lease is held by another, for g.held_ms */
    int missing;          /* no value, and w did not ask for the lease */
    int failed;           /* w's answer is this status (STRATA_ELIMIT, an error), or 0 */
    uint64_t lease_ms;    /* granted: its length */
} flight_found;
/* Applies what w's work found at now, then the flight is free for the next work: a value answers
 * every waiter (each gets a reference) and stays for those that look later; a grant is w's
 * answer (STRATA_LEASED); the lease held sets when it ends; no value makes a waiter that wants
 * the lease ask next (the oldest is woken). If a change was heard meanwhile, a waiter is woken to
 * look again. Returns what the flight answered: 1 a value, 0 nothing. */
int strata__flight_found_locked(flight_table *t, flight_waiter *w, const flight_found *found,
                                uint64_t now);

/* Something changed about key[0..klen) (key NULL: about every key): its flight, if any, is
 * dirty, and a waiter is woken to look (the oldest that wants the lease, else the oldest), unless
 * one works for it already (it looks again when done). Takes the lock. Any thread. */
void strata__flight_notify(flight_table *t, const char *key, size_t klen);

/* Wakes w (its condition variable or its event). */
void strata__flight_wake_locked(flight_waiter *w);

/* Flights and waiters now. */
void strata__flight_counts(flight_table *t, size_t *flights, size_t *waiters);

#endif
