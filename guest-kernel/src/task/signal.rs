//! Signals.
//!
//! Sending queues the signal with its siginfo on the process (`kill`, sigqueue, timers)
//! or one thread (`tgkill`; see `sigqueue`), unless it is ignored and not blocked, and
//! wakes its threads, so blocking syscalls return EINTR. On every return to user mode a
//! thread takes its lowest pending, unblocked signal: a default "terminate" action ends
//! the process with the signal as its wait status; an ignored one is dropped; a handler
//! runs on a Linux-layout `rt_sigframe` (siginfo, ucontext with the saved registers and
//! FPU state) built on the user stack or the alternate stack, and `rt_sigreturn` restores
//! what the frame saved. rt_sigtimedwait and signalfd take pending signals the same way
//! ([`dequeue`]) without running a handler. SIGKILL ends the process at once. Stop and
//! continue: stop signals stop the whole process, SIGCONT continues it (`job_control`).

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

pub use super::sigqueue::{SigInfo, SI_TKILL, SI_USER};
use super::{sched, with_mm, Process, Task};
use crate::arch::interrupts::TrapFrame;
use crate::arch::switch::FpuState;
use crate::errno::{KResult, EINTR, EINVAL};
use crate::mm::uaccess;
use crate::task;

#[allow(dead_code)] // listed for completeness
pub const SIGHUP: u32 = 1;
#[allow(dead_code)] // listed for completeness
pub const SIGINT: u32 = 2;
#[allow(dead_code)] // listed for completeness
pub const SIGQUIT: u32 = 3;
pub const SIGILL: u32 = 4;
pub const SIGTRAP: u32 = 5;
#[allow(dead_code)] // listed for completeness
pub const SIGABRT: u32 = 6;
pub const SIGBUS: u32 = 7;
pub const SIGFPE: u32 = 8;
pub const SIGKILL: u32 = 9;
pub const SIGSEGV: u32 = 11;
pub const SIGPIPE: u32 = 13;
pub const SIGALRM: u32 = 14;
#[allow(dead_code)] // listed for completeness
pub const SIGTERM: u32 = 15;
pub const SIGCHLD: u32 = 17;
pub const SIGCONT: u32 = 18;
pub const SIGSTOP: u32 = 19;
pub const SIGURG: u32 = 23;
pub const SIGXCPU: u32 = 24;
pub const SIGXFSZ: u32 = 25;
pub const SIGVTALRM: u32 = 26;
pub const SIGPROF: u32 = 27;
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

/// The stop signals: SIGSTOP, and SIGTSTP, SIGTTIN, SIGTTOU (^Z, background terminal
/// I/O), whose default action is to stop the process.
fn is_stop(sig: u32) -> bool {
    matches!(sig, SIGSTOP | 20..=22)
}

/// A stop or continue signal arriving (Linux's prepare_signal): a stop signal drops a
/// pending SIGCONT; SIGCONT drops pending stop signals and continues a stopped process,
/// telling its parent.
fn job_control(process: &Arc<Process>, sig: u32) {
    const STOPS: u64 = bit(SIGSTOP) | bit(20) | bit(21) | bit(22);
    if is_stop(sig) {
        process.pending.discard(bit(SIGCONT));
        for t in process.threads() {
            t.pending.discard(bit(SIGCONT));
        }
    } else if sig == SIGCONT {
        process.pending.discard(STOPS);
        for t in process.threads() {
            t.pending.discard(STOPS);
        }
        if process.attrs.stop_signal.swap(0, Ordering::Relaxed) != 0 {
            process.attrs.stop_unreported.store(false, Ordering::Relaxed);
            process.attrs.continue_unreported.store(true, Ordering::Relaxed);
            process.attrs.stopped_wait.wake_all();
            notify_parent(process, super::exit::CLD_CONTINUED, SIGCONT as i32);
        }
    }
}

