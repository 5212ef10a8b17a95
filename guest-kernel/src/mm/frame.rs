//! Physical page frames.
//!
//! Usable RAM comes from the boot memory map, minus what is already taken: everything below
//! 1 MiB (boot data, command line), the kernel image and the modules (the initrd, which the
//! RAM filesystem keeps using in place). Frames are handed out by a bump pointer through
//! each region; freed frames go on a free list threaded through the frames themselves (via
//! the direct map), so both allocation and release are O(1) and nothing is scanned at boot.

use crate::boot_info::{BootInfo, MEMORY_RAM};
use crate::mm::{frame_ptr, page_down, page_up, DIRECT_MAP_SIZE, PAGE_SIZE};
use crate::sync::SpinLock;

const MAX_RANGES: usize = 16;

#[derive(Clone, Copy, Default)]
struct Range {
    next: u64,
    end: u64,
}

struct Frames {
    ranges: [Range; MAX_RANGES],
    nr_ranges: usize,
    /// Head of the free list (0: empty); each free frame's first 8 bytes hold the next.
    free: u64,
    free_count: u64,
    total: u64,
}

static FRAMES: SpinLock<Frames> =
    SpinLock::new(Frames { ranges: [Range { next: 0, end: 0 }; MAX_RANGES], nr_ranges: 0, free: 0, free_count: 0, total: 0 });

/// Adds `[start, end)` minus the reserved ranges to the allocator.
fn add_range(frames: &mut Frames, start: u64, end: u64, reserved: &[(u64, u64)]) {
    let (mut s, e) = (start, end);
    // Reserved ranges are sorted; carve them out left to right.
    for &(rs, re) in reserved {
        if re <= s || rs >= e {
            continue;
        }
        if rs > s {
            push(frames, s, rs);
        }
        s = s.max(re);
    }
    if s < e {
        push(frames, s, e);
    }
}

fn push(frames: &mut Frames, start: u64, end: u64) {
    let (start, end) = (page_up(start), page_down(end.min(DIRECT_MAP_SIZE)));
    if start >= end || frames.nr_ranges == MAX_RANGES {
        return;
    }
    frames.ranges[frames.nr_ranges] = Range { next: start, end };
    frames.nr_ranges += 1;
    frames.total += (end - start) / PAGE_SIZE;
}

pub fn init(info: &BootInfo) {
    let (kstart, kend) = crate::mm::kernel_phys_range();
    let mut reserved = [(0u64, 0x10_0000u64), (kstart, page_up(kend)), (0, 0), (0, 0), (0, 0), (0, 0)];
    for (slot, m) in reserved[2..].iter_mut().zip(info.modules()) {
        *slot = (page_down(m.paddr), page_up(m.paddr + m.size));
    }
    reserved.sort_unstable_by_key(|r| r.0);
    let mut frames = FRAMES.lock();
    for r in info.memory_map().iter().filter(|r| r.kind == MEMORY_RAM) {
        add_range(&mut frames, r.addr, r.addr + r.size, &reserved);
    }
}

/// Takes `count` physically contiguous frames from the bump ranges (boot-time use:
/// the heap). Returns the first frame's physical address.
pub fn alloc_contiguous(count: u64) -> Option<u64> {
    let mut frames = FRAMES.lock();
    let nr = frames.nr_ranges;
    let range = frames.ranges[..nr].iter_mut().max_by_key(|r| r.end - r.next)?;
    let bytes = count * PAGE_SIZE;
    if range.end - range.next < bytes {
        return None;
    }
    let start = range.next;
    range.next += bytes;
    Some(start)
}

/// One frame, contents undefined.
pub fn alloc() -> Option<u64> {
    // Out of memory: the page cache gives back clean pages, then try once more.
    take().or_else(|| (super::filemap::shrink() > 0).then(take).flatten())
}

fn take() -> Option<u64> {
    let mut frames = FRAMES.lock();
    if frames.free != 0 {
        let frame = frames.free;
        // SAFETY: `frame` is a free frame we own; its first word holds the next link.
        frames.free = unsafe { frame_ptr(frame).cast::<u64>().read() };
        frames.free_count -= 1;
        log::trace!("frame alloc (reused) {frame:#x}");
        return Some(frame);
    }
    let nr = frames.nr_ranges;
    let range = frames.ranges[..nr].iter_mut().find(|r| r.next < r.end)?;
    let frame = range.next;
    range.next += PAGE_SIZE;
    log::trace!("frame alloc {frame:#x}");
    Some(frame)
}

/// One frame filled with zeros.
pub fn alloc_zeroed() -> Option<u64> {
    let frame = alloc()?;
    zero(frame);
    Some(frame)
}

