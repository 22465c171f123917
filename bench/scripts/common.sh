# Shared by the bench scripts: build, start a pinned `percore echo`, wait for its port, stop
# it by PID. Sourced, not run.

BIN=target/release
SERVER_PID=""

# Defaults of the measuring scripts (override from the environment): rounds per
# configuration, measured and warm-up seconds, server port.
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
PORT=${PORT:-7000}

build() {
    # Always build: another engineer may have changed the kernel since the last build.
    cargo build --release -q -p percore-cli -p percore-bench
}

# start_server PORT [BINARY]: `percore echo` (or BINARY's echo), one shard, on CPU 1.
start_server() {
    local port=$1 bin=${2:-$BIN/percore}
    taskset -c 1 "$bin" echo --shards 1 --quiet --listen "127.0.0.1:$port" \
        --drain-timeout-secs 1 &
    SERVER_PID=$!
    wait_listening "$port"
}

# start_http_server PORT [BINARY]: `percore serve` (HTTP demo), one shard, on CPU 1, with no
# per-connection request cap (like nginx's keepalive_requests in the peer harness).
start_http_server() {
    local port=$1 bin=${2:-$BIN/percore}
    taskset -c 1 "$bin" serve --shards 1 --quiet --listen "127.0.0.1:$port" \
        --drain-timeout-secs 1 --max-requests 100000000 &
    SERVER_PID=$!
    wait_listening "$port"
}

# wait_listening PORT: until 127.0.0.1:PORT accepts (10 s at most) or the server exits.
wait_listening() {
    local port=$1
    local i
    for i in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "server exited before listening" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "server did not listen on port $port within 10 s" >&2
    return 1
}

# stop_server: SIGTERM (graceful), SIGKILL after 5 s.
stop_server() {
    if [[ -z "$SERVER_PID" ]]; then
        return 0
    fi
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        local i
        for i in $(seq 1 50); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}
