#!/usr/bin/env bash
# Every cargo-fuzz target of the workspace (shards/*/fuzz) for a fixed time each (R16,
# docs/reliability.md); a crash, a leak or a timeout fails with the input that caused it.
# The corpus kept in the repository is fuzz/seeds/TARGET; each run starts from it and writes
# what it finds to fuzz/corpus/TARGET (not kept). `--keep` then merges into the kept corpus
# the new inputs that reach new coverage (libFuzzer's -merge=1), to be committed.
#
#   tests/fuzz.sh                          # 15 s per target
#   FUZZ_SECONDS=300 tests/fuzz.sh --keep  # longer, and grow the kept corpus
#
# Needs the nightly toolchain (`rustup toolchain install nightly`); installs cargo-fuzz
# when it is missing. Without nightly it says so and exits 0, unless CI=true.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-15}
keep=0
case "${1:-}" in
    --keep) keep=1 ;;
    "") ;;
    *) echo "fuzz: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
esac

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
            if ((keep)) && [ -n "$seeds" ]; then
                (cd "$crate" && cargo +nightly fuzz run "$target" "$seeds" "$corpus" -- \
                    -merge=1) >/dev/null 2>&1
                echo "kept corpus: $(ls "$crate/$seeds" | wc -l) inputs in $crate/$seeds"
            fi
        fi
    done
done
exit $status
