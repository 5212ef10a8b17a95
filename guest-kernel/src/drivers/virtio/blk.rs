//! virtio-blk: disks as `/dev/vda`, `/dev/vdb`, ...
//!
//! Requests are (header, data buffers, status byte) chains on one queue. [`Blk::submit`] is
//! asynchronous: many requests can be in flight, each completed from the interrupt
//! handler through its callback; io_uring uses it directly. Synchronous reads and writes
//! (the `/dev/vdX` file) submit and sleep until their callback wakes them. A device with
//! several queues (VIRTIO_BLK_F_MQ) gives its last one to polled I/O (io_uring's IOPOLL,
//! as Linux's `poll_queues`): no interrupts there; [`Blk::poll`] reaps it. The others are
//! request queues, one per CPU up to their number: each CPU submits on its own.
//!
//! `/dev/vdX` opened without O_DIRECT reads through the disk's page cache
//! (`mm::filemap`) and writes through it (write-through: the disk gets each write at
//! once); O_DIRECT goes around it, and io_uring's O_DIRECT requests go to the device
//! with the user's pages.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::any::Any;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicUsize, Ordering};

use super::mmio::{Mmio, VIRTIO_RING_F_EVENT_IDX};
use super::queue::{Buffer, VirtQueue};
use crate::errno::*;
use crate::fs::{alloc_ino, FileType, IoBuf, Node, Stat};
use crate::mm::filemap::{FileCache, PageIo, ReadDone};
use crate::mm::virt_to_phys;
use crate::sync::SpinLock;

const F_SEG_MAX: u64 = 1 << 2;
const F_RO: u64 = 1 << 5;
const F_BLK_SIZE: u64 = 1 << 6;
const F_FLUSH: u64 = 1 << 9;
const F_MQ: u64 = 1 << 12;
const F_DISCARD: u64 = 1 << 13;

pub const T_IN: u32 = 0;
pub const T_OUT: u32 = 1;
pub const T_FLUSH: u32 = 4;
const T_DISCARD: u32 = 11;
const S_OK: u8 = 0;
const S_UNSUPP: u8 = 2;

pub const SECTOR: u64 = 512;
/// Largest transfer of one synchronous request.
const MAX_SYNC: usize = 64 * 1024;
/// The page cache's page.
const PAGE: usize = 4096;

pub struct Blk {
    dev: super::Device,
    /// The last queue, without interrupts (VIRTIO_BLK_F_MQ), for polled I/O.
    poll: Option<SpinLock<VirtQueue>>,
    pub name: String,
    pub sectors: u64,
    pub read_only: bool,
    flush: bool,
    /// Most sectors one discard may cover (0: the device cannot discard).
    pub max_discard: u64,
    /// The disk's page cache (`/dev/vdX` without O_DIRECT). A file system mounted on the
    /// disk goes around it: mount and umount drop it.
    pub page_cache: Arc<FileCache>,
}

/// The result of a request: bytes transferred, or the error.
pub type BlkDone = Box<dyn FnOnce(KResult<u32>) + Send>;

/// A discard sent as several requests: the last part to finish runs `done` with the
/// first error.
struct DiscardParts {
    left: AtomicU32,
    result: SpinLock<(KResult<u32>, Option<BlkDone>)>,
}

impl DiscardParts {
    fn part_done(&self, r: KResult<u32>) {
        let finished = {
            let mut s = self.result.lock();
            if r.is_err() && s.0.is_ok() {
                s.0 = r;
            }
            if self.left.fetch_sub(1, Ordering::AcqRel) == 1 { s.1.take().map(|done| (done, s.0)) } else { None }
        };
        if let Some((done, r)) = finished {
            done(r);
        }
    }
}

/// Most buffers in one request chain (header, data segments, status).
const MAX_CHAIN: usize = 130;

/// A request in flight: its header and status byte, and what to do when it completes.
struct BlkRequest {
    header: [u8; 17],
    /// A discard's segment (sector, sectors, flags).
    segment: [u8; 16],
    bytes: u64,
    done: BlkDone,
}

impl super::queue::Complete for BlkRequest {
    fn complete(self: Box<Self>, _len: u32) {
        let result = match self.header[16] {
            S_OK => Ok(self.bytes as u32),
            S_UNSUPP => Err(EOPNOTSUPP),
            _ => Err(EIO),
        };
        (self.done)(result)
    }
}

