//! The page cache (Linux's mm/filemap.c): a file's data kept in page frames that
//! read(2), write(2), mmap and io_uring all use.
//!
//! A [`FileCache`] is the set of a file's cached pages ([`SharedPages`], which a
//! `MAP_SHARED` mapping maps directly), filled and written back through the file
//! system's [`PageIo`]:
//! - A read copies from pages that are up to date; a missing page is read with the pages
//!   after it (readahead, up to what one request can carry) while the reader sleeps.
//!   io_uring instead starts the read ([`FileCache::start_read`]), parks the request on
//!   the cache's wait queue and retries it from task work when the page arrives (Linux's
//!   IOCB_WAITQ): the submitter never waits for the device.
//! - A write is either sent to the file system and copied into the cached pages it
//!   covers ([`FileCache::wrote`]: write-through, as 9p does, so the host sees it at
//!   once; a page whose read was in flight is marked stale), or copied into the pages
//!   alone, which become dirty ([`FileCache::prepare_write`], [`FileCache::copy_in`]:
//!   write-back, as ext2 does) and are written back by fsync, sync, umount, the
//!   flusher (`mm::writeback`), or the writer itself past the dirty limits.
//! - Stores through a writable shared mapping are written back on msync, munmap, fsync
//!   and by the flusher ([`FileCache::writeback`]).
//! - Mappings fault pages in ([`FileCache::fault_in`]); clean pages are given back when
//!   memory runs out, unmapped first from the address spaces that map them ([`shrink`]).

use alloc::boxed::Box;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};

use super::user::{SharedPages, Slot, PG_DIRTY, PG_LOCKED, PG_MAPPED, PG_MAPPED_W, PG_STALE, PG_UPTODATE};
use super::{frame, frame_ptr};
use crate::errno::*;
use crate::fs::IoBuf;
use crate::sync::SpinLock;

const PAGE: u64 = 4096;

/// What an asynchronous read calls with the bytes read (in any context).
pub type ReadDone = Box<dyn FnOnce(KResult<&[u8]>) + Send>;

/// How a file system moves a file's bytes (Linux's address_space_operations).
pub trait PageIo: Send + Sync {
    /// Most pages one read brings in: the readahead window.
    fn max_pages(&self) -> usize;
    /// Reads up to `dst.len()` bytes at `pos` (page-aligned); fewer only at the end of the
    /// file. May sleep.
    fn read_at(&self, pos: u64, dst: &mut [u8]) -> KResult<usize>;
    /// Starts the same read without sleeping; `done` gets the bytes. Err(done): it cannot
    /// start now (queue full), and `done` was not called.
    fn read_at_async(&self, _pos: u64, _len: usize, done: ReadDone) -> Result<(), ReadDone> {
        Err(done)
    }
    /// Reads `frames.len()` pages at `pos` (page-aligned) straight into `frames` (the
    /// device writes them), as `read_at` (fewer bytes only at the end of the file; what
    /// is past them need not be written). None: not done so here (`read_at` is used).
    /// May sleep.
    fn read_frames(&self, _pos: u64, _frames: &[u64]) -> Option<KResult<usize>> {
        None
    }
    /// Writes `src` at `pos`. May sleep.
    fn write_at(&self, pos: u64, src: &[u8]) -> KResult<usize>;
    /// The file's size: where reads stop.
    fn size(&self) -> KResult<u64>;
    /// A buffered write into a write-back cache that does not sleep (io_uring's inline
    /// try, RWF_NOWAIT): EAGAIN where it would. None: the file's writes are not
    /// written back from the cache (they take their own path).
    fn write_nowait(&self, _pos: u64, _buf: &IoBuf) -> Option<KResult<usize>> {
        None
    }
}

/// Every file cache, for the shrinker.
static CACHES: SpinLock<Vec<Weak<SharedPages>>> = SpinLock::new(Vec::new());

/// Dirty pages in all caches.
static DIRTY_PAGES: AtomicUsize = AtomicUsize::new(0);
/// Pages being written back now (no longer dirty, not yet on the file's storage).
static WRITEBACK_PAGES: AtomicUsize = AtomicUsize::new(0);
/// Most dirty pages one file keeps before its writer writes them back (16 MiB).
const FILE_DIRTY_LIMIT: usize = 4096;
/// Most pages one writeback write carries (64 KiB, a disk run).
const WRITEBACK_RUN: usize = 16;
/// Most pages one writeback pins at a time (the pin table is shared and small).
const WRITEBACK_BATCH: usize = 512;

