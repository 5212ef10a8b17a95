//! The opcode table: one entry per IORING_OP_*, the single source of truth for what is
//! supported. It drives prep and issue, IORING_REGISTER_PROBE, and the feature table in
//! docs/DESIGN.md. An entry without `prep` is not supported: its SQEs complete with
//! -EINVAL, as Linux answers for opcodes it does not know, and the probe leaves it out.

use alloc::boxed::Box;
use alloc::sync::Arc;

use super::uapi::*;
use super::{advise, cancel, epoll, fs, futex, kbuf, msg_ring, net, nop, openclose, poll, rsrc, rw, splice, sync, timeout, uring_cmd, waitid, xattr, IoUring, Issued, Op, Request};
use crate::errno::*;
use crate::task;

pub struct OpDef {
    pub name: &'static str,
    /// The SQE's `fd` names a file the op works on.
    pub needs_file: bool,
    /// The op may touch the submitter's memory after submission (its buffers), so the
    /// request keeps a reference to the address space.
    pub user_buffers: bool,
    /// The op always sleeps: it is issued by an io-wq worker, never inline (Linux's
    /// REQ_F_FORCE_ASYNC from prep).
    pub force_async: bool,
    pub prep: Option<fn(&IoUring, &Sqe) -> KResult<Op>>,
    pub issue: fn(&Arc<IoUring>, Box<Request>) -> Issued,
}

/// Number of opcodes Linux defines today (IORING_OP_LAST: URING_CMD128 is the last).
pub const IORING_OP_LAST: usize = 65;

const fn unsupported(name: &'static str) -> OpDef {
    OpDef { name, needs_file: false, user_buffers: false, force_async: false, prep: None, issue: fail_issue }
}

fn fail_issue(_ring: &Arc<IoUring>, req: Box<Request>) -> Issued {
    let res = match req.op {
        Op::Failed(e) => -e.0,
        _ => -EINVAL.0,
    };
    Some((req, res))
}

fn nop_prep(ring: &IoUring, sqe: &Sqe) -> KResult<Op> {
    nop::prep(ring, sqe)
}

/// The 128-byte ops (NOP128, URING_CMD128, Linux 6.19): a whole SQE on an SQE128 ring,
/// two consecutive slots on an SQE_MIXED one, -EINVAL elsewhere (see `submit_batch`).
pub fn is_128(opcode: u8) -> bool {
    matches!(opcode, IORING_OP_NOP128 | IORING_OP_URING_CMD128)
}

pub const IORING_OP_NOP128: u8 = 63;
pub const IORING_OP_URING_CMD128: u8 = 64;

fn fsync_prep(_ring: &IoUring, sqe: &Sqe) -> KResult<Op> {
    sync::prep(sqe)
}

const fn rw_op(name: &'static str) -> OpDef {
    OpDef { name, needs_file: true, user_buffers: true, force_async: false, prep: Some(rw::prep), issue: rw::issue }
}

/// Path operations walk directories that may be remote (9p): always in io-wq, as Linux.
const fn fs_op(name: &'static str) -> OpDef {
    path_op(name, fs::prep, fs::issue)
}

/// An op on no file that runs inline (it never sleeps).
const fn inline_op(name: &'static str, prep: fn(&IoUring, &Sqe) -> KResult<Op>, issue: fn(&Arc<IoUring>, Box<Request>) -> Issued) -> OpDef {
    OpDef { name, needs_file: false, user_buffers: false, force_async: false, prep: Some(prep), issue }
}

/// An op on the SQE's file that runs inline (it never sleeps, or sends itself where it may).
const fn file_op(name: &'static str, prep: fn(&IoUring, &Sqe) -> KResult<Op>, issue: fn(&Arc<IoUring>, Box<Request>) -> Issued) -> OpDef {
    OpDef { name, needs_file: true, user_buffers: false, force_async: false, prep: Some(prep), issue }
}

/// An op on the SQE's file that always sleeps: issued by io-wq.
const fn iowq_op(name: &'static str, prep: fn(&IoUring, &Sqe) -> KResult<Op>, issue: fn(&Arc<IoUring>, Box<Request>) -> Issued) -> OpDef {
    OpDef { name, needs_file: true, user_buffers: false, force_async: true, prep: Some(prep), issue }
}

/// An op on a path that always sleeps (the walk may wait for 9p): issued by io-wq.
const fn path_op(name: &'static str, prep: fn(&IoUring, &Sqe) -> KResult<Op>, issue: fn(&Arc<IoUring>, Box<Request>) -> Issued) -> OpDef {
    OpDef { name, needs_file: false, user_buffers: false, force_async: true, prep: Some(prep), issue }
}

