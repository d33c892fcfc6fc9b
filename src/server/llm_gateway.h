/* llm_gateway.h: strata serve as a caching gateway to an OpenAI-compatible API: the requests of
 * the configuration file's routes of kind openai (and of --llm-upstream's one route).
 *
 * A chat or completion request is parsed (llm/llm_request.h), keyed by its canonical request
 * (per tenant, upstream, namespace, and the client's provider key when strata sends none), and
 * then goes the caching proxy's way (proxy_internal.h) with hooks where it differs: the lease on
 * the key makes one upstream call however many identical requests come, only complete answers
 * are stored, a streamed miss streams to its client while it is recorded (llm/llm_sse.h), and a
 * stored answer is replayed as events to a client that asks for a stream. Everything else under
 * the route (models, files, ...) passes through uncached.
 */
#ifndef STRATA_SERVER_LLM_GATEWAY_H
#define STRATA_SERVER_LLM_GATEWAY_H

#include "request.h"

/* Answers a request proxy_match routed to R_LLM (handlers.h's convention). */
void llm_handle(req *q);

#endif
