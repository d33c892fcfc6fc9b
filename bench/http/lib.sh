#!/usr/bin/env bash
# bench/http/lib.sh: helpers shared by the scripts of bench/http, bench/ratelimit, bench/stampede
# and bench/proxy (sourced).
#
# Servers are started by the scripts themselves, on free loopback ports, pinned to CPU 1, and
# stopped by the EXIT trap (only the processes started here, by pid). Clients run on CPU 0.
# Every timed run records how busy the machine's other processes were meanwhile, so a disturbed
# row can be told from a clean one (the machine is shared).

# The packages a benchmark needs: installed with apt-get when root (services the packages would
# start are not started: Debian's invoke-rc.d honours policy-rc.d, and any that did start are
# stopped right after the install), else the apt-get line is printed and the script stops.
ensure_pkgs() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "bench: missing Debian packages: ${missing[*]}" >&2
        echo "run: sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
        exit 1
    fi
    echo "bench: installing ${missing[*]}" >&2
    local before after
    before=$(pgrep -x 'nginx|varnishd|webdis|redis-server' | sort || true)
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
    # A package whose post-install script started its service (no policy-rc.d here): stop that
    # service, and only what appeared during this install.
    after=$(pgrep -x 'nginx|varnishd|webdis|redis-server' | sort || true)
    if [ "$before" != "$after" ]; then
        for p in nginx varnish webdis redis-server; do
            case " ${missing[*]} " in
            *" $p "* | *" $p-"*) command -v service >/dev/null && service "$p" stop >/dev/null 2>&1 || true ;;
            esac
        done
        # Fallback, for a service not stopped by its init script: a process that appeared during
        # the install, was started by init (parent 1) and runs the package's default
        # configuration. Test harnesses' redis-servers (other parents, own ports) are never it.
        local pid cmd
        for pid in $(comm -13 <(echo "$before") <(echo "$after")); do
            [ "$(awk '{ print $4 }' "/proc/$pid/stat" 2>/dev/null)" = 1 ] || continue
            cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)
            case $cmd in
            *" /etc/"* | *"127.0.0.1:6379"* | *"/usr/sbin/nginx -g"*)
                echo "bench: stopping '$cmd' ($pid), started by the install" >&2
                kill "$pid" 2>/dev/null || true
                ;;
            esac
        done
    fi
}

# machine_lines [BUILD_DIR]: the lines every run's machine.txt starts with: date, CPUs, memory,
# kernel, commit, and the build's directory and type.
machine_lines() {
    echo "date: $(date)"
    echo "nproc: $(nproc)"
    echo "cpu: $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n1)"
    echo "memory: $(free -h | awk '/^Mem:/ {print $2}')"
    echo "kernel: $(uname -r)"
    echo "commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none)"
    if [ -n "${1:-}" ]; then
        echo "build: $1 ($(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$1/CMakeCache.txt"))"
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# CPUs' worth of time the whole machine used over one second (/proc/stat).
busy_cpus() {
    local a b
    a=$(head -n1 /proc/stat)
    sleep 1
    b=$(head -n1 /proc/stat)
    awk -v a="$a" -v b="$b" -v n="$(nproc)" 'BEGIN {
        split(a, x); split(b, y); tot = 0
        for (i = 2; i <= 9; i++) tot += y[i] - x[i]
        idle = (y[5] - x[5]) + (y[6] - x[6])
        printf "%.2f", (tot > 0 ? n * (tot - idle) / tot : 0) }'
}

# wait_quiet WHAT: waits up to QUIET_WAIT seconds for the machine to use at most 0.2 CPU (our own
# servers are idle between runs), then goes ahead; prints the last busy figure.
wait_quiet() {
    local busy waited=0
    busy=$(busy_cpus)
    while awk -v b="$busy" 'BEGIN { exit !(b > 0.2) }' && [ "$waited" -lt "$QUIET_WAIT" ]; do
        [ "$waited" -eq 0 ] && echo "  (waiting for a quiet machine before $1: $busy CPUs busy)" >&2
        sleep 2
        waited=$((waited + 3))
        busy=$(busy_cpus)
    done
    echo "$busy"
}

