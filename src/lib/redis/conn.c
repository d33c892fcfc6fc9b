/* redis/conn.c: one event loop's pipelined connection to Redis (conn.h says what it promises).
 *
 * A call is a batch of commands, formatted by hiredis when it is made. It waits in `waiting`
 * until the connection is ready (connected, AUTH and SELECT answered OK: a command pipelined
 * behind a failed AUTH would run as Redis' default user, behind a failed SELECT in the wrong
 * database) and there is room (fewer than max_pending calls in flight); then its bytes go to the
 * bufferevent and it moves to `sent`. Replies come back in order, so each one belongs to the
 * oldest call in `sent`; a call completes when its last reply arrives.
 *
 * Deadlines: every call has one (the socket timeout from when it was made) and the oldest call is
 * the only one that can pass it first, so a 10 ms tick compares the clock with one deadline. Past
 * it, or past the connect deadline, the connection is dropped: every call in it fails at once and
 * the next call reconnects. A connection that fails tells the client, which feeds its breaker.
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
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <strata/errors.h>

#include "core/clock.h"
#include "redis/conn.h"

#define TICK_MS 10

enum { C_DOWN, C_CONNECTING, C_HANDSHAKE, C_READY };

typedef struct rcall rcall;
struct rcall {
    rcall *next;
    redis_reply_cb cb;
    void *arg;
    uint64_t deadline;
    unsigned n, got;
    char *out; /* the formatted commands, until sent */
    size_t outlen;
    int out_sds;          /* out is hiredis' (one command), not ours */
    redisReply **replies; /* &one, or an array for a batch */
    redisReply *one;
};

typedef struct rqueue {
    rcall *head, *tail;
    unsigned len;
} rqueue;

struct redis_conn {
    redis_client *cl;
    struct event_base *base;
    struct bufferevent *bev; /* NULL: no connection */
    redisReader *reader;
    int state;
    int closing; /* strata__conn_free is failing the calls */
    int refused; /* the handshake was refused: drop once the reply is handled */
    char refusal[160];
    unsigned handshakes; /* handshake replies still expected */
    uint64_t connect_deadline;
    unsigned timeout_ms, connect_ms, max_pending;
    struct event *tick;
    rqueue sent, waiting;
};

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
    if (k->out_sds)
        strata__cmd_free(k->out);
    else
        free(k->out);
    k->out = NULL;
}

static void free_call(rcall *k)
{
    for (unsigned i = 0; i < k->got; i++)
        freeReplyObject(k->replies[i]);
    if (k->replies != &k->one)
        free(k->replies);
    drop_out(k);
    free(k);
}

