//! User and group ids, supplementary groups and capabilities (Linux's kernel/sys.c,
//! kernel/groups.c, kernel/capability.c): the get and set calls, with Linux's rules for
//! who may become whom. A new set of credentials is built from the old one, checked and
//! committed whole (`task::cred`).

use alloc::vec::Vec;

use super::Ctx;
use crate::errno::*;
use crate::task::cred::{self, Cred, CAP_SETGID, CAP_SETPCAP, CAP_SETUID, NGROUPS_MAX};
use crate::task::{self, sched};

/// An id argument: -1 (as u32) leaves the id as it is.
const KEEP: u32 = u32::MAX;

pub fn getuid(_: &mut Ctx) -> KResult<u64> {
    Ok(u64::from(cred::current().uid))
}

pub fn geteuid(_: &mut Ctx) -> KResult<u64> {
    Ok(u64::from(cred::current().euid))
}

pub fn getgid(_: &mut Ctx) -> KResult<u64> {
    Ok(u64::from(cred::current().gid))
}

pub fn getegid(_: &mut Ctx) -> KResult<u64> {
    Ok(u64::from(cred::current().egid))
}

/// Which of the two id families a call changes: the cred's fields and the capability
/// that lets anyone become anything.
#[derive(Clone, Copy, PartialEq)]
enum Ids {
    User,
    Group,
}

impl Ids {
    fn cap(self) -> u32 {
        match self {
            Ids::User => CAP_SETUID,
            Ids::Group => CAP_SETGID,
        }
    }

    /// Real, effective, saved and file-system id.
    fn get(self, c: &Cred) -> [u32; 4] {
        match self {
            Ids::User => [c.uid, c.euid, c.suid, c.fsuid],
            Ids::Group => [c.gid, c.egid, c.sgid, c.fsgid],
        }
    }

    fn set(self, c: &mut Cred, [r, e, s, fs]: [u32; 4]) {
        match self {
            Ids::User => (c.uid, c.euid, c.suid, c.fsuid) = (r, e, s, fs),
            Ids::Group => (c.gid, c.egid, c.sgid, c.fsgid) = (r, e, s, fs),
        }
    }

    /// Commits `new` ids, with the capability changes a change of uids brings.
    fn commit(self, old: &Cred, ids: [u32; 4]) {
        let mut new = old.clone();
        self.set(&mut new, ids);
        if self == Ids::User {
            new.fix_setuid(old);
        }
        cred::commit(new);
    }
}

/// setuid/setgid: with the capability all of real, effective, saved and fs id; without,
/// the effective (and fs) id only, and only to the real or saved one.
fn set_id(ids: Ids, id: u32) -> KResult<u64> {
    if id == KEEP {
        return Err(EINVAL);
    }
    let old = cred::current();
    let [r, _, s, _] = ids.get(&old);
    let new = if old.capable(ids.cap()) {
        [id, id, id, id]
    } else if id == r || id == s {
        [r, id, s, id]
    } else {
        return Err(EPERM);
    };
    ids.commit(&old, new);
    Ok(0)
}

/// setreuid/setregid: the real id may become the real or effective one, the effective id
/// the real, effective or saved one; the saved id follows the effective id when the real
/// one is set or the effective one set to other than the old real id.
fn set_re(ids: Ids, r: u32, e: u32) -> KResult<u64> {
    let old = cred::current();
    let [or, oe, os, _] = ids.get(&old);
    let privileged = old.capable(ids.cap());
    if r != KEEP && !privileged && r != or && r != oe {
        return Err(EPERM);
    }
    if e != KEEP && !privileged && e != or && e != oe && e != os {
        return Err(EPERM);
    }
    let nr = if r == KEEP { or } else { r };
    let ne = if e == KEEP { oe } else { e };
    let ns = if r != KEEP || (e != KEEP && e != or) { ne } else { os };
    ids.commit(&old, [nr, ne, ns, ne]);
    Ok(0)
}

