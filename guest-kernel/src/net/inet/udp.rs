//! UDP sockets (Linux's net/ipv4/udp.c as user space sees it) over smoltcp's UDP.
//!
//! A bound socket has a smoltcp socket on each interface it receives on (all of them for
//! the wildcard address); a send leaves by the interface its route gives. connect() sets
//! the default destination and filters what is received, as on Linux. Datagrams larger
//! than an interface's MTU are refused (EMSGSIZE) where Linux would fragment them.

use alloc::sync::Arc;
use alloc::vec::Vec;

use smoltcp::socket::udp;
use smoltcp::wire::{IpAddress, IpListenEndpoint};

use super::stack::{self, At, PortSteer, Stack, Wakers};
use super::{bind_addr, format_addr, parse_addr, ports, SockAddr, AF_INET6, IPPROTO_IP, IPPROTO_IPV6, IPPROTO_UDP, IPV6_PKTINFO, IPV6_RECVPKTINFO, IPV6_V6ONLY, IP_PKTINFO, IP_TOS, IP_TTL};
use crate::errno::*;
use crate::net::*;
use crate::sync::SpinLock;
use crate::task::wait::WaitQueue;

/// Linux's net.core.[rw]mem_default.
const DEFAULT_BUF: usize = 212_992;
/// Datagrams each smoltcp socket queues each way.
const QUEUED: usize = 64;
/// The largest UDP payload over IPv4 and over IPv6 (a 65535-byte packet).
const MAX_V4: usize = 65507;
const MAX_V6: usize = 65527;
const SO_BROADCAST: i32 = 6;


struct Udp {
    local: Option<SockAddr>,
    socks: Vec<At>,
    peer: Option<SockAddr>,
    reuseaddr: bool,
    reuseport: bool,
    broadcast: bool,
    sndbuf: usize,
    rcvbuf: usize,
    ttl: i32,
    tos: i32,
    v6only: bool,
    /// IP_PKTINFO, IPV6_RECVPKTINFO: datagrams come with where they were sent.
    pktinfo: bool,
    pktinfo6: bool,
    shut_rd: bool,
    shut_wr: bool,
    /// SO_RCVTIMEO, SO_SNDTIMEO (ns; 0: for ever).
    timeouts: Timeouts,
}

pub struct UdpSocket {
    family: u16,
    id: u64,
    wake: Wakers,
    st: SpinLock<Udp>,
}

fn sock(stack: &mut Stack, at: At) -> &mut udp::Socket<'static> {
    stack.udp(at)
}

impl UdpSocket {
    pub fn create(family: u16) -> Arc<dyn Socket> {
        let st = Udp {
            local: None,
            socks: Vec::new(),
            peer: None,
            reuseaddr: false,
            reuseport: false,
            broadcast: false,
            sndbuf: DEFAULT_BUF,
            rcvbuf: DEFAULT_BUF,
            ttl: 64,
            tos: 0,
            v6only: false,
            pktinfo: false,
            pktinfo6: false,
            shut_rd: false,
            shut_wr: false,
            timeouts: Timeouts::default(),
        };
        Arc::new(UdpSocket { family, id: ports::new_id(), wake: Wakers::new(), st: SpinLock::new(st) })
    }

    fn max_payload(&self) -> usize {
        if self.family == AF_INET6 { MAX_V6 } else { MAX_V4 }
    }

