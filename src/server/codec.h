/* codec.h: small encodings the HTTP API needs: base64, ETags, TTL and tag parameters. */
#ifndef STRATA_SERVER_CODEC_H
#define STRATA_SERVER_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <strata/strata.h>

/* A JSON object for a value: {"value": text} when it is UTF-8, else {"value_b64": base64}. */
int codec_put_value(json_t *obj, const void *data, size_t len);

/* Decodes canonical base64 (standard alphabet, padding required, unused bits zero; nothing else
 * accepted, whitespace included) into a new buffer (caller frees).
 * Returns 0 or -1 for malformed input. */
int codec_b64_decode(const char *s, size_t n, unsigned char **out, size_t *out_len);

/* The strong ETag of a value, quotes included ("\"<16 hex>\""). */
void codec_etag(const strata_value *v, char out[20]);

/* Whether an If-None-Match / If-Match header lists etag (or is "*"). */
int codec_etag_listed(const char *header, const char *etag);

/* The longest TTL the API takes, and how its messages state the range: a refusal says the
 * maximum, so a client sending more knows what it may send. */
#define CODEC_TTL_MAX_S 315360000ull /* 10 years */
#define CODEC_TTL_RANGE "a whole number of seconds from 1 to 315360000 (10 years)"

/* A TTL in whole seconds (1..CODEC_TTL_MAX_S) into ms. Returns 0 or -1. */
int codec_ttl(const char *s, uint64_t *ms);

/* Seconds, whole or with up to 3 decimals ("30", "0.25": a lease or a wait over HTTP), into ms,
 * if from lo_ms to hi_ms. Returns 0 or -1. */
int codec_seconds(const char *s, uint64_t lo_ms, uint64_t hi_ms, uint64_t *ms);

/* max-age from a Cache-Control header into ms; 0 if absent. -1 if malformed. */
int codec_max_age(const char *cache_control, uint64_t *ms);

/* Splits "a,b,c" into tags (pointers into buf, a writable copy of s); returns the count, or -1
 * when there are more than max or one is empty. */
int codec_split_tags(char *buf, const char **tags, int max);

#endif
