/* pool.c: one event loop's connections to its origins, and the requests sent through them.
 *
 * Per origin (a slot, found by the origin's address: a pool talks to a handful), the pool keeps
 * the connections it opened (at most max_conns), the idle ones (a stack: the most recently used
 * is the warmest, and the one least likely to have been closed by the origin), and a FIFO of
 * requests waiting for a connection (at most max_queue; past it a request is refused at once,
 * since a queue without a bound only turns an overloaded origin into a memory problem).
 *
 * A request is formatted once (head and body: a retry sends the same bytes), then goes to an
 * idle connection, a new one, or the queue. When its connection says it ended, the pool decides:
 * the caller's on_done, or one more try. The retry rule: a kept-alive connection may have been
 * closed by the origin just as we sent on it (the origin's idle timeout racing our reuse), and
 * then the request fails before any byte of a response. Such a request never reached the
 * origin's application, or did and got no answer; only an idempotent method may be sent again
 * without knowing which (RFC 9110 9.2.2), and only once, on a new connection. A POST is never
 * retried, nor anything once a response byte came: the origin acted on it.
 *
 * A connection that ended a response cleanly with keep-alive goes to the next waiting request,
 * or to the idle stack (up to max_idle; closed past it). Anything else is closed, which makes
 * room for a waiting request's new connection.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/dns.h>
#include <event2/event.h>

#include "upstream_internal.h"

typedef struct upstream_slot {
    upstream_pool *pool;
    const upstream_origin *o;
    struct upstream_slot *next;
    upstream_conn *idle;         /* idle connections, most recent first */
    upstream_req *qhead, *qtail; /* waiting for a connection */
    unsigned open, nidle, nqueued;
    upstream_pool_stats st;
} upstream_slot;

struct upstream_pool {
    struct event_base *base;
    struct evdns_base *dns;
    upstream_slot *slots;
    upstream_req *all; /* requests not done */
};

static void finished(void *owner, upstream_conn *c, upstream_req *r, int status, int reusable,
                     int retryable);
static void idle_closed(void *owner, upstream_conn *c);
static const upstream_conn_ops conn_ops = {finished, idle_closed};

/* ---- requests ------------------------------------------------------------------------------ */

static void unlink_req(upstream_req *r)
{
    upstream_pool *p = r->pool;
    if (r->all_prev != NULL)
        r->all_prev->all_next = r->all_next;
    else if (p->all == r)
        p->all = r->all_next;
    if (r->all_next != NULL)
        r->all_next->all_prev = r->all_prev;
    r->all_prev = r->all_next = NULL;
}

static void free_req(upstream_req *r)
{
    unlink_req(r);
    event_del(&r->timer);
    free(r->wire);
    free(r);
}

/* The caller's on_done, then r is gone. */
static void deliver(upstream_req *r, int status)
{
    unlink_req(r);
    event_del(&r->timer);
    if (!r->cancelled) {
        r->done = 1;
        r->in_cb = 1;
        r->cb.on_done(r, status, r->arg);
    }
    free(r->wire);
    free(r);
}

static void dequeue(upstream_slot *s, upstream_req *r)
{
    upstream_req **pp = &s->qhead, *prev = NULL;
    while (*pp != NULL && *pp != r) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (*pp == NULL)
        return;
    *pp = r->next;
    if (s->qtail == r)
        s->qtail = prev;
    r->next = NULL;
    s->nqueued--;
}

static void close_conn(upstream_slot *s, upstream_conn *c)
{
    upstream__conn_free(c);
    s->open--;
}

/* Opens a new connection for r. Returns 0, or -1 (r untouched). */
static int open_for(upstream_slot *s, upstream_req *r)
{
    upstream_conn *c = upstream__conn_open(s->pool->base, s->pool->dns, s->o, &conn_ops, s, r);
    if (c == NULL)
        return -1;
    r->conn = c;
    s->open++;
    s->st.connects++;
    if (s->open > s->st.most_open)
        s->st.most_open = s->open;
    return 0;
}

static void send_on(upstream_slot *s, upstream_conn *c, upstream_req *r)
{
    r->conn = c;
    s->st.reuses++;
    upstream__conn_send(c, r);
}

