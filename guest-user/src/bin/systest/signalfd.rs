//! signalfd4, signalfd: reading pending signals of the mask as `signalfd_siginfo`
//! (one or many, blocking or not), poll readiness, a new mask for an existing signalfd,
//! SIGCHLD and SIGALRM through it, the flags, and the errors.

use ulib::sys::{self, syscall1, syscall4};
use ulib::uring::{Ring, opcode, types::Fd};
use ulib::uapi::*;
use ulib::{check, check_eq, check_err, check_ok, nr};

use crate::sigutil::*;
use crate::util::*;

pub const TESTS: &[Test] = tests![
    read_returns_the_pending_signal,
    read_takes_as_many_as_fit,
    blocking_read_waits_for_a_signal,
    poll_reports_a_pending_signal,
    select_epoll_and_io_uring_see_a_pending_signal,
    new_mask_for_an_existing_signalfd,
    sigchld_and_sigalrm_through_a_signalfd,
    inherited_signalfd_reads_the_readers_signals,
    flags_cloexec_and_nonblock,
    bad_size_flags_or_fd_are_refused,
    short_read_and_any_write_are_einval,
];

const SIZE: usize = size_of::<SignalfdSiginfo>();
const RT: i32 = SIGRTMIN_KERNEL + 9;

fn me() -> Result<i32, Failure> {
    Ok(check_ok!(sys::getpid()) as i32)
}

fn sfd(mask: u64, flags: i32) -> Result<i32, Failure> {
    Ok(check_ok!(sys::signalfd4(-1, &mask, flags)) as i32)
}

/// Reads one `signalfd_siginfo`.
fn read_one(fd: i32) -> ulib::errno::Result<SignalfdSiginfo> {
    let mut buf = [0u8; SIZE];
    let n = sys::read(fd, &mut buf)?;
    Ok(decode(&buf[..n]))
}

fn decode(bytes: &[u8]) -> SignalfdSiginfo {
    let mut info = SignalfdSiginfo::default();
    if bytes.len() >= SIZE {
        // SAFETY: SignalfdSiginfo is 128 bytes of integers; any bytes are a valid value.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), (&raw mut info).cast::<u8>(), SIZE) };
    }
    info
}

fn read_returns_the_pending_signal() -> TestResult {
    let old = block(sigbit(SIGUSR1))?;
    let fd = sfd(sigbit(SIGUSR1), SFD_NONBLOCK)?;
    check_err!(read_one(fd), EAGAIN);
    check_ok!(sys::kill(me()?, SIGUSR1));
    let info = check_ok!(read_one(fd));
    let uid = check_ok!(sys::getuid()) as u32;
    check_eq!(
        (info.ssi_signo, info.ssi_errno, info.ssi_code, info.ssi_pid, info.ssi_uid),
        (SIGUSR1 as u32, 0, SI_USER, me()? as u32, uid)
    );
    check_eq!((info.ssi_int, info.ssi_ptr, info.ssi_status), (0, 0, 0));
    // Taken: no longer pending.
    check_err!(read_one(fd), EAGAIN);
    let mut pending = 0;
    check_ok!(sys::rt_sigpending(&mut pending));
    check_eq!(pending & sigbit(SIGUSR1), 0);
    check_ok!(sys::close(fd));
    drain_and_restore(sigbit(SIGUSR1), old)
}

