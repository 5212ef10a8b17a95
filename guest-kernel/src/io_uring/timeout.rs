//! IORING_OP_TIMEOUT and IORING_OP_TIMEOUT_REMOVE.
//!
//! A timeout completes with -ETIME when its time comes, or with 0 once `count` other
//! completions have been posted after it was submitted (count 0: only the time counts).
//! IORING_TIMEOUT_ETIME_SUCCESS makes -ETIME a success for its link chain.
//! IORING_TIMEOUT_MULTISHOT (relative times only) posts -ETIME with IORING_CQE_F_MORE
//! each time its period ends and starts the next, `count` times (0: until removed); the
//! last CQE has no F_MORE, nor has one that finds the CQ full (which ends it).
//! TIMEOUT_REMOVE cancels a pending timeout by its user_data: the timeout completes with
//! -ECANCELED, the remove with 0 (or -ENOENT when no such timeout is pending).
//!
//! Each pending timeout has one entry in the kernel's timer structure (`time::call_at`).
//! However the timeout ends (its time, its count, TIMEOUT_REMOVE, ASYNC_CANCEL, a
//! teardown, or its ring freed), it leaves the ring's pending list exactly once, and
//! whoever takes it out of the list also removes its timer and lowers `ANY_PENDING`.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};

use super::uapi::Sqe;
use super::{IoUring, Issued, Op, Request};
use crate::errno::*;
use crate::task;
use crate::time::{self, TimerId};

pub const IORING_OP_TIMEOUT: u8 = 11;
pub const IORING_OP_TIMEOUT_REMOVE: u8 = 12;
pub const IORING_OP_LINK_TIMEOUT: u8 = 15;
const IORING_TIMEOUT_ABS: u32 = 1;
const IORING_TIMEOUT_UPDATE: u32 = 1 << 1;
const IORING_LINK_TIMEOUT_UPDATE: u32 = 1 << 4;
const IORING_TIMEOUT_REALTIME: u32 = 1 << 3;
const IORING_TIMEOUT_BOOTTIME: u32 = 1 << 2;
const IORING_TIMEOUT_ETIME_SUCCESS: u32 = 1 << 5;
const IORING_TIMEOUT_MULTISHOT: u32 = 1 << 6;

/// A timeout waiting for its time or its count.
pub struct Pending {
    req: Box<Request>,
    /// Completions (posted, not counting timeouts) after which it fires with 0.
    target: Option<u64>,
    /// Its entry in the timer structure.
    timer: TimerId,
}

/// The ring's pending timeouts, indexed so that each way of ending one is O(log n): by
/// id (the timer's callback), by user_data (TIMEOUT_REMOVE, ASYNC_CANCEL), by completion
/// count (count_completion). Whoever removes a timeout from `pending` ends it.
#[derive(Default)]
pub struct Timeouts {
    pending: BTreeMap<u64, Pending>,
    /// Armed link timeouts, with the user_data of the request each times. Neither
    /// TIMEOUT_REMOVE nor ASYNC_CANCEL reaches them (Linux keeps them apart too).
    links: BTreeMap<u64, (Pending, u64)>,
    by_user_data: BTreeSet<(u64, u64)>,
    by_target: BTreeSet<(u64, u64)>,
    next_id: u64,
    completions: u64,
}

impl Timeouts {
    fn take(&mut self, id: u64) -> Option<Pending> {
        let p = self.pending.remove(&id)?;
        self.by_user_data.remove(&(p.req.user_data, id));
        if let Some(t) = p.target {
            self.by_target.remove(&(t, id));
        }
        Some(p)
    }
}

impl Drop for Timeouts {
    /// A ring freed with timeouts still pending (no CQ is left to complete them on):
    /// their timers go, and so do their requests and their share of `ANY_PENDING`.
    fn drop(&mut self) {
        for (_, p) in core::mem::take(&mut self.pending) {
            forget(p);
        }
        for (_, (p, _)) in core::mem::take(&mut self.links) {
            forget(p);
        }
    }
}

/// How many timeouts are pending on all rings (spares `count_completion` the ring's lock
/// when none is). Raised when a timeout joins a pending list, lowered by [`forget`] when
/// it leaves, so it cannot leak. Relaxed: a stale read only costs or spares one lock.
static ANY_PENDING: AtomicUsize = AtomicUsize::new(0);

/// The end of a pending timeout that has just left its ring's list: removes its timer
/// (nothing if the timer is what ended it) and its count. Returns its request.
fn forget(p: Pending) -> Box<Request> {
    time::cancel(p.timer);
    ANY_PENDING.fetch_sub(1, Ordering::Relaxed);
    p.req
}

