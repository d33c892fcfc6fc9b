/* tags.c: current tag versions, the O(1) half of tag invalidation.
 *
 * An entry written with tag T records T's version at write time; invalidating T gives it a new
 * random version, so every entry carrying the old one is invalid at its next read (and dropped
 * then or by eviction) without touching any of them. Versions are random 64-bit values, never
 * counters, and an unknown tag is treated as invalid: when the table forgets a tag (it is bounded:
 * past `max` it drops its oldest tags first) or, with Redis, when Redis loses one, the entries that
 * carried it can only become misses, never come back to life.
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

int strata__tags_put(strata_tags *t, uint64_t hash, uint64_t version, _Atomic uint64_t *slot,
                     _Atomic uint64_t *epoch, uint64_t expect)
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
    if (n != NULL)
        n->version = version;
    else
        rc = STRATA_ENOMEM;
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
