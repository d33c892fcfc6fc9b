#!/usr/bin/env bash
# bench/ratelimit/run.sh: rate-limit checks per second through libstrata (sync and async) and
# through strata serve (POST /v1/ratelimit/{key}), beside redis-benchmark running the very same
# GCRA script with EVALSHA on the same redis-server, rows interleaved round by round; medians.
#
# Usage: bench/ratelimit/run.sh [BUILD_DIR]     (default: build, at the top of the repository)
# Environment: ROUNDS (default 3), QUICK=1 (a smoke run: 1 round, few checks), OUT (default
# bench/results/ratelimit-<date-time>/), KEYS (distinct keys, 10000), DURATION (seconds of the
# HTTP run, 10), QUIET_WAIT (seconds to wait before each run for other processes to leave the
# CPUs, 30), OTHER_MAX (a run is disturbed when other processes used more CPUs meanwhile; 0.3),
# BASELINE (another checkout whose build/ holds a built libstrata.a and strata, e.g. the previous
# commit: adds the rows before_lib_async_d800, before_lib_sync_8t and before_http_c50 on it,
# interleaved with the others, and after_vs_before ratios: one run compares the two).
#
# Pinning (2 cores): redis-server (and strata serve, for the HTTP row) on CPU 1; every client
# (redis-benchmark, bench_ratelimit, wrk) on CPU 0.
#
# The checks: limit 1,000,000 per second (burst = limit) on KEYS distinct keys drawn uniformly,
# so nothing is ever denied and every check is one EVALSHA in Redis (a denied key would be
# answered from strata's remembered denials without Redis). redis-benchmark sends the arguments
# strata sends for that limit: EVALSHA <sha> 1 <key> T tau cost with T = 1.000 us, tau =
# 1000000.000 us, cost 1, the key from -r (rl:__rand_int__).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/bench/ratelimit
BUILD_DIR=${1:-$ROOT/build}
# shellcheck source=../http/lib.sh
. "$ROOT/bench/http/lib.sh"

ROUNDS=${ROUNDS:-3}
QUICK=${QUICK:-0}
KEYS=${KEYS:-10000}
DURATION=${DURATION:-10}
WARMUP=2
QUIET_WAIT=${QUIET_WAIT:-30}
OTHER_MAX=${OTHER_MAX:-0.3}
N_PLAIN=300000 # redis-benchmark -c 50 / -c 8, bench_ratelimit async 50 and sync 8
N_PIPE=1500000 # redis-benchmark -c 50 -P 16, bench_ratelimit async 800
if [ "$QUICK" = 1 ]; then
    ROUNDS=1 N_PLAIN=30000 N_PIPE=150000 DURATION=3 WARMUP=1
fi
CLIENTS=50
PIPE=16
DEEP=$((CLIENTS * PIPE))
LIMIT=1000000
PERIOD_MS=1000

ensure_pkgs redis-server redis-tools wrk util-linux curl

# ---- build (as bench/l2/run.sh: libstrata's link flags from strata.pc.in) --------------------
cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD_DIR" -j2 --target strata strata_cli >/dev/null
STRATA_DEPS=$(sed -n 's/^Requires.private://p' "$ROOT/strata.pc.in")
STRATA_LIBS=$(sed -n 's/^Libs.private://p' "$ROOT/strata.pc.in")
# shellcheck disable=SC2046,SC2086 # word splitting of the flag lists is intended
gcc -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -I"$ROOT/include" -I"$BUILD_DIR/include" \
    "$HERE/bench_ratelimit.c" "$BUILD_DIR/libstrata.a" \
    $(pkg-config --libs $STRATA_DEPS) $STRATA_LIBS -lpthread -lm \
    -o "$BUILD_DIR/bench_ratelimit"
