/* llm_embed.h: embeddings cached per input: each vector found in an upstream answer as the bytes
 * the upstream sent, stored with its share of the tokens, and answered again in the encoding a
 * client asks for.
 *
 * The idea: a vector is stored once, as the upstream wrote it (a JSON array of numbers, or a
 * base64 string of little-endian float32), so an answer in that encoding carries the same bytes
 * as the fresh one; the other encoding is made from it at float32 precision (9 significant
 * digits, which give the same float32 back). The raw text is found by a scanner over the
 * answer's JSON (jansson keeps no text of a number), which reads only what jansson accepted.
 *
 * Pure functions: no socket, no cache, no clock.
 *
 *     llm_span sp[16];
 *     long n = llm_embedding_spans(body, len, sp, 16); // data[i].embedding and .index
 *     char *rec = llm_vector_record(body + sp[0].off, sp[0].len, tokens, &rlen);
 *     llm_vector v;
 *     llm_vector_decode(rec, rlen, &v);                 // the raw text back, its tokens
 *     char *b64 = llm_vector_encode(&v, 1, &n);         // as base64 (a JSON string)
 */
#ifndef STRATA_SERVER_LLM_EMBED_H
#define STRATA_SERVER_LLM_EMBED_H

#include <stddef.h>
#include <stdint.h>

/* One data[] entry of an embeddings answer: its "index" and where its "embedding" value's text
 * is in the body. */
typedef struct llm_span {
    long long index;
    size_t off, len;
} llm_span;

/* The entries of body[0..len), an embeddings answer ({"data": [{"index": N, "embedding": V},
 * ...], ...}), in the order they come, into out (cap of them). Returns the count, or -1 when
 * body is not such an answer (not JSON the scanner reads, no data array, an entry without an
 * integer index or an embedding that is neither an array of numbers nor a string, more than
 * cap entries). */
long llm_embedding_spans(const char *body, size_t len, llm_span *out, size_t cap);

/* A stored vector: the upstream's text of it, its encoding, its tokens. */
typedef struct llm_vector {
    int base64;      /* the text is a JSON string of base64 (else a JSON array of numbers) */
    int64_t tokens;  /* its share of the prompt tokens */
    const char *raw; /* into the record */
    size_t raw_len;
} llm_vector;

/* The stored bytes of a vector whose upstream text is raw[0..len) (malloc'd, *out_len bytes), or
 * NULL when raw is neither form or out of memory. */
char *llm_vector_record(const char *raw, size_t len, int64_t tokens, size_t *out_len);
/* Reads a record. Returns 0, or -1 when it is not one. v points into rec. */
int llm_vector_decode(const char *rec, size_t len, llm_vector *v);
/* The vector as JSON text in the encoding asked (base64: a JSON string; else an array of
 * numbers): v's own text when it is in that encoding, else converted. Malloc'd (*out_len), or
 * NULL when v's text does not convert (not numbers, not base64 of whole float32s). */
char *llm_vector_encode(const llm_vector *v, int base64, size_t *out_len);

/* Splits total tokens over n inputs by weight (their lengths): floors, the rest to the last, so
 * they sum to total. weights and out have n entries. */
void llm_tokens_split(int64_t total, const size_t *weights, size_t n, int64_t *out);

#endif
