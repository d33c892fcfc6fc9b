/* ratelimit.c: GCRA rate limits in Redis, remembered denials, and the local fallback.
 *
 * GCRA keeps one number per key: the theoretical arrival time (TAT) of the next request. With
 * T = period / limit (the emission interval) and tau = burst * T (how far ahead of now the TAT may
 * run), a request of weight cost is allowed when TAT' = max(TAT, now) + cost * T is at most
 * now + tau; then TAT becomes TAT'. remaining = (now + tau - TAT') / T, retry_after = TAT' - tau -
 * now for a denied one, reset = TAT' - now (when the bucket is whole again). Redis runs it as one
 * Lua script with its own clock (TIME), so it is atomic and instances with skewed clocks agree;
 * the key expires when the bucket is whole, so idle keys cost nothing.
 *
 * The script is sent by its SHA-1 (EVALSHA, computed here once); a NOSCRIPT answer (Redis
 * restarted or flushed its scripts) is answered by sending it whole once (EVAL caches it again).
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
#include <time.h>

#include <strata/errors.h>
#include <strata/ratelimit.h>
#include <openssl/sha.h>
#include <xxhash.h>

#include "cache/cache_internal.h"
#include "l1/l1_internal.h"
#include "redis/l2_cmd.h"

#define RL_STRIPES    64
#define RL_PER_STRIPE 1024
#define RL_KEY_MAX    (STRATA_PREFIX_MAX + STRATA_NAME_MAX + STRATA_KEY_MAX_LIMIT + 8)

static const char gcra_script[] =
    "local T = tonumber(ARGV[1])\n"
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
    "return {1, math.floor((tau - diff) / T), 0, math.ceil(diff)}\n";

typedef struct rl_slot {
    uint64_t hash;
    uint64_t until_us; /* remembered denial: denied until then (monotonic) */
    double tat_us;     /* local limiter: theoretical arrival time (monotonic) */
} rl_slot;

typedef struct rl_stripe {
    pthread_mutex_t lock;
    rl_slot slots[RL_PER_STRIPE];
} rl_stripe;

struct rl_state {
    int fallback;
    unsigned instances;
    char sha[41]; /* SHA-1 of the script, hex: what EVALSHA names it by */
    rl_stripe remembered[RL_STRIPES], local[RL_STRIPES];
    atomic_uint_fast64_t checks, allowed, limited, redis, remembered_n, local_n, open_n, closed_n;
};

struct rl_state *strata__rl_new(void)
{
    struct rl_state *rl = calloc(1, sizeof *rl);
    if (rl == NULL)
        return NULL;
    rl->instances = 1;
    unsigned char d[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)gcra_script, sizeof gcra_script - 1, d);
    for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
        snprintf(rl->sha + 2 * i, 3, "%02x", d[i]);
    for (int i = 0; i < RL_STRIPES; i++) {
        pthread_mutex_init(&rl->remembered[i].lock, NULL);
        pthread_mutex_init(&rl->local[i].lock, NULL);
    }
    return rl;
}

void strata__rl_free(struct rl_state *rl)
{
    if (rl == NULL)
        return;
    for (int i = 0; i < RL_STRIPES; i++) {
        pthread_mutex_destroy(&rl->remembered[i].lock);
        pthread_mutex_destroy(&rl->local[i].lock);
    }
    free(rl);
}

int strata_ratelimit_configure(strata_cache *c, int fallback, unsigned instances)
{
    if (fallback < STRATA_RL_FALLBACK_LOCAL || fallback > STRATA_RL_FALLBACK_CLOSED ||
        instances == 0)
        return STRATA_EINVAL;
    c->rl->fallback = fallback;
    c->rl->instances = instances;
    return 0;
}

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
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

static int prepare(strata_cache *c, const char *tenant, const void *key, size_t len,
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
    const char *prefix = strata__l1_prefix(c->l1);
    int n = snprintf(q->key, sizeof q->key, "%s:!rl:%s:", prefix, tenant);
    memcpy(q->key + n, key, len);
    q->klen = (size_t)n + len;
    q->hash = XXH3_64bits(q->key, q->klen);
    q->burst = p->burst ? p->burst : p->limit;
    q->cost = p->cost ? p->cost : 1;
    q->T_us = (double)p->period_ms * 1000.0 / (double)p->limit;
    q->tau_us = q->T_us * (double)q->burst;
    return 0;
}

