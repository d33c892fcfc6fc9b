/* admin.c: probes, health, stats, who is asking, clear, key listing and inspection, /metrics.
 *
 *   GET  /livez  /readyz                        no token: for orchestrators
 *   GET  /cache/health                          status for anyone; details with a read token
 *   GET  /cache/stats[?namespace=NS][&tenant=T]  admin; a bound token asks only for its tenant
 *   GET  /cache/stats/history[?since=T]         read
 *   GET  /cache/whoami                          read: the token's role and tenant
 *   POST|DELETE /cache/clear?namespace=&pattern=&tenant=[&all_tenants=true][&flush=true]  admin
 *                           [&dry_run=true]: how many keys it would remove, removing none
 *   GET  /cache/keys?namespace=&pattern=&limit=&cursor=&tenant=                        admin
 *   GET  /cache/key/{ns}/{key}?tenant=                                                 admin
 *   GET  /metrics                               Prometheus text
 *
 * Health asks Redis on the worker's loop (asynchronous PING and INFO); what only has blocking
 * calls runs on the admin lanes (offload.h), never on an event loop: stats' INFO on the quick
 * lane, clears and key listings on the bulk lane, bounded per tenant (503 admin_busy past it).
 * Of the reserved namespaces, clear and keys take namespace=_sessions (sessions are listed and
 * removed only when named, so a cache clear never logs everybody out).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "codec.h"
#include "handlers.h"
#include "history.h"
#include "proxy.h"

void admin_livez(req *q)
{
    reply_json(q, 200, json_pack("{s:s}", "status", "ok"));
}

void admin_readyz(req *q)
{
    if (atomic_load(&q->w->srv->draining))
        reply_json(q, 503, json_pack("{s:s}", "status", "draining"));
    else
        reply_json(q, 200, json_pack("{s:s}", "status", "ready"));
}

/* ---- health ------------------------------------------------------------------------------- */

typedef struct health_job {
    req *q;
    strata_cache *cache;
    int ping_rc, info_rc;
    uint64_t latency_us;
    strata_l2_stats l2;
    strata_redis_info info;
} health_job;

static void health_done(health_job *j);

static void on_info(int status, const strata_redis_info *info, void *arg)
{
    health_job *j = arg;
    j->info_rc = status;
    if (status == 0)
        j->info = *info;
    health_done(j);
}

/* INFO only for those who see the details (its warnings): a probe costs Redis one PING. */
static void on_pong(int status, uint64_t latency_us, void *arg)
{
    health_job *j = arg;
    j->ping_rc = status;
    j->latency_us = latency_us;
    j->info_rc = -1;
    if (status != 0 || j->q->role < ROLE_READ) {
        health_done(j);
        return;
    }
    int rc = strata_cache_redis_info_async(j->q->w->loop, on_info, j);
    if (rc != STRATA_PENDING)
        on_info(rc, NULL, j);
}

/* What an operator should know even while everything answers. */
static json_t *health_warnings(const health_job *j)
{
    json_t *w = json_array();
    /* Without Redis configured there is nothing to come back: say what would make them last. */
    if (!j->l2.configured)
        json_array_append_new(w, json_string("sessions are not durable: they live in this "
                                             "instance's memory only (no Redis configured: "
                                             "REDIS_URL adds it)"));
    else if (j->ping_rc != 0)
        json_array_append_new(w, json_string("sessions are not durable: they live in this "
                                             "instance's memory until Redis is back"));
    if (j->info_rc == 0 && strcmp(j->info.maxmemory_policy, "noeviction") != 0 &&
        j->info.maxmemory != 0)
        json_array_append_new(
            w, json_sprintf("redis maxmemory-policy %s may evict session and rate-limit keys "
                            "(noeviction, or a dedicated Redis for them, avoids it)",
                            j->info.maxmemory_policy));
    if (j->l2.readonly)
        json_array_append_new(w, json_string("redis is read-only: writes reach this instance's "
                                             "memory only"));
    return w;
}

