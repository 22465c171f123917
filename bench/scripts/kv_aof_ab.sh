#!/usr/bin/env bash
# A/B: main's percore kv vs this branch (no AOF, everysec, always), 1 shard each, SET/GET -P 16.
set -u
MAIN=${MAIN:?set MAIN to the baseline percore binary}
KV=${KV:-target/release/percore}
D=/tmp/kvbench-dir
run() { # name bin port extra...
  local name=$1 bin=$2 port=$3; shift 3
  rm -rf $D; mkdir -p $D
  $bin kv --unpinned 1 --quiet --listen 127.0.0.1:$port "$@" >/dev/null 2>&1 &
  local pid=$!
  for i in $(seq 1 50); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
  for t in set get; do
    local r=$(redis-benchmark -p $port -t $t -n 200000 -P 16 -c 50 -q 2>/dev/null | grep -o '[0-9.]* requests per second' | cut -d' ' -f1)
    echo "$name $t $r"
  done
  kill $pid; wait $pid 2>/dev/null
}
for round in 1 2 3; do
  run main $MAIN 17001
  run kv $KV 17002
  run kv-everysec $KV 17003 --dir $D --appendonly yes --appendfsync everysec
  run kv-always $KV 17004 --dir $D --appendonly yes --appendfsync always
done
