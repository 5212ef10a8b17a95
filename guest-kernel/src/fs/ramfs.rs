//! The RAM filesystem: the root of the tree. Files from the initramfs keep pointing at the
//! archive's bytes until first written (then they get a private copy).

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::any::Any;
use core::sync::atomic::{AtomicU32, Ordering};

use super::xattr::{stored_xattrs, Xattrs};
use super::{alloc_ino, DirEntry, FileBytes, FileType, IoBuf, Node, Owner, Stat, TimeSet, Times};
use crate::errno::*;
use crate::mm::user::SharedPages;
use crate::mm::{frame_ptr, PAGE_SIZE};
use crate::sync::SpinLock;

/// Largest file size accepted: Linux's MAX_LFS_FILESIZE, as tmpfs (files are sparse;
/// their pages come from free memory, and a write finding none is ENOSPC, as on a full
/// tmpfs).
fn max_file() -> u64 {
    i64::MAX as u64
}

/// Whether a file may take another page: files leave a sixteenth of memory to the
/// kernel and to programs' own pages.
fn room() -> bool {
    let (total, free) = crate::mm::frame::stats();
    free > total / 16
}
const PAGE: usize = PAGE_SIZE as usize;

/// A file's bytes: borrowed from the initramfs until first written or mapped shared, then
/// in page frames (a page cache that `MAP_SHARED` mappings map directly).
enum Data {
    Static(&'static [u8]),
    Paged { pages: Arc<SharedPages>, len: u64 },
}

impl Data {
    fn len(&self) -> u64 {
        match self {
            Data::Static(s) => s.len() as u64,
            Data::Paged { len, .. } => *len,
        }
    }

    /// Moves static bytes into frames; returns the pages.
    fn paged(&mut self) -> KResult<Arc<SharedPages>> {
        if let Data::Static(bytes) = *self {
            let pages = SharedPages::new(bytes.len().div_ceil(PAGE));
            for (i, chunk) in bytes.chunks(PAGE).enumerate() {
                let f = pages.frame(i)?;
                // SAFETY: a frame we just allocated, in the direct map, one page long.
                unsafe { core::ptr::copy_nonoverlapping(chunk.as_ptr(), frame_ptr(f), chunk.len()) };
            }
            *self = Data::Paged { pages, len: bytes.len() as u64 };
        }
        match self {
            Data::Paged { pages, .. } => Ok(Arc::clone(pages)),
            Data::Static(_) => unreachable!("converted above"),
        }
    }
}

/// The bytes of page `frame` (0: a hole, all zeros) from `from` to `to`.
fn page_bytes(frame: u64, from: usize, to: usize) -> &'static [u8] {
    static ZEROS: [u8; PAGE] = [0; PAGE];
    if frame == 0 {
        return &ZEROS[from..to];
    }
    // SAFETY: the frame belongs to the file's pages, which outlive this use (the caller
    // holds the file's lock); the range is within one page.
    unsafe { core::slice::from_raw_parts(frame_ptr(frame).add(from), to - from) }
}

pub struct RamFile {
    ino: u64,
    mode: AtomicU32,
    owner: Owner,
    nlink: AtomicU32,
    data: SpinLock<Data>,
    xattrs: Xattrs,
    times: Times,
}

impl RamFile {
    /// A write or truncate by a caller without CAP_FSETID clears the set-ID bits.
    fn remove_privs(&self) {
        let mode = self.mode.load(Ordering::Relaxed);
        if mode & 0o6000 != 0
            && let Some(m) = super::perm::mode_after_write(mode) {
                self.mode.store(m, Ordering::Relaxed);
            }
    }

    /// Whether a shared mapping holds the file's pages (their only other holder is the
    /// file itself).
    pub fn shared_mappings(&self) -> bool {
        match &*self.data.lock() {
            Data::Paged { pages, .. } => Arc::strong_count(pages) > 1,
            Data::Static(_) => false,
        }
    }

    /// A file of root's (the initramfs', the kernel's).
    pub fn new(mode: u32, data: &'static [u8]) -> Arc<Self> {
        Self::with_owner(mode, data, Owner::root())
    }

    pub fn with_owner(mode: u32, data: &'static [u8], owner: Owner) -> Arc<Self> {
        Arc::new(Self {
            ino: alloc_ino(),
            mode: AtomicU32::new(mode),
            owner,
            nlink: AtomicU32::new(0),
            data: SpinLock::new(Data::Static(data)),
            xattrs: Xattrs::default(),
            times: Times::now(),
        })
    }

