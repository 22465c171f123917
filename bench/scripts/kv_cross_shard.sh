#!/usr/bin/env bash
# A cross-shard kv operation's server CPU against a local one (issue 22: ≤ 1.2×).
#
# `percore kv --cores 0,1 --steer cpu` (2 shards, one per CPU; a connection goes to the shard
# of the CPU that took it); redis-benchmark pinned to CPU 0, so its connections are shard 0's.
# Every key of a pass is owned by one shard: keys carry a hash tag (`{TAG}:__rand_int__`), and
# TAG0 / TAG1 are tags that shard 0 / shard 1 owns (found with the kv's own owner function,
# ported below). A pass with TAG0 is local, one with TAG1 cross-shard; each pass is also
# classified from the shard threads' CPU (in a local pass the shard that owns no key and holds
# no connection stays asleep; a cross-shard pass keeps both busy), so a connection that landed
# elsewhere cannot be miscounted. Each round runs both tags; the CPU per operation (Δ
# utime+stime of the whole server process / operations) is reported per class, medians over
# the passes of each class.
#
# Usage: bench/scripts/kv_cross_shard.sh [--rounds N] [--ops N] [--ops-pipelined N] [--clients N]
#        [--pipeline "1 16"] [--tests "set get"]
# PERCORE_BIN=path (default target/release/percore). Wrap in `flock /tmp/percore-bench.lock`.
set -euo pipefail
cd "$(dirname "$0")/../.."

ROUNDS=3
OPS=200000
OPS_PIPELINED=2000000
CLIENTS=50
PIPELINES="1 16"
TESTS="set get"
OUT=${OUT:-/tmp/kv-cross-shard}
PERCORE_BIN=${PERCORE_BIN:-target/release/percore}
PORT=16395
while [[ $# -gt 0 ]]; do
    case $1 in
        --rounds) ROUNDS=$2; shift 2 ;;
        --ops) OPS=$2; shift 2 ;;
        --ops-pipelined) OPS_PIPELINED=$2; shift 2 ;;
        --clients) CLIENTS=$2; shift 2 ;;
        --pipeline) PIPELINES=$2; shift 2 ;;
        --tests) TESTS=$2; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
for tool in redis-benchmark redis-cli taskset python3; do
    command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }
done
mkdir -p "$OUT"

# TAG0 TAG1: the first tags `t<i>` owned by shard 0 and by shard 1 of 2 (shards/kv/src/hash.rs).
read -r TAG0 TAG1 < <(python3 - <<'PY'
M = (1 << 64) - 1
SEED = 0x517CC1B727220A95
def owner(key: bytes, shards: int) -> int:
    h = 0
    def add(h, w):
        return ((((h << 5) | (h >> 59)) & M) ^ w) * SEED & M
    n = len(key) // 8 * 8
    for i in range(0, n, 8):
        h = add(h, int.from_bytes(key[i:i + 8], "little"))
    for b in key[n:]:
        h = add(h, b)
    h = add(h, len(key))
    h ^= h >> 33; h = h * 0xFF51AFD7ED558CCD & M
    h ^= h >> 33; h = h * 0xC4CEB9FE1A85EC53 & M
    h ^= h >> 33
    return h % shards
tags = {}
i = 0
while len(tags) < 2:
    t = f"t{i}"
    tags.setdefault(owner(t.encode(), 2), t)
    i += 1
print(tags[0], tags[1])
PY
)

