/* redis/cmd.c: building the shared tier's commands and reading their replies, in one place, so the
 * synchronous and asynchronous paths cannot drift apart.
 *
 * Values are written with SET ... PX (the entry's deadline, expiry plus grace, from now): Redis
 * drops them itself, and the format header carries the absolute times every instance agrees on.
 * Deletes are UNLINK (freed in the background, never blocking Redis on a large value).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <strata/errors.h>

#include "redis/cmd.h"

static void arg(redis_cmd *c, const char *s, size_t n)
{
    c->argv[c->argc] = s;
    c->argvlen[c->argc] = n;
    c->argc++;
}

static void reset(redis_cmd *c)
{
    c->argc = 0;
    c->many = NULL;
    c->manylen = NULL;
}

static void arg_str(redis_cmd *c, const char *s)
{
    arg(c, s, strlen(s));
}

int strata__cmd_key(const redis_cmd *c, const char **key, size_t *len)
{
    const char *const *v = c->many ? c->many : c->argv;
    const size_t *l = c->many ? c->manylen : c->argvlen;
    int at = 0;
    if (c->argc >= 2 && (strcasecmp(v[0], "GET") == 0 || strcasecmp(v[0], "SET") == 0 ||
                         strcasecmp(v[0], "UNLINK") == 0 || strcasecmp(v[0], "DEL") == 0))
        at = 1;
    else if (c->argc >= 4 && (strcasecmp(v[0], "EVALSHA") == 0 || strcasecmp(v[0], "EVAL") == 0) &&
             !(l[2] == 1 && v[2][0] == '0'))
        at = 3;
    if (at == 0)
        return 0;
    *key = v[at];
    *len = l[at];
    return 1;
}

/* The decimal digits of v, written backwards from end; returns where they start. */
static char *digits(size_t v, char *end)
{
    do
        *--end = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    return end;
}

static size_t ndigits(size_t v)
{
    size_t n = 1;
    while (v >= 10)
        v /= 10, n++;
    return n;
}

size_t strata__cmd_len(const redis_cmd *c)
{
    const size_t *l = c->many ? c->manylen : c->argvlen;
    size_t n = 1 + ndigits((size_t)c->argc) + 2; /* *<argc>\r\n */
    for (int i = 0; i < c->argc; i++)
        n += 1 + ndigits(l[i]) + 2 + l[i] + 2; /* $<len>\r\n<arg>\r\n */
    return n;
}

/* *<n>\r\n or $<n>\r\n at out; returns the end. */
static char *header(char *out, char kind, size_t n)
{
    char buf[24], *d = digits(n, buf + sizeof buf);
    size_t len = (size_t)(buf + sizeof buf - d);
    *out++ = kind;
    memcpy(out, d, len);
    out += len;
    *out++ = '\r', *out++ = '\n';
    return out;
}

size_t strata__cmd_write(const redis_cmd *c, char *out)
{
    const char *const *v = c->many ? c->many : c->argv;
    const size_t *l = c->many ? c->manylen : c->argvlen;
    char *p = header(out, '*', (size_t)c->argc);
    for (int i = 0; i < c->argc; i++) {
        p = header(p, '$', l[i]);
        memcpy(p, v[i], l[i]);
        p += l[i];
        *p++ = '\r', *p++ = '\n';
    }
    return (size_t)(p - out);
}

long strata__cmd_format(const redis_cmd *c, char **out)
{
    size_t len = strata__cmd_len(c);
    if ((*out = malloc(len)) == NULL)
        return -1;
    return (long)strata__cmd_write(c, *out);
}

void strata__cmd_free(char *formatted)
{
    free(formatted);
}

void strata__cmd_get(redis_cmd *c, const char *key, size_t klen)
{
    reset(c);
    arg_str(c, "GET");
    arg(c, key, klen);
}

