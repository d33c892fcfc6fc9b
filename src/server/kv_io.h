/* kv_io.h: what the key/value routes read from a request and how they answer it: the key, a
 * write's options, a value, a miss, a write's outcome.
 *
 * Shared by the plain routes (kv.c) and the lease protocol (kv_lease.c), so a value answered to a
 * waiter, a fill and a plain PUT are described by one code path each.
 */
#ifndef STRATA_SERVER_KV_IO_H
#define STRATA_SERVER_KV_IO_H

#include "request.h"

/* The key a KV request names: its namespace, its tenant, its decoded key. */
strata_key kv_key_of(req *q);

/* 200 with the value (or 304 when the client has it), X-Cache: label (HIT-L1, HIT-L2,
 * HIT-COALESCED, STALE); tier ("l1", "l2") for metrics. A value stored as an error result
 * (STRATA_VALUE_ERROR) says so with X-Cache-Error: 1 (a negative hit); a copy kept after a failed
 * refresh (STRATA_VALUE_STALE) is answered X-Cache: STALE whatever the label. A stale answer has
 * Cache-Control: max-age=0; a fresh one max-age=<seconds left>, and the value's
 * stale-while-revalidate / stale-if-error windows when it has them. Consumes v. */
void kv_send_value(req *q, strata_value *v, const char *tier, const char *label);

/* 404 not_found with X-Cache: MISS; reason as add_reason. */
void kv_send_miss(req *q, int reason);

/* A write (PUT, DELETE, a lease's fill) is done: 204, with X-Cache-Write: l1-only when only this
 * instance's memory took it; else the status's error. A strata_done_cb (arg: the req). */
void kv_on_written(int status, void *arg);

/* ?window=S on a key route: the key becomes strata_key_window's (key@<n>, in q->r.key) and every
 * answer says X-Cache-Key: <it, percent-encoded>; *left_ms is the time left in the window (0
 * without ?window). Returns 0, or answers 400 bad_window / 414 and returns -1. */
int kv_window(req *q, uint64_t *left_ms);

/* A write's options as the request gives them, and the storage they point into. */
typedef struct kv_put_opts {
    strata_set_opts opts;
    int compute_given; /* ?compute_time= was given (0 included) */
    const char *tags[STRATA_TAGS_MAX_PER_ENTRY];
    char tagbuf[2048];
    char ctype[STRATA_CONTENT_TYPE_MAX + 1];
} kv_put_opts;

/* Fills p from ?ttl=, Cache-Control, ?tags=, Content-Type, If-None-Match: *, X-Cache-Error and
 * the freshness parameters ?grace=, ?stale_if_error=, ?beta=, ?compute_time=; without a TTL,
 * window_left_ms (kv_window's, 0: none) is the TTL, exact. Returns 0, or answers 400 and returns
 * -1. */
int kv_put_options(req *q, kv_put_opts *p, uint64_t window_left_ms);

/* The freshness limits the API takes (seconds; docs/api.md) and a parsed number of them. */
#define KV_COMPUTE_MAX_MS (24ull * 3600 * 1000) /* compute_time: a day */
#define KV_WINDOW_MAX_MS  (365ull * 24 * 3600 * 1000)
#define KV_STALE_RANGE    "seconds from 0 to 2592000 (30 days), fractions to the millisecond allowed"

#endif
