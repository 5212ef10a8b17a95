//! io-wq (Linux's io_uring/io-wq.c): kernel worker tasks that run the requests which
//! must sleep, so the submitter never does.
//!
//! Each submitting task has one io-wq (in its `Tctx`), shared by all the rings it submits
//! to, as Linux since 5.12. Workers are kernel-mode tasks of the submitter's process (they
//! see its files and memory), created on demand up to a limit per class and ending after
//! an idle while:
//! - **bounded**: regular files and block devices, whose operations always finish; at
//!   most min(SQ entries, 4 x CPUs) workers by default;
//! - **unbounded**: everything else (a read of a pipe may wait forever); up to
//!   RLIMIT_NPROC.
//!
//! `IORING_REGISTER_IOWQ_MAX_WORKERS` changes the limits; `IORING_REGISTER_IOWQ_AFF` the
//! CPUs workers may run on. Cancellation removes queued work (it completes with
//! -ECANCELED) and interrupts running work (the worker's wait ends as by a signal).

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::Ordering::Relaxed;

use super::{IoUring, Request};
use crate::errno::*;
use crate::fs::{FileType, OpenFile};
use crate::sync::SpinLock;
use crate::task::wait::{WaitError, WaitQueue};
use crate::task::{self, sched, Process, Task};

const BOUNDED: usize = 0;
const UNBOUNDED: usize = 1;

/// An idle worker ends after this long without work (Linux: 5 s).
const IDLE_NS: u64 = 5_000_000_000;

/// Default limit of unbounded workers (RLIMIT_NPROC here).
pub const MAX_UNBOUNDED: u32 = 1024;

/// Decides whether queued or running work matches: (ring, user_data, opcode, file).
pub type Matcher<'a> = dyn Fn(&Arc<IoUring>, u64, u8, Option<&Arc<OpenFile>>) -> bool + 'a;

struct Running {
    id: u64,
    worker: Arc<Task>,
    ring: Weak<IoUring>,
    user_data: u64,
    opcode: u8,
    file: Option<Arc<OpenFile>>,
}

struct State {
    queue: [VecDeque<(Arc<IoUring>, Box<Request>)>; 2],
    running: Vec<Running>,
    next_id: u64,
    workers: [u32; 2],
    idle: [u32; 2],
    max: [u32; 2],
    /// CPUs workers may run on (IORING_REGISTER_IOWQ_AFF, bit N: CPU N); None: the task's.
    affinity: Option<u64>,
    exiting: bool,
}

pub struct IoWq {
    process: Weak<Process>,
    state: SpinLock<State>,
    /// Idle workers sleep here.
    more: WaitQueue,
    /// Woken when a running request ends (`wait_running` sleeps here).
    idle_wait: WaitQueue,
}

impl IoWq {
    /// An io-wq for the tasks of `process`, bounded workers limited to `bounded`.
    pub fn new(process: &Arc<Process>, bounded: u32) -> Arc<Self> {
        Arc::new(Self {
            process: Arc::downgrade(process),
            state: SpinLock::new(State {
                queue: [VecDeque::new(), VecDeque::new()],
                running: Vec::new(),
                next_id: 1,
                workers: [0, 0],
                idle: [0, 0],
                max: [bounded.max(1), MAX_UNBOUNDED],
                affinity: None,
                exiting: false,
            }),
            more: WaitQueue::new(),
            idle_wait: WaitQueue::new(),
        })
    }

