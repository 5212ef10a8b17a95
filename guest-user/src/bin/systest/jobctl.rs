//! Job control: SIGSTOP and SIGTSTP (default action) stop a process, wait4 with
//! WUNTRACED and waitid with WSTOPPED report the stop once, SIGCONT continues it
//! (WCONTINUED), and SIGKILL ends a stopped process.

use core::sync::atomic::{AtomicU64, Ordering::SeqCst};

use ulib::sys;
use ulib::uapi::*;
use ulib::{check, check_eq, check_ok, nr};

use crate::util::*;

pub const TESTS: &[Test] = tests![
    sigstop_stops_and_sigcont_continues,
    sigtstp_stops_by_default,
    waitid_reports_a_stop_once_unless_wnowait,
    sigkill_ends_a_stopped_process,
    an_orphaned_group_ignores_sigtstp,
];

const WUNTRACED: i32 = 2;
const SIGTSTP: i32 = 20;
const CLD_STOPPED: i32 = 5;

/// Waits up to 5 s for the counter to pass `from` (a loaded host may not run the child
/// at once).
fn counts_past(counter: &AtomicU64, from: u64) -> bool {
    for _ in 0..2500 {
        if counter.load(SeqCst) > from {
            return true;
        }
        sleep_ms(2);
    }
    false
}

/// A child that counts in shared memory forever, after `setup` (its process group);
/// returns (pid, its counter) once the counter moves.
fn spawn_counter(setup: fn()) -> Result<(i32, &'static AtomicU64), Failure> {
    let m = map_anon_shared(4096)?;
    // SAFETY: a fresh shared page, used only as this counter.
    let counter: &'static AtomicU64 = unsafe { &*(m as *const AtomicU64) };
    let pid = fork_child(move || {
        setup();
        loop {
            counter.fetch_add(1, SeqCst);
            core::hint::spin_loop();
        }
    })?;
    counts_past(counter, 0);
    Ok((pid, counter))
}

/// A counting child in a group of its own under this process's (another group of the
/// session), so the group is not orphaned and the terminal stop signals apply to it.
fn counting_child() -> Result<(i32, &'static AtomicU64), Failure> {
    spawn_counter(|| {
        let _ = sys::setpgid(0, 0);
    })
}

/// The state letter of /proc/PID/stat (after the parenthesised name).
fn proc_state(pid: i32) -> Result<u8, Failure> {
    let path = Path::from_fmt(format_args!("/proc/{pid}/stat"));
    let fd = check_ok!(sys::open(path.as_cstr(), O_RDONLY, 0)) as i32;
    let mut buf = [0u8; 512];
    let n = check_ok!(sys::read(fd, &mut buf));
    check_ok!(sys::close(fd));
    let close = buf[..n].iter().rposition(|&b| b == b')');
    check!(close.is_some_and(|i| i + 2 < n), "stat: {:?}", core::str::from_utf8(&buf[..n]));
    Ok(buf[close.unwrap_or(0) + 2])
}

fn wait_status(pid: i32, options: i32) -> Result<i32, Failure> {
    let mut status = 0;
    check_eq!(sys::wait4(pid, Some(&mut status), options), Ok(pid as usize));
    Ok(status)
}

fn sigstop_stops_and_sigcont_continues() -> TestResult {
    let (pid, counter) = counting_child()?;
    let _reaper = Reaper(pid);
    check_ok!(sys::kill(pid, SIGSTOP));
    let st = wait_status(pid, WUNTRACED)?;
    check_eq!((st & 0xff, (st >> 8) & 0xff), (0x7f, SIGSTOP));
    let frozen = counter.load(SeqCst);
    sleep_ms(50);
    check_eq!(counter.load(SeqCst), frozen);
    check_eq!(proc_state(pid)?, b'T');
    // Reported once: a second WNOHANG wait finds nothing new.
    let mut status = 0;
    check_eq!(sys::wait4(pid, Some(&mut status), WUNTRACED | WNOHANG), Ok(0));
    check_ok!(sys::kill(pid, SIGCONT));
    let st = wait_status(pid, WCONTINUED)?;
    check_eq!(st, 0xffff);
    check!(counts_past(counter, frozen), "it did not go on after SIGCONT");
    check_ok!(sys::kill(pid, SIGKILL));
    check_eq!(wait_child(pid)?.term_signal(), Some(SIGKILL));
    Ok(())
}

fn sigtstp_stops_by_default() -> TestResult {
    let (pid, _) = counting_child()?;
    let _reaper = Reaper(pid);
    check_ok!(sys::kill(pid, SIGTSTP));
    let st = wait_status(pid, WUNTRACED)?;
    check_eq!((st & 0xff, (st >> 8) & 0xff), (0x7f, SIGTSTP));
    check_ok!(sys::kill(pid, SIGKILL));
    check_eq!(wait_child(pid)?.term_signal(), Some(SIGKILL));
    Ok(())
}

fn waitid_reports_a_stop_once_unless_wnowait() -> TestResult {
    let (pid, _) = counting_child()?;
    let _reaper = Reaper(pid);
    check_ok!(sys::kill(pid, SIGSTOP));
    let mut si = Siginfo([0; 128]);
    check_eq!(sys::waitid(P_PID, pid, Some(&mut si), WSTOPPED | WNOWAIT), Ok(0));
    check_eq!((si.pid(), si.code(), si.status()), (pid, CLD_STOPPED, SIGSTOP));
    let mut si = Siginfo([0; 128]);
    check_eq!(sys::waitid(P_PID, pid, Some(&mut si), WSTOPPED), Ok(0));
    check_eq!((si.code(), si.status()), (CLD_STOPPED, SIGSTOP));
    let mut si = Siginfo([0; 128]);
    check_eq!(sys::waitid(P_PID, pid, Some(&mut si), WSTOPPED | WNOHANG), Ok(0));
    check_eq!(si.pid(), 0);
    check_ok!(sys::kill(pid, SIGKILL));
    check_eq!(wait_child(pid)?.term_signal(), Some(SIGKILL));
    Ok(())
}

fn sigkill_ends_a_stopped_process() -> TestResult {
    let (pid, _) = counting_child()?;
    let _reaper = Reaper(pid);
    check_ok!(sys::kill(pid, SIGSTOP));
    let st = wait_status(pid, WUNTRACED)?;
    check_eq!(st & 0xff, 0x7f);
    check_ok!(sys::kill(pid, SIGKILL));
    check_eq!(wait_child(pid)?.term_signal(), Some(SIGKILL));
    Ok(())
}

/// A new session's leader is an orphaned group (its parent is in another session):
/// SIGTSTP does not stop it, SIGSTOP does.
fn an_orphaned_group_ignores_sigtstp() -> TestResult {
    let (pid, counter) = spawn_counter(|| {
        // SAFETY: no memory is passed.
        let _ = unsafe { sys::syscall0(nr::SETSID) };
    })?;
    let _reaper = Reaper(pid);
    // The counter moves only after setsid.
    check!(counter.load(SeqCst) > 0, "the child never ran");
    check_ok!(sys::kill(pid, SIGTSTP));
    sleep_ms(100);
    let mut status = 0;
    check_eq!(sys::wait4(pid, Some(&mut status), WUNTRACED | WNOHANG), Ok(0));
    let before = counter.load(SeqCst);
    check!(counts_past(counter, before), "SIGTSTP stopped an orphaned group");
    check_ok!(sys::kill(pid, SIGSTOP));
    let st = wait_status(pid, WUNTRACED)?;
    check_eq!((st & 0xff, (st >> 8) & 0xff), (0x7f, SIGSTOP));
    Ok(())
}
