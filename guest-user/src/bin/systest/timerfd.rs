//! timerfd_create, timerfd_settime, timerfd_gettime: one-shot and periodic timers read
//! as expiration counts, absolute deadlines, what gettime reports, readiness for poll,
//! and the errors.

use ulib::sys;
use ulib::uapi::*;
use ulib::{check, check_eq, check_err, check_ok};

use crate::util::*;

pub const TESTS: &[Test] = tests![
    one_shot_timer_expires_once,
    read_before_expiry_is_eagain_when_nonblocking,
    periodic_timer_counts_missed_periods,
    gettime_reports_time_left_and_interval,
    settime_returns_the_old_setting_and_zero_disarms,
    absolute_deadline_on_monotonic_and_realtime,
    settime_drops_unread_expirations,
    expired_timer_is_readable_for_poll,
    bad_clock_flags_or_times_are_einval,
    not_a_timerfd_is_einval_and_no_fd_is_ebadf,
    short_read_and_any_write_are_einval,
];

const MS: i64 = 1_000_000;

fn spec(value_ns: i64, interval_ns: i64) -> Itimerspec {
    Itimerspec { it_interval: Timespec::from_nanos(interval_ns), it_value: Timespec::from_nanos(value_ns) }
}

fn timer(clock: i32, flags: i32) -> Result<i32, Failure> {
    Ok(check_ok!(sys::timerfd_create(clock, flags)) as i32)
}

/// Reads a timerfd's expiration count.
fn ticks(fd: i32) -> ulib::errno::Result<u64> {
    let mut buf = [0u8; 8];
    sys::read(fd, &mut buf).map(|_| u64::from_ne_bytes(buf))
}

fn one_shot_timer_expires_once() -> TestResult {
    let fd = timer(CLOCK_MONOTONIC, 0)?;
    let start = now_ns();
    check_eq!(sys::timerfd_settime(fd, 0, &spec(20 * MS, 0), None), Ok(0));
    check_eq!(ticks(fd), Ok(1));
    check!(now_ns() - start >= 20 * MS, "read returned before the timer expired");
    let mut fds = [PollFd { fd, events: POLLIN, revents: 0 }];
    check_eq!(sys::poll(&mut fds, 30), Ok(0));
    check_ok!(sys::close(fd));
    Ok(())
}

fn read_before_expiry_is_eagain_when_nonblocking() -> TestResult {
    let fd = timer(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)?;
    check_err!(ticks(fd), EAGAIN);
    check_eq!(sys::timerfd_settime(fd, 0, &spec(10_000 * MS, 0), None), Ok(0));
    check_err!(ticks(fd), EAGAIN);
    check_eq!(sys::fcntl(fd, F_GETFD, 0), Ok(FD_CLOEXEC));
    check_ok!(sys::close(fd));
    Ok(())
}

fn periodic_timer_counts_missed_periods() -> TestResult {
    // Every 10 ms from 10 ms on; after 55 ms about 5 periods have passed.
    let fd = timer(CLOCK_MONOTONIC, 0)?;
    check_eq!(sys::timerfd_settime(fd, 0, &spec(10 * MS, 10 * MS), None), Ok(0));
    sleep_ms(55);
    let n = check_ok!(ticks(fd));
    check!((4..=20).contains(&n), "{n} expirations after 55 ms of a 10 ms timer");
    // And it goes on.
    check_eq!(ticks(fd).map(|n| n >= 1), Ok(true));
    check_ok!(sys::close(fd));
    Ok(())
}

fn gettime_reports_time_left_and_interval() -> TestResult {
    let fd = timer(CLOCK_MONOTONIC, 0)?;
    let mut cur = spec(1, 1);
    check_eq!(sys::timerfd_gettime(fd, &mut cur), Ok(0));
    check_eq!(cur, Itimerspec::default());
    check_eq!(sys::timerfd_settime(fd, 0, &spec(1000 * MS, 2000 * MS), None), Ok(0));
    check_eq!(sys::timerfd_gettime(fd, &mut cur), Ok(0));
    check_eq!(cur.it_interval, Timespec { tv_sec: 2, tv_nsec: 0 });
    let left = cur.it_value.as_nanos();
    check!(left > 900 * MS && left <= 1000 * MS, "time left {left} ns");
    check_ok!(sys::close(fd));
    Ok(())
}

fn settime_returns_the_old_setting_and_zero_disarms() -> TestResult {
    let fd = timer(CLOCK_MONOTONIC, TFD_NONBLOCK)?;
    check_eq!(sys::timerfd_settime(fd, 0, &spec(30 * MS, 500 * MS), None), Ok(0));
    let mut old = Itimerspec::default();
    check_eq!(sys::timerfd_settime(fd, 0, &spec(0, 0), Some(&mut old)), Ok(0));
    check_eq!(old.it_interval, Timespec::from_nanos(500 * MS));
    check!(old.it_value.as_nanos() > 0 && old.it_value.as_nanos() <= 30 * MS, "old {old:?}");
    sleep_ms(40);
    check_err!(ticks(fd), EAGAIN);
    let mut cur = spec(1, 1);
    check_eq!(sys::timerfd_gettime(fd, &mut cur), Ok(0));
    check_eq!(cur, Itimerspec::default());
    check_ok!(sys::close(fd));
    Ok(())
}

