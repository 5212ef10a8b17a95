//! IORING_OP_FSYNC: makes a file's data (and, without IORING_FSYNC_DATASYNC, its
//! metadata) durable, as fsync(2) and fdatasync(2) do.

use alloc::boxed::Box;
use alloc::sync::Arc;

use super::uapi::{Sqe, IORING_FSYNC_DATASYNC};
use super::{IoUring, Issued, Op, Request};
use crate::drivers::virtio::blk::{BlockNode, T_FLUSH};
use crate::errno::{KResult, EAGAIN, EINVAL};
use crate::sync::SpinLock;

pub fn prep(sqe: &Sqe) -> KResult<Op> {
    if sqe.addr != 0 || sqe.buf_index != 0 || sqe.op_flags & !IORING_FSYNC_DATASYNC != 0 {
        return Err(EINVAL);
    }
    Ok(Op::Fsync)
}

pub fn issue(ring: &Arc<IoUring>, req: Box<Request>) -> Issued {
    let Op::Fsync = req.op else { return Some((req, -EINVAL.0)) };
    let file = req.file.clone().expect("opdef: FSYNC needs a file");
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
