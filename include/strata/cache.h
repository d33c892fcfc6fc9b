/* cache.h: the two-tier cache, and libstrata's asynchronous calling convention.
 *
 * strata_cache is what applications use: a memory tier (L1) in front of the shared tier (L2,
 * Redis; until it is configured, or while it is down, the cache runs on L1 alone). It owns the
 * key prefix and the namespace settings; every call takes a strata_key.
 *
 * Two ways to call it:
 * - synchronous (strata_cache_get, ...): for C programs; may wait on the shared tier, never
 *   longer than its configured timeouts.
 * - asynchronous (strata_cache_get_async, ...): for event loops; never blocks. Each thread that
 *   runs a libevent loop opens its own strata_loop on its event_base and issues calls there.
 *
 * The asynchronous convention, which every async call in libstrata follows:
 * 1. A call returns an int. STRATA_OK (or STRATA_OK_L1_ONLY) means it completed during the call
 *    (an L1 hit, a write with no shared tier): the result is in the out-parameters and the
 *    callback is NOT called. STRATA_PENDING means the callback will be called exactly once, later,
 *    on the loop's thread, from the loop. A negative code means the call failed: nothing is
 *    pending and the callback is never called.
 * 2. A callback gets (status, result, arg): status as the synchronous call would return it
 *    (a read served from L1 because Redis failed is STRATA_OK_L1_ONLY, with its value),
 *    result owned by the callback from then on (a strata_value to release; NULL on failure).
 * 3. Cancelling is freeing the loop: strata_loop_free() calls every pending callback with
 *    STRATA_ETIMEDOUT before it returns, so no user data is left dangling.
 * 4. Arguments (keys, values, options) are copied before the call returns; the caller may free
 *    them at once.
 */
#ifndef STRATA_CACHE_H
#define STRATA_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include <strata/key.h>
#include <strata/l1.h>
#include <strata/stats.h>
#include <strata/value.h>

