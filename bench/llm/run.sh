#!/usr/bin/env bash
# bench/llm/run.sh: strata serve's LLM gateway (--llm-upstream) against the stack the seed
# services run (FastAPI + redis-py cache-aside) and nginx caching POSTs by body, in front of the
# same fake OpenAI-compatible upstream, in one run: cached chat answers and a cached embedding
# batch with wrk (bench/http's method), the time to first byte of streams, and what a partially
# cached embedding batch sends upstream. Rows interleaved round by round; medians.
#
# Usage: bench/llm/run.sh [BUILD_DIR]     (default: build, at the top of the repository)
# Environment: ROUNDS (default 3), QUICK=1 (a smoke run: 1 round, 3 s runs, 20 stream requests,
# no profile), DURATION (seconds per measured run, 10), WARMUP (seconds of unmeasured load first,
# 2), TTFB_N (sequential stream requests per TTFB row, 200), CHUNK_MS (the fake upstream's delay
# between a streamed miss's events, 10), EMBED_DIMS (the embedding rows' dimensions, 256), OUT
# (default bench/results/llm-<date-time>/), QUIET_WAIT (seconds to wait before each row for other
# processes to leave the CPUs, 30), OTHER_MAX (a run is disturbed when other processes used more
# CPUs than this meanwhile; left out of the medians unless fewer than half are clean; 0.3),
# PROFILE (1: perf-profile strata serve and nginx under the chat_1k hit load after the rounds when
# a strata target is missed; default 1), ROWS (a subset of the rows below), REPORT=DIR (no run:
# recompute DIR/results.txt and DIR/summary.txt from DIR/raw*.txt).
#
# Pinning (2 cores): every server on CPU 1 (the gateways, the fake upstream, redis-server), the
# load generators on CPU 0 (wrk: one thread, 50 keep-alive connections; curl for the TTFB rows).
# Every server is started here on a free loopback port, its files in /tmp/benchllm-*, and stopped
# by the exit trap. The upstream is the test origin's fake OpenAI API (build/strata_test_origin,
# tests/origin/fake_openai.c): deterministic answers, X-Origin-Completion-Size pads a chat
# answer's content, X-Origin-Chunk-Delay-Ms spaces a stream's events, GET /__openai counts.
# Rows (a gateway is started for each row and stopped after it; the upstream and Redis once):
#   strata_chat_1k, strata_chat_8k   strata serve --llm-upstream, STRATA_WORKERS=1, memory only:
#                                    one chat request (temperature 0) whose answer's content is
#                                    1 KB / 8 KB, cached (X-Cache: HIT-L1 checked first), under wrk
#   strata_embed_16                  one 16-input embedding batch, every input cached
#   fastapi_chat_{1k,8k}, fastapi_embed_16   bench/peers/fastapi_llm.py under uvicorn (1 worker,
#                                    uvloop, httptools) + redis-server (X-Cache: HIT checked first)
#   nginx_chat_{1k,8k}, nginx_embed_16       nginx 1.22, proxy_cache_methods POST,
#                                    proxy_cache_key $request_body (bench/peers/nginx-llm.conf.in;
#                                    X-Cache-Status: HIT checked first)
#   strata_ttfb_replay               TTFB_N sequential curl requests for the cached 1 KB answer
#                                    with "stream": true (a replayed stream): time_starttransfer
#   strata_ttfb_miss, upstream_ttfb_miss    TTFB_N streamed misses (each a new prompt, CHUNK_MS
#                                    between the events) through strata, and straight from the
#                                    fake upstream: the first byte is not held back by the cache
#   partial_batch_{strata,fastapi,nginx}    a 16-input batch of which 8 inputs were asked before
#                                    (in an 8-input batch): the upstream's embedding_inputs counter
#                                    rises by the inputs sent upstream (target for strata: 8)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/bench/llm
PEERS=$ROOT/bench/peers
BUILD_DIR=${1:-$ROOT/build}
# shellcheck source=bench/http/lib.sh
. "$ROOT/bench/http/lib.sh"

