//! ext2 on a virtio disk: an image the host made with `mke2fs -d` is read in the guest,
//! changed there (new files and directories, renames, links, unlinks, a sparse file with
//! 4 KiB at 5 GiB, a large file written with O_DIRECT, truncation), and afterwards
//! `e2fsck -fn` finds it clean and `debugfs` reads back what the guest wrote. The
//! syscall and io_uring suites' file families run on an ext2 root. Damaged images give errors, never a
//! kernel panic. Under `vmm run` (KVM) and QEMU (TCG).
//!
//! Needs e2fsprogs on the host (`scripts/install-deps.sh` installs it).

use std::path::{Path, PathBuf};
use std::process::Command;

use tests::{boot_with_devices, on_both_platforms, scratch_dir, Device, Platform};

const MKE2FS: &str = "/usr/sbin/mke2fs";
const E2FSCK: &str = "/usr/sbin/e2fsck";
const DEBUGFS: &str = "/usr/sbin/debugfs";

fn need_e2fsprogs() {
    for tool in [MKE2FS, E2FSCK, DEBUGFS] {
        assert!(Path::new(tool).exists(), "{tool} is missing: run scripts/install-deps.sh (as root) to install e2fsprogs");
    }
}

/// FNV-1a, 64 bits (as ext2test computes it).
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// Bytes that do not compress into a pattern (a fixed-seed xorshift).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The tree the guest expects (see guest-user/src/bin/ext2test.rs).
fn host_tree(dir: &Path) -> PathBuf {
    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("dir/nested")).unwrap();
    std::fs::create_dir_all(tree.join("emptydir")).unwrap();
    std::fs::write(tree.join("hello.txt"), "hello from the host\n").unwrap();
    std::fs::write(tree.join("dir/nested/deep.txt"), "deep\n").unwrap();
    std::fs::write(tree.join("doomed.txt"), "to be removed\n").unwrap();
    std::fs::write(tree.join("host.bin"), noise(300_000, 7)).unwrap();
    std::os::unix::fs::symlink("hello.txt", tree.join("link")).unwrap();
    std::fs::hard_link(tree.join("hello.txt"), tree.join("dir/hard")).unwrap();
    std::fs::create_dir_all(tree.join("many")).unwrap();
    for i in 1..=300 {
        std::fs::write(tree.join(format!("many/name-{i}")), format!("{i}\n")).unwrap();
    }
    tree
}

/// Gives the image's large directories an htree index (`e2fsck -D`), as Linux's ext4
/// would have made them.
fn index_dirs(img: &Path) {
    let out = Command::new(E2FSCK).arg("-fyD").arg(img).output().expect("run e2fsck -D");
    assert!(matches!(out.status.code(), Some(0 | 1)), "e2fsck -fyD: {}", String::from_utf8_lossy(&out.stdout));
}

fn mke2fs(img: &Path, tree: &Path, block: u32, inode: u32, size: &str) {
    mkfs_as(img, tree, "ext2", block, inode, size);
}

/// An empty ext2 image of `size` (4 KiB blocks) at `dir/name`.
fn empty_image(dir: &Path, name: &str, size: &str) -> std::path::PathBuf {
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let img = dir.join(name);
    mke2fs(&img, &empty, 4096, 256, size);
    img
}

fn mkfs_as(img: &Path, tree: &Path, kind: &str, block: u32, inode: u32, size: &str) {
    let out = Command::new(MKE2FS)
        .args(["-q", "-F", "-t", kind, "-b", &block.to_string(), "-I", &inode.to_string(), "-d"])
        .arg(tree)
        .arg(img)
        .arg(size)
        .output()
        .expect("run mke2fs");
    assert!(out.status.success(), "mke2fs: {}", String::from_utf8_lossy(&out.stderr));
}

