/* cache/cache.c: strata_cache: configuration, life cycle, and the synchronous calls.
 *
 * The cache is L1 plus, when REDIS_URL is set, the Redis client (redis/client.h), which tells
 * it through events when Redis comes back (L1 is dropped: it may have missed writes), when the
 * invalidation link is (back) up (L1 is dropped: messages sent meanwhile are lost) and which keys
 * changed. The two-tier logic of get, set, delete and touch lives in cache/twotier.c and
 * cache/touch.c and serves these synchronous calls over the client's pool and the asynchronous
 * ones (cache/loop.c) over a loop's connection alike. The bulk calls (clear, keys, flush, tag
 * invalidation) are synchronous only and use the pool directly; info and ping have both forms
 * (the asynchronous ones in cache/loop.c, for health checks that must not wait for a thread).
 *
 * Without REDIS_URL the cache is its L1, and every call completes in L1.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <strata/cache.h>
#include <strata/errors.h>
#include <xxhash.h>

#include "cache/cache_internal.h"
#include "cache/soft_tag.h"
#include "cache/touch.h"
#include "cache/twotier.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/rand.h"
#include "core/tag_key.h"
#include "l1/l1_internal.h"
#include "redis/client.h"
#include "redis/redis_url.h"
#include "redis/sentinel.h"

static void log_stderr(int level, const char *msg, void *arg)
{
    (void)arg;
    static const char *names[] = {"error", "warning", "info"};
    fprintf(stderr, "strata: %s: %s\n", names[level < 0 || level > 2 ? 0 : level], msg);
}

/* ---- configuration ------------------------------------------------------------------------ */

static int env_bool(const char *name, int *out, const char **bad)
{
    const char *v = getenv(name);
    if (v == NULL || *v == '\0')
        return 0;
    if (strata__parse_bool(v, out) == 0)
        return 0;
    *bad = name;
    return STRATA_ERANGE;
}

static int env_seconds(const char *name, unsigned *out_ms, const char **bad)
{
    const char *v = getenv(name);
    if (v == NULL || *v == '\0')
        return 0;
    if (strata__parse_seconds(v, 3600, out_ms) == 0)
        return 0;
    *bad = name;
    return STRATA_ERANGE;
}

static int env_uint(const char *name, unsigned long lo, unsigned long hi, unsigned long *out,
                    const char **bad)
{
    const char *v = getenv(name);
    if (v == NULL || *v == '\0')
        return 0;
    if (strata__parse_uint(v, lo, hi, out) == 0)
        return 0;
    *bad = name;
    return STRATA_ERANGE;
}

static void redis_defaults(strata_redis_config *r)
{
    memset(r, 0, sizeof *r);
    r->enabled = 1;
    r->max_connections = 8;
    r->connect_timeout_ms = 500;
    r->socket_timeout_ms = 250;
    r->breaker_failures = 5;
    r->breaker_min_backoff_ms = 100;
    r->breaker_max_backoff_ms = 10000;
    r->coherence = 1;
    r->max_pending = 1024;
}

/* A TLS file setting: unset, or a file this process can read (a typo is an error at start, not a
 * Redis that is down). */
static int env_file(const char *name, const char **out, const char **bad)
{
    const char *v = getenv(name);
    if (v == NULL || *v == '\0')
        return 0;
    if (access(v, R_OK) != 0)
        return *bad = name, STRATA_ERANGE;
    *out = v;
    return 0;
}

/* REDIS_TLS*: which settings are wrong is said by strata_cache_config_why. */
static int env_tls(strata_redis_config *r, const char **bad)
{
    int rc = env_bool("REDIS_TLS", &r->tls, bad);
    if (rc == 0)
        rc = env_bool("REDIS_TLS_INSECURE", &r->tls_insecure, bad);
    if (rc == 0)
        rc = env_file("REDIS_TLS_CA_CERT", &r->tls_ca_cert, bad);
    if (rc == 0)
        rc = env_file("REDIS_TLS_CERT", &r->tls_cert, bad);
    if (rc == 0)
        rc = env_file("REDIS_TLS_KEY", &r->tls_key, bad);
    if (rc == 0 && (r->tls_cert == NULL) != (r->tls_key == NULL))
        return *bad = r->tls_cert ? "REDIS_TLS_KEY" : "REDIS_TLS_CERT", STRATA_ERANGE;
    const char *name = getenv("REDIS_TLS_SERVER_NAME");
    if (rc == 0 && name != NULL && *name != '\0')
        r->tls_server_name = name;
    if (rc == 0 && r->tls && r->url != NULL && strncmp(r->url, "unix://", 7) == 0)
        return *bad = "REDIS_TLS", STRATA_ERANGE;
    return rc;
}

static const char *env_str(const char *name)
{
    const char *v = getenv(name);
    return v != NULL && *v != '\0' ? v : NULL;
}

/* The seed services' split settings: REDIS_HOST, REDIS_PORT, REDIS_DB, REDIS_USERNAME,
 * REDIS_PASSWORD. Each is checked whenever it is set, even when REDIS_URL makes it unused (the
 * cache then logs that it is ignored): a typo is an error at start either way. */
