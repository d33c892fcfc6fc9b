/* cache_async.c: the two-tier cache on an event loop (strata_loop), for servers.
 *
 * Each loop owns one hiredis async connection attached to its libevent base; every call made on
 * the loop is pipelined on it, so a hundred concurrent requests cost one connection and no thread
 * ever waits. The convention (cache.h): a call answers at once when it can (an L1 hit, Redis known
 * down, a bad argument) and otherwise returns STRATA_PENDING and calls back exactly once.
 *
 * hiredis 0.14 has no command timeouts, so the loop keeps its pending operations in send order
 * (replies come back in that order) and a timer checks the oldest one's deadline, and the connect
 * deadline: past either, the connection is freed (redisAsyncFree calls every pending callback with
 * a NULL reply, which completes each operation from L1) and the next call reconnects. The number
 * of pending operations is bounded (max_pending): past it, calls fail fast to L1.
 *
 * An operation may take two rounds: a read whose entry carries tags L1 does not know asks Redis
 * for their versions; a tagged write first gets (or makes) its tags' versions, then writes.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <strata/errors.h>
#include <xxhash.h>

#include "cache/cache_internal.h"
#include "l1/entry.h"
#include "l1/l1_internal.h"
#include "core/tag_key.h"
#include "l1/tags.h"

#define TICK_MS 10

enum op_kind { OP_GET, OP_GET_TAGS, OP_SET_TAGS, OP_SET, OP_DEL, OP_RAW };

typedef struct op op;

typedef struct op_ref { /* privdata of one command: its operation and its index there */
    op *o;
    unsigned idx;
} op_ref;

struct op {
    strata_loop *lp;
    op *prev, *next;
    int kind, outstanding, failed;
    uint64_t deadline;
    strata_get_cb gcb;
    strata_done_cb dcb;
    void *arg;
    /* the key, copied */
    char ns[STRATA_NAME_MAX + 1], tenant[STRATA_NAME_MAX + 1];
    char *user_key;
    strata_key k;
    uint64_t ticket;
    /* writes: the prepared entry */
    struct strata_value *e;
    unsigned flags;
    uint64_t now;
    int result;
    op_ref ref0;           /* the privdata of a single command */
    int waiting;           /* queued until the connection's AUTH / SELECT succeed */
    int (*start)(op *o);   /* sends the op's first commands: 0, or -1 if it could not */
    const l2_cmd *raw_cmd; /* OP_RAW: the caller's command (alive until its callback) */
    struct op_tags *x;     /* only for a second round of tag commands */
    /* raw commands (strata__loop_send) */
    void (*raw_cb)(const redisReply *r, void *arg);
};

/* What a round of tag commands needs, allocated only then: most operations carry no tags, and
 * a small op keeps malloc on its fast path (large blocks make glibc consolidate its bins). */
typedef struct op_tags {
    char *blob;    /* a read: the entry as Redis had it (hiredis frees its reply) */
    format_view f; /* decoded from blob */
    uint64_t have[STRATA_TAGS_MAX_PER_ENTRY];
    uint64_t tag_tickets[STRATA_TAGS_MAX_PER_ENTRY], tag_key_hash[STRATA_TAGS_MAX_PER_ENTRY];
    unsigned asked[STRATA_TAGS_MAX_PER_ENTRY];
    uint64_t cand[STRATA_TAGS_MAX_PER_ENTRY]; /* a write: the versions it offers */
    op_ref refs[STRATA_TAGS_MAX_PER_ENTRY];
} op_tags;

struct strata_loop {
    strata_cache *cache;
    struct event_base *base;
    redisAsyncContext *ac;
    int connected, drop_asked, closing;
    int ready;      /* AUTH and SELECT answered OK: commands may be sent */
    int handshakes; /* handshake replies still expected */
    uint64_t connect_deadline;
    struct event *tick;
    op *head, *tail;
    unsigned npending;
};

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static unsigned socket_timeout(strata_loop *lp)
{
    unsigned ms = strata__l2_config(lp->cache->l2)->socket_timeout_ms;
    return ms ? ms : 250;
}

