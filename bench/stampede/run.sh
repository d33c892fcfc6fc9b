#!/usr/bin/env bash
# bench/stampede/run.sh: N concurrent misses on one cold key, on 1 and 2 instances: how many
# computations, and how long the waiters wait; strata's leases beside a naive cache-aside client,
# Varnish and nginx (proxy_cache_lock on) in front of the same 100 ms origin. Rows interleaved
# round by round; medians.
#
# Usage: bench/stampede/run.sh [BUILD_DIR]     (default: build, at the top of the repository)
# Environment: ROUNDS (default 5), QUICK=1 (a smoke run: 1 round), NS (the concurrent misses,
# default "10 100 1000"), ROWS (a subset of the row kinds: strata_lease naive varnish nginx_lock),
# COMPUTE_MS (the computation's time, 100), OUT (default bench/results/stampede-<date-time>/),
# QUIET_WAIT (seconds to wait before each row for other processes to leave the CPUs, 30),
# OTHER_MAX (a row's round is disturbed when other processes used more CPUs than this in the
# second before it; left out of the medians unless fewer than half the rounds are clean; 0.3),
# REPORT=DIR (no run: recompute DIR/results.txt and DIR/summary.txt from DIR/raw.txt).
#
# Every server is started here, pinned to CPU 1, on the ports 7400-7499, with its files in
# /tmp/bench-stampede-*, and stopped by the exit trap: redis-server (7400), two `strata serve`
# on it (7401, 7402; STRATA_WORKERS=1 each), the slow origin (bench/stampede/origin.c, 7410: it
# answers every GET after a 100 ms timer and counts them at /count), two Varnish (7421, 7422;
# management 7431, 7432) and two nginx with proxy_cache_lock (7441, 7442) in front of it. The
# load client (bench/stampede/stampede.c) runs on CPU 0: it opens N connections spread
# round-robin over the row's 1 or 2 instances, then fires the N GETs of one fresh key at once.
# Rows, for N in NS and 1 or 2 instances:
#   strata_lease_{1,2}node_N  GET with X-Cache-Lease: 5, X-Cache-Wait: 5; the caller given the
#                             token computes (100 ms timer) and PUTs with it; the others wait
#   naive_{1,2}node_N         strata, plain GET; every caller that misses computes and PUTs
#   varnish_{1,2}node_N       Varnish 7.1 (defaults, built-in VCL) in front of the origin
#   nginx_lock_{1,2}node_N    nginx proxy_cache + proxy_cache_lock on, in front of the origin
# Figures per row: computations (counted by the client for strata, by the origin for the
# proxies), the waiters' p50/p99/max latency (each from its own GET's write to its value; in the
# lease rows the computing caller is left out), errors.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PEERS=$ROOT/bench/peers
BUILD_DIR=${1:-$ROOT/build}
# shellcheck source=bench/http/lib.sh
. "$ROOT/bench/http/lib.sh"

ROUNDS=${ROUNDS:-5}
QUICK=${QUICK:-0}
[ "$QUICK" = 1 ] && ROUNDS=1
read -r -a NS <<<"${NS:-10 100 1000}"
read -r -a KINDS <<<"${ROWS:-strata_lease naive varnish nginx_lock}"
COMPUTE_MS=${COMPUTE_MS:-100}
QUIET_WAIT=${QUIET_WAIT:-30}
OTHER_MAX=${OTHER_MAX:-0.3}

REDIS_PORT=7400
STRATA_PORTS=(7401 7402)
ORIGIN_PORT=7410
VARNISH_PORTS=(7421 7422)
VARNISH_ADMIN=(7431 7432)
NGINX_PORTS=(7441 7442)

