/* redis/cmd.h: the Redis commands strata sends and the meaning of their replies, shared by the
 * synchronous pool (client.c) and the pipelined connections (pipe.c, conn.c). */
#ifndef STRATA_REDIS_CMD_H
#define STRATA_REDIS_CMD_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#define REDIS_CMD_MAX_ARGS 10 /* a lease acquire: EVALSHA, sha, numkeys, 2 keys, 5 arguments */

typedef struct redis_cmd {
    int argc;
    const char *argv[REDIS_CMD_MAX_ARGS];
    size_t argvlen[REDIS_CMD_MAX_ARGS];
    char num[24], ver[24]; /* storage for numeric arguments */
    const char **many;     /* when set, argc arguments from here instead (UNLINK of a batch) */
    const size_t *manylen;
} redis_cmd;

/* GET key */
void strata__cmd_get(redis_cmd *c, const char *key, size_t klen);
/* SET key value [PX ms] [NX]; px_ms 0: no expiry */
void strata__cmd_set(redis_cmd *c, const char *key, size_t klen, const char *val, size_t vlen,
                     uint64_t px_ms, int nx);
/* UNLINK key */
void strata__cmd_del(redis_cmd *c, const char *key, size_t klen);
/* SET tagkey candidate NX GET: the tag's version, made the candidate if it had none */
void strata__cmd_tag_version(redis_cmd *c, const char *key, size_t klen, uint64_t candidate);
/* SET tagkey version: a new version invalidates every entry written under the old one */
void strata__cmd_tag_bump(redis_cmd *c, const char *key, size_t klen, uint64_t version);

/* The key that places c in a Redis Cluster: the first key of GET, SET, UNLINK, or of EVAL /
 * EVALSHA with keys. Returns 1 with *key and *len set, 0 for a command without one (PING, INFO,
 * SCAN, FLUSHDB: any node, or every primary, as the caller decides). */
int strata__cmd_key(const redis_cmd *c, const char **key, size_t *len);

/* c in RESP: its length, and written to out (strata__cmd_len bytes; returns them). Written here
 * in one pass over a length known first: hiredis 0.14's formatters build an sds with
 * sdscatfmt per argument (about 15% of a pipelined set's client CPU in bench/l2's profile),
 * and its plain redisFormatCommandArgv a sprintf per length. */
size_t strata__cmd_len(const redis_cmd *c);
size_t strata__cmd_write(const redis_cmd *c, char *out);
/* The same into a buffer of its own, *out (free it with strata__cmd_free). Returns its length,
 * or -1 (out of memory). */
long strata__cmd_format(const redis_cmd *c, char **out);
void strata__cmd_free(char *formatted);

/* Error replies: READONLY -> STRATA_EREADONLY; CLUSTERDOWN, TRYAGAIN, MASTERDOWN, LOADING (the
 * node cannot serve it now) -> STRATA_EUNAVAILABLE; anything else -> STRATA_EPROTO; 0 otherwise. */
int strata__reply_error(const redisReply *r);
/* GET: 0 with *data and *len pointing into r, STRATA_ENOTFOUND, or an error. */
int strata__reply_get(const redisReply *r, const char **data, size_t *len);
/* SET: 0, STRATA_EEXISTS (NX and the key exists), or an error. */
int strata__reply_set(const redisReply *r);
/* UNLINK: 0, STRATA_ENOTFOUND, or an error. */
int strata__reply_del(const redisReply *r);
/* SET NX GET of a tag: the version now in force (candidate if it was missing), or an error. */
int strata__reply_tag_version(const redisReply *r, uint64_t candidate, uint64_t *version);

/* Tag versions travel as 16 lowercase hex digits, readable in redis-cli. */
void strata__tag_version_format(uint64_t v, char out[17]);
int strata__tag_version_parse(const char *s, size_t len, uint64_t *v);

#endif
