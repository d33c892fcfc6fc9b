/* redis/sentinel.h: finding the primary through Redis Sentinel and following its failovers,
 * part of the Redis client (client.c owns it).
 *
 * A thread of its own, like the invalidation link: it asks the sentinels, one after the other,
 * `SENTINEL get-master-addr-by-name <master>`, stays subscribed to `+switch-master` on one of
 * them, asks again every second (a message lost while it reconnected costs at most that) and
 * whenever the client says the primary it was given is not one (a connection found a replica
 * by ROLE, or failed). Every answer goes to the client's `primary` function, which publishes
 * the address the connections use; the watcher knows nothing of those connections.
 */
#ifndef STRATA_REDIS_SENTINEL_H
#define STRATA_REDIS_SENTINEL_H

#include <stddef.h>

#include <strata/cache.h>

#include "redis/redis_url.h"

#define SENTINELS_MAX   16
#define SENTINEL_ASK_MS 1000 /* how often the sentinels are asked again without a reason */

typedef struct sentinel_addr {
    char host[REDIS_URL_PART_MAX]; /* as written: a name or an address ([v6] without brackets) */
    int port;
} sentinel_addr;

/* Parses "host:port,host:port,..." (an IPv6 address in brackets, [::1]:26379; spaces around the
 * commas allowed; 1 to SENTINELS_MAX entries; the port is required). out (SENTINELS_MAX
 * entries) and n may be NULL to check only. Returns 0, or STRATA_EBADURL with *why (may be NULL)
 * set to a static message. */
int strata__sentinels_parse(const char *list, sentinel_addr *out, size_t *n, const char **why);

/* Whether name can be a monitored master's name (1-128 printable characters, no spaces).
 * Returns 0 or STRATA_EINVAL. */
int strata__sentinel_master_check(const char *name);

/* The url the client keeps for a primary found through sentinels: no host yet (the watcher
 * tells it), REDIS_USERNAME / REDIS_PASSWORD as the credentials, db 0, TLS when cfg->tls. */
void strata__sentinel_url(const strata_redis_config *cfg, redis_url *out);

typedef struct redis_sentinel redis_sentinel;
struct redis_tls;

/* What the watcher is handed by the client (it calls nothing of the client by name). */
typedef struct sentinel_deps {
    /* The sentinels name this primary: name as they gave it, addr the numeric address it
     * resolved to (the watcher's thread may block; the event loops may not). */
    void (*primary)(void *arg, const char *name, const char *addr, int port);
    void (*note_error)(void *arg, const char *msg);
    void (*log)(void *arg, int level, const char *msg);
    const struct redis_tls *tls; /* for the sentinels; NULL: plain TCP */
    unsigned connect_timeout_ms, socket_timeout_ms;
    void *arg;
} sentinel_deps;

/* Starts the watcher for cfg's sentinels and master (already checked). Returns 0,
 * STRATA_ENOMEM, STRATA_EBADURL or STRATA_ETHREAD. */
int strata__sentinel_start(const sentinel_deps *d, const strata_redis_config *cfg,
                           redis_sentinel **out);
/* Stops the thread and closes its connections. NULL is a no-op. */
void strata__sentinel_stop(redis_sentinel *s);
/* Asks the sentinels again soon (at most every 100 ms): the primary given may not be one any
 * more. Any thread; never blocks. NULL is a no-op. */
void strata__sentinel_ask(redis_sentinel *s);

#endif
