/* test_freshness.c: grace, stale-if-error and early refresh in the library, against a real
 * redis-server with two caches as two instances on it, on a fake clock the test moves (stored
 * times follow it; Redis' own expiry runs on real time, far longer than any step here).
 *
 * What is shown: a value past its TTL within its grace is a miss for strata_cache_get and a
 * stale answer for strata_cache_get_stale, on the instance that wrote it and on the other one
 * (the freshness fields travel through Redis in format version 2, and plain entries stay in
 * version 1); past its windows it is gone. A holder whose computation fails keeps the stale copy
 * for the error TTL (every instance reads it, flagged stale, and nobody is given the lease), or
 * stores its error result when there is no copy, or leaves a value written meanwhile; a copy is
 * never written over a newer value. XFetch draws, per-namespace defaults, Redis down (the
 * process decides), and the asynchronous calls. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include <strata/strata.h>

#include "cache/cache_internal.h"
#include "cache/twotier.h"
#include "harness.h"

static rh_server *srv;
static uint64_t fake_now; /* the instances' clock */

static uint64_t fake_clock(void)
{
    return fake_now;
}

static int setup(void **state)
{
    (void)state;
    srv = rh_start(NULL);
    return srv ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    rh_stop(srv);
    return 0;
}

typedef struct inst {
    strata_cache *c;
    strata_leases *ls;
} inst;

static inst open_on(rh_server *s)
{
    strata_cache_config cfg;
    assert_int_equal(strata_cache_config_init(&cfg, NULL), 0);
    cfg.l1.max_memory = 8u << 20;
    cfg.l1.prefix = "fr";
    rh_apply(s, &cfg.redis);
    cfg.redis.socket_timeout_ms = 200;
    cfg.redis.connect_timeout_ms = 200;
    cfg.redis.breaker_failures = 2;
    cfg.log = rh_log_quiet;
    inst i;
    assert_int_equal(strata_cache_new(&cfg, &i.c), 0);
    strata__cache_set_clock(i.c, fake_clock);
    assert_true(rh_wait_for(rh_cache_coherent, i.c, 5000));
    assert_int_equal(strata_leases_new(i.c, &i.ls), 0);
    strata_ns_config nc;
    strata_ns_config_init(&nc);
    nc.error_ttl_ms = 2000;
    assert_int_equal(strata_l1_ns_configure(strata_cache_l1(i.c), "ns", &nc), 0);
    return i;
}

static void close_inst(inst i)
{
    strata_leases_free(i.ls);
    strata_cache_free(i.c);
}

/* The first byte of the stored entry (its format version), 0 when missing. */
static int stored_version(const char *key)
{
    char vk[128];
    snprintf(vk, sizeof vk, "fr:ns:acme:%s", key);
    redisReply *r = rh_command(srv, "GETRANGE %s 0 0", vk);
    assert_non_null(r);
    int v = r->type == REDIS_REPLY_STRING && r->len == 1 ? (unsigned char)r->str[0] : 0;
    freeReplyObject(r);
    return v;
}

static void assert_value(int rc, int want_rc, strata_value *v, const char *bytes)
{
    assert_int_equal(rc, want_rc);
    assert_non_null(v);
    assert_int_equal(strata_value_len(v), strlen(bytes));
    assert_memory_equal(strata_value_data(v), bytes, strlen(bytes));
}

