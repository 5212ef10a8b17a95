//! io_uring: Linux's asynchronous I/O interface, implemented natively.
//!
//! A ring is a file (`io_uring_setup` returns its fd). User space writes SQEs and pushes
//! their indices on the submission queue; `io_uring_enter` makes the kernel consume them,
//! and completions come back as CQEs on the completion queue (see `ring` for the memory
//! layout and ordering rules). This file holds setup, submission and completion; the
//! execution model has files of its own, named as in Linux's io_uring/:
//! 1. **prep** (`opdef`, one file per opcode family): under the ring's submission lock,
//!    the SQE is copied once, checked, and turned into a [`Request`] the kernel owns;
//!    every user argument (paths, iovecs, timespecs) is copied here (FEAT_SUBMIT_STABLE).
//! 2. **issue**, first with nonblocking semantics, in the submitter's context. What
//!    would block goes one of three ways: a pollable file (pipe, eventfd) arms an
//!    internal poll and is retried when it wakes (`poll`); disk and 9p transfers go to
//!    their device and complete from its interrupt; anything else that must sleep is
//!    punted to the submitting task's **io-wq** workers (`io_wq`), as is IOSQE_ASYNC.
//!    The submitter never sleeps in submission.
//! 3. **complete**: the CQE is posted (or kept on the overflow list while the CQ is full:
//!    FEAT_NODROP), waiters and a registered eventfd are woken. Whatever must then run in
//!    the submitter's context (the next request of a link, a poll-armed retry, a drained
//!    request) becomes **task work** (`tctx`), run on the task's way back to user mode,
//!    in `io_uring_enter`, or in the SQ poller: links and drains progress however the
//!    program reaps.
//!
//! IOSQE_IO_DRAIN holds a request (and everything after it) until every request
//! submitted before it has completed. Closing the ring, and the exit or exec of a task,
//! cancel its requests (`cancel`).

pub mod opdef;
pub mod tctx;
pub mod uapi;

mod advise;
mod cancel;
mod epoll;
mod fs;
mod futex;
mod io_wq;
mod iopoll;
mod kbuf;
mod memmap;
mod msg_ring;
mod net;
mod nop;
mod openclose;
mod poll;
mod query;
mod register;
mod ring;
mod rsrc;
mod rw;
mod splice;
mod sqpoll;
mod sync;
mod timeout;
mod uring_cmd;
mod xattr;
mod waitid;

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::any::Any;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering::Relaxed};

use crate::errno::*;
use crate::fs::eventfd::EventFd;
use crate::fs::{alloc_ino, FileType, Node, OpenFile, Stat, POLLIN, POLLOUT, POLLRDNORM, POLLWRNORM};
use crate::mm::user::SharedPages;
use crate::sync::{Mutex, SpinLock};
use crate::task::wait::{WaitError, WaitQueue};
use crate::task::{self, Mm};
use crate::trace::{self as ktrace, Kind};
use ring::Rings;
use tctx::Tctx;
use uapi::*;

/// A request the kernel owns, from prep to completion.
pub struct Request {
    pub user_data: u64,
    pub opcode: u8,
    pub flags: u8,
    /// The SQE's fd (or fixed-file index), looked up at issue into `file`.
    pub fd: i32,
    pub file: Option<Arc<OpenFile>>,
    /// The tag of the fixed-file slot `file` came from: posted only once the request is
    /// done with the file.
    pub file_tag: Option<Arc<rsrc::Tag>>,
    pub op: Op,
    /// The one result that counts as success for a link (a full read or write, -ETIME for
    /// a timeout with ETIME_SUCCESS); None: any non-negative result.
    pub expected: Option<i32>,
    /// The next request of a link chain, started when this one completes.
    pub link: Option<Box<Request>>,
    /// The submitter's address space (buffers are in it).
    pub mm: Option<Mm>,
    /// The credentials it runs with when the SQE named a registered personality (None:
    /// the submitter's own; io-wq sets the submitter's).
    pub creds: Option<Arc<crate::task::cred::Cred>>,
    /// The submitting task's io_uring context: where its task work runs, whose io-wq
    /// serves it, and whose exit or exec cancels it.
    pub tctx: Option<Arc<Tctx>>,
    /// How many requests were submitted on the ring before this one (IO_DRAIN waits
    /// until that many have completed).
    pub seq: u64,
    /// Issued by an io-wq worker, which may sleep (Linux: no IO_URING_F_NONBLOCK).
    pub in_iowq: bool,
    /// Times a read or write was poll-armed (see `poll::arm_retry`).
    pub poll_retries: u8,
    /// The armed LINK_TIMEOUT that times this request, ended when it completes.
    pub link_timeout: Option<u64>,
    /// Flags for its CQE (IORING_CQE_F_BUFFER and the id of a provided buffer).
    pub cqe_flags: u32,
    /// The extra words of its CQE on a CQE32 ring.
    pub extra: [u64; 2],
    /// Its id in the trace (`crate::trace`; 0 when tracing is off).
    pub trace: u64,
}

/// What prep decoded, per opcode family.
pub enum Op {
    Nop,
    /// A NOP with flags (see `nop`).
    NopFlags(nop::Nop),
    Rw(rw::Rw),
    Sync(sync::SyncOp),
    Fs(fs::FsOp),
    Fadvise { advice: u32, offset: u64, len: u64 },
    Madvise { addr: u64, len: u64, advice: u32 },
    /// When it fires, and completions that fire it early (0: none).
    Timeout { when: timeout::When, count: u32 },
    /// Times the request linked before it.
    LinkTimeout(timeout::When),
    /// TIMEOUT_REMOVE, or with `update` (new time; link timeout?) IORING_TIMEOUT_UPDATE.
    TimeoutRemove { target: u64, update: Option<(timeout::When, bool)> },
    Poll { events: u32, multishot: bool, exclusive: bool },
    /// POLL_REMOVE, or with `update` (new events, new user_data) a poll update.
    PollRemove { target: u64, update: Option<(Option<u32>, Option<u64>)> },
    Cancel(cancel::CancelData),
    Kbuf(kbuf::KbufOp),
    MsgRing(msg_ring::MsgRing),
    Splice(splice::Splice),
    OpenClose(openclose::OpenCloseOp),
    Epoll(epoll::EpollOp),
    Xattr(xattr::XattrOp),
    UringCmd(uring_cmd::UringCmd),
    /// IORING_OP_FILES_UPDATE: fds at `addr`, `nr` of them, from slot `offset`.
    FilesUpdate { addr: u64, nr: u32, offset: u32 },
    /// FUTEX_WAIT, FUTEX_WAKE, FUTEX_WAITV.
    Futex(futex::FutexOp),
    Waitid(waitid::WaitidOp),
    Net(net::NetOp),
    /// A link member whose prep failed: it completes with this error.
    Failed(Errno),
}

/// The outcome of issuing: done with a result, or None: it completes later (parked on a
/// file, at a device, in io-wq).
pub type Issued = Option<(Box<Request>, i32)>;

/// Work that must run in the submitter's context.
pub enum Work {
    /// Issue (or retry) a request: a link's next member, a poll-armed retry, a drained one.
    Issue(Box<Request>),
    /// Complete a request (DEFER_TASKRUN rings post completions only from task work).
    Complete(Box<Request>, i32),
    /// Post a CQE from another ring (MSG_RING to a DEFER_TASKRUN ring).
    Post(Cqe),
}

struct State {
    /// CQEs that did not fit in the CQ ring, in order.
    overflow: VecDeque<Cqe>,
    /// Requests held back by IOSQE_IO_DRAIN, in submission order.
    deferred: VecDeque<Box<Request>>,
    /// DEFER_TASKRUN: work run only by the issuer in `io_uring_enter` with GETEVENTS.
    local_work: VecDeque<Work>,
    /// Inside a submission batch: wakeups wait for its end, one for the whole batch.
    batching: bool,
    wake_pending: bool,
    /// CQEs posted since the registered eventfd was last signalled.
    eventfd_pending: u64,
    /// The rings (see `IoUring::rings`).
    rings: Arc<Rings>,
}

