/* shard.c: one shard of L1 and its W-TinyLFU policy.
 *
 * The policy (Einziger, Friedman, Manes: "TinyLFU", and Caffeine's W-TinyLFU) keeps three LRU
 * lists, all measured in bytes:
 *   window    (1% of the shard)  every new entry starts here, so a burst of new keys gets a
 *                                 chance to prove itself;
 *   probation (main, 20%)        entries that left the window, or fell out of protected;
 *   protected (main, 80%)        entries read again while on probation.
 * When the window overflows, its LRU entries move to probation as candidates. While the shard
 * is over its capacity, the oldest candidate duels the probation LRU entry (the victim): the one
 * the frequency sketch has seen more often stays. A one-off scan therefore flows through the
 * window and loses every duel against the hot set, which plain LRU would flush.
 *
 * Everything here runs under the shard lock (the _locked suffix); l1.c takes it.
 */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "core/rand.h"
#include "l1/shard.h"

#define WINDOW_PERCENT    1
#define PROTECTED_PERCENT 80
#define ADMIT_HASHDOS     6 /* from this frequency on, a losing candidate may win at random */

static size_t charge_of(void *p)
{
    return p ? malloc_usable_size(p) + sizeof(size_t) : 0;
}

int strata__shard_init(l1_shard *s, unsigned index, size_t budget)
{
    memset(s, 0, sizeof *s);
    s->index = index;
    s->budget = budget;
    s->protect_max = budget / 100 * PROTECTED_PERCENT;
    s->rng = strata__rand_seed();
    s->nbuckets = 16;
    s->buckets = calloc(s->nbuckets, sizeof *s->buckets);
    if (s->buckets == NULL || strata__sketch_ensure(&s->sk, 64) != 0) {
        free(s->buckets);
        return -1;
    }
    s->buckets_bytes = charge_of(s->buckets);
    /* Adaptive: spin briefly before sleeping. Critical sections are a few hundred nanoseconds,
     * far shorter than a sleep and wake-up, which a plain mutex pays under contention (measured:
     * two threads slower than one, thousands of context switches). */
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
    pthread_mutex_init(&s->lock, &attr);
    pthread_mutexattr_destroy(&attr);
    return 0;
}

void strata__shard_destroy(l1_shard *s)
{
    for (size_t i = 0; i < s->nbuckets; i++)
        for (struct strata_value *e = s->buckets[i], *next; e != NULL; e = next) {
            next = e->hnext;
            if (e->scope != NULL)
                strata__scope_release(e->scope);
            strata_value_release(e);
        }
    free(s->buckets);
    strata__sketch_free(&s->sk);
    strata__expiry_free(&s->heap);
    pthread_mutex_destroy(&s->lock);
}

size_t strata__shard_capacity(const l1_shard *s, size_t shared_share)
{
    size_t overhead = s->buckets_bytes + s->sk.bytes + s->heap.bytes + shared_share;
    return s->budget > overhead ? s->budget - overhead : 0;
}

/* ---- lists -------------------------------------------------------------------------------- */

static l1_list *list_of(l1_shard *s, struct strata_value *e)
{
    switch (e->segment) {
    case SEG_WINDOW:
        return &s->window;
    case SEG_PROBATION:
        return &s->probation;
    case SEG_PINNED:
        return &s->pinned;
    default:
        return &s->protect;
    }
}

static void list_unlink(l1_list *l, struct strata_value *e)
{
    if (e->prev != NULL)
        e->prev->next = e->next;
    else
        l->head = e->next;
    if (e->next != NULL)
        e->next->prev = e->prev;
    else
        l->tail = e->prev;
    e->prev = e->next = NULL;
    l->bytes -= e->charge;
}

static void list_push_head(l1_list *l, struct strata_value *e)
{
    e->prev = NULL;
    e->next = l->head;
    if (l->head != NULL)
        l->head->prev = e;
    else
        l->tail = e;
    l->head = e;
    l->bytes += e->charge;
}

/* Moves e to the MRU end of segment seg. */
static void move_to(l1_shard *s, struct strata_value *e, enum entry_segment seg)
{
    list_unlink(list_of(s, e), e);
    e->segment = (uint8_t)seg;
    list_push_head(list_of(s, e), e);
}

