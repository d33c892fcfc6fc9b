/* test_remember_freshness.c: strata_cache_remember's grace, stale-if-error and early refresh,
 * against a real redis-server with two caches as two instances on it, on a fake clock ahead of
 * real time that the test moves (L1's sweeper runs on real time; Redis' own expiry is far longer
 * than any step here).
 *
 * What is shown: a value stale within its grace is answered STRATA_OK_STALE at once to every
 * caller on both instances but one, which recomputes (the others are answered before its
 * computation ends); a refresh that fails keeps the stale copy; a computation that fails while a
 * copy is within its stale-if-error window answers that copy to its caller and every waiter, and
 * to every caller for the error TTL without computing; without a copy the failure is an error as
 * before; an XFetch draw (forced through strata__remember_draw) makes a caller of a fresh value
 * recompute early, storing the compute time measured on the cache's clock; beta below 0 never
 * refreshes early; a caller given the refresh lease just after another refreshed the value, or
 * whose failure finds a value written meanwhile, answers that value instead of its own; the
 * asynchronous calls alike; with Redis down, each instance alone. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <event2/thread.h>

#include <strata/strata.h>

#include "cache/cache_internal.h"
#include "cache/twotier.h"
#include "features/lease_internal.h"
#include "harness.h"

static rh_server *srv;
static _Atomic uint64_t fake_now; /* the instances' clock */

static uint64_t fake_clock(void)
{
    return atomic_load(&fake_now);
}

static double forced_u = 1.0; /* the XFetch draw, when forced */

static double forced_draw(void)
{
    return forced_u;
}

static int setup(void **state)
{
    (void)state;
    evthread_use_pthreads(); /* loop waiters are woken from the link's thread */
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
    cfg.l1.prefix = "rf";
    rh_apply(s, &cfg.redis);
    cfg.redis.socket_timeout_ms = 1000;
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
    nc.jitter = 0;
    assert_int_equal(strata_l1_ns_configure(strata_cache_l1(i.c), "ns", &nc), 0);
    return i;
}

static void close_inst(inst i)
{
    strata_leases_free(i.ls);
    strata_cache_free(i.c);
}

static void start_clock(void)
{
    atomic_store(&fake_now, rh_now_ms() + 86400000); /* ahead of real time: L1's sweeper */
    strata__remember_draw = NULL;
}

static void advance(uint64_t ms)
{
    atomic_fetch_add(&fake_now, ms);
}

static strata_remember_stats rstats(inst *i)
{
    strata_remember_stats st;
    strata_leases_remember_stats(i->ls, &st);
    return st;
}

static strata_remember_stats rsum(inst *in, int n)
{
    strata_remember_stats s = {0}, t;
    for (int i = 0; i < n; i++) {
        t = rstats(&in[i]);
        s.calls += t.calls, s.computations += t.computations, s.stale += t.stale;
        s.early_refreshes += t.early_refreshes, s.stale_refreshes += t.stale_refreshes;
        s.stale_if_error += t.stale_if_error, s.failures += t.failures, s.hits += t.hits;
    }
    return s;
}

static int is(const strata_value *v, const char *bytes)
{
    return v != NULL && strata_value_len(v) == strlen(bytes) &&
           memcmp(strata_value_data(v), bytes, strlen(bytes)) == 0;
}

/* ---- simple computations: a value (or a failure), the fake clock moved meanwhile ----------- */

typedef struct simple {
    const char *value;
    int fail;          /* complete with STRATA_OK_ERROR, value as the error result */
    uint64_t takes_ms; /* the fake clock moves this much during the computation */
    atomic_int calls;
} simple;

static void compute_simple(const strata_key *k, strata_remember_handle *h, void *arg)
{
    (void)k;
    simple *s = arg;
    atomic_fetch_add(&s->calls, 1);
    advance(s->takes_ms);
    assert_int_equal(
        strata_remember_done(h, s->fail ? STRATA_OK_ERROR : STRATA_OK, s->value, strlen(s->value)),
        0);
}

/* A remember on i that must answer status, with bytes, from source. */
static void expect(inst *i, const strata_key *k, const strata_remember_opts *o, simple *s,
                   int status, const char *bytes, int source)
{
    strata_remember_answer a;
    int rc = strata_cache_remember(i->ls, k, o, compute_simple, s, &a);
    if (rc != status || a.source != source)
        fprintf(stderr, "%.*s: %s source %d, expected %s source %d\n", (int)k->len,
                (const char *)k->key, strata_err_name(rc), a.source, strata_err_name(status),
                source);
    assert_int_equal(rc, status);
    assert_true(is(a.value, bytes));
    assert_int_equal(a.source, source);
    if (status == STRATA_OK_STALE)
        assert_true(a.source == STRATA_REMEMBER_STALE);
    strata_value_release(a.value);
}

