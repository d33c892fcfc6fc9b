/* test_breaker.c: the circuit breaker (src/lib/redis/breaker.c) on a clock given as a
 * parameter: opening after N failures, one probe after the backoff, doubling with jitter, the
 * cap, and closing on success. No sleeps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "redis/breaker.h"

static void test_opens_after_threshold_and_probes_once(void **state)
{
    (void)state;
    breaker b;
    strata__breaker_init(&b, 3, 100, 1000);
    uint64_t t = 1000000;
    assert_true(strata__breaker_allow(&b, t));
    assert_int_equal(strata__breaker_failure(&b, t), 0);
    assert_int_equal(strata__breaker_failure(&b, t), 0);
    assert_int_equal(strata__breaker_success(&b), 0); /* a success resets the count */
    assert_int_equal(strata__breaker_failure(&b, t), 0);
    assert_int_equal(strata__breaker_failure(&b, t), 0);
    assert_int_equal(strata__breaker_failure(&b, t), 1); /* the third in a row opens it */
    assert_int_equal(strata__breaker_state(&b), BREAKER_OPEN);
    assert_false(strata__breaker_allow(&b, t + 74)); /* 100 ms -25%: not before 75 ms */
    assert_true(strata__breaker_allow(&b, t + 126)); /* +25% (+1): by 126 ms */
    assert_int_equal(strata__breaker_state(&b), BREAKER_HALF_OPEN);
    assert_false(strata__breaker_allow(&b, t + 127)); /* one probe at a time */
    assert_int_equal(strata__breaker_success(&b), 1); /* the probe closed it: recovered */
    assert_int_equal(strata__breaker_state(&b), BREAKER_CLOSED);
    assert_true(strata__breaker_allow(&b, t + 128));
    assert_int_equal(b.opened_total, 1);
    strata__breaker_destroy(&b);
}

static void test_failed_probes_double_the_backoff_up_to_the_cap(void **state)
{
    (void)state;
    breaker b;
    strata__breaker_init(&b, 1, 100, 300);
    uint64_t t = 5000000;
    assert_int_equal(strata__breaker_failure(&b, t), 1);
    uint64_t backoff = 100;
    for (int round = 0; round < 4; round++) {
        /* wait until the probe is let through, then fail it */
        uint64_t at = t;
        while (!strata__breaker_allow(&b, at))
            at++;
        uint64_t waited = at - t;
        assert_true(waited >= backoff * 3 / 4 && waited <= backoff * 5 / 4 + 1);
        t = at;
        assert_int_equal(strata__breaker_failure(&b, t), 0); /* reopened, not newly opened */
        backoff = backoff * 2 > 300 ? 300 : backoff * 2;
    }
    assert_int_equal(b.opened_total, 1);
    strata__breaker_destroy(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_opens_after_threshold_and_probes_once),
        cmocka_unit_test(test_failed_probes_double_the_backoff_up_to_the_cap),
    };
    return cmocka_run_group_tests_name("breaker", tests, NULL, NULL);
}