static void test_grace_is_stale_on_every_instance_then_gone(void **state)
{
    (void)state;
    fake_now = rh_now_ms() + 86400000; /* ahead of real time: L1's sweeper runs on it */
    inst a = open_on(srv), b = open_on(srv);
    strata_key k = {"ns", "acme", "grace", 5}, plain = {"ns", "acme", "plain", 5};
    strata_set_opts o = {.ttl_ms = 1000, .grace_ms = 5000, .flags = STRATA_SET_NO_JITTER};
    assert_int_equal(strata_cache_set(a.c, &k, "old", 3, &o), STRATA_OK);
    assert_int_equal(stored_version("grace"), 1); /* a plain grace: still version 1 */
    strata_set_opts p = {.ttl_ms = 1000};
    assert_int_equal(strata_cache_set(a.c, &plain, "p", 1, &p), STRATA_OK);
    assert_int_equal(stored_version("plain"), 1);
    strata_value *v = NULL;
    assert_int_equal(strata_cache_get_stale(b.c, &k, &v), STRATA_OK); /* fresh: plain answer */
    assert_int_equal(strata_value_freshness(v, fake_now, 0.5), STRATA_FRESH);
    strata_value_release(v);

    fake_now += 1500; /* past the TTL, within the grace */
    v = NULL;
    assert_int_equal(strata_cache_get(a.c, &k, &v), STRATA_ENOTFOUND);
    assert_null(v);
    inst fresh = open_on(srv); /* nothing in its L1: the stale copy comes from Redis */
    assert_int_equal(strata_cache_get(fresh.c, &k, &v), STRATA_ENOTFOUND);
    int rc = strata_cache_get_stale(fresh.c, &k, &v);
    assert_value(rc, STRATA_OK_STALE, v, "old");
    assert_int_equal(strata_value_freshness(v, fake_now, 0.5), STRATA_STALE);
    assert_int_equal(strata_value_grace_ms(v), 5000);
    strata_value_release(v);
    rc = strata_cache_get_stale(a.c, &k, &v); /* the writer's L1 copy */
    assert_value(rc, STRATA_OK_STALE, v, "old");
    strata_value_release(v);
    /* Stale: a MISS acquire is granted (a stale value is not "a value is there"). */
    strata_lease_grant g;
    assert_int_equal(strata_lease_acquire(b.ls, &k, 30000, STRATA_LEASE_MISS, &g), STRATA_OK);
    assert_int_equal(strata_lease_release(b.ls, &k, g.token), STRATA_OK);

    fake_now += 5000; /* past the grace */
    assert_int_equal(strata_cache_get_stale(a.c, &k, &v), STRATA_ENOTFOUND);
    assert_int_equal(strata_cache_get_stale(fresh.c, &k, &v), STRATA_ENOTFOUND);
    assert_int_equal(strata_cache_get_stale(b.c, &k, &v), STRATA_ENOTFOUND);
    close_inst(fresh);
    close_inst(a);
    close_inst(b);
}

typedef struct probe {
    strata_cache *c;
    const strata_key *k;
} probe;

static int stale_gone(void *arg)
{
    const probe *p = arg;
    strata_value *v = NULL;
    int rc = strata_cache_get_stale(p->c, p->k, &v);
    strata_value_release(v);
    return rc == STRATA_ENOTFOUND;
}

