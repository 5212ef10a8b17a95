//! Time: clock_gettime, clock_getres, gettimeofday, nanosleep, clock_nanosleep.

use ulib::sys::{self, syscall2};
use ulib::uapi::*;
use ulib::{check, check_eq, check_err, check_ok, nr};

use crate::util::*;

pub const TESTS: &[Test] = tests![
    clock_gettime_monotonic_never_goes_back,
    clock_gettime_realtime_is_after_2020,
    clock_gettime_every_clock_has_nsec_below_one_second,
    clock_gettime_unknown_clock_is_einval,
    clock_gettime_bad_pointer_is_efault,
    clock_getres_monotonic_is_at_most_a_millisecond,
    process_cputime_advances_while_spinning,
    gettimeofday_agrees_with_realtime,
    gettimeofday_with_null_pointer_succeeds,
    gettimeofday_bad_pointer_is_efault,
    nanosleep_sleeps_at_least_the_request,
    nanosleep_zero_returns_at_once,
    nanosleep_nsec_out_of_range_is_einval,
    nanosleep_negative_seconds_is_einval,
    nanosleep_bad_pointer_is_efault,
    clock_nanosleep_absolute_deadline_is_reached,
    clock_nanosleep_past_deadline_returns_at_once,
    clock_nanosleep_relative_on_realtime,
    clock_nanosleep_unknown_clock_or_bad_nsec_is_einval,
    clock_nanosleep_on_thread_cputime_is_eopnotsupp,
];

const MS: i64 = 1_000_000;

fn clock_gettime_monotonic_never_goes_back() -> TestResult {
    let (mut a, mut b) = (Timespec::default(), Timespec::default());
    check_eq!(sys::clock_gettime(CLOCK_MONOTONIC, &mut a), Ok(0));
    sleep_ms(1);
    check_eq!(sys::clock_gettime(CLOCK_MONOTONIC, &mut b), Ok(0));
    check!(b > a, "{b:?} is not after {a:?}");
    Ok(())
}

fn clock_gettime_realtime_is_after_2020() -> TestResult {
    // Wall-clock time: the kernel must have learnt the date (RTC, host, ...).
    let mut ts = Timespec::default();
    check_ok!(sys::clock_gettime(CLOCK_REALTIME, &mut ts));
    check!(
        ts.tv_sec > 1_577_836_800,
        "tv_sec = {} (2020-01-01 is 1577836800)",
        ts.tv_sec
    );
    Ok(())
}

fn clock_gettime_every_clock_has_nsec_below_one_second() -> TestResult {
    let clocks = [
        CLOCK_REALTIME,
        CLOCK_MONOTONIC,
        CLOCK_PROCESS_CPUTIME_ID,
        CLOCK_THREAD_CPUTIME_ID,
        CLOCK_MONOTONIC_RAW,
        CLOCK_BOOTTIME,
    ];
    for clock in clocks {
        let mut ts = Timespec {
            tv_sec: -1,
            tv_nsec: -1,
        };
        check_eq!(sys::clock_gettime(clock, &mut ts), Ok(0));
        check!(
            ts.tv_sec >= 0 && (0..1_000_000_000).contains(&ts.tv_nsec),
            "clock {clock}: {ts:?}"
        );
    }
    Ok(())
}

fn clock_gettime_unknown_clock_is_einval() -> TestResult {
    let mut ts = Timespec::default();
    check_err!(sys::clock_gettime(100, &mut ts), EINVAL);
    Ok(())
}

fn clock_gettime_bad_pointer_is_efault() -> TestResult {
    for addr in [UNMAPPED_ADDR, KERNEL_ADDR] {
        // SAFETY: the kernel must refuse to write the timespec at addr.
        let ret = sys::ret(unsafe { syscall2(nr::CLOCK_GETTIME, CLOCK_MONOTONIC as usize, addr) });
        check_err!(ret, EFAULT);
    }
    Ok(())
}

fn clock_getres_monotonic_is_at_most_a_millisecond() -> TestResult {
    let mut res = Timespec::default();
    check_eq!(sys::clock_getres(CLOCK_MONOTONIC, Some(&mut res)), Ok(0));
    check!(
        res.tv_sec == 0 && res.tv_nsec > 0 && res.tv_nsec <= MS,
        "{res:?}"
    );
    check_eq!(sys::clock_getres(CLOCK_MONOTONIC, None), Ok(0)); // NULL: just validate the clock
    check_err!(sys::clock_getres(100, None), EINVAL);
    Ok(())
}

fn process_cputime_advances_while_spinning() -> TestResult {
    // 20 ms of user-mode work: more than one tick for a kernel that counts by ticks.
    let (mut a, mut b) = (Timespec::default(), Timespec::default());
    check_ok!(sys::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &mut a));
    let start = now_ns();
    while now_ns() - start < 20 * MS {
        for i in 0..2_000_000 {
            core::hint::black_box(i);
        }
    }
    check_ok!(sys::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &mut b));
    check!(b > a, "{b:?} is not after {a:?}");
    Ok(())
}