pub struct FileCache {
    pages: Arc<SharedPages>,
    /// POSIX_FADV_RANDOM: a miss reads its page alone (no readahead). Linux keeps this
    /// per open file (FMODE_RANDOM); here it is the file's.
    random: core::sync::atomic::AtomicBool,
    /// Held across a writeback: pages it cleaned are on their way to the disk until it
    /// ends, so an fsync that finds nothing dirty must wait for it (Linux waits on
    /// PG_writeback).
    wb: crate::sync::Mutex<()>,
}

/// A cache frame kept from reuse while its bytes are copied (the copy may fault and
/// allocate, and the shrinker or a truncate may drop the page meanwhile: the frame is
/// then freed at the unpin).
pub struct Pinned(u64);

impl Pinned {
    /// Pins `frame`, which the caller found in a slot with the page map locked.
    fn new(frame: u64) -> KResult<Self> {
        if frame::pin(frame) { Ok(Self(frame)) } else { Err(ENOMEM) }
    }

    fn bytes(&self) -> &mut [u8] {
        frame_bytes(self.0)
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        frame::unpin(self.0);
    }
}

/// The bytes of the frame at `frame`.
fn frame_bytes<'a>(frame: u64) -> &'a mut [u8] {
    // SAFETY: a frame of the cache, reached through the direct map; the caller keeps it
    // from being reused (`Pinned`, the page map's lock, or a LOCKED slot that only its
    // reader completes).
    unsafe { core::slice::from_raw_parts_mut(frame_ptr(frame), PAGE as usize) }
}

impl Drop for FileCache {
    /// Dirty pages go with the cache unwritten (the file was deleted).
    fn drop(&mut self) {
        let mut map = self.pages.lock();
        DIRTY_PAGES.fetch_sub(map.dirty, Ordering::Relaxed);
        map.dirty = 0;
    }
}

impl Default for FileCache {
    fn default() -> Self {
        Self::new()
    }
}

impl FileCache {
    pub fn new() -> Self {
        let pages = SharedPages::new(usize::MAX);
        let mut caches = CACHES.lock();
        caches.retain(|w| w.strong_count() > 0);
        caches.push(Arc::downgrade(&pages));
        Self { pages, random: core::sync::atomic::AtomicBool::new(false), wb: crate::sync::Mutex::new(()) }
    }

    /// The pages, for a shared mapping.
    pub fn pages(&self) -> Arc<SharedPages> {
        Arc::clone(&self.pages)
    }

    /// Pages written but not yet on the file's storage.
    pub fn dirty_pages(&self) -> usize {
        self.pages.lock().dirty
    }

    /// Whether this file's dirty pages, or all files', are past what a writer may leave
    /// behind (a quarter of memory in all): it writes its file back then (Linux's
    /// balance_dirty_pages, simply).
    pub fn over_dirty_limit(&self) -> bool {
        let all = frame::stats().0 as usize;
        self.dirty_pages() >= FILE_DIRTY_LIMIT || DIRTY_PAGES.load(Ordering::Relaxed) >= all / 4
    }

    /// Readies page `index` for a buffered write: pinned, if it is up to date, or made
    /// (zeros) when `fresh` (the write covers every file byte in it). EAGAIN: it must
    /// be read first (missing), or its read is in flight.
    pub fn prepare_write(&self, index: u64, fresh: bool) -> KResult<Pinned> {
        {
            let map = self.pages.lock();
            match map.slots.get(&(index as usize)) {
                Some(s) if s.flags & PG_UPTODATE != 0 => return Pinned::new(s.frame),
                Some(_) => return Err(EAGAIN),
                None if !fresh => return Err(EAGAIN),
                None => {}
            }
        }
        let f = frame::alloc_zeroed().ok_or(ENOMEM)?;
        if !self.insert_new(index as usize, f) {
            return Err(EAGAIN);
        }
        Pinned::new(f)
    }

    /// Adds `frame` as up-to-date page `index`, unless the page appeared meanwhile (the
    /// frame is then freed): whether it was added.
    fn insert_new(&self, index: usize, frame: u64) -> bool {
        let mut map = self.pages.lock();
        let added = match map.slots.entry(index) {
            alloc::collections::btree_map::Entry::Vacant(e) => {
                e.insert(Slot { frame, flags: PG_UPTODATE });
                true
            }
            alloc::collections::btree_map::Entry::Occupied(_) => false,
        };
        drop(map);
        if !added {
            frame::free(frame);
        }
        added
    }

