/* namespaces.c: namespace settings for strata serve (STRATA_NAMESPACES).
 *
 *   STRATA_NAMESPACES="llm:ttl=86400,max_ttl=604800,error_ttl=60;embeddings:ttl=0,quota=64M"
 *
 * Each namespace named gets its TTL class (seconds; ttl=0: entries never expire unless a write
 * gives a TTL), a maximum TTL, the TTL of error entries, the jitter (0..0.5, default 0.1) and a
 * per-tenant memory quota in L1 (bytes, K/M/G suffixes), and the freshness of its values when a
 * write does not say: grace (seconds served stale while one caller refreshes), stale_if_error
 * (seconds served when the refresh fails) and the XFetch beta (0..100; 0: never refreshed early;
 * default 1). Namespaces not named keep the defaults (CACHE_TTL or 300 s, no grace, beta 1:
 * strata_ns_config_init's, as the library gives them). Applied once at start; a bad entry stops the
 * start with its reason. The reserved namespace _sessions takes a quota alone: what each tenant's
 * sessions may hold in memory (past it, copies Redis holds are evicted; sessions only memory holds
 * are never evicted, a new one is refused instead).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <strata/session.h>

#include "namespaces.h"

static int field(strata_ns_config *c, const char *k, const char *v, char *err, size_t cap)
{
    char *end;
    if (strcmp(k, "jitter") == 0) {
        double d = strtod(v, &end);
        if (*v == '\0' || *end != '\0' || !(d >= 0 && d <= 0.5))
            return snprintf(err, cap, "jitter must be a number from 0 to 0.5"), -1;
        c->jitter = d;
        return 0;
    }
    if (strcmp(k, "beta") == 0) {
        double d = strtod(v, &end);
        if (*v < '0' || *v > '9' || *end != '\0' || !(d >= 0 && d <= STRATA_BETA_MAX))
            return snprintf(err, cap, "beta must be a number from 0 to 100"), -1;
        c->beta = d;
        return 0;
    }
    if (strcmp(k, "quota") == 0) {
        if (strata_size_parse(v, &c->tenant_quota) != 0)
            return snprintf(err, cap, "quota must be a size in bytes (e.g. 64M)"), -1;
        return 0;
    }
    unsigned long long s = strtoull(v, &end, 10);
    if (*v < '0' || *v > '9' || *end != '\0' || s > 10ull * 365 * 86400)
        return snprintf(err, cap, "%s must be whole seconds (0 to 10 years)", k), -1;
    if (strcmp(k, "ttl") == 0)
        c->default_ttl_ms = s * 1000;
    else if (strcmp(k, "max_ttl") == 0)
        c->max_ttl_ms = s * 1000;
    else if (strcmp(k, "error_ttl") == 0)
        c->error_ttl_ms = s * 1000;
    else if ((strcmp(k, "grace") == 0 || strcmp(k, "stale_if_error") == 0) &&
             s * 1000 > STRATA_STALE_MAX_MS)
        return snprintf(err, cap, "%s must be whole seconds (0 to 30 days)", k), -1;
    else if (strcmp(k, "grace") == 0)
        c->grace_ms = s * 1000;
    else if (strcmp(k, "stale_if_error") == 0)
        c->stale_if_error_ms = s * 1000;
    else
        return snprintf(err, cap,
                        "unknown setting %s (ttl, max_ttl, error_ttl, jitter, quota, grace, "
                        "stale_if_error, beta)",
                        k),
               -1;
    return 0;
}

/* One "name:k=v,k=v" entry. */
static int apply_one(strata_l1 *l1, char *entry, char *err, size_t cap)
{
    char *colon = strchr(entry, ':');
    if (colon == NULL)
        return snprintf(err, cap, "%.60s: expected NAME:setting=value,...", entry), -1;
    *colon = '\0';
    int sessions = strcmp(entry, STRATA_SESSION_NS) == 0;
    if (strata_name_check(entry) != 0 || (entry[0] == '_' && !sessions))
        return snprintf(err, cap,
                        "%.60s: not a namespace name (A-Z a-z 0-9 _ . -, not "
                        "starting with _ but for _sessions)",
                        entry),
               -1;
    strata_ns_config c;
    strata_l1_ns_config(l1, entry, &c); /* the defaults, CACHE_TTL included */
    char *save = NULL, msg[200];
    for (char *f = strtok_r(colon + 1, ",", &save); f != NULL; f = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(f, '=');
        if (eq == NULL)
            return snprintf(err, cap, "%s: expected setting=value, got %.40s", entry, f), -1;
        *eq = '\0';
        if (sessions && strcmp(f, "quota") != 0)
            return snprintf(err, cap,
                            "%s: only quota can be set (a session carries its own TTL), not %.40s",
                            entry, f),
                   -1;
        if (field(&c, f, eq + 1, msg, sizeof msg) != 0)
            return snprintf(err, cap, "%s: %s", entry, msg), -1;
    }
    int rc = strata_l1_ns_configure(l1, entry, &c);
    if (rc != 0)
        return snprintf(err, cap, "%s: %s", entry, strata_strerror(rc)), -1;
    return 0;
}

int namespaces_apply(strata_l1 *l1, const char *spec, char *err, size_t cap)
{
    if (spec == NULL || *spec == '\0')
        return 0;
    char *copy = strdup(spec), *save = NULL;
    int rc = copy ? 0 : -1;
    for (char *e = copy ? strtok_r(copy, ";", &save) : NULL; rc == 0 && e != NULL;
         e = strtok_r(NULL, ";", &save))
        rc = apply_one(l1, e, err, cap);
    free(copy);
    return rc;
}
