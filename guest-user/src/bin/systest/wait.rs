//! Waiting: waitid(2) on children, and the futex2 calls futex_waitv, futex_wake and
//! futex_wait.

use core::sync::atomic::{AtomicU32, Ordering::SeqCst};

use ulib::sys::{self, syscall5};
use ulib::uapi::*;
use ulib::{Errno, check, check_eq, check_err, check_ok, nr, thread};

use crate::util::*;

pub const TESTS: &[Test] = tests![
    waitid_reports_an_exit_in_the_siginfo,
    waitid_reports_a_kill,
    waitid_wnohang_on_a_running_child_zeroes_the_fields,
    waitid_wnowait_leaves_the_child_waitable,
    waitid_argument_errors,
    waitid_without_children_is_echild_and_zeroes_the_siginfo,
    waitid_bad_siginfo_is_efault_but_reaps,
    waitid_by_process_group,
    kill_reaches_a_process_group,
    clone_child_without_exit_signal_needs_wclone,
    futex_waitv_value_changed_is_eagain,
    futex_waitv_returns_the_index_woken,
    futex_waitv_argument_errors,
    futex_waitv_times_out,
    futex2_wait_and_wake,
    futex2_argument_errors,
    futex2_private_and_shared_are_different_futexes,
    futex_wake_of_zero_wakes_one,
    futex_wait_with_clock_realtime_is_enosys,
];

const U32: u32 = FUTEX2_SIZE_U32;
const ANY: u64 = FUTEX_BITSET_MATCH_ANY as u64;
const CLOCK_MONOTONIC: i32 = 1;

fn blank() -> Siginfo {
    Siginfo([0xa5; 128])
}

/// A child that blocks until the returned pipe's write end is closed, then exits with
/// `code`. Returns (pid, write end).
fn child_on_cue(code: i32) -> Result<(i32, i32), Failure> {
    let mut fds = [0; 2];
    check_ok!(sys::pipe(&mut fds));
    let pid = fork_child(|| {
        let _ = sys::close(fds[1]);
        let _ = sys::read(fds[0], &mut [0u8; 1]);
        code
    })?;
    check_ok!(sys::close(fds[0]));
    Ok((pid, fds[1]))
}

fn waitid_reports_an_exit_in_the_siginfo() -> TestResult {
    let pid = fork_child(|| 7)?;
    let mut si = blank();
    check_eq!(sys::waitid(P_PID, pid, Some(&mut si), WEXITED), Ok(0));
    check_eq!(si.signo(), SIGCHLD);
    check_eq!(si.errno(), 0);
    check_eq!(si.code(), CLD_EXITED);
    check_eq!(si.pid(), pid);
    check_eq!(si.uid() as usize, check_ok!(sys::getuid()));
    check_eq!(si.status(), 7);
    check_err!(sys::wait4(pid, None, WNOHANG), ECHILD); // reaped
    Ok(())
}

fn waitid_reports_a_kill() -> TestResult {
    let (pid, cue) = child_on_cue(0)?;
    check_ok!(sys::kill(pid, SIGKILL));
    let mut si = blank();
    check_eq!(sys::waitid(P_ALL, 0, Some(&mut si), WEXITED), Ok(0));
    check_eq!(si.signo(), SIGCHLD);
    check_eq!(si.code(), CLD_KILLED);
    check_eq!(si.pid(), pid);
    check_eq!(si.status(), SIGKILL);
    check_ok!(sys::close(cue));
    Ok(())
}

fn waitid_wnohang_on_a_running_child_zeroes_the_fields() -> TestResult {
    // Linux writes si_signo, si_errno, si_code, si_pid, si_uid and si_status (zeroes
    // here), and nothing else: the bytes between si_code and si_pid stay.
    let (pid, cue) = child_on_cue(0)?;
    let mut si = blank();
    check_eq!(sys::waitid(P_PID, pid, Some(&mut si), WEXITED | WNOHANG), Ok(0));
    check_eq!((si.signo(), si.errno(), si.code()), (0, 0, 0));
    check_eq!((si.pid(), si.uid(), si.status()), (0, 0, 0));
    check_eq!(si.0[12..16], [0xa5; 4]);
    check_eq!(si.0[28..], [0xa5; 100]);
    check_ok!(sys::close(cue));
    check_eq!(wait_child(pid)?.exit_code(), Some(0));
    Ok(())
}

