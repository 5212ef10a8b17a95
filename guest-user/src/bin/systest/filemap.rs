//! The page cache as programs see it: a shared file mapping and read(2)/write(2) see the
//! same bytes at once; stores reach the file on msync and munmap (an O_DIRECT read, which
//! goes around the cache, finds them); an O_DIRECT write is seen by mappings and buffered
//! reads, a buffered write by an O_DIRECT read; private mappings are copies; truncation zeroes; reads of odd sizes across many
//! pages (readahead) match what was written; faults read pages not cached (a mapping
//! may be larger than memory), and a page wholly past the end of the file (or cut off by
//! truncation) is SIGBUS;
//! syscalls copy from and into such mappings. Run in DIR: the RAM file system in the
//! guest by default, a 9p share with `--dir /mnt/share`, an ext2 root with `--dir
//! /mnt/root`, the host's disk on Linux.

use ulib::sys::{self, syscall3};
use ulib::uapi::*;
use ulib::{check, check_eq, check_err, check_ok, fail, nr};

use crate::util::*;

pub const TESTS: &[Test] = tests![
    shared_mapping_and_read_see_the_same_bytes,
    stores_reach_the_file_on_msync_and_munmap,
    direct_write_is_seen_by_mappings_and_reads,
    buffered_write_is_seen_by_a_direct_read,
    private_mapping_is_a_copy,
    mappings_outlive_close_and_share_pages,
    child_stores_through_a_shared_file_mapping,
    truncate_then_extend_reads_zeros,
    reads_of_odd_sizes_match_what_was_written,
    faults_read_pages_of_a_file_not_cached,
    touching_a_mapping_past_the_end_of_the_file_is_sigbus,
    mapping_larger_than_memory_reads_only_what_it_touches,
    copies_from_and_into_mappings_of_files_not_cached,
];

const PAGE: usize = 4096;
const O_DIRECT: i32 = 0o40000;
const MS_SYNC: usize = 4;
const POSIX_FADV_DONTNEED: usize = 4;

/// The byte at `offset` of the test pattern (not periodic in pages).
fn pattern(offset: usize) -> u8 {
    (offset % 251) as u8
}

/// A file of `len` pattern bytes, open read-write.
fn pattern_file(name: &str, len: usize) -> Result<i32, Failure> {
    let path = make_file(name, b"")?;
    let fd = check_ok!(sys::open(path.as_cstr(), O_RDWR, 0)) as i32;
    let mut chunk = [0u8; PAGE];
    let mut at = 0;
    while at < len {
        let n = PAGE.min(len - at);
        for (i, b) in chunk[..n].iter_mut().enumerate() {
            *b = pattern(at + i);
        }
        check_eq!(sys::pwrite64(fd, &chunk[..n], at as i64), Ok(n));
        at += n;
    }
    Ok(fd)
}

/// A private anonymous buffer of `len` bytes, as a slice (unmapped by the caller).
fn buffer(len: usize) -> Result<&'static mut [u8], Failure> {
    let addr = map_anon(len, PROT_READ | PROT_WRITE)?;
    // SAFETY: the pages just mapped, used by the test alone until it unmaps them.
    Ok(unsafe { core::slice::from_raw_parts_mut(addr as *mut u8, len) })
}

fn map_file(fd: i32, len: usize, prot: usize, flags: usize) -> Result<usize, Failure> {
    // SAFETY: not MAP_FIXED: the kernel picks the address.
    Ok(check_ok!(unsafe { sys::mmap(0, len, prot, flags, fd, 0) }))
}

fn byte(addr: usize, at: usize) -> u8 {
    // SAFETY: `addr` is a live mapping of the test covering `at`.
    unsafe { ((addr + at) as *const u8).read_volatile() }
}

fn store(addr: usize, at: usize, value: u8) {
    // SAFETY: `addr` is a live writable mapping of the test covering `at`.
    unsafe { ((addr + at) as *mut u8).write_volatile(value) }
}

