//! A 9P2000.L share as part of the file tree (mounted at `/mnt/TAG` at boot, and
//! wherever `mount -t 9p TAG DIR -o trans=virtio` puts it).
//!
//! Each node holds a fid walked to its file; reads and writes use a second fid opened
//! with Tlopen on first use. The server (our VMM or QEMU) confines everything to the
//! shared directory; paths are resolved here one component at a time (Twalk), so `..`
//! is handled by the VFS walk and symlinks are read (Treadlink) and followed inside
//! the guest's own tree.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::any::Any;
use core::sync::atomic::{AtomicU64, Ordering};

use super::{DirEntry, FileType, IoBuf, Node, Stat, TimeSet};
use crate::drivers::virtio::p9::*;
use crate::errno::*;
use crate::mm::filemap::{FileCache, PageIo, ReadDone};
use crate::sync::SpinLock;

const O_RDONLY: u32 = 0;
const O_RDWR: u32 = 2;
const O_DIRECTORY: u32 = 0o200000;
const AT_REMOVEDIR: u32 = 0x200;
const GETATTR_BASIC: u64 = 0x7ff;
const SETATTR_MODE: u32 = 0x1;
const SETATTR_UID: u32 = 0x2;
const SETATTR_GID: u32 = 0x4;
const SETATTR_SIZE: u32 = 0x8;
const SETATTR_ATIME: u32 = 0x10;
const SETATTR_MTIME: u32 = 0x20;
const SETATTR_ATIME_SET: u32 = 0x80;
const SETATTR_MTIME_SET: u32 = 0x100;

/// The shares the devices offer, by tag, with their root's qid.
static SHARES: SpinLock<Vec<(Arc<P9>, Qid)>> = SpinLock::new(Vec::new());

/// Records a device's share once it is attached.
pub fn add_share(p9: Arc<P9>, qid: Qid) {
    SHARES.lock().push((p9, qid));
}

/// The root directory of the share tagged `tag` (ENOENT: no device has it, as Linux's
/// virtio transport answers).
pub fn share_root(tag: &str) -> KResult<Arc<dyn Node>> {
    let shares = SHARES.lock();
    let (p9, qid) = shares.iter().find(|(p9, _)| p9.tag == tag).ok_or(ENOENT)?;
    Ok(P9Node::root(Arc::clone(p9), *qid))
}

/// What every node of one host file shares (nodes come and go with each walk): the
/// file's page cache, and what this client knows of the file.
pub struct P9Inode {
    pub cache: FileCache,
    /// The size reads stop at (`UNKNOWN` until asked; kept as this client writes).
    size: AtomicU64,
    /// The host's (mtime, size) when the cache was last known to match the file: an open
    /// that finds them changed drops the cache (close-to-open consistency, as NFS). None
    /// after our own writes (whose times only the host knows).
    stamp: SpinLock<Option<(u64, u64)>>,
}

const UNKNOWN: u64 = u64::MAX;

/// The inodes of regular files by (share, qid.path), kept while nodes use them or their
/// cache holds pages (the next open finds the pages, after checking them).
static INODES: SpinLock<BTreeMap<(usize, u64), Arc<P9Inode>>> = SpinLock::new(BTreeMap::new());

fn inode_of(p9: &Arc<P9>, qid: Qid) -> Option<Arc<P9Inode>> {
    if qid.kind & (QTDIR | QTSYMLINK) != 0 {
        return None;
    }
    let key = (Arc::as_ptr(p9) as usize, qid.path);
    let mut inodes = INODES.lock();
    if let Some(inode) = inodes.get(&key) {
        return Some(Arc::clone(inode));
    }
    if inodes.len().is_power_of_two() {
        inodes.retain(|_, i| Arc::strong_count(i) > 1 || !i.cache.is_empty());
    }
    let inode = Arc::new(P9Inode { cache: FileCache::new(), size: AtomicU64::new(UNKNOWN), stamp: SpinLock::new(None) });
    inodes.insert(key, Arc::clone(&inode));
    Some(inode)
}

