/* llm_sse.h: an OpenAI-compatible answer in its two shapes, and the way between them: a
 * streamed answer (server-sent events of chunks) recorded into the one JSON completion a plain
 * request gets, and a stored completion replayed as the events a provider sends.
 *
 * The idea: a streamed and a plain request for the same thing share one cache entry, so strata
 * stores one shape, the plain JSON completion, and turns it into events for a streamed hit.
 * A streamed miss goes to its client as it arrives and is recorded beside it; what the recorder
 * cannot read whole (not events, an event that is not JSON, an error event, more than its bound,
 * no finish reason, no "[DONE]") is never stored: the client still got every byte.
 *
 * Pure functions over jansson: no socket, no cache, no clock.
 *
 *     llm_sse_rec *r = llm_sse_rec_new(LLM_CHAT, 1 << 20);
 *     while (piece) { send_to_client(piece); llm_sse_rec_feed(r, piece, n); }
 *     size_t len;
 *     char *json = llm_sse_rec_finish(r, &len); // NULL: not complete, not stored
 *     llm_sse_rec_free(r);
 *     char *sse = llm_sse_replay(LLM_CHAT, json, len, 1, &n); // the events again
 */
#ifndef STRATA_SERVER_LLM_SSE_H
#define STRATA_SERVER_LLM_SSE_H

#include <stddef.h>

typedef struct llm_sse_rec llm_sse_rec;

/* A recorder of a stream of kind (enum llm_kind: chat or completion) that keeps at most max
 * bytes of events. NULL when out of memory. */
llm_sse_rec *llm_sse_rec_new(int kind, size_t max);
/* Feeds the next bytes of the stream (any split). Returns 0, or -1 once the stream cannot be
 * recorded (then every later call does nothing and finish gives NULL). */
int llm_sse_rec_feed(llm_sse_rec *r, const char *data, size_t len);
/* The stream ended: the completion it makes (malloc'd, *len bytes, the caller frees), or NULL
 * when it was not complete: no "[DONE]", a choice without a finish reason, an error. */
char *llm_sse_rec_finish(llm_sse_rec *r, size_t *len);
void llm_sse_rec_free(llm_sse_rec *r);

/* 1 if body[0..len) is a complete plain answer of kind: a JSON object whose choices (at least
 * one) each have a finish reason. */
int llm_answer_complete(int kind, const char *body, size_t len);

/* The completion body[0..len) as the events a provider streams: per choice a role chunk,
 * content chunks, tool calls, a finish chunk; then, when include_usage and the completion has
 * usage, a usage chunk; then "data: [DONE]". Malloc'd (*out_len bytes), or NULL when body is not
 * a completion of kind or out of memory. */
char *llm_sse_replay(int kind, const char *body, size_t len, int include_usage, size_t *out_len);

/* The prompt_tokens and completion_tokens of body's usage (a completion or an embeddings
 * answer), 0 for what is absent. */
void llm_answer_usage(const char *body, size_t len, long long *prompt, long long *completion);

#endif
