#!/usr/bin/env bash
# Runs every host test (cargo test) and ends with one summary line over all test binaries.
# A test that skips itself (tests::skip: NO_KVM=1, no unprivileged user, ...) passes for
# libtest but writes its name to $TESTS_SKIPPED_FILE: the summary counts it as skipped,
# not passed, and lists it by name.
set -uo pipefail
log=$(mktemp)
skipped_file=$(mktemp)
trap 'rm -f "$log" "$skipped_file"' EXIT
export TESTS_SKIPPED_FILE=$skipped_file
cargo test --release --no-fail-fast "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
sum() { grep -E '^test result:' "$log" | grep -oE "[0-9]+ $1" | awk '{s += $1} END {print s + 0}'; }
skipped=$(sort -u "$skipped_file" | wc -l)
if [ "$skipped" -gt 0 ]; then
    echo "skipped tests:"
    sort -u "$skipped_file" | sed 's/^/  /'
fi
echo "tests: $(( $(sum passed) - skipped )) passed, $(sum failed) failed, $skipped skipped"
exit "$status"