/* The value under k as an instance that never read it finds it (through Redis). */
static strata_value *read_fresh(const strata_key *k)
{
    inst f = open_on(srv);
    strata_value *v = NULL;
    int rc = strata_cache_get(f.c, k, &v);
    assert_int_equal(rc, STRATA_OK);
    close_inst(f);
    return v;
}

/* Whether an instance reads a value (a wait for the invalidation link). */
typedef struct holds {
    inst *in;
    const strata_key *k;
    const char *bytes;
    int flagged; /* a copy kept (STRATA_VALUE_STALE) */
} holds;

/* As a remember's first read (strata_cache_get_stale) sees it: an instance whose L1 still holds
 * an older copy, stale, is answered from it until the write's invalidation reaches it. */
static int holds_value(void *arg)
{
    holds *h = arg;
    strata_value *v = NULL;
    strata_cache_get_stale(h->in->c, h->k, &v);
    int yes = is(v, h->bytes) &&
              (strata_value_flags(v) & STRATA_VALUE_STALE) == (h->flagged ? STRATA_VALUE_STALE : 0);
    strata_value_release(v);
    return yes;
}

/* ---- a crowd: threads on one or two instances, all at once ---------------------------------- */

typedef struct crowd {
    inst *in;
    int ninst, n; /* n callers, thread i on in[i % ninst] */
    const strata_key *k;
    strata_remember_opts o;
    const char *old, *fresh; /* the value stale, the value computed (or the error result) */
    int fail;                /* the computation fails (after sleep_ms of real time) */
    int sleep_ms;
    int block; /* the computation waits until every other caller has been answered */
    pthread_barrier_t go;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stale;            /* answered STRATA_OK_STALE with old (under mu) */
    int seen_before_fill; /* stale answers the computation saw before completing */
    atomic_int computations, computed, other;
} crowd;

static void compute_crowd(const strata_key *k, strata_remember_handle *h, void *arg)
{
    (void)k;
    crowd *cr = arg;
    atomic_fetch_add(&cr->computations, 1);
    if (cr->block) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 10;
        pthread_mutex_lock(&cr->mu);
        while (cr->stale < cr->n - 1 &&
               pthread_cond_timedwait(&cr->cv, &cr->mu, &until) != ETIMEDOUT)
            ;
        cr->seen_before_fill = cr->stale;
        pthread_mutex_unlock(&cr->mu);
    }
    if (cr->sleep_ms > 0)
        usleep((useconds_t)cr->sleep_ms * 1000);
    assert_int_equal(strata_remember_done(h, cr->fail ? STRATA_OK_ERROR : STRATA_OK, cr->fresh,
                                          strlen(cr->fresh)),
                     0);
}

typedef struct caller {
    crowd *cr;
    inst *in;
} caller;

static void *call_crowd(void *arg)
{
    caller *me = arg;
    crowd *cr = me->cr;
    pthread_barrier_wait(&cr->go);
    strata_remember_answer a;
    int rc = strata_cache_remember(me->in->ls, cr->k, &cr->o, compute_crowd, cr, &a);
    if (rc == STRATA_OK_STALE && a.source == STRATA_REMEMBER_STALE && is(a.value, cr->old)) {
        pthread_mutex_lock(&cr->mu);
        cr->stale++;
        pthread_cond_broadcast(&cr->cv);
        pthread_mutex_unlock(&cr->mu);
    } else if (rc == STRATA_OK && a.source == STRATA_REMEMBER_COMPUTED && is(a.value, cr->fresh)) {
        atomic_fetch_add(&cr->computed, 1);
    } else {
        fprintf(stderr, "unexpected %s source %d\n", strata_err_name(rc), a.source);
        atomic_fetch_add(&cr->other, 1);
    }
    strata_value_release(a.value);
    return NULL;
}

