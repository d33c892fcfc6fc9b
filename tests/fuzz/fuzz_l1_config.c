/* fuzz_l1_config.c: the STRATA_L1_MAX_MEMORY parser behind strata_l1_config_init().
 *
 * The variable comes from whoever deploys strata, so any bytes in it must give either a memory
 * bound or STRATA_ERANGE, never a crash, a zero bound or a half-filled configuration. The input,
 * cut at its first NUL as the environment would, is set as STRATA_L1_MAX_MEMORY; then:
 * strata_l1_config_init() returns 0 or STRATA_ERANGE; on 0, max_memory > 0; on STRATA_ERANGE the
 * configuration holds exactly the built-in defaults (as l1.h promises); every setting other than
 * max_memory is the default either way. Plain byte counts between 1 MiB and 1 TiB must be
 * accepted as given, and N (up to 1024) with a K/M/G suffix, when that is at least 1 MiB, must
 * be N times a power of 1024 (or of 1000).
 */
#include <ctype.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <strata/errors.h>
#include <strata/l1.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static strata_l1_config defaults;
static int have_defaults;

static int same_prefix(const char *a, const char *b)
{
    if (a == NULL || b == NULL) {
        return a == b;
    }
    return strcmp(a, b) == 0;
}

static void check_other_fields(const strata_l1_config *c)
{
    CHECK(c->shards == defaults.shards);
    CHECK(c->max_key_len == defaults.max_key_len);
    CHECK(c->max_value_len == defaults.max_value_len);
    CHECK(c->max_namespaces == defaults.max_namespaces);
    CHECK(c->max_tags == defaults.max_tags);
    CHECK(c->maintenance_interval_ms == defaults.maintenance_interval_ms);
    CHECK(same_prefix(c->prefix, defaults.prefix));
}

/* Parses "[1-9][0-9]*" (up to 15 digits) into *v; returns the digits consumed or 0. */
static size_t plain_number(const char *s, unsigned long long *v)
{
    size_t i = 0;
    *v = 0;
    if (s[0] < '1' || s[0] > '9') {
        return 0;
    }
    while (isdigit((unsigned char)s[i]) && i < 15) {
        *v = *v * 10 + (unsigned long long)(s[i] - '0');
        i++;
    }
    return isdigit((unsigned char)s[i]) ? 0 : i;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!have_defaults) {
        unsetenv("STRATA_L1_MAX_MEMORY");
        CHECK(strata_l1_config_init(&defaults) == 0);
        CHECK(defaults.max_memory == STRATA_L1_MAX_MEMORY_DEFAULT ||
              defaults.max_memory == 0); /* "0: default" */
        have_defaults = 1;
    }

    char *value = malloc(size + 1);
    CHECK(value != NULL);
    memcpy(value, data, size);
    value[size] = '\0';
    CHECK(setenv("STRATA_L1_MAX_MEMORY", value, 1) == 0);

    strata_l1_config cfg;
    memset(&cfg, 0xAB, sizeof cfg);
    int rc = strata_l1_config_init(&cfg);
    CHECK(rc == 0 || rc == STRATA_ERANGE);
    check_other_fields(&cfg);
    if (rc == 0) {
        CHECK(cfg.max_memory > 0);
    } else {
        CHECK(cfg.max_memory == defaults.max_memory);
    }

    unsigned long long v;
    size_t digits = plain_number(value, &v);
    if (digits > 0 && value[digits] == '\0' && v >= (1ull << 20) && v <= (1ull << 40)) {
        CHECK(rc == 0 && cfg.max_memory == v);
    }
    if (digits > 0 && v <= 1024 && value[digits] != '\0' && value[digits + 1] == '\0') {
        static const char suffix[] = "KMG";
        const char *at = strchr(suffix, value[digits]);
        if (at != NULL && (v << (10u * (unsigned)(at - suffix + 1))) >= (1ull << 20)) {
            unsigned shift = 10u * (unsigned)(at - suffix + 1);
            unsigned long long dec = v;
            for (long i = 0; i <= at - suffix; i++) {
                dec *= 1000;
            }
            CHECK(rc == 0);
            CHECK(cfg.max_memory == (v << shift) || cfg.max_memory == dec);
        }
    }

    free(value);
    return 0;
}
