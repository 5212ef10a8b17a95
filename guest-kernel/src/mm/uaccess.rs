//! The one door to user memory.
//!
//! # Safety
//! User pointers are never dereferenced directly. Every access checks that the range lies
//! in the user half, then walks the current process's page tables page by page: a page
//! that is absent but allowed by an area is faulted in (demand paging); a page that is
//! absent, not user-accessible or not writable for a write gives `EFAULT`. The bytes are
//! then copied through the kernel's direct map of the frame, so the kernel itself never
//! takes a page fault on user memory, whatever user space passes (or unmaps concurrently
//! from another thread: the address space lock is held across each page's copy).
//!
//! A page of a mapped file that is not cached cannot be read with the address space
//! locked (a spin lock): the access ends with `EFILL`, and [`with_user`] unlocks, reads
//! the page in and runs the access again (copies are safe to repeat). Linux's
//! equivalent is the fault handler's VM_FAULT_RETRY, which drops mmap_lock to wait for
//! the page.

use alloc::string::String;
use alloc::vec::Vec;

use crate::errno::{KResult, EFAULT, EFILL, ENAMETOOLONG};
use crate::mm::paging::{pte_addr, PRESENT, USER, WRITABLE};
use crate::mm::user::{Fault, UserSpace};
use crate::sync::SpinLock;
use crate::mm::{frame_ptr, PAGE_SIZE, USER_END};

/// Plain-data types that may be copied to and from user memory byte for byte.
///
/// # Safety
/// Every bit pattern must be a valid value, and the type must have no padding that could
/// leak kernel data (or the padding must be explicitly zeroed fields).
pub unsafe trait Pod: Copy {}

macro_rules! pod {
    ($($t:ty),*) => { $(
        // SAFETY: integers accept every bit pattern and have no padding.
        unsafe impl Pod for $t {}
    )* };
}
pod!(u8, u16, u32, u64, i32, i64, usize);

// SAFETY: arrays of Pod are Pod.
unsafe impl<T: Pod, const N: usize> Pod for [T; N] {}