# ---- medians over the rounds; computations' range (over all rounds); targets -------------------
report() {
    awk -v omax="$OTHER_MAX" '
        { split($2, p, "."); row = p[1]; met = substr($2, length(row) + 2)
          if (met == "busy_before") { busy[$1 " " row] = $3 }
          if (!(row in seen)) { seen[row] = 1; rows[nr++] = row }
          if (!((row " " met) in ms)) { ms[row " " met] = 1; mets[row] = mets[row] " " met }
          vals[row " " met] = vals[row " " met] " " $3; rnd[row " " met] = rnd[row " " met] " " $1 }
        # the values of the rounds to use: the undisturbed ones, or all when fewer than half are
        function use(row, met,    a, r, k, i, out, nc) {
            k = split(vals[row " " met], a, " "); split(rnd[row " " met], r, " "); out = ""; nc = 0
            for (i = 1; i <= k; i++) if (busy[r[i] " " row] + 0 <= omax) { out = out " " a[i]; nc++ }
            clean[row] = nc "/" k
            return nc * 2 >= k ? out : vals[row " " met]
        }
        function median(s,    a, m, i, j, t) {
            m = split(s, a, " ")
            for (i = 2; i <= m; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] + 0 > t + 0; j--) a[j + 1] = a[j]; a[j + 1] = t }
            return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
        }
        END {
            for (i = 0; i < nr; i++) {
                row = rows[i]; m = split(mets[row], ml, " ")
                for (j = 1; j <= m; j++) printf "RESULT stampede.%s.%s=%s\n", row, ml[j], median(use(row, ml[j]))
                printf "RESULT stampede.%s.clean_rounds=%s\n", row, clean[row]
                k = split(vals[row " computations"], c, " "); lo = c[1]; hi = c[1]
                for (x = 2; x <= k; x++) { if (c[x] + 0 < lo + 0) lo = c[x]; if (c[x] + 0 > hi + 0) hi = c[x] }
                printf "RESULT stampede.%s.computations_min=%s\nRESULT stampede.%s.computations_max=%s\n", row, lo, row, hi
                k = split(vals[row " errors"], c, " "); s = 0
                for (x = 1; x <= k; x++) s += c[x]
                printf "RESULT stampede.%s.errors_total=%d\n", row, s
            }
        }' "$OUT/raw.txt" >"$OUT/results.txt"

    val() { sed -n "s/^RESULT stampede\.$1=//p" "$OUT/results.txt"; }
    {
        echo
        echo "== bench/stampede: medians of $ROUNDS interleaved round(s); computation ${COMPUTE_MS} ms"
        printf '%-24s %13s %9s %9s %9s %7s %6s\n' row computations p50_ms p99_ms max_ms errors clean
        for entry in "${ALL[@]}"; do
            read -r kind nodes n <<<"$entry"
            row=${kind}_${nodes}node_$n
            [ -n "$(val "$row.p50_ms")" ] || continue
            cmin=$(val "$row.computations_min")
            cmax=$(val "$row.computations_max")
            if [ "$cmin" = "$cmax" ]; then comp=$cmin; else comp="$cmin-$cmax"; fi
            printf '%-24s %13s %9.3f %9.3f %9.3f %7s %6s\n' "$row" "$comp" "$(val "$row.p50_ms")" \
                "$(val "$row.p99_ms")" "$(val "$row.max_ms")" "$(val "$row.errors_total")" \
                "$(val "$row.clean_rounds")"
        done
        echo "(computations: the range over all rounds; latencies: medians of the undisturbed rounds;"
        echo " errors: over all rounds; clean: undisturbed rounds, other processes <= $OTHER_MAX CPUs)"
        echo
        limit=$((COMPUTE_MS + 10))
        for entry in "${ALL[@]}"; do
            read -r kind nodes n <<<"$entry"
            row=${kind}_${nodes}node_$n
            [ -n "$(val "$row.p50_ms")" ] || continue
            case $kind in
            strata_lease) want=1 ;;
            varnish | nginx_lock) want=$nodes ;;
            *) continue ;;
            esac
            cmin=$(val "$row.computations_min")
            cmax=$(val "$row.computations_max")
            p99=$(val "$row.p99_ms")
            if [ "$cmin" = "$want" ] && [ "$cmax" = "$want" ]; then v=met; else v="NOT met"; fi
            echo "target: $row: exactly $want computation(s) in every round: $cmin-$cmax -> $v"
            if awk -v p="$p99" -v l="$limit" 'BEGIN { exit !(p <= l) }'; then v=met; else v="NOT met"; fi
            echo "target: $row: waiter p99 <= $limit ms: $p99 ms -> $v"
        done
    } | tee "$OUT/summary.txt"
}

