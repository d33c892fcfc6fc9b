/* test_flight.c: the flight table (features/flight.c) on a fake clock: its bounds, who joins and
 * leaves, who does a flight's work and in what order waiters are woken, what a waiter decides at
 * the end of its wait, and the poll fallback's backoff. No thread waits here: a waiter without a
 * condition variable or event is only marked woken, which the tests read. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <strata/strata.h>

#include "features/flight.h"

static const strata_key K = {"ns", "t", "key", 3};
static const char SK[] = "p:ns:t:key";

static flight_waiter waiter(int wants, uint64_t deadline)
{
    flight_waiter w;
    memset(&w, 0, sizeof w);
    w.wants_lease = wants, w.deadline = deadline;
    return w;
}

static void join(flight_table *t, flight_waiter *w, uint64_t now, int expect_first)
{
    int first = -1;
    assert_int_equal(strata__flight_join_locked(t, SK, strlen(SK), &K, w, now, &first), 0);
    assert_int_equal(first, expect_first);
}

static int step(flight_table *t, flight_waiter *w, uint64_t now, int polling, uint64_t *until)
{
    uint64_t u = 0;
    int act = strata__flight_step_locked(t, w, now, polling, &u);
    if (until != NULL)
        *until = u;
    return act;
}

static void test_bounds(void **state)
{
    (void)state;
    flight_table *t;
    assert_int_equal(strata__flight_table_new(1, 3, &t), 0);
    strata__flight_lock(t);
    flight_waiter a = waiter(1, 1000), b = waiter(1, 1000), c = waiter(1, 1000),
                  d = waiter(1, 1000), e = waiter(1, 1000);
    join(t, &a, 0, 1);
    int first;
    strata_key other = {"ns", "t", "other", 5};
    /* A second key: past max_flights. */
    assert_int_equal(strata__flight_join_locked(t, "p:ns:t:other", 12, &other, &e, 0, &first),
                     STRATA_EBUSY);
    join(t, &b, 0, 0);
    join(t, &c, 0, 0);
    /* A fourth waiter: past max_waiters. */
    assert_int_equal(strata__flight_join_locked(t, SK, strlen(SK), &K, &d, 0, &first),
                     STRATA_EBUSY);
    size_t nf, nw;
    strata__flight_unlock(t);
    strata__flight_counts(t, &nf, &nw);
    assert_int_equal(nf, 1);
    assert_int_equal(nw, 3);
    strata__flight_lock(t);
    strata__flight_leave_locked(t, &b);
    strata__flight_leave_locked(t, &a);
    strata__flight_leave_locked(t, &c);
    strata__flight_unlock(t);
    strata__flight_counts(t, &nf, &nw);
    assert_int_equal(nf, 0); /* the last to leave frees the flight */
    assert_int_equal(nw, 0);
    strata__flight_table_free(t);
}

/* The first caller asks for the lease; the others ride on it; the lease held sets when the
 * waiters that want it look next. */