/// SIGCHLD to the parent of `process` for a stop or a continue (unless the parent asked
/// for none with SA_NOCLDSTOP), and a wakeup for its waits.
fn notify_parent(process: &Process, code: i32, status: i32) {
    const SA_NOCLDSTOP: u64 = 1;
    let Some(parent) = super::find_process(process.ppid.load(Ordering::Relaxed)) else { return };
    if parent.sigactions.lock()[SIGCHLD as usize - 1].flags & SA_NOCLDSTOP == 0 {
        let cpu = super::sched::process_cpu_ns(process);
        let _ = send_info(&parent, SigInfo::child(process.pid, 0, code, status, (cpu / 10_000_000, 0)), false);
    }
    parent.child_exited.wake_all();
}

/// Stops the current task's process for `sig` (a stop signal's default action) and
/// sleeps until SIGCONT or SIGKILL. Init is not stopped by a signal it does not handle.
fn stop_current(sig: u32) {
    let me = sched::current();
    let process = &me.process;
    if process.pid == 1 {
        return;
    }
    // SIGTSTP, SIGTTIN and SIGTTOU do not stop an orphaned process group (Linux's
    // do_signal_stop): nobody would continue it.
    if sig != SIGSTOP && super::pgrp_orphaned(process.pgid.load(Ordering::Relaxed), process.sid.load(Ordering::Relaxed)) {
        return;
    }
    if process.attrs.stop_signal.swap(sig, Ordering::Relaxed) == 0 {
        process.attrs.stop_unreported.store(true, Ordering::Relaxed);
        process.attrs.continue_unreported.store(false, Ordering::Relaxed);
        // The other threads stop on their way to user mode (`wait_while_stopped`).
        for t in process.threads() {
            sched::wake(&t);
        }
        notify_parent(process, super::exit::CLD_STOPPED, sig as i32);
    }
    wait_while_stopped(&me);
}

