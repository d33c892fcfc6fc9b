/* redis/cluster_map.h: what Redis Cluster's routing is made of, as pure functions: the slot of a
 * key (CRC16 with {hash tags}), the slot map read from CLUSTER SLOTS, and the MOVED / ASK
 * redirections. Part of the Redis client; no sockets, no threads, no state beyond the map the
 * caller owns, so every piece is tested (and the CLUSTER SLOTS decoder fuzzed) on its own.
 */
#ifndef STRATA_REDIS_CLUSTER_MAP_H
#define STRATA_REDIS_CLUSTER_MAP_H

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

/* The slot of a key: CRC16 (XMODEM) of the key, or of the part between the first '{' and the
 * first '}' after it when that part is not empty (a hash tag), modulo 16384. */
unsigned strata__cluster_slot(const char *key, size_t len);

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

#endif
