//! The TCP/IP stack: smoltcp interfaces and their sockets, under one lock.
//!
//! - **Interfaces.** `lo` (a queue of IP packets: 127.0.0.1/8 and ::1) always; `eth0` on
//!   the first virtio-net device, addressed by the kernel command line's
//!   `ip=client:server:gw:netmask:hostname:device:autoconf` (Linux's form; no DHCP).
//!   `lo` also holds `eth0`'s addresses, so traffic from this machine to its own address
//!   stays on `lo`, as on Linux.
//! - **Groups.** smoltcp's poll visits every socket of the set it is given, so one set
//!   would make each call cost as much as all connections. Sockets live in small groups
//!   instead (a connection, with its peer on lo; a listener's pool; a UDP socket), and
//!   the stack steers each received packet to its group by its addresses and ports
//!   ([`NetIf::demux`]), as Linux's socket lookup does. Egress visits only the groups a
//!   call touched or whose timer is due.
//! - **Polling.** Every socket operation polls after it acts (so loopback traffic flows
//!   at once, in the caller); the `netd` kernel thread polls when the device interrupts
//!   and when smoltcp's next timer (retransmit, delayed ACK, TIME-WAIT, keepalive) is due.
//! - **Wakeups.** smoltcp wakes a socket's registered [`Waker`](core::task::Waker)s when
//!   it becomes readable (the receive waker), writable (the send waker) or changes state
//!   (both). Ours ([`Wakers`]) only note the socket's reading or writing queue, woken once
//!   the stack lock is dropped, so waiters and io_uring's poll callbacks may take the lock
//!   again.

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use smoltcp::iface::{Config, Interface, PollResult, SocketHandle, SocketSet};
use smoltcp::phy::{self, ChecksumCapabilities, Device, DeviceCapabilities, Medium};
use smoltcp::socket::{tcp, udp, AnySocket};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr, IpEndpoint, Ipv4Address, Ipv6Address};

use super::is_loopback;
use crate::drivers::virtio::net::{NetPhy, RxFrame};
use crate::errno::*;
use crate::sync::SpinLock;
use crate::task::wait::WaitQueue;
use crate::time;

/// Where a smoltcp socket lives: (interface, group, handle).
pub type At = (usize, usize, SocketHandle);

/// A link: lo's queue of IP packets, or a virtio-net device.
pub enum Link {
    Loopback(VecDeque<Vec<u8>>),
    Virtio(NetPhy),
}

/// A received packet.
enum Frame {
    Owned(Vec<u8>),
    Virtio(RxFrame),
}

impl Frame {
    fn with<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        match self {
            Frame::Owned(v) => f(v),
            Frame::Virtio(r) => r.with(f),
        }
    }
}

impl Link {
    fn recv(&mut self) -> Option<Frame> {
        match self {
            Link::Loopback(q) => q.pop_front().map(Frame::Owned),
            Link::Virtio(p) => p.recv().map(Frame::Virtio),
        }
    }
}

/// smoltcp's view of a link for one call: at most the one packet the stack chose to
/// give it (ingress is steered by the stack, [`NetIf::demux`]), and the link to send on.
struct Dev<'a> {
    link: &'a mut Link,
    frame: Option<Frame>,
}

struct Rx(Frame);
struct Tx<'a>(&'a mut Link);

impl phy::RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        self.0.with(f)
    }
}

impl phy::TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        match self.0 {
            Link::Loopback(q) => {
                let mut v = alloc::vec![0u8; len];
                let r = f(&mut v);
                q.push_back(v);
                r
            }
            Link::Virtio(p) => p.send(len, f),
        }
    }
}

impl Device for Dev<'_> {
    type RxToken<'a>
        = Rx
    where
        Self: 'a;
    type TxToken<'a>
        = Tx<'a>
    where
        Self: 'a;

    fn receive(&mut self, _now: Instant) -> Option<(Rx, Tx<'_>)> {
        let f = self.frame.take()?;
        Some((Rx(f), Tx(self.link)))
    }

    fn transmit(&mut self, _now: Instant) -> Option<Tx<'_>> {
        if let Link::Virtio(p) = &mut *self.link
            && !p.can_send()
        {
            return None;
        }
        Some(Tx(self.link))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        match &*self.link {
            Link::Loopback(_) => {
                let mut caps = DeviceCapabilities::default();
                caps.medium = Medium::Ip;
                caps.max_transmission_unit = 65535;
                caps.checksum = ChecksumCapabilities::ignored();
                caps
            }
            Link::Virtio(p) => p.capabilities(),
        }
    }
}

