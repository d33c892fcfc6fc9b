/* conn.c: strata serve's HTTP/1.1 layer: one connection's bytes in, requests out, answers back.
 *
 * Why not evhttp: profiled at 13.6 us per L1 hit against nginx's 5.1 us, with 7.3 system calls
 * per request (four epoll_ctl from bufferevent's enable/disable dance, an ioctl(FIONREAD), readv,
 * writev), header lists allocated per request and the reply rebuilt through evbuffer_add_printf
 * (docs/architecture.md, "The HTTP layer"). This layer does per request: one recv, the parse,
 * one writev, and nothing else; the common keep-alive request allocates nothing.
 *
 * How: a connection reads into one flat buffer and feeds it to http-parser, which calls back with
 * the URL, each header and the body. The callbacks record offsets (never pointers: the buffer
 * may grow) from the start of the message. The parser pauses at the end of each message; the
 * request is dispatched, and parsing resumes only once it is answered, so pipelined requests
 * are answered in order without any queue of responses. While a request is in flight (an L2
 * read, an offloaded admin job) the buffer never moves, so headers and body stay put in place:
 * they are NUL-terminated in the buffer itself and chunked bodies are joined in place.
 *
 * Answers are appended to an evbuffer (large cached values by reference, never copied) and
 * written once per batch of requests read together. The socket event stays EV_READ in the
 * steady state; it changes (one epoll_ctl) only when a write cannot complete at once.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <http_parser.h>

#include "conn.h"
#include "server.h"

enum {
    IN_INITIAL = 4096,           /* a connection's first buffer: most requests fit */
    SPARES_MAX = 256,            /* buffers and request contexts a worker keeps for reuse */
    LINGER_MS = 5000,            /* longest lingering close */
    MAX_HEADERS = 100,           /* header lines per request */
    OUT_HIGH_WATER = 256 * 1024, /* queued answer bytes that stop reading more requests */
    INLINE_BODY = 2048,          /* bodies up to this are copied beside the headers */
};

/* Bytes of the input buffer, counted from the start of the current message. */
typedef struct span {
    uint32_t off, len;
} span;

typedef struct hconn hconn;

struct hconn {
    worker *w;
    struct hconn *prev, *next; /* the worker's connections */
    evutil_socket_t fd;        /* -1 once closed (the struct may wait for its request) */
    struct event *ev;
    short waiting; /* what ev waits for: EV_READ, EV_WRITE, or 0 (not added) */
    http_parser parser;
    char *in;
    size_t in_len, in_cap;
    size_t parsed;            /* bytes of in already given to the parser */
    size_t msg_start;         /* where the current message begins in in */
    uint64_t msg_began_ms;    /* when an incomplete message was first seen; 0: none */
    uint64_t linger_until_ms; /* a lingering close ends by then, whatever the client sends */
    /* the current message */
    span url, name[MAX_HEADERS], value[MAX_HEADERS];
    unsigned nhdr;
    int hdr_state; /* 0 none yet, 1 in a name, 2 in a value */
    span body;
    const char *query;
    int fail_status; /* a callback refused the message: answer this, then close */
    const char *fail_code, *fail_msg;
    unsigned headers_done : 1, body_started : 1, keep_alive : 1, http10 : 1;
    unsigned busy : 1, closing : 1, eof : 1, in_process : 1, lingering : 1;
    struct evbuffer *out;
    req *q; /* allocated at the first request, reused for the next ones */
    char peer[INET6_ADDRSTRLEN];
};

/* ---- spares: what a connection holds only while it has a request ------------------------- */

/* A connection needs its read buffer and its request context only while a request (or part of
 * one) is in it; between requests they go back to its worker (w->spares), which hands them to
 * the next connection that reads. An idle keep-alive connection thus costs its hconn alone (about
 * 2 KiB, not 11), and the steady state still allocates nothing. Bounded: past SPARES_MAX they are
 * freed. A spare's first bytes link it to the next. */
