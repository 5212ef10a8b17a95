//! The network ops (Linux's io_uring/net.c): SOCKET, BIND, LISTEN, CONNECT, ACCEPT,
//! SEND, RECV, SENDMSG, RECVMSG, SHUTDOWN, SEND_ZC and SENDMSG_ZC, on the kernel's sockets
//! (`net`).
//!
//! Each attempt is nonblocking. One that would block is poll-armed on the socket and
//! issued again when woken (after too many useless wakeups it goes to io-wq and blocks
//! there); nothing blocks the submitter. Multishot ACCEPT and RECV post a CQE with
//! IORING_CQE_F_MORE per connection or message and stay armed. The copies to and from
//! user memory are made in the submitter's (or its io-wq worker's) context, by the same
//! helpers as the system calls (`syscall/net.rs`).
//!
//! SEND_ZC and SENDMSG_ZC copy (an AF_UNIX message is a copy on Linux too): the result
//! CQE has IORING_CQE_F_MORE, then a notification CQE (IORING_CQE_F_NOTIF) says the
//! buffer is free; with IORING_SEND_ZC_REPORT_USAGE it reports the copy.

use alloc::boxed::Box;
use alloc::sync::Arc;

use super::uapi::*;
use super::{io_wq, poll, IoUring, Issued, Op, Request};
use crate::errno::*;
use crate::net::{self, Socket, SocketFile};
use crate::syscall::net as sys;

pub const IORING_OP_SENDMSG: u8 = 9;
pub const IORING_OP_RECVMSG: u8 = 10;
pub const IORING_OP_SEND: u8 = 26;
pub const IORING_OP_RECV: u8 = 27;
pub const IORING_OP_SEND_ZC: u8 = 47;
pub const IORING_OP_SENDMSG_ZC: u8 = 48;

/// sqe->ioprio for SEND/RECV: poll before the first attempt; multishot recv; a
/// registered buffer; report whether zero copy happened; bundles.
const IORING_RECVSEND_POLL_FIRST: u16 = 1 << 0;
const IORING_RECV_MULTISHOT: u16 = 1 << 1;
const IORING_RECVSEND_FIXED_BUF: u16 = 1 << 2;
const IORING_SEND_ZC_REPORT_USAGE: u16 = 1 << 3;
const IORING_RECVSEND_BUNDLE: u16 = 1 << 4;
/// SEND and SEND_ZC: `addr` is an iovec array, `len` its count (Linux 6.18).
const IORING_SEND_VECTORIZED: u16 = 1 << 5;
/// sqe->ioprio for ACCEPT.
const IORING_ACCEPT_MULTISHOT: u16 = 1 << 0;
const IORING_ACCEPT_DONTWAIT: u16 = 1 << 1;
const IORING_ACCEPT_POLL_FIRST: u16 = 1 << 2;

const IORING_CQE_F_SOCK_NONEMPTY: u32 = 1 << 2;
const IORING_CQE_F_NOTIF: u32 = 1 << 3;
const IORING_NOTIF_USAGE_ZC_COPIED: i32 = 1 << 31;

pub enum NetOp {
    Socket { domain: i32, kind: u32, protocol: i32, slot: u32 },
    Bind { addr: u64, len: u64 },
    Listen { backlog: i32 },
    Connect { addr: u64, len: u64 },
    Accept { addr: u64, len_ptr: u64, flags: u32, ioprio: u16, slot: u32 },
    /// SEND, SENDMSG (msghdr at `addr`) and their _ZC forms.
    /// `done`: bytes sent by earlier attempts (MSG_WAITALL goes on until all are).
    /// `group`: SEND's data is a provided buffer, or with `bundle` a run of them
    /// (`picked` once chosen); `fixed`: SEND_ZC's data lies in that registered buffer.
    Send {
        addr: u64,
        len: u32,
        flags: u32,
        to: Option<(u64, u64)>,
        msg: bool,
        zc: Option<bool>,
        done: u32,
        group: Option<u16>,
        bundle: bool,
        picked: Option<Box<Picked>>,
        fixed: Option<u16>,
    },
    /// RECV, RECVMSG; `group`: a provided buffer for each message (IOSQE_BUFFER_SELECT),
    /// or with `bundle` (RECV) a run of them per CQE.
    /// `done`: bytes received by earlier attempts (MSG_WAITALL, on a plain RECV).
    Recv { addr: u64, len: u32, flags: u32, msg: bool, multishot: bool, group: Option<u16>, bundle: bool, done: u32 },
    Shutdown { how: u32 },
    /// A _ZC send whose prep failed after Linux made its notification: the error comes
    /// as a result CQE with F_MORE, then the notification.
    ZcFailed(i32),
}