fn msync(addr: usize, len: usize) -> ulib::errno::Result {
    // SAFETY: no memory is passed.
    sys::ret(unsafe { syscall3(nr::MSYNC, addr, len, MS_SYNC) })
}

/// Page `index` of the file read with O_DIRECT (around the page cache), into an aligned
/// buffer as O_DIRECT needs.
fn direct_page(path: &Path, index: usize) -> Result<[u8; PAGE], Failure> {
    let fd = check_ok!(sys::open(path.as_cstr(), O_RDONLY | O_DIRECT, 0)) as i32;
    let buf = buffer(PAGE)?;
    check_eq!(sys::pread64(fd, buf, (index * PAGE) as i64), Ok(PAGE));
    let mut out = [0u8; PAGE];
    out.copy_from_slice(buf);
    unmap(buf.as_ptr() as usize, PAGE)?;
    check_ok!(sys::close(fd));
    Ok(out)
}

fn shared_mapping_and_read_see_the_same_bytes() -> TestResult {
    let fd = pattern_file("filemap-same", 3 * PAGE)?;
    let m = map_file(fd, 3 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED)?;
    for at in [0, 1, PAGE - 1, PAGE, 2 * PAGE + 7, 3 * PAGE - 1] {
        check_eq!(byte(m, at), pattern(at));
    }
    // A store is what read(2) returns, with no msync.
    store(m, 5000, b'X');
    let mut buf = [0u8; 3];
    check_eq!(sys::pread64(fd, &mut buf, 4999), Ok(3));
    check_eq!(buf, [pattern(4999), b'X', pattern(5001)]);
    // A write is what the mapping shows.
    check_eq!(sys::pwrite64(fd, b"abc", 100), Ok(3));
    check_eq!([byte(m, 100), byte(m, 101), byte(m, 102)], *b"abc");
    unmap(m, 3 * PAGE)?;
    check_ok!(sys::close(fd));
    Ok(())
}

fn stores_reach_the_file_on_msync_and_munmap() -> TestResult {
    let fd = pattern_file("filemap-sync", 2 * PAGE)?;
    let path = scratch("filemap-sync");
    let m = map_file(fd, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED)?;
    store(m, 10, b'S');
    check_eq!(msync(m, 2 * PAGE), Ok(0));
    check_eq!(direct_page(&path, 0)?[10], b'S');
    // A store after the writeback reaches the file at the next msync too (the page is
    // marked again when it is stored into).
    store(m, 11, b'T');
    check_eq!(msync(m, 2 * PAGE), Ok(0));
    check_eq!(direct_page(&path, 0)?[10..12], *b"ST");
    // munmap without msync: an O_DIRECT read still finds the store (Linux writes the
    // range back before a direct read; we write back at munmap).
    store(m, PAGE + 20, b'U');
    unmap(m, 2 * PAGE)?;
    let page = direct_page(&path, 1)?;
    check_eq!((page[20], page[21]), (b'U', pattern(PAGE + 21)));
    check_ok!(sys::close(fd));
    Ok(())
}

fn direct_write_is_seen_by_mappings_and_reads() -> TestResult {
    let fd = pattern_file("filemap-direct", 2 * PAGE)?;
    let path = scratch("filemap-direct");
    let m = map_file(fd, 2 * PAGE, PROT_READ, MAP_SHARED)?;
    let mut buf = [0u8; 8];
    check_eq!(sys::pread64(fd, &mut buf, PAGE as i64), Ok(8)); // cached now
    check_eq!(byte(m, PAGE), pattern(PAGE));
    let dfd = check_ok!(sys::open(path.as_cstr(), O_RDWR | O_DIRECT, 0)) as i32;
    let data = buffer(PAGE)?;
    data.fill(b'D');
    check_eq!(sys::pwrite64(dfd, data, PAGE as i64), Ok(PAGE));
    check_eq!((byte(m, PAGE), byte(m, 2 * PAGE - 1), byte(m, PAGE - 1)), (b'D', b'D', pattern(PAGE - 1)));
    check_eq!(sys::pread64(fd, &mut buf, PAGE as i64 + 100), Ok(8));
    check_eq!(buf, [b'D'; 8]);
    unmap(data.as_ptr() as usize, PAGE)?;
    unmap(m, 2 * PAGE)?;
    check_ok!(sys::close(dfd));
    check_ok!(sys::close(fd));
    Ok(())
}

