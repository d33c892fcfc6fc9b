/* features/ratelimit.c: GCRA rate limits in Redis, remembered denials, and the local fallback.
 *
 * GCRA keeps one number per key: the theoretical arrival time (TAT) of the next request. With
 * T = period / limit (the emission interval) and tau = burst * T (how far ahead of now the TAT may
 * run), a request of weight cost is allowed when TAT' = max(TAT, now) + cost * T is at most
 * now + tau; then TAT becomes TAT'. remaining = (now + tau - TAT') / T, retry_after = TAT' - tau -
 * now for a denied one, reset = TAT' - now (when the bucket is whole again). Redis runs it as one
 * Lua script with its own clock (TIME), so it is atomic and instances with skewed clocks agree;
 * the key expires when the bucket is whole, so idle keys cost nothing.
 *
 * The script goes through redis/script.c (EVALSHA, then EVAL once on NOSCRIPT), over the cache's
 * tier: the same code serves strata_ratelimit (the pool) and strata_ratelimit_async (a loop's
 * connection). Bucket keys are <prefix>!rl:<tenant>:<key> (core/tag_key.h): outside the prefix
 * the invalidation link tracks, since no instance caches them, so a check costs no instance an
 * invalidation message. The limiter is a client of the cache's Redis, not part of the cache.
 *
 * Two tables live here, both direct-mapped by key hash and striped by lock, so memory is fixed:
 * remembered denials (a key denied until t is denied locally until t: a flood of rejected requests
 * never reaches Redis; a collision only forgets a denial, which Redis then repeats) and the local
 * fallback limiter's TATs (used while Redis cannot answer; a collision restarts a bucket full, an
 * approximation accepted for a degraded mode and documented).
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <strata/errors.h>
#include <strata/ratelimit.h>
#include <xxhash.h>

#include "cache/cache_internal.h"
#include "core/clock.h"
#include "core/tag_key.h"
#include "l1/l1_internal.h"
#include "features/ratelimit_internal.h"
#include "redis/script.h"

#define RL_STRIPES    64
#define RL_PER_STRIPE 1024
#define RL_KEY_MAX                                                                                 \
    (STRATA_PREFIX_MAX + STRATA_NAME_MAX + STRATA_KEY_MAX_DEFAULT + 8) /* keys <= 512 */

static redis_script gcra_script =
    REDIS_SCRIPT("local T = tonumber(ARGV[1])\n"
                 "local tau = tonumber(ARGV[2])\n"
                 "local cost = tonumber(ARGV[3])\n"
                 "local t = redis.call('TIME')\n"
                 "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
                 "local tat = tonumber(redis.call('GET', KEYS[1]))\n"
                 "if not tat or tat < now then tat = now end\n"
                 "local new_tat = tat + T * cost\n"
                 "local diff = new_tat - now\n"
                 "if diff > tau then\n"
                 "  return {0, 0, math.ceil(diff - tau), math.ceil(tat - now)}\n"
                 "end\n"
                 "redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX',\n"
                 "           math.max(1, math.ceil(diff / 1000)))\n"
                 "return {1, math.floor((tau - diff) / T), 0, math.ceil(diff)}\n");

typedef struct rl_slot {
    uint64_t hash;
    uint64_t until_us; /* remembered denial: denied until then (monotonic) */
    double tat_us;     /* local limiter: theoretical arrival time (monotonic) */
} rl_slot;

typedef struct rl_stripe {
    pthread_mutex_t lock;
    rl_slot slots[RL_PER_STRIPE];
} rl_stripe;

struct strata_ratelimiter {
    strata_cache *c;
    int fallback;
    unsigned instances;
    rl_stripe remembered[RL_STRIPES], local[RL_STRIPES];
    atomic_uint_fast64_t checks, allowed, limited, redis, remembered_n, local_n, open_n, closed_n;
};