fn net(op: NetOp) -> KResult<Op> {
    Ok(Op::Net(op))
}

pub fn prep_socket(_ring: &IoUring, sqe: &Sqe) -> KResult<Op> {
    if sqe.addr != 0 || sqe.op_flags != 0 || sqe.buf_index != 0 || sqe.ioprio != 0 || sqe.addr3 != 0 {
        return Err(EINVAL);
    }
    if sqe.flags & IOSQE_FIXED_FILE != 0 {
        return Err(EINVAL);
    }
    net(NetOp::Socket { domain: sqe.fd, kind: sqe.off as u32, protocol: sqe.len as i32, slot: sqe.file_index })
}

pub fn prep_bind(_ring: &IoUring, sqe: &Sqe) -> KResult<Op> {
    if sqe.len != 0 || sqe.op_flags != 0 || sqe.buf_index != 0 || sqe.ioprio != 0 || sqe.file_index != 0 || sqe.addr3 != 0 {
        return Err(EINVAL);
    }
    net(NetOp::Bind { addr: sqe.addr, len: sqe.off })
}

pub fn prep_listen(_ring: &IoUring, sqe: &Sqe) -> KResult<Op> {
    if sqe.addr != 0 || sqe.off != 0 || sqe.op_flags != 0 || sqe.buf_index != 0 || sqe.ioprio != 0 || sqe.file_index != 0 || sqe.addr3 != 0 {
        return Err(EINVAL);
    }
    net(NetOp::Listen { backlog: sqe.len as i32 })
}

pub fn prep_connect(_ring: &IoUring, sqe: &Sqe) -> KResult<Op> {
    if sqe.len != 0 || sqe.buf_index != 0 || sqe.op_flags != 0 || sqe.file_index != 0 || sqe.addr3 != 0 || sqe.ioprio != 0 {
        return Err(EINVAL);
    }
    net(NetOp::Connect { addr: sqe.addr, len: sqe.off })
}

pub fn prep_accept(_ring: &IoUring, sqe: &Sqe) -> KResult<Op> {
    if sqe.len != 0 || sqe.buf_index != 0 || sqe.addr3 != 0 {
        return Err(EINVAL);
    }
    if sqe.ioprio & !(IORING_ACCEPT_MULTISHOT | IORING_ACCEPT_DONTWAIT | IORING_ACCEPT_POLL_FIRST) != 0 {
        return Err(EINVAL);
    }
    let flags = sqe.op_flags;
    if flags & !(net::SOCK_NONBLOCK | net::SOCK_CLOEXEC) != 0 {
        return Err(EINVAL);
    }
    // A direct descriptor has no close-on-exec; multishot takes ALLOC slots only.
    if sqe.file_index != 0 && flags & net::SOCK_CLOEXEC != 0 {
        return Err(EINVAL);
    }
    if sqe.ioprio & IORING_ACCEPT_MULTISHOT != 0 && sqe.file_index != 0 && sqe.file_index != super::openclose::IORING_FILE_INDEX_ALLOC {
        return Err(EINVAL);
    }
    net(NetOp::Accept { addr: sqe.addr, len_ptr: sqe.off, flags, ioprio: sqe.ioprio, slot: sqe.file_index })
}

/// The iovecs of a SEND (what is left to send): the buffers it took from its group, with
/// the CQE flags naming the first (`last`: they were all the group had), or a
/// VECTORIZED send's own.
pub struct Picked {
    iov: alloc::vec::Vec<(u64, usize)>,
    cqe_flags: u32,
    last: bool,
}

fn prep_send_common(sqe: &Sqe, msg: bool, zc: bool) -> KResult<Op> {
    // Checked before Linux's _ZC prep makes its notification: a plain error.
    if zc && (sqe.addr3 != 0 || sqe.flags & IOSQE_CQE_SKIP_SUCCESS != 0) {
        return Err(EINVAL);
    }
    match prep_send_checked(sqe, msg, zc) {
        // Linux's _ZC prep made the notification before these checks.
        Err(e) if zc => net(NetOp::ZcFailed(e.0)),
        op => op,
    }
}

