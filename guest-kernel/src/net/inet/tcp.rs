//! TCP sockets (Linux's net/ipv4/tcp.c and af_inet.c, as user space sees them) over
//! smoltcp's TCP.
//!
//! - A connection is one smoltcp socket on the interface its route leaves by.
//! - **Listening.** smoltcp has no backlog: a listening smoltcp socket *becomes* the
//!   connection when a SYN arrives. So a listener keeps a pool of listening smoltcp
//!   sockets on its port (on every interface it listens on); after each poll
//!   ([`Maintain`]) the ones a SYN took move to its queue, established ones become
//!   acceptable, and fresh listeners replace them while the backlog (connections not yet
//!   accepted, Linux's backlog + 1) has room. A SYN that finds no listener is refused
//!   (RST), where Linux would drop it and let the client retry.
//! - **Ends.** smoltcp reports states, not causes: a connection that reaches CLOSED
//!   without both FINs is taken as reset (ECONNRESET), a connect that does as refused
//!   (ECONNREFUSED, or ETIMEDOUT once the connect timeout passed).
//! - **Closing.** The last close sends a FIN and leaves the smoltcp socket to finish (the
//!   stack removes it once closed); with unread data, or SO_LINGER {1, 0}, it resets
//!   (RST), as Linux does.

use alloc::collections::VecDeque;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;

use smoltcp::socket::tcp::{self, State};
use smoltcp::time::Duration;
use smoltcp::wire::IpListenEndpoint;

use super::stack::{self, At, Maintain, PortSteer, Stack, Wakers};
use super::{bind_addr, format_addr, parse_addr, ports, SockAddr, AF_INET6, IPPROTO_IP, IPPROTO_IPV6, IPPROTO_TCP, IPV6_V6ONLY, IP_TOS, IP_TTL};
use crate::errno::*;
use crate::net::*;
use crate::sync::SpinLock;
use crate::task::wait::WaitQueue;

/// Linux's defaults: net.ipv4.tcp_wmem[1] and tcp_rmem[1] (what SO_SNDBUF and SO_RCVBUF
/// report before they are set).
const DEFAULT_SNDBUF: usize = 16384;
const DEFAULT_RCVBUF: usize = 131072;
/// Linux's SOMAXCONN.
const SOMAXCONN: usize = 4096;
/// Listening smoltcp sockets a listener keeps ready per interface.
const POOL: usize = 4;
/// How long a connect waits for the peer (Linux: about 127 s of SYN retries).
const CONNECT_TIMEOUT: u64 = 127;
/// How long a half-open connection on a listener, or one its owner closed, may go
/// without hearing from its peer before it is dropped (Linux: tcp_synack_retries,
/// tcp_fin_timeout).
const ORPHAN_TIMEOUT: u64 = 60;
/// TCP_NODELAY, TCP_MAXSEG, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT.
const TCP_NODELAY: i32 = 1;
const TCP_MAXSEG: i32 = 2;
const TCP_KEEPIDLE: i32 = 4;
const TCP_KEEPINTVL: i32 = 5;
const TCP_KEEPCNT: i32 = 6;


#[derive(Clone, Copy)]
struct Opts {
    reuseaddr: bool,
    reuseport: bool,
    keepalive: bool,
    nodelay: bool,
    sndbuf: usize,
    rcvbuf: usize,
    linger: [i32; 2],
    keepidle: i32,
    keepintvl: i32,
    keepcnt: i32,
    ttl: i32,
    tos: i32,
    v6only: bool,
    /// SO_RCVTIMEO, SO_SNDTIMEO (ns; 0: for ever).
    timeouts: Timeouts,
}

impl Default for Opts {
    fn default() -> Self {
        Self {
            reuseaddr: false,
            reuseport: false,
            keepalive: false,
            nodelay: false,
            sndbuf: DEFAULT_SNDBUF,
            rcvbuf: DEFAULT_RCVBUF,
            linger: [0, 0],
            keepidle: 7200,
            keepintvl: 75,
            keepcnt: 9,
            ttl: 64,
            tos: 0,
            v6only: false,
            timeouts: Timeouts::default(),
        }
    }
}

struct Listen {
    backlog: usize,
    /// Listening smoltcp sockets, and those a SYN took (not yet established).
    pool: Vec<At>,
    embryos: Vec<At>,
    /// Established, waiting for accept.
    ready: VecDeque<At>,
    /// Its pool's group on each interface it listens on.
    groups: Vec<(usize, usize)>,
}

