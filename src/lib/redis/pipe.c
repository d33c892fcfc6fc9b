/* redis/pipe.c: one event loop's pipelined connection to one Redis node (pipe.h says what it
 * promises).
 *
 * A call is a batch of commands, formatted by hiredis when it is made. It waits in `waiting`
 * until the connection is ready (connected, AUTH and SELECT answered OK: a command pipelined
 * behind a failed AUTH would run as Redis' default user, behind a failed SELECT in the wrong
 * database) and there is room (fewer than max_pending calls in flight); then its bytes go to the
 * output buffer and it moves to `sent`. Replies come back in order, so each one belongs to the
 * oldest call in `sent`; a call completes when its last reply arrives.
 *
 * The socket is ours, on plain events rather than a bufferevent (as the HTTP layer's): a read is
 * one recv() straight into hiredis' reader, where a bufferevent asks the kernel how much there is
 * first (ioctl FIONREAD: one more system call per read, 3-6% of an L2 hit served over HTTP); the
 * commands queued during one turn of the loop go out together with one write, from an event made
 * active rather than a write event added and removed (no epoll_ctl in the steady state). Only a
 * kernel that will not take everything makes us wait for the socket to be writable.
 *
 * TLS (rediss://) runs under the same events: an SSL session on the same socket, SSL_read in
 * place of recv and SSL_write from the same output buffer, and when OpenSSL needs the socket the
 * other way round (a handshake, a key update) the other event is waited for once. The TLS
 * handshake is a state of its own before AUTH/SELECT, bounded by the connect deadline.
 *
 * Deadlines: every call has one (the socket timeout from when it was made) and the oldest call is
 * the only one that can pass it first, so a 10 ms tick compares the clock with one deadline. Past
 * it, or past the connect deadline, the connection is dropped: every call in it fails at once and
 * the next call reconnects. A connection that fails tells the client, which feeds its breaker.
 *
 * Where to connect is asked of the client each time (strata__redis_target): with sentinels it
 * moves on a failover, and the tick closes a connection made for a former target (its calls
 * fail as for a Redis that is down: callers get L1). With sentinels the handshake ends with
 * ROLE, and a node that does not answer "master" is refused like a failed AUTH.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <strata/errors.h>

#include "core/clock.h"
#include "redis/pipe.h"
#include "redis/sock.h"
#include "redis/tls.h"

#define TICK_MS 10

/* C_NOTARGET: calls wait for the sentinels to name the primary, which they do in the first
 * milliseconds of a client's life (a URL's target is known from the start); the tick connects
 * once they did. */
enum { C_DOWN, C_NOTARGET, C_CONNECTING, C_TLS, C_HANDSHAKE, C_READY };

typedef struct rcall rcall;
struct rcall {
    rcall *next;
    redis_reply_cb cb;
    void *arg;
    uint64_t deadline;
    unsigned n, got;
    char *out; /* the formatted commands, until sent */
    size_t outlen;
    redisReply **replies; /* &one, or an array for a batch */
    redisReply *one;
};

typedef struct rqueue {
    rcall *head, *tail;
    unsigned len;
} rqueue;

struct redis_pipe {
    redis_client *cl;
    struct event_base *base;
    evutil_socket_t fd;      /* -1: no connection */
    SSL *ssl;                /* NULL: plain TCP */
    int read_wants_write;    /* TLS: a read waits for the socket to be writable */
    int write_wants_read;    /* TLS: a write waits for the socket to be readable */
    struct event *rev, *wev; /* the socket: readable; writable (connecting, or kernel full) */
    struct event *flush;     /* made active when bytes are queued: one write per loop turn */
    struct evbuffer *out;    /* bytes for Redis the kernel has not taken yet */
    int flush_pending;
    redisReader *reader;
    int state;
    int closing; /* strata__pipe_free is failing the calls */
    int refused; /* the handshake was refused: drop once the reply is handled */
    char refusal[160];
    unsigned handshakes; /* handshake replies still expected */
    int role_check;      /* the last of them is ROLE's (with sentinels) */
    uint64_t gen;        /* the client's target generation this connection was made for */
    int node;            /* a cluster node's index; -1: the client's target */
    char tls_name[REDIS_URL_PART_MAX]; /* the name to verify ("": the context's) */
    uint64_t connect_deadline;
    unsigned timeout_ms, connect_ms, max_pending;
    struct event *tick;
    rqueue sent, waiting;
};

