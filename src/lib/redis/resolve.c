/* redis/resolve.c: REDIS_URL's host name, resolved again on its own thread (resolve.h).
 *
 * Why a thread with getaddrinfo rather than evdns on each loop (docs/architecture.md, "DNS"): the
 * pool and the link have no loop, so evdns would have been a second resolver beside the system's
 * for them; evdns reads /etc/hosts and resolv.conf itself and knows nothing of nsswitch (nss
 * modules, systemd-resolved's, LDAP), so strata could see a name differently from every other
 * program on the host; and one lookup per reconnect is rare enough that a thread that may block
 * costs nothing the loops would notice. The loops never wait for it: a reconnect uses the
 * address known now and asks for a fresh one; if the answer differs, the client makes it the
 * target and the connections made for the old one are made again.
 */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <strata/errors.h>

#include "core/clock.h"
#include "redis/redis_url.h"
#include "redis/resolve.h"
#include "redis/waker.h"

struct redis_resolver {
    resolver_deps d;
    char host[REDIS_URL_PART_MAX];
    redis_waker w; /* the thread; asked: resolve again soon */
};

static void resolve_once(redis_resolver *r)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    char addr[REDIS_URL_PART_MAX], why[300];
    int rc = getaddrinfo(r->host, NULL, &hints, &res);
    if (rc == 0) {
        rc = getnameinfo(res->ai_addr, res->ai_addrlen, addr, sizeof addr, NULL, 0, NI_NUMERICHOST);
        freeaddrinfo(res);
        if (rc == 0) {
            r->d.resolved(r->d.arg, addr);
            return;
        }
    }
    snprintf(why, sizeof why, "cannot resolve redis host %.200s: %s", r->host, gai_strerror(rc));
    r->d.note_error(r->d.arg, why);
}

static void *run(void *arg)
{
    redis_resolver *r = arg;
    uint64_t last = strata__mono_ms();
    while (!strata__waker_stopping(&r->w)) {
        uint64_t now = strata__mono_ms(), until = last + RESOLVE_EVERY_MS;
        if (strata__waker_pending(&r->w) && until > last + RESOLVE_MIN_GAP_MS)
            until = last + RESOLVE_MIN_GAP_MS;
        if (now >= until) {
            strata__waker_asked(&r->w);
            last = now;
            resolve_once(r);
            continue;
        }
        strata__waker_sleep(&r->w, (int)(until - now), -1);
    }
    return NULL;
}

int strata__resolver_start(const resolver_deps *d, const char *host, redis_resolver **out)
{
    *out = NULL;
    redis_resolver *r = calloc(1, sizeof *r);
    if (r == NULL)
        return STRATA_ENOMEM;
    r->d = *d;
    snprintf(r->host, sizeof r->host, "%s", host);
    int rc = strata__waker_start(&r->w, run, r);
    if (rc != 0) {
        free(r);
        return rc;
    }
    *out = r;
    return 0;
}

void strata__resolver_stop(redis_resolver *r)
{
    if (r == NULL)
        return;
    strata__waker_stop(&r->w);
    free(r);
}

void strata__resolver_ask(redis_resolver *r)
{
    if (r != NULL)
        strata__waker_ask(&r->w);
}
