/* redis/cluster_map.h: what Redis Cluster's routing is made of: the slot map read from CLUSTER
 * SLOTS, the MOVED / ASK redirections (the slot of a key is core/slot.h's), and the client's
 * routing table built from them. Part of the Redis client; no sockets, no threads, no state beyond
 * the map the caller owns, so every piece is tested (and the CLUSTER SLOTS decoder fuzzed) on its
 * own.
 */
#ifndef STRATA_REDIS_CLUSTER_MAP_H
#define STRATA_REDIS_CLUSTER_MAP_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "redis/redis_url.h"

#define CLUSTER_SLOTS     16384
#define CLUSTER_PRIMARIES 64 /* primaries one map may name; a map that names more is refused */
#define CLUSTER_NO_NODE   0xff

typedef struct cluster_addr {
    char host[REDIS_URL_PART_MAX]; /* as the cluster announced it: an address or a name */
    int port;
} cluster_addr;

/* One CLUSTER SLOTS answer: the primaries, and which of them serves each slot. */
typedef struct cluster_map {
    unsigned nprimaries;
    cluster_addr primary[CLUSTER_PRIMARIES];
    uint8_t slot[CLUSTER_SLOTS]; /* index into primary, CLUSTER_NO_NODE: no primary serves it */
    unsigned covered;            /* slots with a primary */
} cluster_map;

/* Reads CLUSTER SLOTS' answer into out. A node announced with an empty host ("" or "?": the
 * cluster's own address of the node answering is not known to itself) takes asked_host, the host
 * the question went to. Returns 0, or STRATA_EPROTO with *why (may be NULL) a static message: not
 * CLUSTER SLOTS' shape, a range outside 0-16383, a port outside 1-65535, more than
 * CLUSTER_PRIMARIES primaries, a host too long. */
int strata__cluster_map_parse(const redisReply *r, const char *asked_host, cluster_map *out,
                              const char **why);

/* Whether r is a redirection: "MOVED <slot> <host>:<port>" or "ASK <slot> <host>:<port>" (the host
 * may be empty: the node that answered; an IPv6 address is not bracketed). Returns 1 with *ask,
 * *slot and *to set, or 0 for any other reply (including a malformed redirection). */
int strata__cluster_redirect(const redisReply *r, int *ask, unsigned *slot, cluster_addr *to);

/* ---- the client's routing table ----------------------------------------------------------- */

#define CLUSTER_NODES_MAX 128 /* nodes one client ever routes to (primaries past and present) */

/* Where each slot goes now, read without a lock on every command: nodes get a stable index the
 * first time a map or a redirection names them (a node keeps its index for the client's life, so
 * each loop's connection to it stays valid across maps), and each slot is one atomic byte. A map
 * is installed slot by slot: a command routed by a slot of the old map meanwhile gets MOVED and
 * follows it, as during any resharding. */
typedef struct cluster_table {
    pthread_mutex_t add_lock; /* adding a node */
    cluster_addr node[CLUSTER_NODES_MAX];
    atomic_uint nnodes;
    atomic_uchar slot[CLUSTER_SLOTS]; /* node index, CLUSTER_NO_NODE: unknown */
    atomic_uint nprimaries;           /* in the last map */
    atomic_uchar primary[CLUSTER_PRIMARIES];
} cluster_table;

void strata__cluster_table_init(cluster_table *t);
void strata__cluster_table_destroy(cluster_table *t);
/* The index of the node at addr (numeric host), added when new; -1 when the table is full. */
int strata__cluster_table_node(cluster_table *t, const cluster_addr *addr);
/* Routes every slot as m says (its hosts numeric). Returns 1 if any slot or the set of primaries
 * changed, 0 if not, -1 if a primary could not be added (the table is full: its slots keep their
 * old route). */
int strata__cluster_table_install(cluster_table *t, const cluster_map *m);
/* The node serving slot, or -1 while no map has named one. */
int strata__cluster_table_route(const cluster_table *t, unsigned slot);
/* The node at index i (0 <= i < nnodes): never changes once added. */
const cluster_addr *strata__cluster_table_addr(const cluster_table *t, int i);
/* The last map's primaries' indexes into out (cap entries); returns how many there are. */
unsigned strata__cluster_table_primaries(const cluster_table *t, int *out, unsigned cap);

#endif
