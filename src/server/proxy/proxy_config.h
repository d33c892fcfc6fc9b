/* proxy_config.h: the caching proxy's configuration file (origins, routes, invalidation rules),
 * loaded and validated into an immutable model.
 *
 * The file is YAML (docs/operations.md, "The configuration file"), parsed by libfyaml into a
 * document tree and walked here against the schema: an unknown key, a value of the wrong kind, a
 * route claiming one of strata's own paths, a secret written into the file are each an error
 * naming the file, the line and column, and what was expected. Nothing is half-loaded: a load
 * gives a whole model or none.
 *
 * Ownership: proxy_config_load* hand the caller a model it frees with proxy_config_free (NULL is a
 * no-op). The model is read-only once made, so threads may share it; everything it points to
 * (routes, origins, their strings and upstream_origin objects) lives as long as the model.
 * Reloading makes a new model; the caller swaps pointers (proxy_config_reload).
 *
 *     proxy_config *pc;
 *     char err[512];
 *     proxy_load_options o = {.check_rule = my_rule_check};
 *     if (proxy_config_load_file("/etc/strata/proxy.yaml", &o, &pc, err, sizeof err) != 0)
 *         die(err); // "/etc/strata/proxy.yaml:12:9: routes[1] (tasks): unknown key "tll"; ..."
 *     for (size_t i = 0; i < pc->nroutes; i++) puts(pc->routes[i].name);
 *     proxy_config_free(pc);
 */
#ifndef STRATA_SERVER_PROXY_CONFIG_H
#define STRATA_SERVER_PROXY_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "../upstream/upstream.h"
#include "route_match.h"

/* HTTP methods as a bit set (the same bits as route.h's M_*, which this layer does not see). */
enum proxy_method {
    PROXY_M_GET = 1 << 0,
    PROXY_M_POST = 1 << 1,
    PROXY_M_HEAD = 1 << 2,
    PROXY_M_PUT = 1 << 3,
    PROXY_M_DELETE = 1 << 4,
    PROXY_M_OPTIONS = 1 << 5,
    PROXY_M_PATCH = 1 << 8,
};

/* "GET" -> PROXY_M_GET, ...; 0 for a method the proxy does not name. */
unsigned proxy_method_bit(const char *method, size_t len);

enum proxy_rfc9111 {
    PROXY_RFC9111_OBEY = 0, /* the origin's Cache-Control and Expires decide; the route fills in */
    PROXY_RFC9111_OVERRIDE = 1, /* the route's settings decide whatever the origin says */
};

/* Statuses 100..599 as a bit set. */
typedef struct proxy_statuses {
    uint64_t bits[8];
} proxy_statuses;

/* 1 if status is in s. */
int proxy_status_in(const proxy_statuses *s, int status);

typedef struct proxy_origin {
    char *name;
    char *url;
    upstream_options opts; /* ca_file and server_name point into the model */
    char *token_env;       /* the variable holding the origin's token, or NULL */
    char *token_header;    /* where it is sent ("Authorization": as "Bearer <token>") */
    upstream_origin *up;   /* made at load from url and opts (the URL and CA file are checked) */
    unsigned breaker_failures; /* failures in a row that open its breaker (default 5) */
    int line;
} proxy_origin;

/* What a request matches: methods, an optional host, a path pattern. */
typedef struct proxy_match_rule {
    unsigned methods;
    char
        *host; /* lower case; NULL: any. Without a port it matches the request's host on any port */
    proxy_pattern path;
} proxy_match_rule;

enum proxy_query_mode {
    PROXY_QUERY_ALL = 0,  /* every parameter, sorted */
    PROXY_QUERY_KEEP = 1, /* only the listed ones, sorted */
    PROXY_QUERY_DROP = 2, /* all but the listed ones, sorted */
    PROXY_QUERY_NONE = 3, /* no query in the key */
};

typedef struct proxy_key_spec {
    int path_params_set;  /* key.path_params given: the path is the pattern, filled in with ... */
    unsigned path_params; /* ... these parameters (bit i: parameter i); the others stay "{name}" */
    int query;            /* enum proxy_query_mode */
    char **query_names;   /* KEEP / DROP: the names (decoded text, as in the request) */
    size_t nquery_names;
    char **headers; /* request headers whose values are part of the key, lower case, sorted */
    size_t nheaders;
    uint64_t window_s; /* 0: none; else the key carries floor(now / window_s) */
} proxy_key_spec;

/* Who may use a route where strata has tokens (X-Strata-Token): anyone, or the role. */
enum proxy_auth { PROXY_AUTH_NONE = 0, PROXY_AUTH_READ = 1, PROXY_AUTH_WRITE = 2 };

/* What a route serves: an HTTP origin's responses cached by RFC 9111 (and the route's rules), or
 * an OpenAI-compatible API whose answers are cached by their requests (src/server/llm/). */
enum proxy_kind { PROXY_KIND_HTTP = 0, PROXY_KIND_OPENAI = 1 };

/* An openai route's TTL when neither the route nor LLM_CACHE_TTL says (seconds). */
#define PROXY_LLM_TTL_DEFAULT_S 3600
/* ... and a vector's: a day (an input's vector does not change while its model does not). */
#define PROXY_EMBEDDING_TTL_DEFAULT_S 86400

/* The largest response body a route stores (bytes): its default, and the most it may say (the
 * rest of a cached value's megabyte is the record's head). */
#define PROXY_MAX_OBJECT_DEFAULT (512u * 1024)
#define PROXY_MAX_OBJECT_LIMIT   (960ul * 1024)

