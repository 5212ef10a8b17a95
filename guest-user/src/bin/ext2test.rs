//! ext2 on a virtio disk, through the syscalls a program uses; the host checks the image
//! afterwards (e2fsck, debugfs).
//!
//! `ext2test DEV DIR BIG_KIB`: mounts the ext2 on DEV at DIR and checks the tree the
//! host made (`mke2fs -d`: hello.txt, dir/nested/deep.txt, link -> hello.txt, the hard
//! link dir/hard, host.bin, doomed.txt, emptydir, many/name-1..300 indexed by the host),
//! adds and removes an entry of many/; then creates, renames, links and
//! removes files and directories, writes 4 KiB at 5 GiB of sparse.bin, writes big.bin
//! (BIG_KIB KiB, with O_DIRECT), truncates, fsyncs, prints an FNV-1a sum of each file it wrote
//! (`ext2test: sum NAME SIZE HEX`), unmounts, mounts again, reads big.bin back and
//! prints `ext2test: ok`.
//!
//! `ext2test DEV[,DEV...] DIR types`: mounts each disk as ext2, ext3 and ext4 in turn,
//! printing `ext2test: DEV as TYPE: ok` (and hello.txt) or the error.
//!
//! `ext2test DEV DIR fill`: writes until ENOSPC, removes that file, writes a small one,
//! unmounts; prints `ext2test: fill ok`.
//!
//! `ext2test DEV DIR durable`: writes and fsyncs synced.bin, writes unsynced.bin without
//! a sync, and spins (the VMM is then killed).
//!
//! `ext2test DEV DIR expire`: sets the flusher's timing to 1 s (expiry) and 0.5 s (period)
//! in /proc/sys/vm, writes expire.bin (256 KiB, no sync), waits until /proc/meminfo shows
//! no page dirty or under writeback (and a second for the metadata after), prints
//! `ext2test: written back` and spins (the VMM is then killed).
//!
//! `ext2test DEV DIR pressure`: leaves 4 files of 15 MiB dirty, then touches more
//! anonymous memory than is free (the flusher writes the files back so their pages can be
//! given back), reads the files back and prints `ext2test: pressure ok`.
//!
//! `ext2test DEV DIR mapwrite`: writes a 300 MiB file (more than the guest's memory)
//! through a shared mapping of all of it, a word per page (the flusher writes the pages
//! back and the cache gives them up as it goes), msyncs, unmounts, mounts again, checks every
//! page's word with read(2) and prints `ext2test: mapwrite ok`.
//!
//! `ext2test DEV DIR stream:NAME`: reads NAME twice (a file larger than memory: the
//! page cache gives pages back as it goes), then once through a shared mapping of all of
//! it (faults read the pages; the cache unmaps and gives back the older ones), and
//! prints its size and sum each time.
//!
//! `ext2test DEV DIR root`: checks the mount `root=DEV ro` made at DIR (read-only, in
//! /proc/mounts) and prints `ext2test: root ok`.
//!
//! `ext2test DEV[,DEV...] DIR corrupt`: mounts each damaged image in turn (after an
//! `ext2test: disk DEV` line) and walks all of it, printing each error; a corrupt image
//! must give errors, never a kernel panic. Prints `ext2test: survived`.
#![no_std]
#![no_main]

use ulib::uapi::{Stat, Timespec, MAP_PRIVATE, MAP_SHARED, O_CREAT, O_DIRECTORY, O_RDONLY, O_RDWR, O_TRUNC, O_WRONLY, PROT_READ, PROT_WRITE};
use ulib::{Args, Errno, println, sys};

ulib::entry!(main);

