//! The shared rings: memory the kernel and user space both write, and the ordering rules
//! that make that safe.
//!
//! # Layout (Linux's current `struct io_rings`, so `sq_off`/`cq_off` match Linux exactly)
//! One region holds both rings: SQ head and tail at 0 and 4, CQ head and tail at 8 and 12,
//! then the masks, entry counts, `sq_dropped`, `sq_flags`, `cq_flags`, `cq_overflow`, the
//! CQE array at 64, and after it (64-aligned) the SQ index array. The SQE array is a
//! second region. Both are page frames owned by the ring and mapped into the process by
//! `mmap` on the ring fd (with FEAT_SINGLE_MMAP one mapping serves SQ and CQ), or, with
//! IORING_SETUP_NO_MMAP, pages of the program's own memory that the ring pins.
//!
//! # Ordering
//! Indices are free-running `u32`s, masked on use; `tail - head` (wrapping) is the fill.
//! The producer of a ring owns its tail, the consumer its head:
//! - SQ (user produces, kernel consumes): the kernel loads `sq.tail` with Acquire, pairing
//!   with user space's Release store of the tail after it filled the SQEs and the array;
//!   it then reads each SQE exactly once (prep copies it). It stores `sq.head` with
//!   Release, pairing with user space's Acquire load of the head before it reuses slots.
//! - CQ (kernel produces, user consumes): the kernel writes a CQE, then stores `cq.tail`
//!   with Release, pairing with user space's Acquire load of the tail before reading CQEs.
//!   It loads `cq.head` with Acquire, pairing with user space's Release store of the head
//!   after it has read the CQEs, so a slot is never overwritten while being read.
//!
//! Everything user space writes is hostile: indices are masked, array entries are checked
//! against the SQ size (bad ones counted in `sq_dropped`), and an SQE is copied before use.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};

use super::uapi::{Cqe, CqringOffsets, Sqe, SqringOffsets, IORING_CQE_F_32, IORING_CQE_F_SKIP, IORING_SETUP_CQE32, IORING_SETUP_CQE_MIXED, IORING_SETUP_NO_SQARRAY, IORING_SETUP_SQE128};
use crate::errno::*;
use crate::mm::user::SharedPages;
use super::memmap::{allocate, pin_user, Memory};
use crate::mm::PAGE_SIZE;

const SQ_HEAD: usize = 0;
const SQ_TAIL: usize = 4;
const CQ_HEAD: usize = 8;
const CQ_TAIL: usize = 12;
const SQ_RING_MASK: usize = 16;
const CQ_RING_MASK: usize = 20;
const SQ_RING_ENTRIES: usize = 24;
const CQ_RING_ENTRIES: usize = 28;
const SQ_DROPPED: usize = 32;
const SQ_FLAGS: usize = 36;
const CQ_FLAGS: usize = 40;
const CQ_OVERFLOW: usize = 44;
/// The CQE array, after the header (Linux's `sizeof(struct io_rings)`).
pub const CQES: usize = 64;
/// The header's alignment (a cache line: Linux's SMP_CACHE_BYTES on x86-64).
pub const HDR_ALIGN: usize = 64;

pub struct Rings {
    /// SQ and CQ rings, CQEs and the SQ index array.
    ring_mem: Memory,
    sqe_mem: Memory,
    /// Kernel addresses of each page of the two regions (their frames never change, so
    /// they are looked up once).
    ring_va: Vec<usize>,
    sqe_va: Vec<usize>,
    pub sq_entries: u32,
    pub cq_entries: u32,
    /// Bytes per SQE (128 with IORING_SETUP_SQE128) and per CQE (32 with CQE32).
    sqe_size: usize,
    cqe_size: usize,
    /// IORING_SETUP_CQE_MIXED: CQEs flagged IORING_CQE_F_32 take two slots.
    mixed: bool,
    /// Offset of the SQ index array; 0 with IORING_SETUP_NO_SQARRAY (SQEs are taken in
    /// ring order then).
    array: usize,
    pub ring_bytes: usize,
    pub sqe_bytes: usize,
}

