//! Parked requests and IORING_OP_ASYNC_CANCEL.
//!
//! A request that waits on a file (a poll, a read of an empty pipe) is parked: its box sits
//! in a shared slot that both the file's wakeup and a cancellation can take. Whoever takes
//! it completes it; the other finds the slot empty.

use alloc::boxed::Box;
use alloc::sync::Arc;

use super::uapi::Sqe;
use super::{timeout, IoUring, Issued, Op, Request};
use crate::errno::*;
use crate::sync::SpinLock;


pub type Slot = Arc<SpinLock<Option<Box<Request>>>>;

pub struct Parked {
    pub user_data: u64,
    pub poll: bool,
    pub slot: Slot,
}

/// Parks `req` and returns its slot (registered for cancellation).
pub fn park(ring: &IoUring, req: Box<Request>, poll: bool) -> Slot {
    let user_data = req.user_data;
    let slot = Arc::new(SpinLock::new(Some(req)));
    ring.parked.lock().push(Parked { user_data, poll, slot: Arc::clone(&slot) });
    slot
}

/// Takes the request back out of its slot for good (None: someone else did).
pub fn unpark(ring: &IoUring, slot: &Slot) -> Option<Box<Request>> {
    let req = slot.lock().take()?;
    ring.parked.lock().retain(|p| !Arc::ptr_eq(&p.slot, slot));
    Some(req)
}

/// Cancels the parked request with `user_data` (polls only with `polls_only`): it
/// completes with -ECANCELED. False if there is none.
pub fn cancel_parked(ring: &Arc<IoUring>, user_data: u64, polls_only: bool) -> bool {
    let slot = {
        let parked = ring.parked.lock();
        parked.iter().find(|p| p.user_data == user_data && (p.poll || !polls_only)).map(|p| Arc::clone(&p.slot))
    };
    match slot.and_then(|s| unpark(ring, &s)) {
        Some(req) => {
            ring.complete_async(req, -ECANCELED.0);
            true
        }
        None => false,
    }
}

pub fn prep(_ring: &IoUring, sqe: &Sqe) -> KResult<Op> {
    // The ALL, FD and ANY flags of newer kernels are not supported.
    if sqe.off != 0 || sqe.len != 0 || sqe.op_flags != 0 || sqe.buf_index != 0 || sqe.file_index != 0 {
        return Err(EINVAL);
    }
    Ok(Op::Cancel { target: sqe.addr })
}

pub fn issue(ring: &Arc<IoUring>, req: Box<Request>) -> Issued {
    let Op::Cancel { target } = req.op else { return Some((req, -EINVAL.0)) };
    let found = cancel_parked(ring, target, false) || timeout::cancel(ring, target);
    Some((req, if found { 0 } else { -ENOENT.0 }))
}
