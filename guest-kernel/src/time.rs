//! Kernel time: clocks, one-shot deadline timers, and the scheduler's time slice.
//!
//! - Monotonic clock: the TSC, converted to ns with a fixed-point factor computed once
//!   from its frequency (taken from `tsc_khz=` on the command line or measured at boot
//!   against the LAPIC timer, which counts at 1 GHz on the platforms we run on).
//! - Realtime clock: monotonic time plus the boot time in seconds since the epoch, read
//!   from the CMOS RTC when one answers, else from `epoch=` on the command line, else 0.
//! - Timers: one structure, ordered by (deadline, sequence number), holds every pending
//!   deadline: sleeping tasks ([`wake_at`]) and callbacks ([`call_at`], io_uring
//!   timeouts). Insert and [`cancel`] are O(log n); a request that ends early cancels its
//!   timer, so the structure holds only live deadlines.
//! - Hardware: no periodic tick. Each CPU arms its LAPIC timer once, for the earliest of
//!   the structure's first deadline and its own time-slice end (TSC-deadline mode when
//!   the CPU has it, else one-shot: see `arch::x86_64::lapic`). An idle CPU with no timer
//!   pending gets no timer interrupt at all.
//!
//! # Locking and SMP
//! `TIMERS` is shared by all CPUs. The interrupt handler takes one due entry at a time
//! out of it under the lock and runs it with no lock held, so a callback may take any
//! lock (ring locks, the scheduler's) and may add or cancel timers. Each CPU keeps what
//! it has armed in its own [`CpuTimer`], touched only by that CPU with interrupts off.
//! Invariant: some CPU is armed at or before the earliest deadline in `TIMERS` (the CPU
//! that inserts a new earliest deadline arms itself; a CPU whose interrupt runs entries
//! arms itself for the next one). Several CPUs may be armed for the same deadline: the
//! first to take it runs it, the others find nothing due and re-arm. A timer that fires
//! on a CPU while another cancels it: `cancel` returns false and the callback runs (once).

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::sync::{Arc, Weak};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::arch::{cpu, lapic};
use crate::sync::SpinLock;
use crate::task::{sched, Task};

static TSC_BOOT: AtomicU64 = AtomicU64::new(0);
/// ns = cycles * NS_PER_CYCLE >> 32 (0 until `init`).
static NS_PER_CYCLE: AtomicU64 = AtomicU64::new(0);
/// cycles = ns * CYCLES_PER_NS >> 32.
static CYCLES_PER_NS: AtomicU64 = AtomicU64::new(0);
static BOOT_EPOCH_NS: AtomicU64 = AtomicU64::new(0);

/// Identifies one pending timer, for [`cancel`]. Holds the deadline so that removal is a
/// lookup in the ordered structure, not a scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerId {
    deadline: u64,
    seq: u64,
}

/// What happens when a timer expires.
enum Expiry {
    /// Weak: a task that exits while its timer stands is not kept alive by it.
    Wake(Weak<Task>),
    /// Runs in the timer interrupt with no lock held (io_uring timeouts).
    Call(Box<dyn FnOnce() + Send>),
}

/// Every pending timer, earliest first.
static TIMERS: SpinLock<BTreeMap<(u64, u64), Expiry>> = SpinLock::new(BTreeMap::new());
static NEXT_SEQ: AtomicU64 = AtomicU64::new(0);

/// At most this many expired timers run in one interrupt; more re-arm the timer at once,
/// so a callback that keeps adding expired timers cannot hold the CPU forever.
const MAX_EXPIRIES_PER_INTERRUPT: usize = 64;

/// What one CPU has armed, and its time slice. Only its own CPU touches it, with
/// interrupts off (atomics only because a `static` needs `Sync`).
struct CpuTimer {
    /// The deadline (monotonic ns) the LAPIC timer is armed for; `u64::MAX`: not armed.
    armed: AtomicU64,
    /// When the running task's time slice ends; `u64::MAX`: no task runs (idle).
    slice_end: AtomicU64,
    /// Length of the slice, renewed while a task keeps the CPU.
    slice_len: AtomicU64,
    /// Set by the interrupt when the slice ended; taken on the way back to user mode.
    need_resched: AtomicBool,
}

impl CpuTimer {
    const fn new() -> Self {
        Self {
            armed: AtomicU64::new(u64::MAX),
            slice_end: AtomicU64::new(u64::MAX),
            slice_len: AtomicU64::new(0),
            need_resched: AtomicBool::new(false),
        }
    }
}

static CPUS: [CpuTimer; cpu::MAX_CPUS] = [const { CpuTimer::new() }; cpu::MAX_CPUS];

fn this_cpu() -> &'static CpuTimer {
    &CPUS[cpu::index()]
}