BENCH=$(cd "$BUILD_DIR" && pwd)/bench_ratelimit
STRATA=$(cd "$BUILD_DIR" && pwd)/strata
BENCH_BEFORE= STRATA_BEFORE=
if [ -n "${BASELINE:-}" ]; then
    BDEPS=$(sed -n 's/^Requires.private://p' "$BASELINE/strata.pc.in")
    BLIBS=$(sed -n 's/^Libs.private://p' "$BASELINE/strata.pc.in")
    # shellcheck disable=SC2046,SC2086 # word splitting of the flag lists is intended
    gcc -O2 -std=c11 -D_GNU_SOURCE -I"$BASELINE/include" -I"$BASELINE/build/include" \
        "$BASELINE/bench/ratelimit/bench_ratelimit.c" "$BASELINE/build/libstrata.a" \
        $(pkg-config --libs $BDEPS) $BLIBS -lpthread -lm -o "$BUILD_DIR/bench_ratelimit_before"
    BENCH_BEFORE=$(cd "$BUILD_DIR" && pwd)/bench_ratelimit_before
    STRATA_BEFORE=$BASELINE/build/strata
fi

STAMP=$(date +%Y%m%d-%H%M%S)
OUT=${OUT:-$ROOT/bench/results/ratelimit-$STAMP}
mkdir -p "$OUT"
: >"$OUT/raw.txt"
: >"$OUT/warnings.txt"

TMP=$(mktemp -d)
cleanup() {
    stop_all
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_redis
URL=redis://127.0.0.1:$REDIS_PORT
{
    machine_lines
    echo "redis-server: $(redis-server --version | sed 's/^Redis server //')"
    echo "wrk: $(dpkg-query -W -f='${Version}' wrk)"
    echo "pinning: redis-server and strata serve on CPU 1, clients on CPU 0"
    echo "rounds: $ROUNDS keys: $KEYS limit: $LIMIT per ${PERIOD_MS} ms quick: $QUICK"
} | tee "$OUT/machine.txt"

# ---- the script: strata's own, taken from the source, loaded as redis-benchmark will call it ---
python3 - "$ROOT/src/lib/features/ratelimit.c" >"$TMP/gcra.lua" <<'EOF'
import re, sys
src = open(sys.argv[1]).read()
body = re.search(r"static redis_script gcra_script\s*=\s*REDIS_SCRIPT\((.*?)\);\n", src, re.S).group(1)
text = "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', body))
sys.stdout.write(text.encode().decode("unicode_escape"))
EOF
SHA=$(redis-cli -p "$REDIS_PORT" -x SCRIPT LOAD <"$TMP/gcra.lua")
LOCAL_SHA=$(sha1sum "$TMP/gcra.lua" | cut -d' ' -f1)
echo "script: $(wc -c <"$TMP/gcra.lua") bytes, sha1 $SHA (computed here: $LOCAL_SHA)" |
    tee -a "$OUT/machine.txt"
[ "$SHA" = "$LOCAL_SHA" ] || { echo "bench/ratelimit: the script did not load as expected" >&2; exit 1; }
# T and tau exactly as strata formats them (ratelimit.c: "%.3f" of microseconds)
T=$(awk -v p="$PERIOD_MS" -v l="$LIMIT" 'BEGIN { printf "%.3f", p * 1000 / l }')
TAU=$(awk -v p="$PERIOD_MS" -v l="$LIMIT" 'BEGIN { printf "%.3f", p * 1000 / l * l }')

evalsha_calls() {
    redis-cli -p "$REDIS_PORT" info commandstats | tr -d '\r' |
        awk -F'[:=,]' '$1 == "cmdstat_evalsha" { c = $3 } END { print c + 0 }'
}
eval_calls() {
    redis-cli -p "$REDIS_PORT" info commandstats | tr -d '\r' |
        awk -F'[:=,]' '$1 == "cmdstat_eval" { c = $3 } END { print c + 0 }'
}
server_cpu() {
    redis-cli -p "$REDIS_PORT" info cpu | tr -d '\r' |
        awk -F: '/^used_cpu_(sys|user):/ { s += $2 } END { printf "%.6f", s }'
}

# ---- rows: each prints "row.metric value" lines -----------------------------------------------
rb() { # ROW N ARGS...: redis-benchmark EVALSHA
    local row=$1 n=$2 s0 s1 m0 m1 times real user sys rate
    shift 2
    s0=$(server_cpu)
    m0=$(machine_busy)
    times=$( { TIMEFORMAT='%R %U %S'; time taskset -c 0 redis-benchmark -h 127.0.0.1 \
        -p "$REDIS_PORT" -n "$n" -r "$KEYS" -q "$@" EVALSHA "$SHA" 1 'rl:__rand_int__' "$T" \
        "$TAU" 1 | tr '\r' '\n' >"$OUT/$row.r$ROUND.txt"; } 2>&1)
    m1=$(machine_busy)
    s1=$(server_cpu)
    rate=$(grep -o '[0-9.]* requests per second' "$OUT/$row.r$ROUND.txt" | tail -n1 | cut -d' ' -f1)
    read -r real user sys <<<"$times"
    echo "$row.rps $rate"
    awk -v u="$user" -v s="$sys" -v r="$real" -v a="$s0" -v b="$s1" -v n="$n" -v rate="$rate" \
        -v m0="$m0" -v m1="$m1" -v row="$row" 'BEGIN {
            printf "%s.client_cpu %.2f\n", row, (u + s) / r
            if (rate > 0) printf "%s.server_cpu %.2f\n", row, (b - a) / (n / rate)
            o = (m1 - m0 - (u + s) - (b - a)) / r
            printf "%s.other_cpu %.2f\n", row, (o > 0 ? o : 0) }'
}