static void run_crowd(crowd *cr)
{
    pthread_t *th = calloc((size_t)cr->n, sizeof *th);
    caller *cs = calloc((size_t)cr->n, sizeof *cs);
    assert_non_null(th);
    assert_non_null(cs);
    pthread_barrier_init(&cr->go, NULL, (unsigned)cr->n);
    pthread_mutex_init(&cr->mu, NULL);
    pthread_cond_init(&cr->cv, NULL);
    for (int i = 0; i < cr->n; i++) {
        cs[i] = (caller){cr, &cr->in[i % cr->ninst]};
        assert_int_equal(pthread_create(&th[i], NULL, call_crowd, &cs[i]), 0);
    }
    for (int i = 0; i < cr->n; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&cr->go);
    pthread_mutex_destroy(&cr->mu);
    pthread_cond_destroy(&cr->cv);
    free(th);
    free(cs);
}

/* In grace: one computation across the instances, every other caller answered the stale value
 * before it ended (the computation waits until they all have been). */
static void grace_crowd(inst *in, int ninst, const char *key)
{
    strata_key k = {"ns", "acme", key, strlen(key)};
    strata_remember_opts o = {.ttl_ms = 1000, .grace_ms = 60000, .lease_ms = 10000};
    simple seed = {.value = "old"};
    expect(&in[0], &k, &o, &seed, STRATA_OK, "old", STRATA_REMEMBER_COMPUTED);
    advance(2000); /* past the TTL (1 s +-10%), within the grace */
    strata_remember_stats before = rsum(in, ninst);
    crowd cr = {.in = in,
                .ninst = ninst,
                .n = 20,
                .k = &k,
                .o = o,
                .old = "old",
                .fresh = "new",
                .block = 1};
    run_crowd(&cr);
    assert_int_equal(atomic_load(&cr.computations), 1);
    assert_int_equal(atomic_load(&cr.computed), 1);
    assert_int_equal(cr.stale, 19);
    assert_int_equal(cr.seen_before_fill, 19); /* answered at once, not after the refresh */
    assert_int_equal(atomic_load(&cr.other), 0);
    strata_remember_stats after = rsum(in, ninst);
    assert_int_equal(after.stale - before.stale, 19);
    assert_int_equal(after.stale_refreshes - before.stale_refreshes, 1);
    assert_int_equal(after.computations - before.computations, 1);
    /* Refreshed: every instance reads the new value, fresh, without computing (once the
     * fill's invalidation has reached its L1). */
    for (int i = 0; i < ninst; i++) {
        holds h = {&in[i], &k, "new", 0};
        assert_true(rh_wait_for(holds_value, &h, 5000));
        expect(&in[i], &k, &o, &seed, STRATA_OK, "new", STRATA_REMEMBER_HIT);
    }
    assert_int_equal(atomic_load(&seed.calls), 1);
}

static void test_grace_one_refresh_others_answered_stale_at_once(void **state)
{
    (void)state;
    start_clock();
    inst in[2] = {open_on(srv), open_on(srv)};
    grace_crowd(in, 2, "grace");
    close_inst(in[0]);
    close_inst(in[1]);
}

/* A refresh in grace that fails keeps the stale copy: its caller is answered it, and so is
 * everyone for the error TTL, nobody computing. */
static void test_grace_refresh_that_fails_keeps_the_copy(void **state)
{
    (void)state;
    start_clock();
    inst a = open_on(srv), b = open_on(srv);
    strata_key k = {"ns", "acme", "gracefail", 9};
    strata_remember_opts o = {.ttl_ms = 1000, .grace_ms = 60000};
    simple s = {.value = "old"};
    expect(&a, &k, &o, &s, STRATA_OK, "old", STRATA_REMEMBER_COMPUTED);
    advance(2000);
    s = (simple){.value = "boom", .fail = 1};
    expect(&b, &k, &o, &s, STRATA_OK_STALE, "old", STRATA_REMEMBER_STALE);
    assert_int_equal(atomic_load(&s.calls), 1);
    assert_int_equal(rstats(&b).stale_if_error, 1);
    assert_int_equal(rstats(&b).stale_refreshes, 1);
    advance(1000); /* within the error TTL (2 s): the kept copy, on both, nobody computes */
    holds ha = {&a, &k, "old", 1};
    assert_true(rh_wait_for(holds_value, &ha, 5000));
    expect(&a, &k, &o, &s, STRATA_OK_STALE, "old", STRATA_REMEMBER_STALE);
    expect(&b, &k, &o, &s, STRATA_OK_STALE, "old", STRATA_REMEMBER_STALE);
    assert_int_equal(atomic_load(&s.calls), 1);
    strata_value *v = read_fresh(&k);
    assert_true(strata_value_flags(v) & STRATA_VALUE_STALE);
    strata_value_release(v);
    close_inst(a);
    close_inst(b);
}