int strata_ratelimiter_new(strata_cache *c, strata_ratelimiter **out)
{
    *out = NULL;
    strata_ratelimiter *rl = calloc(1, sizeof *rl);
    if (rl == NULL)
        return STRATA_ENOMEM;
    rl->c = c;
    rl->instances = 1;
    for (int i = 0; i < RL_STRIPES; i++) {
        pthread_mutex_init(&rl->remembered[i].lock, NULL);
        pthread_mutex_init(&rl->local[i].lock, NULL);
    }
    *out = rl;
    return 0;
}

void strata_ratelimiter_free(strata_ratelimiter *rl)
{
    if (rl == NULL)
        return;
    for (int i = 0; i < RL_STRIPES; i++) {
        pthread_mutex_destroy(&rl->remembered[i].lock);
        pthread_mutex_destroy(&rl->local[i].lock);
    }
    free(rl);
}

int strata_ratelimit_configure(strata_ratelimiter *rl, int fallback, unsigned instances)
{
    if (fallback < STRATA_RL_FALLBACK_LOCAL || fallback > STRATA_RL_FALLBACK_CLOSED ||
        instances == 0)
        return STRATA_EINVAL;
    rl->fallback = fallback;
    rl->instances = instances;
    return 0;
}

static rl_slot *slot_locked(rl_stripe *table, uint64_t hash, rl_stripe **stripe)
{
    *stripe = &table[hash % RL_STRIPES];
    pthread_mutex_lock(&(*stripe)->lock);
    return &(*stripe)->slots[(hash / RL_STRIPES) % RL_PER_STRIPE];
}

/* ---- the request: key, parameters --------------------------------------------------------- */

typedef struct rl_req {
    char key[RL_KEY_MAX];
    size_t klen;
    uint64_t hash;
    double T_us, tau_us;
    uint64_t cost, burst;
} rl_req;

static int prepare(strata_ratelimiter *rl, const char *tenant, const void *key, size_t len,
                   const strata_rl_params *p, rl_req *q)
{
    if (p == NULL || p->limit == 0 || p->period_ms == 0)
        return STRATA_EINVAL;
    if (tenant == NULL)
        tenant = STRATA_DEFAULT_TENANT;
    if (strata_name_check(tenant) != 0)
        return STRATA_EBADNAME;
    if (key == NULL || len == 0)
        return STRATA_EKEYEMPTY;
    if (len > STRATA_KEY_MAX_DEFAULT)
        return STRATA_EKEYLONG;
    int rc = strata__untracked_key_build(strata__l1_prefix(rl->c->l1), "rl", tenant, key, len,
                                         q->key, sizeof q->key, &q->klen);
    if (rc != 0)
        return rc;
    q->hash = XXH3_64bits(q->key, q->klen);
    q->burst = p->burst ? p->burst : p->limit;
    q->cost = p->cost ? p->cost : 1;
    q->T_us = (double)p->period_ms * 1000.0 / (double)p->limit;
    q->tau_us = q->T_us * (double)q->burst;
    return 0;
}

static void count(strata_ratelimiter *rl, const strata_rl_result *r)
{
    atomic_fetch_add(&rl->checks, 1);
    atomic_fetch_add(r->allowed ? &rl->allowed : &rl->limited, 1);
    atomic_uint_fast64_t *by[] = {&rl->redis, &rl->remembered_n, &rl->local_n, &rl->open_n,
                                  &rl->closed_n};
    atomic_fetch_add(by[r->source], 1);
}

/* A denied key is remembered until it would be allowed again (now_us: the monotonic clock). */
static void remember(strata_ratelimiter *rl, const rl_req *q, uint64_t now_us,
                     const strata_rl_result *r)
{
    if (r->allowed || r->retry_after_ms == 0)
        return;
    rl_stripe *st;
    rl_slot *s = slot_locked(rl->remembered, q->hash, &st);
    s->hash = q->hash;
    s->until_us = now_us + r->retry_after_ms * 1000;
    pthread_mutex_unlock(&st->lock);
}

static int remembered(strata_ratelimiter *rl, const rl_req *q, uint64_t now_us, strata_rl_result *r)
{
    rl_stripe *st;
    rl_slot *s = slot_locked(rl->remembered, q->hash, &st);
    int hit = s->hash == q->hash && s->until_us > now_us;
    if (hit) {
        memset(r, 0, sizeof *r);
        r->limit = q->burst;
        r->retry_after_ms = (s->until_us - now_us + 999) / 1000;
        r->reset_ms = r->retry_after_ms;
        r->source = STRATA_RL_REMEMBERED;
    }
    pthread_mutex_unlock(&st->lock);
    return hit;
}

