//! CPU time as getrusage, wait4's rusage and times report it: the caller's own, a
//! thread's, and the reaped children's, each checked against CPU time spent by the
//! CLOCK_PROCESS_CPUTIME_ID clock. (The kernel does not split user from system time; the
//! tests look at their sum.)

use ulib::sys::{self, syscall1, syscall2, syscall4};
use ulib::uapi::*;
use ulib::{check, check_eq, check_err, check_ok, nr};

use crate::util::*;

pub const TESTS: &[Test] = tests![
    getrusage_self_counts_the_cpu_spent,
    getrusage_children_counts_them_once_reaped,
    wait4_rusage_reports_the_childs_cpu,
    getrusage_bad_who_or_pointer,
    times_counts_ticks_and_children,
];

const MS: i64 = 1_000_000;

/// The process's CPU time so far (CLOCK_PROCESS_CPUTIME_ID), in ns.
fn cpu_now() -> i64 {
    let mut t = Timespec::default();
    let _ = sys::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &mut t);
    t.as_nanos()
}

/// Burns `ms` of CPU time in user mode (however busy the machine is).
fn spin(ms: i64) {
    let end = cpu_now() + ms * MS;
    while cpu_now() < end {
        core::hint::spin_loop();
    }
}

/// `struct rusage`'s first two fields (utime, stime) in ns; the rest is ignored.
fn cpu_of(ru: &[i64; 18]) -> i64 {
    (ru[0] + ru[2]) * 1_000_000_000 + (ru[1] + ru[3]) * 1000
}

fn getrusage(who: i32) -> Result<i64, Failure> {
    let mut ru = [0i64; 18];
    // SAFETY: the kernel writes the 144-byte struct rusage.
    check_eq!(sys::ret(unsafe { syscall2(nr::GETRUSAGE, who as usize, ru.as_mut_ptr() as usize) }), Ok(0));
    Ok(cpu_of(&ru))
}

fn getrusage_self_counts_the_cpu_spent() -> TestResult {
    let (before, thread_before) = (getrusage(0)?, getrusage(1)?);
    spin(60);
    let (after, thread) = (getrusage(0)?, getrusage(1)?);
    check!(after - before >= 55 * MS, "{} ns counted for 60 ms of spinning", after - before);
    // The thread (RUSAGE_THREAD) counts the same spin; the process also counts threads
    // that ended earlier.
    check!(thread - thread_before >= 55 * MS, "{} ns counted for the thread", thread - thread_before);
    check!(thread <= getrusage(0)?, "thread {thread}, process {after}");
    Ok(())
}

fn getrusage_children_counts_them_once_reaped() -> TestResult {
    let before = getrusage(-1)?;
    let pid = fork_child(|| {
        spin(60);
        0
    })?;
    sleep_ms(100);
    // Exited but not reaped: not counted yet.
    check_eq!(getrusage(-1)?, before);
    check_eq!(wait_child(pid)?.exit_code(), Some(0));
    let after = getrusage(-1)?;
    check!(after - before >= 55 * MS, "{} ns counted for a child's 60 ms", after - before);
    Ok(())
}

fn wait4_rusage_reports_the_childs_cpu() -> TestResult {
    let pid = fork_child(|| {
        spin(60);
        0
    })?;
    let (mut status, mut ru) = (0i32, [0i64; 18]);
    // SAFETY: the kernel writes the status and the 144-byte struct rusage.
    let r = sys::ret(unsafe { syscall4(nr::WAIT4, pid as usize, &raw mut status as usize, 0, ru.as_mut_ptr() as usize) });
    check_eq!(r, Ok(pid as usize));
    check!(cpu_of(&ru) >= 55 * MS, "{} ns in the child's rusage", cpu_of(&ru));
    Ok(())
}

fn getrusage_bad_who_or_pointer() -> TestResult {
    let mut ru = [0i64; 18];
    // SAFETY: refused before anything is written.
    check_err!(sys::ret(unsafe { syscall2(nr::GETRUSAGE, 2, ru.as_mut_ptr() as usize) }), EINVAL);
    // SAFETY: the kernel must refuse the unmapped address.
    check_err!(sys::ret(unsafe { syscall2(nr::GETRUSAGE, 0, UNMAPPED_ADDR) }), EFAULT);
    Ok(())
}

fn times_counts_ticks_and_children() -> TestResult {
    // SAFETY: a null buffer is allowed.
    let t0 = check_ok!(sys::ret(unsafe { syscall1(nr::TIMES, 0) }));
    let pid = fork_child(|| {
        spin(60);
        0
    })?;
    check_eq!(wait_child(pid)?.exit_code(), Some(0));
    let mut tms = [0i64; 4];
    // SAFETY: the kernel writes the struct tms.
    let t1 = check_ok!(sys::ret(unsafe { syscall1(nr::TIMES, tms.as_mut_ptr() as usize) }));
    check!(t1 >= t0 + 5, "{} ticks for at least 60 ms", t1 - t0);
    check!(tms[2] + tms[3] >= 5, "children's ticks {tms:?}");
    Ok(())
}
