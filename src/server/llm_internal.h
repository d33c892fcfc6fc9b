/* llm_internal.h: what the LLM gateway's files share: a request's state beside the proxy's
 * (proxy_req.hook_arg), and the hooks every kind of LLM request uses alike.
 *
 * llm_gateway.c takes the request in and serves chats and completions; llm_embeddings.c serves
 * embeddings per input; llm_state.c owns the state both fill; llm_live.c the streams in flight
 * that identical streamed requests join (gateway -> embeddings -> state -> live).
 */
#ifndef STRATA_SERVER_LLM_INTERNAL_H
#define STRATA_SERVER_LLM_INTERNAL_H

#include "llm/llm_request.h"
#include "llm/llm_sse.h"
#include "proxy_internal.h"

#define LLM_NS "_llm" /* the namespace of every cached LLM answer and vector */

/* An embeddings request's inputs, looked up one by one (llm_embeddings.c). */
typedef struct llm_embed_job {
    size_t n;               /* inputs */
    strata_value **found;   /* per input: its stored vector, or NULL (a miss) */
    int *tier;              /* per input: 1 L1, 2 L2 */
    struct llm_lookup *ctx; /* per input: what its lookup's callback is handed */
    size_t pending;         /* lookups in flight */
    size_t *miss, nmiss;    /* the inputs that missed, in the client's order */
    char prefix[512];       /* every input's key before its own digest */
    size_t prefix_len;
    int failed; /* the upstream's answer could not be read: never answered partly */
} llm_embed_job;

typedef struct llm_state {
    llm_request r; /* from the worker's memo (r.body NULL) or parsed (llm/llm_memo.h) */
    int parsed;
    int parse_kind;   /* llm_request_parse's kind, flags included */
    char *body_out;   /* the body sent upstream when it is not the client's */
    llm_sse_rec *rec; /* a streamed miss's recorder */
    llm_embed_job *emb;
    llm_counts *n;         /* the counters of its route, model and tenant */
    struct llm_live *live; /* the stream it leads and others may join, or NULL */
    int live_started;      /* its response started it */
    struct joiner *joined; /* the stream it joined, or NULL */
} llm_state;

/* ---- llm_live.c --------------------------------------------------------------------------- */

typedef struct llm_live llm_live;
typedef struct joiner joiner;

/* What the gateway does for a joiner: count its answer once it starts from the stream; take it
 * back (look up again: lead a stream or join another) when the stream ended before it started. */
typedef struct llm_live_cb {
    void (*started)(proxy_req *px);
    void (*alone)(proxy_req *px);
} llm_live_cb;

/* The stream of (tenant, key) in flight on this instance, for a streamed request px:
 * - one runs and may_join: px joins it and 1 is returned: its client is answered from the
 *   stream once it starts (what came so far, then the rest live), cb->started called then; if the
 *   stream ends before it started, cb->alone(px) is called on px's loop instead;
 * - else px leads a new one (*lead; NULL when out of memory) and 0 is returned: px goes on as
 *   usual, starts the stream with its response's head (llm_live_start), appends its pieces and
 *   ends it. A stream open but not started is joined too: requests that come while the leader
 *   waits for the upstream's first byte get the stream live, not the whole answer after it. */
int llm_live_join(llm_lives *t, proxy_req *px, const char *tenant, const char *key, size_t len,
                  int may_join, size_t max, const llm_live_cb *cb, llm_live **lead);
/* The joiner's request is gone (its state's free). */
void llm_live_leave(joiner *j);
/* The leader's response: its head (the joiners' answers start with it) and status; then its
 * pieces appended (at most max bytes: past them the joiners are cut), then ended whole or cut
 * (the leader's reference goes with the end). Ended before it started (the leader was answered
 * from the cache, or failed), its joiners are handed back (cb->alone). */
void llm_live_start(llm_live *l, const char *head, size_t head_len, int status);
void llm_live_append(llm_live *l, const char *data, size_t len);
void llm_live_end(llm_live *l, int whole);

/* ---- llm_state.c -------------------------------------------------------------------------- */

/* proxy_hooks.free: the state goes with px. */
void llm_state_free(proxy_req *px);
/* Parses the client's body when the memo gave only its summary (st->r.body NULL): what sending a
 * part of it upstream needs (r.inputs, r.upstream). Returns 0, or -1 (out of memory). */
int llm_state_body(proxy_req *px);
/* proxy_hooks.error, and errors made here: {"error": {"message", "type", "code"}}. */
void llm_error(proxy_req *px, int status, const char *code, const char *msg);
/* Counts an answer of kind x (enum hc_xcache) that saved prompt and completion tokens. */
void llm_count(proxy_req *px, int x, long long prompt, long long completion);

/* ---- llm_embeddings.c --------------------------------------------------------------------- */

/* Serves a parsed embeddings request (px->hook_arg's): the inputs looked up, the misses asked
 * of the upstream in one request, the answer put together in the client's order. */
void llm_embeddings_run(proxy_req *px);

#endif