    /// Marks page `index` dirty (its bytes are newer than the file's storage).
    pub fn mark_dirty(&self, index: u64) {
        self.redirty(core::iter::once(index as usize));
    }

    /// A buffered write: `len` bytes of `data` from `from` into the prepared page
    /// `index` at `at`; the page becomes dirty (first, so nothing drops it meanwhile).
    pub fn copy_in(&self, index: u64, page: &Pinned, at: usize, data: &IoBuf, from: usize, len: usize) -> KResult<()> {
        self.mark_dirty(index);
        data.get(from, &mut page.bytes()[at..at + len])
    }

    /// Whether no page is cached.
    pub fn is_empty(&self) -> bool {
        self.pages.lock().slots.is_empty()
    }

    /// Whether anything besides this cache holds its pages (a mapping, a read in flight):
    /// such pages must keep their frames.
    pub fn in_use(&self) -> bool {
        Arc::strong_count(&self.pages) > 1
    }

    /// Reads `[pos, pos + buf.len())` of a file of `size` bytes into `buf`, filling
    /// missing pages from `io` (sleeping).
    pub fn read(&self, io: &dyn PageIo, pos: u64, buf: &mut IoBuf, size: u64) -> KResult<usize> {
        let mut done = 0;
        loop {
            match self.copy_out(pos, buf, done, size)? {
                (n, None) => return Ok(n),
                (n, Some(index)) => {
                    done = n;
                    // Copied on the next round (unless dropped again meanwhile).
                    self.fill(io, index, size)?;
                }
            }
        }
    }

    /// Page `index` pinned, if it is up to date.
    fn pin_uptodate(&self, index: u64) -> KResult<Option<Pinned>> {
        let map = self.pages.lock();
        match map.slots.get(&(index as usize)) {
            Some(s) if s.flags & PG_UPTODATE != 0 => Pinned::new(s.frame).map(Some),
            _ => Ok(None),
        }
    }

    /// The read without sleeping: what the cached pages from `pos` on hold, and the index
    /// of the page it stopped at if one was missing or still being read (None: done).
    pub fn read_cached(&self, pos: u64, buf: &mut IoBuf, size: u64) -> KResult<(usize, Option<u64>)> {
        self.copy_out(pos, buf, 0, size)
    }

    /// Copies the cached bytes of a file of `size` bytes from `pos + from` into `buf` at
    /// `from`, a page at a time: the bytes from `pos` now in `buf`, and the page it
    /// stopped at if one was missing or still being read.
    fn copy_out(&self, pos: u64, buf: &mut IoBuf, from: usize, size: u64) -> KResult<(usize, Option<u64>)> {
        let end = size.min(pos.saturating_add(buf.len() as u64));
        let mut at = pos + from as u64;
        while at < end {
            let index = at / PAGE;
            let Some(page) = self.pin_uptodate(index)? else { return Ok(((at - pos) as usize, Some(index))) };
            let within = (at % PAGE) as usize;
            let n = (PAGE as usize - within).min((end - at) as usize);
            buf.put((at - pos) as usize, &page.bytes()[within..within + n])?;
            at += n as u64;
        }
        Ok(((at.max(pos) - pos) as usize, None))
    }

    fn uptodate(&self, index: u64) -> Option<u64> {
        self.pages.lock().slots.get(&(index as usize)).filter(|s| s.flags & PG_UPTODATE != 0).map(|s| s.frame)
    }

    /// Claims the pages from `index` for a read: up to the readahead window, the end of
    /// the file, or the first page already there. Their slots are inserted LOCKED with
    /// fresh frames. None: `index` itself is there (up to date or being read); ENOMEM:
    /// it is not, and no frame is free.
    fn claim(&self, io: &dyn PageIo, index: u64, size: u64) -> KResult<Option<Vec<u64>>> {
        let last = size.saturating_sub(1) / PAGE;
        let window = if self.random.load(Ordering::Relaxed) { 1 } else { io.max_pages().max(1) };
        let want = (window as u64).min(last.saturating_sub(index) + 1) as usize;
        let mut frames = Vec::with_capacity(want);
        while frames.len() < want {
            match frame::alloc() {
                Some(f) => frames.push(f),
                None => break,
            }
        }
        let mut map = self.pages.lock();
        if frames.is_empty() && !map.slots.contains_key(&(index as usize)) {
            return Err(ENOMEM);
        }
        let mut taken = 0;
        while taken < frames.len() && !map.slots.contains_key(&(index as usize + taken)) {
            map.slots.insert(index as usize + taken, Slot { frame: frames[taken], flags: PG_LOCKED });
            taken += 1;
        }
        drop(map);
        for &f in &frames[taken..] {
            frame::free(f);
        }
        frames.truncate(taken);
        Ok((taken > 0).then_some(frames))
    }

