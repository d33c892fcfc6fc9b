/* upstream_conn.c: one connection to an origin: connect (name, TCP, TLS), send a request, frame
 * its response, hand it on with backpressure, and say what the connection is good for after.
 *
 * The socket is a bufferevent: a plain one for http, bufferevent_openssl for https (TLS needs
 * OpenSSL's record layer between the socket and the bytes, which bufferevent_openssl is; one
 * code path serves both). Names are resolved by evdns through bufferevent_socket_connect_hostname,
 * never by a blocking getaddrinfo on the loop. Callbacks are deferred (BEV_OPT_DEFER_CALLBACKS),
 * so nothing a connection does calls its owner back during the call that started it.
 *
 * The response is framed by the server's http_msg (HTTP_RESPONSE). The head is parsed over the
 * input evbuffer made contiguous (evbuffer_pullup; offsets survive the buffer moving, as
 * http_msg.h says), bounded by UPSTREAM_MAX_HEAD. The body is never gathered: each chunk of the
 * input buffer is fed as it is, and the parser hands its pieces (chunk framing removed) straight
 * to the request's on_body, pointing into the evbuffer, then drained. Backpressure: when on_body
 * says pause, the parser is paused where it is (http_parser_pause inside the piece callback:
 * http-parser returns with that piece counted as parsed), reading the socket is disabled, and
 * the bytes already read wait in the input buffer, which never grows past UPSTREAM_READ_HIGH
 * (the bufferevent's read watermark). So a connection holds at most that much whatever the
 * body's size, and the origin is slowed by TCP's own window.
 *
 * Deadlines: the connection's own timer covers connecting (name, TCP and TLS handshake) and,
 * when idle, the idle timeout; the first-byte and total deadlines are the request's (its timer,
 * armed here when the request is written and when its first byte arrives; the pool fires it).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>

#include "http/http_msg.h"
#include "upstream_internal.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

enum conn_state { C_CONNECTING, C_BUSY, C_IDLE };

struct upstream_head {
    const http_msg *m;
    const char *base;
};

struct upstream_conn {
    struct bufferevent *bev;
    const upstream_origin *o;
    const upstream_conn_ops *ops;
    void *owner;
    upstream_conn *next; /* the owner's list */
    upstream_req *r;     /* the request on it, or NULL (idle) */
    struct event timer;  /* connecting, or idle */
    struct event kick;   /* goes on reading after a resume, from the loop */
    enum conn_state state;
    size_t fed; /* bytes of the head in the input buffer already parsed */
    unsigned head_done : 1, eof : 1;
    http_msg msg;
};

static void set_errstr(upstream_req *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_errstr(upstream_req *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->errstr, sizeof r->errstr, fmt, ap);
    va_end(ap);
}

/* r ends on c (0 or an error): c forgets it and tells the owner, which may free c. */
static void finish(upstream_conn *c, int status, int reusable, int retryable)
{
    upstream_req *r = c->r;
    c->r = NULL;
    c->state = C_IDLE;
    bufferevent_disable(c->bev, EV_READ);
    c->ops->finished(c->owner, c, r, status, reusable, retryable);
}

static void fail(upstream_conn *c, int status, int retryable)
{
    finish(c, status, 0, retryable);
}

static void arm_ms(struct event *ev, unsigned ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    event_add(ev, &tv);
}

static void start_response(upstream_conn *c)
{
    http_msg_init(&c->msg, HTTP_RESPONSE, UPSTREAM_MAX_HEAD, SIZE_MAX);
    c->msg.skip_body = c->r->head_only;
    c->fed = 0;
    c->head_done = 0;
}

/* Writes c's request and starts waiting for its first byte. */
static void send_request(upstream_conn *c)
{
    upstream_req *r = c->r;
    c->state = C_BUSY;
    start_response(c);
    bufferevent_write(c->bev, r->wire, r->wire_len);
    bufferevent_enable(c->bev, EV_READ);
    r->first_byte_at_ms = upstream__now_ms() + c->o->opt.first_byte_timeout_ms;
    upstream__req_arm(r);
}

/* ---- the response ------------------------------------------------------------------------- */

/* A body piece from the parser: to the request's on_body. Pausing pauses the parser here, with
 * this piece counted as parsed (http-parser returns after a callback that paused it). */
static int on_piece(void *arg, const char *data, size_t len)
{
    upstream_conn *c = arg;
    upstream_req *r = c->r;
    if (r->cb.on_body == NULL)
        return 0;
    r->in_cb = 1;
    int v = r->cb.on_body(r, data, len, r->arg);
    r->in_cb = 0;
    if (v == UPSTREAM_ABORT || r->cancelled) {
        r->cancelled = 1;
        return -1;
    }
    if (v == UPSTREAM_PAUSE) {
        r->paused = 1;
        http_parser_pause(&c->msg.parser, 1);
    }
    return 0;
}

