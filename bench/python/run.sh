#!/usr/bin/env bash
# bench/python/run.sh: a cached get from Python through strata (the client's Strata and
# AsyncStrata, keep-alive) against redis-py's GET on Redis directly and against the seed
# services' redis-py cache-aside wrapper (bench/python/seed_cache.py), in one run: gets/s and
# p50/p99 per call, one call at a time; rows interleaved round by round; medians.
#
# Usage: bench/python/run.sh [BUILD_DIR]     (default: build, at the top of the repository)
# Environment: ROUNDS (default 5), QUICK=1 (a smoke run: 1 round, 2 s runs, no profile), DURATION
# (seconds per measured run, 5), WARMUP (seconds of unmeasured calls first, 1), OUT (default
# bench/results/python-<date-time>/), QUIET_WAIT (seconds to wait before each row for other
# processes to leave the CPUs, 30), OTHER_MAX (a run is disturbed when other processes used more
# CPUs than this meanwhile; left out of the medians unless fewer than half are clean; 0.3),
# PROFILE (1: cProfile the strata rows whose target is missed, after the rounds; default 1),
# ROWS (a subset of the rows below), PORTS="STRATA REDIS" (fixed loopback ports instead of free
# ones), REPORT=DIR (no run: recompute DIR/results.txt and DIR/summary.txt from DIR/raw.txt).
#
# Pinning (2 cores): strata serve (STRATA_WORKERS=1, REDIS_URL set: a hit is answered from its
# memory tier, X-Cache: HIT-L1, checked first) and redis-server on CPU 1; the Python client on
# CPU 0, Debian's /usr/bin/python3 with redis-py 4.3.4 (python3-redis). Each row is a process of
# bench/python/bench_get.py (see its header): one connection, one call after the other, each
# call timed; the client package is imported from this checkout with its defaults.
# Rows:
#   redis_get, async_redis_get        redis-py's GET of 100 B (sync, redis.asyncio)
#   strata_get, async_strata_get      Strata.get / AsyncStrata.get of 100 B (bytes)
#   cacheaside_get_json               seed_cache.CacheManager.get: GET + json.loads (197 B JSON)
#   strata_get_json                   Strata.get of the same object (application/json)
#   cacheaside_cached                 a @cache_result(ttl=, key_prefix=) function, hit
#   strata_cached, async_strata_cached  a @cache.cached(ns=, ttl=) function, hit (lease GET)
# Targets (issue 18): strata's get within 1.5x of redis-py's own round trip per call (mean time
# per call, sync against sync, asyncio against asyncio), and faster than the cache-aside
# wrapper with JSON (strata_get_json against cacheaside_get_json, strata_cached against
# cacheaside_cached).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/bench/python
BUILD_DIR=${1:-$ROOT/build}
# shellcheck source=bench/http/lib.sh
. "$ROOT/bench/http/lib.sh"

PY=/usr/bin/python3 # Debian's python3, where apt installs python3-redis
ROUNDS=${ROUNDS:-5}
QUICK=${QUICK:-0}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
QUIET_WAIT=${QUIET_WAIT:-30}
OTHER_MAX=${OTHER_MAX:-0.3}
PROFILE=${PROFILE:-1}
if [ "$QUICK" = 1 ]; then
    ROUNDS=1 DURATION=2 WARMUP=0.5 PROFILE=0
fi

ALL_ROWS=(redis_get strata_get async_redis_get async_strata_get cacheaside_get_json
    strata_get_json cacheaside_cached strata_cached async_strata_cached)
read -r -a ROWS <<<"${ROWS:-${ALL_ROWS[*]}}"
for row in "${ROWS[@]}"; do
    case " ${ALL_ROWS[*]} " in
    *" $row "*) ;;
    *) echo "bench/python: no row '$row' (have: ${ALL_ROWS[*]})" >&2 && exit 2 ;;
    esac
done

