/* l1.c: the memory tier's public API: validation, key building, routing to shards.
 *
 * A call builds the stored key (key.c), hashes it once with XXH3, and picks a shard from the low
 * bits of the hash; the shard (shard.c) does the rest under its own lock, so threads touching
 * different shards never meet. What is shared between shards is either read lock-free (the
 * namespace registry) or only touched by writes and tagged reads (the tag table, tenant scopes).
 *
 * Memory: the bound (max_memory) is split evenly between shards. Each shard charges its entries'
 * real allocation sizes plus its own structures, and shares of the tag table and scopes, against
 * its part, and evicts on write until it fits. See docs/architecture.md, "Memory accounting".
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include <strata/errors.h>
#include <strata/l1.h>

#include "core/config.h"
#include "l1/entry.h"
#include "l1/ns.h"
#include "core/rand.h"
#include "l1/shard.h"
#include "l1/tags.h"
#include "l1/l1_internal.h"

#define MIN_SHARD_BYTES   ((size_t)64 << 10)
#define MAX_SHARDS        256
#define QUOTA_EVICT_TRIES 1024 /* bounded: writers racing on one tenant may refill it */

struct strata_l1 {
    l1_shard *shards;
    unsigned nshards;
    size_t max_memory, max_key_len, max_value_len;
    char prefix[STRATA_PREFIX_MAX + 1];
    size_t prefix_len;
    ns_registry nsr;
    strata_tags *tags;

    pthread_t thread;
    int thread_running, stopping;
    unsigned interval_ms;
    pthread_mutex_t stop_lock;
    pthread_cond_t stop_cond;

    /* Invalidation tickets (two-tier mode only): a counter per slot of key hashes, bumped by every
     * invalidation, so a fill from the shared tier can tell an invalidation raced with it. A
     * key's ticket is its slot's counter plus the epoch, which an invalidation of everything
     * bumps once: both only grow, so any change to either changes the sum. (Bumping every slot
     * was 65,536 atomic increments per link recovery: under ThreadSanitizer, over 300 ms.) */
    _Atomic uint64_t *tickets;
    size_t ticket_mask;
    _Atomic uint64_t ticket_epoch;
};

typedef l1_addr addr;

/* ---- configuration ------------------------------------------------------------------------ */

int strata_l1_config_init(strata_l1_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->max_memory = STRATA_L1_MAX_MEMORY_DEFAULT;
    cfg->max_key_len = STRATA_KEY_MAX_DEFAULT;
    cfg->max_value_len = STRATA_VALUE_MAX_DEFAULT;
    cfg->max_namespaces = 1024;
    cfg->max_tags = 65536;
    cfg->prefix = STRATA_DEFAULT_PREFIX;
    const char *env = getenv("STRATA_L1_MAX_MEMORY");
    if (env != NULL && strata__parse_size(env, &cfg->max_memory) != 0) {
        cfg->max_memory = STRATA_L1_MAX_MEMORY_DEFAULT;
        return STRATA_ERANGE;
    }
    return 0;
}

/* The default shard count: as many as 64, but each shard big enough for four of the largest
 * values, so one large value cannot flush a shard. */
static unsigned default_shards(size_t max_memory, size_t max_value)
{
    unsigned n = 64;
    while (n > 1 && (max_memory / n < 4 * max_value || max_memory / n < MIN_SHARD_BYTES))
        n /= 2;
    return n;
}

static int check_config(const strata_l1_config *c)
{
    if (c->shards != 0 && (c->shards > MAX_SHARDS || (c->shards & (c->shards - 1)) != 0))
        return STRATA_EINVAL;
    if (c->max_key_len > STRATA_KEY_MAX_LIMIT || c->max_value_len > UINT32_MAX / 2)
        return STRATA_EINVAL;
    if (c->prefix != NULL && strata_prefix_check(c->prefix) != 0)
        return STRATA_EBADNAME;
    return 0;
}

static void *maintenance_main(void *arg);

static int l1_init(strata_l1 *l1, const strata_l1_config *cfg)
{
    l1->max_memory = cfg->max_memory ? cfg->max_memory : STRATA_L1_MAX_MEMORY_DEFAULT;
    l1->max_key_len = cfg->max_key_len ? cfg->max_key_len : STRATA_KEY_MAX_DEFAULT;
    l1->max_value_len = cfg->max_value_len ? cfg->max_value_len : STRATA_VALUE_MAX_DEFAULT;
    l1->nshards = cfg->shards ? cfg->shards : default_shards(l1->max_memory, l1->max_value_len);
    if (l1->max_memory / l1->nshards < MIN_SHARD_BYTES)
        return STRATA_EINVAL;
    strcpy(l1->prefix, cfg->prefix ? cfg->prefix : STRATA_DEFAULT_PREFIX);
    l1->prefix_len = strlen(l1->prefix);

    int rc = strata__ns_init(&l1->nsr, cfg->max_namespaces ? cfg->max_namespaces : 1024,
                             l1->nshards, cfg->default_ttl_ms);
    if (rc != 0)
        return rc;
    l1->tags = strata__tags_new(cfg->max_tags ? cfg->max_tags : 65536);
    if (posix_memalign((void **)&l1->shards, 64, l1->nshards * sizeof *l1->shards) != 0)
        l1->shards = NULL;
    if (l1->tags == NULL || l1->shards == NULL)
        return STRATA_ENOMEM;
    for (unsigned i = 0; i < l1->nshards; i++)
        if (strata__shard_init(&l1->shards[i], i, l1->max_memory / l1->nshards) != 0) {
            l1->nshards = i; /* so free destroys only those made */
            return STRATA_ENOMEM;
        }
    return 0;
}

