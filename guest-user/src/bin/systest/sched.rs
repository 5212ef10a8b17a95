//! Scheduling: nice values (getpriority, setpriority) and their inheritance, policies
//! and parameters (sched_setscheduler and friends, SCHED_RESET_ON_FORK), and the
//! argument errors. Nothing here needs privilege: raising one's nice value is allowed to
//! everyone, and the real-time policies are left alone.

use ulib::sys::{self, syscall2, syscall3};
use ulib::uapi::*;
use ulib::{check, check_eq, check_err, check_ok, nr};

use crate::util::*;

pub const TESTS: &[Test] = tests![
    priority_starts_at_nice_zero,
    setpriority_raises_nice_and_fork_inherits_it,
    priority_of_a_missing_thread_is_esrch,
    priority_bad_which_is_einval,
    scheduler_starts_as_sched_other,
    setscheduler_to_batch_and_idle,
    reset_on_fork_is_not_inherited,
    scheduler_bad_policy_or_priority_is_einval,
    priority_range_per_policy,
    rr_interval_is_a_time_slice,
];

const PRIO_PROCESS: usize = 0;
const PRIO_PGRP: usize = 1;
const PRIO_USER: usize = 2;
const SCHED_OTHER: usize = 0;
const SCHED_FIFO: usize = 1;
const SCHED_RR: usize = 2;
const SCHED_BATCH: usize = 3;
const SCHED_IDLE: usize = 5;
const SCHED_RESET_ON_FORK: usize = 0x4000_0000;

fn getprio(which: usize, who: usize) -> ulib::errno::Result {
    // SAFETY: no memory is passed.
    sys::ret(unsafe { syscall2(nr::GETPRIORITY, which, who) })
}

fn setprio(which: usize, who: usize, nice: i32) -> ulib::errno::Result {
    // SAFETY: no memory is passed.
    sys::ret(unsafe { syscall3(nr::SETPRIORITY, which, who, nice as usize) })
}

fn setscheduler(pid: usize, policy: usize, priority: u32) -> ulib::errno::Result {
    // SAFETY: the kernel reads the 4-byte sched_param.
    sys::ret(unsafe { syscall3(nr::SCHED_SETSCHEDULER, pid, policy, &raw const priority as usize) })
}

fn getscheduler(pid: usize) -> ulib::errno::Result {
    // SAFETY: no memory is passed.
    sys::ret(unsafe { syscall2(nr::SCHED_GETSCHEDULER, pid, 0) })
}

/// Runs `f` in a child (the changes tests make to priorities stay there).
fn in_child(f: impl FnOnce() -> i32) -> TestResult {
    check_eq!(run_child(f)?.exit_code(), Some(0));
    Ok(())
}

fn priority_starts_at_nice_zero() -> TestResult {
    // The raw syscall answers 20 - nice.
    check_eq!(getprio(PRIO_PROCESS, 0), Ok(20));
    let pid = check_ok!(sys::getpid());
    check_eq!(getprio(PRIO_PROCESS, pid), Ok(20));
    check_eq!(getprio(PRIO_PGRP, 0), Ok(20));
    Ok(())
}

fn setpriority_raises_nice_and_fork_inherits_it() -> TestResult {
    in_child(|| {
        // Out of range values are clamped to 19.
        if setprio(PRIO_PROCESS, 0, 5) != Ok(0) || getprio(PRIO_PROCESS, 0) != Ok(15) {
            return 1;
        }
        if setprio(PRIO_PROCESS, 0, 100) != Ok(0) || getprio(PRIO_PROCESS, 0) != Ok(1) {
            return 2;
        }
        match run_child(|| status_if(getprio(PRIO_PROCESS, 0), Ok(1))) {
            Ok(s) if s.exit_code() == Some(0) => 0,
            _ => 3,
        }
    })
}

fn priority_of_a_missing_thread_is_esrch() -> TestResult {
    // A pid far above any in use.
    check_err!(getprio(PRIO_PROCESS, 0x7fff_fff0), ESRCH);
    check_err!(setprio(PRIO_PROCESS, 0x7fff_fff0, 0), ESRCH);
    check_err!(getprio(PRIO_PGRP, 0x7fff_fff0), ESRCH);
    Ok(())
}

fn priority_bad_which_is_einval() -> TestResult {
    check_err!(getprio(3, 0), EINVAL);
    check_err!(setprio(7, 0, 0), EINVAL);
    check_eq!(getprio(PRIO_USER, 0).map(|p| p >= 1), Ok(true));
    Ok(())
}

