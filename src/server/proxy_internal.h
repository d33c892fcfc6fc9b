/* proxy_internal.h: what the proxy's files share: the running model (a loaded configuration with
 * its per-worker origin pools, per-route counters and per-origin breakers), and a proxied
 * request's state.
 *
 * proxy_model.c owns models (references, pools, breakers, counters); proxy.c a request's flow
 * from its head to its answer (lookups, decisions, hits); proxy_fetch.c its exchange with the
 * origin (the request out, the response streamed or stored); proxy_store.c what is written to
 * the cache (records, tags, invalidations).
 */
#ifndef STRATA_SERVER_PROXY_INTERNAL_H
#define STRATA_SERVER_PROXY_INTERNAL_H

#include <stdatomic.h>
#include <stdint.h>

#include <strata/lease.h>

#include "proxy.h"
#include "proxy/cache_key.h"
#include "proxy/http_cache.h"
#include "proxy/proxy_config.h"
#include "proxy/proxy_record.h"
#include "llm/llm_counters.h"
#include "llm/llm_lives.h"

#define PROXY_NS              "_proxy" /* the namespace of every cached response */
#define PROXY_KEY_CAP         (ROUTE_KEY_MAX + 1)
#define PROXY_VARIANT         " v:"  /* primary key, this, 32 hex digits: a variant's key */
#define PROXY_HDRS_MAX        100    /* request header lines (the HTTP layer's bound) */
#define PROXY_URL_TAG         "url:" /* each entry's tag of its host and path (purges) */
#define PROXY_BREAKER_OPEN_MS 5000   /* an open breaker lets one request try after this, */
#define PROXY_BREAKER_MAX_MS  60000  /* doubling each time it opens again, up to this */
#define PROXY_LLM_ROWS        1024   /* (route, model, tenant) rows of the LLM counters */

/* Counters of a route (atomics: every worker adds to them). Reset when the file is reloaded. */
typedef struct proxy_route_stats {
    _Atomic uint64_t requests, hits, misses, stale, revalidated, coalesced, bypass, origin_requests,
        origin_errors, bytes_saved, stored;
} proxy_route_stats;

/* A per-origin circuit breaker: after breaker_failures failures in a row the origin is not
 * asked for PROXY_BREAKER_OPEN_MS; then one request tries: a success closes it, a failure opens
 * it for twice as long (streak), up to PROXY_BREAKER_MAX_MS. */
typedef struct proxy_breaker {
    atomic_uint failures, streak;
    _Atomic uint64_t open_until_ms;
    _Atomic uint64_t errors, requests, opened;
} proxy_breaker;

typedef struct proxy_model {
    proxy_config *pc;
    server *srv;
    atomic_uint refs;
    atomic_uint retiring;     /* workers still to free their pool once the last reference is gone */
    upstream_pool **pools;    /* per worker, made by that worker on its first origin request */
    proxy_route_stats *route; /* per route of pc */
    proxy_breaker *breaker;   /* per origin of pc */
    limit_rules *limits;      /* per route of pc: its rate_limit rule (n 0: none) */
    llm_counters *llm;        /* openai routes' counters per (route, model, tenant) */
    llm_lives *lives;         /* openai routes' streams in flight (llm_live.c) */
    struct proxy_model *next_retired;
} proxy_model;

/* ---- proxy_model.c ------------------------------------------------------------------------ */

/* Wraps a loaded configuration (taking it over). NULL when out of memory (pc is then freed). */
proxy_model *proxy_model_new(server *s, proxy_config *pc);
proxy_model *proxy_model_ref(server *s);
void proxy_model_unref(proxy_model *m);
/* The worker's pool for m's origins (made on first use), or NULL when out of memory. */
upstream_pool *proxy_model_pool(proxy_model *m, worker *w);
/* Breakers: 1 if the origin may be asked now; the outcome of a request that was. */
int proxy_breaker_allows(proxy_model *m, const proxy_origin *o, uint64_t now_ms);
void proxy_breaker_result(proxy_model *m, const proxy_origin *o, int ok, uint64_t now_ms);
proxy_route_stats *proxy_stats_of(proxy_model *m, const proxy_route *r);
proxy_breaker *proxy_breaker_of(proxy_model *m, const proxy_origin *o);
limit_rules *proxy_limits_of(proxy_model *m, const proxy_route *r);

/* ---- a proxied request -------------------------------------------------------------------- */

