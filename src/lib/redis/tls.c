/* redis/tls.c: TLS under the Redis client's own sockets (tls.h).
 *
 * The context is made once per client and shared by every connection and thread (OpenSSL allows
 * it once the context is set up). Verification is on unless REDIS_TLS_INSECURE: the chain
 * against REDIS_TLS_CA_CERT (or the system store) and the name, sent as SNI when it is a name;
 * an IP address is checked against the certificate's IP entries instead (no SNI for addresses,
 * RFC 6066). A failure is reported in words a person can act on: which check failed ("certificate
 * verify failed: unable to get local issuer certificate"), not an OpenSSL error number alone.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <sys/socket.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <strata/errors.h>

#include "redis/tls.h"

struct redis_tls {
    SSL_CTX *ctx;
    char name[256]; /* what is verified: a host name, or an address */
    int is_ip;
    int fixed; /* REDIS_TLS_SERVER_NAME: the name, whatever the host */
    int verify;
};

/* ---- the socket under OpenSSL ---------------------------------------------------------------
 * OpenSSL's own socket BIO writes with write(), and a Redis that has closed the connection then
 * raises SIGPIPE, which kills a process that did not ignore it: a library must not. This BIO is
 * the same socket written with send(MSG_NOSIGNAL), as the plain connections are. */

static BIO_METHOD *sock_method;
static pthread_once_t sock_method_once = PTHREAD_ONCE_INIT;

static int sock_fd(BIO *b)
{
    return (int)(intptr_t)BIO_get_data(b);
}

