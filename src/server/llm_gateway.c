/* llm_gateway.c: a request to a route of kind openai, from its head to its answer (the flow is
 * llm_gateway.h's): what is cached and under which key, and the hooks that make the caching
 * proxy's flow (proxy.c, proxy_fetch.c, proxy_store.c) serve LLM answers.
 *
 *   llm_handle -> the route's rate limit -> run:
 *     POST .../chat/completions | .../completions -> parse (a body seen lately: the worker's
 *        memo, llm/llm_memo.h, no parse) -> cacheable? (deterministic, or the
 *        route caches sampled answers; not no-store) -> key -> proxy_lookup (hit: answer(), as
 *        JSON or replayed events) | the lease -> fetch: plain (PX_BUFFER, complete() checks the
 *        finish reasons) or streamed (PX_TEE: recorded(), complete() makes the completion)
 *     anything else -> proxy_fetch, uncached (BYPASS), the answer streamed as it comes
 */
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <http_parser.h>

#include "handlers.h"
#include "llm/llm_memo.h"
#include "llm_gateway.h"
#include "llm_internal.h"
#include "log.h"

/* ---- hooks -------------------------------------------------------------------------------- */

static llm_state *state_of(proxy_req *px)
{
    return px->hook_arg;
}

static void hook_recorded(proxy_req *px, const char *data, size_t len)
{
    llm_state *st = state_of(px);
    if (st->rec != NULL)
        llm_sse_rec_feed(st->rec, data, len);
    if (st->live == NULL)
        return;
    if (!st->live_started) { /* its first piece: the joiners' answers start */
        st->live_started = 1;
        llm_live_start(st->live, px->head, px->head_len, px->ostatus);
    }
    llm_live_append(st->live, data, len);
}

/* Replaces px's body with json (taken over) and its head with a JSON answer's. */
static int take_completion(proxy_req *px, char *json, size_t len)
{
    static const char head[] = "Content-Type: application/json\r\n";
    char *h = malloc(sizeof head);
    if (h == NULL) {
        free(json);
        return -1;
    }
    memcpy(h, head, sizeof head);
    free(px->head);
    px->head = h;
    px->head_len = sizeof head - 1;
    free(px->buf);
    px->buf = json;
    px->len = px->cap = len;
    return 0;
}

static int hook_complete(proxy_req *px)
{
    llm_state *st = state_of(px);
    if (px->mode == PX_TEE) {
        if (st->live != NULL) { /* the upstream's stream ended: so do the joiners' */
            llm_live_end(st->live, 1);
            st->live = NULL;
        }
        size_t len = 0;
        char *json = st->rec ? llm_sse_rec_finish(st->rec, &len) : NULL;
        if (json == NULL) {
            log_msg(LOG_DEBUG, "llm: route %s: a streamed answer that did not end: not stored",
                    px->route->name);
            return -1;
        }
        return take_completion(px, json, len);
    }
    if (proxy_status_in(&px->route->error_statuses, px->ostatus))
        return 0; /* the route keeps the provider's errors for its error_ttl */
    if (!llm_answer_complete(st->r.kind, px->buf, px->len)) {
        log_msg(LOG_DEBUG, "llm: route %s: an answer without finish reasons: not stored",
                px->route->name);
        return -1;
    }
    return 0;
}

static int is_hit(int x)
{
    return x == HC_XC_HIT_L1 || x == HC_XC_HIT_L2 || x == HC_XC_HIT_COALESCED || x == HC_XC_STALE;
}

/* A stored (or just received) answer: as it is, or as events to a client that asked for a
 * stream. */
static void hook_answer(proxy_req *px, strata_value *v, const proxy_record *rec, int x,
                        int fwd_status, int stored)
{
    llm_state *st = state_of(px);
    if (st->live != NULL) { /* answered from a record, not a stream: its joiners look up too */
        llm_live_end(st->live, 0);
        st->live = NULL;
    }
    proxy_count_answer(px, x, rec->body_len);
    char saved[24];
    if (is_hit(x) && rec->status == 200) {
        long long prompt, completion;
        llm_answer_usage(rec->body, rec->body_len, &prompt, &completion);
        llm_count(px, x, prompt, completion);
        snprintf(saved, sizeof saved, "%lld", prompt + completion);
        add_header(px->q, "X-Cache-Tokens-Saved", saved);
    }
    proxy_cache_headers(px, x, &rec->facts, fwd_status, stored);
    if (st->parsed && st->r.stream && rec->status == 200) {
        size_t n = 0;
        char *sse = llm_sse_replay(st->r.kind, rec->body, rec->body_len, st->r.include_usage, &n);
        strata_value_release(v);
        req *q = proxy_take_client(px);
        if (sse == NULL) {
            reply_json(q, 502,
                       json_pack("{s:{s:s,s:s,s:s}}", "error", "message",
                                 "the stored answer cannot be replayed as a stream", "type",
                                 "api_error", "code", "replay_failed"));
            return;
        }
        add_header(q, "Cache-Control", "no-cache");
        reply_text(q, 200, "text/event-stream", sse, n);
        free(sse);
        return;
    }
    add_header_lines(px->q, rec->head, rec->head_len);
    req *q = proxy_take_client(px);
    if (v != NULL)
        reply_value_part(q, rec->status, v, rec->body, rec->body_len);
    else
        reply_bytes(q, rec->status, rec->body, rec->body_len);
}