fn waitid_wnowait_leaves_the_child_waitable() -> TestResult {
    let pid = fork_child(|| 9)?;
    let mut si = blank();
    check_eq!(sys::waitid(P_PID, pid, Some(&mut si), WEXITED | WNOWAIT), Ok(0));
    check_eq!((si.pid(), si.status()), (pid, 9));
    // An exited child reports to WEXITED only: WSTOPPED alone finds nothing to wait for.
    check_err!(sys::waitid(P_PID, pid, None, WSTOPPED | WNOHANG), ECHILD);
    check_eq!(wait_child(pid)?.exit_code(), Some(9));
    Ok(())
}

fn waitid_argument_errors() -> TestResult {
    check_err!(sys::waitid(P_ALL, 0, None, 0), EINVAL); // no WEXITED/WSTOPPED/WCONTINUED
    check_err!(sys::waitid(P_ALL, 0, None, WEXITED | 0x10), EINVAL);
    check_err!(sys::waitid(7, 0, None, WEXITED), EINVAL);
    check_err!(sys::waitid(P_PID, 0, None, WEXITED), EINVAL);
    check_err!(sys::waitid(P_PGID, -1, None, WEXITED), EINVAL);
    check_err!(sys::waitid(P_PIDFD, -1, None, WEXITED), EINVAL);
    // A descriptor that is no pidfd, or none at all.
    let mut fds = [0; 2];
    check_ok!(sys::pipe(&mut fds));
    check_err!(sys::waitid(P_PIDFD, fds[0], None, WEXITED | WNOHANG), EBADF);
    check_ok!(sys::close(fds[0]));
    check_ok!(sys::close(fds[1]));
    check_err!(sys::waitid(P_PIDFD, fds[0], None, WEXITED | WNOHANG), EBADF);
    Ok(())
}

fn waitid_without_children_is_echild_and_zeroes_the_siginfo() -> TestResult {
    let mut si = blank();
    check_err!(sys::waitid(P_ALL, 0, Some(&mut si), WEXITED), ECHILD);
    check_eq!((si.signo(), si.code(), si.pid(), si.status()), (0, 0, 0, 0));
    let me = check_ok!(sys::getpid()) as i32;
    check_err!(sys::waitid(P_PID, me, None, WEXITED), ECHILD);
    Ok(())
}

fn waitid_bad_siginfo_is_efault_but_reaps() -> TestResult {
    let pid = fork_child(|| 1)?;
    // SAFETY: the kernel finds no page at 8 and writes nothing.
    let r = unsafe { syscall5(nr::WAITID, P_PID as usize, pid as usize, 8, WEXITED as usize, 0) };
    check_eq!(r, -(Errno::EFAULT.0 as isize));
    check_err!(sys::wait4(pid, None, WNOHANG), ECHILD);
    Ok(())
}

fn waitid_by_process_group() -> TestResult {
    // P_PGID 0 is the caller's group; a child that made a group of its own is only in that.
    let (pid, cue) = child_on_cue(4)?;
    check_ok!(sys::setpgid(pid, pid));
    check_err!(sys::waitid(P_PGID, 0, None, WEXITED | WNOHANG), ECHILD);
    check_eq!(sys::waitid(P_PGID, pid, None, WEXITED | WNOHANG), Ok(0));
    check_ok!(sys::close(cue));
    let mut si = blank();
    check_eq!(sys::waitid(P_PGID, pid, Some(&mut si), WEXITED), Ok(0));
    check_eq!((si.pid(), si.status()), (pid, 4));
    Ok(())
}

fn kill_reaches_a_process_group() -> TestResult {
    // kill(-pgid) signals the group; a group with nobody in it is -ESRCH.
    let (pid, cue) = child_on_cue(0)?;
    check_ok!(sys::setpgid(pid, pid));
    check_ok!(sys::kill(-pid, SIGKILL));
    let mut si = blank();
    check_eq!(sys::waitid(P_PID, pid, Some(&mut si), WEXITED), Ok(0));
    check_eq!((si.code(), si.status()), (CLD_KILLED, SIGKILL));
    check_err!(sys::kill(-pid, 0), ESRCH);
    check_ok!(sys::close(cue));
    Ok(())
}

