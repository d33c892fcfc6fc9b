/* cache.c: the two-tier cache: L1 in front of Redis, and what happens when Redis fails.
 *
 * Reads: L1 first, when L1 can be trusted (the invalidation link is up); then Redis; a Redis hit
 * is promoted into L1 with the expiry it was written with, unless an invalidation of that key
 * arrived while it was being read (the ticket moved: Redis' "caching in progress" problem). Any
 * Redis failure falls back to L1: the caller sees a miss or L1 data, never an error.
 *
 * Writes: the entry is built once (TTL rules, jitter, tag versions), written to Redis, then to
 * L1. If Redis is unavailable or read-only the write lands in L1 alone and the call says so
 * (STRATA_OK_L1_ONLY). When Redis comes back (the breaker closes) L1 is dropped whole: entries
 * from before the outage may be stale, and L1-only writes made during it are not written back
 * (they were acknowledged as L1-only; see docs/architecture.md, "Coherence").
 *
 * Without REDIS_URL the cache is its L1, and every call completes in L1.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <strata/cache.h>
#include <strata/errors.h>
#include <xxhash.h>

#include "cache/cache_internal.h"
#include "redis/coherence.h"
#include "core/config.h"
#include "cache/format.h"
#include "l1/l1_internal.h"
#include "redis/l2.h"
#include "core/rand.h"
#include "redis/redis_url.h"
#include "core/tag_key.h"

#define KEY_BUF STRATA_STORED_KEY_MAX(STRATA_KEY_MAX_LIMIT)

void (*strata__test_after_l2_read)(void *arg);
void *strata__test_arg;

static void log_stderr(int level, const char *msg, void *arg)
{
    (void)arg;
    static const char *names[] = {"error", "warning", "info"};
    fprintf(stderr, "strata: %s: %s\n", names[level < 0 || level > 2 ? 0 : level], msg);
}

/* ---- configuration ------------------------------------------------------------------------ */

static int env_bool(const char *name, int *out, const char **bad)
{
    const char *v = getenv(name);
    if (v == NULL || *v == '\0')
        return 0;
    if (strata__parse_bool(v, out) == 0)
        return 0;
    *bad = name;
    return STRATA_ERANGE;
}

static int env_seconds(const char *name, unsigned *out_ms, const char **bad)
{
    const char *v = getenv(name);
    if (v == NULL || *v == '\0')
        return 0;
    if (strata__parse_seconds(v, 3600, out_ms) == 0)
        return 0;
    *bad = name;
    return STRATA_ERANGE;
}

static int env_uint(const char *name, unsigned long lo, unsigned long hi, unsigned long *out,
                    const char **bad)
{
    const char *v = getenv(name);
    if (v == NULL || *v == '\0')
        return 0;
    if (strata__parse_uint(v, lo, hi, out) == 0)
        return 0;
    *bad = name;
    return STRATA_ERANGE;
}

static void redis_defaults(strata_redis_config *r)
{
    memset(r, 0, sizeof *r);
    r->enabled = 1;
    r->max_connections = 8;
    r->connect_timeout_ms = 500;
    r->socket_timeout_ms = 250;
    r->breaker_failures = 5;
    r->breaker_min_backoff_ms = 100;
    r->breaker_max_backoff_ms = 10000;
    r->coherence = 1;
    r->max_pending = 1024;
}

static int env_redis(strata_redis_config *r, const char **bad)
{
    unsigned long n;
    const char *url = getenv("REDIS_URL");
    if (url != NULL && *url != '\0') {
        if (strata_redis_url_check(url, NULL) != 0)
            return *bad = "REDIS_URL", STRATA_EBADURL;
        r->url = url;
    }
    int rc = env_bool("REDIS_ENABLED", &r->enabled, bad);
    if (rc == 0 && (rc = env_uint("REDIS_MAX_CONNECTIONS", 1, 1024, &n, bad)) == 0 &&
        getenv("REDIS_MAX_CONNECTIONS") && *getenv("REDIS_MAX_CONNECTIONS"))
        r->max_connections = (unsigned)n;
    if (rc == 0)
        rc = env_seconds("REDIS_CONNECT_TIMEOUT", &r->connect_timeout_ms, bad);
    if (rc == 0)
        rc = env_seconds("REDIS_SOCKET_TIMEOUT", &r->socket_timeout_ms, bad);
    if (rc == 0)
        rc = env_bool("REDIS_READONLY", &r->readonly, bad);
    return rc;
}

