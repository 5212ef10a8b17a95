//! rt_sigpending, rt_sigsuspend, rt_sigtimedwait, rt_sigqueueinfo, rt_tgsigqueueinfo:
//! pending sets, waiting with and without a timeout, the siginfo of kill, sigqueue and
//! SIGCHLD, queued real-time signals against merged standard ones, ignored signals, and
//! the errors.

use core::sync::atomic::Ordering::SeqCst;

use ulib::sys::{self, syscall2, syscall3, syscall4};
use ulib::uapi::*;
use ulib::{check, check_eq, check_err, check_ok, nr};

use crate::sigutil::*;
use crate::util::*;

pub const TESTS: &[Test] = tests![
    sigpending_shows_blocked_pending_signals,
    sigpending_short_set_size_writes_only_that_much,
    sigtimedwait_times_out_with_eagain,
    sigtimedwait_returns_kill_siginfo,
    real_time_signals_queue_and_standard_ones_merge,
    sigtimedwait_wakes_when_a_child_signals,
    sigtimedwait_is_interrupted_by_a_handled_signal,
    sigtimedwait_reports_a_child_exit_as_sigchld,
    sigsuspend_waits_and_restores_the_mask,
    sigsuspend_returns_at_once_for_a_pending_signal,
    sigqueueinfo_handler_sees_the_value,
    sigqueueinfo_refuses_forged_kill_codes,
    a_zombie_takes_signals_until_it_is_reaped,
    tgsigqueueinfo_targets_a_thread,
    a_thread_takes_the_process_signals_not_another_threads,
    blocked_signal_queues_even_when_ignored,
    ignoring_a_signal_discards_it_when_pending,
    argument_errors,
];

const WAIT_MS: i64 = 10_000;

fn ts_ms(ms: i64) -> Timespec {
    Timespec::from_nanos(ms * 1_000_000)
}

fn pending() -> Result<u64, Failure> {
    let mut set = 0;
    check_ok!(sys::rt_sigpending(&mut set));
    Ok(set)
}

fn me() -> Result<i32, Failure> {
    Ok(check_ok!(sys::getpid()) as i32)
}

/// The kernel's real-time signal used here (glibc's SIGRTMIN+6).
const RT: i32 = SIGRTMIN_KERNEL + 8;

fn sigpending_shows_blocked_pending_signals() -> TestResult {
    let set = sigbit(SIGUSR1) | sigbit(SIGUSR2);
    let old = block(set)?;
    check_eq!(pending()? & set, 0);
    check_ok!(sys::kill(me()?, SIGUSR1));
    check_eq!(pending()? & set, sigbit(SIGUSR1));
    check_ok!(sys::kill(me()?, SIGUSR2));
    check_eq!(pending()? & set, set);
    check_eq!(sys::rt_sigtimedwait(&set, None, None), Ok(SIGUSR1 as usize));
    check_eq!(pending()? & set, sigbit(SIGUSR2));
    drain_and_restore(set, old)?;
    check_eq!(pending()? & set, 0);
    Ok(())
}

fn sigpending_short_set_size_writes_only_that_much() -> TestResult {
    let old = block(sigbit(SIGUSR1))?;
    check_ok!(sys::kill(me()?, SIGUSR1));
    let mut set: u64 = 0xffff_ffff_0000_0000;
    // SAFETY: the kernel writes 4 bytes into set.
    check_eq!(sys::ret(unsafe { syscall2(nr::RT_SIGPENDING, &raw mut set as usize, 4) }), Ok(0));
    check_eq!(set, 0xffff_ffff_0000_0000 | sigbit(SIGUSR1));
    // SAFETY: refused before anything is written.
    check_err!(sys::ret(unsafe { syscall2(nr::RT_SIGPENDING, &raw mut set as usize, 9) }), EINVAL);
    drain_and_restore(sigbit(SIGUSR1), old)
}

