/* kv_lease.h: the lease protocol on the key/value API (kv_lease.c): what kv.c hands over. */
#ifndef STRATA_SERVER_KV_LEASE_H
#define STRATA_SERVER_KV_LEASE_H

#include "kv_io.h"

/* Whether a GET or HEAD asks for the lease on a miss (X-Cache-Lease): 0 it does not, 1 it does
 * and its headers are good, -1 they are not (answered 400, or 403 without the write role). */
int kv_lease_asked(req *q);

/* A GET that asked for the lease missed: wait for the holder's value, or take the lease. */
void kv_lease_wait(req *q);

/* PUT with X-Cache-Lease-Token: fill the value with o (borrowed), if the token holds the lease. */
void kv_lease_fill(req *q, const kv_put_opts *o);

/* The X-Cache-Lease of a request kv_lease_asked accepted, in ms. */
uint64_t kv_lease_ms(req *q);

/* This worker granted token now (a lease GET's token): a fill of it without ?compute_time= is
 * given the time since. Worker thread only. */
void kv_grant_note(worker *w, const char *token);

/* A GET or HEAD with X-Cache-Lease, its headers checked (kv_fresh.c): a fresh hit answered (and,
 * for the one reader XFetch chose, the lease to refresh it early), a stale one within its grace
 * answered at once (and the lease to one caller), else the wait. */
void kv_fresh_get(req *q);

/* PATCH: extend the lease (X-Cache-Lease-Token, X-Cache-Lease). */
void kv_lease_extend(req *q);

/* DELETE with X-Cache-Lease-Token: give the lease up. */
void kv_lease_release(req *q);

#endif
