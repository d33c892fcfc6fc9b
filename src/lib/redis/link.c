/* redis/link.c: the invalidation link, Redis' server-assisted client-side caching over RESP2.
 *
 * One dedicated connection per cache: it asks for its own id, turns on
 *     CLIENT TRACKING on REDIRECT <its own id> BCAST PREFIX <prefix>:
 * and subscribes to __redis__:invalidate. From then on Redis pushes, on that one connection, the
 * name of every key under the prefix that anyone writes, deletes, expires or evicts (and a null
 * for FLUSHDB/FLUSHALL), whichever client did it: other strata instances, this one, redis-cli.
 * BCAST means Redis keeps no per-key state for us, and tracking a prefix means tag version keys
 * (<prefix>:!tag:...) arrive on the same stream as values. Redirecting to itself means the link
 * is one connection: it cannot half-fail (tracking alive, subscriber dead) without us seeing the
 * connection drop.
 *
 * The same connection also subscribes to <prefix>!lease, where lease releases and fills publish
 * the value's stored key (features/lease.c), and hands each message to the client's
 * `lease_message` event: waiters for a lease holder's value hear it on the link that already
 * exists, at no cost of a connection.
 *
 * The link knows nothing of what the owner keeps: it hands each key (or "everything", for a
 * FLUSHDB) to the client's `invalidated` event, and says `link_up` before it reports itself up.
 * Invalidations of our own writes come back too (NOLOOP would only cover the writing
 * connection, and ours are in a pool): they cannot be proven ours, so the owner must treat every
 * one as foreign (DESIGN.md).
 *
 * Failure rules (docs/architecture.md, "Coherence"):
 * - While the link is not up, L1 copies of shared keys are not trusted: the cache reads Redis
 *   instead, or serves L1 only when Redis itself is unavailable (the fallback).
 * - The link is down when its connection fails or when a keep-alive PING is not answered in
 *   time: a silently dead link cannot go unnoticed for longer than that bound.
 * - When the link comes (back) up, everything L1 held is dropped before it is trusted again,
 *   since messages sent while it was down are lost.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <strata/errors.h>

#include "core/clock.h"
#include "core/tag_key.h"
#include "redis/link.h"
#include "redis/waker.h"

struct redis_link {
    link_deps d;
    const redis_events *ev;
    redis_waker w; /* the thread (never asked: it stops only) */
    atomic_int up;
    atomic_uint_fast64_t invalidations, drops;
    char prefix[STRATA_PREFIX_MAX + 2];     /* "<prefix>:" */
    char channel[STRATA_LEASE_CHANNEL_MAX]; /* "<prefix>!lease" */
    size_t channel_len;
    int lease_warned; /* the lease channel was refused once: said in the log */
};

static void tell(redis_link *c, const char *key, size_t len)
{
    if (c->ev->invalidated != NULL)
        c->ev->invalidated(key, len, c->ev->arg);
    atomic_fetch_add(&c->invalidations, 1);
}

/* A pushed message: ["message", "__redis__:invalidate", [keys...] or null], or ["message",
 * "<prefix>!lease", value key]. Returns 1 for the answer to our keep-alive. */
static int handle(redis_link *c, redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
        r->element[0]->type != REDIS_REPLY_STRING)
        return 0;
    if (strcmp(r->element[0]->str, "pong") == 0)
        return 1;
    if (strcmp(r->element[0]->str, "message") != 0 || r->elements != 3)
        return 0;
    redisReply *from = r->element[1], *keys = r->element[2];
    if (from->type == REDIS_REPLY_STRING && from->len == c->channel_len &&
        memcmp(from->str, c->channel, from->len) == 0) {
        if (keys->type == REDIS_REPLY_STRING && c->ev->lease_message != NULL)
            c->ev->lease_message(keys->str, keys->len, c->ev->arg);
    } else if (keys->type == REDIS_REPLY_NIL) { /* FLUSHDB / FLUSHALL */
        tell(c, NULL, 0);
    } else if (keys->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < keys->elements; i++)
            if (keys->element[i]->type == REDIS_REPLY_STRING)
                tell(c, keys->element[i]->str, keys->element[i]->len);
    }
    return 0;
}

