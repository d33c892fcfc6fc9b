#!/usr/bin/env python3
"""perf_phases.py: splits a strata serve profile into the phases of a request, by call stack.

Reads `perf script` output (samples with DWARF call graphs) on stdin; each sample is put in the
first phase below whose functions appear in its stack, and the shares are printed with the
leaf functions that dominate each phase. Stacks through libevent show its exported functions by
name and its static ones as addresses; the phases use only names that survive that.

    perf script -i perf.data | perf_phases.py
"""
import collections
import re
import sys

# The first set names strata's own HTTP layer (src/server/conn.c); the evhttp names are kept so a
# profile of an older build (before conn.c replaced evhttp) still splits the same way.
PHASES = [
    ("syscall epoll_wait: the loop waiting / waking", ("__x64_sys_epoll_wait", "epoll_wait")),
    ("syscall epoll_ctl: changing a socket's interest",
     ("__x64_sys_epoll_ctl", "do_epoll_ctl", "epoll_ctl")),
    ("syscall writev: kernel TCP send, incl. loopback delivery to wrk",
     ("__x64_sys_writev", "writev")),
    ("syscall recv/readv: kernel TCP receive",
     ("__x64_sys_recvfrom", "__x64_sys_readv", "readv", "recv")),
    ("other syscalls (read/write to Redis, futex, ...)", ("do_syscall_64",)),
    ("libevent buffer code around writev/readv", ("evbuffer_write_atmost", "evbuffer_read")),
    ("redis reply path (hiredis, library callbacks, reply)", ("redisProcessCallbacks", "redisAsyncHandleRead")),
    ("library: strata_cache_get_async (L1 lookup, value ref)", ("strata_cache_get_async",)),
    # strata's HTTP layer (conn.c) and what the handlers do
    ("reply: status line, Date, headers, body into the buffer (conn_respond)", ("conn_respond",)),
    ("after the reply: metrics, access log, next request (finish, conn_done)", ("finish", "conn_done")),
    ("handler: route, auth, limits, ETag, headers (serve_request)", ("serve_request",)),
    ("HTTP parsing: http-parser and its callbacks (offsets, NUL-terminating)",
     ("http_parser_execute",)),
    ("connection layer: the rest (on_event, process, settle)", ("on_event", "process", "settle")),
    # evhttp (builds before conn.c)
    ("evhttp reply: status line, Date, headers, buffers (under send_reply)", ("evhttp_send_reply", "send_reply")),
    ("handler: evhttp_add_header (header list: malloc + strdup)", ("evhttp_add_header",)),
    ("handler: the rest (calloc req, route, auth, ETag, snprintf, metrics)", ("on_request",)),
    ("evhttp request free (header lists, uri)", ("evhttp_request_free", "evhttp_clear_headers")),
    ("evhttp parsing (request line, headers)", ("evhttp_parse_firstline_", "evhttp_parse_headers_",
                                                 "evhttp_uri_parse", "evhttp_uri_parse_with_flags")),
]
OTHER = "libevent: the loop's own code (event_base_loop, callbacks; unnamed static functions)"

counts = collections.Counter()
leaves = collections.defaultdict(collections.Counter)
total = 0


def classify(frames):
    names = set(frames)
    for phase, marks in PHASES:
        for m in marks:
            if m in names:
                return phase
    return OTHER


def flush(frames):
    global total
    if not frames:
        return
    total += 1
    phase = classify(frames)
    counts[phase] += 1
    leaves[phase][frames[0]] += 1


frames = []
in_sample = False
for line in sys.stdin:
    if not line.strip():
        flush(frames)
        frames = []
        in_sample = False
        continue
    if not line.startswith((" ", "\t")):
        flush(frames)
        frames = []
        in_sample = True
        continue
    m = re.match(r"\s+[0-9a-f]+\s+(\S+)", line)
    if m:
        sym = m.group(1)
        sym = re.sub(r"\+0x[0-9a-f]+$", "", sym)
        sym = re.sub(r"@.*$", "", sym)
        sym = re.sub(r"^__GI___", "", sym)
        sym = re.sub(r"^__(libc_)?", "", sym) if sym in ("__writev", "__readv", "__libc_writev",
                                                          "__libc_readv", "__epoll_wait") else sym
        frames.append(sym)
flush(frames)

if total == 0:
    print("  (no samples)")
    sys.exit(0)
for phase, n in counts.most_common():
    top = ", ".join(f"{s} {100.0 * c / n:.0f}%" for s, c in leaves[phase].most_common(4))
    print(f"  {100.0 * n / total:6.2f}%  {phase}")
    print(f"           leaves: {top}")
print(f"  ({total} samples)")
