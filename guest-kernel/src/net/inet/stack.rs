//! The TCP/IP stack: smoltcp interfaces and their socket sets, under one lock.
//!
//! - **Interfaces.** `lo` (smoltcp's loopback device, 127.0.0.1/8 and ::1) always; `eth0`
//!   on the first virtio-net device, addressed by the kernel command line's
//!   `ip=client:server:gw:netmask:hostname:device:autoconf` (Linux's form; no DHCP).
//!   Each interface has its own socket set: a smoltcp socket belongs to one interface,
//!   chosen by its addresses. `lo` also holds `eth0`'s addresses, so traffic from this
//!   machine to its own address stays on `lo`, as on Linux.
//! - **Polling.** Every socket operation polls the interfaces after it acts (so loopback
//!   traffic flows at once, in the caller); the `netd` kernel thread polls when the
//!   device interrupts and when smoltcp's next timer (retransmit, delayed ACK,
//!   TIME-WAIT, keepalive) is due.
//! - **Wakeups.** smoltcp wakes a socket's registered [`Waker`](core::task::Waker) when
//!   it becomes readable, writable or changes state. Ours ([`Wakeup`]) only notes the
//!   socket; its wait queue is woken once the stack lock is dropped, so waiters and
//!   io_uring's poll callbacks may take the lock again.

use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use smoltcp::iface::{Config, Interface, PollResult, SocketHandle, SocketSet};
use smoltcp::phy::{Loopback, Medium};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr, Ipv4Address, Ipv6Address};

use super::is_loopback;
use crate::drivers::virtio::net::NetPhy;
use crate::errno::*;
use crate::sync::SpinLock;
use crate::task::wait::WaitQueue;
use crate::time;

/// A network device.
pub enum Phy {
    Loopback(Loopback),
    Virtio(NetPhy),
}

/// An interface: its smoltcp state, its device and the sockets on it.
pub struct NetIf {
    pub name: &'static str,
    /// Its ifindex (lo is 1, as on Linux).
    pub index: u32,
    pub iface: Interface,
    phy: Phy,
    pub sockets: SocketSet<'static>,
    pub mac: Option<[u8; 6]>,
    pub mtu: usize,
    /// The IPv4 address and prefix length it was given (for the interface ioctls).
    pub v4: Option<(Ipv4Address, u8)>,
}

impl NetIf {
    pub fn is_loopback(&self) -> bool {
        matches!(self.phy, Phy::Loopback(_))
    }

