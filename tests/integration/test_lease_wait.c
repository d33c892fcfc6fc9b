/* test_lease_wait.c: waiting for a lease holder's value against a real redis-server, with two
 * caches as two instances on it: many callers on one cold key (threads and loops) make exactly
 * one computation and all get its value, each process asking Redis a few times, not once per
 * caller; a holder that never fills is taken over after its lease; a release wakes a taker at
 * once; a plain set wakes waiters; the wait bound holds; Redis killed mid-wait falls back to the
 * process; without the invalidation link the poll delivers. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <event2/thread.h>

#include <strata/strata.h>

#include "features/lease_internal.h"
#include "harness.h"

static rh_server *srv;

static int setup(void **state)
{
    (void)state;
    evthread_use_pthreads(); /* loops are woken from the link's thread */
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

/* Redis answers within 1 s even under a sanitizer with 400 threads: a timeout would (rightly)
 * make a lease this process's, and a second computation. */
static inst open_with(rh_server *s, int coherence, unsigned timeout_ms)
{
    strata_cache_config cfg;
    assert_int_equal(strata_cache_config_init(&cfg, NULL), 0);
    cfg.l1.max_memory = 8u << 20;
    cfg.l1.prefix = "lw";
    rh_apply(s, &cfg.redis);
    cfg.redis.socket_timeout_ms = timeout_ms;
    cfg.redis.connect_timeout_ms = 200;
    cfg.redis.breaker_failures = 2;
    cfg.redis.coherence = coherence;
    cfg.log = rh_log_quiet;
    inst i;
    assert_int_equal(strata_cache_new(&cfg, &i.c), 0);
    if (coherence)
        assert_true(rh_wait_for(rh_cache_coherent, i.c, 5000));
    assert_int_equal(strata_leases_new(i.c, &i.ls), 0);
    return i;
}

static inst open_inst(void)
{
    return open_with(srv, 1, 1000);
}

static void close_inst(inst i)
{
    strata_leases_free(i.ls);
    strata_cache_free(i.c);
}

static const char VALUE[] = "computed";

/* ---- many threads on one cold key ------------------------------------------------------------ */

typedef struct crowd {
    inst *insts;
    const strata_key *k;
    uint64_t lease_ms, wait_ms, compute_ms;
    int takeover;
    int ninst, hold_total; /* hold_total > 0: the holder fills only once hold_total - 1 callers
                              wait (or after 10 s), so every other caller is one that waited */
    pthread_barrier_t go;
    atomic_int computed, got_value, coalesced, held, other;
    atomic_uint_fast64_t longest_ms;
} crowd;

typedef struct caller {
    crowd *cr;
    inst *in;
} caller;

/* Callers waiting now, on every instance of the crowd. */
static uint64_t waiting(crowd *cr)
{
    uint64_t n = 0;
    for (int i = 0; i < cr->ninst; i++) {
        strata_lease_stats st;
        strata_leases_stats(cr->insts[i].ls, &st);
        n += st.waiting;
    }
    return n;
}

/* A caller as strata_cache_remember will be: get; on a miss, wait; the lease's holder computes
 * (sleeps) and fills. */