static void complete(upstream_conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    /* Bytes after the response, or a close coming: not a connection to use again. */
    int reusable = http_msg_keep_alive(&c->msg) && evbuffer_get_length(in) == 0 && !c->eof;
    finish(c, 0, reusable, 0);
}

/* The head is in: interim answers are skipped; the rest goes to on_head. Returns 0 to go on,
 * -1 when c was handed back to its owner (and may be gone). */
static int take_head(upstream_conn *c, int event)
{
    upstream_req *r = c->r;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    unsigned status = c->msg.parser.status_code;
    if (status < 100 || status > 999) { /* http-parser takes "HTTP/1.1 2 OK" (fuzz_upstream) */
        set_errstr(r, "the origin's status %u is not three digits", status);
        fail(c, UPSTREAM_EBADRESPONSE, 0);
        return -1;
    }
    if (status / 100 == 1) {
        if (status == 101 || event != HTTP_MSG_DONE) {
            set_errstr(r, "the origin answered %u, which a proxy request never asks for", status);
            fail(c, UPSTREAM_EBADRESPONSE, 0);
            return -1;
        }
        evbuffer_drain(in, c->fed);
        start_response(c); /* 100 Continue, 103 Early Hints: the final answer follows */
        return 0;
    }
    upstream_head h = {&c->msg, (const char *)evbuffer_pullup(in, (ev_ssize_t)c->fed)};
    r->in_cb = 1;
    int v = r->cb.on_head(r, &h, r->arg);
    r->in_cb = 0;
    if (v == UPSTREAM_ABORT || r->cancelled) {
        r->cancelled = 1;
        fail(c, UPSTREAM_ECLOSED, 0);
        return -1;
    }
    evbuffer_drain(in, c->fed); /* the head was the callback's to copy */
    c->fed = 0;
    c->head_done = 1;
    if (event == HTTP_MSG_DONE) {
        complete(c);
        return -1;
    }
    c->msg.on_piece = on_piece;
    c->msg.piece_arg = c;
    return 0;
}

/* The origin closed its side: what was read decides whether the response is whole. */
static void at_eof(upstream_conn *c)
{
    upstream_req *r = c->r;
    if (!c->head_done) {
        if (!r->byte_seen) {
            set_errstr(r, "the origin closed the connection before answering");
            fail(c, UPSTREAM_ERESET, r->reused);
        } else {
            set_errstr(r, "the origin closed the connection inside the response's head");
            fail(c, UPSTREAM_ERESET, 0);
        }
        return;
    }
    static char none[1]; /* no bytes: the end of the stream (a null pointer would be UB) */
    size_t used;
    int ev = http_msg_feed(&c->msg, none, none, 0, &used);
    if (ev == HTTP_MSG_DONE) {
        complete(c); /* a body that runs to the close */
        return;
    }
    set_errstr(r, "the origin closed the connection after %llu bytes of the body",
               (unsigned long long)c->msg.body_seen);
    fail(c, UPSTREAM_ERESET, 0);
}

/* Parses what the input buffer holds, as far as the request lets it (pauses). Returns -1 when c
 * was handed back to its owner (which may have freed it), 0 otherwise. */
static int process(upstream_conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    for (;;) {
        upstream_req *r = c->r;
        if (r == NULL || c->state != C_BUSY || r->paused)
            return 0;
        size_t len = evbuffer_get_length(in);
        if (len == 0 || (!c->head_done && len == c->fed)) {
            if (!c->eof)
                return 0;
            at_eof(c);
            return -1;
        }
        if (!r->byte_seen) {
            r->byte_seen = 1;
            upstream__req_arm(r); /* the first byte came: the total deadline only */
        }
        int ev;
        size_t used;
        if (!c->head_done) {
            char *base = (char *)evbuffer_pullup(in, -1);
            ev = http_msg_feed(&c->msg, base, base + c->fed, len - c->fed, &used);
            c->fed += used;
            if (ev == HTTP_MSG_HEAD || ev == HTTP_MSG_DONE) {
                if (take_head(c, ev) != 0)
                    return -1;
                continue;
            }
        } else {
            struct evbuffer_iovec v;
            evbuffer_peek(in, -1, NULL, &v, 1);
            ev = http_msg_feed(&c->msg, v.iov_base, v.iov_base, v.iov_len, &used);
            evbuffer_drain(in, used);
            if (r->cancelled) {
                fail(c, UPSTREAM_ECLOSED, 0);
                return -1;
            }
            if (ev == HTTP_MSG_DONE) {
                complete(c);
                return -1;
            }
            if (ev == HTTP_MSG_HEAD) { /* paused by on_body */
                bufferevent_disable(c->bev, EV_READ);
                return 0;
            }
        }
        if (ev == HTTP_MSG_ERROR) {
            set_errstr(r, "%s (%s)", c->msg.fail_msg ? c->msg.fail_msg : "bad response",
                       http_errno_name(HTTP_PARSER_ERRNO(&c->msg.parser)));
            fail(c, UPSTREAM_EBADRESPONSE, 0);
            return -1;
        }
        /* HTTP_MSG_MORE: everything given was parsed */
    }
}

