#!/usr/bin/env bash
# The heavy request (issues #7, #20): `GET /work?ms=200` at a low rate while an open-loop
# load of light `GET /` runs at a fixed rate; p50/p99/p99.9/max and errors of the light
# requests, and the light requests over 100 ms before the first heavy response came back
# (`slow_first_burn`) and after it (`slow_after_first_burn`), for Node.js (1 process, cluster
# of 2), FastAPI on Uvicorn (2 workers, the heavy route as `def` and as `async def`), tokio
# (2 workers, the work on `spawn_blocking`: bench/peers/tokio-hyper's tokio-work) and percore
# (2 shards: adaptive offload at its defaults, inline work with takeover off and with each
# steering mode, and the work forced to the blocking pool). Peers that are not installed are
# skipped.
#
#   flock /tmp/percore-bench.lock bash bench/scripts/steer_heavy.sh
#
# Environment: ROUNDS (3), DURATION (10 s measured), WARMUP (1 s), RATE (light req/s, 400),
# HEAVY_RATE (heavy req/s, 2; 0 gives the no-burn baseline), HEAVY_MS (200), ONLY
# (space-separated config names),
# PAIRED=1 (each round runs every configuration twice, a no-burn pass then a burn pass, each
# on a fresh server, and the summary adds the burn/no-burn ratio of the light p99),
# LIGHT_CLOSE=1 (each light request on a new connection; default: a keep-alive pool that
# opens a connection only when none is idle), FASTAPI_VENV (a virtualenv with uvicorn),
# PERCORE_BASE (another percore binary, e.g. main's: adds the rows base-adaptive and
# base-spawn_blocking, run with it and interleaved with this tree's rows in every round),
# PERCORE (the percore binary to run for the percore-* rows; default: this tree's, built),
# TOKIO_WORK (the tokio-work binary; default: bench/peers' release build, built).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
OUT=${OUT:-$(mktemp -d /tmp/steer_heavy.XXXX)}
mkdir -p "$OUT"
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-1}
RATE=${RATE:-400}
HEAVY_RATE=${HEAVY_RATE:-2}
HEAVY_MS=${HEAVY_MS:-200}
PORT=${PORT:-18090}
source "$ROOT/bench/scripts/steer_lib.sh"
trap stop_server EXIT

if [[ -z ${PERCORE:-} ]]; then
    cargo build --release -q -p percore-cli || exit 1
    PERCORE="$ROOT/target/release/percore"
fi
P="$PERCORE serve --shards 2 --quiet --drain-timeout-secs 1 --listen 127.0.0.1:$PORT"
TOKIO_WORK=${TOKIO_WORK:-$ROOT/bench/peers/target/release/tokio-work}
if [[ $TOKIO_WORK == "$ROOT/bench/peers/target/release/tokio-work" ]] &&
    [[ -z ${ONLY:-} || " $ONLY " == *" tokio-spawn_blocking "* ]]; then
    cargo build --release -q --manifest-path bench/peers/Cargo.toml -p tokio-hyper --bin tokio-work ||
        echo "tokio-work did not build: its row is skipped" >&2
fi

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
    "tokio-spawn_blocking|/work?ms=$HEAVY_MS|$TOKIO_WORK --listen 127.0.0.1:$PORT --threads 2"
    "base-adaptive|/work?ms=$HEAVY_MS|${PERCORE_BASE:-} serve --shards 2 --quiet --drain-timeout-secs 1 --listen 127.0.0.1:$PORT --steer reuseport"
    "base-spawn_blocking|/work?ms=$HEAVY_MS\&offload=1|${PERCORE_BASE:-} serve --shards 2 --quiet --drain-timeout-secs 1 --listen 127.0.0.1:$PORT --steer reuseport"
    "percore-adaptive|/work?ms=$HEAVY_MS|$P --steer reuseport"
    "percore-spawn_blocking|/work?ms=$HEAVY_MS\&offload=1|$P --steer reuseport"
)

available() {
    case $1 in
        node-*) command -v node >/dev/null ;;
        uvicorn*) [[ -n $FASTAPI_VENV && -x $FASTAPI_VENV/bin/uvicorn ]] ;;
        tokio-*) [[ -x $TOKIO_WORK ]] ;;
        base-*) [[ -n ${PERCORE_BASE:-} && -x $PERCORE_BASE ]] ;;
        *) true ;;
    esac
}

# What the machine did during a pass, to tell its stalls from the server's: microseconds in
# which every non-idle task waited for I/O (/proc/pressure/io "full"), CPU time stolen by
# the hypervisor (ms, /proc/stat), the server's major page faults (code or data read back
# from disk: a proactive reclaimer can evict a binary's cold pages), sampled before and after.
machine_counters() {
    local io steal majflt
    io=$(awk '/^full/ { sub("total=", "", $5); print $5 }' /proc/pressure/io 2>/dev/null)
    steal=$(awk '/^cpu / { print $9 }' /proc/stat)
    majflt=$(awk '{ print $12 }' "/proc/$SERVER_PID/stat" 2>/dev/null)
    echo "${io:-0} ${steal:-0} ${majflt:-0}"
}

