/* fairq.h: a queue of jobs kept per tenant and served in turn, with bounds: what makes the admin
 * lanes (offload.h) fair between tenants.
 *
 * Each tenant's items wait in their own FIFO, and the tenants that have items form a ring.
 * fairq_take() serves the ring round-robin, one item per tenant per turn, skipping a tenant that
 * already runs max_running items: a tenant with a hundred jobs queued makes another tenant's one
 * job wait for at most one job per tenant ahead of it in the turn, never for the hundred. A tenant
 * that arrives joins at the end of the current turn.
 *
 * Bounds: at most max_waiting items wait in all, and at most max_per_tenant per tenant (running
 * items are not waiting: they are bounded by the threads). Past either, fairq_put() refuses, so
 * what one client (or every client together) makes the server hold is bounded before any work
 * starts.
 *
 * Not thread-safe: the owner holds its lock around every call. Items are the owner's (embed a
 * fairq_item as the first member of a job); the queue allocates one small record per tenant that
 * has items, freed as soon as it has none waiting or running.
 */
#ifndef STRATA_SERVER_FAIRQ_H
#define STRATA_SERVER_FAIRQ_H

#include <strata/strata.h>

typedef struct fairq_tenant fairq_tenant;

typedef struct fairq_item {
    struct fairq_item *next;
    fairq_tenant *owner; /* set by fairq_put */
} fairq_item;

struct fairq_tenant {
    fairq_tenant *prev, *next; /* the ring */
    fairq_item *head, *tail;   /* waiting, oldest first */
    unsigned waiting, running;
    char name[STRATA_NAME_MAX + 1];
};

typedef struct fairq {
    fairq_tenant *turn; /* the tenant served next; NULL: no tenant has items */
    unsigned waiting;   /* in all */
    unsigned max_waiting, max_per_tenant, max_running;
} fairq;

enum { FAIRQ_FULL = -1, FAIRQ_NOMEM = -2 };

/* An empty queue with its bounds (each at least 1). */
void fairq_init(fairq *f, unsigned max_waiting, unsigned max_per_tenant, unsigned max_running);

/* Queues it at the end of tenant's FIFO (a name longer than STRATA_NAME_MAX is cut). force:
 * past the bounds too (for calls that must always be answered and cost one round trip).
 * Returns 0, FAIRQ_FULL (the tenant or the queue holds as many as allowed) or FAIRQ_NOMEM. */
int fairq_put(fairq *f, const char *tenant, fairq_item *it, int force);

/* The next item to run, in turn; it counts as running (against its tenant's max_running) until
 * fairq_done(). NULL when nothing waits, or every tenant that has items runs its maximum. */
fairq_item *fairq_take(fairq *f);

/* it, taken, has finished. */
void fairq_done(fairq *f, fairq_item *it);

#endif
