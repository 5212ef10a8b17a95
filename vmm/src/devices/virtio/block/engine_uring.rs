//! The io_uring engine: the host's io_uring, the third ring of the design (the guest
//! program's io_uring, the virtqueue, then this one).
//!
//! Each activated device gets its own ring ([`UringQueue`], through
//! [`BlockBackend::async_queue`]) with an eventfd registered on it. The device pushes one
//! READV, WRITEV or FSYNC(DATASYNC) per virtio request, with iovecs that point straight
//! into guest memory (got through vm-memory's checked slices), and the worker submits
//! them in a batch once it has drained the avail ring: a guest with 32 requests in flight
//! has 32 on the host. The worker polls the eventfd with the queue's ioeventfd; each CQE
//! finishes its request (status byte, used entry, interrupt), in completion order.
//!
//! The guarantees of the synchronous engine hold: a FLUSH is an IO_DRAIN fdatasync (it
//! starts after every op submitted before it completed, and later ops start after it),
//! and completes only when fdatasync returned; a short transfer is continued and a read
//! that meets the end of the file is an error, as `read_exact_at`/`write_all_at` do;
//! EINTR, EAGAIN and EBUSY are retried, [`MAX_RETRIES`] times in a row at most, with a
//! growing pause (see [`backoff`]), then the op fails with that error (the guest sees
//! IOERR). The blocking [`BlockBackend`] calls stay those of
//! [`SyncEngine`] on the same file.
//!
//! With direct I/O ([`super::direct`]) the ring's ops use the O_DIRECT descriptor, and an
//! op whose guest buffers O_DIRECT cannot take gets an aligned bounce buffer of its own
//! for its lifetime: a write's data is copied into it when pushed, a read's copied out to
//! the guest's buffers when it completes. An op whose range is misaligned (a host that
//! needs more than 512 bytes) uses the buffered descriptor.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use io_uring::register::Restriction;
use io_uring::{opcode, squeue, types, IoUring};
use vmm_sys_util::eventfd::EventFd;

use super::direct::{AlignedBuf, DioAlign, Route};
use super::engine_sync::SyncEngine;
use super::{AsyncDone, AsyncOp, AsyncQueue, BlockBackend};

/// Ops in flight on one ring: the largest queue, so that a full virtqueue is in flight.
pub const RING_ENTRIES: u32 = super::QUEUE_SIZE as u32;

/// Whether this host lets the VMM use io_uring: a small ring can be created and, when the
/// kernel can tell, it has READV, WRITEV and FSYNC. Probed once.
pub fn probe() -> Result<(), String> {
    static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
    PROBE
        .get_or_init(|| {
            let ring = IoUring::new(2).map_err(|e| e.to_string())?;
            let mut probe = io_uring::Probe::new();
            // Before Linux 5.6 there is no probe, and the three opcodes exist since 5.1.
            if ring.submitter().register_probe(&mut probe).is_ok() {
                for (code, name) in
                    [(opcode::Readv::CODE, "READV"), (opcode::Writev::CODE, "WRITEV"), (opcode::Fsync::CODE, "FSYNC")]
                {
                    if !probe.is_supported(code) {
                        return Err(format!("the kernel's io_uring lacks {name}"));
                    }
                }
            }
            Ok(())
        })
        .clone()
}

/// A disk file served through io_uring.
pub struct UringEngine {
    sync: SyncEngine,
    entries: u32,
}

impl UringEngine {
    /// Opens `path` as [`SyncEngine::open`] does; fails when io_uring is unavailable.
    pub fn open(path: &Path, read_only: bool) -> io::Result<Self> {
        Self::open_with(path, read_only, false)
    }

    /// As [`UringEngine::open`]; with O_DIRECT when `direct`.
    pub fn open_with(path: &Path, read_only: bool, direct: bool) -> io::Result<Self> {
        Self::open_aligned(path, read_only, direct.then_some(None))
    }

