#!/usr/bin/env bash
# Does percore-bench out-drive wrk? One `percore serve` (HTTP demo, one shard on CPU 1), then
# alternately `wrk -t1` and `percore-bench http --shards 1` on CPU 0 against it, the same
# connections and duration, ROUNDS interleaved rounds (the order flips each round), medians
# and their ratio. Run it under the shared measuring lock:
#
#   flock /tmp/percore-bench.lock bench/scripts/bench_vs_wrk.sh
#   ROUNDS=5 PASSES="256:1" flock /tmp/percore-bench.lock bench/scripts/bench_vs_wrk.sh
#   TARGET=raw-uring flock /tmp/percore-bench.lock bench/scripts/bench_vs_wrk.sh
#
# TARGET picks the server on CPU 1: `percore` (default, the HTTP demo) or `raw-uring` (the
# minimal io_uring responder of the peer harness, built if missing): a server cheaper per
# request than the clients, so the load generators, not the server, set the pace.
#
# PASSES are CONNS:PIPELINE (wrk pipelines with bench/scripts/peers/pipeline.lua).
# Besides requests/s it records what each load generator itself spent: its utime+stime per
# request (wrk: /usr/bin/time over the measured run; percore-bench: /proc/self/stat at the
# window's edges), which shows the headroom when the server, not the client, is the limit.
#
# Each tool gets WARMUP seconds of load before its measured DURATION (wrk: a separate
# discarded run; percore-bench: its --warmup). Server CPU per request comes from the
# server's /proc/PID/stat around the measured run (percore-bench reads it itself at the
# window's edges; for wrk the script reads it just before and after).
set -euo pipefail
cd "$(dirname "$0")/../.."
# Our defaults first: common.sh only fills in what is still unset.
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
PASSES=${PASSES:-"100:1 256:16"}
PORT=${PORT:-18091}
source bench/scripts/common.sh

OUT=${OUT:-$(mktemp -d /tmp/bench_vs_wrk.XXXXXX)}
mkdir -p "$OUT"
CLK_TCK=$(getconf CLK_TCK)
URL="http://127.0.0.1:$PORT/"

command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install -y wrk)" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "/usr/bin/time is missing (apt-get install -y time)" >&2; exit 1; }
trap stop_server EXIT INT TERM
build
TARGET=${TARGET:-percore}
case $TARGET in
    percore) start_http_server "$PORT" ;;
    raw-uring)
        RAW=bench/peers/target/release/raw-uring
        [[ -x $RAW ]] || cargo build --release --quiet --manifest-path bench/peers/Cargo.toml -p raw-uring
        taskset -c 1 "$RAW" --listen "127.0.0.1:$PORT" --threads 1 &
        SERVER_PID=$!
        wait_listening "$PORT"
        ;;
    *) echo "unknown TARGET $TARGET (percore or raw-uring)" >&2; exit 2 ;;
esac
echo "$TARGET server PID $SERVER_PID on CPU 1; results in $OUT" >&2

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$SERVER_PID/stat"; }

run_wrk() {
    local round=$1 conns=$2 pipeline=$3 tag="$2x$3.$1" script=()
    ((pipeline > 1)) && script=(-s bench/scripts/peers/pipeline.lua)
    timeout $((WARMUP + 10)) taskset -c 0 wrk -t1 -c"$conns" -d"${WARMUP}s" "${script[@]}" "$URL" \
        -- "$pipeline" >/dev/null
    local before after
    before=$(cpu_ticks)
    timeout $((DURATION + 20)) /usr/bin/time -f "%U %S" -o "$OUT/wrk.$tag.time" \
        taskset -c 0 wrk -t1 -c"$conns" -d"${DURATION}s" --latency "${script[@]}" "$URL" \
        -- "$pipeline" >"$OUT/wrk.$tag.txt"
    after=$(cpu_ticks)
    python3 - "$OUT/wrk.$tag.txt" "$OUT/wrk.$tag.time" "$((after - before))" "$CLK_TCK" \
        "$conns" "$pipeline" <<'PY' >>"$OUT/runs.jsonl"
import json, re, sys
text = open(sys.argv[1]).read()
user, system = (float(x) for x in open(sys.argv[2]).read().split()[-2:])
ticks, hz, conns, pipeline = (int(x) for x in sys.argv[3:7])
def us(v):
    m = re.match(r"([\d.]+)(us|ms|s)", v)
    return float(m.group(1)) * {"us": 1, "ms": 1e3, "s": 1e6}[m.group(2)]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
total = int(re.search(r"(\d+) requests in", text).group(1))
lat = dict(re.findall(r"^\s+(50|90|99)%\s+(\S+)", text, re.M))
errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", text))
m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
errors += int(m.group(1)) if m else 0
# wrk's latency is per write (a batch) when pipelining: not comparable, left out.
p = (lambda k: us(lat[k])) if pipeline == 1 else (lambda k: None)
print(json.dumps({"tool": "wrk", "conns": conns, "pipeline": pipeline, "rps": rps,
                  "p50": p("50"), "p90": p("90"), "p99": p("99"),
                  "cpu_us": ticks / hz * 1e6 / max(total, 1),
                  "client_cpu_us": (user + system) * 1e6 / max(total, 1), "errors": errors}))
PY
}