/// A network op on the SQE's socket: tried inline, poll-armed when it would block.
const fn net_op(name: &'static str, prep: fn(&IoUring, &Sqe) -> KResult<Op>, issue: fn(&Arc<IoUring>, Box<Request>) -> Issued) -> OpDef {
    OpDef { name, needs_file: true, user_buffers: true, force_async: false, prep: Some(prep), issue }
}

const fn timeout_op(name: &'static str) -> OpDef {
    OpDef { name, needs_file: false, user_buffers: false, force_async: false, prep: Some(timeout::prep), issue: timeout::issue }
}

pub static OPS: [OpDef; IORING_OP_LAST] = [
    inline_op("NOP", nop_prep, nop::issue),
    rw_op("READV"),
    rw_op("WRITEV"),
    file_op("FSYNC", fsync_prep, sync::issue),
    rw_op("READ_FIXED"),
    rw_op("WRITE_FIXED"),
    file_op("POLL_ADD", poll::prep, poll::issue),
    inline_op("POLL_REMOVE", poll::prep, poll::issue),
    iowq_op("SYNC_FILE_RANGE", sync::sync_range_prep, sync::issue),
    net_op("SENDMSG", net::prep_send, net::issue_send),
    net_op("RECVMSG", net::prep_recv, net::issue_recv),
    timeout_op("TIMEOUT"),
    timeout_op("TIMEOUT_REMOVE"),
    net_op("ACCEPT", net::prep_accept, net::issue_accept),
    inline_op("ASYNC_CANCEL", cancel::prep, cancel::issue),
    timeout_op("LINK_TIMEOUT"),
    net_op("CONNECT", net::prep_connect, net::issue_connect),
    iowq_op("FALLOCATE", sync::fallocate_prep, sync::issue),
    fs_op("OPENAT"),
    inline_op("CLOSE", fs::prep, fs::issue),
    inline_op("FILES_UPDATE", rsrc::update_prep, rsrc::update_issue),
    fs_op("STATX"),
    rw_op("READ"),
    rw_op("WRITE"),
    file_op("FADVISE", advise::prep, advise::issue),
    inline_op("MADVISE", advise::prep, advise::issue),
    net_op("SEND", net::prep_send, net::issue_send),
    net_op("RECV", net::prep_recv, net::issue_recv),
    fs_op("OPENAT2"),
    inline_op("EPOLL_CTL", epoll::prep, epoll::issue),
    iowq_op("SPLICE", splice::prep, splice::issue),
    inline_op("PROVIDE_BUFFERS", kbuf::prep, kbuf::issue),
    inline_op("REMOVE_BUFFERS", kbuf::prep, kbuf::issue),
    iowq_op("TEE", splice::prep, splice::issue),
    net_op("SHUTDOWN", net::prep_shutdown, net::issue_bind_listen_shutdown),
    fs_op("RENAMEAT"),
    fs_op("UNLINKAT"),
    fs_op("MKDIRAT"),
    fs_op("SYMLINKAT"),
    fs_op("LINKAT"),
    file_op("MSG_RING", msg_ring::prep, msg_ring::issue),
    iowq_op("FSETXATTR", xattr::prep, xattr::issue),
    path_op("SETXATTR", xattr::prep, xattr::issue),
    iowq_op("FGETXATTR", xattr::prep, xattr::issue),
    path_op("GETXATTR", xattr::prep, xattr::issue),
    inline_op("SOCKET", net::prep_socket, net::issue_socket),
    file_op("URING_CMD", uring_cmd::prep, uring_cmd::issue),
    net_op("SEND_ZC", net::prep_send, net::issue_send),
    net_op("SENDMSG_ZC", net::prep_send, net::issue_send),
    OpDef { name: "READ_MULTISHOT", needs_file: true, user_buffers: true, force_async: false, prep: Some(rw::prep_mshot), issue: rw::issue_mshot },
    inline_op("WAITID", waitid::prep, waitid::issue),
    inline_op("FUTEX_WAIT", futex::prep, futex::issue),
    inline_op("FUTEX_WAKE", futex::prep, futex::issue),
    inline_op("FUTEX_WAITV", futex::prep, futex::issue),
    file_op("FIXED_FD_INSTALL", openclose::prep, openclose::issue),
    iowq_op("FTRUNCATE", sync::truncate_prep, sync::issue),
    net_op("BIND", net::prep_bind, net::issue_bind_listen_shutdown),
    net_op("LISTEN", net::prep_listen, net::issue_bind_listen_shutdown),
    unsupported("RECV_ZC"),
    file_op("EPOLL_WAIT", epoll::prep, epoll::issue),
    rw_op("READV_FIXED"),
    rw_op("WRITEV_FIXED"),
    inline_op("PIPE", openclose::prep, openclose::issue),
    inline_op("NOP128", nop_prep, nop::issue),
    file_op("URING_CMD128", uring_cmd::prep, uring_cmd::issue),
];