fn prep_send_checked(sqe: &Sqe, msg: bool, zc: bool) -> KResult<Op> {
    // Registered buffers for the _ZC sends; bundles for SEND; iovec arrays for both
    // (the SENDMSG forms ignore that flag).
    let allowed = IORING_RECVSEND_POLL_FIRST
        | IORING_SEND_VECTORIZED
        | if zc { IORING_SEND_ZC_REPORT_USAGE | IORING_RECVSEND_FIXED_BUF } else { IORING_RECVSEND_BUNDLE };
    if sqe.ioprio & !allowed != 0 {
        return Err(EINVAL);
    }
    let fixed = (sqe.ioprio & IORING_RECVSEND_FIXED_BUF != 0).then_some(sqe.buf_index);
    let bundle = sqe.ioprio & IORING_RECVSEND_BUNDLE != 0;
    let vectorized = !msg && sqe.ioprio & IORING_SEND_VECTORIZED != 0;
    if msg && bundle || vectorized && fixed.is_some() {
        return Err(EINVAL);
    }
    // Only SEND selects (the opdef check refused the others); its data is then the
    // buffers', whatever VECTORIZED says.
    let group = (sqe.flags & IOSQE_BUFFER_SELECT != 0).then_some(sqe.buf_index);
    let to = if !msg && sqe.off != 0 && sqe.file_index & 0xffff != 0 { Some((sqe.off, u64::from(sqe.file_index & 0xffff))) } else { None };
    if msg && (sqe.len != 1 && sqe.len != 0 || sqe.off != 0) {
        return Err(EINVAL);
    }
    // The iovecs are copied now (FEAT_SUBMIT_STABLE).
    let picked = match vectorized && group.is_none() {
        true => Some(Box::new(Picked { iov: crate::syscall::fs::read_iovecs(sqe.addr, u64::from(sqe.len))?, cqe_flags: 0, last: false })),
        false => None,
    };
    // A bundle must send all it took (Linux adds MSG_WAITALL).
    let flags = sqe.op_flags | if bundle { net::MSG_WAITALL } else { 0 };
    let zc = zc.then_some(sqe.ioprio & IORING_SEND_ZC_REPORT_USAGE != 0);
    net(NetOp::Send { addr: sqe.addr, len: sqe.len, flags, to, msg, zc, done: 0, group, bundle, picked, fixed })
}

pub fn prep_send(_ring: &IoUring, sqe: &Sqe) -> KResult<Op> {
    prep_send_common(sqe, sqe.opcode == IORING_OP_SENDMSG || sqe.opcode == IORING_OP_SENDMSG_ZC, matches!(sqe.opcode, IORING_OP_SEND_ZC | IORING_OP_SENDMSG_ZC))
}

pub fn prep_recv(_ring: &IoUring, sqe: &Sqe) -> KResult<Op> {
    let msg = sqe.opcode == IORING_OP_RECVMSG;
    if sqe.ioprio & !(IORING_RECVSEND_POLL_FIRST | IORING_RECV_MULTISHOT | IORING_RECVSEND_BUNDLE) != 0 || sqe.off != 0 || sqe.addr3 != 0 {
        return Err(EINVAL);
    }
    if msg && sqe.ioprio & IORING_RECVSEND_BUNDLE != 0 {
        return Err(EINVAL);
    }
    let multishot = sqe.ioprio & IORING_RECV_MULTISHOT != 0;
    let group = (sqe.flags & IOSQE_BUFFER_SELECT != 0).then_some(sqe.buf_index);
    // Multishot takes a provided buffer per message (RECVMSG's in the
    // io_uring_recvmsg_out layout); a single RECVMSG uses its own iovecs.
    if multishot && (group.is_none() || sqe.op_flags & net::MSG_WAITALL != 0) {
        return Err(EINVAL);
    }
    if msg && group.is_some() && !multishot {
        return Err(EINVAL);
    }
    // A bundle without provided buffers is a plain receive.
    let bundle = sqe.ioprio & IORING_RECVSEND_BUNDLE != 0 && group.is_some();
    net(NetOp::Recv { addr: sqe.addr, len: sqe.len, flags: sqe.op_flags, msg, multishot, group, bundle, done: 0 })
}

pub fn prep_shutdown(_ring: &IoUring, sqe: &Sqe) -> KResult<Op> {
    if sqe.off != 0 || sqe.addr != 0 || sqe.op_flags != 0 || sqe.buf_index != 0 || sqe.ioprio != 0 || sqe.file_index != 0 || sqe.addr3 != 0 {
        return Err(EINVAL);
    }
    net(NetOp::Shutdown { how: sqe.len })
}

/// Would block: parked until the socket is ready (`write`: for sending), then issued
/// again; after too many useless wakeups, to io-wq, where the attempt may sleep.
fn park(ring: &Arc<IoUring>, req: Box<Request>, write: bool) -> Issued {
    if let Some(req) = poll::arm_retry(ring, req, write) {
        io_wq::enqueue(ring, req);
    }
    None
}

