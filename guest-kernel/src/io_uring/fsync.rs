//! IORING_OP_FSYNC: makes a file's data (and, without IORING_FSYNC_DATASYNC, its
//! metadata) durable, as fsync(2) and fdatasync(2) do.

use alloc::boxed::Box;
use alloc::sync::Arc;

use super::uapi::{Sqe, IORING_FSYNC_DATASYNC};
use super::{IoUring, Issued, Op, Request};
use crate::errno::{KResult, EINVAL};

pub fn prep(sqe: &Sqe) -> KResult<Op> {
    if sqe.addr != 0 || sqe.buf_index != 0 || sqe.op_flags & !IORING_FSYNC_DATASYNC != 0 {
        return Err(EINVAL);
    }
    Ok(Op::Fsync { datasync: sqe.op_flags & IORING_FSYNC_DATASYNC != 0 })
}

pub fn issue(_ring: &Arc<IoUring>, req: Box<Request>) -> Issued {
    let Op::Fsync { datasync: _ } = req.op else { return Some((req, -EINVAL.0)) };
    let file = req.file.as_ref().expect("opdef: FSYNC needs a file");
    let res = if !file.node.seekable() {
        -EINVAL.0
    } else {
        match file.node.sync() {
            Ok(()) => 0,
            Err(e) => -e.0,
        }
    };
    Some((req, res))
}
