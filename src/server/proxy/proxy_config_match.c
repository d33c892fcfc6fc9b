/* proxy_config_match.c: which route (or invalidation rule) of a loaded configuration a request
 * goes to.
 *
 * Rules are tried in the file's order and the first whose methods, host and path all match wins,
 * as a route table is read by a person: a specific route goes above a catch-all. The work per
 * rule is a bit test, a host comparison and the pattern walk of route_match.c; nothing is
 * allocated, the captures go into the caller's fixed array.
 */
#include <string.h>
#include <strings.h>

#include "proxy_config.h"

unsigned proxy_method_bit(const char *method, size_t len)
{
    static const struct {
        const char *name;
        unsigned bit;
    } methods[] = {{"GET", PROXY_M_GET},       {"HEAD", PROXY_M_HEAD},
                   {"POST", PROXY_M_POST},     {"PUT", PROXY_M_PUT},
                   {"DELETE", PROXY_M_DELETE}, {"OPTIONS", PROXY_M_OPTIONS},
                   {"PATCH", PROXY_M_PATCH}};
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (strlen(methods[i].name) == len && memcmp(methods[i].name, method, len) == 0)
            return methods[i].bit;
    return 0;
}

int proxy_status_in(const proxy_statuses *s, int status)
{
    if (status < 100 || status > 599)
        return 0;
    unsigned i = (unsigned)(status - 100);
    return (int)((s->bits[i / 64] >> (i % 64)) & 1);
}

/* 1 if the request's Host (any case; a port is ignored unless the rule names one) is the rule's. */
static int host_is(const char *want, const char *host)
{
    if (want == NULL)
        return 1;
    if (host == NULL)
        return 0;
    size_t n = strlen(host);
    if (strchr(want, ':') == NULL) {
        const char *colon = strrchr(host, ':');
        /* "[::1]:8080" has its port after the bracket; "[::1]" has none */
        if (colon != NULL && (host[0] != '[' || colon > strchr(host, ']')))
            n = (size_t)(colon - host);
    }
    return strlen(want) == n && strncasecmp(want, host, n) == 0;
}

static int rule_matches(const proxy_match_rule *r, unsigned method, const char *host,
                        const char *path, size_t len, proxy_params *m)
{
    return (r->methods & method) != 0 && host_is(r->host, host) &&
           proxy_pattern_match(&r->path, path, len, m);
}

const proxy_route *proxy_config_match(const proxy_config *c, const char *method, const char *host,
                                      const char *path, size_t path_len, proxy_params *m)
{
    unsigned bit = method ? proxy_method_bit(method, strlen(method)) : 0;
    for (size_t i = 0; c != NULL && bit != 0 && i < c->nroutes; i++)
        if (rule_matches(&c->routes[i].match, bit, host, path, path_len, m))
            return &c->routes[i];
    return NULL;
}

const proxy_invalidation *proxy_config_match_invalidation(const proxy_config *c, const char *method,
                                                          const char *host, const char *path,
                                                          size_t path_len, proxy_params *m)
{
    unsigned bit = method ? proxy_method_bit(method, strlen(method)) : 0;
    for (size_t i = 0; c != NULL && bit != 0 && i < c->ninvalidations; i++)
        if (rule_matches(&c->invalidations[i].match, bit, host, path, path_len, m))
            return &c->invalidations[i];
    return NULL;
}
