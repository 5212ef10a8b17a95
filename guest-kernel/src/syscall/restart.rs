//! Restarting a syscall that a signal interrupted (Linux's -ERESTARTSYS family). Here the
//! handlers return plain EINTR; the dispatcher looks up how Linux would have answered
//! (`policy`) and marks the task, and the way back to user mode decides:
//!
//! - a handler runs: a `Sys` syscall (read, write, wait4, a futex wait without a relative
//!   timeout, ...) starts again after it if the handler has SA_RESTART; otherwise, and
//!   for `NoHand` ones (poll, select, pause, sigsuspend), the program sees EINTR;
//! - no handler runs (the signal was ignored when taken): both kinds start again.
//!
//! Starting again is what Linux does: the saved registers get the syscall number back in
//! rax and rip goes back over the 2-byte `syscall` instruction. Syscalls Linux answers
//! with -EINTR (epoll_wait, rt_sigtimedwait, io_uring_enter) or resumes with the time
//! left (nanosleep, clock_nanosleep, timed futex waits: -ERESTART_RESTARTBLOCK) return
//! EINTR here.

use core::sync::atomic::Ordering;

use crate::arch::interrupts::TrapFrame;
use crate::task::sched;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Restart {
    /// -ERESTARTSYS: again unless a handler without SA_RESTART ran.
    Sys = 1,
    /// -ERESTARTNOHAND: again only if no handler ran.
    NoHand = 2,
}

/// How Linux restarts syscall `nr` with arguments `a` after EINTR (None: it does not).
fn policy(nr: u64, a: &[u64; 6]) -> Option<Restart> {
    const FUTEX_WAIT: u64 = 0;
    const FUTEX_WAIT_BITSET: u64 = 9;
    match nr {
        // read, write, ioctl (a tty's job control), pread64, pwrite64, readv, writev,
        // sendfile, wait4, splice, tee, waitid, preadv, pwritev, copy_file_range,
        // preadv2, pwritev2
        0 | 1 | 16 | 17 | 18 | 19 | 20 | 40 | 61 | 275 | 276 | 247 | 295 | 296 | 326 | 327 | 328 => Some(Restart::Sys),
        // A futex wait with no timeout, or FUTEX_WAIT_BITSET's absolute one.
        202 => match a[1] & 127 {
            FUTEX_WAIT if a[3] == 0 => Some(Restart::Sys),
            FUTEX_WAIT_BITSET => Some(Restart::Sys),
            _ => None,
        },
        // poll, select, pause, rt_sigsuspend, pselect6, ppoll
        7 | 23 | 34 | 130 | 270 | 271 => Some(Restart::NoHand),
        _ => None,
    }
}

/// Syscall `nr` returned EINTR: remember how it may start again.
pub fn interrupted(nr: u64, a: &[u64; 6]) {
    if let Some(p) = policy(nr, a) {
        sched::current().restart.store(nr | (p as u64) << 48, Ordering::Relaxed);
    }
}

/// The mark `interrupted` left, taken: (syscall number, policy).
fn take(mark: u64) -> Option<(u64, Restart)> {
    match mark >> 48 {
        1 => Some((mark & 0xffff, Restart::Sys)),
        2 => Some((mark & 0xffff, Restart::NoHand)),
        _ => None,
    }
}

fn again(frame: &mut TrapFrame, nr: u64) {
    frame.rax = nr;
    frame.rip -= 2;
}

/// A handler with `sa_flags` is about to run for the syscall `mark` describes: restart
/// it after the handler if its policy and SA_RESTART say so (else it returns EINTR).
pub fn before_handler(frame: &mut TrapFrame, mark: u64, sa_flags: u64) {
    const SA_RESTART: u64 = 0x1000_0000;
    if let Some((nr, Restart::Sys)) = take(mark)
        && sa_flags & SA_RESTART != 0
    {
        again(frame, nr);
    }
}

/// No handler ran for the syscall `mark` describes: it starts again.
pub fn without_handler(frame: &mut TrapFrame, mark: u64) {
    if let Some((nr, _)) = take(mark) {
        again(frame, nr);
    }
}
