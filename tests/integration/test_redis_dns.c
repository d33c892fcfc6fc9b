/* test_redis_dns.c: a REDIS_URL host name that moves is followed without a restart (issue 16,
 * "DNS"; redis/resolve.c).
 *
 * The name is moved for real, through the system's resolver, never by editing the machine's
 * /etc/hosts: before anything else (no thread exists yet) the test enters a private mount
 * namespace (unshare(CLONE_NEWNS); as a non-root user, inside a user namespace of its own) and
 * bind-mounts a hosts file of its own over /etc/hosts, which only this process and its children
 * see, and which goes away with them. Two real redis-servers listen on the same port on
 * 127.0.0.1 and 127.0.0.2; the cache's REDIS_URL is redis://strata-dns-it:PORT.
 * - The name moves to the second server and the first is SIGKILLed: writes reach the second
 *   within a deadline (each reconnect asks for the name again), with no restart.
 * - The name moves back while both answer: writes reach the first again within a deadline (the
 *   name is looked up every RESOLVE_EVERY_MS too, so a server that never fails is left; here a
 *   lookup asked by the link's reconnect may come first, and either is the behaviour wanted).
 * Where no namespace can be made (no privileges for either kind), the tests are skipped and say
 * why. Labelled `topology` like the Sentinel tests. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "it_tmp.h"

#define NAME      "strata-dns-it"
#define FOLLOW_MS 15000 /* RESOLVE_EVERY_MS (5 s) and a reconnect, generously */

static char hosts[PATH_MAX];       /* our hosts file, bind-mounted over /etc/hosts */
static char no_ns[PATH_MAX + 200]; /* why the namespace could not be made ("" when it was) */
static rh_server *first, *second;

/* Points NAME at addr: the file is rewritten in place (same inode), so the bind mount shows it. */
static int point_name_at(const char *addr)
{
    char text[200];
    int len = snprintf(text, sizeof text, "127.0.0.1 localhost\n%s %s\n", addr, NAME);
    int fd = open(hosts, O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int ok = write(fd, text, (size_t)len) == len;
    close(fd);
    return ok ? 0 : -1;
}

static int write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int ok = write(fd, text, strlen(text)) == (ssize_t)strlen(text);
    close(fd);
    return ok ? 0 : -1;
}

/* A mount namespace of our own with our hosts file over /etc/hosts. Must run before any
 * thread: a user namespace cannot be entered by a threaded process. */
static void private_hosts(void)
{
    if (unshare(CLONE_NEWNS) != 0) {
        int e = errno;
        uid_t uid = getuid();
        gid_t gid = getgid();
        if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) {
            snprintf(no_ns, sizeof no_ns, "unshare(CLONE_NEWNS): %s; with CLONE_NEWUSER: %s",
                     strerror(e), strerror(errno));
            return;
        }
        char map[64];
        snprintf(map, sizeof map, "0 %u 1", (unsigned)uid);
        write_file("/proc/self/setgroups", "deny");
        if (write_file("/proc/self/uid_map", map) != 0) {
            snprintf(no_ns, sizeof no_ns, "uid_map: %s", strerror(errno));
            return;
        }
        snprintf(map, sizeof map, "0 %u 1", (unsigned)gid);
        write_file("/proc/self/gid_map", map);
    }
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        snprintf(no_ns, sizeof no_ns, "making / private: %s", strerror(errno));
        return;
    }
    snprintf(hosts, sizeof hosts, "%s/strata-dns-hosts-XXXXXX", it_temp_base());
    int fd = mkstemp(hosts);
    if (fd < 0) {
        snprintf(no_ns, sizeof no_ns, "mkstemp %s: %s", hosts, strerror(errno));
        return;
    }
    close(fd);
    if (point_name_at("127.0.0.1") != 0 || mount(hosts, "/etc/hosts", NULL, MS_BIND, NULL) != 0)
        snprintf(no_ns, sizeof no_ns, "bind-mounting %s over /etc/hosts: %s", hosts,
                 strerror(errno));
}

