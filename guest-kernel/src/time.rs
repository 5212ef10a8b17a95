//! Kernel time.
//!
//! - Ticks: the LAPIC timer interrupts `HZ` times a second; each tick wakes the tasks
//!   whose timers expired and may end the running task's time slice.
//! - Monotonic clock: the TSC, converted with a frequency taken from `tsc_khz=` on the
//!   command line or measured at boot against the LAPIC timer (which counts at 1 GHz on
//!   the platforms we run on).
//! - Realtime clock: monotonic time plus the boot time in seconds since the epoch, read
//!   from the CMOS RTC when one answers, else from `epoch=` on the command line, else 0.

use alloc::boxed::Box;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::sync::SpinLock;
use crate::task::{sched, Task};

/// Timer interrupts per second.
pub const HZ: u64 = 100;

static TICKS: AtomicU64 = AtomicU64::new(0);
static TSC_KHZ: AtomicU64 = AtomicU64::new(0);
static TSC_BOOT: AtomicU64 = AtomicU64::new(0);
static BOOT_EPOCH_NS: AtomicU64 = AtomicU64::new(0);
/// What happens when a timer expires.
enum Expiry {
    /// Weak: a task woken early and gone meanwhile is not kept alive by its old timer.
    Wake(Weak<Task>),
    /// Runs in the timer interrupt (io_uring timeouts).
    Call(Box<dyn FnOnce() + Send>),
}

static TIMERS: SpinLock<Vec<(u64, Expiry)>> = SpinLock::new(Vec::new());

pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC only reads the time-stamp counter.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Called from the timer interrupt.
pub fn tick() {
    TICKS.fetch_add(1, Ordering::Relaxed);
    run_timers();
}

pub fn ticks() -> u64 {
    TICKS.load(Ordering::Relaxed)
}

/// Milliseconds since the timer started (tick resolution; for log lines).
pub fn uptime_ms() -> u64 {
    ticks() * (1000 / HZ)
}

/// Sets the TSC frequency (`tsc_khz` from the command line, or 0 to measure it) and the
/// boot wall-clock time.
pub fn init(tsc_khz: Option<u64>, epoch: Option<u64>) {
    let khz = tsc_khz.filter(|&k| k > 0).unwrap_or_else(crate::arch::lapic::measure_tsc_khz);
    TSC_KHZ.store(khz.max(1), Ordering::Relaxed);
    TSC_BOOT.store(rdtsc(), Ordering::Relaxed);
    let secs = crate::arch::rtc::read_epoch_seconds().or(epoch).unwrap_or(0);
    BOOT_EPOCH_NS.store(secs * 1_000_000_000, Ordering::Relaxed);
    log::debug!("time: TSC {khz} kHz, boot epoch {secs}");
}

/// Nanoseconds since boot.
pub fn monotonic_ns() -> u64 {
    let khz = TSC_KHZ.load(Ordering::Relaxed);
    if khz == 0 {
        return ticks() * (1_000_000_000 / HZ);
    }
    let cycles = rdtsc().wrapping_sub(TSC_BOOT.load(Ordering::Relaxed));
    (u128::from(cycles) * 1_000_000 / u128::from(khz)) as u64
}

/// Nanoseconds since the epoch.
pub fn realtime_ns() -> u64 {
    BOOT_EPOCH_NS.load(Ordering::Relaxed) + monotonic_ns()
}

/// Wakes `task` at `deadline` (monotonic ns) unless it is woken earlier.
pub fn add_timer(deadline: u64, task: &Arc<Task>) {
    TIMERS.lock().push((deadline, Expiry::Wake(Arc::downgrade(task))));
}

/// Runs `f` from the timer interrupt at `deadline` (monotonic ns).
pub fn call_at(deadline: u64, f: Box<dyn FnOnce() + Send>) {
    TIMERS.lock().push((deadline, Expiry::Call(f)));
}

/// Wakes every task whose timer expired.
pub fn run_timers() {
    let now = monotonic_ns();
    let expired: Vec<Expiry> = {
        let mut timers = TIMERS.lock();
        if timers.iter().all(|(d, _)| *d > now) {
            return;
        }
        let (due, later): (Vec<_>, Vec<_>) = core::mem::take(&mut *timers).into_iter().partition(|(d, _)| *d <= now);
        *timers = later;
        due.into_iter().map(|(_, e)| e).collect()
    };
    for e in expired {
        match e {
            Expiry::Wake(t) => {
                if let Some(t) = t.upgrade() {
                    sched::wake(&t);
                }
            }
            Expiry::Call(f) => f(),
        }
    }
}