static int env_split(strata_redis_config *r, const char **bad)
{
    unsigned long n;
    r->username = env_str("REDIS_USERNAME");
    r->password = env_str("REDIS_PASSWORD");
    const char *host = env_str("REDIS_HOST");
    if (host != NULL && strata__redis_host_check(host, NULL) != 0)
        return *bad = "REDIS_HOST", STRATA_EBADURL;
    r->host = host;
    if (env_str("REDIS_PORT") != NULL) {
        if (env_uint("REDIS_PORT", 1, 65535, &n, bad) != 0)
            return STRATA_ERANGE;
        r->port = (unsigned)n;
    }
    if (env_str("REDIS_DB") != NULL) {
        if (env_uint("REDIS_DB", 0, 65535, &n, bad) != 0)
            return STRATA_ERANGE;
        r->db = (unsigned)n;
    }
    /* Without REDIS_PASSWORD no AUTH is sent, and the user would be silently dropped. */
    if (r->url == NULL && r->username != NULL && r->password == NULL)
        return *bad = "REDIS_USERNAME", STRATA_ERANGE;
    return 0;
}

/* REDIS_SENTINELS and what goes with it. Giving REDIS_URL or REDIS_HOST too is an error that
 * names both (strata_cache_config_why says so): which of the two was meant cannot be guessed. */
static int env_sentinel(strata_redis_config *r, const char **bad)
{
    r->sentinel_master = env_str("REDIS_SENTINEL_MASTER");
    r->sentinel_password = env_str("REDIS_SENTINEL_PASSWORD");
    const char *list = env_str("REDIS_SENTINELS");
    if (list == NULL)
        return 0;
    if (r->url != NULL || r->host != NULL)
        return *bad = "REDIS_SENTINELS", STRATA_EINVAL;
    if (strata__sentinels_parse(list, NULL, 0, NULL) != 0)
        return *bad = "REDIS_SENTINELS", STRATA_EBADURL;
    if (r->sentinel_master == NULL || strata__sentinel_master_check(r->sentinel_master) != 0)
        return *bad = "REDIS_SENTINEL_MASTER", STRATA_ERANGE;
    r->sentinels = list;
    return 0;
}

/* REDIS_CLUSTER: with REDIS_URL, REDIS_HOST or REDIS_SENTINELS it is an error that names both;
 * a cluster has database 0 only, so REDIS_DB is refused with it rather than ignored. */
static int env_cluster(strata_redis_config *r, const char **bad)
{
    const char *list = env_str("REDIS_CLUSTER");
    if (list == NULL)
        return 0;
    if (r->url != NULL || r->host != NULL || r->sentinels != NULL)
        return *bad = "REDIS_CLUSTER", STRATA_EINVAL;
    if (strata__sentinels_parse(list, NULL, 0, NULL) != 0)
        return *bad = "REDIS_CLUSTER", STRATA_EBADURL;
    if (r->db != 0)
        return *bad = "REDIS_DB", STRATA_EINVAL;
    r->cluster = list;
    return 0;
}

static int env_redis(strata_redis_config *r, const char **bad)
{
    unsigned long n;
    const char *url = getenv("REDIS_URL");
    if (url != NULL && *url != '\0') {
        if (strata_redis_url_check(url, NULL) != 0)
            return *bad = "REDIS_URL", STRATA_EBADURL;
        r->url = url;
    }
    int rc = env_bool("REDIS_ENABLED", &r->enabled, bad);
    if (rc == 0 && (rc = env_uint("REDIS_MAX_CONNECTIONS", 1, 1024, &n, bad)) == 0 &&
        getenv("REDIS_MAX_CONNECTIONS") && *getenv("REDIS_MAX_CONNECTIONS"))
        r->max_connections = (unsigned)n;
    if (rc == 0)
        rc = env_seconds("REDIS_CONNECT_TIMEOUT", &r->connect_timeout_ms, bad);
    if (rc == 0)
        rc = env_seconds("REDIS_SOCKET_TIMEOUT", &r->socket_timeout_ms, bad);
    if (rc == 0)
        rc = env_bool("REDIS_READONLY", &r->readonly, bad);
    if (rc == 0)
        rc = env_split(r, bad);
    if (rc == 0)
        rc = env_sentinel(r, bad);
    if (rc == 0)
        rc = env_cluster(r, bad);
    if (rc == 0)
        rc = env_tls(r, bad);
    return rc;
}

int strata_cache_config_init(strata_cache_config *cfg, const char **bad_var)
{
    const char *bad = NULL;
    memset(cfg, 0, sizeof *cfg);
    redis_defaults(&cfg->redis);
    int rc = strata_l1_config_init(&cfg->l1);
    if (rc != 0)
        bad = "STRATA_L1_MAX_MEMORY";
    const char *prefix = getenv("STRATA_PREFIX");
    if (rc == 0 && prefix != NULL && *prefix != '\0') {
        if (strata_prefix_check(prefix) != 0)
            rc = STRATA_EBADNAME, bad = "STRATA_PREFIX";
        else
            cfg->l1.prefix = prefix;
    }
    unsigned long ttl;
    if (rc == 0 && (rc = env_uint("CACHE_TTL", 0, 10ul * 365 * 86400, &ttl, &bad)) == 0 &&
        getenv("CACHE_TTL") && *getenv("CACHE_TTL"))
        cfg->default_ttl_ms = (uint64_t)ttl * 1000;
    if (rc == 0)
        rc = env_redis(&cfg->redis, &bad);
    if (bad_var != NULL)
        *bad_var = bad;
    return rc;
}

/* What each variable strata_cache_config_init reads takes, for the message when it refuses
 * one: a status code alone ("value out of range") does not say that "64MB" has the wrong suffix
 * or that timeouts are seconds. */
