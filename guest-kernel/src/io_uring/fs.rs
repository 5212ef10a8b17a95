//! File-system operations: IORING_OP_OPENAT, OPENAT2, CLOSE, STATX, MKDIRAT, UNLINKAT,
//! RENAMEAT, SYMLINKAT, LINKAT. Paths are copied at prep (FEAT_SUBMIT_STABLE); each op
//! runs the matching syscall's code in an io-wq worker of the submitter (path walks may
//! wait for 9p), except CLOSE, which never sleeps and runs inline. OPENAT and OPENAT2
//! may open straight into the ring's fixed-file table (`file_index`: a 1-based slot or
//! IORING_FILE_INDEX_ALLOC), and CLOSE may empty a slot of it.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;

use super::uapi::{Sqe, IOSQE_FIXED_FILE};
use super::{IoUring, Issued, Op, Request};
use crate::errno::*;
use crate::fs::file::{O_CLOEXEC, O_LARGEFILE, O_PATH};
use crate::syscall::fs::{self as sys, OpenHow};

pub const IORING_OP_OPENAT: u8 = 18;
pub const IORING_OP_CLOSE: u8 = 19;
pub const IORING_OP_OPENAT2: u8 = 28;
pub const IORING_OP_STATX: u8 = 21;
pub const IORING_OP_RENAMEAT: u8 = 35;
pub const IORING_OP_UNLINKAT: u8 = 36;
pub const IORING_OP_MKDIRAT: u8 = 37;
pub const IORING_OP_SYMLINKAT: u8 = 38;
pub const IORING_OP_LINKAT: u8 = 39;

const AT_REMOVEDIR: u32 = 0x200;

pub enum FsOp {
    /// `how` is checked at issue (a bad one is the CQE's error, as Linux); `slot` is the
    /// SQE's file_index (0: a descriptor).
    OpenAt { dirfd: i32, path: String, how: OpenHow, slot: u32 },
    Close { fd: i32, slot: u32 },
    Statx { dirfd: i32, path: String, flags: u32, mask: u32, buf: u64 },
    MkdirAt { dirfd: i32, path: String, mode: u32 },
    UnlinkAt { dirfd: i32, path: String, flags: u32 },
    RenameAt { olddirfd: i32, old: String, newdirfd: i32, new: String, flags: u32 },
    SymlinkAt { target: String, dirfd: i32, path: String },
    LinkAt { olddirfd: i32, old: String, newdirfd: i32, new: String, flags: u32 },
}

pub fn prep(_ring: &IoUring, sqe: &Sqe) -> KResult<Op> {
    let dirfd = sqe.fd;
    let path = || sys::user_path(sqe.addr);
    let op = match sqe.opcode {
        IORING_OP_OPENAT | IORING_OP_OPENAT2 => {
            let mut how = if sqe.opcode == IORING_OP_OPENAT {
                OpenHow::legacy(sqe.op_flags, sqe.len)
            } else {
                OpenHow::from_user(sqe.off, u64::from(sqe.len))?
            };
            if sqe.buf_index != 0 {
                return Err(EINVAL);
            }
            if sqe.flags & IOSQE_FIXED_FILE != 0 {
                return Err(EBADF);
            }
            if how.flags & u64::from(O_PATH) == 0 {
                how.flags |= u64::from(O_LARGEFILE);
            }
            let path = path()?;
            // A fixed slot has no close-on-exec.
            if sqe.file_index != 0 && how.flags & u64::from(O_CLOEXEC) != 0 {
                return Err(EINVAL);
            }
            FsOp::OpenAt { dirfd, path, how, slot: sqe.file_index }
        }
        IORING_OP_CLOSE => {
            if sqe.off != 0 || sqe.addr != 0 || sqe.len != 0 || sqe.op_flags != 0 || sqe.buf_index != 0 {
                return Err(EINVAL);
            }
            if sqe.flags & IOSQE_FIXED_FILE != 0 {
                return Err(EBADF);
            }
            if sqe.file_index != 0 && sqe.fd != 0 {
                return Err(EINVAL);
            }
            FsOp::Close { fd: sqe.fd, slot: sqe.file_index }
        }
        _ if sqe.buf_index != 0 || sqe.file_index != 0 => return Err(EINVAL),
        IORING_OP_STATX => FsOp::Statx { dirfd, path: path()?, flags: sqe.op_flags, mask: sqe.len, buf: sqe.off },
        IORING_OP_MKDIRAT => {
            if sqe.off != 0 || sqe.op_flags != 0 {
                return Err(EINVAL);
            }
            FsOp::MkdirAt { dirfd, path: path()?, mode: sqe.len }
        }
        IORING_OP_UNLINKAT => {
            if sqe.off != 0 || sqe.len != 0 || sqe.op_flags & !AT_REMOVEDIR != 0 {
                return Err(EINVAL);
            }
            FsOp::UnlinkAt { dirfd, path: path()?, flags: sqe.op_flags }
        }
        IORING_OP_RENAMEAT => {
            FsOp::RenameAt { olddirfd: dirfd, old: path()?, newdirfd: sqe.len as i32, new: sys::user_path(sqe.off)?, flags: sqe.op_flags }
        }
        IORING_OP_SYMLINKAT => {
            if sqe.len != 0 || sqe.op_flags != 0 {
                return Err(EINVAL);
            }
            FsOp::SymlinkAt { target: path()?, dirfd, path: sys::user_path(sqe.off)? }
        }
        IORING_OP_LINKAT => {
            FsOp::LinkAt { olddirfd: dirfd, old: path()?, newdirfd: sqe.len as i32, new: sys::user_path(sqe.off)?, flags: sqe.op_flags }
        }
        _ => return Err(EINVAL),
    };
    Ok(Op::Fs(op))
}