/* A socket error after which the same call may succeed later. */
static int retriable(int err)
{
    return err == EINTR || err == EAGAIN || err == EWOULDBLOCK;
}

/* ---- calls -------------------------------------------------------------------------------- */

static void push(rqueue *q, rcall *k)
{
    k->next = NULL;
    if (q->tail != NULL)
        q->tail->next = k;
    else
        q->head = k;
    q->tail = k;
    q->len++;
}

static rcall *pop(rqueue *q)
{
    rcall *k = q->head;
    if (k != NULL) {
        q->head = k->next;
        if (q->head == NULL)
            q->tail = NULL;
        q->len--;
    }
    return k;
}

/* The formatted bytes are no longer needed (sent, or never to be). */
static void drop_out(rcall *k)
{
    free(k->out);
    k->out = NULL;
}

static void free_call(rcall *k)
{
    for (unsigned i = 0; i < k->got; i++)
        if (k->replies[i] != NULL) /* a callback may have taken it */
            freeReplyObject(k->replies[i]);
    if (k->replies != &k->one)
        free(k->replies);
    drop_out(k);
    free(k);
}

/* Formats n commands into one buffer, its length known first. Returns the call, or NULL (out of
 * memory). */
static rcall *new_call(const redis_cmd *cmds, size_t n, redis_reply_cb cb, void *arg)
{
    rcall *k = calloc(1, sizeof *k);
    if (k == NULL)
        return NULL;
    k->cb = cb, k->arg = arg, k->n = (unsigned)n;
    k->replies = n == 1 ? &k->one : calloc(n, sizeof *k->replies);
    for (size_t i = 0; i < n; i++)
        k->outlen += strata__cmd_len(&cmds[i]);
    if (k->replies == NULL || (k->out = malloc(k->outlen)) == NULL) {
        free_call(k);
        return NULL;
    }
    for (size_t i = 0, at = 0; i < n; i++)
        at += strata__cmd_write(&cmds[i], k->out + at);
    return k;
}

/* Fails every call of q (detached first: a callback may make new calls). */
static void fail_all(rqueue *q, int status)
{
    rcall *k = q->head;
    *q = (rqueue){0};
    while (k != NULL) {
        rcall *next = k->next;
        k->cb(status, NULL, 0, k->arg);
        free_call(k);
        k = next;
    }
}

/* ---- the connection ----------------------------------------------------------------------- */

/* Closes the socket; every call in it, sent or waiting, fails with status. why (NULL when we
 * close on purpose) goes to the client's breaker and last error. */
static void drop(redis_pipe *c, const char *why, int status)
{
    if (c->rev != NULL)
        event_free(c->rev), c->rev = NULL;
    if (c->wev != NULL)
        event_free(c->wev), c->wev = NULL;
    SSL_free(c->ssl);
    c->ssl = NULL;
    c->read_wants_write = c->write_wants_read = 0;
    if (c->fd >= 0)
        evutil_closesocket(c->fd), c->fd = -1;
    evbuffer_drain(c->out, evbuffer_get_length(c->out));
    if (c->reader != NULL) {
        redisReaderFree(c->reader);
        c->reader = NULL;
    }
    c->state = C_DOWN;
    if (why != NULL && c->node >= 0)
        strata__redis_node_failed(c->cl, c->node, why);
    else if (why != NULL)
        strata__redis_failed(c->cl, why);
    rqueue sent = c->sent, waiting = c->waiting;
    c->sent = c->waiting = (rqueue){0};
    fail_all(&sent, status);
    fail_all(&waiting, status);
}

