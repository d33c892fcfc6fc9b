/* redis/conn.c: a loop's calls, routed to its pipes (conn.h says what it promises).
 *
 * Not a cluster: one pipe, and a call goes to it untouched (no copy, no allocation here).
 *
 * A cluster: a pipe per node, made the first time a command goes to that node. A call becomes a
 * `route`: each command is formatted once (kept, to be sent again on a redirection) and the
 * commands of one node go to its pipe together, as one pipelined batch, in the call's order. Each
 * batch's answer hands its replies over (taken from the pipe's call); a MOVED reply sends that
 * command to the node it names (and the client reads the slot map again), an ASK reply sends
 * ASKING and the command to the node it names, at most CLUSTER_REDIRECTS hops. When the last
 * batch is in, the caller gets every reply in order, or the first failure.
 */
#include <stdlib.h>
#include <string.h>

#include <strata/errors.h>

#include "core/clock.h"
#include "redis/cluster_map.h"
#include "redis/conn.h"

struct redis_conn {
    redis_client *cl;
    struct event_base *base;
    redis_pipe *one;                     /* not a cluster */
    redis_pipe *node[CLUSTER_NODES_MAX]; /* a cluster: each node's, NULL until first used */
    int closing;
};

typedef struct route_cmd {
    char *out; /* the command, formatted */
    size_t len;
    int node, hops; /* where it went last; redirections followed */
    redisReply *reply;
} route_cmd;

typedef struct route {
    redis_conn *c;
    redis_reply_cb cb;
    void *arg;
    int status;       /* the first failure */
    unsigned pending; /* batches sent and not answered */
    size_t n;
    route_cmd cmd[];
} route;

/* One batch in flight: which of the route's commands, and with ASK the ASKING before them. */
typedef struct batch {
    route *r;
    int ask;
    size_t k;
    size_t at[];
} batch;

static void free_route(route *r)
{
    for (size_t i = 0; i < r->n; i++) {
        strata__cmd_free(r->cmd[i].out);
        if (r->cmd[i].reply != NULL)
            freeReplyObject(r->cmd[i].reply);
    }
    free(r);
}

/* The route's last batch is in: the caller's callback, then everything freed. */
static void finish(route *r)
{
    if (r->status != 0) {
        r->cb(r->status, NULL, 0, r->arg);
    } else {
        redisReply **replies = malloc(r->n * sizeof *replies);
        if (replies == NULL) {
            r->cb(STRATA_EUNAVAILABLE, NULL, 0, r->arg);
        } else {
            for (size_t i = 0; i < r->n; i++)
                replies[i] = r->cmd[i].reply;
            r->cb(0, replies, r->n, r->arg);
            free(replies);
        }
    }
    free_route(r);
}

static redis_pipe *pipe_of(redis_conn *c, int node)
{
    if (c->node[node] == NULL && strata__pipe_new(c->cl, c->base, node, &c->node[node]) != 0)
        return NULL;
    return c->node[node];
}

static void on_batch(int status, redisReply **replies, size_t n, void *arg);

/* Sends the commands at[0..k) of r to node (after ASKING with ask). Returns 0, or a failure
 * (recorded in r->status) when it could not be sent. */
static int send_batch(route *r, int node, const size_t *at, size_t k, int ask)
{
    static const char asking[] = "*1\r\n$6\r\nASKING\r\n";
    redis_pipe *p = pipe_of(r->c, node);
    batch *b = malloc(sizeof *b + k * sizeof *b->at);
    size_t len = ask ? sizeof asking - 1 : 0;
    for (size_t m = 0; m < k; m++)
        len += r->cmd[at[m]].len;
    char *buf = b != NULL && p != NULL ? malloc(len) : NULL;
    int rc = STRATA_ENOMEM;
    if (buf != NULL) {
        size_t off = ask ? sizeof asking - 1 : 0;
        memcpy(buf, asking, off);
        for (size_t m = 0; m < k; m++) {
            memcpy(buf + off, r->cmd[at[m]].out, r->cmd[at[m]].len);
            off += r->cmd[at[m]].len;
            r->cmd[at[m]].node = node;
            b->at[m] = at[m];
        }
        b->r = r, b->ask = ask, b->k = k;
        rc = strata__pipe_send_raw(p, buf, len, k + (ask ? 1 : 0), on_batch, b); /* takes buf */
    }
    if (rc == STRATA_PENDING) {
        r->pending++;
        return 0;
    }
    free(b);
    if (r->status == 0)
        r->status = rc;
    return rc;
}

/* A reply for command i of r: kept, or sent on where a redirection says. */
static void take(route *r, size_t i, redisReply *reply)
{
    route_cmd *q = &r->cmd[i];
    int ask, to = -1;
    if (r->status == 0 && !r->c->closing && q->hops < CLUSTER_REDIRECTS)
        to = strata__redis_redirected(r->c->cl, reply, q->node, &ask);
    if (to < 0) {
        q->reply = reply;
        return;
    }
    freeReplyObject(reply);
    q->hops++;
    send_batch(r, to, &i, 1, ask);
}

static void on_batch(int status, redisReply **replies, size_t n, void *arg)
{
    (void)n;
    batch *b = arg;
    route *r = b->r;
    if (status != 0 && r->status == 0)
        r->status = status;
    for (size_t m = 0; status == 0 && m < b->k; m++) {
        redisReply *reply = replies[m + (b->ask ? 1 : 0)];
        replies[m + (b->ask ? 1 : 0)] = NULL; /* ours now */
        take(r, b->at[m], reply);
    }
    free(b);
    if (--r->pending == 0)
        finish(r);
}