fn absolute_deadline_on_monotonic_and_realtime() -> TestResult {
    let fd = timer(CLOCK_MONOTONIC, 0)?;
    let start = now_ns();
    check_eq!(sys::timerfd_settime(fd, TFD_TIMER_ABSTIME, &spec(start + 20 * MS, 0), None), Ok(0));
    check_eq!(ticks(fd), Ok(1));
    check!(now_ns() - start >= 20 * MS, "read returned before the deadline");
    check_ok!(sys::close(fd));
    // A REALTIME deadline already past expires at once.
    let fd = timer(CLOCK_REALTIME, 0)?;
    let mut now = Timespec::default();
    check_ok!(sys::clock_gettime(CLOCK_REALTIME, &mut now));
    let past = Itimerspec { it_interval: Timespec::default(), it_value: Timespec { tv_sec: now.tv_sec - 10, tv_nsec: 0 } };
    check_eq!(sys::timerfd_settime(fd, TFD_TIMER_ABSTIME, &past, None), Ok(0));
    check_eq!(ticks(fd), Ok(1));
    check_ok!(sys::close(fd));
    Ok(())
}

fn settime_drops_unread_expirations() -> TestResult {
    let fd = timer(CLOCK_MONOTONIC, TFD_NONBLOCK)?;
    check_eq!(sys::timerfd_settime(fd, 0, &spec(MS, 0), None), Ok(0));
    sleep_ms(10);
    check_eq!(sys::timerfd_settime(fd, 0, &spec(10_000 * MS, 0), None), Ok(0));
    check_err!(ticks(fd), EAGAIN);
    check_ok!(sys::close(fd));
    Ok(())
}

fn expired_timer_is_readable_for_poll() -> TestResult {
    let fd = timer(CLOCK_MONOTONIC, 0)?;
    check_eq!(sys::timerfd_settime(fd, 0, &spec(20 * MS, 0), None), Ok(0));
    let mut fds = [PollFd { fd, events: POLLIN | POLLOUT, revents: 0 }];
    let start = now_ns();
    check_eq!(sys::poll(&mut fds, 10_000), Ok(1));
    check!(now_ns() - start >= 20 * MS, "poll returned before the timer expired");
    check_eq!(fds[0].revents, POLLIN);
    check_eq!(ticks(fd), Ok(1));
    check_ok!(sys::close(fd));
    Ok(())
}

fn bad_clock_flags_or_times_are_einval() -> TestResult {
    check_err!(sys::timerfd_create(CLOCK_PROCESS_CPUTIME_ID, 0), EINVAL);
    check_err!(sys::timerfd_create(CLOCK_MONOTONIC_RAW, 0), EINVAL);
    check_err!(sys::timerfd_create(CLOCK_MONOTONIC, 1), EINVAL);
    let fd = timer(CLOCK_MONOTONIC, 0)?;
    check_err!(sys::timerfd_settime(fd, 4, &spec(MS, 0), None), EINVAL);
    let bad = Itimerspec { it_interval: Timespec::default(), it_value: Timespec { tv_sec: 0, tv_nsec: 1_000_000_000 } };
    check_err!(sys::timerfd_settime(fd, 0, &bad, None), EINVAL);
    let bad = Itimerspec { it_interval: Timespec { tv_sec: -1, tv_nsec: 0 }, it_value: Timespec::from_nanos(MS) };
    check_err!(sys::timerfd_settime(fd, 0, &bad, None), EINVAL);
    check_ok!(sys::close(fd));
    Ok(())
}

fn not_a_timerfd_is_einval_and_no_fd_is_ebadf() -> TestResult {
    let mut fds = [-1; 2];
    check_eq!(sys::pipe(&mut fds), Ok(0));
    let mut cur = Itimerspec::default();
    check_err!(sys::timerfd_settime(fds[0], 0, &spec(MS, 0), None), EINVAL);
    check_err!(sys::timerfd_gettime(fds[0], &mut cur), EINVAL);
    let free = lowest_free_fd(3);
    check_err!(sys::timerfd_settime(free, 0, &spec(MS, 0), None), EBADF);
    check_err!(sys::timerfd_gettime(free, &mut cur), EBADF);
    check_ok!(sys::close(fds[0]));
    check_ok!(sys::close(fds[1]));
    Ok(())
}

fn short_read_and_any_write_are_einval() -> TestResult {
    let fd = timer(CLOCK_MONOTONIC, 0)?;
    check_eq!(sys::timerfd_settime(fd, 0, &spec(MS, 0), None), Ok(0));
    sleep_ms(5);
    let mut small = [0u8; 4];
    check_err!(sys::read(fd, &mut small), EINVAL);
    check_err!(sys::write(fd, &1u64.to_ne_bytes()), EINVAL);
    check_eq!(ticks(fd), Ok(1));
    check_ok!(sys::close(fd));
    Ok(())
}