# ---- the report: medians over the rounds, ratios, targets ---------------------------------------
report() {
    median_table "$OUT/raw.txt" "$OTHER_MAX" "$ROUNDS" python >"$OUT/results.txt" 2>"$OUT/medians.txt"
    grep '^warn ' "$OUT/medians.txt" | sed 's/^warn //' >>"$OUT/warnings.txt" || true

    val() { sed -n "s/^RESULT python\.$1=//p" "$OUT/results.txt"; }
    ratio() { # NAME A B: RESULT python.ratio.NAME = A's gets/s / B's
        local a b
        a=$(val "$2.rps")
        b=$(val "$3.rps")
        if [ -n "$a" ] && [ -n "$b" ]; then
            awk -v a="$a" -v b="$b" -v n="$1" 'BEGIN { if (b > 0) printf "RESULT python.ratio.%s=%.3f\n", n, a / b }' \
                >>"$OUT/results.txt"
        fi
        return 0
    }
    # time per call, relative to redis-py's (>1: slower)
    ratio time_strata_get_vs_redis_get redis_get strata_get
    ratio time_async_strata_get_vs_async_redis_get async_redis_get async_strata_get
    ratio time_async_strata_get_vs_redis_get redis_get async_strata_get
    # gets/s against the cache-aside wrapper (>1: faster)
    ratio strata_get_json_vs_cacheaside_get_json strata_get_json cacheaside_get_json
    ratio strata_cached_vs_cacheaside_cached strata_cached cacheaside_cached
    ratio async_strata_cached_vs_cacheaside_cached async_strata_cached cacheaside_cached

    {
        echo
        echo "== bench/python: medians of $ROUNDS interleaved round(s); one call at a time," \
            "${DURATION}s runs"
        printf '%-22s %9s %8s %8s %10s %-14s %s\n' row gets/s p50_us p99_us cpu_us/get "cpu s/c/o" ok
        local row
        for row in "${ALL_ROWS[@]}"; do
            [ -n "$(val "$row.rps")" ] || continue
            printf '%-22s %9.0f %8.1f %8.1f %10.1f %-14s %s\n' "$row" "$(val "$row.rps")" \
                "$(val "$row.p50_us")" "$(val "$row.p99_us")" "$(val "$row.cpu_us")" \
                "$(printf '%.2f/%.2f/%.2f' "$(val "$row.server_cpu")" "$(val "$row.client_cpu")" \
                    "$(val "$row.other_cpu")")" \
                "$(sed -n "s/^clean $row //p" "$OUT/medians.txt")"
        done
        echo "(cpu_us/get: the Python process's CPU time per call; cpu s/c/o: CPUs used by the"
        echo " servers (strata serve + redis-server) / the client process / other processes over"
        echo " the whole run; ok: undisturbed rounds, other processes <= $OTHER_MAX CPUs)"
        echo
        verdict() { # NAME OP LIMIT TEXT: ratio OP LIMIT (le or gt)
            local v
            v=$(val "ratio.$1")
            [ -n "$v" ] || { echo "target: $4: no figure"; return 0; }
            if awk -v v="$v" -v l="$3" -v op="$2" 'BEGIN { exit !(op == "le" ? v <= l : v > l) }'; then
                echo "target: $4: $v -> met"
            else
                echo "target: $4: $v -> NOT met"
            fi
        }
        verdict time_strata_get_vs_redis_get le 1.5 "strata_get time per call <= 1.5x redis_get's"
        verdict time_async_strata_get_vs_async_redis_get le 1.5 \
            "async_strata_get time per call <= 1.5x async_redis_get's"
        verdict strata_get_json_vs_cacheaside_get_json gt 1 \
            "strata_get_json faster than cacheaside_get_json"
        verdict strata_cached_vs_cacheaside_cached gt 1 "strata_cached faster than cacheaside_cached"
    } | tee "$OUT/summary.txt"
}

if [ -n "${REPORT:-}" ]; then
    OUT=$REPORT
    ROUNDS=$(awk '$1 > r { r = $1 } END { print r + 0 }' "$OUT/raw.txt")
    : >"$OUT/warnings.txt"
    report
    exit 0
fi

# ---- what it needs ----------------------------------------------------------------------------
ensure_pkgs python3-redis redis-server util-linux curl
"$PY" -c 'import redis' 2>/dev/null || {
    echo "bench/python: $PY cannot import redis (python3-redis is for Debian's python3)" >&2
    exit 1
}

cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD_DIR" -j2 --target strata_cli >/dev/null
BUILD_DIR=$(cd "$BUILD_DIR" && pwd)
STRATA=$BUILD_DIR/strata