fn sigtimedwait_times_out_with_eagain() -> TestResult {
    let old = block(sigbit(SIGUSR2))?;
    let start = now_ns();
    check_err!(sys::rt_sigtimedwait(&sigbit(SIGUSR2), None, Some(&ts_ms(20))), EAGAIN);
    check!(now_ns() - start >= 20_000_000, "returned before the timeout");
    check_err!(sys::rt_sigtimedwait(&sigbit(SIGUSR2), None, Some(&Timespec::default())), EAGAIN);
    drain_and_restore(sigbit(SIGUSR2), old)
}

fn sigtimedwait_returns_kill_siginfo() -> TestResult {
    let old = block(sigbit(SIGUSR1))?;
    check_ok!(sys::kill(me()?, SIGUSR1));
    let mut info = Siginfo([0xaa; 128]);
    check_eq!(sys::rt_sigtimedwait(&sigbit(SIGUSR1), Some(&mut info), None), Ok(SIGUSR1 as usize));
    let uid = check_ok!(sys::getuid()) as i32;
    check_eq!((info.signo(), info.errno(), info.code(), info.pid(), info.uid()), (SIGUSR1, 0, SI_USER, me()?, uid));
    check!(info.0[24..].iter().all(|&b| b == 0), "siginfo past si_uid not zeroed");
    // tgkill says SI_TKILL.
    let tid = check_ok!(sys::gettid()) as i32;
    check_ok!(sys::tgkill(me()?, tid, SIGUSR1));
    check_eq!(sys::rt_sigtimedwait(&sigbit(SIGUSR1), Some(&mut info), None), Ok(SIGUSR1 as usize));
    check_eq!((info.code(), info.pid()), (SI_TKILL, me()?));
    drain_and_restore(sigbit(SIGUSR1), old)
}

fn real_time_signals_queue_and_standard_ones_merge() -> TestResult {
    let set = sigbit(RT) | sigbit(SIGUSR1);
    let old = block(set)?;
    let pid = me()?;
    for v in 1..=3u64 {
        check_ok!(sys::rt_sigqueueinfo(pid, RT, &Siginfo::queued(0, SI_QUEUE, pid, 0, v * 0x1_0000_0001)));
        check_ok!(sys::kill(pid, SIGUSR1));
    }
    // The standard signal comes first (lower number), once; then the three in order.
    let mut info = Siginfo([0; 128]);
    check_eq!(sys::rt_sigtimedwait(&set, Some(&mut info), None), Ok(SIGUSR1 as usize));
    for v in 1..=3u64 {
        check_eq!(sys::rt_sigtimedwait(&set, Some(&mut info), None), Ok(RT as usize));
        check_eq!((info.signo(), info.code(), info.pid(), info.value()), (RT, SI_QUEUE, pid, v * 0x1_0000_0001));
    }
    check_err!(sys::rt_sigtimedwait(&set, None, Some(&Timespec::default())), EAGAIN);
    drain_and_restore(set, old)
}

fn sigtimedwait_wakes_when_a_child_signals() -> TestResult {
    let old = block(sigbit(SIGUSR1))?;
    let child = signal_me_after(SIGUSR1, 20)?;
    let mut info = Siginfo([0; 128]);
    let got = sys::rt_sigtimedwait(&sigbit(SIGUSR1), Some(&mut info), Some(&ts_ms(WAIT_MS)));
    check_eq!(wait_child(child)?.exit_code(), Some(0));
    check_eq!(got, Ok(SIGUSR1 as usize));
    check_eq!((info.code(), info.pid()), (SI_USER, child));
    drain_and_restore(sigbit(SIGUSR1), old)
}

fn sigtimedwait_is_interrupted_by_a_handled_signal() -> TestResult {
    let old_action = catch(SIGUSR2, false)?;
    let old = block(sigbit(SIGUSR1))?;
    let before = hits(SIGUSR2);
    let child = signal_me_after(SIGUSR2, 20)?;
    let got = sys::rt_sigtimedwait(&sigbit(SIGUSR1), None, Some(&ts_ms(WAIT_MS)));
    check_eq!(wait_child(child)?.exit_code(), Some(0));
    check_err!(got, EINTR);
    check_eq!(hits(SIGUSR2), before + 1);
    set_action(SIGUSR2, &old_action)?;
    drain_and_restore(sigbit(SIGUSR1), old)
}