    /// As [`SyncEngine::open_aligned`].
    pub(crate) fn open_aligned(path: &Path, read_only: bool, direct: Option<Option<DioAlign>>) -> io::Result<Self> {
        probe().map_err(|e| io::Error::other(format!("io_uring unavailable: {e}")))?;
        Ok(Self { sync: SyncEngine::open_aligned(path, read_only, direct)?, entries: RING_ENTRIES })
    }

    /// Rings of `entries` (a power of 2) instead of [`RING_ENTRIES`]: fewer ops in flight.
    pub fn with_ring_entries(mut self, entries: u32) -> Self {
        self.entries = entries;
        self
    }
}

impl BlockBackend for UringEngine {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.sync.read_at(offset, buf)
    }

    fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.sync.write_at(offset, buf)
    }

    fn flush(&self) -> io::Result<()> {
        self.sync.flush()
    }

    fn discard(&self, offset: u64, len: u64) -> io::Result<()> {
        self.sync.discard(offset, len)
    }

    fn size(&self) -> u64 {
        self.sync.size()
    }

    fn async_queue(&self) -> Option<io::Result<Box<dyn AsyncQueue>>> {
        let queue = || -> io::Result<Box<dyn AsyncQueue>> {
            let mut q = UringQueue::new(self.sync.file().try_clone()?, self.entries)?;
            if let Some(d) = self.sync.direct() {
                let buffered = d.buffered.as_ref().map(File::try_clone).transpose()?;
                q.direct = Some(QueueDirect { align: d.align, buffered });
            }
            Ok(Box::new(q))
        };
        Some(queue())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Read,
    Write,
    Flush,
}

/// One op in flight: what is left of it. Its SQE points at `iovecs`, which stays here
/// (not moved: a Vec's buffer) until the op's last CQE.
struct Slot {
    token: u64,
    kind: Kind,
    offset: u64,
    iovecs: Vec<libc::iovec>,
    transferred: u64,
    /// The op goes through the buffered descriptor (direct I/O, misaligned range).
    buffered: bool,
    /// The op's aligned buffer (direct I/O, misaligned buffers), which `iovecs` points
    /// into, and the caller's buffers.
    bounce: Option<(AlignedBuf, Vec<libc::iovec>)>,
    /// Retries in a row (EINTR, EAGAIN, EBUSY) since the op last made progress.
    retries: u32,
}

// SAFETY: the raw pointers in `iovecs` point into guest memory, which every thread of the
// VMM may access (through vm-memory); a slot is only used by the thread owning its queue.
unsafe impl Send for Slot {}

/// What a queue on an O_DIRECT file needs.
struct QueueDirect {
    align: DioAlign,
    /// A duplicate of the buffered descriptor, if the engine has one.
    buffered: Option<File>,
}

/// One io_uring for one device worker.
pub struct UringQueue {
    ring: IoUring,
    /// A duplicate of the disk's descriptor: the ring's ops use it.
    file: File,
    /// Set when `file` has O_DIRECT.
    direct: Option<QueueDirect>,
    /// Registered with the ring: written on every CQE.
    eventfd: EventFd,
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    /// SQEs pushed and not yet handed to the kernel.
    unsubmitted: bool,
    /// Ops that finished without I/O (nothing to transfer), for the next reap.
    pending_done: Vec<AsyncDone>,
}

/// The opcodes the engine submits: all that its rings accept.
pub const ALLOWED_OPS: [u8; 3] = [opcode::Readv::CODE, opcode::Writev::CODE, opcode::Fsync::CODE];

/// A ring that accepts only [`ALLOWED_OPS`], with IO_DRAIN the only SQE flag, and no
/// io_uring_register call once enabled (seccomp cannot see what a ring does): created
/// disabled (IORING_SETUP_R_DISABLED), `eventfd` registered, the restrictions
/// registered, then enabled. An SQE outside the list completes with -EACCES.
pub fn restricted_ring(entries: u32, eventfd: &EventFd) -> io::Result<IoUring> {
    restricted_ring_for(entries, eventfd, &ALLOWED_OPS, squeue::Flags::IO_DRAIN)
}