static void *call(void *arg)
{
    caller *me = arg;
    crowd *cr = me->cr;
    pthread_barrier_wait(&cr->go);
    uint64_t t0 = rh_now_ms();
    strata_value *v = NULL;
    int rc = strata_cache_get(me->in->c, cr->k, &v);
    if (rc == STRATA_OK || rc == STRATA_OK_L1_ONLY) {
        strata_value_release(v);
        atomic_fetch_add(&cr->got_value, 1);
        return NULL;
    }
    strata_lease_wait_opts o = {cr->lease_ms, cr->wait_ms, cr->takeover};
    strata_lease_answer a;
    rc = strata_lease_wait(me->in->ls, cr->k, &o, &a);
    uint64_t took = rh_now_ms() - t0;
    uint64_t prev = atomic_load(&cr->longest_ms);
    while (took > prev && !atomic_compare_exchange_weak(&cr->longest_ms, &prev, took))
        ;
    if (rc == STRATA_LEASED) {
        atomic_fetch_add(&cr->computed, 1);
        for (uint64_t until = rh_now_ms() + 10000; cr->hold_total > 0 &&
                                                   waiting(cr) < (uint64_t)cr->hold_total - 1 &&
                                                   rh_now_ms() < until;)
            usleep(1000);
        usleep((useconds_t)cr->compute_ms * 1000);
        strata_set_opts so = {.ttl_ms = 60000};
        int f = strata_lease_fill(me->in->ls, cr->k, a.grant.token, VALUE, sizeof VALUE, &so);
        if (f != STRATA_OK && f != STRATA_OK_L1_ONLY)
            atomic_fetch_add(&cr->other, 1);
        atomic_fetch_add(&cr->got_value, 1);
    } else if (rc == STRATA_OK) {
        if (strata_value_len(a.value) != sizeof VALUE ||
            memcmp(strata_value_data(a.value), VALUE, sizeof VALUE) != 0)
            atomic_fetch_add(&cr->other, 1);
        strata_value_release(a.value);
        atomic_fetch_add(&cr->got_value, 1);
        if (a.coalesced)
            atomic_fetch_add(&cr->coalesced, 1);
    } else if (rc == STRATA_EHELD) {
        atomic_fetch_add(&cr->held, 1);
    } else {
        if (rc != STRATA_EBUSY)
            fprintf(stderr, "unexpected %s\n", strata_err_name(rc));
        atomic_fetch_add(&cr->other, 1);
    }
    return NULL;
}

/* n threads on each of ninst instances, all released at once. */
static void run_crowd(crowd *cr, inst *insts, int ninst, int n)
{
    int total = n * ninst;
    pthread_t *th = calloc((size_t)total, sizeof *th);
    caller *cs = calloc((size_t)total, sizeof *cs);
    assert_non_null(th);
    assert_non_null(cs);
    pthread_barrier_init(&cr->go, NULL, (unsigned)total);
    for (int i = 0; i < total; i++) {
        cs[i] = (caller){cr, &insts[i % ninst]};
        assert_int_equal(pthread_create(&th[i], NULL, call, &cs[i]), 0);
    }
    for (int i = 0; i < total; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&cr->go);
    free(th);
    free(cs);
}

static uint64_t redis_asks(inst *i)
{
    strata_lease_stats st;
    strata_leases_stats(i->ls, &st);
    return st.acquired + st.held + st.present;
}

static void test_threads_on_two_instances_one_computation(void **state)
{
    (void)state;
    inst in[2] = {open_inst(), open_inst()};
    strata_key k = {"ns", "acme", "crowd", 5};
    /* The holder fills once the 399 others wait: on a slow machine (TSan) late callers would
     * otherwise find the value on their first look, and count as hits, not as coalesced. */
    crowd cr = {.insts = in,
                .ninst = 2,
                .hold_total = 400,
                .k = &k,
                .lease_ms = 20000,
                .wait_ms = 20000,
                .compute_ms = 100,
                .takeover = 1};
    run_crowd(&cr, in, 2, 200);
    assert_int_equal(atomic_load(&cr.computed), 1);
    assert_int_equal(atomic_load(&cr.got_value), 400);
    assert_int_equal(atomic_load(&cr.other), 0);
    assert_int_equal(atomic_load(&cr.held), 0);
    assert_int_equal(atomic_load(&cr.coalesced), 399);
    for (int i = 0; i < 2; i++) {
        /* One flight per process: its acquire (and one more after a change at most), not one per
         * caller. Without the flight table each of the 200 callers asks. */
        assert_true(redis_asks(&in[i]) <= 3);
        strata_lease_stats st;
        strata_leases_stats(in[i].ls, &st);
        assert_int_equal(st.flights, 0);
        assert_int_equal(st.waiting, 0);
        close_inst(in[i]);
    }
}

/* ---- many waiters on loops ------------------------------------------------------------------- */

