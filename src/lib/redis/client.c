/* redis/client.c: the Redis client: its state (breaker, read-only, errors, events) and the
 * synchronous pool.
 *
 * A fixed pool of hiredis connections (REDIS_MAX_CONNECTIONS), each connected lazily and thrown
 * away on any error, so a restarted Redis is reconnected by the next call. Every call is bounded:
 * the connect timeout, the socket timeout on every read and write, and the wait for a free
 * connection. In front of it all sits the breaker: while Redis is down, calls fail in nanoseconds
 * instead of waiting for a timeout each.
 *
 * A read-only replica is detected on connect (INFO replication says role:slave) and on any
 * READONLY error reply; from then on the cache skips Redis writes (it logs one warning, once).
 *
 * Where Redis is (the target) is the client's too: the URL's address (a host name resolved again
 * on every reconnect by redis/resolve.c's thread), or with REDIS_SENTINELS the primary the
 * sentinel watcher (redis/sentinel.c) published last. Every connection reads
 * the target when it connects and remembers its generation; a new primary bumps the generation,
 * and every connection made to the old one is closed and made again (the pool's when taken,
 * each loop's on its next tick, the link's in its loop). With sentinels every connection also
 * asks ROLE after AUTH and SELECT: a node that says it is not the master is never used, and the
 * sentinels are asked again.
 */
#include <errno.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <strata/errors.h>

#include "core/clock.h"
#include "core/slot.h"
#include "redis/client.h"
#include "redis/cluster.h"
#include "redis/link.h"
#include "redis/resolve.h"
#include "redis/sentinel.h"
#include "redis/sock.h"
#include "redis/tls.h"

/* Failures counted per node: the nodes this client has had as its target (the URL's, each
 * primary the sentinels named), most often one or two, bounded so that a Sentinel naming many
 * nodes over a long life cannot grow it: the 16th row and past is "(other)". */
#define REDIS_NODES_MAX 16
typedef struct node_row {
    char name[300]; /* "host:port" as named ("[v6]:port"; a unix socket's path) */
    uint64_t errors;
    int64_t latency_us; /* the last ping's round trip; -1: none answered yet */
    int node;           /* a cluster node's index, else -1 */
} node_row;

/* A cluster node's invalidation link and what its callbacks need. */
typedef struct node_link {
    struct redis_client *l;
    int node;
    redis_link *link;
} node_link;

typedef struct slot {
    redis_sock *conn;
    uint64_t gen; /* the target's generation conn was made for */
    int busy;
    redis_sock **by_node; /* with a cluster: a connection per node (CLUSTER_NODES_MAX) */
} slot;

struct redis_client {
    strata_redis_config cfg;
    redis_url url;
    strata_log_fn log;
    void *log_arg;
    redis_events ev;
    redis_link *link;         /* NULL: no invalidation link */
    redis_tls *tls;           /* NULL: plain TCP */
    redis_sentinel *sentinel; /* NULL: the URL's Redis */
    redis_resolver *resolver; /* the URL's host name, resolved again; NULL: an address */
    redis_cluster *cluster;   /* NULL: not a Redis Cluster */
    cluster_table *table;     /* with cluster: where each slot goes */
    /* With cluster and coherence: an invalidation link per node that has been a primary (Redis
     * tracks the keys of each node on that node), started when a map first names it and kept
     * to the end (so a reader never holds a freed one; at most CLUSTER_NODES_MAX). */
    node_link *node_links[CLUSTER_NODES_MAX];
    _Atomic(redis_link *) node_link_of[CLUSTER_NODES_MAX];
    char track_prefix[STRATA_PREFIX_MAX + 2];
    breaker brk;
    atomic_int replica;       /* a replica was detected */
    atomic_int warned_ro;     /* the read-only warning was logged */
    atomic_int last_failed;   /* the last call failed */
    uint64_t role_checked_ms; /* when a read-only Redis was last asked again (link thread) */

    pthread_mutex_t lock; /* the slots */
    pthread_cond_t freed;
    slot *slots;
    unsigned nslots;

    pthread_mutex_t err_lock; /* last_error and the node rows */
    char last_error[128];
    node_row nodes[REDIS_NODES_MAX];
    unsigned nnodes;

    /* The target: url.host/port are read and written under addr_lock (the watcher publishes a
     * new primary from its thread); gen counts the targets. */
    pthread_mutex_t addr_lock;
    pthread_cond_t mapped; /* a cluster's slot map was installed, or the sentinels named the
                              primary (under addr_lock) */
    char target_name[REDIS_URL_PART_MAX]; /* as named (the URL, or the sentinels), for TLS */
    int target_known;
    atomic_uint_fast64_t gen;
};

static void logf_(redis_client *l, int level, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (l->log != NULL)
        l->log(level, buf, l->log_arg);
}

/* The target as named, "host:port" ("[v6]:port", a unix socket's path), or "" while none is
 * known. The caller holds addr_lock. */
static void target_str_locked(const redis_client *l, char *buf, size_t cap)
{
    buf[0] = '\0';
    if (l->url.path[0])
        snprintf(buf, cap, "%s", l->url.path);
    else if (l->target_known)
        snprintf(buf, cap, strchr(l->target_name, ':') ? "[%s]:%d" : "%s:%d", l->target_name,
                 l->url.port);
}

/* The row of node name (added when new; "(other)" when the table is full). The caller holds
 * err_lock. */
static node_row *node_row_locked(redis_client *l, const char *name)
{
    for (unsigned i = 0; i < l->nnodes; i++)
        if (strcmp(l->nodes[i].name, name) == 0)
            return &l->nodes[i];
    if (l->nnodes < REDIS_NODES_MAX - 1) {
        node_row *r = &l->nodes[l->nnodes++];
        snprintf(r->name, sizeof r->name, "%s", name);
        r->latency_us = -1, r->node = -1;
        return r;
    }
    node_row *r = &l->nodes[REDIS_NODES_MAX - 1];
    if (l->nnodes < REDIS_NODES_MAX)
        l->nnodes = REDIS_NODES_MAX, snprintf(r->name, sizeof r->name, "(other)"),
        r->latency_us = -1, r->node = -1;
    return r;
}

/* Counts errors failures against the current target (0: makes its row, so the series exists
 * before the first failure). */
static void count_node_errors(redis_client *l, uint64_t errors)
{
    char name[300];
    pthread_mutex_lock(&l->addr_lock);
    target_str_locked(l, name, sizeof name);
    pthread_mutex_unlock(&l->addr_lock);
    if (name[0] == '\0')
        return; /* no target yet: the sentinels have not named one */
    pthread_mutex_lock(&l->err_lock);
    node_row_locked(l, name)->errors += errors;
    pthread_mutex_unlock(&l->err_lock);
}

/* What row r is now: in use (the target, or a primary of the last cluster map) or not, and
 * with a cluster the slots routed to it. */
