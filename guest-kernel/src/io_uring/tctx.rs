//! The per-task io_uring context and task work (Linux's io_uring/tctx.c, and the
//! io_uring side of kernel/task_work.c).
//!
//! Some steps of a request must run in its submitter's context: issuing the next member
//! of a link after the previous one completed from an interrupt, retrying a read whose
//! pipe became readable, issuing a request a drain held back. They are queued here as
//! *task work* and run when the task next passes through the kernel: on its way back to
//! user mode, in `io_uring_enter`, in a wait it sleeps in (which then goes on), or in the
//! SQ poller's loop. A task busy in user space is interrupted by the timer tick and runs
//! it on the way back, so a program that only peeks at the CQ still sees chains finish.
//!
//! Ring flags shape the notification, as Linux's:
//! - COOP_TASKRUN: the task is not woken from an unrelated sleep to run the work;
//! - TASKRUN_FLAG: IORING_SQ_TASKRUN is set in the SQ flags while work waits;
//! - DEFER_TASKRUN: the work stays on the ring and runs only when the issuer enters with
//!   GETEVENTS (see `IoUring::queue_local`).

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use super::io_wq::IoWq;
use super::uapi::*;
use super::{cancel, IoUring, Request, Work};
use crate::errno::*;
use crate::sync::SpinLock;
use crate::task::{sched, Task};

pub struct Tctx {
    task: Weak<Task>,
    /// Requests to issue in the task's context, with their rings.
    work: SpinLock<VecDeque<(Arc<IoUring>, Box<Request>)>>,
    pub iowq: Arc<IoWq>,
    /// The rings this task submitted to (for its exit and exec).
    rings: SpinLock<Vec<Weak<IoUring>>>,
    /// The task has exited: new work for it is cancelled.
    dead: AtomicBool,
    /// Address of the ring it submitted to last (already in `rings`).
    last_ring: core::sync::atomic::AtomicUsize,
}

/// Bounded io-wq workers: Linux's min(SQ entries, 4 x CPUs), with one CPU here.
const BOUNDED_PER_CPU: u32 = 4;

impl Tctx {
    fn new(task: &Arc<Task>, ring: &IoUring) -> Arc<Self> {
        Arc::new(Self {
            task: Arc::downgrade(task),
            work: SpinLock::new(VecDeque::new()),
            iowq: IoWq::new(&task.process, ring.rings.sq_entries.min(BOUNDED_PER_CPU)),
            rings: SpinLock::new(Vec::new()),
            dead: AtomicBool::new(false),
            last_ring: core::sync::atomic::AtomicUsize::new(0),
        })
    }

    fn rings(&self) -> Vec<Arc<IoUring>> {
        self.rings.lock().iter().filter_map(Weak::upgrade).collect()
    }
}

/// The current task's context, made on its first submission, with `ring` recorded as one
/// it submits to.
pub fn current(ring: &Arc<IoUring>) -> KResult<Arc<Tctx>> {
    of_task(&sched::current(), ring)
}

/// `me`'s context (`me` is the current task), as [`current`].
pub fn of_task(me: &Arc<Task>, ring: &Arc<IoUring>) -> KResult<Arc<Tctx>> {
    let existing = me.io_uring.lock().clone();
    let tctx = match existing {
        Some(t) => t,
        None => {
            let t = Tctx::new(me, ring);
            *me.io_uring.lock() = Some(Arc::clone(&t));
            t
        }
    };
    // The ring it used last is known: no need to look through the list.
    let ring_addr = Arc::as_ptr(ring) as usize;
    if tctx.last_ring.load(Ordering::Relaxed) != ring_addr {
        let mut rings = tctx.rings.lock();
        if !rings.iter().any(|r| r.as_ptr() as usize == ring_addr) {
            rings.retain(|r| r.strong_count() > 0);
            rings.push(Arc::downgrade(ring));
            drop(rings);
            ring.add_tctx(&tctx);
        }
        tctx.last_ring.store(ring_addr, Ordering::Relaxed);
    }
    Ok(tctx)
}

