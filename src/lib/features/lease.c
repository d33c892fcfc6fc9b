/* features/lease.c: leases: one caller among all instances computes a missing value.
 *
 * A lease is a key beside the value key (core/key.c builds it: outside the tracked "<prefix>:"
 * space, in the value key's Redis Cluster slot), holding the holder's token and expiring after
 * lease_ms. Four Lua scripts act on it, each atomic and touching only keys of that one slot:
 * acquire (in MISS mode, a fresh value answers "a value is there"; else SET NX PX, or the time
 * left on the holder's lease), release (compare-and-delete), extend (compare-and-PEXPIRE) and
 * fill (compare, SET the value, delete the lease). Release and fill publish the value's stored
 * key on "<prefix>!lease", where waiters (the next step) will listen.
 *
 * The fill is the cache's own write: cache/twotier.c builds the entry exactly as a set does (TTL
 * rules, jitter, tag versions, the stored format) and sends the fill script instead of SET
 * (strata__tt_set_via), so the value a holder fills is the value a set would have stored, and L1
 * links it the same way. The scripts go through redis/script.c (EVALSHA, then EVAL once on
 * NOSCRIPT) over the cache's tiers: the pool for the synchronous calls, a loop's connection for
 * the asynchronous ones, one code path for both.
 *
 * When Redis is not configured, read-only, or cannot answer, leases fall back to this process:
 * lease_table.c gives each key's lease to one caller of the process. Its tokens are marked
 * (core/token.h), so each token is checked by its issuer alone: a lease taken while Redis was away
 * is released, extended and filled in the table (a stale one refused there even while Redis is
 * still away, never written over a newer holder's), any other by Redis. With Redis up, acquires
 * go to Redis alone.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <strata/errors.h>
#include <strata/lease.h>

#include "cache/cache_internal.h"
#include "cache/format.h"
#include "cache/twotier.h"
#include "core/tag_key.h"
#include "core/token.h"
#include "features/lease_internal.h"
#include "l1/l1_internal.h"
#include "redis/script.h"

_Static_assert(STRATA_LEASE_TOKEN_LEN == STRATA__TOKEN_LEN, "lease tokens are core/token.c's");
_Static_assert(STRATA_FORMAT_TIMES_OFF == 2, "the acquire script reads expires at offset 10");

/* KEYS[1] the value, KEYS[2] its lease; ARGV[1] token, ARGV[2] lease ms, ARGV[3] "1": MISS mode,
 * ARGV[4] the newest stored format version (1 to it are read), ARGV[5] now (ms). {1, 0}: granted;
 * {2, 0}: a fresh value is stored (MISS mode; known format, expires 0 or after now: the header's
 * bytes 10..17, little-endian); {0, PTTL}: held by another. */
static redis_script acquire_script = REDIS_SCRIPT(
    "if ARGV[3] == '1' then\n"
    "  local h = redis.call('GETRANGE', KEYS[1], 0, 17)\n"
    "  local v = string.byte(h, 1)\n"
    "  if string.len(h) == 18 and v >= 1 and v <= tonumber(ARGV[4]) then\n"
    "    local expires = 0\n"
    "    for i = 18, 11, -1 do expires = expires * 256 + string.byte(h, i) end\n"
    "    if expires == 0 or expires > tonumber(ARGV[5]) then return {2, 0} end\n"
    "  end\n"
    "end\n"
    "if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {1, 0} end\n"
    "return {0, redis.call('PTTL', KEYS[2])}\n");

/* KEYS[1] the lease; ARGV[1] token, ARGV[2] the channel, ARGV[3] the value's key (the message).
 * 1: released; 0: not the holder's token. PUBLISH comes before the writes: a script that fails
 * midway keeps what it wrote, so a user whose ACL lacks the channel fails before changing
 * anything; and no subscriber can act on the message before the script has ended. */
static redis_script release_script =
    REDIS_SCRIPT("if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end\n"
                 "redis.call('PUBLISH', ARGV[2], ARGV[3])\n"
                 "redis.call('DEL', KEYS[1])\n"
                 "return 1\n");

