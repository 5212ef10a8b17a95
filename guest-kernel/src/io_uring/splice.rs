//! IORING_OP_SPLICE and IORING_OP_TEE (Linux's io_uring/splice.c): splice(2) and tee(2)
//! run by io-wq (Linux forces them async too), so they may wait for pipe data or room.
//!
//! SPLICE: out is `fd` at `off`, in is `splice_fd_in` (a fixed file with
//! SPLICE_F_FD_IN_FIXED) at `splice_off_in`; an offset of -1 means the file position.
//! TEE: in is `splice_fd_in`, out is `fd`; no offsets.

use alloc::boxed::Box;
use alloc::sync::Arc;

use super::uapi::Sqe;
use super::{IoUring, Issued, Op, Request};
use crate::errno::*;
use crate::syscall::fs as sys;

pub const IORING_OP_TEE: u8 = 33;
/// In `splice_flags`: `splice_fd_in` is a fixed-file index.
const SPLICE_F_FD_IN_FIXED: u32 = 1 << 31;

#[derive(Clone, Copy)]
pub struct Splice {
    fd_in: i32,
    off_in: Option<u64>,
    off_out: Option<u64>,
    len: u32,
    flags: u32,
    tee: bool,
}

pub fn prep(_ring: &IoUring, sqe: &Sqe) -> KResult<Op> {
    let flags = sqe.op_flags;
    if flags & !(SPLICE_F_FD_IN_FIXED | sys::SPLICE_F_ALL) != 0 {
        return Err(EINVAL);
    }
    let tee = sqe.opcode == IORING_OP_TEE;
    if tee && (sqe.addr != 0 || sqe.off != 0) {
        return Err(EINVAL);
    }
    let opt = |o: u64| (o != u64::MAX).then_some(o);
    Ok(Op::Splice(Splice { fd_in: sqe.file_index as i32, off_in: opt(sqe.addr), off_out: opt(sqe.off), len: sqe.len, flags, tee }))
}

pub fn issue(ring: &Arc<IoUring>, req: Box<Request>) -> Issued {
    let Op::Splice(s) = req.op else { return Some((req, -EINVAL.0)) };
    let fout = req.file.clone().expect("opdef: splice needs a file");
    let Ok(fin) = super::opdef::lookup_file(ring, s.fd_in, s.flags & SPLICE_F_FD_IN_FIXED != 0) else {
        return Some((req, -EBADF.0));
    };
    // Nothing to move: 0, whatever the two files are (Linux checks nothing more).
    if s.len == 0 {
        return Some((req, 0));
    }
    let flags = s.flags & !SPLICE_F_FD_IN_FIXED;
    let res = if s.tee {
        sys::tee_files(&fin, &fout, s.len as usize, flags)
    } else {
        sys::splice_files(&fin, s.off_in, &fout, s.off_out, s.len as usize, flags)
    };
    Some((req, res.map_or_else(|e| -e.0, |n| n as i32)))
}