fn clone_child_without_exit_signal_needs_wclone() -> TestResult {
    // A child whose exit signals nothing (clone's CSIGNAL 0) is a "clone" child: only
    // __WCLONE or __WALL wait for it.
    const WCLONE: i32 = 0x8000_0000u32 as i32;
    const WALL: i32 = 0x4000_0000;
    let mut fds = [0; 2];
    check_ok!(sys::pipe(&mut fds));
    // SAFETY: without CLONE_VM the child runs on a copy of our memory, as after fork.
    let pid = unsafe { syscall5(nr::CLONE, 0, 0, 0, 0, 0) };
    if pid == 0 {
        let _ = sys::close(fds[1]);
        let _ = sys::read(fds[0], &mut [0u8; 1]);
        sys::exit_group(5);
    }
    check!(pid > 0, "clone: {pid}");
    let pid = pid as i32;
    check_ok!(sys::close(fds[0]));
    check_err!(sys::waitid(P_PID, pid, None, WEXITED | WNOHANG), ECHILD);
    check_err!(sys::wait4(pid, None, WNOHANG), ECHILD);
    check_eq!(sys::waitid(P_PID, pid, None, WEXITED | WNOHANG | WALL), Ok(0));
    check_ok!(sys::close(fds[1]));
    let mut si = blank();
    check_eq!(sys::waitid(P_PID, pid, Some(&mut si), WEXITED | WCLONE), Ok(0));
    check_eq!((si.signo(), si.pid(), si.status()), (SIGCHLD, pid, 5));
    Ok(())
}

fn entry(word: &AtomicU32, val: u64, flags: u32) -> FutexWaitv {
    FutexWaitv { val, uaddr: word.as_ptr() as u64, flags, reserved: 0 }
}

fn futex_waitv_value_changed_is_eagain() -> TestResult {
    let (a, b) = (AtomicU32::new(0), AtomicU32::new(1));
    check_err!(sys::futex_waitv(&[entry(&a, 0, U32), entry(&b, 0, U32)], 0, None, 0), EAGAIN);
    // Nothing stayed queued on `a`.
    check_eq!(sys::futex2_wake(a.as_ptr() as usize, ANY, 1, U32), Ok(0));
    Ok(())
}

fn futex_waitv_returns_the_index_woken() -> TestResult {
    static WORDS: [AtomicU32; 3] = [AtomicU32::new(0), AtomicU32::new(0), AtomicU32::new(0)];
    let t = check_ok!(thread::spawn(|| {
        let v = [entry(&WORDS[0], 0, U32), entry(&WORDS[1], 0, U32 | FUTEX2_PRIVATE), entry(&WORDS[2], 0, U32)];
        match sys::futex_waitv(&v, 0, None, 0) {
            Ok(i) => i as i32,
            Err(_) => -1,
        }
    }));
    // Wake the private entry (retried until the thread sleeps); the shared futex on the
    // same word is another futex and wakes nobody.
    let addr = WORDS[1].as_ptr() as usize;
    let start = now_ns();
    loop {
        check_eq!(sys::futex2_wake(addr, ANY, 1, U32), Ok(0));
        if check_ok!(sys::futex2_wake(addr, ANY, 1, U32 | FUTEX2_PRIVATE)) == 1 {
            break;
        }
        check!(now_ns() - start < 10_000_000_000, "the thread never slept");
        sleep_ms(1);
    }
    check_eq!(t.join(), 1);
    check_eq!(sys::futex2_wake(WORDS[0].as_ptr() as usize, ANY, 1, U32), Ok(0));
    Ok(())
}

