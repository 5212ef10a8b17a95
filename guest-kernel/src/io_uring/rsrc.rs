//! Registered resources: fixed files (IORING_REGISTER_FILES) and fixed buffers
//! (IORING_REGISTER_BUFFERS).
//!
//! A fixed file is an open file the ring holds, named by its index (IOSQE_FIXED_FILE).
//! A fixed buffer is a range of the registering process's memory whose frames are pinned
//! at registration, as Linux's FOLL_LONGTERM pin: READ_FIXED and WRITE_FIXED (which must
//! stay inside it) transfer to and from those frames, whatever is mapped at the address
//! later (munmap, a new mapping, fork), until the buffer is unregistered. Disk I/O uses
//! them directly, with no page walk or pinning per request.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::errno::*;
use crate::fs::OpenFile;
use crate::mm::PAGE_SIZE;

/// Most fixed files (Linux: IORING_MAX_FIXED_FILES).
pub const MAX_FIXED_FILES: usize = 1 << 15;
/// Most fixed buffers (Linux: IORING_MAX_REG_BUFFERS).
pub const MAX_BUFFERS: usize = 1 << 14;
/// Largest fixed buffer (Linux: SZ_1G).
pub const MAX_BUFFER_LEN: u64 = 1 << 30;

/// Pages pinned by registered buffers, counted against RLIMIT_MEMLOCK as Linux counts
/// them per user (everyone is one user here, and has no CAP_IPC_LOCK to skip it).
static LOCKED_PAGES: AtomicU64 = AtomicU64::new(0);

/// A registered buffer: its user address and length, and its pinned frames.
pub struct FixedBuf {
    pub addr: u64,
    pub len: u64,
    /// Physical (address, length) segments covering the buffer, in order.
    pub segments: Vec<(u64, u32)>,
    /// Pages charged to RLIMIT_MEMLOCK.
    pages: u64,
}

impl Drop for FixedBuf {
    fn drop(&mut self) {
        crate::mm::uaccess::unpin_segments(&self.segments);
        LOCKED_PAGES.fetch_sub(self.pages, Ordering::Relaxed);
    }
}

impl FixedBuf {
    /// Pins user memory `[addr, addr + len)` of the current process, charging its pages
    /// to RLIMIT_MEMLOCK (ENOMEM past it, or when the pin table is full).
    pub fn pin(addr: u64, len: u64) -> KResult<Self> {
        let pages = if len == 0 { 0 } else { (addr + len).div_ceil(PAGE_SIZE) - addr / PAGE_SIZE };
        let limit = crate::task::current_process().memlock.lock()[0] / PAGE_SIZE;
        LOCKED_PAGES
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| (n + pages <= limit).then_some(n + pages))
            .map_err(|_| ENOMEM)?;
        let pinned = crate::task::with_mm(|mm| crate::mm::uaccess::pin_user_segments(mm, addr, len as usize, true))
            .map_err(|e| if e == EAGAIN { ENOMEM } else { e });
        match pinned {
            Ok(segments) => Ok(Self { addr, len, segments, pages }),
            Err(e) => {
                LOCKED_PAGES.fetch_sub(pages, Ordering::Relaxed);
                Err(e)
            }
        }
    }
}

impl FixedBuf {
    /// The segments covering `[addr, addr + len)`, which lies inside the buffer.
    pub fn slice(&self, addr: u64, len: usize) -> Vec<(u64, u32)> {
        let (mut skip, mut left) = ((addr - self.addr) as usize, len);
        let mut out = Vec::new();
        for &(phys, n) in &self.segments {
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
    let res = super::register::files_update(ring, addr, nr, offset).map_or_else(|e| -e.0, |n| n as i32);
    Some((req, res))
}

#[derive(Default)]
pub struct Resources {
    pub files: Option<Vec<Option<Arc<OpenFile>>>>,
    /// Where the search for a free slot starts (Linux's `alloc_hint`): just past the
    /// slot filled last, or on the slot emptied last.
    file_hint: usize,
    pub buffers: Option<Vec<Arc<FixedBuf>>>,
}

impl Resources {
    /// Registers a fixed-file table.
    pub fn set_files(&mut self, files: Vec<Option<Arc<OpenFile>>>) {
        self.file_hint = files.iter().rposition(Option::is_some).map_or(0, |i| i + 1);
        self.files = Some(files);
    }

    /// Puts `file` in slot `index` (None empties it) and returns what was there, for the
    /// caller to drop outside the lock. ENXIO without a table, EINVAL past its end.
    pub fn set_file(&mut self, index: usize, file: Option<Arc<OpenFile>>) -> KResult<Option<Arc<OpenFile>>> {
        let table = self.files.as_mut().ok_or(ENXIO)?;
        let slot = table.get_mut(index).ok_or(EINVAL)?;
        self.file_hint = if file.is_some() { index + 1 } else { index };
        Ok(core::mem::replace(slot, file))
    }

    /// A free slot, searched as Linux does: from the hint to the end, then from the
    /// start (ENFILE when the table is full, ENXIO without one).
    pub fn free_file_slot(&self) -> KResult<usize> {
        let table = self.files.as_ref().ok_or(ENXIO)?;
        let hint = self.file_hint.min(table.len());
        (hint..table.len()).chain(0..hint).find(|&i| table[i].is_none()).ok_or(ENFILE)
    }

    /// The fixed file at `index`: EBADF if the slot is empty or out of range.
    pub fn file(&self, index: u32) -> KResult<Arc<OpenFile>> {
        self.files.as_ref().and_then(|f| f.get(index as usize)).and_then(Option::clone).ok_or(EBADF)
    }

    /// Fixed buffer `index` (EFAULT if there is none).
    pub fn fixed_at(&self, index: u16) -> KResult<Arc<FixedBuf>> {
        self.buffers.as_ref().and_then(|b| b.get(usize::from(index))).cloned().ok_or(EFAULT)
    }

    /// Fixed buffer `index`, if `[addr, addr + len)` lies in it (EFAULT otherwise).
    pub fn fixed(&self, index: u16, addr: u64, len: u64) -> KResult<Arc<FixedBuf>> {
        let buf = self.buffers.as_ref().and_then(|b| b.get(usize::from(index))).ok_or(EFAULT)?;
        let end = addr.checked_add(len).ok_or(EFAULT)?;
        if addr < buf.addr || end > buf.addr + buf.len {
            return Err(EFAULT);
        }
        Ok(Arc::clone(buf))
    }
}
