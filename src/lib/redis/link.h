/* redis/link.h: the invalidation link, part of the Redis client (client.c owns it). */
#ifndef STRATA_REDIS_LINK_H
#define STRATA_REDIS_LINK_H

#include <stdint.h>

#include "redis/client.h"

typedef struct redis_link redis_link;

/* Starts the link's thread for keys under prefix (e.g. "strata:"). It connects and reconnects
 * by itself and reports through the client's events (link_up, invalidated). Returns 0,
 * STRATA_ENOMEM or STRATA_ETHREAD. */
int strata__link_start(redis_client *cl, const char *prefix, redis_link **out);

/* Stops the thread and closes the link. NULL is a no-op. */
void strata__link_stop(redis_link *k);

/* Whether every change under the prefix reaches the owner: the link is subscribed and answered
 * its last keep-alive in time. 0 for NULL. */
int strata__link_up(redis_link *k);

/* Counters: invalidation messages received, and times the link was lost. */
uint64_t strata__link_invalidations(redis_link *k);
uint64_t strata__link_drops(redis_link *k);

/* For tests: how long the link waits for a keep-alive answer before calling itself down. */
#define COHERENCE_PING_MS 50

#endif
