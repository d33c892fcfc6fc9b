/* usage.h: what the cache API was asked per namespace and per (namespace, tenant), one table
 * per worker, for /cache/stats?namespace=&tenant=.
 *
 * Bounded whatever clients send: a namespace gets a row only once L1 holds it (at most
 * USAGE_NAMESPACES, L1's own bound), and a worker tracks at most USAGE_PAIRS (namespace, tenant)
 * pairs, first come; requests of pairs past that are counted in the worker's "other" row, and
 * answers about a tenant say they may be incomplete. */
#ifndef STRATA_SERVER_USAGE_H
#define STRATA_SERVER_USAGE_H

#include <stdint.h>

#include <strata/strata.h>

#define USAGE_NAMESPACES 1024 /* L1's default max_namespaces: strata serve does not change it */
#define USAGE_PAIRS      512  /* (namespace, tenant) pairs per worker */

/* The counters of a row. A request counts in USAGE_REQUESTS and in at most one other. */
enum usage_counter {
    USAGE_REQUESTS, /* every answered call of the cache API in the scope */
    USAGE_L1,       /* single-key reads answered from L1 */
    USAGE_L2,       /* ... from Redis */
    USAGE_MISSES,   /* ... that found nothing */
    USAGE_WRITES,   /* single-key writes stored */
    USAGE_DELETES,  /* single-key deletes done */
    USAGE_ERRORS,   /* answers 5xx */
    USAGE_COUNT
};

typedef struct usage usage;

/* NULL on out of memory. usage_free(NULL) is a no-op. */
usage *usage_new(void);
void usage_free(usage *u);

/* Counts one request of tenant in namespace ns (and in counter what, unless USAGE_REQUESTS).
 * Only the worker that owns u calls it; l1 is asked whether ns exists only when ns has no row
 * yet, so the common case takes no lock and makes no library call. */
void usage_record(usage *u, strata_l1 *l1, const char *ns, const char *tenant, int what);

/* Sums namespace ns over n tables into out. Returns 1 if any worker has a row for it, else 0. */
int usage_namespace(usage *const *u, unsigned n, const char *ns, uint64_t out[USAGE_COUNT]);

/* Calls fn once for each namespace any of the n tables has a row for, with its sums over them
 * (as usage_namespace), in no particular order. From any thread, as usage_namespace. */
void usage_each_namespace(usage *const *u, unsigned n,
                          void (*fn)(const char *ns, const uint64_t c[USAGE_COUNT], void *arg),
                          void *arg);

/* Sums tenant's rows (in namespace ns, or in every namespace when ns is NULL) over n tables
 * into out. Sets *complete to 0 when a worker whose table is full may have counted some of
 * them in its "other" row, else 1. Returns 1 if any row was found, else 0. */
int usage_tenant(usage *const *u, unsigned n, const char *ns, const char *tenant,
                 uint64_t out[USAGE_COUNT], int *complete);

#endif