/// A buffered write that has not been synced is seen by an O_DIRECT read (Linux writes
/// the range back first; so does a write-back cache here).
fn buffered_write_is_seen_by_a_direct_read() -> TestResult {
    let fd = pattern_file("filemap-wb", 2 * PAGE)?;
    let path = scratch("filemap-wb");
    check_eq!(sys::pwrite64(fd, b"WRITTEN", PAGE as i64 + 10), Ok(7));
    let page = direct_page(&path, 1)?;
    check_eq!(&page[10..17], b"WRITTEN");
    check_eq!((page[9], page[17]), (pattern(PAGE + 9), pattern(PAGE + 17)));
    check_ok!(sys::close(fd));
    Ok(())
}

fn private_mapping_is_a_copy() -> TestResult {
    let fd = pattern_file("filemap-private", PAGE)?;
    let p = map_file(fd, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE)?;
    let s = map_file(fd, PAGE, PROT_READ, MAP_SHARED)?;
    check_eq!(byte(p, 9), pattern(9));
    store(p, 9, b'P');
    check_eq!(byte(p, 9), b'P');
    check_eq!(byte(s, 9), pattern(9));
    let mut buf = [0u8; 1];
    check_eq!(sys::pread64(fd, &mut buf, 9), Ok(1));
    check_eq!(buf[0], pattern(9));
    unmap(p, PAGE)?;
    unmap(s, PAGE)?;
    check_ok!(sys::close(fd));
    Ok(())
}

fn mappings_outlive_close_and_share_pages() -> TestResult {
    let fd = pattern_file("filemap-close", PAGE)?;
    let path = scratch("filemap-close");
    let a = map_file(fd, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED)?;
    check_ok!(sys::close(fd));
    // The same file opened again: its mapping has the same pages.
    let fd = check_ok!(sys::open(path.as_cstr(), O_RDWR, 0)) as i32;
    let b = map_file(fd, PAGE, PROT_READ, MAP_SHARED)?;
    store(a, 77, b'A');
    check_eq!(byte(b, 77), b'A');
    check_eq!(msync(a, PAGE), Ok(0));
    check_eq!(direct_page(&path, 0)?[77], b'A');
    unmap(a, PAGE)?;
    unmap(b, PAGE)?;
    check_ok!(sys::close(fd));
    Ok(())
}

fn child_stores_through_a_shared_file_mapping() -> TestResult {
    let fd = pattern_file("filemap-fork", PAGE)?;
    let m = map_file(fd, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED)?;
    let status = run_child(|| {
        store(m, 1, b'C');
        0
    })?;
    check_eq!(status.exit_code(), Some(0));
    check_eq!(byte(m, 1), b'C');
    let mut buf = [0u8; 1];
    check_eq!(sys::pread64(fd, &mut buf, 1), Ok(1));
    check_eq!(buf[0], b'C');
    unmap(m, PAGE)?;
    check_ok!(sys::close(fd));
    Ok(())
}

fn truncate_then_extend_reads_zeros() -> TestResult {
    let fd = pattern_file("filemap-trunc", 2 * PAGE)?;
    let buf = buffer(2 * PAGE)?;
    check_eq!(sys::pread64(fd, buf, 0), Ok(2 * PAGE)); // cached
    check_ok!(sys::ftruncate(fd, 100));
    check_ok!(sys::ftruncate(fd, 2 * PAGE as i64));
    buf.fill(0xee);
    check_eq!(sys::pread64(fd, buf, 0), Ok(2 * PAGE));
    check_eq!(buf[99], pattern(99));
    check!(buf[100..].iter().all(|&b| b == 0), "bytes past the truncation are not zero");
    unmap(buf.as_ptr() as usize, 2 * PAGE)?;
    check_ok!(sys::close(fd));
    Ok(())
}

