/* cache_http.c: the HTTP client of `strata cache`, on libcurl.
 *
 * One curl handle per run, reset before each request but keeping its connection, so the pages of
 * `keys` and the batches of `warm` reuse one connection. Every request has a connect timeout and a
 * whole-request timeout, sends the bearer token and X-Tenant when given, never follows redirects
 * and speaks only http and https. One rule turns an answer into an exit code (2xx 0, 4xx 1,
 * anything else 3), and one function turns a failure into a message that says which side failed
 * and what to do about it, so every subcommand fails the same way.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <strata/strata.h>

#include "cache_cmd.h"

#define CONNECT_TIMEOUT_MS 5000L

struct cli_http {
    CURL *curl;
    const cli_opts *o;
};

cli_http *cli_http_open(const cli_opts *o)
{
    cli_http *h = calloc(1, sizeof *h);
    if (h == NULL)
        return NULL;
    h->o = o;
    h->curl = curl_easy_init();
    if (h->curl == NULL) {
        free(h);
        return NULL;
    }
    return h;
}

void cli_http_close(cli_http *h)
{
    if (h == NULL)
        return;
    curl_easy_cleanup(h->curl);
    free(h);
}

char *cli_escape(cli_http *h, const char *s, size_t n)
{
    char *e = curl_easy_escape(h->curl, s, (int)n);
    char *copy = e ? strdup(e) : NULL;
    curl_free(e);
    if (copy == NULL) {
        fprintf(stderr, "strata: out of memory\n");
        exit(CLI_UNREACHABLE);
    }
    return copy;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    cli_buf_add(arg, data, size * nmemb);
    return size * nmemb;
}

/* Copies a header's value (trimmed) into dst when the line is "name: value". */
static void take_header(const char *line, size_t n, const char *name, char *dst, size_t cap)
{
    size_t nl = strlen(name);
    if (n <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
        return;
    const char *v = line + nl + 1;
    size_t vl = n - nl - 1;
    while (vl > 0 && (*v == ' ' || *v == '\t'))
        v++, vl--;
    while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
        vl--;
    if (vl >= cap)
        vl = cap - 1;
    memcpy(dst, v, vl);
    dst[vl] = '\0';
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *arg)
{
    cli_resp *r = arg;
    size_t n = size * nmemb;
    char retry[16] = "";
    if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) { /* a new response (after 100 Continue) */
        r->content_type[0] = r->etag[0] = r->x_cache[0] = r->cache_control[0] = '\0';
        r->age[0] = r->write[0] = '\0';
        r->retry_after = 0;
    }
    take_header(data, n, "Content-Type", r->content_type, sizeof r->content_type);
    take_header(data, n, "ETag", r->etag, sizeof r->etag);
    take_header(data, n, "X-Cache", r->x_cache, sizeof r->x_cache);
    take_header(data, n, "Cache-Control", r->cache_control, sizeof r->cache_control);
    take_header(data, n, "Age", r->age, sizeof r->age);
    take_header(data, n, "X-Cache-Write", r->write, sizeof r->write);
    take_header(data, n, "Retry-After", retry, sizeof retry);
    if (retry[0])
        r->retry_after = atol(retry);
    return n;
}

/* The request headers: token, tenant, content type (or none: curl would add a form type), no
 * Expect: 100-continue (one round trip less for warm's batches). */
static struct curl_slist *request_headers(const cli_opts *o, const char *content_type)
{
    cli_buf b = {0};
    struct curl_slist *l = curl_slist_append(NULL, "Expect:");
    if (o->token != NULL) {
        cli_buf_addf(&b, "Authorization: Bearer %s", o->token);
        l = curl_slist_append(l, b.s);
        b.len = 0;
    }
    if (o->tenant != NULL) {
        cli_buf_addf(&b, "X-Tenant: %s", o->tenant);
        l = curl_slist_append(l, b.s);
        b.len = 0;
    }
    cli_buf_addf(&b, "Content-Type:%s%s", content_type ? " " : "",
                 content_type ? content_type : "");
    l = curl_slist_append(l, b.s);
    if (b.s != NULL) /* the token must not linger in freed memory */
        memset(b.s, 0, b.cap);
    cli_buf_free(&b);
    return l;
}

static void set_method(CURL *c, const char *method, const void *body, size_t len)
{
    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
        return;
    }
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body != NULL || strcmp(method, "DELETE") != 0) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
    }
}

void cli_request(cli_http *h, const char *method, const char *path, const void *body, size_t len,
                 const char *content_type, cli_resp *r)
{
    CURL *c = h->curl;
    cli_buf url = {0}, out = {0};
    char ua[64];
    memset(r, 0, sizeof *r);
    cli_buf_addf(&url, "%s%s", h->o->url, path);
    snprintf(ua, sizeof ua, "strata-cli/%s", strata_version());
    struct curl_slist *hdrs = request_headers(h->o, content_type);
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url.s);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, ua);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, h->o->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                     h->o->timeout_ms < CONNECT_TIMEOUT_MS ? h->o->timeout_ms : CONNECT_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, r->curl_msg);
    set_method(c, method, body, len);
    CURLcode rc = curl_easy_perform(c);
    r->curl_code = (int)rc;
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    else if (r->curl_msg[0] == '\0')
        snprintf(r->curl_msg, sizeof r->curl_msg, "%s", curl_easy_strerror(rc));
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL); /* r may not outlive this call */
    cli_buf_add(&out, "", 0);
    r->body = out.s, r->len = out.len;
    curl_slist_free_all(hdrs);
    cli_buf_free(&url);
}