    fn read_locked(&self, offset: u64, buf: &mut IoBuf) -> KResult<usize> {
        let data = self.data.lock();
        let len = data.len();
        let offset = offset.min(len);
        let n = (len - offset).min(buf.len() as u64) as usize;
        match &*data {
            Data::Static(bytes) => buf.put(0, &bytes[offset as usize..offset as usize + n])?,
            Data::Paged { pages, .. } => {
                let mut done = 0;
                while done < n {
                    let pos = offset as usize + done;
                    let (index, from) = (pos / PAGE, pos % PAGE);
                    let to = PAGE.min(from + n - done);
                    buf.put(done, page_bytes(pages.existing(index), from, to))?;
                    done += to - from;
                }
            }
        }
        Ok(n)
    }

    /// Writes bytes `start..` of `buf` at `offset + start`: how many from `offset` on are
    /// written.
    fn write_from(&self, offset: u64, buf: &IoBuf, start: usize) -> KResult<usize> {
        let n = buf.len();
        let end = offset.checked_add(n as u64).filter(|&e| e <= max_file()).ok_or(EFBIG)?;
        let mut data = self.data.lock();
        let pages = data.paged()?;
        pages.grow((end as usize).div_ceil(PAGE));
        let mut done = start;
        while done < n {
            let pos = offset as usize + done;
            let (index, from) = (pos / PAGE, pos % PAGE);
            let to = PAGE.min(from + n - done);
            let new_page = pages.existing(index) == 0;
            let frame = match if new_page && !room() { Err(ENOSPC) } else { pages.frame(index) } {
                Ok(f) => f,
                Err(_) if done > 0 => break,
                Err(_) => return Err(ENOSPC),
            };
            // SAFETY: the frame is the file's, in the direct map; the range is in the page.
            let dst = unsafe { core::slice::from_raw_parts_mut(frame_ptr(frame).add(from), to - from) };
            if let Err(e) = buf.get(done, dst) {
                if done == 0 {
                    return Err(e);
                }
                break;
            }
            done += to - from;
        }
        if let Data::Paged { len, .. } = &mut *data {
            *len = (*len).max(offset + done as u64);
        }
        self.times.modified();
        self.remove_privs();
        Ok(done)
    }
}

impl Node for RamFile {
    stored_xattrs!();

    /// File data is in memory: reads and writes never sleep.
    fn nowait(&self) -> bool {
        true
    }

    fn stat(&self) -> Stat {
        let size = self.data.lock().len();
        let mut st = Stat { ino: self.ino, mode: FileType::Regular.mode_bits() | self.mode.load(Ordering::Relaxed), nlink: self.nlink.load(Ordering::Relaxed), size, ..Stat::default() };
        self.times.fill(&mut st);
        self.owner.fill(&mut st);
        st
    }

    /// (The copies run under the file's spin lock, where a page of the buffer that must be
    /// read in first, a mapped file's, is EFAULT: once, the buffer is brought in unlocked
    /// and the copy made again.)
    fn read(&self, offset: u64, buf: &mut IoBuf, _nonblock: bool) -> KResult<usize> {
        match self.read_locked(offset, buf) {
            Err(EFAULT) => {
                buf.prefault(true);
                self.read_locked(offset, buf)
            }
            r => r,
        }
    }

    fn write(&self, offset: u64, buf: &IoBuf, _nonblock: bool) -> KResult<usize> {
        match self.write_from(offset, buf, 0) {
            Ok(n) if n < buf.len() => {
                buf.prefault(false);
                self.write_from(offset, buf, n)
            }
            Err(EFAULT) => {
                buf.prefault(false);
                self.write_from(offset, buf, 0)
            }
            r => r,
        }
    }

    fn truncate(&self, new_len: u64) -> KResult<()> {
        if new_len > max_file() {
            return Err(EFBIG);
        }
        let mut data = self.data.lock();
        let pages = data.paged()?;
        let Data::Paged { len, .. } = &mut *data else { unreachable!("paged above") };
        if new_len < *len {
            // Bytes past the new end must read as zeros if the file grows again; the
            // pages past it go (unmapped: a fault there is a SIGBUS).
            pages.truncate(new_len.div_ceil(PAGE_SIZE) as usize);
            if !new_len.is_multiple_of(PAGE_SIZE) {
                let frame = pages.existing((new_len / PAGE_SIZE) as usize);
                if frame != 0 {
                    let from = new_len as usize % PAGE;
                    // SAFETY: the file's frame, in the direct map; the range is in the page.
                    unsafe { core::ptr::write_bytes(frame_ptr(frame).add(from), 0, PAGE - from) };
                }
            }
        }
        pages.grow((new_len as usize).div_ceil(PAGE));
        *len = new_len;
        self.times.modified();
        self.remove_privs();
        Ok(())
    }

