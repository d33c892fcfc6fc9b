/* proxy.h: strata serve as a caching reverse proxy: requests that no route of strata's own
 * matched go to the configuration file's routes (proxy/proxy_config.h), and through the cache
 * to their origin.
 *
 * How a request flows (docs/architecture.md, "The caching proxy"): the head is matched against
 * the model's routes (proxy_match, from dispatch.c's on_head); the whole request then comes to
 * proxy_handle, which looks its key up in both tiers, answers what the stored response may
 * answer (RFC 9111, proxy/http_cache.h), and otherwise asks the origin (proxy_fetch.c) under the
 * key's lease, so one request per key reaches the origin however many clients and instances ask.
 *
 * The model is the server's (server.h: proxy, swapped by SIGHUP): a request holds a reference
 * from its head to its end, so a reload never frees what a request still reads.
 */
#ifndef STRATA_SERVER_PROXY_H
#define STRATA_SERVER_PROXY_H

#include "request.h"

/* Matches q's head against the proxy's routes: 1 and q routed to R_PROXY (the model referenced
 * in q->px), or 0 when no route matches (or there is no proxy). Allocates q->px and sets
 * q->on_end to proxy_abandon, so the state goes when q ends however it ends (a 401, a 429, a
 * body that never came). */
int proxy_match(req *q);
/* Answers a request proxy_match routed (handlers.h's convention). */
void proxy_handle(req *q);
/* Releases what q->px still holds for q (q->on_end). */
void proxy_abandon(req *q);

/* The server's running model: made at start from the loaded configuration (cfg.proxy, taken
 * over), swapped by SIGHUP (the old one is freed once its last request ended, each worker's pool
 * on that worker's loop), freed at stop after the loops ended. proxy_start returns 0 or -1 (out
 * of memory). The server's proxy_lock is initialised by its owner. */
int proxy_start(server *s);
int proxy_reload(server *s, struct proxy_config *pc); /* 0, or -1 (the old model stays) */
void proxy_stop(server *s);
/* The proxy's counters: /cache/stats' "proxy" member (JSON null without a proxy), and the
 * strata_proxy_* series of /metrics (nothing without a proxy). */
json_t *proxy_stats_json(server *s);
struct evbuffer;
void proxy_metrics_render(struct evbuffer *out, server *s);
/* The start's log line of the proxy's routes and origins (nothing without a proxy). */
void proxy_report(server *s);

#endif
