//! Syscalls a signal interrupts: with an SA_RESTART handler read and wait4 start again
//! after it, without SA_RESTART they fail with EINTR, and poll and pause never start
//! again after a handler.

use ulib::sys;
use ulib::uapi::*;
use ulib::{check_eq, check_err, check_ok};

use crate::sigutil::*;
use crate::util::*;

pub const TESTS: &[Test] = tests![
    read_starts_again_after_an_sa_restart_handler,
    read_without_sa_restart_fails_with_eintr,
    wait4_starts_again_after_an_sa_restart_handler,
    poll_and_pause_end_with_eintr_even_with_sa_restart,
];

/// A handler for SIGUSR1 that counts, with `flags` (SA_RESTART or 0).
fn catch_usr1(flags: u64) -> Result<SigAction, Failure> {
    let old = catch(SIGUSR1, false)?;
    let mut act = SigAction::default();
    // SAFETY: only reads the action just installed.
    check_ok!(unsafe { sys::rt_sigaction(SIGUSR1, None, Some(&mut act)) });
    act.flags |= flags;
    set_action(SIGUSR1, &act)?;
    Ok(old)
}

/// A child that signals this process with SIGUSR1 after 20 ms, then writes a byte to
/// `w` 30 ms later.
fn signal_then_write(w: i32) -> Result<i32, Failure> {
    let me = check_ok!(sys::getpid()) as i32;
    fork_child(move || {
        sleep_ms(20);
        let sent = sys::kill(me, SIGUSR1);
        sleep_ms(30);
        status_if((sent, sys::write(w, b"x")), (Ok(0), Ok(1)))
    })
}

fn pipe() -> Result<(i32, i32), Failure> {
    let mut fds = [-1; 2];
    check_eq!(sys::pipe(&mut fds), Ok(0));
    Ok((fds[0], fds[1]))
}

fn read_starts_again_after_an_sa_restart_handler() -> TestResult {
    let old = catch_usr1(SA_RESTART)?;
    let before = hits(SIGUSR1);
    let (r, w) = pipe()?;
    let child = signal_then_write(w)?;
    let mut b = [0u8; 1];
    let got = sys::read(r, &mut b);
    check_eq!(wait_child(child)?.exit_code(), Some(0));
    check_eq!(got, Ok(1));
    check_eq!(hits(SIGUSR1), before + 1);
    set_action(SIGUSR1, &old)?;
    check_ok!(sys::close(r));
    check_ok!(sys::close(w));
    Ok(())
}

fn read_without_sa_restart_fails_with_eintr() -> TestResult {
    let old = catch_usr1(0)?;
    let before = hits(SIGUSR1);
    let (r, w) = pipe()?;
    let child = signal_then_write(w)?;
    let mut b = [0u8; 1];
    let got = sys::read(r, &mut b);
    check_eq!(wait_child(child)?.exit_code(), Some(0));
    check_err!(got, EINTR);
    check_eq!(hits(SIGUSR1), before + 1);
    check_eq!(sys::read(r, &mut b), Ok(1)); // the byte came later
    set_action(SIGUSR1, &old)?;
    check_ok!(sys::close(r));
    check_ok!(sys::close(w));
    Ok(())
}

fn wait4_starts_again_after_an_sa_restart_handler() -> TestResult {
    let old = catch_usr1(SA_RESTART)?;
    let before = hits(SIGUSR1);
    let slow = fork_child(|| {
        sleep_ms(60);
        5
    })?;
    let signaller = signal_me_after(SIGUSR1, 20)?;
    let mut status = 0;
    let got = sys::wait4(slow, Some(&mut status), 0);
    check_eq!(wait_child(signaller)?.exit_code(), Some(0));
    check_eq!(got, Ok(slow as usize));
    check_eq!(WaitStatus(status).exit_code(), Some(5));
    check_eq!(hits(SIGUSR1), before + 1);
    set_action(SIGUSR1, &old)?;
    Ok(())
}

fn poll_and_pause_end_with_eintr_even_with_sa_restart() -> TestResult {
    let old = catch_usr1(SA_RESTART)?;
    let before = hits(SIGUSR1);
    let (r, w) = pipe()?;
    let child = signal_me_after(SIGUSR1, 20)?;
    let mut fds = [PollFd { fd: r, events: POLLIN, revents: 0 }];
    let got = sys::poll(&mut fds, 10_000);
    check_eq!(wait_child(child)?.exit_code(), Some(0));
    check_err!(got, EINTR);
    let child = signal_me_after(SIGUSR1, 20)?;
    let got = sys::pause();
    check_eq!(wait_child(child)?.exit_code(), Some(0));
    check_err!(got, EINTR);
    check_eq!(hits(SIGUSR1), before + 2);
    set_action(SIGUSR1, &old)?;
    check_ok!(sys::close(r));
    check_ok!(sys::close(w));
    Ok(())
}