STAMP=$(date +%Y%m%d-%H%M%S)
OUT=${OUT:-$ROOT/bench/results/python-$STAMP}
mkdir -p "$OUT"
: >"$OUT/raw.txt"
: >"$OUT/warnings.txt"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/benchpython-XXXXXX")
chmod 755 "$TMP"
cleanup() {
    stop_all
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

{
    machine_lines "$BUILD_DIR"
    echo "python: $("$PY" -V 2>&1) ($PY) redis-py $("$PY" -c 'import redis; print(redis.__version__)')" \
        "(client on CPU 0)"
    echo "redis-server: $(redis-server --version | sed 's/^Redis server //')"
    echo "rounds: $ROUNDS duration: ${DURATION}s warmup: ${WARMUP}s quick: $QUICK"
    echo "rows: ${ROWS[*]}"
} | tee "$OUT/machine.txt"

# ---- the servers: redis-server and strata serve, on CPU 1 ---------------------------------------
read -r SPORT RPORT <<<"${PORTS:-}"
if [ -n "${RPORT:-}" ]; then
    REDIS_PORT=$RPORT
    start_server redis redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' \
        --appendonly no --dir "$TMP" --daemonize no
    REDIS_PID=$SPID
    wait_port "$REDIS_PORT" "$REDIS_PID"
else
    start_redis
fi
PORT=${SPORT:-$(free_port)}
start_server strata env REDIS_URL="redis://127.0.0.1:$REDIS_PORT" STRATA_WORKERS=1 \
    STRATA_LISTEN="127.0.0.1:$PORT" "$STRATA" serve
STRATA_PID=$SPID
wait_port "$PORT" "$STRATA_PID"
URL=http://127.0.0.1:$PORT
echo "servers (CPU 1): strata serve on $PORT (STRATA_WORKERS=1, REDIS_URL), redis-server on $REDIS_PORT"

# A hit is an L1 hit: one value written, then asked until strata answers it from memory.
curl -sf -X PUT --data-binary probe "$URL/v1/cache/bench/probe" >/dev/null
for _ in 1 2 3; do curl -s -o /dev/null "$URL/v1/cache/bench/probe"; done
if ! curl -s -D - -o /dev/null "$URL/v1/cache/bench/probe" | grep -qi '^X-Cache: HIT-L1'; then
    echo "bench/python: strata did not answer a warm key from L1" | tee -a "$OUT/warnings.txt" >&2
fi

# ---- one row, one round: prints "ROUND row.metric value" lines ----------------------------------
run_row() { # ROW ROUND
    local row=$1 round=$2 busy f times real user sys s0 s1 m0 m1
    local servers=("$STRATA_PID" "$REDIS_PID")
    busy=$(wait_quiet "$row")
    f=$OUT/$row.r$round.txt
    s0=$(tree_cpu "${servers[@]}")
    m0=$(machine_busy)
    times=$( { TIMEFORMAT='%R %U %S'; time taskset -c 0 "$PY" "$HERE/bench_get.py" --row "$row" \
        --strata "$URL" --redis-port "$REDIS_PORT" --seconds "$DURATION" --warmup "$WARMUP" \
        >"$f" 2>&1; } 2>&1) || {
        echo "round $round: $row failed: $(tail -n 3 "$f" | tr '\n' ' ')" | tee -a "$OUT/warnings.txt" >&2
        return 0
    }
    m1=$(machine_busy)
    s1=$(tree_cpu "${servers[@]}")
    read -r real user sys <<<"$times"
    sed "s/^/$round /" "$f"
    awk -v r="$real" -v u="$user" -v s="$sys" -v s0="$s0" -v s1="$s1" -v m0="$m0" -v m1="$m1" \
        -v row="$row" -v round="$round" 'BEGIN {
            printf "%s %s.client_cpu %.2f\n", round, row, (u + s) / r
            printf "%s %s.server_cpu %.2f\n", round, row, (s1 - s0) / r
            o = (m1 - m0 - (u + s) - (s1 - s0)) / r
            printf "%s %s.other_cpu %.2f\n", round, row, (o > 0 ? o : 0) }'
    echo "(before: $busy CPUs busy)" >>"$f"
}

for round in $(seq "$ROUNDS"); do
    n=${#ROWS[@]}
    for i in $(seq 0 $((n - 1))); do
        row=${ROWS[$(((i + round - 1) % n))]}
        echo "round $round/$ROUNDS: $row" >&2
        run_row "$row" "$round" | tee -a "$OUT/raw.txt" | grep -E '\.(rps|p50_us|p99_us|other_cpu) ' |
            tr '\n' ' ' >&2
        echo >&2
    done
done

report

# ---- where the time goes: cProfile of a strata row whose target was missed ------------------------
if [ "$PROFILE" = 1 ]; then
    prof() { # ROW
        echo "== profile: cProfile of $1 (profile.$1.txt)"
        taskset -c 0 "$PY" "$HERE/bench_get.py" --row "$1" --strata "$URL" \
            --redis-port "$REDIS_PORT" --seconds "$DURATION" --warmup "$WARMUP" \
            --profile "$OUT/profile.$1.txt"
        sed -n '1,25p' "$OUT/profile.$1.txt"
    }
    for row in strata_get async_strata_get strata_get_json strata_cached; do
        if grep -q "^target: $row .*NOT met" "$OUT/summary.txt"; then prof "$row"; fi
    done
fi

if [ -s "$OUT/warnings.txt" ]; then
    echo "== warnings"
    sort -u "$OUT/warnings.txt"
fi
echo "(raw output in $OUT)"