/* Where Redis is: {"topology": "single" | "sentinel" | "cluster", "primary": "host:port",
 * "nodes": N, "tls": bool} ("primary" is what the sentinels named last, "" while none is known
 * and on a cluster; "nodes" the primaries in use). */
static json_t *topology_json(const strata_l2_stats *l2)
{
    return json_pack("{s:s,s:s,s:i,s:b}", "topology", l2->topology, "primary", l2->primary, "nodes",
                     (int)l2->nodes, "tls", l2->tls);
}

/* Each node the cache has used: [{"addr", "primary": in use now, "slots" (a cluster's),
 * "latency_ms" (the last ping's; null before one answered), "errors"}]. */
static json_t *node_list_json(strata_cache *c, const strata_l2_stats *l2)
{
    strata_redis_node nodes[16];
    size_t n = strata_cache_redis_nodes(c, nodes, 16);
    json_t *a = json_array();
    for (size_t i = 0; i < n && i < 16; i++) {
        json_t *o = json_pack("{s:s,s:b}", "addr", nodes[i].addr, "primary", nodes[i].primary);
        if (strcmp(l2->topology, "cluster") == 0)
            json_object_set_new(o, "slots", json_integer(nodes[i].slots));
        json_object_set_new(o, "latency_ms",
                            nodes[i].latency_us < 0 ? json_null()
                                                    : json_real((double)nodes[i].latency_us / 1e3));
        json_object_set_new(o, "errors", json_integer((json_int_t)nodes[i].errors));
        json_array_append_new(a, o);
    }
    return a;
}

static void health_done(health_job *j)
{
    req *q = j->q;
    strata_cache_l2_stats(j->cache, &j->l2); /* never waits on Redis */
    const char *status = "healthy";
    if (j->l2.configured && (j->ping_rc != 0 || !j->l2.coherent || j->l2.readonly))
        status = j->ping_rc != 0 && q->w->srv->cfg.require_redis ? "unhealthy" : "degraded";
    int code = strcmp(status, "unhealthy") == 0 ? 503 : 200;
    json_t *body = json_pack("{s:s}", "status", status);
    if (q->role >= ROLE_READ) {
        strata_stats s;
        strata_l1_stats(strata_cache_l1(j->cache), NULL, &s);
        json_object_set_new(body, "redis_configured", json_boolean(j->l2.configured));
        json_object_set_new(body, "redis_available",
                            json_boolean(j->l2.configured && j->ping_rc == 0));
        if (j->ping_rc == 0)
            json_object_set_new(body, "redis_latency_ms", json_real((double)j->latency_us / 1e3));
        json_object_set_new(body, "breaker", json_string(j->l2.breaker));
        json_object_set_new(body, "readonly", json_boolean(j->l2.readonly));
        json_object_set_new(body, "coherent", json_boolean(j->l2.coherent));
        json_object_set_new(body, "last_error", json_string(j->l2.last_error));
        json_t *where = topology_json(&j->l2);
        json_object_set_new(where, "node_list", node_list_json(j->cache, &j->l2));
        json_object_set_new(body, "redis", where);
        json_object_set_new(body, "warnings", health_warnings(j));
        json_object_set_new(body, "l1_entries", json_integer((json_int_t)s.entries));
        json_object_set_new(body, "l1_bytes", json_integer((json_int_t)s.bytes));
    }
    free(j);
    reply_json(q, code, body);
}

/* Asks Redis on the worker's own loop (its pipelined connection), never through the admin
 * lanes: what orchestrators probe answers whatever admin work is queued. */
void admin_health(req *q)
{
    health_job *j = calloc(1, sizeof *j);
    if (j == NULL) {
        reply_error(q, 503, "out_of_memory", "out of memory");
        return;
    }
    j->q = q;
    j->cache = q->w->srv->cache;
    int rc = strata_cache_ping_async(q->w->loop, on_pong, j);
    if (rc != STRATA_PENDING)
        on_pong(rc, 0, j);
}

/* ---- stats -------------------------------------------------------------------------------- */