static const proxy_hooks hooks = {.complete = hook_complete,
                                  .recorded = hook_recorded,
                                  .answer = hook_answer,
                                  .error = llm_error,
                                  .free = llm_state_free};

/* ---- the request -------------------------------------------------------------------------- */

/* Which API a request calls: enum llm_kind, or -1 (passed through, uncached). */
static int kind_of(proxy_req *px, const char *path)
{
    static const struct {
        const char *suffix;
        int kind;
    } apis[] = {{"/chat/completions", LLM_CHAT},
                {"/completions", LLM_COMPLETION},
                {"/embeddings", LLM_EMBEDDINGS}};
    if (strcmp(px->method, "POST") != 0)
        return -1;
    size_t pl = strlen(path);
    for (size_t i = 0; i < sizeof apis / sizeof apis[0]; i++) {
        size_t sl = strlen(apis[i].suffix);
        if (pl >= sl && strcmp(path + pl - sl, apis[i].suffix) == 0)
            return apis[i].kind;
    }
    return -1;
}

/* Cache-Control's no-cache, no-store and max-age=N, and X-Cache-Namespace, over the body's
 * "cache" member (the header is the client's last word). Returns 0, or -1 with a reason. */
static int header_controls(req *q, llm_cache_ctl *c, const char **why)
{
    const char *cc = get_header(q, "Cache-Control");
    const char *ns = get_header(q, "X-Cache-Namespace");
    if (cc != NULL) {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", cc);
        for (char *save, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            while (*t == ' ')
                t++;
            if (strncasecmp(t, "no-cache", 8) == 0)
                c->no_cache = 1;
            else if (strncasecmp(t, "no-store", 8) == 0)
                c->no_store = 1;
            else if (strncasecmp(t, "max-age=", 8) == 0) {
                char *end;
                long long v = strtoll(t + 8, &end, 10);
                if (end == t + 8 || v < 0 || v > 10ll * 365 * 86400)
                    return *why = "Cache-Control max-age must be seconds", -1;
                c->ttl_s = v;
            }
        }
    }
    if (ns != NULL) {
        if (strata_name_check(ns) != 0)
            return *why = "X-Cache-Namespace must be 1-64 characters of A-Z a-z 0-9 _ . -", -1;
        snprintf(c->ns, sizeof c->ns, "%s", ns);
    }
    return 0;
}

