#!/usr/bin/env bash
# bench/l2/run.sh: strata's shared tier (L2) against redis-benchmark, on one redis-server that this
# script starts itself, in the same run, rows interleaved round by round; medians and ratios.
#
# Usage: bench/l2/run.sh [BUILD_DIR]     (default: build, at the top of the repository)
# Environment: ROUNDS (default 5), QUICK=1 (a smoke run: 1 round, few ops), OUT (where the raw
# output and results.txt go; default bench/results/l2-<date-time>/), KEYS (default 100000),
# QUIET_WAIT (seconds to wait, before each round, for other processes to leave the CPUs; 60),
# OTHER_MAX (a row is disturbed when other processes used more CPUs than this meanwhile; 0.3),
# BASELINE (another checkout whose build/ holds a built libstrata.a, e.g. the previous commit:
# its bench_l2 runs the rows before_async_d50, before_async_d800 and before_sync_8t, interleaved
# with the others, and the ratios after_vs_before_* compare this build with it in one run).
#
# Pinning (the machine has 2 cores): redis-server on CPU 1, every client (redis-benchmark and
# bench_l2) on CPU 0, with taskset, so a client never competes with the server for a core.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD_DIR=${1:-$ROOT/build}

# ---- build (until CMakeLists.txt builds bench/l2) ---------------------------------------------
# shellcheck source=bench/l2/build.sh
. "$ROOT/bench/l2/build.sh"
bench_l2_prepare "$ROOT" "$BUILD_DIR"
BENCH_BEFORE=
if [ -n "${BASELINE:-}" ]; then
    bench_l2_build "$BASELINE" "$BASELINE/build" "$BUILD_DIR/bench_l2_before"
    BENCH_BEFORE=$(cd "$BUILD_DIR" && pwd)/bench_l2_before
fi

# ---- settings ---------------------------------------------------------------------------------
ROUNDS=${ROUNDS:-5}
QUICK=${QUICK:-0}
KEYS=${KEYS:-100000}
QUIET_WAIT=${QUIET_WAIT:-60}
N_PLAIN=200000  # redis-benchmark -c 50 / -c 8, per test
N_PIPE=1000000  # redis-benchmark -P 16, per test
N_SYNC=100000   # bench_l2 sync, per operation
N_ASYNC=200000  # bench_l2 async, 50 in flight, per operation
N_DEEP=1000000  # bench_l2 async, 800 in flight, per operation
if [ "$QUICK" = 1 ]; then
    ROUNDS=1 KEYS=10000 N_PLAIN=20000 N_PIPE=100000 N_SYNC=10000 N_ASYNC=20000 N_DEEP=100000
fi
CLIENTS=50
PIPE=16
DEEP=$((CLIENTS * PIPE))

for tool in redis-server redis-cli redis-benchmark taskset; do
    command -v "$tool" >/dev/null || { echo "bench/l2/run.sh: $tool is missing" >&2; exit 1; }
done

STAMP=$(date +%Y%m%d-%H%M%S)
OUT=${OUT:-$ROOT/bench/results/l2-$STAMP}
mkdir -p "$OUT"
: >"$OUT/raw.txt"

