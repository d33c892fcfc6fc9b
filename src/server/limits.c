/* limits.c: rate limits over HTTP.
 *
 *   POST /v1/ratelimit/{key}   {"limit":1000,"period":60,"burst":10,"cost":1}
 *        200 {"allowed":true,"limit":..,"remaining":..,"reset":..,"retry_after":..}, or 429
 *        with the same body; RateLimit-Limit / -Remaining / -Reset, RateLimit-Policy and
 *        RateLimit (policy "default") on both, Retry-After on 429.
 *
 * and the rules the server applies to its own API (STRATA_RATE_LIMITS), keyed by client address,
 * token, tenant or a header, checked before the handler runs. Both go through the library's one
 * mechanism (strata_ratelimit_async: GCRA in Redis, remembered denials, local fallback), which the
 * coming reverse proxy applies per route the same way; a rule's name is its policy's name in the
 * RateLimit fields. Times in the API are seconds, as the RateLimit header draft uses them; keys
 * of the server's own rules start with a control byte, which HTTP keys cannot contain, so no
 * client can reach or reset them through the endpoint.
 */
#include <arpa/inet.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "auth.h"
#include "limits.h"
#include "route.h"
#include "handlers.h"

/* ---- rules -------------------------------------------------------------------------------- */

static int route_by_name(const char *s)
{
    if (strcmp(s, "*") == 0)
        return -1;
    for (int i = 1; i < R_COUNT; i++)
        if (strcmp(route_name(i), s) == 0)
            return i;
    return -2;
}

static int rule_field(limit_rule *r, const char *k, const char *v, char *err, size_t errcap)
{
    char *end;
    double d = strtod(v, &end);
    int num_ok = *v && *end == '\0' && d >= 0;
    if (strcmp(k, "route") == 0) {
        if ((r->route = route_by_name(v)) == -2)
            return snprintf(err, errcap, "rule %s: unknown route %s", r->name, v), -1;
    } else if (strcmp(k, "limit") == 0 && num_ok && d >= 1) {
        r->p.limit = (uint64_t)d;
    } else if (strcmp(k, "period") == 0 && num_ok && d > 0) {
        r->p.period_ms = (uint64_t)ceil(d * 1000);
    } else if (strcmp(k, "burst") == 0 && num_ok && d >= 1) {
        r->p.burst = (uint64_t)d;
    } else if (strcmp(k, "by") == 0) {
        if (strcmp(v, "ip") == 0)
            r->by = BY_IP;
        else if (strcmp(v, "token") == 0)
            r->by = BY_TOKEN;
        else if (strcmp(v, "tenant") == 0)
            r->by = BY_TENANT;
        else if (strncmp(v, "header:", 7) == 0 && v[7] && strlen(v + 7) < sizeof r->header)
            r->by = BY_HEADER, strcpy(r->header, v + 7);
        else
            return snprintf(err, errcap, "rule %s: by must be ip, token, tenant or header:NAME",
                            r->name),
                   -1;
    } else if (strcmp(k, "shadow") == 0 && (!strcmp(v, "true") || !strcmp(v, "false"))) {
        r->shadow = strcmp(v, "true") == 0;
    } else {
        return snprintf(err, errcap, "rule %s: bad %s=%s", r->name, k, v), -1;
    }
    return 0;
}

static int parse_rule(char *text, limit_rule *r, char *err, size_t errcap)
{
    char *colon = strchr(text, ':');
    if (colon == NULL || colon == text || (size_t)(colon - text) >= sizeof r->name)
        return snprintf(err, errcap, "expected NAME:route=...,limit=...,period=...: %.60s", text),
               -1;
    memset(r, 0, sizeof *r);
    memcpy(r->name, text, (size_t)(colon - text));
    for (const unsigned char *c = (const unsigned char *)r->name; *c; c++)
        if (*c < 0x20 || *c > 0x7e) /* it is sent in RateLimit-Policy, a Structured Fields string */
            return snprintf(err, errcap, "rule names are printable ASCII: %.60s", text), -1;
    r->route = -1;
    for (char *f = strtok(colon + 1, ","); f != NULL; f = strtok(NULL, ",")) {
        char *eq = strchr(f, '=');
        if (eq == NULL)
            return snprintf(err, errcap, "rule %s: expected key=value, got %s", r->name, f), -1;
        *eq = '\0';
        if (rule_field(r, f, eq + 1, err, errcap) != 0)
            return -1;
    }
    if (r->p.limit == 0 || r->p.period_ms == 0)
        return snprintf(err, errcap, "rule %s: limit and period are required", r->name), -1;
    return 0;
}

