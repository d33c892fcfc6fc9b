/* features/ratelimit_internal.h: the rate limiter at a given time, for tests on a fake clock.
 *
 * strata_ratelimit reads the monotonic clock once and decides at that time; every decision below
 * it (the remembered denials, the local fallback) takes the time as a parameter. This is the same
 * call with the time given: unit tests drive a fake clock through it instead of sleeping.
 */
#ifndef STRATA_FEATURES_RATELIMIT_INTERNAL_H
#define STRATA_FEATURES_RATELIMIT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <strata/ratelimit.h>

/* strata_ratelimit at now_us (monotonic microseconds, any origin, never decreasing). */
int strata__ratelimit_at(strata_ratelimiter *rl, uint64_t now_us, const char *tenant,
                         const void *key, size_t len, const strata_rl_params *p,
                         strata_rl_result *out);

#endif
