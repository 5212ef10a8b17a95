//! AF_NETLINK, NETLINK_ROUTE only, and of it only what reads the interfaces: the
//! RTM_GETLINK and RTM_GETADDR dumps (musl's getifaddrs and if_nameindex use them).
//! Every other request gets an NLMSG_ERROR of -EOPNOTSUPP; nothing is multicast.
//!
//! A request is answered when it is sent: the replies wait in the socket's queue as
//! datagrams, each a run of netlink messages, the last one NLMSG_DONE.

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;

use super::inet::stack::{interfaces, IfInfo};
use super::inet::{AF_INET, AF_INET6};
use super::*;
use crate::sync::SpinLock;
use crate::task::wait::WaitQueue;

pub const AF_NETLINK: u16 = 16;
const NETLINK_ROUTE: i32 = 0;
const SOCK_RAW: u32 = 3;

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_MULTI: u16 = 2;
const NLM_F_ACK: u16 = 4;
const NLM_F_DUMP: u16 = 0x300;
const IFLA_ADDRESS: u16 = 1;
const IFLA_BROADCAST: u16 = 2;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_LABEL: u16 = 3;
const IFA_BROADCAST: u16 = 4;
const ARPHRD_ETHER: u16 = 1;
const ARPHRD_LOOPBACK: u16 = 772;
/// RT_SCOPE_UNIVERSE, RT_SCOPE_HOST; IFA_F_PERMANENT.
const SCOPE_UNIVERSE: u8 = 0;
const SCOPE_HOST: u8 = 254;
const IFA_F_PERMANENT: u8 = 0x80;
/// sizeof(struct nlmsghdr), sizeof(struct sockaddr_nl).
const NLMSGHDR: usize = 16;
const SOCKADDR_NL: usize = 12;
/// The most a reply datagram carries (a reader's buffer of a page takes it whole).
const DATAGRAM: usize = 4096;
/// The receive buffer (net.core.rmem_default): replies past it are dropped.
const RCVBUF: usize = 212_992;

struct State {
    queue: VecDeque<Vec<u8>>,
    /// Its port id (the process id, once bound or first used, as Linux's autobind).
    pid: u32,
    shut_rd: bool,
    /// Bytes queued, and whether replies were dropped for want of room since the last
    /// receive (Linux's netlink_overrun: the next receive fails with ENOBUFS).
    queued: usize,
    overrun: bool,
}

pub struct NetlinkSocket {
    kind: u32,
    st: SpinLock<State>,
    readable: WaitQueue,
}

pub fn create(kind: u32, protocol: i32) -> KResult<Arc<dyn Socket>> {
    if kind != SOCK_RAW && kind != SOCK_DGRAM {
        return Err(ESOCKTNOSUPPORT);
    }
    if protocol != NETLINK_ROUTE {
        return Err(EPROTONOSUPPORT);
    }
    Ok(Arc::new(NetlinkSocket { kind, st: SpinLock::new(State { queue: VecDeque::new(), pid: 0, shut_rd: false, queued: 0, overrun: false }), readable: WaitQueue::new() }))
}

/// A message being built: header, fixed part, attributes (each padded to 4 bytes).
struct Msg(Vec<u8>);

impl Msg {
    fn new(kind: u16, flags: u16, seq: u32, pid: u32) -> Self {
        let mut v = alloc::vec![0u8; NLMSGHDR];
        v[4..6].copy_from_slice(&kind.to_le_bytes());
        v[6..8].copy_from_slice(&flags.to_le_bytes());
        v[8..12].copy_from_slice(&seq.to_le_bytes());
        v[12..16].copy_from_slice(&pid.to_le_bytes());
        Msg(v)
    }

    fn raw(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }

    fn attr(mut self, kind: u16, data: &[u8]) -> Self {
        self.0.extend_from_slice(&((4 + data.len()) as u16).to_le_bytes());
        self.0.extend_from_slice(&kind.to_le_bytes());
        self.0.extend_from_slice(data);
        self.0.resize(self.0.len().next_multiple_of(4), 0);
        self
    }

    fn done(mut self) -> Vec<u8> {
        let len = self.0.len() as u32;
        self.0[0..4].copy_from_slice(&len.to_le_bytes());
        self.0
    }
}

fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

fn link(i: &IfInfo, seq: u32, pid: u32) -> Vec<u8> {
    let mut fixed = [0u8; 16];
    let kind = if i.loopback { ARPHRD_LOOPBACK } else { ARPHRD_ETHER };
    fixed[2..4].copy_from_slice(&kind.to_le_bytes());
    fixed[4..8].copy_from_slice(&i.index.to_le_bytes());
    fixed[8..12].copy_from_slice(&i.flags().to_le_bytes());
    let bcast = if i.loopback { [0u8; 6] } else { [0xff; 6] };
    Msg::new(RTM_NEWLINK, NLM_F_MULTI, seq, pid)
        .raw(&fixed)
        .attr(IFLA_IFNAME, &cstr(i.name))
        .attr(IFLA_MTU, &(i.mtu as u32).to_le_bytes())
        .attr(IFLA_ADDRESS, &i.mac)
        .attr(IFLA_BROADCAST, &bcast)
        .done()
}