int limits_parse(const char *spec, limit_rules *out, char *err, size_t errcap)
{
    memset(out, 0, sizeof *out);
    if (spec == NULL || *spec == '\0')
        return 0;
    char *copy = strdup(spec), *save = NULL;
    size_t cap = 1;
    for (const char *p = spec; *p; p++)
        cap += *p == ';';
    out->r = calloc(cap, sizeof *out->r);
    int rc = copy && out->r ? 0 : -1;
    for (char *t = copy ? strtok_r(copy, ";", &save) : NULL; rc == 0 && t != NULL;
         t = strtok_r(NULL, ";", &save))
        rc = parse_rule(t, &out->r[out->n++], err, errcap);
    free(copy);
    if (rc != 0)
        limits_free(out);
    return rc;
}

void limits_free(limit_rules *rules)
{
    free(rules->r);
    rules->r = NULL;
    rules->n = 0;
}

/* name as a Prometheus label value: \ and " escaped (names are printable ASCII, so no
 * newline), else a name with a quote broke the whole /metrics page for a scraper. */
static const char *label_value(const char *name, char *buf, size_t cap)
{
    size_t o = 0;
    for (const char *c = name; *c != '\0' && o + 3 < cap; c++) {
        if (*c == '"' || *c == '\\')
            buf[o++] = '\\';
        buf[o++] = *c;
    }
    buf[o] = '\0';
    return buf;
}

void limits_render(struct evbuffer *out, const limit_rules *rules)
{
    static const char *what[4] = {"allowed", "limited", "near_limit", "shadow_limited"};
    evbuffer_add_printf(out, "# HELP strata_ratelimit_decisions_total Decisions of the server's "
                             "own rate-limit rules.\n# TYPE strata_ratelimit_decisions_total "
                             "counter\n");
    for (size_t i = 0; i < rules->n; i++) {
        limit_rule *r = &rules->r[i];
        atomic_uint_fast64_t *v[4] = {&r->allowed, &r->limited, &r->near_limit, &r->shadow_limited};
        char name[2 * LIMIT_NAME_MAX + 1];
        label_value(r->name, name, sizeof name);
        for (int k = 0; k < 4; k++)
            evbuffer_add_printf(out,
                                "strata_ratelimit_decisions_total{rule=\"%s\",decision=\"%s\"} "
                                "%llu\n",
                                name, what[k], (unsigned long long)atomic_load(v[k]));
    }
}

/* ---- headers and bodies ------------------------------------------------------------------- */

static uint64_t secs(uint64_t ms)
{
    return (ms + 999) / 1000;
}

/* The rate-limit fields of one answer. RateLimit-Policy and RateLimit (draft-ietf-httpapi-
 * ratelimit-headers, revision 10 on) are Structured Field lists, one item per policy that applied:
 *     RateLimit-Policy: "<name>";q=<limit: the burst>;w=<seconds an empty bucket takes to fill>
 *     RateLimit: "<name>";r=<remaining>;t=<seconds until remaining grows by one>
 * t is not the reset: a GCRA frees quota one request at a time, and the draft wants a Retry-After
 * no earlier than t (on a denial of cost 1 they are equal). The RateLimit-Limit/-Remaining/-Reset
 * fields clients already read hold one decision: the most pressing (a denial, else the fewest
 * remaining), with Retry-After when it is a denial. */
typedef struct rl_fields {
    char policy[400], limit[400];
    size_t plen, llen;
    strata_rl_result worst;
    int n;
} rl_fields;

/* name as a Structured Fields string: quoted, " and \ escaped; bytes outside printable ASCII
 * (which limits_parse refuses in rule names) are left out. */
static void sf_string(char *out, size_t cap, const char *name)
{
    size_t n = 0;
    out[n++] = '"';
    for (const unsigned char *c = (const unsigned char *)name; *c && n + 4 < cap; c++) {
        if (*c < 0x20 || *c > 0x7e)
            continue;
        if (*c == '"' || *c == '\\')
            out[n++] = '\\';
        out[n++] = (char)*c;
    }
    out[n++] = '"';
    out[n] = '\0';
}