fn reads_of_odd_sizes_match_what_was_written() -> TestResult {
    const LEN: usize = 600 * 1024 + 123;
    let fd = pattern_file("filemap-odd", LEN)?;
    check_ok!(sys::fsync(fd));
    // Drop what is cached (where the kernel can), so the reads below fill the cache.
    // SAFETY: no memory is passed.
    check_eq!(sys::ret(unsafe { ulib::sys::syscall4(nr::FADVISE64, fd as usize, 0, 0, POSIX_FADV_DONTNEED) }), Ok(0));
    let buf = &mut buffer(72 * 1024)?[..70001];
    let mut at = 3usize;
    while at < LEN {
        let n = check_ok!(sys::pread64(fd, buf, at as i64));
        check_eq!(n, buf.len().min(LEN - at));
        if let Some(i) = (0..n).find(|&i| buf[i] != pattern(at + i)) {
            fail!("byte {} reads {:#x}, wrote {:#x}", at + i, buf[i], pattern(at + i));
        }
        at += n + 4097;
    }
    let mut tail = [0u8; 16];
    check_eq!(sys::pread64(fd, &mut tail, (LEN - 5) as i64), Ok(5));
    check_eq!(sys::pread64(fd, &mut tail, LEN as i64), Ok(0));
    unmap(buf.as_ptr() as usize, 72 * 1024)?;
    check_ok!(sys::close(fd));
    Ok(())
}

/// Drops the file's clean cached pages where the kernel can (POSIX_FADV_DONTNEED after
/// fsync), so what follows reads them from the file system.
fn drop_cache(fd: i32) -> TestResult {
    check_ok!(sys::fsync(fd));
    // SAFETY: no memory is passed.
    check_eq!(sys::ret(unsafe { ulib::sys::syscall4(nr::FADVISE64, fd as usize, 0, 0, POSIX_FADV_DONTNEED) }), Ok(0));
    Ok(())
}

/// `len` bytes at `addr`, a live mapping of the test.
fn mapped(addr: usize, len: usize) -> &'static mut [u8] {
    // SAFETY: the caller's mapping covers the range and outlives the use.
    unsafe { core::slice::from_raw_parts_mut(addr as *mut u8, len) }
}

fn faults_read_pages_of_a_file_not_cached() -> TestResult {
    const LEN: usize = 40 * PAGE + 100;
    const MAPPED: usize = 41 * PAGE;
    let fd = pattern_file("filemap-fault", LEN)?;
    drop_cache(fd)?;
    let shared = map_file(fd, MAPPED, PROT_READ, MAP_SHARED)?;
    let private = map_file(fd, MAPPED, PROT_READ | PROT_WRITE, MAP_PRIVATE)?;
    // Last page first, so faults meet pages readahead has not brought.
    for page in (0..41).rev() {
        let at = (page * PAGE + page * 37 % PAGE).min(LEN - 1);
        check_eq!(byte(shared, at), pattern(at));
        check_eq!(byte(private, at), pattern(at));
    }
    // The bytes of the last page past the end read as zeros.
    check_eq!(byte(shared, LEN), 0);
    check_eq!(byte(private, MAPPED - 1), 0);
    // A store into the private mapping copies the page; the file keeps its byte.
    store(private, 5, 0xaa);
    check_eq!(byte(shared, 5), pattern(5));
    check_eq!(byte(private, 5), 0xaa);
    unmap(shared, MAPPED)?;
    unmap(private, MAPPED)?;
    check_ok!(sys::close(fd));
    Ok(())
}