/// setresuid/setresgid: each id given must be one of the three old ones unless the
/// caller has the capability; the fs id follows the effective one.
fn set_res(ids: Ids, new: [u32; 3]) -> KResult<u64> {
    let old = cred::current();
    let [or, oe, os, _] = ids.get(&old);
    if !old.capable(ids.cap()) && new.iter().any(|&id| id != KEEP && id != or && id != oe && id != os) {
        return Err(EPERM);
    }
    let pick = |id: u32, was: u32| if id == KEEP { was } else { id };
    let e = pick(new[1], oe);
    ids.commit(&old, [pick(new[0], or), e, pick(new[2], os), e]);
    Ok(0)
}

/// setfsuid/setfsgid: always the old fs id; changed to one of the real, effective, saved
/// or current fs ids, or to anything with the capability.
fn set_fs(ids: Ids, id: u32) -> KResult<u64> {
    let old = cred::current();
    let [r, e, s, fs] = ids.get(&old);
    if id != KEEP && id != fs && ([r, e, s].contains(&id) || old.capable(ids.cap())) {
        let mut new = (*old).clone();
        ids.set(&mut new, [r, e, s, id]);
        if ids == Ids::User {
            new.fix_setfsuid(fs);
        }
        cred::commit(new);
    }
    Ok(u64::from(fs))
}

fn get_res(ids: Ids, c: &Ctx) -> KResult<u64> {
    let [r, e, s, _] = ids.get(&cred::current());
    for (addr, id) in [(c.a[0], r), (c.a[1], e), (c.a[2], s)] {
        task::write_user(addr, &id)?;
    }
    Ok(0)
}

pub fn setuid(c: &mut Ctx) -> KResult<u64> {
    set_id(Ids::User, c.a[0] as u32)
}

pub fn setgid(c: &mut Ctx) -> KResult<u64> {
    set_id(Ids::Group, c.a[0] as u32)
}

pub fn setreuid(c: &mut Ctx) -> KResult<u64> {
    set_re(Ids::User, c.a[0] as u32, c.a[1] as u32)
}

pub fn setregid(c: &mut Ctx) -> KResult<u64> {
    set_re(Ids::Group, c.a[0] as u32, c.a[1] as u32)
}

pub fn setresuid(c: &mut Ctx) -> KResult<u64> {
    set_res(Ids::User, [c.a[0] as u32, c.a[1] as u32, c.a[2] as u32])
}

pub fn setresgid(c: &mut Ctx) -> KResult<u64> {
    set_res(Ids::Group, [c.a[0] as u32, c.a[1] as u32, c.a[2] as u32])
}

pub fn getresuid(c: &mut Ctx) -> KResult<u64> {
    get_res(Ids::User, c)
}

pub fn getresgid(c: &mut Ctx) -> KResult<u64> {
    get_res(Ids::Group, c)
}

pub fn setfsuid(c: &mut Ctx) -> KResult<u64> {
    set_fs(Ids::User, c.a[0] as u32)
}

pub fn setfsgid(c: &mut Ctx) -> KResult<u64> {
    set_fs(Ids::Group, c.a[0] as u32)
}

/// `getgroups(size, list)`: the number of supplementary groups; with a size, also the
/// groups (EINVAL when they do not fit).
pub fn getgroups(c: &mut Ctx) -> KResult<u64> {
    let size = c.int(0);
    if size < 0 {
        return Err(EINVAL);
    }
    let me = cred::current();
    if size != 0 {
        if me.groups.len() > size as usize {
            return Err(EINVAL);
        }
        for (i, g) in me.groups.iter().enumerate() {
            task::write_user(c.a[1] + 4 * i as u64, g)?;
        }
    }
    Ok(me.groups.len() as u64)
}

/// `setgroups(size, list)`: needs CAP_SETGID; at most NGROUPS_MAX groups.
pub fn setgroups(c: &mut Ctx) -> KResult<u64> {
    let old = cred::current();
    if !old.capable(CAP_SETGID) {
        return Err(EPERM);
    }
    let size = c.a[0] as u32 as usize;
    if size > NGROUPS_MAX {
        return Err(EINVAL);
    }
    let mut groups = Vec::new();
    groups.try_reserve_exact(size).map_err(|_| ENOMEM)?;
    for i in 0..size {
        groups.push(task::read_user::<u32>(c.a[1] + 4 * i as u64)?);
    }
    groups.sort_unstable();
    let mut new = (*old).clone();
    new.groups = groups;
    cred::commit(new);
    Ok(0)
}

