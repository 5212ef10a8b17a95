//! Disk round trip through /dev/vda, with plain syscalls and with io_uring.
//! `blktest [DEVICE]`: reads what the host put at offset 0 and prints it, writes a pattern
//! at 4 KiB with write+fsync and reads it back, then reads 8 blocks at once through
//! io_uring (8 in flight), writes one with WRITE_FIXED and FSYNCs through the ring, and
//! checks that the disk's page cache and O_DIRECT agree (blocks 13-15).
//! Prints `blktest: ok` and exits 0 when every check passes. `blktest DEVICE spin` stops
//! after the fsync, prints `blktest: synced`, writes block 2 without syncing it, prints
//! `blktest: unsynced written` and spins (a test then kills the VMM). `blktest DEVICE
//! eio` reads block 3 with pread and with an io_uring READ and prints both results (a
//! host that fails that range answers -EIO), then exits 0. `blktest DEVICE mq` runs one
//! thread per online CPU, pinned there, each writing its own blocks with O_DIRECT and
//! reading them back (each CPU submits on its own request queue), then prints `blktest:
//! mq ok on N CPUs`. `blktest DEVICE qd DEPTH COUNT` reads COUNT blocks with O_DIRECT
//! through io_uring keeping DEPTH (at most 32) in flight, each CQE's buffer checked
//! against a pread of the same block made first (user_data: read number << 8 | buffer),
//! enters the ring once more at the end (so a trace sees every CQE consumed), and prints
//! `blktest: qd DEPTH: COUNT reads ok` (what `vmm run --trace` is tested with).
#![no_std]
#![no_main]

use ulib::uring::{self, Ring};
use ulib::{Args, Errno, println, sys};

ulib::entry!(main);

const BLOCK: usize = 4096;

fn pattern(block: usize, i: usize) -> u8 {
    (block * 31 + i * 7) as u8
}

fn main(args: &Args) -> i32 {
    let dev = args.iter().nth(1).unwrap_or("/dev/vda");
    let spin = args.iter().nth(2) == Some("spin");
    if args.iter().nth(2) == Some("eio") {
        return match read_errors(dev) {
            Ok(()) => 0,
            Err((what, e)) => {
                println!("blktest: {what}: {e}");
                1
            }
        };
    }
    if args.iter().nth(2) == Some("mq") {
        return match mq(dev) {
            Ok(cpus) => {
                println!("blktest: mq ok on {cpus} CPUs");
                0
            }
            Err((what, e)) => {
                println!("blktest: {what}: {e}");
                1
            }
        };
    }
    if args.iter().nth(2) == Some("qd") {
        let num = |i: usize| args.iter().nth(i).and_then(|s| s.parse::<usize>().ok());
        let (Some(depth @ 1..=32), Some(count)) = (num(3), num(4)) else {
            println!("blktest: usage: blktest DEVICE qd DEPTH(1-32) COUNT");
            return 2;
        };
        return match queue_depth(dev, depth, count) {
            Ok(()) => {
                println!("blktest: qd {depth}: {count} reads ok");
                0
            }
            Err((what, e)) => {
                println!("blktest: {what}: {e}");
                1
            }
        };
    }
    match run(dev, spin) {
        Ok(()) => {
            println!("blktest: ok");
            0
        }
        Err((what, e)) => {
            println!("blktest: {what}: {e}");
            1
        }
    }
}

#[repr(C, align(4096))]
struct Page([u8; BLOCK]);

static mut BUFS: [Page; 9] = [const { Page([0; BLOCK]) }; 9];

fn open(dev: &str) -> Result<i32, (&'static str, Errno)> {
    open_with(dev, 0)
}

/// Linux's O_DIRECT on x86-64.
const O_DIRECT: i32 = 0o40000;

fn open_with(dev: &str, flags: i32) -> Result<i32, (&'static str, Errno)> {
    let mut path = [0u8; 64];
    let len = dev.len().min(path.len() - 1);
    path[..len].copy_from_slice(&dev.as_bytes()[..len]);
    let cpath = core::ffi::CStr::from_bytes_until_nul(&path).map_err(|_| ("path", Errno::EINVAL))?;
    Ok(sys::open(cpath, ulib::uapi::O_RDWR | flags, 0).map_err(|e| ("open", e))? as i32)
}

/// Whether `buf` holds block `blk`'s pattern.
fn holds(buf: &[u8], blk: usize) -> bool {
    buf.iter().enumerate().all(|(i, &b)| b == pattern(blk, i))
}

