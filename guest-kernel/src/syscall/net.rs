//! Socket system calls (Linux's net/socket.c): user memory in and out around the
//! families' kernel-buffer calls (`net`). The message helpers here serve io_uring's
//! network ops too.

use alloc::sync::Arc;
use alloc::vec::Vec;

use super::fs::{file, install, read_iovecs};
use super::Ctx;
use crate::errno::*;
use crate::fs::file::O_NONBLOCK;
use crate::fs::OpenFile;
use crate::net::*;
use crate::task;

/// sizeof(struct sockaddr_storage).
const SOCKADDR_MAX: u64 = 128;
/// Linux's SCM_MAX_FD: files one message may carry.
const SCM_MAX_FD: usize = 253;
/// sizeof(struct msghdr), sizeof(struct cmsghdr).
const MSGHDR: usize = 56;
const CMSGHDR: usize = 16;

/// The socket open as `fd`: (its file, its socket).
pub fn sock_file(fd: i32) -> KResult<(Arc<OpenFile>, Arc<dyn Socket>)> {
    let f = file(fd)?;
    let s = Arc::clone(socket_of(&f)?);
    Ok((f, s))
}

/// A sockaddr from user memory.
pub fn read_addr(addr: u64, len: u64) -> KResult<Vec<u8>> {
    if len as i32 as i64 != len as i64 || (len as i32) < 0 || len > SOCKADDR_MAX {
        return Err(EINVAL);
    }
    let mut buf = alloc::vec![0u8; len as usize];
    task::copy_from_user(&mut buf, addr)?;
    Ok(buf)
}

/// Writes `name` for a caller that gave `addr` and a socklen_t at `len_ptr` holding its
/// room: as much as fits, and the full length back in `*len_ptr`.
pub fn write_addr(name: &[u8], addr: u64, len_ptr: u64) -> KResult<()> {
    if addr == 0 || len_ptr == 0 {
        return Ok(());
    }
    let room: i32 = task::read_user(len_ptr)?;
    if room < 0 {
        return Err(EINVAL);
    }
    let n = name.len().min(room as usize);
    task::copy_to_user(addr, &name[..n])?;
    task::write_user(len_ptr, &(name.len() as u32))
}

fn nonblocking(f: &OpenFile, flags: u32) -> bool {
    f.flags() & O_NONBLOCK != 0 || flags & MSG_DONTWAIT != 0
}

pub fn socket(c: &mut Ctx) -> KResult<u64> {
    let ty = c.a[1] as u32;
    if ty & !(SOCK_TYPE_MASK | SOCK_NONBLOCK | SOCK_CLOEXEC) != 0 {
        return Err(EINVAL);
    }
    let sock = create(c.int(0), ty & SOCK_TYPE_MASK, c.int(2))?;
    install(SocketFile::open(sock, ty & SOCK_NONBLOCK != 0), ty & SOCK_CLOEXEC != 0)
}

pub fn socketpair(c: &mut Ctx) -> KResult<u64> {
    let ty = c.a[1] as u32;
    if ty & !(SOCK_TYPE_MASK | SOCK_NONBLOCK | SOCK_CLOEXEC) != 0 {
        return Err(EINVAL);
    }
    // Validates family, type and protocol as socket() does.
    create(c.int(0), ty & SOCK_TYPE_MASK, c.int(2))?;
    if c.int(0) != i32::from(AF_UNIX) {
        return Err(EOPNOTSUPP);
    }
    let (a, b) = unix::UnixSocket::pair(ty & SOCK_TYPE_MASK);
    let nonblock = ty & SOCK_NONBLOCK != 0;
    let cloexec = ty & SOCK_CLOEXEC != 0;
    let fa = install(SocketFile::open(a, nonblock), cloexec)?;
    let fb = match install(SocketFile::open(b, nonblock), cloexec) {
        Ok(fd) => fd,
        Err(e) => {
            let _ = task::current_process().files.lock().remove(fa as i32);
            return Err(e);
        }
    };
    task::write_user(c.a[3], &[fa as i32, fb as i32]).map(|()| 0)
}

