//! Kernel timers seen from user space.
//!
//! ```text
//! timertest uring N ROUNDS      N one-hour io_uring TIMEOUTs, all cancelled, ROUNDS times
//! timertest sleep US COUNT MAX  COUNT sleeps of US microseconds; fails if the median
//!                               takes more than MAX microseconds (or any takes less than US)
//! ```
//!
//! `uring` cancels half of each round's timeouts with TIMEOUT_REMOVE and half with
//! ASYNC_CANCEL and checks every CQE; then N timeouts with count 1 end with one NOP. The kernel's side (its timer structure back to its
//! old size) is checked by the host test with the kernel's `test=timers` report.
//! `sleep` alternates nanosleep and clock_nanosleep(CLOCK_MONOTONIC) and prints the
//! minimum, median and maximum time taken.
#![no_std]
#![no_main]

use ulib::uapi::{CLOCK_MONOTONIC, Timespec};
use ulib::uring::{Cqe, Ring};
use ulib::{Args, Errno, println, sys};

ulib::entry!(main);

const IORING_OP_TIMEOUT: u8 = 11;
const IORING_OP_TIMEOUT_REMOVE: u8 = 12;
const IORING_OP_ASYNC_CANCEL: u8 = 14;
const ECANCELED: i32 = 125;
/// user_data of the cancel requests: this bit plus the index of their timeout.
const CANCEL_TAG: u64 = 1 << 32;

const USAGE: &str = "usage: timertest uring N ROUNDS | timertest sleep US COUNT MAX_US";

fn main(args: &Args) -> i32 {
    let num = |i| args.str(i).and_then(|s| s.parse::<u64>().ok());
    let result = match (args.str(1), num(2), num(3)) {
        (Some("uring"), Some(n), Some(rounds)) if n > 0 && n <= 16384 => uring(n as u32, rounds),
        (Some("sleep"), Some(us), Some(count)) if count > 0 && count as usize <= MAX_SLEEPS => match num(4) {
            Some(max) => sleep(us, count as usize, max),
            None => Err("missing MAX_US"),
        },
        _ => Err(USAGE),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            println!("timertest: FAILED: {e}");
            1
        }
    }
}

fn now_ns() -> u64 {
    let mut ts = Timespec::default();
    let _ = sys::clock_gettime(CLOCK_MONOTONIC, &mut ts);
    ts.as_nanos() as u64
}

fn uring(n: u32, rounds: u64) -> Result<(), &'static str> {
    let mut ring = Ring::new(n).map_err(|_| "io_uring_setup failed")?;
    if ring.params.sq_entries < n || ring.params.cq_entries < 2 * n {
        return Err("ring smaller than asked");
    }
    let hour = Timespec { tv_sec: 3600, tv_nsec: 0 };
    for round in 0..rounds {
        for i in 0..u64::from(n) {
            let sqe = ring.get_sqe().ok_or("SQ full")?;
            sqe.opcode = IORING_OP_TIMEOUT;
            sqe.addr = &raw const hour as u64;
            sqe.len = 1;
            sqe.user_data = i;
        }
        if ring.submit() != Ok(n as usize) {
            return Err("submitting the timeouts");
        }
        if ring.peek_cqe().is_some() {
            return Err("a one-hour timeout completed at once");
        }
        for i in 0..u64::from(n) {
            let sqe = ring.get_sqe().ok_or("SQ full")?;
            sqe.opcode = if i % 2 == 0 { IORING_OP_TIMEOUT_REMOVE } else { IORING_OP_ASYNC_CANCEL };
            sqe.addr = i;
            sqe.user_data = CANCEL_TAG | i;
        }
        if ring.submit() != Ok(n as usize) {
            return Err("submitting the cancels");
        }
        let (mut cancelled, mut removes) = (0, 0);
        for _ in 0..2 * n {
            let cqe: Cqe = ring.wait_cqe().map_err(|_| "waiting for CQEs")?;
            match (cqe.user_data & CANCEL_TAG != 0, cqe.res) {
                (false, r) if r == -ECANCELED => cancelled += 1,
                (true, 0) => removes += 1,
                _ => {
                    println!("timertest: round {round}: cqe user_data {:#x} res {}", cqe.user_data, cqe.res);
                    return Err("unexpected CQE");
                }
            }
        }
        if cancelled != n || removes != n || ring.peek_cqe().is_some() {
            return Err("wrong number of CQEs");
        }
    }
    println!("timertest: uring: {rounds} rounds of {n} timeouts submitted and cancelled");
    counted(&mut ring, n, &hour)?;
    println!("timertest: uring: {n} counted timeouts completed by one NOP");
    Ok(())
}

/// `n` one-hour timeouts that each wait for one completion, then a NOP: its CQE ends
/// them all (res 0), so their timers must go too.
fn counted(ring: &mut Ring, n: u32, hour: &Timespec) -> Result<(), &'static str> {
    for i in 0..u64::from(n) {
        let sqe = ring.get_sqe().ok_or("SQ full")?;
        sqe.opcode = IORING_OP_TIMEOUT;
        sqe.addr = hour as *const Timespec as u64;
        sqe.len = 1;
        sqe.off = 1;
        sqe.user_data = i;
    }
    if ring.submit() != Ok(n as usize) {
        return Err("submitting the counted timeouts");
    }
    let sqe = ring.get_sqe().ok_or("SQ full")?;
    sqe.opcode = 0; // NOP
    sqe.user_data = CANCEL_TAG;
    for _ in 0..=n {
        let cqe = ring.wait_cqe().map_err(|_| "waiting for CQEs")?;
        if cqe.res != 0 {
            println!("timertest: counted: cqe user_data {:#x} res {}", cqe.user_data, cqe.res);
            return Err("unexpected CQE");
        }
    }
    Ok(())
}

const MAX_SLEEPS: usize = 256;

fn sleep(us: u64, count: usize, max_us: u64) -> Result<(), &'static str> {
    let mut took = [0u64; MAX_SLEEPS];
    let req = Timespec::from_nanos(us as i64 * 1000);
    for (i, t) in took[..count].iter_mut().enumerate() {
        let start = now_ns();
        let r = if i % 2 == 0 { sys::nanosleep(&req, None) } else { sys::clock_nanosleep(CLOCK_MONOTONIC, 0, &req, None) };
        *t = now_ns() - start;
        if r != Ok(0) {
            return Err(if r == Err(Errno::EINTR) { "sleep interrupted" } else { "sleep failed" });
        }
    }
    let took = &mut took[..count];
    took.sort_unstable();
    let (min, median, max) = (took[0] / 1000, took[count / 2] / 1000, took[count - 1] / 1000);
    println!("timertest: sleep {us} us x {count}: min {min} us, median {median} us, max {max} us");
    if took[0] < us * 1000 {
        return Err("a sleep ended before its time");
    }
    if median > max_us {
        return Err("sleeps take too long");
    }
    Ok(())
}