# ---- the server: our own, on a free port, in a temp dir, gone when we exit ---------------------
TMP=$(mktemp -d)
REDIS_PID=
cleanup() {
    if [ -n "$REDIS_PID" ]; then
        kill "$REDIS_PID" 2>/dev/null || true
        wait "$REDIS_PID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

for attempt in 1 2 3 4 5; do
    PORT=$(free_port)
    taskset -c 1 redis-server --bind 127.0.0.1 --port "$PORT" --save '' --appendonly no \
        --dir "$TMP" --logfile "$TMP/redis.log" --daemonize no &
    REDIS_PID=$!
    for _ in $(seq 50); do
        [ "$(redis-cli -p "$PORT" ping 2>/dev/null)" = PONG ] && break
        kill -0 "$REDIS_PID" 2>/dev/null || break
        sleep 0.1
    done
    [ "$(redis-cli -p "$PORT" ping 2>/dev/null)" = PONG ] && break
    kill "$REDIS_PID" 2>/dev/null || true
    wait "$REDIS_PID" 2>/dev/null || true
    REDIS_PID=
    [ "$attempt" = 5 ] && { echo "bench/l2/run.sh: redis-server would not start" >&2; exit 1; }
done
URL=redis://127.0.0.1:$PORT

{
    echo "date: $(date)"
    echo "nproc: $(nproc)"
    echo "cpu: $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n1)"
    echo "kernel: $(uname -r)"
    echo "commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none)"
    echo "redis-server: $(redis-server --version | sed 's/^Redis server //')"
    echo "hiredis: $(pkg-config --modversion hiredis) libevent: $(pkg-config --modversion libevent)"
    echo "pinning: redis-server on CPU 1, clients on CPU 0"
    echo "rounds: $ROUNDS keys: $KEYS quick: $QUICK"
    if [ -n "$BENCH_BEFORE" ]; then
        echo "baseline: $BASELINE (commit $(git -C "$BASELINE" rev-parse --short HEAD 2>/dev/null || echo none))"
    fi
} | tee "$OUT/machine.txt"

# busy_cpus: CPUs' worth of time used over one second by everything (our redis-server is idle
# between rows), from /proc/stat. A busy machine is recorded and warned about.
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

# ---- the data: redis-benchmark's keys (key:%012d, 100 bytes) and strata's, all present ---------
awk -v n="$KEYS" 'BEGIN {
    v = sprintf("%100s", ""); gsub(/ /, "x", v)
    for (i = 0; i < n; i++) {
        k = sprintf("key:%012d", i)
        printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$100\r\n%s\r\n", length(k), k, v
    }
}' | taskset -c 0 redis-cli -p "$PORT" --pipe >"$OUT/preload.txt"
taskset -c 0 "$BENCH" --url "$URL" --mode preload --keys "$KEYS" | tee -a "$OUT/preload.txt"
echo "keys in redis: $(redis-cli -p "$PORT" dbsize)" | tee -a "$OUT/preload.txt"

# ---- rows --------------------------------------------------------------------------------------
# Each row prints `name.op value` lines to stdout; raw output goes to $OUT/<row>.txt.

machine_busy() { # CPU seconds the whole machine has spent busy (/proc/stat)
    awk -v hz="$(getconf CLK_TCK)" '/^cpu / { printf "%.2f", ($2 + $3 + $4 + $7 + $8 + $9) / hz }' \
        /proc/stat
}

server_cpu() { # CPU seconds the redis-server has used (INFO cpu)
    redis-cli -p "$PORT" info cpu | tr -d '\r' |
        awk -F: '/^used_cpu_(sys|user):/ { s += $2 } END { printf "%.6f", s }'
}

rb() { # rb ROW N ARGS...: redis-benchmark set, then get, 100-byte values, over our KEYS keys
    local row=$1 n=$2 op s0 s1 m0 m1 rate times real user sys
    shift 2
    for op in set get; do
        s0=$(server_cpu)
        m0=$(machine_busy)
        times=$( { TIMEFORMAT='%R %U %S'; time taskset -c 0 redis-benchmark -h 127.0.0.1 \
            -p "$PORT" -t "$op" -d 100 -r "$KEYS" -n "$n" -q "$@" | tr '\r' '\n' \
            >>"$OUT/$row.txt"; } 2>&1)
        m1=$(machine_busy)
        s1=$(server_cpu)
        rate=$(awk -v OP="${op^^}" '$1 == OP ":" && $3 == "requests" { r = $2 } END { print r }' \
            "$OUT/$row.txt")
        echo "$row.$op $rate"
        # client CPU over the whole redis-benchmark process (connects included), server CPU over
        # the requests' time (n / rate), other processes' CPU: the machine's busy time minus both
        read -r real user sys <<<"$times"
        awk -v u="$user" -v s="$sys" -v r="$real" -v a="$s0" -v b="$s1" -v n="$n" -v rate="$rate" \
            -v m0="$m0" -v m1="$m1" -v name="$row.$op" 'BEGIN {
                printf "%s.client_cpu %.2f\n", name, (u + s) / r
                if (rate > 0) printf "%s.server_cpu %.2f\n", name, (b - a) / (n / rate)
                o = (m1 - m0 - (u + s) - (b - a)) / r
                printf "%s.other_cpu %.2f\n", name, (o > 0 ? o : 0) }' |
            tee -a "$OUT/$row.txt"
    done
}

