//! timerfd: a timer on CLOCK_REALTIME or CLOCK_MONOTONIC (BOOTTIME and the ALARM clocks
//! read the same here: there is no suspend) whose expirations `read` returns as an
//! 8-byte count, blocking while there are none (Linux's fs/timerfd.c). The timer is a
//! kernel timer (`time::call_at`) whose callback counts the expiration, arms the next one
//! of a periodic timer (counting the periods missed meanwhile, as hrtimer_forward does)
//! and wakes readers and pollers.

use alloc::boxed::Box;
use alloc::sync::{Arc, Weak};
use core::any::Any;

use super::{alloc_ino, FileType, IoBuf, Node, Stat, POLLIN, POLLRDNORM};
use crate::errno::*;
use crate::sync::SpinLock;
use crate::task::wait::WaitQueue;
use crate::time::{self, TimerId};

pub const CLOCK_REALTIME: u32 = 0;
pub const CLOCK_MONOTONIC: u32 = 1;
pub const CLOCK_BOOTTIME: u32 = 7;
pub const CLOCK_REALTIME_ALARM: u32 = 8;
pub const CLOCK_BOOTTIME_ALARM: u32 = 9;

pub struct TimerFd {
    ino: u64,
    me: Weak<TimerFd>,
    /// The clock counts from the epoch (REALTIME): absolute times are converted.
    realtime: bool,
    state: SpinLock<State>,
    readable: WaitQueue,
}

#[derive(Default)]
struct State {
    /// Expirations not yet read.
    ticks: u64,
    /// The next expiration (monotonic ns) and the period (0: one-shot), while armed.
    next: Option<u64>,
    interval: u64,
    /// The kernel timer for `next`.
    timer: Option<TimerId>,
}

/// A timerfd on `clock` (any of the five clocks Linux allows; others EINVAL).
pub fn new(clock: u32) -> KResult<Arc<TimerFd>> {
    let realtime = match clock {
        CLOCK_REALTIME | CLOCK_REALTIME_ALARM => true,
        CLOCK_MONOTONIC | CLOCK_BOOTTIME | CLOCK_BOOTTIME_ALARM => false,
        _ => return Err(EINVAL),
    };
    Ok(Arc::new_cyclic(|me| TimerFd { ino: alloc_ino(), me: me.clone(), realtime, state: SpinLock::new(State::default()), readable: WaitQueue::new() }))
}

/// Nanoseconds from the clock's zero to the monotonic clock's (the epoch offset for a
/// REALTIME timer).
fn offset(realtime: bool) -> u64 {
    if realtime { time::realtime_ns() - time::monotonic_ns() } else { 0 }
}

impl TimerFd {
    /// timerfd_settime: arms the timer to expire at `value` (ns; absolute on the timer's
    /// clock with `abs`, else from now) and then every `interval` ns, or disarms it when
    /// `value` is 0. Unread expirations are dropped. Returns the old (value left,
    /// interval), as `get` does.
    pub fn set(&self, value: u64, interval: u64, abs: bool) -> (u64, u64) {
        let old = self.get();
        let mut st = self.state.lock();
        if let Some(t) = st.timer.take() {
            time::cancel(t);
        }
        st.ticks = 0;
        st.interval = interval;
        st.next = None;
        if value != 0 {
            let now = time::monotonic_ns();
            let at = if abs { value.saturating_sub(offset(self.realtime)) } else { now.saturating_add(value) };
            st.next = Some(at);
            st.timer = Some(self.arm(at));
        }
        old
    }

    /// timerfd_gettime: the time left to the next expiration (0: disarmed) and the period.
    pub fn get(&self) -> (u64, u64) {
        let st = self.state.lock();
        match st.next {
            // An expiration that is due but not yet counted is 1 ns away, as Linux says.
            Some(at) => (at.saturating_sub(time::monotonic_ns()).max(1), st.interval),
            None => (0, st.interval),
        }
    }

    fn arm(&self, at: u64) -> TimerId {
        let me = self.me.clone();
        time::call_at(at, Box::new(move || {
            if let Some(t) = me.upgrade() {
                t.expired(at);
            }
        }))
    }

    /// The timer for `at` went off (timer interrupt).
    fn expired(&self, at: u64) {
        let mut st = self.state.lock();
        if st.next != Some(at) {
            return; // re-set meanwhile
        }
        st.timer = None;
        st.ticks += 1;
        // Periods that passed while this one waited count too (no period: one-shot).
        match time::monotonic_ns().saturating_sub(at).checked_div(st.interval) {
            Some(missed) => {
                st.ticks += missed;
                let next = at + (missed + 1) * st.interval;
                st.next = Some(next);
                st.timer = Some(self.arm(next));
            }
            None => st.next = None,
        }
        drop(st);
        self.readable.wake_all();
    }
}

impl Drop for TimerFd {
    fn drop(&mut self) {
        if let Some(t) = self.state.lock().timer.take() {
            time::cancel(t);
        }
    }
}

impl Node for TimerFd {
    fn stat(&self) -> Stat {
        Stat { ino: self.ino, mode: FileType::Regular.mode_bits() | 0o600, nlink: 1, ..Stat::default() }
    }

    fn seekable(&self) -> bool {
        false
    }

    fn read(&self, _offset: u64, buf: &mut IoBuf, nonblock: bool) -> KResult<usize> {
        if buf.len() < 8 {
            return Err(EINVAL);
        }
        super::wait_ready(&self.readable, nonblock, || self.state.lock().ticks > 0)?;
        let ticks = core::mem::take(&mut self.state.lock().ticks);
        buf.put(0, &ticks.to_le_bytes())?;
        Ok(8)
    }

    fn write(&self, _offset: u64, _buf: &IoBuf, _nonblock: bool) -> KResult<usize> {
        Err(EINVAL)
    }

    fn poll_queue(&self, write: bool) -> Option<&WaitQueue> {
        (!write).then_some(&self.readable)
    }

    fn poll_mask(&self) -> u32 {
        if self.state.lock().ticks > 0 { POLLIN | POLLRDNORM } else { 0 }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
