/* proxy_model.c: the running proxy model: a loaded configuration with what running it needs
 * (each worker's pool of origin connections, per-route counters, per-origin breakers), shared by
 * reference between the server and the requests that read it.
 *
 * Why references: SIGHUP swaps the model while requests (and background refreshes) still point
 * at its routes and origins. The server holds one reference, each request another; the last one
 * to go retires the model. A pool belongs to its worker's loop (upstream.h), so retiring asks each
 * worker that made one to free it on its own loop; the last of them frees the configuration. At
 * stop the loops have ended and everything is freed on the main thread.
 */
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "proxy_internal.h"

proxy_model *proxy_model_new(server *s, proxy_config *pc)
{
    proxy_model *m = calloc(1, sizeof *m);
    if (m != NULL) {
        m->pools = calloc(s->cfg.workers, sizeof *m->pools);
        m->route = calloc(pc->nroutes ? pc->nroutes : 1, sizeof *m->route);
        m->breaker = calloc(pc->norigins ? pc->norigins : 1, sizeof *m->breaker);
        m->limits = calloc(pc->nroutes ? pc->nroutes : 1, sizeof *m->limits);
        m->llm = llm_counters_new(PROXY_LLM_ROWS);
        m->lives = llm_lives_new();
    }
    if (m == NULL || m->pools == NULL || m->route == NULL || m->breaker == NULL ||
        m->limits == NULL || m->llm == NULL || m->lives == NULL) {
        if (m != NULL)
            free(m->pools), free(m->route), free(m->breaker), free(m->limits),
                llm_counters_free(m->llm), llm_lives_free(m->lives);
        free(m);
        proxy_config_free(pc);
        return NULL;
    }
    m->pc = pc;
    m->srv = s;
    atomic_init(&m->refs, 1);
    /* The routes' rate limits, checked when the file was loaded (serve_proxy_options). */
    for (size_t i = 0; i < pc->nroutes; i++) {
        char err[256];
        if (pc->routes[i].rate_limit != NULL &&
            limits_parse(pc->routes[i].rate_limit, &m->limits[i], err, sizeof err) != 0)
            log_msg(LOG_ERROR, "proxy: route %s: rate_limit not applied: %s", pc->routes[i].name,
                    err);
    }
    return m;
}

static void model_free(proxy_model *m)
{
    for (unsigned i = 0; i < m->srv->cfg.workers; i++)
        upstream_pool_free(m->pools[i]);
    for (size_t i = 0; i < m->pc->nroutes; i++)
        limits_free(&m->limits[i]);
    free(m->limits);
    proxy_config_free(m->pc);
    free(m->pools);
    free(m->route);
    free(m->breaker);
    llm_counters_free(m->llm);
    llm_lives_free(m->lives);
    free(m);
}

/* Which worker's pool of which model a retiring step frees. */
typedef struct retire_step {
    proxy_model *m;
    unsigned worker;
} retire_step;

/* A retiring step is done: the last one frees the model. */
static void retired_one(proxy_model *m)
{
    server *s = m->srv;
    if (atomic_fetch_sub(&m->retiring, 1) == 1) {
        pthread_mutex_lock(&s->proxy_lock);
        proxy_model **p = &s->proxy_retired;
        while (*p != NULL && *p != m)
            p = &(*p)->next_retired;
        if (*p == m)
            *p = m->next_retired;
        pthread_mutex_unlock(&s->proxy_lock);
        model_free(m);
    }
}

/* On one worker's loop: its pool of a retired model goes. */
static void retire_pool(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    retire_step step = *(retire_step *)arg;
    free(arg);
    upstream_pool_free(step.m->pools[step.worker]);
    step.m->pools[step.worker] = NULL;
    retired_one(step.m);
}

/* The last reference went: each worker frees its own pool (a pool is its loop's, and only
 * its worker reads its slot), then the last of them frees the model. The model waits on the
 * server's retired list meanwhile, so a stop that comes first frees it (proxy_stop). */
static void retire(proxy_model *m)
{
    server *s = m->srv;
    pthread_mutex_lock(&s->proxy_lock);
    m->next_retired = s->proxy_retired;
    s->proxy_retired = m;
    pthread_mutex_unlock(&s->proxy_lock);
    if (atomic_load(&s->draining))
        return; /* the loops are ending: proxy_stop frees it */
    atomic_store(&m->retiring, s->cfg.workers + 1);
    for (unsigned i = 0; i < s->cfg.workers; i++) {
        retire_step *step = malloc(sizeof *step);
        if (step != NULL)
            *step = (retire_step){m, i};
        if (step == NULL ||
            event_base_once(s->workers[i].base, -1, EV_TIMEOUT, retire_pool, step, NULL) != 0) {
            free(step);
            atomic_store(&m->retiring, 0); /* never reaches 0 by steps: proxy_stop frees it */
            return;
        }
    }
    retired_one(m); /* the +1: no step can free m before every step was posted */
}

proxy_model *proxy_model_ref(server *s)
{
    pthread_mutex_lock(&s->proxy_lock);
    proxy_model *m = s->proxy;
    if (m != NULL)
        atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&s->proxy_lock);
    return m;
}

