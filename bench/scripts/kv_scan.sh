#!/usr/bin/env bash
# A full `redis-cli --scan` of a large keyspace: how long percore kv takes to walk every key
# with SCAN (COUNT 10, redis-cli's default), one shard on CPU 1, loaded on CPU 0.
#
#   flock /tmp/percore-bench.lock bench/scripts/kv_scan.sh                 # target/release/percore
#   flock /tmp/percore-bench.lock bench/scripts/kv_scan.sh /tmp/percore-old 16611
#
# Args: [BINARY (default target/release/percore, built if missing)] [PORT (16610)].
# Env: KEYS (1000000): the key space redis-benchmark draws from (-r); it sends 3 × KEYS
# SETs, so about 95% of the space ends up stored. Prints DBSIZE, the keys SCAN returned and
# the seconds it took; the two counts must agree.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${1:-target/release/percore}
PORT=${2:-16610}
KEYS=${KEYS:-1000000}
for tool in redis-cli redis-benchmark taskset; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install -y redis-tools util-linux)" >&2; exit 1; }
done
[[ -x $BIN ]] || cargo build --release -q -p percore-cli
timeout 900 taskset -c 1 "$BIN" kv --shards 1 --quiet --listen "127.0.0.1:$PORT" >/dev/null 2>&1 &
SERVER=$!
trap 'kill -TERM $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 50); do redis-cli -p "$PORT" PING >/dev/null 2>&1 && break; sleep 0.1; done
timeout 300 taskset -c 0 redis-benchmark -p "$PORT" -t set -n $((KEYS * 3)) -r "$KEYS" -P 32 -q \
    >/dev/null
dbsize=$(redis-cli -p "$PORT" DBSIZE)
start=$(date +%s.%N)
returned=$(timeout 600 redis-cli -p "$PORT" --scan | wc -l)
end=$(date +%s.%N)
echo "dbsize=$dbsize scan_keys=$returned scan_s=$(python3 -c "print(round($end - $start, 3))")"
[[ $dbsize == "$returned" ]] || { echo "SCAN returned $returned keys of $dbsize" >&2; exit 1; }
