//! poll, ppoll, select, pselect6: readiness of pipes and files, timeouts (and the time
//! left written back), closed and ignored descriptors, waking when a child writes, a
//! signal ending the wait, and the argument errors.

use core::sync::atomic::{AtomicU32, Ordering::SeqCst};

use ulib::sys::{self, syscall3, syscall5, syscall6};
use ulib::uapi::*;
use ulib::{check, check_eq, check_err, check_ok, nr};

use crate::util::*;

pub const TESTS: &[Test] = tests![
    poll_empty_pipe_times_out,
    poll_pipe_with_data_is_pollin,
    poll_write_end_is_pollout,
    poll_reader_sees_pollhup_after_the_writer_closes,
    poll_closed_fd_is_pollnval,
    poll_negative_fd_is_skipped,
    poll_regular_file_is_always_ready,
    poll_wakes_when_a_child_writes,
    poll_signal_ends_the_wait_with_eintr,
    poll_too_many_fds_is_einval,
    poll_bad_pointer_is_efault,
    ppoll_writes_back_the_time_left,
    ppoll_bad_timespec_or_sigset_size_is_einval,
    ppoll_mask_lets_a_blocked_signal_in,
    select_reports_readable_and_writable_fds,
    select_times_out_and_zeroes_the_timeval,
    select_with_no_fds_sleeps,
    select_closed_fd_is_ebadf,
    select_bad_nfds_or_timeout_is_einval,
    pselect6_bad_sigset_size_is_einval,
];

/// A new pipe: (read end, write end).
fn new_pipe() -> Result<(i32, i32), Failure> {
    let mut fds = [-1; 2];
    check_eq!(sys::pipe(&mut fds), Ok(0));
    Ok((fds[0], fds[1]))
}

fn close_all(fds: &[i32]) -> TestResult {
    for &fd in fds {
        check_ok!(sys::close(fd));
    }
    Ok(())
}

fn pfd(fd: i32, events: i16) -> PollFd {
    PollFd { fd, events, revents: 0 }
}

fn poll_empty_pipe_times_out() -> TestResult {
    let (r, w) = new_pipe()?;
    let mut fds = [pfd(r, POLLIN)];
    let start = now_ns();
    check_eq!(sys::poll(&mut fds, 20), Ok(0));
    check!(now_ns() - start >= 20_000_000, "poll returned before its timeout");
    check_eq!(fds[0].revents, 0);
    check_eq!(sys::poll(&mut fds, 0), Ok(0));
    close_all(&[r, w])
}

fn poll_pipe_with_data_is_pollin() -> TestResult {
    let (r, w) = new_pipe()?;
    check_eq!(sys::write(w, b"x"), Ok(1));
    let mut fds = [pfd(r, POLLIN | POLLOUT)];
    check_eq!(sys::poll(&mut fds, -1), Ok(1));
    // Only what was asked for and is true: a read end is never writable.
    check_eq!(fds[0].revents, POLLIN);
    close_all(&[r, w])
}

fn poll_write_end_is_pollout() -> TestResult {
    let (r, w) = new_pipe()?;
    let mut fds = [pfd(w, POLLOUT), pfd(r, POLLIN)];
    check_eq!(sys::poll(&mut fds, 0), Ok(1));
    check_eq!(fds[0].revents, POLLOUT);
    check_eq!(fds[1].revents, 0);
    close_all(&[r, w])
}

fn poll_reader_sees_pollhup_after_the_writer_closes() -> TestResult {
    // POLLHUP comes whether asked for or not (and the write end, without a reader,
    // reports POLLERR the same way).
    let (r, w) = new_pipe()?;
    check_ok!(sys::close(w));
    let mut fds = [pfd(r, POLLIN)];
    check_eq!(sys::poll(&mut fds, -1), Ok(1));
    check_eq!(fds[0].revents, POLLHUP);
    let (r2, w2) = new_pipe()?;
    check_ok!(sys::close(r2));
    let mut fds = [pfd(w2, 0)];
    check_eq!(sys::poll(&mut fds, 0), Ok(1));
    check_eq!(fds[0].revents, POLLERR);
    close_all(&[r, w2])
}