# CPU seconds the whole machine has spent busy (all CPUs).
machine_busy() {
    awk -v hz="$(getconf CLK_TCK)" '/^cpu / { printf "%.2f", ($2 + $3 + $4 + $7 + $8 + $9) / hz }' \
        /proc/stat
}

cpu_line() { grep "^cpu$1 " /proc/stat; }

# idle_share "LINE_BEFORE" "LINE_AFTER": the share of the time a CPU was idle (idle + iowait).
idle_share() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        split(a, x); split(b, y); tot = 0
        for (i = 2; i <= 9; i++) tot += y[i] - x[i]
        printf "%.3f", (tot > 0 ? ((y[5] - x[5]) + (y[6] - x[6])) / tot : 0) }'
}

# tree_pids PID...: the pids and all their descendants.
tree_pids() {
    ps -e -o pid=,ppid= | awk -v roots="$*" '
        { kids[$2] = kids[$2] " " $1 }
        END {
            n = split(roots, q, " "); out = ""
            for (i = 1; i <= n; i++) {
                p = q[i]; out = out " " p
                m = split(kids[p], k, " "); for (j = 1; j <= m; j++) q[++n] = k[j]
            }
            print out }'
}

# tree_cpu PID...: CPU seconds (user + system, all threads) of the processes (not their children).
tree_cpu() {
    local p s=0
    for p in "$@"; do
        [ -r "/proc/$p/stat" ] || continue
        s=$(awk -v s="$s" -v hz="$(getconf CLK_TCK)" '{
            sub(/^.*\) /, ""); printf "%.2f", s + ($12 + $13) / hz }' "/proc/$p/stat")
    done
    echo "$s"
}

# tree_rss PID...: VmRSS in KiB, summed over the processes.
tree_rss() {
    local p s=0 r
    for p in "$@"; do
        r=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null || true)
        s=$((s + ${r:-0}))
    done
    echo "$s"
}

# Processes started here, stopped by stop_all (the EXIT trap) or stop_pids.
STARTED=()

# start_server NAME CMD...: starts CMD pinned to CPU 1, output to $TMP/NAME.log; sets SPID.
start_server() {
    local name=$1
    shift
    taskset -c 1 "$@" >"$TMP/$name.log" 2>&1 &
    SPID=$!
    STARTED+=("$SPID")
}

# stop_pids PID...: TERM, then KILL after 5 s; waits for them.
stop_pids() {
    local p
    for p in "$@"; do kill "$p" 2>/dev/null || true; done
    for p in "$@"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    local keep=() s
    for s in "${STARTED[@]}"; do
        case " $* " in *" $s "*) ;; *) keep+=("$s") ;; esac
    done
    STARTED=("${keep[@]}")
}

stop_all() {
    [ ${#STARTED[@]} -gt 0 ] && stop_pids "${STARTED[@]}"
    return 0
}

# wait_port PORT PID: until the port accepts connections and every listener on it belongs to
# PID's process tree (SO_REUSEPORT would let another root process share a port: a request must
# never reach a server we did not start). Fails after 15 s.
wait_port() {
    local port=$1 pid=$2 tree others
    for _ in $(seq 150); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "bench: the server on port $port (pid $pid) exited" >&2
            return 1
        fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            tree=" $(tree_pids "$pid") "
            others=$(ss -Htlnp "sport = :$port" | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u |
                while read -r p; do case $tree in *" $p "*) ;; *) echo "$p" ;; esac; done)
            if [ -n "$others" ]; then
                echo "bench: port $port is also served by pid(s) $others, not ours" >&2
                return 1
            fi
            return 0
        fi
        sleep 0.1
    done
    echo "bench: nothing listens on port $port after 15 s" >&2
    return 1
}

