/* fuzz_glob.c: strata_glob_match() against Redis' glob rules on arbitrary bytes.
 *
 * Patterns come from users (clear and list endpoints), so the matcher must never crash, never
 * read past either length, and always finish: a backtracking matcher without Redis'
 * skipLongerMatches cut is exponential in the number of '*', so the pattern is capped at 255
 * bytes and the subject at 256 (run with -timeout to turn a blowup into a failure). Beyond not
 * crashing it checks invariants that hold under Redis' stringmatchlen() whatever the
 * implementation: a pattern without special bytes matches exactly itself; "*" matches everything;
 * a subject with every byte escaped matches itself; one '?' per byte matches. Then it compares
 * the answer with a small independent model of stringmatchlen() (memoised, so it cannot blow
 * up itself) whenever the model's answer does not depend on whether char is signed (Redis
 * compares range bounds as plain char) and is not the one case where Redis versions differ
 * (only-'*' patterns against an empty subject).
 *
 * Layout: byte 0 is the pattern length; the pattern follows, then the subject.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <strata/key.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define SUBJECT_MAX 256

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Calls the matcher on exactly sized heap copies, so a read past either length is caught. */
static int match(const uint8_t *p, size_t plen, const uint8_t *s, size_t slen)
{
    char *pc = malloc(plen ? plen : 1);
    char *sc = malloc(slen ? slen : 1);
    CHECK(pc != NULL && sc != NULL);
    if (plen) {
        memcpy(pc, p, plen);
    }
    if (slen) {
        memcpy(sc, s, slen);
    }
    int r = strata_glob_match(pc, plen, sc, slen);
    free(pc);
    free(sc);
    CHECK(r == 0 || r == 1);
    return r;
}

/* ---- a model of Redis' stringmatchlen() (case-sensitive), one pattern element at a time ----
 * State (pi, si): does pattern[pi..) match subject[si..), with si < slen. Redis reads a NUL
 * terminator past the pattern; the model spells out what that read decides. */

static const uint8_t *M_p, *M_s;
static size_t M_pl, M_sl;
static int M_signed; /* compare range bounds as signed char, as Redis does on x86 */
static uint32_t memo_gen[256][SUBJECT_MAX + 1]; /* memo[][] is valid where this is M_gen */
static uint8_t memo[256][SUBJECT_MAX + 1];
static uint32_t M_gen;

static int as_char(uint8_t b)
{
    return M_signed ? (int)(signed char)b : (int)b;
}

/* Matches one non-'*' element at pi against byte c; sets *next past the element. */
static int element(size_t pi, uint8_t c, size_t *next)
{
    const uint8_t *p = M_p;
    size_t pl = M_pl;
    if (p[pi] == '?') {
        *next = pi + 1;
        return 1;
    }
    if (p[pi] == '\\') {
        if (pi + 1 < pl) {
            *next = pi + 2;
            return p[pi + 1] == c;
        }
        *next = pi + 1; /* a trailing backslash is itself */
        return c == '\\';
    }
    if (p[pi] != '[') {
        *next = pi + 1;
        return p[pi] == c;
    }
    size_t j = pi + 1;
    int negate = 0, matched = 0;
    if (j < pl && p[j] == '^') {
        negate = 1;
        j++;
    }
    for (;;) {
        if (j + 1 < pl && p[j] == '\\') {
            j++;
            if (p[j] == c) {
                matched = 1;
            }
        } else if (j < pl && p[j] == ']') {
            break;
        } else if (j == pl) {
            j--; /* unterminated: the class runs to the end of the pattern */
            break;
        } else if (pl - j >= 3 && p[j + 1] == '-') {
            int lo = as_char(p[j]), hi = as_char(p[j + 2]), ch = as_char(c);
            if (lo > hi) {
                int t = lo;
                lo = hi;
                hi = t;
            }
            if (ch >= lo && ch <= hi) {
                matched = 1;
            }
            j += 2;
        } else if (p[j] == c) {
            matched = 1;
        }
        j++;
    }
    *next = j + 1;
    return negate ? !matched : matched;
}