typedef struct loop_side {
    inst *in;
    struct event_base *base;
    strata_loop *lp;
    const strata_key *k;
    int n, answered, computed, values, other;
    struct event *fill_timer;
    char token[STRATA_LEASE_TOKEN_LEN + 1];
} loop_side;

static void on_filled(int status, void *arg)
{
    loop_side *s = arg;
    if (status != STRATA_OK)
        s->other++;
    s->answered++;
    s->values++;
}

static void fill_now(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    loop_side *s = arg;
    strata_set_opts so = {.ttl_ms = 60000};
    int rc = strata_lease_fill_async(s->in->ls, s->lp, s->k, s->token, VALUE, sizeof VALUE, &so,
                                     on_filled, s);
    if (rc != STRATA_PENDING)
        on_filled(rc, s);
}

static void on_answer(int status, strata_lease_answer *a, void *arg)
{
    loop_side *s = arg;
    if (status == STRATA_LEASED) {
        s->computed++;
        memcpy(s->token, a->grant.token, sizeof s->token);
        struct timeval tv = {0, 100000}; /* computes for 100 ms, on the loop */
        s->fill_timer = evtimer_new(s->base, fill_now, s);
        evtimer_add(s->fill_timer, &tv);
        return;
    }
    if (status == STRATA_OK && strata_value_len(a->value) == sizeof VALUE)
        s->values++;
    else
        s->other++;
    strata_value_release(a->value);
    s->answered++;
}

static void *run_side(void *arg)
{
    loop_side *s = arg;
    strata_lease_wait_opts o = {10000, 10000, 1};
    for (int i = 0; i < s->n; i++) {
        strata_lease_answer a;
        int rc = strata_lease_wait_async(s->in->ls, s->lp, s->k, &o, on_answer, s, &a);
        if (rc != STRATA_PENDING)
            on_answer(rc, &a, s);
    }
    uint64_t t0 = rh_now_ms();
    while (s->answered < s->n && rh_now_ms() - t0 < 15000)
        event_base_loop(s->base, EVLOOP_ONCE);
    return NULL;
}

static void test_loops_on_two_instances_one_computation(void **state)
{
    (void)state;
    inst in[2] = {open_inst(), open_inst()};
    strata_key k = {"ns", "acme", "loops", 5};
    loop_side side[2];
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        memset(&side[i], 0, sizeof side[i]);
        side[i].in = &in[i], side[i].k = &k, side[i].n = 300;
        side[i].base = event_base_new();
        assert_int_equal(strata_loop_new(in[i].c, side[i].base, &side[i].lp), 0);
    }
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, run_side, &side[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(side[0].computed + side[1].computed, 1);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(side[i].answered, 300);
        assert_int_equal(side[i].values, 300);
        assert_int_equal(side[i].other, 0);
        assert_true(redis_asks(&in[i]) <= 3);
        if (side[i].fill_timer != NULL)
            event_free(side[i].fill_timer);
        strata_loop_free(side[i].lp);
        event_base_free(side[i].base);
        close_inst(in[i]);
    }
}

/* ---- the holder dies, releases, or someone writes -------------------------------------------- */

static void test_dead_holder_is_taken_over_after_its_lease(void **state)
{
    (void)state;
    inst a = open_inst(), b = open_inst();
    strata_key k = {"ns", "acme", "dead", 4};
    strata_lease_grant g;
    assert_int_equal(strata_lease_acquire(a.ls, &k, 400, STRATA_LEASE_MISS, &g), STRATA_OK);
    uint64_t t0 = rh_now_ms();
    /* A never fills (it "died"); B's callers wait with takeover. */
    crowd cr = {.k = &k, .lease_ms = 10000, .wait_ms = 3000, .compute_ms = 20, .takeover = 1};
    inst bs[1] = {b};
    run_crowd(&cr, bs, 1, 20);
    uint64_t took = rh_now_ms() - t0;
    assert_int_equal(atomic_load(&cr.computed), 1);
    assert_int_equal(atomic_load(&cr.got_value), 20);
    assert_int_equal(atomic_load(&cr.other), 0);
    assert_true(took >= 350); /* not before the lease ran out */
    assert_true(took < 2000); /* at its end (a timer), not at the wait's end */
    strata_lease_stats st;
    strata_leases_stats(b.ls, &st);
    assert_int_equal(st.takeovers, 1);
    assert_int_equal(strata_lease_fill(a.ls, &k, g.token, "late", 4, NULL), STRATA_ENOTHOLDER);
    close_inst(a);
    close_inst(b);
}

