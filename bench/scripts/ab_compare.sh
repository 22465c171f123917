#!/usr/bin/env bash
# A/B of two `percore` server binaries on the echo load: server CPU µs per request and
# requests/s, servers interleaved (A B A B …, a fresh server for every run), medians, B/A.
#
#   SERVER_A=/tmp/ab/percore-pre SERVER_B=/tmp/ab/percore-post \
#   LOADGEN=/tmp/ab/percore-bench bench/scripts/ab_compare.sh
#
#   knobs: CONFIGS="100:1 256:16" (conns:pipeline), ROUNDS=3, DURATION=10, WARMUP=2,
#          PORT=7000, MESSAGE_SIZE=64, LABEL_A=A, LABEL_B=B, OUT=<dir>
#
# Builds nothing: it measures the binaries it is given (build each tree into its own
# CARGO_TARGET_DIR and copy the binaries aside first). Use ONE load generator for both.
# Server: `--shards 1` on CPU 1; load: one shard on CPU 0; loopback only. The load generator
# reads the server's utime+stime (all its threads) from /proc/PID/stat at the moments its
# measured window opens and closes. Every run is bounded (`timeout`), every server is stopped
# by PID (trap on exit: SIGTERM, SIGKILL after 5 s).
set -euo pipefail

: "${SERVER_A:?path to server binary A}"
: "${SERVER_B:?path to server binary B}"
: "${LOADGEN:?path to the percore-bench binary (the same one for both)}"
LABEL_A=${LABEL_A:-A}
LABEL_B=${LABEL_B:-B}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
PORT=${PORT:-7000}
MESSAGE_SIZE=${MESSAGE_SIZE:-64}
CONFIGS=${CONFIGS:-"100:1 256:16"}
# A run during which other processes (or the hypervisor) took more than MAX_FOREIGN of CPU 0
# or CPU 1 is disturbed: it is logged to discarded.jsonl and re-run, at most RETRIES times
# (the last attempt is kept, marked "disturbed": true).
MAX_FOREIGN=${MAX_FOREIGN:-0.15}
RETRIES=${RETRIES:-3}
OUT=${OUT:-$(mktemp -d /tmp/ab_compare.XXXXXX)}
CLK_TCK=$(getconf CLK_TCK)
mkdir -p "$OUT"

for bin in "$SERVER_A" "$SERVER_B" "$LOADGEN"; do
    [[ -x "$bin" ]] || { echo "not executable: $bin" >&2; exit 2; }
done

# start_server / stop_server (by PID, SIGTERM then SIGKILL) come from common.sh.
source "$(dirname "$0")/common.sh"

# cpu_ticks N: "busy steal" jiffies of CPU N so far (busy = user+nice+system+irq+softirq).
cpu_ticks() {
    awk -v c="cpu$1" '$1 == c { print $2 + $3 + $4 + $7 + $8, $9 }' /proc/stat
}
# proc_ticks PID: utime+stime of a process (all threads).
proc_ticks() {
    awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}
# children_ticks: cutime+cstime of this shell (every reaped descendant).
children_ticks() {
    awk '{ sub(/^.*\) /, ""); print $14 + $15 }' "/proc/$$/stat"
}

trap stop_server EXIT INT TERM

echo "A=$LABEL_A ($SERVER_A)  B=$LABEL_B ($SERVER_B)  load=$LOADGEN; results in $OUT" >&2