static void test_failure_keeps_the_stale_copy_for_the_error_ttl(void **state)
{
    (void)state;
    fake_now = rh_now_ms() + 86400000; /* ahead of real time: L1's sweeper runs on it */
    inst a = open_on(srv), b = open_on(srv);
    strata_key k = {"ns", "acme", "sie", 3};
    const char *tags[] = {"t1"};
    strata_set_opts o = {.ttl_ms = 1000,
                         .stale_if_error_ms = 10000,
                         .content_type = "text/plain",
                         .tags = tags,
                         .ntags = 1,
                         .flags = STRATA_SET_NO_JITTER};
    assert_int_equal(strata_cache_set(a.c, &k, "good", 4, &o), STRATA_OK);
    assert_int_equal(stored_version("sie"), 2);
    fake_now += 2000; /* expired; within stale-if-error, no grace */
    strata_value *v = NULL;
    int rc = strata_cache_get_stale(b.c, &k, &v);
    assert_value(rc, STRATA_OK_STALE, v, "good");
    assert_int_equal(strata_value_freshness(v, fake_now, 0.5), STRATA_STALE_IF_ERROR);
    assert_int_equal(strata_value_stale_if_error_ms(v), 10000);
    strata_value_release(v);

    strata_lease_grant g;
    assert_int_equal(strata_lease_acquire(b.ls, &k, 30000, STRATA_LEASE_MISS, &g), STRATA_OK);
    /* A token of the right form that Redis never issued changes nothing. */
    assert_int_equal(strata_lease_fail(b.ls, &k, "AAAAAAAAAAAAAAAAAAAAAA", "x", 1, NULL, &v),
                     STRATA_ENOTHOLDER);
    rc = strata_lease_fail(b.ls, &k, g.token, "boom", 4, NULL, &v);
    assert_value(rc, STRATA_OK_STALE, v, "good");
    strata_value_release(v);
    /* Every instance now reads the copy, fresh for the error TTL, flagged stale. */
    rc = strata_cache_get(a.c, &k, &v);
    assert_value(rc, STRATA_OK, v, "good");
    assert_true(strata_value_flags(v) & STRATA_VALUE_STALE);
    assert_string_equal(strata_value_content_type(v), "text/plain");
    assert_int_equal(strata_value_tag_count(v), 1);
    assert_int_equal(strata_value_expires_ms(v), fake_now + 2000); /* exact: no jitter */
    /* what was left of its window: 10 s from the old expiry, less the 2 s error TTL from now */
    assert_int_equal(strata_value_stale_if_error_ms(v), 1000 + 10000 - 2000 - 2000);
    strata_value_release(v);
    assert_int_equal(strata_lease_acquire(a.ls, &k, 30000, STRATA_LEASE_MISS, &g),
                     STRATA_EEXISTS); /* nobody asks the failing backend before the error TTL */
    assert_int_equal(strata_cache_tag_invalidate(a.c, "acme", "t1"), STRATA_OK);
    /* tags hold: b hears of the invalidation through its link, within moments */
    assert_true(rh_wait_for(stale_gone, &(probe){b.c, &k}, 5000));

    strata_lease_stats st;
    strata_leases_stats(b.ls, &st);
    assert_int_equal(st.stale_kept, 1);
    assert_int_equal(st.errors_stored, 0);
    close_inst(a);
    close_inst(b);
}

static void test_failure_without_a_copy_stores_the_error(void **state)
{
    (void)state;
    fake_now = rh_now_ms() + 86400000; /* ahead of real time: L1's sweeper runs on it */
    inst a = open_on(srv), b = open_on(srv);
    strata_key k = {"ns", "acme", "cold", 4};
    strata_lease_grant g;
    assert_int_equal(strata_lease_acquire(a.ls, &k, 30000, STRATA_LEASE_MISS, &g), STRATA_OK);
    strata_set_opts o = {.ttl_ms = 60000, .content_type = "application/json"};
    strata_value *v = (strata_value *)1;
    assert_int_equal(strata_lease_fail(a.ls, &k, g.token, "{\"e\":502}", 9, &o, &v),
                     STRATA_OK_ERROR);
    assert_null(v);
    int rc = strata_cache_get(b.c, &k, &v);
    assert_value(rc, STRATA_OK, v, "{\"e\":502}");
    assert_true(strata_value_flags(v) & STRATA_VALUE_ERROR);
    assert_in_range(strata_value_ttl_left_ms(v, fake_now), 1800, 2200); /* the error TTL wins
                                                                           (+-10% jitter) */
    assert_string_equal(strata_value_content_type(v), "application/json");
    strata_value_release(v);
    /* The lease was released with it. */
    assert_int_equal(strata_lease_acquire(b.ls, &k, 30000, STRATA_LEASE_REFRESH, &g), STRATA_OK);
    /* An error result is never kept as a stale copy: failing again stores the new error. */
    fake_now += 3000;
    assert_int_equal(strata_lease_fail(b.ls, &k, g.token, "again", 5, NULL, &v), STRATA_OK_ERROR);
    strata_lease_stats st;
    strata_leases_stats(a.ls, &st);
    assert_int_equal(st.errors_stored, 1);
    close_inst(a);
    close_inst(b);
}

