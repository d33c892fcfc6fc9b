/* test_remember.c: strata_cache_remember (sync and on loops) against a real redis-server, with two
 * caches as two instances on it: a thousand callers on a cold key, threads and loop callers, make
 * exactly one computation and all get its value; a holder whose computation never completes (a
 * handle never completed; a process SIGKILLed mid-computation) is taken over after its lease,
 * nobody waiting past the bound; a failing computation is stored for the namespace's error TTL
 * and answered to everyone as an error without computing again; Redis killed mid-wait falls back
 * to the process; waiters that chose "not available" answer STRATA_EHELD at their bound; a
 * computation that gives up releases the lease; without Redis, one computation per process. */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <event2/thread.h>

#include <strata/strata.h>

#include "harness.h"

static rh_server *srv;

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

/* Redis answers within 1 s even under a sanitizer with 500 threads: a timeout would (rightly)
 * make a lease this process's, and a second computation. */
static inst open_with(rh_server *s, unsigned timeout_ms)
{
    strata_cache_config cfg;
    assert_int_equal(strata_cache_config_init(&cfg, NULL), 0);
    cfg.l1.max_memory = 8u << 20;
    cfg.l1.prefix = "rm";
    if (s != NULL)
        rh_apply(s, &cfg.redis);
    cfg.redis.socket_timeout_ms = timeout_ms;
    cfg.redis.connect_timeout_ms = 200;
    cfg.redis.breaker_failures = 2;
    cfg.log = rh_log_quiet;
    inst i;
    assert_int_equal(strata_cache_new(&cfg, &i.c), 0);
    if (s != NULL)
        assert_true(rh_wait_for(rh_cache_coherent, i.c, 5000));
    assert_int_equal(strata_leases_new(i.c, &i.ls), 0);
    return i;
}

static inst open_inst(void)
{
    return open_with(srv, 1000);
}

static void close_inst(inst i)
{
    strata_leases_free(i.ls);
    strata_cache_free(i.c);
}

static strata_remember_stats rstats(inst *i)
{
    strata_remember_stats st;
    strata_leases_remember_stats(i->ls, &st);
    return st;
}

static const char VALUE[] = "computed";
static const char ERR[] = "backend down";

/* ---- a crowd of callers: threads, and callers on loops ----------------------------------------
 */

typedef struct crowd {
    const strata_key *k;
    strata_remember_opts o;
    int compute_ms;
    int fail;     /* the computation completes with STRATA_OK_ERROR */
    int nthreads; /* synchronous callers per instance */
    int nloop;    /* callers on each instance's loop */
    pthread_barrier_t go;
    atomic_int computations, ok, ok_error, held, other;
    atomic_uint_fast64_t first_compute_ms; /* rh_now_ms() of the first computation (0: none) */
    atomic_uint_fast64_t longest_ms;
} crowd;

static void note_took(crowd *cr, uint64_t t0)
{
    uint64_t took = rh_now_ms() - t0, prev = atomic_load(&cr->longest_ms);
    while (took > prev && !atomic_compare_exchange_weak(&cr->longest_ms, &prev, took))
        ;
}

static void note_compute(crowd *cr)
{
    atomic_fetch_add(&cr->computations, 1);
    uint64_t zero = 0;
    atomic_compare_exchange_strong(&cr->first_compute_ms, &zero, rh_now_ms());
}

static void complete(crowd *cr, strata_remember_handle *h)
{
    int rc = cr->fail ? strata_remember_done(h, STRATA_OK_ERROR, ERR, sizeof ERR)
                      : strata_remember_done(h, STRATA_OK, VALUE, sizeof VALUE);
    assert_int_equal(rc, 0);
}

/* Counts an answer: the value (or the error result, flagged) with the right status. */
static void judge(crowd *cr, int status, strata_remember_answer *a)
{
    const char *want = status == STRATA_OK_ERROR ? ERR : VALUE;
    size_t wlen = status == STRATA_OK_ERROR ? sizeof ERR : sizeof VALUE;
    if (status == STRATA_OK || status == STRATA_OK_ERROR) {
        int flagged = (strata_value_flags(a->value) & STRATA_VALUE_ERROR) != 0;
        if (strata_value_len(a->value) != wlen ||
            memcmp(strata_value_data(a->value), want, wlen) != 0 ||
            flagged != (status == STRATA_OK_ERROR))
            atomic_fetch_add(&cr->other, 1);
        else
            atomic_fetch_add(status == STRATA_OK ? &cr->ok : &cr->ok_error, 1);
        strata_value_release(a->value);
    } else if (status == STRATA_EHELD) {
        atomic_fetch_add(&cr->held, 1);
    } else {
        fprintf(stderr, "unexpected %s\n", strata_err_name(status));
        atomic_fetch_add(&cr->other, 1);
    }
}

