//! Who may do what to a file (Linux's generic_permission in fs/namei.c and the owner
//! rules of fs/attr.c): the mode bits for the owner, the group or others, against the
//! task's fsuid, fsgid and groups, with the capabilities that override them. Every file
//! system here is checked this way, 9p shares included (Linux's `access=client`): the
//! host then applies its own rules to what the VMM asks of it.

use alloc::sync::Arc;

use super::{FileType, Node, Stat};
use crate::errno::*;
use crate::task::cred::{self, Cred, CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER, CAP_FSETID};

pub const MAY_EXEC: u32 = 1;
pub const MAY_WRITE: u32 = 2;
pub const MAY_READ: u32 = 4;

const S_ISUID: u32 = 0o4000;
const S_ISGID: u32 = 0o2000;
const S_ISVTX: u32 = 0o1000;
const S_IXGRP: u32 = 0o010;

/// Whether `cred` may access a file with attributes `st` as `mask` asks (EACCES if not).
pub fn check(cred: &Cred, st: &Stat, mask: u32) -> KResult<()> {
    let class = if cred.fsuid == st.uid {
        st.mode >> 6
    } else if cred.in_group(st.gid) {
        st.mode >> 3
    } else {
        st.mode
    };
    if mask & !class & 7 == 0 {
        return Ok(());
    }
    let dir = st.mode & 0o170000 == 0o040000;
    // Directories: search and read with CAP_DAC_READ_SEARCH, anything with
    // CAP_DAC_OVERRIDE. Files: anything but executing a file nobody may execute with
    // CAP_DAC_OVERRIDE, reading with CAP_DAC_READ_SEARCH.
    let allowed = if dir {
        (mask & MAY_WRITE == 0 && cred.capable(CAP_DAC_READ_SEARCH)) || cred.capable(CAP_DAC_OVERRIDE)
    } else {
        ((mask & MAY_EXEC == 0 || st.mode & 0o111 != 0) && cred.capable(CAP_DAC_OVERRIDE)) || (mask == MAY_READ && cred.capable(CAP_DAC_READ_SEARCH))
    };
    if allowed { Ok(()) } else { Err(EACCES) }
}

/// `check` for the calling task. Where a capability settles it the node's attributes
/// are not fetched (on 9p that would be a round trip).
pub fn permission(node: &dyn Node, mask: u32) -> KResult<()> {
    let cred = cred::current();
    if mask & MAY_EXEC == 0 && cred.capable(CAP_DAC_OVERRIDE) {
        return Ok(());
    }
    check(&cred, &node.stat(), mask)
}

/// What a path walk asks of each directory it passes through: search permission.
/// `cred` is fetched once per walk: `None` when the walker may search anything.
pub fn walker() -> Option<Arc<Cred>> {
    let cred = cred::current();
    if cred.capable(CAP_DAC_READ_SEARCH) || cred.capable(CAP_DAC_OVERRIDE) { None } else { Some(cred) }
}

/// Search permission on directory `dir` for a walker from `walker()`.
pub fn may_search(walker: &Option<Arc<Cred>>, dir: &dyn Node) -> KResult<()> {
    match walker {
        None => Ok(()),
        Some(cred) => check(cred, &dir.stat(), MAY_EXEC),
    }
}

/// Adding an entry to `dir` (create, mkdir, link, symlink, rename's target).
pub fn may_create(dir: &dyn Node) -> KResult<()> {
    permission(dir, MAY_WRITE | MAY_EXEC)
}

/// Removing `victim` from `dir` (unlink, rmdir, rename's source and replaced target):
/// write and search on the directory and, in a sticky directory, owning the file or the
/// directory (or CAP_FOWNER), else EPERM.
pub fn may_delete(dir: &dyn Node, victim: &dyn Node) -> KResult<()> {
    may_create(dir)?;
    let cred = cred::current();
    if cred.capable(CAP_FOWNER) {
        return Ok(());
    }
    let d = dir.stat();
    if d.mode & S_ISVTX != 0 && d.uid != cred.fsuid && victim.stat().uid != cred.fsuid {
        return Err(EPERM);
    }
    Ok(())
}

