/* server.h: what strata serve is made of at run time: the server (settings, the cache, tokens,
 * rate-limit rules, the admin lanes) and its workers (one event loop each).
 *
 * Requests, replies and handlers are elsewhere (request.h, handlers.h): this is what they reach
 * through q->w and q->w->srv.
 */
#ifndef STRATA_SERVER_SERVER_H
#define STRATA_SERVER_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <strata/strata.h>

#include "auth.h"
#include "config.h"
#include "http/http_server.h"
#include "limits.h"
#include "metrics.h"
#include "offload.h"

typedef struct server server;
typedef struct worker worker;

/* What a listener serves (STRATA_ADMIN_LISTEN splits them). */
enum listener_kind {
    LISTEN_ALL = 0,   /* strata's own routes first, then the proxy's */
    LISTEN_PROXY = 1, /* every path proxied (strata's own routes are on the admin listener) */
    LISTEN_ADMIN = 2, /* strata's own routes alone */
};

/* The argument of a listener's callbacks: its worker, and what it serves. */
typedef struct listener {
    worker *w;
    int kind; /* enum listener_kind */
} listener;

struct worker {
    server *srv;
    unsigned index;
    pthread_t thread;
    struct event_base *base;
    http_server *http;       /* its connections (the HTTP layer) */
    http_server *admin_http; /* with STRATA_ADMIN_LISTEN: the admin listener's; else NULL */
    listener main_listener, admin_listener;
    strata_loop *loop; /* its Redis link */
    metrics_block *metrics;
    atomic_int inflight; /* requests between their head and their answer */
    int lease_waits;     /* of them, waiting for a lease holder (worker thread only): a drain
                            keeps the loop until they answered, as the library requires */
    uint64_t rng;        /* the worker's XFetch draws (worker thread only; 0: not seeded yet) */
    struct kv_grants *grants;  /* when this worker granted its latest lease tokens (kv_lease.c;
                                  NULL until the first) */
    struct llm_memo *llm_memo; /* the LLM request bodies it parsed lately (llm/llm_memo.h; NULL
                                  until the first, worker thread only) */
    int proxy_background;      /* the proxy's refreshes after their client was answered (worker
                                  thread only): a drain waits for them, as for lease waits */
};

struct server {
    serve_config cfg;
    strata_cache *cache;
    strata_ratelimiter *rl;         /* the server's own rules and /v1/ratelimit */
    strata_leases *leases;          /* the lease protocol of the KV API (kv_lease.c) */
    atomic_uint lease_waiting;      /* requests waiting for a lease holder, all workers */
    _Atomic uint64_t lease_refused; /* lease GETs answered 503 lease_busy */
    worker *workers;
    pthread_rwlock_t auth_lock;
    auth_table *auth;
    atomic_int draining;
    uint64_t drain_deadline_ms; /* set before the loops are asked to stop; read by them */
    uint64_t started_ms;
    limit_rules rules;
    offload_lane bulk;  /* admin work that scans Redis: clears, listings, pattern invalidations */
    offload_lane quick; /* admin calls of a few round trips: stats' INFO, tag invalidations */
    /* The caching proxy's running model (proxy_model.c), or NULL without a proxy; the lock
     * guards the pointer and the list of retired models still to free. */
    struct proxy_model *proxy;
    struct proxy_model *proxy_retired;
    pthread_mutex_t proxy_lock;
    _Atomic uint64_t purges; /* purges done (POST /cache/purge, PURGE) */
    struct history *history; /* the last minutes, second by second (history.c) */
};

#endif