fn touching_a_mapping_past_the_end_of_the_file_is_sigbus() -> TestResult {
    let fd = pattern_file("filemap-sigbus", PAGE + 10)?;
    for flags in [MAP_SHARED, MAP_PRIVATE] {
        let m = map_file(fd, 3 * PAGE, PROT_READ, flags)?;
        check_eq!(byte(m, PAGE + 9), pattern(PAGE + 9));
        check_eq!(byte(m, PAGE + 10), 0);
        let status = run_child(|| i32::from(byte(m, 2 * PAGE)))?;
        check_eq!(status.term_signal(), Some(SIGBUS));
        // A syscall copying from there gets EFAULT.
        check_err!(sys::pwrite64(fd, mapped(m + 2 * PAGE, 16), 0), EFAULT);
        unmap(m, 3 * PAGE)?;
    }
    check_ok!(sys::close(fd));
    // A page truncation cuts off is unmapped: touching it is a SIGBUS too.
    for (name, flags) in [("filemap-cut-shared", MAP_SHARED), ("filemap-cut-private", MAP_PRIVATE)] {
        let fd = pattern_file(name, 2 * PAGE)?;
        let m = map_file(fd, 2 * PAGE, PROT_READ, flags)?;
        check_eq!(byte(m, PAGE + 1), pattern(PAGE + 1));
        check_ok!(sys::ftruncate(fd, 10));
        check_eq!(byte(m, 9), pattern(9));
        check_eq!(byte(m, 10), 0);
        let status = run_child(|| i32::from(byte(m, PAGE + 1)))?;
        check_eq!(status.term_signal(), Some(SIGBUS));
        unmap(m, 2 * PAGE)?;
        check_ok!(sys::close(fd));
    }
    Ok(())
}

fn mapping_larger_than_memory_reads_only_what_it_touches() -> TestResult {
    // More than the memory of any VM the tests boot.
    const SIZE: usize = 8 << 30;
    let path = make_file("filemap-huge", b"")?;
    let fd = check_ok!(sys::open(path.as_cstr(), O_RDWR, 0)) as i32;
    check_eq!(sys::pwrite64(fd, b"tail", (SIZE - 4) as i64), Ok(4));
    for flags in [MAP_SHARED, MAP_PRIVATE] {
        let m = map_file(fd, SIZE, PROT_READ, flags)?;
        check_eq!(byte(m, 0), 0);
        check_eq!(byte(m, SIZE / 2 + 1), 0);
        check_eq!(mapped(m + SIZE - 4, 4), b"tail");
        unmap(m, SIZE)?;
    }
    check_ok!(sys::close(fd));
    check_ok!(sys::unlink(path.as_cstr()));
    Ok(())
}