ROUNDS=${ROUNDS:-3}
QUICK=${QUICK:-0}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
TTFB_N=${TTFB_N:-200}
CHUNK_MS=${CHUNK_MS:-10}
EMBED_DIMS=${EMBED_DIMS:-256}
QUIET_WAIT=${QUIET_WAIT:-30}
OTHER_MAX=${OTHER_MAX:-0.3}
PROFILE=${PROFILE:-1}
CONNS=50
if [ "$QUICK" = 1 ]; then
    ROUNDS=1 DURATION=3 WARMUP=1 TTFB_N=20 PROFILE=0
fi
PY=/usr/bin/python3 # Debian's python3, where python3-fastapi and friends are installed

ALL_ROWS=(strata_chat_1k fastapi_chat_1k nginx_chat_1k strata_chat_8k fastapi_chat_8k
    nginx_chat_8k strata_embed_16 fastapi_embed_16 nginx_embed_16 strata_ttfb_replay
    strata_ttfb_miss upstream_ttfb_miss partial_batch_strata partial_batch_fastapi
    partial_batch_nginx)
read -r -a ROWS <<<"${ROWS:-${ALL_ROWS[*]}}"
for row in "${ROWS[@]}"; do
    case " ${ALL_ROWS[*]} " in
    *" $row "*) ;;
    *) echo "bench/llm: no row '$row' (have: ${ALL_ROWS[*]})" >&2 && exit 2 ;;
    esac
done