int strata_l1_new(const strata_l1_config *cfg, strata_l1 **out)
{
    strata_l1_config defaults;
    if (cfg == NULL) {
        strata_l1_config_init(&defaults);
        cfg = &defaults;
    }
    *out = NULL;
    int rc = check_config(cfg);
    if (rc != 0)
        return rc;
    strata_l1 *l1 = calloc(1, sizeof *l1);
    if (l1 == NULL)
        return STRATA_ENOMEM;
    pthread_mutex_init(&l1->stop_lock, NULL);
    pthread_cond_init(&l1->stop_cond, NULL);
    if ((rc = l1_init(l1, cfg)) != 0) {
        strata_l1_free(l1);
        return rc;
    }
    if (cfg->maintenance_interval_ms > 0) {
        l1->interval_ms = cfg->maintenance_interval_ms;
        if (pthread_create(&l1->thread, NULL, maintenance_main, l1) != 0) {
            strata_l1_free(l1);
            return STRATA_ETHREAD;
        }
        l1->thread_running = 1;
    }
    *out = l1;
    return 0;
}

void strata_l1_free(strata_l1 *l1)
{
    if (l1 == NULL)
        return;
    if (l1->thread_running) {
        pthread_mutex_lock(&l1->stop_lock);
        l1->stopping = 1;
        pthread_cond_signal(&l1->stop_cond);
        pthread_mutex_unlock(&l1->stop_lock);
        pthread_join(l1->thread, NULL);
    }
    if (l1->shards != NULL) {
        for (unsigned i = 0; i < l1->nshards; i++)
            strata__shard_destroy(&l1->shards[i]);
        free(l1->shards);
    }
    if (l1->nsr.slots != NULL)
        strata__ns_destroy(&l1->nsr);
    strata__tags_free(l1->tags);
    free(l1->tickets);
    pthread_mutex_destroy(&l1->stop_lock);
    pthread_cond_destroy(&l1->stop_cond);
    free(l1);
}

/* ---- helpers ------------------------------------------------------------------------------ */

int strata__l1_resolve(const strata_l1 *l1, const strata_key *k, l1_addr *a)
{
    if (k == NULL)
        return STRATA_EINVAL;
    int rc = strata_key_build(l1->prefix, k, l1->max_key_len, a->buf, sizeof a->buf, &a->len);
    if (rc != 0)
        return rc;
    size_t ns_len = strlen(k->ns);
    a->tenant_off = l1->prefix_len + 1 + ns_len + 1;
    a->tenant_len = strlen(k->tenant ? k->tenant : STRATA_DEFAULT_TENANT);
    a->user_off = a->tenant_off + a->tenant_len + 1;
    a->hash = XXH3_64bits(a->buf, a->len);
    return 0;
}

static l1_shard *shard_of(strata_l1 *l1, uint64_t hash)
{
    return &l1->shards[hash & (l1->nshards - 1)];
}

/* Each shard's part of the structures all shards share. */
static size_t shared_share(strata_l1 *l1)
{
    size_t shared = strata__tags_bytes(l1->tags) + atomic_load(&l1->nsr.bytes);
    return shared / l1->nshards;
}

/* An entry is valid while every tag it carries still has the version it was written under, or
 * one a soft invalidation retired (then *stale_from is the earliest such moment: the entry is
 * stale from then on; 0: none). Returns 1 (valid), 0 (invalid), or -1 when a tag's version is
 * not known here and unknown_ok is set: with a shared tier, the tag table is a cache of Redis'
 * versions, so "unknown" means "ask Redis", not "invalid". */
static int tags_valid(strata_l1 *l1, const struct strata_value *e, int unknown_ok,
                      uint64_t *stale_from)
{
    const entry_tag *t = entry_tags(e);
    int unknown = 0;
    *stale_from = 0;
    for (unsigned i = 0; i < e->ntags; i++) {
        uint64_t from;
        int rc = strata__tags_check(l1->tags, t[i].hash, t[i].version, &from);
        if (rc == STRATA_ENOTFOUND) {
            if (!unknown_ok)
                return 0;
            unknown = 1;
        } else if (rc == 0) {
            return 0;
        } else if (from != 0 && (*stale_from == 0 || from < *stale_from)) {
            *stale_from = from;
        }
    }
    return unknown ? -1 : 1;
}

/* Makes e, still fresh, expire at at_ms (a soft purge): its stale windows now count from then. A
 * stale entry keeps its times (a soft purge never lengthens a stale life), and one with no window
 * left is removed. Returns 1 if e was made stale, 0 if it already was, -1 if it is gone (removed,
 * or no memory for the expiry heap: removed too, which a purge may always do). */
static int expire_locked(l1_shard *s, struct strata_value *e, uint64_t at_ms)
{
    if (!entry_fresh(e, at_ms))
        return 0;
    if (entry_keep(e) == 0 || strata__shard_retime_locked(s, e, at_ms) != 0) {
        strata__shard_remove_locked(s, e, RM_EXPIRE);
        return -1;
    }
    return 1;
}

static struct strata_value *find_live_key_locked(strata_l1 *l1, l1_shard *s, uint64_t hash,
                                                 const char *key, size_t len, uint64_t now_ms,
                                                 unsigned flags);

/* Looks k up under s's lock and returns it only if fresh (or, with L1_GET_STALE, still kept)
 * and valid; drops it if it is past its deadline or invalidated. */
static struct strata_value *find_live_locked(strata_l1 *l1, l1_shard *s, const addr *a,
                                             uint64_t now_ms, unsigned flags)
{
    return find_live_key_locked(l1, s, a->hash, a->buf, a->len, now_ms, flags);
}

