#!/usr/bin/env bash
# bench/run.sh: runs strata's benchmarks, pinned, and keeps their figures under bench/results/.
#
# Usage: bench/run.sh BUILD_DIR [SECTION...]      (default: every section in SECTIONS)
# Environment: ROUNDS (throughput rounds per run, medians reported; default 5), QUICK=1 (a smoke
# run: each benchmark's --quick), BENCH_ARGS (extra arguments for every benchmark binary),
# QUIET_WAIT (seconds a timed run waits for other processes to leave the CPUs; default 120).
#
# Each benchmark is a section: a function section_<name> that runs its binary, writes its raw
# output to $OUT/<name>*.txt and appends its `RESULT name=value` lines to $OUT/results.txt. After
# all sections, the script prints the summary with the ratios derived from it (scaling, strata vs
# its peer). Adding a benchmark is adding a function and its name below. Sections with their own
# script (bench/l2, bench/http, bench/ratelimit, bench/stampede, bench/proxy, bench/python,
# bench/llm) run it with
# OUT=$OUT/<name>: it writes its own results.txt there (already medians), whose RESULT lines are
# folded into the summary here.
set -euo pipefail

SECTIONS=(l1 l2 l2_topology http ratelimit stampede proxy python llm)

usage() {
    sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
}

[ $# -ge 1 ] || usage
BUILD=$(cd "$1" && pwd)
shift
[ $# -ge 1 ] && SECTIONS=("$@")

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-5}
QUICK=${QUICK:-0}
QUIET_WAIT=${QUIET_WAIT:-120}
read -r -a EXTRA <<<"${BENCH_ARGS:-}"
COMMON=()
[ "$QUICK" = 1 ] && COMMON+=(--quick)
COMMON+=("${EXTRA[@]}")

STAMP=$(date +%Y%m%d-%H%M%S)
OUT=$ROOT/bench/results/$STAMP
mkdir -p "$OUT"
: >"$OUT/results.txt"

# ---- machine ---------------------------------------------------------------------------------
{
    echo "date: $(date)"
    echo "nproc: $(nproc)"
    echo "cpu: $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n1)"
    echo "memory: $(free -h | awk '/^Mem:/ {print $2}')"
    echo "kernel: $(uname -r)"
    echo "commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none)"
    echo "build: $BUILD ($(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$BUILD/CMakeCache.txt" 2>/dev/null || echo '?'))"
    echo "rounds: $ROUNDS quick: $QUICK quiet_wait: ${QUIET_WAIT}s"
} | tee "$OUT/machine.txt"

# busy_cpus: how many CPUs' worth of time other processes used over the last second, from
# /proc/stat. Benchmarks share the machine with whatever else runs; a busy machine is recorded
# and warned about, never silently measured.
busy_cpus() {
    local a b
    a=$(head -n1 /proc/stat)
    sleep 1
    b=$(head -n1 /proc/stat)
    awk -v a="$a" -v b="$b" -v n="$(nproc)" 'BEGIN {
        split(a, x); split(b, y); tot = 0; idle = 0
        for (i = 2; i <= 9; i++) tot += y[i] - x[i]
        idle = (y[5] - x[5]) + (y[6] - x[6])
        printf "%.2f", (tot > 0 ? n * (tot - idle) / tot : 0) }'
}

# run NAME CMD...: runs a timed benchmark, shows and keeps its output, collects its RESULT lines.
# run_untimed NAME CMD...: the same for a run whose figures do not depend on time (hit ratios).
# A timed run first waits up to QUIET_WAIT seconds for other processes to leave the CPUs.
run() {
    local name=$1 busy waited=0
    while busy=$(busy_cpus) && awk -v b="$busy" 'BEGIN { exit !(b > 0.2) }'; do
        if [ "$waited" -ge "$QUIET_WAIT" ]; then
            echo "run.sh: WARNING: the machine is busy ($busy CPUs in use before $name, after" \
                "${waited}s of waiting): its timings are not comparable" |
                tee -a "$OUT/warnings.txt" >&2
            break
        fi
        [ "$waited" -eq 0 ] && echo "run.sh: waiting for a quiet machine ($busy CPUs busy)..." >&2
        sleep 4
        waited=$((waited + 5))
    done
    run_untimed "$@"
    echo "(before this run other processes used $busy CPUs)" >>"$OUT/$name.txt"
}

run_untimed() {
    local name=$1
    shift
    echo "\$ $*" | tee "$OUT/$name.txt"
    "$@" | tee -a "$OUT/$name.txt"
    grep '^RESULT ' "$OUT/$name.txt" | sed 's/^RESULT //' >>"$OUT/results.txt" || true
}

need() {
    if [ ! -x "$1" ]; then
        echo "run.sh: $1 is not built (cmake --build $BUILD --target $(basename "$1"))" >&2
        exit 1
    fi
}

# ---- sections --------------------------------------------------------------------------------

# L1: throughput pinned to one CPU for one thread and to two CPUs for two threads (taskset; the
# bench does not pin its own threads, the scheduler spreads two busy threads over two CPUs), each
# run doing ROUNDS rounds and reporting medians; then the hit-ratio traces, which are
# single-threaded and deterministic (one run is enough). The peer is the plain LRU inside the bench.
section_l1() {
    local bin=$BUILD/bench_l1
    need "$bin"
    echo "== l1"
    run l1_1t taskset -c 0 "$bin" --mode throughput --threads 1 --rounds "$ROUNDS" "${COMMON[@]}"
    if [ "$(nproc)" -ge 2 ]; then
        run l1_2t taskset -c 0,1 "$bin" --mode throughput --threads 2 --rounds "$ROUNDS" \
            "${COMMON[@]}"
    else
        echo "run.sh: one CPU only, no 2-thread run" >&2
    fi
    run_untimed l1_hitratio taskset -c 0 "$bin" --mode hitratio "${COMMON[@]}"
}