pub fn bind(c: &mut Ctx) -> KResult<u64> {
    let (_, s) = sock_file(c.int(0))?;
    let addr = read_addr(c.a[1], c.a[2])?;
    s.bind(&addr).map(|()| 0)
}

pub fn listen(c: &mut Ctx) -> KResult<u64> {
    let (_, s) = sock_file(c.int(0))?;
    s.listen(c.int(1)).map(|()| 0)
}

pub fn connect(c: &mut Ctx) -> KResult<u64> {
    let (f, s) = sock_file(c.int(0))?;
    let addr = read_addr(c.a[1], c.a[2])?;
    s.connect(&addr, nonblocking(&f, 0)).map(|()| 0)
}

/// accept4's common part (io_uring's ACCEPT too): the connection as a new open file.
pub fn accept_file(f: &OpenFile, s: &dyn Socket, flags: u32, nonblock: bool) -> KResult<(Arc<OpenFile>, Vec<u8>)> {
    if flags & !(SOCK_NONBLOCK | SOCK_CLOEXEC) != 0 {
        return Err(EINVAL);
    }
    let conn = s.accept(nonblock || f.flags() & O_NONBLOCK != 0)?;
    let peer = conn.peer_name().unwrap_or_else(|_| conn.family().to_le_bytes().to_vec());
    Ok((SocketFile::open(conn, flags & SOCK_NONBLOCK != 0), peer))
}

fn do_accept(c: &mut Ctx, flags: u32) -> KResult<u64> {
    let (f, s) = sock_file(c.int(0))?;
    let (file, peer) = accept_file(&f, &*s, flags, false)?;
    write_addr(&peer, c.a[1], c.a[2])?;
    install(file, flags & SOCK_CLOEXEC != 0)
}

pub fn accept(c: &mut Ctx) -> KResult<u64> {
    do_accept(c, 0)
}

pub fn accept4(c: &mut Ctx) -> KResult<u64> {
    do_accept(c, c.a[3] as u32)
}

pub fn shutdown(c: &mut Ctx) -> KResult<u64> {
    let (_, s) = sock_file(c.int(0))?;
    s.shutdown(c.a[1] as u32).map(|()| 0)
}

pub fn getsockname(c: &mut Ctx) -> KResult<u64> {
    let (_, s) = sock_file(c.int(0))?;
    write_addr(&s.name(), c.a[1], c.a[2]).map(|()| 0)
}

pub fn getpeername(c: &mut Ctx) -> KResult<u64> {
    let (_, s) = sock_file(c.int(0))?;
    write_addr(&s.peer_name()?, c.a[1], c.a[2]).map(|()| 0)
}

/// setsockopt with the option's value at `optval` (`len` bytes); io_uring's
/// SOCKET_URING_OP_SETSOCKOPT too.
pub fn set_sockopt(s: &dyn Socket, level: i32, name: i32, optval: u64, len: i32) -> KResult<()> {
    if level != SOL_SOCKET {
        if len < 4 {
            return Err(EINVAL);
        }
        return s.set_proto_option(level, name, task::read_user(optval)?);
    }
    if matches!(name, SO_RCVTIMEO | SO_SNDTIMEO | SO_RCVTIMEO_NEW | SO_SNDTIMEO_NEW) {
        // struct timeval (the same as __kernel_sock_timeval on x86-64).
        if len < 16 {
            return Err(EINVAL);
        }
        let [sec, usec]: [i64; 2] = task::read_user(optval)?;
        if !(0..1_000_000).contains(&usec) {
            return Err(EDOM);
        }
        // Linux: a negative time is "do not wait"; zero is "for ever".
        let ns = if sec < 0 { 1 } else { (sec as u64).saturating_mul(1_000_000_000).saturating_add(usec as u64 * 1000) };
        return s.set_timeout(matches!(name, SO_SNDTIMEO | SO_SNDTIMEO_NEW), ns);
    }
    if name == SO_LINGER {
        if len < 8 {
            return Err(EINVAL);
        }
        s.set_linger(task::read_user(optval)?);
        return Ok(());
    }
    if len < 4 {
        return Err(EINVAL);
    }
    s.set_option(name, task::read_user(optval)?)
}