typedef struct stats_job {
    req *q;
    strata_cache *cache;
    strata_redis_info info;
    int info_rc;
} stats_job;

static void stats_run(void *arg)
{
    stats_job *j = arg;
    j->info_rc = strata_cache_redis_info(j->cache, &j->info);
}

static double rate(uint64_t hits, uint64_t misses)
{
    return hits + misses ? (double)hits / (double)(hits + misses) : 0.0;
}

/* L1's counters, of every namespace or of one (which has no memory bound of its own). */
static json_t *l1_json(const strata_stats *s, int totals)
{
    json_t *l1 = json_pack("{s:I,s:I,s:f,s:I,s:I}", "hits", (json_int_t)s->hits, "misses",
                           (json_int_t)s->misses, "hit_rate", rate(s->hits, s->misses), "keys",
                           (json_int_t)s->entries, "memory_bytes", (json_int_t)s->bytes);
    if (totals)
        json_object_set_new(l1, "max_memory_bytes", json_integer((json_int_t)s->max_bytes));
    const struct {
        const char *name;
        uint64_t v;
    } more[] = {{"sets", s->sets},
                {"deletes", s->deletes},
                {"evictions", s->evictions},
                {"expirations", s->expirations},
                {"rejections", s->rejections},
                {"invalidations", s->invalidations}};
    for (size_t i = 0; i < sizeof more / sizeof *more; i++)
        json_object_set_new(l1, more[i].name, json_integer((json_int_t)more[i].v));
    return l1;
}

/* The metrics_fresh counters of srv's workers. */
static void fresh_counts(server *srv, uint64_t out[METRICS_FRESH_COUNT])
{
    metrics_block *blocks[256];
    unsigned n = srv->cfg.workers < 256 ? srv->cfg.workers : 256;
    for (unsigned i = 0; i < n; i++)
        blocks[i] = srv->workers[i].metrics;
    metrics_fresh_sum(blocks, n, out);
}

/* The lease protocol's counters: the library's, the waits this server refused itself, and what
 * the freshness of values made the reads answer. */
static json_t *leases_json(server *srv)
{
    strata_lease_stats l;
    strata_leases_stats(srv->leases, &l);
    uint64_t f[METRICS_FRESH_COUNT];
    fresh_counts(srv, f);
    json_t *j = json_pack(
        "{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "granted", (json_int_t)l.acquired,
        "waits", (json_int_t)l.waits, "coalesced", (json_int_t)l.coalesced, "takeovers",
        (json_int_t)l.takeovers, "timeouts", (json_int_t)l.timeouts, "busy",
        (json_int_t)atomic_load(&srv->lease_refused), "waiting", (json_int_t)l.waiting, "filled",
        (json_int_t)l.filled, "extended", (json_int_t)l.extended, "released",
        (json_int_t)l.released, "refused", (json_int_t)l.refused, "local", (json_int_t)l.local);
    const struct {
        const char *name;
        uint64_t v;
    } more[] = {{"stale_served", f[METRICS_STALE]},
                {"early_refreshes", f[METRICS_EARLY]},
                {"stale_kept", l.stale_kept},
                {"errors_stored", l.errors_stored},
                {"negative_hits", f[METRICS_NEGATIVE]}};
    for (size_t i = 0; i < sizeof more / sizeof *more; i++)
        json_object_set_new(j, more[i].name, json_integer((json_int_t)more[i].v));
    return j;
}

