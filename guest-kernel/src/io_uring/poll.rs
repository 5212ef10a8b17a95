//! IORING_OP_POLL_ADD and IORING_OP_POLL_REMOVE: wait until a file is ready.
//!
//! A poll completes at once when the file is ready for what it asks (res: the ready
//! events); otherwise it is parked on the file's wait queue and checked again at each
//! wakeup. With IORING_POLL_ADD_MULTI it stays armed and posts a CQE with
//! IORING_CQE_F_MORE at every readiness, until removed or cancelled.

use alloc::boxed::Box;
use alloc::sync::Arc;

use super::cancel::{self, Slot};
use super::uapi::Sqe;
use super::{IoUring, Issued, Op, Request};
use crate::errno::*;
use crate::fs::{OpenFile, POLLERR, POLLHUP, POLLIN, POLLOUT, POLLPRI, POLLRDNORM, POLLWRNORM};

pub const IORING_OP_POLL_REMOVE: u8 = 7;
const IORING_POLL_ADD_MULTI: u32 = 1;

pub fn prep(_ring: &IoUring, sqe: &Sqe) -> KResult<Op> {
    if sqe.buf_index != 0 || sqe.off != 0 || sqe.file_index != 0 {
        return Err(EINVAL);
    }
    if sqe.opcode == IORING_OP_POLL_REMOVE {
        // Updating a poll in place (the update flags in len) is not supported.
        if sqe.len != 0 || sqe.op_flags != 0 {
            return Err(EINVAL);
        }
        return Ok(Op::PollRemove { target: sqe.addr });
    }
    if sqe.addr != 0 || sqe.len & !IORING_POLL_ADD_MULTI != 0 {
        return Err(EINVAL);
    }
    // Errors and hangups are always reported, as poll(2) does.
    let events = (sqe.op_flags & 0xffff) | POLLERR | POLLHUP;
    Ok(Op::Poll { events, multishot: sqe.len & IORING_POLL_ADD_MULTI != 0 })
}

pub fn issue(ring: &Arc<IoUring>, req: Box<Request>) -> Issued {
    match req.op {
        Op::PollRemove { target } => {
            let found = cancel::cancel_parked(ring, target, true);
            Some((req, if found { 0 } else { -ENOENT.0 }))
        }
        Op::Poll { events, multishot } => {
            let file = req.file.clone().expect("opdef: POLL_ADD needs a file");
            let ready = file.node.poll_mask() & events;
            if ready != 0 {
                if !multishot {
                    return Some((req, ready as i32));
                }
                ring.post_more(req.user_data, ready as i32);
            }
            let slot = cancel::park(ring, req, true);
            arm(ring, &file, slot, events, multishot);
            None
        }
        _ => Some((req, -EINVAL.0)),
    }
}

/// Waits on the file's queue for the asked events (the read side unless only POLLOUT).
fn arm(ring: &Arc<IoUring>, file: &Arc<OpenFile>, slot: Slot, events: u32, multishot: bool) {
    let write = events & (POLLIN | POLLRDNORM | POLLPRI) == 0 && events & (POLLOUT | POLLWRNORM) != 0;
    let Some(queue) = file.node.poll_queue(write) else {
        // A file that never blocks was ready above; nothing would ever wake this one.
        if let Some(req) = cancel::unpark(ring, &slot) {
            ring.complete_async(req, (file.node.poll_mask() & events) as i32);
        }
        return;
    };
    let (ring2, file2) = (Arc::clone(ring), Arc::clone(file));
    queue.add_callback(Box::new(move || check(&ring2, &file2, slot, events, multishot)));
}

/// A wakeup: complete (or post, for multishot) if ready, else wait again.
fn check(ring: &Arc<IoUring>, file: &Arc<OpenFile>, slot: Slot, events: u32, multishot: bool) {
    let user_data = match slot.lock().as_ref() {
        Some(req) => req.user_data,
        None => return, // removed or cancelled meanwhile
    };
    let ready = file.node.poll_mask() & events;
    if ready == 0 {
        return arm(ring, file, slot, events, multishot);
    }
    if multishot {
        ring.post_more(user_data, ready as i32);
        // Re-armed: a later wakeup posts again.
        return arm(ring, file, slot, events, multishot);
    }
    if let Some(req) = cancel::unpark(ring, &slot) {
        ring.complete_async(req, ready as i32);
    }
}
