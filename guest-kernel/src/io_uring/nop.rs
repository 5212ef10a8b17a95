//! IORING_OP_NOP: completes at once with 0. The smallest round trip through the rings.
//!
//! Its flags (`nop_flags`) exercise the engine's paths for tests: INJECT_RESULT posts
//! `len` as the result (a negative one fails the request for its links); FILE (with
//! FIXED_FILE) looks up `fd` (-EBADF), FIXED_BUFFER registered buffer `buf_index`
//! (-EFAULT); TW completes from task work; CQE32 (on a ring with 32-byte CQEs, or a
//! CQE_MIXED one where this CQE is then 32 bytes; else -EINVAL) puts `off` and `addr` in
//! the CQE's two extra words.

use alloc::boxed::Box;
use alloc::sync::Arc;

use super::uapi::{Sqe, IORING_CQE_F_32, IORING_SETUP_CQE32, IORING_SETUP_CQE_MIXED, IOSQE_FIXED_FILE};
use super::{tctx, IoUring, Issued, Op, Request};
use crate::errno::{KResult, EBADF, EFAULT, EINVAL};

const IORING_NOP_INJECT_RESULT: u32 = 1 << 0;
const IORING_NOP_FILE: u32 = 1 << 1;
const IORING_NOP_FIXED_FILE: u32 = 1 << 2;
const IORING_NOP_FIXED_BUFFER: u32 = 1 << 3;
const IORING_NOP_TW: u32 = 1 << 4;
const IORING_NOP_CQE32: u32 = 1 << 5;
const NOP_FLAGS: u32 =
    IORING_NOP_INJECT_RESULT | IORING_NOP_FILE | IORING_NOP_FIXED_FILE | IORING_NOP_FIXED_BUFFER | IORING_NOP_TW | IORING_NOP_CQE32;

#[derive(Clone, Copy)]
pub struct Nop {
    flags: u32,
    result: i32,
    fd: i32,
    buf_index: u16,
    extra: [u64; 2],
}

pub fn prep(ring: &IoUring, sqe: &Sqe) -> KResult<Op> {
    let flags = sqe.op_flags;
    if flags & !NOP_FLAGS != 0 || (flags & IORING_NOP_CQE32 != 0 && ring.setup_flags & (IORING_SETUP_CQE32 | IORING_SETUP_CQE_MIXED) == 0) {
        return Err(EINVAL);
    }
    if flags == 0 {
        return Ok(Op::Nop);
    }
    let result = if flags & IORING_NOP_INJECT_RESULT != 0 { sqe.len as i32 } else { 0 };
    let extra = if flags & IORING_NOP_CQE32 != 0 { [sqe.off, sqe.addr] } else { [0; 2] };
    Ok(Op::NopFlags(Nop { flags, result, fd: sqe.fd, buf_index: sqe.buf_index, extra }))
}

pub fn issue(ring: &Arc<IoUring>, mut req: Box<Request>) -> Issued {
    let Op::NopFlags(nop) = req.op else { return Some((req, 0)) };
    if nop.flags & IORING_NOP_TW != 0 {
        // Completed from the submitter's task work: issued again there, without the flag.
        req.op = Op::NopFlags(Nop { flags: nop.flags & !IORING_NOP_TW, ..nop });
        tctx::queue(ring, req);
        return None;
    }
    if nop.flags & IORING_NOP_FILE != 0 {
        let fixed = nop.flags & IORING_NOP_FIXED_FILE != 0 || req.flags & IOSQE_FIXED_FILE != 0;
        if super::opdef::lookup_file(ring, nop.fd, fixed).is_err() {
            return Some((req, -EBADF.0));
        }
    }
    if nop.flags & IORING_NOP_FIXED_BUFFER != 0 && ring.rsrc.lock().fixed_at(nop.buf_index).is_err() {
        return Some((req, -EFAULT.0));
    }
    req.extra = nop.extra;
    // On a CQE_MIXED ring this one CQE is a 32-byte one.
    if nop.flags & IORING_NOP_CQE32 != 0 && ring.setup_flags & IORING_SETUP_CQE_MIXED != 0 {
        req.cqe_flags |= IORING_CQE_F_32;
    }
    Some((req, nop.result))
}