fn read_takes_as_many_as_fit() -> TestResult {
    let set = sigbit(RT) | sigbit(SIGUSR2);
    let old = block(set)?;
    let fd = sfd(set, SFD_NONBLOCK)?;
    let pid = me()?;
    for v in 1..=3u64 {
        check_ok!(sys::rt_sigqueueinfo(pid, RT, &Siginfo::queued(0, SI_QUEUE, pid, 0, v << 32 | v)));
    }
    check_ok!(sys::kill(pid, SIGUSR2));
    // Room for two and a half: two come back, lowest signal first.
    let mut buf = [0u8; 2 * SIZE + SIZE / 2];
    check_eq!(sys::read(fd, &mut buf), Ok(2 * SIZE));
    let (a, b) = (decode(&buf[..SIZE]), decode(&buf[SIZE..2 * SIZE]));
    check_eq!((a.ssi_signo, a.ssi_code), (SIGUSR2 as u32, SI_USER));
    check_eq!((b.ssi_signo, b.ssi_code, b.ssi_pid, b.ssi_int, b.ssi_ptr), (RT as u32, SI_QUEUE, pid as u32, 1, 1 << 32 | 1));
    let mut big = [0u8; 4 * SIZE];
    check_eq!(sys::read(fd, &mut big), Ok(2 * SIZE));
    check_eq!(decode(&big[..SIZE]).ssi_ptr, 2 << 32 | 2);
    check_eq!(decode(&big[SIZE..2 * SIZE]).ssi_int, 3);
    check_err!(sys::read(fd, &mut big), EAGAIN);
    check_ok!(sys::close(fd));
    drain_and_restore(set, old)
}

fn blocking_read_waits_for_a_signal() -> TestResult {
    let old = block(sigbit(SIGUSR1))?;
    let fd = sfd(sigbit(SIGUSR1), 0)?;
    let start = now_ns();
    let child = signal_me_after(SIGUSR1, 20)?;
    let got = read_one(fd);
    check_eq!(wait_child(child)?.exit_code(), Some(0));
    let info = check_ok!(got);
    check!(now_ns() - start >= 20_000_000, "read returned before the signal");
    check_eq!((info.ssi_signo, info.ssi_pid), (SIGUSR1 as u32, child as u32));
    check_ok!(sys::close(fd));
    drain_and_restore(sigbit(SIGUSR1), old)
}

fn poll_reports_a_pending_signal() -> TestResult {
    let old = block(sigbit(SIGUSR2))?;
    let fd = sfd(sigbit(SIGUSR2), 0)?;
    let mut fds = [PollFd { fd, events: POLLIN | POLLOUT, revents: 0 }];
    check_eq!(sys::poll(&mut fds, 0), Ok(0));
    // Woken by a child's signal.
    let child = signal_me_after(SIGUSR2, 20)?;
    let got = sys::poll(&mut fds, 10_000);
    check_eq!(wait_child(child)?.exit_code(), Some(0));
    check_eq!(got, Ok(1));
    check_eq!(fds[0].revents, POLLIN);
    check_eq!(check_ok!(read_one(fd)).ssi_signo, SIGUSR2 as u32);
    check_eq!(sys::poll(&mut fds, 0), Ok(0));
    check_ok!(sys::close(fd));
    drain_and_restore(sigbit(SIGUSR2), old)
}