/* ---- hash table --------------------------------------------------------------------------- */

struct strata_value *strata__shard_find_locked(l1_shard *s, uint64_t hash, const char *key,
                                               size_t len)
{
    /* The low bits chose the shard; the high bits pick the bucket. */
    for (struct strata_value *e = s->buckets[(hash >> 20) & (s->nbuckets - 1)]; e != NULL;
         e = e->hnext)
        if (e->hash == hash && e->key_len == len && memcmp(entry_key(e), key, len) == 0)
            return e;
    return NULL;
}

static void table_grow_locked(l1_shard *s)
{
    size_t n = s->nbuckets * 2;
    struct strata_value **b = calloc(n, sizeof *b);
    if (b == NULL)
        return; /* keep the old table: longer chains, still correct */
    for (size_t i = 0; i < s->nbuckets; i++)
        for (struct strata_value *e = s->buckets[i], *next; e != NULL; e = next) {
            next = e->hnext;
            size_t j = (e->hash >> 20) & (n - 1);
            e->hnext = b[j];
            b[j] = e;
        }
    free(s->buckets);
    s->buckets = b;
    s->nbuckets = n;
    s->buckets_bytes = charge_of(b);
}

static void table_unlink(l1_shard *s, struct strata_value *e)
{
    struct strata_value **pp = &s->buckets[(e->hash >> 20) & (s->nbuckets - 1)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    e->hnext = NULL;
}

static void table_link(l1_shard *s, struct strata_value *e)
{
    size_t i = (e->hash >> 20) & (s->nbuckets - 1);
    e->hnext = s->buckets[i];
    s->buckets[i] = e;
}

/* ---- policy ------------------------------------------------------------------------------- */

void strata__shard_hit_locked(l1_shard *s, struct strata_value *e)
{
    strata__sketch_increment(&s->sk, e->hash);
    if (e->segment == SEG_PROBATION) {
        move_to(s, e, SEG_PROTECTED);
        /* Protected overflow drops back to probation, where it must win again. */
        while (s->protect.bytes > s->protect_max && s->protect.tail != NULL && s->protect.tail != e)
            move_to(s, s->protect.tail, SEG_PROBATION);
    } else if (list_of(s, e)->head != e) { /* already the most recent: nothing to write */
        move_to(s, e, (enum entry_segment)e->segment);
    }
}

static int admit(l1_shard *s, struct strata_value *cand, struct strata_value *victim)
{
    unsigned cf = strata__sketch_frequency(&s->sk, cand->hash);
    unsigned vf = strata__sketch_frequency(&s->sk, victim->hash);
    if (cf > vf)
        return 1;
    /* Caffeine's guard against an attacker who keeps a victim's count artificially high: a
     * popular candidate that loses still gets in now and then. */
    return cf >= ADMIT_HASHDOS && (strata__rand_next(&s->rng) & 127) == 0;
}

static void evict_locked(l1_shard *s, size_t shared_share)
{
    size_t cap = strata__shard_capacity(s, shared_share);
    size_t window_max = cap / 100 * WINDOW_PERCENT;
    struct strata_value *cand = NULL;

    s->protect_max = (cap - window_max) / 100 * PROTECTED_PERCENT;
    while (s->window.bytes > window_max && s->window.tail != NULL) {
        struct strata_value *e = s->window.tail;
        move_to(s, e, SEG_PROBATION);
        if (cand == NULL)
            cand = e; /* the oldest candidate; later ones lie toward the probation head */
    }
    while (s->bytes > cap) {
        struct strata_value *victim = s->probation.tail;
        if (victim == NULL)
            victim = s->protect.tail ? s->protect.tail : s->window.tail;
        if (victim == NULL)
            break;
        if (cand == NULL || victim->segment != SEG_PROBATION) {
            strata__shard_remove_locked(s, victim, RM_EVICT);
        } else if (victim == cand || !admit(s, cand, victim)) {
            struct strata_value *next = cand->prev; /* the next newer candidate, if any */
            strata__shard_remove_locked(s, cand, RM_EVICT);
            cand = next;
        } else {
            strata__shard_remove_locked(s, victim, RM_EVICT);
        }
    }
}

/* Keeps the sketch at about one counter group per entry, as Caffeine sizes it. */
static void sketch_fit(l1_shard *s)
{
    if (s->count > s->sk.mask + 1)
        strata__sketch_ensure(&s->sk, s->count * 2);
}

int strata__shard_insert_locked(l1_shard *s, struct strata_value *e, struct strata_value *old,
                                size_t shared_share)
{
    if (entry_expires(e) != 0 && strata__expiry_push(&s->heap, e) != 0)
        return -1;
    if (old != NULL) {
        /* Takes the old value's place, unless one of them is pinned (outside the policy). */
        e->segment = e->pinned                    ? SEG_PINNED
                     : old->segment == SEG_PINNED ? SEG_WINDOW
                                                  : old->segment;
        list_push_head(list_of(s, e), e);
        strata__shard_remove_locked(s, old, RM_REPLACE);
    } else {
        e->segment = e->pinned ? SEG_PINNED : SEG_WINDOW;
        list_push_head(list_of(s, e), e);
    }
    table_link(s, e);
    if (e->scope != NULL)
        strata__scope_link(e->scope, e); /* only now, so a scope never lists an entry in flight */
    s->count++;
    s->bytes += e->charge;
    stat_add(&s->stats.entries, 1);
    stat_add(&s->stats.bytes, e->charge);
    stat_add(&s->stats.sets, 1);
    stat_add(&e->ns->stats[s->index].entries, 1);
    stat_add(&e->ns->stats[s->index].bytes, e->charge);
    stat_add(&e->ns->stats[s->index].sets, 1);
    strata__sketch_increment(&s->sk, e->hash);
    if (s->count > s->nbuckets)
        table_grow_locked(s);
    sketch_fit(s);
    evict_locked(s, shared_share);
    return 0;
}

void strata__shard_remove_locked(l1_shard *s, struct strata_value *e, enum remove_reason why)
{
    shard_stats *ns = &e->ns->stats[s->index];
    table_unlink(s, e);
    list_unlink(list_of(s, e), e);
    e->segment = SEG_NONE;
    if (e->heap_idx >= 0)
        strata__expiry_remove(&s->heap, e);
    if (e->scope != NULL) {
        strata__scope_unlink(e->scope, e);
        strata__scope_release(e->scope);
    }
    s->count--;
    s->bytes -= e->charge;
    stat_sub(&s->stats.entries, 1);
    stat_sub(&s->stats.bytes, e->charge);
    stat_sub(&ns->entries, 1);
    stat_sub(&ns->bytes, e->charge);
    _Atomic uint64_t *c = NULL, *nc = NULL;
    switch (why) {
    case RM_DELETE:
        c = &s->stats.deletes, nc = &ns->deletes;
        break;
    case RM_EVICT:
        c = &s->stats.evictions, nc = &ns->evictions;
        break;
    case RM_EXPIRE:
        c = &s->stats.expirations, nc = &ns->expirations;
        break;
    case RM_INVALID:
        c = &s->stats.invalidations, nc = &ns->invalidations;
        break;
    case RM_REPLACE:
        break;
    }
    if (c != NULL) {
        stat_add(c, 1);
        stat_add(nc, 1);
    }
    strata_value_release(e);
}

int strata__shard_retime_locked(l1_shard *s, struct strata_value *e, uint64_t expires_ms)
{
    uint64_t before = entry_expires(e);
    atomic_store_explicit(&e->expires_ms, expires_ms, memory_order_relaxed);
    if (expires_ms == 0) {
        if (e->heap_idx >= 0)
            strata__expiry_remove(&s->heap, e);
        return 0;
    }
    if (e->heap_idx >= 0) {
        strata__expiry_update(&s->heap, e);
        return 0;
    }
    if (strata__expiry_push(&s->heap, e) != 0) {
        atomic_store_explicit(&e->expires_ms, before, memory_order_relaxed);
        return -1;
    }
    return 0;
}