static void compute_sync(const strata_key *k, strata_remember_handle *h, void *arg)
{
    (void)k;
    crowd *cr = arg;
    note_compute(cr);
    usleep((useconds_t)cr->compute_ms * 1000);
    complete(cr, h);
}

typedef struct caller {
    crowd *cr;
    inst *in;
} caller;

static void *call_sync(void *arg)
{
    caller *me = arg;
    crowd *cr = me->cr;
    pthread_barrier_wait(&cr->go);
    uint64_t t0 = rh_now_ms();
    strata_remember_answer a;
    int rc = strata_cache_remember(me->in->ls, cr->k, &cr->o, compute_sync, cr, &a);
    note_took(cr, t0);
    judge(cr, rc, &a);
    return NULL;
}

/* One instance's loop, its callers, and the computation it may be given (on a timer: the
 * loop never blocks while it computes). */
typedef struct loop_side {
    crowd *cr;
    inst *in;
    struct event_base *base;
    strata_loop *lp;
    int answered, callbacks_in_call;
    uint64_t t0;
    struct event *timer;
    strata_remember_handle *h; /* the computation under way */
} loop_side;

static void on_answer(int status, strata_remember_answer *a, void *arg)
{
    loop_side *s = arg;
    note_took(s->cr, s->t0);
    judge(s->cr, status, a);
    s->answered++;
}

static void finish_compute(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    loop_side *s = arg;
    strata_remember_handle *h = s->h;
    s->h = NULL;
    complete(s->cr, h);
}

static void compute_async(const strata_key *k, strata_remember_handle *h, void *arg)
{
    (void)k;
    loop_side *s = arg;
    note_compute(s->cr);
    s->h = h;
    struct timeval tv = {0, s->cr->compute_ms * 1000};
    evtimer_add(s->timer, &tv);
}

static void *run_loop(void *arg)
{
    loop_side *s = arg;
    crowd *cr = s->cr;
    pthread_barrier_wait(&cr->go);
    s->t0 = rh_now_ms();
    for (int i = 0; i < cr->nloop; i++) {
        strata_remember_answer a;
        int rc = strata_cache_remember_async(s->in->ls, s->lp, cr->k, &cr->o, compute_async,
                                             on_answer, s, &a);
        if (rc != STRATA_PENDING)
            on_answer(rc, &a, s);
    }
    uint64_t t0 = rh_now_ms();
    while (s->answered < cr->nloop && rh_now_ms() - t0 < 15000)
        event_base_loop(s->base, EVLOOP_ONCE);
    return NULL;
}

/* cr->nthreads threads and cr->nloop loop callers on each of ninst instances, all at once. */
static void run_crowd(crowd *cr, inst *insts, int ninst)
{
    int nth = cr->nthreads * ninst, nloops = cr->nloop > 0 ? ninst : 0;
    pthread_t *th = calloc((size_t)(nth + nloops), sizeof *th);
    caller *cs = calloc((size_t)nth + 1, sizeof *cs);
    loop_side *sides = calloc((size_t)ninst, sizeof *sides);
    assert_non_null(th);
    assert_non_null(cs);
    assert_non_null(sides);
    pthread_barrier_init(&cr->go, NULL, (unsigned)(nth + nloops));
    for (int i = 0; i < nloops; i++) {
        loop_side *s = &sides[i];
        s->cr = cr, s->in = &insts[i];
        assert_non_null(s->base = event_base_new());
        assert_int_equal(strata_loop_new(insts[i].c, s->base, &s->lp), 0);
        assert_non_null(s->timer = evtimer_new(s->base, finish_compute, s));
        assert_int_equal(pthread_create(&th[nth + i], NULL, run_loop, s), 0);
    }
    for (int i = 0; i < nth; i++) {
        cs[i] = (caller){cr, &insts[i % ninst]};
        assert_int_equal(pthread_create(&th[i], NULL, call_sync, &cs[i]), 0);
    }
    for (int i = 0; i < nth + nloops; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < nloops; i++) {
        assert_int_equal(sides[i].answered, cr->nloop);
        assert_null(sides[i].h);
        event_free(sides[i].timer);
        strata_loop_free(sides[i].lp);
        event_base_free(sides[i].base);
    }
    pthread_barrier_destroy(&cr->go);
    free(th);
    free(cs);
    free(sides);
}