pub fn prep(_ring: &IoUring, sqe: &Sqe) -> KResult<Op> {
    if sqe.buf_index != 0 || sqe.file_index != 0 {
        return Err(EINVAL);
    }
    if sqe.opcode == IORING_OP_TIMEOUT_REMOVE {
        if sqe.len != 0 {
            return Err(EINVAL);
        }
        let flags = sqe.op_flags;
        if flags & (IORING_TIMEOUT_UPDATE | IORING_LINK_TIMEOUT_UPDATE) == 0 {
            if flags != 0 {
                return Err(EINVAL);
            }
            return Ok(Op::TimeoutRemove { target: sqe.addr, update: None });
        }
        let clocks = flags & (IORING_TIMEOUT_REALTIME | IORING_TIMEOUT_BOOTTIME);
        let known = IORING_TIMEOUT_UPDATE | IORING_LINK_TIMEOUT_UPDATE | IORING_TIMEOUT_ABS | IORING_TIMEOUT_REALTIME | IORING_TIMEOUT_BOOTTIME;
        if clocks.count_ones() > 1 || flags & !known != 0 {
            return Err(EINVAL);
        }
        // The new time is in `addr2`.
        let [sec, nsec]: [u64; 2] = task::read_user(sqe.off)?;
        if (sec as i64) < 0 || (nsec as i64) < 0 {
            return Err(EINVAL);
        }
        let when = When { ns: sec.saturating_mul(1_000_000_000).saturating_add(nsec), flags };
        // LINK_TIMEOUT_UPDATE without UPDATE is a plain remove (which never finds a link
        // timeout): Linux's reading of the flags.
        let update = (flags & IORING_TIMEOUT_UPDATE != 0).then_some((when, flags & IORING_LINK_TIMEOUT_UPDATE != 0));
        return Ok(Op::TimeoutRemove { target: sqe.addr, update });
    }
    let flags = sqe.op_flags;
    let known = IORING_TIMEOUT_ABS | IORING_TIMEOUT_REALTIME | IORING_TIMEOUT_BOOTTIME | IORING_TIMEOUT_ETIME_SUCCESS | IORING_TIMEOUT_MULTISHOT;
    if sqe.len != 1 || flags & !known != 0 {
        return Err(EINVAL);
    }
    if flags & IORING_TIMEOUT_REALTIME != 0 && flags & IORING_TIMEOUT_BOOTTIME != 0 {
        return Err(EINVAL);
    }
    // A period repeats from when it ends: only a relative time has one.
    if flags & IORING_TIMEOUT_MULTISHOT != 0 && flags & IORING_TIMEOUT_ABS != 0 {
        return Err(EINVAL);
    }
    let [sec, nsec]: [u64; 2] = task::read_user(sqe.addr)?;
    if (sec as i64) < 0 || nsec >= 1_000_000_000 {
        return Err(EINVAL);
    }
    let when = When { ns: sec.saturating_mul(1_000_000_000).saturating_add(nsec), flags };
    if sqe.opcode == IORING_OP_LINK_TIMEOUT {
        // It times the request linked before it (checked at submission); no count.
        if sqe.off != 0 {
            return Err(EINVAL);
        }
        return Ok(Op::LinkTimeout(when));
    }
    Ok(Op::Timeout { when, count: sqe.off as u32 })
}

/// A timeout's time as the SQE gave it; the timer starts when the request is issued
/// (or, for a link timeout, when the request it times is), as Linux's hrtimer does.
#[derive(Clone, Copy)]
pub struct When {
    ns: u64,
    flags: u32,
}

impl When {
    /// The monotonic deadline, counted from now for a relative timeout.
    fn deadline(self) -> u64 {
        let now = time::monotonic_ns();
        if self.flags & IORING_TIMEOUT_ABS == 0 {
            now.saturating_add(self.ns)
        } else if self.flags & IORING_TIMEOUT_REALTIME != 0 {
            now.saturating_add(self.ns.saturating_sub(time::realtime_ns()))
        } else {
            self.ns
        }
    }
}

/// The callback a timer of timeout `id` runs: it fires the timeout (a link timeout with
/// `link`). It holds the ring weakly: a freed ring drops its list, which removes the timer.
fn on_time(ring: &Arc<IoUring>, id: u64, link: bool) -> Box<dyn FnOnce() + Send> {
    let weak = Arc::downgrade(ring);
    Box::new(move || {
        if let Some(ring) = weak.upgrade() {
            if link {
                fire_link(&ring, id);
            } else {
                expire(&ring, id);
            }
        }
    })
}