static void stats_done(void *arg)
{
    stats_job *j = arg;
    req *q = j->q;
    strata_stats s;
    strata_l2_stats l2;
    strata_l1_stats(strata_cache_l1(j->cache), NULL, &s);
    strata_cache_l2_stats(j->cache, &l2);
    json_t *l1 = l1_json(&s, 1);
    json_t *l2j = json_pack(
        "{s:b,s:b,s:b,s:b,s:s,s:I,s:I,s:f,s:I,s:I,s:I,s:I,s:s}", "configured", l2.configured,
        "available", l2.available, "readonly", l2.readonly, "coherent", l2.coherent, "breaker",
        l2.breaker, "hits", (json_int_t)l2.hits, "misses", (json_int_t)l2.misses, "hit_rate",
        rate(l2.hits, l2.misses), "errors", (json_int_t)l2.errors, "fallbacks",
        (json_int_t)l2.fallbacks, "breaker_opens", (json_int_t)l2.breaker_opens, "invalidations",
        (json_int_t)l2.invalidations, "last_error", l2.last_error);
    if (l2.configured) {
        json_object_set_new(l2j, "topology", json_string(l2.topology));
        json_object_set_new(l2j, "primary", json_string(l2.primary));
        json_object_set_new(l2j, "nodes", json_integer((json_int_t)l2.nodes));
        json_object_set_new(l2j, "node_list", node_list_json(j->cache, &l2));
        json_object_set_new(l2j, "tls", json_boolean(l2.tls));
    }
    if (j->info_rc == 0)
        json_object_set_new(
            l2j, "redis",
            json_pack("{s:s,s:s,s:I,s:I,s:s,s:I,s:I,s:I,s:I}", "version", j->info.version, "role",
                      j->info.role, "used_memory", (json_int_t)j->info.used_memory, "maxmemory",
                      (json_int_t)j->info.maxmemory, "maxmemory_policy", j->info.maxmemory_policy,
                      "connected_clients", (json_int_t)j->info.connected_clients, "keyspace_hits",
                      (json_int_t)j->info.keyspace_hits, "keyspace_misses",
                      (json_int_t)j->info.keyspace_misses, "keys", (json_int_t)j->info.keys));
    server *srv = q->w->srv;
    json_t *body =
        json_pack("{s:o,s:o,s:o,s:{s:I,s:i},s:o}", "l1", l1, "l2", l2j, "leases", leases_json(srv),
                  "server", "uptime_s", (json_int_t)((strata_now_ms() - srv->started_ms) / 1000),
                  "workers", (int)srv->cfg.workers, "proxy", proxy_stats_json(srv));
    free(j);
    reply_json(q, 200, body);
}

/* What the cache API was asked in a scope, summed over the workers (usage.h). */
static json_t *requests_json(const uint64_t c[USAGE_COUNT])
{
    return json_pack("{s:I,s:I,s:I,s:I,s:f,s:I,s:I,s:I}", "total", (json_int_t)c[USAGE_REQUESTS],
                     "l1", (json_int_t)c[USAGE_L1], "l2", (json_int_t)c[USAGE_L2], "misses",
                     (json_int_t)c[USAGE_MISSES], "hit_rate",
                     rate(c[USAGE_L1] + c[USAGE_L2], c[USAGE_MISSES]), "writes",
                     (json_int_t)c[USAGE_WRITES], "deletes", (json_int_t)c[USAGE_DELETES], "errors",
                     (json_int_t)c[USAGE_ERRORS]);
}

/* A namespace's settings, named as STRATA_NAMESPACES names them (seconds, bytes). */
static json_t *settings_json(const strata_ns_config *c)
{
    return json_pack("{s:I,s:I,s:I,s:f,s:I,s:I,s:I,s:f}", "ttl",
                     (json_int_t)(c->default_ttl_ms / 1000), "max_ttl",
                     (json_int_t)(c->max_ttl_ms / 1000), "error_ttl",
                     (json_int_t)(c->error_ttl_ms / 1000), "jitter", c->jitter, "quota",
                     (json_int_t)c->tenant_quota, "grace", (json_int_t)(c->grace_ms / 1000),
                     "stale_if_error", (json_int_t)(c->stale_if_error_ms / 1000), "beta", c->beta);
}

static unsigned usage_tables(server *srv, usage **out, unsigned cap)
{
    unsigned n = srv->cfg.workers < cap ? srv->cfg.workers : cap;
    for (unsigned i = 0; i < n; i++)
        out[i] = srv->workers[i].metrics->usage;
    return n;
}

/* A namespace exists on an instance once something was stored in it there, or
 * STRATA_NAMESPACES names it: one that does not is an error, never an answer of zeros. */