static void on_read(struct bufferevent *bev, void *arg)
{
    (void)bev;
    upstream_conn *c = arg;
    if (c->state == C_IDLE) { /* an idle connection's origin spoke: it is not ours to reuse */
        c->ops->idle_closed(c->owner, c);
        return;
    }
    process(c);
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    upstream_conn *c = arg;
    if (process(c) == 0 && c->r != NULL && !c->r->paused && !c->eof)
        bufferevent_enable(c->bev, EV_READ);
}

/* Why the TLS handshake failed, in r's errstr; returns the code. */
static int tls_failure(upstream_conn *c, upstream_req *r)
{
    SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
    long vr = ssl != NULL ? SSL_get_verify_result(ssl) : X509_V_OK;
    unsigned long e = bufferevent_get_openssl_error(c->bev);
    char why[120] = "";
    if (e != 0)
        ERR_error_string_n(e, why, sizeof why);
    while (bufferevent_get_openssl_error(c->bev) != 0) {
    }
    if (vr != X509_V_OK) {
        set_errstr(r, "certificate verify failed for %s: %s", c->o->name,
                   X509_verify_cert_error_string(vr));
        return UPSTREAM_ETLSVERIFY;
    }
    set_errstr(r, "TLS handshake with %s failed: %s", c->o->name,
               why[0] ? why : "the connection closed");
    return UPSTREAM_ETLS;
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    upstream_conn *c = arg;
    upstream_req *r = c->r;
    if (c->state == C_IDLE) {
        if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
            c->ops->idle_closed(c->owner, c);
        return;
    }
    if (what & BEV_EVENT_CONNECTED) {
        event_del(&c->timer);
        send_request(c);
        return;
    }
    if (c->state == C_CONNECTING) {
        int dns = bufferevent_socket_get_dns_error(bev);
        int err = EVUTIL_SOCKET_ERROR();
        int tcp = err == ECONNREFUSED || err == ENETUNREACH || err == EHOSTUNREACH ||
                  err == ETIMEDOUT || err == EADDRNOTAVAIL;
        if (dns != 0) {
            set_errstr(r, "resolving %s: %s", c->o->host, evutil_gai_strerror(dns));
            fail(c, UPSTREAM_EDNS, 0);
        } else if (c->o->tls && !tcp) {
            fail(c, tls_failure(c, r), 0);
        } else {
            set_errstr(r, "connecting to %s: %s", c->o->authority, err ? strerror(err) : "closed");
            fail(c, UPSTREAM_ECONNECT, 0);
        }
        return;
    }
    if (what & BEV_EVENT_EOF) {
        c->eof = 1;
        process(c); /* what was read before the close, then at_eof; or later, after a pause */
        return;
    }
    /* BEV_EVENT_ERROR while busy: a reset, or a TLS error mid-stream. */
    int err = EVUTIL_SOCKET_ERROR();
    while (c->o->tls && bufferevent_get_openssl_error(bev) != 0) {
    }
    if (!r->byte_seen) {
        set_errstr(r, "the connection failed before the origin answered: %s",
                   err ? strerror(err) : "TLS error");
        fail(c, UPSTREAM_ERESET, r->reused);
    } else {
        set_errstr(r, "the connection failed after %llu bytes of the body: %s",
                   (unsigned long long)c->msg.body_seen, err ? strerror(err) : "TLS error");
        fail(c, UPSTREAM_ERESET, 0);
    }
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    upstream_conn *c = arg;
    if (c->state == C_IDLE) {
        c->ops->idle_closed(c->owner, c);
        return;
    }
    set_errstr(c->r, "no connection to %s within %u ms", c->o->authority,
               c->o->opt.connect_timeout_ms);
    fail(c, UPSTREAM_ETIMEDOUT_CONNECT, 0);
}

/* ---- life cycle ---------------------------------------------------------------------------- */

