#!/usr/bin/env bash
# bench/proxy/run.sh: strata serve as a caching reverse proxy (--upstream) against Varnish and
# nginx proxy_cache, in front of the same counting origin, in one run: cache hits and misses with
# wrk (bench/http's method), and a cold-key burst of 1,000 clients with the origin's calls
# counted. Rows interleaved round by round; medians.
#
# Usage: bench/proxy/run.sh [BUILD_DIR]     (default: build, at the top of the repository)
# Environment: ROUNDS (default 3), QUICK=1 (a smoke run: 1 round, 3 s runs, no profile), DURATION
# (seconds per measured run, 10), WARMUP (seconds of unmeasured load first, 2), BURST_N (the
# burst's concurrent clients, 1000), BURST_MS (the origin's delay in the burst rows, 100), OUT
# (default bench/results/proxy-<date-time>/), QUIET_WAIT (seconds to wait before each row for
# other processes to leave the CPUs, 30), OTHER_MAX (a run is disturbed when other processes used
# more CPUs than this meanwhile; left out of the medians unless fewer than half are clean; 0.3),
# PROFILE (1: perf-profile strata serve under the hit load after the rounds when a strata target
# is missed; default 1), ROWS (a subset of the rows below, e.g. "varnish_hit_100 nginx_cache_hit_100"),
# REPORT=DIR (no run: recompute DIR/results.txt and DIR/summary.txt from DIR/raw*.txt).
#
# Pinning (2 cores): every server on CPU 1 (the proxies, the origins, redis-server), the load
# generators on CPU 0 (wrk: one thread, 50 keep-alive connections; bench/stampede's client for
# the burst). Every server is started here on a free loopback port, its files in
# /tmp/benchproxy-*, and stopped by the exit trap. The origin is bench/stampede/origin.c: every
# GET is counted (GET /count) and answered with `Cache-Control: public, max-age=3600`; three of
# them run: 100 B and 1 KB bodies answered at once (hit and miss rows), and 100 B after BURST_MS
# (the burst rows, so the burst arrives while the first miss is at the origin).
# Rows (a proxy is started for each row and stopped after it; STRATA_WORKERS=1):
#   strata_hit_100, strata_hit_1k            strata serve --upstream, memory only: one URL, hits
#                                            (X-Cache: HIT-L1 checked first)
#   varnish_hit_100, varnish_hit_1k          Varnish 7.1, built-in VCL, -s malloc,256m (two ids
#                                            in X-Varnish checked first)
#   nginx_cache_hit_100, nginx_cache_hit_1k  nginx proxy_cache (X-Cache-Status: HIT checked first)
#   strata_miss_100, strata_miss_l2_100      unique URLs (bench/proxy/miss.lua): every request a
#   varnish_miss_100, nginx_cache_miss_100   miss (the miss header checked first; origin calls
#                                            per request counted); strata_miss_l2_100 with
#                                            REDIS_URL (a miss also looks in and writes to Redis)
#   strata_burst_{1,2}node                   BURST_N clients, one cold URL, over 1 or 2 strata
#                                            sharing one redis-server: origin calls (target 1)
#   varnish_burst_{1,2}node                  the same over 1 or 2 Varnish (each coalesces alone)
#   nginx_lock_burst_{1,2}node               the same over 1 or 2 nginx with proxy_cache_lock on
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/bench/proxy
PEERS=$ROOT/bench/peers
BUILD_DIR=${1:-$ROOT/build}
# shellcheck source=bench/http/lib.sh
. "$ROOT/bench/http/lib.sh"

ROUNDS=${ROUNDS:-3}
QUICK=${QUICK:-0}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
BURST_N=${BURST_N:-1000}
BURST_MS=${BURST_MS:-100}
QUIET_WAIT=${QUIET_WAIT:-30}
OTHER_MAX=${OTHER_MAX:-0.3}
PROFILE=${PROFILE:-1}
CONNS=50
if [ "$QUICK" = 1 ]; then
    ROUNDS=1 DURATION=3 WARMUP=1 PROFILE=0