static void row_role(redis_client *l, const node_row *r, const char *target, strata_redis_node *o)
{
    o->slots = 0;
    if (l->table == NULL) {
        o->primary = strcmp(r->name, target) == 0;
        return;
    }
    o->primary = 0;
    if (r->node < 0)
        return;
    int p[CLUSTER_PRIMARIES];
    unsigned n = strata__cluster_table_primaries(l->table, p, CLUSTER_PRIMARIES);
    for (unsigned i = 0; i < n && i < CLUSTER_PRIMARIES; i++)
        o->primary |= p[i] == r->node;
    for (unsigned s = 0; o->primary && s < CLUSTER_SLOTS; s++)
        o->slots += strata__cluster_table_route(l->table, s) == r->node;
}

size_t strata__redis_nodes(redis_client *l, strata_redis_node *out, size_t cap)
{
    char target[300];
    pthread_mutex_lock(&l->addr_lock);
    target_str_locked(l, target, sizeof target);
    pthread_mutex_unlock(&l->addr_lock);
    pthread_mutex_lock(&l->err_lock);
    size_t n = l->nnodes;
    for (size_t i = 0; i < n && i < cap; i++) {
        snprintf(out[i].addr, sizeof out[i].addr, "%s", l->nodes[i].name);
        out[i].errors = l->nodes[i].errors;
        out[i].latency_us = l->nodes[i].latency_us;
        row_role(l, &l->nodes[i], target, &out[i]);
    }
    pthread_mutex_unlock(&l->err_lock);
    return n;
}

/* Records a ping's round trip against the row named name. */
static void note_latency(redis_client *l, const char *name, uint64_t us)
{
    if (name[0] == '\0')
        return;
    pthread_mutex_lock(&l->err_lock);
    node_row_locked(l, name)->latency_us = (int64_t)us;
    pthread_mutex_unlock(&l->err_lock);
}

void strata__redis_note_error(redis_client *l, const char *msg)
{
    size_t n = strnlen(msg, sizeof l->last_error - 1);
    pthread_mutex_lock(&l->err_lock);
    memcpy(l->last_error, msg, n);
    l->last_error[n] = '\0';
    pthread_mutex_unlock(&l->err_lock);
}

/* Turns a host name into an address at start-up (a thread that may wait: the caller's); from
 * then on redis/resolve.c's thread looks it up again, never a loop. A name that does not resolve
 * now is kept, and connecting reports it until it does. */
static void resolve_host(redis_url *u)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    if (u->path[0] || getaddrinfo(u->host, NULL, &hints, &res) != 0)
        return;
    char ip[NI_MAXHOST];
    if (getnameinfo(res->ai_addr, res->ai_addrlen, ip, sizeof ip, NULL, 0, NI_NUMERICHOST) == 0 &&
        strlen(ip) < sizeof u->host)
        memcpy(u->host, ip, strlen(ip) + 1);
    freeaddrinfo(res);
}

static void recheck_role(redis_client *l);
static void log_line(redis_client *l, int level, const char *msg);
static redis_sock *cluster_connect(void *arg, const char *addr, int port, char *err, size_t cap);
static void cluster_map_read(void *arg, const cluster_map *m);
static int cluster_links_up(redis_client *l);

/* What the link is handed (link.h): the client's own functions, by pointer. */
static redis_sock *link_connect(void *arg, char *err, size_t cap)
{
    return strata__redis_connect(arg, err, cap);
}

static void link_note_error(void *arg, const char *msg)
{
    strata__redis_note_error(arg, msg);
}

static void link_log(void *arg, int level, const char *msg)
{
    log_line(arg, level, msg);
}

static void link_idle(void *arg)
{
    recheck_role(arg); /* a promoted replica takes writes again */
}

static uint64_t link_gen(void *arg)
{
    return strata__redis_gen(arg);
}

/* The target is (still) addr:port, named name: a new one bumps the generation, and every
 * connection made for the old one is made again. from says who said so, for the log. */
static void set_target(redis_client *l, const char *name, const char *addr, int port,
                       const char *from)
{
    pthread_mutex_lock(&l->addr_lock);
    int same = l->target_known && strcmp(l->url.host, addr) == 0 && l->url.port == port;
    if (!same) {
        snprintf(l->url.host, sizeof l->url.host, "%s", addr);
        if (name != l->target_name) /* DNS: the name stays */
            snprintf(l->target_name, sizeof l->target_name, "%s", name);
        l->url.port = port;
        l->target_known = 1;
        atomic_fetch_add(&l->gen, 1);
        pthread_cond_broadcast(&l->mapped); /* a call waiting for the first primary goes on */
    }
    pthread_mutex_unlock(&l->addr_lock);
    if (same)
        return;
    logf_(l, 2, "redis primary is %s:%d (%s %s)", name, port, from, addr);
    count_node_errors(l, 0);
    atomic_store(&l->replica, 0);       /* what a former target said of itself is not this one's */
    strata__breaker_retry_now(&l->brk); /* no backoff left over from the old primary */
}

/* The sentinels name the primary (again, most often the same one). */
static void sentinel_primary(void *arg, const char *name, const char *addr, int port)
{
    set_target(arg, name, addr, port, "from the sentinels:");
}

/* REDIS_URL's host name resolved (again): its address may have moved. */
static void dns_resolved(void *arg, const char *addr)
{
    redis_client *l = arg;
    set_target(l, l->target_name, addr, l->url.port, "resolved to");
}

void strata__redis_reconnecting(redis_client *l)
{
    strata__resolver_ask(l->resolver);
}

static void sentinel_note_error(void *arg, const char *msg)
{
    strata__redis_note_error(arg, msg);
}

/* With a cluster: the routing table, and a connection per node in each pool slot. */
static int cluster_alloc(redis_client *l)
{
    if ((l->table = malloc(sizeof *l->table)) == NULL)
        return -1;
    strata__cluster_table_init(l->table);
    for (unsigned i = 0; i < l->nslots; i++)
        if ((l->slots[i].by_node = calloc(CLUSTER_NODES_MAX, sizeof(redis_sock *))) == NULL)
            return -1;
    return 0;
}

/* The pool's connections, the routing table and l itself. */
static void free_client(redis_client *l)
{
    for (unsigned i = 0; i < l->nslots; i++) {
        strata__sock_close(l->slots[i].conn);
        for (unsigned n = 0; l->slots[i].by_node != NULL && n < CLUSTER_NODES_MAX; n++)
            strata__sock_close(l->slots[i].by_node[n]);
        free(l->slots[i].by_node);
    }
    free(l->slots);
    if (l->table != NULL)
        strata__cluster_table_destroy(l->table);
    free(l->table);
    free(l);
}

