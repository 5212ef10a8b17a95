//! Cancellation (Linux's io_uring/cancel.c): IORING_OP_ASYNC_CANCEL,
//! IORING_REGISTER_SYNC_CANCEL, and the teardown of a ring or a task.
//!
//! A request that waits on a file (a poll, a read of an empty pipe) is *parked*: its box
//! sits in a shared slot that both the file's wakeup and a cancellation can take, and the
//! wake callbacks that would retry it are on the file's wait queues. Whoever takes the box
//! completes it (and removes the callbacks); the other finds the slot empty.
//!
//! A cancellation matches requests by user_data, or with flags by file (FD, FD_FIXED), by
//! opcode (OP), or all of them (ANY); ALL cancels every match rather than the first. It
//! looks, in Linux's order, at io-wq (queued work is cancelled, running work is
//! interrupted: -EALREADY), at parked requests, and at timeouts.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::sync::Arc;
use alloc::vec::Vec;

use super::tctx::Tctx;
use super::uapi::{Sqe, IOSQE_FIXED_FILE};
use super::{timeout, IoUring, Issued, Op, Request};
use crate::errno::*;
use crate::fs::OpenFile;
use crate::sync::SpinLock;

pub const IORING_ASYNC_CANCEL_ALL: u32 = 1 << 0;
pub const IORING_ASYNC_CANCEL_FD: u32 = 1 << 1;
pub const IORING_ASYNC_CANCEL_ANY: u32 = 1 << 2;
pub const IORING_ASYNC_CANCEL_FD_FIXED: u32 = 1 << 3;
pub const IORING_ASYNC_CANCEL_USERDATA: u32 = 1 << 4;
pub const IORING_ASYNC_CANCEL_OP: u32 = 1 << 5;
const CANCEL_FLAGS: u32 = IORING_ASYNC_CANCEL_ALL
    | IORING_ASYNC_CANCEL_FD
    | IORING_ASYNC_CANCEL_ANY
    | IORING_ASYNC_CANCEL_FD_FIXED
    | IORING_ASYNC_CANCEL_USERDATA
    | IORING_ASYNC_CANCEL_OP;

/// A parked request and the wake callbacks that would retry it.
pub struct Armed {
    pub req: Box<Request>,
    /// Callback ids on the file's read and write wait queues.
    pub waits: [Option<u64>; 2],
    /// Its key in the ring's `ParkedSet`.
    id: u64,
}

pub type Slot = Arc<SpinLock<Option<Armed>>>;

/// What cancellation can see of a parked request without taking its slot.
pub struct Parked {
    pub user_data: u64,
    pub opcode: u8,
    pub file: Option<Arc<OpenFile>>,
    /// The submitter's context (compared by address, for a task's teardown).
    pub tctx: usize,
    pub poll: bool,
    pub slot: Slot,
}

/// A ring's parked requests, by id and by user_data (so that unparking and cancelling
/// by user_data are O(log n), however many wait).
#[derive(Default)]
pub struct ParkedSet {
    by_id: BTreeMap<u64, Parked>,
    by_user_data: BTreeSet<(u64, u64)>,
    next_id: u64,
}

impl ParkedSet {
    fn insert(&mut self, p: Parked) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.by_user_data.insert((p.user_data, id));
        self.by_id.insert(id, p);
        id
    }

    fn remove(&mut self, id: u64) -> Option<Parked> {
        let p = self.by_id.remove(&id)?;
        self.by_user_data.remove(&(p.user_data, id));
        Some(p)
    }
}

/// What to cancel.
#[derive(Clone)]
pub struct CancelData {
    pub user_data: u64,
    pub flags: u32,
    pub fd: i32,
    pub opcode: u8,
    /// The file FD or FD_FIXED named, looked up at issue.
    pub file: Option<Arc<OpenFile>>,
}

impl CancelData {
    /// Linux's io_cancel_req_match.
    pub fn matches(&self, user_data: u64, opcode: u8, file: Option<&Arc<OpenFile>>) -> bool {
        if self.flags & IORING_ASYNC_CANCEL_ANY != 0 {
            return true;
        }
        if self.flags & IORING_ASYNC_CANCEL_FD != 0 {
            let same = matches!((file, &self.file), (Some(a), Some(b)) if Arc::ptr_eq(a, b));
            if !same {
                return false;
            }
        }
        if self.flags & IORING_ASYNC_CANCEL_OP != 0 && opcode != self.opcode {
            return false;
        }
        let by_user_data = self.flags & IORING_ASYNC_CANCEL_USERDATA != 0
            || self.flags & (IORING_ASYNC_CANCEL_FD | IORING_ASYNC_CANCEL_OP) == 0;
        !by_user_data || user_data == self.user_data
    }