/// getsockopt into `optval` with room for `room` bytes: the bytes written (io_uring's
/// SOCKET_URING_OP_GETSOCKOPT too).
pub fn get_sockopt(s: &dyn Socket, level: i32, name: i32, optval: u64, room: i32) -> KResult<u32> {
    if room < 0 {
        return Err(EINVAL);
    }
    let raw: Vec<u8> = match name {
        _ if level != SOL_SOCKET => s.proto_option(level, name)?.to_le_bytes().to_vec(),
        SO_LINGER => s.linger().iter().flat_map(|v| v.to_le_bytes()).collect(),
        SO_PEERCRED => s.peer_cred().iter().flat_map(|v| v.to_le_bytes()).collect(),
        SO_RCVTIMEO | SO_SNDTIMEO | SO_RCVTIMEO_NEW | SO_SNDTIMEO_NEW => {
            let ns = s.timeout(matches!(name, SO_SNDTIMEO | SO_SNDTIMEO_NEW))?;
            let tv = [(ns / 1_000_000_000) as i64, (ns % 1_000_000_000 / 1000) as i64];
            tv.iter().flat_map(|v| v.to_le_bytes()).collect()
        }
        _ => get_option(s, name)?.to_le_bytes().to_vec(),
    };
    let n = raw.len().min(room as usize);
    task::copy_to_user(optval, &raw[..n])?;
    Ok(n as u32)
}

pub fn setsockopt(c: &mut Ctx) -> KResult<u64> {
    let (_, s) = sock_file(c.int(0))?;
    set_sockopt(&*s, c.int(1), c.int(2), c.a[3], c.a[4] as i32).map(|()| 0)
}

pub fn getsockopt(c: &mut Ctx) -> KResult<u64> {
    let (_, s) = sock_file(c.int(0))?;
    let room: i32 = task::read_user(c.a[4])?;
    let n = get_sockopt(&*s, c.int(1), c.int(2), c.a[3], room)?;
    task::write_user(c.a[4], &n).map(|()| 0)
}

/// Copies `dst.len()` bytes in from `iov`, from byte `offset` of it on.
fn read_iov(iov: &[(u64, usize)], mut offset: usize, dst: &mut [u8]) -> KResult<()> {
    let mut at = 0;
    for &(base, len) in iov {
        if at == dst.len() {
            break;
        }
        if offset >= len {
            offset -= len;
            continue;
        }
        let n = (len - offset).min(dst.len() - at);
        task::copy_from_user(&mut dst[at..at + n], base + offset as u64)?;
        (at, offset) = (at + n, 0);
    }
    Ok(())
}

/// Copies `data` out over `iov`.
fn scatter(iov: &[(u64, usize)], data: &[u8]) -> KResult<()> {
    let mut at = 0;
    for &(base, len) in iov {
        let n = len.min(data.len() - at);
        task::copy_to_user(base, &data[at..at + n])?;
        at += n;
        if at == data.len() {
            break;
        }
    }
    Ok(())
}

/// A message to send, as user space described it.
pub struct UserMsg {
    pub to: Option<Vec<u8>>,
    pub iov: Vec<(u64, usize)>,
    pub files: Vec<Arc<OpenFile>>,
    pub cred: Option<[u32; 3]>,
}

/// Sends a user message (send, sendto, sendmsg; io_uring's SEND and SENDMSG). A stream
/// sends all of it unless nonblocking; a broken pipe raises SIGPIPE unless MSG_NOSIGNAL.
pub fn send_user(s: &dyn Socket, msg: UserMsg, flags: u32, nonblock: bool) -> KResult<usize> {
    if flags & MSG_OOB != 0 {
        return Err(EOPNOTSUPP);
    }
    let total = msg.iov.iter().try_fold(0usize, |t, v| t.checked_add(v.1)).ok_or(EINVAL)?;
    let head = Outgoing { data: Vec::new(), to: msg.to.as_deref(), files: msg.files, cred: msg.cred };
    send_from(s, total, head, nonblock, flags & MSG_NOSIGNAL != 0, &mut |at, dst| read_iov(&msg.iov, at, dst))
}

