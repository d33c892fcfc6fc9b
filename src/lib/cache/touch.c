/* touch.c: strata_cache_touch: a value's life starts again from now, without rewriting it.
 *
 * Why not read then write the value again: that write carries what was read, so a write from
 * another client landing in between is undone by it (a session read sliding its TTL would bring
 * back the cart the user just emptied). A touch only changes times: in Redis one Lua script
 * rewrites the stored header's created and expires fields in place (SETRANGE: they sit at fixed
 * offsets, see format.c) and sets the key's expiry to the new one plus the entry's grace, all
 * atomically; whatever value is there at that moment keeps its bytes. In L1 the entry is
 * restamped under its shard lock, the same way.
 *
 * With Redis the L1 copy is dropped instead of restamped: the touch's own invalidation would drop
 * it anyway (coherence.c: every write's comes back), and the next read takes the new times from
 * Redis. The script is sent by its SHA-1 (EVALSHA) and whole once when Redis answers NOSCRIPT,
 * as the rate limiter's is.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>
#include <strata/cache.h>
#include <strata/errors.h>

#include "cache/cache_internal.h"
#include "cache/format.h"
#include "l1/l1_internal.h"
#include "redis/l2.h"
#include "redis/l2_cmd.h"

/* KEYS[1] the entry; ARGV[1] the format version (decimal), ARGV[2] created and expires (16 bytes,
 * little-endian), ARGV[3] the new TTL in ms, ARGV[4] now in ms (decimal). Returns 1 if touched, 0
 * if there is no fresh entry: none, one past its expiry (kept only for its grace period: a touch
 * does not revive it, as L1's does not), or one in a format this code does not know. */
_Static_assert(STRATA_FORMAT_TIMES_OFF == 2, "the touch script rewrites the times at offset 2");
static const char touch_script[] =
    "local h = redis.call('GETRANGE', KEYS[1], 0, 25)\n"
    "if string.len(h) < 26 or string.byte(h, 1) ~= tonumber(ARGV[1]) then return 0 end\n"
    "local expires, grace = 0, 0\n"
    "for i = 18, 11, -1 do expires = expires * 256 + string.byte(h, i) end\n"
    "if expires ~= 0 and expires <= tonumber(ARGV[4]) then return 0 end\n"
    "for i = 26, 19, -1 do grace = grace * 256 + string.byte(h, i) end\n"
    "redis.call('SETRANGE', KEYS[1], 2, ARGV[2])\n"
    "redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) + grace)\n"
    "return 1\n";

/* The longest TTL a touch gives: the HTTP API's ten years. */
#define TOUCH_TTL_MAX_MS (10ull * 365 * 24 * 3600 * 1000)

static char script_sha[41];
static pthread_once_t sha_once = PTHREAD_ONCE_INIT;

static void compute_sha(void)
{
    unsigned char d[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)touch_script, sizeof touch_script - 1, d);
    for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
        snprintf(script_sha + 2 * i, 3, "%02x", d[i]);
}

/* One touch's command and the storage its arguments point into. */
typedef struct touch_cmd {
    l2_cmd cmd;
    char key[STRATA_STORED_KEY_MAX(STRATA_KEY_MAX_LIMIT)];
    char version[4], stamp[16], ttl[24], now[24];
} touch_cmd;

/* Fills t for k: EVALSHA when by_sha, else EVAL with the script itself. */
static void build(strata_cache *c, const strata_key *k, uint64_t ttl_ms, uint64_t now, int by_sha,
                  touch_cmd *t)
{
    pthread_once(&sha_once, compute_sha);
    size_t klen;
    uint64_t hash;
    strata__l1_build_key(c->l1, k, t->key, sizeof t->key, &klen, &hash);
    snprintf(t->version, sizeof t->version, "%d", STRATA_FORMAT_VERSION);
    strata__format_times(now, now + ttl_ms, t->stamp);
    snprintf(t->ttl, sizeof t->ttl, "%llu", (unsigned long long)ttl_ms);
    snprintf(t->now, sizeof t->now, "%llu", (unsigned long long)now);
    l2_cmd *m = &t->cmd;
    memset(m, 0, sizeof *m);
    const char *argv[8] = {by_sha ? "EVALSHA" : "EVAL",
                           by_sha ? script_sha : touch_script,
                           "1",
                           t->key,
                           t->version,
                           t->stamp,
                           t->ttl,
                           t->now};
    size_t lens[8] = {by_sha ? 7u : 4u,
                      by_sha ? 40 : sizeof touch_script - 1,
                      1,
                      klen,
                      strlen(t->version),
                      16,
                      strlen(t->ttl),
                      strlen(t->now)};
    m->argc = 8;
    for (int i = 0; i < 8; i++)
        m->argv[i] = argv[i], m->argvlen[i] = lens[i];
}

/* The script's answer: 0 touched, STRATA_ENOTFOUND, 1 for NOSCRIPT (send it whole), or another
 * error (Redis failed: the caller falls back to L1). */
static int decode(const redisReply *r)
{
    if (r == NULL)
        return STRATA_EUNAVAILABLE;
    if (r->type == REDIS_REPLY_ERROR) {
        if (strncmp(r->str, "NOSCRIPT", 8) == 0)
            return 1;
        return strata__reply_error(r);
    }
    if (r->type != REDIS_REPLY_INTEGER)
        return STRATA_EPROTO;
    return r->integer == 1 ? 0 : STRATA_ENOTFOUND;
}