#[derive(Default)]
struct Tcp {
    /// Its local address once bound (the port is held in `ports`).
    local: Option<SockAddr>,
    conn: Option<At>,
    listen: Option<Listen>,
    opts: Opts,
    /// A pending error (SO_ERROR, and the next call's).
    error: Option<Errno>,
    shut_rd: bool,
    shut_wr: bool,
    /// connect() started, not yet settled.
    connecting: bool,
    connect_started: u64,
    /// It reached ESTABLISHED.
    connected: bool,
    /// It saw the peer's FIN.
    peer_fin: bool,
    /// The connection ended without both FINs.
    reset: bool,
    /// A connect started that no connect call has reported yet (Linux's SS_CONNECTING:
    /// the next connect answers 0 or the error, the one after EISCONN).
    unreported: bool,
    /// Refused or reset: both directions are shut (Linux's tcp_done).
    done: bool,
    /// Bytes taken out of a connection in TIME-WAIT, not yet read: smoltcp's TIME-WAIT
    /// timer empties the socket, where Linux keeps them for the owner to read.
    stash: VecDeque<u8>,
}

pub struct TcpSocket {
    family: u16,
    id: u64,
    me: Weak<TcpSocket>,
    wake: Wakers,
    st: SpinLock<Tcp>,
}

fn sock(stack: &mut Stack, at: At) -> &mut tcp::Socket<'static> {
    stack.tcp(at)
}

/// A buffer of `n` zeroed bytes, or ENOBUFS when the kernel heap is short (a socket's
/// buffers are what user space can make the kernel allocate most of).
pub fn try_buffer(n: usize) -> KResult<Vec<u8>> {
    if !crate::mm::heap::can_spare(n) {
        return Err(ENOBUFS);
    }
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| ENOBUFS)?;
    v.resize(n, 0);
    Ok(v)
}

/// A smoltcp socket with the buffers and options `o` asks for (ENOBUFS: no memory).
fn new_smol(o: &Opts, loopback: bool) -> KResult<tcp::Socket<'static>> {
    // Linux reports double the buffer it uses for data; about half of SO_RCVBUF is window.
    let rx = (o.rcvbuf / 2).clamp(2048, 1 << 20);
    let tx = o.sndbuf.clamp(4096, 1 << 20);
    let mut s = tcp::Socket::new(tcp::SocketBuffer::new(try_buffer(rx)?), tcp::SocketBuffer::new(try_buffer(tx)?));
    apply(&mut s, o);
    if loopback {
        // No delayed ACKs on lo: the ACK costs nothing and a waiting sender would wait.
        s.set_ack_delay(None);
    }
    Ok(s)
}

fn apply(s: &mut tcp::Socket, o: &Opts) {
    s.set_nagle_enabled(!o.nodelay);
    s.set_keep_alive(o.keepalive.then(|| Duration::from_secs(o.keepidle.max(1) as u64)));
    s.set_hop_limit(Some(o.ttl.clamp(1, 255) as u8));
}

impl TcpSocket {
    pub fn create(family: u16) -> Arc<dyn Socket> {
        Self::make(family, Tcp::default())
    }

    fn make(family: u16, st: Tcp) -> Arc<TcpSocket> {
        Arc::new_cyclic(|me| TcpSocket { family, id: ports::new_id(), me: me.clone(), wake: Wakers::new(), st: SpinLock::new(st) })
    }

    /// Binds to `at` (port 0: an ephemeral port) with the options as they are now.
    fn do_bind(&self, st: &mut Tcp, at: SockAddr) -> KResult<()> {
        let b = ports::Binding { id: self.id, addr: at.addr, v6: self.family == AF_INET6 && !st.opts.v6only, reuseaddr: st.opts.reuseaddr, reuseport: st.opts.reuseport, listening: false };
        let port = ports::bind(6, true, at, b)?;
        st.local = Some(SockAddr { addr: at.addr, port });
        Ok(())
    }

    /// Brings the state up to date with the smoltcp socket's, and registers for its
    /// wakeups. Returns its state.
    fn observe(&self, st: &mut Tcp, stack: &mut Stack) -> Option<State> {
        let at = st.conn?;
        let s = stack.tcp_quiet(at);
        s.register_recv_waker(&self.wake.rx_waker);
        s.register_send_waker(&self.wake.tx_waker);
        let state = s.state();
        match state {
            State::SynSent | State::SynReceived | State::Listen => {}
            State::Closed => {
                if st.connecting {
                    st.connecting = false;
                    st.done = true;
                    let late = crate::time::monotonic_ns().saturating_sub(st.connect_started) >= CONNECT_TIMEOUT * 1_000_000_000;
                    st.error = Some(if late { ETIMEDOUT } else { ECONNREFUSED });
                } else if st.connected && !st.reset && !(st.peer_fin && st.shut_wr) {
                    st.reset = true;
                    st.done = true;
                    st.error = Some(ECONNRESET);
                }
            }
            _ => {
                if st.connecting {
                    st.connecting = false;
                    st.connected = true;
                    // The connect timeout is the handshake's only.
                    sock(stack, at).set_timeout(None);
                }
                if matches!(state, State::CloseWait | State::LastAck | State::Closing | State::TimeWait) {
                    st.peer_fin = true;
                }
            }
        }
        Some(state)
    }

