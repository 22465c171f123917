#!/usr/bin/env bash
# Checks this host for percore: runs `percore doctor`, building it first when needed.
#
#   linux-setup/doctor.sh [--shards N] [--connections N] [--driver auto|io_uring|epoll] [--json]
#
# One line per item: OK / WARN / FAIL with the exact fix, and the driver a run would get.
# Exit status 0 when percore can run here with that driver, 3 when it cannot. Which binary: $PERCORE if set, else this checkout's release or debug
# build, else `percore` on PATH (the first that has the doctor), else `cargo run --release`. Without any of them it runs the few
# checks a shell can do, so it is useful on a host that has no Rust toolchain yet.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if [ -n "${PERCORE:-}" ]; then
    exec "$PERCORE" doctor "$@"
fi
# A build older than the doctor does not know the subcommand: skip it rather than fail.
knows_doctor() { [ -x "$1" ] && "$1" doctor --help >/dev/null 2>&1; }
for bin in "$root/target/release/percore" "$root/target/debug/percore" "$(command -v percore || true)"; do
    if [ -n "$bin" ] && knows_doctor "$bin"; then
        exec "$bin" doctor "$@"
    fi
done
if command -v cargo >/dev/null 2>&1; then
    exec cargo run --release --quiet --manifest-path "$root/Cargo.toml" -p percore-cli -- doctor "$@"
fi

# No percore and no cargo: the checks a shell can do, in the doctor's format.
status=0
line() { printf '%-4s %-29s %s\n' "$1" "$2" "$3"; }
release="$(uname -r)"
IFS=. read -r major minor _ <<<"$release"
minor="${minor%%[!0-9]*}"
if [ "$major" -gt 6 ] || { [ "$major" -eq 6 ] && [ "$minor" -ge 1 ]; }; then
    line OK kernel.version "Linux $release (≥ 6.1)"
elif [ "$major" -eq 6 ]; then
    line WARN kernel.version "Linux $release: runs, without DEFER_TASKRUN (Linux ≥ 6.1) — fix: upgrade to Linux ≥ 6.1"
else
    line FAIL kernel.version "Linux $release: percore needs ≥ 6.0 — fix: upgrade to Linux ≥ 6.1"
    status=3
fi
disabled="$(cat /proc/sys/kernel/io_uring_disabled 2>/dev/null || echo absent)"
case "$disabled" in
0 | absent) line OK kernel.io_uring_disabled "$disabled" ;;
*)
    line FAIL kernel.io_uring_disabled "$disabled: io_uring restricted — fix: \`sysctl -w kernel.io_uring_disabled=0\` as root"
    status=3
    ;;
esac
seccomp="$(awk '/^Seccomp:/ {print $2}' /proc/self/status)"
line OK host.seccomp "mode ${seccomp:-unknown} (2: a filter is active; it may deny io_uring, see linux-setup/README.md)"
line OK rlimit.nofile "soft $(ulimit -Sn), hard $(ulimit -Hn) (percore raises soft to hard)"
line WARN percore "no percore binary and no cargo: io_uring itself was not probed — fix: install Rust (https://rustup.rs) and run this again"
exit "$status"
