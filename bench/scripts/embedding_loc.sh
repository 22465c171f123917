#!/usr/bin/env bash
# The length of each embedding example (issue 24) against the same service on axum/tokio
# (bench/peers/embedding): code lines, i.e. lines that are neither blank nor only a comment,
# after rustfmt. Goal: each ratio <= 1.2. Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/../.."
loc() { grep -v '^\s*$' "$1" | grep -cv '^\s*//'; }
echo "| example | percore | axum/tokio | ratio |"
echo "|---|---|---|---|"
while read -r ours theirs; do
    a=$(loc "$ours")
    b=$(loc "$theirs")
    echo "| $ours | $a | $b ($theirs) | $(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", a / b }') |"
done <<'LIST'
examples/counter_mesh.rs bench/peers/embedding/src/bin/counter.rs
shards/http/examples/users_api.rs bench/peers/embedding/src/bin/users_api.rs
examples/blocking_periodic.rs bench/peers/embedding/src/bin/blocking_periodic.rs
examples/graceful_metrics.rs bench/peers/embedding/src/bin/graceful_metrics.rs
LIST
