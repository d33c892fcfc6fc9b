#!/usr/bin/env bash
# bench/l2/run_topology.sh: strata's shared tier over TLS and on a Redis Cluster, beside
# redis-benchmark at the same concurrency (issue 16's rows), in one run, rows interleaved round by
# round; medians and ratios. bench/l2/run.sh is the plain single-node table.
#
# Usage: bench/l2/run_topology.sh [BUILD_DIR]   (default: build)
# Environment: ROUNDS (default 5), QUICK=1 (1 round, few ops), KEYS (default 100000), OUT (default
# bench/results/l2-topology-<date-time>/).
#
# Servers: one redis-server listening on a plain port and a TLS port (a CA and a certificate made
# here with openssl), and a 3-primary Redis Cluster (redis-cli --cluster create), every server
# pinned to CPU 1 and every client to CPU 0 (the machine has 2 cores: the three primaries share
# one, which bounds the cluster rows for both clients alike).
# Rows, each: set then get, 100-byte values, KEYS keys drawn uniformly:
#   rb_plain / rb_tls / rb_cluster        redis-benchmark -c 50 -P 16 (--tls, --cluster)
#   strata_plain / strata_tls / strata_cluster  bench_l2 --mode async, 800 calls in flight
# Targets (issue 16): strata >= 0.8x redis-benchmark in each row; TLS costs strata no more than it
# costs redis-benchmark (strata_tls/strata_plain >= rb_tls/rb_plain).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD_DIR=${1:-$ROOT/build}
# shellcheck source=bench/l2/build.sh
. "$ROOT/bench/l2/build.sh"
bench_l2_prepare "$ROOT" "$BUILD_DIR"

ROUNDS=${ROUNDS:-5}
KEYS=${KEYS:-100000}
N_PIPE=1000000 # per redis-benchmark test
N_DEEP=1000000 # per bench_l2 operation
if [ "${QUICK:-0}" = 1 ]; then ROUNDS=1 KEYS=10000 N_PIPE=100000 N_DEEP=100000; fi
STAMP=$(date +%Y%m%d-%H%M%S)
OUT=${OUT:-$ROOT/bench/results/l2-topology-$STAMP}
mkdir -p "$OUT"
: >"$OUT/raw.txt"

TMP=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A free port whose cluster bus port (10000 above) is free too.
port() {
    python3 -c 'import random, socket
while True:
    p = random.randint(20000, 44999)
    try:
        for q in (p, p + 10000):
            s = socket.socket(); s.bind(("127.0.0.1", q)); s.close()
        print(p); break
    except OSError:
        pass'
}

# ---- certificates: a CA and a server certificate for 127.0.0.1 ----------------------------------
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=bench-ca -keyout "$TMP/ca.key" \
    -out "$TMP/ca.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout "$TMP/srv.key" \
    -out "$TMP/srv.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' >"$TMP/ext"
openssl x509 -req -in "$TMP/srv.csr" -CA "$TMP/ca.crt" -CAkey "$TMP/ca.key" -CAcreateserial \
    -days 2 -extfile "$TMP/ext" -out "$TMP/srv.crt" 2>/dev/null
TLSARGS=(--tls-cert-file "$TMP/srv.crt" --tls-key-file "$TMP/srv.key" --tls-ca-cert-file
    "$TMP/ca.crt" --tls-auth-clients no)

server() { # server DIR ARGS...: a redis-server on CPU 1, waited for on its first --port
    local dir=$1 p
    shift
    mkdir -p "$dir"
    taskset -c 1 redis-server --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
        --logfile "$dir/redis.log" --daemonize no "$@" &
    PIDS+=($!)
    p=$2
    for _ in $(seq 100); do
        [ "$(redis-cli -p "$p" ping 2>/dev/null)" = PONG ] && return 0
        sleep 0.1
    done
    echo "run_topology.sh: redis-server on $p would not start" >&2
    exit 1
}

P=$(port)
T=$(port)
server "$TMP/single" --port "$P" --tls-port "$T" "${TLSARGS[@]}"
C=()
for i in 1 2 3; do
    C+=("$(port)")
    server "$TMP/c$i" --port "${C[-1]}" --cluster-enabled yes --cluster-config-file nodes.conf
done
redis-cli --cluster create "127.0.0.1:${C[0]}" "127.0.0.1:${C[1]}" "127.0.0.1:${C[2]}" \
    --cluster-yes >"$OUT/cluster-create.txt" 2>&1
for _ in $(seq 200); do # every node must say ok: one that does not yet answers CLUSTERDOWN
    ok=0
    for c in "${C[@]}"; do
        redis-cli -p "$c" cluster info | grep -q cluster_state:ok && ok=$((ok + 1))
    done
    [ "$ok" = 3 ] && break
    sleep 0.1
