//! Registered resources: fixed files (IORING_REGISTER_FILES, FILES2) and fixed buffers
//! (IORING_REGISTER_BUFFERS, BUFFERS2), in tables whose slots may be empty (sparse).
//!
//! A fixed file is an open file the ring holds, named by its index (IOSQE_FIXED_FILE).
//! A slot filled with a tag (FILES2, BUFFERS2, the *_UPDATE2 calls) posts a CQE whose
//! user_data is the tag once its resource has left the slot and no request uses it.
//! A fixed buffer is a range of the registering process's memory whose frames are pinned
//! at registration, as Linux's FOLL_LONGTERM pin: READ_FIXED and WRITE_FIXED (which must
//! stay inside it) transfer to and from those frames, whatever is mapped at the address
//! later (munmap, a new mapping, fork), until the buffer is unregistered. Disk I/O uses
//! them directly, with no page walk or pinning per request.

use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use super::IoUring;

use crate::errno::*;
use crate::fs::OpenFile;
use crate::mm::PAGE_SIZE;
use crate::task;

/// Most fixed files (Linux: IORING_MAX_FIXED_FILES).
pub const MAX_FIXED_FILES: usize = 1 << 15;
/// Most fixed buffers (Linux: IORING_MAX_REG_BUFFERS).
pub const MAX_BUFFERS: usize = 1 << 14;
/// Largest fixed buffer (Linux: SZ_1G).
pub const MAX_BUFFER_LEN: u64 = 1 << 30;

/// Pages pinned by registered buffers, counted against RLIMIT_MEMLOCK as Linux counts
/// them per user (everyone is one user here, and has no CAP_IPC_LOCK to skip it).
static LOCKED_PAGES: AtomicU64 = AtomicU64::new(0);

/// A tag: posted as a CQE (user_data = tag, res 0) by its ring when dropped, that is
/// when the resource it came with has left its slot and the last request using it is
/// done (Linux's io_rsrc_node tag).
pub struct Tag {
    value: u64,
    ring: Weak<IoUring>,
}

impl Tag {
    /// A tag for `ring` (none for 0, which means "untagged").
    pub fn new(ring: &IoUring, value: u64) -> Option<Arc<Tag>> {
        (value != 0).then(|| Arc::new(Tag { value, ring: ring.me.clone() }))
    }
}

impl Drop for Tag {
    fn drop(&mut self) {
        if let Some(ring) = self.ring.upgrade() {
            ring.post_aux(self.value);
        }
    }
}

/// Frames pinned for a registered buffer (shared by the rings it is cloned into).
struct Pins {
    /// Physical (address, length) segments covering the buffer, in order.
    segments: Vec<(u64, u32)>,
    /// Pages charged to RLIMIT_MEMLOCK.
    pages: u64,
}

impl Drop for Pins {
    fn drop(&mut self) {
        crate::mm::uaccess::unpin_segments(&self.segments);
        LOCKED_PAGES.fetch_sub(self.pages, Ordering::Relaxed);
    }
}

/// A registered buffer in one ring's table: its user address and length, its pinned
/// frames, and its slot's tag. Requests using it hold it, and so the tag.
pub struct FixedBuf {
    pub addr: u64,
    pub len: u64,
    pins: Arc<Pins>,
    _tag: Option<Arc<Tag>>,
}

