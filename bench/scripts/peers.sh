#!/usr/bin/env bash
# Peer comparison, HTTP plaintext: the same `GET /` -> `Hello, World!` load against each
# server, servers interleaved per round (A B C … A B C …), medians of the rounds.
# Method: docs/benchmarking.md. Servers: bench/peers/ (README "Peers").
#
#   bench/scripts/peers.sh                        # all servers, 3 rounds, 2 s + 10 s per pass
#   bench/scripts/peers.sh --quick                # CI: 1 round, raw-uring + tokio-hyper, 3 s
#   bench/scripts/peers.sh --install --servers raw-uring,tokio-hyper,nginx,node,fastapi \
#       --rounds 3 --write-results
#
# Options:
#   --servers LIST     comma-separated, from: raw-uring tokio-hyper monoio glommio nginx node
#                      fastapi percore percore-epoll axum-percore hyper-percore axum-tokio
#                      axum-tokio-mt (default: all). percore-epoll: percore's HTTP service on
#                      its epoll driver (`--driver epoll`); percore: the default driver
#                      (auto: io_uring where it works; run-percore/server.log says which). axum-*: one axum Router on percore's compat layer, on
#                      tokio current_thread per thread (SO_REUSEPORT) and on tokio's
#                      multi-thread runtime; hyper-percore: a hyper service_fn on percore.
#   --rounds N         rounds (default 3); --duration S measured seconds (10); --warmup S (2)
#   --passes LIST      connections:pipeline, space- or comma-separated (default
#                      "100:1,256:1,256:16")
#   --layout L         one (server on CPU 1 with 1 worker, load on CPU 0), both (server with 2
#                      workers on CPUs 0-1, load on CPUs 0-1 with 2 threads), or one,both
#   --quick            1 round, raw-uring + tokio-hyper (unless --servers), 1 s + 3 s
#   --install          apt-get install missing nginx/wrk/nodejs; build the FastAPI venv
#   --write-results    append the report to bench/history/http.md (then update the current
#                      table at the top of bench/RESULTS.md by hand)
#   --out DIR          where raw outputs go (default: a new /tmp/peers.XXXXXX)
# Env: LOAD_TOOL (wrk, the default, or percore-bench: its http mode, which also gives
#      per-request percentiles when pipelining),
#      PORT_BASE (default 18080; server i listens on PORT_BASE + i, on 127.0.0.1 only).
#
# A peer that cannot run here (no node, no venv, a build failure, a server that does not
# answer `Hello, World!`) is reported and skipped; the run goes on. Every server is started
# under `timeout`, stopped by PID (its whole process tree) on exit, and every load is bounded.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

ALL_SERVERS="raw-uring,tokio-hyper,monoio,glommio,nginx,node,fastapi,percore,percore-epoll,axum-percore,hyper-percore,axum-tokio,axum-tokio-mt"
SERVERS=""
ROUNDS=3
DURATION=10
WARMUP=2
PASSES="100:1,256:1,256:16"
LAYOUTS="one"
QUICK=0
INSTALL=0
WRITE=0
OUT=""
LOAD_TOOL=${LOAD_TOOL:-wrk}
PORT_BASE=${PORT_BASE:-18080}
CMDLINE="bench/scripts/peers.sh $*"

die() { echo "peers.sh: $*" >&2; exit 2; }
while (($#)); do
    case $1 in
        --servers) SERVERS=${2:?}; shift ;;
        --rounds) ROUNDS=${2:?}; shift ;;
        --duration) DURATION=${2:?}; shift ;;
        --warmup) WARMUP=${2:?}; shift ;;
        --passes) PASSES=${2:?}; shift ;;
        --layout) LAYOUTS=${2:?}; shift ;;
        --quick) QUICK=1 ;;
        --install) INSTALL=1 ;;
        --write-results) WRITE=1 ;;
        --out) OUT=${2:?}; shift ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
    shift
done
if ((QUICK)); then
    ROUNDS=1 DURATION=3 WARMUP=1
    SERVERS=${SERVERS:-raw-uring,tokio-hyper}
