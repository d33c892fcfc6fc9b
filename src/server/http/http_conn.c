/* http_conn.c: the HTTP/1.1 server layer (http_server.h): one connection's bytes in, requests
 * out to the owner's callbacks, answers back.
 *
 * Why not evhttp: profiled at 13.6 us per L1 hit against nginx's 5.1 us, with 7.3 system calls
 * per request (four epoll_ctl from bufferevent's enable/disable dance, an ioctl(FIONREAD), readv,
 * writev), header lists allocated per request and the reply rebuilt through evbuffer_add_printf
 * (docs/architecture.md, "HTTP layer"). This layer does per request: one recv, the parse, one
 * writev, and nothing else; the common keep-alive request allocates nothing.
 *
 * How: a connection reads into one flat buffer and feeds it to its http_msg, which records
 * offsets (never pointers: the buffer may grow). Feeding pauses after a head that announces a
 * body (the owner decides about the body first) and at the end of each message; the request is
 * handed over, and parsing resumes only once it is answered, so pipelined requests are answered
 * in order without any queue of responses. While a request is in flight (an L2 read, an
 * offloaded job) the buffer never moves: head and body stay put in place.
 *
 * Answers are appended to an evbuffer (large bodies by reference, never copied) and written once
 * per batch of requests read together. The socket event stays EV_READ in the steady state; it
 * changes (one epoll_ctl) only when a write cannot complete at once.
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

#include "http_msg.h"
#include "http_server.h"

enum {
    IN_INITIAL = 4096,           /* a connection's first buffer: most requests fit */
    BODY_ROOM = 1024,            /* room a streamed body needs behind its head */
    SPARES_MAX = 256,            /* buffers and request contexts a server keeps for reuse */
    LINGER_MS = 5000,            /* longest lingering close, by default */
    ACCEPT_PAUSE_MS = 250,       /* accepting rests this long after accept fails (EMFILE...) */
    ACCEPT_REPORT_MS = 10000,    /* at most one report of failing accepts per this period */
    OUT_HIGH_WATER = 256 * 1024, /* queued answer bytes that stop reading more requests */
    WRITE_FULL = 64 * 1024,      /* queued bytes past which a piecewise writer is told to stop */
    INLINE_BODY = 2048,          /* bodies up to this are copied beside the head */
    HDRS_INLINE = 2048,          /* headers up to this go through the one-copy fast path */
};

/* What a server keeps between requests for its connections to reuse. A spare's first bytes
 * link it to the next. */
struct spare {
    struct spare *next;
};

struct http_server {
    struct event_base *base;
    struct evconnlistener *listener;
    http_limits lim;
    http_callbacks cb;
    const struct timeval *idle_tv; /* the idle timeout, as a libevent common timeout */
    http_conn *conns;              /* every connection not yet freed */
    unsigned nconns, nalive;       /* open ones; not yet freed ones */
    struct event *resume;          /* ends a pause of accepting after a failed accept */
    unsigned paused_full : 1;      /* not accepting: every descriptor allowed is open */
    unsigned paused_failing : 1;   /* not accepting: accept failed, resume is pending */
    unsigned long accept_failures; /* failed accepts, in all */
    unsigned long unreported;      /* failed accepts not told to on_accept_error yet */
    uint64_t reported_ms;          /* when on_accept_error was last called */
    size_t body_held;              /* bytes reserved by bodies in flight */
    struct spare *in, *ctx;
    unsigned nin, nctx;
    time_t date_at; /* the second date was formatted for */
    char date[40];  /* the Date header's value */
};

