/* test_server_namespaces.c: STRATA_NAMESPACES gives namespaces their TTL classes, maximum TTL
 * and jitter; bad settings stop the start with a message naming them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "server_harness.h"

/* max-age of k (seconds), after a PUT with query q. */
static long max_age(sh_server *s, const char *path, const char *query)
{
    char put[128];
    snprintf(put, sizeof put, "%s%s", path, query);
    sh_resp *r = sh_call(s, "PUT", put, NULL, NULL, "text/plain", "v");
    SH_EXPECT_STATUS(r, 204);
    sh_resp_free(r);
    r = sh_call(s, "GET", path, NULL, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 200);
    const char *cc = sh_resp_header(r, "Cache-Control");
    assert_non_null(cc);
    long v = strtol(cc + strlen("max-age="), NULL, 10);
    sh_resp_free(r);
    return v;
}

static void test_ttl_classes(void **state)
{
    (void)state;
    const char *env[] = {"STRATA_NAMESPACES=llm:ttl=3600,max_ttl=7200,jitter=0;fast:ttl=5,"
                         "jitter=0",
                         NULL};
    sh_server *s = sh_start(env, NULL);
    assert_non_null(s);
    long a = max_age(s, "/v1/cache/llm/a", "");
    assert_true(a >= 3598 && a <= 3600); /* the class's TTL, exact (no jitter) */
    long b = max_age(s, "/v1/cache/llm/b", "?ttl=99999");
    assert_true(b >= 7198 && b <= 7200); /* cut to the maximum */
    long c = max_age(s, "/v1/cache/fast/c", "");
    assert_true(c >= 3 && c <= 5);
    long d = max_age(s, "/v1/cache/other/d", ""); /* not named: the default 300 s +-10% */
    assert_true(d >= 268 && d <= 330);
    assert_int_equal(sh_stop_check(s), 0);
}

static void test_bad_settings_stop_the_start(void **state)
{
    (void)state;
    const char *bad[] = {"STRATA_NAMESPACES=llm:tll=5",
                         "STRATA_NAMESPACES=llm:ttl=-1",
                         "STRATA_NAMESPACES=llm:jitter=0.9",
                         "STRATA_NAMESPACES=_sessions:ttl=5",
                         "STRATA_NAMESPACES=bad name:ttl=5",
                         "STRATA_NAMESPACES=llm:quota=lots",
                         "STRATA_NAMESPACES=llm"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *env[] = {bad[i], NULL};
        char *out = NULL;
        int st = sh_run(env, NULL, 5000, &out, NULL);
        if (st != 2 || out == NULL || strstr(out, "STRATA_NAMESPACES") == NULL)
            fprintf(stderr, "%s: exit %d, output: %s\n", bad[i], st, out ? out : "");
        assert_int_equal(st, 2); /* a malformed setting (docs/operations.md): it exited 1 */
        assert_non_null(strstr(out, "STRATA_NAMESPACES"));
        free(out);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ttl_classes),
        cmocka_unit_test(test_bad_settings_stop_the_start),
    };
    return cmocka_run_group_tests_name("server_namespaces", tests, NULL, NULL);
}