/* Appends item to a list field's value; an item that does not fit is left out whole. */
static void list_add(char *list, size_t cap, size_t *len, const char *item)
{
    int n = snprintf(list + *len, cap - *len, "%s%s", *len ? ", " : "", item);
    if (n > 0 && (size_t)n < cap - *len)
        *len += (size_t)n;
    else
        list[*len] = '\0';
}

static void fields_add(rl_fields *f, const char *name, const strata_rl_result *r)
{
    char sf[2 * LIMIT_NAME_MAX + 3], item[160]; /* the name, every byte escaped at worst */
    sf_string(sf, sizeof sf, name);
    uint64_t w = secs(r->window_ms);
    snprintf(item, sizeof item, "%s;q=%llu;w=%llu", sf, (unsigned long long)r->limit,
             (unsigned long long)(w ? w : 1));
    list_add(f->policy, sizeof f->policy, &f->plen, item);
    snprintf(item, sizeof item, "%s;r=%llu;t=%llu", sf, (unsigned long long)r->remaining,
             (unsigned long long)secs(r->next_ms));
    list_add(f->limit, sizeof f->limit, &f->llen, item);
    if (f->n++ == 0 || !r->allowed || (f->worst.allowed && r->remaining < f->worst.remaining))
        f->worst = *r;
}

static void fields_write(req *q, const rl_fields *f)
{
    if (f->n == 0)
        return;
    const strata_rl_result *r = &f->worst;
    char v[24];
    snprintf(v, sizeof v, "%llu", (unsigned long long)r->limit);
    add_header(q, "RateLimit-Limit", v);
    snprintf(v, sizeof v, "%llu", (unsigned long long)r->remaining);
    add_header(q, "RateLimit-Remaining", v);
    snprintf(v, sizeof v, "%llu", (unsigned long long)secs(r->reset_ms));
    add_header(q, "RateLimit-Reset", v);
    add_header(q, "RateLimit-Policy", f->policy);
    add_header(q, "RateLimit", f->limit);
    if (!r->allowed) {
        snprintf(v, sizeof v, "%llu", (unsigned long long)secs(r->retry_after_ms));
        add_header(q, "Retry-After", v);
    }
}

/* ---- the endpoint ------------------------------------------------------------------------- */

static void on_check(int status, const strata_rl_result *r, void *arg)
{
    req *q = arg;
    if (status != 0) {
        reply_status(q, status);
        return;
    }
    rl_fields f = {.n = 0};
    fields_add(&f, "default", r); /* the endpoint's one policy: the body's parameters */
    fields_write(q, &f);
    reply_json(q, r->allowed ? 200 : 429,
               json_pack("{s:b,s:I,s:I,s:I,s:I}", "allowed", r->allowed, "limit",
                         (json_int_t)r->limit, "remaining", (json_int_t)r->remaining, "reset",
                         (json_int_t)secs(r->reset_ms), "retry_after",
                         (json_int_t)(r->allowed ? 0 : secs(r->retry_after_ms))));
}

static int num(json_t *j, const char *name, double lo, double dflt, double *out)
{
    json_t *v = json_object_get(j, name);
    if (v == NULL) {
        *out = dflt;
        return dflt >= 0;
    }
    *out = json_number_value(v);
    return json_is_number(v) && *out >= lo && *out <= 1e12;
}

void ratelimit_handle(req *q)
{
    size_t len;
    const char *body = get_body(q, &len);
    json_error_t err;
    json_t *j = body ? json_loadb(body, len, 0, &err) : NULL;
    double limit, period, burst, cost;
    if (j == NULL || !json_is_object(j) || !num(j, "limit", 1, -1, &limit) ||
        !num(j, "period", 0.001, -1, &period) || !num(j, "burst", 1, 0, &burst) ||
        !num(j, "cost", 1, 1, &cost)) {
        json_decref(j);
        reply_error(q, 400, "bad_request",
                    "the body must be {\"limit\":N>=1,\"period\":seconds>0[,\"burst\":N>=1]"
                    "[,\"cost\":N>=1]}");
        return;
    }
    json_decref(j);
    strata_rl_params p = {.limit = (uint64_t)limit,
                          .period_ms = (uint64_t)ceil(period * 1000),
                          .burst = (uint64_t)burst,
                          .cost = (uint64_t)cost};
    strata_rl_result r;
    int rc = strata_ratelimit_async(q->w->srv->rl, q->w->loop, q->tenant, q->r.key, q->r.key_len,
                                    &p, on_check, q, &r);
    if (rc != STRATA_PENDING)
        on_check(rc, &r, q);
}