static int answered(crowd *cr)
{
    return atomic_load(&cr->ok) + atomic_load(&cr->ok_error) + atomic_load(&cr->held) +
           atomic_load(&cr->other);
}

/* ---- a thousand callers ------------------------------------------------------------------------
 */

static void test_thousand_callers_on_two_instances_one_computation(void **state)
{
    (void)state;
    inst in[2] = {open_inst(), open_inst()};
    strata_key k = {"ns", "acme", "thousand", 8};
    crowd cr = {.k = &k,
                .o = {.ttl_ms = 60000, .lease_ms = 10000, .wait_ms = 10000},
                .compute_ms = 300,
                .nthreads = 250,
                .nloop = 250};
    run_crowd(&cr, in, 2);
    assert_int_equal(atomic_load(&cr.computations), 1);
    assert_int_equal(atomic_load(&cr.ok), 1000);
    assert_int_equal(answered(&cr), 1000);
    strata_remember_stats a = rstats(&in[0]), b = rstats(&in[1]);
    assert_int_equal(a.calls + b.calls, 1000);
    assert_int_equal(a.computations + b.computations, 1);
    assert_int_equal(a.fill_refused + b.fill_refused + a.fill_failed + b.fill_failed, 0);
    /* Everyone but the one that computed had it from a wait, or from a read after the fill:
     * how many of each depends on the scheduling (under a sanitizer, 250 threads of an instance
     * share its 8 pool connections, and many first reads come after the fill). */
    assert_int_equal(a.coalesced + b.coalesced + a.hits + b.hits, 999);
    /* How the 999 split between reads and coalesced answers, and between the two instances,
     * is the scheduler's (under TSan from 445 to 922 coalesced): only that some waited is not. */
    assert_true(a.coalesced + b.coalesced > 0);
    /* It is stored: the next caller reads it. */
    strata_remember_answer ans;
    assert_int_equal(strata_cache_remember(in[1].ls, &k, NULL, compute_sync, &cr, &ans), STRATA_OK);
    assert_int_equal(ans.source, STRATA_REMEMBER_HIT);
    assert_memory_equal(strata_value_data(ans.value), VALUE, sizeof VALUE);
    strata_value_release(ans.value);
    assert_int_equal(atomic_load(&cr.computations), 1);
    close_inst(in[0]);
    close_inst(in[1]);
}

/* ---- the holder never completes ---------------------------------------------------------------
 */

typedef struct stuck {
    strata_remember_handle *h;
    int status, called;
    strata_remember_answer a;
} stuck;

static void never_completes(const strata_key *k, strata_remember_handle *h, void *arg)
{
    (void)k;
    ((stuck *)arg)->h = h;
}

static void stuck_answer(int status, strata_remember_answer *a, void *arg)
{
    stuck *s = arg;
    s->status = status, s->a = *a, s->called++;
}

/* A's computation (a loop's handle) never completes; B's callers take over after A's lease, not
 * at the end of their wait. A's late completion is refused by the fill, yet A's caller gets the
 * value it computed. */