    /// When a blocking call that starts now gives up (SO_RCVTIMEO, SO_SNDTIMEO).
    fn deadline(&self, send: bool) -> Option<u64> {
        self.st.lock().opts.timeouts.deadline(send)
    }

    /// Waits on the socket's reading or writing queue until `ready` (looked at without
    /// polling) is true, or `deadline` (EAGAIN).
    fn wait(&self, write: bool, deadline: Option<u64>, mut ready: impl FnMut(&TcpSocket, &mut Tcp, &mut Stack) -> bool) -> KResult<()> {
        self.wake
            .queue(write)
            .wait_until(deadline, || {
                stack::look(|stack| {
                    let mut st = self.st.lock();
                    self.observe(&mut st, stack);
                    ready(self, &mut st, stack)
                })
            })
            .map_err(wait_error)
    }

    fn accepted(family: u16, at: At, opts: Opts) -> Arc<TcpSocket> {
        let st = Tcp { conn: Some(at), opts, connected: true, ..Tcp::default() };
        Self::make(family, st)
    }

    /// Listener upkeep after a poll: a pool socket a SYN took moves to a group of its
    /// own (on lo, its client's) and to the embryos; established embryos go to the
    /// accept queue; the pool is refilled while the backlog has room.
    fn tend(&self, st: &mut Tcp, stack: &mut Stack) -> bool {
        let Some(l) = st.listen.as_mut() else { return false };
        let port = st.local.map_or(0, |a| a.port);
        let mut woke = false;
        let v4only = self.family != AF_INET6;
        let mut i = 0;
        while i < l.pool.len() {
            let at = l.pool[i];
            let s = stack.peek_tcp(at);
            if s.state() == State::Listen {
                i += 1;
                continue;
            }
            l.pool.swap_remove(i);
            let (Some(local), Some(remote)) = (s.local_endpoint(), s.remote_endpoint()) else {
                stack.remove(at);
                continue;
            };
            let g = stack.flow_group(at.0, 6, remote, local).unwrap_or_else(|| stack.new_group(at.0, false));
            let at = stack.migrate(at, g);
            stack.steer_flow(at, 6, local, remote);
            l.embryos.push(at);
        }
        let mut i = 0;
        while i < l.embryos.len() {
            let at = l.embryos[i];
            let s = stack.peek_tcp(at);
            match s.state() {
                State::SynReceived => i += 1,
                State::Listen | State::Closed => {
                    // Reset before it was established.
                    stack.remove(at);
                    l.embryos.swap_remove(i);
                }
                _ => {
                    // An AF_INET listener on the wildcard also heard IPv6 (smoltcp's
                    // wildcard is both): refuse those.
                    if v4only && s.remote_endpoint().is_some_and(|e| matches!(e.addr, smoltcp::wire::IpAddress::Ipv6(_))) {
                        stack.tcp(at).abort();
                        stack.orphan(at);
                    } else {
                        stack.tcp(at).set_timeout(None);
                        l.ready.push_back(at);
                        woke = true;
                    }
                    l.embryos.swap_remove(i);
                }
            }
        }
        let local = st.local.unwrap_or(SockAddr::any(self.family));
        let endpoint = IpListenEndpoint { addr: (!local.is_any()).then_some(local.addr), port };
        // Linux's backlog bounds the connections waiting for accept (and half-open ones
        // here); each interface keeps up to POOL listening sockets while there is room.
        let room = (l.backlog + 1).saturating_sub(l.embryos.len() + l.ready.len());
        for &(ifi, g) in &l.groups {
            let have = l.pool.iter().filter(|a| a.0 == ifi).count();
            for _ in 0..POOL.min(room).saturating_sub(have) {
                let Ok(mut s) = new_smol(&st.opts, stack.ifs[ifi].is_loopback()) else { break };
                // A half-open connection whose peer goes quiet is dropped.
                s.set_timeout(Some(Duration::from_secs(ORPHAN_TIMEOUT)));
                if s.listen(endpoint).is_err() {
                    break;
                }
                l.pool.push(stack.add(ifi, Some(g), s));
            }
        }
        if woke {
            self.wake.note();
        }
        true
    }