/// Sleeps while the process is stopped (a thread of a stopped process on its way to user
/// mode); SIGKILL ends the wait.
pub fn wait_while_stopped(me: &Task) {
    let process = &me.process;
    process.attrs.stopped_wait.wait_uninterruptible(|| process.attrs.stop_signal.load(Ordering::Relaxed) == 0 || process.exiting());
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

const SA_ONSTACK: u64 = 0x0800_0000;
const SA_NODEFER: u64 = 0x4000_0000;
const SA_RESETHAND: u64 = 0x8000_0000;
const SS_ONSTACK: u64 = 1;
const SS_DISABLE: u64 = 2;

/// The mask bit of `sig`.
pub const fn bit(sig: u32) -> u64 {
    1 << (sig - 1)
}

/// Signals that can be neither blocked nor caught.
pub const UNBLOCKABLE: u64 = bit(SIGKILL) | bit(SIGSTOP);

/// Whether `sig` is ignored (Linux's sig_ignored): its action ignores it and no thread in
/// `threads` (the target thread, or all of the process's) blocks it. A blocked signal
/// stays pending: the action may change before it is unblocked, or sigwaitinfo or a
/// signalfd may take it.
fn ignored(process: &Process, sig: u32, threads: &[Arc<Task>]) -> bool {
    // Init takes only the signals it handles or blocks (Linux's SIGNAL_UNKILLABLE): not
    // even SIGKILL or SIGSTOP from a process (its own faults end it another way).
    let init = process.pid == 1;
    if sig == SIGKILL {
        return init;
    }
    let blocked = |t: &Arc<Task>| (t.sigmask.load(Ordering::Relaxed) | t.real_blocked.load(Ordering::Relaxed)) & bit(sig) != 0;
    if threads.iter().any(blocked) {
        return false;
    }
    if init && process.sigactions.lock()[sig as usize - 1].handler == SIG_DFL {
        return true;
    }
    action_ignores(sig, &process.sigactions.lock()[sig as usize - 1])
}

/// Whether `action` ignores `sig` (then `rt_sigaction` drops it where pending).
pub fn action_ignores(sig: u32, action: &SigAction) -> bool {
    action.handler == SIG_IGN || (action.handler == SIG_DFL && ignored_by_default(sig))
}

/// Tasks sleeping in a signalfd read or poll wait here; every queued signal wakes them
/// while a signalfd exists. One queue for all: a signalfd reads the signals of whoever
/// reads it (as on Linux), so it has no process of its own whose queue it could use.
pub static SIGNALFD_WAIT: super::wait::WaitQueue = super::wait::WaitQueue::new();
/// How many signalfds exist (none: sending skips `SIGNALFD_WAIT`).
pub static SIGNALFDS: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

fn wake_signalfds() {
    if SIGNALFDS.load(Ordering::Relaxed) != 0 {
        SIGNALFD_WAIT.wake_all();
    }
}

/// The siginfo of a signal the current task sends (kill, tgkill, SIGPIPE) with `code`.
pub fn from_current(sig: u32, code: i32) -> SigInfo {
    match sched::try_current() {
        Some(me) => SigInfo::user(sig, code, me.process.pid, task::cred::current().uid),
        None => SigInfo::kernel(sig),
    }
}

/// Whether the caller may send `sig` to `process` (`thread`: to that thread), as Linux's
/// check_kill_permission: within its own process, with CAP_KILL, when its real or
/// effective uid is the target's real or saved uid, or SIGCONT within its session;
/// else EPERM.
pub fn may_send(process: &Process, thread: Option<&Task>, sig: u32) -> KResult<()> {
    let me = sched::current();
    if core::ptr::eq(&*me.process, process) {
        return Ok(());
    }
    let cred = task::cred::current();
    if cred.capable(task::cred::CAP_KILL) {
        return Ok(());
    }
    let target = match thread {
        Some(t) => t.cred.lock().clone(),
        None => match process.threads().first() {
            Some(t) => t.cred.lock().clone(),
            None => return Ok(()), // a zombie: the signal is dropped anyway
        },
    };
    if [cred.uid, cred.euid].iter().any(|&u| u == target.uid || u == target.suid) {
        return Ok(());
    }
    if sig == SIGCONT && process.sid.load(Ordering::Relaxed) == me.process.sid.load(Ordering::Relaxed) {
        return Ok(());
    }
    Err(crate::errno::EPERM)
}

/// Sends `sig` to `process` (kill): any of its threads may take it.
pub fn send(process: &Arc<Process>, sig: u32) {
    if sig != 0 {
        let _ = send_info(process, from_current(sig, SI_USER), false);
    }
}

/// Sends `info` to `process`; `must_queue`: see [`SigQueue::push`] (EAGAIN).
pub fn send_info(process: &Arc<Process>, info: SigInfo, must_queue: bool) -> KResult<()> {
    let sig = info.signo;
    let threads = process.threads();
    if process.exiting() {
        return Ok(());
    }
    job_control(process, sig);
    if ignored(process, sig, &threads) {
        return Ok(());
    }
    if sig == SIGKILL {
        process.begin_exit(SIGKILL as i32);
        return Ok(());
    }
    process.pending.push(info, must_queue)?;
    for t in &threads {
        sched::wake(t);
    }
    wake_signalfds();
    Ok(())
}

/// Sends `sig` to one thread (tgkill, tkill).
pub fn send_thread(task: &Arc<Task>, sig: u32) {
    if sig != 0 {
        let _ = send_thread_info(task, from_current(sig, SI_TKILL), false);
    }
}

/// Sends `info` to one thread.
pub fn send_thread_info(task: &Arc<Task>, info: SigInfo, must_queue: bool) -> KResult<()> {
    let sig = info.signo;
    if task.process.exiting() {
        return Ok(());
    }
    job_control(&task.process, sig);
    if ignored(&task.process, sig, core::slice::from_ref(task)) {
        return Ok(());
    }
    if sig == SIGKILL {
        task.process.begin_exit(SIGKILL as i32);
        return Ok(());
    }
    task.pending.push(info, must_queue)?;
    sched::wake(task);
    wake_signalfds();
    Ok(())
}

/// Takes `task`'s lowest pending signal in `allowed`: its own first, then its
/// process's (Linux's dequeue_signal). Taking SIGALRM re-arms a periodic ITIMER_REAL, as
/// Linux does there.
pub fn dequeue(task: &Task, allowed: u64) -> Option<SigInfo> {
    let info = task.pending.take(allowed).or_else(|| task.process.pending.take(allowed))?;
    if info.signo == SIGALRM {
        super::itimer::rearm_real(&task.process);
    }
    Some(info)
}

/// The signals pending for `task`: its own and its process's.
pub fn pending_for(task: &Task) -> u64 {
    task.pending.set() | task.process.pending.set()
}

/// Delivers one pending signal to the current task on its way to user mode.
pub fn deliver(frame: &mut TrapFrame) {
    let me = sched::current();
    let Some(info) = dequeue(&me, !me.sigmask.load(Ordering::Relaxed)) else { return };
    let sig = info.signo;
    let action = me.process.sigactions.lock()[sig as usize - 1];
    match action.handler {
        SIG_IGN => {}
        SIG_DFL if ignored_by_default(sig) => {}
        SIG_DFL if is_stop(sig) => stop_current(sig),
        // Init does not die of a signal it does not handle (one it had blocked).
        SIG_DFL if me.process.pid == 1 => {}
        SIG_DFL => me.process.begin_exit(sig as i32),
        _ => {
            crate::syscall::restart::before_handler(frame, me.restart.swap(0, Ordering::Relaxed), action.flags);
            if setup_frame(&me, frame, &info, &action).is_err() {
                log::info!("pid {}: cannot deliver signal {sig}: bad stack; SIGSEGV", me.process.pid);
                me.process.begin_exit(SIGSEGV as i32);
                return;
            }
            let mut mask = me.sigmask.load(Ordering::Relaxed) | action.mask;
            if action.flags & SA_NODEFER == 0 {
                mask |= bit(sig);
            }
            me.sigmask.store(mask & !UNBLOCKABLE, Ordering::Relaxed);
            if action.flags & SA_RESETHAND != 0 {
                me.process.sigactions.lock()[sig as usize - 1] = SigAction::default();
            }
        }
    }
}

/// Size of `struct ucontext` (flags, link, stack_t, sigcontext, sigmask).
const UCONTEXT_SIZE: usize = 8 + 8 + 24 + 256 + 8;
const SIGINFO_SIZE: usize = 128;
const FPSTATE_SIZE: u64 = 512;

/// The 18 general registers of `struct sigcontext`, in its order.
fn sigcontext_regs(f: &TrapFrame) -> [u64; 18] {
    [
        f.r8, f.r9, f.r10, f.r11, f.r12, f.r13, f.r14, f.r15, f.rdi, f.rsi, f.rbp, f.rbx, f.rdx, f.rax, f.rcx,
        f.rsp, f.rip, f.rflags,
    ]
}

/// Builds the `rt_sigframe` and points the frame at the handler.
fn setup_frame(me: &Arc<Task>, frame: &mut TrapFrame, info: &SigInfo, action: &SigAction) -> KResult<()> {
    let alt = *me.process.altstack.lock();
    let on_alt_now = alt[1] & SS_DISABLE == 0 && frame.rsp > alt[0] && frame.rsp <= alt[0] + alt[2];
    let use_alt = action.flags & SA_ONSTACK != 0 && alt[1] & SS_DISABLE == 0 && !on_alt_now;
    let top = if use_alt { alt[0] + alt[2] } else { frame.rsp - 128 };
    let fp_addr = (top - FPSTATE_SIZE) & !63;
    let sp = ((fp_addr - (8 + UCONTEXT_SIZE + SIGINFO_SIZE) as u64) & !15) - 8;
    let (uc_addr, info_addr) = (sp + 8, sp + 8 + UCONTEXT_SIZE as u64);

    // The mask the handler's return restores: the one from before a syscall's temporary
    // mask, if one is in force.
    let old_mask = me.saved_sigmask.lock().unwrap_or(me.sigmask.load(Ordering::Relaxed));
    let mut fpu = FpuState::initial();
    fpu.save();
    let mut buf = Vec::with_capacity(8 + UCONTEXT_SIZE + SIGINFO_SIZE);
    let mut put = |v: u64| buf.extend_from_slice(&v.to_le_bytes());
    put(action.restorer); // the handler returns into sa_restorer, which calls rt_sigreturn
    put(0); // uc_flags
    put(0); // uc_link
    put(alt[0]);
    put(if on_alt_now { SS_ONSTACK } else { alt[1] });
    put(alt[2]);
    for r in sigcontext_regs(frame) {
        put(r);
    }
    put(frame.cs | (frame.ss << 48)); // cs, gs, fs, ss (u16 each)
    put(frame.error_code);
    put(frame.vector);
    put(old_mask); // oldmask
    put(0); // cr2
    put(fp_addr);
    for _ in 0..8 {
        put(0);
    }
    put(old_mask); // uc_sigmask
    buf.extend_from_slice(&info.to_siginfo());

    with_mm(|mm| {
        uaccess::copy_to_user(mm, fp_addr, fpu.as_bytes())?;
        uaccess::copy_to_user(mm, sp, &buf)
    })?;
    frame.rsp = sp;
    frame.rip = action.handler;
    frame.rdi = u64::from(info.signo);
    frame.rsi = info_addr;
    frame.rdx = uc_addr;
    frame.rax = 0;
    frame.rflags &= !(0x400 | 0x100); // DF and TF clear in the handler
    Ok(())
}

/// `rt_sigreturn`: restores the registers, mask and FPU state saved by `setup_frame`.
/// Returns the restored rax (the syscall's "result").
pub fn sigreturn(frame: &mut TrapFrame) -> KResult<u64> {
    let me = sched::current();
    let uc_addr = frame.rsp;
    let mut uc = [0u8; UCONTEXT_SIZE];
    task::copy_from_user(&mut uc, uc_addr)?;
    let word = |i: usize| u64::from_le_bytes(uc[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
    // sigcontext starts at word 5: r8..r15, rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip, eflags.
    let r = |i: usize| word(5 + i);
    (frame.r8, frame.r9, frame.r10, frame.r11, frame.r12, frame.r13, frame.r14, frame.r15) =
        (r(0), r(1), r(2), r(3), r(4), r(5), r(6), r(7));
    (frame.rdi, frame.rsi, frame.rbp, frame.rbx, frame.rdx, frame.rax, frame.rcx) = (r(8), r(9), r(10), r(11), r(12), r(13), r(14));
    (frame.rsp, frame.rip, frame.rflags) = (r(15), r(16), r(17));
    let fp_addr = word(5 + 23);
    let mask = word(37);
    me.sigmask.store(mask & !UNBLOCKABLE, Ordering::Relaxed);
    if fp_addr != 0 {
        let mut fpu = FpuState::initial();
        task::copy_from_user(fpu.as_bytes_mut(), fp_addr)?;
        fpu.sanitize();
        fpu.restore();
    }
    Ok(frame.rax)
}

/// Runs `wait` under the temporary signal mask `mask`, if any (ppoll, epoll_pwait,
/// io_uring_enter's EXT_ARG). When a signal interrupts it (EINTR), that signal is
/// delivered under the temporary mask and the old one comes back after it, as Linux's
/// TIF_RESTORE_SIGMASK does.
pub fn with_sigmask<T>(mask: Option<u64>, wait: impl FnOnce() -> KResult<T>) -> KResult<T> {
    let Some(mask) = mask else { return wait() };
    let me = sched::current();
    let old = me.sigmask.load(Ordering::Relaxed);
    me.sigmask.store(mask & !UNBLOCKABLE, Ordering::Relaxed);
    let result = wait();
    if matches!(result, Err(e) if e == EINTR) {
        *me.saved_sigmask.lock() = Some(old);
        me.restore_sigmask.store(true, Ordering::Relaxed);
    } else {
        me.sigmask.store(old, Ordering::Relaxed);
    }
    result
}
