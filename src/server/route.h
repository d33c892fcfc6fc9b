/* route.h: which route an HTTP request goes to (the table is routes.h), and its path
 * parameters, decoded and checked.
 *
 * The matcher knows the rows' patterns, roles and names but no handler: metrics, rate-limit rules
 * and the command line use it without pulling the handlers in (dispatch.c pairs ids with them). */
#ifndef STRATA_SERVER_ROUTE_H
#define STRATA_SERVER_ROUTE_H

#include <stddef.h>

#include <strata/key.h>

#include "routes.h"

#define ROUTE_ENUM(id, name, methods, pattern, role, flags, handler) R_##id,
/* Ids without a row, counted like the rows: R_PROXY, a request the caching proxy forwards (the
 * configuration file's routes decide, proxy.h); R_PURGE_URL, the PURGE method on any URL; R_LLM,
 * a request to a route of kind openai (llm_gateway.h). */
enum route_id { R_NOT_FOUND = 0, STRATA_ROUTES(ROUTE_ENUM) R_PROXY, R_PURGE_URL, R_LLM, R_COUNT };
#undef ROUTE_ENUM

/* HTTP methods as a bit set (the same bits as libevent's EVHTTP_REQ_*). */
enum route_method {
    M_GET = 1 << 0,
    M_POST = 1 << 1,
    M_HEAD = 1 << 2,
    M_PUT = 1 << 3,
    M_DELETE = 1 << 4,
    M_OPTIONS = 1 << 5,
    M_TRACE = 1 << 6,
    M_CONNECT = 1 << 7,
    M_PATCH = 1 << 8,
    M_PURGE = 1 << 9, /* the proxy's purge of a URL (not libevent's) */
};

#define ROUTE_KEY_MAX STRATA_KEY_MAX_LIMIT

typedef struct route {
    int id;
    unsigned methods;             /* the methods the route accepts (for 405 and Allow) */
    int role;                     /* enum route_role */
    unsigned flags;               /* enum route_flag */
    char ns[STRATA_NAME_MAX + 1]; /* decoded namespace, if the route has one */
    char key[ROUTE_KEY_MAX + 1];  /* decoded key (NUL-terminated, UTF-8, no controls) */
    size_t key_len;
    const char *error; /* why a path parameter was refused, or NULL */
    const char *error_code;
} route;

/* Matches path (the URI's path, still percent-encoded, without the query) against the routes.
 * Sets r->id (R_NOT_FOUND if nothing matches). A matching route whose parameters are invalid
 * (bad percent-encoding, not UTF-8, control characters, a bad namespace name, a key over
 * key_max bytes) sets r->error / r->error_code and the handler answers 400 (414 for a key over the
 * limit: see route_error_status). Never reads past path's NUL, never writes past r. */
void route_match(const char *path, size_t key_max, route *r);

/* Sets r to no route (R_NOT_FOUND, nothing decoded). */
void route_none(route *r);

/* The HTTP status for a route's parameter error. */
int route_error_status(const route *r);

/* A name for metrics and logs ("kv", "mget", ...): a bounded label set, never a key. */
const char *route_name(int id);
/* Writes the methods of mask as an Allow header's value ("GET, HEAD") into out (96 bytes are
 * enough). */
void route_allow(unsigned methods, char *out, size_t cap);

/* Percent-decodes s[0..n) into out (cap bytes, NUL-terminated), strictly: '%' must be followed by
 * two hex digits; '+' stays '+'. Returns the decoded length, or -1 if malformed or too long. */
long route_percent_decode(const char *s, size_t n, char *out, size_t cap);

/* 1 if s[0..n) is valid UTF-8 (no overlongs, no surrogates) without control characters. */
int route_text_ok(const char *s, size_t n);

/* 1 if s[0..n) is valid UTF-8, control characters allowed (JSON can carry them escaped). */
int route_utf8_ok(const char *s, size_t n);

#endif