    fn all(&self) -> bool {
        self.flags & (IORING_ASYNC_CANCEL_ALL | IORING_ASYNC_CANCEL_ANY) != 0
    }

    /// Looks up the file FD or FD_FIXED names (in the current task).
    pub fn resolve(&mut self, ring: &IoUring) -> KResult<()> {
        if self.flags & IORING_ASYNC_CANCEL_FD == 0 {
            return Ok(());
        }
        self.file = Some(super::opdef::lookup_file(ring, self.fd, self.flags & IORING_ASYNC_CANCEL_FD_FIXED != 0)?);
        Ok(())
    }
}

/// Parks `req` and returns its slot (registered for cancellation).
pub fn park(ring: &IoUring, req: Box<Request>, poll: bool) -> Slot {
    let entry = Parked {
        user_data: req.user_data,
        opcode: req.opcode,
        file: req.file.clone(),
        tctx: req.tctx.as_ref().map_or(0, |t| Arc::as_ptr(t) as usize),
        poll,
        slot: Arc::new(SpinLock::new(None)),
    };
    let slot = Arc::clone(&entry.slot);
    let id = ring.parked.lock().insert(entry);
    *slot.lock() = Some(Armed { req, waits: [None, None], id });
    slot
}

/// Takes the request back out of its slot for good (None: someone else did), and takes
/// its remaining wake callbacks off the file's queues (or the futex table, or the
/// child-exit queue).
pub fn unpark(ring: &IoUring, slot: &Slot) -> Option<Box<Request>> {
    let armed = slot.lock().take()?;
    let entry = ring.parked.lock().remove(armed.id);
    drop(entry);
    // What else may still wake it: a futex's queue entries, a child-exit callback.
    match &armed.req.op {
        Op::Futex(op) => super::futex::cancelled(op),
        Op::Waitid(op) => super::waitid::unparked(op, armed.waits[0]),
        _ => {}
    }
    if let Some(file) = &armed.req.file {
        for (write, id) in armed.waits.iter().enumerate() {
            if let (Some(id), Some(queue)) = (id, file.node.poll_queue(write == 1)) {
                queue.remove_callback(*id);
            }
        }
    }
    Some(armed.req)
}

/// Whether a parked request is one Linux keeps on a list of its own (futex, waitid),
/// whose cancellation answers with a count rather than 0.
pub fn own_list(opcode: u8) -> Option<usize> {
    match opcode {
        super::futex::IORING_OP_FUTEX_WAIT..=super::futex::IORING_OP_FUTEX_WAITV => Some(0),
        super::waitid::IORING_OP_WAITID => Some(1),
        _ => None,
    }
}

/// Cancels parked requests that `matches` (polls only with `polls_only`): each completes
/// with -ECANCELED. Returns how many, except that with `collapse` all the futex
/// requests count as one, and so do all the waitid ones (Linux's IORING_ASYNC_CANCEL_ALL
/// cancels each of those lists in one step, counted once). Stops after the first
/// unless `all`. Also returns the opcode of the first one cancelled.
fn cancel_parked(ring: &Arc<IoUring>, matches: &dyn Fn(&Parked) -> bool, polls_only: bool, all: bool, collapse: bool) -> (usize, Option<u8>) {
    let slots: Vec<(Slot, u8)> = {
        let parked = ring.parked.lock();
        parked
            .by_id
            .values()
            .filter(|p| (p.poll || !polls_only) && matches(p))
            .map(|p| (Arc::clone(&p.slot), p.opcode))
            .collect()
    };
    let (mut n, mut lists, mut first) = (0, [false; 2], None);
    for (slot, opcode) in slots {
        if let Some(req) = unpark(ring, &slot) {
            ring.complete_async(req, -ECANCELED.0);
            first.get_or_insert(opcode);
            match own_list(opcode) {
                Some(l) if collapse => lists[l] = true,
                _ => n += 1,
            }
            if !all {
                break;
            }
        }
    }
    (n + lists.iter().filter(|&&hit| hit).count(), first)
}

/// Cancels the first parked request with `user_data` (polls only with `polls_only`),
/// found through the index; returns its opcode.
fn cancel_parked_user_data(ring: &Arc<IoUring>, user_data: u64, polls_only: bool) -> Option<u8> {
    let req = take_parked(ring, user_data, polls_only)?;
    let opcode = req.opcode;
    ring.complete_async(req, -ECANCELED.0);
    Some(opcode)
}

