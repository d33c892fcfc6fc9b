/* test_llm_openai_sdk.c: the official `openai` npm SDK as a client of strata's LLM gateway.
 *
 * The test starts the test origin (its fake OpenAI API) and `strata serve --llm-upstream`, then
 * runs tests/npm/openai_sdk.cjs with Node.js against it: chat, a replayed stream, a streamed miss
 * then a plain hit, embeddings with the SDK's defaults, and an error strata made, each read
 * through the SDK. The package is installed from the npm registry into the build tree once
 * (STRATA_NPM_DIR); without Node.js, npm or a reachable registry the test is skipped and says
 * why. The SDK is pinned to its 4.x line, which runs on Debian 12's Node.js 18 (5.x and later
 * need a newer Node.js).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "it_tmp.h"
#include "proxy_harness.h"

#define SDK "openai@^4"

/* Installs the SDK into STRATA_NPM_DIR unless it is there. Returns 0, or -1 with why. */
static int install_sdk(char *why, size_t cap)
{
    struct stat st;
    char *pkg = it_xasprintf("%s/node_modules/openai/package.json", STRATA_NPM_DIR);
    int have = stat(pkg, &st) == 0;
    free(pkg);
    if (have)
        return 0;
    if (system("command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1") != 0) {
        snprintf(why, cap, "node or npm is not installed (scripts/deps.sh installs them)");
        return -1;
    }
    char *cmd = it_xasprintf("mkdir -p %s && timeout 300 npm install --prefix %s --no-audit "
                             "--no-fund --loglevel=error '" SDK "' >%s/npm.log 2>&1",
                             STRATA_NPM_DIR, STRATA_NPM_DIR, STRATA_NPM_DIR);
    int rc = system(cmd);
    free(cmd);
    if (rc != 0) {
        snprintf(why, cap, "npm install " SDK " failed (no registry reachable?); see %s/npm.log",
                 STRATA_NPM_DIR);
        return -1;
    }
    return 0;
}

static void test_openai_sdk_against_strata(void **state)
{
    (void)state;
    char why[512];
    if (install_sdk(why, sizeof why) != 0) {
        fprintf(stderr, "skipped: %s\n", why);
        skip();
    }
    oh_origin *o = oh_start(NULL);
    assert_non_null(o);
    char *url = it_xasprintf("http://127.0.0.1:%d/v1", oh_port(o));
    const char *env[] = {"STRATA_WORKERS=2", "STRATA_MAX_BODY=1048576", NULL};
    const char *args[] = {"--llm-upstream", url, NULL};
    sh_server *s = sh_start(env, args);
    assert_non_null(s);
    char *cmd =
        it_xasprintf("NODE_PATH=%s/node_modules timeout 120 node %s/tests/npm/openai_sdk.cjs "
                     "http://127.0.0.1:%d/v1 2>&1",
                     STRATA_NPM_DIR, STRATA_SOURCE_DIR, sh_port(s));
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char line[4096], out[65536] = "";
    while (fgets(line, sizeof line, p) != NULL)
        if (strlen(out) + strlen(line) < sizeof out)
            strcat(out, line);
    int rc = pclose(p);
    fprintf(stderr, "%s", out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "all ok"));
    /* The provider saw the SDK's own key (no provider key is configured). */
    sh_resp *r = sh_request_port(oh_port(o), "GET", "/__openai", NULL, NULL, 0, 0);
    assert_non_null(strstr(r->body, "\"last_authorization\":\"Bearer sk-client-key\""));
    assert_non_null(strstr(r->body, "\"chat\":2")); /* two misses; the rest were the cache's */
    sh_resp_free(r);
    free(cmd);
    free(url);
    assert_int_equal(sh_stop_check(s), 0);
    oh_stop(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_openai_sdk_against_strata),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