/* write_out over TLS: a record at most at a time, from the front of the buffer (a write that
 * must be retried is retried with the same bytes, and at least as many). */
static void write_out_tls(redis_pipe *c)
{
    c->write_wants_read = 0;
    while (c->ssl != NULL && evbuffer_get_length(c->out) > 0) {
        size_t len = evbuffer_get_length(c->out);
        len = len < 16384 ? len : 16384;
        char why[160];
        const unsigned char *p = evbuffer_pullup(c->out, (ev_ssize_t)len);
        long n = p == NULL ? REDIS_TLS_FAILED : strata__tls_write(c->ssl, p, len, why, sizeof why);
        if (n > 0) {
            evbuffer_drain(c->out, (size_t)n);
            continue;
        }
        if (n == REDIS_TLS_WANT_WRITE) {
            event_add(c->wev, NULL);
            return;
        }
        if (n == REDIS_TLS_WANT_READ) { /* the persistent read event calls us back */
            c->write_wants_read = 1;
            return;
        }
        char msg[200];
        snprintf(msg, sizeof msg, "redis connection lost: %s",
                 p == NULL ? "out of memory"
                 : n == 0  ? "closed"
                           : why);
        drop(c, msg, STRATA_EUNAVAILABLE);
        return;
    }
}

/* Writes what the kernel takes; waits for the socket to be writable when it takes less. */
static void write_out(redis_pipe *c)
{
    if (c->ssl != NULL) {
        write_out_tls(c);
        return;
    }
    while (c->fd >= 0 && evbuffer_get_length(c->out) > 0) {
        int n = evbuffer_write(c->out, c->fd);
        if (n > 0)
            continue;
        int err = EVUTIL_SOCKET_ERROR();
        if (n < 0 && retriable(err)) {
            event_add(c->wev, NULL);
            return;
        }
        char why[160];
        snprintf(why, sizeof why, "redis connection lost: %s",
                 n == 0 ? "closed" : evutil_socket_error_to_string(err));
        drop(c, why, STRATA_EUNAVAILABLE);
        return;
    }
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    redis_pipe *c = arg;
    c->flush_pending = 0;
    if (c->wev == NULL || !event_pending(c->wev, EV_WRITE, NULL))
        write_out(c);
}

/* Queues bytes for Redis; they are written once the loop has run what is active now, so a turn's
 * commands leave together. Returns 0 or -1 (out of memory). */
static int queue_bytes(redis_pipe *c, const char *p, size_t len)
{
    if (evbuffer_add(c->out, p, len) != 0)
        return -1;
    if (!c->flush_pending) {
        c->flush_pending = 1;
        event_active(c->flush, EV_WRITE, 1);
    }
    return 0;
}

/* Sends waiting calls while the connection is ready and has room. */
static void pump(redis_pipe *c)
{
    while (c->state == C_READY && c->waiting.head != NULL && c->sent.len < c->max_pending) {
        rcall *k = pop(&c->waiting);
        if (queue_bytes(c, k->out, k->outlen) != 0) {
            push(&c->sent, k); /* fails with the rest */
            drop(c, "cannot queue a command to redis", STRATA_EUNAVAILABLE);
            return;
        }
        drop_out(k);
        push(&c->sent, k);
    }
}

static void on_handshake(int status, redisReply **r, size_t n, void *arg)
{
    (void)n;
    redis_pipe *c = arg;
    if (status != 0)
        return; /* the connection is being dropped */
    if (r[0]->type == REDIS_REPLY_ERROR) {
        snprintf(c->refusal, sizeof c->refusal, "redis refused AUTH, SELECT or ROLE: %.100s",
                 r[0]->str);
        c->refused = 1; /* dropped by the reader once this returns, not from in here */
        return;
    }
    if (c->handshakes == 1 && c->role_check && !strata__redis_role_is_master(r[0])) {
        snprintf(c->refusal, sizeof c->refusal,
                 "redis is not the primary (ROLE says %.40s): asking the sentinels again",
                 r[0]->type == REDIS_REPLY_ARRAY && r[0]->elements > 0 && r[0]->element[0]->str
                     ? r[0]->element[0]->str
                     : "?");
        strata__redis_not_primary(c->cl);
        c->refused = 1;
        return;
    }
    if (--c->handshakes == 0) {
        c->state = C_READY;
        pump(c);
    }
}