    /// As tmpfs: allocating (mode 0 grows the file, KEEP_SIZE changes nothing a program
    /// can see) and punching holes (the range reads as zeros); other modes EOPNOTSUPP.
    fn fallocate(&self, mode: u32, offset: u64, len: u64) -> KResult<()> {
        use crate::syscall::fs::{FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE};
        let end = offset.checked_add(len).filter(|&e| e <= max_file()).ok_or(EFBIG)?;
        // Pages are not set aside, but a range no free memory could hold is ENOSPC, as a
        // tmpfs too small for it.
        if mode & FALLOC_FL_PUNCH_HOLE == 0 && len.div_ceil(PAGE_SIZE) > crate::mm::frame::stats().1 {
            return Err(ENOSPC);
        }
        match mode {
            0 => {
                if end > self.stat().size {
                    self.truncate(end)?;
                }
                Ok(())
            }
            FALLOC_FL_KEEP_SIZE => Ok(()),
            m if m == FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE => {
                let mut data = self.data.lock();
                let pages = data.paged()?;
                let Data::Paged { len: size, .. } = &*data else { unreachable!("paged above") };
                let end = end.min(*size);
                if offset >= end {
                    return Ok(());
                }
                let (first, last) = ((offset / PAGE_SIZE) as usize, ((end - 1) / PAGE_SIZE) as usize);
                for (&index, slot) in pages.lock().slots.range(first..=last) {
                    let page_start = index as u64 * PAGE_SIZE;
                    let from = offset.saturating_sub(page_start) as usize;
                    let to = (end - page_start).min(PAGE_SIZE) as usize;
                    // SAFETY: the file's frame, in the direct map; the range is in the page.
                    unsafe { core::ptr::write_bytes(frame_ptr(slot.frame).add(from), 0, to - from) };
                }
                Ok(())
            }
            _ => Err(EOPNOTSUPP),
        }
    }

    fn contents(&self) -> KResult<FileBytes> {
        let data = self.data.lock();
        match &*data {
            Data::Static(s) => Ok(FileBytes::Static(s)),
            Data::Paged { len, .. } => {
                if *len > 16 << 20 {
                    return Err(ENOMEM);
                }
                let mut bytes = Vec::new();
                bytes.try_reserve_exact(*len as usize).map_err(|_| ENOMEM)?;
                bytes.resize(*len as usize, 0);
                drop(data);
                let n = self.read(0, &mut IoBuf::Kernel(&mut bytes), false)?;
                bytes.truncate(n);
                Ok(FileBytes::Owned(bytes))
            }
        }
    }

    fn mmap_pages(&self, offset: u64, _len: u64) -> KResult<(Arc<SharedPages>, usize)> {
        // (`shared_mappings` counts the references this hands out.)
        Ok((self.data.lock().paged()?, (offset / PAGE_SIZE) as usize))
    }

    fn set_mode(&self, mode: u32) -> KResult<()> {
        self.mode.store(mode & 0o7777, Ordering::Relaxed);
        self.times.changed();
        Ok(())
    }

    fn set_owner(&self, uid: Option<u32>, gid: Option<u32>) -> KResult<()> {
        self.owner.set(uid, gid);
        self.times.changed();
        Ok(())
    }

