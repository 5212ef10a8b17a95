//! Open file descriptions (what `open` creates and `dup` shares) and descriptor tables.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};

use super::{dev, Node};
use crate::errno::*;

pub const O_ACCMODE: u32 = 3;
pub const O_RDONLY: u32 = 0;
pub const O_WRONLY: u32 = 1;
pub const O_RDWR: u32 = 2;
pub const O_CREAT: u32 = 0o100;
pub const O_EXCL: u32 = 0o200;
pub const O_NOCTTY: u32 = 0o400;
pub const O_TRUNC: u32 = 0o1000;
pub const O_APPEND: u32 = 0o2000;
pub const O_NONBLOCK: u32 = 0o4000;
pub const O_DSYNC: u32 = 0o10000;
pub const FASYNC: u32 = 0o20000;
pub const O_DIRECT: u32 = 0o40000;
pub const O_LARGEFILE: u32 = 0o100000;
pub const O_DIRECTORY: u32 = 0o200000;
pub const O_NOFOLLOW: u32 = 0o400000;
pub const O_NOATIME: u32 = 0o1000000;
pub const O_CLOEXEC: u32 = 0o2000000;
/// O_SYNC is `__O_SYNC | O_DSYNC`.
pub const __O_SYNC: u32 = 0o4000000;
pub const O_PATH: u32 = 0o10000000;
/// O_TMPFILE is `__O_TMPFILE | O_DIRECTORY`.
pub const __O_TMPFILE: u32 = 0o20000000;

/// Most descriptors a process may have (RLIMIT_NOFILE).
pub const FD_LIMIT: usize = 1024;

pub struct OpenFile {
    pub node: Arc<dyn Node>,
    /// The file position: a sleeping lock, held across the read or write that moves it.
    pub offset: crate::sync::Mutex<u64>,
    /// Access mode and status flags (O_APPEND, O_NONBLOCK, ...).
    pub flags: AtomicU32,
    /// The absolute path it was opened by (for `*at` calls relative to a directory fd).
    pub path: String,
}

impl OpenFile {
    pub fn new(node: Arc<dyn Node>, flags: u32, path: String) -> Arc<Self> {
        Arc::new(Self { node, offset: crate::sync::Mutex::new(0), flags: AtomicU32::new(flags), path })
    }

    pub fn flags(&self) -> u32 {
        self.flags.load(Ordering::Relaxed)
    }

    pub fn readable(&self) -> bool {
        self.flags() & O_PATH == 0 && self.flags() & O_ACCMODE != O_WRONLY
    }

    pub fn writable(&self) -> bool {
        self.flags() & O_PATH == 0 && matches!(self.flags() & O_ACCMODE, O_WRONLY | O_RDWR)
    }

    pub fn nonblock(&self) -> bool {
        self.flags() & O_NONBLOCK != 0
    }

    /// Reads the node at `offset`: around the page cache with O_DIRECT.
    pub fn read_node(&self, offset: u64, buf: &mut super::IoBuf, nonblock: bool) -> crate::errno::KResult<usize> {
        if self.flags() & O_DIRECT != 0 {
            self.node.read_direct(offset, buf, nonblock)
        } else {
            self.node.read(offset, buf, nonblock)
        }
    }

    /// Writes the node at `offset`: around the page cache with O_DIRECT.
    pub fn write_node(&self, offset: u64, buf: &super::IoBuf, nonblock: bool) -> crate::errno::KResult<usize> {
        if self.flags() & O_DIRECT != 0 {
            self.node.write_direct(offset, buf, nonblock)
        } else {
            self.node.write(offset, buf, nonblock)
        }
    }
}

impl Drop for OpenFile {
    fn drop(&mut self) {
        super::flock::release(self);
        self.node.release();
    }
}

#[derive(Clone)]
pub struct FdEntry {
    file: Arc<OpenFile>,
    cloexec: bool,
}

#[derive(Clone)]
pub struct FdTable {
    fds: Vec<Option<FdEntry>>,
    /// RLIMIT_NOFILE's soft limit: descriptors must stay below it.
    limit: usize,
}