lib() { # ROW ARGS...: bench_ratelimit (the baseline's, for rows named before_*)
    local row=$1 f bench=$BENCH
    shift
    if [ "${row#before_}" != "$row" ]; then bench=$BENCH_BEFORE; fi
    f=$OUT/$row.r$ROUND.txt
    taskset -c 0 "$bench" --url "$URL" --keys "$KEYS" --limit "$LIMIT" --period-ms "$PERIOD_MS" \
        --row "$row" "$@" >"$f"
    grep '^WARNING' "$f" | sed "s/^/round $ROUND: /" >>"$OUT/warnings.txt" || true
    sed -n "s/^RESULT rl\.$row=\(.*\)$/$row.rps \1/p; s/^RESULT rl\.$row\.\([a-z_]*\)=\(.*\)$/$row.\1 \2/p" "$f"
}

row_rb_c50() { rb rb_c50 "$N_PLAIN" -c "$CLIENTS"; }
row_rb_c50_p16() { rb rb_c50_p16 "$N_PIPE" -c "$CLIENTS" -P "$PIPE"; }
row_rb_c8() { rb rb_c8 "$N_PLAIN" -c 8; }
row_lib_async_d50() { lib lib_async_d50 --mode async --depth "$CLIENTS" --ops "$N_PLAIN"; }
row_lib_async_d800() { lib lib_async_d800 --mode async --depth "$DEEP" --ops "$N_PIPE"; }
row_lib_sync_8t() { lib lib_sync_8t --mode sync --threads 8 --ops "$N_PLAIN"; }

