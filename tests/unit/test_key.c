/* test_key.c: names, stored keys and glob matching (key.h).
 *
 * A stored key is the only thing that keeps tenants and namespaces apart in a shared Redis, so
 * these tests pin its exact bytes, its limits (nothing truncated, nothing written past the
 * buffer), its collision-freedom and its inverse, strata_key_parse(). The glob cases are taken
 * from Redis' stringmatchlen() (src/util.c) as KEYS and SCAN MATCH use it, byte for byte:
 * expected answers come from Redis' rules, never from running this library. Every pattern and
 * subject is copied into a heap buffer of exactly its length so that ASan catches a matcher that
 * reads past either.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <strata/errors.h>
#include <strata/key.h>

#define BIG_CAP STRATA_STORED_KEY_MAX(STRATA_KEY_MAX_LIMIT)

/* ---- helpers ------------------------------------------------------------------------------ */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
    /* xorshift64*: deterministic, so a failure reproduces. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

static size_t rng_range(size_t lo, size_t hi) /* inclusive */
{
    return lo + (size_t)(rng() % (uint64_t)(hi - lo + 1));
}

static const char name_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-";

static int in_name_alphabet(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
}

static void random_name(char *out, size_t maxlen, int allow_colon)
{
    size_t n = rng_range(1, maxlen);
    for (size_t i = 0; i < n; i++) {
        if (allow_colon && rng() % 5 == 0) {
            out[i] = ':';
        } else {
            out[i] = name_alphabet[rng() % (sizeof name_alphabet - 1)];
        }
    }
    out[n] = '\0';
}

/* Renders bytes printable for failure messages. */
static const char *show(const void *p, size_t len, char *out, size_t cap)
{
    const unsigned char *b = p;
    size_t o = 0;
    for (size_t i = 0; i < len && o + 5 < cap; i++) {
        if (b[i] >= 0x20 && b[i] < 0x7f && b[i] != '\\' && b[i] != '"') {
            out[o++] = (char)b[i];
        } else {
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", b[i]);
        }
    }
    out[o] = '\0';
    return out;
}

static void fill_name(char *out, size_t n, char c)
{
    memset(out, c, n);
    out[n] = '\0';
}

/* Builds (ns, tenant, key) under prefix into a large buffer. */
static int build(const char *prefix, const char *ns, const char *tenant, const void *key,
                 size_t len, size_t key_max, char *buf, size_t *n)
{
    strata_key k = {ns, tenant, key, len};
    return strata_key_build(prefix, &k, key_max, buf, BIG_CAP, n);
}

static void assert_built(const char *prefix, const char *ns, const char *tenant, const void *key,
                         size_t len, const void *expect, size_t expect_len)
{
    static char buf[BIG_CAP];
    size_t n = (size_t)-1;
    char a[4 * BIG_CAP + 8], b[4 * BIG_CAP + 8];
    int rc = build(prefix, ns, tenant, key, len, 0, buf, &n);
    if (rc != 0) {
        fail_msg("build(%s, %s, %s, \"%s\") = %s, expected 0", prefix, ns,
                 tenant ? tenant : "(null)", show(key, len, a, sizeof a), strata_err_name(rc));
    }
    if (n != expect_len || memcmp(buf, expect, expect_len) != 0) {
        fail_msg("build gave \"%s\" (%zu bytes), expected \"%s\" (%zu bytes)",
                 show(buf, n <= BIG_CAP ? n : 0, a, sizeof a), n,
                 show(expect, expect_len, b, sizeof b), expect_len);
    }
}

/* ---- strata_name_check -------------------------------------------------------------------- */

static void test_name_check_valid(void **state)
{
    (void)state;
    char name[STRATA_NAME_MAX + 2];
    assert_int_equal(strata_name_check("a"), 0);
    assert_int_equal(strata_name_check("Z"), 0);
    assert_int_equal(strata_name_check("0"), 0);
    assert_int_equal(strata_name_check("_"), 0);
    assert_int_equal(strata_name_check("."), 0);
    assert_int_equal(strata_name_check("-"), 0);
    assert_int_equal(strata_name_check("llm"), 0);
    assert_int_equal(strata_name_check("acme-corp_2.eu"), 0);
    assert_int_equal(strata_name_check(STRATA_DEFAULT_TENANT), 0);
    assert_int_equal(strata_name_check(name_alphabet + 1), 0); /* 64 bytes, every class */
    assert_int_equal(strlen(name_alphabet + 1), STRATA_NAME_MAX);
    fill_name(name, STRATA_NAME_MAX, 'x');
    assert_int_equal(strata_name_check(name), 0);
}

static void test_name_check_invalid(void **state)
{
    (void)state;
    char name[STRATA_NAME_MAX + 2];
    assert_int_equal(strata_name_check(NULL), STRATA_EBADNAME);
    assert_int_equal(strata_name_check(""), STRATA_EBADNAME);
    fill_name(name, STRATA_NAME_MAX + 1, 'x');
    assert_int_equal(strata_name_check(name), STRATA_EBADNAME);
    assert_int_equal(strata_name_check(name_alphabet), STRATA_EBADNAME); /* 65 bytes */
    assert_int_equal(strata_name_check("a:b"), STRATA_EBADNAME);
    assert_int_equal(strata_name_check(":"), STRATA_EBADNAME);
    assert_int_equal(strata_name_check("a{b}"), STRATA_EBADNAME);
    assert_int_equal(strata_name_check("{"), STRATA_EBADNAME);
    assert_int_equal(strata_name_check("}"), STRATA_EBADNAME);
    assert_int_equal(strata_name_check("a b"), STRATA_EBADNAME);
    assert_int_equal(strata_name_check(" a"), STRATA_EBADNAME);
    assert_int_equal(strata_name_check("a "), STRATA_EBADNAME);
    assert_int_equal(strata_name_check("caf\xc3\xa9"), STRATA_EBADNAME);
    assert_int_equal(strata_name_check("\xff"), STRATA_EBADNAME);
    assert_int_equal(strata_name_check("a\nb"), STRATA_EBADNAME);
    assert_int_equal(strata_name_check("a\tb"), STRATA_EBADNAME);
    assert_int_equal(strata_name_check("\x01"), STRATA_EBADNAME);
    assert_int_equal(strata_name_check("a\x7f"), STRATA_EBADNAME);
    assert_int_equal(strata_name_check("a/b"), STRATA_EBADNAME);
    assert_int_equal(strata_name_check("a*"), STRATA_EBADNAME);
    assert_int_equal(strata_name_check("a?"), STRATA_EBADNAME);
    assert_int_equal(strata_name_check("a[b]"), STRATA_EBADNAME);
    assert_int_equal(strata_name_check("a\\b"), STRATA_EBADNAME);
}