impl Rings {
    /// The rings of `sq_entries` SQEs and `cq_entries` CQEs, in new frames, or with
    /// `user` (IORING_SETUP_NO_MMAP) in the program's memory at (rings, SQEs).
    pub fn new(sq_entries: u32, cq_entries: u32, setup_flags: u32, user: Option<(u64, u64)>) -> KResult<Self> {
        let sq_array = setup_flags & IORING_SETUP_NO_SQARRAY == 0;
        let sqe_size = if setup_flags & IORING_SETUP_SQE128 != 0 { 128 } else { 64 };
        let cqe_size = if setup_flags & IORING_SETUP_CQE32 != 0 { 32 } else { 16 };
        let cqes_end = CQES + cq_entries as usize * cqe_size;
        let (array, ring_bytes) = if sq_array {
            let array = cqes_end.next_multiple_of(64);
            (array, array + sq_entries as usize * 4)
        } else {
            (0, cqes_end)
        };
        let sqe_bytes = sq_entries as usize * sqe_size;
        let ((ring_mem, ring_va), (sqe_mem, sqe_va)) = match user {
            None => (allocate(ring_bytes)?, allocate(sqe_bytes)?),
            Some((rings, sqes)) => (pin_user(rings, ring_bytes)?, pin_user(sqes, sqe_bytes)?),
        };
        let mixed = setup_flags & IORING_SETUP_CQE_MIXED != 0;
        let rings = Self { ring_va, sqe_va, ring_mem, sqe_mem, sq_entries, cq_entries, sqe_size, cqe_size, mixed, array, ring_bytes, sqe_bytes };
        rings.word(SQ_RING_MASK).store(sq_entries - 1, Ordering::Relaxed);
        rings.word(CQ_RING_MASK).store(cq_entries - 1, Ordering::Relaxed);
        rings.word(SQ_RING_ENTRIES).store(sq_entries, Ordering::Relaxed);
        rings.word(CQ_RING_ENTRIES).store(cq_entries, Ordering::Relaxed);
        Ok(rings)
    }

    /// The frames `mmap` of IORING_OFF_SQ_RING/CQ_RING (`sqes` false) or IORING_OFF_SQES
    /// maps, and the region's size. Rings in the program's memory cannot be mapped:
    /// ENOMEM, what Linux's io_uring_get_unmapped_area answers for them.
    pub fn mmap_pages(&self, sqes: bool) -> KResult<(Arc<SharedPages>, usize)> {
        let (mem, size) = if sqes { (&self.sqe_mem, self.sqe_bytes) } else { (&self.ring_mem, self.ring_bytes) };
        match mem {
            Memory::Kernel(pages) => Ok((Arc::clone(pages), size)),
            Memory::User(_) => Err(ENOMEM),
        }
    }

    pub fn sq_offsets(&self) -> SqringOffsets {
        SqringOffsets {
            head: SQ_HEAD as u32,
            tail: SQ_TAIL as u32,
            ring_mask: SQ_RING_MASK as u32,
            ring_entries: SQ_RING_ENTRIES as u32,
            flags: SQ_FLAGS as u32,
            dropped: SQ_DROPPED as u32,
            array: self.array as u32,
            ..SqringOffsets::default()
        }
    }

    pub fn cq_offsets(&self) -> CqringOffsets {
        CqringOffsets {
            head: CQ_HEAD as u32,
            tail: CQ_TAIL as u32,
            ring_mask: CQ_RING_MASK as u32,
            ring_entries: CQ_RING_ENTRIES as u32,
            overflow: CQ_OVERFLOW as u32,
            cqes: CQES as u32,
            flags: CQ_FLAGS as u32,
            ..CqringOffsets::default()
        }
    }

    /// Kernel pointer to byte `offset` of a region given by its page addresses (never
    /// straddles a page for the aligned items accessed here).
    fn ptr(pages: &[usize], offset: usize) -> *mut u8 {
        (pages[offset / PAGE_SIZE as usize] + offset % PAGE_SIZE as usize) as *mut u8
    }

    fn word(&self, offset: usize) -> &AtomicU32 {
        // SAFETY: the ring frames live as long as `self` (the Arc), the offset is 4-aligned
        // and inside the region, and user space may only race with us through atomics.
        unsafe { &*Self::ptr(&self.ring_va, offset).cast::<AtomicU32>() }
    }

