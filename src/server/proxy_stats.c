/* proxy_stats.c: the caching proxy's counters as /cache/stats shows them (JSON, per route and
 * per origin) and as /metrics exposes them (Prometheus text). The counters live in the running
 * model (proxy_model.c): they start from zero when SIGHUP loads a new file.
 */
#include <event2/buffer.h>
#include <stdio.h>

#include "proxy_internal.h"

#define LOAD(x) ((json_int_t)atomic_load_explicit(&(x), memory_order_relaxed))

static json_t *route_json(const proxy_route_stats *r)
{
    return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "requests", LOAD(r->requests),
                     "hits", LOAD(r->hits), "coalesced", LOAD(r->coalesced), "misses",
                     LOAD(r->misses), "stale", LOAD(r->stale), "revalidated", LOAD(r->revalidated),
                     "bypass", LOAD(r->bypass), "stored", LOAD(r->stored), "origin_requests",
                     LOAD(r->origin_requests), "origin_errors", LOAD(r->origin_errors),
                     "bytes_saved", LOAD(r->bytes_saved));
}

static void llm_row_json(const char *rname, const char *model, const char *tenant,
                         const llm_counts *n, void *arg)
{
    json_array_append_new(
        arg,
        json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:f}", "route", rname, "model",
                  model, "tenant", tenant, "requests", LOAD(n->requests), "hits", LOAD(n->hits),
                  "coalesced", LOAD(n->coalesced), "bypass", LOAD(n->bypass), "prompt_tokens_saved",
                  LOAD(n->prompt_saved), "completion_tokens_saved", LOAD(n->completion_saved),
                  "embedding_inputs", LOAD(n->inputs), "embedding_inputs_cached",
                  LOAD(n->inputs_cached), "usd_saved", (double)LOAD(n->nano_usd_saved) / 1e9));
}

json_t *proxy_stats_json(server *s)
{
    proxy_model *m = proxy_model_ref(s);
    if (m == NULL)
        return json_null();
    json_t *routes = json_object(), *origins = json_object();
    for (size_t i = 0; i < m->pc->nroutes; i++)
        json_object_set_new(routes, m->pc->routes[i].name, route_json(&m->route[i]));
    uint64_t now = proxy_now_ms();
    for (size_t i = 0; i < m->pc->norigins; i++) {
        proxy_breaker *b = &m->breaker[i];
        uint64_t until = atomic_load(&b->open_until_ms);
        json_object_set_new(origins, m->pc->origins[i].name,
                            json_pack("{s:s,s:I,s:I,s:s,s:I}", "url", m->pc->origins[i].url,
                                      "requests", LOAD(b->requests), "errors", LOAD(b->errors),
                                      "breaker", until > now ? "open" : "closed", "breaker_opens",
                                      LOAD(b->opened)));
    }
    json_t *llm = json_array();
    llm_counters_each(m->llm, llm_row_json, llm);
    json_t *out = json_pack("{s:s,s:o,s:o,s:I,s:o}", "config", m->pc->source, "routes", routes,
                            "origins", origins, "purges", LOAD(s->purges), "llm", llm);
    proxy_model_unref(m);
    return out;
}

static void llm_row_metrics(const char *rname, const char *model, const char *tenant,
                            const llm_counts *n, void *arg)
{
    struct evbuffer *out = arg;
    const char *results[] = {"hit", "coalesced", "bypass", "miss"};
    json_int_t hit = LOAD(n->hits), co = LOAD(n->coalesced), by = LOAD(n->bypass);
    json_int_t all = LOAD(n->requests), miss = all - hit - co - by;
    const json_int_t v[] = {hit, co, by, miss < 0 ? 0 : miss};
    /* Model names come from clients: only characters a label may hold without escaping. */
    char m[65];
    size_t i = 0;
    for (; model[i] && i + 1 < sizeof m; i++)
        m[i] = model[i] == '"' || model[i] == '\\' || model[i] == '\n' ? '_' : model[i];
    m[i] = '\0';
    for (size_t k = 0; k < 4; k++)
        evbuffer_add_printf(out,
                            "strata_llm_requests_total{route=\"%s\",model=\"%s\",tenant=\"%s\","
                            "result=\"%s\"} %lld\n",
                            rname, m, tenant, results[k], (long long)v[k]);
    evbuffer_add_printf(
        out,
        "strata_llm_tokens_saved_total{route=\"%s\",model=\"%s\",tenant=\"%s\","
        "kind=\"prompt\"} %lld\n"
        "strata_llm_tokens_saved_total{route=\"%s\",model=\"%s\",tenant=\"%s\","
        "kind=\"completion\"} %lld\n"
        "strata_llm_usd_saved_total{route=\"%s\",model=\"%s\",tenant=\"%s\"} %.9f\n",
        rname, m, tenant, (long long)LOAD(n->prompt_saved), rname, m, tenant,
        (long long)LOAD(n->completion_saved), rname, m, tenant,
        (double)LOAD(n->nano_usd_saved) / 1e9);
}

