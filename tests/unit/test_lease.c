/* test_lease.c: leases without a real Redis (src/lib/features/lease.c, lease_table.c, the lease
 * keys of core/key.c and core/slot.c): the key layout and its Redis Cluster slots (braces in user
 * keys included) against a CRC16 written here from the spec, and the local fallback on a fake
 * clock (no Redis, Redis down, Redis stalled): exclusivity, expiry, token checks, the bound. The
 * scripts run against a real redis-server in tests/integration/test_lease.c (the fake runs no
 * Lua). */
#include <setjmp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/event.h>
#include <strata/strata.h>

#include "cache/cache_internal.h"
#include "core/slot.h"
#include "core/tag_key.h"
#include "core/token.h"
#include "fake_redis.h"
#include "features/lease_internal.h"

/* ---- Redis Cluster's key slot, from the spec (cluster-spec: "Keys hash tags") ---------------- */

/* CRC-16/XMODEM, table-driven (the library's is bitwise: two ways to the same numbers). */
static uint16_t spec_crc16(const char *s, size_t len)
{
    static uint16_t table[256];
    if (table[1] == 0)
        for (unsigned i = 0; i < 256; i++) {
            uint16_t c = (uint16_t)(i << 8);
            for (int b = 0; b < 8; b++)
                c = (c & 0x8000) ? (uint16_t)((c << 1) ^ 0x1021) : (uint16_t)(c << 1);
            table[i] = c;
        }
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++)
        crc = (uint16_t)((crc << 8) ^ table[((crc >> 8) ^ (unsigned char)s[i]) & 0xff]);
    return crc;
}

/* HASH_SLOT as the spec writes it: the first '{', the first '}' after it, non-empty between. */
static unsigned spec_slot(const char *key, size_t keylen)
{
    size_t s, e;
    for (s = 0; s < keylen; s++)
        if (key[s] == '{')
            break;
    if (s == keylen)
        return spec_crc16(key, keylen) & 16383;
    for (e = s + 1; e < keylen; e++)
        if (key[e] == '}')
            break;
    if (e == keylen || e == s + 1)
        return spec_crc16(key, keylen) & 16383;
    return spec_crc16(key + s + 1, e - s - 1) & 16383;
}

static void test_crc16_vectors(void **state)
{
    (void)state;
    assert_int_equal(spec_crc16("123456789", 9), 0x31C3);
    assert_int_equal(strata__crc16("123456789", 9), 0x31C3);
    /* Slots Redis' own docs and tests give. */
    assert_int_equal(spec_slot("foo", 3), 12182);
    assert_int_equal(spec_slot("{user1000}.following", 20), spec_slot("user1000", 8));
    for (unsigned n = 0; n < 5000; n++) {
        char s[16];
        int len = snprintf(s, sizeof s, "k%u}{", n * 7919);
        assert_int_equal(strata__key_slot(s, (size_t)len), spec_slot(s, (size_t)len));
    }
}

static void test_every_slot_has_a_short_tag(void **state)
{
    (void)state;
    for (unsigned slot = 0; slot < STRATA__SLOTS; slot++) {
        char tag[12];
        size_t n = strata__slot_tag(slot, tag);
        assert_true(n >= 1 && n <= 7);
        assert_int_equal(strlen(tag), n);
        assert_int_equal(spec_crc16(tag, n) & 16383, slot);
    }
}

/* The lease key of user key uk (namespace "ns", tenant "t", prefix "p"), checked to share the
 * value key's slot; returned in lk. */
static void lease_of(const char *uk, size_t uklen, char *lk, size_t *lklen)
{
    char vk[STRATA_STORED_KEY_MAX(STRATA_KEY_MAX_LIMIT)];
    size_t vklen;
    strata_key k = {"ns", "t", uk, uklen};
    assert_int_equal(strata_key_build("p", &k, 0, vk, sizeof vk, &vklen), 0);
    assert_int_equal(strata__lease_key_build("p", vk, vklen, lk, STRATA_LEASE_KEY_MAX, lklen), 0);
    assert_int_equal(spec_slot(lk, *lklen), spec_slot(vk, vklen));
    /* Outside the tracked "<prefix>:" space, under "<prefix>!". */
    assert_memory_equal(lk, "p!lease:", 8);
}

