//! Sockets: the part every address family shares (Linux's net/socket.c).
//!
//! A socket is a file whose node is a [`SocketFile`] around a [`Socket`], the family's
//! object. The families work on kernel buffers: the system calls (`syscall/net.rs`) and
//! io_uring's network ops (`io_uring/net.rs`) copy to and from user memory around them, so
//! no family touches user memory under its locks. Families: `unix` (AF_UNIX), `inet`
//! (AF_INET and AF_INET6: TCP and UDP over smoltcp); `netlink` (NETLINK_ROUTE's dumps).

pub mod inet;
pub mod netlink;
pub mod unix;

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::any::Any;

use crate::errno::*;
use crate::fs::{alloc_ino, FileType, IoBuf, Node, OpenFile, Stat};
use crate::task::wait::WaitQueue;

pub const AF_UNSPEC: u16 = 0;
pub const AF_UNIX: u16 = 1;

pub const SOCK_STREAM: u32 = 1;
pub const SOCK_DGRAM: u32 = 2;
pub const SOCK_SEQPACKET: u32 = 5;
pub const SOCK_TYPE_MASK: u32 = 0xf;
pub const SOCK_NONBLOCK: u32 = 0o4000;
pub const SOCK_CLOEXEC: u32 = 0o2000000;

pub const MSG_OOB: u32 = 1;
pub const MSG_PEEK: u32 = 2;
pub const MSG_CTRUNC: u32 = 8;
pub const MSG_TRUNC: u32 = 0x20;
pub const MSG_DONTWAIT: u32 = 0x40;
pub const MSG_WAITALL: u32 = 0x100;
pub const MSG_NOSIGNAL: u32 = 0x4000;
pub const MSG_CMSG_CLOEXEC: u32 = 0x4000_0000;

pub const SOL_SOCKET: i32 = 1;
pub const SO_REUSEADDR: i32 = 2;
pub const SO_TYPE: i32 = 3;
pub const SO_ERROR: i32 = 4;
pub const SO_SNDBUF: i32 = 7;
pub const SO_RCVBUF: i32 = 8;
pub const SO_KEEPALIVE: i32 = 9;
pub const SO_REUSEPORT: i32 = 15;
pub const SO_LINGER: i32 = 13;
pub const SO_PASSCRED: i32 = 16;
pub const SO_PEERCRED: i32 = 17;
pub const SO_RCVTIMEO: i32 = 20;
pub const SO_SNDTIMEO: i32 = 21;
pub const SO_RCVTIMEO_NEW: i32 = 66;
pub const SO_SNDTIMEO_NEW: i32 = 67;
pub const SO_ACCEPTCONN: i32 = 30;
pub const SO_PROTOCOL: i32 = 38;
pub const SO_DOMAIN: i32 = 39;

pub const SCM_RIGHTS: i32 = 1;
pub const SCM_CREDENTIALS: i32 = 2;

pub const SHUT_RD: u32 = 0;
pub const SHUT_WR: u32 = 1;
pub const SHUT_RDWR: u32 = 2;

/// SO_RCVTIMEO and SO_SNDTIMEO as set (ns; 0: for ever).
#[derive(Clone, Copy, Default)]
pub struct Timeouts {
    rcv: u64,
    snd: u64,
}

impl Timeouts {
    pub fn get(&self, send: bool) -> u64 {
        if send { self.snd } else { self.rcv }
    }

    pub fn set(&mut self, send: bool, ns: u64) {
        *(if send { &mut self.snd } else { &mut self.rcv }) = ns;
    }

    /// When a blocking call that starts now gives up.
    pub fn deadline(&self, send: bool) -> Option<u64> {
        let t = self.get(send);
        (t != 0).then(|| crate::time::monotonic_ns().saturating_add(t))
    }
}

/// A blocking socket call's wait that ended early: a signal (EINTR), or SO_RCVTIMEO /
/// SO_SNDTIMEO running out (EAGAIN).
pub fn wait_error(e: crate::task::wait::WaitError) -> Errno {
    match e {
        crate::task::wait::WaitError::Interrupted => EINTR,
        crate::task::wait::WaitError::TimedOut => EAGAIN,
    }
}