impl FixedBuf {
    /// Pins user memory `[addr, addr + len)` of the current process, charging its pages
    /// to RLIMIT_MEMLOCK when `account` (ENOMEM past it, or when the pin table is full).
    pub fn pin(addr: u64, len: u64, tag: Option<Arc<Tag>>, account: bool) -> KResult<Self> {
        let pages = if len == 0 { 0 } else { (addr + len).div_ceil(PAGE_SIZE) - addr / PAGE_SIZE };
        let limit = if account { crate::task::current_process().rlimits.get(crate::task::rlimit::RLIMIT_MEMLOCK)[0] / PAGE_SIZE } else { u64::MAX };
        LOCKED_PAGES
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| (n + pages <= limit).then_some(n + pages))
            .map_err(|_| ENOMEM)?;
        let pinned = crate::task::with_mm(|mm| crate::mm::uaccess::pin_user_segments(mm, addr, len as usize, true))
            .map_err(|e| if e == EAGAIN { ENOMEM } else { e });
        match pinned {
            Ok(segments) => Ok(Self { addr, len, pins: Arc::new(Pins { segments, pages }), _tag: tag }),
            Err(e) => {
                LOCKED_PAGES.fetch_sub(pages, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// The same memory for another ring's table (IORING_REGISTER_CLONE_BUFFERS), untagged.
    pub fn share(&self) -> Self {
        Self { addr: self.addr, len: self.len, pins: Arc::clone(&self.pins), _tag: None }
    }
}

impl FixedBuf {
    /// The segments of `[addr, addr + len)` if it lies inside the buffer (EFAULT if not).
    pub fn segments(&self, addr: u64, len: usize) -> KResult<Vec<(u64, u32)>> {
        let end = addr.checked_add(len as u64).ok_or(EFAULT)?;
        if addr < self.addr || end > self.addr + self.len {
            return Err(EFAULT);
        }
        Ok(self.slice(addr, len))
    }

    /// The segments covering `[addr, addr + len)`, which lies inside the buffer.
    pub fn slice(&self, addr: u64, len: usize) -> Vec<(u64, u32)> {
        let (mut skip, mut left) = ((addr - self.addr) as usize, len);
        let mut out = Vec::new();
        for &(phys, n) in &self.pins.segments {
            let n = n as usize;
            if left == 0 {
                break;
            }
            if skip >= n {
                skip -= n;
                continue;
            }
            let take = (n - skip).min(left);
            out.push((phys + skip as u64, take as u32));
            left -= take;
            skip = 0;
        }
        out
    }
}

/// IORING_OP_FILES_UPDATE's prep: the op form of the FILES_UPDATE registration.
pub fn update_prep(_ring: &super::IoUring, sqe: &super::uapi::Sqe) -> KResult<super::Op> {
    use super::uapi::{IOSQE_BUFFER_SELECT, IOSQE_FIXED_FILE};
    if sqe.flags & (IOSQE_FIXED_FILE | IOSQE_BUFFER_SELECT) != 0 || sqe.op_flags != 0 || sqe.file_index != 0 {
        return Err(EINVAL);
    }
    if sqe.len == 0 {
        return Err(EINVAL);
    }
    Ok(super::Op::FilesUpdate { addr: sqe.addr, nr: sqe.len, offset: sqe.off as u32 })
}

pub fn update_issue(ring: &Arc<super::IoUring>, req: alloc::boxed::Box<super::Request>) -> super::Issued {
    let super::Op::FilesUpdate { addr, nr, offset } = req.op else { return Some((req, -EINVAL.0)) };
    let res = if offset == super::openclose::IORING_FILE_INDEX_ALLOC {
        files_alloc(ring, addr, nr)
    } else {
        update(ring, Kind::Files, RsrcUpdate2 { offset, data: addr, nr, ..RsrcUpdate2::default() })
    };
    Some((req, res.map_or_else(|e| -e.0, |n| n as i32)))
}

/// A fixed-file slot's content: the file and the slot's tag.
#[derive(Clone)]
pub struct FixedFile {
    pub file: Arc<OpenFile>,
    pub tag: Option<Arc<Tag>>,
}

/// What a slot held before it was changed: dropped by the caller once the lock is
/// released (closing a file may do I/O; dropping a tag posts a CQE).
#[must_use]
pub struct Old(#[allow(dead_code)] Option<FixedFile>);

#[derive(Default)]
pub struct Resources {
    pub files: Option<Vec<Option<FixedFile>>>,
    /// Where the search for a free slot starts (Linux's `alloc_hint`): just past the
    /// slot filled last, or on the slot emptied last.
    file_hint: usize,
    /// Where IORING_FILE_INDEX_ALLOC looks for free slots (REGISTER_FILE_ALLOC_RANGE).
    alloc_range: (usize, usize),
    pub buffers: Option<Vec<Option<Arc<FixedBuf>>>>,
}

impl Resources {
    /// Registers a fixed-file table; allocation then covers all of it.
    pub fn set_files(&mut self, files: Vec<Option<FixedFile>>) {
        self.alloc_range = (0, files.len());
        self.file_hint = 0;
        self.files = Some(files);
    }

    /// Unregisters the fixed-file table (ENXIO without one).
    pub fn take_files(&mut self) -> KResult<Vec<Option<FixedFile>>> {
        self.alloc_range = (0, 0);
        self.files.take().ok_or(ENXIO)
    }

    /// Slots in the fixed-file table (0 without one).
    pub fn files_len(&self) -> usize {
        self.files.as_ref().map_or(0, Vec::len)
    }

    /// Puts `file` in slot `index` (None empties it) and returns what was there. ENXIO
    /// without a table, EINVAL past its end.
    pub fn set_file(&mut self, index: usize, file: Option<Arc<OpenFile>>) -> KResult<Old> {
        self.set_slot(index, file.map(|file| FixedFile { file, tag: None }))
    }

    /// `set_file` with a tag.
    pub fn set_slot(&mut self, index: usize, slot: Option<FixedFile>) -> KResult<Old> {
        let table = self.files.as_mut().ok_or(ENXIO)?;
        let entry = table.get_mut(index).ok_or(EINVAL)?;
        let old = core::mem::replace(entry, slot);
        if entry.is_some() {
            self.file_hint = index + 1;
        } else if old.is_some() {
            self.file_hint = index;
        }
        Ok(Old(old))
    }

    /// A free slot in the allocation range, searched as Linux does: from the hint to the
    /// end of the range, then from its start (ENFILE when there is none).
    pub fn free_file_slot(&mut self) -> KResult<usize> {
        let table = self.files.as_ref().ok_or(ENFILE)?;
        let (start, mut end) = self.alloc_range;
        loop {
            let hint = self.file_hint;
            if let Some(i) = (hint..end.min(table.len())).find(|&i| table[i].is_none()) {
                return Ok(i);
            }
            if hint == start {
                return Err(ENFILE);
            }
            end = hint;
            self.file_hint = start;
        }
    }

    /// Installs `file` as IORING_FILE_INDEX_ALLOC or a 1-based `file_index` asks
    /// (Linux's __io_fixed_fd_install): the slot's index for ALLOC, else 0.
    pub fn install(&mut self, file: Arc<OpenFile>, file_index: u32) -> KResult<(u64, Old)> {
        let alloc = file_index == super::openclose::IORING_FILE_INDEX_ALLOC;
        let index = if alloc { self.free_file_slot()? } else { file_index.wrapping_sub(1) as usize };
        if super::is_ring(&file) {
            return Err(EBADF);
        }
        let old = self.set_file(index, Some(file))?;
        Ok((if alloc { index as u64 } else { 0 }, old))
    }

    /// Empties slot `index` (IORING_OP_CLOSE of a fixed slot): ENXIO without a table,
    /// EINVAL past its end, EBADF if it is empty.
    pub fn remove_file(&mut self, index: usize) -> KResult<Old> {
        let table = self.files.as_ref().ok_or(ENXIO)?;
        if table.get(index).ok_or(EINVAL)?.is_none() {
            return Err(EBADF);
        }
        self.set_slot(index, None)
    }

    /// The fixed file at `index`: EBADF if the slot is empty or out of range.
    pub fn file(&self, index: u32) -> KResult<Arc<OpenFile>> {
        self.fixed_file(index).map(|f| f.file)
    }

    /// The fixed file at `index` with its tag, for a request that uses it.
    pub fn fixed_file(&self, index: u32) -> KResult<FixedFile> {
        self.files.as_ref().and_then(|f| f.get(index as usize)).and_then(Option::clone).ok_or(EBADF)
    }

    /// Fixed buffer `index` (EFAULT if there is none).
    pub fn fixed_at(&self, index: u16) -> KResult<Arc<FixedBuf>> {
        self.buffers.as_ref().and_then(|b| b.get(usize::from(index))).and_then(Option::clone).ok_or(EFAULT)
    }

    /// Fixed buffer `index`, if `[addr, addr + len)` lies in it (EFAULT otherwise).
    pub fn fixed(&self, index: u16, addr: u64, len: u64) -> KResult<Arc<FixedBuf>> {
        let buf = self.fixed_at(index)?;
        let end = addr.checked_add(len).ok_or(EFAULT)?;
        if addr < buf.addr || end > buf.addr + buf.len {
            return Err(EFAULT);
        }
        Ok(buf)
    }
}

// --- registration (io_uring_register), as Linux's io_uring/rsrc.c ---

/// `struct io_uring_rsrc_register` (REGISTER_FILES2, REGISTER_BUFFERS2).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct RsrcRegister {
    nr: u32,
    flags: u32,
    resv2: u64,
    data: u64,
    tags: u64,
}

/// `struct io_uring_rsrc_update2` (FILES_UPDATE2, BUFFERS_UPDATE); the legacy
/// `io_uring_rsrc_update` of REGISTER_FILES_UPDATE is its first 16 bytes.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct RsrcUpdate2 {
    pub offset: u32,
    resv: u32,
    pub data: u64,
    tags: u64,
    pub nr: u32,
    resv2: u32,
}

/// `struct io_uring_clone_buffers`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CloneBuffers {
    src_fd: u32,
    flags: u32,
    src_off: u32,
    dst_off: u32,
    nr: u32,
    pad: [u32; 3],
}

// SAFETY: integers only, no implicit padding (sizes asserted below).
unsafe impl crate::mm::uaccess::Pod for RsrcRegister {}
// SAFETY: as above.
unsafe impl crate::mm::uaccess::Pod for RsrcUpdate2 {}
// SAFETY: as above.
unsafe impl crate::mm::uaccess::Pod for CloneBuffers {}
const _: () = assert!(size_of::<RsrcRegister>() == 32 && size_of::<RsrcUpdate2>() == 32 && size_of::<CloneBuffers>() == 32);

const IORING_RSRC_REGISTER_SPARSE: u32 = 1 << 0;
/// FILES_UPDATE: leave this slot as it is.
const IORING_REGISTER_FILES_SKIP: i32 = -2;
const IORING_REGISTER_SRC_REGISTERED: u32 = 1 << 0;
const IORING_REGISTER_DST_REPLACE: u32 = 1 << 1;

/// Which table a registration acts on.
#[derive(Clone, Copy)]
pub enum Kind {
    Files,
    Buffers,
}

/// Element `i` of the user array at `base` (of `size`-byte elements); 0 when `base` is 0.
fn element<T: crate::mm::uaccess::Pod + Default>(base: u64, i: u32) -> KResult<T> {
    if base == 0 {
        return Ok(T::default());
    }
    task::read_user(base + u64::from(i) * size_of::<T>() as u64)
}

/// The open file `fd` names, if it can be a fixed file (no io_uring can: EBADF).
fn fixable(fd: i32) -> KResult<Arc<OpenFile>> {
    let file = task::current_process().files.lock().get(fd)?;
    if super::is_ring(&file) {
        return Err(EBADF);
    }
    Ok(file)
}

/// REGISTER_FILES2 and REGISTER_BUFFERS2: `size` is the struct's size.
pub fn register2(ring: &IoUring, arg: u64, size: u32, kind: Kind) -> KResult<u64> {
    if size as usize != size_of::<RsrcRegister>() {
        return Err(EINVAL);
    }
    let rr: RsrcRegister = task::read_user(arg)?;
    if rr.nr == 0 || rr.resv2 != 0 || rr.flags & !IORING_RSRC_REGISTER_SPARSE != 0 {
        return Err(EINVAL);
    }
    if rr.flags & IORING_RSRC_REGISTER_SPARSE != 0 && rr.data != 0 {
        return Err(EINVAL);
    }
    match kind {
        Kind::Files => register_files(ring, rr.data, rr.nr, rr.tags),
        Kind::Buffers => register_buffers(ring, rr.data, rr.nr, rr.tags),
    }
}

/// A fixed-file table of `nr` slots from the fds at `fds` (0: all empty; -1: an empty
/// slot) with the tags at `tags` (0: none). Nothing is kept if any fd or tag is bad.
pub fn register_files(ring: &IoUring, fds: u64, nr: u32, tags: u64) -> KResult<u64> {
    if ring.rsrc.lock().files.is_some() {
        return Err(EBUSY);
    }
    if nr == 0 {
        return Err(EINVAL);
    }
    if nr as usize > MAX_FIXED_FILES {
        return Err(EMFILE);
    }
    let mut table: Vec<Option<FixedFile>> = Vec::new();
    table.try_reserve_exact(nr as usize).map_err(|_| ENOMEM)?;
    let mut tag_values = Vec::new();
    for i in 0..nr {
        let tag: u64 = element(tags, i)?;
        let fd: i32 = if fds == 0 { -1 } else { element(fds, i)? };
        if fd == -1 {
            if tag != 0 {
                return Err(EINVAL); // an empty slot has nothing to tag
            }
            table.push(None);
            continue;
        }
        table.push(Some(FixedFile { file: fixable(fd)?, tag: None }));
        tag_values.push((i as usize, tag));
    }
    // Tags only now: dropping them on an error above would post their CQEs.
    for (i, tag) in tag_values {
        table[i].as_mut().expect("filled above").tag = Tag::new(ring, tag);
    }
    let mut rsrc = ring.rsrc.lock();
    if rsrc.files.is_some() {
        return Err(EBUSY);
    }
    rsrc.set_files(table);
    Ok(0)
}

/// Checks a buffer to register (Linux's io_buffer_validate): a null address is an empty
/// slot, and then its length must be 0.
fn validate_buffer(base: u64, len: u64) -> KResult<()> {
    match (base, len) {
        (0, 0) => Ok(()),
        (0, _) | (_, 0) => Err(EFAULT),
        (_, len) if len > MAX_BUFFER_LEN => Err(EFAULT),
        (base, len) => base.checked_add(len + PAGE_SIZE - 1).map(|_| ()).ok_or(EOVERFLOW),
    }
}

/// Slot `i` of a buffer registration or update: the iovec at `iovs` (0: none), pinned,
/// and its tag from `tags` (0: none); the tag is returned apart (see register_files).
fn buffer_slot(ring: &IoUring, iovs: u64, tags: u64, i: u32) -> KResult<(Option<FixedBuf>, u64)> {
    let [base, len]: [u64; 2] = element(iovs, i)?;
    let tag: u64 = element(tags, i)?;
    validate_buffer(base, len)?;
    if base == 0 {
        return if tag != 0 { Err(EINVAL) } else { Ok((None, 0)) };
    }
    Ok((Some(FixedBuf::pin(base, len, None, ring.account_mem)?), tag))
}

/// A fixed-buffer table of `nr` slots from the iovecs at `iovs` (0: all empty; a null
/// base: an empty slot) with the tags at `tags` (0: none).
pub fn register_buffers(ring: &IoUring, iovs: u64, nr: u32, tags: u64) -> KResult<u64> {
    if ring.rsrc.lock().buffers.is_some() {
        return Err(EBUSY);
    }
    if nr == 0 || nr as usize > MAX_BUFFERS {
        return Err(EINVAL);
    }
    let mut table: Vec<Option<FixedBuf>> = Vec::new();
    table.try_reserve_exact(nr as usize).map_err(|_| ENOMEM)?;
    let mut tag_values = Vec::new();
    for i in 0..nr {
        let (buf, tag) = buffer_slot(ring, iovs, tags, i)?;
        table.push(buf);
        tag_values.push(tag);
    }
    // Tags only now: dropping them on an error above would post their CQEs.
    let table = table
        .into_iter()
        .zip(tag_values)
        .map(|(buf, tag)| buf.map(|mut b| Arc::new({
            b._tag = Tag::new(ring, tag);
            b
        })))
        .collect();
    let mut rsrc = ring.rsrc.lock();
    if rsrc.buffers.is_some() {
        return Err(EBUSY);
    }
    rsrc.buffers = Some(table);
    Ok(0)
}

/// IORING_UNREGISTER_FILES / BUFFERS (ENXIO without a table). Tags of what is no
/// longer used are posted now, the others when their last request completes.
pub fn unregister(ring: &IoUring, arg: u64, nr: u32, kind: Kind) -> KResult<u64> {
    if arg != 0 || nr != 0 {
        return Err(EINVAL);
    }
    let mut rsrc = ring.rsrc.lock();
    match kind {
        Kind::Files => {
            let old = rsrc.take_files()?;
            drop(rsrc);
            release(old);
        }
        Kind::Buffers => {
            let old = rsrc.buffers.take().ok_or(ENXIO)?;
            drop(rsrc);
            release(old);
        }
    }
    Ok(0)
}

/// Drops a table from its last slot to its first, the order in which Linux posts the
/// tags.
pub fn release<T>(mut table: Vec<T>) {
    while let Some(slot) = table.pop() {
        drop(slot);
    }
}

/// IORING_REGISTER_FILES_UPDATE: `struct io_uring_rsrc_update` (the first 16 bytes of
/// update2), `nr` fds.
pub fn register_files_update(ring: &IoUring, arg: u64, nr: u32) -> KResult<u64> {
    if nr == 0 {
        return Err(EINVAL);
    }
    let [head, data]: [u64; 2] = task::read_user(arg)?;
    let (offset, resv) = (head as u32, (head >> 32) as u32);
    if resv != 0 {
        return Err(EINVAL);
    }
    update(ring, Kind::Files, RsrcUpdate2 { offset, data, nr, ..RsrcUpdate2::default() })
}

/// IORING_REGISTER_FILES_UPDATE2 and IORING_REGISTER_BUFFERS_UPDATE: `size` is the
/// struct's size.
pub fn register_update2(ring: &IoUring, arg: u64, size: u32, kind: Kind) -> KResult<u64> {
    if size as usize != size_of::<RsrcUpdate2>() {
        return Err(EINVAL);
    }
    let up: RsrcUpdate2 = task::read_user(arg)?;
    if up.nr == 0 || up.resv != 0 || up.resv2 != 0 {
        return Err(EINVAL);
    }
    update(ring, kind, up)
}

/// Updates `up.nr` slots from `up.offset`, in order, up to the first bad entry: how many
/// were updated, or that entry's error if none was.
pub fn update(ring: &IoUring, kind: Kind, up: RsrcUpdate2) -> KResult<u64> {
    let end = up.offset.checked_add(up.nr).ok_or(EOVERFLOW)?;
    let len = match kind {
        Kind::Files => ring.rsrc.lock().files.as_ref().map(Vec::len),
        Kind::Buffers => ring.rsrc.lock().buffers.as_ref().map(Vec::len),
    };
    if end as usize > len.ok_or(ENXIO)? {
        return Err(EINVAL);
    }
    let mut done = 0;
    let err = loop {
        if done == up.nr {
            break None;
        }
        let index = (up.offset + done) as usize;
        let result = match kind {
            Kind::Files => update_file(ring, index, element(up.data, done), element(up.tags, done)),
            Kind::Buffers => buffer_slot(ring, up.data, up.tags, done).map(|(buf, tag)| {
                let slot = buf.map(|mut b| {
                    b._tag = Tag::new(ring, tag);
                    Arc::new(b)
                });
                let old = ring.rsrc.lock().buffers.as_mut().map(|t| core::mem::replace(&mut t[index], slot));
                drop(old);
            }),
        };
        if let Err(e) = result {
            break Some(e);
        }
        done += 1;
    };
    match err {
        Some(e) if done == 0 => Err(e),
        _ => Ok(u64::from(done)),
    }
}

/// One slot of a files update: -1 empties it, FILES_SKIP leaves it (neither may carry a
/// tag). The slot is emptied before the fd is looked up, as Linux does, so a bad fd
/// leaves it empty.
fn update_file(ring: &IoUring, index: usize, fd: KResult<i32>, tag: KResult<u64>) -> KResult<()> {
    let (tag, fd) = (tag?, fd?);
    if (fd == IORING_REGISTER_FILES_SKIP || fd == -1) && tag != 0 {
        return Err(EINVAL);
    }
    if fd == IORING_REGISTER_FILES_SKIP {
        return Ok(());
    }
    let old = ring.rsrc.lock().set_slot(index, None)?;
    drop(old);
    if fd != -1 {
        let slot = FixedFile { file: fixable(fd)?, tag: Tag::new(ring, tag) };
        let old = ring.rsrc.lock().set_slot(index, Some(slot))?;
        drop(old);
    }
    Ok(())
}

/// IORING_FILE_INDEX_ALLOC for the FILES_UPDATE op: each fd into a free slot, whose index
/// is written back over it (a failed write-back empties the slot again).
pub fn files_alloc(ring: &IoUring, fds: u64, nr: u32) -> KResult<u64> {
    if ring.rsrc.lock().files.is_none() {
        return Err(ENXIO);
    }
    let mut done = 0;
    let err = loop {
        if done == nr {
            break None;
        }
        let step = element::<i32>(fds, done).and_then(fixable).and_then(|file| {
            let (index, old) = ring.rsrc.lock().install(file, super::openclose::IORING_FILE_INDEX_ALLOC)?;
            drop(old);
            if let Err(e) = task::write_user(fds + u64::from(done) * 4, &(index as i32)) {
                let mine = ring.rsrc.lock().set_slot(index as usize, None);
                drop(mine);
                return Err(e);
            }
            Ok(())
        });
        if let Err(e) = step {
            break Some(e);
        }
        done += 1;
    };
    match err {
        Some(e) if done == 0 => Err(e),
        _ => Ok(u64::from(done)),
    }
}

/// IORING_REGISTER_FILE_ALLOC_RANGE: where IORING_FILE_INDEX_ALLOC may put files.
pub fn register_alloc_range(ring: &IoUring, arg: u64, nr: u32) -> KResult<u64> {
    if arg == 0 || nr != 0 {
        return Err(EINVAL);
    }
    let [off, len, resv_lo, resv_hi]: [u32; 4] = task::read_user(arg)?;
    let end = off.checked_add(len).ok_or(EOVERFLOW)?;
    let mut rsrc = ring.rsrc.lock();
    if resv_lo != 0 || resv_hi != 0 || end as usize > rsrc.files_len() {
        return Err(EINVAL);
    }
    rsrc.alloc_range = (off as usize, end as usize);
    rsrc.file_hint = off as usize;
    Ok(0)
}

/// IORING_REGISTER_CLONE_BUFFERS: `nr` buffers of another ring (or this one) from slot
/// `src_off` into this ring's table from `dst_off`, sharing their pinned memory. The
/// new table keeps this ring's slots below `dst_off` (DST_REPLACE; without it the ring
/// must have no table).
pub fn clone_buffers(ring: &IoUring, arg: u64) -> KResult<u64> {
    let mut c: CloneBuffers = task::read_user(arg)?;
    if c.flags & !(IORING_REGISTER_SRC_REGISTERED | IORING_REGISTER_DST_REPLACE) != 0 {
        return Err(EINVAL);
    }
    let replace = c.flags & IORING_REGISTER_DST_REPLACE != 0;
    if !replace && ring.rsrc.lock().buffers.is_some() {
        return Err(EBUSY);
    }
    if c.pad != [0; 3] {
        return Err(EINVAL);
    }
    let (_file, src) = if c.flags & IORING_REGISTER_SRC_REGISTERED != 0 {
        super::tctx::registered_ring(c.src_fd as i32)?
    } else {
        super::ring_of(c.src_fd as i32)?
    };
    if c.nr == 0 && (c.dst_off != 0 || c.src_off != 0) {
        return Err(EINVAL);
    }
    let source: Vec<Option<Arc<FixedBuf>>> = src.rsrc.lock().buffers.clone().unwrap_or_default();
    let mut rsrc = ring.rsrc.lock();
    let current = rsrc.buffers.as_ref().map_or(0, Vec::len);
    if current != 0 && !replace {
        return Err(EBUSY);
    }
    let nbufs = source.len() as u32;
    if c.nr == 0 {
        c.nr = nbufs;
    } else if c.nr > nbufs || c.nr as usize > MAX_BUFFERS {
        return Err(EINVAL);
    }
    let dst_end = c.nr.checked_add(c.dst_off).ok_or(EOVERFLOW)?;
    if dst_end as usize > MAX_BUFFERS {
        return Err(EINVAL);
    }
    if nbufs == 0 {
        return Err(ENXIO);
    }
    let src_end = c.nr.checked_add(c.src_off).ok_or(EOVERFLOW)?;
    if src_end > nbufs {
        return Err(EOVERFLOW);
    }
    let mut table: Vec<Option<Arc<FixedBuf>>> = Vec::new();
    table.try_reserve_exact((dst_end as usize).max(current)).map_err(|_| ENOMEM)?;
    table.resize((dst_end as usize).max(current), None);
    if let Some(old) = rsrc.buffers.as_ref() {
        for (i, slot) in old.iter().enumerate().take(c.dst_off as usize) {
            table[i].clone_from(slot);
        }
    }
    for i in 0..c.nr as usize {
        table[c.dst_off as usize + i] = source[c.src_off as usize + i].as_ref().map(|b| Arc::new(b.share()));
    }
    let old = rsrc.buffers.replace(table);
    drop(rsrc);
    drop((old, source));
    Ok(0)
}
