/* config.c: settings given as text, and the process-wide helpers every component uses (the
 * clock, the random seed).
 *
 * Parsers here are strict on purpose: "64MB " or "1e9" is an error at start-up with the variable
 * named, never a silently different cache size.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <strata/errors.h>
#include <strata/l1.h>

#include "core/config.h"
#include "core/rand.h"

int strata__parse_size(const char *s, size_t *out)
{
    if (s == NULL || *s < '0' || *s > '9')
        return STRATA_ERANGE;
    uint64_t v = 0;
    while (*s >= '0' && *s <= '9') {
        unsigned d = (unsigned)(*s++ - '0');
        if (v > (UINT64_MAX - d) / 10)
            return STRATA_ERANGE;
        v = v * 10 + d;
    }
    unsigned shift = 0;
    switch (*s) {
    case 'k':
    case 'K':
        shift = 10;
        s++;
        break;
    case 'm':
    case 'M':
        shift = 20;
        s++;
        break;
    case 'g':
    case 'G':
        shift = 30;
        s++;
        break;
    default:
        break;
    }
    if (shift != 0 && (strcmp(s, "iB") == 0 || strcmp(s, "ib") == 0))
        s += 2;
    if (*s != '\0' || v == 0 || v > (SIZE_MAX >> shift))
        return STRATA_ERANGE;
    *out = (size_t)(v << shift);
    return 0;
}

int strata_size_parse(const char *s, size_t *out)
{
    return strata__parse_size(s, out);
}

uint64_t strata__rand_seed(void)
{
    uint64_t seed;
    if (getrandom(&seed, sizeof seed, 0) == (ssize_t)sizeof seed)
        return seed;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)(uintptr_t)&seed;
    return strata__rand_next(&seed);
}

/* The suffix strata__parse_size takes: nothing, K, M or G, each optionally followed by iB. */
static int size_suffix_ok(const char *p)
{
    if (*p == '\0')
        return 1;
    if (strchr("kKmMgG", *p) == NULL)
        return 0;
    return p[1] == '\0' || strcmp(p + 1, "iB") == 0 || strcmp(p + 1, "ib") == 0;
}

/* Says what is wrong with a size strata__parse_size refused: the part at fault, quoted, so
 * "64MB" reads as a suffix problem and not as a number out of range. */
void strata__size_why(const char *s, char *buf, size_t cap)
{
    const char *p = s ? s : "";
    while (*p >= '0' && *p <= '9')
        p++;
    if (s == NULL || p == s)
        snprintf(buf, cap,
                 "expected a size: digits with an optional K, M or G suffix (powers of "
                 "1024), e.g. 64M");
    else if (!size_suffix_ok(p))
        snprintf(buf, cap,
                 "\"%.20s\" is not a size suffix: use K, M or G (powers of 1024; KiB, MiB, GiB "
                 "also work), e.g. 64M",
                 p);
    else if (strspn(s, "0") == (size_t)(p - s))
        snprintf(buf, cap, "a size must be more than 0");
    else
        snprintf(buf, cap, "too large a size for this machine");
}

int strata__parse_bool(const char *s, int *out)
{
    static const char *yes[] = {"1", "true", "yes", "on"}, *no[] = {"0", "false", "no", "off"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0)
            return *out = 1, 0;
        if (strcasecmp(s, no[i]) == 0)
            return *out = 0, 0;
    }
    return STRATA_ERANGE;
}

int strata__parse_seconds(const char *s, double max_s, unsigned *out_ms)
{
    /* Digits, an optional '.' and digits: strtod alone would also take "1e3", "inf", " 2". */
    const char *p = s;
    int digits = 0;
    while (*p >= '0' && *p <= '9')
        p++, digits++;
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++)
            digits++;
    if (digits == 0 || *p != '\0')
        return STRATA_ERANGE;
    double v = strtod(s, NULL);
    if (!(v > 0) || v > max_s)
        return STRATA_ERANGE;
    double ms = v * 1000.0;
    *out_ms = ms < 1 ? 1 : (unsigned)(ms + 0.5);
    return 0;
}

int strata__parse_uint(const char *s, unsigned long lo, unsigned long hi, unsigned long *out)
{
    if (*s < '0' || *s > '9')
        return STRATA_ERANGE;
    unsigned long v = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (v > (hi - (unsigned long)(*s - '0')) / 10)
            return STRATA_ERANGE;
        v = v * 10 + (unsigned long)(*s - '0');
    }
    if (*s != '\0' || v < lo || v > hi)
        return STRATA_ERANGE;
    *out = v;
    return 0;
}
