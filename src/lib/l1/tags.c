/* tags.c: current tag versions, the O(1) half of tag invalidation.
 *
 * An entry written with tag T records T's version at write time; invalidating T gives it a new
 * random version, so every entry carrying the old one is invalid at its next read (and dropped
 * then or by eviction) without touching any of them. Versions are random 64-bit values, never
 * counters, and an unknown tag is treated as invalid: when the table forgets a tag (it is bounded:
 * past `max` it drops its oldest tags first) or, with Redis, when Redis loses one, the entries that
 * carried it can only become misses, never come back to life.
 *
 * A soft invalidation also gives the tag a new version, and keeps the old one in the tag's soft
 * record (tags.h): entries carrying it are stale from then on instead of invalid, until a hard
 * invalidation changes the version the record was made for. Only tags that were soft-invalidated
 * carry a record (a separate allocation), so the others cost no byte more.
 *
 * The table is split into stripes, each a chained hash map with its own lock and a FIFO of
 * insertion order for the bound. Only tagged entries ever look here, so untagged reads pay
 * nothing.
 */
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include <strata/errors.h>

#include "core/rand.h"
#include "l1/tags.h"

#define STRIPES 16

typedef struct tag_node {
    uint64_t hash;
    uint64_t version;
    tag_soft *soft; /* NULL: none */
    struct tag_node *hnext;
    struct tag_node *older_next; /* FIFO: toward the newest */
} tag_node;

typedef struct stripe {
    pthread_mutex_t lock;
    tag_node **buckets;
    size_t nbuckets;
    size_t count;
    tag_node *oldest, *newest;
    uint64_t rng;
} stripe;

struct strata_tags {
    stripe stripes[STRIPES];
    size_t max_per_stripe;
    atomic_size_t bytes;
};

static size_t charge_of(void *p)
{
    return malloc_usable_size(p) + sizeof(size_t);
}

strata_tags *strata__tags_new(size_t max)
{
    strata_tags *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    t->max_per_stripe = max / STRIPES > 0 ? max / STRIPES : 1;
    for (int i = 0; i < STRIPES; i++) {
        pthread_mutex_init(&t->stripes[i].lock, NULL);
        t->stripes[i].rng = strata__rand_seed();
    }
    return t;
}

void strata__tags_free(strata_tags *t)
{
    if (t == NULL)
        return;
    for (int i = 0; i < STRIPES; i++) {
        stripe *s = &t->stripes[i];
        for (tag_node *n = s->oldest, *next; n != NULL; n = next) {
            next = n->older_next;
            free(n->soft);
            free(n);
        }
        free(s->buckets);
        pthread_mutex_destroy(&s->lock);
    }
    free(t);
}

uint64_t strata__tag_hash(const char *tenant, const char *tag)
{
    /* The tenant (with its NUL, so ("a","bc") and ("ab","c") differ) seeds the tag's hash. */
    return XXH3_64bits_withSeed(tag, strlen(tag), XXH3_64bits(tenant, strlen(tenant) + 1));
}

static stripe *stripe_of(strata_tags *t, uint64_t hash)
{
    return &t->stripes[hash >> 60];
}

static tag_node *find_locked(stripe *s, uint64_t hash)
{
    if (s->nbuckets == 0)
        return NULL;
    for (tag_node *n = s->buckets[hash & (s->nbuckets - 1)]; n != NULL; n = n->hnext)
        if (n->hash == hash)
            return n;
    return NULL;
}

static void grow_locked(strata_tags *t, stripe *s)
{
    size_t n = s->nbuckets ? s->nbuckets * 2 : 16;
    tag_node **b = calloc(n, sizeof *b);
    if (b == NULL)
        return; /* longer chains, still correct */
    for (tag_node *node = s->oldest; node != NULL; node = node->older_next) {
        size_t i = node->hash & (n - 1);
        node->hnext = b[i];
        b[i] = node;
    }
    if (s->buckets != NULL)
        atomic_fetch_sub(&t->bytes, charge_of(s->buckets));
    free(s->buckets);
    s->buckets = b;
    s->nbuckets = n;
    atomic_fetch_add(&t->bytes, charge_of(b));
}