fn poll_closed_fd_is_pollnval() -> TestResult {
    let fd = lowest_free_fd(3);
    let mut fds = [pfd(fd, POLLIN)];
    check_eq!(sys::poll(&mut fds, 1000), Ok(1));
    check_eq!(fds[0].revents, POLLNVAL);
    Ok(())
}

fn poll_negative_fd_is_skipped() -> TestResult {
    let (r, w) = new_pipe()?;
    let mut fds = [pfd(-1, POLLIN), pfd(w, POLLOUT)];
    fds[0].revents = 0x7f;
    check_eq!(sys::poll(&mut fds, 1000), Ok(1));
    check_eq!(fds[0].revents, 0);
    check_eq!(fds[1].revents, POLLOUT);
    close_all(&[r, w])
}

fn poll_regular_file_is_always_ready() -> TestResult {
    let path = make_file("polled", b"data")?;
    let fd = check_ok!(sys::open(path.as_cstr(), O_RDWR, 0)) as i32;
    let mut fds = [pfd(fd, POLLIN | POLLOUT)];
    check_eq!(sys::poll(&mut fds, -1), Ok(1));
    check_eq!(fds[0].revents, POLLIN | POLLOUT);
    close_all(&[fd])
}

fn poll_wakes_when_a_child_writes() -> TestResult {
    let (r, w) = new_pipe()?;
    let start = now_ns();
    let pid = fork_child(|| {
        sleep_ms(20);
        status_if(sys::write(w, b"late"), Ok(4))
    })?;
    let mut fds = [pfd(-1, 0), pfd(r, POLLIN)];
    check_eq!(sys::poll(&mut fds, 10_000), Ok(1));
    check!(now_ns() - start >= 20_000_000, "poll returned before the child wrote");
    check_eq!(fds[1].revents, POLLIN);
    check_eq!(wait_child(pid)?.exit_code(), Some(0));
    close_all(&[r, w])
}

static HITS: AtomicU32 = AtomicU32::new(0);

extern "C" fn count_signal(_sig: i32) {
    HITS.fetch_add(1, SeqCst);
}

/// Installs a counting handler for SIGUSR1 (the old action comes back with `restore`).
fn count_sigusr1() -> Result<SigAction, Failure> {
    let act = SigAction {
        handler: count_signal as *const () as usize,
        flags: SA_RESTORER,
        restorer: sys::restore_rt as *const () as usize,
        mask: 0,
    };
    let mut old = SigAction::default();
    // SAFETY: the handler only touches an atomic, and uses restore_rt.
    check_ok!(unsafe { sys::rt_sigaction(SIGUSR1, Some(&act), Some(&mut old)) });
    Ok(old)
}

fn restore(old: &SigAction) -> TestResult {
    // SAFETY: puts back what was there.
    check_ok!(unsafe { sys::rt_sigaction(SIGUSR1, Some(old), None) });
    Ok(())
}

/// A child that sends SIGUSR1 to this process after `ms`.
fn signal_me_after(ms: i64) -> Result<i32, Failure> {
    let me = check_ok!(sys::getpid()) as i32;
    fork_child(move || {
        sleep_ms(ms);
        status_if(sys::kill(me, SIGUSR1), Ok(0))
    })
}

fn poll_signal_ends_the_wait_with_eintr() -> TestResult {
    let old = count_sigusr1()?;
    let before = HITS.load(SeqCst);
    let (r, w) = new_pipe()?;
    let pid = signal_me_after(20)?;
    let mut fds = [pfd(r, POLLIN)];
    check_err!(sys::poll(&mut fds, 10_000), EINTR);
    check_eq!(HITS.load(SeqCst), before + 1);
    check_eq!(wait_child(pid)?.exit_code(), Some(0));
    restore(&old)?;
    close_all(&[r, w])
}

