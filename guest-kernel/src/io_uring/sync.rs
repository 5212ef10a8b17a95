//! Making data durable and shaping files (Linux's io_uring/sync.c and truncate.c):
//! IORING_OP_FSYNC (IORING_FSYNC_DATASYNC as fdatasync), SYNC_FILE_RANGE, FALLOCATE and
//! FTRUNCATE. All but FSYNC on a disk may sleep (a 9p round trip), so they run in io-wq,
//! as Linux forces them async; FSYNC on a disk is an asynchronous FLUSH.

use alloc::boxed::Box;
use alloc::sync::Arc;

use super::uapi::{Sqe, IORING_FSYNC_DATASYNC};
use super::{IoUring, Issued, Op, Request};
use crate::drivers::virtio::blk::{BlockNode, T_FLUSH};
use crate::errno::*;
use crate::sync::SpinLock;
use crate::syscall::fs as sys;

pub enum SyncOp {
    /// fsync and fdatasync do the same here: devices flush everything.
    Fsync,
    SyncRange { off: u64, len: u64, flags: u32 },
    Fallocate { mode: u32, off: u64, len: u64 },
    Ftruncate { len: u64 },
}

pub fn prep(sqe: &Sqe) -> KResult<Op> {
    if sqe.addr != 0 || sqe.buf_index != 0 || sqe.file_index != 0 || sqe.op_flags & !IORING_FSYNC_DATASYNC != 0 {
        return Err(EINVAL);
    }
    Ok(Op::Sync(SyncOp::Fsync))
}

pub fn sync_range_prep(_ring: &IoUring, sqe: &Sqe) -> KResult<Op> {
    if sqe.addr != 0 || sqe.buf_index != 0 || sqe.file_index != 0 {
        return Err(EINVAL);
    }
    Ok(Op::Sync(SyncOp::SyncRange { off: sqe.off, len: u64::from(sqe.len), flags: sqe.op_flags }))
}

pub fn fallocate_prep(_ring: &IoUring, sqe: &Sqe) -> KResult<Op> {
    if sqe.buf_index != 0 || sqe.op_flags != 0 || sqe.file_index != 0 {
        return Err(EINVAL);
    }
    // The length travels in `addr`, the mode in `len`.
    Ok(Op::Sync(SyncOp::Fallocate { mode: sqe.len, off: sqe.off, len: sqe.addr }))
}

pub fn truncate_prep(_ring: &IoUring, sqe: &Sqe) -> KResult<Op> {
    if sqe.op_flags != 0 || sqe.addr != 0 || sqe.len != 0 || sqe.buf_index != 0 || sqe.file_index != 0 || sqe.addr3 != 0 {
        return Err(EINVAL);
    }
    Ok(Op::Sync(SyncOp::Ftruncate { len: sqe.off }))
}

pub fn issue(ring: &Arc<IoUring>, req: Box<Request>) -> Issued {
    let Op::Sync(op) = &req.op else { return Some((req, -EINVAL.0)) };
    let file = req.file.clone().expect("opdef: sync ops need a file");
    let result = match *op {
        SyncOp::Fsync => return fsync(ring, req, file),
        SyncOp::SyncRange { off, len, flags } => sys::sync_range(&file, off, len, flags),
        SyncOp::Fallocate { mode, off, len } => sys::fallocate_file(&file, mode, off, len),
        SyncOp::Ftruncate { len } => sys::truncate_file(&file, len),
    };
    Some((req, result.map_or_else(|e| -e.0, |()| 0)))
}

fn fsync(ring: &Arc<IoUring>, req: Box<Request>, file: Arc<crate::fs::OpenFile>) -> Issued {
    if let Some(disk) = file.node.as_any().downcast_ref::<BlockNode>() {
        // A disk: a FLUSH request, completed from the interrupt handler.
        let req_in_iowq = req.in_iowq;
        let slot = Arc::new(SpinLock::new(Some(req)));
        let slot2 = Arc::clone(&slot);
        let ring2 = Arc::clone(ring);
        let submitted = disk.dev.submit(T_FLUSH, 0, &[], Box::new(move |result| {
            // The slot lock ends here, before completing (which may take other locks).
            let taken = slot2.lock().take();
            if let Some(req) = taken {
                ring2.complete_async(req, match result { Ok(_) => 0, Err(e) => -e.0 });
            }
        }), req_in_iowq);
        return match submitted {
            Ok(()) => None,
            Err(e) => {
                let req = slot.lock().take()?;
                if e == EAGAIN {
                    // The queue is full: wait for room in io-wq.
                    super::io_wq::enqueue(ring, req);
                    return None;
                }
                Some((req, -e.0))
            }
        };
    }
    // A remote file's flush waits for the server: in io-wq.
    if !file.node.nowait() && !req.in_iowq {
        super::io_wq::enqueue(ring, req);
        return None;
    }
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
