#!/usr/bin/env bash
# bench/http/run.sh: strata serve's GET hits against the HTTP caches and stacks it replaces, with
# wrk, every server started here on a free loopback port, rows interleaved round by round; medians.
#
# Usage: bench/http/run.sh [BUILD_DIR]     (default: build, at the top of the repository)
# Environment: ROUNDS (default 3), QUICK=1 (a smoke run: 1 round, 3 s runs, no profile), DURATION
# (seconds per measured run, 10), WARMUP (seconds of unmeasured load first, 2), KEYS (keys of the
# random-key rows, 10000), OUT (default bench/results/http-<date-time>/), QUIET_WAIT (seconds to
# wait before each run for other processes to leave the CPUs, 30), OTHER_MAX (a run is disturbed
# when other processes used more CPUs than this meanwhile; 0.3), PROFILE (1: perf-profile strata
# serve under the same load after the rounds; default 1), ROWS (a subset, e.g. "strata_l1_100
# varnish_100"), BASELINE (another strata binary, e.g. a build of the previous commit: adds the
# rows before_l1_100 and before_l2_100, the same loads on it, interleaved with the others, and
# the ratios after_vs_before_*: a change measured against the code it replaces, in one run).
#
# Pinning (2 cores): wrk on CPU 0 (one thread, 50 keep-alive connections); every server on CPU 1,
# redis-server included. Rows (see bench/README.md for the method and figures):
#   strata_l1_100, strata_l1_1k   strata serve, memory only, STRATA_WORKERS=1: one key, PUT first
#   strata_l1_lease_100           strata_l1_100 with `X-Cache-Lease: 5` on every GET (a warm hit
#                                 asked with a lease: bench/stampede's third target)
#   strata_l1keys_100             the same over KEYS random keys (all in L1): wrk's Lua cost
#   strata_l2_100                 strata serve with REDIS_URL and a 64 KiB L1: KEYS random keys
#                                 that L1 cannot hold, so nearly every hit is an L2 (Redis) hit
#   webdis_100                    webdis on the same Redis: GET /GET/bench:kNNNNN.txt, KEYS keys
#   fastapi_100, fastapi_dict_100 FastAPI + redis-py (cache-aside), uvicorn, 1 worker; and the
#                                 same app serving from an in-process dict
#   varnish_100, varnish_1k       Varnish 7.1 cache hits in front of an nginx origin
#   nginx_cache_100, nginx_cache_1k  nginx proxy_cache hits in front of the same origin
#   nginx_return_100, nginx_return_1k  nginx `return 200` with the same bytes: the ceiling
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/bench/http
PEERS=$ROOT/bench/peers
BUILD_DIR=${1:-$ROOT/build}
# shellcheck source=lib.sh
. "$HERE/lib.sh"

ROUNDS=${ROUNDS:-3}
QUICK=${QUICK:-0}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
KEYS=${KEYS:-10000}
QUIET_WAIT=${QUIET_WAIT:-30}
OTHER_MAX=${OTHER_MAX:-0.3}
PROFILE=${PROFILE:-1}
CONNS=50
if [ "$QUICK" = 1 ]; then
    ROUNDS=1 DURATION=3 WARMUP=1 PROFILE=0
fi
PY=/usr/bin/python3 # Debian's python3, where python3-fastapi and friends are installed

# ---- what it needs ----------------------------------------------------------------------------
PKGS=(wrk webdis varnish nginx-light redis-server redis-tools python3-fastapi python3-uvicorn
    python3-redis python3-uvloop python3-httptools util-linux curl)
[ "$(id -u)" -eq 0 ] && PKGS+=(linux-perf) # the profile; skipped when perf is missing
ensure_pkgs "${PKGS[@]}"

# ---- build: the strata binary (strata serve) ----------------------------------------------------
cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD_DIR" -j2 --target strata_cli >/dev/null
STRATA=$(cd "$BUILD_DIR" && pwd)/strata

STAMP=$(date +%Y%m%d-%H%M%S)
OUT=${OUT:-$ROOT/bench/results/http-$STAMP}
mkdir -p "$OUT"
: >"$OUT/raw.txt"
: >"$OUT/warnings.txt"

