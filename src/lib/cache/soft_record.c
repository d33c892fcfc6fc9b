/* cache/soft_record.c: a tag's soft record (l1/tags.h) as Redis stores it, text readable in
 * redis-cli: the version it applies to, then each retired version with the moment it was
 * retired, newest first: "<cur> <retired>@<ms> ...", versions as 16 lowercase hex digits (as the
 * version key holds them), times in decimal milliseconds. Written by soft_tag.c, read by
 * twotier.c beside the version when a tag is not known here.
 */
#include <stdio.h>
#include <string.h>

#include <strata/errors.h>

#include "cache/soft_record.h"
#include "redis/cmd.h"

size_t strata__soft_tag_format(const tag_soft *r, char *buf)
{
    strata__tag_version_format(r->cur, buf);
    size_t n = 16;
    for (unsigned i = 0; i < r->n && i < STRATA_TAG_SOFT_MAX; i++) {
        buf[n++] = ' ';
        strata__tag_version_format(r->retired[i].version, buf + n);
        n += 16;
        n += (size_t)snprintf(buf + n, SOFT_TAG_RECORD_MAX - n, "@%llu",
                              (unsigned long long)r->retired[i].at_ms);
    }
    return n;
}

int strata__soft_tag_parse(const char *s, size_t len, tag_soft *r)
{
    memset(r, 0, sizeof *r);
    tag_soft x = {0};
    if (len < 16 || strata__tag_version_parse(s, 16, &x.cur) != 0)
        return STRATA_EFORMAT;
    size_t p = 16;
    while (p < len) {
        if (x.n == STRATA_TAG_SOFT_MAX || len - p < 19 || s[p] != ' ' || s[p + 17] != '@' ||
            strata__tag_version_parse(s + p + 1, 16, &x.retired[x.n].version) != 0)
            return STRATA_EFORMAT;
        p += 18;
        uint64_t at = 0;
        size_t digits = 0;
        for (; p < len && s[p] >= '0' && s[p] <= '9' && digits < 19; p++, digits++)
            at = at * 10 + (uint64_t)(s[p] - '0');
        if (digits == 0 || (p < len && s[p] != ' '))
            return STRATA_EFORMAT;
        x.retired[x.n++].at_ms = at;
    }
    *r = x;
    return 0;
}