static void count(strata_cache *c, const strata_rl_result *r)
{
    struct rl_state *rl = c->rl;
    atomic_fetch_add(&rl->checks, 1);
    atomic_fetch_add(r->allowed ? &rl->allowed : &rl->limited, 1);
    atomic_uint_fast64_t *by[] = {&rl->redis, &rl->remembered_n, &rl->local_n, &rl->open_n,
                                  &rl->closed_n};
    atomic_fetch_add(by[r->source], 1);
}

/* A denied key is remembered until it would be allowed again. */
static void remember(strata_cache *c, const rl_req *q, const strata_rl_result *r)
{
    if (r->allowed || r->retry_after_ms == 0)
        return;
    rl_stripe *st;
    rl_slot *s = slot_locked(c->rl->remembered, q->hash, &st);
    s->hash = q->hash;
    s->until_us = mono_us() + r->retry_after_ms * 1000;
    pthread_mutex_unlock(&st->lock);
}

static int remembered(strata_cache *c, const rl_req *q, strata_rl_result *r)
{
    rl_stripe *st;
    rl_slot *s = slot_locked(c->rl->remembered, q->hash, &st);
    uint64_t now = mono_us();
    int hit = s->hash == q->hash && s->until_us > now;
    if (hit) {
        memset(r, 0, sizeof *r);
        r->limit = q->burst;
        r->retry_after_ms = (s->until_us - now + 999) / 1000;
        r->reset_ms = r->retry_after_ms;
        r->source = STRATA_RL_REMEMBERED;
    }
    pthread_mutex_unlock(&st->lock);
    return hit;
}

/* GCRA on this instance alone: Redis is not there, or not configured. shares: how many
 * instances split the limit. */
static void decide_locally(strata_cache *c, const rl_req *q, unsigned shares, strata_rl_result *r)
{
    double T = q->T_us * shares, tau = T * (double)(q->burst / shares ? q->burst / shares : 1);
    rl_stripe *st;
    rl_slot *s = slot_locked(c->rl->local, q->hash, &st);
    double now = (double)mono_us();
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
static void fall_back(strata_cache *c, const rl_req *q, strata_rl_result *r)
{
    if (c->rl->fallback == STRATA_RL_FALLBACK_LOCAL) {
        decide_locally(c, q, c->rl->instances, r);
        r->source = STRATA_RL_LOCAL;
        return;
    }
    memset(r, 0, sizeof *r);
    r->limit = q->burst;
    r->allowed = c->rl->fallback == STRATA_RL_FALLBACK_OPEN;
    r->remaining = r->allowed ? q->burst : 0;
    r->retry_after_ms = r->allowed ? 0 : 1000;
    r->source = r->allowed ? STRATA_RL_FAIL_OPEN : STRATA_RL_FAIL_CLOSED;
}

/* ---- Redis -------------------------------------------------------------------------------- */

typedef struct rl_cmd {
    l2_cmd cmd;
    char T[32], tau[32], cost[24];
} rl_cmd;

/* EVALSHA sha 1 key T tau cost, or EVAL script 1 key ... when the sha is not known (yet). */
static void build(strata_cache *c, const rl_req *q, int by_sha, rl_cmd *rc)
{
    snprintf(rc->T, sizeof rc->T, "%.3f", q->T_us);
    snprintf(rc->tau, sizeof rc->tau, "%.3f", q->tau_us);
    snprintf(rc->cost, sizeof rc->cost, "%llu", (unsigned long long)q->cost);
    l2_cmd *m = &rc->cmd;
    memset(m, 0, sizeof *m);
    m->argc = 7;
    m->argv[0] = by_sha ? "EVALSHA" : "EVAL";
    m->argvlen[0] = strlen(m->argv[0]);
    m->argv[1] = by_sha ? c->rl->sha : gcra_script; /* sha: immutable after creation */
    m->argvlen[1] = by_sha ? 40 : sizeof gcra_script - 1;
    m->argv[2] = "1";
    m->argvlen[2] = 1;
    m->argv[3] = q->key;
    m->argvlen[3] = q->klen;
    m->argv[4] = rc->T, m->argvlen[4] = strlen(rc->T);
    m->argv[5] = rc->tau, m->argvlen[5] = strlen(rc->tau);
    m->argv[6] = rc->cost, m->argvlen[6] = strlen(rc->cost);
}

/* Reads the script's answer {allowed, remaining, retry_after_us, reset_us}. Returns 0, 1 for
 * NOSCRIPT (run it again with EVAL), or -1 for anything else. */
static int decode(const redisReply *r, const rl_req *q, strata_rl_result *out)
{
    if (r->type == REDIS_REPLY_ERROR)
        return strncmp(r->str, "NOSCRIPT", 8) == 0 ? 1 : -1;
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

static int decide_in_redis(strata_cache *c, const rl_req *q, strata_rl_result *out)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        rl_cmd rc = {0};
        build(c, q, attempt == 0, &rc);
        redisReply *r;
        int recovered, rc2 = strata__l2_run(c->l2, &rc.cmd, &r, &recovered);
        strata__cache_recovered(c, recovered);
        if (rc2 != 0)
            return -1;
        int d = decode(r, q, out);
        freeReplyObject(r);
        if (d <= 0)
            return d; /* decided, or a reply we cannot use */
        /* NOSCRIPT: Redis restarted or was flushed; EVAL caches the script again. */
    }
    return -1;
}

