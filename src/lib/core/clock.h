/* core/clock.h: the project's one clock helper.
 *
 * Two clocks, for two purposes. Wall-clock milliseconds (strata_now_ms, public in strata/l1.h)
 * for everything that is stored or shared: created and expiry times travel through Redis to
 * other instances, so they must agree across machines. The monotonic clock for everything that
 * only measures an interval on this machine (deadlines, backoffs, keep-alives, local rate-limit
 * buckets), which a wall-clock step must never stretch or shrink.
 *
 * Where a decision depends on time (TTLs, the breaker, rate limits), the time is a parameter of
 * the function that decides, and only the outermost call reads these clocks, so tests drive a
 * fake clock instead of sleeping.
 */
#ifndef STRATA_CORE_CLOCK_H
#define STRATA_CORE_CLOCK_H

#include <stdint.h>

/* Monotonic time, in milliseconds and microseconds, from an arbitrary origin. */
uint64_t strata__mono_ms(void);
uint64_t strata__mono_us(void);

#endif
