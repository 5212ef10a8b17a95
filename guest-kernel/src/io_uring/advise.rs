//! IORING_OP_FADVISE and IORING_OP_MADVISE: advice about file and memory use.
//! Our files keep no page cache to tune, so valid file advice is accepted as a no-op;
//! memory advice runs madvise(2) (MADV_DONTNEED really drops the pages).

use alloc::boxed::Box;
use alloc::sync::Arc;

use super::uapi::Sqe;
use super::{IoUring, Issued, Op, Request};
use crate::errno::*;

pub const IORING_OP_FADVISE: u8 = 24;
pub const IORING_OP_MADVISE: u8 = 25;

/// POSIX_FADV_NORMAL .. POSIX_FADV_NOREUSE.
const FADV_MAX: u32 = 5;

pub fn prep(_ring: &IoUring, sqe: &Sqe) -> KResult<Op> {
    if sqe.buf_index != 0 || sqe.file_index != 0 {
        return Err(EINVAL);
    }
    match sqe.opcode {
        IORING_OP_FADVISE if sqe.addr == 0 => Ok(Op::Fadvise { advice: sqe.op_flags }),
        IORING_OP_MADVISE if sqe.off == 0 => {
            Ok(Op::Madvise { addr: sqe.addr, len: u64::from(sqe.len), advice: sqe.op_flags })
        }
        _ => Err(EINVAL),
    }
}

pub fn issue(_ring: &Arc<IoUring>, req: Box<Request>) -> Issued {
    let res = match req.op {
        Op::Fadvise { advice } => {
            let file = req.file.as_ref().expect("opdef: FADVISE needs a file");
            if !file.node.seekable() {
                -ESPIPE.0
            } else if advice > FADV_MAX {
                -EINVAL.0
            } else {
                0
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