struct conn_spare {
    struct conn_spare *next;
};

static void *take(struct conn_spare **list, unsigned *n, size_t size)
{
    struct conn_spare *s = *list;
    if (s == NULL)
        return malloc(size);
    *list = s->next;
    (*n)--;
    return s;
}

static void give(struct conn_spare **list, unsigned *n, void *p)
{
    if (p == NULL)
        return;
    if (*n >= SPARES_MAX) {
        free(p);
        return;
    }
    struct conn_spare *s = p;
    s->next = *list;
    *list = s;
    (*n)++;
}

/* Gives c's buffer (when it has the initial size; a grown one is freed) and request context
 * back to the worker. */
static void give_back(hconn *c)
{
    conn_spares *sp = &c->w->spares;
    if (c->in_cap == IN_INITIAL)
        give(&sp->in, &sp->nin, c->in);
    else
        free(c->in);
    give(&sp->q, &sp->nq, c->q);
    c->in = NULL;
    c->q = NULL;
    c->in_len = c->in_cap = c->parsed = c->msg_start = 0;
}

static void free_list(struct conn_spare *s)
{
    while (s != NULL) {
        struct conn_spare *next = s->next;
        free(s);
        s = next;
    }
}

static void process(hconn *c);
static size_t put_head(char *dst, worker *w, int status, const char *hdrs, size_t hlen, size_t len,
                       int has_body, int keep, int http10);

static size_t limit_headers(const hconn *c)
{
    return c->w->srv->cfg.max_headers;
}

static size_t limit_body(const hconn *c)
{
    return c->w->srv->cfg.max_body;
}

/* ---- parser callbacks --------------------------------------------------------------------- */

static uint32_t rel(const hconn *c, const char *at)
{
    return (uint32_t)((size_t)(at - c->in) - c->msg_start);
}

/* Grows s to cover [at, at + len): callbacks may deliver one item in several pieces. */
static void extend(hconn *c, span *s, int fresh, const char *at, size_t len)
{
    if (fresh)
        s->off = rel(c, at);
    s->len = rel(c, at) + (uint32_t)len - s->off;
}

static int refuse_message(hconn *c, int status, const char *code, const char *msg)
{
    c->fail_status = status;
    c->fail_code = code;
    c->fail_msg = msg;
    return -1; /* the parser stops with HPE_CB_* */
}

/* Forgets the message before: called when one begins and when one was answered (http-parser
 * skips CR/LF between messages without calling on_message_begin, so nothing of the last message
 * may look current until then: fuzz_http found its body offsets applied to the next one). */
static void reset_message(hconn *c)
{
    c->url.len = 0;
    c->nhdr = 0;
    c->hdr_state = 0;
    c->body.len = 0;
    c->query = NULL;
    c->headers_done = 0;
    c->body_started = 0;
    c->msg_began_ms = 0;
}

static int on_message_begin(http_parser *p)
{
    reset_message(p->data);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    hconn *c = p->data;
    extend(c, &c->url, c->url.len == 0, at, len);
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    hconn *c = p->data;
    if (c->headers_done)
        return 0; /* a chunked body's trailer: not used */
    if (c->hdr_state != 1) {
        if (c->nhdr == MAX_HEADERS)
            return refuse_message(c, 431, "headers_too_large", "too many header lines");
        c->value[c->nhdr].len = 0;
        c->nhdr++;
    }
    extend(c, &c->name[c->nhdr - 1], c->hdr_state != 1, at, len);
    c->hdr_state = 1;
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    hconn *c = p->data;
    if (c->headers_done)
        return 0;
    extend(c, &c->value[c->nhdr - 1], c->hdr_state != 2, at, len);
    c->hdr_state = 2;
    return 0;
}

/* NUL-terminates the URL, names and values in the buffer: the bytes after each (' ', ':',
 * '\r') were already read by the parser, which never looks back. */
