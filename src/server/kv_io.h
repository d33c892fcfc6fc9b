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
 * HIT-COALESCED); tier ("l1", "l2") for metrics. A value stored as an error result
 * (STRATA_VALUE_ERROR) says so with X-Cache-Error: 1. Consumes v. */
void kv_send_value(req *q, strata_value *v, const char *tier, const char *label);

/* 404 not_found with X-Cache: MISS; reason as add_reason. */
void kv_send_miss(req *q, int reason);

/* A write (PUT, DELETE, a lease's fill) is done: 204, with X-Cache-Write: l1-only when only this
 * instance's memory took it; else the status's error. A strata_done_cb (arg: the req). */
void kv_on_written(int status, void *arg);

/* A write's options as the request gives them, and the storage they point into. */
typedef struct kv_put_opts {
    strata_set_opts opts;
    const char *tags[STRATA_TAGS_MAX_PER_ENTRY];
    char tagbuf[2048];
    char ctype[STRATA_CONTENT_TYPE_MAX + 1];
} kv_put_opts;

/* Fills p from ?ttl=, Cache-Control, ?tags=, Content-Type, If-None-Match: * and X-Cache-Error.
 * Returns 0, or answers 400 and returns -1. */
int kv_put_options(req *q, kv_put_opts *p);

#endif