/// SOCKET: a new socket, as a descriptor or in the ring's fixed table.
pub fn issue_socket(ring: &Arc<IoUring>, req: Box<Request>) -> Issued {
    let Op::Net(NetOp::Socket { domain, kind, protocol, slot }) = req.op else { return Some((req, -EINVAL.0)) };
    let res = (|| {
        if kind & !(net::SOCK_TYPE_MASK | net::SOCK_NONBLOCK | net::SOCK_CLOEXEC) != 0 {
            return Err(EINVAL);
        }
        let sock = net::create(domain, kind & net::SOCK_TYPE_MASK, protocol)?;
        let file = SocketFile::open(sock, kind & net::SOCK_NONBLOCK != 0);
        install(ring, file, slot, kind & net::SOCK_CLOEXEC != 0)
    })();
    Some((req, res.map_or_else(|e| -e.0, |v| v as i32)))
}

/// A new file as a descriptor (`slot` 0) or a direct descriptor: the fd, the slot for
/// IORING_FILE_INDEX_ALLOC, else 0.
fn install(ring: &IoUring, file: Arc<crate::fs::OpenFile>, slot: u32, cloexec: bool) -> KResult<u64> {
    if slot == 0 {
        return crate::syscall::fs::install(file, cloexec);
    }
    if cloexec {
        return Err(EINVAL);
    }
    let (res, old) = ring.rsrc.lock().install(file, slot)?;
    drop(old);
    Ok(res)
}

fn socket(req: &Request) -> KResult<Arc<dyn Socket>> {
    net::socket_of(req.file.as_ref().ok_or(EBADF)?).cloned()
}

pub fn issue_bind_listen_shutdown(_ring: &Arc<IoUring>, req: Box<Request>) -> Issued {
    let res = (|| {
        let s = socket(&req)?;
        match req.op {
            Op::Net(NetOp::Bind { addr, len }) => s.bind(&sys::read_addr(addr, len)?),
            Op::Net(NetOp::Listen { backlog }) => s.listen(backlog),
            Op::Net(NetOp::Shutdown { how }) => s.shutdown(how),
            _ => Err(EINVAL),
        }
    })();
    Some((req, res.map_or_else(|e| -e.0, |()| 0)))
}

/// CONNECT, as Linux's io_connect: a nonblocking attempt; one in progress (TCP's
/// EINPROGRESS) is poll-armed for POLLOUT and, once woken, asked again, where "already
/// connected" means done and the socket's error tells how it ended. An AF_UNIX connect
/// whose listener's backlog is full (EAGAIN) waits in io-wq.
pub fn issue_connect(ring: &Arc<IoUring>, req: Box<Request>) -> Issued {
    let Op::Net(NetOp::Connect { addr, len }) = req.op else { return Some((req, -EINVAL.0)) };
    let in_progress = req.poll_retries > 0;
    let s = match socket(&req) {
        Ok(s) => s,
        Err(e) => return Some((req, -e.0)),
    };
    let res = sys::read_addr(addr, len).and_then(|addr| s.connect(&addr, !req.in_iowq));
    match res {
        Err(EINPROGRESS | EALREADY) if !req.in_iowq => park(ring, req, true),
        Err(EAGAIN) if !req.in_iowq => {
            io_wq::enqueue(ring, req);
            None
        }
        Err(EISCONN) if in_progress => Some((req, -s.take_error())),
        res => Some((req, res.map_or_else(|e| -e.0, |()| 0))),
    }
}

/// ACCEPT, once or multishot (a CQE with IORING_CQE_F_MORE per connection; it ends with
/// an error or a cancellation).
pub fn issue_accept(ring: &Arc<IoUring>, mut req: Box<Request>) -> Issued {
    let Op::Net(NetOp::Accept { addr, len_ptr, flags, ioprio, slot }) = req.op else { return Some((req, -EINVAL.0)) };
    let multishot = ioprio & IORING_ACCEPT_MULTISHOT != 0;
    if ioprio & IORING_ACCEPT_POLL_FIRST != 0 && req.poll_retries == 0 {
        return park(ring, req, false);
    }
    let file = match req.file.clone() {
        Some(f) => f,
        None => return Some((req, -EBADF.0)),
    };
    loop {
        let s = match net::socket_of(&file) {
            Ok(s) => Arc::clone(s),
            Err(e) => return Some((req, -e.0)),
        };
        let accepted = sys::accept_file(&file, &*s, flags, !req.in_iowq).and_then(|(conn, peer)| {
            if !multishot {
                sys::write_addr(&peer, addr, len_ptr)?;
            }
            install(ring, conn, slot, flags & net::SOCK_CLOEXEC != 0)
        });
        match accepted {
            Err(EAGAIN) if ioprio & IORING_ACCEPT_DONTWAIT != 0 => return Some((req, -EAGAIN.0)),
            Err(EAGAIN) => {
                req.poll_retries = 0;
                return park(ring, req, false);
            }
            Err(e) => return Some((req, -e.0)),
            Ok(fd) if !multishot => return Some((req, fd as i32)),
            Ok(fd) => {
                if !ring.post_more(req.user_data, fd as i32, 0) {
                    return Some((req, fd as i32)); // the CQ is full: this is the last CQE
                }
            }
        }
    }
}