static int sock_write(BIO *b, const char *data, int len)
{
    BIO_clear_retry_flags(b);
    ssize_t n = send(sock_fd(b), data, (size_t)len, MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        BIO_set_retry_write(b);
    return (int)n;
}

static int sock_read(BIO *b, char *data, int len)
{
    BIO_clear_retry_flags(b);
    ssize_t n = recv(sock_fd(b), data, (size_t)len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        BIO_set_retry_read(b);
    return (int)n;
}

static long sock_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b, (void)num, (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0; /* nothing is buffered here */
}

static int sock_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static void make_sock_method(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "strata redis socket");
    if (m != NULL && BIO_meth_set_write(m, sock_write) == 1 &&
        BIO_meth_set_read(m, sock_read) == 1 && BIO_meth_set_ctrl(m, sock_ctrl) == 1 &&
        BIO_meth_set_create(m, sock_create) == 1)
        sock_method = m;
    else
        BIO_meth_free(m);
}

/* Remembers a fatal alert the server sent, in the session's app data (unused otherwise): Redis
 * refuses a missing client certificate after the client's TLS 1.3 handshake is over, and the
 * call that then fails may be a write that sees the connection closed, not the alert itself. */
static void on_info(const SSL *ssl, int where, int ret)
{
    if ((where & SSL_CB_ALERT) && (where & SSL_CB_READ) && (ret >> 8) == SSL3_AL_FATAL)
        SSL_set_app_data((SSL *)ssl, (void *)(intptr_t)(0x100 | (ret & 0xff)));
}

/* The fatal alert the server sent, as text, or NULL. */
static const char *server_alert(const SSL *ssl)
{
    intptr_t a = (intptr_t)SSL_get_app_data(ssl);
    if (a == 0)
        return NULL;
    switch (a & 0xff) {
    case 116: /* TLS 1.3's certificate_required, which OpenSSL 3.0 does not name */
        return "certificate required (set REDIS_TLS_CERT and REDIS_TLS_KEY)";
    case 48:
        return "unknown CA (of the client certificate)";
    default:
        return SSL_alert_desc_string_long((int)(a & 0xff));
    }
}

/* The last OpenSSL error as text, and the queue emptied. */
static void ssl_why(char *err, size_t cap, const char *what)
{
    unsigned long e = ERR_peek_last_error();
    char buf[200];
    if (e != 0)
        ERR_error_string_n(e, buf, sizeof buf);
    else
        snprintf(buf, sizeof buf, "unknown error");
    ERR_clear_error();
    snprintf(err, cap, "%s: %s", what, buf);
}

int strata__tls_new(const strata_redis_config *cfg, const char *host, redis_tls **out, char *err,
                    size_t cap)
{
    *out = NULL;
    redis_tls *t = calloc(1, sizeof *t);
    if (t == NULL || (t->ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
        free(t);
        snprintf(err, cap, "redis TLS: out of memory");
        return STRATA_ENOMEM;
    }
    SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
    /* Writes may stop part-way and resume from a buffer that moved (pipe.c writes from an
     * evbuffer that may grow meanwhile); an EOF without close_notify is a plain close. */
    SSL_CTX_set_mode(t->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                 SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_options(t->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_info_callback(t->ctx, on_info);
    t->verify = !cfg->tls_insecure;
    const char *name = cfg->tls_server_name && *cfg->tls_server_name ? cfg->tls_server_name : host;
    snprintf(t->name, sizeof t->name, "%s", name ? name : "");
    t->fixed = cfg->tls_server_name && *cfg->tls_server_name;
    unsigned char addr[16];
    t->is_ip = inet_pton(AF_INET, t->name, addr) == 1 || inet_pton(AF_INET6, t->name, addr) == 1;
    const char *fail = NULL;
    char what[320];
    if (t->verify) {
        SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
        if (cfg->tls_ca_cert && *cfg->tls_ca_cert) {
            if (SSL_CTX_load_verify_locations(t->ctx, cfg->tls_ca_cert, NULL) != 1)
                snprintf(what, sizeof what, "REDIS_TLS_CA_CERT=%s", cfg->tls_ca_cert), fail = what;
        } else if (SSL_CTX_set_default_verify_paths(t->ctx) != 1) {
            fail = "the system's CA store";
        }
    }
    if (fail == NULL && cfg->tls_cert && *cfg->tls_cert &&
        SSL_CTX_use_certificate_chain_file(t->ctx, cfg->tls_cert) != 1)
        snprintf(what, sizeof what, "REDIS_TLS_CERT=%s", cfg->tls_cert), fail = what;
    if (fail == NULL && cfg->tls_key && *cfg->tls_key &&
        (SSL_CTX_use_PrivateKey_file(t->ctx, cfg->tls_key, SSL_FILETYPE_PEM) != 1 ||
         SSL_CTX_check_private_key(t->ctx) != 1))
        snprintf(what, sizeof what, "REDIS_TLS_KEY=%s", cfg->tls_key), fail = what;
    if (fail != NULL) {
        ssl_why(err, cap, fail);
        strata__tls_free(t);
        return STRATA_EINVAL;
    }
    *out = t;
    return 0;
}

void strata__tls_free(redis_tls *t)
{
    if (t == NULL)
        return;
    SSL_CTX_free(t->ctx);
    free(t);
}

SSL *strata__tls_session(const redis_tls *t, int fd, const char *host, char *err, size_t cap)
{
    const char *name = t->name;
    int is_ip = t->is_ip;
    unsigned char addr[16];
    if (!t->fixed && host != NULL && *host != '\0') {
        name = host;
        is_ip = inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1;
    }
    ERR_clear_error();
    pthread_once(&sock_method_once, make_sock_method);
    SSL *ssl = SSL_new(t->ctx);
    BIO *bio = ssl != NULL && sock_method != NULL ? BIO_new(sock_method) : NULL;
    int ok = bio != NULL;
    if (ok) {
        BIO_set_data(bio, (void *)(intptr_t)fd);
        SSL_set_bio(ssl, bio, bio); /* ssl owns it now */
    }
    if (ok && !is_ip && name[0])
        ok = SSL_set_tlsext_host_name(ssl, name) == 1;
    if (ok && t->verify && name[0]) {
        X509_VERIFY_PARAM *p = SSL_get0_param(ssl);
        ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(p, name) == 1 : SSL_set1_host(ssl, name) == 1;
    }
    if (!ok) {
        ssl_why(err, cap, "redis TLS session");
        SSL_free(ssl);
        return NULL;
    }
    SSL_set_connect_state(ssl);
    return ssl;
}

/* What ret (from an SSL call on ssl) means, as tls.h's codes. */
static int outcome(SSL *ssl, int ret, char *err, size_t cap)
{
    int e = SSL_get_error(ssl, ret);
    const char *alert =
        e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? NULL : server_alert(ssl);
    if (alert != NULL) {
        ERR_clear_error();
        snprintf(err, cap, "TLS: redis refused the connection: %s", alert);
        return REDIS_TLS_FAILED;
    }
    switch (e) {
    case SSL_ERROR_WANT_READ:
        return REDIS_TLS_WANT_READ;
    case SSL_ERROR_WANT_WRITE:
        return REDIS_TLS_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        if (ERR_peek_error() == 0) {
            if (errno == 0)
                return 0;
            snprintf(err, cap, "%s", strerror(errno));
            return REDIS_TLS_FAILED;
        }
        break;
    default:
        break;
    }
    long v = SSL_get_verify_result(ssl);
    if (v != X509_V_OK) {
        ERR_clear_error();
        snprintf(err, cap, "TLS: certificate verify failed: %s", X509_verify_cert_error_string(v));
    } else {
        ssl_why(err, cap, "TLS");
    }
    return REDIS_TLS_FAILED;
}

int strata__tls_handshake(SSL *ssl, char *err, size_t cap)
{
    ERR_clear_error();
    errno = 0;
    int ret = SSL_connect(ssl);
    if (ret == 1)
        return 1;
    int rc = outcome(ssl, ret, err, cap);
    if (rc == 0) {
        snprintf(err, cap, "TLS handshake: closed by the server");
        rc = REDIS_TLS_FAILED;
    }
    return rc;
}

long strata__tls_read(SSL *ssl, void *buf, size_t n, char *err, size_t cap)
{
    ERR_clear_error();
    errno = 0;
    int ret = SSL_read(ssl, buf, n > 1 << 30 ? 1 << 30 : (int)n);
    return ret > 0 ? ret : outcome(ssl, ret, err, cap);
}

long strata__tls_write(SSL *ssl, const void *buf, size_t n, char *err, size_t cap)
{
    ERR_clear_error();
    errno = 0;
    int ret = SSL_write(ssl, buf, n > 1 << 30 ? 1 << 30 : (int)n);
    if (ret > 0)
        return ret;
    int rc = outcome(ssl, ret, err, cap);
    if (rc == 0 || rc == REDIS_TLS_FAILED) {
        /* The server may have said why before it closed (TLS 1.3 refuses a client certificate
         * after the client's handshake is done: "tlsv13 alert certificate required"). */
        char one;
        ERR_clear_error();
        int r = SSL_read(ssl, &one, 1);
        if (r <= 0 && SSL_get_error(ssl, r) == SSL_ERROR_SSL)
            ssl_why(err, cap, "TLS"), rc = REDIS_TLS_FAILED;
        ERR_clear_error();
    }
    return rc;
}
