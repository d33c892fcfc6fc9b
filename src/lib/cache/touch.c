/* cache/touch.c: strata_cache_touch: a value's life starts again from now, without rewriting it.
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

/* The longest TTL a touch gives: the HTTP API's ten years. */
#define TOUCH_TTL_MAX_MS (10ull * 365 * 24 * 3600 * 1000)

typedef struct touch_op {
    strata_cache *c;
    strata_key k; /* points into the buffers below */
    char ns[STRATA_NAME_MAX + 1], tenant[STRATA_NAME_MAX + 1], user[STRATA_KEY_MAX_LIMIT];
    uint64_t ttl_ms, now;
    strata_done_cb cb;
    void *arg;
    tier t;
    int in_call, done, status; /* completed before the call returned: see twotier.c */
    int reason;                /* why it was answered by L1 alone (STRATA_REASON_*) */
} touch_op;

/* The script's answer: 0 touched, STRATA_ENOTFOUND, or an error (strata__reply_error's, or
 * STRATA_EPROTO for an answer that is not the script's). */
static int decode(const redisReply *r)
{
    if (r->type == REDIS_REPLY_ERROR)
        return strata__reply_error(r);
    if (r->type != REDIS_REPLY_INTEGER)
        return STRATA_EPROTO;
    return r->integer == 1 ? 0 : STRATA_ENOTFOUND;
}

/* What L1 does once Redis answered (rc: decode's, or tier t's failure), and the touch's final
 * status; *reason says why when that is STRATA_OK_L1_ONLY. */
static int settle(strata_cache *c, tier t, const strata_key *k, uint64_t ttl_ms, uint64_t now,
                  int rc, int *reason)
{
    *reason = STRATA_REASON_NONE;
    /* A pinned copy was written to L1 alone (Redis could not take it): it is newer than anything
     * Redis holds, so it is the one to touch, whatever Redis said; deleting it would lose it. */
    if (strata__l1_restamp(c->l1, k, ttl_ms, now, 1) == 0) {
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
        int l1rc = strata__l1_restamp(c->l1, k, ttl_ms, now, 0);
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
    finish(o, status != 0 ? status : decode(r[0]));
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

int strata__touch(strata_cache *c, tier t, const strata_key *k, uint64_t ttl_ms, uint64_t now,
                  strata_done_cb cb, void *arg)
{
    strata__reason_set(STRATA_REASON_NONE);
    if (ttl_ms == 0 || ttl_ms > TOUCH_TTL_MAX_MS)
        return STRATA_EINVAL;
    l1_addr a;
    int rc = strata__l1_resolve(c->l1, k, &a);
    if (rc != 0)
        return rc;
    if (t.ops == NULL)
        return strata__l1_restamp(c->l1, k, ttl_ms, now, 0);
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
    strata__format_times(now, now + ttl_ms, stamp);
    snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)ttl_ms);
    snprintf(when, sizeof when, "%llu", (unsigned long long)now);
    const char *args[] = {"1", a.buf, version, stamp, ttl, when};
    size_t lens[] = {1, a.len, strlen(version), 16, strlen(ttl), strlen(when)};
    rc = t.ops->script(t.self, &touch_script, 6, args, lens, got_reply, o);
    if (rc != STRATA_PENDING)
        finish(o, rc); /* refused at once: this instance's copy is what can be touched */
    o->in_call = 0;
    if (!o->done)
        return STRATA_PENDING;
    rc = o->status;
    strata__reason_set(o->reason);
    free(o);
    return rc;
}
