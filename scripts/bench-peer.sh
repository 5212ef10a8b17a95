#!/usr/bin/env bash
# `make bench-peer`: Debian's Linux 6.1 and our guest kernel under one QEMU command, with
# the same disk, share and uring-bench binary, measured in instructions per operation.
#
#   scripts/bench-peer.sh
#
# Both boot on QEMU microvm, TCG, one CPU, `-icount shift=0` (each guest instruction is
# 1 ns of guest time, so uring-bench's ns_per_op counts instructions; I/O figures also
# hold the host's latency, which guest time follows while the CPU idles). Linux needs
# `acpi=on` (Debian's kernel ignores virtio_mmio.device=), ours `acpi=off`.
#
# 1. The peer: the kernel linux-image-amd64 depends on, downloaded with apt-get (cached in
#    target/peer/); its vmlinux taken out of vmlinuz (a PVH ELF QEMU boots directly) and
#    the modules below with their dependencies.
# 2. Its initramfs: busybox-static, the modules, target/guest-c/uring-bench and an /init
#    that loads the modules (virtio_blk with poll_queues=1, and possible_cpus=2 on the
#    command line, for IOPOLL), mounts the share
#    (mount -t 9p -o $PEER_9P_OPTS share /mnt/share), runs every group below, and exits
#    through isa-debug-exit.
# 3. Ours: images/guest.elf with images/rootfs.cpio, init=/bin/uring-bench, one boot per
#    group. Its /bin/uring-bench must be the same file as target/guest-c/uring-bench.
# 4. Each round boots Linux once and ours once per group; each figure is the median of
#    PEER_ROUNDS rounds (default 3). The table goes to stdout, and to target/peer/peer.csv.
#    A failed run fails the script (exit 1), naming the figure.
#
# Environment: PEER_ROUNDS (3), PEER_CALL_OPS (2000), PEER_READ_OPS (500), PEER_9P_OPTS
# (trans=virtio,cache=loose,msize=131072: a page cache and an msize like ours),
# PEER_TIMEOUT (seconds per QEMU run, 300), PEER_DOCS=1 (the table also goes into
# docs/DESIGN.md, between its bench-peer markers).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
here=$root/scripts/bench-peer
out=$root/target/peer
rounds=${PEER_ROUNDS:-3}
call_ops=${PEER_CALL_OPS:-2000}
read_ops=${PEER_READ_OPS:-500}
p9_opts=${PEER_9P_OPTS:-trans=virtio,cache=loose,msize=131072}
run_timeout=${PEER_TIMEOUT:-300}
bench_bin=$root/target/guest-c/uring-bench
guest=$root/images/guest.elf
rootfs=$root/images/rootfs.cpio
# TSC rate both kernels are told: under -icount shift=0 the TSC counts guest nanoseconds.
tsc_khz=1000000
modules=(virtio virtio_ring virtio_mmio virtio_blk 9pnet 9pnet_virtio netfs fscache 9p)

# The runs, one uring-bench command each: GROUP PATH FLAGS OPS WARMUP FIGURES (FLAGS:
# uring-bench options, words joined by `:`).
groups=(
    "calls /dev/vda --direct $call_ops $((call_ops / 10)) getppid,nop_batch1,nop_batch32"
    "disk /dev/vda --direct $read_ops $((read_ops / 10)) pread,uring_qd1,uring_qd32,uring_qd32_fixed,uring_qd32_iopoll"
    "9p /mnt/share/bench.dat --warm:--size:1048576 $read_ops $((read_ops / 10)) pread,uring_qd32"
)

say() { echo "bench-peer: $*" >&2; }
die() { say "$*"; exit 1; }