fn gettimeofday_agrees_with_realtime() -> TestResult {
    let mut tv = Timeval::default();
    let mut ts = Timespec::default();
    check_eq!(sys::gettimeofday(Some(&mut tv)), Ok(0));
    check_ok!(sys::clock_gettime(CLOCK_REALTIME, &mut ts));
    check!((0..1_000_000).contains(&tv.tv_usec), "{tv:?}");
    check!((ts.tv_sec - tv.tv_sec).abs() <= 1, "{tv:?} against {ts:?}");
    Ok(())
}

fn gettimeofday_with_null_pointer_succeeds() -> TestResult {
    check_eq!(sys::gettimeofday(None), Ok(0));
    Ok(())
}

fn gettimeofday_bad_pointer_is_efault() -> TestResult {
    // SAFETY: the kernel must refuse to write the timeval at address 1.
    let ret = sys::ret(unsafe { syscall2(nr::GETTIMEOFDAY, UNMAPPED_ADDR, 0) });
    check_err!(ret, EFAULT);
    Ok(())
}

fn nanosleep_sleeps_at_least_the_request() -> TestResult {
    let start = now_ns();
    check_eq!(sys::nanosleep(&Timespec::from_nanos(10 * MS), None), Ok(0));
    let slept = now_ns() - start;
    check!(slept >= 10 * MS, "slept {slept} ns");
    Ok(())
}

fn nanosleep_zero_returns_at_once() -> TestResult {
    check_eq!(sys::nanosleep(&Timespec::default(), None), Ok(0));
    Ok(())
}

fn nanosleep_nsec_out_of_range_is_einval() -> TestResult {
    check_err!(
        sys::nanosleep(
            &Timespec {
                tv_sec: 0,
                tv_nsec: 1_000_000_000
            },
            None
        ),
        EINVAL
    );
    check_err!(
        sys::nanosleep(
            &Timespec {
                tv_sec: 0,
                tv_nsec: -1
            },
            None
        ),
        EINVAL
    );
    Ok(())
}

fn nanosleep_negative_seconds_is_einval() -> TestResult {
    check_err!(
        sys::nanosleep(
            &Timespec {
                tv_sec: -1,
                tv_nsec: 0
            },
            None
        ),
        EINVAL
    );
    Ok(())
}

fn nanosleep_bad_pointer_is_efault() -> TestResult {
    // SAFETY: the kernel must refuse to read the request at address 1.
    let ret = sys::ret(unsafe { syscall2(nr::NANOSLEEP, UNMAPPED_ADDR, 0) });
    check_err!(ret, EFAULT);
    Ok(())
}

fn clock_nanosleep_absolute_deadline_is_reached() -> TestResult {
    let deadline = Timespec::from_nanos(now_ns() + 5 * MS);
    check_eq!(
        sys::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, None),
        Ok(0)
    );
    let mut now = Timespec::default();
    check_ok!(sys::clock_gettime(CLOCK_MONOTONIC, &mut now));
    check!(now >= deadline, "woke at {now:?}, before {deadline:?}");
    Ok(())
}

fn clock_nanosleep_past_deadline_returns_at_once() -> TestResult {
    let past = Timespec {
        tv_sec: 0,
        tv_nsec: 1,
    };
    check_eq!(
        sys::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &past, None),
        Ok(0)
    );
    Ok(())
}

fn clock_nanosleep_relative_on_realtime() -> TestResult {
    let start = now_ns();
    check_eq!(
        sys::clock_nanosleep(CLOCK_REALTIME, 0, &Timespec::from_nanos(2 * MS), None),
        Ok(0)
    );
    check!(now_ns() - start >= 2 * MS);
    Ok(())
}

fn clock_nanosleep_unknown_clock_or_bad_nsec_is_einval() -> TestResult {
    check_err!(
        sys::clock_nanosleep(100, 0, &Timespec::from_nanos(1), None),
        EINVAL
    );
    check_err!(
        sys::clock_nanosleep(
            CLOCK_MONOTONIC,
            0,
            &Timespec {
                tv_sec: 0,
                tv_nsec: -1
            },
            None
        ),
        EINVAL
    );
    Ok(())
}

fn clock_nanosleep_on_thread_cputime_is_eopnotsupp() -> TestResult {
    // A valid clock that cannot be slept on (the man page still says EINVAL).
    check_err!(
        sys::clock_nanosleep(CLOCK_THREAD_CPUTIME_ID, 0, &Timespec::from_nanos(1), None),
        EOPNOTSUPP
    );
    Ok(())
}