# ---- the report: medians over the rounds, ratios, targets ---------------------------------------
report() {
    median_table "$OUT/raw.txt" "$OTHER_MAX" "$ROUNDS" llm >"$OUT/results.txt" 2>"$OUT/medians.txt"
    grep '^warn ' "$OUT/medians.txt" | sed 's/^warn //' >>"$OUT/warnings.txt" || true
    # the TTFB and partial-batch rows: medians over all rounds, and each metric's range
    awk '
        { split($2, p, "."); row = p[1]; met = substr($2, length(row) + 2)
          if (!(row in seen)) { seen[row] = 1; rows[nr++] = row }
          if (!((row " " met) in ms)) { ms[row " " met] = 1; mets[row] = mets[row] " " met }
          vals[row " " met] = vals[row " " met] " " $3; n[row " " met]++ }
        function median(s,    a, m, i, j, t) {
            m = split(s, a, " ")
            for (i = 2; i <= m; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] + 0 > t + 0; j--) a[j + 1] = a[j]; a[j + 1] = t }
            return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
        }
        END {
            for (i = 0; i < nr; i++) {
                row = rows[i]; m = split(mets[row], ml, " ")
                for (j = 1; j <= m; j++) {
                    k = split(vals[row " " ml[j]], c, " "); lo = c[1]; hi = c[1]
                    for (x = 2; x <= k; x++) { if (c[x] + 0 < lo + 0) lo = c[x]; if (c[x] + 0 > hi + 0) hi = c[x] }
                    printf "RESULT llm.%s.%s=%s\n", row, ml[j], median(vals[row " " ml[j]])
                    printf "RESULT llm.%s.%s_min=%s\nRESULT llm.%s.%s_max=%s\n", row, ml[j], lo, row, ml[j], hi
                }
                printf "RESULT llm.%s.rounds=%d\n", row, n[row " " ml[1]]
            }
        }' "$OUT/raw_other.txt" >>"$OUT/results.txt"

    val() { sed -n "s/^RESULT llm\.$1=//p" "$OUT/results.txt"; }
    ratio() { # NAME A B: RESULT llm.ratio.NAME = A / B (medians of req/s)
        local a b
        a=$(val "$2.rps")
        b=$(val "$3.rps")
        if [ -n "$a" ] && [ -n "$b" ]; then
            awk -v a="$a" -v b="$b" -v n="$1" 'BEGIN { if (b > 0) printf "RESULT llm.ratio.%s=%.3f\n", n, a / b }' \
                >>"$OUT/results.txt"
        fi
        return 0
    }
    local s
    for s in chat_1k chat_8k embed_16; do
        ratio "${s}_vs_fastapi" "strata_$s" "fastapi_$s"
        ratio "${s}_vs_nginx" "strata_$s" "nginx_$s"
    done

    {
        echo
        echo "== bench/llm: medians of $ROUNDS interleaved round(s); wrk -t1 -c$CONNS, ${DURATION}s runs"
        printf '%-18s %9s %8s %8s %9s %8s %9s %-15s %s\n' row req/s p50_ms p99_ms rss_KiB cpu_us/r \
            answer_B "cpu s/c/o" ok
        local row cpu_us
        for row in "${ALL_ROWS[@]}"; do
            [ -n "$(val "$row.rps")" ] || continue
            # the gateway's CPU per request (with redis-server for FastAPI; the upstream is idle)
            cpu_us=$(awk -v c="$(val "$row.server_cpu")" -v r="$(val "$row.rps")" \
                'BEGIN { if (r > 0) printf "%.1f", c * 1e6 / r }')
            printf '%-18s %9.0f %8.3f %8.3f %9s %8s %9s %-15s %s\n' "$row" "$(val "$row.rps")" \
                "$(val "$row.p50_ms")" "$(val "$row.p99_ms")" "$(val "$row.rss_kb")" "$cpu_us" \
                "$(val "$row.answer_bytes")" \
                "$(val "$row.server_cpu")/$(val "$row.client_cpu")/$(val "$row.other_cpu")" \
                "$(sed -n "s/^clean $row //p" "$OUT/medians.txt")"
        done
        echo "(rss: the gateway's processes after the run (FastAPI: uvicorn; redis-server apart);"
        echo " cpu_us/r: the server's CPU time per request (FastAPI: uvicorn and redis-server);"
        echo " answer_B: the answer's body in bytes; cpu s/c/o: CPUs used by the server / wrk /"
        echo " other processes; ok: undisturbed rounds, other processes <= $OTHER_MAX CPUs)"
        echo
        printf '%-20s %9s %9s %9s %11s\n' "ttfb ($TTFB_N requests)" p50_ms p99_ms total_p50 bytes
        for row in "${ALL_ROWS[@]}"; do
            [ -n "$(val "$row.ttfb_p50_ms")" ] || continue
            printf '%-20s %9.3f %9.3f %9.3f %11s\n' "$row" "$(val "$row.ttfb_p50_ms")" \
                "$(val "$row.ttfb_p99_ms")" "$(val "$row.total_p50_ms")" "$(val "$row.bytes")"
        done
        echo "(medians over the rounds of each round's p50 and p99 of curl's time_starttransfer, one"
        echo " connection per request; total_p50: time_total; the misses' events come $CHUNK_MS ms apart)"
        echo
        printf '%-22s %15s %9s\n' "partial batch (16, 8 cached)" upstream_inputs rounds
        local lo hi
        for row in "${ALL_ROWS[@]}"; do
            [ -n "$(val "$row.upstream_inputs")" ] || continue
            lo=$(val "$row.upstream_inputs_min")
            hi=$(val "$row.upstream_inputs_max")
            [ "$lo" = "$hi" ] || lo="$lo-$hi"
            printf '%-28s %9s %9s\n' "$row" "$lo" "$(val "$row.rounds")"
        done
        echo "(inputs the upstream's embedding_inputs counter rose by for the 16-input batch; the range"
        echo " over the rounds)"
        echo
        verdict() { # NAME LIMIT TEXT STRATA_ROW PEER_ROW: ratio >= LIMIT
            local v sc cc why cpu
            v=$(val "ratio.$1")
            [ -n "$v" ] || { echo "target: $3: no figure"; return 0; }
            if awk -v v="$v" -v l="$2" 'BEGIN { exit !(v >= l) }'; then
                echo "target: $3: $v -> met"
                return 0
            fi
            # What set strata's rate: its own CPU, or wrk's (one thread on CPU 0) when strata's
            # CPU had room left; and the CPU each answer cost strata against the peer.
            sc=$(val "$4.server_cpu")
            cc=$(val "$4.client_cpu")
            why=$(awk -v s="$sc" -v c="$cc" 'BEGIN { if (c >= 0.85 && s < 0.85)
                printf "; strata used %.2f of its CPU and wrk %.2f of its own: the load generator set the rate", s, c }')
            cpu=$(awk -v a="$(val "$4.server_cpu")" -v ar="$(val "$4.rps")" \
                -v b="$(val "$5.server_cpu")" -v br="$(val "$5.rps")" 'BEGIN {
                if (ar > 0 && br > 0 && a > 0) printf "; CPU per answer %.1f us against %.1f (%.1fx less)",
                    a * 1e6 / ar, b * 1e6 / br, (b / br) / (a / ar) }')
            echo "target: $3: $v -> NOT met$why$cpu"
        }
        for s in chat_1k chat_8k embed_16; do
            verdict "${s}_vs_fastapi" 10 "strata $s hits >= 10x FastAPI + redis-py" "strata_$s" "fastapi_$s"
            verdict "${s}_vs_nginx" 1 "strata $s hits >= nginx proxy_cache by body" "strata_$s" "nginx_$s"
        done
        lo=$(val partial_batch_strata.upstream_inputs_min)
        hi=$(val partial_batch_strata.upstream_inputs_max)
        if [ -z "$lo" ]; then
            echo "target: a partially cached batch sends only the misses (8 of 16): no figure"
        elif [ "$lo" = 8 ] && [ "$hi" = 8 ]; then
            echo "target: a partially cached batch sends only the misses (8 of 16): 8 in every round -> met"
        else
            echo "target: a partially cached batch sends only the misses (8 of 16): $lo-$hi -> NOT met"
        fi
    } | tee "$OUT/summary.txt"
}

