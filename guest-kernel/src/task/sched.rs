//! The scheduler: one run queue shared by all CPUs, round-robin, and on each CPU an idle
//! context (its boot stack) that halts when nothing can run there.
//!
//! Tasks switch only at well-defined points: when they block, exit or yield, and on the
//! way back to user space when their time slice is used up (see `task::return_to_user`):
//! the timer interrupt marks the slice's end (`time::take_resched`).
//!
//! # One global queue
//! A single queue under one lock, not per-CPU queues with load balancing: with the few
//! CPUs a micro-VM has (up to 64, mostly 1 to 4) the lock is short and rarely contended,
//! an idle CPU finds work at once, and there is no balancing policy to get wrong. Each
//! task carries an affinity mask (`sched_setaffinity`); a CPU takes the first queued task
//! allowed on it.
//!
//! # Waking and blocking across CPUs (Linux's `try_to_wake_up` protocol, simplified)
//! - A task that blocks first sets its state to Blocked, then checks its condition once
//!   more, and only then calls [`schedule`] ([`block_unless`]). A waker on another CPU
//!   makes the condition true first, then calls [`wake`]: either the blocker sees the
//!   condition, or the waker sees Blocked. `state` is changed with full barriers.
//! - `on_rq` (under the queue lock) says the task is queued or running. [`wake`] queues a
//!   Blocked task only if it is not; a task woken before its `schedule` took it off the
//!   CPU stays there, and `schedule` keeps it (as a yield).
//! - `on_cpu` says a CPU is still on the task's stack. It is cleared by the CPU that
//!   switched away, right after the switch (`finish_switch`); a CPU that picks the task
//!   waits for that before switching to it, so two CPUs never share a stack.
//! - Queuing a task kicks an idle CPU (an IPI wakes it from `hlt`); waking a task that
//!   runs on another CPU kicks that CPU, so it re-enters the kernel and sees signals or
//!   task work on its way back to user mode.

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::{Task, TaskState, TIME_SLICE_NS};
use crate::arch::{cpu, smp, switch, syscall};
use crate::mm::paging;
use crate::sync::SpinLock;
use crate::time;

/// What one CPU's scheduler keeps. Only its own CPU touches it, with interrupts off.
struct CpuSched {
    current: Option<Arc<Task>>,
    /// The task this CPU just switched away from: `finish_switch` clears its `on_cpu`.
    switched_from: Option<Arc<Task>>,
    /// Exited tasks whose kernel stacks can be freed once this CPU is off them.
    dead: Vec<Arc<Task>>,
    /// Saved stack pointer of the idle context.
    idle_rsp: u64,
}

struct PerCpu(UnsafeCell<CpuSched>);
// SAFETY: each entry is touched only by its own CPU with interrupts off (see `with_cpu`).
unsafe impl Sync for PerCpu {}

static CPUS: [PerCpu; cpu::MAX_CPUS] = [const {
    PerCpu(UnsafeCell::new(CpuSched { current: None, switched_from: None, dead: Vec::new(), idle_rsp: 0 }))
}; cpu::MAX_CPUS];

/// Whether each CPU is idle (halted or about to halt): the CPUs a queued task may kick.
static IDLE: [AtomicBool; cpu::MAX_CPUS] = [const { AtomicBool::new(false) }; cpu::MAX_CPUS];

/// Runs `f` on this CPU's scheduler state. The borrow never outlives `f`, and `f` never
/// switches tasks or lets interrupts in, so no two borrows overlap.
fn with_cpu<R>(f: impl FnOnce(&mut CpuSched) -> R) -> R {
    // SAFETY: see the function doc and `PerCpu`.
    f(unsafe { &mut *CPUS[cpu::index()].0.get() })
}

static RUN_QUEUE: SpinLock<VecDeque<Arc<Task>>> = SpinLock::new(VecDeque::new());

/// The running task. Panics in the idle context, which never calls it.
pub fn current() -> Arc<Task> {
    try_current().expect("called from a task")
}

pub fn try_current() -> Option<Arc<Task>> {
    with_cpu(|c| c.current.clone())
}

/// Makes a blocked or new task runnable; a task running on another CPU is kicked there
/// (it re-enters the kernel and sees what it was woken for).
pub fn wake(task: &Arc<Task>) {
    let mut queue = RUN_QUEUE.lock();
    let was = task.state.swap(TaskState::Runnable as u8, Ordering::SeqCst);
    if was == TaskState::Dead as u8 {
        task.state.store(was, Ordering::SeqCst);
        return;
    }
    if was == TaskState::Blocked as u8 && !task.on_rq.load(Ordering::Relaxed) {
        task.on_rq.store(true, Ordering::Relaxed);
        queue.push_back(Arc::clone(task));
        drop(queue);
        kick_idle(task);
        return;
    }
    drop(queue);
    kick(task);
}

