//! Pending signals and their `siginfo` (Linux's `struct sigpending` with its queue of
//! `struct sigqueue`).
//!
//! A process has one queue (signals sent to it with kill, sigqueue, timers) and each
//! thread one (tgkill, rt_tgsigqueueinfo). A standard signal (1-31) is pending at most
//! once: a second one sent meanwhile is merged into the first, whose siginfo stays. A
//! real-time signal (32-64) queues one entry per send, up to [`MAX_QUEUED_RT`] per queue;
//! past that, sigqueue fails with EAGAIN and kill still marks the signal pending, without
//! its siginfo (Linux: "a silent loss of information").

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use super::signal::bit;
use crate::errno::{KResult, EAGAIN};
use crate::sync::SpinLock;

/// The first real-time signal (the kernel's SIGRTMIN; C libraries keep 32-33 for
/// themselves and call 34 SIGRTMIN).
pub const SIGRTMIN: u32 = 32;
/// Real-time entries one queue holds (Linux bounds them per user by RLIMIT_SIGPENDING).
pub const MAX_QUEUED_RT: usize = 4096;

// si_code values (asm-generic/siginfo.h).
pub const SI_USER: i32 = 0;
pub const SI_KERNEL: i32 = 0x80;
pub const SI_TIMER: i32 = -2;
pub const SI_SIGIO: i32 = -5;
pub const SI_TKILL: i32 = -6;

const SIGILL: u32 = 4;
const SIGTRAP: u32 = 5;
const SIGBUS: u32 = 7;
const SIGFPE: u32 = 8;
const SIGSEGV: u32 = 11;
const SIGCHLD: u32 = 17;
const SIGPOLL: u32 = 29;
const SIGSYS: u32 = 31;

/// One signal's siginfo: Linux's `kernel_siginfo`, the first 48 bytes of `siginfo_t`
/// (the rest of the 128 is zero).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SigInfo {
    pub signo: u32,
    pub errno: i32,
    pub code: i32,
    /// The union at offset 16, as little-endian words: for kill and sigqueue, pid (low
    /// half) and uid (high half), then the sigval; for SIGCHLD, pid and uid, status,
    /// utime, stime.
    pub fields: [u64; 4],
}

/// Which union member a siginfo uses (Linux's `siginfo_layout`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Layout {
    Kill,
    Timer,
    Poll,
    Fault,
    Chld,
    Rt,
    Sys,
}

impl SigInfo {
    /// Sent by a process (kill: SI_USER; tgkill: SI_TKILL) with its pid and uid.
    pub fn user(signo: u32, code: i32, pid: u32, uid: u32) -> Self {
        Self { signo, errno: 0, code, fields: [u64::from(pid) | (u64::from(uid) << 32), 0, 0, 0] }
    }

    /// Sent by the kernel itself (Linux's SEND_SIG_PRIV: itimers).
    pub fn kernel(signo: u32) -> Self {
        Self { signo, errno: 0, code: SI_KERNEL, fields: [0; 4] }
    }

    /// SIGCHLD for a child that ended: `code` is CLD_EXITED, CLD_KILLED or CLD_DUMPED;
    /// the CPU times in clock ticks.
    pub fn child(pid: u32, uid: u32, code: i32, status: i32, (utime, stime): (u64, u64)) -> Self {
        let mut info = Self::user(SIGCHLD, code, pid, uid);
        info.fields[1] = u64::from(status as u32);
        info.fields[2] = utime;
        info.fields[3] = stime;
        info
    }

    /// What rt_sigqueueinfo copied from the user (the first 48 bytes of a `siginfo_t`),
    /// sent as `signo` (the copied si_signo is replaced, as Linux does).
    pub fn from_user(signo: u32, raw: &[u64; 6]) -> Self {
        Self { signo, errno: (raw[0] >> 32) as i32, code: raw[1] as i32, fields: [raw[2], raw[3], raw[4], raw[5]] }
    }

    fn low(&self, i: usize) -> u32 {
        self.fields[i] as u32
    }

    fn high(&self, i: usize) -> u32 {
        (self.fields[i] >> 32) as u32
    }

    fn layout(&self) -> Layout {
        let (sig, code) = (self.signo, self.code);
        if code > SI_USER && code < SI_KERNEL {
            match sig {
                SIGILL | SIGFPE | SIGSEGV | SIGBUS | SIGTRAP => Layout::Fault,
                SIGCHLD if code <= 6 => Layout::Chld,
                SIGPOLL if code <= 6 => Layout::Poll,
                SIGSYS if code <= 2 => Layout::Sys,
                _ if code <= 6 => Layout::Poll,
                _ => Layout::Kill,
            }
        } else {
            match code {
                SI_TIMER => Layout::Timer,
                SI_SIGIO => Layout::Poll,
                c if c < 0 => Layout::Rt,
                _ => Layout::Kill,
            }
        }
    }