/// Runs `f` with interrupts off (this CPU's timer state must not change under it).
fn irqs_off<R>(f: impl FnOnce() -> R) -> R {
    let was_on = cpu::disable_interrupts();
    let r = f();
    if was_on {
        cpu::enable_interrupts();
    }
    r
}

pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC only reads the time-stamp counter.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Sets the TSC frequency (`tsc_khz` from the command line, or 0 to measure it) and the
/// boot wall-clock time, and starts the LAPIC timer in its one-shot mode (TSC-deadline
/// unless `tsc_deadline` is false or the CPU lacks it).
pub fn init(tsc_khz: Option<u64>, epoch: Option<u64>, tsc_deadline: bool) {
    let khz = tsc_khz.filter(|&k| k > 0).unwrap_or_else(lapic::measure_tsc_khz).max(1);
    // Fixed-point factors with 32 fractional bits: 1e6 / khz ns per cycle, khz / 1e6
    // cycles per ns (below 2^64 for any TSC under 4 PHz).
    NS_PER_CYCLE.store(((1_000_000u128 << 32) / u128::from(khz)) as u64, Ordering::Relaxed);
    CYCLES_PER_NS.store(((u128::from(khz) << 32) / 1_000_000) as u64, Ordering::Relaxed);
    TSC_BOOT.store(rdtsc(), Ordering::Relaxed);
    let secs = crate::arch::rtc::read_epoch_seconds().or(epoch).unwrap_or(0);
    BOOT_EPOCH_NS.store(secs * 1_000_000_000, Ordering::Relaxed);
    let deadline_mode = lapic::start_timer(tsc_deadline);
    log::debug!(
        "time: TSC {khz} kHz, boot epoch {secs}, LAPIC timer {}",
        if deadline_mode { "TSC-deadline" } else { "one-shot" }
    );
}

/// Nanoseconds since boot (0 before `init`).
pub fn monotonic_ns() -> u64 {
    let cycles = rdtsc().wrapping_sub(TSC_BOOT.load(Ordering::Relaxed));
    ((u128::from(cycles) * u128::from(NS_PER_CYCLE.load(Ordering::Relaxed))) >> 32) as u64
}

/// Milliseconds since boot (for log lines).
pub fn uptime_ms() -> u64 {
    monotonic_ns() / 1_000_000
}

/// Nanoseconds since the epoch.
pub fn realtime_ns() -> u64 {
    BOOT_EPOCH_NS.load(Ordering::Relaxed) + monotonic_ns()
}

/// The TSC's rate in kHz (from the ns-per-cycle factor).
pub fn tsc_khz() -> u64 {
    let ns_per_cycle = NS_PER_CYCLE.load(Ordering::Relaxed).max(1);
    ((1_000_000u128 << 32) / u128::from(ns_per_cycle)) as u64
}

/// What the vDSO's vvar page holds (its `Vvar`): the TSC at boot, ns per cycle (32.32
/// fixed point), and CLOCK_REALTIME at boot in ns.
pub fn vdso_data() -> [u64; 3] {
    [TSC_BOOT.load(Ordering::Relaxed), NS_PER_CYCLE.load(Ordering::Relaxed), BOOT_EPOCH_NS.load(Ordering::Relaxed)]
}

/// The TSC value at monotonic time `ns`.
fn tsc_at(ns: u64) -> u64 {
    let cycles = (u128::from(ns) * u128::from(CYCLES_PER_NS.load(Ordering::Relaxed))) >> 32;
    TSC_BOOT.load(Ordering::Relaxed).saturating_add(u64::try_from(cycles).unwrap_or(u64::MAX))
}

fn insert(deadline: u64, expiry: Expiry) -> TimerId {
    let id = TimerId { deadline, seq: NEXT_SEQ.fetch_add(1, Ordering::Relaxed) };
    irqs_off(|| {
        let earliest = {
            let mut timers = TIMERS.lock();
            timers.insert((id.deadline, id.seq), expiry);
            timers.first_key_value().map_or(u64::MAX, |(k, _)| k.0)
        };
        // Keep the invariant (module doc): whoever adds the earliest deadline arms itself.
        let me = this_cpu();
        if earliest < me.armed.load(Ordering::Relaxed) {
            arm(me, earliest);
        }
    });
    id
}

/// Runs `f` from the timer interrupt at `deadline` (monotonic ns), unless cancelled.
/// `f` runs with no lock held and interrupts off; it must not block.
pub fn call_at(deadline: u64, f: Box<dyn FnOnce() + Send>) -> TimerId {
    insert(deadline, Expiry::Call(f))
}

/// Wakes `task` at `deadline` (monotonic ns), unless cancelled. The waiter cancels it
/// when its wait ends early; a wakeup that races with that is spurious, which every
/// wait loop tolerates (it checks its condition again).
pub fn wake_at(deadline: u64, task: &Arc<Task>) -> TimerId {
    insert(deadline, Expiry::Wake(Arc::downgrade(task)))
}