static void expect_lease_key(const char *uk, const char *want)
{
    char lk[STRATA_LEASE_KEY_MAX];
    size_t n;
    lease_of(uk, strlen(uk), lk, &n);
    if (want != NULL) {
        assert_int_equal(n, strlen(want));
        assert_memory_equal(lk, want, n);
    }
}

static void test_lease_key_layout_and_slots(void **state)
{
    (void)state;
    expect_lease_key("k", "p!lease:{p:ns:t:k}");
    expect_lease_key("a{b}c", "p!lease:p:ns:t:a{b}c"); /* its own tag, b, comes first */
    expect_lease_key("{x", "p!lease:{p:ns:t:{x}");     /* no '}': hashed whole, braced whole */
    expect_lease_key("{{b}", "p!lease:p:ns:t:{{b}");   /* tag "{b" */
    /* A '}' but no tag: a decimal tag in the value key's slot, then the value key. */
    const char *odd[] = {"{}x", "a}b", "}{", "}", "{}", "x{}y{z}", "}}{{"};
    for (size_t i = 0; i < sizeof odd / sizeof *odd; i++) {
        char lk[STRATA_LEASE_KEY_MAX], vk[64];
        size_t n;
        lease_of(odd[i], strlen(odd[i]), lk, &n);
        int vn = snprintf(vk, sizeof vk, "p:ns:t:%s", odd[i]);
        assert_true(n > (size_t)vn + 10);
        assert_memory_equal(lk + n - (size_t)vn, vk, (size_t)vn); /* ends with the value key */
        assert_int_equal(lk[8], '{');
    }
    /* Many keys with braces anywhere: the slots agree, and no two share a lease key. */
    const char alphabet[] = "ab{}:";
    static char seen[2000][48];
    for (unsigned n = 0; n < 2000; n++) {
        char uk[8];
        unsigned v = n;
        size_t len = 0;
        do
            uk[len++] = alphabet[v % 5], v /= 5;
        while (v != 0 && len < 6);
        char lk[STRATA_LEASE_KEY_MAX];
        size_t lklen;
        lease_of(uk, len, lk, &lklen);
        assert_true(lklen < 48);
        lk[lklen] = '\0';
        for (unsigned i = 0; i < n; i++) /* distinct user keys (n in base 5) */
            assert_string_not_equal(seen[i], lk);
        strcpy(seen[n], lk);
    }
    char ch[STRATA_LEASE_CHANNEL_MAX];
    size_t chlen;
    assert_int_equal(strata__lease_channel_build("p", ch, sizeof ch, &chlen), 0);
    assert_int_equal(chlen, 7);
    assert_memory_equal(ch, "p!lease", 7);
}

/* ---- the local fallback ------------------------------------------------------------------- */

static fake_redis *F;

static void quiet(int level, const char *msg, void *arg)
{
    (void)level, (void)msg, (void)arg;
}

/* A cache on the fake clock: memory only (f NULL) or on the fake Redis f. */
static strata_cache *instance(fake_redis *f)
{
    strata_cache_config cfg;
    assert_int_equal(strata_cache_config_init(&cfg, NULL), 0);
    cfg.l1.max_memory = 4u << 20;
    cfg.l1.prefix = "t";
    cfg.log = quiet;
    strata_cache *c;
    assert_int_equal(strata_cache_new(&cfg, &c), 0);
    strata__cache_use(c, f ? &fake_redis_ops : NULL, f, f != NULL, fake_clock);
    return c;
}

static int setup(void **state)
{
    (void)state;
    F = fake_redis_new();
    fake_now_ms = 1700000000000ull;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fake_redis_free(F);
    return 0;
}

static const strata_key K = {"ns", "acme", "k", 1};

static int value_is(strata_cache *c, const char *want)
{
    strata_value *v = NULL;
    int rc = strata_cache_get(c, &K, &v);
    int same = rc >= 0 && v != NULL && strata_value_len(v) == strlen(want) &&
               memcmp(strata_value_data(v), want, strlen(want)) == 0;
    strata_value_release(v);
    return same;
}

