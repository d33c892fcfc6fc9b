/* cache.c: the two-tier cache facade and the asynchronous calling convention (cache.h).
 *
 * Until the Redis tier lands, the cache is its memory tier: every call completes during the call,
 * so the asynchronous functions answer STRATA_OK (or a miss) at once and never call back. The
 * structure is the one the shared tier will fill: the loop is where per-thread Redis connections
 * and pending calls will live, and the convention callers code against does not change.
 */
#include <stdlib.h>
#include <string.h>

#include <strata/cache.h>
#include <strata/errors.h>

#include "config.h"

struct strata_cache {
    strata_l1 *l1;
};

struct strata_loop {
    strata_cache *cache;
    struct event_base *base;
};

int strata_cache_config_init(strata_cache_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    int rc = strata_l1_config_init(&cfg->l1);
    const char *prefix = getenv("STRATA_PREFIX");
    if (prefix != NULL && *prefix != '\0') {
        if (strata_prefix_check(prefix) != 0)
            return rc != 0 ? rc : STRATA_EBADNAME;
        cfg->l1.prefix = prefix;
    }
    return rc;
}

int strata_cache_new(const strata_cache_config *cfg, strata_cache **out)
{
    *out = NULL;
    strata_cache *c = calloc(1, sizeof *c);
    if (c == NULL)
        return STRATA_ENOMEM;
    int rc = strata_l1_new(cfg ? &cfg->l1 : NULL, &c->l1);
    if (rc != 0) {
        free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void strata_cache_free(strata_cache *c)
{
    if (c == NULL)
        return;
    strata_l1_free(c->l1);
    free(c);
}

strata_l1 *strata_cache_l1(strata_cache *c)
{
    return c->l1;
}

int strata_cache_get(strata_cache *c, const strata_key *k, strata_value **out)
{
    return strata_l1_get(c->l1, k, strata_now_ms(), out);
}

int strata_cache_set(strata_cache *c, const strata_key *k, const void *value, size_t len,
                     const strata_set_opts *opts)
{
    return strata_l1_set(c->l1, k, value, len, opts, strata_now_ms());
}

int strata_cache_del(strata_cache *c, const strata_key *k)
{
    return strata_l1_del(c->l1, k, strata_now_ms());
}

int strata_loop_new(strata_cache *c, struct event_base *base, strata_loop **out)
{
    *out = NULL;
    if (c == NULL || base == NULL)
        return STRATA_EINVAL;
    strata_loop *lp = calloc(1, sizeof *lp);
    if (lp == NULL)
        return STRATA_ENOMEM;
    lp->cache = c;
    lp->base = base;
    *out = lp;
    return 0;
}

void strata_loop_free(strata_loop *lp)
{
    free(lp);
}

int strata_cache_get_async(strata_loop *lp, const strata_key *k, strata_get_cb cb, void *arg,
                           strata_value **out)
{
    (void)cb, (void)arg;
    return strata_cache_get(lp->cache, k, out);
}

int strata_cache_set_async(strata_loop *lp, const strata_key *k, const void *value, size_t len,
                           const strata_set_opts *opts, strata_done_cb cb, void *arg)
{
    (void)cb, (void)arg;
    return strata_cache_set(lp->cache, k, value, len, opts);
}

int strata_cache_del_async(strata_loop *lp, const strata_key *k, strata_done_cb cb, void *arg)
{
    (void)cb, (void)arg;
    return strata_cache_del(lp->cache, k);
}