/// Arms link timeout `lt` for `target` (just being issued): if the time comes first, the
/// target is cancelled by its user_data (as Linux does) and the timeout completes with
/// -ETIME, or with the cancellation's error. Returns the id that [`disarm_link`] takes
/// when the target completes first.
pub fn arm_link(ring: &Arc<IoUring>, lt: Box<Request>, target: u64) -> u64 {
    let Op::LinkTimeout(when) = lt.op else { unreachable!("a LINK_TIMEOUT request") };
    let mut t = ring.timeouts.lock();
    let id = t.next_id;
    t.next_id += 1;
    let timer = time::call_at(when.deadline(), on_time(ring, id, true));
    t.links.insert(id, (Pending { req: lt, target: None, timer }, target));
    ANY_PENDING.fetch_add(1, Ordering::Relaxed);
    id
}

/// The timed request completed first: its link timeout ends with -ECANCELED.
pub fn disarm_link(ring: &Arc<IoUring>, id: u64) {
    let left = ring.timeouts.lock().links.remove(&id);
    if let Some((p, _)) = left {
        end_link(ring, forget(p), -ECANCELED.0);
    }
}

/// A link timeout's end: its CQE, except that one armed with CQE_SKIP_SUCCESS posts
/// none at all (Linux: neither -ETIME nor -ECANCELED).
fn end_link(ring: &Arc<IoUring>, lt: Box<Request>, res: i32) {
    if lt.flags & super::uapi::IOSQE_CQE_SKIP_SUCCESS != 0 {
        ring.end_silently(lt);
    } else {
        ring.complete_async(lt, res);
    }
}

/// The time came first: the timed request is cancelled, and (as Linux orders them) the
/// timeout's CQE (-ETIME, 1 for a futex or waitid request, or why the request could not
/// be cancelled) comes before the request's -ECANCELED.
fn fire_link(ring: &Arc<IoUring>, id: u64) {
    let left = ring.timeouts.lock().links.remove(&id);
    let Some((p, target)) = left else { return };
    let lt = forget(p);
    match super::cancel::take_for_link_timeout(ring, target) {
        Ok(req) => {
            // Linux answers with what the cancellation answered, -ETIME for 0: a
            // futex or waitid request's list answers 1.
            let res = if super::cancel::own_list(req.opcode).is_some() { 1 } else { -ETIME.0 };
            end_link(ring, lt, res);
            ring.complete_async(req, -ECANCELED.0);
        }
        // A timed TIMEOUT, or a request at a device (it completes on its own).
        Err(e) if e == ENOENT && cancel_user_data(ring, target) => end_link(ring, lt, -ETIME.0),
        Err(e) => end_link(ring, lt, -e.0),
    }
}

pub fn issue(ring: &Arc<IoUring>, req: Box<Request>) -> Issued {
    match req.op {
        Op::Timeout { when, count } => {
            let deadline = when.deadline();
            // The timer is armed under the list's lock (lock order: ring timeouts, then
            // the timer structure), so the timeout is listed before its timer can run.
            let mut t = ring.timeouts.lock();
            let id = t.next_id;
            t.next_id += 1;
            // A multishot timeout's count is its number of periods, not completions.
            let counts = count > 0 && when.flags & IORING_TIMEOUT_MULTISHOT == 0;
            let target = counts.then(|| t.completions + u64::from(count));
            let timer = time::call_at(deadline, on_time(ring, id, false));
            t.by_user_data.insert((req.user_data, id));
            if let Some(g) = target {
                t.by_target.insert((g, id));
            }
            t.pending.insert(id, Pending { req, target, timer });
            ANY_PENDING.fetch_add(1, Ordering::Relaxed);
            None
        }
        Op::TimeoutRemove { target, update: None } => {
            let res = if cancel_user_data(ring, target) { 0 } else { -ENOENT.0 };
            Some((req, res))
        }
        Op::TimeoutRemove { target, update: Some((when, link)) } => {
            let res = if update(ring, target, when, link) { 0 } else { -ENOENT.0 };
            Some((req, res))
        }
        _ => Some((req, -EINVAL.0)),
    }
}

/// IORING_TIMEOUT_UPDATE: gives the pending timeout (or, with `link`, the armed link
/// timeout) whose user_data is `user_data` a new time; false if there is none.
fn update(ring: &Arc<IoUring>, user_data: u64, when: When, link: bool) -> bool {
    let mut t = ring.timeouts.lock();
    let id = if link {
        t.links.iter().find(|(_, (p, _))| p.req.user_data == user_data).map(|(&id, _)| id)
    } else {
        t.by_user_data.range((user_data, 0)..=(user_data, u64::MAX)).next().map(|&(_, id)| id)
    };
    let Some(id) = id else { return false };
    let new = time::call_at(when.deadline(), on_time(ring, id, link));
    let p = if link { t.links.get_mut(&id).map(|(p, _)| p) } else { t.pending.get_mut(&id) };
    let old = core::mem::replace(&mut p.expect("found above").timer, new);
    drop(t);
    time::cancel(old);
    true
}