/* One process: one caller at a time holds K's lease, until it expires on the fake clock; then
 * tokens decide who may release, extend and fill. */
static void exclusivity_and_expiry(strata_cache *c, int fill_status)
{
    strata_leases *ls;
    assert_int_equal(strata_leases_new(c, &ls), 0);
    strata_lease_grant a, b;
    assert_int_equal(strata_lease_acquire(ls, &K, 1000, STRATA_LEASE_MISS, &a), STRATA_OK);
    assert_int_equal(strata_lease_acquire(ls, &K, 1000, STRATA_LEASE_MISS, &b), STRATA_EHELD);
    assert_true(a.local);
    assert_int_equal(strlen(a.token), STRATA_LEASE_TOKEN_LEN);
    assert_string_equal(b.token, "");
    assert_int_equal(b.held_ms, 1000);
    fake_now_ms += 999;
    assert_int_equal(strata_lease_acquire(ls, &K, 1000, STRATA_LEASE_REFRESH, &b), STRATA_EHELD);
    assert_int_equal(b.held_ms, 1);
    /* The holder extends: 500 ms from now. */
    assert_int_equal(strata_lease_extend(ls, &K, a.token, 500), 0);
    fake_now_ms += 499;
    assert_int_equal(strata_lease_acquire(ls, &K, 1000, STRATA_LEASE_MISS, &b), STRATA_EHELD);
    fake_now_ms += 1; /* expired: the next caller takes it */
    assert_int_equal(strata_lease_extend(ls, &K, a.token, 500), STRATA_ENOTHOLDER);
    assert_int_equal(strata_lease_acquire(ls, &K, 1000, STRATA_LEASE_MISS, &b), STRATA_OK);
    assert_string_not_equal(a.token, b.token);
    /* The old holder is refused everything, and changes nothing. */
    assert_int_equal(strata_lease_fill(ls, &K, a.token, "old", 3, NULL), STRATA_ENOTHOLDER);
    assert_int_equal(strata_lease_release(ls, &K, a.token), STRATA_ENOTHOLDER);
    assert_false(value_is(c, "old"));
    strata_lease_grant x;
    assert_int_equal(strata_lease_acquire(ls, &K, 1000, STRATA_LEASE_MISS, &x), STRATA_EHELD);
    /* Malformed tokens are not tokens. */
    assert_int_equal(strata_lease_release(ls, &K, "short"), STRATA_EINVAL);
    assert_int_equal(strata_lease_release(ls, &K, "!!!!!!!!!!!!!!!!!!!!!!"), STRATA_EINVAL);
    assert_int_equal(strata_lease_release(ls, &K, NULL), STRATA_EINVAL);
    /* A fill that the cache refuses leaves the lease held. */
    strata_set_opts nx = {.flags = STRATA_SET_NX};
    assert_int_equal(strata_lease_fill(ls, &K, b.token, "v", 1, &nx), STRATA_EINVAL);
    strata_set_opts bad = {.content_type = "bad\ntype"};
    assert_int_equal(strata_lease_fill(ls, &K, b.token, "v", 1, &bad), STRATA_EBADTEXT);
    assert_int_equal(strata_lease_acquire(ls, &K, 1000, STRATA_LEASE_MISS, &x), STRATA_EHELD);
    /* The holder fills: stored, released; a MISS acquire now hears a value is there. */
    assert_int_equal(strata_lease_fill(ls, &K, b.token, "new", 3, NULL), fill_status);
    assert_true(value_is(c, "new"));
    assert_int_equal(strata_lease_release(ls, &K, b.token), STRATA_ENOTHOLDER);
    assert_int_equal(strata_lease_acquire(ls, &K, 1000, STRATA_LEASE_MISS, &x), STRATA_EEXISTS);
    assert_int_equal(strata_lease_acquire(ls, &K, 1000, STRATA_LEASE_REFRESH, &x), STRATA_OK);
    assert_int_equal(strata_lease_release(ls, &K, x.token), 0);
    strata_lease_stats st;
    strata_leases_stats(ls, &st);
    assert_int_equal(st.acquired, 3);
    assert_int_equal(st.held, 5);
    assert_int_equal(st.present, 1);
    assert_int_equal(st.filled, 1);
    assert_int_equal(st.released, 1);
    assert_int_equal(st.extended, 1);
    assert_int_equal(st.refused, 4); /* extend, fill, release after expiry; release after fill */
    assert_int_equal(st.local_held, 0);
    assert_true(st.local >= 13);
    strata_leases_free(ls);
}

