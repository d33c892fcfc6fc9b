/* coherence.h: the invalidation link that keeps L1 coherent with Redis. */
#ifndef STRATA_COHERENCE_H
#define STRATA_COHERENCE_H

#include <stdint.h>

#include <strata/l1.h>

#include "redis/l2.h"

typedef struct coherence coherence;

/* Starts the link's thread. It connects (and reconnects) by itself; until it is up, up() is 0.
 * Returns 0, STRATA_ENOMEM or STRATA_ETHREAD. */
int strata__coherence_start(l2 *l, strata_l1 *l1, coherence **out);

/* Stops the thread and closes the link. NULL is a no-op. */
void strata__coherence_stop(coherence *c);

/* Whether every write to Redis since L1's contents were last made trustworthy has reached us:
 * the link is subscribed and answered its last keep-alive in time. */
int strata__coherence_up(coherence *c);

/* Counters: invalidation messages applied, and times the link was lost. */
uint64_t strata__coherence_invalidations(coherence *c);
uint64_t strata__coherence_drops(coherence *c);

/* For tests: how long the link waits for a keep-alive answer before calling itself down. */
#define COHERENCE_PING_MS 50

#endif
