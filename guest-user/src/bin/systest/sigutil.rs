//! What the signal families share: counting handlers, masks, draining what a test left
//! pending. Every test puts back the actions and the mask it changed (the families share
//! one process).

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};

use ulib::sys;
use ulib::uapi::*;
use ulib::check_ok;

use crate::util::*;

/// Handler calls per signal number.
static HITS: [AtomicU32; 65] = [const { AtomicU32::new(0) }; 65];
/// The si_code and si_value the SA_SIGINFO handler saw last.
pub static LAST_CODE: AtomicU32 = AtomicU32::new(0);
pub static LAST_VALUE: AtomicU64 = AtomicU64::new(0);

extern "C" fn count(sig: i32) {
    HITS[sig as usize & 63].fetch_add(1, SeqCst);
}

extern "C" fn count_info(sig: i32, info: *const Siginfo, _uc: usize) {
    // SAFETY: the kernel passes a valid siginfo_t for an SA_SIGINFO handler.
    let info = unsafe { &*info };
    LAST_CODE.store(info.code() as u32, SeqCst);
    LAST_VALUE.store(info.value(), SeqCst);
    HITS[sig as usize & 63].fetch_add(1, SeqCst);
}

/// How many times the handler of `sig` ran.
pub fn hits(sig: i32) -> u32 {
    HITS[sig as usize & 63].load(SeqCst)
}

/// Installs `act` for `sig`; returns the old action.
pub fn set_action(sig: i32, act: &SigAction) -> Result<SigAction, Failure> {
    let mut old = SigAction::default();
    // SAFETY: the handlers of this file only touch atomics (and the siginfo the kernel
    // passes), and use restore_rt.
    check_ok!(unsafe { sys::rt_sigaction(sig, Some(act), Some(&mut old)) });
    Ok(old)
}

/// Installs a counting handler for `sig` (with SA_SIGINFO: one that also records the
/// siginfo); returns the old action.
pub fn catch(sig: i32, siginfo: bool) -> Result<SigAction, Failure> {
    let handler = if siginfo { count_info as *const () as usize } else { count as *const () as usize };
    let flags = SA_RESTORER | if siginfo { SA_SIGINFO } else { 0 };
    set_action(sig, &SigAction { handler, flags, restorer: sys::restore_rt as *const () as usize, mask: 0 })
}

/// Blocks `mask` in addition; returns the old mask.
pub fn block(mask: u64) -> Result<u64, Failure> {
    let mut old = 0;
    check_ok!(sys::rt_sigprocmask(SIG_BLOCK, Some(&mask), Some(&mut old)));
    Ok(old)
}

/// The current mask.
pub fn mask() -> Result<u64, Failure> {
    let mut cur = 0;
    check_ok!(sys::rt_sigprocmask(SIG_BLOCK, None, Some(&mut cur)));
    Ok(cur)
}

/// Takes every pending signal of `set` (they must be blocked), then sets the mask to `old`.
pub fn drain_and_restore(set: u64, old: u64) -> TestResult {
    while sys::rt_sigtimedwait(&set, None, Some(&Timespec::default())).is_ok() {}
    check_ok!(sys::rt_sigprocmask(SIG_SETMASK, Some(&old), None));
    Ok(())
}

/// A child that sends `sig` to this process after `ms`; returns its pid.
pub fn signal_me_after(sig: i32, ms: i64) -> Result<i32, Failure> {
    let me = check_ok!(sys::getpid()) as i32;
    fork_child(move || {
        sleep_ms(ms);
        status_if(sys::kill(me, sig), Ok(0))
    })
}