/* KEYS[1] the lease; ARGV[1] token, ARGV[2] lease ms. 1: extended; 0: not the holder's token. */
static redis_script extend_script =
    REDIS_SCRIPT("if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end\n"
                 "redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
                 "return 1\n");

/* KEYS[1] the value, KEYS[2] its lease; ARGV[1] the encoded entry, ARGV[2] its PX ("0": none),
 * ARGV[3] token, ARGV[4] the channel (strata__tt_set_via's layout). 1: stored and released; 0:
 * not the holder's token, nothing changed. PUBLISH first, as in the release. */
static redis_script fill_script =
    REDIS_SCRIPT("if redis.call('GET', KEYS[2]) ~= ARGV[3] then return 0 end\n"
                 "redis.call('PUBLISH', ARGV[4], KEYS[1])\n"
                 "if ARGV[2] == '0' then redis.call('SET', KEYS[1], ARGV[1])\n"
                 "else redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end\n"
                 "redis.call('DEL', KEYS[2])\n"
                 "return 1\n");

/* The fill of a stale copy kept after a failed refresh (lease_fail.c): fill_script's layout, and
 * ARGV[5] the expires bytes (header offset 10..17) of the copy as the holder read it. 1: stored
 * and released; 0: not the holder's token; 2: another value was written since the copy was read
 * (its expires differ): nothing stored, the lease released. */
static redis_script keep_script =
    REDIS_SCRIPT("if redis.call('GET', KEYS[2]) ~= ARGV[3] then return 0 end\n"
                 "redis.call('PUBLISH', ARGV[4], KEYS[1])\n"
                 "local h = redis.call('GETRANGE', KEYS[1], 10, 17)\n"
                 "if string.len(h) == 8 and h ~= ARGV[5] then\n"
                 "  redis.call('DEL', KEYS[2])\n"
                 "  return 2\n"
                 "end\n"
                 "if ARGV[2] == '0' then redis.call('SET', KEYS[1], ARGV[1])\n"
                 "else redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end\n"
                 "redis.call('DEL', KEYS[2])\n"
                 "return 1\n");

/* Something changed about a key (an invalidation, a lease message) or every key: the flights
 * waiting for it look again. From the link's thread (or a test's fake Redis). */
static void on_change(int what, const char *key, size_t len, void *arg)
{
    (void)what;
    strata_leases *ls = arg;
    strata__flight_notify(ls->flights, key, len);
}

int strata_leases_new(strata_cache *c, strata_leases **out)
{
    *out = NULL;
    strata_leases *ls = calloc(1, sizeof *ls);
    if (ls == NULL)
        return STRATA_ENOMEM;
    ls->c = c;
    int rc = 0;
    if (strata__lease_table_new(STRATA_LEASE_LOCAL_MAX, &ls->local) != 0 ||
        strata__flight_table_new(STRATA_LEASE_FLIGHT_MAX, STRATA_LEASE_WAIT_MAX, &ls->flights) !=
            0 ||
        strata__lease_channel_build(strata__l1_prefix(c->l1), ls->channel, sizeof ls->channel,
                                    &ls->channel_len) != 0)
        rc = STRATA_ENOMEM;
    else
        rc = strata__cache_watch(c, on_change, ls);
    if (rc != 0) {
        strata__lease_table_free(ls->local);
        strata__flight_table_free(ls->flights);
        free(ls);
        return rc;
    }
    *out = ls;
    return 0;
}

void strata_leases_free(strata_leases *ls)
{
    if (ls == NULL)
        return;
    strata__cache_unwatch(ls->c, on_change, ls); /* first: the link's thread may be in it */
    strata__flight_table_free(ls->flights);
    strata__lease_table_free(ls->local);
    free(ls);
}

int strata__leases_flight_max(strata_leases *ls, size_t max_flights, size_t max_waiters)
{
    flight_table *t;
    if (strata__flight_table_new(max_flights, max_waiters, &t) != 0)
        return STRATA_ENOMEM;
    strata__flight_table_free(ls->flights);
    ls->flights = t;
    return 0;
}