#[track_caller]
fn fsck_clean(img: &Path) {
    let out = Command::new(E2FSCK).arg("-fn").arg(img).output().expect("run e2fsck");
    assert!(
        out.status.success(),
        "e2fsck -fn found problems (exit {:?}):\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn debugfs(img: &Path, request: &str) -> Vec<u8> {
    let out = Command::new(DEBUGFS).arg("-R").arg(request).arg(img).output().expect("run debugfs");
    assert!(out.status.success(), "debugfs {request}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

fn debugfs_text(img: &Path, request: &str) -> String {
    String::from_utf8_lossy(&debugfs(img, request)).into_owned()
}

/// The number after `prefix` in the guest's transcript line that starts with it.
fn reported<'a>(stdout: &'a str, prefix: &str) -> Vec<&'a str> {
    let line = stdout.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no {prefix:?} line in:\n{stdout}"));
    line[prefix.len()..].split_whitespace().collect()
}

/// One block number that `debugfs bmap` reports.
fn bmap(img: &Path, file: &str, block: u64) -> u64 {
    debugfs_text(img, &format!("bmap {file} {block}")).trim().parse().expect("a block number")
}

fn round_trip(p: Platform, block: u32, inode: u32, size: &str, big_kib: u64) {
    need_e2fsprogs();
    let dir = scratch_dir(&format!("ext2-{p:?}-{block}"));
    let tree = host_tree(&dir);
    let img = dir.join("ext2.img");
    mke2fs(&img, &tree, block, inode, size);
    index_dirs(&img);
    assert!(debugfs_text(&img, "stat /many").contains("Flags: 0x1000"), "many/ has an htree index");
    let start = std::time::Instant::now();
    let out = boot_with_devices(p, &format!("init=/bin/ext2test -- /dev/vda /mnt/e2 {big_kib}"), &[Device::Disk { path: &img, read_only: false }]);
    let took = start.elapsed();
    out.assert_stdout("ext2test: host tree ok")
        .assert_stdout("ext2test: namespace ok")
        .assert_stdout("ext2test: sparse ok")
        .assert_stdout("ext2test: private mapping ok")
        .assert_stdout("ext2test: unmounted")
        .assert_stdout("ext2test: ok")
        .assert_init_status(p, 0);
    eprintln!("{p:?}, {block}-byte blocks, {big_kib} KiB file: guest run {took:?}");
    for l in out.stdout.lines().filter(|l| l.contains(" in ") && l.contains(" ms")) {
        eprintln!("  {l}");
    }

    // The guest read the host's file right.
    let host_sum = format!("{:016x}", fnv(&std::fs::read(tree.join("host.bin")).unwrap()));
    assert_eq!(reported(&out.stdout, "ext2test: host.bin ")[3], host_sum, "host.bin as the guest read it");

    fsck_clean(&img);

    // What the guest wrote, as debugfs reads it.
    let big = debugfs(&img, "cat /big.bin");
    let want = reported(&out.stdout, "ext2test: sum big.bin ");
    assert_eq!(big.len().to_string(), want[0], "big.bin size");
    assert_eq!(format!("{:016x}", fnv(&big)), want[1], "big.bin contents");
    assert_eq!(debugfs(&img, "cat /newdir/moved.txt"), b"written in the guest\n");
    assert_eq!(debugfs(&img, "cat /newdir/hard2"), b"written in the guest\n");
    assert_eq!(debugfs(&img, "cat /newdir/sub/f.txt"), b"in a subdirectory\n");
    assert_eq!(debugfs(&img, "cat /newdir/nested/deep.txt"), b"deep\n");
    let trunc = debugfs(&img, "cat /trunc.bin");
    assert!(trunc.len() == 9000 && trunc[..5000].iter().all(|&b| b == 0x5a) && trunc[5000..].iter().all(|&b| b == 0), "trunc.bin");
    let root = debugfs_text(&img, "ls /");
    assert!(!root.contains("doomed.txt") && !root.contains("emptydir") && !root.contains("open-unlinked"), "removed names are gone:\n{root}");
    assert!(root.contains("slow") && root.contains("sparse.bin"), "new names are there:\n{root}");
    assert!(debugfs_text(&img, "stat /newdir/fast").contains("Fast link dest: \"moved.txt\""));
    assert!(debugfs_text(&img, "stat /many").contains("Flags: 0x0"), "a changed directory loses its htree flag");
    assert_eq!(debugfs(&img, "cat /many/added-by-the-guest"), b"added\n");
    assert_eq!(debugfs(&img, "cat /many/name-300"), b"300\n");
    assert_eq!(debugfs(&img, "cat /b.txt"), b"new contents");
    assert_eq!(debugfs(&img, "cat /newdir/d2/inside"), b"in d1\n");
    let attrs = debugfs_text(&img, "stat /newdir/sub/f.txt");
    assert!(attrs.contains("Mode:  0640") && attrs.contains("User:  1234") && attrs.contains("Group:  5678"), "chmod and chown:\n{attrs}");
    assert!(debugfs_text(&img, "stat /newdir/sub/f.txt").contains("mtime: 0x499602d2"), "utimensat:\n{attrs}");
    let cut = debugfs_text(&img, "stat /cut.bin");
    assert!(cut.contains("Size: 8192") && !cut.contains("(TIND)"), "a cut sparse file:\n{cut}");
    assert!(debugfs_text(&img, "stat /newdir/moved.txt").contains("Links: 2"));

    // The sparse file: 5 GiB + 4 KiB long, one data block at 5 GiB, holes elsewhere.
    let stat = debugfs_text(&img, "stat /sparse.bin");
    assert!(stat.contains("Size: 5368713216"), "sparse.bin size:\n{stat}");
    assert!(stat.contains("(TIND)"), "5 GiB needs the triple indirect block:\n{stat}");
    let fb = (5u64 << 30) / u64::from(block);
    assert_eq!(bmap(&img, "/sparse.bin", 0), 0, "sparse.bin starts with a hole");
    let bytes = std::fs::read(&img).unwrap();
    let bs = block as usize;
    let mut tail = Vec::new();
    for k in 0..(4096 / bs) as u64 {
        let at = bmap(&img, "/sparse.bin", fb + k) as usize * bs;
        assert!(at != 0, "block {k} at 5 GiB is mapped");
        tail.extend_from_slice(&bytes[at..at + bs]);
    }
    assert_eq!(format!("{:016x}", fnv(&tail)), reported(&out.stdout, "ext2test: sum sparse-tail ")[1], "data at 5 GiB");
    let _ = std::fs::remove_dir_all(&dir);
}

// vmm: 1 KiB blocks, 128-byte inodes, a small file (ring 0 is emulated and slow here);
// QEMU: 4 KiB blocks, 256-byte inodes, 64 MiB.
on_both_platforms!(round_trip_checked_on_the_host, |p| {
    match p {
        Platform::Vmm => round_trip(p, 1024, 128, "64M", 4096),
        Platform::QemuTcg => round_trip(p, 4096, 256, "160M", 65536),
    }
});

#[test]
fn qemu_tcg_2k_blocks() {
    round_trip(Platform::QemuTcg, 2048, 256, "64M", 8192);
}

/// Writes `len` noise bytes at `offset` of the image.
fn scribble(img: &Path, offset: u64, len: usize, seed: u64) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new().write(true).open(img).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(&noise(len, seed)).unwrap();
}

