//! Scheduling: nice values (getpriority, setpriority), policies and their parameters
//! (sched_setscheduler, sched_getscheduler, sched_setparam, sched_getparam,
//! sched_get_priority_max/min, sched_rr_get_interval).
//!
//! The scheduler is round robin with a time slice weighted by nice, as Linux's CFS
//! weights are (`task::attrs`); SCHED_OTHER, SCHED_BATCH and SCHED_IDLE all share it.
//! The real-time policies (FIFO, RR) are not implemented: asking for one is EPERM, the
//! answer Linux gives a caller not allowed them.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::Ordering::Relaxed;

use super::Ctx;
use crate::errno::*;
use crate::task::{self, cred, sched, Task};

const PRIO_PROCESS: u64 = 0;
const PRIO_PGRP: u64 = 1;
const PRIO_USER: u64 = 2;

const SCHED_OTHER: u32 = 0;
const SCHED_FIFO: u32 = 1;
const SCHED_RR: u32 = 2;
const SCHED_BATCH: u32 = 3;
const SCHED_IDLE: u32 = 5;
const SCHED_DEADLINE: u32 = 6;
/// Or'ed into a policy: new tasks start without it, with a nice value of at least 0.
pub const SCHED_RESET_ON_FORK: u32 = 0x4000_0000;

/// The threads `which`/`who` names (PRIO_PROCESS: a thread id; PRIO_PGRP: a process
/// group; PRIO_USER: those whose real uid is `who`); 0 is the caller's.
fn targets(which: u64, who: u32) -> KResult<Vec<Arc<Task>>> {
    let me = sched::current();
    Ok(match which {
        PRIO_PROCESS if who == 0 => alloc::vec![me],
        PRIO_PROCESS => task::find_task(who).into_iter().collect(),
        PRIO_PGRP => {
            let pgid = if who == 0 { me.process.pgid.load(Relaxed) } else { who };
            task::all_processes().iter().filter(|p| p.pgid.load(Relaxed) == pgid).flat_map(|p| p.threads()).collect()
        }
        PRIO_USER => {
            let uid = if who == 0 { me.cred.lock().uid } else { who };
            task::all_processes().iter().flat_map(|p| p.threads()).filter(|t| t.cred.lock().uid == uid).collect()
        }
        _ => return Err(EINVAL),
    })
}

/// getpriority: the highest priority of the targets, as `20 - nice` (1..=40; the C
/// library turns it back into a nice value).
pub fn getpriority(c: &mut Ctx) -> KResult<u64> {
    let tasks = targets(c.a[0], c.a[1] as u32)?;
    let best = tasks.iter().map(|t| 20 - t.attrs.nice.load(Relaxed)).max().ok_or(ESRCH)?;
    Ok(best as u64)
}

/// setpriority: the targets' nice value, clamped to -20..=19.
pub fn setpriority(c: &mut Ctx) -> KResult<u64> {
    let tasks = targets(c.a[0], c.a[1] as u32)?;
    if tasks.is_empty() {
        return Err(ESRCH);
    }
    let nice = c.int(2).clamp(-20, 19);
    // Linux's set_one_prio: another user's thread needs CAP_SYS_NICE (EPERM), and so
    // does a lower nice value than the thread has, beyond what RLIMIT_NICE allows
    // (20 - nice at most; EACCES).
    let me = cred::current();
    let privileged = me.capable(cred::CAP_SYS_NICE);
    let mut result = Ok(0);
    for t in tasks {
        let target = t.cred.lock().clone();
        if !privileged && target.uid != me.euid && target.euid != me.euid {
            result = Err(EPERM);
        } else if !privileged && nice < t.attrs.nice.load(Relaxed) && (20 - nice) as u64 > t.process.rlimits.get(crate::task::rlimit::RLIMIT_NICE)[0] {
            result = Err(EACCES);
        } else {
            t.attrs.nice.store(nice, Relaxed);
        }
    }
    result
}

/// The thread `pid` names (0: the caller); a negative one is EINVAL.
fn thread(pid: i32) -> KResult<Arc<Task>> {
    match pid {
        ..0 => Err(EINVAL),
        0 => Ok(sched::current()),
        tid => task::find_task(tid as u32).ok_or(ESRCH),
    }
}

/// Checks a policy and its priority as Linux does: unknown policies and a priority that
/// does not fit the policy are EINVAL; the real-time ones EPERM (see the module doc).
fn check(policy: u32, priority: u32) -> KResult<()> {
    match policy {
        SCHED_OTHER | SCHED_BATCH | SCHED_IDLE if priority == 0 => Ok(()),
        SCHED_FIFO | SCHED_RR if (1..=99).contains(&priority) => Err(EPERM),
        _ => Err(EINVAL),
    }
}

pub fn sched_setscheduler(c: &mut Ctx) -> KResult<u64> {
    if c.a[2] == 0 || c.int(0) < 0 {
        return Err(EINVAL);
    }
    let priority: u32 = task::read_user(c.a[2])?;
    let t = thread(c.int(0))?;
    let policy = c.a[1] as u32;
    check(policy & !SCHED_RESET_ON_FORK, priority)?;
    t.attrs.policy.store(policy, Relaxed);
    Ok(0)
}

pub fn sched_setparam(c: &mut Ctx) -> KResult<u64> {
    if c.a[1] == 0 || c.int(0) < 0 {
        return Err(EINVAL);
    }
    let priority: u32 = task::read_user(c.a[1])?;
    let t = thread(c.int(0))?;
    check(t.attrs.policy.load(Relaxed) & !SCHED_RESET_ON_FORK, priority).map(|()| 0)
}

pub fn sched_getscheduler(c: &mut Ctx) -> KResult<u64> {
    Ok(u64::from(thread(c.int(0))?.attrs.policy.load(Relaxed)))
}

pub fn sched_getparam(c: &mut Ctx) -> KResult<u64> {
    if c.a[1] == 0 || c.int(0) < 0 {
        return Err(EINVAL);
    }
    thread(c.int(0))?;
    // Every policy here has priority 0.
    task::write_user(c.a[1], &0u32).map(|()| 0)
}

pub fn sched_get_priority_max(c: &mut Ctx) -> KResult<u64> {
    match c.a[0] as u32 {
        SCHED_FIFO | SCHED_RR => Ok(99),
        SCHED_OTHER | SCHED_BATCH | SCHED_IDLE | SCHED_DEADLINE => Ok(0),
        _ => Err(EINVAL),
    }
}

pub fn sched_get_priority_min(c: &mut Ctx) -> KResult<u64> {
    match c.a[0] as u32 {
        SCHED_FIFO | SCHED_RR => Ok(1),
        SCHED_OTHER | SCHED_BATCH | SCHED_IDLE | SCHED_DEADLINE => Ok(0),
        _ => Err(EINVAL),
    }
}

/// sched_rr_get_interval: the thread's time slice.
pub fn sched_rr_get_interval(c: &mut Ctx) -> KResult<u64> {
    let t = thread(c.int(0))?;
    let ns = t.attrs.slice(task::TIME_SLICE_NS);
    task::write_user(c.a[1], &[ns / 1_000_000_000, ns % 1_000_000_000]).map(|()| 0)
}