/// Fills a frame with zeros (`rep stosq`: one instruction for the emulator).
pub fn zero(frame: u64) {
    // SAFETY: the frame is owned by the caller and mapped by the direct map.
    unsafe {
        core::arch::asm!("rep stosq", inout("rdi") frame_ptr(frame) => _, inout("rcx") PAGE_SIZE / 8 => _,
                         in("rax") 0u64, options(nostack, preserves_flags));
    }
}

/// Copies a whole frame (`rep movsq`).
pub fn copy(dst: u64, src: u64) {
    // SAFETY: both frames are distinct, owned by the caller, and in the direct map.
    unsafe {
        core::arch::asm!("rep movsq", inout("rdi") frame_ptr(dst) => _, inout("rsi") frame_ptr(src) => _,
                         inout("rcx") PAGE_SIZE / 8 => _, options(nostack, preserves_flags));
    }
}

/// Frames a device may be reading or writing (DMA in flight): a small open-addressing
/// table (frame, pin count, freed meanwhile), so pinning allocates nothing. A frame freed
/// while pinned is released at its last unpin.
const PIN_SLOTS: usize = 8192;

#[derive(Clone, Copy)]
struct Pin {
    frame: u64,
    count: u32,
    freed: bool,
}

static PINNED: SpinLock<[Pin; PIN_SLOTS]> = SpinLock::new([Pin { frame: 0, count: 0, freed: false }; PIN_SLOTS]);

/// The slot of `frame`, or the free slot where it would go.
fn pin_slot(table: &[Pin; PIN_SLOTS], frame: u64) -> Option<usize> {
    let start = (frame / PAGE_SIZE) as usize % PIN_SLOTS;
    (0..PIN_SLOTS).map(|i| (start + i) % PIN_SLOTS).find(|&i| table[i].count == 0 || table[i].frame == frame)
}

/// Keeps `frame` from being reused until [`unpin`]: a process may unmap memory while a
/// device still transfers into it. False when the table is full (the caller then takes a
/// path without DMA into user pages).
pub fn pin(frame: u64) -> bool {
    let mut table = PINNED.lock();
    let Some(i) = pin_slot(&table, frame) else { return false };
    if table[i].count == 0 {
        table[i] = Pin { frame, count: 0, freed: false };
    }
    table[i].count += 1;
    true
}

pub fn unpin(frame: u64) {
    let release = {
        let mut table = PINNED.lock();
        let Some(i) = pin_slot(&table, frame).filter(|&i| table[i].count > 0 && table[i].frame == frame) else { return };
        table[i].count -= 1;
        let release = table[i].count == 0 && table[i].freed;
        if table[i].count == 0 {
            // Keep probe chains intact: later entries may have probed past this slot.
            rehash_after(&mut table, i);
        }
        release
    };
    if release {
        free(frame);
    }
}

/// After emptying slot `hole`, moves later entries of its probe chain back into it.
fn rehash_after(table: &mut [Pin; PIN_SLOTS], mut hole: usize) {
    let mut i = (hole + 1) % PIN_SLOTS;
    while table[i].count != 0 {
        let home = (table[i].frame / PAGE_SIZE) as usize % PIN_SLOTS;
        // Move it if its home is not cyclically within (hole, i].
        let within = if hole <= i { home > hole && home <= i } else { home > hole || home <= i };
        if !within {
            table[hole] = table[i];
            table[i].count = 0;
            hole = i;
        }
        i = (i + 1) % PIN_SLOTS;
    }
}

/// Whether `frame` is pinned now (a device or a registered buffer uses it).
pub fn is_pinned(frame: u64) -> bool {
    let table = PINNED.lock();
    pin_slot(&table, frame).is_some_and(|i| table[i].count > 0 && table[i].frame == frame)
}

/// Returns a frame to the allocator (later, if it is pinned).
pub fn free(frame: u64) {
    {
        let mut table = PINNED.lock();
        if let Some(i) = pin_slot(&table, frame).filter(|&i| table[i].count > 0 && table[i].frame == frame) {
            table[i].freed = true;
            return;
        }
    }
    let mut frames = FRAMES.lock();
    // SAFETY: the caller gives up `frame`; we store the list link in its first word.
    unsafe { frame_ptr(frame).cast::<u64>().write(frames.free) };
    frames.free = frame;
    frames.free_count += 1;
}

/// (total frames, frames never handed out + frames on the free list).
pub fn stats() -> (u64, u64) {
    let frames = FRAMES.lock();
    let untouched: u64 = frames.ranges[..frames.nr_ranges].iter().map(|r| (r.end - r.next) / PAGE_SIZE).sum();
    (frames.total, untouched + frames.free_count)
}