/// Drops the first `n` bytes of `iov`.
pub fn advance(iov: &mut Vec<(u64, usize)>, mut n: usize) {
    while n > 0 && !iov.is_empty() {
        if iov[0].1 <= n {
            n -= iov[0].1;
            iov.remove(0);
        } else {
            iov[0].0 += n as u64;
            iov[0].1 -= n;
            n = 0;
        }
    }
}

/// Receives into `iov` (recv, recvfrom, recvmsg; io_uring's RECV and RECVMSG): the
/// bytes written, and what came with them. MSG_WAITALL on a stream gathers until the
/// buffer is full (or the end, an error or a signal after some data).
pub fn recv_user(s: &dyn Socket, iov: &[(u64, usize)], flags: u32, nonblock: bool) -> KResult<(usize, Incoming)> {
    if flags & MSG_OOB != 0 {
        return Err(EINVAL);
    }
    let total: usize = iov.iter().map(|v| v.1).sum();
    let mut got = s.recv(total, flags, nonblock)?;
    scatter(iov, &got.data)?;
    // MSG_TRUNC on a stream: the bytes were dropped, and their count is the result.
    let dropped = s.kind() == SOCK_STREAM && flags & MSG_TRUNC != 0 && got.data.is_empty();
    let mut n = if dropped { got.full_len } else { got.data.len() };
    if flags & MSG_WAITALL != 0 && s.kind() == SOCK_STREAM && flags & MSG_PEEK == 0 {
        let mut rest: Vec<(u64, usize)> = iov.to_vec();
        advance(&mut rest, n);
        while n < total && n > 0 {
            let more = match s.recv(total - n, flags, nonblock) {
                Ok(m) if m.data.is_empty() => break,
                Ok(m) => m,
                Err(_) => break,
            };
            scatter(&rest, &more.data)?;
            advance(&mut rest, more.data.len());
            n += more.data.len();
            got.files.extend(more.files);
        }
    }
    got.data.clear();
    Ok((n, got))
}

pub fn sendto(c: &mut Ctx) -> KResult<u64> {
    let (f, s) = sock_file(c.int(0))?;
    let flags = c.a[3] as u32;
    // An address with length 0 is no address (a plain send), as on Linux.
    let to = if c.a[4] != 0 && c.a[5] != 0 { Some(read_addr(c.a[4], c.a[5])?) } else { None };
    let msg = UserMsg { to, iov: alloc::vec![(c.a[1], c.a[2] as usize)], files: Vec::new(), cred: None };
    send_user(&*s, msg, flags, nonblocking(&f, flags)).map(|n| n as u64)
}

pub fn recvfrom(c: &mut Ctx) -> KResult<u64> {
    let (f, s) = sock_file(c.int(0))?;
    let flags = c.a[3] as u32;
    let (n, got) = recv_user(&*s, &[(c.a[1], c.a[2] as usize)], flags, nonblocking(&f, flags))?;
    if let Some(from) = got.from.as_ref().filter(|_| s.kind() != SOCK_STREAM) {
        write_addr(from, c.a[4], c.a[5])?;
    } else if c.a[4] != 0 && c.a[5] != 0 {
        task::write_user(c.a[5], &0u32)?;
    }
    Ok(if flags & MSG_TRUNC != 0 && s.kind() != SOCK_STREAM { got.full_len } else { n } as u64)
}

/// A struct msghdr in user memory: (name, namelen, iov, iovlen, control, controllen, flags).
pub struct MsgHdr {
    pub name: u64,
    pub namelen: u32,
    pub iov: u64,
    pub iovlen: u64,
    pub control: u64,
    pub controllen: u64,
}

pub fn read_msghdr(addr: u64) -> KResult<MsgHdr> {
    let mut raw = [0u8; MSGHDR];
    task::copy_from_user(&mut raw, addr)?;
    let w = |i: usize| u64::from_le_bytes(raw[i..i + 8].try_into().expect("8 bytes"));
    Ok(MsgHdr { name: w(0), namelen: w(8) as u32, iov: w(16), iovlen: w(24), control: w(32), controllen: w(40) })
}

