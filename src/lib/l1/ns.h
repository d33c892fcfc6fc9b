/* ns.h: L1 namespaces (settings, per-shard counters) and tenant scopes (quota accounting). */
#ifndef STRATA_NS_H
#define STRATA_NS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <strata/l1.h>
#include <strata/key.h>

#include "l1/entry.h"

/* Counters of one shard (totals) or of one namespace within one shard. Each has one writer, the
 * holder of that shard's lock, so updates are a relaxed load and store (no locked instruction);
 * snapshots read them with relaxed loads from any thread. Padded to two cache lines so shards
 * do not share lines. */
typedef struct shard_stats {
    _Atomic uint64_t hits, misses, sets, deletes, evictions, expirations, rejections, invalidations,
        entries, bytes, expired_soft;
    char pad[128 - 11 * sizeof(uint64_t)];
} shard_stats;

static inline void stat_add(_Atomic uint64_t *c, uint64_t d)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + d,
                          memory_order_relaxed);
}

static inline void stat_sub(_Atomic uint64_t *c, uint64_t d)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) - d,
                          memory_order_relaxed);
}

/* Adds the counters of n shard_stats into out. */
void strata__stats_sum(const shard_stats *s, size_t n, strata_stats *out);

typedef struct l1_ns {
    char name[STRATA_NAME_MAX + 1];
    pthread_mutex_t cfg_lock;
    strata_ns_config cfg;
    shard_stats *stats; /* one per shard */
} l1_ns;

/* A (namespace, tenant) pair in a namespace with a tenant quota: its bytes and its entries in
 * write order, so the quota evicts the tenant's own oldest entries, wherever their shard. */
typedef struct l1_scope {
    l1_ns *ns;
    uint64_t hash;
    char tenant[STRATA_NAME_MAX + 1];
    atomic_size_t bytes;
    atomic_uint refs; /* entries holding it, plus writes in progress */
    pthread_mutex_t lock;
    struct strata_value *oldest, *newest;
    struct l1_scope *hnext;
} l1_scope;

typedef struct ns_registry {
    pthread_mutex_t lock; /* writers only: lookups are lock-free */
    _Atomic(l1_ns *) *slots;
    size_t mask;
    unsigned count, max, nshards;
    strata_ns_config defaults; /* settings of namespaces not configured otherwise */
    pthread_mutex_t scope_lock;
    l1_scope **scopes;
    size_t nscopes_buckets, nscopes;
    atomic_size_t bytes; /* scopes, charged against the memory bound */
} ns_registry;

int strata__ns_init(ns_registry *r, unsigned max, unsigned nshards, uint64_t default_ttl_ms);
void strata__ns_destroy(ns_registry *r);

/* The namespace called name; when absent, creates it if create is set. Returns 0,
 * STRATA_ENOTFOUND (absent, create not set), STRATA_ELIMIT or STRATA_ENOMEM. */
int strata__ns_get(ns_registry *r, const char *name, int create, l1_ns **out);

/* Calls fn for each namespace (snapshots, clears by namespace). */
void strata__ns_each(ns_registry *r, void (*fn)(l1_ns *ns, void *arg), void *arg);

void strata__ns_settings(l1_ns *ns, strata_ns_config *out);

/* The settings a namespace has until configured. */
void strata__ns_defaults(ns_registry *r, strata_ns_config *out);

/* Takes a reference on the scope of (ns, tenant), creating it. NULL on out of memory. */
l1_scope *strata__scope_acquire(ns_registry *r, l1_ns *ns, const char *tenant, size_t tenant_len);
void strata__scope_release(l1_scope *s);

/* Links e (already counted in e->charge) at the newest end / unlinks it. Shard lock held. */
void strata__scope_link(l1_scope *s, struct strata_value *e);
void strata__scope_unlink(l1_scope *s, struct strata_value *e);

/* The scope's oldest entry that may be evicted, with a reference taken (caller releases), or
 * NULL. Pinned entries are skipped: they are held (a session Redis could not take), not cached;
 * a tenant whose quota they fill is refused instead (STRATA_EQUOTA). */
struct strata_value *strata__scope_oldest(l1_scope *s);

/* Frees scopes no entry uses any more. */
void strata__scope_gc(ns_registry *r);

#endif
