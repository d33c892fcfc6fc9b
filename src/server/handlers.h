/* handlers.h: the functions that answer strata serve's routes (the table is routes.h). Each
 * gets a request that was routed, authenticated and rate-limited, and answers it with reply_*,
 * now or from a later callback. */
#ifndef STRATA_SERVER_HANDLERS_H
#define STRATA_SERVER_HANDLERS_H

#include "request.h"

/* kv.c */
void kv_handle(req *q);
void mget_handle(req *q);
void mset_handle(req *q);
void invalidate_handle(req *q);
/* limits.c */
void ratelimit_handle(req *q);
/* Checks the server's own rate-limit rules for q, then calls then(q) (or answers 429). */
void limits_apply(req *q, void (*then)(req *q));
/* The same with a set of rules of its own (a proxy route's rate_limit), whatever their route. */
void limits_apply_rules(req *q, limit_rules *rules, void (*then)(req *q));
/* sessions.c */
void session_handle(req *q);
/* purge.c: POST /cache/purge, and the PURGE method on a URL (R_PURGE_URL) */
void purge_handle(req *q);
void purge_url_handle(req *q);
/* admin.c */
void admin_livez(req *q);
void admin_readyz(req *q);
void admin_health(req *q);
void admin_stats(req *q);
void admin_history(req *q);
void admin_clear(req *q);
void admin_keys(req *q);
void admin_inspect(req *q);
void admin_metrics(req *q);
void admin_whoami(req *q);
/* dashboard.c: GET /dashboard and its files */
void dashboard_handle(req *q);

#endif
