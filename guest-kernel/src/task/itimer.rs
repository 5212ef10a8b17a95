//! Interval timers (setitimer, getitimer, alarm): three per process, shared by its
//! threads, not inherited by fork, kept across execve (Linux's `signal_struct` holds them).
//!
//! - ITIMER_REAL counts monotonic time: a kernel timer (`time::call_at`) sends SIGALRM
//!   (SI_KERNEL). A periodic one is re-armed when its SIGALRM is dequeued, one period
//!   past the last expiry that is not in the past (Linux's dequeue_signal with
//!   hrtimer_forward): while SIGALRM stays pending, it does not run.
//! - ITIMER_VIRTUAL and ITIMER_PROF count the process's CPU time (`sched::process_cpu_ns`)
//!   and send SIGVTALRM and SIGPROF. The kernel does not tell user time from system time,
//!   so both count all the time the process's tasks were on the CPU. They are checked on
//!   the way back to user mode, which a running task passes at least once per time slice
//!   (20 ms): they expire up to a slice late, as Linux's expire up to a tick late. A
//!   periodic one moves on by one period per expiry (Linux's check_cpu_itimer).

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, Ordering};

use super::signal::{self, SigInfo, SIGALRM, SIGPROF, SIGVTALRM};
use super::{sched, Process};
use crate::errno::{KResult, EINVAL};
use crate::sync::SpinLock;
use crate::time::{self, TimerId};

pub const ITIMER_REAL: u32 = 0;
pub const ITIMER_VIRTUAL: u32 = 1;
pub const ITIMER_PROF: u32 = 2;

/// Linux's TICK_NSEC (at HZ=250): what a CPU timer gets on top of its value, and what
/// getitimer reports for one that is due but not yet checked.
const TICK_NS: u64 = 4_000_000;

pub struct ITimers {
    state: SpinLock<State>,
    /// Some CPU timer is armed: `return_to_user` checks them (one load when none is).
    cpu_armed: AtomicBool,
}

#[derive(Default)]
struct State {
    /// RLIMIT_CPU as CPU times (ns; 0: none): when SIGXCPU is next due, and SIGKILL.
    xcpu_at: u64,
    kill_at: u64,
    /// ITIMER_REAL: the last expiry set (monotonic ns), the kernel timer while armed, and
    /// the period.
    real_expires: u64,
    real_timer: Option<TimerId>,
    real_incr: u64,
    /// ITIMER_VIRTUAL and ITIMER_PROF: (expiry in process CPU ns, 0 when disarmed; period).
    cpu: [(u64, u64); 2],
}

impl Default for ITimers {
    fn default() -> Self {
        Self { state: SpinLock::new(State::default()), cpu_armed: AtomicBool::new(false) }
    }
}

impl ITimers {
    /// Cancels ITIMER_REAL's kernel timer (the process is ending).
    pub fn cancel_real(&self) {
        if let Some(t) = self.state.lock().real_timer.take() {
            time::cancel(t);
        }
    }

    /// Whether a CPU timer is armed.
    pub fn cpu_armed(&self) -> bool {
        self.cpu_armed.load(Ordering::Relaxed)
    }
}

/// getitimer: timer `which`'s (value left, interval) in ns; EINVAL for an unknown timer.
pub fn get(process: &Process, which: u32) -> KResult<(u64, u64)> {
    let st = process.itimers.state.lock();
    match which {
        ITIMER_REAL => {
            let left = if st.real_timer.is_some() { st.real_expires.saturating_sub(time::monotonic_ns()).max(1) } else { 0 };
            Ok((left, st.real_incr))
        }
        ITIMER_VIRTUAL | ITIMER_PROF => {
            let (expires, incr) = st.cpu[which as usize - 1];
            let now = sched::process_cpu_ns(process);
            let left = match expires {
                0 => 0,
                e if e <= now => TICK_NS,
                e => e - now,
            };
            Ok((left, incr))
        }
        _ => Err(EINVAL),
    }
}