/// Removes a pending timer: true if it was pending (it will not run), false if it has
/// already run or is running on another CPU. The LAPIC stays armed: an interrupt for a
/// deadline that is gone finds nothing due and re-arms for the next one.
pub fn cancel(id: TimerId) -> bool {
    // The removed entry (a callback and what it owns) is dropped after the lock.
    let removed = TIMERS.lock().remove(&(id.deadline, id.seq));
    removed.is_some()
}

/// The earliest pending deadline and each online CPU's armed deadline (monotonic ns), for
/// `task::dump_tasks`.
pub fn debug_state() -> alloc::string::String {
    let first = TIMERS.lock().first_key_value().map(|(k, _)| k.0);
    let mut s = alloc::format!("timers: now {} first {first:?} armed", monotonic_ns());
    for c in crate::arch::smp::online_cpus() {
        s.push_str(&alloc::format!(" {}", CPUS[c].armed.load(Ordering::Relaxed) as i64));
    }
    s
}

/// How many timers are pending (for tests: it returns to its old value once the
/// requests that armed timers have ended).
pub fn pending() -> usize {
    TIMERS.lock().len()
}

/// The timer interrupt: runs what expired, ends the time slice when due, and re-arms for
/// the next deadline. Allocates nothing and holds no lock while running expiries.
pub fn interrupt() {
    let me = this_cpu();
    me.armed.store(u64::MAX, Ordering::Relaxed); // a one-shot interrupt: nothing armed now
    let now = monotonic_ns();
    for _ in 0..MAX_EXPIRIES_PER_INTERRUPT {
        let due = {
            let mut timers = TIMERS.lock();
            match timers.first_entry() {
                Some(e) if e.key().0 <= now => Some(e.remove()),
                _ => None,
            }
        };
        match due {
            Some(Expiry::Wake(task)) => {
                if let Some(task) = task.upgrade() {
                    sched::wake(&task);
                }
            }
            Some(Expiry::Call(f)) => f(),
            None => break,
        }
    }
    if me.slice_end.load(Ordering::Relaxed) <= now {
        me.need_resched.store(true, Ordering::Relaxed);
        me.slice_end.store(now.saturating_add(me.slice_len.load(Ordering::Relaxed)), Ordering::Relaxed);
    }
    let earliest = TIMERS.lock().first_key_value().map_or(u64::MAX, |(k, _)| k.0);
    arm(me, earliest.min(me.slice_end.load(Ordering::Relaxed)));
}

/// Runs the timers that are due without waiting for their interrupt (a task that only
/// yields, where the hypervisor may not deliver the interrupt in the moment interrupts
/// are let in). Interrupts must be off.
pub fn run_expired() {
    let due = TIMERS.lock().first_key_value().is_some_and(|(k, _)| k.0 <= monotonic_ns());
    if due {
        interrupt();
    }
}

/// Arms this CPU's LAPIC timer for `deadline` (monotonic ns; `u64::MAX`: disarm).
/// Interrupts must be off.
fn arm(me: &CpuTimer, deadline: u64) {
    if deadline == u64::MAX {
        lapic::disarm();
    } else {
        lapic::arm(deadline.saturating_sub(monotonic_ns()), tsc_at(deadline));
    }
    me.armed.store(deadline, Ordering::Relaxed);
}

/// A task starts running on this CPU: its slice of `len` ns begins now. While tasks keep
/// the CPU, the slice ends every `len` ns (see [`take_resched`]).
pub fn start_slice(len: u64) {
    irqs_off(|| {
        let me = this_cpu();
        let end = monotonic_ns().saturating_add(len);
        me.slice_len.store(len, Ordering::Relaxed);
        me.slice_end.store(end, Ordering::Relaxed);
        me.need_resched.store(false, Ordering::Relaxed);
        if end < me.armed.load(Ordering::Relaxed) {
            arm(me, end);
        }
    });
}

/// This CPU goes idle: no slice to end (an interrupt armed for it finds nothing to do).
pub fn stop_slice() {
    irqs_off(|| {
        let me = this_cpu();
        me.slice_end.store(u64::MAX, Ordering::Relaxed);
        me.need_resched.store(false, Ordering::Relaxed);
    });
}

/// Whether the running task's slice ended since the last call (then it should let other
/// runnable tasks go first). Cheap: one load on the way back to user mode. Interrupts
/// must be off (as they are in the kernel), so the flag belongs to this CPU throughout.
pub fn take_resched() -> bool {
    let me = this_cpu();
    me.need_resched.load(Ordering::Relaxed) && me.need_resched.swap(false, Ordering::Relaxed)
}