static void terminate_in_place(hconn *c)
{
    char *m = c->in + c->msg_start;
    m[c->url.off + c->url.len] = '\0';
    for (unsigned i = 0; i < c->nhdr; i++) {
        m[c->name[i].off + c->name[i].len] = '\0';
        span *v = &c->value[i];
        while (v->len > 0 && (m[v->off + v->len - 1] == ' ' || m[v->off + v->len - 1] == '\t'))
            v->len--;
        if (v->len > 0)
            m[v->off + v->len] = '\0';
    }
}

static const char *header_of(hconn *c, const char *name)
{
    const char *m = c->in + c->msg_start;
    for (unsigned i = 0; i < c->nhdr; i++)
        if (strcasecmp(m + c->name[i].off, name) == 0)
            return c->value[i].len ? m + c->value[i].off : "";
    return NULL;
}

/* The size of the message's head, up to its last header (http-parser resets its own count). */
static size_t head_size(const hconn *c)
{
    size_t end = c->url.off + c->url.len;
    if (c->nhdr > 0) {
        const span *n = &c->name[c->nhdr - 1], *v = &c->value[c->nhdr - 1];
        end = v->len ? v->off + v->len : n->off + n->len;
    }
    return end;
}

static int on_headers_complete(http_parser *p)
{
    hconn *c = p->data;
    if (head_size(c) > limit_headers(c))
        return refuse_message(c, 431, "headers_too_large", "the request headers are too large");
    if (p->http_major != 1)
        return refuse_message(c, 400, "bad_request", "only HTTP/1.0 and HTTP/1.1 are spoken");
    if (c->url.len == 0)
        return refuse_message(c, 400, "bad_request", "the request has no target");
    terminate_in_place(c);
    /* RFC 7230 3.2.4: whitespace before the colon must be refused (a proxy that reads
     * "Content-Length : 5" differently from us could smuggle a request), and a folded value
     * (obs-fold) may be: we do, rather than carry its CR LF into the value. RFC 7230 5.4: an
     * HTTP/1.1 request without Host, or any with two, is answered 400. */
    const char *m = c->in + c->msg_start;
    unsigned hosts = 0;
    for (unsigned i = 0; i < c->nhdr; i++) {
        if (strpbrk(m + c->name[i].off, " \t") != NULL ||
            (c->value[i].len && memchr(m + c->value[i].off, '\n', c->value[i].len) != NULL))
            return refuse_message(c, 400, "bad_request", "malformed header line");
        hosts += strcasecmp(m + c->name[i].off, "Host") == 0;
    }
    if (hosts > 1 || (hosts == 0 && p->http_minor >= 1))
        return refuse_message(c, 400, "bad_request", "an HTTP/1.1 request needs one Host header");
    int chunked = (p->flags & F_CHUNKED) != 0;
    int has_length = !chunked && p->content_length != UINT64_MAX;
    if (has_length && p->content_length > limit_body(c))
        return refuse_message(c, 413, "body_too_large", "the request body is over STRATA_MAX_BODY");
    c->headers_done = 1;
    c->http10 = p->http_minor == 0;
    c->keep_alive = http_should_keep_alive(p) != 0;
    /* A client that asked before sending its body gets the go-ahead now (curl waits a second
     * for it otherwise); a refused one got its 413 above instead. */
    const char *expect = header_of(c, "Expect");
    if (expect != NULL && !c->http10 && strcasecmp(expect, "100-continue") == 0 &&
        (chunked || (has_length && p->content_length > 0)))
        evbuffer_add(c->out, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    hconn *c = p->data;
    if (!c->body_started) {
        c->body.off = rel(c, at);
        c->body_started = 1;
    }
    if (c->body.len + len > limit_body(c))
        return refuse_message(c, 413, "body_too_large", "the request body is over STRATA_MAX_BODY");
    /* Joins chunks in place: the destination never runs ahead of at (chunk framing only adds
     * bytes), and everything before at was already read by the parser. */
    char *dst = c->in + c->msg_start + c->body.off + c->body.len;
    if (dst != at)
        memmove(dst, at, len);
    c->body.len += (uint32_t)len;
    return 0;
}

static int on_message_complete(http_parser *p)
{
    http_parser_pause(p, 1); /* one request at a time: answers leave in order */
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- the connection's life ---------------------------------------------------------------- */

static void on_event(evutil_socket_t fd, short what, void *arg);

/* Makes the socket event wait for what (EV_READ, EV_WRITE, or 0 for nothing). */
static void wait_for(hconn *c, short what)
{
    if (c->waiting == what)
        return;
    if (c->waiting)
        event_del(c->ev);
    c->waiting = what;
    if (what) {
        event_assign(c->ev, c->w->base, c->fd, what | EV_PERSIST, on_event, c);
        event_add(c->ev, c->w->idle_tv);
    }
}

static void destroy(hconn *c)
{
    worker *w = c->w;
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    event_free(c->ev);
    evbuffer_free(c->out);
    give_back(c);
    free(c);
}

/* Closes the socket. The struct goes too, unless a request is still being answered: then it
 * goes when that answer is done (conn_done), and the answer is dropped. */
static void close_conn(hconn *c)
{
    if (c->fd < 0)
        return;
    wait_for(c, 0);
    close(c->fd);
    c->fd = -1;
    c->w->nconns--;
    if (!c->busy)
        destroy(c);
}

/* Sends what is queued. Returns 0, or -1 if the connection was closed (c is gone). */
static int flush(hconn *c)
{
    if (evbuffer_get_length(c->out) > 0 && evbuffer_write(c->out, c->fd) < 0 && errno != EAGAIN &&
        errno != EINTR) {
        close_conn(c);
        return -1;
    }
    return 0;
}

/* Decides what the connection does next, once what could be processed was: wait to write,
 * wait to read, or close. */
static void settle(hconn *c)
{
    if (flush(c) != 0)
        return;
    if (evbuffer_get_length(c->out) > 0) {
        wait_for(c, EV_WRITE);
    } else if (c->busy) {
        /* Reads go on only into spare room: the buffer must not move under the request. */
        wait_for(c, !c->eof && !c->closing && c->in_len < c->in_cap ? EV_READ : 0);
    } else if (c->closing && !c->eof && !c->lingering) {
        /* Closing at once, with the client's next bytes unread, would make the kernel send a
         * reset that can destroy the answer before the client reads it: say we are done,
         * then read and drop until the client closes too (or the idle timeout). */
        shutdown(c->fd, SHUT_WR);
        c->lingering = 1;
        c->linger_until_ms = strata_now_ms() + LINGER_MS;
        wait_for(c, EV_READ);
    } else if (c->closing || c->eof) {
        close_conn(c);
    } else {
        wait_for(c, EV_READ);
    }
}

/* Answers a message the parser or its callbacks refused, and closes after it: the rest of the
 * stream cannot be trusted to be framed. */
static void refuse(hconn *c, int status, const char *code, const char *msg)
{
    char body[512];
    int n = snprintf(body, sizeof body,
                     "{\"error\":{\"code\":\"%s\",\"message\":\"%s\",\"status\":%d}}\n", code, msg,
                     status);
    char head[512];
    const char *hdrs = status == 503 ? "Content-Type: application/json\r\nRetry-After: 1\r\n"
                                     : "Content-Type: application/json\r\n";
    size_t h = put_head(head, c->w, status, hdrs, strlen(hdrs), (size_t)n, 1, 0, 0);
    evbuffer_add(c->out, head, h);
    evbuffer_add(c->out, body, (size_t)n);
    /* Counted with the requests that reached no route; logged like them when access_log is on. */
    metrics_record(c->w->metrics, R_NOT_FOUND, status, 0, -1);
    if (c->w->srv->cfg.access_log)
        log_msg(LOG_INFO, "access method=- route=- tenant=- status=%d bytes=%d us=0 refused=%s",
                status, n, code);
    log_msg(LOG_DEBUG, "refused a request from %s: %d %s", c->peer, status, msg);
    c->closing = 1;
}

static void refuse_parse_error(hconn *c)
{
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    if (c->fail_status != 0)
        refuse(c, c->fail_status, c->fail_code, c->fail_msg);
    else if (e == HPE_INVALID_CONTENT_LENGTH || e == HPE_UNEXPECTED_CONTENT_LENGTH)
        refuse(c, 400, "bad_request", "bad Content-Length");
    else
        refuse(c, 400, "bad_request", "malformed HTTP request");
}

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
    default:
        return 0; /* answered 405 by every route */
    }
}

