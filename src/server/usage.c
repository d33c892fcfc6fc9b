/* usage.c: request counters per namespace and per (namespace, tenant), one table per worker.
 *
 * Each worker writes only its own tables, so the request path takes no lock: a row's counters
 * have one writer (a relaxed load and store, as in metrics.c), and a row is published whole (its
 * names written, then its pointer stored with release) and never removed while the server runs.
 * /cache/stats reads every worker's tables from its own thread with acquire loads, and sums.
 *
 * Open addressing over twice the rows a table may hold: probes stay short and always end. What
 * clients can make a worker hold is bounded: namespace rows only for namespaces L1 holds (L1 has
 * its own bound), and USAGE_PAIRS (namespace, tenant) rows, first come; the requests of pairs
 * beyond count in the "other" row, and the table remembers that it turned one away.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "usage.h"

typedef struct row {
    char ns[STRATA_NAME_MAX + 1];
    char tenant[STRATA_NAME_MAX + 1]; /* "" in the namespace table */
    _Atomic uint64_t n[USAGE_COUNT];
    struct row *of; /* a pair's namespace row (NULL in the namespace table) */
} row;

typedef struct table {
    _Atomic(row *) *slots;
    size_t mask;
    unsigned used, max; /* the owner's only */
} table;

struct usage {
    table ns, pairs;
    row other;       /* requests of pairs that found no room */
    atomic_int full; /* the pair table turned a pair away */
    row *last;       /* the pair counted last: most requests repeat it (the owner's only) */
};

static int table_init(table *t, unsigned max)
{
    size_t n = 2 * (size_t)max; /* max is a power of two */
    t->slots = calloc(n, sizeof *t->slots);
    t->mask = n - 1;
    t->max = max;
    return t->slots != NULL ? 0 : -1;
}

static void table_free(table *t)
{
    for (size_t i = 0; t->slots != NULL && i <= t->mask; i++)
        free(atomic_load(&t->slots[i]));
    free(t->slots);
}

usage *usage_new(void)
{
    usage *u = calloc(1, sizeof *u);
    if (u != NULL &&
        (table_init(&u->ns, USAGE_NAMESPACES) != 0 || table_init(&u->pairs, USAGE_PAIRS) != 0)) {
        usage_free(u);
        return NULL;
    }
    return u;
}

void usage_free(usage *u)
{
    if (u == NULL)
        return;
    table_free(&u->ns);
    table_free(&u->pairs);
    free(u);
}

/* The row of (ns, tenant), or NULL with *slot set to where it would go. Safe from any thread. */
static row *find(const table *t, const char *ns, const char *tenant, size_t *slot)
{
    uint64_t h = XXH3_64bits_withSeed(tenant, strlen(tenant), XXH3_64bits(ns, strlen(ns)));
    for (size_t i = (size_t)h & t->mask;; i = (i + 1) & t->mask) {
        row *r = atomic_load_explicit(&t->slots[i], memory_order_acquire);
        if (r == NULL || (strcmp(r->ns, ns) == 0 && strcmp(r->tenant, tenant) == 0)) {
            *slot = i;
            return r;
        }
    }
}

/* A new row in the empty slot, or NULL when the table holds its maximum (or on out of memory).
 * The owner's thread only. */
static row *claim(table *t, const char *ns, const char *tenant, size_t slot)
{
    row *r = t->used < t->max ? calloc(1, sizeof *r) : NULL;
    if (r == NULL)
        return NULL;
    memcpy(r->ns, ns, strnlen(ns, STRATA_NAME_MAX));
    memcpy(r->tenant, tenant, strnlen(tenant, STRATA_NAME_MAX));
    atomic_store_explicit(&t->slots[slot], r, memory_order_release);
    t->used++;
    return r;
}

static void bump(_Atomic uint64_t *c)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

static void count(row *r, int what)
{
    bump(&r->n[USAGE_REQUESTS]);
    if (what > USAGE_REQUESTS && what < USAGE_COUNT)
        bump(&r->n[what]);
}

/* The row of ns, claiming it on first sight; NULL for a namespace L1 does not hold, so reads of
 * made-up namespaces claim nothing (their lookup fails before L1 sums anything). */
