//! IORING_OP_TIMEOUT and IORING_OP_TIMEOUT_REMOVE.
//!
//! A timeout completes with -ETIME when its time comes, or with 0 once `count` other
//! completions have been posted after it was submitted (count 0: only the time counts).
//! TIMEOUT_REMOVE cancels a pending timeout by its user_data: the timeout completes with
//! -ECANCELED, the remove with 0 (or -ENOENT when no such timeout is pending).
//!
//! Each pending timeout has one entry in the kernel's timer structure (`time::call_at`).
//! However the timeout ends (its time, its count, TIMEOUT_REMOVE, ASYNC_CANCEL,
//! [`cancel_all`], or its ring freed), it leaves the ring's pending list exactly once,
//! and whoever takes it out of the list also removes its timer and lowers `ANY_PENDING`.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};

use super::uapi::Sqe;
use super::{IoUring, Issued, Op, Request};
use crate::errno::*;
use crate::sync::SpinLock;
use crate::task;
use crate::time::{self, TimerId};

pub const IORING_OP_TIMEOUT: u8 = 11;
pub const IORING_OP_TIMEOUT_REMOVE: u8 = 12;
const IORING_TIMEOUT_ABS: u32 = 1;
const IORING_TIMEOUT_REALTIME: u32 = 1 << 3;
const IORING_TIMEOUT_BOOTTIME: u32 = 1 << 2;

/// The request of a pending timeout, shared by the pending list and its timer callback:
/// whoever takes the request out completes it (once).
type Slot = Arc<SpinLock<Option<Box<Request>>>>;

/// A timeout waiting for its time or its count.
pub struct Pending {
    user_data: u64,
    /// Completions (posted, not counting timeouts) after which it fires with 0.
    target: Option<u64>,
    req: Slot,
    /// Its entry in the timer structure.
    timer: TimerId,
}

/// The ring's pending timeouts and its completion count.
#[derive(Default)]
pub struct Timeouts {
    pending: Vec<Pending>,
    completions: u64,
}

impl Drop for Timeouts {
    /// A ring freed with timeouts still pending (no CQ is left to complete them on):
    /// their timers go, and so do their requests and their share of `ANY_PENDING`.
    fn drop(&mut self) {
        for p in core::mem::take(&mut self.pending) {
            forget(p);
        }
    }
}

/// How many timeouts are pending on all rings (spares `count_completion` the ring's lock
/// when none is). Raised when a timeout joins a pending list, lowered by [`forget`] when
/// it leaves, so it cannot leak. Relaxed: a stale read only costs or spares one lock.
static ANY_PENDING: AtomicUsize = AtomicUsize::new(0);

/// The end of a pending timeout that has just left its ring's list: removes its timer
/// (nothing if the timer is what ended it) and its count. Returns its request slot.
fn forget(p: Pending) -> Slot {
    time::cancel(p.timer);
    ANY_PENDING.fetch_sub(1, Ordering::Relaxed);
    p.req
}

pub fn prep(_ring: &IoUring, sqe: &Sqe) -> KResult<Op> {
    if sqe.buf_index != 0 || sqe.file_index != 0 {
        return Err(EINVAL);
    }
    if sqe.opcode == IORING_OP_TIMEOUT_REMOVE {
        if sqe.len != 0 || sqe.op_flags != 0 || sqe.off != 0 {
            return Err(EINVAL);
        }
        return Ok(Op::TimeoutRemove { target: sqe.addr });
    }
    let flags = sqe.op_flags;
    if sqe.len != 1 || flags & !(IORING_TIMEOUT_ABS | IORING_TIMEOUT_REALTIME | IORING_TIMEOUT_BOOTTIME) != 0 {
        return Err(EINVAL);
    }
    if flags & IORING_TIMEOUT_REALTIME != 0 && flags & IORING_TIMEOUT_BOOTTIME != 0 {
        return Err(EINVAL);
    }
    let [sec, nsec]: [u64; 2] = task::read_user(sqe.addr)?;
    if (sec as i64) < 0 || nsec >= 1_000_000_000 {
        return Err(EINVAL);
    }
    let ns = sec.saturating_mul(1_000_000_000).saturating_add(nsec);
    let now = time::monotonic_ns();
    let deadline = if flags & IORING_TIMEOUT_ABS == 0 {
        now.saturating_add(ns)
    } else if flags & IORING_TIMEOUT_REALTIME != 0 {
        now.saturating_add(ns.saturating_sub(time::realtime_ns()))
    } else {
        ns
    };
    Ok(Op::Timeout { deadline, count: sqe.off as u32 })
}