fn check_range(addr: u64, len: usize) -> KResult<()> {
    match addr.checked_add(len as u64) {
        Some(end) if end <= USER_END => Ok(()),
        _ => Err(EFAULT),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
    /// The program loader filling a new image: writes even read-only pages.
    Load,
}

/// Runs `f(kernel_ptr, chunk_len, offset)` over the user range page by page.
fn for_each_chunk(
    mm: &mut UserSpace,
    addr: u64,
    len: usize,
    access: Access,
    f: &mut dyn FnMut(*mut u8, usize, usize),
) -> KResult<()> {
    walk_from(mm, addr, len, access, &mut 0, f)
}

/// As `for_each_chunk`, from byte `*done` of the range on, counting in `*done` the bytes
/// done: a walk that stopped (EFILL) goes on from there.
fn walk_from(
    mm: &mut UserSpace,
    addr: u64,
    len: usize,
    access: Access,
    done: &mut usize,
    f: &mut dyn FnMut(*mut u8, usize, usize),
) -> KResult<()> {
    let write = access == Access::Write;
    check_range(addr, len)?;
    while *done < len {
        let va = addr + *done as u64;
        let page = va & !(PAGE_SIZE - 1);
        let mut pte = mm.pt.lookup(page);
        let ok = |pte: u64| pte & PRESENT != 0 && pte & USER != 0 && (!write || pte & WRITABLE != 0);
        if !ok(pte) {
            match mm.fault(va, write, false) {
                Fault::Mapped => {}
                Fault::Denied | Fault::Bus => return Err(EFAULT),
                Fault::NoMemory => {
                    mm.pending_fill = None; // EFILL with nothing to read: reclaim
                    return Err(EFILL);
                }
                Fault::Missing(file, index) => {
                    mm.pending_fill = Some((file, index));
                    return Err(EFILL);
                }
            }
            pte = mm.pt.lookup(page);
            if !ok(pte) {
                return Err(EFAULT);
            }
        }
        let offset = (va - page) as usize;
        let chunk = (PAGE_SIZE as usize - offset).min(len - *done);
        f(frame_ptr(pte_addr(pte)).wrapping_add(offset), chunk, *done);
        *done += chunk;
    }
    Ok(())
}

/// Walks the user range of `mm` (locked for each step) as `walk_from`, reading in what
/// pages it needs between steps (`with_user`): each page read in is used before the next,
/// so a range larger than memory goes through.
fn walk(mm: &SpinLock<UserSpace>, addr: u64, len: usize, access: Access, f: &mut dyn FnMut(*mut u8, usize, usize)) -> KResult<()> {
    let mut done = 0;
    with_user(mm, |space| walk_from(space, addr, len, access, &mut done, f))
}

/// Copies `src` to user address `dst` of `mm`, reading pages in as needed.
pub fn copy_out(mm: &SpinLock<UserSpace>, dst: u64, src: &[u8]) -> KResult<()> {
    walk(mm, dst, src.len(), Access::Write, &mut |kptr, n, off| {
        // SAFETY: as in `copy_to_user`.
        unsafe { core::ptr::copy_nonoverlapping(src.as_ptr().add(off), kptr, n) };
    })
}

/// Copies from user address `src` of `mm` into `dst`, reading pages in as needed.
pub fn copy_in(mm: &SpinLock<UserSpace>, dst: &mut [u8], src: u64) -> KResult<()> {
    let out = dst.as_mut_ptr();
    walk(mm, src, dst.len(), Access::Read, &mut |kptr, n, off| {
        // SAFETY: as in `copy_from_user`.
        unsafe { core::ptr::copy_nonoverlapping(kptr, out.add(off), n) };
    })
}

/// Runs `f` on the address space `mm` locked, reading in (unlocked, sleeping) any file
/// page it ends at with `EFILL` and running it again; `f` must be safe to repeat. A page
/// past the end of its file, or whose read fails, is EFAULT (where a user access gets
/// SIGBUS), as is any under a spin lock or in an interrupt handler (which must not
/// sleep); with fills held off ([`NoFill`]) it is EFILL. Out of memory, it waits for
/// dirty pages to be written back (`writeback::reclaim_wait`) and tries again.
pub fn with_user<R>(mm: &SpinLock<UserSpace>, mut f: impl FnMut(&mut UserSpace) -> KResult<R>) -> KResult<R> {
    let mut reclaims = 0;
    loop {
        let mut guard = mm.lock();
        match f(&mut guard) {
            Err(EFILL) => {
                let pending = guard.pending_fill.take();
                drop(guard);
                // Reading a page (or waiting for writeback) sleeps: not with fills held
                // off, nor under a spin lock (the caller brings the buffer in first, or
                // retries after `prefault`).
                if crate::sync::spinlocks_held() > 0 || crate::arch::interrupts::in_irq() {
                    return Err(EFAULT);
                }
                if NoFill::active() {
                    return Err(EFILL);
                }
                match pending {
                    Some((file, index)) => crate::mm::user::fault_in_file(&*file, index).map_err(|_| EFAULT)?,
                    // Out of memory: a few times, wait for dirty pages to be written back.
                    None if reclaims < RECLAIM_TRIES && crate::mm::writeback::reclaim_wait() => reclaims += 1,
                    None => return Err(EFAULT),
                }
            }
            result => return result,
        }
    }
}

/// How many times one access waits for writeback to free memory before it gives up.
pub const RECLAIM_TRIES: u32 = 3;

/// While alive, the current task's user accesses do not read file pages in: a page not
/// in memory ends the copy with EFILL (the caller holds a lock the read may need, as
/// ext2 holds its state while copying between a user buffer and the disk or cache; it
/// brings the buffer in with [`prefault`] first, and on EFILL lets go of the lock,
/// brings the rest in again and goes on).
/// (Outside any task, as in the kernel's own tests, there is no user memory: nothing to
/// hold off.)
pub struct NoFill(Option<alloc::sync::Arc<crate::task::Task>>);

impl NoFill {
    pub fn new() -> Self {
        let task = crate::task::sched::try_current();
        if let Some(t) = &task {
            t.no_fill.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        }
        Self(task)
    }

    fn active() -> bool {
        crate::task::sched::try_current().is_some_and(|t| t.no_fill.load(core::sync::atomic::Ordering::Relaxed) > 0)
    }
}

impl Drop for NoFill {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            t.no_fill.fetch_sub(1, core::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// Brings the pages of user range `[addr, addr + len)` in for reading (or writing, with
/// `write`) as an access would (Linux's fault_in_readable and fault_in_writeable), so a
/// copy made with fills held off finds them; errors are left for that copy to meet.
pub fn prefault(mm: &SpinLock<UserSpace>, addr: u64, len: usize, write: bool) {
    let access = if write { Access::Write } else { Access::Read };
    let _ = walk(mm, addr, len, access, &mut |_, _, _| {});
}

/// Copies `src` to user address `dst`.
pub fn copy_to_user(mm: &mut UserSpace, dst: u64, src: &[u8]) -> KResult<()> {
    for_each_chunk(mm, dst, src.len(), Access::Write, &mut |kptr, n, off| {
        // SAFETY: `kptr..kptr+n` is within one user frame in the direct map (checked by
        // `for_each_chunk`); `src[off..off+n]` is in bounds.
        unsafe { core::ptr::copy_nonoverlapping(src.as_ptr().add(off), kptr, n) };
    })
}

/// Copies `src` into a new program image at `dst`, whatever the pages' protection.
pub fn copy_to_new_image(mm: &mut UserSpace, dst: u64, src: &[u8]) -> KResult<()> {
    for_each_chunk(mm, dst, src.len(), Access::Load, &mut |kptr, n, off| {
        // SAFETY: as in `copy_to_user`.
        unsafe { core::ptr::copy_nonoverlapping(src.as_ptr().add(off), kptr, n) };
    })
    // A new image maps no file: EFILL is only a frame not found.
    .map_err(|e| if e == EFILL { crate::errno::ENOMEM } else { e })
}

/// Copies from user address `src` into `dst`.
pub fn copy_from_user(mm: &mut UserSpace, dst: &mut [u8], src: u64) -> KResult<()> {
    let len = dst.len();
    let out = dst.as_mut_ptr();
    for_each_chunk(mm, src, len, Access::Read, &mut |kptr, n, off| {
        // SAFETY: as in `copy_to_user`, with the directions swapped.
        unsafe { core::ptr::copy_nonoverlapping(kptr, out.add(off), n) };
    })
}

/// Reads a `T` from user memory.
pub fn read<T: Pod>(mm: &mut UserSpace, addr: u64) -> KResult<T> {
    let mut value = core::mem::MaybeUninit::<T>::uninit();
    // SAFETY: the slice covers exactly the bytes of `value`, which `copy_from_user` fills
    // completely before `assume_init` (on error the value is dropped uninitialised).
    let bytes = unsafe { core::slice::from_raw_parts_mut(value.as_mut_ptr().cast::<u8>(), size_of::<T>()) };
    copy_from_user(mm, bytes, addr)?;
    // SAFETY: fully initialised above, and `T: Pod` accepts any bytes.
    Ok(unsafe { value.assume_init() })
}

/// Writes a `T` to user memory.
pub fn write<T: Pod>(mm: &mut UserSpace, addr: u64, value: &T) -> KResult<()> {
    copy_to_user(mm, addr, bytes_of(value))
}

/// The bytes of a `T`, as user space sees them.
pub fn bytes_of<T: Pod>(value: &T) -> &[u8] {
    // SAFETY: `T: Pod` has no uninitialised padding, so its bytes may be read; the slice
    // borrows `value`.
    unsafe { core::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) }
}

/// Reads a NUL-terminated string of at most `max` bytes (not counting the NUL).
pub fn read_cstring(mm: &mut UserSpace, addr: u64, max: usize) -> KResult<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = addr;
    loop {
        let page_left = (PAGE_SIZE - (at & (PAGE_SIZE - 1))) as usize;
        let mut chunk = [0u8; 256];
        let n = page_left.min(chunk.len());
        copy_from_user(mm, &mut chunk[..n], at)?;
        if let Some(nul) = chunk[..n].iter().position(|&b| b == 0) {
            out.extend_from_slice(&chunk[..nul]);
            return if out.len() > max { Err(ENAMETOOLONG) } else { Ok(out) };
        }
        out.extend_from_slice(&chunk[..n]);
        if out.len() > max {
            return Err(ENAMETOOLONG);
        }
        at += n as u64;
    }
}

/// Reads a NUL-terminated string as UTF-8-ish text (invalid bytes replaced).
pub fn read_path(mm: &mut UserSpace, addr: u64) -> KResult<String> {
    let bytes = read_cstring(mm, addr, 4095)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The physical segments behind user range `[addr, addr + len)`, faulting pages in and
/// pinning each frame (the caller unpins them when the device is done): the zero-copy
/// path for device I/O. `write`: the device will write the memory (a read request).
/// EAGAIN when the pin table is full.
pub fn pin_user_segments(mm: &mut UserSpace, addr: u64, len: usize, write: bool) -> KResult<Vec<(u64, u32)>> {
    let access = if write { Access::Write } else { Access::Read };
    let mut segments: Vec<(u64, u32)> = Vec::new();
    for_each_chunk(mm, addr, len, access, &mut |kptr, n, _| {
        let phys = crate::mm::virt_to_phys(kptr);
        match segments.last_mut() {
            Some((p, l)) if *p + u64::from(*l) == phys => *l += n as u32,
            _ => segments.push((phys, n as u32)),
        }
    })?;
    for (n, &(p, l)) in segments.iter().enumerate() {
        let mut page = p & !(PAGE_SIZE - 1);
        while page < p + u64::from(l) {
            if !crate::mm::frame::pin(page) {
                // Undo: the pages pinned so far.
                let mut undo = p & !(PAGE_SIZE - 1);
                while undo < page {
                    crate::mm::frame::unpin(undo);
                    undo += PAGE_SIZE;
                }
                unpin_segments(&segments[..n]);
                return Err(crate::errno::EAGAIN);
            }
            page += PAGE_SIZE;
        }
    }
    Ok(segments)
}

/// Unpins what [`pin_user_segments`] pinned.
pub fn unpin_segments(segments: &[(u64, u32)]) {
    for &(p, l) in segments {
        let mut page = p & !(PAGE_SIZE - 1);
        while page < p + u64::from(l) {
            crate::mm::frame::unpin(page);
            page += PAGE_SIZE;
        }
    }
}
