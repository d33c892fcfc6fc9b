/* cache/touch.h: a value's life starts again from now, without rewriting it (touch.c). */
#ifndef STRATA_CACHE_TOUCH_H
#define STRATA_CACHE_TOUCH_H

#include <stdint.h>

#include <strata/cache.h>

#include "cache/tier.h"

/* strata_cache_touch over tier t at time now (cache/twotier.h's calling convention). */
int strata__touch(strata_cache *c, tier t, const strata_key *k, uint64_t ttl_ms, uint64_t now,
                  strata_done_cb cb, void *arg);

#endif