static void test_name_check_every_byte(void **state)
{
    (void)state;
    /* Each byte alone, and in the middle of a valid name: accepted iff in [A-Za-z0-9_.-]. */
    for (int c = 1; c < 256; c++) {
        char one[2] = {(char)c, '\0'};
        char mid[4] = {'a', (char)c, 'b', '\0'};
        int expect = in_name_alphabet((unsigned char)c) ? 0 : STRATA_EBADNAME;
        if (strata_name_check(one) != expect || strata_name_check(mid) != expect) {
            fail_msg("strata_name_check with byte 0x%02x: got %s / %s, expected %s", c,
                     strata_err_name(strata_name_check(one)),
                     strata_err_name(strata_name_check(mid)), strata_err_name(expect));
        }
    }
}

/* ---- strata_prefix_check ------------------------------------------------------------------ */

static void test_prefix_check(void **state)
{
    (void)state;
    char p[STRATA_PREFIX_MAX + 2];
    assert_int_equal(strata_prefix_check(STRATA_DEFAULT_PREFIX), 0);
    assert_int_equal(strata_prefix_check("cache"), 0);
    assert_int_equal(strata_prefix_check("app.v1"), 0);
    assert_int_equal(strata_prefix_check("x-y_z.0"), 0);
    /* No ':' in a prefix: "p:a" + (b, t, k) and "p" + (a, b, t:k) would build the same key, so
     * two deployments sharing a Redis could read each other's entries. */
    assert_int_equal(strata_prefix_check("app:v1"), STRATA_EBADNAME);
    assert_int_equal(strata_prefix_check(":"), STRATA_EBADNAME);
    assert_int_equal(strata_prefix_check("a::b:"), STRATA_EBADNAME);
    fill_name(p, STRATA_PREFIX_MAX, ':');
    assert_int_equal(strata_prefix_check(p), STRATA_EBADNAME);
    fill_name(p, STRATA_PREFIX_MAX, 'p');
    assert_int_equal(strata_prefix_check(p), 0);

    fill_name(p, STRATA_PREFIX_MAX + 1, 'p');
    assert_int_equal(strata_prefix_check(p), STRATA_EBADNAME);
    assert_int_equal(strata_prefix_check(NULL), STRATA_EBADNAME);
    assert_int_equal(strata_prefix_check(""), STRATA_EBADNAME);
    assert_int_equal(strata_prefix_check("a b"), STRATA_EBADNAME);
    assert_int_equal(strata_prefix_check("a{b"), STRATA_EBADNAME);
    assert_int_equal(strata_prefix_check("a}"), STRATA_EBADNAME);
    assert_int_equal(strata_prefix_check("a*"), STRATA_EBADNAME);
    assert_int_equal(strata_prefix_check("\xc3\xa9"), STRATA_EBADNAME);
    assert_int_equal(strata_prefix_check("a\n"), STRATA_EBADNAME);

    for (int c = 1; c < 256; c++) {
        char one[2] = {(char)c, '\0'};
        char mid[4] = {'a', (char)c, 'b', '\0'};
        int expect = in_name_alphabet((unsigned char)c) ? 0 : STRATA_EBADNAME;
        if (strata_prefix_check(one) != expect || strata_prefix_check(mid) != expect) {
            fail_msg("strata_prefix_check with byte 0x%02x: got %s / %s, expected %s", c,
                     strata_err_name(strata_prefix_check(one)),
                     strata_err_name(strata_prefix_check(mid)), strata_err_name(expect));
        }
    }
}

/* ---- strata_key_build --------------------------------------------------------------------- */

static void test_build_exact_bytes(void **state)
{
    (void)state;
    /* The example from key.h, with the buffer size it suggests. */
    char buf[STRATA_STORED_KEY_MAX(STRATA_KEY_MAX_DEFAULT)];
    size_t n = 0;
    strata_key k = {"llm", "acme", "prompt:42", 9};
    assert_int_equal(strata_key_build("strata", &k, 0, buf, sizeof buf, &n), 0);
    assert_int_equal(n, strlen("strata:llm:acme:prompt:42"));
    assert_memory_equal(buf, "strata:llm:acme:prompt:42", n);

    assert_built("strata", "llm", "acme", "prompt:42", 9, "strata:llm:acme:prompt:42", 25);
    assert_built("app.v1", "ns", "t", "k", 1, "app.v1:ns:t:k", 13);
    assert_built("p", "n", "t", ":", 1, "p:n:t::", 7);
    assert_built("p", "a.b", "c-d", "e_f", 3, "p:a.b:c-d:e_f", 13);
}

static void test_build_default_tenant(void **state)
{
    (void)state;
    static char b1[BIG_CAP], b2[BIG_CAP];
    size_t n1 = 0, n2 = 0;
    assert_built("strata", "llm", NULL, "k", 1, "strata:llm:default:k", 20);
    /* NULL and "default" are the same address. */
    assert_int_equal(build("strata", "llm", NULL, "key", 3, 0, b1, &n1), 0);
    assert_int_equal(build("strata", "llm", STRATA_DEFAULT_TENANT, "key", 3, 0, b2, &n2), 0);
    assert_int_equal(n1, n2);
    assert_memory_equal(b1, b2, n1);
    /* An empty tenant is not the default: it is a bad name. */
    assert_int_equal(build("strata", "llm", "", "key", 3, 0, b1, &n1), STRATA_EBADNAME);
}

static void test_build_empty_key(void **state)
{
    (void)state;
    static char buf[BIG_CAP];
    size_t n;
    assert_int_equal(build("strata", "llm", "acme", "", 0, 0, buf, &n), STRATA_EKEYEMPTY);
    assert_int_equal(build("strata", "llm", "acme", "abc", 0, 0, buf, &n), STRATA_EKEYEMPTY);
    assert_int_equal(build("strata", "llm", "acme", NULL, 0, 0, buf, &n), STRATA_EKEYEMPTY);
    assert_int_equal(build("strata", "llm", "acme", "", 0, 10, buf, &n), STRATA_EKEYEMPTY);
}

