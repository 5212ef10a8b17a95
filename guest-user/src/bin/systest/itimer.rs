//! setitimer, getitimer, alarm: ITIMER_REAL's SIGALRM (once, periodic, re-armed only
//! when its signal is taken), what getitimer and alarm report, the CPU-time timers
//! ITIMER_VIRTUAL and ITIMER_PROF, fork, and the errors.

use ulib::sys::{self, syscall2};
use ulib::uapi::*;
use ulib::{check, check_eq, check_err, check_ok, nr};

use crate::sigutil::*;
use crate::util::*;

pub const TESTS: &[Test] = tests![
    real_timer_sends_sigalrm_once,
    periodic_real_timer_keeps_sending,
    pause_ends_with_the_alarm,
    getitimer_reports_time_left_and_interval,
    zero_value_disarms_real_but_cpu_timers_keep_the_interval,
    alarm_returns_the_seconds_left,
    alarm_replaces_a_periodic_real_timer,
    pending_sigalrm_holds_the_periodic_timer_back,
    prof_and_virtual_timers_count_cpu_time,
    cpu_timers_do_not_run_while_sleeping,
    cpu_clocks_stand_still_while_sleeping,
    fork_does_not_inherit_the_timers,
    bad_timer_or_times_are_einval,
    bad_pointer_is_efault,
];

const MS: i64 = 1_000;

fn tv(us: i64) -> Timeval {
    Timeval { tv_sec: us / 1_000_000, tv_usec: us % 1_000_000 }
}

fn us(t: Timeval) -> i64 {
    t.tv_sec * 1_000_000 + t.tv_usec
}

/// An itimerval of `value` and `interval` microseconds.
fn itv(value: i64, interval: i64) -> Itimerval {
    Itimerval { it_interval: tv(interval), it_value: tv(value) }
}

fn set(which: i32, value: i64, interval: i64) -> Result<Itimerval, Failure> {
    let mut old = Itimerval::default();
    check_eq!(sys::setitimer(which, Some(&itv(value, interval)), Some(&mut old)), Ok(0));
    Ok(old)
}

fn get(which: i32) -> Result<Itimerval, Failure> {
    let mut cur = itv(1, 1);
    check_eq!(sys::getitimer(which, &mut cur), Ok(0));
    Ok(cur)
}

/// Sleeps until `sig`'s handler has run `n` times in all, or `limit_ms` passed.
fn wait_hits(sig: i32, n: u32, limit_ms: i64) {
    let end = now_ns() + limit_ms * 1_000_000;
    while hits(sig) < n && now_ns() < end {
        sleep_ms(1);
    }
}

fn real_timer_sends_sigalrm_once() -> TestResult {
    let old = catch(SIGALRM, true)?;
    let before = hits(SIGALRM);
    let start = now_ns();
    check_eq!(set(ITIMER_REAL, 20 * MS, 0)?, Itimerval::default());
    wait_hits(SIGALRM, before + 1, 5_000);
    let elapsed = now_ns() - start;
    check_eq!(hits(SIGALRM), before + 1);
    check!(elapsed >= 20_000_000, "SIGALRM after {elapsed} ns");
    check_eq!(LAST_CODE.load(core::sync::atomic::Ordering::SeqCst) as i32, SI_KERNEL);
    sleep_ms(40);
    check_eq!(hits(SIGALRM), before + 1);
    check_eq!(get(ITIMER_REAL)?, Itimerval::default());
    set_action(SIGALRM, &old)?;
    Ok(())
}

fn periodic_real_timer_keeps_sending() -> TestResult {
    let old = catch(SIGALRM, false)?;
    let before = hits(SIGALRM);
    set(ITIMER_REAL, 10 * MS, 10 * MS)?;
    wait_hits(SIGALRM, before + 3, 5_000);
    let prev = set(ITIMER_REAL, 0, 0)?;
    check!(hits(SIGALRM) >= before + 3, "{} SIGALRMs", hits(SIGALRM) - before);
    check_eq!(prev.it_interval, tv(10 * MS));
    check!(us(prev.it_value) <= 10 * MS, "old value {prev:?}");
    let stopped = hits(SIGALRM);
    sleep_ms(30);
    check_eq!(hits(SIGALRM), stopped);
    set_action(SIGALRM, &old)?;
    Ok(())
}

fn pause_ends_with_the_alarm() -> TestResult {
    // Handled, SIGALRM ends pause with EINTR; unhandled, it ends the process.
    let old = catch(SIGALRM, false)?;
    let before = hits(SIGALRM);
    set(ITIMER_REAL, 20 * MS, 0)?;
    check_err!(sys::pause(), EINTR);
    check_eq!(hits(SIGALRM), before + 1);
    set_action(SIGALRM, &old)?;
    let status = run_child(|| {
        let _ = sys::setitimer(ITIMER_REAL, Some(&itv(20 * MS, 0)), None);
        loop {
            let _ = sys::pause();
        }
    })?;
    check_eq!(status.term_signal(), Some(SIGALRM));
    Ok(())
}

