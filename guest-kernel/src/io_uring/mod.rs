//! io_uring: Linux's asynchronous I/O interface, implemented natively.
//!
//! A ring is a file (`io_uring_setup` returns its fd). User space writes SQEs and pushes
//! their indices on the submission queue; `io_uring_enter` makes the kernel consume them,
//! and completions come back as CQEs on the completion queue (see `ring` for the memory
//! layout and ordering rules). Per request:
//! 1. **prep** (submission, in the submitter's context): the SQE is copied once, checked,
//!    and turned into a [`Request`] the kernel owns (`opdef` maps each opcode to its prep
//!    and issue functions; one file per opcode family: `nop`, `rw`, `fsync`).
//! 2. **issue**: the operation runs. It finishes inline when the file cannot block, or is
//!    parked on the file's wait queue when it would (a pipe with no data), to be retried
//!    when the file wakes it: it then completes from whoever woke it.
//! 3. **complete**: the CQE is posted (or kept on the overflow list while the CQ is full:
//!    FEAT_NODROP), waiters and a registered eventfd are woken, and a linked request
//!    starts (or is cancelled, when this one failed).
//!
//! IOSQE_IO_DRAIN holds a request (and everything after it) until all earlier ones are
//! done.

pub mod opdef;
pub mod uapi;

mod advise;
mod cancel;
mod fs;
mod fsync;
mod nop;
mod poll;
mod register;
mod ring;
mod rsrc;
mod rw;
mod sqpoll;
mod timeout;

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::sync::{Arc, Weak};
use core::any::Any;
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use crate::errno::*;
use crate::fs::eventfd::EventFd;
use crate::fs::{alloc_ino, FileType, Node, OpenFile, Stat};
use crate::mm::user::SharedPages;
use crate::sync::SpinLock;
use crate::task::wait::{WaitError, WaitQueue};
use crate::task::{self, Mm};
use ring::Rings;
use uapi::*;

/// A request the kernel owns, from prep to completion.
pub struct Request {
    pub user_data: u64,
    pub opcode: u8,
    pub flags: u8,
    /// The SQE's fd (or fixed-file index), looked up at issue into `file`.
    pub fd: i32,
    pub file: Option<Arc<OpenFile>>,
    pub op: Op,
    /// The result that counts as success for a link (a full read or write); None: any
    /// non-negative result.
    pub expected: Option<i32>,
    /// The next request of a link chain, started when this one completes.
    pub link: Option<Box<Request>>,
    /// The submitter's address space (buffers are in it).
    pub mm: Option<Mm>,
}

/// What prep decoded, per opcode family.
pub enum Op {
    Nop,
    Rw(rw::Rw),
    /// fsync and fdatasync do the same here: devices flush everything.
    Fsync,
    Fs(fs::FsOp),
    Fadvise { advice: u32 },
    Madvise { addr: u64, len: u64, advice: u32 },
    /// Absolute monotonic deadline, and completions that fire it early (0: none).
    Timeout { deadline: u64, count: u32 },
    TimeoutRemove { target: u64 },
    Poll { events: u32, multishot: bool },
    PollRemove { target: u64 },
    Cancel { target: u64 },
    /// A link member whose prep failed: it completes with this error.
    Failed(Errno),
}

/// The outcome of issuing: done with a result, or parked (it completes later).
pub type Issued = Option<(Box<Request>, i32)>;

struct State {
    /// CQEs that did not fit in the CQ ring, in order.
    overflow: VecDeque<Cqe>,
    /// Requests held back by IOSQE_IO_DRAIN, in submission order.
    deferred: VecDeque<Box<Request>>,
    /// Requests ready to issue from the submitter's context (the next of a link whose
    /// previous member completed from an interrupt, or drained ones whose turn came).
    task_work: VecDeque<Box<Request>>,
    /// Inside a submission batch: wakeups wait for its end, one for the whole batch.
    batching: bool,
    wake_pending: bool,
    /// CQEs posted since the registered eventfd was last signalled.
    eventfd_pending: u64,
}

/// Most CQEs kept on the overflow list (beyond, they are dropped and counted in
/// `cq_overflow`), so a program that never reaps cannot exhaust kernel memory.
const MAX_OVERFLOW: usize = 65536;