/* ---- the connection ----------------------------------------------------------------------- */

static void fall_back(op *o);
static void run_waiting(strata_loop *lp);
static void fail_waiting(strata_loop *lp);

/* Frees the connection; every command still in it comes back with a NULL reply. */
static void drop(strata_loop *lp, const char *why)
{
    redisAsyncContext *ac = lp->ac;
    if (ac == NULL)
        return;
    lp->ac = NULL;
    lp->connected = 0;
    lp->drop_asked = 0;
    lp->ready = 0;
    if (why != NULL)
        strata__l2_failed(lp->cache->l2, why);
    redisAsyncFree(ac);
    fail_waiting(lp); /* never sent: no hiredis callback will come for them */
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    strata_loop *lp = ac->data;
    if (lp == NULL || lp->ac != ac)
        return;
    if (status == REDIS_OK)
        lp->connected = 1;
    else
        lp->ac = NULL; /* hiredis frees a context whose connect failed */
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    (void)status;
    strata_loop *lp = ac->data;
    if (lp != NULL && lp->ac == ac) {
        lp->ac = NULL;
        lp->connected = 0;
        lp->ready = 0;
    }
}

/* AUTH and SELECT come back before anything else is sent: a command sent behind a failed AUTH
 * would run as Redis' default user, behind a failed SELECT in the wrong database. */
static void on_handshake(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)priv;
    strata_loop *lp = ac->data;
    redisReply *r = reply;
    if (lp == NULL || lp->ac != ac)
        return;
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        if (r != NULL)
            strata__l2_note_error(lp->cache->l2, r->str);
        lp->drop_asked = 1; /* refused: the timer drops the connection (not from in here) */
        return;
    }
    if (--lp->handshakes == 0) {
        lp->ready = 1;
        run_waiting(lp);
    }
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    strata_loop *lp = arg;
    uint64_t now = mono_ms();
    if (lp->ac == NULL)
        return;
    if (lp->drop_asked)
        drop(lp, "redis refused AUTH or SELECT");
    else if (!lp->connected && now > lp->connect_deadline)
        drop(lp, "connect to redis timed out");
    else if (lp->head != NULL && now > lp->head->deadline)
        drop(lp, "redis did not answer within the socket timeout");
}

static int connect_async(strata_loop *lp)
{
    l2 *l = lp->cache->l2;
    const redis_url *u = strata__l2_url(l);
    redisAsyncContext *ac =
        u->path[0] ? redisAsyncConnectUnix(u->path) : redisAsyncConnect(u->host, u->port);
    if (ac == NULL || ac->err) {
        strata__l2_failed(l, ac ? ac->errstr : "out of memory");
        if (ac != NULL)
            redisAsyncFree(ac);
        return -1;
    }
    ac->data = lp;
    redisLibeventAttach(ac, lp->base);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    lp->handshakes = 0;
    if (u->password[0] && u->user[0])
        redisAsyncCommand(ac, on_handshake, NULL, "AUTH %s %s", u->user, u->password),
            lp->handshakes++;
    else if (u->password[0])
        redisAsyncCommand(ac, on_handshake, NULL, "AUTH %s", u->password), lp->handshakes++;
    if (u->db != 0)
        redisAsyncCommand(ac, on_handshake, NULL, "SELECT %d", u->db), lp->handshakes++;
    lp->ready = lp->handshakes == 0; /* nothing to wait for: send at once */
    unsigned ct = strata__l2_config(l)->connect_timeout_ms;
    lp->connect_deadline = mono_ms() + (ct ? ct : 500);
    lp->ac = ac;
    return 0;
}

/* ---- operations --------------------------------------------------------------------------- */

