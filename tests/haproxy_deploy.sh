#!/usr/bin/env bash
# The real thing (#19, docs/deploy.md): HAProxy on loopback, with health checks and
# send-proxy-v2 (with its CRC32C TLV, which percore verifies), in front of two percore instances; open-loop load through it with
# percore-bench (keep-alive and new-connection mixes, 5,000 req/s in all for 20 s); during
# the run instance A is hot-restarted (--upgrade-from) and instance B is drained and
# restarted (SIGTERM: /healthz 503 for --drain-delay, drain, exit, start again).
# Passes when the load generator reports 0 failed requests and 0 connection errors, and
# HAProxy's stats show both instances UP at the end. Bounded: about 40 s, 120 s at most.
#
#   tests/haproxy_deploy.sh            # RATE=5000 SECONDS=20 by default
#
# Installs HAProxy when it is missing and this runs as root with apt-get; otherwise it
# skips (exit 0) with the reason, or fails under CI=true.
set -euo pipefail
cd "$(dirname "$0")/.."

rate=${RATE:-5000}
seconds=${SECONDS_LOAD:-20}
# RESTARTS=0: the same run without the restarts (a latency baseline for bench/RESULTS.md).
restarts=${RESTARTS:-1}

if ! command -v haproxy >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "haproxy_deploy: installing haproxy"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null
    elif [ "${CI:-}" = true ]; then
        echo "haproxy_deploy: haproxy is missing (apt-get install -y haproxy)" >&2
        exit 1
    else
        echo "haproxy_deploy: skipped: haproxy is missing (apt-get install -y haproxy)"
        exit 0
    fi
fi
for tool in curl python3; do
    command -v "$tool" >/dev/null || { echo "haproxy_deploy: $tool is missing" >&2; exit 1; }
done

cargo build --release --quiet -p percore-cli -p percore-bench
bin=target/release/percore
bench=target/release/percore-bench

