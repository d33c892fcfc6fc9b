/* glob.c: Redis glob matching over bytes (*, ?, [set], [^set], ranges, backslash escapes).
 *
 * Written here rather than taken from libc because fnmatch(3) differs from Redis on the points
 * that matter: it stops at NUL (keys are bytes), negates sets with '!' not '^', and treats '/'
 * and leading dots specially. L1 clears must select exactly what SCAN MATCH selects in L2, so this
 * follows Redis' stringmatchlen() rule for rule. Unlike it, '*' runs are handled by remembering the
 * last star and backtracking to it (linear space, no recursion), so a hostile pattern such as
 * "*a*a*a*a*b" costs O(pattern * subject), not exponential time.
 */
#include <stddef.h>

#include <strata/key.h>

/* Matches one [set] at p (just after '['), for byte c. Sets *next to the byte after the set.
 * Mirrors Redis: an unterminated set runs to the end of the pattern. */
static int set_match(const char *p, const char *pend, unsigned char c, const char **next)
{
    int negate = 0, match = 0;
    if (p < pend && *p == '^') {
        negate = 1;
        p++;
    }
    while (p < pend && *p != ']') {
        if (*p == '\\' && p + 1 < pend) {
            p++;
            if ((unsigned char)*p == c)
                match = 1;
        } else if (p + 2 < pend && p[1] == '-') {
            unsigned char lo = (unsigned char)p[0], hi = (unsigned char)p[2];
            if (lo > hi) {
                unsigned char t = lo;
                lo = hi;
                hi = t;
            }
            if (c >= lo && c <= hi)
                match = 1;
            p += 2;
        } else if ((unsigned char)*p == c) {
            match = 1;
        }
        p++;
    }
    /* Redis steps back onto the last byte when the set is unterminated. */
    *next = p < pend ? p + 1 : pend;
    return negate ? !match : match;
}

int strata_glob_match(const char *pattern, size_t plen, const char *s, size_t slen)
{
    const char *p = pattern, *pend = pattern + plen;
    const char *str = s, *send = s + slen;
    const char *star_p = NULL, *star_s = NULL;

    while (str < send) {
        if (p < pend && *p == '*') {
            while (p < pend && *p == '*')
                p++;
            if (p == pend)
                return 1;
            star_p = p;
            star_s = str;
            continue;
        }
        if (p < pend) {
            const char *next = p + 1;
            int ok;
            if (*p == '?') {
                ok = 1;
            } else if (*p == '[') {
                ok = set_match(p + 1, pend, (unsigned char)*str, &next);
            } else if (*p == '\\' && p + 1 < pend) {
                ok = p[1] == *str;
                next = p + 2;
            } else {
                ok = *p == *str;
            }
            if (ok) {
                p = next;
                str++;
                continue;
            }
        }
        if (star_p == NULL)
            return 0;
        p = star_p;
        str = ++star_s;
    }
    while (p < pend && *p == '*')
        p++;
    return p == pend;
}