pub fn issue_send(ring: &Arc<IoUring>, mut req: Box<Request>) -> Issued {
    if let Op::Net(NetOp::ZcFailed(e)) = req.op {
        return zc_complete(ring, req, -e, false);
    }
    let s = match socket(&req) {
        Ok(s) => s,
        Err(e) => return Some((req, -e.0)),
    };
    loop {
        let Op::Net(NetOp::Send { addr, len, flags, to, msg, zc, done, group, bundle, ref mut picked, fixed }) = req.op else {
            return Some((req, -EINVAL.0));
        };
        // io_uring never raises SIGPIPE (Linux adds MSG_NOSIGNAL).
        let flags = flags | net::MSG_NOSIGNAL;
        let nonblock = !req.in_iowq || flags & net::MSG_DONTWAIT != 0;
        // Provided buffers are taken at the first attempt and kept while it waits.
        if let Some(bgid) = group
            && picked.is_none()
        {
            match pick(ring, bgid, len, bundle) {
                Ok(p) => *picked = Some(Box::new(p)),
                Err(e) => return Some((req, -e.0)),
            }
        }
        let picked_iov = picked.as_ref().map(|p| p.iov.clone());
        let attempt = || -> KResult<usize> {
            // Zero copy needs a socket that can take pages (Linux: SOCK_SUPPORT_ZC, which
            // AF_UNIX lacks).
            if zc.is_some() && s.family() == net::AF_UNIX {
                return Err(EOPNOTSUPP);
            }
            if msg {
                let Some(index) = fixed else { return sys::sendmsg_at(&*s, addr, flags, nonblock) };
                let buf = ring.rsrc.lock().fixed_at(index)?;
                return sys::sendmsg_from(&*s, addr, flags, nonblock, Some(&|a, l| buf.segments(a, l)));
            }
            let to = match to {
                Some((a, l)) => Some(sys::read_addr(a, l)?),
                None => None,
            };
            if let Some(index) = fixed {
                let segs = ring.rsrc.lock().fixed_at(index)?.segments(addr, len as usize)?;
                return sys::send_frames(&*s, segs, sys::UserMsg { to, iov: alloc::vec::Vec::new(), files: alloc::vec::Vec::new(), cred: None }, flags, nonblock);
            }
            let iov = picked_iov.unwrap_or_else(|| alloc::vec![(addr, len as usize)]);
            sys::send_user(&*s, sys::UserMsg { to, iov, files: alloc::vec::Vec::new(), cred: None }, flags, nonblock)
        };
        let got = attempt();
        let Op::Net(NetOp::Send { addr, len, done: done_at, picked, .. }) = &mut req.op else { unreachable!() };
        let left = picked.as_ref().map_or(*len as usize, |p| p.iov.iter().map(|v| v.1).sum());
        // MSG_WAITALL on a stream: a short send goes on from where it stopped (Linux's
        // io_net_retry), and the CQE counts every attempt's bytes.
        if let Ok(n) = got
            && waits_for_all(&*s, flags, msg) && n > 0 && n < left
        {
            match picked {
                Some(p) => sys::advance(&mut p.iov, n),
                None => (*addr, *len) = (*addr + n as u64, *len - n as u32),
            }
            *done_at += n as u32;
            return park(ring, req, true);
        }
        if let Err(EAGAIN) = got
            && flags & net::MSG_DONTWAIT == 0
        {
            return park(ring, req, true);
        }
        let res = with_done(got, done);
        if let Some(report) = zc {
            return zc_complete(ring, req, res, report);
        }
        let taken = picked.take();
        let cqe_flags = taken.as_ref().map_or(0, |p| p.cqe_flags);
        // A bundle posts each pass's CQE with F_MORE and goes on with the buffers added
        // since, uncapped, until a pass empties the group (Linux's io_send_finish).
        // Without provided buffers (as Linux 6.18 takes it) the next pass has nothing
        // to send: it ends with 0.
        if bundle && res > 0 && !taken.is_some_and(|p| p.last) && ring.post_more(req.user_data, res, cqe_flags) {
            if group.is_none() {
                return Some((req, 0));
            }
            *len = 0;
            *done_at = 0;
            continue;
        }
        req.cqe_flags |= cqe_flags;
        return Some((req, res));
    }
}

