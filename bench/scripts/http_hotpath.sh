#!/usr/bin/env bash
# HTTP plaintext A/B/C…: the BENCH.md load (`GET /` → `Hello, World!`, wrk -t1 on CPU 0,
# server one worker on CPU 1) against any set of server commands, interleaved per round
# (A B C … A B C …, a fresh server per run), medians. Unlike peers.sh it takes arbitrary
# commands, so two percore builds (before/after) or two flags of one build run side by side.
#
#   bench/scripts/http_hotpath.sh \
#       --server 'raw-uring=bench/peers/target/release/raw-uring --listen @LISTEN@ --threads 1' \
#       --server 'percore-old=/tmp/percore-old serve --listen @LISTEN@ --shards 1 --quiet' \
#       --server 'percore=target/release/percore serve --listen @LISTEN@ --shards 1 --quiet'
#
# Options: --server NAME=COMMAND (repeatable; @LISTEN@ becomes 127.0.0.1:PORT), --rounds N (3),
#   --duration S (10), --warmup S (2), --passes "100:1,256:1,256:16", --out DIR.
# Env: PORT_BASE (18180), MAX_FOREIGN (0.15), RETRIES (1).
#
# Server CPU per request = utime+stime of the server's process (all threads) over the measured
# window / requests. "Disturbance" = the share of CPU 0 and of CPU 1 used by anything but our
# server and wrk, plus steal, over the window (from /proc/stat); a run above MAX_FOREIGN on
# either CPU is re-run (at most RETRIES times; the last try is kept and marked *). Wrap the
# whole script in `flock /tmp/percore-bench.lock` on a shared machine. Every server and load
# run is bounded by `timeout`, every server stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/../.."

ROUNDS=3
DURATION=10
WARMUP=2
PASSES="100:1,256:1,256:16"
OUT=""
PORT_BASE=${PORT_BASE:-18180}
MAX_FOREIGN=${MAX_FOREIGN:-0.15}
RETRIES=${RETRIES:-1}
CMDLINE="bench/scripts/http_hotpath.sh $*"
die() { echo "http_hotpath.sh: $*" >&2; exit 2; }
OPTIONS="rounds duration warmup passes out"
# shellcheck source=bench/scripts/server_args.sh
source bench/scripts/server_args.sh
parse_server_args "$@"
[[ $ROUNDS =~ ^[1-9][0-9]?$ && $DURATION =~ ^[1-9][0-9]?$ && $WARMUP =~ ^[0-9]+$ ]] ||
    die "--rounds 1..99, --duration 1..99, --warmup ≥ 0"
command -v wrk >/dev/null || die "wrk is not installed"
OUT=${OUT:-$(mktemp -d /tmp/http_hotpath.XXXXXX)}
mkdir -p "$OUT"
RUNS=$OUT/runs.tsv
: >"$RUNS"
CLK_TCK=$(getconf CLK_TCK)
IFS=', ' read -r -a PASS_LIST <<<"$PASSES"

SERVER_PID=""
SERVER_PROC=""
stop_server() {
    [[ -n $SERVER_PID ]] || return 0
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    local i
    for i in $(seq 1 50); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}
trap stop_server EXIT
trap 'exit 130' INT TERM