impl Blk {
    /// Submits a request for `sector` with data in the physical `segments` (device-writable
    /// for IN, readable for OUT); `done` runs when the device completes it. While the
    /// queue is full it waits, or with `wait` false fails with EAGAIN. On failure `done`
    /// is dropped unrun.
    pub fn submit(&self, kind: u32, sector: u64, segments: &[(u64, u32)], done: BlkDone, wait: bool) -> KResult<()> {
        self.submit_to(kind, sector, segments, done, wait, false)
    }

    /// `submit` on the polled queue when there is one (`polled`), where `done` runs when
    /// [`Blk::poll`] finds the request complete; never waits for room (EAGAIN).
    pub fn submit_to(&self, kind: u32, sector: u64, segments: &[(u64, u32)], done: BlkDone, wait: bool, polled: bool) -> KResult<()> {
        if kind == T_OUT && self.read_only {
            return Err(EROFS);
        }
        if kind == T_FLUSH && !self.flush {
            done(Ok(0));
            return Ok(());
        }
        let bytes: u64 = segments.iter().map(|s| u64::from(s.1)).sum();
        if kind != T_FLUSH && (!bytes.is_multiple_of(SECTOR) || sector.checked_add(bytes / SECTOR).is_none_or(|e| e > self.sectors)) {
            return Err(EINVAL);
        }
        if segments.len() + 2 > MAX_CHAIN {
            return Err(EINVAL);
        }
        // Header and status byte live in the request itself (kernel heap: physically
        // contiguous), which the queue keeps until the device is done with it.
        let mut req = Box::new(BlkRequest { header: [0; 17], segment: [0; 16], bytes, done });
        req.header[..4].copy_from_slice(&kind.to_le_bytes());
        req.header[8..16].copy_from_slice(&sector.to_le_bytes());
        req.header[16] = 0xff;
        let hdr = virt_to_phys(req.header.as_ptr());
        let buffer = |i: usize| match i {
            0 => Buffer { phys: hdr, len: 16, device_writes: false },
            i if i <= segments.len() => Buffer { phys: segments[i - 1].0, len: segments[i - 1].1, device_writes: kind == T_IN },
            _ => Buffer { phys: hdr + 16, len: 1, device_writes: true },
        };
        let n = segments.len() + 2;
        // Short chains (the common case) are built on the stack.
        let mut small = [Buffer { phys: 0, len: 0, device_writes: false }; 8];
        let long: Vec<Buffer>;
        let chain: &[Buffer] = if n <= small.len() {
            for (i, b) in small[..n].iter_mut().enumerate() {
                *b = buffer(i);
            }
            &small[..n]
        } else {
            long = (0..n).map(buffer).collect();
            &long
        };
        match (&self.poll, polled) {
            (Some(queue), true) => super::Device::add_to(&self.dev.mmio, queue, chain, req).map_err(|_| EAGAIN),
            _ => self.dev.add(chain, req, wait).map_err(|(e, _)| e),
        }
    }

    /// Checks a byte range to discard (whole sectors, inside the disk: EINVAL otherwise)
    /// and gives it in sectors.
    pub fn discard_range(&self, start: u64, len: u64) -> KResult<(u64, u64)> {
        if !start.is_multiple_of(SECTOR) || !len.is_multiple_of(SECTOR) {
            return Err(EINVAL);
        }
        let end = start.checked_add(len).ok_or(EINVAL)?;
        if end > self.sectors * SECTOR {
            return Err(EINVAL);
        }
        Ok((start / SECTOR, len / SECTOR))
    }