/// Timeout `id`'s time came. A multishot one with periods left posts -ETIME with
/// F_MORE and starts its next period (unless it ended meanwhile or the CQ is full);
/// otherwise it completes with -ETIME, a success for its chain with ETIME_SUCCESS.
fn expire(ring: &Arc<IoUring>, id: u64) {
    let repeat = {
        let mut t = ring.timeouts.lock();
        let Some(p) = t.pending.get_mut(&id) else { return };
        let user_data = p.req.user_data;
        match &mut p.req.op {
            Op::Timeout { when, count } if when.flags & IORING_TIMEOUT_MULTISHOT != 0 => {
                // count 0: forever; else this period was one of `count`.
                let last = *count == 1;
                *count = count.saturating_sub(1);
                (!last).then_some((user_data, *when))
            }
            Op::Timeout { when, .. } if when.flags & IORING_TIMEOUT_ETIME_SUCCESS != 0 => {
                p.req.expected = Some(-ETIME.0);
                None
            }
            _ => None,
        }
    };
    // Posted outside the list's lock (posting counts completions, which takes it).
    if let Some((user_data, when)) = repeat
        && ring.post_more(user_data, -ETIME.0, 0)
    {
        let mut t = ring.timeouts.lock();
        if let Some(p) = t.pending.get_mut(&id) {
            // The timer that just ran is spent: the new one replaces it.
            p.timer = time::call_at(when.deadline(), on_time(ring, id, false));
        }
        return;
    }
    fire(ring, id, -ETIME.0);
}

/// Completes pending timeout `id` with `res` unless it already ended; true if it did.
fn fire(ring: &Arc<IoUring>, id: u64, res: i32) -> bool {
    let left = ring.timeouts.lock().take(id);
    // Outside the ring's lock: removing the timer takes the timer structure's lock.
    let Some(p) = left else { return false };
    ring.complete_async(forget(p), res);
    true
}

/// Cancels the oldest pending timeout with `user_data` (-ECANCELED); false if none.
pub fn cancel_user_data(ring: &Arc<IoUring>, user_data: u64) -> bool {
    let id = ring.timeouts.lock().by_user_data.range((user_data, 0)..=(user_data, u64::MAX)).next().map(|&(_, id)| id);
    id.is_some_and(|id| fire(ring, id, -ECANCELED.0))
}

/// Called for every posted completion that is not a timeout's: fires the timeouts whose
/// count is reached. (With no timeout pending anywhere the count is not needed: a new
/// timeout counts from the completions posted after it.)
#[inline]
pub fn count_completion(ring: &Arc<IoUring>) {
    if ANY_PENDING.load(Ordering::Relaxed) != 0 {
        count_slow(ring);
    }
}

fn count_slow(ring: &Arc<IoUring>) {
    let now = {
        let mut t = ring.timeouts.lock();
        t.completions += 1;
        t.completions
    };
    loop {
        let due = ring.timeouts.lock().by_target.first().copied().filter(|&(g, _)| g <= now);
        let Some((_, id)) = due else { return };
        fire(ring, id, 0);
    }
}

/// Ends the armed link timeouts whose request `matches` with -ECANCELED (the teardown of
/// a ring or a task).
pub fn cancel_links_where(ring: &Arc<IoUring>, matches: &dyn Fn(&Request) -> bool) {
    let ids: Vec<u64> = ring.timeouts.lock().links.iter().filter(|(_, (p, _))| matches(&p.req)).map(|(&id, _)| id).collect();
    for id in ids {
        disarm_link(ring, id);
    }
}

/// Cancels the pending timeouts whose request `matches` (each completes with -ECANCELED
/// and its timer is removed); returns how many. Stops after the first unless `all`.
/// ASYNC_CANCEL with flags, and the teardown of a ring or a task (Linux's
/// io_kill_timeouts).
pub fn cancel_where(ring: &Arc<IoUring>, matches: &dyn Fn(&Request) -> bool, all: bool) -> usize {
    let ids: Vec<u64> = {
        let t = ring.timeouts.lock();
        t.pending.iter().filter(|(_, p)| matches(&p.req)).map(|(&id, _)| id).collect()
    };
    let mut n = 0;
    for id in ids {
        if fire(ring, id, -ECANCELED.0) {
            n += 1;
            if !all {
                break;
            }
        }
    }
    n
}
