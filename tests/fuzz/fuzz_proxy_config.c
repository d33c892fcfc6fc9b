/* fuzz_proxy_config.c: the proxy's configuration loader (src/server/proxy/proxy_config.c).
 *
 * The file is written by whoever deploys strata, and a bad one must be refused with a message,
 * never crash the server or leak: the input is handed to proxy_config_load_bytes as the file's
 * bytes. Either a model comes back (no message) or none does and the message names the file and
 * a line ("fuzz.yaml:LINE:COL: ..."). A model is then used as requests would use it: every route
 * is matched with a path built from its own pattern, and its key and tags are built, which must
 * give a key within the limit; then it is freed (LeakSanitizer checks the whole run).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "proxy/cache_key.h"
#include "proxy/proxy_config.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A path the route's pattern matches: literals as they are, "p" for each parameter. */
static size_t path_for(const proxy_pattern *p, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < p->nseg && o + 8 < cap; i++) {
        out[o++] = '/';
        if (p->seg[i].param >= 0) {
            out[o++] = 'p';
            continue;
        }
        for (size_t j = 0; j < p->seg[i].len && o + 8 < cap; j++) {
            unsigned char c = (unsigned char)p->seg[i].lit[j];
            o += (size_t)snprintf(out + o, cap - o, c == '/' || c == '%' ? "%%%02X" : "%c", c);
        }
    }
    if (p->wildcard || o == 0)
        out[o++] = '/';
    out[o] = '\0';
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const proxy_load_options opts = {.check_rule = NULL};
    setenv("FUZZ_KEY", "secret", 0);
    setenv("OPENAI_API_KEY", "secret", 0); /* the example file's token_env */
    char err[1024] = "";
    proxy_config *c = NULL;
    int rc = proxy_config_load_bytes("fuzz.yaml", (const char *)data, size,
                                     size % 2 ? &serve_proxy_options : &opts, &c, err, sizeof err);
    if (rc != 0) {
        CHECK(c == NULL);
        CHECK(strncmp(err, "fuzz.yaml:", 10) == 0 || strstr(err, "out of memory") != NULL);
        return 0;
    }
    CHECK(c != NULL && c->nroutes > 0 && c->norigins > 0);
    for (size_t i = 0; i < c->nroutes; i++) {
        const proxy_route *r = &c->routes[i];
        CHECK(r->origin != NULL && r->name != NULL);
        CHECK(proxy_pattern_claims_own(&r->match.path) == NULL);
        char path[600], key[300], tag[300];
        size_t n = path_for(&r->match.path, path, sizeof path);
        proxy_params m;
        const proxy_route *got = proxy_config_match(c, "GET", r->match.host, path, n, &m);
        upstream_header h[] = {{"X-A", "1"}, {"accept-language", "en"}};
        proxy_key_request q = {.method = "GET",
                               .host = r->match.host,
                               .path = path,
                               .path_len = n,
                               .query = "b=2&a=%41&c",
                               .query_len = 11,
                               .headers = h,
                               .nheaders = 2,
                               .now_s = 1000};
        if (got != NULL) {
            long kl = proxy_cache_key(got, &m, &q, 256, key, sizeof key);
            CHECK(kl > 0 && kl <= 256 && (size_t)kl == strlen(key));
            for (size_t t = 0; t < got->ntags; t++)
                (void)proxy_route_tag(got, t, &m, tag, sizeof tag);
        }
    }
    for (size_t i = 0; i < c->ninvalidations; i++) {
        const proxy_invalidation *v = &c->invalidations[i];
        char path[600], out[300];
        size_t n = path_for(&v->match.path, path, sizeof path);
        proxy_params m;
        if (proxy_config_match_invalidation(c, "DELETE", v->match.host, path, n, &m) != NULL) {
            for (size_t t = 0; t < v->ntags; t++)
                (void)proxy_invalidation_tag(v, t, &m, out, sizeof out);
            for (size_t t = 0; t < v->nkeys; t++)
                (void)proxy_invalidation_key(v, t, &m, out, sizeof out);
        }
    }
    proxy_config_free(c);
    return 0;
}