/// SEND's buffers from group `bgid`: the head buffer (at most `len` bytes of it), or for
/// a bundle the run of buffers `len` bytes (0: any number) fill. A send uses them up at
/// once, whatever it then sends (Linux commits them when it selects them).
fn pick(ring: &IoUring, bgid: u16, len: u32, bundle: bool) -> KResult<Picked> {
    let mut groups = ring.kbufs.lock();
    let cap = if len == 0 { u32::MAX } else { len };
    let (mut bufs, last) = groups.select_bundle(bgid, if bundle { Some(cap) } else { None })?;
    bufs[0].len = bufs[0].len.min(cap);
    let total = bufs.iter().map(|b| b.len as usize).sum();
    groups.commit_bundle(bgid, &bufs, total);
    let cqe_flags = super::kbuf::IORING_CQE_F_BUFFER | (u32::from(bufs[0].bid) << super::kbuf::IORING_CQE_BUFFER_SHIFT);
    Ok(Picked { iov: bufs.iter().map(|b| (b.addr, b.len as usize)).collect(), cqe_flags, last })
}

/// A _ZC send's end: the result CQE with F_MORE, then the notification saying the buffer
/// is free (it was copied: with `report`, IORING_SEND_ZC_REPORT_USAGE, its res says so
/// when bytes went out).
fn zc_complete(ring: &IoUring, mut req: Box<Request>, res: i32, report: bool) -> Issued {
    ring.post(Cqe::new(req.user_data, res, IORING_CQE_F_MORE), false);
    req.cqe_flags |= IORING_CQE_F_NOTIF;
    Some((req, if report && res > 0 { IORING_NOTIF_USAGE_ZC_COPIED } else { 0 }))
}

/// Whether a short transfer goes on (MSG_WAITALL on a stream or seqpacket socket, for
/// SEND and RECV; SENDMSG and RECVMSG complete with what one attempt moved).
fn waits_for_all(s: &dyn Socket, flags: u32, msg: bool) -> bool {
    flags & net::MSG_WAITALL != 0 && !msg && s.kind() != net::SOCK_DGRAM
}

/// A result after earlier attempts moved `done` bytes: their sum, or (an error after some
/// bytes) what was moved.
fn with_done(r: KResult<usize>, done: u32) -> i32 {
    match r {
        Ok(n) => (n + done as usize) as i32,
        Err(_) if done > 0 => done as i32,
        Err(e) => -e.0,
    }
}

/// One receive into `at` (at most `room` bytes): the bytes (or, with MSG_TRUNC on a
/// datagram, the message's length), and the CQE flags it earns.
fn recv_into(s: &dyn Socket, at: u64, room: u32, flags: u32, nonblock: bool) -> KResult<(usize, u32)> {
    let (n, got) = sys::recv_user(s, &[(at, room as usize)], flags, nonblock)?;
    let n = if flags & net::MSG_TRUNC != 0 && s.kind() != net::SOCK_STREAM { got.full_len } else { n };
    Ok((n, nonempty(s)))
}

/// IORING_CQE_F_SOCK_NONEMPTY: a stream with bytes still queued after this receive.
fn nonempty(s: &dyn Socket) -> u32 {
    if let Some(n) = s.inq_hint() {
        return if n > 0 { IORING_CQE_F_SOCK_NONEMPTY } else { 0 };
    }
    if s.kind() == net::SOCK_STREAM && s.poll_mask() & crate::fs::POLLIN != 0 && s.poll_mask() & crate::fs::POLLRDHUP == 0 {
        IORING_CQE_F_SOCK_NONEMPTY
    } else {
        0
    }
}