/* GCRA on this instance alone: Redis is not there, or not configured. shares: how many
 * instances split the limit. */
static void decide_locally(strata_ratelimiter *rl, const rl_req *q, unsigned shares,
                           uint64_t now_us, strata_rl_result *r)
{
    double T = q->T_us * shares, tau = T * (double)(q->burst / shares ? q->burst / shares : 1);
    rl_stripe *st;
    rl_slot *s = slot_locked(rl->local, q->hash, &st);
    double now = (double)now_us;
    double tat = s->hash == q->hash && s->tat_us > now ? s->tat_us : now;
    double new_tat = tat + T * (double)q->cost, diff = new_tat - now;
    memset(r, 0, sizeof *r);
    r->limit = q->burst / shares ? q->burst / shares : 1;
    r->allowed = diff <= tau;
    if (r->allowed) {
        s->hash = q->hash;
        s->tat_us = new_tat;
        r->remaining = (uint64_t)floor((tau - diff) / T);
        r->reset_ms = (uint64_t)ceil(diff / 1000.0);
    } else {
        r->retry_after_ms = (uint64_t)ceil((diff - tau) / 1000.0);
        r->reset_ms = (uint64_t)ceil((tat - now) / 1000.0);
    }
    pthread_mutex_unlock(&st->lock);
}

/* Redis could not answer: the configured fallback decides. */
static void fall_back(strata_ratelimiter *rl, const rl_req *q, uint64_t now_us, strata_rl_result *r)
{
    if (rl->fallback == STRATA_RL_FALLBACK_LOCAL) {
        decide_locally(rl, q, rl->instances, now_us, r);
        r->source = STRATA_RL_LOCAL;
        return;
    }
    memset(r, 0, sizeof *r);
    r->limit = q->burst;
    r->allowed = rl->fallback == STRATA_RL_FALLBACK_OPEN;
    r->remaining = r->allowed ? q->burst : 0;
    r->retry_after_ms = r->allowed ? 0 : 1000;
    r->source = r->allowed ? STRATA_RL_FAIL_OPEN : STRATA_RL_FAIL_CLOSED;
}

/* Reads the script's answer {allowed, remaining, retry_after_us, reset_us}. Returns 0, or -1
 * for anything else. */
static int decode(const redisReply *r, const rl_req *q, strata_rl_result *out)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 4)
        return -1;
    for (int i = 0; i < 4; i++)
        if (r->element[i]->type != REDIS_REPLY_INTEGER || r->element[i]->integer < 0)
            return -1;
    memset(out, 0, sizeof *out);
    out->allowed = r->element[0]->integer == 1;
    out->remaining = (uint64_t)r->element[1]->integer;
    out->retry_after_ms = ((uint64_t)r->element[2]->integer + 999) / 1000;
    out->reset_ms = ((uint64_t)r->element[3]->integer + 999) / 1000;
    out->limit = q->burst;
    out->source = STRATA_RL_REDIS;
    return 0;
}

/* ---- one check, over either tier ------------------------------------------------------------ */

typedef struct rl_check {
    strata_ratelimiter *rl;
    rl_req q;
    uint64_t now_us;
    strata_rl_cb cb;
    void *arg;
    int in_call, done; /* decided before the call returned: see cache/twotier.c */
    int on_stack;      /* the caller's: every answer comes before it returns (the pool) */
    strata_rl_result res;
} rl_check;

static void decided(rl_check *k)
{
    remember(k->rl, &k->q, k->now_us, &k->res);
    count(k->rl, &k->res);
    if (k->in_call) {
        k->done = 1;
        return;
    }
    k->cb(0, &k->res, k->arg);
    free(k);
}

/* The end of the call that made k: STRATA_PENDING, or the decision, in *out. */
static int call_result(rl_check *k, strata_rl_result *out)
{
    k->in_call = 0;
    if (!k->done)
        return STRATA_PENDING;
    *out = k->res;
    if (!k->on_stack)
        free(k);
    return 0;
}