pub struct P9Node {
    p9: Arc<P9>,
    fid: u32,
    qid: Qid,
    /// An opened fid for I/O, and whether it allows writing.
    io: SpinLock<Option<(u32, bool)>>,
    /// A regular file's shared state (its page cache).
    inode: Option<Arc<P9Inode>>,
}

impl P9Node {
    pub fn root(p9: Arc<P9>, qid: Qid) -> Arc<Self> {
        Arc::new(Self { p9, fid: 0, qid: Qid { kind: qid.kind | QTDIR, ..qid }, io: SpinLock::new(None), inode: None })
    }

    fn child(&self, fid: u32, qid: Qid) -> Arc<Self> {
        let inode = inode_of(&self.p9, qid);
        Arc::new(Self { p9: Arc::clone(&self.p9), fid, qid, io: SpinLock::new(None), inode })
    }

    /// The file's size as this client knows it (asked of the host the first time).
    fn known_size(&self, inode: &P9Inode) -> KResult<u64> {
        match inode.size.load(Ordering::Relaxed) {
            UNKNOWN => {
                let size = self.getattr()?.size;
                inode.size.store(size, Ordering::Relaxed);
                Ok(size)
            }
            size => Ok(size),
        }
    }

    /// At open: if the host's file changed since the cache was filled (another client
    /// wrote it, or replaced it), the cache is read again.
    fn revalidate(&self, inode: &P9Inode) -> KResult<()> {
        let st = self.getattr()?;
        let now = (st.mtime_ns, st.size);
        let before = inode.stamp.lock().replace(now);
        let known = inode.size.swap(st.size, Ordering::Relaxed);
        // After our own writes only the size can tell (the host stamped the times).
        let changed = match before {
            Some(b) => b != now,
            None => known != UNKNOWN && known != st.size,
        };
        if changed {
            inode.cache.invalidate(self, 0, u64::MAX)?;
        }
        Ok(())
    }

    /// Tread straight from the host into `buf` (O_DIRECT, and the page cache's fills).
    fn read_uncached(&self, offset: u64, buf: &mut IoBuf) -> KResult<usize> {
        let fid = self.io_fid(false)?;
        let chunk = (self.p9.msize() - 11) as usize;
        let mut done = 0;
        while done < buf.len() {
            let want = (buf.len() - done).min(chunk);
            let mut r = self.p9.rpc(Msg::new(TREAD).u32(fid).u64(offset + done as u64).u32(want as u32), want + 11)?;
            let n = (r.u32()? as usize).min(want);
            buf.put(done, r.bytes(n)?)?;
            done += n;
            if n < want {
                break;
            }
        }
        Ok(done)
    }

    /// Twrite of `len` bytes at `offset`, each message's bytes from `get(done, chunk)`.
    fn write_uncached(&self, offset: u64, len: usize, mut get: impl FnMut(usize, &mut [u8]) -> KResult<()>) -> KResult<usize> {
        let fid = self.io_fid(true)?;
        let chunk = (self.p9.msize() - 23) as usize;
        let mut done = 0;
        let mut data = Vec::new();
        while done < len {
            let want = (len - done).min(chunk);
            data.resize(want, 0);
            get(done, &mut data)?;
            let msg = Msg::new(TWRITE).u32(fid).u64(offset + done as u64).u32(want as u32).bytes(&data);
            let n = (self.p9.rpc(msg, 64)?.u32()? as usize).min(want);
            done += n;
            if n < want {
                break;
            }
        }
        Ok(done)
    }

    /// The cache learns of a write of `n` bytes of `buf` at `offset` (write-through).
    fn wrote(&self, offset: u64, buf: &IoBuf, n: usize) {
        if let Some(inode) = &self.inode {
            let end = offset + n as u64;
            let known = inode.size.load(Ordering::Relaxed) != UNKNOWN;
            let size = known.then(|| inode.size.fetch_max(end, Ordering::Relaxed).max(end));
            inode.cache.wrote(offset, buf, n, size);
            *inode.stamp.lock() = None;
        }
    }

