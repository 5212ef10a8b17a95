//! The VFS side: one `Ext2Node` per inode in use (the file system's node table keeps
//! them unique), each operation one critical section under the file system's lock.
//!
//! An inode unlinked while a node for it is alive is freed when the node goes (the
//! "orphan" flag), as Linux frees an open, unlinked file at its last close. Nothing here
//! drops a node while holding the lock (a node's drop may take it).

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::any::Any;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use super::dir::kind_of;
use super::inode::Inode;
use super::{corrupt, Ext2Fs, State};
use crate::errno::*;
use crate::mm::uaccess::NoFill;

/// How much of a user buffer one locked copy takes (brought in first: `copy_guard`).
const COPY_CHUNK: usize = 256 * 1024;
/// Times a copy starts again without progress after pages of its buffer went (memory
/// short) before it gives up with EFAULT.
const COPY_RETRIES: u32 = 4;
use crate::fs::{perm, DirEntry, FileType, IoBuf, Node, Stat, StatFs, TimeSet};
use crate::mm::filemap::{FileCache, PageIo, ReadDone};
use crate::sync::MutexGuard;

/// Most links to one inode (Linux's EXT2_LINK_MAX).
const LINK_MAX: u16 = 32000;
/// The page size of `read_page` and `write_page`.
pub const PAGE: usize = 4096;

pub struct Ext2Node {
    fs: Arc<Ext2Fs>,
    ino: u32,
    kind: FileType,
    /// Unlinked while in use: the last drop frees the inode.
    orphan: Arc<AtomicBool>,
    /// Where this file's next new block is best allocated (after its last one).
    goal: AtomicU32,
    /// A regular file's page cache (the file system keeps it while the inode lives).
    cache: Option<Arc<FileCache>>,
    /// O_DIRECT reads in flight straight from this file's blocks.
    dio: Arc<DirectReads>,
    /// The file's size, as reads need it at every call (`UNKNOWN_SIZE` until read from
    /// the inode; kept by this node, the only one of its inode, as it changes it).
    size: AtomicU64,
}

const UNKNOWN_SIZE: u64 = u64::MAX;

/// Counts O_DIRECT reads in flight; a truncate frees blocks only when none is.
#[derive(Default)]
struct DirectReads {
    count: core::sync::atomic::AtomicUsize,
    ended: crate::task::wait::WaitQueue,
}

/// One O_DIRECT read in flight (dropped when it completes).
struct DirectRead(Arc<DirectReads>);

impl DirectRead {
    fn start(dio: &Arc<DirectReads>) -> Self {
        dio.count.fetch_add(1, Ordering::AcqRel);
        Self(Arc::clone(dio))
    }
}

impl Drop for DirectRead {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.ended.wake_all();
        }
    }
}

fn now_ns() -> u64 {
    crate::time::realtime_ns()
}

/// Checks a name for a new entry.
fn check_name(name: &str) -> KResult<()> {
    if name.is_empty() || name.contains('/') {
        return Err(EINVAL);
    }
    if name.len() > 255 {
        return Err(ENAMETOOLONG);
    }
    Ok(())
}

// `read_page`, `write_page` and `block_map` are the seam for a page cache and O_DIRECT
// (only `test=ext2-pages` calls them yet); `ino` is for them too.
#[allow(dead_code)]
impl Ext2Node {
    pub(super) fn new(fs: Arc<Ext2Fs>, ino: u32, kind: FileType, orphan: Arc<AtomicBool>, cache: Option<Arc<FileCache>>) -> Self {
        let goal = fs.group_start(ino);
        Self { fs, ino, kind, orphan, goal: AtomicU32::new(goal), cache, dio: Arc::default(), size: AtomicU64::new(UNKNOWN_SIZE) }
    }

    pub fn ino(&self) -> u32 {
        self.ino
    }

    /// The file system's block size (the unit of `block_map`).
    pub fn block_size(&self) -> usize {
        self.fs.geo.block_size
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.fs.st.lock()
    }

