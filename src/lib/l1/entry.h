/* entry.h: the layout of one L1 entry, which is also the strata_value readers hold.
 *
 * One allocation per entry: the header below, then the stored key, the content type, the tag
 * table and tag names, then the value bytes. One allocation means one malloc on write, one
 * cache-line-friendly lookup on read, and an exact charge (malloc_usable_size of one block) for
 * the memory bound. A lookup walking a hash chain touches only the first cache line of each entry
 * it passes. The links, segment and heap index are owned by the shard that holds the entry and only
 * touched under its lock; what readers see (value, key, times, tags) is immutable after creation,
 * except the expiry, which is atomic, so readers use a value without any lock once they hold a
 * reference.
 */
#ifndef STRATA_ENTRY_H
#define STRATA_ENTRY_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <strata/l1.h>
#include <strata/value.h>

struct l1_ns;
struct l1_scope;

/* SEG_PINNED: never evicted by the policy (sessions kept in L1 while Redis is away). */
enum entry_segment { SEG_NONE = 0, SEG_WINDOW, SEG_PROBATION, SEG_PROTECTED, SEG_PINNED };

typedef struct entry_tag {
    uint64_t hash;    /* identity of (tenant, tag name): the key of the tag version table */
    uint64_t version; /* the tag's version when the entry was written */
    uint32_t name_off;
} entry_tag;

struct strata_value {
    /* First cache line: what a lookup reads (chain, hash, key length) and what a hit writes. */
    struct strata_value *hnext;       /* hash chain (shard lock) */
    uint64_t hash;                    /* of the stored key (immutable) */
    uint16_t key_len;                 /* the stored key (immutable) */
    uint8_t segment;                  /* enum entry_segment; SEG_NONE once removed (shard lock) */
    uint8_t ntags;                    /* immutable */
    atomic_uint refs;                 /* the cache's reference plus each reader's */
    struct strata_value *prev, *next; /* policy list: prev toward MRU, next toward LRU (lock) */
    _Atomic uint64_t expires_ms;      /* 0: never; written under the shard lock (touch),
                                         read by lock-free readers, hence atomic */
    int32_t heap_idx;                 /* position in the expiry heap, -1 if none (lock) */
    uint32_t charge;                  /* bytes counted against the memory bound (immutable) */
    /* Then the rest, immutable after creation except the scope links. */
    struct strata_value *sprev, *snext; /* the tenant scope's FIFO (scope lock) */
    _Atomic uint64_t created_ms;        /* the write, or the last restamp (a session's slide):
                                           written under the shard lock, hence atomic */
    uint32_t grace_ms, sie_ms; /* stale windows past expiry (at most STRATA_STALE_MAX_MS) */
    struct l1_ns *ns;
    struct l1_scope *scope; /* NULL unless the namespace has a tenant quota */
    uint32_t value_len;
    uint32_t value_off;
    uint32_t tags_off;               /* offset of the entry_tag table */
    uint16_t tenant_off, tenant_len; /* within the stored key */
    uint16_t user_off;               /* the user key starts here, runs to key_len */
    uint16_t ctype_off;
    uint16_t flags;
    uint8_t shard;           /* index of the owning shard */
    uint8_t pinned;          /* link into SEG_PINNED, not the policy */
    uint32_t compute_ms;     /* what the value took to compute (0: unknown) */
    uint16_t beta_centi;     /* XFetch beta in hundredths (0: never early) */
    _Alignas(8) char data[]; /* stored key, content type, tags, value; 8-aligned for tags */
};

/* What strata__entry_new needs besides the value: already validated by the caller. */
typedef struct entry_spec {
    const char *key;
    size_t key_len;
    uint64_t hash; /* of the stored key */
    size_t tenant_off, tenant_len, user_off;
    const char *content_type; /* "" if none */
    const char *const *tags;
    const uint64_t *tag_hashes;
    const uint64_t *tag_versions;
    size_t ntags;
    uint64_t created_ms, expires_ms, grace_ms, sie_ms, compute_ms;
    unsigned beta_centi;
    unsigned flags;
} entry_spec;

/* Allocates an entry holding one reference (the creator's). Returns NULL on out of memory or
 * sizes that do not fit the header's fields. */
struct strata_value *strata__entry_new(const entry_spec *spec, const void *value, size_t len);

static inline const char *entry_key(const struct strata_value *e)
{
    return e->data;
}

static inline const entry_tag *entry_tags(const struct strata_value *e)
{
    return (const entry_tag *)(const void *)(e->data + e->tags_off);
}

/* How long past its expiry an entry is kept: the longer of its stale windows. */
static inline uint64_t entry_keep(const struct strata_value *e)
{
    return e->grace_ms > e->sie_ms ? e->grace_ms : e->sie_ms;
}

/* The moment an entry may be dropped: its expiry plus what it is kept for (UINT64_MAX if
 * never). */
static inline uint64_t entry_expires(const struct strata_value *e)
{
    return atomic_load_explicit(&e->expires_ms, memory_order_relaxed);
}

static inline uint64_t entry_deadline(const struct strata_value *e)
{
    uint64_t x = entry_expires(e);
    return x == 0 ? UINT64_MAX : x + entry_keep(e);
}

static inline int entry_fresh(const struct strata_value *e, uint64_t now_ms)
{
    uint64_t x = entry_expires(e);
    return x == 0 || now_ms < x;
}

#endif
