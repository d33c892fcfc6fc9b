/* offload.c: the admin lanes (offload.h): threads taking jobs in turn from a fair queue under one
 * lock, each result handed back to the loop that asked.
 *
 * A lane's threads wait for Redis on behalf of admin calls whose callers wait for it anyway; the
 * event loops must only never wait for it. Several threads per lane, with one job per tenant at a
 * time, let a tenant's long scan run beside another tenant's, instead of in front of it.
 */
#include <stdlib.h>

#include <event2/event.h>

#include "log.h"
#include "offload.h"

void offload_init(offload_lane *lane, const char *name, unsigned threads, unsigned max_waiting,
                  unsigned max_per_tenant, unsigned max_running)
{
    pthread_mutex_init(&lane->lock, NULL);
    pthread_cond_init(&lane->cond, NULL);
    fairq_init(&lane->q, max_waiting, max_per_tenant, max_running);
    lane->name = name;
    lane->threads = NULL;
    lane->nthreads = threads ? threads : 1;
    lane->started = 0;
    lane->stop = 0;
}

int offload_submit(offload_lane *lane, struct event_base *base, const char *tenant, int force,
                   void (*fn)(void *), void (*done)(void *), void *arg)
{
    offload_job *j = calloc(1, sizeof *j);
    if (j == NULL)
        return -1;
    j->base = base, j->fn = fn, j->done = done, j->arg = arg;
    pthread_mutex_lock(&lane->lock);
    int rc = fairq_put(&lane->q, tenant, &j->item, force);
    if (rc == 0)
        pthread_cond_signal(&lane->cond);
    pthread_mutex_unlock(&lane->lock);
    if (rc != 0) {
        free(j);
        return -1;
    }
    return 0;
}

offload_job *offload_take(offload_lane *lane)
{
    pthread_mutex_lock(&lane->lock);
    offload_job *j = (offload_job *)fairq_take(&lane->q);
    pthread_mutex_unlock(&lane->lock);
    return j;
}

static void job_back(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    offload_job *j = arg;
    j->done(j->arg);
    free(j);
}

void offload_run(offload_lane *lane, offload_job *j)
{
    j->fn(j->arg);
    /* Its tenant may run its next job: wake a thread for it. Broadcast: the one waiting may not
     * be the one a signal would pick. */
    pthread_mutex_lock(&lane->lock);
    fairq_done(&lane->q, &j->item);
    pthread_cond_broadcast(&lane->cond);
    pthread_mutex_unlock(&lane->lock);
    struct timeval now = {0, 0};
    /* Back to the asking loop's own thread: event_base_once is safe across threads once
     * evthread_use_pthreads() was called. */
    if (event_base_once(j->base, -1, EV_TIMEOUT, job_back, j, &now) != 0) {
        log_msg(LOG_ERROR, "could not hand an offloaded result back to its worker");
        free(j);
    }
}

static void *lane_main(void *arg)
{
    offload_lane *lane = arg;
    pthread_mutex_lock(&lane->lock);
    for (;;) {
        fairq_item *it = fairq_take(&lane->q);
        if (it == NULL) {
            if (lane->stop && lane->q.waiting == 0)
                break;
            pthread_cond_wait(&lane->cond, &lane->lock);
            continue;
        }
        pthread_mutex_unlock(&lane->lock);
        offload_run(lane, (offload_job *)it);
        pthread_mutex_lock(&lane->lock);
    }
    pthread_mutex_unlock(&lane->lock);
    return NULL;
}

int offload_start(offload_lane *lane)
{
    lane->threads = calloc(lane->nthreads, sizeof *lane->threads);
    if (lane->threads == NULL)
        return -1;
    for (; lane->started < lane->nthreads; lane->started++)
        if (pthread_create(&lane->threads[lane->started], NULL, lane_main, lane) != 0)
            return -1; /* offload_stop joins those that started */
    return 0;
}

void offload_stop(offload_lane *lane)
{
    pthread_mutex_lock(&lane->lock);
    lane->stop = 1;
    pthread_cond_broadcast(&lane->cond);
    pthread_mutex_unlock(&lane->lock);
    for (unsigned i = 0; i < lane->started; i++)
        pthread_join(lane->threads[i], NULL);
    lane->started = 0;
    free(lane->threads);
    lane->threads = NULL;
    fairq_item *it;
    while ((it = fairq_take(&lane->q)) != NULL) { /* never started: their loops are gone */
        fairq_done(&lane->q, it);
        free(it);
    }
    pthread_mutex_destroy(&lane->lock);
    pthread_cond_destroy(&lane->cond);
}
