//! AF_UNIX sockets (Linux's net/unix/af_unix.c): stream, datagram and seqpacket, named by
//! a path (a socket file in the file system) or an abstract name (a leading NUL, in one
//! table), or unnamed.
//!
//! Each socket has a receive queue of messages; a sender puts its messages straight into
//! its peer's queue. A stream reads across messages (it stops before one that carries
//! files, as Linux does); a datagram or seqpacket read takes one message. Flow control as
//! Linux's: a sender's queued bytes still unread by the peer count against its send buffer,
//! and a send waits (or EAGAIN) while they would exceed it; a datagram receiver takes at
//! most `MAX_DGRAM_QLEN` messages.
//!
//! A connection: connect() to a listening stream or seqpacket socket makes the server's end
//! at once, joined to the client's, and queues it on the listener (backlog permitting) for
//! accept(). Ends refer to each other weakly; closing one (`release`) marks the other's
//! peer gone, so its reads see the end of the stream and its writes EPIPE.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::any::Any;
use core::sync::atomic::{AtomicBool, Ordering};

use super::*;
use crate::sync::SpinLock;
use crate::task::wait::WaitQueue;

/// Linux's default send and receive buffers (net.core.wmem_default).
const DEFAULT_BUF: usize = 212_992;
/// Linux's net.unix.max_dgram_qlen.
const MAX_DGRAM_QLEN: usize = 512;
/// Linux's SOMAXCONN.
const SOMAXCONN: usize = 4096;
/// sizeof(struct sockaddr_un): the family, then 108 bytes of path.
pub const SUN_LEN: usize = 110;

struct Msg {
    data: Vec<u8>,
    /// Bytes of `data` a stream reader already took.
    taken: usize,
    from: Option<Vec<u8>>,
    files: Vec<Arc<OpenFile>>,
    /// What SCM_CREDENTIALS says of it.
    cred: [u32; 3],
    /// The sender, whose send buffer the message is charged to.
    sender: Weak<UnixSocket>,
}

#[derive(Default)]
struct State {
    /// Its address: a sockaddr_un (family, then the name), once bound.
    name: Option<Vec<u8>>,
    /// Listening: the backlog, and the accepted-to-be server ends.
    listening: Option<(usize, VecDeque<Arc<UnixSocket>>)>,
    /// Connected (or a datagram socket's default destination).
    peer: Option<Weak<UnixSocket>>,
    /// Whether it ever connected (a stream whose peer went is then at its end, not
    /// unconnected).
    was_connected: bool,
    queue: VecDeque<Msg>,
    /// Bytes this socket has queued at its peers, still unread (against `sndbuf`).
    in_flight: usize,
    /// shutdown(): no more reads (RD), no more writes (WR); and what the peer shut.
    shut_rd: bool,
    shut_wr: bool,
    peer_shut_wr: bool,
    /// The peer closed.
    peer_gone: bool,
    sndbuf: usize,
    rcvbuf: usize,
    passcred: bool,
    /// SO_REUSEADDR, SO_REUSEPORT, SO_KEEPALIVE as set (AF_UNIX has no use for them).
    reuseaddr: bool,
    reuseport: bool,
    keepalive: bool,
    /// A pending error (sk_err): ECONNRESET when the peer closed with data unread.
    error: Option<Errno>,
    /// SO_LINGER as set (AF_UNIX's close never lingers, on Linux either).
    linger: [i32; 2],
    /// SO_RCVTIMEO, SO_SNDTIMEO (ns; 0: for ever).
    timeouts: Timeouts,
}

pub struct UnixSocket {
    kind: u32,
    me: Weak<UnixSocket>,
    /// Who made it: (pid, euid, egid), what SO_PEERCRED tells its peer.
    owner: [u32; 3],
    /// Its last descriptor closed (read without its lock: a peer may ask under its own).
    released: AtomicBool,
    st: SpinLock<State>,
    /// Woken when there is something to read or to accept, or the peer went.
    readable: WaitQueue,
    /// Woken when room appears for this socket's sends.
    writable: WaitQueue,
}

/// Abstract names (a sockaddr_un whose path starts with NUL), by name.
static ABSTRACT: SpinLock<BTreeMap<Vec<u8>, Weak<UnixSocket>>> = SpinLock::new(BTreeMap::new());

