//! Waiting for children (Linux's kernel/exit.c `do_wait`): what wait4, waitid and
//! io_uring's WAITID share: exits, and with WSTOPPED (WUNTRACED) and WCONTINUED the
//! stops and continues of job control, each reported once.

use alloc::sync::Arc;
use core::sync::atomic::Ordering;

use super::{release_process, Pid, Process};
use crate::errno::*;

pub const WNOHANG: u32 = 1;
pub const WSTOPPED: u32 = 2;
pub const WEXITED: u32 = 4;
pub const WCONTINUED: u32 = 8;
pub const WNOWAIT: u32 = 0x0100_0000;
pub const WNOTHREAD: u32 = 0x2000_0000;
pub const WALL: u32 = 0x4000_0000;
pub const WCLONE: u32 = 0x8000_0000;

pub const P_ALL: u32 = 0;
pub const P_PID: u32 = 1;
pub const P_PGID: u32 = 2;
pub const P_PIDFD: u32 = 3;

/// siginfo's si_code for SIGCHLD.
pub const CLD_EXITED: i32 = 1;
pub const CLD_KILLED: i32 = 2;
pub const CLD_DUMPED: i32 = 3;
pub const CLD_STOPPED: i32 = 5;
pub const CLD_CONTINUED: i32 = 6;

/// Which children a wait is for.
#[derive(Clone, Copy, Debug)]
pub enum Which {
    All,
    Pid(Pid),
    Pgid(Pid),
}

/// A decoded wait (Linux's `struct wait_opts`).
#[derive(Clone, Copy, Debug)]
pub struct WaitOpts {
    pub which: Which,
    pub options: u32,
    /// A nonblocking pidfd made the wait WNOHANG: finding nothing is EAGAIN.
    pub eagain: bool,
}

/// A child's state change, as waitid reports it (Linux's `struct waitid_info`).
#[derive(Clone, Copy, Debug, Default)]
pub struct ChildInfo {
    pub pid: Pid,
    pub uid: u32,
    /// CLD_EXITED, CLD_KILLED or CLD_DUMPED.
    pub code: i32,
    /// Exit code or signal number.
    pub status: i32,
    /// The wait status (wait4's).
    pub wstatus: i32,
    /// CPU time used (ns), for the rusage wait4 and waitid fill in.
    pub cpu_ns: u64,
}

/// Linux's kernel_waitid_prepare: checks options and the id type; a P_PIDFD id must be a
/// pidfd (EBADF), and names its process's pid.
pub fn waitid_prepare(which: u32, upid: i32, options: u32) -> KResult<WaitOpts> {
    if options & !(WNOHANG | WNOWAIT | WEXITED | WSTOPPED | WCONTINUED | WNOTHREAD | WCLONE | WALL) != 0 {
        return Err(EINVAL);
    }
    if options & (WEXITED | WSTOPPED | WCONTINUED) == 0 {
        return Err(EINVAL);
    }
    let (mut options, mut eagain) = (options, false);
    let which = match which {
        P_ALL => Which::All,
        P_PID if upid <= 0 => return Err(EINVAL),
        P_PID => Which::Pid(upid as Pid),
        P_PGID if upid < 0 => return Err(EINVAL),
        P_PGID if upid == 0 => Which::Pgid(super::current_process().pgid.load(Ordering::Relaxed)),
        P_PGID => Which::Pgid(upid as Pid),
        P_PIDFD if upid < 0 => return Err(EINVAL),
        P_PIDFD => {
            let file = crate::syscall::fs::file(upid).map_err(|_| EBADF)?;
            // A nonblocking pidfd makes the wait WNOHANG (Linux's pidfd_get_pid).
            if file.nonblock() && options & WNOHANG == 0 {
                options |= WNOHANG;
                eagain = true;
            }
            Which::Pid(crate::fs::pidfd::process_of(&file).ok_or(EBADF)?.pid)
        }
        _ => return Err(EINVAL),
    };
    Ok(WaitOpts { which, options, eagain })
}

/// wait4's pid argument as a wait (Linux's kernel_wait4): < -1 a process group, -1 any
/// child, 0 the caller's group, > 0 one child.
pub fn wait4_opts(pid: i32, options: u32) -> KResult<WaitOpts> {
    if pid == i32::MIN {
        return Err(ESRCH);
    }
    let which = match pid {
        -1 => Which::All,
        p if p < 0 => Which::Pgid(p.unsigned_abs()),
        0 => Which::Pgid(super::current_process().pgid.load(Ordering::Relaxed)),
        p => Which::Pid(p as Pid),
    };
    Ok(WaitOpts { which, options: options | WEXITED, eagain: false })
}

impl WaitOpts {
    /// Linux's eligible_child: the id matches, and a "clone" child (one that does not
    /// signal SIGCHLD at exit) is waited for with __WCLONE, the others without; __WALL
    /// waits for both.
    fn eligible(&self, child: &Process) -> bool {
        let id = match self.which {
            Which::All => true,
            Which::Pid(p) => child.pid == p,
            Which::Pgid(g) => child.pgid.load(Ordering::Relaxed) == g,
        };
        let clone_child = child.exit_signal.load(Ordering::Relaxed) != super::signal::SIGCHLD;
        id && (clone_child == (self.options & WCLONE != 0) || self.options & WALL != 0)
    }
}