on_both_platforms!(corrupt_images_give_errors_not_panics, |p| {
    need_e2fsprogs();
    let dir = scratch_dir(&format!("ext2-corrupt-{p:?}"));
    let tree = host_tree(&dir);
    let block = 4096u64;
    let mut disks = Vec::new();
    for (i, what) in ["superblock", "geometry", "descriptors", "inodes", "root directory", "indirect block"].iter().enumerate() {
        let img = dir.join(format!("bad{i}.img"));
        mke2fs(&img, &tree, block as u32, 256, "16M");
        let seed = 0x5eed + i as u64;
        match *what {
            "superblock" => scribble(&img, 1024, 1024, seed),
            // Everything but the magic: block counts, sizes, group geometry.
            "geometry" => scribble(&img, 1024, 56, seed),
            "descriptors" => scribble(&img, block, 64, seed),
            // The inode table's first block: the root inode and the reserved ones.
            "inodes" => {
                let stats = debugfs_text(&img, "stats");
                let table: u64 = stats.split("inode table at ").nth(1).and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next()).and_then(|s| s.parse().ok()).expect("group 0's inode table");
                scribble(&img, table * block + 256, 4096 - 256, seed)
            }
            "root directory" => scribble(&img, bmap(&img, "/", 0) * block + 24, 200, seed),
            "indirect block" => {
                let stat = debugfs_text(&img, "stat /host.bin");
                let ind: u64 = stat.split("(IND):").nth(1).and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next()).and_then(|s| s.parse().ok()).expect("host.bin has an indirect block");
                scribble(&img, ind * block, 4096, seed);
            }
            _ => unreachable!(),
        }
        disks.push(img);
    }
    let devices: Vec<Device> = disks.iter().map(|path| Device::Disk { path, read_only: false }).collect();
    let names: Vec<String> = (0..disks.len()).map(|i| format!("/dev/vd{}", (b'a' + i as u8) as char)).collect();
    let out = boot_with_devices(p, &format!("init=/bin/ext2test -- {} /mnt/e2 corrupt", names.join(",")), &devices);
    assert!(!out.stdout.contains("kernel panic"), "a corrupt image panicked the kernel:\n{}", out.stdout);
    out.assert_stdout("ext2test: survived").assert_init_status(p, 0);
    // Each damaged image was refused or gave errors.
    let tail = |dev: &str| out.stdout.split(&format!("ext2test: disk {dev}\n")).nth(1).unwrap_or("").split("ext2test: disk ").next().unwrap_or("").to_string();
    for (dev, what) in names.iter().zip(["superblock", "geometry", "descriptors"]) {
        assert!(tail(dev).contains("ext2test: mount: EINVAL"), "{what}: the mount must fail:\n{}", out.stdout);
    }
    for (dev, what) in names.iter().zip(["", "", "", "inodes", "root directory", "indirect block"]).skip(3) {
        let t = tail(dev);
        assert!(t.contains("EUCLEAN") || t.contains("mount: "), "{what}: no error reported:\n{}", out.stdout);
    }
    let _ = std::fs::remove_dir_all(&dir);
});

