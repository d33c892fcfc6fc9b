/* features/lease_table.c: the leases this process holds for itself (see lease_table.h).
 *
 * A chained hash table of entries, each one allocation (the stored key follows the entry), under
 * one mutex: leases are taken when a key misses and Redis is away, so the lock is not on any hot
 * path. An expired entry is dead: it answers as if absent and is reused or removed by whoever
 * meets it; when the table is full a sweep drops every dead entry before an acquire is refused.
 * The bound (max entries) holds memory to max * (entry + stored key); past it an acquire is
 * refused with STRATA_ELIMIT rather than evicting a live lease, which would silently give a
 * second caller a key someone is computing.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <strata/errors.h>
#include <xxhash.h>

#include "core/token.h"
#include "features/lease_table.h"

#define LT_BUCKETS 1024

typedef struct lt_entry {
    struct lt_entry *next;
    uint64_t hash, deadline;
    char token[STRATA__TOKEN_LEN];
    size_t klen;
    char key[];
} lt_entry;

struct lease_table {
    pthread_mutex_t lock;
    size_t max, count;
    lt_entry *buckets[LT_BUCKETS];
};

int strata__lease_table_new(size_t max, lease_table **out)
{
    *out = NULL;
    lease_table *t = calloc(1, sizeof *t);
    if (t == NULL)
        return STRATA_ENOMEM;
    pthread_mutex_init(&t->lock, NULL);
    t->max = max;
    *out = t;
    return 0;
}

void strata__lease_table_free(lease_table *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < LT_BUCKETS; i++)
        for (lt_entry *e = t->buckets[i], *next; e != NULL; e = next)
            next = e->next, free(e);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

/* The link that points at key's entry (*link NULL: none). */
static lt_entry **find_locked(lease_table *t, uint64_t h, const char *key, size_t klen)
{
    lt_entry **link = &t->buckets[h % LT_BUCKETS];
    while (*link != NULL &&
           ((*link)->hash != h || (*link)->klen != klen || memcmp((*link)->key, key, klen) != 0))
        link = &(*link)->next;
    return link;
}

static void unlink_locked(lease_table *t, lt_entry **link)
{
    lt_entry *e = *link;
    *link = e->next;
    free(e);
    t->count--;
}

/* Drops every dead entry. */
static void sweep_locked(lease_table *t, uint64_t now)
{
    for (size_t i = 0; i < LT_BUCKETS; i++)
        for (lt_entry **link = &t->buckets[i]; *link != NULL;)
            if ((*link)->deadline <= now)
                unlink_locked(t, link);
            else
                link = &(*link)->next;
}

int strata__lease_table_acquire(lease_table *t, const char *key, size_t klen, const char *token,
                                uint64_t lease_ms, uint64_t now, uint64_t *left_ms)
{
    uint64_t h = XXH3_64bits(key, klen);
    int rc = 0;
    pthread_mutex_lock(&t->lock);
    lt_entry **link = find_locked(t, h, key, klen), *e = *link;
    if (e != NULL && e->deadline > now) {
        *left_ms = e->deadline - now;
        rc = STRATA_EHELD;
    } else if (e == NULL) { /* a new entry; else a dead one, taken over */
        if (t->count >= t->max)
            sweep_locked(t, now);
        if (t->count >= t->max) {
            rc = STRATA_ELIMIT;
        } else if ((e = malloc(sizeof *e + klen)) == NULL) {
            rc = STRATA_ENOMEM;
        } else {
            e->hash = h, e->klen = klen, e->next = NULL;
            memcpy(e->key, key, klen);
            *find_locked(t, h, key, klen) = e; /* the end of its chain (a sweep may move it) */
            t->count++;
        }
    }
    if (rc == 0 && e != NULL) {
        memcpy(e->token, token, STRATA__TOKEN_LEN);
        e->deadline = now + lease_ms;
    }
    pthread_mutex_unlock(&t->lock);
    return rc;
}

/* The link to key's live entry held by token, or NULL. */
static lt_entry **held_locked(lease_table *t, const char *key, size_t klen, const char *token,
                              uint64_t now)
{
    lt_entry **link = find_locked(t, XXH3_64bits(key, klen), key, klen);
    lt_entry *e = *link;
    if (e == NULL || e->deadline <= now || memcmp(e->token, token, STRATA__TOKEN_LEN) != 0)
        return NULL;
    return link;
}

int strata__lease_table_holds(lease_table *t, const char *key, size_t klen, const char *token,
                              uint64_t now)
{
    pthread_mutex_lock(&t->lock);
    int held = held_locked(t, key, klen, token, now) != NULL;
    pthread_mutex_unlock(&t->lock);
    return held;
}

int strata__lease_table_release(lease_table *t, const char *key, size_t klen, const char *token,
                                uint64_t now)
{
    pthread_mutex_lock(&t->lock);
    lt_entry **link = held_locked(t, key, klen, token, now);
    if (link != NULL)
        unlink_locked(t, link);
    pthread_mutex_unlock(&t->lock);
    return link != NULL ? 0 : STRATA_ENOTHOLDER;
}

int strata__lease_table_extend(lease_table *t, const char *key, size_t klen, const char *token,
                               uint64_t lease_ms, uint64_t now)
{
    pthread_mutex_lock(&t->lock);
    lt_entry **link = held_locked(t, key, klen, token, now);
    if (link != NULL)
        (*link)->deadline = now + lease_ms;
    pthread_mutex_unlock(&t->lock);
    return link != NULL ? 0 : STRATA_ENOTHOLDER;
}

size_t strata__lease_table_count(lease_table *t)
{
    pthread_mutex_lock(&t->lock);
    size_t n = t->count;
    pthread_mutex_unlock(&t->lock);
    return n;
}
