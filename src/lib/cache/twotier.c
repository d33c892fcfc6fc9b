/* cache/twotier.c: the two-tier logic: L1 in front of Redis, and what happens when Redis fails.
 *
 * Written once, as operations that advance on each answer from a tier (cache/tier.h): the
 * synchronous calls run them over the client's pool (every answer arrives before the call
 * returns), the asynchronous ones over a loop's pipelined connection, unit tests over a fake.
 *
 * Reads: L1 first, when L1 can be trusted (the invalidation link is up); then Redis; a Redis hit
 * is checked against its tags' current versions (L1's table when trusted, else one more round
 * to Redis) and promoted into L1 with the expiry it was written with, unless an invalidation of
 * that key arrived while it was being read (the key's ticket moved: Redis' "caching in progress"
 * problem). Any Redis failure falls back to L1: the caller sees a miss or L1 data, never an error.
 *
 * Writes: the entry is built once (TTL rules, jitter), its tags get their versions from Redis
 * (SET tagkey candidate NX GET, one round), it is written to Redis, then linked into L1. If Redis
 * cannot be asked or fails, the write lands in L1 alone and the call says so (STRATA_OK_L1_ONLY),
 * with tag versions from L1's table. A write may go to Redis as a script instead of SET (a lease's
 * fill: store only if the caller still holds the key's lease): the same write, another command.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <strata/errors.h>
#include <xxhash.h>

#include "cache/cache_internal.h"
#include "cache/soft_record.h"
#include "cache/twotier.h"
#include "core/rand.h"
#include "core/tag_key.h"
#include "l1/entry.h"
#include "l1/l1_internal.h"
#include "l1/tags.h"

void (*strata__test_after_l2_read)(void *arg);
void *strata__test_arg;

enum op_kind { OP_GET, OP_SET, OP_DEL };

/* A read's verdict on an entry's tags: invalid, or valid and stale from stale_from (0: not). */
typedef struct tag_verdict {
    int invalid;
    uint64_t stale_from;
} tag_verdict;

/* What a round of tag commands needs, allocated only then: most operations carry no tags. */
typedef struct op_tags {
    char *blob;    /* a read: the entry as Redis had it (the reply is freed after the callback) */
    format_view f; /* decoded from blob */
    tag_verdict v; /* of the tags known before asking */
    uint64_t have[STRATA_TAGS_MAX_PER_ENTRY];
    uint64_t tag_tickets[STRATA_TAGS_MAX_PER_ENTRY], tag_key_hash[STRATA_TAGS_MAX_PER_ENTRY];
    unsigned asked[STRATA_TAGS_MAX_PER_ENTRY];
    uint64_t cand[STRATA_TAGS_MAX_PER_ENTRY]; /* a write: the versions it offers */
} op_tags;

typedef struct op {
    strata_cache *c;
    tier t;
    int kind;
    strata_get_cb gcb;
    strata_done_cb dcb;
    void *arg;
    strata_key k; /* the caller's (an operation on its stack), or the copies below */
    uint64_t now, ticket;
    struct strata_value *e; /* a write's prepared entry, until finished */
    unsigned flags;
    int l1rc;     /* a delete: what L1 said */
    int strict;   /* a delete: everywhere or not at all (no fallback to L1 alone) */
    int stale_ok; /* a read: an entry past its expiry, still kept, is answered too */
    int reason;   /* why it was answered by L1 alone (STRATA_REASON_*) */
    op_tags *x;
    tt_script_write *via; /* a write sent as this script instead of SET (heap ops: a copy) */
    int own_via;
    /* Completed while the call that made it had not returned yet (an L1 fallback, or every
     * answer over the synchronous pool): the call returns this instead of calling back. */
    int in_call, done, status;
    strata_value *v;
    int on_stack;      /* the call's own: every answer comes before it returns (the pool) */
    const l1_addr *at; /* k's address, while the call that resolved it has not returned */
    char ns[STRATA_NAME_MAX + 1], tenant[STRATA_NAME_MAX + 1];
    char user_key[]; /* a heap operation's copy of the key */
} op;

/* ---- shared helpers ----------------------------------------------------------------------- */

/* May L1's copies of shared keys be served? Only while every change in Redis reaches L1. */
static int l1_trusted(strata_cache *c)
{
    return c->pool.ops == NULL || c->pool.ops->link_up(c->pool.self);
}

uint64_t strata__tt_random(strata_cache *c)
{
    pthread_mutex_lock(&c->rng_lock);
    uint64_t v;
    do
        v = strata__rand_next(&c->rng);
    while (v == 0);
    pthread_mutex_unlock(&c->rng_lock);
    return v;
}

