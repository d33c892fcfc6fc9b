/* offload.c: the offload thread (offload.h): a queue of jobs under one lock, one thread
 * running them in order, each result handed back to the loop that asked.
 *
 * One thread is enough: what runs here is admin work (SCAN-based clears and listings, INFO,
 * PING) whose callers wait for Redis anyway; the event loops must only never wait for it.
 */
#include <stdlib.h>

#include <event2/event.h>

#include "log.h"
#include "offload.h"

void offload_init(offload_queue *q)
{
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->cond, NULL);
    q->head = q->tail = NULL;
    q->stop = q->started = 0;
}

void offload_submit(offload_queue *q, struct event_base *base, void (*fn)(void *),
                    void (*done)(void *), void *arg)
{
    offload_job *j = calloc(1, sizeof *j);
    if (j == NULL) { /* the request still gets an answer */
        fn(arg);
        done(arg);
        return;
    }
    j->base = base, j->fn = fn, j->done = done, j->arg = arg;
    pthread_mutex_lock(&q->lock);
    if (q->tail)
        q->tail->next = j;
    else
        q->head = j;
    q->tail = j;
    pthread_cond_signal(&q->cond);
    pthread_mutex_unlock(&q->lock);
}

offload_job *offload_take(offload_queue *q)
{
    pthread_mutex_lock(&q->lock);
    offload_job *j = q->head;
    if (j != NULL && (q->head = j->next) == NULL)
        q->tail = NULL;
    pthread_mutex_unlock(&q->lock);
    return j;
}

static void job_back(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    offload_job *j = arg;
    j->done(j->arg);
    free(j);
}

void offload_run(offload_job *j)
{
    j->fn(j->arg);
    struct timeval now = {0, 0};
    /* Back to the asking loop's own thread: event_base_once is safe across threads once
     * evthread_use_pthreads() was called. */
    if (event_base_once(j->base, -1, EV_TIMEOUT, job_back, j, &now) != 0) {
        log_msg(LOG_ERROR, "could not hand an offloaded result back to its worker");
        free(j);
    }
}

static void *offload_main(void *arg)
{
    offload_queue *q = arg;
    pthread_mutex_lock(&q->lock);
    for (;;) {
        while (q->head == NULL && !q->stop)
            pthread_cond_wait(&q->cond, &q->lock);
        if (q->head == NULL)
            break;
        pthread_mutex_unlock(&q->lock);
        offload_job *j = offload_take(q);
        if (j != NULL)
            offload_run(j);
        pthread_mutex_lock(&q->lock);
    }
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

int offload_start(offload_queue *q)
{
    if (pthread_create(&q->thread, NULL, offload_main, q) != 0)
        return -1;
    q->started = 1;
    return 0;
}

void offload_stop(offload_queue *q)
{
    if (q->started) {
        pthread_mutex_lock(&q->lock);
        q->stop = 1;
        pthread_cond_signal(&q->cond);
        pthread_mutex_unlock(&q->lock);
        pthread_join(q->thread, NULL);
        q->started = 0;
    }
    offload_job *j;
    while ((j = offload_take(q)) != NULL)
        free(j); /* never started: their loops are gone */
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->cond);
}
