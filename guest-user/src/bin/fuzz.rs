//! Throws random syscalls with hostile arguments at the kernel, from disposable children.
//! `fuzz [ROUNDS] [CALLS] [SEED]`: each round forks a child that makes CALLS random
//! syscalls (numbers 0..460, arguments drawn from values that tend to find bugs: zero,
//! -1, huge lengths, unmapped, kernel and non-canonical addresses, valid buffers). The
//! parent kills a child that has not finished after 200 ms. The kernel must answer each
//! call with a result or an error and never crash; at the end the parent checks that
//! files and io_uring still work and prints `fuzz: kernel ok`.
#![no_std]
#![no_main]

use ulib::uapi::{O_CREAT, O_RDWR, Timespec};
use ulib::uring::{self, Ring};
use ulib::{Args, println, sys};

ulib::entry!(main);

/// Syscalls a child must not make: signals could kill the parent (pid 1), and fork
/// and clone could multiply children faster than the parent reaps them.
const DENIED: [usize; 11] = [56, 57, 58, 62, 200, 234, 435, 109, 112, 129, 297];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn arg(rng: &mut Rng, buf: usize) -> usize {
    match rng.next() % 16 {
        0 => 0,
        1 => 1,
        2 => usize::MAX,
        3 => (rng.next() % 8) as usize,
        4 => 4096,
        5 => 0x7fff_ffff,
        6 => 0xffff_8000_0000_0000,  // the kernel's direct map
        7 => 0xffff_ffff_8010_0000,  // kernel text
        8 => 0x8000_0000_0000_0000,  // non-canonical
        9 => 0x10,                   // unmapped, low
        10 => buf,                   // a valid buffer
        11 => buf + 4000,            // a valid buffer's end, crossing a page
        12 => (-100i64) as usize,    // AT_FDCWD
        13 => 1 << 40,
        _ => rng.next() as usize,
    }
}

fn child(seed: u64, calls: u32) -> ! {
    let mut rng = Rng(seed | 1);
    let mut buf = [0u8; 8192];
    let buf = buf.as_mut_ptr() as usize;
    for _ in 0..calls {
        let nr = (rng.next() % 460) as usize;
        if DENIED.contains(&nr) {
            continue;
        }
        let a: [usize; 6] = core::array::from_fn(|_| arg(&mut rng, buf));
        // SAFETY: deliberately hostile; the child is disposable and may well die.
        let _ = unsafe { sys::syscall6(nr, a[0], a[1], a[2], a[3], a[4], a[5]) };
    }
    sys::exit_group(0)
}

fn num(args: &Args, i: usize, default: u64) -> u64 {
    args.iter().nth(i).and_then(|s| s.parse().ok()).unwrap_or(default)
}

fn main(args: &Args) -> i32 {
    let (rounds, calls, seed) = (num(args, 1, 20), num(args, 2, 50) as u32, num(args, 3, 0x5eed));
    let mut rng = Rng(seed);
    let mut killed = 0;
    for round in 0..rounds {
        let child_seed = rng.next();
        let pid = match sys::fork() {
            Ok(0) => child(child_seed, calls),
            Ok(pid) => pid as i32,
            Err(e) => {
                println!("fuzz: fork failed: {e}");
                return 1;
            }
        };
        let mut status = 0;
        let mut done = false;
        for _ in 0..20 {
            if sys::wait4(pid, Some(&mut status), 1).unwrap_or(0) == pid as usize {
                done = true;
                break;
            }
            let _ = sys::nanosleep(&Timespec { tv_sec: 0, tv_nsec: 10_000_000 }, None);
        }
        if !done {
            killed += 1;
            let _ = sys::kill(pid, 9);
            let _ = sys::wait4(pid, Some(&mut status), 0);
        }
        println!("fuzz: round {round}: child {pid} status {status:#x}{}", if done { "" } else { " (killed)" });
    }
    println!("fuzz: {rounds} rounds of {calls} calls, {killed} children killed after 200 ms");
    match check() {
        Ok(()) => {
            println!("fuzz: kernel ok");
            0
        }
        Err((what, e)) => {
            println!("fuzz: after fuzzing, {what} failed: {e}");
            1
        }
    }
}

/// The kernel still does its job: a file round trip and an io_uring NOP.
fn check() -> Result<(), (&'static str, ulib::Errno)> {
    let fd = sys::open(c"/tmp/fuzz-check", O_CREAT | O_RDWR, 0o600).map_err(|e| ("open", e))? as i32;
    sys::pwrite64(fd, b"alive", 0).map_err(|e| ("pwrite", e))?;
    let mut back = [0u8; 5];
    sys::pread64(fd, &mut back, 0).map_err(|e| ("pread", e))?;
    if &back != b"alive" {
        return Err(("read back", ulib::Errno::EIO));
    }
    let mut ring = Ring::new(4).map_err(|e| ("io_uring_setup", e))?;
    let sqe = ring.get_sqe().ok_or(("get_sqe", ulib::Errno::EBUSY))?;
    sqe.opcode = uring::IORING_OP_NOP;
    sqe.user_data = 7;
    ring.submit_and_wait(1).map_err(|e| ("io_uring_enter", e))?;
    let cqe = ring.wait_cqe().map_err(|e| ("wait", e))?;
    if cqe.user_data != 7 || cqe.res != 0 {
        return Err(("NOP", ulib::Errno::EIO));
    }
    Ok(())
}
