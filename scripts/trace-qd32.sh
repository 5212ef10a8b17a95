#!/usr/bin/env bash
# `make trace`: a traced QD32 read workload, the one docs/DESIGN.md walks through.
# blktest reads 256 blocks of a scratch disk with O_DIRECT through io_uring, 32 in flight,
# under `vmm run --vcpus 2 --trace`; the timeline goes to $TRACE_OUT (default
# target/trace-qd32.json): open it in https://ui.perfetto.dev (or chrome://tracing).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${TRACE_OUT:-target/trace-qd32.json}
disk=target/trace-disk.img
head -c $((8 << 20)) /dev/urandom > "$disk"
target/release/vmm run images/guest.elf --vcpus 2 --disk "$disk" --initrd images/rootfs.cpio \
    --timeout 300 --trace "$out" --cmdline "init=/bin/blktest -- /dev/vda qd 32 256"
rm -f "$disk"
echo "open $out in https://ui.perfetto.dev"
