/* offload.h: lanes of threads for the blocking library calls (admin work: SCAN-based clears and
 * listings, tag invalidations, INFO), whose results come back to the event loop that asked.
 *
 * A lane is a few threads and a queue kept per tenant and served in turn (fairq.h). strata serve
 * runs two: the bulk lane (clears, listings, pattern invalidations: each a pass over Redis'
 * keyspace) and the quick lane (a few round trips each: stats' INFO, tag invalidations), so no
 * quick call ever waits behind a scan. Health asks Redis on the worker's own loop and uses no lane.
 *
 * A job's fn runs on one of the lane's threads, then its done on the asking loop (event_base_once
 * is safe across threads once evthread_use_pthreads() was called). A tenant's jobs run in order
 * of submission when the lane runs one job per tenant at a time (max_running 1).
 */
#ifndef STRATA_SERVER_OFFLOAD_H
#define STRATA_SERVER_OFFLOAD_H

#include <pthread.h>

#include "fairq.h"

struct event_base;

typedef struct offload_job {
    fairq_item item;         /* first: a job is its queue item */
    struct event_base *base; /* where done runs */
    void (*fn)(void *);
    void (*done)(void *);
    void *arg;
} offload_job;

typedef struct offload_lane {
    const char *name; /* for the log: "bulk", "quick" */
    pthread_t *threads;
    unsigned nthreads, started;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* a job came, one finished (its tenant may run the next), or stop */
    fairq q;
    int stop;
} offload_lane;

/* Prepares lane (no thread yet): threads threads, at most max_waiting jobs waiting in all and
 * max_per_tenant per tenant, each tenant running at most max_running at once. */
void offload_init(offload_lane *lane, const char *name, unsigned threads, unsigned max_waiting,
                  unsigned max_per_tenant, unsigned max_running);
/* Starts the lane's threads. Returns 0 or -1. */
int offload_start(offload_lane *lane);
/* Runs fn(arg) on one of lane's threads, in tenant's turn, then done(arg) on base's loop.
 * force: queued past the bounds too (for calls of one round trip that must always be answered).
 * Returns 0; or -1 when tenant, or the lane, has as many jobs waiting as allowed (or out of
 * memory): nothing will run, and arg is still the caller's. */
int offload_submit(offload_lane *lane, struct event_base *base, const char *tenant, int force,
                   void (*fn)(void *), void (*done)(void *), void *arg);
/* Takes the next job in turn off lane, or NULL (what a thread does; the HTTP fuzz target runs
 * the lanes itself with it). */
offload_job *offload_take(offload_lane *lane);
/* Runs j's fn here, then hands j to its loop for done. */
void offload_run(offload_lane *lane, offload_job *j);
/* Stops lane's threads once the queued jobs ran, and frees what it holds. */
void offload_stop(offload_lane *lane);

#endif
