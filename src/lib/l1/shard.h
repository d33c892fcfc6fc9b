/* shard.h: one shard of L1: a hash table, a W-TinyLFU policy and an expiry heap, one lock. */
#ifndef STRATA_SHARD_H
#define STRATA_SHARD_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "l1/entry.h"
#include "l1/expiry.h"
#include "l1/ns.h"
#include "l1/sketch.h"

typedef struct l1_list {
    struct strata_value *head, *tail; /* head: most recently used */
    size_t bytes;
} l1_list;

typedef struct l1_shard {
    pthread_mutex_t lock;
    struct strata_value **buckets;
    size_t nbuckets, count;
    size_t buckets_bytes;
    l1_list window, probation, protect, pinned;
    sketch sk;
    expiry_heap heap;
    size_t budget;      /* this shard's share of max_memory */
    size_t bytes;       /* entries' charges */
    size_t protect_max; /* protected segment's share, refreshed at each eviction pass */
    uint64_t rng;
    unsigned index;
    shard_stats stats;
} l1_shard;

/* Why an entry leaves: decides which counter it lands in. */
enum remove_reason { RM_DELETE, RM_EVICT, RM_EXPIRE, RM_INVALID, RM_REPLACE };

int strata__shard_init(l1_shard *s, unsigned index, size_t budget);
void strata__shard_destroy(l1_shard *s);

/* Bytes this shard may spend on entries now: its budget less its own structures and its share
 * of the structures every shard shares (tags, scopes). */
size_t strata__shard_capacity(const l1_shard *s, size_t shared_share);

struct strata_value *strata__shard_find_locked(l1_shard *s, uint64_t hash, const char *key,
                                               size_t len);

/* A read hit: records the access in the sketch and moves e per W-TinyLFU. */
void strata__shard_hit_locked(l1_shard *s, struct strata_value *e);

/* Links e (which transfers its creator's reference to the shard). If old is not NULL, e takes
 * its place (same segment) and old is removed. Then evicts down to capacity. Returns 0, or -1 when
 * the expiry heap cannot grow (e is not linked then; the caller still owns its reference). */
int strata__shard_insert_locked(l1_shard *s, struct strata_value *e, struct strata_value *old,
                                size_t shared_share);

/* Unlinks e from everything, counts it under reason, and drops the shard's reference. */
void strata__shard_remove_locked(l1_shard *s, struct strata_value *e, enum remove_reason why);

/* Gives e a new expiry (0: never), keeping the heap in order. Returns 0 or -1 (heap full). */
int strata__shard_retime_locked(l1_shard *s, struct strata_value *e, uint64_t expires_ms);

#endif
