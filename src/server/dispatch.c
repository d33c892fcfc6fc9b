/* dispatch.c: from the HTTP layer to a handler: a request's head is routed (route.c) and its
 * caller authenticated before any of its body is read; the whole request then goes through the
 * server's own rate limits to its route's handler.
 *
 * On the head: a route not found (404), a method the route does not take (405 with Allow), a
 * bad path parameter (400/414), a missing or wrong token (401/403) or a tenant it may not use
 * (403) are answered at once: no 100 Continue is sent and no body is read for a request refused
 * here. Everything else gathers its body (handlers want it whole) and goes on.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <http_parser.h>

#include "dispatch.h"
#include "handlers.h"
#include "log.h"
#include "metrics.h"
#include "llm_gateway.h"
#include "proxy.h"
#include "request.h"

/* The handlers, by route id: the handler column of routes.h. */
#define ROUTE_HANDLER(id, name, methods, pattern, role, flags, handler) [R_##id] = handler,
static void (*const handlers[R_COUNT])(req *q) = {
    STRATA_ROUTES(ROUTE_HANDLER)[R_PROXY] = proxy_handle, [R_PURGE_URL] = purge_url_handle,
    [R_LLM] = llm_handle};
#undef ROUTE_HANDLER

static unsigned method_bit(unsigned m)
{
    switch (m) {
    case HTTP_GET:
        return M_GET;
    case HTTP_HEAD:
        return M_HEAD;
    case HTTP_POST:
        return M_POST;
    case HTTP_PUT:
        return M_PUT;
    case HTTP_DELETE:
        return M_DELETE;
    case HTTP_PATCH:
        return M_PATCH;
    case HTTP_OPTIONS:
        return M_OPTIONS;
    case HTTP_TRACE:
        return M_TRACE;
    case HTTP_CONNECT:
        return M_CONNECT;
    case HTTP_PURGE:
        return M_PURGE;
    default:
        return 0; /* answered 405 by every route */
    }
}

/* The role a route needs for a method. */
static int needed_role(const server *s, const req *q)
{
    switch (q->r.role) {
    case RR_NONE:
        return ROLE_NONE;
    case RR_READ:
        return ROLE_READ;
    case RR_WRITE:
        return ROLE_WRITE;
    case RR_READ_WRITE:
        return q->method == M_GET || q->method == M_HEAD ? ROLE_READ : ROLE_WRITE;
    case RR_METRICS:
        return s->cfg.metrics_auth ? ROLE_READ : ROLE_NONE;
    default:
        return ROLE_ADMIN;
    }
}