static void unlink_op(op *o)
{
    strata_loop *lp = o->lp;
    if (o->prev != NULL)
        o->prev->next = o->next;
    else if (lp->head == o)
        lp->head = o->next;
    if (o->next != NULL)
        o->next->prev = o->prev;
    else if (lp->tail == o)
        lp->tail = o->prev;
    o->prev = o->next = NULL;
}

static void append_op(op *o)
{
    strata_loop *lp = o->lp;
    o->prev = lp->tail;
    o->next = NULL;
    if (lp->tail != NULL)
        lp->tail->next = o;
    else
        lp->head = o;
    lp->tail = o;
}

static void free_op(op *o)
{
    free(o->user_key);
    if (o->x != NULL)
        free(o->x->blob);
    free(o->x);
    free(o);
}

/* Finishes o: one callback, then it is gone. */
static void complete(op *o, int status, strata_value *v)
{
    strata_loop *lp = o->lp;
    unlink_op(o);
    lp->npending--;
    if (o->e != NULL) /* a write that never got to finish_set */
        strata__l1_discard(o->e);
    if (o->gcb != NULL)
        o->gcb(status, v, o->arg);
    else if (o->dcb != NULL)
        o->dcb(status, o->arg);
    else
        strata_value_release(v);
    free_op(o);
}

/* What an operation answers when Redis could not (or, closing, when nobody waits). */
static void fall_back(op *o)
{
    strata_cache *c = o->lp->cache;
    if (o->kind == OP_RAW) {
        void (*cb)(const redisReply *, void *) = o->raw_cb;
        void *arg = o->arg;
        complete(o, 0, NULL);
        cb(NULL, arg); /* the caller decides what a failure means; also when closing */
        return;
    }
    if (o->lp->closing) {
        complete(o, STRATA_ETIMEDOUT, NULL);
        return;
    }
    atomic_fetch_add(&c->fallbacks, 1);
    atomic_fetch_add(&c->errors, 1); /* only real failures get here: a closed breaker sent it */
    if (o->kind == OP_GET || o->kind == OP_GET_TAGS) {
        strata_value *v = NULL;
        int rc = strata__l1_get_ex(c->l1, &o->k, strata_now_ms(), 0, &v);
        complete(o, rc == STRATA_OK ? STRATA_OK_L1_ONLY : rc, v);
    } else if (o->kind == OP_DEL) {
        complete(o, STRATA_OK_L1_ONLY, NULL);
    } else {
        struct strata_value *e = o->e;
        o->e = NULL;
        complete(o,
                 strata__cache_finish_set(c, e, o->flags, o->now, STRATA__NO_TICKET,
                                          STRATA_EUNAVAILABLE),
                 NULL);
    }
}

static void on_reply(redisAsyncContext *ac, void *reply, void *priv);

/* Sends one command of o. Returns 0 or -1 (no connection could take it). */
static int send_cmd(op *o, const l2_cmd *cmd, unsigned idx)
{
    strata_loop *lp = o->lp;
    if (lp->ac == NULL && connect_async(lp) != 0)
        return -1;
    op_ref *ref = o->x != NULL ? &o->x->refs[idx] : &o->ref0;
    ref->o = o;
    ref->idx = idx;
    const char **argv = cmd->many ? cmd->many : (const char **)cmd->argv;
    const size_t *lens = cmd->many ? cmd->manylen : cmd->argvlen;
    if (redisAsyncCommandArgv(lp->ac, on_reply, ref, cmd->argc, argv, lens) != REDIS_OK)
        return -1;
    o->outstanding++;
    return 0;
}

/* Starts o now if the connection is ready, or queues it until the handshake answers. Returns 0,
 * or -1 when no connection could be made or o could not be sent (the caller falls back). */
static int launch(op *o, int (*start)(op *o))
{
    strata_loop *lp = o->lp;
    o->start = start;
    if (lp->ac == NULL && connect_async(lp) != 0)
        return -1;
    if (lp->ready)
        return start(o);
    o->waiting = 1;
    return 0;
}