TMP=$(mktemp -d)
chmod 755 "$TMP"
cleanup() {
    stop_all
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

{
    machine_lines "$BUILD_DIR"
    echo "wrk: $(dpkg-query -W -f='${Version}' wrk) (1 thread, $CONNS connections, keep-alive, on CPU 0)"
    echo "redis-server: $(redis-server --version | sed 's/^Redis server //')"
    echo "nginx: $(dpkg-query -W -f='${Version}' nginx) varnish: $(dpkg-query -W -f='${Version}' varnish)" \
        "webdis: $(dpkg-query -W -f='${Version}' webdis)"
    echo "python: $($PY -V 2>&1) fastapi $($PY -c 'import fastapi; print(fastapi.__version__)')" \
        "uvicorn $($PY -c 'import uvicorn; print(uvicorn.__version__)')" \
        "redis-py $($PY -c 'import redis; print(redis.__version__)')" \
        "uvloop $($PY -c 'import uvloop; print(uvloop.__version__)')" \
        "httptools $($PY -c 'import httptools; print(httptools.__version__)')"
    echo "libevent: $(pkg-config --modversion libevent)"
    echo "rounds: $ROUNDS duration: ${DURATION}s warmup: ${WARMUP}s keys: $KEYS quick: $QUICK"
} | tee "$OUT/machine.txt"

BODY100=$(head -c 100 /dev/zero | tr '\0' x)
BODY1K=$(head -c 1024 /dev/zero | tr '\0' x)
body_of() { case $1 in 100) printf %s "$BODY100" ;; 1k) printf %s "$BODY1K" ;; esac; }
bytes_of() { case $1 in 100) echo 100 ;; 1k) echo 1024 ;; esac; }

# ---- Redis, shared by the rows that use it, and its data ---------------------------------------
start_redis
echo "redis-server on port $REDIS_PORT (pid $REDIS_PID, CPU 1)"
# plain values for webdis and the FastAPI app: bench:k00000 ... = 100 x's
awk -v n="$KEYS" -v v="$BODY100" 'BEGIN {
    for (i = 0; i < n; i++) {
        k = sprintf("bench:k%05d", i)
        printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", length(k), k, length(v), v
    }
}' | redis-cli -p "$REDIS_PORT" --pipe >"$OUT/preload.txt"

# mset PORT: writes the KEYS keys k00000... (100 x's, TTL one day) into a strata serve, in batches
# of 1000 (through L1 into Redis when it has REDIS_URL).
mset() {
    local port=$1 from
    for ((from = 0; from < KEYS; from += 1000)); do
        awk -v a="$from" -v n="$KEYS" -v v="$BODY100" 'BEGIN {
            printf "{\"items\":["
            for (i = a; i < a + 1000 && i < n; i++)
                printf "%s{\"key\":\"k%05d\",\"value\":\"%s\",\"ttl\":86400,\"content_type\":\"application/octet-stream\"}", (i > a ? "," : ""), i, v
            printf "]}" }' >"$TMP/mset.json"
        curl -sf -o /dev/null -X POST -H 'Content-Type: application/json' \
            --data-binary @"$TMP/mset.json" "http://127.0.0.1:$port/v1/cache/bench/_mset"
    done
}

# strata's stored entries for the L2 row, written once through a strata serve with REDIS_URL
port=$(free_port)
start_server preload env REDIS_URL="redis://127.0.0.1:$REDIS_PORT" STRATA_WORKERS=1 \
    STRATA_LISTEN="127.0.0.1:$port" "$STRATA" serve
wait_port "$port" "$SPID"
mset "$port"
stop_pids "$SPID"
echo "keys in redis: $(redis-cli -p "$REDIS_PORT" dbsize) (plain bench:k*, and strata's entries)" |
    tee -a "$OUT/preload.txt"

# stats_hits PORT: "l1_hits l2_hits l2_misses l1_misses" of a strata serve
stats_hits() {
    curl -s "http://127.0.0.1:$1/cache/stats" | $PY -c 'import json, sys
s = json.load(sys.stdin)
print(s["l1"]["hits"], s["l2"]["hits"], s["l2"]["misses"], s["l1"]["misses"])'
}

# ---- rows ---------------------------------------------------------------------------------------

