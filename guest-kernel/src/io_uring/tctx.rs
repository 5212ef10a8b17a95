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
use crate::fs::OpenFile;
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
    /// IORING_REGISTER_RING_FDS: rings this task names by index (Linux: 16 of them).
    registered: SpinLock<[Option<Arc<OpenFile>>; RINGFD_MAX]>,
}

/// Registered ring fds per task (Linux's IO_RINGFD_REG_MAX).
const RINGFD_MAX: usize = 16;

/// Bounded io-wq workers: Linux's min(SQ entries, 4 x CPUs), with one CPU here.
const BOUNDED_PER_CPU: u32 = 4;

impl Tctx {
    /// The credentials of the task this context belongs to (None once it is gone).
    pub fn cred(&self) -> Option<Arc<crate::task::cred::Cred>> {
        self.task.upgrade().map(|t| t.cred.lock().clone())
    }

    /// A task's context; its io-wq has at most `bounded` bounded workers.
    fn new(task: &Arc<Task>, bounded: u32) -> Arc<Self> {
        Arc::new(Self {
            task: Arc::downgrade(task),
            work: SpinLock::new(VecDeque::new()),
            iowq: IoWq::new(&task.process, bounded),
            rings: SpinLock::new(Vec::new()),
            dead: AtomicBool::new(false),
            last_ring: core::sync::atomic::AtomicUsize::new(0),
            registered: SpinLock::new([const { None }; RINGFD_MAX]),
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
            let t = Tctx::new(me, ring.rings().sq_entries.min(BOUNDED_PER_CPU));
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
        ring.rings().set_sq_flag(IORING_SQ_TASKRUN, true);
    }
    // Release: the queued work is visible to whoever sees the flag (Acquire in
    // `Task::task_work_pending`); SeqCst, as the look at `interruptible` below must not
    // pass it (the waiter stores that, then looks at this).
    task.task_work.store(true, Ordering::SeqCst);
    if let Some(sq) = &ring.sqpoll {
        super::sqpoll::wake(sq);
    }
    if ring.flag(IORING_SETUP_COOP_TASKRUN) {
        // Cooperative: only a wait for this ring's completions is cut short.
        ring.cq_wait.wake_all();
    } else if task.interruptible.load(Ordering::SeqCst) {
        // As Linux's TWA_SIGNAL: the task leaves whatever wait it is in, runs the work,
        // and goes back to waiting.
        sched::wake(&task);
    } else {
        // Running on another CPU, maybe in user mode: it runs the work on its way back.
        sched::kick(&task);
    }
}

/// Runs the task work queued for `me` (the current task).
pub fn run(me: &Arc<Task>) {
    // Cleared before the list is drained: work queued meanwhile sets it again.
    me.task_work.store(false, Ordering::Release);
    let Some(tctx) = of(me) else { return };
    for ring in tctx.rings() {
        if ring.flag(IORING_SETUP_TASKRUN_FLAG) && !ring.flag(IORING_SETUP_DEFER_TASKRUN) {
            ring.rings().set_sq_flag(IORING_SQ_TASKRUN, false);
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

/// The task exits: no new work is taken for it, its requests are cancelled, its
/// registered ring fds let go, and its io-wq ends.
pub fn task_exit(me: &Arc<Task>) {
    let Some(tctx) = of(me) else { return };
    tctx.dead.store(true, Ordering::Relaxed);
    task_cancel(me);
    let rings = core::mem::replace(&mut *tctx.registered.lock(), [const { None }; RINGFD_MAX]);
    drop(rings);
    me.io_uring.lock().take();
    for (ring, req) in tctx.iowq.exit() {
        ring.complete_async(req, -ECANCELED.0);
    }
}

/// `struct io_uring_rsrc_update`: a slot (or -1: any free one) and a ring fd.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct RingFdReg {
    offset: u32,
    resv: u32,
    data: u64,
}
// SAFETY: plain integers, every bit pattern valid.
unsafe impl crate::mm::uaccess::Pod for RingFdReg {}

/// The current task's context, made if it has none yet (registration needs one).
fn current_any() -> Arc<Tctx> {
    let me = sched::current();
    let existing = me.io_uring.lock().clone();
    existing.unwrap_or_else(|| {
        let t = Tctx::new(&me, BOUNDED_PER_CPU);
        *me.io_uring.lock() = Some(Arc::clone(&t));
        t
    })
}

/// IORING_REGISTER_RING_FDS: `nr` entries at `arg`, each a ring fd to name by a slot
/// (its `offset`, or -1: the lowest free one, written back). Returns how many were
/// registered (or the first entry's error).
/// Puts `file` in the lowest free slot of `start..end` of the task's ring table (EBUSY
/// when there is none); returns the slot.
fn install(tctx: &Tctx, file: Arc<OpenFile>, start: usize, end: usize) -> KResult<usize> {
    let mut table = tctx.registered.lock();
    let slot = (start..end).find(|&s| table[s].is_none()).ok_or(EBUSY)?;
    table[slot] = Some(file);
    Ok(slot)
}

/// IORING_SETUP_REGISTERED_FD_ONLY: the new ring goes straight into the calling task's
/// ring table; its index is what setup answers.
pub fn register_new(file: Arc<OpenFile>) -> KResult<u64> {
    install(&current_any(), file, 0, RINGFD_MAX).map(|slot| slot as u64)
}

pub fn register_ring_fds(arg: u64, nr: u32) -> KResult<u64> {
    if nr == 0 || nr as usize > RINGFD_MAX {
        return Err(EINVAL);
    }
    let tctx = current_any();
    let mut done = 0u64;
    for i in 0..u64::from(nr) {
        let at = arg + i * 16;
        let step = (|| {
            let mut reg: RingFdReg = crate::task::read_user(at)?;
            if reg.resv != 0 {
                return Err(EINVAL);
            }
            let (start, end) = match reg.offset {
                u32::MAX => (0, RINGFD_MAX),
                o if (o as usize) < RINGFD_MAX => (o as usize, o as usize + 1),
                _ => return Err(EINVAL),
            };
            let file = crate::task::current_process().files.lock().get(reg.data as i32)?;
            if !super::is_ring(&file) {
                return Err(EOPNOTSUPP);
            }
            let slot = install(&tctx, file, start, end)?;
            if reg.offset == u32::MAX {
                reg.offset = slot as u32;
                if let Err(e) = crate::task::write_user(at, &reg) {
                    let gone = tctx.registered.lock()[slot].take();
                    drop(gone);
                    return Err(e);
                }
            }
            Ok(())
        })();
        match step {
            Ok(()) => done += 1,
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(done)
}

/// IORING_UNREGISTER_RING_FDS: `nr` entries naming slots to empty.
pub fn unregister_ring_fds(arg: u64, nr: u32) -> KResult<u64> {
    if nr == 0 || nr as usize > RINGFD_MAX {
        return Err(EINVAL);
    }
    let Some(tctx) = of(&sched::current()) else { return Ok(0) };
    let mut done = 0u64;
    for i in 0..u64::from(nr) {
        let reg: RingFdReg = crate::task::read_user(arg + i * 16)?;
        if reg.resv != 0 || reg.data != 0 || reg.offset as usize >= RINGFD_MAX {
            return if done > 0 { Ok(done) } else { Err(EINVAL) };
        }
        let gone = tctx.registered.lock()[reg.offset as usize].take();
        drop(gone);
        done += 1;
    }
    Ok(done)
}

/// The ring registered at `index` by the current task (IORING_ENTER_REGISTERED_RING).
pub fn registered_ring(index: i32) -> KResult<(Arc<OpenFile>, Arc<IoUring>)> {
    let index = usize::try_from(index).ok().filter(|&i| i < RINGFD_MAX).ok_or(EINVAL)?;
    // A task that never used io_uring has no table at all: EINVAL, as Linux.
    let tctx = of(&sched::current()).ok_or(EINVAL)?;
    let file = tctx.registered.lock()[index].clone().ok_or(EBADF)?;
    let ring = file.node.as_any().downcast_ref::<IoUring>().ok_or(EBADF)?.arc();
    Ok((file, ring))
}