static void run_waiting(strata_loop *lp)
{
    op *o = lp->head;
    while (o != NULL) {
        op *next = o->next; /* o may complete (and be freed) below */
        if (o->waiting) {
            o->waiting = 0;
            if (o->start(o) != 0)
                fall_back(o);
        }
        o = next;
    }
}

static void fail_waiting(strata_loop *lp)
{
    op *o = lp->head;
    while (o != NULL) {
        op *next = o->next;
        if (o->waiting) {
            o->waiting = 0;
            fall_back(o);
        }
        o = next;
    }
}

/* Moves o to the end of the pending list with a fresh deadline (a new round of commands). */
static void restart_clock(op *o)
{
    unlink_op(o);
    append_op(o);
    o->deadline = mono_ms() + socket_timeout(o->lp);
}

static void judge_and_complete(op *o, const format_view *f, const uint64_t *have)
{
    strata_value *v = NULL;
    int rc = strata__cache_judge(o->lp->cache, &o->k, f, have, o->ticket, &v);
    strata_cache *c = o->lp->cache;
    atomic_fetch_add(rc == 0 ? &c->hits : &c->misses, 1);
    complete(o, rc, v);
}

/* The tag versions L1 knows (when trusted); returns how many it does not. */
static unsigned known_tags(op *o, const format_view *f, uint64_t *have)
{
    strata_cache *c = o->lp->cache;
    int trusted = strata__cache_l1_trusted(c);
    unsigned unknown = 0;
    for (unsigned i = 0; i < f->ntags; i++) {
        char tag[STRATA_TAG_MAX + 1];
        memcpy(tag, f->tags[i].name, f->tags[i].name_len);
        tag[f->tags[i].name_len] = '\0';
        have[i] = 0;
        if (!trusted || strata__tags_current(strata__l1_tags(c->l1),
                                             strata__tag_hash(o->k.tenant, tag), 0, &have[i]) != 0)
            unknown++, have[i] = UINT64_MAX; /* to ask Redis */
    }
    return unknown;
}

/* A Redis read came back with an entry: find its tags' versions (L1 first), then judge. The
 * common case (no tags, or all known) is judged straight from hiredis' reply, without a copy. */
static void got_entry(op *o, const redisReply *r)
{
    strata_cache *c = o->lp->cache;
    const char *data;
    size_t len;
    format_view f;
    uint64_t have[STRATA_TAGS_MAX_PER_ENTRY];
    int rc = strata__reply_get(r, &data, &len);
    if (rc == 0 && (strata__format_decode(data, len, &f) != 0 ||
                    (f.expires_ms != 0 && strata_now_ms() >= f.expires_ms)))
        rc = STRATA_ENOTFOUND;
    if (rc != 0) {
        if (rc == STRATA_ENOTFOUND)
            atomic_fetch_add(&c->misses, 1);
        complete(o, rc, NULL);
        return;
    }
    if (known_tags(o, &f, have) == 0) {
        judge_and_complete(o, &f, have);
        return;
    }
    /* A second round: keep the entry (the reply is freed when we return). */
    op_tags *x = o->x = calloc(1, sizeof *o->x);
    if (x == NULL || (x->blob = malloc(len)) == NULL) {
        complete(o, STRATA_ENOMEM, NULL);
        return;
    }
    memcpy(x->blob, data, len);
    strata__format_decode(x->blob, len, &x->f);
    memcpy(x->have, have, sizeof have);
    o->kind = OP_GET_TAGS;
    const char *prefix = strata__l1_prefix(c->l1);
    unsigned nask = 0;
    for (unsigned i = 0; i < x->f.ntags && !o->failed; i++) {
        if (x->have[i] != UINT64_MAX)
            continue;
        char tag[STRATA_TAG_MAX + 1], key[STRATA_TAG_KEY_MAX];
        size_t klen;
        memcpy(tag, x->f.tags[i].name, x->f.tags[i].name_len);
        tag[x->f.tags[i].name_len] = '\0';
        x->have[i] = 0;
        if (strata__tag_key_build(prefix, o->k.tenant, tag, key, sizeof key, &klen) != 0)
            continue;
        x->tag_key_hash[nask] = XXH3_64bits(key, klen);
        x->tag_tickets[nask] = strata__l1_ticket(c->l1, x->tag_key_hash[nask]);
        x->asked[nask] = i;
        l2_cmd cmd;
        strata__cmd_get(&cmd, key, klen);
        if (send_cmd(o, &cmd, nask++) != 0)
            o->failed = 1;
    }
    if (o->outstanding == 0)
        o->failed ? fall_back(o) : judge_and_complete(o, &x->f, x->have);
    else
        restart_clock(o);
}