strata_l1() { # SIZE [ROW BINARY [WRK_ARGS...]]: one key, memory only
    local size=$1 row=${2:-strata_l1_$1} bin=${3:-$STRATA} port pid
    shift $(($# < 3 ? $# : 3))
    port=$(free_port)
    start_server "$row" env -u REDIS_URL STRATA_WORKERS=1 STRATA_LISTEN="127.0.0.1:$port" \
        "$bin" serve
    pid=$SPID
    wait_port "$port" "$pid"
    body_of "$size" | curl -sf -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' \
        --data-binary @- "http://127.0.0.1:$port/v1/cache/bench/hot?ttl=86400"
    check_hit "$row" "http://127.0.0.1:$port/v1/cache/bench/hot" 'x-cache: HIT-L1' \
        "$(bytes_of "$size")" && measure "$row" "$pid" "" "$@" "http://127.0.0.1:$port/v1/cache/bench/hot"
    stop_pids "$pid"
}
row_strata_l1_100() { strata_l1 100; }
# the same hit asked with a lease (issue 13): a hit must cost no more than 5% over a plain one
row_strata_l1_lease_100() { strata_l1 100 strata_l1_lease_100 "$STRATA" -H 'X-Cache-Lease: 5'; }
row_strata_l1_1k() { strata_l1 1k; }

row_strata_l1keys_100() { # KEYS random keys, all in a memory-only L1
    local row=strata_l1keys_100 port pid
    port=$(free_port)
    start_server "$row" env -u REDIS_URL STRATA_WORKERS=1 STRATA_LISTEN="127.0.0.1:$port" \
        "$STRATA" serve
    pid=$SPID
    wait_port "$port" "$pid"
    mset "$port"
    check_hit "$row" "http://127.0.0.1:$port/v1/cache/bench/k00042" 'x-cache: HIT-L1' 100 &&
        WRK_KEYS=$KEYS WRK_PREFIX=/v1/cache/bench/ WRK_SUFFIX="" measure "$row" "$pid" "" \
            -s "$HERE/keys.lua" "http://127.0.0.1:$port"
    stop_pids "$pid"
}

row_strata_l2_100() { # [ROW BINARY]: KEYS random keys through a 64 KiB L1: L2 hits
    local row=${1:-strata_l2_100} bin=${2:-$STRATA} port pid a b
    port=$(free_port)
    start_server "$row" env REDIS_URL="redis://127.0.0.1:$REDIS_PORT" STRATA_L1_MAX_MEMORY=64K \
        STRATA_WORKERS=1 STRATA_LISTEN="127.0.0.1:$port" "$bin" serve
    pid=$SPID
    wait_port "$port" "$pid"
    if check_hit "$row" "http://127.0.0.1:$port/v1/cache/bench/k00042" 'x-cache: HIT-L2' 100; then
        a=$(stats_hits "$port")
        WRK_KEYS=$KEYS WRK_PREFIX=/v1/cache/bench/ WRK_SUFFIX="" measure "$row" "$pid" "$REDIS_PID" \
            -s "$HERE/keys.lua" "http://127.0.0.1:$port"
        b=$(stats_hits "$port")
        # the share of hits L2 answered, over warm-up and run (L1 can hold a few hundred keys)
        awk -v a="$a" -v b="$b" -v row="$row" 'BEGIN { split(a, x); split(b, y)
            l1 = y[1] - x[1]; l2 = y[2] - x[2]; miss = y[3] - x[3]
            printf "%s.l2_share %.3f\n%s.l2_misses %d\n", row, (l1 + l2 > 0 ? l2 / (l1 + l2) : 0), row, miss }'
    fi
    stop_pids "$pid"
}

row_before_l1_100() { strata_l1 100 before_l1_100 "$BASELINE"; }
row_before_l2_100() { row_strata_l2_100 before_l2_100 "$BASELINE"; }

row_webdis_100() {
    local row=webdis_100 port pid
    port=$(free_port)
    fill "$PEERS/webdis.json.in" "$TMP/webdis.json" "PORT=$port" "REDIS_PORT=$REDIS_PORT" "TMP=$TMP"
    start_server "$row" webdis "$TMP/webdis.json"
    pid=$SPID
    wait_port "$port" "$pid"
    check_hit "$row" "http://127.0.0.1:$port/GET/bench:k00042.txt" 'content-type: text/plain' 100 &&
        WRK_KEYS=$KEYS WRK_PREFIX=/GET/bench: WRK_SUFFIX=.txt measure "$row" "$pid" "$REDIS_PID" \
            -s "$HERE/keys.lua" "http://127.0.0.1:$port"
    stop_pids "$pid"
}

fastapi() { # ROW PATH_PREFIX
    local row=$1 prefix=$2 port pid
    port=$(free_port)
    start_server "$row" env REDIS_PORT="$REDIS_PORT" BODY_BYTES=100 PYTHONDONTWRITEBYTECODE=1 \
        $PY -m uvicorn fastapi_app:app --app-dir "$PEERS" --host 127.0.0.1 --port "$port" \
        --workers 1 --loop uvloop --http httptools --no-access-log --log-level warning
    pid=$SPID
    wait_port "$port" "$pid"
    check_hit "$row" "http://127.0.0.1:$port${prefix}k00042" 'content-type: application/octet-stream' 100 &&
        WRK_KEYS=$KEYS WRK_PREFIX=$prefix WRK_SUFFIX="" measure "$row" "$pid" "$REDIS_PID" \
            -s "$HERE/keys.lua" "http://127.0.0.1:$port"
    stop_pids "$pid"
}
row_fastapi_100() { fastapi fastapi_100 /v1/cache/bench/; }
row_fastapi_dict_100() { fastapi fastapi_dict_100 /dict/bench/; }

start_origin() { # SIZE: sets OPORT, OPID
    OPORT=$(free_port)
    fill "$PEERS/nginx-origin.conf.in" "$TMP/origin.conf" "TMP=$TMP" "PORT=$OPORT" "BODY=$(body_of "$1")"
    start_server origin nginx -p "$TMP" -c "$TMP/origin.conf"
    OPID=$SPID
    wait_port "$OPORT" "$OPID"
}

varnish() { # SIZE
    local size=$1 row=varnish_$1 port pid
    start_origin "$size"
    port=$(free_port)
    fill "$PEERS/varnish.vcl.in" "$TMP/varnish.vcl" "ORIGIN=$OPORT"
    rm -rf "$TMP/varnish"
    start_server "$row" varnishd -F -j none -n "$TMP/varnish" -a "127.0.0.1:$port" \
        -f "$TMP/varnish.vcl" -s malloc,256m
    pid=$SPID
    wait_port "$port" "$pid"
    curl -s -o /dev/null "http://127.0.0.1:$port/bench/hot"
    check_hit "$row" "http://127.0.0.1:$port/bench/hot" '^x-varnish: [0-9]+ [0-9]+$' \
        "$(bytes_of "$size")" && measure "$row" "$pid" "" "http://127.0.0.1:$port/bench/hot"
    stop_pids "$pid" "$OPID"
}
row_varnish_100() { varnish 100; }
row_varnish_1k() { varnish 1k; }

nginx_cache() { # SIZE
    local size=$1 row=nginx_cache_$1 port pid
    start_origin "$size"
    port=$(free_port)
    rm -rf "$TMP/nginx-cache-store"
    fill "$PEERS/nginx-cache.conf.in" "$TMP/cache.conf" "TMP=$TMP" "PORT=$port" "ORIGIN=$OPORT"
    start_server "$row" nginx -p "$TMP" -c "$TMP/cache.conf"
    pid=$SPID
    wait_port "$port" "$pid"
    curl -s -o /dev/null "http://127.0.0.1:$port/bench/hot"
    check_hit "$row" "http://127.0.0.1:$port/bench/hot" '^x-cache-status: HIT' \
        "$(bytes_of "$size")" && measure "$row" "$pid" "" "http://127.0.0.1:$port/bench/hot"
    stop_pids "$pid" "$OPID"
}
row_nginx_cache_100() { nginx_cache 100; }
row_nginx_cache_1k() { nginx_cache 1k; }

nginx_return() { # SIZE
    local size=$1 row=nginx_return_$1 port pid
    port=$(free_port)
    fill "$PEERS/nginx-return.conf.in" "$TMP/return.conf" "TMP=$TMP" "PORT=$port" "BODY=$(body_of "$size")"
    start_server "$row" nginx -p "$TMP" -c "$TMP/return.conf"
    pid=$SPID
    wait_port "$port" "$pid"
    check_hit "$row" "http://127.0.0.1:$port/bench/hot" '^content-length' "$(bytes_of "$size")" &&
        measure "$row" "$pid" "" "http://127.0.0.1:$port/bench/hot"
    stop_pids "$pid"
}
row_nginx_return_100() { nginx_return 100; }
row_nginx_return_1k() { nginx_return 1k; }

ALL_ROWS=(strata_l1_100 strata_l1_lease_100 varnish_100 nginx_cache_100 nginx_return_100 strata_l2_100 webdis_100
    fastapi_100 strata_l1keys_100 fastapi_dict_100 strata_l1_1k varnish_1k nginx_cache_1k
    nginx_return_1k)
if [ -n "${BASELINE:-}" ]; then
    [ -x "$BASELINE" ] || { echo "bench/http/run.sh: BASELINE=$BASELINE is not executable" >&2; exit 1; }
    ALL_ROWS+=(before_l1_100 before_l2_100)
    echo "baseline: $BASELINE" | tee -a "$OUT/machine.txt"
fi
read -r -a ROWS <<<"${ROWS:-${ALL_ROWS[*]}}"

for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
    echo "== round $ROUND/$ROUNDS"
    # rotate the order each round, so no row always runs first or after the same neighbour
    for ((i = 0; i < ${#ROWS[@]}; i++)); do
        row=${ROWS[$(((i + ROUND - 1) % ${#ROWS[@]}))]}
        busy=$(wait_quiet "$row")
        "row_$row" | while read -r name value; do
            echo "$ROUND $name $value" >>"$OUT/raw.txt"
            echo "$name $value"
        done | awk -v busy="$busy" '
            { v[$1] = $2; split($1, p, "."); row = p[1] }
            END { if (row != "")
                printf "  %-18s %9.0f req/s  p50 %6.3f ms  p99 %6.3f ms  rss %7d KiB  cpu1 idle %5.3f  cpu s/c/o %s/%s/%s (busy before: %s)\n",
                    row, v[row ".rps"], v[row ".p50_ms"], v[row ".p99_ms"], v[row ".rss_kb"],
                    v[row ".cpu1_idle"], v[row ".server_cpu"], v[row ".client_cpu"], v[row ".other_cpu"], busy }'
    done
done

# ---- medians, ratios, targets -------------------------------------------------------------------
median_table "$OUT/raw.txt" "$OTHER_MAX" "$ROUNDS" http >"$OUT/results.txt" 2>"$OUT/medians.txt"
grep '^warn ' "$OUT/medians.txt" | sed 's/^warn //' >>"$OUT/warnings.txt" || true

val() { sed -n "s/^RESULT http\.$1=//p" "$OUT/results.txt"; }
ratio() { # NAME A B: RESULT http.ratio.NAME = A / B (medians of req/s)
    local a b
    a=$(val "$2.rps")
    b=$(val "$3.rps")
    [ -n "$a" ] && [ -n "$b" ] &&
        awk -v a="$a" -v b="$b" -v n="$1" 'BEGIN { if (b > 0) printf "RESULT http.ratio.%s=%.3f\n", n, a / b }' \
            >>"$OUT/results.txt"
    return 0
}
ratio l1_100_vs_varnish strata_l1_100 varnish_100
ratio l1_1k_vs_varnish strata_l1_1k varnish_1k
ratio l1_100_vs_nginx_return strata_l1_100 nginx_return_100
ratio l1_1k_vs_nginx_return strata_l1_1k nginx_return_1k
ratio l1_100_vs_nginx_cache strata_l1_100 nginx_cache_100
ratio l2_vs_webdis strata_l2_100 webdis_100
ratio l2_vs_fastapi strata_l2_100 fastapi_100
ratio l1keys_vs_fastapi strata_l1keys_100 fastapi_100
ratio l2_vs_l1keys strata_l2_100 strata_l1keys_100
ratio l1_lease_vs_plain strata_l1_lease_100 strata_l1_100
ratio after_vs_before_l1_100 strata_l1_100 before_l1_100
ratio after_vs_before_l2_100 strata_l2_100 before_l2_100

{
    echo
    echo "== bench/http: medians of $ROUNDS interleaved round(s); wrk -t1 -c$CONNS, ${DURATION}s runs"
    printf '%-18s %9s %8s %8s %9s %9s %6s %-15s %s\n' row req/s p50_ms p99_ms rss_KiB redis_KiB \
        idle1 "cpu s/c/o" ok
    for row in "${ALL_ROWS[@]}"; do
        [ -n "$(val "$row.rps")" ] || continue
        printf '%-18s %9.0f %8.3f %8.3f %9s %9s %6s %-15s %s\n' "$row" "$(val "$row.rps")" \
            "$(val "$row.p50_ms")" "$(val "$row.p99_ms")" "$(val "$row.rss_kb")" \
            "$(val "$row.redis_rss_kb")" "$(val "$row.cpu1_idle")" \
            "$(val "$row.server_cpu")/$(val "$row.client_cpu")/$(val "$row.other_cpu")" \
            "$(sed -n "s/^clean $row //p" "$OUT/medians.txt")"
    done
    echo "(idle1: CPU 1's idle share during the run; cpu s/c/o: CPUs used by the server (+ redis)"
    echo " / wrk / other processes; ok: undisturbed rounds, other processes <= $OTHER_MAX CPUs)"
    [ -n "$(val strata_l2_100.l2_share)" ] &&
        echo "strata_l2_100: share of hits answered by L2: $(val strata_l2_100.l2_share)," \
            "L2 misses: $(val strata_l2_100.l2_misses)"
    for r in after_vs_before_l1_100 after_vs_before_l2_100; do
        if [ -n "$(val "ratio.$r")" ]; then
            echo "$r: $(val "ratio.$r") (this build / BASELINE, medians of req/s)"
        fi
    done
    echo
    verdict() { # NAME OP LIMIT TEXT
        local v
        v=$(val "ratio.$1")
        [ -n "$v" ] || { echo "target: $4: no figure"; return 0; }
        if awk -v v="$v" -v l="$3" -v op="$2" 'BEGIN { exit !(op == ">=" ? v >= l : v < l) }'; then
            echo "target: $4: $v -> met"
        else
            echo "target: $4: $v -> NOT met"
        fi
    }
    verdict l1_100_vs_varnish ">=" 2 "strata L1 hits (100 B) >= 2x Varnish hits"
    verdict l1_1k_vs_varnish ">=" 2 "strata L1 hits (1 KB) >= 2x Varnish hits"
    verdict l1_100_vs_nginx_return ">=" 0.8 "strata L1 hits (100 B) >= 0.8x nginx return 200"
    verdict l1_1k_vs_nginx_return ">=" 0.8 "strata L1 hits (1 KB) >= 0.8x nginx return 200"
    verdict l2_vs_webdis ">=" 1.5 "strata L2 hits >= 1.5x webdis"
    verdict l2_vs_fastapi ">=" 10 "strata L2 hits >= 10x FastAPI + redis-py"
    verdict l1_lease_vs_plain ">=" 0.952 "a hit asked with X-Cache-Lease costs <= 5% over a plain hit (req/s ratio >= 1/1.05)"
    for row in strata_l1_100 strata_l1_1k strata_l2_100; do
        p=$(val "$row.p99_ms")
        [ -n "$p" ] || continue
        if awk -v p="$p" 'BEGIN { exit !(p < 2) }'; then v=met; else v="NOT met"; fi
        echo "target: $row p99 < 2 ms at $CONNS connections: $p ms -> $v"
    done
} | tee "$OUT/summary.txt"

# ---- profile: where strata serve's time goes under the same load --------------------------------
# perf record (cpu-clock: this VM has no hardware counters; DWARF call graphs) on the strata pid
# while wrk runs the L1 row's load, then the L2 row's; CPU per request from /proc/PID/stat over
# the whole wrk run; then syscalls per request (perf stat on syscall tracepoints, 3 s), for strata
# and, as the reference, for nginx's `return 200` worker under the same wrk load.
SYSCALLS=(epoll_ctl epoll_wait readv writev ioctl read write recvfrom sendto sendmsg recvmsg futex)
syscall_rates() { # PID: perf stat for 3 s on the syscall tracepoints: "name per-second ..."
    local ev=() x
    for x in "${SYSCALLS[@]}"; do ev+=(-e "syscalls:sys_enter_$x"); done
    perf stat -x, "${ev[@]}" -p "$1" -- sleep 3 2>&1 >/dev/null |
        awk -F, '$3 ~ /sys_enter_/ && $1 + 0 > 0 { sub(/^syscalls:sys_enter_/, "", $3); printf "%s %.1f ", $3, $1 / 3 }'
}
per_req() { # "RATES" RPS: the rates divided by the request rate
    awk -v r="$1" -v rps="$2" 'BEGIN { n = split(r, a, " "); t = 0
        for (i = 1; i < n; i += 2) { printf " %s %.2f", a[i], a[i + 1] / rps; t += a[i + 1] / rps }
        printf "  (all: %.2f per request)\n", t }'
}

profile() { # ROW
    local row=$1 port pid env=() url wrkargs=() t0 t1 reqs rps
    port=$(free_port)
    if [ "$row" = strata_l2_100 ]; then
        env=(REDIS_URL="redis://127.0.0.1:$REDIS_PORT" STRATA_L1_MAX_MEMORY=64K)
        wrkargs=(-s "$HERE/keys.lua")
        url="http://127.0.0.1:$port"
    else
        env=(-u REDIS_URL)
        url="http://127.0.0.1:$port/v1/cache/bench/hot"
    fi
    start_server "prof-$row" env "${env[@]}" STRATA_WORKERS=1 STRATA_LISTEN="127.0.0.1:$port" \
        "$STRATA" serve
    pid=$SPID
    wait_port "$port" "$pid"
    body_of 100 | curl -sf -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' \
        --data-binary @- "http://127.0.0.1:$port/v1/cache/bench/hot?ttl=86400"
    wait_quiet "profile $row" >/dev/null
    WRK_KEYS=$KEYS taskset -c 0 wrk -t1 -c"$CONNS" -d"${WARMUP}s" "${wrkargs[@]}" "$url" >/dev/null
    t0=$(tree_cpu "$pid")
    WRK_KEYS=$KEYS taskset -c 0 wrk -t1 -c"$CONNS" -d"$((DURATION + 6))s" "${wrkargs[@]}" "$url" \
        >"$OUT/profile.$row.wrk.txt" &
    local wpid=$!
    sleep 1
    perf record -e cpu-clock -F 1999 --call-graph dwarf,16384 -p "$pid" -o "$TMP/perf.$row.data" \
        -- sleep "$DURATION" >"$TMP/perf.$row.log" 2>&1 || true
    local sc
    sc=$(syscall_rates "$pid")
    wait "$wpid" || true
    t1=$(tree_cpu "$pid")
    stop_pids "$pid"
    read -r rps _ _ _ reqs < <(wrk_fields "$OUT/profile.$row.wrk.txt")
    local mhz
    mhz=$(awk -F: '/^cpu MHz/ { print $2 + 0; exit }' /proc/cpuinfo)
    perf report -i "$TMP/perf.$row.data" --no-children --sort dso,sym -g none --stdio \
        2>/dev/null | grep -v '^#' | grep -v '^$' >"$OUT/profile.$row.self.txt" || true
    perf report -i "$TMP/perf.$row.data" --children --sort sym -g none --stdio \
        2>/dev/null | grep -v '^#' | grep -v '^$' >"$OUT/profile.$row.children.txt" || true
    perf report -i "$TMP/perf.$row.data" --no-children --sort sym -g caller,0.5,callee,function,percent \
        --stdio 2>/dev/null | grep -v '^$' | head -400 >"$OUT/profile.$row.callers.txt" || true
    nm --defined-only "$BUILD_DIR/libstrata.a" 2>/dev/null | awk 'NF == 3 { print $3 }' \
        >"$TMP/libsyms.txt"
    {
        echo "== profile of strata serve, $row load ($rps req/s over the profiled wrk run)"
        awk -v a="$t0" -v b="$t1" -v n="$reqs" -v mhz="$mhz" -v row="$row" 'BEGIN { if (n > 0) {
            printf "CPU per request: %.2f us = %.0f cycles at %.0f MHz (server CPU over the whole wrk run / its requests)\n",
                (b - a) * 1e6 / n, (b - a) * mhz * 1e6 / n, mhz
            printf "RESULT http.profile.%s.cpu_us_per_req=%.2f\n", row, (b - a) * 1e6 / n > "/dev/stderr" } }' \
            2>>"$OUT/profile.results.txt"
        echo "syscalls per request:$(per_req "$sc" "$rps")"
        echo "self time by group (perf, cpu-clock samples):"
        "$HERE/perf_groups.sh" "$OUT/profile.$row.self.txt" "$TMP/libsyms.txt"
        echo "phases of a request (each sample by the functions on its stack; bench/http/perf_phases.py):"
        perf script -i "$TMP/perf.$row.data" 2>/dev/null | $PY "$HERE/perf_phases.py"
        echo "inclusive time of landmarks (children, self):"
        grep -E '[[:space:]](on_request|route_request|route_match|authenticate|limits_apply|kv_handle|send_value|reply_value|send_reply|finish|metrics_record|strata_cache_get_async|evhttp_send_reply|evhttp_read_cb|evhttp_parse_firstline_|evhttp_parse_headers_|evhttp_request_free|evhttp_add_header|evhttp_clear_headers|evbuffer_write_atmost|evbuffer_read|event_base_loop|redisProcessCallbacks|__libc_calloc|malloc|_int_free|__vfprintf_internal|__x64_sys_writev|__x64_sys_readv|__x64_sys_epoll_ctl|__x64_sys_epoll_wait|do_softirq|__do_softirq|net_rx_action)$' \
            "$OUT/profile.$row.children.txt" | head -45
        echo "top self symbols:"
        head -30 "$OUT/profile.$row.self.txt"
    } | tee "$OUT/profile.$row.txt"
}
profile_nginx() { # the reference: syscalls per request of nginx return 200 under the same load
    local port pid w rps
    port=$(free_port)
    fill "$PEERS/nginx-return.conf.in" "$TMP/return.conf" "TMP=$TMP" "PORT=$port" "BODY=$BODY100"
    start_server prof-nginx nginx -p "$TMP" -c "$TMP/return.conf"
    pid=$SPID
    wait_port "$port" "$pid"
    w=$(pgrep -P "$pid" | head -n1)
    taskset -c 0 wrk -t1 -c"$CONNS" -d"${WARMUP}s" "http://127.0.0.1:$port/bench/hot" >/dev/null
    taskset -c 0 wrk -t1 -c"$CONNS" -d5s "http://127.0.0.1:$port/bench/hot" \
        >"$OUT/profile.nginx_return_100.wrk.txt" &
    local wpid=$!
    sleep 1
    local counts t0 t1 reqs
    t0=$(tree_cpu "$w")
    counts=$(syscall_rates "$w")
    wait "$wpid" || true
    t1=$(tree_cpu "$w")
    stop_pids "$pid"
    read -r rps _ _ _ reqs <<<"$(wrk_fields "$OUT/profile.nginx_return_100.wrk.txt")"
    {
        echo "== reference: nginx return 200 (100 B) worker, $rps req/s"
        # the worker's CPU over the last 4 of the 5 s, against 4/5 of the requests
        awk -v a="$t0" -v b="$t1" -v n="$reqs" 'BEGIN { if (n > 0)
            printf "CPU per request: about %.2f us (worker CPU over 4 s of the 5 s run / 4/5 of its requests)\n", (b - a) * 1e6 / (n * 0.8) }'
    } | tee "$OUT/profile.nginx_return_100.txt"
    echo "syscalls per request:$(per_req "$counts" "$rps")" | tee -a "$OUT/profile.nginx_return_100.txt"
}
if [ "$PROFILE" = 1 ] && command -v perf >/dev/null; then
    for row in strata_l1_100 strata_l2_100; do
        case " ${ROWS[*]} " in *" $row "*) profile "$row" ;; esac
    done
    profile_nginx
    [ -s "$OUT/profile.results.txt" ] && cat "$OUT/profile.results.txt" >>"$OUT/results.txt"
fi

if [ -s "$OUT/warnings.txt" ]; then
    echo "== warnings"
    sort -u "$OUT/warnings.txt"
fi
echo "(raw output in $OUT)"
