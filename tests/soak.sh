#!/usr/bin/env bash
# The soak (R21, docs/reliability.md): `percore serve` and `percore kv`, two shards each,
# under a hostile mix for a bounded time (tests/soak_load.py: pipelined keep-alive requests
# checked byte for byte, reconnect storms, resets, half-closes, slow readers, kv commands and
# pub/sub with reconnects). Samples fds, RSS, operations in flight, receive buffers and open
# connections every second; passes when all return to their baseline after the load, RSS
# stays within its band, and both servers then stop cleanly (exit 0).
#
#   tests/soak.sh                  # 10 minutes
#   tests/soak.sh --minutes 2      # what tests/run.sh runs
#   tests/soak.sh --seconds 30 --release --out DIR
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=600
profile=debug
out=""
while (($#)); do
    case "$1" in
        --minutes) seconds=$(($2 * 60)); shift 2 ;;
        --seconds) seconds=$2; shift 2 ;;
        --release) profile=release; shift ;;
        --out) out=$2; shift 2 ;;
        -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "soak: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ -n "$out" ] || out=$(mktemp -d /tmp/percore-soak.XXXXXX)
mkdir -p "$out"

if [ "$profile" = release ]; then
    cargo build --quiet --release -p percore-cli
else
    cargo build --quiet -p percore-cli
fi
bin="target/$profile/percore"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT

# start NAME SERVICE ARGS...: runs the service, waits for its "listening" line (≤ 20 s),
# and prints PID,ADDR,ADMIN.
start() {
    local name=$1 service=$2
    shift 2
    local addr="127.0.0.1:$(free_port)" admin="127.0.0.1:$(free_port)"
    # No drain delay: the stop below checks the drain itself within 10 s.
    "$bin" "$service" --listen "$addr" --admin "$admin" --shards 2 --drain-delay 0 "$@" \
        2>"$out/$name.log" &
    local pid=$!
    pids+=("$pid")
    for _ in $(seq 200); do
        grep -q ' listening on ' "$out/$name.log" && break
        kill -0 "$pid" 2>/dev/null || { cat "$out/$name.log" >&2; exit 1; }
        sleep 0.1
    done
    grep -q ' listening on ' "$out/$name.log" || {
        echo "soak: $name did not start" >&2
        cat "$out/$name.log" >&2
        exit 1
    }
    echo "$pid,$addr,$admin"
}

# Started in this shell (not a subshell), so their pids stay known to cleanup.
start http serve --max-requests 100000 >"$out/http.target"
http=$(cat "$out/http.target")
start kv kv >"$out/kv.target"
kv=$(cat "$out/kv.target")

echo "soak: $seconds s of load; outputs in $out"
status=0
python3 tests/soak_load.py --http "$http" --kv "$kv" --seconds "$seconds" \
    --csv "$out/samples.csv" || status=1

# Both servers stop gracefully after the soak.
for entry in "$http" "$kv"; do
    pid=${entry%%,*}
    kill -TERM "$pid"
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "soak: FAIL: server $pid did not stop within 10 s of SIGTERM" >&2
        status=1
    elif ! wait "$pid"; then
        echo "soak: FAIL: server $pid exited non-zero after SIGTERM" >&2
        status=1
    fi
done
if grep -q 'panicked' "$out/http.log" "$out/kv.log"; then
    echo "soak: FAIL: a server logged a panic" >&2
    grep -h 'panicked' "$out/http.log" "$out/kv.log" | head -5 >&2
    status=1
fi
exit $status