/// Finished requests kept for reuse, so the hot path does not allocate.
const REQUEST_CACHE: usize = 64;

pub struct IoUring {
    me: Weak<IoUring>,
    /// Requests submitted and not yet completed (for IOSQE_IO_DRAIN).
    inflight: AtomicUsize,
    /// Requests held back in `State::deferred` (checked without the lock on the hot path).
    deferred_count: AtomicUsize,
    #[allow(clippy::vec_box)] // the boxes themselves are what is reused
    cache: SpinLock<alloc::vec::Vec<Box<Request>>>,
    ino: u64,
    pub rings: Rings,
    setup_flags: u32,
    state: SpinLock<State>,
    cq_wait: WaitQueue,
    pub rsrc: SpinLock<rsrc::Resources>,
    /// Registered eventfd, and whether it is signalled only for completions that did not
    /// happen inline (EVENTFD_ASYNC).
    eventfd: SpinLock<Option<(Arc<EventFd>, bool)>>,
    /// 0: no eventfd; 1: every completion; 2: completions that did not happen inline.
    eventfd_mode: core::sync::atomic::AtomicU8,
    pub timeouts: SpinLock<timeout::Timeouts>,
    /// Requests parked on a file's wait queue (polls, reads and writes that would
    /// block), by user_data: what IORING_OP_ASYNC_CANCEL and POLL_REMOVE can reach.
    pub parked: SpinLock<alloc::vec::Vec<cancel::Parked>>,
    /// The SQ poller's state, with IORING_SETUP_SQPOLL.
    pub sqpoll: Option<Arc<sqpoll::SqPoll>>,
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

    /// Posts a CQE (to the overflow list if the CQ is full or already overflowing) and
    /// wakes waiters, or leaves that to the end of the current submission batch.
    fn post(&self, cqe: Cqe, inline: bool) {
        let wake_now = {
            let mut st = self.state.lock();
            if !st.overflow.is_empty() || !self.rings.push_cqe(&cqe) {
                if st.overflow.len() < MAX_OVERFLOW {
                    st.overflow.push_back(cqe);
                } else {
                    // Kept back as far as memory allows, then counted, as Linux does.
                    self.rings.add_overflow();
                }
                self.rings.set_sq_flag(IORING_SQ_CQ_OVERFLOW, true);
            }
            match self.eventfd_mode.load(Relaxed) {
                1 => st.eventfd_pending += 1,
                2 if !inline => st.eventfd_pending += 1,
                _ => {}
            }
            st.wake_pending = true;
            !st.batching
        };
        if wake_now {
            self.wake();
        }
    }

    /// Posts a CQE for a request that goes on (a multishot poll): IORING_CQE_F_MORE.
    pub fn post_more(self: &Arc<Self>, user_data: u64, res: i32) {
        self.post(Cqe { user_data, res, flags: uapi::IORING_CQE_F_MORE }, false);
        timeout::count_completion(self);
    }

    /// Wakes CQ waiters and signals the eventfd for what was posted.
    fn wake(&self) {
        let signals = {
            let mut st = self.state.lock();
            if !st.wake_pending {
                return;
            }
            st.wake_pending = false;
            core::mem::take(&mut st.eventfd_pending)
        };
        self.cq_wait.wake_all();
        if signals > 0 {
            // A statement of its own, so the lock ends before signalling: the eventfd's
            // wakeup may complete a parked request of this very ring.
            let efd = self.eventfd.lock().clone();
            if let Some((efd, _)) = efd {
                efd.signal(signals);
            }
        }
    }

    /// Moves overflowed CQEs into the CQ ring as room allows.
    fn flush_overflow(&self) {
        let mut st = self.state.lock();
        if st.overflow.is_empty() {
            return; // and IORING_SQ_CQ_OVERFLOW is clear: it is set only with a backlog
        }
        while let Some(cqe) = st.overflow.front() {
            if !self.rings.push_cqe(cqe) {
                return;
            }
            st.overflow.pop_front();
        }
        self.rings.set_sq_flag(IORING_SQ_CQ_OVERFLOW, false);
    }