fn select_epoll_and_io_uring_see_a_pending_signal() -> TestResult {
    const EPOLL_CTL_ADD: usize = 1;
    let old = block(sigbit(SIGUSR1))?;
    let fd = sfd(sigbit(SIGUSR1), SFD_NONBLOCK)?;
    // SAFETY: no memory is passed.
    let ep = check_ok!(sys::ret(unsafe { syscall1(nr::EPOLL_CREATE1, 0) })) as i32;
    // struct epoll_event { u32 events; u64 data } (packed on x86-64): 12 bytes.
    let mut ev = [0u32; 3];
    ev[0] = POLLIN as u32;
    ev[1] = 77;
    // SAFETY: the kernel reads the 12-byte event.
    check_ok!(sys::ret(unsafe { syscall4(nr::EPOLL_CTL, ep as usize, EPOLL_CTL_ADD, fd as usize, ev.as_ptr() as usize) }));
    let epoll_wait = |ev: &mut [u32; 3], ms: i32| {
        // SAFETY: the kernel writes at most one 12-byte event.
        sys::ret(unsafe { syscall4(nr::EPOLL_WAIT, ep as usize, ev.as_mut_ptr() as usize, 1, ms as usize) })
    };
    let mut set = FdSet::default();
    set.set(fd);
    check_eq!(sys::select(fd + 1, Some(&mut set), None, None, Some(&mut Timeval::default())), Ok(0));
    check_eq!(epoll_wait(&mut ev, 0), Ok(0));
    let mut ring = check_ok!(Ring::new(4));
    check!(ring.push(&opcode::PollAdd::new(Fd(fd), POLLIN as u32).build().user_data(5)));
    check_ok!(ring.submit());
    check!(ring.peek_cqe().is_none(), "POLL_ADD completed with no signal pending");
    // A child's signal completes the poll.
    let child = signal_me_after(SIGUSR1, 20)?;
    let cqe = ring.wait_cqe();
    check_eq!(wait_child(child)?.exit_code(), Some(0));
    let cqe = check_ok!(cqe);
    check_eq!((cqe.user_data, cqe.res as u32 & POLLIN as u32), (5, POLLIN as u32));
    let mut set = FdSet::default();
    set.set(fd);
    check_eq!(sys::select(fd + 1, Some(&mut set), None, None, Some(&mut Timeval::default())), Ok(1));
    check!(set.is_set(fd), "select did not report the signalfd");
    check_eq!(epoll_wait(&mut ev, 0), Ok(1));
    check_eq!((ev[0], ev[1]), (POLLIN as u32, 77));
    check_eq!(check_ok!(read_one(fd)).ssi_signo, SIGUSR1 as u32);
    check_eq!(epoll_wait(&mut ev, 0), Ok(0));
    drop(ring);
    check_ok!(sys::close(ep));
    check_ok!(sys::close(fd));
    drain_and_restore(sigbit(SIGUSR1), old)
}

fn new_mask_for_an_existing_signalfd() -> TestResult {
    let set = sigbit(SIGUSR1) | sigbit(SIGUSR2);
    let old = block(set)?;
    let fd = sfd(sigbit(SIGUSR1), SFD_NONBLOCK)?;
    check_ok!(sys::kill(me()?, SIGUSR2));
    check_err!(read_one(fd), EAGAIN);
    check_eq!(sys::signalfd4(fd, &sigbit(SIGUSR2), 0), Ok(fd as usize));
    check_eq!(check_ok!(read_one(fd)).ssi_signo, SIGUSR2 as u32);
    // The old form, without flags.
    check_eq!(sys::signalfd(fd, &set), Ok(fd as usize));
    check_ok!(sys::kill(me()?, SIGUSR1));
    check_eq!(check_ok!(read_one(fd)).ssi_signo, SIGUSR1 as u32);
    // The flags of the file stay (still nonblocking).
    check_err!(read_one(fd), EAGAIN);
    check_ok!(sys::close(fd));
    drain_and_restore(set, old)
}

fn sigchld_and_sigalrm_through_a_signalfd() -> TestResult {
    let set = sigbit(SIGCHLD) | sigbit(SIGALRM);
    let old = block(set)?;
    // A SIGCHLD of an earlier test's child may be pending: take it first.
    while sys::rt_sigtimedwait(&set, None, Some(&Timespec::default())).is_ok() {}
    let fd = sfd(set, 0)?;
    let child = fork_child(|| 3)?;
    let info = check_ok!(read_one(fd));
    check_eq!(wait_child(child)?.exit_code(), Some(3));
    check_eq!((info.ssi_signo, info.ssi_code, info.ssi_pid, info.ssi_status), (SIGCHLD as u32, CLD_EXITED, child as u32, 3));
    let it = Itimerval { it_interval: Timeval::default(), it_value: Timeval { tv_sec: 0, tv_usec: 10_000 } };
    check_eq!(sys::setitimer(ITIMER_REAL, Some(&it), None), Ok(0));
    let info = check_ok!(read_one(fd));
    check_eq!((info.ssi_signo, info.ssi_code, info.ssi_pid), (SIGALRM as u32, SI_KERNEL, 0));
    check_ok!(sys::close(fd));
    drain_and_restore(set, old)
}