static void test_failure_leaves_a_value_written_meanwhile(void **state)
{
    (void)state;
    fake_now = rh_now_ms() + 86400000; /* ahead of real time: L1's sweeper runs on it */
    inst a = open_on(srv), b = open_on(srv);
    strata_key k = {"ns", "acme", "meanwhile", 9};
    strata_lease_grant g, g2;
    assert_int_equal(strata_lease_acquire(a.ls, &k, 30000, STRATA_LEASE_MISS, &g), STRATA_OK);
    assert_int_equal(strata_cache_set(b.c, &k, "plain", 5, NULL), STRATA_OK);
    strata_value *v = NULL;
    int rc = strata_lease_fail(a.ls, &k, g.token, "boom", 4, NULL, &v);
    assert_value(rc, STRATA_OK, v, "plain");
    strata_value_release(v);
    assert_int_equal(strata_lease_acquire(b.ls, &k, 30000, STRATA_LEASE_REFRESH, &g2), STRATA_OK);
    assert_int_equal(strata_lease_release(b.ls, &k, g2.token), STRATA_OK);
    close_inst(a);
    close_inst(b);
}

/* Between the failing holder's read of the copy and its write, another instance writes. */
static inst *racer;
static void write_between(void *arg)
{
    const strata_key *k = arg;
    strata__test_after_l2_read = NULL;
    assert_int_equal(strata_cache_set(racer->c, k, "newer", 5, NULL), STRATA_OK);
}

static void test_a_kept_copy_never_overwrites_a_newer_value(void **state)
{
    (void)state;
    fake_now = rh_now_ms() + 86400000; /* ahead of real time: L1's sweeper runs on it */
    inst a = open_on(srv), b = open_on(srv), c = open_on(srv);
    strata_key k = {"ns", "acme", "race", 4};
    strata_set_opts o = {.ttl_ms = 1000, .stale_if_error_ms = 60000};
    assert_int_equal(strata_cache_set(a.c, &k, "old", 3, &o), STRATA_OK);
    fake_now += 5000;
    strata_lease_grant g;
    assert_int_equal(strata_lease_acquire(b.ls, &k, 30000, STRATA_LEASE_MISS, &g), STRATA_OK);
    racer = &c;
    strata__test_arg = &k;
    strata__test_after_l2_read = write_between; /* b's L1 holds nothing: it reads Redis */
    strata_value *v = NULL;
    assert_int_equal(strata_lease_fail(b.ls, &k, g.token, "boom", 4, NULL, &v), STRATA_EEXISTS);
    assert_null(v);
    strata__test_after_l2_read = NULL;
    int rc = strata_cache_get(a.c, &k, &v);
    assert_value(rc, STRATA_OK, v, "newer");
    assert_false(strata_value_flags(v) & STRATA_VALUE_STALE);
    strata_value_release(v);
    assert_int_equal(strata_lease_acquire(a.ls, &k, 30000, STRATA_LEASE_REFRESH, &g),
                     STRATA_OK); /* the lease was released */
    close_inst(a);
    close_inst(b);
    close_inst(c);
}