/* AUTH and SELECT, sent alone and answered before anything else. */
static void start_handshake(redis_pipe *c)
{
    const redis_url *u = strata__redis_url(c->cl);
    char db[16];
    snprintf(db, sizeof db, "%d", u->db);
    redis_cmd cmds[3];
    size_t n = 0;
    if (u->password[0] && u->user[0])
        cmds[n++] = (redis_cmd){.argc = 3,
                                .argv = {"AUTH", u->user, u->password},
                                .argvlen = {4, strlen(u->user), strlen(u->password)}};
    else if (u->password[0])
        cmds[n++] = (redis_cmd){
            .argc = 2, .argv = {"AUTH", u->password}, .argvlen = {4, strlen(u->password)}};
    if (u->db != 0)
        cmds[n++] = (redis_cmd){.argc = 2, .argv = {"SELECT", db}, .argvlen = {6, strlen(db)}};
    c->role_check = strata__redis_via_sentinel(c->cl);
    if (c->role_check)
        cmds[n++] = (redis_cmd){.argc = 1, .argv = {"ROLE"}, .argvlen = {4}};
    c->state = C_HANDSHAKE;
    c->handshakes = (unsigned)n;
    for (size_t i = 0; i < n; i++) {
        rcall *k = new_call(&cmds[i], 1, on_handshake, c);
        if (k == NULL || queue_bytes(c, k->out, k->outlen) != 0) {
            if (k != NULL)
                free_call(k);
            drop(c, "out of memory starting a redis connection", STRATA_EUNAVAILABLE);
            return;
        }
        drop_out(k);
        k->deadline = c->connect_deadline;
        push(&c->sent, k);
    }
    if (n == 0) {
        c->state = C_READY;
        pump(c);
    }
}

/* One step of the TLS handshake, each time the socket is ready the way it asked; once done,
 * AUTH and SELECT go first as on a plain connection. */
static void tls_step(redis_pipe *c)
{
    char why[160];
    int rc = strata__tls_handshake(c->ssl, why, sizeof why);
    if (rc == 1) {
        start_handshake(c);
    } else if (rc == REDIS_TLS_WANT_WRITE) {
        event_add(c->wev, NULL);
    } else if (rc != REDIS_TLS_WANT_READ) { /* a read is waited for by the persistent rev */
        char msg[200];
        snprintf(msg, sizeof msg, "TLS handshake with redis failed: %s", why);
        drop(c, msg, STRATA_EUNAVAILABLE);
    }
}

/* The socket is connected: read from now on, and say who we are before anything else (over
 * TLS, once the TLS handshake is done). */
static void connected(redis_pipe *c)
{
    int one = 1;
    if (strata__redis_url(c->cl)->path[0] == '\0')
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* as hiredis does */
    event_add(c->rev, NULL);
    const redis_tls *tls = strata__redis_tls(c->cl);
    if (tls == NULL) {
        start_handshake(c);
        return;
    }
    char why[160];
    if ((c->ssl = strata__tls_session(tls, c->fd, c->tls_name[0] ? c->tls_name : NULL, why,
                                      sizeof why)) == NULL) {
        drop(c, why, STRATA_EUNAVAILABLE);
        return;
    }
    c->state = C_TLS;
    tls_step(c);
}