int strata_cache_config_init(strata_cache_config *cfg, const char **bad_var)
{
    const char *bad = NULL;
    memset(cfg, 0, sizeof *cfg);
    redis_defaults(&cfg->redis);
    int rc = strata_l1_config_init(&cfg->l1);
    if (rc != 0)
        bad = "STRATA_L1_MAX_MEMORY";
    const char *prefix = getenv("STRATA_PREFIX");
    if (rc == 0 && prefix != NULL && *prefix != '\0') {
        if (strata_prefix_check(prefix) != 0)
            rc = STRATA_EBADNAME, bad = "STRATA_PREFIX";
        else
            cfg->l1.prefix = prefix;
    }
    unsigned long ttl;
    if (rc == 0 && (rc = env_uint("CACHE_TTL", 0, 10ul * 365 * 86400, &ttl, &bad)) == 0 &&
        getenv("CACHE_TTL") && *getenv("CACHE_TTL"))
        cfg->default_ttl_ms = (uint64_t)ttl * 1000;
    if (rc == 0)
        rc = env_redis(&cfg->redis, &bad);
    if (bad_var != NULL)
        *bad_var = bad;
    return rc;
}

int strata_redis_url_check(const char *url, const char **why)
{
    redis_url u;
    return strata__redis_url_parse(url, &u, why);
}

/* ---- life cycle --------------------------------------------------------------------------- */

static int start_l2(strata_cache *c, const strata_cache_config *cfg)
{
    redis_url url;
    if (strata__redis_url_parse(cfg->redis.url, &url, NULL) != 0)
        return STRATA_EBADURL;
    int rc = strata__l2_new(&cfg->redis, &url, c->log, c->log_arg, &c->l2);
    if (rc == 0 && cfg->redis.coherence && (rc = strata__l1_enable_tickets(c->l1, 65536)) == 0)
        rc = strata__coherence_start(c->l2, c->l1, &c->link);
    return rc;
}

