/* serve.c: strata serve's life: worker threads, start, signals, drain, stop.
 *
 * One process, N worker threads (default: the number of cores). Each worker has its own libevent
 * loop, its own HTTP server (http/http_server.h, given dispatch.c's callbacks), its own listening
 * socket on the same address (SO_REUSEPORT: the kernel spreads connections), and its own
 * strata_loop (one pipelined Redis connection). All workers share one strata_cache, hence one L1.
 * Blocking library calls (admin work that scans or asks Redis synchronously) run on two lanes of
 * threads (offload.c), bulk and quick, and come back to the worker's loop.
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
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "config.h"
#include "dispatch.h"
#include "history.h"
#include "llm/llm_memo.h"
#include "log.h"
#include "proxy.h"
#include "namespaces.h"
#include "server.h"

/* ---- descriptors -------------------------------------------------------------------------- */

/* Descriptors the process needs besides its clients' sockets: stdio; per worker a listener, an
 * epoll, a wakeup pair and its Redis connection; the Redis pool and the invalidation link; and
 * room for what opens now and then (the tokens file on SIGHUP, the resolver, a reconnect). */
static unsigned fixed_descriptors(const serve_config *c)
{
    unsigned pool = c->cache.redis.max_connections ? c->cache.redis.max_connections : 8;
    return 32 + c->workers * (c->admin_port ? 7 : 6) + pool + 2;
}

/* Raises the soft descriptor limit to the hard one (the usual soft 1024 is below the default
 * 10,000 connections). If the connection limit still cannot be held, it is lowered to what can
 * be, with one warning: past the descriptors, accepts and Redis reconnects would fail alike. */
static void fit_descriptors(serve_config *c)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        struct rlimit raised = {rl.rlim_max, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
            rl = raised;
    }
    unsigned w = c->workers, fixed = fixed_descriptors(c), share = c->max_connections / w;
    unsigned long long need =
        fixed + (unsigned long long)w * http_server_most_open(share ? share : 1);
    if (rl.rlim_cur == RLIM_INFINITY || need <= rl.rlim_cur)
        return;
    unsigned long long per = rl.rlim_cur > fixed ? (rl.rlim_cur - fixed) / w : 0;
    unsigned fit = per > 2 ? (unsigned)((per - 2) * 8 / 9) : 1;
    while (fit > 1 && http_server_most_open(fit) > per)
        fit--;
    log_msg(LOG_WARN,
            "the descriptor limit (%llu, hard %llu) cannot hold STRATA_MAX_CONNECTIONS=%u: "
            "serving at most %u connections (%u per worker); raise `ulimit -n` (LimitNOFILE= "
            "under systemd) for more",
            (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max, c->max_connections,
            fit * w, fit);
    c->max_connections = fit * w;
}

/* ---- workers ------------------------------------------------------------------------------ */

/* A listening socket on the configured address with SO_REUSEPORT, so every worker has its own
 * and the kernel balances connections between them. */
/* Whether another process already listens on the address: bound without SO_REUSEPORT, a probe
 * socket is refused by any listener, where the workers' sockets (SO_REUSEPORT) would be let in
 * beside another strata serve and silently share its traffic. (SO_REUSEADDR on the probe: a
 * connection of an earlier run in TIME_WAIT is no listener.) */
static int already_served(const struct addrinfo *a)
{
    int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0)
        return 0;
    int busy = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 &&
               bind(fd, a->ai_addr, a->ai_addrlen) != 0 && errno == EADDRINUSE;
    close(fd);
    return busy;
}

