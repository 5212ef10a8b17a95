//! Disks and shares: what the guest writes and syncs is on the host, what the host put
//! there is what the guest reads, read-only means read-only, and a misbehaving driver
//! does not bring the VMM down. Under `vmm run` (KVM) and QEMU (TCG).

use std::path::Path;

use tests::{boot_with_devices, guest_elf, kvm_available, on_both_platforms, rootfs, scratch_dir, Device, Platform};

const BLOCK: usize = 4096;

/// The pattern blktest writes to block `block` (see guest-user/src/bin/blktest.rs).
fn pattern(block: usize, i: usize) -> u8 {
    (block * 31 + i * 7) as u8
}

fn disk(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("disk.img");
    let mut bytes = vec![0u8; 8 << 20];
    bytes[..10].copy_from_slice(b"HELLO-DISK");
    std::fs::write(&path, bytes).expect("write disk image");
    path
}

#[track_caller]
fn assert_block(path: &Path, block: usize) {
    let bytes = std::fs::read(path).expect("read disk image");
    let data = &bytes[block * BLOCK..(block + 1) * BLOCK];
    let bad = data.iter().enumerate().find(|&(i, &b)| b != pattern(block, i));
    assert!(bad.is_none(), "block {block} on the host differs at {bad:?}");
}

on_both_platforms!(disk_round_trip_with_syscalls_and_io_uring, |p| {
    let dir = scratch_dir(&format!("disk-{p:?}"));
    let img = disk(&dir);
    let out = boot_with_devices(p, "init=/bin/blktest", &[Device::Disk { path: &img, read_only: false }]);
    out.assert_stdout("virtio-blk: /dev/vda: 8 MiB")
        .assert_stdout("blktest: host wrote \"HELLO-DISK\"")
        .assert_stdout("blktest: 8 io_uring reads in flight ok")
        .assert_stdout("blktest: WRITE_FIXED + FSYNC ok")
        .assert_stdout("blktest: page cache and O_DIRECT agree")
        .assert_stdout("blktest: ok")
        .assert_init_status(p, 0);
    assert_block(&img, 1); // write + fsync
    assert_block(&img, 12); // io_uring WRITE_FIXED + FSYNC
    let _ = std::fs::remove_dir_all(&dir);
});

// Multiqueue: one request queue per CPU. A thread pinned to each CPU writes and reads
// back its own blocks with O_DIRECT; under `vmm run`, `--stats` shows that every CPU's
// queue carried its thread's requests (32 writes and 32 reads at least).
on_both_platforms!(every_cpu_submits_on_its_own_queue, |p| {
    let dir = scratch_dir(&format!("disk-mq-{p:?}"));
    let img = disk(&dir);
    let cmdline = "init=/bin/blktest -- /dev/vda mq";
    let (out, cpus) = match p {
        Platform::Vmm => {
            let disk = format!("{}", img.display());
            let rootfs = rootfs();
            let args = ["--vcpus", "2", "--disk", &disk, "--initrd", rootfs.to_str().unwrap(), "--timeout", "100", "--stats"];
            (tests::boot(p, cmdline, &args), 2)
        }
        Platform::QemuTcg => {
            let out = boot_with_devices(p, cmdline, &[Device::Disk { path: &img, read_only: false }]);
            (out, tests::qemu_smp().parse().unwrap())
        }
    };
    let queues = if cpus == 1 { "1 queue".to_owned() } else { format!("{cpus} queues (one per CPU)") };
    out.assert_stdout(&format!("/dev/vda: 8 MiB, {queues} of 256 + a polled queue"))
        .assert_stdout(&format!("blktest: mq ok on {cpus} CPUs"))
        .assert_init_status(p, 0);
    if p == Platform::Vmm {
        let line = out.stderr.lines().find_map(|l| l.strip_prefix("vmm: virtio-blk requests: ")).unwrap_or_else(|| panic!("no request counts\n{out}"));
        // "N (by queue: a b ...), I interrupts"
        let by_queue = line.split_once("(by queue: ").and_then(|(_, r)| r.split_once(')')).map(|(q, _)| q).expect("by queue");
        let per: Vec<u64> = by_queue.split(' ').map(|n| n.parse().expect("a count")).collect();
        assert!(per.len() >= cpus && per[..cpus].iter().all(|&n| n >= 64), "a CPU's queue carried too few requests: {line}\n{out}");
    }
    for blk in [64, 64 + 31, 64 + 32 * cpus - 1] {
        assert_block(&img, blk);
    }
    let _ = std::fs::remove_dir_all(&dir);
});