    /// Runs `req` and, when it finishes inline, completes it (and its link chain).
    fn issue(self: &Arc<Self>, req: Box<Request>) {
        let mut next = Some(req);
        while let Some(mut req) = next.take() {
            if let Err(e) = opdef::resolve_file(self, &mut req) {
                next = self.finish(req, -e.0, true);
                continue;
            }
            let issue = opdef::OPS[req.opcode as usize].issue;
            if let Some((req, res)) = issue(self, req) {
                next = self.finish(req, res, true);
            }
        }
    }

    /// Completes a request that was parked or sent to a device (called from whoever woke
    /// it, or from the interrupt handler). What comes next in its chain is issued later
    /// from the submitter's context, where issuing may sleep.
    pub fn complete_async(self: &Arc<Self>, req: Box<Request>, res: i32) {
        if let Some(next) = self.finish(req, res, false) {
            self.state.lock().task_work.push_back(next);
            self.cq_wait.wake_all();
        }
    }

    /// Issues the requests queued for the submitter's context.
    fn run_task_work(self: &Arc<Self>) {
        loop {
            let Some(req) = self.state.lock().task_work.pop_front() else { return };
            self.issue(req);
        }
    }

    /// A request box, reused if one is cached.
    pub fn new_request(&self, req: Request) -> Box<Request> {
        match self.cache.lock().pop() {
            Some(mut b) => {
                *b = req;
                b
            }
            None => Box::new(req),
        }
    }

    /// Keeps a finished request's box for reuse (dropping what it holds).
    fn recycle(&self, mut req: Box<Request>) {
        req.file = None;
        req.mm = None;
        req.op = Op::Nop;
        let mut cache = self.cache.lock();
        if cache.len() < REQUEST_CACHE {
            cache.push(req);
        }
    }

    /// Posts `req`'s CQE and returns the next request of its chain to run, if any.
    fn finish(self: &Arc<Self>, mut req: Box<Request>, res: i32, inline: bool) -> Option<Box<Request>> {
        if !(req.flags & IOSQE_CQE_SKIP_SUCCESS != 0 && res >= 0) {
            self.post(Cqe { user_data: req.user_data, res, flags: 0 }, inline);
            if req.opcode != timeout::IORING_OP_TIMEOUT {
                timeout::count_completion(self);
            }
        }
        self.inflight.fetch_sub(1, Relaxed);
        let mut next = req.link.take();
        let failed = res < 0 || req.expected.is_some_and(|e| e != res);
        let hard = req.flags & IOSQE_IO_HARDLINK != 0;
        self.recycle(req);
        if failed && !hard {
            // A failed link cancels the rest of its chain.
            self.fail_chain(next.take(), inline);
        }
        self.run_deferred();
        next
    }

    /// Completes a chain without running it: a member whose prep failed reports its
    /// error, the others -ECANCELED.
    fn fail_chain(&self, mut next: Option<Box<Request>>, inline: bool) {
        while let Some(mut r) = next {
            next = r.link.take();
            let res = match r.op {
                Op::Failed(e) => -e.0,
                _ => -ECANCELED.0,
            };
            self.post(Cqe { user_data: r.user_data, res, flags: 0 }, inline);
            self.inflight.fetch_sub(1, Relaxed);
            self.recycle(r);
        }
    }

    /// Queues a submitted request: held back by a drain, or issued now.
    fn queue(self: &Arc<Self>, req: Box<Request>) {
        if req.flags & IOSQE_IO_DRAIN != 0 || self.deferred_count.load(Relaxed) != 0 {
            self.deferred_count.fetch_add(1, Relaxed);
            self.state.lock().deferred.push_back(req);
            self.run_deferred();
            self.run_task_work();
            return;
        }
        self.issue(req);
    }

