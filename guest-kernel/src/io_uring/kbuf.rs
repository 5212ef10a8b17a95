//! Provided buffers (Linux's io_uring/kbuf.c), the classic kind: IORING_OP_PROVIDE_BUFFERS
//! hands the ring a group of buffers (`nbufs` of `len` bytes from `addr`, ids from
//! `bid`), IORING_OP_REMOVE_BUFFERS takes some back. A READ or READV with
//! IOSQE_BUFFER_SELECT names a group instead of a buffer: the kernel picks one when the
//! read happens, and the CQE says which (IORING_CQE_F_BUFFER, the id in the upper 16
//! bits of `flags`). A read that has to wait gives its buffer back until it retries.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::sync::Arc;

use super::uapi::Sqe;
use super::{IoUring, Issued, Op, Request};
use crate::errno::*;

pub const IORING_OP_PROVIDE_BUFFERS: u8 = 31;
pub const IORING_CQE_F_BUFFER: u32 = 1 << 0;
pub const IORING_CQE_BUFFER_SHIFT: u32 = 16;
/// Most buffers one PROVIDE_BUFFERS may name (ids are 16 bits).
const MAX_BIDS_PER_BGID: u64 = 1 << 16;
/// Most buffers a group holds (Linux counts them in a u16).
const MAX_GROUP_BUFFERS: usize = u16::MAX as usize;

/// One provided buffer.
#[derive(Clone, Copy)]
pub struct Buf {
    pub addr: u64,
    pub len: u32,
    pub bid: u16,
}

/// The ring's buffer groups by id, each in the order its buffers are handed out.
#[derive(Default)]
pub struct Groups(BTreeMap<u16, VecDeque<Buf>>);

impl Groups {
    /// Takes the next buffer of group `bgid` (ENOBUFS if there is none).
    pub fn select(&mut self, bgid: u16) -> KResult<Buf> {
        self.0.get_mut(&bgid).and_then(VecDeque::pop_front).ok_or(ENOBUFS)
    }

    /// Gives back a buffer a request did not use; it is the next one handed out.
    pub fn recycle(&mut self, bgid: u16, buf: Buf) {
        self.0.entry(bgid).or_default().push_front(buf);
    }
}

pub enum KbufOp {
    Provide { addr: u64, len: u32, nbufs: u32, bgid: u16, bid: u16 },
    Remove { nbufs: u32, bgid: u16 },
}

pub fn prep(_ring: &IoUring, sqe: &Sqe) -> KResult<Op> {
    if sqe.op_flags != 0 || sqe.file_index != 0 {
        return Err(EINVAL);
    }
    let nbufs = sqe.fd as u32;
    let bgid = sqe.buf_index;
    if nbufs == 0 || u64::from(nbufs) > MAX_BIDS_PER_BGID {
        // Linux: too many (or none) to provide is E2BIG, to remove EINVAL.
        return Err(if sqe.opcode == IORING_OP_PROVIDE_BUFFERS { E2BIG } else { EINVAL });
    }
    if sqe.opcode != IORING_OP_PROVIDE_BUFFERS {
        if sqe.addr != 0 || sqe.len != 0 || sqe.off != 0 {
            return Err(EINVAL);
        }
        return Ok(Op::Kbuf(KbufOp::Remove { nbufs, bgid }));
    }
    if sqe.len == 0 {
        return Err(EINVAL);
    }
    let size = u64::from(sqe.len).checked_mul(u64::from(nbufs)).ok_or(EOVERFLOW)?;
    let end = sqe.addr.checked_add(size).ok_or(EOVERFLOW)?;
    if end > crate::mm::USER_END {
        return Err(EFAULT);
    }
    if sqe.off > u64::from(u16::MAX) {
        return Err(E2BIG);
    }
    if sqe.off + u64::from(nbufs) > MAX_BIDS_PER_BGID {
        return Err(EINVAL);
    }
    Ok(Op::Kbuf(KbufOp::Provide { addr: sqe.addr, len: sqe.len, nbufs, bgid, bid: sqe.off as u16 }))
}

pub fn issue(ring: &Arc<IoUring>, req: Box<Request>) -> Issued {
    let Op::Kbuf(op) = &req.op else { return Some((req, -EINVAL.0)) };
    let res = {
        let mut groups = ring.kbufs.lock();
        match *op {
            KbufOp::Provide { addr, len, nbufs, bgid, bid } => {
                // A full group takes no more: EOVERFLOW if none of these fit.
                let list = groups.0.entry(bgid).or_default();
                let room = MAX_GROUP_BUFFERS - list.len();
                for i in 0..nbufs.min(room as u32) {
                    list.push_back(Buf { addr: addr + u64::from(i) * u64::from(len), len, bid: bid.wrapping_add(i as u16) });
                }
                if room == 0 { -EOVERFLOW.0 } else { 0 }
            }
            // An emptied group still exists (0); one never provided is ENOENT.
            KbufOp::Remove { nbufs, bgid } => match groups.0.get_mut(&bgid) {
                Some(list) => {
                    let n = (nbufs as usize).min(list.len());
                    list.drain(..n);
                    n as i32
                }
                None => -ENOENT.0,
            },
        }
    };
    Some((req, res))
}
