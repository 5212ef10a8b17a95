//! Signals, with default actions only: a signal whose action is "terminate" (or "core")
//! ends the target process with that signal as its wait status, one whose default is to be
//! ignored, or which the process ignores (SIG_IGN), is dropped. Handlers can be installed
//! and read back (`rt_sigaction`), but are not run yet: a caught signal takes its default
//! action.

use alloc::sync::Arc;

use super::Process;
use crate::errno::{KResult, EINVAL};

pub const SIGHUP: u32 = 1;
pub const SIGINT: u32 = 2;
pub const SIGQUIT: u32 = 3;
pub const SIGILL: u32 = 4;
pub const SIGTRAP: u32 = 5;
pub const SIGABRT: u32 = 6;
pub const SIGBUS: u32 = 7;
pub const SIGFPE: u32 = 8;
pub const SIGKILL: u32 = 9;
pub const SIGSEGV: u32 = 11;
pub const SIGPIPE: u32 = 13;
pub const SIGTERM: u32 = 15;
pub const SIGCHLD: u32 = 17;
pub const SIGCONT: u32 = 18;
pub const SIGSTOP: u32 = 19;
pub const SIGURG: u32 = 23;
pub const SIGWINCH: u32 = 28;
pub const NSIG: u32 = 64;

pub const SIG_DFL: u64 = 0;
pub const SIG_IGN: u64 = 1;

/// The kernel's `struct sigaction` for `rt_sigaction` on x86-64.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct SigAction {
    pub handler: u64,
    pub flags: u64,
    pub restorer: u64,
    pub mask: u64,
}
const _: () = assert!(size_of::<SigAction>() == 32);

// SAFETY: four u64 fields, no padding.
unsafe impl crate::mm::uaccess::Pod for SigAction {}

/// Whether the default action of `sig` is to ignore it.
fn ignored_by_default(sig: u32) -> bool {
    matches!(sig, SIGCHLD | SIGCONT | SIGURG | SIGWINCH)
}

/// The signal an exception in user mode raises.
pub fn signal_for_exception(vector: u64) -> u32 {
    match vector {
        0 | 16 | 19 => SIGFPE,
        1 | 3 => SIGTRAP,
        6 => SIGILL,
        17 => SIGBUS,
        _ => SIGSEGV,
    }
}

/// Checks a signal number from user space (0 is allowed: "may I signal?").
pub fn check(sig: u64) -> KResult<u32> {
    if sig > u64::from(NSIG) {
        return Err(EINVAL);
    }
    Ok(sig as u32)
}

/// Delivers `sig` to `process` with its default action (see the module docs).
pub fn send(process: &Arc<Process>, sig: u32) {
    if sig == 0 || process.exiting() {
        return;
    }
    let action = process.sigactions.lock()[sig as usize - 1];
    let catchable = sig != SIGKILL && sig != SIGSTOP;
    if catchable && action.handler == SIG_IGN {
        return;
    }
    if ignored_by_default(sig) || sig == SIGSTOP {
        return;
    }
    if catchable && action.handler != SIG_DFL {
        log::debug!("pid {}: signal {sig} has a handler; handlers are not run yet, terminating", process.pid);
    }
    process.begin_exit(sig as i32);
}