static void got_tag(op *o, const redisReply *r, unsigned idx)
{
    strata_cache *c = o->lp->cache;
    op_tags *x = o->x;
    unsigned i = x->asked[idx];
    const char *s;
    size_t len;
    int rc = strata__reply_get(r, &s, &len);
    if (rc == 0)
        rc = strata__tag_version_parse(s, len, &x->have[i]);
    if (rc == STRATA_ENOTFOUND)
        x->have[i] = 0, rc = 0; /* missing: invalidates what carries it */
    if (rc != 0) {
        o->failed = 1;
        return;
    }
    if (x->have[i] != 0 && strata__cache_l1_trusted(c)) {
        char tag[STRATA_TAG_MAX + 1];
        memcpy(tag, x->f.tags[i].name, x->f.tags[i].name_len);
        tag[x->f.tags[i].name_len] = '\0';
        strata__l1_tag_learn(c->l1, strata__tag_hash(o->k.tenant, tag), x->tag_key_hash[idx],
                             x->have[i], x->tag_tickets[idx]);
    }
}

/* The tags of a write have their versions: write the entry. */
static void send_set(op *o)
{
    char *blob;
    size_t blen;
    uint64_t px;
    int rc = strata__cache_encode(o->e, o->now, &blob, &blen, &px);
    if (rc != 0) {
        struct strata_value *e = o->e;
        o->e = NULL;
        complete(o,
                 rc == 1 ? strata__cache_finish_set(o->lp->cache, e, o->flags, o->now,
                                                    STRATA__NO_TICKET, 0)
                         : rc,
                 NULL);
        return;
    }
    o->kind = OP_SET;
    o->ticket = strata__l1_ticket(o->lp->cache->l1, o->e->hash);
    l2_cmd cmd;
    strata__cmd_set(&cmd, entry_key(o->e), o->e->key_len, blob, blen, px,
                    (o->flags & STRATA_SET_NX) != 0);
    rc = send_cmd(o, &cmd, 0);
    free(blob); /* hiredis formatted its own copy */
    if (rc != 0)
        fall_back(o);
    else
        restart_clock(o);
}

static void got_tag_version(op *o, const redisReply *r, unsigned idx)
{
    uint64_t v;
    if (strata__reply_tag_version(r, o->x->cand[idx], &v) != 0) {
        o->failed = 1;
        return;
    }
    entry_tag *t = (entry_tag *)(void *)(o->e->data + o->e->tags_off);
    t[idx].version = v; /* the entry is not published yet: still ours to fill */
}