# --- tools (the style of scripts/install-deps.sh) ---
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' || need+=(busybox-static)
command -v dpkg-deb >/dev/null || need+=(dpkg)
if [ ${#need[@]} -gt 0 ]; then
    [ "$(id -u)" -eq 0 ] || die "missing: ${need[*]}. Install with: sudo apt-get update && sudo apt-get install -y --no-install-recommends ${need[*]}"
    say "installing: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y --no-install-recommends "${need[@]}"
fi
for f in "$bench_bin" "$guest" "$rootfs"; do
    [ -f "$f" ] || die "$f is missing: run make first"
done

# --- 1. the peer kernel ---
mkdir -p "$out/deb"
# The versioned package linux-image-amd64 depends on, e.g. linux-image-6.1.0-57-amd64.
peer_package() { apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-6\.1\.[0-9.-]*-amd64\)$/\1/p' | head -n1; }
pkg=$(peer_package || true)
if [ -z "$pkg" ]; then
    say "apt-get update (linux-image-amd64 unknown to apt-cache)"
    apt-get update -qq
    pkg=$(peer_package)
fi
[ -n "$pkg" ] || die "linux-image-amd64 does not depend on a linux-image-6.1.*-amd64 package"
release=${pkg#linux-image-}
deb_version=$(apt-cache policy "$pkg" 2>/dev/null | sed -n 's/^ *Candidate: //p')
kdir=$out/linux-$release
if [ ! -f "$kdir/vmlinux" ] || [ ! -f "$kdir/modules/order" ]; then
    deb=$(ls "$out"/deb/"${pkg}"_*.deb 2>/dev/null | head -n1 || true)
    if [ -z "$deb" ]; then
        say "downloading $pkg"
        (cd "$out/deb" && { apt-get download "$pkg" || { apt-get update -qq && apt-get download "$pkg"; }; })
        deb=$(ls "$out"/deb/"${pkg}"_*.deb | head -n1)
    fi
    say "unpacking $(basename "$deb")"
    rm -rf "$kdir" "$out/unpack"
    mkdir -p "$kdir/modules"
    dpkg-deb -x "$deb" "$out/unpack"
    python3 "$here/vmlinux.py" "$out/unpack/boot/vmlinuz-$release" "$kdir/vmlinux.tmp"
    python3 "$here/modules.py" "$out/unpack/lib/modules/$release" "$kdir/modules" "${modules[@]}" > "$kdir/modules/order.tmp"
    mv "$kdir/modules/order.tmp" "$kdir/modules/order"
    mv "$kdir/vmlinux.tmp" "$kdir/vmlinux"
    rm -rf "$out/unpack"
fi

# --- the same disk image and share for both ---
if [ ! -f "$out/disk.img" ] || [ ! -f "$out/share/bench.dat" ]; then
    mkdir -p "$out/share"
    head -c $((8 << 20)) /dev/urandom > "$out/disk.img"
    cp "$out/disk.img" "$out/share/bench.dat"
fi

# --- the same binary: ours must carry target/guest-c/uring-bench ---
ours_sum=$(python3 "$here/cpio_sha256.py" "$rootfs" bin/uring-bench)
peer_sum=$(sha256sum "$bench_bin" | cut -d' ' -f1)
[ "$ours_sum" = "$peer_sum" ] || die "images/rootfs.cpio's bin/uring-bench ($ours_sum) is not target/guest-c/uring-bench ($peer_sum): run make"
say "uring-bench sha256 $peer_sum in both"

# --- 2. the peer's initramfs ---
ird=$out/initramfs
rm -rf "$ird"
mkdir -p "$ird"/{bin,dev,proc,sys,tmp,mnt/share,lib/modules}
cp /bin/busybox "$ird/bin/busybox"
for applet in sh mount insmod cat dd printf poweroff uname; do
    ln -s busybox "$ird/bin/$applet"
done
cp "$bench_bin" "$ird/bin/uring-bench"
cp "$kdir"/modules/*.ko "$ird/lib/modules/"
# Module arguments (insmod does not read them from the kernel command line).
while read -r m; do
    case $m in
        virtio_blk) echo "$m poll_queues=1" ;;
        *) echo "$m" ;;
    esac
done < "$kdir/modules/order" > "$ird/lib/modules/order"
{
    cat <<EOF
#!/bin/sh
# Written by scripts/bench-peer.sh: load the modules, mount, run uring-bench, exit.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
while read -r mod args; do
    insmod /lib/modules/\$mod.ko \$args || echo "peer-error: insmod \$mod failed"
done < /lib/modules/order
# No sleep: this Linux has no timer interrupt here (noapictimer, and no PIT on microvm's
# ACPI), so a timed sleep would never end. Spin until devtmpfs shows the disk.
n=0
while [ ! -b /dev/vda ] && [ \$n -lt 100000 ]; do n=\$((n + 1)); done
mount -t 9p -o $p9_opts share /mnt/share || echo "peer-error: mount of the 9p share failed"
echo "peer-kernel: \$(uname -r), meltdown: \$(cat /sys/devices/system/cpu/vulnerabilities/meltdown)"
EOF
    for g in "${groups[@]}"; do
        read -r name path flags ops warmup figs <<< "$g"
        echo "echo peer-run $name"
        echo "uring-bench $path ${flags//:/ } --ops $ops --warmup $warmup --only $figs"
        echo "echo peer-end $name rc=\$?"
    done
    cat <<'EOF'
# isa-debug-exit at port 0xf4 (244): QEMU exits with (0 << 1) | 1.
printf '\000' | dd of=/dev/port bs=1 seek=244 count=1 2>/dev/null
poweroff -f
EOF
} > "$ird/init"
chmod +x "$ird/init"
python3 "$root/scripts/mkcpio.py" "$out/initramfs.cpio" "$ird"

# --- the QEMU command, shared ---
qemu() {
    local acpi=$1
    shift
    timeout "$run_timeout" qemu-system-x86_64 -M "microvm,acpi=$acpi" -accel tcg -icount shift=0 \
        -m 256M -smp 1 -nodefaults -no-user-config -nographic -no-reboot -serial stdio \
        -device isa-debug-exit,iobase=0xf4,iosize=0x04 -global virtio-mmio.force-legacy=false \
        -drive "id=d0,file=$out/disk.img,format=raw,if=none,readonly=on,cache=none" \
        -device virtio-blk-device,drive=d0,num-queues=2 \
        -fsdev "local,id=fs0,path=$out/share,security_model=none" \
        -device virtio-9p-device,fsdev=fs0,mount_tag=share "$@" </dev/null
}

# A run's log lines when QEMU did not exit as expected.
show_tail() {
    local why="QEMU exit code $2"
    [ "$2" -ne 124 ] || why="not finished after $run_timeout s (PEER_TIMEOUT)"
    say "$1: $why; last lines of $3:"
    tail -n 15 "$3" | sed 's/^/    | /' >&2
}

logs=$out/logs
rm -rf "$logs"
mkdir -p "$logs"
# possible_cpus=2 (one CPU still runs): virtio_blk gives poll queues only beside one
# request queue per possible CPU (init_vq caps them at nr_cpu_ids - 1), so IOPOLL needs
# it; the call and NOP figures are the same with it as without (checked).
linux_cmdline="console=ttyS0 quiet tsc=reliable tsc_early_khz=$tsc_khz noapictimer possible_cpus=2 panic=-1"
start=$SECONDS
for r in $(seq 1 "$rounds"); do
    log=$logs/linux-r$r.log
    say "round $r/$rounds: Linux $release"
    rc=0
    qemu on -kernel "$kdir/vmlinux" -initrd "$out/initramfs.cpio" -append "$linux_cmdline" > "$log" 2>&1 || rc=$?
    [ "$rc" -eq 1 ] || show_tail "Linux round $r" "$rc" "$log"
    log=$logs/ours-r$r.log
    : > "$log"
    for g in "${groups[@]}"; do
        read -r name path flags ops warmup figs <<< "$g"
        say "round $r/$rounds: ours, $name"
        cmdline="loglevel=warn tsc_khz=$tsc_khz init=/bin/uring-bench -- $path ${flags//:/ } --ops $ops --warmup $warmup --only $figs"
        echo "peer-run $name" >> "$log"
        rc=0
        qemu off -kernel "$guest" -initrd "$rootfs" -append "$cmdline" >> "$log" 2>&1 || rc=$?
        # Our guest writes init's exit status to isa-debug-exit: QEMU exits (status << 1) | 1.
        if [ $((rc & 1)) -eq 1 ]; then
            echo "peer-end $name rc=$((rc >> 1))" >> "$log"
        else
            show_tail "ours, $name, round $r" "$rc" "$log"
        fi
    done
done
say "$rounds rounds in $((SECONDS - start)) s"

figures=
for g in "${groups[@]}"; do
    read -r name _ _ _ _ figs <<< "$g"
    for f in ${figs//,/ }; do figures+=${figures:+,}$name:$f; done
done
echo
echo "instructions per operation (QEMU microvm TCG -icount shift=0, 1 CPU; median of $rounds rounds; Linux/ours above 1: ours takes fewer)"
echo "Linux $release vs ours; uring-bench $call_ops calls/NOPs, $read_ops reads (4 KiB, random offsets) per run;"
echo "disk: O_DIRECT /dev/vda (virtio-blk, 2 queues, the last polled); 9p: the share's 8 MiB file, its first MiB cached (Linux: -o $p9_opts)."
echo "Disk figures are guest time, not pure instruction counts: while the CPU halts for the disk, guest time"
echo "follows the host's clock (and a polling CPU counts its spinning), so they vary between runs (see the ranges)."
grep -h '^peer-kernel: ' "$logs"/linux-r1.log | head -n1 | sed "s/^peer-kernel: /Linux: ${deb_version:-?}, /" || true
grep -h '^peer-error: ' "$logs"/linux-r*.log | sort | uniq -c | sed 's/^/Linux /' >&2 || true
rc=0
python3 "$here/table.py" "$out/peer.csv" "$figures" "$logs"/linux-r*.log "$logs"/ours-r*.log || rc=$?
echo "written: $out/peer.csv (serial logs in $logs)"
# PEER_DOCS=1: the table also replaces the one in docs/DESIGN.md (section 7), so that the
# figures there come from a run.
if [ "${PEER_DOCS:-0}" = 1 ] && [ "$rc" -eq 0 ]; then
    note="Measured by \`make bench-peer\` (\`PEER_DOCS=1\` writes this table; $(date -u +%Y-%m-%d), Linux $release, median of $rounds rounds; instructions per operation, but the disk rows are guest time: see the script):"
    python3 "$here/design.py" "$root/docs/DESIGN.md" "$out/peer.csv" "$note"
fi
exit $rc