/* Between a caller's read of the stale value and its refresh lease, another instance refreshes
 * it (a REFRESH acquire is granted whatever is stored): the caller reads again once it holds the
 * lease, finds the new value and answers it, without computing a second time. */
static inst *racer;
static void refresh_between(void *arg)
{
    const strata_key *k = arg;
    strata__test_after_l2_read = NULL;
    strata_set_opts so = {.ttl_ms = 60000};
    assert_int_equal(strata_cache_set(racer->c, k, "other", 5, &so), STRATA_OK);
    usleep(100000); /* its invalidation reaches the reader's link meanwhile */
}

static void test_refreshed_between_the_read_and_the_lease_is_not_computed_again(void **state)
{
    (void)state;
    start_clock();
    inst a = open_on(srv), b = open_on(srv);
    strata_key k = {"ns", "acme", "between", 7};
    strata_remember_opts o = {.ttl_ms = 1000, .grace_ms = 60000};
    simple s = {.value = "old"};
    expect(&a, &k, &o, &s, STRATA_OK, "old", STRATA_REMEMBER_COMPUTED);
    advance(2000);
    racer = &a;
    strata__test_arg = &k;
    strata__test_after_l2_read = refresh_between; /* b's L1 holds nothing: it reads Redis */
    expect(&b, &k, &o, &s, STRATA_OK, "other", STRATA_REMEMBER_COALESCED);
    assert_null(strata__test_after_l2_read);
    assert_int_equal(atomic_load(&s.calls), 1);
    assert_int_equal(rstats(&b).stale_refreshes, 0);
    /* The lease was released. */
    strata_lease_grant g;
    assert_int_equal(strata_lease_acquire(a.ls, &k, 30000, STRATA_LEASE_REFRESH, &g), STRATA_OK);
    assert_int_equal(strata_lease_release(a.ls, &k, g.token), STRATA_OK);
    close_inst(a);
    close_inst(b);
}

/* Within stale-if-error only: the wait path; the computation fails, and its caller and every
 * waiter, on both instances, are answered the copy; then everyone for the error TTL. */
static void sie_crowd(inst *in, int ninst, const char *key)
{
    strata_key k = {"ns", "acme", key, strlen(key)};
    strata_remember_opts o = {.ttl_ms = 1000, .stale_if_error_ms = 60000, .lease_ms = 10000};
    simple s = {.value = "old"};
    expect(&in[0], &k, &o, &s, STRATA_OK, "old", STRATA_REMEMBER_COMPUTED);
    advance(2000); /* expired, within stale-if-error, no grace */
    strata_remember_stats before = rsum(in, ninst);
    crowd cr = {.in = in,
                .ninst = ninst,
                .n = 20,
                .k = &k,
                .o = o,
                .old = "old",
                .fresh = "boom",
                .fail = 1,
                .sleep_ms = 200};
    run_crowd(&cr);
    assert_int_equal(atomic_load(&cr.computations), 1);
    assert_int_equal(cr.stale, 20); /* the computing caller too */
    assert_int_equal(atomic_load(&cr.other), 0);
    strata_remember_stats after = rsum(in, ninst);
    assert_int_equal(after.stale_if_error - before.stale_if_error, 1);
    assert_int_equal(after.failures - before.failures, 1);
    assert_int_equal(after.stale - before.stale, 20);
    assert_int_equal(after.stale_refreshes - before.stale_refreshes, 0);
    uint64_t woken = 0; /* some were waiting for the computation, and were woken to the copy */
    for (int i = 0; i < ninst; i++) {
        strata_lease_stats ls;
        strata_leases_stats(in[i].ls, &ls);
        woken += ls.coalesced;
    }
    assert_true(woken > 0);
    /* During the error TTL: the copy, without computing. */
    advance(1000);
    for (int i = 0; i < ninst; i++) {
        holds h = {&in[i], &k, "old", 1};
        assert_true(rh_wait_for(holds_value, &h, 5000));
        expect(&in[i], &k, &o, &s, STRATA_OK_STALE, "old", STRATA_REMEMBER_STALE);
    }
    assert_int_equal(atomic_load(&s.calls), 1);
    /* Past it (the copy is within its stale-if-error window again): computed. */
    advance(1500);
    s.value = "new";
    expect(&in[ninst - 1], &k, &o, &s, STRATA_OK, "new", STRATA_REMEMBER_COMPUTED);
    assert_int_equal(atomic_load(&s.calls), 2);
}

