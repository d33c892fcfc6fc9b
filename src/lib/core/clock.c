/* core/clock.c: wall-clock and monotonic time (core/clock.h says which is for what). */
#include <time.h>

#include <strata/l1.h>

#include "core/clock.h"

uint64_t strata_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t strata__mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t strata__mono_ms(void)
{
    return strata__mono_us() / 1000u;
}