    /// The SQ tail user space published (Acquire: see the module docs).
    pub fn sq_tail(&self) -> u32 {
        self.word(SQ_TAIL).load(Ordering::Acquire)
    }

    /// The kernel's SQ head (only the kernel writes it).
    pub fn sq_head(&self) -> u32 {
        self.word(SQ_HEAD).load(Ordering::Relaxed)
    }

    /// Publishes consumed SQ slots (Release: see the module docs).
    pub fn set_sq_head(&self, head: u32) {
        self.word(SQ_HEAD).store(head, Ordering::Release);
    }

    /// The SQE index user space put in array slot `pos` (masked); without the array,
    /// the slot itself.
    pub fn sq_array(&self, pos: u32) -> u32 {
        let slot = pos & (self.sq_entries - 1);
        if self.array == 0 {
            return slot;
        }
        self.word(self.array + slot as usize * 4).load(Ordering::Relaxed)
    }

    /// Copies SQE `index` (< sq_entries) out of shared memory, once: its first 64 bytes
    /// (the second half of a 128-byte SQE is URING_CMD's, which no op here reads).
    pub fn read_sqe(&self, index: u32) -> Sqe {
        let p = Self::ptr(&self.sqe_va, index as usize * self.sqe_size);
        // SAFETY: an SQE slot inside the SQE frames; user space may be writing it, but a
        // plain byte copy of integers has no invalid values, and we use only the copy.
        unsafe { p.cast::<Sqe>().read_volatile() }
    }