static void test_stale_if_error_copy_for_the_caller_its_waiters_and_the_error_ttl(void **state)
{
    (void)state;
    start_clock();
    inst in[2] = {open_on(srv), open_on(srv)};
    sie_crowd(in, 2, "sie");
    close_inst(in[0]);
    close_inst(in[1]);
}

/* The computation fails; between strata_lease_fail's read of the copy and its write another
 * instance writes a value: the copy is not written over it (STRATA_EEXISTS), and the caller is
 * answered that value rather than its error result. */
static inst *reader;
static void write_between(void *arg);
static void fails_after_forgetting(const strata_key *k, strata_remember_handle *h, void *arg)
{
    atomic_fetch_add((atomic_int *)arg, 1);
    strata_l1_del(strata_cache_l1(reader->c), k, fake_clock()); /* the failure reads Redis */
    strata__test_arg = (void *)k;
    strata__test_after_l2_read = write_between;
    assert_int_equal(strata_remember_done(h, STRATA_OK_ERROR, "boom", 4), 0);
}

static void write_between(void *arg)
{
    const strata_key *k = arg;
    strata__test_after_l2_read = NULL;
    strata_set_opts so = {.ttl_ms = 60000};
    assert_int_equal(strata_cache_set(racer->c, k, "newer", 5, &so), STRATA_OK);
}

static void test_failure_answers_a_value_written_meanwhile(void **state)
{
    (void)state;
    start_clock();
    inst a = open_on(srv), b = open_on(srv);
    strata_key k = {"ns", "acme", "failrace", 8};
    strata_remember_opts o = {.ttl_ms = 1000, .stale_if_error_ms = 60000};
    simple s = {.value = "old"};
    expect(&a, &k, &o, &s, STRATA_OK, "old", STRATA_REMEMBER_COMPUTED);
    advance(2000);
    racer = &a, reader = &b;
    atomic_int calls = 0;
    strata_remember_answer ans;
    int rc = strata_cache_remember(b.ls, &k, &o, fails_after_forgetting, &calls, &ans);
    assert_null(strata__test_after_l2_read);
    assert_int_equal(rc, STRATA_OK);
    assert_int_equal(ans.source, STRATA_REMEMBER_COALESCED);
    assert_true(is(ans.value, "newer"));
    strata_value_release(ans.value);
    assert_int_equal(calls, 1);
    assert_int_equal(rstats(&b).stale_if_error, 0);
    close_inst(a);
    close_inst(b);
}

static void test_failure_without_a_copy_is_an_error(void **state)
{
    (void)state;
    start_clock();
    inst a = open_on(srv), b = open_on(srv);
    strata_key k = {"ns", "acme", "nocopy", 6};
    strata_remember_opts o = {.ttl_ms = 1000, .stale_if_error_ms = 60000};
    simple s = {.value = "boom", .fail = 1};
    strata_remember_answer ans;
    assert_int_equal(strata_cache_remember(a.ls, &k, &o, compute_simple, &s, &ans),
                     STRATA_OK_ERROR);
    assert_int_equal(ans.source, STRATA_REMEMBER_COMPUTED);
    assert_true(is(ans.value, "boom"));
    assert_true(strata_value_flags(ans.value) & STRATA_VALUE_ERROR);
    strata_value_release(ans.value);
    expect(&b, &k, &o, &s, STRATA_OK_ERROR, "boom", STRATA_REMEMBER_HIT);
    assert_int_equal(atomic_load(&s.calls), 1);
    assert_int_equal(rstats(&a).stale_if_error, 0);
    assert_int_equal(rstats(&a).failures, 1);
    /* An expired error result within its windows is a miss, never served stale. */
    advance(2500);
    s = (simple){.value = "ok"};
    expect(&b, &k, &o, &s, STRATA_OK, "ok", STRATA_REMEMBER_COMPUTED);
    close_inst(a);
    close_inst(b);
}

/* ---- early refresh ----------------------------------------------------------------------------
 */