    /// Deallocates `sectors` sectors from `sector` (VIRTIO_BLK_T_DISCARD, one request per
    /// `max_discard` sectors); `done` runs once all are done, with the first error.
    /// EOPNOTSUPP when the device cannot discard.
    pub fn discard(&self, sector: u64, sectors: u64, done: BlkDone, wait: bool) -> KResult<()> {
        if self.max_discard == 0 {
            return Err(EOPNOTSUPP);
        }
        if self.read_only {
            return Err(EROFS);
        }
        if sectors <= self.max_discard {
            return self.discard_one(sector, sectors, done, wait);
        }
        // Several requests: the last to finish reports.
        let parts = sectors.div_ceil(self.max_discard);
        let state = Arc::new(DiscardParts { left: AtomicU32::new(parts as u32), result: SpinLock::new((Ok(0), Some(done))) });
        for i in 0..parts {
            let at = i * self.max_discard;
            let s = Arc::clone(&state);
            if let Err(e) = self.discard_one(sector + at, self.max_discard.min(sectors - at), Box::new(move |r| s.part_done(r)), wait) {
                // The parts not sent fail with it.
                for _ in i..parts {
                    state.part_done(Err(e));
                }
                break;
            }
        }
        Ok(())
    }

    fn discard_one(&self, sector: u64, sectors: u64, done: BlkDone, wait: bool) -> KResult<()> {
        let mut req = Box::new(BlkRequest { header: [0; 17], segment: [0; 16], bytes: 0, done });
        req.header[..4].copy_from_slice(&T_DISCARD.to_le_bytes());
        req.header[16] = 0xff;
        req.segment[..8].copy_from_slice(&sector.to_le_bytes());
        req.segment[8..12].copy_from_slice(&(sectors as u32).to_le_bytes());
        let (hdr, seg) = (virt_to_phys(req.header.as_ptr()), virt_to_phys(req.segment.as_ptr()));
        let chain = [
            Buffer { phys: hdr, len: 16, device_writes: false },
            Buffer { phys: seg, len: 16, device_writes: false },
            Buffer { phys: hdr + 16, len: 1, device_writes: true },
        ];
        self.dev.add(&chain, req, wait).map_err(|(e, _)| e)
    }

    /// Whether polled requests have a queue of their own (else they complete by interrupt).
    pub fn polls(&self) -> bool {
        self.poll.is_some()
    }

    /// Runs the completions of the polled queue's finished requests; how many.
    pub fn poll(&self) -> usize {
        let Some(queue) = &self.poll else { return 0 };
        let mut n = 0;
        loop {
            let used = queue.lock().pop_used();
            let Some((completion, len)) = used else { return n };
            completion.complete(len);
            n += 1;
        }
    }

    /// Reads `runs` (offset in a buffer of `len` bytes, first sector, bytes) into one
    /// buffer without sleeping, and calls `done` with its first `total` bytes when all
    /// have arrived (what no run covers is zeros). A queue that fills part way fails the
    /// read (EAGAIN: the caller tries again later); Err(done): nothing was queued.
    pub fn read_runs(&self, len: usize, total: usize, runs: &[(usize, u64, usize)], done: ReadDone) -> Result<(), ReadDone> {
        let mut buf = Vec::new();
        if buf.try_reserve_exact(len).is_err() || runs.iter().any(|&(at, _, n)| at + n > len) {
            return Err(done);
        }
        buf.resize(len, 0);
        // One count for each run and one for this submitter: the last to finish calls
        // `done`.
        let read = Arc::new(RunsRead { buf: SpinLock::new(buf), total, left: AtomicU32::new(runs.len() as u32 + 1), failed: AtomicI32::new(0), done: SpinLock::new(Some(done)) });
        for &(at, sector, n) in runs {
            let addr = virt_to_phys(read.buf.lock()[at..].as_ptr());
            let r = Arc::clone(&read);
            let done: BlkDone = Box::new(move |res| {
                if res.is_err() {
                    r.failed.store(EIO.0, Ordering::Relaxed);
                }
                r.one_done();
            });
            if self.submit(T_IN, sector, &[(addr, n as u32)], done, false).is_err() {
                read.failed.store(EAGAIN.0, Ordering::Relaxed);
                read.one_done();
            }
        }
        read.one_done();
        Ok(())
    }

    /// Synchronous transfer of whole sectors to or from kernel memory.
    pub fn transfer(&self, kind: u32, sector: u64, buf: &mut [u8]) -> KResult<()> {
        let segment = [(virt_to_phys(buf.as_ptr()), buf.len() as u32)];
        let data: &[(u64, u32)] = if buf.is_empty() { &[] } else { &segment };
        self.transfer_segments(kind, sector, data)
    }

