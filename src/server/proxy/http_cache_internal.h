/* http_cache_internal.h: what the http_cache*.c files share: spans, case-insensitive names,
 * header lookup, the list and directive tokenisers (RFC 9110 §5.6), delta-seconds.
 *
 * http_cache_parse.c defines these and depends on no other file of the module; the others
 * (http_cache.c, http_cache_vary.c, http_cache_cond.c, http_cache_status.c) use them and never
 * each other, so the module has no loop of calls between its files. */
#ifndef STRATA_SERVER_PROXY_HTTP_CACHE_INTERNAL_H
#define STRATA_SERVER_PROXY_HTTP_CACHE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "proxy/http_cache.h"

typedef struct hc__span {
    const char *p;
    size_t len;
} hc__span;

/* 1 if s[0..len) equals the lower-case literal lit, ASCII case-insensitively. */
int hc__ieq(const char *s, size_t len, const char *lit);
/* The first header named name (any case), or NULL. */
const char *hc__header(const upstream_header *h, size_t n, const char *name);
/* 1 for SP and HTAB (OWS). */
int hc__ows(char c);

/* The next element of a comma-separated list (RFC 9110 §5.6.1) in [*p, end): empty elements are
 * skipped, OWS trimmed, commas inside quoted strings are not separators. Returns 1 with the
 * element in *out and *p past it, or 0 at the end. */
int hc__list_next(const char **p, const char *end, hc__span *out);

/* The next Cache-Control directive in [*p, end): its name, and its argument (token, or the
 * content of a quoted string with *quoted = 1; len 0 and *has_arg = 0 without one). Garbage up to
 * the next comma is skipped. Returns 1, or 0 at the end. */
int hc__directive_next(const char **p, const char *end, hc__span *name, hc__span *arg,
                       int *has_arg);

/* delta-seconds (RFC 9111 §1.2.2): 1*DIGIT, saturated at HC_MAX_DELTA. Returns 0 or -1. */
int hc__delta(const char *s, size_t len, int64_t *out);

/* The field names listed by no-cache="..." and private="..." in every Cache-Control line of
 * h[0..n), into out (HC_MAX_LISTED). Returns the count or HC_ETOOMANY. */
int hc__cc_listed(const upstream_header *h, size_t n, hc__span *out);
/* 1 if name is one of list[0..count) (case-insensitive). */
int hc__span_listed(const char *name, const hc__span *list, int count);

#endif