/// The submission side, under the ring's submission lock (Linux's `uring_lock`).
struct Submit {
    /// The rings (see `IoUring::rings`).
    rings: Arc<Rings>,
    /// The kernel's own SQ head: user space may scribble on the shared one, never on this.
    head: u32,
    /// Requests submitted so far (each request's `seq`).
    seq: u64,
    /// A chain member asked for IO_DRAIN: the request after the chain drains too.
    drain_next: bool,
    /// A request with CQE_SKIP_SUCCESS was seen: IO_DRAIN is refused from then on, as
    /// Linux does (skipped CQEs make the drain count unreliable).
    drain_disabled: bool,
    /// Room for the members of a link chain being assembled (kept to reuse).
    #[allow(clippy::vec_box)]
    chain: Vec<Box<Request>>,
}

/// Most CQEs kept on the overflow list (beyond, they are dropped and counted in
/// `cq_overflow`), so a program that never reaps cannot exhaust kernel memory.
const MAX_OVERFLOW: usize = 65536;

/// Finished requests kept for reuse, so the hot path does not allocate.
const REQUEST_CACHE: usize = 64;

pub struct IoUring {
    me: Weak<IoUring>,
    /// Requests completed (the counterpart of `Request::seq`, for IO_DRAIN).
    completed: AtomicU64,
    /// Requests held back in `State::deferred` (checked without the lock on the hot path).
    deferred_count: AtomicUsize,
    /// Emptied request boxes (their contents dropped), reused without allocating.
    #[allow(clippy::vec_box)] // the boxes themselves are what is reused
    cache: SpinLock<Vec<Box<core::mem::MaybeUninit<Request>>>>,
    ino: u64,
    /// The shared rings, also in `State` (for posting CQEs) and `Submit` (for taking
    /// SQEs), so the hot paths find them under the lock they hold anyway. Only
    /// IORING_REGISTER_RESIZE_RINGS replaces them, holding all three locks; everyone
    /// else holds a reference while using them, so old rings live until their last use.
    rings: SpinLock<Arc<Rings>>,
    pub setup_flags: u32,
    /// Registered buffers count against RLIMIT_MEMLOCK: the creator lacked CAP_IPC_LOCK
    /// (Linux's `ctx->user`).
    pub account_mem: bool,
    submit: Mutex<Submit>,
    state: SpinLock<State>,
    cq_wait: WaitQueue,
    pub rsrc: SpinLock<rsrc::Resources>,
    /// Registered eventfd, and whether it is signalled only for completions posted by
    /// io-wq workers (EVENTFD_ASYNC).
    eventfd: SpinLock<Option<(Arc<EventFd>, bool)>>,
    /// 0: no eventfd; 1: every completion; 2: completions posted by io-wq workers (as
    /// Linux, whose EVENTFD_ASYNC tests `io_wq_current_is_worker()`).
    eventfd_mode: AtomicU8,
    pub timeouts: SpinLock<timeout::Timeouts>,
    /// Provided buffers, by group.
    pub kbufs: SpinLock<kbuf::Groups>,
    /// Requests parked on a file's wait queue (polls, reads and writes that would
    /// block): what cancellation can reach.
    pub parked: SpinLock<cancel::ParkedSet>,
    /// The SQ poller's state, with IORING_SETUP_SQPOLL.
    pub sqpoll: Option<Arc<sqpoll::SqPoll>>,
    /// The task contexts that submitted here (Linux: `ctx->tctx_list`): their io-wq
    /// queues are searched by cancellation.
    tctxs: SpinLock<Vec<Weak<Tctx>>>,
    /// SINGLE_ISSUER: the only task (tid) that may submit.
    issuer: AtomicU32,
    /// The ring's file was released: nothing new is accepted, everything is cancelled.
    dead: AtomicBool,
    /// IORING_SETUP_R_DISABLED until IORING_REGISTER_ENABLE_RINGS: no submission.
    pub disabled: AtomicBool,
    /// IORING_REGISTER_RESTRICTIONS: what submissions and registrations may use once
    /// the ring is enabled.
    pub restrictions: SpinLock<Option<register::Restrictions>>,
    /// IORING_REGISTER_PERSONALITY's credentials, by id.
    pub personalities: SpinLock<register::Personalities>,
    /// IORING_SETUP_IOPOLL: reads and writes at the device, or done and not yet reaped.
    pub iopoll: SpinLock<iopoll::Iopoll>,
    /// IORING_REGISTER_CLOCK's clock id (CLOCK_MONOTONIC or CLOCK_BOOTTIME: the same time
    /// here, so waits read the monotonic clock either way).
    pub clock: AtomicU32,
    /// IORING_REGISTER_MEM_REGION's region (one per ring), and whether it is the ring's
    /// wait-argument area (IORING_MEM_REGION_REG_WAIT_ARG) that EXT_ARG_REG reads.
    pub param_region: SpinLock<Option<(Arc<memmap::Region>, bool)>>,
}

impl Drop for IoUring {
    fn drop(&mut self) {
        // A sleeping poller wakes up, finds the ring gone and ends.
        if let Some(sq) = &self.sqpoll {
            sqpoll::wake(sq);
        }
    }
}

impl IoUring {
    fn arc(&self) -> Arc<IoUring> {
        self.me.upgrade().expect("a ring in use is alive")
    }

    /// The rings as they are now (see `rings`).
    pub fn rings(&self) -> Arc<Rings> {
        Arc::clone(&self.rings.lock())
    }

    pub fn flag(&self, flag: u32) -> bool {
        self.setup_flags & flag != 0
    }

    /// Posts a CQE (to the overflow list if the CQ is full or already overflowing) and
    /// wakes waiters, or leaves that to the end of the current submission batch.
    /// `worker`: posted by an io-wq worker.
    /// Returns the CQ index it took (u32::MAX: the overflow list; 0 when not tracing).
    fn post(&self, cqe: Cqe, worker: bool) -> u32 {
        let (wake_now, at) = {
            let mut st = self.state.lock();
            let State { overflow, rings, .. } = &mut *st;
            let mut at = if ktrace::on() { rings.cq_indices().1 } else { 0 };
            if !overflow.is_empty() || !rings.push_cqe(&cqe) {
                at = u32::MAX;
                if overflow.len() < MAX_OVERFLOW && !crate::mm::heap::under_pressure() {
                    overflow.push_back(cqe);
                } else {
                    // Kept back as far as memory allows, then counted, as Linux does.
                    rings.add_overflow();
                }
                rings.set_sq_flag(IORING_SQ_CQ_OVERFLOW, true);
            }
            match self.eventfd_mode.load(Relaxed) {
                1 => st.eventfd_pending += 1,
                2 if worker => st.eventfd_pending += 1,
                _ => {}
            }
            st.wake_pending = true;
            (!st.batching, at)
        };
        if wake_now {
            self.wake();
        }
        at
    }

    /// Its name in the trace.
    fn trace_id(&self) -> u64 {
        self as *const Self as u64
    }

    /// Posts a CQE for a request that goes on (a multishot poll): IORING_CQE_F_MORE.
    /// False, with nothing posted, when the CQ is full or overflowing: the request must
    /// end instead (Linux's io_aux_cqe).
    pub fn post_more(self: &Arc<Self>, user_data: u64, res: i32, flags: u32) -> bool {
        {
            let st = self.state.lock();
            if !st.overflow.is_empty() || st.rings.cq_space() == 0 {
                return false;
            }
        }
        self.post(Cqe::new(user_data, res, flags | uapi::IORING_CQE_F_MORE), false);
        timeout::count_completion(self);
        true
    }

    /// Posts a CQE that no request of this ring asked for (MSG_RING from another ring);
    /// a DEFER_TASKRUN ring shows it only when its issuer enters with GETEVENTS.
    pub fn post_remote(self: &Arc<Self>, cqe: Cqe) {
        if self.flag(IORING_SETUP_DEFER_TASKRUN) && !self.dead.load(Relaxed) {
            return self.queue_local(Work::Post(cqe));
        }
        self.post(cqe, false);
        timeout::count_completion(self);
    }

    /// Posts a CQE no request asked for (a resource's tag: Linux's io_post_aux_cqe).
    pub fn post_aux(self: &Arc<Self>, user_data: u64) {
        self.post(Cqe::new(user_data, 0, 0), false);
        timeout::count_completion(self);
    }