void strata__cmd_set(redis_cmd *c, const char *key, size_t klen, const char *val, size_t vlen,
                     uint64_t px_ms, int nx)
{
    reset(c);
    arg_str(c, "SET");
    arg(c, key, klen);
    arg(c, val, vlen);
    if (px_ms > 0) {
        arg_str(c, "PX");
        arg(c, c->num, (size_t)snprintf(c->num, sizeof c->num, "%llu", (unsigned long long)px_ms));
    }
    if (nx)
        arg_str(c, "NX");
}

void strata__cmd_del(redis_cmd *c, const char *key, size_t klen)
{
    reset(c);
    arg_str(c, "UNLINK");
    arg(c, key, klen);
}

void strata__cmd_tag_version(redis_cmd *c, const char *key, size_t klen, uint64_t candidate)
{
    reset(c);
    arg_str(c, "SET");
    arg(c, key, klen);
    strata__tag_version_format(candidate, c->ver);
    arg(c, c->ver, 16);
    arg_str(c, "NX");
    arg_str(c, "GET");
}

void strata__cmd_tag_bump(redis_cmd *c, const char *key, size_t klen, uint64_t version)
{
    reset(c);
    arg_str(c, "SET");
    arg(c, key, klen);
    strata__tag_version_format(version, c->ver);
    arg(c, c->ver, 16);
}

int strata__reply_error(const redisReply *r)
{
    if (r->type != REDIS_REPLY_ERROR)
        return 0;
    if (r->len >= 8 && strncmp(r->str, "READONLY", 8) == 0)
        return STRATA_EREADONLY;
    /* The node cannot serve the key now (a cluster failing over or migrating, a replica whose
     * primary is gone, a server loading its data): Redis unavailable, not a wrong answer. */
    static const char *const now_unavailable[] = {"CLUSTERDOWN", "TRYAGAIN", "MASTERDOWN",
                                                  "LOADING"};
    for (size_t i = 0; i < sizeof now_unavailable / sizeof *now_unavailable; i++) {
        size_t n = strlen(now_unavailable[i]);
        if (r->len >= n && strncmp(r->str, now_unavailable[i], n) == 0)
            return STRATA_EUNAVAILABLE;
    }
    return STRATA_EPROTO;
}

int strata__reply_get(const redisReply *r, const char **data, size_t *len)
{
    int rc = strata__reply_error(r);
    if (rc != 0)
        return rc;
    if (r->type == REDIS_REPLY_NIL)
        return STRATA_ENOTFOUND;
    if (r->type != REDIS_REPLY_STRING)
        return STRATA_EPROTO;
    *data = r->str;
    *len = r->len;
    return 0;
}

int strata__reply_set(const redisReply *r)
{
    int rc = strata__reply_error(r);
    if (rc != 0)
        return rc;
    if (r->type == REDIS_REPLY_NIL)
        return STRATA_EEXISTS;
    return r->type == REDIS_REPLY_STATUS ? 0 : STRATA_EPROTO;
}

int strata__reply_del(const redisReply *r)
{
    int rc = strata__reply_error(r);
    if (rc != 0)
        return rc;
    if (r->type != REDIS_REPLY_INTEGER)
        return STRATA_EPROTO;
    return r->integer > 0 ? 0 : STRATA_ENOTFOUND;
}

int strata__reply_tag_version(const redisReply *r, uint64_t candidate, uint64_t *version)
{
    int rc = strata__reply_error(r);
    if (rc != 0)
        return rc;
    if (r->type == REDIS_REPLY_NIL) {
        *version = candidate;
        return 0;
    }
    if (r->type != REDIS_REPLY_STRING)
        return STRATA_EPROTO;
    return strata__tag_version_parse(r->str, r->len, version);
}

void strata__tag_version_format(uint64_t v, char out[17])
{
    snprintf(out, 17, "%016llx", (unsigned long long)v);
}

int strata__tag_version_parse(const char *s, size_t len, uint64_t *v)
{
    if (len != 16)
        return STRATA_EFORMAT;
    uint64_t x = 0;
    for (size_t i = 0; i < 16; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0)
            return STRATA_EFORMAT;
        x = x << 4 | (uint64_t)d;
    }
    *v = x;
    return 0;
}