    /// Releases held-back requests once everything submitted before them has completed
    /// (they are issued from the submitter's context: see `run_task_work`).
    fn run_deferred(&self) {
        if self.deferred_count.load(Relaxed) == 0 {
            return;
        }
        let mut st = self.state.lock();
        let chain_len = |r: &Request| {
            let mut n = 1;
            let mut l = r.link.as_deref();
            while let Some(x) = l {
                n += 1;
                l = x.link.as_deref();
            }
            n
        };
        let held: usize = st.deferred.iter().map(|r| chain_len(r)).sum::<usize>()
            + st.task_work.iter().map(|r| chain_len(r)).sum::<usize>();
        if st.deferred.is_empty() || self.inflight.load(Relaxed) > held {
            return;
        }
        // Everything earlier is done: release the front drain request and whatever
        // follows it up to the next drain request (which waits for those in turn).
        let mut first = true;
        while let Some(front) = st.deferred.front() {
            if !first && front.flags & IOSQE_IO_DRAIN != 0 {
                break;
            }
            let req = st.deferred.pop_front().expect("front exists");
            self.deferred_count.fetch_sub(1, Relaxed);
            let drain = req.flags & IOSQE_IO_DRAIN != 0;
            st.task_work.push_back(req);
            first = false;
            if drain {
                break;
            }
        }
        drop(st);
        self.cq_wait.wake_all();
    }

    /// SQEs user space has published and the kernel not yet consumed.
    fn sq_pending(&self) -> u32 {
        self.rings.sq_tail().wrapping_sub(self.rings.sq_head()).min(self.rings.sq_entries)
    }

    /// Consumes up to `to_submit` SQEs; returns how many were consumed.
    fn submit(self: &Arc<Self>, to_submit: u32) -> u32 {
        self.state.lock().batching = true;
        let submitted = self.submit_batch(to_submit);
        self.state.lock().batching = false;
        self.wake();
        submitted
    }

    fn submit_batch(self: &Arc<Self>, to_submit: u32) -> u32 {
        let rings = &self.rings;
        // Looked up once per batch: every request of it is the same process's.
        let mm = task::current_process().mm();
        let mut head = rings.sq_head();
        let available = rings.sq_tail().wrapping_sub(head).min(rings.sq_entries);
        let mut submitted = 0;
        // The link chain being built: its head, and whether it already failed.
        let mut chain: Option<(Box<Request>, bool)> = None;
        for _ in 0..to_submit.min(available) {
            let index = rings.sq_array(head);
            head = head.wrapping_add(1);
            if index >= rings.sq_entries {
                rings.add_dropped();
                continue;
            }
            let sqe = rings.read_sqe(index);
            submitted += 1;
            self.inflight.fetch_add(1, Relaxed);
            let linked = sqe.flags & (IOSQE_IO_LINK | IOSQE_IO_HARDLINK) != 0;
            let (req, failed) = match opdef::prep(self, &sqe, &mm) {
                Ok(req) => (req, false),
                Err(e) => (opdef::failed(&sqe, e), true),
            };
            // As Linux: a member that fails prep does not break up its link; the chain is
            // assembled to its end and then fails as a whole. Submission stops after a
            // failed SQE that ends a chain (or stands alone), unless SUBMIT_ALL.
            match chain.take() {
                Some((mut head_req, chain_failed)) => {
                    append(&mut head_req, req);
                    if linked {
                        chain = Some((head_req, chain_failed || failed));
                    } else {
                        self.queue_chain(head_req, chain_failed || failed);
                    }
                }
                None if linked => chain = Some((req, failed)),
                None => self.queue_chain(req, failed),
            }
            if failed && !linked && self.setup_flags & IORING_SETUP_SUBMIT_ALL == 0 {
                break;
            }
        }
        if let Some((head_req, failed)) = chain {
            self.queue_chain(head_req, failed);
        }
        rings.set_sq_head(head);
        submitted
    }

    /// Queues a whole chain; a chain with a member whose prep failed is not run, as in
    /// Linux (see `fail_chain`).
    fn queue_chain(self: &Arc<Self>, head: Box<Request>, failed: bool) {
        if !failed {
            return self.queue(head);
        }
        self.fail_chain(Some(head), true);
        self.run_deferred();
    }

