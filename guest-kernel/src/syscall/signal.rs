//! Signal syscalls: dispositions, masks, sending (kill, tgkill, sigqueue), and waiting
//! (sigsuspend, sigtimedwait). Delivery is in `task::signal`, pending signals and their
//! siginfo in `task::sigqueue`.

use core::sync::atomic::Ordering;

use super::Ctx;
use crate::errno::*;
use crate::task::signal::{self, SigAction, SigInfo, SIGKILL, SIGSTOP, SI_TKILL};
use crate::task::wait::{WaitError, WaitQueue};
use crate::task::{self, current_process, sched};

pub fn rt_sigaction(c: &mut Ctx) -> KResult<u64> {
    let (sig, act, oact, size) = (c.a[0], c.a[1], c.a[2], c.a[3]);
    if size != 8 || sig == 0 || sig > u64::from(signal::NSIG) {
        return Err(EINVAL);
    }
    let sig = sig as u32;
    if act != 0 && (sig == SIGKILL || sig == SIGSTOP) {
        return Err(EINVAL);
    }
    let new: Option<SigAction> = if act != 0 { Some(task::read_user(act)?) } else { None };
    let p = current_process();
    let old = p.sigactions.lock()[sig as usize - 1];
    if oact != 0 {
        task::write_user(oact, &old)?;
    }
    if let Some(mut new) = new {
        new.mask &= !signal::UNBLOCKABLE;
        p.sigactions.lock()[sig as usize - 1] = new;
        // An ignored signal is no longer pending anywhere in the process (POSIX; Linux's
        // do_sigaction).
        if signal::action_ignores(sig, &new) {
            p.pending.discard(signal::bit(sig));
            for t in p.threads() {
                t.pending.discard(signal::bit(sig));
            }
        }
    }
    Ok(0)
}

pub fn rt_sigreturn(c: &mut Ctx) -> KResult<u64> {
    signal::sigreturn(c.frame)
}

pub fn rt_sigprocmask(c: &mut Ctx) -> KResult<u64> {
    const SIG_BLOCK: u64 = 0;
    const SIG_UNBLOCK: u64 = 1;
    const SIG_SETMASK: u64 = 2;
    let (how, set, oset, size) = (c.a[0], c.a[1], c.a[2], c.a[3]);
    if size != 8 {
        return Err(EINVAL);
    }
    let me = sched::current();
    let old = me.sigmask.load(Ordering::Relaxed);
    let new = if set != 0 {
        let s: u64 = task::read_user(set)?;
        let unblockable = (1 << (SIGKILL - 1)) | (1 << (SIGSTOP - 1));
        Some(match how {
            SIG_BLOCK => old | s,
            SIG_UNBLOCK => old & !s,
            SIG_SETMASK => s,
            _ => return Err(EINVAL),
        } & !unblockable)
    } else {
        None
    };
    if oset != 0 {
        task::write_user(oset, &old)?;
    }
    if let Some(new) = new {
        me.sigmask.store(new, Ordering::Relaxed);
    }
    Ok(0)
}

/// `stack_t`: (ss_sp, ss_flags, ss_size), 24 bytes.
pub fn sigaltstack(c: &mut Ctx) -> KResult<u64> {
    const SS_DISABLE: u32 = 2;
    const SS_AUTODISARM: u32 = 1 << 31;
    const MINSIGSTKSZ: u64 = 2048;
    let (ss, old) = (c.a[0], c.a[1]);
    let new = if ss != 0 {
        let raw: [u64; 3] = task::read_user(ss)?;
        let flags = raw[1] as u32;
        if flags & !(SS_DISABLE | SS_AUTODISARM) != 0 {
            return Err(EINVAL);
        }
        if flags & SS_DISABLE == 0 && raw[2] < MINSIGSTKSZ {
            return Err(ENOMEM);
        }
        Some(if flags & SS_DISABLE != 0 { [0, u64::from(SS_DISABLE), 0] } else { raw })
    } else {
        None
    };
    let p = current_process();
    let mut stack = p.altstack.lock();
    if old != 0 {
        task::write_user(old, &*stack)?;
    }
    if let Some(new) = new {
        *stack = new;
    }
    Ok(0)
}

pub fn kill(c: &mut Ctx) -> KResult<u64> {
    let (pid, sig) = (c.int(0), signal::check(c.a[1])?);
    let me = current_process();
    let target = match pid {
        0 => return send_group(me.pgid.load(Ordering::Relaxed), sig),
        p if p < -1 => return send_group(p.unsigned_abs(), sig),
        -1 => {
            // Every process but init and the caller: 0 if there was one, even if
            // none could be signalled (Linux).
            let mut any = false;
            for p in task::all_processes() {
                if p.pid != 1 && p.pid != me.pid {
                    any = true;
                    if signal::may_send(&p, None, sig).is_ok() {
                        signal::send(&p, sig);
                    }
                }
            }
            return if any { Ok(0) } else { Err(ESRCH) };
        }
        p => find_target(p as u32),
    };
    // A zombie (not yet reaped) takes the signal and drops it, as on Linux.
    let target = target.ok_or(ESRCH)?;
    signal::may_send(&target, None, sig)?;
    signal::send(&target, sig);
    Ok(0)
}

