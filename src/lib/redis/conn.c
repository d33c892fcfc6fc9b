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
 *
 * A call made before the client has read the cluster's first slot map (a cache just started)
 * waits for it, parked, as a first call to one Redis waits for its connection: a timer looks for
 * the map every PARK_TICK_MS and sends the parked calls once it is in, or fails them (Redis
 * unavailable) when their deadline (the socket timeout) has passed.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include <strata/errors.h>

#include "core/clock.h"
#include "redis/cluster_map.h"
#include "redis/conn.h"

#define PARK_TICK_MS 2

typedef struct route route;

struct redis_conn {
    redis_client *cl;
    struct event_base *base;
    redis_pipe *one;                     /* not a cluster */
    redis_pipe *node[CLUSTER_NODES_MAX]; /* a cluster: each node's, NULL until first used */
    int closing;
    route *parked;        /* calls waiting for the first slot map, oldest first */
    struct event *unpark; /* the timer looking for it while parked is not empty; NULL until used */
};

typedef struct route_cmd {
    char *out; /* the command, formatted */
    size_t len;
    int slot;       /* its key's slot, -1 without a key */
    int node, hops; /* where it went last; redirections followed */
    redisReply *reply;
} route_cmd;

struct route {
    redis_conn *c;
    redis_reply_cb cb;
    void *arg;
    int status;       /* the first failure */
    unsigned pending; /* batches sent and not answered */
    uint64_t until;   /* parked: when it stops waiting for the map (monotonic ms) */
    route *next;      /* parked: the next one */
    size_t n;
    route_cmd cmd[];
};

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

/* Routes r's commands by the map now and sends them, grouped by node. Returns STRATA_PENDING (r
 * answers through its callback), or a failure when nothing went out (r is the caller's still):
 * STRATA_EUNAVAILABLE when the map serves a command's slot by no node. */
static int dispatch(route *r)
{
    redis_conn *c = r->c;
    size_t *at = malloc(r->n * sizeof *at);
    int *to = malloc(r->n * sizeof *to); /* each command's node; -1 once sent */
    if (at == NULL || to == NULL) {
        free(at), free(to);
        return STRATA_ENOMEM;
    }
    int rc = 0;
    for (size_t i = 0; i < r->n && rc == 0; i++)
        if ((to[i] = strata__redis_slot_node(c->cl, r->cmd[i].slot)) < 0)
            rc = STRATA_EUNAVAILABLE;
    if (rc == STRATA_EUNAVAILABLE)
        strata__redis_failed(c->cl, "no redis cluster slot map yet (no node has answered)");
    r->pending = 1; /* held while sending: a batch answered at once must not finish r */
    /* Grouped by to[], not by cmd[].node: send_batch sets that to the node it went to, so a
     * command marked there as sent looked unsent again, and went out once more with every later
     * group (each command of a node but its first ran twice or more, its extra replies leaked). */
    for (size_t i = 0; i < r->n && rc == 0; i++) {
        int node = to[i];
        if (node < 0)
            continue; /* sent with an earlier batch */
        size_t k = 0;
        for (size_t j = i; j < r->n; j++)
            if (to[j] == node)
                at[k++] = j, to[j] = -1;
        rc = send_batch(r, node, at, k, 0);
    }
    free(at), free(to);
    if (rc != 0 && r->pending == 1) /* nothing went out: the caller hears it */
        return rc;
    if (--r->pending == 0)
        finish(r);
    return STRATA_PENDING;
}

/* A parked call's end without the map (or with the connection closing): its callback. */
static void fail_parked(route *r, int status)
{
    r->cb(status, NULL, 0, r->arg);
    free_route(r);
}

static void arm_unpark(redis_conn *c)
{
    struct timeval tick = {0, PARK_TICK_MS * 1000};
    evtimer_add(c->unpark, &tick);
}

/* The timer: the parked calls sent once the first map is in, failed when their wait is over. */
static void on_unpark(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    redis_conn *c = arg;
    int mapped = strata__redis_any_node(c->cl) >= 0;
    uint64_t now = strata__mono_ms();
    route *list = c->parked;
    c->parked = NULL; /* a callback below may park a new call: it goes after those kept */
    route *kept = NULL, **tail = &kept;
    while (list != NULL) {
        route *r = list;
        list = r->next;
        r->next = NULL;
        if (!mapped && now < r->until) {
            *tail = r, tail = &r->next;
            continue;
        }
        if (!mapped) {
            strata__redis_failed(c->cl, "no redis cluster slot map yet (no node has answered)");
            fail_parked(r, STRATA_EUNAVAILABLE);
            continue;
        }
        int rc = dispatch(r);
        if (rc != STRATA_PENDING)
            fail_parked(r, rc);
    }
    *tail = c->parked; /* the kept ones first, then any parked meanwhile */
    c->parked = kept;
    if (c->parked != NULL && !c->closing)
        arm_unpark(c);
}

/* Parks r until the first map is in. Returns STRATA_PENDING, or STRATA_ENOMEM. */
static int park(redis_conn *c, route *r)
{
    if (c->unpark == NULL && (c->unpark = evtimer_new(c->base, on_unpark, c)) == NULL)
        return STRATA_ENOMEM;
    r->until = strata__mono_ms() + strata__redis_first_map_ms(c->cl);
    route **p = &c->parked;
    while (*p != NULL)
        p = &(*p)->next;
    *p = r;
    if (!evtimer_pending(c->unpark, NULL))
        arm_unpark(c);
    return STRATA_PENDING;
}

/* A cluster call: formatted, grouped by node, sent; parked while no map has been read yet. */
static int send_routed(redis_conn *c, const redis_cmd *cmds, size_t n, redis_reply_cb cb, void *arg)
{
    route *r = calloc(1, sizeof *r + n * sizeof *r->cmd);
    if (r == NULL)
        return STRATA_ENOMEM;
    r->c = c, r->cb = cb, r->arg = arg, r->n = n;
    for (size_t i = 0; i < n; i++) {
        long len = strata__cmd_format(&cmds[i], &r->cmd[i].out);
        r->cmd[i].len = len < 0 ? 0 : (size_t)len;
        r->cmd[i].slot = strata__redis_cmd_slot(&cmds[i]);
        if (len < 0) {
            free_route(r);
            return STRATA_ENOMEM;
        }
    }
    int rc = strata__redis_any_node(c->cl) < 0 || c->parked != NULL ? park(c, r) : dispatch(r);
    if (rc != STRATA_PENDING)
        free_route(r);
    return rc;
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
    while (c->parked != NULL) { /* "every call still in it gets STRATA_ETIMEDOUT" */
        route *r = c->parked;
        c->parked = r->next;
        fail_parked(r, STRATA_ETIMEDOUT);
    }
    if (c->unpark != NULL)
        event_free(c->unpark);
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
