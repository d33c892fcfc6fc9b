/* cache/touch.c: strata_cache_touch and strata_cache_expire: a value's times change in place,
 * without rewriting it (a touch starts its life again from now; an expire ends it now).
 *
 * Why not read then write the value again: that write carries what was read, so a write from
 * another client landing in between is undone by it (a session read sliding its TTL would bring
 * back the cart the user just emptied). A touch only changes times: in Redis one Lua script
 * rewrites the stored header's created and expires fields in place (SETRANGE: they sit at fixed
 * offsets, see format.c) and sets the key's expiry to the new one plus what the entry is kept for
 * past it, all atomically; whatever value is there at that moment keeps its bytes. In L1 the entry
 * is restamped under its shard lock, the same way.
 *
 * With Redis the L1 copy is dropped instead of restamped: the touch's own invalidation would drop
 * it anyway (redis/link.c: every write's comes back), and the next read takes the new times from
 * Redis. The script goes through redis/script.c (EVALSHA, then EVAL once on NOSCRIPT); the same
 * code serves the synchronous and asynchronous calls, over whichever tier they use.
 *
 * An expire (a soft purge) is the same operation with another script: it rewrites only the
 * expires field, to now, and sets the key's expiry to what the entry is kept for past it, so the
 * value is stale from now on, within windows that keep their lengths and count from now (and
 * gone at once when it has none: a version 1 entry without a grace). It also runs over
 * several keys for strata_cache_expire_any (strata__expire_scan, below), one SCAN pass.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <strata/cache.h>
#include <strata/errors.h>

#include "cache/cache_internal.h"
#include "cache/format.h"
#include "cache/touch.h"
#include "l1/l1_internal.h"

/* KEYS[1] the entry; ARGV[1] the newest format version (decimal: 1 to it are read; the fields
 * read and written sit at the same offsets in each), ARGV[2] created and expires (16 bytes,
 * little-endian), ARGV[3] the new TTL in ms, ARGV[4] now in ms (decimal). Returns 1 if touched, 0
 * if there is no fresh entry: none, one past its expiry (kept only for its stale windows: a touch
 * does not revive it, as L1's does not), or one in a format this code does not know. */
_Static_assert(STRATA_FORMAT_TIMES_OFF == 2, "the touch script rewrites the times at offset 2");
static redis_script touch_script = REDIS_SCRIPT(
    "local h = redis.call('GETRANGE', KEYS[1], 0, 25)\n"
    "if string.len(h) < 26 or string.byte(h, 1) < 1 or string.byte(h, 1) > tonumber(ARGV[1])\n"
    "then return 0 end\n"
    "local expires, keep = 0, 0\n"
    "for i = 18, 11, -1 do expires = expires * 256 + string.byte(h, i) end\n"
    "if expires ~= 0 and expires <= tonumber(ARGV[4]) then return 0 end\n"
    "for i = 26, 19, -1 do keep = keep * 256 + string.byte(h, i) end\n"
    "redis.call('SETRANGE', KEYS[1], 2, ARGV[2])\n"
    "redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) + keep)\n"
    "return 1\n");

/* KEYS[1] the entry; ARGV[1] the newest format version, ARGV[2] now in ms (decimal), ARGV[3] now
 * as the expires field (8 bytes, little-endian). Returns 1 if the entry was fresh and is now
 * stale (or gone, with no window to be stale in), 2 if it was stale already (its times are left:
 * a soft purge never lengthens a stale life), 0 if there is no entry to purge: none, one past its
 * windows, or one in a format this code does not know. */
_Static_assert(STRATA_FORMAT_KEEP_OFF == 18, "the expire script reads keep at offset 18");
static redis_script expire_script = REDIS_SCRIPT(
    "local h = redis.call('GETRANGE', KEYS[1], 0, 25)\n"
    "if string.len(h) < 26 or string.byte(h, 1) < 1 or string.byte(h, 1) > tonumber(ARGV[1])\n"
    "then return 0 end\n"
    "local expires, keep, now = 0, 0, tonumber(ARGV[2])\n"
    "for i = 18, 11, -1 do expires = expires * 256 + string.byte(h, i) end\n"
    "for i = 26, 19, -1 do keep = keep * 256 + string.byte(h, i) end\n"
    "if expires ~= 0 and expires <= now then\n"
    "  if now - expires < keep then return 2 end\n"
    "  return 0\n"
    "end\n"
    "if keep == 0 then redis.call('DEL', KEYS[1]) return 1 end\n"
    "redis.call('SETRANGE', KEYS[1], 10, ARGV[3])\n"
    "redis.call('PEXPIRE', KEYS[1], keep)\n"
    "return 1\n");