/// The disk's page cache and O_DIRECT agree, as on Linux: a buffered write is seen by
/// an O_DIRECT read; an O_DIRECT write (pwrite, and an io_uring WRITE) by a buffered read
/// of a block that was cached before it.
fn coherence(dev: &str, fd: i32, bufs: &mut [Page; 9], ring: &mut Ring) -> Result<(), (&'static str, Errno)> {
    let dfd = open_with(dev, O_DIRECT)?;
    let [out, back, ..] = bufs;
    for (i, b) in out.0.iter_mut().enumerate() {
        *b = pattern(13, i);
    }
    sys::pwrite64(fd, &out.0, (13 * BLOCK) as i64).map_err(|e| ("pwrite 13", e))?;
    sys::pread64(dfd, &mut back.0, (13 * BLOCK) as i64).map_err(|e| ("O_DIRECT pread 13", e))?;
    if !holds(&back.0, 13) {
        return Err(("an O_DIRECT read after a buffered write", Errno::EIO));
    }
    sys::pread64(fd, &mut back.0, (14 * BLOCK) as i64).map_err(|e| ("pread 14", e))?;
    for (i, b) in out.0.iter_mut().enumerate() {
        *b = pattern(14, i);
    }
    sys::pwrite64(dfd, &out.0, (14 * BLOCK) as i64).map_err(|e| ("O_DIRECT pwrite 14", e))?;
    sys::pread64(fd, &mut back.0, (14 * BLOCK) as i64).map_err(|e| ("pread 14 again", e))?;
    if !holds(&back.0, 14) {
        return Err(("a buffered read after an O_DIRECT write", Errno::EIO));
    }
    sys::pread64(fd, &mut back.0, (15 * BLOCK) as i64).map_err(|e| ("pread 15", e))?;
    for (i, b) in out.0.iter_mut().enumerate() {
        *b = pattern(15, i);
    }
    let sqe = ring.get_sqe().ok_or(("get_sqe", Errno::EBUSY))?;
    uring::prep_rw(sqe, uring::IORING_OP_WRITE, dfd, out.0.as_ptr() as usize, BLOCK as u32, (15 * BLOCK) as u64);
    ring.submit_and_wait(1).map_err(|e| ("submit O_DIRECT write", e))?;
    let cqe = ring.wait_cqe().map_err(|e| ("wait", e))?;
    if cqe.res != BLOCK as i32 {
        println!("blktest: O_DIRECT io_uring write: res {}", cqe.res);
        return Err(("O_DIRECT io_uring write", Errno::EIO));
    }
    sys::pread64(fd, &mut back.0, (15 * BLOCK) as i64).map_err(|e| ("pread 15 again", e))?;
    if !holds(&back.0, 15) {
        return Err(("a buffered read after an io_uring O_DIRECT write", Errno::EIO));
    }
    sys::close(dfd).map_err(|e| ("close O_DIRECT", e))?;
    println!("blktest: page cache and O_DIRECT agree");
    Ok(())
}

static mut QD_BUFS: [Page; 32] = [const { Page([0; BLOCK]) }; 32];
static mut QD_EXPECT: [Page; 64] = [const { Page([0; BLOCK]) }; 64];

/// `count` O_DIRECT reads of blocks 16.. (wrapping at 80), `depth` in flight; each
/// read's data is checked against what pread read of the same block beforehand.
fn queue_depth(dev: &str, depth: usize, count: usize) -> Result<(), (&'static str, Errno)> {
    let fd = open(dev)?;
    let dfd = open_with(dev, O_DIRECT)?;
    // SAFETY: this single-threaded mode is the buffers' only user.
    let (bufs, expect) = unsafe { ((&raw mut QD_BUFS).as_mut(), (&raw mut QD_EXPECT).as_mut()) };
    let (bufs, expect) = (bufs.expect("a static is never null"), expect.expect("a static is never null"));
    for (i, page) in expect.iter_mut().enumerate() {
        sys::pread64(fd, &mut page.0, ((16 + i) * BLOCK) as i64).map_err(|e| ("pread", e))?;
    }
    let mut ring = Ring::new(depth as u32).map_err(|e| ("io_uring_setup", e))?;
    // Reads complete in any order: a buffer is reused only once its read has completed.
    let mut free: [usize; 32] = core::array::from_fn(|i| i);
    let mut nfree = depth;
    let (mut queued, mut done) = (0, 0);
    while done < count {
        while queued < count && nfree > 0 {
            nfree -= 1;
            let b = free[nfree];
            let buf = bufs[b].0.as_mut_ptr() as usize;
            let sqe = ring.get_sqe().ok_or(("get_sqe", Errno::EBUSY))?;
            uring::prep_rw(sqe, uring::IORING_OP_READ, dfd, buf, BLOCK as u32, ((16 + queued % 64) * BLOCK) as u64);
            sqe.user_data = (queued << 8 | b) as u64;
            queued += 1;
        }
        ring.submit_and_wait(1).map_err(|e| ("submit", e))?;
        while let Some(cqe) = ring.peek_cqe() {
            ring.cqe_seen();
            let (n, b) = ((cqe.user_data >> 8) as usize, (cqe.user_data & 0xff) as usize);
            if cqe.res != BLOCK as i32 {
                println!("blktest: qd read {n}: res {}", cqe.res);
                return Err(("qd read", Errno::EIO));
            }
            if bufs[b].0 != expect[n % 64].0 {
                return Err(("qd read: data differs from pread", Errno::EIO));
            }
            free[nfree] = b;
            nfree += 1;
            done += 1;
        }
    }
    // One more entry: the kernel sees the CQ head past every CQE.
    ring.submit().map_err(|e| ("final enter", e))?;
    Ok(())
}