on_both_platforms!(root_parameter_mounts_the_disk_at_mnt_root, |p| {
    need_e2fsprogs();
    let dir = scratch_dir(&format!("ext2-root-{p:?}"));
    let tree = host_tree(&dir);
    let img = dir.join("root.img");
    mke2fs(&img, &tree, 4096, 256, "16M");
    let out = boot_with_devices(p, "root=/dev/vda ro init=/bin/ext2test -- /dev/vda /mnt/root root", &[Device::Disk { path: &img, read_only: false }]);
    out.assert_stdout("root=/dev/vda: mounted at /mnt/root").assert_stdout("ext2test: root ok").assert_init_status(p, 0);
    fsck_clean(&img);
    let _ = std::fs::remove_dir_all(&dir);
});

/// Boots with a fresh, empty ext2 as the root disk (`root=/dev/vda`, at /mnt/root) and
/// runs `init` with `args` there; the image must be clean afterwards (init's exit
/// writes the file system back, as a shutdown does).
fn families_on_ext2(p: Platform, name: &str, init_and_args: &str) -> tests::Outcome {
    need_e2fsprogs();
    let dir = scratch_dir(&format!("ext2-{name}-{p:?}"));
    let img = empty_image(&dir, "root.img", "64M");
    let out = boot_with_devices(p, &format!("root=/dev/vda init={init_and_args}"), &[Device::Disk { path: &img, read_only: false }]);
    out.assert_stdout(" passed, 0 failed").assert_init_status(p, 0);
    assert!(!out.stdout.contains("FAILED"), "{out}");
    fsck_clean(&img);
    let _ = std::fs::remove_dir_all(&dir);
    out
}

// The syscall suite's file families on ext2 (files through the page cache, mmap shared
// and private, O_DIRECT coherence, RWF_NOWAIT, times), as the host passes them on its
// own disk file system.
on_both_platforms!(file_syscalls_on_ext2, |p| {
    families_on_ext2(p, "sys", "/bin/systest -- --dir /mnt/root --exec /bin/hello fs pipe filemap rw utime");
});