/* The longest TTL a touch gives: the HTTP API's ten years. */
#define TOUCH_TTL_MAX_MS (10ull * 365 * 24 * 3600 * 1000)

typedef struct touch_op {
    strata_cache *c;
    strata_key k; /* points into the buffers below */
    char ns[STRATA_NAME_MAX + 1], tenant[STRATA_NAME_MAX + 1], user[STRATA_KEY_MAX_LIMIT];
    uint64_t ttl_ms, now; /* ttl_ms 0: an expire */
    strata_done_cb cb;
    void *arg;
    tier t;
    int in_call, done, status; /* completed before the call returned: see twotier.c */
    int reason;                /* why it was answered by L1 alone (STRATA_REASON_*) */
} touch_op;

/* The script's answer: 0 touched (or purged), STRATA_ENOTFOUND, or an error
 * (strata__reply_error's, or STRATA_EPROTO for an answer that is not the script's). An expire
 * (expire set) that made a fresh value stale counts in c's stats. */
static int decode(strata_cache *c, int expire, const redisReply *r)
{
    if (r->type == REDIS_REPLY_ERROR)
        return strata__reply_error(r);
    if (r->type != REDIS_REPLY_INTEGER || r->integer < 0 || r->integer > 2)
        return STRATA_EPROTO;
    if (r->integer == 1 && expire)
        atomic_fetch_add(&c->expired_soft, 1);
    return r->integer != 0 ? 0 : STRATA_ENOTFOUND;
}

/* This instance's copy of k, retimed as the operation says: restamped for a touch (ttl_ms),
 * expired now for an expire (ttl_ms 0); only_pinned as strata__l1_restamp's. */
static int retime_l1(strata_cache *c, const strata_key *k, uint64_t ttl_ms, uint64_t now,
                     int only_pinned)
{
    return ttl_ms != 0 ? strata__l1_restamp(c->l1, k, ttl_ms, now, only_pinned)
                       : strata__l1_expire(c->l1, k, now, only_pinned);
}

/* What L1 does once Redis answered (rc: decode's, or tier t's failure), and the operation's final
 * status; *reason says why when that is STRATA_OK_L1_ONLY. */
static int settle(strata_cache *c, tier t, const strata_key *k, uint64_t ttl_ms, uint64_t now,
                  int rc, int *reason)
{
    *reason = STRATA_REASON_NONE;
    /* A pinned copy was written to L1 alone (Redis could not take it): it is newer than anything
     * Redis holds, so it is the one to touch, whatever Redis said; deleting it would lose it. */
    if (retime_l1(c, k, ttl_ms, now, 1) == 0) {
        *reason =
            rc == 0 || rc == STRATA_ENOTFOUND ? STRATA_REASON_L1_COPY : strata__reason_of(t, rc);
        return STRATA_OK_L1_ONLY;
    }
    if (rc == 0 || rc == STRATA_ENOTFOUND) {
        strata_l1_del(c->l1, k, now); /* the next read takes Redis' times (or its absence) */
        return rc;
    }
    if (rc == STRATA_EUNAVAILABLE || rc == STRATA_ETIMEDOUT || rc == STRATA_EREADONLY) {
        /* Redis cannot be asked: reads are served from this instance's copy until it is back. */
        atomic_fetch_add(&c->fallbacks, 1);
        int l1rc = retime_l1(c, k, ttl_ms, now, 0);
        *reason = strata__reason_of(t, rc);
        return l1rc == 0 ? STRATA_OK_L1_ONLY : l1rc;
    }
    /* Redis answered with an error (an ACL without the script's commands, OOM, BUSY): nothing
     * was touched, and L1 must not pretend otherwise (its copy would look fresh while Redis'
     * expires): the caller sees the error. */
    return rc;
}

static void finish(touch_op *o, int rc)
{
    rc = settle(o->c, o->t, &o->k, o->ttl_ms, o->now, rc, &o->reason);
    if (o->in_call) {
        o->done = 1, o->status = rc;
        return;
    }
    strata__reason_set(o->reason);
    if (o->cb != NULL)
        o->cb(rc, o->arg);
    free(o);
}

