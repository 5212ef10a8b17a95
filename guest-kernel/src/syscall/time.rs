//! Clocks and sleeping.

use super::Ctx;
use crate::errno::*;
use crate::task::wait::{WaitError, WaitQueue};
use crate::task;
use crate::time::{monotonic_ns, realtime_ns};

const NSEC: u64 = 1_000_000_000;

/// The time of clock `id` in ns, or EINVAL for an unknown clock.
fn clock_ns(id: u64) -> KResult<u64> {
    match id {
        0 | 5 | 8 | 11 => Ok(realtime_ns()),      // REALTIME, _COARSE, _ALARM, TAI
        1 | 4 | 6 | 7 | 9 => Ok(monotonic_ns()), // MONOTONIC, _RAW, _COARSE, BOOTTIME, _ALARM
        2 | 3 => Ok(monotonic_ns()),             // process and thread CPU time (approximated)
        _ => Err(EINVAL),
    }
}

fn write_timespec(addr: u64, ns: u64) -> KResult<()> {
    task::write_user(addr, &[ns / NSEC, ns % NSEC])
}

/// Reads a `timespec` and checks it as Linux does.
pub fn read_timespec(addr: u64) -> KResult<u64> {
    let [sec, nsec]: [u64; 2] = task::read_user(addr)?;
    if (sec as i64) < 0 || nsec >= NSEC {
        return Err(EINVAL);
    }
    Ok(sec.saturating_mul(NSEC).saturating_add(nsec))
}

pub fn clock_gettime(c: &mut Ctx) -> KResult<u64> {
    let ns = clock_ns(c.a[0])?;
    write_timespec(c.a[1], ns).map(|()| 0)
}

pub fn clock_getres(c: &mut Ctx) -> KResult<u64> {
    clock_ns(c.a[0])?;
    if c.a[1] != 0 {
        write_timespec(c.a[1], 1)?;
    }
    Ok(0)
}

pub fn gettimeofday(c: &mut Ctx) -> KResult<u64> {
    let ns = realtime_ns();
    if c.a[0] != 0 {
        task::write_user(c.a[0], &[ns / NSEC, (ns % NSEC) / 1000])?;
    }
    if c.a[1] != 0 {
        task::write_user(c.a[1], &[0u32, 0u32])?;
    }
    Ok(0)
}

pub fn time(c: &mut Ctx) -> KResult<u64> {
    let secs = realtime_ns() / NSEC;
    if c.a[0] != 0 {
        task::write_user(c.a[0], &secs)?;
    }
    Ok(secs)
}

/// Sleeps until monotonic time `deadline`; on a signal, writes the time left to `rem`.
fn sleep_until(deadline: u64, rem: u64) -> KResult<u64> {
    static SLEEPERS: WaitQueue = WaitQueue::new();
    match SLEEPERS.wait_until(Some(deadline), || false) {
        Err(WaitError::TimedOut) | Ok(()) => Ok(0),
        Err(WaitError::Interrupted) => {
            if rem != 0 {
                write_timespec(rem, deadline.saturating_sub(monotonic_ns()))?;
            }
            Err(EINTR)
        }
    }
}

/// `pause()`: sleeps until a signal is delivered (always -EINTR).
pub fn pause(_c: &mut Ctx) -> KResult<u64> {
    static PAUSED: WaitQueue = WaitQueue::new();
    PAUSED.wait_until(None, || false).map_err(|_| EINTR)?;
    Err(EINTR)
}

pub fn nanosleep(c: &mut Ctx) -> KResult<u64> {
    let ns = read_timespec(c.a[0])?;
    sleep_until(monotonic_ns().saturating_add(ns), c.a[1])
}

pub fn clock_nanosleep(c: &mut Ctx) -> KResult<u64> {
    const TIMER_ABSTIME: u64 = 1;
    let (clock, flags, req, rem) = (c.a[0], c.a[1], c.a[2], c.a[3]);
    if clock == 3 {
        return Err(EOPNOTSUPP); // a thread's CPU clock cannot be slept on
    }
    let now = clock_ns(clock)?;
    let ns = read_timespec(req)?;
    let wait = if flags & TIMER_ABSTIME != 0 { ns.saturating_sub(now) } else { ns };
    let rem = if flags & TIMER_ABSTIME != 0 { 0 } else { rem };
    sleep_until(monotonic_ns().saturating_add(wait), rem)
}