static const struct {
    const char *name, *takes;
} env_takes[] = {
    {"STRATA_PREFIX", "a prefix is 1-64 characters of A-Z a-z 0-9 _ . -"},
    {"CACHE_TTL", "expected whole seconds from 0 to 315360000 (10 years)"},
    {"REDIS_ENABLED", "expected true or false (also 1/0, yes/no, on/off)"},
    {"REDIS_READONLY", "expected true or false (also 1/0, yes/no, on/off)"},
    {"REDIS_TLS", "expected true or false (also 1/0, yes/no, on/off)"},
    {"REDIS_TLS_INSECURE", "expected true or false (also 1/0, yes/no, on/off)"},
    {"REDIS_MAX_CONNECTIONS", "expected a whole number from 1 to 1024"},
    {"REDIS_CONNECT_TIMEOUT", "expected seconds above 0, at most 3600 (e.g. 0.5)"},
    {"REDIS_SOCKET_TIMEOUT", "expected seconds above 0, at most 3600 (e.g. 0.25)"},
    {"REDIS_PORT", "expected a whole number from 1 to 65535"},
    {"REDIS_DB", "expected a whole number from 0 to 65535 (the database SELECT takes)"},
    {"REDIS_USERNAME", "REDIS_USERNAME goes with REDIS_PASSWORD (Redis' AUTH user password): "
                       "set both, or neither"},
    {"REDIS_SENTINEL_MASTER", "REDIS_SENTINELS needs the name of the primary the sentinels "
                              "monitor (1-128 characters, no spaces), e.g. mymaster"},
};

const char *strata_cache_config_why(const char *var, const char *value, char *buf, size_t cap)
{
    const char *why = NULL;
    if (var != NULL && strcmp(var, "STRATA_L1_MAX_MEMORY") == 0) {
        strata__size_why(value, buf, cap);
        return buf;
    }
    if (var != NULL && strcmp(var, "REDIS_URL") == 0 && value != NULL &&
        strata_redis_url_check(value, &why) != 0 && why != NULL) {
        snprintf(buf, cap, "%s", why);
        return buf;
    }
    if (var != NULL && strcmp(var, "REDIS_HOST") == 0 && value != NULL &&
        strata__redis_host_check(value, &why) != 0 && why != NULL) {
        snprintf(buf, cap, "%s", why);
        return buf;
    }
    if (var != NULL && strcmp(var, "REDIS_SENTINELS") == 0) {
        const char *url = env_str("REDIS_URL"), *host = env_str("REDIS_HOST");
        if (url != NULL || host != NULL)
            snprintf(buf, cap,
                     "%s and REDIS_SENTINELS are both set: give one (%s names one Redis; "
                     "REDIS_SENTINELS finds the primary through Sentinel)",
                     url ? "REDIS_URL" : "REDIS_HOST", url ? "REDIS_URL" : "REDIS_HOST");
        else if (value != NULL && strata__sentinels_parse(value, NULL, 0, &why) != 0)
            snprintf(buf, cap, "%s", why);
        else
            snprintf(buf, cap, "expected host:port,host:port,...");
        return buf;
    }
    if (var != NULL && strcmp(var, "REDIS_CLUSTER") == 0) {
        const char *other = env_str("REDIS_URL")         ? "REDIS_URL"
                            : env_str("REDIS_HOST")      ? "REDIS_HOST"
                            : env_str("REDIS_SENTINELS") ? "REDIS_SENTINELS"
                                                         : NULL;
        if (other != NULL)
            snprintf(buf, cap,
                     "%s and REDIS_CLUSTER are both set: give one (REDIS_CLUSTER names a Redis "
                     "Cluster's seed nodes)",
                     other);
        else if (value != NULL && strata__sentinels_parse(value, NULL, 0, &why) != 0)
            snprintf(buf, cap,
                     "expected host:port,host:port,... of the cluster's nodes (at most 16)");
        else
            snprintf(buf, cap, "expected host:port,host:port,...");
        return buf;
    }
    if (var != NULL && strcmp(var, "REDIS_DB") == 0 && env_str("REDIS_CLUSTER") != NULL) {
        snprintf(buf, cap, "a Redis Cluster has database 0 only: unset REDIS_DB");
        return buf;
    }
    if (var != NULL && strncmp(var, "REDIS_TLS_", 10) == 0 && strcmp(var, "REDIS_TLS_INSECURE")) {
        if (value == NULL || *value == '\0')
            snprintf(buf, cap, "REDIS_TLS_CERT and REDIS_TLS_KEY go together: set both or neither");
        else
            snprintf(buf, cap, "cannot read the file: %s",
                     strerror(access(value, R_OK) ? errno : 0));
        return buf;
    }
    int on;
    if (var != NULL && strcmp(var, "REDIS_TLS") == 0 && value &&
        strata__parse_bool(value, &on) == 0) {
        snprintf(buf, cap,
                 "TLS needs a redis:// or rediss:// REDIS_URL (Redis has no TLS on a "
                 "unix socket)");
        return buf;
    }
    for (size_t i = 0; var != NULL && i < sizeof env_takes / sizeof *env_takes; i++)
        if (strcmp(var, env_takes[i].name) == 0)
            why = env_takes[i].takes;
    snprintf(buf, cap, "%s", why ? why : "not a value strata takes");
    return buf;
}

int strata_redis_url_check(const char *url, const char **why)
{
    redis_url u;
    return strata__redis_url_parse(url, &u, why);
}

