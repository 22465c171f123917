#!/usr/bin/env bash
# Redis's own test suite as the yardstick: runs units of the Redis 7.0 `tests/` tree in
# external-server mode (`./runtest --host H --port P`) against redis-server and against
# `percore kv` on the same machine, and prints the passes per unit for both.
#
# The `tests/` tree: the directory given with --src (or REDIS_SRC), a Redis 7.0 source tree;
# otherwise Debian's source package of redis (7.0.x on bookworm), fetched with
# `apt-get source redis` into $CACHE (a deb-src entry is added when none exists and the
# script runs as root). Needs tclsh, redis-server and a built `percore` binary.
#
# Flags given to runtest for both servers: --durable (a test that raises an error, such as
# an unknown command, counts as failed instead of ending its unit) and --timeout. Nothing is
# skipped for percore that is not skipped for redis-server.
#
# Usage: shards/kv/tests/redis-suite.sh [--src DIR] [--units "type/string keyspace ..."]
#            [--servers "redis percore"] [--percore PATH] [--shards N] [--out DIR]
#            [--port-offset N]
#            [-- EXTRA RUNTEST ARGS...]   (e.g. `-- --singledb`, given to runtest for both servers)
# Not part of `cargo test`: a full run takes about 15 minutes for both servers. Results and
# the reasons for the remaining failures: shards/kv/COMPATIBILITY.md.
set -euo pipefail
cd "$(dirname "$0")/../../.."

SRC=${REDIS_SRC:-}
CACHE=${CACHE:-/tmp/percore-redis-src}
UNITS=${UNITS:-"type/string type/incr keyspace expire type/hash type/list type/set type/zset pubsub scan protocol info"}
SERVERS=${SERVERS:-"redis percore"}
PERCORE=${PERCORE:-target/debug/percore}
SHARDS=${SHARDS:-2}
OUT=${OUT:-/tmp/redis-suite}
TEST_TIMEOUT=${TEST_TIMEOUT:-120}
EXTRA=()
PORT_OFFSET=${PORT_OFFSET:-0}
while [[ $# -gt 0 ]]; do
    case $1 in
        --src) SRC=$2; shift 2 ;;
        --units) UNITS=$2; shift 2 ;;
        --servers) SERVERS=$2; shift 2 ;;
        --percore) PERCORE=$2; shift 2 ;;
        --shards) SHARDS=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --port-offset) PORT_OFFSET=$2; shift 2 ;;
        --) shift; EXTRA=("$@"); break ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

die() {
    echo "redis-suite: $*" >&2
    exit 1
}

command -v tclsh >/dev/null || die "tclsh is missing: install the tcl package"

# The Redis source tree whose tests/ runs.
fetch_source() {
    local found
    found=$(find "$CACHE" -maxdepth 2 -name runtest -printf '%h\n' 2>/dev/null | head -n1)
    if [[ -n $found ]]; then
        echo "$found"
        return
    fi
    command -v apt-get >/dev/null || die "no apt-get: give a Redis 7.0 source tree with --src"
    if ! grep -rqs '^Types: deb-src\|^deb-src' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        [[ $(id -u) == 0 ]] || die "no deb-src entry and not root: give a Redis 7.0 source tree with --src"
        local suite
        suite=$(. /etc/os-release && echo "$VERSION_CODENAME")
        printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
            "$suite" >/etc/apt/sources.list.d/percore-deb-src.sources
        apt-get update -qq >/dev/null
    fi
    command -v dpkg-source >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dpkg-dev >/dev/null
    mkdir -p "$CACHE"
    (cd "$CACHE" && apt-get source -qq redis >/dev/null 2>&1) || die "apt-get source redis failed: give a Redis 7.0 source tree with --src"
    found=$(find "$CACHE" -maxdepth 2 -name runtest -printf '%h\n' | head -n1)
    [[ -n $found ]] || die "the redis source package has no runtest"
    echo "$found"
}

if [[ -z $SRC ]]; then
    SRC=$(fetch_source)
