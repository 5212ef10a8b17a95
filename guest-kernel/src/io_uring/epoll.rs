//! IORING_OP_EPOLL_CTL and IORING_OP_EPOLL_WAIT (Linux's io_uring/epoll.c), on the
//! kernel's epoll (`fs::epoll`).
//!
//! EPOLL_CTL is epoll_ctl(2) with its event copied at prep. EPOLL_WAIT takes the ready
//! events of its epoll file, or, when there are none, waits for the epoll file to be
//! readable (a poll armed on it, as for a pipe read) and tries again: it never blocks
//! the submitter.

use alloc::boxed::Box;
use alloc::sync::Arc;

use super::uapi::Sqe;
use super::{poll, IoUring, Issued, Op, Request};
use crate::errno::*;
use crate::fs::epoll::{self, EpollEvent};
use crate::syscall::epoll as sys;
use crate::task;

pub const IORING_OP_EPOLL_CTL: u8 = 29;

pub enum EpollOp {
    Ctl { epfd: i32, op: u32, fd: i32, event: EpollEvent },
    Wait { events: u64, max: i32 },
}

pub fn prep(_ring: &IoUring, sqe: &Sqe) -> KResult<Op> {
    if sqe.buf_index != 0 || sqe.file_index != 0 {
        return Err(EINVAL);
    }
    if sqe.opcode == IORING_OP_EPOLL_CTL {
        let op = sqe.len;
        let event = if sys::has_event(op) { task::read_user(sqe.addr)? } else { EpollEvent::default() };
        return Ok(Op::Epoll(EpollOp::Ctl { epfd: sqe.fd, op, fd: sqe.off as i32, event }));
    }
    if sqe.off != 0 || sqe.op_flags != 0 {
        return Err(EINVAL);
    }
    Ok(Op::Epoll(EpollOp::Wait { events: sqe.addr, max: sqe.len as i32 }))
}

pub fn issue(ring: &Arc<IoUring>, mut req: Box<Request>) -> Issued {
    let res = match req.op {
        Op::Epoll(EpollOp::Ctl { epfd, op, fd, event }) => sys::do_ctl(epfd, op, fd, event).map(|()| 0),
        Op::Epoll(EpollOp::Wait { events, max }) => {
            let file = req.file.clone().expect("opdef: EPOLL_WAIT needs a file");
            let sent = sys::check_events(events, max).and_then(|max| {
                let ep = epoll::of(&file).ok_or(EINVAL)?;
                sys::put_events(events, &ep.take_events(max))
            });
            if sent == Ok(0) {
                // Nothing ready: tried again when the epoll file is (it never goes to
                // io-wq, where it would only wait the same way).
                req.poll_retries = 0;
                return poll::arm_retry(ring, req, false).map(|req| (req, -EAGAIN.0));
            }
            sent
        }
        _ => Err(EINVAL),
    };
    Some((req, res.map_or_else(|e| -e.0, |n| n as i32)))
}
