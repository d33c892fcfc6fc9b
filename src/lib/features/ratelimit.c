/* features/ratelimit.c: GCRA rate limits in Redis, remembered denials, and the local fallback.
 *
 * GCRA keeps one number per key: the theoretical arrival time (TAT) of the next request. With
 * T = period / limit (the emission interval) and tau = burst * T (how far ahead of now the TAT may
 * run), a request of weight cost is allowed when max(TAT - now, 0) + cost * T is at most tau; then
 * TAT moves on by cost * T. Every decider applies that one step (gcra() here, the same arithmetic
 * in the script) and reports what figures() defines from the state it leaves, so Redis, a
 * remembered denial and the local fallback give the same figures for the same state. Redis runs
 * it as one Lua script with its own clock (TIME), so it is atomic and instances with skewed clocks
 * agree; the key expires when the bucket is whole, so idle keys cost nothing.
 *
 * The TAT keeps its fraction of a microsecond (stored as "<us>.<6 digits>"): T is rarely a whole
 * number of microseconds (9 per minute: 6666666.67 us), and rounding the TAT at every request
 * would add up, so that nine requests at once no longer fit a burst of nine.
 *
 * The script goes through redis/script.c (EVALSHA, then EVAL once on NOSCRIPT), over the cache's
 * tier: the same code serves strata_ratelimit (the pool) and strata_ratelimit_async (a loop's
 * connection). Bucket keys are <prefix>!rl:<tenant>:<key> (core/tag_key.h): outside the prefix
 * the invalidation link tracks, since no instance caches them, so a check costs no instance an
 * invalidation message. The limiter is a client of the cache's Redis, not part of the cache.
 *
 * Two tables live here, both direct-mapped by key hash and striped by lock, so memory is fixed:
 * remembered denials (the TAT a denial left, so a request it would deny is denied locally, with
 * the figures the decider would give: a flood of rejected requests never reaches Redis; a
 * collision only forgets a denial, which Redis then repeats) and the local fallback limiter's TATs
 * (used while Redis cannot answer; a collision restarts a bucket full, an approximation accepted
 * for a degraded mode and documented).
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

/* The GCRA step on Redis' clock: {allowed, dt in ns}, dt being how far the TAT runs ahead of now
 * after the decision (gcra() and figures() below say the rest). */
static redis_script gcra_script = REDIS_SCRIPT(
    "local T = tonumber(ARGV[1])\n"
    "local tau = tonumber(ARGV[2])\n"
    "local cost = tonumber(ARGV[3])\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local dt = 0\n"
    "local i, f = string.match(redis.call('GET', KEYS[1]) or '', '^(%d+)%.?(%d*)$')\n"
    "if i then dt = math.max(0, tonumber(i) - now + (tonumber('0.' .. f) or 0)) end\n"
    "local diff = dt + T * cost\n"
    "if diff > tau then return {0, math.floor(dt * 1000 + 0.5)} end\n"
    "local us = math.floor(diff)\n"
    "redis.call('SET', KEYS[1], string.format('%.0f.%06d', now + us,\n"
    "           math.floor((diff - us) * 1000000)), 'PX', math.max(1, math.ceil(diff / 1000)))\n"
    "return {1, math.floor(diff * 1000 + 0.5)}\n");

typedef struct rl_slot {
    uint64_t hash;
    double tat_us;   /* the key's TAT (monotonic): a remembered denial's, or the local bucket's */
    unsigned shares; /* remembered: the share of the limit it was decided with (below) */
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
    double T_us;
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
    return 0;
}

/* ---- the decision and its figures: one definition for every decider ----------------------- */

/* A limit as one decider applies it: Redis, and the denials it left, the whole limit (shares 1);
 * the local fallback this instance's share (limit / instances, the interval times instances). */
typedef struct rl_shape {
    double T, tau;  /* microseconds: the emission interval, and burst * T plus a slack (below) */
    uint64_t burst; /* requests at once */
} rl_shape;

static rl_shape shape(const rl_req *q, unsigned shares)
{
    rl_shape s;
    s.burst = q->burst / shares ? q->burst / shares : 1;
    s.T = q->T_us * shares;
    /* The TAT is a floating-point sum: a bucket filled by exactly k requests can sit a hair past
     * k * T. A microsecond of slack (at most half of T) keeps exact fits on the allowed side, and
     * remaining from dropping one at such a boundary. */
    s.tau = s.T * (double)s.burst + fmin(1.0, s.T / 2);
    return s;
}

