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
    struct llm_live *live; /* the stream it records and others may join (the leader), or NULL */
    int live_tried;        /* it tried to publish one */
    struct joiner *joined; /* the stream it joined, or NULL */
} llm_state;

/* ---- llm_live.c --------------------------------------------------------------------------- */

typedef struct llm_live llm_live;
typedef struct joiner joiner;

/* Joins the stream of (tenant, key) in flight, if there is one: 1 and px's client answered from
 * it from here on (its answer started, what came so far and the rest sent on px's loop), or 0. */
int llm_live_join(llm_lives *t, proxy_req *px, const char *tenant, const char *key, size_t len);
/* The joiner's request is gone (its state's free). */
void llm_live_leave(joiner *j);
/* A leader's stream: published with its response's head (NULL: another runs for the key, or out
 * of memory), its pieces appended (at most max bytes: past them the joiners are cut), ended
 * whole or cut. The leader's reference goes with the end. */
llm_live *llm_live_publish(llm_lives *t, const char *tenant, const char *key, size_t len,
                           const char *head, size_t head_len, int status, size_t max);
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
