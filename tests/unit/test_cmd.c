/* test_cmd.c: the commands strata sends, formatted in RESP by src/lib/redis/cmd.c, byte for byte
 * what hiredis' own formatter makes of the same arguments (empty and binary arguments, lengths
 * of every number of digits, a batch given as `many`), and the key that places a command in a
 * Redis Cluster. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <strata/errors.h>

#include "redis/cmd.h"

static void same_as_hiredis(const redis_cmd *c)
{
    const char *const *v = c->many ? c->many : c->argv;
    const size_t *l = c->many ? c->manylen : c->argvlen;
    char *want = NULL;
    int wlen = redisFormatCommandArgv(&want, c->argc, (const char **)v, l);
    assert_true(wlen > 0);
    assert_int_equal(strata__cmd_len(c), (size_t)wlen);
    char *got = NULL;
    assert_int_equal(strata__cmd_format(c, &got), wlen);
    assert_memory_equal(got, want, (size_t)wlen);
    strata__cmd_free(got);
    free(want);
}

static void test_format_matches_hiredis(void **state)
{
    (void)state;
    redis_cmd c;
    strata__cmd_get(&c, "k", 1);
    same_as_hiredis(&c);
    strata__cmd_set(&c, "strata:ns:t:key", 15, "v\0\r\nx", 5, 3600000, 1); /* binary value */
    same_as_hiredis(&c);
    strata__cmd_set(&c, "", 0, "", 0, 0, 0); /* empty arguments */
    same_as_hiredis(&c);
    static char big[123456]; /* a length of six digits */
    memset(big, 'b', sizeof big);
    strata__cmd_set(&c, "k", 1, big, sizeof big, 1, 0);
    same_as_hiredis(&c);
    const char *many[12] = {"UNLINK"};
    size_t lens[12] = {6};
    for (int i = 1; i < 12; i++)
        many[i] = "key-with-ten", lens[i] = (size_t)i; /* 11 arguments after UNLINK: argc 12 */
    redis_cmd u = {.argc = 12, .many = many, .manylen = lens};
    same_as_hiredis(&u);
}

static void test_cluster_key(void **state)
{
    (void)state;
    redis_cmd c;
    const char *k;
    size_t len;
    strata__cmd_get(&c, "abc", 3);
    assert_int_equal(strata__cmd_key(&c, &k, &len), 1);
    assert_int_equal(len, 3);
    assert_memory_equal(k, "abc", 3);
    redis_cmd e = {
        .argc = 5, .argv = {"EVALSHA", "sha", "2", "key1", "key2"}, .argvlen = {7, 3, 1, 4, 4}};
    assert_int_equal(strata__cmd_key(&e, &k, &len), 1);
    assert_memory_equal(k, "key1", 4);
    redis_cmd e0 = {.argc = 4, .argv = {"EVAL", "return 1", "0", "x"}, .argvlen = {4, 8, 1, 1}};
    assert_int_equal(strata__cmd_key(&e0, &k, &len), 0); /* no keys: any node */
    redis_cmd ping = {.argc = 1, .argv = {"PING"}, .argvlen = {4}};
    assert_int_equal(strata__cmd_key(&ping, &k, &len), 0);
    redis_cmd scan = {.argc = 2, .argv = {"SCAN", "0"}, .argvlen = {4, 1}};
    assert_int_equal(strata__cmd_key(&scan, &k, &len), 0);
}

static redisReply *error_reply(const char *text)
{
    redisReader *rd = redisReaderCreate();
    redisReaderFeed(rd, text, strlen(text));
    void *r = NULL;
    assert_int_equal(redisReaderGetReply(rd, &r), REDIS_OK);
    redisReaderFree(rd);
    return r;
}

static void test_error_replies(void **state)
{
    (void)state;
    static const struct {
        const char *resp;
        int rc;
    } cases[] = {
        {"-READONLY You can't write against a read only replica.\r\n", STRATA_EREADONLY},
        {"-CLUSTERDOWN The cluster is down\r\n", STRATA_EUNAVAILABLE},
        {"-TRYAGAIN Multiple keys request during rehashing of slot\r\n", STRATA_EUNAVAILABLE},
        {"-MASTERDOWN Link with MASTER is down\r\n", STRATA_EUNAVAILABLE},
        {"-LOADING Redis is loading the dataset in memory\r\n", STRATA_EUNAVAILABLE},
        {"-NOPERM this user has no permissions\r\n", STRATA_EPROTO},
        {"-ERR wrong number of arguments\r\n", STRATA_EPROTO},
        {"+OK\r\n", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        redisReply *r = error_reply(cases[i].resp);
        assert_int_equal(strata__reply_error(r), cases[i].rc);
        freeReplyObject(r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_matches_hiredis),
        cmocka_unit_test(test_cluster_key),
        cmocka_unit_test(test_error_replies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