on_both_platforms!(read_only_disk_refuses_writes, |p| {
    let dir = scratch_dir(&format!("disk-ro-{p:?}"));
    let img = disk(&dir);
    let out = boot_with_devices(p, "init=/bin/blktest", &[Device::Disk { path: &img, read_only: true }]);
    out.assert_stdout("(read-only)").assert_stdout("blktest: pwrite: EROFS").assert_init_status(p, 1);
    let bytes = std::fs::read(&img).expect("read image");
    assert!(bytes[BLOCK..2 * BLOCK].iter().all(|&b| b == 0), "a read-only disk was written");
    let _ = std::fs::remove_dir_all(&dir);
});

on_both_platforms!(share_round_trip_visible_on_the_host, |p| {
    let dir = scratch_dir(&format!("share-{p:?}"));
    let share = dir.join("share");
    std::fs::create_dir(&share).unwrap();
    std::fs::write(share.join("hostfile"), "put there by the host").unwrap();
    std::fs::write(share.join("old.txt"), "to be moved").unwrap();
    std::fs::write(share.join("doomed"), "to be removed").unwrap();
    let out = boot_with_devices(p, "init=/bin/sharetest -- /mnt/share", &[Device::Share { dir: &share, tag: "share" }]);
    out.assert_stdout("mounted at /mnt/share")
        .assert_stdout("sharetest: hostfile says \"put there by the host\"")
        .assert_stdout("sharetest: entry from-guest.txt")
        .assert_stdout("sharetest: entry newdir")
        .assert_stdout("sharetest: statfs ok")
        .assert_stdout("sharetest: ok")
        .assert_init_status(p, 0);
    assert_eq!(std::fs::read_to_string(share.join("from-guest.txt")).unwrap(), "written in the guest\n");
    assert_eq!(std::fs::read_to_string(share.join("newdir/moved.txt")).unwrap(), "to be moved");
    assert!(!share.join("old.txt").exists() && !share.join("doomed").exists());
    let _ = std::fs::remove_dir_all(&dir);
});