static void on_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    op_ref *ref = priv;
    op *o = ref->o;
    redisReply *r = reply;
    strata_cache *c = o->lp->cache;
    o->outstanding--;
    if (r == NULL) {
        if (!o->failed && !o->lp->closing)
            strata__l2_failed(c->l2, "redis connection lost with calls in flight");
        o->failed = 1;
    } else if (!o->failed) {
        if (strata__reply_error(r) == STRATA_EREADONLY)
            strata__l2_saw_readonly(c->l2);
        strata__cache_recovered(c, strata__l2_succeeded(c->l2));
        switch (o->kind) {
        case OP_GET:
            got_entry(o, r);
            return;
        case OP_GET_TAGS:
            got_tag(o, r, ref->idx);
            break;
        case OP_SET_TAGS:
            got_tag_version(o, r, ref->idx);
            break;
        case OP_SET: {
            struct strata_value *e = o->e;
            o->e = NULL;
            complete(
                o,
                strata__cache_finish_set(c, e, o->flags, o->now, o->ticket, strata__reply_set(r)),
                NULL);
            return;
        }
        case OP_RAW: {
            void (*cb)(const redisReply *, void *) = o->raw_cb;
            void *arg = o->arg;
            complete(o, 0, NULL);
            cb(r, arg);
            return;
        }
        case OP_DEL: {
            int rc = strata__reply_del(r);
            complete(o,
                     rc == STRATA_ENOTFOUND && o->result == 0 ? 0
                     : rc == STRATA_EREADONLY                 ? STRATA_OK_L1_ONLY
                                                              : rc,
                     NULL);
            return;
        }
        }
    }
    if (o->outstanding > 0)
        return;
    if (o->failed)
        fall_back(o);
    else if (o->kind == OP_GET_TAGS)
        judge_and_complete(o, &o->x->f, o->x->have);
    else if (o->kind == OP_SET_TAGS)
        send_set(o);
}

/* ---- the loop and the calls --------------------------------------------------------------- */

int strata_loop_new(strata_cache *c, struct event_base *base, strata_loop **out)
{
    *out = NULL;
    if (c == NULL || base == NULL)
        return STRATA_EINVAL;
    strata_loop *lp = calloc(1, sizeof *lp);
    if (lp == NULL)
        return STRATA_ENOMEM;
    lp->cache = c;
    lp->base = base;
    if (c->l2 != NULL) {
        struct timeval tv = {0, TICK_MS * 1000};
        lp->tick = event_new(base, -1, EV_PERSIST, tick, lp);
        if (lp->tick == NULL || event_add(lp->tick, &tv) != 0) {
            if (lp->tick)
                event_free(lp->tick);
            free(lp);
            return STRATA_ENOMEM;
        }
    }
    *out = lp;
    return 0;
}

void strata_loop_free(strata_loop *lp)
{
    if (lp == NULL)
        return;
    lp->closing = 1;
    drop(lp, NULL); /* every pending call gets STRATA_ETIMEDOUT */
    if (lp->tick != NULL)
        event_free(lp->tick);
    free(lp);
}

/* A new operation for k, queued; NULL when the queue is full or memory is short. */
static op *new_op(strata_loop *lp, const strata_key *k, int kind)
{
    unsigned max = strata__l2_config(lp->cache->l2)->max_pending;
    /* Closing: a callback run by strata_loop_free may start another call; it must not queue
     * (nothing would answer it, and it would be leaked): it falls back at once instead. */
    if (lp->closing || lp->npending >= (max ? max : 1024))
        return NULL;
    op *o = calloc(1, sizeof *o);
    if (o == NULL || (o->user_key = malloc(k->len ? k->len : 1)) == NULL) {
        free(o);
        return NULL;
    }
    o->lp = lp;
    o->kind = kind;
    /* Names were checked (<= 64 bytes) by whoever built k's stored key. */
    const char *tenant = k->tenant ? k->tenant : STRATA_DEFAULT_TENANT;
    memcpy(o->ns, k->ns, strnlen(k->ns, STRATA_NAME_MAX) + 1);
    o->ns[STRATA_NAME_MAX] = '\0';
    memcpy(o->tenant, tenant, strnlen(tenant, STRATA_NAME_MAX) + 1);
    o->tenant[STRATA_NAME_MAX] = '\0';
    memcpy(o->user_key, k->key, k->len);
    o->k = (strata_key){o->ns, o->tenant, o->user_key, k->len};
    o->deadline = mono_ms() + socket_timeout(lp);
    append_op(o);
    lp->npending++;
    return o;
}