# start_redis: our own redis-server on CPU 1, free port, temp dir, no persistence: sets
# REDIS_PORT, REDIS_PID.
start_redis() {
    local attempt
    for attempt in 1 2 3 4 5; do
        REDIS_PORT=$(free_port)
        start_server "redis-$attempt" redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' \
            --appendonly no --dir "$TMP" --daemonize no
        REDIS_PID=$SPID
        wait_port "$REDIS_PORT" "$REDIS_PID" 2>/dev/null && return 0
        stop_pids "$REDIS_PID"
    done
    echo "bench: redis-server would not start" >&2
    exit 1
}

# wrk_field FILE: Requests/sec, p50 and p99 in ms, errors (non-2xx/3xx + socket errors), from
# `wrk --latency` output.
wrk_fields() {
    awk '
        function ms(s) {
            if (s ~ /us$/) return substr(s, 1, length(s) - 2) / 1000
            if (s ~ /ms$/) return substr(s, 1, length(s) - 2) + 0
            if (s ~ /m$/) return substr(s, 1, length(s) - 1) * 60000
            if (s ~ /s$/) return substr(s, 1, length(s) - 1) * 1000
            return s + 0 }
        /^Requests\/sec:/ { rps = $2 }
        $1 == "50%" { p50 = ms($2) }
        $1 == "99%" { p99 = ms($2) }
        /Non-2xx or 3xx responses:/ { err += $NF }
        /Socket errors:/ { gsub(/,/, ""); err += $4 + $6 + $8 + $10 }
        / requests in / { reqs = $1 }
        END { printf "%s %.3f %.3f %d %d\n", rps, p50, p99, err, reqs }' "$1"
}

# median_table RAW OTHER_MAX ROUNDS PREFIX: RAW holds "round row.metric value" lines; a row's
# round is disturbed when its other_cpu exceeds OTHER_MAX. Prints RESULT PREFIX.row.metric=median
# over the undisturbed rounds (over all rounds, with a warning on stderr, when fewer than half are
# undisturbed), and "clean row n/m" on stderr.
median_table() {
    awk -v omax="$2" -v R="$3" -v pre="$4" '
        { split($2, p, "."); row = p[1]; met = substr($2, length(row) + 2)
          v[$1 " " row " " met] = $3
          if (!(row in seen)) { seen[row] = 1; rows[nr++] = row }
          if (!((row " " met) in ms)) { ms[row " " met] = 1; mets[row] = mets[row] " " met } }
        function median(s,    a, m, i, j, t) {
            m = split(s, a, " ")
            for (i = 2; i <= m; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] + 0 > t + 0; j--) a[j + 1] = a[j]; a[j + 1] = t }
            return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
        }
        END {
            for (i = 0; i < nr; i++) {
                row = rows[i]; clean = ""; all = ""; nc = 0; na = 0
                for (r = 1; r <= R; r++) if ((r " " row " rps") in v) {
                    na++; all = all " " r
                    if (!((r " " row " other_cpu") in v) || v[r " " row " other_cpu"] <= omax) { nc++; clean = clean " " r }
                }
                use = clean
                if (nc * 2 < na) { use = all; printf "warn %s: only %d of %d rounds undisturbed: median of all\n", row, nc, na > "/dev/stderr" }
                printf "clean %s %d/%d\n", row, nc, na > "/dev/stderr"
                m = split(mets[row], ml, " "); k = split(use, rs, " ")
                for (j = 1; j <= m; j++) {
                    vals = ""
                    for (x = 1; x <= k; x++) if ((rs[x] " " row " " ml[j]) in v) vals = vals " " v[rs[x] " " row " " ml[j]]
                    if (vals != "") printf "RESULT %s.%s.%s=%s\n", pre, row, ml[j], median(vals)
                }
            }
        }' "$1"
}

# fill TEMPLATE DEST KEY=VALUE...: the template with @KEY@ replaced.
fill() {
    local src=$1 dst=$2 kv expr=()
    shift 2
    for kv in "$@"; do expr+=(-e "s|@${kv%%=*}@|${kv#*=}|g"); done
    sed "${expr[@]}" "$src" >"$dst"
}

# ---- one measured run: measure and check_hit use the caller's TMP, OUT, ROUND (the round's
# number, in file names and warnings), CONNS, WARMUP and DURATION (seconds) --------------------

