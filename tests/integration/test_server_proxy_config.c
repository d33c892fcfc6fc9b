/* test_server_proxy_config.c: strata serve with the proxy's configuration file.
 *
 * A bad file stops the start at once with exit code 2 and a message naming the file, the line
 * and the fault; a good file starts, and the start line counts its routes and origins; SIGHUP
 * with a broken file keeps the server (and the old model) and says why; --upstream alone starts
 * a one-route proxy; --config with --upstream, and a bad --upstream URL, are refused.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "it_tmp.h"
#include "server_harness.h"

static char *dir;

static char *write_file(const char *name, const char *text)
{
    char *path = it_xasprintf("%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static const char good[] = "origins:\n"
                           "  - {name: api, url: 'http://127.0.0.1:9'}\n"
                           "routes:\n"
                           "  - {name: task, match: {path: '/tasks/{id}'}, ttl: 30s,\n"
                           "     tags: ['task:{id}']}\n"
                           "  - {name: rest, match: {path: '/*'}}\n";

/* Runs strata serve; returns its exit status (-1: still running after 20 s, then killed), the
 * output in *out (to free). */
static int run(const char *const *env, const char *const *args, char **out)
{
    long took = 0;
    int st = sh_run(env, args, 20000, out, &took);
    assert_null(strstr(*out, "ERROR: AddressSanitizer"));
    assert_null(strstr(*out, "ERROR: LeakSanitizer"));
    return st;
}

/* 1 once the server's log holds needle, within 10 s: the main thread logs the proxy's line after
 * the workers start, so /livez may answer before it is written. */
static int wait_log(const sh_server *s, const char *needle)
{
    for (int i = 0; i < 500 && !sh_log_contains(s, needle); i++)
        usleep(20000);
    return sh_log_contains(s, needle);
}

static void test_bad_file_refused_with_its_line(void **state)
{
    (void)state;
    char *bad = write_file("bad.yaml", "origins:\n"
                                       "  - {name: api, url: 'http://127.0.0.1:9'}\n"
                                       "routes:\n"
                                       "  - name: task\n"
                                       "    match: {path: /t}\n"
                                       "    tll: 30\n");
    const char *args[] = {"--config", bad, NULL};
    char *out = NULL;
    assert_int_equal(run(NULL, args, &out), 2);
    char *want = it_xasprintf("%s:6:5: route \"task\": unknown key \"tll\"", bad);
    if (strstr(out, want) == NULL)
        fail_msg("expected \"%s\" in:\n%s", want, out);
    free(want);
    free(out);
    /* the same through STRATA_CONFIG */
    char *var = it_xasprintf("STRATA_CONFIG=%s", bad);
    const char *env[] = {var, NULL};
    assert_int_equal(run(env, NULL, &out), 2);
    assert_non_null(strstr(out, "STRATA_CONFIG: "));
    assert_non_null(strstr(out, ":6:5:"));
    free(out);
    free(var);
    /* a file that is not there */
    const char *missing[] = {"--config", "/nonexistent/strata.yaml", NULL};
    assert_int_equal(run(NULL, missing, &out), 2);
    assert_non_null(strstr(out, "/nonexistent/strata.yaml: cannot be read"));
    free(out);
    /* a route on strata's own path */
    char *own = write_file("own.yaml", "origins: [{name: a, url: 'http://127.0.0.1:9'}]\n"
                                       "routes: [{name: stats, match: {path: /cache/stats}}]\n");
    const char *own_args[] = {"--config", own, NULL};
    assert_int_equal(run(NULL, own_args, &out), 2);
    assert_non_null(strstr(out, ":2:"));
    assert_non_null(strstr(out, "route \"stats\""));
    assert_non_null(strstr(out, "claims strata's own /cache/*"));
    free(out);
    free(own);
    free(bad);
}

static void test_good_file_starts_and_reload(void **state)
{
    (void)state;
    char *path = write_file("good.yaml", good);
    const char *env[] = {"STRATA_WORKERS=1", NULL};
    const char *args[] = {"--config", path, NULL};
    sh_server *s = sh_start(env, args);
    assert_non_null(s);
    assert_true(wait_log(s, "proxy: 2 routes, 1 origin, 0 invalidation rules"));
    /* strata's own endpoints are untouched */
    SH_CALL_EXPECT(s, "GET", "/livez", NULL, NULL, NULL, NULL, 200);
    /* SIGHUP with a broken file: refused, the server goes on (the log is polled for 10 s) */
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("routes: [\n", f);
    fclose(f);
    assert_int_equal(sh_signal(s, SIGHUP), 0);
    assert_true(wait_log(s, "not reloaded, the old one stays"));
    assert_true(sh_log_contains(s, "YAML"));
    /* and with a good one: loaded */
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("origins: [{name: a, url: 'http://127.0.0.1:9'}]\n"
          "routes: [{name: one, match: {path: /one}}]\n",
          f);
    fclose(f);
    assert_int_equal(sh_signal(s, SIGHUP), 0);
    assert_true(wait_log(s, "SIGHUP: proxy: 1 routes, 1 origins"));
    assert_true(sh_healthy(s));
    assert_int_equal(sh_stop_check(s), 0);
    free(path);
}

static void test_upstream_alone(void **state)
{
    (void)state;
    const char *env[] = {"STRATA_WORKERS=1", "STRATA_UPSTREAM=http://127.0.0.1:9", NULL};
    sh_server *s = sh_start(env, NULL);
    assert_non_null(s);
    assert_true(wait_log(s, "proxy: 1 route, 1 origin"));
    assert_true(sh_log_contains(s, "STRATA_UPSTREAM"));
    assert_int_equal(sh_stop_check(s), 0);
    char *out = NULL;
    const char *bad[] = {"--upstream", "ftp://x", NULL};
    assert_int_equal(run(NULL, bad, &out), 2);
    assert_non_null(strstr(out, "--upstream ftp://x"));
    free(out);
    char *path = write_file("both.yaml", good);
    const char *both[] = {"--config", path, "--upstream", "http://127.0.0.1:9", NULL};
    assert_int_equal(run(NULL, both, &out), 2);
    assert_non_null(strstr(out, "give one of them"));
    free(out);
    /* a flag wins over the variable: --upstream over STRATA_CONFIG's bad file */
    char *bad_file = write_file("bad2.yaml", "nonsense: 1\n");
    char *var = it_xasprintf("STRATA_CONFIG=%s", bad_file);
    const char *env2[] = {"STRATA_WORKERS=1", var, NULL};
    const char *up[] = {"--upstream", "http://127.0.0.1:9", NULL};
    s = sh_start(env2, up);
    assert_non_null(s);
    assert_true(wait_log(s, "from --upstream"));
    assert_int_equal(sh_stop_check(s), 0);
    free(var);
    free(bad_file);
    free(path);
}

static int setup(void **state)
{
    (void)state;
    dir = it_make_temp_dir("strata-pc");
    return dir ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    it_remove_tree(dir);
    free(dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_file_refused_with_its_line),
        cmocka_unit_test(test_good_file_starts_and_reload),
        cmocka_unit_test(test_upstream_alone),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