static struct strata_value *find_live_key_locked(strata_l1 *l1, l1_shard *s, uint64_t hash,
                                                 const char *key, size_t len, uint64_t now_ms,
                                                 unsigned flags)
{
    struct strata_value *e = strata__shard_find_locked(s, hash, key, len);
    if (e == NULL)
        return NULL;
    if (!entry_fresh(e, now_ms)) {
        if (now_ms >= entry_deadline(e)) {
            strata__shard_remove_locked(s, e, RM_EXPIRE);
            return NULL;
        }
        if (!(flags & L1_GET_STALE))
            return NULL;
    }
    if (e->ntags != 0) {
        uint64_t stale_from;
        int valid = tags_valid(l1, e, (flags & L1_GET_UNKNOWN_TAGS_OK) != 0, &stale_from);
        if (valid == 0)
            strata__shard_remove_locked(s, e, RM_INVALID);
        if (valid != 1)
            return NULL;
        /* A soft tag invalidation after e was written: e expires then (once, in place). */
        if (stale_from != 0 && expire_locked(s, e, stale_from) < 0)
            return NULL;
        if (stale_from != 0 && now_ms >= entry_deadline(e)) {
            strata__shard_remove_locked(s, e, RM_EXPIRE);
            return NULL;
        }
        if (!entry_fresh(e, now_ms) && !(flags & L1_GET_STALE))
            return NULL;
    }
    return e;
}

static uint64_t jittered(uint64_t ttl, double jitter)
{
    static _Thread_local uint64_t rng;
    if (rng == 0)
        rng = strata__rand_seed() | 1;
    if (jitter <= 0 || ttl == 0)
        return ttl;
    double spread = (double)ttl * jitter * (2.0 * strata__rand_unit(&rng) - 1.0);
    double t = llround((double)ttl + spread);
    return t < 1 ? 1 : (uint64_t)t;
}

/* The TTL a write gets: asked or default, error TTL for error entries, spread by the jitter so
 * keys written together do not expire together, then cut to the maximum. */
static uint64_t effective_ttl(const strata_ns_config *c, uint64_t ttl, unsigned flags)
{
    if (ttl == 0)
        ttl = c->default_ttl_ms;
    if ((flags & STRATA_VALUE_ERROR) && c->error_ttl_ms != 0 && (ttl == 0 || ttl > c->error_ttl_ms))
        ttl = c->error_ttl_ms;
    if (!(flags & STRATA_SET_NO_JITTER))
        ttl = jittered(ttl, c->jitter);
    /* The maximum is a maximum: applied after the jitter, so no entry outlives it. */
    if (c->max_ttl_ms != 0 && (ttl == 0 || ttl > c->max_ttl_ms))
        ttl = c->max_ttl_ms;
    return ttl;
}

/* An entry's freshness: its stale windows, compute time and XFetch beta (<= 0: never early). */
typedef struct fresh_spec {
    uint64_t grace_ms, sie_ms, compute_ms;
    double beta;
} fresh_spec;

/* What a write's options leave unsaid comes from the namespace; an error result or a stale copy
 * kept after a failure takes only what its writer says (its windows are its writer's to set). */
static fresh_spec freshness_of(const strata_ns_config *c, const strata_set_opts *o)
{
    fresh_spec f = {o->grace_ms, o->stale_if_error_ms, o->compute_ms, o->beta};
    if (o->flags & (STRATA_VALUE_ERROR | STRATA_VALUE_STALE))
        return f;
    if (f.grace_ms == 0 && !(o->flags & STRATA_SET_EXACT_GRACE))
        f.grace_ms = c->grace_ms;
    if (f.sie_ms == 0 && !(o->flags & STRATA_SET_EXACT_STALE_IF_ERROR))
        f.sie_ms = c->stale_if_error_ms;
    if (f.beta == 0)
        f.beta = c->beta;
    return f;
}

/* Text fields (content type, tag names): no control bytes, within max bytes, and non-empty
 * when required. */
static int text_ok(const char *s, size_t max, int allow_empty)
{
    size_t n = strnlen(s, max + 1);
    if (n > max || (n == 0 && !allow_empty))
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 0;
    return 1;
}

static int check_opts(const strata_set_opts *o)
{
    if (o->content_type != NULL && !text_ok(o->content_type, STRATA_CONTENT_TYPE_MAX, 1))
        return STRATA_EBADTEXT;
    if (o->ntags > STRATA_TAGS_MAX_PER_ENTRY)
        return STRATA_ETOOMANYTAGS;
    if (o->grace_ms > STRATA_STALE_MAX_MS || o->stale_if_error_ms > STRATA_STALE_MAX_MS ||
        !(o->beta <= STRATA_BETA_MAX))
        return STRATA_EINVAL;
    if (o->ntags > 0 && o->tags == NULL)
        return STRATA_EINVAL;
    for (size_t i = 0; i < o->ntags; i++)
        if (o->tags[i] == NULL || !text_ok(o->tags[i], STRATA_TAG_MAX, 0))
            return STRATA_EBADTEXT;
    return 0;
}

static void count_rejection(strata_l1 *l1, const addr *a, l1_ns *ns)
{
    l1_shard *s = shard_of(l1, a->hash);
    pthread_mutex_lock(&s->lock);
    stat_add(&s->stats.rejections, 1);
    if (ns != NULL)
        stat_add(&ns->stats[s->index].rejections, 1);
    pthread_mutex_unlock(&s->lock);
}