fi
SERVERS=${SERVERS:-$ALL_SERVERS}
[[ $ROUNDS =~ ^[1-9][0-9]?$ && $DURATION =~ ^[1-9][0-9]*$ && $WARMUP =~ ^[0-9]+$ ]] ||
    die "--rounds 1..99, --duration ≥ 1, --warmup ≥ 0"
((DURATION <= 120)) || die "--duration at most 120 s"
OUT=${OUT:-$(mktemp -d /tmp/peers.XXXXXX)}
mkdir -p "$OUT"
RUNS=$OUT/runs.tsv
: >"$RUNS"
SKIPS=$OUT/skipped.txt
: >"$SKIPS"
CLK_TCK=$(getconf CLK_TCK)
PEERS=bench/peers
PEER_BIN=$PEERS/target/release
IFS=', ' read -r -a SERVER_LIST <<<"$SERVERS"
IFS=', ' read -r -a PASS_LIST <<<"$PASSES"
IFS=', ' read -r -a LAYOUT_LIST <<<"$LAYOUTS"
for l in "${LAYOUT_LIST[@]}"; do [[ $l == one || $l == both ]] || die "--layout one|both"; done
for p in "${PASS_LIST[@]}"; do [[ $p =~ ^[0-9]+:[0-9]+$ ]] || die "pass $p: want CONNS:PIPELINE"; done

log() { echo "[peers $(date +%H:%M:%S)] $*" >&2; }
skip() { # skip SERVER REASON
    log "SKIP $1: $2"
    echo "$1	$2" >>"$SKIPS"
}
is_skipped() { grep -q "^$1	" "$SKIPS"; }

# ---------------------------------------------------------------- process bookkeeping
STARTED=() # PIDs of every server this script started