    /// The I/O fid, opened for writing when `write` is asked (read-only otherwise).
    fn io_fid(&self, write: bool) -> KResult<u32> {
        if let Some((fid, can_write)) = *self.io.lock()
            && (can_write || !write) {
                return Ok(fid);
            }
        let (fid, _) = self.p9.walk(self.fid, &[])?;
        let mode = if write { O_RDWR } else { O_RDONLY };
        let flags = if self.qid.kind & QTDIR != 0 { O_DIRECTORY } else { mode };
        if let Err(e) = self.p9.rpc(Msg::new(TLOPEN).u32(fid).u32(flags), 64) {
            self.p9.clunk(fid);
            return Err(e);
        }
        let old = self.io.lock().replace((fid, write));
        if let Some((old, _)) = old {
            self.p9.clunk(old);
        }
        Ok(fid)
    }

    /// Attribute `name`'s value (an empty name: the name list) through an xattr fid
    /// (Txattrwalk, then Tread).
    fn xattr_read(&self, name: &str) -> KResult<Vec<u8>> {
        let fid = self.p9.alloc_fid();
        let size = match self.p9.rpc(Msg::new(TXATTRWALK).u32(self.fid).u32(fid).str(name), 19).and_then(|mut r| r.u64()) {
            Ok(size) => size as usize,
            Err(e) => {
                self.p9.release_fid(fid);
                return Err(e);
            }
        };
        let read = (|| {
            if size > crate::fs::xattr::SIZE_MAX {
                return Err(E2BIG);
            }
            let chunk = (self.p9.msize() - 11) as usize;
            let mut out = Vec::with_capacity(size);
            while out.len() < size {
                let want = (size - out.len()).min(chunk);
                let mut r = self.p9.rpc(Msg::new(TREAD).u32(fid).u64(out.len() as u64).u32(want as u32), want + 11)?;
                let n = (r.u32()? as usize).min(want);
                out.extend_from_slice(r.bytes(n)?);
                if n == 0 {
                    break;
                }
            }
            Ok(out)
        })();
        let _ = self.p9.clunk_sync(fid);
        read
    }

    fn getattr(&self) -> KResult<Stat> {
        // The opened fid when there is one: it still answers after the file is unlinked.
        let fid = self.io.lock().map_or(self.fid, |(fid, _)| fid);
        let mut r = self.p9.rpc(Msg::new(TGETATTR).u32(fid).u64(GETATTR_BASIC), 256)?;
        let _valid = r.u64()?;
        let qid = r.qid()?;
        let mode = r.u32()?;
        let (uid, gid) = (r.u32()?, r.u32()?);
        let nlink = r.u64()?;
        let rdev = r.u64()?;
        let size = r.u64()?;
        let (_blksize, _blocks) = (r.u64()?, r.u64()?);
        let mut time = || -> KResult<u64> { Ok(r.u64()? * 1_000_000_000 + r.u64()?) };
        let (atime_ns, mtime_ns, ctime_ns) = (time()?, time()?, time()?);
        Ok(Stat { ino: qid.path, mode, uid, gid, nlink: nlink as u32, size, rdev, atime_ns, mtime_ns, ctime_ns })
    }

    fn setattr(&self, valid: u32, mode: u32, size: u64) -> KResult<()> {
        self.setattr_full(valid, mode, [0; 2], size, [0; 4])
    }

    /// Tsetattr: mode, owner and group, size, and the access and modification times
    /// (seconds, nanoseconds each), those `valid` names.
    fn setattr_full(&self, valid: u32, mode: u32, [uid, gid]: [u32; 2], size: u64, t: [u64; 4]) -> KResult<()> {
        let msg = Msg::new(TSETATTR).u32(self.fid).u32(valid).u32(mode).u32(uid).u32(gid).u64(size);
        self.p9.rpc(msg.u64(t[0]).u64(t[1]).u64(t[2]).u64(t[3]), 64).map(|_| ())
    }
}

impl Drop for P9Node {
    fn drop(&mut self) {
        let io = self.io.lock().take();
        if let Some((fid, _)) = io {
            self.p9.clunk(fid);
        }
        if self.fid != 0 {
            self.p9.clunk(self.fid);
        }
    }
}