static void unlink_locked(strata_tags *t, stripe *s, tag_node *victim);

static tag_node *insert_locked(strata_tags *t, stripe *s, uint64_t hash)
{
    if (s->count >= t->max_per_stripe)
        unlink_locked(t, s, s->oldest); /* forget the oldest tag */
    if (s->count >= s->nbuckets)
        grow_locked(t, s);
    if (s->nbuckets == 0)
        return NULL;
    tag_node *n = malloc(sizeof *n);
    if (n == NULL)
        return NULL;
    n->hash = hash;
    n->version = strata__rand_next(&s->rng);
    n->soft = NULL;
    n->older_next = NULL;
    size_t i = hash & (s->nbuckets - 1);
    n->hnext = s->buckets[i];
    s->buckets[i] = n;
    if (s->newest != NULL)
        s->newest->older_next = n;
    else
        s->oldest = n;
    s->newest = n;
    s->count++;
    atomic_fetch_add(&t->bytes, charge_of(n));
    return n;
}

int strata__tags_current(strata_tags *t, uint64_t hash, int create, uint64_t *version)
{
    stripe *s = stripe_of(t, hash);
    int rc = 0;
    pthread_mutex_lock(&s->lock);
    tag_node *n = find_locked(s, hash);
    if (n == NULL && create)
        n = insert_locked(t, s, hash);
    if (n != NULL)
        *version = n->version;
    else
        rc = create ? STRATA_ENOMEM : STRATA_ENOTFOUND;
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int strata__tags_judge(uint64_t want, uint64_t have, const tag_soft *soft, uint64_t *stale_from)
{
    *stale_from = 0;
    if (want == have)
        return 1;
    if (soft == NULL || soft->cur != have)
        return 0; /* no record, or one a hard invalidation made obsolete */
    for (unsigned i = 0; i < soft->n && i < STRATA_TAG_SOFT_MAX; i++)
        if (soft->retired[i].version == want) {
            *stale_from = soft->retired[i].at_ms;
            return 1;
        }
    return 0;
}

void strata__tags_soft_next(const tag_soft *old, uint64_t have, uint64_t next, uint64_t at_ms,
                            tag_soft *out)
{
    tag_soft r = {.cur = next, .n = 1};
    r.retired[0].version = have, r.retired[0].at_ms = at_ms;
    for (unsigned i = 0; old != NULL && old->cur == have && i < old->n && r.n < STRATA_TAG_SOFT_MAX;
         i++)
        r.retired[r.n++] = old->retired[i];
    *out = r;
}

int strata__tags_check(strata_tags *t, uint64_t hash, uint64_t want, uint64_t *stale_from)
{
    stripe *s = stripe_of(t, hash);
    pthread_mutex_lock(&s->lock);
    tag_node *n = find_locked(s, hash);
    int rc =
        n != NULL ? strata__tags_judge(want, n->version, n->soft, stale_from) : STRATA_ENOTFOUND;
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* Replaces n's soft record with a copy of soft (NULL: none). Returns 0 or STRATA_ENOMEM (n then
 * has none, which can only make entries invalid). */
static int set_soft_locked(strata_tags *t, tag_node *n, const tag_soft *soft)
{
    if (n->soft != NULL)
        atomic_fetch_sub(&t->bytes, charge_of(n->soft));
    if (soft == NULL || soft->cur == 0) {
        free(n->soft);
        n->soft = NULL;
        return 0;
    }
    if (n->soft == NULL && (n->soft = malloc(sizeof *n->soft)) == NULL)
        return STRATA_ENOMEM;
    *n->soft = *soft;
    atomic_fetch_add(&t->bytes, charge_of(n->soft));
    return 0;
}

int strata__tags_soften(strata_tags *t, uint64_t hash, uint64_t now_ms)
{
    stripe *s = stripe_of(t, hash);
    int rc = 0;
    pthread_mutex_lock(&s->lock);
    tag_node *n = find_locked(s, hash);
    if (n == NULL) {
        rc = insert_locked(t, s, hash) != NULL ? 0 : STRATA_ENOMEM;
    } else {
        uint64_t old = n->version;
        do
            n->version = strata__rand_next(&s->rng);
        while (n->version == old || n->version == 0);
        tag_soft next;
        strata__tags_soft_next(n->soft, old, n->version, now_ms, &next);
        rc = set_soft_locked(t, n, &next);
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int strata__tags_bump(strata_tags *t, uint64_t hash)
{
    stripe *s = stripe_of(t, hash);
    int rc = 0;
    pthread_mutex_lock(&s->lock);
    tag_node *n = find_locked(s, hash);
    if (n != NULL) {
        uint64_t old = n->version;
        do
            n->version = strata__rand_next(&s->rng);
        while (n->version == old);
        set_soft_locked(t, n, NULL); /* obsolete now: its entries are invalid */
    } else if (insert_locked(t, s, hash) == NULL) {
        rc = STRATA_ENOMEM;
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

size_t strata__tags_bytes(strata_tags *t)
{
    return atomic_load_explicit(&t->bytes, memory_order_relaxed);
}

size_t strata__tags_count(strata_tags *t)
{
    size_t n = 0;
    for (int i = 0; i < STRIPES; i++) {
        pthread_mutex_lock(&t->stripes[i].lock);
        n += t->stripes[i].count;
        pthread_mutex_unlock(&t->stripes[i].lock);
    }
    return n;
}

int strata__tags_put(strata_tags *t, uint64_t hash, uint64_t version, const tag_soft *soft,
                     _Atomic uint64_t *slot, _Atomic uint64_t *epoch, uint64_t expect)
{
    stripe *s = stripe_of(t, hash);
    int rc = 0;
    pthread_mutex_lock(&s->lock);
    if (slot != NULL && atomic_load(slot) + atomic_load(epoch) != expect) {
        pthread_mutex_unlock(&s->lock); /* the tag changed while its version was being read */
        return 0;
    }
    tag_node *n = find_locked(s, hash);
    if (n == NULL)
        n = insert_locked(t, s, hash);
    if (n != NULL) {
        n->version = version;
        rc = set_soft_locked(t, n, soft);
    } else {
        rc = STRATA_ENOMEM;
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static void unlink_locked(strata_tags *t, stripe *s, tag_node *victim)
{
    tag_node **pp = &s->buckets[victim->hash & (s->nbuckets - 1)];
    while (*pp != victim)
        pp = &(*pp)->hnext;
    *pp = victim->hnext;
    tag_node **fp = &s->oldest, *prev = NULL;
    while (*fp != victim)
        prev = *fp, fp = &(*fp)->older_next;
    *fp = victim->older_next;
    if (s->newest == victim)
        s->newest = prev;
    s->count--;
    atomic_fetch_sub(&t->bytes, charge_of(victim));
    set_soft_locked(t, victim, NULL);
    free(victim);
}

void strata__tags_forget(strata_tags *t, uint64_t hash)
{
    stripe *s = stripe_of(t, hash);
    pthread_mutex_lock(&s->lock);
    tag_node *n = find_locked(s, hash);
    if (n != NULL)
        unlink_locked(t, s, n);
    pthread_mutex_unlock(&s->lock);
}

void strata__tags_clear(strata_tags *t)
{
    for (int i = 0; i < STRIPES; i++) {
        stripe *s = &t->stripes[i];
        pthread_mutex_lock(&s->lock);
        while (s->oldest != NULL)
            unlink_locked(t, s, s->oldest);
        pthread_mutex_unlock(&s->lock);
    }
}