/// A message to send: its bytes, where to (an unconnected datagram socket), and the files
/// it carries (SCM_RIGHTS).
pub struct Outgoing<'a> {
    /// The bytes, handed over (a stream takes a prefix of them).
    pub data: Vec<u8>,
    pub to: Option<&'a [u8]>,
    pub files: Vec<Arc<OpenFile>>,
    /// SCM_CREDENTIALS the sender gave (checked); None: its own.
    pub cred: Option<[u32; 3]>,
}

/// The (pid, uid, gid) a message carries by default: the sender's process and real ids
/// (Linux's scm_set_cred).
pub fn own_cred() -> [u32; 3] {
    let cred = crate::task::cred::current();
    [crate::task::current_process().pid, cred.uid, cred.gid]
}

/// What a receive took: the bytes (at most what was asked), the message's full length
/// (a datagram longer than the buffer is cut: MSG_TRUNC), the sender's address and the
/// files that came with it.
#[derive(Default)]
pub struct Incoming {
    pub data: Vec<u8>,
    pub full_len: usize,
    pub from: Option<Vec<u8>>,
    pub files: Vec<Arc<OpenFile>>,
    /// The sender's credentials, when the receiver asked for them (SO_PASSCRED).
    pub cred: Option<[u32; 3]>,
    /// Other control messages that came with it: (level, type, data).
    pub cmsgs: Vec<(i32, i32, Vec<u8>)>,
}

/// An address family's socket. Blocking calls wait unless `nonblock` (then EAGAIN).
pub trait Socket: Send + Sync {
    /// SOCK_STREAM, SOCK_DGRAM or SOCK_SEQPACKET.
    fn kind(&self) -> u32;
    fn family(&self) -> u16;
    fn bind(&self, addr: &[u8]) -> KResult<()>;
    fn listen(&self, backlog: i32) -> KResult<()>;
    fn accept(&self, nonblock: bool) -> KResult<Arc<dyn Socket>>;
    fn connect(&self, addr: &[u8], nonblock: bool) -> KResult<()>;
    /// Queues at most `msg.data.len()` bytes (a stream takes what fits; a datagram is all
    /// or nothing); how many it took.
    fn send(&self, msg: Outgoing, nonblock: bool) -> KResult<usize>;
    /// Takes (or with MSG_PEEK copies) at most `max` bytes of the next message or of the
    /// stream.
    fn recv(&self, max: usize, flags: u32, nonblock: bool) -> KResult<Incoming>;
    fn shutdown(&self, how: u32) -> KResult<()>;
    /// Its own address (`getsockname`) and its peer's (`getpeername`), as sockaddrs.
    fn name(&self) -> Vec<u8>;
    fn peer_name(&self) -> KResult<Vec<u8>>;
    /// SOL_SOCKET options the family keeps itself (the rest are common: `getsockopt`).
    fn option(&self, name: i32) -> Option<i32>;
    fn set_option(&self, name: i32, value: i32) -> KResult<()>;
    /// Options at other levels (IPPROTO_TCP, IPPROTO_IP, ...): Linux's EOPNOTSUPP for a
    /// family without them.
    fn proto_option(&self, _level: i32, _name: i32) -> KResult<i32> {
        Err(EOPNOTSUPP)
    }
    fn set_proto_option(&self, _level: i32, _name: i32, _value: i32) -> KResult<()> {
        Err(EOPNOTSUPP)
    }
    /// SO_RCVTIMEO (`send` false) and SO_SNDTIMEO: how long a blocking call waits, in ns
    /// (0: for ever). ENOPROTOOPT for a family whose waits do not honour them.
    fn timeout(&self, _send: bool) -> KResult<u64> {
        Err(ENOPROTOOPT)
    }
    fn set_timeout(&self, _send: bool, _ns: u64) -> KResult<()> {
        Err(ENOPROTOOPT)
    }
    /// SO_ERROR: the pending error (0: none), cleared.
    fn take_error(&self) -> i32;
    /// SO_PEERCRED: the peer's (pid, uid, gid) when it connected.
    fn peer_cred(&self) -> [u32; 3];
    /// Bytes a read could take now (SIOCINQ: a stream's queued bytes, a datagram
    /// socket's next message), and bytes sent but not yet read by the peer (SIOCOUTQ).
    /// A listening stream socket has neither (EINVAL).
    fn unread(&self) -> KResult<usize>;
    fn unsent(&self) -> KResult<usize>;
    /// How many bytes a stream send would take now (0: it would wait), so a sender copies
    /// in no more than that; None where the family does not say.
    fn send_room(&self) -> Option<usize> {
        None
    }
    /// What a receive reports in msg_inq (io_uring's IORING_CQE_F_SOCK_NONEMPTY): None
    /// where the family reports none.
    fn inq_hint(&self) -> Option<usize> {
        None
    }
    /// SO_LINGER: struct linger (on, seconds), as set.
    fn linger(&self) -> [i32; 2];
    fn set_linger(&self, linger: [i32; 2]);
    fn poll_mask(&self) -> u32;
    fn queue(&self, write: bool) -> &WaitQueue;
    /// The last descriptor closed: the peer sees the end.
    fn release(&self);
}

