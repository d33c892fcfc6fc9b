/* redis/resolve.h: REDIS_URL's host name, resolved again off the event loops, part of the Redis
 * client (client.c owns it).
 *
 * A name that moves (a DNS-based failover: the name now points at the new primary) must be
 * followed without a restart, and resolving it must never block a worker's event loop. So a
 * thread of the client resolves it with getaddrinfo (the system's resolver: /etc/hosts, DNS,
 * whatever nsswitch says, exactly as every other program on the machine sees the name): at
 * every reconnect of any connection (the client asks, never waiting), at every failure, and
 * every RESOLVE_EVERY_MS besides. A different address is handed to the client, which makes it
 * the target; the connections follow it as they follow a new primary from the sentinels.
 */
#ifndef STRATA_REDIS_RESOLVE_H
#define STRATA_REDIS_RESOLVE_H

#define RESOLVE_EVERY_MS   5000 /* a name is looked up again this often without a reason */
#define RESOLVE_MIN_GAP_MS 100  /* and at most this often when asked */

typedef struct redis_resolver redis_resolver;

/* What the resolver is handed by the client (it calls nothing of the client by name). */
typedef struct resolver_deps {
    /* The name resolves to addr (numeric), which may be the address it had. */
    void (*resolved)(void *arg, const char *addr);
    /* The name did not resolve: why, for stats and health. */
    void (*note_error)(void *arg, const char *msg);
    void *arg;
} resolver_deps;

/* Starts the thread for host (a name; copied). Returns 0, STRATA_ENOMEM or STRATA_ETHREAD. */
int strata__resolver_start(const resolver_deps *d, const char *host, redis_resolver **out);
/* Stops the thread. NULL is a no-op. */
void strata__resolver_stop(redis_resolver *r);
/* Resolves the name again soon (a connection is being made again). Any thread; never blocks.
 * NULL is a no-op. */
void strata__resolver_ask(redis_resolver *r);

#endif
