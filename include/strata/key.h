/* key.h: the address of a cached item, and the one function that turns it into a stored key.
 *
 * A user addresses an item by (namespace, tenant, key). Namespaces and tenants are names from a
 * small alphabet ([A-Za-z0-9_.-], 1..64 bytes); the key is any bytes (1..512 by default, NUL
 * included). strata_key_build() is the only place a stored key is made:
 *
 *     <prefix> ':' <namespace> ':' <tenant> ':' <key>
 *
 * Because names and the prefix can never contain ':', the first three separators are unambiguous
 * whatever bytes the key holds, so two different addresses can never produce the same stored key:
 * tenants and namespaces cannot collide. strata_key_parse() is the inverse, used when scanning
 * stored keys (L1 clears, Redis SCAN) to hand back user keys, never stored ones.
 */
#ifndef STRATA_KEY_H
#define STRATA_KEY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define STRATA_NAME_MAX        64   /* longest namespace or tenant name */
#define STRATA_PREFIX_MAX      64   /* longest key prefix */
#define STRATA_KEY_MAX_DEFAULT 512  /* default longest user key, in bytes */
#define STRATA_KEY_MAX_LIMIT   4096 /* the largest key limit a configuration may set */
#define STRATA_DEFAULT_TENANT  "default"
#define STRATA_DEFAULT_PREFIX  "strata"

/* The longest stored key strata_key_build() can produce for a given key limit. */
#define STRATA_STORED_KEY_MAX(key_max) (STRATA_PREFIX_MAX + 2 * STRATA_NAME_MAX + 3 + (key_max))

/* The address of one item: a plain tuple of borrowed pointers, owned by the caller, valid for
 * the duration of a call. tenant may be NULL for STRATA_DEFAULT_TENANT. */
typedef struct strata_key {
    const char *ns;
    const char *tenant;
    const void *key;
    size_t len;
} strata_key;

/* Checks a namespace or tenant name. Returns 0 or STRATA_EBADNAME. */
int strata_name_check(const char *name);

/* Checks a key prefix: 1..64 bytes of [A-Za-z0-9_.-], like a name. No ':' on purpose: with
 * prefixes "p:a" and "p", (b, t, k) and (a, b, "t:k") would build the same stored key, and two
 * deployments sharing one Redis could read each other's entries. Returns 0 or STRATA_EBADNAME. */
int strata_prefix_check(const char *prefix);

/* Builds the stored key for k under prefix into buf (cap bytes; STRATA_STORED_KEY_MAX(key_max)
 * is always enough) and sets *out_len. key_max is the user-key limit (0: the default 512).
 * Nothing is written past cap and nothing is ever truncated.
 *
 * Returns 0, STRATA_EKEYEMPTY (also for a NULL key), STRATA_EKEYLONG, STRATA_EBADNAME,
 * STRATA_ERANGE (buf too small), or STRATA_EINVAL (k, buf or out_len NULL).
 *
 *     char buf[STRATA_STORED_KEY_MAX(STRATA_KEY_MAX_DEFAULT)];
 *     size_t n;
 *     strata_key k = {"llm", "acme", "prompt:42", 9};
 *     if (strata_key_build("strata", &k, 0, buf, sizeof buf, &n) == 0)
 *         ... buf[0..n) is "strata:llm:acme:prompt:42" ...
 */
int strata_key_build(const char *prefix, const strata_key *k, size_t key_max, char *buf, size_t cap,
                     size_t *out_len);

/* The parts of a stored key, pointing into the stored bytes (not NUL-terminated). */
typedef struct strata_key_parts {
    const char *ns;
    size_t ns_len;
    const char *tenant;
    size_t tenant_len;
    const char *key;
    size_t key_len;
} strata_key_parts;

/* Splits stored[0..len) built under prefix into its parts. Returns 0, or STRATA_EINVAL when the
 * bytes were not built by strata_key_build() under this prefix (foreign keys in a shared Redis). */
int strata_key_parse(const char *prefix, const char *stored, size_t len, strata_key_parts *out);

/* Time-windowed keys, for answers valid for a window of time (a 15-second report cached in
 * 30-second windows): writes key[0..len) followed by '@' and floor(now_ms / window_ms) in decimal
 * into buf (cap bytes; len + 21 is always enough) and sets *out_len, and *left_ms (may be NULL)
 * to the milliseconds left in the window: the TTL that ends the entry with its window. Every
 * instance reading at the same moment builds the same key, and the next window's key is a miss,
 * computed once (with a lease) instead of every caller recomputing when a TTL runs out.
 * Returns 0, STRATA_EINVAL (window_ms 0, or a NULL argument), STRATA_EKEYEMPTY, or STRATA_ERANGE
 * (buf too small; nothing is truncated). The result is a user key like any other: its limit is
 * checked where it is used.
 *
 *     char wk[600];
 *     size_t n;
 *     uint64_t left;
 *     strata_key_window("report:7", 8, 30000, strata_now_ms(), wk, sizeof wk, &n, &left);
 *     strata_key k = {"api", "acme", wk, n};               // "report:7@58831666"
 *     strata_set_opts o = {.ttl_ms = left};                // gone when its window ends
 */
int strata_key_window(const void *key, size_t len, uint64_t window_ms, uint64_t now_ms, char *buf,
                      size_t cap, size_t *out_len, uint64_t *left_ms);

/* Redis glob matching (*, ?, [abc], [^a-z], backslash escapes) over bytes, the same rules as
 * Redis' KEYS/SCAN MATCH, so a pattern selects the same user keys in L1 and in L2.
 * Returns 1 on a match, 0 otherwise. */
int strata_glob_match(const char *pattern, size_t plen, const char *s, size_t slen);

#ifdef __cplusplus
}
#endif
#endif