    /// Wakes CQ waiters and signals the eventfd for what was posted.
    fn wake(&self) {
        let (signals, cq_flags) = {
            let mut st = self.state.lock();
            if !st.wake_pending {
                return;
            }
            st.wake_pending = false;
            (core::mem::take(&mut st.eventfd_pending), st.rings.cq_flags())
        };
        self.cq_wait.wake_all();
        // IORING_CQ_EVENTFD_DISABLED: user space turned eventfd notification off.
        if signals > 0 && cq_flags & IORING_CQ_EVENTFD_DISABLED == 0 {
            // A statement of its own, so the lock ends before signalling: the eventfd's
            // wakeup may complete a parked request of this very ring.
            let efd = self.eventfd.lock().clone();
            if let Some((efd, _)) = efd {
                efd.signal(signals);
            }
        }
    }

    /// Moves overflowed CQEs into the CQ ring as room allows.
    pub fn flush_overflow(&self) {
        let mut st = self.state.lock();
        if st.overflow.is_empty() {
            return; // and IORING_SQ_CQ_OVERFLOW is clear: it is set only with a backlog
        }
        let State { overflow, rings, .. } = &mut *st;
        while let Some(cqe) = overflow.front() {
            if !rings.push_cqe(cqe) {
                return;
            }
            overflow.pop_front();
        }
        rings.set_sq_flag(IORING_SQ_CQ_OVERFLOW, false);
    }

    /// Issues `req` in the current (submitter's or io-wq worker's) context and, when it
    /// finishes at once, completes it and issues the rest of its chain.
    pub fn issue(self: &Arc<Self>, req: Box<Request>) {
        let mut next = Some(req);
        while let Some(mut req) = next.take() {
            if self.dead.load(Relaxed) {
                next = self.finish(req, -ECANCELED.0, false);
                continue;
            }
            if let Err(e) = opdef::resolve_file(self, &mut req) {
                let worker = req.in_iowq;
                next = self.finish(req, -e.0, worker);
                continue;
            }
            // A LINK_TIMEOUT linked after this request starts timing it now.
            if req.link_timeout.is_none() && req.link.as_ref().is_some_and(|l| l.opcode == timeout::IORING_OP_LINK_TIMEOUT) {
                let mut lt = req.link.take().expect("checked");
                req.link = lt.link.take();
                req.link_timeout = Some(timeout::arm_link(self, lt, req.user_data));
            }
            let def = &opdef::OPS[req.opcode as usize];
            // IOSQE_ASYNC, and ops that always sleep, go straight to io-wq.
            if !req.in_iowq && (req.flags & IOSQE_ASYNC != 0 || def.force_async) && !matches!(req.op, Op::Failed(_)) {
                io_wq::enqueue(self, req);
                continue;
            }
            let worker = req.in_iowq;
            // Under the request's personality, or its submitter's credentials in io-wq.
            let creds = req.creds.clone();
            let traced = req.trace;
            // Traced: the virtio tracepoints it leads to name it.
            let outer = if traced != 0 { ktrace::issue(traced, worker) } else { 0 };
            let issued = crate::task::cred::override_with(creds.as_ref(), || (def.issue)(self, req));
            if traced != 0 {
                ktrace::set_request(outer);
            }
            if let Some((req, res)) = issued {
                next = self.finish(req, res, worker);
            }
        }
    }

    /// Completes a request that was parked, sent to a device or run by io-wq (called
    /// from whoever finished it: an interrupt handler, a waker, a worker). What comes
    /// next in its chain becomes task work of its submitter.
    pub fn complete_async(self: &Arc<Self>, req: Box<Request>, res: i32) {
        if self.flag(IORING_SETUP_DEFER_TASKRUN) && !self.dead.load(Relaxed) {
            return self.queue_local(Work::Complete(req, res));
        }
        if let Some(next) = self.finish(req, res, false) {
            tctx::queue(self, next);
        }
    }

    /// DEFER_TASKRUN: keeps work for the issuer's next `io_uring_enter` with GETEVENTS.
    fn queue_local(&self, work: Work) {
        let mut st = self.state.lock();
        st.local_work.push_back(work);
        if self.flag(IORING_SETUP_TASKRUN_FLAG) {
            st.rings.set_sq_flag(IORING_SQ_TASKRUN, true);
        }
        drop(st);
        self.cq_wait.wake_all();
    }

    /// Runs a DEFER_TASKRUN ring's local work (in the issuer's `io_uring_enter`).
    pub fn run_local_work(self: &Arc<Self>) {
        loop {
            let work = self.state.lock().local_work.pop_front();
            let Some(work) = work else { break };
            self.run_work(work);
        }
        if self.flag(IORING_SETUP_TASKRUN_FLAG) {
            self.rings().set_sq_flag(IORING_SQ_TASKRUN, false);
        }
    }

    pub fn run_work(self: &Arc<Self>, work: Work) {
        match work {
            Work::Issue(req) => self.issue(req),
            Work::Complete(req, res) => {
                if let Some(next) = self.finish(req, res, false) {
                    self.issue(next);
                }
            }
            Work::Post(cqe) => {
                self.post(cqe, false);
                timeout::count_completion(self);
            }
        }
    }

    /// A request box, reused if one is cached.
    #[inline]
    pub fn new_request(&self, req: Request) -> Box<Request> {
        let cached = self.cache.lock().pop();
        match cached {
            Some(mut b) => {
                b.write(req);
                // SAFETY: initialised by the write just above.
                unsafe { b.assume_init() }
            }
            None => Box::new(req),
        }
    }

    /// Drops what a finished request holds and keeps its box for reuse.
    fn recycle(&self, req: Box<Request>) {
        let raw = Box::into_raw(req);
        // SAFETY: `raw` is the live request of a box we own; its contents are dropped
        // once here, and the box is kept as uninitialised memory from now on.
        let empty = unsafe {
            core::ptr::drop_in_place(raw);
            Box::from_raw(raw.cast::<core::mem::MaybeUninit<Request>>())
        };
        let mut cache = self.cache.lock();
        if cache.len() < REQUEST_CACHE {
            cache.push(empty);
        }
    }

    /// Posts `req`'s CQE and returns the next request of its chain to run, if any.
    fn finish(self: &Arc<Self>, mut req: Box<Request>, res: i32, worker: bool) -> Option<Box<Request>> {
        let failed = req.expected.map_or(res < 0, |e| e != res);
        // A read into a provided buffer names it, whatever its result (the buffer is the
        // program's again).
        if req.flags & IOSQE_BUFFER_SELECT != 0 {
            req.cqe_flags |= rw::selected_flags(&req);
        }
        let skip = req.flags & IOSQE_CQE_SKIP_SUCCESS != 0;
        // A failure is always reported, even with CQE_SKIP_SUCCESS (Linux's
        // req_set_fail); the CQEs of the links it cancels are then skipped instead.
        if !skip || failed {
            // Traced: the time is taken before the CQE is visible to user space.
            let posted = if req.trace != 0 { crate::time::rdtsc() } else { 0 };
            let at = self.post(Cqe { user_data: req.user_data, res, flags: req.cqe_flags, extra: req.extra }, worker);
            if req.trace != 0 {
                ktrace::write_at(posted, Kind::Cqe, [req.trace, req.user_data, res as u64, self.trace_id() | u64::from(at) << 32]);
            }
            if req.opcode != timeout::IORING_OP_TIMEOUT {
                timeout::count_completion(self);
            }
        }
        self.completed.fetch_add(1, Relaxed);
        let mut next = req.link.take();
        let hard = req.flags & IOSQE_IO_HARDLINK != 0;
        let link_timeout = req.link_timeout.take();
        self.recycle(req);
        if let Some(id) = link_timeout {
            timeout::disarm_link(self, id);
        }
        if failed && !hard {
            // A failed link cancels the rest of its chain.
            self.fail_chain(next.take(), skip, worker);
        }
        self.run_deferred();
        next
    }

    /// Ends a request without a CQE (a LINK_TIMEOUT with CQE_SKIP_SUCCESS posts none once
    /// armed, as Linux), accounted as completed for drains.
    fn end_silently(self: &Arc<Self>, req: Box<Request>) {
        self.completed.fetch_add(1, Relaxed);
        self.recycle(req);
        self.run_deferred();
    }