static void got_reply(int status, redisReply **r, size_t n, void *arg)
{
    (void)n;
    touch_op *o = arg;
    finish(o, status != 0 ? status : decode(o->c, o->ttl_ms == 0, r[0]));
}

/* Copies k into o, so the caller's key may go once the call returns. */
static void keep_key(touch_op *o, const strata_key *k)
{
    snprintf(o->ns, sizeof o->ns, "%s", k->ns);
    snprintf(o->tenant, sizeof o->tenant, "%s", k->tenant ? k->tenant : "");
    memcpy(o->user, k->key, k->len);
    o->k.ns = o->ns;
    o->k.tenant = k->tenant ? o->tenant : NULL;
    o->k.key = o->user;
    o->k.len = k->len;
}

/* A touch (ttl_ms > 0) or an expire (ttl_ms 0) of k over tier t. */
static int retime(strata_cache *c, tier t, const strata_key *k, uint64_t ttl_ms, uint64_t now,
                  strata_done_cb cb, void *arg)
{
    l1_addr a;
    int rc = strata__l1_resolve(c->l1, k, &a);
    if (rc != 0)
        return rc;
    if (t.ops == NULL)
        return retime_l1(c, k, ttl_ms, now, 0);
    if (t.ops->readonly(t.self)) {
        int reason;
        rc = settle(c, t, k, ttl_ms, now, STRATA_EREADONLY, &reason);
        strata__reason_set(reason);
        return rc;
    }
    touch_op *o = malloc(sizeof *o);
    if (o == NULL)
        return STRATA_ENOMEM;
    keep_key(o, k);
    o->c = c, o->t = t, o->ttl_ms = ttl_ms, o->now = now, o->cb = cb, o->arg = arg;
    o->in_call = 1, o->done = 0, o->reason = STRATA_REASON_NONE;
    char version[4], stamp[16], ttl[24], when[24];
    snprintf(version, sizeof version, "%d", STRATA_FORMAT_VERSION);
    snprintf(when, sizeof when, "%llu", (unsigned long long)now);
    if (ttl_ms != 0) {
        strata__format_times(now, now + ttl_ms, stamp);
        snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)ttl_ms);
        const char *args[] = {"1", a.buf, version, stamp, ttl, when};
        size_t lens[] = {1, a.len, strlen(version), 16, strlen(ttl), strlen(when)};
        rc = t.ops->script(t.self, &touch_script, 6, args, lens, got_reply, o);
    } else {
        strata__format_times(0, now, stamp); /* the expires field: stamp + 8 */
        const char *args[] = {"1", a.buf, version, when, stamp + 8};
        size_t lens[] = {1, a.len, strlen(version), strlen(when), 8};
        rc = t.ops->script(t.self, &expire_script, 5, args, lens, got_reply, o);
    }
    if (rc != STRATA_PENDING) { /* refused at once: this instance's copy is what can be retimed */
        o->status = settle(c, t, &o->k, ttl_ms, now, rc, &o->reason);
        o->done = 1; /* what finish() does within the call, without a path that frees o */
    }
    o->in_call = 0;
    if (!o->done)
        return STRATA_PENDING;
    rc = o->status;
    strata__reason_set(o->reason);
    free(o);
    return rc;
}

int strata__touch(strata_cache *c, tier t, const strata_key *k, uint64_t ttl_ms, uint64_t now,
                  strata_done_cb cb, void *arg)
{
    strata__reason_set(STRATA_REASON_NONE);
    if (ttl_ms == 0 || ttl_ms > TOUCH_TTL_MAX_MS)
        return STRATA_EINVAL;
    return retime(c, t, k, ttl_ms, now, cb, arg);
}

int strata__expire(strata_cache *c, tier t, const strata_key *k, uint64_t now, strata_done_cb cb,
                   void *arg)
{
    strata__reason_set(STRATA_REASON_NONE);
    return retime(c, t, k, 0, now, cb, arg);
}

/* ---- expire_any: the Redis half ------------------------------------------------------------ */

typedef struct expire_page {
    int (*keep)(const char *, size_t, void *);
    void *arg;
    char **keys; /* the page's keys keep() accepts, copied (the reply goes with the page) */
    size_t *lens, n, cap;
    int nomem;
} expire_page;