/// Sends `sig` to every live process in group `pgid`: success if any took it, else the
/// last error (ESRCH for an empty group), as Linux's __kill_pgrp_info.
pub fn send_group(pgid: u32, sig: u32) -> KResult<u64> {
    let mut result = Err(ESRCH);
    for p in task::all_processes().iter().filter(|p| p.pgid.load(Ordering::Relaxed) == pgid && p.zombie.lock().is_none()) {
        match signal::may_send(p, None, sig) {
            Ok(()) => {
                signal::send(p, sig);
                result = Ok(0);
            }
            Err(e) if result.is_err() => result = Err(e),
            Err(_) => {}
        }
    }
    result
}

/// The process a pid names: its own, or that of the thread with that id (never the
/// kernel threads' process).
fn find_target(pid: u32) -> Option<alloc::sync::Arc<task::Process>> {
    let via_thread = || task::find_task(pid).map(|t| alloc::sync::Arc::clone(&t.process));
    task::find_process(pid).or_else(via_thread).filter(|p| p.pid != task::KERNEL_PID)
}

pub fn tgkill(c: &mut Ctx) -> KResult<u64> {
    let (tgid, tid, sig) = (c.int(0), c.int(1), signal::check(c.a[2])?);
    if tgid <= 0 || tid <= 0 {
        return Err(EINVAL);
    }
    let t = task::find_task(tid as u32).filter(|t| t.process.pid == tgid as u32).ok_or(ESRCH)?;
    signal::may_send(&t.process, Some(&t), sig)?;
    signal::send_thread(&t, sig);
    Ok(0)
}

pub fn tkill(c: &mut Ctx) -> KResult<u64> {
    let (tid, sig) = (c.int(0), signal::check(c.a[1])?);
    if tid <= 0 {
        return Err(EINVAL);
    }
    let t = task::find_task(tid as u32).ok_or(ESRCH)?;
    signal::may_send(&t.process, Some(&t), sig)?;
    signal::send_thread(&t, sig);
    Ok(0)
}

/// `rt_sigpending(set, sigsetsize)`: the blocked signals that are pending. As Linux, a
/// smaller set size is allowed (that many bytes are written).
pub fn rt_sigpending(c: &mut Ctx) -> KResult<u64> {
    let (set, size) = (c.a[0], c.a[1]);
    if size > 8 {
        return Err(EINVAL);
    }
    let me = sched::current();
    let pending = signal::pending_for(&me) & me.sigmask.load(Ordering::Relaxed);
    task::copy_to_user(set, &pending.to_le_bytes()[..size as usize]).map(|()| 0)
}

/// `rt_sigsuspend(mask, sigsetsize)`: waits under `mask` until a signal is delivered:
/// -EINTR once a handler has run, and the old mask comes back after it (`with_sigmask`);
/// a signal taken without a handler starts the wait again (`syscall::restart`).
pub fn rt_sigsuspend(c: &mut Ctx) -> KResult<u64> {
    static SUSPENDED: WaitQueue = WaitQueue::new();
    if c.a[1] != 8 {
        return Err(EINVAL);
    }
    let mask: u64 = task::read_user(c.a[0])?;
    signal::with_sigmask(Some(mask), || SUSPENDED.wait_until(None, || false).map_err(|_| EINTR))?;
    Err(EINTR)
}

/// `rt_sigtimedwait(set, info, timeout, sigsetsize)`: takes a pending signal of `set`
/// (waiting up to `timeout`, for ever without one) and returns its number, its siginfo
/// in `info`. -EAGAIN when the time runs out, -EINTR when another signal is delivered.
/// While waiting, the signals of `set` are unblocked so that their arrival wakes the
/// task, and counted as blocked (`real_blocked`) so that ignored ones still queue.
pub fn rt_sigtimedwait(c: &mut Ctx) -> KResult<u64> {
    static WAITING: WaitQueue = WaitQueue::new();
    let (uset, uinfo, uts, size) = (c.a[0], c.a[1], c.a[2], c.a[3]);
    if size != 8 {
        return Err(EINVAL);
    }
    let set = task::read_user::<u64>(uset)? & !signal::UNBLOCKABLE;
    let timeout = if uts != 0 { Some(super::time::read_timespec(uts)?) } else { None };
    let me = sched::current();
    let mut info = signal::dequeue(&me, set);
    if info.is_none() && timeout != Some(0) {
        let deadline = timeout.map(|t| crate::time::monotonic_ns().saturating_add(t));
        let blocked = me.sigmask.load(Ordering::Relaxed);
        me.real_blocked.store(blocked, Ordering::Relaxed);
        me.sigmask.store(blocked & !set, Ordering::Relaxed);
        let waited = WAITING.wait_until(deadline, || signal::pending_for(&me) & set != 0);
        me.sigmask.store(blocked, Ordering::Relaxed);
        me.real_blocked.store(0, Ordering::Relaxed);
        info = signal::dequeue(&me, set);
        if info.is_none() {
            return Err(if waited == Err(WaitError::TimedOut) { EAGAIN } else { EINTR });
        }
    }
    let info = info.ok_or(EAGAIN)?;
    if uinfo != 0 {
        task::copy_to_user(uinfo, &info.to_siginfo())?;
    }
    Ok(u64::from(info.signo))
}