/* ---- reads -------------------------------------------------------------------------------- */

int strata_l1_get(strata_l1 *l1, const strata_key *k, uint64_t now_ms, strata_value **out)
{
    return strata__l1_get_ex(l1, k, now_ms, 0, out);
}

int strata__l1_get_ex(strata_l1 *l1, const strata_key *k, uint64_t now_ms, unsigned flags,
                      strata_value **out)
{
    addr a;
    *out = NULL;
    int rc = strata__l1_resolve(l1, k, &a);
    return rc != 0 ? rc : strata__l1_get_at(l1, k, &a, now_ms, flags, out);
}

int strata__l1_get_at(strata_l1 *l1, const strata_key *k, const l1_addr *at, uint64_t now_ms,
                      unsigned flags, strata_value **out)
{
    const addr *a = at;
    *out = NULL;
    l1_shard *s = shard_of(l1, a->hash);
    pthread_mutex_lock(&s->lock);
    struct strata_value *e = find_live_locked(l1, s, a, now_ms, flags);
    if (e != NULL) {
        strata__shard_hit_locked(s, e);
        stat_add(&s->stats.hits, 1);
        stat_add(&e->ns->stats[s->index].hits, 1);
        *out = strata_value_retain(e);
    } else {
        l1_ns *ns;
        stat_add(&s->stats.misses, 1);
        if (strata__ns_get(&l1->nsr, k->ns, 0, &ns) == 0)
            stat_add(&ns->stats[s->index].misses, 1);
    }
    pthread_mutex_unlock(&s->lock);
    return e != NULL ? 0 : STRATA_ENOTFOUND;
}

int strata_l1_exists(strata_l1 *l1, const strata_key *k, uint64_t now_ms)
{
    addr a;
    int rc = strata__l1_resolve(l1, k, &a);
    if (rc != 0)
        return rc;
    l1_shard *s = shard_of(l1, a.hash);
    pthread_mutex_lock(&s->lock);
    struct strata_value *e = find_live_locked(l1, s, &a, now_ms, 0);
    pthread_mutex_unlock(&s->lock);
    return e != NULL ? 0 : STRATA_ENOTFOUND;
}

/* ---- writes ------------------------------------------------------------------------------- */

/* Makes room within the tenant's quota by evicting its own oldest entries, wherever they live.
 * Runs before the write takes its shard lock, so it never holds two shard locks. Entries join
 * their scope only once linked in a shard, so writes racing for one tenant can overshoot its
 * quota by at most one entry each, until the next write of the tenant. */
static int quota_make_room(strata_l1 *l1, l1_scope *sc, size_t quota, size_t charge)
{
    if (charge > quota)
        return STRATA_EQUOTA;
    for (int i = 0; i < QUOTA_EVICT_TRIES && atomic_load(&sc->bytes) + charge > quota; i++) {
        struct strata_value *v = strata__scope_oldest(sc);
        if (v == NULL)
            break;
        l1_shard *s = &l1->shards[v->shard];
        pthread_mutex_lock(&s->lock);
        if (v->segment != SEG_NONE) /* not removed since we saw it */
            strata__shard_remove_locked(s, v, RM_EVICT);
        pthread_mutex_unlock(&s->lock);
        strata_value_release(v);
    }
    return atomic_load(&sc->bytes) + charge > quota ? STRATA_EQUOTA : 0;
}

/* Builds the entry for a write: TTL, tag versions, layout. */
static int make_entry(strata_l1 *l1, const addr *a, const l1_write *w, const strata_ns_config *cfg,
                      struct strata_value **out)
{
    const strata_set_opts *o = w->opts;
    const char *tenant = w->k->tenant ? w->k->tenant : STRATA_DEFAULT_TENANT;
    uint64_t hashes[STRATA_TAGS_MAX_PER_ENTRY], versions[STRATA_TAGS_MAX_PER_ENTRY];
    for (size_t i = 0; i < o->ntags; i++) {
        hashes[i] = strata__tag_hash(tenant, o->tags[i]);
        if (w->tag_versions != NULL) {
            versions[i] = w->tag_versions[i];
            continue;
        }
        int rc = strata__tags_current(l1->tags, hashes[i], 1, &versions[i]);
        if (rc != 0)
            return rc;
    }
    uint64_t created = w->now_ms, expires = w->expires_ms;
    fresh_spec fr = {o->grace_ms, o->stale_if_error_ms, o->compute_ms, o->beta};
    if (w->absolute) {
        created = w->created_ms; /* a copy: its freshness too, as it was written */
    } else {
        uint64_t ttl = effective_ttl(cfg, o->ttl_ms, o->flags);
        expires = ttl ? w->now_ms + ttl : 0;
        fr = freshness_of(cfg, o);
    }
    entry_spec spec = {
        .key = a->buf,
        .key_len = a->len,
        .hash = a->hash,
        .tenant_off = a->tenant_off,
        .tenant_len = a->tenant_len,
        .user_off = a->user_off,
        .content_type = o->content_type ? o->content_type : "",
        .tags = o->tags,
        .tag_hashes = hashes,
        .tag_versions = versions,
        .ntags = o->ntags,
        .created_ms = created,
        .expires_ms = expires,
        .grace_ms = fr.grace_ms,
        .sie_ms = fr.sie_ms,
        .compute_ms = fr.compute_ms,
        /* without a compute time there is nothing to weigh: never early, whatever the beta */
        .beta_centi = fr.beta > 0 && fr.compute_ms > 0 ? (unsigned)llround(fr.beta * 100) : 0,
        .flags = o->flags & 0xffu,
    };
    *out = strata__entry_new(&spec, w->value, w->len);
    return *out ? 0 : STRATA_ENOMEM;
}