machine_delta() {
    local a b
    read -r -a a <<<"$1"
    read -r -a b <<<"$2"
    echo "{\"io_full_ms\": $(((b[0] - a[0]) / 1000)), \"steal_ms\": $(((b[1] - a[1]) * 10)), \"server_majflt\": $((b[2] - a[2]))}"
}

PHASES=(burn)
[[ ${PAIRED:-0} == 1 ]] && PHASES=(noburn burn)
echo "results in $OUT" >&2
echo "# $(date -u '+%F %T') UTC, tree $(git rev-parse --short HEAD), load average $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$OUT/header" >&2
for round in $(seq 1 "$ROUNDS"); do
    for entry in "${CONFIGS[@]}"; do
        IFS='|' read -r name path cmd <<<"$entry"
        path=${path//\\/}
        [[ -n ${ONLY:-} && " $ONLY " != *" $name "* ]] && continue
        if ! available "$name"; then
            [[ $round == 1 ]] && echo "$name: skipped (not installed)" | tee -a "$OUT/skipped" >&2
            continue
        fi
        for phase in "${PHASES[@]}"; do
            heavy_rate=$HEAVY_RATE
            [[ $phase == noburn ]] && heavy_rate=0
            # shellcheck disable=SC2086
            start $cmd
            if ! wait_port "$PORT"; then
                stop_server
                echo "$name: did not start" | tee -a "$OUT/skipped" >&2
                continue
            fi
            sleep 0.5
            load=$(cut -d' ' -f1 /proc/loadavg)
            machine0=$(machine_counters)
            result=$(timeout $((DURATION + WARMUP + 60)) "$PY" "$LOAD" --addr "127.0.0.1:$PORT" \
                --rate "$RATE" --duration "$DURATION" --warmup "$WARMUP" \
                --heavy-rate "$heavy_rate" --heavy-path "$path" ${LIGHT_CLOSE:+--light-close})
            machine=$(machine_delta "$machine0" "$(machine_counters)")
            stop_server
            [[ -n $result ]] || result=null
            echo "{\"config\": \"$name\", \"round\": $round, \"phase\": \"$phase\", \"load1\": $load, \"machine\": $machine, \"result\": $result}" | tee -a "$OUT/results.jsonl"
            sleep 1
        done
    done
done

# Median over rounds of each figure, one markdown row per configuration.
"$PY" - "$OUT/results.jsonl" <<'PYEOF'
import json, statistics, sys
rows = {}
pairs = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["result"] is None:
        continue
    phase = r.get("phase", "burn")
    rows.setdefault(r["config"] + ("" if phase == "burn" else " (no burn)"), []).append(r["result"])
    r["result"]["machine"] = r.get("machine", {})
    pairs.setdefault(r["config"], {}).setdefault(r["round"], {})[phase] = r["result"]
keys = ["p50_ms", "p99_ms", "p999_ms", "max_ms", "light_errors", "light_ok", "light_conns_opened", "heavy_ok", "heavy_errors", "heavy_p50_ms", "slow_first_burn", "slow_after_first_burn", "heavy_inline"]
print("| config | rounds | " + " | ".join(keys) + " |")
print("|---" * (len(keys) + 2) + "|")
for name, results in rows.items():
    med = []
    for k in keys:
        vals = [x[k] for x in results if x.get(k) is not None]
        med.append(f"{statistics.median(vals):g}" if vals else "-")
    print(f"| {name} | {len(results)} | " + " | ".join(med) + " |")
paired = {n: [p for p in rounds.values() if "noburn" in p and "burn" in p] for n, rounds in pairs.items()}
paired = {n: p for n, p in paired.items() if p}
if paired:
    print()
    print("| config | rounds | no-burn p99 ms (median) | burn p99 ms (median) | burn / no-burn | per-round ratios | slow first burn (per round) | slow after (of which between burns), per round | inline burns (per round) | burn pass: client late max ms / I/O full ms / server majflt (per round) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, ps in paired.items():
        nb = [p["noburn"]["p99_ms"] for p in ps]
        b = [p["burn"]["p99_ms"] for p in ps]
        ratios = [y / x for x, y in zip(nb, b) if x]
        first = [p["burn"]["slow_first_burn"] for p in ps]
        after = [f'{p["burn"]["slow_after_first_burn"]} ({p["burn"]["slow_after_between_burns"]})'
                 if "slow_after_between_burns" in p["burn"] else str(p["burn"]["slow_after_first_burn"])
                 for p in ps]
        inline = [p["burn"].get("heavy_inline", "-") for p in ps]
        machine = [f'{p["burn"].get("client_late_max_ms", "-")}/{p["burn"]["machine"].get("io_full_ms", "-")}/{p["burn"]["machine"].get("server_majflt", "-")}' for p in ps]
        mnb, mb = statistics.median(nb), statistics.median(b)
        print(f"| {name} | {len(ps)} | {mnb:g} | {mb:g} | {mb / mnb:.2f} | "
              + ", ".join(f"{x:.2f}" for x in ratios) + " | "
              + ", ".join(map(str, first)) + " | " + ", ".join(map(str, after)) + " | "
              + ", ".join(map(str, inline)) + " | " + ", ".join(machine) + " |")
PYEOF