static void on_reply(redis_pipe *c, redisReply *r)
{
    rcall *k = c->sent.head;
    if (k == NULL) { /* a reply nobody asked for: the stream cannot be trusted */
        freeReplyObject(r);
        drop(c, "unexpected reply from redis", STRATA_EUNAVAILABLE);
        return;
    }
    k->replies[k->got++] = r;
    strata__redis_saw_reply(c->cl, r);
    if (k->got < k->n)
        return;
    pop(&c->sent);
    strata__redis_succeeded(c->cl);
    k->cb(0, k->replies, k->n, k->arg);
    free_call(k);
}

/* Hands every complete reply to its call. Returns 0, or -1 when the connection was dropped. */
static int take_replies(redis_pipe *c)
{
    while (c->reader != NULL) {
        void *r = NULL;
        if (redisReaderGetReply(c->reader, &r) != REDIS_OK) {
            drop(c, "protocol error in a redis reply", STRATA_EUNAVAILABLE);
            return -1;
        }
        if (r == NULL)
            return 0;
        on_reply(c, r);
        if (c->refused) {
            c->refused = 0;
            drop(c, c->refusal, STRATA_EUNAVAILABLE);
            return -1;
        }
    }
    return -1;
}

/* Reads 16 KiB at a time and takes its replies before reading more: hiredis' reader moves what
 * is left of its buffer down every 1 KiB consumed, so a buffer fed a deep pipeline's whole
 * answer at once would be moved over and over (quadratic in the depth). */
/* One read: > 0 bytes; -1 nothing more now; 0 closed or failed, with why set. */
static ssize_t read_some(redis_pipe *c, char *buf, size_t cap, char *why, size_t whycap)
{
    if (c->ssl == NULL) {
        ssize_t n = recv(c->fd, buf, cap, 0);
        if (n > 0)
            return n;
        if (n < 0 && retriable(EVUTIL_SOCKET_ERROR()))
            return -1;
        snprintf(why, whycap, "redis connection lost: %s",
                 n == 0 ? "closed by the server"
                        : evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
        return 0;
    }
    char tls[160];
    long n = strata__tls_read(c->ssl, buf, cap, tls, sizeof tls);
    if (n > 0)
        return n;
    if (n == REDIS_TLS_WANT_READ)
        return -1;
    if (n == REDIS_TLS_WANT_WRITE) {
        c->read_wants_write = 1;
        event_add(c->wev, NULL);
        return -1;
    }
    snprintf(why, whycap, "redis connection lost: %s", n == 0 ? "closed by the server" : tls);
    return 0;
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)what, (void)fd;
    redis_pipe *c = arg;
    if (c->state == C_TLS) {
        tls_step(c);
        return;
    }
    if (c->write_wants_read)
        write_out(c);
    char buf[16 * 1024];
    while (c->fd >= 0) {
        char why[200];
        ssize_t n = read_some(c, buf, sizeof buf, why, sizeof why);
        if (n > 0) {
            if (redisReaderFeed(c->reader, buf, (size_t)n) != REDIS_OK) {
                drop(c, "redis reply buffer exhausted", STRATA_EUNAVAILABLE);
                return;
            }
            if (take_replies(c) != 0)
                return;
            /* There may be more: a full buffer on TCP; over TLS, until OpenSSL has nothing
             * left (a record is at most 16 KiB, and what it holds decrypted, epoll cannot see). */
            if (n == (ssize_t)sizeof buf || c->ssl != NULL)
                continue;
            break;
        }
        if (n < 0)
            break;
        drop(c, why, STRATA_EUNAVAILABLE);
        return;
    }
    pump(c);
}

/* Connected (or refused), or the kernel takes bytes again. */
static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    redis_pipe *c = arg;
    if (c->state == C_TLS) {
        tls_step(c);
        return;
    }
    if (c->state != C_CONNECTING) {
        if (c->read_wants_write) {
            c->read_wants_write = 0;
            on_readable(fd, EV_READ, c);
            if (c->fd < 0)
                return;
        }
        write_out(c);
        return;
    }
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
        char why[160];
        snprintf(why, sizeof why, "connect to redis: %s",
                 evutil_socket_error_to_string(err ? err : EVUTIL_SOCKET_ERROR()));
        drop(c, why, STRATA_EUNAVAILABLE);
        return;
    }
    connected(c);
}

