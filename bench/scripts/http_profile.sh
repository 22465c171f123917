#!/usr/bin/env bash
# Where a server's CPU goes under the HTTP plaintext load: perf samples (cpu-clock, 4999 Hz)
# of CPU 1 while wrk -t1 on CPU 0 drives the server pinned to CPU 1, split by kernel and user
# space. Samples × 200 µs ÷ requests = µs per request.
#
#   flock /tmp/percore-bench.lock bench/scripts/http_profile.sh \
#       "target/release/percore serve --listen 127.0.0.1:18999 --shards 1 --quiet" 256 16 5 /tmp/prof
#
# Args: SERVER_COMMAND (must listen on 127.0.0.1:18999) CONNS PIPELINE SECONDS OUT_PREFIX.
# Writes OUT.data (perf.data), OUT.wrk, OUT.split (samples by thread and object), OUT.pid
# (the server's PID). Bounded.
set -u
cd "$(dirname "$0")/../.."
CMD=$1 C=$2 P=$3 S=$4 OUT=$5
((S <= 30)) || { echo "at most 30 s" >&2; exit 2; }
# shellcheck disable=SC2086 # the command is a word list on purpose
timeout $((S + 60)) taskset -c 1 $CMD >"$OUT.server.log" 2>&1 &
SP=$!
for _ in $(seq 1 50); do curl -s --max-time 1 http://127.0.0.1:18999/ >/dev/null && break; sleep 0.1; done
# The server's own PID (`timeout` runs it as its child), for filtering the samples.
pgrep -P "$SP" | head -1 >"$OUT.pid"
script=()
((P > 1)) && script=(-s bench/scripts/peers/pipeline.lua)
timeout 20 taskset -c 0 wrk -t1 -c"$C" -d1s "${script[@]}" http://127.0.0.1:18999/ -- "$P" >/dev/null 2>&1
timeout $((S + 20)) perf record -q -e cpu-clock -F 4999 -g -C 1 -o "$OUT.data" -- sleep "$S" >/dev/null 2>&1 &
PP=$!
timeout $((S + 20)) taskset -c 0 wrk -t1 -c"$C" -d"${S}s" "${script[@]}" http://127.0.0.1:18999/ -- "$P" >"$OUT.wrk" 2>&1
wait $PP
kill -TERM $SP 2>/dev/null
wait $SP 2>/dev/null
perf report -i "$OUT.data" --no-children --sort comm,dso -g none --stdio -n 2>/dev/null | grep '%' | head >"$OUT.split"
grep requests "$OUT.wrk"
cat "$OUT.split"