static void unknown_namespace(req *q, const char *ns)
{
    reply_error(q, 404, "unknown_namespace",
                "no namespace %s on this instance: nothing was stored in it since start, and "
                "STRATA_NAMESPACES does not name it",
                ns);
}

/* GET /cache/stats?namespace=NS: its settings, L1's counters and what was asked in it. Nothing
 * here waits on Redis: answered on the worker's loop. */
static void stats_namespace(req *q, const char *ns)
{
    strata_l1 *l1 = strata_cache_l1(q->w->srv->cache);
    strata_stats s;
    strata_ns_config cfg;
    if (strata_l1_stats(l1, ns, &s) != 0) {
        unknown_namespace(q, ns);
        return;
    }
    strata_l1_ns_config(l1, ns, &cfg);
    usage *tables[256];
    uint64_t c[USAGE_COUNT];
    usage_namespace(tables, usage_tables(q->w->srv, tables, 256), ns, c);
    reply_json(q, 200,
               json_pack("{s:s,s:o,s:o,s:o}", "namespace", ns, "settings", settings_json(&cfg),
                         "l1", l1_json(&s, 0), "requests", requests_json(c)));
}

/* GET /cache/stats?tenant=T[&namespace=NS]: what tenant asked (in NS, or in all). */
static void stats_tenant(req *q, const char *ns, const char *tenant)
{
    strata_stats s;
    if (ns != NULL && strata_l1_stats(strata_cache_l1(q->w->srv->cache), ns, &s) != 0) {
        unknown_namespace(q, ns);
        return;
    }
    usage *tables[256];
    uint64_t c[USAGE_COUNT];
    int complete;
    int found =
        usage_tenant(tables, usage_tables(q->w->srv, tables, 256), ns, tenant, c, &complete);
    if (!found && complete) {
        reply_error(q, 404, "unknown_tenant",
                    "tenant %s made no call of the cache API%s%s on this instance since start",
                    tenant, ns ? " in namespace " : "", ns ? ns : "");
        return;
    }
    json_t *body = json_pack("{s:s}", "tenant", tenant);
    if (ns != NULL)
        json_object_set_new(body, "namespace", json_string(ns));
    json_object_set_new(body, "requests", requests_json(c));
    json_object_set_new(body, "complete", json_boolean(complete));
    reply_json(q, 200, body);
}

/* ?namespace= and ?tenant= checked; 0, or answered 400/403 and -1. */
static int stats_scope_ok(req *q, const char *ns, const char *tenant)
{
    if (ns != NULL && strata_name_check(ns) != 0)
        reply_error(q, 400, "bad_namespace",
                    "namespace must be 1-64 characters of A-Z a-z 0-9 _ . -");
    else if (tenant != NULL && strata_name_check(tenant) != 0)
        reply_error(q, 400, "bad_tenant", "tenant must be 1-64 characters of A-Z a-z 0-9 _ . -");
    else if (tenant != NULL && q->tenant_bound && strcmp(tenant, q->tenant) != 0)
        reply_error(q, 403, "forbidden", "this token is bound to another tenant");
    else
        return 0;
    return -1;
}

/* GET /cache/stats/history[?since=T]: the last minutes, a point a second (history.h). Counters
 * only, never keys: the read role is enough. */
void admin_history(req *q)
{
    const char *since = get_query(q, "since");
    char *end = NULL;
    long long t = since ? strtoll(since, &end, 10) : 0;
    if (since != NULL && (end == since || *end != '\0' || t < 0)) {
        reply_error(q, 400, "bad_since", "since must be a time in seconds since the epoch");
        return;
    }
    reply_json(q, 200, history_json(q->w->srv, t));
}

/* GET /cache/whoami: the caller's role and tenant, so a page (the dashboard) shows a person only
 * the buttons their token may use. {"role":"read","tenant":"acme"|null,"tokens":true}; "tokens"
 * is false in development mode (no tokens: every request is admin). */
