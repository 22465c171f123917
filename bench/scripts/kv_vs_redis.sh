#!/usr/bin/env bash
# percore kv against redis-server with redis-benchmark, same machine, same run (BENCH.md).
#
# Servers: redis-server (one event loop) on CPU 1; `percore kv --shards 1` on CPU 1;
# redis-server --io-threads 2 on CPUs 0 and 1; `percore kv` with 2 shards on CPUs 0 and 1.
# Load: redis-benchmark on CPU 0.
# Passes: SET and GET, 50 and 256 clients, without and with -P 16; keys spread over a
# 100000-key space (-r 100000, so a 2-shard server sees keys of both shards), 3-byte values.
# Each pass runs ROUNDS times, servers interleaved (A B C, A B C, ...); medians reported.
# Server CPU per operation = Δ(utime+stime) of the server process (all its threads, from
# /proc/PID/stat) over the pass / operations.
#
# Usage: bench/scripts/kv_vs_redis.sh [--rounds N] [--ops N] [--ops-pipelined N] [--out DIR]
#        [--clients "50 256"]
# PERCORE_BIN=path uses that binary instead of building target/release/percore.
# Wrap in `flock /tmp/percore-bench.lock` on a shared machine.
set -euo pipefail
cd "$(dirname "$0")/../.."

ROUNDS=${ROUNDS:-3}
OPS=${OPS:-200000}
OPS_PIPELINED=${OPS_PIPELINED:-2000000}
OUT=${OUT:-/tmp/kv-vs-redis}
CLIENTS=${CLIENTS:-50 256}
PERCORE_BIN=${PERCORE_BIN:-}
while [[ $# -gt 0 ]]; do
    case $1 in
        --rounds) ROUNDS=$2; shift 2 ;;
        --ops) OPS=$2; shift 2 ;;
        --ops-pipelined) OPS_PIPELINED=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --clients) CLIENTS=$2; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done

need() {
    # $1: command, $2: Debian package.
    if ! command -v "$1" >/dev/null 2>&1; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            echo "installing $2 (for $1)"
            apt-get update -qq >/dev/null
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
        else
            echo "missing $1: install the $2 package" >&2
            exit 1
        fi
    fi
}
need redis-server redis-server
need redis-benchmark redis-tools
need taskset util-linux
need python3 python3

if [[ -z $PERCORE_BIN ]]; then
    cargo build --release -q -p percore-cli
    PERCORE_BIN=target/release/percore
fi
mkdir -p "$OUT"
rm -f "$OUT"/results.csv

PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT
trap 'exit 143' INT TERM

wait_port() {
    local port=$1 i
    for i in $(seq 1 100); do
        if redis-cli -p "$port" PING >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.1
    done
    echo "nothing answers on port $port" >&2
    exit 1
}

declare -A PORT PID
PORT[redis]=16390
PORT[percore-1]=16391
PORT[percore-2]=16392
PORT[redis-io2]=16393
taskset -c 1 redis-server --port "${PORT[redis]}" --bind 127.0.0.1 --save '' \
    --appendonly no --daemonize no --loglevel warning >"$OUT/redis.log" 2>&1 &
PID[redis]=$!
PIDS+=("${PID[redis]}")
taskset -c 1 "$PERCORE_BIN" kv --shards 1 --quiet \
    --listen "127.0.0.1:${PORT[percore-1]}" >"$OUT/percore-1.log" 2>&1 &
PID[percore-1]=$!
PIDS+=("${PID[percore-1]}")
"$PERCORE_BIN" kv --cores 0,1 --quiet \
    --listen "127.0.0.1:${PORT[percore-2]}" >"$OUT/percore-2.log" 2>&1 &
PID[percore-2]=$!
PIDS+=("${PID[percore-2]}")
taskset -c 0,1 redis-server --port "${PORT[redis-io2]}" --bind 127.0.0.1 --save '' \
    --appendonly no --daemonize no --loglevel warning --io-threads 2 \
    --io-threads-do-reads yes >"$OUT/redis-io2.log" 2>&1 &