static void test_first_caller_acquires_others_ride(void **state)
{
    (void)state;
    flight_table *t;
    assert_int_equal(strata__flight_table_new(8, 8, &t), 0);
    strata__flight_lock(t);
    flight_waiter a = waiter(0, 5000), b = waiter(1, 5000), c = waiter(0, 5000);
    join(t, &a, 0, 1);
    join(t, &b, 0, 0);
    join(t, &c, 0, 0);
    uint64_t until;
    assert_int_equal(step(t, &a, 0, 0, NULL), FLIGHT_ACQUIRE); /* even if it did not ask for
                                                                 takeover: the first computes */
    assert_int_equal(step(t, &b, 1, 0, &until), FLIGHT_WAIT);  /* busy: no work of its own */
    assert_int_equal(until, 5000);
    flight_found held = {.held = 1, .g = {.held_ms = 700}};
    assert_int_equal(strata__flight_found_locked(t, &a, &held, 10), 0);
    assert_int_equal(step(t, &a, 10, 0, &until), FLIGHT_WAIT);
    assert_int_equal(until, 5000); /* does not want the lease: no wake at its end */
    assert_int_equal(step(t, &b, 10, 0, &until), FLIGHT_WAIT);
    assert_int_equal(until, 710); /* wants it: wakes when the holder's lease ends */
    /* At 710 b looks (a look: re-read, then ask for the lease). */
    assert_int_equal(step(t, &b, 710, 0, NULL), FLIGHT_LOOK);
    assert_int_equal(step(t, &c, 711, 0, &until), FLIGHT_WAIT);
    flight_found granted = {.granted = 1, .lease_ms = 3000, .g = {.token = "tok"}};
    strata__flight_found_locked(t, &b, &granted, 720);
    assert_int_equal(step(t, &b, 720, 0, NULL), FLIGHT_DONE);
    assert_int_equal(b.status, STRATA_LEASED);
    assert_string_equal(b.g.token, "tok");
    strata__flight_leave_locked(t, &b);
    /* The new holder is b, for 3000 ms: the others wait for its fill. */
    assert_int_equal(step(t, &a, 800, 0, &until), FLIGHT_WAIT);
    strata__flight_leave_locked(t, &a);
    strata__flight_leave_locked(t, &c);
    strata__flight_unlock(t);
    strata__flight_table_free(t);
}

/* A change wakes one waiter, the oldest that wants the lease (a release is then one acquire);
 * the value found answers everyone, each with its reference. */
static void test_notify_wakes_in_order_and_value_answers_all(void **state)
{
    (void)state;
    strata_l1 *l1;
    strata_l1_config cfg;
    strata_l1_config_init(&cfg);
    assert_int_equal(strata_l1_new(&cfg, &l1), 0);
    assert_int_equal(strata_l1_set(l1, &K, "v", 1, NULL, 1), 0);
    strata_value *v = NULL;
    assert_int_equal(strata_l1_get(l1, &K, 1, &v), 0);

    flight_table *t;
    assert_int_equal(strata__flight_table_new(8, 8, &t), 0);
    strata__flight_lock(t);
    flight_waiter a = waiter(0, 5000), b = waiter(0, 5000), c = waiter(1, 5000),
                  d = waiter(1, 5000);
    join(t, &a, 0, 1);
    join(t, &b, 0, 0);
    join(t, &c, 0, 0);
    join(t, &d, 0, 0);
    assert_int_equal(step(t, &a, 0, 0, NULL), FLIGHT_ACQUIRE);
    flight_found held = {.held = 1, .g = {.held_ms = 60000}};
    strata__flight_found_locked(t, &a, &held, 5);
    strata__flight_unlock(t);
    strata__flight_notify(t, "p:ns:t:other", 12); /* another key: nobody */
    assert_false(a.woken || b.woken || c.woken || d.woken);
    strata__flight_notify(t, SK, strlen(SK));
    assert_true(c.woken); /* the oldest that wants the lease */
    assert_false(a.woken || b.woken || d.woken);
    strata__flight_lock(t);
    assert_int_equal(step(t, &c, 20, 0, NULL), FLIGHT_LOOK);
    /* A change heard while c works: nobody else is woken now; c's end wakes one. */
    strata__flight_unlock(t);
    strata__flight_notify(t, SK, strlen(SK));
    assert_false(a.woken || b.woken || d.woken);
    strata__flight_lock(t);
    flight_found found = {.value = v};
    assert_int_equal(strata__flight_found_locked(t, &c, &found, 30), 1);
    assert_true(a.woken && b.woken && d.woken);
    flight_waiter *all[] = {&a, &b, &c, &d};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(step(t, all[i], 30, 0, NULL), FLIGHT_DONE);
        assert_int_equal(all[i]->status, STRATA_OK);
        assert_ptr_equal(all[i]->value, v);
        assert_true(all[i]->coalesced); /* the lease was found held: every answer was waited for */
        strata__flight_leave_locked(t, all[i]);
        strata_value_release(all[i]->value);
    }
    strata__flight_unlock(t);
    strata_value_release(v);
    strata__flight_table_free(t);
    strata_l1_free(l1);
}

/* A look by a waiter that does not want the lease finds no value: the oldest that wants it asks
 * next, and only it. */