/// One look at `parent`'s children (Linux's __do_wait without the sleep): a child that
/// exited is reported (and reaped unless WNOWAIT); Ok(None) if an eligible child may
/// still change state; -ECHILD if none can.
pub fn try_wait(parent: &Arc<Process>, wo: &WaitOpts) -> KResult<Option<ChildInfo>> {
    let mut may_change = false;
    let found = {
        let children = parent.children.lock();
        let mut found = None;
        for child in children.iter().filter(|c| wo.eligible(c)) {
            match *child.zombie.lock() {
                // A zombie only reports to WEXITED; it never stops or continues.
                Some(status) if wo.options & WEXITED != 0 => {
                    found = Some((Arc::clone(child), status));
                    break;
                }
                Some(_) => {}
                None => {
                    may_change = true;
                    if let Some(info) = job_change(child, wo.options) {
                        return Ok(Some(info));
                    }
                }
            }
        }
        found
    };
    let Some((child, status)) = found else {
        return if may_change { Ok(None) } else { Err(ECHILD) };
    };
    if wo.options & WNOWAIT == 0 {
        parent.children.lock().retain(|c| !Arc::ptr_eq(c, &child));
        // Its CPU time, and its reaped children's, now count for the parent's children.
        let cpu = child.cpu_ns.load(Ordering::Relaxed) + child.attrs.reaped_cpu_ns.load(Ordering::Relaxed);
        parent.attrs.reaped_cpu_ns.fetch_add(cpu, Ordering::Relaxed);
        release_process(child.pid);
    }
    let (code, st) = cld_code(status);
    let cpu_ns = child.cpu_ns.load(Ordering::Relaxed) + child.attrs.reaped_cpu_ns.load(Ordering::Relaxed);
    Ok(Some(ChildInfo { pid: child.pid, uid: 0, code, status: st, wstatus: status, cpu_ns }))
}

/// A stop (WSTOPPED/WUNTRACED) or continue (WCONTINUED) of a living child not yet
/// reported, reported now (and marked so, unless WNOWAIT).
fn job_change(child: &Process, options: u32) -> Option<ChildInfo> {
    let a = &child.attrs;
    let cpu_ns = child.cpu_ns.load(Ordering::Relaxed);
    let keep = options & WNOWAIT != 0;
    let sig = a.stop_signal.load(Ordering::Relaxed);
    if options & WSTOPPED != 0 && sig != 0 && a.stop_unreported.load(Ordering::Relaxed) {
        a.stop_unreported.store(keep, Ordering::Relaxed);
        return Some(ChildInfo { pid: child.pid, uid: 0, code: CLD_STOPPED, status: sig as i32, wstatus: (sig as i32) << 8 | 0x7f, cpu_ns });
    }
    if options & WCONTINUED != 0 && a.continue_unreported.load(Ordering::Relaxed) {
        a.continue_unreported.store(keep, Ordering::Relaxed);
        return Some(ChildInfo { pid: child.pid, uid: 0, code: CLD_CONTINUED, status: super::signal::SIGCONT as i32, wstatus: 0xffff, cpu_ns });
    }
    None
}

/// A wait status as SIGCHLD's si_code and si_status.
fn cld_code(status: i32) -> (i32, i32) {
    if status & 0x7f == 0 {
        (CLD_EXITED, (status >> 8) & 0xff)
    } else {
        (if status & 0x80 != 0 { CLD_DUMPED } else { CLD_KILLED }, status & 0x7f)
    }
}

/// The siginfo of the SIGCHLD a child `pid` that ended with wait status `status`
/// after `cpu_ns` of CPU time sends. Its times are in clock ticks (USER_HZ, 100 a
/// second); user and system time are not told apart, so all of it counts as user time.
pub fn child_info(pid: Pid, status: i32, cpu_ns: u64) -> super::sigqueue::SigInfo {
    const NS_PER_TICK: u64 = 10_000_000;
    let (code, st) = cld_code(status);
    super::sigqueue::SigInfo::child(pid, 0, code, st, (cpu_ns / NS_PER_TICK, 0))
}

/// Waits for a child of the current process (Linux's do_wait): Ok(None) only with
/// WNOHANG; -EINTR when a signal comes first.
pub fn do_wait(wo: &WaitOpts) -> KResult<Option<ChildInfo>> {
    let me = super::current_process();
    let mut result = Ok(None);
    let waited = me.child_exited.wait_until(None, || {
        result = try_wait(&me, wo);
        !matches!(result, Ok(None)) || wo.options & WNOHANG != 0
    });
    if waited.is_err() {
        return Err(EINTR);
    }
    result
}

/// Writes waitid's part of a siginfo_t (Linux writes these fields, not the rest):
/// si_signo, si_errno, si_code, then si_pid, si_uid, si_status.
pub fn write_info(infop: u64, signo: i32, info: &ChildInfo) -> KResult<()> {
    if infop.checked_add(128).is_none_or(|end| end > crate::mm::USER_END) {
        return Err(EFAULT);
    }
    super::write_user(infop, &[signo, 0, info.code])?;
    super::write_user(infop + 16, &[info.pid as i32, info.uid as i32, info.status])
}