void proxy_model_unref(proxy_model *m)
{
    if (m != NULL && atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
        retire(m);
}

upstream_pool *proxy_model_pool(proxy_model *m, worker *w)
{
    if (m->pools[w->index] == NULL)
        m->pools[w->index] = upstream_pool_new(w->base);
    return m->pools[w->index];
}

proxy_route_stats *proxy_stats_of(proxy_model *m, const proxy_route *r)
{
    return &m->route[r - m->pc->routes];
}

limit_rules *proxy_limits_of(proxy_model *m, const proxy_route *r)
{
    return &m->limits[r - m->pc->routes];
}

proxy_breaker *proxy_breaker_of(proxy_model *m, const proxy_origin *o)
{
    return &m->breaker[o - m->pc->origins];
}

/* How long a breaker stays open: PROXY_BREAKER_OPEN_MS, doubled for each time it opened again
 * without a success between (a backoff), at most PROXY_BREAKER_MAX_MS. */
static uint64_t open_ms(unsigned streak)
{
    uint64_t ms = PROXY_BREAKER_OPEN_MS << (streak < 8 ? streak : 8);
    return ms < PROXY_BREAKER_MAX_MS ? ms : PROXY_BREAKER_MAX_MS;
}

int proxy_breaker_allows(proxy_model *m, const proxy_origin *o, uint64_t now_ms)
{
    proxy_breaker *b = proxy_breaker_of(m, o);
    uint64_t until = atomic_load_explicit(&b->open_until_ms, memory_order_relaxed);
    if (until == 0 || now_ms >= until) {
        /* Half-open: the first request after the pause tries; the others wait for its result
         * as long as another pause. */
        if (until != 0)
            atomic_compare_exchange_strong(&b->open_until_ms, &until,
                                           now_ms + open_ms(atomic_load(&b->streak)));
        return 1;
    }
    return 0;
}

void proxy_breaker_result(proxy_model *m, const proxy_origin *o, int ok, uint64_t now_ms)
{
    proxy_breaker *b = proxy_breaker_of(m, o);
    atomic_fetch_add_explicit(&b->requests, 1, memory_order_relaxed);
    if (ok) {
        atomic_store_explicit(&b->failures, 0, memory_order_relaxed);
        atomic_store_explicit(&b->streak, 0, memory_order_relaxed);
        if (atomic_exchange(&b->open_until_ms, 0) != 0)
            log_msg(LOG_INFO, "proxy: origin %s answers again: its breaker is closed", o->name);
        return;
    }
    atomic_fetch_add_explicit(&b->errors, 1, memory_order_relaxed);
    unsigned n = atomic_fetch_add(&b->failures, 1) + 1;
    if (n < o->breaker_failures)
        return;
    /* Open, or open again after the half-open try failed: each time for longer. */
    unsigned streak = atomic_fetch_add(&b->streak, 1);
    uint64_t ms = open_ms(streak);
    if (atomic_exchange(&b->open_until_ms, now_ms + ms) == 0) {
        atomic_fetch_add_explicit(&b->opened, 1, memory_order_relaxed);
        log_msg(LOG_WARN,
                "proxy: origin %s failed %u times in a row: its breaker is open, it is asked "
                "again in %llu ms",
                o->name, n, (unsigned long long)ms);
    }
}

/* ---- the server's model ------------------------------------------------------------------- */

int proxy_start(server *s)
{
    if (s->cfg.proxy == NULL)
        return 0;
    s->proxy = proxy_model_new(s, s->cfg.proxy);
    s->cfg.proxy = NULL; /* the model's now */
    return s->proxy != NULL ? 0 : -1;
}

int proxy_reload(server *s, proxy_config *pc)
{
    proxy_model *m = proxy_model_new(s, pc);
    if (m == NULL) {
        log_msg(LOG_ERROR, "SIGHUP: out of memory: the proxy's old model stays");
        return -1;
    }
    pthread_mutex_lock(&s->proxy_lock);
    proxy_model *old = s->proxy;
    s->proxy = m;
    pthread_mutex_unlock(&s->proxy_lock);
    proxy_model_unref(old);
    return 0;
}

void proxy_stop(server *s)
{
    if (s->proxy != NULL && atomic_fetch_sub(&s->proxy->refs, 1) == 1)
        model_free(s->proxy);
    s->proxy = NULL;
    while (s->proxy_retired != NULL) {
        proxy_model *m = s->proxy_retired;
        s->proxy_retired = m->next_retired;
        model_free(m);
    }
}

void proxy_report(server *s)
{
    const proxy_config *pc = s->proxy ? s->proxy->pc : NULL;
    if (pc == NULL)
        return;
    log_msg(LOG_INFO, "proxy: %zu route%s, %zu origin%s, %zu invalidation rule%s (from %s)",
            pc->nroutes, pc->nroutes == 1 ? "" : "s", pc->norigins, pc->norigins == 1 ? "" : "s",
            pc->ninvalidations, pc->ninvalidations == 1 ? "" : "s", s->cfg.proxy_from);
    for (size_t i = 0; i < pc->norigins; i++)
        if (pc->origins[i].opts.tls_insecure)
            log_msg(LOG_WARN,
                    "proxy: origin %s: tls insecure: its certificate and name are not verified",
                    pc->origins[i].name);
}