    /// The lock, for an operation that changes the file system (EROFS if read-only).
    fn lock_rw(&self) -> KResult<MutexGuard<'_, State>> {
        let mut st = self.fs.st.lock();
        self.fs.changing(&mut st)?;
        Ok(st)
    }

    /// Readies a copy between `buf` and the file made with the lock held: the buffer's
    /// pages are brought in now (for writing them, with `write`), and until the guard
    /// goes the copy reads no file page in, since that may need this lock (a buffer
    /// mapping a file of this file system): a page gone meanwhile ends the copy with
    /// EFILL, and the caller lets go of the lock and goes on. Callers copy a user buffer
    /// `COPY_CHUNK` bytes at a time, so what was brought in is used before memory runs
    /// out, however large the buffer.
    fn copy_guard(buf: &IoBuf, from: usize, write: bool) -> NoFill {
        if let Some(part) = buf.window(from, COPY_CHUNK) {
            part.prefault(write);
        }
        NoFill::new()
    }

    fn inode(&self, st: &mut State) -> KResult<Inode> {
        self.fs.read_inode(st, self.ino)
    }

    fn stat_of(&self, ino: u32, inode: &Inode) -> Stat {
        let device = matches!(inode.kind(), Some(FileType::CharDevice | FileType::BlockDevice));
        Stat {
            ino: u64::from(ino),
            mode: u32::from(inode.mode),
            uid: inode.uid,
            gid: inode.gid,
            nlink: u32::from(inode.links),
            size: inode.size,
            rdev: if device { inode.rdev() } else { 0 },
            atime_ns: inode.atime,
            mtime_ns: inode.mtime,
            ctime_ns: inode.ctime,
        }
    }

    /// Page `index` of the file (4096 bytes): zeros for holes and past the end.
    pub fn read_page(&self, index: u64, buf: &mut [u8; PAGE]) -> KResult<()> {
        let mut st = self.lock();
        let inode = self.inode(&mut st)?;
        let offset = index.checked_mul(PAGE as u64).ok_or(EFBIG)?;
        let n = self.fs.read_data(&mut st, &inode, offset, &mut IoBuf::Kernel(&mut buf[..]))?;
        buf[n..].fill(0);
        Ok(())
    }

    /// Writes the first `len` bytes of `buf` as page `index` (the file grows to cover
    /// them).
    pub fn write_page(&self, index: u64, buf: &[u8], len: usize) -> KResult<()> {
        let len = len.min(buf.len()).min(PAGE);
        let mut copy = Vec::from(&buf[..len]);
        let offset = index.checked_mul(PAGE as u64).ok_or(EFBIG)?;
        let n = self.write_blocks(offset, &IoBuf::Kernel(&mut copy))?;
        if n < len { Err(ENOSPC) } else { Ok(()) }
    }

    /// The disk block (in file system blocks) holding file block `file_block`; None for
    /// a hole. For O_DIRECT: a mapped block can be read or written in place.
    pub fn block_map(&self, file_block: u64) -> KResult<Option<u64>> {
        let mut st = self.lock();
        let inode = self.inode(&mut st)?;
        let b = self.fs.bmap(&mut st, &inode, file_block)?;
        Ok((b != 0).then_some(u64::from(b)))
    }

    /// Reads from the disk into `buf` (O_DIRECT, and the page cache's fills): a user
    /// buffer `COPY_CHUNK` bytes at a time (see `copy_guard`).
    fn read_uncached(&self, offset: u64, buf: &mut IoBuf) -> KResult<usize> {
        let (len, mut done, mut retries) = (buf.len(), 0, 0);
        loop {
            let mut part = buf.window(done, COPY_CHUNK);
            let r = match part.as_mut() {
                Some(p) => self.read_locked(offset + done as u64, p).map(|n| (done + n, n < p.len())),
                None => self.read_locked(offset, buf).map(|n| (n, true)),
            };
            match r {
                Ok((d, end)) => {
                    done = d;
                    if end || done >= len {
                        return Ok(done);
                    }
                    retries = 0;
                }
                // A page of the buffer went since it was brought in: again.
                Err(EFILL) if retries < COPY_RETRIES => retries += 1,
                Err(e) => return if done > 0 { Ok(done) } else { Err(if e == EFILL { EFAULT } else { e }) },
            }
        }
    }

    fn read_locked(&self, offset: u64, buf: &mut IoBuf) -> KResult<usize> {
        let _guard = Self::copy_guard(buf, 0, true);
        let mut st = self.lock();
        let inode = self.inode(&mut st)?;
        self.fs.read_data(&mut st, &inode, offset, buf)
    }

    /// O_DIRECT goes to the disk in whole sectors, from aligned addresses (as Linux's
    /// ext2, EINVAL otherwise).
    fn check_direct(&self, offset: u64, buf: &IoBuf) -> KResult<()> {
        match self.kind {
            FileType::Directory => Err(EISDIR),
            FileType::Regular if buf.direct_aligned(offset, 512) => Ok(()),
            _ => Err(EINVAL),
        }
    }

    /// A buffered write into the page cache: the blocks are allocated now (so ENOSPC
    /// comes with the write, as on Linux's ext2), the bytes copied into the file's pages,
    /// which become dirty and go to the disk on fsync, sync, umount, from the flusher,
    /// or here past the dirty limits. `nowait` (io_uring's inline try, RWF_NOWAIT): EAGAIN
    /// wherever it would sleep (the lock held, a page to read first, metadata not in the
    /// cache, the dirty limits reached).
    fn write_cached(&self, cache: &FileCache, offset: u64, buf: &IoBuf, nowait: bool) -> KResult<usize> {
        let len = buf.len();
        let end = offset.checked_add(len as u64).ok_or(EFBIG)?;
        if end > self.fs.max_size() {
            return Err(EFBIG);
        }
        if len == 0 {
            return Ok(0);
        }
        if nowait && cache.over_dirty_limit() {
            return Err(EAGAIN);
        }
        let (mut done, mut retries) = (0, 0);
        loop {
            if !nowait
                && let Err(e) = self.read_partial_pages(cache, offset + done as u64, end)
            {
                if done > 0 {
                    break;
                }
                return Err(e);
            }
            // A user buffer a chunk at a time, ending on a page of the file; a write that
            // must not sleep does not bring it in.
            let chunk_end = ((offset + (done + COPY_CHUNK) as u64) & !(PAGE as u64 - 1)).saturating_sub(offset) as usize;
            let part = buf.prefix(chunk_end.max(done + 1));
            let piece = part.as_ref().unwrap_or(buf);
            let _guard = if nowait { NoFill::new() } else { Self::copy_guard(buf, done, false) };
            let mut st = if nowait {
                let mut st = self.fs.st.try_lock().ok_or(EAGAIN)?;
                if st.clean_on_disk {
                    return Err(EAGAIN); // the superblock must be written first
                }
                self.fs.changing(&mut st)?;
                st
            } else {
                self.lock_rw()?
            };
            st.cache.nowait = nowait;
            let (n, r) = self.copy_into_pages(&mut st, cache, offset, piece, done);
            st.cache.nowait = false;
            drop(st);
            done += n;
            if n > 0 {
                retries = 0;
            }
            match r {
                Ok(()) if done < len => {} // the next chunk
                Ok(()) => break,
                // A page being read, or given back since it was read: wait, again.
                Err(EAGAIN) if !nowait => cache.wait_settled(offset + done as u64, end),
                // A page of the buffer went since it was brought in: again.
                Err(EFILL) if !nowait && retries < COPY_RETRIES => retries += 1,
                Err(EFILL) if done == 0 => return Err(if nowait { EAGAIN } else { EFAULT }),
                Err(e) if done == 0 => return Err(e),
                Err(_) => break,
            }
        }
        if !nowait && cache.over_dirty_limit() {
            // Errors are fsync's to report (the pages stay dirty).
            let _ = cache.sync(self);
        }
        Ok(done)
    }

    /// Reads in the first and last pages of a write to `[pos, end)` where the write
    /// covers them only in part and they hold file bytes.
    fn read_partial_pages(&self, cache: &FileCache, pos: u64, end: u64) -> KResult<()> {
        let size = self.size()?;
        for page in [pos / PAGE as u64, (end - 1) / PAGE as u64] {
            let start = page * PAGE as u64;
            let covered = pos <= start && end >= (start + PAGE as u64).min(size);
            if start < size && !covered {
                cache.populate(self, start, PAGE as u64, size)?;
            }
        }
        Ok(())
    }

    /// The locked part of a buffered write: bytes `done..` of `buf` go to their pages
    /// from `offset + done`. Returns how many went, and why it stopped short (EAGAIN: a
    /// page must be read or settle first).
    fn copy_into_pages(&self, st: &mut State, cache: &FileCache, offset: u64, buf: &IoBuf, done: usize) -> (usize, KResult<()>) {
        let fs = &self.fs;
        let mut inode = match self.inode(st) {
            Ok(inode) => inode,
            Err(e) => return (0, Err(e)),
        };
        let old_size = inode.size;
        let start = offset + done as u64;
        let bs = fs.geo.block_size as u64;
        if start > old_size && !old_size.is_multiple_of(bs) {
            // The old last block is zeroed past the end before the file grows over it
            // (disk I/O: not for a caller that must not sleep).
            if st.cache.nowait {
                return (0, Err(EAGAIN));
            }
            if let Err(e) = fs.zero_tail(st, &inode, old_size) {
                return (0, Err(e));
            }
        }
        let page_size = PAGE as u64;
        let mut goal = self.goal.load(Ordering::Relaxed);
        let mut copied = 0usize;
        let mut stop = Ok(());
        'pages: while done + copied < buf.len() {
            let pos = start + copied as u64;
            let (index, at) = (pos / page_size, (pos % page_size) as usize);
            let n = (PAGE - at).min(buf.len() - done - copied);
            let page_start = index * page_size;
            // Fresh: the page holds no file byte the write leaves (it starts as zeros).
            let file_end = (page_start + page_size).min(old_size);
            let fresh = old_size <= page_start || (at == 0 && pos + n as u64 >= file_end);
            let page = match cache.prepare_write(index, fresh) {
                Ok(page) => page,
                Err(e) => {
                    stop = Err(e);
                    break;
                }
            };
            // Dirty before its blocks exist: what the page holds is what they must get.
            cache.mark_dirty(index);
            for fb in pos / bs..=(pos + n as u64 - 1) / bs {
                match fs.bmap_alloc(st, &mut inode, fb, goal) {
                    Ok((block, _)) => goal = block + 1,
                    Err(e) => {
                        stop = Err(e);
                        break 'pages;
                    }
                }
            }
            if let Err(e) = cache.copy_in(index, &page, at, buf, done + copied, n) {
                stop = Err(e);
                break;
            }
            copied += n;
        }
        self.goal.store(goal, Ordering::Relaxed);
        if copied > 0 {
            inode.size = old_size.max(start + copied as u64);
            let t = now_ns();
            (inode.mtime, inode.ctime) = (t, t);
            remove_privs(&mut inode);
        }
        // Blocks allocated past the end for a page that was not written go again.
        let trimmed = if stop.is_err() { fs.trim_to_size(st, &mut inode) } else { Ok(()) };
        if let Err(e) = self.put_inode(st, &inode).and(trimmed) {
            return (copied, Err(e));
        }
        (copied, stop)
    }

    /// A write: to the disk, then into the pages cached (and with `add`, into new pages
    /// it fills).
    fn write_through(&self, offset: u64, buf: &IoBuf, add: bool) -> KResult<usize> {
        match self.kind {
            FileType::Directory => return Err(EISDIR),
            FileType::Regular => {}
            _ => return Err(EINVAL),
        }
        let r = self.write_blocks(offset, buf);
        if let Some(cache) = &self.cache {
            match r {
                Ok(n) => cache.wrote(offset, buf, n, if add { self.size().ok() } else { None }),
                // Blocks may have been written: what the cache holds there is unknown.
                Err(_) => cache.forget(offset, buf.len() as u64),
            }
        }
        r
    }

    /// Writes `buf` at `offset` to the disk (allocating blocks for holes), and updates
    /// the size and times: a user buffer `COPY_CHUNK` bytes at a time (see `copy_guard`).
    fn write_blocks(&self, offset: u64, buf: &IoBuf) -> KResult<usize> {
        let (len, mut done, mut retries) = (buf.len(), 0, 0);
        while done < len {
            let part = buf.window(done, COPY_CHUNK);
            let (base, piece) = match &part {
                Some(p) => (done, p),
                None => (0, buf),
            };
            match self.write_locked(offset + base as u64, piece) {
                Ok(n) if n > 0 => {
                    done = base + n;
                    if part.is_none() {
                        break;
                    }
                    retries = 0;
                }
                Ok(_) => break,
                // A page of the buffer went since it was brought in: again.
                Err(EFILL) if retries < COPY_RETRIES => retries += 1,
                Err(e) => return if done > 0 { Ok(done) } else { Err(if e == EFILL { EFAULT } else { e }) },
            }
        }
        Ok(done)
    }

    fn write_locked(&self, offset: u64, buf: &IoBuf) -> KResult<usize> {
        let _guard = Self::copy_guard(buf, 0, false);
        let mut st = self.lock_rw()?;
        let st = &mut *st;
        let mut inode = self.inode(st)?;
        let fs = &self.fs;
        let r = fs.write_data(st, &mut inode, offset, buf, self.goal.load(Ordering::Relaxed));
        let n = match r {
            Ok((n, goal)) => {
                self.goal.store(goal, Ordering::Relaxed);
                n
            }
            Err(_) => 0,
        };
        if n > 0 {
            inode.size = inode.size.max(offset + n as u64);
            let t = now_ns();
            (inode.mtime, inode.ctime) = (t, t);
            remove_privs(&mut inode);
        }
        let trimmed = if n < buf.len() { fs.trim_to_size(st, &mut inode) } else { Ok(()) };
        self.put_inode(st, &inode)?;
        trimmed?;
        r.map(|_| n)
    }

    /// Writes this file's changed inode (its size kept in memory for reads).
    fn put_inode(&self, st: &mut State, inode: &Inode) -> KResult<()> {
        let r = self.fs.write_inode(st, self.ino, inode);
        self.size.store(if r.is_ok() { inode.size } else { UNKNOWN_SIZE }, Ordering::Relaxed);
        r
    }

    /// The new node's inode: allocated near this directory, owned by the caller (the
    /// group as `perm::inherit_group` says), its times now.
    fn new_inode(&self, st: &mut State, dir: &Inode, kind: FileType, mode: u32) -> KResult<(u32, Inode)> {
        let mut mode = mode & 0o7777;
        let sgid = perm::inherit_group(&self.stat_of(self.ino, dir), kind, &mut mode);
        let cred = crate::task::cred::current();
        let ino = self.fs.alloc_inode(st, self.ino, kind == FileType::Directory)?;
        self.fs.clear_inode(st, ino)?;
        let t = now_ns();
        let inode = Inode {
            mode: (kind.mode_bits() | mode) as u16,
            uid: cred.fsuid,
            gid: sgid.unwrap_or(cred.fsgid),
            size: 0,
            atime: t,
            ctime: t,
            mtime: t,
            dtime: 0,
            links: 1,
            blocks: 0,
            flags: 0,
            block: [0; 15],
            file_acl: 0,
        };
        Ok((ino, inode))
    }

    /// Creates `name` of `kind`; `fill` gives the new inode its contents (a directory's
    /// first block, a symlink's target).
    fn make(&self, name: &str, kind: FileType, mode: u32, fill: impl FnOnce(&Ext2Fs, &mut State, u32, &mut Inode) -> KResult<()>) -> KResult<Arc<dyn Node>> {
        check_name(name)?;
        if self.kind != FileType::Directory {
            return Err(ENOTDIR);
        }
        let mut st = self.lock_rw()?;
        let st = &mut *st;
        let fs = &self.fs;
        let mut dir = self.inode(st)?;
        if dir.links == 0 {
            return Err(ENOENT);
        }
        if fs.dir_find(st, &dir, name.as_bytes())?.is_some() {
            return Err(EEXIST);
        }
        if kind == FileType::Directory && dir.links >= LINK_MAX {
            return Err(EMLINK);
        }
        let (ino, mut inode) = self.new_inode(st, &dir, kind, mode)?;
        let made = fill(fs, st, ino, &mut inode).and_then(|()| fs.write_inode(st, ino, &inode)).and_then(|()| fs.dir_add(st, self.ino, &mut dir, name.as_bytes(), ino, kind));
        if let Err(e) = made {
            // Undo: the inode (and any block it got) goes back.
            inode.links = 0;
            let _ = fs.write_inode(st, ino, &inode).and_then(|()| fs.evict(st, ino));
            let _ = fs.write_inode(st, self.ino, &dir);
            return Err(e);
        }
        if kind == FileType::Directory {
            dir.links += 1;
        }
        let t = now_ns();
        (dir.mtime, dir.ctime) = (t, t);
        fs.write_inode(st, self.ino, &dir)?;
        Ok(fs.node(st, ino, kind))
    }

    /// Inode `ino` lost its last link: freed now, or when its node goes.
    fn release(&self, st: &mut State, ino: u32) -> KResult<()> {
        match st.nodes.get(&ino) {
            Some((node, orphan)) if node.strong_count() > 0 => {
                orphan.store(true, Ordering::Relaxed);
                Ok(())
            }
            _ => self.fs.evict(st, ino),
        }
    }

    /// Drops one link of `inode` (a directory loses both of its own), and its parent's
    /// `..` link for a directory.
    fn drop_link(inode: &mut Inode, parent: &mut Inode) {
        if inode.kind() == Some(FileType::Directory) {
            inode.links = 0;
            parent.links = parent.links.saturating_sub(1);
        } else {
            inode.links = inode.links.saturating_sub(1);
        }
        inode.ctime = now_ns();
    }

    /// The other directory of a rename, on the same file system (EXDEV otherwise).
    fn same_fs<'a>(&self, node: &'a dyn Node) -> KResult<&'a Ext2Node> {
        match node.as_any().downcast_ref::<Ext2Node>() {
            Some(n) if Arc::ptr_eq(&n.fs, &self.fs) => Ok(n),
            _ => Err(EXDEV),
        }
    }
}