static void got_reply(int status, redisReply **r, size_t n, void *arg)
{
    (void)n;
    rl_check *k = arg;
    if (status != 0 || decode(r[0], &k->q, &k->res) != 0)
        fall_back(k->rl, &k->q, k->now_us, &k->res); /* a failure, or an answer not the script's */
    decided(k);
}

/* EVALSHA sha 1 key T tau cost */
static int check(strata_ratelimiter *rl, tier t, uint64_t now_us, const char *tenant,
                 const void *key, size_t len, const strata_rl_params *p, strata_rl_cb cb, void *arg,
                 strata_rl_result *out)
{
    /* Over the pool (every answer before the call returns) the check lives on this stack; the
     * struct is large (the key buffer), so only its small fields are set, never the whole. */
    rl_check stack;
    rl_check *k = &stack;
    if (t.ops != NULL && !t.ops->inline_answers && (k = malloc(sizeof *k)) == NULL)
        return STRATA_ENOMEM;
    k->rl = rl, k->now_us = now_us, k->cb = cb, k->arg = arg;
    k->in_call = 1, k->done = 0, k->on_stack = k == &stack;
    int rc = prepare(rl, tenant, key, len, p, &k->q);
    if (rc != 0) {
        if (!k->on_stack)
            free(k);
        return rc;
    }
    if (remembered(rl, &k->q, k->now_us, &k->res)) {
        count(rl, &k->res);
        k->done = 1;
    } else if (t.ops == NULL) {
        decide_locally(rl, &k->q, 1, k->now_us, &k->res);
        k->res.source = STRATA_RL_LOCAL;
        decided(k);
    } else {
        char T[32], tau[32], cost[24];
        snprintf(T, sizeof T, "%.3f", k->q.T_us);
        snprintf(tau, sizeof tau, "%.3f", k->q.tau_us);
        snprintf(cost, sizeof cost, "%llu", (unsigned long long)k->q.cost);
        const char *args[] = {"1", k->q.key, T, tau, cost};
        size_t lens[] = {1, k->q.klen, strlen(T), strlen(tau), strlen(cost)};
        if (t.ops->script(t.self, &gcra_script, 5, args, lens, got_reply, k) != STRATA_PENDING) {
            fall_back(rl, &k->q, k->now_us, &k->res); /* Redis cannot be asked now */
            decided(k);
        }
    }
    return call_result(k, out);
}

int strata_ratelimit(strata_ratelimiter *rl, const char *tenant, const void *key, size_t len,
                     const strata_rl_params *p, strata_rl_result *out)
{
    return strata__ratelimit_at(rl, strata__mono_us(), tenant, key, len, p, out);
}

int strata__ratelimit_at(strata_ratelimiter *rl, uint64_t now_us, const char *tenant,
                         const void *key, size_t len, const strata_rl_params *p,
                         strata_rl_result *out)
{
    /* Over the pool every answer comes before check returns: never STRATA_PENDING here. */
    return check(rl, rl->c->pool, now_us, tenant, key, len, p, NULL, NULL, out);
}

int strata_ratelimit_async(strata_ratelimiter *rl, strata_loop *lp, const char *tenant,
                           const void *key, size_t len, const strata_rl_params *p, strata_rl_cb cb,
                           void *arg, strata_rl_result *out)
{
    return check(rl, strata__loop_tier(lp), strata__mono_us(), tenant, key, len, p, cb, arg, out);
}

void strata_ratelimit_stats(strata_ratelimiter *rl, strata_rl_stats *out)
{
    out->checks = atomic_load(&rl->checks);
    out->allowed = atomic_load(&rl->allowed);
    out->limited = atomic_load(&rl->limited);
    out->redis = atomic_load(&rl->redis);
    out->remembered = atomic_load(&rl->remembered_n);
    out->local = atomic_load(&rl->local_n);
    out->fail_open = atomic_load(&rl->open_n);
    out->fail_closed = atomic_load(&rl->closed_n);
}
