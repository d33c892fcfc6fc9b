/* cache_key.h: the cache key of a proxied request, and the tags and key patterns of its route's
 * templates.
 *
 * A key is text, built from the matched route and the request:
 *
 *     METHOD SP host path ["?" query] *(SP "h:" name ["=" value]) [SP "w:" window]
 *     GET api.example.com/tasks/7?a=1&b=2 h:accept-language=en w:57600013
 *
 * - METHOD: the request's, HEAD keyed as GET (a HEAD is answered from the stored GET);
 * - host: the Host header in lower case ("" without one), port kept;
 * - path: the request's path with its percent-encoding normalised (route_match.h), or, when the
 *   route lists key.path_params, its pattern with those parameters filled in and the others left
 *   as "{name}" (their values then share one entry);
 * - query: the parameters, each name and value normalised, sorted, the route's keep or drop list
 *   applied (by normalised name); absent when none is left or the route says query: none;
 * - h: each header the route names (lower case, sorted), its values joined with ',', bytes
 *   outside printable ASCII and '%' escaped; "h:name" alone when the request has none;
 * - w: floor(now / window) when the route has a time window.
 *
 * A key longer than key_max is hashed behind a readable prefix: "METHOD SP host path" (cut to
 * fit), '#', and the SHA-256 of the whole key in hex, so a purge by path pattern
 * ("GET api.example.com/tasks/..." as a glob) still finds it. Pure functions: no clock (now is
 * given), no allocation but OpenSSL's digest context for a key that is hashed.
 */
#ifndef STRATA_SERVER_PROXY_CACHE_KEY_H
#define STRATA_SERVER_PROXY_CACHE_KEY_H

#include <stddef.h>
#include <stdint.h>

#include "proxy_config.h"

#define PROXY_KEY_HASH_LEN     65  /* '#' and 64 hex digits */
#define PROXY_KEY_MIN          128 /* the smallest key_max */
#define PROXY_QUERY_PARAMS_MAX 128

typedef struct proxy_key_request {
    const char *method;
    const char *host; /* the Host header, or NULL */
    const char *path; /* the raw path, without the query */
    size_t path_len;
    const char *query; /* what follows '?', or NULL */
    size_t query_len;
    const upstream_header *headers; /* the request's headers (names in any case) */
    size_t nheaders;
    uint64_t now_s; /* the clock, for a route with a window */
} proxy_key_request;

/* Writes r's key for q (m: what proxy_config_match captured) into out (cap >= key_max + 1 bytes,
 * NUL-terminated). Returns the key's length (at most key_max), or -1 when key_max < PROXY_KEY_MIN,
 * cap is too small, the query has more than PROXY_QUERY_PARAMS_MAX parameters, or the digest
 * fails (the request is then passed through uncached).
 *
 *     char key[513];
 *     long n = proxy_cache_key(route, &m, &q, 512, key, sizeof key);
 */
long proxy_cache_key(const proxy_route *r, const proxy_params *m, const proxy_key_request *q,
                     size_t key_max, char *out, size_t cap);

/* Tag i of route r with m's values ("task:{id}" -> "task:7"). Returns its length, or -1 when it
 * does not fit in cap (NUL included). */
long proxy_route_tag(const proxy_route *r, size_t i, const proxy_params *m, char *out, size_t cap);

/* Tag i and key pattern i of an invalidation rule; in a key pattern the values' glob characters
 * are escaped: with id "a*", a pattern ending in /tasks/{id} drops that task's keys only. */
long proxy_invalidation_tag(const proxy_invalidation *v, size_t i, const proxy_params *m, char *out,
                            size_t cap);
long proxy_invalidation_key(const proxy_invalidation *v, size_t i, const proxy_params *m, char *out,
                            size_t cap);

#endif