/// A write or truncate by a caller without CAP_FSETID clears the set-ID bits.
fn remove_privs(inode: &mut Inode) {
    let mode = u32::from(inode.mode);
    if mode & 0o6000 != 0
        && let Some(m) = perm::mode_after_write(mode & 0o7777)
    {
        inode.mode = ((mode & 0o170000) | (m & 0o7777)) as u16;
    }
}

impl Drop for Ext2Node {
    fn drop(&mut self) {
        if self.orphan.load(Ordering::Relaxed) {
            let mut st = self.fs.st.lock();
            st.nodes.remove(&self.ino);
            if let Err(e) = self.fs.evict(&mut st, self.ino) {
                log::warn!("ext2: freeing unlinked inode {}: error {}", self.ino, e.0);
            }
        }
    }
}

impl Node for Ext2Node {
    fn stat(&self) -> Stat {
        let mut st = self.lock();
        match self.inode(&mut st) {
            Ok(inode) => self.stat_of(self.ino, &inode),
            Err(_) => Stat { ino: u64::from(self.ino), mode: self.kind.mode_bits(), ..Stat::default() },
        }
    }

    fn file_type(&self) -> FileType {
        self.kind
    }

    /// i_blocks: data, indirect and xattr blocks, in 512-byte units.
    fn blocks(&self) -> Option<u64> {
        let mut st = self.lock();
        self.inode(&mut st).ok().map(|i| u64::from(i.blocks))
    }