if [ -n "${REPORT:-}" ]; then
    OUT=$REPORT
    ROUNDS=$(awk '$1 > r { r = $1 } END { print r + 0 }' "$OUT/raw.txt" "$OUT/raw_other.txt")
    : >"$OUT/warnings.txt"
    report
    exit 0
fi

# ---- what it needs ----------------------------------------------------------------------------
PKGS=(wrk nginx-light redis-server redis-tools python3-fastapi python3-uvicorn python3-redis
    python3-httpx python3-uvloop python3-httptools util-linux curl)
[ "$(id -u)" -eq 0 ] && PKGS+=(linux-perf) # the profile; skipped when perf is missing
ensure_pkgs "${PKGS[@]}"

cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD_DIR" -j2 --target strata_cli strata_test_origin >/dev/null
BUILD_DIR=$(cd "$BUILD_DIR" && pwd)
STRATA=$BUILD_DIR/strata
ORIGIN=$BUILD_DIR/strata_test_origin

STAMP=$(date +%Y%m%d-%H%M%S)
OUT=${OUT:-$ROOT/bench/results/llm-$STAMP}
mkdir -p "$OUT"
: >"$OUT/raw.txt"
: >"$OUT/raw_other.txt"
: >"$OUT/warnings.txt"

TMP=$(mktemp -d /tmp/benchllm-XXXXXX)
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
    echo "nginx: $(dpkg-query -W -f='${Version}' nginx)"
    echo "python: $($PY -V 2>&1) fastapi $($PY -c 'import fastapi; print(fastapi.__version__)')" \
        "uvicorn $($PY -c 'import uvicorn; print(uvicorn.__version__)')" \
        "redis-py $($PY -c 'import redis; print(redis.__version__)')" \
        "httpx $($PY -c 'import httpx; print(httpx.__version__)')" \
        "uvloop $($PY -c 'import uvloop; print(uvloop.__version__)')" \
        "httptools $($PY -c 'import httptools; print(httptools.__version__)')"
    echo "curl: $(curl --version | head -n1 | cut -d' ' -f2)"
    echo "rounds: $ROUNDS duration: ${DURATION}s warmup: ${WARMUP}s ttfb requests: $TTFB_N" \
        "chunk delay: ${CHUNK_MS} ms embedding dimensions: $EMBED_DIMS quick: $QUICK"
    echo "rows: ${ROWS[*]}"
} | tee "$OUT/machine.txt"

# ---- the upstream and Redis: started once, on CPU 1 ----------------------------------------------
UP_PORT=$(free_port)
start_server upstream "$ORIGIN" --port "$UP_PORT"
UP_PID=$SPID
wait_port "$UP_PORT" "$UP_PID"
start_redis
echo "fake upstream (CPU 1) on $UP_PORT; redis-server on $REDIS_PORT"
upstream_count() { # FIELD: the fake upstream's counter
    curl -sf "http://127.0.0.1:$UP_PORT/__openai" | $PY -c "import json, sys; print(json.load(sys.stdin)['$1'])"
}