int strata__leases_local_max(strata_leases *ls, size_t max)
{
    lease_table *t;
    if (strata__lease_table_new(max, &t) != 0)
        return STRATA_ENOMEM;
    strata__lease_table_free(ls->local);
    ls->local = t;
    return 0;
}

/* ---- one acquire, release or extend, over either tier ---------------------------------------- */

enum lease_kind { L_ACQUIRE, L_RELEASE, L_EXTEND };

typedef struct lease_call {
    strata_leases *ls;
    tier t;
    int kind, mode;
    uint64_t now, lease_ms;
    strata_lease_cb acb;
    strata_done_cb dcb;
    void *arg;
    int in_call, done, status; /* decided before the call returned: see cache/twotier.c */
    int on_stack;              /* the caller's: every answer comes before it returns (the pool) */
    strata_lease_grant g;      /* an acquire's answer; release and extend: the token given */
    l1_addr a;                 /* the value's stored key */
    strata_key k;              /* the caller's, or the copies below (a MISS acquire's fallback
                                  asks L1 whether a value is there) */
    char ns[STRATA_NAME_MAX + 1], tenant[STRATA_NAME_MAX + 1];
    char user[];
} lease_call;

/* A new call for k, its address resolved. Over a tier that answers before it returns (the pool;
 * no tier at all) it is the caller's stack and uses the caller's key; otherwise one allocation
 * with its own copy. Returns 0, STRATA_ENOMEM or a key error. */
static int new_call(strata_leases *ls, tier t, const strata_key *k, int kind, lease_call *stack,
                    lease_call **out)
{
    l1_addr a;
    int rc = strata__l1_resolve(ls->c->l1, k, &a); /* names and length checked here */
    if (rc != 0)
        return rc;
    lease_call *q = stack;
    if (t.ops == NULL || t.ops->inline_answers) {
        memset(q, 0, sizeof *q);
        q->on_stack = 1;
        q->k = *k;
    } else {
        if ((q = calloc(1, sizeof *q + k->len)) == NULL)
            return STRATA_ENOMEM;
        memcpy(q->ns, k->ns, strlen(k->ns) + 1);
        if (k->tenant != NULL)
            memcpy(q->tenant, k->tenant, strlen(k->tenant) + 1);
        memcpy(q->user, k->key, k->len);
        q->k = (strata_key){q->ns, k->tenant ? q->tenant : NULL, q->user, k->len};
    }
    q->a = a;
    q->ls = ls, q->t = t, q->kind = kind, q->in_call = 1;
    *out = q;
    return 0;
}

static void drop_call(lease_call *q)
{
    if (!q->on_stack)
        free(q);
}

static void count(strata_leases *ls, int kind, int status, int local)
{
    if (local)
        atomic_fetch_add(&ls->local_n, 1);
    if (status == STRATA_ENOTHOLDER) {
        atomic_fetch_add(&ls->refused, 1);
    } else if (kind == L_ACQUIRE) {
        atomic_uint_fast64_t *by = status == 0                ? &ls->acquired
                                   : status == STRATA_EHELD   ? &ls->held
                                   : status == STRATA_EEXISTS ? &ls->present
                                   : status == STRATA_ELIMIT  ? &ls->local_full
                                                              : NULL;
        if (by != NULL)
            atomic_fetch_add(by, 1);
    } else if (status == 0) {
        atomic_fetch_add(kind == L_RELEASE ? &ls->released : &ls->extended, 1);
    }
}

/* q is decided: its one callback, or, during the call that made it, the status that call
 * returns (cache.h: what completes at once does not call back). */
static void finish(lease_call *q, int status, int local)
{
    count(q->ls, q->kind, status, local);
    if (q->kind == L_RELEASE && status == 0) /* this process's waiters first, Redis' later */
        strata__flight_notify(q->ls->flights, q->a.buf, q->a.len);
    if (q->kind == L_ACQUIRE && status != 0)
        q->g.token[0] = '\0';
    if (q->in_call) {
        q->done = 1, q->status = status;
        return;
    }
    if (q->acb != NULL)
        q->acb(status, &q->g, q->arg);
    else if (q->dcb != NULL)
        q->dcb(status, q->arg);
    free(q);
}