static void test_handle_never_completed_is_taken_over_after_its_lease(void **state)
{
    (void)state;
    inst a = open_inst(), b = open_inst();
    strata_key k = {"ns", "acme", "stuck", 5};
    struct event_base *base = event_base_new();
    strata_loop *lp;
    assert_int_equal(strata_loop_new(a.c, base, &lp), 0);
    stuck st = {0};
    strata_remember_opts o = {.lease_ms = 400};
    strata_remember_answer ans;
    assert_int_equal(
        strata_cache_remember_async(a.ls, lp, &k, &o, never_completes, stuck_answer, &st, &ans),
        STRATA_PENDING);
    uint64_t t0 = rh_now_ms();
    while (st.h == NULL && rh_now_ms() - t0 < 5000)
        event_base_loop(base, EVLOOP_ONCE);
    assert_non_null(st.h);
    t0 = rh_now_ms();
    crowd cr = {.k = &k,
                .o = {.ttl_ms = 60000, .lease_ms = 10000, .wait_ms = 3000},
                .compute_ms = 20,
                .nthreads = 20};
    run_crowd(&cr, &b, 1);
    uint64_t took = rh_now_ms() - t0;
    assert_int_equal(atomic_load(&cr.computations), 1);
    assert_int_equal(atomic_load(&cr.ok), 20);
    assert_true(took >= 350); /* not before A's lease ran out */
    assert_true(took < 2000); /* at its end, not at the wait's end */
    assert_true(atomic_load(&cr.longest_ms) < 3000);
    strata_lease_stats ls;
    strata_leases_stats(b.ls, &ls);
    assert_int_equal(ls.takeovers, 1);

    /* A completes at last: its fill is refused (B's caller holds the value now), and A's caller
     * is answered what A computed, from the loop (not from inside strata_remember_done). */
    assert_int_equal(strata_remember_done(st.h, STRATA_OK, "late", 4), 0);
    assert_int_equal(st.called, 0);
    t0 = rh_now_ms();
    while (st.called == 0 && rh_now_ms() - t0 < 5000)
        event_base_loop(base, EVLOOP_ONCE);
    assert_int_equal(st.called, 1);
    assert_int_equal(st.status, STRATA_OK);
    assert_int_equal(st.a.source, STRATA_REMEMBER_COMPUTED);
    assert_memory_equal(strata_value_data(st.a.value), "late", 4);
    strata_value_release(st.a.value);
    assert_int_equal(rstats(&a).fill_refused, 1);
    strata_value *v;
    assert_int_equal(strata_cache_get(b.c, &k, &v), STRATA_OK); /* B's value stands */
    assert_memory_equal(strata_value_data(v), VALUE, sizeof VALUE);
    strata_value_release(v);
    assert_int_equal(strata_remember_done(NULL, STRATA_OK, "", 0), STRATA_EINVAL);
    strata_loop_free(lp);
    event_base_free(base);
    close_inst(a);
    close_inst(b);
}

/* ---- the holder's process killed ------------------------------------------------------------ */

/* The child (this binary run as "child TARGET CA KEY LEASE_MS", TARGET the parent's rh_apply
 * settings: the URL, or the cluster's seeds under the cluster topology; CA "-" for none):
 * remembers KEY; its computation says so on stdout, then never ends (the parent SIGKILLs it). */
static void computes_forever(const strata_key *k, strata_remember_handle *h, void *arg)
{
    (void)k, (void)h, (void)arg;
    if (write(STDOUT_FILENO, "L", 1) != 1)
        _exit(3);
    for (;;)
        pause();
}

static int child_main(const char *target, const char *ca, const char *key, const char *lease_ms)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    strata_cache_config cfg;
    if (strata_cache_config_init(&cfg, NULL) != 0)
        return 2;
    cfg.l1.prefix = "rm";
    if (rh_topology() == RH_CLUSTER)
        cfg.redis.cluster = target;
    else
        cfg.redis.url = target;
    if (strcmp(ca, "-") != 0)
        cfg.redis.tls_ca_cert = ca;
    cfg.log = rh_log_quiet;
    strata_cache *c;
    strata_leases *ls;
    if (strata_cache_new(&cfg, &c) != 0 || strata_leases_new(c, &ls) != 0)
        return 2;
    if (!rh_wait_for(rh_cache_coherent, c, 5000))
        return 2;
    strata_key k = {"ns", "acme", key, strlen(key)};
    strata_remember_opts o = {.lease_ms = strtoull(lease_ms, NULL, 10)};
    strata_remember_answer a;
    strata_cache_remember(ls, &k, &o, computes_forever, NULL, &a);
    return 4; /* never here */
}

static const char *self_exe;