    /// Takes the port and opens a smoltcp socket on each interface `at` receives on.
    fn do_bind(&self, st: &mut Udp, stack: &mut Stack, at: SockAddr) -> KResult<()> {
        let b = ports::Binding { id: self.id, addr: at.addr, v6: self.family == AF_INET6 && !st.v6only, reuseaddr: st.reuseaddr, reuseport: st.reuseport, listening: false };
        let port = ports::bind(17, false, at, b)?;
        let endpoint = IpListenEndpoint { addr: (!at.is_any()).then_some(at.addr), port };
        for ifi in stack.ifs_for(at.addr) {
            let (rx_bytes, tx_bytes) = ((st.rcvbuf / 2).clamp(MAX_V6 + 1, 1 << 20), (MAX_V6 + 1).max(st.sndbuf / 2).min(1 << 20));
            let (rx_data, tx_data) = match (super::tcp::try_buffer(rx_bytes), super::tcp::try_buffer(tx_bytes)) {
                (Ok(r), Ok(t)) => (r, t),
                _ => {
                    // Out of memory: what this bind took goes back.
                    for at in st.socks.drain(..) {
                        stack.remove(at);
                    }
                    ports::release(17, port, self.id);
                    return Err(ENOBUFS);
                }
            };
            let rx = udp::PacketBuffer::new(alloc::vec![udp::PacketMetadata::EMPTY; QUEUED], rx_data);
            let tx = udp::PacketBuffer::new(alloc::vec![udp::PacketMetadata::EMPTY; QUEUED], tx_data);
            let mut s = udp::Socket::new(rx, tx);
            s.set_hop_limit(Some(st.ttl.clamp(1, 255) as u8));
            if s.bind(endpoint).is_err() {
                continue;
            }
            s.register_recv_waker(&self.wake.rx_waker);
            s.register_send_waker(&self.wake.tx_waker);
            let g = stack.new_group(ifi, false);
            let steer = PortSteer { group: g, addr: endpoint.addr, v4: self.family != AF_INET6 || !st.v6only, v6: self.family == AF_INET6 };
            stack.steer_port(ifi, 17, port, steer);
            st.socks.push(stack.add(ifi, Some(g), s));
        }
        st.local = Some(SockAddr { addr: at.addr, port });
        Ok(())
    }

    fn autobind(&self, st: &mut Udp, stack: &mut Stack) -> KResult<()> {
        if st.local.is_none() {
            self.do_bind(st, stack, SockAddr::any(self.family))?;
        }
        Ok(())
    }

    /// Whether a datagram waits (one from the connected peer, when connected; others are
    /// dropped here, as Linux drops them on arrival).
    fn pending(&self, st: &Udp, stack: &mut Stack) -> Option<At> {
        for &at in &st.socks {
            let s = stack.udp_quiet(at);
            s.register_recv_waker(&self.wake.rx_waker);
            while let Ok((_, meta)) = s.peek() {
                match st.peer {
                    Some(p) if SockAddr::from(meta.endpoint) != p => {
                        let _ = s.recv();
                    }
                    _ => return Some(at),
                }
            }
        }
        None
    }

    fn deadline(&self, send: bool) -> Option<u64> {
        self.st.lock().timeouts.deadline(send)
    }

    fn wait(&self, write: bool, deadline: Option<u64>, mut ready: impl FnMut(&UdpSocket, &Udp, &mut Stack) -> bool) -> KResult<()> {
        self.wake
            .queue(write)
            .wait_until(deadline, || {
                stack::look(|stack| {
                    let st = self.st.lock();
                    ready(self, &st, stack)
                })
            })
            .map_err(wait_error)
    }
}

impl Socket for UdpSocket {
    fn kind(&self) -> u32 {
        SOCK_DGRAM
    }

    fn family(&self) -> u16 {
        self.family
    }

    fn bind(&self, raw: &[u8]) -> KResult<()> {
        parse_addr(self.family, raw)?;
        stack::with(|stack| {
            let mut st = self.st.lock();
            if st.local.is_some() {
                return Err(EINVAL);
            }
            let at = bind_addr(self.family, raw, stack)?;
            self.do_bind(&mut st, stack, at)
        })
    }

    fn listen(&self, _backlog: i32) -> KResult<()> {
        Err(EOPNOTSUPP)
    }

    fn accept(&self, _nonblock: bool) -> KResult<Arc<dyn Socket>> {
        Err(EOPNOTSUPP)
    }

    fn connect(&self, raw: &[u8], _nonblock: bool) -> KResult<()> {
        let to = parse_addr(self.family, raw)?;
        stack::with(|stack| {
            let mut st = self.st.lock();
            let Some(to) = to else {
                // AF_UNSPEC: no default destination any more.
                st.peer = None;
                return Ok(());
            };
            stack.route(to.addr)?;
            self.autobind(&mut st, stack)?;
            st.peer = Some(to);
            Ok(())
        })
    }