static void test_xfetch_and_namespace_defaults(void **state)
{
    (void)state;
    fake_now = rh_now_ms() + 86400000; /* ahead of real time: L1's sweeper runs on it */
    inst a = open_on(srv), b = open_on(srv);
    strata_ns_config nc;
    strata_ns_config_init(&nc);
    assert_true(nc.beta == 1.0);
    nc.beta = 2.0;
    nc.grace_ms = 7000;
    nc.stale_if_error_ms = 9000;
    assert_int_equal(strata_l1_ns_configure(strata_cache_l1(a.c), "xf", &nc), 0);
    strata_key k = {"xf", "acme", "hot", 3}, off = {"xf", "acme", "off", 3};
    strata_set_opts o = {.ttl_ms = 60000, .compute_ms = 1000, .flags = STRATA_SET_NO_JITTER};
    assert_int_equal(strata_cache_set(a.c, &k, "v", 1, &o), STRATA_OK);
    strata_value *v = NULL;
    inst fresh = open_on(srv);
    assert_int_equal(strata_cache_get(fresh.c, &k, &v), STRATA_OK); /* through Redis */
    assert_int_equal(strata_value_compute_ms(v), 1000);
    assert_true(strata_value_beta(v) == 2.0);
    assert_int_equal(strata_value_grace_ms(v), 7000);
    assert_int_equal(strata_value_stale_if_error_ms(v), 9000);
    uint64_t x = strata_value_expires_ms(v);
    /* 10 ms before expiry, a draw of 0.5 refreshes (2 s * ln 2 = 1386 ms ahead); 5 s before,
     * it does not; a draw of 1 never does; the further from expiry, the rarer. */
    assert_int_equal(strata_value_freshness(v, x - 10, 0.5), STRATA_FRESH_EARLY);
    assert_int_equal(strata_value_freshness(v, x - 1300, 0.5), STRATA_FRESH_EARLY);
    assert_int_equal(strata_value_freshness(v, x - 1500, 0.5), STRATA_FRESH);
    assert_int_equal(strata_value_freshness(v, x - 5000, 0.5), STRATA_FRESH);
    assert_int_equal(strata_value_freshness(v, x - 10, 1.0), STRATA_FRESH);
    assert_int_equal(strata_value_freshness(v, x - 5000, 0.01), STRATA_FRESH_EARLY);
    assert_int_equal(strata_value_freshness(v, x, 0.5), STRATA_STALE);
    assert_int_equal(strata_value_freshness(v, x + 7000, 0.5), STRATA_STALE_IF_ERROR);
    assert_int_equal(strata_value_freshness(v, x + 9000, 0.5), STRATA_EXPIRED);
    unsigned early = 0;
    for (int i = 1; i <= 1000; i++) /* uniform draws, 1 s before expiry */
        early += strata_value_freshness(v, x - 1000, i / 1000.0) == STRATA_FRESH_EARLY;
    /* early when -2 s * ln u >= 1 s, i.e. u <= e^-0.5 = 0.6065: 606 of the 1000 draws */
    assert_in_range(early, 600, 612);
    strata_value_release(v);
    /* An exact window: 0 is none, not the namespace's. */
    strata_key ex1 = {"xf", "acme", "exact1", 6}, ex2 = {"xf", "acme", "exact2", 6};
    strata_set_opts exact = {.ttl_ms = 60000, .flags = STRATA_SET_EXACT_GRACE};
    assert_int_equal(strata_cache_set(a.c, &ex1, "v", 1, &exact), STRATA_OK);
    assert_int_equal(strata_cache_get(fresh.c, &ex1, &v), STRATA_OK);
    assert_int_equal(strata_value_grace_ms(v), 0);
    assert_int_equal(strata_value_stale_if_error_ms(v), 9000); /* this one still the namespace's */
    strata_value_release(v);
    exact.flags = STRATA_SET_EXACT_GRACE | STRATA_SET_EXACT_STALE_IF_ERROR;
    exact.stale_if_error_ms = 500;
    assert_int_equal(strata_cache_set(a.c, &ex2, "v", 1, &exact), STRATA_OK);
    assert_int_equal(strata_cache_get(fresh.c, &ex2, &v), STRATA_OK);
    assert_int_equal(strata_value_grace_ms(v), 0);
    assert_int_equal(strata_value_stale_if_error_ms(v), 500);
    strata_value_release(v);
    /* beta below 0: never early; no compute time: never early. */
    strata_set_opts never = {.ttl_ms = 60000, .compute_ms = 1000, .beta = -1};
    assert_int_equal(strata_cache_set(a.c, &off, "v", 1, &never), STRATA_OK);
    assert_int_equal(strata_cache_get(fresh.c, &off, &v), STRATA_OK);
    assert_true(strata_value_beta(v) == 0.0);
    assert_int_equal(strata_value_freshness(v, strata_value_expires_ms(v) - 1, 0.001),
                     STRATA_FRESH);
    strata_value_release(v);
    /* Out of range: refused. */
    strata_set_opts bad = {.grace_ms = STRATA_STALE_MAX_MS + 1};
    assert_int_equal(strata_cache_set(a.c, &off, "v", 1, &bad), STRATA_EINVAL);
    bad = (strata_set_opts){.beta = STRATA_BETA_MAX * 2};
    assert_int_equal(strata_cache_set(a.c, &off, "v", 1, &bad), STRATA_EINVAL);
    nc.beta = -1;
    assert_int_equal(strata_l1_ns_configure(strata_cache_l1(a.c), "xf", &nc), STRATA_EINVAL);
    close_inst(fresh);
    close_inst(a);
    close_inst(b);
}

