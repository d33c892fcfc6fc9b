/* redis/cluster.c: the slot map, asked of the cluster's nodes and followed (cluster.h).
 *
 * One thread and one connection (redis/sock.c: this thread may wait). Each round asks CLUSTER
 * SLOTS of the node that answered last, else of the last map's primaries, else of the seeds,
 * until one answers with a map that covers at least one slot; a node that fails is closed and the
 * next one tried. Every host the map names is resolved to an address before the map is handed
 * on, so nothing downstream ever resolves a name.
 */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <strata/errors.h>

#include "core/clock.h"
#include "redis/cluster.h"
#include "redis/sentinel.h"
#include "redis/waker.h"

struct redis_cluster {
    cluster_deps d;
    sentinel_addr seeds[SENTINELS_MAX];
    size_t nseeds;
    cluster_map last, next;          /* the map handed on last; the one being read */
    redis_waker w;                   /* the thread; asked: read the map again soon */
    redis_sock *q;                   /* the connection asked last */
    char q_host[REDIS_URL_PART_MAX]; /* ... to this address */
    uint64_t asked_at;
};

/* host as a numeric address (the same when it is one), or -1 with err set. */
static int resolve(const char *host, char *out, size_t cap, char *err, size_t errcap)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0) {
        snprintf(err, errcap, "cannot resolve %.100s: %s", host, gai_strerror(rc));
        return -1;
    }
    rc = getnameinfo(res->ai_addr, res->ai_addrlen, out, (socklen_t)cap, NULL, 0, NI_NUMERICHOST);
    freeaddrinfo(res);
    if (rc != 0)
        snprintf(err, errcap, "cannot resolve %.100s", host);
    return rc == 0 ? 0 : -1;
}

/* Asks the connection q CLUSTER SLOTS into k->next, hosts made numeric. 0, or -1 with err. */
static int read_map(redis_cluster *k, char *err, size_t cap)
{
    redis_cmd cmd = {.argc = 2, .argv = {"CLUSTER", "SLOTS"}, .argvlen = {7, 5}};
    redisReply *r = NULL;
    if (strata__sock_exchange(k->q, &cmd, 1, &r, k->d.socket_timeout_ms) != 0) {
        snprintf(err, cap, "%.100s", strata__sock_error(k->q));
        return -1;
    }
    const char *why = NULL;
    int rc =
        r->type == REDIS_REPLY_ERROR ? -1 : strata__cluster_map_parse(r, k->q_host, &k->next, &why);
    if (r->type == REDIS_REPLY_ERROR)
        snprintf(err, cap, "CLUSTER SLOTS: %.150s", r->str); /* not a cluster node, NOPERM ... */
    else if (rc != 0)
        snprintf(err, cap, "%s", why);
    freeReplyObject(r);
    if (rc != 0)
        return -1;
    if (k->next.covered == 0) {
        snprintf(err, cap, "CLUSTER SLOTS: no slot is served yet");
        return -1;
    }
    for (unsigned i = 0; i < k->next.nprimaries; i++) {
        char addr[REDIS_URL_PART_MAX];
        if (resolve(k->next.primary[i].host, addr, sizeof addr, err, cap) != 0)
            return -1;
        snprintf(k->next.primary[i].host, sizeof k->next.primary[i].host, "%s", addr);
    }
    return 0;
}

/* One node to ask: the i-th of the last map's primaries, then of the seeds. */
static int candidate(redis_cluster *k, size_t i, char *addr, size_t cap, int *port, char *err,
                     size_t errcap)
{
    if (i < k->last.nprimaries) {
        snprintf(addr, cap, "%s", k->last.primary[i].host);
        *port = k->last.primary[i].port;
        return 0;
    }
    const sentinel_addr *s = &k->seeds[i - k->last.nprimaries];
    *port = s->port;
    return resolve(s->host, addr, cap, err, errcap);
}

/* Reads the map from the first node that gives one and hands it on. 0, or -1 when none did. */
static int ask_round(redis_cluster *k)
{
    char err[300] = "", why[300];
    if (k->q != NULL && read_map(k, why, sizeof why) == 0) {
        k->d.map(k->d.arg, &k->next);
        k->last = k->next;
        return 0;
    }
    strata__sock_close(k->q), k->q = NULL;
    size_t n = k->last.nprimaries + k->nseeds;
    for (size_t i = 0; i < n; i++) {
        char addr[REDIS_URL_PART_MAX];
        int port;
        if (candidate(k, i, addr, sizeof addr, &port, why, sizeof why) != 0) {
            snprintf(err, sizeof err, "%.250s", why);
            continue;
        }
        if ((k->q = k->d.connect(k->d.arg, addr, port, why, sizeof why)) == NULL) {
            snprintf(err, sizeof err, "%.100s:%d: %.180s", addr, port, why);
            continue;
        }
        snprintf(k->q_host, sizeof k->q_host, "%s", addr);
        if (read_map(k, why, sizeof why) == 0) {
            k->d.map(k->d.arg, &k->next);
            k->last = k->next;
            return 0;
        }
        snprintf(err, sizeof err, "%.100s:%d: %.180s", addr, port, why);
        strata__sock_close(k->q), k->q = NULL;
    }
    char line[400];
    snprintf(line, sizeof line, "no redis cluster node gave its slot map (%s)", err);
    k->d.note_error(k->d.arg, line);
    return -1;
}

static void *watch(void *arg)
{
    redis_cluster *k = arg;
    uint64_t next_ask = 0, backoff = 100;
    while (!strata__waker_stopping(&k->w)) {
        uint64_t now = strata__mono_ms();
        if ((strata__waker_pending(&k->w) && now - k->asked_at >= CLUSTER_ASK_GAP_MS) ||
            now >= next_ask) {
            strata__waker_asked(&k->w);
            k->asked_at = now;
            int ok = ask_round(k) == 0;
            backoff = ok ? 100 : (backoff * 2 > CLUSTER_ASK_MS ? CLUSTER_ASK_MS : backoff * 2);
            next_ask = strata__mono_ms() + (ok ? CLUSTER_ASK_MS : backoff);
            now = strata__mono_ms();
        }
        uint64_t until = strata__waker_pending(&k->w) ? k->asked_at + CLUSTER_ASK_GAP_MS : next_ask;
        strata__waker_sleep(&k->w, until > now ? (int)(until - now) : 0, -1);
    }
    return NULL;
}

int strata__cluster_start(const cluster_deps *d, const char *seeds, redis_cluster **out)
{
    *out = NULL;
    redis_cluster *k = calloc(1, sizeof *k);
    if (k == NULL)
        return STRATA_ENOMEM;
    k->d = *d;
    if (k->d.socket_timeout_ms == 0)
        k->d.socket_timeout_ms = 250;
    if (strata__sentinels_parse(seeds, k->seeds, &k->nseeds, NULL) != 0) {
        free(k);
        return STRATA_EBADURL;
    }
    int rc = strata__waker_start(&k->w, watch, k);
    if (rc != 0) {
        free(k);
        return rc;
    }
    *out = k;
    return 0;
}

void strata__cluster_stop(redis_cluster *k)
{
    if (k == NULL)
        return;
    strata__waker_stop(&k->w);
    strata__sock_close(k->q);
    free(k);
}

void strata__cluster_ask(redis_cluster *k)
{
    if (k != NULL)
        strata__waker_ask(&k->w);
}