fn getitimer_reports_time_left_and_interval() -> TestResult {
    set(ITIMER_REAL, 1_000 * MS, 2_000 * MS)?;
    let cur = get(ITIMER_REAL)?;
    let prev = set(ITIMER_REAL, 0, 0)?;
    check_eq!(cur.it_interval, tv(2_000 * MS));
    check!(us(cur.it_value) > 900 * MS && us(cur.it_value) <= 1_000 * MS, "value {cur:?}");
    check!(us(prev.it_value) > 0 && us(prev.it_value) <= us(cur.it_value), "old {prev:?}");
    check_eq!(get(ITIMER_REAL)?, Itimerval::default());
    Ok(())
}

fn zero_value_disarms_real_but_cpu_timers_keep_the_interval() -> TestResult {
    // Linux drops ITIMER_REAL's interval with a zero value, and keeps a CPU timer's.
    set(ITIMER_REAL, 0, 300 * MS)?;
    check_eq!(get(ITIMER_REAL)?, Itimerval::default());
    set(ITIMER_PROF, 0, 300 * MS)?;
    check_eq!(get(ITIMER_PROF)?, itv(0, 300 * MS));
    check_eq!(set(ITIMER_PROF, 0, 0)?, itv(0, 300 * MS));
    check_eq!(get(ITIMER_PROF)?, Itimerval::default());
    Ok(())
}

fn alarm_returns_the_seconds_left() -> TestResult {
    check_eq!(sys::alarm(5), Ok(0));
    // 4.99... seconds left: rounded to 5.
    check_eq!(sys::alarm(3), Ok(5));
    let cur = get(ITIMER_REAL)?;
    check!(us(cur.it_value) > 2_000 * MS && us(cur.it_value) <= 3_000 * MS, "value {cur:?}");
    check_eq!(cur.it_interval, Timeval::default());
    check_eq!(sys::alarm(0), Ok(3));
    check_eq!(get(ITIMER_REAL)?, Itimerval::default());
    check_eq!(sys::alarm(0), Ok(0));
    Ok(())
}

fn alarm_replaces_a_periodic_real_timer() -> TestResult {
    // 2.2 s left rounds to 2; the alarm has no interval.
    set(ITIMER_REAL, 2_200 * MS, 1_000 * MS)?;
    check_eq!(sys::alarm(10), Ok(2));
    check_eq!(get(ITIMER_REAL)?.it_interval, Timeval::default());
    // Less than a second left is still reported as 1.
    set(ITIMER_REAL, 100 * MS, 0)?;
    check_eq!(sys::alarm(0), Ok(1));
    Ok(())
}

fn pending_sigalrm_holds_the_periodic_timer_back() -> TestResult {
    // A periodic ITIMER_REAL is re-armed when its SIGALRM is taken; while the signal is
    // blocked and pending, the timer stands still (getitimer: no time left).
    let old_mask = block(sigbit(SIGALRM))?;
    set(ITIMER_REAL, 5 * MS, 200 * MS)?;
    sleep_ms(40);
    let mut pending = 0;
    check_ok!(sys::rt_sigpending(&mut pending));
    check_eq!(pending & sigbit(SIGALRM), sigbit(SIGALRM));
    check_eq!(get(ITIMER_REAL)?, itv(0, 200 * MS));
    let mut info = Siginfo([0; 128]);
    check_eq!(sys::rt_sigtimedwait(&sigbit(SIGALRM), Some(&mut info), Some(&Timespec::default())), Ok(SIGALRM as usize));
    check_eq!((info.signo(), info.code(), info.pid()), (SIGALRM, SI_KERNEL, 0));
    // Taken: it runs again, on the period's grid (5 ms + n * 200 ms), less than a period
    // away.
    let cur = get(ITIMER_REAL)?;
    check!(us(cur.it_value) > 0 && us(cur.it_value) <= 200 * MS, "value {cur:?}");
    set(ITIMER_REAL, 0, 0)?;
    drain_and_restore(sigbit(SIGALRM), old_mask)
}

/// Spins until `sig`'s handler ran `n` times in all or `limit_ms` passed; returns the
/// time spun in ns.
fn spin_until_hits(sig: i32, n: u32, limit_ms: i64) -> i64 {
    let start = now_ns();
    while hits(sig) < n && now_ns() - start < limit_ms * 1_000_000 {
        core::hint::spin_loop();
    }
    now_ns() - start
}