/* One command, its reply checked: 0, or with err set -1 (the connection failed) or -2 (Redis
 * answered an error). *r (may be NULL) gets the reply. */
static int ask(redis_link *c, redis_sock *sk, const redis_cmd *cmd, redisReply **r, char *err,
               size_t cap)
{
    redisReply *reply;
    unsigned ms = c->d.socket_timeout_ms ? c->d.socket_timeout_ms : 250;
    if (strata__sock_exchange(sk, cmd, 1, &reply, ms) != 0) {
        snprintf(err, cap, "%s refused: %.100s", cmd->argv[0], strata__sock_error(sk));
        return -1;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        snprintf(err, cap, "CLIENT TRACKING / SUBSCRIBE refused: %.100s", reply->str);
        freeReplyObject(reply);
        return -2;
    }
    if (r != NULL)
        *r = reply;
    else
        freeReplyObject(reply);
    return 0;
}

/* Connects and subscribes. Returns the connection, or NULL with err set. */
static redis_sock *subscribe(redis_link *c, char *err, size_t cap)
{
    redis_sock *sk = c->d.connect(c->d.arg, err, cap);
    if (sk == NULL)
        return NULL;
    redis_cmd id = {.argc = 2, .argv = {"CLIENT", "ID"}, .argvlen = {6, 2}};
    redisReply *r = NULL;
    if (ask(c, sk, &id, &r, err, cap) != 0 || r->type != REDIS_REPLY_INTEGER) {
        if (r != NULL)
            snprintf(err, cap, "CLIENT ID failed"), freeReplyObject(r);
        strata__sock_close(sk);
        return NULL;
    }
    char my_id[24];
    snprintf(my_id, sizeof my_id, "%lld", r->integer);
    freeReplyObject(r);
    redis_cmd track = {
        .argc = 8,
        .argv = {"CLIENT", "TRACKING", "on", "REDIRECT", my_id, "BCAST", "PREFIX", c->prefix},
        .argvlen = {6, 8, 2, 8, strlen(my_id), 5, 6, strlen(c->prefix)}};
    redis_cmd sub = {.argc = 2, .argv = {"SUBSCRIBE", "__redis__:invalidate"}, .argvlen = {9, 20}};
    redis_cmd sub2 = {.argc = 2, .argv = {"SUBSCRIBE", c->channel}, .argvlen = {9, c->channel_len}};
    if (ask(c, sk, &track, NULL, err, cap) != 0 || ask(c, sk, &sub, NULL, err, cap) != 0) {
        strata__sock_close(sk);
        return NULL;
    }
    /* The lease channel is a help, not a condition of coherence: an ACL user without
     * &<prefix>!lease keeps its link (waiters then hear fills as invalidations, and a release
     * at the lease's expiry), with one warning. */
    char why[160];
    int rc = ask(c, sk, &sub2, NULL, why, sizeof why);
    if (rc == -1) {
        strata__sock_close(sk);
        snprintf(err, cap, "%s", why);
        return NULL;
    }
    if (rc == -2) {
        if (!c->lease_warned) {
            char line[400];
            snprintf(line, sizeof line,
                     "lease channel %s not subscribed (%.160s): waiters hear "
                     "fills only",
                     c->channel, why);
            c->d.log(c->d.arg, 1, line);
            c->lease_warned = 1;
        }
    }
    return sk;
}

/* Waits up to ms for the link fd or a stop. Returns -1 to stop, 1 readable, 0 timeout. */
static int wait_for(redis_link *c, int fd, int ms)
{
    int readable = strata__waker_sleep(&c->w, ms, fd);
    return strata__waker_stopping(&c->w) ? -1 : readable;
}

