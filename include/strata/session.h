/* session.h: sessions that survive restarts: stored in Redis, kept in L1 when Redis is away.
 *
 * A session is a value (the server stores JSON) under an id made from 128 random bits (OpenSSL's
 * CSPRNG), URL-safe base64 without padding: 22 characters. It lives in the reserved namespace
 * "_sessions" of its tenant, has a TTL that slides on reads (strata serve restarts it with a
 * touch once half of it has gone by, so most reads write nothing; strata_cache_touch). It is
 * written pinned: a copy Redis could not take stays pinned in L1 (never evicted by the policy),
 * one Redis holds is L1's cached copy. A write that reached L1 only says so (STRATA_OK_L1_ONLY):
 * such a session survives neither a restart of its instance nor Redis coming back (every
 * instance then drops its copies and answers what Redis holds). Delete sessions with
 * strata_cache_del_strict[_async] (cache.h): a delete made in L1 alone would come back from
 * Redis once it answers again.
 */
#ifndef STRATA_SESSION_H
#define STRATA_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include <strata/cache.h>

#ifdef __cplusplus
extern "C" {
#endif

#define STRATA_SESSION_ID_LEN         22
#define STRATA_SESSION_NS             "_sessions"
#define STRATA_SESSION_TTL_DEFAULT_MS (30u * 60 * 1000)

/* Fills id with a new session id (NUL-terminated). Returns 0 or STRATA_ENOMEM (no randomness). */
int strata_session_new_id(char id[STRATA_SESSION_ID_LEN + 1]);

/* 0 when id has the form of a session id, STRATA_EINVAL otherwise. */
int strata_session_id_check(const char *id);

/* The key a session is stored under (a borrowed tuple, valid while id and tenant are). */
strata_key strata_session_key(const char *tenant, const char *id);

#ifdef __cplusplus
}
#endif
#endif
