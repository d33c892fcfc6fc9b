/* config.c: strata serve's settings: defaults, then the environment, then the flags.
 *
 * Every value is checked where it is read, and a bad one stops the server with a message naming
 * the variable or flag, the value and what was expected: a typo must not start a server with a
 * setting nobody asked for.
 */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec.h"
#include "config.h"
#include "limits.h"
#include "log.h"

static int config_error(const char *what, const char *value, const char *why)
{
    fprintf(stderr, "strata serve: %s=%s: %s\n", what, value ? value : "", why);
    return -1;
}

/* HOST:PORT into host (hostcap bytes) and *port. Returns 0, or -1 with the message printed. */
static int parse_addr(const char *s, const char *what, char *host, size_t hostcap, int *port)
{
    const char *colon = strrchr(s, ':');
    if (colon == NULL || colon == s)
        return config_error(what, s, "expected HOST:PORT (e.g. 127.0.0.1:8080)");
    size_t hl = (size_t)(colon - s);
    const char *h = s;
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']')
        h++, hl -= 2;
    if (hl == 0 || hl >= hostcap)
        return config_error(what, s, "bad host");
    memcpy(host, h, hl);
    host[hl] = '\0';
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end != '\0' || p < 1 || p > 65535)
        return config_error(what, s, "port must be a number from 1 to 65535");
    *port = (int)p;
    return 0;
}

static int parse_listen(serve_config *c, const char *s, const char *what)
{
    return parse_addr(s, what, c->listen_host, sizeof c->listen_host, &c->listen_port);
}

static int parse_admin_listen(serve_config *c, const char *s, const char *what)
{
    return parse_addr(s, what, c->admin_host, sizeof c->admin_host, &c->admin_port);
}

static int parse_uint(const char *what, const char *s, unsigned long lo, unsigned long hi,
                      unsigned long *out)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (*s < '0' || *s > '9' || *end != '\0' || v < lo || v > hi) {
        char why[96];
        snprintf(why, sizeof why, "must be a whole number from %lu to %lu", lo, hi);
        return config_error(what, s, why);
    }
    *out = v;
    return 0;
}

static int parse_flag(const char *what, const char *s, int *out)
{
    if (strcmp(s, "1") == 0 || strcmp(s, "true") == 0 || strcmp(s, "yes") == 0)
        return *out = 1, 0;
    if (strcmp(s, "0") == 0 || strcmp(s, "false") == 0 || strcmp(s, "no") == 0)
        return *out = 0, 0;
    return config_error(what, s, "must be true or false");
}

static int parse_level(const char *what, const char *s, int *out)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0)
            return *out = i, 0;
    return config_error(what, s, "must be error, warn, info or debug");
}

static void usage(FILE *f)
{
    fprintf(
        f, "usage: strata serve [options]\n"
           "\n"
           "  --listen HOST:PORT   address to listen on (STRATA_LISTEN, default 127.0.0.1:8080)\n"
           "  --admin-listen HOST:PORT  strata's own API there alone; --listen then proxies\n"
           "                       every path (STRATA_ADMIN_LISTEN)\n"
           "  --workers N          worker threads (STRATA_WORKERS, default: the CPUs it may use)\n"
           "  --tokens-file PATH   TOKEN:ROLE[:TENANT] per line, reloaded on SIGHUP\n"
           "                       (STRATA_TOKENS_FILE; STRATA_TOKENS gives them inline)\n"
           "  --insecure           allow a non-loopback address without tokens\n"
           "  --access-log         one line per request (STRATA_ACCESS_LOG)\n"
           "  --log-level LEVEL    error, warn, info, debug (STRATA_LOG_LEVEL, default info)\n"
           "  --metrics-auth       /metrics needs a read token (STRATA_METRICS_AUTH)\n"
           "  --require-redis      health is 503 while Redis is down (STRATA_REQUIRE_REDIS)\n"
           "  --config FILE        the caching proxy's origins and routes, YAML (STRATA_CONFIG;\n"
           "                       reloaded on SIGHUP)\n"
           "  --upstream URL       proxy every path to URL, obeying its headers (STRATA_UPSTREAM)\n"
           "  --llm-upstream URL   an OpenAI-compatible API cached: /v1/X is URL/X, URL as the\n"
           "                       SDKs write it (https://api.openai.com/v1); OPENAI_API_KEY, if\n"
           "                       set, is sent upstream (STRATA_LLM_UPSTREAM; LLM_CACHE_TTL,\n"
           "                       LLM_CACHE_ENABLED)\n"
           "\n"
           "Limits: STRATA_MAX_CONNECTIONS (10000), STRATA_MAX_BODY (16 MiB), STRATA_IDLE_TIMEOUT\n"
           "(60 s: idle and slow clients are closed), STRATA_BODY_TIMEOUT (60 s: a body must\n"
           "arrive whole within it of its head; past it: 408), STRATA_BODY_BUDGET (64 MiB of\n"
           "request bodies held at once per worker; past it: 503), STRATA_ADMIN_THREADS (2\n"
           "threads for clears and listings), STRATA_ADMIN_QUEUE (64 admin jobs waiting, a\n"
           "quarter of them per tenant; past it: 503), STRATA_LEASE_MAX (300 s: the longest\n"
           "X-Cache-Lease), STRATA_LEASE_WAIT (5 s: a lease GET's wait without X-Cache-Wait),\n"
           "STRATA_LEASE_WAITERS (10000 requests waiting for lease holders; past it: 503).\n"
           "\n"
           "The cache itself: REDIS_URL (unset: memory only), STRATA_L1_MAX_MEMORY, CACHE_TTL,\n"
           "STRATA_PREFIX, REDIS_SOCKET_TIMEOUT, ... (see docs/operations.md).\n"
           "Namespaces: STRATA_NAMESPACES=\"llm:ttl=86400,max_ttl=604800;api:ttl=30,quota=64M\"\n"
           "(ttl, max_ttl, error_ttl in seconds, jitter 0..0.5, quota per tenant in L1;\n"
           "grace, stale_if_error in seconds; beta 0..100 for early refresh, default 1).\n");
}

