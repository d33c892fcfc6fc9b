#!/usr/bin/env bash
# perf_groups.sh SELF.txt [LIBSYMS]: sums `perf report --no-children --sort dso,sym` self shares
# into groups: the kernel (syscalls, TCP, epoll), libevent's HTTP layer (evhttp: parsing, header
# lists), libevent's buffers and loop, malloc/free, printf/scanf, other libc, clock_gettime (vdso),
# strata's library code (symbols defined in libstrata.a, listed one per line in LIBSYMS) and
# strata's server code (the rest of the strata binary), hiredis, jansson, others.
set -euo pipefail
self=$1
libsyms=${2:-/dev/null}
awk -v libsyms="$libsyms" '
    BEGIN { while ((getline s < libsyms) > 0) lib[s] = 1 }
    {
        pct = $1; sub(/%/, "", pct); dso = $2
        sym = $0; sub(/^.*\[[.kug]\] /, "", sym); sub(/[[:space:]]+$/, "", sym)
        base = sym; sub(/@.*$/, "", base); sub(/\.(isra|constprop|part|cold)\..*$/, "", base)
        g = "other (" dso ")"
        if (dso ~ /libhttp_parser/) g = "http-parser (libhttp_parser)"
        if (dso ~ /kernel/) g = "kernel: syscalls, TCP, epoll"
        else if (dso ~ /vdso/) g = "vdso: clock_gettime"
        else if (dso ~ /libevent/) {
            if (base ~ /^(evhttp|evkey|evutil_ascii|EVUTIL_TOLOWER|evutil_tolower|evhttp_find|evhttp_parse|evhttp_add|evhttp_remove|evhttp_clear|evhttp_uri|evhttp_decode|evhttp_encode|evhttp_request)/) g = "libevent evhttp: parsing, header lists, replies"
            else if (base ~ /^evbuffer/) g = "libevent evbuffer"
            else g = "libevent loop, bufferevent, other"
        }
        else if (dso ~ /^libc/) {
            if (base ~ /(malloc|calloc|realloc|free|unlink_chunk|_int_|tcache|arena|sysmalloc|consolidate)/) g = "libc malloc/free"
            else if (base ~ /(printf|scanf|_IO_|strchrnul|__printf_fp|_itoa|__mpn|hack_digit|read_int|__strtol|____strtol|strtoull|strtol)/) g = "libc printf/scanf/strtol"
            else if (base ~ /pthread|mutex|lll_/) g = "libc locks"
            else if (base ~ /^(epoll_ctl|epoll_wait|__GI___writev|writev|readv|__GI___readv|__libc_read|__libc_write|read|write|recv|send|__send|__recv|accept4|close|ioctl|__close|syscall)/) g = "libc syscall wrappers"
            else g = "libc other (str*, mem*, ...)"
        }
        else if (dso ~ /hiredis/) g = "hiredis"
        else if (dso ~ /jansson/) g = "jansson"
        else if (dso ~ /xxhash/) g = "xxhash"
        else if (dso ~ /crypto/) g = "libcrypto"
        else if (dso == "strata") g = ((base in lib) ? "strata library (libstrata)" : "strata server (src/server)")
        sum[g] += pct; tot += pct
    }
    END {
        # perf prints each symbol rounded to 0.01%: over hundreds of symbols the printed shares
        # add up to a little over 100%, so the groups are scaled to their sum
        for (g in sum) printf "  %6.2f%%  %s\n", 100 * sum[g] / tot, g | "sort -rn"
        close("sort -rn")
    }' "$self"
