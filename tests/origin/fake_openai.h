/* fake_openai.h: the test origin's OpenAI-compatible API: deterministic answers to chat,
 * completions (plain and streamed as server-sent events, with usage) and embeddings (a vector
 * per input, float or base64), and counters of what it received, so a test can tell what reached
 * the upstream.
 *
 * Answers (POST, any path ending so, any base path):
 *   .../chat/completions  {"id": "chatcmpl-<n>", ..., "choices": [{"message": {"role":
 *                         "assistant", "content": "Echo: <last message's content>"},
 * "finish_reason": "stop"}], "usage": {...}}; n counts the answers, so a test can tell a cached
 * answer (the same id) from a new one;
 *   .../completions       the same with "text": "Echo: <prompt>";
 *   .../embeddings        per input i, dimensions (default 8) floats made from the input's bytes;
 *   GET .../models        one model, "fake-model".
 * Controls, as request headers: X-Origin-Status (an error in OpenAI's shape), X-Origin-Delay-Ms,
 * X-Origin-Chunk-Delay-Ms (between events), X-Origin-Completion-Size: N (content padded to N
 * bytes), X-Origin-No-Finish: 1 (no finish reason), X-Origin-Stream-Cut: 1 (no [DONE]).
 * GET /__openai answers the counters as JSON: chat, completions, embeddings, embedding_inputs,
 * streams, last_authorization (the Authorization header of the last API request, or "") and
 * last_body (its body, cut at 8000 bytes), streams_open (streams being written now).
 */
#ifndef STRATA_TEST_FAKE_OPENAI_H
#define STRATA_TEST_FAKE_OPENAI_H

#include <stddef.h>

typedef struct fake_answer {
    int status;
    const char *content_type;
    char *body; /* malloc'd */
    size_t len;
    int stream; /* server-sent events: sent chunked, an event per piece */
} fake_answer;

/* Answers the request (its head, NUL-terminated, and body) when it is the API's: 1 and *a set,
 * else 0. header(head, name, out, cap) reads a request header. */
int fake_openai(const char *head, const char *body, size_t body_len,
                const char *(*header)(const char *head, const char *name, char *out, size_t cap),
                fake_answer *a);

/* The origin says when it starts (+1) and ends (-1) writing a stream's events. */
void fake_openai_streaming(int delta);

#endif