/// A socket as a file.
pub struct SocketFile {
    pub sock: Arc<dyn Socket>,
    ino: u64,
}

impl SocketFile {
    pub fn open(sock: Arc<dyn Socket>, nonblock: bool) -> Arc<OpenFile> {
        let node = Arc::new(SocketFile { sock, ino: alloc_ino() });
        let flags = crate::fs::file::O_RDWR | if nonblock { crate::fs::file::O_NONBLOCK } else { 0 };
        let path = alloc::format!("socket:[{}]", node.ino);
        OpenFile::new(node, flags, path)
    }
}

/// The socket behind `file` (ENOTSOCK: another kind of file).
pub fn socket_of(file: &OpenFile) -> KResult<&Arc<dyn Socket>> {
    file.node.as_any().downcast_ref::<SocketFile>().map(|s| &s.sock).ok_or(ENOTSOCK)
}

impl Node for SocketFile {
    fn stat(&self) -> Stat {
        Stat { ino: self.ino, mode: FileType::Socket.mode_bits() | 0o777, nlink: 1, ..Stat::default() }
    }

    fn file_type(&self) -> FileType {
        FileType::Socket
    }

    fn seekable(&self) -> bool {
        false
    }

    fn read(&self, _offset: u64, buf: &mut IoBuf, nonblock: bool) -> KResult<usize> {
        let got = self.sock.recv(buf.len(), 0, nonblock)?;
        buf.put(0, &got.data)?;
        Ok(got.data.len())
    }

    fn write(&self, _offset: u64, buf: &IoBuf, nonblock: bool) -> KResult<usize> {
        // SIGPIPE goes to a write(2) caller, not to an io_uring write (Linux's too).
        let nosignal = !matches!(buf, IoBuf::User { .. });
        let head = Outgoing { data: Vec::new(), to: None, files: Vec::new(), cred: None };
        send_from(&*self.sock, buf.len(), head, nonblock, nosignal, &mut |at, dst| buf.get(at, dst))
    }

    fn poll_queue(&self, write: bool) -> Option<&WaitQueue> {
        Some(self.sock.queue(write))
    }

    fn poll_mask(&self) -> u32 {
        self.sock.poll_mask()
    }

    fn ioctl(&self, _file: &OpenFile, cmd: u64, arg: u64) -> KResult<u64> {
        const SIOCINQ: u64 = 0x541b; // FIONREAD
        const SIOCOUTQ: u64 = 0x5411; // TIOCOUTQ
        if inet::ifconf::handles(cmd) {
            return inet::ifconf::ioctl(cmd, arg);
        }
        let n = match cmd {
            SIOCINQ => self.sock.unread()?,
            SIOCOUTQ => self.sock.unsent()?,
            _ => return Err(ENOTTY),
        };
        crate::task::write_user(arg, &(n as i32)).map(|()| 0)
    }