row_http_c50() { # [ROW BINARY]: strata serve, 1 worker, wrk POST /v1/ratelimit/rlNNNNN
    local row=${1:-http_c50} bin=${2:-$STRATA} port pid tree f times real user sys s0 s1 m0 m1 e0 e1 x0 x1
    port=$(free_port)
    start_server "$row" env REDIS_URL="$URL" STRATA_WORKERS=1 STRATA_LISTEN="127.0.0.1:$port" \
        "$bin" serve
    pid=$SPID
    wait_port "$port" "$pid"
    curl -s -o /dev/null -X POST -H 'Content-Type: application/json' \
        --data '{"limit":1000000,"period":1}' "http://127.0.0.1:$port/v1/ratelimit/rl00000"
    WRK_KEYS=$KEYS taskset -c 0 wrk -t1 -c"$CLIENTS" -d"${WARMUP}s" -s "$ROOT/bench/http/ratelimit.lua" \
        "http://127.0.0.1:$port" >/dev/null 2>&1 || true
    tree=$(tree_pids "$pid")
    f=$OUT/$row.r$ROUND.txt
    e0=$(evalsha_calls)
    x0=$(eval_calls)
    s0=$(tree_cpu $tree "$REDIS_PID")
    m0=$(machine_busy)
    times=$( { TIMEFORMAT='%R %U %S'; time env WRK_KEYS="$KEYS" \
        WRK_BODY="{\"limit\":$LIMIT,\"period\":$((PERIOD_MS / 1000))}" taskset -c 0 wrk -t1 -c"$CLIENTS" -d"${DURATION}s" --latency \
        -s "$ROOT/bench/http/ratelimit.lua" "http://127.0.0.1:$port" >"$f" 2>&1; } 2>&1)
    m1=$(machine_busy)
    s1=$(tree_cpu $tree "$REDIS_PID")
    e1=$(evalsha_calls)
    x1=$(eval_calls)
    echo "rss $(tree_rss $tree) KiB" >>"$f"
    stop_pids "$pid"
    local rps p50 p99 err reqs
    read -r rps p50 p99 err reqs < <(wrk_fields "$f")
    read -r real user sys <<<"$times"
    echo "$row.rps $rps"
    echo "$row.p50_ms $p50"
    echo "$row.p99_ms $p99"
    echo "$row.errors $err"
    awk -v e="$((e1 - e0))" -v x="$((x1 - x0))" -v n="$reqs" -v row="$row" 'BEGIN {
        if (n > 0) printf "%s.evalsha_per_req %.3f\n%s.eval_per_req %.4f\n", row, e / n, row, x / n }'
    awk -v r="$real" -v u="$user" -v s="$sys" -v s0="$s0" -v s1="$s1" -v m0="$m0" -v m1="$m1" \
        -v row="$row" 'BEGIN {
            printf "%s.client_cpu %.2f\n", row, (u + s) / r
            printf "%s.server_cpu %.2f\n", row, (s1 - s0) / r
            o = (m1 - m0 - (u + s) - (s1 - s0)) / r
            printf "%s.other_cpu %.2f\n", row, (o > 0 ? o : 0) }'
    [ "${err:-0}" = 0 ] ||
        echo "round $ROUND: $row: $err errors or non-2xx answers (see $f)" >>"$OUT/warnings.txt"
}

row_before_lib_async_d800() { lib before_lib_async_d800 --mode async --depth "$DEEP" --ops "$N_PIPE"; }
row_before_lib_sync_8t() { lib before_lib_sync_8t --mode sync --threads 8 --ops "$N_PLAIN"; }
row_before_http_c50() { row_http_c50 before_http_c50 "$STRATA_BEFORE"; }

ROWS=(rb_c50 lib_async_d50 rb_c50_p16 lib_async_d800 rb_c8 lib_sync_8t http_c50)
if [ -n "$BENCH_BEFORE" ]; then ROWS+=(before_lib_async_d800 before_lib_sync_8t before_http_c50); fi