    fn open(&self, flags: u32) -> KResult<()> {
        use crate::fs::file::{O_ACCMODE, O_RDONLY};
        if self.fs.read_only && flags & O_ACCMODE != O_RDONLY && self.kind == FileType::Regular {
            return Err(EROFS);
        }
        Ok(())
    }

    fn read(&self, offset: u64, buf: &mut IoBuf, _nonblock: bool) -> KResult<usize> {
        match self.kind {
            FileType::Directory => return Err(EISDIR),
            FileType::Regular => {}
            _ => return Err(EINVAL),
        }
        match &self.cache {
            Some(cache) => cache.read_file(self, offset, buf),
            None => self.read_uncached(offset, buf),
        }
    }

    /// O_DIRECT: from the disk, after the cache's changed pages went there.
    fn read_direct(&self, offset: u64, buf: &mut IoBuf, _nonblock: bool) -> KResult<usize> {
        self.check_direct(offset, buf)?;
        if let Some(cache) = &self.cache {
            cache.sync(self)?;
        }
        self.read_uncached(offset, buf)
    }

    /// Write-back: into the page cache (blocks allocated now), to the disk later.
    fn write(&self, offset: u64, buf: &IoBuf, _nonblock: bool) -> KResult<usize> {
        match (&self.cache, self.kind) {
            (Some(cache), FileType::Regular) => self.write_cached(cache, offset, buf, false),
            _ => self.write_through(offset, buf, true),
        }
    }

