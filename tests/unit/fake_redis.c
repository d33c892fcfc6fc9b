/* fake_redis.c: the in-memory Redis of the unit tests (fake_redis.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <hiredis/hiredis.h>
#include <strata/errors.h>

#include "fake_redis.h"

uint64_t fake_now_ms = 1700000000000ull;

uint64_t fake_clock(void)
{
    return fake_now_ms;
}

typedef struct item {
    char *key, *val;
    size_t klen, vlen;
    uint64_t expires; /* 0: none */
    struct item *next;
} item;

typedef struct pending {
    redisReply **replies;
    size_t n;
    int status;
    redis_reply_cb cb;
    void *arg;
    struct pending *next;
} pending;

struct fake_redis {
    item *items;
    int down, stall, readonly, link, deferred;
    pending *head, *tail;
    struct {
        char name[16];
        unsigned long n;
    } counts[16];
};

fake_redis *fake_redis_new(void)
{
    fake_redis *f = calloc(1, sizeof *f);
    f->link = 1;
    return f;
}

static void free_replies(redisReply **r, size_t n)
{
    for (size_t i = 0; r != NULL && i < n; i++)
        freeReplyObject(r[i]);
    free(r);
}

void fake_redis_free(fake_redis *f)
{
    for (item *it = f->items, *next; it != NULL; it = next) {
        next = it->next;
        free(it->key), free(it->val), free(it);
    }
    for (pending *p = f->head, *next; p != NULL; p = next) {
        next = p->next;
        free_replies(p->replies, p->n);
        free(p);
    }
    free(f);
}

/* ---- the keyspace ------------------------------------------------------------------------- */

static item **find(fake_redis *f, const char *key, size_t klen)
{
    item **p = &f->items;
    while (*p != NULL) {
        item *it = *p;
        if (it->expires != 0 && it->expires <= fake_now_ms) { /* Redis drops it itself */
            *p = it->next;
            free(it->key), free(it->val), free(it);
            continue;
        }
        if (it->klen == klen && memcmp(it->key, key, klen) == 0)
            return p;
        p = &it->next;
    }
    return NULL;
}

static void store(fake_redis *f, const char *key, size_t klen, const char *val, size_t vlen,
                  uint64_t px)
{
    item **p = find(f, key, klen), *it = p ? *p : calloc(1, sizeof *it);
    if (p == NULL) {
        it->key = malloc(klen), memcpy(it->key, key, klen), it->klen = klen;
        it->next = f->items, f->items = it;
    }
    free(it->val);
    it->val = malloc(vlen ? vlen : 1), memcpy(it->val, val, vlen), it->vlen = vlen;
    it->expires = px ? fake_now_ms + px : 0;
}

int fake_redis_has(fake_redis *f, const char *key)
{
    return find(f, key, strlen(key)) != NULL;
}

void fake_redis_put(fake_redis *f, const char *key, const char *val, size_t len)
{
    store(f, key, strlen(key), val, len, 0);
}

/* ---- replies ------------------------------------------------------------------------------ */

static redisReply *reply(int type)
{
    redisReply *r = calloc(1, sizeof *r);
    r->type = type;
    return r;
}

static redisReply *reply_str(int type, const char *s, size_t len)
{
    redisReply *r = reply(type);
    r->str = malloc(len + 1);
    memcpy(r->str, s, len);
    r->str[len] = '\0';
    r->len = len;
    return r;
}

static redisReply *reply_int(long long v)
{
    redisReply *r = reply(REDIS_REPLY_INTEGER);
    r->integer = v;
    return r;
}

static void count(fake_redis *f, const char *name)
{
    for (int i = 0; i < 16; i++) {
        if (f->counts[i].name[0] == '\0')
            snprintf(f->counts[i].name, sizeof f->counts[i].name, "%s", name);
        if (strcmp(f->counts[i].name, name) == 0) {
            f->counts[i].n++;
            return;
        }
    }
}

unsigned long fake_redis_commands(fake_redis *f, const char *name)
{
    for (int i = 0; i < 16; i++)
        if (strcmp(f->counts[i].name, name) == 0)
            return f->counts[i].n;
    return 0;
}

static int is(const redis_cmd *c, int i, const char *s)
{
    return c->argc > i && c->argvlen[i] == strlen(s) &&
           strncasecmp(c->argv[i], s, c->argvlen[i]) == 0;
}