ALL=()
for kind in "${KINDS[@]}"; do
    for nodes in 1 2; do
        for n in "${NS[@]}"; do ALL+=("$kind $nodes $n"); done
    done
done

if [ -n "${REPORT:-}" ]; then
    OUT=$REPORT
    report
    exit 0
fi

ensure_pkgs varnish nginx-light redis-server redis-tools util-linux curl

cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSTRATA_BENCH=ON >/dev/null
cmake --build "$BUILD_DIR" -j2 --target strata_cli bench_stampede stampede_origin >/dev/null
BUILD_DIR=$(cd "$BUILD_DIR" && pwd)
STRATA=$BUILD_DIR/strata
CLIENT=$BUILD_DIR/bench_stampede
ORIGIN=$BUILD_DIR/stampede_origin

STAMP=$(date +%Y%m%d-%H%M%S)
OUT=${OUT:-$ROOT/bench/results/stampede-$STAMP}
mkdir -p "$OUT"
: >"$OUT/raw.txt"
: >"$OUT/warnings.txt"

TMP=$(mktemp -d /tmp/bench-stampede-XXXXXX)
chmod 755 "$TMP"
cleanup() {
    stop_all
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for p in "$REDIS_PORT" "${STRATA_PORTS[@]}" "$ORIGIN_PORT" "${VARNISH_PORTS[@]}" \
    "${VARNISH_ADMIN[@]}" "${NGINX_PORTS[@]}"; do
    if [ -n "$(ss -Htln "sport = :$p")" ]; then
        echo "bench/stampede: port $p is already in use" >&2
        exit 1
    fi
done

{
    machine_lines "$BUILD_DIR"
    echo "redis-server: $(redis-server --version | sed 's/^Redis server //')"
    echo "varnish: $(varnishd -V 2>&1 | head -n1)"
    echo "nginx: $(nginx -v 2>&1 | sed 's/^nginx version: //')"
    echo "libevent: $(pkg-config --modversion libevent)"
    echo "rounds: $ROUNDS ns: ${NS[*]} rows: ${KINDS[*]} compute: ${COMPUTE_MS} ms quick: $QUICK"
} | tee "$OUT/machine.txt"

# ---- the servers: started once, idle between rows; every row uses fresh keys -------------------
start_server redis redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
    --dir "$TMP" --daemonize no
wait_port "$REDIS_PORT" "$SPID"
for i in 0 1; do
    start_server "strata$i" env REDIS_URL="redis://127.0.0.1:$REDIS_PORT" STRATA_WORKERS=1 \
        STRATA_LISTEN="127.0.0.1:${STRATA_PORTS[$i]}" "$STRATA" serve
    wait_port "${STRATA_PORTS[$i]}" "$SPID"
done
start_server origin "$ORIGIN" --port "$ORIGIN_PORT" --delay-ms "$COMPUTE_MS"
wait_port "$ORIGIN_PORT" "$SPID"
fill "$PEERS/varnish.vcl.in" "$TMP/varnish.vcl" "ORIGIN=$ORIGIN_PORT"
for i in 0 1; do
    start_server "varnish$i" varnishd -F -j none -n "$TMP/varnish$i" \
        -a "127.0.0.1:${VARNISH_PORTS[$i]}" -T "127.0.0.1:${VARNISH_ADMIN[$i]}" \
        -f "$TMP/varnish.vcl" -s malloc,256m
    wait_port "${VARNISH_PORTS[$i]}" "$SPID"
    fill "$PEERS/nginx-cache-lock.conf.in" "$TMP/nginx$i.conf" "TMP=$TMP" "NAME=nginx$i" \
        "PORT=${NGINX_PORTS[$i]}" "ORIGIN=$ORIGIN_PORT"
    start_server "nginx$i" nginx -p "$TMP" -c "$TMP/nginx$i.conf"
    wait_port "${NGINX_PORTS[$i]}" "$SPID"
done
echo "servers up (CPU 1): redis $REDIS_PORT, strata ${STRATA_PORTS[*]}, origin $ORIGIN_PORT," \
    "varnish ${VARNISH_PORTS[*]}, nginx ${NGINX_PORTS[*]}"

origin_count() { curl -sf "http://127.0.0.1:$ORIGIN_PORT/count"; }

# warm-up, unmeasured: a lease cycle and a naive cycle on each strata (Redis loads its scripts;
# the first lease after a start is slower), a request through each proxy.
for p in "${STRATA_PORTS[@]}"; do
    taskset -c 0 "$CLIENT" --mode lease --n 10 --compute-ms "$COMPUTE_MS" \
        --path "/v1/cache/stampede/warm-lease-$p" "127.0.0.1:$p" >/dev/null
    taskset -c 0 "$CLIENT" --mode naive --n 10 --compute-ms "$COMPUTE_MS" \
        --path "/v1/cache/stampede/warm-naive-$p" "127.0.0.1:$p" >/dev/null
done
for p in "${VARNISH_PORTS[@]}" "${NGINX_PORTS[@]}"; do
    curl -sf -o /dev/null "http://127.0.0.1:$p/warm-$p"
done

# ---- one row ------------------------------------------------------------------------------------
# run_row KIND NODES N: one stampede on a fresh key; prints "ROW.metric value" lines.
run_row() {
    local kind=$1 nodes=$2 n=$3 row mode path targets=() ports=() c0 c1 f i
    row=${kind}_${nodes}node_$n
    case $kind in
    strata_lease) mode=lease ports=("${STRATA_PORTS[@]}") ;;
    naive) mode=naive ports=("${STRATA_PORTS[@]}") ;;
    varnish) mode=proxy ports=("${VARNISH_PORTS[@]}") ;;
    nginx_lock) mode=proxy ports=("${NGINX_PORTS[@]}") ;;
    esac
    for ((i = 0; i < nodes; i++)); do targets+=("127.0.0.1:${ports[$i]}"); done
    path=/stampede/r$ROUND-$row-$$-$RANDOM
    [ "$mode" = proxy ] || path=/v1/cache$path
    f=$OUT/$row.r$ROUND.txt
    c0=$(origin_count)
    taskset -c 0 "$CLIENT" --mode "$mode" --n "$n" --compute-ms "$COMPUTE_MS" --path "$path" \
        "${targets[@]}" >"$f"
    c1=$(origin_count)
    if [ "$mode" = proxy ]; then
        # the origin counts the computations; the client's own count (0) is replaced
        sed -i "s/^computations=.*/computations=$((c1 - c0))/" "$f"
    fi
    echo "path=$path" >>"$f"
    awk -F= -v row="$row" '$1 ~ /^(computations|waiters|errors|p50_ms|p99_ms|max_ms|holder_get_ms|drain_ms|span_ms|send_spread_ms)$/ {
        print row "." $1 " " $2 }' "$f"
    if grep -q '^first_error=' "$f"; then
        echo "round $ROUND: $row: $(sed -n 's/^first_error=//p' "$f") (errors: $(sed -n 's/^errors=//p' "$f"))" \
            >>"$OUT/warnings.txt"
    fi
}