/// A key that steers a received packet: a connection's (protocol, local, remote), or a
/// bound port's (protocol, port).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Key {
    Flow(u8, IpEndpoint, IpEndpoint),
    Port(u8, u16),
}

/// A few smoltcp sockets polled together: a connection's (on lo, both of its ends), a
/// listener's pool on one interface, a UDP socket's. smoltcp's poll visits every socket
/// of the set it is given; groups keep that to the sockets a packet or a call concerns.
pub struct Group {
    pub set: SocketSet<'static>,
    count: usize,
    /// Kept while empty (a listener's pool group, until it stops listening).
    pinned: bool,
    /// Touched since its last egress pass (and so in its interface's `dirty` list).
    dirty: bool,
    /// When smoltcp wants it polled next (monotonic ns; MAX: not for a timer); in its
    /// interface's `timers` when not MAX.
    due: u64,
    /// The steering keys that lead here (a flow's with its socket, to go with it).
    keys: Vec<(Option<SocketHandle>, Key)>,
    /// Its connections whose owners closed them: looked at after each poll of the
    /// group (only a poll moves them on), forgotten once closed.
    orphans: Vec<SocketHandle>,
}

/// An interface: its smoltcp state, its link and its socket groups.
pub struct NetIf {
    pub name: &'static str,
    /// Its ifindex (lo is 1, as on Linux).
    pub index: u32,
    pub iface: Interface,
    link: Link,
    /// Group 0 has no sockets: packets nobody takes go there (smoltcp answers them with
    /// a RST or an ICMP error).
    groups: Vec<Option<Group>>,
    /// The groups touched since their last egress pass, and the groups' timers (due,
    /// group): a poll visits these, not every group.
    dirty: Vec<usize>,
    timers: BTreeSet<(u64, usize)>,
    /// Orphans found closed by the last poll, for the stack to remove.
    ended: Vec<(usize, SocketHandle)>,
    /// A connection's key: its group and its socket (only that socket's removal drops it).
    flows: BTreeMap<Key, (usize, SocketHandle)>,
    ports: BTreeMap<Key, Vec<PortSteer>>,
    pub mac: Option<[u8; 6]>,
    pub mtu: usize,
    /// The IPv4 address and prefix length it was given (for the interface ioctls).
    pub v4: Option<(Ipv4Address, u8)>,
}

/// Who takes packets to a port: a group, for one local address or any, for IPv4, IPv6
/// or both (an AF_INET6 socket without IPV6_V6ONLY).
#[derive(Clone, Copy)]
pub struct PortSteer {
    pub group: usize,
    pub addr: Option<IpAddress>,
    pub v4: bool,
    pub v6: bool,
}

fn new_group(pinned: bool) -> Group {
    Group { set: SocketSet::new(Vec::new()), count: 0, pinned, dirty: false, due: u64::MAX, keys: Vec::new(), orphans: Vec::new() }
}

/// The steering facts of an IP packet: (protocol, destination, source) for TCP and UDP.
fn steer(ip: &[u8]) -> Option<(u8, IpEndpoint, IpEndpoint)> {
    let (proto, dst, src, l4) = match ip.first()? >> 4 {
        4 => {
            let ihl = usize::from(ip[0] & 0xf) * 4;
            if ip.len() < 20 || ihl < 20 {
                return None;
            }
            let a = |o: usize| IpAddress::Ipv4(Ipv4Address::new(ip[o], ip[o + 1], ip[o + 2], ip[o + 3]));
            (ip[9], a(16), a(12), ip.get(ihl..)?)
        }
        6 => {
            if ip.len() < 40 {
                return None;
            }
            let a = |o: usize| {
                let mut b = [0u8; 16];
                b.copy_from_slice(&ip[o..o + 16]);
                IpAddress::Ipv6(Ipv6Address::from(b))
            };
            // Extension headers are not followed: such packets go to group 0.
            (ip[6], a(24), a(8), &ip[40..])
        }
        _ => return None,
    };
    if (proto != 6 && proto != 17) || l4.len() < 4 {
        return None;
    }
    let sport = u16::from_be_bytes([l4[0], l4[1]]);
    let dport = u16::from_be_bytes([l4[2], l4[3]]);
    Some((proto, IpEndpoint::new(dst, dport), IpEndpoint::new(src, sport)))
}

