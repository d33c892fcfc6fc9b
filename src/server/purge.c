/* purge.c: the caching proxy's purges: POST /cache/purge ({"tags", "urls", "patterns", "soft"})
 * and the PURGE method on a URL (the convention Varnish and nginx users script against).
 *
 * A purge acts in the caller's tenant, on every instance: tags and URLs are tag invalidations
 * (each stored response carries its URL's tag, proxy_store.c), one write each, heard by every
 * instance's L1 through the invalidation link; patterns are globs over the proxy's cache keys
 * (docs/api.md), cleared in one pass over Redis. A soft purge marks entries stale instead of
 * dropping them: the next request revalidates (a 304 keeps the body), and while the origin is
 * down they are still served under stale-if-error.
 *
 * Purges wait on Redis, so they run on an admin lane (tags and URLs on the quick lane, patterns
 * on the bulk lane), never on a worker's loop.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "handlers.h"
#include "proxy_internal.h"

#define PURGE_MAX 1000 /* tags, URLs and patterns in one purge */

typedef struct purge_job {
    req *q;
    strata_cache *cache;
    char tenant[STRATA_NAME_MAX + 1];
    int soft;
    json_t *tags, *patterns; /* arrays of strings; URLs are turned into tags */
    size_t tags_done, urls, keys;
    int rc, l1_only, reason;
} purge_job;

static void note(purge_job *j, int rc)
{
    if (rc == STRATA_OK_L1_ONLY && !j->l1_only) {
        j->l1_only = 1;
        j->reason = strata_fallback_reason();
    }
    if (rc < 0 && j->rc == 0)
        j->rc = rc;
}

static void purge_run(void *arg)
{
    purge_job *j = arg;
    for (size_t i = 0; i < json_array_size(j->tags); i++) {
        const char *tag = json_string_value(json_array_get(j->tags, i));
        int rc = j->soft ? strata_cache_tag_invalidate_soft(j->cache, j->tenant, tag)
                         : strata_cache_tag_invalidate(j->cache, j->tenant, tag);
        note(j, rc);
        j->tags_done += rc >= 0;
    }
    size_t n = json_array_size(j->patterns);
    if (n == 0)
        return;
    const char *pats[PURGE_MAX];
    for (size_t i = 0; i < n; i++)
        pats[i] = json_string_value(json_array_get(j->patterns, i));
    int rc = j->soft ? strata_cache_expire_any(j->cache, PROXY_NS, j->tenant, pats, n, &j->keys)
                     : strata_cache_clear_any(j->cache, PROXY_NS, j->tenant, pats, n, &j->keys);
    note(j, rc);
}

static void purge_done(void *arg)
{
    purge_job *j = arg;
    req *q = j->q;
    if (j->l1_only) {
        add_header(q, "X-Cache-Write", "l1-only");
        add_reason(q, j->reason);
    }
    if (j->rc >= 0)
        atomic_fetch_add_explicit(&q->w->srv->purges, 1, memory_order_relaxed);
    if (j->rc < 0)
        reply_status(q, j->rc);
    else
        reply_json(q, 200,
                   json_pack("{s:I,s:I,s:I,s:b}", "tags", (json_int_t)(j->tags_done - j->urls),
                             "urls", (json_int_t)j->urls, "keys", (json_int_t)j->keys, "soft",
                             j->soft));
    json_decref(j->tags);
    json_decref(j->patterns);
    free(j);
}

/* The URL's tag: "http://host[:port]/path[?query]" or "/path" (the request's Host). Returns 0,
 * or -1 when it is neither. */
static int url_tag_of(req *q, const char *url, char *tag)
{
    char host[256];
    const char *path = url;
    if (strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0) {
        const char *h = url + (url[4] == ':' ? 7 : 8);
        size_t hl = strcspn(h, "/?#");
        if (hl == 0 || hl >= sizeof host)
            return -1;
        for (size_t i = 0; i < hl; i++)
            host[i] = (char)((h[i] >= 'A' && h[i] <= 'Z') ? h[i] + 32 : h[i]);
        host[hl] = '\0';
        /* The scheme's own port is the one a client's Host leaves out. */
        const char *dflt = url[4] == ':' ? ":80" : ":443";
        if (hl > strlen(dflt) && strcmp(host + hl - strlen(dflt), dflt) == 0)
            host[hl - strlen(dflt)] = '\0';
        path = h[hl] == '/' ? h + hl : "/";
    } else if (url[0] == '/') {
        const char *h = get_header(q, "Host");
        size_t i = 0;
        for (; h && h[i] && i + 1 < sizeof host; i++)
            host[i] = (char)((h[i] >= 'A' && h[i] <= 'Z') ? h[i] + 32 : h[i]);
        host[i] = '\0';
    } else {
        return -1;
    }
    proxy_url_tag(host, path, strcspn(path, "?#"), tag);
    return 0;
}