/* Serves one live link until it fails or we are told to stop. Returns -1 to stop. */
static int serve(redis_link *c, redis_sock *sk, uint64_t gen)
{
    uint64_t ping_sent = 0;
    uint64_t patience = COHERENCE_PING_MS + (c->d.socket_timeout_ms ? c->d.socket_timeout_ms : 250);
    uint64_t next_ping = strata__mono_ms() + COHERENCE_PING_MS;
    for (;;) {
        redisReply *r = NULL;
        int rc;
        while ((rc = strata__sock_reply(sk, &r)) == 0 && r != NULL) {
            if (handle(c, r))
                ping_sent = 0;
            freeReplyObject(r);
        }
        if (rc != 0)
            return 0;
        uint64_t now = strata__mono_ms();
        if (ping_sent != 0 && now - ping_sent > patience)
            return 0; /* the link stalled: no answer to the keep-alive */
        if (c->d.gen(c->d.arg) != gen)
            return 0; /* a new primary: listen there */
        if (ping_sent == 0 && now >= next_ping) {
            c->d.idle(c->d.arg); /* a promoted replica takes writes again */
            redis_cmd ping = {.argc = 1, .argv = {"PING"}, .argvlen = {4}};
            if (strata__sock_send(sk, &ping, (unsigned)patience) != 0)
                return 0;
            ping_sent = now;
            next_ping = now + COHERENCE_PING_MS;
        }
        int w = wait_for(c, strata__sock_fd(sk), COHERENCE_PING_MS / 2);
        if (w < 0)
            return -1;
        if (w > 0 && strata__sock_read(sk) != 0)
            return 0;
    }
}

static void *link_main(void *arg)
{
    redis_link *c = arg;
    unsigned backoff = 50;
    char err[160];
    while (!strata__waker_stopping(&c->w)) {
        uint64_t gen = c->d.gen(c->d.arg);
        redis_sock *sk = subscribe(c, err, sizeof err);
        if (sk == NULL) {
            c->d.note_error(c->d.arg, err);
            if (wait_for(c, -1, (int)backoff) < 0)
                break;
            backoff = backoff * 2 > 1000 ? 1000 : backoff * 2;
            continue;
        }
        backoff = 50;
        /* Whatever the owner kept may have missed changes while we were not listening. */
        if (c->ev->link_up != NULL)
            c->ev->link_up(c->ev->arg);
        atomic_store(&c->up, 1);
        if (atomic_load(&c->drops) > 0)
            c->d.log(c->d.arg, 2, "invalidation link back: L1 trusted again (dropped whole)");
        int rc = serve(c, sk, gen);
        atomic_store(&c->up, 0);
        strata__sock_close(sk);
        if (rc < 0)
            break;
        if (c->ev->link_down != NULL)
            c->ev->link_down(c->ev->arg);
        atomic_fetch_add(&c->drops, 1);
        c->d.note_error(c->d.arg, "invalidation link lost");
        c->d.log(c->d.arg, 1,
                 "invalidation link lost: L1 copies are not served until it is "
                 "back");
    }
    return NULL;
}

int strata__link_start(const link_deps *deps, const char *prefix, redis_link **out)
{
    redis_link *c = calloc(1, sizeof *c);
    if (c == NULL)
        return STRATA_ENOMEM;
    c->d = *deps;
    c->ev = deps->ev;
    snprintf(c->prefix, sizeof c->prefix, "%s", prefix);
    char bare[STRATA_PREFIX_MAX + 1]; /* the prefix without its ':' */
    snprintf(bare, sizeof bare, "%.*s", (int)(strlen(c->prefix) - 1), c->prefix);
    if (strata__lease_channel_build(bare, c->channel, sizeof c->channel, &c->channel_len) != 0) {
        free(c);
        return STRATA_EINVAL;
    }
    int rc = strata__waker_start(&c->w, link_main, c);
    if (rc != 0) {
        free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void strata__link_stop(redis_link *c)
{
    if (c == NULL)
        return;
    strata__waker_stop(&c->w);
    free(c);
}

int strata__link_up(redis_link *c)
{
    return c != NULL && atomic_load(&c->up);
}

uint64_t strata__link_invalidations(redis_link *c)
{
    return c ? atomic_load(&c->invalidations) : 0;
}

uint64_t strata__link_drops(redis_link *c)
{
    return c ? atomic_load(&c->drops) : 0;
}
