//! Clocks and sleeping.

use super::Ctx;
use crate::errno::*;
use crate::task::wait::{WaitError, WaitQueue};
use crate::task::{self, itimer, sched};
use crate::time::{monotonic_ns, realtime_ns};

const NSEC: u64 = 1_000_000_000;

/// The time of clock `id` in ns, or EINVAL for an unknown clock. The CPU-time clocks
/// count the time the caller's process (thread) was on the CPU, user and system time
/// alike (`sched` accounts it at each switch).
fn clock_ns(id: u64) -> KResult<u64> {
    match id {
        0 | 5 | 8 | 11 => Ok(realtime_ns()),      // REALTIME, _COARSE, _ALARM, TAI
        1 | 4 | 6 | 7 | 9 => Ok(monotonic_ns()), // MONOTONIC, _RAW, _COARSE, BOOTTIME, _ALARM
        2 => Ok(sched::process_cpu_ns(&task::current_process())),
        3 => Ok(sched::task_cpu_ns(&sched::current())),
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
    // A sleep on the process's CPU clock waits as long in monotonic time (only other
    // threads could use CPU time meanwhile).
    let now = clock_ns(clock)?;
    let ns = read_timespec(req)?;
    let wait = if flags & TIMER_ABSTIME != 0 { ns.saturating_sub(now) } else { ns };
    let rem = if flags & TIMER_ABSTIME != 0 { 0 } else { rem };
    sleep_until(monotonic_ns().saturating_add(wait), rem)
}

// --- timerfd ---

const TFD_TIMER_ABSTIME: u64 = 1;
/// Cancels an absolute REALTIME timer when the clock is set; the clock is never set here,
/// so such a timer simply runs (Linux ignores the flag on other timers too).
const TFD_TIMER_CANCEL_ON_SET: u64 = 2;

pub fn timerfd_create(c: &mut Ctx) -> KResult<u64> {
    use crate::fs::file::{O_CLOEXEC, O_NONBLOCK, O_RDWR};
    let flags = c.a[1];
    if flags & !u64::from(O_CLOEXEC | O_NONBLOCK) != 0 {
        return Err(EINVAL);
    }
    let node = crate::fs::timerfd::new(c.a[0] as u32)?;
    let f = crate::fs::OpenFile::new(node, O_RDWR | (flags as u32 & O_NONBLOCK), alloc::string::String::from("anon_inode:[timerfd]"));
    super::fs::install(f, flags & u64::from(O_CLOEXEC) != 0)
}

/// The timerfd behind `fd` (EBADF: no file; EINVAL: not a timerfd).
fn timerfd(fd: i32) -> KResult<alloc::sync::Arc<crate::fs::OpenFile>> {
    let f = super::fs::file(fd)?;
    if f.node.as_any().downcast_ref::<crate::fs::timerfd::TimerFd>().is_none() {
        return Err(EINVAL);
    }
    Ok(f)
}

fn as_timerfd(f: &crate::fs::OpenFile) -> &crate::fs::timerfd::TimerFd {
    f.node.as_any().downcast_ref().expect("checked by timerfd()")
}

/// Writes a `struct itimerspec` { it_interval, it_value }.
fn write_itimerspec(addr: u64, (value, interval): (u64, u64)) -> KResult<()> {
    task::write_user(addr, &[interval / NSEC, interval % NSEC, value / NSEC, value % NSEC])
}

pub fn timerfd_settime(c: &mut Ctx) -> KResult<u64> {
    // Linux's order: the itimerspec is copied (EFAULT), then flags and times are checked
    // (EINVAL), then the descriptor.
    let [isec, insec, vsec, vnsec]: [u64; 4] = task::read_user(c.a[2])?;
    let valid = |sec: u64, nsec: u64| (sec as i64) >= 0 && nsec < NSEC;
    if c.a[1] & !(TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET) != 0 || !valid(isec, insec) || !valid(vsec, vnsec) {
        return Err(EINVAL);
    }
    let (interval, value) = (isec.saturating_mul(NSEC) + insec, vsec.saturating_mul(NSEC) + vnsec);
    let flags = c.a[1];
    let f = timerfd(c.int(0))?;
    let old = as_timerfd(&f).set(value, interval, flags & TFD_TIMER_ABSTIME != 0);
    if c.a[3] != 0 {
        write_itimerspec(c.a[3], old)?;
    }
    Ok(0)
}

pub fn timerfd_gettime(c: &mut Ctx) -> KResult<u64> {
    let f = timerfd(c.int(0))?;
    write_itimerspec(c.a[1], as_timerfd(&f).get()).map(|()| 0)
}

// --- interval timers (task::itimer) ---

/// Reads a `struct itimerval` { it_interval, it_value } of timevals, checked as Linux's
/// get_itimerval does: (value, interval) in ns.
fn read_itimerval(addr: u64) -> KResult<(u64, u64)> {
    let [isec, iusec, vsec, vusec]: [u64; 4] = task::read_user(addr)?;
    let valid = |sec: u64, usec: u64| (sec as i64) >= 0 && usec < 1_000_000;
    if !valid(isec, iusec) || !valid(vsec, vusec) {
        return Err(EINVAL);
    }
    let ns = |sec: u64, usec: u64| sec.saturating_mul(NSEC).saturating_add(usec * 1000);
    Ok((ns(vsec, vusec), ns(isec, iusec)))
}

/// Writes a `struct itimerval` (microseconds, truncated).
fn write_itimerval(addr: u64, (value, interval): (u64, u64)) -> KResult<()> {
    task::write_user(addr, &[interval / NSEC, interval % NSEC / 1000, value / NSEC, value % NSEC / 1000])
}

pub fn getitimer(c: &mut Ctx) -> KResult<u64> {
    let cur = itimer::get(&task::current_process(), c.a[0] as u32)?;
    write_itimerval(c.a[1], cur).map(|()| 0)
}

/// `setitimer(which, new, old)`: a null `new` disarms, as Linux still allows.
pub fn setitimer(c: &mut Ctx) -> KResult<u64> {
    let (value, interval) = if c.a[1] != 0 { read_itimerval(c.a[1])? } else { (0, 0) };
    let old = itimer::set(&task::current_process(), c.a[0] as u32, value, interval)?;
    if c.a[2] != 0 {
        write_itimerval(c.a[2], old)?;
    }
    Ok(0)
}

/// `alarm(seconds)`: ITIMER_REAL once in `seconds` (0: cancels it); returns the seconds
/// that were left, rounded to the nearest and never 0 for a pending alarm (Linux's
/// alarm_setitimer).
pub fn alarm(c: &mut Ctx) -> KResult<u64> {
    let secs = u64::from(c.a[0] as u32);
    let (left, _) = itimer::set(&task::current_process(), itimer::ITIMER_REAL, secs * NSEC, 0)?;
    let (mut sec, nsec) = (left / NSEC, left % NSEC);
    if (sec == 0 && nsec != 0) || nsec >= NSEC / 2 {
        sec += 1;
    }
    Ok(sec)
}