void cli_resp_free(cli_resp *r)
{
    free(r->body);
    r->body = NULL;
}

int cli_exit_code(const cli_resp *r)
{
    if (r->status >= 200 && r->status < 300)
        return CLI_OK;
    if (r->status >= 400 && r->status < 500)
        return CLI_REFUSED;
    return CLI_UNREACHABLE;
}

/* ---- failures ----------------------------------------------------------------------------- */

static int unreachable(const cli_opts *o, const cli_resp *r, const char *what)
{
    switch (r->curl_code) {
    case CURLE_COULDNT_CONNECT:
        cli_err(o,
                "%s: cannot reach the server at %s (%s)\n  Is `strata serve` running there? "
                "Set STRATA_URL or pass --url.",
                what, o->url, r->curl_msg);
        break;
    case CURLE_COULDNT_RESOLVE_HOST:
        cli_err(o, "%s: cannot resolve the server's host in %s (%s)\n  Check STRATA_URL or --url.",
                what, o->url, r->curl_msg);
        break;
    case CURLE_OPERATION_TIMEDOUT:
        cli_err(o,
                "%s: the server at %s did not answer in time (%s)\n  Retry, or allow longer "
                "with --timeout SECONDS.",
                what, o->url, r->curl_msg);
        break;
    default:
        cli_err(o,
                "%s: the request to %s failed (%s)\n  Check STRATA_URL or --url, and that the "
                "server is up.",
                what, o->url, r->curl_msg);
    }
    return CLI_UNREACHABLE;
}

/* The error code and message of an API error body, or "" when the body is not one. */
static void error_fields(const cli_resp *r, json_t **root, const char **code, const char **msg)
{
    *root = r->body ? json_loadb(r->body, r->len, 0, NULL) : NULL;
    json_t *e = json_object_get(*root, "error");
    *code = json_is_string(json_object_get(e, "code")) ? cli_js(e, "code") : "";
    *msg = json_is_string(json_object_get(e, "message")) ? cli_js(e, "message") : "";
    if (**code == '\0') {
        json_t *st = json_object_get(*root, "status"); /* e.g. health: {"status":"unhealthy"} */
        *msg = json_is_string(st) ? json_string_value(st) : "";
    }
}

static void report_status(const cli_opts *o, const cli_resp *r, const char *what, const char *code,
                          const char *msg)
{
    const char *sep = *msg ? ": " : "";
    long s = r->status;
    if (s == 401 && o->token == NULL) /* nothing was refused: nothing was sent */
        cli_err(o,
                "%s: the server needs a token, and none was given (401 %s%s%s)\n  Set "
                "STRATA_TOKEN or pass --token.",
                what, code, sep, msg);
    else if (s == 401)
        cli_err(o,
                "%s: the server refused the token (401 %s%s%s)\n  Set STRATA_TOKEN or pass "
                "--token with a valid token.",
                what, code, sep, msg);
    else if (s == 403)
        cli_err(o,
                "%s: not allowed (403 %s%s%s)\n  Use a token with that role, or the tenant "
                "it is bound to (--tenant).",
                what, code, sep, msg);
    else if (s == 404)
        cli_err(o, "%s: not found (404 %s%s%s)", what, code, sep, msg);
    else if (s == 429)
        cli_err(o, "%s: rate limited by the server (429 %s%s%s)\n  Retry in %ld s.", what, code,
                sep, msg, r->retry_after > 0 ? r->retry_after : 1);
    else if (s >= 400 && s < 500)
        cli_err(o,
                "%s: the server refused the request (%ld %s%s%s)\n  Check the arguments "
                "(strata cache --help).",
                what, s, code, sep, msg);
    else if (s >= 500)
        cli_err(o,
                "%s: the server failed (%ld %s%s%s)\n  Retry later; `strata cache health` "
                "and the server's log say more.",
                what, s, code, sep, msg);
    else
        cli_err(o,
                "%s: unexpected answer %ld from %s\n  Is STRATA_URL the address of a strata "
                "server?",
                what, s, o->url);
}

int cli_fail(const cli_opts *o, const cli_resp *r, const char *what)
{
    if (r->status == 0)
        return unreachable(o, r, what);
    json_t *root;
    const char *code, *msg;
    error_fields(r, &root, &code, &msg);
    if (o->json && root != NULL)
        fwrite(r->body, 1, r->len, stdout);
    report_status(o, r, what, code, msg);
    json_decref(root);
    return cli_exit_code(r);
}

json_t *cli_resp_json(const cli_opts *o, const cli_resp *r)
{
    json_error_t err;
    memset(&err, 0, sizeof err);
    json_t *j = r->body ? json_loadb(r->body, r->len, 0, &err) : NULL;
    if (!json_is_object(j)) {
        cli_err(o,
                "the server's answer (%ld) is not a JSON object%s%s\n  Is STRATA_URL the "
                "address of a strata server?",
                r->status, j == NULL ? ": " : "", j == NULL ? err.text : "");
        json_decref(j);
        return NULL;
    }
    return j;
}