/// A ring made as [`restricted_ring`] makes the disk's, that accepts only the opcodes
/// `ops` and the SQE flags `flags` (virtio-net's ring has its own list).
pub fn restricted_ring_for(entries: u32, eventfd: &EventFd, ops: &[u8], flags: squeue::Flags) -> io::Result<IoUring> {
    let ring = IoUring::builder().setup_r_disabled().build(entries)?;
    let submitter = ring.submitter();
    submitter.register_eventfd(eventfd.as_raw_fd())?;
    let mut restrictions: Vec<Restriction> = ops.iter().map(|&op| Restriction::sqe_op(op)).collect();
    restrictions.push(Restriction::sqe_flags_allowed(flags.bits()));
    submitter.register_restrictions(&mut restrictions)?;
    submitter.register_enable_rings()?;
    Ok(ring)
}

fn is_retry(errno: i32) -> bool {
    errno == libc::EINTR || errno == libc::EAGAIN || errno == libc::EBUSY
}

/// Retries in a row before an op fails with its EINTR, EAGAIN or EBUSY.
pub const MAX_RETRIES: u32 = 10;

/// The pause before retry `n` (1-based): none for the first two, then 100 us doubling up
/// to 10 ms (about 23 ms in all). The worker thread waits: a host that keeps refusing
/// slows this device down rather than spinning it.
fn backoff(n: u32) -> Duration {
    if n <= 2 {
        return Duration::ZERO;
    }
    Duration::from_micros(100u64 << (n - 3).min(16)).min(Duration::from_millis(10))
}

impl UringQueue {
    /// A ring of `entries` SQEs (and twice as many CQEs, so that the CQ cannot overflow:
    /// each op has at most one SQE in flight).
    pub fn new(file: File, entries: u32) -> io::Result<Self> {
        let eventfd = EventFd::new(libc::EFD_NONBLOCK | libc::EFD_CLOEXEC)?;
        let ring = restricted_ring(entries, &eventfd)?;
        let capacity = ring.params().sq_entries() as usize;
        Ok(Self {
            ring,
            file,
            direct: None,
            eventfd,
            slots: (0..capacity).map(|_| None).collect(),
            free: (0..capacity).rev().collect(),
            unsubmitted: false,
            pending_done: Vec::new(),
        })
    }

    /// Puts slot `index`'s next SQE in the submission queue.
    fn queue_sqe(&mut self, index: usize) -> io::Result<()> {
        let slot = self.slots[index].as_ref().expect("a slot in use");
        let buffered = self.direct.as_ref().and_then(|d| d.buffered.as_ref()).filter(|_| slot.buffered);
        let fd = types::Fd(buffered.unwrap_or(&self.file).as_raw_fd());
        let entry = match slot.kind {
            Kind::Read => opcode::Readv::new(fd, slot.iovecs.as_ptr(), slot.iovecs.len() as u32).offset(slot.offset).build(),
            Kind::Write => opcode::Writev::new(fd, slot.iovecs.as_ptr(), slot.iovecs.len() as u32).offset(slot.offset).build(),
            Kind::Flush => opcode::Fsync::new(fd).flags(types::FsyncFlags::DATASYNC).build().flags(squeue::Flags::IO_DRAIN),
        }
        .user_data(index as u64);
        // SAFETY: the SQE refers to the slot's iovec array, which stays in place until the
        // slot is freed after the op's last CQE (or the ring is drained in Drop), and to
        // buffers that `push`'s caller keeps valid as long; `self.file` outlives the ring's
        // use of it for the same reason.
        unsafe { self.ring.submission().push(&entry) }.map_err(|_| io::Error::other("io_uring submission queue full"))?;
        self.unsubmitted = true;
        Ok(())
    }