enum proxy_body_mode {
    PX_NONE = 0,
    PX_TEE,    /* the response goes to the client as it comes, and is recorded to be stored */
    PX_BUFFER, /* the response is kept whole, to be stored, then answered */
    PX_STREAM, /* the response goes to the client as it comes */
    PX_DRAIN,  /* the response is read and dropped (a stale copy answers instead) */
};

typedef struct proxy_req proxy_req;

/* What a request of another kind than RFC 9111's (an openai route's, src/server/llm_gateway.c)
 * does at the steps where it differs; the flow, the lease, the fetch and the store stay the
 * proxy's. Every hook is called on px's loop. */
typedef struct proxy_hooks {
    /* The response was read whole (PX_BUFFER) or recorded (PX_TEE): 0 to store px->buf (with
     * px->head), which the hook may have replaced; -1 not to store it. */
    int (*complete)(proxy_req *px);
    /* Bytes of a PX_TEE response, as they go to the client. */
    void (*recorded)(proxy_req *px, const char *data, size_t len);
    /* Answers the client from a record (proxy_answer_record's arguments). */
    void (*answer)(proxy_req *px, strata_value *v, const proxy_record *rec, int x, int fwd_status,
                   int stored);
    /* Answers an error made here (proxy_answer_error's). */
    void (*error)(proxy_req *px, int status, const char *code, const char *msg);
    /* px is being freed. */
    void (*free)(proxy_req *px);
} proxy_hooks;

struct proxy_req {
    req *q; /* the client's request; NULL once answered (a background refresh) */
    worker *w;
    proxy_model *model; /* referenced */
    const proxy_route *route;
    proxy_params params;
    char method[16];
    int hmethod; /* enum hc_method */
    hc_request rq;
    size_t nhdr;
    int64_t now;    /* seconds since the epoch, when the request came */
    int cacheable;  /* GET/HEAD on a route, key built, no Range */
    int store_ok;   /* the request allows storing (no no-store) */
    int background; /* refreshing after the client was answered */
    size_t key_len, vkey_len;
    /* What was found: a stored response (for an answer, a revalidation or stale-if-error). */
    strata_value *found;
    proxy_record rec;
    int found_tier;  /* 1: L1, 2: L2 */
    int found_stale; /* the library holds it past its expiry (or a copy kept after a failure) */
    int found_kept;  /* a copy kept after the origin failed, within the error TTL */
    /* The lease on the key used, when this request fetches for everyone. */
    char token[STRATA_LEASE_TOKEN_LEN + 1];
    int leased, coalesced, waiting;
    /* The origin's answer. */
    upstream_req *up;
    uint64_t sent_ms;
    int64_t request_time, response_time;
    int ostatus;
    int mode;         /* enum proxy_body_mode */
    int revalidation; /* the request carried the stored copy's validators */
    int paused;
    int started;              /* the client's answer was started (PX_STREAM) */
    int inval_pending;        /* a write's invalidation runs: the answer waits for it */
    int origin_ended;         /* ... and the origin's response ended meanwhile, */
    int origin_status;        /* ... with this status (0, or a negative UPSTREAM_E*) */
    long long content_length; /* the origin's, for the answer started later */
    hc_facts facts;           /* the response's, the route applied */
    char *head;               /* the response's header lines, as stored and sent */
    size_t head_len;
    char *vary; /* the response's Vary value (NULL: none) */
    char *buf;  /* PX_BUFFER: the body so far (at most the route's max_object) */
    size_t len, cap;
    int lease_on_variant;              /* the lease is the variant key's (else the primary's) */
    char *location, *content_location; /* an unsafe request's response's, or NULL */
    char *target_path;                 /* the path and query sent to the origin (malloc) */
    char *detached;                    /* proxy_detach's copy of the headers and target, or NULL */
    const char *target;                /* the path and query sent to the origin, when detached */
    /* Another kind of request (proxy_hooks): its hooks and state, its keys' namespace (NULL:
     * PROXY_NS), the body sent instead of the client's, its entry's TTL (0: the route's). */
    const proxy_hooks *hooks;
    void *hook_arg;
    const char *ns;
    const char *body_out;
    size_t body_out_len;
    int64_t ttl_s;
    int tee;           /* a response that may be stored goes to the client as it comes (PX_TEE) */
    size_t max_buffer; /* PX_BUFFER's bound (0: the route's max_object) */
    int must_buffer;   /* the response is only of use whole: past max_buffer it is a 502 */
    /* From here on: buffers written before they are read, not zeroed per request. */
    upstream_header hdr[PROXY_HDRS_MAX];
    char host[256];
    char url_tag[STRATA_TAG_MAX + 1]; /* PROXY_URL_TAG of the host and path, set by the fetch */
    char tenant[STRATA_NAME_MAX + 1];
    char key[PROXY_KEY_CAP];  /* the primary key */
    char vkey[PROXY_KEY_CAP]; /* a variant's key, once a Vary marker was found */
};