on_both_platforms!(file_syscalls_on_a_share, |p| {
    let dir = scratch_dir(&format!("share-sys-{p:?}"));
    let out = boot_with_devices(
        p,
        "init=/bin/systest -- --dir /mnt/share --exec /bin/hello fs pipe filemap",
        &[Device::Share { dir: &dir, tag: "share" }],
    );
    out.assert_stdout(" passed, 0 failed").assert_init_status(p, 0);
    assert!(!out.stdout.contains("FAILED"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
});

// The fuzzer with its files on a 9p share (page cache, close-to-open, O_DIRECT, mmap of
// 9p files under random calls and io_uring requests): no panic, no hang, and the kernel
// works after.
on_both_platforms!(fuzzer_on_a_share, |p| {
    let dir = scratch_dir(&format!("share-fuzz-{p:?}"));
    // Ring 0 is slow under vmm: a tenth of the operations there.
    let ops = if p == Platform::Vmm { 2000 } else { 20000 };
    let cmdline = format!("loglevel=error init=/bin/fuzz -- --seed 12 --ops {ops} --per-child 50 --ms 1000 --dir /mnt/share");
    let out = boot_with_devices(p, &cmdline, &[Device::Share { dir: &dir, tag: "share" }]);
    out.assert_stdout("fuzz: kernel ok").assert_status(0);
    assert!(!out.stdout.contains("kernel panic"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
});

on_both_platforms!(io_uring_suite_on_a_share, |p| {
    let dir = scratch_dir(&format!("share-uring-{p:?}"));
    let out = boot_with_devices(p, "init=/bin/uring-test -- --dir /mnt/share rw fsync link", &[Device::Share { dir: &dir, tag: "share" }]);
    out.assert_stdout(" passed, 0 failed").assert_init_status(p, 0);
    let _ = std::fs::remove_dir_all(&dir);
});

on_both_platforms!(malformed_request_leaves_the_vmm_running, |p| {
    let dir = scratch_dir(&format!("bad-{p:?}"));
    let img = disk(&dir);
    let out = boot_with_devices(p, "test=virtio-bad init=/bin/hello -- 3", &[Device::Disk { path: &img, read_only: false }]);
    // The guest goes on and exits normally: the VMM survived the bad descriptor.
    out.assert_stdout("ktest virtio-bad: device status").assert_stdout("hello from user space").assert_init_status(p, 3);
    if p == Platform::Vmm {
        out.assert_stdout("(needs reset)");
        assert!(out.stderr.contains("WARN"), "no log line for the bad descriptor\n{out}");
    }
    let _ = std::fs::remove_dir_all(&dir);
});

/// Boots blktest's spin mode on a fresh disk (`--disk IMG{disk_opts}`): it writes block 1
/// and fsyncs it, then writes block 2 without a sync and spins; once it says so the VMM is
/// killed with SIGKILL. The whole run is bounded: no line for 60 s fails the test (and
/// kills the VMM). Returns the image.
fn kill_9_after_unsynced_write(name: &str, disk_opts: &str) -> std::path::PathBuf {
    let dir = scratch_dir(name);
    let img = disk(&dir);
    let disk_arg = format!("{}{disk_opts}", img.display());
    let seen = tests::vmm_until_then_kill_9(
        &["--disk", &disk_arg, "--cmdline", "init=/bin/blktest -- /dev/vda spin"],
        &["blktest: synced", "blktest: unsynced written"],
    );
    assert!(seen == 2, "the guest did not report its writes within 60 s (synced: {})", seen >= 1);
    img
}

/// fsync returned in the guest, then the VMM is killed with SIGKILL: the data is on disk.
/// The unsynced write reached the host too (its page cache), so the volatile test below
/// shows that mode dropping it, not a guest that never sent it.
#[test]
fn fsynced_data_survives_kill_9_of_the_vmm() {
    if !kvm_available() {
        return;
    }
    let img = kill_9_after_unsynced_write("kill9", "");
    assert_block(&img, 1);
    assert_block(&img, 2);
    let _ = std::fs::remove_dir_all(img.parent().unwrap());
}

/// With the test engine's volatile cache (writes reach the file only on FLUSH), a kill -9
/// keeps exactly what the guest fsynced: block 1 is there, block 2 is not.
#[test]
fn only_flushed_data_survives_kill_9_with_a_volatile_cache() {
    if !kvm_available() {
        return;
    }
    let img = kill_9_after_unsynced_write("volatile", ",engine=volatile");
    assert_block(&img, 1);
    let bytes = std::fs::read(&img).expect("read disk image");
    assert!(bytes[2 * BLOCK..3 * BLOCK].iter().all(|&b| b == 0), "the unflushed block 2 reached the image");
    let _ = std::fs::remove_dir_all(img.parent().unwrap());
}

/// A host read error (the test engine fails sectors 24-31, block 3) is -EIO for the
/// guest's read(2) and in its io_uring CQE, and nothing hangs.
#[test]
fn host_eio_reaches_the_guest() {
    if !kvm_available() {
        return;
    }
    let dir = scratch_dir("eio");
    let img = disk(&dir);
    let out = tests::vmm(&[
        "run",
        guest_elf().to_str().unwrap(),
        "--initrd",
        rootfs().to_str().unwrap(),
        "--disk",
        &format!("{},eio=24-31", img.display()),
        "--cmdline",
        "init=/bin/blktest -- /dev/vda eio",
        "--timeout",
        "60",
    ]);
    out.assert_stdout(&format!("blktest: pread block 3: error {}", libc::EIO))
        .assert_stdout(&format!("blktest: io_uring read block 3: res {}", -libc::EIO))
        .assert_stdout("blktest: eio done")
        .assert_init_status(Platform::Vmm, 0);
    let _ = std::fs::remove_dir_all(&dir);
}