/// The current task's context if it has one.
pub fn of(task: &Task) -> Option<Arc<Tctx>> {
    task.io_uring.lock().clone()
}

/// Queues `req` to be issued in its submitter's context (any context may call this: an
/// interrupt handler, a waker, an io-wq worker).
pub fn queue(ring: &Arc<IoUring>, req: Box<Request>) {
    if ring.flag(IORING_SETUP_DEFER_TASKRUN) && !ring.dead.load(Ordering::Relaxed) {
        return ring.queue_local(Work::Issue(req));
    }
    let task = req.tctx.as_ref().filter(|t| !t.dead.load(Ordering::Relaxed)).and_then(|t| t.task.upgrade());
    let (Some(tctx), Some(task)) = (req.tctx.clone(), task) else {
        // Its task is gone: nobody will run it.
        ring.fail_chain(Some(req), false, false);
        ring.run_deferred();
        return;
    };
    tctx.work.lock().push_back((Arc::clone(ring), req));
    if ring.flag(IORING_SETUP_TASKRUN_FLAG) {
        ring.rings.set_sq_flag(IORING_SQ_TASKRUN, true);
    }
    // Release: the queued work is visible to whoever sees the flag (Acquire in
    // `Task::task_work_pending`).
    task.task_work.store(true, Ordering::Release);
    if let Some(sq) = &ring.sqpoll {
        super::sqpoll::wake(sq);
    }
    if ring.flag(IORING_SETUP_COOP_TASKRUN) {
        // Cooperative: only a wait for this ring's completions is cut short.
        ring.cq_wait.wake_all();
    } else if task.interruptible.load(Ordering::Relaxed) {
        // As Linux's TWA_SIGNAL: the task leaves whatever wait it is in, runs the work,
        // and goes back to waiting.
        sched::wake(&task);
    }
}

/// Runs the task work queued for `me` (the current task).
pub fn run(me: &Arc<Task>) {
    // Cleared before the list is drained: work queued meanwhile sets it again.
    me.task_work.store(false, Ordering::Release);
    let Some(tctx) = of(me) else { return };
    for ring in tctx.rings() {
        if ring.flag(IORING_SETUP_TASKRUN_FLAG) && !ring.flag(IORING_SETUP_DEFER_TASKRUN) {
            ring.rings.set_sq_flag(IORING_SQ_TASKRUN, false);
        }
    }
    loop {
        let item = tctx.work.lock().pop_front();
        let Some((ring, req)) = item else { break };
        ring.issue(req);
    }
}

/// Cancels every request `me` submitted, on every ring, and waits for those running in
/// its io-wq to end (exec; and exit, below). Cancelling can release more work for the
/// task (a hard link's next member, a drained request): it goes round until none is left
/// (Linux's io_uring_cancel_generic).
pub fn task_cancel(me: &Arc<Task>) {
    let Some(tctx) = of(me) else { return };
    loop {
        let work: Vec<_> = tctx.work.lock().drain(..).collect();
        let had_work = !work.is_empty();
        for (ring, req) in work {
            ring.fail_chain(Some(req), false, false);
            ring.run_deferred();
        }
        for ring in tctx.rings() {
            cancel::cancel_all(&ring, Some(&tctx));
        }
        let (queued, _) = tctx.iowq.cancel(&|_, _, _, _| true, true);
        let had_queued = !queued.is_empty();
        for (ring, req) in queued {
            ring.complete_async(req, -ECANCELED.0);
        }
        tctx.iowq.wait_running();
        if !had_work && !had_queued && tctx.work.lock().is_empty() {
            break;
        }
    }
    me.task_work.store(false, Ordering::Relaxed);
}

/// The task exits: no new work is taken for it, its requests are cancelled, and its
/// io-wq ends.
pub fn task_exit(me: &Arc<Task>) {
    let Some(tctx) = of(me) else { return };
    tctx.dead.store(true, Ordering::Relaxed);
    task_cancel(me);
    me.io_uring.lock().take();
    for (ring, req) in tctx.iowq.exit() {
        ring.complete_async(req, -ECANCELED.0);
    }
}
