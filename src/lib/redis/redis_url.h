/* redis_url.h: REDIS_URL, parsed. */
#ifndef STRATA_REDIS_URL_H
#define STRATA_REDIS_URL_H

#define REDIS_URL_PART_MAX 256

typedef struct redis_url {
    char host[REDIS_URL_PART_MAX]; /* empty for a unix socket */
    int port;
    char path[REDIS_URL_PART_MAX]; /* unix socket path, or empty */
    char user[REDIS_URL_PART_MAX]; /* ACL user, or empty */
    char password[REDIS_URL_PART_MAX];
    int db;
    int tls; /* rediss:// */
} redis_url;

/* Parses redis[s]://[[user]:password@]host[:port][/db] (host may be [ipv6]) or
 * unix://[[user]:password@]/path[?db=N]; user and password are percent-decoded.
 * Returns 0 or STRATA_EBADURL; *why (may be NULL) says what is wrong. */
int strata__redis_url_parse(const char *url, redis_url *out, const char **why);

/* Checks REDIS_HOST: a host name or an address, IPv6 bare or in brackets ("::1", "[::1]"); not
 * "host:port" (REDIS_PORT says the port) nor a socket path (unix:// URLs say those). Returns 0
 * or STRATA_EBADURL; *why (may be NULL) says what is wrong. */
int strata__redis_host_check(const char *host, const char **why);

/* The connection the split settings (REDIS_HOST, REDIS_PORT, REDIS_DB, REDIS_USERNAME,
 * REDIS_PASSWORD, REDIS_TLS) describe, as REDIS_URL would: port 0 is 6379; user and password
 * may be NULL. Returns 0 or STRATA_EBADURL (the host, as strata__redis_host_check; a port above
 * 65535, a db above 65535, a user or password of REDIS_URL_PART_MAX bytes or more).
 *
 *   redis_url u;
 *   strata__redis_url_compose("cache.internal", 6380, 2, NULL, "s3cret", 1, &u, &why);
 *   // the same as rediss://:s3cret@cache.internal:6380/2
 */
int strata__redis_url_compose(const char *host, unsigned port, unsigned db, const char *user,
                              const char *password, int tls, redis_url *out, const char **why);

#endif