// --- capget, capset ---

const VERSION_1: u32 = 0x1998_0330;
const VERSION_2: u32 = 0x2007_1026;
const VERSION_3: u32 = 0x2008_0522;

/// One 32-bit slice of the three sets (`struct __user_cap_data_struct`).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

// SAFETY: three u32s, no padding; any bit pattern is valid.
unsafe impl crate::mm::uaccess::Pod for CapData {}

/// The header's version: how many `CapData` follow (1 for version 1, 2 after). An
/// unknown version is answered with version 3 written back, and EINVAL.
fn cap_version(hdr: u64) -> KResult<usize> {
    match task::read_user::<u32>(hdr)? {
        VERSION_1 => Ok(1),
        VERSION_2 | VERSION_3 => Ok(2),
        _ => {
            task::write_user(hdr, &VERSION_3)?;
            Err(EINVAL)
        }
    }
}

/// `capget(hdr, data)`: the sets of thread `hdr.pid` (0: the caller). With no data
/// pointer it only checks the version (the way libcap asks which one the kernel wants).
pub fn capget(c: &mut Ctx) -> KResult<u64> {
    let (hdr, data) = (c.a[0], c.a[1]);
    let words = match cap_version(hdr) {
        Err(EINVAL) if data == 0 => return Ok(0),
        Err(e) => return Err(e),
        Ok(_) if data == 0 => return Ok(0),
        Ok(n) => n,
    };
    let pid = task::read_user::<i32>(hdr + 4)?;
    if pid < 0 {
        return Err(EINVAL);
    }
    let cred = match pid {
        0 => cred::current(),
        tid => task::find_task(tid as u32).ok_or(ESRCH)?.cred.lock().clone(),
    };
    for i in 0..words {
        let slice = |set: u64| (set >> (32 * i)) as u32;
        let d = CapData { effective: slice(cred.cap_effective), permitted: slice(cred.cap_permitted), inheritable: slice(cred.cap_inheritable) };
        task::write_user(data + (i * core::mem::size_of::<CapData>()) as u64, &d)?;
    }
    Ok(0)
}

/// `capset(hdr, data)`: the caller's own sets only (EPERM for another thread). The
/// permitted set may only shrink, the effective set stays within it, and the
/// inheritable set within the bounding set and (without CAP_SETPCAP) the old
/// inheritable and permitted sets.
pub fn capset(c: &mut Ctx) -> KResult<u64> {
    let (hdr, data) = (c.a[0], c.a[1]);
    let words = cap_version(hdr)?;
    let pid = task::read_user::<i32>(hdr + 4)?;
    if pid != 0 && pid as u32 != sched::current().tid {
        return Err(EPERM);
    }
    let (mut e, mut p, mut i) = (0u64, 0u64, 0u64);
    for w in 0..words {
        let d: CapData = task::read_user(data + (w * core::mem::size_of::<CapData>()) as u64)?;
        e |= u64::from(d.effective) << (32 * w);
        p |= u64::from(d.permitted) << (32 * w);
        i |= u64::from(d.inheritable) << (32 * w);
    }
    let (e, p, i) = (e & cred::CAP_FULL, p & cred::CAP_FULL, i & cred::CAP_FULL);
    let old = cred::current();
    let subset = |a: u64, b: u64| a & !b == 0;
    if !old.capable(CAP_SETPCAP) && !subset(i, old.cap_inheritable | old.cap_permitted) {
        return Err(EPERM);
    }
    if !subset(i, old.cap_inheritable | old.cap_bset) || !subset(p, old.cap_permitted) || !subset(e, p) {
        return Err(EPERM);
    }
    let mut new = (*old).clone();
    (new.cap_effective, new.cap_permitted, new.cap_inheritable) = (e, p, i);
    cred::commit(new);
    Ok(0)
}