/* ---- life cycle --------------------------------------------------------------------------- */

/* ---- what the Redis client tells the cache ------------------------------------------------ */

/* Tells every watcher. */
static void tell_watchers(strata_cache *c, int what, const char *key, size_t len)
{
    pthread_rwlock_rdlock(&c->watch_lock);
    for (int i = 0; i < CACHE_WATCHERS_MAX; i++)
        if (c->watchers[i].fn != NULL)
            c->watchers[i].fn(what, key, len, c->watchers[i].arg);
    pthread_rwlock_unlock(&c->watch_lock);
}

int strata__cache_watch(strata_cache *c, cache_watch_fn fn, void *arg)
{
    int rc = STRATA_ELIMIT;
    pthread_rwlock_wrlock(&c->watch_lock);
    for (int i = 0; i < CACHE_WATCHERS_MAX && rc != 0; i++)
        if (c->watchers[i].fn == NULL)
            c->watchers[i].fn = fn, c->watchers[i].arg = arg, rc = 0;
    pthread_rwlock_unlock(&c->watch_lock);
    return rc;
}

void strata__cache_unwatch(strata_cache *c, cache_watch_fn fn, void *arg)
{
    pthread_rwlock_wrlock(&c->watch_lock);
    for (int i = 0; i < CACHE_WATCHERS_MAX; i++)
        if (c->watchers[i].fn == fn && c->watchers[i].arg == arg)
            c->watchers[i].fn = NULL, c->watchers[i].arg = NULL;
    pthread_rwlock_unlock(&c->watch_lock);
}

/* A message on the lease channel: the cache keeps nothing for it, its watchers may. */
static void on_lease_message(const char *key, size_t len, void *arg)
{
    tell_watchers(arg, CACHE_WATCH_LEASE, key, len);
}

/* The link is lost: L1 is not trusted meanwhile (the link's state says so); watchers that
 * relied on hearing changes must look for themselves. */
static void on_link_down(void *arg)
{
    tell_watchers(arg, CACHE_WATCH_ALL, NULL, 0);
}

/* After an outage, L1 may hold what Redis has since changed: drop it all. */
static void on_recovered(void *arg)
{
    strata_cache *c = arg;
    c->log(2, "redis is back: dropping L1, which may have missed writes during the outage",
           c->log_arg);
    strata__l1_invalidate_all(c->l1);
    tell_watchers(c, CACHE_WATCH_ALL, NULL, 0);
}

/* The link is (back) up: changes made while nobody listened are lost, so L1 starts empty. */
static void on_link_up(void *arg)
{
    strata_cache *c = arg;
    strata__l1_invalidate_all(c->l1);
    tell_watchers(c, CACHE_WATCH_ALL, NULL, 0);
}

/* A tag's version key or its soft record key changed: forget what L1 learnt of the tag. Both
 * bump the version key's ticket (what a reader of the two captured), so a read of either that
 * raced the change is not learnt. */
static void forget_tag(strata_cache *c, const char *tenant, size_t tl, const char *tag, size_t gl)
{
    char t[STRATA_NAME_MAX + 1], g[STRATA_TAG_MAX + 1], vkey[STRATA_TAG_KEY_MAX];
    size_t vlen;
    if (tl > STRATA_NAME_MAX || gl > STRATA_TAG_MAX)
        return;
    memcpy(t, tenant, tl), t[tl] = '\0';
    memcpy(g, tag, gl), g[gl] = '\0';
    if (strata__tag_key_build(strata__l1_prefix(c->l1), t, g, vkey, sizeof vkey, &vlen) != 0)
        return;
    strata__l1_tag_forget(c->l1, strata__tag_hash(t, g), XXH3_64bits(vkey, vlen));
}

/* A key changed in Redis: a tag version or soft record (forget the tag) or an entry (drop L1's
 * copy). Our own writes come back too and cannot be proven ours: they drop the copy like any
 * other. */
static void on_invalidated(const char *key, size_t len, void *arg)
{
    strata_cache *c = arg;
    const char *prefix = strata__l1_prefix(c->l1), *tenant, *tag;
    size_t tl, gl;
    if (key == NULL) {
        strata__l1_invalidate_all(c->l1); /* FLUSHDB / FLUSHALL */
    } else if (strata__tag_key_parse(prefix, key, len, &tenant, &tl, &tag, &gl) == 0 ||
               strata__soft_tag_key_parse(prefix, key, len, &tenant, &tl, &tag, &gl) == 0) {
        forget_tag(c, tenant, tl, tag, gl);
    } else {
        strata__l1_invalidate_stored(c->l1, key, len);
    }
    tell_watchers(c, key == NULL ? CACHE_WATCH_ALL : CACHE_WATCH_KEY, key, len);
}

/* The split settings the configuration has, but where Redis is does not use, named in one
 * warning ("REDIS_HOST, REDIS_PORT"): a deployment that sets both REDIS_URL and REDIS_HOST
 * learns which one strata follows. */