fn poll_too_many_fds_is_einval() -> TestResult {
    // More than RLIMIT_NOFILE allows.
    let mut lim = Rlimit::default();
    check_ok!(sys::prlimit64(0, RLIMIT_NOFILE, None, Some(&mut lim)));
    // SAFETY: the kernel refuses the count before it reads the (null) array.
    let ret = sys::ret(unsafe { syscall3(nr::POLL, 0, lim.rlim_cur as usize + 1, 0) });
    check_err!(ret, EINVAL);
    Ok(())
}

fn poll_bad_pointer_is_efault() -> TestResult {
    // SAFETY: the kernel must refuse the unmapped array.
    let ret = sys::ret(unsafe { syscall3(nr::POLL, UNMAPPED_ADDR, 1, 0) });
    check_err!(ret, EFAULT);
    Ok(())
}

fn ppoll_writes_back_the_time_left() -> TestResult {
    // Timed out: nothing left. Ready at once: less than asked, more than nothing.
    let (r, w) = new_pipe()?;
    let mut fds = [pfd(r, POLLIN)];
    let mut ts = Timespec::from_nanos(20_000_000);
    check_eq!(sys::ppoll(&mut fds, Some(&mut ts), None), Ok(0));
    check_eq!(ts, Timespec::default());
    check_eq!(sys::write(w, b"x"), Ok(1));
    let mut ts = Timespec { tv_sec: 5, tv_nsec: 0 };
    check_eq!(sys::ppoll(&mut fds, Some(&mut ts), None), Ok(1));
    check!(ts.tv_sec >= 4 && ts < Timespec { tv_sec: 5, tv_nsec: 0 }, "time left {ts:?}");
    close_all(&[r, w])
}

fn ppoll_bad_timespec_or_sigset_size_is_einval() -> TestResult {
    let (r, w) = new_pipe()?;
    let mut fds = [pfd(r, POLLIN)];
    let bad = Timespec { tv_sec: 0, tv_nsec: 1_000_000_000 };
    let ptr = fds.as_mut_ptr() as usize;
    // SAFETY: the kernel reads the timespec and the fds only.
    let ret = sys::ret(unsafe { syscall5(nr::PPOLL, ptr, 1, &raw const bad as usize, 0, 8) });
    check_err!(ret, EINVAL);
    let neg = Timespec { tv_sec: -1, tv_nsec: 0 };
    // SAFETY: as above.
    let ret = sys::ret(unsafe { syscall5(nr::PPOLL, ptr, 1, &raw const neg as usize, 0, 8) });
    check_err!(ret, EINVAL);
    let mask = 0u64;
    let zero = Timespec::default();
    // SAFETY: as above, and the mask.
    let ret = sys::ret(unsafe { syscall5(nr::PPOLL, ptr, 1, &raw const zero as usize, &raw const mask as usize, 4) });
    check_err!(ret, EINVAL);
    close_all(&[r, w])
}

fn ppoll_mask_lets_a_blocked_signal_in() -> TestResult {
    // SIGUSR1 is blocked; ppoll's mask unblocks it for the wait, which it ends (EINTR),
    // and it is handled then; afterwards it is blocked again.
    let old = count_sigusr1()?;
    let before = HITS.load(SeqCst);
    let blocked = 1u64 << (SIGUSR1 - 1);
    check_ok!(sys::rt_sigprocmask(SIG_BLOCK, Some(&blocked), None));
    let (r, w) = new_pipe()?;
    let pid = signal_me_after(20)?;
    let mut fds = [pfd(r, POLLIN)];
    check_err!(sys::ppoll(&mut fds, None, Some(&0)), EINTR);
    check_eq!(HITS.load(SeqCst), before + 1);
    let mut now = 0u64;
    check_ok!(sys::rt_sigprocmask(SIG_SETMASK, None, Some(&mut now)));
    check_eq!(now, blocked);
    check_ok!(sys::rt_sigprocmask(SIG_SETMASK, Some(&0), None));
    check_eq!(wait_child(pid)?.exit_code(), Some(0));
    restore(&old)?;
    close_all(&[r, w])
}

