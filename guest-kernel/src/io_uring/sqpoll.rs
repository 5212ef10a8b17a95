//! IORING_SETUP_SQPOLL: a kernel task of the ring's process consumes the SQ on its own,
//! so user space submits by writing SQEs and the tail, without `io_uring_enter`.
//!
//! The poller submits whatever appears; after `sq_thread_idle` ms with nothing to do it
//! sets IORING_SQ_NEED_WAKEUP and sleeps until `io_uring_enter(IORING_ENTER_SQ_WAKEUP)`.
//! With IORING_SETUP_ATTACH_WQ several rings of one process share a poller, which serves
//! them in turn (its idle time is the longest they asked for). It holds its rings only
//! weakly between rounds, and ends when they are all gone.

use alloc::boxed::Box;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};

use super::tctx::{self, Tctx};
use super::IoUring;
use crate::errno::*;
use crate::sync::SpinLock;
use crate::task::{self, sched, wait::WaitQueue};
use crate::time;

pub const IORING_SQ_NEED_WAKEUP: u32 = 1 << 0;

pub struct SqPoll {
    /// The poller sleeps here while idle.
    pub wake: WaitQueue,
    pub idle_ns: AtomicU64,
    /// The rings it serves.
    rings: SpinLock<Vec<Weak<IoUring>>>,
    /// Its process (ATTACH_WQ from another one makes a poller of its own).
    pid: u32,
    pub sleeping: AtomicBool,
    /// The poller's own io_uring context (its io-wq serves the ring's punted requests).
    pub tctx: SpinLock<Option<Arc<Tctx>>>,
    /// Woken when the poller consumed SQEs (IORING_ENTER_SQ_WAIT waits here).
    pub consumed: WaitQueue,
    /// The poller task's id, once it runs (fdinfo's SqThread).
    tid: core::sync::atomic::AtomicU32,
}

impl SqPoll {
    pub fn new(idle_ms: u32) -> Self {
        // Linux: 0 means one second.
        let ms = if idle_ms == 0 { 1000 } else { u64::from(idle_ms) };
        Self {
            wake: WaitQueue::new(),
            idle_ns: AtomicU64::new(ms * 1_000_000),
            rings: SpinLock::new(Vec::new()),
            pid: task::current_process().pid,
            sleeping: AtomicBool::new(false),
            tctx: SpinLock::new(None),
            consumed: WaitQueue::new(),
            tid: core::sync::atomic::AtomicU32::new(0),
        }
    }

    /// The poller's task id (0 before it has started).
    pub fn tid(&self) -> u32 {
        self.tid.load(Ordering::Relaxed)
    }
}

/// Starts the poller for `ring` in the current process, bound to CPU `cpu` if given
/// (IORING_SETUP_SQ_AFF), else on its creator's CPUs.
pub fn start(ring: &Arc<IoUring>, sq: &Arc<SqPoll>, cpu: Option<u32>) -> KResult<()> {
    sq.rings.lock().push(Arc::downgrade(ring));
    let arg = Box::into_raw(Box::new(Arc::clone(sq))) as usize;
    let tid = task::spawn_worker_on(&task::current_process(), poller, arg, cpu.map(|c| 1u64 << c))?;
    sq.tid.store(tid, Ordering::Relaxed);
    Ok(())
}

/// IORING_SETUP_ATTACH_WQ: the poller of the ring behind `wq_fd`, for a new SQPOLL ring
/// asking for `idle_ms` (ENXIO: no such descriptor; EINVAL: not a ring, or one without a
/// poller; EPERM: another process's, so the new ring makes its own).
pub fn shared(wq_fd: u32, idle_ms: u32) -> KResult<Arc<SqPoll>> {
    let other = other_ring(wq_fd)?;
    let sq = other.sqpoll.clone().ok_or(EINVAL)?;
    if sq.pid != task::current_process().pid {
        return Err(EPERM);
    }
    let ns = if idle_ms == 0 { 1000 } else { u64::from(idle_ms) } * 1_000_000;
    sq.idle_ns.fetch_max(ns, Ordering::Relaxed);
    Ok(sq)
}

/// The ring behind `wq_fd` (ATTACH_WQ without SQPOLL only checks it).
pub fn other_ring(wq_fd: u32) -> KResult<Arc<IoUring>> {
    let file = task::current_process().files.lock().get(wq_fd as i32).map_err(|_| ENXIO)?;
    let ring = file.node.as_any().downcast_ref::<IoUring>().ok_or(EINVAL)?;
    Ok(ring.arc())
}

/// Adds `ring` to the shared poller `sq`.
pub fn attach(ring: &Arc<IoUring>, sq: &SqPoll) {
    sq.rings.lock().push(Arc::downgrade(ring));
    wake(sq);
}

/// How long an awake poller with other CPUs online spins after its last work, and how
/// often it looks at the SQ after that (until `idle_ns` ends its waking time).
const SPIN_NS: u64 = 1_000_000;
const NAP_NS: u64 = 1_000_000;

extern "C" fn poller(arg: usize) {
    // SAFETY: `arg` is the Box made by `start`, handed to this task alone.
    let sq: Box<Arc<SqPoll>> = unsafe { Box::from_raw(arg as *mut Arc<SqPoll>) };
    let me = sched::current();
    poll_loop(&sq, &me);
    // The rings are gone: the poller's requests are cancelled and its io-wq ends.
    sq.tctx.lock().take();
    tctx::task_exit(&me);
}