/* The end of the call that made q: STRATA_PENDING, or the status (and *out, an acquire's). */
static int call_result(lease_call *q, strata_lease_grant *out)
{
    q->in_call = 0;
    if (!q->done)
        return STRATA_PENDING;
    int status = q->status;
    if (out != NULL)
        *out = q->g;
    drop_call(q);
    return status;
}

/* The lease key of q's value. Cannot fail: the value key was built under the same prefix. */
static size_t lease_key(const lease_call *q, char *buf)
{
    size_t n = 0;
    strata__lease_key_build(strata__l1_prefix(q->ls->c->l1), q->a.buf, q->a.len, buf,
                            STRATA_LEASE_KEY_MAX, &n);
    return n;
}

/* Redis cannot decide: this process does. */
static void acquire_locally(lease_call *q)
{
    strata_leases *ls = q->ls;
    if (q->mode == STRATA_LEASE_MISS && strata_l1_exists(ls->c->l1, &q->k, q->now) == 0) {
        finish(q, STRATA_EEXISTS, 1);
        return;
    }
    int rc = strata__token_new_marked(q->g.token, 1); /* ours: checked here, never by Redis */
    if (rc == 0)
        rc = strata__lease_table_acquire(ls->local, q->a.buf, q->a.len, q->g.token, q->lease_ms,
                                         q->now, &q->g.held_ms);
    q->g.local = rc == 0;
    finish(q, rc, 1);
}

/* A reply failed: the loop is being freed (nobody waits), or Redis could not answer. */
static int closing(const lease_call *q)
{
    return q->t.ops != NULL && q->t.ops->closing(q->t.self);
}

static void got_acquire(int status, redisReply **r, size_t n, void *arg)
{
    (void)n;
    lease_call *q = arg;
    if (status != 0 && closing(q)) {
        finish(q, STRATA_ETIMEDOUT, 0);
        return;
    }
    const redisReply *v = status == 0 ? r[0] : NULL;
    if (v == NULL || v->type != REDIS_REPLY_ARRAY || v->elements != 2 ||
        v->element[0]->type != REDIS_REPLY_INTEGER || v->element[1]->type != REDIS_REPLY_INTEGER) {
        acquire_locally(q); /* a failure, or an answer that is not the script's (NOPERM...) */
        return;
    }
    long long what = v->element[0]->integer, pttl = v->element[1]->integer;
    if (what == 0)
        q->g.held_ms = pttl > 0 ? (uint64_t)pttl : 0;
    finish(q, what == 1 ? 0 : what == 2 ? STRATA_EEXISTS : STRATA_EHELD, 0);
}

/* EVALSHA acquire 2 value lease token ms mode version now */
int strata__lease_acquire_on(strata_leases *ls, tier t, const strata_key *k, uint64_t lease_ms,
                             int mode, uint64_t now, strata_lease_cb cb, void *arg,
                             strata_lease_grant *out)
{
    memset(out, 0, sizeof *out);
    if (lease_ms == 0 || lease_ms > STRATA_LEASE_MAX_MS ||
        (mode != STRATA_LEASE_MISS && mode != STRATA_LEASE_REFRESH))
        return STRATA_EINVAL;
    lease_call stack, *q;
    int rc = new_call(ls, t, k, L_ACQUIRE, &stack, &q);
    if (rc != 0)
        return rc;
    if ((rc = strata__token_new_marked(q->g.token, 0)) != 0) {
        drop_call(q);
        return rc;
    }
    q->mode = mode, q->lease_ms = lease_ms, q->now = now, q->acb = cb, q->arg = arg;
    if (t.ops == NULL || t.ops->readonly(t.self)) {
        acquire_locally(q);
    } else {
        char lk[STRATA_LEASE_KEY_MAX], ms[24], version[4], when[24];
        size_t lklen = lease_key(q, lk);
        snprintf(ms, sizeof ms, "%llu", (unsigned long long)lease_ms);
        snprintf(version, sizeof version, "%d", STRATA_FORMAT_VERSION);
        snprintf(when, sizeof when, "%llu", (unsigned long long)now);
        const char *mode_s = mode == STRATA_LEASE_MISS ? "1" : "0";
        const char *args[] = {"2", q->a.buf, lk, q->g.token, ms, mode_s, version, when};
        size_t lens[] = {1,          q->a.len, lklen,           STRATA__TOKEN_LEN,
                         strlen(ms), 1,        strlen(version), strlen(when)};
        if (t.ops->script(t.self, &acquire_script, 8, args, lens, got_acquire, q) != STRATA_PENDING)
            acquire_locally(q); /* Redis cannot be asked now */
    }
    return call_result(q, out);
}