    /// Queues work, waking an idle worker, or starting one when more work waits than
    /// idle workers can take (up to the class's limit, and never with the kernel heap
    /// nearly full: a worker's stack comes from it). Err: the io-wq has exited, or there
    /// is no worker at all and none can be had (the caller cancels the request).
    fn push(self: &Arc<Self>, ring: &Arc<IoUring>, req: Box<Request>, class: usize) -> Result<(), Box<Request>> {
        let (spawn, wake) = {
            let mut st = self.state.lock();
            if st.exiting {
                return Err(req);
            }
            st.queue[class].push_back((Arc::clone(ring), req));
            let short = st.queue[class].len() > st.idle[class] as usize;
            let room = st.workers[class] < st.max[class] && !crate::mm::heap::under_pressure();
            if short && room {
                st.workers[class] += 1;
            } else if short && st.workers[class] == 0 {
                // No worker exists and none can be made: give the work back.
                let back = st.queue[class].pop_back().map(|(_, r)| r);
                drop(st);
                return back.map_or(Ok(()), Err);
            }
            (short && room, st.idle[class] > 0)
        };
        if wake {
            self.more.wake_all();
        }
        if !spawn {
            return Ok(()); // an idle or busy worker takes it
        }
        let started = self.process.upgrade().ok_or(ESRCH).and_then(|p| {
            let arg = Box::into_raw(Box::new((Arc::clone(self), class))) as usize;
            let affinity = self.worker_affinity(self.state.lock().affinity);
            task::spawn_worker_on(&p, worker, arg, Some(affinity)).inspect_err(|_| {
                // SAFETY: the task was not created, so the Box made above is still ours.
                drop(unsafe { Box::from_raw(arg as *mut (Arc<IoWq>, usize)) });
            })
        });
        if started.is_err() {
            let mut st = self.state.lock();
            st.workers[class] -= 1;
            if st.workers[class] == 0 {
                // No worker at all to run it: give the work back.
                let back = st.queue[class].pop_back().map(|(_, r)| r);
                drop(st);
                return back.map_or(Ok(()), Err);
            }
        }
        Ok(())
    }

    /// Removes queued work that `matches` (returned for the caller to complete with
    /// -ECANCELED) and interrupts running work that does (counted). Stops after the first
    /// match unless `all`.
    #[allow(clippy::type_complexity)]
    pub fn cancel(&self, matches: &Matcher, all: bool) -> (Vec<(Arc<IoUring>, Box<Request>)>, usize) {
        let mut st = self.state.lock();
        let mut out = Vec::new();
        for q in st.queue.iter_mut() {
            let mut i = 0;
            while i < q.len() {
                let (ring, req) = &q[i];
                if (all || out.is_empty()) && matches(ring, req.user_data, req.opcode, req.file.as_ref()) {
                    out.extend(q.remove(i));
                } else {
                    i += 1;
                }
            }
        }
        let mut running = 0;
        if all || out.is_empty() {
            for r in &st.running {
                let Some(ring) = r.ring.upgrade() else { continue };
                if matches(&ring, r.user_data, r.opcode, r.file.as_ref()) {
                    interrupt(&r.worker);
                    running += 1;
                    if !all {
                        break;
                    }
                }
            }
        }
        (out, running)
    }

    /// Ends the io-wq (its task exits): queued work is returned to be cancelled, running
    /// work is interrupted, idle workers end.
    pub fn exit(&self) -> Vec<(Arc<IoUring>, Box<Request>)> {
        let queued = {
            let mut st = self.state.lock();
            st.exiting = true;
            for r in &st.running {
                interrupt(&r.worker);
            }
            let [a, b] = &mut st.queue;
            a.drain(..).chain(b.drain(..)).collect()
        };
        self.more.wake_all();
        queued
    }

    /// Waits until no request is running here (after a cancellation interrupted them):
    /// exec and exit must not leave a worker writing into what comes after.
    pub fn wait_running(&self) {
        self.idle_wait.wait_uninterruptible(|| self.state.lock().running.is_empty());
    }

    /// IORING_REGISTER_IOWQ_MAX_WORKERS: sets the limits that are not 0 (unbounded at
    /// most RLIMIT_NPROC), returns the previous ones.
    pub fn set_max(&self, new: [u32; 2]) -> [u32; 2] {
        let mut st = self.state.lock();
        let old = st.max;
        for (class, n) in new.into_iter().enumerate() {
            if n != 0 {
                st.max[class] = n.min(MAX_UNBOUNDED);
            }
        }
        old
    }

    /// IORING_REGISTER_IOWQ_AFF: the CPUs workers may run on (None: back to the task's).
    pub fn set_affinity(&self, mask: Option<u64>) {
        let cpus = self.worker_affinity(mask);
        let mut st = self.state.lock();
        st.affinity = mask;
        // Busy workers move when they next switch; idle ones keep theirs until they end.
        for r in &st.running {
            r.worker.affinity.store(cpus, Relaxed);
        }
    }

