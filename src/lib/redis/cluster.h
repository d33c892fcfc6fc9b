/* redis/cluster.h: Redis Cluster's slot map, asked of the nodes and followed, part of the Redis
 * client (client.c owns it).
 *
 * A thread of its own, like the sentinel watcher: it asks a node `CLUSTER SLOTS` (the primaries
 * of the last map first, then the seed nodes of REDIS_CLUSTER, each resolved again here with
 * getaddrinfo: this thread may block, the event loops may not), every CLUSTER_ASK_MS and soon
 * after the client says the map may be wrong (a MOVED reply, a node that failed). Each map read
 * goes to the client's `map` function with every host made numeric; the watcher knows nothing
 * of the connections that use it.
 */
#ifndef STRATA_REDIS_CLUSTER_H
#define STRATA_REDIS_CLUSTER_H

#include <stddef.h>

#include "redis/cluster_map.h"
#include "redis/sock.h"

#define CLUSTER_ASK_MS     1000 /* how often the map is read again without a reason */
#define CLUSTER_ASK_GAP_MS 100  /* and at most this often when asked */

typedef struct redis_cluster redis_cluster;

/* What the watcher is handed by the client (it calls nothing of the client by name). */
typedef struct cluster_deps {
    /* A connected, authenticated connection to addr:port (numeric), or NULL with err set. */
    redis_sock *(*connect)(void *arg, const char *addr, int port, char *err, size_t cap);
    /* A map was read (most often the one before): its hosts are numeric addresses. */
    void (*map)(void *arg, const cluster_map *m);
    void (*note_error)(void *arg, const char *msg);
    unsigned socket_timeout_ms;
    void *arg;
} cluster_deps;

/* Starts the watcher for seeds ("host:port,...", checked by strata__sentinels_parse). Returns 0,
 * STRATA_ENOMEM, STRATA_EBADURL or STRATA_ETHREAD. */
int strata__cluster_start(const cluster_deps *d, const char *seeds, redis_cluster **out);
/* Stops the thread and closes its connection. NULL is a no-op. */
void strata__cluster_stop(redis_cluster *k);
/* Reads the map again soon. Any thread; never blocks. NULL is a no-op. */
void strata__cluster_ask(redis_cluster *k);

#endif