static void got_token_reply(int status, redisReply **r, size_t n, void *arg)
{
    (void)n;
    lease_call *q = arg;
    int rc = status;
    if (status != 0 && closing(q))
        rc = STRATA_ETIMEDOUT;
    else if (status == 0 && r[0]->type == REDIS_REPLY_ERROR)
        rc = strata__reply_error(r[0]);
    else if (status == 0)
        rc = r[0]->type != REDIS_REPLY_INTEGER ? STRATA_EPROTO
             : r[0]->integer == 1              ? 0
                                               : STRATA_ENOTHOLDER;
    finish(q, rc, 0);
}

/* A release or an extend: by this process's table (a lease taken while Redis was away), or by
 * Redis: EVALSHA release 1 lease token channel value | EVALSHA extend 1 lease token ms */
static int with_token(strata_leases *ls, tier t, int kind, const strata_key *k, const char *token,
                      uint64_t lease_ms, uint64_t now, strata_done_cb cb, void *arg)
{
    if (strata__token_check(token) != 0 ||
        (kind == L_EXTEND && (lease_ms == 0 || lease_ms > STRATA_LEASE_MAX_MS)))
        return STRATA_EINVAL;
    lease_call stack, *q;
    int rc = new_call(ls, t, k, kind, &stack, &q);
    if (rc != 0)
        return rc;
    q->now = now, q->lease_ms = lease_ms, q->dcb = cb, q->arg = arg;
    memcpy(q->g.token, token, STRATA__TOKEN_LEN + 1);
    if (strata__token_mark(token)) {
        rc = kind == L_RELEASE
                 ? strata__lease_table_release(ls->local, q->a.buf, q->a.len, token, now)
                 : strata__lease_table_extend(ls->local, q->a.buf, q->a.len, token, lease_ms, now);
        finish(q, rc, 1);
    } else if (t.ops == NULL) {
        finish(q, STRATA_ENOTHOLDER, 0); /* no Redis to have issued it */
    } else if (t.ops->readonly(t.self)) {
        finish(q, STRATA_EREADONLY, 0); /* Redis writes are skipped: it issued no lease */
    } else {
        char lk[STRATA_LEASE_KEY_MAX], ms[24];
        size_t lklen = lease_key(q, lk);
        snprintf(ms, sizeof ms, "%llu", (unsigned long long)lease_ms);
        const char *args[] = {"1", lk, q->g.token, kind == L_RELEASE ? ls->channel : ms, q->a.buf};
        size_t lens[] = {1, lklen, STRATA__TOKEN_LEN,
                         kind == L_RELEASE ? ls->channel_len : strlen(ms), q->a.len};
        rc = t.ops->script(t.self, kind == L_RELEASE ? &release_script : &extend_script,
                           kind == L_RELEASE ? 5 : 4, args, lens, got_token_reply, q);
        if (rc != STRATA_PENDING)
            finish(q, rc, 0); /* Redis cannot be asked: its lease expires by itself */
    }
    return call_result(q, NULL);
}

/* ---- fill ----------------------------------------------------------------------------------- */