/* Redis may be asked now: configured, breaker letting calls through. */
static int l2_allowed(strata_cache *c)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return strata__breaker_allow(strata__l2_breaker(c->l2),
                                 (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u);
}

static int start_get(op *o)
{
    char key[STRATA_STORED_KEY_MAX(STRATA_KEY_MAX_LIMIT)];
    size_t klen;
    uint64_t hash;
    strata__l1_build_key(o->lp->cache->l1, &o->k, key, sizeof key, &klen, &hash);
    l2_cmd cmd;
    strata__cmd_get(&cmd, key, klen);
    return send_cmd(o, &cmd, 0);
}

int strata_cache_get_async(strata_loop *lp, const strata_key *k, strata_get_cb cb, void *arg,
                           strata_value **out)
{
    strata_cache *c = lp->cache;
    *out = NULL;
    if (c->l2 == NULL)
        return strata_l1_get(c->l1, k, strata_now_ms(), out);
    char key[STRATA_STORED_KEY_MAX(STRATA_KEY_MAX_LIMIT)];
    size_t klen;
    uint64_t hash;
    int rc = strata__l1_build_key(c->l1, k, key, sizeof key, &klen, &hash);
    if (rc != 0)
        return rc;
    if (strata__cache_l1_trusted(c) &&
        (rc = strata__l1_get_ex(c->l1, k, strata_now_ms(), 1, out)) != STRATA_ENOTFOUND)
        return rc;
    op *o = l2_allowed(c) ? new_op(lp, k, OP_GET) : NULL;
    if (o == NULL) { /* Redis down, or the queue full: L1 is the answer */
        atomic_fetch_add(&c->fallbacks, 1);
        rc = strata__l1_get_ex(c->l1, k, strata_now_ms(), 0, out);
        return rc == STRATA_OK ? STRATA_OK_L1_ONLY : rc;
    }
    o->gcb = cb;
    o->arg = arg;
    o->ticket = strata__l1_ticket(c->l1, hash);
    if (launch(o, start_get) != 0) {
        o->gcb = NULL; /* answered here, not through the callback */
        complete(o, 0, NULL);
        atomic_fetch_add(&c->fallbacks, 1);
        rc = strata__l1_get_ex(c->l1, k, strata_now_ms(), 0, out);
        return rc == STRATA_OK ? STRATA_OK_L1_ONLY : rc;
    }
    return STRATA_PENDING;
}

/* A write's first round: its tags' versions, or (no tags) the write itself. */
static int start_set(op *o)
{
    strata_cache *c = o->lp->cache;
    struct strata_value *e = o->e;
    if (e->ntags == 0) {
        send_set(o); /* may complete o (through its callback) */
        return 0;
    }
    if (o->x == NULL && (o->x = calloc(1, sizeof *o->x)) == NULL)
        return -1;
    const char *prefix = strata__l1_prefix(c->l1);
    for (unsigned i = 0; i < e->ntags; i++) {
        char key[STRATA_TAG_KEY_MAX];
        size_t klen;
        l2_cmd cmd;
        strata__tag_key_build(prefix, o->tenant, strata_value_tag(e, i), key, sizeof key, &klen);
        o->x->cand[i] = strata__cache_random(c);
        strata__cmd_tag_version(&cmd, key, klen, o->x->cand[i]);
        if (send_cmd(o, &cmd, i) != 0) {
            o->failed = 1;
            return o->outstanding == 0 ? -1 : 0; /* sent ones come back, then it falls back */
        }
    }
    return 0;
}

