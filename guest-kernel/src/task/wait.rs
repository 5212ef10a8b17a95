//! Wait queues: a task blocks until a condition holds, a signal arrives or a deadline
//! passes; wakers (syscalls of other tasks, interrupt handlers) make it runnable again.
//!
//! "Check the condition, then block" cannot miss a wakeup, even from another CPU: the
//! task marks itself Blocked, then queues itself here, then checks the condition a last
//! time (`sched::block_unless`); a waker makes the condition true before it wakes the
//! queue. The order matters because a wakeup takes the task off the queue: queued before
//! it was Blocked, a wakeup in between would be undone by the Blocked mark, and if the
//! condition turned false again meanwhile (a third task took a mutex) the task would sleep
//! off the queue, where no later wakeup finds it (Linux's `prepare_to_wait` order).
//!
//! A wait with a deadline arms one timer (`time::wake_at`) the first time it blocks and
//! cancels it when the wait ends, however it ends: the timer structure holds only the
//! deadlines of tasks still waiting.

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;

use super::sched;
use super::Task;
use crate::sync::SpinLock;
use crate::time;

#[derive(Debug, PartialEq, Eq)]
pub enum WaitError {
    /// A signal is pending for the task (the syscall returns -EINTR).
    Interrupted,
    /// The deadline passed (-ETIMEDOUT or a short sleep, per syscall).
    TimedOut,
}

/// A one-shot callback run on the next wakeup (io_uring's poll-driven retry of a request
/// that would have blocked). It runs in the waker's context with interrupts off.
pub type WakeCallback = alloc::boxed::Box<dyn FnOnce() + Send>;

pub struct WaitQueue {
    waiters: SpinLock<Vec<Arc<Task>>>,
    /// One-shot callbacks by the id `add_callback` returned (ids grow, so this is also
    /// the order they were added in; removal is O(log n) however many wait).
    callbacks: SpinLock<BTreeMap<u64, (bool, WakeCallback)>>,
}

/// Ids of wake callbacks, unique for the kernel's lifetime.
static NEXT_CALLBACK: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(1);

impl Default for WaitQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl WaitQueue {
    pub const fn new() -> Self {
        Self { waiters: SpinLock::new(Vec::new()), callbacks: SpinLock::new(BTreeMap::new()) }
    }

    /// Blocks the current task until `ready()` is true. `deadline` is in monotonic ns.
    pub fn wait_until(&self, deadline: Option<u64>, mut ready: impl FnMut() -> bool) -> Result<(), WaitError> {
        let Some(me) = sched::try_current() else {
            // Boot, before any task exists: halt until an interrupt makes it true (an empty
            // timer makes sure one comes at the deadline).
            let timer = deadline.map(|d| time::call_at(d, alloc::boxed::Box::new(|| {})));
            let result = loop {
                if ready() {
                    break Ok(());
                }
                if deadline.is_some_and(|d| time::monotonic_ns() >= d) {
                    break Err(WaitError::TimedOut);
                }
                crate::arch::cpu::wait_for_interrupt();
            };
            if let Some(t) = timer {
                time::cancel(t);
            }
            return result;
        };
        let mut timer = None;
        let result = loop {
            if ready() {
                break Ok(());
            }
            if me.signal_pending() {
                break Err(WaitError::Interrupted);
            }
            if deadline.is_some_and(|d| time::monotonic_ns() >= d) {
                break Err(WaitError::TimedOut);
            }
            // io_uring work queued for this task runs here, in its own context, and the
            // wait goes on (Linux: TWA_SIGNAL task_work, then the syscall restarts).
            if me.task_work_pending() {
                super::run_task_work(&me);
                continue;
            }
            if let (Some(d), None) = (deadline, timer) {
                timer = Some(time::wake_at(d, &me));
            }
            // SeqCst: pairs with the task-work and signal senders, which set their flag
            // and then look at this one.
            me.interruptible.store(true, core::sync::atomic::Ordering::SeqCst);
            // `ready` may act when it finds its condition (wait4 reaps the child): once
            // it has said true it is not asked again.
            let mut now_ready = false;
            // Everything that may wake it from another CPU once it looked above is looked
            // at again (the deadline too: its timer may have run meanwhile).
            sched::block_unless(&me, || {
                self.waiters.lock().push(Arc::clone(&me));
                now_ready = ready();
                now_ready
                    || me.task_work_pending()
                    || me.signal_pending()
                    || deadline.is_some_and(|d| time::monotonic_ns() >= d)
            });
            me.interruptible.store(false, core::sync::atomic::Ordering::Relaxed);
            self.waiters.lock().retain(|t| !Arc::ptr_eq(t, &me));
            if now_ready {
                break Ok(());
            }
        };
        // Woken early (or the timer already ran: then this finds nothing).
        if let Some(t) = timer {
            time::cancel(t);
        }
        result
    }

    /// Blocks until `ready()` is true, whatever signals are pending: for waits that must
    /// see a device finish (it writes into memory the waiter owns).
    pub fn wait_uninterruptible(&self, mut ready: impl FnMut() -> bool) {
        let Some(me) = sched::try_current() else {
            while !ready() {
                crate::arch::cpu::wait_for_interrupt();
            }
            return;
        };
        let mut now_ready = ready();
        while !now_ready {
            sched::block_unless(&me, || {
                self.waiters.lock().push(Arc::clone(&me));
                now_ready = ready();
                now_ready
            });
            self.waiters.lock().retain(|t| !Arc::ptr_eq(t, &me));
            if !now_ready {
                now_ready = ready();
            }
        }
    }

    /// Runs `callback` on the next wakeup of this queue; returns its id. Of the
    /// `exclusive` callbacks, a wakeup runs only the oldest (epoll's EPOLLEXCLUSIVE), the
    /// others stay.
    pub fn add_callback_as(&self, callback: WakeCallback, exclusive: bool) -> u64 {
        let id = NEXT_CALLBACK.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        self.callbacks.lock().insert(id, (exclusive, callback));
        id
    }

    /// Removes a callback that has not run yet (false: it ran, or is running).
    pub fn remove_callback(&self, id: u64) -> bool {
        let removed = self.callbacks.lock().remove(&id);
        // Dropped outside the lock: what the callback holds may take it again.
        removed.is_some()
    }

    /// Wakes every waiter and runs every callback.
    pub fn wake_all(&self) {
        let waiters = {
            let mut w = self.waiters.lock();
            if w.is_empty() { None } else { Some(core::mem::take(&mut *w)) }
        };
        // No lock is held from here on: a callback may wake this queue again.
        let Some(waiters) = waiters else { return self.run_callbacks() };
        for t in waiters {
            sched::wake(&t);
        }
        self.run_callbacks();
    }

    fn run_callbacks(&self) {
        let callbacks = {
            let mut c = self.callbacks.lock();
            if c.is_empty() {
                return;
            }
            let mut all = core::mem::take(&mut *c);
            // Of the exclusive callbacks only the oldest runs; the others stay queued.
            let stay: Vec<u64> = all.iter().filter(|(_, (exclusive, _))| *exclusive).skip(1).map(|(&id, _)| id).collect();
            for id in stay {
                if let Some(cb) = all.remove(&id) {
                    c.insert(id, cb);
                }
            }
            all
        };
        for (_, (_, cb)) in callbacks {
            cb();
        }
    }
}
