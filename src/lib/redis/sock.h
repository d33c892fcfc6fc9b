/* redis/sock.h: a blocking-style Redis connection on a socket strata owns, for the threads that
 * may wait (the synchronous pool and the invalidation link), part of the Redis client.
 *
 * The socket is non-blocking and every wait is a poll() against a deadline, so each exchange is
 * bounded as a whole (not per system call); hiredis is used only to parse replies (cmd.c formats
 * commands), as on the pipelined connections (pipe.c). The address is numeric (the client's
 * target, redis/resolve.c or redis/sentinel.c resolved it): connecting never looks a name up.
 * Owning the socket is what lets TLS come in under the same code: with TLS, each send and recv is
 * an SSL_write and SSL_read (redis/tls.c) that says which way to poll, against the same deadlines.
 */
#ifndef STRATA_REDIS_SOCK_H
#define STRATA_REDIS_SOCK_H

#include <stddef.h>
#include <sys/socket.h>

#include <hiredis/hiredis.h>

#include "redis/cmd.h"
#include "redis/redis_url.h"

typedef struct redis_sock redis_sock;

struct sockaddr_storage;
/* The address of u (its host already numeric: the client resolved it once), for connect().
 * Returns 0, or -1 when the host is not numeric or the path too long. */
int strata__redis_sockaddr(const redis_url *u, struct sockaddr_storage *ss, socklen_t *len);

struct redis_tls;
/* Connects to u within connect_ms (TCP_NODELAY and keep-alive on TCP), and with tls (NULL:
 * plain) does the TLS handshake within the same connect_ms, verifying tls_name (NULL: the
 * context's; see strata__tls_session). Returns the connection, or NULL with the reason in err
 * ("TLS handshake with redis failed: TLS: certificate verify failed: ..."). */
redis_sock *strata__sock_connect(const redis_url *u, const struct redis_tls *tls,
                                 const char *tls_name, unsigned connect_ms, char *err, size_t cap);

/* Closes and frees. NULL is a no-op. */
void strata__sock_close(redis_sock *s);

/* Sends n commands, pipelined, and reads their n replies, all within timeout_ms. Returns 0 with
 * replies[0..n) (the caller frees each with freeReplyObject), STRATA_ETIMEDOUT or
 * STRATA_EUNAVAILABLE (closed, an I/O error or a protocol error: the connection is unusable),
 * with the reason in strata__sock_error; on failure no reply is returned. */
int strata__sock_exchange(redis_sock *s, const redis_cmd *cmds, size_t n, redisReply **replies,
                          unsigned timeout_ms);

/* For a connection that receives pushes (the link): writes cmd within timeout_ms without
 * waiting for its reply; reads what has arrived (never waits); takes the next complete reply
 * (NULL when none is complete yet). Each returns 0, or -1 when the connection is unusable. */
int strata__sock_send(redis_sock *s, const redis_cmd *cmd, unsigned timeout_ms);
int strata__sock_read(redis_sock *s);
int strata__sock_reply(redis_sock *s, redisReply **r);

/* The descriptor, to poll on; the last failure, as text. */
int strata__sock_fd(const redis_sock *s);
const char *strata__sock_error(const redis_sock *s);

#endif