# descendants PID: PID and every process below it (from the ppid field of /proc/*/stat).
descendants() {
    local -A kids=()
    local f line rest pid ppid
    for f in /proc/[0-9]*/stat; do
        read -r line <"$f" 2>/dev/null || continue
        pid=${f#/proc/}
        pid=${pid%/stat}
        rest=${line##*) }
        read -r _ ppid _ <<<"$rest"
        kids[$ppid]+=" $pid"
    done
    local queue=("$1") out=() p
    while ((${#queue[@]})); do
        p=${queue[0]}
        queue=("${queue[@]:1}")
        out+=("$p")
        # shellcheck disable=SC2206
        [[ -n ${kids[$p]:-} ]] && queue+=(${kids[$p]})
    done
    echo "${out[@]}"
}

# tree_ticks PID: utime+stime (clock ticks) of PID's process tree, all threads included.
tree_ticks() {
    local total=0 p line rest
    for p in $(descendants "$1"); do
        read -r line <"/proc/$p/stat" 2>/dev/null || continue
        rest=${line##*) }
        # fields after "comm)": state(3) ppid(4) … utime(14) stime(15)
        read -r -a f <<<"$rest"
        total=$((total + f[11] + f[12]))
    done
    echo "$total"
}

# stop_tree PID: SIGTERM to the tree (the started PID first), SIGKILL to what is left after 5 s.
stop_tree() {
    local root=$1 pids i p alive
    kill -0 "$root" 2>/dev/null || { wait "$root" 2>/dev/null || true; return 0; }
    pids=$(descendants "$root")
    kill -TERM $pids 2>/dev/null || true
    for i in $(seq 1 50); do
        alive=0
        for p in $pids; do kill -0 "$p" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.1
    done
    for p in $pids; do kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null; done
    wait "$root" 2>/dev/null || true
}

cleanup() {
    local p
    for p in "${STARTED[@]}"; do stop_tree "$p"; done
    STARTED=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- install, build, probe
have() { command -v "$1" >/dev/null 2>&1; }

if ((INSTALL)); then
    pkgs=()
    have wrk || pkgs+=(wrk)
    have nginx || [[ -x /usr/sbin/nginx ]] || pkgs+=(nginx)
    have node || pkgs+=(nodejs)
    have curl || pkgs+=(curl)
    if ((${#pkgs[@]})); then
        log "apt-get install -y ${pkgs[*]}"
        timeout 900 apt-get install -y "${pkgs[@]}" >"$OUT/apt.log" 2>&1 ||
            { timeout 300 apt-get update >>"$OUT/apt.log" 2>&1 &&
                timeout 900 apt-get install -y "${pkgs[@]}" >>"$OUT/apt.log" 2>&1; } ||
            log "apt-get install failed (see $OUT/apt.log); missing peers will be skipped"
    fi
    if [[ ! -x $PEERS/fastapi/.venv/bin/uvicorn ]] && have python3; then
        log "building the FastAPI venv ($PEERS/fastapi/.venv)"
        { timeout 120 python3 -m venv "$PEERS/fastapi/.venv" &&
            timeout 900 "$PEERS/fastapi/.venv/bin/pip" install -q -r "$PEERS/fastapi/requirements.txt"; } \
            >"$OUT/pip.log" 2>&1 || log "FastAPI venv failed (see $OUT/pip.log)"
    fi
fi
[[ -x /usr/sbin/nginx ]] && PATH=$PATH:/usr/sbin

case $LOAD_TOOL in
    wrk) have wrk || die "wrk is not installed (apt-get install -y wrk, or run with --install)" ;;
    percore-bench)
        log "cargo build --release -p percore-bench"
        timeout 1500 cargo build --release -q -p percore-bench >"$OUT/cargo-bench.log" 2>&1 \
            || die "percore-bench does not build (see $OUT/cargo-bench.log)" ;;
    *) die "LOAD_TOOL=$LOAD_TOOL: use wrk or percore-bench" ;;
esac

want() { [[ " ${SERVER_LIST[*]} " == *" $1 "* ]]; }
rust_peers=()
for s in raw-uring tokio-hyper monoio glommio axum-tokio axum-tokio-mt axum-percore hyper-percore; do
    want "$s" && rust_peers+=("$s")
done
# peer_package SERVER: the crate of bench/peers that builds SERVER's binary.
peer_package() {
    case $1 in
        monoio | glommio) echo "$1-peer" ;;
        axum-tokio-mt) echo axum-tokio ;;
        hyper-percore) echo axum-percore ;;
        *) echo "$1" ;;
    esac
}
if ((${#rust_peers[@]})); then
    # Only the crates of the servers asked for (glommio and monoio take long to build).
    pkg_args=()
    for s in "${rust_peers[@]}"; do pkg_args+=(-p "$(peer_package "$s")"); done
    log "cargo build --release --manifest-path $PEERS/Cargo.toml ${pkg_args[*]}"
    if ! timeout 1500 cargo build --release --manifest-path "$PEERS/Cargo.toml" "${pkg_args[@]}" >"$OUT/cargo-peers.log" 2>&1; then
        # One crate failing (glommio and monoio are the fragile ones) must not lose the rest.
        for s in "${rust_peers[@]}"; do
            timeout 900 cargo build --release --manifest-path "$PEERS/Cargo.toml" -p "$(peer_package "$s")" \
                >>"$OUT/cargo-peers.log" 2>&1 || skip "$s" "cargo build failed (see $OUT/cargo-peers.log)"
        done
    fi
fi
if want percore || want percore-epoll; then
    log "cargo build --release -p percore-cli"
    if ! timeout 1500 cargo build --release -q -p percore-cli >"$OUT/cargo-percore.log" 2>&1; then
        for s in percore percore-epoll; do
            want "$s" && skip "$s" "cargo build -p percore-cli failed (see $OUT/cargo-percore.log)"
        done
    elif ! timeout 10 target/release/percore serve --help >/dev/null 2>&1; then
        for s in percore percore-epoll; do
            want "$s" && skip "$s" "\`target/release/percore serve --help\` fails: percore has no HTTP serve command yet"
        done
    fi
fi

# probe SERVER: prints why SERVER cannot run here, or nothing.
probe() {
    case $1 in
        raw-uring) [[ -x $PEER_BIN/raw-uring ]] || echo "no $PEER_BIN/raw-uring" ;;
        tokio-hyper) [[ -x $PEER_BIN/tokio-hyper ]] || echo "no $PEER_BIN/tokio-hyper" ;;
        monoio) [[ -x $PEER_BIN/monoio-peer ]] || echo "no $PEER_BIN/monoio-peer" ;;
        glommio) [[ -x $PEER_BIN/glommio-peer ]] || echo "no $PEER_BIN/glommio-peer" ;;
        axum-tokio | axum-tokio-mt | axum-percore | hyper-percore)
            [[ -x $PEER_BIN/$1 ]] || echo "no $PEER_BIN/$1" ;;
        nginx) have nginx || echo "nginx is not installed (apt-get install -y nginx, or --install)" ;;
        node) have node || echo "node is not installed (apt-get install -y nodejs, or --install)" ;;
        fastapi) [[ -x $PEERS/fastapi/.venv/bin/uvicorn ]] ||
            echo "no FastAPI venv at $PEERS/fastapi/.venv (run with --install; needs python3 + pip)" ;;
        percore | percore-epoll) [[ -x target/release/percore ]] || echo "no target/release/percore" ;;
        *) echo "unknown server (known: $ALL_SERVERS)" ;;
    esac
}
for s in "${SERVER_LIST[@]}"; do
    is_skipped "$s" && continue
    why=$(probe "$s")
    [[ -z $why ]] || skip "$s" "$why"