impl NetIf {
    fn new(name: &'static str, index: u32, iface: Interface, link: Link) -> Self {
        NetIf {
            name,
            index,
            iface,
            link,
            groups: alloc::vec![Some(new_group(true))],
            dirty: Vec::new(),
            timers: BTreeSet::new(),
            ended: Vec::new(),
            flows: BTreeMap::new(),
            ports: BTreeMap::new(),
            mac: None,
            mtu: 65536,
            v4: None,
        }
    }

    pub fn is_loopback(&self) -> bool {
        matches!(self.link, Link::Loopback(_))
    }

    fn group(&mut self, g: usize) -> &mut Group {
        self.groups[g].as_mut().expect("a live socket group")
    }

    /// Marks group `g` for the next egress pass.
    fn touch(&mut self, g: usize) {
        let group = self.groups[g].as_mut().expect("a live socket group");
        if !group.dirty {
            group.dirty = true;
            self.dirty.push(g);
        }
    }

    /// Group `g` goes (its timer with it; a stale `dirty` entry is skipped).
    fn free_group(&mut self, g: usize) {
        if let Some(group) = self.groups[g].take()
            && group.due != u64::MAX
        {
            self.timers.remove(&(group.due, g));
        }
    }

    /// The group a received packet belongs to: its connection's, else its port's (a
    /// listener or a UDP socket bound to its address or the wildcard), else 0.
    fn demux(&self, frame: &Frame) -> usize {
        let eth = !self.is_loopback();
        let facts = frame.with(|b| {
            if !eth {
                return steer(b);
            }
            match b.get(12..14)? {
                [0x08, 0x00] | [0x86, 0xdd] => steer(b.get(14..)?),
                _ => None,
            }
        });
        let Some((proto, dst, src)) = facts else { return 0 };
        if let Some(&(g, _)) = self.flows.get(&Key::Flow(proto, dst, src)) {
            return g;
        }
        let v4 = matches!(dst.addr, IpAddress::Ipv4(_));
        self.ports
            .get(&Key::Port(proto, dst.port))
            .and_then(|l| l.iter().find(|p| (if v4 { p.v4 } else { p.v6 }) && p.addr.is_none_or(|a| a == dst.addr)).map(|p| p.group))
            .unwrap_or(0)
    }

    /// Polls until nothing moves (or [`POLL_ROUNDS`]): egress for the groups touched or
    /// due, then each received packet into its group. Returns whether packets moved.
    fn poll(&mut self, now: Instant, now_ns: u64) -> bool {
        let mut moved = false;
        self.iface.poll_maintenance(now);
        for _ in 0..POLL_ROUNDS {
            let mut round = false;
            while let Some(&(due, g)) = self.timers.first()
                && due <= now_ns
            {
                self.timers.pop_first();
                self.group(g).due = u64::MAX;
                self.touch(g);
            }
            for g in core::mem::take(&mut self.dirty) {
                let Some(group) = self.groups[g].as_mut().filter(|grp| grp.dirty) else { continue };
                group.dirty = false;
                let mut dev = Dev { link: &mut self.link, frame: None };
                for _ in 0..POLL_ROUNDS {
                    if self.iface.poll_egress(now, &mut dev, &mut group.set) == PollResult::None {
                        break;
                    }
                    round = true;
                }
                let due = self.iface.poll_at(now, &group.set).map_or(u64::MAX, |t| t.total_micros().max(0) as u64 * 1000);
                if due != group.due {
                    if group.due != u64::MAX {
                        self.timers.remove(&(group.due, g));
                    }
                    if due != u64::MAX {
                        self.timers.insert((due, g));
                    }
                    group.due = due;
                }
                Self::find_ended(&mut self.ended, g, group);
            }
            while let Some(frame) = self.link.recv() {
                round = true;
                let g = self.demux(&frame);
                let group = self.groups[g].as_mut().expect("a live socket group");
                let mut dev = Dev { link: &mut self.link, frame: Some(frame) };
                self.iface.poll_ingress_single(now, &mut dev, &mut group.set);
                Self::find_ended(&mut self.ended, g, group);
                self.touch(g);
                if g == 0 {
                    // ARP and the like may let any socket's waiting packet go.
                    for k in 0..self.groups.len() {
                        if self.groups[k].is_some() {
                            self.touch(k);
                        }
                    }
                }
            }
            if !round {
                break;
            }
            moved = true;
        }
        moved
    }