int strata__redis_new(const strata_redis_config *cfg, const redis_url *url,
                      const char *track_prefix, const redis_events *ev, strata_log_fn log,
                      void *log_arg, redis_client **out)
{
    *out = NULL;
    redis_client *l = calloc(1, sizeof *l);
    if (l == NULL)
        return STRATA_ENOMEM;
    l->cfg = *cfg;
    l->url = *url;
    l->log = log;
    l->log_arg = log_arg;
    if (ev != NULL)
        l->ev = *ev;
    l->nslots = cfg->max_connections ? cfg->max_connections : 8;
    l->slots = calloc(l->nslots, sizeof *l->slots);
    if (l->slots == NULL) {
        free(l);
        return STRATA_ENOMEM;
    }
    if (cfg->cluster != NULL && cluster_alloc(l) != 0) {
        free_client(l);
        return STRATA_ENOMEM;
    }
    if (url->tls || cfg->tls) {
        char err[400];
        int rc = strata__tls_new(cfg, cfg->sentinels || cfg->cluster ? NULL : url->host, &l->tls,
                                 err, sizeof err);
        if (rc != 0) {
            logf_(l, 0, "%s", err);
            free_client(l);
            return rc;
        }
        if (cfg->tls_insecure)
            logf_(l, 1,
                  "REDIS_TLS_INSECURE=1: Redis' certificate and name are not verified; "
                  "anyone on the path can read and change what the cache stores");
    }
    snprintf(l->target_name, sizeof l->target_name, "%s", url->path[0] ? url->path : url->host);
    unsigned char bin[16];
    int one = cfg->sentinels == NULL && cfg->cluster == NULL; /* the URL names the node */
    int is_name = one && !url->path[0] && inet_pton(AF_INET, url->host, bin) != 1 &&
                  inet_pton(AF_INET6, url->host, bin) != 1;
    if (one) {
        resolve_host(&l->url);
        l->target_known = 1;
    }
    strata__breaker_init(&l->brk, cfg->breaker_failures, cfg->breaker_min_backoff_ms,
                         cfg->breaker_max_backoff_ms);
    pthread_mutex_init(&l->lock, NULL);
    pthread_cond_init(&l->freed, NULL);
    pthread_mutex_init(&l->err_lock, NULL);
    pthread_mutex_init(&l->addr_lock, NULL);
    pthread_cond_init(&l->mapped, NULL);
    count_node_errors(l, 0); /* the URL's node: known from the start */
    if (cfg->sentinels != NULL) {
        sentinel_deps sd = {
            sentinel_primary,        sentinel_note_error,    link_log, cfg->tls ? l->tls : NULL,
            cfg->connect_timeout_ms, cfg->socket_timeout_ms, l};
        int rc = strata__sentinel_start(&sd, cfg, &l->sentinel);
        if (rc != 0) {
            strata__redis_free(l);
            return rc;
        }
    }
    if (l->table != NULL) {
        /* A link per primary, started by the watcher as maps name them: the prefix is set
         * before the watcher's thread exists, which reads it. */
        if (track_prefix != NULL)
            snprintf(l->track_prefix, sizeof l->track_prefix, "%s", track_prefix);
        track_prefix = NULL;
        cluster_deps cd = {cluster_connect, cluster_map_read, sentinel_note_error,
                           cfg->socket_timeout_ms, l};
        int rc = strata__cluster_start(&cd, cfg->cluster, &l->cluster);
        if (rc != 0) {
            strata__redis_free(l);
            return rc;
        }
    }
    if (is_name) {
        resolver_deps rd = {dns_resolved, sentinel_note_error, l};
        int rc = strata__resolver_start(&rd, url->host, &l->resolver);
        if (rc != 0) {
            strata__redis_free(l);
            return rc;
        }
    }
    if (track_prefix != NULL) {
        link_deps d = {link_connect, link_note_error,        link_log, link_idle, link_gen,
                       &l->ev,       cfg->socket_timeout_ms, l};
        int rc = strata__link_start(&d, track_prefix, &l->link);
        if (rc != 0) {
            strata__redis_free(l);
            return rc;
        }
    }
    *out = l;
    return 0;
}

void strata__redis_free(redis_client *l)
{
    if (l == NULL)
        return;
    strata__link_stop(l->link);       /* first: its thread uses the rest */
    strata__cluster_stop(l->cluster); /* before the node links: it starts them */
    for (int i = 0; i < CLUSTER_NODES_MAX; i++)
        if (l->node_links[i] != NULL) {
            strata__link_stop(l->node_links[i]->link);
            free(l->node_links[i]);
        }
    strata__sentinel_stop(l->sentinel);
    strata__resolver_stop(l->resolver);
    strata__tls_free(l->tls);
    strata__breaker_destroy(&l->brk);
    pthread_mutex_destroy(&l->lock);
    pthread_cond_destroy(&l->freed);
    pthread_mutex_destroy(&l->err_lock);
    pthread_mutex_destroy(&l->addr_lock);
    pthread_cond_destroy(&l->mapped);
    free_client(l);
}

const struct redis_tls *strata__redis_tls(redis_client *l)
{
    return l->tls;
}

const strata_redis_config *strata__redis_config(redis_client *l)
{
    return &l->cfg;
}

int strata__redis_allow(redis_client *l)
{
    return strata__breaker_allow(&l->brk, strata__mono_ms());
}

int strata__redis_down(redis_client *l)
{
    return strata__breaker_state(&l->brk) == BREAKER_OPEN;
}

int strata__redis_link_up(redis_client *l)
{
    return l->table != NULL ? cluster_links_up(l) : strata__link_up(l->link);
}

void strata__redis_state(redis_client *l, redis_state *out)
{
    memset(out, 0, sizeof *out);
    int state = strata__breaker_state(&l->brk);
    out->breaker = strata__breaker_state_name(state);
    out->available = state == BREAKER_CLOSED && !atomic_load(&l->last_failed);
    out->readonly = strata__redis_readonly(l);
    out->link_up = strata__redis_link_up(l);
    pthread_mutex_lock(&l->brk.lock);
    out->breaker_opens = l->brk.opened_total;
    pthread_mutex_unlock(&l->brk.lock);
    out->invalidations = strata__link_invalidations(l->link);
    out->link_drops = strata__link_drops(l->link);
    for (int i = 0; i < CLUSTER_NODES_MAX; i++) {
        redis_link *k = atomic_load(&l->node_link_of[i]);
        out->invalidations += strata__link_invalidations(k);
        out->link_drops += strata__link_drops(k);
    }
    pthread_mutex_lock(&l->err_lock);
    snprintf(out->last_error, sizeof out->last_error, "%s", l->last_error);
    pthread_mutex_unlock(&l->err_lock);
    out->topology = l->table != NULL ? "cluster" : l->sentinel != NULL ? "sentinel" : "single";
    out->tls = l->tls != NULL;
    pthread_mutex_lock(&l->addr_lock);
    target_str_locked(l, out->primary, sizeof out->primary);
    out->nodes = out->primary[0] != '\0';
    pthread_mutex_unlock(&l->addr_lock);
    if (l->table != NULL) { /* the primaries of the last slot map */
        int p[CLUSTER_PRIMARIES];
        out->nodes = strata__cluster_table_primaries(l->table, p, CLUSTER_PRIMARIES);
    }
}

int strata__redis_target(redis_client *l, redis_url *out, char *name, size_t cap, uint64_t *gen)
{
    pthread_mutex_lock(&l->addr_lock);
    int known = l->target_known;
    *out = l->url;
    snprintf(name, cap, "%s", l->sentinel != NULL ? l->target_name : "");
    *gen = atomic_load(&l->gen);
    pthread_mutex_unlock(&l->addr_lock);
    return known ? 0 : -1;
}

uint64_t strata__redis_gen(redis_client *l)
{
    return atomic_load_explicit(&l->gen, memory_order_relaxed);
}