/// Takes the first parked request with `user_data` out, not completing it yet.
pub fn take_parked(ring: &Arc<IoUring>, user_data: u64, polls_only: bool) -> Option<Box<Request>> {
    let slot = {
        let parked = ring.parked.lock();
        parked
            .by_user_data
            .range((user_data, 0)..=(user_data, u64::MAX))
            .filter_map(|(_, id)| parked.by_id.get(id))
            .find(|p| p.poll || !polls_only)
            .map(|p| Arc::clone(&p.slot))
    };
    slot.and_then(|s| unpark(ring, &s))
}

/// Whether a request matches: (user_data, opcode, file).
type ReqMatcher<'a> = dyn Fn(u64, u8, Option<&Arc<OpenFile>>) -> bool + 'a;

/// Cancels this ring's work that `matches` (user_data, opcode, file) in the io-wq of
/// every task that submitted here: queued work is taken out (returned, not completed),
/// running work is interrupted (counted). Stops after the first match unless `all`.
#[allow(clippy::vec_box)] // the requests are boxes already
fn cancel_in_iowq(ring: &Arc<IoUring>, matches: &ReqMatcher, all: bool) -> (Vec<Box<Request>>, usize) {
    let ring_ptr = Arc::as_ptr(ring);
    let (mut taken, mut running) = (Vec::new(), 0);
    for tctx in ring.submitters() {
        let (queued, busy) = tctx.iowq.cancel(&|r, ud, op, f| core::ptr::eq(Arc::as_ptr(r), ring_ptr) && matches(ud, op, f), all);
        running += busy;
        taken.extend(queued.into_iter().map(|(_, req)| req));
        if !all && (!taken.is_empty() || running > 0) {
            break;
        }
    }
    (taken, running)
}

/// A LINK_TIMEOUT's cancellation of the request it times (by user_data, as Linux): the
/// request is taken out of io-wq's queue or its file's wait queue but not completed, so
/// the caller can post the timeout's CQE first. Err: EALREADY (running in io-wq, now
/// interrupted) or ENOENT.
pub fn take_for_link_timeout(ring: &Arc<IoUring>, user_data: u64) -> KResult<Box<Request>> {
    let (mut taken, running) = cancel_in_iowq(ring, &|ud, _, _| ud == user_data, false);
    if let Some(req) = taken.pop() {
        return Ok(req);
    }
    if running > 0 {
        return Err(EALREADY);
    }
    take_parked(ring, user_data, false).ok_or(ENOENT)
}

/// POLL_REMOVE: cancels the armed poll with `user_data`.
pub fn remove_poll(ring: &Arc<IoUring>, user_data: u64) -> bool {
    cancel_parked_user_data(ring, user_data, true).is_some()
}

/// Tries every place a request can wait, as Linux's __io_async_cancel: without ALL or
/// ANY the answer of the first match (0; 1 for a futex or waitid request, whose lists
/// answer with a count); with them how many were cancelled. Or -EALREADY/-ENOENT.
pub fn try_cancel(ring: &Arc<IoUring>, cd: &CancelData) -> KResult<usize> {
    let all = cd.all();
    let (taken, running) = cancel_in_iowq(ring, &|user_data, opcode, file| cd.matches(user_data, opcode, file), all);
    let mut n = taken.len();
    for req in taken {
        ring.complete_async(req, -ECANCELED.0);
    }
    if !all && n > 0 {
        return Ok(0);
    }
    if all || running == 0 {
        let by_user_data_only =
            cd.flags & (IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_OP | IORING_ASYNC_CANCEL_FD) == 0;
        let collapse = cd.flags & IORING_ASYNC_CANCEL_ALL != 0;
        if !all {
            let found = if by_user_data_only {
                cancel_parked_user_data(ring, cd.user_data, false)
            } else {
                cancel_parked(ring, &|p| cd.matches(p.user_data, p.opcode, p.file.as_ref()), false, false, false).1
            };
            if let Some(op) = found {
                return Ok(usize::from(own_list(op).is_some()));
            }
        } else {
            n += cancel_parked(ring, &|p| cd.matches(p.user_data, p.opcode, p.file.as_ref()), false, true, collapse).0;
        }
    }
    if (all || n + running == 0) && cd.flags & IORING_ASYNC_CANCEL_FD == 0 {
        let by_user_data_only = cd.flags & (IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_OP) == 0;
        if by_user_data_only && !all {
            n += usize::from(timeout::cancel_user_data(ring, cd.user_data));
        } else {
            n += timeout::cancel_where(ring, &|req| cd.matches(req.user_data, req.opcode, None), all);
        }
    }
    match (n, running) {
        (0, 0) if !all => Err(ENOENT),
        (0, _) if !all => Err(EALREADY),
        (_, _) if !all => Ok(0),
        (n, r) => Ok(n + r),
    }
}

