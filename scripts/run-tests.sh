#!/usr/bin/env bash
# Runs every host test (cargo test) and ends with one summary line over all test binaries.
set -uo pipefail
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --release --no-fail-fast "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
sum() { grep -E '^test result:' "$log" | grep -oE "[0-9]+ $1" | awk '{s += $1} END {print s + 0}'; }
echo "tests: $(sum passed) passed, $(sum failed) failed"
exit "$status"