void admin_whoami(req *q)
{
    server *srv = q->w->srv;
    pthread_rwlock_rdlock(&srv->auth_lock);
    int tokens = auth_count(srv->auth) > 0;
    pthread_rwlock_unlock(&srv->auth_lock);
    reply_json(q, 200,
               json_pack("{s:s,s:o,s:b}", "role", auth_role_name(q->role), "tenant",
                         q->tenant_bound ? json_string(q->tenant) : json_null(), "tokens", tokens));
}

void admin_stats(req *q)
{
    const char *ns = get_query(q, "namespace"), *tenant = get_query(q, "tenant");
    if (stats_scope_ok(q, ns, tenant) != 0)
        return;
    if (tenant != NULL) {
        stats_tenant(q, ns, tenant);
        return;
    }
    if (ns != NULL) {
        stats_namespace(q, ns);
        return;
    }
    stats_job *j = calloc(1, sizeof *j);
    j->q = q;
    j->cache = q->w->srv->cache;
    offload(q, stats_run, stats_done, j);
}

/* ---- clear -------------------------------------------------------------------------------- */

#define BAD_NS                                                                                     \
    "namespace must be 1-64 characters of A-Z a-z 0-9 _ . -, not starting with _ (but _sessions)"

/* A namespace clear and keys may name: a name, not a reserved one but the sessions'. */
static int admin_ns_ok(const char *ns)
{
    return strlen(ns) <= STRATA_NAME_MAX && strata_name_check(ns) == 0 &&
           (ns[0] != '_' || strcmp(ns, STRATA_SESSION_NS) == 0);
}

typedef struct clear_job {
    req *q;
    strata_cache *cache;
    char ns[STRATA_NAME_MAX + 1], pattern[1024];
    const char *tenant; /* NULL: every tenant */
    int has_ns, has_pattern, flush, dry_run, rc, reason;
    size_t removed;
} clear_job;

static void count_one(const char *ns, const char *tenant, const char *key, size_t len, void *arg)
{
    (void)ns, (void)tenant, (void)key, (void)len;
    (*(size_t *)arg)++;
}

/* A dry run: the keys the clear would remove, counted by walking the listing GET /cache/keys
 * pages through (the same tier: Redis' keyspace with Redis, else this instance's memory), so it
 * costs what the clear's own pass costs, without removing anything. */
static int clear_count(clear_job *j)
{
    char cursor[32] = "0", next[32];
    do {
        int rc = strata_cache_keys(j->cache, j->has_ns ? j->ns : NULL, j->tenant,
                                   j->has_pattern ? j->pattern : NULL, cursor, 1000, count_one,
                                   &j->removed, next, sizeof next);
        if (rc != 0)
            return rc;
        memcpy(cursor, next, sizeof cursor);
    } while (strcmp(cursor, "0") != 0);
    return 0;
}

static void clear_run(void *arg)
{
    clear_job *j = arg;
    if (j->dry_run)
        j->rc = clear_count(j);
    else if (j->flush)
        j->rc = strata_cache_flush(j->cache);
    else
        j->rc = strata_cache_clear(j->cache, j->has_ns ? j->ns : NULL, j->tenant,
                                   j->has_pattern ? j->pattern : NULL, &j->removed);
    j->reason = strata_fallback_reason(); /* this thread's, right after the call */
}

static void clear_done(void *arg)
{
    clear_job *j = arg;
    req *q = j->q;
    if (j->rc == STRATA_OK_L1_ONLY) {
        add_header(q, "X-Cache-Write", "l1-only");
        add_reason(q, j->reason);
    }
    if (j->rc < 0)
        reply_status(q, j->rc);
    else if (j->dry_run)
        reply_json(q, 200,
                   json_pack("{s:I,s:b}", "matching", (json_int_t)j->removed, "dry_run", 1));
    else
        reply_json(q, 200,
                   json_pack("{s:I,s:b}", "removed", (json_int_t)j->removed, "flushed", j->flush));
    free(j);
}

static int is_true(const char *s)
{
    return s != NULL && (strcmp(s, "true") == 0 || strcmp(s, "1") == 0);
}

