#!/usr/bin/env bash
# Installs what the build and `make test` need when it is missing: QEMU (TCG guest tests,
# benchmarks), musl-gcc and liburing (C programs for the guest), busybox-static (the shell image), e2fsprogs (ext2 tests), gdb (the debugger tests). As root it runs apt-get; otherwise
# it prints the command and fails.
set -euo pipefail

packages=()
command -v qemu-system-x86_64 >/dev/null || packages+=(qemu-system-x86)
command -v musl-gcc >/dev/null || packages+=(musl-tools)
[ -f /usr/lib/x86_64-linux-gnu/liburing.a ] || packages+=(liburing-dev)
# The static build (the dynamic `busybox` package also installs /bin/busybox).
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' || packages+=(busybox-static)
# mke2fs, e2fsck and debugfs (the ext2 tests make images and check them).
[ -x /usr/sbin/mke2fs ] && [ -x /usr/sbin/e2fsck ] && [ -x /usr/sbin/debugfs ] || packages+=(e2fsprogs)
# libFuzzer (the VMM's fuzz targets, run briefly by `make test`) is C++.
command -v g++ >/dev/null || packages+=(g++)
# gdb and nm (the test of `vmm run --gdb` and QEMU's stub, and `make gdb`).
command -v gdb >/dev/null || packages+=(gdb)
command -v nm >/dev/null || packages+=(binutils)

[ ${#packages[@]} -eq 0 ] && exit 0

cmd="apt-get install -y --no-install-recommends ${packages[*]}"
if [ "$(id -u)" -ne 0 ]; then
    echo "missing: ${packages[*]}. Install with: sudo apt-get update && sudo $cmd" >&2
    exit 1
fi
echo "installing: ${packages[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
$cmd