    fn send(&self, msg: Outgoing, nonblock: bool) -> KResult<usize> {
        let to = match msg.to {
            Some(raw) => parse_addr(self.family, raw)?,
            None => None,
        };
        if msg.data.len() > self.max_payload() {
            return Err(EMSGSIZE);
        }
        let deadline = self.deadline(true);
        // The socket the datagram would leave by, once known (to wait on its room).
        let mut via: Option<At> = None;
        loop {
            let sent = stack::with(|stack| {
                let mut st = self.st.lock();
                if st.shut_wr {
                    return Err(EPIPE);
                }
                let to = to.or(st.peer).ok_or(EDESTADDRREQ)?;
                if to.port == 0 {
                    return Err(EINVAL);
                }
                let ifi = stack.route(to.addr)?;
                if !stack.ifs[ifi].is_loopback() && msg.data.len() + 28 > stack.ifs[ifi].mtu {
                    return Err(EMSGSIZE);
                }
                self.autobind(&mut st, stack)?;
                let at = *st.socks.iter().find(|a| a.0 == ifi).ok_or(ENETUNREACH)?;
                via = Some(at);
                let s = sock(stack, at);
                s.register_send_waker(&self.wake.tx_waker);
                match s.send_slice(&msg.data, to.endpoint()) {
                    Ok(()) => Ok(true),
                    Err(udp::SendError::BufferFull) => Ok(false),
                    Err(udp::SendError::Unaddressable) => Err(EINVAL),
                }
            })?;
            if sent {
                return Ok(msg.data.len());
            }
            if nonblock {
                return Err(EAGAIN);
            }
            // Until the queue it would join has drained: an empty queue takes any datagram
            // (smoltcp wants its bytes in one piece of its ring, so "enough bytes free" is
            // not enough to know).
            self.wait(true, deadline, |me, st, stack| {
                let Some(at) = via.filter(|at| st.socks.contains(at)) else { return true };
                let s = stack.udp_quiet(at);
                s.register_send_waker(&me.wake.tx_waker);
                st.shut_wr || s.send_queue() == 0
            })?;
        }
    }

    fn recv(&self, max: usize, flags: u32, nonblock: bool) -> KResult<Incoming> {
        let deadline = self.deadline(false);
        loop {
            let got = stack::with(|stack| {
                let st = self.st.lock();
                let Some(at) = self.pending(&st, stack) else {
                    return KResult::Ok(if st.shut_rd { Some(Incoming::default()) } else { None });
                };
                let ifindex = stack.ifs[at.0].index;
                let s = sock(stack, at);
                let (data, meta) = if flags & MSG_PEEK != 0 {
                    s.peek().map(|(d, m)| (d, *m)).map_err(|_| EAGAIN)?
                } else {
                    s.recv().map_err(|_| EAGAIN)?
                };
                let n = data.len().min(max);
                let cmsgs = pktinfo(&st, ifindex, meta.local_address);
                Ok(Some(Incoming { data: data[..n].to_vec(), full_len: data.len(), from: Some(format_addr(self.family, meta.endpoint.into())), cmsgs, ..Incoming::default() }))
            })?;
            if let Some(got) = got {
                return Ok(got);
            }
            if nonblock {
                return Err(EAGAIN);
            }
            self.wait(false, deadline, |me, st, stack| st.shut_rd || me.pending(st, stack).is_some())?;
        }
    }

    fn shutdown(&self, how: u32) -> KResult<()> {
        if how > SHUT_RDWR {
            return Err(EINVAL);
        }
        let mut st = self.st.lock();
        if how != SHUT_WR {
            st.shut_rd = true;
        }
        if how != SHUT_RD {
            st.shut_wr = true;
        }
        let connected = st.peer.is_some();
        drop(st);
        self.wake.rx.queue.wake_all();
        self.wake.tx.queue.wake_all();
        // Linux sets the flags, then says an unconnected socket was not connected.
        if connected { Ok(()) } else { Err(ENOTCONN) }
    }

