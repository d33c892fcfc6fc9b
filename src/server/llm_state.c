/* llm_state.c: an LLM request's state beside the proxy's (llm_internal.h): its body parsed late
 * when the memo answered for it, and the errors the gateway makes itself, in OpenAI's shape,
 * which the SDKs turn into their own exceptions.
 */
#include <stdlib.h>

#include "llm_internal.h"

void llm_state_free(proxy_req *px)
{
    llm_state *st = px->hook_arg;
    if (st == NULL)
        return;
    if (st->parsed)
        llm_request_free(&st->r);
    free(st->body_out);
    llm_sse_rec_free(st->rec);
    if (st->live != NULL) /* the leader went before its stream ended: the joiners are cut */
        llm_live_end(st->live, 0);
    if (st->joined != NULL)
        llm_live_leave(st->joined);
    llm_embed_job *e = st->emb;
    if (e != NULL) {
        for (size_t i = 0; e->found != NULL && i < e->n; i++)
            strata_value_release(e->found[i]);
        free(e->found);
        free(e->tier);
        free(e->ctx);
        free(e->miss);
        free(e);
    }
    free(st);
    px->hook_arg = NULL;
}

int llm_state_body(proxy_req *px)
{
    llm_state *st = px->hook_arg;
    if (st->r.body != NULL)
        return 0;
    size_t len = 0;
    const char *body = get_body(px->q, &len);
    llm_request full;
    char err[256];
    if (llm_request_parse(st->parse_kind, body ? body : "", len, &full, err, sizeof err) != 0)
        return -1; /* the memo had it from these very bytes: only memory fails here */
    st->r.body = full.body;
    st->r.upstream = full.upstream;
    st->r.inputs = full.inputs;
    full.body = NULL;
    full.inputs = NULL;
    llm_request_free(&full);
    return 0;
}

void llm_count(proxy_req *px, int x, long long prompt, long long completion)
{
    llm_state *st = px->hook_arg;
    llm_counts *n = st ? st->n : NULL;
    if (n == NULL)
        return;
    if (x == HC_XC_BYPASS) {
        atomic_fetch_add_explicit(&n->bypass, 1, memory_order_relaxed);
        return;
    }
    if (x == HC_XC_HIT_COALESCED)
        atomic_fetch_add_explicit(&n->coalesced, 1, memory_order_relaxed);
    else if (x == HC_XC_HIT_L1 || x == HC_XC_HIT_L2 || x == HC_XC_STALE)
        atomic_fetch_add_explicit(&n->hits, 1, memory_order_relaxed);
    if (prompt <= 0 && completion <= 0)
        return;
    atomic_fetch_add_explicit(&n->prompt_saved, (uint64_t)prompt, memory_order_relaxed);
    atomic_fetch_add_explicit(&n->completion_saved, (uint64_t)completion, memory_order_relaxed);
    const proxy_price *p = proxy_config_price(px->model->pc, st->r.model);
    if (p != NULL) /* USD per million tokens: per token, 1000 nano-USD times the price */
        atomic_fetch_add_explicit(&n->nano_usd_saved,
                                  (uint64_t)((double)prompt * p->input * 1000.0 +
                                             (double)completion * p->output * 1000.0),
                                  memory_order_relaxed);
}

void llm_error(proxy_req *px, int status, const char *code, const char *msg)
{
    if (px->q == NULL)
        return;
    const char *type = status == 429  ? "rate_limit_error"
                       : status < 500 ? "invalid_request_error"
                                      : "api_error";
    reply_json(proxy_take_client(px), status,
               json_pack("{s:{s:s,s:s,s:s}}", "error", "message", msg, "type", type, "code", code));
}