fi

ALL_ROWS=(strata_hit_100 varnish_hit_100 nginx_cache_hit_100 strata_hit_1k varnish_hit_1k
    nginx_cache_hit_1k strata_miss_100 strata_miss_l2_100 varnish_miss_100 nginx_cache_miss_100
    strata_burst_1node strata_burst_2node varnish_burst_1node varnish_burst_2node
    nginx_lock_burst_1node nginx_lock_burst_2node)
read -r -a ROWS <<<"${ROWS:-${ALL_ROWS[*]}}"
for row in "${ROWS[@]}"; do
    case " ${ALL_ROWS[*]} " in
    *" $row "*) ;;
    *) echo "bench/proxy: no row '$row' (have: ${ALL_ROWS[*]})" >&2 && exit 2 ;;
    esac
done

# ---- the report: medians over the rounds, ratios, targets ---------------------------------------
report() {
    median_table "$OUT/raw.txt" "$OTHER_MAX" "$ROUNDS" proxy >"$OUT/results.txt" 2>"$OUT/medians.txt"
    grep '^warn ' "$OUT/medians.txt" | sed 's/^warn //' >>"$OUT/warnings.txt" || true
    # the bursts: medians of the latencies over all rounds; the origin calls' range; errors summed
    awk '
        { split($2, p, "."); row = p[1]; met = substr($2, length(row) + 2)
          if (!(row in seen)) { seen[row] = 1; rows[nr++] = row }
          if (!((row " " met) in ms)) { ms[row " " met] = 1; mets[row] = mets[row] " " met }
          vals[row " " met] = vals[row " " met] " " $3 }
        function median(s,    a, m, i, j, t) {
            m = split(s, a, " ")
            for (i = 2; i <= m; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] + 0 > t + 0; j--) a[j + 1] = a[j]; a[j + 1] = t }
            return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
        }
        END {
            for (i = 0; i < nr; i++) {
                row = rows[i]; m = split(mets[row], ml, " ")
                for (j = 1; j <= m; j++) printf "RESULT proxy.%s.%s=%s\n", row, ml[j], median(vals[row " " ml[j]])
                k = split(vals[row " origin_calls"], c, " "); lo = c[1]; hi = c[1]
                for (x = 2; x <= k; x++) { if (c[x] + 0 < lo + 0) lo = c[x]; if (c[x] + 0 > hi + 0) hi = c[x] }
                printf "RESULT proxy.%s.origin_calls_min=%s\nRESULT proxy.%s.origin_calls_max=%s\n", row, lo, row, hi
                k = split(vals[row " errors"], c, " "); s = 0
                for (x = 1; x <= k; x++) s += c[x]
                printf "RESULT proxy.%s.errors_total=%d\nRESULT proxy.%s.rounds=%d\n", row, s, row, k
            }
        }' "$OUT/raw_burst.txt" >>"$OUT/results.txt"

    val() { sed -n "s/^RESULT proxy\.$1=//p" "$OUT/results.txt"; }
    ratio() { # NAME A B: RESULT proxy.ratio.NAME = A / B (medians of req/s)
        local a b
        a=$(val "$2.rps")
        b=$(val "$3.rps")
        if [ -n "$a" ] && [ -n "$b" ]; then
            awk -v a="$a" -v b="$b" -v n="$1" 'BEGIN { if (b > 0) printf "RESULT proxy.ratio.%s=%.3f\n", n, a / b }' \
                >>"$OUT/results.txt"
        fi
        return 0
    }
    local s
    for s in 100 1k; do
        ratio "hit_${s}_vs_varnish" "strata_hit_$s" "varnish_hit_$s"
        ratio "hit_${s}_vs_nginx_cache" "strata_hit_$s" "nginx_cache_hit_$s"
        ratio "varnish_vs_nginx_cache_hit_$s" "varnish_hit_$s" "nginx_cache_hit_$s"
    done
    ratio miss_vs_varnish strata_miss_100 varnish_miss_100
    ratio miss_vs_nginx_cache strata_miss_100 nginx_cache_miss_100
    ratio miss_l2_vs_miss strata_miss_l2_100 strata_miss_100
    # the cost of a miss: a server's misses/s over its hits/s (100 B)
    ratio strata_miss_over_hit strata_miss_100 strata_hit_100
    ratio varnish_miss_over_hit varnish_miss_100 varnish_hit_100
    ratio nginx_cache_miss_over_hit nginx_cache_miss_100 nginx_cache_hit_100

    {
        echo
        echo "== bench/proxy: medians of $ROUNDS interleaved round(s); wrk -t1 -c$CONNS, ${DURATION}s runs"
        printf '%-22s %9s %8s %8s %9s %8s %8s %8s %-15s %s\n' row req/s p50_ms p99_ms rss_KiB cpu_us/r \
            origin/r orig_us/r "cpu s/c/o" ok
        local row cpu_us
        for row in "${ALL_ROWS[@]}"; do
            [ -n "$(val "$row.rps")" ] || continue
            # the proxy's CPU per request (its processes only; the origin is apart)
            cpu_us=$(awk -v c="$(val "$row.server_cpu")" -v r="$(val "$row.rps")" \
                'BEGIN { if (r > 0) printf "%.1f", c * 1e6 / r }')
            printf '%-22s %9.0f %8.3f %8.3f %9s %8s %8s %8s %-15s %s\n' "$row" "$(val "$row.rps")" \
                "$(val "$row.p50_ms")" "$(val "$row.p99_ms")" "$(val "$row.rss_kb")" "$cpu_us" \
                "$(val "$row.origin_per_req")" "$(val "$row.origin_us_per_req")" \
                "$(val "$row.server_cpu")/$(val "$row.client_cpu")/$(val "$row.other_cpu")" \
                "$(sed -n "s/^clean $row //p" "$OUT/medians.txt")"
        done
        echo "(rss: the proxy's processes after the run; cpu_us/r: the server's CPU time per request:"
        echo " the proxy's, and in the miss rows the origin's and redis-server's too, of which"
        echo " orig_us/r is the origin's; origin/r: origin calls per request; cpu s/c/o: CPUs used by"
        echo " the server (as in cpu_us/r) / wrk / other processes; ok: undisturbed rounds, other"
        echo " processes <= $OTHER_MAX CPUs)"
        echo
        printf '%-24s %12s %9s %9s %9s %9s %7s\n' "burst ($BURST_N clients)" origin_calls p50_ms p99_ms \
            max_ms coalesced errors
        local lo hi calls
        for row in "${ALL_ROWS[@]}"; do
            [ -n "$(val "$row.origin_calls_min")" ] || continue
            lo=$(val "$row.origin_calls_min")
            hi=$(val "$row.origin_calls_max")
            if [ "$lo" = "$hi" ]; then calls=$lo; else calls="$lo-$hi"; fi
            printf '%-24s %12s %9.3f %9.3f %9.3f %9s %7s\n' "$row" "$calls" "$(val "$row.p50_ms")" \
                "$(val "$row.p99_ms")" "$(val "$row.max_ms")" "$(val "$row.coalesced")" \
                "$(val "$row.errors_total")"
        done
        echo "(origin_calls: the range over $ROUNDS round(s); latencies: medians, each client from its"
        echo " GET's write to its answer, the origin taking $BURST_MS ms; coalesced: answers marked"
        echo " HIT-COALESCED (strata); errors: over all rounds)"
        echo
        verdict() { # NAME LIMIT TEXT: ratio >= LIMIT
            local v
            v=$(val "ratio.$1")
            [ -n "$v" ] || { echo "target: $3: no figure"; return 0; }
            if awk -v v="$v" -v l="$2" 'BEGIN { exit !(v >= l) }'; then
                echo "target: $3: $v -> met"
            else
                echo "target: $3: $v -> NOT met"
            fi
        }
        for s in 100 1k; do
            verdict "hit_${s}_vs_varnish" 2 "strata hits ($s) >= 2x Varnish hits"
            verdict "hit_${s}_vs_nginx_cache" 1 "strata hits ($s) >= nginx proxy_cache hits"
        done
        local p v
        for row in strata_hit_100 strata_hit_1k; do
            p=$(val "$row.p99_ms")
            [ -n "$p" ] || { echo "target: $row p99 < 1 ms at $CONNS connections: no figure"; continue; }
            if awk -v p="$p" 'BEGIN { exit !(p < 1) }'; then v=met; else v="NOT met"; fi
            echo "target: $row p99 < 1 ms at $CONNS connections: $p ms -> $v"
        done
        for row in strata_burst_1node strata_burst_2node; do
            lo=$(val "$row.origin_calls_min")
            hi=$(val "$row.origin_calls_max")
            [ -n "$lo" ] || { echo "target: $row: 1 origin call per cold key: no figure"; continue; }
            if [ "$lo" = 1 ] && [ "$hi" = 1 ] && [ "$(val "$row.errors_total")" = 0 ]; then
                v=met
            else
                v="NOT met"
            fi
            echo "target: $row: 1 origin call per cold key in every round, no errors:" \
                "$lo-$hi calls, $(val "$row.errors_total") errors -> $v"
        done
    } | tee "$OUT/summary.txt"
}