int strata__redis_via_sentinel(redis_client *l)
{
    return l->sentinel != NULL;
}

void strata__redis_not_primary(redis_client *l)
{
    strata__sentinel_ask(l->sentinel);
}

/* ROLE's answer: ["master", offset, [replicas]] on the primary. 1 for a master. */
int strata__redis_role_is_master(const redisReply *r)
{
    return r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
           r->element[0]->type == REDIS_REPLY_STRING && strcmp(r->element[0]->str, "master") == 0;
}

int strata__redis_readonly(redis_client *l)
{
    return l->cfg.readonly || atomic_load(&l->replica);
}

static void mark_replica(redis_client *l, const char *why)
{
    atomic_store(&l->replica, 1);
    if (!atomic_exchange(&l->warned_ro, 1))
        logf_(l, 1, "redis is read-only (%s): writes go to the memory tier only", why);
}

static unsigned socket_ms(const redis_client *l)
{
    return l->cfg.socket_timeout_ms ? l->cfg.socket_timeout_ms : 250;
}

/* One command on a fresh connection during connect; 0 if it answered without an error. */
static int handshake(redis_client *l, redis_sock *c, char *errbuf, size_t errcap,
                     const redis_cmd *cmd)
{
    redisReply *r;
    if (strata__sock_exchange(c, cmd, 1, &r, socket_ms(l)) != 0) {
        snprintf(errbuf, errcap, "%s failed: %s", cmd->argv[0], strata__sock_error(c));
        return -1;
    }
    int ok = r->type != REDIS_REPLY_ERROR;
    if (!ok)
        snprintf(errbuf, errcap, "%s failed: %s", cmd->argv[0], r->str);
    freeReplyObject(r);
    return ok ? 0 : -1;
}

/* With sentinels: the node must say it is the master before anything is sent to it. */
static int confirm_primary(redis_client *l, redis_sock *c, const redis_url *u, char *errbuf,
                           size_t errcap)
{
    redis_cmd role = {.argc = 1, .argv = {"ROLE"}, .argvlen = {4}};
    redisReply *r;
    if (strata__sock_exchange(c, &role, 1, &r, socket_ms(l)) != 0) {
        snprintf(errbuf, errcap, "ROLE failed: %s", strata__sock_error(c));
        return -1;
    }
    int ok = strata__redis_role_is_master(r);
    if (!ok) {
        snprintf(
            errbuf, errcap, "redis at %.100s:%d is not the primary (ROLE: %.40s)", u->host, u->port,
            r->type == REDIS_REPLY_ARRAY && r->elements && r->element[0]->str ? r->element[0]->str
            : r->type == REDIS_REPLY_ERROR                                    ? r->str
                                                                              : "?");
        strata__redis_not_primary(l);
    }
    freeReplyObject(r);
    return ok ? 0 : -1;
}

/* A connection to u (numeric), TLS verifying name (NULL: the context's), authenticated, its
 * database selected, and with sentinels confirmed as the primary; or NULL with errbuf. */
static redis_sock *connect_url(redis_client *l, const redis_url *u, const char *name, char *errbuf,
                               size_t errcap)
{
    unsigned ct = l->cfg.connect_timeout_ms ? l->cfg.connect_timeout_ms : 500;
    redis_sock *c = strata__sock_connect(u, l->tls, name, ct, errbuf, errcap);
    if (c == NULL)
        return NULL;
    char db[16];
    snprintf(db, sizeof db, "%d", u->db);
    redis_cmd auth = {
        .argc = u->user[0] ? 3 : 2,
        .argv = {"AUTH", u->user[0] ? u->user : u->password, u->password},
        .argvlen = {4, strlen(u->user[0] ? u->user : u->password), strlen(u->password)}};
    redis_cmd select = {.argc = 2, .argv = {"SELECT", db}, .argvlen = {6, strlen(db)}};
    if ((u->password[0] && handshake(l, c, errbuf, errcap, &auth) != 0) ||
        (u->db != 0 && handshake(l, c, errbuf, errcap, &select) != 0) ||
        (l->sentinel != NULL && confirm_primary(l, c, u, errbuf, errcap) != 0)) {
        strata__sock_close(c);
        return NULL;
    }
    return c;
}

redis_sock *strata__redis_connect(redis_client *l, char *errbuf, size_t errcap)
{
    redis_url target;
    char name[REDIS_URL_PART_MAX];
    uint64_t gen;
    if (l->table != NULL) { /* a cluster: the link's connection goes to a primary */
        int node = strata__redis_any_node(l);
        if (node < 0) {
            snprintf(errbuf, errcap, "no redis cluster slot map yet (no node has answered)");
            return NULL;
        }
        return strata__redis_connect_node(l, node, errbuf, errcap);
    }
    strata__redis_reconnecting(l); /* a name is looked up again for the next one */
    if (strata__redis_target(l, &target, name, sizeof name, &gen) != 0) {
        snprintf(errbuf, errcap, "no redis primary known yet (the sentinels have not named one)");
        return NULL;
    }
    return connect_url(l, &target, name[0] ? name : NULL, errbuf, errcap);
}

/* Asks a new pool connection whether it talks to a replica. */
static void detect_role(redis_client *l, redis_sock *c)
{
    redis_cmd info = {.argc = 2, .argv = {"INFO", "replication"}, .argvlen = {4, 11}};
    redisReply *r;
    if (strata__sock_exchange(c, &info, 1, &r, socket_ms(l)) != 0)
        return; /* the call that follows finds the connection broken */
    if (r->type == REDIS_REPLY_STRING && strstr(r->str, "role:slave") != NULL)
        mark_replica(l, "INFO replication reports role:slave");
    else if (r->type == REDIS_REPLY_STRING && !l->cfg.readonly)
        atomic_store(&l->replica, 0); /* promoted, or a new primary behind the same address */
    freeReplyObject(r);
}

/* ---- Redis Cluster ----------------------------------------------------------------------- */

static void node_name(const cluster_addr *a, char *buf, size_t cap)
{
    snprintf(buf, cap, strchr(a->host, ':') ? "[%s]:%d" : "%s:%d", a->host, a->port);
}

/* Counts errors failures against cluster node i (0: makes its row). */
static void count_cluster_errors(redis_client *l, int node, uint64_t errors)
{
    char name[300];
    node_name(strata__cluster_table_addr(l->table, node), name, sizeof name);
    pthread_mutex_lock(&l->err_lock);
    node_row *r = node_row_locked(l, name);
    r->errors += errors;
    if (strcmp(r->name, "(other)") != 0)
        r->node = node;
    pthread_mutex_unlock(&l->err_lock);
}

int strata__redis_is_cluster(redis_client *l)
{
    return l->table != NULL;
}

int strata__redis_any_node(redis_client *l)
{
    int p[1];
    return strata__cluster_table_primaries(l->table, p, 1) > 0 ? p[0] : -1;
}

/* Whether calls have somewhere to go (under addr_lock): a cluster's first slot map, or the
 * primary the sentinels name. */
static int routable_locked(redis_client *l)
{
    return l->table != NULL ? strata__redis_any_node(l) >= 0 : l->target_known;
}

