/* test_llm_counters.c: the LLM gateway's counters table (src/server/llm/llm_counters.c): a row
 * per (route, model, tenant), found again by its names, never two for the same names even when
 * threads make it at once; past the bound the "(other)" row; each row listed once.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "llm/llm_counters.h"

typedef struct seen {
    int rows, other;
    uint64_t requests;
} seen;

static void count_row(const char *route, const char *model, const char *tenant, const llm_counts *n,
                      void *arg)
{
    seen *s = arg;
    (void)model, (void)tenant;
    s->rows++;
    s->other += strcmp(route, "(other)") == 0;
    s->requests += atomic_load(&n->requests);
}

static void test_rows_by_name_and_bound(void **state)
{
    (void)state;
    llm_counters *c = llm_counters_new(8);
    assert_non_null(c);
    llm_counts *a = llm_counters_row(c, "llm", "gpt-4o", "acme");
    assert_ptr_equal(llm_counters_row(c, "llm", "gpt-4o", "acme"), a);
    assert_ptr_not_equal(llm_counters_row(c, "llm", "gpt-4o", "globex"), a);
    assert_ptr_not_equal(llm_counters_row(c, "llm", "gpt-4o-mini", "acme"), a);
    /* The names' boundaries count: "ab"+"c" is not "a"+"bc". */
    assert_ptr_not_equal(llm_counters_row(c, "ab", "c", "t"), llm_counters_row(c, "a", "bc", "t"));
    llm_counts *other = NULL;
    for (int i = 0; i < 20; i++) {
        char m[16];
        snprintf(m, sizeof m, "m%d", i);
        llm_counts *n = llm_counters_row(c, "llm", m, "acme");
        atomic_fetch_add(&n->requests, 1);
        if (i >= 3) /* 5 rows made above, 3 more fit */
            other = other ? other : n;
        if (i >= 3)
            assert_ptr_equal(n, other);
    }
    assert_ptr_equal(llm_counters_row(c, "llm", "m0", "acme"),
                     llm_counters_row(c, "llm", "m0", "acme"));
    seen s = {0};
    llm_counters_each(c, count_row, &s);
    assert_int_equal(s.rows, 9); /* 8 rows and (other) */
    assert_int_equal(s.other, 1);
    assert_int_equal(s.requests, 20);
    llm_counters_free(c);
}

typedef struct arg {
    llm_counters *c;
    llm_counts *got[64];
} arg;

static void *maker(void *p)
{
    arg *a = p;
    for (int i = 0; i < 64; i++) {
        char t[16];
        snprintf(t, sizeof t, "t%d", i);
        a->got[i] = llm_counters_row(a->c, "llm", "m", t);
        atomic_fetch_add(&a->got[i]->requests, 1);
    }
    return NULL;
}

static void test_threads_make_one_row_per_name(void **state)
{
    (void)state;
    llm_counters *c = llm_counters_new(128);
    arg a[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        a[i].c = c;
        assert_int_equal(pthread_create(&t[i], NULL, maker, &a[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    for (int k = 0; k < 64; k++)
        for (int i = 1; i < 4; i++)
            assert_ptr_equal(a[i].got[k], a[0].got[k]);
    seen s = {0};
    llm_counters_each(c, count_row, &s);
    assert_int_equal(s.rows, 64);
    assert_int_equal(s.requests, 256);
    llm_counters_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows_by_name_and_bound),
        cmocka_unit_test(test_threads_make_one_row_per_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