    /// A read into claimed pages from `index` ended with `result` (the bytes read, fewer
    /// past the end of the file): they become up to date, or go away on an error or when
    /// a write made them stale. Wakes whoever waits. Any context.
    fn finish(pages: &SharedPages, index: u64, frames: &[u64], result: KResult<&[u8]>) {
        if let Ok(data) = result {
            for (i, &f) in frames.iter().enumerate() {
                let page = frame_bytes(f);
                let from = (i * PAGE as usize).min(data.len());
                let n = (data.len() - from).min(PAGE as usize);
                page[..n].copy_from_slice(&data[from..from + n]);
            }
        }
        Self::settle(pages, index, frames, result.map(<[u8]>::len));
    }

    /// A read into claimed pages from `index` ended with `result`, the bytes now in the
    /// frames (the rest of them is zeroed here): they become up to date, or go away on
    /// an error or when a write made them stale. Wakes whoever waits. Any context.
    fn settle(pages: &SharedPages, index: u64, frames: &[u64], result: KResult<usize>) {
        let ok = result.is_ok();
        if let Ok(n) = result {
            for (i, &f) in frames.iter().enumerate() {
                let from = (n.saturating_sub(i * PAGE as usize)).min(PAGE as usize);
                frame_bytes(f)[from..].fill(0);
            }
        }
        let mut map = pages.lock();
        for (i, &f) in frames.iter().enumerate() {
            let key = index as usize + i;
            let stale = map.slots.get(&key).is_none_or(|s| s.flags & PG_STALE != 0);
            if !ok || stale {
                map.slots.remove(&key);
                frame::free(f);
            } else if let Some(s) = map.slots.get_mut(&key) {
                s.flags = (s.flags & !PG_LOCKED) | PG_UPTODATE;
            }
        }
        drop(map);
        pages.io_wait.wake_all();
    }

    /// Brings page `index` in, sleeping (with readahead).
    fn fill(&self, io: &dyn PageIo, index: u64, size: u64) -> KResult<()> {
        let mut reclaimed = false;
        loop {
            if self.uptodate(index).is_some() {
                return Ok(());
            }
            let frames = match self.claim(io, index, size) {
                Ok(Some(frames)) => frames,
                Ok(None) => {
                    // Being read by someone else: wait for it to finish (or fail).
                    self.pages.io_wait.wait_uninterruptible(|| self.settled(index));
                    continue;
                }
                // Out of memory: once, have dirty pages written back so clean ones can go.
                Err(e) if reclaimed || !super::writeback::reclaim_wait() => return Err(e),
                Err(_) => {
                    reclaimed = true;
                    continue;
                }
            };
            // Straight into the frames where the file system can; else through a buffer.
            if let Some(result) = io.read_frames(index * PAGE, &frames) {
                let result = result.map(|n| n.min(frames.len() * PAGE as usize));
                let failed = result.as_ref().err().copied();
                Self::settle(&self.pages, index, &frames, result);
                if let Some(e) = failed {
                    return Err(e);
                }
                continue;
            }
            let mut bounce = Vec::new();
            if bounce.try_reserve_exact(frames.len() * PAGE as usize).is_err() {
                Self::settle(&self.pages, index, &frames, Err(ENOMEM));
                return Err(ENOMEM);
            }
            bounce.resize(frames.len() * PAGE as usize, 0);
            let result = io.read_at(index * PAGE, &mut bounce);
            let failed = result.as_ref().err().copied();
            Self::finish(&self.pages, index, &frames, result.map(|n| &bounce[..n.min(bounce.len())]));
            if let Some(e) = failed {
                return Err(e);
            }
        }
    }

    /// Starts reading page `index` (and its readahead) without sleeping; the cache's
    /// wait queue is woken when it arrives. True when the page is on its way or already
    /// there; false when the read cannot start now (take a path that may sleep).
    pub fn start_read(&self, io: &dyn PageIo, index: u64, size: u64) -> bool {
        let frames = match self.claim(io, index, size) {
            Ok(Some(frames)) => frames,
            Ok(None) => return true,
            Err(_) => return false, // out of memory: the path that may sleep finds some
        };
        let pages = Arc::clone(&self.pages);
        let (frames2, len) = (frames.clone(), frames.len() * PAGE as usize);
        let done: ReadDone = Box::new(move |r| Self::finish(&pages, index, &frames2, r));
        match io.read_at_async(index * PAGE, len, done) {
            Ok(()) => true,
            Err(done) => {
                drop(done);
                Self::finish(&self.pages, index, &frames, Err(EAGAIN));
                false
            }
        }
    }