/// Makes a task that runs on another CPU enter the kernel (an IPI): on its way back to
/// user mode it runs its task work and takes its signals.
pub fn kick(task: &Task) {
    let target = task.cpu.load(Ordering::Relaxed) as usize;
    if task.on_cpu.load(Ordering::SeqCst) && target != cpu::index() {
        smp::send_kick(target);
    }
}

/// Wakes an idle CPU that may run `task` (none if this CPU is the only one allowed).
fn kick_idle(task: &Task) {
    let me = cpu::index();
    let allowed = task.affinity.load(Ordering::Relaxed);
    for c in smp::online_cpus() {
        if c != me && allowed & (1 << c) != 0 && IDLE[c].load(Ordering::SeqCst) {
            smp::send_kick(c);
            return;
        }
    }
}

/// Queues a new task.
pub fn spawn(task: Arc<Task>) {
    task.state.store(TaskState::Runnable as u8, Ordering::SeqCst);
    task.on_rq.store(true, Ordering::Relaxed);
    RUN_QUEUE.lock().push_back(Arc::clone(&task));
    kick_idle(&task);
}

/// Blocks the current task until someone calls [`wake`] on it, unless `done()` is true
/// once the task is marked Blocked (see the module doc: a wakeup between the caller's
/// last check and the block is never lost). `done` is also where a waiter puts itself
/// where its wakers find it: only after the Blocked mark, so no wakeup can come before.
pub fn block_unless(me: &Arc<Task>, done: impl FnOnce() -> bool) {
    me.state.store(TaskState::Blocked as u8, Ordering::SeqCst);
    if done() {
        me.state.store(TaskState::Runnable as u8, Ordering::SeqCst);
        return;
    }
    schedule();
}

/// Lets other runnable tasks go first.
pub fn yield_now() {
    // Tasks that yield in a loop (the SQ poller) must not keep timers and devices out.
    crate::arch::cpu::take_pending_interrupts();
    time::run_expired();
    smp::poll_requests();
    if others_runnable() {
        schedule();
    }
}

/// Ends the current task for good (its memory is freed after the switch).
pub fn exit_current() -> ! {
    current().state.store(TaskState::Dead as u8, Ordering::SeqCst);
    schedule();
    unreachable!("a dead task was resumed");
}

/// Adds the CPU time the running task `me` has used since it was switched in (or since
/// the last call) to it and its process.
pub fn account(me: &Task) {
    let now = time::monotonic_ns();
    let used = now.saturating_sub(me.run_start.swap(now, Ordering::Relaxed));
    me.cpu_ns.fetch_add(used, Ordering::Relaxed);
    me.process.cpu_ns.fetch_add(used, Ordering::Relaxed);
}

/// The CPU time `process`'s tasks have used, its running ones' up to now.
pub fn process_cpu_ns(process: &super::Process) -> u64 {
    let used = process.cpu_ns.load(Ordering::Relaxed);
    let now = time::monotonic_ns();
    let running: u64 = process
        .threads
        .lock()
        .iter()
        .filter(|t| t.on_cpu.load(Ordering::Relaxed))
        .map(|t| now.saturating_sub(t.run_start.load(Ordering::Relaxed)))
        .sum();
    used + running
}

/// The CPU time `task` has used, up to now if it is running.
pub fn task_cpu_ns(task: &Task) -> u64 {
    let used = task.cpu_ns.load(Ordering::Relaxed);
    if task.on_cpu.load(Ordering::Relaxed) {
        used + time::monotonic_ns().saturating_sub(task.run_start.load(Ordering::Relaxed))
    } else {
        used
    }
}

/// Whether a task allowed on this CPU is waiting to run.
pub fn others_runnable() -> bool {
    let me = 1u64 << cpu::index();
    RUN_QUEUE.lock().iter().any(|t| t.affinity.load(Ordering::Relaxed) & me != 0)
}

/// Takes the first queued task allowed on CPU `me`.
fn pick(queue: &mut VecDeque<Arc<Task>>, me: usize) -> Option<Arc<Task>> {
    let at = queue.iter().position(|t| t.affinity.load(Ordering::Relaxed) & (1 << me) != 0)?;
    queue.remove(at)
}

