//! Polling (Linux's io_uring/poll.c): IORING_OP_POLL_ADD and POLL_REMOVE (which, with
//! IORING_POLL_UPDATE_EVENTS or _USER_DATA, re-arms a pending poll with new events or a
//! new user_data instead), and the internal poll that io_uring arms for a read or write
//! that would block.
//!
//! A request that must wait for a file is parked (see `cancel`) with one-shot callbacks
//! on the file's wait queues: the read queue for POLLIN-like events, the write queue for
//! POLLOUT-like ones, both when both are asked. A wakeup runs the callback in the
//! waker's context, which may be an interrupt handler or the middle of another ring's
//! completion: it only takes the request back and hands it to its submitter as task
//! work (Linux's `io_poll_wake`), so no chain of wakeups can recurse through rings.
//! There it is issued again (`io_poll_task_func`):
//! - POLL_ADD completes with the ready events (res), or waits again. With
//!   IORING_POLL_ADD_MULTI it stays armed and posts a CQE with IORING_CQE_F_MORE at each
//!   readiness, until removed, cancelled, or the CQ is full (then a last CQE without
//!   F_MORE ends it, as Linux).
//! - A parked read or write is tried again; a file that keeps saying "ready" but cannot
//!   take the request (an eventfd write too large for its room) goes to io-wq after a
//!   few tries (Linux's APOLL_MAX_RETRY), so it never spins.

use alloc::boxed::Box;
use alloc::sync::Arc;

use super::cancel::{self, Slot};
use super::uapi::{Sqe, IOSQE_CQE_SKIP_SUCCESS};
use super::{tctx, IoUring, Issued, Op, Request};
use crate::errno::*;
use crate::task::wait::WaitQueue;
use crate::fs::{OpenFile, POLLERR, POLLHUP, POLLIN, POLLOUT, POLLPRI, POLLRDNORM, POLLWRNORM};

pub const IORING_OP_POLL_REMOVE: u8 = 7;
const IORING_POLL_ADD_MULTI: u32 = 1;
const IORING_POLL_UPDATE_EVENTS: u32 = 1 << 1;
const IORING_POLL_UPDATE_USER_DATA: u32 = 1 << 2;
/// epoll's behaviour bits in the upper half of poll32_events: not events, never reported.
const EPOLLEXCLUSIVE: u32 = 1 << 28;
const EPOLLONESHOT: u32 = 1 << 30;
const EPOLLET: u32 = 1 << 31;

/// Events that make a read queue wakeup relevant, and a write queue one.
const READ_EVENTS: u32 = POLLIN | POLLRDNORM | POLLPRI | 0x80 /* POLLRDBAND */ | 0x2000 /* POLLRDHUP */;
const WRITE_EVENTS: u32 = POLLOUT | POLLWRNORM | 0x200 /* POLLWRBAND */;

pub fn prep(_ring: &IoUring, sqe: &Sqe) -> KResult<Op> {
    if sqe.buf_index != 0 || sqe.file_index != 0 {
        return Err(EINVAL);
    }
    if sqe.opcode == IORING_OP_POLL_REMOVE {
        let flags = sqe.len;
        let known = IORING_POLL_UPDATE_EVENTS | IORING_POLL_UPDATE_USER_DATA | IORING_POLL_ADD_MULTI;
        // ADD_MULTI only qualifies new events.
        if flags & !known != 0 || flags == IORING_POLL_ADD_MULTI {
            return Err(EINVAL);
        }
        let user_data = (flags & IORING_POLL_UPDATE_USER_DATA != 0).then_some(sqe.off);
        if user_data.is_none() && sqe.off != 0 {
            return Err(EINVAL);
        }
        let events = if flags & IORING_POLL_UPDATE_EVENTS != 0 {
            Some(events_of(sqe.op_flags))
        } else if sqe.op_flags != 0 {
            return Err(EINVAL);
        } else {
            None
        };
        let update = (events.is_some() || user_data.is_some()).then_some((events, user_data));
        return Ok(Op::PollRemove { target: sqe.addr, update });
    }
    if sqe.off != 0 || sqe.addr != 0 || sqe.len & !IORING_POLL_ADD_MULTI != 0 {
        return Err(EINVAL);
    }
    let multishot = sqe.len & IORING_POLL_ADD_MULTI != 0;
    let raw = sqe.op_flags;
    // As Linux: a multishot poll posts many CQEs, which CQE_SKIP_SUCCESS cannot describe;
    // EPOLLEXCLUSIVE wakes one of several waiters, which a multishot poll cannot be.
    if multishot && (sqe.flags & IOSQE_CQE_SKIP_SUCCESS != 0 || raw & EPOLLEXCLUSIVE != 0) {
        return Err(EINVAL);
    }
    Ok(Op::Poll { events: events_of(raw), multishot, exclusive: raw & EPOLLEXCLUSIVE != 0 })
}

/// The events a poll waits for: errors and hangups are always reported, as poll(2)
/// does. Of the epoll behaviour bits, one-shot and edge-triggered describe what io_uring
/// does anyway (EPOLLWAKEUP is about suspend, which there is none of); EPOLLEXCLUSIVE
/// (kept apart) makes a wakeup wake one of the exclusive polls on a file, not all.
fn events_of(raw: u32) -> u32 {
    (raw & !(EPOLLEXCLUSIVE | EPOLLONESHOT | EPOLLET | (1 << 29))) | POLLERR | POLLHUP
}