/* The listening socket of a worker on host:port; the first checks nobody else listens there. */
static int listen_socket(const char *host, int port_no, int first, char *err, size_t errcap)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV},
                    *res = NULL;
    char port[8];
    snprintf(port, sizeof port, "%d", port_no);
    int gai = getaddrinfo(host, port, &hints, &res);
    if (gai != 0) {
        snprintf(err, errcap, "cannot resolve %s: %s", host, gai_strerror(gai));
        return -1;
    }
    if (first && port_no != 0 && already_served(res)) {
        snprintf(err, errcap,
                 "cannot listen on %s:%d: another process already listens there (a second "
                 "strata serve would share its traffic); stop it or choose another address",
                 host, port_no);
        freeaddrinfo(res);
        return -1;
    }
    int fd = socket(res->ai_family, res->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
        snprintf(err, errcap, "cannot listen on %s:%d: %s", host, port_no, strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

/* An HTTP server of w for listener l on host:port, into *out. Returns 0 or -1 (err says why). */
static int serve_on(worker *w, listener *l, http_server **out, const char *host, int port,
                    char *err, size_t errcap)
{
    http_callbacks cb;
    http_limits limits;
    dispatch_setup(l, &cb, &limits);
    if ((*out = http_server_new(w->base, &limits, &cb)) == NULL) {
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    int fd = listen_socket(host, port, w->index == 0, err, errcap);
    if (fd < 0)
        return -1;
    return http_server_listen(*out, fd, err, errcap);
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
    const serve_config *c = &s->cfg;
    w->main_listener = (listener){w, c->admin_port ? LISTEN_PROXY : LISTEN_ALL};
    w->admin_listener = (listener){w, LISTEN_ADMIN};
    if (serve_on(w, &w->main_listener, &w->http, c->listen_host, c->listen_port, err, errcap) != 0)
        return -1;
    if (c->admin_port == 0)
        return 0;
    return serve_on(w, &w->admin_listener, &w->admin_http, c->admin_host, c->admin_port, err,
                    errcap);
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
    http_server_free(w->http);
    http_server_free(w->admin_http);
    if (w->base != NULL)
        event_base_free(w->base);
    metrics_free(w->metrics);
    free(w->grants); /* kv_lease.c's table of grants: one plain allocation */
    llm_memo_free(w->llm_memo);
}

/* ---- life cycle --------------------------------------------------------------------------- */

/* SIGHUP: the proxy's file again; on a fault the old model stays. Requests hold a reference to
 * the model they started with (proxy_model.c), so the swap frees nothing they read. */
static void reload_proxy(server *s)
{
    if (s->cfg.proxy_file == NULL)
        return;
    char err[1024];
    proxy_config *pc;
    if (proxy_config_load_file(s->cfg.proxy_file, &serve_proxy_options, &pc, err, sizeof err) !=
        0) {
        log_msg(LOG_ERROR, "SIGHUP: %s not reloaded, the old one stays: %s", s->cfg.proxy_file,
                err);
        return;
    }
    size_t nroutes = pc->nroutes, norigins = pc->norigins;
    /* Said once the new routes answer (a client that read the line may use them). */
    if (proxy_reload(s, pc) == 0)
        log_msg(LOG_INFO, "SIGHUP: proxy: %zu routes, %zu origins", nroutes, norigins);
}

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
    log_msg(LOG_INFO, "SIGHUP: %zu token%s loaded", auth_count(t), auth_count(t) == 1 ? "" : "s");
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
    /* A lease wait must answer before its loop is freed; it does within its X-Cache-Wait. */
    int unsent =
        http_server_unsent(w->http) || (w->admin_http && http_server_unsent(w->admin_http));
    if (((inflight > 0 || unsent) && strata_now_ms() < w->srv->drain_deadline_ms) ||
        w->lease_waits > 0 || w->proxy_background > 0) {
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
    http_server_stop_listening(w->http);
    if (w->admin_http != NULL)
        http_server_stop_listening(w->admin_http);
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

/* Returns 0, or the exit code (docs/operations.md): 2 for a malformed setting, whose message names
 * it (STRATA_TOKENS, STRATA_RATE_LIMITS, STRATA_NAMESPACES, as serve_config_load does for the
 * others); 1 when the server cannot start (a tokens file that cannot be read or parsed, no tokens
 * on a public address, no cache, no workers). */
static int start(server *s)
{
    char err[512];
    s->auth = auth_load(s->cfg.tokens, s->cfg.tokens_file, err, sizeof err);
    if (s->auth == NULL) {
        fprintf(stderr, "strata serve: %s\n", err);
        /* The setting itself, or the file it names? Parsed alone, the setting tells. */
        auth_table *inline_only = auth_load(s->cfg.tokens, NULL, err, sizeof err);
        int code = inline_only == NULL ? 2 : 1;
        auth_free(inline_only);
        return code;
    }
    if (auth_count(s->auth) == 0 && !s->cfg.loopback && !s->cfg.insecure) {
        fprintf(stderr,
                "strata serve: refusing to listen on %s without tokens: set STRATA_TOKENS "
                "or --tokens-file, or pass --insecure\n",
                s->cfg.listen_host);
        return 1;
    }
    if (limits_parse(s->cfg.rate_limits, &s->rules, err, sizeof err) != 0) {
        fprintf(stderr, "strata serve: STRATA_RATE_LIMITS: %s\n", err);
        return 2;
    }
    int rc = strata_cache_new(&s->cfg.cache, &s->cache);
    if (rc != 0) {
        fprintf(stderr, "strata serve: cannot create the cache: %s\n", strata_strerror(rc));
        return 1;
    }
    if (strata_ratelimiter_new(s->cache, &s->rl) != 0 ||
        strata_ratelimit_configure(s->rl, s->cfg.rl_fallback, s->cfg.rl_instances) != 0) {
        fprintf(stderr, "strata serve: cannot create the rate limiter\n");
        return 1;
    }
    if (strata_leases_new(s->cache, &s->leases) != 0) {
        fprintf(stderr, "strata serve: cannot create the leases\n");
        return 1;
    }
    if (proxy_start(s) != 0) {
        fprintf(stderr, "strata serve: out of memory\n");
        return 1;
    }
    if (namespaces_apply(strata_cache_l1(s->cache), getenv("STRATA_NAMESPACES"), err, sizeof err) !=
        0) {
        fprintf(stderr, "strata serve: STRATA_NAMESPACES: %s\n", err);
        return 2;
    }
    s->workers = calloc(s->cfg.workers, sizeof *s->workers);
    if (s->workers == NULL)
        return 1;
    for (unsigned i = 0; i < s->cfg.workers; i++)
        if (worker_init(s, &s->workers[i], i, err, sizeof err) != 0) {
            fprintf(stderr, "strata serve: %s\n", err);
            return 1;
        }
    return 0;
}

/* The admin lanes: bulk work on STRATA_ADMIN_THREADS threads, one job per tenant at a time; the
 * quick calls on one thread. Each thread holds one of the Redis pool's connections while it
 * waits; short of them, a thread would wait for another's and fail, which the breaker counts as
 * Redis failing: so the bulk lane leaves one connection to the quick lane and one to the
 * invalidation link's role checks. */
static void lanes_init(server *s)
{
    const serve_config *c = &s->cfg;
    unsigned threads = c->admin_threads, pool = c->cache.redis.max_connections;
    if ((c->cache.redis.url != NULL || c->cache.redis.sentinels != NULL ||
         c->cache.redis.cluster != NULL || c->cache.redis.host != NULL) &&
        pool > 0 && threads + 2 > pool) {
        threads = pool > 2 ? pool - 2 : 1;
        log_msg(LOG_WARN,
                "STRATA_ADMIN_THREADS=%u needs REDIS_MAX_CONNECTIONS of at least %u (it is %u): "
                "running %u",
                c->admin_threads, c->admin_threads + 2, pool, threads);
    }
    unsigned per_tenant = c->admin_queue / 4 ? c->admin_queue / 4 : 1;
    offload_init(&s->bulk, "bulk", threads, c->admin_queue, per_tenant, 1);
    offload_init(&s->quick, "quick", 1, c->admin_queue, per_tenant, 1);
}

static void stop(server *s)
{
    /* The lanes first: a job they finish hands its result to a worker's loop. */
    offload_stop(&s->bulk);
    offload_stop(&s->quick);
    /* The proxy's pools close their connections on the loops' bases, before those are freed;
     * nothing is in flight any more (the drain waited for background refreshes too). */
    proxy_stop(s);
    if (s->workers != NULL)
        for (unsigned i = 0; i < s->cfg.workers; i++)
            worker_destroy(&s->workers[i]);
    free(s->workers);
    strata_ratelimiter_free(s->rl);
    strata_leases_free(s->leases); /* after the loops: every wait on them has answered */
    strata_cache_free(s->cache);
    auth_free(s->auth);
    limits_free(&s->rules);
    proxy_config_free(s->cfg.proxy);
    s->cfg.proxy = NULL;
}

int serve_main(int argc, char **argv)
{
    server s;
    memset(&s, 0, sizeof s);
    int rc = serve_config_load(&s.cfg, argc, argv);
    if (rc != 0) {
        proxy_config_free(s.cfg.proxy);
        return rc > 0 ? 0 : 2;
    }
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
    pthread_mutex_init(&s.proxy_lock, NULL);
    lanes_init(&s);
    s.started_ms = strata_now_ms();
    fit_descriptors(&s.cfg);
    if ((rc = start(&s)) != 0) {
        stop(&s);
        return rc;
    }
    if (offload_start(&s.bulk) != 0 || offload_start(&s.quick) != 0 || history_start(&s) != 0) {
        fprintf(stderr, "strata serve: cannot start the admin threads\n");
        stop(&s);
        return 1;
    }
    for (unsigned i = 0; i < s.cfg.workers; i++)
        pthread_create(&s.workers[i].thread, NULL, worker_main, &s.workers[i]);
    strata_l2_stats l2;
    strata_cache_l2_stats(s.cache, &l2);
    int v6 = strchr(s.cfg.listen_host, ':') != NULL;
    log_msg(LOG_INFO,
            "strata %s listening on http://%s%s%s:%d (%u worker%s, from %s; %s, %zu token%s)",
            strata_version(), v6 ? "[" : "", s.cfg.listen_host, v6 ? "]" : "", s.cfg.listen_port,
            s.cfg.workers, s.cfg.workers == 1 ? "" : "s", s.cfg.workers_from,
            l2.configured ? "L1 + Redis" : "memory only (set REDIS_URL for Redis)",
            auth_count(s.auth), auth_count(s.auth) == 1 ? "" : "s");
    if (s.cfg.admin_port)
        log_msg(LOG_INFO,
                "strata's own API on http://%s%s%s:%d; http://%s%s%s:%d proxies every path",
                strchr(s.cfg.admin_host, ':') ? "[" : "", s.cfg.admin_host,
                strchr(s.cfg.admin_host, ':') ? "]" : "", s.cfg.admin_port, v6 ? "[" : "",
                s.cfg.listen_host, v6 ? "]" : "", s.cfg.listen_port);
    proxy_report(&s);
    for (;;) {
        int sig = 0;
        sigwait(&set, &sig);
        if (sig == SIGHUP) {
            reload_tokens(&s);
            reload_proxy(&s);
            continue;
        }
        log_msg(LOG_INFO, "%s: draining, then exiting", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        break;
    }
    drain(&s);
    for (unsigned i = 0; i < s.cfg.workers; i++)
        pthread_join(s.workers[i].thread, NULL);
    history_stop(&s);
    stop(&s);
    log_msg(LOG_INFO, "stopped");
    return 0;
}
