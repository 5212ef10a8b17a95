//! IORING_OP_FSETXATTR, SETXATTR, FGETXATTR and GETXATTR (Linux's io_uring/xattr.c):
//! the xattr syscalls, with the name, value and path copied at prep, run in io-wq (a 9p
//! file's attributes are a host round trip away). The path ops refuse IOSQE_FIXED_FILE
//! (-EBADF), as Linux does; FSETXATTR and FGETXATTR take fixed files.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use super::uapi::{Sqe, IOSQE_FIXED_FILE};
use super::{IoUring, Issued, Op, Request};
use crate::errno::*;
use crate::syscall::xattr as sys;

pub const IORING_OP_FSETXATTR: u8 = 41;
pub const IORING_OP_SETXATTR: u8 = 42;
pub const IORING_OP_FGETXATTR: u8 = 43;

pub struct XattrOp {
    name: String,
    /// Set: the value (None: a get into `addr` of `size` bytes).
    value: Option<Vec<u8>>,
    addr: u64,
    size: usize,
    flags: u32,
    /// SETXATTR/GETXATTR: the path (a final symlink followed); else the SQE's file.
    path: Option<String>,
}

pub fn prep(_ring: &IoUring, sqe: &Sqe) -> KResult<Op> {
    let by_path = !matches!(sqe.opcode, IORING_OP_FSETXATTR | IORING_OP_FGETXATTR);
    if by_path && sqe.flags & IOSQE_FIXED_FILE != 0 {
        return Err(EBADF);
    }
    let set = matches!(sqe.opcode, IORING_OP_FSETXATTR | IORING_OP_SETXATTR);
    let flags = sqe.op_flags;
    let value = if set {
        sys::check_flags(flags)?;
        let name = sys::user_name(sqe.addr)?;
        (name, Some(sys::user_value(sqe.off, sqe.len as usize)?))
    } else {
        if flags != 0 {
            return Err(EINVAL);
        }
        (sys::user_name(sqe.addr)?, None)
    };
    let path = if by_path { Some(crate::syscall::fs::user_path(sqe.addr3)?) } else { None };
    let (name, value) = value;
    Ok(Op::Xattr(XattrOp { name, value, addr: sqe.off, size: sqe.len as usize, flags, path }))
}

pub fn issue(_ring: &Arc<IoUring>, req: Box<Request>) -> Issued {
    let Op::Xattr(x) = &req.op else { return Some((req, -EINVAL.0)) };
    let node = match (&x.path, &req.file) {
        (Some(path), _) => crate::syscall::fs::cwd_lookup(path, true),
        (None, Some(f)) => Ok(Arc::clone(&f.node)),
        (None, None) => Err(EBADF),
    };
    let res = node.and_then(|node| match &x.value {
        Some(value) => sys::set(node.as_ref(), &x.name, value, x.flags),
        None => sys::get(node.as_ref(), &x.name, x.addr, x.size),
    });
    Some((req, res.map_or_else(|e| -e.0, |n| n as i32)))
}