static void test_touch_keeps_a_version_2_entry(void **state)
{
    (void)state;
    fake_now = rh_now_ms() + 86400000; /* ahead of real time: L1's sweeper runs on it */
    inst a = open_on(srv), b = open_on(srv);
    strata_key k = {"ns", "acme", "touch2", 6};
    strata_set_opts o = {.ttl_ms = 1000, .stale_if_error_ms = 5000, .compute_ms = 20};
    assert_int_equal(strata_cache_set(a.c, &k, "t", 1, &o), STRATA_OK);
    assert_int_equal(stored_version("touch2"), 2);
    assert_int_equal(strata_cache_touch(a.c, &k, 60000), STRATA_OK);
    strata_value *v = NULL;
    assert_int_equal(strata_cache_get(b.c, &k, &v), STRATA_OK);
    assert_int_equal(strata_value_expires_ms(v), fake_now + 60000);
    assert_int_equal(strata_value_stale_if_error_ms(v), 5000);
    assert_int_equal(strata_value_compute_ms(v), 20);
    strata_value_release(v);
    close_inst(a);
    close_inst(b);
}

static int link_down(void *arg)
{
    strata_l2_stats st;
    strata_cache_l2_stats(arg, &st);
    return !st.coherent;
}

static void test_redis_down_the_process_keeps_its_copy(void **state)
{
    (void)state;
    fake_now = rh_now_ms() + 86400000; /* ahead of real time: L1's sweeper runs on it */
    rh_server *own = rh_start(NULL);
    assert_non_null(own);
    inst a = open_on(own);
    strata_key k = {"ns", "acme", "down", 4};
    strata_set_opts o = {.ttl_ms = 1000, .grace_ms = 3000, .stale_if_error_ms = 20000};
    /* Losing the link empties L1 (its copies of shared keys can no longer be kept coherent):
     * what L1 holds while Redis is away is what was written meanwhile. */
    assert_int_equal(rh_kill(own), 0);
    assert_true(rh_wait_for(link_down, a.c, 5000));
    assert_int_equal(strata_cache_set(a.c, &k, "mine", 4, &o), STRATA_OK_L1_ONLY);
    fake_now += 2000;
    strata_value *v = NULL;
    int rc = strata_cache_get_stale(a.c, &k, &v); /* L1's copy */
    assert_value(rc, STRATA_OK_STALE, v, "mine");
    strata_value_release(v);
    strata_lease_grant g;
    assert_int_equal(strata_lease_acquire(a.ls, &k, 30000, STRATA_LEASE_MISS, &g), STRATA_OK);
    assert_true(g.local);
    rc = strata_lease_fail(a.ls, &k, g.token, "boom", 4, NULL, &v);
    assert_value(rc, STRATA_OK_STALE, v, "mine");
    assert_int_not_equal(strata_fallback_reason(), STRATA_REASON_NONE); /* L1 alone */
    strata_value_release(v);
    rc = strata_cache_get(a.c, &k, &v);
    assert_true(rc == STRATA_OK || rc == STRATA_OK_L1_ONLY);
    assert_non_null(v);
    assert_true(strata_value_flags(v) & STRATA_VALUE_STALE);
    strata_value_release(v);
    close_inst(a);
    rh_stop(own);
}