static void test_build_key_length_limits(void **state)
{
    (void)state;
    static char buf[BIG_CAP];
    static char key[STRATA_KEY_MAX_LIMIT + 2];
    size_t n = 0;
    memset(key, 'k', sizeof key);

    /* Default limit (key_max 0): 512 bytes fit, 513 do not. */
    assert_int_equal(build("strata", "llm", "acme", key, 1, 0, buf, &n), 0);
    assert_int_equal(build("strata", "llm", "acme", key, STRATA_KEY_MAX_DEFAULT, 0, buf, &n), 0);
    assert_int_equal(n, strlen("strata:llm:acme:") + STRATA_KEY_MAX_DEFAULT);
    assert_memory_equal(buf, "strata:llm:acme:", 16);
    assert_memory_equal(buf + 16, key, STRATA_KEY_MAX_DEFAULT);
    assert_int_equal(build("strata", "llm", "acme", key, STRATA_KEY_MAX_DEFAULT + 1, 0, buf, &n),
                     STRATA_EKEYLONG);
    assert_int_equal(build("strata", "llm", "acme", key, STRATA_KEY_MAX_LIMIT + 1, 0, buf, &n),
                     STRATA_EKEYLONG);

    /* A smaller custom limit. */
    assert_int_equal(build("strata", "llm", "acme", key, 10, 10, buf, &n), 0);
    assert_int_equal(n, 26);
    assert_int_equal(build("strata", "llm", "acme", key, 11, 10, buf, &n), STRATA_EKEYLONG);
    assert_int_equal(build("strata", "llm", "acme", key, 1, 1, buf, &n), 0);
    assert_int_equal(build("strata", "llm", "acme", key, 2, 1, buf, &n), STRATA_EKEYLONG);

    /* A larger custom limit, up to the configurable maximum. */
    assert_int_equal(build("strata", "llm", "acme", key, 1000, 1000, buf, &n), 0);
    assert_int_equal(n, 16 + 1000);
    assert_int_equal(build("strata", "llm", "acme", key, 1001, 1000, buf, &n), STRATA_EKEYLONG);
    assert_int_equal(
        build("strata", "llm", "acme", key, STRATA_KEY_MAX_LIMIT, STRATA_KEY_MAX_LIMIT, buf, &n),
        0);
    assert_int_equal(n, 16 + STRATA_KEY_MAX_LIMIT);
    assert_int_equal(build("strata", "llm", "acme", key, STRATA_KEY_MAX_LIMIT + 1,
                           STRATA_KEY_MAX_LIMIT, buf, &n),
                     STRATA_EKEYLONG);
}

static void test_build_longest_fits_stored_key_max(void **state)
{
    (void)state;
    /* The longest everything, in a buffer of exactly STRATA_STORED_KEY_MAX(512) bytes. */
    char buf[STRATA_STORED_KEY_MAX(STRATA_KEY_MAX_DEFAULT)];
    char prefix[STRATA_PREFIX_MAX + 1], ns[STRATA_NAME_MAX + 1], tenant[STRATA_NAME_MAX + 1];
    char key[STRATA_KEY_MAX_DEFAULT];
    size_t n = 0;
    fill_name(prefix, STRATA_PREFIX_MAX, 'p');
    fill_name(ns, STRATA_NAME_MAX, 'n');
    fill_name(tenant, STRATA_NAME_MAX, 't');
    memset(key, ':', sizeof key);
    strata_key k = {ns, tenant, key, sizeof key};
    assert_int_equal(strata_key_build(prefix, &k, 0, buf, sizeof buf, &n), 0);
    assert_int_equal(n, sizeof buf);
    assert_memory_equal(buf, prefix, STRATA_PREFIX_MAX);
    assert_int_equal(buf[STRATA_PREFIX_MAX], ':');
    assert_memory_equal(buf + STRATA_PREFIX_MAX + 1, ns, STRATA_NAME_MAX);
    assert_int_equal(buf[STRATA_PREFIX_MAX + 1 + STRATA_NAME_MAX], ':');
    assert_memory_equal(buf + STRATA_PREFIX_MAX + 2 + STRATA_NAME_MAX, tenant, STRATA_NAME_MAX);
    assert_int_equal(buf[STRATA_PREFIX_MAX + 2 + 2 * STRATA_NAME_MAX], ':');
    assert_memory_equal(buf + STRATA_PREFIX_MAX + 3 + 2 * STRATA_NAME_MAX, key, sizeof key);

    /* The same with a custom limit and its own bound. */
    static char key2[1000];
    static char buf2[STRATA_STORED_KEY_MAX(1000)];
    memset(key2, 'q', sizeof key2);
    strata_key k2 = {ns, tenant, key2, sizeof key2};
    assert_int_equal(strata_key_build(prefix, &k2, 1000, buf2, sizeof buf2, &n), 0);
    assert_int_equal(n, sizeof buf2);
}

static void test_build_binary_key_preserved(void **state)
{
    (void)state;
    static const char key[] = "a\0:b\0\xff::\0";
    static const char expect[] = "strata:llm:acme:a\0:b\0\xff::\0";
    assert_built("strata", "llm", "acme", key, sizeof key - 1, expect, sizeof expect - 1);

    static const char nul1[] = "\0";
    assert_built("strata", "n", "t", nul1, 1, "strata:n:t:\0", 12);

    /* Every byte value in one key. */
    unsigned char all[256];
    char expect_all[11 + 256];
    for (int i = 0; i < 256; i++) {
        all[i] = (unsigned char)i;
    }
    memcpy(expect_all, "strata:n:t:", 11);
    memcpy(expect_all + 11, all, sizeof all);
    assert_built("strata", "n", "t", all, sizeof all, expect_all, sizeof expect_all);
}

static void test_build_buffer_too_small(void **state)
{
    (void)state;
    enum { CANARY = 0xA5, SLACK = 32 };
    const char *expect = "strata:llm:acme:prompt:42";
    const size_t need = strlen(expect);
    strata_key k = {"llm", "acme", "prompt:42", 9};
    char buf[64];

    for (size_t cap = 0; cap < need; cap++) {
        size_t n = 12345;
        memset(buf, CANARY, sizeof buf);
        int rc = strata_key_build("strata", &k, 0, buf, cap, &n);
        if (rc != STRATA_ERANGE) {
            fail_msg("cap %zu (need %zu): got %s, expected STRATA_ERANGE", cap, need,
                     strata_err_name(rc));
        }
        for (size_t i = cap; i < need + SLACK; i++) {
            if ((unsigned char)buf[i] != CANARY) {
                fail_msg("cap %zu: byte %zu past cap was written (0x%02x)", cap, i,
                         (unsigned char)buf[i]);
            }
        }
    }

    /* Exactly enough: the stored key is bytes, no terminator is needed. */
    size_t n = 0;
    memset(buf, CANARY, sizeof buf);
    assert_int_equal(strata_key_build("strata", &k, 0, buf, need, &n), 0);
    assert_int_equal(n, need);
    assert_memory_equal(buf, expect, need);
    for (size_t i = need; i < need + SLACK; i++) {
        assert_int_equal((unsigned char)buf[i], CANARY);
    }

    /* Too small for a long key too (the limit is fine, the buffer is not). */
    static char key[STRATA_KEY_MAX_DEFAULT];
    static char big[STRATA_STORED_KEY_MAX(STRATA_KEY_MAX_DEFAULT) + SLACK];
    memset(key, 'x', sizeof key);
    strata_key kl = {"llm", "acme", key, sizeof key};
    memset(big, CANARY, sizeof big);
    assert_int_equal(strata_key_build("strata", &kl, 0, big, 16 + sizeof key - 1, &n),
                     STRATA_ERANGE);
    for (size_t i = 16 + sizeof key - 1; i < sizeof big; i++) {
        assert_int_equal((unsigned char)big[i], CANARY);
    }
}