    /// Notes group `g`'s orphans that are closed now, in `ended`.
    fn find_ended(ended: &mut Vec<(usize, SocketHandle)>, g: usize, group: &Group) {
        for &h in &group.orphans {
            if group.set.get::<tcp::Socket>(h).state() == tcp::State::Closed && !ended.contains(&(g, h)) {
                ended.push((g, h));
            }
        }
    }

    fn next_due(&self) -> u64 {
        self.timers.first().map_or(u64::MAX, |t| t.0)
    }
}

/// Something that must be looked at after each poll (a listener's pool of listening
/// sockets becomes connections as SYNs arrive).
pub trait Maintain: Send + Sync {
    /// Returns false once it no longer needs it.
    fn maintain(&self, stack: &mut Stack) -> bool;
}

pub struct Stack {
    pub ifs: Vec<NetIf>,
    maintained: Vec<Weak<dyn Maintain>>,
}

static STACK: SpinLock<Option<Stack>> = SpinLock::new(None);

/// The sockets smoltcp woke while the lock was held, to wake once it is dropped.
static PENDING: SpinLock<Vec<Arc<Wakeup>>> = SpinLock::new(Vec::new());

/// A socket's wait queue, as a smoltcp waker.
pub struct Wakeup {
    pub queue: WaitQueue,
    queued: AtomicBool,
}

impl Wakeup {
    pub fn new() -> Arc<Self> {
        Arc::new(Self { queue: WaitQueue::new(), queued: AtomicBool::new(false) })
    }

    /// Wakes the queue once the stack lock is dropped.
    pub fn note(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            PENDING.lock().push(Arc::clone(self));
        }
    }
}

/// A socket's two wait queues as smoltcp wakers: readers wait on `rx` (smoltcp's
/// receive waker: data, a FIN, a state change), writers on `tx` (its send waker: room, a
/// state change). Two, so that room to send does not wake a parked receive (Linux's
/// wakeups carry the events; ours do not).
pub struct Wakers {
    pub rx: Arc<Wakeup>,
    pub tx: Arc<Wakeup>,
    pub rx_waker: core::task::Waker,
    pub tx_waker: core::task::Waker,
}

impl Wakers {
    pub fn new() -> Self {
        let (rx, tx) = (Wakeup::new(), Wakeup::new());
        let (rx_waker, tx_waker) = (core::task::Waker::from(Arc::clone(&rx)), core::task::Waker::from(Arc::clone(&tx)));
        Self { rx, tx, rx_waker, tx_waker }
    }

    pub fn queue(&self, write: bool) -> &WaitQueue {
        if write { &self.tx.queue } else { &self.rx.queue }
    }

    /// Both queues, once the stack lock is dropped.
    pub fn note(&self) {
        self.rx.note();
        self.tx.note();
    }
}

impl alloc::task::Wake for Wakeup {
    fn wake(self: Arc<Self>) {
        self.note();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.note();
    }
}

fn flush_wakeups() {
    let list = core::mem::take(&mut *PENDING.lock());
    for w in list {
        w.queued.store(false, Ordering::Release);
        w.queue.wake_all();
    }
}

pub fn now() -> Instant {
    Instant::from_micros((time::monotonic_ns() / 1000) as i64)
}

/// Runs `f` on the stack, then polls the interfaces, then wakes whom that concerned.
pub fn with<R>(f: impl FnOnce(&mut Stack) -> R) -> R {
    let r = {
        let mut g = STACK.lock();
        let stack = g.get_or_insert_with(Stack::new);
        let r = f(stack);
        stack.poll();
        r
    };
    flush_wakeups();
    r
}

/// Runs `f` on the stack without polling (a wait's readiness check: it must not wake).
pub fn look<R>(f: impl FnOnce(&mut Stack) -> R) -> R {
    let mut g = STACK.lock();
    f(g.get_or_insert_with(Stack::new))
}

/// How many passes in a row may find work before the rest is left to `netd` (bounds one
/// caller's time in the stack; each loopback hop is one pass).
const POLL_ROUNDS: usize = 64;