sb() { # sb ROW ARGS...: bench_l2 (the baseline's, for rows named before_*)
    local row=$1 bench=$BENCH
    shift
    if [ "${row#before_}" != "$row" ]; then bench=$BENCH_BEFORE; fi
    taskset -c 0 "$bench" --url "$URL" --keys "$KEYS" --row "$row" "$@" | tee -a "$OUT/$row.txt" |
        sed -n 's/^RESULT l2\.\([^=]*\)=\(.*\)$/\1 \2/p'
    if grep -q '^WARNING' "$OUT/$row.txt"; then
        grep '^WARNING' "$OUT/$row.txt" | sort -u >>"$OUT/warnings.txt"
    fi
}

row_redis_benchmark() { rb redis_benchmark "$N_PLAIN" -c "$CLIENTS"; }
row_redis_benchmark_p16() { rb redis_benchmark_p16 "$N_PIPE" -c "$CLIENTS" -P "$PIPE"; }
row_redis_benchmark_c8() { rb redis_benchmark_c8 "$N_PLAIN" -c 8; }
row_sync_8t() { sb sync_8t --mode sync --threads 8 --conns 8 --ops "$N_SYNC"; }
row_async_d50() { sb async_d50 --mode async --depth "$CLIENTS" --ops "$N_ASYNC"; }
row_async_d800() { sb async_d800 --mode async --depth "$DEEP" --ops "$N_DEEP"; }
row_hiredis_async_d50() { sb hiredis_async_d50 --mode hiredis --depth "$CLIENTS" --ops "$N_ASYNC"; }
row_hiredis_async_d800() { sb hiredis_async_d800 --mode hiredis --depth "$DEEP" --ops "$N_DEEP"; }

row_before_sync_8t() { sb before_sync_8t --mode sync --threads 8 --conns 8 --ops "$N_SYNC"; }
row_before_async_d50() { sb before_async_d50 --mode async --depth "$CLIENTS" --ops "$N_ASYNC"; }
row_before_async_d800() { sb before_async_d800 --mode async --depth "$DEEP" --ops "$N_DEEP"; }

ROWS=(redis_benchmark redis_benchmark_p16 async_d50 async_d800 redis_benchmark_c8 sync_8t
    hiredis_async_d50 hiredis_async_d800)
if [ -n "$BENCH_BEFORE" ]; then ROWS+=(before_async_d50 before_async_d800 before_sync_8t); fi