/// Files and stated credentials from a sender's control data.
type Control = (Vec<Arc<OpenFile>>, Option<[u32; 3]>);

/// What a sender's control messages carry: SCM_RIGHTS files, and SCM_CREDENTIALS, which
/// must be its own pid and one of its user and group ids unless it is root (EPERM). Other
/// control messages are refused (EINVAL), as AF_UNIX does.
fn control_in(control: u64, len: u64) -> KResult<Control> {
    if control == 0 || len == 0 {
        return Ok((Vec::new(), None));
    }
    if len > 64 * 1024 {
        return Err(ENOBUFS);
    }
    let mut raw = alloc::vec![0u8; len as usize];
    task::copy_from_user(&mut raw, control)?;
    let (mut files, mut cred) = (Vec::new(), None);
    let mut at = 0;
    while at + CMSGHDR <= raw.len() {
        let word = |i: usize| u32::from_le_bytes(raw[i..i + 4].try_into().expect("4 bytes"));
        let clen = u64::from_le_bytes(raw[at..at + 8].try_into().expect("8 bytes")) as usize;
        let (level, kind) = (word(at + 8) as i32, word(at + 12) as i32);
        if clen < CMSGHDR || at + clen > raw.len() || level != SOL_SOCKET {
            return Err(EINVAL);
        }
        match kind {
            SCM_RIGHTS => {
                for fd in raw[at + CMSGHDR..at + clen].chunks_exact(4) {
                    if files.len() == SCM_MAX_FD {
                        return Err(EINVAL);
                    }
                    files.push(file(i32::from_le_bytes(fd.try_into().expect("4 bytes")))?);
                }
            }
            SCM_CREDENTIALS if clen == CMSGHDR + 12 => {
                let claim = [word(at + 16), word(at + 20), word(at + 24)];
                let me = task::cred::current();
                let pid_ok = claim[0] == task::current_process().pid;
                let uid_ok = [me.uid, me.euid, me.suid].contains(&claim[1]);
                let gid_ok = [me.gid, me.egid, me.sgid].contains(&claim[2]);
                if me.euid != 0 && !(pid_ok && uid_ok && gid_ok) {
                    return Err(EPERM);
                }
                cred = Some(claim);
            }
            _ => return Err(EINVAL),
        }
        at += clen.next_multiple_of(8);
    }
    Ok((files, cred))
}

/// Writes a received message's control data in `control` (`room` bytes): its sender's
/// credentials (SCM_CREDENTIALS, when asked for), then its files (SCM_RIGHTS, installed
/// as new descriptors). What does not fit is left out (files closed) and the message
/// marked MSG_CTRUNC. Returns (control bytes, flags).
pub fn deliver_control(got: &mut Incoming, control: u64, room: u64, cloexec: bool) -> KResult<(u64, u32)> {
    let (files, cred) = (core::mem::take(&mut got.files), got.cred);
    let mut out: Vec<u8> = Vec::new();
    let mut trunc = 0;
    let header = |out: &mut Vec<u8>, len: usize, kind: i32| {
        out.extend_from_slice(&(len as u64).to_le_bytes());
        out.extend_from_slice(&SOL_SOCKET.to_le_bytes());
        out.extend_from_slice(&kind.to_le_bytes());
    };
    let room = if control == 0 { 0 } else { room as usize };
    if let Some(c) = cred {
        if room >= CMSGHDR + 12 {
            header(&mut out, CMSGHDR + 12, SCM_CREDENTIALS);
            for v in c {
                out.extend_from_slice(&v.to_le_bytes());
            }
            out.resize(out.len().next_multiple_of(8), 0);
        } else {
            trunc = MSG_CTRUNC;
        }
    }
    if !files.is_empty() {
        let left = room.saturating_sub(out.len());
        let fit = if left < CMSGHDR { 0 } else { ((left - CMSGHDR) / 4).min(files.len()) };
        if fit < files.len() {
            trunc = MSG_CTRUNC;
        }
        if fit > 0 {
            let mut fds = Vec::with_capacity(fit);
            for f in files.into_iter().take(fit) {
                fds.push(install(f, cloexec)? as i32);
            }
            header(&mut out, CMSGHDR + 4 * fds.len(), SCM_RIGHTS);
            for fd in fds {
                out.extend_from_slice(&fd.to_le_bytes());
            }
            out.resize(out.len().next_multiple_of(8).min(room), 0);
        }
    }
    for (level, kind, data) in &got.cmsgs {
        let len = CMSGHDR + data.len();
        if room.saturating_sub(out.len()) < len {
            trunc = MSG_CTRUNC;
            continue;
        }
        out.extend_from_slice(&(len as u64).to_le_bytes());
        out.extend_from_slice(&level.to_le_bytes());
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().next_multiple_of(8).min(room), 0);
    }
    if !out.is_empty() {
        task::copy_to_user(control, &out)?;
    }
    Ok((out.len() as u64, trunc))
}