    /// Completes a chain without running it: a member whose prep failed reports its
    /// error, the others -ECANCELED; with `skip_cqes` none is posted.
    fn fail_chain(self: &Arc<Self>, mut next: Option<Box<Request>>, skip_cqes: bool, worker: bool) {
        while let Some(mut r) = next {
            next = r.link.take();
            let res = match r.op {
                Op::Failed(e) => -e.0,
                _ => -ECANCELED.0,
            };
            if !skip_cqes {
                self.post(Cqe::new(r.user_data, res, 0), worker);
                timeout::count_completion(self);
            }
            self.completed.fetch_add(1, Relaxed);
            self.recycle(r);
        }
    }

    /// Queues a submitted request: held back by a drain, or issued now.
    fn queue(self: &Arc<Self>, req: Box<Request>) {
        if req.flags & IOSQE_IO_DRAIN != 0 || self.deferred_count.load(Relaxed) != 0 {
            self.deferred_count.fetch_add(1, Relaxed);
            self.state.lock().deferred.push_back(req);
            self.run_deferred();
            return;
        }
        self.issue(req);
    }

    /// Releases held-back requests once every request submitted before them has
    /// completed; they are issued as task work of their submitter.
    #[inline]
    fn run_deferred(self: &Arc<Self>) {
        if self.deferred_count.load(Relaxed) != 0 {
            self.release_deferred();
        }
    }

    fn release_deferred(self: &Arc<Self>) {
        let mut released = Vec::new();
        {
            let mut st = self.state.lock();
            // The front drain request goes once all before it are done; the requests after
            // it go with it, up to the next drain request (which waits in turn).
            let mut first = true;
            while let Some(front) = st.deferred.front() {
                let drain = front.flags & IOSQE_IO_DRAIN != 0;
                if drain && (!first || self.completed.load(Relaxed) < front.seq) {
                    break;
                }
                let req = st.deferred.pop_front().expect("front exists");
                self.deferred_count.fetch_sub(1, Relaxed);
                released.push(req);
                first = false;
            }
        }
        for req in released {
            tctx::queue(self, req);
        }
    }

    /// SQEs user space has published and the kernel not yet consumed.
    fn sq_pending(&self) -> u32 {
        let rings = self.rings();
        rings.sq_tail().wrapping_sub(rings.sq_head()).min(rings.sq_entries)
    }

    /// Consumes up to `to_submit` SQEs for task `me` (the current one); returns how many
    /// were consumed.
    fn submit(self: &Arc<Self>, to_submit: u32, me: &Arc<crate::task::Task>) -> KResult<u32> {
        let tctx = tctx::of_task(me, self)?;
        let mut sub = self.submit.lock();
        self.state.lock().batching = true;
        let submitted = self.submit_batch(&mut sub, to_submit, &tctx, me);
        self.state.lock().batching = false;
        drop(sub);
        self.wake();
        if submitted == 0 && self.sq_pending() > 0 && crate::mm::heap::under_pressure() {
            return Err(EAGAIN);
        }
        Ok(submitted)
    }

    fn submit_batch(self: &Arc<Self>, sub: &mut Submit, to_submit: u32, tctx: &Arc<Tctx>, me: &crate::task::Task) -> u32 {
        let rings = Arc::clone(&sub.rings);
        // Looked up once per batch: every request of it is the same process's.
        let mm = me.process.mm();
        // SQ_REWIND: the batch is the first `to_submit` slots, whatever head and tail say.
        let rewind = self.flag(IORING_SETUP_SQ_REWIND);
        if rewind {
            sub.head = 0;
        }
        let available = if rewind { rings.sq_entries } else { rings.sq_tail().wrapping_sub(sub.head).min(rings.sq_entries) };
        let mut submitted = 0;
        // The link chain being built (its members in order: appending stays O(1)), and
        // whether a member already failed.
        let mut chain = core::mem::take(&mut sub.chain);
        let mut chain_failed = false;
        let mut left = to_submit.min(available);
        while left > 0 {
            // Out of kernel memory: stop here, as Linux does when it cannot allocate a
            // request (the caller sees -EAGAIN if nothing was submitted).
            if submitted % 16 == 0 && crate::mm::heap::under_pressure() {
                break;
            }
            let index = rings.sq_array(sub.head);
            sub.head = sub.head.wrapping_add(1);
            if index >= rings.sq_entries {
                // A bad index is consumed, counted in sq_dropped, and ends the batch
                // (Linux 6.x).
                rings.add_dropped();
                break;
            }
            let sqe = rings.read_sqe(index);
            let traced = if ktrace::on() { ktrace::sqe(&sqe, index, self.trace_id()) } else { 0 };
            submitted += 1;
            left -= 1;
            let linked = sqe.flags & (IOSQE_IO_LINK | IOSQE_IO_HARDLINK) != 0;
            let seq = sub.seq;
            sub.seq += 1;
            let checked = if opdef::is_128(sqe.opcode) {
                self.big_sqe(sub, index, &mut left, &mut submitted).and_then(|()| check_flags(sub, &sqe))
            } else {
                check_flags(sub, &sqe)
            };
            let prepped = checked
                .and_then(|()| self.check_restrictions(&sqe))
                .and_then(|()| check_link_timeout(&sqe, chain.last().map(|r| r.opcode)))
                .and_then(|()| opdef::prep(self, &sqe, &mm));
            // The SQE is copied: its slot goes back to user space before the request is
            // issued, so a CQE it posts is never seen with the SQ head behind it (a
            // reader on another CPU relies on that, as on Linux, which commits the head
            // before it flushes the batch's completions).
            if !rewind {
                rings.set_sq_head(sub.head);
            }
            if traced != 0 {
                ktrace::emit(Kind::Prep, traced, prepped.as_ref().map_or_else(|e| -e.0 as u64, |_| 0), 0, 0);
            }
            let (mut req, failed) = match prepped {
                Ok(req) => (req, false),
                Err(e) => (opdef::failed(&sqe, e), true),
            };
            req.trace = traced;
            req.seq = seq;
            req.tctx = Some(Arc::clone(tctx));
            // IO_DRAIN on a chain member drains the chain's head, and the next request
            // outside a chain (Linux's drain_next).
            if let Some(head) = chain.first_mut()
                && sqe.flags & IOSQE_IO_DRAIN != 0
            {
                head.flags |= IOSQE_IO_DRAIN;
                sub.drain_next = true;
            }
            if chain.is_empty() && sub.drain_next {
                req.flags |= IOSQE_IO_DRAIN;
                sub.drain_next = false;
            }
            // As Linux: a member that fails prep does not break up its link; the chain is
            // assembled to its end and then fails as a whole. Submission stops after a
            // failed SQE that ends a chain (or stands alone), unless SUBMIT_ALL.
            if linked || !chain.is_empty() {
                chain_failed |= failed;
                chain.push(req);
                if !linked {
                    self.queue_chain(link_up(&mut chain), chain_failed);
                    chain_failed = false;
                }
            } else {
                self.queue_chain(req, failed);
            }
            if failed && !linked && !self.flag(IORING_SETUP_SUBMIT_ALL) {
                break;
            }
        }
        // A chain left open at the end of the batch goes as it is (Linux too).
        if !chain.is_empty() {
            self.queue_chain(link_up(&mut chain), chain_failed);
        }
        sub.chain = chain;
        // (SQ_REWIND leaves the SQ head at 0: the next batch starts at slot 0 again.)
        if !rewind {
            rings.set_sq_head(sub.head);
        }
        submitted
    }

    /// A 128-byte op outside an SQE128 ring (at SQ slot `index`, `left` slots left in the
    /// batch after it): on an SQE_MIXED ring it takes this slot and the next, which must
    /// be in the batch and not past the SQE array's end; anything else is -EINVAL (Linux's
    /// io_init_req).
    #[cold]
    fn big_sqe(&self, sub: &mut Submit, index: u32, left: &mut u32, submitted: &mut u32) -> KResult<()> {
        if self.flag(IORING_SETUP_SQE128) {
            return Ok(());
        }
        if !self.flag(IORING_SETUP_SQE_MIXED) || *left == 0 || index >= sub.rings.sq_entries - 1 {
            return Err(EINVAL);
        }
        sub.head = sub.head.wrapping_add(1);
        *left -= 1;
        *submitted += 1;
        Ok(())
    }

    /// Queues a whole chain; a chain with a member whose prep failed is not run, as in
    /// Linux (see `fail_chain`).
    fn queue_chain(self: &Arc<Self>, head: Box<Request>, failed: bool) {
        if !failed {
            return self.queue(head);
        }
        self.fail_chain(Some(head), false, false);
        self.run_deferred();
    }