static upstream_conn *pop_idle(upstream_slot *s)
{
    upstream_conn *c = s->idle;
    if (c != NULL) {
        s->idle = *upstream__conn_next(c);
        *upstream__conn_next(c) = NULL;
        s->nidle--;
    }
    return c;
}

static void remove_idle(upstream_slot *s, upstream_conn *c)
{
    for (upstream_conn **pp = &s->idle; *pp != NULL; pp = upstream__conn_next(*pp))
        if (*pp == c) {
            *pp = *upstream__conn_next(c);
            s->nidle--;
            return;
        }
}

/* Gives waiting requests the connections there is room for. */
static void serve_queue(upstream_slot *s)
{
    while (s->qhead != NULL) {
        upstream_req *r = s->qhead;
        upstream_conn *c = pop_idle(s);
        if (c == NULL && s->open >= s->o->opt.max_conns)
            return;
        dequeue(s, r);
        if (c != NULL) {
            send_on(s, c, r);
        } else if (open_for(s, r) != 0) {
            snprintf(r->errstr, sizeof r->errstr, "cannot open a connection (out of memory)");
            deliver(r, UPSTREAM_ENOMEM);
        }
    }
}

/* A connection said r ended. */
static void finished(void *owner, upstream_conn *c, upstream_req *r, int status, int reusable,
                     int retryable)
{
    upstream_slot *s = owner;
    r->conn = NULL;
    if (status == 0 && reusable && !r->cancelled) {
        if (s->qhead != NULL) {
            upstream_req *next = s->qhead;
            dequeue(s, next);
            send_on(s, c, next);
        } else if (s->nidle < s->o->opt.max_idle) {
            upstream__conn_park(c, s->o->opt.idle_timeout_ms);
            *upstream__conn_next(c) = s->idle;
            s->idle = c;
            s->nidle++;
        } else {
            close_conn(s, c);
        }
    } else {
        close_conn(s, c);
    }
    if (status != 0 && retryable && r->idempotent && !r->retried && !r->cancelled) {
        r->retried = 1;
        s->st.retries++;
        if (open_for(s, r) == 0) { /* a new connection: never another kept-alive one */
            serve_queue(s);
            return;
        }
    }
    serve_queue(s); /* before on_done, which may send requests of its own */
    deliver(r, status);
}

static void idle_closed(void *owner, upstream_conn *c)
{
    upstream_slot *s = owner;
    remove_idle(s, c);
    close_conn(s, c);
    serve_queue(s);
}

/* r's first-byte or total deadline passed (pool or connection: the timer is r's). */
static void on_req_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    upstream_req *r = arg;
    upstream_slot *s = r->slot;
    uint64_t now = upstream__now_ms();
    int code = UPSTREAM_ETIMEDOUT_TOTAL;
    if (r->total_at_ms == 0 || now < r->total_at_ms) {
        if (r->byte_seen || r->first_byte_at_ms == 0 || now < r->first_byte_at_ms) {
            upstream__req_arm(r); /* early: the deadline moved */
            return;
        }
        code = UPSTREAM_ETIMEDOUT_FIRST_BYTE;
        snprintf(r->errstr, sizeof r->errstr, "no response from %s within %u ms of the request",
                 upstream_origin_authority(s->o), s->o->opt.first_byte_timeout_ms);
    } else {
        snprintf(r->errstr, sizeof r->errstr, "the request to %s took over %u ms (%s)",
                 upstream_origin_authority(s->o), s->o->opt.total_timeout_ms,
                 r->conn == NULL ? "waiting for a connection" : "on a connection");
    }
    if (r->conn != NULL) {
        close_conn(s, r->conn);
        r->conn = NULL;
    } else {
        dequeue(s, r);
    }
    serve_queue(s);
    deliver(r, code);
}

/* ---- the request's bytes ------------------------------------------------------------------- */

static int token_ok(const char *s)
{
    if (s == NULL || *s == '\0')
        return 0;
    for (; *s; s++)
        if (*s <= ' ' || *s >= 127 || strchr("()<>@,;:\\\"/[]?={}", *s) != NULL)
            return 0;
    return 1;
}

static int text_ok(const char *s)
{
    if (s == NULL)
        return 0;
    for (; *s; s++)
        if ((unsigned char)*s < ' ' && *s != '\t')
            return 0;
    return 1;
}