/* A cluster call: formatted, grouped by node, sent. */
static int send_routed(redis_conn *c, const redis_cmd *cmds, size_t n, redis_reply_cb cb, void *arg)
{
    route *r = calloc(1, sizeof *r + n * sizeof *r->cmd);
    size_t *at = malloc(n * sizeof *at);
    if (r == NULL || at == NULL) {
        free(r), free(at);
        return STRATA_ENOMEM;
    }
    r->c = c, r->cb = cb, r->arg = arg, r->n = n;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        long len = strata__cmd_format(&cmds[i], &r->cmd[i].out);
        r->cmd[i].len = len < 0 ? 0 : (size_t)len;
        r->cmd[i].node = strata__redis_cmd_node(c->cl, &cmds[i]);
        if (len < 0)
            rc = STRATA_ENOMEM;
        else if (r->cmd[i].node < 0)
            rc = STRATA_EUNAVAILABLE;
    }
    if (rc == STRATA_EUNAVAILABLE)
        strata__redis_failed(c->cl, "no redis cluster slot map yet (no node has answered)");
    r->pending = 1; /* held while sending: a batch answered at once must not finish r */
    for (size_t i = 0; i < n && rc == 0; i++) {
        int node = r->cmd[i].node;
        if (node < 0)
            continue; /* sent with an earlier batch */
        size_t k = 0;
        for (size_t j = i; j < n; j++)
            if (r->cmd[j].node == node)
                at[k++] = j, r->cmd[j].node = -1;
        rc = send_batch(r, node, at, k, 0);
    }
    free(at);
    if (rc != 0 && r->pending == 1) { /* nothing went out: the caller hears it now */
        free_route(r);
        return rc;
    }
    if (--r->pending == 0)
        finish(r);
    return STRATA_PENDING;
}

/* ---- pinging every node ------------------------------------------------------------------ */

typedef struct ping_all {
    redis_client *cl;
    redis_ping_cb cb;
    void *arg;
    uint64_t start_us, longest_us;
    int status;
    unsigned pending;
} ping_all;

typedef struct ping_one {
    ping_all *all;
    int node;
} ping_one;

static void ping_done(ping_all *a)
{
    if (--a->pending > 0)
        return;
    a->cb(a->status, a->status == 0 ? a->longest_us : 0, a->arg);
    free(a);
}

static void on_pong(int status, redisReply **replies, size_t n, void *arg)
{
    (void)replies, (void)n;
    ping_one *o = arg;
    ping_all *a = o->all;
    if (status == 0) {
        uint64_t us = strata__mono_us() - a->start_us;
        strata__redis_note_latency(a->cl, o->node, us);
        a->longest_us = us > a->longest_us ? us : a->longest_us;
    } else if (a->status == 0) {
        a->status = status;
    }
    free(o);
    ping_done(a);
}

int strata__conn_ping(redis_conn *c, redis_ping_cb cb, void *arg)
{
    static const redis_cmd ping = {.argc = 1, .argv = {"PING"}, .argvlen = {4}};
    int nodes[CLUSTER_PRIMARIES];
    unsigned n = c->closing ? 0 : strata__redis_walk_nodes(c->cl, nodes);
    ping_all *a = n > 0 ? calloc(1, sizeof *a) : NULL;
    if (a == NULL)
        return n > 0 ? STRATA_ENOMEM : STRATA_EUNAVAILABLE;
    *a = (ping_all){c->cl, cb, arg, strata__mono_us(), 0, 0, 1};
    for (unsigned i = 0; i < n; i++) {
        ping_one *o = malloc(sizeof *o);
        redis_pipe *p = nodes[i] < 0 ? c->one : pipe_of(c, nodes[i]);
        int rc = o == NULL || p == NULL ? STRATA_ENOMEM : 0;
        if (rc == 0) {
            *o = (ping_one){a, nodes[i]};
            rc = strata__pipe_send(p, &ping, 1, on_pong, o);
        }
        if (rc == STRATA_PENDING) {
            a->pending++;
            continue;
        }
        free(o);
        a->status = a->status ? a->status : rc;
    }
    if (a->pending == 1 && a->status != 0) { /* nothing went out */
        int rc = a->status;
        free(a);
        return rc;
    }
    ping_done(a); /* the hold taken while sending */
    return STRATA_PENDING;
}

int strata__conn_new(redis_client *cl, struct event_base *base, redis_conn **out)
{
    *out = NULL;
    redis_conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return STRATA_ENOMEM;
    c->cl = cl, c->base = base;
    if (!strata__redis_is_cluster(cl) && strata__pipe_new(cl, base, -1, &c->one) != 0) {
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
    strata__pipe_free(c->one);
    for (int i = 0; i < CLUSTER_NODES_MAX; i++)
        strata__pipe_free(c->node[i]);
    free(c);
}

int strata__conn_send(redis_conn *c, const redis_cmd *cmds, size_t n, redis_reply_cb cb, void *arg)
{
    if (c->one != NULL)
        return strata__pipe_send(c->one, cmds, n, cb, arg);
    if (n == 0)
        return STRATA_EINVAL;
    if (c->closing) /* a callback run by strata__conn_free: nothing would answer */
        return STRATA_EUNAVAILABLE;
    return send_routed(c, cmds, n, cb, arg); /* each pipe asks the breaker */
}

redis_client *strata__conn_client(redis_conn *c)
{
    return c->cl;
}

int strata__conn_closing(redis_conn *c)
{
    return c->closing;
}