/// The first 48 bytes of a user `siginfo_t` (Linux copies `kernel_siginfo`).
fn read_siginfo(addr: u64) -> KResult<[u64; 6]> {
    task::read_user(addr)
}

/// Linux's rule for queued siginfo: only the sender itself may claim to be kill (si_code
/// >= 0) or tgkill (SI_TKILL).
fn check_forged(raw: &[u64; 6], target: i32, me: u32) -> KResult<()> {
    let code = raw[1] as i32;
    if (code >= 0 || code == SI_TKILL) && target as u32 != me {
        return Err(EPERM);
    }
    Ok(())
}

/// `rt_sigqueueinfo(tgid, sig, info)`: sends `sig` with the caller's siginfo (sigqueue).
pub fn rt_sigqueueinfo(c: &mut Ctx) -> KResult<u64> {
    let (pid, sig, uinfo) = (c.int(0), c.int(1), c.a[2]);
    let raw = read_siginfo(uinfo)?;
    check_forged(&raw, pid, current_process().pid)?;
    // Any thread's id names its process; a zombie takes (and drops) the signal.
    let target = (pid > 0).then(|| find_target(pid as u32)).flatten().ok_or(ESRCH)?;
    let sig = signal::check(sig as u32 as u64)?;
    signal::may_send(&target, None, sig)?;
    if sig == 0 {
        return Ok(0);
    }
    signal::send_info(&target, SigInfo::from_user(sig, &raw), true).map(|()| 0)
}

/// `rt_tgsigqueueinfo(tgid, tid, sig, info)`: the same for one thread.
pub fn rt_tgsigqueueinfo(c: &mut Ctx) -> KResult<u64> {
    let (tgid, tid, sig, uinfo) = (c.int(0), c.int(1), c.int(2), c.a[3]);
    let raw = read_siginfo(uinfo)?;
    if tgid <= 0 || tid <= 0 {
        return Err(EINVAL);
    }
    check_forged(&raw, tid, sched::current().tid)?;
    let t = task::find_task(tid as u32).filter(|t| t.process.pid == tgid as u32).ok_or(ESRCH)?;
    let sig = signal::check(sig as u32 as u64)?;
    signal::may_send(&t.process, Some(&t), sig)?;
    if sig == 0 {
        return Ok(0);
    }
    signal::send_thread_info(&t, SigInfo::from_user(sig, &raw), true).map(|()| 0)
}

// --- signalfd (fs::signalfd) ---

/// `signalfd4(fd, mask, sizemask, flags)`: a new signalfd reading `mask` (fd -1), or a
/// new mask for signalfd `fd`, which is returned.
pub fn signalfd4(c: &mut Ctx) -> KResult<u64> {
    do_signalfd(c.int(0), c.a[1], c.a[2], c.a[3])
}

/// `signalfd(fd, mask, sizemask)`: signalfd4 without flags.
pub fn signalfd(c: &mut Ctx) -> KResult<u64> {
    do_signalfd(c.int(0), c.a[1], c.a[2], 0)
}

fn do_signalfd(fd: i32, umask: u64, size: u64, flags: u64) -> KResult<u64> {
    use crate::fs::file::{O_CLOEXEC, O_NONBLOCK, O_RDWR};
    use crate::fs::signalfd::{self as sfd, SignalFd};
    // Linux's order: the size, the mask's copy, the flags, then the descriptor.
    if size != 8 {
        return Err(EINVAL);
    }
    let mask: u64 = task::read_user(umask)?;
    if flags & !u64::from(O_CLOEXEC | O_NONBLOCK) != 0 {
        return Err(EINVAL);
    }
    if fd == -1 {
        let f = crate::fs::OpenFile::new(sfd::new(mask), O_RDWR | (flags as u32 & O_NONBLOCK), alloc::string::String::from("anon_inode:[signalfd]"));
        return super::fs::install(f, flags & u64::from(O_CLOEXEC) != 0);
    }
    let f = super::fs::file(fd)?;
    f.node.as_any().downcast_ref::<SignalFd>().ok_or(EINVAL)?.set_mask(mask);
    Ok(fd as u32 as u64)
}
