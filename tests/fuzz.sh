#!/usr/bin/env bash
# Every cargo-fuzz target of the workspace (shards/*/fuzz) for a fixed time each (R16,
# docs/reliability.md). The corpus of each target is kept in the repository
# (shards/*/fuzz/corpus/TARGET, grown by these runs; seeds in fuzz/seeds/TARGET); a crash, a
# leak or a timeout fails with the input that caused it.
#
#   tests/fuzz.sh                   # 15 s per target
#   FUZZ_SECONDS=300 tests/fuzz.sh  # longer
#
# Needs the nightly toolchain (`rustup toolchain install nightly`); installs cargo-fuzz
# when it is missing. Without nightly it says so and exits 0, unless CI=true.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-15}

if ! cargo +nightly --version >/dev/null 2>&1; then
    if [ "${CI:-}" = true ]; then
        echo "fuzz: the nightly toolchain is missing (rustup toolchain install nightly)" >&2
        exit 1
    fi
    echo "fuzz: skipped: no nightly toolchain (rustup toolchain install nightly)"
    exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    cargo install --locked cargo-fuzz
fi

status=0
for dir in shards/*/fuzz; do
    grep -q 'cargo-fuzz = true' "$dir/Cargo.toml" 2>/dev/null || continue
    crate=${dir%/fuzz}
    dict=$(find "$dir" -maxdepth 1 -name '*.dict' | head -1)
    for target in $(cd "$crate" && cargo +nightly fuzz list); do
        corpus="fuzz/corpus/$target"
        seeds="fuzz/seeds/$target"
        mkdir -p "$crate/$corpus"
        [ -d "$crate/$seeds" ] || seeds=""
        echo "== fuzz $crate $target: ${seconds} s"
        log="$(mktemp /tmp/percore-fuzz.XXXXXX)"
        rc=0
        (cd "$crate" && cargo +nightly fuzz run "$target" "$corpus" $seeds -- \
            ${dict:+-dict=fuzz/$(basename "$dict")} -max_total_time="$seconds" \
            -timeout=10 -rss_limit_mb=2048 -print_final_stats=1) >"$log" 2>&1 || rc=$?
        grep -E '^Done|stat::number_of_executed_units|stat::new_units_added' "$log" || true
        if [ "$rc" != 0 ]; then
            tail -40 "$log" >&2
            echo "fuzz: $crate $target FAILED (exit $rc; the input is under $crate/fuzz/artifacts/$target; log $log)" >&2
            status=1
        else
            rm -f "$log"
        fi
    done
done
exit $status