    /// Synchronous transfer of whole sectors to or from physical `segments` (frames the
    /// caller keeps until it returns).
    pub fn transfer_segments(&self, kind: u32, sector: u64, segments: &[(u64, u32)]) -> KResult<()> {
        let state = Arc::new((AtomicBool::new(false), AtomicU32::new(0)));
        let s = Arc::clone(&state);
        self.submit(
            kind,
            sector,
            segments,
            Box::new(move |r| {
                s.1.store(match r { Ok(_) => 0, Err(e) => e.0 as u32 }, Ordering::Relaxed);
                s.0.store(true, Ordering::Release);
            }),
            true,
        )?;
        // Not interruptible: the device writes into the segments, which must outlive the
        // request.
        self.dev.completions.wait_uninterruptible(|| state.0.load(Ordering::Acquire));
        match state.1.load(Ordering::Relaxed) {
            0 => Ok(()),
            e => Err(Errno(e as i32)),
        }
    }
}

impl super::Interrupt for Blk {
    fn interrupt(&self) {
        self.dev.service();
    }
}

static DISKS: AtomicUsize = AtomicUsize::new(0);
static BLOCK_DEVICES: SpinLock<Vec<Arc<Blk>>> = SpinLock::new(Vec::new());

/// Reaps every disk's polled queue (io_uring IOPOLL); how many requests completed.
pub fn poll_all() -> usize {
    let disks: Vec<Arc<Blk>> = BLOCK_DEVICES.lock().iter().filter(|d| d.polls()).cloned().collect();
    disks.iter().map(|d| d.poll()).sum()
}

/// sync(2): flushes every disk's write cache (errors are not sync's to report).
pub fn sync_all() {
    let disks: Vec<Arc<Blk>> = BLOCK_DEVICES.lock().clone();
    for d in disks {
        let _ = d.transfer(T_FLUSH, 0, &mut []);
    }
}

pub fn probe(mmio: Mmio, irq: u32) {
    let wanted = F_SEG_MAX | F_RO | F_BLK_SIZE | F_FLUSH | F_MQ | F_DISCARD | VIRTIO_RING_F_EVENT_IDX;
    let Some(features) = mmio.negotiate(wanted) else {
        return log::warn!("virtio-blk: feature negotiation failed");
    };
    let event_idx = features & VIRTIO_RING_F_EVENT_IDX != 0;
    let setup = |index: u16, polled: bool| {
        let size = mmio.queue_max(index);
        let mut q = (size > 0).then(|| VirtQueue::new(index, size, event_idx)).flatten()?;
        if polled {
            q.set_polled();
        }
        let (desc, driver, device) = q.areas();
        mmio.setup_queue(index, q.size(), desc, driver, device);
        Some(q)
    };
    // num_queues (a u16 at 34, read as part of the aligned word at 32). With two or more,
    // the last is the polled queue and the others serve by interrupt, one per CPU (more
    // than there are CPUs would stay unused, so they are not set up).
    let offered = if features & F_MQ != 0 { (mmio.config_u32(32) >> 16).max(1) } else { 1 } as u16;
    let by_irq = if offered >= 2 { (offered - 1).min(crate::arch::smp::online_count() as u16) } else { 1 };
    let Some(queues) = (0..by_irq).map(|i| setup(i, false)).collect::<Option<Vec<VirtQueue>>>() else {
        return log::warn!("virtio-blk: no usable queue");
    };
    let poll = (offered >= 2).then(|| setup(offered - 1, true)).flatten().map(SpinLock::new);
    let sectors = mmio.config_u64(0);
    // max_discard_sectors (a u32 at 36).
    let max_discard = if features & F_DISCARD != 0 { u64::from(mmio.config_u32(36)) } else { 0 };
    let n = DISKS.fetch_add(1, Ordering::Relaxed);
    let name = format!("vd{}", (b'a' + n as u8) as char);
    let blk = Arc::new(Blk {
        dev: super::Device::new(mmio, queues),
        poll,
        name: name.clone(),
        sectors,
        read_only: features & F_RO != 0,
        flush: features & F_FLUSH != 0,
        max_discard,
        page_cache: Arc::new(FileCache::new()),
    });
    blk.dev.mmio.driver_ok();
    super::register_irq(irq, blk.clone());
    BLOCK_DEVICES.lock().push(Arc::clone(&blk));
    crate::fs::dev::add(&name, Arc::new(BlockNode { ino: alloc_ino(), dev: Arc::clone(&blk) }));
    log::info!(
        "virtio-blk: /dev/{name}: {} MiB{}, {} queue{} of {}{}, features {features:#x}",
        (sectors * SECTOR) >> 20,
        if blk.read_only { " (read-only)" } else { "" },
        blk.dev.queues.len(),
        if blk.dev.queues.len() == 1 { "" } else { "s (one per CPU)" },
        blk.dev.queues[0].lock().size(),
        if blk.polls() { " + a polled queue" } else { "" }
    );
}

