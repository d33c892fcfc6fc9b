/* ratelimit.h: distributed rate limits (GCRA in Redis), with a local fallback.
 *
 * A limit is (limit, period, burst): on average `limit` requests per `period`, with up to
 * `burst` at once (default: limit). Checks are GCRA, the generic cell rate algorithm (as
 * redis-cell and Stripe use it): one small Lua script run with EVALSHA, atomic, one round trip,
 * timed by Redis' own clock so instances with skewed clocks agree. Every instance sharing the
 * Redis shares the limit exactly.
 *
 * A denied key's state is remembered locally: a request it would deny is denied from memory, with
 * the figures Redis would give, so a flood of rejected requests costs Redis nothing. When Redis
 * cannot answer (down, slow: a check is bounded by the socket timeout and the breaker), the
 * configured fallback decides: a local GCRA per instance with limit/instances (default), allow
 * everything, or deny everything.
 *
 * A limiter is its own object on a cache (it uses the cache's Redis and prefix; the cache knows
 * nothing of it); free it before the cache.
 *     strata_ratelimiter *rl;
 *     strata_ratelimiter_new(cache, &rl);
 *     strata_rl_params p = {.limit = 1000, .period_ms = 60000, .burst = 10, .cost = 1};
 *     strata_rl_result r;
 *     if (strata_ratelimit(rl, "acme", "user:42", 7, &p, &r) == 0 && !r.allowed)
 *         ... answer 429 with Retry-After: r.retry_after_ms ...
 */
#ifndef STRATA_RATELIMIT_H
#define STRATA_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#include <strata/cache.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct strata_rl_params {
    uint64_t limit;     /* requests per period, >= 1 */
    uint64_t period_ms; /* >= 1 */
    uint64_t burst;     /* allowed at once (0: limit) */
    uint64_t cost;      /* this request's weight (0: 1) */
} strata_rl_params;

enum strata_rl_source {
    STRATA_RL_REDIS = 0,      /* decided by Redis */
    STRATA_RL_REMEMBERED = 1, /* denied locally: the key was over its limit until retry_after */
    STRATA_RL_LOCAL = 2,      /* Redis unavailable: the local limiter decided */
    STRATA_RL_FAIL_OPEN = 3,  /* Redis unavailable: allowed by the fail-open setting */
    STRATA_RL_FAIL_CLOSED = 4 /* Redis unavailable: denied by the fail-closed setting */
};

/* What a check reports. The same state gives the same figures whichever decider answers (Redis,
 * a remembered denial, the local fallback); features/ratelimit.c defines them exactly (figures()),
 * docs/api.md for HTTP. Times are rounded up to milliseconds. */
typedef struct strata_rl_result {
    int allowed;
    uint64_t limit;          /* the burst: requests allowed at once */
    uint64_t remaining;      /* requests of weight 1 that would be allowed now, one by one */
    uint64_t reset_ms;       /* until the bucket is whole again (remaining == limit) */
    uint64_t retry_after_ms; /* until this request would be allowed (0 when allowed) */
    int source;              /* enum strata_rl_source */
    uint64_t next_ms;        /* until remaining grows by one */
    uint64_t window_ms;      /* how long an empty bucket takes to fill: burst * period / limit */
} strata_rl_result;

/* What happens while Redis cannot answer. */
enum strata_rl_fallback {
    STRATA_RL_FALLBACK_LOCAL = 0,
    STRATA_RL_FALLBACK_OPEN,
    STRATA_RL_FALLBACK_CLOSED
};

typedef struct strata_ratelimiter strata_ratelimiter;

/* Creates a limiter on cache c (falling back locally, one instance, until configured). Its
 * state (remembered denials, the local fallback's buckets, counters) is its own; its keys live
 * in c's Redis, under c's prefix. Returns 0 or STRATA_ENOMEM. */
int strata_ratelimiter_new(strata_cache *c, strata_ratelimiter **out);
/* Frees it (before its cache, after every loop call on it has answered). NULL is a no-op. */
void strata_ratelimiter_free(strata_ratelimiter *rl);

/* How the limiter falls back; call before use. instances: how many instances share the limit
 * (each local limiter allows limit/instances). Returns 0 or STRATA_EINVAL. */
int strata_ratelimit_configure(strata_ratelimiter *rl, int fallback, unsigned instances);

/* Checks and counts one request against the limit of key (bytes) in tenant (NULL: default).
 * Returns 0 with *out filled (allowed or not), STRATA_EINVAL (bad parameters), STRATA_EKEYEMPTY,
 * STRATA_EKEYLONG or STRATA_EBADNAME. Never fails because Redis did (the fallback decides). */
int strata_ratelimit(strata_ratelimiter *rl, const char *tenant, const void *key, size_t len,
                     const strata_rl_params *p, strata_rl_result *out);

typedef void (*strata_rl_cb)(int status, const strata_rl_result *r, void *arg);

/* The same on an event loop lp of the limiter's cache (cache.h's convention): STRATA_OK when
 * decided during the call (remembered denial, local fallback, no Redis: *out filled, cb not
 * called), STRATA_PENDING (cb follows with the result), or a negative error (cb never called). */
int strata_ratelimit_async(strata_ratelimiter *rl, strata_loop *lp, const char *tenant,
                           const void *key, size_t len, const strata_rl_params *p, strata_rl_cb cb,
                           void *arg, strata_rl_result *out);

/* Counters of the rate limiter. */
typedef struct strata_rl_stats {
    uint64_t checks, allowed, limited, redis, remembered, local, fail_open, fail_closed;
} strata_rl_stats;

void strata_ratelimit_stats(strata_ratelimiter *rl, strata_rl_stats *out);

#ifdef __cplusplus
}
#endif
#endif
