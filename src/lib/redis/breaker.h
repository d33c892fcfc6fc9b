/* breaker.h: the circuit breaker in front of the shared tier. */
#ifndef STRATA_BREAKER_H
#define STRATA_BREAKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

enum breaker_state { BREAKER_CLOSED = 0, BREAKER_OPEN = 1, BREAKER_HALF_OPEN = 2 };

typedef struct breaker {
    pthread_mutex_t lock;
    int state;
    unsigned failures;  /* consecutive */
    unsigned threshold; /* failures that open it */
    uint64_t min_backoff_ms, max_backoff_ms, backoff_ms;
    uint64_t probe_at_ms;  /* when open: the earliest moment for a probe */
    uint64_t opened_total; /* times it opened */
    uint64_t rng;
    atomic_int healthy; /* closed with no failures: success has nothing to do (no lock) */
} breaker;

void strata__breaker_init(breaker *b, unsigned threshold, uint64_t min_ms, uint64_t max_ms);
void strata__breaker_destroy(breaker *b);

/* May a call go to the shared tier now? Closed: yes. Open: no, until the backoff has passed, when
 * exactly one caller gets a yes (the probe) and the breaker is half-open until it reports. */
int strata__breaker_allow(breaker *b, uint64_t now_ms);

/* Reports a call's outcome. Returns 1 when this success closed an open breaker (the shared
 * tier has come back: the caller revalidates what it cached meanwhile), else 0. */
int strata__breaker_success(breaker *b);
/* Returns 1 when this failure opened a closed breaker (Redis just became unavailable). */
int strata__breaker_failure(breaker *b, uint64_t now_ms);

/* Open: the next allow() may probe at once (what failed is gone: a new primary). */
void strata__breaker_retry_now(breaker *b);

int strata__breaker_state(breaker *b);
const char *strata__breaker_state_name(int state);

#endif