/// Splits the byte range `offset .. offset + total` into sector-aligned spans of at most
/// `MAX_SYNC` bytes and calls `f(first_sector, skip, n, done, bounce)` for each: `bounce`
/// covers whole sectors from `first_sector`; the caller's bytes are `bounce[skip..skip+n]`,
/// at `done` in its buffer. Returns `total`.
fn for_each_span(
    offset: u64,
    total: usize,
    mut f: impl FnMut(u64, usize, usize, usize, &mut [u8]) -> KResult<()>,
) -> KResult<usize> {
    let mut done = 0;
    while done < total {
        let pos = offset + done as u64;
        let skip = (pos % SECTOR) as usize;
        let n = (total - done).min(MAX_SYNC - skip);
        let mut bounce = alloc::vec![0u8; (skip + n).div_ceil(SECTOR as usize) * SECTOR as usize];
        f(pos / SECTOR, skip, n, done, &mut bounce)?;
        done += n;
    }
    Ok(done)
}

/// A read split into disk requests ([`Blk::read_runs`]).
struct RunsRead {
    /// What the device writes into (its heap memory does not move while requests run).
    buf: SpinLock<Vec<u8>>,
    /// The bytes wanted of it.
    total: usize,
    left: AtomicU32,
    /// The errno of a request that failed (0: none).
    failed: AtomicI32,
    done: SpinLock<Option<ReadDone>>,
}

impl RunsRead {
    fn one_done(&self) {
        if self.left.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        let Some(done) = self.done.lock().take() else { return };
        match self.failed.load(Ordering::Relaxed) {
            0 => {
                let buf = core::mem::take(&mut *self.buf.lock());
                done(Ok(&buf[..self.total]));
            }
            e => done(Err(Errno(e))),
        }
    }
}

/// `/dev/vdX`: byte-addressed access to the disk, through its page cache, or with
/// O_DIRECT through sector-aligned bounce buffers.
pub struct BlockNode {
    ino: u64,
    pub dev: Arc<Blk>,
}

impl Node for BlockNode {
    fn stat(&self) -> Stat {
        Stat {
            ino: self.ino,
            mode: FileType::BlockDevice.mode_bits() | if self.dev.read_only { 0o444 } else { 0o660 },
            nlink: 1,
            size: self.dev.sectors * SECTOR,
            rdev: (254 << 8) | (self.dev.name.as_bytes()[2].wrapping_sub(b'a') as u64 * 16),
            ..Stat::default()
        }
    }

    /// Through the page cache.
    fn read(&self, offset: u64, buf: &mut IoBuf, _nonblock: bool) -> KResult<usize> {
        self.dev.page_cache.read_file(self, offset, buf)
    }

    /// O_DIRECT: from the disk (the cache never holds bytes the disk lacks).
    fn read_direct(&self, offset: u64, buf: &mut IoBuf, _nonblock: bool) -> KResult<usize> {
        self.read_uncached(offset, buf)
    }

    /// Write-through: the disk gets the bytes, then the cache takes them.
    fn write(&self, offset: u64, buf: &IoBuf, _nonblock: bool) -> KResult<usize> {
        self.write_through(offset, buf, true)
    }

    /// O_DIRECT: the same, but only pages already cached take the bytes.
    fn write_direct(&self, offset: u64, buf: &IoBuf, _nonblock: bool) -> KResult<usize> {
        self.write_through(offset, buf, false)
    }

    fn truncate(&self, _len: u64) -> KResult<()> {
        Ok(())
    }

    fn sync(&self) -> KResult<()> {
        self.dev.transfer(T_FLUSH, 0, &mut [])
    }