# sub NAME [SCRIPT]: runs SCRIPT (default bench/NAME/run.sh; its own rounds, interleaving,
# quiet-machine waits and medians) with OUT=$OUT/NAME, keeps its console output in $OUT/NAME.txt,
# and folds its RESULT lines and its warnings into this run's.
sub() {
    local name=$1 script=${2:-bench/$1/run.sh} rc=0
    echo "== $name"
    mkdir -p "$OUT/$name"
    OUT=$OUT/$name ROUNDS=$ROUNDS QUICK=$QUICK QUIET_WAIT=$QUIET_WAIT \
        bash "$ROOT/$script" "$BUILD" 2>&1 | tee "$OUT/$name.txt" || rc=$?
    if [ "$rc" -ne 0 ]; then
        echo "run.sh: $script failed (exit $rc); see $OUT/$name.txt" |
            tee -a "$OUT/warnings.txt" >&2
    fi
    if [ -f "$OUT/$name/results.txt" ]; then
        grep '^RESULT ' "$OUT/$name/results.txt" | sed 's/^RESULT //' >>"$OUT/results.txt" || true
    fi
    if [ -s "$OUT/$name/warnings.txt" ]; then
        sort -u "$OUT/$name/warnings.txt" | sed "s/^/$name: /" >>"$OUT/warnings.txt"
    fi
}

# L2: bench/l2/run.sh (strata's Redis tier against redis-benchmark and bare hiredis on one
# redis-server it starts itself; its own ratios, e.g. l2.ratio.async_p16_vs_redis_benchmark_p16).
section_l2() { sub l2; }
# L2 over TLS and on a 3-primary cluster: bench/l2/run_topology.sh, beside redis-benchmark --tls
# and --cluster (ratios l2t.ratio.strata_vs_rb_*, l2t.tls_keeps.*).
section_l2_topology() { sub l2_topology bench/l2/run_topology.sh; }

# HTTP: bench/http/run.sh (strata serve against Varnish, nginx, webdis, FastAPI; wrk).
section_http() { sub http; }

# Rate limits: bench/ratelimit/run.sh (the library and HTTP against redis-benchmark EVALSHA).
section_ratelimit() { sub ratelimit; }

# Stampedes: bench/stampede/run.sh (N concurrent misses on one cold key on 1 and 2 instances:
# strata's leases against a naive cache-aside client, Varnish and nginx proxy_cache_lock).
section_stampede() { sub stampede; }

# Caching reverse proxy: bench/proxy/run.sh (strata serve --upstream against Varnish and nginx
# proxy_cache in front of one counting origin: hits, misses, a cold-key burst of 1,000 clients).
section_proxy() { sub proxy; }

# Python: bench/python/run.sh (a cached get through the Python client, sync and asyncio, against
# redis-py's GET and the seed services' redis-py cache-aside wrapper with JSON; one call at a time).
section_python() { sub python; }

# LLM gateway: bench/llm/run.sh (strata serve --llm-upstream against FastAPI + redis-py
# cache-aside and nginx caching POSTs by body, in front of one fake OpenAI upstream: cached chat
# answers and embedding batches, streams' time to first byte, a partially cached batch).
section_llm() { sub llm; }

for s in "${SECTIONS[@]}"; do
    if ! declare -F "section_$s" >/dev/null; then
        echo "run.sh: no section '$s' (have: $(declare -F | sed -n 's/^declare -f section_//p' | tr '\n' ' '))" >&2
        exit 2
    fi
    "section_$s"
done

# ---- summary: the figures (the last run's value wins for a name two runs print, e.g. RSS after
# the 2-thread run) and the ratios between them ----------------------------------------------
awk -F= '
    { if (!($1 in v)) order[n++] = $1; v[$1] = $2 }
    function ratio(name, a, b) {
        if ((a in v) && (b in v) && v[b] + 0 != 0) {
            if (!(name in v)) order[n++] = name
            v[name] = sprintf("%.3f", v[a] / v[b])
        }
    }
    END {
        ratio("l1.scaling_2t", "l1.ops_2t", "l1.ops_1t")
        ratio("l1.get_scaling_2t", "l1.get_ops_2t", "l1.get_ops_1t")
        ratio("l1.hit_ratio.strata_over_lru", "l1.hit_ratio.strata", "l1.hit_ratio.lru")
        ratio("l1.hit_ratio.strata_over_optimum", "l1.hit_ratio.strata", "l1.hit_ratio.optimum")
        ratio("l1.scan_hit_ratio.strata_over_lru", "l1.scan_hit_ratio.strata", "l1.scan_hit_ratio.lru")
        for (i = 0; i < n; i++) print "RESULT " order[i] "=" v[order[i]]
    }' "$OUT/results.txt" >"$OUT/summary.txt"

echo "== summary (medians of $ROUNDS rounds where rounds apply; raw output in $OUT)"
cat "$OUT/summary.txt"
if [ -s "$OUT/warnings.txt" ]; then
    echo "== warnings"
    cat "$OUT/warnings.txt"
fi
ln -sfn "$STAMP" "$ROOT/bench/results/latest"