/* What L1 does once Redis answered (rc: decode's), and the touch's final status. */
static int settle(strata_cache *c, const strata_key *k, uint64_t ttl_ms, uint64_t now, int rc)
{
    /* A pinned copy was written to L1 alone (Redis could not take it): it is newer than anything
     * Redis holds, so it is the one to touch, whatever Redis said; deleting it would lose it. */
    if (strata__l1_restamp(c->l1, k, ttl_ms, now, 1) == 0)
        return STRATA_OK_L1_ONLY;
    if (rc == 0 || rc == STRATA_ENOTFOUND) {
        strata_l1_del(c->l1, k, now); /* the next read takes Redis' times (or its absence) */
        return rc;
    }
    if (rc == STRATA_EUNAVAILABLE || rc == STRATA_ETIMEDOUT || rc == STRATA_EREADONLY) {
        /* Redis cannot be asked: reads are served from this instance's copy until it is back. */
        atomic_fetch_add(&c->fallbacks, 1);
        int l1rc = strata__l1_restamp(c->l1, k, ttl_ms, now, 0);
        return l1rc == 0 ? STRATA_OK_L1_ONLY : l1rc;
    }
    /* Redis answered with an error (an ACL without the script's commands, OOM, BUSY): nothing
     * was touched, and L1 must not pretend otherwise (its copy would look fresh while Redis'
     * expires): the caller sees the error. */
    return rc;
}

/* Checks k and ttl_ms. Returns 0, or the error every touch of them would give. */
static int check(strata_cache *c, const strata_key *k, uint64_t ttl_ms)
{
    if (ttl_ms == 0 || ttl_ms > TOUCH_TTL_MAX_MS)
        return STRATA_EINVAL;
    char key[STRATA_STORED_KEY_MAX(STRATA_KEY_MAX_LIMIT)];
    size_t klen;
    uint64_t hash;
    return strata__l1_build_key(c->l1, k, key, sizeof key, &klen, &hash);
}

/* What is decided without asking Redis: a bad call, no Redis, Redis read-only. Returns 1 with
 * *rc set when decided here, 0 when Redis must be asked. */
static int decided_here(strata_cache *c, const strata_key *k, uint64_t ttl_ms, uint64_t now,
                        int *rc)
{
    if ((*rc = check(c, k, ttl_ms)) != 0)
        return 1;
    if (c->l2 == NULL) {
        *rc = strata__l1_restamp(c->l1, k, ttl_ms, now, 0);
        return 1;
    }
    if (strata__l2_readonly(c->l2)) {
        *rc = settle(c, k, ttl_ms, now, STRATA_EREADONLY);
        return 1;
    }
    return 0;
}

int strata_cache_touch(strata_cache *c, const strata_key *k, uint64_t ttl_ms)
{
    uint64_t now = strata_now_ms();
    int rc;
    if (decided_here(c, k, ttl_ms, now, &rc))
        return rc;
    for (int attempt = 0; attempt < 2; attempt++) {
        touch_cmd t;
        build(c, k, ttl_ms, now, attempt == 0, &t);
        redisReply *r;
        int recovered;
        rc = strata__l2_run(c->l2, &t.cmd, &r, &recovered);
        strata__cache_recovered(c, recovered);
        if (rc != 0)
            return settle(c, k, ttl_ms, now, rc);
        rc = decode(r);
        freeReplyObject(r);
        if (rc != 1)
            return settle(c, k, ttl_ms, now, rc);
    }
    return settle(c, k, ttl_ms, now, STRATA_EPROTO); /* NOSCRIPT after EVAL: not Redis */
}

/* ---- asynchronous ------------------------------------------------------------------------- */

typedef struct touch_op {
    strata_loop *lp;
    strata_key k; /* points into the buffers below */
    char ns[STRATA_NAME_MAX + 1], tenant[STRATA_NAME_MAX + 1], user[STRATA_KEY_MAX_LIMIT];
    uint64_t ttl_ms, now;
    int attempt;
    touch_cmd t;
    strata_done_cb cb;
    void *arg;
} touch_op;

static void on_reply(const redisReply *r, void *arg)
{
    touch_op *o = arg;
    strata_cache *c = strata__loop_cache(o->lp);
    int rc = decode(r);
    if (rc == 1 && o->attempt++ == 0) { /* NOSCRIPT: send the script itself */
        build(c, &o->k, o->ttl_ms, o->now, 0, &o->t);
        if (strata__loop_send(o->lp, &o->t.cmd, on_reply, o) == STRATA_PENDING)
            return;
        rc = STRATA_EUNAVAILABLE;
    } else if (rc == 1) {
        rc = STRATA_EPROTO;
    }
    rc = settle(c, &o->k, o->ttl_ms, o->now, rc);
    o->cb(rc, o->arg);
    free(o);
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

int strata_cache_touch_async(strata_loop *lp, const strata_key *k, uint64_t ttl_ms,
                             strata_done_cb cb, void *arg)
{
    strata_cache *c = strata__loop_cache(lp);
    uint64_t now = strata_now_ms();
    int rc;
    if (decided_here(c, k, ttl_ms, now, &rc))
        return rc;
    touch_op *o = malloc(sizeof *o);
    if (o == NULL)
        return STRATA_ENOMEM;
    keep_key(o, k);
    o->lp = lp, o->ttl_ms = ttl_ms, o->now = now, o->attempt = 0, o->cb = cb, o->arg = arg;
    build(c, &o->k, ttl_ms, now, 1, &o->t);
    if (strata__loop_send(lp, &o->t.cmd, on_reply, o) == STRATA_PENDING)
        return STRATA_PENDING;
    free(o);
    return settle(c, k, ttl_ms, now, STRATA_EUNAVAILABLE);
}