fn scheduler_starts_as_sched_other() -> TestResult {
    check_eq!(getscheduler(0), Ok(SCHED_OTHER));
    let mut prio = 7u32;
    // SAFETY: the kernel writes the 4-byte sched_param.
    let r = sys::ret(unsafe { syscall2(nr::SCHED_GETPARAM, 0, &raw mut prio as usize) });
    check_eq!(r, Ok(0));
    check_eq!(prio, 0);
    Ok(())
}

fn setscheduler_to_batch_and_idle() -> TestResult {
    in_child(|| {
        let steps = [
            setscheduler(0, SCHED_BATCH, 0) == Ok(0),
            getscheduler(0) == Ok(SCHED_BATCH),
            setscheduler(0, SCHED_IDLE, 0) == Ok(0),
            getscheduler(0) == Ok(SCHED_IDLE),
            // sched_setparam keeps the policy.
            // SAFETY: the kernel reads the 4-byte sched_param.
            sys::ret(unsafe { syscall2(nr::SCHED_SETPARAM, 0, &raw const ZERO as usize) }) == Ok(0),
            getscheduler(0) == Ok(SCHED_IDLE),
        ];
        steps.iter().position(|ok| !ok).map_or(0, |i| i as i32 + 1)
    })
}

static ZERO: u32 = 0;

fn reset_on_fork_is_not_inherited() -> TestResult {
    // The flag shows in the policy; a child keeps the policy, without the flag.
    in_child(|| {
        if setscheduler(0, SCHED_BATCH | SCHED_RESET_ON_FORK, 0) != Ok(0) {
            return 1;
        }
        if getscheduler(0) != Ok(SCHED_BATCH | SCHED_RESET_ON_FORK) {
            return 2;
        }
        match run_child(|| status_if(getscheduler(0), Ok(SCHED_BATCH))) {
            Ok(s) if s.exit_code() == Some(0) => 0,
            _ => 3,
        }
    })
}

fn scheduler_bad_policy_or_priority_is_einval() -> TestResult {
    check_err!(setscheduler(0, 4, 0), EINVAL);
    check_err!(setscheduler(0, 42, 0), EINVAL);
    check_err!(setscheduler(0, SCHED_OTHER, 1), EINVAL);
    check_err!(setscheduler(0, SCHED_FIFO, 0), EINVAL);
    check_err!(setscheduler(0, SCHED_RR, 100), EINVAL);
    // SAFETY: a null sched_param and a negative pid are refused before any access.
    check_err!(sys::ret(unsafe { syscall3(nr::SCHED_SETSCHEDULER, 0, SCHED_OTHER, 0) }), EINVAL);
    check_err!(setscheduler(-1i64 as usize, SCHED_OTHER, 0), EINVAL);
    check_err!(getscheduler(-1i64 as usize), EINVAL);
    check_err!(getscheduler(0x7fff_fff0), ESRCH);
    check_eq!(getscheduler(0), Ok(SCHED_OTHER));
    Ok(())
}

fn priority_range_per_policy() -> TestResult {
    // SAFETY: no memory is passed.
    let max = |p: usize| sys::ret(unsafe { syscall2(nr::SCHED_GET_PRIORITY_MAX, p, 0) });
    // SAFETY: as above.
    let min = |p: usize| sys::ret(unsafe { syscall2(nr::SCHED_GET_PRIORITY_MIN, p, 0) });
    for p in [SCHED_FIFO, SCHED_RR] {
        check_eq!((min(p), max(p)), (Ok(1), Ok(99)));
    }
    for p in [SCHED_OTHER, SCHED_BATCH, SCHED_IDLE] {
        check_eq!((min(p), max(p)), (Ok(0), Ok(0)));
    }
    check_err!(max(4), EINVAL);
    check_err!(min(42), EINVAL);
    Ok(())
}

fn rr_interval_is_a_time_slice() -> TestResult {
    let mut ts = Timespec { tv_sec: -1, tv_nsec: -1 };
    // SAFETY: the kernel writes the timespec.
    let r = sys::ret(unsafe { syscall2(nr::SCHED_RR_GET_INTERVAL, 0, &raw mut ts as usize) });
    check_eq!(r, Ok(0));
    check!(ts.tv_sec == 0 && (0..1_000_000_000).contains(&ts.tv_nsec), "interval {ts:?}");
    Ok(())
}