/// sendmsg on a socket with a msghdr at `addr` (io_uring's SENDMSG too).
pub fn sendmsg_at(s: &dyn Socket, addr: u64, flags: u32, nonblock: bool) -> KResult<usize> {
    sendmsg_from(s, addr, flags, nonblock, None)
}

/// Physical segments for a user range (a registered buffer's), or EFAULT.
pub type Segments<'a> = &'a dyn Fn(u64, usize) -> KResult<Vec<(u64, u32)>>;

/// sendmsg of the msghdr at `addr`; with `fixed`, its iovecs name parts of a registered
/// buffer and the bytes come from its frames (io_uring's SENDMSG_ZC with FIXED_BUF).
pub fn sendmsg_from(s: &dyn Socket, addr: u64, flags: u32, nonblock: bool, fixed: Option<Segments>) -> KResult<usize> {
    let h = read_msghdr(addr)?;
    let to = if h.name != 0 && h.namelen != 0 { Some(read_addr(h.name, u64::from(h.namelen))?) } else { None };
    let iov = read_iovecs(h.iov, h.iovlen)?;
    let (files, cred) = control_in(h.control, h.controllen)?;
    let Some(segments) = fixed else {
        return send_user(s, UserMsg { to, iov, files, cred }, flags, nonblock);
    };
    let mut segs = Vec::new();
    for (a, l) in iov {
        segs.extend(segments(a, l)?);
    }
    send_frames(s, segs, UserMsg { to, iov: Vec::new(), files, cred }, flags, nonblock)
}

/// Sends the bytes of pinned frames `segs` (an io_uring registered buffer), with the
/// address, files and credentials of `head` (its iovecs unused), as `send_user` does.
pub fn send_frames(s: &dyn Socket, segs: Vec<(u64, u32)>, head: UserMsg, flags: u32, nonblock: bool) -> KResult<usize> {
    if flags & MSG_OOB != 0 {
        return Err(EOPNOTSUPP);
    }
    let total = segs.iter().map(|v| v.1 as usize).sum();
    let frames = crate::fs::IoBuf::Frames(segs);
    let out = Outgoing { data: Vec::new(), to: head.to.as_deref(), files: head.files, cred: head.cred };
    send_from(s, total, out, nonblock, flags & MSG_NOSIGNAL != 0, &mut |at, dst| frames.get(at, dst))
}

