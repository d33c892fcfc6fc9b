/* cache/soft_tag.c: soft tag invalidation in Redis: a tag's version moves on, as with a hard
 * invalidation, and the version it leaves is recorded as retired at that moment, so that entries
 * carrying it read as stale from then on instead of missing (l1/tags.h says how they are judged).
 *
 * The record is a second key beside the version, <prefix>:!stag:<tenant>:<tag> (core/key.c),
 * holding "<version> <retired>@<ms> ..." for the version it applies to. It is written first, then
 * the version is moved with a compare-and-set script on the version key alone (one key per atomic
 * operation: the two keys are in different Cluster slots). A reader that sees the record before
 * the version moved finds it made for a version that is not current yet, and ignores it; a hard
 * invalidation (a plain SET of the version, by this strata or an older one) leaves the record
 * behind for a version that is no longer current, so it is ignored from then on: the entries are
 * invalid. Both keys are under "<prefix>:", so every instance hears both changes and forgets what
 * it had learnt of the tag (cache.c maps the record key to its tag).
 */
#include <stdio.h>
#include <string.h>

#include <strata/errors.h>

#include "cache/cache_internal.h"
#include "cache/soft_record.h"
#include "cache/soft_tag.h"
#include "cache/twotier.h"
#include "core/tag_key.h"
#include "l1/l1_internal.h"
#include "redis/cmd.h"
#include "redis/script.h"

/* KEYS[1] the version key; ARGV[1] the version expected there, ARGV[2] the next one. 1: moved,
 * 0: the version was not the expected one (someone invalidated the tag meanwhile). */
static redis_script cas_script =
    REDIS_SCRIPT("if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end\n"
                 "redis.call('SET', KEYS[1], ARGV[2])\n"
                 "return 1\n");

/* One attempt: 1 done, 0 raced (try again), or an error. */
static int attempt(strata_cache *c, const char *vkey, size_t vlen, const char *skey, size_t slen,
                   uint64_t now)
{
    redis_cmd get[2];
    strata__cmd_get(&get[0], vkey, vlen);
    strata__cmd_get(&get[1], skey, slen);
    redisReply *r[2];
    int rc = strata__redis_run(c->redis, get, 2, r);
    if (rc != 0)
        return rc;
    const char *s;
    size_t len;
    uint64_t have = 0;
    tag_soft old;
    int got = strata__reply_get(r[0], &s, &len);
    if (got == 0)
        got = strata__tag_version_parse(s, len, &have);
    int old_ok =
        strata__reply_get(r[1], &s, &len) == 0 && strata__soft_tag_parse(s, len, &old) == 0;
    freeReplyObject(r[0]), freeReplyObject(r[1]);
    if (got == STRATA_ENOTFOUND)
        return 1; /* no version: whatever carries the tag is invalid already */
    if (got != 0)
        return got;
    tag_soft next;
    strata__tags_soft_next(old_ok ? &old : NULL, have, strata__tt_random(c), now, &next);
    char rec[SOFT_TAG_RECORD_MAX], hv[17], nv[17];
    size_t rlen = strata__soft_tag_format(&next, rec);
    redis_cmd set;
    strata__cmd_set(&set, skey, slen, rec, rlen, 0, 0);
    redisReply *w;
    if ((rc = strata__redis_run(c->redis, &set, 1, &w)) != 0)
        return rc;
    rc = strata__reply_set(w);
    freeReplyObject(w);
    if (rc != 0)
        return rc;
    strata__tag_version_format(have, hv);
    strata__tag_version_format(next.cur, nv);
    const char *args[] = {"1", vkey, hv, nv};
    size_t lens[] = {1, vlen, 16, 16};
    if ((rc = strata__script_run(c->redis, &cas_script, 4, args, lens, &w)) != 0)
        return rc;
    rc = w->type == REDIS_REPLY_INTEGER
             ? (int)w->integer
             : (w->type == REDIS_REPLY_ERROR ? strata__reply_error(w) : STRATA_EPROTO);
    freeReplyObject(w);
    return rc;
}

int strata__soft_tag_redis(strata_cache *c, const char *tenant, const char *tag, uint64_t now)
{
    const char *prefix = strata__l1_prefix(c->l1);
    char vkey[STRATA_TAG_KEY_MAX], skey[STRATA_TAG_KEY_MAX];
    size_t vlen, slen;
    int rc = strata__tag_key_build(prefix, tenant, tag, vkey, sizeof vkey, &vlen);
    if (rc == 0)
        rc = strata__soft_tag_key_build(prefix, tenant, tag, skey, sizeof skey, &slen);
    for (int i = 0; rc == 0 && i < 3; i++) {
        int a = attempt(c, vkey, vlen, skey, slen, now);
        if (a == 1)
            return 0;
        rc = a;
    }
    /* Three races lost: others invalidated the tag each time, which leaves the entries at least
     * stale (their own soft purges) or invalid (a hard one): never fresher than asked. */
    return rc;
}