/// setitimer: arms timer `which` to expire in `value` ns (0: disarms it), then every
/// `interval` ns. Returns the old setting, as `get` reports it.
pub fn set(process: &Arc<Process>, which: u32, value: u64, interval: u64) -> KResult<(u64, u64)> {
    let old = get(process, which)?;
    let mut st = process.itimers.state.lock();
    if which == ITIMER_REAL {
        if let Some(t) = st.real_timer.take() {
            time::cancel(t);
        }
        // Disarmed, it has no period either (unlike the CPU timers).
        st.real_incr = if value != 0 { interval } else { 0 };
        if value != 0 {
            arm_real(process, &mut st, time::monotonic_ns().saturating_add(value));
        }
    } else {
        // One tick more, as Linux's set_cpu_itimer adds.
        let expires = if value == 0 { 0 } else { sched::process_cpu_ns(process).saturating_add(value).saturating_add(TICK_NS) };
        st.cpu[which as usize - 1] = (expires, interval);
        process.itimers.cpu_armed.store(st.armed(), Ordering::Relaxed);
    }
    Ok(old)
}

fn arm_real(process: &Arc<Process>, st: &mut State, at: u64) {
    let weak = Arc::downgrade(process);
    st.real_expires = at;
    st.real_timer = Some(time::call_at(
        at,
        Box::new(move || {
            if let Some(p) = weak.upgrade() {
                real_fired(&p, at);
            }
        }),
    ));
}

/// ITIMER_REAL's kernel timer for `at` went off (timer interrupt).
fn real_fired(process: &Arc<Process>, at: u64) {
    {
        let mut st = process.itimers.state.lock();
        if st.real_timer.is_none() || st.real_expires != at {
            return; // re-set meanwhile
        }
        st.real_timer = None;
    }
    let _ = signal::send_info(process, SigInfo::kernel(SIGALRM), false);
}

/// SIGALRM was dequeued: a periodic ITIMER_REAL that is not armed runs again.
pub fn rearm_real(process: &Arc<Process>) {
    let mut st = process.itimers.state.lock();
    if st.real_timer.is_some() || st.real_incr == 0 {
        return;
    }
    let now = time::monotonic_ns();
    let mut at = st.real_expires;
    if at <= now {
        let periods = (now - at) / st.real_incr + 1;
        at = at.saturating_add(periods.saturating_mul(st.real_incr));
    }
    arm_real(process, &mut st, at);
}

impl State {
    fn armed(&self) -> bool {
        self.cpu.iter().any(|c| c.0 != 0) || self.xcpu_at != 0 || self.kill_at != 0
    }
}

/// RLIMIT_CPU became `[soft, hard]` (seconds): SIGXCPU once the process has used the
/// soft limit's CPU time and every second after, SIGKILL at the hard limit (Linux's
/// check_process_timers). A soft limit of 0 counts as 1 s, as on Linux.
pub fn set_cpu_limit(process: &Process, [soft, hard]: [u64; 2]) {
    let ns = |s: u64| if s == super::rlimit::RLIM_INFINITY { 0 } else { s.max(1).saturating_mul(1_000_000_000) };
    let mut st = process.itimers.state.lock();
    (st.xcpu_at, st.kill_at) = (ns(soft), ns(hard));
    process.itimers.cpu_armed.store(st.armed(), Ordering::Relaxed);
}

/// Sends SIGVTALRM and SIGPROF for the CPU timers that are due, and RLIMIT_CPU's SIGXCPU
/// and SIGKILL (`return_to_user`).
pub fn check_cpu(process: &Arc<Process>) {
    let now = sched::process_cpu_ns(process);
    let mut due = [0u32; 4];
    {
        let mut st = process.itimers.state.lock();
        for (i, sig) in [SIGVTALRM, SIGPROF].into_iter().enumerate() {
            let (expires, incr) = &mut st.cpu[i];
            if *expires != 0 && now >= *expires {
                *expires = if *incr != 0 { *expires + *incr } else { 0 };
                due[i] = sig;
            }
        }
        if st.kill_at != 0 && now >= st.kill_at {
            due[3] = super::signal::SIGKILL;
        } else if st.xcpu_at != 0 && now >= st.xcpu_at {
            st.xcpu_at = now + 1_000_000_000;
            due[2] = super::signal::SIGXCPU;
        }
        process.itimers.cpu_armed.store(st.armed(), Ordering::Relaxed);
    }
    for sig in due.into_iter().filter(|&s| s != 0) {
        let _ = signal::send_info(process, SigInfo::kernel(sig), false);
    }
}