fn futex_waitv_argument_errors() -> TestResult {
    let a = AtomicU32::new(0);
    let ok = entry(&a, 1, U32);
    check_err!(sys::futex_waitv(&[ok], 1, None, 0), EINVAL); // flags
    check_err!(sys::futex_waitv(&[], 0, None, 0), EINVAL);
    let many = [ok; 129];
    check_err!(sys::futex_waitv(&many, 0, None, 0), EINVAL);
    check_err!(sys::futex_waitv(&many[..128], 0, None, 0), EAGAIN);
    let mut bad = ok;
    bad.reserved = 1;
    check_err!(sys::futex_waitv(&[ok, bad], 0, None, 0), EINVAL);
    bad = ok;
    bad.flags = FUTEX2_SIZE_U8;
    check_err!(sys::futex_waitv(&[ok, bad], 0, None, 0), EINVAL);
    bad = ok;
    bad.val = 1 << 32;
    check_err!(sys::futex_waitv(&[ok, bad], 0, None, 0), EINVAL);
    bad = ok;
    bad.uaddr += 1;
    check_err!(sys::futex_waitv(&[ok, bad], 0, None, 0), EINVAL);
    bad.uaddr = 4096; // aligned, unmapped
    check_err!(sys::futex_waitv(&[ok, bad], 0, None, 0), EFAULT);
    let ts = Timespec { tv_sec: 0, tv_nsec: 0 };
    check_err!(sys::futex_waitv(&[ok], 0, Some(&ts), 5), EINVAL); // clock
    let bad_ts = Timespec { tv_sec: 0, tv_nsec: 1_000_000_000 };
    check_err!(sys::futex_waitv(&[ok], 0, Some(&bad_ts), CLOCK_MONOTONIC), EINVAL);
    // A NULL array is -EINVAL, an unmapped one -EFAULT.
    // SAFETY: the kernel reads nothing at these addresses but fails.
    let r = unsafe { syscall5(nr::FUTEX_WAITV, 0, 1, 0, 0, 0) };
    check_eq!(r, -(Errno::EINVAL.0 as isize));
    // SAFETY: as above.
    let r = unsafe { syscall5(nr::FUTEX_WAITV, 8, 1, 0, 0, 0) };
    check_eq!(r, -(Errno::EFAULT.0 as isize));
    Ok(())
}

fn futex_waitv_times_out() -> TestResult {
    // The timeout is absolute.
    let a = AtomicU32::new(0);
    let mut now = Timespec::default();
    check_ok!(sys::clock_gettime(CLOCK_MONOTONIC, &mut now));
    let deadline = Timespec::from_nanos(now.tv_sec * 1_000_000_000 + now.tv_nsec + 10_000_000);
    let start = now_ns();
    check_err!(sys::futex_waitv(&[entry(&a, 0, U32)], 0, Some(&deadline), CLOCK_MONOTONIC), ETIMEDOUT);
    check!(now_ns() - start >= 9_000_000, "woke after {} ns", now_ns() - start);
    Ok(())
}

fn futex2_wait_and_wake() -> TestResult {
    static WORD: AtomicU32 = AtomicU32::new(0);
    WORD.store(0, SeqCst);
    let addr = WORD.as_ptr() as usize;
    check_err!(sys::futex2_wait(addr, 1, ANY, U32, None, 0), EAGAIN);
    let t = check_ok!(thread::spawn(move || match sys::futex2_wait(addr, 0, 0b01, U32, None, 0) {
        Ok(_) => 0,
        Err(e) => e.0,
    }));
    let start = now_ns();
    loop {
        check_eq!(sys::futex2_wake(addr, ANY, 0, U32), Ok(0)); // nr 0 wakes none
        check_eq!(sys::futex2_wake(addr, 0b10, 1, U32), Ok(0)); // bitsets disjoint
        if check_ok!(sys::futex2_wake(addr, 0b11, 1, U32)) == 1 {
            break;
        }
        check!(now_ns() - start < 10_000_000_000, "the thread never slept");
        sleep_ms(1);
    }
    check_eq!(t.join(), 0);
    let mut now = Timespec::default();
    check_ok!(sys::clock_gettime(CLOCK_MONOTONIC, &mut now));
    let deadline = Timespec::from_nanos(now.tv_sec * 1_000_000_000 + now.tv_nsec + 5_000_000);
    check_err!(sys::futex2_wait(addr, 0, ANY, U32, Some(&deadline), CLOCK_MONOTONIC), ETIMEDOUT);
    Ok(())
}