static void test_xfetch_forced_draw_refreshes_early_with_the_measured_time(void **state)
{
    (void)state;
    start_clock();
    inst a = open_on(srv), b = open_on(srv);
    strata_key k = {"ns", "acme", "hot", 3};
    strata_remember_opts o = {.ttl_ms = 10000, .lease_ms = 10000};
    simple s = {.value = "v1", .takes_ms = 500};
    expect(&a, &k, &o, &s, STRATA_OK, "v1", STRATA_REMEMBER_COMPUTED);
    strata_value *v = read_fresh(&k);
    assert_int_equal(strata_value_compute_ms(v), 500); /* measured on the cache's clock */
    assert_true(strata_value_beta(v) == 1.0);          /* the namespace's default */
    uint64_t x = strata_value_expires_ms(v);
    strata_value_release(v);
    atomic_store(&fake_now, x - 100); /* 500 ms * ln 2 = 347 ms ahead: a draw of 0.5 is early */
    strata__remember_draw = forced_draw;
    forced_u = 1.0; /* never early */
    s = (simple){.value = "v2", .takes_ms = 300};
    expect(&b, &k, &o, &s, STRATA_OK, "v1", STRATA_REMEMBER_HIT);
    forced_u = 0.5;
    /* Early, but another caller holds the refresh lease: a plain hit. */
    strata_lease_grant g;
    assert_int_equal(strata_lease_acquire(a.ls, &k, 30000, STRATA_LEASE_REFRESH, &g), STRATA_OK);
    expect(&b, &k, &o, &s, STRATA_OK, "v1", STRATA_REMEMBER_HIT);
    assert_int_equal(atomic_load(&s.calls), 0);
    assert_int_equal(strata_lease_release(a.ls, &k, g.token), STRATA_OK);
    /* The lease free: this caller computes, and answers its value. */
    expect(&b, &k, &o, &s, STRATA_OK, "v2", STRATA_REMEMBER_COMPUTED);
    assert_int_equal(atomic_load(&s.calls), 1);
    assert_int_equal(rstats(&b).early_refreshes, 1);
    assert_int_equal(rstats(&b).stale_refreshes, 0);
    v = read_fresh(&k);
    assert_true(is(v, "v2"));
    assert_int_equal(strata_value_compute_ms(v), 300);
    assert_true(strata_value_expires_ms(v) > x); /* a new life */
    strata_value_release(v);
    /* An early refresh that fails leaves the fresh value: its caller is answered it. */
    v = read_fresh(&k);
    atomic_store(&fake_now, strata_value_expires_ms(v) - 10);
    strata_value_release(v);
    s = (simple){.value = "boom", .fail = 1};
    expect(&b, &k, &o, &s, STRATA_OK, "v2", STRATA_REMEMBER_HIT);
    assert_int_equal(atomic_load(&s.calls), 1);
    assert_int_equal(rstats(&b).early_refreshes, 2);
    assert_int_equal(rstats(&b).stale_if_error, 0);
    strata__remember_draw = NULL;
    close_inst(a);
    close_inst(b);
}

static void test_beta_below_zero_is_never_early(void **state)
{
    (void)state;
    start_clock();
    inst a = open_on(srv), b = open_on(srv);
    strata_key k = {"ns", "acme", "never", 5}, k3 = {"ns", "acme", "beta3", 5};
    strata_remember_opts o = {.ttl_ms = 10000, .beta = -1};
    simple s = {.value = "v1", .takes_ms = 500};
    expect(&a, &k, &o, &s, STRATA_OK, "v1", STRATA_REMEMBER_COMPUTED);
    strata_value *v = read_fresh(&k);
    assert_true(strata_value_beta(v) == 0.0);
    atomic_store(&fake_now, strata_value_expires_ms(v) - 1);
    strata_value_release(v);
    strata__remember_draw = forced_draw;
    forced_u = 0.001;
    expect(&b, &k, &o, &s, STRATA_OK, "v1", STRATA_REMEMBER_HIT);
    assert_int_equal(atomic_load(&s.calls), 1);
    assert_int_equal(rstats(&b).early_refreshes, 0);
    strata__remember_draw = NULL;
    /* A beta of the options' is stored with the value. */
    o.beta = 3;
    expect(&a, &k3, &o, &s, STRATA_OK, "v1", STRATA_REMEMBER_COMPUTED);
    v = read_fresh(&k3);
    assert_true(strata_value_beta(v) == 3.0);
    strata_value_release(v);
    close_inst(a);
    close_inst(b);
}

/* ---- options ----------------------------------------------------------------------------------
 */

static void ignore_answer(int status, strata_remember_answer *a, void *arg)
{
    (void)status, (void)a, (void)arg;
    fail(); /* a refused call never answers */
}