/* One GCRA step, as the script takes it: with the key's TAT *dt_us ahead of now (0: the bucket is
 * whole), a request of weight cost is allowed when *dt_us + cost * T <= tau, and then *dt_us moves
 * on by cost * T. Returns 1 when allowed (dt moved), 0 when not (dt unchanged). */
static int gcra(const rl_shape *s, double *dt_us, uint64_t cost)
{
    double diff = *dt_us + s->T * (double)cost;
    if (diff > s->tau)
        return 0;
    *dt_us = diff;
    return 1;
}

/* Microseconds to milliseconds, rounded up; what lies under a nanosecond is floating-point noise
 * (60 s computed as 60.000000000001 s must not read as 60.001). */
static uint64_t up_ms(double us)
{
    return us <= 0.001 ? 0 : (uint64_t)ceil((us - 0.001) / 1000.0);
}

/* The figures of a decision, from the state it leaves: dt, how far the key's TAT runs ahead of now
 * after it (us; 0 when the bucket is whole). These are the definitions (docs/api.md says them for
 * HTTP), the same whoever decided:
 *   limit       = burst: requests allowed at once;
 *   remaining   = floor((tau - dt) / T), 0..limit: requests of weight 1 that would be allowed now,
 *                 one after another (also after a denial: a heavy request may leave room);
 *   reset       = dt: until the bucket is whole again (remaining = limit);
 *   retry_after = dt + cost * T - tau when denied: until this request would be allowed (a request
 *                 heavier than the burst never is); 0 when allowed;
 *   next        = dt + (remaining + 1) * T - tau: until remaining grows by one (> 0);
 *   window      = burst * T: how long an empty bucket takes to fill again.
 * Times are rounded up to milliseconds. */
static void figures(const rl_shape *s, double dt, uint64_t cost, int allowed, strata_rl_result *r)
{
    double room = s->tau - dt, n = room > 0 ? floor(room / s->T) : 0;
    r->allowed = allowed;
    r->limit = s->burst;
    r->remaining = n < (double)s->burst ? (uint64_t)n : s->burst;
    r->reset_ms = up_ms(dt);
    r->retry_after_ms = 0;
    if (!allowed) {
        uint64_t ms = up_ms(dt + s->T * (double)cost - s->tau);
        r->retry_after_ms = ms ? ms : 1; /* denied: never "retry now" */
    }
    r->next_ms = up_ms(dt + (double)(r->remaining + 1) * s->T - s->tau);
    r->window_ms = up_ms(s->T * (double)s->burst);
}

/* A decision: who made it, with which share of the limit, and the state it left. */
typedef struct rl_state {
    int allowed, source; /* enum strata_rl_source */
    unsigned shares;
    double dt_us; /* the key's TAT ahead of now, after the decision (0: the bucket is whole) */
} rl_state;

/* Fail-closed knows nothing of the bucket: come back in a second, and no sooner is it whole. */
#define RL_FAIL_CLOSED_MS 1000

static void report(const rl_req *q, const rl_state *st, strata_rl_result *r)
{
    rl_shape s = shape(q, st->shares);
    memset(r, 0, sizeof *r);
    figures(&s, st->dt_us, q->cost, st->allowed, r);
    if (st->source == STRATA_RL_FAIL_CLOSED) {
        r->remaining = 0;
        r->reset_ms = r->retry_after_ms = r->next_ms = RL_FAIL_CLOSED_MS;
    }
    r->source = st->source;
}

static void count(strata_ratelimiter *rl, const strata_rl_result *r)
{
    atomic_fetch_add(&rl->checks, 1);
    atomic_fetch_add(r->allowed ? &rl->allowed : &rl->limited, 1);
    atomic_uint_fast64_t *by[] = {&rl->redis, &rl->remembered_n, &rl->local_n, &rl->open_n,
                                  &rl->closed_n};
    atomic_fetch_add(by[r->source], 1);
}

/* A denial by a decider that knows the bucket (Redis, the local limiter) leaves its TAT here
 * (now_us: the monotonic clock when the check began). Fail-closed knows no TAT: not kept. */
static void remember(strata_ratelimiter *rl, const rl_req *q, uint64_t now_us, const rl_state *st)
{
    if (st->allowed || (st->source != STRATA_RL_REDIS && st->source != STRATA_RL_LOCAL))
        return;
    rl_stripe *stripe;
    rl_slot *s = slot_locked(rl->remembered, q->hash, &stripe);
    s->hash = q->hash;
    s->tat_us = (double)now_us + st->dt_us;
    s->shares = st->shares;
    pthread_mutex_unlock(&stripe->lock);
}