    /// Waits until `min` CQEs are ready, a signal arrives, or `deadline` passes, running
    /// the caller's task work (and a DEFER_TASKRUN ring's local work) meanwhile.
    /// Waits for `min` CQEs until `deadline`. With `min_wait` (EXT_ARG's min_wait_usec,
    /// as a deadline) the wait has two phases, as Linux's: until `min_wait`, for `min`
    /// CQEs; then, if none at all is there, until `deadline` for any one.
    fn wait_cqes(self: &Arc<Self>, min: u32, deadline: Option<u64>, min_wait: Option<u64>, local: bool) -> KResult<()> {
        let Some(first) = min_wait else { return self.wait_phase(min, deadline, local) };
        match self.wait_phase(min, Some(deadline.map_or(first, |d| d.min(first))), local) {
            Err(e) if e == ETIME && deadline.is_some_and(|d| d > first) => self.wait_phase(1, deadline, local),
            result => result,
        }
    }

    fn wait_phase(self: &Arc<Self>, min: u32, deadline: Option<u64>, local: bool) -> KResult<()> {
        // (The rings cannot be resized meanwhile: only a DEFER_TASKRUN ring's issuer can
        // resize it, and it is the one waiting.)
        let rings = self.rings();
        let min = min.min(rings.cq_entries);
        loop {
            if local {
                self.run_local_work();
            }
            let result = self.cq_wait.wait_until(deadline, || {
                self.flush_overflow();
                rings.cq_ready() >= min || (local && !self.state.lock().local_work.is_empty())
            });
            match result {
                Ok(()) if rings.cq_ready() >= min => return Ok(()),
                Ok(()) => continue,
                Err(WaitError::Interrupted) => return Err(EINTR),
                // Linux reports ETIME only when nothing at all is ready.
                Err(WaitError::TimedOut) if rings.cq_ready() > 0 => return Ok(()),
                Err(WaitError::TimedOut) => return Err(ETIME),
            }
        }
    }

    /// IORING_REGISTER_RESTRICTIONS on an enabled ring: an SQE outside them is -EACCES.
    #[inline]
    fn check_restrictions(&self, sqe: &Sqe) -> KResult<()> {
        if self.setup_flags & IORING_SETUP_R_DISABLED == 0 {
            return Ok(());
        }
        // An opcode Linux does not know stays -EINVAL (from prep).
        if usize::from(sqe.opcode) >= opdef::IORING_OP_LAST {
            return Ok(());
        }
        match self.restrictions.lock().as_ref() {
            Some(r) if !r.allows_sqe(sqe.opcode, sqe.flags) => Err(EACCES),
            _ => Ok(()),
        }
    }

    /// The task contexts that submitted here and still exist.
    fn submitters(&self) -> Vec<Arc<Tctx>> {
        self.tctxs.lock().iter().filter_map(Weak::upgrade).collect()
    }

    /// Registers `tctx` as a submitter of this ring (for cancellation).
    fn add_tctx(&self, tctx: &Arc<Tctx>) {
        let mut list = self.tctxs.lock();
        list.retain(|t| t.strong_count() > 0);
        if !list.iter().any(|t| core::ptr::eq(t.as_ptr(), Arc::as_ptr(tctx))) {
            list.push(Arc::downgrade(tctx));
        }
    }

    /// The ring's file was closed for the last time: cancel everything, drop registered
    /// resources (which may hold files whose wait queues hold this ring), end the poller.
    fn release_ring(self: &Arc<Self>) {
        self.dead.store(true, Relaxed);
        // Polled requests complete only when polled: reap them all now.
        iopoll::drain(self);
        cancel::cancel_all(self, None);
        let deferred: Vec<Box<Request>> = self.state.lock().deferred.drain(..).collect();
        self.deferred_count.store(0, Relaxed);
        for req in deferred {
            self.fail_chain(Some(req), false, false);
        }
        let local: Vec<Work> = self.state.lock().local_work.drain(..).collect();
        for work in local {
            match work {
                Work::Issue(req) => self.fail_chain(Some(req), false, false),
                Work::Complete(req, res) => {
                    if let Some(next) = self.finish(req, res, false) {
                        self.fail_chain(Some(next), false, false);
                    }
                }
                Work::Post(_) => {}
            }
        }
        let rsrc = core::mem::take(&mut *self.rsrc.lock());
        drop(rsrc);
        let efd = self.eventfd.lock().take();
        drop(efd);
        if let Some(sq) = &self.sqpoll {
            sqpoll::wake(sq);
        }
    }
}

/// The submission-time flag rules that need the ring's history: after a request with
/// CQE_SKIP_SUCCESS, IO_DRAIN is refused (Linux's `drain_disabled`).
/// A LINK_TIMEOUT must follow a linked request that is not a LINK_TIMEOUT itself
/// (`prev`: the opcode of the chain's last member, if a chain is being built).
fn check_link_timeout(sqe: &Sqe, prev: Option<u8>) -> KResult<()> {
    if sqe.opcode == timeout::IORING_OP_LINK_TIMEOUT && prev.is_none_or(|p| p == timeout::IORING_OP_LINK_TIMEOUT) {
        return Err(EINVAL);
    }
    Ok(())
}

fn check_flags(sub: &mut Submit, sqe: &Sqe) -> KResult<()> {
    if sqe.flags & IOSQE_CQE_SKIP_SUCCESS != 0 {
        sub.drain_disabled = true;
    }
    if sqe.flags & IOSQE_IO_DRAIN != 0 && sub.drain_disabled {
        return Err(EOPNOTSUPP);
    }
    Ok(())
}

/// Links a chain's members, in order, and returns its head (the Vec is left empty).
#[allow(clippy::vec_box)] // the members are boxes already; the Vec only orders them
fn link_up(chain: &mut Vec<Box<Request>>) -> Box<Request> {
    let mut next = None;
    while let Some(mut r) = chain.pop() {
        r.link = next;
        next = Some(r);
    }
    next.expect("a chain has a member")
}

impl Node for IoUring {
    /// Linux's io_uring_show_fdinfo, line for line: the rings' masks and indices (the
    /// kernel's own SQ head and CQ tail as "Cached"), how many entries wait in each ring
    /// (not their contents), the SQ poller, the registered files and buffers, and the
    /// overflow backlog. PollList is left empty.
    fn fdinfo(&self) -> Option<alloc::string::String> {
        use core::fmt::Write;
        let rings = self.rings();
        let (sq_head, sq_tail) = (rings.sq_head(), rings.sq_tail());
        let (cq_head, cq_tail) = rings.cq_indices();
        let cached_sq_head = self.submit.try_lock().map_or(sq_head, |s| s.head);
        let mut out = alloc::string::String::new();
        let _ = write!(
            out,
            "SqMask:\t0x{:x}\nSqHead:\t{sq_head}\nSqTail:\t{sq_tail}\nCachedSqHead:\t{cached_sq_head}\nCqMask:\t0x{:x}\nCqHead:\t{cq_head}\nCqTail:\t{cq_tail}\nCachedCqTail:\t{cq_tail}\nSQEs:\t{}\nCQEs:\t{}\n",
            rings.sq_entries - 1,
            rings.cq_entries - 1,
            sq_tail.wrapping_sub(sq_head),
            cq_tail.wrapping_sub(cq_head),
        );
        // The poller's CPU time in microseconds stands for both of Linux's figures: it
        // does not tell its work from its polling.
        let (thread, cpu, time_us) = match &self.sqpoll {
            Some(sq) => {
                let used = crate::task::find_task(sq.tid()).map_or(0, |t| crate::task::sched::task_cpu_ns(&t) / 1000);
                (sq.tid() as i64, 0, used)
            }
            None => (-1, -1, 0),
        };
        let _ = write!(out, "SqThread:\t{thread}\nSqThreadCpu:\t{cpu}\nSqTotalTime:\t{time_us}\nSqWorkTime:\t{time_us}\n");
        let rsrc = self.rsrc.lock();
        let files = rsrc.files.as_deref().unwrap_or(&[]);
        let _ = writeln!(out, "UserFiles:\t{}", files.len());
        for (i, f) in files.iter().enumerate() {
            if let Some(f) = f {
                let _ = writeln!(out, "{i:5}: {}", f.file.path.rsplit('/').next().unwrap_or(""));
            }
        }
        let bufs = rsrc.buffers.as_deref().unwrap_or(&[]);
        let _ = writeln!(out, "UserBufs:\t{}", bufs.len());
        for (i, b) in bufs.iter().enumerate() {
            if let Some(b) = b {
                let _ = writeln!(out, "{i:5}: 0x{:x}/{}", b.addr, b.len);
            }
        }
        drop(rsrc);
        let _ = writeln!(out, "PollList:");
        let st = self.state.lock();
        let _ = writeln!(out, "CqOverflowList:");
        for c in &st.overflow {
            let _ = writeln!(out, "  user_data=0x{:x}, res={}, flags=0x{:x}", c.user_data, c.res, c.flags);
        }
        drop(st);
        // Busy polling of network devices belongs to sockets, which do not exist yet.
        let _ = writeln!(out, "NAPI:\tdisabled");
        Some(out)
    }