    /// O_DIRECT: in whole sectors, and only cached pages take the bytes.
    fn write_direct(&self, offset: u64, buf: &IoBuf, _nonblock: bool) -> KResult<usize> {
        self.check_direct(offset, buf)?;
        self.write_through(offset, buf, false)
    }

    fn truncate(&self, len: u64) -> KResult<()> {
        match self.kind {
            FileType::Directory => return Err(EISDIR),
            FileType::Regular => {}
            _ => return Err(EINVAL),
        }
        if len > self.fs.max_size() {
            return Err(EFBIG);
        }
        // No block is freed while an O_DIRECT read from it is in flight (a read starts
        // under the lock).
        let mut st = loop {
            let st = self.lock_rw()?;
            if self.dio.count.load(Ordering::Acquire) == 0 {
                break st;
            }
            drop(st);
            self.dio.ended.wait_uninterruptible(|| self.dio.count.load(Ordering::Acquire) == 0);
        };
        let st = &mut *st;
        let fs = &self.fs;
        let mut inode = self.inode(st)?;
        let bs = fs.geo.block_size as u64;
        let r = if len < inode.size {
            fs.free_from(st, &mut inode, len.div_ceil(bs)).and_then(|()| fs.zero_tail(st, &inode, len))
        } else {
            fs.zero_tail(st, &inode, inode.size)
        };
        if r.is_ok() {
            inode.size = len;
            if let Some(cache) = &self.cache {
                cache.truncate(len);
            }
        }
        let t = now_ns();
        (inode.mtime, inode.ctime) = (t, t);
        remove_privs(&mut inode);
        self.put_inode(st, &inode)?;
        r
    }

