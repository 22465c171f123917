#!/usr/bin/env bash
# The AOF's cost: `percore kv` without AOF, with `--appendfsync everysec` and with `always`
# (and optionally a baseline binary MAIN without AOF, and a binary BASE with `everysec`, to
# compare a change to the log against the tree before it), one shard on CPU 1, redis-benchmark on
# CPU 0, `-t set|get -P 16 -c 50 -r 100000 -d 3`. Rounds interleave the servers; per pass the
# ops/s and the server's CPU per operation (Δ utime+stime from /proc/PID/stat / operations);
# medians per server and test, and each one's ops/s ÷ the no-AOF server's.
#
# Usage: [MAIN=<baseline percore>] [BASE=<percore before a change>] [KV=<percore>] [ROUNDS=3] [OPS=2000000] [PIPELINE=16]
#        bench/scripts/kv_aof_ab.sh          (wrap in `flock /tmp/percore-bench.lock`)
set -u
cd "$(dirname "$0")/../.."
MAIN=${MAIN:-}
BASE=${BASE:-}
KV=${KV:-target/release/percore}
ROUNDS=${ROUNDS:-3}
OPS=${OPS:-2000000}
PIPELINE=${PIPELINE:-16}
OUT=${OUT:-/tmp/kv-aof-ab}
D=$OUT/aof-dir
HZ=$(getconf CLK_TCK)
mkdir -p "$OUT"
echo "# $(date -u '+%F %T') UTC, tree $(git rev-parse --short HEAD), $OPS ops per pass, -P $PIPELINE" | tee "$OUT/header.txt"
echo "round,server,test,ops,ops_per_s,cpu_s" >"$OUT/results.csv"
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
run() { # round name bin port extra...
  local round=$1 name=$2 bin=$3 port=$4; shift 4
  rm -rf "$D"; mkdir -p "$D"
  taskset -c 1 "$bin" kv --shards 1 --quiet --listen 127.0.0.1:$port "$@" >"$OUT/$name.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 50); do redis-cli -p "$port" PING >/dev/null 2>&1 && break; sleep 0.1; done
  for t in set get; do
    local before after r
    before=$(ticks $pid)
    r=$(taskset -c 0 redis-benchmark -p "$port" -t $t -n "$OPS" -P "$PIPELINE" -c 50 -r 100000 -d 3 --csv 2>/dev/null | awk -F'"' 'NR==2 {print $4}')
    after=$(ticks $pid)
    echo "$round,$name,$t,$OPS,$r,$(python3 -c "print(($after - $before) / $HZ)")" | tee -a "$OUT/results.csv"
  done
  kill $pid; wait $pid 2>/dev/null
}
for round in $(seq 1 "$ROUNDS"); do
  [[ -n $MAIN ]] && run "$round" main "$MAIN" 17001
  run "$round" no-aof "$KV" 17002
  run "$round" everysec "$KV" 17003 --dir "$D" --appendonly yes --appendfsync everysec
  [[ -n $BASE ]] && run "$round" base-everysec "$BASE" 17005 --dir "$D" --appendonly yes --appendfsync everysec
  run "$round" always "$KV" 17004 --dir "$D" --appendonly yes --appendfsync always
done
python3 - "$OUT/results.csv" <<'PY' | tee "$OUT/table.md"
import csv, statistics, sys
from collections import defaultdict
runs = defaultdict(list)
for r in csv.DictReader(open(sys.argv[1])):
    if not r["ops_per_s"]:
        continue
    runs[(r["server"], r["test"])].append((float(r["ops_per_s"]), float(r["cpu_s"]) * 1e6 / int(r["ops"])))
print("| server | test | ops/s (median; rounds) | ÷ no-AOF | CPU µs/op (median) | ÷ no-AOF |")
print("|---|---|---|---|---|---|")
for test in ("set", "get"):
    base = runs.get(("no-aof", test))
    brps = statistics.median(r for r, _ in base) if base else None
    bcpu = statistics.median(c for _, c in base) if base else None
    for server in ("main", "no-aof", "everysec", "base-everysec", "always"):
        got = runs.get((server, test))
        if not got:
            continue
        rps = statistics.median(r for r, _ in got)
        cpu = statistics.median(c for _, c in got)
        print(f"| {server} | {test.upper()} | {rps:,.0f} ({', '.join(f'{r:,.0f}' for r, _ in got)}) | "
              f"**{rps / brps:.2f}** | {cpu:.2f} | {cpu / bcpu:.2f} |")
PY