/// recvmsg on a socket with a msghdr at `addr`, which it updates (io_uring's RECVMSG too).
pub fn recvmsg_at(s: &dyn Socket, addr: u64, flags: u32, nonblock: bool) -> KResult<usize> {
    let h = read_msghdr(addr)?;
    let iov = read_iovecs(h.iov, h.iovlen)?;
    let total: usize = iov.iter().map(|v| v.1).sum();
    let (n, mut got) = recv_user(s, &iov, flags, nonblock)?;
    let mut out_flags = 0;
    if s.kind() != SOCK_STREAM && got.full_len > total {
        out_flags |= MSG_TRUNC;
    }
    let (clen, ctrunc) = deliver_control(&mut got, h.control, h.controllen, flags & MSG_CMSG_CLOEXEC != 0)?;
    // (Linux leaves MSG_CMSG_CLOEXEC in the flags it returns.)
    out_flags |= ctrunc | (flags & MSG_CMSG_CLOEXEC);
    if h.name != 0 {
        let from = got.from.filter(|_| s.kind() != SOCK_STREAM).unwrap_or_default();
        let n = from.len().min(h.namelen as usize);
        task::copy_to_user(h.name, &from[..n])?;
        task::write_user(addr + 8, &(from.len() as u32))?;
    }
    task::write_user(addr + 40, &clen)?;
    task::write_user(addr + 48, &out_flags)?;
    Ok(if flags & MSG_TRUNC != 0 && s.kind() != SOCK_STREAM { got.full_len } else { n })
}

pub fn sendmsg(c: &mut Ctx) -> KResult<u64> {
    let (f, s) = sock_file(c.int(0))?;
    let flags = c.a[2] as u32;
    sendmsg_at(&*s, c.a[1], flags, nonblocking(&f, flags)).map(|n| n as u64)
}

pub fn recvmsg(c: &mut Ctx) -> KResult<u64> {
    let (f, s) = sock_file(c.int(0))?;
    let flags = c.a[2] as u32;
    recvmsg_at(&*s, c.a[1], flags, nonblocking(&f, flags)).map(|n| n as u64)
}

/// sendmmsg: each struct mmsghdr is a msghdr and the count of bytes sent (u32).
/// recvmmsg: up to `vlen` messages (at most UIO_MAXIOV), each into its mmsghdr, its
/// length in msg_len. MSG_WAITFORONE makes every receive after the first nonblocking. As
/// on Linux the timeout is looked at only after each message (it does not bound a wait)
/// and what is left of it is written back. An error after some messages ends the batch
/// with them.
pub fn recvmmsg(c: &mut Ctx) -> KResult<u64> {
    const MSG_WAITFORONE: u32 = 0x10000;
    let (f, s) = sock_file(c.int(0))?;
    let flags = c.a[3] as u32;
    let deadline = if c.a[4] != 0 {
        let [sec, nsec]: [i64; 2] = task::read_user(c.a[4])?;
        if sec < 0 || !(0..1_000_000_000).contains(&nsec) {
            return Err(EINVAL);
        }
        Some(crate::time::monotonic_ns().saturating_add((sec as u64).saturating_mul(1_000_000_000) + nsec as u64))
    } else {
        None
    };
    let mut got = 0u64;
    for i in 0..(c.a[2] as u32).min(1024) {
        let at = c.a[1] + u64::from(i) * 64;
        let fl = if got > 0 && flags & MSG_WAITFORONE != 0 { flags | MSG_DONTWAIT } else { flags } & !MSG_WAITFORONE;
        match recvmsg_at(&*s, at, fl, nonblocking(&f, fl)) {
            Ok(n) => task::write_user(at + 56, &(n as u32))?,
            Err(e) if got == 0 => return Err(e),
            Err(_) => break,
        }
        got += 1;
        if deadline.is_some_and(|d| crate::time::monotonic_ns() >= d) {
            break;
        }
    }
    if let Some(d) = deadline {
        let left = d.saturating_sub(crate::time::monotonic_ns());
        task::write_user(c.a[4], &[(left / 1_000_000_000) as i64, (left % 1_000_000_000) as i64])?;
    }
    Ok(got)
}

pub fn sendmmsg(c: &mut Ctx) -> KResult<u64> {
    let (f, s) = sock_file(c.int(0))?;
    let flags = c.a[3] as u32;
    let mut sent = 0u64;
    for i in 0..(c.a[2] as u32).min(1024) {
        let at = c.a[1] + u64::from(i) * 64;
        match sendmsg_at(&*s, at, flags, nonblocking(&f, flags)) {
            Ok(n) => task::write_user(at + 56, &(n as u32))?,
            Err(e) if sent == 0 => return Err(e),
            Err(_) => break,
        }
        sent += 1;
    }
    Ok(sent)
}
