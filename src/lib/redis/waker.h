/* redis/waker.h: the thread the Redis client's watchers run on (the resolver, the sentinel and
 * the cluster watchers): a thread that sleeps until its next round, until it is stopped, or until
 * the client asks it to look again now, woken through a pipe so that a sleep in poll() ends at
 * once. Written once here; each watcher only says what a round does.
 *
 *     redis_waker w;
 *     strata__waker_start(&w, run, arg);       // run() loops while !strata__waker_stopping(&w)
 *     strata__waker_ask(&w);                   // any thread, never blocks: look again soon
 *     strata__waker_stop(&w);                  // wakes it, joins it, closes the pipe
 */
#ifndef STRATA_REDIS_WAKER_H
#define STRATA_REDIS_WAKER_H

#include <pthread.h>
#include <stdatomic.h>

typedef struct redis_waker {
    pthread_t thread;
    int wake[2]; /* a pipe: written to stop the thread, or to have it look again */
    atomic_int stop, ask;
} redis_waker;

/* Starts run(arg) on a new thread. Returns 0 or STRATA_ETHREAD (no pipe, no thread). */
int strata__waker_start(redis_waker *w, void *(*run)(void *), void *arg);
/* Stops the thread (it must return once strata__waker_stopping says so) and closes the pipe. */
void strata__waker_stop(redis_waker *w);
/* The client asks the thread to look again now. Any thread; never blocks. */
void strata__waker_ask(redis_waker *w);

/* For the thread: whether it must return; whether it was asked (clearing the question). */
int strata__waker_stopping(redis_waker *w);
int strata__waker_asked(redis_waker *w);
/* Whether it was asked, without clearing it. */
int strata__waker_pending(redis_waker *w);
/* Sleeps up to timeout_ms, or until woken; with fd >= 0 also until fd is readable (or fails).
 * Returns 1 when fd is readable (or has failed), else 0. */
int strata__waker_sleep(redis_waker *w, int timeout_ms, int fd);

#endif
