#!/usr/bin/env bash
# The heavy request (issue #7): `GET /work?ms=200` at a low rate while an open-loop load of
# light `GET /` runs at a fixed rate; p50/p99/p99.9/max and errors of the light requests, for
# Node.js (1 process, cluster of 2), FastAPI on Uvicorn (2 workers, the heavy route as `def`
# and as `async def`) and percore (2 shards: inline work with takeover off and with each
# steering mode, and the work on spawn_blocking). Peers that are not installed are skipped.
#
#   flock /tmp/percore-bench.lock bash bench/scripts/steer_heavy.sh
#
# Environment: ROUNDS (3), DURATION (10 s measured), WARMUP (1 s), RATE (light req/s, 400),
# HEAVY_RATE (heavy req/s, 2; 0 gives the no-burn baseline), HEAVY_MS (200), ONLY
# (space-separated config names),
# LIGHT_CLOSE=1 (each light request on a new connection; default: a keep-alive pool that
# opens a connection only when none is idle).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
OUT=${OUT:-$(mktemp -d /tmp/steer_heavy.XXXX)}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-1}
RATE=${RATE:-400}
HEAVY_RATE=${HEAVY_RATE:-2}
HEAVY_MS=${HEAVY_MS:-200}
PORT=${PORT:-18090}
source "$ROOT/bench/scripts/steer_lib.sh"
trap stop_server EXIT

cargo build --release -q -p percore-cli || exit 1
PERCORE="$ROOT/target/release/percore"
P="$PERCORE serve --shards 2 --quiet --drain-timeout-secs 1 --listen 127.0.0.1:$PORT"

# name | heavy path | command
CONFIGS=(
    "node-1proc|/work?ms=$HEAVY_MS|node $ROOT/bench/peers/node/work.js --listen 127.0.0.1:$PORT --workers 1"
    "node-cluster2|/work?ms=$HEAVY_MS|node $ROOT/bench/peers/node/work.js --listen 127.0.0.1:$PORT --workers 2"
    "uvicorn2-def|/work?ms=$HEAVY_MS|env WORK_MODE=def $FASTAPI_VENV/bin/uvicorn work_app:app --app-dir $ROOT/bench/peers/fastapi --host 127.0.0.1 --port $PORT --workers 2 --loop uvloop --http httptools --no-access-log --log-level warning"
    "uvicorn2-async|/work?ms=$HEAVY_MS|env WORK_MODE=async $FASTAPI_VENV/bin/uvicorn work_app:app --app-dir $ROOT/bench/peers/fastapi --host 127.0.0.1 --port $PORT --workers 2 --loop uvloop --http httptools --no-access-log --log-level warning"
    "percore-inline-no-takeover|/work?ms=$HEAVY_MS\&inline=1|$P --steer reuseport --stall-ms 100000 --takeover-ms 100000"
    "percore-inline-reuseport|/work?ms=$HEAVY_MS\&inline=1|$P --steer reuseport"
    "percore-inline-cpu|/work?ms=$HEAVY_MS\&inline=1|$P --steer cpu"
    "percore-inline-balanced|/work?ms=$HEAVY_MS\&inline=1|$P --steer balanced"
    "percore-adaptive|/work?ms=$HEAVY_MS|$P --steer reuseport"
    "percore-spawn_blocking|/work?ms=$HEAVY_MS\&offload=1|$P --steer reuseport"
)

available() {
    case $1 in
        node-*) command -v node >/dev/null ;;
        uvicorn*) [[ -n $FASTAPI_VENV && -x $FASTAPI_VENV/bin/uvicorn ]] ;;
        *) true ;;
    esac
}

echo "results in $OUT" >&2
for round in $(seq 1 "$ROUNDS"); do
    for entry in "${CONFIGS[@]}"; do
        IFS='|' read -r name path cmd <<<"$entry"
        path=${path//\\/}
        [[ -n ${ONLY:-} && " $ONLY " != *" $name "* ]] && continue
        if ! available "$name"; then
            [[ $round == 1 ]] && echo "$name: skipped (not installed)" | tee -a "$OUT/skipped" >&2
            continue
        fi
        # shellcheck disable=SC2086
        start $cmd
        if ! wait_port "$PORT"; then
            stop_server
            echo "$name: did not start" | tee -a "$OUT/skipped" >&2
            continue
        fi
        sleep 0.5
        result=$(timeout $((DURATION + WARMUP + 60)) "$PY" "$LOAD" --addr "127.0.0.1:$PORT" \
            --rate "$RATE" --duration "$DURATION" --warmup "$WARMUP" \
            --heavy-rate "$HEAVY_RATE" --heavy-path "$path" ${LIGHT_CLOSE:+--light-close})
        stop_server
        echo "{\"config\": \"$name\", \"round\": $round, \"result\": $result}" | tee -a "$OUT/results.jsonl"
        sleep 1
    done
done

# Median over rounds of each figure, one markdown row per configuration.
"$PY" - "$OUT/results.jsonl" <<'PYEOF'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    rows.setdefault(r["config"], []).append(r["result"])
keys = ["p50_ms", "p99_ms", "p999_ms", "max_ms", "light_errors", "light_ok", "light_conns_opened", "heavy_ok", "heavy_errors", "heavy_p50_ms", "slow_first_burn", "slow_after_first_burn"]
print("| config | rounds | " + " | ".join(keys) + " |")
print("|---" * (len(keys) + 2) + "|")
for name, results in rows.items():
    med = []
    for k in keys:
        vals = [x[k] for x in results if x.get(k) is not None]
        med.append(f"{statistics.median(vals):g}" if vals else "-")
    print(f"| {name} | {len(results)} | " + " | ".join(med) + " |")
PYEOF