typedef struct proxy_route {
    char *name;
    int line;
    proxy_match_rule match;
    const proxy_origin *origin;
    int rfc9111; /* enum proxy_rfc9111 */
    int ttl_set; /* ttl given (required with override) */
    uint64_t ttl_ms, grace_ms, stale_if_error_ms, error_ttl_ms;
    proxy_statuses error_statuses;     /* default 500-599 */
    proxy_statuses cacheable_statuses; /* default RFC 9110's heuristically cacheable ones */
    proxy_key_spec key;
    proxy_template *tags;
    size_t ntags;
    char *rate_limit;   /* a STRATA_RATE_LIMITS rule, "NAME:limit=..,period=..[,...]", or NULL */
    int auth;           /* enum proxy_auth */
    size_t max_object;  /* bodies larger than this stream through, not stored */
    int kind;           /* enum proxy_kind */
    char *strip_prefix; /* taken off the path before the origin's base path is put before it */
    /* openai routes */
    int llm_cache;             /* chat and completion answers are cached (LLM_CACHE_ENABLED) */
    int embedding_cache;       /* embeddings are cached per input (EMBEDDING_CACHE_ENABLED) */
    uint64_t embedding_ttl_ms; /* how long a vector is kept (EMBEDDING_CACHE_TTL) */
    int cache_sampled; /* answers to sampled requests (temperature > 0, no seed) are cached too */
} proxy_route;

/* After a successful unsafe request matching the rule: drop these tags and key patterns. */
typedef struct proxy_invalidation {
    char *name;
    int line;
    proxy_match_rule match; /* methods: PUT, PATCH, POST, DELETE (default: all four) */
    proxy_template *tags;
    size_t ntags;
    proxy_template *keys; /* glob patterns over cache keys (cache_key.h's format) */
    size_t nkeys;
} proxy_invalidation;

/* What a model costs, in USD per million tokens (openai routes' money saved). */
typedef struct proxy_price {
    char *model; /* a model name, or its start: "gpt-4o-mini" prices "gpt-4o-mini-2024-07-18" */
    double input, output;
} proxy_price;

typedef struct proxy_config {
    char *source; /* the file's path, or "--upstream" */
    proxy_origin *origins;
    size_t norigins;
    proxy_route *routes;
    size_t nroutes;
    proxy_invalidation *invalidations;
    size_t ninvalidations;
    proxy_price *prices;
    size_t nprices;
} proxy_config;

/* What the loader is handed by its caller (a lower layer never names a higher one). */
typedef struct proxy_load_options {
    /* Checks a route's rate-limit rule, "NAME:limit=100,period=1,...", with the server's own rule
     * parser (limits_parse); 0, or -1 with the reason in err. NULL: rules are not checked. */
    int (*check_rule)(const char *rule, char *err, size_t cap);
    /* openai routes' defaults where the file says nothing (LLM_CACHE_TTL, LLM_CACHE_ENABLED):
     * 0 and 0: PROXY_LLM_TTL_DEFAULT_S, enabled. */
    uint64_t llm_ttl_ms;
    int llm_cache_off;
    /* The same for embeddings (EMBEDDING_CACHE_TTL, EMBEDDING_CACHE_ENABLED): 0 and 0:
     * PROXY_EMBEDDING_TTL_DEFAULT_S, enabled. */
    uint64_t embedding_ttl_ms;
    int embedding_cache_off;
} proxy_load_options;

/* The largest configuration file read (bytes). */
#define PROXY_CONFIG_MAX_BYTES (4 * 1024 * 1024)

/* Loads the YAML file at path. Returns 0 and sets *out, or -1 with "FILE:LINE:COL: what is wrong;
 * what was expected" in err (cap bytes). */
int proxy_config_load_file(const char *path, const proxy_load_options *o, proxy_config **out,
                           char *err, size_t cap);

/* The same from bytes in memory; name stands for the file in messages. */
int proxy_config_load_bytes(const char *name, const char *data, size_t len,
                            const proxy_load_options *o, proxy_config **out, char *err, size_t cap);

/* `--upstream URL` alone: one origin ("upstream") and one route ("default": every method, every
 * path: "/" then "*") that obeys the origin's headers. Returns 0, or -1 with the reason in err. */
int proxy_config_from_upstream(const char *url, proxy_config **out, char *err, size_t cap);

/* `--llm-upstream URL` (with `--upstream` too when upstream is not NULL): an origin "llm" at url
 * (its key from the variable key_env when that is not NULL) and a route "llm" of kind openai
 * serving /v1/<x> as url/<x>; then upstream's route, as proxy_config_from_upstream. Returns 0, or
 * -1 with the reason in err. */
int proxy_config_from_llm_upstream(const char *url, const char *key_env, const char *upstream,
                                   const proxy_load_options *o, proxy_config **out, char *err,
                                   size_t cap);

/* Loads path into a new model; on success frees *cur and sets it, on error leaves *cur as it was.
 * Returns 0 or -1 (err as proxy_config_load_file). The caller makes sure no thread still reads
 * the old model (today nothing reads it while requests run). */
int proxy_config_reload(proxy_config **cur, const char *path, const proxy_load_options *o,
                        char *err, size_t cap);

void proxy_config_free(proxy_config *c);

/* The route, and its captures, that a request (method, Host, raw path without the query) goes
 * to: the first whose methods, host and path match, or NULL. Never allocates. */
const proxy_route *proxy_config_match(const proxy_config *c, const char *method, const char *host,
                                      const char *path, size_t path_len, proxy_params *m);

/* The price of model: the entry whose name is the longest start of model, or NULL. */
const proxy_price *proxy_config_price(const proxy_config *c, const char *model);

/* The first invalidation rule an unsafe request matches, or NULL. */
const proxy_invalidation *proxy_config_match_invalidation(const proxy_config *c, const char *method,
                                                          const char *host, const char *path,
                                                          size_t path_len, proxy_params *m);

#endif