/// Cancels every request of `ring`, or only those `tctx` submitted (ring release, task
/// exit and exec). Requests at a device cannot be recalled: they complete on their own.
pub fn cancel_all(ring: &Arc<IoUring>, tctx: Option<&Arc<Tctx>>) {
    let who = tctx.map(|t| Arc::as_ptr(t) as usize);
    let mine = |t: usize| who.is_none_or(|w| w == t);
    cancel_parked(ring, &|p| mine(p.tctx), false, true, false);
    let of_mine = |req: &Request| mine(req.tctx.as_ref().map_or(0, |t| Arc::as_ptr(t) as usize));
    timeout::cancel_where(ring, &of_mine, true);
    timeout::cancel_links_where(ring, &of_mine);
    // io-wq queues hold only their own task's work; a task's teardown cancels the rest
    // of its own queue itself (`tctx::task_cancel`).
    if who.is_none() {
        let (taken, _) = cancel_in_iowq(ring, &|_, _, _| true, true);
        for req in taken {
            ring.complete_async(req, -ECANCELED.0);
        }
    }
}

pub fn prep(_ring: &IoUring, sqe: &Sqe) -> KResult<Op> {
    let flags = sqe.op_flags;
    if sqe.off != 0 || sqe.buf_index != 0 || sqe.file_index != 0 || flags & !CANCEL_FLAGS != 0 {
        return Err(EINVAL);
    }
    if flags & IORING_ASYNC_CANCEL_ANY != 0 && flags & (IORING_ASYNC_CANCEL_FD | IORING_ASYNC_CANCEL_OP) != 0 {
        return Err(EINVAL);
    }
    if flags & IORING_ASYNC_CANCEL_OP == 0 && sqe.len != 0 {
        return Err(EINVAL);
    }
    let mut flags = flags;
    // The SQE's IOSQE_FIXED_FILE names a fixed file for FD, as FD_FIXED does.
    if flags & IORING_ASYNC_CANCEL_FD != 0 && sqe.flags & IOSQE_FIXED_FILE != 0 {
        flags |= IORING_ASYNC_CANCEL_FD_FIXED;
    }
    Ok(Op::Cancel(CancelData { user_data: sqe.addr, flags, fd: sqe.fd, opcode: sqe.len as u8, file: None }))
}

pub fn issue(ring: &Arc<IoUring>, mut req: Box<Request>) -> Issued {
    let Op::Cancel(cd) = &mut req.op else { return Some((req, -EINVAL.0)) };
    if let Err(e) = cd.resolve(ring) {
        return Some((req, -e.0));
    }
    let cd = cd.clone();
    let res = match try_cancel(ring, &cd) {
        Ok(n) => n as i32,
        Err(e) => -e.0,
    };
    Some((req, res))
}

/// IORING_REGISTER_SYNC_CANCEL: cancels, and while a match is still running in io-wq
/// waits for it (until `deadline`: -ETIME). As Linux: the first try's answer is returned
/// as is; after waiting, 0.
pub fn sync_cancel(ring: &Arc<IoUring>, mut cd: CancelData, deadline: Option<u64>) -> KResult<u64> {
    cd.resolve(ring)?;
    match try_cancel(ring, &cd) {
        Ok(n) => return Ok(n as u64),
        Err(e) if e == ENOENT && cd.all() => return Ok(0),
        Err(e) if e != EALREADY => return Err(e),
        Err(_) => {}
    }
    loop {
        if deadline.is_some_and(|d| crate::time::monotonic_ns() >= d) {
            return Err(ETIME);
        }
        // Completions wake the CQ waiters: look again then (or after a millisecond).
        let step = crate::time::monotonic_ns().saturating_add(1_000_000);
        let until = deadline.map_or(step, |d| d.min(step));
        if ring.cq_wait.wait_until(Some(until), || false) == Err(crate::task::wait::WaitError::Interrupted) {
            return Err(EINTR);
        }
        match try_cancel(ring, &cd) {
            Err(e) if e == EALREADY => continue,
            Ok(_) => return Ok(0),
            Err(e) if e == ENOENT => return Ok(0),
            Err(e) => return Err(e),
        }
    }
}
