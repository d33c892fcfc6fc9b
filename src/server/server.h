/* server.h: the pieces of strata serve that every handler shares: the server, its workers, a
 * request in flight, and the ways to answer it. */
#ifndef STRATA_SERVER_H
#define STRATA_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <time.h>

#include <event2/event.h>
#include <jansson.h>
#include <strata/strata.h>

#include "auth.h"
#include "conn.h"
#include "limits.h"
#include "metrics.h"
#include "route.h"

typedef struct serve_config {
    char listen_host[256];
    int listen_port;
    int loopback; /* the listen address is a loopback address */
    unsigned workers;
    const char *tokens;      /* STRATA_TOKENS */
    const char *tokens_file; /* --tokens-file / STRATA_TOKENS_FILE */
    int insecure;
    int access_log;
    int log_level;     /* 0 error, 1 warning, 2 info, 3 debug */
    int metrics_auth;  /* /metrics needs a read token */
    int require_redis; /* health is unhealthy (503) when Redis is down */
    size_t max_body;   /* request bodies (batch JSON); values are limited by the cache */
    size_t max_headers;
    unsigned idle_timeout_s;  /* a connection idle (or a client this slow) is closed */
    unsigned max_connections; /* open connections per process (split between workers) */
    const char *rate_limits;  /* STRATA_RATE_LIMITS: the server's own rules */
    int rl_fallback;          /* STRATA_RATELIMIT_FALLBACK: local, open, closed */
    unsigned rl_instances;    /* STRATA_INSTANCES: instances sharing each limit */
    unsigned drain_timeout_s;
    strata_cache_config cache;
} serve_config;

typedef struct server server;

typedef struct worker {
    server *srv;
    unsigned index;
    pthread_t thread;
    struct event_base *base;
    struct evconnlistener *listener;
    const struct timeval *idle_tv; /* STRATA_IDLE_TIMEOUT, as a libevent common timeout */
    struct hconn *conns;           /* every connection the worker owns (conn.c) */
    unsigned nconns;               /* the open ones */
    conn_spares spares;            /* read buffers and request contexts between requests */
    strata_loop *loop;
    metrics_block *metrics;
    atomic_int inflight;
    time_t date_at; /* the second date was formatted for */
    char date[40];  /* the Date header's value */
} worker;

/* One offloaded call (offload()): fn runs on the offload thread, then done on w's loop. Queued on
 * the server; the HTTP fuzz target runs the queue itself. */
typedef struct offload_job {
    struct offload_job *next;
    worker *w;
    void (*fn)(void *);
    void (*done)(void *);
    void *arg;
} offload_job;

struct server {
    serve_config cfg;
    strata_cache *cache;
    strata_ratelimiter *rl; /* the server's own rules and /v1/ratelimit */
    worker *workers;
    pthread_rwlock_t auth_lock;
    auth_table *auth;
    atomic_int draining;
    uint64_t drain_deadline_ms; /* set before the loops are asked to stop; read by them */
    uint64_t started_ms;
    limit_rules rules;
    /* the offload thread: runs blocking library calls (admin) off the event loops */
    pthread_t offload_thread;
    pthread_mutex_t offload_lock;
    pthread_cond_t offload_cond;
    offload_job *jobs_head, *jobs_tail;
    int offload_stop;
};

/* A request being answered. Lives from the moment it arrives until its reply is sent, which
 * may be in a later callback (an asynchronous cache call, an offloaded job). */
typedef struct req {
    struct hconn *conn;
    worker *w;
    unsigned method;                  /* one M_* bit */
    int http10;                       /* an HTTP/1.0 client */
    int close;                        /* close the connection after the answer */
    char tenant[STRATA_NAME_MAX + 1]; /* the tenant the request acts in */
    int role;                         /* the caller's role */
    int tenant_bound;                 /* the token is bound to tenant */
    struct evkeyvalq *query;          /* parsed lazily */
    uint64_t start_ns;
    int status;
    size_t bytes_out;
    const char *tier; /* "l1", "l2", "miss" or NULL, for metrics */
    size_t out_hlen;
    /* Not zeroed per request (the fields above are): */
    char out_hdr[1024]; /* headers added by add_header, "Name: value\r\n" each */
    route r;            /* its 4 KiB key buffer */
} req;

/* ---- answering (http.c): each sends the reply, records it, and frees the request ---------- */

void reply_json(req *q, int status, json_t *body); /* steals body */
void reply_error(req *q, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void reply_empty(req *q, int status);
/* The value's bytes as the body, without copying (the value is released when sent). */
void reply_value(req *q, int status, strata_value *v);
void reply_text(req *q, int status, const char *content_type, const char *body, size_t len);

void add_header(req *q, const char *name, const char *value);
const char *get_header(req *q, const char *name);
/* A query parameter (decoded), or NULL. */
const char *get_query(req *q, const char *name);
/* The request body (contiguous), or NULL with *len 0. */
const char *get_body(req *q, size_t *len);

/* Maps a library status to an HTTP error reply. */
void reply_status(req *q, int rc);
/* The standard reason phrase for an HTTP status. */
const char *http_reason(int status);

/* Answers a request the connection layer parsed (serve.c): routing, authentication, limits,
 * then the handler. path is the target's path, still percent-encoded. */
void serve_request(req *q, const char *path);

/* ---- handlers ----------------------------------------------------------------------------- */

void kv_handle(req *q);
void mget_handle(req *q);
void mset_handle(req *q);
void invalidate_handle(req *q);
void ratelimit_handle(req *q);
void session_handle(req *q);
/* Checks the server's own rate-limit rules for q, then calls then(q) (or answers 429). */
void limits_apply(req *q, void (*then)(req *q));
void admin_livez(req *q);
void admin_readyz(req *q);
void admin_health(req *q);
void admin_stats(req *q);
void admin_clear(req *q);
void admin_keys(req *q);
void admin_inspect(req *q);
void admin_metrics(req *q);

/* Runs fn(arg) on the offload thread, then done(arg) back on q's worker loop. */
void offload(req *q, void (*fn)(void *), void (*done)(void *), void *arg);

/* ---- logging (log.c) ---------------------------------------------------------------------- */

enum { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };
void log_set_level(int level);
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The library's log callback. */
void log_from_lib(int level, const char *msg, void *arg);

/* Applies STRATA_NAMESPACES (namespaces.c). Returns 0, or -1 with the reason in err. */
int namespaces_apply(strata_l1 *l1, const char *spec, char *err, size_t cap);

/* The settings before the environment and flags are read (serve.c). */
void serve_defaults(serve_config *c);

/* strata serve's entry point (serve.c): returns the process exit code. */
int serve_main(int argc, char **argv);

#endif