static void test_reserved_and_out_of_range_options_are_refused(void **state)
{
    (void)state;
    start_clock();
    inst a = open_on(srv);
    strata_key k = {"ns", "acme", "opts", 4};
    simple s = {.value = "v"};
    strata_remember_answer ans;
    strata_remember_opts bad[] = {
        {.reserved = {0, 1}},
        {.reserved = {1, 0}},
        {.beta = STRATA_BETA_MAX * 2},
        {.beta = NAN},
        {.grace_ms = STRATA_STALE_MAX_MS + 1},
        {.stale_if_error_ms = STRATA_STALE_MAX_MS + 1},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(strata_cache_remember(a.ls, &k, &bad[i], compute_simple, &s, &ans),
                         STRATA_EINVAL);
    struct event_base *base = event_base_new();
    strata_loop *lp;
    assert_int_equal(strata_loop_new(a.c, base, &lp), 0);
    assert_int_equal(
        strata_cache_remember_async(a.ls, lp, &k, &bad[0], compute_simple, ignore_answer, &s, &ans),
        STRATA_EINVAL);
    assert_int_equal(atomic_load(&s.calls), 0);
    assert_int_equal(sizeof(strata_remember_opts),
                     offsetof(strata_remember_opts, reserved) + 2 * sizeof(uint64_t));
    strata_loop_free(lp);
    event_base_free(base);
    close_inst(a);
}

/* ---- on a loop --------------------------------------------------------------------------------
 */

/* One remember on a loop: its answer, and its computation (arg of both callbacks). */
typedef struct async_call {
    int called, status;
    strata_remember_answer a;
    simple *s;                 /* compute_simple_on's */
    strata_remember_handle *h; /* compute_later's handle, held */
    int calls;                 /* compute_later's */
} async_call;

static void on_answer(int status, strata_remember_answer *a, void *arg)
{
    async_call *r = arg;
    r->called++, r->status = status, r->a = *a;
}

static void compute_simple_on(const strata_key *k, strata_remember_handle *h, void *arg)
{
    compute_simple(k, h, ((async_call *)arg)->s);
}

static void compute_later(const strata_key *k, strata_remember_handle *h, void *arg)
{
    (void)k;
    async_call *r = arg;
    r->calls++;
    r->h = h;
}

static void run_until(struct event_base *base, const int *flag)
{
    uint64_t t0 = rh_now_ms();
    while (*flag == 0 && rh_now_ms() - t0 < 5000)
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK), usleep(200);
    assert_true(*flag != 0);
}

/* A remember on the loop: its answer, returned or from the callback. */
static int remember_on(strata_leases *ls, strata_loop *lp, struct event_base *base,
                       const strata_key *k, const strata_remember_opts *o, strata_compute_fn fn,
                       async_call *r, strata_remember_answer *out)
{
    r->called = 0;
    int rc = strata_cache_remember_async(ls, lp, k, o, fn, on_answer, r, out);
    if (rc != STRATA_PENDING)
        return rc;
    run_until(base, &r->called);
    *out = r->a;
    return r->status;
}