#ifdef __cplusplus
extern "C" {
#endif

struct event_base;

typedef struct strata_cache strata_cache;
typedef struct strata_loop strata_loop;

/* The shared tier. Times are milliseconds; the environment gives them in seconds. */
typedef struct strata_redis_config {
    const char *url;             /* REDIS_URL: redis[s]://[[user]:password@]host[:port][/db] or
                                    unix://[[user]:password@]/path[?db=N]; NULL: no shared tier */
    int enabled;                 /* REDIS_ENABLED (default 1): 0 ignores url */
    unsigned max_connections;    /* REDIS_MAX_CONNECTIONS: synchronous pool size (default 8) */
    unsigned connect_timeout_ms; /* REDIS_CONNECT_TIMEOUT (default 0.5 s) */
    unsigned socket_timeout_ms;  /* REDIS_SOCKET_TIMEOUT: bound on every call (default 0.25 s) */
    int readonly;                /* REDIS_READONLY: never write to Redis (default 0; a replica
                                    is detected by itself) */
    unsigned breaker_failures;   /* consecutive failures that open the breaker (default 5) */
    unsigned breaker_min_backoff_ms, breaker_max_backoff_ms; /* probe backoff (100 ms, 10 s) */
    int coherence;        /* keep L1 coherent through Redis invalidations (default 1);
                             0: L1 is not used for shared keys at all */
    unsigned max_pending; /* asynchronous calls queued per connection (default 1024) */
    /* TLS (docs/operations.md, "TLS"): on with a rediss:// URL or tls; the certificate and the
     * server name are verified unless tls_insecure. Paths are PEM files. */
    int tls;                     /* REDIS_TLS: TLS with a redis:// URL too (default 0) */
    const char *tls_ca_cert;     /* REDIS_TLS_CA_CERT: the CAs to trust; NULL: the system's */
    const char *tls_cert;        /* REDIS_TLS_CERT: a client certificate (chain), with ... */
    const char *tls_key;         /* REDIS_TLS_KEY: ... its private key; both or neither */
    const char *tls_server_name; /* REDIS_TLS_SERVER_NAME: the name sent (SNI) and verified;
                                    NULL: the URL's host */
    int tls_insecure;            /* REDIS_TLS_INSECURE: no verification at all (default 0; a
                                    warning is logged when the cache starts) */
    /* Sentinel (docs/operations.md, "Redis Sentinel"): instead of url, the primary is asked of
     * the sentinels and followed when they fail over. TLS settings apply to the primary, and to
     * the sentinels too when tls is set. */
    const char *sentinels;         /* REDIS_SENTINELS: "host:port,host:port,..." (at most 16) */
    const char *sentinel_master;   /* REDIS_SENTINEL_MASTER: the name the sentinels monitor */
    const char *sentinel_password; /* REDIS_SENTINEL_PASSWORD: the sentinels' own; NULL: none */
    /* Redis Cluster (docs/operations.md, "Redis Cluster"): instead of url, the seed nodes; the
     * slot map is asked of them and followed through MOVED, ASK and failovers. Database 0 only.
     * TLS settings apply to every node. */
    const char *cluster;  /* REDIS_CLUSTER: seed nodes, "host:port,host:port,..." (<= 16) */
    const char *username; /* REDIS_USERNAME: the ACL user (with sentinels or host) */
    const char *password; /* REDIS_PASSWORD: the password (with sentinels or host) */
    /* The split settings some services use instead of a URL (docs/operations.md, "REDIS_HOST
     * and the split settings"): with url and sentinels NULL and host set, the connection is
     * composed from host, port, db, username, password and tls, as REDIS_URL would say it. With
     * url set they are ignored (the cache logs one warning naming them); host with sentinels is
     * refused (STRATA_EINVAL). */
    const char *host; /* REDIS_HOST: a name or an address ("::1" or "[::1]"); NULL: none */
    unsigned port;    /* REDIS_PORT (0: 6379) */
    unsigned db;      /* REDIS_DB: the database (default 0); with sentinels, on the primary */
} strata_redis_config;

/* Where the cache's log lines go: level is 0 error, 1 warning, 2 info. */
typedef void (*strata_log_fn)(int level, const char *msg, void *arg);

typedef struct strata_cache_config {
    strata_l1_config l1;       /* the memory tier (its prefix is the cache's prefix) */
    strata_redis_config redis; /* the shared tier */
    uint64_t default_ttl_ms;   /* CACHE_TTL (seconds in the environment): the default TTL of
                                  namespaces not configured otherwise (0: 300 s) */
    strata_log_fn log;         /* NULL: lines to stderr */
    void *log_arg;
} strata_cache_config;

/* Fills cfg with defaults, reading the environment (STRATA_L1_MAX_MEMORY, STRATA_PREFIX,
 * CACHE_TTL, REDIS_URL, REDIS_ENABLED, REDIS_MAX_CONNECTIONS, REDIS_CONNECT_TIMEOUT,
 * REDIS_SOCKET_TIMEOUT, REDIS_READONLY, REDIS_TLS, REDIS_TLS_CA_CERT, REDIS_TLS_CERT,
 * REDIS_TLS_KEY, REDIS_TLS_SERVER_NAME, REDIS_TLS_INSECURE, REDIS_SENTINELS,
 * REDIS_SENTINEL_MASTER, REDIS_SENTINEL_PASSWORD, REDIS_CLUSTER, REDIS_USERNAME, REDIS_PASSWORD,
 * REDIS_HOST, REDIS_PORT, REDIS_DB; a TLS file that cannot be read is refused here, and so are
 * REDIS_SENTINELS or REDIS_CLUSTER with REDIS_URL, REDIS_HOST or each other, REDIS_DB with
 * REDIS_CLUSTER, and REDIS_USERNAME without REDIS_PASSWORD where they are used).
 * Strings point into the environment. Returns 0, or the first malformed variable's error
 * (STRATA_ERANGE, STRATA_EBADNAME) with *bad_var (may be NULL) set to its name. */
int strata_cache_config_init(strata_cache_config *cfg, const char **bad_var);

/* Why strata_cache_config_init refused value for the variable var: one line for an error
 * message that says what the variable takes, naming the part at fault where it can
 * ("\"MB\" is not a size suffix: use K, M or G ..."). Written to buf (cap bytes); returns buf.
 *
 *   const char *bad;
 *   if (strata_cache_config_init(&cfg, &bad) != 0) {
 *       char why[160];
 *       fprintf(stderr, "%s=%s: %s\n", bad, getenv(bad),
 *               strata_cache_config_why(bad, getenv(bad), why, sizeof why));
 *   }
 */
const char *strata_cache_config_why(const char *var, const char *value, char *buf, size_t cap);

/* Creates a cache; *out owns it until strata_cache_free(). Does not wait for Redis: an
 * unreachable Redis is normal operation (the cache starts on L1 and connects when it can).
 * Returns 0, the errors of strata_l1_new, STRATA_EBADURL (REDIS_URL malformed: see
 * strata_redis_url_check; or a malformed host), STRATA_EINVAL (sentinels or cluster with url,
 * host or each other; a db with cluster),
 * STRATA_ENOMEM or STRATA_ETHREAD. */
int strata_cache_new(const strata_cache_config *cfg, strata_cache **out);

/* Checks a Redis URL. Returns 0, or STRATA_EBADURL with *why (may be NULL) set to a static
 * message saying what is wrong ("port must be a number from 1 to 65535"). */
int strata_redis_url_check(const char *url, const char **why);

/* Frees the cache. Every strata_loop on it must be freed first. NULL is a no-op. */
void strata_cache_free(strata_cache *c);

/* 1 when a shared tier (Redis) is configured, 0 when the cache is memory only. */
int strata_cache_shared(strata_cache *c);

/* The memory tier, for namespace settings, stats and maintenance; owned by the cache. */
strata_l1 *strata_cache_l1(strata_cache *c);

/* Synchronous calls: the same contracts as the strata_l1_* calls of the same name, across both
 * tiers. A write answers STRATA_OK when both tiers hold it and STRATA_OK_L1_ONLY when only the
 * memory tier could (the shared tier is down or read-only; with no shared tier configured, L1 is
 * the whole cache and writes answer STRATA_OK). A read answers STRATA_OK_L1_ONLY, with the value,
 * when Redis could not be asked and L1's copy was served instead (it may be stale: writes made
 * elsewhere meanwhile cannot have reached it). */
int strata_cache_get(strata_cache *c, const strata_key *k, strata_value **out);
/* Reads k like strata_cache_get, and also answers a value past its expiry that is still kept
 * (within its grace or stale-if-error window: strata_set_opts), with STRATA_OK_STALE: the
 * caller judges it with strata_value_freshness (serve it marked stale and refresh it, or keep it
 * for when a refresh fails). Returns STRATA_OK, STRATA_OK_L1_ONLY, STRATA_OK_STALE (also when
 * Redis could not be asked: strata_fallback_reason() says so), or strata_cache_get's errors.
 * A value flagged STRATA_VALUE_STALE (a copy kept after a failed refresh) is fresh for its error
 * TTL but stale all the same: answer it marked stale. */
int strata_cache_get_stale(strata_cache *c, const strata_key *k, strata_value **out);
/* Why the last call this thread completed was answered by the memory tier alone: a
 * STRATA_REASON_* (errors.h), STRATA_REASON_NONE when both tiers answered or no Redis is
 * configured. Meaningful right after a call returns, or inside its callback (a callback runs on
 * the loop's thread): a STRATA_OK_L1_ONLY says why, and a miss (STRATA_ENOTFOUND) that is not
 * REASON_NONE is a miss of L1 only, Redis could not be asked. Like errno, without the locks: a
 * thread's own. Set by the get, set, del, touch, expire, clear, flush and tag_invalidate calls. */
int strata_fallback_reason(void);
int strata_cache_set(strata_cache *c, const strata_key *k, const void *value, size_t len,
                     const strata_set_opts *opts);
int strata_cache_del(strata_cache *c, const strata_key *k);
/* Deletes k everywhere or not at all: from Redis first, then from L1. When Redis cannot take the
 * delete (down, breaker open, timed out, read-only), nothing is deleted and the call returns that
 * failure (STRATA_EUNAVAILABLE, STRATA_ETIMEDOUT, STRATA_EREADONLY; strata_fallback_reason()
 * says which), never STRATA_OK_L1_ONLY: what strata_cache_del would delete from this instance
 * alone would come back from Redis once it answers again (sessions delete this way). Returns 0,
 * STRATA_ENOTFOUND (in neither tier), a failure, or a key error; memory only: strata_l1_del. */
int strata_cache_del_strict(strata_cache *c, const strata_key *k);

/* Starts k's life again from now, without rewriting its value: created = now, expires = now +
 * ttl_ms (exactly: no namespace rules, no jitter; 1 ms to 10 years). In Redis this is atomic
 * (one script changes the stored times in place), so a write racing the touch is never undone:
 * unlike reading and writing the value again (what sliding a session's TTL needs). Returns 0,
 * STRATA_ENOTFOUND (no fresh value), STRATA_OK_L1_ONLY (Redis unavailable or read-only: only
 * this instance's copy was touched), STRATA_EINVAL (ttl_ms), or a key error. */
int strata_cache_touch(strata_cache *c, const strata_key *k, uint64_t ttl_ms);

/* Soft purge: k's value expires now instead of being deleted. Its grace and stale-if-error
 * windows (strata_set_opts) keep their lengths and count from now, so strata_cache_get misses it
 * and strata_cache_get_stale answers it with STRATA_OK_STALE within them (to be revalidated, or
 * served while the origin is down); its value, tags, content type and flags are unchanged. A
 * value with no window (written without grace or stale-if-error) is simply gone. A value already
 * past its expiry keeps its times: a soft purge never lengthens a stale life. In Redis this is
 * atomic (one script rewrites the stored expiry in place, as a touch does), and it is a write
 * every instance hears: their L1 copies stop answering it as fresh. Returns 0, STRATA_ENOTFOUND
 * (no value, or one already past its windows), STRATA_OK_L1_ONLY (Redis unavailable or
 * read-only: only this instance's copy was purged; strata_fallback_reason() says why), or a key
 * error.
 *
 *     if (strata_cache_expire(c, &k) == STRATA_OK_L1_ONLY)
 *         log("purged here only: %s", strata_reason_name(strata_fallback_reason()));
 */
int strata_cache_expire(strata_cache *c, const strata_key *k);

/* Removes every entry of namespace ns (NULL: all) and tenant (NULL: all) whose user key matches
 * the glob pattern (NULL: all), in both tiers (Redis with SCAN + UNLINK in batches, never KEYS),
 * and sets *removed to the number removed from Redis (from L1 when there is no Redis).
 * Returns 0, STRATA_OK_L1_ONLY (Redis unavailable: only L1 was cleared), or STRATA_EBADNAME. */
int strata_cache_clear(strata_cache *c, const char *ns, const char *tenant, const char *pattern,
                       size_t *removed);

/* strata_cache_clear with several patterns: removes what matches any of patterns[0..npatterns)
 * (npatterns 0: every key), in one pass over each tier however many patterns there are, so a
 * hundred patterns cost one SCAN of Redis' keyspace, not a hundred. *removed counts each key
 * once, as clearing the patterns one after another would. Returns as strata_cache_clear, or
 * STRATA_EINVAL (patterns NULL with npatterns > 0).
 *
 *     const char *pats[] = {"user:42:*", "feed:42"};
 *     size_t n;
 *     int rc = strata_cache_clear_any(c, NULL, "acme", pats, 2, &n); // acme's keys, all namespaces
 */
int strata_cache_clear_any(strata_cache *c, const char *ns, const char *tenant,
                           const char *const *patterns, size_t npatterns, size_t *removed);

/* strata_cache_clear_any, soft: every entry it would remove is expired as strata_cache_expire
 * expires one (stale within its windows from now, gone without any), in one pass over each tier
 * (one SCAN of Redis however many patterns; each key's expiry rewritten by a script, batched per
 * page). *expired counts the entries made stale (in Redis; in L1 when there is no Redis), not
 * those stale already. Returns as strata_cache_clear_any. Synchronous only: admin work, run it
 * off any event loop.
 *
 *     const char *pats[] = {"product:42*"};
 *     size_t n;
 *     int rc = strata_cache_expire_any(c, "pages", "acme", pats, 1, &n);
 */
int strata_cache_expire_any(strata_cache *c, const char *ns, const char *tenant,
                            const char *const *patterns, size_t npatterns, size_t *expired);

/* Empties the whole cache: L1, and the Redis database with FLUSHDB ASYNC, everything in it, not
 * only strata's keys. For an explicit "clear everything" only; strata_cache_clear with no filter
 * removes strata's keys alone. Returns 0, or STRATA_OK_L1_ONLY when Redis could not be flushed
 * (down, read-only, or FLUSHDB not permitted). */
int strata_cache_flush(strata_cache *c);

/* Invalidates a tag of a tenant (NULL: default) in every instance sharing the Redis: one write.
 * Returns 0, STRATA_OK_L1_ONLY, STRATA_EBADNAME or STRATA_EBADTEXT. */
int strata_cache_tag_invalidate(strata_cache *c, const char *tenant, const char *tag);

/* A soft tag invalidation: every entry of the tenant (NULL: default) written with tag before this
 * call reads as expired now (strata_cache_expire: stale within its windows, counted from this
 * call; gone without any) instead of missing; entries written afterwards are fresh, and a later
 * strata_cache_tag_invalidate makes the older ones misses. O(1) like the hard one, in every
 * instance sharing the Redis. An entry outlives at most the last STRATA_TAG_SOFT_KEEP soft
 * invalidations of a tag as stale: older ones read as misses. Instances of a strata without soft
 * invalidations take it for a hard one (docs/architecture.md, "Tags"). Returns 0,
 * STRATA_OK_L1_ONLY, STRATA_EBADNAME or STRATA_EBADTEXT. */
int strata_cache_tag_invalidate_soft(strata_cache *c, const char *tenant, const char *tag);

/* Lists user keys like strata_l1_scan, from Redis (SCAN, so keys in Redis but not in this
 * instance's L1 are listed) or, without a shared tier, from L1. cursor is "" or "0" to start; the
 * next page's cursor is written to next (next_cap bytes; "0" when done). A page holds about
 * limit keys. Returns 0, STRATA_EBADNAME, STRATA_EINVAL (bad cursor) or a Redis failure
 * (STRATA_EUNAVAILABLE, STRATA_ETIMEDOUT): listing Redis has no L1 fallback. */
int strata_cache_keys(strata_cache *c, const char *ns, const char *tenant, const char *pattern,
                      const char *cursor, size_t limit, strata_key_cb cb, void *arg, char *next,
                      size_t next_cap);

/* What Redis says about itself, for stats pages. */
typedef struct strata_redis_info {
    char version[32];
    uint64_t used_memory, maxmemory, connected_clients, keyspace_hits, keyspace_misses, keys;
    char maxmemory_policy[32];
    char role[16];
} strata_redis_info;

/* Asks Redis (INFO). Returns 0, STRATA_EUNAVAILABLE (no shared tier, or down), STRATA_ETIMEDOUT
 * or STRATA_EPROTO. */
int strata_cache_redis_info(strata_cache *c, strata_redis_info *out);

/* Counters and state of the shared tier (all zero without one). */
typedef struct strata_l2_stats {
    int configured;         /* a shared tier is configured */
    int available;          /* the breaker is closed and the last call succeeded */
    int readonly;           /* writes are skipped (forced, or a replica was detected) */
    int coherent;           /* the invalidation link is up */
    const char *breaker;    /* "closed", "open" or "half-open" (static) */
    uint64_t hits, misses;  /* reads answered by Redis */
    uint64_t errors;        /* calls that failed (timeouts, connection errors, protocol) */
    uint64_t fallbacks;     /* calls answered from L1 alone because Redis could not be used */
    uint64_t breaker_opens; /* times the breaker opened */
    uint64_t invalidations; /* invalidation messages applied to L1 */
    uint64_t expired_soft;  /* entries a soft purge made stale in Redis (strata_cache_expire,
                               strata_cache_expire_any; L1's are in strata_stats) */
    uint64_t link_drops;    /* times the invalidation link was lost */
    char last_error[128];   /* the last failure, "" if none */
    const char *topology;   /* "none", "single" (REDIS_URL), "sentinel" or "cluster" (static) */
    int tls;                /* connections to Redis are TLS */
    char primary[300];      /* the Redis in use, "host:port" (or the unix path); with sentinels
                               the primary they named last, "" while none is known */
    unsigned nodes;         /* the Redis nodes in use: 1 with a single Redis or a known
                               sentinel primary, a cluster's primaries, 0 without Redis (or
                               while none is known) */
} strata_l2_stats;

/* Fills *out. Never blocks on Redis. */
void strata_cache_l2_stats(strata_cache *c, strata_l2_stats *out);

/* A Redis node the cache has used, and the failures counted against it (connections refused
 * or lost, timeouts, handshakes refused: what the circuit breaker counts), since start. */
typedef struct strata_redis_node {
    char addr[300]; /* "host:port" as named ("[v6]:port", a unix socket's path; "(other)" for the
                       nodes past the first 15) */
    uint64_t errors;
    int primary;        /* in use now: the Redis, the sentinels' primary, a primary of the
                           cluster's map; 0 for one used before */
    unsigned slots;     /* a cluster primary's slots (of 16384); 0 otherwise */
    int64_t latency_us; /* the last strata_cache_ping's round trip to it; -1: never answered */
} strata_redis_node;

/* Writes up to cap nodes to out (the current one and those used before it: a single Redis is
 * one; each primary the sentinels named is one; each node a cluster map named as a primary) and
 * returns how many there are (0 without Redis). Never blocks on Redis.
 *
 *   strata_redis_node nodes[16];
 *   size_t n = strata_cache_redis_nodes(c, nodes, 16);
 *   for (size_t i = 0; i < n && i < 16; i++)
 *       printf("%s %llu\n", nodes[i].addr, (unsigned long long)nodes[i].errors);
 */
size_t strata_cache_redis_nodes(strata_cache *c, strata_redis_node *out, size_t cap);

/* Measures one round trip to Redis (PING) and sets *latency_us; on a cluster, to every primary in
 * turn (*latency_us the longest; each node's in strata_cache_redis_nodes). Returns 0,
 * STRATA_EUNAVAILABLE or STRATA_ETIMEDOUT (a cluster: the first primary that failed); without a
 * shared tier, STRATA_EUNAVAILABLE. */
int strata_cache_ping(strata_cache *c, uint64_t *latency_us);

/* ---- asynchronous calls ------------------------------------------------------------------ */

/* Opens the cache on a libevent base owned by the calling thread. *out is used only from that
 * thread. Returns 0 or STRATA_ENOMEM. */
int strata_loop_new(strata_cache *c, struct event_base *base, strata_loop **out);

/* Fails every pending call (STRATA_ETIMEDOUT to its callback), then frees. NULL is a no-op. */
void strata_loop_free(strata_loop *lp);

typedef void (*strata_get_cb)(int status, strata_value *v, void *arg);
typedef void (*strata_done_cb)(int status, void *arg);

/* Reads k. STRATA_OK: *out holds the value (caller releases). STRATA_ENOTFOUND: a miss known at
 * once. STRATA_PENDING: cb(status, value, arg) follows. Negative: failed, cb never called.
 *
 *     strata_value *v;
 *     int rc = strata_cache_get_async(lp, &k, on_value, req, &v);
 *     if (rc == STRATA_OK) send(v);                 // L1 hit: no callback
 *     else if (rc != STRATA_PENDING) fail(rc);      // miss or error: no callback
 */
int strata_cache_get_async(strata_loop *lp, const strata_key *k, strata_get_cb cb, void *arg,
                           strata_value **out);

/* strata_cache_get_stale on a loop: as strata_cache_get_async, with STRATA_OK_STALE among the
 * answers (returned, or given to cb). */
int strata_cache_get_stale_async(strata_loop *lp, const strata_key *k, strata_get_cb cb, void *arg,
                                 strata_value **out);

/* Writes k. STRATA_OK / STRATA_OK_L1_ONLY: done, cb not called. STRATA_PENDING: cb follows
 * with the final status. Negative: failed (nothing was written), cb never called. */
int strata_cache_set_async(strata_loop *lp, const strata_key *k, const void *value, size_t len,
                           const strata_set_opts *opts, strata_done_cb cb, void *arg);

/* Deletes k; the same convention as strata_cache_set_async. */
int strata_cache_del_async(strata_loop *lp, const strata_key *k, strata_done_cb cb, void *arg);

/* Deletes k everywhere or not at all (see strata_cache_del_strict); the same convention as
 * strata_cache_set_async. */
int strata_cache_del_strict_async(strata_loop *lp, const strata_key *k, strata_done_cb cb,
                                  void *arg);

/* Touches k (see strata_cache_touch); the same convention as strata_cache_set_async. */
int strata_cache_touch_async(strata_loop *lp, const strata_key *k, uint64_t ttl_ms,
                             strata_done_cb cb, void *arg);

/* Expires k (see strata_cache_expire); the same convention as strata_cache_set_async. */
int strata_cache_expire_async(strata_loop *lp, const strata_key *k, strata_done_cb cb, void *arg);

typedef void (*strata_ping_cb)(int status, uint64_t latency_us, void *arg);
typedef void (*strata_info_cb)(int status, const strata_redis_info *info, void *arg);

/* strata_cache_ping on the loop's own connection, the one its other calls use: never waits for a
 * thread or a pool connection, so a health check answers whatever else the process is doing.
 * STRATA_PENDING: cb(0, latency_us, arg) follows, or cb(STRATA_ETIMEDOUT / STRATA_EUNAVAILABLE,
 * 0, arg). Negative: failed at once, cb never called (STRATA_EUNAVAILABLE: no shared tier, or
 * the breaker is open; STRATA_ENOMEM).
 *
 *     int rc = strata_cache_ping_async(lp, on_pong, req);
 *     if (rc != STRATA_PENDING) on_pong(rc, 0, req);   // answer the same way, now
 */
int strata_cache_ping_async(strata_loop *lp, strata_ping_cb cb, void *arg);

/* strata_cache_redis_info on the loop's connection; the same convention as
 * strata_cache_ping_async. info is valid during the callback only (NULL on failure). */
int strata_cache_redis_info_async(strata_loop *lp, strata_info_cb cb, void *arg);

#ifdef __cplusplus
}
#endif
#endif
