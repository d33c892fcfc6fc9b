/* l2_cmd.h: the Redis commands of the shared tier and the meaning of their replies, shared by
 * the synchronous pool (l2.c) and the asynchronous connections (l2_async.c). */
#ifndef STRATA_L2_CMD_H
#define STRATA_L2_CMD_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#define L2_CMD_MAX_ARGS 8

typedef struct l2_cmd {
    int argc;
    const char *argv[L2_CMD_MAX_ARGS];
    size_t argvlen[L2_CMD_MAX_ARGS];
    char num[24], ver[24]; /* storage for numeric arguments */
    const char **many;     /* when set, argc arguments from here instead (UNLINK of a batch) */
    const size_t *manylen;
} l2_cmd;

/* GET key */
void strata__cmd_get(l2_cmd *c, const char *key, size_t klen);
/* SET key value [PX ms] [NX]; px_ms 0: no expiry */
void strata__cmd_set(l2_cmd *c, const char *key, size_t klen, const char *val, size_t vlen,
                     uint64_t px_ms, int nx);
/* UNLINK key */
void strata__cmd_del(l2_cmd *c, const char *key, size_t klen);
/* SET tagkey candidate NX GET: the tag's version, made the candidate if it had none */
void strata__cmd_tag_version(l2_cmd *c, const char *key, size_t klen, uint64_t candidate);
/* SET tagkey version: a new version invalidates every entry written under the old one */
void strata__cmd_tag_bump(l2_cmd *c, const char *key, size_t klen, uint64_t version);

/* Error replies: READONLY -> STRATA_EREADONLY, anything else -> STRATA_EPROTO; 0 otherwise. */
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
