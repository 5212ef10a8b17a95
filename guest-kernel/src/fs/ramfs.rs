//! The RAM filesystem: the root of the tree. Files from the initramfs keep pointing at the
//! archive's bytes until first written (then they get a private copy).

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::any::Any;
use core::sync::atomic::{AtomicU32, Ordering};

use super::{alloc_ino, DirEntry, FileBytes, FileType, IoBuf, Node, Stat};
use crate::errno::*;
use crate::sync::SpinLock;

/// Largest file size accepted (keeps a runaway writer from eating the heap).
const MAX_FILE: u64 = 64 << 20;

enum Data {
    Static(&'static [u8]),
    Owned(Vec<u8>),
}

impl Data {
    fn bytes(&self) -> &[u8] {
        match self {
            Data::Static(s) => s,
            Data::Owned(v) => v,
        }
    }

    fn owned(&mut self) -> &mut Vec<u8> {
        if let Data::Static(s) = self {
            *self = Data::Owned(s.to_vec());
        }
        match self {
            Data::Owned(v) => v,
            Data::Static(_) => unreachable!("converted above"),
        }
    }
}

pub struct RamFile {
    ino: u64,
    mode: AtomicU32,
    nlink: AtomicU32,
    data: SpinLock<Data>,
}

impl RamFile {
    pub fn new(mode: u32, data: &'static [u8]) -> Arc<Self> {
        Arc::new(Self { ino: alloc_ino(), mode: AtomicU32::new(mode), nlink: AtomicU32::new(1), data: SpinLock::new(Data::Static(data)) })
    }
}

impl Node for RamFile {
    fn stat(&self) -> Stat {
        let size = self.data.lock().bytes().len() as u64;
        Stat { ino: self.ino, mode: FileType::Regular.mode_bits() | self.mode.load(Ordering::Relaxed), nlink: self.nlink.load(Ordering::Relaxed), size, ..Stat::default() }
    }

    fn read(&self, offset: u64, buf: &mut IoBuf, _nonblock: bool) -> KResult<usize> {
        let data = self.data.lock();
        let bytes = data.bytes();
        let start = (offset.min(bytes.len() as u64)) as usize;
        let n = buf.len().min(bytes.len() - start);
        buf.put(0, &bytes[start..start + n])?;
        Ok(n)
    }

    fn write(&self, offset: u64, buf: &IoBuf, _nonblock: bool) -> KResult<usize> {
        let len = buf.len();
        let end = offset.checked_add(len as u64).filter(|&e| e <= MAX_FILE).ok_or(EFBIG)?;
        let mut data = self.data.lock();
        let v = data.owned();
        let old_len = v.len();
        if end as usize > v.len() {
            v.resize(end as usize, 0);
        }
        if let Err(e) = buf.get(0, &mut v[offset as usize..end as usize]) {
            v.truncate(old_len.max(offset as usize));
            return Err(e);
        }
        Ok(len)
    }

    fn truncate(&self, len: u64) -> KResult<()> {
        if len > MAX_FILE {
            return Err(EFBIG);
        }
        self.data.lock().owned().resize(len as usize, 0);
        Ok(())
    }

    fn contents(&self) -> KResult<FileBytes> {
        Ok(match &*self.data.lock() {
            Data::Static(s) => FileBytes::Static(s),
            Data::Owned(v) => FileBytes::Owned(v.clone()),
        })
    }

    fn set_mode(&self, mode: u32) -> KResult<()> {
        self.mode.store(mode & 0o7777, Ordering::Relaxed);
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

pub struct RamSymlink {
    ino: u64,
    target: String,
}

impl Node for RamSymlink {
    fn stat(&self) -> Stat {
        Stat { ino: self.ino, mode: FileType::Symlink.mode_bits() | 0o777, nlink: 1, size: self.target.len() as u64, ..Stat::default() }
    }

    fn readlink(&self) -> KResult<String> {
        Ok(self.target.clone())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

pub struct RamDir {
    ino: u64,
    mode: AtomicU32,
    entries: SpinLock<BTreeMap<String, Arc<dyn Node>>>,
}

impl RamDir {
    pub fn new(mode: u32) -> Arc<Self> {
        Arc::new(Self { ino: alloc_ino(), mode: AtomicU32::new(mode), entries: SpinLock::new(BTreeMap::new()) })
    }

    /// Adds a symlink `name -> target`.
    pub fn symlink(&self, name: &str, target: &str) -> KResult<()> {
        let node: Arc<dyn Node> = Arc::new(RamSymlink { ino: alloc_ino(), target: target.to_string() });
        self.link(name, node)
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
    }
}

impl Node for RamDir {
    fn stat(&self) -> Stat {
        let subdirs = self.entries.lock().values().filter(|n| n.file_type() == FileType::Directory).count();
        Stat { ino: self.ino, mode: FileType::Directory.mode_bits() | self.mode.load(Ordering::Relaxed), nlink: 2 + subdirs as u32, size: 4096, ..Stat::default() }
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

    fn create(&self, name: &str, kind: FileType, mode: u32) -> KResult<Arc<dyn Node>> {
        let node: Arc<dyn Node> = match kind {
            FileType::Directory => RamDir::new(mode & 0o7777),
            FileType::Regular => RamFile::new(mode & 0o7777, &[]),
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
        Ok(())
    }

    fn detach(&self, name: &str) -> KResult<Arc<dyn Node>> {
        let node = self.entries.lock().remove(name).ok_or(ENOENT)?;
        bump_links(&node, -1);
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
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