/* 16 hex digits of the SHA-256 of a and b joined by a newline, into out (17 bytes). */
static void digest16(const char *a, const char *b, char *out)
{
    char both[8192];
    unsigned char md[SHA256_DIGEST_LENGTH];
    int n = snprintf(both, sizeof both, "%s\n%s", a ? a : "", b ? b : "");
    SHA256((const unsigned char *)both, n < (int)sizeof both ? (size_t)n : sizeof both, md);
    for (int i = 0; i < 8; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* The entry's key: the upstream, the namespace, whose provider key (when the client's own goes
 * upstream), the path and query (an Azure deployment, its api-version), the API and the
 * canonical request's digest. Returns 0 or -1 (too long). */
static int make_key(proxy_req *px, llm_state *st)
{
    char who[20] = "-", where[20];
    digest16(http_conn_path(px->q->conn), http_conn_query(px->q->conn), where);
    const proxy_origin *o = px->route->origin;
    if (o->token_env == NULL || getenv(o->token_env) == NULL) {
        /* Clients with different provider keys never share entries. */
        const char *auth = get_header(px->q, "Authorization");
        const char *azure = get_header(px->q, "api-key");
        if (auth != NULL || azure != NULL)
            digest16(auth, azure, who);
    }
    static const char *const api[] = {"chat", "completion", "embedding"};
    int n = snprintf(px->key, sizeof px->key, "%s:%s:%s:%s:%s:%s", o->name,
                     st->r.ctl.ns[0] ? st->r.ctl.ns : "-", who, where, api[st->r.kind], st->r.key);
    if (n < 0 || (size_t)n >= sizeof px->key || (size_t)n > px->w->srv->cfg.cache.l1.max_key_len)
        return -1;
    px->key_len = (size_t)n;
    return 0;
}

/* Sends the request through, uncached (not an API strata caches, or not cacheable). */
static void bypass(proxy_req *px)
{
    llm_count(px, HC_XC_BYPASS, 0, 0);
    px->cacheable = 0;
    px->tee = 0;
    proxy_fetch(px, 0);
}

/* The request counts in its route's, model's and tenant's row. */
static void count_request(proxy_req *px, const char *model)
{
    llm_state *st = state_of(px);
    st->n = llm_counters_row(px->model->llm, px->route->name, model, px->tenant);
    atomic_fetch_add_explicit(&st->n->requests, 1, memory_order_relaxed);
}

static void run(req *q);

/* ---- streamed requests ---------------------------------------------------------------------- */

static void stream(proxy_req *px);

static void joiner_started(proxy_req *px)
{
    llm_count(px, HC_XC_HIT_COALESCED, 0, 0); /* the stream in flight answers it */
}

static const llm_live_cb live_cb = {.started = joiner_started, .alone = stream};

/* A streamed, cacheable request: it joins the identical stream in flight on this instance, or
 * leads one (opened now, so that requests coming before the upstream's first byte join it too)
 * and looks up (or, with no-cache, asks upstream) as usual. */
static void stream(proxy_req *px)
{
    llm_state *st = state_of(px);
    int no_cache = st->r.ctl.no_cache;
    if (llm_live_join(px->model->lives, px, px->tenant, px->key, px->key_len, !no_cache,
                      px->route->max_object, &live_cb, &st->live))
        return;
    if (no_cache)
        proxy_fetch(px, 0); /* asked upstream, and the entry refreshed */
    else
        proxy_lookup(px);
}

void llm_handle(req *q)
{
    proxy_req *px = q->px;
    px->q = q;
    px->w = q->w;
    px->hooks = &hooks;
    limits_apply_rules(q, proxy_limits_of(px->model, px->route), run);
}

/* Past the route's rate limit. */
static void run(req *q)
{
    proxy_req *px = q->px;
    llm_state *st = calloc(1, sizeof *st);
    if (st == NULL) {
        proxy_answer_error(px, 503, "out_of_memory", "strata is out of memory");
        proxy_req_free(px);
        return;
    }
    px->hook_arg = st;
    proxy_read_request(px);
    atomic_fetch_add_explicit(&proxy_stats_of(px->model, px->route)->requests, 1,
                              memory_order_relaxed);
    int kind = kind_of(px, http_conn_path(q->conn));
    int on = kind == LLM_EMBEDDINGS ? px->route->embedding_cache : px->route->llm_cache;
    if (kind < 0 || !on) {
        count_request(px, "-");
        bypass(px);
        return;
    }
    size_t len = 0;
    const char *body = get_body(q, &len);
    char err[256];
    const char *why = NULL;
    /* Azure OpenAI names the model's deployment in the path; its body may leave "model" out. */
    int in_path = strstr(http_conn_path(q->conn), "/deployments/") ? LLM_MODEL_IN_PATH : 0;
    if (px->w->llm_memo == NULL)
        px->w->llm_memo = llm_memo_new(); /* NULL (out of memory): every body parsed */
    st->parse_kind = kind | in_path;
    if (llm_memo_parse(px->w->llm_memo, st->parse_kind, body ? body : "", len, &st->r, err,
                       sizeof err) != 0) {
        proxy_answer_error(px, 400, "invalid_request", "%s", err);
        proxy_req_free(px);
        return;
    }
    st->parsed = 1;
    count_request(px, st->r.model[0] ? st->r.model : "-");
    if (header_controls(q, &st->r.ctl, &why) != 0) {
        proxy_answer_error(px, 400, "invalid_request", "%s", why);
        proxy_req_free(px);
        return;
    }
    if (st->r.ctl.given) { /* strata's own member never goes upstream */
        st->body_out = json_dumps(st->r.upstream, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (st->body_out == NULL) {
            proxy_answer_error(px, 503, "out_of_memory", "strata is out of memory");
            proxy_req_free(px);
            return;
        }
        px->body_out = st->body_out;
        px->body_out_len = strlen(st->body_out);
    }
    const llm_cache_ctl *c = &st->r.ctl;
    if (kind == LLM_EMBEDDINGS) {
        if (c->no_store || make_key(px, st) != 0)
            bypass(px);
        else
            llm_embeddings_run(px);
        return;
    }
    if (c->no_store || !(st->r.deterministic || px->route->cache_sampled) ||
        make_key(px, st) != 0) {
        bypass(px); /* never coalesced: each sampled request gets its own answer */
        return;
    }
    px->ns = LLM_NS;
    px->cacheable = 1;
    px->store_ok = 1;
    px->ttl_s = c->ttl_s > 0 ? c->ttl_s : 0;
    px->tee = st->r.stream;
    if (px->tee && (st->rec = llm_sse_rec_new(kind, px->route->max_object)) == NULL)
        px->tee = 0;
    /* The request's Cache-Control was the client's word to strata (above), not RFC 9111's. */
    memset(&px->rq.cc, 0, sizeof px->rq.cc);
    px->rq.flags = 0;
    px->rq.method = HC_M_GET;
    if (px->tee)
        stream(px);
    else if (c->no_cache)
        proxy_fetch(px, 0); /* asked upstream, and the entry refreshed */
    else
        proxy_lookup(px);
}