    pub fn add_dropped(&self) {
        self.word(SQ_DROPPED).fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_sq_flag(&self, flag: u32, on: bool) {
        if on {
            self.word(SQ_FLAGS).fetch_or(flag, Ordering::Relaxed);
        } else {
            self.word(SQ_FLAGS).fetch_and(!flag, Ordering::Relaxed);
        }
    }

    /// The CQ flags word, which user space writes (IORING_CQ_EVENTFD_DISABLED).
    pub fn cq_flags(&self) -> u32 {
        self.word(CQ_FLAGS).load(Ordering::Relaxed)
    }

    /// Counts a CQE that had to be dropped.
    pub fn add_overflow(&self) {
        self.word(CQ_OVERFLOW).fetch_add(1, Ordering::Relaxed);
    }

    /// The CQ head and tail as user space sees them (fdinfo).
    pub fn cq_indices(&self) -> (u32, u32) {
        (self.word(CQ_HEAD).load(Ordering::Acquire), self.word(CQ_TAIL).load(Ordering::Relaxed))
    }

    /// CQEs posted and not yet consumed by user space.
    pub fn cq_ready(&self) -> u32 {
        self.word(CQ_TAIL).load(Ordering::Relaxed).wrapping_sub(self.word(CQ_HEAD).load(Ordering::Acquire))
    }

    /// Free CQE slots.
    pub fn cq_space(&self) -> u32 {
        self.cq_entries - self.cq_ready().min(self.cq_entries)
    }

    /// Writes a CQE if there is room; false when the CQ is full. On a CQE_MIXED ring a
    /// CQE flagged IORING_CQE_F_32 takes two slots, after a IORING_CQE_F_SKIP filler in
    /// the last slot when it would wrap (all three, or nothing).
    pub fn push_cqe(&self, cqe: &Cqe) -> bool {
        let mut tail = self.word(CQ_TAIL).load(Ordering::Relaxed);
        let head = self.word(CQ_HEAD).load(Ordering::Acquire);
        let big = self.mixed && cqe.flags & IORING_CQE_F_32 != 0;
        let at_end = (tail & (self.cq_entries - 1)) == self.cq_entries - 1;
        let need = match (big, at_end) {
            (false, _) => 1,
            (true, false) => 2,
            (true, true) => 3,
        };
        if tail.wrapping_sub(head) + need > self.cq_entries {
            return false;
        }
        if big && at_end {
            self.write_cqe(tail, &Cqe::new(0, 0, IORING_CQE_F_SKIP), false);
            tail = tail.wrapping_add(1);
        }
        self.write_cqe(tail, cqe, big || self.cqe_size == size_of::<Cqe>());
        self.word(CQ_TAIL).store(tail.wrapping_add(if big { 2 } else { 1 }), Ordering::Release);
        true
    }

    /// IORING_REGISTER_RESIZE_RINGS: takes over what user space sees of `old` (Linux's
    /// io_register_resize_rings): the SQEs between its SQ head and tail and the CQEs
    /// between its CQ head and tail, each to the same free-running index here, the four
    /// indices themselves, `sq_dropped`, both flag words and `cq_overflow`. The SQ index
    /// array is not carried over, as on Linux. EOVERFLOW, with `self` unused, when the
    /// entries do not fit.
    pub fn take_over(&self, old: &Rings) -> KResult<()> {
        let (sq_head, sq_tail) = (old.word(SQ_HEAD).load(Ordering::Acquire), old.word(SQ_TAIL).load(Ordering::Acquire));
        let (cq_head, cq_tail) = (old.word(CQ_HEAD).load(Ordering::Acquire), old.word(CQ_TAIL).load(Ordering::Acquire));
        if sq_tail.wrapping_sub(sq_head) > self.sq_entries || cq_tail.wrapping_sub(cq_head) > self.cq_entries {
            return Err(EOVERFLOW);
        }
        let mut i = sq_head;
        while i != sq_tail {
            let from = Self::ptr(&old.sqe_va, (i & (old.sq_entries - 1)) as usize * old.sqe_size);
            let to = Self::ptr(&self.sqe_va, (i & (self.sq_entries - 1)) as usize * self.sqe_size);
            Self::copy_slot(from, to, self.sqe_size);
            i = i.wrapping_add(1);
        }
        let mut i = cq_head;
        while i != cq_tail {
            let from = Self::ptr(&old.ring_va, CQES + (i & (old.cq_entries - 1)) as usize * old.cqe_size);
            let to = Self::ptr(&self.ring_va, CQES + (i & (self.cq_entries - 1)) as usize * self.cqe_size);
            Self::copy_slot(from, to, self.cqe_size);
            i = i.wrapping_add(1);
        }
        for word in [SQ_HEAD, SQ_TAIL, CQ_HEAD, CQ_TAIL, SQ_DROPPED, SQ_FLAGS, CQ_FLAGS, CQ_OVERFLOW] {
            self.word(word).store(old.word(word).load(Ordering::Relaxed), Ordering::Relaxed);
        }
        // Release: the entries are in place before another CPU can find these rings.
        core::sync::atomic::fence(Ordering::Release);
        Ok(())
    }

    /// Copies one SQE or CQE slot (`bytes`, a multiple of 8 that divides the page size,
    /// so a slot never straddles a page).
    fn copy_slot(from: *const u8, to: *mut u8, bytes: usize) {
        for k in 0..bytes / 8 {
            // SAFETY: both are slots inside ring frames (see `ptr`), 8-aligned; user space
            // may write the source meanwhile, which only changes the integers copied.
            unsafe { to.cast::<u64>().add(k).write_volatile(from.cast::<u64>().add(k).read_volatile()) }
        }
    }

    /// Writes `cqe` at CQ index `tail`: all 32 bytes (`full`), or its first 16.
    fn write_cqe(&self, tail: u32, cqe: &Cqe, full: bool) {
        let slot = (tail & (self.cq_entries - 1)) as usize;
        let p = Self::ptr(&self.ring_va, CQES + slot * self.cqe_size);
        // SAFETY: a CQE slot (a 32-byte one is two 16-byte slots, never the last one, so
        // never straddling the ring's end or a page) in the ring frames that user space is
        // not reading (between tail and head + entries); a 16-byte CQE is the first half
        // of `Cqe`.
        unsafe {
            if full {
                p.cast::<Cqe>().write_volatile(*cqe);
            } else {
                p.cast::<[u64; 2]>().write_volatile([cqe.user_data, u64::from(cqe.res as u32) | u64::from(cqe.flags) << 32]);
            }
        }
    }
}