fi
[[ -x $SRC/runtest && -d $SRC/tests/unit ]] || die "$SRC is not a Redis source tree (no runtest, tests/unit)"
version=$(sed -n 's/.*REDIS_VERSION "\(.*\)".*/\1/p' "$SRC/src/version.h" 2>/dev/null || true)
echo "redis tests from $SRC (version ${version:-unknown})"

PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT
trap 'exit 143' INT TERM

wait_port() {
    local port=$1 i
    for i in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    die "nothing answers on port $port"
}

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
# --port-offset N moves every port, so two runs of this script can share a machine.
declare -A PORT=([redis]=$((16479 + PORT_OFFSET)) [percore]=$((16480 + PORT_OFFSET)))
# The test server's own ports (runtest --baseport), apart for the two servers.
declare -A BASEPORT=([redis]=$((21111 + PORT_OFFSET)) [percore]=$((23111 + PORT_OFFSET)))
for server in $SERVERS; do
    case $server in
        redis) command -v redis-server >/dev/null || die "redis-server is missing: install the redis-server package" ;;
        percore) [[ -x $PERCORE ]] || die "$PERCORE is missing: cargo build -p percore-cli" ;;
        *) die "unknown server $server (redis, percore)" ;;
    esac
done
if [[ " $SERVERS " == *" redis "* ]]; then
    redis-server --version
fi

# A fresh server for every unit (as runtest gives each unit when it starts its own): a
# unit that changes the configuration does not leak into the next one.
start_server() {
    local server=$1 unit=$2
    case $server in
        redis)
            # Its files (tests turn appendonly on) go to a directory of its own.
            mkdir -p "$OUT/redis-dir"
            redis-server --port "${PORT[redis]}" --bind 127.0.0.1 --save '' --appendonly no \
                --dir "$OUT/redis-dir" --daemonize no --loglevel warning >>"$OUT/redis.log" 2>&1 &
            ;;
        percore)
            # Its files (tests turn appendonly on) go to a directory of the unit's own.
            mkdir -p "$OUT/percore-dir/${unit//\//_}"
            "$PERCORE" kv --unpinned "$SHARDS" --quiet --listen "127.0.0.1:${PORT[percore]}" \
                --drain-timeout-secs 2 --dir "$OUT/percore-dir/${unit//\//_}" \
                >>"$OUT/percore-${unit//\//_}.server.log" 2>&1 &
            ;;
    esac
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    wait_port "${PORT[$server]}"
}

stop_server() {
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
}

declare -A PASS FAIL
for unit in $UNITS; do
    [[ -f $SRC/tests/unit/$unit.tcl ]] || die "no unit $unit in $SRC/tests/unit"
    for server in $SERVERS; do
        log="$OUT/${server}-${unit//\//_}.log"
        start_server "$server" "$unit"
        (cd "$SRC" && TERM=dumb timeout 900 ./runtest --host 127.0.0.1 --port "${PORT[$server]}" \
            --single "unit/$unit" --durable --timeout "$TEST_TIMEOUT" --baseport "${BASEPORT[$server]}" \
            ${EXTRA[@]+"${EXTRA[@]}"} --clients 1 >"$log" 2>&1) || true
        stop_server
        sed -i 's/\x1b\[[0-9;]*m//g' "$log"
        PASS[$server,$unit]=$(grep -c '^\[ok\]' "$log" || true)
        FAIL[$server,$unit]=$(grep -c '^\[err\]\|^\[exception\]' "$log" || true)
        printf '%-12s %-8s %4d passed %4d failed\n' "$unit" "$server" \
            "${PASS[$server,$unit]}" "${FAIL[$server,$unit]}"
    done
done

echo
printf '| unit | %s |\n' "$(echo "$SERVERS" | sed 's/ / | /g')"
printf '|---|%s\n' "$(for _ in $SERVERS; do printf -- '---|'; done)"
declare -A TOTAL
for unit in $UNITS; do
    row="| $unit |"
    for server in $SERVERS; do
        row+=" ${PASS[$server,$unit]} |"
        TOTAL[$server]=$((${TOTAL[$server]:-0} + PASS[$server,$unit]))
    done
    echo "$row"
done
row="| total |"
for server in $SERVERS; do
    row+=" ${TOTAL[$server]} |"
done
echo "$row"
echo "logs in $OUT"