typedef struct got {
    int calls, status;
    strata_value *v;
} got;

static void on_value(int status, strata_value *v, void *arg)
{
    got *r = arg;
    r->calls++, r->status = status, r->v = v;
}

static void run_until(struct event_base *base, const got *r)
{
    uint64_t until = rh_now_ms() + 5000;
    while (r->calls == 0 && rh_now_ms() < until)
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK), usleep(200);
    assert_int_equal(r->calls, 1);
}

static void test_async_stale_read_and_failure(void **state)
{
    (void)state;
    fake_now = rh_now_ms() + 86400000; /* ahead of real time: L1's sweeper runs on it */
    inst a = open_on(srv), b = open_on(srv);
    struct event_base *base = event_base_new();
    strata_loop *lb;
    assert_int_equal(strata_loop_new(b.c, base, &lb), 0);
    strata_key k = {"ns", "acme", "async", 5};
    strata_set_opts o = {.ttl_ms = 1000, .grace_ms = 4000};
    assert_int_equal(strata_cache_set(a.c, &k, "old", 3, &o), STRATA_OK);
    fake_now += 2000;
    got r1 = {0}, r2 = {0}, r3 = {0};
    strata_value *v = NULL;
    assert_int_equal(strata_cache_get_stale_async(lb, &k, on_value, &r1, &v), STRATA_PENDING);
    run_until(base, &r1);
    assert_value(r1.status, STRATA_OK_STALE, r1.v, "old");
    strata_value_release(r1.v);
    /* Promoted into b's L1, then answered during the call (a's write's invalidation may reach
     * b's link after b's first read began: that read is then served without being kept, and
     * the next one keeps it). */
    int rc = STRATA_PENDING;
    for (int i = 0; i < 20 && rc == STRATA_PENDING; i++) {
        r2 = (got){0};
        rc = strata_cache_get_stale_async(lb, &k, on_value, &r2, &v);
        if (rc == STRATA_PENDING) {
            run_until(base, &r2);
            assert_int_equal(r2.status, STRATA_OK_STALE);
            strata_value_release(r2.v);
        }
    }
    assert_int_equal(rc, STRATA_OK_STALE);
    assert_int_equal(r2.calls, 0);
    strata_value_release(v);
    strata_lease_grant g;
    assert_int_equal(strata_lease_acquire(b.ls, &k, 30000, STRATA_LEASE_MISS, &g), STRATA_OK);
    v = NULL;
    rc = strata_lease_fail_async(b.ls, lb, &k, g.token, "e", 1, NULL, on_value, &r3, &v);
    if (rc == STRATA_PENDING) {
        run_until(base, &r3);
        rc = r3.status, v = r3.v;
    }
    assert_value(rc, STRATA_OK_STALE, v, "old");
    strata_value_release(v);
    assert_int_equal(strata_cache_get(a.c, &k, &v), STRATA_OK);
    assert_true(strata_value_flags(v) & STRATA_VALUE_STALE);
    strata_value_release(v);
    strata_loop_free(lb);
    event_base_free(base);
    close_inst(a);
    close_inst(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grace_is_stale_on_every_instance_then_gone),
        cmocka_unit_test(test_failure_keeps_the_stale_copy_for_the_error_ttl),
        cmocka_unit_test(test_failure_without_a_copy_stores_the_error),
        cmocka_unit_test(test_failure_leaves_a_value_written_meanwhile),
        cmocka_unit_test(test_a_kept_copy_never_overwrites_a_newer_value),
        cmocka_unit_test(test_xfetch_and_namespace_defaults),
        cmocka_unit_test(test_touch_keeps_a_version_2_entry),
        cmocka_unit_test(test_redis_down_the_process_keeps_its_copy),
        cmocka_unit_test(test_async_stale_read_and_failure),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