PID[redis-io2]=$!
PIDS+=("${PID[redis-io2]}")
for s in redis percore-1 redis-io2 percore-2; do
    wait_port "${PORT[$s]}"
done

ticks() {
    # utime + stime of a process (all threads), in clock ticks.
    awk '{print $14 + $15}' "/proc/$1/stat"
}
HZ=$(getconf CLK_TCK)

echo "round,server,test,clients,pipeline,ops,ops_per_s,cpu_s" >"$OUT/results.csv"
for round in $(seq 1 "$ROUNDS"); do
    for clients in $CLIENTS; do
        for pipeline in 1 16; do
            ops=$OPS
            [[ $pipeline -gt 1 ]] && ops=$OPS_PIPELINED
            for test in set get; do
                for s in redis percore-1 redis-io2 percore-2; do
                    before=$(ticks "${PID[$s]}")
                    csv=$(taskset -c 0 timeout 300 redis-benchmark -h 127.0.0.1 \
                        -p "${PORT[$s]}" -t "$test" -n "$ops" -c "$clients" -P "$pipeline" \
                        -r 100000 -d 3 --csv 2>"$OUT/bench-stderr.txt")
                    after=$(ticks "${PID[$s]}")
                    if [[ -s "$OUT/bench-stderr.txt" ]]; then
                        echo "redis-benchmark complained ($s $test): $(cat "$OUT/bench-stderr.txt")" >&2
                    fi
                    rps=$(echo "$csv" | awk -F'"' 'NR==2 {print $4}')
                    cpu=$(python3 -c "print(($after - $before) / $HZ)")
                    echo "$round,$s,$test,$clients,$pipeline,$ops,$rps,$cpu" >>"$OUT/results.csv"
                    echo "round $round: $s $test c=$clients P=$pipeline: $rps ops/s, ${cpu}s CPU"
                done
            done
        done
    done
done

python3 - "$OUT/results.csv" <<'PY' | tee "$OUT/table.md"
import csv, statistics, sys
from collections import defaultdict
rows = list(csv.DictReader(open(sys.argv[1])))
runs = defaultdict(list)
for r in rows:
    key = (r["test"], int(r["clients"]), int(r["pipeline"]), r["server"])
    ops = int(r["ops"])
    runs[key].append((float(r["ops_per_s"]), float(r["cpu_s"]) * 1e6 / ops))
print("| test | clients | pipeline | server | ops/s (median) | ops/s ÷ redis | ops/s ÷ redis-io2 | server CPU µs/op (median; rounds) | CPU/op ÷ redis |")
print("|---|---|---|---|---|---|---|---|---|")
for test in ("set", "get"):
    for clients in (50, 256):
        for pipeline in (1, 16):
            base = runs.get((test, clients, pipeline, "redis"))
            if not base:
                continue
            base_rps = statistics.median(r for r, _ in base)
            base_cpu = statistics.median(c for _, c in base)
            io2 = runs.get((test, clients, pipeline, "redis-io2"))
            io2_rps = statistics.median(r for r, _ in io2) if io2 else None
            for server in ("redis", "percore-1", "redis-io2", "percore-2"):
                got = runs.get((test, clients, pipeline, server))
                if not got:
                    continue
                rps = statistics.median(r for r, _ in got)
                cpu = statistics.median(c for _, c in got)
                rounds = ", ".join(f"{c:.2f}" for _, c in got)
                print(f"| {test.upper()} | {clients} | {'-P 16' if pipeline > 1 else 'none'} | {server} | "
                      f"{rps:,.0f} | {rps / base_rps:.2f} | {(rps / io2_rps) if io2_rps else float('nan'):.2f} | **{cpu:.2f}** ({rounds}) | {cpu / base_cpu:.2f} |")
PY