// The io_uring suite's file families on ext2: buffered reads that hit complete in the
// submit, misses complete after it returned (parked on the page cache), as on the host.
on_both_platforms!(io_uring_suite_on_ext2, |p| {
    let out = families_on_ext2(p, "uring", "/bin/uring-test -- --dir /mnt/root buffered rw fsync link advise fs");
    out.assert_stdout("test buffered::misses_complete_after_the_submit_returns ... ok\n")
        .assert_stdout("test buffered::miss_with_nowait_is_eagain_then_read_fills_cache ... ok\n");
});

// A file larger than the guest's memory (256 MiB), read twice through the page cache and
// once through a shared mapping of all of it: pages are given back as they go (mapped
// ones unmapped first), and every pass gets the file's bytes. QEMU only: under
// vmm, ring 0 is emulated and copying 600 MiB takes minutes.
#[test]
fn qemu_tcg_file_larger_than_memory_streams_through_the_cache() {
    need_e2fsprogs();
    let p = Platform::QemuTcg;
    let dir = scratch_dir("ext2-stream");
    let tree = dir.join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    let chunk = noise(1 << 20, 11);
    let mut data = Vec::with_capacity(300 << 20);
    for i in 0..300u32 {
        data.extend_from_slice(&chunk);
        data.push(i as u8); // each MiB a little different, so a misplaced page shows
    }
    std::fs::write(tree.join("big.bin"), &data).unwrap();
    let img = dir.join("big.img");
    mke2fs(&img, &tree, 4096, 256, "340M");
    let out = boot_with_devices(p, "init=/bin/ext2test -- /dev/vda /mnt/e2 stream:big.bin", &[Device::Disk { path: &img, read_only: false }]);
    out.assert_stdout("ext2test: stream ok").assert_init_status(p, 0);
    let want = format!("{} {:016x}", data.len(), fnv(&data));
    let got: Vec<String> = out.stdout.lines().filter_map(|l| l.strip_prefix("ext2test: stream ")).filter(|l| *l != "ok").map(str::to_owned).collect();
    assert_eq!(got, [want.clone(), want.clone(), want], "two reads and a mapping of big.bin:\n{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// fsync returned in the guest, then the VMM is killed (SIGKILL) with the test engine's
/// volatile cache (only flushed writes reach the image): the file's dirty pages and the
/// metadata went to the disk and were flushed, so the image is clean and holds the file;
/// the file written after, without a sync, is not there.
#[test]
fn fsynced_file_survives_kill_9_of_the_vmm() {
    need_e2fsprogs();
    if !tests::kvm_available() {
        return;
    }
    let dir = scratch_dir("ext2-durable");
    let img = empty_image(&dir, "durable.img", "16M");
    let disk = format!("{},engine=volatile", img.display());
    let seen = tests::vmm_until_then_kill_9(
        &["--disk", &disk, "--cmdline", "init=/bin/ext2test -- /dev/vda /mnt/e2 durable"],
        &["ext2test: synced", "ext2test: unsynced written"],
    );
    assert_eq!(seen, 2, "the guest did not report its writes within 60 s");
    fsck_clean(&img);
    let want: Vec<u8> = (0..256 * 1024u64).map(|i| ((i % 65536).wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    assert!(debugfs(&img, "cat /synced.bin") == want, "synced.bin is not what the guest fsynced");
    assert!(!debugfs_text(&img, "ls /").contains("unsynced.bin"), "a file never synced reached the image");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Dirty pages reach the disk with no fsync: the flusher writes them back once they have
/// waited dirty_expire_centisecs (the guest sets 1 s). The VMM is then killed; the default
/// engine's writes are in the host's page cache by then, so the image holds the file.
#[test]
fn flusher_writes_back_expired_dirty_pages() {
    need_e2fsprogs();
    if !tests::kvm_available() {
        return;
    }
    let dir = scratch_dir("ext2-expire");
    let img = empty_image(&dir, "expire.img", "16M");
    let seen = tests::vmm_until_then_kill_9(
        &["--disk", img.to_str().unwrap(), "--cmdline", "init=/bin/ext2test -- /dev/vda /mnt/e2 expire"],
        &["ext2test: written back"],
    );
    assert_eq!(seen, 1, "the guest did not see its dirty pages written back within 60 s");
    let want: Vec<u8> = (0..256 * 1024u64).map(|i| ((i % 65536).wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    assert!(debugfs(&img, "cat /expire.bin") == want, "expire.bin on the image is not what the guest wrote");
    let _ = std::fs::remove_dir_all(&dir);
}

// 60 MiB of ext2 files left dirty, then more anonymous memory touched than is free: the
// faults that find no frame wait for the flusher to write the files back, and the
// shrinker gives their pages. QEMU only: under vmm, ring 0 is emulated and the 50 000
// faults take minutes.
#[test]
fn qemu_tcg_memory_pressure_writes_dirty_pages_back() {
    need_e2fsprogs();
    let p = Platform::QemuTcg;
    let dir = scratch_dir("ext2-pressure");
    let img = empty_image(&dir, "pressure.img", "128M");
    let out = boot_with_devices(p, "init=/bin/ext2test -- /dev/vda /mnt/e2 pressure", &[Device::Disk { path: &img, read_only: false }]);
    out.assert_stdout("ext2test: pressure ok").assert_init_status(p, 0);
    fsck_clean(&img);
    let _ = std::fs::remove_dir_all(&dir);
}

// 300 MiB written through a shared mapping in a 256 MiB guest: the flusher writes the
// mapped pages back (taking them out of the mapping) and the shrinker gives them up, so
// the stores go on; after a remount every page holds its word. QEMU only, as above.
#[test]
fn qemu_tcg_writing_through_a_mapping_larger_than_memory() {
    need_e2fsprogs();
    let p = Platform::QemuTcg;
    let dir = scratch_dir("ext2-mapwrite");
    let img = empty_image(&dir, "mapwrite.img", "340M");
    let out = boot_with_devices(p, "init=/bin/ext2test -- /dev/vda /mnt/e2 mapwrite", &[Device::Disk { path: &img, read_only: false }]);
    out.assert_stdout("ext2test: mapwrite ok").assert_init_status(p, 0);
    fsck_clean(&img);
    let _ = std::fs::remove_dir_all(&dir);
}

// The fuzzer with its files on an ext2 root (page cache, write-back, O_DIRECT, mmap of
// ext2 files under random calls and io_uring requests): no panic, no hang, the kernel
// works after, and the image is e2fsck-clean (init's exit writes it back).
on_both_platforms!(fuzzer_on_an_ext2_root, |p| {
    need_e2fsprogs();
    let dir = scratch_dir(&format!("ext2-fuzz-{p:?}"));
    let img = empty_image(&dir, "fuzz.img", "64M");
    // Ring 0 is slow under vmm: a tenth of the operations there.
    let ops = if p == Platform::Vmm { 2000 } else { 20000 };
    let cmdline = format!("loglevel=error root=/dev/vda init=/bin/fuzz -- --seed 12 --ops {ops} --per-child 50 --ms 1000 --dir /mnt/root");
    let out = boot_with_devices(p, &cmdline, &[Device::Disk { path: &img, read_only: false }]);
    out.assert_stdout("fuzz: kernel ok").assert_status(0);
    assert!(!out.stdout.contains("kernel panic"), "{out}");
    fsck_clean(&img);
    let _ = std::fs::remove_dir_all(&dir);
});

on_both_platforms!(full_disk_gives_enospc_and_stays_consistent, |p| {
    need_e2fsprogs();
    let dir = scratch_dir(&format!("ext2-full-{p:?}"));
    let tree = host_tree(&dir);
    let img = dir.join("full.img");
    mke2fs(&img, &tree, 4096, 256, "4M");
    let out = boot_with_devices(p, "init=/bin/ext2test -- /dev/vda /mnt/e2 fill", &[Device::Disk { path: &img, read_only: false }]);
    out.assert_stdout("then ENOSPC").assert_stdout("ext2test: fill ok").assert_init_status(p, 0);
    fsck_clean(&img);
    assert_eq!(debugfs(&img, "cat /after"), b"room again\n");
    let _ = std::fs::remove_dir_all(&dir);
});

// Random bytes over the metadata at the start of 1 KiB-block images (superblock magic
// kept, so most still mount): whatever the damage, errors and no panic.
on_both_platforms!(random_metadata_damage_never_panics, |p| {
    need_e2fsprogs();
    let dir = scratch_dir(&format!("ext2-random-{p:?}"));
    let tree = host_tree(&dir);
    let mut disks = Vec::new();
    for i in 0..8u64 {
        let img = dir.join(format!("rnd{i}.img"));
        mke2fs(&img, &tree, 1024, 128, "8M");
        let mut bytes = std::fs::read(&img).unwrap();
        let r = noise(160, 0xd00d + i);
        for k in 0..32 {
            let at = 1024 + (u32::from_le_bytes([r[k * 4], r[k * 4 + 1], r[k * 4 + 2], 0]) as usize % (300 * 1024));
            let len = 16 + r[128 + k] as usize;
            let junk = noise(len, 0xbad + i * 8 + k as u64);
            let end = (at + len).min(bytes.len());
            bytes[at..end].copy_from_slice(&junk[..end - at]);
        }
        bytes[1024 + 56..1024 + 58].copy_from_slice(&0xEF53u16.to_le_bytes());
        std::fs::write(&img, bytes).unwrap();
        disks.push(img);
    }
    let devices: Vec<Device> = disks.iter().map(|path| Device::Disk { path, read_only: false }).collect();
    let names: Vec<String> = (0..disks.len()).map(|i| format!("/dev/vd{}", (b'a' + i as u8) as char)).collect();
    let out = boot_with_devices(p, &format!("init=/bin/ext2test -- {} /mnt/e2 corrupt", names.join(",")), &devices);
    assert!(!out.stdout.contains("kernel panic"), "damaged metadata panicked the kernel:\n{}", out.stdout);
    let mounted = out.stdout.matches("ext2test: mounted").count();
    eprintln!("{p:?}: {mounted} of {} damaged images mounted, {} EUCLEAN errors", disks.len(), out.stdout.matches("EUCLEAN").count());
    out.assert_stdout("ext2test: survived").assert_init_status(p, 0);
    let _ = std::fs::remove_dir_all(&dir);
});

// The seam a page cache will use (read_page, write_page, block_map), by a kernel test.
on_both_platforms!(page_seam_by_a_kernel_test, |p| {
    need_e2fsprogs();
    let dir = scratch_dir(&format!("ext2-pages-{p:?}"));
    let tree = host_tree(&dir);
    let img = dir.join("pages.img");
    mke2fs(&img, &tree, 1024, 256, "16M");
    let out = boot_with_devices(p, "test=ext2-pages init=/bin/hello -- 0", &[Device::Disk { path: &img, read_only: false }]);
    out.assert_stdout("ktest ext2-pages: ok").assert_init_status(p, 0);
    fsck_clean(&img);
    let _ = std::fs::remove_dir_all(&dir);
});

// ext2 by any name for a plain ext2; an ext3 image as ext2 only (its journal unused); an
// ext4 image not at all (extents and more: EINVAL as ext2, ENODEV by its own name).
#[test]
fn qemu_tcg_ext3_and_ext4_images() {
    need_e2fsprogs();
    let p = Platform::QemuTcg;
    let dir = scratch_dir("ext2-types");
    let tree = host_tree(&dir);
    let imgs: Vec<PathBuf> = ["ext2", "ext3", "ext4"].iter().map(|k| {
        let img = dir.join(format!("{k}.img"));
        mkfs_as(&img, &tree, k, 4096, 256, "16M");
        img
    }).collect();
    let devices: Vec<Device> = imgs.iter().map(|path| Device::Disk { path, read_only: false }).collect();
    let out = boot_with_devices(p, "init=/bin/ext2test -- /dev/vda,/dev/vdb,/dev/vdc /mnt/e2 types", &devices);
    for line in [
        "/dev/vda as ext2: ok", "/dev/vda as ext3: ok", "/dev/vda as ext4: ok",
        "/dev/vdb as ext2: ok", "/dev/vdb as ext3: ENODEV", "/dev/vdb as ext4: ENODEV",
        "/dev/vdc as ext2: EINVAL", "/dev/vdc as ext3: ENODEV", "/dev/vdc as ext4: ENODEV",
    ] {
        out.assert_stdout(&format!("ext2test: {line}"));
    }
    out.assert_init_status(p, 0);
    for img in &imgs {
        fsck_clean(img);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
