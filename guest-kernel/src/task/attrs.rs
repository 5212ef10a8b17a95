//! What prctl, setpriority, sched_setscheduler and membarrier record on a thread or a
//! process, and how fork, clone and exec pass it on (as Linux does).

use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed};

use crate::sync::SpinLock;

/// Linux's default timer slack (50 us).
pub const TIMER_SLACK_DEFAULT: u64 = 50_000;

/// A thread's: its name (PR_SET_NAME, 15 bytes and a NUL), nice value (-20..=19),
/// scheduling policy, and timer slack.
pub struct ThreadAttrs {
    comm: SpinLock<[u8; 16]>,
    pub nice: AtomicI32,
    pub policy: AtomicU32,
    pub timer_slack: AtomicU64,
}

impl ThreadAttrs {
    pub fn new(name: &str) -> Self {
        let a = Self { comm: SpinLock::new([0; 16]), nice: AtomicI32::new(0), policy: AtomicU32::new(0), timer_slack: AtomicU64::new(TIMER_SLACK_DEFAULT) };
        a.set_comm(name.as_bytes());
        a
    }

    /// A new thread (clone) or a child's main thread (fork) starts as its creator; when
    /// the creator's policy has SCHED_RESET_ON_FORK, without that flag and not below nice
    /// 0 (Linux's sched_fork; the real-time policies it would also reset are not used).
    pub fn inherit(&self, creator: &ThreadAttrs) {
        const SCHED_RESET_ON_FORK: u32 = 0x4000_0000;
        *self.comm.lock() = creator.comm();
        let (policy, nice) = (creator.policy.load(Relaxed), creator.nice.load(Relaxed));
        let reset = policy & SCHED_RESET_ON_FORK != 0;
        self.nice.store(if reset { nice.max(0) } else { nice }, Relaxed);
        self.policy.store(policy & !SCHED_RESET_ON_FORK, Relaxed);
        self.timer_slack.store(creator.timer_slack.load(Relaxed), Relaxed);
    }

    pub fn comm(&self) -> [u8; 16] {
        *self.comm.lock()
    }

    /// Sets the name: up to its first NUL, at most 15 bytes.
    pub fn set_comm(&self, name: &[u8]) {
        let len = name.iter().position(|&b| b == 0).unwrap_or(name.len()).min(15);
        let mut c = [0u8; 16];
        c[..len].copy_from_slice(&name[..len]);
        *self.comm.lock() = c;
    }

    /// The time slice for a nice value, from Linux's weights (nice 0: 1024, each step
    /// about 1.25 times the next): a CPU-bound task gets CPU in proportion. Kept within
    /// a quarter and 8 times `base`: a slice must stay well above what the timer
    /// interrupt and a switch cost (about a millisecond where ring 0 is emulated), or
    /// the task would never get past the interrupt.
    pub fn slice(&self, base: u64) -> u64 {
        const WEIGHTS: [u64; 40] = [
            88761, 71755, 56483, 46273, 36291, 29154, 23254, 18705, 14949, 11916, 9548, 7620, 6100, 4904, 3906, 3121, 2501, 1991, 1586, 1277, 1024, 820, 655, 526,
            423, 335, 272, 215, 172, 137, 110, 87, 70, 56, 45, 36, 29, 23, 18, 15,
        ];
        let w = WEIGHTS[(self.nice.load(Relaxed).clamp(-20, 19) + 20) as usize];
        (base * w / 1024).clamp(base / 4, base * 8)
    }
}

/// MEMBARRIER_CMD_REGISTER_* bits a process has asked for.
pub const MEMBARRIER_GLOBAL_EXPEDITED: u32 = 1 << 0;
pub const MEMBARRIER_PRIVATE_EXPEDITED: u32 = 1 << 1;
pub const MEMBARRIER_SYNC_CORE: u32 = 1 << 2;

/// A process's: the signal it gets when its parent dies (PR_SET_PDEATHSIG), whether it
/// may dump core, no_new_privs, whether it reaps orphaned descendants
/// (PR_SET_CHILD_SUBREAPER), its membarrier registrations, and the queue its
/// pidfds wait on.
#[derive(Default)]
pub struct ProcessAttrs {
    /// Woken when the process has exited (pidfds poll it).
    pub exited: crate::task::wait::WaitQueue,
    /// CPU time (ns) of the children it has reaped, and of theirs (RUSAGE_CHILDREN).
    pub reaped_cpu_ns: AtomicU64,
    /// Job control: the signal that stopped the process (0: running), whether its parent
    /// has been told of the stop (WUNTRACED) and of a continue (WCONTINUED) yet, and the
    /// queue its stopped threads sleep on.
    pub stop_signal: AtomicU32,
    pub stop_unreported: AtomicBool,
    pub continue_unreported: AtomicBool,
    pub stopped_wait: crate::task::wait::WaitQueue,
    pub pdeath_signal: AtomicU32,
    pub dumpable: AtomicU8,
    pub no_new_privs: AtomicBool,
    pub subreaper: AtomicBool,
    pub membarrier: AtomicU32,
}

impl ProcessAttrs {
    pub fn new() -> Self {
        Self { dumpable: AtomicU8::new(1), ..Self::default() }
    }

    /// A forked child takes its parent's dumpable and no_new_privs; not the
    /// parent-death signal, the subreaper mark nor membarrier registrations.
    pub fn inherit(&self, parent: &ProcessAttrs) {
        self.dumpable.store(parent.dumpable.load(Relaxed), Relaxed);
        self.no_new_privs.store(parent.no_new_privs.load(Relaxed), Relaxed);
    }

    /// execve: the process may dump core again and its membarrier registrations go with
    /// its old memory.
    pub fn exec(&self) {
        self.dumpable.store(1, Relaxed);
        self.membarrier.store(0, Relaxed);
    }
}
