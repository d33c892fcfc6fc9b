/* serve.c: strata serve: configuration, worker threads, the request dispatcher, signals.
 *
 * One process, N worker threads (default: the number of cores). Each worker has its own libevent
 * loop, its own HTTP connections (conn.c), its own listening socket on the same address
 * (SO_REUSEPORT: the kernel spreads connections), and its own strata_loop (one pipelined Redis
 * connection). All workers share one strata_cache, hence one L1. Blocking library calls (admin work
 * that scans or asks Redis synchronously) run on one offload thread and come back to the worker's
 * loop.
 *
 * The main thread only waits for signals: SIGTERM/SIGINT drain (stop accepting, finish what is
 * in flight, exit 0), SIGHUP reloads the tokens.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/thread.h>

#include "server.h"

/* ---- configuration ------------------------------------------------------------------------ */

static int config_error(const char *what, const char *value, const char *why)
{
    fprintf(stderr, "strata serve: %s=%s: %s\n", what, value ? value : "", why);
    return -1;
}

static int parse_listen(serve_config *c, const char *s, const char *what)
{
    const char *colon = strrchr(s, ':');
    if (colon == NULL || colon == s)
        return config_error(what, s, "expected HOST:PORT (e.g. 127.0.0.1:8080)");
    size_t hl = (size_t)(colon - s);
    const char *h = s;
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']')
        h++, hl -= 2;
    if (hl == 0 || hl >= sizeof c->listen_host)
        return config_error(what, s, "bad host");
    memcpy(c->listen_host, h, hl);
    c->listen_host[hl] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || port < 1 || port > 65535)
        return config_error(what, s, "port must be a number from 1 to 65535");
    c->listen_port = (int)port;
    return 0;
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
           "  --workers N          worker threads (STRATA_WORKERS, default: the cores)\n"
           "  --tokens-file PATH   TOKEN:ROLE[:TENANT] per line, reloaded on SIGHUP\n"
           "                       (STRATA_TOKENS_FILE; STRATA_TOKENS gives them inline)\n"
           "  --insecure           allow a non-loopback address without tokens\n"
           "  --access-log         one line per request (STRATA_ACCESS_LOG)\n"
           "  --log-level LEVEL    error, warn, info, debug (STRATA_LOG_LEVEL, default info)\n"
           "  --metrics-auth       /metrics needs a read token (STRATA_METRICS_AUTH)\n"
           "  --require-redis      health is 503 while Redis is down (STRATA_REQUIRE_REDIS)\n"
           "\n"
           "Limits: STRATA_MAX_CONNECTIONS (10000), STRATA_MAX_BODY (16 MiB), STRATA_IDLE_TIMEOUT\n"
           "(60 s: idle and slow clients are closed).\n"
           "\n"
           "The cache itself: REDIS_URL (unset: memory only), STRATA_L1_MAX_MEMORY, CACHE_TTL,\n"
           "STRATA_PREFIX, REDIS_SOCKET_TIMEOUT, ... (see docs/operations.md).\n"
           "Namespaces: STRATA_NAMESPACES=\"llm:ttl=86400,max_ttl=604800;api:ttl=30,quota=64M\"\n"
           "(ttl, max_ttl, error_ttl in seconds, jitter 0..0.5, quota per tenant in L1).\n");
}

static int is_loopback(const char *host)
{
    return strcmp(host, "localhost") == 0 || strcmp(host, "::1") == 0 ||
           strncmp(host, "127.", 4) == 0;
}

/* Environment first, then flags (flags win). Returns 0, 1 (--help shown), or -1. */
void serve_defaults(serve_config *c)
{
    memset(c, 0, sizeof *c);
    strcpy(c->listen_host, "127.0.0.1");
    c->listen_port = 8080;
    c->loopback = 1;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    c->workers = cores > 0 ? (unsigned)cores : 1;
    c->log_level = LOG_INFO;
    c->max_body = 16u << 20;
    c->max_headers = 16u << 10;
    c->idle_timeout_s = 60;
    c->max_connections = 10000;
    c->drain_timeout_s = 10;
    c->rl_instances = 1;
}