# start_server CMD PORT: pinned to CPU 1, waits until it answers `Hello, World!`.
start_server() {
    local cmd=${1//@LISTEN@/127.0.0.1:$2} i body
    # shellcheck disable=SC2086 # the command is a word list on purpose
    timeout $((${#PASS_LIST[@]} * (WARMUP + DURATION + 30) * (RETRIES + 1) + 60)) \
        taskset -c 1 $cmd >>"$OUT/server.log" 2>&1 &
    SERVER_PID=$!
    for i in $(seq 1 100); do
        body=$(curl -s --max-time 1 "http://127.0.0.1:$2/" 2>/dev/null || true)
        if [[ $body == "Hello, World!" ]]; then
            # SERVER_PID is `timeout`; the server is its only child (taskset execs it).
            SERVER_PROC=$(cut -d' ' -f1 "/proc/$SERVER_PID/task/$SERVER_PID/children")
            [[ -n $SERVER_PROC ]] && return 0
            return 1
        fi
        kill -0 "$SERVER_PID" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# busy_steal CPU: "busy steal" jiffies of CPU so far.
busy_steal() { awk -v c="cpu$1" '$1 == c { print $2 + $3 + $4 + $7 + $8, $9 }' /proc/stat; }
# ticks PID: utime+stime of a process, all threads.
ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0; }

# measure PORT CONNS PIPELINE: one window; prints "requests rps p50_us p99_us errors cpu_s
# foreign0 foreign1".
measure() {
    local port=$1 conns=$2 pipe=$3 script=() out=$OUT/wrk.out
    ((pipe > 1)) && script=(-s bench/scripts/peers/pipeline.lua)
    if ((WARMUP > 0)); then
        timeout $((WARMUP + 20)) taskset -c 0 wrk -t1 -c"$conns" -d"${WARMUP}s" --timeout 2s \
            "${script[@]}" "http://127.0.0.1:$port/" -- "$pipe" >/dev/null 2>&1 || true
    fi
    local c0 st0 c1 s0 t0 e0 c0b st0b c1b s1 t1 e1 me=$BASHPID
    read -r c0 st0 <<<"$(busy_steal 0)"
    read -r c1 s0 <<<"$(busy_steal 1)"
    t0=$(ticks "$SERVER_PROC")
    # wrk's CPU: the children time of this (sub)shell, which reaps it.
    e0=$(awk '{ sub(/^.*\) /, ""); print $14 + $15 }' "/proc/$me/stat")
    timeout $((DURATION + 20)) taskset -c 0 wrk -t1 -c"$conns" -d"${DURATION}s" --timeout 2s \
        --latency "${script[@]}" "http://127.0.0.1:$port/" -- "$pipe" >"$out" 2>&1 || true
    t1=$(ticks "$SERVER_PROC")
    e1=$(awk '{ sub(/^.*\) /, ""); print $14 + $15 }' "/proc/$me/stat")
    read -r c0b st0b <<<"$(busy_steal 0)"
    read -r c1b s1 <<<"$(busy_steal 1)"
    cat "$out" >>"$OUT/wrk.log"
    awk -v t=$((t1 - t0)) -v w=$((e1 - e0)) -v d0=$((c0b - c0)) -v d1=$((c1b - c1)) \
        -v st0=$((st0b - st0)) -v st1=$((s1 - s0)) -v hz="$CLK_TCK" -v secs="$DURATION" '
        function us(v) {
            if (v ~ /us$/) return v + 0; if (v ~ /ms$/) return v * 1000; if (v ~ /s$/) return v * 1e6
            return v + 0
        }
        / requests in / { req = $1 }
        /^Requests\/sec:/ { rps = $2 }
        /^ +50% / { p50 = us($2) }
        /^ +99% / { p99 = us($2) }
        /Socket errors:/ { gsub(/,/, ""); err += $4 + $6 + $8 + $10 }
        /Non-2xx or 3xx responses:/ { err += $NF }
        END {
            if (req == "") exit
            # wrk (reaped child: cutime) runs on CPU 0, the server on CPU 1; what else ran there
            # is foreign. Busy jiffies include our own; steal counts as foreign.
            f0 = (d0 - w + st0) / (hz * secs); f1 = (d1 - t + st1) / (hz * secs)
            if (f0 < 0) f0 = 0; if (f1 < 0) f1 = 0
            printf "%d %.1f %.1f %.1f %d %.2f %.2f %.2f\n", req, rps, p50, p99, err + 0, t / hz, f0, f1
        }' "$out"
}

echo "loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)" >"$OUT/load.txt"
for round in $(seq 1 "$ROUNDS"); do
    for idx in "${!NAMES[@]}"; do
        name=${NAMES[$idx]} port=$((PORT_BASE + idx))
        for pass in "${PASS_LIST[@]}"; do
            conns=${pass%%:*} pipe=${pass##*:}
            for try in $(seq 0 "$RETRIES"); do
                if ! start_server "${CMDS[$idx]}" "$port"; then
                    stop_server
                    echo "[$name] did not start (see $OUT/server.log)" >&2
                    break
                fi
                result=$(measure "$port" "$conns" "$pipe")
                stop_server
                [[ -n $result ]] || { echo "[$name] ${pass} round $round: no result" >&2; break; }
                read -r req rps p50 p99 err cpu f0 f1 <<<"$result"
                disturbed=$(awk -v a="$f0" -v b="$f1" -v m="$MAX_FOREIGN" 'BEGIN { print (a > m || b > m) ? 1 : 0 }')
                echo "[$(date +%H:%M:%S)] $name ${conns}×$pipe round $round try $try: $rps req/s, CPU ${cpu} s, foreign $f0/$f1, errors $err" >&2
                if ((!disturbed || try == RETRIES)); then
                    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$conns" "$pipe" \
                        "$round" "$req" "$rps" "$p50" "$p99" "$err" "$cpu" "$f0/$f1" "$disturbed" >>"$RUNS"
                    break
                fi
            done
        done
    done
done
echo "loadavg at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/load.txt"

python3 - "$RUNS" "${NAMES[*]}" "$CMDLINE" "$OUT" <<'PY'
import statistics, sys
runs, order, cmdline, out = sys.argv[1], sys.argv[2].split(), sys.argv[3], sys.argv[4]
rows = [l.rstrip("\n").split("\t") for l in open(runs) if l.strip()]
groups = {}
for name, c, p, rnd, req, rps, p50, p99, err, cpu, foreign, dist in rows:
    if int(req) > 0:
        groups.setdefault((int(c), int(p)), {}).setdefault(name, []).append(dict(
            rps=float(rps), p50=float(p50), p99=float(p99), err=int(err),
            cpu=float(cpu) * 1e6 / int(req), foreign=foreign, dist=dist == "1"))
med = statistics.median
print(f"- Command: `{cmdline}` (raw outputs were in `{out}`); {open(out + '/load.txt').read().strip().replace(chr(10), '; ')}.")
print()
for (c, p), per in sorted(groups.items()):
    first = order[0]
    print(f"**{c} connections" + (f", pipelined ×{p}" if p > 1 else "") + "**")
    print()
    print(f"| server | req/s | p50 µs | p99 µs | server CPU µs/req (rounds; * disturbed) | CPU/req ÷ {first} | req/s ÷ {first} | foreign CPU 0/1 per round | errors |")
    print("|---|---|---|---|---|---|---|---|---|")
    base = per.get(first)
    for name in order:
        rs = per.get(name)
        if not rs:
            continue
        cpu, rps = med([r["cpu"] for r in rs]), med([r["rps"] for r in rs])
        rounds = ", ".join(f"{r['cpu']:.2f}" + ("*" if r["dist"] else "") for r in rs)
        lat = (f"{med([r['p50'] for r in rs]):,.0f}", f"{med([r['p99'] for r in rs]):,.0f}") if p == 1 else ("n/a", "n/a")
        rc = f"{cpu / med([r['cpu'] for r in base]):.2f}" if base else "–"
        rr = f"{rps / med([r['rps'] for r in base]):.2f}" if base else "–"
        print(f"| {name} | {rps:,.0f} | {lat[0]} | {lat[1]} | **{cpu:.2f}** ({rounds}) | {rc} | {rr} | "
              f"{', '.join(r['foreign'] for r in rs)} | {sum(r['err'] for r in rs)} |")
    print()
PY