type Res<T> = Result<T, (&'static str, Errno)>;

/// A NUL-terminated path `dir/name`.
struct Path([u8; 512]);

impl Path {
    fn new(dir: &str, name: &str) -> Self {
        let mut p = [0u8; 512];
        let n = dir.len();
        p[..n].copy_from_slice(dir.as_bytes());
        let mut at = n;
        if !name.is_empty() {
            p[n] = b'/';
            p[n + 1..n + 1 + name.len()].copy_from_slice(name.as_bytes());
            at = n + 1 + name.len();
        }
        p[at] = 0;
        Self(p)
    }
    fn c(&self) -> &core::ffi::CStr {
        core::ffi::CStr::from_bytes_until_nul(&self.0).expect("NUL-terminated")
    }
    fn str(&self) -> &str {
        let end = self.0.iter().position(|&b| b == 0).unwrap_or(0);
        core::str::from_utf8(&self.0[..end]).unwrap_or("?")
    }
}

/// FNV-1a, 64 bits (the test computes the same on the host).
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
    fn add(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// The byte big.bin has at `pos`.
fn big_byte(pos: u64) -> u8 {
    (pos.wrapping_mul(2_654_435_761) >> 13) as u8
}

const CHUNK: usize = 64 * 1024;
/// Linux's O_DIRECT on x86-64.
const O_DIRECT: i32 = 0o40000;

/// Page-aligned, as O_DIRECT needs.
#[repr(C, align(4096))]
struct Chunk([u8; CHUNK]);
static mut BUF: Chunk = Chunk([0; CHUNK]);

fn buf() -> &'static mut [u8; CHUNK] {
    // SAFETY: single-threaded program; the buffer is used by one caller at a time.
    &mut unsafe { (&raw mut BUF).as_mut() }.expect("a static is never null").0
}

fn now_ms() -> u64 {
    let mut ts = Timespec::default();
    let _ = sys::clock_gettime(1, &mut ts);
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

fn mount(dev: &str, dir: &str, flags: usize) -> Result<(), Errno> {
    mount_as(dev, dir, c"ext2", flags)
}

fn mount_as(dev: &str, dir: &str, fstype: &core::ffi::CStr, flags: usize) -> Result<(), Errno> {
    let (d, m) = (Path::new(dev, ""), Path::new(dir, ""));
    // SAFETY: NUL-terminated strings; no data argument.
    let r = unsafe { sys::syscall5(165, d.c().as_ptr() as usize, m.c().as_ptr() as usize, fstype.as_ptr() as usize, flags, 0) };
    sys::ret(r).map(drop)
}

fn umount(dir: &str) -> Result<(), Errno> {
    let m = Path::new(dir, "");
    // SAFETY: a NUL-terminated path.
    sys::ret(unsafe { sys::syscall2(166, m.c().as_ptr() as usize, 0) }).map(drop)
}

fn main(args: &Args) -> i32 {
    let dev = args.iter().nth(1).unwrap_or("/dev/vda");
    let dir = args.iter().nth(2).unwrap_or("/mnt/e2");
    let mode = args.iter().nth(3).unwrap_or("1024");
    let _ = sys::mkdir(c"/mnt", 0o755);
    let _ = sys::mkdir(Path::new(dir, "").c(), 0o755);
    if mode == "corrupt" {
        for dev in dev.split(',') {
            println!("ext2test: disk {dev}");
            corrupt(dev, dir);
        }
        println!("ext2test: survived");
        return 0;
    }
    if mode == "types" {
        for dev in dev.split(',') {
            for (name, fstype) in [("ext2", c"ext2"), ("ext3", c"ext3"), ("ext4", c"ext4")] {
                match mount_as(dev, dir, fstype, 0) {
                    Ok(()) => {
                        let mut text = [0u8; 64];
                        let n = read_string(&Path::new(dir, "hello.txt"), &mut text).map_or(0, |n| n);
                        let _ = umount(dir);
                        println!("ext2test: {dev} as {name}: ok, hello.txt {:?}", core::str::from_utf8(&text[..n]).unwrap_or("?"));
                    }
                    Err(e) => println!("ext2test: {dev} as {name}: {e}"),
                }
            }
        }
        return 0;
    }
    if mode == "fill" {
        return report(fill(dev, dir), "fill ok");
    }
    if mode == "durable" {
        return report(durable(dev, dir), "durable");
    }
    if mode == "expire" {
        return report(expire(dev, dir), "expire");
    }
    if mode == "mapwrite" {
        return report(map_write(dev, dir), "mapwrite ok");
    }
    if mode == "pressure" {
        return report(pressure(dev, dir), "pressure ok");
    }
    if let Some(name) = mode.strip_prefix("stream:") {
        return report(stream(dev, dir, name), "stream ok");
    }
    if mode == "root" {
        return report(check_root(dev, dir), "root ok");
    }
    let big_kib: u64 = mode.parse().unwrap_or(1024);
    report(run(dev, dir, big_kib), "ok")
}

/// Prints `ext2test: DONE`, or what failed; the exit status.
fn report(r: Res<()>, done: &str) -> i32 {
    match r {
        Ok(()) => {
            println!("ext2test: {done}");
            0
        }
        Err((what, e)) => {
            println!("ext2test: {what}: {e}");
            1
        }
    }
}

fn read_all(path: &Path) -> Res<(u64, u64)> {
    read_upto(path, u64::MAX)
}

/// Reads the file's first `max` bytes (or all of it); its size read and sum.
fn read_upto(path: &Path, max: u64) -> Res<(u64, u64)> {
    let fd = sys::open(path.c(), O_RDONLY, 0).map_err(|e| ("open for reading", e))? as i32;
    let mut sum = Fnv::new();
    let mut size = 0u64;
    let b = buf();
    loop {
        let n = sys::read(fd, b).map_err(|e| ("read", e))?;
        if n == 0 {
            break;
        }
        sum.add(&b[..n]);
        size += n as u64;
        if size >= max {
            break;
        }
    }
    sys::close(fd).map_err(|e| ("close", e))?;
    Ok((size, sum.0))
}

/// Writes synced.bin (256 KiB of big.bin's bytes, into the page cache) and fsyncs it,
/// prints `ext2test: synced`, writes unsynced.bin without a sync, prints `ext2test:
/// unsynced written` and spins until the VMM is killed.
fn durable(dev: &str, dir: &str) -> Res<()> {
    mount(dev, dir, 0).map_err(|e| ("mount", e))?;
    let b = buf();
    for (i, x) in b.iter_mut().enumerate() {
        *x = big_byte(i as u64);
    }
    let fd = sys::open(Path::new(dir, "synced.bin").c(), O_CREAT | O_WRONLY | O_TRUNC, 0o644).map_err(|e| ("create synced.bin", e))? as i32;
    for k in 0..4 {
        // The same 64 KiB at each 64 KiB: byte i of the file is big_byte(i % 65536).
        let n = sys::pwrite64(fd, b, (k * CHUNK) as i64).map_err(|e| ("write synced.bin", e))?;
        expect(n == CHUNK, "short write")?;
    }
    sys::fsync(fd).map_err(|e| ("fsync synced.bin", e))?;
    println!("ext2test: synced");
    let fd2 = sys::open(Path::new(dir, "unsynced.bin").c(), O_CREAT | O_WRONLY | O_TRUNC, 0o644).map_err(|e| ("create unsynced.bin", e))? as i32;
    sys::write(fd2, b).map_err(|e| ("write unsynced.bin", e))?;
    println!("ext2test: unsynced written");
    loop {
        core::hint::spin_loop();
    }
}

/// Writes `len` bytes of big.bin's pattern to `path` (created), without a sync.
fn write_pattern(path: &Path, len: usize) -> Res<()> {
    let b = buf();
    for (i, x) in b.iter_mut().enumerate() {
        *x = big_byte(i as u64);
    }
    let fd = sys::open(path.c(), O_CREAT | O_WRONLY | O_TRUNC, 0o644).map_err(|e| ("create", e))? as i32;
    let mut at = 0;
    while at < len {
        // The same 64 KiB at each 64 KiB: byte i of the file is big_byte(i % 65536).
        let n = sys::pwrite64(fd, b, at as i64).map_err(|e| ("write", e))?;
        expect(n == CHUNK, "short write")?;
        at += CHUNK;
    }
    sys::close(fd).map_err(|e| ("close", e))?;
    Ok(())
}

/// A number from /proc/meminfo's line `name:` (kB).
fn meminfo_kb(name: &str) -> Res<u64> {
    let mut text = [0u8; 2048];
    let n = read_string(&Path::new("/proc", "meminfo"), &mut text)?;
    let info = core::str::from_utf8(&text[..n]).unwrap_or("");
    let line = info.lines().find(|l| l.strip_prefix(name).is_some_and(|r| r.starts_with(':'))).ok_or(("meminfo line", Errno::ENOENT))?;
    line[name.len() + 1..].trim().trim_end_matches("kB").trim().parse().map_err(|_| ("meminfo number", Errno::EINVAL))
}

fn expire(dev: &str, dir: &str) -> Res<()> {
    mount(dev, dir, 0).map_err(|e| ("mount", e))?;
    write_file(&Path::new("/proc/sys/vm", "dirty_expire_centisecs"), b"100\n")?;
    write_file(&Path::new("/proc/sys/vm", "dirty_writeback_centisecs"), b"50\n")?;
    let mut text = [0u8; 16];
    let n = read_string(&Path::new("/proc/sys/vm", "dirty_expire_centisecs"), &mut text)?;
    expect(&text[..n] == b"100\n", "dirty_expire_centisecs reads back")?;
    write_pattern(&Path::new(dir, "expire.bin"), 4 * CHUNK)?;
    expect(meminfo_kb("Dirty")? > 0, "the write left dirty pages")?;
    let start = now_ms();
    while meminfo_kb("Dirty")? > 0 || meminfo_kb("Writeback")? > 0 {
        expect(now_ms() - start < 20_000, "dirty pages written back within 20 s")?;
        let _ = sys::nanosleep(&Timespec { tv_sec: 0, tv_nsec: 100_000_000 }, None);
    }
    // The pass writes the inode and block maps after the data: a moment for them.
    let _ = sys::nanosleep(&Timespec { tv_sec: 1, tv_nsec: 0 }, None);
    println!("ext2test: written back");
    loop {
        core::hint::spin_loop();
    }
}

fn map_write(dev: &str, dir: &str) -> Res<()> {
    const SIZE: usize = 300 << 20;
    const PAGE: usize = 4096;
    mount(dev, dir, 0).map_err(|e| ("mount", e))?;
    let path = Path::new(dir, "map.bin");
    let fd = sys::open(path.c(), O_CREAT | O_RDWR | O_TRUNC, 0o644).map_err(|e| ("create map.bin", e))? as i32;
    sys::ftruncate(fd, SIZE as i64).map_err(|e| ("ftruncate", e))?;
    // SAFETY: not MAP_FIXED: the kernel picks the address.
    let m = unsafe { sys::mmap(0, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) }.map_err(|e| ("mmap shared", e))?;
    for page in 0..SIZE / PAGE {
        // SAFETY: `m` maps SIZE writable bytes until the munmap below; the word is inside.
        unsafe { ((m + page * PAGE) as *mut u64).write_volatile(page as u64 ^ 0x5a5a_0000) };
    }
    // SAFETY: no memory is passed but the mapping's range.
    sys::ret(unsafe { sys::syscall3(ulib::nr::MSYNC, m, SIZE, 4) }).map_err(|e| ("msync", e))?;
    // SAFETY: the mapping made above, no longer used.
    unsafe { sys::munmap(m, SIZE) }.map_err(|e| ("munmap", e))?;
    sys::fsync(fd).map_err(|e| ("fsync", e))?;
    sys::close(fd).map_err(|e| ("close", e))?;
    umount(dir).map_err(|e| ("umount", e))?;
    mount(dev, dir, 0).map_err(|e| ("mount again", e))?;
    let fd = sys::open(path.c(), O_RDONLY, 0).map_err(|e| ("open map.bin", e))? as i32;
    let b = buf();
    let mut at = 0;
    while at < SIZE {
        let n = sys::pread64(fd, b, at as i64).map_err(|e| ("read map.bin", e))?;
        expect(n == CHUNK, "a full read")?;
        for (k, page) in b.chunks(PAGE).enumerate() {
            let word = u64::from_le_bytes(page[..8].try_into().expect("8 bytes"));
            if word != ((at / PAGE + k) as u64 ^ 0x5a5a_0000) {
                println!("ext2test: page {} holds {word:#x}", at / PAGE + k);
            }
            expect(word == ((at / PAGE + k) as u64 ^ 0x5a5a_0000), "each page holds the word stored through the mapping")?;
            expect(page[8..].iter().all(|&x| x == 0), "the rest of each page is zeros")?;
        }
        at += n;
    }
    sys::close(fd).map_err(|e| ("close", e))?;
    umount(dir).map_err(|e| ("umount", e))
}

fn pressure(dev: &str, dir: &str) -> Res<()> {
    const FILE: usize = 15 << 20;
    mount(dev, dir, 0).map_err(|e| ("mount", e))?;
    let names = ["p0.bin", "p1.bin", "p2.bin", "p3.bin"];
    for name in names {
        write_pattern(&Path::new(dir, name), FILE)?;
    }
    let dirty = meminfo_kb("Dirty")?;
    let free = meminfo_kb("MemFree")?;
    println!("ext2test: {dirty} kB dirty, {free} kB free");
    expect(dirty >= 40 << 10, "the files are still dirty")?;
    // More than is free: only written-back pages of the files can make the difference.
    let len = ((free + dirty / 2) << 10) as usize;
    // SAFETY: a new private anonymous mapping, used only here and unmapped below.
    let m = unsafe { sys::mmap(0, len, PROT_READ | PROT_WRITE, 0x22, -1, 0) }.map_err(|e| ("mmap anonymous", e))?;
    // SAFETY: `m` maps `len` writable bytes until the munmap below.
    let mem = unsafe { core::slice::from_raw_parts_mut(m as *mut u8, len) };
    for page in mem.chunks_mut(4096) {
        page[0] = 1;
    }
    // SAFETY: the mapping made above, no longer used.
    unsafe { sys::munmap(m, len) }.map_err(|e| ("munmap", e))?;
    let want = {
        let mut sum = Fnv::new();
        let b = buf();
        for _ in 0..FILE / CHUNK {
            sum.add(&b[..]);
        }
        sum.0
    };
    for name in names {
        let (size, sum) = read_all(&Path::new(dir, name))?;
        expect(size == FILE as u64 && sum == want, "a file reads back as written")?;
    }
    umount(dir).map_err(|e| ("umount", e))
}

/// MAP_PRIVATE is copy-on-write, as on Linux: the mapping reads the file's pages, and
/// sees a write to the file, until it stores into a page, which is then its own.
fn private_mapping(path: &Path) -> Res<()> {
    const PAGE: usize = 4096;
    let fd = sys::open(path.c(), O_CREAT | O_RDWR | O_TRUNC, 0o644).map_err(|e| ("create cow.bin", e))? as i32;
    let b = &mut buf()[..2 * PAGE];
    b.fill(b'a');
    sys::pwrite64(fd, b, 0).map_err(|e| ("write cow.bin", e))?;
    // SAFETY: a new mapping of our own file, used only here and unmapped below.
    let m = unsafe { sys::mmap(0, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0) }.map_err(|e| ("mmap private", e))?;
    // SAFETY: `m` is 2 pages, readable and writable, until the munmap below.
    let map = unsafe { core::slice::from_raw_parts_mut(m as *mut u8, 2 * PAGE) };
    expect(map[0] == b'a' && map[PAGE] == b'a', "private mapping reads the file")?;
    sys::pwrite64(fd, b"b", 0).map_err(|e| ("pwrite 0", e))?;
    sys::pwrite64(fd, b"c", (PAGE + 1) as i64).map_err(|e| ("pwrite 4097", e))?;
    expect(map[0] == b'b', "a page not stored into sees the file's change")?;
    map[PAGE + 2] = b'P';
    expect(map[PAGE + 1] == b'c' && map[PAGE + 2] == b'P', "the copy is made at the store")?;
    sys::pwrite64(fd, b"d", (PAGE + 3) as i64).map_err(|e| ("pwrite 4099", e))?;
    expect(map[PAGE + 3] == b'a', "a copied page no longer sees the file")?;
    let mut one = [0u8; 1];
    sys::pread64(fd, &mut one, (PAGE + 2) as i64).map_err(|e| ("pread 4098", e))?;
    expect(one[0] == b'a', "the store stays out of the file")?;
    // SAFETY: unmapping the mapping made above; `map` is not used after.
    unsafe { sys::munmap(m, 2 * PAGE) }.map_err(|e| ("munmap", e))?;
    sys::close(fd).map_err(|e| ("close cow.bin", e))?;
    Ok(())
}

/// Reads `name` (larger than memory) through the page cache twice, printing its size
/// and sum each time (`ext2test: stream SIZE HEX`) and the cache's size after.
fn stream(dev: &str, dir: &str, name: &str) -> Res<()> {
    mount(dev, dir, 1).map_err(|e| ("mount", e))?;
    for _ in 0..2 {
        let (size, sum) = read_all(&Path::new(dir, name))?;
        println!("ext2test: stream {size} {sum:016x}");
    }
    let (size, sum) = map_sum(&Path::new(dir, name))?;
    println!("ext2test: stream {size} {sum:016x}");
    let mut text = [0u8; 2048];
    let n = read_string(&Path::new("/proc", "meminfo"), &mut text)?;
    let info = core::str::from_utf8(&text[..n]).unwrap_or("");
    for line in info.lines().filter(|l| l.starts_with("MemTotal") || l.starts_with("Cached")) {
        println!("ext2test: {line}");
    }
    umount(dir).map_err(|e| ("umount", e))
}

/// The size and sum of the file at `path`, read through a shared mapping of all of it.
fn map_sum(path: &Path) -> Res<(u64, u64)> {
    let fd = sys::open(path.c(), O_RDONLY, 0).map_err(|e| ("open for mapping", e))? as i32;
    let mut st = Stat::default();
    sys::fstat(fd, &mut st).map_err(|e| ("fstat", e))?;
    let size = st.st_size as usize;
    // SAFETY: not MAP_FIXED: the kernel picks the address.
    let m = unsafe { sys::mmap(0, size, PROT_READ, MAP_SHARED, fd, 0) }.map_err(|e| ("mmap shared", e))?;
    // SAFETY: `m` maps `size` readable bytes until the munmap below.
    let bytes = unsafe { core::slice::from_raw_parts(m as *const u8, size) };
    let mut sum = Fnv::new();
    sum.add(bytes);
    // SAFETY: the mapping made above, no longer used.
    unsafe { sys::munmap(m, size) }.map_err(|e| ("munmap", e))?;
    sys::close(fd).map_err(|e| ("close", e))?;
    Ok((size as u64, sum.0))
}

fn read_string(path: &Path, out: &mut [u8]) -> Res<usize> {
    let fd = sys::open(path.c(), O_RDONLY, 0).map_err(|e| ("open", e))? as i32;
    let n = sys::read(fd, out).map_err(|e| ("read", e))?;
    sys::close(fd).map_err(|e| ("close", e))?;
    Ok(n)
}

fn write_file(path: &Path, data: &[u8]) -> Res<()> {
    let fd = sys::open(path.c(), O_CREAT | O_WRONLY | O_TRUNC, 0o644).map_err(|e| ("create", e))? as i32;
    sys::write(fd, data).map_err(|e| ("write", e))?;
    sys::close(fd).map_err(|e| ("close", e))?;
    Ok(())
}

fn expect(cond: bool, what: &'static str) -> Res<()> {
    if cond { Ok(()) } else { Err((what, Errno::EIO)) }
}

fn stat(path: &Path) -> Res<Stat> {
    let mut st = Stat::default();
    sys::lstat(path.c(), &mut st).map_err(|e| ("lstat", e))?;
    Ok(st)
}

/// How many entries directory `path` has (`.` and `..` included).
fn count(path: &Path) -> Res<usize> {
    let fd = sys::open(path.c(), O_RDONLY | O_DIRECTORY, 0).map_err(|e| ("opendir", e))? as i32;
    let mut dents = [0u8; 4096];
    let mut total = 0;
    loop {
        let n = sys::getdents64(fd, &mut dents).map_err(|e| ("getdents64", e))?;
        if n == 0 {
            break;
        }
        let mut at = 0;
        while at < n {
            at += u16::from_le_bytes([dents[at + 16], dents[at + 17]]) as usize;
            total += 1;
        }
    }
    sys::close(fd).map_err(|e| ("close dir", e))?;
    Ok(total)
}

/// Names in directory `path`, printed.
fn list(path: &Path) -> Res<()> {
    let fd = sys::open(path.c(), O_RDONLY | O_DIRECTORY, 0).map_err(|e| ("opendir", e))? as i32;
    let mut dents = [0u8; 4096];
    loop {
        let n = sys::getdents64(fd, &mut dents).map_err(|e| ("getdents64", e))?;
        if n == 0 {
            break;
        }
        let mut at = 0;
        while at < n {
            let reclen = u16::from_le_bytes([dents[at + 16], dents[at + 17]]) as usize;
            let name = &dents[at + 19..at + reclen];
            let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
            println!("ext2test: entry {} {}", path.str(), core::str::from_utf8(&name[..end]).unwrap_or("?"));
            at += reclen;
        }
    }
    sys::close(fd).map_err(|e| ("close dir", e))?;
    Ok(())
}

fn run(dev: &str, dir: &str, big_kib: u64) -> Res<()> {
    mount(dev, dir, 0).map_err(|e| ("mount", e))?;
    println!("ext2test: mounted {dev} at {dir}");
    let p = |name: &str| Path::new(dir, name);

    // The host's tree.
    let mut text = [0u8; 128];
    let n = read_string(&p("hello.txt"), &mut text)?;
    expect(&text[..n] == b"hello from the host\n", "hello.txt contents")?;
    let n = read_string(&p("dir/nested/deep.txt"), &mut text)?;
    expect(&text[..n] == b"deep\n", "deep.txt contents")?;
    let n = sys::readlink(p("link").c(), &mut text).map_err(|e| ("readlink", e))?;
    expect(&text[..n] == b"hello.txt", "link target")?;
    let n = read_string(&p("link"), &mut text)?;
    expect(&text[..n] == b"hello from the host\n", "reading through the symlink")?;
    let (a, b) = (stat(&p("hello.txt"))?, stat(&p("dir/hard"))?);
    expect(a.st_ino == b.st_ino && a.st_nlink == 2, "hard link shares the inode, nlink 2")?;
    let (size, sum) = read_all(&p("host.bin"))?;
    println!("ext2test: host.bin {size} bytes, sum {sum:016x}");
    list(&p(""))?;
    // many/: 300 entries the host indexed (dir_index); read linearly, changed here.
    expect(count(&p("many"))? == 302, "entries of many/")?;
    let n = read_string(&p("many/name-200"), &mut text)?;
    expect(&text[..n] == b"200\n", "many/name-200")?;
    write_file(&p("many/added-by-the-guest"), b"added\n")?;
    sys::unlink(p("many/name-7").c()).map_err(|e| ("unlink in many/", e))?;
    expect(count(&p("many"))? == 302, "entries of many/ after a create and an unlink")?;
    println!("ext2test: host tree ok");

    // New files and directories.
    write_file(&p("new.txt"), b"written in the guest\n")?;
    sys::mkdir(p("newdir").c(), 0o755).map_err(|e| ("mkdir newdir", e))?;
    sys::mkdir(p("newdir/sub").c(), 0o700).map_err(|e| ("mkdir sub", e))?;
    write_file(&p("newdir/sub/f.txt"), b"in a subdirectory\n")?;
    sys::rename(p("new.txt").c(), p("newdir/moved.txt").c()).map_err(|e| ("rename file", e))?;
    sys::rename(p("dir/nested").c(), p("newdir/nested").c()).map_err(|e| ("rename dir", e))?;
    let n = read_string(&p("newdir/nested/../nested/deep.txt"), &mut text)?;
    expect(&text[..n] == b"deep\n", "moved directory")?;
    // SAFETY: NUL-terminated paths.
    sys::ret(unsafe { sys::syscall2(86, p("newdir/moved.txt").c().as_ptr() as usize, p("newdir/hard2").c().as_ptr() as usize) }).map_err(|e| ("link", e))?;
    expect(stat(&p("newdir/hard2"))?.st_nlink == 2, "nlink after link")?;
    sys::unlink(p("doomed.txt").c()).map_err(|e| ("unlink", e))?;
    sys::rmdir(p("emptydir").c()).map_err(|e| ("rmdir", e))?;
    expect(sys::rmdir(p("newdir").c()) == Err(Errno::ENOTEMPTY), "rmdir of a full directory: ENOTEMPTY")?;
    sys::symlink(c"moved.txt", p("newdir/fast").c()).map_err(|e| ("symlink", e))?;
    let long = "a-rather-long-symlink-target/that-does-not-fit/in-the-inode/itself/so-it-takes/a-block.txt";
    sys::symlink(Path::new(long, "").c(), p("slow").c()).map_err(|e| ("slow symlink", e))?;
    let n = sys::readlink(p("slow").c(), &mut text).map_err(|e| ("readlink slow", e))?;
    expect(&text[..n] == long.as_bytes(), "slow symlink target")?;
    // A file unlinked while open stays readable until closed.
    write_file(&p("open-unlinked"), b"still here")?;
    let fd = sys::open(p("open-unlinked").c(), O_RDONLY, 0).map_err(|e| ("open", e))? as i32;
    sys::unlink(p("open-unlinked").c()).map_err(|e| ("unlink open file", e))?;
    let n = sys::read(fd, &mut text).map_err(|e| ("read unlinked", e))?;
    expect(&text[..n] == b"still here", "open unlinked file")?;
    sys::close(fd).map_err(|e| ("close", e))?;
    // Rename over an open file: the open one keeps its data until closed.
    write_file(&p("a.txt"), b"new contents")?;
    write_file(&p("b.txt"), b"old contents")?;
    let fd = sys::open(p("b.txt").c(), O_RDONLY, 0).map_err(|e| ("open b.txt", e))? as i32;
    sys::rename(p("a.txt").c(), p("b.txt").c()).map_err(|e| ("rename over a file", e))?;
    let n = sys::read(fd, &mut text).map_err(|e| ("read replaced", e))?;
    expect(&text[..n] == b"old contents", "a replaced open file")?;
    sys::close(fd).map_err(|e| ("close", e))?;
    // Rename a directory over an empty one.
    sys::mkdir(p("d1").c(), 0o755).map_err(|e| ("mkdir d1", e))?;
    write_file(&p("d1/inside"), b"in d1\n")?;
    sys::mkdir(p("newdir/d2").c(), 0o755).map_err(|e| ("mkdir d2", e))?;
    sys::rename(p("d1").c(), p("newdir/d2").c()).map_err(|e| ("rename over a directory", e))?;
    // Attributes.
    let ids = p("newdir/sub/f.txt");
    // SAFETY: NUL-terminated paths; a null times pointer is "now".
    unsafe {
        sys::ret(sys::syscall2(90, ids.c().as_ptr() as usize, 0o640)).map_err(|e| ("chmod", e))?;
        sys::ret(sys::syscall3(92, ids.c().as_ptr() as usize, 1234, 5678)).map_err(|e| ("chown", e))?;
        let times: [i64; 4] = [1_000_000_000, 0, 1_234_567_890, 500];
        sys::ret(sys::syscall4(280, (-100i32) as usize, ids.c().as_ptr() as usize, times.as_ptr() as usize, 0)).map_err(|e| ("utimensat", e))?;
    }
    let st = stat(&ids)?;
    expect(st.st_mode == 0o100640 && st.st_uid == 1234 && st.st_gid == 5678 && st.st_mtime == 1_234_567_890, "chmod, chown, utimensat")?;
    // A sparse file cut back: the triple indirect tree goes.
    let fd = sys::open(p("cut.bin").c(), O_CREAT | O_RDWR, 0o644).map_err(|e| ("create cut", e))? as i32;
    sys::pwrite64(fd, b"far away", 5i64 << 30).map_err(|e| ("pwrite cut", e))?;
    sys::pwrite64(fd, b"near", 100).map_err(|e| ("pwrite cut", e))?;
    sys::ftruncate(fd, 8192).map_err(|e| ("ftruncate cut", e))?;
    let mut st = Stat::default();
    sys::fstat(fd, &mut st).map_err(|e| ("fstat cut", e))?;
    expect(st.st_size == 8192 && st.st_blocks <= 16, "a cut sparse file")?;
    sys::close(fd).map_err(|e| ("close", e))?;
    // Across file systems: EXDEV, and the file stays where it was.
    write_file(&Path::new("/tmp/ext2test-x", ""), b"x")?;
    expect(sys::rename(c"/tmp/ext2test-x", p("x").c()) == Err(Errno::EXDEV), "rename across file systems: EXDEV")?;
    stat(&Path::new("/tmp/ext2test-x", ""))?;
    println!("ext2test: namespace ok");

    // Sparse: 4 KiB at 5 GiB.
    let fd = sys::open(p("sparse.bin").c(), O_CREAT | O_RDWR, 0o644).map_err(|e| ("create sparse", e))? as i32;
    let page: [u8; 4096] = core::array::from_fn(|i| (i * 7 + 3) as u8);
    let far = 5i64 << 30;
    let n = sys::pwrite64(fd, &page, far).map_err(|e| ("pwrite at 5 GiB", e))?;
    expect(n == 4096, "pwrite at 5 GiB: short")?;
    let mut st = Stat::default();
    sys::fstat(fd, &mut st).map_err(|e| ("fstat", e))?;
    expect(st.st_size == far + 4096, "sparse size")?;
    expect(st.st_blocks > 0 && st.st_blocks <= 64, "st_blocks of a sparse file counts its blocks")?;
    let mut back = [0xffu8; 4096];
    sys::pread64(fd, &mut back, 1 << 30).map_err(|e| ("pread hole", e))?;
    expect(back.iter().all(|&b| b == 0), "a hole reads as zeros")?;
    sys::pread64(fd, &mut back, far).map_err(|e| ("pread 5 GiB", e))?;
    expect(back == page, "data at 5 GiB")?;
    sys::fsync(fd).map_err(|e| ("fsync sparse", e))?;
    sys::close(fd).map_err(|e| ("close", e))?;
    let mut s = Fnv::new();
    s.add(&page);
    println!("ext2test: sum sparse-tail 4096 {:016x}", s.0);
    println!("ext2test: sparse ok");

    // Truncate: shrink, then grow (the tail reads zeros).
    let fd = sys::open(p("trunc.bin").c(), O_CREAT | O_RDWR, 0o644).map_err(|e| ("create trunc", e))? as i32;
    let b = buf();
    b.fill(0x5a);
    for i in 0..2 {
        sys::pwrite64(fd, &b[..], i * CHUNK as i64).map_err(|e| ("write trunc", e))?;
    }
    sys::ftruncate(fd, 5000).map_err(|e| ("ftruncate down", e))?;
    sys::ftruncate(fd, 9000).map_err(|e| ("ftruncate up", e))?;
    let n = sys::pread64(fd, &mut b[..], 0).map_err(|e| ("read trunc", e))?;
    expect(n == 9000 && b[..5000].iter().all(|&x| x == 0x5a) && b[5000..9000].iter().all(|&x| x == 0), "truncated contents")?;
    sys::close(fd).map_err(|e| ("close", e))?;

    private_mapping(&p("cow.bin"))?;
    println!("ext2test: private mapping ok");

    // The big file, written with O_DIRECT (around the page cache: whole sectors only).
    let t0 = now_ms();
    let fd = sys::open(p("big.bin").c(), O_CREAT | O_WRONLY | O_TRUNC | O_DIRECT, 0o644).map_err(|e| ("create big", e))? as i32;
    expect(sys::pwrite64(fd, &buf()[..100], 0) == Err(Errno::EINVAL), "O_DIRECT write of 100 bytes: EINVAL")?;
    expect(sys::pwrite64(fd, &buf()[1..513], 0) == Err(Errno::EINVAL), "O_DIRECT write from an odd address: EINVAL")?;
    let total = big_kib * 1024;
    let mut sum = Fnv::new();
    let mut pos = 0u64;
    while pos < total {
        let n = (total - pos).min(CHUNK as u64) as usize;
        let b = buf();
        for (i, x) in b[..n].iter_mut().enumerate() {
            *x = big_byte(pos + i as u64);
        }
        sum.add(&b[..n]);
        let w = sys::write(fd, &b[..n]).map_err(|e| ("write big", e))?;
        expect(w == n, "short write")?;
        pos += n as u64;
    }
    sys::fsync(fd).map_err(|e| ("fsync big", e))?;
    sys::close(fd).map_err(|e| ("close big", e))?;
    let ms = now_ms() - t0;
    println!("ext2test: sum big.bin {total} {:016x}", sum.0);
    println!("ext2test: wrote {big_kib} KiB with O_DIRECT in {ms} ms");

    let mut fs = [0u64; 15];
    let root = p("");
    // SAFETY: a NUL-terminated path and a 120-byte buffer for `struct statfs`.
    sys::ret(unsafe { sys::syscall2(137, root.c().as_ptr() as usize, fs.as_mut_ptr() as usize) }).map_err(|e| ("statfs", e))?;
    expect(fs[0] == 0xEF53, "statfs type")?;
    println!("ext2test: statfs block size {} blocks {} free {} inodes {} free {}", fs[1], fs[2], fs[3], fs[5], fs[6]);

    let held = sys::open(p("newdir/moved.txt").c(), O_WRONLY, 0).map_err(|e| ("open held", e))? as i32;
    umount(dir).map_err(|e| ("umount", e))?;
    println!("ext2test: unmounted");
    // A file still open from the unmounted file system is not changed any more.
    expect(sys::write(held, b"late") == Err(Errno::EIO), "a write after umount: EIO")?;
    sys::close(held).map_err(|e| ("close held", e))?;
    mount(dev, dir, 1).map_err(|e| ("mount again read-only", e))?;
    let t0 = now_ms();
    let (size, again) = read_all(&p("big.bin"))?;
    expect(size == total && again == sum.0, "big.bin read back")?;
    println!("ext2test: read {big_kib} KiB back in {} ms", now_ms() - t0);
    expect(sys::open(p("hello.txt").c(), O_WRONLY, 0) == Err(Errno::EROFS), "read-only mount refuses writes")?;
    list(&p("newdir"))?;
    umount(dir).map_err(|e| ("umount again", e))?;
    Ok(())
}

/// Writes until the disk is full (ENOSPC), then frees it all again.
fn fill(dev: &str, dir: &str) -> Res<()> {
    mount(dev, dir, 0).map_err(|e| ("mount", e))?;
    let fd = sys::open(Path::new(dir, "fill").c(), O_CREAT | O_WRONLY, 0o644).map_err(|e| ("create", e))? as i32;
    let b = buf();
    b.fill(0xa5);
    let mut total = 0u64;
    let err = loop {
        match sys::write(fd, &b[..]) {
            Ok(n) => total += n as u64,
            Err(e) => break e,
        }
    };
    println!("ext2test: filled {} KiB, then {err}", total / 1024);
    expect(err == Errno::ENOSPC, "a full disk gives ENOSPC")?;
    sys::fsync(fd).map_err(|e| ("fsync", e))?;
    let mut st = Stat::default();
    sys::fstat(fd, &mut st).map_err(|e| ("fstat", e))?;
    expect(st.st_size as u64 == total, "the size is what was written")?;
    sys::close(fd).map_err(|e| ("close", e))?;
    expect(sys::mkdir(Path::new(dir, "d").c(), 0o755) == Err(Errno::ENOSPC), "mkdir on a full disk: ENOSPC")?;
    sys::unlink(Path::new(dir, "fill").c()).map_err(|e| ("unlink", e))?;
    write_file(&Path::new(dir, "after"), b"room again\n")?;
    umount(dir).map_err(|e| ("umount", e))?;
    Ok(())
}

/// `root=DEV ro` mounted the disk at DIR before init ran: read-only, in /proc/mounts.
fn check_root(dev: &str, dir: &str) -> Res<()> {
    let mut text = [0u8; 1024];
    let n = read_string(&Path::new(dir, "hello.txt"), &mut text)?;
    expect(&text[..n] == b"hello from the host\n", "hello.txt under root=")?;
    let n = read_string(&Path::new("/proc/mounts", ""), &mut text)?;
    let mounts = core::str::from_utf8(&text[..n]).unwrap_or("");
    let mut want = [0u8; 128];
    let line = Path::new(dev, "");
    let (d, m) = (line.str(), dir);
    let mut at = 0;
    for part in [d, " ", m, " ext2 ro"] {
        want[at..at + part.len()].copy_from_slice(part.as_bytes());
        at += part.len();
    }
    let want = core::str::from_utf8(&want[..at]).unwrap_or("");
    expect(mounts.lines().any(|l| l.starts_with(want)), "the root= mount in /proc/mounts")?;
    expect(sys::open(Path::new(dir, "new").c(), O_CREAT | O_WRONLY, 0o644) == Err(Errno::EROFS), "a read-only root= refuses writes")?;
    Ok(())
}

/// Directories already walked (a damaged entry can point back up the tree), and how many.
static mut SEEN: ([u64; 256], usize) = ([0; 256], 0);

fn seen_list() -> &'static mut ([u64; 256], usize) {
    // SAFETY: single-threaded program; one user at a time (`walk`, `corrupt`).
    unsafe { (&raw mut SEEN).as_mut() }.expect("a static is never null")
}

/// Whether directory inode `ino` was walked before (and records it).
fn seen(ino: u64) -> bool {
    let (list, n) = seen_list();
    if list[..*n].contains(&ino) || *n == list.len() {
        return true;
    }
    list[*n] = ino;
    *n += 1;
    false
}

/// Walks everything under `path` (each directory once, depth-limited), reading files and
/// links, printing errors; writes a little where it can.
fn walk(path: &Path, depth: u32) {
    let mut st = Stat::default();
    if depth > 8 || sys::stat(path.c(), &mut st).is_err() || seen(st.st_ino) {
        return;
    }
    let fd = match sys::open(path.c(), O_RDONLY | O_DIRECTORY, 0) {
        Ok(fd) => fd as i32,
        Err(e) => return println!("ext2test: opendir {}: {e}", path.str()),
    };
    let mut dents = [0u8; 4096];
    let mut names: [[u8; 64]; 32] = [[0; 64]; 32];
    let mut count = 0;
    loop {
        let n = match sys::getdents64(fd, &mut dents) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                println!("ext2test: getdents {}: {e}", path.str());
                break;
            }
        };
        let mut at = 0;
        while at < n && count < names.len() {
            let reclen = u16::from_le_bytes([dents[at + 16], dents[at + 17]]) as usize;
            let name = &dents[at + 19..at + reclen];
            let end = name.iter().position(|&b| b == 0).unwrap_or(name.len()).min(63);
            if &name[..end] != b"." && &name[..end] != b".." {
                names[count][..end].copy_from_slice(&name[..end]);
                count += 1;
            }
            at += reclen;
        }
    }
    let _ = sys::close(fd);
    for name in &names[..count] {
        let end = name.iter().position(|&b| b == 0).unwrap_or(63);
        let child = Path::new(path.str(), core::str::from_utf8(&name[..end]).unwrap_or("?"));
        let mut st = Stat::default();
        if let Err(e) = sys::lstat(child.c(), &mut st) {
            println!("ext2test: lstat {}: {e}", child.str());
            continue;
        }
        match st.st_mode & 0o170000 {
            0o040000 => walk(&child, depth + 1),
            0o120000 => {
                let mut t = [0u8; 256];
                if let Err(e) = sys::readlink(child.c(), &mut t) {
                    println!("ext2test: readlink {}: {e}", child.str());
                }
            }
            // A damaged size can make a file terabytes of holes: its first MiB will do.
            _ => match read_upto(&child, 1 << 20) {
                Ok((size, _)) => println!("ext2test: read {} ({size} bytes)", child.str()),
                Err((what, e)) => println!("ext2test: {what} {}: {e}", child.str()),
            },
        }
    }
    if let Err(e) = write_file(&Path::new(path.str(), "scribble"), b"x") {
        println!("ext2test: create in {}: {}", path.str(), e.1);
    }
}

fn corrupt(dev: &str, dir: &str) {
    match mount(dev, dir, 0) {
        Err(e) => println!("ext2test: mount: {e}"),
        Ok(()) => {
            println!("ext2test: mounted");
            seen_list().1 = 0;
            walk(&Path::new(dir, ""), 0);
            match umount(dir) {
                Ok(()) => println!("ext2test: unmounted"),
                Err(e) => println!("ext2test: umount: {e}"),
            }
        }
    }
}