fn addrs(i: &IfInfo, family: u8, seq: u32, pid: u32) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let fixed = |fam: u16, prefix: u8, scope: u8| {
        let mut f = [0u8; 8];
        f[0] = fam as u8;
        f[1] = prefix;
        f[2] = IFA_F_PERMANENT;
        f[3] = scope;
        f[4..8].copy_from_slice(&i.index.to_le_bytes());
        f
    };
    let scope = if i.loopback { SCOPE_HOST } else { SCOPE_UNIVERSE };
    if let Some((a, p)) = i.v4.filter(|_| family == 0 || u16::from(family) == AF_INET) {
        let mut m = Msg::new(RTM_NEWADDR, NLM_F_MULTI, seq, pid).raw(&fixed(AF_INET, p, scope)).attr(IFA_ADDRESS, &a.octets()).attr(IFA_LOCAL, &a.octets());
        if !i.loopback {
            let mask = u32::MAX.checked_shl(32 - u32::from(p)).unwrap_or(0);
            m = m.attr(IFA_BROADCAST, &(u32::from(a) | !mask).to_be_bytes());
        }
        out.push(m.attr(IFA_LABEL, &cstr(i.name)).done());
    }
    if family == 0 || u16::from(family) == AF_INET6 {
        for (a, p) in &i.v6 {
            out.push(Msg::new(RTM_NEWADDR, NLM_F_MULTI, seq, pid).raw(&fixed(AF_INET6, *p, scope)).attr(IFA_ADDRESS, &a.octets()).done());
        }
    }
    out
}

/// The replies to one request message: datagrams.
fn answer(req: &[u8], pid: u32) -> Vec<Vec<u8>> {
    let kind = u16::from_le_bytes([req[4], req[5]]);
    let flags = u16::from_le_bytes([req[6], req[7]]);
    let seq = u32::from_le_bytes([req[8], req[9], req[10], req[11]]);
    let family = req.get(NLMSGHDR).copied().unwrap_or(0);
    let error = |e: i32| {
        let mut body = Vec::from(e.to_le_bytes());
        body.extend_from_slice(&req[..NLMSGHDR]);
        alloc::vec![Msg::new(NLMSG_ERROR, 0, seq, pid).raw(&body).done()]
    };
    if flags & NLM_F_REQUEST == 0 {
        return Vec::new();
    }
    let msgs: Vec<Vec<u8>> = match kind {
        RTM_GETLINK if flags & NLM_F_DUMP == NLM_F_DUMP => interfaces().iter().map(|i| link(i, seq, pid)).collect(),
        RTM_GETADDR if flags & NLM_F_DUMP == NLM_F_DUMP => interfaces().iter().flat_map(|i| addrs(i, family, seq, pid)).collect(),
        _ => return error(-EOPNOTSUPP.0),
    };
    // Packed into datagrams, then NLMSG_DONE.
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut cur: Vec<u8> = Vec::new();
    for m in msgs {
        if !cur.is_empty() && cur.len() + m.len() > DATAGRAM {
            out.push(core::mem::take(&mut cur));
        }
        cur.extend_from_slice(&m);
    }
    let done = Msg::new(NLMSG_DONE, NLM_F_MULTI, seq, pid).raw(&0i32.to_le_bytes()).done();
    if cur.len() + done.len() > DATAGRAM {
        out.push(core::mem::take(&mut cur));
    }
    cur.extend_from_slice(&done);
    out.push(cur);
    if flags & NLM_F_ACK != 0 && kind != RTM_GETLINK && kind != RTM_GETADDR {
        out.extend(error(0));
    }
    out
}

impl NetlinkSocket {
    fn pid(st: &mut State) -> u32 {
        if st.pid == 0 {
            st.pid = crate::task::current_process().pid;
        }
        st.pid
    }
}

impl Socket for NetlinkSocket {
    fn kind(&self) -> u32 {
        self.kind
    }

    fn family(&self) -> u16 {
        AF_NETLINK
    }

    fn bind(&self, addr: &[u8]) -> KResult<()> {
        if addr.len() < SOCKADDR_NL {
            return Err(EINVAL);
        }
        if u16::from_le_bytes([addr[0], addr[1]]) != AF_NETLINK {
            return Err(EINVAL);
        }
        let pid = u32::from_le_bytes([addr[4], addr[5], addr[6], addr[7]]);
        let groups = u32::from_le_bytes([addr[8], addr[9], addr[10], addr[11]]);
        if groups != 0 {
            // No multicast groups are served: a listener would wait for nothing.
            return Err(EOPNOTSUPP);
        }
        let mut st = self.st.lock();
        if pid != 0 {
            st.pid = pid;
        } else {
            Self::pid(&mut st);
        }
        Ok(())
    }