static void test_build_bad_names(void **state)
{
    (void)state;
    static char buf[BIG_CAP];
    char long_name[STRATA_NAME_MAX + 2];
    char long_prefix[STRATA_PREFIX_MAX + 2];
    size_t n;
    fill_name(long_name, STRATA_NAME_MAX + 1, 'a');
    fill_name(long_prefix, STRATA_PREFIX_MAX + 1, 'a');

    const char *bad[] = {"", "a:b", "a{b}", "a b", "caf\xc3\xa9", "a\n", "*", long_name};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(build("strata", bad[i], "acme", "k", 1, 0, buf, &n), STRATA_EBADNAME);
        assert_int_equal(build("strata", "llm", bad[i], "k", 1, 0, buf, &n), STRATA_EBADNAME);
    }
    assert_int_equal(build("strata", NULL, "acme", "k", 1, 0, buf, &n), STRATA_EBADNAME);

    const char *bad_prefix[] = {"", "a b", "a{", "\xc3\xa9", "a*", long_prefix};
    for (size_t i = 0; i < sizeof bad_prefix / sizeof bad_prefix[0]; i++) {
        assert_int_equal(build(bad_prefix[i], "llm", "acme", "k", 1, 0, buf, &n), STRATA_EBADNAME);
    }

    /* The longest valid names are fine. */
    long_name[STRATA_NAME_MAX] = '\0';
    long_prefix[STRATA_PREFIX_MAX] = '\0';
    assert_int_equal(build(long_prefix, long_name, long_name, "k", 1, 0, buf, &n), 0);
    assert_int_equal(n, STRATA_PREFIX_MAX + 2 * STRATA_NAME_MAX + 3 + 1);
}

typedef struct tuple {
    const char *ns;
    const char *tenant;
    const char *key;
    size_t len;
} tuple;

static void test_build_collision_free(void **state)
{
    (void)state;
    /* Small alphabets chosen so that plain concatenation (with or without ':' between the
     * parts) produces many equal strings; the stored keys must all differ. */
    const char *nss[] = {"a", "ab", "a.b", "b", "a-b", "ab.c"};
    const char *tenants[] = {NULL, "b", "bc", "c", "a", "b.c", "defaul", "t"};
    static const struct {
        const char *key;
        size_t len;
    } keys[] = {{"c", 1},  {"bc", 2},        {"c:d", 3}, {"b:c", 3}, {"d", 1},
                {":", 1},  {"a:b:c", 5},     {"\0", 1},  {"c\0", 2}, {"b.c:d", 5},
                {"::", 2}, {"default:c", 9}, {"t:c", 3}, {"c:", 2},  {"ab:c:d", 6}};
    enum { NNS = 6, NT = 8, NK = 15, N = NNS * NT * NK };
    static char stored[N][128];
    static size_t stored_len[N];
    static tuple tuples[N];
    static char naive[N][128];
    size_t count = 0;

    assert_int_equal(sizeof nss / sizeof nss[0], NNS);
    assert_int_equal(sizeof tenants / sizeof tenants[0], NT);
    assert_int_equal(sizeof keys / sizeof keys[0], NK);

    for (size_t i = 0; i < NNS; i++) {
        for (size_t j = 0; j < NT; j++) {
            for (size_t l = 0; l < NK; l++) {
                strata_key k = {nss[i], tenants[j], keys[l].key, keys[l].len};
                size_t n = 0;
                int rc = strata_key_build("p", &k, 0, stored[count], sizeof stored[count], &n);
                assert_int_equal(rc, 0);
                stored_len[count] = n;
                tuples[count] =
                    (tuple){nss[i], tenants[j] ? tenants[j] : "default", keys[l].key, keys[l].len};
                snprintf(naive[count], sizeof naive[count], "%s%s%.*s", nss[i],
                         tenants[j] ? tenants[j] : "default", (int)keys[l].len, keys[l].key);
                count++;
            }
        }
    }

    /* The set is a meaningful one: plain concatenation of the parts does collide. */
    int naive_collisions = 0;
    for (size_t x = 0; x < count; x++) {
        for (size_t y = x + 1; y < count; y++) {
            if (strcmp(naive[x], naive[y]) == 0) {
                naive_collisions++;
            }
        }
    }
    assert_true(naive_collisions > 0);

    char a[512], b[512];
    for (size_t x = 0; x < count; x++) {
        for (size_t y = x + 1; y < count; y++) {
            int same_tuple = strcmp(tuples[x].ns, tuples[y].ns) == 0 &&
                             strcmp(tuples[x].tenant, tuples[y].tenant) == 0 &&
                             tuples[x].len == tuples[y].len &&
                             memcmp(tuples[x].key, tuples[y].key, tuples[x].len) == 0;
            int same_bytes =
                stored_len[x] == stored_len[y] && memcmp(stored[x], stored[y], stored_len[x]) == 0;
            if (same_tuple != same_bytes) {
                fail_msg("(%s, %s, \"%s\") and (%s, %s, \"%s\"): stored keys \"%s\" and \"%s\"",
                         tuples[x].ns, tuples[x].tenant,
                         show(tuples[x].key, tuples[x].len, a, sizeof a), tuples[y].ns,
                         tuples[y].tenant, show(tuples[y].key, tuples[y].len, b, sizeof b),
                         stored[x], stored[y]);
            }
        }
    }

    /* Explicit pairs that collide under separator-free concatenation ("abcd") or under
     * concatenation with ':' when a key holds ':' and names could too. */
    static char s1[BIG_CAP], s2[BIG_CAP];
    size_t n1, n2;
    assert_int_equal(build("p", "ab", "c", "d", 1, 0, s1, &n1), 0);
    assert_int_equal(build("p", "a", "bc", "d", 1, 0, s2, &n2), 0);
    assert_false(n1 == n2 && memcmp(s1, s2, n1) == 0);
    assert_int_equal(build("p", "a", "b", "cd", 2, 0, s2, &n2), 0);
    assert_false(n1 == n2 && memcmp(s1, s2, n1) == 0);
    assert_int_equal(build("p", "abc", "d", "x", 1, 0, s1, &n1), 0);
    assert_int_equal(build("p", "ab", "cd", "x", 1, 0, s2, &n2), 0);
    assert_false(n1 == n2 && memcmp(s1, s2, n1) == 0);
    /* (a, b, "c:d") vs (a, "b:c", d): the second is refused, so it cannot collide. */
    assert_int_equal(build("p", "a", "b", "c:d", 3, 0, s1, &n1), 0);
    assert_int_equal(build("p", "a", "b:c", "d", 1, 0, s2, &n2), STRATA_EBADNAME);
    assert_int_equal(build("p", "a:b", "c", "d", 1, 0, s2, &n2), STRATA_EBADNAME);
    /* Tenant and namespace swapped. */
    assert_int_equal(build("p", "x", "y", "k", 1, 0, s1, &n1), 0);
    assert_int_equal(build("p", "y", "x", "k", 1, 0, s2, &n2), 0);
    assert_false(n1 == n2 && memcmp(s1, s2, n1) == 0);
}

