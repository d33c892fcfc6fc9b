/* cache/soft_tag.h: soft tag invalidation in Redis (soft_tag.c). */
#ifndef STRATA_CACHE_SOFT_TAG_H
#define STRATA_CACHE_SOFT_TAG_H

#include <stdint.h>

#include <strata/cache.h>

/* The Redis half of strata_cache_tag_invalidate_soft: retires the tag's version at now in its
 * soft record, then moves the version on, only if nobody changed it meanwhile (else again, a few
 * times: a concurrent invalidation is at least as strong). Returns 0, or a failure as
 * strata__redis_run (an error reply: strata__reply_error's). */
int strata__soft_tag_redis(strata_cache *c, const char *tenant, const char *tag, uint64_t now);

#endif
