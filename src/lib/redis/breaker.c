/* breaker.c: a circuit breaker, so a dead Redis costs callers nothing.
 *
 * Closed: calls go through; N consecutive failures open it. Open: calls fail fast (the cache
 * answers from L1) until a backoff has passed; then one call is let through as a probe
 * (half-open). A successful probe closes the breaker; a failed one reopens it with the backoff
 * doubled, up to a maximum, with +-25% jitter so a fleet of instances does not probe a recovering
 * Redis in lockstep. Time is a parameter, like everywhere in libstrata.
 */
#include "redis/breaker.h"
#include "core/rand.h"

void strata__breaker_init(breaker *b, unsigned threshold, uint64_t min_ms, uint64_t max_ms)
{
    pthread_mutex_init(&b->lock, NULL);
    b->state = BREAKER_CLOSED;
    b->failures = 0;
    b->threshold = threshold ? threshold : 1;
    b->min_backoff_ms = min_ms ? min_ms : 1;
    b->max_backoff_ms = max_ms > b->min_backoff_ms ? max_ms : b->min_backoff_ms;
    b->backoff_ms = b->min_backoff_ms;
    b->probe_at_ms = 0;
    b->opened_total = 0;
    b->rng = strata__rand_seed();
    atomic_init(&b->healthy, 1);
}

void strata__breaker_destroy(breaker *b)
{
    pthread_mutex_destroy(&b->lock);
}

int strata__breaker_allow(breaker *b, uint64_t now_ms)
{
    pthread_mutex_lock(&b->lock);
    int ok = b->state == BREAKER_CLOSED;
    if (b->state == BREAKER_OPEN && now_ms >= b->probe_at_ms) {
        b->state = BREAKER_HALF_OPEN;
        ok = 1;
    }
    pthread_mutex_unlock(&b->lock);
    return ok;
}

int strata__breaker_success(breaker *b)
{
    /* The common case, on every reply of every connection: no lock. */
    if (atomic_load_explicit(&b->healthy, memory_order_acquire))
        return 0;
    pthread_mutex_lock(&b->lock);
    int recovered = b->state != BREAKER_CLOSED;
    b->state = BREAKER_CLOSED;
    b->failures = 0;
    b->backoff_ms = b->min_backoff_ms;
    atomic_store_explicit(&b->healthy, 1, memory_order_release);
    pthread_mutex_unlock(&b->lock);
    return recovered;
}

static uint64_t jittered(breaker *b, uint64_t ms)
{
    double f = 0.75 + 0.5 * strata__rand_unit(&b->rng);
    return (uint64_t)((double)ms * f) + 1;
}

int strata__breaker_failure(breaker *b, uint64_t now_ms)
{
    int opened = 0;
    pthread_mutex_lock(&b->lock);
    atomic_store_explicit(&b->healthy, 0, memory_order_release);
    if (b->state == BREAKER_HALF_OPEN) {
        b->backoff_ms =
            b->backoff_ms * 2 > b->max_backoff_ms ? b->max_backoff_ms : b->backoff_ms * 2;
        b->state = BREAKER_OPEN;
        b->probe_at_ms = now_ms + jittered(b, b->backoff_ms);
    } else if (b->state == BREAKER_CLOSED && ++b->failures >= b->threshold) {
        b->state = BREAKER_OPEN;
        b->opened_total++;
        b->probe_at_ms = now_ms + jittered(b, b->backoff_ms);
        opened = 1;
    }
    pthread_mutex_unlock(&b->lock);
    return opened;
}

void strata__breaker_retry_now(breaker *b)
{
    pthread_mutex_lock(&b->lock);
    if (b->state == BREAKER_OPEN)
        b->probe_at_ms = 0;
    pthread_mutex_unlock(&b->lock);
}

int strata__breaker_state(breaker *b)
{
    pthread_mutex_lock(&b->lock);
    int s = b->state;
    pthread_mutex_unlock(&b->lock);
    return s;
}

const char *strata__breaker_state_name(int state)
{
    switch (state) {
    case BREAKER_CLOSED:
        return "closed";
    case BREAKER_OPEN:
        return "open";
    default:
        return "half-open";
    }
}
