//! Registered resources: fixed files (IORING_REGISTER_FILES) and fixed buffers
//! (IORING_REGISTER_BUFFERS).
//!
//! A fixed file is an open file the ring holds, named by its index (IOSQE_FIXED_FILE).
//! A fixed buffer is a range of the registering process's memory, faulted in at
//! registration; READ_FIXED and WRITE_FIXED must stay inside it.

use alloc::sync::Arc;
use alloc::vec::Vec;

use crate::errno::*;
use crate::fs::OpenFile;

/// Most fixed files (Linux: IORING_MAX_FIXED_FILES).
pub const MAX_FIXED_FILES: usize = 1 << 15;
/// Most fixed buffers (Linux: IORING_MAX_REG_BUFFERS).
pub const MAX_BUFFERS: usize = 1 << 14;
/// Largest fixed buffer (Linux: SZ_1G).
pub const MAX_BUFFER_LEN: u64 = 1 << 30;

#[derive(Default)]
pub struct Resources {
    pub files: Option<Vec<Option<Arc<OpenFile>>>>,
    pub buffers: Option<Vec<(u64, u64)>>,
}

impl Resources {
    /// The fixed file at `index`: EBADF if the slot is empty or out of range.
    pub fn file(&self, index: u32) -> KResult<Arc<OpenFile>> {
        self.files.as_ref().and_then(|f| f.get(index as usize)).and_then(Option::clone).ok_or(EBADF)
    }

    /// Checks that `[addr, addr + len)` lies in fixed buffer `index` (EFAULT otherwise).
    pub fn check_fixed(&self, index: u16, addr: u64, len: u64) -> KResult<()> {
        let &(base, size) = self.buffers.as_ref().and_then(|b| b.get(usize::from(index))).ok_or(EFAULT)?;
        let end = addr.checked_add(len).ok_or(EFAULT)?;
        if addr < base || end > base + size {
            return Err(EFAULT);
        }
        Ok(())
    }
}