/* With a cluster whose slot map no node has given yet, or sentinels that have not named the
 * primary yet (the cache has just started and its watcher is asking): waits for that first
 * answer, at most the connect timeout, as the first call to a single Redis waits for its
 * connection. Without this wait, the calls made in the first milliseconds of a cache failed
 * (answered from L1 alone, with a healthy Redis) and counted as Redis failures, opening the
 * breaker before any node was asked. Never on a loop's thread (the synchronous calls only: a
 * loop's calls wait in redis/conn.c and redis/pipe.c, without blocking). */
static void await_first_target(redis_client *l)
{
    if (l->table != NULL ? strata__redis_any_node(l) >= 0
                         : l->sentinel == NULL || atomic_load(&l->gen) > 0)
        return; /* the common case, without the lock: a sentinel's first naming bumps gen */
    unsigned ms = l->cfg.connect_timeout_ms ? l->cfg.connect_timeout_ms : 500;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    until.tv_sec += ms / 1000 + until.tv_nsec / 1000000000L;
    until.tv_nsec %= 1000000000L;
    pthread_mutex_lock(&l->addr_lock);
    while (!routable_locked(l) &&
           pthread_cond_timedwait(&l->mapped, &l->addr_lock, &until) != ETIMEDOUT) {
    }
    pthread_mutex_unlock(&l->addr_lock);
}

int strata__redis_cmd_slot(const redis_cmd *c)
{
    const char *key;
    size_t len;
    return strata__cmd_key(c, &key, &len) ? (int)strata__key_slot(key, len) : -1;
}

int strata__redis_slot_node(redis_client *l, int key_slot)
{
    return key_slot < 0 ? strata__redis_any_node(l)
                        : strata__cluster_table_route(l->table, (unsigned)key_slot);
}

int strata__redis_cmd_node(redis_client *l, const redis_cmd *c)
{
    return strata__redis_slot_node(l, strata__redis_cmd_slot(c));
}

unsigned strata__redis_first_map_ms(redis_client *l)
{
    return socket_ms(l);
}

int strata__redis_redirected(redis_client *l, const redisReply *r, int from, int *ask)
{
    unsigned at;
    cluster_addr to;
    if (!strata__cluster_redirect(r, ask, &at, &to))
        return -1;
    if (to.host[0] == '\0') /* the node that answered */
        snprintf(to.host, sizeof to.host, "%s", strata__cluster_table_addr(l->table, from)->host);
    if (!*ask)
        strata__cluster_ask(l->cluster); /* the map moved: read it again */
    return strata__cluster_table_node(l->table, &to);
}

void strata__redis_node_target(redis_client *l, int node, redis_url *out)
{
    const cluster_addr *a = strata__cluster_table_addr(l->table, node);
    *out = l->url;
    snprintf(out->host, sizeof out->host, "%s", a->host);
    out->port = a->port;
}

redis_sock *strata__redis_connect_node(redis_client *l, int node, char *err, size_t cap)
{
    redis_url u;
    strata__redis_node_target(l, node, &u);
    return connect_url(l, &u, u.host, err, cap);
}

void strata__redis_node_failed(redis_client *l, int node, const char *why)
{
    char msg[300];
    node_name(strata__cluster_table_addr(l->table, node), msg, sizeof msg);
    snprintf(msg + strlen(msg), sizeof msg - strlen(msg), ": %.200s", why);
    count_cluster_errors(l, node, 1);
    strata__cluster_ask(l->cluster); /* failed over? the map says */
    strata__redis_failed(l, msg);
}

/* The watcher's connection to a node it asks for the map. */
static redis_sock *cluster_connect(void *arg, const char *addr, int port, char *err, size_t cap)
{
    redis_client *l = arg;
    redis_url u = l->url;
    snprintf(u.host, sizeof u.host, "%s", addr);
    u.port = port;
    return connect_url(l, &u, addr, err, cap);
}

/* ---- a cluster's invalidation links: one per primary --------------------------------------- */

static redis_sock *node_link_connect(void *arg, char *err, size_t cap)
{
    node_link *n = arg;
    return strata__redis_connect_node(n->l, n->node, err, cap);
}

static void node_link_note_error(void *arg, const char *msg)
{
    strata__redis_note_error(((node_link *)arg)->l, msg);
}

static void node_link_log(void *arg, int level, const char *msg)
{
    log_line(((node_link *)arg)->l, level, msg);
}

static void node_link_idle(void *arg)
{
    (void)arg; /* a cluster's primaries are never read-only replicas: nothing to ask again */
}

static uint64_t node_link_gen(void *arg)
{
    (void)arg;
    return 0; /* a node's address never changes; a new primary is another node */
}

/* Starts the links of the primaries that have none yet (the watcher's thread: may wait). */
static void start_node_links(redis_client *l)
{
    int p[CLUSTER_PRIMARIES];
    unsigned n = strata__cluster_table_primaries(l->table, p, CLUSTER_PRIMARIES);
    for (unsigned i = 0; i < n && i < CLUSTER_PRIMARIES; i++) {
        if (l->node_links[p[i]] != NULL)
            continue;
        node_link *k = calloc(1, sizeof *k);
        if (k == NULL)
            return; /* tried again with the next map read: coherence waits, L1 is not trusted */
        k->l = l, k->node = p[i];
        link_deps d = {node_link_connect,
                       node_link_note_error,
                       node_link_log,
                       node_link_idle,
                       node_link_gen,
                       &l->ev,
                       l->cfg.socket_timeout_ms,
                       k};
        if (strata__link_start(&d, l->track_prefix, &k->link) != 0) {
            free(k);
            return;
        }
        l->node_links[p[i]] = k;
        atomic_store(&l->node_link_of[p[i]], k->link);
    }
}

/* Every change reaches the owner only when every primary's link is up. */
static int cluster_links_up(redis_client *l)
{
    int p[CLUSTER_PRIMARIES];
    unsigned n = strata__cluster_table_primaries(l->table, p, CLUSTER_PRIMARIES);
    if (n == 0 || l->track_prefix[0] == '\0')
        return 0;
    for (unsigned i = 0; i < n && i < CLUSTER_PRIMARIES; i++)
        if (!strata__link_up(atomic_load(&l->node_link_of[p[i]])))
            return 0;
    return 1;
}

/* A slot map was read: route by it; say so when it changed. */
static void cluster_map_read(void *arg, const cluster_map *m)
{
    redis_client *l = arg;
    int rc = strata__cluster_table_install(l->table, m);
    pthread_mutex_lock(&l->addr_lock); /* a call waiting for the first map goes on */
    pthread_cond_broadcast(&l->mapped);
    pthread_mutex_unlock(&l->addr_lock);
    if (rc >= 0 && l->track_prefix[0])
        start_node_links(l);
    if (rc < 0) {
        logf_(l, 0,
              "redis cluster names more than %d nodes over this client's life: the newest "
              "are not followed",
              CLUSTER_NODES_MAX);
        return;
    }
    if (rc == 0)
        return;
    int p[CLUSTER_PRIMARIES];
    unsigned n = strata__cluster_table_primaries(l->table, p, CLUSTER_PRIMARIES);
    for (unsigned i = 0; i < n && i < CLUSTER_PRIMARIES; i++)
        count_cluster_errors(l, p[i], 0); /* each primary's series exists before its failures */
    logf_(l, 2, "redis cluster: %u primaries serve %u of 16384 slots", n, m->covered);
    strata__breaker_retry_now(&l->brk); /* a new primary: no backoff left from the old one */
}