/* A fill under way: what counting and a local lease's release need once the write is done. */
typedef struct fill_call {
    strata_leases *ls;
    strata_done_cb cb;
    void *arg;
    int local; /* the lease is this process's: released here once the write is done */
    uint64_t now;
    char token[STRATA__TOKEN_LEN + 1];
    size_t vlen;
    char vkey[];
} fill_call;

static void fill_done(fill_call *f, int status)
{
    strata_leases *ls = f->ls;
    if (f->local)
        atomic_fetch_add(&ls->local_n, 1);
    if (status == STRATA_ENOTHOLDER) {
        atomic_fetch_add(&ls->refused, 1);
    } else if (status == 0 || status == STRATA_OK_L1_ONLY || status == STRATA_EEXISTS) {
        if (status != STRATA_EEXISTS) /* EEXISTS: a kept copy superseded, the lease released */
            atomic_fetch_add(&ls->filled, 1);
        if (f->local) /* kept until the value was stored, so no second caller computes it */
            strata__lease_table_release(ls->local, f->vkey, f->vlen, f->token, f->now);
        strata__flight_notify(ls->flights, f->vkey, f->vlen); /* this process's waiters */
    }
}

static void filled(int status, void *arg)
{
    fill_call *f = arg;
    fill_done(f, status);
    if (f->cb != NULL)
        f->cb(status, f->arg);
    free(f);
}

/* A lease of this process: the cache's plain write (Redis, if it is back, takes it like any
 * set), then the lease is released. A lease of Redis': the write with the fill script, or, for a
 * kept copy (expect: its expires as read), the keep script. */
int strata__lease_fill_on(strata_leases *ls, tier t, const strata_key *k, const char *token,
                          const void *value, size_t len, const strata_set_opts *opts,
                          const uint64_t *expect, uint64_t now, strata_done_cb cb, void *arg)
{
    if (strata__token_check(token) != 0 || (opts != NULL && (opts->flags & STRATA_SET_NX)))
        return STRATA_EINVAL;
    l1_addr a;
    int rc = strata__l1_resolve(ls->c->l1, k, &a);
    if (rc != 0)
        return rc;
    fill_call *f = malloc(sizeof *f + a.len);
    if (f == NULL)
        return STRATA_ENOMEM;
    *f = (fill_call){.ls = ls, .cb = cb, .arg = arg, .now = now, .vlen = a.len};
    memcpy(f->token, token, STRATA__TOKEN_LEN + 1);
    memcpy(f->vkey, a.buf, a.len);
    if (strata__token_mark(token)) {
        f->local = 1;
        rc = strata__lease_table_holds(ls->local, a.buf, a.len, token, now)
                 ? strata__tt_set(ls->c, t, k, value, len, opts, now, filled, f)
                 : STRATA_ENOTHOLDER;
    } else if (t.ops == NULL) {
        rc = STRATA_ENOTHOLDER; /* no Redis to have issued it */
    } else {
        char lk[STRATA_LEASE_KEY_MAX];
        size_t lklen = 0;
        strata__lease_key_build(strata__l1_prefix(ls->c->l1), a.buf, a.len, lk, sizeof lk, &lklen);
        char was[16];
        if (expect != NULL)
            strata__format_times(0, *expect, was); /* the expires bytes are the second 8 */
        tt_script_write via = {.script = expect ? &keep_script : &fill_script,
                               .nkeys = 1,
                               .keys = {lk},
                               .key_lens = {lklen},
                               .nargs = expect ? 3 : 2,
                               .args = {f->token, ls->channel, was + 8},
                               .arg_lens = {STRATA__TOKEN_LEN, ls->channel_len, 8},
                               .refused = STRATA_ENOTHOLDER,
                               .superseded = STRATA_EEXISTS};
        rc = strata__tt_set_via(ls->c, t, k, value, len, opts, &via, now, filled, f);
    }
    if (rc == STRATA_PENDING)
        return rc; /* filled() follows */
    fill_done(f, rc);
    free(f);
    return rc;
}