for ((r = 1; r <= ROUNDS; r++)); do
    # wait (up to QUIET_WAIT seconds) for the machine to be quiet; then measure anyway, and say so
    busy=$(busy_cpus)
    for ((w = 1; w < QUIET_WAIT; w++)); do
        awk -v b="$busy" 'BEGIN { exit !(b > 0.2) }' || break
        busy=$(busy_cpus)
    done
    echo "== round $r/$ROUNDS (before it, the machine used $busy CPUs)"
    if awk -v b="$busy" 'BEGIN { exit !(b > 0.2) }'; then
        echo "round $r: the machine was busy ($busy CPUs in use before it)" >>"$OUT/warnings.txt"
    fi
    # rotate the order each round, so no row always runs first or after the same neighbour
    for ((i = 0; i < ${#ROWS[@]}; i++)); do
        row=${ROWS[$(((i + r - 1) % ${#ROWS[@]}))]}
        "row_$row" | while read -r name value; do
            case $name in
            *_cpu) ;;
            *) printf '  %-28s %12.0f ops/s\n' "$name" "$value" >&2 ;;
            esac
            echo "$r $name $value" >>"$OUT/raw.txt"
        done
    done
done

# ---- medians and ratios ------------------------------------------------------------------------
# A measurement is disturbed when other processes used more than OTHER_MAX CPUs meanwhile (the
# machine is shared). Each figure is the median of its undisturbed rounds when at least half the
# rounds are undisturbed, else of all rounds (and a warning says so); raw.txt keeps everything.
OTHER_MAX=${OTHER_MAX:-0.3}
awk -v omax="$OTHER_MAX" -v R="$ROUNDS" '
    { v[$1 " " $2] = $3; if (!($2 in seen)) { seen[$2] = 1; if ($2 !~ /_cpu$/) order[n++] = $2 } }
    function median(s,    a, m, i, j, t) {
        m = split(s, a, " ")
        for (i = 2; i <= m; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] + 0 > t + 0; j--) a[j + 1] = a[j]; a[j + 1] = t }
        return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
    }
    function ok(r, x) { return ((r " " x) in v) && (!((r " " x ".other_cpu") in v) || v[r " " x ".other_cpu"] <= omax) }
    function ratio(name, a, b,    lo, hi, r, x) {
        if (!(a in med) || !(b in med) || med[b] == 0) return
        lo = ""; hi = ""
        for (r = 1; r <= R; r++) if (ok(r, a) && ok(r, b) && v[r " " b] > 0) {
            x = v[r " " a] / v[r " " b]
            if (lo == "" || x < lo) lo = x
            if (hi == "" || x > hi) hi = x
        }
        printf "RESULT l2.ratio.%s=%.3f\n", name, med[a] / med[b]
        printf "range %s %s .. %s\n", name, (lo == "" ? "-" : sprintf("%.3f", lo)), (hi == "" ? "-" : sprintf("%.3f", hi)) > "/dev/stderr"
    }
    END {
        for (i = 0; i < n; i++) {
            x = order[i]; clean = 0; all = 0; s = ""; sa = ""
            for (r = 1; r <= R; r++) if ((r " " x) in v) { all++; sa = sa " " r; if (ok(r, x)) { clean++; s = s " " r } }
            if (clean * 2 < all) { s = sa; printf "warn %s: only %d of %d rounds undisturbed: median of all\n", x, clean, all > "/dev/stderr" }
            printf "clean %s %d/%d\n", x, clean, all > "/dev/stderr"
            m = split(s, rs, " ")
            vals = ""; for (j = 1; j <= m; j++) vals = vals " " v[rs[j] " " x]
            med[x] = median(vals)
            printf "RESULT l2.%s=%.0f\n", x, med[x]
            split("client_cpu server_cpu other_cpu", kinds, " ")
            for (k = 1; k <= 3; k++) {
                vals = ""; for (j = 1; j <= m; j++) if ((rs[j] " " x "." kinds[k]) in v) vals = vals " " v[rs[j] " " x "." kinds[k]]
                if (vals != "") printf "RESULT l2.%s.%s=%.2f\n", x, kinds[k], median(vals)
            }
        }
        ratio("async_p16_vs_redis_benchmark_p16", "async_d800.get", "redis_benchmark_p16.get")
        ratio("async_p16_vs_redis_benchmark_p16.set", "async_d800.set", "redis_benchmark_p16.set")
        ratio("async_c50_vs_redis_benchmark_c50", "async_d50.get", "redis_benchmark.get")
        ratio("async_c50_vs_redis_benchmark_c50.set", "async_d50.set", "redis_benchmark.set")
        ratio("sync_8t_vs_redis_benchmark_c8", "sync_8t.get", "redis_benchmark_c8.get")
        ratio("sync_8t_vs_redis_benchmark_c8.set", "sync_8t.set", "redis_benchmark_c8.set")
        ratio("async_d800_vs_hiredis_d800", "async_d800.get", "hiredis_async_d800.get")
        ratio("async_d800_vs_hiredis_d800.set", "async_d800.set", "hiredis_async_d800.set")
        ratio("async_d50_vs_hiredis_d50", "async_d50.get", "hiredis_async_d50.get")
        split("async_d50 async_d800 sync_8t", rowsb, " ")
        for (k = 1; k <= 3; k++) {
            ratio("after_vs_before_" rowsb[k], rowsb[k] ".get", "before_" rowsb[k] ".get")
            ratio("after_vs_before_" rowsb[k] ".set", rowsb[k] ".set", "before_" rowsb[k] ".set")
        }
    }' "$OUT/raw.txt" >"$OUT/results.txt" 2>"$OUT/medians.txt"
grep '^warn ' "$OUT/medians.txt" | sed 's/^warn //' >>"$OUT/warnings.txt" || true

val() { sed -n "s/^RESULT l2\.$1=//p" "$OUT/results.txt"; }
{
    echo
    echo "== bench/l2: medians of $ROUNDS interleaved round(s), ops/s (100-byte values; $KEYS keys, uniform)"
    printf '%-40s %9s %-15s %9s %-15s\n' "row (concurrency)" "get" " cpu c/s/o  ok" "set" \
        " cpu c/s/o  ok"
    line() {
        local op f=()
        for op in get set; do
            f+=("$(val "$2.$op")" "$(printf '%s/%s/%s %s' "$(val "$2.$op.client_cpu")" \
                "$(val "$2.$op.server_cpu")" "$(val "$2.$op.other_cpu")" \
                "$(sed -n "s/^clean $2\\.$op //p" "$OUT/medians.txt")")")
        done
        printf '%-40s %9s %-15s %9s %-15s\n' "$1" "${f[@]}"
    }
    line "redis-benchmark -c $CLIENTS" redis_benchmark
    line "strata async, $CLIENTS in flight" async_d50
    line "  bare hiredis async, $CLIENTS in flight" hiredis_async_d50
    line "redis-benchmark -c $CLIENTS -P $PIPE" redis_benchmark_p16
    line "strata async, $DEEP in flight" async_d800
    line "  bare hiredis async, $DEEP in flight" hiredis_async_d800
    line "redis-benchmark -c 8" redis_benchmark_c8
    line "strata sync, 8 threads, 8 connections" sync_8t
    if [ -n "$BENCH_BEFORE" ]; then
        line "baseline async, $CLIENTS in flight" before_async_d50
        line "baseline async, $DEEP in flight" before_async_d800
        line "baseline sync, 8 threads" before_sync_8t
    fi
    echo "(cpu c/s/o: CPUs busy in the client (CPU 0) / redis-server (CPU 1) / other processes; 1.00 ="
    echo " saturated. ok: rounds where other processes used <= $OTHER_MAX CPUs, the rounds the median is of)"
    echo
    echo "CPU cost per call, microseconds (median CPU share / median ops/s; robust to a shared machine):"
    printf '%-40s %10s %10s %10s %10s\n' "row" "get client" "get server" "set client" "set server"
    cost() {
        local v c
        v=$(val "$2.$1")
        c=$(val "$2.$1.$3_cpu")
        awk -v v="$v" -v c="$c" 'BEGIN { if (v > 0 && c != "") printf "%.2f", c * 1e6 / v; else printf "-" }'
    }
    for row in redis_benchmark async_d50 hiredis_async_d50 redis_benchmark_p16 async_d800 \
        hiredis_async_d800 redis_benchmark_c8 sync_8t before_async_d50 before_async_d800 \
        before_sync_8t; do
        [ -n "$(val "$row.get")" ] || continue
        printf '%-40s %10s %10s %10s %10s\n' "$row" "$(cost get $row client)" \
            "$(cost get $row server)" "$(cost set $row client)" "$(cost set $row server)"
    done
    echo
    echo "ratios (of medians; range over the rounds where both rows were undisturbed, in brackets):"
    while read -r l; do
        name=${l#RESULT l2.ratio.}
        name=${name%%=*}
        range=$(sed -n "s/^range $name //p" "$OUT/medians.txt")
        printf '  %-44s %s  [%s]\n' "$name" "${l##*=}" "$range"
    done < <(grep '^RESULT l2.ratio.' "$OUT/results.txt")
    t=$(val ratio.async_p16_vs_redis_benchmark_p16)
    if [ -n "$t" ]; then
        if awk -v t="$t" 'BEGIN { exit !(t >= 0.8) }'; then verdict=met; else verdict="NOT met"; fi
        echo "target: strata async gets ($DEEP in flight) >= 0.8x redis-benchmark -c $CLIENTS -P $PIPE gets: $t -> $verdict"
    fi
    echo
    cat "$OUT/results.txt"
    if [ -s "$OUT/warnings.txt" ]; then
        echo "== warnings"
        sort -u "$OUT/warnings.txt"
    fi
    echo "(raw output in $OUT)"
} | tee "$OUT/summary.txt"