impl Stack {
    fn new() -> Self {
        let mut config = Config::new(HardwareAddress::Ip);
        config.random_seed = seed();
        let mut link = Link::Loopback(VecDeque::new());
        let mut iface = Interface::new(config, &mut Dev { link: &mut link, frame: None }, now());
        iface.update_ip_addrs(|a| {
            let _ = a.push(IpCidr::new(IpAddress::v4(127, 0, 0, 1), 8));
            let _ = a.push(IpCidr::new(IpAddress::Ipv6(Ipv6Address::LOCALHOST), 128));
        });
        let mut lo = NetIf::new("lo", 1, iface, link);
        lo.v4 = Some((Ipv4Address::new(127, 0, 0, 1), 8));
        Self { ifs: alloc::vec![lo], maintained: Vec::new() }
    }

    /// Adds `eth0` on a virtio-net device, addressed as `ip` says.
    fn add_ethernet(&mut self, phy: NetPhy, mac: [u8; 6], ip: Option<IpConfig>) {
        let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        config.random_seed = seed();
        let mtu = phy.mtu();
        let mut link = Link::Virtio(phy);
        let mut iface = Interface::new(config, &mut Dev { link: &mut link, frame: None }, now());
        let mut v4 = None;
        if let Some(ip) = ip {
            iface.update_ip_addrs(|a| {
                let _ = a.push(IpCidr::new(IpAddress::Ipv4(ip.addr), ip.prefix));
            });
            if let Some(gw) = ip.gateway {
                let _ = iface.routes_mut().add_default_ipv4_route(gw);
            }
            // Traffic to our own address stays on lo (which has room for it: smoltcp's
            // iface-max-addr-count-4 feature, lo's four being 127.0.0.1/8, ::1 and
            // eth0's two).
            self.ifs[0].iface.update_ip_addrs(|a| {
                let _ = a.push(IpCidr::new(IpAddress::Ipv4(ip.addr), 32));
            });
            v4 = Some((ip.addr, ip.prefix));
        }
        let index = self.ifs.len() as u32 + 1;
        // IPv6: the link-local address every Linux interface gets, fe80::/64 with the
        // MAC's modified EUI-64 (RFC 4291 2.5.1); it stays on lo too when it is ours.
        let ll = Ipv6Address::new(
            0xfe80,
            0,
            0,
            0,
            u16::from_be_bytes([mac[0] ^ 2, mac[1]]),
            u16::from_be_bytes([mac[2], 0xff]),
            u16::from_be_bytes([0xfe, mac[3]]),
            u16::from_be_bytes([mac[4], mac[5]]),
        );
        iface.update_ip_addrs(|a| {
            let _ = a.push(IpCidr::new(IpAddress::Ipv6(ll), 64));
        });
        self.ifs[0].iface.update_ip_addrs(|a| {
            let _ = a.push(IpCidr::new(IpAddress::Ipv6(ll), 128));
        });
        super::LINK_SCOPE.store(index, Ordering::Relaxed);
        let mut nif = NetIf::new("eth0", index, iface, link);
        nif.mac = Some(mac);
        nif.mtu = mtu;
        nif.v4 = v4;
        self.ifs.push(nif);
    }

    /// The interface traffic to `dst` leaves by: lo for loopback and local addresses,
    /// else the first other interface with an address that can reach it: of its family,
    /// and for IPv6 beyond the link, not link-local (its routes decide the next hop);
    /// ENETUNREACH when there is none.
    pub fn route(&self, dst: IpAddress) -> KResult<usize> {
        if is_loopback(dst) || self.ifs[0].iface.has_ip_addr(dst) {
            return Ok(0);
        }
        let reaches = |c: &IpCidr| match (dst, c.address()) {
            (IpAddress::Ipv4(_), IpAddress::Ipv4(_)) => true,
            (IpAddress::Ipv6(d), IpAddress::Ipv6(a)) => d.is_unicast_link_local() || !a.is_unicast_link_local(),
            _ => false,
        };
        self.ifs.iter().position(|i| !i.is_loopback() && i.iface.ip_addrs().iter().any(reaches)).ok_or(ENETUNREACH)
    }

    /// The interfaces a socket bound to `local` receives on: all for the wildcard.
    pub fn ifs_for(&self, local: IpAddress) -> Vec<usize> {
        (0..self.ifs.len()).filter(|&i| local.is_unspecified() || self.ifs[i].iface.has_ip_addr(local)).collect()
    }

