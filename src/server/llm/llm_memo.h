/* llm_memo.h: the request bodies a worker parsed lately, remembered by their bytes, so that a body
 * seen again (a cache's common case: the same prompt, the same batch of inputs) is given what its
 * parse gave (model, flags, cache controls, cache keys) without being parsed or hashed again.
 *
 * The idea is nginx's proxy_cache_key $request_body on the way in, and the canonical request's key
 * on the way to the cache: a hit costs a hash and a compare of the raw bytes, and two bodies that
 * mean the same still share one entry in the cache. An entry is found only by the same bytes
 * (XXH3 picks the slot, the bytes are then compared whole) and the same kind, and it holds only
 * what llm_request_parse makes of those bytes (no route setting, no header, no clock), so it is
 * never stale and needs no invalidation.
 *
 * What is not kept: bodies with strata's own "cache" member (the body sent upstream is then not
 * the client's: they are parsed every time), bodies over LLM_MEMO_BODY_MAX, failed parses.
 *
 * One per worker thread, no lock. Bounded: at most LLM_MEMO_BYTES of bodies and keys; a new entry
 * takes its slot's place, and older ones go (in slot order) while the bound is passed.
 *
 *     llm_memo *m = llm_memo_new();                      // the worker's
 *     llm_request r;
 *     if (llm_memo_parse(m, LLM_CHAT, body, len, &r, err, sizeof err) != 0) answer_400(err);
 *     lookup(r.key);                                     // r.body is NULL when it was remembered
 *     llm_request_free(&r);
 *     llm_memo_free(m);
 */
#ifndef STRATA_SERVER_LLM_MEMO_H
#define STRATA_SERVER_LLM_MEMO_H

#include <stddef.h>
#include <stdint.h>

#include "llm_request.h"

#define LLM_MEMO_SLOTS    1024
#define LLM_MEMO_BYTES    (4u << 20)   /* bodies and keys held, per worker */
#define LLM_MEMO_BODY_MAX (256u << 10) /* the largest body remembered */

typedef struct llm_memo llm_memo;

/* An empty memo, or NULL when out of memory. */
llm_memo *llm_memo_new(void);
/* Frees m and what it holds (NULL is a no-op). */
void llm_memo_free(llm_memo *m);

/* llm_request_parse(kind, body, len, out, err, cap) through the memo: the same result and the same
 * fields, with every embedding input's key made (out->input_keys). When the body was remembered,
 * out->body, out->upstream and out->inputs are NULL (nothing was parsed): a caller that needs them
 * (to send a part of the batch upstream) parses the body itself. Free out with llm_request_free. */
int llm_memo_parse(llm_memo *m, int kind, const char *body, size_t len, llm_request *out, char *err,
                   size_t cap);

/* What m holds and did: bodies found, parsed, and the bytes held now (for tests and stats). */
typedef struct llm_memo_stats {
    uint64_t hits, misses;
    size_t entries, bytes;
} llm_memo_stats;
void llm_memo_stats_get(const llm_memo *m, llm_memo_stats *out);

#endif