done

# ---------------------------------------------------------------- servers
SERVER_PID=""

# start_server SERVER PORT WORKERS CPUS LIMIT_S: starts it pinned, waits until it answers;
# on failure returns 1 with the reason in START_ERR.
START_ERR=""
start_server() {
    local s=$1 port=$2 workers=$3 cpus=$4 limit=$5 listen=127.0.0.1:$2 dir
    dir=$OUT/run-$s
    mkdir -p "$dir"
    local cmd=()
    case $s in
        raw-uring) cmd=("$PEER_BIN/raw-uring" --listen "$listen" --threads "$workers") ;;
        tokio-hyper) cmd=("$PEER_BIN/tokio-hyper" --listen "$listen" --threads "$workers") ;;
        monoio) cmd=("$PEER_BIN/monoio-peer" --listen "$listen" --threads "$workers") ;;
        glommio) cmd=("$PEER_BIN/glommio-peer" --listen "$listen" --threads "$workers") ;;
        axum-tokio | axum-tokio-mt | axum-percore | hyper-percore)
            cmd=("$PEER_BIN/$s" --listen "$listen" --threads "$workers") ;;
        nginx)
            sed -e "s|@WORKERS@|$workers|; s|@PORT@|$port|; s|@DIR@|$dir|g" \
                "$PEERS/nginx/nginx.conf.tmpl" >"$dir/nginx.conf"
            cmd=(nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" -g "daemon off;") ;;
        node) cmd=(node "$PEERS/node/server.js" --listen "$listen" --workers "$workers") ;;
        fastapi) cmd=("$ROOT/$PEERS/fastapi/.venv/bin/uvicorn" app:app --app-dir "$ROOT/$PEERS/fastapi"
            --host 127.0.0.1 --port "$port" --workers "$workers" --loop uvloop --http httptools
            --no-access-log --no-server-header --log-level warning) ;;
        # No per-connection request cap, like nginx's keepalive_requests here (at the
        # default 1000 wrk's pipelined requests behind each close count as errors).
        percore) cmd=(target/release/percore serve --listen "$listen" --shards "$workers"
            --max-requests 100000000) ;;
        percore-epoll) cmd=(target/release/percore serve --listen "$listen" --shards "$workers"
            --max-requests 100000000 --driver epoll) ;;
    esac
    echo "taskset -c $cpus ${cmd[*]}" >"$dir/command"
    timeout "$limit" taskset -c "$cpus" "${cmd[@]}" >>"$dir/server.log" 2>&1 &
    SERVER_PID=$!
    STARTED+=("$SERVER_PID")
    local i body
    for i in $(seq 1 150); do
        if body=$(curl -s --max-time 1 "http://$listen/" 2>/dev/null) && [[ -n $body ]]; then
            [[ $body == "Hello, World!" ]] && return 0
            START_ERR="answered '${body:0:60}' instead of 'Hello, World!'"
            return 1
        fi
        kill -0 "$SERVER_PID" 2>/dev/null ||
            { START_ERR="exited before answering: $(tail -c 300 "$dir/server.log" | tr '\n' ' ')"; return 1; }
        sleep 0.1
    done
    START_ERR="did not answer on $listen within 15 s"
    return 1
}