    /// Whether `a` is one of this machine's addresses (or the wildcard).
    pub fn is_local(&self, a: IpAddress) -> bool {
        a.is_unspecified() || self.ifs.iter().any(|i| i.iface.has_ip_addr(a))
    }

    /// A new, empty socket group on interface `ifi`: freed when its last socket goes, or
    /// if `pinned`, only once [`unpin_group`](Self::unpin_group) lets it go.
    pub fn new_group(&mut self, ifi: usize, pinned: bool) -> usize {
        let nif = &mut self.ifs[ifi];
        match nif.groups.iter().skip(1).position(Option::is_none) {
            Some(k) => {
                nif.groups[k + 1] = Some(new_group(pinned));
                k + 1
            }
            None => {
                nif.groups.push(Some(new_group(pinned)));
                nif.groups.len() - 1
            }
        }
    }

    /// A pinned group's owner is done with it: packets to its ports stop coming, and it
    /// goes with its last socket (at once if it has none).
    pub fn unpin_group(&mut self, ifi: usize, g: usize) {
        let nif = &mut self.ifs[ifi];
        let group = nif.group(g);
        group.pinned = false;
        let mut ports = Vec::new();
        group.keys.retain(|&(h, k)| {
            let port = h.is_none();
            if port {
                ports.push(k);
            }
            !port
        });
        let empty = group.count == 0;
        for k in ports {
            if let Some(l) = nif.ports.get_mut(&k) {
                l.retain(|p| p.group != g);
                if l.is_empty() {
                    nif.ports.remove(&k);
                }
            }
        }
        if empty {
            nif.free_group(g);
        }
    }