/* Whether the remembered TAT of the key denies this request now, as its decider would: then *st
 * is that denial. Other instances can only have moved the TAT on (denials leave it as it is), so
 * a denial from memory is one Redis would make too. */
static int remembered(strata_ratelimiter *rl, const rl_req *q, uint64_t now_us, rl_state *st)
{
    rl_stripe *stripe;
    rl_slot *s = slot_locked(rl->remembered, q->hash, &stripe);
    int hit = 0;
    if (s->hash == q->hash && s->shares != 0) { /* shares 0: a slot never written */
        rl_shape sh = shape(q, s->shares);
        double dt = fmax(0, s->tat_us - (double)now_us), moved = dt;
        if (!gcra(&sh, &moved, q->cost)) {
            *st = (rl_state){0, STRATA_RL_REMEMBERED, s->shares, dt};
            hit = 1;
        }
    }
    pthread_mutex_unlock(&stripe->lock);
    return hit;
}

/* GCRA on this instance alone: Redis is not there, or not configured. shares: how many
 * instances split the limit. */
static void decide_locally(strata_ratelimiter *rl, const rl_req *q, unsigned shares,
                           uint64_t now_us, rl_state *st)
{
    rl_shape sh = shape(q, shares);
    rl_stripe *stripe;
    rl_slot *s = slot_locked(rl->local, q->hash, &stripe);
    double now = (double)now_us;
    double dt = s->hash == q->hash && s->tat_us > now ? s->tat_us - now : 0;
    int allowed = gcra(&sh, &dt, q->cost);
    if (allowed) {
        s->hash = q->hash;
        s->tat_us = now + dt;
    }
    pthread_mutex_unlock(&stripe->lock);
    *st = (rl_state){allowed, STRATA_RL_LOCAL, shares, dt};
}

/* Redis could not answer: the configured fallback decides. */
static void fall_back(strata_ratelimiter *rl, const rl_req *q, uint64_t now_us, rl_state *st)
{
    if (rl->fallback == STRATA_RL_FALLBACK_LOCAL)
        decide_locally(rl, q, rl->instances, now_us, st);
    else if (rl->fallback == STRATA_RL_FALLBACK_OPEN)
        *st = (rl_state){1, STRATA_RL_FAIL_OPEN, 1, 0}; /* reported as a whole bucket */
    else
        *st = (rl_state){0, STRATA_RL_FAIL_CLOSED, 1, 0};
}

/* Reads the script's answer {allowed, dt_ns}. Returns 0, or -1 for anything else. */
static int decode(const redisReply *r, rl_state *st)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2)
        return -1;
    for (int i = 0; i < 2; i++)
        if (r->element[i]->type != REDIS_REPLY_INTEGER || r->element[i]->integer < 0)
            return -1;
    *st = (rl_state){r->element[0]->integer == 1, STRATA_RL_REDIS, 1,
                     (double)r->element[1]->integer / 1000.0};
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
    rl_state st;
    strata_rl_result res;
} rl_check;

static void decided(rl_check *k)
{
    report(&k->q, &k->st, &k->res);
    remember(k->rl, &k->q, k->now_us, &k->st);
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
    if (status != 0 || decode(r[0], &k->st) != 0)
        fall_back(k->rl, &k->q, k->now_us, &k->st); /* a failure, or an answer not the script's */
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
    if (remembered(rl, &k->q, k->now_us, &k->st)) {
        decided(k);
    } else if (t.ops == NULL) {
        decide_locally(rl, &k->q, 1, k->now_us, &k->st);
        decided(k);
    } else {
        /* %.17g: the script parses the very doubles shape() computed. */
        rl_shape sh = shape(&k->q, 1);
        char T[32], tau[32], cost[24];
        snprintf(T, sizeof T, "%.17g", sh.T);
        snprintf(tau, sizeof tau, "%.17g", sh.tau);
        snprintf(cost, sizeof cost, "%llu", (unsigned long long)k->q.cost);
        const char *args[] = {"1", k->q.key, T, tau, cost};
        size_t lens[] = {1, k->q.klen, strlen(T), strlen(tau), strlen(cost)};
        if (t.ops->script(t.self, &gcra_script, 5, args, lens, got_reply, k) != STRATA_PENDING) {
            fall_back(rl, &k->q, k->now_us, &k->st); /* Redis cannot be asked now */
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