int strata_cache_new(const strata_cache_config *cfg, strata_cache **out)
{
    strata_cache_config defaults;
    if (cfg == NULL) {
        memset(&defaults, 0, sizeof defaults);
        strata_l1_config_init(&defaults.l1);
        redis_defaults(&defaults.redis);
        cfg = &defaults;
    }
    *out = NULL;
    strata_cache *c = calloc(1, sizeof *c);
    if (c == NULL)
        return STRATA_ENOMEM;
    c->log = cfg->log ? cfg->log : log_stderr;
    c->log_arg = cfg->log_arg;
    c->rng = strata__rand_seed();
    pthread_mutex_init(&c->rng_lock, NULL);
    if ((c->rl = strata__rl_new()) == NULL) {
        free(c);
        return STRATA_ENOMEM;
    }
    strata_l1_config l1cfg = cfg->l1;
    if (cfg->default_ttl_ms != 0)
        l1cfg.default_ttl_ms = cfg->default_ttl_ms;
    int rc = strata_l1_new(&l1cfg, &c->l1);
    if (rc == 0 && cfg->redis.url != NULL && cfg->redis.enabled)
        rc = start_l2(c, cfg);
    if (rc != 0) {
        strata_cache_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void strata_cache_free(strata_cache *c)
{
    if (c == NULL)
        return;
    strata__coherence_stop(c->link);
    strata__l2_free(c->l2);
    strata_l1_free(c->l1);
    strata__rl_free(c->rl);
    pthread_mutex_destroy(&c->rng_lock);
    free(c);
}

int strata_cache_shared(strata_cache *c)
{
    return c->l2 != NULL;
}

strata_l1 *strata_cache_l1(strata_cache *c)
{
    return c->l1;
}

/* ---- helpers ------------------------------------------------------------------------------ */

/* May L1's copies of shared keys be served? Only while every invalidation reaches us. */
int strata__cache_l1_trusted(strata_cache *c)
{
    return c->l2 == NULL || strata__coherence_up(c->link);
}

int strata__cache_l2_down(strata_cache *c)
{
    return strata__breaker_state(strata__l2_breaker(c->l2)) == BREAKER_OPEN;
}

/* After an outage, L1 may hold what Redis has since changed: drop it all. */
void strata__cache_recovered(strata_cache *c, int recovered)
{
    if (!recovered)
        return;
    c->log(2, "redis is back: dropping L1, which may have missed writes during the outage",
           c->log_arg);
    strata__l1_invalidate_all(c->l1);
}

uint64_t strata__cache_random(strata_cache *c)
{
    pthread_mutex_lock(&c->rng_lock);
    uint64_t v;
    do
        v = strata__rand_next(&c->rng);
    while (v == 0);
    pthread_mutex_unlock(&c->rng_lock);
    return v;
}

/* ---- tags against Redis ------------------------------------------------------------------- */

/* The current versions of tags (create: make missing ones, for a write; otherwise a missing one
 * reads as 0, which no entry carries). Versions known to L1 are used while L1 is trusted; the rest
 * come from Redis in one pipelined round trip and are learnt by L1. */
static int tag_versions(strata_cache *c, const char *tenant, const char *const *tags, size_t n,
                        int create, uint64_t *versions)
{
    l2_cmd cmds[STRATA_TAGS_MAX_PER_ENTRY];
    char keys[STRATA_TAGS_MAX_PER_ENTRY][STRATA_TAG_KEY_MAX];
    size_t lens[STRATA_TAGS_MAX_PER_ENTRY], ask[STRATA_TAGS_MAX_PER_ENTRY], nask = 0;
    uint64_t tickets[STRATA_TAGS_MAX_PER_ENTRY], cand[STRATA_TAGS_MAX_PER_ENTRY];
    int trusted = strata__cache_l1_trusted(c);
    const char *prefix = strata__l1_prefix(c->l1);
    for (size_t i = 0; i < n; i++) {
        uint64_t h = strata__tag_hash(tenant, tags[i]);
        if (trusted && strata__tags_current(strata__l1_tags(c->l1), h, 0, &versions[i]) == 0)
            continue;
        int rc = strata__tag_key_build(prefix, tenant, tags[i], keys[nask], STRATA_TAG_KEY_MAX,
                                       &lens[nask]);
        if (rc != 0)
            return rc;
        tickets[nask] = strata__l1_ticket(c->l1, XXH3_64bits(keys[nask], lens[nask]));
        cand[nask] = strata__cache_random(c);
        if (create)
            strata__cmd_tag_version(&cmds[nask], keys[nask], lens[nask], cand[nask]);
        else
            strata__cmd_get(&cmds[nask], keys[nask], lens[nask]);
        ask[nask++] = i;
    }
    if (nask == 0)
        return 0;
    redisReply *replies[STRATA_TAGS_MAX_PER_ENTRY];
    int recovered, rc = strata__l2_run_many(c->l2, cmds, nask, replies, &recovered);
    strata__cache_recovered(c, recovered);
    if (rc != 0)
        return rc;
    for (size_t j = 0; j < nask; j++) {
        size_t i = ask[j];
        const char *s;
        size_t len;
        int r = create ? strata__reply_tag_version(replies[j], cand[j], &versions[i])
                       : strata__reply_get(replies[j], &s, &len);
        if (!create && r == 0)
            r = strata__tag_version_parse(s, len, &versions[i]);
        if (!create && r == STRATA_ENOTFOUND)
            versions[i] = 0, r = 0; /* missing: invalidates what carries the tag */
        if (r == 0 && versions[i] != 0 && trusted)
            strata__l1_tag_learn(c->l1, strata__tag_hash(tenant, tags[i]),
                                 XXH3_64bits(keys[j], lens[j]), versions[i], tickets[j]);
        if (r != 0 && rc == 0)
            rc = r;
        freeReplyObject(replies[j]);
    }
    return rc;
}

/* ---- reads -------------------------------------------------------------------------------- */

/* Copies a stored entry's tag names out (NUL-terminated) and the versions it carries. */
static void entry_tag_names(const format_view *f, char names[][STRATA_TAG_MAX + 1],
                            const char **tags, uint64_t *want)
{
    for (size_t i = 0; i < f->ntags; i++) {
        memcpy(names[i], f->tags[i].name, f->tags[i].name_len);
        names[i][f->tags[i].name_len] = '\0';
        tags[i] = names[i];
        want[i] = f->tags[i].version;
    }
}

int strata__cache_judge(strata_cache *c, const strata_key *k, const format_view *f,
                        const uint64_t *have, uint64_t ticket, strata_value **out)
{
    char names[STRATA_TAGS_MAX_PER_ENTRY][STRATA_TAG_MAX + 1];
    const char *tags[STRATA_TAGS_MAX_PER_ENTRY];
    uint64_t want[STRATA_TAGS_MAX_PER_ENTRY];
    char ctype[STRATA_CONTENT_TYPE_MAX + 1];
    entry_tag_names(f, names, tags, want);
    for (size_t i = 0; i < f->ntags; i++)
        if (have[i] != want[i])
            return STRATA_ENOTFOUND; /* a tag was invalidated (or lost) since the write */
    memcpy(ctype, f->content_type, f->content_type_len);
    ctype[f->content_type_len] = '\0';
    strata_set_opts o = {.grace_ms = f->grace_ms,
                         .content_type = ctype,
                         .tags = tags,
                         .ntags = f->ntags,
                         .flags = f->flags};
    l1_write w = {.k = k,
                  .value = f->value,
                  .len = f->value_len,
                  .opts = &o,
                  .now_ms = strata_now_ms(),
                  .tag_versions = want,
                  .absolute = 1,
                  .created_ms = f->created_ms,
                  .expires_ms = f->expires_ms};
    struct strata_value *e;
    int rc = strata__l1_prepare(c->l1, &w, &e);
    if (rc != 0)
        return rc == STRATA_ETOOBIG || rc == STRATA_EVALUELARGE ? STRATA_ENOTFOUND : rc;
    if (!c->link || !strata__cache_l1_trusted(c) ||
        strata__l1_store(c->l1, e, 0, w.now_ms, ticket) != 0)
        strata__l1_detach(e); /* served once, not kept */
    *out = e;
    return 0;
}

/* Checks a Redis entry's tags (from L1 or Redis) and builds the value to return, promoting it
 * into L1 when L1 is trusted and no invalidation raced the read. */
static int accept_l2(strata_cache *c, const strata_key *k, const format_view *f, uint64_t ticket,
                     strata_value **out)
{
    char names[STRATA_TAGS_MAX_PER_ENTRY][STRATA_TAG_MAX + 1];
    const char *tags[STRATA_TAGS_MAX_PER_ENTRY];
    uint64_t want[STRATA_TAGS_MAX_PER_ENTRY], have[STRATA_TAGS_MAX_PER_ENTRY];
    entry_tag_names(f, names, tags, want);
    int rc =
        tag_versions(c, k->tenant ? k->tenant : STRATA_DEFAULT_TENANT, tags, f->ntags, 0, have);
    return rc != 0 ? rc : strata__cache_judge(c, k, f, have, ticket, out);
}

/* Reads k from Redis. 0 with *out, STRATA_ENOTFOUND, or a failure (Redis unusable). */
static int get_l2(strata_cache *c, const strata_key *k, strata_value **out)
{
    char key[KEY_BUF];
    size_t klen;
    uint64_t hash;
    int rc = strata__l1_build_key(c->l1, k, key, sizeof key, &klen, &hash);
    if (rc != 0)
        return rc;
    uint64_t ticket = strata__l1_ticket(c->l1, hash); /* before the read: see accept_l2 */
    l2_cmd cmd;
    strata__cmd_get(&cmd, key, klen);
    redisReply *r;
    int recovered;
    rc = strata__l2_run(c->l2, &cmd, &r, &recovered);
    strata__cache_recovered(c, recovered);
    if (rc != 0)
        return rc;
    if (strata__test_after_l2_read != NULL)
        strata__test_after_l2_read(strata__test_arg);
    const char *data;
    size_t len;
    format_view f;
    rc = strata__reply_get(r, &data, &len);
    if (rc == 0 && strata__format_decode(data, len, &f) != 0)
        rc = STRATA_ENOTFOUND; /* an unknown format version reads as a miss */
    uint64_t now = strata_now_ms();
    if (rc == 0 && f.expires_ms != 0 && now >= f.expires_ms)
        rc = STRATA_ENOTFOUND; /* in its grace period: kept for stale serving, not served */
    if (rc == 0)
        rc = accept_l2(c, k, &f, ticket, out);
    freeReplyObject(r);
    return rc;
}

int strata__cache_failure(int rc)
{
    return rc == STRATA_EUNAVAILABLE || rc == STRATA_ETIMEDOUT || rc == STRATA_EPROTO ||
           rc == STRATA_EREADONLY;
}

int strata_cache_get(strata_cache *c, const strata_key *k, strata_value **out)
{
    *out = NULL;
    if (c->l2 == NULL)
        return strata_l1_get(c->l1, k, strata_now_ms(), out);
    int rc = STRATA_ENOTFOUND;
    if (strata__cache_l1_trusted(c)) {
        rc = strata__l1_get_ex(c->l1, k, strata_now_ms(), 1, out);
        if (rc != STRATA_ENOTFOUND)
            return rc; /* a hit, or a bad key */
    }
    rc = get_l2(c, k, out);
    if (rc == 0) {
        atomic_fetch_add(&c->hits, 1);
        return 0;
    }
    if (rc == STRATA_ENOTFOUND) {
        atomic_fetch_add(&c->misses, 1);
        return rc;
    }
    if (!strata__cache_failure(rc))
        return rc;
    /* Redis is unusable: what L1 holds is the best answer there is (the fallback). */
    if (rc != STRATA_EUNAVAILABLE || !strata__cache_l2_down(c))
        atomic_fetch_add(&c->errors, 1);
    atomic_fetch_add(&c->fallbacks, 1);
    rc = strata__l1_get_ex(c->l1, k, strata_now_ms(), 0, out);
    return rc == STRATA_OK ? STRATA_OK_L1_ONLY : rc;
}

/* ---- writes ------------------------------------------------------------------------------- */

int strata__cache_encode(struct strata_value *e, uint64_t now, char **blob, size_t *blen,
                         uint64_t *px)
{
    format_view f = {.flags = strata_value_flags(e),
                     .created_ms = strata_value_created_ms(e),
                     .expires_ms = strata_value_expires_ms(e),
                     .grace_ms = strata_value_grace_ms(e),
                     .content_type = strata_value_content_type(e),
                     .content_type_len = strlen(strata_value_content_type(e)),
                     .ntags = e->ntags,
                     .value = strata_value_data(e),
                     .value_len = strata_value_len(e)};
    const entry_tag *t = entry_tags(e);
    for (size_t i = 0; i < e->ntags; i++) {
        f.tags[i].name = e->data + t[i].name_off;
        f.tags[i].name_len = strlen(f.tags[i].name);
        f.tags[i].version = t[i].version;
    }
    *px = 0;
    if (f.expires_ms != 0) {
        uint64_t deadline = f.expires_ms + f.grace_ms;
        if (deadline <= now)
            return 1; /* already dead: nothing to store */
        *px = deadline - now;
    }
    if ((*blob = malloc(strata__format_size(&f))) == NULL)
        return STRATA_ENOMEM;
    *blen = strata__format_encode(&f, *blob);
    return 0;
}

/* Writes e's encoding to Redis. 0, STRATA_EEXISTS (NX), or a failure. */
static int set_l2(strata_cache *c, struct strata_value *e, unsigned flags, uint64_t now)
{
    char *blob;
    size_t blen;
    uint64_t px;
    int rc = strata__cache_encode(e, now, &blob, &blen, &px);
    if (rc != 0)
        return rc == 1 ? 0 : rc;
    l2_cmd cmd;
    strata__cmd_set(&cmd, entry_key(e), e->key_len, blob, blen, px, (flags & STRATA_SET_NX) != 0);
    redisReply *r;
    int recovered;
    rc = strata__l2_run(c->l2, &cmd, &r, &recovered);
    free(blob);
    strata__cache_recovered(c, recovered);
    if (rc != 0)
        return rc;
    rc = strata__reply_set(r);
    freeReplyObject(r);
    return rc;
}

/* A write Redis could not take lands in L1 alone, said so to the caller. */
static int set_l1_only(strata_cache *c, struct strata_value *e, unsigned flags, uint64_t now)
{
    atomic_fetch_add(&c->fallbacks, 1);
    int rc = strata__l1_store(c->l1, e, flags, now, STRATA__NO_TICKET);
    return rc == 0 ? STRATA_OK_L1_ONLY : rc;
}

static int set_two_tier(strata_cache *c, const strata_key *k, const void *value, size_t len,
                        const strata_set_opts *opts, uint64_t now)
{
    static const strata_set_opts no_opts;
    const strata_set_opts *o = opts ? opts : &no_opts;
    uint64_t versions[STRATA_TAGS_MAX_PER_ENTRY];
    /* Not "breaker closed": while it is open, a write must still be able to be the probe that
     * finds Redis back (strata__l2_run fails fast otherwise). */
    int usable = !strata__l2_readonly(c->l2);
    if (o->ntags > STRATA_TAGS_MAX_PER_ENTRY)
        return STRATA_ETOOMANYTAGS;
    int rc = 0;
    if (usable && o->ntags > 0) {
        /* Tag names are validated by prepare; an invalid one must not reach Redis first. */
        for (size_t i = 0; i < o->ntags; i++)
            if (o->tags[i] == NULL || strnlen(o->tags[i], STRATA_TAG_MAX + 1) > STRATA_TAG_MAX)
                return STRATA_EBADTEXT;
        rc = tag_versions(c, k->tenant ? k->tenant : STRATA_DEFAULT_TENANT, o->tags, o->ntags, 1,
                          versions);
        if (strata__cache_failure(rc))
            usable = 0, rc = 0;
        if (rc != 0)
            return rc;
    }
    l1_write w = {.k = k,
                  .value = value,
                  .len = len,
                  .opts = opts,
                  .now_ms = now,
                  .tag_versions = usable && o->ntags ? versions : NULL};
    struct strata_value *e;
    if ((rc = strata__l1_prepare(c->l1, &w, &e)) != 0)
        return rc;
    if (!usable)
        return strata__cache_finish_set(c, e, o->flags, now, STRATA__NO_TICKET,
                                        STRATA_EREADONLY); /* Redis skipped by design */
    uint64_t ticket = strata__l1_ticket(c->l1, e->hash);
    return strata__cache_finish_set(c, e, o->flags, now, ticket, set_l2(c, e, o->flags, now));
}

int strata__cache_finish_set(strata_cache *c, struct strata_value *e, unsigned flags, uint64_t now,
                             uint64_t ticket, int l2rc)
{
    if (l2rc == 0) {
        e->pinned = 0; /* Redis holds it: L1's copy is a cache entry like any other */
        if (strata__cache_l1_trusted(c) && strata__l1_store(c->l1, e, 0, now, ticket) == 0)
            strata_value_release(e);
        else
            strata__l1_discard(e);
        return 0;
    }
    if (l2rc == STRATA_EEXISTS || !strata__cache_failure(l2rc)) {
        strata__l1_discard(e);
        return l2rc;
    }
    if (l2rc != STRATA_EREADONLY && !(l2rc == STRATA_EUNAVAILABLE && strata__cache_l2_down(c)))
        atomic_fetch_add(&c->errors, 1);
    int rc = set_l1_only(c, e, flags, now);
    if (rc == STRATA_OK_L1_ONLY)
        strata_value_release(e);
    else
        strata__l1_discard(e);
    return rc;
}

int strata_cache_set(strata_cache *c, const strata_key *k, const void *value, size_t len,
                     const strata_set_opts *opts)
{
    uint64_t now = strata_now_ms();
    if (c->l2 == NULL)
        return strata_l1_set(c->l1, k, value, len, opts, now);
    return set_two_tier(c, k, value, len, opts, now);
}

int strata_cache_del(strata_cache *c, const strata_key *k)
{
    uint64_t now = strata_now_ms();
    int l1rc = strata_l1_del(c->l1, k, now);
    if (c->l2 == NULL || (l1rc != 0 && l1rc != STRATA_ENOTFOUND))
        return l1rc;
    char key[KEY_BUF];
    size_t klen;
    uint64_t hash;
    strata__l1_build_key(c->l1, k, key, sizeof key, &klen, &hash);
    if (strata__l2_readonly(c->l2))
        return STRATA_OK_L1_ONLY;
    l2_cmd cmd;
    strata__cmd_del(&cmd, key, klen);
    redisReply *r;
    int recovered, rc = strata__l2_run(c->l2, &cmd, &r, &recovered);
    strata__cache_recovered(c, recovered);
    if (rc != 0) {
        atomic_fetch_add(&c->fallbacks, 1);
        return STRATA_OK_L1_ONLY;
    }
    rc = strata__reply_del(r);
    freeReplyObject(r);
    if (rc == STRATA_EREADONLY)
        return STRATA_OK_L1_ONLY;
    if (rc == STRATA_ENOTFOUND && l1rc == 0)
        rc = 0;
    return rc;
}

/* ---- bulk --------------------------------------------------------------------------------- */

typedef struct clear_filter {
    const char *prefix, *ns, *tenant, *pattern;
} clear_filter;

/* SCAN MATCH is only a prefilter ('*' can span ':'); this decides, on the parsed user key. */
static int clear_keep(const char *key, size_t len, void *arg)
{
    const clear_filter *f = arg;
    strata_key_parts p;
    if (strata_key_parse(f->prefix, key, len, &p) != 0)
        return 0; /* a tag key, or not ours */
    if (f->ns == NULL && p.ns[0] == '_')
        return 0; /* reserved namespaces ("_sessions") only when named */
    if (f->ns && (strlen(f->ns) != p.ns_len || memcmp(f->ns, p.ns, p.ns_len) != 0))
        return 0;
    if (f->tenant &&
        (strlen(f->tenant) != p.tenant_len || memcmp(f->tenant, p.tenant, p.tenant_len) != 0))
        return 0;
    return f->pattern == NULL ||
           strata_glob_match(f->pattern, strlen(f->pattern), p.key, p.key_len);
}

int strata_cache_clear(strata_cache *c, const char *ns, const char *tenant, const char *pattern,
                       size_t *removed)
{
    size_t n1 = 0;
    int rc = strata_l1_clear(c->l1, ns, tenant, pattern, &n1);
    if (rc != 0 || c->l2 == NULL) {
        if (removed != NULL)
            *removed = n1;
        return rc;
    }
    const char *prefix = strata__l1_prefix(c->l1);
    char match[STRATA_PREFIX_MAX + 2 * STRATA_NAME_MAX + 1024];
    snprintf(match, sizeof match, "%s:%s:%s:%s", prefix, ns ? ns : "*", tenant ? tenant : "*",
             pattern && strlen(pattern) < 900 ? pattern : "*");
    if (strata__l2_readonly(c->l2)) { /* Redis cannot remove anything: say so */
        if (removed != NULL)
            *removed = n1;
        return STRATA_OK_L1_ONLY;
    }
    clear_filter f = {prefix, ns, tenant, pattern};
    size_t n2 = 0;
    rc = strata__l2_scan_unlink(c->l2, match, clear_keep, &f, &n2);
    if (removed != NULL)
        *removed = rc == 0 ? n2 : n1;
    return rc == 0 ? 0 : STRATA_OK_L1_ONLY;
}

int strata_cache_flush(strata_cache *c)
{
    strata__l1_invalidate_all(c->l1);
    if (c->l2 == NULL)
        return 0;
    if (strata__l2_readonly(c->l2))
        return STRATA_OK_L1_ONLY;
    l2_cmd cmd = {.argc = 2, .argv = {"FLUSHDB", "ASYNC"}, .argvlen = {7, 5}};
    redisReply *r;
    int recovered, rc = strata__l2_run(c->l2, &cmd, &r, &recovered);
    strata__cache_recovered(c, recovered);
    if (rc != 0)
        return STRATA_OK_L1_ONLY;
    rc = strata__reply_error(r);
    freeReplyObject(r);
    return rc == 0 ? 0 : STRATA_OK_L1_ONLY; /* refused (read-only, no permission): L1 only */
}

int strata_cache_tag_invalidate(strata_cache *c, const char *tenant, const char *tag)
{
    int rc = strata_l1_tag_invalidate(c->l1, tenant, tag);
    if (rc != 0 || c->l2 == NULL)
        return rc;
    char key[STRATA_TAG_KEY_MAX];
    size_t len;
    if ((rc = strata__tag_key_build(strata__l1_prefix(c->l1), tenant, tag, key, sizeof key,
                                    &len)) != 0)
        return rc;
    if (strata__l2_readonly(c->l2))
        return STRATA_OK_L1_ONLY;
    l2_cmd cmd;
    strata__cmd_tag_bump(&cmd, key, len, strata__cache_random(c));
    redisReply *r;
    int recovered;
    rc = strata__l2_run(c->l2, &cmd, &r, &recovered);
    strata__cache_recovered(c, recovered);
    if (rc != 0)
        return STRATA_OK_L1_ONLY;
    rc = strata__reply_set(r);
    freeReplyObject(r);
    return rc == 0 ? 0 : STRATA_OK_L1_ONLY;
}

/* ---- stats and health --------------------------------------------------------------------- */

void strata_cache_l2_stats(strata_cache *c, strata_l2_stats *out)
{
    memset(out, 0, sizeof *out);
    out->breaker = "closed";
    if (c->l2 == NULL)
        return;
    int state = strata__breaker_state(strata__l2_breaker(c->l2));
    out->configured = 1;
    out->breaker = strata__breaker_state_name(state);
    out->available = state == BREAKER_CLOSED && strata__l2_last_ok(c->l2);
    out->readonly = strata__l2_readonly(c->l2);
    out->coherent = strata__coherence_up(c->link);
    out->hits = atomic_load(&c->hits);
    out->misses = atomic_load(&c->misses);
    out->errors = atomic_load(&c->errors);
    out->fallbacks = atomic_load(&c->fallbacks);
    breaker *b = strata__l2_breaker(c->l2);
    pthread_mutex_lock(&b->lock);
    out->breaker_opens = b->opened_total;
    pthread_mutex_unlock(&b->lock);
    out->invalidations = strata__coherence_invalidations(c->link);
    out->link_drops = strata__coherence_drops(c->link);
    strata__l2_last_error(c->l2, out->last_error, sizeof out->last_error);
}

int strata_cache_ping(strata_cache *c, uint64_t *latency_us)
{
    if (c->l2 == NULL)
        return STRATA_EUNAVAILABLE;
    struct timespec a, b;
    l2_cmd cmd = {.argc = 1, .argv = {"PING"}, .argvlen = {4}};
    redisReply *r;
    int recovered;
    clock_gettime(CLOCK_MONOTONIC, &a);
    int rc = strata__l2_run(c->l2, &cmd, &r, &recovered);
    clock_gettime(CLOCK_MONOTONIC, &b);
    strata__cache_recovered(c, recovered);
    if (rc != 0)
        return rc;
    freeReplyObject(r);
    *latency_us = (uint64_t)((b.tv_sec - a.tv_sec) * 1000000L + (b.tv_nsec - a.tv_nsec) / 1000);
    return 0;
}

/* ---- listing and info --------------------------------------------------------------------- */

typedef struct keys_scan {
    clear_filter f;
    strata_key_cb cb;
    void *arg;
    size_t found;
} keys_scan;

static int list_one(const char *key, size_t len, void *arg)
{
    keys_scan *ks = arg;
    strata_key_parts p;
    if (!clear_keep(key, len, &ks->f) || strata_key_parse(ks->f.prefix, key, len, &p) != 0)
        return 0;
    char ns[STRATA_NAME_MAX + 1], tenant[STRATA_NAME_MAX + 1];
    memcpy(ns, p.ns, p.ns_len), ns[p.ns_len] = '\0';
    memcpy(tenant, p.tenant, p.tenant_len), tenant[p.tenant_len] = '\0';
    ks->cb(ns, tenant, p.key, p.key_len, ks->arg);
    ks->found++;
    return 0; /* never unlink */
}

int strata_cache_keys(strata_cache *c, const char *ns, const char *tenant, const char *pattern,
                      const char *cursor, size_t limit, strata_key_cb cb, void *arg, char *next,
                      size_t next_cap)
{
    if (cursor == NULL || *cursor == '\0')
        cursor = "0";
    char *end;
    unsigned long long cur = strtoull(cursor, &end, 10);
    if (*end != '\0' || *cursor < '0' || *cursor > '9' || next_cap < 21)
        return STRATA_EINVAL;
    if (limit == 0)
        limit = 100;
    if (c->l2 == NULL) {
        uint64_t nx;
        int rc =
            strata_l1_scan(c->l1, ns, tenant, pattern, cur, limit, strata_now_ms(), cb, arg, &nx);
        snprintf(next, next_cap, "%" PRIu64, nx);
        return rc;
    }
    if ((ns != NULL && strata_name_check(ns) != 0) ||
        (tenant != NULL && strata_name_check(tenant) != 0))
        return STRATA_EBADNAME;
    const char *prefix = strata__l1_prefix(c->l1);
    char match[STRATA_PREFIX_MAX + 2 * STRATA_NAME_MAX + 1024];
    snprintf(match, sizeof match, "%s:%s:%s:%s", prefix, ns ? ns : "*", tenant ? tenant : "*",
             pattern && strlen(pattern) < 900 ? pattern : "*");
    keys_scan ks = {{prefix, ns, tenant, pattern}, cb, arg, 0};
    char count[24];
    snprintf(next, next_cap, "%llu", cur);
    /* SCAN's COUNT is work, not results: go on until a page is full or the scan is done, asking
     * each step for what is still missing, so a page stays close to the limit. */
    do {
        size_t found;
        snprintf(count, sizeof count, "%zu", limit - ks.found);
        int rc =
            strata__l2_scan_page(c->l2, next, match, count, list_one, &ks, next, next_cap, &found);
        if (rc != 0)
            return rc;
    } while (ks.found < limit && strcmp(next, "0") != 0);
    return 0;
}

static uint64_t info_u64(const char *info, const char *field)
{
    const char *p = strstr(info, field);
    return p ? strtoull(p + strlen(field), NULL, 10) : 0;
}

static void info_str(const char *info, const char *field, char *out, size_t cap)
{
    const char *p = strstr(info, field);
    out[0] = '\0';
    if (p == NULL)
        return;
    p += strlen(field);
    size_t n = strcspn(p, "\r\n");
    snprintf(out, cap, "%.*s", (int)(n < cap ? n : cap - 1), p);
}

int strata_cache_redis_info(strata_cache *c, strata_redis_info *out)
{
    memset(out, 0, sizeof *out);
    if (c->l2 == NULL)
        return STRATA_EUNAVAILABLE;
    l2_cmd cmd = {.argc = 2, .argv = {"INFO", "everything"}, .argvlen = {4, 10}};
    redisReply *r;
    int recovered, rc = strata__l2_run(c->l2, &cmd, &r, &recovered);
    strata__cache_recovered(c, recovered);
    if (rc != 0)
        return rc;
    if (r->type != REDIS_REPLY_STRING) {
        freeReplyObject(r);
        return STRATA_EPROTO;
    }
    info_str(r->str, "redis_version:", out->version, sizeof out->version);
    info_str(r->str, "maxmemory_policy:", out->maxmemory_policy, sizeof out->maxmemory_policy);
    info_str(r->str, "role:", out->role, sizeof out->role);
    out->used_memory = info_u64(r->str, "used_memory:");
    out->maxmemory = info_u64(r->str, "maxmemory:");
    out->connected_clients = info_u64(r->str, "connected_clients:");
    out->keyspace_hits = info_u64(r->str, "keyspace_hits:");
    out->keyspace_misses = info_u64(r->str, "keyspace_misses:");
    for (const char *p = strstr(r->str, "\ndb"); p != NULL; p = strstr(p + 1, "\ndb"))
        out->keys += info_u64(p, "keys=");
    freeReplyObject(r);
    return 0;
}