static void test_missing_value_hands_the_acquire_to_a_taker(void **state)
{
    (void)state;
    flight_table *t;
    assert_int_equal(strata__flight_table_new(8, 8, &t), 0);
    strata__flight_lock(t);
    flight_waiter a = waiter(0, 5000), b = waiter(0, 5000), c = waiter(1, 5000);
    join(t, &a, 0, 1);
    join(t, &b, 0, 0);
    join(t, &c, 0, 0);
    assert_int_equal(step(t, &a, 0, 0, NULL), FLIGHT_ACQUIRE);
    flight_found held = {.held = 1, .g = {.held_ms = 60000}};
    strata__flight_found_locked(t, &a, &held, 5);
    strata__flight_unlock(t);
    strata__flight_notify(t, SK, strlen(SK));
    strata__flight_lock(t);
    c.woken = 0;
    assert_int_equal(step(t, &b, 10, 0, NULL), FLIGHT_LOOK); /* b woke first by its own */
    flight_found missing = {.missing = 1};
    strata__flight_found_locked(t, &b, &missing, 12);
    assert_true(c.woken);
    assert_int_equal(step(t, &b, 12, 0, NULL), FLIGHT_WAIT);
    assert_int_equal(step(t, &c, 13, 0, NULL), FLIGHT_ACQUIRE);
    strata__flight_leave_locked(t, &a);
    strata__flight_leave_locked(t, &b);
    c.working = 0; /* as if its work ended without an answer */
    strata__flight_leave_locked(t, &c);
    strata__flight_unlock(t);
    strata__flight_table_free(t);
}

/* The end of a wait: "still held" (with the time left) without Redis, or the waiter's own acquire
 * when it wants the lease and the lease is not known to be held. */
static void test_end_of_wait(void **state)
{
    (void)state;
    flight_table *t;
    assert_int_equal(strata__flight_table_new(8, 8, &t), 0);
    strata__flight_lock(t);
    flight_waiter a = waiter(1, 100), b = waiter(1, 300), c = waiter(0, 300);
    join(t, &a, 0, 1);
    join(t, &b, 0, 0);
    join(t, &c, 0, 0);
    assert_int_equal(step(t, &a, 0, 0, NULL), FLIGHT_ACQUIRE);
    flight_found held = {.held = 1, .g = {.held_ms = 200}};
    strata__flight_found_locked(t, &a, &held, 0);
    assert_int_equal(step(t, &a, 100, 0, NULL), FLIGHT_DONE); /* held until 200 */
    assert_int_equal(a.status, STRATA_EHELD);
    assert_int_equal(a.g.held_ms, 100);
    strata__flight_leave_locked(t, &a);
    /* Past the lease's end: c (no takeover) is told "not available", b takes it. */
    assert_int_equal(step(t, &c, 300, 0, NULL), FLIGHT_DONE);
    assert_int_equal(c.status, STRATA_EHELD);
    assert_int_equal(c.g.held_ms, 0);
    strata__flight_leave_locked(t, &c);
    assert_int_equal(step(t, &b, 300, 0, NULL), FLIGHT_LOOK); /* the lease ended: look first */
    flight_found again = {.held = 1, .g = {.held_ms = 5000}};
    strata__flight_found_locked(t, &b, &again, 301);
    assert_int_equal(step(t, &b, 301, 0, NULL), FLIGHT_DONE);
    assert_int_equal(b.status, STRATA_EHELD);
    strata__flight_leave_locked(t, &b);
    strata__flight_unlock(t);
    strata__flight_table_free(t);
}