taskset -c 0,1 "$PERCORE_BIN" kv --cores 0,1 --steer cpu --quiet --listen "127.0.0.1:$PORT" >"$OUT/kv.log" 2>&1 &
PID=$!
trap 'kill -TERM $PID 2>/dev/null; wait $PID 2>/dev/null' EXIT
for _ in $(seq 1 100); do redis-cli -p $PORT PING >/dev/null 2>&1 && break; sleep 0.1; done
# The shard threads' ids, by shard.
declare -A TID
for t in /proc/$PID/task/*; do
    case $(cat "$t/comm") in
        percore-shard-0) TID[0]=${t##*/} ;;
        percore-shard-1) TID[1]=${t##*/} ;;
    esac
done
[[ -n ${TID[0]:-} && -n ${TID[1]:-} ]] || { echo "shard threads not found" >&2; exit 1; }
# The tags' owners, checked on the server: a key of each lands in that shard's key count.
redis-cli -p $PORT SET "{$TAG0}:check" x >/dev/null
redis-cli -p $PORT SET "{$TAG1}:check" x >/dev/null
redis-cli -p $PORT INFO keyspace | tr -d '\r' | grep -E "^shard" >"$OUT/owners.txt" || true
redis-cli -p $PORT INFO | tr -d '\r' | grep -E "^shard[01]:" | sed -E 's/^(shard[01]):.*keys=([0-9]+).*/\1 keys=\2/' >"$OUT/owners.txt"

ticks() { awk '{print $14 + $15}' "$1"; }
HZ=$(getconf CLK_TCK)
echo "# $(date -u '+%F %T') UTC, tree $(git rev-parse --short HEAD), $CLIENTS clients, $OPS ops per pass ($OPS_PIPELINED pipelined)" | tee "$OUT/header.txt"
echo "round,test,pipeline,tag_owner,ops,ops_per_s,cpu_s,shard0_s,shard1_s" >"$OUT/results.csv"
for round in $(seq 1 "$ROUNDS"); do
    for pipeline in $PIPELINES; do
        for test in $TESTS; do
            ops=$OPS
            [[ $pipeline -gt 1 ]] && ops=$OPS_PIPELINED
            for owner in 0 1; do
                tag=$TAG0; [[ $owner = 1 ]] && tag=$TAG1
                if [[ $test = set ]]; then cmd=(SET "{$tag}:__rand_int__" abc); else cmd=(GET "{$tag}:__rand_int__"); fi
                b=$(ticks /proc/$PID/stat); b0=$(ticks /proc/$PID/task/${TID[0]}/stat); b1=$(ticks /proc/$PID/task/${TID[1]}/stat)
                csv=$(taskset -c 0 timeout 300 redis-benchmark -h 127.0.0.1 -p $PORT -c "$CLIENTS" -n "$ops" \
                    -P "$pipeline" -r 100000 --csv "${cmd[@]}" 2>/dev/null)
                a=$(ticks /proc/$PID/stat); a0=$(ticks /proc/$PID/task/${TID[0]}/stat); a1=$(ticks /proc/$PID/task/${TID[1]}/stat)
                rps=$(echo "$csv" | awk -F'"' 'NR==2 {print $4}')
                line="$round,$test,$pipeline,$owner,$ops,$rps,$(python3 -c "print(($a-$b)/$HZ, ($a0-$b0)/$HZ, ($a1-$b1)/$HZ, sep=',')")"
                echo "$line" >>"$OUT/results.csv"
                echo "$line"
            done
        done
    done
done

python3 - "$OUT/results.csv" <<'PY' | tee "$OUT/table.md"
import csv, statistics, sys
from collections import defaultdict
rows = list(csv.DictReader(open(sys.argv[1])))
cls = defaultdict(list)
unclear = 0
for r in rows:
    s0, s1 = float(r["shard0_s"]), float(r["shard1_s"])
    owner = int(r["tag_owner"])
    other = s1 if owner == 0 else s0
    mine = s0 if owner == 0 else s1
    # Local: the shard that owns no key did (almost) nothing. Cross: both worked.
    if other <= 0.1 * mine:
        kind = "local"
    elif other >= 0.3 * mine:
        kind = "cross"
    else:
        unclear += 1
        continue
    ops = int(r["ops"])
    cls[(r["test"], int(r["pipeline"]), kind)].append((float(r["ops_per_s"]), float(r["cpu_s"]) * 1e6 / ops))
print("| test | pipeline | kind | passes | ops/s (median) | server CPU µs/op (median; passes) | cross ÷ local |")
print("|---|---|---|---|---|---|---|")
for (test, p) in sorted({(t, p) for t, p, _ in cls}, key=lambda k: (k[0] != "set", k[1])):
    local = cls.get((test, p, "local"))
    lc = statistics.median(c for _, c in local) if local else None
    for kind in ("local", "cross"):
        got = cls.get((test, p, kind))
        if not got:
            print(f"| {test.upper()} | {p} | {kind} | 0 | — | — | — |")
            continue
        c = statistics.median(c for _, c in got)
        rps = statistics.median(r for r, _ in got)
        ratio = f"**{c / lc:.2f}**" if (kind == "cross" and lc) else ("1" if kind == "local" else "—")
        print(f"| {test.upper()} | {p} | {kind} | {len(got)} | {rps:,.0f} | {c:.2f} ({', '.join(f'{x:.2f}' for _, x in got)}) | {ratio} |")
if unclear:
    print(f"\n{unclear} passes could not be classified (the idle shard's CPU between 10 % and 30 % of the busy one's).")
PY