static int failure(int rc)
{
    return rc == STRATA_EUNAVAILABLE || rc == STRATA_ETIMEDOUT || rc == STRATA_EPROTO ||
           rc == STRATA_EREADONLY || rc == STRATA_ENOMEM;
}

/* A new operation for k. Over a tier that answers before send returns (the pool) it is the
 * caller's stack (which outlives it) and uses the caller's key; otherwise one allocation with
 * its own copy of the key, since the caller's may go once the call returns. */
static op *new_op(strata_cache *c, tier t, const strata_key *k, int kind, uint64_t now, op *stack)
{
    const char *tenant = k->tenant ? k->tenant : STRATA_DEFAULT_TENANT;
    op *o = stack;
    if (t.ops->inline_answers) {
        memset(o, 0, sizeof *o);
        o->on_stack = 1;
        o->k = (strata_key){k->ns, tenant, k->key, k->len};
    } else {
        if ((o = calloc(1, sizeof *o + k->len)) == NULL)
            return NULL;
        /* Names were checked (<= 64 bytes) when k's address was resolved. */
        memcpy(o->ns, k->ns, strlen(k->ns) + 1);
        memcpy(o->tenant, tenant, strlen(tenant) + 1);
        memcpy(o->user_key, k->key, k->len);
        o->k = (strata_key){o->ns, o->tenant, o->user_key, k->len};
    }
    o->c = c, o->t = t, o->kind = kind, o->now = now, o->in_call = 1;
    return o;
}

static void free_op(op *o)
{
    if (o->e != NULL)
        strata__l1_discard(o->e);
    if (o->x != NULL)
        free(o->x->blob);
    free(o->x);
    if (o->own_via)
        free(o->via);
    if (!o->on_stack)
        free(o);
}

/* Finishes o: its one callback, then it is gone; or, during the call that made it, the result
 * that call returns (cache.h: a call that completes at once does not call back). */
static void complete(op *o, int status, strata_value *v)
{
    if (o->in_call) {
        o->done = 1, o->status = status, o->v = v;
        return;
    }
    strata__reason_set(o->reason);
    if (o->gcb != NULL)
        o->gcb(status, v, o->arg);
    else if (o->dcb != NULL)
        o->dcb(status, o->arg);
    else
        strata_value_release(v);
    free_op(o);
}

/* The end of the call that made o: what it answers now, or STRATA_PENDING. */
static int call_result(op *o, strata_value **out)
{
    o->in_call = 0;
    o->at = NULL; /* the caller's address goes with its stack frame */
    if (!o->done)
        return STRATA_PENDING;
    strata__reason_set(o->reason);
    int status = o->status;
    if (out != NULL)
        *out = o->v;
    else
        strata_value_release(o->v);
    free_op(o);
    return status;
}

static op_tags *tags_of(op *o)
{
    if (o->x == NULL)
        o->x = calloc(1, sizeof *o->x);
    return o->x;
}

/* ---- writes: finishing -------------------------------------------------------------------- */

/* A write Redis did not take lands in L1 alone, said so to the caller (with the reason, for the
 * thread). Consumes e. */
static int set_l1_only(strata_cache *c, struct strata_value *e, unsigned flags, uint64_t now,
                       int reason)
{
    atomic_fetch_add(&c->fallbacks, 1);
    strata__reason_set(reason);
    int rc = strata__l1_store(c->l1, e, flags, now, STRATA__NO_TICKET);
    if (rc == 0)
        strata_value_release(e);
    else
        strata__l1_discard(e);
    return rc == 0 ? STRATA_OK_L1_ONLY : rc;
}

/* Completes o's write once Redis answered (rc: strata__reply_set's, or a failure of the tier):
 * keeps e in L1 as the rules say, consumes e, and returns the write's status. */
static int finish_set(op *o, struct strata_value *e, uint64_t ticket, int rc)
{
    strata_cache *c = o->c;
    unsigned flags = o->flags;
    uint64_t now = o->now;
    if (rc == 0) {
        e->pinned = 0; /* Redis holds it: L1's copy is a cache entry like any other */
        if (l1_trusted(c) && strata__l1_store(c->l1, e, 0, now, ticket) == 0)
            strata_value_release(e);
        else
            strata__l1_discard(e);
        return 0;
    }
    if (!failure(rc)) { /* EEXISTS (NX), or an answer that is not a failure of Redis */
        strata__l1_discard(e);
        return rc;
    }
    if (rc != STRATA_EREADONLY)
        atomic_fetch_add(&c->errors, 1);
    o->reason = strata__reason_of(o->t, rc);
    return set_l1_only(c, e, flags, now, o->reason);
}

/* Encodes a prepared entry for Redis: *blob (caller frees; NULL when it is already past its
 * deadline and there is nothing to store), its length, and the PX to give it. Returns 0 or
 * STRATA_ENOMEM. */
