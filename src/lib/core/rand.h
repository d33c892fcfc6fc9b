/* rand.h: the small PRNG libstrata uses for TTL jitter, admission tie-breaks and tag versions.
 *
 * splitmix64 over a 64-bit state seeded from getrandom(): fast, and each generator is owned by
 * one lock holder (a shard, a tag stripe), so no thread-local or atomic state is needed. It is
 * not a CSPRNG; session ids (a later issue) use OpenSSL's RAND_bytes instead.
 */
#ifndef STRATA_RAND_H
#define STRATA_RAND_H

#include <stdint.h>

static inline uint64_t strata__rand_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A uniform double in [0, 1). */
static inline double strata__rand_unit(uint64_t *state)
{
    return (double)(strata__rand_next(state) >> 11) * (1.0 / 9007199254740992.0);
}

/* A fresh seed from the kernel (falls back to time and address bits if getrandom fails). */
uint64_t strata__rand_seed(void);

#endif
