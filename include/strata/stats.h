/* stats.h: the counters of a cache tier, as a snapshot the caller owns.
 *
 * A snapshot is a plain struct copied out of the tier without stopping it: each counter is read
 * atomically, the set of them is not one instant (a get that completes during the snapshot may
 * be in hits but not yet in bytes). Totals and per-namespace snapshots have the same shape.
 */
#ifndef STRATA_STATS_H
#define STRATA_STATS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct strata_stats {
    uint64_t hits;          /* reads answered with a fresh value */
    uint64_t misses;        /* reads that found nothing fresh */
    uint64_t sets;          /* writes stored */
    uint64_t deletes;       /* entries removed by delete or clear */
    uint64_t evictions;     /* entries removed to respect the memory bound or a tenant quota */
    uint64_t expirations;   /* entries removed because their time was up */
    uint64_t rejections;    /* writes refused: too large for the tier or over a tenant quota */
    uint64_t invalidations; /* entries found invalid because a tag was invalidated */
    uint64_t expired_soft;  /* entries this tier made stale before their time by a soft purge
                               (strata_cache_expire, strata_cache_expire_any) */
    uint64_t entries;       /* entries held now */
    uint64_t bytes;         /* bytes charged now, allocator overhead included */
    uint64_t max_bytes;     /* the bound on bytes (totals only; 0 in a namespace snapshot) */
} strata_stats;

#ifdef __cplusplus
}
#endif
#endif