typedef struct later {
    inst *in;
    const strata_key *k;
    const char *token;
    int ms, what; /* 0: release the lease; 1: a plain set */
} later;

static void *do_later(void *arg)
{
    later *l = arg;
    usleep((useconds_t)l->ms * 1000);
    if (l->what == 0)
        assert_int_equal(strata_lease_release(l->in->ls, l->k, l->token), STRATA_OK);
    else
        assert_int_equal(strata_cache_set(l->in->c, l->k, VALUE, sizeof VALUE, NULL), STRATA_OK);
    return NULL;
}

static void test_release_wakes_a_taker_at_once(void **state)
{
    (void)state;
    inst a = open_inst(), b = open_inst();
    strata_key k = {"ns", "acme", "released", 8};
    strata_lease_grant g;
    assert_int_equal(strata_lease_acquire(a.ls, &k, 30000, STRATA_LEASE_MISS, &g), STRATA_OK);
    later l = {&a, &k, g.token, 150, 0};
    pthread_t th;
    uint64_t t0 = rh_now_ms();
    assert_int_equal(pthread_create(&th, NULL, do_later, &l), 0);
    crowd cr = {.k = &k, .lease_ms = 10000, .wait_ms = 10000, .compute_ms = 20, .takeover = 1};
    inst bs[1] = {b};
    run_crowd(&cr, bs, 1, 10);
    pthread_join(th, NULL);
    uint64_t took = rh_now_ms() - t0;
    assert_int_equal(atomic_load(&cr.computed), 1);
    assert_int_equal(atomic_load(&cr.got_value), 10);
    assert_true(took >= 140);
    assert_true(took < 2000); /* long before the 30 s lease's end */
    close_inst(a);
    close_inst(b);
}

static void test_plain_set_wakes_waiters(void **state)
{
    (void)state;
    inst a = open_inst(), b = open_inst();
    strata_key k = {"ns", "acme", "plainset", 8};
    strata_lease_grant g;
    assert_int_equal(strata_lease_acquire(a.ls, &k, 30000, STRATA_LEASE_MISS, &g), STRATA_OK);
    later l = {&a, &k, NULL, 150, 1};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, do_later, &l), 0);
    crowd cr = {.k = &k, .lease_ms = 10000, .wait_ms = 10000, .compute_ms = 0, .takeover = 0};
    inst bs[1] = {b};
    run_crowd(&cr, bs, 1, 10);
    pthread_join(th, NULL);
    assert_int_equal(atomic_load(&cr.computed), 0);
    assert_int_equal(atomic_load(&cr.got_value), 10);
    assert_int_equal(atomic_load(&cr.other), 0);
    assert_true(atomic_load(&cr.longest_ms) < 2000);
    close_inst(a);
    close_inst(b);
}

static void test_wait_bound_holds(void **state)
{
    (void)state;
    inst a = open_inst(), b = open_inst();
    strata_key k = {"ns", "acme", "bound", 5};
    strata_lease_grant g;
    assert_int_equal(strata_lease_acquire(a.ls, &k, 30000, STRATA_LEASE_MISS, &g), STRATA_OK);
    for (int takeover = 0; takeover < 2; takeover++) {
        crowd cr = {.k = &k, .lease_ms = 10000, .wait_ms = 300, .takeover = takeover};
        inst bs[1] = {b};
        run_crowd(&cr, bs, 1, 10);
        assert_int_equal(atomic_load(&cr.held), 10);
        assert_true(atomic_load(&cr.longest_ms) >= 290);
        assert_true(atomic_load(&cr.longest_ms) < 800);
    }
    strata_lease_wait_opts o = {10000, 100, 1};
    strata_lease_answer ans;
    assert_int_equal(strata_lease_wait(b.ls, &k, &o, &ans), STRATA_EHELD);
    assert_true(ans.grant.held_ms > 25000);
    strata_lease_stats st;
    strata_leases_stats(b.ls, &st);
    assert_int_equal(st.timeouts, 21);
    assert_int_equal(st.waits, 21);
    o.lease_ms = 0;
    assert_int_equal(strata_lease_wait(b.ls, &k, &o, &ans), STRATA_EINVAL);
    close_inst(a);
    close_inst(b);
}