/* ---- strata_key_parse --------------------------------------------------------------------- */

static void check_parse_ok(const char *prefix, const char *stored, size_t len, const char *ns,
                           const char *tenant, const char *key, size_t key_len)
{
    strata_key_parts parts;
    char a[512];
    memset(&parts, 0, sizeof parts);
    int rc = strata_key_parse(prefix, stored, len, &parts);
    if (rc != 0) {
        fail_msg("parse(%s, \"%s\") = %s, expected 0", prefix, show(stored, len, a, sizeof a),
                 strata_err_name(rc));
    }
    assert_int_equal(parts.ns_len, strlen(ns));
    assert_memory_equal(parts.ns, ns, parts.ns_len);
    assert_int_equal(parts.tenant_len, strlen(tenant));
    assert_memory_equal(parts.tenant, tenant, parts.tenant_len);
    assert_int_equal(parts.key_len, key_len);
    assert_memory_equal(parts.key, key, key_len);
    /* The parts point into the stored bytes. */
    assert_true(parts.ns >= stored && parts.ns + parts.ns_len <= stored + len);
    assert_true(parts.tenant >= stored && parts.tenant + parts.tenant_len <= stored + len);
    assert_true(parts.key >= stored && parts.key + parts.key_len == stored + len);
}

static void check_parse_bad(const char *prefix, const char *stored, size_t len)
{
    strata_key_parts parts;
    char a[512];
    /* An exactly sized heap copy, so a read past len is caught. */
    char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, stored, len);
    int rc = strata_key_parse(prefix, copy, len, &parts);
    free(copy);
    if (rc != STRATA_EINVAL) {
        fail_msg("parse(%s, \"%s\") = %s, expected STRATA_EINVAL", prefix,
                 show(stored, len, a, sizeof a), strata_err_name(rc));
    }
}

#define PARSE_BAD(prefix, lit) check_parse_bad((prefix), (lit), sizeof(lit) - 1)

static void test_parse_valid(void **state)
{
    (void)state;
    const char *s = "strata:llm:acme:prompt:42";
    check_parse_ok("strata", s, strlen(s), "llm", "acme", "prompt:42", 9);
    s = "strata:llm:default:k";
    check_parse_ok("strata", s, strlen(s), "llm", "default", "k", 1);
    s = "strata:n:t::";
    check_parse_ok("strata", s, strlen(s), "n", "t", ":", 1);
    s = "strata:n:t:a:b:c:";
    check_parse_ok("strata", s, strlen(s), "n", "t", "a:b:c:", 6);
    static const char bin[] = "strata:n:t:\0x\0";
    check_parse_ok("strata", bin, sizeof bin - 1, "n", "t", "\0x\0", 3);
    s = "app:v1:ns:t:k";
    check_parse_ok("app:v1", s, strlen(s), "ns", "t", "k", 1);
    s = "::n:t::";
    check_parse_ok(":", s, strlen(s), "n", "t", ":", 1);
    /* Longest names. */
    char big[256];
    char name[STRATA_NAME_MAX + 1];
    fill_name(name, STRATA_NAME_MAX, 'z');
    int n = snprintf(big, sizeof big, "strata:%s:%s:k", name, name);
    check_parse_ok("strata", big, (size_t)n, name, name, "k", 1);
}

static void test_parse_invalid(void **state)
{
    (void)state;
    PARSE_BAD("strata", "");
    PARSE_BAD("strata", "strata");
    PARSE_BAD("strata", "strata:");
    PARSE_BAD("strata", "strata:llm");
    PARSE_BAD("strata", "strata:llm:");
    PARSE_BAD("strata", "strata:llm:acme");
    PARSE_BAD("strata", "strata:llm:acme:"); /* empty key */
    PARSE_BAD("strata", "strata:llmacmek");
    PARSE_BAD("strata", "strata::acme:k"); /* empty namespace */
    PARSE_BAD("strata", "strata:llm::k");  /* empty tenant */
    PARSE_BAD("strata", "strata:::k");
    PARSE_BAD("strata", ":llm:acme:k");
    PARSE_BAD("strata", "llm:acme:k");
    PARSE_BAD("strata", "other:llm:acme:k");
    PARSE_BAD("strata", "stratax:llm:acme:k");
    PARSE_BAD("strata", "strat:llm:acme:k");
    PARSE_BAD("strata", "Strata:llm:acme:k");
    PARSE_BAD("strata", "strata;llm:acme:k");
    PARSE_BAD("strata", "strata:l{m:acme:k");
    PARSE_BAD("strata", "strata:llm:ac me:k");
    PARSE_BAD("strata", "strata:llm:acm\xc3\xa9:k");
    PARSE_BAD("strata", "strata:ll\0m:acme:k");
    PARSE_BAD("strata", "strata:llm:ac\nme:k");
    PARSE_BAD("strata", "strata:*:acme:k");
    PARSE_BAD("app:v1", "app:v1n:t:k");
    PARSE_BAD("app:v1", "app:v2:n:t:k");
    PARSE_BAD("app:v1", "app:n:t:k");

    char big[256], name[STRATA_NAME_MAX + 2];
    fill_name(name, STRATA_NAME_MAX + 1, 'z');
    int n = snprintf(big, sizeof big, "strata:%s:acme:k", name);
    check_parse_bad("strata", big, (size_t)n);
    n = snprintf(big, sizeof big, "strata:llm:%s:k", name);
    check_parse_bad("strata", big, (size_t)n);
}