fn inherited_signalfd_reads_the_readers_signals() -> TestResult {
    // After fork the child's reads take the child's signals, not the parent's.
    let old = block(sigbit(SIGUSR1))?;
    let fd = sfd(sigbit(SIGUSR1), SFD_NONBLOCK)?;
    check_ok!(sys::kill(me()?, SIGUSR1));
    let status = run_child(move || {
        let none = read_one(fd).map(|i| i.ssi_signo);
        let me = sys::getpid().unwrap_or(0) as i32;
        let _ = sys::kill(me, SIGUSR1);
        let mine = read_one(fd).map(|i| (i.ssi_signo, i.ssi_pid as i32));
        status_if((none, mine), (Err(ulib::Errno::EAGAIN), Ok((SIGUSR1 as u32, me))))
    })?;
    check_eq!(status.exit_code(), Some(0));
    // The parent's is still there.
    check_eq!(check_ok!(read_one(fd)).ssi_pid as i32, me()?);
    check_ok!(sys::close(fd));
    drain_and_restore(sigbit(SIGUSR1), old)
}

fn flags_cloexec_and_nonblock() -> TestResult {
    let fd = sfd(sigbit(SIGUSR1), SFD_CLOEXEC | SFD_NONBLOCK)?;
    check_eq!(sys::fcntl(fd, F_GETFD, 0), Ok(FD_CLOEXEC));
    check_eq!(check_ok!(sys::fcntl(fd, F_GETFL, 0)) as i32 & (O_NONBLOCK | O_ACCMODE), O_NONBLOCK | O_RDWR);
    check_ok!(sys::close(fd));
    let fd = sfd(sigbit(SIGUSR1), 0)?;
    check_eq!(sys::fcntl(fd, F_GETFD, 0), Ok(0));
    check_eq!(check_ok!(sys::fcntl(fd, F_GETFL, 0)) as i32 & O_NONBLOCK, 0);
    check_ok!(sys::close(fd));
    Ok(())
}

fn bad_size_flags_or_fd_are_refused() -> TestResult {
    let mask = sigbit(SIGUSR1);
    // SAFETY: refused for its size before the mask is read.
    check_err!(sys::ret(unsafe { syscall4(nr::SIGNALFD4, usize::MAX, &raw const mask as usize, 4, 0) }), EINVAL);
    // SAFETY: the kernel must refuse the unmapped mask.
    check_err!(sys::ret(unsafe { syscall4(nr::SIGNALFD4, usize::MAX, UNMAPPED_ADDR, 8, 0) }), EFAULT);
    check_err!(sys::signalfd4(-1, &mask, 1), EINVAL);
    check_err!(sys::signalfd4(-1, &mask, O_APPEND), EINVAL);
    let free = lowest_free_fd(3);
    check_err!(sys::signalfd4(free, &mask, 0), EBADF);
    check_err!(sys::signalfd4(-2, &mask, 0), EBADF);
    let mut fds = [-1; 2];
    check_eq!(sys::pipe(&mut fds), Ok(0));
    check_err!(sys::signalfd4(fds[0], &mask, 0), EINVAL);
    check_ok!(sys::close(fds[0]));
    check_ok!(sys::close(fds[1]));
    Ok(())
}

fn short_read_and_any_write_are_einval() -> TestResult {
    let old = block(sigbit(SIGUSR1))?;
    let fd = sfd(sigbit(SIGUSR1), SFD_NONBLOCK)?;
    check_ok!(sys::kill(me()?, SIGUSR1));
    let mut small = [0u8; SIZE - 1];
    check_err!(sys::read(fd, &mut small), EINVAL);
    check_err!(sys::write(fd, &[0u8; SIZE]), EINVAL);
    // The signal is still there.
    check_eq!(check_ok!(read_one(fd)).ssi_signo, SIGUSR1 as u32);
    check_ok!(sys::close(fd));
    drain_and_restore(sigbit(SIGUSR1), old)
}