impl Node for P9Node {
    fn stat(&self) -> Stat {
        // ENOENT: the file was removed while we hold it (an open, unlinked file).
        self.getattr().unwrap_or(Stat { ino: self.qid.path, mode: self.file_type().mode_bits() | 0o644, nlink: 0, ..Stat::default() })
    }

    fn file_type(&self) -> FileType {
        if self.qid.kind & QTDIR != 0 {
            FileType::Directory
        } else if self.qid.kind & QTSYMLINK != 0 {
            FileType::Symlink
        } else {
            FileType::Regular
        }
    }

    fn open(&self, flags: u32) -> KResult<()> {
        if self.qid.kind & (QTDIR | QTSYMLINK) == 0 {
            self.io_fid(flags & 3 != 0)?;
        }
        if let Some(inode) = &self.inode {
            self.revalidate(inode)?;
        }
        Ok(())
    }

    /// Through the page cache.
    fn read(&self, offset: u64, buf: &mut IoBuf, _nonblock: bool) -> KResult<usize> {
        if self.qid.kind & QTDIR != 0 {
            return Err(EISDIR);
        }
        match &self.inode {
            Some(inode) => inode.cache.read_file(self, offset, buf),
            None => self.read_uncached(offset, buf),
        }
    }

    /// O_DIRECT: from the host, after the cache's changed pages went there.
    fn read_direct(&self, offset: u64, buf: &mut IoBuf, _nonblock: bool) -> KResult<usize> {
        if self.qid.kind & QTDIR != 0 {
            return Err(EISDIR);
        }
        if let Some(inode) = &self.inode {
            inode.cache.sync(self)?;
        }
        self.read_uncached(offset, buf)
    }

    /// Write-through: the host gets the bytes at once, and cached pages take them.
    fn write(&self, offset: u64, buf: &IoBuf, _nonblock: bool) -> KResult<usize> {
        if self.qid.kind & QTDIR != 0 {
            return Err(EISDIR);
        }
        if let Some(inode) = &self.inode {
            // Known, so the pages the write fills can join the cache.
            self.known_size(inode)?;
        }
        let n = self.write_uncached(offset, buf.len(), |at, chunk| buf.get(at, chunk))?;
        self.wrote(offset, buf, n);
        Ok(n)
    }

    fn truncate(&self, len: u64) -> KResult<()> {
        if self.qid.kind & QTDIR != 0 {
            return Err(EISDIR);
        }
        self.setattr(SETATTR_SIZE, 0, len)?;
        if let Some(inode) = &self.inode {
            inode.cache.truncate(len);
            inode.size.store(len, Ordering::Relaxed);
            *inode.stamp.lock() = None;
        }
        Ok(())
    }

    /// Writes back what mappings changed, then Tfsync.
    fn sync(&self) -> KResult<()> {
        if let Some(inode) = &self.inode {
            inode.cache.sync(self)?;
        }
        let fid = match *self.io.lock() {
            Some((fid, _)) => fid,
            None => return Ok(()),
        };
        self.p9.rpc(Msg::new(TFSYNC).u32(fid).u32(0), 64).map(|_| ())
    }

    /// The last close writes back what mappings changed (errors are fsync's to report).
    fn release(&self) {
        if let Some(inode) = &self.inode {
            let _ = inode.cache.sync(self);
        }
    }

    /// The cache's pages (faults read them in).
    fn mmap_pages(&self, offset: u64, _len: u64) -> KResult<(Arc<crate::mm::user::SharedPages>, usize)> {
        Ok(self.inode.as_ref().ok_or(ENODEV)?.cache.map(offset))
    }

    fn advise(&self, offset: u64, len: u64, advice: u32) -> KResult<()> {
        match &self.inode {
            Some(inode) => inode.cache.advise(self, offset, len, advice),
            None => Ok(()),
        }
    }

    /// A write to the mapping's file through a mapping of it (msync, munmap).
    fn writeback(&self) -> KResult<()> {
        match &self.inode {
            Some(inode) => inode.cache.sync(self),
            None => Ok(()),
        }
    }

    fn page_cache(&self) -> Option<(&FileCache, &dyn PageIo)> {
        self.inode.as_ref().map(|i| (&i.cache, self as &dyn PageIo))
    }

