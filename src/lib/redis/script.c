/* redis/script.c: EVALSHA first, EVAL once on NOSCRIPT, for the synchronous and the pipelined
 * paths (script.h). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>
#include <strata/errors.h>

#include "redis/script.h"

static pthread_mutex_t sha_lock = PTHREAD_MUTEX_INITIALIZER;

/* The digest, computed on first use (every later use reads it without a lock). */
static const char *sha_of(redis_script *s)
{
    if (atomic_load_explicit(&s->ready, memory_order_acquire))
        return s->sha;
    pthread_mutex_lock(&sha_lock);
    if (!atomic_load_explicit(&s->ready, memory_order_relaxed)) {
        unsigned char d[SHA_DIGEST_LENGTH];
        SHA1((const unsigned char *)s->text, s->len, d);
        for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
            snprintf(s->sha + 2 * i, 3, "%02x", d[i]);
        atomic_store_explicit(&s->ready, 1, memory_order_release);
    }
    pthread_mutex_unlock(&sha_lock);
    return s->sha;
}

/* EVALSHA sha args... (by_sha) or EVAL text args... */
static void build(redis_script *s, int by_sha, int nargs, const char **args, const size_t *lens,
                  redis_cmd *m)
{
    memset(m, 0, sizeof *m);
    m->argc = nargs + 2;
    m->argv[0] = by_sha ? "EVALSHA" : "EVAL";
    m->argvlen[0] = by_sha ? 7 : 4;
    m->argv[1] = by_sha ? sha_of(s) : s->text;
    m->argvlen[1] = by_sha ? 40 : s->len;
    for (int i = 0; i < nargs; i++)
        m->argv[i + 2] = args[i], m->argvlen[i + 2] = lens[i];
}

static int noscript(const redisReply *r)
{
    return r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

int strata__script_run(redis_client *cl, redis_script *s, int nargs, const char **args,
                       const size_t *lens, redisReply **reply)
{
    if (nargs < 1 || nargs > REDIS_SCRIPT_MAX_ARGS)
        return STRATA_EINVAL;
    for (int by_sha = 1;; by_sha = 0) {
        redis_cmd m;
        build(s, by_sha, nargs, args, lens, &m);
        int rc = strata__redis_run(cl, &m, 1, reply);
        if (rc != 0 || !by_sha || !noscript(*reply))
            return rc;
        freeReplyObject(*reply); /* Redis lost its script cache: send the script itself */
    }
}

/* ---- on a loop ---------------------------------------------------------------------------- */

/* One asynchronous run: the arguments are kept for the EVAL that may follow. */
typedef struct script_call {
    redis_conn *conn;
    redis_script *s;
    int nargs, by_sha;
    const char *args[REDIS_SCRIPT_MAX_ARGS];
    size_t lens[REDIS_SCRIPT_MAX_ARGS];
    redis_reply_cb cb;
    void *arg;
    char data[]; /* the arguments' bytes */
} script_call;

static int send_call(script_call *k);

static void on_reply(int status, redisReply **r, size_t n, void *arg)
{
    script_call *k = arg;
    if (status == 0 && k->by_sha && noscript(r[0])) {
        k->by_sha = 0;
        if ((status = send_call(k)) == STRATA_PENDING)
            return;
        r = NULL, n = 0;
    }
    k->cb(status, r, n, k->arg);
    free(k);
}

static int send_call(script_call *k)
{
    redis_cmd m;
    build(k->s, k->by_sha, k->nargs, k->args, k->lens, &m);
    return strata__conn_send(k->conn, &m, 1, on_reply, k);
}

int strata__script_send(redis_conn *c, redis_script *s, int nargs, const char **args,
                        const size_t *lens, redis_reply_cb cb, void *arg)
{
    if (nargs < 1 || nargs > REDIS_SCRIPT_MAX_ARGS)
        return STRATA_EINVAL;
    size_t total = 0;
    for (int i = 0; i < nargs; i++)
        total += lens[i];
    script_call *k = malloc(sizeof *k + total + 1);
    if (k == NULL)
        return STRATA_ENOMEM;
    *k = (script_call){.conn = c, .s = s, .nargs = nargs, .by_sha = 1, .cb = cb, .arg = arg};
    char *p = k->data;
    for (int i = 0; i < nargs; i++) {
        memcpy(p, args[i], lens[i]);
        k->args[i] = p, k->lens[i] = lens[i];
        p += lens[i];
    }
    int rc = send_call(k);
    if (rc != STRATA_PENDING)
        free(k);
    return rc;
}