/* The connection of pool slot s to node, made when missing; NULL with err. */
static redis_sock *slot_node_conn(redis_client *l, slot *s, int node, char *err, size_t cap)
{
    if (s->by_node[node] == NULL)
        s->by_node[node] = strata__redis_connect_node(l, node, err, cap);
    return s->by_node[node];
}

/* n commands on node through pool slot s. A failure closes that connection and is recorded. */
static int node_exchange(redis_client *l, slot *s, int node, const redis_cmd *cmds, size_t n,
                         redisReply **replies)
{
    char err[200];
    redis_sock *c = slot_node_conn(l, s, node, err, sizeof err);
    if (c == NULL) {
        strata__redis_node_failed(l, node, err);
        return STRATA_EUNAVAILABLE;
    }
    int rc = strata__sock_exchange(c, cmds, n, replies, socket_ms(l));
    if (rc != 0) {
        snprintf(err, sizeof err, "redis call failed: %s", strata__sock_error(c));
        strata__sock_close(c), s->by_node[node] = NULL;
        strata__redis_node_failed(l, node, err);
    }
    return rc;
}

/* Follows *reply's redirections (MOVED: to the new owner; ASK: ASKING, then the command), at most
 * CLUSTER_REDIRECTS hops; *reply becomes the last answer. */
static int follow(redis_client *l, slot *s, int from, const redis_cmd *cmd, redisReply **reply)
{
    for (int hop = 0; hop < CLUSTER_REDIRECTS; hop++) {
        int ask, node = strata__redis_redirected(l, *reply, from, &ask);
        if (node < 0)
            return 0; /* an answer (or a node past the table's bound: the error stands) */
        redis_cmd two[2] = {{.argc = 1, .argv = {"ASKING"}, .argvlen = {6}}, *cmd};
        redisReply *r[2];
        int rc = node_exchange(l, s, node, ask ? two : cmd, ask ? 2 : 1, r);
        if (rc != 0)
            return rc;
        freeReplyObject(*reply);
        if (ask)
            freeReplyObject(r[0]);
        *reply = r[ask];
        from = node;
    }
    return 0;
}

/* strata__redis_run on a cluster: the commands grouped by node (each group pipelined, in the
 * order given), then every redirection followed. */
static int run_cluster(redis_client *l, slot *s, const redis_cmd *cmds, size_t n,
                       redisReply **replies)
{
    int *node = malloc(n * sizeof *node), *from = malloc(n * sizeof *from);
    redis_cmd *sub = malloc(n * sizeof *sub);
    size_t *at = malloc(n * sizeof *at);
    redisReply **got = malloc(n * sizeof *got);
    int rc = node && from && sub && at && got ? 0 : STRATA_ENOMEM;
    for (size_t i = 0; i < n; i++)
        replies[i] = NULL;
    for (size_t i = 0; i < n && rc == 0; i++)
        if ((node[i] = from[i] = strata__redis_cmd_node(l, &cmds[i])) < 0) {
            strata__redis_failed(l, "no redis cluster slot map yet (no node has answered)");
            rc = STRATA_EUNAVAILABLE;
        }
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (node[i] < 0)
            continue; /* sent with an earlier group */
        int nd = node[i];
        size_t k = 0;
        for (size_t j = i; j < n; j++)
            if (node[j] == nd)
                sub[k] = cmds[j], at[k++] = j, node[j] = -1;
        if ((rc = node_exchange(l, s, nd, sub, k, got)) == 0)
            for (size_t m = 0; m < k; m++)
                replies[at[m]] = got[m];
    }
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = follow(l, s, from[i], &cmds[i], &replies[i]);
    if (rc != 0)
        for (size_t i = 0; i < n; i++)
            if (replies[i] != NULL)
                freeReplyObject(replies[i]), replies[i] = NULL;
    free(node), free(from), free(sub), free(at), free(got);
    return rc;
}

/* Takes a free slot, waiting at most the socket timeout. Returns its index or -1. */
static int acquire(redis_client *l)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    unsigned ms = l->cfg.socket_timeout_ms ? l->cfg.socket_timeout_ms : 250;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    until.tv_sec += ms / 1000 + until.tv_nsec / 1000000000L;
    until.tv_nsec %= 1000000000L;
    int idx = -1;
    pthread_mutex_lock(&l->lock);
    for (;;) {
        for (unsigned i = 0; i < l->nslots && idx < 0; i++)
            if (!l->slots[i].busy)
                idx = (int)i;
        if (idx >= 0 || pthread_cond_timedwait(&l->freed, &l->lock, &until) == ETIMEDOUT)
            break;
    }
    if (idx >= 0)
        l->slots[idx].busy = 1;
    pthread_mutex_unlock(&l->lock);
    return idx;
}

static void release_slot(redis_client *l, int idx, int broken)
{
    pthread_mutex_lock(&l->lock);
    if (broken && l->slots[idx].conn != NULL) {
        strata__sock_close(l->slots[idx].conn);
        l->slots[idx].conn = NULL;
    }
    l->slots[idx].busy = 0;
    pthread_cond_signal(&l->freed);
    pthread_mutex_unlock(&l->lock);
}

/* Records a failed call (the connection is dropped by the caller). */
static int fail_call(redis_client *l, const char *msg, int timed_out)
{
    strata__redis_failed(l, msg);
    return timed_out ? STRATA_ETIMEDOUT : STRATA_EUNAVAILABLE;
}

/* A cluster call's end: the slot back (its connections closed one by one as they failed), and
 * the outcome counted once. */
static int finish_cluster(redis_client *l, int idx, int rc, redisReply **replies, size_t n)
{
    release_slot(l, idx, 0);
    if (rc != 0)
        return rc; /* recorded where it failed */
    for (size_t i = 0; i < n; i++)
        strata__redis_saw_reply(l, replies[i]);
    strata__redis_succeeded(l);
    return 0;
}

/* n commands on one cluster node, whatever their keys (SCAN of each primary). */
static int run_on_node(redis_client *l, int node, const redis_cmd *cmds, size_t n,
                       redisReply **replies)
{
    if (!strata__redis_allow(l))
        return STRATA_EUNAVAILABLE;
    int idx = acquire(l);
    if (idx < 0)
        return fail_call(l, "no free redis connection within the socket timeout", 1);
    return finish_cluster(l, idx, node_exchange(l, &l->slots[idx], node, cmds, n, replies), replies,
                          n);
}