fn sigtimedwait_reports_a_child_exit_as_sigchld() -> TestResult {
    // SIGCHLD is ignored by default, but a blocked one is kept for sigtimedwait.
    // Its CPU time comes along, in clock ticks (100 a second).
    let old = block(sigbit(SIGCHLD))?;
    // A SIGCHLD of an earlier test's child may be pending: take it first.
    while sys::rt_sigtimedwait(&sigbit(SIGCHLD), None, Some(&Timespec::default())).is_ok() {}
    let child = fork_child(|| {
        let mut ts = Timespec::default();
        while sys::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &mut ts).is_ok() && ts.as_nanos() < 60_000_000 {
            core::hint::spin_loop();
        }
        7
    })?;
    let mut info = Siginfo([0; 128]);
    let got = sys::rt_sigtimedwait(&sigbit(SIGCHLD), Some(&mut info), Some(&ts_ms(WAIT_MS)));
    check_eq!(wait_child(child)?.exit_code(), Some(7));
    check_eq!(got, Ok(SIGCHLD as usize));
    check_eq!((info.signo(), info.code(), info.pid(), info.status()), (SIGCHLD, CLD_EXITED, child, 7));
    // Linux samples these per tick (a loaded host can count a short burst as 1 tick):
    // only a sane upper bound holds on both.
    let (utime, stime) = info.times();
    check!(utime + stime <= 100, "utime {utime} + stime {stime} ticks for 60 ms of CPU time");
    drain_and_restore(sigbit(SIGCHLD), old)
}

fn sigsuspend_waits_and_restores_the_mask() -> TestResult {
    let old_action = catch(SIGUSR1, false)?;
    let old = block(sigbit(SIGUSR1))?;
    let before = hits(SIGUSR1);
    let start = now_ns();
    let child = signal_me_after(SIGUSR1, 20)?;
    check_err!(sys::rt_sigsuspend(&(old & !sigbit(SIGUSR1))), EINTR);
    check!(now_ns() - start >= 20_000_000, "sigsuspend returned before the signal");
    check_eq!(hits(SIGUSR1), before + 1);
    check_eq!(mask()?, old | sigbit(SIGUSR1));
    check_eq!(wait_child(child)?.exit_code(), Some(0));
    set_action(SIGUSR1, &old_action)?;
    drain_and_restore(sigbit(SIGUSR1), old)
}

fn sigsuspend_returns_at_once_for_a_pending_signal() -> TestResult {
    let old_action = catch(SIGUSR2, false)?;
    let old = block(sigbit(SIGUSR2))?;
    let before = hits(SIGUSR2);
    check_ok!(sys::kill(me()?, SIGUSR2));
    check_eq!(hits(SIGUSR2), before);
    check_err!(sys::rt_sigsuspend(&0), EINTR);
    check_eq!(hits(SIGUSR2), before + 1);
    check_eq!(mask()?, old | sigbit(SIGUSR2));
    set_action(SIGUSR2, &old_action)?;
    drain_and_restore(sigbit(SIGUSR2), old)
}

fn sigqueueinfo_handler_sees_the_value() -> TestResult {
    let old_action = catch(SIGUSR1, true)?;
    let before = hits(SIGUSR1);
    let pid = me()?;
    check_ok!(sys::rt_sigqueueinfo(pid, SIGUSR1, &Siginfo::queued(0, SI_QUEUE, pid, 0, 0x1234_5678_9abc)));
    check_eq!(hits(SIGUSR1), before + 1);
    check_eq!(LAST_CODE.load(SeqCst) as i32, SI_QUEUE);
    check_eq!(LAST_VALUE.load(SeqCst), 0x1234_5678_9abc);
    set_action(SIGUSR1, &old_action)?;
    Ok(())
}