# ---- the requests ---------------------------------------------------------------------------------
# A chat request as an application sends it: a system prompt and a question, temperature 0 (so
# strata may store the answer); the completion's size is the fake upstream's X-Origin-Completion-Size.
chat_body() { # TEXT [STREAM]
    $PY - "$1" "${2:-}" <<'PYEOF'
import json, sys
b = {"model": "gpt-4o-mini", "temperature": 0, "max_tokens": 2048, "messages": [
    {"role": "system", "content": "You are a helpful assistant for a bookshop. Answer briefly and "
     "politely, in the customer's language, and say when you do not know."},
    {"role": "user", "content": sys.argv[1]}]}
if sys.argv[2]:
    b["stream"] = True
print(json.dumps(b))
PYEOF
}
# An embedding batch: N inputs of about 100 bytes, TAG in each, EMBED_DIMS dimensions.
embed_body() { # TAG FIRST N
    $PY - "$1" "$2" "$3" "$EMBED_DIMS" <<'PYEOF'
import json, sys
tag, first, n, dims = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
inputs = ["passage %s-%d: the shop opens at nine on weekdays and at ten on Saturdays; "
          "it is closed on Sundays and public holidays." % (tag, i) for i in range(first, first + n)]
print(json.dumps({"model": "text-embedding-3-small", "input": inputs, "dimensions": dims}))
PYEOF
}
chat_body "What are your opening hours? (bench 1k)" >"$TMP/chat_1k.json"
chat_body "What are your opening hours? (bench 8k)" >"$TMP/chat_8k.json"
embed_body bench 0 16 >"$TMP/embed_16.json"
size_of() { case $1 in chat_1k) echo 1024 ;; chat_8k) echo 8192 ;; *) echo "" ;; esac; }
path_of() { case $1 in chat_*) echo /v1/chat/completions ;; embed_*) echo /v1/embeddings ;; esac; }

# ---- the gateways ---------------------------------------------------------------------------------
# start_gateway KIND NAME: one gateway of KIND (strata, fastapi, nginx) in front of the fake
# upstream, on CPU 1; sets PORT and PID.
start_gateway() {
    local kind=$1 name=$2
    PORT=$(free_port)
    case $kind in
    strata)
        start_server "$name" env -u REDIS_URL STRATA_WORKERS=1 "$STRATA" serve \
            --llm-upstream "http://127.0.0.1:$UP_PORT/v1" --listen "127.0.0.1:$PORT"
        ;;
    fastapi)
        start_server "$name" env REDIS_PORT="$REDIS_PORT" UPSTREAM="http://127.0.0.1:$UP_PORT/v1" \
            PYTHONDONTWRITEBYTECODE=1 $PY -m uvicorn fastapi_llm:app --app-dir "$PEERS" \
            --host 127.0.0.1 --port "$PORT" --workers 1 --loop uvloop --http httptools \
            --no-access-log --log-level warning
        ;;
    nginx)
        rm -rf "${TMP:?}/$name-store"
        fill "$PEERS/nginx-llm.conf.in" "$TMP/$name.conf" "TMP=$TMP" "NAME=$name" "PORT=$PORT" \
            "ORIGIN=$UP_PORT"
        start_server "$name" nginx -p "$TMP" -c "$TMP/$name.conf"
        ;;
    esac
    PID=$SPID
    wait_port "$PORT" "$PID"
}

# the header line that marks a hit, for each kind
hit_re() {
    case $1 in
    strata) echo '^x-cache: HIT-L1$' ;;
    fastapi) echo '^x-cache: HIT$' ;;
    nginx) echo '^x-cache-status: HIT$' ;;
    esac
}

# post URL BODY_FILE [SIZE] [CURL_ARGS...]: one POST as wrk sends it; the headers on stdout, the
# body in $TMP/body
post() {
    local url=$1 body=$2 size=${3:-}
    shift 3 || shift $#
    local h=(-H 'Content-Type: application/json')
    [ -n "$size" ] && h+=(-H "X-Origin-Completion-Size: $size")
    curl -s -D - -o "$TMP/body" "${h[@]}" --data-binary "@$body" "$@" "$url" | tr -d '\r'
}