struct http_conn {
    http_server *s;
    http_conn *prev, *next;
    evutil_socket_t fd; /* -1 once closed (the struct may wait for its request) */
    struct event *ev;
    short waiting; /* what ev waits for: EV_READ, EV_WRITE, or 0 (not added) */
    http_msg m;
    char *in;
    size_t in_len, in_cap;
    size_t parsed;             /* bytes of in already given to the parser */
    size_t msg_start;          /* where the current message begins in in */
    size_t reserved;           /* bytes of the server's body budget this message holds */
    uint64_t msg_began_ms;     /* when an incomplete message was first seen; 0: none */
    uint64_t body_deadline_ms; /* a body being read must be in by then */
    uint64_t linger_until_ms;  /* a lingering close ends by then, whatever the client sends */
    /* the target's path and query, from the message's start (the buffer may move while a
     * body is read); query_off 0: none; path_root: an absolute-form target without a path */
    uint32_t path_off, query_off;
    unsigned method;
    unsigned path_root : 1, head_seen : 1, streaming : 1, keep_alive : 1, http10 : 1,
        close_after : 1;
    unsigned busy : 1, closing : 1, eof : 1, in_process : 1, lingering : 1;
    unsigned answered : 1, chunked_out : 1, want_writable : 1, body_stopped : 1;
    unsigned owned : 1; /* a head was accepted, its on_request not called yet */
    unsigned timed : 1; /* ev waits under a deadline, not the idle timeout */
    struct evbuffer *out;
    void *ctx; /* the owner's context, from the first request on */
    char peer[INET6_ADDRSTRLEN];
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- spares: what a connection holds only while it has a request ------------------------- */

/* A connection needs its read buffer and the owner's context only while a request (or part of
 * one) is in it; between requests they go back to the server, which hands them to the next
 * connection that reads. An idle keep-alive connection thus costs its struct alone, and the
 * steady state still allocates nothing. Bounded: past SPARES_MAX they are freed. */
static void *take(struct spare **list, unsigned *n, size_t size)
{
    struct spare *p = *list;
    if (p == NULL)
        return malloc(size < sizeof *p ? sizeof *p : size);
    *list = p->next;
    (*n)--;
    return p;
}

static void give(struct spare **list, unsigned *n, void *p)
{
    if (p == NULL)
        return;
    if (*n >= SPARES_MAX) {
        free(p);
        return;
    }
    struct spare *sp = p;
    sp->next = *list;
    *list = sp;
    (*n)++;
}

static void free_list(struct spare *p)
{
    while (p != NULL) {
        struct spare *next = p->next;
        free(p);
        p = next;
    }
}

static void release_body(http_conn *c)
{
    c->s->body_held -= c->reserved;
    c->reserved = 0;
}

/* Gives c's buffer (when it has the initial size; a grown one is freed) and context back. */
static void give_back(http_conn *c)
{
    http_server *s = c->s;
    if (c->in_cap == IN_INITIAL)
        give(&s->in, &s->nin, c->in);
    else
        free(c->in);
    give(&s->ctx, &s->nctx, c->ctx);
    c->in = NULL;
    c->ctx = NULL;
    c->in_len = c->in_cap = c->parsed = c->msg_start = 0;
}

static char *msg_base(const http_conn *c)
{
    return c->in + c->msg_start;
}

/* ---- the connection's life ---------------------------------------------------------------- */

static void on_event(evutil_socket_t fd, short what, void *arg);
static void process(http_conn *c);

/* The deadline a read waits under now (monotonic ms), or 0 when the idle timeout alone bounds
 * it: a lingering close, a body being read, a head begun. */
static uint64_t deadline_of(const http_conn *c)
{
    if (c->lingering)
        return c->linger_until_ms;
    if (c->m.has_body && !c->m.complete && c->head_seen && !c->body_stopped)
        return c->body_deadline_ms;
    if (c->msg_began_ms != 0 && !c->m.headers_done && !c->busy)
        return c->msg_began_ms + c->s->lim.idle_timeout_s * 1000u;
    return 0;
}

/* Makes the socket event wait for what (EV_READ, EV_WRITE, or 0 for nothing), with the idle
 * timeout, or sooner when a deadline comes first: the deadlines are timers of their own, so a
 * client that sends a byte and then nothing is cut at the deadline, not an idle period later.
 * The steady state (a read wait without a deadline, already armed) costs nothing here. */
static void wait_for(http_conn *c, short what)
{
    uint64_t deadline = what == EV_READ ? deadline_of(c) : 0;
    if (c->waiting == what && deadline == 0 && !c->timed)
        return;
    if (c->waiting != what) {
        if (c->waiting)
            event_del(c->ev);
        c->waiting = what;
        if (what)
            event_assign(c->ev, c->s->base, c->fd, what | EV_PERSIST, on_event, c);
    }
    if (!what) {
        c->timed = 0;
    } else if (deadline == 0) {
        event_add(c->ev, c->s->idle_tv);
        c->timed = 0;
    } else {
        uint64_t now = now_ms(), idle = c->s->lim.idle_timeout_s * 1000u;
        uint64_t left = deadline > now ? deadline - now : 0;
        if (left > idle)
            left = idle;
        struct timeval tv = {(time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000};
        event_add(c->ev, &tv);
        c->timed = 1;
    }
}

/* Tells the owner a request it accepted will not be completed. c stays (fd is open). */
static void drop(http_conn *c)
{
    if (!c->owned)
        return;
    c->owned = 0;
    if (c->s->cb.on_drop != NULL) {
        unsigned was = c->in_process;
        c->in_process = 1; /* a done called from on_drop must not settle under our feet */
        c->s->cb.on_drop(c, c->s->cb.arg);
        c->in_process = was;
    }
}

static void destroy(http_conn *c)
{
    http_server *s = c->s;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nalive--;
    if (c->owned && !c->busy && c->s->cb.on_drop != NULL) {
        c->owned = 0;
        c->s->cb.on_drop(c, c->s->cb.arg);
    }
    release_body(c);
    event_free(c->ev);
    evbuffer_free(c->out);
    give_back(c);
    free(c);
}

static void on_closed(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    http_conn *c = arg;
    if (c->owned) {
        c->owned = 0;
        c->s->cb.on_drop(c, c->s->cb.arg); /* c may be gone */
    }
}

/* ---- accepting ----------------------------------------------------------------------------
 * Two pauses hold accepting off. Every socket the limit allows is open (the limit, and room past
 * it to tell a few more they are refused): the rest wait in the kernel's queue until one closes,
 * so the limit bounds descriptors. accept fails (EMFILE, ENFILE, ENOBUFS): without a pause the
 * listener, still readable, would be called again at once, a spin; it rests ACCEPT_PAUSE_MS
 * while the open connections are served, and the owner hears of it once per ACCEPT_REPORT_MS. */

unsigned http_server_most_open(unsigned max_connections)
{
    return max_connections ? max_connections + max_connections / 8 + 2 : 0;
}

static void set_accepting(http_server *s)
{
    if (s->listener == NULL)
        return;
    if (s->paused_full || s->paused_failing)
        evconnlistener_disable(s->listener);
    else
        evconnlistener_enable(s->listener);
}

/* A socket was opened (opened 1) or closed (0): pauses or resumes accepting at the bound. */
static void count_open(http_server *s, int opened)
{
    if (opened)
        s->nconns++;
    else
        s->nconns--;
    unsigned most = http_server_most_open(s->lim.max_connections);
    if (most == 0)
        return;
    int full = s->nconns >= most;
    if (full != s->paused_full) {
        s->paused_full = full;
        set_accepting(s);
    }
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    http_server *s = arg;
    s->paused_failing = 0;
    set_accepting(s);
}

static void on_accept_failed(struct evconnlistener *l, void *arg)
{
    (void)l;
    http_server *s = arg;
    int err = EVUTIL_SOCKET_ERROR();
    s->accept_failures++;
    s->unreported++;
    s->paused_failing = 1;
    set_accepting(s);
    struct timeval pause = {0, ACCEPT_PAUSE_MS * 1000};
    evtimer_add(s->resume, &pause);
    uint64_t now = now_ms();
    if (s->cb.on_accept_error != NULL &&
        (s->reported_ms == 0 || now - s->reported_ms >= ACCEPT_REPORT_MS)) {
        s->cb.on_accept_error(err, s->unreported, s->cb.arg);
        s->unreported = 0;
        s->reported_ms = now;
    }
}

/* Closes the socket. The struct goes too, unless a request is still being answered: then it
 * goes when that answer is done (http_conn_done), and the answer is dropped. */
static void close_conn(http_conn *c)
{
    if (c->fd < 0)
        return;
    wait_for(c, 0);
    close(c->fd);
    c->fd = -1;
    count_open(c->s, 0);
    if (!c->busy) {
        destroy(c);
    } else if (c->owned && c->s->cb.on_drop != NULL) {
        /* A streamed body that will not come: the owner is told from the loop, not from here
         * (we may be inside one of its calls, and its done frees c). Should it call done
         * first, destroy frees the event and the call with it. */
        event_assign(c->ev, c->s->base, -1, 0, on_closed, c);
        event_active(c->ev, EV_TIMEOUT, 0);
    }
}

/* Sends what is queued. Returns 0, or -1 if the connection was closed (c may be gone). */
static int flush(http_conn *c)
{
    if (evbuffer_get_length(c->out) > 0 && evbuffer_write(c->out, c->fd) < 0 && errno != EAGAIN &&
        errno != EINTR) {
        close_conn(c);
        return -1;
    }
    return 0;
}

/* 1 while the current message's body is still being parsed for an owner who has the request. */
static int reading_body(const http_conn *c)
{
    return c->streaming && !c->m.complete && !c->body_stopped;
}

/* Decides what the connection does next, once what could be processed was: wait to write,
 * wait to read, or close. */
static void settle(http_conn *c)
{
    if (c->eof && reading_body(c)) { /* the client ended mid-body: the rest will not come */
        c->body_stopped = 1;
        c->close_after = 1;
        drop(c);
    }
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
         * then read and drop until the client closes too (or the deadline). */
        shutdown(c->fd, SHUT_WR);
        c->lingering = 1;
        c->linger_until_ms = now_ms() + (c->s->lim.linger_ms ? c->s->lim.linger_ms : LINGER_MS);
        wait_for(c, EV_READ);
    } else if (c->closing || c->eof) {
        close_conn(c);
    } else {
        wait_for(c, EV_READ);
    }
}

/* ---- writing answers ---------------------------------------------------------------------- */

/* The Date header's value, formatted once a second per server. */
static const char *http_date(http_server *s)
{
    time_t now = time(NULL);
    if (now != s->date_at) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(s->date, sizeof s->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        s->date_at = now;
    }
    return s->date;
}

static size_t put(char *dst, const char *src, size_t n)
{
    memcpy(dst, src, n);
    return n;
}

static size_t put_str(char *dst, const char *src)
{
    return put(dst, src, strlen(src));
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

/* How an answer's head frames its body. */
enum framing { FR_NONE, FR_LENGTH, FR_CHUNKED, FR_CLOSE };

/* Writes an answer's head without its headers into dst (512 bytes are enough): status line,
 * Date and the framing header. Returns its length. */
static size_t put_status(char *dst, http_server *s, int status, enum framing f, size_t len)
{
    size_t n = put(dst, "HTTP/1.1 ", 9);
    n += put_uint(dst + n, (unsigned)status);
    dst[n++] = ' ';
    n += put_str(dst + n, http_reason(status));
    n += put(dst + n, "\r\nDate: ", 8);
    n += put_str(dst + n, http_date(s));
    if (f == FR_LENGTH) {
        n += put(dst + n, "\r\nContent-Length: ", 18);
        n += put_uint(dst + n, len);
    } else if (f == FR_CHUNKED) {
        n += put_str(dst + n, "\r\nTransfer-Encoding: chunked");
    }
    return n + put(dst + n, "\r\n", 2);
}

/* The head's end: Connection when needed, and the empty line. */
static size_t put_end(char *dst, int keep, int http10)
{
    size_t n = 0;
    if (!keep)
        n += put_str(dst + n, "Connection: close\r\n");
    else if (http10)
        n += put_str(dst + n, "Connection: keep-alive\r\n");
    return n + put(dst + n, "\r\n", 2);
}

static int status_has_body(int status)
{
    return status != 204 && status != 304 && status >= 200;
}

/* Whether the connection stays open after this answer; an answer given while an announced body
 * was not read closes it: the client may still send it, or, told to wait (100-continue), not. */
static int keeps(const http_conn *c)
{
    return !c->close_after && !c->closing && !(c->m.has_body && !c->m.complete);
}

/* Queues a head with hdrs, and a body to copy beside it when it is small (copy_len > 0). */
static void queue_head(http_conn *c, int status, enum framing f, size_t len, const char *hdrs,
                       size_t hlen, const char *copy, size_t copy_len)
{
    int keep = keeps(c);
    char head[512 + HDRS_INLINE + INLINE_BODY];
    size_t n = put_status(head, c->s, status, f, len);
    if (hlen <= HDRS_INLINE) {
        n += put(head + n, hdrs, hlen);
        n += put_end(head + n, keep, c->http10);
        if (copy_len > 0)
            n += put(head + n, copy, copy_len);
        evbuffer_add(c->out, head, n);
    } else { /* headers over the fast path's room: three pieces */
        evbuffer_add(c->out, head, n);
        evbuffer_add(c->out, hdrs, hlen);
        n = put_end(head, keep, c->http10);
        evbuffer_add(c->out, head, n);
        if (copy_len > 0)
            evbuffer_add(c->out, copy, copy_len);
    }
    if (!keep)
        c->closing = 1;
}

void http_conn_respond(http_conn *c, int status, const char *hdrs, size_t hlen, const char *body,
                       size_t len, http_release_cb release, void *arg)
{
    int send_body = status_has_body(status) && c->method != HTTP_HEAD && len > 0;
    int inline_body = send_body && len <= INLINE_BODY;
    if (c->fd >= 0 && !c->answered) {
        c->answered = 1;
        queue_head(c, status, status_has_body(status) ? FR_LENGTH : FR_NONE, len, hdrs, hlen,
                   inline_body ? body : "", inline_body ? len : 0);
        if (send_body && !inline_body && release != NULL) {
            /* Zero copy: the socket sends the owner's own bytes; released once sent. */
            if (evbuffer_add_reference(c->out, body, len, release, arg) == 0)
                release = NULL;
            else
                c->closing = 1; /* out of memory: the answer is cut short, so end it here */
        } else if (send_body && !inline_body) {
            evbuffer_add(c->out, body, len);
        }
    }
    if (release != NULL)
        release(body, len, arg);
}

/* Sends what was queued outside the processing of a read; stops reading or resumes after. */
static void push(http_conn *c)
{
    if (!c->in_process && c->fd >= 0)
        settle(c);
}

int http_conn_start(http_conn *c, int status, const char *hdrs, size_t hlen,
                    long long content_length)
{
    if (c->fd < 0 || c->answered)
        return HTTP_WRITE_GONE;
    c->answered = 1;
    enum framing f = !status_has_body(status) ? FR_NONE
                     : content_length >= 0    ? FR_LENGTH
                     : c->http10              ? FR_CLOSE
                                              : FR_CHUNKED;
    if (f == FR_CLOSE)
        c->close_after = 1; /* an HTTP/1.0 client learns the end from the close */
    c->chunked_out = f == FR_CHUNKED && c->method != HTTP_HEAD;
    queue_head(c, status, f, content_length >= 0 ? (size_t)content_length : 0, hdrs, hlen, "", 0);
    push(c);
    return c->fd < 0 ? HTTP_WRITE_GONE : HTTP_WRITE_OK;
}

int http_conn_write(http_conn *c, const void *data, size_t len)
{
    if (c->fd < 0 || !c->answered)
        return HTTP_WRITE_GONE;
    if (len > 0 && c->method != HTTP_HEAD) {
        if (c->chunked_out) {
            char size[24];
            int n = snprintf(size, sizeof size, "%zx\r\n", len);
            evbuffer_add(c->out, size, (size_t)n);
        }
        evbuffer_add(c->out, data, len);
        if (c->chunked_out)
            evbuffer_add(c->out, "\r\n", 2);
    }
    push(c);
    if (c->fd < 0)
        return HTTP_WRITE_GONE;
    if (evbuffer_get_length(c->out) > WRITE_FULL) {
        c->want_writable = 1; /* on_event calls on_writable once the client took it */
        return HTTP_WRITE_FULL;
    }
    return HTTP_WRITE_OK;
}

void http_conn_end(http_conn *c)
{
    if (c->fd >= 0 && c->chunked_out)
        evbuffer_add(c->out, "0\r\n\r\n", 5);
    c->chunked_out = 0;
    c->want_writable = 0;
}

/* ---- refusals ----------------------------------------------------------------------------- */

/* Answers a message the framing or a limit refused, and closes after it: the rest of the stream
 * cannot be trusted to be framed. Nothing is sent if an answer was (a streamed request). */
static void refuse(http_conn *c, int status, const char *code, const char *why)
{
    c->closing = 1;
    drop(c);
    if (status < 0 || c->answered)
        return;
    c->answered = 1;
    char body[512];
    const char *type = "text/plain";
    size_t n;
    if (c->s->cb.on_refusal != NULL) {
        n = c->s->cb.on_refusal(c, status, code, why, body, sizeof body, &type, c->s->cb.arg);
    } else {
        int k = snprintf(body, sizeof body, "%d %s\n", status, why);
        n = k < 0 ? 0 : (size_t)k;
    }
    if (n > sizeof body)
        n = sizeof body;
    char hdrs[160];
    int h = snprintf(hdrs, sizeof hdrs, "Content-Type: %s\r\n%s", type,
                     status == 503 ? "Retry-After: 1\r\n" : "");
    queue_head(c, status, FR_LENGTH, n, hdrs, h < 0 ? 0 : (size_t)h, body, n);
}

static void refuse_msg(http_conn *c)
{
    refuse(c, c->m.fail_status, c->m.fail_code, c->m.fail_msg);
}

/* ---- requests ----------------------------------------------------------------------------- */

/* Splits the target: the query is cut off (kept in c->query); an absolute-form target
 * ("http://host/path") is reduced to its path. */
static void split_target(http_conn *c)
{
    char *base = msg_base(c), *url = http_msg_url(&c->m, base);
    c->query_off = 0;
    c->path_root = 0;
    char *mark = memchr(url, '?', c->m.url.len);
    if (mark != NULL) {
        *mark = '\0';
        c->query_off = (uint32_t)(mark + 1 - base);
    }
    c->path_off = (uint32_t)(url - base);
    if (strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0) {
        char *slash = strchr(strstr(url, "//") + 2, '/');
        if (slash != NULL)
            c->path_off = (uint32_t)(slash - base);
        c->path_root = slash == NULL;
    }
}

/* Takes the owner's context for a request. Returns 0, or -1 (refused). */
static int take_ctx(http_conn *c)
{
    if (c->ctx == NULL && (c->ctx = take(&c->s->ctx, &c->s->nctx, c->s->lim.ctx_size)) == NULL) {
        refuse(c, 503, "out_of_memory", "out of memory");
        return -1;
    }
    return 0;
}

/* Holds n bytes of the server's body budget for c's message. Returns 0, or -1 (refused). */
static int hold_body(http_conn *c, size_t n)
{
    if (n <= c->reserved)
        return 0;
    http_server *s = c->s;
    size_t budget = s->lim.body_budget ? s->lim.body_budget : 4 * s->lim.max_body;
    if (s->body_held - c->reserved + n > budget) {
        refuse(c, 503, "server_busy", "too many request bodies in flight: try again");
        return -1;
    }
    s->body_held += n - c->reserved;
    c->reserved = n;
    return 0;
}

static int on_piece(void *arg, const char *data, size_t len)
{
    http_conn *c = arg;
    if (c->s->cb.on_body(c, data, len, c->s->cb.arg) == 0)
        return 0;
    c->body_stopped = 1;
    c->close_after = 1;
    return -1;
}

/* Makes sure a body can be read behind the head without moving the buffer later: before the
 * owner sees a pointer into it, a head that fills the buffer is moved to its front or given
 * more room. Returns 0, or -1 (refused). */
static int room_for_body(http_conn *c)
{
    if (c->in_cap - c->parsed >= BODY_ROOM)
        return 0;
    if (c->msg_start > 0) {
        memmove(c->in, c->in + c->msg_start, c->in_len - c->msg_start);
        c->in_len -= c->msg_start;
        c->parsed -= c->msg_start;
        c->msg_start = 0;
        if (c->in_cap - c->parsed >= BODY_ROOM)
            return 0;
    }
    char *bigger = realloc(c->in, c->in_cap + IN_INITIAL);
    if (bigger == NULL) {
        refuse(c, 503, "out_of_memory", "out of memory");
        return -1;
    }
    c->in = bigger;
    c->in_cap += IN_INITIAL;
    return 0;
}

/* A head is complete: the owner decides about the request before any of its body is read.
 * Returns the verdict, or -1 when refused here. */
static int head(http_conn *c)
{
    http_parser *p = &c->m.parser;
    if (c->m.has_body && room_for_body(c) != 0)
        return -1;
    c->head_seen = 1;
    c->method = p->method;
    c->http10 = p->http_minor == 0;
    c->keep_alive = http_msg_keep_alive(&c->m);
    c->close_after = !c->keep_alive || p->upgrade;
    split_target(c);
    if (take_ctx(c) != 0)
        return -1;
    int v = c->s->cb.on_head(c, c->s->cb.arg);
    if (v == HTTP_HEAD_ANSWERED || !c->m.has_body)
        return v;
    c->owned = 1;
    long long len = http_msg_content_length(&c->m);
    if (v == HTTP_HEAD_STREAM) {
        c->streaming = 1;
        c->busy = 1; /* the owner has it from now on */
        c->m.on_piece = on_piece;
        c->m.piece_arg = c;
    } else if (hold_body(c, len > 0 ? (size_t)len : 0) != 0) {
        return -1;
    }
    unsigned timeout =
        c->s->lim.body_timeout_s ? c->s->lim.body_timeout_s : c->s->lim.idle_timeout_s;
    c->body_deadline_ms = now_ms() + timeout * 1000u;
    /* A client that asked before sending its body gets the go-ahead now, after the owner
     * accepted the head (curl waits a second for it otherwise); a refused one got its answer
     * instead, and never a 100. */
    const char *expect = http_msg_header(&c->m, msg_base(c), "Expect");
    if (expect != NULL && !c->http10 && strcasecmp(expect, "100-continue") == 0)
        evbuffer_add(c->out, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    return v;
}

/* The message is complete: on to the owner (after its head, for a message without a body). */
static void complete(http_conn *c)
{
    if (!c->head_seen) {
        int v = head(c);
        if (v < 0 || v == HTTP_HEAD_ANSWERED)
            return;
    }
    c->busy = 1;
    c->owned = 0;
    c->s->cb.on_request(c, c->s->cb.arg);
}

/* The request was answered: the next message starts where this one ended. */
static void next_message(http_conn *c)
{
    c->msg_start = c->parsed;
    http_msg_reset(&c->m);
    release_body(c);
    c->msg_began_ms = 0;
    c->head_seen = c->streaming = c->answered = c->body_stopped = 0;
    c->chunked_out = c->want_writable = 0;
    if (c->msg_start == c->in_len) /* nothing of the next request here yet */
        give_back(c);
}

/* Bytes of a message already parsed that nothing refers to (chunk framing behind the joined
 * body, a streamed body's pieces) are dropped, so a body needs no more room than its content. */
static void drop_parsed_body(http_conn *c)
{
    if (c->m.headers_done && c->m.body_started && c->parsed == c->in_len) {
        size_t end = c->msg_start + c->m.body.off + c->m.body.len;
        c->in_len = c->parsed = end;
    }
}

/* Feeds the parser what it has not seen, up to the next head or message end, and acts on it. */
static void parse_next(http_conn *c)
{
    size_t used = 0;
    int e = http_msg_feed(&c->m, msg_base(c), c->in + c->parsed, c->in_len - c->parsed, &used);
    c->parsed += used;
    if (e == HTTP_MSG_DONE) {
        complete(c);
    } else if (e == HTTP_MSG_HEAD) {
        head(c);
    } else if (e == HTTP_MSG_ERROR) {
        refuse_msg(c);
    } else {
        drop_parsed_body(c);
        if (c->m.body.len > c->reserved && !c->streaming)
            hold_body(c, c->m.body.len); /* a chunked body, as it grows */
    }
}

/* Whether more of the input may be parsed now. */
static int may_parse(const http_conn *c)
{
    return (!c->busy || reading_body(c)) && !c->closing && c->parsed < c->in_len &&
           evbuffer_get_length(c->out) < OUT_HIGH_WATER;
}

/* Parses what was read and hands each complete request over in turn, until the data runs out,
 * a request is answered later (busy), or OUT_HIGH_WATER bytes of answers wait. Then sends and
 * settles. c may be gone on return. */
static void process(http_conn *c)
{
    for (;;) {
        c->in_process = 1;
        while (may_parse(c))
            parse_next(c);
        /* A message left incomplete starts its clock (not every request: most arrive whole). */
        if (!c->busy && !c->closing && c->in_len > c->msg_start && c->msg_began_ms == 0)
            c->msg_began_ms = now_ms();
        c->in_process = 0;
        if (flush(c) != 0)
            return;
        /* Stopped by the high-water mark and the socket took it all: requests already read
         * must not wait for more input that may never come (found by fuzz_http). */
        if (evbuffer_get_length(c->out) > 0 || (c->busy && !reading_body(c)) || c->closing ||
            c->parsed == c->in_len)
            break;
    }
    settle(c);
}

/* Makes room to read into. Returns 0, or -1 when the message cannot fit (refused). */
static int make_room(http_conn *c)
{
    http_server *s = c->s;
    if (c->in == NULL) {
        if ((c->in = take(&s->in, &s->nin, IN_INITIAL)) == NULL) {
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
    size_t most = s->lim.max_headers + s->lim.max_body + IN_INITIAL;
    size_t cap = c->in_cap * 2;
    long long len = http_msg_content_length(&c->m);
    /* The buffer doubles as bytes arrive, never to what a head declares: a client that
     * announces 16 MiB and sends a byte holds 8 KiB (its budget reservation is only a count).
     * The last step stops at what the announced body can still need. */
    if (c->m.headers_done && len >= 0 && c->in_len + (size_t)len < cap)
        cap = c->in_len + (size_t)len;
    if (cap > most)
        cap = most;
    if (cap <= c->in_cap) {
        refuse(c, c->m.headers_done ? 413 : 431, "too_large", "the request does not fit");
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
static void on_lingering(http_conn *c)
{
    char junk[4096];
    ssize_t n = recv(c->fd, junk, sizeof junk, 0);
    /* A client that keeps sending cannot hold the socket: the idle timer re-arms on each read,
     * this bound does not (nginx's lingering_time). */
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) || now_ms() > c->linger_until_ms)
        close_conn(c);
    else
        wait_for(c, EV_READ); /* what is left of the deadline, not a new period */
}

/* The head and body deadlines, checked on each read: however slowly the bytes trickle in, a
 * client cannot hold a connection with a byte a second. Returns 1 when one passed (refused). */
static int late(http_conn *c)
{
    uint64_t now = now_ms();
    if (c->msg_began_ms != 0 && !c->m.headers_done && !c->busy &&
        now - c->msg_began_ms > c->s->lim.idle_timeout_s * 1000u) {
        refuse(c, 408, "request_timeout", "the request headers took too long");
        return 1;
    }
    if (c->m.has_body && !c->m.complete && c->head_seen && now > c->body_deadline_ms) {
        refuse(c, 408, "request_timeout", "the request body took too long");
        return 1;
    }
    return 0;
}

static void on_readable(http_conn *c)
{
    if (c->lingering) {
        on_lingering(c);
        return;
    }
    if ((!c->busy || (reading_body(c) && c->in == NULL)) && make_room(c) != 0) {
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
    if (late(c)) {
        settle(c);
        return;
    }
    if (c->busy && !reading_body(c))
        settle(c);
    else
        process(c);
}

static void on_timeout(http_conn *c)
{
    if (c->lingering || c->waiting == EV_WRITE) {
        close_conn(c); /* a client that does not read its answers, or a lingering close */
        return;
    }
    if (c->busy && !reading_body(c))
        return; /* the owner's own deadlines answer it */
    if (c->in_len > c->msg_start) {
        refuse(c, 408, "request_timeout", "the request was not completed in time");
        settle(c);
        return;
    }
    close_conn(c); /* idle */
}

static void on_writable(http_conn *c)
{
    if (flush(c) != 0)
        return;
    size_t left = evbuffer_get_length(c->out);
    if (c->want_writable && left < WRITE_FULL / 2 && c->s->cb.on_writable != NULL) {
        c->want_writable = 0;
        c->in_process = 1; /* what the owner writes now is sent below */
        c->s->cb.on_writable(c, c->s->cb.arg);
        c->in_process = 0;
        left = evbuffer_get_length(c->out);
    }
    if (left == 0)
        process(c); /* written out: pipelined requests may be waiting */
}

static void on_event(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    http_conn *c = arg;
    if (what & EV_TIMEOUT)
        on_timeout(c);
    else if (what & EV_READ)
        on_readable(c);
    else
        on_writable(c);
}

static void name_peer(http_conn *c, const struct sockaddr *sa)
{
    const void *addr = NULL;
    if (sa != NULL && sa->sa_family == AF_INET6)
        addr = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    else if (sa != NULL && sa->sa_family == AF_INET)
        addr = &((const struct sockaddr_in *)sa)->sin_addr;
    if (addr == NULL || inet_ntop(sa->sa_family, addr, c->peer, sizeof c->peer) == NULL)
        strcpy(c->peer, "?");
}

void http_server_adopt(http_server *s, int fd, const struct sockaddr *sa)
{
    http_conn *c = calloc(1, sizeof *c);
    if (c != NULL) {
        c->out = evbuffer_new();
        c->ev = event_new(s->base, -1, 0, on_event, c);
    }
    if (c == NULL || c->out == NULL || c->ev == NULL) {
        if (c != NULL) {
            if (c->out)
                evbuffer_free(c->out);
            if (c->ev)
                event_free(c->ev);
            free(c);
        }
        close(fd); /* out of memory: the client sees a close */
        return;
    }
    c->s = s;
    c->fd = fd;
    http_msg_init(&c->m, HTTP_REQUEST, s->lim.max_headers, s->lim.max_body);
    name_peer(c, sa);
    /* Nagle would hold an answer's last small segment until the client's delayed ACK (~40 ms
     * on a reused connection): answers go out as soon as they are written. */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int over_limit = s->lim.max_connections && s->nconns >= s->lim.max_connections;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    count_open(s, 1);
    s->nalive++;
    if (over_limit) {
        /* Over the connection limit: told at once, without waiting for a request, then closed
         * (lingering: 5 s at most), so the limit bounds descriptors. */
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
    http_server_adopt(arg, fd, sa);
}

/* ---- the server --------------------------------------------------------------------------- */

http_server *http_server_new(struct event_base *base, const http_limits *limits,
                             const http_callbacks *cb)
{
    http_server *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->base = base;
    s->lim = *limits;
    s->cb = *cb;
    struct timeval idle = {(time_t)limits->idle_timeout_s, 0};
    /* One shared timeout length: libevent keeps such timers in a list, O(1) to re-arm on every
     * read, instead of its heap. */
    s->idle_tv = event_base_init_common_timeout(base, &idle);
    if (s->idle_tv == NULL) {
        free(s);
        return NULL;
    }
    return s;
}

void http_server_set_limits(http_server *s, const http_limits *limits)
{
    size_t ctx_size = s->lim.ctx_size; /* the spares were sized for it */
    if (limits->idle_timeout_s != s->lim.idle_timeout_s) {
        struct timeval idle = {(time_t)limits->idle_timeout_s, 0};
        const struct timeval *tv = event_base_init_common_timeout(s->base, &idle);
        if (tv != NULL)
            s->idle_tv = tv;
    }
    s->lim = *limits;
    s->lim.ctx_size = ctx_size;
}

int http_server_listen(http_server *s, int fd, char *err, size_t errcap)
{
    s->resume = evtimer_new(s->base, on_resume, s);
    s->listener =
        s->resume ? evconnlistener_new(s->base, on_accept, s, LEV_OPT_CLOSE_ON_FREE, -1, fd) : NULL;
    if (s->listener == NULL) {
        close(fd);
        snprintf(err, errcap, "cannot accept connections: %s", strerror(errno));
        return -1;
    }
    evconnlistener_set_error_cb(s->listener, on_accept_failed);
    set_accepting(s);
    return 0;
}

void http_server_stop_listening(http_server *s)
{
    if (s->listener != NULL) {
        evconnlistener_free(s->listener);
        s->listener = NULL;
    }
    if (s->resume != NULL) {
        event_free(s->resume);
        s->resume = NULL;
    }
}

int http_server_unsent(const http_server *s)
{
    for (const http_conn *c = s->conns; c != NULL; c = c->next)
        if (c->fd >= 0 && evbuffer_get_length(c->out) > 0)
            return 1;
    return 0;
}

unsigned http_server_open(const http_server *s)
{
    return s->nconns;
}

unsigned http_server_alive(const http_server *s)
{
    return s->nalive;
}

size_t http_server_body_held(const http_server *s)
{
    return s->body_held;
}

unsigned long http_server_accept_failures(const http_server *s)
{
    return s->accept_failures;
}

size_t http_server_buffered(const http_server *s)
{
    size_t n = 0;
    for (const http_conn *c = s->conns; c != NULL; c = c->next)
        if (c->in != NULL)
            n += c->in_cap;
    return n;
}

void http_server_free(http_server *s)
{
    if (s == NULL)
        return;
    http_server_stop_listening(s);
    while (s->conns != NULL) {
        http_conn *c = s->conns;
        if (c->fd >= 0) {
            event_del(c->ev);
            close(c->fd);
            s->nconns--; /* no listener to resume */
        }
        destroy(c);
    }
    free_list(s->in);
    free_list(s->ctx);
    free(s);
}

/* ---- the request -------------------------------------------------------------------------- */

void *http_conn_ctx(http_conn *c)
{
    return c->ctx;
}

unsigned http_conn_method(const http_conn *c)
{
    return c->method;
}

int http_conn_http10(const http_conn *c)
{
    return c->http10;
}

const char *http_conn_path(const http_conn *c)
{
    return c->path_root ? "/" : c->in + c->msg_start + c->path_off;
}

const char *http_conn_query(const http_conn *c)
{
    return c->query_off ? c->in + c->msg_start + c->query_off : NULL;
}

const char *http_conn_header(const http_conn *c, const char *name)
{
    return http_msg_header(&c->m, c->in + c->msg_start, name);
}

unsigned http_conn_header_count(const http_conn *c)
{
    return c->m.nhdr;
}

const char *http_conn_header_at(const http_conn *c, unsigned i, const char **value)
{
    const char *base = c->in + c->msg_start;
    if (i >= c->m.nhdr)
        return *value = NULL, NULL;
    *value = c->m.value[i].len ? base + c->m.value[i].off : "";
    return base + c->m.name[i].off;
}

const char *http_conn_body(const http_conn *c, size_t *len)
{
    *len = c->m.body.len;
    return c->m.body.len ? c->in + c->msg_start + c->m.body.off : NULL;
}

const char *http_conn_peer(const http_conn *c)
{
    return c->peer;
}

void http_conn_close_after(http_conn *c)
{
    c->close_after = 1;
}

void http_conn_done(http_conn *c)
{
    c->busy = 0;
    if (c->fd < 0) { /* the client left while we were answering */
        destroy(c);
        return;
    }
    if (!c->m.complete) {
        /* Answered before its body was all read (an early refusal, or a streamed body cut
         * short): the rest of the stream is not framed for us any more. */
        c->closing = 1;
        c->msg_start = c->parsed = c->in_len;
        release_body(c);
        if (!c->in_process)
            settle(c);
        return;
    }
    next_message(c);
    if (!c->in_process)
        process(c); /* an answer that came later: send it, go on with pipelined requests */
}

const char *http_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Payload Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Entity";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 507:
        return "Insufficient Storage";
    default:
        return status < 300   ? "OK"
               : status < 400 ? "Redirect"
               : status < 500 ? "Client Error"
                              : "Server Error";
    }
}