fn sigqueueinfo_refuses_forged_kill_codes() -> TestResult {
    // Only to itself may a process send a siginfo claiming kill (code >= 0) or tgkill.
    let parent = me()?;
    let status = run_child(move || {
        let user = sys::rt_sigqueueinfo(parent, SIGUSR1, &Siginfo::queued(0, SI_USER, 0, 0, 0));
        let tkill = sys::rt_sigqueueinfo(parent, SIGUSR1, &Siginfo::queued(0, SI_TKILL, 0, 0, 0));
        let kernel = sys::rt_sigqueueinfo(parent, SIGUSR1, &Siginfo::queued(0, SI_KERNEL, 0, 0, 0));
        status_if((user, tkill, kernel), (Err(ulib::Errno::EPERM), Err(ulib::Errno::EPERM), Err(ulib::Errno::EPERM)))
    })?;
    check_eq!(status.exit_code(), Some(0));
    // To itself, SI_USER goes through.
    let old = block(sigbit(SIGUSR1))?;
    check_ok!(sys::rt_sigqueueinfo(parent, SIGUSR1, &Siginfo::queued(0, SI_USER, 4242, 0, 0)));
    let mut info = Siginfo([0; 128]);
    check_eq!(sys::rt_sigtimedwait(&sigbit(SIGUSR1), Some(&mut info), None), Ok(SIGUSR1 as usize));
    check_eq!((info.code(), info.pid()), (SI_USER, 4242));
    drain_and_restore(sigbit(SIGUSR1), old)
}

fn a_zombie_takes_signals_until_it_is_reaped() -> TestResult {
    // Its pid exists until the parent reaps it: kill and sigqueue succeed (and do
    // nothing); then ESRCH.
    let child = fork_child(|| 0)?;
    let mut si = Siginfo([0; 128]);
    check_ok!(sys::waitid(P_PID, child, Some(&mut si), WEXITED | WNOWAIT));
    check_eq!(sys::kill(child, 0), Ok(0));
    check_eq!(sys::kill(child, SIGUSR1), Ok(0));
    check_eq!(sys::rt_sigqueueinfo(child, SIGUSR1, &Siginfo::queued(0, SI_QUEUE, me()?, 0, 1)), Ok(0));
    check_eq!(wait_child(child)?.exit_code(), Some(0));
    check_err!(sys::kill(child, 0), ESRCH);
    check_err!(sys::rt_sigqueueinfo(child, SIGUSR1, &Siginfo::queued(0, SI_QUEUE, me()?, 0, 1)), ESRCH);
    Ok(())
}

fn tgsigqueueinfo_targets_a_thread() -> TestResult {
    let old = block(sigbit(RT))?;
    let (pid, tid) = (me()?, check_ok!(sys::gettid()) as i32);
    check_ok!(sys::rt_tgsigqueueinfo(pid, tid, RT, &Siginfo::queued(0, SI_QUEUE, pid, 0, 99)));
    let mut info = Siginfo([0; 128]);
    check_eq!(sys::rt_sigtimedwait(&sigbit(RT), Some(&mut info), None), Ok(RT as usize));
    check_eq!((info.code(), info.value()), (SI_QUEUE, 99));
    let q = Siginfo::queued(0, SI_QUEUE, pid, 0, 0);
    check_err!(sys::rt_tgsigqueueinfo(0, tid, RT, &q), EINVAL);
    check_err!(sys::rt_tgsigqueueinfo(pid, 0, RT, &q), EINVAL);
    check_err!(sys::rt_tgsigqueueinfo(pid, tid, 65, &q), EINVAL);
    check_eq!(sys::rt_tgsigqueueinfo(pid, tid, 0, &q), Ok(0));
    drain_and_restore(sigbit(RT), old)
}

