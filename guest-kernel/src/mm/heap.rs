//! The kernel heap: one contiguous block of frames taken at boot, managed by a buddy
//! allocator (buddy_system_allocator), with a slab layer in front for small objects.
//!
//! Small allocations (up to 2 KiB: requests, closures, wait-queue entries) come from
//! per-size-class free lists, refilled 4 KiB at a time from the buddy allocator and never
//! given back: allocation and release are a list pop and push. The buddy allocator's
//! release merges neighbours by scanning its free lists, which is too slow for the I/O
//! path (it was a quarter of an io_uring read's kernel instructions).

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;

use buddy_system_allocator::Heap;

use crate::mm::{frame, frame_ptr, PAGE_SIZE};
use crate::sync::SpinLock;

/// Heap size: a quarter of the frames, between 4 and 64 MiB.
const MIN_HEAP: u64 = 4 << 20;
const MAX_HEAP: u64 = 64 << 20;

/// Slab size classes: 16, 32, ..., 2048 bytes.
const CLASSES: usize = 8;
const MIN_CLASS_SHIFT: usize = 4;
const SLAB_CHUNK: usize = 4096;

struct Heap2 {
    buddy: Heap<32>,
    /// Head of each class's free list (0: empty); a free object's first word links on.
    free: [usize; CLASSES],
    /// Bytes handed out and not yet given back (slab objects at their class size).
    in_use: usize,
}

struct KernelHeap(SpinLock<Heap2>);

#[global_allocator]
static HEAP: KernelHeap = KernelHeap(SpinLock::new(Heap2 { buddy: Heap::empty(), free: [0; CLASSES], in_use: 0 }));

/// Bytes of kernel heap in use (`/proc/meminfo`'s KernelHeap: leak tests watch it).
pub fn in_use() -> usize {
    HEAP.0.lock().in_use
}

/// The heap's size, set once at boot.
static SIZE: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// Whether the heap is nearly full (under an eighth free): callers that let user space
/// grow kernel memory (io_uring requests) refuse more work then, with Linux's errors,
/// rather than let an allocation fail (which would end the kernel).
pub fn under_pressure() -> bool {
    let size = SIZE.load(core::sync::atomic::Ordering::Relaxed);
    in_use() > size - size / 8
}

/// Whether `bytes` more could be allocated and leave the heap out of pressure (see
/// [`under_pressure`]): for allocations user space can ask for in bulk.
pub fn can_spare(bytes: usize) -> bool {
    let size = SIZE.load(core::sync::atomic::Ordering::Relaxed);
    in_use() + bytes.next_power_of_two() <= size - size / 8
}

/// The bytes a block of `layout` takes from the heap.
fn charge(layout: &Layout) -> usize {
    match class_of(layout) {
        Some(class) => 1 << (class + MIN_CLASS_SHIFT),
        // The buddy allocator hands out powers of two.
        None => layout.size().max(layout.align()).next_power_of_two(),
    }
}

/// The slab class for `layout`, if small enough (size and alignment up to 2 KiB).
fn class_of(layout: &Layout) -> Option<usize> {
    let size = layout.size().max(layout.align()).max(1 << MIN_CLASS_SHIFT).next_power_of_two();
    let class = size.trailing_zeros() as usize - MIN_CLASS_SHIFT;
    (class < CLASSES).then_some(class)
}

impl Heap2 {
    /// Carves a 4 KiB chunk from the buddy allocator into objects of `class`.
    fn refill(&mut self, class: usize) -> bool {
        let Ok(chunk) = self.buddy.alloc(Layout::from_size_align(SLAB_CHUNK, SLAB_CHUNK).expect("valid")) else {
            return false;
        };
        let size = 1 << (class + MIN_CLASS_SHIFT);
        let base = chunk.as_ptr() as usize;
        for obj in (base..base + SLAB_CHUNK).step_by(size).rev() {
            // SAFETY: each object lies in the fresh chunk, aligned to its size (>= 16).
            unsafe { (obj as *mut usize).write(self.free[class]) };
            self.free[class] = obj;
        }
        true
    }
}

// SAFETY: both layers hand out disjoint, suitably aligned blocks of the region given in
// `init` (slab objects are carved from buddy chunks that are never returned), and the
// spinlock serialises them.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let mut heap = self.0.lock();
        match class_of(&layout) {
            Some(class) => {
                if heap.free[class] == 0 && !heap.refill(class) {
                    return core::ptr::null_mut();
                }
                let obj = heap.free[class];
                // SAFETY: a free object of this class: its first word is the next link.
                heap.free[class] = unsafe { (obj as *const usize).read() };
                heap.in_use += charge(&layout);
                obj as *mut u8
            }
            None => match heap.buddy.alloc(layout) {
                Ok(p) => {
                    heap.in_use += charge(&layout);
                    p.as_ptr()
                }
                Err(()) => core::ptr::null_mut(),
            },
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let mut heap = self.0.lock();
        heap.in_use -= charge(&layout);
        match class_of(&layout) {
            Some(class) => {
                // SAFETY: the caller gives back an object of this class; we store the link.
                unsafe { ptr.cast::<usize>().write(heap.free[class]) };
                heap.free[class] = ptr as usize;
            }
            // SAFETY: the caller passes a pointer this allocator returned, with its layout.
            None => unsafe { heap.buddy.dealloc(NonNull::new_unchecked(ptr), layout) },
        }
    }
}

pub fn init() {
    let (total, _) = frame::stats();
    let bytes = (total * PAGE_SIZE / 4).clamp(MIN_HEAP, MAX_HEAP) & !(PAGE_SIZE - 1);
    let start = frame::alloc_contiguous(bytes / PAGE_SIZE).expect("RAM for the kernel heap");
    // SAFETY: the frames were just taken from the frame allocator for good and are mapped
    // contiguously by the direct map.
    unsafe { HEAP.0.lock().buddy.init(frame_ptr(start) as usize, bytes as usize) };
    SIZE.store(bytes as usize, core::sync::atomic::Ordering::Relaxed);
    log::debug!("heap: {} MiB at {start:#x}", bytes >> 20);
}