/// Switches to the next runnable task, or to the idle context if none. The current task
/// goes back in the queue if it is still runnable (a yield, or a wakeup that came before
/// it could block). Returns when the current task is scheduled again.
pub fn schedule() {
    let me = cpu::index();
    let prev = with_cpu(|c| c.current.take());
    let mut moved = false;
    let next = {
        let mut queue = RUN_QUEUE.lock();
        if let Some(p) = &prev {
            let state = p.state.load(Ordering::SeqCst);
            if state == TaskState::Runnable as u8 {
                queue.push_back(Arc::clone(p));
                moved = p.affinity.load(Ordering::Relaxed) & (1 << me) == 0;
            } else {
                p.on_rq.store(false, Ordering::Relaxed);
                if state == TaskState::Dead as u8 {
                    with_cpu(|c| c.dead.push(Arc::clone(p)));
                }
            }
        }
        pick(&mut queue, me)
    };
    if moved {
        // No longer allowed here (sched_setaffinity): an idle CPU that may run it should.
        kick_idle(prev.as_ref().expect("moved is about prev"));
    }
    match (&prev, &next) {
        (Some(p), Some(n)) if Arc::ptr_eq(p, n) => {
            with_cpu(|c| c.current = next);
            return;
        }
        (None, None) => return,
        _ => {}
    }
    // The CPU time `prev` used goes to it and its process; `next`'s starts now.
    let now = time::monotonic_ns();
    if let Some(p) = &prev {
        account(p);
        if p.has_user() {
            // SAFETY: `prev` runs here, so no other CPU touches its FPU area until
            // `finish_switch` clears its `on_cpu`.
            unsafe { (*p.fpu.get()).save() };
        }
    }
    let next_rsp = match &next {
        Some(n) => {
            // Another CPU may still be on its stack (it blocked and was woken at once).
            // Acquire pairs with the Release in `finish_switch` of that CPU.
            while n.on_cpu.load(Ordering::Acquire) {
                cpu::relax();
            }
            n.on_cpu.store(true, Ordering::SeqCst);
            n.cpu.store(me as u32, Ordering::Relaxed);
            n.run_start.store(now, Ordering::Relaxed);
            syscall::set_kernel_stack(n.kstack_top());
            n.activate_memory();
            if n.has_user() {
                // SAFETY: as above, for the next task, now ours.
                unsafe { (*n.fpu.get()).restore() };
                switch::set_fs_base(n.fs_base.load(Ordering::Relaxed));
            }
            // SAFETY: the task is not running anywhere, so its saved rsp is stable.
            unsafe { *n.saved_rsp.get() }
        }
        None => {
            paging::activate_kernel();
            with_cpu(|c| c.idle_rsp)
        }
    };
    // A task's slice follows its nice value (`attrs::ThreadAttrs::slice`).
    let slice = next.as_ref().map(|n| n.attrs.slice(TIME_SLICE_NS));
    let save: *mut u64 = match &prev {
        // SAFETY: the saved rsp slot lives as long as the task (kept alive by
        // `switched_from` until after the switch).
        Some(p) => p.saved_rsp.get(),
        // SAFETY: this CPU's own entry, which lives forever.
        None => unsafe { &raw mut (*CPUS[me].0.get()).idle_rsp },
    };
    {
        // The idle context works for no request: what it leaves is dropped.
        static SCRATCH: AtomicU64 = AtomicU64::new(0);
        static NONE: AtomicU64 = AtomicU64::new(0);
        let saved = prev.as_ref().map_or(&SCRATCH, |p| &p.trace_request);
        let restore = next.as_ref().map_or(&NONE, |n| &n.trace_request);
        crate::trace::switch(next.as_ref().map_or(0, |n| n.tid), saved, restore);
    }
    with_cpu(|c| {
        c.current = next;
        c.switched_from = prev;
    });
    // The next task's slice starts now (the idle context has none: no interrupt is
    // armed for it, so an idle CPU sleeps until a deadline or a device needs it).
    match slice {
        Some(len) => time::start_slice(len),
        None => time::stop_slice(),
    }
    // SAFETY: `next_rsp` was saved by `context_switch` or made by `prepare_stack`, and its
    // task is alive (it is `current` now); `save` stays valid as argued above.
    unsafe { switch::switch(save, next_rsp) };
    finish_switch();
}

/// Runs on the new context's stack right after a switch: the task switched away from is
/// off this CPU now, and tasks that died can be freed.
pub extern "C" fn finish_switch() {
    let (from, dead) = with_cpu(|c| (c.switched_from.take(), core::mem::take(&mut c.dead)));
    if let Some(p) = from {
        // Release pairs with the Acquire in `schedule` of the CPU that runs it next: its
        // saved registers and FPU state are written.
        p.on_cpu.store(false, Ordering::Release);
    }
    // Dropped here, on another stack than theirs.
    drop(dead);
}

/// The idle loop, run on each CPU's boot stack: runs tasks until `done()`, halting while
/// none may run here.
pub fn idle_loop(mut done: impl FnMut() -> bool) {
    let me = cpu::index();
    while !done() {
        if others_runnable() {
            schedule();
            continue;
        }
        // Announce idleness, then look once more: a task queued meanwhile either sees
        // this CPU idle and kicks it (the IPI ends the halt), or is seen here.
        IDLE[me].store(true, Ordering::SeqCst);
        if !others_runnable() {
            cpu::wait_for_interrupt();
        }
        IDLE[me].store(false, Ordering::SeqCst);
        smp::poll_requests();
    }
}
