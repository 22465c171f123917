#!/usr/bin/env bash
# The project's test command (README): installs what the tests need when it is missing,
# then checks formatting and lints and runs every test of the workspace. Bounded: each
# test bounds its own loops and waits.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkg() {
    # $1: command that must exist, $2: Debian package that provides it.
    if ! command -v "$1" >/dev/null 2>&1; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            echo "installing $2 (for $1)"
            apt-get update -qq >/dev/null
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
        else
            echo "missing $1: install the $2 package" >&2
            exit 1
        fi
    fi
}

need_pkg taskset util-linux
need_pkg prlimit util-linux
need_pkg curl curl
need_pkg wrk wrk
need_pkg python3 python3
need_pkg redis-cli redis-tools
need_pkg redis-benchmark redis-tools
need_pkg c++ g++ # libFuzzer, built by cargo-fuzz (tests/fuzz.sh)
need_pkg openssl openssl # s_client for the TLS bad-input cases (shards/cli/tests/cli_tls.rs)
need_pkg haproxy haproxy # tests/haproxy_deploy.sh (docs/deploy.md)

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test"
cargo test --workspace
# The same unit and integration suites on the readiness driver, so a behaviour that differs
# between the drivers fails a test (tests that are about io_uring itself pin it).
echo "== cargo test on the epoll driver (PERCORE_DRIVER=epoll)"
PERCORE_DRIVER=epoll cargo test --workspace --tests
echo "== TLS (the tls feature of the library; the percore binary always has it)"
cargo clippy -p percore --features tls --all-targets -- -D warnings
cargo test -p percore --features tls --lib --test tls_stream
PERCORE_DRIVER=epoll cargo test -p percore --features tls --test tls_stream
echo "== driver fault injection (feature fault-injection), on io_uring and on epoll"
cargo clippy -p percore --features fault-injection --all-targets -- -D warnings
cargo test -p percore --features fault-injection --test fault_driver
PERCORE_DRIVER=epoll cargo test -p percore --features fault-injection --test fault_driver
echo "== percore-http with its serde feature (Json responses)"
cargo clippy -p percore-http --features serde --all-targets -- -D warnings
cargo test -p percore-http --features serde --lib --test http_router --test example_users
# compat (hyper, axum, tokio/futures I/O traits): its examples and tests are part of the
# workspace passes above, on both drivers (percore's self dev-dependency turns on the
# `examples` feature for tests and examples). The library alone with only `hyper` must build:
echo "== compat: the library with the hyper feature alone"
cargo clippy -p percore --features hyper --lib -- -D warnings
echo "== soak, 2 minutes (tests/soak.sh; the full one is 10)"
bash tests/soak.sh --minutes 2
echo "== HAProxy in front of two instances: hot restart and drain under load (tests/haproxy_deploy.sh)"
bash tests/haproxy_deploy.sh
echo "== fuzz, every target for a short fixed time (tests/fuzz.sh)"
bash tests/fuzz.sh
echo "== peer harness, quick mode (raw-uring, percore and percore on epoll, one round)"
harness_out=$(mktemp -d /tmp/peers-quick.XXXXXX)
bash bench/scripts/peers.sh --quick --servers raw-uring,percore,percore-epoll --passes 100:1 --out "$harness_out"
if [ -s "$harness_out/skipped.txt" ]; then
    echo "the peer harness skipped a server:" >&2
    cat "$harness_out/skipped.txt" >&2
    exit 1
fi
for server in raw-uring percore percore-epoll; do
    grep -q "^| $server |" "$harness_out/report.md" || {
        echo "the peer harness reported no row for $server (outputs in $harness_out)" >&2
        exit 1
    }
done
