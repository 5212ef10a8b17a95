//! IORING_OP_FADVISE and IORING_OP_MADVISE: advice about file and memory use.
//! File advice acts on the page cache of files that have one (`Node::advise`; WILLNEED
//! reads ahead, so it runs in io-wq) and is accepted as a no-op elsewhere; memory advice
//! runs madvise(2) (MADV_DONTNEED really drops the pages).

use alloc::boxed::Box;
use alloc::sync::Arc;

use super::uapi::Sqe;
use super::{IoUring, Issued, Op, Request};
use crate::errno::*;

pub const IORING_OP_FADVISE: u8 = 24;
pub const IORING_OP_MADVISE: u8 = 25;

/// POSIX_FADV_NORMAL .. POSIX_FADV_NOREUSE.
const FADV_MAX: u32 = 5;
const POSIX_FADV_WILLNEED: u32 = 3;

pub fn prep(_ring: &IoUring, sqe: &Sqe) -> KResult<Op> {
    if sqe.buf_index != 0 || sqe.file_index != 0 {
        return Err(EINVAL);
    }
    match sqe.opcode {
        IORING_OP_FADVISE if sqe.addr == 0 => Ok(Op::Fadvise { advice: sqe.op_flags, offset: sqe.off, len: u64::from(sqe.len) }),
        IORING_OP_MADVISE if sqe.off == 0 => {
            Ok(Op::Madvise { addr: sqe.addr, len: u64::from(sqe.len), advice: sqe.op_flags })
        }
        _ => Err(EINVAL),
    }
}

pub fn issue(ring: &Arc<IoUring>, req: Box<Request>) -> Issued {
    let res = match req.op {
        Op::Fadvise { advice, offset, len } => {
            let file = req.file.as_ref().expect("opdef: FADVISE needs a file");
            if !file.node.seekable() {
                -ESPIPE.0
            } else if advice > FADV_MAX {
                -EINVAL.0
            } else if advice >= POSIX_FADV_WILLNEED && !req.in_iowq {
                // It may read or write back: io-wq, as Linux's io_fadvise_force_async.
                super::io_wq::enqueue(ring, req);
                return None;
            } else {
                match file.node.advise(offset, len, advice) {
                    Ok(()) => 0,
                    Err(e) => -e.0,
                }
            }
        }
        Op::Madvise { addr, len, advice } => match crate::syscall::mm::do_madvise(addr, len, u64::from(advice)) {
            Ok(_) => 0,
            Err(e) => -e.0,
        },
        _ => -EINVAL.0,
    };
    Some((req, res))
}
