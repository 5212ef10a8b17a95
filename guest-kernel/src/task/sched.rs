//! The scheduler: one CPU, a round-robin run queue, and an idle context (the boot stack)
//! that halts when nothing can run.
//!
//! Tasks switch only at well-defined points: when they block, exit or yield, and on the
//! way back to user space when their time slice is used up (see `task::return_to_user`):
//! the timer interrupt marks the slice's end (`time::take_resched`).

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use super::{Task, TaskState, TIME_SLICE_NS};
use crate::arch::{cpu, switch, syscall};
use crate::mm::paging;
use crate::sync::SpinLock;
use crate::time;

struct Scheduler {
    run_queue: VecDeque<Arc<Task>>,
    current: Option<Arc<Task>>,
    /// Exited tasks whose kernel stacks can be freed once we are off them.
    dead: Vec<Arc<Task>>,
    /// Saved stack pointer of the idle context.
    idle_rsp: u64,
}

/// When the running task was switched in (monotonic ns): CPU time it has used since then
/// is not yet in its `cpu_ns` and its process's.
static RUN_START: AtomicU64 = AtomicU64::new(0);

static SCHED: SpinLock<Scheduler> =
    SpinLock::new(Scheduler { run_queue: VecDeque::new(), current: None, dead: Vec::new(), idle_rsp: 0 });

/// The running task. Panics in the idle context, which never calls it.
pub fn current() -> Arc<Task> {
    SCHED.lock().current.clone().expect("called from a task")
}

pub fn try_current() -> Option<Arc<Task>> {
    SCHED.lock().current.clone()
}

/// Makes a blocked or new task runnable.
pub fn wake(task: &Arc<Task>) {
    let was = task.state.swap(TaskState::Runnable as u8, Ordering::Relaxed);
    if was == TaskState::Blocked as u8 {
        SCHED.lock().run_queue.push_back(Arc::clone(task));
    } else if was == TaskState::Dead as u8 {
        task.state.store(was, Ordering::Relaxed);
    }
}

/// Queues a new task.
pub fn spawn(task: Arc<Task>) {
    task.state.store(TaskState::Runnable as u8, Ordering::Relaxed);
    SCHED.lock().run_queue.push_back(task);
}

/// Blocks the current task until someone calls [`wake`] on it.
pub fn block_current() {
    let me = current();
    me.state.store(TaskState::Blocked as u8, Ordering::Relaxed);
    drop(me);
    schedule();
}

/// Lets other runnable tasks go first.
pub fn yield_now() {
    // Tasks that yield in a loop (the SQ poller) must not keep timers and devices out.
    crate::arch::cpu::take_pending_interrupts();
    time::run_expired();
    let me = current();
    let mut s = SCHED.lock();
    if s.run_queue.is_empty() {
        return;
    }
    s.run_queue.push_back(Arc::clone(&me));
    drop(s);
    drop(me);
    schedule();
}

/// Ends the current task for good (its memory is freed after the switch).
pub fn exit_current() -> ! {
    let me = current();
    me.state.store(TaskState::Dead as u8, Ordering::Relaxed);
    SCHED.lock().dead.push(me);
    schedule();
    unreachable!("a dead task was resumed");
}

/// The CPU time `process`'s tasks have used, the running one's up to now.
pub fn process_cpu_ns(process: &super::Process) -> u64 {
    let used = process.cpu_ns.load(Ordering::Relaxed);
    match &SCHED.lock().current {
        Some(t) if core::ptr::eq(&*t.process, process) => {
            used + time::monotonic_ns().saturating_sub(RUN_START.load(Ordering::Relaxed))
        }
        _ => used,
    }
}

/// The CPU time `task` has used, up to now if it is running.
pub fn task_cpu_ns(task: &Task) -> u64 {
    let used = task.cpu_ns.load(Ordering::Relaxed);
    match &SCHED.lock().current {
        Some(t) if core::ptr::eq(&**t, task) => used + time::monotonic_ns().saturating_sub(RUN_START.load(Ordering::Relaxed)),
        _ => used,
    }
}

/// Whether another task is waiting to run.
pub fn others_runnable() -> bool {
    !SCHED.lock().run_queue.is_empty()
}

/// Switches to the next runnable task, or to the idle context if none. Returns when the
/// current task is scheduled again.
pub fn schedule() {
    let (save, next_rsp, slice) = {
        let mut s = SCHED.lock();
        let prev = s.current.take();
        let next = loop {
            match s.run_queue.pop_front() {
                Some(t) if t.state.load(Ordering::Relaxed) == TaskState::Runnable as u8 => break Some(t),
                Some(_) => continue,
                None => break None,
            }
        };
        match (&prev, &next) {
            (Some(p), Some(n)) if Arc::ptr_eq(p, n) => {
                s.current = next;
                return;
            }
            (None, None) => return,
            _ => {}
        }
        // The CPU time `prev` used goes to it and its process; `next`'s starts now.
        let now = time::monotonic_ns();
        if let Some(p) = &prev {
            let used = now.saturating_sub(RUN_START.load(Ordering::Relaxed));
            p.cpu_ns.fetch_add(used, Ordering::Relaxed);
            p.process.cpu_ns.fetch_add(used, Ordering::Relaxed);
        }
        RUN_START.store(now, Ordering::Relaxed);
        if let Some(p) = &prev
            && p.has_user() {
                // SAFETY: single CPU; nobody else touches the running task's FPU area.
                unsafe { (*p.fpu.get()).save() };
            }
        let save: *mut u64 = match &prev {
            // SAFETY: the saved rsp slot lives as long as the task (kept alive by the
            // run queue, a wait queue, or the dead list until after the switch).
            Some(p) => p.saved_rsp.get(),
            None => &raw mut s.idle_rsp,
        };
        let next_rsp = match &next {
            Some(n) => {
                syscall::set_kernel_stack(n.kstack_top());
                n.activate_memory();
                if n.has_user() {
                    // SAFETY: as above, for the next task.
                    unsafe { (*n.fpu.get()).restore() };
                    switch::set_fs_base(n.fs_base.load(Ordering::Relaxed));
                }
                // SAFETY: the task is not running, so its saved rsp is stable.
                unsafe { *n.saved_rsp.get() }
            }
            None => {
                paging::activate_kernel();
                s.idle_rsp
            }
        };
        // A task's slice follows its nice value (`attrs::ThreadAttrs::slice`).
        let slice = next.as_ref().map(|n| n.attrs.slice(TIME_SLICE_NS));
        s.current = next;
        (save, next_rsp, slice)
    };
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

/// Runs on the new task's stack right after a switch: frees tasks that died.
pub extern "C" fn finish_switch() {
    let dead = core::mem::take(&mut SCHED.lock().dead);
    let me = SCHED.lock().current.clone();
    for t in dead {
        if me.as_ref().is_some_and(|m| Arc::ptr_eq(m, &t)) {
            SCHED.lock().dead.push(t);
        }
    }
}

/// The idle loop, run on the boot stack once the first task exists: runs tasks until
/// none is left, halting while all are blocked.
pub fn idle_loop(mut done: impl FnMut() -> bool) {
    while !done() {
        if others_runnable() {
            schedule();
        } else {
            cpu::wait_for_interrupt();
        }
    }
}