    /// The `siginfo_t` (128 bytes) user space sees: in a handler's frame, from
    /// rt_sigtimedwait.
    pub fn to_siginfo(self) -> [u8; 128] {
        let mut out = [0u8; 128];
        out[0..4].copy_from_slice(&self.signo.to_le_bytes());
        out[4..8].copy_from_slice(&self.errno.to_le_bytes());
        out[8..12].copy_from_slice(&self.code.to_le_bytes());
        for (i, w) in self.fields.iter().enumerate() {
            out[16 + i * 8..24 + i * 8].copy_from_slice(&w.to_le_bytes());
        }
        out
    }

    /// The `struct signalfd_siginfo` (128 bytes) a signalfd read returns: the fields of
    /// the siginfo's layout, as Linux's signalfd_copyinfo picks them.
    pub fn to_signalfd(self) -> [u8; 128] {
        let mut out = [0u8; 128];
        let mut put32 = |off: usize, v: u32| out[off..off + 4].copy_from_slice(&v.to_le_bytes());
        put32(0, self.signo);
        put32(4, self.errno as u32);
        put32(8, self.code as u32);
        let (mut ptr, mut utime, mut stime, mut addr, mut call_addr) = (None, None, None, None, None);
        match self.layout() {
            Layout::Kill => {
                put32(12, self.low(0)); // ssi_pid
                put32(16, self.high(0)); // ssi_uid
            }
            Layout::Timer => {
                put32(24, self.low(0)); // ssi_tid
                put32(32, self.high(0)); // ssi_overrun
                put32(44, self.low(1)); // ssi_int
                ptr = Some(self.fields[1]);
            }
            Layout::Poll => {
                put32(28, self.low(0)); // ssi_band
                put32(20, self.low(1)); // ssi_fd
            }
            Layout::Fault => addr = Some(self.fields[0]),
            Layout::Chld => {
                put32(12, self.low(0));
                put32(16, self.high(0));
                put32(40, self.low(1)); // ssi_status
                utime = Some(self.fields[2]);
                stime = Some(self.fields[3]);
            }
            Layout::Rt => {
                put32(12, self.low(0));
                put32(16, self.high(0));
                put32(44, self.low(1));
                ptr = Some(self.fields[1]);
            }
            Layout::Sys => {
                call_addr = Some(self.fields[0]);
                put32(84, self.low(1)); // ssi_syscall
                put32(96, self.high(1)); // ssi_arch
            }
        }
        for (off, v) in [(48, ptr), (56, utime), (64, stime), (72, addr), (88, call_addr)] {
            if let Some(v) = v {
                out[off..off + 8].copy_from_slice(&v.to_le_bytes());
            }
        }
        out
    }
}

/// A set of pending signals with their siginfo.
pub struct SigQueue {
    /// The pending signals: read without the lock on every return to user mode; changed
    /// only under `infos`' lock.
    set: AtomicU64,
    /// One entry per pending standard signal, one per instance of a real-time one
    /// (fewer after an overflow: `take` then makes up an SI_USER one).
    infos: SpinLock<Vec<SigInfo>>,
}

impl Default for SigQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl SigQueue {
    pub const fn new() -> Self {
        Self { set: AtomicU64::new(0), infos: SpinLock::new(Vec::new()) }
    }

    /// The pending signals.
    pub fn set(&self) -> u64 {
        self.set.load(Ordering::Relaxed)
    }

    /// Queues `info`. A standard signal already pending is merged (nothing changes).
    /// `must_queue` (sigqueue, timers): a real-time signal that finds the queue full is
    /// refused with EAGAIN instead of being marked pending without its siginfo.
    pub fn push(&self, info: SigInfo, must_queue: bool) -> KResult<()> {
        let sig = info.signo;
        let mut infos = self.infos.lock();
        if sig < SIGRTMIN && self.set() & bit(sig) != 0 {
            return Ok(());
        }
        let full = sig >= SIGRTMIN && infos.iter().filter(|i| i.signo >= SIGRTMIN).count() >= MAX_QUEUED_RT;
        if full && must_queue {
            return Err(EAGAIN);
        }
        if !full && infos.try_reserve(1).is_ok() {
            infos.push(info);
        }
        self.set.fetch_or(bit(sig), Ordering::Relaxed);
        Ok(())
    }

    /// Takes the lowest pending signal in `allowed`, with its siginfo (the oldest one for
    /// a real-time signal, which stays pending while more are queued).
    pub fn take(&self, allowed: u64) -> Option<SigInfo> {
        let mut infos = self.infos.lock();
        let avail = self.set() & allowed;
        if avail == 0 {
            return None;
        }
        let sig = avail.trailing_zeros() + 1;
        let info = match infos.iter().position(|i| i.signo == sig) {
            Some(at) => infos.remove(at),
            None => SigInfo::user(sig, SI_USER, 0, 0),
        };
        if !infos.iter().any(|i| i.signo == sig) {
            self.set.fetch_and(!bit(sig), Ordering::Relaxed);
        }
        Some(info)
    }

    /// Drops every pending signal in `sigs` (a disposition changed to "ignore").
    pub fn discard(&self, sigs: u64) {
        let mut infos = self.infos.lock();
        infos.retain(|i| bit(i.signo) & sigs == 0);
        self.set.fetch_and(!sigs, Ordering::Relaxed);
    }
}