static int start_connect(redis_pipe *c)
{
    struct sockaddr_storage ss;
    socklen_t len;
    redis_url target;
    if (c->node >= 0) { /* a cluster node: its address never changes */
        strata__redis_node_target(c->cl, c->node, &target);
        snprintf(c->tls_name, sizeof c->tls_name, "%s", target.host);
        c->gen = strata__redis_gen(c->cl);
    } else if (strata__redis_reconnecting(c->cl),
               strata__redis_target(c->cl, &target, c->tls_name, sizeof c->tls_name, &c->gen) !=
                   0) {
        /* Not named yet: the calls wait (tick), at most the connect timeout, rather than fail
         * (and count as failures) while a healthy Redis is being looked for. */
        if (c->state != C_NOTARGET) {
            c->state = C_NOTARGET;
            c->connect_deadline = strata__mono_ms() + c->connect_ms;
        }
        return 0;
    }
    if (strata__redis_sockaddr(&target, &ss, &len) != 0) {
        strata__redis_failed(c->cl, "redis address is not numeric (it did not resolve)");
        return -1;
    }
    c->state = C_CONNECTING;
    c->connect_deadline = strata__mono_ms() + c->connect_ms;
    c->reader = redisReaderCreate();
    c->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd >= 0) {
        c->rev = event_new(c->base, c->fd, EV_READ | EV_PERSIST, on_readable, c);
        c->wev = event_new(c->base, c->fd, EV_WRITE, on_writable, c);
    }
    if (c->reader == NULL || c->fd < 0 || c->rev == NULL || c->wev == NULL) {
        drop(c, "cannot start a redis connection (out of memory or descriptors)",
             STRATA_EUNAVAILABLE);
        return -1;
    }
    if (connect(c->fd, (struct sockaddr *)&ss, len) == 0) {
        connected(c); /* a unix socket may connect at once */
        return 0;
    }
    if (errno != EINPROGRESS) {
        char why[160];
        snprintf(why, sizeof why, "connect to redis: %s", strerror(errno));
        drop(c, why, STRATA_EUNAVAILABLE);
        return -1;
    }
    event_add(c->wev, NULL);
    return 0;
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    redis_pipe *c = arg;
    if (c->state == C_DOWN)
        return;
    if (c->state == C_NOTARGET) { /* still C_NOTARGET after start_connect: not named yet */
        uint64_t now = strata__mono_ms();
        rcall *first = c->waiting.head;
        if (now > c->connect_deadline || (first != NULL && now > first->deadline))
            drop(c, "no redis primary known yet (the sentinels have not named one)",
                 STRATA_ETIMEDOUT);
        else if (start_connect(c) != 0)
            drop(c, NULL, STRATA_EUNAVAILABLE); /* the failure is counted already */
        return;
    }
    if (strata__redis_gen(c->cl) != c->gen) { /* made for a former target */
        drop(c, NULL, STRATA_EUNAVAILABLE);
        return;
    }
    uint64_t now = strata__mono_ms();
    rcall *oldest = c->sent.head ? c->sent.head : c->waiting.head;
    int late = oldest != NULL && now > oldest->deadline;
    if (c->state != C_READY && (late || now > c->connect_deadline)) {
        /* Not connected yet: whichever deadline passed, Redis was never reached, and the log
         * and last error must say so, not that a connected Redis stopped answering. */
        char why[160];
        uint64_t waited = now + c->connect_ms - c->connect_deadline;
        if (c->state == C_CONNECTING)
            snprintf(why, sizeof why, "connect to redis: no connection after %llu ms",
                     (unsigned long long)waited);
        else if (c->state == C_TLS)
            snprintf(why, sizeof why, "TLS handshake with redis: not done after %llu ms",
                     (unsigned long long)waited);
        else
            snprintf(why, sizeof why, "redis did not answer AUTH or SELECT within %llu ms",
                     (unsigned long long)waited);
        drop(c, why, STRATA_ETIMEDOUT);
    } else if (late) {
        drop(c, "redis did not answer within the socket timeout", STRATA_ETIMEDOUT);
    }
}