static int encode(struct strata_value *e, uint64_t now, char **blob, size_t *blen, uint64_t *px)
{
    format_view f = {.flags = strata_value_flags(e),
                     .created_ms = strata_value_created_ms(e),
                     .expires_ms = strata_value_expires_ms(e),
                     .grace_ms = strata_value_grace_ms(e),
                     .stale_if_error_ms = strata_value_stale_if_error_ms(e),
                     .compute_ms = strata_value_compute_ms(e),
                     .beta_centi = e->beta_centi,
                     .content_type = strata_value_content_type(e),
                     .content_type_len = strlen(strata_value_content_type(e)),
                     .ntags = e->ntags,
                     .value = strata_value_data(e),
                     .value_len = strata_value_len(e)};
    const entry_tag *t = entry_tags(e);
    for (size_t i = 0; i < e->ntags; i++) {
        f.tags[i].name = e->data + t[i].name_off;
        f.tags[i].name_len = strlen(f.tags[i].name);
        f.tags[i].version = t[i].version;
    }
    *blob = NULL;
    *px = 0;
    if (f.expires_ms != 0) {
        uint64_t deadline = entry_deadline(e);
        if (deadline <= now)
            return 0;
        *px = deadline - now;
    }
    if ((*blob = malloc(strata__format_size(&f))) == NULL)
        return STRATA_ENOMEM;
    *blen = strata__format_encode(&f, *blob);
    return 0;
}

/* Gives a prepared (unpublished) entry the versions L1's table has for its tags, for a write
 * that will not reach Redis. Returns 0 or STRATA_ENOMEM. */