/* The path of the request target: the query is cut off (kept in c->query); an absolute-form
 * target ("http://host/path") is reduced to its path. */
static const char *target_path(hconn *c)
{
    char *url = c->in + c->msg_start + c->url.off;
    char *mark = memchr(url, '?', c->url.len);
    if (mark != NULL) {
        *mark = '\0';
        c->query = mark + 1;
    }
    if (strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0) {
        char *slash = strchr(strstr(url, "//") + 2, '/');
        return slash ? slash : "/";
    }
    return url;
}

static void dispatch(hconn *c)
{
    if (c->q == NULL && (c->q = take(&c->w->spares.q, &c->w->spares.nq, sizeof *c->q)) == NULL) {
        refuse(c, 503, "out_of_memory", "out of memory");
        return;
    }
    req *q = c->q;
    memset(q, 0, offsetof(req, out_hdr)); /* the header and key buffers need no zeroing */
    q->conn = c;
    q->w = c->w;
    q->method = method_bit(c->parser.method);
    q->close = !c->keep_alive || c->parser.upgrade;
    q->http10 = c->http10;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    q->start_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    c->busy = 1;
    serve_request(q, target_path(c));
}

/* The request was answered: the next message starts where this one ended. */
static void next_message(hconn *c)
{
    c->msg_start = c->parsed;
    reset_message(c);
    if (c->msg_start == c->in_len) /* nothing of the next request here yet */
        give_back(c);
}