# measure ROW "SERVER_PIDS" "ALSO_PIDS" WRK_ARGS...: wrk for WARMUP s (discarded), then for
# DURATION s with --latency; prints "ROW.metric value" lines: rps, p50_ms, p99_ms, errors, rss_kb
# (VmRSS of the server's processes at the end of the run), cpu1_idle (CPU 1's idle share during
# the run), server_cpu (CPUs used by the server's processes and ALSO_PIDS, e.g. redis-server),
# client_cpu (wrk), other_cpu (everything else on the machine: a disturbed run shows here).
measure() {
    local row=$1 spids=$2 also=$3 tree also_pids f times real user sys
    shift 3
    read -r -a tree <<<"$(tree_pids "$spids")"
    read -r -a also_pids <<<"$also"
    taskset -c 0 wrk -t1 -c"$CONNS" -d"${WARMUP}s" "$@" >"$TMP/warm.txt" 2>&1 || true
    local c0 c1 s0 s1 m0 m1 rss redis_rss
    c0=$(cpu_line 1)
    s0=$(tree_cpu "${tree[@]}" "${also_pids[@]}")
    m0=$(machine_busy)
    f=$OUT/$row.r$ROUND.txt
    times=$( { TIMEFORMAT='%R %U %S'; time taskset -c 0 wrk -t1 -c"$CONNS" -d"${DURATION}s" \
        --latency "$@" >"$f" 2>&1; } 2>&1)
    m1=$(machine_busy)
    s1=$(tree_cpu "${tree[@]}" "${also_pids[@]}")
    c1=$(cpu_line 1)
    rss=$(tree_rss "${tree[@]}")
    redis_rss=$(tree_rss "${also_pids[@]}")
    read -r real user sys <<<"$times"
    local rps p50 p99 err
    read -r rps p50 p99 err _ < <(wrk_fields "$f")
    {
        echo "server processes: ${tree[*]} (+ $also); rss ${rss} KiB; redis rss ${redis_rss} KiB"
        echo "cpu1 before: $c0"
        echo "cpu1 after:  $c1"
    } >>"$f"
    echo "$row.rps $rps"
    echo "$row.p50_ms $p50"
    echo "$row.p99_ms $p99"
    echo "$row.errors $err"
    echo "$row.rss_kb $rss"
    [ -n "$also" ] && echo "$row.redis_rss_kb $redis_rss"
    echo "$row.cpu1_idle $(idle_share "$c0" "$c1")"
    awk -v r="$real" -v u="$user" -v s="$sys" -v s0="$s0" -v s1="$s1" -v m0="$m0" -v m1="$m1" \
        -v row="$row" 'BEGIN {
            printf "%s.client_cpu %.2f\n", row, (u + s) / r
            printf "%s.server_cpu %.2f\n", row, (s1 - s0) / r
            o = (m1 - m0 - (u + s) - (s1 - s0)) / r
            printf "%s.other_cpu %.2f\n", row, (o > 0 ? o : 0) }'
    if [ "${err:-0}" != 0 ]; then
        echo "round $ROUND: $row: $err errors or non-2xx answers (see $f)" >>"$OUT/warnings.txt"
    fi
}

# check_hit ROW URL HEADER_REGEX SIZE: one GET must answer 200, SIZE bytes, with a header line
# matching HEADER_REGEX (case-insensitive): the hit header, or for a miss row the miss header.
check_hit() {
    local row=$1 url=$2 want=$3 size=$4 h
    h=$(curl -s -D - -o "$TMP/body" "$url" | tr -d '\r')
    if ! grep -q '^HTTP/1.1 200' <<<"$h" || ! grep -Eqi "$want" <<<"$h" ||
        [ "$(stat -c %s "$TMP/body")" != "$size" ]; then
        echo "round $ROUND: $row: not a 200 of $size bytes with /$want/ ($url):" \
            "$(tr '\n' ' ' <<<"$h")" | tee -a "$OUT/warnings.txt" >&2
        return 1
    fi
    echo "$h" >"$OUT/$row.headers.txt"
}