static void test_memory_only_leases_are_local(void **state)
{
    (void)state;
    strata_cache *c = instance(NULL);
    exclusivity_and_expiry(c, STRATA_OK);
    strata_cache_free(c);
}

static void test_redis_down_leases_fall_back_to_the_process(void **state)
{
    (void)state;
    fake_redis_down(F, 1);
    strata_cache *c = instance(F);
    exclusivity_and_expiry(c, STRATA_OK_L1_ONLY); /* the value could reach L1 alone */
    assert_int_equal(fake_redis_commands(F, "EVALSHA"), 0);
    strata_cache_free(c);
}

/* Redis read-only: no lease can be written there; the process decides. */
static void test_readonly_redis_leases_are_local(void **state)
{
    (void)state;
    fake_redis_readonly(F, 1);
    strata_cache *c = instance(F);
    strata_leases *ls;
    assert_int_equal(strata_leases_new(c, &ls), 0);
    strata_lease_grant a, b;
    assert_int_equal(strata_lease_acquire(ls, &K, 1000, STRATA_LEASE_MISS, &a), STRATA_OK);
    assert_true(a.local);
    assert_int_equal(strata_lease_acquire(ls, &K, 1000, STRATA_LEASE_MISS, &b), STRATA_EHELD);
    assert_int_equal(strata_lease_release(ls, &K, a.token), 0);
    assert_int_equal(fake_redis_commands(F, "EVALSHA"), 0);
    strata_leases_free(ls);
    strata_cache_free(c);
}

/* Two leases objects are two processes: each decides for itself while Redis is away (what the
 * docs say of the fallback: single flight per instance, not across). */
static void test_each_process_decides_alone_while_redis_is_down(void **state)
{
    (void)state;
    fake_redis_down(F, 1);
    strata_cache *c1 = instance(F), *c2 = instance(F);
    strata_leases *l1, *l2;
    assert_int_equal(strata_leases_new(c1, &l1), 0);
    assert_int_equal(strata_leases_new(c2, &l2), 0);
    strata_lease_grant a, b;
    assert_int_equal(strata_lease_acquire(l1, &K, 1000, STRATA_LEASE_MISS, &a), STRATA_OK);
    assert_int_equal(strata_lease_acquire(l2, &K, 1000, STRATA_LEASE_MISS, &b), STRATA_OK);
    /* A token of one process means nothing to the other. */
    assert_int_equal(strata_lease_release(l2, &K, a.token), STRATA_ENOTHOLDER);
    assert_int_equal(strata_lease_release(l1, &K, a.token), 0);
    strata_leases_free(l1);
    strata_leases_free(l2);
    strata_cache_free(c1);
    strata_cache_free(c2);
}

/* A stalled Redis fails the call at its deadline: the asynchronous acquire then falls back, in
 * its callback. */
typedef struct got {
    int calls, status;
    strata_lease_grant g;
} got;

static void on_grant(int status, const strata_lease_grant *g, void *arg)
{
    got *r = arg;
    r->calls++, r->status = status, r->g = *g;
}

static void on_done(int status, void *arg)
{
    got *r = arg;
    r->calls++, r->status = status;
}