int strata__redis_run(redis_client *l, const redis_cmd *cmds, size_t n, redisReply **replies)
{
    if (!strata__redis_allow(l))
        return STRATA_EUNAVAILABLE;
    int idx = acquire(l);
    if (idx < 0)
        return fail_call(l, "no free redis connection within the socket timeout", 1);
    slot *s = &l->slots[idx];
    if (l->table != NULL) {
        await_first_target(l);
        return finish_cluster(l, idx, run_cluster(l, s, cmds, n, replies), replies, n);
    }
    char err[160];
    await_first_target(l);
    if (s->conn != NULL && s->gen != strata__redis_gen(l)) /* made for a former primary */
        strata__sock_close(s->conn), s->conn = NULL;
    if (s->conn == NULL) {
        s->gen = strata__redis_gen(l);
        if ((s->conn = strata__redis_connect(l, err, sizeof err)) == NULL) {
            release_slot(l, idx, 1);
            return fail_call(l, err, 0);
        }
        if (l->sentinel == NULL) /* with sentinels, ROLE was asked already */
            detect_role(l, s->conn);
    }
    int rc = strata__sock_exchange(s->conn, cmds, n, replies, socket_ms(l));
    if (rc != 0) {
        snprintf(err, sizeof err, "redis call failed: %s", strata__sock_error(s->conn));
        release_slot(l, idx, 1);
        return fail_call(l, err, rc == STRATA_ETIMEDOUT);
    }
    for (size_t i = 0; i < n; i++)
        strata__redis_saw_reply(l, replies[i]);
    release_slot(l, idx, 0);
    strata__redis_succeeded(l);
    return 0;
}

/* One SCAN step: SCAN cursor MATCH pattern COUNT count. Returns 0 with *out (the caller frees it;
 * its element[1] is the keys, all checked to be an array) and the next cursor in next, or a
 * failure of strata__redis_run, or STRATA_EPROTO for an answer that is not SCAN's. */
static int scan_step(redis_client *l, int node, const char *cursor, const char *pattern,
                     const char *count, char *next, size_t next_cap, redisReply **out)
{
    char cur[32];
    snprintf(cur, sizeof cur, "%s", cursor);
    redis_cmd scan = {.argc = 6,
                      .argv = {"SCAN", cur, "MATCH", pattern, "COUNT", count},
                      .argvlen = {4, strlen(cur), 5, strlen(pattern), 5, strlen(count)}};
    redisReply *r;
    int rc = node >= 0 ? run_on_node(l, node, &scan, 1, &r) : strata__redis_run(l, &scan, 1, &r);
    if (rc != 0)
        return rc;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_ARRAY ||
        r->element[0]->len >= next_cap) {
        freeReplyObject(r);
        return STRATA_EPROTO;
    }
    memcpy(next, r->element[0]->str, r->element[0]->len + 1);
    *out = r;
    return 0;
}

/* UNLINKs the keys of one SCAN page that keep() accepts: one UNLINK of them all, or on a
 * cluster one per key, pipelined (a page's keys are in many slots, and UNLINK of keys in two
 * slots is refused). Adds to *removed. */
static int unlink_page(redis_client *l, const redisReply *keys,
                       int (*keep)(const char *, size_t, void *), void *arg, size_t *removed)
{
    size_t n = keys->elements, ncmds = l->table != NULL ? n : 1;
    const char **argv = malloc((2 * n + 1) * sizeof *argv);
    size_t *lens = malloc((2 * n + 1) * sizeof *lens);
    redis_cmd *cmds = calloc(ncmds ? ncmds : 1, sizeof *cmds);
    redisReply **u = calloc(ncmds ? ncmds : 1, sizeof *u);
    int rc = argv && lens && cmds && u ? 0 : STRATA_ENOMEM;
    size_t argc = 0, k = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const redisReply *e = keys->element[i];
        if (e->type != REDIS_REPLY_STRING || !keep(e->str, e->len, arg))
            continue;
        if (l->table != NULL || argc == 0) { /* a new UNLINK */
            cmds[k].many = argv + argc, cmds[k++].manylen = lens + argc;
            argv[argc] = "UNLINK", lens[argc++] = 6;
        }
        argv[argc] = e->str, lens[argc++] = e->len;
        cmds[k - 1].argc++;
    }
    for (size_t i = 0; i < k; i++)
        cmds[i].argc++; /* UNLINK itself */
    if (rc == 0 && k > 0 && (rc = strata__redis_run(l, cmds, k, u)) == 0)
        for (size_t i = 0; i < k; i++) {
            if (u[i]->type == REDIS_REPLY_INTEGER)
                *removed += (size_t)u[i]->integer;
            else if (rc == 0) /* an error reply: READONLY, NOPERM: the clear did not happen */
                rc = strata__reply_error(u[i]) == STRATA_EREADONLY ? STRATA_EREADONLY
                                                                   : STRATA_EPROTO;
            freeReplyObject(u[i]);
        }
    free(argv), free(lens), free(cmds), free(u);
    return rc;
}

/* The nodes a whole-keyspace walk visits: -1 (the one Redis), or every primary of a cluster.
 * Returns how many, 0 when a cluster's map is not known yet. */
static unsigned walk_nodes(redis_client *l, int *out)
{
    if (l->table == NULL) {
        out[0] = -1;
        return 1;
    }
    unsigned n = strata__cluster_table_primaries(l->table, out, CLUSTER_PRIMARIES);
    return n < CLUSTER_PRIMARIES ? n : CLUSTER_PRIMARIES;
}

/* walk_nodes for a synchronous call: on a cluster, after the first slot map (await_first_target).
 * A loop's caller (strata__redis_walk_nodes) never waits. */
static unsigned walk_nodes_sync(redis_client *l, int *out)
{
    await_first_target(l);
    return walk_nodes(l, out);
}

/* SCAN cursor MATCH pattern COUNT 1000, then UNLINK of what keep() accepts, batch by batch, so
 * a clear of millions of keys never blocks Redis (KEYS would) and holds little memory; on a
 * cluster, on every primary in turn. */
int strata__redis_scan_unlink(redis_client *l, const char *pattern,
                              int (*keep)(const char *, size_t, void *), void *arg, size_t *removed)
{
    int nodes[CLUSTER_PRIMARIES];
    unsigned nn = walk_nodes_sync(l, nodes);
    *removed = 0;
    if (nn == 0)
        return fail_call(l, "no redis cluster slot map yet (no node has answered)", 0);
    for (unsigned k = 0; k < nn; k++) {
        char cursor[32] = "0";
        do {
            redisReply *r;
            int rc = scan_step(l, nodes[k], cursor, pattern, "1000", cursor, sizeof cursor, &r);
            if (rc != 0)
                return rc;
            rc = unlink_page(l, r->element[1], keep, arg, removed);
            freeReplyObject(r);
            if (rc != 0)
                return rc;
        } while (strcmp(cursor, "0") != 0);
    }
    return 0;
}

int strata__redis_run_every(redis_client *l, const redis_cmd *cmd, redisReply **reply)
{
    int nodes[CLUSTER_PRIMARIES];
    unsigned nn = walk_nodes_sync(l, nodes);
    *reply = NULL;
    if (nn == 0)
        return fail_call(l, "no redis cluster slot map yet (no node has answered)", 0);
    for (unsigned k = 0; k < nn; k++) {
        redisReply *r;
        int rc =
            nodes[k] < 0 ? strata__redis_run(l, cmd, 1, &r) : run_on_node(l, nodes[k], cmd, 1, &r);
        if (rc != 0) {
            if (*reply != NULL)
                freeReplyObject(*reply), *reply = NULL;
            return rc;
        }
        if (*reply != NULL && (*reply)->type == REDIS_REPLY_ERROR) {
            freeReplyObject(r); /* the first error stands */
            continue;
        }
        if (*reply != NULL)
            freeReplyObject(*reply);
        *reply = r;
    }
    return 0;
}

