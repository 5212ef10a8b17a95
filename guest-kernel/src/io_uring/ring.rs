//! The shared rings: memory the kernel and user space both write, and the ordering rules
//! that make that safe.
//!
//! # Layout (as Linux's `struct io_rings`, so `sq_off`/`cq_off` match Linux exactly)
//! One region holds both rings: SQ head at 0 and tail at 64, CQ head at 128 and tail at 192
//! (each on its own cache line), then the masks, entry counts, `sq_dropped`, `sq_flags`,
//! `cq_flags`, `cq_overflow`, the CQE array at 320, and after it the SQ index array. The
//! SQE array is a second region. Both are page frames owned by the ring and mapped into
//! the process by `mmap` on the ring fd (with FEAT_SINGLE_MMAP one mapping serves SQ and CQ).
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

use super::uapi::{Cqe, CqringOffsets, Sqe, SqringOffsets};
use crate::errno::KResult;
use crate::mm::user::SharedPages;
use crate::mm::{frame_ptr, PAGE_SIZE};

const SQ_HEAD: usize = 0;
const SQ_TAIL: usize = 64;
const CQ_HEAD: usize = 128;
const CQ_TAIL: usize = 192;
const SQ_RING_MASK: usize = 256;
const CQ_RING_MASK: usize = 260;
const SQ_RING_ENTRIES: usize = 264;
const CQ_RING_ENTRIES: usize = 268;
const SQ_DROPPED: usize = 272;
const SQ_FLAGS: usize = 276;
const CQ_FLAGS: usize = 280;
const CQ_OVERFLOW: usize = 284;
const CQES: usize = 320;

pub struct Rings {
    /// SQ and CQ rings, CQEs and the SQ index array.
    pub ring_pages: Arc<SharedPages>,
    pub sqe_pages: Arc<SharedPages>,
    /// Kernel addresses of each page of the two regions (their frames never change, so
    /// they are looked up once).
    ring_va: Vec<usize>,
    sqe_va: Vec<usize>,
    pub sq_entries: u32,
    pub cq_entries: u32,
    /// Offset of the SQ index array; 0 with IORING_SETUP_NO_SQARRAY (SQEs are taken in
    /// ring order then).
    array: usize,
    pub ring_bytes: usize,
    pub sqe_bytes: usize,
}

fn allocate(bytes: usize) -> KResult<Arc<SharedPages>> {
    let pages = SharedPages::new(bytes.div_ceil(PAGE_SIZE as usize));
    for i in 0..pages.len() {
        pages.frame(i)?;
    }
    Ok(pages)
}

impl Rings {
    pub fn new(sq_entries: u32, cq_entries: u32, sq_array: bool) -> KResult<Self> {
        let cqes_end = CQES + cq_entries as usize * size_of::<Cqe>();
        let (array, ring_bytes) = if sq_array {
            let array = cqes_end.next_multiple_of(64);
            (array, array + sq_entries as usize * 4)
        } else {
            (0, cqes_end)
        };
        let sqe_bytes = sq_entries as usize * size_of::<Sqe>();
        let (ring_pages, sqe_pages) = (allocate(ring_bytes)?, allocate(sqe_bytes)?);
        let va = |p: &SharedPages| (0..p.len()).map(|i| frame_ptr(p.existing(i)) as usize).collect();
        let rings = Self {
            ring_va: va(&ring_pages),
            sqe_va: va(&sqe_pages),
            ring_pages,
            sqe_pages,
            sq_entries,
            cq_entries,
            array,
            ring_bytes,
            sqe_bytes,
        };
        rings.word(SQ_RING_MASK).store(sq_entries - 1, Ordering::Relaxed);
        rings.word(CQ_RING_MASK).store(cq_entries - 1, Ordering::Relaxed);
        rings.word(SQ_RING_ENTRIES).store(sq_entries, Ordering::Relaxed);
        rings.word(CQ_RING_ENTRIES).store(cq_entries, Ordering::Relaxed);
        Ok(rings)
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

    /// Copies SQE `index` (< sq_entries) out of shared memory, once.
    pub fn read_sqe(&self, index: u32) -> Sqe {
        let p = Self::ptr(&self.sqe_va, index as usize * size_of::<Sqe>());
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

    /// CQEs posted and not yet consumed by user space.
    pub fn cq_ready(&self) -> u32 {
        self.word(CQ_TAIL).load(Ordering::Relaxed).wrapping_sub(self.word(CQ_HEAD).load(Ordering::Acquire))
    }

    /// Free CQE slots.
    pub fn cq_space(&self) -> u32 {
        self.cq_entries - self.cq_ready().min(self.cq_entries)
    }

    /// Writes a CQE if there is room; false when the CQ is full.
    pub fn push_cqe(&self, cqe: &Cqe) -> bool {
        let tail = self.word(CQ_TAIL).load(Ordering::Relaxed);
        let head = self.word(CQ_HEAD).load(Ordering::Acquire);
        if tail.wrapping_sub(head) >= self.cq_entries {
            return false;
        }
        let slot = (tail & (self.cq_entries - 1)) as usize;
        let p = Self::ptr(&self.ring_va, CQES + slot * size_of::<Cqe>());
        // SAFETY: a CQE slot in the ring frames that user space is not reading (it is
        // between tail and head + entries).
        unsafe { p.cast::<Cqe>().write_volatile(*cqe) };
        self.word(CQ_TAIL).store(tail.wrapping_add(1), Ordering::Release);
        true
    }
}
