//! Credentials (Linux's `struct cred`, kernel/cred.c and security/commoncap.c): a task's
//! user and group ids (real, effective, saved, file-system), its supplementary groups
//! and its capability sets. Credentials are per thread, as Linux's (libc makes setuid
//! act on every thread); a task's are immutable and replaced whole, so a reader takes an
//! `Arc` and never sees a half-made change. io_uring requests with a personality, and
//! requests punted to io-wq, carry their submitter's and are issued under them
//! (`override_with`, Linux's override_creds).
//!
//! A capability is checked in the effective set only (no user namespaces, no LSMs).

use alloc::sync::Arc;
use alloc::vec::Vec;

use super::sched;

// Capabilities this kernel checks (linux/capability.h numbers).
pub const CAP_CHOWN: u32 = 0;
pub const CAP_DAC_OVERRIDE: u32 = 1;
pub const CAP_DAC_READ_SEARCH: u32 = 2;
pub const CAP_FOWNER: u32 = 3;
pub const CAP_FSETID: u32 = 4;
pub const CAP_KILL: u32 = 5;
pub const CAP_SETGID: u32 = 6;
pub const CAP_SETUID: u32 = 7;
pub const CAP_SETPCAP: u32 = 8;
pub const CAP_LINUX_IMMUTABLE: u32 = 9;
pub const CAP_IPC_LOCK: u32 = 14;
pub const CAP_SYS_ADMIN: u32 = 21;
pub const CAP_SYS_NICE: u32 = 23;
pub const CAP_SYS_RESOURCE: u32 = 24;
pub const CAP_MKNOD: u32 = 27;
pub const CAP_MAC_OVERRIDE: u32 = 32;
/// The highest capability (CAP_CHECKPOINT_RESTORE, Linux 5.9+).
pub const CAP_LAST_CAP: u32 = 40;
/// Every capability.
pub const CAP_FULL: u64 = (1 << (CAP_LAST_CAP + 1)) - 1;
/// What fsuid 0 has always meant (Linux's CAP_FS_SET): dropped from the effective set
/// when the fsuid leaves 0 and raised again (if permitted) when it returns.
const CAP_FS_SET: u64 = bit(CAP_CHOWN)
    | bit(CAP_MKNOD)
    | bit(CAP_DAC_OVERRIDE)
    | bit(CAP_DAC_READ_SEARCH)
    | bit(CAP_FOWNER)
    | bit(CAP_FSETID)
    | bit(CAP_LINUX_IMMUTABLE)
    | bit(CAP_MAC_OVERRIDE);

pub const fn bit(cap: u32) -> u64 {
    1 << cap
}

/// Linux's NGROUPS_MAX.
pub const NGROUPS_MAX: usize = 65536;

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Cred {
    pub uid: u32,
    pub gid: u32,
    pub euid: u32,
    pub egid: u32,
    pub suid: u32,
    pub sgid: u32,
    pub fsuid: u32,
    pub fsgid: u32,
    /// Supplementary groups, sorted.
    pub groups: Vec<u32>,
    pub cap_effective: u64,
    pub cap_permitted: u64,
    pub cap_inheritable: u64,
    pub cap_bset: u64,
    /// SECBIT_KEEP_CAPS (PR_SET_KEEPCAPS): keep the permitted set when every uid leaves 0.
    pub keep_caps: bool,
}

impl Cred {
    /// init's: uid and gid 0, no groups, every capability.
    pub fn root() -> Arc<Cred> {
        Arc::new(Cred {
            uid: 0,
            gid: 0,
            euid: 0,
            egid: 0,
            suid: 0,
            sgid: 0,
            fsuid: 0,
            fsgid: 0,
            groups: Vec::new(),
            cap_effective: CAP_FULL,
            cap_permitted: CAP_FULL,
            cap_inheritable: 0,
            cap_bset: CAP_FULL,
            keep_caps: false,
        })
    }

    pub fn capable(&self, cap: u32) -> bool {
        self.cap_effective & bit(cap) != 0
    }