void admin_clear(req *q)
{
    clear_job *j = calloc(1, sizeof *j);
    j->q = q;
    j->cache = q->w->srv->cache;
    const char *ns = get_query(q, "namespace"), *pattern = get_query(q, "pattern");
    j->tenant = q->tenant;
    /* Every tenant at once, or the whole database: only for an admin bound to no tenant. */
    if (is_true(get_query(q, "all_tenants")) || is_true(get_query(q, "flush"))) {
        if (q->tenant_bound) {
            free(j);
            reply_error(q, 403, "forbidden", "a token bound to a tenant clears only its tenant");
            return;
        }
        j->tenant = NULL;
        j->flush = is_true(get_query(q, "flush"));
    }
    j->dry_run = is_true(get_query(q, "dry_run"));
    if (j->dry_run && j->tenant == NULL) {
        free(j);
        reply_error(q, 400, "bad_request",
                    "dry_run counts the keys of one tenant: not with all_tenants or flush");
        return;
    }
    if (ns != NULL && !admin_ns_ok(ns)) {
        free(j);
        reply_error(q, 400, "bad_namespace", BAD_NS);
        return;
    }
    if (pattern != NULL && (strlen(pattern) >= sizeof j->pattern || pattern[0] == '\0' ||
                            !route_text_ok(pattern, strlen(pattern)))) {
        free(j);
        reply_error(q, 400, "bad_pattern", "pattern must be 1-1023 bytes of UTF-8 text");
        return;
    }
    if (ns != NULL)
        strcpy(j->ns, ns), j->has_ns = 1;
    if (pattern != NULL)
        strcpy(j->pattern, pattern), j->has_pattern = 1;
    if (offload_bounded(q, &q->w->srv->bulk, clear_run, clear_done, j) != 0)
        free(j);
}

/* ---- keys --------------------------------------------------------------------------------- */

typedef struct keys_job {
    req *q;
    strata_cache *cache;
    char ns[STRATA_NAME_MAX + 1], pattern[1024], cursor[32], next[32];
    int has_ns, has_pattern, rc;
    size_t limit;
    json_t *keys;
} keys_job;

static void keys_one(const char *ns, const char *tenant, const char *key, size_t len, void *arg)
{
    (void)tenant;
    keys_job *j = arg;
    json_t *k = json_pack("{s:s}", "namespace", ns);
    if (route_text_ok(key, len))
        json_object_set_new(k, "key", json_stringn(key, len));
    else /* written through the library with bytes HTTP could not carry as text */
        codec_put_value(k, key, len),
            json_object_set(k, "key_b64", json_object_get(k, "value_b64")),
            json_object_del(k, "value_b64"), json_object_del(k, "value");
    json_array_append_new(j->keys, k);
}

static void keys_run(void *arg)
{
    keys_job *j = arg;
    j->rc = strata_cache_keys(j->cache, j->has_ns ? j->ns : NULL, j->q->tenant,
                              j->has_pattern ? j->pattern : NULL, j->cursor, j->limit, keys_one, j,
                              j->next, sizeof j->next);
}

static void keys_done(void *arg)
{
    keys_job *j = arg;
    req *q = j->q;
    if (j->rc != 0) {
        json_decref(j->keys);
        reply_status(q, j->rc);
    } else {
        reply_json(
            q, 200,
            json_pack("{s:o,s:s,s:s}", "keys", j->keys, "cursor", j->next, "tenant", q->tenant));
    }
    free(j);
}