static void test_holder_process_killed_is_taken_over(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    strata_redis_config to = {0};
    rh_apply(srv, &to);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        execl(self_exe, self_exe, "child", to.url ? to.url : to.cluster,
              to.tls_ca_cert ? to.tls_ca_cert : "-", "killed", "600", (char *)NULL);
        _exit(5);
    }
    close(fds[1]);
    char c = 0;
    ssize_t n = read(fds[0], &c, 1); /* the child holds the lease and computes */
    close(fds[0]);
    assert_int_equal(n, 1);
    uint64_t leased_at = rh_now_ms();
    kill(pid, SIGKILL);
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFSIGNALED(ws));
    strata_key k = {"ns", "acme", "killed", 6};
    /* Its lease is in Redis, still held. */
    redisReply *r = rh_command(srv, "KEYS rm!lease:*killed*");
    assert_non_null(r);
    assert_int_equal(r->elements, 1);
    freeReplyObject(r);
    inst in[2] = {open_inst(), open_inst()};
    crowd cr = {.k = &k,
                .o = {.ttl_ms = 60000, .lease_ms = 10000, .wait_ms = 3000},
                .compute_ms = 20,
                .nthreads = 10,
                .nloop = 10};
    uint64_t t0 = rh_now_ms();
    run_crowd(&cr, in, 2);
    assert_int_equal(atomic_load(&cr.computations), 1);
    assert_int_equal(atomic_load(&cr.ok), 40);
    /* Computed once the dead holder's 600 ms lease had run out, not before, not at the bound. */
    assert_true(atomic_load(&cr.first_compute_ms) >= leased_at + 550);
    assert_true(atomic_load(&cr.first_compute_ms) < leased_at + 2000);
    assert_true(rh_now_ms() - t0 < 3000); /* nobody waited past the bound */
    close_inst(in[0]);
    close_inst(in[1]);
}

/* ---- a failing computation --------------------------------------------------------------------
 */

static void set_error_ttl(inst *i, uint64_t ms)
{
    strata_ns_config nc;
    strata_ns_config_init(&nc);
    nc.error_ttl_ms = ms;
    nc.jitter = 0;
    assert_int_equal(strata_l1_ns_configure(strata_cache_l1(i->c), "ns", &nc), 0);
}

static void test_failure_is_cached_for_the_error_ttl(void **state)
{
    (void)state;
    inst in[2] = {open_inst(), open_inst()};
    set_error_ttl(&in[0], 800);
    set_error_ttl(&in[1], 800);
    strata_key k = {"ns", "acme", "failing", 7};
    crowd cr = {.k = &k,
                .o = {.ttl_ms = 60000, .lease_ms = 10000, .wait_ms = 5000},
                .compute_ms = 50,
                .fail = 1,
                .nthreads = 20,
                .nloop = 20};
    run_crowd(&cr, in, 2);
    uint64_t stored_at = rh_now_ms();
    assert_int_equal(atomic_load(&cr.computations), 1);
    assert_int_equal(atomic_load(&cr.ok_error), 80); /* everyone: the error, flagged */
    assert_int_equal(answered(&cr), 80);
    /* In Redis for the error TTL, not the 60 s asked for. */
    redisReply *r = rh_command(srv, "PTTL rm:ns:acme:failing");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    assert_true(r->integer > 0 && r->integer <= 800);
    freeReplyObject(r);
    strata_remember_stats a = rstats(&in[0]), b = rstats(&in[1]);
    assert_int_equal(a.failures + b.failures, 1);
    assert_int_equal(a.negative_hits + b.negative_hits, 79);
    /* Later callers get it as well, without computing: negative hits. */
    cr.fail = 0;
    for (int i = 0; i < 2; i++) {
        strata_remember_answer ans;
        assert_int_equal(strata_cache_remember(in[i].ls, &k, NULL, compute_sync, &cr, &ans),
                         STRATA_OK_ERROR);
        assert_int_equal(ans.source, STRATA_REMEMBER_HIT);
        assert_memory_equal(strata_value_data(ans.value), ERR, sizeof ERR);
        strata_value_release(ans.value);
    }
    assert_int_equal(atomic_load(&cr.computations), 1);
    assert_int_equal(rstats(&in[0]).negative_hits + rstats(&in[1]).negative_hits, 81);
    /* After the error TTL the next caller computes again (and succeeds). */
    while (rh_now_ms() - stored_at < 900)
        usleep(20000);
    strata_remember_answer ans;
    assert_int_equal(strata_cache_remember(in[1].ls, &k, NULL, compute_sync, &cr, &ans), STRATA_OK);
    assert_int_equal(ans.source, STRATA_REMEMBER_COMPUTED);
    assert_memory_equal(strata_value_data(ans.value), VALUE, sizeof VALUE);
    strata_value_release(ans.value);
    assert_int_equal(atomic_load(&cr.computations), 2);
    close_inst(in[0]);
    close_inst(in[1]);
}

/* ---- Redis killed mid-wait --------------------------------------------------------------------
 */

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

