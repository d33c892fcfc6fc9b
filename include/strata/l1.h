/* l1.h: the memory tier, an in-process cache shared by all threads of a process.
 *
 * L1 holds values in memory bounded in bytes, every byte of overhead counted (entry headers,
 * allocator chunk headers, hash buckets, expiry heaps, frequency sketches). It is split into
 * shards, each with its own lock and its own W-TinyLFU policy (a small LRU window, a
 * frequency-sketch admission filter, a segmented LRU main space, as Caffeine does), so threads
 * scale and a one-off scan cannot flush the hot set.
 *
 * Time is always a parameter (now_ms: wall-clock milliseconds since the epoch, as
 * strata_now_ms() gives) so TTLs are decided by the caller's clock and tests drive a fake one.
 * Expired entries are never served; they are dropped lazily on access and actively by
 * strata_l1_maintain(), which the owner calls from a timer or lets an internal thread call.
 *
 * Usage:
 *
 *     strata_l1_config cfg;
 *     strata_l1_config_init(&cfg);           // 64 MiB, or STRATA_L1_MAX_MEMORY
 *     strata_l1 *l1;
 *     if (strata_l1_new(&cfg, &l1) != 0) ...
 *     strata_key k = {"llm", "acme", "prompt:42", 9};
 *     strata_l1_set(l1, &k, "answer", 6, NULL, strata_now_ms());
 *     strata_value *v;
 *     if (strata_l1_get(l1, &k, strata_now_ms(), &v) == 0) {
 *         ... strata_value_data(v), strata_value_len(v) ...
 *         strata_value_release(v);
 *     }
 *     strata_l1_free(l1);
 *
 * All functions are thread-safe except strata_l1_free(), which must be the last call.
 */
#ifndef STRATA_L1_H
#define STRATA_L1_H

#include <stddef.h>
#include <stdint.h>

#include <strata/key.h>
#include <strata/stats.h>
#include <strata/value.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct strata_l1 strata_l1;

#define STRATA_L1_MAX_MEMORY_DEFAULT ((size_t)64 << 20)
#define STRATA_VALUE_MAX_DEFAULT     ((size_t)1 << 20)
#define STRATA_TAGS_MAX_PER_ENTRY    32
#define STRATA_TAG_MAX               255 /* longest tag name, bytes */
#define STRATA_TAG_SOFT_KEEP         4   /* soft invalidations of a tag an entry outlives, stale */
#define STRATA_CONTENT_TYPE_MAX      255

typedef struct strata_l1_config {
    size_t max_memory;                /* bound in bytes, overhead included (0: default) */
    unsigned shards;                  /* power of two, 1..256 (0: derived from max_memory) */
    size_t max_key_len;               /* longest user key (0: 512) */
    size_t max_value_len;             /* largest value (0: 1 MiB) */
    unsigned max_namespaces;          /* namespaces the tier will create (0: 1024) */
    size_t max_tags;                  /* tag versions remembered; the oldest are forgotten past it,
                                         which invalidates their entries (0: 65536) */
    unsigned maintenance_interval_ms; /* >0: an internal thread calls strata_l1_maintain()
                                         this often with the wall clock; 0: the owner does */
    const char *prefix;               /* stored-key prefix, copied (NULL: "strata") */
    uint64_t default_ttl_ms; /* default TTL of namespaces not configured otherwise (0: 300 s) */
} strata_l1_config;

/* Fills cfg with the defaults, reading STRATA_L1_MAX_MEMORY (bytes, or with a K/M/G suffix)
 * from the environment. Returns 0, or STRATA_ERANGE when that variable is malformed (cfg still
 * holds the built-in defaults then). */
int strata_l1_config_init(strata_l1_config *cfg);

/* Creates a memory tier. On success *out owns it; release it with strata_l1_free().
 * Returns 0, STRATA_EINVAL (a setting out of range: max_memory below 64 KiB per shard, shards
 * not a power of two, a value limit larger than a shard), STRATA_EBADNAME (prefix), STRATA_ENOMEM
 * or STRATA_ETHREAD. */
int strata_l1_new(const strata_l1_config *cfg, strata_l1 **out);

/* Frees the tier and every entry not still referenced by a reader (those go with their last
 * strata_value_release()). Stops the maintenance thread first. NULL is a no-op. */
void strata_l1_free(strata_l1 *l1);