/// Block 3 by pread and by io_uring: prints each result (bytes or errno).
fn read_errors(dev: &str) -> Result<(), (&'static str, Errno)> {
    let fd = open(dev)?;
    let mut buf = [0u8; BLOCK];
    match sys::pread64(fd, &mut buf, (3 * BLOCK) as i64) {
        Ok(n) => println!("blktest: pread block 3: {n} bytes"),
        Err(e) => println!("blktest: pread block 3: error {}", e.0),
    }
    let mut ring = Ring::new(4).map_err(|e| ("io_uring_setup", e))?;
    let sqe = ring.get_sqe().ok_or(("get_sqe", Errno::EBUSY))?;
    uring::prep_rw(sqe, uring::IORING_OP_READ, fd, buf.as_mut_ptr() as usize, BLOCK as u32, (3 * BLOCK) as u64);
    ring.submit_and_wait(1).map_err(|e| ("submit read", e))?;
    let cqe = ring.wait_cqe().map_err(|e| ("wait", e))?;
    println!("blktest: io_uring read block 3: res {}", cqe.res);
    // The blocks around it still read.
    sys::pread64(fd, &mut buf, (4 * BLOCK) as i64).map_err(|e| ("pread block 4", e))?;
    println!("blktest: eio done");
    Ok(())
}