# warm_and_check ROW KIND URL BODY SIZE: asks once (a miss: the cache fills), then checks that the
# next POST is a 200 hit whose body is the first answer's; a cache may store the answer just after
# sending it, so the check is tried up to three times, 0.1 s apart. Prints the answer's bytes.
warm_and_check() {
    local row=$1 kind=$2 url=$3 body=$4 size=$5 h try
    post "$url" "$body" "$size" >/dev/null
    cp "$TMP/body" "$TMP/first"
    for try in 1 2 3; do
        h=$(post "$url" "$body" "$size")
        if grep -q '^HTTP/1.1 200' <<<"$h" && grep -Eqi "$(hit_re "$kind")" <<<"$h" &&
            cmp -s "$TMP/body" "$TMP/first"; then
            echo "$h" >"$OUT/$row.headers.txt"
            stat -c %s "$TMP/body"
            return 0
        fi
        [ "$try" = 3 ] || sleep 0.1
    done
    echo "round $ROUND: $row: not a 200 hit (/$(hit_re "$kind")/) with the first answer's body" \
        "($url): $(tr '\n' ' ' <<<"$h")" | tee -a "$OUT/warnings.txt" >&2
    return 1
}

# ---- rows -----------------------------------------------------------------------------------------
# hit KIND WHAT: one request (chat_1k, chat_8k, embed_16), cached, under wrk (bench/llm/post.lua)
row_hit() {
    local kind=$1 what=$2 row=${1}_$2 url bytes also=""
    start_gateway "$kind" "$row"
    url="http://127.0.0.1:$PORT$(path_of "$what")"
    [ "$kind" = fastapi ] && also=$REDIS_PID
    if bytes=$(warm_and_check "$row" "$kind" "$url" "$TMP/$what.json" "$(size_of "$what")"); then
        WRK_BODY=$TMP/$what.json WRK_SIZE=$(size_of "$what") measure "$row" "$PID" "$also" \
            -s "$HERE/post.lua" "$url" | grep -v '\.redis_rss_kb '
        echo "$row.answer_bytes $bytes"
    fi
    stop_pids "$PID"
}

# ttfb ROW URL BODY_PREFIX_FILE SIZE CHUNK_MS FRESH: TTFB_N sequential streamed POSTs from CPU 0,
# one curl each; FRESH=1 makes every request a new prompt (a miss). Prints the p50 and p99 of
# time_starttransfer, the p50 of time_total (ms), and the bytes of the last answer.
ttfb() {
    local row=$1 url=$2 body=$3 size=$4 delay=$5 fresh=$6 i f
    f=$OUT/$row.r$ROUND.txt
    : >"$f"
    for ((i = 0; i < TTFB_N; i++)); do
        if [ "$fresh" = 1 ]; then
            chat_body "Stream me an answer, please (round $ROUND, $row, $$, $i)" 1 >"$TMP/ttfb.json"
            body=$TMP/ttfb.json
        fi
        taskset -c 0 curl -s -o /dev/null -w '%{http_code} %{time_starttransfer} %{time_total} %{size_download}\n' \
            -H 'Content-Type: application/json' -H "X-Origin-Completion-Size: $size" \
            -H "X-Origin-Chunk-Delay-Ms: $delay" --data-binary "@$body" "$url" >>"$f"
    done
    if awk '$1 != 200 { bad++ } END { exit !(bad > 0) }' "$f"; then
        echo "round $ROUND: $row: answers other than 200 (see $f)" >>"$OUT/warnings.txt"
    fi
    local t tt
    t=$(awk '{ printf "%.3f\n", $2 * 1000 }' "$f" | sort -n | tr '\n' ' ')
    tt=$(awk '{ printf "%.3f\n", $3 * 1000 }' "$f" | sort -n | tr '\n' ' ')
    awk -v row="$row" -v t="$t" -v tt="$tt" -v bytes="$(tail -n1 "$f" | cut -d' ' -f4)" '
        function pct(s, p,    a, n, k) { n = split(s, a, " "); k = int(n * p + 0.999999); if (k < 1) k = 1; return a[k] }
        BEGIN {
            printf "%s.ttfb_p50_ms %.3f\n%s.ttfb_p99_ms %.3f\n", row, pct(t, 0.5), row, pct(t, 0.99)
            printf "%s.total_p50_ms %.3f\n%s.bytes %d\n", row, pct(tt, 0.5), row, bytes }'
}

