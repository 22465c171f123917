#!/usr/bin/env bash
# User-space memory per idle connection of `percore echo` (one shard, CPU 1): VmRSS before
# and with CONNECTIONS idle connections held by percore-bench idle (CPU 0). Two variants,
# each on a fresh server: connections that never sent a byte, and connections that had one
# byte echoed before going idle (--ping). Kernel socket memory is not in RSS.
#
#   bench/scripts/idle_memory.sh
#   CONNECTIONS=5000 bench/scripts/idle_memory.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/scripts/common.sh

CONNECTIONS=${CONNECTIONS:-15000}
PORT=${PORT:-7000}
SETTLE=${SETTLE:-2}
OUT=${OUT:-$(mktemp -d /tmp/idle_memory.XXXXXX)}

# Each process needs one fd per connection; the soft limit may be below the hard one.
ulimit -n "$(ulimit -Hn)"

BENCH_PID=""
cleanup() {
    if [[ -n "$BENCH_PID" ]]; then
        kill -TERM "$BENCH_PID" 2>/dev/null || true
        wait "$BENCH_PID" 2>/dev/null || true
    fi
    stop_server
}
trap cleanup EXIT INT TERM
build
echo "| variant | connections held | server fds | RSS before KiB | RSS held KiB | bytes/connection | RSS after close KiB |"
echo "|---|---|---|---|---|---|---|"
for variant in silent ping; do
    start_server "$PORT"
    sleep "$SETTLE"
    before=$(awk '/^VmRSS:/ {print $2}' "/proc/$SERVER_PID/status")
    flag=""
    [[ $variant == ping ]] && flag="--ping"
    # Holds for long enough to read the server's memory; bounded by timeout anyway.
    timeout 300 taskset -c 0 "$BIN/percore-bench" idle --target "127.0.0.1:$PORT" \
        --connections "$CONNECTIONS" --hold-secs $((SETTLE + 3)) $flag \
        >"$OUT/idle-$variant.txt" &
    BENCH_PID=$!
    for i in $(seq 1 1200); do
        grep -q "holding" "$OUT/idle-$variant.txt" 2>/dev/null && break
        kill -0 "$BENCH_PID" 2>/dev/null || break
        sleep 0.1
    done
    sleep "$SETTLE"
    held=$(awk '/^VmRSS:/ {print $2}' "/proc/$SERVER_PID/status")
    fds=$(ls "/proc/$SERVER_PID/fd" | wc -l)
    opened=$(sed -n 's/^idle: holding \([0-9]*\) .*/\1/p' "$OUT/idle-$variant.txt")
    wait "$BENCH_PID" || true
    BENCH_PID=""
    sleep "$SETTLE"
    after=$(awk '/^VmRSS:/ {print $2}' "/proc/$SERVER_PID/status")
    per=$(( (held - before) * 1024 / ${opened:-1} ))
    echo "| $variant | ${opened:-0} of $CONNECTIONS | $fds | $before | $held | $per | $after |"
    stop_server
done