fn futex2_argument_errors() -> TestResult {
    let a = AtomicU32::new(0);
    let addr = a.as_ptr() as usize;
    for flags in [FUTEX2_SIZE_U8, 0x01, 0x03, U32 | 0x10] {
        check_err!(sys::futex2_wake(addr, ANY, 1, flags), EINVAL);
        check_err!(sys::futex2_wait(addr, 1, ANY, flags, None, 0), EINVAL);
    }
    check_err!(sys::futex2_wake(addr, 0, 1, U32), EINVAL); // mask 0
    check_err!(sys::futex2_wait(addr, 1, 0, U32, None, 0), EINVAL);
    check_err!(sys::futex2_wake(addr, 1 << 32, 1, U32), EINVAL); // wider than 32 bits
    check_err!(sys::futex2_wait(addr, 1 << 32, ANY, U32, None, 0), EINVAL);
    check_err!(sys::futex2_wake(addr + 2, ANY, 1, U32), EINVAL); // misaligned
    check_err!(sys::futex2_wait(addr + 2, 0, ANY, U32, None, 0), EINVAL);
    // Unmapped: shared needs the page, a private wake does not.
    check_err!(sys::futex2_wake(4096, ANY, 1, U32), EFAULT);
    check_eq!(sys::futex2_wake(4096, ANY, 1, U32 | FUTEX2_PRIVATE), Ok(0));
    check_err!(sys::futex2_wait(4096, 0, ANY, U32 | FUTEX2_PRIVATE, None, 0), EFAULT);
    let ts = Timespec { tv_sec: 0, tv_nsec: 0 };
    check_err!(sys::futex2_wait(addr, 0, ANY, U32, Some(&ts), 7), EINVAL);
    Ok(())
}

fn futex2_private_and_shared_are_different_futexes() -> TestResult {
    // futex(2): a shared waiter is not woken by a private wake, nor the reverse.
    static WORD: AtomicU32 = AtomicU32::new(0);
    let addr = WORD.as_ptr() as usize;
    let t = check_ok!(thread::spawn(move || match sys::futex2_wait(addr, 0, ANY, U32, None, 0) {
        Ok(_) => 0,
        Err(e) => e.0,
    }));
    let start = now_ns();
    loop {
        check_eq!(sys::futex(&WORD, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, 1, None), Ok(0));
        if check_ok!(sys::futex(&WORD, FUTEX_WAKE, 1, None)) == 1 {
            break;
        }
        check!(now_ns() - start < 10_000_000_000, "the thread never slept");
        sleep_ms(1);
    }
    check_eq!(t.join(), 0);
    Ok(())
}

fn futex_wake_of_zero_wakes_one() -> TestResult {
    // futex(2)'s FUTEX_WAKE counts after waking: nr 0 (or negative) still wakes one.
    // (futex_wake(2) and io_uring's FUTEX_WAKE are strict: 0 wakes none.)
    static WORD: AtomicU32 = AtomicU32::new(0);
    let t = check_ok!(thread::spawn(|| match sys::futex_wait(&WORD, 0, None) {
        Ok(_) => 0,
        Err(e) => e.0,
    }));
    let start = now_ns();
    while check_ok!(sys::futex(&WORD, FUTEX_WAKE, 0, None)) == 0 {
        check!(now_ns() - start < 10_000_000_000, "the thread never slept");
        sleep_ms(1);
    }
    check_eq!(t.join(), 0);
    Ok(())
}

fn futex_wait_with_clock_realtime_is_enosys() -> TestResult {
    // FUTEX_CLOCK_REALTIME goes with FUTEX_WAIT_BITSET (and the PI ops), not FUTEX_WAIT.
    let word = AtomicU32::new(0);
    let ts = Timespec::from_nanos(1_000_000);
    check_err!(sys::futex(&word, FUTEX_WAIT | 256, 0, Some(&ts)), ENOSYS);
    check_err!(sys::futex(&word, FUTEX_WAKE | 256, 1, None), ENOSYS);
    Ok(())
}
