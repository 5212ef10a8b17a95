//! IORING_OP_WAITID (Linux's io_uring/waitid.c): waitid(2) without blocking.
//!
//! SQE: `len` the id type, `fd` the id, `file_index` the options, `addr2` the siginfo to
//! fill (or 0). It completes with 0 (the siginfo says what happened) or an error, as
//! Linux. While no child has changed state, the request is parked with a callback on
//! the submitting process's child-exit queue; an exiting child's wakeup hands it back
//! to its submitter as task work, where it looks again (and parks again if the child
//! that woke it is not one it waits for).

use alloc::boxed::Box;
use alloc::sync::Arc;

use super::cancel::{self, Slot};
use super::uapi::Sqe;
use super::{tctx, IoUring, Issued, Op, Request};
use crate::errno::*;
use crate::task::exit::{self, ChildInfo, WaitOpts};
use crate::task::{signal, Process};

pub const IORING_OP_WAITID: u8 = 50;

pub struct WaitidOp {
    which: u32,
    upid: i32,
    options: u32,
    infop: u64,
    /// While parked: the process whose child-exit queue holds the callback.
    pub parent: Option<Arc<Process>>,
}

pub fn prep(_ring: &IoUring, sqe: &Sqe) -> KResult<Op> {
    if sqe.addr != 0 || sqe.buf_index != 0 || sqe.addr3 != 0 || sqe.op_flags != 0 {
        return Err(EINVAL);
    }
    Ok(Op::Waitid(WaitidOp { which: sqe.len, upid: sqe.fd, options: sqe.file_index, infop: sqe.off, parent: None }))
}

/// Linux's io_waitid_finish: a found child gives 0 and si_signo SIGCHLD, nothing found
/// (WNOHANG, or an error) zeroes; a siginfo that cannot be written, -EFAULT.
fn finish(infop: u64, found: Option<ChildInfo>) -> i32 {
    if infop == 0 {
        return 0;
    }
    let signo = if found.is_some() { signal::SIGCHLD as i32 } else { 0 };
    match exit::write_info(infop, signo, &found.unwrap_or_default()) {
        Ok(()) => 0,
        Err(e) => -e.0,
    }
}

pub fn issue(ring: &Arc<IoUring>, mut req: Box<Request>) -> Issued {
    let Op::Waitid(op) = &mut req.op else { return Some((req, -EINVAL.0)) };
    op.parent = None;
    let wo = match exit::waitid_prepare(op.which, op.upid, op.options) {
        Ok(wo) => wo,
        Err(e) => return Some((req, -e.0)),
    };
    let parent = crate::task::current_process();
    match exit::try_wait(&parent, &wo) {
        Ok(Some(info)) => {
            let res = finish(op.infop, Some(info));
            Some((req, res))
        }
        Ok(None) if wo.options & exit::WNOHANG != 0 => {
            let res = finish(op.infop, None);
            Some((req, res))
        }
        Err(e) => {
            // As Linux's io_waitid_finish: the siginfo is zeroed (signo 0) on failure too.
            let res = finish(op.infop, None);
            Some((req, if res < 0 { res } else { -e.0 }))
        }
        Ok(None) => {
            op.parent = Some(Arc::clone(&parent));
            let slot = cancel::park(ring, req, false);
            let (ring2, slot2) = (Arc::clone(ring), Arc::clone(&slot));
            let id = parent.child_exited.add_callback_as(Box::new(move || woken(&ring2, &slot2)), false);
            match slot.lock().as_mut() {
                Some(armed) => armed.waits[0] = Some(id),
                None => {
                    parent.child_exited.remove_callback(id);
                    return None;
                }
            }
            // A child that changed state between the look above and the arming woke
            // nobody: look again now that the callback is armed (Linux's io_waitid does
            // __do_wait once more after add_wait_queue). The look reaps nothing; the
            // request's own retry does.
            let peek = WaitOpts { options: wo.options | exit::WNOWAIT, ..wo };
            if !matches!(exit::try_wait(&parent, &peek), Ok(None)) {
                woken(ring, &slot);
            }
            None
        }
    }
}

/// A child changed state (in the exiting child's context): look again in the
/// submitter's.
fn woken(ring: &Arc<IoUring>, slot: &Slot) {
    if let Some(req) = cancel::unpark(ring, slot) {
        tctx::queue(ring, req);
    }
}

/// The parked request left its slot: its callback leaves the child-exit queue.
pub fn unparked(op: &WaitidOp, callback: Option<u64>) {
    if let (Some(parent), Some(id)) = (&op.parent, callback) {
        parent.child_exited.remove_callback(id);
    }
}