    fn set_mode(&self, mode: u32) -> KResult<()> {
        self.setattr(SETATTR_MODE, mode & 0o7777, 0)
    }

    /// The host sets the times (and the change time), as Linux's v9fs asks it to.
    fn set_times(&self, atime: TimeSet, mtime: TimeSet) -> KResult<()> {
        let mut valid = 0;
        let mut t = [0u64; 4];
        for (i, (ts, flag, set)) in [(atime, SETATTR_ATIME, SETATTR_ATIME_SET), (mtime, SETATTR_MTIME, SETATTR_MTIME_SET)].into_iter().enumerate() {
            match ts {
                TimeSet::Keep => {}
                TimeSet::Now => valid |= flag,
                TimeSet::At(ns) => {
                    valid |= flag | set;
                    t[2 * i] = ns / 1_000_000_000;
                    t[2 * i + 1] = ns % 1_000_000_000;
                }
            }
        }
        self.setattr_full(valid, 0, [0; 2], 0, t)
    }

    /// The host changes the owner (what it allows: the VMM's own rights decide).
    fn set_owner(&self, uid: Option<u32>, gid: Option<u32>) -> KResult<()> {
        let valid = uid.map_or(0, |_| SETATTR_UID) | gid.map_or(0, |_| SETATTR_GID);
        self.setattr_full(valid, 0, [uid.unwrap_or(0), gid.unwrap_or(0)], 0, [0; 4])
    }

    fn getxattr(&self, name: &str) -> KResult<Vec<u8>> {
        self.xattr_read(name)
    }

    fn listxattr(&self) -> KResult<Vec<u8>> {
        self.xattr_read("")
    }

    /// A clone of the fid becomes the attribute (Txattrcreate), takes the value (Twrite)
    /// and sets it when clunked; 9P2000.L removes with an empty value, so an empty value
    /// cannot be set on a share.
    fn setxattr(&self, name: &str, value: Option<&[u8]>, flags: u32) -> KResult<()> {
        let value = value.unwrap_or_default();
        let (fid, _) = self.p9.walk(self.fid, &[])?;
        let sent = self.p9.rpc(Msg::new(TXATTRCREATE).u32(fid).str(name).u64(value.len() as u64).u32(flags), 16).and_then(|_| {
            let chunk = (self.p9.msize() - 23) as usize;
            for (i, part) in value.chunks(chunk).enumerate() {
                let msg = Msg::new(TWRITE).u32(fid).u64((i * chunk) as u64).u32(part.len() as u32).bytes(part);
                self.p9.rpc(msg, 64)?;
            }
            Ok(())
        });
        let committed = self.p9.clunk_sync(fid);
        sent.and(committed)
    }

    fn mount_id(&self) -> usize {
        Arc::as_ptr(&self.p9) as usize
    }

    /// Every walk is a message to the host.
    fn lookup_cached(&self) -> bool {
        false
    }

    fn lookup(&self, name: &str) -> KResult<Arc<dyn Node>> {
        if self.qid.kind & QTDIR == 0 {
            return Err(ENOTDIR);
        }
        let (fid, qid) = self.p9.walk(self.fid, &[name])?;
        Ok(self.child(fid, qid.unwrap_or_default()))
    }

    fn create(&self, name: &str, kind: FileType, mode: u32) -> KResult<Arc<dyn Node>> {
        match kind {
            FileType::Directory => {
                self.p9.rpc(Msg::new(TMKDIR).u32(self.fid).str(name).u32(mode & 0o7777).u32(0), 64)?;
            }
            FileType::Regular => {
                // Tlcreate turns the fid it is given into the new, open file.
                let (fid, _) = self.p9.walk(self.fid, &[])?;
                let msg = Msg::new(TLCREATE).u32(fid).str(name).u32(O_RDWR | 0o100 | 0o200).u32(mode & 0o7777).u32(0);
                if let Err(e) = self.p9.rpc(msg, 64) {
                    self.p9.clunk(fid);
                    return Err(e);
                }
                let node = self.lookup(name)?;
                if let Some(p) = node.as_any().downcast_ref::<P9Node>() {
                    *p.io.lock() = Some((fid, true));
                }
                return Ok(node);
            }
            _ => return Err(EINVAL),
        }
        self.lookup(name)
    }

