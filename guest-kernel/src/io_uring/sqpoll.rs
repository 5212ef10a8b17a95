//! IORING_SETUP_SQPOLL: a kernel task of the ring's process consumes the SQ on its own,
//! so user space submits by writing SQEs and the tail, without `io_uring_enter`.
//!
//! The poller submits whatever appears; after `sq_thread_idle` ms with nothing to do it
//! sets IORING_SQ_NEED_WAKEUP and sleeps until `io_uring_enter(IORING_ENTER_SQ_WAKEUP)`.
//! It holds the ring only weakly between rounds, and ends when the ring is gone.

use alloc::boxed::Box;
use alloc::sync::{Arc, Weak};
use core::sync::atomic::{fence, AtomicBool, Ordering};

use super::tctx::{self, Tctx};
use super::IoUring;
use crate::errno::KResult;
use crate::sync::SpinLock;
use crate::task::{self, sched, wait::WaitQueue};
use crate::time;

pub const IORING_SQ_NEED_WAKEUP: u32 = 1 << 0;

pub struct SqPoll {
    /// The poller sleeps here while idle.
    pub wake: WaitQueue,
    pub idle_ns: u64,
    pub sleeping: AtomicBool,
    /// The poller's own io_uring context (its io-wq serves the ring's punted requests).
    pub tctx: SpinLock<Option<Arc<Tctx>>>,
    /// Woken when the poller consumed SQEs (IORING_ENTER_SQ_WAIT waits here).
    pub consumed: WaitQueue,
}

impl SqPoll {
    pub fn new(idle_ms: u32) -> Self {
        // Linux: 0 means one second.
        let ms = if idle_ms == 0 { 1000 } else { u64::from(idle_ms) };
        Self {
            wake: WaitQueue::new(),
            idle_ns: ms * 1_000_000,
            sleeping: AtomicBool::new(false),
            tctx: SpinLock::new(None),
            consumed: WaitQueue::new(),
        }
    }
}

/// Starts the poller for `ring` in the current process.
pub fn start(ring: &Arc<IoUring>, sq: &Arc<SqPoll>) -> KResult<()> {
    let arg = Box::into_raw(Box::new((Arc::downgrade(ring), Arc::clone(sq)))) as usize;
    task::spawn_worker(&task::current_process(), poller, arg).map(|_| ())
}

extern "C" fn poller(arg: usize) {
    // SAFETY: `arg` is the Box made by `start`, handed to this task alone.
    let state: Box<(Weak<IoUring>, Arc<SqPoll>)> = unsafe { Box::from_raw(arg as *mut (Weak<IoUring>, Arc<SqPoll>)) };
    let (weak, sq) = *state;
    let me = sched::current();
    poll_loop(&weak, &sq, &me);
    // The ring is gone: the poller's requests are cancelled and its io-wq ends.
    sq.tctx.lock().take();
    tctx::task_exit(&me);
}

fn poll_loop(weak: &Weak<IoUring>, sq: &Arc<SqPoll>, me: &Arc<crate::task::Task>) {
    let mut last_work = time::monotonic_ns();
    loop {
        let Some(ring) = weak.upgrade() else { return };
        // The ring is closed, or its process is ending (the poller goes with it, as
        // Linux's SQ thread with its thread group; its requests are cancelled then).
        if ring.dead.load(Ordering::Relaxed) || me.process.exiting() {
            return;
        }
        if sq.tctx.lock().is_none() {
            *sq.tctx.lock() = tctx::current(&ring).ok();
        }
        // A disabled ring (R_DISABLED) is not polled until it is enabled.
        if ring.sq_pending() > 0 && !ring.disabled.load(Ordering::Acquire) {
            let _ = ring.submit(u32::MAX, me);
            sq.consumed.wake_all();
            last_work = time::monotonic_ns();
        }
        if me.task_work_pending() {
            crate::task::run_task_work(me);
        }
        // IOPOLL: the poller reaps the device too, and is busy while anything is there.
        if ring.flag(super::uapi::IORING_SETUP_IOPOLL) && (super::iopoll::reap(&ring) > 0 || ring.iopoll.lock().in_flight > 0) {
            last_work = time::monotonic_ns();
        }
        if time::monotonic_ns().saturating_sub(last_work) < sq.idle_ns {
            drop(ring);
            if sched::others_runnable() {
                sched::yield_now();
            } else {
                // Nothing else to run: let interrupts in (the kernel runs with them off)
                // until the next one, then look at the SQ again.
                crate::arch::cpu::wait_for_interrupt();
            }
            continue;
        }
        // Idle: ask to be woken, then check once more that nothing arrived meanwhile
        // (SeqCst: our flag store before the tail load; pairs with user space's tail
        // store before its load of the flags).
        ring.rings.set_sq_flag(IORING_SQ_NEED_WAKEUP, true);
        fence(Ordering::SeqCst);
        if ring.sq_pending() == 0 || ring.disabled.load(Ordering::Acquire) {
            sq.sleeping.store(true, Ordering::Relaxed);
            // Sleep without holding the ring, so closing it can end us.
            drop(ring);
            // Woken by SQ_WAKEUP or the ring's end; every second it also looks whether
            // its process is ending (nothing else would wake it for that).
            let woken = || !sq.sleeping.load(Ordering::Relaxed) || weak.strong_count() == 0 || me.process.exiting();
            while !woken() {
                let _ = sq.wake.wait_until(Some(time::monotonic_ns().saturating_add(1_000_000_000)), woken);
                me.killed.store(false, Ordering::Relaxed);
            }
            sq.sleeping.store(false, Ordering::Relaxed);
            // Interrupted waits (a cancellation aimed at it) are over.
            me.killed.store(false, Ordering::Relaxed);
            let Some(ring) = weak.upgrade() else { return };
            ring.rings.set_sq_flag(IORING_SQ_NEED_WAKEUP, false);
        } else {
            ring.rings.set_sq_flag(IORING_SQ_NEED_WAKEUP, false);
        }
        last_work = time::monotonic_ns();
    }
}

/// IORING_ENTER_SQ_WAIT: waits until the poller has made room in a full SQ.
pub fn wait_for_room(ring: &Arc<IoUring>, sq: &SqPoll) -> KResult<()> {
    let full = || ring.rings.sq_tail().wrapping_sub(ring.rings.sq_head()) >= ring.rings.sq_entries;
    while full() {
        wake(sq);
        let deadline = time::monotonic_ns().saturating_add(1_000_000);
        if sq.consumed.wait_until(Some(deadline), || !full()) == Err(crate::task::wait::WaitError::Interrupted) {
            return Err(crate::errno::EINTR);
        }
    }
    Ok(())
}

/// Wakes a sleeping poller (IORING_ENTER_SQ_WAKEUP, and when the ring closes).
pub fn wake(sq: &SqPoll) {
    sq.sleeping.store(false, Ordering::Relaxed);
    sq.wake.wake_all();
}