/* ---- the server's own rules --------------------------------------------------------------- */

/* Who a rule counts: the client address, the token (hashed: never stored), the tenant, or a
 * header. Returns 0, or -1 when the request has nothing to count by (the rule does not apply). */
static int identity(req *q, const limit_rule *r, char *out, size_t cap)
{
    const char *v = NULL;
    char ip[64];
    switch (r->by) {
    case BY_IP:
        snprintf(ip, sizeof ip, "%s", get_peer(q));
        v = ip;
        break;
    case BY_TOKEN: {
        /* The token itself, not the header's spelling: "bearer", "BEARER" ... are one caller. */
        const char *h = get_header(q, "Authorization"), *t = auth_bearer(h);
        if (h == NULL)
            return -1;
        if (t == NULL)
            t = h; /* another scheme: the whole value */
        snprintf(out, cap, "\x01%s:t:%016llx", r->name,
                 (unsigned long long)XXH3_64bits(t, strlen(t)));
        return 0;
    }
    case BY_TENANT:
        v = q->tenant;
        break;
    default:
        v = get_header(q, r->header);
        if (v == NULL)
            return -1;
    }
    snprintf(out, cap, "\x01%s:%.400s", r->name, v);
    return 0;
}

typedef struct rule_walk {
    req *q;
    limit_rules *rules; /* the server's, or a proxy route's */
    size_t next;
    void (*then)(req *q);
    rl_fields f; /* the rules that applied and were not shadows */
} rule_walk;

static void walk(rule_walk *w);

static void rule_decided(int status, const strata_rl_result *r, void *arg)
{
    rule_walk *w = arg;
    req *q = w->q;
    limit_rule *rule = &w->rules->r[w->next - 1];
    if (status != 0 || r->allowed) {
        atomic_fetch_add(&rule->allowed, 1);
        if (status == 0 && r->remaining * 5 < r->limit) /* under 20% left */
            atomic_fetch_add(&rule->near_limit, 1);
        if (status == 0 && !rule->shadow)
            fields_add(&w->f, rule->name, r);
        walk(w);
        return;
    }
    if (rule->shadow) { /* counted, never rejected */
        atomic_fetch_add(&rule->shadow_limited, 1);
        walk(w);
        return;
    }
    atomic_fetch_add(&rule->limited, 1);
    fields_add(&w->f, rule->name, r);
    fields_write(q, &w->f);
    free(w);
    reply_error(q, 429, "rate_limited", "rate limit %s exceeded: retry after %llu s", rule->name,
                (unsigned long long)secs(r->retry_after_ms));
}

static void walk(rule_walk *w)
{
    req *q = w->q;
    const limit_rules *rules = w->rules;
    while (w->next < rules->n) {
        limit_rule *r = &rules->r[w->next++];
        char key[512];
        if ((r->route != -1 && r->route != q->r.id) || identity(q, r, key, sizeof key) != 0)
            continue;
        strata_rl_result res;
        int rc = strata_ratelimit_async(q->w->srv->rl, q->w->loop, "default", key, strlen(key),
                                        &r->p, rule_decided, w, &res);
        if (rc == STRATA_PENDING)
            return;
        rule_decided(rc, &res, w);
        return;
    }
    void (*then)(req *) = w->then;
    fields_write(q, &w->f);
    free(w);
    then(q);
}

void limits_apply_rules(req *q, limit_rules *rules, void (*then)(req *q))
{
    rule_walk *w = rules->n ? calloc(1, sizeof *w) : NULL;
    if (w == NULL) {
        then(q);
        return;
    }
    w->q = q;
    w->rules = rules;
    w->then = then;
    walk(w);
}

void limits_apply(req *q, void (*then)(req *q))
{
    if (q->r.id == R_LIVEZ || q->r.id == R_READYZ)
        then(q);
    else
        limits_apply_rules(q, &q->w->srv->rules, then);
}