    fn stat(&self) -> Stat {
        Stat { ino: self.ino, mode: 0o600, nlink: 1, ..Stat::default() }
    }

    fn file_type(&self) -> FileType {
        FileType::Regular
    }

    fn seekable(&self) -> bool {
        false
    }

    fn mmap_pages(&self, offset: u64, len: u64) -> KResult<(Arc<SharedPages>, usize)> {
        // IORING_OFF_PBUF_RING | bgid << 16: an IOU_PBUF_RING_MMAP buffer ring.
        if offset & 0xf800_0000 == 0x8000_0000 {
            let pages = self.kbufs.lock().mmap_pages(((offset & 0x07ff_ffff) >> 16) as u16)?;
            if len > (pages.len() as u64) * 4096 {
                return Err(EINVAL);
            }
            return Ok((pages, 0));
        }
        // IORING_MAP_OFF_PARAM_REGION: the registered region, when in kernel memory
        // (ENOMEM otherwise, Linux's io_uring_get_unmapped_area). As Linux's
        // vm_insert_pages, a mapping must hold every page of the region (EFAULT); pages
        // past the region's end are left unbacked (touching one faults).
        if offset & IORING_OFF_MMAP_MASK == IORING_MAP_OFF_PARAM_REGION {
            let region = self.param_region.lock().as_ref().map(|(r, _)| Arc::clone(r)).ok_or(ENOMEM)?;
            let pages = region.mmap_pages()?;
            if len < region.size as u64 {
                return Err(EFAULT);
            }
            return Ok((pages, 0));
        }
        let (pages, size) = match offset {
            IORING_OFF_SQ_RING | IORING_OFF_CQ_RING => self.rings().mmap_pages(false)?,
            IORING_OFF_SQES => self.rings().mmap_pages(true)?,
            _ => return Err(EINVAL),
        };
        if len > (size as u64).next_multiple_of(4096) {
            return Err(EINVAL);
        }
        Ok((pages, 0))
    }

    /// Readable when CQEs wait (or overflowed), writable while the SQ has room (Linux's
    /// io_uring_poll).
    fn poll_mask(&self) -> u32 {
        let mut mask = 0;
        if self.sq_pending() < self.rings().sq_entries {
            mask |= POLLOUT | POLLWRNORM;
        }
        if self.rings().cq_ready() > 0 || !self.state.lock().overflow.is_empty() {
            mask |= POLLIN | POLLRDNORM;
        }
        mask
    }

    fn poll_queue(&self, _write: bool) -> Option<&WaitQueue> {
        Some(&self.cq_wait)
    }

    fn nowait(&self) -> bool {
        false
    }