    /// One smoltcp poll: whether anything happened.
    fn poll_once(&mut self, now: Instant) -> bool {
        let r = match &mut self.phy {
            Phy::Loopback(d) => self.iface.poll(now, d, &mut self.sockets),
            Phy::Virtio(d) => self.iface.poll(now, d, &mut self.sockets),
        };
        r != PollResult::None
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
    /// Connections their owners closed, still ending (FIN exchange, TIME-WAIT): removed
    /// from their sets once closed.
    orphans: Vec<(usize, SocketHandle)>,
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

/// How many polls in a row may find work before the rest is left to `netd` (bounds one
/// caller's time in the stack; each loopback hop is one poll).
const POLL_ROUNDS: usize = 64;

impl Stack {
    fn new() -> Self {
        let mut lo = Loopback::new(Medium::Ip);
        let mut config = Config::new(HardwareAddress::Ip);
        config.random_seed = seed();
        let mut iface = Interface::new(config, &mut lo, now());
        iface.update_ip_addrs(|a| {
            let _ = a.push(IpCidr::new(IpAddress::v4(127, 0, 0, 1), 8));
            let _ = a.push(IpCidr::new(IpAddress::Ipv6(Ipv6Address::LOCALHOST), 128));
        });
        let lo = NetIf {
            name: "lo",
            index: 1,
            iface,
            phy: Phy::Loopback(lo),
            sockets: SocketSet::new(Vec::new()),
            mac: None,
            mtu: 65536,
            v4: Some((Ipv4Address::new(127, 0, 0, 1), 8)),
        };
        Self { ifs: alloc::vec![lo], maintained: Vec::new(), orphans: Vec::new() }
    }

    /// Adds `eth0` on a virtio-net device, addressed as `ip` says.
    fn add_ethernet(&mut self, mut phy: NetPhy, mac: [u8; 6], ip: Option<IpConfig>) {
        let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        config.random_seed = seed();
        let mtu = phy.mtu();
        let mut iface = Interface::new(config, &mut phy, now());
        let mut v4 = None;
        if let Some(ip) = ip {
            iface.update_ip_addrs(|a| {
                let _ = a.push(IpCidr::new(IpAddress::Ipv4(ip.addr), ip.prefix));
            });
            if let Some(gw) = ip.gateway {
                let _ = iface.routes_mut().add_default_ipv4_route(gw);
            }
            // Traffic to our own address stays on lo.
            self.ifs[0].iface.update_ip_addrs(|a| {
                let _ = a.push(IpCidr::new(IpAddress::Ipv4(ip.addr), 32));
            });
            v4 = Some((ip.addr, ip.prefix));
        }
        let index = self.ifs.len() as u32 + 1;
        self.ifs.push(NetIf { name: "eth0", index, iface, phy: Phy::Virtio(phy), sockets: SocketSet::new(Vec::new()), mac: Some(mac), mtu, v4 });
    }

    /// The interface traffic to `dst` leaves by: lo for loopback and local addresses,
    /// else the first other interface with an address of that family (its routes decide
    /// the next hop); ENETUNREACH when there is none.
    pub fn route(&self, dst: IpAddress) -> KResult<usize> {
        if is_loopback(dst) || self.ifs[0].iface.has_ip_addr(dst) {
            return Ok(0);
        }
        let v4 = matches!(dst, IpAddress::Ipv4(_));
        self.ifs
            .iter()
            .position(|i| !i.is_loopback() && i.iface.ip_addrs().iter().any(|c| matches!(c.address(), IpAddress::Ipv4(_)) == v4))
            .ok_or(ENETUNREACH)
    }

    /// The interfaces a socket bound to `local` receives on: all for the wildcard.
    pub fn ifs_for(&self, local: IpAddress) -> Vec<usize> {
        (0..self.ifs.len()).filter(|&i| local.is_unspecified() || self.ifs[i].iface.has_ip_addr(local)).collect()
    }

    /// Whether `a` is one of this machine's addresses (or the wildcard).
    pub fn is_local(&self, a: IpAddress) -> bool {
        a.is_unspecified() || self.ifs.iter().any(|i| i.iface.has_ip_addr(a))
    }

    /// Registers `m` to be maintained after every poll.
    pub fn maintain(&mut self, m: Weak<dyn Maintain>) {
        self.maintained.push(m);
    }

    /// A connection its owner closed: the stack forgets it once it is closed.
    pub fn orphan(&mut self, at: (usize, SocketHandle)) {
        self.orphans.push(at);
    }

    /// Polls every interface until nothing moves (or [`POLL_ROUNDS`]), looks after the
    /// listeners and orphans, and sets `netd`'s next deadline.
    fn poll(&mut self) {
        let t = now();
        for i in 0..self.ifs.len() {
            for _ in 0..POLL_ROUNDS {
                if !self.ifs[i].poll_once(t) {
                    break;
                }
                self.run_maintenance();
            }
        }
        self.run_maintenance();
        self.orphans.retain(|&(i, h)| {
            let s = self.ifs[i].sockets.get::<smoltcp::socket::tcp::Socket>(h);
            if s.state() == smoltcp::socket::tcp::State::Closed {
                self.ifs[i].sockets.remove(h);
                false
            } else {
                true
            }
        });
        let mut next = u64::MAX;
        for nif in &mut self.ifs {
            if let Some(at) = nif.iface.poll_at(t, &nif.sockets) {
                next = next.min(at.total_micros().max(0) as u64 * 1000);
            }
        }
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
                v6: i.iface
                    .ip_addrs()
                    .iter()
                    .filter_map(|c| match c.address() {
                        IpAddress::Ipv6(a) => Some((a, c.prefix_len())),
                        IpAddress::Ipv4(_) => None,
                    })
                    .collect(),
            })
            .collect()
    })
}
