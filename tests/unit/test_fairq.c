/* test_fairq.c: the admin lanes' queue (src/server/fairq.c): tenants served in turn, one job
 * per tenant at a time, the bounds per tenant and in all, and nothing kept once a tenant has no
 * job (hardening item 4: one tenant's queue of scans must not make another's job wait). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "fairq.h"

typedef struct job {
    fairq_item item; /* first */
    const char *name;
} job;

static const char *take(fairq *f)
{
    job *j = (job *)fairq_take(f);
    return j ? j->name : NULL;
}

/* Takes one job and finishes it at once: the order a single thread runs them in. */
static const char *run(fairq *f)
{
    fairq_item *it = fairq_take(f);
    if (it == NULL)
        return NULL;
    fairq_done(f, it);
    return ((job *)it)->name;
}

/* acme queues three, then beta and gamma one each: they are served before acme's second. */
static void test_tenants_take_turns(void **state)
{
    (void)state;
    fairq f;
    fairq_init(&f, 100, 100, 1);
    job j[] = {{.name = "acme1"},
               {.name = "acme2"},
               {.name = "acme3"},
               {.name = "beta1"},
               {.name = "gamma1"}};
    const char *tenant[] = {"acme", "acme", "acme", "beta", "gamma"};
    for (int i = 0; i < 5; i++)
        assert_int_equal(fairq_put(&f, tenant[i], &j[i].item, 0), 0);
    const char *want[] = {"acme1", "beta1", "gamma1", "acme2", "acme3"};
    for (int i = 0; i < 5; i++)
        assert_string_equal(run(&f), want[i]);
    assert_null(run(&f));
    assert_null(f.turn); /* no tenant record is left */
    assert_int_equal(f.waiting, 0);
}

/* A tenant that comes while another's backlog runs is served at the backlog's next turn. */
static void test_newcomer_waits_for_one_job_at_most(void **state)
{
    (void)state;
    fairq f;
    fairq_init(&f, 100, 100, 1);
    job a[10], b = {.name = "beta1"};
    for (int i = 0; i < 10; i++) {
        a[i].name = "acme";
        assert_int_equal(fairq_put(&f, "acme", &a[i].item, 0), 0);
    }
    assert_string_equal(run(&f), "acme");
    assert_string_equal(run(&f), "acme");
    assert_int_equal(fairq_put(&f, "beta", &b.item, 0), 0);
    assert_string_equal(run(&f), "acme"); /* beta joined at the end of the turn */
    assert_string_equal(run(&f), "beta1");
    for (int i = 0; i < 7; i++)
        assert_string_equal(run(&f), "acme");
    assert_null(run(&f));
    assert_null(f.turn);
}

/* With two threads, a tenant runs one job at a time: the other thread is free for others. */
static void test_one_running_job_per_tenant(void **state)
{
    (void)state;
    fairq f;
    fairq_init(&f, 100, 100, 1);
    job a1 = {.name = "acme1"}, a2 = {.name = "acme2"}, b1 = {.name = "beta1"};
    assert_int_equal(fairq_put(&f, "acme", &a1.item, 0), 0);
    assert_int_equal(fairq_put(&f, "acme", &a2.item, 0), 0);
    assert_string_equal(take(&f), "acme1");
    assert_null(take(&f)); /* acme2 waits for acme1, though a thread is free */
    assert_int_equal(fairq_put(&f, "beta", &b1.item, 0), 0);
    assert_string_equal(take(&f), "beta1");
    fairq_done(&f, &b1.item);
    assert_null(take(&f));
    fairq_done(&f, &a1.item);
    assert_string_equal(take(&f), "acme2");
    fairq_done(&f, &a2.item);
    assert_null(f.turn);

    /* Two at a time when the lane allows it. */
    fairq_init(&f, 100, 100, 2);
    assert_int_equal(fairq_put(&f, "acme", &a1.item, 0), 0);
    assert_int_equal(fairq_put(&f, "acme", &a2.item, 0), 0);
    assert_string_equal(take(&f), "acme1");
    assert_string_equal(take(&f), "acme2");
    fairq_done(&f, &a2.item);
    fairq_done(&f, &a1.item);
    assert_null(f.turn);
}

/* At most max_per_tenant wait per tenant and max_waiting in all; running jobs do not count;
 * force goes past both. */
static void test_bounds(void **state)
{
    (void)state;
    fairq f;
    fairq_init(&f, 4, 2, 1);
    job j[8];
    for (int i = 0; i < 8; i++)
        j[i].name = "job";
    assert_int_equal(fairq_put(&f, "acme", &j[0].item, 0), 0);
    assert_int_equal(fairq_put(&f, "acme", &j[1].item, 0), 0);
    assert_int_equal(fairq_put(&f, "acme", &j[2].item, 0), FAIRQ_FULL); /* acme's 2 */
    assert_int_equal(fairq_put(&f, "beta", &j[2].item, 0), 0);
    assert_int_equal(fairq_put(&f, "gamma", &j[3].item, 0), 0);
    assert_int_equal(fairq_put(&f, "delta", &j[4].item, 0), FAIRQ_FULL); /* 4 in all */
    assert_int_equal(fairq_put(&f, "delta", &j[4].item, 1), 0);          /* forced */
    assert_int_equal(f.waiting, 5);
    fairq_item *first = fairq_take(&f); /* acme's first runs: acme has room for one more */
    assert_ptr_equal(first, &j[0].item);
    assert_int_equal(fairq_put(&f, "acme", &j[5].item, 0), FAIRQ_FULL); /* still 4 in all */
    fairq_item *second = fairq_take(&f);
    assert_ptr_equal(second, &j[2].item); /* beta's */
    assert_int_equal(fairq_put(&f, "acme", &j[5].item, 0), 0);
    assert_int_equal(fairq_put(&f, "acme", &j[6].item, 0), FAIRQ_FULL);
    fairq_done(&f, first);
    fairq_done(&f, second);
    for (int i = 0; i < 4; i++) /* gamma's, delta's, acme's two */
        assert_non_null(run(&f));
    assert_null(run(&f));
    assert_null(f.turn);
    assert_int_equal(f.waiting, 0);
    /* Bounds of 0 are 1; a name too long for a tenant is cut, not refused. */
    fairq_init(&f, 0, 0, 0);
    char longname[200];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(fairq_put(&f, longname, &j[7].item, 0), 0);
    assert_int_equal(fairq_put(&f, longname, &j[6].item, 0), FAIRQ_FULL);
    assert_int_equal(strlen(f.turn->name), STRATA_NAME_MAX);
    assert_ptr_equal(fairq_take(&f), &j[7].item);
    fairq_done(&f, &j[7].item);
    assert_null(f.turn);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tenants_take_turns),
        cmocka_unit_test(test_newcomer_waits_for_one_job_at_most),
        cmocka_unit_test(test_one_running_job_per_tenant),
        cmocka_unit_test(test_bounds),
    };
    return cmocka_run_group_tests_name("fairq", tests, NULL, NULL);
}