    /// The CPUs a worker runs on: the mask's, within its process's first thread's.
    fn worker_affinity(&self, mask: Option<u64>) -> u64 {
        let task_mask = self
            .process
            .upgrade()
            .and_then(|p| p.threads().first().map(|t| t.affinity.load(Relaxed)))
            .unwrap_or(u64::MAX);
        match mask {
            Some(m) if m & task_mask != 0 => m & task_mask,
            Some(m) => m,
            None => task_mask,
        }
    }
}

/// Ends a worker's current wait as a signal would (it runs kernel code only, so nothing
/// else reads the flag).
fn interrupt(worker: &Arc<Task>) {
    worker.killed.store(true, Relaxed);
    sched::wake(worker);
}

/// Sends `req` to the io-wq of its submitter, to be issued where it may sleep.
pub fn enqueue(ring: &Arc<IoUring>, mut req: Box<Request>) {
    crate::trace::emit(crate::trace::Kind::Punt, req.trace, 0, 0, 0);
    req.in_iowq = true;
    let unbounded = req.file.as_ref().is_some_and(|f| !matches!(f.node.file_type(), FileType::Regular | FileType::BlockDevice));
    let class = if unbounded { UNBOUNDED } else { BOUNDED };
    let Some(tctx) = req.tctx.clone() else {
        return ring.complete_async(req, -ECANCELED.0);
    };
    if let Err(req) = tctx.iowq.push(ring, req, class) {
        ring.complete_async(req, -ECANCELED.0);
    }
}

extern "C" fn worker(arg: usize) {
    // SAFETY: `arg` is the Box made by `IoWq::push`, handed to this task alone.
    let state: Box<(Arc<IoWq>, usize)> = unsafe { Box::from_raw(arg as *mut (Arc<IoWq>, usize)) };
    let (wq, class) = *state;
    let me = sched::current();
    loop {
        let work = {
            let mut st = wq.state.lock();
            match st.queue[class].pop_front() {
                Some((ring, req)) => {
                    let id = st.next_id;
                    st.next_id += 1;
                    st.running.push(Running {
                        id,
                        worker: Arc::clone(&me),
                        ring: Arc::downgrade(&ring),
                        user_data: req.user_data,
                        opcode: req.opcode,
                        file: req.file.clone(),
                    });
                    Some((ring, req, id))
                }
                None if st.exiting => {
                    st.workers[class] -= 1;
                    return;
                }
                None => {
                    st.idle[class] += 1;
                    None
                }
            }
        };
        match work {
            Some((ring, mut req, id)) => {
                // It runs as its submitter (Linux's REQ_F_CREDS at punt time).
                if req.creds.is_none() {
                    req.creds = req.tctx.as_ref().and_then(|t| t.cred());
                }
                ring.issue(req);
                drop(ring);
                let done = {
                    let mut st = wq.state.lock();
                    // A cancellation aimed at that request is over; exiting keeps the flag.
                    if !st.exiting {
                        me.killed.store(false, Relaxed);
                    }
                    st.running.iter().position(|r| r.id == id).map(|i| st.running.swap_remove(i))
                };
                // Dropped outside the lock: its file may be a ring's last reference,
                // whose release cancels work here.
                drop(done);
                wq.idle_wait.wake_all();
            }
            None => {
                let deadline = crate::time::monotonic_ns().saturating_add(IDLE_NS);
                let woke = wq.more.wait_until(Some(deadline), || {
                    let st = wq.state.lock();
                    !st.queue[class].is_empty() || st.exiting
                });
                let mut st = wq.state.lock();
                st.idle[class] -= 1;
                if st.queue[class].is_empty() && (woke == Err(WaitError::TimedOut) || st.exiting) {
                    st.workers[class] -= 1;
                    return;
                }
                if !st.exiting {
                    me.killed.store(false, Relaxed);
                }
            }
        }
    }
}