/* Headers the client writes itself (framing, the connection) or adds (Host). */
static int ours(const char *name)
{
    return strcasecmp(name, "Content-Length") == 0 || strcasecmp(name, "Transfer-Encoding") == 0 ||
           strcasecmp(name, "Connection") == 0;
}

static const char *const idempotent_methods[] = {"GET",    "HEAD",    "PUT",
                                                 "DELETE", "OPTIONS", "TRACE"};

/* The request as it goes on the wire: "METHOD base+target HTTP/1.1", Host, the caller's headers,
 * Content-Length, the body. */
static int format_wire(upstream_req *r, const upstream_origin *o, const upstream_request_spec *rq)
{
    if (!token_ok(rq->method) || rq->target == NULL || rq->target[0] != '/' ||
        !text_ok(rq->target) || strchr(rq->target, ' ') != NULL ||
        (rq->nheaders > 0 && rq->headers == NULL) || (rq->body_len > 0 && rq->body == NULL))
        return UPSTREAM_EINVAL;
    int has_host = 0;
    size_t size = strlen(rq->method) + strlen(o->base_path) + strlen(rq->target) + 64 +
                  strlen(o->authority) + rq->body_len;
    for (size_t i = 0; i < rq->nheaders; i++) {
        const upstream_header *h = &rq->headers[i];
        if (!token_ok(h->name) || !text_ok(h->value))
            return UPSTREAM_EINVAL;
        has_host |= strcasecmp(h->name, "Host") == 0;
        size += strlen(h->name) + strlen(h->value) + 4;
    }
    char *w = malloc(size);
    if (w == NULL)
        return UPSTREAM_ENOMEM;
    size_t n =
        (size_t)snprintf(w, size, "%s %s%s HTTP/1.1\r\n", rq->method, o->base_path, rq->target);
    if (!has_host)
        n += (size_t)snprintf(w + n, size - n, "Host: %s\r\n", o->authority);
    for (size_t i = 0; i < rq->nheaders; i++)
        if (!ours(rq->headers[i].name))
            n += (size_t)snprintf(w + n, size - n, "%s: %s\r\n", rq->headers[i].name,
                                  rq->headers[i].value);
    int bodyless = strcmp(rq->method, "GET") == 0 || strcmp(rq->method, "HEAD") == 0 ||
                   strcmp(rq->method, "DELETE") == 0 || strcmp(rq->method, "OPTIONS") == 0;
    if (rq->body_len > 0 || !bodyless)
        n += (size_t)snprintf(w + n, size - n, "Content-Length: %zu\r\n", rq->body_len);
    n += (size_t)snprintf(w + n, size - n, "\r\n");
    if (rq->body_len > 0)
        memcpy(w + n, rq->body, rq->body_len);
    r->wire = w;
    r->wire_len = n + rq->body_len;
    for (size_t i = 0; i < sizeof idempotent_methods / sizeof idempotent_methods[0]; i++)
        r->idempotent |= strcmp(rq->method, idempotent_methods[i]) == 0;
    r->head_only = strcmp(rq->method, "HEAD") == 0;
    return 0;
}

/* ---- the pool ------------------------------------------------------------------------------ */

static upstream_slot *slot_for(upstream_pool *p, const upstream_origin *o)
{
    for (upstream_slot *s = p->slots; s != NULL; s = s->next)
        if (s->o == o)
            return s;
    upstream_slot *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->pool = p;
    s->o = o;
    s->next = p->slots;
    p->slots = s;
    return s;
}

