/* origin.c: an origin, made from a URL and options: where it is, how long to wait, how many
 * connections, and how its TLS is verified.
 *
 * The URL is split by http-parser's own URL parser (http_parser_parse_url), the one the server's
 * framing already trusts, and only what an origin may be is accepted: http or https, a host, an
 * optional port and base path; no user info, query or fragment (they belong to requests, and a
 * password in a URL ends up in logs). For https the OpenSSL context is made here, once per
 * origin, with the CA store loaded: a missing CA file is a configuration error at start, not a
 * handshake failure on the first request. Connections make their SSL objects from it
 * (upstream_conn.c), which OpenSSL allows from any thread once the context is configured.
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <http_parser.h>

#include "upstream_internal.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

static int fail(char *err, size_t errcap, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errcap, int code, const char *fmt, ...)
{
    if (errcap > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errcap, fmt, ap);
        va_end(ap);
    }
    return code;
}

static char *dup_span(const char *s, size_t len)
{
    char *d = malloc(len + 1);
    if (d != NULL) {
        memcpy(d, s, len);
        d[len] = '\0';
    }
    return d;
}

static void defaults(upstream_options *o)
{
    if (o->connect_timeout_ms == 0)
        o->connect_timeout_ms = 5000;
    if (o->first_byte_timeout_ms == 0)
        o->first_byte_timeout_ms = 30000;
    if (o->max_conns == 0)
        o->max_conns = 64;
    if (o->max_queue == 0)
        o->max_queue = 256;
    if (o->max_idle == 0 || o->max_idle > o->max_conns)
        o->max_idle = o->max_conns;
    if (o->idle_timeout_ms == 0)
        o->idle_timeout_ms = 30000;
}

static int is_ip(const char *s)
{
    unsigned char a[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

/* A context as every origin's starts: TLS 1.2 or later, ALPN http/1.1 (an LLM provider that
 * also speaks h2 must not pick it). NULL when out of memory. */
static SSL_CTX *new_ctx(void)
{
    static const unsigned char alpn[] = "\x08http/1.1";
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn - 1);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    return ctx;
}

/* The system store is loaded once per process and its context shared (reference-counted) by
 * every origin verified against it: the bundle is ~140 certificates, parsed eagerly (tens of
 * milliseconds and about a megabyte each time), and a configuration may name many https
 * origins, or be reloaded. An SSL_CTX is safe to share between threads once set up. */
static pthread_once_t system_once = PTHREAD_ONCE_INIT;
static SSL_CTX *system_ctx;
static char system_why[160];

static void load_system_store(void)
{
    SSL_CTX *ctx = new_ctx();
    if (ctx == NULL) {
        snprintf(system_why, sizeof system_why, "out of memory");
        return;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        ERR_error_string_n(ERR_get_error(), system_why, sizeof system_why);
        ERR_clear_error();
        SSL_CTX_free(ctx);
        return;
    }
    system_ctx = ctx;
}

/* The context every connection to an https origin is made from: new_ctx's, and, unless
 * insecure, peer verification against ca_file or the (shared) system store. */
static int make_tls(upstream_origin *o, char *err, size_t errcap)
{
    if (!o->opt.tls_insecure && o->opt.ca_file == NULL) {
        pthread_once(&system_once, load_system_store);
        if (system_ctx == NULL)
            return fail(err, errcap, UPSTREAM_EINVAL,
                        "cannot load the CA certificates (system store): %s", system_why);
        SSL_CTX_up_ref(system_ctx);
        o->ssl_ctx = system_ctx;
        return 0;
    }
    SSL_CTX *ctx = new_ctx();
    if (ctx == NULL)
        return fail(err, errcap, UPSTREAM_ENOMEM, "cannot make a TLS context");
    if (!o->opt.tls_insecure) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        int ok = o->opt.ca_file != NULL ? SSL_CTX_load_verify_locations(ctx, o->opt.ca_file, NULL)
                                        : SSL_CTX_set_default_verify_paths(ctx);
        if (ok != 1) {
            char why[160];
            ERR_error_string_n(ERR_get_error(), why, sizeof why);
            ERR_clear_error();
            SSL_CTX_free(ctx);
            return fail(err, errcap, UPSTREAM_EINVAL, "cannot load the CA certificates %s: %s",
                        o->opt.ca_file != NULL ? o->opt.ca_file : "(system store)", why);
        }
    }
    o->ssl_ctx = ctx;
    return 0;
}

