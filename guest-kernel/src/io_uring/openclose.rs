//! Making and handing over descriptors (Linux's io_uring/openclose.c, the part OPENAT and
//! CLOSE in `fs` do not cover): IORING_OP_PIPE, IORING_OP_FIXED_FD_INSTALL, and the
//! direct (fixed-table) slots they may use.

use alloc::boxed::Box;
use alloc::sync::Arc;

use super::uapi::{Sqe, IOSQE_FIXED_FILE};
use super::{IoUring, Issued, Op, Request};
use crate::errno::*;
use crate::fs::file::{O_CLOEXEC, O_DIRECT, O_NONBLOCK};
use crate::fs::pipe;
use crate::task;

pub const IORING_OP_PIPE: u8 = 62;
/// `file_index` meaning "any free slot".
pub const IORING_FILE_INDEX_ALLOC: u32 = u32::MAX;
const IORING_FIXED_FD_NO_CLOEXEC: u32 = 1 << 0;

pub enum OpenCloseOp {
    Pipe { fds: u64, flags: u32, slot: u32 },
    InstallFd { cloexec: bool },
}

pub fn prep(_ring: &IoUring, sqe: &Sqe) -> KResult<Op> {
    if sqe.opcode == IORING_OP_PIPE {
        if sqe.fd != 0 || sqe.off != 0 || sqe.addr3 != 0 {
            return Err(EINVAL);
        }
        if sqe.op_flags & !(O_CLOEXEC | O_NONBLOCK | O_DIRECT) != 0 {
            return Err(EINVAL);
        }
        return Ok(Op::OpenClose(OpenCloseOp::Pipe { fds: sqe.addr, flags: sqe.op_flags, slot: sqe.file_index }));
    }
    if sqe.off != 0 || sqe.addr != 0 || sqe.len != 0 || sqe.buf_index != 0 || sqe.file_index != 0 || sqe.addr3 != 0 {
        return Err(EINVAL);
    }
    // It installs a fixed file: the SQE must name one.
    if sqe.flags & IOSQE_FIXED_FILE == 0 {
        return Err(EBADF);
    }
    if sqe.op_flags & !IORING_FIXED_FD_NO_CLOEXEC != 0 {
        return Err(EINVAL);
    }
    Ok(Op::OpenClose(OpenCloseOp::InstallFd { cloexec: sqe.op_flags & IORING_FIXED_FD_NO_CLOEXEC == 0 }))
}

pub fn issue(ring: &Arc<IoUring>, req: Box<Request>) -> Issued {
    let Op::OpenClose(op) = &req.op else { return Some((req, -EINVAL.0)) };
    let res = match *op {
        OpenCloseOp::Pipe { fds, flags, slot: 0 } => crate::syscall::fs::do_pipe(fds, u64::from(flags)).map(|_| 0),
        OpenCloseOp::Pipe { fds, flags, slot } => pipe_fixed(ring, fds, flags, slot),
        OpenCloseOp::InstallFd { cloexec } => {
            let file = req.file.clone().expect("opdef: a fixed file");
            task::current_process().files.lock().insert(file, cloexec).map(|fd| fd as u64)
        }
    };
    Some((req, res.map_or_else(|e| -e.0, |v| v as i32)))
}

/// A pipe whose ends go to the ring's fixed table: two free slots (ALLOC), or slots
/// `slot - 1` and `slot`; their indices are written where fds would be. On any failure
/// the slots are as they were.
fn pipe_fixed(ring: &IoUring, fds: u64, flags: u32, slot: u32) -> KResult<u64> {
    if flags & O_CLOEXEC != 0 {
        return Err(EINVAL); // a fixed slot has no close-on-exec
    }
    let [a, b] = pipe::open_pair(flags);
    let mut rsrc = ring.rsrc.lock();
    let len = rsrc.files_len();
    if len == 0 {
        return Err(ENXIO);
    }
    let (slots, old) = if slot == IORING_FILE_INDEX_ALLOC {
        let first = rsrc.free_file_slot()?;
        let old_a = rsrc.set_file(first, Some(a))?;
        match rsrc.free_file_slot() {
            Ok(second) => ([first, second], [old_a, rsrc.set_file(second, Some(b))?]),
            Err(e) => {
                let mine = rsrc.set_file(first, None)?;
                drop(rsrc);
                drop((mine, old_a));
                return Err(e);
            }
        }
    } else {
        let first = (slot as usize).checked_sub(1).ok_or(EINVAL)?;
        if first + 1 >= len {
            return Err(EINVAL);
        }
        ([first, first + 1], [rsrc.set_file(first, Some(a))?, rsrc.set_file(first + 1, Some(b))?])
    };
    drop(rsrc);
    drop(old);
    if let Err(e) = task::write_user(fds, &[slots[0] as i32, slots[1] as i32]) {
        let mut rsrc = ring.rsrc.lock();
        let gone = [rsrc.set_file(slots[0], None), rsrc.set_file(slots[1], None)];
        drop(rsrc);
        drop(gone);
        return Err(e);
    }
    Ok(0)
}