/// Multishot RECVMSG into provided buffer `b`: the io_uring_recvmsg_out header (name
/// length, control length, payload length, flags), then room for the name and control
/// data the request's msghdr gives, then the payload. Returns the bytes of the buffer
/// used.
fn recvmsg_out(s: &dyn Socket, b: &super::kbuf::Buf, name_room: u32, control_room: u32, flags: u32, nonblock: bool) -> KResult<usize> {
    const HEADER: u32 = 16;
    let head = HEADER + name_room + control_room;
    if b.len < head {
        return Err(EFAULT);
    }
    let mut got = s.recv((b.len - head) as usize, flags, nonblock)?;
    let payload = b.addr + u64::from(head);
    crate::task::copy_to_user(payload, &got.data)?;
    let from = got.from.take().unwrap_or_default();
    let name = from.len().min(name_room as usize);
    crate::task::copy_to_user(b.addr + u64::from(HEADER), &from[..name])?;
    let (control, ctrunc) = sys::deliver_control(&mut got, b.addr + u64::from(HEADER + name_room), u64::from(control_room), flags & net::MSG_CMSG_CLOEXEC != 0)?;
    let truncated = if got.full_len > got.data.len() && s.kind() != net::SOCK_STREAM { net::MSG_TRUNC } else { 0 };
    let payload_len = if flags & net::MSG_TRUNC != 0 { got.full_len } else { got.data.len() };
    let out = [from.len() as u32, control as u32, payload_len as u32, truncated | ctrunc];
    crate::task::write_user(b.addr, &out)?;
    Ok(head as usize + got.data.len())
}

/// One bundle receive from group `bgid` (Linux 6.18's io_recv with
/// IORING_RECVSEND_BUNDLE), one CQE naming the first buffer. With a `len`, one pass
/// into the buffers `len` bytes fill whole (or the first, cut to `len`). Without, the
/// first pass fills the head buffer; only when it filled it, did not take the group's
/// last buffer, and more than one byte waits does a second pass take the buffers the
/// waiting bytes fill whole, or the first of them in part. Returns the bytes, the CQE
/// flags, and whether the first pass emptied the group (which ends a multishot receive).
fn recv_bundle(ring: &IoUring, s: &dyn Socket, bgid: u16, len: u32, flags: u32, nonblock: bool) -> KResult<(usize, u32, bool)> {
    let cap = (len != 0).then_some(len);
    let (n, mapped, first, last) = bundle_pass(ring, s, bgid, cap, flags, nonblock)?;
    if n == 0 {
        return Ok((0, 0, last));
    }
    let mut total = n;
    let waiting = s.inq_hint().unwrap_or(0);
    if cap.is_none() && n == mapped && !last && waiting > 1 {
        // An error here leaves the first pass's bytes as the result.
        if let Ok((more, ..)) = bundle_pass(ring, s, bgid, Some(waiting as u32), flags, true) {
            total += more;
        }
    }
    let cqe_flags = super::kbuf::IORING_CQE_F_BUFFER | (u32::from(first) << super::kbuf::IORING_CQE_BUFFER_SHIFT) | nonempty(s);
    Ok((total, cqe_flags, last))
}

/// One pass of a bundle receive into the buffers of group `bgid` that `max` picks (see
/// `Groups::select_bundle`): the bytes, the room the buffers had, the first buffer's id,
/// and whether they were the group's last. The buffers written are used up; a classic
/// buffer left unused goes back to its list.
fn bundle_pass(ring: &IoUring, s: &dyn Socket, bgid: u16, max: Option<u32>, flags: u32, nonblock: bool) -> KResult<(usize, usize, u16, bool)> {
    let (bufs, last) = ring.kbufs.lock().select_bundle(bgid, max)?;
    let mut iov: alloc::vec::Vec<(u64, usize)> = bufs.iter().map(|b| (b.addr, b.len as usize)).collect();
    iov[0].1 = iov[0].1.min(max.unwrap_or(u32::MAX) as usize);
    let mapped = iov.iter().map(|v| v.1).sum();
    let got = sys::recv_user(s, &iov, flags, nonblock).map(|(n, _)| n);
    let mut groups = ring.kbufs.lock();
    match got {
        Ok(n) if n > 0 => {
            groups.commit_bundle(bgid, &bufs, n);
            Ok((n, mapped, bufs[0].bid, last))
        }
        got => {
            if !groups.is_ring(bgid) {
                groups.recycle(bgid, bufs[0]);
            }
            got.map(|n| (n, mapped, bufs[0].bid, last))
        }
    }
}