for round in $(seq 1 "$ROUNDS"); do
    for config in $CONFIGS; do
        conns=${config%%:*}
        pipeline=${config##*:}
        for side in A B; do
            if [[ $side == A ]]; then bin=$SERVER_A label=$LABEL_A; else bin=$SERVER_B label=$LABEL_B; fi
          for attempt in $(seq 0 "$RETRIES"); do
            start_server "$PORT" "$bin"
            load_before=$(cut -d' ' -f1 /proc/loadavg)
            read -r c0_busy0 c0_steal0 < <(cpu_ticks 0)
            read -r c1_busy0 c1_steal0 < <(cpu_ticks 1)
            srv0=$(proc_ticks "$SERVER_PID")
            kids0=$(children_ticks)
            t0=$(date +%s.%N)
            # Bounded twice: the bench stops itself; timeout is the backstop.
            line=$(timeout $((WARMUP + DURATION + 30)) taskset -c 0 "$LOADGEN" echo \
                --target "127.0.0.1:$PORT" --shards 1 --connections "$conns" \
                --pipeline "$pipeline" --message-size "$MESSAGE_SIZE" \
                --duration-secs "$DURATION" --warmup-secs "$WARMUP" \
                --server-pid "$SERVER_PID" --clk-tck "$CLK_TCK" --json)
            t1=$(date +%s.%N)
            kids1=$(children_ticks)
            srv1=$(proc_ticks "$SERVER_PID")
            read -r c0_busy1 c0_steal1 < <(cpu_ticks 0)
            read -r c1_busy1 c1_steal1 < <(cpu_ticks 1)
            load_after=$(cut -d' ' -f1 /proc/loadavg)
            stop_server
            # Tag the run (server, round, load average) and record how disturbed it was, over
            # the whole run (warm-up + window), as fractions of one CPU: foreign_cpuN = CPU N's
            # busy time minus our own process on it (load generator on CPU 0, server
            # on CPU 1); steal_cpuN = time the hypervisor ran something else.
            python3 - "$line" "$label" "$round" "$load_before" "$load_after" "$CLK_TCK" \
                "$t0" "$t1" "$c0_busy0" "$c0_busy1" "$c0_steal0" "$c0_steal1" \
                "$c1_busy0" "$c1_busy1" "$c1_steal0" "$c1_steal1" "$kids0" "$kids1" \
                "$srv0" "$srv1" "$attempt" "$RETRIES" "$MAX_FOREIGN" >"$OUT/last.json" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
(lb, la, clk, t0, t1, b00, b01, s00, s01, b10, b11, s10, s11, k0, k1, v0, v1, attempt, retries,
 max_foreign) = map(float, sys.argv[4:])
w = (t1 - t0) * clk
r.update(server=sys.argv[2], round=int(sys.argv[3]), loadavg=[lb, la], disturbance=dict(
    foreign_cpu0=round(((b01 - b00) - (k1 - k0)) / w, 3),
    foreign_cpu1=round(((b11 - b10) - (v1 - v0)) / w, 3),
    steal_cpu0=round((s01 - s00) / w, 3), steal_cpu1=round((s11 - s10) / w, 3)))
d = r["disturbance"]
r["attempt"] = int(attempt)
r["disturbed"] = max(d["foreign_cpu0"] + d["steal_cpu0"], d["foreign_cpu1"] + d["steal_cpu1"]) > max_foreign
print(json.dumps(r))
PY
            python3 -c 'import json, sys
r = json.loads(sys.stdin.read())
print("round %d, %d conns x%d, %s, attempt %d: %.3f us/req, %.0f req/s, load %s, %s%s" % (
      r["round"], r["connections"], r["pipeline"], r["server"], r["attempt"],
      r["server_cpu_us_per_request"], r["requests_per_sec"], r["loadavg"], r["disturbance"],
      " DISTURBED" if r["disturbed"] else ""))' <"$OUT/last.json" >&2
            if grep -q '"disturbed": true' "$OUT/last.json" && ((attempt < RETRIES)); then
                cat "$OUT/last.json" >>"$OUT/discarded.jsonl"
                sleep 5
                continue
            fi
            cat "$OUT/last.json" >>"$OUT/runs.jsonl"
            break
          done
        done
    done
done

python3 - "$OUT/runs.jsonl" "$LABEL_A" "$LABEL_B" <<'PY'
import json, statistics, sys
path, la, lb = sys.argv[1:4]
runs = [json.loads(l) for l in open(path) if l.strip()]
try:
    discarded = [json.loads(l) for l in open(path.replace("runs.jsonl", "discarded.jsonl")) if l.strip()]
except FileNotFoundError:
    discarded = []
med = lambda xs: statistics.median(xs) if xs else float("nan")
groups = {}
for r in runs:
    groups.setdefault((r["connections"], r["pipeline"]), {}).setdefault(r["server"], []).append(r)
print("| conns × pipeline | server | rounds | req/s (median) | server CPU µs/req (median) "
      "| per round CPU µs/req | per round req/s | per round foreign+steal CPU 0 / CPU 1 | errors |")
print("|---|---|---|---|---|---|---|---|---|")
def dist(r):
    d = r.get("disturbance", {})
    return f"{d.get('foreign_cpu0', 0) + d.get('steal_cpu0', 0):.2f}/{d.get('foreign_cpu1', 0) + d.get('steal_cpu1', 0):.2f}"
ratios = []
for (c, p), by in sorted(groups.items()):
    m = {}
    for label in (la, lb):
        rs = sorted(by.get(label, []), key=lambda r: r["round"])
        cpu = [r["server_cpu_us_per_request"] for r in rs if r["server_cpu_us_per_request"] is not None]
        rps = [r["requests_per_sec"] for r in rs]
        m[label] = (med(cpu), med(rps))
        print(f"| {c} × {p} | {label} | {len(rs)} | {med(rps):,.0f} | {med(cpu):.3f} "
              f"| {', '.join(f'{x:.3f}' for x in cpu)} | {', '.join(f'{x:,.0f}' for x in rps)} "
              f"| {', '.join(dist(r) for r in rs)} | {sum(r['errors'] for r in rs)} |")
    ratios.append((c, p, m[lb][0] / m[la][0], m[lb][1] / m[la][1]))
print()
print(f"| conns × pipeline | CPU µs/req {lb}/{la} | req/s {lb}/{la} |")
print("|---|---|---|")
for c, p, rc, rr in ratios:
    print(f"| {c} × {p} | {rc:.3f} | {rr:.3f} |")
print()
print(f"re-run as disturbed: {len(discarded)} run(s); kept although disturbed (retries spent): "
      f"{sum(1 for r in runs if r.get('disturbed'))}")
PY