pub fn issue(ring: &Arc<IoUring>, req: Box<Request>) -> Issued {
    let Op::Fs(op) = &req.op else { return Some((req, -EINVAL.0)) };
    let result = match op {
        FsOp::OpenAt { dirfd, path, how, slot } => open(ring, *dirfd, path, how, *slot),
        FsOp::Close { slot, .. } if *slot != 0 => {
            let old = ring.rsrc.lock().remove_file(*slot as usize - 1);
            old.map(drop).map(|()| 0)
        }
        // A ring cannot close itself through itself (Linux: EBADF).
        FsOp::Close { fd, .. } if is_ring(*fd) => Err(EBADF),
        FsOp::Close { fd, .. } => sys::do_close(*fd),
        FsOp::Statx { dirfd, path, flags, mask, buf } => sys::do_statx(*dirfd, path, u64::from(*flags), u64::from(*mask), *buf),
        FsOp::MkdirAt { dirfd, path, mode } => sys::do_mkdir(*dirfd, path, *mode),
        FsOp::UnlinkAt { dirfd, path, flags } => sys::do_unlink(*dirfd, path, flags & AT_REMOVEDIR != 0),
        FsOp::RenameAt { olddirfd, old, newdirfd, new, flags } => sys::do_rename(*olddirfd, old, *newdirfd, new, u64::from(*flags)),
        FsOp::SymlinkAt { target, dirfd, path } => sys::do_symlink(target, *dirfd, path),
        FsOp::LinkAt { olddirfd, old, newdirfd, new, flags } => sys::do_link(*olddirfd, old, *newdirfd, new, u64::from(*flags)),
    };
    let res = match result {
        Ok(v) => v as i32,
        Err(e) => -e.0,
    };
    Some((req, res))
}

/// OPENAT and OPENAT2: a new descriptor, or (`slot` != 0) a fixed-file slot.
fn open(ring: &IoUring, dirfd: i32, path: &str, how: &OpenHow, slot: u32) -> KResult<u64> {
    how.check()?;
    let file = sys::open_file(dirfd, path, how)?;
    if slot == 0 {
        return sys::install(file, how.flags & u64::from(O_CLOEXEC) != 0);
    }
    let mut rsrc = ring.rsrc.lock();
    let (res, old) = rsrc.install(file, slot)?;
    drop(rsrc);
    drop(old);
    Ok(res)
}

fn is_ring(fd: i32) -> bool {
    crate::task::current_process().files.lock().get(fd).is_ok_and(|f| f.node.as_any().is::<IoUring>())
}
