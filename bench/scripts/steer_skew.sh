#!/usr/bin/env bash
# Skew (issue #7): a few long-lived heavy keep-alive connections (each sends `/work?ms=20`
# back to back) plus many light ones (a pool of 64 keep-alive connections, open-loop
# `GET /` at a fixed rate), against percore with 2 shards, `reuseport` vs `balanced`.
# Reports each shard's CPU seconds over the run and the light requests' latency.
#
#   flock /tmp/percore-bench.lock bash bench/scripts/steer_skew.sh
#
# Environment: ROUNDS (3), DURATION (8 s), RATE (400), HEAVY_CONNS (2), HEAVY_MS (20),
# LIGHT_CONNS (64).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
OUT=${OUT:-$(mktemp -d /tmp/steer_skew.XXXX)}
mkdir -p "$OUT"
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8}
RATE=${RATE:-400}
HEAVY_CONNS=${HEAVY_CONNS:-2}
HEAVY_MS=${HEAVY_MS:-20}
LIGHT_CONNS=${LIGHT_CONNS:-64}
PORT=${PORT:-18095}
source "$ROOT/bench/scripts/steer_lib.sh"
trap stop_server EXIT

cargo build --release -q -p percore-cli || exit 1
PERCORE="$ROOT/target/release/percore"

shard_cpu() { # PID -> "ticks0 ticks1"
    thread_ticks "$1" | awk '$1 == "percore-shard-0" { a = $2 } $1 == "percore-shard-1" { b = $2 } END { print a + 0, b + 0 }'
}

echo "results in $OUT" >&2
for round in $(seq 1 "$ROUNDS"); do
    for mode in reuseport balanced; do
        start "$PERCORE" serve --shards 2 --quiet --drain-timeout-secs 1 \
            --steer "$mode" --listen "127.0.0.1:$PORT"
        wait_port "$PORT" || { stop_server; continue; }
        sleep 0.5
        read -r c0 c1 < <(shard_cpu "$SERVER_PID")
        result=$(timeout $((DURATION + 60)) "$PY" "$LOAD" --addr "127.0.0.1:$PORT" \
            --rate "$RATE" --duration "$DURATION" --warmup 1 --heavy-conns "$HEAVY_CONNS" \
            --heavy-path "/work?ms=$HEAVY_MS&inline=1" --light-conns "$LIGHT_CONNS" --max-conns "$LIGHT_CONNS")
        read -r d0 d1 < <(shard_cpu "$SERVER_PID")
        hz=$(getconf CLK_TCK)
        cpu0=$(awk -v a="$c0" -v b="$d0" -v hz="$hz" 'BEGIN { printf "%.2f", (b - a) / hz }')
        cpu1=$(awk -v a="$c1" -v b="$d1" -v hz="$hz" 'BEGIN { printf "%.2f", (b - a) / hz }')
        stop_server
        echo "{\"mode\": \"$mode\", \"round\": $round, \"shard_cpu_s\": [$cpu0, $cpu1], \"result\": $result}" | tee -a "$OUT/results.jsonl"
        sleep 1
    done
done

"$PY" - "$OUT/results.jsonl" <<'PYEOF'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    cpu = r["shard_cpu_s"]
    busy, idle = max(cpu), min(cpu)
    rows.setdefault(r["mode"], []).append(
        dict(r["result"], busiest_shard_cpu_s=busy, other_shard_cpu_s=idle,
             cpu_imbalance=round(busy / (sum(cpu) / 2), 2) if sum(cpu) else None))
keys = ["busiest_shard_cpu_s", "other_shard_cpu_s", "cpu_imbalance", "p50_ms", "p99_ms", "p999_ms", "light_errors", "heavy_ok"]
print("| steering | rounds | " + " | ".join(keys) + " |")
print("|---" * (len(keys) + 2) + "|")
for mode, results in rows.items():
    med = [f"{statistics.median([x[k] for x in results if x.get(k) is not None]):g}" for k in keys]
    print(f"| {mode} | {len(results)} | " + " | ".join(med) + " |")
PYEOF
