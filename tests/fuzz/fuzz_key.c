/* fuzz_key.c: strata_key_build() and strata_key_parse() on arbitrary parts and stored bytes.
 *
 * The stored key is what keeps tenants and namespaces apart in a shared Redis, so it must be
 * exact in both directions. The input is split into (prefix, namespace, tenant, key, key limit);
 * the fuzzer checks that the build succeeds exactly when every part is valid by the rules of
 * key.h (checked here independently of the library), that what it produces is
 * prefix:ns:tenant:key byte for byte, that a smaller buffer gives STRATA_ERANGE without a write
 * past it, and that strata_key_parse() gives the same parts back. The raw input is also parsed as
 * a stored key found in Redis: parse must accept it exactly when it splits into valid parts, and
 * what it accepts must rebuild to the same bytes. Any disagreement aborts.
 *
 * Layout: byte 0..2 the lengths of prefix, namespace and tenant (mod 72, so past the 64-byte
 * limit too); byte 3 flags (bit 0: NULL tenant; bits 1-2: key limit 0 / small / 1024 / 4096;
 * bits 3-7: the small limit); then the three names (NUL bytes inside cut them, as a C string
 * does) and the rest is the key.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <strata/errors.h>
#include <strata/key.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int name_byte(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
}

/* The rules of key.h, written out here so the library is checked against them. */
static int valid_name_n(const char *s, size_t n, int allow_colon)
{
    if (n < 1 || n > STRATA_NAME_MAX) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!name_byte(c) && !(allow_colon && c == ':')) {
            return 0;
        }
    }
    return 1;
}

static const uint8_t *take(const uint8_t **p, size_t *left, size_t want, size_t *got)
{
    const uint8_t *start = *p;
    *got = want < *left ? want : *left;
    *p += *got;
    *left -= *got;
    return start;
}

static char *cstr(const uint8_t *b, size_t n)
{
    char *s = malloc(n + 1);
    CHECK(s != NULL);
    memcpy(s, b, n);
    s[n] = '\0';
    return s;
}

/* Splits stored[0..len) by the rules of key.h: 1 on success with the three part lengths. */
static int ref_parse(const char *prefix, const uint8_t *stored, size_t len, size_t *ns_len,
                     size_t *tenant_len, size_t *key_len)
{
    size_t pl = strlen(prefix);
    if (len < pl + 1 || memcmp(stored, prefix, pl) != 0 || stored[pl] != ':') {
        return 0;
    }
    const uint8_t *p = stored + pl + 1, *end = stored + len;
    const uint8_t *c1 = memchr(p, ':', (size_t)(end - p));
    if (c1 == NULL) {
        return 0;
    }
    const uint8_t *c2 = memchr(c1 + 1, ':', (size_t)(end - (c1 + 1)));
    if (c2 == NULL) {
        return 0;
    }
    *ns_len = (size_t)(c1 - p);
    *tenant_len = (size_t)(c2 - (c1 + 1));
    *key_len = (size_t)(end - (c2 + 1));
    return valid_name_n((const char *)p, *ns_len, 0) &&
           valid_name_n((const char *)c1 + 1, *tenant_len, 0) && *key_len >= 1;
}