    /// Adds a smoltcp socket to group `g` of interface `ifi` (None: a new group).
    pub fn add<T: AnySocket<'static>>(&mut self, ifi: usize, g: Option<usize>, s: T) -> At {
        let g = g.unwrap_or_else(|| self.new_group(ifi, false));
        let group = self.ifs[ifi].group(g);
        let h = group.set.add(s);
        group.count += 1;
        self.ifs[ifi].touch(g);
        (ifi, g, h)
    }

    /// Removes a smoltcp socket (and the keys that led to it); an emptied group goes.
    pub fn remove(&mut self, at: At) -> smoltcp::socket::Socket<'static> {
        let nif = &mut self.ifs[at.0];
        let group = nif.groups[at.1].as_mut().expect("a live socket group");
        let s = group.set.remove(at.2);
        group.count -= 1;
        group.orphans.retain(|&h| h != at.2);
        let mut gone: Vec<Key> = Vec::new();
        group.keys.retain(|&(h, k)| {
            let keep = h != Some(at.2);
            if !keep {
                gone.push(k);
            }
            keep
        });
        if group.count == 0 && !group.pinned {
            gone.extend(group.keys.drain(..).map(|(_, k)| k));
            nif.free_group(at.1);
        }
        for k in gone {
            match k {
                Key::Flow(..) => {
                    // Only if it still leads to this socket (a new connection on the same
                    // addresses may have taken the key over).
                    if nif.flows.get(&k) == Some(&(at.1, at.2)) {
                        nif.flows.remove(&k);
                    }
                }
                Key::Port(..) => {
                    if let Some(l) = nif.ports.get_mut(&k) {
                        l.retain(|p| p.group != at.1);
                        if l.is_empty() {
                            nif.ports.remove(&k);
                        }
                    }
                }
            }
        }
        s
    }

    /// Moves a smoltcp socket into group `g`.
    pub fn migrate(&mut self, at: At, g: usize) -> At {
        let s = self.remove(at);
        self.add(at.0, Some(g), s)
    }

    pub fn tcp(&mut self, at: At) -> &mut tcp::Socket<'static> {
        self.ifs[at.0].touch(at.1);
        self.ifs[at.0].group(at.1).set.get_mut::<tcp::Socket>(at.2)
    }

    /// A TCP socket to look at, or to register a waker with: its group is not marked
    /// for egress (only what may give the socket something to send should be).
    pub fn tcp_quiet(&mut self, at: At) -> &mut tcp::Socket<'static> {
        self.ifs[at.0].group(at.1).set.get_mut::<tcp::Socket>(at.2)
    }

    /// A UDP socket to look at, or to register a waker with (see [`tcp_quiet`](Self::tcp_quiet)).
    pub fn udp_quiet(&mut self, at: At) -> &mut udp::Socket<'static> {
        self.ifs[at.0].group(at.1).set.get_mut::<udp::Socket>(at.2)
    }

    /// A TCP socket, to look at only (its group is not marked for egress).
    pub fn peek_tcp(&self, at: At) -> &tcp::Socket<'static> {
        self.ifs[at.0].groups[at.1].as_ref().expect("a live socket group").set.get::<tcp::Socket>(at.2)
    }

    pub fn udp(&mut self, at: At) -> &mut udp::Socket<'static> {
        self.ifs[at.0].touch(at.1);
        self.ifs[at.0].group(at.1).set.get_mut::<udp::Socket>(at.2)
    }

    /// Steers packets of the connection (`proto`, `local`, `remote`) to `at`'s group.
    pub fn steer_flow(&mut self, at: At, proto: u8, local: IpEndpoint, remote: IpEndpoint) {
        let nif = &mut self.ifs[at.0];
        let k = Key::Flow(proto, local, remote);
        nif.flows.insert(k, (at.1, at.2));
        nif.group(at.1).keys.push((Some(at.2), k));
    }

    /// Steers packets to `port` (for `addr`, or any address) to group `g` of `ifi`.
    pub fn steer_port(&mut self, ifi: usize, proto: u8, port: u16, steer: PortSteer) {
        let nif = &mut self.ifs[ifi];
        let (g, k) = (steer.group, Key::Port(proto, port));
        nif.ports.entry(k).or_default().push(steer);
        nif.group(g).keys.push((None, k));
    }

    /// The group of the connection (`proto`, `local`, `remote`) on `ifi`, if any.
    pub fn flow_group(&self, ifi: usize, proto: u8, local: IpEndpoint, remote: IpEndpoint) -> Option<usize> {
        self.ifs[ifi].flows.get(&Key::Flow(proto, local, remote)).map(|&(g, _)| g)
    }

    /// Registers `m` to be maintained after every poll.
    pub fn maintain(&mut self, m: Weak<dyn Maintain>) {
        self.maintained.push(m);
    }

    /// A connection its owner closed: the stack forgets it once it is closed (its group
    /// is polled now, and looked at after every poll of it).
    pub fn orphan(&mut self, at: At) {
        self.ifs[at.0].group(at.1).orphans.push(at.2);
        self.ifs[at.0].touch(at.1);
    }

    /// Polls every interface until nothing moves, looks after the listeners and
    /// orphans, and sets `netd`'s next deadline.
    fn poll(&mut self) {
        let t = now();
        let t_ns = time::monotonic_ns();
        for _ in 0..POLL_ROUNDS {
            let mut moved = false;
            for nif in &mut self.ifs {
                moved |= nif.poll(t, t_ns);
            }
            // A listener whose pool took a SYN moves the new connection to a group of
            // its own, due for egress: poll again for it.
            self.run_maintenance();
            if !moved && self.ifs.iter().all(|i| i.dirty.is_empty()) {
                break;
            }
        }
        for ifi in 0..self.ifs.len() {
            for (g, h) in core::mem::take(&mut self.ifs[ifi].ended) {
                // (Unless something removed it since.)
                if self.ifs[ifi].groups[g].as_ref().is_some_and(|grp| grp.orphans.contains(&h)) {
                    self.remove((ifi, g, h));
                }
            }
        }
        let next = self.ifs.iter().map(NetIf::next_due).min().unwrap_or(u64::MAX);
        netd_deadline(next);
    }

    fn run_maintenance(&mut self) {
        let mut list = core::mem::take(&mut self.maintained);
        list.retain(|w| w.upgrade().is_some_and(|m| m.maintain(self)));
        list.append(&mut self.maintained);
        self.maintained = list;
    }
}

fn seed() -> u64 {
    let mut b = [0u8; 8];
    crate::random::fill(&mut b);
    u64::from_le_bytes(b)
}

/// `ip=` of the kernel command line, for eth0.
#[derive(Clone, Copy, Debug)]
pub struct IpConfig {
    pub addr: Ipv4Address,
    pub prefix: u8,
    pub gateway: Option<Ipv4Address>,
}