    fn release(&self) {
        if let Some(ring) = self.me.upgrade() {
            ring.release_ring();
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The ring behind `fd`: EBADF for a bad fd, EOPNOTSUPP for another kind of file.
pub fn ring_of(fd: i32) -> KResult<(Arc<OpenFile>, Arc<IoUring>)> {
    let f = task::current_process().files.lock().get(fd)?;
    let ring = f.node.as_any().downcast_ref::<IoUring>().ok_or(EOPNOTSUPP)?.arc();
    Ok((f, ring))
}

/// Whether `file` is an io_uring instance (they cannot be registered as fixed files).
pub fn is_ring(file: &OpenFile) -> bool {
    file.node.as_any().downcast_ref::<IoUring>().is_some()
}

/// The setup flags this kernel takes (IO_URING_QUERY_OPCODES reports them too).
pub const SUPPORTED_SETUP: u32 = IORING_SETUP_IOPOLL
    | IORING_SETUP_SQPOLL
    | IORING_SETUP_ATTACH_WQ
    | IORING_SETUP_SQ_AFF
    | IORING_SETUP_R_DISABLED
    | IORING_SETUP_NO_SQARRAY
    | IORING_SETUP_CQSIZE
    | IORING_SETUP_CLAMP
    | IORING_SETUP_SUBMIT_ALL
    | IORING_SETUP_COOP_TASKRUN
    | IORING_SETUP_TASKRUN_FLAG
    | IORING_SETUP_SINGLE_ISSUER
    | IORING_SETUP_DEFER_TASKRUN
    | IORING_SETUP_NO_MMAP
    | IORING_SETUP_REGISTERED_FD_ONLY
    | IORING_SETUP_SQE128
    | IORING_SETUP_CQE32
    | IORING_SETUP_CQE_MIXED
    | IORING_SETUP_SQE_MIXED
    | IORING_SETUP_SQ_REWIND
    | IORING_SETUP_HYBRID_IOPOLL;

/// Features advertised: exactly what this implementation honours.
pub const FEATURES: u32 = IORING_FEAT_SINGLE_MMAP
    | IORING_FEAT_NODROP
    | IORING_FEAT_SUBMIT_STABLE
    | IORING_FEAT_RW_CUR_POS
    | IORING_FEAT_CUR_PERSONALITY
    | IORING_FEAT_EXT_ARG
    | IORING_FEAT_CQE_SKIP
    | IORING_FEAT_LINKED_FILE
    | IORING_FEAT_SQPOLL_NONFIXED
    | IORING_FEAT_FAST_POLL
    | IORING_FEAT_POLL_32BITS
    | IORING_FEAT_NATIVE_WORKERS
    | IORING_FEAT_RSRC_TAGS
    | IORING_FEAT_REG_REG_RING
    | IORING_FEAT_RECVSEND_BUNDLE
    | IORING_FEAT_MIN_TIMEOUT
    | IORING_FEAT_NO_IOWAIT;

/// The SQ and CQ sizes `p` asks for (`sq_entries`, CQSIZE's `cq_entries`, CLAMP), as
/// setup and IORING_REGISTER_RESIZE_RINGS round them (Linux's io_uring_fill_params and
/// rings_size): powers of two, twice as many CQEs by default, never fewer CQEs than SQEs.
/// A mixed ring needs two slots for its big entries (EOVERFLOW).
fn ring_sizes(p: &Params) -> KResult<(u32, u32)> {
    let clamp = p.flags & IORING_SETUP_CLAMP != 0;
    if p.sq_entries == 0 || (p.sq_entries > IORING_MAX_ENTRIES && !clamp) {
        return Err(EINVAL);
    }
    let sq_entries = p.sq_entries.min(IORING_MAX_ENTRIES).next_power_of_two();
    let cq_entries = if p.flags & IORING_SETUP_CQSIZE != 0 {
        if p.cq_entries == 0 || (p.cq_entries > IORING_MAX_CQ_ENTRIES && !clamp) {
            return Err(EINVAL);
        }
        let cq = p.cq_entries.min(IORING_MAX_CQ_ENTRIES).next_power_of_two();
        if cq < sq_entries {
            return Err(EINVAL);
        }
        cq
    } else {
        2 * sq_entries
    };
    if (p.flags & IORING_SETUP_CQE_MIXED != 0 && cq_entries < 2) || (p.flags & IORING_SETUP_SQE_MIXED != 0 && sq_entries < 2) {
        return Err(EOVERFLOW);
    }
    Ok((sq_entries, cq_entries))
}

/// The io_uring_enter flags this kernel takes (IO_URING_QUERY_OPCODES reports them too).
pub const ENTER_FLAGS: u32 = IORING_ENTER_GETEVENTS
    | IORING_ENTER_SQ_WAKEUP
    | IORING_ENTER_SQ_WAIT
    | IORING_ENTER_EXT_ARG
    | IORING_ENTER_REGISTERED_RING
    | IORING_ENTER_ABS_TIMER
    | IORING_ENTER_EXT_ARG_REG
    | IORING_ENTER_NO_IOWAIT;

/// `io_uring_setup(entries, params)`.
pub fn setup(entries: u32, params_addr: u64) -> KResult<u64> {
    let mut p: Params = task::read_user(params_addr)?;
    if p.resv.iter().any(|&r| r != 0) {
        return Err(EINVAL);
    }
    if p.flags & !SUPPORTED_SETUP != 0 {
        return Err(EINVAL);
    }
    // Hybrid polling is a kind of polling.
    if p.flags & IORING_SETUP_HYBRID_IOPOLL != 0 && p.flags & IORING_SETUP_IOPOLL == 0 {
        return Err(EINVAL);
    }
    // Every CQE is 32 bytes, or some are.
    if p.flags & IORING_SETUP_CQE32 != 0 && p.flags & IORING_SETUP_CQE_MIXED != 0 {
        return Err(EINVAL);
    }
    // Without NO_MMAP the rings could not be reached through a registered index alone.
    if p.flags & IORING_SETUP_REGISTERED_FD_ONLY != 0 && p.flags & IORING_SETUP_NO_MMAP == 0 {
        return Err(EINVAL);
    }
    // Linux's rules (io_uring_create): DEFER_TASKRUN needs SINGLE_ISSUER and no SQPOLL;
    // TASKRUN_FLAG needs COOP_TASKRUN or DEFER_TASKRUN; SQPOLL takes neither COOP_TASKRUN
    // nor TASKRUN_FLAG (the poller runs all task work itself).
    if p.flags & IORING_SETUP_DEFER_TASKRUN != 0 && p.flags & IORING_SETUP_SINGLE_ISSUER == 0 {
        return Err(EINVAL);
    }
    if p.flags & IORING_SETUP_SQPOLL != 0 && p.flags & (IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG) != 0 {
        return Err(EINVAL);
    }
    if p.flags & IORING_SETUP_TASKRUN_FLAG != 0 && p.flags & (IORING_SETUP_COOP_TASKRUN | IORING_SETUP_DEFER_TASKRUN) == 0 {
        return Err(EINVAL);
    }
    // Linux: SQ_AFF without SQPOLL, or a CPU that is not online, is -EINVAL.
    if p.flags & IORING_SETUP_SQ_AFF != 0
        && (p.flags & IORING_SETUP_SQPOLL == 0 || p.sq_thread_cpu >= 64 || crate::arch::smp::online_mask() & (1 << p.sq_thread_cpu) == 0)
    {
        return Err(EINVAL);
    }
    // Nonsensical with 128-byte SQEs throughout (Linux too); SQ_REWIND indexes SQEs
    // directly and cannot race a poller.
    if p.flags & IORING_SETUP_SQE128 != 0 && p.flags & IORING_SETUP_SQE_MIXED != 0 {
        return Err(EINVAL);
    }
    if p.flags & IORING_SETUP_SQ_REWIND != 0 && (p.flags & IORING_SETUP_SQPOLL != 0 || p.flags & IORING_SETUP_NO_SQARRAY == 0) {
        return Err(EINVAL);
    }
    p.sq_entries = entries;
    let (sq_entries, cq_entries) = ring_sizes(&p)?;
    // NO_MMAP: the rings in the program's memory at cq_off.user_addr, the SQEs at
    // sq_off.user_addr (both given back as they came).
    let user_mem = (p.flags & IORING_SETUP_NO_MMAP != 0).then_some((p.cq_off.user_addr, p.sq_off.user_addr));
    // SQPOLL: a poller of its own, or with ATTACH_WQ wq_fd's (one of another process
    // cannot be shared: then its own); without SQPOLL, wq_fd is only checked.
    let (sqpoll, attached) = match (p.flags & IORING_SETUP_SQPOLL != 0, p.flags & IORING_SETUP_ATTACH_WQ != 0) {
        (true, true) => match sqpoll::shared(p.wq_fd, p.sq_thread_idle) {
            Ok(sq) => (Some(sq), true),
            Err(e) if e == EPERM => (Some(Arc::new(sqpoll::SqPoll::new(p.sq_thread_idle))), false),
            Err(e) => return Err(e),
        },
        (true, false) => (Some(Arc::new(sqpoll::SqPoll::new(p.sq_thread_idle))), false),
        (false, true) => {
            sqpoll::other_ring(p.wq_fd)?;
            (None, false)
        }
        (false, false) => (None, false),
    };
    let rings = Arc::new(Rings::new(sq_entries, cq_entries, p.flags, user_mem)?);
    p.sq_entries = sq_entries;
    p.cq_entries = cq_entries;
    p.features = FEATURES;
    p.sq_off = SqringOffsets { user_addr: user_mem.map_or(0, |m| m.1), ..rings.sq_offsets() };
    p.cq_off = CqringOffsets { user_addr: user_mem.map_or(0, |m| m.0), ..rings.cq_offsets() };
    // A disabled ring gets its single issuer when it is enabled.
    let single_issuer = p.flags & IORING_SETUP_SINGLE_ISSUER != 0 && p.flags & (IORING_SETUP_SQPOLL | IORING_SETUP_R_DISABLED) == 0;
    let ring = Arc::new_cyclic(|me| IoUring {
        me: me.clone(),
        completed: AtomicU64::new(0),
        deferred_count: AtomicUsize::new(0),
        cache: SpinLock::new(Vec::with_capacity(REQUEST_CACHE)),
        ino: alloc_ino(),
        rings: SpinLock::new(Arc::clone(&rings)),
        setup_flags: p.flags,
        account_mem: !crate::task::cred::capable(crate::task::cred::CAP_IPC_LOCK),
        submit: Mutex::new(Submit { rings: Arc::clone(&rings), head: 0, seq: 0, drain_next: false, drain_disabled: false, chain: Vec::new() }),
        state: SpinLock::new(State {
            overflow: VecDeque::new(),
            deferred: VecDeque::new(),
            local_work: VecDeque::new(),
            batching: false,
            wake_pending: false,
            eventfd_pending: 0,
            rings: Arc::clone(&rings),
        }),
        cq_wait: WaitQueue::new(),
        rsrc: SpinLock::new(rsrc::Resources::default()),
        eventfd: SpinLock::new(None),
        eventfd_mode: AtomicU8::new(0),
        timeouts: SpinLock::new(timeout::Timeouts::default()),
        kbufs: SpinLock::new(kbuf::Groups::default()),
        parked: SpinLock::new(cancel::ParkedSet::default()),
        sqpoll: sqpoll.clone(),
        tctxs: SpinLock::new(Vec::new()),
        issuer: AtomicU32::new(if single_issuer { crate::task::sched::current().tid } else { 0 }),
        dead: AtomicBool::new(false),
        disabled: AtomicBool::new(p.flags & IORING_SETUP_R_DISABLED != 0),
        restrictions: SpinLock::new(None),
        personalities: SpinLock::new(register::Personalities::default()),
        clock: AtomicU32::new(1),
        iopoll: SpinLock::new(iopoll::Iopoll::default()),
        param_region: SpinLock::new(None),
    });
    match &ring.sqpoll {
        Some(sq) if attached => sqpoll::attach(&ring, sq),
        Some(sq) => sqpoll::start(&ring, sq, (p.flags & IORING_SETUP_SQ_AFF != 0).then_some(p.sq_thread_cpu))?,
        // The creator's context exists from now on (Linux: __io_uring_add_tctx_node at
        // creation), so its io-wq can be configured before the first submission.
        None => drop(tctx::current(&ring)?),
    }
    task::write_user(params_addr, &p)?;
    let file = OpenFile::new(ring, crate::fs::file::O_RDWR, String::from("anon_inode:[io_uring]"));
    if p.flags & IORING_SETUP_REGISTERED_FD_ONLY != 0 {
        return tctx::register_new(file);
    }
    task::current_process().files.lock().insert(file, true).map(|fd| fd as u64)
}

/// SINGLE_ISSUER: only the ring's issuer may submit or register (-EEXIST for task `tid`).
fn check_issuer(ring: &IoUring, tid: u32) -> KResult<()> {
    let issuer = ring.issuer.load(Relaxed);
    if issuer != 0 && issuer != tid {
        return Err(EEXIST);
    }
    Ok(())
}

/// `io_uring_enter(fd, to_submit, min_complete, flags, argp, argsz)`.
pub fn enter(fd: i32, to_submit: u32, min_complete: u32, flags: u32, argp: u64, argsz: u64) -> KResult<u64> {
    if flags & !ENTER_FLAGS != 0 {
        return Err(EINVAL);
    }
    let (_file, ring) = if flags & IORING_ENTER_REGISTERED_RING != 0 { tctx::registered_ring(fd)? } else { ring_of(fd)? };
    if ring.disabled.load(Relaxed) {
        return Err(EBADFD);
    }
    if ktrace::on() {
        ktrace::emit(Kind::CqHead, ring.trace_id(), u64::from(ring.rings().cq_indices().0), 0, 0);
    }
    let me = crate::task::sched::current();
    let mut submitted = 0;
    match &ring.sqpoll {
        // The poller submits; enter only wakes it (and reports to_submit, as Linux).
        Some(sq) => {
            if flags & IORING_ENTER_SQ_WAKEUP != 0 {
                sqpoll::wake(sq);
            }
            if flags & IORING_ENTER_SQ_WAIT != 0 {
                sqpoll::wait_for_room(&ring, sq)?;
            }
            submitted = to_submit;
        }
        None if to_submit > 0 => {
            check_issuer(&ring, me.tid)?;
            submitted = ring.submit(to_submit, &me)?;
        }
        None => {}
    }
    if me.task_work_pending() {
        crate::task::run_task_work(&me);
    }
    // DEFER_TASKRUN: the issuer runs the ring's work only when it asks for completions;
    // no other task may wait on such a ring (Linux: -EEXIST).
    let local = ring.flag(IORING_SETUP_DEFER_TASKRUN) && flags & IORING_ENTER_GETEVENTS != 0;
    if local {
        check_issuer(&ring, me.tid)?;
    }
    if local {
        ring.run_local_work();
    }
    ring.flush_overflow();
    // Linux waits only when every SQE asked for was submitted.
    // IOPOLL: GETEVENTS reaps what is done even when it waits for nothing.
    // (With SQPOLL the poller reaps, and enter waits for CQEs as on any ring.)
    let syscall_iopoll = ring.flag(IORING_SETUP_IOPOLL) && ring.sqpoll.is_none();
    if flags & IORING_ENTER_GETEVENTS != 0 && min_complete == 0 && syscall_iopoll {
        iopoll::reap(&ring);
    }
    if flags & IORING_ENTER_GETEVENTS == 0 || submitted != to_submit {
        return Ok(u64::from(submitted));
    }
    // The wait's arguments are read only now (Linux's io_get_ext_arg, after submission):
    // their errors are enter's result only when nothing was submitted.
    let waited = wait_arg(&ring, flags, argp, argsz, syscall_iopoll).and_then(|wait| {
        if min_complete == 0 {
            return Ok(());
        }
        // The sigmask is checked only when there is something to wait for (Linux's
        // io_cqring_wait returns before set_user_sigmask when enough CQEs are there).
        // (An IOPOLL wait honours the old form's sigset_t.)
        let mut sigmask = None;
        if wait.sigmask != 0 && (syscall_iopoll || ring.rings().cq_ready() < min_complete) {
            if wait.sigmask_sz != 8 {
                return Err(EINVAL);
            }
            sigmask = Some(task::read_user::<u64>(wait.sigmask)?);
        }
        let now = crate::time::monotonic_ns();
        let deadline = wait.ts.and_then(|ts| deadline_of(ts, flags & IORING_ENTER_ABS_TIMER != 0, now));
        let min_wait = (wait.min_wait_usec != 0).then(|| now.saturating_add(u64::from(wait.min_wait_usec) * 1000));
        crate::task::signal::with_sigmask(sigmask, || {
            if syscall_iopoll {
                return iopoll::wait(&ring, min_complete);
            }
            ring.wait_cqes(min_complete, deadline, min_wait, local)
        })
    });
    match waited {
        Err(e) if submitted == 0 => Err(e),
        _ => Ok(u64::from(submitted)),
    }
}

/// The deadline (monotonic ns) of a wait's timeout `[sec, nsec]`, unchecked as Linux's
/// ktime_set: seconds past ktime's range mean no deadline, and a time before the clock's
/// start (a negative one) has passed already.
fn deadline_of([sec, nsec]: [i64; 2], abs: bool, now: u64) -> Option<u64> {
    const KTIME_SEC_MAX: i64 = i64::MAX / 1_000_000_000;
    if sec >= KTIME_SEC_MAX {
        return None;
    }
    let ns = sec.wrapping_mul(1_000_000_000).wrapping_add(nsec);
    let at = if abs { ns } else { ns.wrapping_add(now as i64) };
    Some(at.max(0) as u64)
}

/// The wait's arguments: EXT_ARG's structure (or, with EXT_ARG_REG, the wait region's
/// entry), else the old form's sigset_t at `argp`. IOPOLL waits take no timeout: there
/// EXT_ARG is only checked (Linux's io_validate_ext_arg; EXT_ARG_REG is EINVAL).
fn wait_arg(ring: &IoUring, flags: u32, argp: u64, argsz: u64, iopoll: bool) -> KResult<WaitArg> {
    if flags & IORING_ENTER_EXT_ARG == 0 {
        return Ok(WaitArg { ts: None, min_wait_usec: 0, sigmask: argp, sigmask_sz: argsz });
    }
    if iopoll {
        if flags & IORING_ENTER_EXT_ARG_REG != 0 {
            return Err(EINVAL);
        }
        ext_arg(argp, argsz)?;
        return Ok(WaitArg { ts: None, min_wait_usec: 0, sigmask: 0, sigmask_sz: 0 });
    }
    if flags & IORING_ENTER_EXT_ARG_REG != 0 { reg_wait_arg(ring, argp, argsz) } else { ext_arg(argp, argsz) }
}

/// A wait's arguments, from either form of IORING_ENTER_EXT_ARG.
struct WaitArg {
    /// The timeout (seconds, nanoseconds), if any.
    ts: Option<[i64; 2]>,
    min_wait_usec: u32,
    sigmask: u64,
    sigmask_sz: u64,
}

/// EXT_ARG: `argp` points at a `struct io_uring_getevents_arg` of `argsz` bytes.
fn ext_arg(argp: u64, argsz: u64) -> KResult<WaitArg> {
    if argsz != size_of::<GeteventsArg>() as u64 {
        return Err(EINVAL);
    }
    if argp == 0 {
        return Err(EFAULT);
    }
    let arg: GeteventsArg = task::read_user(argp)?;
    let ts = if arg.ts != 0 { Some(task::read_user::<[i64; 2]>(arg.ts)?) } else { None };
    Ok(WaitArg { ts, min_wait_usec: arg.min_wait_usec, sigmask: arg.sigmask, sigmask_sz: u64::from(arg.sigmask_sz) })
}

/// EXT_ARG | EXT_ARG_REG: `argp` is the byte offset of a `struct io_uring_reg_wait` in the
/// ring's wait region (Linux's io_get_ext_arg_reg): 8-aligned and wholly inside, else
/// EFAULT (also when there is no wait region). The entry is read once.
fn reg_wait_arg(ring: &IoUring, argp: u64, argsz: u64) -> KResult<WaitArg> {
    if argsz != REG_WAIT_SIZE {
        return Err(EINVAL);
    }
    let region = match ring.param_region.lock().as_ref() {
        Some((r, true)) => Some(Arc::clone(r)),
        _ => None,
    };
    let size = region.as_ref().map_or(0, |r| r.size as u64);
    if !argp.is_multiple_of(8) || argp.checked_add(REG_WAIT_SIZE).is_none_or(|end| end > size) {
        return Err(EFAULT);
    }
    let Some(region) = region else { return Err(EFAULT) };
    let w: RegWait = region.read(argp as usize);
    if w.flags & !IORING_REG_WAIT_TS != 0 {
        return Err(EINVAL);
    }
    let ts = if w.flags & IORING_REG_WAIT_TS != 0 { Some(w.ts) } else { None };
    Ok(WaitArg { ts, min_wait_usec: w.min_wait_usec, sigmask: w.sigmask, sigmask_sz: u64::from(w.sigmask_sz) })
}

pub use register::register;