/// The family-only address of an unnamed socket.
fn unnamed() -> Vec<u8> {
    AF_UNIX.to_le_bytes().to_vec()
}

/// Checks a sockaddr_un and gives it back trimmed: a path ends at its first NUL (Linux
/// keeps the length the caller gave for abstract names only).
fn check_addr(addr: &[u8]) -> KResult<Vec<u8>> {
    if addr.len() < 2 || addr.len() > SUN_LEN || u16::from_le_bytes([addr[0], addr[1]]) != AF_UNIX {
        return Err(EINVAL);
    }
    let path = &addr[2..];
    if path.first() == Some(&0) {
        return Ok(addr.to_vec());
    }
    let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
    Ok(addr[..2 + end].to_vec())
}

/// A bound path's file: connect() finds the socket through it.
struct SocketInode {
    sock: Weak<UnixSocket>,
    ino: u64,
    mode: u32,
    owner: crate::fs::Owner,
}

impl Node for SocketInode {
    fn stat(&self) -> Stat {
        let mut s = Stat { ino: self.ino, mode: FileType::Socket.mode_bits() | self.mode, nlink: 1, ..Stat::default() };
        self.owner.fill(&mut s);
        s
    }

    fn file_type(&self) -> FileType {
        FileType::Socket
    }

    fn open(&self, _flags: u32) -> KResult<()> {
        Err(ENXIO)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl UnixSocket {
    pub fn create(kind: u32) -> Arc<dyn Socket> {
        Self::make(kind)
    }

    fn make(kind: u32) -> Arc<UnixSocket> {
        let cred = crate::task::cred::current();
        Self::make_for(kind, [crate::task::current_process().pid, cred.euid, cred.egid])
    }

    fn make_for(kind: u32, owner: [u32; 3]) -> Arc<UnixSocket> {
        Arc::new_cyclic(|me| UnixSocket {
            kind,
            me: me.clone(),
            owner,
            released: AtomicBool::new(false),
            st: SpinLock::new(State { sndbuf: DEFAULT_BUF, rcvbuf: DEFAULT_BUF, ..State::default() }),
            readable: WaitQueue::new(),
            writable: WaitQueue::new(),
        })
    }

    /// A connected pair (socketpair).
    pub fn pair(kind: u32) -> (Arc<dyn Socket>, Arc<dyn Socket>) {
        let (a, b) = (Self::make(kind), Self::make(kind));
        Self::join(&a, &b);
        (a, b)
    }

    fn join(a: &Arc<UnixSocket>, b: &Arc<UnixSocket>) {
        for (x, y) in [(a, b), (b, a)] {
            let mut st = x.st.lock();
            st.peer = Some(Arc::downgrade(y));
            st.was_connected = true;
        }
    }

    /// When a blocking call that starts now gives up (SO_RCVTIMEO, SO_SNDTIMEO).
    fn deadline(&self, send: bool) -> Option<u64> {
        self.st.lock().timeouts.deadline(send)
    }

    fn stream_like(&self) -> bool {
        self.kind != SOCK_DGRAM
    }

    /// The socket bound to `addr` (ECONNREFUSED: nobody is; ENOENT: no such path).
    fn lookup(addr: &[u8]) -> KResult<Arc<UnixSocket>> {
        let addr = check_addr(addr)?;
        if addr.len() == 2 {
            return Err(EINVAL);
        }
        if addr[2] == 0 {
            return ABSTRACT.lock().get(&addr).and_then(Weak::upgrade).ok_or(ECONNREFUSED);
        }
        let path = core::str::from_utf8(&addr[2..]).map_err(|_| ENOENT)?;
        let node = crate::syscall::fs::cwd_lookup(path, true)?;
        let inode = node.as_any().downcast_ref::<SocketInode>().ok_or(ECONNREFUSED)?;
        let sock = inode.sock.upgrade().ok_or(ECONNREFUSED)?;
        if sock.released.load(Ordering::Acquire) {
            return Err(ECONNREFUSED);
        }
        Ok(sock)
    }

    /// Puts `msg` on this socket's queue if it takes it (a datagram receiver holds at most
    /// `MAX_DGRAM_QLEN`); false if it is full.
    fn deliver(&self, msg: Msg) -> Result<(), Msg> {
        let mut st = self.st.lock();
        if !self.stream_like() && st.queue.len() >= MAX_DGRAM_QLEN {
            return Err(msg);
        }
        st.queue.push_back(msg);
        drop(st);
        self.readable.wake_all();
        Ok(())
    }

    /// `n` bytes this socket sent were read: room for its sends.
    fn uncharge(&self, n: usize) {
        let mut st = self.st.lock();
        st.in_flight = st.in_flight.saturating_sub(n);
        drop(st);
        self.writable.wake_all();
    }

    fn readable_now(&self) -> bool {
        let st = self.st.lock();
        !st.queue.is_empty()
            || st.listening.as_ref().is_some_and(|(_, q)| !q.is_empty())
            || st.shut_rd
            || (self.stream_like() && st.was_connected && (st.peer_gone || st.peer_shut_wr))
    }
}

impl Socket for UnixSocket {
    fn kind(&self) -> u32 {
        self.kind
    }

    fn family(&self) -> u16 {
        AF_UNIX
    }

    fn bind(&self, addr: &[u8]) -> KResult<()> {
        let addr = check_addr(addr)?;
        if self.st.lock().name.is_some() {
            // Autobinding a bound socket changes nothing.
            return if addr.len() == 2 { Ok(()) } else { Err(EINVAL) };
        }
        if addr.len() == 2 {
            // Autobind: Linux picks a 5-hex-digit abstract name.
            let name = {
                let mut table = ABSTRACT.lock();
                let mut n = 0u32;
                loop {
                    let mut name = unnamed();
                    name.push(0);
                    name.extend_from_slice(alloc::format!("{:05x}", n).as_bytes());
                    if !table.contains_key(&name) {
                        table.insert(name.clone(), self.me.clone());
                        break name;
                    }
                    n += 1;
                }
            };
            self.st.lock().name = Some(name);
            return Ok(());
        }
        if addr[2] == 0 {
            let mut table = ABSTRACT.lock();
            if table.get(&addr).is_some_and(|w| w.strong_count() > 0) {
                return Err(EADDRINUSE);
            }
            table.insert(addr.clone(), self.me.clone());
        } else {
            let path = core::str::from_utf8(&addr[2..]).map_err(|_| EINVAL)?;
            let cwd = crate::task::current_process().cwd.lock().clone();
            let (dir, name, _) = crate::fs::path::lookup_parent(&cwd, path)?;
            if name.is_empty() {
                return Err(EINVAL);
            }
            crate::fs::perm::may_create(&*dir)?;
            let mut mode = 0o777 & !crate::syscall::fs::umask_now();
            let owner = crate::fs::Owner::of_creator(crate::fs::perm::inherit_group(&dir.stat(), FileType::Socket, &mut mode));
            let inode = Arc::new(SocketInode { sock: self.me.clone(), ino: alloc_ino(), mode, owner });
            dir.link(&name, inode).map_err(|e| if e == EEXIST { EADDRINUSE } else { e })?;
        }
        let mut name = addr;
        if name[2] != 0 {
            name.push(0); // a path's name ends with its NUL, as Linux reports it
        }
        self.st.lock().name = Some(name);
        Ok(())
    }

    fn listen(&self, backlog: i32) -> KResult<()> {
        if !self.stream_like() {
            return Err(EOPNOTSUPP);
        }
        let mut st = self.st.lock();
        if st.was_connected || st.name.is_none() {
            return Err(EINVAL);
        }
        let backlog = (backlog.max(0) as usize).min(SOMAXCONN);
        match &mut st.listening {
            Some((b, _)) => *b = backlog,
            None => st.listening = Some((backlog, VecDeque::new())),
        }
        Ok(())
    }

    fn accept(&self, nonblock: bool) -> KResult<Arc<dyn Socket>> {
        if !self.stream_like() {
            return Err(EOPNOTSUPP);
        }
        let deadline = self.deadline(false);
        loop {
            {
                let mut st = self.st.lock();
                let Some((_, pending)) = st.listening.as_mut() else { return Err(EINVAL) };
                if let Some(server) = pending.pop_front() {
                    drop(st);
                    // Room in the backlog for a waiting connect.
                    self.writable.wake_all();
                    return Ok(server);
                }
            }
            if nonblock {
                return Err(EAGAIN);
            }
            self.readable.wait_until(deadline, || self.readable_now()).map_err(wait_error)?;
        }
    }

    fn connect(&self, addr: &[u8], nonblock: bool) -> KResult<()> {
        let target = Self::lookup(addr)?;
        if !self.stream_like() {
            // A datagram socket's default destination (and the only sender it hears).
            if target.kind != self.kind {
                return Err(EPROTOTYPE);
            }
            self.st.lock().peer = Some(Arc::downgrade(&target));
            return Ok(());
        }
        {
            let st = self.st.lock();
            if st.was_connected {
                return Err(EISCONN);
            }
            if st.listening.is_some() {
                return Err(EINVAL);
            }
        }
        if target.kind != self.kind {
            return Err(EPROTOTYPE);
        }
        loop {
            let server = UnixSocket::make_for(self.kind, target.owner);
            {
                let mut st = target.st.lock();
                let name = st.name.clone();
                let Some((backlog, pending)) = st.listening.as_mut() else { return Err(ECONNREFUSED) };
                if pending.len() <= *backlog {
                    // The server's end: the listener's name, joined to this socket.
                    server.st.lock().name = name;
                    UnixSocket::join(&server, &self.me.upgrade().expect("a live socket"));
                    pending.push_back(server);
                    drop(st);
                    target.readable.wake_all();
                    return Ok(());
                }
            }
            if nonblock {
                return Err(EAGAIN);
            }
            let room = || target.st.lock().listening.as_ref().is_none_or(|(b, q)| q.len() <= *b);
            // A connect that times out (SO_SNDTIMEO) is EINPROGRESS, as on Linux.
            target.writable.wait_until(self.deadline(true), room).map_err(|e| match wait_error(e) {
                EAGAIN => EINPROGRESS,
                e => e,
            })?;
        }
    }

    fn send(&self, msg: Outgoing, nonblock: bool) -> KResult<usize> {
        let deadline = self.deadline(true);
        let dest = match (msg.to, self.stream_like()) {
            (Some(_), true) => {
                let st = self.st.lock();
                return Err(if st.was_connected { EISCONN } else { EOPNOTSUPP });
            }
            (Some(addr), false) => Self::lookup(addr)?,
            (None, _) => {
                let mut st = self.st.lock();
                if st.shut_wr {
                    return Err(EPIPE);
                }
                // Whether a datagram peer closed is its lock's to say: not under ours.
                let peer = st.peer.as_ref().and_then(Weak::upgrade);
                let peer_closed = peer.as_ref().is_some_and(|p| !self.stream_like() && p.released.load(Ordering::Acquire));
                match peer {
                    Some(p) if !st.peer_gone && !peer_closed => p,
                    _ if st.was_connected && self.stream_like() => return Err(EPIPE),
                    // A datagram socket whose peer went: refused once, then unconnected.
                    _ if st.peer.is_some() => {
                        st.peer = None;
                        return Err(ECONNREFUSED);
                    }
                    _ => return Err(ENOTCONN),
                }
            }
        };
        if self.st.lock().shut_wr {
            return Err(EPIPE);
        }
        if !self.stream_like() {
            if dest.kind != self.kind {
                return Err(EPROTOTYPE);
            }
            // A receiver connected elsewhere hears only its peer.
            let me = self.me.as_ptr();
            if let Some(p) = &dest.st.lock().peer
                && p.as_ptr() != me
                && dest.kind == SOCK_DGRAM
            {
                return Err(EPERM);
            }
        }
        let mut data = msg.data;
        let len = data.len();
        if self.kind == SOCK_STREAM && len == 0 {
            return Ok(0); // nothing to queue (a stream has no empty messages)
        }
        if !self.stream_like() && len > self.st.lock().sndbuf {
            return Err(EMSGSIZE);
        }
        // An unnamed sender has no address to report (recvfrom's addrlen 0).
        let from = Some(self.st.lock().name.clone().unwrap_or_default());
        let mut files = msg.files;
        let cred = msg.cred.unwrap_or_else(own_cred);
        loop {
            let closed = {
                let st = dest.st.lock();
                st.shut_rd || dest.released.load(Ordering::Acquire)
            };
            if closed {
                return Err(if self.stream_like() { EPIPE } else { ECONNREFUSED });
            }
            // Room in this socket's send buffer: all of a datagram, some of a stream.
            let room = {
                let st = self.st.lock();
                st.sndbuf.saturating_sub(st.in_flight)
            };
            let n = if self.kind == SOCK_STREAM { room.min(len) } else if room >= len || len == 0 { len } else { 0 };
            // Out of kernel memory: no room for the message (Linux: the skb cannot be
            // allocated).
            if n > 0 && crate::mm::heap::under_pressure() {
                return Err(ENOBUFS);
            }
            if n > 0 || len == 0 {
                // A stream queues the part that fits; the caller sends the rest again.
                let mut part = core::mem::take(&mut data);
                part.truncate(n);
                let m = Msg { data: part, taken: 0, from: from.clone(), files: core::mem::take(&mut files), cred, sender: self.me.clone() };
                self.st.lock().in_flight += n;
                match dest.deliver(m) {
                    Ok(()) => return Ok(n),
                    Err(back) => {
                        self.st.lock().in_flight -= n;
                        (files, data) = (back.files, back.data);
                    }
                }
            }
            if nonblock {
                return Err(EAGAIN);
            }
            let (me, dest2) = (self, &dest);
            // (One socket's lock at a time: two datagram sockets may send to each other.)
            let ready = || {
                let (room, gone, shut) = {
                    let st = me.st.lock();
                    (st.sndbuf.saturating_sub(st.in_flight), st.peer_gone, st.shut_wr)
                };
                let queue_ok = me.stream_like() || dest2.st.lock().queue.len() < MAX_DGRAM_QLEN;
                room >= if me.kind == SOCK_STREAM { 1 } else { len } && queue_ok || gone || shut
            };
            // A datagram sender waits on the receiver's queue as well as its own buffer.
            let queue = if self.stream_like() { &self.writable } else { &dest.writable };
            queue.wait_until(deadline, ready).map_err(wait_error)?;
            if self.stream_like() && self.st.lock().peer_gone {
                return Err(EPIPE);
            }
        }
    }

    fn recv(&self, max: usize, flags: u32, nonblock: bool) -> KResult<Incoming> {
        let peek = flags & MSG_PEEK != 0;
        if max == 0 && self.kind == SOCK_STREAM {
            return Ok(Incoming::default());
        }
        let deadline = self.deadline(false);
        loop {
            {
                let mut st = self.st.lock();
                if st.listening.is_some() {
                    return Err(EINVAL);
                }
                if (!self.stream_like() || !st.queue.is_empty())
                    && let Some(got) = take(&mut st, self.kind, max, peek)
                {
                    drop(st);
                    for (sender, n) in got.1 {
                        if let Some(s) = sender.upgrade() {
                            s.uncharge(n);
                        }
                    }
                    if !self.stream_like() {
                        // Room in this queue for datagram senders waiting on it.
                        self.writable.wake_all();
                    }
                    return Ok(got.0);
                }
                if self.stream_like() && !st.was_connected {
                    return Err(if self.kind == SOCK_STREAM { EINVAL } else { ENOTCONN });
                }
                if let Some(e) = st.error.take() {
                    return Err(e);
                }
                // The end: shut for reading, or the peer will write no more.
                if st.shut_rd || (self.stream_like() && (st.peer_gone || st.peer_shut_wr)) {
                    return Ok(Incoming::default());
                }
            }
            if nonblock {
                return Err(EAGAIN);
            }
            self.readable.wait_until(deadline, || self.readable_now()).map_err(wait_error)?;
        }
    }

    fn shutdown(&self, how: u32) -> KResult<()> {
        if how > SHUT_RDWR {
            return Err(EINVAL);
        }
        let peer = {
            let mut st = self.st.lock();
            if how != SHUT_WR {
                st.shut_rd = true;
            }
            if how != SHUT_RD {
                st.shut_wr = true;
            }
            st.peer.as_ref().and_then(Weak::upgrade)
        };
        if let Some(p) = peer.filter(|_| self.stream_like()) {
            let mut st = p.st.lock();
            if how != SHUT_RD {
                st.peer_shut_wr = true;
            }
            drop(st);
            p.readable.wake_all();
            p.writable.wake_all();
        }
        self.readable.wake_all();
        self.writable.wake_all();
        Ok(())
    }

    fn name(&self) -> Vec<u8> {
        self.st.lock().name.clone().unwrap_or_else(unnamed)
    }

    fn peer_name(&self) -> KResult<Vec<u8>> {
        let st = self.st.lock();
        if st.peer_gone && self.stream_like() {
            return Err(ENOTCONN);
        }
        let peer = st.peer.as_ref().and_then(Weak::upgrade).ok_or(ENOTCONN)?;
        drop(st);
        Ok(peer.name())
    }

    fn option(&self, name: i32) -> Option<i32> {
        let st = self.st.lock();
        Some(match name {
            SO_ACCEPTCONN => i32::from(st.listening.is_some()),
            SO_SNDBUF => st.sndbuf as i32,
            SO_RCVBUF => st.rcvbuf as i32,
            SO_PASSCRED => i32::from(st.passcred),
            SO_REUSEADDR => i32::from(st.reuseaddr),
            SO_REUSEPORT => i32::from(st.reuseport),
            SO_KEEPALIVE => i32::from(st.keepalive),
            _ => return None,
        })
    }

    fn take_error(&self) -> i32 {
        self.st.lock().error.take().map_or(0, |e| e.0)
    }

    fn unread(&self) -> KResult<usize> {
        let st = self.st.lock();
        if st.listening.is_some() {
            return Err(EINVAL);
        }
        Ok(match self.kind {
            SOCK_STREAM => st.queue.iter().map(|m| m.data.len() - m.taken).sum(),
            _ => st.queue.front().map_or(0, |m| m.data.len()),
        })
    }

    fn unsent(&self) -> KResult<usize> {
        Ok(self.st.lock().in_flight)
    }

    /// A stream's queued bytes (Linux's unix_stream_read_generic sets msg_inq); the
    /// datagram kinds report none.
    fn inq_hint(&self) -> Option<usize> {
        (self.kind == SOCK_STREAM).then(|| self.unread().unwrap_or(0))
    }

    fn linger(&self) -> [i32; 2] {
        self.st.lock().linger
    }

    fn timeout(&self, send: bool) -> KResult<u64> {
        Ok(self.st.lock().timeouts.get(send))
    }

    fn set_timeout(&self, send: bool, ns: u64) -> KResult<()> {
        self.st.lock().timeouts.set(send, ns);
        Ok(())
    }

    fn set_linger(&self, linger: [i32; 2]) {
        self.st.lock().linger = [i32::from(linger[0] != 0), linger[1]];
    }

    fn peer_cred(&self) -> [u32; 3] {
        let peer = self.st.lock().peer.as_ref().and_then(Weak::upgrade);
        match peer {
            Some(p) if self.stream_like() => p.owner,
            _ => [0, u32::MAX, u32::MAX],
        }
    }

    fn set_option(&self, name: i32, value: i32) -> KResult<()> {
        let mut st = self.st.lock();
        // Linux doubles the value asked (bookkeeping overhead) within its limits.
        let size = |v: i32| (v.max(0) as usize).clamp(2304, DEFAULT_BUF / 2) * 2;
        match name {
            SO_SNDBUF => st.sndbuf = size(value),
            SO_RCVBUF => st.rcvbuf = size(value),
            SO_PASSCRED => st.passcred = value != 0,
            SO_REUSEADDR => st.reuseaddr = value != 0,
            SO_REUSEPORT => st.reuseport = value != 0,
            SO_KEEPALIVE => st.keepalive = value != 0,
            _ => return Err(ENOPROTOOPT),
        }
        drop(st);
        self.writable.wake_all();
        Ok(())
    }

    fn poll_mask(&self) -> u32 {
        use crate::fs::{POLLERR, POLLHUP, POLLIN, POLLOUT, POLLRDHUP, POLLRDNORM, POLLWRNORM};
        let st = self.st.lock();
        let mut m = 0;
        if st.error.is_some() {
            m |= POLLERR;
        }
        // What Linux's sk_shutdown would say: its own shutdowns, and the peer's (a peer
        // that closed shut both directions).
        let peer_closed = self.stream_like() && st.peer_gone;
        let rcv_shut = st.shut_rd || peer_closed || (self.stream_like() && st.peer_shut_wr);
        let snd_shut = st.shut_wr || peer_closed;
        if rcv_shut && snd_shut {
            m |= POLLHUP;
        }
        if rcv_shut {
            m |= POLLRDHUP | POLLIN | POLLRDNORM;
        }
        // A connection-based socket never connected (nor listening) is closed: hung up.
        if self.stream_like() && !st.was_connected && st.listening.is_none() {
            m |= POLLHUP;
        }
        if !st.queue.is_empty() || st.listening.as_ref().is_some_and(|(_, q)| !q.is_empty()) {
            m |= POLLIN | POLLRDNORM;
        }
        if st.listening.is_none() && st.sndbuf.saturating_sub(st.in_flight) > 0 {
            m |= POLLOUT | POLLWRNORM;
        }
        m
    }

    fn queue(&self, write: bool) -> &WaitQueue {
        if write { &self.writable } else { &self.readable }
    }

    fn release(&self) {
        let (peer, pending, queued) = {
            let mut st = self.st.lock();
            self.released.store(true, Ordering::Release);
            if let Some(name) = st.name.as_ref().filter(|n| n.len() > 2 && n[2] == 0) {
                let mut table = ABSTRACT.lock();
                if table.get(name).is_some_and(|w| w.as_ptr() == self.me.as_ptr()) {
                    table.remove(name);
                }
            }
            let pending = st.listening.take().map(|(_, q)| q).unwrap_or_default();
            (st.peer.take().and_then(|w| w.upgrade()), pending, core::mem::take(&mut st.queue))
        };
        // Closed with data unread: the peer's next receive says so (ECONNRESET).
        let unread = !queued.is_empty();
        // What nobody will read gives its senders their room back.
        for m in queued {
            if let Some(s) = m.sender.upgrade() {
                s.uncharge(m.data.len() - m.taken);
            }
        }
        // Connections never accepted end as if their server closed them.
        for server in pending {
            server.release();
        }
        if let Some(p) = peer.filter(|_| self.stream_like()) {
            let mut st = p.st.lock();
            st.peer_gone = true;
            if unread {
                st.error = Some(ECONNRESET);
            }
            drop(st);
            p.readable.wake_all();
            p.writable.wake_all();
        }
        self.readable.wake_all();
        self.writable.wake_all();
    }
}

/// Takes what a read gets from the queue (None: nothing yet): for a stream, bytes across
/// messages up to `max` (stopping before a message with files once some bytes are taken);
/// otherwise the whole next message, cut to `max`. Also returns what to give back to the
/// senders' buffers.
#[allow(clippy::type_complexity)]
fn take(st: &mut State, kind: u32, max: usize, peek: bool) -> Option<(Incoming, Vec<(Weak<UnixSocket>, usize)>)> {
    let mut got = Incoming::default();
    let mut freed = Vec::new();
    let passcred = st.passcred;
    if kind != SOCK_STREAM {
        let m = st.queue.front()?;
        let n = m.data.len().min(max);
        got.data = m.data[..n].to_vec();
        got.full_len = m.data.len();
        got.from = m.from.clone();
        got.cred = passcred.then_some(m.cred);
        if peek {
            return Some((got, freed));
        }
        let m = st.queue.pop_front().expect("looked at");
        got.files = m.files;
        freed.push((m.sender, m.data.len()));
        return Some((got, freed));
    }
    let mut i = 0;
    while got.data.len() < max {
        let Some(m) = st.queue.get_mut(i) else { break };
        if !m.files.is_empty() && !got.data.is_empty() {
            break;
        }
        let n = (m.data.len() - m.taken).min(max - got.data.len());
        got.data.extend_from_slice(&m.data[m.taken..m.taken + n]);
        if got.from.is_none() {
            got.from = m.from.clone();
            got.cred = passcred.then_some(m.cred);
        }
        if peek {
            i += 1;
            continue;
        }
        got.files.append(&mut m.files);
        m.taken += n;
        freed.push((m.sender.clone(), n));
        if m.taken == m.data.len() {
            st.queue.pop_front();
        }
        if !got.files.is_empty() {
            break;
        }
    }
    got.full_len = got.data.len();
    if got.data.is_empty() && max > 0 && got.files.is_empty() {
        return None;
    }
    Some((got, freed))
}