    /// Whether the fsgid or a supplementary group is `gid` (Linux's in_group_p).
    pub fn in_group(&self, gid: u32) -> bool {
        self.fsgid == gid || self.groups.binary_search(&gid).is_ok()
    }

    /// The capability changes that follow a change of uids (commoncap's
    /// cap_emulate_setxuid): when real, effective and saved uid all leave 0 the
    /// permitted and effective sets are emptied (unless keep_caps); when only the euid
    /// leaves 0 the effective set is; when the euid comes back to 0 it gets the
    /// permitted set. The fsuid follows the euid, and its own rule applies.
    pub fn fix_setuid(&mut self, old: &Cred) {
        let was_root = old.uid == 0 || old.euid == 0 || old.suid == 0;
        let now_root = self.uid == 0 || self.euid == 0 || self.suid == 0;
        if was_root && !now_root && !self.keep_caps {
            self.cap_permitted = 0;
            self.cap_effective = 0;
        }
        if old.euid == 0 && self.euid != 0 {
            self.cap_effective = 0;
        }
        if old.euid != 0 && self.euid == 0 {
            self.cap_effective = self.cap_permitted;
        }
        self.fix_setfsuid(old.fsuid);
    }

    /// setfsuid's rule: leaving fsuid 0 drops the file-system capabilities from the
    /// effective set; returning raises those still permitted.
    pub fn fix_setfsuid(&mut self, old_fsuid: u32) {
        if old_fsuid == 0 && self.fsuid != 0 {
            self.cap_effective &= !CAP_FS_SET;
        }
        if old_fsuid != 0 && self.fsuid == 0 {
            self.cap_effective |= self.cap_permitted & CAP_FS_SET;
        }
    }

    /// execve's (commoncap's cap_bprm_creds_from_file for a file without file
    /// capabilities): a set-user-ID or set-group-ID file (`setid`: its uid and gid where
    /// the bit is set) gives its ids as the effective ones; a root euid or uid gets the
    /// bounding and inheritable sets as permitted, and a root euid all of them effective;
    /// anyone else ends with none. The saved and file-system ids become the effective
    /// ones; keep_caps is cleared.
    pub fn exec(&mut self, setuid: Option<u32>, setgid: Option<u32>) {
        if let Some(uid) = setuid {
            self.euid = uid;
        }
        if let Some(gid) = setgid {
            self.egid = gid;
        }
        if self.euid == 0 || self.uid == 0 {
            self.cap_permitted = self.cap_bset | self.cap_inheritable;
        } else {
            self.cap_permitted = 0;
        }
        self.cap_effective = if self.euid == 0 { self.cap_permitted } else { 0 };
        self.suid = self.euid;
        self.fsuid = self.euid;
        self.sgid = self.egid;
        self.fsgid = self.egid;
        self.keep_caps = false;
    }

    /// Whether this is a privilege-changing exec: AT_SECURE (Linux: the ids differ, or
    /// capabilities were gained over the real uid's).
    pub fn secure_exec(&self, before: &Cred) -> bool {
        self.euid != self.uid || self.egid != self.gid || (self.uid != 0 && self.cap_permitted & !before.cap_permitted != 0)
    }
}

/// The calling task's credentials (the overriding ones while an io_uring request runs
/// under its personality); root's while the kernel boots, before any task runs.
pub fn current() -> Arc<Cred> {
    sched::try_current().map_or_else(Cred::root, |t| t.cred.lock().clone())
}

/// Whether the calling task has capability `cap` in its effective set.
pub fn capable(cap: u32) -> bool {
    sched::try_current().is_none_or(|t| t.cred.lock().capable(cap))
}

/// Replaces the calling task's credentials (setuid and friends, capset, exec).
pub fn commit(new: Cred) {
    *sched::current().cred.lock() = Arc::new(new);
}

/// Runs `f` under `cred` (an io_uring request's), then restores the task's own.
pub fn override_with<R>(cred: Option<&Arc<Cred>>, f: impl FnOnce() -> R) -> R {
    let Some(cred) = cred else { return f() };
    let me = sched::current();
    let own = core::mem::replace(&mut *me.cred.lock(), Arc::clone(cred));
    let r = f();
    *me.cred.lock() = own;
    r
}