run_bench() {
    local round=$1 conns=$2 pipeline=$3 tag="$2x$3.$1"
    timeout $((WARMUP + DURATION + 20)) taskset -c 0 "$BIN/percore-bench" http \
        --target "127.0.0.1:$PORT" --shards 1 -c "$conns" --pipeline "$pipeline" \
        -d "$DURATION" -w "$WARMUP" --server-pid "$SERVER_PID" --clk-tck "$CLK_TCK" \
        --json -q >"$OUT/bench.$tag.json"
    python3 - "$OUT/bench.$tag.json" <<'PY' >>"$OUT/runs.jsonl"
import json, sys
r = json.load(open(sys.argv[1]))
l = r["latency_us"]
print(json.dumps({"tool": "percore-bench", "conns": r["connections"], "pipeline": r["pipeline"],
                  "rps": r["requests_per_sec"], "p50": l["p50"], "p90": l["p90"], "p99": l["p99"],
                  "cpu_us": r["server_cpu_us_per_request"],
                  "client_cpu_us": r["client_cpu_us_per_request"], "errors": r["errors"]}))
PY
}

for round in $(seq 1 "$ROUNDS"); do
    for pass in $PASSES; do
        conns=${pass%%:*}
        pipeline=${pass##*:}
        if (( round % 2 )); then
            run_wrk "$round" "$conns" "$pipeline"; run_bench "$round" "$conns" "$pipeline"
        else
            run_bench "$round" "$conns" "$pipeline"; run_wrk "$round" "$conns" "$pipeline"
        fi
    done
    echo "round $round done" >&2
done

python3 - "$OUT/runs.jsonl" "$DURATION" "$WARMUP" "$ROUNDS" "$TARGET" <<'PY' | tee "$OUT/report.md"
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
duration, warmup, rounds, target = sys.argv[2:6]
server = "`percore serve` 1 shard" if target == "percore" else f"`{target}` 1 thread"
med = lambda xs: statistics.median(xs) if xs else None
fmt = lambda v, spec: "n/a" if v is None else format(v, spec)
print(f"{server} on CPU 1; load generator on CPU 0; {warmup} s warm-up + "
      f"{duration} s per run; {rounds} interleaved rounds; medians.")
print()
print("| conns × pipeline | load generator | req/s (median) | req/s per round | p50 µs | p90 µs | p99 µs "
      "| server CPU µs/req | load generator CPU µs/req | errors |")
print("|---|---|---|---|---|---|---|---|---|---|")
ratios = []
for key in sorted({(r["conns"], r["pipeline"]) for r in runs}):
    rps = {}
    for tool in ["wrk", "percore-bench"]:
        rs = [r for r in runs if r["tool"] == tool and (r["conns"], r["pipeline"]) == key]
        if not rs:
            continue
        rps[tool] = med([r["rps"] for r in rs])
        per = ", ".join(f"{r['rps']:,.0f}" for r in rs)
        col = lambda k: med([r[k] for r in rs if r[k] is not None])
        print(f"| {key[0]} × {key[1]} | {tool} | **{rps[tool]:,.0f}** | {per} | {fmt(col('p50'), ',.0f')} "
              f"| {fmt(col('p90'), ',.0f')} | {fmt(col('p99'), ',.0f')} | {fmt(col('cpu_us'), '.2f')} "
              f"| {fmt(col('client_cpu_us'), '.2f')} | {sum(r['errors'] for r in rs)} |")
    if len(rps) == 2:
        ratios.append((key, rps["percore-bench"] / rps["wrk"]))
print()
for (c, p), ratio in ratios:
    print(f"- {c} × {p}: percore-bench ÷ wrk requests/s (medians) = **{ratio:.2f}×**")
PY