/* Who is calling, and in which tenant. Returns 0, or answers 400/401/403 and returns -1. */
static int authenticate(req *q)
{
    server *s = q->w->srv;
    const char *bound = NULL;
    /* On a proxied route Authorization is the origin's: strata's token is X-Strata-Token. A
     * purge takes either (Varnish users script PURGE with their own headers). */
    int proxied = (q->r.id == R_PROXY || q->r.id == R_LLM) && !(q->r.flags & RF_BEARER_OWN);
    int purge = q->r.id == R_PURGE || q->r.id == R_PURGE_URL;
    const char *own = get_header(q, "X-Strata-Token");
    int use_own = proxied || (purge && own != NULL);
    const char *hdr = use_own ? own : get_header(q, "Authorization");
    /* X-Strata-Token holds the token itself ("Bearer " before it is allowed). */
    const char *token = use_own && hdr && !auth_bearer(hdr) ? hdr : auth_bearer(hdr);
    pthread_rwlock_rdlock(&s->auth_lock);
    size_t ntokens = auth_count(s->auth);
    int role = ROLE_NONE;
    if (ntokens == 0) {
        role = ROLE_ADMIN; /* no tokens: loopback development mode (checked at start) */
    } else if (token != NULL) {
        role = auth_check(s->auth, token, strlen(token), &bound);
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
    if (q->r.flags & RF_NO_TENANT)
        return 0;
    /* The tenant: X-Tenant, or ?tenant= on the admin API; a bound token allows only its own. */
    const char *asked = get_header(q, "X-Tenant");
    if ((q->r.id == R_PROXY || q->r.id == R_LLM) && asked != NULL && ntokens > 0 &&
        role == ROLE_NONE) {
        /* A public route: a client without a token cannot read another tenant's entries. */
        reply_error(q, 403, "forbidden",
                    "X-Tenant on a proxied route needs a strata token in "
                    "X-Strata-Token");
        return -1;
    }
    if (asked == NULL && (q->r.flags & RF_TENANT_QUERY))
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

static void start(req *q, http_conn *c, worker *w)
{
    memset(q, 0, offsetof(req, out_hdr)); /* the header and key buffers need no zeroing */
    q->conn = c;
    q->w = w;
    q->method = method_bit(http_conn_method(c));
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    q->start_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    atomic_fetch_add(&w->inflight, 1);
    if (atomic_load(&w->srv->draining))
        q->close = 1;
}

/* The head is in: route (strata's own routes first, then the proxy's) and authenticate. Returns
 * an enum http_head_verdict. */
static int on_head(http_conn *c, void *arg)
{
    listener *l = arg;
    worker *w = l->w;
    req *q = http_conn_ctx(c);
    start(q, c, w);
    if (l->kind == LISTEN_PROXY) /* strata's own routes are the admin listener's */
        route_none(&q->r);
    else
        route_match(http_conn_path(c), w->srv->cfg.cache.l1.max_key_len, &q->r);
    if (l->kind == LISTEN_ADMIN) {
        /* strata's own routes alone */
    } else if (http_conn_method(c) == HTTP_PURGE) { /* PURGE on any URL: the proxy's purge */
        q->r.id = R_PURGE_URL;
        q->r.methods = ~0u;
        q->r.role = RR_WRITE;
        q->r.flags = 0;
        q->r.error = NULL;
    } else if (q->r.id == R_NOT_FOUND) {
        proxy_match(q); /* a request of the proxy's keeps its state in q->px from here */
    }
    if (q->r.id == R_NOT_FOUND) {
        reply_error(q, 404, "not_found", "no such route");
    } else if (!(q->r.methods & q->method)) {
        char allow[96];
        route_allow(q->r.methods, allow, sizeof allow);
        add_header(q, "Allow", allow);
        reply_error(q, 405, "method_not_allowed", "this route does not accept this method");
    } else if (q->r.error != NULL) {
        reply_error(q, route_error_status(&q->r), q->r.error_code, "%s", q->r.error);
    } else if (authenticate(q) == 0) {
        return HTTP_HEAD_GATHER;
    }
    return HTTP_HEAD_ANSWERED;
}

static void run_handler(req *q)
{
    handlers[q->r.id](q);
}

/* The whole request is in: the server's rate limits, then the route's handler. */
static void on_request(http_conn *c, void *arg)
{
    (void)arg;
    limits_apply(http_conn_ctx(c), run_handler);
}

/* A request whose body never came (refused by the layer, or its client left). */
static void on_drop(http_conn *c, void *arg)
{
    (void)arg;
    request_abandon(http_conn_ctx(c));
}

/* A client took what was queued of an answer written in pieces: its writer goes on. */
static void on_writable(http_conn *c, void *arg)
{
    (void)arg;
    req *q = http_conn_ctx(c);
    if (q->on_writable != NULL)
        q->on_writable(q);
}

/* The HTTP layer refuses a message: a JSON error like every other, counted with the requests
 * that reached no route and logged like them when access_log is on. */
static size_t on_refusal(http_conn *c, int status, const char *code, const char *why, char *body,
                         size_t cap, const char **content_type, void *arg)
{
    worker *w = ((listener *)arg)->w;
    /* "type" is OpenAI's error category: before routing strata cannot tell whether the request
     * was for the LLM gateway, whose errors the OpenAI SDKs read in their own shape. */
    int n = snprintf(body, cap,
                     "{\"error\":{\"code\":\"%s\",\"message\":\"%s\",\"type\":\"%s\","
                     "\"status\":%d}}\n",
                     code, why, status >= 500 ? "server_error" : "invalid_request_error", status);
    *content_type = "application/json";
    metrics_record(w->metrics, R_NOT_FOUND, status, 0, -1);
    if (w->srv->cfg.access_log)
        log_msg(LOG_INFO, "access method=- route=- tenant=- status=%d bytes=%d us=0 refused=%s",
                status, n, code);
    log_msg(LOG_DEBUG, "refused a request from %s: %d %s", http_conn_peer(c), status, why);
    return n < 0 ? 0 : (size_t)n;
}

/* The HTTP layer pauses accepting after each failure and tells us at most every 10 s. */
static void on_accept_error(int err, unsigned long failures, void *arg)
{
    worker *w = ((listener *)arg)->w;
    log_msg(LOG_WARN,
            "worker %u: cannot accept connections: %s (%lu time%s); pausing accepts 250 ms at a "
            "time and serving the open connections%s",
            w->index, strerror(err), failures, failures == 1 ? "" : "s",
            err == EMFILE || err == ENFILE ? "; raise the descriptor limit (ulimit -n)" : "");
}

void dispatch_setup(listener *l, http_callbacks *cb, http_limits *limits)
{
    const serve_config *cfg = &l->w->srv->cfg;
    memset(cb, 0, sizeof *cb);
    cb->arg = l;
    cb->on_head = on_head;
    cb->on_request = on_request;
    cb->on_drop = on_drop;
    cb->on_writable = on_writable;
    cb->on_refusal = on_refusal;
    cb->on_accept_error = on_accept_error;
    memset(limits, 0, sizeof *limits);
    limits->max_headers = cfg->max_headers;
    limits->max_body = cfg->max_body;
    limits->body_budget = cfg->body_budget;
    unsigned share = cfg->max_connections / (cfg->workers ? cfg->workers : 1);
    limits->max_connections = share ? share : 1;
    limits->idle_timeout_s = cfg->idle_timeout_s;
    limits->body_timeout_s = cfg->body_timeout_s;
    limits->ctx_size = sizeof(req);
}