/* ---- Redis killed, the link down ------------------------------------------------------------- */

typedef struct killer {
    rh_server *s;
    int ms;
} killer;

static void *kill_later(void *arg)
{
    killer *k = arg;
    usleep((useconds_t)k->ms * 1000);
    rh_kill(k->s);
    return NULL;
}

static void test_redis_killed_mid_wait_falls_back_to_the_process(void **state)
{
    (void)state;
    rh_server *own = rh_start((const char *const[]){"--loglevel", "warning", NULL});
    assert_non_null(own);
    inst a = open_with(own, 1, 200), b = open_with(own, 1, 200);
    strata_key k = {"ns", "acme", "killed", 6};
    strata_lease_grant g;
    assert_int_equal(strata_lease_acquire(a.ls, &k, 30000, STRATA_LEASE_MISS, &g), STRATA_OK);
    killer kl = {own, 150};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, kill_later, &kl), 0);
    crowd cr = {.k = &k, .lease_ms = 10000, .wait_ms = 5000, .compute_ms = 20, .takeover = 1};
    inst bs[1] = {b};
    run_crowd(&cr, bs, 1, 20);
    pthread_join(th, NULL);
    /* One of B's callers computes for B (single flight per instance), the rest get its value;
     * nobody gets an error or waits to the end. */
    assert_int_equal(atomic_load(&cr.computed), 1);
    assert_int_equal(atomic_load(&cr.got_value), 20);
    assert_int_equal(atomic_load(&cr.other), 0);
    assert_true(atomic_load(&cr.longest_ms) < 4000);
    close_inst(a);
    close_inst(b);
    rh_stop(own);
}

static void test_without_the_link_the_poll_delivers(void **state)
{
    (void)state;
    inst a = open_inst(), b = open_with(srv, 0, 1000); /* b has no invalidation link */
    strata_key k = {"ns", "acme", "polled", 6};
    strata_lease_grant g;
    assert_int_equal(strata_lease_acquire(a.ls, &k, 30000, STRATA_LEASE_MISS, &g), STRATA_OK);
    later l = {&a, &k, NULL, 300, 1};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, do_later, &l), 0);
    crowd cr = {.k = &k, .lease_ms = 10000, .wait_ms = 5000, .takeover = 1};
    inst bs[1] = {b};
    run_crowd(&cr, bs, 1, 10);
    pthread_join(th, NULL);
    assert_int_equal(atomic_load(&cr.computed), 0);
    assert_int_equal(atomic_load(&cr.got_value), 10);
    /* 50, 100, 200, 400 ms gaps: seen by 50 + 100 + 200 + 400 = 750 ms at the latest. */
    assert_true(atomic_load(&cr.longest_ms) < 2000);
    close_inst(a);
    close_inst(b);
}

/* The link killed under the waiters (CLIENT KILL TYPE pubsub): it comes back and says so, every
 * flight looks again, and a fill made while it was away is not lost. */
static void *kill_link_then_fill(void *arg)
{
    later *l = arg;
    usleep(100000);
    freeReplyObject(rh_command(srv, "CLIENT KILL TYPE pubsub"));
    strata_set_opts so = {.ttl_ms = 60000};
    assert_int_equal(strata_lease_fill(l->in->ls, l->k, l->token, VALUE, sizeof VALUE, &so),
                     STRATA_OK);
    return NULL;
}