static void warn_ignored(strata_cache *c, const strata_redis_config *r)
{
    const char *names[5];
    size_t n = 0;
    int url = r->url != NULL,
        none = !url && r->sentinels == NULL && r->cluster == NULL && r->host == NULL;
    if (r->host != NULL && url)
        names[n++] = "REDIS_HOST";
    if (r->port != 0 && (url || r->host == NULL))
        names[n++] = "REDIS_PORT";
    if (r->db != 0 && (url || none))
        names[n++] = "REDIS_DB";
    if (r->username != NULL && (url || none))
        names[n++] = "REDIS_USERNAME";
    if (r->password != NULL && (url || none))
        names[n++] = "REDIS_PASSWORD";
    if (n == 0)
        return;
    char list[100] = "", msg[300];
    for (size_t i = 0; i < n; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", names[i]);
    snprintf(msg, sizeof msg, "%s %s ignored: %s", list, n > 1 ? "are" : "is",
             url            ? "REDIS_URL is set and says where Redis is and how to log in"
             : r->sentinels ? "the sentinels name the primary's address and port"
             : r->cluster   ? "REDIS_CLUSTER names the nodes"
                            : "they go with REDIS_HOST, which is not set (memory only)");
    c->log(1, msg, c->log_arg);
}

/* Where Redis is: REDIS_URL, else the primary the sentinels name, else REDIS_HOST and the
 * settings that go with it. */
static int l2_target(const strata_redis_config *r, redis_url *url)
{
    if (r->sentinels != NULL && (r->url != NULL || r->host != NULL))
        return STRATA_EINVAL; /* one or the other */
    if (r->cluster != NULL && (r->url != NULL || r->host != NULL || r->sentinels != NULL))
        return STRATA_EINVAL;
    if (r->cluster != NULL) {
        if (strata__sentinels_parse(r->cluster, NULL, 0, NULL) != 0)
            return STRATA_EBADURL;
        if (r->db != 0)
            return STRATA_EINVAL; /* a cluster has database 0 only */
        strata__sentinel_url(r, url);
        return 0;
    }
    if (r->url != NULL)
        return strata__redis_url_parse(r->url, url, NULL) != 0 ? STRATA_EBADURL : 0;
    if (r->sentinels != NULL) {
        if (strata__sentinels_parse(r->sentinels, NULL, 0, NULL) != 0)
            return STRATA_EBADURL;
        if (r->sentinel_master == NULL || strata__sentinel_master_check(r->sentinel_master) != 0)
            return STRATA_EINVAL;
        if (r->db > 65535)
            return STRATA_EINVAL;
        strata__sentinel_url(r, url);
        return 0;
    }
    return strata__redis_url_compose(r->host, r->port, r->db, r->username, r->password, r->tls, url,
                                     NULL) != 0
               ? STRATA_EBADURL
               : 0;
}

static int start_l2(strata_cache *c, const strata_cache_config *cfg)
{
    redis_url url;
    int rc = l2_target(&cfg->redis, &url);
    if (rc != 0)
        return rc;
    char track[STRATA_PREFIX_MAX + 2];
    snprintf(track, sizeof track, "%s:", strata__l1_prefix(c->l1));
    c->coherent = cfg->redis.coherence != 0;
    /* Tickets before the link's thread starts: it bumps them. */
    rc = c->coherent ? strata__l1_enable_tickets(c->l1, 65536) : 0;
    redis_events ev = strata__cache_events(c);
    if (rc == 0)
        rc = strata__redis_new(&cfg->redis, &url, c->coherent ? track : NULL, &ev, c->log,
                               c->log_arg, &c->redis);
    if (rc == 0)
        c->pool = (tier){&strata__tier_pool, c->redis};
    return rc;
}

int strata_cache_new(const strata_cache_config *cfg, strata_cache **out)
{
    strata_cache_config defaults;
    if (cfg == NULL) {
        memset(&defaults, 0, sizeof defaults);
        strata_l1_config_init(&defaults.l1);
        redis_defaults(&defaults.redis);
        cfg = &defaults;
    }
    *out = NULL;
    strata_cache *c = calloc(1, sizeof *c);
    if (c == NULL)
        return STRATA_ENOMEM;
    c->log = cfg->log ? cfg->log : log_stderr;
    c->log_arg = cfg->log_arg;
    c->clock = strata_now_ms;
    c->rng = strata__rand_seed();
    pthread_mutex_init(&c->rng_lock, NULL);
    pthread_rwlock_init(&c->watch_lock, NULL);
    strata_l1_config l1cfg = cfg->l1;
    if (cfg->default_ttl_ms != 0)
        l1cfg.default_ttl_ms = cfg->default_ttl_ms;
    int rc = strata_l1_new(&l1cfg, &c->l1);
    const strata_redis_config *r = &cfg->redis;
    if (rc == 0 && r->enabled)
        warn_ignored(c, r);
    if (rc == 0 &&
        (r->url != NULL || r->sentinels != NULL || r->cluster != NULL || r->host != NULL) &&
        r->enabled)
        rc = start_l2(c, cfg);
    if (rc != 0) {
        strata_cache_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void strata_cache_free(strata_cache *c)
{
    if (c == NULL)
        return;
    strata__redis_free(c->redis); /* first: its link thread uses L1 */
    strata_l1_free(c->l1);
    pthread_mutex_destroy(&c->rng_lock);
    pthread_rwlock_destroy(&c->watch_lock);
    free(c);
}

int strata_cache_shared(strata_cache *c)
{
    return c->pool.ops != NULL;
}

redis_events strata__cache_events(strata_cache *c)
{
    return (redis_events){on_recovered,     on_link_up,   on_invalidated,
                          on_lease_message, on_link_down, c};
}

void strata__cache_use(strata_cache *c, const tier_ops *ops, void *self, int coherent,
                       uint64_t (*clock)(void))
{
    c->pool = (tier){ops, self};
    c->coherent = coherent;
    if (coherent)
        strata__l1_enable_tickets(c->l1, 65536);
    if (clock != NULL)
        c->clock = clock;
}

void strata__cache_set_clock(strata_cache *c, uint64_t (*clock)(void))
{
    c->clock = clock;
}

strata_l1 *strata_cache_l1(strata_cache *c)
{
    return c->l1;
}

/* ---- helpers ------------------------------------------------------------------------------ */

/* ---- the two-tier calls (cache/twotier.c), over the pool ---------------------------------- */

/* Over the synchronous pool every answer comes before the call returns, so these return the
 * final status and never call back. */
int strata_cache_get(strata_cache *c, const strata_key *k, strata_value **out)
{
    return strata__tt_get(c, c->pool, k, c->clock(), NULL, NULL, out);
}

int strata_cache_get_stale(strata_cache *c, const strata_key *k, strata_value **out)
{
    return strata__tt_get_ex(c, c->pool, k, c->clock(), 1, NULL, NULL, out);
}

int strata_cache_set(strata_cache *c, const strata_key *k, const void *value, size_t len,
                     const strata_set_opts *opts)
{
    return strata__tt_set(c, c->pool, k, value, len, opts, c->clock(), NULL, NULL);
}

int strata_cache_del(strata_cache *c, const strata_key *k)
{
    return strata__tt_del(c, c->pool, k, c->clock(), NULL, NULL);
}

int strata_cache_del_strict(strata_cache *c, const strata_key *k)
{
    return strata__tt_del_strict(c, c->pool, k, c->clock(), NULL, NULL);
}

int strata_cache_touch(strata_cache *c, const strata_key *k, uint64_t ttl_ms)
{
    return strata__touch(c, c->pool, k, ttl_ms, c->clock(), NULL, NULL);
}

int strata_cache_expire(strata_cache *c, const strata_key *k)
{
    return strata__expire(c, c->pool, k, c->clock(), NULL, NULL);
}

/* ---- bulk --------------------------------------------------------------------------------- */

typedef struct clear_filter {
    const char *prefix, *ns, *tenant;
    const char *const *patterns; /* the user key matches any of them; npatterns 0: any key */
    size_t npatterns;
} clear_filter;

/* SCAN MATCH is only a prefilter ('*' can span ':'); this decides, on the parsed user key. */
static int clear_keep(const char *key, size_t len, void *arg)
{
    const clear_filter *f = arg;
    strata_key_parts p;
    if (strata_key_parse(f->prefix, key, len, &p) != 0)
        return 0; /* a tag key, or not ours */
    if (f->ns == NULL && p.ns[0] == '_')
        return 0; /* reserved namespaces ("_sessions") only when named */
    if (f->ns && (strlen(f->ns) != p.ns_len || memcmp(f->ns, p.ns, p.ns_len) != 0))
        return 0;
    if (f->tenant &&
        (strlen(f->tenant) != p.tenant_len || memcmp(f->tenant, p.tenant, p.tenant_len) != 0))
        return 0;
    for (size_t i = 0; i < f->npatterns; i++)
        if (strata_glob_match(f->patterns[i], strlen(f->patterns[i]), p.key, p.key_len))
            return 1;
    return f->npatterns == 0;
}

/* A bulk call Redis did not take (failure: the client's status) was done in L1 alone. */
static int l1_only(strata_cache *c, int failure)
{
    strata__reason_set(strata__reason_of(c->pool, failure));
    return STRATA_OK_L1_ONLY;
}

int strata_cache_clear(strata_cache *c, const char *ns, const char *tenant, const char *pattern,
                       size_t *removed)
{
    return strata_cache_clear_any(c, ns, tenant, &pattern, pattern != NULL, removed);
}

/* One pass over each tier whatever the number of patterns: the SCAN's MATCH can hold one
 * pattern only, so with several it matches the scope (namespace, tenant) and clear_keep tries
 * each pattern on every key of it; a SCAN costs the keyspace, not what it returns. */
int strata_cache_clear_any(strata_cache *c, const char *ns, const char *tenant,
                           const char *const *patterns, size_t npatterns, size_t *removed)
{
    size_t n1 = 0;
    strata__reason_set(STRATA_REASON_NONE);
    if (npatterns > 0 && patterns == NULL)
        return STRATA_EINVAL;
    int rc = strata__l1_clear_any(c->l1, ns, tenant, patterns, npatterns, &n1);
    if (rc != 0 || c->redis == NULL) {
        if (removed != NULL)
            *removed = n1;
        return rc;
    }
    const char *prefix = strata__l1_prefix(c->l1);
    char match[STRATA_SCAN_MATCH_MAX];
    strata__scan_match_build(prefix, ns, tenant, npatterns == 1 ? patterns[0] : NULL, match,
                             sizeof match);
    if (strata__redis_readonly(c->redis)) { /* Redis cannot remove anything: say so */
        if (removed != NULL)
            *removed = n1;
        return l1_only(c, STRATA_EREADONLY);
    }
    clear_filter f = {prefix, ns, tenant, patterns, npatterns};
    size_t n2 = 0;
    rc = strata__redis_scan_unlink(c->redis, match, clear_keep, &f, &n2);
    if (removed != NULL)
        *removed = rc == 0 ? n2 : n1;
    return rc == 0 ? 0 : l1_only(c, rc);
}

/* strata_cache_clear_any's pass, expiring instead of removing: L1 in place, then Redis (one SCAN
 * for every pattern, a pipelined batch of expire scripts per page). */
int strata_cache_expire_any(strata_cache *c, const char *ns, const char *tenant,
                            const char *const *patterns, size_t npatterns, size_t *expired)
{
    size_t n1 = 0;
    uint64_t now = c->clock();
    strata__reason_set(STRATA_REASON_NONE);
    if (npatterns > 0 && patterns == NULL)
        return STRATA_EINVAL;
    int rc = strata__l1_expire_any(c->l1, ns, tenant, patterns, npatterns, now, &n1);
    if (rc != 0 || c->redis == NULL) {
        if (expired != NULL)
            *expired = n1;
        return rc;
    }
    if (expired != NULL)
        *expired = n1;
    if (strata__redis_readonly(c->redis))
        return l1_only(c, STRATA_EREADONLY);
    const char *prefix = strata__l1_prefix(c->l1);
    char match[STRATA_SCAN_MATCH_MAX];
    strata__scan_match_build(prefix, ns, tenant, npatterns == 1 ? patterns[0] : NULL, match,
                             sizeof match);
    clear_filter f = {prefix, ns, tenant, patterns, npatterns};
    size_t n2 = 0;
    rc = strata__expire_scan(c, match, clear_keep, &f, now, &n2);
    if (rc == 0 && expired != NULL)
        *expired = n2;
    return rc == 0 ? 0 : l1_only(c, rc);
}

int strata_cache_flush(strata_cache *c)
{
    strata__reason_set(STRATA_REASON_NONE);
    strata__l1_invalidate_all(c->l1);
    if (c->redis == NULL)
        return 0;
    if (strata__redis_readonly(c->redis))
        return l1_only(c, STRATA_EREADONLY);
    redis_cmd cmd = {.argc = 2, .argv = {"FLUSHDB", "ASYNC"}, .argvlen = {7, 5}};
    redisReply *r;
    int rc = strata__redis_run_every(c->redis, &cmd, &r); /* every primary of a cluster */
    if (rc != 0)
        return l1_only(c, rc);
    rc = strata__reply_error(r);
    freeReplyObject(r);
    return rc == 0 ? 0 : l1_only(c, rc); /* refused (read-only, no permission): L1 only */
}

int strata_cache_tag_invalidate(strata_cache *c, const char *tenant, const char *tag)
{
    strata__reason_set(STRATA_REASON_NONE);
    int rc = strata_l1_tag_invalidate(c->l1, tenant, tag);
    if (rc != 0 || c->redis == NULL)
        return rc;
    char key[STRATA_TAG_KEY_MAX];
    size_t len;
    if ((rc = strata__tag_key_build(strata__l1_prefix(c->l1), tenant, tag, key, sizeof key,
                                    &len)) != 0)
        return rc;
    if (strata__redis_readonly(c->redis))
        return l1_only(c, STRATA_EREADONLY);
    redis_cmd cmd;
    strata__cmd_tag_bump(&cmd, key, len, strata__tt_random(c));
    redisReply *r;
    rc = strata__redis_run(c->redis, &cmd, 1, &r);
    if (rc != 0)
        return l1_only(c, rc);
    rc = strata__reply_set(r);
    freeReplyObject(r);
    return rc == 0 ? 0 : l1_only(c, rc);
}

int strata_cache_tag_invalidate_soft(strata_cache *c, const char *tenant, const char *tag)
{
    uint64_t now = c->clock();
    strata__reason_set(STRATA_REASON_NONE);
    int rc = strata__l1_tag_soften(c->l1, tenant, tag, now);
    if (rc != 0 || c->redis == NULL)
        return rc;
    char key[STRATA_TAG_KEY_MAX];
    size_t len;
    if ((rc = strata__tag_key_build(strata__l1_prefix(c->l1), tenant, tag, key, sizeof key,
                                    &len)) != 0)
        return rc;
    if (strata__redis_readonly(c->redis))
        return l1_only(c, STRATA_EREADONLY);
    rc = strata__soft_tag_redis(c, tenant, tag, now);
    return rc == 0 ? 0 : l1_only(c, rc);
}

/* ---- stats and health --------------------------------------------------------------------- */

void strata_cache_l2_stats(strata_cache *c, strata_l2_stats *out)
{
    memset(out, 0, sizeof *out);
    out->breaker = "closed";
    out->topology = "none";
    if (c->pool.ops == NULL)
        return;
    redis_state st = {.breaker = "closed", .available = 1, .topology = "single"};
    if (c->redis != NULL)
        strata__redis_state(c->redis, &st);
    else /* a test's fake tier */
        st.readonly = c->pool.ops->readonly(c->pool.self),
        st.link_up = c->pool.ops->link_up(c->pool.self);
    out->configured = 1;
    out->breaker = st.breaker;
    out->available = st.available;
    out->readonly = st.readonly;
    out->coherent = st.link_up;
    out->hits = atomic_load(&c->hits);
    out->misses = atomic_load(&c->misses);
    out->errors = atomic_load(&c->errors);
    out->fallbacks = atomic_load(&c->fallbacks);
    out->expired_soft = atomic_load(&c->expired_soft);
    out->breaker_opens = st.breaker_opens;
    out->invalidations = st.invalidations;
    out->link_drops = st.link_drops;
    memcpy(out->last_error, st.last_error, sizeof out->last_error);
    out->topology = st.topology;
    out->tls = st.tls;
    memcpy(out->primary, st.primary, sizeof out->primary);
    out->nodes = c->redis != NULL ? st.nodes : 1;
}

size_t strata_cache_redis_nodes(strata_cache *c, strata_redis_node *out, size_t cap)
{
    return c->redis != NULL ? strata__redis_nodes(c->redis, out, cap) : 0;
}

int strata_cache_ping(strata_cache *c, uint64_t *latency_us)
{
    if (c->redis == NULL)
        return STRATA_EUNAVAILABLE;
    return strata__redis_ping(c->redis, latency_us);
}

/* ---- listing and info --------------------------------------------------------------------- */

typedef struct keys_scan {
    clear_filter f;
    strata_key_cb cb;
    void *arg;
    size_t found;
} keys_scan;

static int list_one(const char *key, size_t len, void *arg)
{
    keys_scan *ks = arg;
    strata_key_parts p;
    if (!clear_keep(key, len, &ks->f) || strata_key_parse(ks->f.prefix, key, len, &p) != 0)
        return 0;
    char ns[STRATA_NAME_MAX + 1], tenant[STRATA_NAME_MAX + 1];
    memcpy(ns, p.ns, p.ns_len), ns[p.ns_len] = '\0';
    memcpy(tenant, p.tenant, p.tenant_len), tenant[p.tenant_len] = '\0';
    ks->cb(ns, tenant, p.key, p.key_len, ks->arg);
    ks->found++;
    return 0; /* never unlink */
}

int strata_cache_keys(strata_cache *c, const char *ns, const char *tenant, const char *pattern,
                      const char *cursor, size_t limit, strata_key_cb cb, void *arg, char *next,
                      size_t next_cap)
{
    if (cursor == NULL || *cursor == '\0')
        cursor = "0";
    char *end;
    unsigned long long cur = strtoull(cursor, &end, 10);
    if (*end != '\0' || *cursor < '0' || *cursor > '9' || next_cap < 21)
        return STRATA_EINVAL;
    if (limit == 0)
        limit = 100;
    if (c->redis == NULL) {
        uint64_t nx;
        int rc = strata_l1_scan(c->l1, ns, tenant, pattern, cur, limit, c->clock(), cb, arg, &nx);
        snprintf(next, next_cap, "%" PRIu64, nx);
        return rc;
    }
    if ((ns != NULL && strata_name_check(ns) != 0) ||
        (tenant != NULL && strata_name_check(tenant) != 0))
        return STRATA_EBADNAME;
    const char *prefix = strata__l1_prefix(c->l1);
    char match[STRATA_SCAN_MATCH_MAX];
    strata__scan_match_build(prefix, ns, tenant, pattern, match, sizeof match);
    keys_scan ks = {{prefix, ns, tenant, &pattern, pattern != NULL}, cb, arg, 0};
    char count[24];
    snprintf(next, next_cap, "%llu", cur);
    /* SCAN's COUNT is work, not results: go on until a page is full or the scan is done, asking
     * each step for what is still missing, so a page stays close to the limit. */
    do {
        size_t found;
        snprintf(count, sizeof count, "%zu", limit - ks.found);
        int rc = strata__redis_scan_page(c->redis, next, match, count, list_one, &ks, next,
                                         next_cap, &found);
        if (rc != 0)
            return rc;
    } while (ks.found < limit && strcmp(next, "0") != 0);
    return 0;
}

static uint64_t info_u64(const char *info, const char *field)
{
    const char *p = strstr(info, field);
    return p ? strtoull(p + strlen(field), NULL, 10) : 0;
}

static void info_str(const char *info, const char *field, char *out, size_t cap)
{
    const char *p = strstr(info, field);
    out[0] = '\0';
    if (p == NULL)
        return;
    p += strlen(field);
    size_t n = strcspn(p, "\r\n");
    snprintf(out, cap, "%.*s", (int)(n < cap ? n : cap - 1), p);
}

int strata__redis_info_parse(const redisReply *r, strata_redis_info *out)
{
    memset(out, 0, sizeof *out);
    if (r->type != REDIS_REPLY_STRING)
        return STRATA_EPROTO;
    info_str(r->str, "redis_version:", out->version, sizeof out->version);
    info_str(r->str, "maxmemory_policy:", out->maxmemory_policy, sizeof out->maxmemory_policy);
    info_str(r->str, "role:", out->role, sizeof out->role);
    out->used_memory = info_u64(r->str, "used_memory:");
    out->maxmemory = info_u64(r->str, "maxmemory:");
    out->connected_clients = info_u64(r->str, "connected_clients:");
    out->keyspace_hits = info_u64(r->str, "keyspace_hits:");
    out->keyspace_misses = info_u64(r->str, "keyspace_misses:");
    for (const char *p = strstr(r->str, "\ndb"); p != NULL; p = strstr(p + 1, "\ndb"))
        out->keys += info_u64(p, "keys=");
    return 0;
}

int strata_cache_redis_info(strata_cache *c, strata_redis_info *out)
{
    memset(out, 0, sizeof *out);
    if (c->redis == NULL)
        return STRATA_EUNAVAILABLE;
    redis_cmd cmd = {.argc = 2, .argv = {"INFO", "everything"}, .argvlen = {4, 10}};
    redisReply *r;
    int rc = strata__redis_run(c->redis, &cmd, 1, &r);
    if (rc != 0)
        return rc;
    rc = strata__redis_info_parse(r, out);
    freeReplyObject(r);
    return rc;
}