fn a_thread_takes_the_process_signals_not_another_threads() -> TestResult {
    // A signal sent to the process may be taken by any thread; one sent to the main
    // thread stays with it.
    let set = sigbit(SIGUSR1) | sigbit(SIGUSR2);
    let old = block(set)?;
    let (pid, tid) = (me()?, check_ok!(sys::gettid()) as i32);
    check_ok!(sys::tgkill(pid, tid, SIGUSR2));
    check_ok!(sys::kill(pid, SIGUSR1));
    let t = check_ok!(ulib::thread::spawn(move || {
        let first = sys::rt_sigtimedwait(&set, None, Some(&ts_ms(WAIT_MS)));
        let second = sys::rt_sigtimedwait(&set, None, Some(&ts_ms(20)));
        status_if((first, second), (Ok(SIGUSR1 as usize), Err(ulib::Errno::EAGAIN)))
    }));
    check_eq!(t.join(), 0);
    check_eq!(pending()? & set, sigbit(SIGUSR2));
    drain_and_restore(set, old)
}

fn blocked_signal_queues_even_when_ignored() -> TestResult {
    let old_action = set_action(SIGUSR2, &SigAction { handler: SIG_IGN, ..SigAction::default() })?;
    // Unblocked, an ignored signal is dropped; blocked, it waits (the action may change).
    check_ok!(sys::kill(me()?, SIGUSR2));
    check_eq!(pending()? & sigbit(SIGUSR2), 0);
    let old = block(sigbit(SIGUSR2))?;
    check_ok!(sys::kill(me()?, SIGUSR2));
    check_eq!(pending()? & sigbit(SIGUSR2), sigbit(SIGUSR2));
    check_eq!(sys::rt_sigtimedwait(&sigbit(SIGUSR2), None, None), Ok(SIGUSR2 as usize));
    set_action(SIGUSR2, &old_action)?;
    drain_and_restore(sigbit(SIGUSR2), old)
}

fn ignoring_a_signal_discards_it_when_pending() -> TestResult {
    let old = block(sigbit(SIGUSR1) | sigbit(RT))?;
    check_ok!(sys::kill(me()?, SIGUSR1));
    check_ok!(sys::kill(me()?, RT));
    check_ok!(sys::kill(me()?, RT));
    check_eq!(pending()? & (sigbit(SIGUSR1) | sigbit(RT)), sigbit(SIGUSR1) | sigbit(RT));
    let ign = SigAction { handler: SIG_IGN, ..SigAction::default() };
    let old1 = set_action(SIGUSR1, &ign)?;
    let old2 = set_action(RT, &ign)?;
    check_eq!(pending()? & (sigbit(SIGUSR1) | sigbit(RT)), 0);
    set_action(SIGUSR1, &old1)?;
    set_action(RT, &old2)?;
    drain_and_restore(sigbit(SIGUSR1) | sigbit(RT), old)
}

fn argument_errors() -> TestResult {
    let set = sigbit(SIGUSR1);
    // SAFETY: refused for the set size before anything is read or written.
    check_err!(sys::ret(unsafe { syscall4(nr::RT_SIGTIMEDWAIT, &raw const set as usize, 0, 0, 4) }), EINVAL);
    // SAFETY: as above, for rt_sigsuspend.
    check_err!(sys::ret(unsafe { syscall2(nr::RT_SIGSUSPEND, &raw const set as usize, 4) }), EINVAL);
    let bad = Timespec { tv_sec: 0, tv_nsec: 1_000_000_000 };
    check_err!(sys::rt_sigtimedwait(&set, None, Some(&bad)), EINVAL);
    // SAFETY: the kernel must refuse the unmapped set.
    check_err!(sys::ret(unsafe { syscall4(nr::RT_SIGTIMEDWAIT, UNMAPPED_ADDR, 0, 0, 8) }), EFAULT);
    let pid = me()?;
    let q = Siginfo::queued(0, SI_QUEUE, pid, 0, 0);
    check_err!(sys::rt_sigqueueinfo(pid, 65, &q), EINVAL);
    check_err!(sys::rt_sigqueueinfo(0x3fff_fff0, SIGUSR1, &q), ESRCH);
    check_eq!(sys::rt_sigqueueinfo(pid, 0, &q), Ok(0));
    // SAFETY: the kernel must refuse the unmapped siginfo.
    check_err!(sys::ret(unsafe { syscall3(nr::RT_SIGQUEUEINFO, pid as usize, SIGUSR1 as usize, UNMAPPED_ADDR) }), EFAULT);
    Ok(())
}
