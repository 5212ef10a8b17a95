//! The kernel heap: a buddy allocator (buddy_system_allocator) over one contiguous block of
//! frames taken at boot, behind the kernel's interrupt-safe spinlock.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;

use buddy_system_allocator::Heap;

use crate::mm::{frame, frame_ptr, PAGE_SIZE};
use crate::sync::SpinLock;

/// Heap size: a quarter of the frames, between 4 and 64 MiB.
const MIN_HEAP: u64 = 4 << 20;
const MAX_HEAP: u64 = 64 << 20;

struct KernelHeap(SpinLock<Heap<32>>);

#[global_allocator]
static HEAP: KernelHeap = KernelHeap(SpinLock::new(Heap::empty()));

// SAFETY: the buddy allocator hands out disjoint blocks of the region given in `init`,
// and the spinlock serialises it.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.0.lock().alloc(layout).map_or(core::ptr::null_mut(), NonNull::as_ptr)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller passes a pointer this allocator returned, with its layout.
        unsafe { self.0.lock().dealloc(NonNull::new_unchecked(ptr), layout) };
    }
}

pub fn init() {
    let (total, _) = frame::stats();
    let bytes = (total * PAGE_SIZE / 4).clamp(MIN_HEAP, MAX_HEAP) & !(PAGE_SIZE - 1);
    let start = frame::alloc_contiguous(bytes / PAGE_SIZE).expect("RAM for the kernel heap");
    // SAFETY: the frames were just taken from the frame allocator for good and are mapped
    // contiguously by the direct map.
    unsafe { HEAP.0.lock().init(frame_ptr(start) as usize, bytes as usize) };
    log::debug!("heap: {} MiB at {start:#x}", bytes >> 20);
}