/// Whether the caller owns the file or has CAP_FOWNER (Linux's inode_owner_or_capable).
pub fn owner_or_capable(st: &Stat) -> bool {
    let cred = cred::current();
    cred.fsuid == st.uid || cred.capable(CAP_FOWNER)
}

/// chmod's rules: the owner (or CAP_FOWNER) only, else EPERM; a caller outside the
/// file's group and without CAP_FSETID cannot set its set-group-ID bit (it is cleared).
/// Returns the mode to store.
pub fn chmod_mode(node: &dyn Node, mode: u32) -> KResult<u32> {
    let st = node.stat();
    if !owner_or_capable(&st) {
        return Err(EPERM);
    }
    let cred = cred::current();
    let mut mode = mode & 0o7777;
    if !cred.in_group(st.gid) && !cred.capable(CAP_FSETID) {
        mode &= !S_ISGID;
    }
    Ok(mode)
}

/// chown's rules (Linux's chown_ok and chgrp_ok): CAP_CHOWN changes anything; the owner
/// may only give the file a group it is in; anyone else gets EPERM. A regular file
/// loses its set-user-ID bit (whoever the caller, root too), and its set-group-ID bit
/// where group execute is set.
pub fn chown(node: &dyn Node, uid: Option<u32>, gid: Option<u32>) -> KResult<()> {
    let st = node.stat();
    let cred = cred::current();
    if !cred.capable(CAP_CHOWN) {
        let uid_ok = uid.is_none_or(|u| u == st.uid && cred.fsuid == st.uid);
        let gid_ok = gid.is_none_or(|g| cred.fsuid == st.uid && (g == st.gid || cred.in_group(g)));
        if !uid_ok || !gid_ok {
            return Err(EPERM);
        }
    }
    node.set_owner(uid, gid)?;
    if node.file_type() != FileType::Directory {
        let mut mode = st.mode & 0o7777;
        let old = mode;
        mode &= !S_ISUID;
        // Without group execute the bit marks mandatory locking: it stays for a caller
        // in the group or with CAP_FSETID (Linux's setattr_should_drop_sgid).
        if mode & S_IXGRP != 0 || !(cred.in_group(st.gid) || cred.capable(CAP_FSETID)) {
            mode &= !S_ISGID;
        }
        if mode != old {
            node.set_mode(mode)?;
        }
    }
    Ok(())
}

/// The mode a regular file keeps when a caller without CAP_FSETID writes or truncates
/// it (Linux's file_remove_privs): without set-user-ID, and without set-group-ID where
/// group execute is set. `None`: nothing to clear.
pub fn mode_after_write(mode: u32) -> Option<u32> {
    let mut kill = mode & S_ISUID;
    if mode & (S_ISGID | S_IXGRP) == S_ISGID | S_IXGRP {
        kill |= S_ISGID;
    }
    if kill == 0 || cred::capable(CAP_FSETID) {
        return None;
    }
    Some(mode & !kill)
}

/// The group of a file created in a directory with attributes `dir`: the directory's
/// when it is set-group-ID (`None`: the creator's fsgid). A new directory there is
/// set-group-ID too (`mode` gains the bit).
pub fn inherit_group(dir: &Stat, kind: FileType, mode: &mut u32) -> Option<u32> {
    if dir.mode & S_ISGID == 0 {
        return None;
    }
    if kind == FileType::Directory {
        *mode |= S_ISGID;
    }
    Some(dir.gid)
}

/// utimensat's rules: explicit times need the owner or CAP_FOWNER (EPERM); setting both
/// to now is also allowed with write permission (EACCES without).
pub fn may_set_times(node: &dyn Node, explicit: bool) -> KResult<()> {
    let st = node.stat();
    if owner_or_capable(&st) {
        return Ok(());
    }
    if explicit {
        return Err(EPERM);
    }
    check(&cred::current(), &st, MAY_WRITE)
}

/// access/faccessat: the check made with the real ids instead of the effective ones
/// (unless AT_EACCESS), and, for a non-root real uid, without capabilities.
pub fn access_cred(effective: bool) -> Cred {
    let mut c = (*cred::current()).clone();
    if !effective {
        c.fsuid = c.uid;
        c.fsgid = c.gid;
        c.cap_effective = if c.uid == 0 { c.cap_permitted } else { 0 };
    }
    c
}