/* Runs one command, as Redis would. */
static redisReply *run(fake_redis *f, const redis_cmd *c)
{
    char name[16] = "";
    memcpy(name, c->argv[0], c->argvlen[0] < 15 ? c->argvlen[0] : 15);
    count(f, name);
    if (is(c, 0, "GET")) {
        item **p = find(f, c->argv[1], c->argvlen[1]);
        return p ? reply_str(REDIS_REPLY_STRING, (*p)->val, (*p)->vlen) : reply(REDIS_REPLY_NIL);
    }
    if (f->readonly)
        return reply_str(REDIS_REPLY_ERROR, "READONLY You can't write against a read only replica.",
                         54);
    if (is(c, 0, "UNLINK")) {
        item **p = find(f, c->argv[1], c->argvlen[1]);
        if (p == NULL)
            return reply_int(0);
        item *it = *p;
        *p = it->next;
        free(it->key), free(it->val), free(it);
        return reply_int(1);
    }
    if (is(c, 0, "SET")) {
        uint64_t px = 0;
        int nx = 0, get = 0;
        for (int i = 3; i < c->argc; i++) {
            if (is(c, i, "PX"))
                px = strtoull(c->argv[++i], NULL, 10);
            nx |= is(c, i, "NX"), get |= is(c, i, "GET");
        }
        item **p = find(f, c->argv[1], c->argvlen[1]);
        redisReply *old = !get ? NULL
                          : p  ? reply_str(REDIS_REPLY_STRING, (*p)->val, (*p)->vlen)
                               : reply(REDIS_REPLY_NIL);
        if (nx && p != NULL)
            return old ? old : reply(REDIS_REPLY_NIL);
        store(f, c->argv[1], c->argvlen[1], c->argv[2], c->argvlen[2], px);
        return old ? old : reply_str(REDIS_REPLY_STATUS, "OK", 2);
    }
    return reply_str(REDIS_REPLY_ERROR, "ERR unknown command", 19);
}

/* ---- the tier ----------------------------------------------------------------------------- */

static void deliver(pending *p)
{
    p->cb(p->status, p->status == 0 ? p->replies : NULL, p->status == 0 ? p->n : 0, p->arg);
    free_replies(p->replies, p->n);
    free(p);
}

static int fake_send(void *self, const redis_cmd *cmds, size_t n, redis_reply_cb cb, void *arg)
{
    fake_redis *f = self;
    if (f->down)
        return STRATA_EUNAVAILABLE;
    pending *p = calloc(1, sizeof *p);
    p->n = n, p->cb = cb, p->arg = arg;
    if (f->stall) {
        p->status = STRATA_ETIMEDOUT; /* taken, never answered: the deadline fails it */
    } else {
        p->replies = calloc(n, sizeof *p->replies);
        for (size_t i = 0; i < n; i++)
            p->replies[i] = run(f, &cmds[i]); /* Redis runs it now; the answer may come later */
    }
    if (!f->deferred && !f->stall) {
        deliver(p);
        return STRATA_PENDING;
    }
    if (f->tail != NULL)
        f->tail->next = p;
    else
        f->head = p;
    f->tail = p;
    return STRATA_PENDING;
}

static int fake_script(void *self, redis_script *s, int nargs, const char **args,
                       const size_t *lens, redis_reply_cb cb, void *arg)
{
    (void)s, (void)nargs, (void)args, (void)lens;
    redis_cmd c = {.argc = 1, .argv = {"EVALSHA"}, .argvlen = {7}};
    return fake_send(self, &c, 1, cb, arg); /* scripts are tested against a real Redis */
}

int fake_redis_flush(fake_redis *f)
{
    int n = 0;
    while (f->head != NULL) {
        pending *p = f->head;
        f->head = p->next;
        if (f->head == NULL)
            f->tail = NULL;
        deliver(p);
        n++;
    }
    return n;
}

static int fake_readonly(void *self)
{
    return ((fake_redis *)self)->readonly;
}

static int fake_down(void *self)
{
    return ((fake_redis *)self)->down;
}

static int fake_closing(void *self)
{
    (void)self;
    return 0;
}

static int fake_link_up(void *self)
{
    return ((fake_redis *)self)->link;
}

const tier_ops fake_redis_ops = {.send = fake_send,
                                 .script = fake_script,
                                 .readonly = fake_readonly,
                                 .down = fake_down,
                                 .closing = fake_closing,
                                 .link_up = fake_link_up};

void fake_redis_down(fake_redis *f, int down)
{
    f->down = down;
}

void fake_redis_stall(fake_redis *f, int stall)
{
    f->stall = stall;
}

void fake_redis_readonly(fake_redis *f, int ro)
{
    f->readonly = ro;
}

void fake_redis_link(fake_redis *f, int up)
{
    f->link = up;
}

void fake_redis_deferred(fake_redis *f, int deferred)
{
    f->deferred = deferred;
}