/* ---- namespaces ---------------------------------------------------------------------------
 * A namespace is created with the defaults on its first write; settings may be given before or
 * after. The settings apply to writes made after they are set. */
typedef struct strata_ns_config {
    uint64_t default_ttl_ms; /* TTL when a write gives none (0: never expires). Default 300 s */
    uint64_t max_ttl_ms;     /* longer TTLs are cut to this (0: no maximum). Default 0 */
    uint64_t error_ttl_ms;   /* TTL of entries flagged STRATA_VALUE_ERROR. Default 30 s */
    double jitter;           /* TTLs are spread by +-jitter (0..0.5). Default 0.10 */
    size_t tenant_quota;     /* most bytes one tenant may hold in this namespace (0: none) */
    /* Freshness, for writes that do not say (strata_set_opts): */
    uint64_t grace_ms;          /* served stale this long past expiry. Default 0 */
    uint64_t stale_if_error_ms; /* served this long past expiry when a refresh fails. Default 0 */
    double beta;                /* XFetch early refresh weight (0: never early; at most
                                   STRATA_BETA_MAX). Default 1 */
} strata_ns_config;

/* The longest grace and stale-if-error windows (30 days), and the largest beta. */
#define STRATA_STALE_MAX_MS (30ull * 24 * 3600 * 1000)
#define STRATA_BETA_MAX     100.0

void strata_ns_config_init(strata_ns_config *cfg);

/* Returns 0, STRATA_EBADNAME, STRATA_EINVAL (jitter, grace, stale-if-error or beta out of
 * range), STRATA_ELIMIT or STRATA_ENOMEM. */
int strata_l1_ns_configure(strata_l1 *l1, const char *ns, const strata_ns_config *cfg);

/* Copies a namespace's settings (the defaults if it was never configured). Returns 0 or
 * STRATA_EBADNAME. */
int strata_l1_ns_config(strata_l1 *l1, const char *ns, strata_ns_config *out);

/* ---- items -------------------------------------------------------------------------------- */

/* Options of a write; NULL means all defaults. */
typedef struct strata_set_opts {
    uint64_t ttl_ms;            /* 0: the namespace default; cut to the namespace maximum */
    uint64_t grace_ms;          /* served stale this long past expiry (by strata_cache_get_stale,
                                   never by strata_l1_get); 0: the namespace's; at most
                                   STRATA_STALE_MAX_MS */
    const char *content_type;   /* NULL or text up to 255 bytes */
    const char *const *tags;    /* tag names (text up to 255 bytes), tenant-scoped */
    size_t ntags;               /* up to STRATA_TAGS_MAX_PER_ENTRY */
    unsigned flags;             /* STRATA_VALUE_* and STRATA_SET_* below */
    uint64_t stale_if_error_ms; /* served this long past expiry when its refresh fails; 0: the
                                   namespace's (none with STRATA_SET_EXACT_STALE_IF_ERROR); at
                                   most STRATA_STALE_MAX_MS */
    uint64_t compute_ms;        /* how long the value took to compute (0: unknown; XFetch then
                                   never refreshes it early) */
    double beta;                /* XFetch weight: 0 the namespace's, below 0 never early, at most
                                   STRATA_BETA_MAX */
} strata_set_opts;

enum strata_set_flags {
    STRATA_SET_NX = 1u << 8,           /* only if no fresh value exists: STRATA_EEXISTS otherwise */
    STRATA_SET_NO_JITTER = 1u << 9,    /* the TTL is exact (a TTL copied from another tier) */
    STRATA_SET_PINNED = 1u << 10,      /* not a cache entry (a session): never evicted by the
                                          policy, only by expiry or delete; pinned entries may take
                                          at most half of a shard (STRATA_EQUOTA past it) */
    STRATA_SET_EXACT_GRACE = 1u << 11, /* grace_ms is the entry's as given, 0 meaning none,
                                          not the namespace's */
    STRATA_SET_EXACT_STALE_IF_ERROR = 1u << 12, /* the same for stale_if_error_ms */
};

/* Reads k. On a fresh hit sets *out to a reference the caller must release and returns 0;
 * otherwise returns STRATA_ENOTFOUND (expired, tag-invalidated or absent) and leaves *out NULL,
 * or a validation error (STRATA_EKEYEMPTY, STRATA_EKEYLONG, STRATA_EBADNAME). */
