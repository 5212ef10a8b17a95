//! Memory regions (Linux's io_uring/memmap.c): page-granular memory that the kernel and
//! the program share, either allocated here and mapped by the program with `mmap` on the
//! ring fd, or the program's own pages, pinned. The rings themselves are two such regions
//! (`ring`); IORING_REGISTER_MEM_REGION adds one more per ring, the *parameter region*,
//! which can serve as the ring's wait-argument area (IORING_ENTER_EXT_ARG_REG).

use alloc::sync::Arc;
use alloc::vec::Vec;

use super::uapi::{RegionDesc, IORING_MEM_REGION_TYPE_USER};
use crate::errno::*;
use crate::mm::user::SharedPages;
use crate::mm::{frame_ptr, PAGE_SIZE};

/// Where a region's memory comes from.
pub enum Memory {
    /// Frames of the ring, which `mmap` on the ring fd maps.
    Kernel(Arc<SharedPages>),
    /// The program's pages (IORING_SETUP_NO_MMAP, IORING_MEM_REGION_TYPE_USER), pinned
    /// while the region lives.
    User(Vec<(u64, u32)>),
}

impl Drop for Memory {
    fn drop(&mut self) {
        if let Memory::User(segments) = self {
            crate::mm::uaccess::unpin_segments(segments);
        }
    }
}

/// `bytes` (rounded up to pages) of new zeroed frames, and the kernel address of each page.
pub fn allocate(bytes: usize) -> KResult<(Memory, Vec<usize>)> {
    let pages = SharedPages::new(bytes.div_ceil(PAGE_SIZE as usize));
    for i in 0..pages.len() {
        pages.frame(i)?;
    }
    let va = (0..pages.len()).map(|i| frame_ptr(pages.existing(i)) as usize).collect();
    Ok((Memory::Kernel(pages), va))
}

/// Pins the program's pages `[addr, addr + bytes rounded up to pages)`: the address must
/// be page-aligned (EINVAL) and not 0 (EFAULT), the pages mapped and writable (EFAULT).
pub fn pin_user(addr: u64, bytes: usize) -> KResult<(Memory, Vec<usize>)> {
    if addr == 0 {
        return Err(EFAULT);
    }
    if !addr.is_multiple_of(PAGE_SIZE) {
        return Err(EINVAL);
    }
    let len = bytes.next_multiple_of(PAGE_SIZE as usize);
    addr.checked_add(len as u64).ok_or(EOVERFLOW)?;
    let segments = crate::task::with_mm(|mm| crate::mm::uaccess::pin_user_segments(mm, addr, len, true))
        .map_err(|e| if e == EAGAIN { ENOMEM } else { e })?;
    let va = segments
        .iter()
        .flat_map(|&(phys, n)| (0..u64::from(n) / PAGE_SIZE).map(move |i| frame_ptr(phys + i * PAGE_SIZE) as usize))
        .collect();
    Ok((Memory::User(segments), va))
}

/// A registered region (IORING_REGISTER_MEM_REGION).
pub struct Region {
    mem: Memory,
    /// Kernel address of each page (the frames never change while the region lives).
    va: Vec<usize>,
    pub size: usize,
}

impl Region {
    /// Linux's io_create_region: checks the descriptor (the error codes and their order
    /// are Linux's) and makes the region. A kernel-memory region reports the offset the
    /// program maps it at in `desc.mmap_offset`.
    pub fn create(desc: &mut RegionDesc, mmap_offset: u64) -> KResult<Self> {
        if desc.resv != [0; 4] || desc.flags & !IORING_MEM_REGION_TYPE_USER != 0 {
            return Err(EINVAL);
        }
        // A user address exactly when the memory is the program's.
        if (desc.flags & IORING_MEM_REGION_TYPE_USER != 0) != (desc.user_addr != 0) {
            return Err(EFAULT);
        }
        if desc.size == 0 || desc.mmap_offset != 0 || desc.id != 0 {
            return Err(EINVAL);
        }
        if desc.size / PAGE_SIZE > i32::MAX as u64 {
            return Err(E2BIG);
        }
        if !(desc.user_addr | desc.size).is_multiple_of(PAGE_SIZE) {
            return Err(EINVAL);
        }
        desc.user_addr.checked_add(desc.size).ok_or(EOVERFLOW)?;
        let size = usize::try_from(desc.size).map_err(|_| ENOMEM)?;
        let (mem, va) = if desc.flags & IORING_MEM_REGION_TYPE_USER != 0 {
            pin_user(desc.user_addr, size)?
        } else {
            // More pages than are free cannot be had (and the page list alone could
            // exhaust the heap).
            if desc.size / PAGE_SIZE > crate::mm::frame::stats().1 {
                return Err(ENOMEM);
            }
            let made = allocate(size)?;
            desc.mmap_offset = mmap_offset;
            made
        };
        Ok(Self { mem, va, size })
    }

    /// The frames `mmap` maps (ENOMEM for the program's own memory, as Linux's
    /// io_uring_get_unmapped_area answers).
    pub fn mmap_pages(&self) -> KResult<Arc<SharedPages>> {
        match &self.mem {
            Memory::Kernel(pages) => Ok(Arc::clone(pages)),
            Memory::User(_) => Err(ENOMEM),
        }
    }

    /// A copy of the `T` at byte `offset` (which the caller checked lies inside), read
    /// once: the program may be writing it meanwhile.
    pub fn read<T: crate::mm::uaccess::Pod + Default>(&self, offset: usize) -> T {
        let mut value = T::default();
        let n = size_of::<T>();
        assert!(offset.checked_add(n).is_some_and(|end| end <= self.size));
        let dst = (&raw mut value).cast::<u8>();
        let mut done = 0;
        while done < n {
            let at = offset + done;
            let in_page = at % PAGE_SIZE as usize;
            let chunk = (n - done).min(PAGE_SIZE as usize - in_page);
            let src = (self.va[at / PAGE_SIZE as usize] + in_page) as *const u8;
            for i in 0..chunk {
                // SAFETY: `src + i` lies in a page of the region, which is mapped in the
                // kernel and lives as long as `self`; `dst + done + i` lies in `value`.
                // The program may race with this read, but any byte is a valid part of a
                // Pod, and only the copy is used.
                unsafe { dst.add(done + i).write(src.add(i).read_volatile()) };
            }
            done += chunk;
        }
        value
    }
}