    /// Handles one CQE: continues a short transfer or retried op, or finishes the op.
    fn complete(&mut self, index: usize, res: i32, done: &mut Vec<AsyncDone>) -> io::Result<()> {
        let Some(slot) = self.slots.get_mut(index).and_then(Option::as_mut) else {
            log::warn!("io_uring: completion for unknown op {index}");
            return Ok(());
        };
        let result = if res < 0 {
            if is_retry(-res) && slot.retries < MAX_RETRIES {
                slot.retries += 1;
                std::thread::sleep(backoff(slot.retries));
                return self.queue_sqe(index);
            }
            Err(io::Error::from_raw_os_error(-res))
        } else if slot.kind == Kind::Flush {
            Ok(())
        } else {
            slot.retries = 0;
            let n = res as u64;
            slot.transferred += n;
            slot.offset += n;
            advance(&mut slot.iovecs, n as usize);
            if slot.iovecs.is_empty() {
                Ok(())
            } else if n == 0 {
                Err(match slot.kind {
                    Kind::Read => io::Error::new(io::ErrorKind::UnexpectedEof, "failed to fill whole buffer"),
                    _ => io::Error::new(io::ErrorKind::WriteZero, "failed to write whole buffer"),
                })
            } else {
                return self.queue_sqe(index);
            }
        };
        let slot = self.slots[index].take().expect("a slot in use");
        self.free.push(index);
        if let (Kind::Read, Some((bounce, guest))) = (slot.kind, &slot.bounce) {
            // SAFETY: `guest` are the buffers the op was pushed with, valid and writable
            // until it is reaped (push's contract), and disjoint from the bounce buffer.
            unsafe { scatter(&bounce[..slot.transferred as usize], guest) };
        }
        done.push(AsyncDone { token: slot.token, result, transferred: slot.transferred });
        Ok(())
    }
}

/// Copies `from` into the buffers of `iovecs`, in order, until either ends.
///
/// # Safety
///
/// Each iovec must be valid for writes of its length, and not overlap `from`.
unsafe fn scatter(mut from: &[u8], iovecs: &[libc::iovec]) {
    for iov in iovecs {
        let n = iov.iov_len.min(from.len());
        // SAFETY: the caller's promise for `iov`; `from` holds `n` bytes.
        unsafe { std::ptr::copy_nonoverlapping(from.as_ptr(), iov.iov_base.cast::<u8>(), n) };
        from = &from[n..];
    }
}

/// Copies the buffers of `iovecs`, in order, into `to` (as many bytes as it holds).
///
/// # Safety
///
/// Each iovec must be valid for reads of its length, and not overlap `to`.
unsafe fn gather(to: &mut [u8], iovecs: &[libc::iovec]) {
    let mut at = 0;
    for iov in iovecs {
        let n = iov.iov_len.min(to.len() - at);
        // SAFETY: the caller's promise for `iov`; `to` has room for `n` bytes at `at`.
        unsafe { std::ptr::copy_nonoverlapping(iov.iov_base.cast::<u8>(), to[at..].as_mut_ptr(), n) };
        at += n;
    }
}

/// Drops the first `n` bytes of `iovecs` (and the buffers left empty).
fn advance(iovecs: &mut Vec<libc::iovec>, mut n: usize) {
    let mut consumed = 0;
    for iov in iovecs.iter_mut() {
        if n < iov.iov_len {
            iov.iov_base = iov.iov_base.wrapping_byte_add(n);
            iov.iov_len -= n;
            break;
        }
        n -= iov.iov_len;
        consumed += 1;
    }
    iovecs.drain(..consumed);
}

impl AsyncQueue for UringQueue {
    fn capacity(&self) -> usize {
        self.slots.len()
    }