for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
    echo "== round $ROUND/$ROUNDS"
    for ((i = 0; i < ${#ROWS[@]}; i++)); do
        row=${ROWS[$(((i + ROUND - 1) % ${#ROWS[@]}))]}
        busy=$(wait_quiet "$row")
        "row_$row" | while read -r name value; do
            echo "$ROUND $name $value" >>"$OUT/raw.txt"
            echo "$name $value"
        done | awk -v busy="$busy" '
            { v[$1] = $2; split($1, p, "."); row = p[1] }
            END { if (row != "") printf "  %-16s %10.0f checks/s  cpu c/s/o %s/%s/%s (busy before: %s)\n",
                row, v[row ".rps"], v[row ".client_cpu"], v[row ".server_cpu"], v[row ".other_cpu"], busy }'
    done
done

# ---- medians, ratios, target ------------------------------------------------------------------
median_table "$OUT/raw.txt" "$OTHER_MAX" "$ROUNDS" rl >"$OUT/results.txt" 2>"$OUT/medians.txt"
grep '^warn ' "$OUT/medians.txt" | sed 's/^warn //' >>"$OUT/warnings.txt" || true
val() { sed -n "s/^RESULT rl\.$1=//p" "$OUT/results.txt"; }
ratio() {
    local a b
    a=$(val "$2.rps")
    b=$(val "$3.rps")
    [ -n "$a" ] && [ -n "$b" ] &&
        awk -v a="$a" -v b="$b" -v n="$1" 'BEGIN { if (b > 0) printf "RESULT rl.ratio.%s=%.3f\n", n, a / b }' \
            >>"$OUT/results.txt"
    return 0
}
ratio async_d50_vs_rb_c50 lib_async_d50 rb_c50
ratio async_d800_vs_rb_p16 lib_async_d800 rb_c50_p16
ratio sync_8t_vs_rb_c8 lib_sync_8t rb_c8
ratio http_c50_vs_rb_c50 http_c50 rb_c50
ratio after_vs_before_lib_async_d800 lib_async_d800 before_lib_async_d800
ratio after_vs_before_lib_sync_8t lib_sync_8t before_lib_sync_8t
ratio after_vs_before_http_c50 http_c50 before_http_c50

{
    echo
    echo "== bench/ratelimit: medians of $ROUNDS interleaved round(s), checks/s ($KEYS keys, never denied)"
    printf '%-44s %10s %-16s %s\n' "row (requests in flight)" checks/s "cpu c/s/o" ok
    line() {
        printf '%-44s %10.0f %-16s %s\n' "$1" "$(val "$2.rps")" \
            "$(val "$2.client_cpu")/$(val "$2.server_cpu")/$(val "$2.other_cpu")" \
            "$(sed -n "s/^clean $2 //p" "$OUT/medians.txt")"
    }
    line "redis-benchmark -c $CLIENTS EVALSHA ($CLIENTS)" rb_c50
    line "strata_ratelimit_async ($CLIENTS)" lib_async_d50
    line "redis-benchmark -c $CLIENTS -P $PIPE EVALSHA ($DEEP)" rb_c50_p16
    line "strata_ratelimit_async ($DEEP)" lib_async_d800
    line "redis-benchmark -c 8 EVALSHA (8)" rb_c8
    line "strata_ratelimit, 8 threads (8)" lib_sync_8t
    line "HTTP POST /v1/ratelimit, wrk -c $CLIENTS ($CLIENTS)" http_c50
    if [ -n "$BENCH_BEFORE" ]; then
        line "baseline strata_ratelimit_async ($DEEP)" before_lib_async_d800
        line "baseline strata_ratelimit, 8 threads (8)" before_lib_sync_8t
        line "baseline HTTP POST /v1/ratelimit ($CLIENTS)" before_http_c50
    fi
    echo "(cpu c/s/o: CPUs busy in the client (CPU 0) / server side (CPU 1: redis-server, plus strata"
    echo " serve for HTTP) / other processes; ok: rounds where other processes used <= $OTHER_MAX CPUs)"
    echo "HTTP: p50 $(val http_c50.p50_ms) ms, p99 $(val http_c50.p99_ms) ms;" \
        "EVALSHA per request $(val http_c50.evalsha_per_req), EVAL per request $(val http_c50.eval_per_req)"
    echo
    grep '^RESULT rl.ratio.' "$OUT/results.txt" | sed 's/^RESULT rl.ratio./  /; s/=/  /'
    t=$(val ratio.async_d50_vs_rb_c50)
    t2=$(val ratio.async_d800_vs_rb_p16)
    t3=$(val ratio.sync_8t_vs_rb_c8)
    for pair in "$t:async, $CLIENTS in flight vs redis-benchmark -c $CLIENTS" \
        "$t2:async, $DEEP in flight vs redis-benchmark -c $CLIENTS -P $PIPE" \
        "$t3:sync, 8 threads vs redis-benchmark -c 8"; do
        v=${pair%%:*}
        [ -n "$v" ] || continue
        if awk -v t="$v" 'BEGIN { exit !(t >= 0.5) }'; then verdict=met; else verdict="NOT met"; fi
        echo "target: library checks >= 0.5x redis-benchmark at the same concurrency (${pair#*:}): $v -> $verdict"
    done
} | tee "$OUT/summary.txt"
if [ -s "$OUT/warnings.txt" ]; then
    echo "== warnings"
    sort -u "$OUT/warnings.txt"
fi
echo "(raw output in $OUT)"
