/* test_dashboard_browser.c: the dashboard in a real browser, against a real strata serve.
 *
 * Starts a redis-server and `strata serve` (two workers, REDIS_URL, an admin and a read token),
 * writes the keys the key browser is tried on (dash/k0..k49, each tagged g<i % 5>), puts the
 * server under load from a thread (writes, hits, misses, rate-limit calls, sessions: bounded in
 * count and time, stopped at the end), then runs tests/browser/dashboard.cjs: playwright-core
 * (from the npm registry, installed into the build tree once, STRATA_NPM_DIR) driving Debian's
 * headless /usr/bin/chromium over the DevTools protocol; what it checks is said at its top.
 * Screenshots are kept in STRATA_ARTIFACT_DIR. Afterwards the test checks from its own side that
 * the key deleted in the browser is gone from Redis too.
 *
 * Skipped, and saying why, without chromium, Node.js, npm or a reachable registry. playwright-core
 * is pinned to 1.55.x, the last line that runs on Debian 12's Node.js 18.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "it_tmp.h"
#include "server_harness.h"

#define PLAYWRIGHT "playwright-core@~1.55.0"
#define CHROMIUM   "/usr/bin/chromium"
#define ADMIN      "dashboard-admin-token-1"
#define READER     "dashboard-read-token-1"
#define LOAD_MAX   200000 /* requests the load sends at most */
#define LOAD_MS    180000 /* and for at most this long */

/* Installs playwright-core into STRATA_NPM_DIR unless it is there. 0, or -1 with why. */
static int install_playwright(char *why, size_t cap)
{
    struct stat st;
    if (stat(CHROMIUM, &st) != 0) {
        snprintf(why, cap, CHROMIUM " is not installed (scripts/deps.sh installs chromium)");
        return -1;
    }
    char *pkg = it_xasprintf("%s/node_modules/playwright-core/package.json", STRATA_NPM_DIR);
    int have = stat(pkg, &st) == 0;
    free(pkg);
    if (have)
        return 0;
    if (system("command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1") != 0) {
        snprintf(why, cap, "node or npm is not installed (scripts/deps.sh installs them)");
        return -1;
    }
    char *cmd = it_xasprintf("mkdir -p %s && timeout 300 npm install --prefix %s --no-audit "
                             "--no-fund --loglevel=error '" PLAYWRIGHT "' >%s/npm-playwright.log "
                             "2>&1",
                             STRATA_NPM_DIR, STRATA_NPM_DIR, STRATA_NPM_DIR);
    int rc = system(cmd);
    free(cmd);
    if (rc != 0) {
        snprintf(why, cap,
                 "npm install " PLAYWRIGHT " failed (no registry reachable?); see "
                 "%s/npm-playwright.log",
                 STRATA_NPM_DIR);
        return -1;
    }
    return 0;
}

typedef struct load {
    sh_server *s;
    atomic_int stop;
    atomic_long sent;
    atomic_long failed; /* answers that are not what the call should answer */
} load;

static void call(load *l, const char *method, const char *path, const char *body, long lo, long hi)
{
    sh_resp *r = sh_call(l->s, method, path, ADMIN, NULL, body ? "application/json" : NULL, body);
    if (r->status < lo || r->status > hi)
        atomic_fetch_add(&l->failed, 1);
    atomic_fetch_add(&l->sent, 1);
    sh_resp_free(r);
}

/* Writes new keys (so L1's keys and memory only grow), reads them back, misses, asks a rate
 * limit (some answers 429) and makes sessions, until told to stop or its bounds. */
static void *load_run(void *arg)
{
    load *l = arg;
    long deadline = sh_now_ms() + LOAD_MS;
    char path[96];
    for (long i = 0;
         !atomic_load(&l->stop) && atomic_load(&l->sent) < LOAD_MAX && sh_now_ms() < deadline;
         i++) {
        snprintf(path, sizeof path, "/v1/cache/load/n%ld", i);
        call(l, "PUT", path, NULL, 200, 299);
        call(l, "GET", path, NULL, 200, 200);
        snprintf(path, sizeof path, "/v1/cache/load/absent%ld", i);
        call(l, "GET", path, NULL, 404, 404);
        if (i % 5 == 0)
            call(l, "POST", "/v1/ratelimit/dash-load", "{\"limit\":20,\"period\":1}", 200, 429);
        if (i % 20 == 0)
            call(l, "POST", "/v1/sessions", "{\"user\":1}", 201, 201);
        sh_sleep_ms(1); /* a steady load, not all the machine's two cores */
    }
    return NULL;
}

static void test_dashboard_in_chromium(void **state)
{
    (void)state;
    char why[512];
    if (install_playwright(why, sizeof why) != 0) {
        fprintf(stderr, "skipped: %s\n", why);
        skip();
    }
    rh_server *redis = rh_start(NULL);
    assert_non_null(redis);
    char redis_env[512];
    snprintf(redis_env, sizeof redis_env, "REDIS_URL=%s", rh_url(redis));
    const char *env[] = {"STRATA_WORKERS=2", "STRATA_TOKENS=" ADMIN ":admin," READER ":read",
                         redis_env, NULL};
    sh_server *s = sh_start(env, NULL);
    assert_non_null(s);
    for (int i = 0; i < 50; i++) {
        char path[64], body[32];
        snprintf(path, sizeof path, "/v1/cache/dash/k%d?tags=g%d", i, i % 5);
        snprintf(body, sizeof body, "value k%d", i);
        sh_resp *r = sh_call(s, "PUT", path, ADMIN, NULL, "text/plain", body);
        assert_true(r->status >= 200 && r->status < 300);
        sh_resp_free(r);
    }
    load l = {.s = s};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, load_run, &l), 0);
    /* A few seconds of history under load before the page opens. */
    while (atomic_load(&l.sent) < 500)
        sh_sleep_ms(50);
    sh_sleep_ms(5000);
    char *cmd = it_xasprintf("NODE_PATH=%s/node_modules timeout 240 node "
                             "%s/tests/browser/dashboard.cjs http://127.0.0.1:%d " ADMIN " " READER
                             " %s 2>&1",
                             STRATA_NPM_DIR, STRATA_SOURCE_DIR, sh_port(s), STRATA_ARTIFACT_DIR);
    long started = sh_now_ms();
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char line[4096], out[65536] = "";
    while (fgets(line, sizeof line, p) != NULL)
        if (strlen(out) + strlen(line) < sizeof out)
            strcat(out, line);
    int rc = pclose(p);
    fprintf(stderr, "%s(browser: %ld ms; load: %ld requests)\n", out, sh_now_ms() - started,
            atomic_load(&l.sent));
    atomic_store(&l.stop, 1);
    pthread_join(t, NULL);
    free(cmd);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "all ok"));
    assert_int_equal(atomic_load(&l.failed), 0);
    /* The key deleted in the browser is gone from Redis too, not only from memory. */
    redisReply *rep = rh_command(redis, "EXISTS strata:dash:default:k12");
    assert_non_null(rep);
    assert_int_equal(rep->integer, 0);
    freeReplyObject(rep);
    rep = rh_command(redis, "EXISTS strata:dash:default:k11");
    assert_non_null(rep);
    assert_int_equal(rep->integer, 1);
    freeReplyObject(rep);
    assert_int_equal(sh_stop_check(s), 0);
    rh_stop(redis);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dashboard_in_chromium),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