    /// Starts reading `[pos, end)` of a file of `size` bytes into the cache, window by
    /// window, without waiting (WILLNEED, readahead(2)); stops where a read cannot start.
    pub fn read_ahead(&self, io: &dyn PageIo, pos: u64, end: u64, size: u64) {
        let mut index = pos / PAGE;
        while index * PAGE < end {
            let present = self.pages.lock().slots.contains_key(&(index as usize));
            if !present && !self.start_read(io, index, size) {
                break;
            }
            index += 1;
        }
    }

    /// Sleeps until no page of `[pos, end)` is being read.
    pub fn wait_settled(&self, pos: u64, end: u64) {
        let (first, last) = ((pos / PAGE) as usize, end.div_ceil(PAGE) as usize);
        self.pages.io_wait.wait_uninterruptible(|| {
            self.pages.lock().slots.range(first..last).all(|(_, s)| s.flags & PG_LOCKED == 0)
        });
    }

    /// Whether page `index` is no longer being read (up to date, or gone after an error):
    /// a request parked on the wait queue may try again.
    pub fn settled(&self, index: u64) -> bool {
        self.pages.lock().slots.get(&(index as usize)).is_none_or(|s| s.flags & PG_LOCKED == 0)
    }

    pub fn wait_queue(&self) -> &crate::task::wait::WaitQueue {
        &self.pages.io_wait
    }

    /// `data` was written to the file at `pos`: cached pages it covers take it (a page
    /// being read is marked stale, so the old bytes the read brings are dropped). With
    /// `size` (the file's size after the write), pages not cached that the write fills
    /// up to the end of the file are added, as a buffered write leaves them on Linux.
    pub fn wrote(&self, pos: u64, data: &IoBuf, n: usize, size: Option<u64>) {
        let mut at = pos;
        let end = pos + n as u64;
        while at < end {
            let index = (at / PAGE) as usize;
            let from = (at % PAGE) as usize;
            let len = (PAGE as usize - from).min((end - at) as usize);
            let (page, absent) = {
                let mut map = self.pages.lock();
                match map.slots.get_mut(&index) {
                    Some(s) if s.flags & PG_UPTODATE != 0 => (Pinned::new(s.frame).ok(), false),
                    Some(s) => {
                        s.flags |= PG_STALE;
                        (None, false)
                    }
                    None => (None, true),
                }
            };
            if absent && let Some(size) = size {
                let filled = (index as u64 * PAGE).min(size)..((index as u64 + 1) * PAGE).min(size);
                if filled.start >= pos && filled.end <= end && !filled.is_empty() {
                    self.add_written(index, data, (filled.start - pos) as usize, (filled.end - filled.start) as usize);
                }
                at += len as u64;
                continue;
            }
            let copied = page.as_ref().map(|p| data.get((at - pos) as usize, &mut p.bytes()[from..from + len]));
            if !matches!(copied, None | Some(Ok(()))) || (page.is_none() && self.uptodate(index as u64).is_some()) {
                // The buffer went away under us, or the page could not be pinned: it
                // cannot be trusted.
                drop(page);
                self.forget(at, len as u64);
            }
            at += len as u64;
        }
    }

    /// Adds page `index` holding the `len` bytes of `data` from `from` (zeros after
    /// them), unless memory is short or the page appeared meanwhile.
    fn add_written(&self, index: usize, data: &IoBuf, from: usize, len: usize) {
        let Some(f) = frame::alloc() else { return };
        let page = frame_bytes(f);
        if data.get(from, &mut page[..len]).is_err() {
            frame::free(f);
            return;
        }
        page[len..].fill(0);
        self.insert_new(index, f);
    }

    /// Drops the pages of `[pos, pos + len)` that no mapping uses and are not being read
    /// (a write that failed part way: the file's bytes there are unknown).
    pub fn forget(&self, pos: u64, len: u64) {
        let in_use = self.in_use();
        let (first, last) = ((pos / PAGE) as usize, (pos.saturating_add(len).div_ceil(PAGE)) as usize);
        let mut freed = Vec::new();
        let mut map = self.pages.lock();
        for (&i, s) in map.slots.range_mut(first..last) {
            if s.flags & PG_LOCKED != 0 {
                s.flags |= PG_STALE;
            } else if !in_use && s.flags & (PG_DIRTY | PG_MAPPED_W) == 0 {
                freed.push(i);
            }
        }
        for i in freed {
            if let Some(s) = map.slots.remove(&i) {
                frame::free(s.frame);
            }
        }
    }

