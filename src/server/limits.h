/* limits.h: rate limits over HTTP: the /v1/ratelimit endpoint and the rules the server applies
 * to its own API. */
#ifndef STRATA_SERVER_LIMITS_H
#define STRATA_SERVER_LIMITS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <strata/strata.h>

enum limit_by { BY_IP, BY_TOKEN, BY_TENANT, BY_HEADER };

#define LIMIT_NAME_MAX 32 /* a rule's name, with its NUL: printable ASCII */

typedef struct limit_rule {
    char name[LIMIT_NAME_MAX];
    int route; /* a route id, or -1 for every route */
    strata_rl_params p;
    int by;
    char header[64]; /* BY_HEADER: which one */
    int shadow;      /* count, never reject */
    atomic_uint_fast64_t allowed, limited, near_limit, shadow_limited;
} limit_rule;

typedef struct limit_rules {
    limit_rule *r;
    size_t n;
} limit_rules;

/* Parses STRATA_RATE_LIMITS:
 *   NAME:route=kv,limit=100,period=1,burst=20,by=ip[,shadow=true];NAME2:...
 * by: ip | token | tenant | header:X-Name. route: a route name (kv, mget, ...) or *. NAME is
 * printable ASCII (it is the policy's name in the RateLimit fields).
 * Returns 0, or -1 with a message naming the rule and what is wrong. */
int limits_parse(const char *spec, limit_rules *out, char *err, size_t errcap);
void limits_free(limit_rules *rules);

/* Prometheus series for the rules. */
void limits_render(struct evbuffer *out, const limit_rules *rules);

#endif
