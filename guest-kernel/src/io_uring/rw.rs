//! Reads and writes: IORING_OP_READ, WRITE, READV, WRITEV, READ_FIXED, WRITE_FIXED.
//!
//! `off` is the file offset, or -1 for the file's current position (FEAT_RW_CUR_POS,
//! which advances it, as read(2) does). Buffers are in the submitter's address space; the
//! iovec array of READV/WRITEV is copied at prep (FEAT_SUBMIT_STABLE). A read or write
//! that would block (a pipe, an eventfd) is parked on the file's wait queue and retried
//! when the file wakes it.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;

use super::uapi::*;
use super::{IoUring, Issued, Op, Request};
use crate::errno::*;
use crate::fs::IoBuf;
use crate::syscall;

pub const IORING_OP_READV: u8 = 1;
pub const IORING_OP_WRITEV: u8 = 2;
pub const IORING_OP_READ_FIXED: u8 = 4;
pub const IORING_OP_WRITE_FIXED: u8 = 5;
pub const IORING_OP_READ: u8 = 22;
pub const IORING_OP_WRITE: u8 = 23;

/// RWF_HIPRI, RWF_DSYNC, RWF_SYNC, RWF_NOWAIT, RWF_APPEND: accepted (the RAM and device
/// files here are synchronous underneath, so each is already satisfied).
const RWF_SUPPORTED: u32 = 0x1f;

pub struct Rw {
    write: bool,
    /// Offset, or None for the file position.
    offset: Option<u64>,
    iovecs: Vec<(u64, usize)>,
}

pub fn prep(ring: &IoUring, sqe: &Sqe) -> KResult<Op> {
    if sqe.op_flags & !RWF_SUPPORTED != 0 {
        return Err(EOPNOTSUPP);
    }
    let write = matches!(sqe.opcode, IORING_OP_WRITEV | IORING_OP_WRITE_FIXED | IORING_OP_WRITE);
    let offset = (sqe.off != u64::MAX).then_some(sqe.off);
    if offset.is_some_and(|o| (o as i64) < 0) {
        return Err(EINVAL);
    }
    let iovecs = match sqe.opcode {
        IORING_OP_READV | IORING_OP_WRITEV => {
            if sqe.buf_index != 0 {
                return Err(EINVAL);
            }
            syscall::read_iovecs(sqe.addr, u64::from(sqe.len))?
        }
        IORING_OP_READ_FIXED | IORING_OP_WRITE_FIXED => {
            ring.rsrc.lock().check_fixed(sqe.buf_index, sqe.addr, u64::from(sqe.len))?;
            alloc::vec![(sqe.addr, sqe.len as usize)]
        }
        _ => {
            if sqe.buf_index != 0 {
                return Err(EINVAL);
            }
            alloc::vec![(sqe.addr, sqe.len as usize)]
        }
    };
    Ok(Op::Rw(Rw { write, offset, iovecs }))
}

/// Expected result of a full transfer (a shorter one breaks a link, as in Linux).
pub fn expected(op: &Op) -> Option<i32> {
    match op {
        Op::Rw(rw) => i32::try_from(rw.iovecs.iter().map(|v| v.1).sum::<usize>()).ok(),
        _ => None,
    }
}

/// One attempt; `nonblock` makes a pipe answer EAGAIN instead of sleeping.
fn attempt(req: &Request, rw: &Rw, nonblock: bool) -> KResult<usize> {
    let file = req.file.as_ref().expect("opdef: rw needs a file");
    if (rw.write && !file.writable()) || (!rw.write && !file.readable()) {
        return Err(EBADF);
    }
    let node = &file.node;
    let mm = req.mm.clone().ok_or(EFAULT)?;
    let mut pos_guard = (rw.offset.is_none() && node.seekable()).then(|| file.offset.lock());
    let mut pos = match (&pos_guard, rw.offset) {
        (Some(g), _) => **g,
        (None, Some(o)) => o,
        (None, None) => 0,
    };
    let mut total = 0usize;
    for &(addr, len) in &rw.iovecs {
        if len == 0 {
            continue;
        }
        let result = if rw.write {
            node.write(pos, &IoBuf::UserOf { mm: mm.clone(), addr, len }, nonblock)
        } else {
            node.read(pos, &mut IoBuf::UserOf { mm: mm.clone(), addr, len }, nonblock)
        };
        match result {
            Ok(n) => {
                total += n;
                pos += n as u64;
                if n < len {
                    break;
                }
            }
            Err(e) if total == 0 => return Err(e),
            Err(_) => break,
        }
    }
    if let Some(g) = pos_guard.as_mut() {
        **g = pos;
    }
    Ok(total)
}

pub fn issue(ring: &Arc<IoUring>, req: Box<Request>) -> Issued {
    let Op::Rw(rw) = &req.op else { return Some((req, -EINVAL.0)) };
    let file = req.file.clone().expect("opdef: rw needs a file");
    let pollable = file.node.poll_queue(rw.write).is_some() && !file.nonblock();
    match attempt(&req, rw, pollable) {
        Err(EAGAIN) if pollable => {
            // Would block: retry when the file wakes its readers (writers).
            let write = rw.write;
            let queue = file.node.poll_queue(write).expect("pollable");
            let ring = Arc::clone(ring);
            queue.add_callback(Box::new(move || {
                let again = issue(&ring, req);
                if let Some((req, res)) = again {
                    ring.complete_async(req, res);
                }
            }));
            None
        }
        Ok(n) => Some((req, n as i32)),
        Err(e) => Some((req, -e.0)),
    }
}