if [ -n "${REPORT:-}" ]; then
    OUT=$REPORT
    ROUNDS=$(awk '$1 > r { r = $1 } END { print r + 0 }' "$OUT/raw.txt" "$OUT/raw_burst.txt")
    : >"$OUT/warnings.txt"
    report
    exit 0
fi

# ---- what it needs ----------------------------------------------------------------------------
PKGS=(wrk varnish nginx-light redis-server redis-tools util-linux curl)
[ "$(id -u)" -eq 0 ] && PKGS+=(linux-perf) # the profile; skipped when perf is missing
ensure_pkgs "${PKGS[@]}"

cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSTRATA_BENCH=ON >/dev/null
cmake --build "$BUILD_DIR" -j2 --target strata_cli bench_stampede stampede_origin >/dev/null
BUILD_DIR=$(cd "$BUILD_DIR" && pwd)
STRATA=$BUILD_DIR/strata
CLIENT=$BUILD_DIR/bench_stampede
ORIGIN=$BUILD_DIR/stampede_origin

STAMP=$(date +%Y%m%d-%H%M%S)
OUT=${OUT:-$ROOT/bench/results/proxy-$STAMP}
mkdir -p "$OUT"
: >"$OUT/raw.txt"
: >"$OUT/raw_burst.txt"
: >"$OUT/warnings.txt"

