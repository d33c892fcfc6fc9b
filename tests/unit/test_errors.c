/* test_errors.c: the status table in errors.h and the two functions generated from it.
 *
 * Every code of STRATA_STATUS_MAP is walked through the same X-macro the library uses, so a code
 * added to the table is checked here without touching this file: distinct values, the message
 * and the "STRATA_<NAME>" spelling from strata_strerror() / strata_err_name(), the sign
 * convention (failures negative, successes zero or positive), and the answers for codes that
 * are not in the table. strata_version() is checked against the headers it was built with.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <strata/errors.h>
#include <strata/version.h>

typedef struct status_row {
    const char *name; /* "STRATA_ENOTFOUND" */
    const char *bare; /* "ENOTFOUND" */
    int value;
    const char *msg;
} status_row;

static const status_row rows[] = {
#define STATUS_ROW(name, value, msg) {"STRATA_" #name, #name, (value), (msg)},
    STRATA_STATUS_MAP(STATUS_ROW)
#undef STATUS_ROW
};

#define NROWS (sizeof rows / sizeof rows[0])

static int in_table(int status)
{
    for (size_t i = 0; i < NROWS; i++) {
        if (rows[i].value == status) {
            return 1;
        }
    }
    return 0;
}

static void test_enum_matches_table(void **state)
{
    (void)state;
    /* The enum is generated from the same table: spot-check that the generated constants carry
     * the table's values, and that the fixed points of the convention hold. */
    assert_int_equal(STRATA_OK, 0);
    assert_true(STRATA_PENDING > 0);
    assert_true(STRATA_OK_L1_ONLY > 0);
    assert_true(STRATA_ENOMEM < 0);
    assert_true(STRATA_EINVAL < 0);
    assert_true(STRATA_EBADNAME < 0);
    assert_true(STRATA_ERANGE < 0);
    assert_true(NROWS >= 3);
}

static void test_values_distinct(void **state)
{
    (void)state;
    for (size_t i = 0; i < NROWS; i++) {
        for (size_t j = i + 1; j < NROWS; j++) {
            if (rows[i].value == rows[j].value) {
                fail_msg("%s and %s share the value %d", rows[i].name, rows[j].name, rows[i].value);
            }
        }
    }
}

static void test_names_distinct(void **state)
{
    (void)state;
    for (size_t i = 0; i < NROWS; i++) {
        for (size_t j = i + 1; j < NROWS; j++) {
            assert_string_not_equal(rows[i].name, rows[j].name);
        }
    }
}

static void test_sign_convention(void **state)
{
    (void)state;
    /* Failures are the E* codes and are negative; everything else is a success, >= 0. */
    for (size_t i = 0; i < NROWS; i++) {
        if (rows[i].bare[0] == 'E') {
            if (rows[i].value >= 0) {
                fail_msg("%s is an error but has value %d >= 0", rows[i].name, rows[i].value);
            }
        } else {
            if (rows[i].value < 0) {
                fail_msg("%s is a success but has value %d < 0", rows[i].name, rows[i].value);
            }
        }
    }
}

static void test_strerror_every_code(void **state)
{
    (void)state;
    for (size_t i = 0; i < NROWS; i++) {
        const char *m = strata_strerror(rows[i].value);
        assert_non_null(m);
        if (m[0] == '\0') {
            fail_msg("strata_strerror(%s) is empty", rows[i].name);
        }
        assert_string_equal(m, rows[i].msg);
        assert_string_not_equal(m, "unknown status");
    }
}

static void test_err_name_every_code(void **state)
{
    (void)state;
    for (size_t i = 0; i < NROWS; i++) {
        const char *n = strata_err_name(rows[i].value);
        assert_non_null(n);
        assert_string_equal(n, rows[i].name);
        assert_true(strncmp(n, "STRATA_", 7) == 0);
        assert_string_equal(n + 7, rows[i].bare);
    }
}

static void test_known_spellings(void **state)
{
    (void)state;
    assert_string_equal(strata_err_name(STRATA_OK), "STRATA_OK");
    assert_string_equal(strata_err_name(STRATA_ENOTFOUND), "STRATA_ENOTFOUND");
    assert_string_equal(strata_err_name(STRATA_OK_L1_ONLY), "STRATA_OK_L1_ONLY");
    assert_string_equal(strata_strerror(STRATA_ENOTFOUND), "no such key");
    assert_string_equal(strata_strerror(STRATA_OK), "success");
}

static void test_unknown_codes(void **state)
{
    (void)state;
    int min = 0, max = 0;
    for (size_t i = 0; i < NROWS; i++) {
        if (rows[i].value < min) {
            min = rows[i].value;
        }
        if (rows[i].value > max) {
            max = rows[i].value;
        }
    }
    const int candidates[] = {min - 1, max + 1,     min - 1000,  max + 1000, INT_MIN,
                              INT_MAX, INT_MIN + 1, INT_MAX - 1, -12345,     4242};
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
        int c = candidates[i];
        assert_false(in_table(c));
        assert_non_null(strata_strerror(c));
        assert_string_equal(strata_strerror(c), "unknown status");
        assert_non_null(strata_err_name(c));
        assert_string_equal(strata_err_name(c), "STRATA_UNKNOWN");
    }
    /* Every gap inside the table's range is unknown too. */
    for (int c = min; c <= max; c++) {
        if (!in_table(c)) {
            assert_string_equal(strata_strerror(c), "unknown status");
            assert_string_equal(strata_err_name(c), "STRATA_UNKNOWN");
        }
    }
}

static void test_version(void **state)
{
    (void)state;
    const char *v = strata_version();
    assert_non_null(v);
    assert_string_equal(v, STRATA_VERSION_STRING);

    char expect[64];
    snprintf(expect, sizeof expect, "%d.%d.%d", STRATA_VERSION_MAJOR, STRATA_VERSION_MINOR,
             STRATA_VERSION_PATCH);
    assert_string_equal(v, expect);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_enum_matches_table),
        cmocka_unit_test(test_values_distinct),
        cmocka_unit_test(test_names_distinct),
        cmocka_unit_test(test_sign_convention),
        cmocka_unit_test(test_strerror_every_code),
        cmocka_unit_test(test_err_name_every_code),
        cmocka_unit_test(test_known_spellings),
        cmocka_unit_test(test_unknown_codes),
        cmocka_unit_test(test_version),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