fn prof_and_virtual_timers_count_cpu_time() -> TestResult {
    for (which, sig) in [(ITIMER_PROF, SIGPROF), (ITIMER_VIRTUAL, SIGVTALRM)] {
        let old = catch(sig, true)?;
        let before = hits(sig);
        set(which, 30 * MS, 0)?;
        // Linux adds a tick (1 to 10 ms) to the value.
        let cur = get(which)?;
        check!(us(cur.it_value) > 20 * MS && us(cur.it_value) <= 40 * MS, "value {cur:?}");
        let spun = spin_until_hits(sig, before + 1, 5_000);
        check_eq!(hits(sig), before + 1);
        check!(spun >= 25_000_000, "signal {sig} after {spun} ns of spinning");
        check_eq!(LAST_CODE.load(core::sync::atomic::Ordering::SeqCst) as i32, SI_KERNEL);
        check_eq!(get(which)?, Itimerval::default());
        // Periodic: it goes on.
        set(which, 10 * MS, 10 * MS)?;
        spin_until_hits(sig, before + 3, 5_000);
        set(which, 0, 0)?;
        check!(hits(sig) >= before + 3, "{} signals", hits(sig) - before);
        set_action(sig, &old)?;
    }
    Ok(())
}

fn cpu_timers_do_not_run_while_sleeping() -> TestResult {
    set(ITIMER_PROF, 500 * MS, 0)?;
    set(ITIMER_VIRTUAL, 500 * MS, 0)?;
    sleep_ms(60);
    let (prof, virt) = (get(ITIMER_PROF)?, get(ITIMER_VIRTUAL)?);
    set(ITIMER_PROF, 0, 0)?;
    set(ITIMER_VIRTUAL, 0, 0)?;
    check!(us(prof.it_value) > 450 * MS, "ITIMER_PROF went on while asleep: {prof:?}");
    check!(us(virt.it_value) > 450 * MS, "ITIMER_VIRTUAL went on while asleep: {virt:?}");
    Ok(())
}

fn cpu_clocks_stand_still_while_sleeping() -> TestResult {
    // What the CPU timers count, clock_gettime reports: not the time spent asleep.
    let cpu = |clock| {
        let mut ts = Timespec::default();
        sys::clock_gettime(clock, &mut ts).map(|_| ts.as_nanos())
    };
    let (p0, t0) = (check_ok!(cpu(CLOCK_PROCESS_CPUTIME_ID)), check_ok!(cpu(CLOCK_THREAD_CPUTIME_ID)));
    sleep_ms(60);
    let t1 = check_ok!(cpu(CLOCK_THREAD_CPUTIME_ID));
    let p1 = check_ok!(cpu(CLOCK_PROCESS_CPUTIME_ID));
    check!(p1 >= p0 && p1 - p0 < 30_000_000, "process CPU clock went {} ns in a 60 ms sleep", p1 - p0);
    check!(t1 >= t0 && t1 - t0 < 30_000_000, "thread CPU clock went {} ns in a 60 ms sleep", t1 - t0);
    check!(t1 <= p1, "thread {t1} ns > process {p1} ns (read after it)");
    Ok(())
}

fn fork_does_not_inherit_the_timers() -> TestResult {
    set(ITIMER_REAL, 5_000 * MS, 0)?;
    set(ITIMER_PROF, 5_000 * MS, 0)?;
    let status = run_child(|| {
        let mut cur = itv(1, 1);
        let real = sys::getitimer(ITIMER_REAL, &mut cur).is_ok() && cur == Itimerval::default();
        let prof = sys::getitimer(ITIMER_PROF, &mut cur).is_ok() && cur == Itimerval::default();
        status_if((real, prof), (true, true))
    })?;
    set(ITIMER_REAL, 0, 0)?;
    set(ITIMER_PROF, 0, 0)?;
    check_eq!(status.exit_code(), Some(0));
    Ok(())
}

fn bad_timer_or_times_are_einval() -> TestResult {
    let mut cur = Itimerval::default();
    check_err!(sys::getitimer(3, &mut cur), EINVAL);
    check_err!(sys::setitimer(3, Some(&itv(MS, 0)), None), EINVAL);
    check_err!(sys::setitimer(-1, Some(&itv(MS, 0)), None), EINVAL);
    let bad = Itimerval { it_interval: Timeval::default(), it_value: Timeval { tv_sec: 0, tv_usec: 1_000_000 } };
    check_err!(sys::setitimer(ITIMER_REAL, Some(&bad), None), EINVAL);
    let bad = Itimerval { it_interval: Timeval { tv_sec: -1, tv_usec: 0 }, it_value: tv(MS) };
    check_err!(sys::setitimer(ITIMER_PROF, Some(&bad), None), EINVAL);
    // Nothing was armed by the refused calls.
    check_eq!(get(ITIMER_REAL)?, Itimerval::default());
    check_eq!(get(ITIMER_PROF)?, Itimerval::default());
    Ok(())
}

fn bad_pointer_is_efault() -> TestResult {
    // SAFETY: the kernel must refuse the unmapped address.
    let ret = sys::ret(unsafe { syscall2(nr::GETITIMER, ITIMER_REAL as usize, UNMAPPED_ADDR) });
    check_err!(ret, EFAULT);
    // SAFETY: as above, for setitimer's new value (read before anything changes).
    let ret = sys::ret(unsafe { ulib::sys::syscall3(nr::SETITIMER, ITIMER_REAL as usize, UNMAPPED_ADDR, 0) });
    check_err!(ret, EFAULT);
    Ok(())
}
