//! IORING_OP_URING_CMD (Linux's io_uring/uring_cmd.c): a command for the file's driver.
//! The one driver with commands here is virtio-blk's, and its one command is
//! BLOCK_URING_CMD_DISCARD (bytes `addr` .. `addr + addr3`, as a VIRTIO_BLK_T_DISCARD the
//! VMM serves with a hole punch), checked as Linux's blkdev_uring_cmd does. Other files
//! have no commands (-EOPNOTSUPP), but sockets: SIOCINQ, SIOCOUTQ, GETSOCKOPT and
//! SETSOCKOPT (Linux's io_uring_cmd_sock).

use alloc::boxed::Box;
use alloc::sync::Arc;

use super::uapi::Sqe;
use super::{IoUring, Issued, Op, Request};
use crate::drivers::virtio::blk::BlockNode;
use crate::errno::*;

/// `_IO(0x12, 0)`.
const BLOCK_URING_CMD_DISCARD: u32 = 0x1200;
const IORING_URING_CMD_FIXED: u32 = 1 << 0;
const IORING_URING_CMD_MULTISHOT: u32 = 1 << 1;

#[derive(Clone, Copy)]
pub struct UringCmd {
    cmd_op: u32,
    /// The SQE fields a block command must leave zero: ioprio, len, uring_cmd_flags,
    /// file_index (any set: -EINVAL).
    stray: bool,
    start: u64,
    len: u64,
    /// `optlen` of a socket's get/setsockopt (the SQE's `file_index` word).
    optlen: u32,
}

/// Linux's SOCKET_URING_OP_*: the socket's unread and unsent bytes, and get/setsockopt
/// (level and option name in `addr`, the value at `addr3`, its length by value in
/// `file_index`; GETSOCKOPT answers the length written).
const SOCKET_URING_OP_SIOCINQ: u32 = 0;
const SOCKET_URING_OP_SIOCOUTQ: u32 = 1;
const SOCKET_URING_OP_GETSOCKOPT: u32 = 2;
const SOCKET_URING_OP_SETSOCKOPT: u32 = 3;

fn socket_cmd(s: &dyn crate::net::Socket, cmd: &UringCmd) -> KResult<u64> {
    use crate::syscall::net as sys;
    let (level, name) = (cmd.start as u32 as i32, (cmd.start >> 32) as u32 as i32);
    // SIOCINQ and SIOCOUTQ go to the protocol's ioctl, which AF_UNIX's lacks on Linux
    // (ioctl(2) answers them on the socket itself).
    let protocol_ioctl = s.family() != crate::net::AF_UNIX;
    match cmd.cmd_op {
        SOCKET_URING_OP_SIOCINQ if protocol_ioctl => Ok(s.unread()? as u64),
        SOCKET_URING_OP_SIOCOUTQ if protocol_ioctl => Ok(s.unsent()? as u64),
        SOCKET_URING_OP_GETSOCKOPT => sys::get_sockopt(s, level, name, cmd.len, cmd.optlen as i32).map(u64::from),
        SOCKET_URING_OP_SETSOCKOPT => sys::set_sockopt(s, level, name, cmd.len, cmd.optlen as i32).map(|()| 0),
        _ => Err(EOPNOTSUPP),
    }
}

pub fn prep(_ring: &IoUring, sqe: &Sqe) -> KResult<Op> {
    // `off` is {cmd_op, __pad1}.
    if sqe.off >> 32 != 0 {
        return Err(EINVAL);
    }
    let flags = sqe.op_flags;
    if flags & !(IORING_URING_CMD_FIXED | IORING_URING_CMD_MULTISHOT) != 0 {
        return Err(EINVAL);
    }
    let stray = sqe.ioprio != 0 || sqe.len != 0 || flags != 0 || sqe.file_index != 0;
    Ok(Op::UringCmd(UringCmd { cmd_op: sqe.off as u32, stray, start: sqe.addr, len: sqe.addr3, optlen: sqe.file_index }))
}

pub fn issue(ring: &Arc<IoUring>, req: Box<Request>) -> Issued {
    let Op::UringCmd(cmd) = req.op else { return Some((req, -EINVAL.0)) };
    let file = req.file.clone().expect("opdef: URING_CMD needs a file");
    if let Ok(s) = crate::net::socket_of(&file) {
        let res = socket_cmd(&**s, &cmd);
        return Some((req, res.map_or_else(|e| -e.0, |v| v as i32)));
    }
    let Some(disk) = file.node.as_any().downcast_ref::<BlockNode>() else { return Some((req, -EOPNOTSUPP.0)) };
    let checked = (|| {
        if cmd.stray || cmd.cmd_op != BLOCK_URING_CMD_DISCARD {
            return Err(EINVAL);
        }
        if !file.writable() {
            return Err(EBADF);
        }
        if disk.dev.max_discard == 0 {
            return Err(EOPNOTSUPP);
        }
        disk.dev.discard_range(cmd.start, cmd.len)
    })();
    let (sector, sectors) = match checked {
        Ok(range) => range,
        Err(e) => return Some((req, -e.0)),
    };
    let may_wait = req.in_iowq;
    let ring2 = Arc::clone(ring);
    let slot = Arc::new(crate::sync::SpinLock::new(Some(req)));
    let slot2 = Arc::clone(&slot);
    // The disk's cached pages there are stale once the discard is done.
    disk.dev.page_cache.forget(cmd.start, cmd.len);
    let cache = Arc::clone(&disk.dev.page_cache);
    let (start, len) = (cmd.start, cmd.len);
    let sent = disk.dev.discard(
        sector,
        sectors,
        Box::new(move |r| {
            cache.forget(start, len);
            let taken = slot2.lock().take();
            if let Some(req) = taken {
                ring2.complete_async(req, r.map_or_else(|e| -e.0, |_| 0));
            }
        }),
        may_wait,
    );
    // Not sent: the completion was dropped unrun. A full queue is waited for in io-wq.
    let req = match sent {
        Ok(()) => return None,
        Err(e) => (slot.lock().take()?, e),
    };
    match req {
        (req, e) if e == EAGAIN && !may_wait => {
            super::io_wq::enqueue(ring, req);
            None
        }
        (req, e) => Some((req, -e.0)),
    }
}
