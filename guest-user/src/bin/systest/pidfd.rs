//! pidfd_open, pidfd_send_signal, waitid(P_PIDFD), clone3 and CLONE_PIDFD: a pidfd polls
//! readable once its process has exited, signals and waits go through it, and clone3
//! checks its argument structure as Linux does.

use ulib::sys::{self, syscall2, syscall4, syscall5};
use ulib::uapi::*;
use ulib::{Errno, check, check_eq, check_err, check_ok, nr};

use crate::util::*;

pub const TESTS: &[Test] = tests![
    pidfd_becomes_readable_when_the_process_exits,
    pidfd_open_errors,
    pidfd_send_signal_kills_and_checks_its_arguments,
    nonblocking_pidfd_wait_is_eagain_while_running,
    clone3_forks_with_its_exit_signal,
    clone3_pidfd_names_the_child,
    clone3_bad_arguments,
    clone_with_clone_pidfd_writes_the_fd_at_parent_tid,
];

fn pidfd_open(pid: i32, flags: usize) -> ulib::errno::Result {
    // SAFETY: no memory is passed.
    sys::ret(unsafe { syscall2(nr::PIDFD_OPEN, pid as usize, flags) })
}

fn send(fd: i32, sig: i32, flags: usize) -> ulib::errno::Result {
    // SAFETY: no siginfo is passed.
    sys::ret(unsafe { syscall4(nr::PIDFD_SEND_SIGNAL, fd as usize, sig as usize, 0, flags) })
}

fn wait_pidfd(fd: i32, options: i32) -> Result<(ulib::errno::Result, Siginfo), Failure> {
    let mut si = Siginfo([0; 128]);
    let r = sys::waitid(P_PIDFD, fd, Some(&mut si), options);
    Ok((r, si))
}

fn pidfd_becomes_readable_when_the_process_exits() -> TestResult {
    let pid = fork_child(|| {
        sleep_ms(30);
        3
    })?;
    let fd = check_ok!(pidfd_open(pid, 0)) as i32;
    check_eq!(sys::fcntl(fd, F_GETFD, 0), Ok(FD_CLOEXEC));
    let mut fds = [PollFd { fd, events: POLLIN, revents: 0 }];
    check_eq!(sys::poll(&mut fds, 0), Ok(0));
    check_eq!(sys::poll(&mut fds, 10_000), Ok(1));
    check_eq!(fds[0].revents, POLLIN);
    let (r, si) = wait_pidfd(fd, WEXITED)?;
    check_eq!(r, Ok(0));
    check_eq!((si.pid(), si.code(), si.status()), (pid, CLD_EXITED, 3));
    check_ok!(sys::close(fd));
    Ok(())
}

fn pidfd_open_errors() -> TestResult {
    let me = check_ok!(sys::getpid()) as i32;
    check_err!(pidfd_open(me, 1), EINVAL);
    check_err!(pidfd_open(0, 0), EINVAL);
    check_err!(pidfd_open(-1, 0), EINVAL);
    check_err!(pidfd_open(0x7fff_fff0, 0), ESRCH);
    // A pidfd of oneself is fine (and not readable: it runs).
    let fd = check_ok!(pidfd_open(me, 0)) as i32;
    let mut fds = [PollFd { fd, events: POLLIN, revents: 0 }];
    check_eq!(sys::poll(&mut fds, 0), Ok(0));
    check_ok!(sys::close(fd));
    Ok(())
}

fn pidfd_send_signal_kills_and_checks_its_arguments() -> TestResult {
    let pid = fork_child(|| {
        sleep_ms(10_000);
        0
    })?;
    let fd = check_ok!(pidfd_open(pid, 0)) as i32;
    check_eq!(send(fd, 0, 0), Ok(0));
    check_err!(send(fd, SIGTERM, 1 << 5), EINVAL);
    check_err!(send(fd, 65, 0), EINVAL);
    let mut p = [-1; 2];
    check_eq!(sys::pipe(&mut p), Ok(0));
    check_err!(send(p[0], SIGTERM, 0), EBADF);
    // A siginfo whose si_signo is another signal.
    let mut info = [0i32; 32];
    info[0] = SIGINT;
    // SAFETY: the kernel reads the 128-byte siginfo.
    let r = sys::ret(unsafe { syscall4(nr::PIDFD_SEND_SIGNAL, fd as usize, SIGTERM as usize, info.as_ptr() as usize, 0) });
    check_err!(r, EINVAL);
    check_eq!(send(fd, SIGTERM, 0), Ok(0));
    let (r, si) = wait_pidfd(fd, WEXITED)?;
    check_eq!(r, Ok(0));
    check_eq!((si.code(), si.status()), (CLD_KILLED, SIGTERM));
    // Reaped: nothing to signal.
    check_err!(send(fd, SIGTERM, 0), ESRCH);
    for f in [fd, p[0], p[1]] {
        check_ok!(sys::close(f));
    }
    Ok(())
}