    fn link(&self, name: &str, node: Arc<dyn Node>) -> KResult<()> {
        let target = node.as_any().downcast_ref::<P9Node>().filter(|n| Arc::ptr_eq(&n.p9, &self.p9)).ok_or(EXDEV)?;
        self.p9.rpc(Msg::new(TLINK).u32(self.fid).u32(target.fid).str(name), 64).map(|_| ())
    }

    fn unlink(&self, name: &str, dir: bool) -> KResult<()> {
        let flags = if dir { AT_REMOVEDIR } else { 0 };
        self.p9.rpc(Msg::new(TUNLINKAT).u32(self.fid).str(name).u32(flags), 64).map(|_| ())
    }

    fn rename(&self, old: &str, new_dir: &Arc<dyn Node>, new: &str) -> KResult<()> {
        let to = new_dir.as_any().downcast_ref::<P9Node>().filter(|n| Arc::ptr_eq(&n.p9, &self.p9)).ok_or(EXDEV)?;
        self.p9.rpc(Msg::new(TRENAMEAT).u32(self.fid).str(old).u32(to.fid).str(new), 64).map(|_| ())
    }

    fn symlink(&self, name: &str, target: &str) -> KResult<()> {
        self.p9.rpc(Msg::new(TSYMLINK).u32(self.fid).str(name).str(target).u32(0), 64).map(|_| ())
    }

    fn entries(&self) -> KResult<Vec<DirEntry>> {
        if self.qid.kind & QTDIR == 0 {
            return Err(ENOTDIR);
        }
        let fid = self.io_fid(false)?;
        let mut out = Vec::new();
        let mut offset = 0u64;
        let count = self.p9.msize() - 11;
        loop {
            let mut r = self.p9.rpc(Msg::new(TREADDIR).u32(fid).u64(offset).u32(count), count as usize + 11)?;
            let n = r.u32()? as usize;
            if n == 0 {
                break;
            }
            let mut used = 0;
            while used < n {
                let start = r.at;
                let qid = r.qid()?;
                offset = r.u64()?;
                let dtype = r.u8()?;
                let name = r.str()?;
                used += r.at - start;
                if name == "." || name == ".." {
                    continue;
                }
                let kind = if dtype == 4 || qid.kind & QTDIR != 0 {
                    FileType::Directory
                } else if dtype == 10 || qid.kind & QTSYMLINK != 0 {
                    FileType::Symlink
                } else {
                    FileType::Regular
                };
                out.push(DirEntry { name, ino: qid.path, kind });
            }
        }
        Ok(out)
    }

    fn readlink(&self) -> KResult<String> {
        if self.qid.kind & QTSYMLINK == 0 {
            return Err(EINVAL);
        }
        self.p9.rpc(Msg::new(TREADLINK).u32(self.fid), 4200)?.str()
    }

