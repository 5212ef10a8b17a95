//! Polling (Linux's io_uring/poll.c): IORING_OP_POLL_ADD and POLL_REMOVE, and the
//! internal poll that io_uring arms for a read or write that would block.
//!
//! A request that must wait for a file is parked (see `cancel`) with one-shot callbacks
//! on the file's wait queues: the read queue for POLLIN-like events, the write queue for
//! POLLOUT-like ones, both when both are asked. A wakeup runs the callback in the
//! waker's context; it only looks at the file's readiness and posts or queues:
//! - POLL_ADD completes with the ready events (res), or waits again. With
//!   IORING_POLL_ADD_MULTI it stays armed and posts a CQE with IORING_CQE_F_MORE at each
//!   readiness, until removed or cancelled.
//! - A parked read or write is handed back to its submitter as task work, to be issued
//!   again there (`io_arm_poll_handler` and `io_poll_task_func` in Linux).

use alloc::boxed::Box;
use alloc::sync::Arc;

use super::cancel::{self, Slot};
use super::uapi::{Sqe, IOSQE_CQE_SKIP_SUCCESS};
use super::{tctx, IoUring, Issued, Op, Request};
use crate::errno::*;
use crate::fs::{OpenFile, POLLERR, POLLHUP, POLLIN, POLLOUT, POLLPRI, POLLRDNORM, POLLWRNORM};

pub const IORING_OP_POLL_REMOVE: u8 = 7;
const IORING_POLL_ADD_MULTI: u32 = 1;
/// epoll's behaviour bits in the upper half of poll32_events: not events, never reported.
const EPOLLEXCLUSIVE: u32 = 1 << 28;
const EPOLLONESHOT: u32 = 1 << 30;
const EPOLLET: u32 = 1 << 31;

/// Events that make a read queue wakeup relevant, and a write queue one.
const READ_EVENTS: u32 = POLLIN | POLLRDNORM | POLLPRI | 0x80 /* POLLRDBAND */ | 0x2000 /* POLLRDHUP */;
const WRITE_EVENTS: u32 = POLLOUT | POLLWRNORM | 0x200 /* POLLWRBAND */;

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
    let multishot = sqe.len & IORING_POLL_ADD_MULTI != 0;
    let raw = sqe.op_flags;
    // As Linux: a multishot poll posts many CQEs, which CQE_SKIP_SUCCESS cannot describe;
    // EPOLLEXCLUSIVE wakes one of several waiters, which a multishot poll cannot be.
    if multishot && (sqe.flags & IOSQE_CQE_SKIP_SUCCESS != 0 || raw & EPOLLEXCLUSIVE != 0) {
        return Err(EINVAL);
    }
    // Errors and hangups are always reported, as poll(2) does; the epoll behaviour bits
    // (one-shot, edge-triggered, exclusive) describe what io_uring already does.
    let events = (raw & !(EPOLLEXCLUSIVE | EPOLLONESHOT | EPOLLET | (1 << 29))) | POLLERR | POLLHUP;
    Ok(Op::Poll { events, multishot })
}

pub fn issue(ring: &Arc<IoUring>, req: Box<Request>) -> Issued {
    match req.op {
        Op::PollRemove { target } => {
            let found = cancel::remove_poll(ring, target);
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
            arm(ring, &file, &slot, events, Mode::Poll { multishot }, [true, true]);
            None
        }
        _ => Some((req, -EINVAL.0)),
    }
}

/// Parks a read or write that would block until `file` is ready for it, then hands it
/// back to its submitter to be issued again.
pub fn arm_retry(ring: &Arc<IoUring>, req: Box<Request>, write: bool) {
    let file = req.file.clone().expect("rw needs a file");
    let slot = cancel::park(ring, req, false);
    let events = if write { WRITE_EVENTS } else { READ_EVENTS } | POLLERR | POLLHUP;
    arm(ring, &file, &slot, events, Mode::Retry, [true, true]);
    // It may have become ready between the failed attempt and the arming.
    if file.node.poll_mask() & events != 0
        && let Some(req) = cancel::unpark(ring, &slot)
    {
        tctx::queue(ring, req);
    }
}

#[derive(Clone, Copy)]
enum Mode {
    Poll { multishot: bool },
    Retry,
}

/// Adds callbacks on the queues (read, write) that `events` needs and `which` allows.
fn arm(ring: &Arc<IoUring>, file: &Arc<OpenFile>, slot: &Slot, events: u32, mode: Mode, which: [bool; 2]) {
    let mut queues = [false, false];
    queues[0] = which[0] && events & READ_EVENTS != 0;
    queues[1] = which[1] && events & WRITE_EVENTS != 0;
    if !queues[0] && !queues[1] {
        queues[0] = which[0]; // only errors and hangups: those wake the read side
    }
    let mut armed_any = false;
    for (i, want) in queues.into_iter().enumerate() {
        let Some(queue) = want.then(|| file.node.poll_queue(i == 1)).flatten() else { continue };
        let (ring2, file2, slot2) = (Arc::clone(ring), Arc::clone(file), Arc::clone(slot));
        let id = queue.add_callback(Box::new(move || check(&ring2, &file2, &slot2, events, mode, i)));
        let mut s = slot.lock();
        match s.as_mut() {
            Some(armed) => armed.waits[i] = Some(id),
            None => {
                // Cancelled meanwhile: take the callback back off.
                drop(s);
                queue.remove_callback(id);
                return;
            }
        }
        armed_any = true;
    }
    if !armed_any {
        // A file that never blocks was ready above; nothing would ever wake this one.
        if let Some(req) = cancel::unpark(ring, slot) {
            match mode {
                Mode::Poll { .. } => ring.complete_async(req, (file.node.poll_mask() & events) as i32),
                Mode::Retry => tctx::queue(ring, req),
            }
        }
    }
}

/// A wakeup of queue `i` (0 read, 1 write): act if ready, else wait again on that queue.
fn check(ring: &Arc<IoUring>, file: &Arc<OpenFile>, slot: &Slot, events: u32, mode: Mode, i: usize) {
    let user_data = {
        let mut s = slot.lock();
        let Some(armed) = s.as_mut() else { return }; // completed or cancelled meanwhile
        armed.waits[i] = None; // this callback has run
        armed.req.user_data
    };
    let ready = file.node.poll_mask() & events;
    let only_this = [i == 0, i == 1];
    if ready == 0 {
        return arm(ring, file, slot, events, mode, only_this);
    }
    match mode {
        Mode::Poll { multishot: true } => {
            ring.post_more(user_data, ready as i32);
            // Re-armed: a later wakeup posts again.
            arm(ring, file, slot, events, mode, only_this);
        }
        Mode::Poll { multishot: false } => {
            if let Some(req) = cancel::unpark(ring, slot) {
                ring.complete_async(req, ready as i32);
            }
        }
        Mode::Retry => {
            if let Some(req) = cancel::unpark(ring, slot) {
                tctx::queue(ring, req);
            }
        }
    }
}