/* ---- the API ------------------------------------------------------------------------------ */

int strata__pipe_new(redis_client *cl, struct event_base *base, int node, redis_pipe **out)
{
    *out = NULL;
    redis_pipe *c = calloc(1, sizeof *c);
    if (c == NULL)
        return STRATA_ENOMEM;
    const strata_redis_config *cfg = strata__redis_config(cl);
    c->cl = cl;
    c->base = base;
    c->timeout_ms = cfg->socket_timeout_ms ? cfg->socket_timeout_ms : 250;
    c->connect_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms : 500;
    c->max_pending = cfg->max_pending ? cfg->max_pending : 1024;
    c->fd = -1;
    c->node = node;
    struct timeval tv = {0, TICK_MS * 1000};
    c->tick = event_new(base, -1, EV_PERSIST, tick, c);
    c->flush = event_new(base, -1, 0, on_flush, c);
    c->out = evbuffer_new();
    if (c->tick == NULL || c->flush == NULL || c->out == NULL || event_add(c->tick, &tv) != 0) {
        if (c->tick != NULL)
            event_free(c->tick);
        if (c->flush != NULL)
            event_free(c->flush);
        if (c->out != NULL)
            evbuffer_free(c->out);
        free(c);
        return STRATA_ENOMEM;
    }
    *out = c;
    return 0;
}

void strata__pipe_free(redis_pipe *c)
{
    if (c == NULL)
        return;
    c->closing = 1;
    drop(c, NULL, STRATA_ETIMEDOUT);
    event_free(c->tick);
    event_free(c->flush);
    evbuffer_free(c->out);
    free(c);
}

/* Queues k (its bytes ready) and starts connecting if need be. */
static int enqueue(redis_pipe *c, rcall *k)
{
    k->deadline = strata__mono_ms() + c->timeout_ms;
    if (c->state == C_DOWN && start_connect(c) != 0) {
        free_call(k);
        return STRATA_EUNAVAILABLE;
    }
    push(&c->waiting, k);
    pump(c);
    return STRATA_PENDING;
}

int strata__pipe_send(redis_pipe *c, const redis_cmd *cmds, size_t n, redis_reply_cb cb, void *arg)
{
    if (n == 0)
        return STRATA_EINVAL;
    /* Closing: a callback run by strata__pipe_free may make another call; nothing would answer
     * it, so it fails at once. */
    if (c->closing || !strata__redis_allow(c->cl))
        return STRATA_EUNAVAILABLE;
    rcall *k = new_call(cmds, n, cb, arg);
    if (k == NULL)
        return STRATA_ENOMEM;
    return enqueue(c, k);
}

int strata__pipe_send_raw(redis_pipe *c, char *resp, size_t len, size_t n, redis_reply_cb cb,
                          void *arg)
{
    rcall *k = NULL;
    int rc = n == 0 || len == 0                          ? STRATA_EINVAL
             : c->closing || !strata__redis_allow(c->cl) ? STRATA_EUNAVAILABLE
             : (k = calloc(1, sizeof *k)) == NULL        ? STRATA_ENOMEM
                                                         : 0;
    if (rc != 0) {
        free(resp);
        return rc;
    }
    k->cb = cb, k->arg = arg, k->n = (unsigned)n, k->out = resp, k->outlen = len;
    k->replies = n == 1 ? &k->one : calloc(n, sizeof *k->replies);
    if (k->replies == NULL) {
        free_call(k); /* frees resp too */
        return STRATA_ENOMEM;
    }
    return enqueue(c, k);
}