/* Bytes of a message already parsed that nothing refers to (chunk framing behind the joined
 * body) are dropped, so a chunked body needs no more room than its content. */
static void drop_parsed_framing(hconn *c)
{
    if (c->headers_done && c->body_started && c->parsed == c->in_len) {
        size_t end = c->msg_start + c->body.off + c->body.len;
        c->in_len = c->parsed = end;
    }
}

/* Feeds the parser what it has not seen, up to the end of the next message, and answers that
 * message (or refuses it). */
static void parse_next(hconn *c)
{
    size_t n =
        http_parser_execute(&c->parser, &parser_settings, c->in + c->parsed, c->in_len - c->parsed);
    c->parsed += n;
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    if (e == HPE_PAUSED) {
        http_parser_pause(&c->parser, 0);
        dispatch(c);
    } else if (e != HPE_OK) {
        refuse_parse_error(c);
    } else if (!c->headers_done && c->parsed - c->msg_start > limit_headers(c)) {
        refuse(c, 431, "headers_too_large", "the request headers are too large");
    } else {
        drop_parsed_framing(c);
    }
}

/* Parses what was read and answers each complete request in turn, until the data runs out, a
 * request is answered later (busy), or OUT_HIGH_WATER bytes of answers wait. Then sends and
 * settles. c may be gone on return. */
static void process(hconn *c)
{
    for (;;) {
        c->in_process = 1;
        while (!c->busy && !c->closing && c->parsed < c->in_len &&
               evbuffer_get_length(c->out) < OUT_HIGH_WATER)
            parse_next(c);
        /* A message left incomplete starts its clock (not every request: most arrive whole). */
        if (!c->busy && !c->closing && c->in_len > c->msg_start && c->msg_began_ms == 0)
            c->msg_began_ms = strata_now_ms();
        c->in_process = 0;
        if (flush(c) != 0)
            return;
        /* Stopped by the high-water mark and the socket took it all: requests already read
         * must not wait for more input that may never come (found by fuzz_http). */
        if (evbuffer_get_length(c->out) > 0 || c->busy || c->closing || c->parsed == c->in_len)
            break;
    }
    settle(c);
}

