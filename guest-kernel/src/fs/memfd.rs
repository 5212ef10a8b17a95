//! memfd_create: an anonymous RAM file (a `RamFile` in no directory) with Linux's file
//! seals (fcntl F_ADD_SEALS, F_GET_SEALS): F_SEAL_SHRINK, F_SEAL_GROW, F_SEAL_WRITE,
//! F_SEAL_FUTURE_WRITE, F_SEAL_EXEC, and F_SEAL_SEAL that ends the adding. A write that a
//! seal forbids is EPERM; a write-sealed memfd maps shared only read-only, never to be
//! made writable (mm's sealed mappings).

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::any::Any;
use core::sync::atomic::{AtomicU32, Ordering};

use super::ramfs::RamFile;
use super::{IoBuf, Node, Stat, TimeSet};
use crate::errno::*;
use crate::mm::user::SharedPages;

pub const F_SEAL_SEAL: u32 = 0x1;
pub const F_SEAL_SHRINK: u32 = 0x2;
pub const F_SEAL_GROW: u32 = 0x4;
pub const F_SEAL_WRITE: u32 = 0x8;
pub const F_SEAL_FUTURE_WRITE: u32 = 0x10;
pub const F_SEAL_EXEC: u32 = 0x20;
const ALL_SEALS: u32 = F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_FUTURE_WRITE | F_SEAL_EXEC;
/// Seals that stop writes.
pub const WRITE_SEALS: u32 = F_SEAL_WRITE | F_SEAL_FUTURE_WRITE;

pub struct MemFd {
    file: Arc<RamFile>,
    seals: AtomicU32,
}

/// A new memfd with file mode `mode`; without MFD_ALLOW_SEALING it starts sealed with
/// F_SEAL_SEAL (no seal can be added), as Linux's.
pub fn new(mode: u32, allow_sealing: bool, seals: u32) -> Arc<MemFd> {
    let seals = seals | if allow_sealing { 0 } else { F_SEAL_SEAL };
    Arc::new(MemFd { file: RamFile::with_owner(mode, &[], super::Owner::of_creator(None)), seals: AtomicU32::new(seals) })
}

impl MemFd {
    pub fn seals(&self) -> u32 {
        self.seals.load(Ordering::Relaxed)
    }

    /// F_ADD_SEALS (the descriptor must be writable: checked by the caller). F_SEAL_WRITE
    /// is EBUSY while shared mappings of the file exist.
    pub fn add_seals(&self, add: u32) -> KResult<()> {
        if add & !ALL_SEALS != 0 {
            return Err(EINVAL);
        }
        let now = self.seals();
        if now & F_SEAL_SEAL != 0 {
            return Err(EPERM);
        }
        if add & F_SEAL_WRITE != 0 && now & F_SEAL_WRITE == 0 && self.file.shared_mappings() {
            return Err(EBUSY);
        }
        self.seals.fetch_or(add, Ordering::Relaxed);
        Ok(())
    }

    /// A size change to `new` that the seals allow.
    fn resize_allowed(&self, new: u64) -> KResult<()> {
        let (seals, size) = (self.seals(), self.file.stat().size);
        if (new < size && seals & F_SEAL_SHRINK != 0) || (new > size && seals & F_SEAL_GROW != 0) {
            return Err(EPERM);
        }
        Ok(())
    }
}

impl Node for MemFd {
    fn stat(&self) -> Stat {
        self.file.stat()
    }

    fn nowait(&self) -> bool {
        true
    }

    fn read(&self, offset: u64, buf: &mut IoBuf, nonblock: bool) -> KResult<usize> {
        self.file.read(offset, buf, nonblock)
    }

    fn write(&self, offset: u64, buf: &IoBuf, nonblock: bool) -> KResult<usize> {
        if self.seals() & WRITE_SEALS != 0 {
            return Err(EPERM);
        }
        let end = offset.saturating_add(buf.len() as u64);
        if end > self.file.stat().size && self.seals() & F_SEAL_GROW != 0 {
            return Err(EPERM);
        }
        self.file.write(offset, buf, nonblock)
    }

    fn truncate(&self, len: u64) -> KResult<()> {
        self.resize_allowed(len)?;
        self.file.truncate(len)
    }

    fn fallocate(&self, mode: u32, offset: u64, len: u64) -> KResult<()> {
        // Growing needs no F_SEAL_GROW; punching holes writes (Linux: EPERM under the
        // write seals).
        if mode == 0 {
            self.resize_allowed(offset.saturating_add(len).max(self.file.stat().size))?;
        } else if self.seals() & WRITE_SEALS != 0 {
            return Err(EPERM);
        }
        self.file.fallocate(mode, offset, len)
    }

    fn mmap_pages(&self, offset: u64, len: u64) -> KResult<(Arc<SharedPages>, usize)> {
        self.file.mmap_pages(offset, len)
    }

    fn seals(&self) -> u32 {
        MemFd::seals(self)
    }

    fn set_mode(&self, mode: u32) -> KResult<()> {
        // F_SEAL_EXEC: the execute bits stay as they are.
        if self.seals() & F_SEAL_EXEC != 0 && (mode ^ self.file.stat().mode) & 0o111 != 0 {
            return Err(EPERM);
        }
        self.file.set_mode(mode)
    }

    fn set_times(&self, atime: TimeSet, mtime: TimeSet) -> KResult<()> {
        self.file.set_times(atime, mtime)
    }

    fn set_owner(&self, uid: Option<u32>, gid: Option<u32>) -> KResult<()> {
        self.file.set_owner(uid, gid)
    }

    fn contents(&self) -> KResult<super::FileBytes> {
        self.file.contents()
    }

    fn getxattr(&self, name: &str) -> KResult<Vec<u8>> {
        self.file.getxattr(name)
    }

    fn setxattr(&self, name: &str, value: Option<&[u8]>, flags: u32) -> KResult<()> {
        self.file.setxattr(name, value, flags)
    }

    fn listxattr(&self) -> KResult<Vec<u8>> {
        self.file.listxattr()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