work=$(mktemp -d /tmp/percore-haproxy.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    sleep 0.5
    for pid in "${pids[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
front=$(free_port); stats=$(free_port)
a=$(free_port); a_admin=$(free_port)
b=$(free_port); b_admin=$(free_port)

# Each instance: 2 shards, PROXY protocol from HAProxy (loopback), a short drain delay
# (HAProxy checks every 200 ms and needs 2 failures: 0.4 s to mark it DOWN).
common=(--shards 2 --quiet --proxy-protocol --proxy-from 127.0.0.1 --drain-delay 1.5 --drain-timeout-secs 10)
# Started in this shell (not a subshell), so every pid is known to the cleanup; each sets
# $started to its pid.
start_a() { # "$@": extra arguments (the successor's --upgrade-from)
    "$bin" serve --listen "127.0.0.1:$a" --admin "127.0.0.1:$a_admin" \
        --upgrade-socket "$work/a.sock" "${common[@]}" "$@" >>"$work/a.log" 2>&1 &
    started=$!
    pids+=("$started")
}
start_b() {
    "$bin" serve --listen "127.0.0.1:$b" --admin "127.0.0.1:$b_admin" "${common[@]}" \
        >>"$work/b.log" 2>&1 &
    started=$!
    pids+=("$started")
}
healthy() { curl -fsS -m 1 "http://127.0.0.1:$1/healthz" >/dev/null 2>&1; }
wait_for() { # $1: what, $2: tenths of a second, rest: command
    local what=$1 tries=$2
    shift 2
    for _ in $(seq "$tries"); do
        "$@" && return 0
        sleep 0.1
    done
    echo "haproxy_deploy: FAIL: $what (logs in $work)" >&2
    exit 1
}
exited() { ! kill -0 "$1" 2>/dev/null; }

start_a
a_pid=$started
start_b
b_pid=$started
wait_for "instance A healthy" 100 healthy "$a_admin"
wait_for "instance B healthy" 100 healthy "$b_admin"

cat >"$work/haproxy.cfg" <<CFG
global
    maxconn 4000
    stats socket $work/haproxy.sock mode 600 level admin
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 10s
    option redispatch
    retries 3
    retry-on all-retryable-errors
    http-reuse safe
frontend front
    bind 127.0.0.1:$front
    default_backend percore
backend percore
    balance roundrobin
    option httpchk GET /healthz
    http-check expect status 200
    default-server inter 200ms fall 2 rise 2 send-proxy-v2 proxy-v2-options crc32c check-send-proxy
    server a 127.0.0.1:$a check
    server b 127.0.0.1:$b check
listen stats
    bind 127.0.0.1:$stats
    stats enable
    stats uri /stats
CFG
haproxy -c -q -f "$work/haproxy.cfg"
haproxy -db -f "$work/haproxy.cfg" </dev/null >"$work/haproxy.log" 2>&1 &
pids+=($!)
status_of() { # $1: server name → UP, DOWN, ...
    curl -fsS -m 1 "http://127.0.0.1:$stats/stats;csv" 2>/dev/null \
        | awk -F, -v s="$1" '$1 == "percore" && $2 == s { print $18 }'
}
both_up() { [ "$(status_of a)" = UP ] && [ "$(status_of b)" = UP ]; }
wait_for "HAProxy sees both instances UP" 100 both_up

echo "haproxy_deploy: $rate req/s for $seconds s through HAProxy ($front) → A ($a), B ($b); logs in $work"
half=$(python3 -c "print($rate / 2)")
load=(--target "127.0.0.1:$front" -c 50 --rate "$half" -d "${seconds}s" -w 1s --timeout 5s --drain 3s --json -q)
"$bench" http "${load[@]}" >"$work/keepalive.json" 2>"$work/keepalive.err" &
ka=$!
pids+=($ka)
"$bench" http "${load[@]}" -H "Connection: close" >"$work/newconn.json" 2>"$work/newconn.err" &
nc=$!
pids+=($nc)

if [ "$restarts" = 0 ]; then
    echo "haproxy_deploy: RESTARTS=0: no restart (baseline)"
else
    # A: hot restart, 5 s into the window.
    sleep 6
    echo "haproxy_deploy: hot restart of A (pid $a_pid)"
    start_a --upgrade-from "$work/a.sock"
    a2_pid=$started
    wait_for "the old A hands over and exits" 200 exited "$a_pid"
    exited "$a2_pid" && { echo "haproxy_deploy: FAIL: the new A exited (logs in $work)" >&2; exit 1; }

    # B: drain and restart, 6 s later.
    sleep 5
    echo "haproxy_deploy: drain and restart of B (pid $b_pid)"
    kill -TERM "$b_pid"
    wait_for "HAProxy marks B DOWN while it drains" 30 bash -c "[ \"\$(curl -fsS -m 1 'http://127.0.0.1:$stats/stats;csv' | awk -F, '\$1 == \"percore\" && \$2 == \"b\" { print \$18 }')\" != UP ]"
    wait_for "B drains and exits" 150 exited "$b_pid"
    start_b
    b_pid=$started
    wait_for "the new B is healthy" 100 healthy "$b_admin"
fi

wait "$ka" || true
wait "$nc" || true
wait_for "HAProxy sees both instances UP after the restarts" 50 both_up

python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
failed = False
for mix in ("keepalive", "newconn"):
    with open(f"{work}/{mix}.json") as f:
        r = json.load(f)
    m = r["measured"]
    errors = {k: v for k, v in m.items() if k not in ("sent", "ok", "errors", "in_flight_at_end", "connects") and v}
    print(f"haproxy_deploy: {mix}: {m['ok']:.0f} ok of {m['sent']:.0f} sent, {r['requests_per_sec']:.0f} req/s, "
          f"p99 {r['latency_us']['p99'] / 1000:.2f} ms, max {r['latency_us']['max'] / 1000:.2f} ms, "
          f"errors {m['errors']:.0f} {errors or ''}, in flight at end {m['in_flight_at_end']:.0f}")
    if m["errors"] != 0 or m["ok"] == 0 or m["in_flight_at_end"] != 0:
        failed = True
sys.exit(1 if failed else 0)
PY
if [ "$restarts" = 0 ]; then
    echo "haproxy_deploy: OK (baseline, no restart): 0 failed requests, 0 connection errors"
else
    echo "haproxy_deploy: OK: 0 failed requests, 0 connection errors; A and B UP"
fi