static int l1_tag_versions(strata_cache *c, struct strata_value *e, const char *tenant)
{
    entry_tag *t = (entry_tag *)(void *)(e->data + e->tags_off);
    for (unsigned i = 0; i < e->ntags; i++) {
        uint64_t h = strata__tag_hash(tenant, strata_value_tag(e, i));
        int rc = strata__tags_current(strata__l1_tags(c->l1), h, 1, &t[i].version);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* A read's status for the value v it found: a stale read says when v is past its expiry. */
static int read_status(const op *o, const struct strata_value *v, int fresh)
{
    return o->stale_ok && !entry_fresh(v, o->now) ? STRATA_OK_STALE : fresh;
}

/* ---- failures ----------------------------------------------------------------------------- */

/* Redis could not answer o: L1 answers instead. immediate: the tier refused at once (errors are
 * counted only when Redis was not already known down). */
static void fall_back(op *o, int status, int immediate)
{
    strata_cache *c = o->c;
    if (o->t.ops->closing(o->t.self)) { /* the loop is being freed: nobody waits for L1 */
        complete(o, STRATA_ETIMEDOUT, NULL);
        return;
    }
    if (!immediate || (status != STRATA_EUNAVAILABLE || !o->t.ops->down(o->t.self)))
        atomic_fetch_add(&c->errors, 1);
    o->reason = strata__reason_of(o->t, status);
    if (o->kind == OP_DEL && o->strict) { /* nothing was deleted: the caller hears why */
        complete(o, status, NULL);
        return;
    }
    if (o->kind == OP_GET) {
        atomic_fetch_add(&c->fallbacks, 1);
        strata_value *v = NULL;
        int rc = strata__l1_get_ex(c->l1, &o->k, o->now, o->stale_ok ? L1_GET_STALE : 0, &v);
        complete(o, rc == STRATA_OK ? read_status(o, v, STRATA_OK_L1_ONLY) : rc, v);
    } else if (o->kind == OP_DEL) {
        atomic_fetch_add(&c->fallbacks, 1);
        complete(o, STRATA_OK_L1_ONLY, NULL);
    } else {
        struct strata_value *e = o->e;
        o->e = NULL;
        int rc = l1_tag_versions(c, e, o->k.tenant);
        if (rc != 0)
            strata__l1_discard(e);
        else
            rc = set_l1_only(c, e, o->flags, o->now, o->reason);
        complete(o, rc, NULL);
    }
}

/* Sends cmds for o; on an immediate refusal, o falls back. o must not be touched afterwards. */
static void send(op *o, const redis_cmd *cmds, size_t n, redis_reply_cb cb)
{
    int rc = o->t.ops->send(o->t.self, cmds, n, cb, o);
    if (rc != STRATA_PENDING)
        fall_back(o, rc, 1);
}

/* ---- reads -------------------------------------------------------------------------------- */

static void judge(op *o, const format_view *f, const tag_verdict *v);

/* Adds one tag's judgement (strata__tags_judge's, or _check's) to v. */
static void verdict_add(tag_verdict *v, int valid, uint64_t stale_from)
{
    if (valid != 1)
        v->invalid = 1;
    else if (stale_from != 0 && (v->stale_from == 0 || stale_from < v->stale_from))
        v->stale_from = stale_from;
}

/* Judges the tags L1 knows (when trusted) into v; marks the others UINT64_MAX in have (to ask
 * Redis) and returns how many they are. */
static unsigned known_tags(op *o, const format_view *f, uint64_t *have, tag_verdict *v)
{
    strata_cache *c = o->c;
    int trusted = l1_trusted(c);
    unsigned unknown = 0;
    *v = (tag_verdict){0, 0};
    for (unsigned i = 0; i < f->ntags; i++) {
        char tag[STRATA_TAG_MAX + 1];
        memcpy(tag, f->tags[i].name, f->tags[i].name_len);
        tag[f->tags[i].name_len] = '\0';
        have[i] = 0;
        uint64_t from = 0;
        int rc = !trusted ? STRATA_ENOTFOUND
                          : strata__tags_check(strata__l1_tags(c->l1),
                                               strata__tag_hash(o->k.tenant, tag),
                                               f->tags[i].version, &from);
        if (rc == STRATA_ENOTFOUND)
            unknown++, have[i] = UINT64_MAX; /* to ask Redis */
        else
            verdict_add(v, rc, from);
    }
    return unknown;
}

/* Each asked tag is two replies: its version, then its soft record. */
static void got_tags(int status, redisReply **r, size_t n, void *arg)
{
    op *o = arg;
    op_tags *x = o->x;
    if (status != 0) {
        fall_back(o, status, 0);
        return;
    }
    for (size_t j = 0; j + 1 < n; j += 2) {
        unsigned i = x->asked[j / 2];
        const char *s;
        size_t len;
        tag_soft soft = {0};
        int rc = strata__reply_get(r[j], &s, &len);
        if (rc == 0)
            rc = strata__tag_version_parse(s, len, &x->have[i]);
        if (rc == STRATA_ENOTFOUND)
            x->have[i] = 0, rc = 0; /* missing: invalidates what carries it */
        int src = rc == 0 ? strata__reply_get(r[j + 1], &s, &len) : 0;
        if (src == 0 && rc == 0 && strata__soft_tag_parse(s, len, &soft) != 0)
            memset(&soft, 0, sizeof soft); /* unreadable: what it spoke for is invalid */
        else if (src != 0 && src != STRATA_ENOTFOUND)
            rc = src;
        if (rc != 0) {
            fall_back(o, rc, 0);
            return;
        }
        uint64_t from;
        int valid = strata__tags_judge(x->f.tags[i].version, x->have[i], &soft, &from);
        verdict_add(&x->v, valid, from);
        if (x->have[i] != 0 && l1_trusted(o->c)) {
            char tag[STRATA_TAG_MAX + 1];
            memcpy(tag, x->f.tags[i].name, x->f.tags[i].name_len);
            tag[x->f.tags[i].name_len] = '\0';
            strata__l1_tag_learn(o->c->l1, strata__tag_hash(o->k.tenant, tag),
                                 x->tag_key_hash[j / 2], x->have[i], &soft, x->tag_tickets[j / 2]);
        }
    }
    judge(o, &x->f, &x->v);
}

/* The entry carries tags L1 does not know: keep it (the reply goes once we return) and ask for
 * each its version and soft record, one batch. */
static void ask_tags(op *o, const char *data, size_t len, const uint64_t *have,
                     const tag_verdict *v)
{
    strata_cache *c = o->c;
    op_tags *x = tags_of(o);
    if (x == NULL || (x->blob = malloc(len)) == NULL) {
        complete(o, STRATA_ENOMEM, NULL);
        return;
    }
    memcpy(x->blob, data, len);
    strata__format_decode(x->blob, len, &x->f);
    memcpy(x->have, have, sizeof x->have);
    x->v = *v;
    redis_cmd cmds[2 * STRATA_TAGS_MAX_PER_ENTRY];
    char keys[2 * STRATA_TAGS_MAX_PER_ENTRY][STRATA_TAG_KEY_MAX];
    unsigned n = 0;
    const char *prefix = strata__l1_prefix(c->l1);
    for (unsigned i = 0; i < x->f.ntags; i++) {
        if (x->have[i] != UINT64_MAX)
            continue;
        char tag[STRATA_TAG_MAX + 1];
        size_t klen, slen;
        memcpy(tag, x->f.tags[i].name, x->f.tags[i].name_len);
        tag[x->f.tags[i].name_len] = '\0';
        x->have[i] = 0;
        if (strata__tag_key_build(prefix, o->k.tenant, tag, keys[2 * n], STRATA_TAG_KEY_MAX,
                                  &klen) != 0 ||
            strata__soft_tag_key_build(prefix, o->k.tenant, tag, keys[2 * n + 1],
                                       STRATA_TAG_KEY_MAX, &slen) != 0) {
            x->v.invalid = 1; /* cannot be: it was stored with this name */
            continue;
        }
        x->tag_key_hash[n] = XXH3_64bits(keys[2 * n], klen);
        x->tag_tickets[n] = strata__l1_ticket(c->l1, x->tag_key_hash[n]); /* before the read */
        x->asked[n] = i;
        strata__cmd_get(&cmds[2 * n], keys[2 * n], klen);
        strata__cmd_get(&cmds[2 * n + 1], keys[2 * n + 1], slen);
        n++;
    }
    if (n == 0)
        judge(o, &x->f, &x->v);
    else
        send(o, cmds, 2 * n, got_tags);
}

static uint64_t cap_window(uint64_t ms)
{
    return ms < STRATA_STALE_MAX_MS ? ms : STRATA_STALE_MAX_MS;
}

static int servable_at(const op *o, const format_view *f, uint64_t expires_ms);

/* Given the entry and the verdict on its tags, answers the read: the value (promoted into L1
 * when L1 is trusted and no invalidation raced the read) or a miss. A soft tag invalidation
 * since the write makes the entry expire then: judged, and promoted, with that expiry. */
static void judge(op *o, const format_view *f, const tag_verdict *v)
{
    strata_cache *c = o->c;
    char names[STRATA_TAGS_MAX_PER_ENTRY][STRATA_TAG_MAX + 1];
    const char *tags[STRATA_TAGS_MAX_PER_ENTRY];
    uint64_t want[STRATA_TAGS_MAX_PER_ENTRY];
    char ctype[STRATA_CONTENT_TYPE_MAX + 1];
    int rc = 0;
    for (size_t i = 0; i < f->ntags; i++) {
        memcpy(names[i], f->tags[i].name, f->tags[i].name_len);
        names[i][f->tags[i].name_len] = '\0';
        tags[i] = names[i];
        want[i] = f->tags[i].version;
    }
    uint64_t expires = f->expires_ms;
    if (v->stale_from != 0 && (expires == 0 || v->stale_from < expires))
        expires = v->stale_from;
    if (v->invalid || !servable_at(o, f, expires))
        rc = STRATA_ENOTFOUND; /* a tag was invalidated (or lost) since the write, or a soft
                                  invalidation ended the entry's life */
    struct strata_value *e = NULL;
    if (rc == 0) {
        memcpy(ctype, f->content_type, f->content_type_len);
        ctype[f->content_type_len] = '\0';
        /* Windows past the caps (an entry written before them) are cut, not refused. */
        strata_set_opts so = {.grace_ms = cap_window(f->grace_ms),
                              .content_type = ctype,
                              .tags = tags,
                              .ntags = f->ntags,
                              .flags = f->flags,
                              .stale_if_error_ms = cap_window(f->stale_if_error_ms),
                              .compute_ms = f->compute_ms,
                              .beta = f->beta_centi / 100.0 > STRATA_BETA_MAX
                                          ? STRATA_BETA_MAX
                                          : f->beta_centi / 100.0};
        l1_write w = {.k = &o->k,
                      .at = o->at, /* not resolved again when still at hand */
                      .value = f->value,
                      .len = f->value_len,
                      .opts = &so,
                      .now_ms = o->now,
                      .tag_versions = want,
                      .absolute = 1,
                      .created_ms = f->created_ms,
                      .expires_ms = expires};
        rc = strata__l1_prepare(c->l1, &w, &e);
        if (rc == STRATA_ETOOBIG || rc == STRATA_EVALUELARGE)
            rc = STRATA_ENOTFOUND; /* too big for L1: served as a miss, as L1 alone would */
    }
    if (rc == 0 &&
        (!c->coherent || !l1_trusted(c) || strata__l1_store(c->l1, e, 0, o->now, o->ticket) != 0))
        strata__l1_detach(e); /* served once, not kept */
    atomic_fetch_add(rc == 0 ? &c->hits : &c->misses, 1);
    complete(o, rc == 0 ? read_status(o, e, 0) : rc, e);
}

/* Fresh, or, for a stale read, still kept, were f to expire at expires_ms (Redis' own expiry
 * runs on Redis' clock: this is the reader's). */
static int servable_at(const op *o, const format_view *f, uint64_t expires_ms)
{
    if (expires_ms == 0 || o->now < expires_ms)
        return 1;
    uint64_t keep = f->grace_ms > f->stale_if_error_ms ? f->grace_ms : f->stale_if_error_ms;
    return o->stale_ok && o->now - expires_ms < keep;
}

static int servable(const op *o, const format_view *f)
{
    return servable_at(o, f, f->expires_ms);
}

static void got_entry(int status, redisReply **r, size_t n, void *arg)
{
    (void)n;
    op *o = arg;
    if (status != 0) {
        fall_back(o, status, 0);
        return;
    }
    if (strata__test_after_l2_read != NULL)
        strata__test_after_l2_read(strata__test_arg);
    const char *data;
    size_t len;
    format_view f;
    uint64_t have[STRATA_TAGS_MAX_PER_ENTRY];
    tag_verdict v;
    int rc = strata__reply_get(r[0], &data, &len);
    if (rc == 0 && (strata__format_decode(data, len, &f) != 0 || !servable(o, &f)))
        rc = STRATA_ENOTFOUND; /* unknown format, past its expiry (or past what it is kept for) */
    if (rc == STRATA_ENOTFOUND) {
        atomic_fetch_add(&o->c->misses, 1);
        complete(o, rc, NULL);
    } else if (rc != 0) {
        fall_back(o, rc, 0); /* an error reply: Redis could not answer */
    } else if (known_tags(o, &f, have, &v) == 0) {
        judge(o, &f, &v); /* the common case, straight from the reply without a copy */
    } else {
        ask_tags(o, data, len, have, &v);
    }
}

int strata__tt_get(strata_cache *c, tier t, const strata_key *k, uint64_t now, strata_get_cb cb,
                   void *arg, strata_value **out)
{
    return strata__tt_get_ex(c, t, k, now, 0, cb, arg, out);
}

int strata__tt_get_ex(strata_cache *c, tier t, const strata_key *k, uint64_t now, int stale_ok,
                      strata_get_cb cb, void *arg, strata_value **out)
{
    *out = NULL;
    strata__reason_set(STRATA_REASON_NONE);
    unsigned flags = stale_ok ? L1_GET_STALE : 0;
    int rc;
    if (t.ops == NULL) {
        rc = strata__l1_get_ex(c->l1, k, now, flags, out);
        return rc == 0 && stale_ok && !entry_fresh(*out, now) ? STRATA_OK_STALE : rc;
    }
    l1_addr a;
    if ((rc = strata__l1_resolve(c->l1, k, &a)) != 0)
        return rc;
    if (l1_trusted(c) && (rc = strata__l1_get_at(c->l1, k, &a, now, flags | L1_GET_UNKNOWN_TAGS_OK,
                                                 out)) != STRATA_ENOTFOUND)
        return rc == 0 && stale_ok && !entry_fresh(*out, now) ? STRATA_OK_STALE : rc;
    op stack, *o = new_op(c, t, k, OP_GET, now, &stack);
    if (o == NULL)
        return STRATA_ENOMEM;
    o->gcb = cb, o->arg = arg, o->at = &a, o->stale_ok = stale_ok;
    o->ticket = strata__l1_ticket(c->l1, a.hash); /* before the read: see judge */
    redis_cmd cmd;
    strata__cmd_get(&cmd, a.buf, a.len);
    send(o, &cmd, 1, got_entry);
    return call_result(o, out);
}

/* ---- writes ------------------------------------------------------------------------------- */

static void got_set(int status, redisReply **r, size_t n, void *arg);

/* A write script's answer: 0 stored, via->refused, via->superseded, or an error (STRATA_EPROTO for
 * an answer that is not the script's). */
static int via_reply(const tt_script_write *via, const redisReply *r)
{
    if (r->type == REDIS_REPLY_ERROR)
        return strata__reply_error(r);
    if (r->type == REDIS_REPLY_INTEGER && r->integer == 2 && via->superseded != 0)
        return via->superseded;
    if (r->type != REDIS_REPLY_INTEGER || (r->integer != 0 && r->integer != 1))
        return STRATA_EPROTO;
    return r->integer == 1 ? 0 : via->refused;
}

/* EVALSHA script 1+nkeys key keys... entry px args... */
static void send_via(op *o, const char *blob, size_t blen, uint64_t px)
{
    const tt_script_write *v = o->via;
    char nkeys[4], pxs[24];
    snprintf(nkeys, sizeof nkeys, "%u", 1 + v->nkeys);
    snprintf(pxs, sizeof pxs, "%llu", (unsigned long long)px);
    const char *args[REDIS_SCRIPT_MAX_ARGS];
    size_t lens[REDIS_SCRIPT_MAX_ARGS];
    int n = 0;
    args[n] = nkeys, lens[n++] = strlen(nkeys);
    args[n] = entry_key(o->e), lens[n++] = o->e->key_len;
    for (unsigned i = 0; i < v->nkeys; i++)
        args[n] = v->keys[i], lens[n++] = v->key_lens[i];
    args[n] = blob, lens[n++] = blen;
    args[n] = pxs, lens[n++] = strlen(pxs);
    for (unsigned i = 0; i < v->nargs; i++)
        args[n] = v->args[i], lens[n++] = v->arg_lens[i];
    int rc = o->t.ops->script(o->t.self, v->script, n, args, lens, got_set, o);
    if (rc != STRATA_PENDING)
        fall_back(o, rc, 1);
}

static void got_set(int status, redisReply **r, size_t n, void *arg)
{
    (void)n;
    op *o = arg;
    if (status != 0) {
        fall_back(o, status, 0);
        return;
    }
    struct strata_value *e = o->e;
    o->e = NULL;
    complete(
        o, finish_set(o, e, o->ticket, o->via ? via_reply(o->via, r[0]) : strata__reply_set(r[0])),
        NULL);
}

/* The entry has its tag versions: write it. */
static void send_set(op *o)
{
    char *blob;
    size_t blen;
    uint64_t px;
    int rc = encode(o->e, o->now, &blob, &blen, &px);
    if (rc != 0 || blob == NULL) { /* out of memory, or already dead: nothing to store */
        struct strata_value *e = o->e;
        o->e = NULL;
        if (rc != 0)
            strata__l1_discard(e);
        else
            rc = finish_set(o, e, STRATA__NO_TICKET, 0);
        complete(o, rc, NULL);
        return;
    }
    o->ticket = strata__l1_ticket(o->c->l1, o->e->hash);
    if (o->via != NULL) {
        send_via(o, blob, blen, px);
    } else {
        redis_cmd cmd;
        strata__cmd_set(&cmd, entry_key(o->e), o->e->key_len, blob, blen, px,
                        (o->flags & STRATA_SET_NX) != 0);
        send(o, &cmd, 1, got_set);
    }
    free(blob); /* the tier formatted its own copy */
}

static void got_tag_versions(int status, redisReply **r, size_t n, void *arg)
{
    op *o = arg;
    if (status != 0) {
        fall_back(o, status, 0);
        return;
    }
    entry_tag *t = (entry_tag *)(void *)(o->e->data + o->e->tags_off);
    for (size_t i = 0; i < n; i++) {
        int rc = strata__reply_tag_version(r[i], o->x->cand[i], &t[i].version);
        if (rc != 0) {
            fall_back(o, rc, 0);
            return;
        }
    }
    send_set(o); /* the entry is not published yet: its versions were still ours to fill */
}

/* A tagged write's first round: SET tagkey candidate NX GET for each tag, one batch. */
static void send_tag_versions(op *o)
{
    struct strata_value *e = o->e;
    op_tags *x = tags_of(o);
    if (x == NULL) {
        complete(o, STRATA_ENOMEM, NULL);
        return;
    }
    redis_cmd cmds[STRATA_TAGS_MAX_PER_ENTRY];
    char keys[STRATA_TAGS_MAX_PER_ENTRY][STRATA_TAG_KEY_MAX];
    for (unsigned i = 0; i < e->ntags; i++) {
        size_t klen;
        strata__tag_key_build(strata__l1_prefix(o->c->l1), o->k.tenant, strata_value_tag(e, i),
                              keys[i], STRATA_TAG_KEY_MAX, &klen);
        x->cand[i] = strata__tt_random(o->c);
        strata__cmd_tag_version(&cmds[i], keys[i], klen, x->cand[i]);
    }
    send(o, cmds, e->ntags, got_tag_versions);
}

/* Tag names go to Redis before L1 validates the entry: check them first. */
static int check_tags(const strata_set_opts *o)
{
    if (o->ntags > STRATA_TAGS_MAX_PER_ENTRY)
        return STRATA_ETOOMANYTAGS;
    for (size_t i = 0; i < o->ntags; i++)
        if (o->tags[i] == NULL || strnlen(o->tags[i], STRATA_TAG_MAX + 1) > STRATA_TAG_MAX)
            return STRATA_EBADTEXT;
    return 0;
}

/* A copy of via in one allocation, for an operation that outlives its call. */
static tt_script_write *copy_via(const tt_script_write *via)
{
    size_t total = sizeof *via;
    for (unsigned i = 0; i < via->nkeys; i++)
        total += via->key_lens[i];
    for (unsigned i = 0; i < via->nargs; i++)
        total += via->arg_lens[i];
    tt_script_write *v = malloc(total);
    if (v == NULL)
        return NULL;
    *v = *via;
    char *p = (char *)(v + 1);
    for (unsigned i = 0; i < via->nkeys; i++)
        memcpy(p, via->keys[i], via->key_lens[i]), v->keys[i] = p, p += via->key_lens[i];
    for (unsigned i = 0; i < via->nargs; i++)
        memcpy(p, via->args[i], via->arg_lens[i]), v->args[i] = p, p += via->arg_lens[i];
    return v;
}

int strata__tt_set(strata_cache *c, tier t, const strata_key *k, const void *value, size_t len,
                   const strata_set_opts *opts, uint64_t now, strata_done_cb cb, void *arg)
{
    return strata__tt_set_via(c, t, k, value, len, opts, NULL, now, cb, arg);
}

int strata__tt_set_via(strata_cache *c, tier t, const strata_key *k, const void *value, size_t len,
                       const strata_set_opts *opts, const tt_script_write *via, uint64_t now,
                       strata_done_cb cb, void *arg)
{
    static const strata_set_opts no_opts;
    strata__reason_set(STRATA_REASON_NONE);
    if (t.ops == NULL)
        return strata_l1_set(c->l1, k, value, len, opts, now);
    const strata_set_opts *so = opts ? opts : &no_opts;
    int rc = check_tags(so);
    if (rc != 0)
        return rc;
    /* Built now with placeholder tag versions; the real ones are filled in before the write. */
    uint64_t zero[STRATA_TAGS_MAX_PER_ENTRY] = {0};
    int redis = !t.ops->readonly(t.self); /* read-only: Redis is skipped by design */
    l1_write w = {.k = k,
                  .value = value,
                  .len = len,
                  .opts = opts,
                  .now_ms = now,
                  .tag_versions = redis ? zero : NULL};
    struct strata_value *e;
    if ((rc = strata__l1_prepare(c->l1, &w, &e)) != 0)
        return rc;
    if (!redis)
        return set_l1_only(c, e, so->flags, now, STRATA_REASON_READ_ONLY);
    op stack, *o = new_op(c, t, k, OP_SET, now, &stack);
    if (o == NULL) {
        strata__l1_discard(e);
        return STRATA_ENOMEM;
    }
    o->dcb = cb, o->arg = arg, o->e = e, o->flags = so->flags;
    if (via != NULL) {
        o->own_via = !o->on_stack;
        o->via = o->own_via ? copy_via(via) : (tt_script_write *)via;
        if (o->via == NULL) {
            free_op(o);
            return STRATA_ENOMEM;
        }
    }
    if (e->ntags == 0)
        send_set(o);
    else
        send_tag_versions(o);
    return call_result(o, NULL);
}

/* ---- deletes ------------------------------------------------------------------------------ */

static void got_del(int status, redisReply **r, size_t n, void *arg)
{
    (void)n;
    op *o = arg;
    if (status != 0) {
        fall_back(o, status, 0);
        return;
    }
    int rc = strata__reply_del(r[0]);
    if (o->strict && rc != STRATA_EREADONLY) /* Redis took it: now this instance's copy */
        o->l1rc = strata_l1_del(o->c->l1, &o->k, o->now);
    if (rc == STRATA_ENOTFOUND && o->l1rc == 0)
        rc = 0; /* L1 had it */
    else if (rc == STRATA_EREADONLY)
        o->reason = STRATA_REASON_READ_ONLY, rc = o->strict ? rc : STRATA_OK_L1_ONLY;
    complete(o, rc, NULL);
}

/* A delete: L1 first, then Redis (strict: Redis first, and L1 only once Redis took it). */
static int del(strata_cache *c, tier t, const strata_key *k, uint64_t now, int strict,
               strata_done_cb cb, void *arg)
{
    strata__reason_set(STRATA_REASON_NONE);
    l1_addr a;
    int l1rc = strata__l1_resolve(c->l1, k, &a);
    if (l1rc != 0)
        return l1rc;
    l1rc = STRATA_ENOTFOUND;
    if (!strict || t.ops == NULL) {
        l1rc = strata__l1_del_at(c->l1, &a, now);
        if (t.ops == NULL || (l1rc != 0 && l1rc != STRATA_ENOTFOUND))
            return l1rc;
    }
    if (t.ops->readonly(t.self)) {
        strata__reason_set(STRATA_REASON_READ_ONLY);
        return strict ? STRATA_EREADONLY : STRATA_OK_L1_ONLY;
    }
    op stack, *o = new_op(c, t, k, OP_DEL, now, &stack);
    if (o == NULL)
        return STRATA_ENOMEM;
    o->dcb = cb, o->arg = arg, o->l1rc = l1rc, o->strict = strict;
    redis_cmd cmd;
    strata__cmd_del(&cmd, a.buf, a.len);
    send(o, &cmd, 1, got_del);
    return call_result(o, NULL);
}

int strata__tt_del(strata_cache *c, tier t, const strata_key *k, uint64_t now, strata_done_cb cb,
                   void *arg)
{
    return del(c, t, k, now, 0, cb, arg);
}

int strata__tt_del_strict(strata_cache *c, tier t, const strata_key *k, uint64_t now,
                          strata_done_cb cb, void *arg)
{
    return del(c, t, k, now, 1, cb, arg);
}