/* ---- proxy.c ------------------------------------------------------------------------------ */

/* Answers the client from rec (found or just stored), as x (enum hc_xcache); fwd_status is the
 * origin's status when it was asked now (0: not), stored 1 when it was stored now. Consumes v
 * (the record's bytes; NULL: rec points into px's own buffers, copied into the answer). */
void proxy_answer_record(proxy_req *px, strata_value *v, const proxy_record *rec, int x,
                         int fwd_status, int stored);
/* Answers the client a JSON error made here (502/504/503), never stored. */
void proxy_answer_error(proxy_req *px, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The request is over (answered, and no background work left): releases everything. */
void proxy_req_free(proxy_req *px);
/* Copies what the origin request needs of the client's (headers, target) into px, so it can go
 * out after the client was answered. Returns 0 or -1 (out of memory). */
int proxy_detach(proxy_req *px);
/* X-Cache and Cache-Status for an answer of kind x (enum hc_xcache) with facts f (NULL: none). */
void proxy_cache_headers(proxy_req *px, int x, const hc_facts *f, int fwd_status, int stored);
/* The key looked up: a variant's, or the primary. */
strata_key proxy_key_used(const proxy_req *px);
/* Counts an answer of kind x (enum hc_xcache) with body_len bytes from the cache in px's route. */
void proxy_count_answer(proxy_req *px, int x, size_t body_len);
/* Hands px's client over to be answered: px no longer reaches it. */
req *proxy_take_client(proxy_req *px);
/* Looks px's key up and goes on as a cacheable GET does: an answer from the cache, or a fetch
 * through the key's lease (proxy.c). */
void proxy_lookup(proxy_req *px);
/* Reads what px needs of its client's request: headers, host, method, Cache-Control, tenant. */
void proxy_read_request(proxy_req *px);

/* The wall clock in seconds, and in milliseconds. */
int64_t proxy_now(void);
uint64_t proxy_now_ms(void);

/* ---- proxy_fetch.c ------------------------------------------------------------------------ */

/* Asks the origin for px's request (conditional when px->found has validators and
 * conditional is 1). The answer, the store and the lease's end follow from its callbacks. */
void proxy_fetch(proxy_req *px, int conditional);

/* ---- proxy_store.c ------------------------------------------------------------------------ */

/* The facts of the response just received, the route applied (override, ttl when the origin
 * says nothing, grace, stale_if_error). */
void proxy_route_facts(const proxy_route *r, hc_facts *f);
/* NULL if px's response (headers h[0..n), announced length cl or -1) may be stored, else why
 * not (a constant, for the log). */
const char *proxy_not_storable(proxy_req *px, const upstream_header *h, size_t n, long long cl);
/* Stores the record rec (encoded) under px's key: a fill of px's lease, else a plain set; tags:
 * the route's, the origin's Surrogate-Key / xkey / Cache-Tag, and the URL's tag. Then calls
 * done(px). */
void proxy_store(proxy_req *px, const proxy_record *rec, void (*done)(proxy_req *px));
/* Gives px's lease up, if it holds one (the fetch failed or was not stored). */
void proxy_lease_release(proxy_req *px);
/* The origin failed: keeps px's stale copy for the error TTL under the lease (strata_lease_fail)
 * so every waiter is answered it, then calls done(px). */
void proxy_keep_stale(proxy_req *px, void (*done)(proxy_req *px));
/* After a successful unsafe request: drops what it invalidates (RFC 9111 §4.4: the target,
 * Location, Content-Location, by their URL tags; the matching invalidation rule's tags and key
 * patterns), on an admin lane, then calls done(px) back on the loop, never during this call.
 * Returns 0, or -1 when it could not be queued (out of memory): done is not called. */
int proxy_invalidate(proxy_req *px, void (*done)(proxy_req *px));
/* The key px's lease is on. */
strata_key proxy_lease_key(const proxy_req *px);
/* A variant's key for the Vary value vary (proxy.c). Returns 0 or -1. */
int proxy_variant_key(proxy_req *px, const char *vary, size_t vary_len);
/* The URL tag of host and path (PROXY_URL_TAG, hashed when long) into out (STRATA_TAG_MAX + 1
 * bytes). */
void proxy_url_tag(const char *host, const char *path, size_t path_len, char *out);

#endif