int strata_l1_get(strata_l1 *l1, const strata_key *k, uint64_t now_ms, strata_value **out);

/* Stores a copy of value[0..len) under k, replacing any previous value.
 * Returns 0; STRATA_EEXISTS (STRATA_SET_NX and a fresh value exists); STRATA_EVALUELARGE (over
 * max_value_len); STRATA_ETOOBIG (the entry does not fit a shard); STRATA_EQUOTA (the tenant
 * is at its quota and nothing of its own could be evicted); STRATA_EBADTEXT (content type or tag);
 * STRATA_ETOOMANYTAGS; the key errors; STRATA_ELIMIT (too many namespaces); STRATA_ENOMEM.
 * A refused write leaves any previous value in place. */
int strata_l1_set(strata_l1 *l1, const strata_key *k, const void *value, size_t len,
                  const strata_set_opts *opts, uint64_t now_ms);

/* Removes k. Returns 0, STRATA_ENOTFOUND, or a key error. */
int strata_l1_del(strata_l1 *l1, const strata_key *k, uint64_t now_ms);

/* Returns 0 if a fresh value exists, STRATA_ENOTFOUND otherwise (or a key error). Does not
 * count as an access for the eviction policy or the hit statistics. */
int strata_l1_exists(strata_l1 *l1, const strata_key *k, uint64_t now_ms);

/* Gives a fresh value a new TTL from now (0: the namespace default; jitter applies).
 * Returns 0, STRATA_ENOTFOUND, or a key error. */
int strata_l1_touch(strata_l1 *l1, const strata_key *k, uint64_t ttl_ms, uint64_t now_ms);

/* Removes every entry in namespace ns (NULL: all but the reserved ones, whose names start with
 * '_', such as "_sessions": those only when named) and tenant (NULL: all) whose user key matches
 * the Redis glob pattern (NULL: all), and sets *removed (may be NULL) to the count.
 * Returns 0 or STRATA_EBADNAME. */
int strata_l1_clear(strata_l1 *l1, const char *ns, const char *tenant, const char *pattern,
                    size_t *removed);

/* Called with each user key a scan finds (key bytes, not NUL-terminated, valid during the call). */
typedef void (*strata_key_cb)(const char *ns, const char *tenant, const char *key, size_t len,
                              void *arg);

/* Lists the user keys of fresh entries of namespace ns (NULL: all) and tenant (NULL: all)
 * matching pattern (NULL: all), about limit at a time (0: 100; a page may run a little over),
 * starting at cursor (0: the start). Sets *next to the cursor of the next page, 0 when done. Keys
 * written or removed during a scan may or may not be seen. cb runs under an internal lock: it
 * must not call back into L1. Returns 0 or STRATA_EBADNAME. */
int strata_l1_scan(strata_l1 *l1, const char *ns, const char *tenant, const char *pattern,
                   uint64_t cursor, size_t limit, uint64_t now_ms, strata_key_cb cb, void *arg,
                   uint64_t *next);

/* Invalidates a tag of a tenant (NULL: default) in O(1): every entry written with the tag before
 * this call stops being served, in every namespace of the tenant. Returns 0, STRATA_EBADNAME,
 * STRATA_EBADTEXT or STRATA_ENOMEM. */
int strata_l1_tag_invalidate(strata_l1 *l1, const char *tenant, const char *tag);

/* Drops every entry past its expiry (and grace) and sets *expired
 * (may be NULL) to the count dropped. Cheap when nothing has expired. */
void strata_l1_maintain(strata_l1 *l1, uint64_t now_ms, size_t *expired);

/* A snapshot of the totals (ns NULL) or of one namespace. Returns 0, STRATA_EBADNAME, or
 * STRATA_ENOTFOUND for a namespace that does not exist yet. */
int strata_l1_stats(strata_l1 *l1, const char *ns, strata_stats *out);

/* Parses a byte size as STRATA_L1_MAX_MEMORY takes it: digits with an optional K, M or G (KiB,
 * MiB, GiB; powers of 1024) suffix. Returns 0 with *out set, or STRATA_ERANGE. */
int strata_size_parse(const char *s, size_t *out);

/* Wall-clock milliseconds since the epoch: the usual now_ms. */
uint64_t strata_now_ms(void);

#ifdef __cplusplus
}
#endif
#endif