int strata_cache_set_async(strata_loop *lp, const strata_key *k, const void *value, size_t len,
                           const strata_set_opts *opts, strata_done_cb cb, void *arg)
{
    strata_cache *c = lp->cache;
    uint64_t now = strata_now_ms();
    if (c->l2 == NULL)
        return strata_l1_set(c->l1, k, value, len, opts, now);
    /* Built now with placeholder tag versions; the real ones are filled in before the write. */
    uint64_t zero[STRATA_TAGS_MAX_PER_ENTRY] = {0};
    l1_write w = {
        .k = k, .value = value, .len = len, .opts = opts, .now_ms = now, .tag_versions = zero};
    struct strata_value *e;
    int rc = strata__l1_prepare(c->l1, &w, &e);
    if (rc != 0)
        return rc;
    unsigned flags = opts ? opts->flags : 0;
    op *o = !strata__l2_readonly(c->l2) && l2_allowed(c) ? new_op(lp, k, OP_SET_TAGS) : NULL;
    if (o == NULL) {
        /* Tag versions then come from L1's table: Redis cannot be asked. */
        strata__l1_discard(e);
        w.tag_versions = NULL;
        if ((rc = strata__l1_prepare(c->l1, &w, &e)) != 0)
            return rc;
        return strata__cache_finish_set(c, e, flags, now, STRATA__NO_TICKET, STRATA_EREADONLY);
    }
    o->dcb = cb;
    o->arg = arg;
    o->e = e;
    o->flags = flags;
    o->now = now;
    if (launch(o, start_set) != 0) {
        o->dcb = NULL;
        e = o->e, o->e = NULL;
        complete(o, 0, NULL);
        atomic_fetch_add(&c->fallbacks, 1);
        return strata__cache_finish_set(c, e, flags, now, STRATA__NO_TICKET, STRATA_EUNAVAILABLE);
    }
    return STRATA_PENDING;
}

static int start_del(op *o)
{
    char key[STRATA_STORED_KEY_MAX(STRATA_KEY_MAX_LIMIT)];
    size_t klen;
    uint64_t hash;
    strata__l1_build_key(o->lp->cache->l1, &o->k, key, sizeof key, &klen, &hash);
    l2_cmd cmd;
    strata__cmd_del(&cmd, key, klen);
    return send_cmd(o, &cmd, 0);
}

int strata_cache_del_async(strata_loop *lp, const strata_key *k, strata_done_cb cb, void *arg)
{
    strata_cache *c = lp->cache;
    uint64_t now = strata_now_ms();
    int l1rc = strata_l1_del(c->l1, k, now);
    if (c->l2 == NULL || (l1rc != 0 && l1rc != STRATA_ENOTFOUND))
        return l1rc;
    if (strata__l2_readonly(c->l2))
        return STRATA_OK_L1_ONLY;
    op *o = l2_allowed(c) ? new_op(lp, k, OP_DEL) : NULL;
    if (o == NULL) {
        atomic_fetch_add(&c->fallbacks, 1);
        return STRATA_OK_L1_ONLY;
    }
    o->dcb = cb;
    o->arg = arg;
    o->result = l1rc;
    if (launch(o, start_del) != 0) {
        o->dcb = NULL;
        complete(o, 0, NULL);
        atomic_fetch_add(&c->fallbacks, 1);
        return STRATA_OK_L1_ONLY;
    }
    return STRATA_PENDING;
}

static int start_raw(op *o)
{
    return send_cmd(o, o->raw_cmd, 0);
}

int strata__loop_send(strata_loop *lp, const l2_cmd *cmd,
                      void (*cb)(const redisReply *r, void *arg), void *arg)
{
    strata_cache *c = lp->cache;
    if (c->l2 == NULL || !l2_allowed(c))
        return STRATA_EUNAVAILABLE;
    strata_key none = {"-", NULL, "-", 1};
    op *o = new_op(lp, &none, OP_RAW);
    if (o == NULL)
        return STRATA_EUNAVAILABLE; /* the queue is full: fail fast */
    o->raw_cb = cb;
    o->arg = arg;
    o->raw_cmd = cmd;
    if (launch(o, start_raw) != 0) {
        o->raw_cb = NULL;
        complete(o, 0, NULL);
        return STRATA_EUNAVAILABLE;
    }
    return STRATA_PENDING;
}

strata_cache *strata__loop_cache(strata_loop *lp)
{
    return lp->cache;
}