    /// Waits until `min` CQEs are ready, a signal arrives, or `deadline` passes.
    fn wait_cqes(self: &Arc<Self>, min: u32, deadline: Option<u64>) -> KResult<()> {
        let min = min.min(self.rings.cq_entries);
        loop {
            self.run_task_work();
            let result = self.cq_wait.wait_until(deadline, || {
                self.flush_overflow();
                self.rings.cq_ready() >= min || !self.state.lock().task_work.is_empty()
            });
            match result {
                Ok(()) if self.rings.cq_ready() >= min => return Ok(()),
                Ok(()) => continue,
                Err(WaitError::Interrupted) => return Err(EINTR),
                // Linux reports ETIME only when nothing at all is ready.
                Err(WaitError::TimedOut) if self.rings.cq_ready() > 0 => return Ok(()),
                Err(WaitError::TimedOut) => return Err(ETIME),
            }
        }
    }
}

fn append(chain: &mut Box<Request>, req: Box<Request>) {
    let mut at = chain;
    while at.link.is_some() {
        at = at.link.as_mut().expect("checked");
    }
    at.link = Some(req);
}

impl Node for IoUring {
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
        let (pages, size) = match offset {
            IORING_OFF_SQ_RING | IORING_OFF_CQ_RING => (&self.rings.ring_pages, self.rings.ring_bytes),
            IORING_OFF_SQES => (&self.rings.sqe_pages, self.rings.sqe_bytes),
            _ => return Err(EINVAL),
        };
        if len > (size as u64).next_multiple_of(4096) {
            return Err(EINVAL);
        }
        Ok((Arc::clone(pages), 0))
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

const SUPPORTED_SETUP: u32 = IORING_SETUP_SQPOLL
    | IORING_SETUP_SQ_AFF
    | IORING_SETUP_CQSIZE
    | IORING_SETUP_CLAMP
    | IORING_SETUP_SUBMIT_ALL
    | IORING_SETUP_COOP_TASKRUN
    | IORING_SETUP_TASKRUN_FLAG
    | IORING_SETUP_SINGLE_ISSUER
    | IORING_SETUP_DEFER_TASKRUN;

/// Features advertised: exactly what this implementation honours.
pub const FEATURES: u32 = IORING_FEAT_SINGLE_MMAP
    | IORING_FEAT_NODROP
    | IORING_FEAT_SUBMIT_STABLE
    | IORING_FEAT_RW_CUR_POS
    | IORING_FEAT_EXT_ARG
    | IORING_FEAT_CQE_SKIP
    | IORING_FEAT_LINKED_FILE
    | IORING_FEAT_SQPOLL_NONFIXED;

/// `io_uring_setup(entries, params)`.
pub fn setup(entries: u32, params_addr: u64) -> KResult<u64> {
    let mut p: Params = task::read_user(params_addr)?;
    if p.resv.iter().any(|&r| r != 0) {
        return Err(EINVAL);
    }
    if p.flags & !SUPPORTED_SETUP != 0 {
        return Err(EINVAL);
    }
    if p.flags & IORING_SETUP_DEFER_TASKRUN != 0 && p.flags & IORING_SETUP_SINGLE_ISSUER == 0 {
        return Err(EINVAL);
    }
    // One CPU here: CPU 0 is the only one an SQ poller can be bound to.
    if p.flags & IORING_SETUP_SQ_AFF != 0 && (p.flags & IORING_SETUP_SQPOLL == 0 || p.sq_thread_cpu != 0) {
        return Err(EINVAL);
    }
    if p.flags & IORING_SETUP_SQPOLL != 0 && p.flags & IORING_SETUP_DEFER_TASKRUN != 0 {
        return Err(EINVAL);
    }
    let clamp = p.flags & IORING_SETUP_CLAMP != 0;
    if entries == 0 || (entries > IORING_MAX_ENTRIES && !clamp) {
        return Err(EINVAL);
    }
    let sq_entries = entries.min(IORING_MAX_ENTRIES).next_power_of_two();
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
    let rings = Rings::new(sq_entries, cq_entries)?;
    p.sq_entries = sq_entries;
    p.cq_entries = cq_entries;
    p.features = FEATURES;
    p.sq_off = rings.sq_offsets();
    p.cq_off = rings.cq_offsets();
    let ring = Arc::new_cyclic(|me| IoUring {
        me: me.clone(),
        inflight: AtomicUsize::new(0),
        deferred_count: AtomicUsize::new(0),
        cache: SpinLock::new(alloc::vec::Vec::with_capacity(REQUEST_CACHE)),
        ino: alloc_ino(),
        rings,
        setup_flags: p.flags,
        state: SpinLock::new(State {
            overflow: VecDeque::new(),
            deferred: VecDeque::new(),
            task_work: VecDeque::new(),
            batching: false,
            wake_pending: false,
            eventfd_pending: 0,
        }),
        cq_wait: WaitQueue::new(),
        rsrc: SpinLock::new(rsrc::Resources::default()),
        eventfd: SpinLock::new(None),
        eventfd_mode: core::sync::atomic::AtomicU8::new(0),
        timeouts: SpinLock::new(timeout::Timeouts::default()),
        parked: SpinLock::new(alloc::vec::Vec::new()),
        sqpoll: (p.flags & IORING_SETUP_SQPOLL != 0).then(|| Arc::new(sqpoll::SqPoll::new(p.sq_thread_idle))),
    });
    if let Some(sq) = &ring.sqpoll {
        sqpoll::start(&ring, sq)?;
    }
    task::write_user(params_addr, &p)?;
    let file = OpenFile::new(ring, crate::fs::file::O_RDWR, String::from("anon_inode:[io_uring]"));
    task::current_process().files.lock().insert(file, true).map(|fd| fd as u64)
}

/// `io_uring_enter(fd, to_submit, min_complete, flags, argp, argsz)`.
pub fn enter(fd: i32, to_submit: u32, min_complete: u32, flags: u32, argp: u64, argsz: u64) -> KResult<u64> {
    let known = IORING_ENTER_GETEVENTS | IORING_ENTER_SQ_WAKEUP | IORING_ENTER_SQ_WAIT | IORING_ENTER_EXT_ARG;
    if flags & !known != 0 {
        return Err(EINVAL);
    }
    let (_file, ring) = ring_of(fd)?;
    let mut deadline = None;
    let mut sigmask = None;
    if flags & IORING_ENTER_EXT_ARG != 0 {
        if argsz != size_of::<GeteventsArg>() as u64 {
            return Err(EINVAL);
        }
        if argp != 0 {
            let arg: GeteventsArg = task::read_user(argp)?;
            if arg.ts != 0 {
                let [sec, nsec]: [u64; 2] = task::read_user(arg.ts)?;
                if (sec as i64) < 0 || nsec >= 1_000_000_000 {
                    return Err(EINVAL);
                }
                deadline = Some(crate::time::monotonic_ns().saturating_add(sec.saturating_mul(1_000_000_000).saturating_add(nsec)));
            }
            if arg.sigmask != 0 {
                if arg.sigmask_sz != 8 {
                    return Err(EINVAL);
                }
                sigmask = Some(task::read_user::<u64>(arg.sigmask)?);
            }
        }
    } else if argp != 0 {
        if argsz != 8 {
            return Err(EINVAL);
        }
        sigmask = Some(task::read_user::<u64>(argp)?);
    }
    let submitted = match &ring.sqpoll {
        // The poller submits; enter only wakes it (and reports to_submit, as Linux).
        Some(sq) => {
            if flags & IORING_ENTER_SQ_WAKEUP != 0 {
                sqpoll::wake(sq);
            }
            to_submit
        }
        None if to_submit > 0 => ring.submit(to_submit),
        None => 0,
    };
    ring.run_task_work();
    ring.flush_overflow();
    if flags & IORING_ENTER_GETEVENTS != 0 && min_complete > 0 {
        let me = crate::task::sched::current();
        let old = me.sigmask.load(core::sync::atomic::Ordering::Relaxed);
        if let Some(mask) = sigmask {
            me.sigmask.store(mask & !crate::task::signal::UNBLOCKABLE, core::sync::atomic::Ordering::Relaxed);
        }
        let waited = ring.wait_cqes(min_complete, deadline);
        me.sigmask.store(old, core::sync::atomic::Ordering::Relaxed);
        if let Err(e) = waited
            && submitted == 0 {
                return Err(e);
            }
    }
    Ok(u64::from(submitted))
}

pub use register::register;
