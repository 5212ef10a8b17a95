//! IORING_OP_NOP: completes at once with 0. The smallest round trip through the rings.

use alloc::boxed::Box;
use alloc::sync::Arc;

use super::uapi::Sqe;
use super::{IoUring, Issued, Op, Request};
use crate::errno::{KResult, EINVAL};

pub fn prep(sqe: &Sqe) -> KResult<Op> {
    if sqe.op_flags != 0 || sqe.buf_index != 0 {
        return Err(EINVAL);
    }
    Ok(Op::Nop)
}

pub fn issue(_ring: &Arc<IoUring>, req: Box<Request>) -> Issued {
    Some((req, 0))
}