    fn in_flight(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    unsafe fn push(&mut self, token: u64, op: AsyncOp) -> io::Result<()> {
        let index = self.free.pop().ok_or_else(|| io::Error::new(io::ErrorKind::WouldBlock, "io_uring: too many ops in flight"))?;
        let (kind, offset, mut iovecs) = match op {
            AsyncOp::Read { offset, iovecs } => (Kind::Read, offset, iovecs),
            AsyncOp::Write { offset, iovecs } => (Kind::Write, offset, iovecs),
            AsyncOp::Flush => (Kind::Flush, 0, Vec::new()),
        };
        iovecs.retain(|iov| iov.iov_len > 0);
        let (mut buffered, mut bounce) = (false, None);
        if let Some(d) = &self.direct
            && kind != Kind::Flush
            && !iovecs.is_empty()
        {
            let len: usize = iovecs.iter().map(|iov| iov.iov_len).sum();
            let bufs = iovecs.iter().map(|iov| (iov.iov_base as usize, iov.iov_len));
            let route = d.align.route(offset, len as u64, bufs, d.buffered.is_some());
            route.count();
            match route {
                Route::Direct => {}
                Route::Buffered => buffered = true,
                Route::Bounce => {
                    let mut buf = AlignedBuf::new(len, d.align.mem);
                    if kind == Kind::Write {
                        // SAFETY: the caller keeps the iovecs valid for reads until the op
                        // is reaped (this function's contract); `buf` is our own memory.
                        unsafe { gather(&mut buf, &iovecs) };
                    }
                    let inner = vec![libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: len }];
                    bounce = Some((buf, std::mem::replace(&mut iovecs, inner)));
                }
            }
        }
        self.slots[index] = Some(Slot { token, kind, offset, iovecs, transferred: 0, buffered, bounce, retries: 0 });
        if kind != Kind::Flush && self.slots[index].as_ref().is_some_and(|s| s.iovecs.is_empty()) {
            // Nothing to transfer: the op is done now, announced as any other.
            let mut done = Vec::new();
            self.complete(index, 0, &mut done)?;
            let _ = self.eventfd.write(1);
            self.pending_done.extend(done);
            return Ok(());
        }
        if let Err(e) = self.queue_sqe(index) {
            self.slots[index] = None;
            self.free.push(index);
            return Err(e);
        }
        Ok(())
    }

