#!/usr/bin/env bash
# RESP servers side by side under `percore-bench resp`: redis-server (one io-thread, CPU 1)
# and percore's kv service (`percore kv`), each started fresh per round, interleaved, load on
# CPU 0, medians of ops/s, p50/p99 and server CPU µs per operation. Run it under the shared
# measuring lock:
#
#   flock /tmp/percore-bench.lock bench/scripts/bench_resp.sh
#   SERVERS="redis kv" PASSES="50:1 50:16" SET_RATIO=0.1 flock /tmp/percore-bench.lock bench/scripts/bench_resp.sh
#
# The kv hook: `kv` runs `$KV_CMD` (default: `target/release/percore kv --shards 1 --quiet
# --listen 127.0.0.1:PORT`, @PORT@ in KV_CMD is replaced by the port). A server whose command
# is missing or which does not answer PING is reported and skipped; the run goes on.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
PASSES=${PASSES:-"50:1 50:16"}
SERVERS=${SERVERS:-"redis kv"}
SET_RATIO=${SET_RATIO:-0.1}
KEYSPACE=${KEYSPACE:-10000}
VALUE_SIZE=${VALUE_SIZE:-64}
PORT=${PORT:-16479}
KV_CMD=${KV_CMD:-"target/release/percore kv --shards 1 --quiet --listen 127.0.0.1:@PORT@"}
source bench/scripts/common.sh

OUT=${OUT:-$(mktemp -d /tmp/bench_resp.XXXXXX)}
mkdir -p "$OUT"
CLK_TCK=$(getconf CLK_TCK)
trap stop_server EXIT INT TERM
cargo build --release -q -p percore-bench
# kv may or may not be in the CLI yet; building it is harmless either way.
cargo build --release -q -p percore-cli 2>/dev/null || true

# start_resp NAME: starts the server on CPU 1, sets SERVER_PID; non-zero if it cannot run.
start_resp() {
    case $1 in
        redis)
            command -v redis-server >/dev/null || { echo "redis-server not installed" >&2; return 1; }
            taskset -c 1 redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no \
                --io-threads 1 --daemonize no >"$OUT/redis.log" 2>&1 &
            ;;
        kv)
            local cmd=${KV_CMD//@PORT@/$PORT}
            # shellcheck disable=SC2086 # KV_CMD is a command line.
            taskset -c 1 $cmd >"$OUT/kv.log" 2>&1 &
            ;;
        *) echo "unknown server $1" >&2; return 1 ;;
    esac
    SERVER_PID=$!
    wait_listening "$PORT" || return 1
    # Must speak RESP: PING → +PONG.
    local reply
    reply=$(timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT; printf 'PING\r\n' >&3; head -c 7 <&3" || true)
    [[ $reply == "+PONG"* ]] || { echo "$1 does not answer PING" >&2; return 1; }
}

declare -A SKIPPED=()
for round in $(seq 1 "$ROUNDS"); do
    for server in $SERVERS; do
        [[ -n ${SKIPPED[$server]:-} ]] && continue
        if ! start_resp "$server"; then
            SKIPPED[$server]=1
            echo "skipping $server (see $OUT/$server.log)" >&2
            stop_server
            continue
        fi
        for pass in $PASSES; do
            conns=${pass%%:*}
            pipeline=${pass##*:}
            timeout $((WARMUP + DURATION + 20)) taskset -c 0 "$BIN/percore-bench" resp \
                --target "127.0.0.1:$PORT" --shards 1 -c "$conns" --pipeline "$pipeline" \
                -d "$DURATION" -w "$WARMUP" --set-ratio "$SET_RATIO" --keyspace "$KEYSPACE" \
                --value-size "$VALUE_SIZE" --server-pid "$SERVER_PID" --clk-tck "$CLK_TCK" \
                --json -q | sed "s/^{/{\"server\":\"$server\",/" >>"$OUT/runs.jsonl" || true
        done
        stop_server
    done
    echo "round $round done" >&2
done

python3 - "$OUT/runs.jsonl" "${!SKIPPED[*]}" <<'PY' | tee "$OUT/report.md"
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()] if len(sys.argv) > 1 else []
med = lambda xs: statistics.median(xs) if xs else float("nan")
print("| server | conns × pipeline | ops/s (median) | p50 µs | p99 µs | server CPU µs/op | errors |")
print("|---|---|---|---|---|---|---|")
for key in sorted({(r["server"], r["connections"], r["pipeline"]) for r in runs}):
    rs = [r for r in runs if (r["server"], r["connections"], r["pipeline"]) == key]
    cpu = [r["server_cpu_us_per_request"] for r in rs if r["server_cpu_us_per_request"] is not None]
    print(f"| {key[0]} | {key[1]} × {key[2]} | **{med([r['requests_per_sec'] for r in rs]):,.0f}** "
          f"| {med([r['latency_us']['p50'] for r in rs]):,.0f} | {med([r['latency_us']['p99'] for r in rs]):,.0f} "
          f"| {med(cpu):.2f} | {sum(r['errors'] for r in rs)} |")
if sys.argv[2:] and sys.argv[2]:
    print(f"\nSkipped: {sys.argv[2]}")
PY