fn select_reports_readable_and_writable_fds() -> TestResult {
    let (r, w) = new_pipe()?;
    let nfds = r.max(w) + 1;
    let (mut rd, mut wr, mut ex) = (FdSet::default(), FdSet::default(), FdSet::default());
    rd.set(r);
    wr.set(w);
    ex.set(r);
    let mut tv = Timeval::default();
    // Only the write end is ready; the sets come back holding just that.
    check_eq!(sys::select(nfds, Some(&mut rd), Some(&mut wr), Some(&mut ex), Some(&mut tv)), Ok(1));
    check!(!rd.is_set(r) && wr.is_set(w) && !ex.is_set(r), "sets {rd:?} {wr:?} {ex:?}");
    check_eq!(sys::write(w, b"x"), Ok(1));
    let (mut rd, mut wr) = (FdSet::default(), FdSet::default());
    rd.set(r);
    wr.set(w);
    check_eq!(sys::select(nfds, Some(&mut rd), Some(&mut wr), None, None), Ok(2));
    check!(rd.is_set(r) && wr.is_set(w), "sets {rd:?} {wr:?}");
    close_all(&[r, w])
}

fn select_times_out_and_zeroes_the_timeval() -> TestResult {
    let (r, w) = new_pipe()?;
    let mut rd = FdSet::default();
    rd.set(r);
    let mut tv = Timeval { tv_sec: 0, tv_usec: 20_000 };
    let start = now_ns();
    check_eq!(sys::select(r + 1, Some(&mut rd), None, None, Some(&mut tv)), Ok(0));
    check!(now_ns() - start >= 20_000_000, "select returned before its timeout");
    check_eq!(tv, Timeval::default());
    check!(!rd.is_set(r), "the read set still names the pipe");
    close_all(&[r, w])
}

fn select_with_no_fds_sleeps() -> TestResult {
    // The classic portable sleep; microseconds past a second carry over.
    let mut tv = Timeval { tv_sec: 0, tv_usec: 20_000 };
    let start = now_ns();
    check_eq!(sys::select(0, None, None, None, Some(&mut tv)), Ok(0));
    check!(now_ns() - start >= 20_000_000, "select returned before its timeout");
    let (r, w) = new_pipe()?;
    let mut wr = FdSet::default();
    wr.set(w);
    let mut tv = Timeval { tv_sec: 0, tv_usec: 1_500_000 };
    check_eq!(sys::select(w + 1, None, Some(&mut wr), None, Some(&mut tv)), Ok(1));
    check!(tv.tv_sec == 1 && tv.tv_usec <= 500_000, "time left {tv:?}");
    close_all(&[r, w])
}

fn select_closed_fd_is_ebadf() -> TestResult {
    let fd = lowest_free_fd(3);
    let mut rd = FdSet::default();
    rd.set(fd);
    check_err!(sys::select(fd + 1, Some(&mut rd), None, None, None), EBADF);
    Ok(())
}

fn select_bad_nfds_or_timeout_is_einval() -> TestResult {
    check_err!(sys::select(-1, None, None, None, None), EINVAL);
    let mut tv = Timeval { tv_sec: -1, tv_usec: 0 };
    check_err!(sys::select(0, None, None, None, Some(&mut tv)), EINVAL);
    let mut tv = Timeval { tv_sec: 0, tv_usec: -1 };
    check_err!(sys::select(0, None, None, None, Some(&mut tv)), EINVAL);
    Ok(())
}

fn pselect6_bad_sigset_size_is_einval() -> TestResult {
    let mask = 0u64;
    let sig = [&raw const mask as usize, 4];
    let ts = Timespec::default();
    // SAFETY: the kernel reads the timespec and the sigset argument only.
    let ret = sys::ret(unsafe {
        syscall6(nr::PSELECT6, 0, 0, 0, 0, &raw const ts as usize, sig.as_ptr() as usize)
    });
    check_err!(ret, EINVAL);
    let sig = [&raw const mask as usize, 8];
    // SAFETY: as above.
    let ret = sys::ret(unsafe {
        syscall6(nr::PSELECT6, 0, 0, 0, 0, &raw const ts as usize, sig.as_ptr() as usize)
    });
    check_eq!(ret, Ok(0));
    Ok(())
}