    /// fsync: what mappings changed, then the whole file system's metadata, are written
    /// back, then the disk flushed.
    fn sync(&self) -> KResult<()> {
        if let Some(cache) = &self.cache {
            cache.sync(self)?;
        }
        let mut st = self.lock();
        self.fs.sync(&mut st)
    }

    fn mmap_pages(&self, offset: u64, _len: u64) -> KResult<(Arc<crate::mm::user::SharedPages>, usize)> {
        Ok(self.cache.as_ref().ok_or(ENODEV)?.map(offset))
    }

    fn advise(&self, offset: u64, len: u64, advice: u32) -> KResult<()> {
        match &self.cache {
            Some(cache) => cache.advise(self, offset, len, advice),
            None => Ok(()),
        }
    }

    fn writeback(&self) -> KResult<()> {
        match &self.cache {
            Some(cache) => cache.sync(self),
            None => Ok(()),
        }
    }

    /// An O_DIRECT read inside the file, on one run of blocks, of a file no mapping
    /// could have changed (writes take the synchronous path, which keeps the cache
    /// coherent).
    fn direct_extent(&self, offset: u64, len: usize, write: bool, direct: bool) -> Option<crate::fs::DirectExtent> {
        if !direct || write || self.kind != FileType::Regular || self.cache.as_ref().is_some_and(|c| c.in_use() || c.dirty_pages() > 0) {
            return None;
        }
        if !offset.is_multiple_of(512) || !(len as u64).is_multiple_of(512) {
            return None;
        }
        let mut st = self.fs.st.try_lock()?;
        let block = self.fs.direct_run(&mut st, self.ino, offset, len)?;
        let (disk, sectors) = st.cache.disk();
        // Counted under the lock: a truncate waits for it before freeing blocks.
        let hold = DirectRead::start(&self.dio);
        Some((Arc::clone(disk), block * sectors + (offset % self.fs.geo.block_size as u64) / 512, Some(Box::new(hold))))
    }

    fn page_cache(&self) -> Option<(&FileCache, &dyn PageIo)> {
        self.cache.as_deref().map(|c| (c, self as &dyn PageIo))
    }

    fn lookup(&self, name: &str) -> KResult<Arc<dyn Node>> {
        if self.kind != FileType::Directory {
            return Err(ENOTDIR);
        }
        if name.len() > 255 {
            return Err(ENAMETOOLONG);
        }
        let mut st = self.lock();
        let st = &mut *st;
        let dir = self.inode(st)?;
        let found = self.fs.dir_find(st, &dir, name.as_bytes())?.ok_or(ENOENT)?;
        let child = self.fs.read_inode(st, found.ino)?;
        let kind = child.kind().ok_or_else(|| corrupt(format_args!("inode {} has mode {:#o}", found.ino, child.mode)))?;
        if child.links == 0 {
            return Err(corrupt(format_args!("entry {name:?} names deleted inode {}", found.ino)));
        }
        Ok(self.fs.node(st, found.ino, kind))
    }

    fn lookup_cached(&self) -> bool {
        false
    }

    fn mount_id(&self) -> usize {
        self.fs.id
    }

    fn create(&self, name: &str, kind: FileType, mode: u32) -> KResult<Arc<dyn Node>> {
        match kind {
            FileType::Regular => self.make(name, kind, mode, |_, _, _, _| Ok(())),
            FileType::Directory => self.make(name, kind, mode, |fs, st, ino, inode| {
                let b = fs.alloc_for(st, inode, fs.group_start(ino))?;
                inode.block[0] = b;
                inode.size = fs.geo.block_size as u64;
                inode.links = 2;
                fs.dir_init(st, b, ino, self.ino)
            }),
            _ => Err(EPERM),
        }
    }

    fn symlink(&self, name: &str, target: &str) -> KResult<()> {
        let bs = self.fs.geo.block_size;
        if target.len() >= bs.min(4096) {
            return Err(ENAMETOOLONG);
        }
        self.make(name, FileType::Symlink, 0o777, |fs, st, ino, inode| {
            let t = target.as_bytes();
            inode.size = t.len() as u64;
            if t.len() < 60 {
                // A fast symlink: the target in i_block.
                let mut raw = [0u8; 60];
                raw[..t.len()].copy_from_slice(t);
                for (i, b) in inode.block.iter_mut().enumerate() {
                    *b = u32::from_le_bytes(raw[i * 4..i * 4 + 4].try_into().expect("4 bytes"));
                }
                return Ok(());
            }
            let b = fs.alloc_for(st, inode, fs.group_start(ino))?;
            inode.block[0] = b;
            st.cache.zeroed(b)?[..t.len()].copy_from_slice(t);
            Ok(())
        })
        .map(drop)
    }