/* Makes room to read into. Returns 0, or -1 when the message cannot fit (answered). */
static int make_room(hconn *c)
{
    if (c->in == NULL) {
        if ((c->in = take(&c->w->spares.in, &c->w->spares.nin, IN_INITIAL)) == NULL) {
            refuse(c, 503, "out_of_memory", "out of memory");
            return -1;
        }
        c->in_cap = IN_INITIAL;
        return 0;
    }
    if (c->in_len < c->in_cap)
        return 0;
    if (c->msg_start > 0) { /* a partial message behind answered ones: move it to the front */
        memmove(c->in, c->in + c->msg_start, c->in_len - c->msg_start);
        c->in_len -= c->msg_start;
        c->parsed -= c->msg_start;
        c->msg_start = 0;
        return 0;
    }
    size_t most = limit_headers(c) + limit_body(c) + IN_INITIAL;
    size_t cap = c->in_cap * 2;
    /* A body of known length is read straight into a buffer that holds all of it. */
    if (c->headers_done && !(c->parser.flags & F_CHUNKED) &&
        c->parser.content_length != UINT64_MAX && c->in_len + c->parser.content_length > cap)
        cap = c->in_len + (size_t)c->parser.content_length;
    if (cap > most)
        cap = most;
    if (cap <= c->in_cap) {
        refuse(c, c->headers_done ? 413 : 431, "too_large", "the request does not fit");
        return -1;
    }
    char *bigger = realloc(c->in, cap);
    if (bigger == NULL) {
        refuse(c, 503, "out_of_memory", "out of memory");
        return -1;
    }
    c->in = bigger;
    c->in_cap = cap;
    return 0;
}

/* After our last answer, with the write side shut: drop what comes until the client closes. */
static void on_lingering(hconn *c)
{
    char junk[4096];
    ssize_t n = recv(c->fd, junk, sizeof junk, 0);
    /* A client that keeps sending cannot hold the socket: the idle timer re-arms on each read,
     * this bound does not (nginx's lingering_time). */
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) ||
        strata_now_ms() > c->linger_until_ms)
        close_conn(c);
}

static void on_readable(hconn *c)
{
    if (c->lingering) {
        on_lingering(c);
        return;
    }
    if (!c->busy && make_room(c) != 0) {
        settle(c);
        return;
    }
    ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n < 0) { /* reset: nobody is left to answer */
        close_conn(c);
        return;
    }
    if (n == 0)
        c->eof = 1; /* maybe only a half-close: what was sent is still answered */
    c->in_len += (size_t)n;
    /* Headers must arrive within the idle timeout of their first byte, however slowly they
     * trickle in: a client cannot hold a connection with a byte a second. */
    if (c->msg_began_ms != 0 && !c->headers_done && !c->busy &&
        strata_now_ms() - c->msg_began_ms > c->w->srv->cfg.idle_timeout_s * 1000u) {
        refuse(c, 408, "request_timeout", "the request headers took too long");
        settle(c);
        return;
    }
    if (c->busy)
        settle(c);
    else
        process(c);
}

static void on_timeout(hconn *c)
{
    if (c->busy && c->waiting != EV_WRITE && !c->lingering)
        return; /* the library's own deadlines answer it */
    if (c->waiting == EV_READ && !c->lingering && c->in_len > c->msg_start) {
        refuse(c, 408, "request_timeout", "the request was not completed in time");
        settle(c);
        return;
    }
    close_conn(c); /* idle, or a client that does not read its answers */
}