    fn release(&self) {
        self.sock.release();
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Sends `total` bytes, which `fill(offset, dst)` copies in, as send(2) and write(2) do:
/// a datagram whole (EMSGSIZE, before any copy, if the send buffer can never hold it), a
/// stream in chunks until all are queued (a nonblocking one: what fits; an error or a
/// signal after some bytes ends it with those). `head` gives the address, files and
/// credentials (its data is ignored). A broken pipe is EPIPE, and SIGPIPE for the caller
/// unless `nosignal`.
pub fn send_from(s: &dyn Socket, total: usize, head: Outgoing, nonblock: bool, nosignal: bool, fill: &mut dyn FnMut(usize, &mut [u8]) -> KResult<()>) -> KResult<usize> {
    let stream = s.kind() == SOCK_STREAM;
    if !stream && total > s.option(SO_SNDBUF).unwrap_or(0) as usize {
        return Err(EMSGSIZE);
    }
    let chunk = if stream { 64 * 1024 } else { total };
    let Outgoing { to, mut files, cred, .. } = head;
    let mut done = 0;
    loop {
        // A stream takes what it has room for (at least a byte, or it waits for room).
        let room = if stream { s.send_room().map_or(chunk, |r| r.max(1)) } else { chunk };
        let mut data = alloc::vec![0u8; (total - done).min(chunk).min(room)];
        if let Err(e) = fill(done, &mut data) {
            return if done > 0 { Ok(done) } else { Err(e) };
        }
        match s.send(Outgoing { data, to, files: core::mem::take(&mut files), cred }, nonblock) {
            Ok(n) => done += n,
            Err(e) if done > 0 && e != EPIPE => return Ok(done),
            Err(e) => {
                if e == EPIPE && !nosignal {
                    crate::task::signal::send(&crate::task::current_process(), crate::task::signal::SIGPIPE);
                }
                return if done > 0 { Ok(done) } else { Err(e) };
            }
        }
        if done >= total || !stream {
            return Ok(done);
        }
    }
}

/// A new socket of `family`, `kind` (the type without its flags) and `protocol`, with
/// Linux's checks in its order: the family's range, the type's, the family, then the
/// family's own (AF_UNIX takes protocol 0 or PF_UNIX, and SOCK_RAW as SOCK_DGRAM).
pub fn create(family: i32, kind: u32, protocol: i32) -> KResult<Arc<dyn Socket>> {
    const NPROTO: i32 = 46;
    const SOCK_MAX: u32 = 11;
    const SOCK_RAW: u32 = 3;
    if !(0..NPROTO).contains(&family) {
        return Err(EAFNOSUPPORT);
    }
    if kind >= SOCK_MAX {
        return Err(EINVAL);
    }
    match family as u16 {
        AF_UNIX => {
            if protocol != 0 && protocol != i32::from(AF_UNIX) {
                return Err(EPROTONOSUPPORT);
            }
            match kind {
                SOCK_STREAM | SOCK_DGRAM | SOCK_SEQPACKET => Ok(unix::UnixSocket::create(kind)),
                SOCK_RAW => Ok(unix::UnixSocket::create(SOCK_DGRAM)),
                _ => Err(ESOCKTNOSUPPORT),
            }
        }
        inet::AF_INET | inet::AF_INET6 => {
            let family = family as u16;
            const IPPROTO_TCP: i32 = inet::IPPROTO_TCP;
            const IPPROTO_UDP: i32 = inet::IPPROTO_UDP;
            match (kind, protocol) {
                (SOCK_STREAM, 0 | IPPROTO_TCP) => Ok(inet::tcp::TcpSocket::create(family)),
                (SOCK_DGRAM, 0 | IPPROTO_UDP) => Ok(inet::udp::UdpSocket::create(family)),
                (SOCK_STREAM | SOCK_DGRAM, _) => Err(EPROTONOSUPPORT),
                // No raw IP sockets here, and no SCTP for SEQPACKET.
                _ => Err(ESOCKTNOSUPPORT),
            }
        }
        netlink::AF_NETLINK => netlink::create(kind, protocol),
        _ => Err(EAFNOSUPPORT),
    }
}

/// getsockopt at SOL_SOCKET: the family's options first, then those every socket has.
pub fn get_option(sock: &dyn Socket, name: i32) -> KResult<i32> {
    if let Some(v) = sock.option(name) {
        return Ok(v);
    }
    match name {
        SO_ERROR => Ok(sock.take_error()),
        SO_TYPE => Ok(sock.kind() as i32),
        SO_DOMAIN => Ok(i32::from(sock.family())),
        SO_PROTOCOL => Ok(0),
        _ => Err(ENOPROTOOPT),
    }
}