    /// An O_DIRECT whole-sector transfer inside the disk (one past its end is trimmed by
    /// the synchronous path). A write drops the cached pages it covers, now and when it
    /// is done (a read may have brought the old bytes back meanwhile).
    fn direct_extent(&self, offset: u64, len: usize, write: bool, direct: bool) -> Option<crate::fs::DirectExtent> {
        let inside = offset.checked_add(len as u64).is_some_and(|end| end <= self.dev.sectors * SECTOR);
        if !direct || !offset.is_multiple_of(SECTOR) || !(len as u64).is_multiple_of(SECTOR) || !inside {
            return None;
        }
        let hold: Option<Box<dyn Send>> = write.then(|| {
            self.dev.page_cache.forget(offset, len as u64);
            Box::new(Forget(Arc::clone(&self.dev.page_cache), offset, len as u64)) as Box<dyn Send>
        });
        Some((Arc::clone(&self.dev), offset / SECTOR, hold))
    }

    fn page_cache(&self) -> Option<(&FileCache, &dyn PageIo)> {
        Some((&self.dev.page_cache, self))
    }

    fn ioctl(&self, file: &crate::fs::OpenFile, cmd: u64, arg: u64) -> KResult<u64> {
        const BLKGETSIZE64: u64 = 0x8008_1272;
        const BLKSSZGET: u64 = 0x1268;
        const BLKDISCARD: u64 = 0x1277;
        match cmd {
            BLKGETSIZE64 => crate::task::write_user(arg, &(self.dev.sectors * SECTOR)).map(|()| 0),
            BLKSSZGET => crate::task::write_user(arg, &(SECTOR as u32)).map(|()| 0),
            // {start, len} in bytes, as Linux's blk_ioctl_discard checks them.
            BLKDISCARD => {
                if !file.writable() {
                    return Err(EBADF);
                }
                if self.dev.max_discard == 0 {
                    return Err(EOPNOTSUPP);
                }
                if self.dev.read_only {
                    return Err(EPERM);
                }
                let [start, len]: [u64; 2] = crate::task::read_user(arg)?;
                if len == 0 {
                    return Err(EINVAL);
                }
                let (sector, sectors) = self.dev.discard_range(start, len)?;
                self.dev.page_cache.forget(start, len);
                let state = Arc::new((AtomicBool::new(false), AtomicU32::new(0)));
                let s = Arc::clone(&state);
                self.dev.discard(sector, sectors, Box::new(move |r| {
                    s.1.store(match r { Ok(_) => 0, Err(e) => e.0 as u32 }, Ordering::Relaxed);
                    s.0.store(true, Ordering::Release);
                }), true)?;
                self.dev.dev.completions.wait_uninterruptible(|| state.0.load(Ordering::Acquire));
                match state.1.load(Ordering::Relaxed) {
                    0 => Ok(0),
                    e => Err(Errno(e as i32)),
                }
            }
            _ => Err(ENOTTY),
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl BlockNode {
    fn read_uncached(&self, offset: u64, buf: &mut IoBuf) -> KResult<usize> {
        let size = self.dev.sectors * SECTOR;
        let total = (buf.len() as u64).min(size.saturating_sub(offset)) as usize;
        for_each_span(offset, total, |first, skip, n, done, bounce| {
            self.dev.transfer(T_IN, first, bounce)?;
            buf.put(done, &bounce[skip..skip + n])
        })
    }

    /// Writes to the disk (partial sectors read, changed and written), then into the
    /// pages cached (and with `add`, into new pages the write fills).
    fn write_through(&self, offset: u64, buf: &IoBuf, add: bool) -> KResult<usize> {
        if self.dev.read_only {
            return Err(EROFS);
        }
        let size = self.dev.sectors * SECTOR;
        if offset >= size && buf.len() > 0 {
            return Err(ENOSPC);
        }
        let total = (buf.len() as u64).min(size - offset.min(size)) as usize;
        let r = for_each_span(offset, total, |first, skip, n, done, bounce| {
            if skip != 0 || !n.is_multiple_of(SECTOR as usize) {
                // Partial sectors: read-modify-write.
                self.dev.transfer(T_IN, first, bounce)?;
            }
            buf.get(done, &mut bounce[skip..skip + n])?;
            self.dev.transfer(T_OUT, first, bounce)
        });
        match r {
            Ok(n) => self.dev.page_cache.wrote(offset, buf, n, add.then_some(size)),
            // Sectors may have been written: what the cache holds there is unknown.
            Err(_) => self.dev.page_cache.forget(offset, total as u64),
        }
        r
    }
}

/// Drops a range of a disk's cached pages when an O_DIRECT write to it is done.
struct Forget(Arc<FileCache>, u64, u64);

impl Drop for Forget {
    fn drop(&mut self) {
        self.0.forget(self.1, self.2);
    }
}

impl PageIo for BlockNode {
    /// 128 KiB: two of the largest synchronous requests.
    fn max_pages(&self) -> usize {
        32
    }

    fn read_at(&self, pos: u64, dst: &mut [u8]) -> KResult<usize> {
        self.read_uncached(pos, &mut IoBuf::Kernel(dst))
    }

    /// Into the frames, in requests of at most MAX_SYNC bytes.
    fn read_frames(&self, pos: u64, frames: &[u64]) -> Option<KResult<usize>> {
        let size = self.dev.sectors * SECTOR;
        let total = ((frames.len() * PAGE) as u64).min(size.saturating_sub(pos)) as usize;
        let per = MAX_SYNC / PAGE;
        for (k, chunk) in frames.chunks(per).enumerate() {
            let at = k * MAX_SYNC;
            if at >= total {
                break;
            }
            let n = (total - at).min(MAX_SYNC);
            let segments: Vec<(u64, u32)> = chunk.iter().enumerate().filter(|(i, _)| i * PAGE < n).map(|(i, &f)| (f, (n - i * PAGE).min(PAGE) as u32)).collect();
            if let Err(e) = self.dev.transfer_segments(T_IN, (pos + at as u64) / SECTOR, &segments) {
                return Some(Err(e));
            }
        }
        Some(Ok(total))
    }

    fn read_at_async(&self, pos: u64, len: usize, done: ReadDone) -> Result<(), ReadDone> {
        let size = self.dev.sectors * SECTOR;
        let total = (len as u64).min(size.saturating_sub(pos)) as usize;
        if !pos.is_multiple_of(SECTOR) || total == 0 {
            return Err(done);
        }
        // In requests of at most MAX_SYNC bytes (whole sectors: the disk's size is).
        let runs: Vec<(usize, u64, usize)> =
            (0..total).step_by(MAX_SYNC).map(|at| (at, (pos + at as u64) / SECTOR, (total - at).min(MAX_SYNC))).collect();
        self.dev.read_runs(len, total, &runs, done)
    }

    fn write_at(&self, pos: u64, src: &[u8]) -> KResult<usize> {
        let mut copy = Vec::new();
        copy.try_reserve_exact(src.len()).map_err(|_| ENOMEM)?;
        copy.extend_from_slice(src);
        self.write_through(pos, &IoBuf::Kernel(&mut copy), false)
    }

    fn size(&self) -> KResult<u64> {
        Ok(self.dev.sectors * SECTOR)
    }
}

/// Built-in test (`test=virtio-bad`): sends the first disk a request whose data buffer
/// lies outside guest memory, as a buggy or hostile driver might, and returns the device
/// status once the device reacts (a conforming device sets DEVICE_NEEDS_RESET, 0x40).
pub fn send_malformed_request() -> Option<u32> {
    let blk = BLOCK_DEVICES.lock().first().cloned()?;
    let hdr = Box::new([0u8; 17]);
    let phys = virt_to_phys(hdr.as_ptr());
    let (mmio, queue) = (&blk.dev.mmio, &blk.dev.queues[0]);
    let chain = [
        Buffer { phys, len: 16, device_writes: false },
        Buffer { phys: 0xdead_0000_0000, len: 512, device_writes: true },
        Buffer { phys: phys + 16, len: 1, device_writes: true },
    ];
    let added = queue.lock().add(&chain, Box::new(move |_| drop(hdr)));
    if added.is_ok() {
        mmio.notify(0);
    }
    let deadline = crate::time::monotonic_ns() + 500_000_000;
    let _ = blk.dev.completions.wait_until(Some(deadline), || mmio.status() & 0x40 != 0);
    Some(mmio.status())
}