static void test_stalled_redis_async_acquire_falls_back(void **state)
{
    (void)state;
    fake_redis_stall(F, 1);
    strata_cache *c = instance(F);
    strata_leases *ls;
    assert_int_equal(strata_leases_new(c, &ls), 0);
    strata_loop *lp;
    struct event_base *base = event_base_new();
    assert_int_equal(strata_loop_new(c, base, &lp), 0);
    got r1 = {0}, r2 = {0};
    strata_lease_grant out;
    assert_int_equal(
        strata_lease_acquire_async(ls, lp, &K, 1000, STRATA_LEASE_MISS, on_grant, &r1, &out),
        STRATA_PENDING);
    assert_int_equal(
        strata_lease_acquire_async(ls, lp, &K, 1000, STRATA_LEASE_MISS, on_grant, &r2, &out),
        STRATA_PENDING);
    assert_int_equal(r1.calls + r2.calls, 0);
    assert_int_equal(fake_redis_flush(F), 2); /* both time out: the process decides, in order */
    assert_int_equal(r1.calls, 1);
    assert_int_equal(r1.status, STRATA_OK);
    assert_true(r1.g.local);
    assert_int_equal(r2.calls, 1);
    assert_int_equal(r2.status, STRATA_EHELD);
    assert_int_equal(r2.g.held_ms, 1000);
    /* Released in the table: decided during the call, no callback. */
    got r3 = {0};
    assert_int_equal(strata_lease_release_async(ls, lp, &K, r1.g.token, on_done, &r3), 0);
    assert_int_equal(r3.calls, 0);
    /* Redis down: the acquire is decided during the call too. */
    fake_redis_stall(F, 0);
    fake_redis_down(F, 1);
    assert_int_equal(
        strata_lease_acquire_async(ls, lp, &K, 1000, STRATA_LEASE_MISS, on_grant, &r3, &out),
        STRATA_OK);
    assert_true(out.local);
    assert_int_equal(r3.calls, 0);
    strata_loop_free(lp);
    event_base_free(base);
    strata_leases_free(ls);
    strata_cache_free(c);
}

/* Past the bound the process refuses new leases (STRATA_ELIMIT) rather than evict a live one;
 * expired leases are swept to make room. */
static void test_local_table_is_bounded(void **state)
{
    (void)state;
    strata_cache *c = instance(NULL);
    strata_leases *ls;
    assert_int_equal(strata_leases_new(c, &ls), 0);
    assert_int_equal(strata__leases_local_max(ls, 3), 0);
    strata_lease_grant g;
    for (int i = 0; i < 3; i++) {
        strata_key k = {"ns", NULL, &"abc"[i], 1};
        assert_int_equal(strata_lease_acquire(ls, &k, 100 + (uint64_t)i * 100, 0, &g), 0);
    }
    strata_key d = {"ns", NULL, "d", 1};
    assert_int_equal(strata_lease_acquire(ls, &d, 100, STRATA_LEASE_MISS, &g), STRATA_ELIMIT);
    strata_key a = {"ns", NULL, "a", 1};
    assert_int_equal(strata_lease_acquire(ls, &a, 100, STRATA_LEASE_MISS, &g), STRATA_EHELD);
    fake_now_ms += 100; /* a's lease is over: room for one */
    assert_int_equal(strata_lease_acquire(ls, &d, 100, STRATA_LEASE_MISS, &g), 0);
    assert_int_equal(strata_lease_acquire(ls, &a, 100, STRATA_LEASE_MISS, &g), STRATA_ELIMIT);
    strata_lease_stats st;
    strata_leases_stats(ls, &st);
    assert_int_equal(st.local_full, 2);
    assert_int_equal(st.local_held, 3);
    strata_leases_free(ls);
    strata_cache_free(c);
}

/* Tokens: 22 characters of the URL-safe alphabet, distinct, and marked when a process issued them
 * alone (what sends a token to its issuer). */
