//! AF_INET and AF_INET6 (Linux's net/ipv4 and net/ipv6 socket layers) over smoltcp.
//!
//! - `stack`: the interfaces (`lo`, and `eth0` on a virtio-net device) and their smoltcp
//!   socket sets, polled under one lock, with a kernel thread for timers and interrupts.
//! - `tcp`, `udp`: the sockets, each a [`Socket`](super::Socket) over one or more smoltcp
//!   sockets (one per interface it may use: a listener on the wildcard address listens on
//!   every interface).
//! - `ports`: who holds which local port (bind's EADDRINUSE, ephemeral ports).
//!
//! An AF_INET6 socket speaks IPv4 too, through v4-mapped addresses (::ffff:a.b.c.d), as
//! on Linux without IPV6_V6ONLY.

pub mod ifconf;
pub mod ports;
pub mod stack;
pub mod tcp;
pub mod udp;

use alloc::vec::Vec;

use smoltcp::wire::{IpAddress, IpEndpoint, Ipv4Address, Ipv6Address};

use crate::errno::*;

pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;

pub const IPPROTO_IP: i32 = 0;
pub const IPPROTO_TCP: i32 = 6;
pub const IPPROTO_UDP: i32 = 17;
pub const IPPROTO_IPV6: i32 = 41;

/// IP-level options (IPPROTO_IP, IPPROTO_IPV6) the sockets take.
pub const IP_TOS: i32 = 1;
pub const IP_TTL: i32 = 2;
/// UDP: each datagram comes with an IP_PKTINFO message (struct in_pktinfo).
pub const IP_PKTINFO: i32 = 8;
pub const IPV6_V6ONLY: i32 = 26;
/// UDP: each datagram comes with an IPV6_PKTINFO message (struct in6_pktinfo).
pub const IPV6_RECVPKTINFO: i32 = 49;
pub const IPV6_PKTINFO: i32 = 50;

/// sizeof(struct sockaddr_in), sizeof(struct sockaddr_in6), and the RFC 2133 size
/// Linux still takes (without sin6_scope_id).
const SIN_LEN: usize = 16;
const SIN6_LEN: usize = 28;
const SIN6_LEN_RFC2133: usize = 24;

/// A socket address: an IP address (unspecified: the wildcard) and a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SockAddr {
    pub addr: IpAddress,
    pub port: u16,
}

impl SockAddr {
    pub fn any(family: u16) -> Self {
        let addr = if family == AF_INET6 { IpAddress::Ipv6(Ipv6Address::UNSPECIFIED) } else { IpAddress::Ipv4(Ipv4Address::UNSPECIFIED) };
        Self { addr, port: 0 }
    }

    pub fn endpoint(&self) -> IpEndpoint {
        IpEndpoint::new(self.addr, self.port)
    }

    pub fn is_any(&self) -> bool {
        self.addr.is_unspecified()
    }
}

impl From<IpEndpoint> for SockAddr {
    fn from(e: IpEndpoint) -> Self {
        Self { addr: e.addr, port: e.port }
    }
}

/// An IPv6 address as IPv4 when it is v4-mapped (::ffff:a.b.c.d), else as it is; the
/// unspecified address stays IPv6 (it is the wildcard of both).
/// The ifindex of the interface holding our IPv6 link-local address (eth0's; 0: none):
/// a link-local sockaddr names it in sin6_scope_id (lo has no link-local address).
pub static LINK_SCOPE: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

fn link_local(a: IpAddress) -> bool {
    matches!(a, IpAddress::Ipv6(v6) if v6.is_unicast_link_local())
}

fn unmap(a: Ipv6Address) -> IpAddress {
    match a.to_ipv4_mapped() {
        Some(v4) => IpAddress::Ipv4(v4),
        None => IpAddress::Ipv6(a),
    }
}