impl FdTable {
    /// A table with the console on 0, 1 and 2 (for init).
    pub fn with_console() -> Self {
        let console = OpenFile::new(dev::console(), O_RDWR, String::from("/dev/console"));
        let entry = Some(FdEntry { file: console, cloexec: false });
        Self { fds: alloc::vec![entry.clone(), entry.clone(), entry], limit: FD_LIMIT }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Sets RLIMIT_NOFILE (at most [`FD_LIMIT`]).
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit.min(FD_LIMIT);
    }

    pub fn get(&self, fd: i32) -> KResult<Arc<OpenFile>> {
        let i = usize::try_from(fd).map_err(|_| EBADF)?;
        self.fds.get(i).and_then(|e| e.as_ref()).map(|e| Arc::clone(&e.file)).ok_or(EBADF)
    }

    /// Installs `file` at the lowest free descriptor >= `min`.
    pub fn insert_from(&mut self, min: usize, file: Arc<OpenFile>, cloexec: bool) -> KResult<i32> {
        if min >= self.limit {
            return Err(EINVAL);
        }
        let slot = (min..self.limit).find(|&i| self.fds.get(i).is_none_or(|e| e.is_none())).ok_or(EMFILE)?;
        if slot >= self.fds.len() {
            self.fds.resize(slot + 1, None);
        }
        self.fds[slot] = Some(FdEntry { file, cloexec });
        Ok(slot as i32)
    }

    pub fn insert(&mut self, file: Arc<OpenFile>, cloexec: bool) -> KResult<i32> {
        self.insert_from(0, file, cloexec)
    }

    /// Puts `file` at `fd`, returning what was there for the caller to drop after
    /// releasing the table's lock (dup2).
    pub fn insert_at(&mut self, fd: i32, file: Arc<OpenFile>, cloexec: bool) -> KResult<Option<Arc<OpenFile>>> {
        let i = usize::try_from(fd).ok().filter(|&i| i < self.limit).ok_or(EBADF)?;
        if i >= self.fds.len() {
            self.fds.resize(i + 1, None);
        }
        Ok(self.fds[i].replace(FdEntry { file, cloexec }).map(|e| e.file))
    }

    pub fn remove(&mut self, fd: i32) -> KResult<Arc<OpenFile>> {
        let i = usize::try_from(fd).map_err(|_| EBADF)?;
        self.fds.get_mut(i).and_then(Option::take).map(|e| e.file).ok_or(EBADF)
    }

    pub fn cloexec(&self, fd: i32) -> KResult<bool> {
        let i = usize::try_from(fd).map_err(|_| EBADF)?;
        self.fds.get(i).and_then(|e| e.as_ref()).map(|e| e.cloexec).ok_or(EBADF)
    }

    pub fn set_cloexec(&mut self, fd: i32, on: bool) -> KResult<()> {
        let i = usize::try_from(fd).map_err(|_| EBADF)?;
        let e = self.fds.get_mut(i).and_then(|e| e.as_mut()).ok_or(EBADF)?;
        e.cloexec = on;
        Ok(())
    }

    /// Takes out the descriptors marked close-on-exec (the caller drops them after
    /// releasing the table's lock).
    pub fn close_on_exec(&mut self) -> Vec<Arc<OpenFile>> {
        let mut closed = Vec::new();
        for e in self.fds.iter_mut() {
            if e.as_ref().is_some_and(|e| e.cloexec) {
                closed.extend(e.take().map(|e| e.file));
            }
        }
        closed
    }

    /// The open descriptors, in order, with their files (for `/proc/PID/fd`).
    pub fn open_fds(&self) -> Vec<(i32, Arc<OpenFile>)> {
        self.fds.iter().enumerate().filter_map(|(i, e)| e.as_ref().map(|e| (i as i32, Arc::clone(&e.file)))).collect()
    }

    /// One past the highest descriptor the table has room for now.
    pub fn len(&self) -> usize {
        self.fds.len()
    }

    /// Takes out every descriptor (the caller drops them after releasing the lock).
    pub fn close_all(&mut self) -> Vec<Option<FdEntry>> {
        core::mem::take(&mut self.fds)
    }
}