stop_server() {
    [[ -n $SERVER_PID ]] || return 0
    stop_tree "$SERVER_PID"
    local kept=() p
    for p in "${STARTED[@]}"; do [[ $p == "$SERVER_PID" ]] || kept+=("$p"); done
    STARTED=("${kept[@]}")
    SERVER_PID=""
}

# ---------------------------------------------------------------- load
# load_run CPUS THREADS CONNS PIPELINE SECONDS URL OUTFILE: one bounded load run; its raw
# output goes to OUTFILE. LOAD_TOOL=percore-bench runs `percore-bench http` with one client
# shard per load thread (its JSON report; its latency is per request, pipelined or not).
load_run() {
    local cpus=$1 threads=$2 conns=$3 pipeline=$4 secs=$5 url=$6 out=$7
    local script=()
    ((pipeline > 1)) && script=(-s bench/scripts/peers/pipeline.lua)
    case $LOAD_TOOL in
        wrk)
            timeout $((secs + 20)) taskset -c "$cpus" wrk -t"$threads" -c"$conns" -d"${secs}s" \
                --timeout 2s --latency "${script[@]}" "$url" -- "$pipeline" >"$out" 2>&1 || true ;;
        percore-bench)
            local target=${url#http://}
            target=${target%/}
            timeout $((secs + 20)) taskset -c "$cpus" target/release/percore-bench http \
                --target "$target" --shards "$threads" -c "$conns" --pipeline "$pipeline" \
                -d "$secs" -w 0 --timeout 2s --json -q >"$out" 2>&1 || true ;;
    esac
}

# parse_load OUTFILE: "requests req_per_s p50_us p99_us errors" (or nothing if unparsable).
parse_load() {
    if [[ $LOAD_TOOL == percore-bench ]]; then
        python3 - "$1" <<'PY' 2>/dev/null || true
import json, sys
line = [l for l in open(sys.argv[1]) if l.startswith("{")][-1]
r = json.loads(line)
l = r["latency_us"]
print(f'{int(r["requests"])} {r["requests_per_sec"]:.1f} {l["p50"]:.1f} {l["p99"]:.1f} {int(r["errors"])}')
PY
        return
    fi
    awk '
        function us(v) {
            if (v ~ /us$/) return v + 0; if (v ~ /ms$/) return v * 1000
            if (v ~ /m$/) return v * 60e6; if (v ~ /s$/) return v * 1e6; return v + 0
        }
        / requests in / { req = $1 }
        /^Requests\/sec:/ { rps = $2 }
        /^ +50% / { p50 = us($2) }
        /^ +99% / { p99 = us($2) }
        /Socket errors:/ { gsub(/,/, ""); err += $4 + $6 + $8 + $10 }
        /Non-2xx or 3xx responses:/ { err += $NF }
        END { if (req != "" && rps != "") printf "%d %.1f %.1f %.1f %d\n", req, rps, p50, p99, err + 0 }
    ' "$1"
}