void proxy_metrics_render(struct evbuffer *out, server *s)
{
    proxy_model *m = proxy_model_ref(s);
    if (m == NULL)
        return;
    static const char *const results[] = {"hit",   "coalesced",   "miss",
                                          "stale", "revalidated", "bypass"};
    evbuffer_add_printf(out, "# HELP strata_proxy_requests_total Proxied requests by route and "
                             "how they were answered.\n"
                             "# TYPE strata_proxy_requests_total counter\n");
    for (size_t i = 0; i < m->pc->nroutes; i++) {
        const proxy_route_stats *r = &m->route[i];
        const json_int_t v[] = {LOAD(r->hits),  LOAD(r->coalesced),   LOAD(r->misses),
                                LOAD(r->stale), LOAD(r->revalidated), LOAD(r->bypass)};
        for (size_t k = 0; k < sizeof v / sizeof *v; k++)
            evbuffer_add_printf(out,
                                "strata_proxy_requests_total{route=\"%s\",result=\"%s\"} %lld\n",
                                m->pc->routes[i].name, results[k], (long long)v[k]);
    }
    evbuffer_add_printf(out, "# HELP strata_proxy_bytes_saved_total Body bytes answered from the "
                             "cache instead of the origin.\n"
                             "# TYPE strata_proxy_bytes_saved_total counter\n");
    for (size_t i = 0; i < m->pc->nroutes; i++)
        evbuffer_add_printf(out, "strata_proxy_bytes_saved_total{route=\"%s\"} %lld\n",
                            m->pc->routes[i].name, (long long)LOAD(m->route[i].bytes_saved));
    evbuffer_add_printf(out, "# HELP strata_proxy_origin_requests_total Requests sent to each "
                             "origin, and those that failed.\n"
                             "# TYPE strata_proxy_origin_requests_total counter\n"
                             "# TYPE strata_proxy_origin_errors_total counter\n"
                             "# TYPE strata_proxy_origin_breaker_open gauge\n");
    uint64_t now = proxy_now_ms();
    for (size_t i = 0; i < m->pc->norigins; i++) {
        const char *name = m->pc->origins[i].name;
        proxy_breaker *b = &m->breaker[i];
        evbuffer_add_printf(out, "strata_proxy_origin_requests_total{origin=\"%s\"} %lld\n", name,
                            (long long)LOAD(b->requests));
        evbuffer_add_printf(out, "strata_proxy_origin_errors_total{origin=\"%s\"} %lld\n", name,
                            (long long)LOAD(b->errors));
        evbuffer_add_printf(out, "strata_proxy_origin_breaker_open{origin=\"%s\"} %d\n", name,
                            atomic_load(&b->open_until_ms) > now);
    }
    evbuffer_add_printf(out,
                        "# TYPE strata_proxy_purges_total counter\n"
                        "strata_proxy_purges_total %lld\n",
                        (long long)LOAD(s->purges));
    evbuffer_add_printf(out, "# HELP strata_llm_requests_total LLM gateway requests by route, "
                             "model, tenant and how they were answered.\n"
                             "# TYPE strata_llm_requests_total counter\n"
                             "# HELP strata_llm_tokens_saved_total Tokens the cache's answers "
                             "would have cost.\n"
                             "# TYPE strata_llm_tokens_saved_total counter\n"
                             "# HELP strata_llm_usd_saved_total Money saved, from the "
                             "configuration's prices.\n"
                             "# TYPE strata_llm_usd_saved_total counter\n");
    llm_counters_each(m->llm, llm_row_metrics, out);
    proxy_model_unref(m);
}