/// Whether `opcode` is implemented.
pub fn supported(opcode: usize) -> bool {
    OPS.get(opcode).is_some_and(|d| d.prep.is_some())
}

/// The SQE flags this kernel takes (Linux's SQE_VALID_FLAGS; IO_URING_QUERY_OPCODES
/// reports them too).
pub const SQE_VALID_FLAGS: u8 = IOSQE_FIXED_FILE
    | IOSQE_BUFFER_SELECT
    | IOSQE_IO_DRAIN
    | IOSQE_IO_LINK
    | IOSQE_IO_HARDLINK
    | IOSQE_ASYNC
    | IOSQE_CQE_SKIP_SUCCESS;

/// Turns a copied SQE into a request: checks flags and the opcode, then runs the
/// opcode's own prep. The file is looked up at issue, as Linux does: a bad fd fails that
/// request, not the submission.
#[inline]
pub fn prep(ring: &IoUring, sqe: &Sqe, mm: &Option<crate::task::Mm>) -> KResult<Box<Request>> {
    if sqe.flags & !SQE_VALID_FLAGS != 0 {
        return Err(EINVAL);
    }
    let def = OPS.get(sqe.opcode as usize).ok_or(EINVAL)?;
    let prep = def.prep.ok_or(EINVAL)?;
    // Provided buffers serve reads only (Linux's opdef `buffer_select`).
    if sqe.flags & IOSQE_BUFFER_SELECT != 0 && !rw::selects_buffer(sqe.opcode) {
        return Err(EOPNOTSUPP);
    }
    if ring.setup_flags & IORING_SETUP_IOPOLL != 0 && !super::iopoll::allowed(sqe.opcode) {
        return Err(EINVAL);
    }
    log::trace!("io_uring: {} user_data={:#x}", def.name, sqe.user_data);
    // A personality must be registered on this ring (Linux checks it before the op's
    // prep; MSG_RING's prep then refuses any).
    let creds = match sqe.personality {
        0 => None,
        id => Some(ring.personalities.lock().get(id).ok_or(EINVAL)?),
    };
    let op = prep(ring, sqe)?;
    let expected = rw::expected(&op);
    Ok(ring.new_request(Request {
        user_data: sqe.user_data,
        opcode: sqe.opcode,
        flags: sqe.flags,
        fd: sqe.fd,
        file: None,
        op,
        expected,
        link: None,
        mm: if def.user_buffers { mm.clone() } else { None },
        creds,
        tctx: None,
        seq: 0,
        in_iowq: false,
        poll_retries: 0,
        link_timeout: None,
        cqe_flags: 0,
        file_tag: None,
        extra: [0; 2],
        trace: 0,
    }))
}

/// A request standing for an SQE whose prep failed with `e`.
pub fn failed(sqe: &Sqe, e: Errno) -> Box<Request> {
    Box::new(Request {
        user_data: sqe.user_data,
        opcode: 0,
        flags: sqe.flags & (IOSQE_IO_LINK | IOSQE_IO_HARDLINK),
        fd: -1,
        file: None,
        file_tag: None,
        extra: [0; 2],
        op: Op::Failed(e),
        expected: None,
        link: None,
        mm: None,
        creds: None,
        tctx: None,
        seq: 0,
        in_iowq: false,
        poll_retries: 0,
        link_timeout: None,
        cqe_flags: 0,
        trace: 0,
    })
}

/// Looks up the request's file (a fixed file with IOSQE_FIXED_FILE), if its op needs one.
#[inline]
pub fn resolve_file(ring: &IoUring, req: &mut Request) -> KResult<()> {
    if req.file.is_some() || !OPS[req.opcode as usize].needs_file || matches!(req.op, Op::Failed(_)) {
        return Ok(());
    }
    if req.flags & IOSQE_FIXED_FILE != 0 {
        let fixed = ring.rsrc.lock().fixed_file(req.fd as u32)?;
        req.file = Some(fixed.file);
        req.file_tag = fixed.tag;
    } else {
        req.file = Some(task::current_process().files.lock().get(req.fd)?);
    }
    Ok(())
}

/// The file `fd` names: a slot of the ring's fixed table when `fixed`, else a
/// descriptor of the current process (EBADF for neither).
pub fn lookup_file(ring: &IoUring, fd: i32, fixed: bool) -> KResult<Arc<crate::fs::OpenFile>> {
    if fixed {
        ring.rsrc.lock().file(fd as u32)
    } else {
        task::current_process().files.lock().get(fd)
    }
}