fn nonblocking_pidfd_wait_is_eagain_while_running() -> TestResult {
    let pid = fork_child(|| {
        sleep_ms(40);
        0
    })?;
    let fd = check_ok!(pidfd_open(pid, O_NONBLOCK as usize)) as i32;
    let (r, _) = wait_pidfd(fd, WEXITED)?;
    check_err!(r, EAGAIN);
    // With WNOHANG asked for, the usual answer: 0 and a zeroed siginfo.
    let (r, si) = wait_pidfd(fd, WEXITED | WNOHANG)?;
    check_eq!((r, si.pid()), (Ok(0), 0));
    let mut fds = [PollFd { fd, events: POLLIN, revents: 0 }];
    check_eq!(sys::poll(&mut fds, 10_000), Ok(1));
    let (r, si) = wait_pidfd(fd, WEXITED)?;
    check_eq!((r, si.pid()), (Ok(0), pid));
    check_ok!(sys::close(fd));
    Ok(())
}

/// `struct clone_args` (its 88-byte version).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// clone3 with `args` as the first `size` bytes; in the child, exits at once with 42.
fn clone3(args: &CloneArgs, size: usize) -> ulib::errno::Result {
    // SAFETY: a fork-like clone (no CLONE_VM): the child runs on its own copy of this
    // stack and exits before returning anywhere.
    let r = sys::ret(unsafe { syscall2(nr::CLONE3, args as *const CloneArgs as usize, size) });
    if r == Ok(0) {
        sys::exit_group(42);
    }
    r
}

fn clone3_forks_with_its_exit_signal() -> TestResult {
    let args = CloneArgs { exit_signal: SIGCHLD as u64, ..CloneArgs::default() };
    let pid = check_ok!(clone3(&args, 64)) as i32;
    check_eq!(wait_child(pid)?.exit_code(), Some(42));
    // The larger versions, with zeros past the known fields, too.
    let mut big = [0u64; 16];
    big[4] = SIGCHLD as u64;
    // SAFETY: as in clone3() (the child exits at once).
    let r = sys::ret(unsafe { syscall2(nr::CLONE3, big.as_ptr() as usize, 128) });
    if r == Ok(0) {
        sys::exit_group(42);
    }
    let pid = check_ok!(r) as i32;
    check_eq!(wait_child(pid)?.exit_code(), Some(42));
    Ok(())
}

fn clone3_pidfd_names_the_child() -> TestResult {
    let mut fd = -1i32;
    let args = CloneArgs { flags: 0x1000, pidfd: &raw mut fd as u64, exit_signal: SIGCHLD as u64, ..CloneArgs::default() };
    let pid = check_ok!(clone3(&args, 88)) as i32;
    check!(fd >= 0, "no pidfd written");
    let (r, si) = wait_pidfd(fd, WEXITED)?;
    check_eq!(r, Ok(0));
    check_eq!((si.pid(), si.status()), (pid, 42));
    check_ok!(sys::close(fd));
    Ok(())
}

fn clone3_bad_arguments() -> TestResult {
    let ok = CloneArgs { exit_signal: SIGCHLD as u64, ..CloneArgs::default() };
    check_err!(clone3(&ok, 56), EINVAL);
    check_err!(clone3(&ok, 8192), E2BIG);
    // Bytes past the fields known must be zero.
    let mut big = [0u64; 16];
    big[4] = SIGCHLD as u64;
    big[12] = 1;
    // SAFETY: refused before anything is created.
    check_err!(sys::ret(unsafe { syscall2(nr::CLONE3, big.as_ptr() as usize, 128) }), E2BIG);
    // The exit signal goes in its own field, not the flags; a stack needs its size.
    let csignal = CloneArgs { flags: SIGCHLD as u64, ..CloneArgs::default() };
    check_err!(clone3(&csignal, 64), EINVAL);
    let huge = CloneArgs { exit_signal: 65, ..CloneArgs::default() };
    check_err!(clone3(&huge, 64), EINVAL);
    let stack = CloneArgs { stack: 0x10000, exit_signal: SIGCHLD as u64, ..CloneArgs::default() };
    check_err!(clone3(&stack, 64), EINVAL);
    let size = CloneArgs { stack_size: 4096, exit_signal: SIGCHLD as u64, ..CloneArgs::default() };
    check_err!(clone3(&size, 64), EINVAL);
    // SAFETY: refused before the (unmapped) structure matters... it is read first: EFAULT.
    check_err!(sys::ret(unsafe { syscall2(nr::CLONE3, UNMAPPED_ADDR, 64) }), EFAULT);
    Ok(())
}

fn clone_with_clone_pidfd_writes_the_fd_at_parent_tid() -> TestResult {
    const CLONE_PIDFD: usize = 0x1000;
    let mut fd = -1i32;
    // SAFETY: fork-like (no CLONE_VM); the child exits at once.
    let r = sys::ret(unsafe { syscall5(nr::CLONE, CLONE_PIDFD | SIGCHLD as usize, 0, &raw mut fd as usize, 0, 0) });
    if r == Ok(0) {
        sys::exit_group(7);
    }
    let pid = check_ok!(r) as i32;
    check!(fd >= 0, "no pidfd written");
    let (r, si) = wait_pidfd(fd, WEXITED)?;
    check_eq!((r, si.pid(), si.status()), (Ok(0), pid, 7));
    check_ok!(sys::close(fd));
    // Not with CLONE_PARENT_SETTID, nor for a thread.
    // SAFETY: refused before anything is created.
    let r = sys::ret(unsafe { syscall5(nr::CLONE, CLONE_PIDFD | 0x100000 | SIGCHLD as usize, 0, &raw mut fd as usize, 0, 0) });
    check_eq!(r, Err(Errno::EINVAL));
    Ok(())
}