pub fn issue(ring: &Arc<IoUring>, req: Box<Request>) -> Issued {
    match req.op {
        Op::Timeout { deadline, count } => {
            let user_data = req.user_data;
            let slot: Slot = Arc::new(SpinLock::new(Some(req)));
            // Weak: a timeout does not keep its ring alive (a freed ring drops its list,
            // which removes the timer).
            let weak = Arc::downgrade(ring);
            let theirs = Arc::clone(&slot);
            let on_time: Box<dyn FnOnce() + Send> = Box::new(move || {
                if let Some(ring) = weak.upgrade() {
                    fire(&ring, &theirs, -ETIME.0);
                }
            });
            // The timer is armed under the list's lock (lock order: ring timeouts, then
            // the timer structure), so the timeout is listed before its timer can run.
            let mut t = ring.timeouts.lock();
            let target = (count > 0).then(|| t.completions + u64::from(count));
            let timer = time::call_at(deadline, on_time);
            t.pending.push(Pending { user_data, target, req: slot, timer });
            ANY_PENDING.fetch_add(1, Ordering::Relaxed);
            None
        }
        Op::TimeoutRemove { target } => {
            let found = {
                let t = ring.timeouts.lock();
                t.pending.iter().find(|p| p.user_data == target).map(|p| Arc::clone(&p.req))
            };
            let res = match found {
                Some(slot) if fire(ring, &slot, -ECANCELED.0) => 0,
                _ => -ENOENT.0,
            };
            Some((req, res))
        }
        _ => Some((req, -EINVAL.0)),
    }
}

/// Completes the timeout in `slot` with `res` unless it already completed; true if it did.
fn fire(ring: &Arc<IoUring>, slot: &Slot, res: i32) -> bool {
    let Some(req) = slot.lock().take() else { return false };
    let left = {
        let mut t = ring.timeouts.lock();
        t.pending.iter().position(|p| Arc::ptr_eq(&p.req, slot)).map(|i| t.pending.remove(i))
    };
    // Outside the ring's lock: removing the timer takes the timer structure's lock.
    if let Some(p) = left {
        forget(p);
    }
    ring.complete_async(req, res);
    true
}

/// Called for every posted completion that is not a timeout's: fires the timeouts whose
/// count is reached. (With no timeout pending anywhere the count is not needed: a new
/// timeout counts from the completions posted after it.)
pub fn count_completion(ring: &Arc<IoUring>) {
    if ANY_PENDING.load(Ordering::Relaxed) == 0 {
        return;
    }
    let due: Vec<Slot> = {
        let mut t = ring.timeouts.lock();
        t.completions += 1;
        if t.pending.is_empty() {
            return;
        }
        let now = t.completions;
        t.pending.iter().filter(|p| p.target.is_some_and(|g| g <= now)).map(|p| Arc::clone(&p.req)).collect()
    };
    for slot in due {
        fire(ring, &slot, 0);
    }
}

/// Cancels the pending timeouts whose request `matches` (each completes with -ECANCELED
/// and its timer is removed); returns how many. Stops after the first unless `all`.
/// ASYNC_CANCEL, and the teardown of a ring or a task (Linux's io_kill_timeouts).
pub fn cancel_where(ring: &Arc<IoUring>, matches: &dyn Fn(&Request) -> bool, all: bool) -> usize {
    let slots: Vec<Arc<SpinLock<Option<Box<Request>>>>> = {
        let t = ring.timeouts.lock();
        t.pending
            .iter()
            .filter(|p| p.req.lock().as_ref().is_some_and(|r| matches(r)))
            .map(|p| Arc::clone(&p.req))
            .collect()
    };
    let mut n = 0;
    for slot in slots {
        if fire(ring, &slot, -ECANCELED.0) {
            n += 1;
            if !all {
                break;
            }
        }
    }
    n
}