    /// Reads the cached pages of `[pos, pos + len)` again from `io` (the file changed
    /// behind the cache: O_DIRECT, or another client). Pages no mapping uses are simply
    /// dropped; mapped ones are refreshed in place so mappings see the new bytes.
    pub fn invalidate(&self, io: &dyn PageIo, pos: u64, len: u64) -> KResult<()> {
        if !self.in_use() {
            self.forget(pos, len);
            return Ok(());
        }
        let (first, last) = ((pos / PAGE) as usize, (pos.saturating_add(len).div_ceil(PAGE)) as usize);
        let present: Vec<(usize, Pinned)> = {
            let map = self.pages.lock();
            let mut out = Vec::new();
            for (&i, s) in map.slots.range(first..last).filter(|(_, s)| s.flags & PG_UPTODATE != 0) {
                out.push((i, Pinned::new(s.frame)?));
            }
            out
        };
        for (i, page) in present {
            let n = io.read_at(i as u64 * PAGE, page.bytes())?;
            page.bytes()[n..].fill(0);
        }
        Ok(())
    }

    /// Writes the pages stores may have changed (dirty, or mapped writable) back through
    /// `io`, each up to the end of a file of `size` bytes, consecutive ones together (up
    /// to `WRITEBACK_RUN` pages a write).
    pub fn writeback(&self, io: &dyn PageIo, size: u64) -> KResult<()> {
        let _writing = self.wb.lock();
        // A batch at a time: each page is pinned while it is written, and pins are few.
        let mut from = 0;
        while let Some(next) = self.writeback_batch(io, size, from)? {
            from = next;
        }
        Ok(())
    }

    /// Writes back up to `WRITEBACK_BATCH` pages from index `from` on (see `writeback`):
    /// the index to go on from, None when no page is left.
    fn writeback_batch(&self, io: &dyn PageIo, size: u64, from: usize) -> KResult<Option<usize>> {
        // (index, page, whether it was dirty, whether it was taken out of the mappings)
        let targets: Vec<(usize, Pinned, bool, bool)> = {
            let mut map = self.pages.lock();
            let map = &mut *map;
            let mapped = Arc::strong_count(&self.pages) > 1;
            let mut out = Vec::new();
            let mut past_end = 0;
            for (&i, s) in map.slots.range_mut(from..) {
                if out.len() == WRITEBACK_BATCH {
                    break;
                }
                if (i as u64) * PAGE >= size && s.flags & PG_DIRTY != 0 {
                    // Nothing of the file is left there to write.
                    s.flags &= !PG_DIRTY;
                    past_end += 1;
                }
                if s.flags & (PG_DIRTY | PG_MAPPED_W) == 0 || s.flags & PG_UPTODATE == 0 || (i as u64) * PAGE >= size {
                    continue;
                }
                // Pinned by another (a registered buffer, DMA): written without a fault.
                let pinned = frame::is_pinned(s.frame);
                let Ok(page) = Pinned::new(s.frame) else {
                    break; // the pin table is full: this batch ends here
                };
                let dirty = s.flags & PG_DIRTY != 0;
                s.flags &= !PG_DIRTY;
                // No mapping is left to store into it, or none is now: unmapped, a store
                // must fault first, which marks it again (Linux write-protects it,
                // page_mkclean); until then it is clean, and the shrinker may take it.
                let unmapped = s.flags & PG_MAPPED_W != 0 && !pinned && (!mapped || self.pages.unmap_everywhere(i, s.frame));
                if unmapped {
                    s.flags &= !PG_MAPPED_W;
                }
                out.push((i, page, dirty, unmapped));
            }
            let cleaned = out.iter().filter(|t| t.2).count() + past_end;
            map.dirty -= cleaned;
            DIRTY_PAGES.fetch_sub(cleaned, Ordering::Relaxed);
            out
        };
        let Some(last) = targets.last().map(|t| t.0) else {
            // Nothing to write from here, or not one page could be pinned.
            let left = self.pages.lock().slots.range(from..).any(|(&i, s)| s.flags & (PG_DIRTY | PG_MAPPED_W) != 0 && (i as u64) * PAGE < size);
            return if left { Err(ENOMEM) } else { Ok(None) };
        };
        // Linux's PG_writeback, counted: /proc/meminfo's Writeback.
        WRITEBACK_PAGES.fetch_add(targets.len(), Ordering::Relaxed);
        let mut k = 0;
        while k < targets.len() {
            let mut j = k + 1;
            while j < targets.len() && targets[j].0 == targets[j - 1].0 + 1 && j - k < WRITEBACK_RUN {
                j += 1;
            }
            let pos = targets[k].0 as u64 * PAGE;
            let n = (((targets[j - 1].0 as u64 + 1) * PAGE).min(size) - pos) as usize;
            let written = if j == k + 1 {
                io.write_at(pos, &targets[k].1.bytes()[..n])
            } else {
                let mut run = Vec::new();
                match run.try_reserve_exact(n) {
                    Ok(()) => {
                        for t in &targets[k..j] {
                            run.extend_from_slice(t.1.bytes());
                        }
                        io.write_at(pos, &run[..n])
                    }
                    Err(_) => Err(ENOMEM),
                }
            };
            if let Err(e) = written {
                // Pages no mapping marks any more hold stores too: dirty now.
                self.redirty(targets[k..].iter().filter(|t| t.2 || t.3).map(|t| t.0));
                WRITEBACK_PAGES.fetch_sub(targets.len() - k, Ordering::Relaxed);
                return Err(e);
            }
            WRITEBACK_PAGES.fetch_sub(j - k, Ordering::Relaxed);
            k = j;
        }
        Ok(Some(last + 1))
    }

