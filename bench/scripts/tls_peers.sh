#!/usr/bin/env bash
# HTTPS peers (issue #18): percore vs nginx (Debian's, OpenSSL) vs hyper + tokio-rustls,
# the same ECDSA P-256 certificate, each server one worker pinned to CPU 1, the load
# (percore-bench, its TLS client on one shard) pinned to CPU 0. Rounds are interleaved
# (server order rotates each round) and medians are quoted. Two loads per server and round:
#
#   keep-alive  -c 50 HTTPS keep-alive GET /: requests/s and server CPU µs per request;
#   handshake   --new-conn --tls-resume off -c 16: one full handshake per request
#               (TLS 1.3, X25519, ECDSA P-256): handshakes/s and server CPU µs per
#               handshake, i.e. handshakes per second of one core = 1e6 / µs.
#
#   bench/scripts/tls_peers.sh                      # ROUNDS=3 DURATION=5 WARMUP=1
#   ROUNDS=5 DURATION=10 bench/scripts/tls_peers.sh
#
# Prints a markdown table and writes raw JSON lines under $OUT. The certificate is an
# end-entity one (CA:FALSE): webpki, in percore-bench's client, refuses a CA certificate
# serving as a leaf.
set -euo pipefail
cd "$(dirname "$0")/../.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
SERVERS=${SERVERS:-percore nginx hyper-rustls}
OUT=${OUT:-$(mktemp -d /tmp/tls-peers.XXXXXX)}
PORT=${PORT:-18443}
[[ -x /usr/sbin/nginx ]] && PATH=$PATH:/usr/sbin

for tool in openssl nginx python3 taskset; do
    command -v "$tool" >/dev/null || { echo "tls_peers: $tool is missing" >&2; exit 1; }
done

cargo build --release -q -p percore-cli -p percore-bench
cargo build --release -q --manifest-path bench/peers/Cargo.toml -p hyper-rustls-peer

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=localhost -addext "subjectAltName=DNS:localhost" \
    -addext "basicConstraints=critical,CA:FALSE" \
    -keyout "$OUT/key.pem" -out "$OUT/cert.pem" 2>/dev/null
CERT=$OUT/cert.pem
KEY=$OUT/key.pem

SERVER_PID=""   # the process whose CPU is measured
STOP_PID=""     # the process to stop

wait_listening() {
    local i
    for i in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return 0
        kill -0 "$STOP_PID" 2>/dev/null || { echo "server exited before listening" >&2; return 1; }
        sleep 0.1
    done
    echo "server did not listen on $PORT" >&2
    return 1
}

start() {
    case $1 in
        percore)
            taskset -c 1 target/release/percore serve --shards 1 --quiet \
                --listen "127.0.0.1:$PORT" --tls-cert "$CERT" --tls-key "$KEY" \
                --max-requests 100000000 --drain-timeout-secs 1 &
            STOP_PID=$!
            SERVER_PID=$STOP_PID ;;
        nginx)
            local dir=$OUT/nginx
            mkdir -p "$dir"
            sed -e "s|@PORT@|$PORT|g" -e "s|@DIR@|$dir|g" -e "s|@CERT@|$CERT|g" \
                -e "s|@KEY@|$KEY|g" bench/peers/nginx/nginx-tls.conf.tmpl >"$dir/nginx.conf"
            taskset -c 1 nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" \
                -g "daemon off;" &
            STOP_PID=$! ;;
        hyper-rustls)
            TLS_CERT=$CERT TLS_KEY=$KEY taskset -c 1 \
                bench/peers/target/release/hyper-rustls --listen "127.0.0.1:$PORT" --threads 1 &
            STOP_PID=$!
            SERVER_PID=$STOP_PID ;;
    esac
    wait_listening
    if [[ $1 == nginx ]]; then
        # The worker serves; the master only forks it.
        SERVER_PID=$(pgrep -P "$STOP_PID" | head -1)
    fi
}

stop() {
    kill "$STOP_PID" 2>/dev/null || true
    wait "$STOP_PID" 2>/dev/null || true
}

load() {
    # load NAME ARGS...: one JSON line tagged with the server and the load
    local server=$1 what=$2
    shift 2
    local line
    if ! line=$(taskset -c 0 target/release/percore-bench http --shards 1 -q --json \
        --target "https://localhost:$PORT" --tls-ca "$CERT" \
        -d "$DURATION" -w "$WARMUP" --server-pid "$SERVER_PID" "$@"); then
        echo "tls_peers: the $what load against $server failed; see above" >&2
        stop
        exit 1
    fi
    echo "{\"server\":\"$server\",\"load\":\"$what\",\"report\":$line}" >>"$OUT/runs.jsonl"
}

servers=($SERVERS)
for round in $(seq 1 "$ROUNDS"); do
    # Rotate the order each round so no server always runs first or last.
    n=${#servers[@]}
    for i in $(seq 0 $((n - 1))); do
        server=${servers[$(((i + round - 1) % n))]}
        echo "round $round: $server" >&2
        start "$server"
        load "$server" keepalive -c 50
        load "$server" handshake -c 16 --new-conn --tls-resume off
        stop
    done
done

python3 - "$OUT/runs.jsonl" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
def med(server, load, key):
    xs = [r["report"].get(key) for r in runs if r["server"] == server and r["load"] == load]
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan"), len(xs)
servers = list(dict.fromkeys(r["server"] for r in runs))
base = "nginx"
ka_cpu = {s: med(s, "keepalive", "server_cpu_us_per_request")[0] for s in servers}
hs_cpu = {s: med(s, "handshake", "server_cpu_us_per_request")[0] for s in servers}
print("| server | keep-alive req/s | server CPU µs/req | × nginx | full handshakes/s | server CPU µs/handshake | handshakes/s per core | × nginx | rounds |")
print("|---|---|---|---|---|---|---|---|---|")
for s in servers:
    rps, n = med(s, "keepalive", "requests_per_sec")
    hps, _ = med(s, "handshake", "requests_per_sec")
    per_core = 1e6 / hs_cpu[s] if hs_cpu[s] else float("nan")
    base_core = 1e6 / hs_cpu[base] if base in hs_cpu and hs_cpu[base] else float("nan")
    print(f"| {s} | {rps:,.0f} | {ka_cpu[s]:.1f} | {ka_cpu[s] / ka_cpu.get(base, float('nan')):.2f} | "
          f"{hps:,.0f} | {hs_cpu[s]:.0f} | {per_core:,.0f} | {per_core / base_core:.2f} | {n} |")
errors = sum(r["report"].get("errors", 0) for r in runs)
print(f"\nerrors over all runs: {errors:.0f}; raw runs: {sys.argv[1]}")
PY