# ---------------------------------------------------------------- the rounds
pass_secs=$((WARMUP + DURATION + 5))
server_limit=$((${#PASS_LIST[@]} * (pass_secs + 45) + 60))
log "servers: ${SERVER_LIST[*]}; passes: ${PASS_LIST[*]}; layouts: ${LAYOUT_LIST[*]}; rounds $ROUNDS; ${WARMUP} s + ${DURATION} s; out $OUT"
echo "loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)" >"$OUT/load.txt"

for layout in "${LAYOUT_LIST[@]}"; do
    if [[ $layout == one ]]; then
        scpus=1 lcpus=0 workers=1 lthreads=1
    else
        scpus=0,1 lcpus=0,1 workers=2 lthreads=2
    fi
    for round in $(seq 1 "$ROUNDS"); do
        idx=0
        for s in "${SERVER_LIST[@]}"; do
            idx=$((idx + 1))
            is_skipped "$s" && continue
            port=$((PORT_BASE + idx))
            if ! start_server "$s" "$port" "$workers" "$scpus" "$server_limit"; then
                stop_server
                skip "$s" "$START_ERR"
                continue
            fi
            for pass in "${PASS_LIST[@]}"; do
                conns=${pass%%:*} pipeline=${pass##*:}
                raw=$OUT/$layout-$s-$conns-$pipeline-r$round
                if ((WARMUP > 0)); then
                    load_run "$lcpus" "$lthreads" "$conns" "$pipeline" "$WARMUP" "http://127.0.0.1:$port/" "$raw.warmup"
                fi
                t0=$(tree_ticks "$SERVER_PID")
                load_run "$lcpus" "$lthreads" "$conns" "$pipeline" "$DURATION" "http://127.0.0.1:$port/" "$raw.out"
                t1=$(tree_ticks "$SERVER_PID")
                parsed=$(parse_load "$raw.out")
                if [[ -z $parsed ]] || ! kill -0 "$SERVER_PID" 2>/dev/null; then
                    log "$s $conns×$pipeline round $round: no result (see $raw.out)"
                    printf '%s\t%s\t%s\t%s\t%s\tNA\tNA\tNA\tNA\tNA\tNA\n' "$layout" "$s" "$conns" "$pipeline" "$round" >>"$RUNS"
                    continue
                fi
                read -r req rps p50 p99 err <<<"$parsed"
                cpu_s=$(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", t / hz }')
                printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$layout" "$s" "$conns" \
                    "$pipeline" "$round" "$req" "$rps" "$p50" "$p99" "$cpu_s" "$err" >>"$RUNS"
                log "$layout $s ${conns}×$pipeline round $round: $rps req/s, p50 $p50 µs, p99 $p99 µs, server CPU ${cpu_s} s, errors $err"
            done
            stop_server
        done
    done
done
echo "loadavg at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/load.txt"

# ---------------------------------------------------------------- report
cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
{
    echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); \`nproc\`: $(nproc); kernel \`$(uname -r)\`; CPU \`${cpu_model:-unknown}\`; $(tr '\n' ';' <"$OUT/load.txt" | sed 's/;$//; s/;/; /')."
    echo "- Tree: \`$(git rev-parse --short HEAD 2>/dev/null || echo '?')\`$(git diff --quiet HEAD 2>/dev/null || echo ' + uncommitted changes'); load: \`$LOAD_TOOL\`$([[ $LOAD_TOOL == wrk ]] && echo " $(wrk -v 2>&1 | head -1 | cut -d' ' -f2)"); $(rustc -V 2>/dev/null | cut -d' ' -f1-2)$(have nginx && echo "; $(nginx -v 2>&1 | sed 's/.*: //')")$(have node && echo "; node $(node -v)")$([[ -x $PEERS/fastapi/.venv/bin/python ]] && echo "; $("$PEERS/fastapi/.venv/bin/python" -V 2>&1)")."
    echo "- Command: \`$CMDLINE\`; rounds $ROUNDS, ${WARMUP} s warm-up + ${DURATION} s measured per pass; raw outputs were in \`$OUT\`."
} >"$OUT/machine.md"

LOAD_TOOL="$LOAD_TOOL" python3 - "$RUNS" "$SKIPS" "$OUT/machine.md" "${SERVER_LIST[*]}" >"$OUT/report.md" <<'PY'
import os, statistics, sys
runs_path, skips_path, machine_path, order = sys.argv[1:5]
order = order.split()
rows = [l.rstrip("\n").split("\t") for l in open(runs_path) if l.strip()]
skips = [l.rstrip("\n").split("\t", 1) for l in open(skips_path) if l.strip()]
groups = {}
for layout, s, c, p, rnd, req, rps, p50, p99, cpu, err in rows:
    g = groups.setdefault((layout, int(c), int(p)), {}).setdefault(s, [])
    if req != "NA" and int(req) > 0:
        g.append(dict(req=int(req), rps=float(rps), p50=float(p50), p99=float(p99),
                      cpu_us=float(cpu) * 1e6 / int(req), err=int(err)))
    else:
        g.append(None)
med = statistics.median
def fmt_us(v):
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"
out = []
out.append(open(machine_path).read().rstrip())
out.append("")
tool = os.environ.get("LOAD_TOOL", "wrk")
one, both = ("wrk -t1", "wrk -t2") if tool == "wrk" else ("percore-bench, 1 shard", "percore-bench, 2 shards")
names = {"one": f"server on CPU 1 with 1 worker, load on CPU 0 ({one})",
         "both": f"server on CPUs 0-1 with 2 workers, load on CPUs 0-1 ({both})"}
for (layout, c, p), per in sorted(groups.items(), key=lambda kv: (kv[0][0] != "one", kv[0][1], kv[0][2])):
    title = f"{c} connections" + (f", pipelined ×{p}" if p > 1 else "")
    out.append(f"**{title}** — {names[layout]}")
    out.append("")
    out.append("| server | req/s | p50 µs | p99 µs | server CPU µs/req (rounds) | CPU/req ÷ raw-uring | req/s ÷ raw-uring | CPU/req ÷ percore | errors |")
    out.append("|---|---|---|---|---|---|---|---|---|")
    meds = {}
    for s in order:
        ok = [r for r in per.get(s, []) if r]
        if ok:
            meds[s] = dict(rps=med([r["rps"] for r in ok]), p50=med([r["p50"] for r in ok]),
                           p99=med([r["p99"] for r in ok]), cpu=med([r["cpu_us"] for r in ok]),
                           rounds=[r["cpu_us"] for r in ok], err=sum(r["err"] for r in ok),
                           failed=sum(1 for r in per[s] if r is None))
    base, pc = meds.get("raw-uring"), meds.get("percore")
    for s in order:
        m = meds.get(s)
        if not m:
            continue
        rounds = ", ".join(f"{x:.2f}" for x in m["rounds"])
        r_cpu = f"{m['cpu'] / base['cpu']:.2f}" if base else "–"
        r_rps = f"{m['rps'] / base['rps']:.2f}" if base else "–"
        r_pc = f"{m['cpu'] / pc['cpu']:.2f}" if pc else "–"
        err = str(m["err"]) + (f" (+{m['failed']} runs without result)" if m["failed"] else "")
        # wrk's latency histogram is meaningless with pipelining (it prints 0 or stray values).
        per_request = p == 1 or os.environ.get("LOAD_TOOL") == "percore-bench"
        lat = (fmt_us(m['p50']), fmt_us(m['p99'])) if per_request else ("n/a", "n/a")
        out.append(f"| {s} | {m['rps']:,.0f} | {lat[0]} | {lat[1]} | "
                   f"**{m['cpu']:.2f}** ({rounds}) | {r_cpu} | {r_rps} | {r_pc} | {err} |")
    out.append("")
if skips:
    out.append("Skipped: " + "; ".join(f"**{s}** — {why}" for s, why in skips) + ".")
    out.append("")
print("\n".join(out))
PY
cat "$OUT/report.md"
if ((WRITE)); then
    {
        echo
        echo "## Peers (HTTP plaintext, $LOAD_TOOL)"
        echo
        cat "$OUT/report.md"
    } >>bench/history/http.md
    log "appended to bench/history/http.md; update the current table in bench/RESULTS.md"
fi
log "raw outputs in $OUT"
