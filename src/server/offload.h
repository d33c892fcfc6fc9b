/* offload.h: one thread for the blocking library calls (admin: SCAN-based clears and listings,
 * INFO, PING), whose results come back to the event loop that asked.
 *
 * A job's fn runs on the offload thread, then its done on the asking loop (event_base_once is
 * safe across threads once evthread_use_pthreads() was called). Jobs run in order.
 */
#ifndef STRATA_SERVER_OFFLOAD_H
#define STRATA_SERVER_OFFLOAD_H

#include <pthread.h>

struct event_base;

typedef struct offload_job {
    struct offload_job *next;
    struct event_base *base; /* where done runs */
    void (*fn)(void *);
    void (*done)(void *);
    void *arg;
} offload_job;

typedef struct offload_queue {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    offload_job *head, *tail;
    int stop, started;
} offload_queue;

/* Prepares q (no thread yet). */
void offload_init(offload_queue *q);
/* Starts q's thread. Returns 0 or -1. */
int offload_start(offload_queue *q);
/* Runs fn(arg) on q's thread, then done(arg) on base's loop. Out of memory: both run at once,
 * here, so the caller still gets its answer. */
void offload_submit(offload_queue *q, struct event_base *base, void (*fn)(void *),
                    void (*done)(void *), void *arg);
/* Takes the oldest job off q, or NULL (what the thread does; the HTTP fuzz target runs the
 * queue itself with it). */
offload_job *offload_take(offload_queue *q);
/* Runs j's fn here, then hands j to its loop for done. */
void offload_run(offload_job *j);
/* Stops q's thread once the queued jobs ran, and frees what it holds. */
void offload_stop(offload_queue *q);

#endif