static void test_link_killed_mid_wait_still_delivers(void **state)
{
    (void)state;
    inst a = open_inst(), b = open_inst();
    strata_key k = {"ns", "acme", "linkkill", 8};
    strata_lease_grant g;
    assert_int_equal(strata_lease_acquire(a.ls, &k, 30000, STRATA_LEASE_MISS, &g), STRATA_OK);
    later l = {&a, &k, g.token, 0, 0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, kill_link_then_fill, &l), 0);
    crowd cr = {.k = &k, .lease_ms = 10000, .wait_ms = 5000, .takeover = 0};
    inst bs[1] = {b};
    run_crowd(&cr, bs, 1, 10);
    pthread_join(th, NULL);
    assert_int_equal(atomic_load(&cr.got_value), 10);
    assert_true(atomic_load(&cr.longest_ms) < 3000);
    close_inst(a);
    close_inst(b);
}

/* ---- without Redis ----------------------------------------------------------------------------
 */

static inst open_memory_only(void)
{
    strata_cache_config cfg;
    assert_int_equal(strata_cache_config_init(&cfg, NULL), 0);
    cfg.l1.max_memory = 8u << 20;
    cfg.l1.prefix = "lw";
    cfg.redis.url = NULL;
    inst i;
    assert_int_equal(strata_cache_new(&cfg, &i.c), 0);
    assert_int_equal(strata_leases_new(i.c, &i.ls), 0);
    return i;
}

/* No Redis: the same table makes one flight per process, and the local fill wakes the waiters
 * at once (before the first poll would: the holder computes 20 ms, the first poll is at 50). */
static void test_without_redis_single_flight_woken_by_the_fill(void **state)
{
    (void)state;
    inst m = open_memory_only();
    strata_key k = {"ns", "acme", "local", 5};
    crowd cr = {.k = &k, .lease_ms = 10000, .wait_ms = 5000, .compute_ms = 20, .takeover = 1};
    inst ms[1] = {m};
    run_crowd(&cr, ms, 1, 50);
    assert_int_equal(atomic_load(&cr.computed), 1);
    assert_int_equal(atomic_load(&cr.got_value), 50);
    assert_int_equal(atomic_load(&cr.other), 0);
    strata_lease_stats st;
    strata_leases_stats(m.ls, &st);
    assert_int_equal(st.acquired, 1); /* the local table's, asked once */
    assert_int_equal(st.local_held, 0);
    close_inst(m);
}

/* Past the bound of waiters a wait is refused at once with STRATA_EBUSY. */
static void test_too_many_waiters_are_refused(void **state)
{
    (void)state;
    inst a = open_inst(), b = open_inst();
    assert_int_equal(strata__leases_flight_max(b.ls, 2, 4), 0);
    strata_key k = {"ns", "acme", "many", 4};
    strata_lease_grant g;
    assert_int_equal(strata_lease_acquire(a.ls, &k, 30000, STRATA_LEASE_MISS, &g), STRATA_OK);
    crowd cr = {.k = &k, .lease_ms = 10000, .wait_ms = 300, .takeover = 0};
    inst bs[1] = {b};
    run_crowd(&cr, bs, 1, 10);
    assert_int_equal(atomic_load(&cr.held), 4);
    assert_int_equal(atomic_load(&cr.other), 6); /* STRATA_EBUSY */
    strata_lease_stats st;
    strata_leases_stats(b.ls, &st);
    assert_int_equal(st.wait_busy, 6);
    close_inst(a);
    close_inst(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads_on_two_instances_one_computation),
        cmocka_unit_test(test_loops_on_two_instances_one_computation),
        cmocka_unit_test(test_dead_holder_is_taken_over_after_its_lease),
        cmocka_unit_test(test_release_wakes_a_taker_at_once),
        cmocka_unit_test(test_plain_set_wakes_waiters),
        cmocka_unit_test(test_wait_bound_holds),
        cmocka_unit_test(test_redis_killed_mid_wait_falls_back_to_the_process),
        cmocka_unit_test(test_without_the_link_the_poll_delivers),
        cmocka_unit_test(test_link_killed_mid_wait_still_delivers),
        cmocka_unit_test(test_without_redis_single_flight_woken_by_the_fill),
        cmocka_unit_test(test_too_many_waiters_are_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