/* Splits url into o's scheme, host, port and base path. */
static int parse_url(upstream_origin *o, const char *url, char *err, size_t errcap)
{
    struct http_parser_url u;
    http_parser_url_init(&u);
    size_t len = strlen(url);
    if (len == 0 || len > 4096 || http_parser_parse_url(url, len, 0, &u) != 0)
        return fail(err, errcap, UPSTREAM_EINVAL, "not a URL: '%.200s'", url);
    if (!(u.field_set & (1 << UF_SCHEMA)) || !(u.field_set & (1 << UF_HOST)))
        return fail(err, errcap, UPSTREAM_EINVAL, "'%.200s' needs a scheme and a host", url);
    if (u.field_set & ((1 << UF_USERINFO) | (1 << UF_QUERY) | (1 << UF_FRAGMENT)))
        return fail(err, errcap, UPSTREAM_EINVAL,
                    "'%.200s': an origin has no user info, query or fragment", url);
    const char *scheme = url + u.field_data[UF_SCHEMA].off;
    size_t slen = u.field_data[UF_SCHEMA].len;
    if (slen == 4 && strncasecmp(scheme, "http", 4) == 0)
        o->tls = 0;
    else if (slen == 5 && strncasecmp(scheme, "https", 5) == 0)
        o->tls = 1;
    else
        return fail(err, errcap, UPSTREAM_EINVAL, "'%.200s': the scheme must be http or https",
                    url);
    snprintf(o->scheme, sizeof o->scheme, "%s", o->tls ? "https" : "http");
    size_t hlen = u.field_data[UF_HOST].len;
    if (hlen == 0 || hlen > 253)
        return fail(err, errcap, UPSTREAM_EINVAL, "'%.200s': bad host", url);
    o->host = dup_span(url + u.field_data[UF_HOST].off, hlen);
    if (o->host == NULL)
        return UPSTREAM_ENOMEM;
    o->port = (u.field_set & (1 << UF_PORT)) ? u.port : (o->tls ? 443u : 80u);
    if (o->port == 0)
        return fail(err, errcap, UPSTREAM_EINVAL, "'%.200s': port 0", url);
    const char *path = "";
    size_t plen = 0;
    if (u.field_set & (1 << UF_PATH)) {
        path = url + u.field_data[UF_PATH].off;
        plen = u.field_data[UF_PATH].len;
    }
    while (plen > 0 && path[plen - 1] == '/')
        plen--;
    o->base_path = dup_span(path, plen);
    if (o->base_path == NULL)
        return UPSTREAM_ENOMEM;
    int v6 = strchr(o->host, ':') != NULL;
    int default_port = o->port == (o->tls ? 443u : 80u);
    if (default_port)
        snprintf(o->authority, sizeof o->authority, v6 ? "[%s]" : "%s", o->host);
    else
        snprintf(o->authority, sizeof o->authority, v6 ? "[%s]:%u" : "%s:%u", o->host, o->port);
    return 0;
}

int upstream_origin_new(const char *url, const upstream_options *opts, char *err, size_t errcap,
                        upstream_origin **out)
{
    if (errcap > 0)
        err[0] = '\0';
    if (url == NULL || out == NULL)
        return fail(err, errcap, UPSTREAM_EINVAL, "no URL");
    upstream_origin *o = calloc(1, sizeof *o);
    if (o == NULL)
        return UPSTREAM_ENOMEM;
    if (opts != NULL)
        o->opt = *opts;
    defaults(&o->opt);
    o->opt.ca_file = NULL; /* copied below: the caller's string is borrowed */
    o->opt.server_name = NULL;
    int rc = parse_url(o, url, err, errcap);
    if (rc == 0) {
        const char *name = opts != NULL && opts->server_name != NULL ? opts->server_name : o->host;
        o->name = strdup(name);
        if (opts != NULL && opts->ca_file != NULL)
            o->opt.ca_file = strdup(opts->ca_file);
        o->opt.server_name = o->name;
        if (o->name == NULL || (opts != NULL && opts->ca_file != NULL && o->opt.ca_file == NULL))
            rc = UPSTREAM_ENOMEM;
        else
            o->name_is_ip = is_ip(o->name);
    }
    if (rc == 0 && o->tls)
        rc = make_tls(o, err, errcap);
    if (rc != 0) {
        if (rc == UPSTREAM_ENOMEM && errcap > 0 && err[0] == '\0')
            fail(err, errcap, rc, "out of memory");
        upstream_origin_free(o);
        return rc;
    }
    *out = o;
    return 0;
}

void upstream_origin_free(upstream_origin *o)
{
    if (o == NULL)
        return;
    SSL_CTX_free(o->ssl_ctx);
    free((char *)o->opt.ca_file);
    free(o->name);
    free(o->host);
    free(o->base_path);
    free(o);
}

const char *upstream_origin_scheme(const upstream_origin *o)
{
    return o->scheme;
}

const char *upstream_origin_host(const upstream_origin *o)
{
    return o->host;
}

unsigned upstream_origin_port(const upstream_origin *o)
{
    return o->port;
}

const char *upstream_origin_base_path(const upstream_origin *o)
{
    return o->base_path;
}

const char *upstream_origin_authority(const upstream_origin *o)
{
    return o->authority;
}
