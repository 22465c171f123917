#!/usr/bin/env bash
# User-space instructions per request of HTTP servers under wrk: each server runs under
# `valgrind --tool=callgrind` on CPU 1 while `wrk -t1` (CPU 0) drives it for a fixed time,
# then the profile is dumped and the total instruction count (the binary, libc and vdso; not
# the kernel) is divided by the requests wrk completed. Instruction counts do not move with
# the noise of this VM, so this resolves user-space changes of a few percent, which CPU time
# per request does not. The server runs ~50× slower under callgrind, so each loop iteration
# batches more requests than on the bare machine: per-iteration costs weigh less here.
#
#   bench/scripts/http_instructions.sh --rounds 2 \
#       --server 'percore=target/release/percore serve --listen @LISTEN@ --shards 1 --quiet'
#
# Options: --server NAME=COMMAND (repeatable; @LISTEN@ becomes 127.0.0.1:18998), --conns N
# (100), --duration S (10), --rounds N (2), --out DIR (a new temporary directory).
# Rounds alternate the servers (A B … A B …). Bounded: every server is killed after its window.
set -euo pipefail
cd "$(dirname "$0")/../.."

CONNS=100
DURATION=10
ROUNDS=2
OUT=""
LISTEN=127.0.0.1:18998
die() { echo "http_instructions.sh: $*" >&2; exit 2; }
OPTIONS="conns duration rounds out"
# shellcheck source=bench/scripts/server_args.sh
source bench/scripts/server_args.sh
parse_server_args "$@"
((ROUNDS >= 1 && ROUNDS <= 10)) || die "--rounds must be 1..10"
((DURATION >= 1 && DURATION <= 60)) || die "--duration must be 1..60 s"
for tool in valgrind callgrind_annotate callgrind_control wrk taskset curl; do
    command -v "$tool" >/dev/null || die "$tool is missing"
done
OUT=${OUT:-$(mktemp -d /tmp/http_instructions.XXXXXX)}
mkdir -p "$OUT"
echo "# $(date -u '+%F %T') UTC, tree $(git rev-parse --short HEAD), ${CONNS} conns, ${DURATION} s per window"

VALGRIND_PID=""
stop_server() {
    if [[ -n $VALGRIND_PID ]]; then
        kill -KILL "$VALGRIND_PID" 2>/dev/null || true
        wait "$VALGRIND_PID" 2>/dev/null || true
    fi
    VALGRIND_PID=""
}
trap stop_server EXIT

for round in $(seq 1 "$ROUNDS"); do
    for i in "${!NAMES[@]}"; do
        name=${NAMES[$i]}
        profile="$OUT/$name-$round.callgrind"
        read -ra cmd <<<"${CMDS[$i]//@LISTEN@/$LISTEN}"
        taskset -c 1 valgrind --tool=callgrind --callgrind-out-file="$profile" "${cmd[@]}" \
            >"$OUT/$name-$round.log" 2>&1 &
        VALGRIND_PID=$!
        up=false
        for _ in $(seq 1 100); do
            if curl -s --max-time 1 "http://$LISTEN/" >/dev/null; then up=true; break; fi
            kill -0 "$VALGRIND_PID" 2>/dev/null || break
            sleep 0.3
        done
        $up || die "$name did not answer on $LISTEN (see $OUT/$name-$round.log)"
        wrk_out=$(timeout $((DURATION + 30)) taskset -c 0 wrk -t1 -c"$CONNS" -d"${DURATION}s" "http://$LISTEN/")
        requests=$(grep -oE '^ *[0-9]+ requests' <<<"$wrk_out" | grep -oE '[0-9]+')
        # Dump the profile while the server still runs (a dump is written as PROFILE.1).
        timeout 30 callgrind_control -d "$VALGRIND_PID" >/dev/null 2>&1 ||
            die "could not dump $name's profile"
        stop_server
        total=$(callgrind_annotate "$profile.1" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
        [[ -n $total && -n $requests && $requests -gt 0 ]] || die "no result for $name"
        printf '%-14s round %d: %8d requests  %d instructions per request\n' \
            "$name" "$round" "$requests" $((total / requests))
    done
done