pub fn issue_recv(ring: &Arc<IoUring>, mut req: Box<Request>) -> Issued {
    let Op::Net(NetOp::Recv { addr, len, flags, msg, multishot, group, bundle, done }) = req.op else { return Some((req, -EINVAL.0)) };
    let s = match socket(&req) {
        Ok(s) => s,
        Err(e) => return Some((req, -e.0)),
    };
    let nonblock = !req.in_iowq || flags & net::MSG_DONTWAIT != 0;
    // Multishot RECVMSG: the msghdr says how much room the name and control data take.
    let rooms = if msg && multishot {
        match sys::read_msghdr(addr) {
            Ok(h) if h.controllen <= u64::from(u32::MAX) => Some((h.namelen, h.controllen as u32)),
            Ok(_) => return Some((req, -EINVAL.0)),
            Err(e) => return Some((req, -e.0)),
        }
    } else {
        None
    };
    loop {
        // A provided buffer is taken only once there is something to receive.
        let ready = crate::fs::POLLIN | crate::fs::POLLRDHUP | crate::fs::POLLHUP | crate::fs::POLLERR;
        if group.is_some() && s.poll_mask() & ready == 0 && flags & net::MSG_DONTWAIT == 0 {
            req.poll_retries = 0;
            return park(ring, req, false);
        }
        if let Some(bgid) = group
            && bundle
        {
            match recv_bundle(ring, &*s, bgid, len, flags, nonblock) {
                Err(EAGAIN) if flags & net::MSG_DONTWAIT == 0 => {
                    req.poll_retries = 0;
                    return park(ring, req, false);
                }
                Ok((n, cqe_flags, last)) if multishot && n > 0 && !last => {
                    if !ring.post_more(req.user_data, n as i32, cqe_flags) {
                        req.cqe_flags |= cqe_flags;
                        return Some((req, n as i32));
                    }
                    continue;
                }
                Ok((n, cqe_flags, _)) => {
                    req.cqe_flags |= cqe_flags;
                    return Some((req, n as i32));
                }
                Err(e) => return Some((req, -e.0)),
            }
        }
        let buf = match group {
            Some(bgid) => match ring.kbufs.lock().select(bgid) {
                Ok(b) => Some((bgid, b)),
                Err(e) => return Some((req, -e.0)),
            },
            None => None,
        };
        let got = match (&buf, rooms) {
            (Some((_, b)), Some((name, control))) => recvmsg_out(&*s, b, name, control, flags, nonblock).map(|n| (n, 0)),
            (Some((_, b)), None) => recv_into(&*s, b.addr, if len == 0 { b.len } else { len.min(b.len) }, flags, nonblock),
            (None, _) if msg => sys::recvmsg_at(&*s, addr, flags, nonblock).map(|n| (n, nonempty(&*s))),
            (None, _) => recv_into(&*s, addr, len, flags, nonblock),
        };
        let mut cqe_flags = got.as_ref().map_or(0, |g| g.1);
        match (&buf, &got) {
            (Some((bgid, b)), Ok((n, _))) if *n > 0 => {
                let mut groups = ring.kbufs.lock();
                let more = groups.is_ring(*bgid) && groups.commit(*bgid, (*n as u32).min(b.len));
                drop(groups);
                cqe_flags |= super::kbuf::IORING_CQE_F_BUFFER | (u32::from(b.bid) << super::kbuf::IORING_CQE_BUFFER_SHIFT);
                if more {
                    cqe_flags |= super::kbuf::IORING_CQE_F_BUF_MORE;
                }
            }
            (Some((bgid, b)), _) => {
                // Not used (an error, or the end): a classic buffer goes back to its list
                // (a ring's stays put).
                let mut groups = ring.kbufs.lock();
                if !groups.is_ring(*bgid) {
                    groups.recycle(*bgid, super::kbuf::Buf { addr: b.addr, len: b.len, bid: b.bid });
                }
            }
            _ => {}
        }
        if let Ok((n, _)) = got
            && group.is_none() && !multishot && waits_for_all(&*s, flags, msg) && n > 0 && n < len as usize
            && let Op::Net(NetOp::Recv { addr, len, done, .. }) = &mut req.op
        {
            (*addr, *len, *done) = (*addr + n as u64, *len - n as u32, *done + n as u32);
            req.poll_retries = 0;
            return park(ring, req, false);
        }
        match got {
            Err(EAGAIN) if flags & net::MSG_DONTWAIT == 0 => {
                req.poll_retries = 0;
                return park(ring, req, false);
            }
            Ok((n, _)) if multishot && n > 0 => {
                if !ring.post_more(req.user_data, n as i32, cqe_flags) {
                    req.cqe_flags |= cqe_flags;
                    return Some((req, n as i32)); // the CQ is full: this is the last CQE
                }
            }
            res => {
                req.cqe_flags |= cqe_flags;
                return Some((req, with_done(res.map(|r| r.0), done)));
            }
        }
    }
}