/* ---- the calls ------------------------------------------------------------------------------ */

int strata_lease_acquire(strata_leases *ls, const strata_key *k, uint64_t lease_ms, int mode,
                         strata_lease_grant *out)
{
    return strata__lease_acquire_on(ls, ls->c->pool, k, lease_ms, mode, ls->c->clock(), NULL, NULL,
                                    out);
}

int strata__lease_release_on(strata_leases *ls, tier t, const strata_key *k, const char *token,
                             uint64_t now, strata_done_cb cb, void *arg)
{
    return with_token(ls, t, L_RELEASE, k, token, 0, now, cb, arg);
}

int strata_lease_release(strata_leases *ls, const strata_key *k, const char *token)
{
    return with_token(ls, ls->c->pool, L_RELEASE, k, token, 0, ls->c->clock(), NULL, NULL);
}

int strata_lease_extend(strata_leases *ls, const strata_key *k, const char *token,
                        uint64_t lease_ms)
{
    return with_token(ls, ls->c->pool, L_EXTEND, k, token, lease_ms, ls->c->clock(), NULL, NULL);
}

int strata_lease_fill(strata_leases *ls, const strata_key *k, const char *token, const void *value,
                      size_t len, const strata_set_opts *opts)
{
    return strata__lease_fill_on(ls, ls->c->pool, k, token, value, len, opts, NULL, ls->c->clock(),
                                 NULL, NULL);
}

int strata_lease_acquire_async(strata_leases *ls, strata_loop *lp, const strata_key *k,
                               uint64_t lease_ms, int mode, strata_lease_cb cb, void *arg,
                               strata_lease_grant *out)
{
    return strata__lease_acquire_on(ls, strata__loop_tier(lp), k, lease_ms, mode, ls->c->clock(),
                                    cb, arg, out);
}

int strata_lease_release_async(strata_leases *ls, strata_loop *lp, const strata_key *k,
                               const char *token, strata_done_cb cb, void *arg)
{
    return with_token(ls, strata__loop_tier(lp), L_RELEASE, k, token, 0, ls->c->clock(), cb, arg);
}

int strata_lease_extend_async(strata_leases *ls, strata_loop *lp, const strata_key *k,
                              const char *token, uint64_t lease_ms, strata_done_cb cb, void *arg)
{
    return with_token(ls, strata__loop_tier(lp), L_EXTEND, k, token, lease_ms, ls->c->clock(), cb,
                      arg);
}

int strata_lease_fill_async(strata_leases *ls, strata_loop *lp, const strata_key *k,
                            const char *token, const void *value, size_t len,
                            const strata_set_opts *opts, strata_done_cb cb, void *arg)
{
    return strata__lease_fill_on(ls, strata__loop_tier(lp), k, token, value, len, opts, NULL,
                                 ls->c->clock(), cb, arg);
}

void strata_leases_stats(strata_leases *ls, strata_lease_stats *out)
{
    out->acquired = atomic_load(&ls->acquired);
    out->held = atomic_load(&ls->held);
    out->present = atomic_load(&ls->present);
    out->released = atomic_load(&ls->released);
    out->extended = atomic_load(&ls->extended);
    out->filled = atomic_load(&ls->filled);
    out->refused = atomic_load(&ls->refused);
    out->local = atomic_load(&ls->local_n);
    out->local_full = atomic_load(&ls->local_full);
    out->local_held = strata__lease_table_count(ls->local);
    out->waits = atomic_load(&ls->waits);
    out->coalesced = atomic_load(&ls->coalesced);
    out->takeovers = atomic_load(&ls->takeovers);
    out->timeouts = atomic_load(&ls->timeouts);
    out->wait_busy = atomic_load(&ls->wait_busy);
    out->stale_kept = atomic_load(&ls->stale_kept);
    out->errors_stored = atomic_load(&ls->errors_stored);
    size_t flights, waiters;
    strata__flight_counts(ls->flights, &flights, &waiters);
    out->flights = flights, out->waiting = waiters;
}