/* 1 if a is absent or an array of at most PURGE_MAX non-empty texts of at most max bytes. */
static int strings_ok(json_t *a, size_t max)
{
    if (a == NULL)
        return 1;
    if (!json_is_array(a) || json_array_size(a) > PURGE_MAX)
        return 0;
    for (size_t i = 0; i < json_array_size(a); i++) {
        json_t *s = json_array_get(a, i);
        if (!json_is_string(s) || json_string_length(s) == 0 || json_string_length(s) > max ||
            !route_text_ok(json_string_value(s), json_string_length(s)))
            return 0;
    }
    return 1;
}

static void submit(req *q, purge_job *j)
{
    j->q = q;
    j->cache = q->w->srv->cache;
    snprintf(j->tenant, sizeof j->tenant, "%s", q->tenant);
    offload_lane *lane = json_array_size(j->patterns) ? &q->w->srv->bulk : &q->w->srv->quick;
    if (offload_bounded(q, lane, purge_run, purge_done, j) != 0) {
        json_decref(j->tags);
        json_decref(j->patterns);
        free(j);
    }
}

/* Adds each URL of urls to j->tags as its tag. Returns 0, or answers 400 and returns -1. */
static int add_urls(req *q, purge_job *j, json_t *urls)
{
    char tag[STRATA_TAG_MAX + 1];
    for (size_t i = 0; i < json_array_size(urls); i++) {
        const char *u = json_string_value(json_array_get(urls, i));
        if (url_tag_of(q, u, tag) != 0) {
            reply_error(q, 400, "bad_url",
                        "urls[%zu]: expected http://HOST/PATH, https://HOST/PATH or /PATH", i);
            return -1;
        }
        json_array_append_new(j->tags, json_string(tag));
        j->urls++;
    }
    return 0;
}

void purge_handle(req *q)
{
    size_t len;
    const char *body = get_body(q, &len);
    json_error_t err;
    json_t *b = body ? json_loadb(body, len, JSON_REJECT_DUPLICATES, &err) : NULL;
    if (b == NULL || !json_is_object(b)) {
        reply_error(q, 400, "bad_json", "%s",
                    b == NULL && body ? err.text : "the body must be a JSON object");
        json_decref(b);
        return;
    }
    json_t *tags = json_object_get(b, "tags"), *urls = json_object_get(b, "urls");
    json_t *patterns = json_object_get(b, "patterns"), *soft = json_object_get(b, "soft");
    /* Every member is one of the four: a misspelt "tag" must not purge nothing silently. */
    size_t known = (tags != NULL) + (urls != NULL) + (patterns != NULL) + (soft != NULL);
    /* Everything is checked before anything is purged: never half a purge and then a 400. */
    if (known != json_object_size(b) || (!tags && !urls && !patterns) ||
        !strings_ok(tags, STRATA_TAG_MAX) || !strings_ok(urls, 16384) ||
        !strings_ok(patterns, 1024) || (soft && !json_is_boolean(soft))) {
        json_decref(b);
        reply_error(q, 400, "bad_request",
                    "expected {\"tags\": [..], \"urls\": [..], \"patterns\": [..], \"soft\": "
                    "false}: at least one list, of at most %d texts each (tags up to %d bytes, "
                    "patterns up to 1024)",
                    PURGE_MAX, STRATA_TAG_MAX);
        return;
    }
    purge_job *j = calloc(1, sizeof *j);
    if (j == NULL) {
        json_decref(b);
        reply_error(q, 503, "server_busy", "out of memory");
        return;
    }
    j->soft = soft && json_is_true(soft);
    j->tags = tags ? json_copy(tags) : json_array();
    j->patterns = patterns ? json_incref(patterns) : json_array();
    int rc = add_urls(q, j, urls); /* urls is b's: b goes after */
    json_decref(b);
    if (rc != 0) {
        json_decref(j->tags);
        json_decref(j->patterns);
        free(j);
        return;
    }
    submit(q, j);
}

void purge_url_handle(req *q)
{
    char tag[STRATA_TAG_MAX + 1];
    purge_job *j = calloc(1, sizeof *j);
    if (j == NULL) {
        reply_error(q, 503, "server_busy", "out of memory");
        return;
    }
    const char *soft = get_header(q, "X-Purge-Soft");
    j->soft = soft != NULL && strcmp(soft, "1") == 0;
    j->tags = json_array();
    j->patterns = json_array();
    url_tag_of(q, get_path(q), tag);
    json_array_append_new(j->tags, json_string(tag));
    j->urls = 1;
    submit(q, j);
}