/* Without notifications a flight looks after 50 ms, then 100, 200, 400, 800, 1000, 1000 ms. */
static void test_poll_backoff(void **state)
{
    (void)state;
    flight_table *t;
    assert_int_equal(strata__flight_table_new(8, 8, &t), 0);
    strata__flight_lock(t);
    flight_waiter a = waiter(0, 100000);
    join(t, &a, 0, 1);
    assert_int_equal(step(t, &a, 0, 1, NULL), FLIGHT_ACQUIRE);
    flight_found held = {.held = 1, .g = {.held_ms = 60000}};
    strata__flight_found_locked(t, &a, &held, 0);
    uint64_t now = 0, until, gaps[] = {50, 100, 200, 400, 800, 1000, 1000};
    for (size_t i = 0; i < sizeof gaps / sizeof gaps[0]; i++) {
        assert_int_equal(step(t, &a, now, 1, &until), FLIGHT_WAIT);
        assert_int_equal(until - now, gaps[i]);
        now = until;
        assert_int_equal(step(t, &a, now, 1, NULL), FLIGHT_LOOK);
        flight_found nothing = {.missing = 1};
        strata__flight_found_locked(t, &a, &nothing, now);
    }
    /* Told of changes again: no poll, only its deadline. */
    assert_int_equal(step(t, &a, now, 0, &until), FLIGHT_WAIT);
    assert_int_equal(until, 100000);
    strata__flight_leave_locked(t, &a);
    strata__flight_unlock(t);
    strata__flight_table_free(t);
}

/* Regression: a waiter that went to sleep while the flight's first acquire was under way had
 * its timer at its own deadline; when that acquire found the lease held, nothing woke it, so a
 * dead holder's lease was taken over at the waiter's deadline instead of at the lease's end
 * (seen over HTTP: 5 s instead of 1 s). Now the finding wakes it to set its timer. */
static void test_waiter_asleep_while_busy_wakes_at_lease_end(void **state)
{
    (void)state;
    flight_table *t;
    assert_int_equal(strata__flight_table_new(8, 8, &t), 0);
    strata__flight_lock(t);
    flight_waiter a = waiter(1, 300), b = waiter(1, 5000), c = waiter(1, 500), d = waiter(0, 5000);
    join(t, &a, 0, 1);
    join(t, &b, 0, 0);
    join(t, &c, 0, 0);
    join(t, &d, 0, 0);
    uint64_t until;
    assert_int_equal(step(t, &a, 0, 0, NULL), FLIGHT_ACQUIRE);
    assert_int_equal(step(t, &b, 1, 0, &until), FLIGHT_WAIT);
    assert_int_equal(until, 5000); /* busy: its deadline only */
    assert_int_equal(step(t, &c, 1, 0, &until), FLIGHT_WAIT);
    assert_int_equal(step(t, &d, 1, 0, &until), FLIGHT_WAIT);
    flight_found held = {.held = 1, .g = {.held_ms = 1000}};
    strata__flight_found_locked(t, &a, &held, 10);
    assert_true(b.woken);  /* asleep past the lease's end */
    assert_false(c.woken); /* its deadline comes first: nothing to change */
    assert_false(d.woken); /* does not want the lease */
    assert_false(a.woken);
    assert_int_equal(step(t, &b, 11, 0, &until), FLIGHT_WAIT);
    assert_int_equal(until, 1010);
    /* a leaves at its deadline; b still wakes at the lease's end and looks. */
    assert_int_equal(step(t, &a, 300, 0, NULL), FLIGHT_DONE);
    strata__flight_leave_locked(t, &a);
    assert_int_equal(step(t, &b, 1010, 0, NULL), FLIGHT_LOOK);
    flight_found granted = {.granted = 1, .lease_ms = 2000, .g = {.token = "tok"}};
    strata__flight_found_locked(t, &b, &granted, 1020);
    assert_int_equal(step(t, &b, 1020, 0, NULL), FLIGHT_DONE);
    assert_int_equal(b.status, STRATA_LEASED);
    strata__flight_leave_locked(t, &b);
    strata__flight_leave_locked(t, &c);
    strata__flight_leave_locked(t, &d);
    strata__flight_unlock(t);
    strata__flight_table_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_first_caller_acquires_others_ride),
        cmocka_unit_test(test_notify_wakes_in_order_and_value_answers_all),
        cmocka_unit_test(test_missing_value_hands_the_acquire_to_a_taker),
        cmocka_unit_test(test_end_of_wait),
        cmocka_unit_test(test_poll_backoff),
        cmocka_unit_test(test_waiter_asleep_while_busy_wakes_at_lease_end),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
