//! IORING_OP_MSG_RING (Linux's io_uring/msg_ring.c): one ring posts a CQE on another
//! (MSG_DATA), or hands it one of its fixed files (MSG_SEND_FD).
//!
//! MSG_DATA: the target gets a CQE with user_data `off` and res `len` (its flags are
//! `file_index` with IORING_MSG_RING_FLAGS_PASS, else 0); the sender's res is 0.
//! MSG_SEND_FD: the sender's fixed file `addr3` goes into the target's fixed table at
//! `file_index` (slot + 1, or IORING_FILE_INDEX_ALLOC); the target gets a CQE with the
//! slot unless IORING_MSG_RING_CQE_SKIP.

use alloc::boxed::Box;
use alloc::sync::Arc;

use super::uapi::{Cqe, Sqe};
use super::{IoUring, Issued, Op, Request};
use crate::errno::*;

const IORING_OP_MSG_RING: u8 = 40;
const IORING_MSG_DATA: u64 = 0;
const IORING_MSG_SEND_FD: u64 = 1;
const IORING_MSG_RING_CQE_SKIP: u32 = 1 << 0;
const IORING_MSG_RING_FLAGS_PASS: u32 = 1 << 1;

#[derive(Clone, Copy)]
pub struct MsgRing {
    cmd: u64,
    user_data: u64,
    len: u32,
    src: u64,
    dst: u32,
    flags: u32,
}

pub fn prep(_ring: &IoUring, sqe: &Sqe) -> KResult<Op> {
    prep_sqe(sqe)
}

fn prep_sqe(sqe: &Sqe) -> KResult<Op> {
    if sqe.buf_index != 0 || sqe.personality != 0 {
        return Err(EINVAL);
    }
    let flags = sqe.op_flags;
    if flags & !(IORING_MSG_RING_CQE_SKIP | IORING_MSG_RING_FLAGS_PASS) != 0 {
        return Err(EINVAL);
    }
    // Only the low 32 bits of `addr` are the command.
    Ok(Op::MsgRing(MsgRing { cmd: sqe.addr & 0xffff_ffff, user_data: sqe.off, len: sqe.len, src: sqe.addr3, dst: sqe.file_index, flags }))
}

pub fn issue(ring: &Arc<IoUring>, req: Box<Request>) -> Issued {
    let Op::MsgRing(m) = req.op else { return Some((req, -EINVAL.0)) };
    let file = req.file.clone().expect("opdef: MSG_RING names a ring");
    let Some(target) = file.node.as_any().downcast_ref::<IoUring>().map(IoUring::arc) else {
        return Some((req, -EBADFD.0));
    };
    let res = match m.cmd {
        IORING_MSG_DATA => send_data(&target, m),
        IORING_MSG_SEND_FD => send_fd(ring, &target, m),
        _ => Err(EINVAL),
    };
    Some((req, res.unwrap_or_else(|e| -e.0)))
}

fn send_data(target: &Arc<IoUring>, m: MsgRing) -> KResult<i32> {
    if m.src != 0 || m.flags & IORING_MSG_RING_CQE_SKIP != 0 {
        return Err(EINVAL);
    }
    if m.flags & IORING_MSG_RING_FLAGS_PASS == 0 && m.dst != 0 {
        return Err(EINVAL);
    }
    if target.disabled.load(core::sync::atomic::Ordering::Acquire) {
        return Err(EBADFD);
    }
    let flags = if m.flags & IORING_MSG_RING_FLAGS_PASS != 0 { m.dst } else { 0 };
    target.post_remote(Cqe::new(m.user_data, m.len as i32, flags));
    Ok(0)
}

fn send_fd(ring: &Arc<IoUring>, target: &Arc<IoUring>, m: MsgRing) -> KResult<i32> {
    if m.len != 0 || Arc::ptr_eq(ring, target) || m.flags & IORING_MSG_RING_FLAGS_PASS != 0 {
        return Err(EINVAL);
    }
    let src = u32::try_from(m.src).map_err(|_| EBADF)?;
    let file = ring.rsrc.lock().file(src)?;
    let res = {
        let mut rsrc = target.rsrc.lock();
        if rsrc.files_len() == 0 {
            return Err(ENXIO);
        }
        let (res, old) = rsrc.install(file, m.dst)?;
        drop(rsrc);
        drop(old);
        res as i32
    };
    if m.flags & IORING_MSG_RING_CQE_SKIP == 0 {
        target.post_remote(Cqe::new(m.user_data, res, 0));
    }
    Ok(res)
}

/// IORING_REGISTER_SEND_MSG_RING (io_uring_register with fd -1): a MSG_DATA described by
/// the SQE at `arg`, sent with no ring of the caller's; only MSG_DATA makes sense
/// without a source ring.
pub fn send_blind(arg: u64, nr: u32) -> KResult<u64> {
    if arg == 0 || nr != 1 {
        return Err(EINVAL);
    }
    let sqe: Sqe = crate::task::read_user(arg)?;
    if sqe.flags != 0 || sqe.opcode != IORING_OP_MSG_RING {
        return Err(EINVAL);
    }
    let Op::MsgRing(m) = prep_sqe(&sqe)? else { return Err(EINVAL) };
    if m.cmd != IORING_MSG_DATA {
        return Err(EINVAL);
    }
    let file = crate::task::current_process().files.lock().get(sqe.fd)?;
    let target = file.node.as_any().downcast_ref::<IoUring>().map(IoUring::arc).ok_or(EBADFD)?;
    send_data(&target, m).map(|_| 0)
}