/// Parses Linux's `ip=client:server:gw:netmask:hostname:device:autoconf`. Only a static
/// client address is ours to use (`off`, `none`, `dhcp`, ... and an empty client give
/// None); the netmask defaults to the address class's, as Linux's does.
pub fn parse_ip(v: &str) -> Option<IpConfig> {
    let f: Vec<&str> = v.split(':').collect();
    let addr: Ipv4Address = f.first()?.parse().ok()?;
    let gateway = f.get(2).and_then(|g| g.parse().ok()).filter(|g: &Ipv4Address| !g.is_unspecified());
    let prefix = match f.get(3).and_then(|m| m.parse::<Ipv4Address>().ok()) {
        Some(m) => u32::from(m).leading_ones() as u8,
        None => match addr.octets()[0] {
            0..=127 => 8,
            128..=191 => 16,
            _ => 24,
        },
    };
    Some(IpConfig { addr, prefix, gateway })
}

/// Starts the stack at boot: eth0 on `phy` if there is a virtio-net device, addressed by
/// `ip=` if the command line has it, and the `netd` thread.
pub fn init(phy: Option<(NetPhy, [u8; 6])>, ip: Option<&str>) {
    super::ports::seed(seed());
    let ip = ip.and_then(|v| {
        let c = parse_ip(v);
        if c.is_none() && !matches!(v, "off" | "none") {
            log::warn!("ip={v}: only a static address is supported; eth0 has none");
        }
        c
    });
    let mut g = STACK.lock();
    let stack = g.get_or_insert_with(Stack::new);
    if let Some((phy, mac)) = phy {
        stack.add_ethernet(phy, mac, ip);
        if let Some(ip) = ip {
            log::info!("eth0: {}/{}{}", ip.addr, ip.prefix, ip.gateway.map(|g| alloc::format!(" via {g}")).unwrap_or_default());
        }
    }
}

/// Starts `netd` (once tasks can run).
pub fn start() {
    if let Err(e) = crate::task::spawn_kernel_thread(netd, 0) {
        log::warn!("net: no netd thread: error {}", e.0);
    }
}

static NETD: WaitQueue = WaitQueue::new();
static KICKED: AtomicBool = AtomicBool::new(false);
/// When the stack next wants a poll (monotonic ns; MAX: no timer).
static DEADLINE: AtomicU64 = AtomicU64::new(u64::MAX);

/// A device has frames (its interrupt): `netd` polls.
pub fn kick() {
    KICKED.store(true, Ordering::Release);
    NETD.wake_all();
}

fn netd_deadline(next: u64) {
    let old = DEADLINE.swap(next, Ordering::AcqRel);
    if next < old {
        NETD.wake_all();
    }
}

extern "C" fn netd(_: usize) {
    loop {
        let d = DEADLINE.load(Ordering::Acquire);
        let _ = NETD.wait_until((d != u64::MAX).then_some(d), || KICKED.load(Ordering::Acquire) || DEADLINE.load(Ordering::Acquire) < d);
        KICKED.store(false, Ordering::Release);
        with(|_| ());
    }
}

/// What the interface ioctls and netlink report of an interface.
pub struct IfInfo {
    pub name: &'static str,
    pub index: u32,
    pub loopback: bool,
    pub mtu: usize,
    pub mac: [u8; 6],
    pub v4: Option<(Ipv4Address, u8)>,
    pub v6: Vec<(Ipv6Address, u8)>,
}

impl IfInfo {
    /// SIOCGIFFLAGS's flags: lo is UP|LOOPBACK|RUNNING, an Ethernet interface
    /// UP|BROADCAST|RUNNING|MULTICAST (Linux's usual 73 and 4163).
    pub fn flags(&self) -> u32 {
        if self.loopback { 0x1 | 0x8 | 0x40 } else { 0x1 | 0x2 | 0x40 | 0x1000 }
    }
}

/// The interfaces, in ifindex order.
pub fn interfaces() -> Vec<IfInfo> {
    look(|s| {
        s.ifs
            .iter()
            .map(|i| IfInfo {
                name: i.name,
                index: i.index,
                loopback: i.is_loopback(),
                mtu: i.mtu,
                mac: i.mac.unwrap_or_default(),
                v4: i.v4,
                // (lo also holds eth0's link-local address, which is not lo's to show.)
                v6: i.iface
                    .ip_addrs()
                    .iter()
                    .filter_map(|c| match c.address() {
                        IpAddress::Ipv6(a) if !(i.is_loopback() && a.is_unicast_link_local()) => Some((a, c.prefix_len())),
                        _ => None,
                    })
                    .collect(),
            })
            .collect()
    })
}