/* Formats n commands into one buffer. Returns the call, or NULL (out of memory). */
static rcall *new_call(const redis_cmd *cmds, size_t n, redis_reply_cb cb, void *arg)
{
    rcall *k = calloc(1, sizeof *k);
    if (k == NULL)
        return NULL;
    k->cb = cb, k->arg = arg, k->n = (unsigned)n;
    k->replies = n == 1 ? &k->one : calloc(n, sizeof *k->replies);
    if (k->replies == NULL) {
        free(k);
        return NULL;
    }
    if (n == 1) { /* the common case: hiredis' buffer as it is */
        long len = strata__cmd_format(&cmds[0], &k->out);
        k->out_sds = 1;
        if (len < 0) {
            free_call(k);
            return NULL;
        }
        k->outlen = (size_t)len;
        return k;
    }
    for (size_t i = 0; i < n; i++) {
        char *one;
        long len = strata__cmd_format(&cmds[i], &one);
        char *grown = len < 0 ? NULL : realloc(k->out, k->outlen + (size_t)len);
        if (grown != NULL)
            memcpy(grown + k->outlen, one, (size_t)len), k->out = grown, k->outlen += (size_t)len;
        if (len >= 0)
            strata__cmd_free(one);
        if (grown == NULL) {
            free_call(k);
            return NULL;
        }
    }
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
static void drop(redis_conn *c, const char *why, int status)
{
    if (c->bev != NULL) {
        bufferevent_free(c->bev);
        c->bev = NULL;
    }
    if (c->reader != NULL) {
        redisReaderFree(c->reader);
        c->reader = NULL;
    }
    c->state = C_DOWN;
    if (why != NULL)
        strata__redis_failed(c->cl, why);
    rqueue sent = c->sent, waiting = c->waiting;
    c->sent = c->waiting = (rqueue){0};
    fail_all(&sent, status);
    fail_all(&waiting, status);
}

/* Sends waiting calls while the connection is ready and has room. */
static void pump(redis_conn *c)
{
    while (c->state == C_READY && c->waiting.head != NULL && c->sent.len < c->max_pending) {
        rcall *k = pop(&c->waiting);
        if (bufferevent_write(c->bev, k->out, k->outlen) != 0) {
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
    redis_conn *c = arg;
    if (status != 0)
        return; /* the connection is being dropped */
    if (r[0]->type == REDIS_REPLY_ERROR) {
        snprintf(c->refusal, sizeof c->refusal, "redis refused AUTH or SELECT: %.100s", r[0]->str);
        c->refused = 1; /* dropped by the reader once this returns, not from in here */
        return;
    }
    if (--c->handshakes == 0) {
        c->state = C_READY;
        pump(c);
    }
}

/* AUTH and SELECT, sent alone and answered before anything else. */
static void start_handshake(redis_conn *c)
{
    const redis_url *u = strata__redis_url(c->cl);
    char db[16];
    snprintf(db, sizeof db, "%d", u->db);
    redis_cmd cmds[2];
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
    c->state = C_HANDSHAKE;
    c->handshakes = (unsigned)n;
    for (size_t i = 0; i < n; i++) {
        rcall *k = new_call(&cmds[i], 1, on_handshake, c);
        if (k == NULL || bufferevent_write(c->bev, k->out, k->outlen) != 0) {
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

static void on_reply(redis_conn *c, redisReply *r)
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

static void on_read(struct bufferevent *bev, void *arg)
{
    redis_conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t len;
    while ((len = evbuffer_get_contiguous_space(in)) > 0) {
        if (redisReaderFeed(c->reader, (const char *)evbuffer_pullup(in, (ssize_t)len), len) !=
            REDIS_OK) {
            drop(c, "redis reply buffer exhausted", STRATA_EUNAVAILABLE);
            return;
        }
        evbuffer_drain(in, len);
    }
    while (c->reader != NULL) {
        void *r = NULL;
        if (redisReaderGetReply(c->reader, &r) != REDIS_OK) {
            drop(c, "protocol error in a redis reply", STRATA_EUNAVAILABLE);
            return;
        }
        if (r == NULL)
            break;
        on_reply(c, r);
        if (c->refused) {
            c->refused = 0;
            drop(c, c->refusal, STRATA_EUNAVAILABLE);
            return;
        }
    }
    pump(c);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    redis_conn *c = arg;
    if (what & BEV_EVENT_CONNECTED) {
        evutil_socket_t fd = bufferevent_getfd(c->bev);
        int one = 1;
        if (strata__redis_url(c->cl)->path[0] == '\0')
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* as hiredis does */
        start_handshake(c);
        return;
    }
    char why[160];
    int err = EVUTIL_SOCKET_ERROR();
    snprintf(why, sizeof why, "%s: %s",
             c->state == C_CONNECTING ? "connect to redis" : "redis connection lost",
             (what & BEV_EVENT_EOF) ? "closed by the server" : evutil_socket_error_to_string(err));
    drop(c, why, STRATA_EUNAVAILABLE);
}

/* The address the client resolved once: never a name lookup here. */
static int address(const redis_url *u, struct sockaddr_storage *ss, int *len)
{
    memset(ss, 0, sizeof *ss);
    if (u->path[0]) {
        struct sockaddr_un *un = (struct sockaddr_un *)ss;
        if (strlen(u->path) >= sizeof un->sun_path)
            return -1;
        un->sun_family = AF_UNIX;
        memcpy(un->sun_path, u->path, strlen(u->path) + 1);
        *len = (int)sizeof *un;
        return 0;
    }
    char spec[300];
    snprintf(spec, sizeof spec, strchr(u->host, ':') ? "[%s]:%d" : "%s:%d", u->host, u->port);
    *len = (int)sizeof *ss;
    return evutil_parse_sockaddr_port(spec, (struct sockaddr *)ss, len);
}

static int start_connect(redis_conn *c)
{
    struct sockaddr_storage ss;
    int len;
    if (address(strata__redis_url(c->cl), &ss, &len) != 0) {
        strata__redis_failed(c->cl, "redis address is not numeric (it did not resolve at start)");
        return -1;
    }
    c->reader = redisReaderCreate();
    c->bev = bufferevent_socket_new(c->base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (c->reader == NULL || c->bev == NULL) {
        drop(c, "out of memory starting a redis connection", STRATA_EUNAVAILABLE);
        return -1;
    }
    bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
    /* libevent reads 4 KiB at a time by default: 30 replies of a deep pipeline per read, where
     * hiredis read 16 KiB. Whole batches per read keep the system calls per reply down. */
    bufferevent_set_max_single_read(c->bev, 64 * 1024);
    bufferevent_set_max_single_write(c->bev, 64 * 1024);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    c->state = C_CONNECTING;
    c->connect_deadline = strata__mono_ms() + c->connect_ms;
    if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&ss, len) != 0) {
        char why[160];
        snprintf(why, sizeof why, "connect to redis: %s",
                 evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
        drop(c, why, STRATA_EUNAVAILABLE);
        return -1;
    }
    return 0;
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    redis_conn *c = arg;
    if (c->state == C_DOWN)
        return;
    uint64_t now = strata__mono_ms();
    rcall *oldest = c->sent.head ? c->sent.head : c->waiting.head;
    if (c->state != C_READY && now > c->connect_deadline)
        drop(c, "connect to redis timed out", STRATA_ETIMEDOUT);
    else if (oldest != NULL && now > oldest->deadline)
        drop(c, "redis did not answer within the socket timeout", STRATA_ETIMEDOUT);
}

/* ---- the API ------------------------------------------------------------------------------ */

int strata__conn_new(redis_client *cl, struct event_base *base, redis_conn **out)
{
    *out = NULL;
    redis_conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return STRATA_ENOMEM;
    const strata_redis_config *cfg = strata__redis_config(cl);
    c->cl = cl;
    c->base = base;
    c->timeout_ms = cfg->socket_timeout_ms ? cfg->socket_timeout_ms : 250;
    c->connect_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms : 500;
    c->max_pending = cfg->max_pending ? cfg->max_pending : 1024;
    struct timeval tv = {0, TICK_MS * 1000};
    c->tick = event_new(base, -1, EV_PERSIST, tick, c);
    if (c->tick == NULL || event_add(c->tick, &tv) != 0) {
        if (c->tick != NULL)
            event_free(c->tick);
        free(c);
        return STRATA_ENOMEM;
    }
    *out = c;
    return 0;
}

void strata__conn_free(redis_conn *c)
{
    if (c == NULL)
        return;
    c->closing = 1;
    drop(c, NULL, STRATA_ETIMEDOUT);
    event_free(c->tick);
    free(c);
}

int strata__conn_send(redis_conn *c, const redis_cmd *cmds, size_t n, redis_reply_cb cb, void *arg)
{
    if (n == 0)
        return STRATA_EINVAL;
    /* Closing: a callback run by strata__conn_free may make another call; nothing would answer
     * it, so it fails at once. */
    if (c->closing || !strata__redis_allow(c->cl))
        return STRATA_EUNAVAILABLE;
    rcall *k = new_call(cmds, n, cb, arg);
    if (k == NULL)
        return STRATA_ENOMEM;
    k->deadline = strata__mono_ms() + c->timeout_ms;
    if (c->state == C_DOWN && start_connect(c) != 0) {
        free_call(k);
        return STRATA_EUNAVAILABLE;
    }
    push(&c->waiting, k);
    pump(c);
    return STRATA_PENDING;
}

redis_client *strata__conn_client(redis_conn *c)
{
    return c->cl;
}

int strata__conn_closing(redis_conn *c)
{
    return c->closing;
}