    fn name(&self) -> Vec<u8> {
        stack::look(|stack| {
            let st = self.st.lock();
            let mut a = st.local.unwrap_or(SockAddr::any(self.family));
            // Connected on the wildcard: the address the route would send from.
            if let (Some(p), true) = (st.peer, a.is_any())
                && let Ok(ifi) = stack.route(p.addr)
                && let Some(src) = stack.ifs[ifi].iface.get_source_address(&p.addr)
            {
                a.addr = src;
            }
            format_addr(self.family, a)
        })
    }

    fn peer_name(&self) -> KResult<Vec<u8>> {
        let st = self.st.lock();
        st.peer.map(|p| format_addr(self.family, p)).ok_or(ENOTCONN)
    }

    fn option(&self, name: i32) -> Option<i32> {
        let st = self.st.lock();
        Some(match name {
            SO_SNDBUF => st.sndbuf as i32,
            SO_RCVBUF => st.rcvbuf as i32,
            SO_REUSEADDR => i32::from(st.reuseaddr),
            SO_REUSEPORT => i32::from(st.reuseport),
            SO_BROADCAST => i32::from(st.broadcast),
            SO_KEEPALIVE => 0,
            SO_ACCEPTCONN => 0,
            SO_PROTOCOL => IPPROTO_UDP,
            _ => return None,
        })
    }

    fn set_option(&self, name: i32, value: i32) -> KResult<()> {
        let mut st = self.st.lock();
        let size = |v: i32| (v.max(0) as usize).clamp(2304, DEFAULT_BUF) * 2;
        match name {
            SO_SNDBUF => st.sndbuf = size(value),
            SO_RCVBUF => st.rcvbuf = size(value),
            SO_REUSEADDR => st.reuseaddr = value != 0,
            SO_REUSEPORT => st.reuseport = value != 0,
            SO_BROADCAST => st.broadcast = value != 0,
            // Accepted and meaningless for UDP, as on Linux.
            SO_KEEPALIVE => {}
            _ => return Err(ENOPROTOOPT),
        }
        Ok(())
    }

    fn proto_option(&self, level: i32, name: i32) -> KResult<i32> {
        let st = self.st.lock();
        match (level, name) {
            (IPPROTO_IP, IP_TTL) => Ok(st.ttl),
            (IPPROTO_IP, IP_TOS) => Ok(st.tos),
            (IPPROTO_IPV6, IPV6_V6ONLY) if self.family == AF_INET6 => Ok(i32::from(st.v6only)),
            (IPPROTO_IP, IP_PKTINFO) => Ok(i32::from(st.pktinfo)),
            (IPPROTO_IPV6, IPV6_RECVPKTINFO) if self.family == AF_INET6 => Ok(i32::from(st.pktinfo6)),
            (IPPROTO_UDP | IPPROTO_IP | IPPROTO_IPV6, _) => Err(ENOPROTOOPT),
            _ if self.family == AF_INET6 => Err(ENOPROTOOPT),
            _ => Err(EOPNOTSUPP),
        }
    }

    fn set_proto_option(&self, level: i32, name: i32, value: i32) -> KResult<()> {
        let mut st = self.st.lock();
        match (level, name) {
            (IPPROTO_IP, IP_TTL) if value == -1 => st.ttl = 64,
            (IPPROTO_IP, IP_TTL) if (1..=255).contains(&value) => st.ttl = value,
            (IPPROTO_IP, IP_TTL) => return Err(EINVAL),
            (IPPROTO_IP, IP_TOS) => st.tos = value & 0xff,
            (IPPROTO_IP, IP_PKTINFO) => st.pktinfo = value != 0,
            (IPPROTO_IPV6, IPV6_RECVPKTINFO) if self.family == AF_INET6 => st.pktinfo6 = value != 0,
            (IPPROTO_IPV6, IPV6_V6ONLY) if self.family == AF_INET6 => {
                if st.local.is_some() {
                    return Err(EINVAL);
                }
                st.v6only = value != 0;
            }
            _ => return Err(ENOPROTOOPT),
        }
        Ok(())
    }

