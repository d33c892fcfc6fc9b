/* redis/script.h: Lua scripts run by their SHA-1, for every feature that has one.
 *
 * A script is sent as EVALSHA <sha1> (the digest computed here once); when Redis answers
 * NOSCRIPT (it restarted, or someone ran SCRIPT FLUSH) it is sent whole, once, with EVAL, which
 * also caches it again. Written once here for the rate limiter, touch and the leases alike.
 *
 *     static redis_script gcra = REDIS_SCRIPT("local T = tonumber(ARGV[1]) ...");
 *     const char *args[] = {"1", key, t, tau};            // numkeys, keys, then arguments
 *     size_t lens[] = {1, klen, strlen(t), strlen(tau)};
 *     rc = strata__script_run(cl, &gcra, 4, args, lens, &reply);
 */
#ifndef STRATA_REDIS_SCRIPT_H
#define STRATA_REDIS_SCRIPT_H

#include <stdatomic.h>
#include <stddef.h>

#include "redis/client.h"
#include "redis/conn.h"

typedef struct redis_script {
    const char *text;
    size_t len;
    atomic_int ready; /* sha below is computed */
    char sha[41];
} redis_script;

#define REDIS_SCRIPT(source)                                                                       \
    {                                                                                              \
        (source), sizeof(source) - 1, 0, ""                                                        \
    }

/* The most arguments after the script (numkeys, keys, arguments). */
#define REDIS_SCRIPT_MAX_ARGS (REDIS_CMD_MAX_ARGS - 2)

/* Runs s on the synchronous pool with args[0..nargs) after the script (numkeys first).
 * Returns 0 with *reply (the caller frees it; it may be an error reply other than NOSCRIPT), or a
 * failure of strata__redis_run, or STRATA_EINVAL (too many arguments). */
int strata__script_run(redis_client *cl, redis_script *s, int nargs, const char **args,
                       const size_t *lens, redisReply **reply);

/* The same on a loop's connection: STRATA_PENDING and cb follows once with the script's reply
 * (n == 1), or a failure as strata__conn_send (cb never called). Arguments are copied. */
int strata__script_send(redis_conn *c, redis_script *s, int nargs, const char **args,
                        const size_t *lens, redis_reply_cb cb, void *arg);

#endif