/// Parses a sockaddr for a socket of `family`, with Linux's checks: too short is
/// EINVAL, another family EAFNOSUPPORT. AF_UNSPEC comes back as None (connect's
/// "dissolve the association"; bind's INADDR_ANY for AF_INET).
pub fn parse_addr(family: u16, raw: &[u8]) -> KResult<Option<SockAddr>> {
    let min = if family == AF_INET6 { SIN6_LEN_RFC2133 } else { SIN_LEN };
    if raw.len() >= 2 && u16::from_le_bytes([raw[0], raw[1]]) == super::AF_UNSPEC {
        return Ok(None);
    }
    if raw.len() < min {
        return Err(EINVAL);
    }
    let fam = u16::from_le_bytes([raw[0], raw[1]]);
    if fam != family {
        return Err(EAFNOSUPPORT);
    }
    let port = u16::from_be_bytes([raw[2], raw[3]]);
    let addr = if family == AF_INET6 {
        let mut a = [0u8; 16];
        a.copy_from_slice(&raw[8..24]);
        unmap(Ipv6Address::from(a))
    } else {
        IpAddress::Ipv4(Ipv4Address::new(raw[4], raw[5], raw[6], raw[7]))
    };
    // A link-local address means nothing without its interface (sin6_scope_id): Linux's
    // EINVAL without one, ENODEV for an interface that has no such address.
    if link_local(addr) {
        let scope = raw.get(24..28).map_or(0, |s| u32::from_le_bytes(s.try_into().expect("4 bytes")));
        if scope == 0 {
            return Err(EINVAL);
        }
        if scope != LINK_SCOPE.load(core::sync::atomic::Ordering::Relaxed) {
            return Err(ENODEV);
        }
    }
    Ok(Some(SockAddr { addr, port }))
}

/// The address bind() asks for: `raw` parsed (Linux takes AF_UNSPEC with INADDR_ANY as
/// the wildcard, for AF_INET only), EADDRNOTAVAIL unless it is one of ours.
pub fn bind_addr(family: u16, raw: &[u8], stack: &stack::Stack) -> KResult<SockAddr> {
    let at = match parse_addr(family, raw)? {
        Some(a) => a,
        None if family != AF_INET6 && raw.len() >= 8 && raw[4..8] == [0; 4] => SockAddr { port: u16::from_be_bytes([raw[2], raw[3]]), ..SockAddr::any(family) },
        None => return Err(EAFNOSUPPORT),
    };
    if !stack.is_local(at.addr) {
        return Err(EADDRNOTAVAIL);
    }
    Ok(at)
}

/// A sockaddr of `family` for `a` (an IPv4 address v4-mapped for AF_INET6).
pub fn format_addr(family: u16, a: SockAddr) -> Vec<u8> {
    let mut raw = alloc::vec![0u8; if family == AF_INET6 { SIN6_LEN } else { SIN_LEN }];
    raw[0..2].copy_from_slice(&family.to_le_bytes());
    raw[2..4].copy_from_slice(&a.port.to_be_bytes());
    match (family, a.addr) {
        (AF_INET6, IpAddress::Ipv6(v6)) => {
            raw[8..24].copy_from_slice(&v6.octets());
            if link_local(a.addr) {
                raw[24..28].copy_from_slice(&LINK_SCOPE.load(core::sync::atomic::Ordering::Relaxed).to_le_bytes());
            }
        }
        (AF_INET6, IpAddress::Ipv4(v4)) if v4.is_unspecified() => {}
        (AF_INET6, IpAddress::Ipv4(v4)) => raw[8..24].copy_from_slice(&v4.to_ipv6_mapped().octets()),
        (_, IpAddress::Ipv4(v4)) => raw[4..8].copy_from_slice(&v4.octets()),
        (_, IpAddress::Ipv6(_)) => {}
    }
    raw
}

/// Whether `a` is a loopback address (127.0.0.0/8, ::1).
pub fn is_loopback(a: IpAddress) -> bool {
    match a {
        IpAddress::Ipv4(v4) => v4.is_loopback(),
        IpAddress::Ipv6(v6) => v6.is_loopback(),
    }
}