    fn poll_bits(&self, st: &mut Tcp, stack: &mut Stack) -> u32 {
        use crate::fs::{POLLERR, POLLHUP, POLLIN, POLLOUT, POLLRDHUP, POLLRDNORM, POLLWRNORM};
        if let Some(l) = &st.listen {
            return if l.ready.is_empty() { 0 } else { POLLIN | POLLRDNORM };
        }
        let state = self.observe(st, stack);
        let mut m = 0;
        if st.error.is_some() {
            m |= POLLERR;
        }
        let closed = matches!(state, None | Some(State::Closed));
        let rcv_shut = st.shut_rd || st.peer_fin || st.done || (closed && st.connected);
        let snd_shut = st.shut_wr || st.done || (closed && st.connected);
        if (rcv_shut && snd_shut) || closed {
            m |= POLLHUP;
        }
        if rcv_shut {
            m |= POLLIN | POLLRDNORM | POLLRDHUP;
        }
        if matches!(state, Some(State::SynSent | State::SynReceived)) {
            return m;
        }
        let s = st.conn.map(|at| stack.tcp_quiet(at));
        if s.as_ref().is_some_and(|s| s.recv_queue() > 0) || !st.stash.is_empty() {
            m |= POLLIN | POLLRDNORM;
        }
        if snd_shut || s.is_none_or(|s| closed || s.send_capacity() - s.send_queue() > 0) {
            m |= POLLOUT | POLLWRNORM;
        }
        m
    }
}

impl Maintain for TcpSocket {
    fn maintain(&self, stack: &mut Stack) -> bool {
        let mut st = self.st.lock();
        if st.connecting {
            self.observe(&mut st, stack);
            return st.connecting;
        }
        if st.listen.is_none() {
            // Shut for writing: watched until TIME-WAIT, whose data is kept before its
            // timer drops it.
            let Some(at) = st.conn else { return false };
            return match self.observe(&mut st, stack) {
                Some(State::TimeWait) => {
                    let mut stash = core::mem::take(&mut st.stash);
                    let s = sock(stack, at);
                    while let Ok(n) = s.recv(|b| {
                        stash.extend(b.iter());
                        (b.len(), b.len())
                    }) && n > 0
                    {}
                    st.stash = stash;
                    false
                }
                Some(State::FinWait1 | State::FinWait2 | State::Closing) => true,
                _ => false,
            };
        }
        self.tend(&mut st, stack)
    }
}

impl Socket for TcpSocket {
    fn kind(&self) -> u32 {
        SOCK_STREAM
    }

    fn family(&self) -> u16 {
        self.family
    }

    fn bind(&self, raw: &[u8]) -> KResult<()> {
        parse_addr(self.family, raw)?;
        stack::with(|stack| {
            let mut st = self.st.lock();
            if st.local.is_some() || st.conn.is_some() {
                return Err(EINVAL);
            }
            let at = bind_addr(self.family, raw, stack)?;
            self.do_bind(&mut st, at)
        })
    }

    fn listen(&self, backlog: i32) -> KResult<()> {
        stack::with(|stack| {
            let mut st = self.st.lock();
            if st.conn.is_some() {
                return Err(EINVAL);
            }
            let backlog = (backlog.max(0) as usize).min(SOMAXCONN);
            if let Some(l) = st.listen.as_mut() {
                l.backlog = backlog;
                return Ok(());
            }
            if st.local.is_none() {
                self.do_bind(&mut st, SockAddr::any(self.family))?;
            }
            let local = st.local.ok_or(EINVAL)?;
            ports::listen(6, local.port, self.id)?;
            let addr = (!local.is_any()).then_some(local.addr);
            let v6only = st.opts.v6only;
            let groups = stack
                .ifs_for(local.addr)
                .into_iter()
                .map(|ifi| {
                    let g = stack.new_group(ifi, true);
                    stack.steer_port(ifi, 6, local.port, PortSteer { group: g, addr, v4: self.family != AF_INET6 || !v6only, v6: self.family == AF_INET6 });
                    (ifi, g)
                })
                .collect();
            st.listen = Some(Listen { backlog, pool: Vec::new(), embryos: Vec::new(), ready: VecDeque::new(), groups });
            self.tend(&mut st, stack);
            let me: Weak<dyn Maintain> = self.me.clone();
            stack.maintain(me);
            Ok(())
        })
    }

