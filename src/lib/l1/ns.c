/* ns.c: the namespace registry and tenant scopes of L1.
 *
 * Namespaces are few (bounded by max_namespaces) and never removed, so the registry is an
 * open-addressing table of atomic pointers: reads are lock-free (one hash, a probe or two), and
 * only creation takes a lock. Each namespace carries its settings and one counter block per shard,
 * updated under that shard's lock like the totals.
 *
 * Scopes exist only for namespaces with a tenant quota. They are created on a tenant's first
 * write and freed by maintenance once no entry uses them, so tenants that come and go do not
 * accumulate.
 */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include <strata/errors.h>

#include "l1/ns.h"

void strata__stats_sum(const shard_stats *s, size_t n, strata_stats *out)
{
    for (size_t i = 0; i < n; i++) {
        out->hits += atomic_load_explicit(&s[i].hits, memory_order_relaxed);
        out->misses += atomic_load_explicit(&s[i].misses, memory_order_relaxed);
        out->sets += atomic_load_explicit(&s[i].sets, memory_order_relaxed);
        out->deletes += atomic_load_explicit(&s[i].deletes, memory_order_relaxed);
        out->evictions += atomic_load_explicit(&s[i].evictions, memory_order_relaxed);
        out->expirations += atomic_load_explicit(&s[i].expirations, memory_order_relaxed);
        out->rejections += atomic_load_explicit(&s[i].rejections, memory_order_relaxed);
        out->invalidations += atomic_load_explicit(&s[i].invalidations, memory_order_relaxed);
        out->entries += atomic_load_explicit(&s[i].entries, memory_order_relaxed);
        out->bytes += atomic_load_explicit(&s[i].bytes, memory_order_relaxed);
        out->expired_soft += atomic_load_explicit(&s[i].expired_soft, memory_order_relaxed);
    }
}

/* A namespace's settings before anyone configures it (declared in strata/l1.h). */
void strata_ns_config_init(strata_ns_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->default_ttl_ms = 300000;
    cfg->error_ttl_ms = 30000;
    cfg->jitter = 0.10;
    cfg->beta = 1.0;
}

int strata__ns_init(ns_registry *r, unsigned max, unsigned nshards, uint64_t default_ttl_ms)
{
    memset(r, 0, sizeof *r);
    strata_ns_config_init(&r->defaults);
    if (default_ttl_ms != 0)
        r->defaults.default_ttl_ms = default_ttl_ms;
    size_t slots = 16;
    while (slots < 2 * (size_t)max)
        slots <<= 1;
    r->slots = calloc(slots, sizeof *r->slots);
    r->nscopes_buckets = 256;
    r->scopes = calloc(r->nscopes_buckets, sizeof *r->scopes);
    if (r->slots == NULL || r->scopes == NULL) {
        free(r->slots);
        free(r->scopes);
        return STRATA_ENOMEM;
    }
    r->mask = slots - 1;
    r->max = max;
    r->nshards = nshards;
    pthread_mutex_init(&r->lock, NULL);
    pthread_mutex_init(&r->scope_lock, NULL);
    return 0;
}

static void scope_free(l1_scope *s)
{
    pthread_mutex_destroy(&s->lock);
    free(s);
}

void strata__ns_destroy(ns_registry *r)
{
    for (size_t i = 0; i <= r->mask; i++) {
        l1_ns *ns = atomic_load(&r->slots[i]);
        if (ns == NULL)
            continue;
        pthread_mutex_destroy(&ns->cfg_lock);
        free(ns->stats);
        free(ns);
    }
    for (size_t i = 0; i < r->nscopes_buckets; i++)
        for (l1_scope *s = r->scopes[i], *next; s != NULL; s = next) {
            next = s->hnext;
            scope_free(s);
        }
    free(r->slots);
    free(r->scopes);
    pthread_mutex_destroy(&r->lock);
    pthread_mutex_destroy(&r->scope_lock);
}

/* Probes for name; returns its slot index, or the empty slot where it would go. */
static size_t probe(ns_registry *r, const char *name, l1_ns **found)
{
    size_t i = (size_t)XXH3_64bits(name, strlen(name)) & r->mask;
    for (;;) {
        l1_ns *ns = atomic_load_explicit(&r->slots[i], memory_order_acquire);
        if (ns == NULL || strcmp(ns->name, name) == 0) {
            *found = ns;
            return i;
        }
        i = (i + 1) & r->mask;
    }
}

static l1_ns *ns_create(const char *name, unsigned nshards, const strata_ns_config *defaults)
{
    l1_ns *ns = calloc(1, sizeof *ns);
    if (ns == NULL)
        return NULL;
    if (posix_memalign((void **)&ns->stats, 64, nshards * sizeof(shard_stats)) != 0) {
        free(ns);
        return NULL;
    }
    memset(ns->stats, 0, nshards * sizeof(shard_stats));
    strcpy(ns->name, name);
    pthread_mutex_init(&ns->cfg_lock, NULL);
    ns->cfg = *defaults;
    return ns;
}

