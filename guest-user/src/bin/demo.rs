//! The demo init of the default image: io_uring at work, in a few lines of output.
//! A file is written with one linked WRITE -> FSYNC chain, read back with READV, and a
//! batch of NOPs goes around the rings; each step prints what the kernel answered. The
//! SQEs come from the `ulib::uring::opcode` builders.
#![no_std]
#![no_main]

use ulib::uring::Ring;
use ulib::uring::opcode::{Fsync, Nop, Readv, Write};
use ulib::uring::types::{Fd, Flags, Iovec};
use ulib::{Args, println, sys};

ulib::entry!(main);

fn main(_args: &Args) -> i32 {
    match run() {
        Ok(()) => {
            println!("demo: io_uring works");
            0
        }
        Err(e) => {
            println!("demo: failed: {e}");
            1
        }
    }
}

fn run() -> Result<(), ulib::Errno> {
    println!("demo: pid {}, io_uring_setup(8)", sys::getpid()?);
    let mut ring = Ring::new(8)?;
    println!(
        "demo: ring fd {}: {} SQ entries, {} CQ entries, features {:#x}",
        ring.fd, ring.params.sq_entries, ring.params.cq_entries, ring.params.features
    );

    let fd = sys::open(c"/tmp/demo.txt", ulib::uapi::O_CREAT | ulib::uapi::O_RDWR, 0o644)? as i32;
    let text = b"written by io_uring\n";
    let write = Write::new(Fd(fd), text.as_ptr(), text.len() as u32).build().flags(Flags::IO_LINK).user_data(1);
    let fsync = Fsync::new(Fd(fd)).build().user_data(2);
    if !(ring.push(&write) && ring.push(&fsync)) {
        return Err(ulib::Errno::EBUSY);
    }
    println!("demo: submitted {} (WRITE linked to FSYNC)", ring.submit_and_wait(2)?);
    for _ in 0..2 {
        let cqe = ring.wait_cqe()?;
        println!("demo: cqe user_data={} res={}", cqe.user_data, cqe.res);
    }

    let mut buf = [0u8; 64];
    let iov = [Iovec::from_slice(&mut buf)];
    if !ring.push(&Readv::new(Fd(fd), iov.as_ptr(), 1).build().user_data(3)) {
        return Err(ulib::Errno::EBUSY);
    }
    ring.submit_and_wait(1)?;
    let cqe = ring.wait_cqe()?;
    let n = cqe.res.max(0) as usize;
    println!("demo: READV res={}: {:?}", cqe.res, core::str::from_utf8(&buf[..n]).unwrap_or("?"));

    for i in 0..8 {
        if !ring.push(&Nop::new().build().user_data(100 + i)) {
            return Err(ulib::Errno::EBUSY);
        }
    }
    ring.submit_and_wait(8)?;
    let (mut sum, mut zero) = (0, 0);
    for _ in 0..8 {
        let cqe = ring.wait_cqe()?;
        sum += cqe.user_data;
        zero += usize::from(cqe.res == 0);
    }
    println!("demo: 8 NOPs completed (user_data sum {sum}, {zero} with res=0)");
    sys::close(fd)?;
    Ok(())
}
