/* config.h: strata serve's settings: defaults, then the environment, then the flags.
 *
 * Read once at start into one struct that the server keeps; nothing reads the environment
 * afterwards (STRATA_NAMESPACES is applied by namespaces.c at start too). */
#ifndef STRATA_SERVER_CONFIG_H
#define STRATA_SERVER_CONFIG_H

#include <stddef.h>

#include <strata/strata.h>

#include "proxy/proxy_config.h"

typedef struct serve_config {
    char listen_host[256];
    int listen_port;
    char admin_host[256]; /* STRATA_ADMIN_LISTEN: strata's own API alone (admin_port 0: none) */
    int admin_port;
    int loopback; /* the listen addresses are loopback addresses */
    unsigned workers;
    char workers_from[64];   /* where the worker count came from, for the start line */
    const char *tokens;      /* STRATA_TOKENS */
    const char *tokens_file; /* --tokens-file / STRATA_TOKENS_FILE */
    int insecure;
    int access_log;
    int log_level;     /* 0 error, 1 warning, 2 info, 3 debug */
    int metrics_auth;  /* /metrics needs a read token */
    int require_redis; /* health is unhealthy (503) when Redis is down */
    size_t max_body;   /* request bodies (batch JSON); values are limited by the cache */
    size_t max_headers;
    size_t body_budget;       /* request bodies held at once per worker (STRATA_BODY_BUDGET) */
    unsigned idle_timeout_s;  /* a connection idle (or a client this slow) is closed */
    unsigned body_timeout_s;  /* a body must arrive whole this long after its head (408) */
    unsigned max_connections; /* open connections per process (split between workers) */
    const char *rate_limits;  /* STRATA_RATE_LIMITS: the server's own rules */
    int rl_fallback;          /* STRATA_RATELIMIT_FALLBACK: local, open, closed */
    unsigned rl_instances;    /* STRATA_INSTANCES: instances sharing each limit */
    unsigned drain_timeout_s;
    unsigned admin_threads; /* STRATA_ADMIN_THREADS: threads of the bulk admin lane */
    unsigned admin_queue;   /* STRATA_ADMIN_QUEUE: admin jobs waiting per lane; a quarter each
                               tenant */
    uint64_t lease_max_ms;  /* STRATA_LEASE_MAX: the longest X-Cache-Lease */
    uint64_t lease_wait_ms; /* STRATA_LEASE_WAIT: the wait of a lease GET without X-Cache-Wait */
    unsigned lease_waiters; /* STRATA_LEASE_WAITERS: requests waiting for a lease holder at once */
    strata_cache_config cache;
    /* The caching proxy's origins and routes (not yet routed to): from --config FILE, or
     * --upstream URL's one route; flags over STRATA_CONFIG / STRATA_UPSTREAM. NULL: no proxy. */
    const char *proxy_file; /* the file loaded, for SIGHUP; NULL with --upstream */
    const char *proxy_from; /* "--config", "STRATA_UPSTREAM", ...: where it came from */
    proxy_config *proxy;    /* the server's; proxy_config_free at stop */
} serve_config;

/* The longest X-Cache-Wait and STRATA_LEASE_WAIT: a waiting request holds its connection and,
 * at a drain, its worker (which stops only once every wait has answered). */
#define SERVE_LEASE_WAIT_MAX_MS 60000u

/* The settings before the environment and flags are read. */
void serve_defaults(serve_config *c);

/* Defaults, then the environment, then argv's flags (flags win), then the proxy's configuration
 * file or --upstream (loaded into c->proxy). Returns 0, 1 (--help was shown), or -1 (the reason
 * was printed). */
int serve_config_load(serve_config *c, int argc, char **argv);

/* The loader's options for strata serve: route rate limits checked with limits_parse. */
extern proxy_load_options serve_proxy_options;

#endif