TMP=$(mktemp -d /tmp/benchproxy-XXXXXX)
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
    echo "nginx: $(dpkg-query -W -f='${Version}' nginx) varnish: $(dpkg-query -W -f='${Version}' varnish)"
    echo "libevent: $(pkg-config --modversion libevent)"
    echo "rounds: $ROUNDS duration: ${DURATION}s warmup: ${WARMUP}s burst: $BURST_N clients," \
        "origin ${BURST_MS} ms quick: $QUICK"
    echo "rows: ${ROWS[*]}"
} | tee "$OUT/machine.txt"

# ---- the origins and Redis: started once, on CPU 1 ----------------------------------------------
declare -A OPORT OPID # body size (100, 1k, slow) -> the origin's port, pid
start_origin() { # NAME ARGS...
    local name=$1 port
    shift
    port=$(free_port)
    start_server "origin-$name" "$ORIGIN" --port "$port" "$@"
    wait_port "$port" "$SPID"
    OPORT[$name]=$port
    OPID[$name]=$SPID
}
start_origin 100 --delay-ms 0 --body-bytes 100
start_origin 1k --delay-ms 0 --body-bytes 1024
start_origin slow --delay-ms "$BURST_MS" --body-bytes 100
start_redis
echo "origins (CPU 1): 100 B on ${OPORT[100]}, 1 KB on ${OPORT[1k]}, 100 B after ${BURST_MS} ms" \
    "on ${OPORT[slow]}; redis-server on $REDIS_PORT"

