#!/usr/bin/env bash
# `make fuzz-vmm`: coverage-guided fuzzing (libFuzzer, through libfuzzer-sys) of what a
# guest controls in the VMM: fuzz/fuzz_targets/{mmio,virtq,p9,net}.rs.
#   FUZZ_VMM_SECONDS  time per target (default 60)
#   FUZZ_VMM_TARGETS  which targets (default "mmio virtq p9 net")
# Stable Rust only: the instrumentation is libFuzzer's SanitizerCoverage, asked for with
# stable -C flags (what `cargo fuzz build -s none` passes), without a sanitizer (those
# need nightly -Z flags). Each target first replays its seed corpus (fuzz/corpus/<t>),
# then fuzzes into fuzz/work-corpus/<t> (not committed). A crash fails the run and names
# its input; replay it with `fuzz/target/x86_64-unknown-linux-gnu/release/<t> <file>`.
set -uo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${FUZZ_VMM_SECONDS:-60}
targets=${FUZZ_VMM_TARGETS:-mmio virtq p9 net}
host=x86_64-unknown-linux-gnu
# --target keeps the flags off build scripts and proc macros (they must not be instrumented).
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks"
nice cargo build --release --target $host --bins || exit 1
status=0
for t in $targets; do
    bin=target/$host/release/$t
    mkdir -p "work-corpus/$t" artifacts
    if ! out=$(nice "$bin" -runs=0 "corpus/$t" 2>&1); then
        echo "$out" | tail -n 30
        echo "fuzz-vmm: $t: a seed of corpus/$t FAILS"
        status=1
        continue
    fi
    log=$(mktemp)
    nice "$bin" -max_total_time="$secs" -max_len=16384 -timeout=10 -rss_limit_mb=1024 -print_final_stats=1 \
        -artifact_prefix="artifacts/$t-" "work-corpus/$t" "corpus/$t" >"$log" 2>&1
    rc=$?
    execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*$')
    cov=$(grep -E '^#[0-9]+' "$log" | tail -n 1 | grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+')
    if [ $rc -ne 0 ]; then
        grep -vE '^#[0-9]+' "$log" | tail -n 40
        echo "fuzz-vmm: $t FAILED after ${execs:-?} executions: $(grep -o 'Test unit written to .*' "$log")"
        status=1
    else
        echo "fuzz-vmm: $t: ${execs:-?} executions in ${secs}s, $cov"
    fi
    rm -f "$log"
done
exit $status