static void test_parse_round_trip_random(void **state)
{
    (void)state;
    static char buf[BIG_CAP];
    static unsigned char key[STRATA_KEY_MAX_DEFAULT];
    char prefix[STRATA_PREFIX_MAX + 1], ns[STRATA_NAME_MAX + 1], tenant[STRATA_NAME_MAX + 1];
    static const unsigned char tricky[] = {':', '\0', '{', '}', '*', 0xff, '\n', 'a'};
    rng_state = 0x1234567887654321ull;

    for (int iter = 0; iter < 5000; iter++) {
        random_name(prefix, STRATA_PREFIX_MAX, 0);
        random_name(ns, STRATA_NAME_MAX, 0);
        random_name(tenant, STRATA_NAME_MAX, 0);
        int null_tenant = rng() % 4 == 0;
        size_t len = rng() % 3 == 0 ? rng_range(1, 4) : rng_range(1, STRATA_KEY_MAX_DEFAULT);
        for (size_t i = 0; i < len; i++) {
            key[i] = rng() % 2 ? tricky[rng() % sizeof tricky] : (unsigned char)rng();
        }
        size_t n = 0;
        strata_key k = {ns, null_tenant ? NULL : tenant, key, len};
        int rc = strata_key_build(prefix, &k, 0, buf, BIG_CAP, &n);
        if (rc != 0) {
            fail_msg("iteration %d: build(%s, %s, %s, %zu bytes) = %s", iter, prefix, ns,
                     null_tenant ? "(null)" : tenant, len, strata_err_name(rc));
        }
        assert_int_equal(n, strlen(prefix) + strlen(ns) +
                                strlen(null_tenant ? STRATA_DEFAULT_TENANT : tenant) + 3 + len);
        assert_true(n <= STRATA_STORED_KEY_MAX(STRATA_KEY_MAX_DEFAULT));
        check_parse_ok(prefix, buf, n, ns, null_tenant ? STRATA_DEFAULT_TENANT : tenant,
                       (const char *)key, len);

        /* Under another prefix the same bytes are foreign. */
        strata_key_parts parts;
        assert_int_equal(strata_key_parse("zz-other", buf, n, &parts), STRATA_EINVAL);
    }
}

/* ---- strata_glob_match -------------------------------------------------------------------- */

typedef struct glob_case {
    const char *pattern;
    size_t plen;
    const char *subject;
    size_t slen;
    int expect;
} glob_case;

/* Lengths from the literals, so NUL bytes inside are part of the pattern or subject. */
#define G(p, s, e)                                                                                 \
    {                                                                                              \
        (p), sizeof(p) - 1, (s), sizeof(s) - 1, (e)                                                \
    }

static int run_glob(const char *pattern, size_t plen, const char *subject, size_t slen)
{
    /* Exactly sized copies; the 1-byte floor keeps malloc(0) out of it. */
    char *p = malloc(plen ? plen : 1);
    char *s = malloc(slen ? slen : 1);
    assert_non_null(p);
    assert_non_null(s);
    memcpy(p, pattern, plen);
    memcpy(s, subject, slen);
    int r = strata_glob_match(p, plen, s, slen);
    free(p);
    free(s);
    return r;
}

static void run_glob_cases(const glob_case *cases, size_t n)
{
    int failures = 0;
    char a[512], b[512];
    for (size_t i = 0; i < n; i++) {
        const glob_case *c = &cases[i];
        int got = run_glob(c->pattern, c->plen, c->subject, c->slen);
        if (got != c->expect) {
            print_error("glob \"%s\" vs \"%s\": expected %d, got %d\n",
                        show(c->pattern, c->plen, a, sizeof a),
                        show(c->subject, c->slen, b, sizeof b), c->expect, got);
            failures++;
        }
    }
    if (failures) {
        fail_msg("%d of %zu glob cases disagree with Redis' stringmatchlen", failures, n);
    }
}

static void test_glob_literal_and_empty(void **state)
{
    (void)state;
    static const glob_case cases[] = {
        G("", "", 1),
        G("", "a", 0),
        G("a", "", 0),
        G("?", "", 0),
        G("[a]", "", 0),
        G("[^a]", "", 0),
        G("abc", "abc", 1),
        G("abc", "abd", 0),
        G("abc", "ab", 0),
        G("ab", "abc", 0),
        G("abc", "ABC", 0),
        G("user:42:name", "user:42:name", 1),
        G("{tag}x", "{tag}x", 1),
        G("a.b", "axb", 0),
    };
    run_glob_cases(cases, sizeof cases / sizeof cases[0]);
}

static void test_glob_star(void **state)
{
    (void)state;
    static const glob_case cases[] = {
        /* A bare '*' selects every key, the empty one included, as KEYS * and SCAN do. */
        G("*", "", 1),
        G("*", "a", 1),
        G("*", "anything:at:all", 1),
        G("**", "abc", 1),
        G("***", "x", 1),
        G("a*", "a", 1),
        G("a*", "abc", 1),
        G("a*", "ba", 0),
        G("a**", "a", 1),
        G("*a", "a", 1),
        G("*a", "bca", 1),
        G("*a", "ab", 0),
        G("*a", "", 0),
        G("a*b", "ab", 1),
        G("a*b", "axyzb", 1),
        G("a*b", "axyzbc", 0),
        G("a*b", "ba", 0),
        G("a*b*c", "abxbc", 1),
        G("a*b*c", "abxb", 0),
        G("a*b*", "ab", 1),
        G("*x*", "abxcd", 1),
        G("*x*", "x", 1),
        G("*x*", "abcd", 0),
        G("user:*:name", "user:42:name", 1),
        G("user:*:name", "user::name", 1),
        G("user:*:name", "user:42:nam", 0),
        G("user:*", "user:", 1),
        G("user:*", "user", 0),
        G("*:*", "a:b", 1),
        G("*:*", "ab", 0),
        G("*aa", "aaa", 1),
        G("*ab", "aab", 1),
        G("*abc*abc", "abcabcabc", 1),
        G("*abc*abd", "abcabcabc", 0),
    };
    run_glob_cases(cases, sizeof cases / sizeof cases[0]);
}

static void test_glob_question(void **state)
{
    (void)state;
    static const glob_case cases[] = {
        G("?", "a", 1),
        G("?", "ab", 0),
        G("a?c", "abc", 1),
        G("a?c", "ac", 0),
        G("a?c", "abbc", 0),
        G("???", "abc", 1),
        G("???", "ab", 0),
        G("*?", "a", 1),
        G("?*", "a", 1),
        G("?*?", "a", 0),
        G("?*?", "ab", 1),
        G("h?llo", "hello", 1),
        G("h?llo", "hllo", 0),
        /* Bytes, not characters: one '?' per byte of a UTF-8 sequence. */
        G("?", "\xc3\xa9", 0),
        G("??", "\xc3\xa9", 1),
    };
    run_glob_cases(cases, sizeof cases / sizeof cases[0]);
}

