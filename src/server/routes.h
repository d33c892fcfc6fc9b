/* routes.h: strata serve's routes, one row each: the only place a route is declared.
 *
 * A row is X(ID, name, methods, pattern, role, flags, handler):
 *   ID       R_<ID> in enum route_id (metrics and rate-limit rules count by it);
 *   name     its label in metrics, logs and STRATA_RATE_LIMITS (a bounded set, never a key);
 *   methods  the M_* it accepts (others: 405 with Allow listing these);
 *   pattern  literal segments and parameters: {ns} a namespace, {key} a key, each percent-decoded
 *            and checked strictly (route.c);
 *   role     what the caller needs (enum route_role);
 *   flags    RF_* below;
 *   handler  the function that answers it (handlers.h).
 * Rows are matched in order, the first match wins: a literal segment ("_mget") must come before a
 * parameter in the same place ({key}). Adding a route is adding a row here and its handler.
 */
#ifndef STRATA_SERVER_ROUTES_H
#define STRATA_SERVER_ROUTES_H

/* clang-format off */
#define STRATA_ROUTES(X)                                                                           \
    X(LIVEZ,      "livez",      M_GET | M_HEAD,  "/livez",          RR_NONE,    RF_NO_TENANT,     \
      admin_livez)                                                                                 \
    X(READYZ,     "readyz",     M_GET | M_HEAD,  "/readyz",         RR_NONE,    RF_NO_TENANT,     \
      admin_readyz)                                                                                \
    X(METRICS,    "metrics",    M_GET,           "/metrics",        RR_METRICS, 0, admin_metrics) \
    X(HEALTH,     "health",     M_GET,           "/cache/health",   RR_NONE,    0, admin_health)  \
    X(STATS,      "stats",      M_GET,           "/cache/stats",    RR_READ,    0, admin_stats)   \
    X(HISTORY,    "stats_history", M_GET,        "/cache/stats/history", RR_READ, RF_NO_TENANT,   \
      admin_history)                                                                               \
    X(WHOAMI,     "whoami",     M_GET,           "/cache/whoami",   RR_READ,    RF_NO_TENANT,     \
      admin_whoami)                                                                                \
    X(CLEAR,      "clear",      M_POST | M_DELETE, "/cache/clear",  RR_ADMIN,   RF_TENANT_QUERY,  \
      admin_clear)                                                                                 \
    X(PURGE,      "purge",      M_POST,          "/cache/purge",    RR_WRITE,   0, purge_handle)  \
    X(KEYS,       "keys",       M_GET,           "/cache/keys",     RR_ADMIN,   RF_TENANT_QUERY,  \
      admin_keys)                                                                                  \
    X(INSPECT,    "inspect",    M_GET,           "/cache/key/{ns}/{key}", RR_ADMIN, RF_TENANT_QUERY, \
      admin_inspect)                                                                               \
    X(MGET,       "mget",       M_POST,          "/v1/cache/{ns}/_mget", RR_READ, 0, mget_handle) \
    X(MSET,       "mset",       M_POST,          "/v1/cache/{ns}/_mset", RR_WRITE, 0, mset_handle)\
    X(KV,         "kv",         M_GET | M_HEAD | M_PUT | M_PATCH | M_DELETE,                       \
      "/v1/cache/{ns}/{key}", RR_READ_WRITE, 0, kv_handle)                                         \
    X(INVALIDATE, "invalidate", M_POST,          "/v1/invalidate",  RR_WRITE,   0,                \
      invalidate_handle)                                                                           \
    X(RATELIMIT,  "ratelimit",  M_POST,          "/v1/ratelimit/{key}", RR_WRITE, 0,              \
      ratelimit_handle)                                                                            \
    X(SESSIONS,   "sessions",   M_POST,          "/v1/sessions",    RR_WRITE,   0, session_handle)\
    X(SESSION,    "session",    M_GET | M_PUT | M_PATCH | M_DELETE, "/v1/sessions/{key}",         \
      RR_READ_WRITE, 0, session_handle)                                                            \
    X(DASHBOARD,  "dashboard",  M_GET | M_HEAD,  "/dashboard",      RR_NONE,    RF_NO_TENANT,     \
      dashboard_handle)                                                                            \
    X(DASHBOARD_JS, "dashboard_js", M_GET | M_HEAD, "/dashboard/app.js", RR_NONE, RF_NO_TENANT,   \
      dashboard_handle)                                                                            \
    X(DASHBOARD_CSS, "dashboard_css", M_GET | M_HEAD, "/dashboard/app.css", RR_NONE, RF_NO_TENANT, \
      dashboard_handle)                                                                            \
    X(DASHBOARD_CHART, "dashboard_chart", M_GET | M_HEAD, "/dashboard/chart.js", RR_NONE,        \
      RF_NO_TENANT, dashboard_handle)
/* clang-format on */

/* What a route needs of its caller. */
enum route_role {
    RR_NONE = 0,
    RR_READ,
    RR_WRITE,
    RR_ADMIN,
    RR_READ_WRITE, /* read for GET and HEAD, write for the others */
    RR_METRICS,    /* read with STRATA_METRICS_AUTH, else none */
};

enum route_flag {
    RF_NO_TENANT = 1 << 0,    /* acts in no tenant: a stray X-Tenant must not fail a probe */
    RF_TENANT_QUERY = 1 << 1, /* ?tenant= names the tenant when X-Tenant does not (admin API) */
    RF_BEARER_OWN = 1 << 2,   /* a proxied route whose Authorization is strata's token (an openai
                                 route whose provider key strata sends) */
};

#endif