/// The rings still open, dropping the others from the list.
fn live_rings(sq: &SqPoll) -> Vec<Arc<IoUring>> {
    let mut list = sq.rings.lock();
    list.retain(|w| w.upgrade().is_some_and(|r| !r.dead.load(Ordering::Relaxed)));
    list.iter().filter_map(Weak::upgrade).collect()
}

fn poll_loop(sq: &Arc<SqPoll>, me: &Arc<crate::task::Task>) {
    let mut last_work = time::monotonic_ns();
    // The rings whose task contexts already include the poller's (by address).
    let mut known: Vec<usize> = Vec::new();
    loop {
        let rings = live_rings(sq);
        // The rings are closed, or the process is ending (the poller goes with it, as
        // Linux's SQ thread with its thread group; its requests are cancelled then).
        if rings.is_empty() || me.process.exiting() {
            return;
        }
        // (A closed ring's address may come back as a new ring's.)
        known.retain(|&k| rings.iter().any(|r| Arc::as_ptr(r) as usize == k));
        for ring in &rings {
            // The poller's context serves every ring it submits for.
            let key = Arc::as_ptr(ring) as usize;
            if !known.contains(&key) {
                let t = tctx::current(ring).ok();
                if sq.tctx.lock().is_none() {
                    *sq.tctx.lock() = t;
                }
                known.push(key);
            }
            // A disabled ring (R_DISABLED) is not polled until it is enabled.
            if ring.sq_pending() > 0 && !ring.disabled.load(Ordering::Acquire) {
                let _ = ring.submit(u32::MAX, me);
                sq.consumed.wake_all();
                last_work = time::monotonic_ns();
            }
            // IOPOLL: the poller reaps the device too, and is busy while anything is there.
            if ring.flag(super::uapi::IORING_SETUP_IOPOLL) && (super::iopoll::reap(ring) > 0 || ring.iopoll.lock().in_flight > 0) {
                last_work = time::monotonic_ns();
            }
        }
        if me.task_work_pending() {
            crate::task::run_task_work(me);
        }
        if time::monotonic_ns().saturating_sub(last_work) < sq.idle_ns.load(Ordering::Relaxed) {
            drop(rings);
            if sched::others_runnable() {
                sched::yield_now();
            } else if crate::arch::smp::online_count() > 1 {
                // A submitter on another CPU fills the SQ without telling anyone: spin,
                // as Linux's SQ thread does, for SPIN_NS after the last work; then look
                // every NAP_NS, halted between looks (the CPU is then free for the
                // host's other work).
                if time::monotonic_ns().saturating_sub(last_work) < SPIN_NS {
                    crate::arch::cpu::take_pending_interrupts();
                    crate::arch::cpu::relax();
                } else {
                    let tick = time::call_at(time::monotonic_ns() + NAP_NS, Box::new(|| {}));
                    crate::arch::cpu::wait_for_interrupt();
                    time::cancel(tick);
                }
            } else {
                // One CPU: nothing can fill the SQ while we run. Let interrupts in (the
                // kernel runs with them off) until the next one, then look again.
                crate::arch::cpu::wait_for_interrupt();
            }
            continue;
        }
        // Idle: ask to be woken, then check once more that nothing arrived meanwhile
        // (SeqCst: our flag store before the tail load; pairs with user space's tail
        // store before its load of the flags).
        for ring in &rings {
            ring.rings().set_sq_flag(IORING_SQ_NEED_WAKEUP, true);
        }
        fence(Ordering::SeqCst);
        let pending = rings.iter().any(|r| r.sq_pending() > 0 && !r.disabled.load(Ordering::Acquire));
        if !pending {
            sq.sleeping.store(true, Ordering::Relaxed);
            // Sleep without holding the rings, so closing them can end us.
            drop(rings);
            // Woken by SQ_WAKEUP, a ring attached or closed; every second it also looks
            // whether its process is ending (nothing else would wake it for that).
            let gone = || sq.rings.lock().iter().all(|w| w.strong_count() == 0);
            let woken = || !sq.sleeping.load(Ordering::Relaxed) || gone() || me.process.exiting();
            while !woken() {
                let _ = sq.wake.wait_until(Some(time::monotonic_ns().saturating_add(1_000_000_000)), woken);
                me.killed.store(false, Ordering::Relaxed);
            }
            sq.sleeping.store(false, Ordering::Relaxed);
            // Interrupted waits (a cancellation aimed at it) are over.
            me.killed.store(false, Ordering::Relaxed);
        }
        for ring in live_rings(sq) {
            ring.rings().set_sq_flag(IORING_SQ_NEED_WAKEUP, false);
        }
        last_work = time::monotonic_ns();
    }
}

/// IORING_ENTER_SQ_WAIT: waits until the poller has made room in a full SQ.
pub fn wait_for_room(ring: &Arc<IoUring>, sq: &SqPoll) -> KResult<()> {
    let rings = ring.rings();
    let full = || rings.sq_tail().wrapping_sub(rings.sq_head()) >= rings.sq_entries;
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