    fn statfs(&self) -> KResult<super::StatFs> {
        let mut r = self.p9.rpc(Msg::new(TSTATFS).u32(self.fid), 128)?;
        let (kind, bsize) = (r.u32()?, r.u32()?);
        let (blocks, bfree, bavail, files, ffree) = (r.u64()?, r.u64()?, r.u64()?, r.u64()?, r.u64()?);
        let (_fsid, namelen) = (r.u64()?, r.u32()?);
        let kind = if kind == 0 { 0x0102_1997 } else { u64::from(kind) }; // V9FS_MAGIC
        Ok(super::StatFs { kind, bsize: u64::from(bsize), blocks, bfree, bavail, files, ffree, namelen: u64::from(namelen) })
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// What `P9Node::rw_async` calls with the transfer's result.
pub type RwDone = Box<dyn FnOnce(KResult<usize>) + Send>;

impl P9Node {
    /// Reads or writes one message's worth at `offset` without waiting: `done` gets the
    /// result from the interrupt handler (io_uring's asynchronous path). Err(Some(done)):
    /// the transfer does not fit one message or the file is not open (take the sync path);
    /// Err(None): the queue is full, `done` was dropped unrun (try again where waiting is
    /// allowed).
    pub fn rw_async(&self, write: bool, offset: u64, buf: crate::fs::IoBuf<'static>, done: RwDone, wait: bool) -> Result<(), Option<RwDone>> {
        let len = buf.len();
        let limit = (self.p9.msize() - 23) as usize;
        let fid = match *self.io.lock() {
            Some((fid, can_write)) if can_write || !write => fid,
            _ => return Err(Some(done)),
        };
        if len == 0 || len > limit || self.qid.kind & QTDIR != 0 {
            return Err(Some(done));
        }
        let queued = if write {
            let mut data = alloc::vec![0u8; len];
            if let Err(e) = buf.get(0, &mut data) {
                done(Err(e));
                return Ok(());
            }
            let msg = Msg::new(TWRITE).u32(fid).u64(offset).u32(len as u32).bytes(&data);
            // The cache takes the bytes now (write-through); a failed or short write drops
            // the pages it covered, whose bytes on the host are then unknown.
            self.wrote(offset, &IoBuf::Kernel(&mut data), len);
            let inode = self.inode.clone();
            self.p9.rpc_async(msg, 64, Box::new(move |r| {
                let r = r.and_then(|mut r| Ok((r.u32()? as usize).min(len)));
                if let Some(inode) = inode.filter(|_| r.as_ref().is_ok_and(|&n| n < len) || r.is_err()) {
                    let n = *r.as_ref().unwrap_or(&0);
                    inode.cache.forget(offset + n as u64, (len - n) as u64);
                }
                done(r)
            }), wait)
        } else {
            let mut buf = buf;
            let msg = Msg::new(TREAD).u32(fid).u64(offset).u32(len as u32);
            self.p9.rpc_async(msg, len + 11, Box::new(move |r| {
                done(r.and_then(|mut r| {
                    let n = (r.u32()? as usize).min(len);
                    buf.put(0, r.bytes(n)?)?;
                    Ok(n)
                }))
            }), wait)
        };
        if queued { Ok(()) } else { Err(None) }
    }
}

impl PageIo for P9Node {
    /// One Tread's worth, at most 32 pages (128 KiB).
    fn max_pages(&self) -> usize {
        (((self.p9.msize() - 11) / 4096) as usize).clamp(1, 32)
    }

    fn read_at(&self, pos: u64, dst: &mut [u8]) -> KResult<usize> {
        self.read_uncached(pos, &mut IoBuf::Kernel(dst))
    }

    fn read_at_async(&self, pos: u64, len: usize, done: ReadDone) -> Result<(), ReadDone> {
        let Some((fid, _)) = *self.io.lock() else { return Err(done) };
        if len == 0 || len > (self.p9.msize() - 11) as usize {
            return Err(done);
        }
        let msg = Msg::new(TREAD).u32(fid).u64(pos).u32(len as u32);
        // rpc_async drops the callback unrun when the queue is full: keep `done` until
        // it is known to be queued.
        let slot = Arc::new(SpinLock::new(Some(done)));
        let slot2 = Arc::clone(&slot);
        let queued = self.p9.rpc_async(msg, len + 11, Box::new(move |r| {
            let Some(done) = slot2.lock().take() else { return };
            match r {
                Ok(mut r) => match r.u32().and_then(|n| r.bytes((n as usize).min(len))) {
                    Ok(bytes) => done(Ok(bytes)),
                    Err(e) => done(Err(e)),
                },
                Err(e) => done(Err(e)),
            }
        }), false);
        if queued { Ok(()) } else { Err(slot.lock().take().expect("not queued: not run")) }
    }

    fn write_at(&self, pos: u64, src: &[u8]) -> KResult<usize> {
        self.write_uncached(pos, src.len(), |at, chunk| {
            chunk.copy_from_slice(&src[at..at + chunk.len()]);
            Ok(())
        })
    }

    fn size(&self) -> KResult<u64> {
        self.inode.as_ref().map_or(Err(EINVAL), |i| self.known_size(i))
    }
}