static int collect(const char *key, size_t len, void *arg)
{
    expire_page *p = arg;
    if (p->nomem || !p->keep(key, len, p->arg))
        return 0;
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        char **k = realloc(p->keys, cap * sizeof *k);
        if (k != NULL)
            p->keys = k;
        size_t *l = k != NULL ? realloc(p->lens, cap * sizeof *l) : NULL;
        if (l == NULL) {
            p->nomem = 1;
            return 0;
        }
        p->lens = l, p->cap = cap;
    }
    if ((p->keys[p->n] = malloc(len)) == NULL) {
        p->nomem = 1;
        return 0;
    }
    memcpy(p->keys[p->n], key, len);
    p->lens[p->n++] = len;
    return 0;
}

/* The expire script on one key, EVALSHA then EVAL on NOSCRIPT; *hit: it made a value stale. */
static int expire_one(strata_cache *c, const char *key, size_t len, const char *const *argv,
                      const size_t *lens, int *hit)
{
    const char *args[] = {"1", key, argv[0], argv[1], argv[2]};
    size_t l[] = {1, len, lens[0], lens[1], lens[2]};
    redisReply *r;
    int rc = strata__script_run(c->redis, &expire_script, 5, args, l, &r);
    if (rc != 0)
        return rc;
    rc = decode(c, 1, r);
    *hit = rc == 0 && r->integer == 1;
    freeReplyObject(r);
    return rc == STRATA_ENOTFOUND ? 0 : rc;
}

/* Expires a page's keys: the first through strata__script_run (which loads the script if Redis
 * lost it), the others as one pipelined batch of EVALSHA (one round trip for the page). */
static int expire_batch(strata_cache *c, expire_page *p, uint64_t now, size_t *expired)
{
    char version[4], when[24], stamp[16];
    snprintf(version, sizeof version, "%d", STRATA_FORMAT_VERSION);
    snprintf(when, sizeof when, "%llu", (unsigned long long)now);
    strata__format_times(0, now, stamp);
    const char *argv[] = {version, when, stamp + 8};
    size_t lens[] = {strlen(version), strlen(when), 8};
    int hit = 0, rc = expire_one(c, p->keys[0], p->lens[0], argv, lens, &hit);
    *expired += (size_t)hit;
    if (rc != 0 || p->n == 1)
        return rc;
    size_t n = p->n - 1;
    redis_cmd *cmds = calloc(n, sizeof *cmds);
    redisReply **replies = calloc(n, sizeof *replies);
    if (cmds == NULL || replies == NULL) {
        free(cmds), free(replies);
        return STRATA_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        redis_cmd *m = &cmds[i];
        const char *a[] = {"EVALSHA", expire_script.sha, "1", p->keys[i + 1], version,
                           when,      stamp + 8};
        size_t l[] = {7, 40, 1, p->lens[i + 1], lens[0], lens[1], 8};
        m->argc = 7;
        memcpy(m->argv, a, sizeof a);
        memcpy(m->argvlen, l, sizeof l);
    }
    rc = strata__redis_run(c->redis, cmds, n, replies);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        redisReply *r = replies[i];
        int one = r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0
                      ? expire_one(c, p->keys[i + 1], p->lens[i + 1], argv, lens, &hit)
                      : (hit = r->type == REDIS_REPLY_INTEGER && r->integer == 1, decode(c, 1, r));
        if (one != 0 && one != STRATA_ENOTFOUND)
            rc = one;
        else
            *expired += (size_t)hit;
    }
    for (size_t i = 0; i < n; i++)
        if (replies[i] != NULL)
            freeReplyObject(replies[i]);
    free(cmds), free(replies);
    return rc;
}

int strata__expire_scan(strata_cache *c, const char *match,
                        int (*keep)(const char *, size_t, void *), void *arg, uint64_t now,
                        size_t *expired)
{
    char cursor[32] = "0";
    expire_page p = {.keep = keep, .arg = arg};
    int rc = 0;
    *expired = 0;
    do {
        size_t found;
        rc = strata__redis_scan_page(c->redis, cursor, match, "1000", collect, &p, cursor,
                                     sizeof cursor, &found);
        if (rc == 0 && p.nomem)
            rc = STRATA_ENOMEM;
        if (rc == 0 && p.n > 0)
            rc = expire_batch(c, &p, now, expired);
        for (size_t i = 0; i < p.n; i++)
            free(p.keys[i]);
        p.n = 0;
    } while (rc == 0 && strcmp(cursor, "0") != 0);
    free(p.keys), free(p.lens);
    return rc;
}