row_ttfb() { # ROW
    local row=$1 h
    case $row in
    strata_ttfb_replay)
        start_gateway strata "$row"
        chat_body "What are your opening hours? (bench 1k)" 1 >"$TMP/stream_1k.json"
        # the plain request fills the cache; the streamed one must be its replay
        if warm_and_check "$row" strata "http://127.0.0.1:$PORT/v1/chat/completions" \
            "$TMP/chat_1k.json" 1024 >/dev/null; then
            h=$(post "http://127.0.0.1:$PORT/v1/chat/completions" "$TMP/stream_1k.json" 1024)
            if grep -Eqi "$(hit_re strata)" <<<"$h" && grep -q 'data: \[DONE\]' "$TMP/body"; then
                ttfb "$row" "http://127.0.0.1:$PORT/v1/chat/completions" "$TMP/stream_1k.json" 1024 0 0
            else
                echo "round $ROUND: $row: the streamed request is not a replayed hit:" \
                    "$(tr '\n' ' ' <<<"$h")" | tee -a "$OUT/warnings.txt" >&2
            fi
        fi
        stop_pids "$PID"
        ;;
    strata_ttfb_miss)
        start_gateway strata "$row"
        ttfb "$row" "http://127.0.0.1:$PORT/v1/chat/completions" "" 0 "$CHUNK_MS" 1
        stop_pids "$PID"
        ;;
    upstream_ttfb_miss)
        ttfb "$row" "http://127.0.0.1:$UP_PORT/v1/chat/completions" "" 0 "$CHUNK_MS" 1
        ;;
    esac
}

# partial KIND: an 8-input batch (asked first: its inputs are cached), then a 16-input batch of
# those 8 and 8 new ones, interleaved; the upstream's embedding_inputs counter is read around the
# second batch.
row_partial() {
    local kind=$1 row=partial_batch_$1 url tag c0 c1 h
    tag=r$ROUND-$kind-$$
    start_gateway "$kind" "$row"
    url="http://127.0.0.1:$PORT/v1/embeddings"
    embed_body "$tag" 0 8 >"$TMP/first8.json"
    $PY - "$TMP/first8.json" "$(embed_body "$tag" 8 8)" >"$TMP/mixed16.json" <<'PYEOF'
import json, sys
a = json.load(open(sys.argv[1]))
b = json.loads(sys.argv[2])
a["input"] = [x for pair in zip(a["input"], b["input"]) for x in pair]
print(json.dumps(a))
PYEOF
    post "$url" "$TMP/first8.json" "" >/dev/null
    c0=$(upstream_count embedding_inputs)
    h=$(post "$url" "$TMP/mixed16.json" "")
    c1=$(upstream_count embedding_inputs)
    echo "$h" >"$OUT/$row.r$ROUND.headers.txt"
    if ! grep -q '^HTTP/1.1 200' <<<"$h" ||
        [ "$($PY -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["data"]))' "$TMP/body")" != 16 ]; then
        echo "round $ROUND: $row: the 16-input batch was not answered 16 vectors: $(tr '\n' ' ' <<<"$h")" |
            tee -a "$OUT/warnings.txt" >&2
    else
        echo "$row.upstream_inputs $((c1 - c0))"
    fi
    stop_pids "$PID"
}

run_row() { # ROW
    case $1 in
    *_ttfb_*) row_ttfb "$1" ;;
    partial_batch_*) row_partial "${1#partial_batch_}" ;;
    *) row_hit "${1%%_*}" "${1#*_}" ;;
    esac
}

