#!/usr/bin/env bash
# Server CPU per request split into kernel and user space, for several HTTP servers measured
# alternately (A B … A B …): each window is `http_profile.sh` (server on CPU 1, wrk -t1 on
# CPU 0, perf cpu-clock at 4999 Hz on CPU 1 for 5 s), and every sample of the server's
# threads counts 200 µs, split by whether it fell in the kernel or in user space (the
# binary, libc, vdso). Only the server process's samples count (all its threads).
#
#   flock /tmp/percore-bench.lock bench/scripts/http_split.sh --conns 100 --pipeline 1 \
#       --rounds 3 --server 'percore=target/release/percore serve --listen @LISTEN@ --shards 1 --quiet' \
#       --server 'raw-uring=bench/peers/target/release/raw-uring --listen @LISTEN@ --threads 1'
#
# Why: total CPU per request on this VM is bimodal (whole windows run ~30% slower in the
# kernel, for every server alike), which hides differences of a few percent. The user-space
# share moves far less, so the split shows where two servers really differ.
#
# Options: --server NAME=COMMAND (repeatable; @LISTEN@ becomes the profiled port), --conns N
# (100), --pipeline N (1), --rounds N (3), --out DIR (a new temporary directory).
# Prints one line per window; keeps perf data and wrk output in DIR. Bounded: each window is
# at most http_profile.sh's limits.
set -euo pipefail
cd "$(dirname "$0")/../.."

CONNS=100
PIPELINE=1
ROUNDS=3
OUT=""
die() { echo "http_split.sh: $*" >&2; exit 2; }
OPTIONS="conns pipeline rounds out"
# shellcheck source=bench/scripts/server_args.sh
source bench/scripts/server_args.sh
parse_server_args "$@"
((ROUNDS >= 1 && ROUNDS <= 10)) || die "--rounds must be 1..10"
for tool in perf wrk taskset python3; do
    command -v "$tool" >/dev/null || die "$tool is missing"
done
OUT=${OUT:-$(mktemp -d /tmp/http_split.XXXXXX)}
mkdir -p "$OUT"
echo "# $(date -u '+%F %T') UTC, tree $(git rev-parse --short HEAD), ${CONNS} conns × ${PIPELINE}, loadavg $(cut -d' ' -f1-3 /proc/loadavg)"

for round in $(seq 1 "$ROUNDS"); do
    for i in "${!NAMES[@]}"; do
        name=${NAMES[$i]}
        cmd=${CMDS[$i]//@LISTEN@/127.0.0.1:18999}
        prefix="$OUT/$name-$round"
        bash bench/scripts/http_profile.sh "$cmd" "$CONNS" "$PIPELINE" 5 "$prefix" >/dev/null 2>&1 ||
            die "profiling $name failed (see $prefix.server.log)"
        pid=$(cat "$prefix.pid")
        [[ -n $pid ]] || die "no server PID for $name"
        # Kernel and user samples of the server process (any of its threads).
        perf script -i "$prefix.data" -F pid,ip,dso --hide-call-graph 2>/dev/null |
            awk -v pid="$pid" '$1 == pid { if ($3 ~ /kernel/) k++; else u++ }
                END { print k + 0, u + 0 }' >"$prefix.samples"
        python3 - "$prefix" "$name" "$round" <<'PY'
import re, sys
prefix, name, rnd = sys.argv[1:]
text = open(prefix + ".wrk").read()
found = re.search(r"(\d+) requests in ([\d.]+)s", text)
if not found:
    sys.exit(f"http_split.sh: no wrk result in {prefix}.wrk")
requests, seconds = int(found.group(1)), float(found.group(2))
kernel, user = map(int, open(prefix + ".samples").read().split())
us = lambda n: n * 200 / requests
print(f"{name:12s} round {rnd}: {requests / seconds:10.0f} req/s  kernel {us(kernel):.3f}"
      f"  user {us(user):.3f}  total {us(kernel + user):.3f} µs/req")
PY
    done
done