int strata_ratelimit(strata_cache *c, const char *tenant, const void *key, size_t len,
                     const strata_rl_params *p, strata_rl_result *out)
{
    rl_req q;
    int rc = prepare(c, tenant, key, len, p, &q);
    if (rc != 0)
        return rc;
    if (!remembered(c, &q, out)) {
        if (c->l2 == NULL) {
            decide_locally(c, &q, 1, out);
            out->source = STRATA_RL_LOCAL;
        } else if (decide_in_redis(c, &q, out) != 0) {
            fall_back(c, &q, out);
        }
        remember(c, &q, out);
    }
    count(c, out);
    return 0;
}

/* ---- asynchronous ------------------------------------------------------------------------- */

typedef struct rl_async {
    strata_cache *c;
    strata_loop *lp;
    rl_req q;
    rl_cmd cmd;
    int attempt;
    strata_rl_cb cb;
    void *arg;
} rl_async;

static void rl_finish(rl_async *a, strata_rl_result *r)
{
    remember(a->c, &a->q, r);
    count(a->c, r);
    a->cb(0, r, a->arg);
    free(a);
}

static void on_rl_reply(const redisReply *r, void *arg)
{
    rl_async *a = arg;
    strata_rl_result res;
    int d = r ? decode(r, &a->q, &res) : -1;
    if (d == 1 && a->attempt++ == 0) {
        build(a->c, &a->q, 0, &a->cmd); /* NOSCRIPT: send the script itself */
        if (strata__loop_send(a->lp, &a->cmd.cmd, on_rl_reply, a) == STRATA_PENDING)
            return;
        d = -1;
    }
    if (d != 0)
        fall_back(a->c, &a->q, &res);
    rl_finish(a, &res);
}

int strata_ratelimit_async(strata_loop *lp, const char *tenant, const void *key, size_t len,
                           const strata_rl_params *p, strata_rl_cb cb, void *arg,
                           strata_rl_result *out)
{
    strata_cache *c = strata__loop_cache(lp);
    rl_async *a = calloc(1, sizeof *a);
    if (a == NULL)
        return STRATA_ENOMEM;
    int rc = prepare(c, tenant, key, len, p, &a->q);
    if (rc == 0 && c->l2 != NULL && !remembered(c, &a->q, out)) {
        a->c = c, a->lp = lp, a->cb = cb, a->arg = arg;
        build(c, &a->q, 1, &a->cmd);
        if (strata__loop_send(lp, &a->cmd.cmd, on_rl_reply, a) == STRATA_PENDING)
            return STRATA_PENDING;
        fall_back(c, &a->q, out);
        remember(c, &a->q, out);
        count(c, out);
    } else if (rc == 0) {
        if (c->l2 == NULL && out->source != STRATA_RL_REMEMBERED) {
            decide_locally(c, &a->q, 1, out);
            out->source = STRATA_RL_LOCAL;
            remember(c, &a->q, out);
        }
        count(c, out);
    }
    free(a);
    return rc;
}

void strata_ratelimit_stats(strata_cache *c, strata_rl_stats *out)
{
    struct rl_state *rl = c->rl;
    out->checks = atomic_load(&rl->checks);
    out->allowed = atomic_load(&rl->allowed);
    out->limited = atomic_load(&rl->limited);
    out->redis = atomic_load(&rl->redis);
    out->remembered = atomic_load(&rl->remembered_n);
    out->local = atomic_load(&rl->local_n);
    out->fail_open = atomic_load(&rl->open_n);
    out->fail_closed = atomic_load(&rl->closed_n);
}