for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
    echo "== round $ROUND/$ROUNDS"
    # rotate the order each round, so no row always runs first or after the same neighbour
    for ((j = 0; j < ${#ALL[@]}; j++)); do
        read -r kind nodes n <<<"${ALL[$(((j + ROUND - 1) % ${#ALL[@]}))]}"
        busy=$(wait_quiet "${kind}_${nodes}node_$n")
        echo "$ROUND ${kind}_${nodes}node_$n.busy_before $busy" >>"$OUT/raw.txt"
        run_row "$kind" "$nodes" "$n" | while read -r name value; do
            echo "$ROUND $name $value" >>"$OUT/raw.txt"
            echo "$name $value"
        done | awk -v busy="$busy" '
            { v[$1] = $2; split($1, p, "."); row = p[1] }
            END { if (row != "")
                printf "  %-24s computations %4d  p50 %8.3f ms  p99 %8.3f ms  max %8.3f ms  errors %d  (busy before: %s)\n",
                    row, v[row ".computations"], v[row ".p50_ms"], v[row ".p99_ms"], v[row ".max_ms"],
                    v[row ".errors"], busy }'
        # let the closed connections' state settle before the next stampede
        sleep 0.5
    done
done

report

if [ -s "$OUT/warnings.txt" ]; then
    echo "== warnings"
    sort -u "$OUT/warnings.txt"
fi
echo "(raw output in $OUT)"