    fn set_times(&self, atime: TimeSet, mtime: TimeSet) -> KResult<()> {
        self.times.set(atime, mtime);
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

pub struct RamSymlink {
    ino: u64,
    owner: Owner,
    target: String,
    xattrs: Xattrs,
    times: Times,
}

impl Node for RamSymlink {
    stored_xattrs!();

    fn stat(&self) -> Stat {
        let mut st = Stat { ino: self.ino, mode: FileType::Symlink.mode_bits() | 0o777, nlink: 1, size: self.target.len() as u64, ..Stat::default() };
        self.times.fill(&mut st);
        self.owner.fill(&mut st);
        st
    }

    fn set_times(&self, atime: TimeSet, mtime: TimeSet) -> KResult<()> {
        self.times.set(atime, mtime);
        Ok(())
    }

    fn readlink(&self) -> KResult<String> {
        Ok(self.target.clone())
    }

    fn set_owner(&self, uid: Option<u32>, gid: Option<u32>) -> KResult<()> {
        self.owner.set(uid, gid);
        self.times.changed();
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

pub struct RamDir {
    ino: u64,
    mode: AtomicU32,
    owner: Owner,
    entries: SpinLock<BTreeMap<String, Arc<dyn Node>>>,
    xattrs: Xattrs,
    times: Times,
}

impl RamDir {
    /// A directory of root's (the root, mount points).
    pub fn new(mode: u32) -> Arc<Self> {
        Self::with_owner(mode, Owner::root())
    }

    pub fn with_owner(mode: u32, owner: Owner) -> Arc<Self> {
        Arc::new(Self { ino: alloc_ino(), mode: AtomicU32::new(mode), owner, entries: SpinLock::new(BTreeMap::new()), xattrs: Xattrs::default(), times: Times::now() })
    }


    /// Adds a node (a device, a file from the archive) under `name`.
    pub fn add(&self, name: &str, node: Arc<dyn Node>) -> KResult<()> {
        self.link(name, node)
    }
}

static ROOT: SpinLock<Option<Arc<RamDir>>> = SpinLock::new(None);

/// The root directory.
pub fn root() -> Arc<RamDir> {
    ROOT.lock().get_or_insert_with(|| RamDir::new(0o755)).clone()
}

fn bump_links(node: &Arc<dyn Node>, delta: i32) {
    if let Some(f) = node.as_any().downcast_ref::<RamFile>() {
        let n = f.nlink.load(Ordering::Relaxed) as i32 + delta;
        f.nlink.store(n.max(0) as u32, Ordering::Relaxed);
        f.times.changed();
    }
}

impl Node for RamDir {
    stored_xattrs!();

    fn stat(&self) -> Stat {
        let subdirs = self.entries.lock().values().filter(|n| n.file_type() == FileType::Directory).count();
        let mut st = Stat { ino: self.ino, mode: FileType::Directory.mode_bits() | self.mode.load(Ordering::Relaxed), nlink: 2 + subdirs as u32, size: 4096, ..Stat::default() };
        self.times.fill(&mut st);
        self.owner.fill(&mut st);
        st
    }

    fn read(&self, _offset: u64, _buf: &mut IoBuf, _nonblock: bool) -> KResult<usize> {
        Err(EISDIR)
    }

    fn write(&self, _offset: u64, _buf: &IoBuf, _nonblock: bool) -> KResult<usize> {
        Err(EISDIR)
    }

    fn truncate(&self, _len: u64) -> KResult<()> {
        Err(EISDIR)
    }

    fn lookup(&self, name: &str) -> KResult<Arc<dyn Node>> {
        self.entries.lock().get(name).cloned().ok_or(ENOENT)
    }

    /// A new node is its creator's (`Owner::of_creator`).
    fn create(&self, name: &str, kind: FileType, mode: u32) -> KResult<Arc<dyn Node>> {
        let mut mode = mode & 0o7777;
        let owner = Owner::of_creator(super::perm::inherit_group(&self.stat(), kind, &mut mode));
        let node: Arc<dyn Node> = match kind {
            FileType::Directory => RamDir::with_owner(mode, owner),
            FileType::Regular => RamFile::with_owner(mode, &[], owner),
            _ => return Err(EINVAL),
        };
        self.link(name, Arc::clone(&node))?;
        Ok(node)
    }

    fn link(&self, name: &str, node: Arc<dyn Node>) -> KResult<()> {
        let mut entries = self.entries.lock();
        if entries.contains_key(name) {
            return Err(EEXIST);
        }
        bump_links(&node, 1);
        entries.insert(name.to_string(), node);
        self.times.modified();
        Ok(())
    }

    fn unlink(&self, name: &str, dir: bool) -> KResult<()> {
        let mut entries = self.entries.lock();
        let node = entries.get(name).ok_or(ENOENT)?;
        let is_dir = node.file_type() == FileType::Directory;
        match (dir, is_dir) {
            (true, false) => return Err(ENOTDIR),
            (false, true) => return Err(EISDIR),
            (true, true) if !node.entries()?.is_empty() => return Err(ENOTEMPTY),
            _ => {}
        }
        let node = entries.remove(name).expect("checked above");
        bump_links(&node, -1);
        self.times.modified();
        Ok(())
    }

    fn symlink(&self, name: &str, target: &str) -> KResult<()> {
        let owner = Owner::of_creator(super::perm::inherit_group(&self.stat(), FileType::Symlink, &mut 0));
        let node: Arc<dyn Node> = Arc::new(RamSymlink { ino: alloc_ino(), owner, target: target.to_string(), xattrs: Xattrs::default(), times: Times::now() });
        self.link(name, node)
    }

    fn detach(&self, name: &str) -> KResult<Arc<dyn Node>> {
        let node = self.entries.lock().remove(name).ok_or(ENOENT)?;
        bump_links(&node, -1);
        self.times.modified();
        Ok(node)
    }

    fn entries(&self) -> KResult<Vec<DirEntry>> {
        Ok(self
            .entries
            .lock()
            .iter()
            .map(|(name, node)| DirEntry { name: name.clone(), ino: node.stat().ino, kind: node.file_type() })
            .collect())
    }

    fn set_mode(&self, mode: u32) -> KResult<()> {
        self.mode.store(mode & 0o7777, Ordering::Relaxed);
        self.times.changed();
        Ok(())
    }

    fn set_owner(&self, uid: Option<u32>, gid: Option<u32>) -> KResult<()> {
        self.owner.set(uid, gid);
        self.times.changed();
        Ok(())
    }

    fn set_times(&self, atime: TimeSet, mtime: TimeSet) -> KResult<()> {
        self.times.set(atime, mtime);
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