int strata__l1_prepare(strata_l1 *l1, const l1_write *w, struct strata_value **out)
{
    static const strata_set_opts no_opts;
    l1_write wr = *w;
    wr.opts = w->opts ? w->opts : &no_opts;
    *out = NULL;
    addr own;
    const addr *a = w->at;
    int rc = 0;
    if (a == NULL && (rc = strata__l1_resolve(l1, wr.k, &own)) != 0)
        return rc;
    if (a == NULL)
        a = &own;
    if (wr.len > 0 && wr.value == NULL)
        return STRATA_EINVAL;
    if ((rc = check_opts(wr.opts)) != 0)
        return rc;
    if (wr.len > l1->max_value_len) {
        count_rejection(l1, a, NULL);
        return STRATA_EVALUELARGE;
    }
    l1_ns *ns;
    if ((rc = strata__ns_get(&l1->nsr, wr.k->ns, 1, &ns)) != 0)
        return rc;
    strata_ns_config cfg;
    strata__ns_settings(ns, &cfg);
    struct strata_value *e;
    if ((rc = make_entry(l1, a, &wr, &cfg, &e)) != 0)
        return rc;
    e->ns = ns;
    e->shard = (uint8_t)(a->hash & (l1->nshards - 1)); /* before any other thread can see e */
    e->pinned = (wr.opts->flags & STRATA_SET_PINNED) != 0;
    if (e->charge > l1->max_memory / l1->nshards / 2) {
        count_rejection(l1, a, ns);
        strata_value_release(e);
        return STRATA_ETOOBIG;
    }
    if (cfg.tenant_quota != 0) {
        e->scope = strata__scope_acquire(
            &l1->nsr, ns, wr.k->tenant ? wr.k->tenant : STRATA_DEFAULT_TENANT, a->tenant_len);
        if (e->scope == NULL) {
            strata_value_release(e);
            return STRATA_ENOMEM;
        }
    }
    *out = e;
    return 0;
}

void strata__l1_discard(struct strata_value *e)
{
    if (e == NULL)
        return;
    if (e->scope != NULL)
        strata__scope_release(e->scope);
    strata_value_release(e);
}

/* Links e into its shard, replacing any previous value, unless the ticket moved (an
 * invalidation of this key arrived since the caller read it from the shared tier). */