origin_count() { curl -sf "http://127.0.0.1:${OPORT[$1]}/count"; }
bytes_of() { case $1 in 100 | slow) echo 100 ;; 1k) echo 1024 ;; esac; }

# ---- the proxies ----------------------------------------------------------------------------------
# start_proxy KIND NAME ORIGIN [REDIS]: one proxy of KIND (strata, varnish, nginx_cache,
# nginx_lock) in front of the origin ORIGIN (100, 1k, slow), on CPU 1; sets PORT and PID. strata
# gets REDIS_URL when REDIS is 1, else runs memory only.
start_proxy() {
    local kind=$1 name=$2 origin=${OPORT[$3]} redis=${4:-0}
    PORT=$(free_port)
    case $kind in
    strata)
        local env=(-u REDIS_URL)
        [ "$redis" = 1 ] && env+=(REDIS_URL="redis://127.0.0.1:$REDIS_PORT")
        start_server "$name" env "${env[@]}" STRATA_WORKERS=1 "$STRATA" serve \
            --upstream "http://127.0.0.1:$origin" --listen "127.0.0.1:$PORT"
        ;;
    varnish)
        fill "$PEERS/varnish.vcl.in" "$TMP/$name.vcl" "ORIGIN=$origin"
        rm -rf "${TMP:?}/$name"
        start_server "$name" varnishd -F -j none -n "$TMP/$name" -a "127.0.0.1:$PORT" \
            -f "$TMP/$name.vcl" -s malloc,256m
        ;;
    nginx_cache)
        rm -rf "${TMP:?}/nginx-cache-store"
        fill "$PEERS/nginx-cache.conf.in" "$TMP/$name.conf" "TMP=$TMP" "PORT=$PORT" "ORIGIN=$origin"
        start_server "$name" nginx -p "$TMP" -c "$TMP/$name.conf"
        ;;
    nginx_lock)
        rm -rf "${TMP:?}/$name-store"
        fill "$PEERS/nginx-cache-lock.conf.in" "$TMP/$name.conf" "TMP=$TMP" "NAME=$name" \
            "PORT=$PORT" "ORIGIN=$origin"
        start_server "$name" nginx -p "$TMP" -c "$TMP/$name.conf"
        ;;
    esac
    PID=$SPID
    wait_port "$PORT" "$PID"
}

# the header line that marks a hit, and a miss, for each kind
hit_re() {
    case $1 in
    strata) echo '^x-cache: HIT-L1$' ;;
    varnish) echo '^x-varnish: [0-9]+ [0-9]+$' ;;
    nginx_cache | nginx_lock) echo '^x-cache-status: HIT$' ;;
    esac
}
miss_re() {
    case $1 in
    strata) echo '^x-cache: MISS$' ;;
    varnish) echo '^x-varnish: [0-9]+$' ;;
    nginx_cache | nginx_lock) echo '^x-cache-status: MISS$' ;;
    esac
}

# warm_and_check ROW KIND URL SIZE: asks URL once (a miss: the cache fills), then checks that the
# next GET is a hit of SIZE bytes; a proxy may store the answer just after sending it, so the
# check is tried up to three times, 0.1 s apart, before it counts as failed.
warm_and_check() {
    local row=$1 kind=$2 url=$3 size=$4
    curl -s -o /dev/null "$url"
    for _ in 1 2; do
        check_hit "$row" "$url" "$(hit_re "$kind")" "$size" 2>/dev/null && return 0
        sed -i '$d' "$OUT/warnings.txt" # only the last try's failure is kept
        sleep 0.1
    done
    check_hit "$row" "$url" "$(hit_re "$kind")" "$size"
}

# ---- rows -----------------------------------------------------------------------------------------
# hit KIND SIZE: one URL, cached, under wrk
row_hit() {
    local kind=$1 size=$2 row=${1}_hit_$2 url
    start_proxy "$kind" "$row" "$size"
    url="http://127.0.0.1:$PORT/hit/$size"
    warm_and_check "$row" "$kind" "$url" "$(bytes_of "$size")" &&
        measure "$row" "$PID" "" "$url"
    stop_pids "$PID"
}