void admin_keys(req *q)
{
    keys_job *j = calloc(1, sizeof *j);
    j->q = q;
    j->cache = q->w->srv->cache;
    j->keys = json_array();
    const char *ns = get_query(q, "namespace"), *pattern = get_query(q, "pattern");
    const char *limit = get_query(q, "limit"), *cursor = get_query(q, "cursor");
    char *end = NULL;
    long lim = limit ? strtol(limit, &end, 10) : 100;
    const char *bad = NULL;
    if (limit != NULL && (*end != '\0' || lim < 1 || lim > 1000))
        bad = "limit must be a number from 1 to 1000";
    else if (ns != NULL && !admin_ns_ok(ns))
        bad = BAD_NS;
    else if (pattern != NULL &&
             (strlen(pattern) >= sizeof j->pattern || !route_text_ok(pattern, strlen(pattern))))
        bad = "pattern must be at most 1023 bytes of UTF-8 text";
    else if (cursor != NULL &&
             (strlen(cursor) >= sizeof j->cursor || strspn(cursor, "0123456789") != strlen(cursor)))
        bad = "cursor must be the number a previous page returned";
    if (bad != NULL) {
        json_decref(j->keys);
        free(j);
        reply_error(q, 400, "bad_request", "%s", bad);
        return;
    }
    if (ns != NULL)
        strcpy(j->ns, ns), j->has_ns = 1;
    if (pattern != NULL)
        strcpy(j->pattern, pattern), j->has_pattern = 1;
    strcpy(j->cursor, cursor ? cursor : "0");
    j->limit = (size_t)lim;
    if (offload_bounded(q, &q->w->srv->bulk, keys_run, keys_done, j) != 0) {
        json_decref(j->keys);
        free(j);
    }
}

/* ---- inspect ------------------------------------------------------------------------------ */

static void inspect_send(req *q, strata_value *v, const char *tier)
{
    uint64_t now = strata_now_ms(), left = strata_value_ttl_left_ms(v, now);
    json_t *tags = json_array();
    for (size_t i = 0; i < strata_value_tag_count(v); i++)
        json_array_append_new(tags, json_string(strata_value_tag(v, i)));
    json_t *body = json_pack(
        "{s:s,s:s,s:s,s:s,s:o,s:s,s:I,s:I}", "namespace", q->r.ns, "key", q->r.key, "tenant",
        q->tenant, "tier", tier, "tags", tags, "content_type", strata_value_content_type(v), "size",
        (json_int_t)strata_value_len(v), "created_ms", (json_int_t)strata_value_created_ms(v));
    json_object_set_new(body, "ttl_ms",
                        left == UINT64_MAX ? json_null() : json_integer((json_int_t)left));
    codec_put_value(body, strata_value_data(v), strata_value_len(v));
    strata_value_release(v);
    reply_json(q, 200, body);
}

static void on_inspect(int status, strata_value *v, void *arg)
{
    req *q = arg;
    if (status == STRATA_OK || status == STRATA_OK_L1_ONLY)
        inspect_send(q, v, status == STRATA_OK ? "l2" : "l1");
    else
        reply_status(q, status);
}

void admin_inspect(req *q)
{
    strata_key k = {q->r.ns, q->tenant, q->r.key, q->r.key_len};
    strata_value *v;
    int rc = strata_cache_get_async(q->w->loop, &k, on_inspect, q, &v);
    if (rc == STRATA_OK || rc == STRATA_OK_L1_ONLY)
        inspect_send(q, v, "l1");
    else if (rc != STRATA_PENDING)
        reply_status(q, rc);
}

/* ---- metrics ------------------------------------------------------------------------------ */

void admin_metrics(req *q)
{
    server *srv = q->w->srv;
    metrics_block *blocks[256];
    unsigned n = srv->cfg.workers < 256 ? srv->cfg.workers : 256;
    for (unsigned i = 0; i < n; i++)
        blocks[i] = srv->workers[i].metrics;
    struct evbuffer *out = evbuffer_new();
    metrics_render(out, blocks, n, srv->cache, srv->rl, (strata_now_ms() - srv->started_ms) / 1000);
    uint64_t fresh[METRICS_FRESH_COUNT];
    metrics_fresh_sum(blocks, n, fresh);
    metrics_render_leases(out, srv->leases, atomic_load(&srv->lease_refused), fresh);
    limits_render(out, &srv->rules);
    proxy_metrics_render(out, srv);
    size_t len = evbuffer_get_length(out);
    reply_text(q, 200, "text/plain; version=0.0.4; charset=utf-8",
               (const char *)evbuffer_pullup(out, -1), len);
    evbuffer_free(out);
}