    fn submit(&mut self) -> io::Result<()> {
        if self.unsubmitted {
            log::trace!("io_uring: submitting, {} ops in flight", self.in_flight());
        }
        let mut tries = 0;
        while self.unsubmitted {
            match self.ring.submit() {
                Ok(_) => self.unsubmitted = !self.ring.submission().is_empty(),
                Err(e) if e.raw_os_error().is_some_and(is_retry) && tries < 1000 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_micros(100));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn completion_fd(&self) -> RawFd {
        self.eventfd.as_raw_fd()
    }

    fn reap(&mut self, done: &mut Vec<AsyncDone>) -> io::Result<()> {
        // Cleared first: a CQE posted from here on writes it again.
        let _ = self.eventfd.read();
        done.append(&mut self.pending_done);
        loop {
            let cqes: Vec<(u64, i32)> = self.ring.completion().map(|c| (c.user_data(), c.result())).collect();
            if cqes.is_empty() {
                break;
            }
            for (index, res) in cqes {
                self.complete(index as usize, res, done)?;
            }
        }
        self.submit()
    }

    fn drain(&mut self, done: &mut Vec<AsyncDone>) {
        let mut failures = 0;
        while self.in_flight() > 0 {
            if let Err(e) = self.reap(done) {
                log::warn!("io_uring: {e} while waiting for the ops in flight");
            }
            if self.in_flight() == 0 {
                break;
            }
            if let Err(e) = self.ring.submit_and_wait(1)
                && !e.raw_os_error().is_some_and(is_retry)
            {
                failures += 1;
                if failures > 100 {
                    // The kernel still owns (and has pinned) the buffers of these ops.
                    log::error!("io_uring: cannot wait for {} ops in flight: {e}", self.in_flight());
                    return;
                }
            }
        }
    }
}

impl Drop for UringQueue {
    fn drop(&mut self) {
        // No op may outlive its iovec array (in `slots`) or the buffers it points to.
        self.drain(&mut Vec::new());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::virtio::test_util::TempDir;

    fn iov(buf: &mut [u8]) -> libc::iovec {
        libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() }
    }

    /// Pushes every op (token = index), submits them together, and waits for all.
    fn run(q: &mut dyn AsyncQueue, ops: Vec<AsyncOp>) -> Vec<AsyncDone> {
        let n = ops.len();
        for (token, op) in ops.into_iter().enumerate() {
            // SAFETY: the tests' buffers outlive the call, which waits for every op.
            unsafe { q.push(token as u64, op) }.unwrap();
        }
        assert_eq!(q.in_flight(), n);
        q.submit().unwrap();
        let mut done = Vec::new();
        while done.len() < n {
            let mut pfd = libc::pollfd { fd: q.completion_fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: one valid pollfd.
            assert!(unsafe { libc::poll(&mut pfd, 1, 5000) } == 1, "completions within 5 s");
            q.reap(&mut done).unwrap();
        }
        assert_eq!(q.in_flight(), 0);
        done.sort_by_key(|d| d.token);
        done
    }

    fn disk(dir: &TempDir, bytes: usize) -> std::path::PathBuf {
        let path = dir.path().join("disk.img");
        std::fs::write(&path, vec![7u8; bytes]).unwrap();
        path
    }

    fn engine_queue(path: &Path, ro: bool) -> (UringEngine, Box<dyn AsyncQueue>) {
        let e = UringEngine::open(path, ro).unwrap();
        let q = e.async_queue().unwrap().unwrap();
        (e, q)
    }

    #[test]
    fn write_then_read_back() {
        let dir = TempDir::new("uring");
        let path = disk(&dir, 8192);
        let (e, mut q) = engine_queue(&path, false);
        assert_eq!(e.size(), 8192);
        let (mut a, mut b) = (vec![1u8; 512], vec![2u8; 1024]);
        let done = run(&mut *q, vec![AsyncOp::Write { offset: 512, iovecs: vec![iov(&mut a), iov(&mut b)] }]);
        assert!(done[0].result.is_ok());
        assert_eq!(done[0].transferred, 1536);
        let mut back = vec![0u8; 4096];
        let (lo, hi) = back.split_at_mut(100);
        let done = run(&mut *q, vec![AsyncOp::Read { offset: 0, iovecs: vec![iov(lo), iov(hi)] }]);
        assert!(done[0].result.is_ok());
        assert_eq!(done[0].transferred, 4096);
        assert_eq!((back[511], back[512], back[1023], back[1024], back[2047], back[2048]), (7, 1, 1, 2, 2, 7));
        let file = std::fs::read(&path).unwrap();
        assert_eq!(&file[512..1024], &[1; 512]);
    }

    #[test]
    fn many_in_flight() {
        let dir = TempDir::new("uring");
        let path = disk(&dir, 256 * 4096);
        let (_e, mut q) = engine_queue(&path, false);
        let mut bufs: Vec<Vec<u8>> = (0..256).map(|i| vec![i as u8; 4096]).collect();
        let ops = bufs.iter_mut().enumerate().map(|(i, b)| AsyncOp::Write { offset: i as u64 * 4096, iovecs: vec![iov(b)] }).collect();
        let done = run(&mut *q, ops);
        assert!(done.iter().all(|d| d.result.is_ok() && d.transferred == 4096));
        // One op too many is refused, not queued.
        let mut one = [0u8; 512];
        let full: Vec<_> = (0..q.capacity()).map(|_| AsyncOp::Read { offset: 0, iovecs: vec![iov(&mut one)] }).collect();
        for (t, op) in full.into_iter().enumerate() {
            // SAFETY: `one` outlives the queue's use of it (drained below).
            unsafe { q.push(t as u64, op) }.unwrap();
        }
        // SAFETY: refused, so never used.
        let err = unsafe { q.push(999, AsyncOp::Flush) }.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        let mut done = Vec::new();
        q.submit().unwrap();
        q.drain(&mut done);
        assert_eq!(done.len(), q.capacity());
        let mut back: Vec<Vec<u8>> = (0..256).map(|_| vec![0u8; 4096]).collect();
        let ops = back.iter_mut().enumerate().map(|(i, b)| AsyncOp::Read { offset: i as u64 * 4096, iovecs: vec![iov(b)] }).collect();
        let done = run(&mut *q, ops);
        assert!(done.iter().all(|d| d.result.is_ok()));
        assert!(back.iter().enumerate().all(|(i, b)| b.iter().all(|&x| x == i as u8)));
    }

    #[test]
    fn flush_after_writes() {
        let dir = TempDir::new("uring");
        let path = disk(&dir, 4096);
        let (_e, mut q) = engine_queue(&path, false);
        let mut a = vec![9u8; 4096];
        let done = run(&mut *q, vec![AsyncOp::Write { offset: 0, iovecs: vec![iov(&mut a)] }, AsyncOp::Flush]);
        assert!(done.iter().all(|d| d.result.is_ok()));
        assert_eq!(std::fs::read(&path).unwrap(), vec![9u8; 4096]);
    }

    #[test]
    fn past_the_end_and_read_only() {
        let dir = TempDir::new("uring");
        let path = disk(&dir, 4096);
        let (_e, mut q) = engine_queue(&path, true);
        let mut buf = vec![0u8; 1024];
        // A read that meets the end of the file is an error, as read_exact_at's.
        let done = run(&mut *q, vec![AsyncOp::Read { offset: 3584, iovecs: vec![iov(&mut buf)] }]);
        let err = done[0].result.as_ref().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(done[0].transferred, 512);
        // A write to a file opened read-only fails (EBADF).
        let done = run(&mut *q, vec![AsyncOp::Write { offset: 0, iovecs: vec![iov(&mut buf)] }]);
        assert_eq!(done[0].result.as_ref().unwrap_err().raw_os_error(), Some(libc::EBADF));
        assert_eq!(std::fs::read(&path).unwrap(), vec![7u8; 4096]);
        assert!(UringEngine::open(dir.path(), true).is_err(), "a directory is not a disk");
    }

    /// O_DIRECT: ops on aligned buffers go straight to the file, others through a
    /// bounce buffer of their own (also when a short transfer is continued); a range that
    /// is misaligned for the host goes through the buffered descriptor.
    #[test]
    fn direct_io() {
        let dir = TempDir::new("uring-direct");
        let path = disk(&dir, 64 * 1024);
        for align in [None, Some(DioAlign::new(4096, 4096))] {
            let e = UringEngine::open_aligned(&path, false, Some(align)).unwrap();
            assert!(crate::devices::virtio::block::direct::is_direct(e.sync.file()));
            let mut q = e.async_queue().unwrap().unwrap();
            let mut aligned = AlignedBuf::new(8192, 4096);
            aligned.fill(1);
            let mut odd = vec![2u8; 8193];
            let (a, b) = odd[1..].split_at_mut(100);
            let mut sector = vec![3u8; 513];
            let done = run(
                &mut *q,
                vec![
                    AsyncOp::Write { offset: 0, iovecs: vec![iov(&mut aligned)] },
                    AsyncOp::Write { offset: 8192, iovecs: vec![iov(a), iov(b)] },
                    AsyncOp::Write { offset: 16384 + 512, iovecs: vec![iov(&mut sector[1..])] },
                    AsyncOp::Flush,
                ],
            );
            assert!(done.iter().all(|d| d.result.is_ok()), "{align:?}: {done:?}");
            assert_eq!(done[1].transferred, 8192);
            let file = std::fs::read(&path).unwrap();
            assert!(file[..8192].iter().all(|&x| x == 1) && file[8192..16384].iter().all(|&x| x == 2));
            assert_eq!((file[16383 + 512], file[16384 + 512], file[16384 + 1023], file[16384 + 1024]), (7, 3, 3, 7));

            let mut back = vec![0u8; 16385];
            let (lo, hi) = back[1..].split_at_mut(4096);
            let mut tail = vec![0u8; 1025];
            let done = run(
                &mut *q,
                vec![
                    AsyncOp::Read { offset: 4096, iovecs: vec![iov(lo), iov(hi)] },
                    AsyncOp::Read { offset: 16384 + 512, iovecs: vec![iov(&mut tail[1..])] },
                    // Meets the end of the file after 512 bytes: an error, with those bytes.
                    AsyncOp::Read { offset: 64 * 1024 - 512, iovecs: vec![iov(&mut aligned[..1024])] },
                ],
            );
            assert!(done[0].result.is_ok() && done[1].result.is_ok(), "{align:?}: {done:?}");
            assert_eq!(&back[1..], &file[4096..20480]);
            assert!(tail[1..513].iter().all(|&x| x == 3) && tail[513..].iter().all(|&x| x == 7));
            assert!(done[2].result.is_err());
            assert_eq!(done[2].transferred, 512);
            assert!(aligned[..512].iter().all(|&x| x == 7));
        }
    }

    /// A host that answers EAGAIN (or EBUSY) forever: the op is retried a bounded number of
    /// times, then fails with that error instead of being retried without end.
    #[test]
    fn retries_are_bounded() {
        let dir = TempDir::new("uring-retry");
        let path = disk(&dir, 4096);
        for errno in [libc::EAGAIN, libc::EBUSY] {
            let mut q = UringQueue::new(File::open(&path).unwrap(), 4).unwrap();
            let mut buf = vec![0u8; 512];
            // SAFETY: `buf` outlives the op, which ends in this test (failed below).
            unsafe { q.push(7, AsyncOp::Read { offset: 0, iovecs: vec![iov(&mut buf)] }) }.unwrap();
            let mut done = Vec::new();
            let start = std::time::Instant::now();
            let mut answered = 0;
            while done.is_empty() {
                assert!(answered <= MAX_RETRIES, "still retried after {answered} refusals");
                // The real op runs; its CQE is replaced by a refusal.
                q.submit().unwrap();
                q.ring.submit_and_wait(1).unwrap();
                let cqe = q.ring.completion().next().expect("a CQE");
                q.complete(cqe.user_data() as usize, -errno, &mut done).unwrap();
                answered += 1;
            }
            assert_eq!(answered, MAX_RETRIES + 1);
            assert_eq!(done[0].token, 7);
            assert_eq!(done[0].result.as_ref().unwrap_err().raw_os_error(), Some(errno));
            assert_eq!(q.in_flight(), 0);
            assert!(start.elapsed() < Duration::from_secs(1), "{:?}", start.elapsed());
        }
        assert_eq!((backoff(1), backoff(3), backoff(MAX_RETRIES)), (Duration::ZERO, Duration::from_micros(100), Duration::from_millis(10)));
    }

    #[test]
    fn ring_refuses_other_opcodes() {
        let eventfd = EventFd::new(libc::EFD_NONBLOCK).unwrap();
        let mut ring = restricted_ring(4, &eventfd).unwrap();
        let file = File::open("/proc/self/exe").unwrap();
        let mut buf = [0u8; 4];
        let mut iov = [iov(&mut buf)];
        let fd = types::Fd(file.as_raw_fd());
        let read = opcode::Readv::new(fd, iov.as_mut_ptr(), 1).offset(0).build().user_data(1);
        let nop = opcode::Nop::new().build().user_data(2);
        let read_fixed = opcode::Read::new(fd, buf.as_mut_ptr(), 4).build().user_data(3);
        let linked = opcode::Fsync::new(fd).build().flags(squeue::Flags::IO_LINK).user_data(4);
        // One at a time: the kernel stops submitting at an SQE it refuses.
        let mut results = Vec::new();
        for entry in [read, nop, read_fixed, linked] {
            // SAFETY: `iov` and `buf` outlive the op, which is reaped before the next push.
            unsafe { ring.submission().push(&entry) }.unwrap();
            ring.submit_and_wait(1).unwrap();
            results.extend(ring.completion().map(|c| (c.user_data(), c.result())));
        }
        assert_eq!(results, [(1, 4), (2, -libc::EACCES), (3, -libc::EACCES), (4, -libc::EACCES)]);
        assert_eq!(&buf, b"\x7fELF");
        // No register call is allowed any more.
        let mut probe = io_uring::Probe::new();
        let err = ring.submitter().register_probe(&mut probe).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EACCES));
    }

    #[test]
    fn short_transfers_continue() {
        let mut v = vec![libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 10 }, libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 5 }];
        advance(&mut v, 12);
        assert_eq!(v.len(), 1);
        assert_eq!((v[0].iov_base as usize, v[0].iov_len), (2, 3));
        advance(&mut v, 3);
        assert!(v.is_empty());
    }
}
