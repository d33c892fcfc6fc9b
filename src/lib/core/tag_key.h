/* core/tag_key.h: the stored keys of strata's own state in Redis (tag versions, state that no
 * instance caches, leases) and SCAN patterns, built in key.c beside the entries' keys: every key
 * strata writes or scans for comes from that one file. */
#ifndef STRATA_TAG_KEY_H
#define STRATA_TAG_KEY_H

#include <stddef.h>

#include <strata/l1.h>

#define STRATA_TAG_KEY_MAX (STRATA_PREFIX_MAX + STRATA_NAME_MAX + STRATA_TAG_MAX + 9)

/* <prefix>:!tag:<tenant>:<tag>. Returns 0, STRATA_EBADNAME or STRATA_ERANGE. */
int strata__tag_key_build(const char *prefix, const char *tenant, const char *tag, char *buf,
                          size_t cap, size_t *out_len);

/* The tenant and tag of a tag key (pointing into stored), or STRATA_EINVAL if it is not one. */
int strata__tag_key_parse(const char *prefix, const char *stored, size_t len, const char **tenant,
                          size_t *tenant_len, const char **tag, size_t *tag_len);

/* A tag's soft record (what its soft invalidations retired: l1/tags.h, cache/soft_tag.c):
 * <prefix>:!stag:<tenant>:<tag>, under "<prefix>:" so its changes are heard like the version's.
 * Build and parse as the two above. */
int strata__soft_tag_key_build(const char *prefix, const char *tenant, const char *tag, char *buf,
                               size_t cap, size_t *out_len);
int strata__soft_tag_key_parse(const char *prefix, const char *stored, size_t len,
                               const char **tenant, size_t *tenant_len, const char **tag,
                               size_t *tag_len);

/* The key of state that no instance caches or waits on (rate-limit buckets: kind "rl"):
 * <prefix>!<kind>:<tenant>:<key>. It lies outside "<prefix>:", the prefix the invalidation link
 * tracks, so changing it costs no instance an invalidation message; and since '!' is outside the
 * name alphabet, no deployment's prefix (nor any address) can produce it. Returns 0,
 * STRATA_EBADNAME or STRATA_ERANGE (cap too small). */
int strata__untracked_key_build(const char *prefix, const char *kind, const char *tenant,
                                const void *key, size_t klen, char *buf, size_t cap,
                                size_t *out_len);

/* The lease key of a value key (vkey[0..vlen), a stored key <prefix>:<ns>:<tenant>:<key>): in
 * the value key's Redis Cluster slot, outside the tracked "<prefix>:" space (so lease churn sends
 * no invalidations), under "<prefix>!":
 *   - no '}' in the value key:          <prefix>!lease:{<value key>}
 *   - a hash tag of its own ({T}):      <prefix>!lease:<value key>  (its first {...} is still T:
 *                                       nothing before it has braces)
 *   - a '}' but no hash tag ("a}b", "{}x", "}{"): <prefix>!lease:{<n>}<value key>, n the
 *                                       smallest number in the value key's slot (core/slot.c).
 * Distinct value keys have distinct lease keys (each holds the whole value key after a part
 * fixed by it). Returns 0, STRATA_EBADNAME or STRATA_ERANGE (cap too small). */
#define STRATA_LEASE_KEY_MAX                                                                       \
    (2 * STRATA_PREFIX_MAX + 2 * STRATA_NAME_MAX + STRATA_KEY_MAX_LIMIT + 32)
int strata__lease_key_build(const char *prefix, const char *vkey, size_t vlen, char *buf,
                            size_t cap, size_t *out_len);

/* The channel lease releases and fills are published on: <prefix>!lease. Returns 0,
 * STRATA_EBADNAME or STRATA_ERANGE. */
#define STRATA_LEASE_CHANNEL_MAX (STRATA_PREFIX_MAX + 8)
int strata__lease_channel_build(const char *prefix, char *buf, size_t cap, size_t *out_len);

/* The SCAN MATCH prefilter for the entries of (ns, tenant) whose user keys match pattern (NULL:
 * any of them): <prefix>:<ns|*>:<tenant|*>:<pattern|*>. A prefilter only ('*' may span ':'):
 * callers parse every key back (strata_key_parse) and match it exactly. A pattern too long for
 * buf is replaced by '*', which only widens the prefilter. */
#define STRATA_SCAN_MATCH_MAX (STRATA_PREFIX_MAX + 2 * STRATA_NAME_MAX + 1024)
void strata__scan_match_build(const char *prefix, const char *ns, const char *tenant,
                              const char *pattern, char *buf, size_t cap);

#endif
