//! The interface ioctls every socket takes (Linux's dev_ioctl): SIOCGIFCONF and the
//! SIOCGIF* queries of one interface by name (struct ifreq), read-only.

use alloc::vec::Vec;

use super::stack::{interfaces, IfInfo};
use super::AF_INET;
use crate::errno::*;
use crate::task;

const SIOCGIFNAME: u64 = 0x8910;
const SIOCGIFCONF: u64 = 0x8912;
const SIOCGIFFLAGS: u64 = 0x8913;
const SIOCGIFADDR: u64 = 0x8915;
const SIOCGIFBRDADDR: u64 = 0x8919;
const SIOCGIFNETMASK: u64 = 0x891b;
const SIOCGIFMTU: u64 = 0x8921;
const SIOCGIFHWADDR: u64 = 0x8927;
const SIOCGIFINDEX: u64 = 0x8933;

/// sizeof(struct ifreq), sizeof(struct ifconf); IFNAMSIZ.
const IFREQ: usize = 40;
const IFCONF: usize = 16;
const IFNAMSIZ: usize = 16;
/// ARPHRD_ETHER, ARPHRD_LOOPBACK.
const ARPHRD_ETHER: u16 = 1;
const ARPHRD_LOOPBACK: u16 = 772;

/// Whether `cmd` is one of these.
pub fn handles(cmd: u64) -> bool {
    matches!(cmd, SIOCGIFNAME | SIOCGIFCONF | SIOCGIFFLAGS | SIOCGIFADDR | SIOCGIFBRDADDR | SIOCGIFNETMASK | SIOCGIFMTU | SIOCGIFHWADDR | SIOCGIFINDEX)
}

/// A sockaddr_in of `a` (port 0), as the 16 bytes of an ifreq's union.
fn sin(a: [u8; 4]) -> [u8; 16] {
    let mut s = [0u8; 16];
    s[0..2].copy_from_slice(&AF_INET.to_le_bytes());
    s[4..8].copy_from_slice(&a);
    s
}

fn netmask(prefix: u8) -> [u8; 4] {
    (u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)).to_be_bytes()
}

pub fn ioctl(cmd: u64, arg: u64) -> KResult<u64> {
    let ifs = interfaces();
    if cmd == SIOCGIFCONF {
        let mut conf = [0u8; IFCONF];
        task::copy_from_user(&mut conf, arg)?;
        let len = i32::from_le_bytes(conf[0..4].try_into().expect("4 bytes"));
        let buf = u64::from_le_bytes(conf[8..16].try_into().expect("8 bytes"));
        // One entry per interface with an IPv4 address.
        let entries: Vec<[u8; IFREQ]> = ifs
            .iter()
            .filter_map(|i| {
                let (a, _) = i.v4?;
                let mut r = [0u8; IFREQ];
                r[..i.name.len()].copy_from_slice(i.name.as_bytes());
                r[IFNAMSIZ..IFNAMSIZ + 16].copy_from_slice(&sin(a.octets()));
                Some(r)
            })
            .collect();
        let n = if buf == 0 {
            entries.len() * IFREQ
        } else {
            let fit = (len.max(0) as usize / IFREQ).min(entries.len());
            for (k, e) in entries.iter().take(fit).enumerate() {
                task::copy_to_user(buf + (k * IFREQ) as u64, e)?;
            }
            fit * IFREQ
        };
        task::write_user(arg, &(n as i32))?;
        return Ok(0);
    }
    let mut req = [0u8; IFREQ];
    task::copy_from_user(&mut req, arg)?;
    if cmd == SIOCGIFNAME {
        let index = u32::from_le_bytes(req[IFNAMSIZ..IFNAMSIZ + 4].try_into().expect("4 bytes"));
        let i = ifs.iter().find(|i| i.index == index).ok_or(ENODEV)?;
        let mut name = [0u8; IFNAMSIZ];
        name[..i.name.len()].copy_from_slice(i.name.as_bytes());
        return task::copy_to_user(arg, &name).map(|()| 0);
    }
    let name_len = req[..IFNAMSIZ].iter().position(|&b| b == 0).unwrap_or(IFNAMSIZ);
    let name = &req[..name_len];
    let i: &IfInfo = ifs.iter().find(|i| i.name.as_bytes() == name).ok_or(ENODEV)?;
    let mut out = [0u8; 16];
    match cmd {
        SIOCGIFFLAGS => out[0..2].copy_from_slice(&(i.flags() as u16).to_le_bytes()),
        SIOCGIFINDEX => out[0..4].copy_from_slice(&i.index.to_le_bytes()),
        SIOCGIFMTU => out[0..4].copy_from_slice(&(i.mtu as u32).to_le_bytes()),
        SIOCGIFADDR => out = sin(i.v4.ok_or(EADDRNOTAVAIL)?.0.octets()),
        SIOCGIFNETMASK => out = sin(netmask(i.v4.ok_or(EADDRNOTAVAIL)?.1)),
        SIOCGIFBRDADDR => {
            let (a, p) = i.v4.ok_or(EADDRNOTAVAIL)?;
            // lo has none (Linux reports 0.0.0.0).
            let b = if i.loopback { [0; 4] } else { (u32::from(a) | !u32::from_be_bytes(netmask(p))).to_be_bytes() };
            out = sin(b);
        }
        SIOCGIFHWADDR => {
            let family = if i.loopback { ARPHRD_LOOPBACK } else { ARPHRD_ETHER };
            out[0..2].copy_from_slice(&family.to_le_bytes());
            out[2..8].copy_from_slice(&i.mac);
        }
        _ => return Err(ENOTTY),
    }
    task::copy_to_user(arg + IFNAMSIZ as u64, &out).map(|()| 0)
}
