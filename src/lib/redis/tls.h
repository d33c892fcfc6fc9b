/* redis/tls.h: TLS for the Redis client's sockets (rediss://, REDIS_TLS=1), part of the Redis
 * client.
 *
 * One context per client, made once from the REDIS_TLS_* settings (the CA to trust, a client
 * certificate, the name to verify); every connection (the pool's and the link's in sock.c, each
 * loop's in pipe.c) makes its session from it, on the socket it already owns. The steps below
 * never block: each says what the socket must become (readable or writable) before it is tried
 * again, so the blocking-style and the event-driven connections wait as they already do.
 */
#ifndef STRATA_REDIS_TLS_H
#define STRATA_REDIS_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>
#include <strata/cache.h>

typedef struct redis_tls redis_tls;

/* What a step answers besides a byte count (> 0) or 0 (the server closed the connection). */
#define REDIS_TLS_FAILED     (-1) /* the connection is unusable; why is in err */
#define REDIS_TLS_WANT_READ  (-2) /* try again once the socket is readable */
#define REDIS_TLS_WANT_WRITE (-3) /* try again once the socket is writable */

/* Makes the context for cfg's TLS settings: trust cfg->tls_ca_cert (else the system store),
 * present cfg->tls_cert / tls_key when set, and verify the certificate and the name
 * cfg->tls_server_name, else host (the URL's host as written, before it was resolved), unless
 * cfg->tls_insecure. Returns 0, or STRATA_EINVAL (a file that does not load) / STRATA_ENOMEM
 * with the reason in err. Free with strata__tls_free (NULL: no-op). */
int strata__tls_new(const strata_redis_config *cfg, const char *host, redis_tls **out, char *err,
                    size_t cap);
void strata__tls_free(redis_tls *t);

/* A client session on the connected socket fd (SNI set, name checked), or NULL with err. The
 * name sent and verified is REDIS_TLS_SERVER_NAME when set, else name, else the host the context
 * was made for (name: the host of this connection when it is not the URL's, as a sentinel or
 * the primary a sentinel named). The caller frees it with SSL_free before closing fd. Any
 * thread may call it. */
SSL *strata__tls_session(const redis_tls *t, int fd, const char *name, char *err, size_t cap);

/* One step of the handshake: 1 done, REDIS_TLS_WANT_*, or REDIS_TLS_FAILED with the reason in
 * err (a certificate that does not verify says which check failed). */
int strata__tls_handshake(SSL *ssl, char *err, size_t cap);

/* Reads up to n bytes / writes n bytes (a retried write must pass the same bytes, at least as
 * many): > 0 bytes done, 0 closed by the server, REDIS_TLS_WANT_* or REDIS_TLS_FAILED. */
long strata__tls_read(SSL *ssl, void *buf, size_t n, char *err, size_t cap);
long strata__tls_write(SSL *ssl, const void *buf, size_t n, char *err, size_t cap);

#endif
