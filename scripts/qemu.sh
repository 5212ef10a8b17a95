#!/usr/bin/env bash
# Boots a guest ELF under QEMU microvm with TCG, the way the tests do:
#   scripts/qemu.sh KERNEL.elf [CMDLINE] [extra QEMU args...]
# QEMU_SMP sets the number of CPUs (default 1).
# QEMU exits with (status << 1) | 1 when the guest writes status to port 0xf4; this script
# turns that back into the guest's status, as `vmm run` reports it. QEMU_SERIAL picks the
# console's backend (default stdio; mon:stdio gives Ctrl-A x and raw mode on a terminal).
# QEMU_TRACE=FILE.json writes the guest kernel's trace as a timeline (as `vmm run --trace`,
# with the guest's events only): the guest RAM is kept in a file, the kernel is booted
# with trace=2M (its trace rings taken from RAM), and `vmm trace-import` reads them after.
# QEMU_NET=TAPNAME adds a virtio-net device on that host tap, as `vmm run --net tap=TAPNAME`
# (MAC 52:54:00:12:34:56, the 12-byte header carried by the tap: vnet_hdr=on).
set -uo pipefail
kernel=$1
cmdline=${2:-}
shift $(( $# < 2 ? $# : 2 ))
trace_args=()
if [ -n "${QEMU_TRACE:-}" ]; then
    memfile=$(mktemp /tmp/qemu-ram.XXXXXX)
    trap 'rm -f "$memfile"' EXIT
    trace_args=(-object "memory-backend-file,id=ram0,size=256M,mem-path=$memfile,share=on" -machine memory-backend=ram0)
    cmdline="trace=2M $cmdline"
fi
net_args=()
if [ -n "${QEMU_NET:-}" ]; then
    net_args=(-netdev "tap,id=net0,ifname=$QEMU_NET,script=no,downscript=no,vnet_hdr=on"
              -device virtio-net-device,netdev=net0,mac=52:54:00:12:34:56)
fi
qemu-system-x86_64 -M microvm,acpi=off -accel "${QEMU_ACCEL:-tcg}" -m 256M -smp "${QEMU_SMP:-1}" \
    -nodefaults -no-user-config -nographic -no-reboot -serial "${QEMU_SERIAL:-stdio}" \
    -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
    -global virtio-mmio.force-legacy=false \
    "${trace_args[@]}" "${net_args[@]}" -kernel "$kernel" -append "$cmdline" "$@"
rc=$?
if [ -n "${QEMU_TRACE:-}" ]; then
    "$(dirname "$0")/../target/release/vmm" trace-import "$memfile" "$QEMU_TRACE" || rc=$(( rc & 1 ? rc : 1 ))
fi
if [ $((rc & 1)) -eq 1 ]; then exit $((rc >> 1)); fi
# Quit from the monitor (Ctrl-A x with mon:stdio): QEMU's own 0.
if [ $rc -eq 0 ] && [ "${QEMU_SERIAL:-}" = mon:stdio ]; then exit 0; fi
echo "qemu exited with $rc without the guest writing an exit status" >&2
exit $(( rc == 0 ? 1 : rc ))