static void check_raw_parse(const char *prefix, const uint8_t *data, size_t size)
{
    strata_key_parts parts;
    size_t ns_len = 0, tenant_len = 0, key_len = 0;
    int expect = ref_parse(prefix, data, size, &ns_len, &tenant_len, &key_len);
    int rc = strata_key_parse(prefix, (const char *)data, size, &parts);
    CHECK(rc == 0 || rc == STRATA_EINVAL);
    if (expect && key_len > STRATA_KEY_MAX_LIMIT) {
        return; /* longer than any limit can allow: either answer is defensible */
    }
    CHECK((rc == 0) == expect);
    if (rc != 0) {
        return;
    }
    const char *base = (const char *)data;
    size_t pl = strlen(prefix);
    CHECK(parts.ns == base + pl + 1 && parts.ns_len == ns_len);
    CHECK(parts.tenant == parts.ns + ns_len + 1 && parts.tenant_len == tenant_len);
    CHECK(parts.key == parts.tenant + tenant_len + 1 && parts.key_len == key_len);

    /* It rebuilds to the same bytes. */
    char *ns = cstr((const uint8_t *)parts.ns, parts.ns_len);
    char *tenant = cstr((const uint8_t *)parts.tenant, parts.tenant_len);
    size_t cap = STRATA_STORED_KEY_MAX(STRATA_KEY_MAX_LIMIT);
    char *buf = malloc(cap);
    CHECK(buf != NULL);
    strata_key k = {ns, tenant, parts.key, parts.key_len};
    size_t n = 0;
    CHECK(strata_key_build(prefix, &k, STRATA_KEY_MAX_LIMIT, buf, cap, &n) == 0);
    CHECK(n == size && memcmp(buf, data, size) == 0);
    free(buf);
    free(tenant);
    free(ns);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4) {
        check_raw_parse("strata", data, size);
        return 0;
    }
    const uint8_t *p = data + 4;
    size_t left = size - 4, n_prefix, n_ns, n_tenant;
    const uint8_t flags = data[3];
    const uint8_t *b_prefix = take(&p, &left, data[0] % 72, &n_prefix);
    const uint8_t *b_ns = take(&p, &left, data[1] % 72, &n_ns);
    const uint8_t *b_tenant = take(&p, &left, data[2] % 72, &n_tenant);
    const uint8_t *key = p;
    const size_t key_len = left;

    char *prefix = cstr(b_prefix, n_prefix);
    char *ns = cstr(b_ns, n_ns);
    char *tenant = (flags & 1) ? NULL : cstr(b_tenant, n_tenant);
    static const size_t limits[] = {0, 0, 1024, STRATA_KEY_MAX_LIMIT};
    size_t key_max = limits[(flags >> 1) & 3];
    if (((flags >> 1) & 3) == 1) {
        key_max = (size_t)(flags >> 3) + 1;
    }
    const size_t eff_max = key_max ? key_max : STRATA_KEY_MAX_DEFAULT;
    const char *eff_tenant = tenant ? tenant : STRATA_DEFAULT_TENANT;

    /* The name checks agree with key.h's alphabet and lengths. */
    int prefix_ok = valid_name_n(prefix, strlen(prefix), 0);
    int ns_ok = valid_name_n(ns, strlen(ns), 0);
    int tenant_ok = valid_name_n(eff_tenant, strlen(eff_tenant), 0);
    CHECK((strata_prefix_check(prefix) == 0) == prefix_ok);
    CHECK(prefix_ok || strata_prefix_check(prefix) == STRATA_EBADNAME);
    CHECK((strata_name_check(ns) == 0) == ns_ok);
    CHECK(ns_ok || strata_name_check(ns) == STRATA_EBADNAME);
    if (tenant) {
        CHECK((strata_name_check(tenant) == 0) == tenant_ok);
    }
    const int names_ok = prefix_ok && ns_ok && tenant_ok;
    const int key_ok = key_len >= 1 && key_len <= eff_max;

    /* "STRATA_STORED_KEY_MAX(key_max) is always enough": exactly that, on the heap. */
    const size_t cap = STRATA_STORED_KEY_MAX(eff_max);
    char *buf = malloc(cap);
    CHECK(buf != NULL);
    strata_key k = {ns, tenant, key, key_len};
    size_t out_len = 0;
    int rc = strata_key_build(prefix, &k, key_max, buf, cap, &out_len);

    if (names_ok && key_ok) {
        CHECK(rc == 0);
    } else {
        CHECK(rc != 0);
        int allowed = 0;
        if (!names_ok) {
            allowed |= rc == STRATA_EBADNAME;
        }
        if (key_len == 0) {
            allowed |= rc == STRATA_EKEYEMPTY;
        }
        if (key_len > eff_max) {
            allowed |= rc == STRATA_EKEYLONG;
        }
        CHECK(allowed);
    }

    if (rc == 0) {
        /* Exactly prefix ':' ns ':' tenant ':' key. */
        size_t lp = strlen(prefix), ln = strlen(ns), lt = strlen(eff_tenant);
        CHECK(out_len == lp + ln + lt + 3 + key_len);
        CHECK(out_len <= cap);
        CHECK(memcmp(buf, prefix, lp) == 0 && buf[lp] == ':');
        CHECK(memcmp(buf + lp + 1, ns, ln) == 0 && buf[lp + 1 + ln] == ':');
        CHECK(memcmp(buf + lp + 2 + ln, eff_tenant, lt) == 0 && buf[lp + 2 + ln + lt] == ':');
        CHECK(memcmp(buf + lp + 3 + ln + lt, key, key_len) == 0);

        /* The inverse gives the parts back, pointing into the stored bytes. */
        char *stored = malloc(out_len);
        CHECK(stored != NULL);
        memcpy(stored, buf, out_len);
        strata_key_parts parts;
        CHECK(strata_key_parse(prefix, stored, out_len, &parts) == 0);
        CHECK(parts.ns == stored + lp + 1 && parts.ns_len == ln);
        CHECK(parts.tenant_len == lt && memcmp(parts.tenant, eff_tenant, lt) == 0);
        CHECK(parts.key_len == key_len && memcmp(parts.key, key, key_len) == 0);
        CHECK(parts.key + parts.key_len == stored + out_len);
        free(stored);

        /* One byte short (or less): STRATA_ERANGE, and nothing written past the cap. */
        size_t small = out_len - 1 - (size_t)(flags % (out_len < 8 ? out_len : 8));
        enum { SLACK = 16 };
        unsigned char *sb = malloc(small + SLACK);
        CHECK(sb != NULL);
        memset(sb, 0xA5, small + SLACK);
        size_t n2 = 0;
        CHECK(strata_key_build(prefix, &k, key_max, (char *)sb, small, &n2) == STRATA_ERANGE);
        for (size_t i = small; i < small + SLACK; i++) {
            CHECK(sb[i] == 0xA5);
        }
        free(sb);
    }
    free(buf);

    /* The raw input as a stored key found in a shared Redis. */
    check_raw_parse("strata", data, size);
    if (prefix_ok) {
        check_raw_parse(prefix, data + 4, size - 4);
    }

    free(tenant);
    free(ns);
    free(prefix);
    return 0;
}
