#!/usr/bin/env bash
# Accept rate per steering mode: wrk with `Connection: close`, so every request is a new
# connection (accept, maybe hand-over, one request, close); requests/s = connections/s.
# percore with 2 shards; wrk on 1 thread. Rounds interleave the modes; medians are printed.
#
#   flock /tmp/percore-bench.lock bash bench/scripts/steer_accept.sh
#
# Environment: ROUNDS (3), DURATION (5 s), CONNS (50).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
OUT=${OUT:-$(mktemp -d /tmp/steer_accept.XXXX)}
mkdir -p "$OUT"
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
CONNS=${CONNS:-50}
PORT=${PORT:-18097}
source "$ROOT/bench/scripts/steer_lib.sh"
trap stop_server EXIT
command -v wrk >/dev/null || { echo "wrk is not installed" >&2; exit 1; }
cargo build --release -q -p percore-cli || exit 1

for round in $(seq 1 "$ROUNDS"); do
    for mode in reuseport cpu balanced; do
        start "$ROOT/target/release/percore" serve --shards 2 --quiet --drain-timeout-secs 1 \
            --steer "$mode" --listen "127.0.0.1:$PORT"
        wait_port "$PORT" || { stop_server; continue; }
        out=$(wrk -t1 -c"$CONNS" -d"${DURATION}s" -H "Connection: close" "http://127.0.0.1:$PORT/" 2>&1)
        stop_server
        rps=$(awk '/^Requests\/sec/ { print $2 }' <<<"$out")
        errs=$(awk '/Socket errors|Non-2xx/ { print }' <<<"$out" | tr '\n' ' ')
        echo "$mode $round $rps ${errs:-no errors}" | tee -a "$OUT/results.txt"
        sleep 1
    done
done
echo "| steering | connections/s (median of $ROUNDS) |"
echo "|---|---|"
for mode in reuseport cpu balanced; do
    awk -v m="$mode" '$1 == m { print $3 }' "$OUT/results.txt" | sort -n |
        awk -v m="$mode" '{ v[NR] = $1 } END { if (NR) printf "| %s | %s |\n", m, v[int((NR + 1) / 2)] }'
done