upstream_pool *upstream_pool_new(struct event_base *base)
{
    upstream_pool *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->base = base;
    /* Names resolve on the loop (evdns reads resolv.conf and /etc/hosts); when inactive it does
     * not keep the loop running. */
    p->dns =
        evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS | EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    if (p->dns == NULL)
        p->dns = evdns_base_new(base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    if (p->dns == NULL) {
        free(p);
        return NULL;
    }
    return p;
}

void upstream_pool_free(upstream_pool *p)
{
    if (p == NULL)
        return;
    while (p->all != NULL) {
        upstream_req *r = p->all;
        upstream_slot *s = r->slot;
        if (r->conn != NULL) {
            close_conn(s, r->conn);
            r->conn = NULL;
        } else {
            dequeue(s, r);
        }
        snprintf(r->errstr, sizeof r->errstr, "the pool was freed");
        deliver(r, UPSTREAM_ECLOSED);
    }
    while (p->slots != NULL) {
        upstream_slot *s = p->slots;
        p->slots = s->next;
        upstream_conn *c;
        while ((c = pop_idle(s)) != NULL)
            close_conn(s, c);
        free(s);
    }
    evdns_base_free(p->dns, 0);
    free(p);
}

int upstream_request(upstream_pool *p, const upstream_origin *o, const upstream_request_spec *rq,
                     const upstream_callbacks *cb, void *arg, upstream_req **out)
{
    if (p == NULL || o == NULL || rq == NULL || cb == NULL || cb->on_head == NULL ||
        cb->on_done == NULL || out == NULL)
        return UPSTREAM_EINVAL;
    upstream_slot *s = slot_for(p, o);
    if (s == NULL)
        return UPSTREAM_ENOMEM;
    upstream_conn *c = pop_idle(s);
    if (c == NULL && s->open >= o->opt.max_conns && s->nqueued >= o->opt.max_queue) {
        s->st.refused++;
        return UPSTREAM_EQUEUEFULL;
    }
    upstream_req *r = calloc(1, sizeof *r);
    int rc = r == NULL ? UPSTREAM_ENOMEM : format_wire(r, o, rq);
    if (rc != 0) {
        if (r != NULL)
            free(r->wire);
        free(r);
        if (c != NULL) { /* back where it was */
            *upstream__conn_next(c) = s->idle;
            s->idle = c;
            s->nidle++;
        }
        return rc;
    }
    r->pool = p;
    r->slot = s;
    r->cb = *cb;
    r->arg = arg;
    event_assign(&r->timer, p->base, -1, 0, on_req_timer, r);
    if (o->opt.total_timeout_ms > 0)
        r->total_at_ms = upstream__now_ms() + o->opt.total_timeout_ms;
    if (c != NULL) {
        send_on(s, c, r);
    } else if (s->open < o->opt.max_conns) {
        if (open_for(s, r) != 0) {
            free(r->wire);
            free(r);
            return UPSTREAM_ENOMEM;
        }
    } else {
        if (s->qtail != NULL)
            s->qtail->next = r;
        else
            s->qhead = r;
        s->qtail = r;
        s->nqueued++;
    }
    upstream__req_arm(r);
    r->all_next = p->all;
    if (p->all != NULL)
        p->all->all_prev = r;
    p->all = r;
    *out = r;
    return 0;
}

void upstream_req_cancel(upstream_req *r)
{
    if (r == NULL || r->cancelled)
        return;
    r->cancelled = 1;
    if (r->in_cb)
        return; /* the connection or the pool sees it when the callback returns */
    upstream_slot *s = r->slot;
    if (r->conn != NULL) {
        close_conn(s, r->conn); /* the rest of the response would have to be read: closed */
        r->conn = NULL;
    } else {
        dequeue(s, r);
    }
    free_req(r);
    serve_queue(s);
}

void upstream_req_resume(upstream_req *r)
{
    if (r != NULL && r->conn != NULL && r->paused)
        upstream__conn_resume(r->conn);
}

const char *upstream_req_errstr(const upstream_req *r)
{
    return r->errstr;
}

int upstream_req_reused(const upstream_req *r)
{
    return r->reused;
}

int upstream_req_retried(const upstream_req *r)
{
    return r->retried;
}

void upstream_pool_stats_get(const upstream_pool *p, const upstream_origin *o,
                             upstream_pool_stats *out)
{
    memset(out, 0, sizeof *out);
    for (const upstream_slot *s = p->slots; s != NULL; s = s->next) {
        if (s->o != o)
            continue;
        *out = s->st;
        out->open = s->open;
        out->idle = s->nidle;
        out->queued = s->nqueued;
        for (const upstream_req *r = p->all; r != NULL; r = r->all_next)
            if (r->slot == s && r->conn != NULL)
                out->buffered += upstream__conn_buffered(r->conn);
    }
}
