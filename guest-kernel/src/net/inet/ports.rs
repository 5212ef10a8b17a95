//! Local ports: who holds each (protocol, port), with Linux's bind conflict rules
//! (inet_csk_bind_conflict, udp_lib_lport_inuse) and its ephemeral range.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use smoltcp::wire::IpAddress;

use super::SockAddr;
use crate::errno::*;
use crate::sync::SpinLock;

/// net.ipv4.ip_local_port_range's default.
const EPHEMERAL: core::ops::RangeInclusive<u16> = 32768..=60999;

/// A socket's hold on a port.
#[derive(Clone, Copy)]
pub struct Binding {
    pub id: u64,
    /// The local address (unspecified: every address).
    pub addr: IpAddress,
    /// An AF_INET6 socket without IPV6_V6ONLY: its wildcard covers IPv4 too.
    pub v6: bool,
    pub reuseaddr: bool,
    pub reuseport: bool,
    pub listening: bool,
}

impl Binding {
    /// Whether the two bindings can receive for the same address.
    fn overlaps(&self, o: &Binding) -> bool {
        // A wildcard covers its own family's addresses, and a dual-stack IPv6 one IPv4's.
        let v4 = |a: IpAddress| matches!(a, IpAddress::Ipv4(_));
        let covers = |w: &Binding, x: &Binding| w.addr.is_unspecified() && (v4(w.addr) == v4(x.addr) || (w.v6 && v4(x.addr)));
        self.addr == o.addr || covers(self, o) || covers(o, self)
    }
}

static PORTS: SpinLock<BTreeMap<(u8, u16), Vec<Binding>>> = SpinLock::new(BTreeMap::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static NEXT_EPHEMERAL: AtomicU64 = AtomicU64::new(0);

/// A socket's identity in the table.
pub fn new_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

fn conflicts(tcp: bool, held: &[Binding], b: &Binding) -> bool {
    held.iter().any(|o| {
        // Both SO_REUSEPORT share; both SO_REUSEADDR share unless the other is a TCP
        // listener (Linux's inet_csk_bind_conflict).
        let reuseport = o.reuseport && b.reuseport;
        let reuseaddr = o.reuseaddr && b.reuseaddr && !(tcp && o.listening);
        o.id != b.id && o.overlaps(b) && !reuseport && !reuseaddr
    })
}

/// Takes `at.port` (0: a free ephemeral port) for `b`; the port.
pub fn bind(proto: u8, tcp: bool, at: SockAddr, mut b: Binding) -> KResult<u16> {
    b.addr = at.addr;
    let mut ports = PORTS.lock();
    if at.port != 0 {
        let held = ports.entry((proto, at.port)).or_default();
        if conflicts(tcp, held, &b) {
            return Err(EADDRINUSE);
        }
        held.push(b);
        return Ok(at.port);
    }
    let span = u64::from(EPHEMERAL.end() - EPHEMERAL.start()) + 1;
    let start = NEXT_EPHEMERAL.fetch_add(1, Ordering::Relaxed);
    for i in 0..span {
        let port = EPHEMERAL.start() + ((start + i) % span) as u16;
        let held = ports.entry((proto, port)).or_default();
        if held.is_empty() {
            held.push(b);
            return Ok(port);
        }
    }
    Err(EADDRINUSE)
}

/// A TCP socket starts listening: EADDRINUSE if another listens where it would.
pub fn listen(proto: u8, port: u16, id: u64) -> KResult<()> {
    let mut ports = PORTS.lock();
    let Some(held) = ports.get_mut(&(proto, port)) else { return Ok(()) };
    let Some(me) = held.iter().find(|b| b.id == id).copied() else { return Ok(()) };
    let mut want = me;
    want.listening = true;
    if conflicts(true, held, &want) {
        return Err(EADDRINUSE);
    }
    held.iter_mut().filter(|b| b.id == id).for_each(|b| b.listening = true);
    Ok(())
}

/// Gives the port back.
pub fn release(proto: u8, port: u16, id: u64) {
    let mut ports = PORTS.lock();
    if let Some(held) = ports.get_mut(&(proto, port)) {
        held.retain(|b| b.id != id);
        if held.is_empty() {
            ports.remove(&(proto, port));
        }
    }
}

/// Starts the ephemeral search somewhere random (at boot).
pub fn seed(r: u64) {
    NEXT_EPHEMERAL.store(r, Ordering::Relaxed);
}