    /// Marks pages dirty again (their writeback failed).
    fn redirty(&self, indices: impl Iterator<Item = usize>) {
        let mut map = self.pages.lock();
        let map = &mut *map;
        for i in indices {
            if let Some(s) = map.slots.get_mut(&i)
                && s.flags & PG_DIRTY == 0
            {
                s.flags |= PG_DIRTY;
                map.dirty += 1;
                DIRTY_PAGES.fetch_add(1, Ordering::Relaxed);
                super::writeback::dirtied();
            }
        }
    }

    /// The file is now `size` bytes: the page holding the new end is zeroed past it, and
    /// the pages after it unmapped and dropped (a fault there is a SIGBUS, as on Linux).
    pub fn truncate(&self, size: u64) {
        let first_gone = size.div_ceil(PAGE) as usize;
        let mut map = self.pages.lock();
        let map = &mut *map;
        if !size.is_multiple_of(PAGE)
            && let Some(s) = map.slots.get(&((size / PAGE) as usize)).filter(|s| s.flags & PG_UPTODATE != 0)
        {
            frame_bytes(s.frame)[(size % PAGE) as usize..].fill(0);
        }
        let gone: Vec<usize> = map.slots.range(first_gone..).map(|(&i, _)| i).collect();
        let mut cleaned = 0;
        for i in gone {
            let s = map.slots.get_mut(&i).expect("listed above");
            if s.flags & PG_DIRTY != 0 {
                cleaned += 1;
                s.flags &= !PG_DIRTY;
            }
            if s.flags & PG_LOCKED != 0 {
                s.flags |= PG_STALE;
            } else if s.flags & (PG_MAPPED | PG_MAPPED_W) != 0 && !self.pages.unmap_everywhere(i, s.frame) {
                // An address space is busy: the page stays mapped there, reading zeros.
                frame_bytes(s.frame).fill(0);
            } else {
                frame::free(s.frame);
                map.slots.remove(&i);
            }
        }
        map.dirty -= cleaned;
        DIRTY_PAGES.fetch_sub(cleaned, Ordering::Relaxed);
    }

    /// Reads the missing pages of `[pos, pos + len)` of a file of `size` bytes.
    pub fn populate(&self, io: &dyn PageIo, pos: u64, len: u64, size: u64) -> KResult<()> {
        let end = size.min(pos.saturating_add(len));
        let mut index = pos / PAGE;
        while index * PAGE < end {
            if self.uptodate(index).is_none() {
                self.fill(io, index, size)?;
            }
            index += 1;
        }
        Ok(())
    }

    /// Brings page `index` in for a fault on a mapping (sleeping, with readahead):
    /// EFAULT when it lies wholly past the end of the file (the fault is a SIGBUS, as on
    /// Linux).
    pub fn fault_in(&self, io: &dyn PageIo, index: u64) -> KResult<()> {
        let size = io.size()?;
        if index.checked_mul(PAGE).is_none_or(|pos| pos >= size) {
            return Err(EFAULT);
        }
        self.fill(io, index, size)
    }

    /// A buffered read(2): through the cache, up to the file's size.
    pub fn read_file(&self, io: &dyn PageIo, pos: u64, buf: &mut IoBuf) -> KResult<usize> {
        self.read(io, pos, buf, io.size()?)
    }