static void test_redis_killed_mid_wait_single_flight_per_process(void **state)
{
    (void)state;
    rh_server *own = rh_start((const char *const[]){"--loglevel", "warning", NULL});
    assert_non_null(own);
    inst a = open_with(own, 200), b = open_with(own, 200);
    strata_key k = {"ns", "acme", "rkilled", 7};
    strata_lease_grant g; /* A holds the lease and never fills */
    assert_int_equal(strata_lease_acquire(a.ls, &k, 30000, STRATA_LEASE_MISS, &g), STRATA_OK);
    killer kl = {own, 150};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, kill_later, &kl), 0);
    crowd cr = {.k = &k,
                .o = {.lease_ms = 10000, .wait_ms = 5000},
                .compute_ms = 20,
                .nthreads = 20,
                .nloop = 20};
    run_crowd(&cr, &b, 1);
    pthread_join(th, NULL);
    /* One computation for B (single flight per instance); everyone has the value, no errors. */
    assert_int_equal(atomic_load(&cr.computations), 1);
    assert_int_equal(atomic_load(&cr.ok), 40);
    assert_true(atomic_load(&cr.longest_ms) < 4000);
    /* With Redis gone, a second key: still one computation in the process. */
    strata_key k2 = {"ns", "acme", "rdead", 5};
    crowd c2 = {.k = &k2, .o = {.lease_ms = 10000}, .compute_ms = 20, .nthreads = 20, .nloop = 20};
    run_crowd(&c2, &b, 1);
    assert_int_equal(atomic_load(&c2.computations), 1);
    assert_int_equal(atomic_load(&c2.ok), 40);
    close_inst(a);
    close_inst(b);
    rh_stop(own);
}

/* ---- waiters that chose "not available" -------------------------------------------------------
 */

static void test_not_available_at_the_bound_without_takeover(void **state)
{
    (void)state;
    inst a = open_inst(), b = open_inst();
    strata_key k = {"ns", "acme", "navail", 6};
    strata_lease_grant g; /* a holder that never fills: its lease ends within the wait */
    assert_int_equal(strata_lease_acquire(a.ls, &k, 300, STRATA_LEASE_MISS, &g), STRATA_OK);
    crowd cr = {.k = &k,
                .o = {.lease_ms = 10000, .wait_ms = 800, .wait_end = STRATA_REMEMBER_NOT_AVAILABLE},
                .nthreads = 10,
                .nloop = 10};
    run_crowd(&cr, &b, 1);
    /* Nobody took the lease over when it ended: each waited to its bound, then "not available". */
    assert_int_equal(atomic_load(&cr.computations), 0);
    assert_int_equal(atomic_load(&cr.held), 20);
    assert_true(atomic_load(&cr.longest_ms) >= 790);
    assert_true(atomic_load(&cr.longest_ms) < 1500);
    assert_int_equal(rstats(&b).not_available, 20);
    /* A caller that finds the lease free computes (it waited for nobody). */
    strata_remember_answer ans;
    assert_int_equal(strata_cache_remember(b.ls, &k, &cr.o, compute_sync, &cr, &ans), STRATA_OK);
    assert_int_equal(ans.source, STRATA_REMEMBER_COMPUTED);
    strata_value_release(ans.value);
    close_inst(a);
    close_inst(b);
}

/* ---- giving up, and the arguments -------------------------------------------------------------
 */

static void gives_up(const strata_key *k, strata_remember_handle *h, void *arg)
{
    (void)k;
    atomic_fetch_add((atomic_int *)arg, 1);
    assert_int_equal(strata_remember_done(h, 7, "x", 1), STRATA_EINVAL); /* not a status */
    assert_int_equal(strata_remember_done(h, STRATA_OK, NULL, 3), STRATA_EINVAL);
    assert_int_equal(strata_remember_done(h, STRATA_EUNAVAILABLE, NULL, 0), 0);
}

static void forgets(const strata_key *k, strata_remember_handle *h, void *arg)
{
    (void)k, (void)h;
    atomic_fetch_add((atomic_int *)arg, 1);
}

