//! The console as a terminal, from a program's side: poll and io_uring wait on it, and
//! non-canonical mode's VTIME ends a read with nothing. The host types the lines it waits
//! for (`tests/tests/shell.rs`); each step prints what it saw.
#![no_std]
#![no_main]

use ulib::uapi::{PollFd, POLLIN};
use ulib::uring::opcode;
use ulib::uring::types::Fd;
use ulib::uring::Ring;
use ulib::{println, sys, Args};

ulib::entry!(main);

const TCGETS: usize = 0x5401;
const TCSETS: usize = 0x5402;
const ICANON: u32 = 0o2;
const ECHO: u32 = 0o10;
const VTIME: usize = 5;
const VMIN: usize = 6;

/// The kernel's `struct termios`.
#[repr(C)]
#[derive(Clone, Copy)]
struct Termios {
    flags: [u32; 4],
    line: u8,
    cc: [u8; 19],
}

fn text(buf: &[u8]) -> &str {
    core::str::from_utf8(buf).unwrap_or("?").trim_end()
}

fn main(_: &Args) -> i32 {
    // Nothing typed yet: poll says so at once.
    let mut fds = [PollFd { fd: 0, events: POLLIN, revents: 0 }];
    println!("ttytest: poll before input: {:?}", sys::poll(&mut fds, 0));

    println!("ttytest: polling");
    let n = sys::poll(&mut fds, 60_000);
    let mut buf = [0u8; 64];
    let got = sys::read(0, &mut buf).unwrap_or(0);
    println!("ttytest: poll {n:?} revents {:#x}, read {:?}", fds[0].revents, text(&buf[..got]));

    let Ok(mut ring) = Ring::new(4) else {
        println!("ttytest: no io_uring");
        return 1;
    };
    let read = opcode::Read::new(Fd(0), buf.as_mut_ptr(), buf.len() as u32).offset(u64::MAX).build().user_data(7);
    // `buf` outlives the request: the CQE is reaped below.
    if !ring.push(&read) || ring.submit().is_err() {
        println!("ttytest: cannot submit");
        return 1;
    }
    println!("ttytest: uring armed");
    match ring.wait_cqe() {
        Ok(cqe) => {
            let n = cqe.res.max(0) as usize;
            println!("ttytest: uring read {} {:?}", cqe.res, text(&buf[..n]));
            ring.cqe_seen();
        }
        Err(e) => println!("ttytest: uring wait failed: {e}"),
    }

    // Non-canonical, VMIN 0 and VTIME 3: a read with nothing typed returns 0 after 0.3 s.
    let mut t = Termios { flags: [0; 4], line: 0, cc: [0; 19] };
    // SAFETY: TCGETS writes one termios.
    let _ = unsafe { sys::ioctl(0, TCGETS, &raw mut t as usize) };
    let saved = t;
    t.flags[3] &= !(ICANON | ECHO);
    t.cc[VMIN] = 0;
    t.cc[VTIME] = 3;
    // SAFETY: TCSETS reads one termios.
    let _ = unsafe { sys::ioctl(0, TCSETS, &raw const t as usize) };
    println!("ttytest: vtime read {:?}", sys::read(0, &mut buf));
    // SAFETY: as above.
    let _ = unsafe { sys::ioctl(0, TCSETS, &raw const saved as usize) };
    println!("ttytest: done");
    0
}