fn run(dev: &str, spin: bool) -> Result<(), (&'static str, Errno)> {
    let fd = open(dev)?;

    let mut head = [0u8; 16];
    sys::pread64(fd, &mut head, 0).map_err(|e| ("pread head", e))?;
    let end = head.iter().position(|&b| b == 0).unwrap_or(head.len());
    println!("blktest: host wrote {:?}", core::str::from_utf8(&head[..end]).unwrap_or("?"));

    // SAFETY: single-threaded program; these buffers are only used here.
    let bufs = unsafe { (&raw mut BUFS).as_mut() }.expect("a static is never null");
    for (i, b) in bufs[0].0.iter_mut().enumerate() {
        *b = pattern(1, i);
    }
    let n = sys::pwrite64(fd, &bufs[0].0, BLOCK as i64).map_err(|e| ("pwrite", e))?;
    sys::fsync(fd).map_err(|e| ("fsync", e))?;
    let mut back = [0u8; 512];
    sys::pread64(fd, &mut back, BLOCK as i64 + 512).map_err(|e| ("pread back", e))?;
    if n != BLOCK || back.iter().enumerate().any(|(i, &b)| b != pattern(1, i + 512)) {
        return Err(("write/read back mismatch", Errno::EIO));
    }
    println!("blktest: write + fsync + read back ok");
    if spin {
        println!("blktest: synced");
        let data: [u8; BLOCK] = core::array::from_fn(|i| pattern(2, i));
        sys::pwrite64(fd, &data, (2 * BLOCK) as i64).map_err(|e| ("pwrite unsynced", e))?;
        println!("blktest: unsynced written");
        loop {
            core::hint::spin_loop();
        }
    }

    // Blocks 2..10 through io_uring, all in flight at once.
    for blk in 2..10 {
        let data: [u8; BLOCK] = core::array::from_fn(|i| pattern(blk, i));
        sys::pwrite64(fd, &data, (blk * BLOCK) as i64).map_err(|e| ("pwrite blocks", e))?;
    }
    let mut ring = Ring::new(16).map_err(|e| ("io_uring_setup", e))?;
    for (k, blk) in (2..10).enumerate() {
        let sqe = ring.get_sqe().ok_or(("get_sqe", Errno::EBUSY))?;
        uring::prep_rw(sqe, uring::IORING_OP_READ, fd, bufs[k].0.as_mut_ptr() as usize, BLOCK as u32, (blk * BLOCK) as u64);
        sqe.user_data = blk as u64;
    }
    ring.submit_and_wait(8).map_err(|e| ("submit reads", e))?;
    for _ in 0..8 {
        let cqe = ring.wait_cqe().map_err(|e| ("wait", e))?;
        let blk = cqe.user_data as usize;
        let buf = &bufs[blk - 2].0;
        if cqe.res != BLOCK as i32 || buf.iter().enumerate().any(|(i, &b)| b != pattern(blk, i)) {
            println!("blktest: block {blk}: res {}", cqe.res);
            return Err(("io_uring read mismatch", Errno::EIO));
        }
    }
    println!("blktest: 8 io_uring reads in flight ok");

    // WRITE_FIXED from a registered buffer, then FSYNC, linked.
    let iov = [bufs[8].0.as_mut_ptr() as u64, BLOCK as u64];
    // SAFETY: one iovec describing our static buffer.
    unsafe { ring.register(uring::IORING_REGISTER_BUFFERS, iov.as_ptr() as usize, 1) }.map_err(|e| ("register buffers", e))?;
    for (i, b) in bufs[8].0.iter_mut().enumerate() {
        *b = pattern(12, i);
    }
    let sqe = ring.get_sqe().ok_or(("get_sqe", Errno::EBUSY))?;
    uring::prep_rw(sqe, uring::IORING_OP_WRITE_FIXED, fd, bufs[8].0.as_ptr() as usize, BLOCK as u32, (12 * BLOCK) as u64);
    sqe.flags = uring::IOSQE_IO_LINK;
    sqe.user_data = 1;
    let sqe = ring.get_sqe().ok_or(("get_sqe", Errno::EBUSY))?;
    sqe.opcode = uring::IORING_OP_FSYNC;
    sqe.fd = fd;
    sqe.user_data = 2;
    ring.submit_and_wait(2).map_err(|e| ("submit write", e))?;
    for _ in 0..2 {
        let cqe = ring.wait_cqe().map_err(|e| ("wait", e))?;
        let want = if cqe.user_data == 1 { BLOCK as i32 } else { 0 };
        if cqe.res != want {
            println!("blktest: cqe {} res {}", cqe.user_data, cqe.res);
            return Err(("WRITE_FIXED/FSYNC", Errno::EIO));
        }
    }
    println!("blktest: WRITE_FIXED + FSYNC ok");
    coherence(dev, fd, bufs, &mut ring)?;
    sys::close(fd).map_err(|e| ("close", e))?;
    Ok(())
}

/// Blocks each CPU's thread writes and reads back in `mq`.
const MQ_ROUNDS: usize = 32;

/// One thread per online CPU, pinned there: O_DIRECT writes of its own blocks (from 64
/// on), each read back and compared. Returns how many CPUs took part.
fn mq(dev: &str) -> Result<u32, (&'static str, Errno)> {
    let mut mask = [0u8; 8];
    sys::sched_getaffinity(0, &mut mask).map_err(|e| ("sched_getaffinity", e))?;
    let all = u64::from_le_bytes(mask);
    let fd = open_with(dev, O_DIRECT)?;
    let mut threads = [const { None }; 64];
    for cpu in (0..64usize).filter(|c| all & (1 << c) != 0) {
        let t = ulib::thread::spawn(move || {
            if sys::sched_setaffinity(0, 1 << cpu).is_err() {
                return 1;
            }
            let mut page = Page([0; BLOCK]);
            for r in 0..MQ_ROUNDS {
                let blk = 64 + cpu * MQ_ROUNDS + r;
                for (i, b) in page.0.iter_mut().enumerate() {
                    *b = pattern(blk, i);
                }
                if sys::pwrite64(fd, &page.0, (blk * BLOCK) as i64) != Ok(BLOCK) {
                    return 2;
                }
                page.0.fill(0);
                if sys::pread64(fd, &mut page.0, (blk * BLOCK) as i64) != Ok(BLOCK) || !holds(&page.0, blk) {
                    return 3;
                }
            }
            0
        });
        threads[cpu] = Some(t.map_err(|e| ("spawn", e))?);
    }
    let mut cpus = 0;
    for (cpu, t) in threads.into_iter().enumerate() {
        let Some(t) = t else { continue };
        match t.join() {
            0 => cpus += 1,
            code => {
                println!("blktest: the thread on CPU {cpu} failed at step {code}");
                return Err(("mq", Errno::EIO));
            }
        }
    }
    sys::close(fd).map_err(|e| ("close", e))?;
    Ok(cpus)
}