static row *namespace_row(usage *u, strata_l1 *l1, const char *ns)
{
    size_t slot;
    row *r = find(&u->ns, ns, "", &slot);
    strata_stats s;
    if (r == NULL && strata_l1_stats(l1, ns, &s) == 0)
        r = claim(&u->ns, ns, "", slot);
    return r;
}

void usage_record(usage *u, strata_l1 *l1, const char *ns, const char *tenant, int what)
{
    /* The common case costs two string compares: the same pair as the request before. */
    row *p = u->last;
    if (p == NULL || strcmp(p->tenant, tenant) != 0 || strcmp(p->ns, ns) != 0) {
        size_t slot;
        if ((p = find(&u->pairs, ns, tenant, &slot)) == NULL) {
            row *of = namespace_row(u, l1, ns);
            if (of == NULL)
                return;
            if ((p = claim(&u->pairs, ns, tenant, slot)) == NULL) {
                atomic_store_explicit(&u->full, 1, memory_order_relaxed);
                count(&u->other, what);
                count(of, what);
                return;
            }
            p->of = of;
        }
        u->last = p;
    }
    count(p, what);
    count(p->of, what);
}

static void add(uint64_t out[USAGE_COUNT], const row *r)
{
    for (int c = 0; c < USAGE_COUNT; c++)
        out[c] += atomic_load_explicit(&r->n[c], memory_order_relaxed);
}

int usage_namespace(usage *const *u, unsigned n, const char *ns, uint64_t out[USAGE_COUNT])
{
    memset(out, 0, USAGE_COUNT * sizeof *out);
    int found = 0;
    size_t slot;
    for (unsigned i = 0; i < n; i++) {
        const row *r = find(&u[i]->ns, ns, "", &slot);
        if (r != NULL)
            add(out, r), found = 1;
    }
    return found;
}

void usage_each_namespace(usage *const *u, unsigned n,
                          void (*fn)(const char *ns, const uint64_t c[USAGE_COUNT], void *arg),
                          void *arg)
{
    for (unsigned i = 0; i < n; i++) {
        for (size_t k = 0; k <= u[i]->ns.mask; k++) {
            const row *r = atomic_load_explicit(&u[i]->ns.slots[k], memory_order_acquire);
            if (r == NULL)
                continue;
            /* Once per namespace: at the first table that has it. */
            int earlier = 0;
            size_t slot;
            for (unsigned j = 0; j < i && !earlier; j++)
                earlier = find(&u[j]->ns, r->ns, "", &slot) != NULL;
            if (earlier)
                continue;
            uint64_t c[USAGE_COUNT];
            usage_namespace(u, n, r->ns, c);
            fn(r->ns, c, arg);
        }
    }
}

/* Adds tenant's rows of one table (in ns, or in all when ns is NULL). Returns 1 if any. */
static int add_tenant(const table *t, const char *ns, const char *tenant, uint64_t out[USAGE_COUNT])
{
    size_t slot;
    const row *r;
    if (ns != NULL) {
        r = find(t, ns, tenant, &slot);
        if (r != NULL)
            add(out, r);
        return r != NULL;
    }
    int found = 0;
    for (size_t i = 0; i <= t->mask; i++) {
        r = atomic_load_explicit(&t->slots[i], memory_order_acquire);
        if (r != NULL && strcmp(r->tenant, tenant) == 0)
            add(out, r), found = 1;
    }
    return found;
}

int usage_tenant(usage *const *u, unsigned n, const char *ns, const char *tenant,
                 uint64_t out[USAGE_COUNT], int *complete)
{
    memset(out, 0, USAGE_COUNT * sizeof *out);
    int found = 0;
    *complete = 1;
    for (unsigned i = 0; i < n; i++) {
        int here = add_tenant(&u[i]->pairs, ns, tenant, out);
        found |= here;
        /* A pair with a row counted everything since its first request; one without a row, on
         * a worker that turned pairs away, may be in "other" (and for every namespace at once,
         * there is no telling). */
        if (atomic_load_explicit(&u[i]->full, memory_order_relaxed) && (ns == NULL || !here))
            *complete = 0;
    }
    return found;
}
