/* redis/link.h: the invalidation link, part of the Redis client (client.c owns it). */
#ifndef STRATA_REDIS_LINK_H
#define STRATA_REDIS_LINK_H

#include <stdint.h>

#include "redis/client.h"
#include "redis/sock.h"

typedef struct redis_link redis_link;

/* What the link is handed by the client that owns it (it calls nothing of the client by name).
 * Every function gets arg. */
typedef struct link_deps {
    /* A connected, authenticated connection, or NULL with the reason in err. */
    redis_sock *(*connect)(void *arg, char *err, size_t cap);
    /* A failure to record for stats and health; a line to the log. */
    void (*note_error)(void *arg, const char *msg);
    void (*log)(void *arg, int level, const char *msg);
    /* Called between keep-alives, from the link's thread, which may block briefly. */
    void (*idle)(void *arg);
    /* The target's generation: when it moves, the link connects again (to the new primary). */
    uint64_t (*gen)(void *arg);
    const redis_events *ev; /* where invalidations and link_up go */
    unsigned socket_timeout_ms;
    void *arg;
} link_deps;

/* Starts the link's thread for keys under prefix (e.g. "strata:"), and for the lease channel
 * of that prefix ("strata!lease"). It connects and reconnects by itself and reports through
 * deps->ev (link_up, link_down, invalidated, lease_message). Returns 0, STRATA_ENOMEM,
 * STRATA_EINVAL (not a prefix) or STRATA_ETHREAD. */
int strata__link_start(const link_deps *deps, const char *prefix, redis_link **out);

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
