//! Disk round trip through /dev/vda, with plain syscalls and with io_uring.
//! `blktest [DEVICE]`: reads what the host put at offset 0 and prints it, writes a pattern
//! at 4 KiB with write+fsync and reads it back, then reads 8 blocks at once through
//! io_uring (8 in flight), writes one with WRITE_FIXED and FSYNCs through the ring.
//! Prints `blktest: ok` and exits 0 when every check passes. `blktest DEVICE spin` stops
//! after the fsync, prints `blktest: synced` and spins (a test then kills the VMM).
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

fn run(dev: &str, spin: bool) -> Result<(), (&'static str, Errno)> {
    let mut path = [0u8; 64];
    path[..dev.len()].copy_from_slice(dev.as_bytes());
    let cpath = core::ffi::CStr::from_bytes_until_nul(&path).map_err(|_| ("path", Errno::EINVAL))?;
    let fd = sys::open(cpath, ulib::uapi::O_RDWR, 0).map_err(|e| ("open", e))? as i32;

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
    sys::close(fd).map_err(|e| ("close", e))?;
    Ok(())
}
