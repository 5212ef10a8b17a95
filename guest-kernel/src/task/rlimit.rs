//! Resource limits (Linux's `struct rlimit` per process, kernel/sys.c's do_prlimit):
//! kept per process, inherited at fork and kept across exec. Enforced: RLIMIT_NOFILE
//! (the descriptor table), RLIMIT_MEMLOCK (io_uring's registered buffers), RLIMIT_FSIZE
//! (writes and truncation past it get SIGXFSZ and EFBIG), RLIMIT_CPU (SIGXCPU at the
//! soft limit and every second after, SIGKILL at the hard one, through the CPU timers'
//! check in `itimer`) and RLIMIT_NICE (how far setpriority may lower nice). The others
//! are kept and reported as set, without an effect here (the kernel has no core dumps,
//! fixed-size stacks, no resident-set or address-space accounting per process).

use crate::sync::SpinLock;

pub const RLIMIT_CPU: usize = 0;
pub const RLIMIT_FSIZE: usize = 1;
pub const RLIMIT_STACK: usize = 3;
pub const RLIMIT_CORE: usize = 4;
pub const RLIMIT_NPROC: usize = 6;
pub const RLIMIT_NOFILE: usize = 7;
pub const RLIMIT_MEMLOCK: usize = 8;
pub const RLIMIT_SIGPENDING: usize = 11;
pub const RLIMIT_MSGQUEUE: usize = 12;
pub const RLIMIT_NICE: usize = 13;
pub const RLIM_NLIMITS: usize = 16;
pub const RLIM_INFINITY: u64 = u64::MAX;

/// A process's limits, (soft, hard) each.
pub struct Rlimits(SpinLock<[[u64; 2]; RLIM_NLIMITS]>);

impl Rlimits {
    /// init's (Linux's INIT_RLIMITS where they mean something here).
    pub fn new() -> Self {
        let mut l = [[RLIM_INFINITY; 2]; RLIM_NLIMITS];
        l[RLIMIT_STACK] = [8 << 20, RLIM_INFINITY];
        l[RLIMIT_CORE] = [0, RLIM_INFINITY];
        l[RLIMIT_NPROC] = [4096, 4096];
        l[RLIMIT_NOFILE] = [crate::fs::file::FD_LIMIT as u64; 2];
        l[RLIMIT_MEMLOCK] = [super::MEMLOCK_DEFAULT; 2];
        l[RLIMIT_SIGPENDING] = [4096, 4096];
        l[RLIMIT_MSGQUEUE] = [819_200, 819_200];
        l[RLIMIT_NICE] = [0, 0];
        l[14] = [0, 0]; // RLIMIT_RTPRIO
        Self(SpinLock::new(l))
    }

    pub fn get(&self, resource: usize) -> [u64; 2] {
        self.0.lock()[resource]
    }

    pub fn set(&self, resource: usize, value: [u64; 2]) {
        self.0.lock()[resource] = value;
    }

    /// A forked child's: a copy.
    pub fn copy_from(&self, parent: &Rlimits) {
        *self.0.lock() = *parent.0.lock();
    }
}

impl Default for Rlimits {
    fn default() -> Self {
        Self::new()
    }
}

/// RLIMIT_FSIZE for a regular file grown to `end` bytes by the current process: past the
/// soft limit it gets SIGXFSZ and EFBIG; returns how many bytes from `start` may be
/// written (`end - start` when within the limit).
pub fn fsize_allows(start: u64, end: u64) -> crate::errno::KResult<u64> {
    let Some(me) = super::sched::try_current() else { return Ok(end - start) };
    let limit = me.process.rlimits.get(RLIMIT_FSIZE)[0];
    if end <= limit {
        return Ok(end - start);
    }
    if start >= limit {
        super::signal::send(&me.process, super::signal::SIGXFSZ);
        return Err(crate::errno::EFBIG);
    }
    Ok(limit - start)
}
