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

#endif