    fn readlink(&self) -> KResult<String> {
        if self.kind != FileType::Symlink {
            return Err(EINVAL);
        }
        let mut st = self.lock();
        let st = &mut *st;
        let inode = self.inode(st)?;
        let bs = self.fs.geo.block_size;
        let len = inode.size as usize;
        if inode.size >= bs.min(4096) as u64 {
            return Err(corrupt(format_args!("symlink {} of {} bytes", self.ino, inode.size)));
        }
        let bytes = if inode.fast_symlink(bs) {
            if len >= 60 {
                return Err(corrupt(format_args!("fast symlink {} of {len} bytes", self.ino)));
            }
            let mut raw = [0u8; 60];
            for (i, b) in inode.block.iter().enumerate() {
                raw[i * 4..i * 4 + 4].copy_from_slice(&b.to_le_bytes());
            }
            Vec::from(&raw[..len])
        } else {
            let b = self.fs.bmap(st, &inode, 0)?;
            if b == 0 {
                return Err(corrupt(format_args!("symlink {} without a block", self.ino)));
            }
            Vec::from(&st.cache.get(b)?[..len])
        };
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn link(&self, name: &str, node: Arc<dyn Node>) -> KResult<()> {
        check_name(name)?;
        if self.kind != FileType::Directory {
            return Err(ENOTDIR);
        }
        let target = self.same_fs(&*node)?;
        if target.kind == FileType::Directory {
            return Err(EPERM);
        }
        let mut st = self.lock_rw()?;
        let st = &mut *st;
        let fs = &self.fs;
        let mut dir = self.inode(st)?;
        if fs.dir_find(st, &dir, name.as_bytes())?.is_some() {
            return Err(EEXIST);
        }
        let mut inode = fs.read_inode(st, target.ino)?;
        if inode.links == 0 {
            return Err(ENOENT);
        }
        if inode.links >= LINK_MAX {
            return Err(EMLINK);
        }
        let added = fs.dir_add(st, self.ino, &mut dir, name.as_bytes(), target.ino, target.kind);
        let t = now_ns();
        if added.is_ok() {
            inode.links += 1;
            inode.ctime = t;
            fs.write_inode(st, target.ino, &inode)?;
            (dir.mtime, dir.ctime) = (t, t);
        }
        fs.write_inode(st, self.ino, &dir)?;
        added
    }

    fn unlink(&self, name: &str, want_dir: bool) -> KResult<()> {
        if self.kind != FileType::Directory {
            return Err(ENOTDIR);
        }
        let mut st = self.lock_rw()?;
        let st = &mut *st;
        let fs = &self.fs;
        let mut dir = self.inode(st)?;
        let found = fs.dir_find(st, &dir, name.as_bytes())?.ok_or(ENOENT)?;
        let mut inode = fs.read_inode(st, found.ino)?;
        let is_dir = inode.kind() == Some(FileType::Directory);
        match (want_dir, is_dir) {
            (true, false) => return Err(ENOTDIR),
            (false, true) => return Err(EISDIR),
            (true, true) if !fs.dir_is_empty(st, &inode)? => return Err(ENOTEMPTY),
            _ => {}
        }
        fs.dir_remove(st, &mut dir, name.as_bytes())?;
        Self::drop_link(&mut inode, &mut dir);
        let t = now_ns();
        (dir.mtime, dir.ctime) = (t, t);
        fs.write_inode(st, found.ino, &inode)?;
        fs.write_inode(st, self.ino, &dir)?;
        if inode.links == 0 {
            self.release(st, found.ino)?;
        }
        Ok(())
    }

    fn entries(&self) -> KResult<Vec<DirEntry>> {
        if self.kind != FileType::Directory {
            return Err(ENOTDIR);
        }
        let mut st = self.lock();
        let st = &mut *st;
        let dir = self.inode(st)?;
        let list = self.fs.dir_list(st, &dir)?;
        let mut out = Vec::with_capacity(list.len());
        for (name, ino, ftype) in list {
            let kind = match kind_of(ftype) {
                Some(k) if self.fs.geo.filetype => k,
                _ => self.fs.read_inode(st, ino)?.kind().unwrap_or(FileType::Regular),
            };
            out.push(DirEntry { name, ino: u64::from(ino), kind });
        }
        Ok(out)
    }

    fn rename(&self, old: &str, new_dir: &Arc<dyn Node>, new: &str) -> KResult<()> {
        check_name(new)?;
        let nd = self.same_fs(&**new_dir)?;
        if self.kind != FileType::Directory || nd.kind != FileType::Directory {
            return Err(ENOTDIR);
        }
        let mut st = self.lock_rw()?;
        let st = &mut *st;
        let fs = &self.fs;
        let same_dir = nd.ino == self.ino;
        let mut odir = self.inode(st)?;
        let src = fs.dir_find(st, &odir, old.as_bytes())?.ok_or(ENOENT)?;
        let mut inode = fs.read_inode(st, src.ino)?;
        let kind = inode.kind().ok_or_else(|| corrupt(format_args!("inode {} has mode {:#o}", src.ino, inode.mode)))?;
        let is_dir = kind == FileType::Directory;
        let mut ndir_own = if same_dir { None } else { Some(fs.read_inode(st, nd.ino)?) };
        let mut victim = None;
        {
            let tdir = ndir_own.as_mut().unwrap_or(&mut odir);
            match fs.dir_find(st, tdir, new.as_bytes())? {
                Some(ex) if ex.ino == src.ino => return Ok(()),
                Some(ex) => {
                    let mut target = fs.read_inode(st, ex.ino)?;
                    let target_dir = target.kind() == Some(FileType::Directory);
                    match (is_dir, target_dir) {
                        (true, false) => return Err(ENOTDIR),
                        (false, true) => return Err(EISDIR),
                        (true, true) if !fs.dir_is_empty(st, &target)? => return Err(ENOTEMPTY),
                        _ => {}
                    }
                    fs.dir_set(st, &ex, src.ino, kind)?;
                    Self::drop_link(&mut target, tdir);
                    fs.write_inode(st, ex.ino, &target)?;
                    victim = (target.links == 0).then_some(ex.ino);
                }
                None => {
                    if is_dir && !same_dir && tdir.links >= LINK_MAX {
                        return Err(EMLINK);
                    }
                    fs.dir_add(st, nd.ino, tdir, new.as_bytes(), src.ino, kind)?;
                }
            }
        }
        fs.dir_remove(st, &mut odir, old.as_bytes())?;
        if is_dir && !same_dir {
            fs.set_dotdot(st, &inode, nd.ino)?;
            odir.links = odir.links.saturating_sub(1);
            if let Some(n) = ndir_own.as_mut() {
                n.links += 1;
            }
        }
        let t = now_ns();
        inode.ctime = t;
        (odir.mtime, odir.ctime) = (t, t);
        fs.write_inode(st, src.ino, &inode)?;
        fs.write_inode(st, self.ino, &odir)?;
        if let Some(mut n) = ndir_own {
            (n.mtime, n.ctime) = (t, t);
            fs.write_inode(st, nd.ino, &n)?;
        }
        if let Some(v) = victim {
            self.release(st, v)?;
        }
        Ok(())
    }

    fn set_mode(&self, mode: u32) -> KResult<()> {
        let mut st = self.lock_rw()?;
        let mut inode = self.inode(&mut st)?;
        inode.mode = (inode.mode & 0o170000) | (mode & 0o7777) as u16;
        inode.ctime = now_ns();
        self.fs.write_inode(&mut st, self.ino, &inode)
    }

    fn set_owner(&self, uid: Option<u32>, gid: Option<u32>) -> KResult<()> {
        let mut st = self.lock_rw()?;
        let mut inode = self.inode(&mut st)?;
        inode.uid = uid.unwrap_or(inode.uid);
        inode.gid = gid.unwrap_or(inode.gid);
        inode.ctime = now_ns();
        self.fs.write_inode(&mut st, self.ino, &inode)
    }

    fn set_times(&self, atime: TimeSet, mtime: TimeSet) -> KResult<()> {
        let mut st = self.lock_rw()?;
        let mut inode = self.inode(&mut st)?;
        let now = now_ns();
        for (slot, t) in [(&mut inode.atime, atime), (&mut inode.mtime, mtime)] {
            match t {
                TimeSet::Keep => {}
                TimeSet::Now => *slot = now,
                TimeSet::At(ns) => *slot = ns,
            }
        }
        inode.ctime = now;
        self.fs.write_inode(&mut st, self.ino, &inode)
    }

    fn statfs(&self) -> KResult<StatFs> {
        Ok(self.fs.statfs())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl PageIo for Ext2Node {
    /// 128 KiB: two disk runs of the longest kind.
    fn max_pages(&self) -> usize {
        32
    }

    fn read_at(&self, pos: u64, dst: &mut [u8]) -> KResult<usize> {
        self.read_uncached(pos, &mut IoBuf::Kernel(dst))
    }

    fn read_frames(&self, pos: u64, frames: &[u64]) -> Option<KResult<usize>> {
        let mut st = self.lock();
        Some(self.inode(&mut st).and_then(|inode| self.fs.read_into_frames(&mut st, &inode, pos, frames)))
    }

    /// The disk reads start now when the inode and its block map are cached and the
    /// lock is free (a path that would sleep is the caller's to take otherwise).
    fn read_at_async(&self, pos: u64, len: usize, done: ReadDone) -> Result<(), ReadDone> {
        let Some(mut st) = self.fs.st.try_lock() else { return Err(done) };
        let Ok((total, runs)) = self.fs.plan_read(&mut st, self.ino, pos, len) else { return Err(done) };
        let (disk, sectors) = st.cache.disk();
        let disk = Arc::clone(disk);
        drop(st);
        let bs = self.fs.geo.block_size;
        let runs: Vec<(usize, u64, usize)> = runs.iter().map(|&(at, block, blocks)| (at, u64::from(block) * sectors, blocks as usize * bs)).collect();
        disk.read_runs(len, total, &runs, done)
    }

    /// Writeback: the bytes of cached pages to their blocks (allocated for a mapping's
    /// store into a hole), never past the end of the file; the times stay.
    fn write_at(&self, pos: u64, src: &[u8]) -> KResult<usize> {
        let mut st = self.lock_rw()?;
        let st = &mut *st;
        let mut inode = self.inode(st)?;
        let n = (src.len() as u64).min(inode.size.saturating_sub(pos)) as usize;
        if n == 0 {
            return Ok(0);
        }
        let mut copy = Vec::new();
        copy.try_reserve_exact(n).map_err(|_| ENOMEM)?;
        copy.extend_from_slice(&src[..n]);
        let r = self.fs.write_data(st, &mut inode, pos, &IoBuf::Kernel(&mut copy), self.goal.load(Ordering::Relaxed));
        if let Ok((_, goal)) = r {
            self.goal.store(goal, Ordering::Relaxed);
        }
        self.put_inode(st, &inode)?;
        r.map(|(n, _)| n)
    }

    fn write_nowait(&self, pos: u64, buf: &IoBuf) -> Option<KResult<usize>> {
        match (&self.cache, self.kind) {
            (Some(cache), FileType::Regular) => Some(self.write_cached(cache, pos, buf, true)),
            _ => None,
        }
    }

    fn size(&self) -> KResult<u64> {
        match self.size.load(Ordering::Relaxed) {
            UNKNOWN_SIZE => {
                let mut st = self.lock();
                let size = self.inode(&mut st)?.size;
                self.size.store(size, Ordering::Relaxed);
                Ok(size)
            }
            size => Ok(size),
        }
    }
}