    fn accept(&self, nonblock: bool) -> KResult<Arc<dyn Socket>> {
        let deadline = self.deadline(false);
        loop {
            let got = stack::with(|stack| {
                let mut st = self.st.lock();
                let opts = st.opts;
                let l = st.listen.as_mut().ok_or(EINVAL)?;
                let at = l.ready.pop_front();
                if at.is_some() {
                    // Room in the backlog again: the pool refills.
                    self.tend(&mut st, stack);
                }
                KResult::Ok(at.map(|at| {
                    let s = TcpSocket::accepted(self.family, at, opts);
                    let mut cst = s.st.lock();
                    s.observe(&mut cst, stack);
                    cst.local = stack.tcp_quiet(at).local_endpoint().map(SockAddr::from);
                    drop(cst);
                    s
                }))
            })?;
            if let Some(s) = got {
                return Ok(s);
            }
            if nonblock {
                return Err(EAGAIN);
            }
            self.wait(false, deadline, |_, st, _| st.listen.as_ref().is_none_or(|l| !l.ready.is_empty()))?;
        }
    }

    fn connect(&self, raw: &[u8], nonblock: bool) -> KResult<()> {
        let to = parse_addr(self.family, raw)?.ok_or(EAFNOSUPPORT)?;
        let wait = stack::with(|stack| {
            let mut st = self.st.lock();
            let state = self.observe(&mut st, stack);
            if st.listen.is_some() {
                return Err(EISCONN);
            }
            if st.connecting {
                // A blocking connect waits for the one in progress.
                return if nonblock { Err(EALREADY) } else { Ok(true) };
            }
            if st.unreported {
                // The handshake ended since the connect that started it: its outcome.
                st.unreported = false;
                return match st.error.take() {
                    Some(e) => Err(e),
                    // It failed, and SO_ERROR already told.
                    None if !st.connected => Err(ECONNABORTED),
                    None => Ok(false),
                };
            }
            match (st.conn, state) {
                // A connect that failed: the socket may try again.
                (Some(at), Some(State::Closed)) if !st.connected => {
                    stack.remove(at);
                    st.conn = None;
                    st.done = false;
                    st.error = None;
                }
                (Some(_), _) => return Err(EISCONN),
                (None, _) => {}
            }
            if to.is_any() {
                return Err(ECONNREFUSED);
            }
            let ifi = stack.route(to.addr)?;
            if st.local.is_none() {
                self.do_bind(&mut st, SockAddr::any(self.family))?;
            }
            let local = st.local.ok_or(EINVAL)?;
            let mut s = new_smol(&st.opts, stack.ifs[ifi].is_loopback())?;
            s.set_timeout(Some(Duration::from_secs(CONNECT_TIMEOUT)));
            let endpoint = IpListenEndpoint { addr: (!local.is_any()).then_some(local.addr), port: local.port };
            s.connect(stack.ifs[ifi].iface.context(), to.endpoint(), endpoint).map_err(|e| match e {
                tcp::ConnectError::Unaddressable => EADDRNOTAVAIL,
                tcp::ConnectError::InvalidState => EISCONN,
            })?;
            let (me, peer) = (s.local_endpoint(), s.remote_endpoint());
            let at = stack.add(ifi, None, s);
            if let (Some(me), Some(peer)) = (me, peer) {
                stack.steer_flow(at, 6, me, peer);
            }
            st.conn = Some(at);
            st.connecting = true;
            st.unreported = true;
            st.connect_started = crate::time::monotonic_ns();
            self.observe(&mut st, stack);
            // Looked after until the handshake ends, so its timeout goes in time even if
            // nobody calls (see `maintain`).
            let me: Weak<dyn Maintain> = self.me.clone();
            stack.maintain(me);
            Ok(true)
        })?;
        if !wait {
            return Ok(());
        }
        if nonblock {
            return Err(EINPROGRESS);
        }
        // A connect that times out (SO_SNDTIMEO) goes on: EINPROGRESS, as on Linux.
        self.wait(true, self.deadline(true), |_, st, _| !st.connecting).map_err(|e| if e == EAGAIN { EINPROGRESS } else { e })?;
        let mut st = self.st.lock();
        st.unreported = false;
        match st.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn send(&self, msg: Outgoing, nonblock: bool) -> KResult<usize> {
        let deadline = self.deadline(true);
        loop {
            let r = stack::with(|stack| {
                let mut st = self.st.lock();
                let state = self.observe(&mut st, stack);
                if let Some(e) = st.error.take() {
                    return Err(e);
                }
                if st.shut_wr || st.reset || st.conn.is_none() || matches!(state, Some(State::Closed)) {
                    return Err(EPIPE);
                }
                if st.connecting {
                    return Ok(None);
                }
                let s = sock(stack, st.conn.ok_or(EPIPE)?);
                if !s.may_send() {
                    return Err(EPIPE);
                }
                let n = s.send_slice(&msg.data).map_err(|_| EPIPE)?;
                Ok((n > 0 || msg.data.is_empty()).then_some(n))
            })?;
            if let Some(n) = r {
                return Ok(n);
            }
            if nonblock {
                return Err(EAGAIN);
            }
            self.wait(true, deadline, |_, st, stack| {
                st.error.is_some()
                    || st.reset
                    || st.shut_wr
                    || (!st.connecting && st.conn.is_none_or(|at| stack.tcp_quiet(at).can_send() || !stack.tcp_quiet(at).may_send()))
            })?;
        }
    }

    fn recv(&self, max: usize, flags: u32, nonblock: bool) -> KResult<Incoming> {
        let deadline = self.deadline(false);
        loop {
            let r = stack::with(|stack| {
                let mut st = self.st.lock();
                let state = self.observe(&mut st, stack);
                if st.listen.is_some() {
                    return Err(ENOTCONN);
                }
                let Some(at) = st.conn else { return Err(ENOTCONN) };
                if !st.stash.is_empty() && max > 0 {
                    // What TIME-WAIT left (see `maintain`).
                    let n = max.min(st.stash.len());
                    let data: Vec<u8> = if flags & MSG_PEEK != 0 { st.stash.iter().take(n).copied().collect() } else { st.stash.drain(..n).collect() };
                    let data = if flags & MSG_TRUNC != 0 { Vec::new() } else { data };
                    return Ok(Some(Incoming { full_len: n, data, ..Incoming::default() }));
                }
                let s = sock(stack, at);
                if s.recv_queue() > 0 && max > 0 {
                    let mut data = alloc::vec![0u8; max.min(s.recv_queue())];
                    let n = if flags & MSG_PEEK != 0 { s.peek_slice(&mut data) } else { s.recv_slice(&mut data) }.unwrap_or(0);
                    data.truncate(n);
                    if flags & MSG_TRUNC != 0 {
                        // Linux's MSG_TRUNC on TCP: the bytes are dropped, not copied.
                        data.clear();
                    }
                    return Ok(Some(Incoming { full_len: n, data, ..Incoming::default() }));
                }
                if let Some(e) = st.error.take() {
                    return Err(e);
                }
                if max == 0 || st.shut_rd || st.peer_fin || st.reset || matches!(state, Some(State::Closed)) {
                    return Ok(Some(Incoming::default()));
                }
                if st.connecting && nonblock {
                    return Err(EAGAIN);
                }
                Ok(None)
            })?;
            if let Some(got) = r {
                return Ok(got);
            }
            if nonblock {
                return Err(EAGAIN);
            }
            self.wait(false, deadline, |_, st, stack| {
                st.error.is_some() || st.shut_rd || st.peer_fin || st.reset || st.conn.is_none_or(|at| stack.tcp_quiet(at).recv_queue() > 0 || stack.tcp_quiet(at).state() == State::Closed)
            })?;
        }
    }

    fn shutdown(&self, how: u32) -> KResult<()> {
        if how > SHUT_RDWR {
            return Err(EINVAL);
        }
        stack::with(|stack| {
            let mut st = self.st.lock();
            let state = self.observe(&mut st, stack);
            // As Linux's inet_shutdown: a listener shut for reading stops (its queue is
            // reset); a connect in progress is abandoned; a closed socket is ENOTCONN.
            if st.listen.is_some() {
                if how != SHUT_WR {
                    self.stop_listening(&mut st, stack);
                }
                return Ok(());
            }
            if let (Some(at), Some(State::SynSent)) = (st.conn, state) {
                sock(stack, at).abort();
                stack.orphan(at);
                st.conn = None;
                (st.connecting, st.unreported) = (false, false);
                self.wake.note();
                return Ok(());
            }
            if st.conn.is_none() || matches!(state, Some(State::Closed)) {
                return Err(ENOTCONN);
            }
            if how != SHUT_WR {
                st.shut_rd = true;
            }
            if how != SHUT_RD && !st.shut_wr {
                st.shut_wr = true;
                if let Some(at) = st.conn {
                    sock(stack, at).close();
                    let me: Weak<dyn Maintain> = self.me.clone();
                    stack.maintain(me);
                }
            }
            self.wake.note();
            Ok(())
        })
    }

    fn name(&self) -> Vec<u8> {
        stack::look(|stack| {
            let st = self.st.lock();
            let mut a = st.local.unwrap_or(SockAddr::any(self.family));
            // A connection's own address is the one its route chose.
            if let Some(e) = st.conn.and_then(|at| stack.tcp_quiet(at).local_endpoint()) {
                a = e.into();
            }
            format_addr(self.family, a)
        })
    }

    fn peer_name(&self) -> KResult<Vec<u8>> {
        stack::look(|stack| {
            let st = self.st.lock();
            let at = st.conn.filter(|_| st.connected || !st.connecting).ok_or(ENOTCONN)?;
            let peer = stack.tcp_quiet(at).remote_endpoint().ok_or(ENOTCONN)?;
            Ok(format_addr(self.family, peer.into()))
        })
    }

    fn option(&self, name: i32) -> Option<i32> {
        let st = self.st.lock();
        Some(match name {
            SO_ACCEPTCONN => i32::from(st.listen.is_some()),
            SO_SNDBUF => st.opts.sndbuf as i32,
            SO_RCVBUF => st.opts.rcvbuf as i32,
            SO_REUSEADDR => i32::from(st.opts.reuseaddr),
            SO_REUSEPORT => i32::from(st.opts.reuseport),
            SO_KEEPALIVE => i32::from(st.opts.keepalive),
            SO_PROTOCOL => IPPROTO_TCP,
            _ => return None,
        })
    }

    fn set_option(&self, name: i32, value: i32) -> KResult<()> {
        stack::with(|stack| {
            let mut st = self.st.lock();
            // Linux doubles the value asked, within its limits (net.core.[rw]mem_max).
            let size = |v: i32| (v.max(0) as usize).clamp(2304, 212_992) * 2;
            match name {
                SO_SNDBUF => st.opts.sndbuf = size(value),
                SO_RCVBUF => st.opts.rcvbuf = size(value),
                SO_REUSEADDR => st.opts.reuseaddr = value != 0,
                SO_REUSEPORT => st.opts.reuseport = value != 0,
                SO_KEEPALIVE => st.opts.keepalive = value != 0,
                _ => return Err(ENOPROTOOPT),
            }
            let o = st.opts;
            if let Some(at) = st.conn {
                apply(sock(stack, at), &o);
            }
            Ok(())
        })
    }

    fn proto_option(&self, level: i32, name: i32) -> KResult<i32> {
        let st = self.st.lock();
        let o = &st.opts;
        match (level, name) {
            (IPPROTO_TCP, TCP_NODELAY) => Ok(i32::from(o.nodelay)),
            (IPPROTO_TCP, TCP_MAXSEG) => Ok(536),
            (IPPROTO_TCP, TCP_KEEPIDLE) => Ok(o.keepidle),
            (IPPROTO_TCP, TCP_KEEPINTVL) => Ok(o.keepintvl),
            (IPPROTO_TCP, TCP_KEEPCNT) => Ok(o.keepcnt),
            (IPPROTO_IP, IP_TTL) => Ok(o.ttl),
            (IPPROTO_IP, IP_TOS) => Ok(o.tos),
            (IPPROTO_IPV6, IPV6_V6ONLY) if self.family == AF_INET6 => Ok(i32::from(o.v6only)),
            (IPPROTO_TCP | IPPROTO_IP | IPPROTO_IPV6, _) => Err(ENOPROTOOPT),
            // Linux: an unknown level is EOPNOTSUPP from IPv4's getsockopt, ENOPROTOOPT
            // from IPv6's.
            _ if self.family == AF_INET6 => Err(ENOPROTOOPT),
            _ => Err(EOPNOTSUPP),
        }
    }

    fn set_proto_option(&self, level: i32, name: i32, value: i32) -> KResult<()> {
        stack::with(|stack| {
            let mut st = self.st.lock();
            let bound = st.local.is_some();
            let o = &mut st.opts;
            match (level, name) {
                (IPPROTO_TCP, TCP_NODELAY) => o.nodelay = value != 0,
                (IPPROTO_TCP, TCP_KEEPIDLE) if (1..=32767).contains(&value) => o.keepidle = value,
                (IPPROTO_TCP, TCP_KEEPINTVL) if (1..=32767).contains(&value) => o.keepintvl = value,
                (IPPROTO_TCP, TCP_KEEPCNT) if (1..=127).contains(&value) => o.keepcnt = value,
                (IPPROTO_TCP, TCP_KEEPIDLE | TCP_KEEPINTVL | TCP_KEEPCNT) => return Err(EINVAL),
                (IPPROTO_IP, IP_TTL) if value == -1 => o.ttl = 64,
                (IPPROTO_IP, IP_TTL) if (1..=255).contains(&value) => o.ttl = value,
                (IPPROTO_IP, IP_TTL) => return Err(EINVAL),
                (IPPROTO_IP, IP_TOS) => o.tos = value & 0xff,
                (IPPROTO_IPV6, IPV6_V6ONLY) if self.family == AF_INET6 => {
                    if bound {
                        return Err(EINVAL);
                    }
                    o.v6only = value != 0;
                }
                _ => return Err(ENOPROTOOPT),
            }
            let o = st.opts;
            if let Some(at) = st.conn {
                apply(sock(stack, at), &o);
            }
            Ok(())
        })
    }

    fn timeout(&self, send: bool) -> KResult<u64> {
        Ok(self.st.lock().opts.timeouts.get(send))
    }

    fn set_timeout(&self, send: bool, ns: u64) -> KResult<()> {
        self.st.lock().opts.timeouts.set(send, ns);
        Ok(())
    }

    fn take_error(&self) -> i32 {
        stack::look(|stack| {
            let mut st = self.st.lock();
            self.observe(&mut st, stack);
            st.error.take().map_or(0, |e| e.0)
        })
    }

    fn peer_cred(&self) -> [u32; 3] {
        [0, u32::MAX, u32::MAX]
    }

    fn unread(&self) -> KResult<usize> {
        stack::look(|stack| {
            let st = self.st.lock();
            if st.listen.is_some() {
                return Err(EINVAL);
            }
            Ok(st.stash.len() + st.conn.map_or(0, |at| stack.tcp_quiet(at).recv_queue()))
        })
    }

    fn unsent(&self) -> KResult<usize> {
        stack::look(|stack| {
            let st = self.st.lock();
            if st.listen.is_some() {
                return Err(EINVAL);
            }
            Ok(st.conn.map_or(0, |at| stack.tcp_quiet(at).send_queue()))
        })
    }

    fn send_room(&self) -> Option<usize> {
        Some(stack::look(|stack| {
            let st = self.st.lock();
            st.conn.map_or(0, |at| {
                let s = stack.peek_tcp(at);
                s.send_capacity() - s.send_queue()
            })
        }))
    }

    fn inq_hint(&self) -> Option<usize> {
        // Linux's tcp_inq_hint: the bytes queued, or 1 once the peer's FIN is in (so a
        // reader reads on to see the end).
        Some(stack::look(|stack| {
            let mut st = self.st.lock();
            self.observe(&mut st, stack);
            let n = st.stash.len() + st.conn.map_or(0, |at| stack.tcp_quiet(at).recv_queue());
            if n == 0 && st.peer_fin { 1 } else { n }
        }))
    }

    fn linger(&self) -> [i32; 2] {
        self.st.lock().opts.linger
    }

    fn set_linger(&self, linger: [i32; 2]) {
        self.st.lock().opts.linger = [i32::from(linger[0] != 0), linger[1]];
    }

    fn poll_mask(&self) -> u32 {
        stack::look(|stack| {
            let mut st = self.st.lock();
            self.poll_bits(&mut st, stack)
        })
    }

    fn queue(&self, write: bool) -> &WaitQueue {
        self.wake.queue(write)
    }

    fn release(&self) {
        stack::with(|stack| {
            let mut st = self.st.lock();
            self.observe(&mut st, stack);
            self.stop_listening(&mut st, stack);
            if let Some(at) = st.conn.take() {
                let s = sock(stack, at);
                // Unread data, or SO_LINGER {1, 0}: reset, as Linux's tcp_close does.
                if s.recv_queue() > 0 || st.opts.linger == [1, 0] {
                    s.abort();
                } else {
                    s.close();
                    // FIN-WAIT-2 or a FIN nobody acknowledges does not last for ever.
                    s.set_timeout(Some(Duration::from_secs(ORPHAN_TIMEOUT)));
                }
                stack.orphan(at);
            }
            if let Some(local) = st.local.take() {
                ports::release(6, local.port, self.id);
            }
        });
    }
}

impl TcpSocket {
    /// Ends listening: the pool goes, and queued connections are reset.
    fn stop_listening(&self, st: &mut Tcp, stack: &mut Stack) {
        let Some(l) = st.listen.take() else { return };
        for at in l.pool.into_iter().chain(l.embryos).chain(l.ready) {
            sock(stack, at).abort();
            stack.orphan(at);
        }
        for (ifi, g) in l.groups {
            stack.unpin_group(ifi, g);
        }
        self.wake.note();
    }
}
