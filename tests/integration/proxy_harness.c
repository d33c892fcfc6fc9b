/* proxy_harness.c: helpers of the caching proxy's integration tests (proxy_harness.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "it_tmp.h"
#include "proxy_harness.h"

#define HDRS_MAX 32

sh_resp *px_send(const sh_server *s, const char *method, const char *path, const char *body,
                 long timeout_ms, const char *const *headers)
{
    return sh_request_port(sh_port(s), method, path, headers, body, body ? strlen(body) : 0,
                           timeout_ms);
}

sh_resp *px_get(const sh_server *s, const char *method, const char *path, ...)
{
    const char *h[HDRS_MAX + 1];
    size_t n = 0;
    va_list ap;
    va_start(ap, path);
    for (const char *v; (v = va_arg(ap, const char *)) != NULL;) {
        if (n == HDRS_MAX) {
            fprintf(stderr, "px_get: more than %d headers\n", HDRS_MAX);
            abort();
        }
        h[n++] = v;
    }
    va_end(ap);
    h[n] = NULL;
    return px_send(s, method, path, NULL, 0, h);
}

unsigned long px_origin_requests(const oh_origin *o)
{
    unsigned long conns, reqs;
    for (int i = 0; i < 50; i++) {
        if (oh_count(o, &conns, &reqs) == 0)
            return reqs;
        usleep(20000);
    }
    fprintf(stderr, "px_origin_requests: the origin on port %d does not answer /__count\n",
            oh_port(o));
    abort();
}

static sh_server *start_with(const char *const *args, const char *const *env)
{
    static const char *const dflt[] = {"STRATA_WORKERS=2", NULL};
    return sh_start(env ? env : dflt, args);
}

sh_server *px_start_upstream(const oh_origin *o, const char *const *env)
{
    char *url = it_xasprintf("http://127.0.0.1:%d", oh_port(o));
    const char *args[] = {"--upstream", url, NULL};
    sh_server *s = start_with(args, env);
    free(url);
    return s;
}

sh_server *px_start_config(const char *path, const char *const *env)
{
    const char *args[] = {"--config", path, NULL};
    return start_with(args, env);
}

char *px_write_file(const char *dir, const char *name, const char *text)
{
    char *path = it_xasprintf("%s/%s", dir, name);
    char *tmp = it_xasprintf("%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL || fputs(text, f) == EOF || fclose(f) != 0 || rename(tmp, path) != 0) {
        fprintf(stderr, "px_write_file: cannot write %s\n", path);
        abort();
    }
    free(tmp);
    return path;
}

int px_wait_log(const sh_server *s, const char *needle, long timeout_ms)
{
    long end = sh_now_ms() + timeout_ms;
    while (!sh_log_contains(s, needle)) {
        if (sh_now_ms() > end)
            return 0;
        sh_sleep_ms(20);
    }
    return 1;
}

void px_align_second(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long ms = ts.tv_nsec / 1000000;
    if (ms >= 20 && ms <= 120)
        return;
    sh_sleep_ms(ms < 20 ? 25 - ms : 1025 - ms);
}

int px_xcache_in(const sh_resp *r, ...)
{
    const char *x = sh_resp_header(r, "X-Cache");
    va_list ap;
    va_start(ap, r);
    int ok = 0;
    for (const char *v; !ok && (v = va_arg(ap, const char *)) != NULL;)
        ok = x != NULL && strcmp(x, v) == 0;
    va_end(ap);
    if (!ok) {
        fprintf(stderr, "%s: unexpected X-Cache %s (HTTP %ld%s%s); its head:\n", r->what,
                x ? x : "(absent)", r->status, r->err[0] ? ", " : "", r->err);
        for (size_t i = 0; i < r->nheaders; i++)
            fprintf(stderr, "  %s: %s\n", r->headers[i].name, r->headers[i].value);
    }
    return ok;
}

int px_header_has(const sh_resp *r, const char *name, const char *needle)
{
    const char *v = sh_resp_header(r, name);
    if (v != NULL && strstr(v, needle) != NULL)
        return 1;
    fprintf(stderr, "%s: header %s is %s%s%s, expected it to contain \"%s\"\n", r->what, name,
            v ? "\"" : "", v ? v : "(absent)", v ? "\"" : "", needle);
    return 0;
}

int px_contains_ci(const char *hay, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; n <= len && i <= len - n; i++)
        if (strncasecmp(hay + i, needle, n) == 0)
            return 1;
    return 0;
}

int px_is_pattern(const char *body, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (body[i] != 'a' + (char)(i % 26))
            return 0;
    return 1;
}

int px_body_is(const sh_resp *r, const char *body)
{
    if (r->status == 200 && r->body_len == strlen(body) && memcmp(r->body, body, r->body_len) == 0)
        return 1;
    fprintf(stderr, "%s: HTTP %ld%s%s, body \"%.200s\", expected 200 and \"%s\"\n", r->what,
            r->status, r->status == 0 ? ": " : "", r->status == 0 ? r->err : "",
            r->body ? r->body : "", body);
    return 0;
}
