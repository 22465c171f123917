#!/usr/bin/env bash
# io_uring_enter calls and SQEs per request during an echo load, counted with perf
# tracepoints: `percore echo` (one shard, CPU 1) under percore-bench echo (one shard, CPU 0).
# Two perf sessions run over the same window: one for the server process only (-p) and one
# system-wide (-a: server + load generator + anything else on the machine).
#
#   bench/scripts/enter_count.sh                  # 100 and 256 connections, 3 rounds
#   CONFIGS="100:1 256:16" ROUNDS=1 bench/scripts/enter_count.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/scripts/common.sh

CONFIGS=${CONFIGS:-"100:1 256:1"}
OUT=${OUT:-$(mktemp -d /tmp/enter_count.XXXXXX)}
EVENTS=syscalls:sys_enter_io_uring_enter,io_uring:io_uring_submit_req

if ! command -v perf >/dev/null; then
    echo "perf is missing: apt-get install -y linux-perf" >&2
    exit 1
fi

PERF_PIDS=()
cleanup() {
    local pid
    for pid in "${PERF_PIDS[@]}"; do
        kill -INT "$pid" 2>/dev/null || true
    done
    stop_server
}
trap cleanup EXIT INT TERM
build
start_server "$PORT"
echo "server PID $SERVER_PID on CPU 1; results in $OUT" >&2

for round in $(seq 1 "$ROUNDS"); do
    for config in $CONFIGS; do
        conns=${config%%:*}
        pipeline=${config##*:}
        tag="$conns-$pipeline-$round"
        # perf counts for exactly DURATION seconds, starting one second into the bench's
        # measured window; requests in it are the bench's steady rate × DURATION.
        timeout $((WARMUP + DURATION + 32)) taskset -c 0 "$BIN/percore-bench" echo \
            --target "127.0.0.1:$PORT" --shards 1 --connections "$conns" \
            --pipeline "$pipeline" --duration-secs $((DURATION + 2)) \
            --warmup-secs "$WARMUP" --server-pid "$SERVER_PID" --json \
            >"$OUT/bench-$tag.json" &
        bench=$!
        sleep $((WARMUP + 1))
        PERF_PIDS=()
        perf stat -x, -e "$EVENTS" -p "$SERVER_PID" -o "$OUT/server-$tag.csv" \
            -- sleep "$DURATION" &
        PERF_PIDS+=($!)
        perf stat -x, -a -e "$EVENTS" -o "$OUT/all-$tag.csv" -- sleep "$DURATION" &
        PERF_PIDS+=($!)
        wait "${PERF_PIDS[@]}"
        PERF_PIDS=()
        wait "$bench"
        echo "round $round, $conns conns x$pipeline done" >&2
    done
done

python3 - "$OUT" "$DURATION" <<'PY'
import glob, json, os, statistics, sys
out, duration = sys.argv[1], float(sys.argv[2])
def counts(path):
    c = {}
    for line in open(path):
        f = line.strip().split(",")
        if len(f) > 2 and f[0].isdigit():
            c[f[2]] = int(f[0])
    return c
rows = {}
for b in sorted(glob.glob(f"{out}/bench-*.json")):
    tag = os.path.basename(b)[6:-5]
    r = json.load(open(b))
    reqs = r["requests_per_sec"] * duration
    s, a = counts(f"{out}/server-{tag}.csv"), counts(f"{out}/all-{tag}.csv")
    e, q = "syscalls:sys_enter_io_uring_enter", "io_uring:io_uring_submit_req"
    rows.setdefault((r["connections"], r["pipeline"]), []).append(dict(
        rps=r["requests_per_sec"], errors=r["errors"],
        s_enter=s.get(e, 0) / reqs, s_sqe=s.get(q, 0) / reqs,
        a_enter=a.get(e, 0) / reqs, a_sqe=a.get(q, 0) / reqs,
        c_enter=r["client_enters_per_request"] or float("nan"),
        cpu=r["server_cpu_us_per_request"] or float("nan")))
print("| conns | pipeline | rounds | req/s | server enters/req | server SQEs/req | all enters/req | all SQEs/req | client loop enters/req | server CPU µs/req | errors |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for (c, p), rs in sorted(rows.items()):
    m = lambda k: statistics.median(x[k] for x in rs)
    print(f"| {c} | {p} | {len(rs)} | {m('rps'):.0f} | {m('s_enter'):.3f} | {m('s_sqe'):.3f} "
          f"| {m('a_enter'):.3f} | {m('a_sqe'):.3f} | {m('c_enter'):.4f} | {m('cpu'):.2f} "
          f"| {sum(x['errors'] for x in rs)} |")
PY