    /// Writes back what mappings changed (fsync, msync, munmap, the flusher).
    pub fn sync(&self, io: &dyn PageIo) -> KResult<()> {
        self.writeback(io, io.size()?)
    }

    /// What a mapping of the file from `offset` maps: the cache's pages, and the first
    /// one's index. Nothing is read now: faults bring the pages in.
    pub fn map(&self, offset: u64) -> (Arc<SharedPages>, usize) {
        (self.pages(), (offset / PAGE) as usize)
    }

    /// posix_fadvise: WILLNEED starts reading the range into the cache (without waiting
    /// for it); DONTNEED writes back what mappings changed and drops the clean pages no
    /// mapping uses; RANDOM turns readahead off, NORMAL and SEQUENTIAL back on; NOREUSE
    /// changes nothing.
    pub fn advise(&self, io: &dyn PageIo, offset: u64, len: u64, advice: u32) -> KResult<()> {
        const NORMAL: u32 = 0;
        const RANDOM: u32 = 1;
        const SEQUENTIAL: u32 = 2;
        const WILLNEED: u32 = 3;
        const DONTNEED: u32 = 4;
        match advice {
            RANDOM => self.random.store(true, Ordering::Relaxed),
            NORMAL | SEQUENTIAL => self.random.store(false, Ordering::Relaxed),
            _ => {}
        }
        let size = io.size()?;
        let end = if len == 0 { size } else { size.min(offset.saturating_add(len)) };
        match advice {
            WILLNEED => self.read_ahead(io, offset, end, size),
            DONTNEED => {
                self.writeback(io, size)?;
                self.forget(offset, end.saturating_sub(offset));
            }
            _ => {}
        }
        Ok(())
    }
}

/// Pages in file caches now (`/proc/meminfo`'s Cached), and how many of them are clean
/// (what `shrink` could give back).
pub fn cached_pages() -> (u64, u64) {
    let caches = CACHES.lock();
    let (mut all, mut clean) = (0, 0);
    for pages in caches.iter().filter_map(Weak::upgrade) {
        let map = pages.lock();
        all += map.slots.len() as u64;
        clean += map.slots.values().filter(|s| evictable(s)).count() as u64;
    }
    (all, clean)
}

/// Whether the shrinker may drop a page: clean and not being read (a page mapped
/// writable is taken as changed).
fn evictable(slot: &Slot) -> bool {
    slot.flags & (PG_DIRTY | PG_LOCKED | PG_MAPPED_W) == 0
}

/// Dirty pages in all caches now (`/proc/meminfo`'s Dirty).
pub fn dirty_pages() -> usize {
    DIRTY_PAGES.load(Ordering::Relaxed)
}

/// Pages being written back now (`/proc/meminfo`'s Writeback).
pub fn writeback_pages() -> usize {
    WRITEBACK_PAGES.load(Ordering::Relaxed)
}

/// Most pages one call of `shrink` gives back: memory runs out again soon after, and
/// the rest of the cache stays useful meanwhile.
const SHRINK_BATCH: usize = 512;

/// Where the next `shrink` starts in the list of caches (each gives in turn).
static SHRINK_NEXT: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// Gives back up to `SHRINK_BATCH` clean page-cache pages that nothing reads (memory ran
/// out), the lowest file offsets first, unmapping them from page tables that map them;
/// returns how many. Caches and address spaces locked at the moment are skipped, never
/// waited for; a frame being copied is freed when its copy ends (`Pinned`).
pub fn shrink() -> usize {
    let Some(caches) = CACHES.try_lock() else { return 0 };
    let mut freed = 0;
    let count = caches.len();
    let first = SHRINK_NEXT.fetch_add(1, Ordering::Relaxed);
    for k in 0..count {
        if freed >= SHRINK_BATCH {
            break;
        }
        let Some(pages) = caches[(first + k) % count].upgrade() else { continue };
        let Some(mut map) = pages.try_lock() else { continue };
        map.slots.retain(|&index, s| {
            // A pinned frame stays: a device or a registered buffer uses it (mapped, it
            // would then no longer be the file's page).
            let evict = freed < SHRINK_BATCH
                && evictable(s)
                && !frame::is_pinned(s.frame)
                && (s.flags & PG_MAPPED == 0 || pages.unmap_everywhere(index, s.frame));
            if evict {
                frame::free(s.frame);
                freed += 1;
            }
            !evict
        });
    }
    freed
}
