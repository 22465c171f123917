#!/usr/bin/env bash
# Server CPU per request of `percore echo` (one shard on CPU 1) under percore-bench echo
# (one shard on CPU 0), for each connection count, ROUNDS rounds interleaved; medians.
#
#   bench/scripts/echo_cpu.sh                     # 100 and 256 connections, 3 rounds
#   CONFIGS="100:1 256:1 256:16" ROUNDS=5 bench/scripts/echo_cpu.sh   # conns:pipeline
#
# The load generator reads the server's utime+stime from /proc/PID/stat at the exact moments
# its measured window opens and closes (--server-pid), so CPU and requests cover one window.
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/scripts/common.sh

MESSAGE_SIZE=${MESSAGE_SIZE:-64}
CONFIGS=${CONFIGS:-"100:1 256:1"}
OUT=${OUT:-$(mktemp -d /tmp/echo_cpu.XXXXXX)}
CLK_TCK=$(getconf CLK_TCK)

trap stop_server EXIT INT TERM
build
start_server "$PORT"
echo "server PID $SERVER_PID on CPU 1; results in $OUT" >&2

for round in $(seq 1 "$ROUNDS"); do
    for config in $CONFIGS; do
        conns=${config%%:*}
        pipeline=${config##*:}
        # Bounded twice: the bench stops itself; timeout is the backstop.
        timeout $((WARMUP + DURATION + 30)) taskset -c 0 "$BIN/percore-bench" echo \
            --target "127.0.0.1:$PORT" --shards 1 --connections "$conns" \
            --pipeline "$pipeline" --message-size "$MESSAGE_SIZE" \
            --duration-secs "$DURATION" --warmup-secs "$WARMUP" \
            --server-pid "$SERVER_PID" --clk-tck "$CLK_TCK" --json \
            | tee -a "$OUT/runs.jsonl"
        echo "round $round, $conns conns x$pipeline done" >&2
    done
done

python3 - "$OUT/runs.jsonl" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
groups = {}
for r in runs:
    groups.setdefault((r["connections"], r["pipeline"]), []).append(r)
print("| conns | pipeline | rounds | req/s | p50 µs | p99 µs | p99.9 µs | server CPU µs/req | client enters/req | errors |")
print("|---|---|---|---|---|---|---|---|---|---|")
med = lambda xs: statistics.median(xs) if xs else float("nan")
for (c, p), rs in sorted(groups.items()):
    cpu = [r["server_cpu_us_per_request"] for r in rs if r["server_cpu_us_per_request"] is not None]
    ent = [r["client_enters_per_request"] for r in rs if r["client_enters_per_request"] is not None]
    print(f"| {c} | {p} | {len(rs)} | {med([r['requests_per_sec'] for r in rs]):.0f} "
          f"| {med([r['latency_us']['p50'] for r in rs]):.1f} "
          f"| {med([r['latency_us']['p99'] for r in rs]):.1f} "
          f"| {med([r['latency_us']['p99_9'] for r in rs]):.1f} "
          f"| {med(cpu):.2f} | {med(ent):.4f} | {sum(r['errors'] for r in rs)} |")
    print(f"  per round CPU µs/req: {[round(x, 2) for x in cpu]}", file=sys.stderr)
PY