fn copies_from_and_into_mappings_of_files_not_cached() -> TestResult {
    const LEN: usize = 16 * PAGE;
    let out_path = make_file("filemap-out", b"")?;
    let out = check_ok!(sys::open(out_path.as_cstr(), O_RDWR, 0)) as i32;
    let direct = check_ok!(sys::open(out_path.as_cstr(), O_RDWR | O_DIRECT, 0)) as i32;
    // A buffered write, then an O_DIRECT one, from mappings of files just dropped from
    // the cache (the write's copy faults them in).
    for (name, fd, at) in [("filemap-src", out, 0), ("filemap-src-direct", direct, LEN)] {
        let src = pattern_file(name, LEN)?;
        drop_cache(src)?;
        let m = map_file(src, LEN, PROT_READ, MAP_SHARED)?;
        check_eq!(sys::pwrite64(fd, mapped(m, LEN), at as i64), Ok(LEN));
        unmap(m, LEN)?;
        check_ok!(sys::close(src));
    }
    let buf = buffer(2 * LEN)?;
    check_eq!(sys::pread64(out, buf, 0), Ok(2 * LEN));
    if let Some(i) = (0..2 * LEN).find(|&i| buf[i] != pattern(i % LEN)) {
        fail!("byte {} reads {:#x}, wrote {:#x}", i, buf[i], pattern(i % LEN));
    }
    // A read(2) into a private mapping of a file not cached: each page is copied on
    // the write fault, and the file keeps its bytes.
    let zs = make_file("filemap-zs", &[b'Z'; 2 * PAGE])?;
    let z = check_ok!(sys::open(zs.as_cstr(), O_RDONLY, 0)) as i32;
    let src = pattern_file("filemap-cow", 2 * PAGE)?;
    drop_cache(src)?;
    let m = map_file(src, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE)?;
    check_eq!(sys::pread64(z, mapped(m, 2 * PAGE), 0), Ok(2 * PAGE));
    check!(mapped(m, 2 * PAGE).iter().all(|&b| b == b'Z'), "the private mapping does not hold what was read");
    check_eq!(sys::pread64(src, &mut buf[..2 * PAGE], 0), Ok(2 * PAGE));
    check!((0..2 * PAGE).all(|i| buf[i] == pattern(i)), "a read into a private mapping changed the file");
    unmap(m, 2 * PAGE)?;
    unmap(buf.as_ptr() as usize, 2 * LEN)?;
    for fd in [z, src, out, direct] {
        check_ok!(sys::close(fd));
    }
    // Through a pipe: a write from a mapping of a file not cached, and a read into a
    // private mapping of another.
    let from = pattern_file("filemap-pipe-from", PAGE)?;
    let into = make_file("filemap-pipe-into", &[0u8; PAGE])?;
    let into = check_ok!(sys::open(into.as_cstr(), O_RDONLY, 0)) as i32;
    drop_cache(from)?;
    drop_cache(into)?;
    let src = map_file(from, PAGE, PROT_READ, MAP_SHARED)?;
    let dst = map_file(into, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE)?;
    let mut fds = [0i32; 2];
    check_ok!(sys::pipe(&mut fds));
    check_eq!(sys::write(fds[1], mapped(src, PAGE)), Ok(PAGE));
    check_eq!(sys::read(fds[0], mapped(dst, PAGE)), Ok(PAGE));
    check!((0..PAGE).all(|i| byte(dst, i) == pattern(i)), "the pipe did not carry the mapped bytes");
    unmap(src, PAGE)?;
    unmap(dst, PAGE)?;
    // More than the pipe holds, from a mapping of a file not cached, to a reader in a child.
    const BIG: usize = 64 * PAGE;
    let big = pattern_file("filemap-pipe-big", BIG)?;
    drop_cache(big)?;
    let bm = map_file(big, BIG, PROT_READ, MAP_SHARED)?;
    let mut bfds = [0i32; 2];
    check_ok!(sys::pipe(&mut bfds));
    let reader = fork_child(|| {
        let mut chunk = [0u8; PAGE];
        let mut at = 0;
        while at < BIG {
            match sys::read(bfds[0], &mut chunk) {
                Ok(0) | Err(_) => return 1,
                Ok(n) => {
                    if (0..n).any(|i| chunk[i] != pattern(at + i)) {
                        return 2;
                    }
                    at += n;
                }
            }
        }
        0
    })?;
    check_eq!(sys::write(bfds[1], mapped(bm, BIG)), Ok(BIG));
    check_eq!(wait_child(reader)?.exit_code(), Some(0));
    unmap(bm, BIG)?;
    for fd in [bfds[0], bfds[1], big] {
        check_ok!(sys::close(fd));
    }
    // And a memory file (tmpfs on Linux, the RAM file system here).
    drop_cache(from)?;
    drop_cache(into)?;
    let src = map_file(from, PAGE, PROT_READ, MAP_SHARED)?;
    let dst = map_file(into, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE)?;
    // SAFETY: a NUL-terminated name; no other memory is passed.
    let mem = check_ok!(sys::ret(unsafe { ulib::sys::syscall2(nr::MEMFD_CREATE, c"filemap".as_ptr() as usize, 0) })) as i32;
    check_eq!(sys::pwrite64(mem, mapped(src, PAGE), 0), Ok(PAGE));
    check_eq!(sys::pread64(mem, mapped(dst, PAGE), 0), Ok(PAGE));
    check!((0..PAGE).all(|i| byte(dst, i) == pattern(i)), "the memory file did not carry the mapped bytes");
    unmap(src, PAGE)?;
    unmap(dst, PAGE)?;
    for fd in [fds[0], fds[1], from, into, mem] {
        check_ok!(sys::close(fd));
    }
    Ok(())
}