static int model_at(size_t pi, size_t si)
{
    if (pi == M_pl) {
        return 0; /* pattern exhausted, subject not */
    }
    if (memo_gen[pi][si] == M_gen) {
        return memo[pi][si];
    }
    int res = 0;
    if (M_p[pi] == '*') {
        size_t q = pi;
        while (q + 1 < M_pl && M_p[q + 1] == '*') {
            q++;
        }
        if (q + 1 == M_pl) {
            res = 1;
        } else {
            for (size_t k = si; k < M_sl && !res; k++) {
                res = model_at(q + 1, k);
            }
        }
    } else {
        size_t next;
        if (element(pi, M_s[si], &next)) {
            if (si + 1 == M_sl) {
                while (next < M_pl && M_p[next] == '*') {
                    next++;
                }
                res = next == M_pl;
            } else {
                res = model_at(next, si + 1);
            }
        }
    }
    memo_gen[pi][si] = M_gen;
    memo[pi][si] = (uint8_t)res;
    return res;
}

static int model(const uint8_t *p, size_t plen, const uint8_t *s, size_t slen, int is_signed)
{
    if (plen == 1 && p[0] == '*') {
        return 1; /* KEYS * and SCAN MATCH * select every key, the empty one included */
    }
    if (slen == 0) {
        return plen == 0;
    }
    M_p = p;
    M_pl = plen;
    M_s = s;
    M_sl = slen;
    M_signed = is_signed;
    if (++M_gen == 0) { /* wrapped: forget every stamp */
        memset(memo_gen, 0, sizeof memo_gen);
        M_gen = 1;
    }
    return model_at(0, 0);
}

static int is_special(uint8_t c)
{
    return c == '*' || c == '?' || c == '[' || c == '\\';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    size_t plen = data[0];
    if (plen > size - 1) {
        plen = size - 1;
    }
    const uint8_t *pattern = data + 1;
    const uint8_t *subject = pattern + plen;
    size_t slen = size - 1 - plen;
    if (slen > SUBJECT_MAX) {
        slen = SUBJECT_MAX;
    }

    int got = match(pattern, plen, subject, slen);

    /* A pattern without special bytes matches exactly itself. */
    int plain = 1;
    for (size_t i = 0; i < plen; i++) {
        plain &= !is_special(pattern[i]);
    }
    if (plain) {
        CHECK(got == (plen == slen && memcmp(pattern, subject, plen) == 0));
    }

    /* "*" matches everything. */
    CHECK(match((const uint8_t *)"*", 1, subject, slen) == 1);

    /* The subject, every byte escaped, matches itself; so does one '?' per byte. */
    uint8_t *esc = malloc(2 * slen + 1);
    CHECK(esc != NULL);
    for (size_t i = 0; i < slen; i++) {
        esc[2 * i] = '\\';
        esc[2 * i + 1] = subject[i];
    }
    CHECK(match(esc, 2 * slen, subject, slen) == 1);
    if (slen > 0) {
        memset(esc, '?', slen);
        CHECK(match(esc, slen, subject, slen) == 1);
        CHECK(match(esc, slen - 1, subject, slen) == 0);
        esc[slen] = '?';
        CHECK(match(esc, slen + 1, subject, slen) == 0);
    }
    free(esc);

    /* The subject, if it has no special bytes, matches itself as a pattern. */
    int subject_plain = 1;
    for (size_t i = 0; i < slen; i++) {
        subject_plain &= !is_special(subject[i]);
    }
    if (subject_plain) {
        CHECK(match(subject, slen, subject, slen) == 1);
    }

    /* The model of stringmatchlen(). */
    int only_stars = plen > 1;
    for (size_t i = 0; i < plen; i++) {
        only_stars &= pattern[i] == '*';
    }
    if (!(slen == 0 && only_stars)) {
        int m_unsigned = model(pattern, plen, subject, slen, 0);
        int m_signed = model(pattern, plen, subject, slen, 1);
        if (m_unsigned == m_signed && got != m_unsigned) {
            fprintf(stderr,
                    "glob mismatch: pattern %zu bytes, subject %zu bytes: got %d, Redis %d\n", plen,
                    slen, got, m_unsigned);
            CHECK(got == m_unsigned);
        }
    }
    return 0;
}