static struct bufferevent *make_bev(struct event_base *base, const upstream_origin *o)
{
    int flags = BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS;
    if (!o->tls)
        return bufferevent_socket_new(base, -1, flags);
    SSL *ssl = SSL_new(o->ssl_ctx);
    if (ssl == NULL)
        return NULL;
    if (!o->name_is_ip)
        SSL_set_tlsext_host_name(ssl, o->name); /* SNI: never an address (RFC 6066 3) */
    if (!o->opt.tls_insecure) {
        X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        int ok = o->name_is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, o->name)
                               : X509_VERIFY_PARAM_set1_host(param, o->name, 0);
        if (ok != 1) {
            SSL_free(ssl);
            return NULL;
        }
    }
    struct bufferevent *bev =
        bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_CONNECTING, flags);
    if (bev == NULL) {
        SSL_free(ssl);
        return NULL;
    }
    /* Origins often close without close_notify; a truncated body is still caught by its
     * framing (a length or chunks not complete), and a body that runs to the close is only
     * allowed where the framing says so. */
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

upstream_conn *upstream__conn_open(struct event_base *base, struct evdns_base *dns,
                                   const upstream_origin *o, const upstream_conn_ops *ops,
                                   void *owner, upstream_req *r)
{
    upstream_conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->bev = make_bev(base, o);
    if (c->bev == NULL) {
        free(c);
        return NULL;
    }
    c->o = o;
    c->ops = ops;
    c->owner = owner;
    c->r = r;
    c->state = C_CONNECTING;
    event_assign(&c->timer, base, -1, 0, on_timer, c);
    event_assign(&c->kick, base, -1, 0, on_kick, c);
    bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
    bufferevent_setwatermark(c->bev, EV_READ, 0, UPSTREAM_READ_HIGH);
    arm_ms(&c->timer, o->opt.connect_timeout_ms);
    r->first_byte_at_ms = 0;
    r->byte_seen = 0;
    r->reused = 0;
    /* A failure at once (no socket, a refused address) still comes as a deferred error event,
     * and the connect timer is the backstop: never a callback during this call. */
    bufferevent_socket_connect_hostname(c->bev, dns, AF_UNSPEC, o->host, (int)o->port);
    return c;
}

void upstream__conn_send(upstream_conn *c, upstream_req *r)
{
    event_del(&c->timer);
    c->r = r;
    r->first_byte_at_ms = 0;
    r->byte_seen = 0;
    r->reused = 1;
    send_request(c);
}

void upstream__conn_park(upstream_conn *c, unsigned idle_ms)
{
    c->state = C_IDLE;
    c->r = NULL;
    bufferevent_enable(c->bev, EV_READ); /* to see the origin close it */
    arm_ms(&c->timer, idle_ms);
}

void upstream__conn_resume(upstream_conn *c)
{
    if (c->r != NULL && c->r->paused) {
        c->r->paused = 0;
        event_active(&c->kick, 0, 0);
    }
}

size_t upstream__conn_buffered(const upstream_conn *c)
{
    return evbuffer_get_length(bufferevent_get_input(c->bev));
}

upstream_conn **upstream__conn_next(upstream_conn *c)
{
    return &c->next;
}

void upstream__conn_free(upstream_conn *c)
{
    if (c == NULL)
        return;
    event_del(&c->timer);
    event_del(&c->kick);
    if (c->bev != NULL) {
        SSL *ssl = c->o->tls ? bufferevent_openssl_get_ssl(c->bev) : NULL;
        if (ssl != NULL)
            SSL_set_shutdown(ssl, SSL_RECEIVED_SHUTDOWN); /* no close_notify exchange: closing */
        bufferevent_free(c->bev);
    }
    free(c);
}

/* ---- the head, for on_head ------------------------------------------------------------------ */

int upstream_head_status(const upstream_head *h)
{
    return (int)h->m->parser.status_code;
}

int upstream_head_http_minor(const upstream_head *h)
{
    return h->m->parser.http_minor;
}

const char *upstream_head_header(const upstream_head *h, const char *name)
{
    return http_msg_header(h->m, h->base, name);
}

size_t upstream_head_count(const upstream_head *h)
{
    return h->m->nhdr;
}

upstream_header upstream_head_at(const upstream_head *h, size_t i)
{
    upstream_header out = {"", ""};
    if (i < h->m->nhdr) {
        out.name = h->base + h->m->name[i].off;
        out.value = h->m->value[i].len ? h->base + h->m->value[i].off : "";
    }
    return out;
}

long long upstream_head_content_length(const upstream_head *h)
{
    return http_msg_content_length(h->m);
}