# miss KIND [REDIS]: unique URLs under wrk (bench/proxy/miss.lua); origin calls per request over
# the warm-up and the run (wrk's answered requests; the up to CONNS requests in flight when wrk
# stops are not counted by wrk, so the figure can sit a hair above 1)
row_miss() {
    local kind=$1 redis=${2:-0} row c0 c1 warm run
    row=${kind}_miss_100
    [ "$redis" = 1 ] && row=${kind}_miss_l2_100
    start_proxy "$kind" "$row" 100 "$redis"
    if check_hit "$row" "http://127.0.0.1:$PORT/miss-check/$ROUND" "$(miss_re "$kind")" 100; then
        # the origin (and redis-server) count with the proxy as the server's CPU, not as other
        # processes': the row's disturbance figure stays that of the rest of the machine
        local also=${OPID[100]} t0 t1
        [ "$redis" = 1 ] && also="$also $REDIS_PID"
        c0=$(origin_count 100)
        t0=$(tree_cpu "${OPID[100]}")
        measure "$row" "$PID" "$also" -s "$HERE/miss.lua" "http://127.0.0.1:$PORT" |
            grep -v '\.redis_rss_kb '
        t1=$(tree_cpu "${OPID[100]}")
        c1=$(origin_count 100)
        read -r _ _ _ _ warm < <(wrk_fields "$TMP/warm.txt")
        read -r _ _ _ _ run < <(wrk_fields "$OUT/$row.r$ROUND.txt")
        awk -v c="$((c1 - c0))" -v n="$((${warm:-0} + ${run:-0}))" -v t0="$t0" -v t1="$t1" \
            -v row="$row" 'BEGIN { if (n > 0) {
                printf "%s.origin_per_req %.3f\n", row, c / n
                printf "%s.origin_us_per_req %.2f\n", row, (t1 - t0) * 1e6 / n } }'
    fi
    stop_pids "$PID"
}

# burst KIND NODES: BURST_N clients spread over NODES proxies ask one cold URL at once
# (bench/stampede's client in proxy mode); the slow origin counts its calls
row_burst() {
    local kind=$1 nodes=$2 row=${1}_burst_${2}node i pids=() targets=() ok=1 path f c0 c1
    for ((i = 0; i < nodes; i++)); do
        start_proxy "$kind" "$row$i" slow 1
        pids+=("$PID")
        targets+=("127.0.0.1:$PORT")
        # unmeasured: the proxy's connection to the origin is opened, and a hit checked
        warm_and_check "$row" "$kind" "http://127.0.0.1:$PORT/burst-warm/r$ROUND-$row-$$-$i" 100 ||
            ok=0
    done
    if [ "$ok" = 1 ]; then
        path=/burst/r$ROUND-$row-$$-$RANDOM
        f=$OUT/$row.r$ROUND.txt
        c0=$(origin_count slow)
        # one Host for every instance, as behind a load balancer: strata's cache key holds it
        taskset -c 0 "$CLIENT" --mode proxy --n "$BURST_N" --compute-ms "$BURST_MS" --path "$path" \
            --host bench.proxy "${targets[@]}" >"$f"
        c1=$(origin_count slow)
        echo "path=$path" >>"$f"
        echo "$row.origin_calls $((c1 - c0))"
        awk -F= -v row="$row" '$1 ~ /^(errors|p50_ms|p99_ms|max_ms|coalesced|other_hits)$/ {
            print row "." $1 " " $2 }' "$f"
        if grep -q '^first_error=' "$f"; then
            echo "round $ROUND: $row: $(sed -n 's/^first_error=//p' "$f")" \
                "(errors: $(sed -n 's/^errors=//p' "$f"))" >>"$OUT/warnings.txt"
        fi
    fi
    stop_pids "${pids[@]}"
}

