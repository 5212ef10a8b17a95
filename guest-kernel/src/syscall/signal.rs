//! Signal syscalls. Dispositions and masks are kept; delivery uses default actions (see
//! `task::signal`).

use core::sync::atomic::Ordering;

use super::Ctx;
use crate::errno::*;
use crate::task::signal::{self, SigAction, SIGKILL, SIGSTOP};
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
    // A process group: every live process in it (none: -ESRCH).
    let group = |pgid: u32| {
        let members: alloc::vec::Vec<_> = task::all_processes()
            .into_iter()
            .filter(|p| p.pgid.load(Ordering::Relaxed) == pgid && p.zombie.lock().is_none())
            .collect();
        for p in &members {
            signal::send(p, sig);
        }
        if members.is_empty() { Err(ESRCH) } else { Ok(0) }
    };
    let target = match pid {
        0 => return group(me.pgid.load(Ordering::Relaxed)),
        p if p < -1 => return group(p.unsigned_abs()),
        -1 => {
            // Every process but init and the caller.
            for p in task::all_processes() {
                if p.pid != 1 && p.pid != me.pid {
                    signal::send(&p, sig);
                }
            }
            return Ok(0);
        }
        p => task::find_process(p as u32),
    };
    let target = target.filter(|p| p.zombie.lock().is_none()).ok_or(ESRCH)?;
    signal::send(&target, sig);
    Ok(0)
}

pub fn tgkill(c: &mut Ctx) -> KResult<u64> {
    let (tgid, tid, sig) = (c.int(0), c.int(1), signal::check(c.a[2])?);
    if tgid <= 0 || tid <= 0 {
        return Err(EINVAL);
    }
    let t = task::find_task(tid as u32).filter(|t| t.process.pid == tgid as u32).ok_or(ESRCH)?;
    signal::send_thread(&t, sig);
    Ok(0)
}

pub fn tkill(c: &mut Ctx) -> KResult<u64> {
    let (tid, sig) = (c.int(0), signal::check(c.a[1])?);
    if tid <= 0 {
        return Err(EINVAL);
    }
    let t = task::find_task(tid as u32).ok_or(ESRCH)?;
    signal::send_thread(&t, sig);
    Ok(0)
}
