/* llm_request.h: an OpenAI-compatible request as the LLM cache reads it: parsed once, its cache
 * controls taken out, and its cache keys: the SHA-256 of the canonical request for a chat or
 * completion answer, one per input for embeddings.
 *
 * The idea: two requests that must get the same answer get the same key, and two that may not,
 * never. The canonical request is the request's fields that change the output (model, messages,
 * tools, temperature, seed, ...), as compact JSON with the object keys sorted at every level and
 * numbers in one spelling (0, 0.0 and 0e0 are one number); the fields that do not change it
 * (stream, stream_options, user, metadata, store, and strata's own cache field) are left out,
 * so a streamed and a plain request share an entry. An embedding's key is the SHA-256 of one
 * input's model, dimensions and text (decoded) or token ids, length-prefixed, whatever the batch
 * it came in and the encoding_format it asked for (strata stores the vector as the upstream sent
 * it).
 *
 * Pure functions over jansson: no socket, no cache, no clock. Hostile bodies (not JSON,
 * duplicate keys, wrong types, too deep) are refused with a reason, never half-read.
 *
 *     llm_request r;
 *     char err[256];
 *     if (llm_request_parse(LLM_CHAT, body, len, &r, err, sizeof err) != 0)
 *         answer_400(err);
 *     if (r.deterministic && !r.ctl.no_store) lookup(r.key);
 *     send_upstream(r.upstream); // the body without strata's "cache" field
 *     llm_request_free(&r);
 */
#ifndef STRATA_SERVER_LLM_REQUEST_H
#define STRATA_SERVER_LLM_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define LLM_KEY_HEX    64   /* a key: the SHA-256 in hex */
#define LLM_MODEL_MAX  256  /* the longest model name kept */
#define LLM_INPUTS_MAX 2048 /* embedding inputs in one request (OpenAI's own bound) */

enum llm_kind {
    LLM_CHAT = 0,       /* POST /v1/chat/completions */
    LLM_COMPLETION = 1, /* POST /v1/completions */
    LLM_EMBEDDINGS = 2, /* POST /v1/embeddings */
};

/* Or'ed into llm_request_parse's kind: the body may leave "model" out (Azure OpenAI names its
 * deployment in the path, which the caller keys by). */
#define LLM_MODEL_IN_PATH 0x100

/* What the client asked of the cache, from the body's "cache" member (LiteLLM's form:
 * {"no-cache": true, "no-store": true, "ttl": 600, "namespace": "x"}); the HTTP layer adds what
 * Cache-Control and X-Cache-Namespace say. */
typedef struct llm_cache_ctl {
    int no_cache;  /* ask upstream, refresh the entry */
    int no_store;  /* neither read nor write */
    int64_t ttl_s; /* this entry's TTL; -1: the route's */
    char ns[65];   /* a separate cache; "": the route's */
    int given;     /* the body had a "cache" member */
} llm_cache_ctl;

/* One embedding input: a text (utf-8, text/len) or token ids (tokens, a JSON array). */
typedef struct llm_input {
    const char *text; /* NULL for token ids */
    size_t len;
    json_t *tokens; /* borrowed from the request */
} llm_input;

typedef struct llm_request {
    int kind;                  /* enum llm_kind */
    json_t *body;              /* the parsed body (owned) */
    json_t *upstream;          /* what goes upstream: body without "cache" (the same object) */
    char model[LLM_MODEL_MAX]; /* "" when absent */
    int stream;                /* "stream": true */
    int include_usage;         /* "stream_options": {"include_usage": true} */
    int deterministic;         /* chat/completion: temperature 0, or a seed given */
    llm_cache_ctl ctl;
    char key[LLM_KEY_HEX + 1]; /* chat/completion: the canonical request's SHA-256 */
    /* embeddings */
    llm_input *inputs; /* owned array of ninputs (into body) */
    size_t ninputs;
    int input_was_list; /* "input" was an array (the answer is a list either way) */
    int64_t dimensions; /* -1: not given */
    int base64;         /* encoding_format "base64" (else float) */
    /* every input's key, made once (owned; NULL until llm_input_keys) */
    char (*input_keys)[LLM_KEY_HEX + 1];
} llm_request;

/* Parses body[0..len) as a request of kind (and LLM_MODEL_IN_PATH). Returns 0 and fills *out (free
 * it with llm_request_free), or -1 with the reason in err (cap bytes): not a JSON object, a
 * duplicate key, a member of the wrong type (model not a string, messages not an array, stream not
 * a boolean, an embedding input that is not a string, token ids or a list of either, more than
 * LLM_INPUTS_MAX inputs, a "cache" member that is not the form above), an empty model. */
int llm_request_parse(int kind, const char *body, size_t len, llm_request *out, char *err,
                      size_t cap);
void llm_request_free(llm_request *r);

/* The key of embedding input i (out: LLM_KEY_HEX + 1 bytes): the one llm_input_keys made, or
 * made now. Returns 0, or -1 (i out of range, out of memory). */
int llm_input_key(const llm_request *r, size_t i, char *out);
/* Makes every input's key once, into r->input_keys. Returns 0, or -1 (out of memory). */
int llm_input_keys(llm_request *r);

/* The canonical JSON of v (the caller frees it): keys sorted, compact, integral reals written as
 * integers. NULL when out of memory. For tests and the fuzz target. */
char *llm_canonical(const json_t *v);

#endif