static void test_async_grace_stale_if_error_and_early(void **state)
{
    (void)state;
    start_clock();
    inst a = open_on(srv), b = open_on(srv);
    struct event_base *base = event_base_new();
    strata_loop *lb;
    assert_int_equal(strata_loop_new(b.c, base, &lb), 0);
    strata_remember_answer ans;

    /* Grace: the first caller computes (its handle held), a second is answered stale. */
    strata_key k = {"ns", "acme", "agrace", 6};
    strata_remember_opts o = {.ttl_ms = 1000, .grace_ms = 60000, .lease_ms = 10000};
    simple s = {.value = "old"};
    expect(&a, &k, &o, &s, STRATA_OK, "old", STRATA_REMEMBER_COMPUTED);
    advance(2000);
    async_call first = {0}, second = {0}, call = {.s = &s};
    assert_int_equal(
        strata_cache_remember_async(b.ls, lb, &k, &o, compute_later, on_answer, &first, &ans),
        STRATA_PENDING);
    run_until(base, &first.calls);
    assert_non_null(first.h);
    int rc = remember_on(b.ls, lb, base, &k, &o, compute_later, &second, &ans);
    assert_int_equal(rc, STRATA_OK_STALE);
    assert_int_equal(ans.source, STRATA_REMEMBER_STALE);
    assert_true(is(ans.value, "old"));
    strata_value_release(ans.value);
    assert_int_equal(second.calls, 0);
    assert_int_equal(first.called, 0);
    assert_int_equal(strata_remember_done(first.h, STRATA_OK, "new", 3), 0);
    run_until(base, &first.called);
    assert_int_equal(first.status, STRATA_OK);
    assert_int_equal(first.a.source, STRATA_REMEMBER_COMPUTED);
    assert_true(is(first.a.value, "new"));
    strata_value_release(first.a.value);
    assert_int_equal(rstats(&b).stale_refreshes, 1);

    /* Stale-if-error: the computation fails at once, the copy is the answer. */
    strata_key k2 = {"ns", "acme", "asie", 4};
    strata_remember_opts o2 = {.ttl_ms = 1000, .stale_if_error_ms = 60000};
    s = (simple){.value = "old"};
    expect(&a, &k2, &o2, &s, STRATA_OK, "old", STRATA_REMEMBER_COMPUTED);
    advance(2000);
    s = (simple){.value = "boom", .fail = 1};
    rc = remember_on(b.ls, lb, base, &k2, &o2, compute_simple_on, &call, &ans);
    assert_int_equal(rc, STRATA_OK_STALE);
    assert_int_equal(ans.source, STRATA_REMEMBER_STALE);
    assert_true(is(ans.value, "old"));
    strata_value_release(ans.value);
    rc = remember_on(b.ls, lb, base, &k2, &o2, compute_simple_on, &call, &ans);
    assert_int_equal(rc, STRATA_OK_STALE); /* the kept copy, nobody computes */
    strata_value_release(ans.value);
    assert_int_equal(atomic_load(&s.calls), 1);
    assert_int_equal(rstats(&b).stale_if_error, 1);

    /* Early: a forced draw, the time measured on the fake clock. */
    strata_key k3 = {"ns", "acme", "aearly", 6};
    strata_remember_opts o3 = {.ttl_ms = 10000};
    s = (simple){.value = "v1", .takes_ms = 400};
    expect(&a, &k3, &o3, &s, STRATA_OK, "v1", STRATA_REMEMBER_COMPUTED);
    strata_value *v = read_fresh(&k3);
    atomic_store(&fake_now, strata_value_expires_ms(v) - 50);
    strata_value_release(v);
    strata__remember_draw = forced_draw;
    forced_u = 0.5;
    s = (simple){.value = "v2", .takes_ms = 250};
    rc = remember_on(b.ls, lb, base, &k3, &o3, compute_simple_on, &call, &ans);
    assert_int_equal(rc, STRATA_OK);
    assert_int_equal(ans.source, STRATA_REMEMBER_COMPUTED);
    assert_true(is(ans.value, "v2"));
    strata_value_release(ans.value);
    strata__remember_draw = NULL;
    v = read_fresh(&k3);
    assert_true(is(v, "v2"));
    assert_int_equal(strata_value_compute_ms(v), 250);
    strata_value_release(v);
    assert_int_equal(rstats(&b).early_refreshes, 1);

    strata_loop_free(lb);
    event_base_free(base);
    close_inst(a);
    close_inst(b);
}

/* ---- Redis down: each instance alone ----------------------------------------------------------
 */

static int link_down(void *arg)
{
    strata_l2_stats st;
    strata_cache_l2_stats(arg, &st);
    return !st.coherent;
}

static void test_redis_down_the_instance_decides_alone(void **state)
{
    (void)state;
    start_clock();
    rh_server *own = rh_start(NULL);
    assert_non_null(own);
    inst a = open_on(own);
    assert_int_equal(rh_kill(own), 0);
    assert_true(rh_wait_for(link_down, a.c, 5000));
    grace_crowd(&a, 1, "downgrace");
    sie_crowd(&a, 1, "downsie");
    close_inst(a);
    rh_stop(own);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grace_one_refresh_others_answered_stale_at_once),
        cmocka_unit_test(test_grace_refresh_that_fails_keeps_the_copy),
        cmocka_unit_test(test_refreshed_between_the_read_and_the_lease_is_not_computed_again),
        cmocka_unit_test(test_stale_if_error_copy_for_the_caller_its_waiters_and_the_error_ttl),
        cmocka_unit_test(test_failure_answers_a_value_written_meanwhile),
        cmocka_unit_test(test_failure_without_a_copy_is_an_error),
        cmocka_unit_test(test_xfetch_forced_draw_refreshes_early_with_the_measured_time),
        cmocka_unit_test(test_beta_below_zero_is_never_early),
        cmocka_unit_test(test_reserved_and_out_of_range_options_are_refused),
        cmocka_unit_test(test_async_grace_stale_if_error_and_early),
        cmocka_unit_test(test_redis_down_the_instance_decides_alone),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