done
SEEDS=127.0.0.1:${C[0]},127.0.0.1:${C[1]}

{
    echo "date: $(date)"
    echo "nproc: $(nproc)"
    echo "cpu: $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n1)"
    echo "commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none)"
    echo "redis-server: $(redis-server --version | sed 's/^Redis server //')"
    echo "pinning: every redis-server on CPU 1 (the 3 primaries share it), clients on CPU 0"
    echo "rounds: $ROUNDS keys: $KEYS"
} | tee "$OUT/machine.txt"

# strata's keys, in its format, on both (redis-benchmark's are written by its own set runs)
taskset -c 0 "$BENCH" --url "redis://127.0.0.1:$P" --mode preload --keys "$KEYS" >>"$OUT/preload.txt"
taskset -c 0 "$BENCH" --cluster "$SEEDS" --mode preload --keys "$KEYS" >>"$OUT/preload.txt"

rb() { # rb ROW ARGS...: redis-benchmark set then get, -c 50 -P 16
    local row=$1 op rate
    shift
    for op in set get; do
        rate=$(taskset -c 0 redis-benchmark -h 127.0.0.1 -t "$op" -d 100 -r "$KEYS" -n "$N_PIPE" \
            -c 50 -P 16 -q "$@" 2>&1 | tr '\r' '\n' | tee -a "$OUT/$row.txt" |
            awk -v OP="${op^^}" '$1 == OP ":" && $3 == "requests" { r = $2 } END { print r }')
        echo "$row.$op $rate"
    done
}
sb() { # sb ROW ARGS...: bench_l2 async, 800 in flight
    local row=$1
    shift
    taskset -c 0 "$BENCH" --keys "$KEYS" --row "$row" --mode async --depth 800 --ops "$N_DEEP" \
        "$@" | tee -a "$OUT/$row.txt" | sed -n 's/^RESULT l2\.\([^=]*\)=\(.*\)$/\1 \2/p'
}
row_rb_plain() { rb rb_plain -p "$P"; }
row_rb_tls() { rb rb_tls -p "$T" --tls --cacert "$TMP/ca.crt"; }
row_rb_cluster() { rb rb_cluster -p "${C[0]}" --cluster; }
row_strata_plain() { sb strata_plain --url "redis://127.0.0.1:$P"; }
row_strata_tls() { sb strata_tls --url "rediss://127.0.0.1:$T" --tls-ca "$TMP/ca.crt"; }
row_strata_cluster() { sb strata_cluster --cluster "$SEEDS"; }
ROWS=(rb_plain strata_plain rb_tls strata_tls rb_cluster strata_cluster)

for ((r = 1; r <= ROUNDS; r++)); do
    echo "== round $r/$ROUNDS"
    for ((i = 0; i < ${#ROWS[@]}; i++)); do
        row=${ROWS[$(((i + r - 1) % ${#ROWS[@]}))]}
        "row_$row" | while read -r name value; do
            printf '  %-24s %12.0f ops/s\n' "$name" "$value" >&2
            echo "$r $name $value" >>"$OUT/raw.txt"
        done
    done
done

# ---- medians and ratios ------------------------------------------------------------------------
awk '
    { v[$2] = v[$2] " " $3 }
    function median(s,    a, m, i, j, t) {
        m = split(s, a, " ")
        for (i = 2; i <= m; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] + 0 > t + 0; j--) a[j + 1] = a[j]; a[j + 1] = t }
        return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
    }
    END {
        for (x in v) { med[x] = median(v[x]); printf "RESULT l2t.%s=%.0f\n", x, med[x] }
        split("get set", ops, " ")
        for (k = 1; k <= 2; k++) {
            o = ops[k]
            split("plain tls cluster", ts, " ")
            for (t = 1; t <= 3; t++)
                if (med["rb_" ts[t] "." o] > 0)
                    printf "RESULT l2t.ratio.strata_vs_rb_%s.%s=%.3f\n", ts[t], o,
                        med["strata_" ts[t] "." o] / med["rb_" ts[t] "." o]
            if (med["strata_plain." o] > 0 && med["rb_plain." o] > 0) {
                printf "RESULT l2t.tls_keeps.strata.%s=%.3f\n", o, med["strata_tls." o] / med["strata_plain." o]
                printf "RESULT l2t.tls_keeps.rb.%s=%.3f\n", o, med["rb_tls." o] / med["rb_plain." o]
            }
        }
    }' "$OUT/raw.txt" | sort >"$OUT/results.txt"
{
    echo
    echo "== bench/l2/run_topology.sh: medians of $ROUNDS interleaved round(s), ops/s"
    cat "$OUT/results.txt"
    echo "(targets: each ratio.strata_vs_rb_* >= 0.8; tls_keeps.strata >= tls_keeps.rb)"
    echo "(raw output in $OUT)"
} | tee "$OUT/summary.txt"