static int link_entry(strata_l1 *l1, struct strata_value *e, unsigned flags, uint64_t now_ms,
                      uint64_t ticket)
{
    l1_shard *s = &l1->shards[e->shard];
    const char *key = entry_key(e);
    int rc = 0;
    pthread_mutex_lock(&s->lock);
    struct strata_value *old = strata__shard_find_locked(s, e->hash, key, e->key_len);
    if (ticket != STRATA__NO_TICKET && l1->tickets != NULL &&
        strata__l1_ticket(l1, e->hash) != ticket)
        rc = STRATA__L1_INVALIDATED;
    else if ((flags & STRATA_SET_NX) && old != NULL &&
             find_live_key_locked(l1, s, e->hash, key, e->key_len, now_ms, 0))
        rc = STRATA_EEXISTS;
    else if (e->pinned &&
             s->pinned.bytes + e->charge > strata__shard_capacity(s, shared_share(l1)) / 2)
        rc = STRATA_EQUOTA; /* pinned entries must leave room for the cache itself */
    else {
        /* find_live_locked may have dropped a dead old value: look again. */
        old = strata__shard_find_locked(s, e->hash, key, e->key_len);
        strata_value_retain(e); /* the shard's reference; the caller keeps its own */
        if (strata__shard_insert_locked(s, e, old, shared_share(l1)) != 0) {
            atomic_fetch_sub(&e->refs, 1);
            rc = STRATA_ENOMEM;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int strata__l1_store(strata_l1 *l1, struct strata_value *e, unsigned flags, uint64_t now_ms,
                     uint64_t ticket)
{
    int rc = 0;
    if (e->scope != NULL) {
        strata_ns_config cfg;
        strata__ns_settings(e->ns, &cfg);
        if (cfg.tenant_quota != 0)
            rc = quota_make_room(l1, e->scope, cfg.tenant_quota, e->charge);
        if (rc == STRATA_EQUOTA) {
            l1_shard *s = &l1->shards[e->shard];
            pthread_mutex_lock(&s->lock);
            stat_add(&s->stats.rejections, 1);
            stat_add(&e->ns->stats[s->index].rejections, 1);
            pthread_mutex_unlock(&s->lock);
        }
    }
    if (rc == 0)
        rc = link_entry(l1, e, flags, now_ms, ticket);
    return rc;
}

int strata_l1_set(strata_l1 *l1, const strata_key *k, const void *value, size_t len,
                  const strata_set_opts *opts, uint64_t now_ms)
{
    l1_write w = {.k = k, .value = value, .len = len, .opts = opts, .now_ms = now_ms};
    struct strata_value *e;
    int rc = strata__l1_prepare(l1, &w, &e);
    if (rc != 0)
        return rc;
    rc = strata__l1_store(l1, e, opts ? opts->flags : 0, now_ms, STRATA__NO_TICKET);
    if (rc == 0)
        strata_value_release(e);
    else
        strata__l1_discard(e);
    return rc;
}

int strata_l1_del(strata_l1 *l1, const strata_key *k, uint64_t now_ms)
{
    addr a;
    int rc = strata__l1_resolve(l1, k, &a);
    return rc != 0 ? rc : strata__l1_del_at(l1, &a, now_ms);
}

int strata__l1_del_at(strata_l1 *l1, const l1_addr *a, uint64_t now_ms)
{
    l1_shard *s = shard_of(l1, a->hash);
    pthread_mutex_lock(&s->lock);
    struct strata_value *e = find_live_locked(l1, s, a, now_ms, 0);
    if (e != NULL)
        strata__shard_remove_locked(s, e, RM_DELETE);
    else if ((e = strata__shard_find_locked(s, a->hash, a->buf, a->len)) != NULL)
        strata__shard_remove_locked(s, e, RM_DELETE); /* stale but within grace: gone too */
    pthread_mutex_unlock(&s->lock);
    return e != NULL ? 0 : STRATA_ENOTFOUND;
}

/* Retimes k's fresh value: a TTL from now by the namespace's rules (touch), or, restamping,
 * exactly ttl_ms from now with now as its new creation time. */
static int retime(strata_l1 *l1, const strata_key *k, uint64_t ttl_ms, uint64_t now_ms, int restamp,
                  int only_pinned)
{
    addr a;
    int rc = strata__l1_resolve(l1, k, &a);
    if (rc != 0)
        return rc;
    l1_ns *ns;
    if (strata__ns_get(&l1->nsr, k->ns, 0, &ns) != 0)
        return STRATA_ENOTFOUND;
    strata_ns_config cfg;
    strata__ns_settings(ns, &cfg);
    l1_shard *s = shard_of(l1, a.hash);
    pthread_mutex_lock(&s->lock);
    struct strata_value *e = find_live_locked(l1, s, &a, now_ms, 0);
    if (e == NULL || (only_pinned && !e->pinned))
        rc = STRATA_ENOTFOUND;
    else {
        uint64_t ttl = restamp ? ttl_ms : effective_ttl(&cfg, ttl_ms, e->flags);
        if (strata__shard_retime_locked(s, e, ttl ? now_ms + ttl : 0) != 0)
            rc = STRATA_ENOMEM;
        else if (restamp)
            atomic_store_explicit(&e->created_ms, now_ms, memory_order_relaxed);
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int strata_l1_touch(strata_l1 *l1, const strata_key *k, uint64_t ttl_ms, uint64_t now_ms)
{
    return retime(l1, k, ttl_ms, now_ms, 0, 0);
}

int strata__l1_restamp(strata_l1 *l1, const strata_key *k, uint64_t ttl_ms, uint64_t now_ms,
                       int only_pinned)
{
    return ttl_ms == 0 ? STRATA_EINVAL : retime(l1, k, ttl_ms, now_ms, 1, only_pinned);
}

/* A soft purge of e at now_ms (expire_locked), counted when it made e stale. Returns 1 if it did,
 * 0 if e was stale already. */
static int soft_purge_locked(l1_shard *s, struct strata_value *e, uint64_t now_ms)
{
    shard_stats *ns = &e->ns->stats[s->index];
    if (expire_locked(s, e, now_ms) == 0)
        return 0;
    stat_add(&s->stats.expired_soft, 1);
    stat_add(&ns->expired_soft, 1);
    return 1;
}

int strata__l1_expire(strata_l1 *l1, const strata_key *k, uint64_t now_ms, int only_pinned)
{
    addr a;
    int rc = strata__l1_resolve(l1, k, &a);
    if (rc != 0)
        return rc;
    l1_shard *s = shard_of(l1, a.hash);
    pthread_mutex_lock(&s->lock);
    struct strata_value *e = find_live_locked(l1, s, &a, now_ms, L1_GET_STALE);
    if (e == NULL || (only_pinned && !e->pinned))
        rc = STRATA_ENOTFOUND;
    else
        soft_purge_locked(s, e, now_ms);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* ---- bulk --------------------------------------------------------------------------------- */

/* ns and tenant as strata_l1_clear's; the user key matching any of patterns[0..n) (n 0: any
 * key). reserved: ns NULL takes the reserved namespaces too (they are otherwise only taken when
 * named, so that a clear of the cache never logs everybody out). */
static int clear_matches(const struct strata_value *e, const char *ns, const char *tenant,
                         const char *const *patterns, size_t n, int reserved)
{
    if (ns == NULL ? e->ns->name[0] == '_' && !reserved : strcmp(e->ns->name, ns) != 0)
        return 0;
    if (tenant != NULL && (strlen(tenant) != e->tenant_len ||
                           memcmp(entry_key(e) + e->tenant_off, tenant, e->tenant_len) != 0))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (strata_glob_match(patterns[i], strlen(patterns[i]), entry_key(e) + e->user_off,
                              (size_t)e->key_len - e->user_off))
            return 1;
    return n == 0;
}

static size_t clear(strata_l1 *l1, const char *ns, const char *tenant, const char *const *patterns,
                    size_t npatterns, int reserved)
{
    size_t n = 0;
    for (unsigned i = 0; i < l1->nshards; i++) {
        l1_shard *s = &l1->shards[i];
        pthread_mutex_lock(&s->lock);
        for (size_t b = 0; b < s->nbuckets; b++)
            for (struct strata_value *e = s->buckets[b], *next; e != NULL; e = next) {
                next = e->hnext;
                if (clear_matches(e, ns, tenant, patterns, npatterns, reserved)) {
                    strata__shard_remove_locked(s, e, RM_DELETE);
                    n++;
                }
            }
        pthread_mutex_unlock(&s->lock);
    }
    return n;
}

int strata__l1_clear_any(strata_l1 *l1, const char *ns, const char *tenant,
                         const char *const *patterns, size_t npatterns, size_t *removed)
{
    if ((ns != NULL && strata_name_check(ns) != 0) ||
        (tenant != NULL && strata_name_check(tenant) != 0))
        return STRATA_EBADNAME;
    size_t n = clear(l1, ns, tenant, patterns, npatterns, 0);
    if (removed != NULL)
        *removed = n;
    return 0;
}

int strata__l1_expire_any(strata_l1 *l1, const char *ns, const char *tenant,
                          const char *const *patterns, size_t npatterns, uint64_t now_ms,
                          size_t *expired)
{
    if ((ns != NULL && strata_name_check(ns) != 0) ||
        (tenant != NULL && strata_name_check(tenant) != 0))
        return STRATA_EBADNAME;
    size_t n = 0;
    for (unsigned i = 0; i < l1->nshards; i++) {
        l1_shard *s = &l1->shards[i];
        pthread_mutex_lock(&s->lock);
        for (size_t b = 0; b < s->nbuckets; b++)
            for (struct strata_value *e = s->buckets[b], *next; e != NULL; e = next) {
                next = e->hnext;
                if (clear_matches(e, ns, tenant, patterns, npatterns, 0))
                    n += (size_t)soft_purge_locked(s, e, now_ms);
            }
        pthread_mutex_unlock(&s->lock);
    }
    if (expired != NULL)
        *expired = n;
    return 0;
}

int strata_l1_clear(strata_l1 *l1, const char *ns, const char *tenant, const char *pattern,
                    size_t *removed)
{
    return strata__l1_clear_any(l1, ns, tenant, &pattern, pattern != NULL, removed);
}

/* The cursor is (shard << 40 | bucket): a table may grow between pages (keys can then be seen
 * twice or missed, as with Redis' SCAN during a rehash), never crash or loop. */
int strata_l1_scan(strata_l1 *l1, const char *ns, const char *tenant, const char *pattern,
                   uint64_t cursor, size_t limit, uint64_t now_ms, strata_key_cb cb, void *arg,
                   uint64_t *next)
{
    if ((ns != NULL && strata_name_check(ns) != 0) ||
        (tenant != NULL && strata_name_check(tenant) != 0))
        return STRATA_EBADNAME;
    size_t found = 0;
    uint64_t sh = cursor >> 40, b = cursor & ((1ULL << 40) - 1);
    char t[STRATA_NAME_MAX + 1];
    for (; sh < l1->nshards; sh++, b = 0) {
        l1_shard *s = &l1->shards[sh];
        pthread_mutex_lock(&s->lock);
        for (; b < s->nbuckets; b++) {
            if (found >= (limit ? limit : 100)) {
                pthread_mutex_unlock(&s->lock);
                *next = sh << 40 | b;
                return 0;
            }
            for (struct strata_value *e = s->buckets[b]; e != NULL; e = e->hnext)
                if (entry_fresh(e, now_ms) &&
                    clear_matches(e, ns, tenant, &pattern, pattern != NULL, 0)) {
                    memcpy(t, entry_key(e) + e->tenant_off, e->tenant_len);
                    t[e->tenant_len] = '\0';
                    cb(e->ns->name, t, entry_key(e) + e->user_off, (size_t)e->key_len - e->user_off,
                       arg);
                    found++;
                }
        }
        pthread_mutex_unlock(&s->lock);
    }
    *next = 0;
    return 0;
}

int strata_l1_tag_invalidate(strata_l1 *l1, const char *tenant, const char *tag)
{
    if (tenant == NULL)
        tenant = STRATA_DEFAULT_TENANT;
    if (strata_name_check(tenant) != 0)
        return STRATA_EBADNAME;
    if (tag == NULL || !text_ok(tag, STRATA_TAG_MAX, 0))
        return STRATA_EBADTEXT;
    return strata__tags_bump(l1->tags, strata__tag_hash(tenant, tag));
}

int strata__l1_tag_soften(strata_l1 *l1, const char *tenant, const char *tag, uint64_t now_ms)
{
    if (tenant == NULL)
        tenant = STRATA_DEFAULT_TENANT;
    if (strata_name_check(tenant) != 0)
        return STRATA_EBADNAME;
    if (tag == NULL || !text_ok(tag, STRATA_TAG_MAX, 0))
        return STRATA_EBADTEXT;
    return strata__tags_soften(l1->tags, strata__tag_hash(tenant, tag), now_ms);
}

void strata_l1_maintain(strata_l1 *l1, uint64_t now_ms, size_t *expired)
{
    size_t n = 0;
    for (unsigned i = 0; i < l1->nshards; i++) {
        l1_shard *s = &l1->shards[i];
        pthread_mutex_lock(&s->lock);
        struct strata_value *e;
        while ((e = strata__expiry_peek(&s->heap)) != NULL && entry_deadline(e) <= now_ms) {
            strata__shard_remove_locked(s, e, RM_EXPIRE);
            n++;
        }
        pthread_mutex_unlock(&s->lock);
    }
    strata__scope_gc(&l1->nsr);
    if (expired != NULL)
        *expired = n;
}

static void *maintenance_main(void *arg)
{
    strata_l1 *l1 = arg;
    pthread_mutex_lock(&l1->stop_lock);
    while (!l1->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)l1->interval_ms * 1000000u;
        ts.tv_sec += (time_t)(ns / 1000000000u);
        ts.tv_nsec = (long)(ns % 1000000000u);
        if (pthread_cond_timedwait(&l1->stop_cond, &l1->stop_lock, &ts) == ETIMEDOUT &&
            !l1->stopping) {
            pthread_mutex_unlock(&l1->stop_lock);
            strata_l1_maintain(l1, strata_now_ms(), NULL);
            pthread_mutex_lock(&l1->stop_lock);
        }
    }
    pthread_mutex_unlock(&l1->stop_lock);
    return NULL;
}

/* ---- namespaces and stats ----------------------------------------------------------------- */

int strata_l1_ns_configure(strata_l1 *l1, const char *ns, const strata_ns_config *cfg)
{
    if (strata_name_check(ns) != 0)
        return STRATA_EBADNAME;
    if (cfg == NULL || !(cfg->jitter >= 0 && cfg->jitter <= 0.5) ||
        cfg->grace_ms > STRATA_STALE_MAX_MS || cfg->stale_if_error_ms > STRATA_STALE_MAX_MS ||
        !(cfg->beta >= 0 && cfg->beta <= STRATA_BETA_MAX))
        return STRATA_EINVAL;
    l1_ns *n;
    int rc = strata__ns_get(&l1->nsr, ns, 1, &n);
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&n->cfg_lock);
    n->cfg = *cfg;
    pthread_mutex_unlock(&n->cfg_lock);
    return 0;
}

int strata_l1_ns_config(strata_l1 *l1, const char *ns, strata_ns_config *out)
{
    if (strata_name_check(ns) != 0)
        return STRATA_EBADNAME;
    l1_ns *n;
    if (strata__ns_get(&l1->nsr, ns, 0, &n) != 0)
        strata__ns_defaults(&l1->nsr, out);
    else
        strata__ns_settings(n, out);
    return 0;
}

int strata_l1_stats(strata_l1 *l1, const char *ns, strata_stats *out)
{
    memset(out, 0, sizeof *out);
    if (ns != NULL) {
        l1_ns *n;
        if (strata_name_check(ns) != 0)
            return STRATA_EBADNAME;
        if (strata__ns_get(&l1->nsr, ns, 0, &n) != 0)
            return STRATA_ENOTFOUND;
        strata__stats_sum(n->stats, l1->nshards, out);
        return 0;
    }
    for (unsigned i = 0; i < l1->nshards; i++) {
        l1_shard *s = &l1->shards[i];
        strata__stats_sum(&s->stats, 1, out);
        /* The shard's own structures are part of what it holds: read them under its lock,
         * one shard at a time, so the snapshot never stops the whole tier. */
        pthread_mutex_lock(&s->lock);
        out->bytes += s->buckets_bytes + s->sk.bytes + s->heap.bytes;
        pthread_mutex_unlock(&s->lock);
    }
    out->bytes += strata__tags_bytes(l1->tags) + atomic_load(&l1->nsr.bytes);
    out->max_bytes = l1->max_memory;
    return 0;
}

/* ---- two-tier hooks (l1_internal.h) ------------------------------------------------------- */

const char *strata__l1_prefix(strata_l1 *l1)
{
    return l1->prefix;
}

strata_tags *strata__l1_tags(strata_l1 *l1)
{
    return l1->tags;
}

int strata__l1_enable_tickets(strata_l1 *l1, size_t slots)
{
    size_t n = 1;
    while (n < slots)
        n <<= 1;
    l1->tickets = calloc(n, sizeof *l1->tickets);
    if (l1->tickets == NULL)
        return STRATA_ENOMEM;
    l1->ticket_mask = n - 1;
    return 0;
}

uint64_t strata__l1_ticket(strata_l1 *l1, uint64_t hash)
{
    if (l1->tickets == NULL)
        return 0;
    return atomic_load(&l1->tickets[hash & l1->ticket_mask]) + atomic_load(&l1->ticket_epoch);
}

void strata__l1_invalidate_stored(strata_l1 *l1, const char *stored, size_t len)
{
    uint64_t hash = XXH3_64bits(stored, len);
    /* The ticket first, then the entry: a fill that checks its ticket under the shard lock either
     * sees the bump and does not link, or linked before we take the lock and is removed here. */
    if (l1->tickets != NULL)
        atomic_fetch_add(&l1->tickets[hash & l1->ticket_mask], 1);
    l1_shard *s = shard_of(l1, hash);
    pthread_mutex_lock(&s->lock);
    struct strata_value *e = strata__shard_find_locked(s, hash, stored, len);
    if (e != NULL)
        strata__shard_remove_locked(s, e, RM_INVALID);
    pthread_mutex_unlock(&s->lock);
}

void strata__l1_invalidate_all(strata_l1 *l1)
{
    atomic_fetch_add(&l1->ticket_epoch, 1); /* every ticket at once, before any entry goes */
    /* Sessions too: Redis is their truth, and it may have lost or changed them meanwhile. */
    clear(l1, NULL, NULL, NULL, 0, 1);
    strata__tags_clear(l1->tags);
}

void strata__l1_tag_learn(strata_l1 *l1, uint64_t tag_hash, uint64_t key_hash, uint64_t version,
                          const tag_soft *soft, uint64_t ticket)
{
    _Atomic uint64_t *t = l1->tickets ? &l1->tickets[key_hash & l1->ticket_mask] : NULL;
    strata__tags_put(l1->tags, tag_hash, version, soft, t, &l1->ticket_epoch, ticket);
}

void strata__l1_tag_forget(strata_l1 *l1, uint64_t tag_hash, uint64_t key_hash)
{
    if (l1->tickets != NULL)
        atomic_fetch_add(&l1->tickets[key_hash & l1->ticket_mask], 1);
    strata__tags_forget(l1->tags, tag_hash);
}

void strata__l1_detach(struct strata_value *e)
{
    if (e->scope != NULL) {
        strata__scope_release(e->scope);
        e->scope = NULL;
    }
}