int strata__redis_ping(redis_client *l, uint64_t *latency_us)
{
    int nodes[CLUSTER_PRIMARIES];
    unsigned nn = walk_nodes_sync(l, nodes);
    redis_cmd ping = {.argc = 1, .argv = {"PING"}, .argvlen = {4}};
    int first = 0;
    *latency_us = 0;
    if (nn == 0)
        return fail_call(l, "no redis cluster slot map yet (no node has answered)", 0);
    for (unsigned k = 0; k < nn; k++) {
        redisReply *r;
        uint64_t start = strata__mono_us();
        int rc = nodes[k] < 0 ? strata__redis_run(l, &ping, 1, &r)
                              : run_on_node(l, nodes[k], &ping, 1, &r);
        if (rc != 0) {
            first = first ? first : rc;
            continue;
        }
        uint64_t us = strata__mono_us() - start;
        freeReplyObject(r);
        *latency_us = us > *latency_us ? us : *latency_us;
        strata__redis_note_latency(l, nodes[k], us);
    }
    return first;
}

void strata__redis_note_latency(redis_client *l, int node, uint64_t us)
{
    char name[300];
    if (node >= 0) {
        node_name(strata__cluster_table_addr(l->table, node), name, sizeof name);
    } else {
        pthread_mutex_lock(&l->addr_lock);
        target_str_locked(l, name, sizeof name);
        pthread_mutex_unlock(&l->addr_lock);
    }
    note_latency(l, name, us);
}

unsigned strata__redis_walk_nodes(redis_client *l, int *out)
{
    return walk_nodes(l, out);
}

const redis_url *strata__redis_url(redis_client *l)
{
    return &l->url;
}

/* The breaker closing after it was open is the one place that knows Redis came back: it tells
 * the owner once, here, instead of every caller checking a flag. */
void strata__redis_succeeded(redis_client *l)
{
    if (atomic_load_explicit(&l->last_failed, memory_order_relaxed))
        atomic_store(&l->last_failed, 0);
    if (strata__breaker_success(&l->brk) && l->ev.recovered != NULL)
        l->ev.recovered(l->ev.arg);
}

void strata__redis_failed(redis_client *l, const char *why)
{
    atomic_store(&l->last_failed, 1);
    strata__sentinel_ask(l->sentinel); /* is it still the primary? (NULL: no-op) */
    strata__resolver_ask(l->resolver); /* does the name still point there? (NULL: no-op) */
    count_node_errors(l, 1);
    if (strata__breaker_failure(&l->brk, strata__mono_ms()))
        logf_(l, 1, "redis unavailable (%s): serving from memory until it answers again", why);
    strata__redis_note_error(l, why);
}

void strata__redis_saw_reply(redis_client *l, const redisReply *r)
{
    int rc = strata__reply_error(r);
    if (rc == STRATA_EREADONLY) {
        mark_replica(l, "a write got a READONLY reply");
        strata__sentinel_ask(l->sentinel); /* demoted: the sentinels know the new one */
    } else if (rc == STRATA_EUNAVAILABLE && l->cluster != NULL) {
        strata__cluster_ask(l->cluster); /* CLUSTERDOWN, TRYAGAIN: a failover or a migration */
    }
}

/* A cluster's listing walks the primaries in the order of the map, one after the other; the
 * cursor a caller holds says which (CLUSTER_CURSOR_SHIFT bits up) and where in it (the node's
 * own SCAN cursor below), so it stays one number. A map that changes between two pages may make
 * the listing repeat or miss keys, as SCAN itself may during a rehash. */
#define CLUSTER_CURSOR_SHIFT 56

int strata__redis_scan_page(redis_client *l, const char *cursor, const char *pattern,
                            const char *count, int (*each)(const char *, size_t, void *), void *arg,
                            char *next, size_t next_cap, size_t *found)
{
    int nodes[CLUSTER_PRIMARIES];
    unsigned nn = walk_nodes_sync(l, nodes), k = 0;
    char node_cursor[32];
    snprintf(node_cursor, sizeof node_cursor, "%s", cursor);
    if (nn == 0)
        return fail_call(l, "no redis cluster slot map yet (no node has answered)", 0);
    if (l->table != NULL) {
        unsigned long long c = strtoull(cursor, NULL, 10);
        k = (unsigned)(c >> CLUSTER_CURSOR_SHIFT);
        snprintf(node_cursor, sizeof node_cursor, "%llu", c & ((1ull << CLUSTER_CURSOR_SHIFT) - 1));
        if (k >= nn) { /* the map has fewer primaries now: the walk is over */
            snprintf(next, next_cap, "0");
            *found = 0;
            return 0;
        }
    }
    redisReply *r;
    int rc = scan_step(l, nodes[k], node_cursor, pattern, count, next, next_cap, &r);
    if (rc != 0)
        return rc;
    *found = 0;
    redisReply *keys = r->element[1];
    for (size_t i = 0; i < keys->elements; i++)
        if (keys->element[i]->type == REDIS_REPLY_STRING) {
            each(keys->element[i]->str, keys->element[i]->len, arg);
            (*found)++;
        }
    freeReplyObject(r);
    if (l->table != NULL) {
        unsigned long long c = strtoull(next, NULL, 10);
        if (c >> CLUSTER_CURSOR_SHIFT)
            return STRATA_EPROTO; /* a node's cursor this large: its table has 2^56 buckets */
        if (c == 0 && ++k < nn)   /* this primary is done: the next one from its start */
            snprintf(next, next_cap, "%llu", (unsigned long long)k << CLUSTER_CURSOR_SHIFT);
        else if (c != 0)
            snprintf(next, next_cap, "%llu", ((unsigned long long)k << CLUSTER_CURSOR_SHIFT) | c);
    }
    return 0;
}

/* Asks a read-only Redis again whether it is still a replica, at most every 2 s; blocks up to
 * the socket timeout: only from a thread that may wait (the link's). */
static void recheck_role(redis_client *l)
{
    if (l->cfg.readonly || !atomic_load(&l->replica) ||
        strata__mono_ms() - l->role_checked_ms < 2000)
        return;
    l->role_checked_ms = strata__mono_ms();
    redis_cmd cmd = {.argc = 2, .argv = {"INFO", "replication"}, .argvlen = {4, 11}};
    redisReply *r;
    if (strata__redis_run(l, &cmd, 1, &r) != 0)
        return;
    if (r->type == REDIS_REPLY_STRING && strstr(r->str, "role:master") != NULL) {
        atomic_store(&l->replica, 0);
        atomic_store(&l->warned_ro, 0); /* a later read-only period warns again */
        logf_(l, 2, "redis is writable again (role:master): writes go to Redis");
    }
    freeReplyObject(r);
}

static void log_line(redis_client *l, int level, const char *msg)
{
    if (l->log != NULL)
        l->log(level, msg, l->log_arg);
}