static int load_config(serve_config *c, int argc, char **argv)
{
    serve_defaults(c);
    const char *bad = NULL;
    int rc = strata_cache_config_init(&c->cache, &bad);
    if (rc != 0) {
        const char *why = rc == STRATA_EBADURL ? "malformed" : strata_strerror(rc);
        const char *why_url = NULL;
        if (rc == STRATA_EBADURL)
            strata_redis_url_check(getenv("REDIS_URL"), &why_url);
        return config_error(bad ? bad : "environment", bad ? getenv(bad) : "",
                            why_url ? why_url : why);
    }
    c->cache.l1.maintenance_interval_ms = 1000;
    c->cache.log = log_from_lib;
    unsigned long n;
    const char *v;
    if ((v = getenv("STRATA_LISTEN")) && *v && parse_listen(c, v, "STRATA_LISTEN") != 0)
        return -1;
    if ((v = getenv("STRATA_WORKERS")) && *v) {
        if (parse_uint("STRATA_WORKERS", v, 1, 256, &n) != 0)
            return -1;
        c->workers = (unsigned)n;
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
        } else if (strcmp(a, "--listen") == 0) {
            if (parse_listen(c, next, "--listen") != 0)
                return -1;
            i++;
        } else if (strcmp(a, "--workers") == 0) {
            if (parse_uint("--workers", next, 1, 256, &n) != 0)
                return -1;
            c->workers = (unsigned)n, i++;
        } else if (strcmp(a, "--tokens-file") == 0) {
            c->tokens_file = next, i++;
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
    c->loopback = is_loopback(c->listen_host);
    return 0;
}

/* ---- dispatch ----------------------------------------------------------------------------- */

/* The role a route needs for a method. */
static int needed_role(const server *s, const req *q)
{
    switch (q->r.id) {
    case R_LIVEZ:
    case R_READYZ:
    case R_HEALTH:
        return ROLE_NONE;
    case R_METRICS:
        return s->cfg.metrics_auth ? ROLE_READ : ROLE_NONE;
    case R_KV:
        return q->method == M_GET || q->method == M_HEAD ? ROLE_READ : ROLE_WRITE;
    case R_MGET:
        return ROLE_READ;
    case R_SESSION:
        return q->method == M_GET ? ROLE_READ : ROLE_WRITE;
    case R_SESSIONS:
        return ROLE_WRITE;
    case R_MSET:
    case R_INVALIDATE:
    case R_RATELIMIT:
        return ROLE_WRITE;
    default:
        return ROLE_ADMIN;
    }
}

/* Who is calling, and in which tenant. Returns 0, or answers 400/401/403 and returns -1. */
static int authenticate(req *q)
{
    server *s = q->w->srv;
    const char *bound = NULL;
    const char *hdr = get_header(q, "Authorization");
    pthread_rwlock_rdlock(&s->auth_lock);
    size_t ntokens = auth_count(s->auth);
    int role = ROLE_NONE;
    if (ntokens == 0) {
        role = ROLE_ADMIN; /* no tokens: loopback development mode (checked at start) */
    } else if (hdr != NULL && strncasecmp(hdr, "Bearer ", 7) == 0) {
        role = auth_check(s->auth, hdr + 7, strlen(hdr + 7), &bound);
        if (bound != NULL)
            snprintf(q->tenant, sizeof q->tenant, "%s", bound);
    }
    pthread_rwlock_unlock(&s->auth_lock);
    q->role = role;
    q->tenant_bound = bound != NULL;
    int need = needed_role(s, q);
    if (role < need) {
        if (role == ROLE_NONE)
            reply_error(q, 401, "unauthorized",
                        hdr ? "the bearer token is not valid" : "a bearer token is required");
        else
            reply_error(q, 403, "forbidden", "this endpoint needs the %s role (the token has %s)",
                        auth_role_name(need), auth_role_name(role));
        return -1;
    }
    if (q->r.id == R_LIVEZ || q->r.id == R_READYZ)
        return 0; /* probes act in no tenant: a stray X-Tenant must not fail them */
    /* The tenant: X-Tenant, or ?tenant= on the admin API; a bound token allows only its own. */
    const char *asked = get_header(q, "X-Tenant");
    if (asked == NULL && (q->r.id == R_KEYS || q->r.id == R_CLEAR || q->r.id == R_INSPECT))
        asked = get_query(q, "tenant");
    if (asked != NULL && strata_name_check(asked) != 0) {
        reply_error(q, 400, "bad_tenant", "tenant must be 1-64 characters of A-Z a-z 0-9 _ . -");
        return -1;
    }
    if (q->tenant_bound && asked != NULL && strcmp(asked, q->tenant) != 0) {
        reply_error(q, 403, "forbidden", "this token is bound to another tenant");
        return -1;
    }
    if (!q->tenant_bound)
        snprintf(q->tenant, sizeof q->tenant, "%s", asked ? asked : STRATA_DEFAULT_TENANT);
    return 0;
}

static void route_request(req *q)
{
    switch (q->r.id) {
    case R_LIVEZ:
        admin_livez(q);
        break;
    case R_READYZ:
        admin_readyz(q);
        break;
    case R_METRICS:
        admin_metrics(q);
        break;
    case R_HEALTH:
        admin_health(q);
        break;
    case R_STATS:
        admin_stats(q);
        break;
    case R_CLEAR:
        admin_clear(q);
        break;
    case R_KEYS:
        admin_keys(q);
        break;
    case R_INSPECT:
        admin_inspect(q);
        break;
    case R_KV:
        kv_handle(q);
        break;
    case R_MGET:
        mget_handle(q);
        break;
    case R_MSET:
        mset_handle(q);
        break;
    case R_INVALIDATE:
        invalidate_handle(q);
        break;
    case R_RATELIMIT:
        ratelimit_handle(q);
        break;
    case R_SESSIONS:
    case R_SESSION:
        session_handle(q);
        break;
    }
}

static void allow_header(req *q)
{
    static const struct {
        unsigned bit;
        const char *name;
    } m[] = {{M_GET, "GET"},   {M_HEAD, "HEAD"},     {M_PUT, "PUT"},
             {M_POST, "POST"}, {M_DELETE, "DELETE"}, {M_PATCH, "PATCH"}};
    char allow[96] = "";
    for (size_t i = 0; i < sizeof m / sizeof *m; i++)
        if (q->r.methods & m[i].bit) {
            if (allow[0])
                strcat(allow, ", ");
            strcat(allow, m[i].name);
        }
    add_header(q, "Allow", allow);
}

void serve_request(req *q, const char *path)
{
    worker *w = q->w;
    atomic_fetch_add(&w->inflight, 1);
    if (atomic_load(&w->srv->draining))
        q->close = 1;
    route_match(path, w->srv->cfg.cache.l1.max_key_len, &q->r);
    if (q->r.id == R_NOT_FOUND) {
        reply_error(q, 404, "not_found", "no such route");
    } else if (!(q->r.methods & q->method)) {
        allow_header(q);
        reply_error(q, 405, "method_not_allowed", "this route does not accept this method");
    } else if (q->r.error != NULL) {
        reply_error(q, route_error_status(&q->r), q->r.error_code, "%s", q->r.error);
    } else if (authenticate(q) == 0) {
        limits_apply(q, route_request);
    }
}

/* ---- offload ------------------------------------------------------------------------------ */

static void job_back(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    offload_job *j = arg;
    j->done(j->arg);
    free(j);
}

void offload(req *q, void (*fn)(void *), void (*done)(void *), void *arg)
{
    server *s = q->w->srv;
    offload_job *j = calloc(1, sizeof *j);
    if (j == NULL) { /* the request still gets an answer */
        fn(arg);
        done(arg);
        return;
    }
    j->w = q->w, j->fn = fn, j->done = done, j->arg = arg;
    pthread_mutex_lock(&s->offload_lock);
    if (s->jobs_tail)
        s->jobs_tail->next = j;
    else
        s->jobs_head = j;
    s->jobs_tail = j;
    pthread_cond_signal(&s->offload_cond);
    pthread_mutex_unlock(&s->offload_lock);
}

static void *offload_main(void *arg)
{
    server *s = arg;
    pthread_mutex_lock(&s->offload_lock);
    for (;;) {
        while (s->jobs_head == NULL && !s->offload_stop)
            pthread_cond_wait(&s->offload_cond, &s->offload_lock);
        offload_job *j = s->jobs_head;
        if (j == NULL)
            break;
        s->jobs_head = j->next;
        if (s->jobs_head == NULL)
            s->jobs_tail = NULL;
        pthread_mutex_unlock(&s->offload_lock);
        j->fn(j->arg);
        struct timeval now = {0, 0};
        /* Back to the worker's own thread: event_base_once is safe across threads once
         * evthread_use_pthreads() was called. */
        if (event_base_once(j->w->base, -1, EV_TIMEOUT, job_back, j, &now) != 0) {
            log_msg(LOG_ERROR, "could not hand an admin result back to its worker");
            free(j);
        }
        pthread_mutex_lock(&s->offload_lock);
    }
    pthread_mutex_unlock(&s->offload_lock);
    return NULL;
}

/* ---- workers ------------------------------------------------------------------------------ */

/* A listening socket on the configured address with SO_REUSEPORT, so every worker has its own
 * and the kernel balances connections between them. */
static int listen_socket(const serve_config *c, char *err, size_t errcap)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV},
                    *res = NULL;
    char port[8];
    snprintf(port, sizeof port, "%d", c->listen_port);
    int gai = getaddrinfo(c->listen_host, port, &hints, &res);
    if (gai != 0) {
        snprintf(err, errcap, "cannot resolve %s: %s", c->listen_host, gai_strerror(gai));
        return -1;
    }
    int fd = socket(res->ai_family, res->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
        snprintf(err, errcap, "cannot listen on %s:%d: %s", c->listen_host, c->listen_port,
                 strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

static int worker_init(server *s, worker *w, unsigned index, char *err, size_t errcap)
{
    w->srv = s;
    w->index = index;
    w->metrics = metrics_new();
    w->base = event_base_new();
    if (w->metrics == NULL || w->base == NULL ||
        strata_loop_new(s->cache, w->base, &w->loop) != 0) {
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    int fd = listen_socket(&s->cfg, err, errcap);
    if (fd < 0)
        return -1;
    return conn_listen(w, fd, err, errcap);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    event_base_dispatch(w->base);
    return NULL;
}

static void worker_destroy(worker *w)
{
    /* The Redis link first: its pending operations answer their requests, whose connections
     * are then closed with the rest. */
    strata_loop_free(w->loop);
    conn_close_all(w);
    if (w->base != NULL)
        event_base_free(w->base);
    metrics_free(w->metrics);
}

/* ---- life cycle --------------------------------------------------------------------------- */

static void reload_tokens(server *s)
{
    char err[512];
    auth_table *t = auth_load(s->cfg.tokens, s->cfg.tokens_file, err, sizeof err);
    if (t == NULL) {
        log_msg(LOG_ERROR, "SIGHUP: tokens not reloaded, the old ones stay: %s", err);
        return;
    }
    /* No tokens means "everyone is admin": never let a reload switch authentication off. */
    if (auth_count(t) == 0 && auth_count(s->auth) > 0) {
        auth_free(t);
        log_msg(LOG_ERROR, "SIGHUP: the new token list is empty; refusing to turn authentication "
                           "off, the old tokens stay");
        return;
    }
    pthread_rwlock_wrlock(&s->auth_lock);
    auth_table *old = s->auth;
    s->auth = t;
    pthread_rwlock_unlock(&s->auth_lock);
    auth_free(old);
    log_msg(LOG_INFO, "SIGHUP: %zu tokens loaded", auth_count(t));
}

/* Stops w's loop once it has nothing in flight and every answer was taken by its client (or the
 * drain deadline passed). Checked on the worker's own thread and broken at once (loopbreak, not
 * loopexit): no other callback of the same loop turn can start a request between the check and
 * the stop, which would then be failed by strata_loop_free (a 503 to a client during a drain). */
static void stop_when_idle(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    worker *w = arg;
    int inflight = atomic_load(&w->inflight);
    if ((inflight > 0 || conn_unsent(w)) && strata_now_ms() < w->srv->drain_deadline_ms) {
        struct timeval soon = {0, 10000};
        event_base_once(w->base, -1, EV_TIMEOUT, stop_when_idle, w, &soon);
        return;
    }
    if (inflight > 0)
        log_msg(LOG_WARN, "drain timeout: %d requests still in flight", inflight);
    event_base_loopbreak(w->base);
}

/* The first step of a drain, on each worker: stop accepting, then stop when idle. */
static void start_drain(evutil_socket_t fd, short what, void *arg)
{
    worker *w = arg;
    conn_stop_listening(w);
    stop_when_idle(fd, what, w);
}

/* SIGTERM/SIGINT: every worker stops accepting, lets what is in flight finish (up to the drain
 * timeout) and stops; the caller joins them. */
static void drain(server *s)
{
    atomic_store(&s->draining, 1);
    s->drain_deadline_ms = strata_now_ms() + s->cfg.drain_timeout_s * 1000u;
    struct timeval now = {0, 0};
    for (unsigned i = 0; i < s->cfg.workers; i++)
        event_base_once(s->workers[i].base, -1, EV_TIMEOUT, start_drain, &s->workers[i], &now);
}

static int start(server *s)
{
    char err[512];
    s->auth = auth_load(s->cfg.tokens, s->cfg.tokens_file, err, sizeof err);
    if (s->auth == NULL) {
        fprintf(stderr, "strata serve: %s\n", err);
        return -1;
    }
    if (auth_count(s->auth) == 0 && !s->cfg.loopback && !s->cfg.insecure) {
        fprintf(stderr,
                "strata serve: refusing to listen on %s without tokens: set STRATA_TOKENS "
                "or --tokens-file, or pass --insecure\n",
                s->cfg.listen_host);
        return -1;
    }
    if (limits_parse(s->cfg.rate_limits, &s->rules, err, sizeof err) != 0) {
        fprintf(stderr, "strata serve: STRATA_RATE_LIMITS: %s\n", err);
        return -1;
    }
    int rc = strata_cache_new(&s->cfg.cache, &s->cache);
    if (rc != 0) {
        fprintf(stderr, "strata serve: cannot create the cache: %s\n", strata_strerror(rc));
        return -1;
    }
    if (strata_ratelimiter_new(s->cache, &s->rl) != 0 ||
        strata_ratelimit_configure(s->rl, s->cfg.rl_fallback, s->cfg.rl_instances) != 0) {
        fprintf(stderr, "strata serve: cannot create the rate limiter\n");
        return -1;
    }
    if (namespaces_apply(strata_cache_l1(s->cache), getenv("STRATA_NAMESPACES"), err, sizeof err) !=
        0) {
        fprintf(stderr, "strata serve: STRATA_NAMESPACES: %s\n", err);
        return -1;
    }
    s->workers = calloc(s->cfg.workers, sizeof *s->workers);
    if (s->workers == NULL)
        return -1;
    for (unsigned i = 0; i < s->cfg.workers; i++)
        if (worker_init(s, &s->workers[i], i, err, sizeof err) != 0) {
            fprintf(stderr, "strata serve: %s\n", err);
            return -1;
        }
    return 0;
}

static void stop(server *s)
{
    if (s->workers != NULL)
        for (unsigned i = 0; i < s->cfg.workers; i++)
            worker_destroy(&s->workers[i]);
    free(s->workers);
    strata_ratelimiter_free(s->rl);
    strata_cache_free(s->cache);
    auth_free(s->auth);
    limits_free(&s->rules);
}

int serve_main(int argc, char **argv)
{
    server s;
    memset(&s, 0, sizeof s);
    int rc = load_config(&s.cfg, argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    log_set_level(s.cfg.log_level);
    evthread_use_pthreads();
    /* Signals go to the main thread only: block them before any thread starts. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    pthread_rwlock_init(&s.auth_lock, NULL);
    pthread_mutex_init(&s.offload_lock, NULL);
    pthread_cond_init(&s.offload_cond, NULL);
    s.started_ms = strata_now_ms();
    if (start(&s) != 0) {
        stop(&s);
        return 1;
    }
    pthread_create(&s.offload_thread, NULL, offload_main, &s);
    for (unsigned i = 0; i < s.cfg.workers; i++)
        pthread_create(&s.workers[i].thread, NULL, worker_main, &s.workers[i]);
    strata_l2_stats l2;
    strata_cache_l2_stats(s.cache, &l2);
    int v6 = strchr(s.cfg.listen_host, ':') != NULL;
    log_msg(LOG_INFO, "strata %s listening on http://%s%s%s:%d (%u workers, %s, %zu tokens)",
            strata_version(), v6 ? "[" : "", s.cfg.listen_host, v6 ? "]" : "", s.cfg.listen_port,
            s.cfg.workers, l2.configured ? "L1 + Redis" : "memory only (set REDIS_URL for Redis)",
            auth_count(s.auth));
    for (;;) {
        int sig = 0;
        sigwait(&set, &sig);
        if (sig == SIGHUP) {
            reload_tokens(&s);
            continue;
        }
        log_msg(LOG_INFO, "%s: draining, then exiting", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        break;
    }
    drain(&s);
    for (unsigned i = 0; i < s.cfg.workers; i++)
        pthread_join(s.workers[i].thread, NULL);
    pthread_mutex_lock(&s.offload_lock);
    s.offload_stop = 1;
    pthread_cond_signal(&s.offload_cond);
    pthread_mutex_unlock(&s.offload_lock);
    pthread_join(s.offload_thread, NULL);
    stop(&s);
    log_msg(LOG_INFO, "stopped");
    return 0;
}