static void on_event(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    hconn *c = arg;
    if (what & EV_TIMEOUT)
        on_timeout(c);
    else if (what & EV_READ)
        on_readable(c);
    else if (flush(c) == 0 && evbuffer_get_length(c->out) == 0)
        process(c); /* written out: pipelined requests may be waiting */
}

void conn_adopt(worker *w, int fd, const struct sockaddr *sa)
{
    hconn *c = calloc(1, sizeof *c);
    if (c != NULL) {
        c->out = evbuffer_new();
        c->ev = event_new(w->base, -1, 0, on_event, c);
    }
    if (c == NULL || c->out == NULL || c->ev == NULL) {
        log_msg(LOG_ERROR, "out of memory accepting a connection");
        if (c != NULL) {
            if (c->out)
                evbuffer_free(c->out);
            if (c->ev)
                event_free(c->ev);
            free(c);
        }
        close(fd);
        return;
    }
    c->w = w;
    c->fd = fd;
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    const void *addr = NULL;
    if (sa != NULL && sa->sa_family == AF_INET6)
        addr = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    else if (sa != NULL && sa->sa_family == AF_INET)
        addr = &((const struct sockaddr_in *)sa)->sin_addr;
    if (addr == NULL || inet_ntop(sa->sa_family, addr, c->peer, sizeof c->peer) == NULL)
        strcpy(c->peer, "?");
    /* Nagle would hold an answer's last small segment until the client's delayed ACK (~40 ms
     * on a reused connection): answers go out as soon as they are written. */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    unsigned share = w->srv->cfg.max_connections / w->srv->cfg.workers;
    int over_limit = w->nconns >= (share ? share : 1);
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    w->nconns++;
    if (over_limit) {
        /* Over the worker's share of STRATA_MAX_CONNECTIONS: told at once, without waiting for
         * a request, then closed (lingering: 5 s at most), so the limit bounds descriptors. */
        refuse(c, 503, "too_many_connections", "the server is at its connection limit");
        settle(c);
        return;
    }
    wait_for(c, EV_READ);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
    (void)l, (void)salen;
    conn_adopt(arg, fd, sa);
}

/* ---- the worker's side -------------------------------------------------------------------- */

int conn_listen(worker *w, int fd, char *err, size_t errcap)
{
    struct timeval idle = {(time_t)w->srv->cfg.idle_timeout_s, 0};
    /* One shared timeout length: libevent keeps such timers in a list, O(1) to re-arm on every
     * read, instead of its heap. */
    w->idle_tv = event_base_init_common_timeout(w->base, &idle);
    w->listener = evconnlistener_new(w->base, on_accept, w, LEV_OPT_CLOSE_ON_FREE, -1, fd);
    if (w->listener == NULL || w->idle_tv == NULL) {
        if (w->listener == NULL)
            close(fd);
        snprintf(err, errcap, "cannot accept connections: %s", strerror(errno));
        return -1;
    }
    return 0;
}

void conn_stop_listening(worker *w)
{
    if (w->listener != NULL) {
        evconnlistener_free(w->listener);
        w->listener = NULL;
    }
}

int conn_unsent(worker *w)
{
    for (hconn *c = w->conns; c != NULL; c = c->next)
        if (c->fd >= 0 && evbuffer_get_length(c->out) > 0)
            return 1;
    return 0;
}

void conn_close_all(worker *w)
{
    conn_stop_listening(w);
    while (w->conns != NULL) {
        hconn *c = w->conns;
        if (c->fd >= 0) {
            event_del(c->ev);
            close(c->fd);
            w->nconns--;
        }
        destroy(c);
    }
    free_list(w->spares.in);
    free_list(w->spares.q);
    memset(&w->spares, 0, sizeof w->spares);
}

/* ---- the request being answered ----------------------------------------------------------- */

const char *conn_header(req *q, const char *name)
{
    return header_of(q->conn, name);
}

const char *conn_query(req *q)
{
    return q->conn->query;
}

