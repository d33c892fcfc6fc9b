/* redis/waker.c: a watcher's thread and the pipe that wakes it (waker.h). */
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <strata/errors.h>

#include "redis/waker.h"

int strata__waker_start(redis_waker *w, void *(*run)(void *), void *arg)
{
    atomic_init(&w->stop, 0);
    atomic_init(&w->ask, 0);
    if (pipe2(w->wake, O_CLOEXEC | O_NONBLOCK) != 0)
        return STRATA_ETHREAD;
    if (pthread_create(&w->thread, NULL, run, arg) != 0) {
        close(w->wake[0]), close(w->wake[1]);
        return STRATA_ETHREAD;
    }
    return 0;
}

void strata__waker_stop(redis_waker *w)
{
    atomic_store(&w->stop, 1);
    ssize_t n = write(w->wake[1], "x", 1);
    (void)n;
    pthread_join(w->thread, NULL);
    close(w->wake[0]), close(w->wake[1]);
}

void strata__waker_ask(redis_waker *w)
{
    if (atomic_exchange(&w->ask, 1))
        return;                            /* already asked: the thread has been woken */
    ssize_t n = write(w->wake[1], "x", 1); /* a full pipe has woken it already */
    (void)n;
}

int strata__waker_stopping(redis_waker *w)
{
    return atomic_load(&w->stop);
}

int strata__waker_asked(redis_waker *w)
{
    return atomic_exchange(&w->ask, 0);
}

int strata__waker_pending(redis_waker *w)
{
    return atomic_load(&w->ask);
}

int strata__waker_sleep(redis_waker *w, int timeout_ms, int fd)
{
    struct pollfd p[2] = {{.fd = w->wake[0], .events = POLLIN}, {.fd = fd, .events = POLLIN}};
    int n = poll(p, fd >= 0 ? 2 : 1, timeout_ms > 0 ? timeout_ms : 0);
    if (n > 0 && (p[0].revents & POLLIN)) {
        char drain[64];
        while (read(w->wake[0], drain, sizeof drain) > 0) {
        }
    }
    return n > 0 && fd >= 0 && (p[1].revents & (POLLIN | POLLERR | POLLHUP)) != 0;
}