static void test_glob_classes(void **state)
{
    (void)state;
    static const glob_case cases[] = {
        G("[abc]", "a", 1),
        G("[abc]", "b", 1),
        G("[abc]", "c", 1),
        G("[abc]", "d", 0),
        G("[abc]", "ab", 0),
        G("[^abc]", "d", 1),
        G("[^abc]", "a", 0),
        G("[^abc]", "de", 0),
        G("h[ae]llo", "hello", 1),
        G("h[ae]llo", "hallo", 1),
        G("h[ae]llo", "hillo", 0),
        G("h[^e]llo", "hallo", 1),
        G("h[^e]llo", "hbllo", 1),
        G("h[^e]llo", "hello", 0),
        G("h[a-b]llo", "hallo", 1),
        G("h[a-b]llo", "hbllo", 1),
        G("h[a-b]llo", "hcllo", 0),
        G("[a-z]", "a", 1),
        G("[a-z]", "m", 1),
        G("[a-z]", "z", 1),
        G("[a-z]", "A", 0),
        G("[a-z]", "`", 0),
        G("[a-z]", "{", 0),
        G("[^a-z]", "m", 0),
        G("[^a-z]", "5", 1),
        G("[a-cx-z]", "b", 1),
        G("[a-cx-z]", "y", 1),
        G("[a-cx-z]", "m", 0),
        G("[0-9]*", "7abc", 1),
        G("[0-9]*", "abc", 0),
        G("[-a]", "-", 1),
        G("[-a]", "a", 1),
        G("[-a]", "b", 0),
        G("*[0-9]", "abc7", 1),
        G("*[0-9]", "abc", 0),
        /* Reversed ranges are swapped. */
        G("[z-a]", "m", 1),
        G("[z-a]", "a", 1),
        G("[z-a]", "z", 1),
        G("[z-a]", "A", 0),
        G("[9-0]", "5", 1),
        G("[^z-a]", "m", 0),
        /* An empty class matches nothing; "[^]" matches any one byte. */
        G("[]", "]", 0),
        G("[]", "a", 0),
        G("[]a]", "a", 0),
        G("[]a]", "]", 0),
        G("[^]", "a", 1),
        G("[^]", "]", 1),
        G("[^]", "ab", 0),
        G("[^]x", "ax", 1),
    };
    run_glob_cases(cases, sizeof cases / sizeof cases[0]);
}

static void test_glob_escapes(void **state)
{
    (void)state;
    static const glob_case cases[] = {
        G("\\*", "*", 1),
        G("\\*", "a", 0),
        G("\\*", "", 0),
        G("\\?", "?", 1),
        G("\\?", "a", 0),
        G("\\[a]", "[a]", 1),
        G("\\[a]", "a", 0),
        G("\\a", "a", 1),
        G("\\a", "\\a", 0),
        G("\\\\", "\\", 1),
        G("\\\\", "\\\\", 0),
        G("a\\*b", "a*b", 1),
        G("a\\*b", "axb", 0),
        G("*\\*", "abc*", 1),
        G("*\\*", "abc", 0),
        /* A trailing lone backslash is a literal backslash. */
        G("\\", "\\", 1),
        G("\\", "a", 0),
        G("a\\", "a\\", 1),
        G("a\\", "a", 0),
        /* Escapes inside a class. */
        G("[\\]]", "]", 1),
        G("[\\]]", "\\", 0),
        G("[\\^a]", "^", 1),
        G("[\\^a]", "a", 1),
        G("[\\^a]", "b", 0),
        G("[a\\-z]", "-", 1),
        G("[a\\-z]", "z", 1),
        G("[a\\-z]", "b", 0),
        G("[\\*]", "*", 1),
        G("[\\*]", "a", 0),
    };
    run_glob_cases(cases, sizeof cases / sizeof cases[0]);
}

static void test_glob_unterminated_class(void **state)
{
    (void)state;
    /* Redis reads an unterminated '[' as a class running to the end of the pattern. */
    static const glob_case cases[] = {
        G("[abc", "a", 1),
        G("[abc", "c", 1),
        G("[abc", "d", 0),
        G("[abc", "bc", 0),
        G("[abc", "[abc", 0),
        G("x[abc", "xb", 1),
        G("x[abc", "x", 0),
        G("[", "[", 0),
        G("[", "a", 0),
        G("[", "", 0),
        G("a[", "a[", 0),
        G("a[", "a", 0),
        G("[^", "x", 1),
        G("[^", "xy", 0),
        G("[^a", "a", 0),
        G("[^a", "b", 1),
        G("[a-", "a", 1),
        G("[a-", "-", 1),
        G("[a-", "b", 0),
        G("[a-z", "m", 1),
        G("[a-z", "M", 0),
        /* "a-]" is a range from 'a' down to ']' (swapped: ']' .. 'a'), then the class is
         * unterminated. */
        G("[a-]", "_", 1),
        G("[a-]", "]", 1),
        G("[a-]", "a", 1),
        G("[a-]", "-", 0),
        G("[a-]", "b", 0),
    };
    run_glob_cases(cases, sizeof cases / sizeof cases[0]);
}

static void test_glob_binary(void **state)
{
    (void)state;
    static const glob_case cases[] = {
        G("a\0b", "a\0b", 1),
        G("a\0b", "a\0c", 0),
        G("a\0b", "a", 0),
        G("a\0b", "a\0", 0),
        G("a", "a\0", 0),
        G("a\0", "a", 0),
        G("a*", "a\0\0x", 1),
        G("*\0*", "xy\0z", 1),
        G("*\0*", "xyz", 0),
        G("*\0", "xyz\0", 1),
        G("?", "\0", 1),
        G("a?b", "a\0b", 1),
        G("[\0]", "\0", 1),
        G("[\0]", "a", 0),
        G("[^\0]", "\0", 0),
        G("[^\0]", "a", 1),
        G("[a\0b]", "\0", 1),
        G("[\x01-\x05]", "\x03", 1),
        G("[\x01-\x05]", "\x06", 0),
        G("[\0-\x02]", "\x01", 1),
        G("[\0-\x02]", "\0", 1),
        G("[\0-\x02]", "\x03", 0),
        G("\\\0", "\0", 1),
        G("\xff*", "\xff\xfe", 1),
        G("\xff*", "\xfe\xff", 0),
        G("\xc3\xa9t\xc3\xa9", "\xc3\xa9t\xc3\xa9", 1),
        G("?", "\xff", 1),
        G("[\xe9]", "\xe9", 1),
        G("[\xe9]", "\xe8", 0),
        G("[^\xe9]", "\xe9", 0),
        G("[^\xe9]", "\xe8", 1),
        G("*\xff", "abc\xff", 1),
    };
    run_glob_cases(cases, sizeof cases / sizeof cases[0]);
}

