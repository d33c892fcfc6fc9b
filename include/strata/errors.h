/* errors.h: the one table of status codes every libstrata call returns.
 *
 * Every function that can fail returns an int: 0 (STRATA_OK) on success, a positive
 * STRATA_* status for the few successes that need saying apart (a write that reached L1 only,
 * an asynchronous call still in flight), and a negative STRATA_E* code on failure. The codes
 * come from one X-macro table, which also generates strata_strerror() and strata_err_name(), so
 * a code can never exist without its name and message (libuv's UV_ERRNO_MAP).
 */
#ifndef STRATA_ERRORS_H
#define STRATA_ERRORS_H

#ifdef __cplusplus
extern "C" {
#endif

/* XX(name, value, message) */
#define STRATA_STATUS_MAP(XX)                                                                      \
    XX(OK, 0, "success")                                                                           \
    XX(PENDING, 1, "in progress: the callback will be called once")                                \
    XX(OK_L1_ONLY, 2,                                                                              \
       "written to the memory tier only: the shared tier is unavailable or read-only")             \
    XX(LEASED, 3, "the lease is the caller's: compute the value and fill it")                      \
    XX(OK_ERROR, 4, "the value is a cached error result: its computation failed")                  \
    XX(OK_STALE, 5, "the value is past its TTL, served within its grace or stale-if-error window") \
    XX(ENOMEM, -1, "out of memory")                                                                \
    XX(EINVAL, -2, "invalid argument")                                                             \
    XX(ENOTFOUND, -3, "no such key")                                                               \
    XX(EEXISTS, -4, "key already exists")                                                          \
    XX(EKEYEMPTY, -5, "key is empty")                                                              \
    XX(EKEYLONG, -6, "key is longer than the limit")                                               \
    XX(EVALUELARGE, -7, "value is larger than the limit")                                          \
    XX(EBADNAME, -8, "namespace, tenant or prefix outside the allowed alphabet or length")         \
    XX(EBADTEXT, -9, "text contains a NUL or control byte, or is too long")                        \
    XX(EQUOTA, -10, "tenant memory quota exceeded")                                                \
    XX(ETOOMANYTAGS, -11, "too many tags on one entry")                                            \
    XX(ELIMIT, -12, "a configured limit was reached")                                              \
    XX(ETOOBIG, -13, "entry is larger than the memory tier can hold")                              \
    XX(ERANGE, -14, "value out of range")                                                          \
    XX(ETHREAD, -15, "could not start a thread")                                                   \
    XX(EFORMAT, -16, "stored value has an unknown format version or is corrupt")                   \
    XX(EUNAVAILABLE, -17, "the shared tier is unavailable")                                        \
    XX(ETIMEDOUT, -18, "operation timed out")                                                      \
    XX(EREADONLY, -19, "the shared tier is read-only")                                             \
    XX(EPROTO, -20, "unexpected reply from the shared tier")                                       \
    XX(EBADURL, -21, "malformed URL")                                                              \
    XX(EHELD, -22, "the lease is held by another caller")                                          \
    XX(ENOTHOLDER, -23,                                                                            \
       "the token is not the lease holder's (expired, taken over, or never issued)")               \
    XX(EBUSY, -24, "too many callers are waiting: try again later")

enum strata_status {
#define STRATA_STATUS_ENUM(name, value, msg) STRATA_##name = (value),
    STRATA_STATUS_MAP(STRATA_STATUS_ENUM)
#undef STRATA_STATUS_ENUM
};

/* Why a call was answered by the memory tier alone (STRATA_OK_L1_ONLY, or a miss after Redis
 * failed): XX(name, value, wire name, message). The wire name is what strata serve puts in
 * X-Cache-Reason and in a batch item's "reason". */
#define STRATA_REASON_MAP(XX)                                                                      \
    XX(NONE, 0, "none", "answered by every tier the call needed")                                  \
    XX(REDIS_DOWN, 1, "redis-down", "Redis cannot be reached, or the connection was lost")         \
    XX(BREAKER_OPEN, 2, "breaker-open",                                                            \
       "after repeated failures no call is sent to Redis until a probe succeeds")                  \
    XX(READ_ONLY, 3, "read-only", "Redis is a read-only replica, or REDIS_READONLY=1")             \
    XX(TIMEOUT, 4, "timeout", "Redis did not answer within REDIS_SOCKET_TIMEOUT")                  \
    XX(REDIS_ERROR, 5, "redis-error",                                                              \
       "Redis answered with an error (OOM under maxmemory, NOPERM, ...)")                          \
    XX(OUT_OF_MEMORY, 6, "out-of-memory", "this process could not allocate the call to Redis")     \
    XX(L1_COPY, 7, "l1-copy",                                                                      \
       "this instance holds a newer copy written while Redis could not take it")                   \
    XX(NO_REDIS, 8, "no-redis",                                                                    \
       "no Redis is configured (never set by the library: its calls then answer STRATA_OK)")

enum strata_reason {
#define STRATA_REASON_ENUM(name, value, wire, msg) STRATA_REASON_##name = (value),
    STRATA_REASON_MAP(STRATA_REASON_ENUM)
#undef STRATA_REASON_ENUM
};

/* A reason's wire name ("redis-down") and its message; never NULL ("unknown"). */
const char *strata_reason_name(int reason);
const char *strata_reason_message(int reason);

/* A static, human-readable message for a status code ("no such key"); never NULL.
 * Unknown codes give "unknown status". */
const char *strata_strerror(int status);

/* The code's name as written in C ("STRATA_ENOTFOUND"); never NULL. */
const char *strata_err_name(int status);

#ifdef __cplusplus
}
#endif
#endif