for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
    echo "== round $ROUND/$ROUNDS"
    # rotate the order each round, so no row always runs first or after the same neighbour
    for ((i = 0; i < ${#ROWS[@]}; i++)); do
        row=${ROWS[$(((i + ROUND - 1) % ${#ROWS[@]}))]}
        busy=$(wait_quiet "$row")
        raw=$OUT/raw.txt
        case $row in *_ttfb_* | partial_batch_*) raw=$OUT/raw_other.txt ;; esac
        run_row "$row" | while read -r name value; do
            echo "$ROUND $name $value" >>"$raw"
            echo "$name $value"
        done | awk -v busy="$busy" '
            { v[$1] = $2; split($1, p, "."); row = p[1] }
            END {
                if (row == "") exit
                if ((row ".rps") in v)
                    printf "  %-20s %9.0f req/s  p50 %6.3f ms  p99 %6.3f ms  rss %7d KiB  cpu s/c/o %s/%s/%s (busy before: %s)\n",
                        row, v[row ".rps"], v[row ".p50_ms"], v[row ".p99_ms"], v[row ".rss_kb"],
                        v[row ".server_cpu"], v[row ".client_cpu"], v[row ".other_cpu"], busy
                else if ((row ".ttfb_p50_ms") in v)
                    printf "  %-20s ttfb p50 %7.3f ms  p99 %7.3f ms  total p50 %8.3f ms  %d bytes (busy before: %s)\n",
                        row, v[row ".ttfb_p50_ms"], v[row ".ttfb_p99_ms"], v[row ".total_p50_ms"], v[row ".bytes"], busy
                else
                    printf "  %-20s upstream inputs %s\n", row, v[row ".upstream_inputs"] }'
    done
done

report

# ---- profile: where strata's time goes on a cached chat answer, when a strata target is missed ----
# perf record (cpu-clock, DWARF call graphs: libjansson has no frame pointers, and its symbols are
# stripped, so its time is told by its callers) on the gateway while wrk runs the chat_1k hit
# load; the top self symbols, and the top symbols with their callees' time (children), where
# strata's own functions show what they cost; the same for nginx, the peer to beat.
profile() { # KIND
    local kind=$1 url wpid
    start_gateway "$kind" "profile-$kind"
    url="http://127.0.0.1:$PORT/v1/chat/completions"
    post "$url" "$TMP/chat_1k.json" 1024 >/dev/null
    wait_quiet "profile $kind" >/dev/null
    WRK_BODY=$TMP/chat_1k.json WRK_SIZE=1024 taskset -c 0 wrk -t1 -c"$CONNS" \
        -d"$((DURATION + 2))s" -s "$HERE/post.lua" "$url" >"$OUT/profile.$kind.wrk.txt" &
    wpid=$!
    sleep 1
    perf record -e cpu-clock -F 499 --call-graph dwarf,16384 -o "$TMP/perf.$kind.data" \
        -p "$(tree_pids "$PID" | tr -s ' ' ',' | sed 's/^,//')" -- sleep "$DURATION" \
        >"$TMP/perf.$kind.log" 2>&1 || true
    wait "$wpid" || true
    stop_pids "$PID"
    {
        echo "== profile: $kind, cached chat answers of 1 KB" \
            "($(wrk_fields "$OUT/profile.$kind.wrk.txt" | cut -d' ' -f1) req/s under perf)"
        echo "-- self"
        # (awk, not head: perf report must not die of SIGPIPE under pipefail)
        perf report -i "$TMP/perf.$kind.data" --no-children -g none --sort dso,sym --stdio \
            2>/dev/null | awk '/^ +[0-9.]+%/ && n++ < 25' || true
        echo "-- with callees (children), user-space symbols"
        perf report -i "$TMP/perf.$kind.data" --children -g none --sort sym --stdio 2>/dev/null |
            awk '/^ +[0-9.]+% +[0-9.]+% +\[\.\] [a-z_]/ && n++ < 25' || true
    } | tee "$OUT/profile.$kind.txt"
}
if [ "$PROFILE" = 1 ] && command -v perf >/dev/null && grep -q '^target: strata.*NOT met' "$OUT/summary.txt"; then
    profile strata
    profile nginx
fi

if [ -s "$OUT/warnings.txt" ]; then
    echo "== warnings"
    sort -u "$OUT/warnings.txt"
fi
echo "(raw output in $OUT)"