static void test_glob_respects_lengths(void **state)
{
    (void)state;
    /* Bytes past plen / slen are not part of the pattern / subject. */
    assert_int_equal(strata_glob_match("ab*", 2, "abc", 3), 0);
    assert_int_equal(strata_glob_match("ab*", 2, "ab", 2), 1);
    assert_int_equal(strata_glob_match("ab", 2, "abc", 2), 1);
    assert_int_equal(strata_glob_match("abc", 3, "abc", 2), 0);
    assert_int_equal(strata_glob_match("a*", 1, "abc", 3), 0);
    assert_int_equal(strata_glob_match("*", 0, "abc", 3), 0);
    assert_int_equal(strata_glob_match("*", 0, "", 0), 1);
    assert_int_equal(strata_glob_match("?", 1, "ab", 0), 0);
    /* "[ab]" cut to "[ab" is an unterminated class: one byte, a or b. */
    assert_int_equal(strata_glob_match("[ab]", 3, "b", 1), 1);
    assert_int_equal(strata_glob_match("[ab]", 3, "bx", 2), 0);
    assert_int_equal(strata_glob_match("[ab]x", 3, "bx", 2), 0);
    /* "[a-]" cut to "[a-": 'a' or '-'. */
    assert_int_equal(strata_glob_match("[a-z]", 3, "-", 1), 1);
    assert_int_equal(strata_glob_match("[a-z]", 3, "m", 1), 0);
    /* "\*" cut to "\": a literal backslash. */
    assert_int_equal(strata_glob_match("\\*", 1, "\\", 1), 1);
    assert_int_equal(strata_glob_match("\\*", 1, "*", 1), 0);
    /* "a*" then a subject that ends early: the trailing '*' past plen is not a '*'. */
    assert_int_equal(strata_glob_match("a**", 1, "a", 1), 1);
    assert_int_equal(strata_glob_match("a?*", 2, "ab", 2), 1);
    assert_int_equal(strata_glob_match("a?*", 2, "abc", 3), 0);
}

static void test_glob_no_exponential_blowup(void **state)
{
    (void)state;
    /* A backtracking matcher without Redis' skipLongerMatches cut takes exponential time on
     * these; the alarm turns a hang into a failure. */
    char pattern[128], subject[512];
    size_t pl = 0;
    for (int i = 0; i < 30; i++) {
        pattern[pl++] = 'a';
        pattern[pl++] = '*';
    }
    pattern[pl++] = 'b';
    memset(subject, 'a', sizeof subject);

    alarm(60);
    assert_int_equal(run_glob(pattern, pl, subject, sizeof subject), 0);
    pattern[pl - 1] = 'a';
    assert_int_equal(run_glob(pattern, pl, subject, sizeof subject), 1);

    size_t ql = 0;
    for (int i = 0; i < 40; i++) {
        pattern[ql++] = '*';
        pattern[ql++] = '?';
    }
    pattern[ql++] = 'x';
    assert_int_equal(run_glob(pattern, ql, subject, sizeof subject), 0);
    alarm(0);
}

static void test_glob_user_keys_with_separators(void **state)
{
    (void)state;
    /* User keys routinely hold ':' and '{'; those are plain bytes to the matcher. */
    static const glob_case cases[] = {
        G("prompt:*", "prompt:42", 1),
        G("prompt:*", "prompt", 0),
        G("*:42", "prompt:42", 1),
        G("prompt:4?", "prompt:42", 1),
        G("prompt:[0-9][0-9]", "prompt:42", 1),
        G("prompt:[0-9][0-9]", "prompt:4x", 0),
        G("{user1}:*", "{user1}:cart", 1),
        G("{user1}:*", "{user2}:cart", 0),
    };
    run_glob_cases(cases, sizeof cases / sizeof cases[0]);
}

static void test_key_window(void **state)
{
    (void)state;
    char buf[64];
    size_t n = 0;
    uint64_t left = 0;
    /* 30 s windows: 1 000 000 ms is in window 33, with 20 000 ms left in it */
    assert_int_equal(strata_key_window("report:7", 8, 30000, 1000000, buf, sizeof buf, &n, &left),
                     0);
    assert_int_equal(n, 11);
    assert_memory_equal(buf, "report:7@33", 11);
    assert_int_equal(left, 20000);
    /* the last moment of a window, then the first of the next */
    assert_int_equal(strata_key_window("k", 1, 30000, 1019999, buf, sizeof buf, &n, &left), 0);
    assert_memory_equal(buf, "k@33", 4);
    assert_int_equal(left, 1);
    assert_int_equal(strata_key_window("k", 1, 30000, 1020000, buf, sizeof buf, &n, NULL), 0);
    assert_memory_equal(buf, "k@34", 4);
    /* key bytes are any bytes; nothing truncated; bad arguments */
    assert_int_equal(strata_key_window("a\0b", 3, 1000, 5000, buf, sizeof buf, &n, NULL), 0);
    assert_int_equal(n, 5);
    assert_memory_equal(buf, "a\0b@5", 5);
    assert_int_equal(strata_key_window("abc", 3, 1000, 5000, buf, 4, &n, NULL), STRATA_ERANGE);
    assert_int_equal(strata_key_window("abc", 3, 1000, 5000, buf, 5, &n, NULL), 0);
    assert_int_equal(strata_key_window("abc", 3, 0, 5000, buf, sizeof buf, &n, NULL),
                     STRATA_EINVAL);
    assert_int_equal(strata_key_window("", 0, 10, 5000, buf, sizeof buf, &n, NULL),
                     STRATA_EKEYEMPTY);
    assert_int_equal(strata_key_window("abc", 3, 10, 5000, NULL, 9, &n, NULL), STRATA_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_window),
        cmocka_unit_test(test_name_check_valid),
        cmocka_unit_test(test_name_check_invalid),
        cmocka_unit_test(test_name_check_every_byte),
        cmocka_unit_test(test_prefix_check),
        cmocka_unit_test(test_build_exact_bytes),
        cmocka_unit_test(test_build_default_tenant),
        cmocka_unit_test(test_build_empty_key),
        cmocka_unit_test(test_build_key_length_limits),
        cmocka_unit_test(test_build_longest_fits_stored_key_max),
        cmocka_unit_test(test_build_binary_key_preserved),
        cmocka_unit_test(test_build_buffer_too_small),
        cmocka_unit_test(test_build_bad_names),
        cmocka_unit_test(test_build_collision_free),
        cmocka_unit_test(test_parse_valid),
        cmocka_unit_test(test_parse_invalid),
        cmocka_unit_test(test_parse_round_trip_random),
        cmocka_unit_test(test_glob_literal_and_empty),
        cmocka_unit_test(test_glob_star),
        cmocka_unit_test(test_glob_question),
        cmocka_unit_test(test_glob_classes),
        cmocka_unit_test(test_glob_escapes),
        cmocka_unit_test(test_glob_unterminated_class),
        cmocka_unit_test(test_glob_binary),
        cmocka_unit_test(test_glob_respects_lengths),
        cmocka_unit_test(test_glob_no_exponential_blowup),
        cmocka_unit_test(test_glob_user_keys_with_separators),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