static int is_loopback(const char *host)
{
    return strcmp(host, "localhost") == 0 || strcmp(host, "::1") == 0 ||
           strncmp(host, "127.", 4) == 0;
}

/* CPUs the cgroup's quota allows (cgroup v2 cpu.max "quota period", rounded up), or 0 when
 * there is no quota or none can be read. */
static unsigned cgroup_cpus(void)
{
    FILE *f = fopen("/sys/fs/cgroup/cpu.max", "r");
    long long quota = -1, period = 0;
    char q[32] = "";
    if (f != NULL) {
        if (fscanf(f, "%31s %lld", q, &period) == 2 && strcmp(q, "max") != 0)
            quota = atoll(q);
        fclose(f);
    } else if ((f = fopen("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "r")) != NULL) { /* v1 */
        if (fscanf(f, "%lld", &quota) != 1)
            quota = -1;
        fclose(f);
        if ((f = fopen("/sys/fs/cgroup/cpu/cpu.cfs_period_us", "r")) != NULL) {
            if (fscanf(f, "%lld", &period) != 1)
                period = 0;
            fclose(f);
        }
    }
    if (quota <= 0 || period <= 0)
        return 0;
    return (unsigned)((quota + period - 1) / period);
}

/* The default worker count: the CPUs this process may run on (its affinity mask: taskset,
 * cpusets), within its cgroup's CPU quota (a container's or a Kubernetes pod's CPU limit); the
 * online CPUs only when neither can be read. More workers than CPUs only queue behind each other
 * (measured: 2 workers pinned to one core, p99 4.3 ms against 1.2 ms for 1). */
static unsigned default_workers(char *from, size_t cap)
{
    cpu_set_t set;
    unsigned n = 0;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) {
        n = (unsigned)CPU_COUNT(&set);
        snprintf(from, cap, "its affinity mask");
    } else {
        long online = sysconf(_SC_NPROCESSORS_ONLN);
        n = online > 0 ? (unsigned)online : 1;
        snprintf(from, cap, "the online CPUs");
    }
    unsigned quota = cgroup_cpus();
    if (quota > 0 && quota < n) {
        n = quota;
        snprintf(from, cap, "its cgroup's CPU quota");
    }
    return n > 256 ? 256 : n;
}

void serve_defaults(serve_config *c)
{
    memset(c, 0, sizeof *c);
    strcpy(c->listen_host, "127.0.0.1");
    c->listen_port = 8080;
    c->loopback = 1;
    c->workers = default_workers(c->workers_from, sizeof c->workers_from);
    c->log_level = LOG_INFO;
    c->max_body = 16u << 20;
    c->max_headers = 16u << 10;
    c->idle_timeout_s = 60;
    c->body_timeout_s = 60;
    c->max_connections = 10000;
    c->drain_timeout_s = 10;
    c->rl_instances = 1;
    c->body_budget = 64u << 20;
    c->admin_threads = 2;
    c->admin_queue = 64;
    c->lease_max_ms = 300000;
    c->lease_wait_ms = 5000;
    c->lease_waiters = 10000;
}

/* STRATA_LEASE_MAX, STRATA_LEASE_WAIT (seconds, fractions to the millisecond allowed) and
 * STRATA_LEASE_WAITERS. Returns 0 or -1. */
static int lease_settings(serve_config *c)
{
    const char *v;
    unsigned long n;
    if ((v = getenv("STRATA_LEASE_MAX")) && *v &&
        codec_seconds(v, 1000, STRATA_LEASE_MAX_MS, &c->lease_max_ms) != 0)
        return config_error("STRATA_LEASE_MAX", v, "must be seconds from 1 to 86400");
    if ((v = getenv("STRATA_LEASE_WAIT")) && *v &&
        codec_seconds(v, 0, SERVE_LEASE_WAIT_MAX_MS, &c->lease_wait_ms) != 0)
        return config_error("STRATA_LEASE_WAIT", v, "must be seconds from 0 to 60");
    if ((v = getenv("STRATA_LEASE_WAITERS")) && *v) {
        /* The library's own bound is per process too: past it a wait would be refused anyway. */
        if (parse_uint("STRATA_LEASE_WAITERS", v, 1, STRATA_LEASE_WAIT_MAX, &n) != 0)
            return -1;
        c->lease_waiters = (unsigned)n;
    }
    return 0;
}

/* A route's rate limit, checked by the parser of STRATA_RATE_LIMITS. */
static int check_rule(const char *rule, char *err, size_t cap)
{
    limit_rules r;
    int rc = limits_parse(rule, &r, err, cap);
    limits_free(&r);
    return rc;
}

proxy_load_options serve_proxy_options = {.check_rule = check_rule};

/* The seed services' LLM_CACHE_ENABLED, LLM_CACHE_TTL, EMBEDDING_CACHE_ENABLED and
 * EMBEDDING_CACHE_TTL (seconds): openai routes' defaults. */
static int llm_defaults(void)
{
    const char *v;
    unsigned long n;
    int on = 1;
    if ((v = getenv("LLM_CACHE_ENABLED")) && *v && parse_flag("LLM_CACHE_ENABLED", v, &on) != 0)
        return -1;
    serve_proxy_options.llm_cache_off = !on;
    on = 1;
    if ((v = getenv("EMBEDDING_CACHE_ENABLED")) && *v &&
        parse_flag("EMBEDDING_CACHE_ENABLED", v, &on) != 0)
        return -1;
    serve_proxy_options.embedding_cache_off = !on;
    if ((v = getenv("EMBEDDING_CACHE_TTL")) && *v) {
        if (parse_uint("EMBEDDING_CACHE_TTL", v, 1, 10ul * 365 * 86400, &n) != 0)
            return -1;
        serve_proxy_options.embedding_ttl_ms = (uint64_t)n * 1000;
    }
    if ((v = getenv("LLM_CACHE_TTL")) && *v) {
        if (parse_uint("LLM_CACHE_TTL", v, 1, 10ul * 365 * 86400, &n) != 0)
            return -1;
        serve_proxy_options.llm_ttl_ms = (uint64_t)n * 1000;
    }
    return 0;
}

/* A flag, else the variable (empty counts as unset). */
static const char *flag_or_env(const char *flag, const char *env)
{
    const char *v = getenv(env);
    return flag ? flag : v && *v ? v : NULL;
}

/* The proxy's configuration: --config, or --upstream and/or --llm-upstream, else STRATA_CONFIG,
 * STRATA_UPSTREAM, STRATA_LLM_UPSTREAM (a flag wins over a variable; a file and a URL are refused
 * together, as they would say different things). Returns 0 or -1 (printed). */
static int proxy_settings(serve_config *c, const char *flag_config, const char *flag_upstream,
                          const char *flag_llm)
{
    int flags = flag_config || flag_upstream || flag_llm;
    const char *file = flags ? flag_config : flag_or_env(NULL, "STRATA_CONFIG");
    const char *url = flags ? flag_upstream : flag_or_env(NULL, "STRATA_UPSTREAM");
    const char *llm = flags ? flag_llm : flag_or_env(NULL, "STRATA_LLM_UPSTREAM");
    if (file && (url || llm)) {
        fprintf(stderr,
                "strata serve: %s and %s: give one of them (the file declares its "
                "origins and routes)\n",
                flags ? "--config" : "STRATA_CONFIG",
                url ? (flags ? "--upstream" : "STRATA_UPSTREAM")
                    : (flags ? "--llm-upstream" : "STRATA_LLM_UPSTREAM"));
        return -1;
    }
    c->proxy_from = file  ? (flags ? "--config" : "STRATA_CONFIG")
                    : llm ? (flags ? "--llm-upstream" : "STRATA_LLM_UPSTREAM")
                          : (flags ? "--upstream" : "STRATA_UPSTREAM");
    if (llm_defaults() != 0)
        return -1;
    char err[1024];
    int rc = 0;
    if (file != NULL) {
        rc = proxy_config_load_file(file, &serve_proxy_options, &c->proxy, err, sizeof err);
    } else if (llm != NULL) {
        const char *key = getenv("OPENAI_API_KEY");
        rc = proxy_config_from_llm_upstream(llm, key && *key ? "OPENAI_API_KEY" : NULL, url,
                                            &serve_proxy_options, &c->proxy, err, sizeof err);
    } else if (url != NULL) {
        rc = proxy_config_from_upstream(url, &c->proxy, err, sizeof err);
    }
    if (rc != 0) {
        fprintf(stderr, "strata serve: %s: %s\n", c->proxy_from, err);
        return -1;
    }
    c->proxy_file = file;
    if (file == NULL && url == NULL && llm == NULL)
        c->proxy_from = NULL;
    return 0;
}

int serve_config_load(serve_config *c, int argc, char **argv)
{
    const char *flag_config = NULL, *flag_upstream = NULL, *flag_llm = NULL;
    serve_defaults(c);
    const char *bad = NULL;
    int rc = strata_cache_config_init(&c->cache, &bad);
    if (rc != 0) {
        char why[200];
        if (bad != NULL)
            strata_cache_config_why(bad, getenv(bad), why, sizeof why);
        return config_error(bad ? bad : "environment", bad ? getenv(bad) : "",
                            bad ? why : strata_strerror(rc));
    }
    c->cache.l1.maintenance_interval_ms = 1000;
    c->cache.log = log_from_lib;
    unsigned long n;
    const char *v;
    if ((v = getenv("STRATA_ADMIN_LISTEN")) && *v &&
        parse_admin_listen(c, v, "STRATA_ADMIN_LISTEN") != 0)
        return -1;
    if ((v = getenv("STRATA_LISTEN")) && *v && parse_listen(c, v, "STRATA_LISTEN") != 0)
        return -1;
    if ((v = getenv("STRATA_WORKERS")) && *v) {
        if (parse_uint("STRATA_WORKERS", v, 1, 256, &n) != 0)
            return -1;
        c->workers = (unsigned)n;
        snprintf(c->workers_from, sizeof c->workers_from, "STRATA_WORKERS");
    }
    c->tokens = getenv("STRATA_TOKENS");
    c->tokens_file = getenv("STRATA_TOKENS_FILE");
    if ((v = getenv("STRATA_INSECURE")) && *v && parse_flag("STRATA_INSECURE", v, &c->insecure))
        return -1;
    if ((v = getenv("STRATA_ACCESS_LOG")) && *v &&
        parse_flag("STRATA_ACCESS_LOG", v, &c->access_log))
        return -1;
    if ((v = getenv("STRATA_METRICS_AUTH")) && *v &&
        parse_flag("STRATA_METRICS_AUTH", v, &c->metrics_auth))
        return -1;
    if ((v = getenv("STRATA_REQUIRE_REDIS")) && *v &&
        parse_flag("STRATA_REQUIRE_REDIS", v, &c->require_redis))
        return -1;
    if ((v = getenv("STRATA_LOG_LEVEL")) && *v && parse_level("STRATA_LOG_LEVEL", v, &c->log_level))
        return -1;
    if ((v = getenv("STRATA_MAX_BODY")) && *v) {
        if (parse_uint("STRATA_MAX_BODY", v, 1024, 1ul << 30, &n) != 0)
            return -1;
        c->max_body = n;
    }
    if ((v = getenv("STRATA_MAX_CONNECTIONS")) && *v) {
        if (parse_uint("STRATA_MAX_CONNECTIONS", v, 1, 1000000, &n) != 0)
            return -1;
        c->max_connections = (unsigned)n;
    }
    if ((v = getenv("STRATA_BODY_BUDGET")) && *v) {
        if (parse_uint("STRATA_BODY_BUDGET", v, 1024, 1ul << 34, &n) != 0)
            return -1;
        c->body_budget = n;
    }
    c->rate_limits = getenv("STRATA_RATE_LIMITS");
    c->rl_instances = 1;
    if ((v = getenv("STRATA_INSTANCES")) && *v) {
        if (parse_uint("STRATA_INSTANCES", v, 1, 10000, &n) != 0)
            return -1;
        c->rl_instances = (unsigned)n;
    }
    if ((v = getenv("STRATA_RATELIMIT_FALLBACK")) && *v) {
        if (strcmp(v, "local") == 0)
            c->rl_fallback = STRATA_RL_FALLBACK_LOCAL;
        else if (strcmp(v, "open") == 0)
            c->rl_fallback = STRATA_RL_FALLBACK_OPEN;
        else if (strcmp(v, "closed") == 0)
            c->rl_fallback = STRATA_RL_FALLBACK_CLOSED;
        else
            return config_error("STRATA_RATELIMIT_FALLBACK", v, "must be local, open or closed");
    }
    if ((v = getenv("STRATA_IDLE_TIMEOUT")) && *v) {
        if (parse_uint("STRATA_IDLE_TIMEOUT", v, 1, 3600, &n) != 0)
            return -1;
        c->idle_timeout_s = (unsigned)n;
    }
    if ((v = getenv("STRATA_BODY_TIMEOUT")) && *v) {
        if (parse_uint("STRATA_BODY_TIMEOUT", v, 1, 3600, &n) != 0)
            return -1;
        c->body_timeout_s = (unsigned)n;
    }
    if ((v = getenv("STRATA_ADMIN_THREADS")) && *v) {
        if (parse_uint("STRATA_ADMIN_THREADS", v, 1, 64, &n) != 0)
            return -1;
        c->admin_threads = (unsigned)n;
    }
    if ((v = getenv("STRATA_ADMIN_QUEUE")) && *v) {
        if (parse_uint("STRATA_ADMIN_QUEUE", v, 1, 100000, &n) != 0)
            return -1;
        c->admin_queue = (unsigned)n;
    }
    if (lease_settings(c) != 0)
        return -1;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 1;
        } else if (strcmp(a, "--insecure") == 0) {
            c->insecure = 1;
        } else if (strcmp(a, "--access-log") == 0) {
            c->access_log = 1;
        } else if (strcmp(a, "--metrics-auth") == 0) {
            c->metrics_auth = 1;
        } else if (strcmp(a, "--require-redis") == 0) {
            c->require_redis = 1;
        } else if (next == NULL) {
            fprintf(stderr, "strata serve: unknown option or missing value: %s\n", a);
            usage(stderr);
            return -1;
        } else if (strcmp(a, "--admin-listen") == 0) {
            if (parse_admin_listen(c, next, "--admin-listen") != 0)
                return -1;
            i++;
        } else if (strcmp(a, "--listen") == 0) {
            if (parse_listen(c, next, "--listen") != 0)
                return -1;
            i++;
        } else if (strcmp(a, "--workers") == 0) {
            if (parse_uint("--workers", next, 1, 256, &n) != 0)
                return -1;
            c->workers = (unsigned)n, i++;
            snprintf(c->workers_from, sizeof c->workers_from, "--workers");
        } else if (strcmp(a, "--tokens-file") == 0) {
            c->tokens_file = next, i++;
        } else if (strcmp(a, "--config") == 0) {
            flag_config = next, i++;
        } else if (strcmp(a, "--upstream") == 0) {
            flag_upstream = next, i++;
        } else if (strcmp(a, "--llm-upstream") == 0) {
            flag_llm = next, i++;
        } else if (strcmp(a, "--log-level") == 0) {
            if (parse_level("--log-level", next, &c->log_level) != 0)
                return -1;
            i++;
        } else {
            fprintf(stderr, "strata serve: unknown option: %s\n", a);
            usage(stderr);
            return -1;
        }
    }
    c->loopback = is_loopback(c->listen_host) && (c->admin_port == 0 || is_loopback(c->admin_host));
    if (proxy_settings(c, flag_config, flag_upstream, flag_llm) != 0)
        return -1;
    if (c->admin_port != 0 && c->proxy == NULL) {
        fprintf(stderr, "strata serve: STRATA_ADMIN_LISTEN (--admin-listen) moves strata's own API "
                        "away from --listen, which then proxies every path: it needs --config or "
                        "--upstream\n");
        return -1;
    }
    if (c->admin_port != 0 && c->admin_port == c->listen_port &&
        strcmp(c->admin_host, c->listen_host) == 0) {
        fprintf(stderr, "strata serve: STRATA_ADMIN_LISTEN (--admin-listen) is the --listen "
                        "address: give the admin API an address of its own\n");
        return -1;
    }
    return 0;
}