static int setup_all(void **state)
{
    (void)state;
    if (no_ns[0])
        return 0;
    first = rh_start_at("127.0.0.1", 0, NULL);
    second = first ? rh_start_at("127.0.0.2", rh_port(first), NULL) : NULL;
    return first && second ? 0 : -1;
}

static int teardown_all(void **state)
{
    (void)state;
    rh_stop(first);
    rh_stop(second);
    if (hosts[0])
        unlink(hosts); /* the mount goes with our namespace */
    return 0;
}

static strata_cache *cache;

static int on(rh_server *s, const char *key)
{
    redisReply *r = rh_command(s, "EXISTS strata:dns:t:%s", key);
    int yes = r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    if (r != NULL)
        freeReplyObject(r);
    return yes;
}

typedef struct landing {
    const char *key;
    rh_server *on;
} landing;

/* A write Redis took, found on the server we expect. */
static int lands(void *arg)
{
    landing *l = arg;
    strata_key k = {.ns = "dns", .tenant = "t", .key = l->key, .len = strlen(l->key)};
    return strata_cache_set(cache, &k, "v", 1, NULL) == STRATA_OK && on(l->on, l->key);
}

static void open_cache(void)
{
    static char url[200];
    snprintf(url, sizeof url, "redis://%s:%d", NAME, rh_port(first));
    strata_cache_config cfg;
    assert_int_equal(strata_cache_config_init(&cfg, NULL), 0);
    cfg.redis.url = url;
    cfg.redis.socket_timeout_ms = 300;
    cfg.redis.connect_timeout_ms = 300;
    cfg.log = rh_log_quiet;
    assert_int_equal(strata_cache_new(&cfg, &cache), 0);
}

static void test_name_moves_when_the_server_dies(void **state)
{
    (void)state;
    if (no_ns[0]) {
        fprintf(stderr, "skipped: no private mount namespace (%s)\n", no_ns);
        skip();
    }
    open_cache();
    landing before = {"before", first};
    assert_true(rh_wait_for(lands, &before, FOLLOW_MS));
    assert_false(on(second, "before"));
    strata_l2_stats st;
    strata_cache_l2_stats(cache, &st);
    char want[64];
    snprintf(want, sizeof want, "%s:%d", NAME, rh_port(first));
    assert_string_equal(st.primary, want);

    assert_int_equal(point_name_at("127.0.0.2"), 0);
    uint64_t t0 = rh_now_ms();
    assert_int_equal(rh_kill(first), 0);
    landing after = {"after", second};
    assert_true(rh_wait_for(lands, &after, FOLLOW_MS));
    fprintf(stderr, "writes reach the moved name %llu ms after the kill\n",
            (unsigned long long)(rh_now_ms() - t0));
}

static void test_name_moves_while_both_answer(void **state)
{
    (void)state;
    if (no_ns[0]) {
        fprintf(stderr, "skipped: no private mount namespace (%s)\n", no_ns);
        skip();
    }
    assert_non_null(cache); /* the test before made it, on the second server now */
    assert_int_equal(rh_restart(first), 0);
    /* The link is up on the second server, which answers: nothing fails from here on. */
    assert_true(rh_wait_for(rh_cache_coherent, cache, FOLLOW_MS));
    strata_l2_stats st;
    strata_cache_l2_stats(cache, &st);
    char want[64];
    snprintf(want, sizeof want, "%s:%d", NAME, rh_port(first));
    assert_string_equal(st.primary, want); /* the name, as written, whatever it resolves to */
    assert_int_equal(point_name_at("127.0.0.1"), 0);
    uint64_t t0 = rh_now_ms();
    landing back = {"back", first};
    assert_true(rh_wait_for(lands, &back, FOLLOW_MS));
    fprintf(stderr, "writes follow the name back %llu ms after it moved\n",
            (unsigned long long)(rh_now_ms() - t0));
    strata_cache_free(cache);
    cache = NULL;
}

int main(void)
{
    private_hosts(); /* first: no thread may exist yet */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name_moves_when_the_server_dies),
        cmocka_unit_test(test_name_moves_while_both_answer),
    };
    int rc = cmocka_run_group_tests(tests, setup_all, teardown_all);
    strata_cache_free(cache);
    return rc;
}