static void test_tokens(void **state)
{
    (void)state;
    char seen[64][STRATA__TOKEN_LEN + 1];
    for (int i = 0; i < 64; i++) {
        assert_int_equal(strata__token_new_marked(seen[i], i & 1), 0);
        assert_int_equal(strata__token_check(seen[i]), 0);
        assert_int_equal(strata__token_mark(seen[i]), i & 1);
        for (int j = 0; j < i; j++)
            assert_string_not_equal(seen[i], seen[j]);
    }
    char session[STRATA_SESSION_ID_LEN + 1];
    assert_int_equal(strata_session_new_id(session), 0);
    assert_int_equal(strata_session_id_check(session), 0);
    assert_int_equal(strata__token_mark(session), 0);
    assert_int_equal(strata__token_check("AAAAAAAAAAAAAAAAAAAAA"), STRATA_EINVAL);   /* 21 */
    assert_int_equal(strata__token_check("AAAAAAAAAAAAAAAAAAAAAAA"), STRATA_EINVAL); /* 23 */
    assert_int_equal(strata__token_check("AAAAAAAAAAAAAAAAAAAAA="), STRATA_EINVAL);
}

/* Threads of one process race for the same keys: each key has exactly one holder. */
#define RACERS    8
#define RACE_KEYS 200

static strata_leases *race_ls;
static int race_won[RACE_KEYS];
static pthread_mutex_t race_lock = PTHREAD_MUTEX_INITIALIZER;

static void *racer(void *arg)
{
    (void)arg;
    for (int i = 0; i < RACE_KEYS; i++) {
        char uk[8];
        snprintf(uk, sizeof uk, "r%d", i);
        strata_key k = {"ns", NULL, uk, strlen(uk)};
        strata_lease_grant g;
        if (strata_lease_acquire(race_ls, &k, 60000, STRATA_LEASE_MISS, &g) == STRATA_OK) {
            pthread_mutex_lock(&race_lock);
            race_won[i]++;
            pthread_mutex_unlock(&race_lock);
        }
    }
    return NULL;
}

static void test_threads_of_one_process_get_one_holder_per_key(void **state)
{
    (void)state;
    strata_cache *c = instance(NULL);
    assert_int_equal(strata_leases_new(c, &race_ls), 0);
    pthread_t th[RACERS];
    for (int i = 0; i < RACERS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, racer, NULL), 0);
    for (int i = 0; i < RACERS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < RACE_KEYS; i++)
        assert_int_equal(race_won[i], 1);
    strata_lease_stats st;
    strata_leases_stats(race_ls, &st);
    assert_int_equal(st.acquired, RACE_KEYS);
    assert_int_equal(st.held, RACE_KEYS * (RACERS - 1));
    strata_leases_free(race_ls);
    strata_cache_free(c);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    strata_cache *c = instance(NULL);
    strata_leases *ls;
    assert_int_equal(strata_leases_new(c, &ls), 0);
    strata_lease_grant g;
    assert_int_equal(strata_lease_acquire(ls, &K, 0, STRATA_LEASE_MISS, &g), STRATA_EINVAL);
    assert_int_equal(strata_lease_acquire(ls, &K, STRATA_LEASE_MAX_MS + 1, 0, &g), STRATA_EINVAL);
    assert_int_equal(strata_lease_acquire(ls, &K, 10, 7, &g), STRATA_EINVAL);
    strata_key empty = {"ns", NULL, "", 0}, badns = {"n:s", NULL, "k", 1};
    assert_int_equal(strata_lease_acquire(ls, &empty, 10, 0, &g), STRATA_EKEYEMPTY);
    assert_int_equal(strata_lease_acquire(ls, &badns, 10, 0, &g), STRATA_EBADNAME);
    assert_int_equal(strata_lease_acquire(ls, &K, 10, 0, &g), 0);
    assert_int_equal(strata_lease_extend(ls, &K, g.token, 0), STRATA_EINVAL);
    strata_leases_free(ls);
    strata_leases_free(NULL);
    strata_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc16_vectors),
        cmocka_unit_test(test_every_slot_has_a_short_tag),
        cmocka_unit_test(test_lease_key_layout_and_slots),
        cmocka_unit_test_setup_teardown(test_memory_only_leases_are_local, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_down_leases_fall_back_to_the_process, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_readonly_redis_leases_are_local, setup, teardown),
        cmocka_unit_test_setup_teardown(test_each_process_decides_alone_while_redis_is_down, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stalled_redis_async_acquire_falls_back, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_local_table_is_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
        cmocka_unit_test(test_tokens),
        cmocka_unit_test_setup_teardown(test_threads_of_one_process_get_one_holder_per_key, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