const char *conn_body(req *q, size_t *len)
{
    hconn *c = q->conn;
    *len = c->body.len;
    return c->body.len ? c->in + c->msg_start + c->body.off : NULL;
}

const char *conn_peer(req *q)
{
    return q->conn->peer;
}

/* ---- answering ---------------------------------------------------------------------------- */

/* The Date header's value, formatted once a second per worker. */
static const char *http_date(worker *w)
{
    time_t now = time(NULL);
    if (now != w->date_at) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(w->date, sizeof w->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        w->date_at = now;
    }
    return w->date;
}

static size_t put(char *dst, const char *s, size_t n)
{
    memcpy(dst, s, n);
    return n;
}

static size_t put_str(char *dst, const char *s)
{
    return put(dst, s, strlen(s));
}

static size_t put_uint(char *dst, unsigned long long v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        dst[i] = tmp[n - 1 - i];
    return n;
}

static void release_value(const void *data, size_t len, void *arg)
{
    (void)data, (void)len;
    strata_value_release(arg);
}

/* Writes an answer's head into dst (512 bytes plus hlen are enough): status line, Date,
 * Content-Length (when the status has a body: len), the headers hdrs (hlen bytes of
 * "Name: value\r\n"), Connection, and the empty line. Returns its length. */
static size_t put_head(char *dst, worker *w, int status, const char *hdrs, size_t hlen, size_t len,
                       int has_body, int keep, int http10)
{
    size_t n = put(dst, "HTTP/1.1 ", 9);
    n += put_uint(dst + n, (unsigned)status);
    dst[n++] = ' ';
    n += put_str(dst + n, http_reason(status));
    n += put(dst + n, "\r\nDate: ", 8);
    n += put_str(dst + n, http_date(w));
    if (has_body) {
        n += put(dst + n, "\r\nContent-Length: ", 18);
        n += put_uint(dst + n, len);
    }
    n += put(dst + n, "\r\n", 2);
    n += put(dst + n, hdrs, hlen);
    if (!keep)
        n += put_str(dst + n, "Connection: close\r\n");
    else if (http10)
        n += put_str(dst + n, "Connection: keep-alive\r\n");
    n += put(dst + n, "\r\n", 2);
    return n;
}

void conn_respond(req *q, int status, const char *body, size_t len, strata_value *v)
{
    hconn *c = q->conn;
    if (v != NULL) {
        body = strata_value_data(v);
        len = strata_value_len(v);
    }
    int keep = !q->close && !c->closing;
    int has_body = status != 204 && status != 304 && status >= 200;
    int send_body = has_body && q->method != M_HEAD && len > 0;
    /* Status line and headers, and a small body beside them: one evbuffer chain, one copy. */
    char head[512 + sizeof q->out_hdr + INLINE_BODY];
    size_t n =
        put_head(head, c->w, status, q->out_hdr, q->out_hlen, len, has_body, keep, q->http10);
    if (send_body && len <= INLINE_BODY) {
        n += put(head + n, body, len);
        send_body = 0;
    }
    if (c->fd >= 0) {
        evbuffer_add(c->out, head, n);
        if (send_body && v != NULL) {
            /* Zero copy: the socket sends the cache's own bytes; released once sent. */
            if (evbuffer_add_reference(c->out, body, len, release_value, v) == 0)
                v = NULL;
            else
                c->closing = 1; /* out of memory: the answer is cut short, so end it here */
        } else if (send_body) {
            evbuffer_add(c->out, body, len);
        }
    }
    if (v != NULL)
        strata_value_release(v);
    if (!keep)
        c->closing = 1;
}

void conn_done(req *q)
{
    hconn *c = q->conn;
    c->busy = 0;
    if (c->fd < 0) { /* the client left while we were answering */
        destroy(c);
        return;
    }
    next_message(c);
    if (!c->in_process)
        process(c); /* an answer that came later: send it, go on with pipelined requests */
}