run_row() { # ROW
    case $1 in
    *_hit_100 | *_hit_1k) row_hit "${1%_hit_*}" "${1##*_hit_}" ;;
    strata_miss_l2_100) row_miss strata 1 ;;
    *_miss_100) row_miss "${1%_miss_100}" ;;
    *_burst_1node | *_burst_2node)
        local n=${1##*_burst_}
        row_burst "${1%_burst_*}" "${n%node}"
        ;;
    esac
}

for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
    echo "== round $ROUND/$ROUNDS"
    # rotate the order each round, so no row always runs first or after the same neighbour
    for ((i = 0; i < ${#ROWS[@]}; i++)); do
        row=${ROWS[$(((i + ROUND - 1) % ${#ROWS[@]}))]}
        busy=$(wait_quiet "$row")
        raw=$OUT/raw.txt
        case $row in *_burst_*) raw=$OUT/raw_burst.txt ;; esac
        run_row "$row" | while read -r name value; do
            echo "$ROUND $name $value" >>"$raw"
            echo "$name $value"
        done | awk -v busy="$busy" '
            { v[$1] = $2; split($1, p, "."); row = p[1] }
            END {
                if (row == "") exit
                if ((row ".rps") in v)
                    printf "  %-22s %9.0f req/s  p50 %6.3f ms  p99 %6.3f ms  rss %7d KiB  cpu s/c/o %s/%s/%s%s (busy before: %s)\n",
                        row, v[row ".rps"], v[row ".p50_ms"], v[row ".p99_ms"], v[row ".rss_kb"],
                        v[row ".server_cpu"], v[row ".client_cpu"], v[row ".other_cpu"],
                        ((row ".origin_per_req") in v ? "  origin/req " v[row ".origin_per_req"] : ""), busy
                else
                    printf "  %-22s origin calls %4d  p50 %8.3f ms  p99 %8.3f ms  max %8.3f ms  coalesced %s  errors %d (busy before: %s)\n",
                        row, v[row ".origin_calls"], v[row ".p50_ms"], v[row ".p99_ms"], v[row ".max_ms"],
                        v[row ".coalesced"], v[row ".errors"], busy }'
    done
done

report

# ---- profile: where strata's time goes on a hit, when a strata target is missed -------------------
# perf record (cpu-clock, call graphs by frame pointer where present) on strata serve while wrk
# runs strata_hit_100's load; the top self symbols and the same for Varnish, the peer to beat.
profile() { # KIND
    local kind=$1 url wpid
    start_proxy "$kind" "profile-$kind" 100
    url="http://127.0.0.1:$PORT/hit/100"
    curl -s -o /dev/null "$url"
    wait_quiet "profile $kind" >/dev/null
    taskset -c 0 wrk -t1 -c"$CONNS" -d"$((DURATION + 2))s" "$url" >"$OUT/profile.$kind.wrk.txt" &
    wpid=$!
    sleep 1
    perf record -e cpu-clock -F 1999 -g -o "$TMP/perf.$kind.data" -p "$(tree_pids "$PID" | tr -s ' ' ',' | sed 's/^,//')" \
        -- sleep "$DURATION" >"$TMP/perf.$kind.log" 2>&1 || true
    wait "$wpid" || true
    stop_pids "$PID"
    {
        echo "== profile: $kind, hits of 100 B ($(wrk_fields "$OUT/profile.$kind.wrk.txt" | cut -d' ' -f1) req/s)"
        # (awk, not head: perf report must not die of SIGPIPE under pipefail)
        perf report -i "$TMP/perf.$kind.data" --no-children -g none --sort dso,sym --stdio \
            2>/dev/null | awk '/^ +[0-9.]+%/ && n++ < 30' || true
    } | tee "$OUT/profile.$kind.txt"
}
if [ "$PROFILE" = 1 ] && command -v perf >/dev/null && grep -q '^target: strata.*NOT met' "$OUT/summary.txt"; then
    profile strata
    profile varnish
fi

if [ -s "$OUT/warnings.txt" ]; then
    echo "== warnings"
    sort -u "$OUT/warnings.txt"
fi
echo "(raw output in $OUT)"