    fn listen(&self, _backlog: i32) -> KResult<()> {
        Err(EOPNOTSUPP)
    }

    fn accept(&self, _nonblock: bool) -> KResult<Arc<dyn Socket>> {
        Err(EOPNOTSUPP)
    }

    fn connect(&self, addr: &[u8], _nonblock: bool) -> KResult<()> {
        if addr.len() < SOCKADDR_NL {
            return Err(EINVAL);
        }
        Self::pid(&mut self.st.lock());
        Ok(())
    }

    fn send(&self, msg: Outgoing, _nonblock: bool) -> KResult<usize> {
        let mut st = self.st.lock();
        let pid = Self::pid(&mut st);
        let data = &msg.data;
        let mut at = 0;
        while at + NLMSGHDR <= data.len() {
            let len = u32::from_le_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]) as usize;
            if len < NLMSGHDR || at + len > data.len() {
                break;
            }
            for d in answer(&data[at..at + len], pid) {
                if st.queued + d.len() > RCVBUF {
                    st.overrun = true;
                    continue;
                }
                st.queued += d.len();
                st.queue.push_back(d);
            }
            at += len.next_multiple_of(4);
        }
        drop(st);
        self.readable.wake_all();
        Ok(data.len())
    }

    fn recv(&self, max: usize, flags: u32, nonblock: bool) -> KResult<Incoming> {
        let take = || {
            let mut st = self.st.lock();
            let d = if flags & MSG_PEEK != 0 { st.queue.front().cloned() } else { st.queue.pop_front() };
            if let Some(d) = d.as_ref().filter(|_| flags & MSG_PEEK == 0) {
                st.queued -= d.len();
            }
            if d.is_none() && core::mem::take(&mut st.overrun) {
                return Some(Err(ENOBUFS));
            }
            let from = alloc::vec![16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
            d.map(|d| Incoming { full_len: d.len(), data: d[..d.len().min(max)].to_vec(), from: Some(from), ..Incoming::default() })
                .or_else(|| st.shut_rd.then(Incoming::default))
                .map(Ok)
        };
        loop {
            if let Some(got) = take() {
                return got;
            }
            if nonblock {
                return Err(EAGAIN);
            }
            let ready = || {
                let st = self.st.lock();
                !st.queue.is_empty() || st.shut_rd || st.overrun
            };
            self.readable.wait_until(None, ready).map_err(wait_error)?;
        }
    }

    fn shutdown(&self, how: u32) -> KResult<()> {
        if how > SHUT_RDWR {
            return Err(EINVAL);
        }
        if how != SHUT_WR {
            self.st.lock().shut_rd = true;
            self.readable.wake_all();
        }
        Ok(())
    }

    fn name(&self) -> Vec<u8> {
        let pid = self.st.lock().pid;
        let mut v = alloc::vec![0u8; SOCKADDR_NL];
        v[0..2].copy_from_slice(&AF_NETLINK.to_le_bytes());
        v[4..8].copy_from_slice(&pid.to_le_bytes());
        v
    }

    fn peer_name(&self) -> KResult<Vec<u8>> {
        let mut v = alloc::vec![0u8; SOCKADDR_NL];
        v[0..2].copy_from_slice(&AF_NETLINK.to_le_bytes());
        Ok(v)
    }

    fn option(&self, name: i32) -> Option<i32> {
        match name {
            SO_SNDBUF | SO_RCVBUF => Some(212_992),
            _ => None,
        }
    }

    fn set_option(&self, name: i32, _value: i32) -> KResult<()> {
        match name {
            // Replies are queued whole whatever the size asked.
            SO_SNDBUF | SO_RCVBUF => Ok(()),
            _ => Err(ENOPROTOOPT),
        }
    }

    fn take_error(&self) -> i32 {
        0
    }

    fn peer_cred(&self) -> [u32; 3] {
        [0, u32::MAX, u32::MAX]
    }

    fn unread(&self) -> KResult<usize> {
        Ok(self.st.lock().queue.front().map_or(0, Vec::len))
    }

    fn unsent(&self) -> KResult<usize> {
        Ok(0)
    }

    fn linger(&self) -> [i32; 2] {
        [0, 0]
    }

    fn set_linger(&self, _linger: [i32; 2]) {}

    fn poll_mask(&self) -> u32 {
        use crate::fs::{POLLIN, POLLOUT, POLLRDNORM, POLLWRNORM};
        let st = self.st.lock();
        let mut m = POLLOUT | POLLWRNORM;
        if !st.queue.is_empty() || st.shut_rd {
            m |= POLLIN | POLLRDNORM;
        }
        m
    }

    fn queue(&self, _write: bool) -> &WaitQueue {
        &self.readable
    }

    fn release(&self) {}
}