int strata__ns_get(ns_registry *r, const char *name, int create, l1_ns **out)
{
    l1_ns *ns;
    probe(r, name, &ns);
    if (ns != NULL || !create) {
        *out = ns;
        return ns ? 0 : STRATA_ENOTFOUND;
    }
    int rc = 0;
    pthread_mutex_lock(&r->lock);
    size_t i = probe(r, name, &ns); /* again: another writer may have won */
    if (ns == NULL) {
        if (r->count >= r->max)
            rc = STRATA_ELIMIT;
        else if ((ns = ns_create(name, r->nshards, &r->defaults)) == NULL)
            rc = STRATA_ENOMEM;
        else {
            atomic_store_explicit(&r->slots[i], ns, memory_order_release);
            r->count++;
        }
    }
    pthread_mutex_unlock(&r->lock);
    *out = ns;
    return rc;
}

void strata__ns_each(ns_registry *r, void (*fn)(l1_ns *ns, void *arg), void *arg)
{
    for (size_t i = 0; i <= r->mask; i++) {
        l1_ns *ns = atomic_load_explicit(&r->slots[i], memory_order_acquire);
        if (ns != NULL)
            fn(ns, arg);
    }
}

void strata__ns_settings(l1_ns *ns, strata_ns_config *out)
{
    pthread_mutex_lock(&ns->cfg_lock);
    *out = ns->cfg;
    pthread_mutex_unlock(&ns->cfg_lock);
}

static uint64_t scope_hash(const l1_ns *ns, const char *tenant, size_t len)
{
    return XXH3_64bits_withSeed(tenant, len, (uint64_t)(uintptr_t)ns);
}

l1_scope *strata__scope_acquire(ns_registry *r, l1_ns *ns, const char *tenant, size_t tenant_len)
{
    uint64_t h = scope_hash(ns, tenant, tenant_len);
    size_t b = h & (r->nscopes_buckets - 1);
    pthread_mutex_lock(&r->scope_lock);
    l1_scope *s = r->scopes[b];
    while (s != NULL && !(s->ns == ns && s->hash == h && strlen(s->tenant) == tenant_len &&
                          memcmp(s->tenant, tenant, tenant_len) == 0))
        s = s->hnext;
    if (s == NULL && (s = calloc(1, sizeof *s)) != NULL) {
        s->ns = ns;
        s->hash = h;
        memcpy(s->tenant, tenant, tenant_len);
        pthread_mutex_init(&s->lock, NULL);
        s->hnext = r->scopes[b];
        r->scopes[b] = s;
        r->nscopes++;
        atomic_fetch_add(&r->bytes, malloc_usable_size(s) + sizeof(size_t));
    }
    if (s != NULL)
        atomic_fetch_add(&s->refs, 1);
    pthread_mutex_unlock(&r->scope_lock);
    return s;
}

void strata__scope_release(l1_scope *s)
{
    atomic_fetch_sub(&s->refs, 1);
}

void strata__scope_link(l1_scope *s, struct strata_value *e)
{
    pthread_mutex_lock(&s->lock);
    e->snext = NULL;
    e->sprev = s->newest;
    if (s->newest != NULL)
        s->newest->snext = e;
    else
        s->oldest = e;
    s->newest = e;
    atomic_fetch_add(&s->bytes, e->charge);
    pthread_mutex_unlock(&s->lock);
}

void strata__scope_unlink(l1_scope *s, struct strata_value *e)
{
    pthread_mutex_lock(&s->lock);
    if (e->sprev != NULL)
        e->sprev->snext = e->snext;
    else
        s->oldest = e->snext;
    if (e->snext != NULL)
        e->snext->sprev = e->sprev;
    else
        s->newest = e->sprev;
    e->sprev = e->snext = NULL;
    atomic_fetch_sub(&s->bytes, e->charge);
    pthread_mutex_unlock(&s->lock);
}

struct strata_value *strata__scope_oldest(l1_scope *s)
{
    pthread_mutex_lock(&s->lock);
    struct strata_value *e = s->oldest;
    /* pinned is fixed before an entry is linked; a short walk: quota_make_room retries. */
    for (int i = 0; e != NULL && e->pinned && i < 64; i++)
        e = e->snext;
    if (e != NULL && e->pinned)
        e = NULL;
    if (e != NULL)
        strata_value_retain(e);
    pthread_mutex_unlock(&s->lock);
    return e;
}

void strata__scope_gc(ns_registry *r)
{
    pthread_mutex_lock(&r->scope_lock);
    for (size_t i = 0; i < r->nscopes_buckets; i++) {
        l1_scope **pp = &r->scopes[i];
        while (*pp != NULL) {
            l1_scope *s = *pp;
            if (atomic_load(&s->refs) == 0) {
                *pp = s->hnext;
                r->nscopes--;
                atomic_fetch_sub(&r->bytes, malloc_usable_size(s) + sizeof(size_t));
                scope_free(s);
            } else {
                pp = &s->hnext;
            }
        }
    }
    pthread_mutex_unlock(&r->scope_lock);
}

void strata__ns_defaults(ns_registry *r, strata_ns_config *out)
{
    *out = r->defaults;
}