    fn timeout(&self, send: bool) -> KResult<u64> {
        Ok(self.st.lock().timeouts.get(send))
    }

    fn set_timeout(&self, send: bool, ns: u64) -> KResult<()> {
        self.st.lock().timeouts.set(send, ns);
        Ok(())
    }

    fn take_error(&self) -> i32 {
        0
    }

    fn peer_cred(&self) -> [u32; 3] {
        [0, u32::MAX, u32::MAX]
    }

    fn unread(&self) -> KResult<usize> {
        Ok(stack::look(|stack| {
            let st = self.st.lock();
            self.pending(&st, stack).and_then(|at| stack.udp_quiet(at).peek().ok().map(|(d, _)| d.len())).unwrap_or(0)
        }))
    }

    fn unsent(&self) -> KResult<usize> {
        Ok(stack::look(|stack| {
            let st = self.st.lock();
            st.socks.iter().map(|&at| stack.udp_quiet(at).send_queue()).sum()
        }))
    }

    fn linger(&self) -> [i32; 2] {
        [0, 0]
    }

    fn set_linger(&self, _linger: [i32; 2]) {}

    fn poll_mask(&self) -> u32 {
        use crate::fs::{POLLHUP, POLLIN, POLLOUT, POLLRDHUP, POLLRDNORM, POLLWRNORM};
        stack::look(|stack| {
            let st = self.st.lock();
            let mut m = 0;
            if st.shut_rd {
                m |= POLLIN | POLLRDNORM | POLLRDHUP;
            }
            if st.shut_rd && st.shut_wr {
                m |= POLLHUP;
            }
            if self.pending(&st, stack).is_some() {
                m |= POLLIN | POLLRDNORM;
            }
            let room = st.socks.iter().all(|&at| {
                let s = stack.udp_quiet(at);
                s.register_send_waker(&self.wake.tx_waker);
                s.can_send()
            });
            if room {
                m |= POLLOUT | POLLWRNORM;
            }
            m
        })
    }

    fn queue(&self, write: bool) -> &WaitQueue {
        self.wake.queue(write)
    }

    fn release(&self) {
        stack::with(|stack| {
            let mut st = self.st.lock();
            for at in st.socks.drain(..) {
                stack.remove(at);
            }
            if let Some(local) = st.local.take() {
                ports::release(17, local.port, self.id);
            }
        });
    }
}

/// The IP_PKTINFO or IPV6_PKTINFO message a datagram sent to `dst` on interface `ifindex`
/// comes with, if asked for. An IPv4 datagram gives struct in_pktinfo (the interface,
/// the local address a reply would come from, the destination: both `dst` for unicast)
/// with IP_PKTINFO, or struct in6_pktinfo with the v4-mapped address with
/// IPV6_RECVPKTINFO on an AF_INET6 socket; an IPv6 one, struct in6_pktinfo.
fn pktinfo(st: &Udp, ifindex: u32, dst: Option<IpAddress>) -> Vec<(i32, i32, Vec<u8>)> {
    let mut out = Vec::new();
    let v6 = |a: [u8; 16]| {
        let mut b = a.to_vec();
        b.extend_from_slice(&ifindex.to_le_bytes());
        (IPPROTO_IPV6, IPV6_PKTINFO, b)
    };
    match dst {
        Some(IpAddress::Ipv4(a)) => {
            if st.pktinfo {
                let mut b = ifindex.to_le_bytes().to_vec();
                b.extend_from_slice(&a.octets());
                b.extend_from_slice(&a.octets());
                out.push((IPPROTO_IP, IP_PKTINFO, b));
            }
            if st.pktinfo6 {
                out.push(v6(a.to_ipv6_mapped().octets()));
            }
        }
        Some(IpAddress::Ipv6(a)) if st.pktinfo6 => out.push(v6(a.octets())),
        _ => {}
    }
    out
}
