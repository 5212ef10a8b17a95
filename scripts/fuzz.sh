#!/usr/bin/env bash
# `make fuzz`: the guest kernel fuzzed from user space (guest-user/src/bin/fuzz.rs) under
# QEMU TCG and under `vmm run`, then the VMM's own fuzz targets if any are built.
#   FUZZ_SEED     the seed (default: from the clock; printed first, so a run replays)
#   FUZZ_OPS      operations under QEMU (default 1000000)
#   FUZZ_VMM_OPS  operations under vmm, where ring 0 is slow (default 100000)
#   FUZZ_MS       each child's time before it is killed (default 1000)
# A kernel panic, a hang, a VMM error or a failed final check fails the run and prints
# the command that replays it. Seeds worth keeping go in tests/fuzz/seeds, which the
# test suite replays.
set -uo pipefail
cd "$(dirname "$0")/.."
seed=${FUZZ_SEED:-$(date +%s%N | cut -c1-15)}
ops=${FUZZ_OPS:-1000000}
vmm_ops=${FUZZ_VMM_OPS:-100000}
ms=${FUZZ_MS:-1000}
echo "fuzz: seed $seed (replay: FUZZ_SEED=$seed make fuzz)"
status=0

run() { # platform ops timeout-seconds
    local platform=$1 n=$2 limit=$3 out rc
    local args="loglevel=error init=/bin/fuzz -- --seed $seed --ops $n --per-child 50 --ms $ms"
    local start=$SECONDS
    if [ "$platform" = qemu ]; then
        out=$(timeout "$limit" scripts/qemu.sh images/guest.elf "$args" -initrd images/rootfs.cpio 2>&1)
    else
        out=$(timeout "$limit" target/release/vmm run images/guest.elf --initrd images/rootfs.cpio --cmdline "$args" 2>&1)
    fi
    rc=$?
    local took=$((SECONDS - start))
    echo "$out" | grep -E "^fuzz: (seed|HANG)" | tail -n 2
    if [ $rc -ne 0 ] || ! grep -q "fuzz: kernel ok" <<<"$out" || grep -q "kernel panic" <<<"$out"; then
        echo "$out" | tail -n 20
        echo "fuzz: $platform FAILED (exit $rc after ${took}s); replay: FUZZ_SEED=$seed FUZZ_OPS=$n make fuzz"
        status=1
    else
        echo "fuzz: $platform: $n ops in ${took}s, kernel ok"
    fi
}

run qemu "$ops" $((ops / 50 + 600))
run vmm "$vmm_ops" $((vmm_ops / 10 + 600))
exit $status