static void test_giving_up_releases_the_lease(void **state)
{
    (void)state;
    inst a = open_inst();
    strata_key k = {"ns", "acme", "givesup", 7};
    atomic_int n = 0;
    strata_remember_answer ans;
    strata_remember_opts o = {.lease_ms = 30000, .wait_ms = 200};
    assert_int_equal(strata_cache_remember(a.ls, &k, &o, gives_up, &n, &ans), STRATA_EUNAVAILABLE);
    assert_null(ans.value);
    /* Released: the next caller computes at once, not after 30 s. */
    assert_int_equal(strata_cache_remember(a.ls, &k, &o, forgets, &n, &ans), STRATA_EINVAL);
    assert_int_equal(strata_cache_remember(a.ls, &k, &o, gives_up, &n, &ans), STRATA_EUNAVAILABLE);
    assert_int_equal(n, 3);
    assert_int_equal(rstats(&a).abandoned, 3);
    strata_value *v;
    assert_int_equal(strata_cache_get(a.c, &k, &v), STRATA_ENOTFOUND); /* nothing stored */
    /* Options: reserved members, bounds. */
    strata_remember_opts bad = {.reserved = {0, 1}};
    assert_int_equal(strata_cache_remember(a.ls, &k, &bad, gives_up, &n, &ans), STRATA_EINVAL);
    bad = (strata_remember_opts){.wait_end = 2};
    assert_int_equal(strata_cache_remember(a.ls, &k, &bad, gives_up, &n, &ans), STRATA_EINVAL);
    bad = (strata_remember_opts){.lease_ms = STRATA_LEASE_MAX_MS + 1};
    assert_int_equal(strata_cache_remember(a.ls, &k, &bad, gives_up, &n, &ans), STRATA_EINVAL);
    assert_int_equal(strata_cache_remember(a.ls, &k, NULL, NULL, &n, &ans), STRATA_EINVAL);
    assert_int_equal(n, 3);
    close_inst(a);
}

/* ---- without Redis ----------------------------------------------------------------------------
 */

static int inline_called;

static void inline_cb(int status, strata_remember_answer *a, void *arg)
{
    (void)status, (void)a, (void)arg;
    inline_called++;
}

static void computes_at_once(const strata_key *k, strata_remember_handle *h, void *arg)
{
    (void)k, (void)arg;
    assert_int_equal(strata_remember_done(h, STRATA_OK, VALUE, sizeof VALUE), 0);
}

static void test_without_redis_one_computation_per_process(void **state)
{
    (void)state;
    inst m = open_with(NULL, 1000);
    strata_key k = {"ns", "acme", "local", 5};
    crowd cr = {.k = &k, .o = {.lease_ms = 10000}, .compute_ms = 20, .nthreads = 30, .nloop = 30};
    run_crowd(&cr, &m, 1);
    assert_int_equal(atomic_load(&cr.computations), 1);
    assert_int_equal(atomic_load(&cr.ok), 60);
    /* On a loop, all of it decided during the call: the answer is returned, no callback. */
    struct event_base *base = event_base_new();
    strata_loop *lp;
    assert_int_equal(strata_loop_new(m.c, base, &lp), 0);
    strata_key k2 = {"ns", "acme", "inline", 6};
    strata_remember_answer ans;
    assert_int_equal(
        strata_cache_remember_async(m.ls, lp, &k2, NULL, computes_at_once, inline_cb, NULL, &ans),
        STRATA_OK);
    assert_int_equal(ans.source, STRATA_REMEMBER_COMPUTED);
    strata_value_release(ans.value);
    assert_int_equal(
        strata_cache_remember_async(m.ls, lp, &k2, NULL, computes_at_once, inline_cb, NULL, &ans),
        STRATA_OK);
    assert_int_equal(ans.source, STRATA_REMEMBER_HIT);
    strata_value_release(ans.value);
    event_base_loop(base, EVLOOP_NONBLOCK);
    assert_int_equal(inline_called, 0);
    strata_loop_free(lp);
    event_base_free(base);
    close_inst(m);
}

int main(int argc, char **argv)
{
    if (argc == 6 && strcmp(argv[1], "child") == 0)
        return child_main(argv[2], argv[3], argv[4], argv[5]);
    self_exe = argv[0];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_thousand_callers_on_two_instances_one_computation),
        cmocka_unit_test(test_handle_never_completed_is_taken_over_after_its_lease),
        cmocka_unit_test(test_holder_process_killed_is_taken_over),
        cmocka_unit_test(test_failure_is_cached_for_the_error_ttl),
        cmocka_unit_test(test_redis_killed_mid_wait_single_flight_per_process),
        cmocka_unit_test(test_not_available_at_the_bound_without_takeover),
        cmocka_unit_test(test_giving_up_releases_the_lease),
        cmocka_unit_test(test_without_redis_one_computation_per_process),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
