# Shared by steer_heavy.sh and steer_skew.sh: start a server from a command line, wait for its
# port, run the open-loop client, stop the server. Sourced, not run.

PY=${PY:-/usr/bin/python3}
LOAD="$ROOT/bench/scripts/steer_load.py"
SERVER_PID=""

wait_port() {
    local port=$1 i
    for i in $(seq 1 150); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || { echo "server exited before listening" >&2; return 1; }
        sleep 0.1
    done
    echo "server did not listen on $port within 15 s" >&2
    return 1
}

# start CMD...: runs the server in its own process group, so stop_server ends its children too.
start() {
    setsid "$@" >>"$OUT/server.log" 2>&1 &
    SERVER_PID=$!
}

stop_server() {
    [[ -n $SERVER_PID ]] || return 0
    kill -TERM -- "-$SERVER_PID" 2>/dev/null
    local i
    for i in $(seq 1 50); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL -- "-$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
    SERVER_PID=""
}

# cpu_ticks PID: utime+stime of every thread of PID, one "name ticks" line per thread.
thread_ticks() {
    local pid=$1 t
    for t in /proc/"$pid"/task/*; do
        awk '{ sub(/^[^(]*\(/, ""); name=$0; sub(/\).*$/, "", name); split($0, f, ") "); split(f[2], g, " "); print name, g[12] + g[13] }' "$t/stat" 2>/dev/null
    done
}

FASTAPI_VENV=${FASTAPI_VENV:-}
if [[ -z $FASTAPI_VENV ]]; then
    for v in "$ROOT/bench/peers/fastapi/.venv" /work/main/bench/peers/fastapi/.venv; do
        [[ -x $v/bin/uvicorn ]] && FASTAPI_VENV=$v && break
    done
fi
