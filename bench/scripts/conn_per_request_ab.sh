#!/usr/bin/env bash
# A/B of two `percore` server binaries on connection-per-request HTTP load: wrk with
# `Connection: close`, so every request is a new connection (accept, one request, close).
# Reports connections/s and the server's CPU µs per connection (utime+stime of all its
# threads from /proc/PID/stat over wrk's run), servers interleaved (A B A B …, a fresh
# server each run), medians, B/A.
#
#   SERVER_A=/tmp/ab/percore-multishot SERVER_B=/tmp/ab/percore-single \
#   flock /tmp/percore-bench.lock bash bench/scripts/conn_per_request_ab.sh
#
# Knobs: ROUNDS (5), DURATION (8 s), CONNS (50), PORT (18098), LABEL_A, LABEL_B, OUT.
# Server: `serve --shards 1` pinned to CPU 1; wrk -t1 pinned to CPU 0; loopback only.
set -euo pipefail

: "${SERVER_A:?path to server binary A}"
: "${SERVER_B:?path to server binary B}"
LABEL_A=${LABEL_A:-A}
LABEL_B=${LABEL_B:-B}
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-8}
CONNS=${CONNS:-50}
PORT=${PORT:-18098}
OUT=${OUT:-$(mktemp -d /tmp/conn_ab.XXXX)}
mkdir -p "$OUT"
command -v wrk >/dev/null || { echo "wrk is not installed" >&2; exit 1; }
TICK=$(getconf CLK_TCK)
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
trap stop_server EXIT

# utime+stime of the whole process, in clock ticks (fields 14 and 15 of /proc/PID/stat).
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

run_one() {
    local label=$1 binary=$2 round=$3
    start_http_server "$PORT" "$binary" >>"$OUT/server.log" 2>&1
    local before after out rps
    before=$(cpu_ticks "$SERVER_PID")
    out=$(taskset -c 0 timeout $((DURATION + 20)) wrk -t1 -c"$CONNS" -d"${DURATION}s" \
        -H "Connection: close" "http://127.0.0.1:$PORT/" 2>&1)
    after=$(cpu_ticks "$SERVER_PID")
    stop_server
    rps=$(awk '/^Requests\/sec/ { print $2 }' <<<"$out")
    local total errors
    total=$(awk '/requests in/ { print $1 }' <<<"$out")
    errors=$(awk '/Socket errors|Non-2xx/ { printf "%s ", $0 }' <<<"$out")
    # CPU µs per connection over wrk's whole run (its requests = connections).
    awk -v l="$label" -v r="$round" -v rps="$rps" -v t="$total" -v b="$before" -v a="$after" \
        -v hz="$TICK" -v e="${errors:-none}" \
        'BEGIN { printf "%s %s %s %.2f %s\n", l, r, rps, (a - b) * 1e6 / hz / t, e }' |
        tee -a "$OUT/results.txt"
    sleep 1
}

for round in $(seq 1 "$ROUNDS"); do
    run_one "$LABEL_A" "$SERVER_A" "$round"
    run_one "$LABEL_B" "$SERVER_B" "$round"
done

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'; }
a_rps=$(awk -v l="$LABEL_A" '$1 == l { print $3 }' "$OUT/results.txt" | median)
b_rps=$(awk -v l="$LABEL_B" '$1 == l { print $3 }' "$OUT/results.txt" | median)
a_cpu=$(awk -v l="$LABEL_A" '$1 == l { print $4 }' "$OUT/results.txt" | median)
b_cpu=$(awk -v l="$LABEL_B" '$1 == l { print $4 }' "$OUT/results.txt" | median)
echo "| server | connections/s (median of $ROUNDS) | server CPU µs per connection |"
echo "|---|---|---|"
echo "| $LABEL_A | $a_rps | $a_cpu |"
echo "| $LABEL_B | $b_rps | $b_cpu |"
awk -v ar="$a_rps" -v br="$b_rps" -v ac="$a_cpu" -v bc="$b_cpu" \
    'BEGIN { printf "| B/A | %.3f | %.3f |\n", br / ar, bc / ac }'
echo "(rounds in $OUT/results.txt)"