pub fn issue(ring: &Arc<IoUring>, req: Box<Request>) -> Issued {
    match req.op {
        Op::PollRemove { target, update: None } => {
            let found = cancel::remove_poll(ring, target);
            Some((req, if found { 0 } else { -ENOENT.0 }))
        }
        Op::PollRemove { target, update: Some((events, user_data)) } => {
            let Some(mut poll) = cancel::take_parked(ring, target, true) else { return Some((req, -ENOENT.0)) };
            // Its kind (one-shot or multishot, exclusive) stays; the new events replace
            // the old ones.
            if let (Op::Poll { events: old, .. }, Some(new)) = (&mut poll.op, events) {
                *old = new;
            }
            if let Some(user_data) = user_data {
                poll.user_data = user_data;
            }
            // Armed again, or done now if the file is ready for the new events.
            if let Some((poll, res)) = issue(ring, poll) {
                ring.complete_async(poll, res);
            }
            Some((req, 0))
        }
        Op::Poll { events, multishot, exclusive } => {
            let file = req.file.clone().expect("opdef: POLL_ADD needs a file");
            let ready = file.node.poll_mask() & events;
            if ready != 0 {
                // A multishot poll ends, with this last CQE, when the CQ is full.
                if !multishot || !ring.post_more(req.user_data, ready as i32, 0) {
                    return Some((req, ready as i32));
                }
            }
            let slot = cancel::park(ring, req, true);
            arm(ring, &file, &slot, events, exclusive);
            None
        }
        _ => Some((req, -EINVAL.0)),
    }
}

/// How often a read or write may be poll-armed and find the file still unable to take
/// it before it goes to io-wq (Linux: APOLL_MAX_RETRY).
const MAX_RETRIES: u8 = 16;

/// Parks a read or write that would block until `file` is ready for it, then hands it
/// back to its submitter to be issued again. Returns it if it should go to io-wq.
pub fn arm_retry(ring: &Arc<IoUring>, mut req: Box<Request>, write: bool) -> Option<Box<Request>> {
    if req.poll_retries >= MAX_RETRIES {
        return Some(req);
    }
    req.poll_retries += 1;
    crate::trace::emit(crate::trace::Kind::PollArm, req.trace, 0, 0, 0);
    let file = req.file.clone().expect("rw needs a file");
    let slot = cancel::park(ring, req, false);
    let events = if write { WRITE_EVENTS } else { READ_EVENTS } | POLLERR | POLLHUP;
    arm(ring, &file, &slot, events, false);
    // It may have become ready between the failed attempt and the arming.
    if file.node.poll_mask() & events != 0
        && let Some(req) = cancel::unpark(ring, &slot)
    {
        tctx::queue(ring, req);
    }
    None
}

/// Parks a read until `queue` is woken with `settled()` true (the page it needs has
/// arrived in the page cache: Linux's IOCB_WAITQ), then hands it back to its submitter
/// to be issued again. Returns it if it should go to io-wq.
pub fn arm_wait(ring: &Arc<IoUring>, mut req: Box<Request>, queue: &WaitQueue, settled: impl Fn() -> bool) -> Option<Box<Request>> {
    if req.poll_retries >= MAX_RETRIES {
        return Some(req);
    }
    req.poll_retries += 1;
    crate::trace::emit(crate::trace::Kind::PollArm, req.trace, 0, 0, 0);
    let slot = cancel::park(ring, req, false);
    // One-shot and not recorded on the slot: after a cancel it finds the slot empty.
    let (ring2, slot2) = (Arc::clone(ring), Arc::clone(&slot));
    queue.add_callback_as(Box::new(move || woken(&ring2, &slot2)), false);
    // The page may have arrived between the miss and the arming.
    if settled()
        && let Some(req) = cancel::unpark(ring, &slot)
    {
        tctx::queue(ring, req);
    }
    None
}

/// Adds callbacks on the queues (read, write) that `events` needs.
fn arm(ring: &Arc<IoUring>, file: &Arc<OpenFile>, slot: &Slot, events: u32, exclusive: bool) {
    let mut queues = [events & READ_EVENTS != 0, events & WRITE_EVENTS != 0];
    if !queues[0] && !queues[1] {
        queues[0] = true; // only errors and hangups: those wake the read side
    }
    // A file with one queue for both directions gets one callback.
    if queues[0] && queues[1]
        && let (Some(r), Some(w)) = (file.node.poll_queue(false), file.node.poll_queue(true))
        && core::ptr::eq(r, w)
    {
        queues[1] = false;
    }
    let mut armed_any = false;
    for (i, want) in queues.into_iter().enumerate() {
        let Some(queue) = want.then(|| file.node.poll_queue(i == 1)).flatten() else { continue };
        let (ring2, slot2) = (Arc::clone(ring), Arc::clone(slot));
        let id = queue.add_callback_as(Box::new(move || woken(&ring2, &slot2)), exclusive);
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
        // A file that never blocks has no queue: nothing would ever wake this one, so it
        // completes with what the file is ready for now (a regular file asked for
        // POLLPRI only: 0).
        if let Some(req) = cancel::unpark(ring, slot) {
            ring.complete_async(req, (file.node.poll_mask() & events) as i32);
        }
    }
}

/// A wakeup (in the waker's context): the request goes back to its submitter, whose
/// task work issues it again (and finds out whether the file is ready).
fn woken(ring: &Arc<IoUring>, slot: &Slot) {
    if let Some(req) = cancel::unpark(ring, slot) {
        tctx::queue(ring, req);
    }
}
