//! Memory layout of the kernel's address space.
//!
//! | range                         | what                                         |
//! |-------------------------------|----------------------------------------------|
//! | `0 .. 4 GiB`                  | identity map, only used while booting        |
//! | `PHYS_OFFSET ..`              | direct map of physical memory (4 GiB)        |
//! | `KERNEL_VMA ..`               | the kernel image, loaded at 1 MiB physical   |

/// Where the direct map of physical memory starts.
pub const PHYS_OFFSET: u64 = 0xffff_8000_0000_0000;
/// Where the kernel image is linked (physical address + `KERNEL_VMA`).
pub const KERNEL_VMA: u64 = 0xffff_ffff_8000_0000;
/// How much physical memory the boot page tables map at `PHYS_OFFSET`.
pub const DIRECT_MAP_SIZE: u64 = 4 << 30;

/// The direct-map address of physical address `paddr`, if the direct map covers
/// `paddr .. paddr + len`.
pub fn phys_to_virt(paddr: u64, len: u64) -> Option<*mut u8> {
    let end = paddr.checked_add(len)?;
    (end <= DIRECT_MAP_SIZE).then_some((PHYS_OFFSET + paddr) as *mut u8)
}

pub mod filemap;
pub mod frame;
pub mod heap;
pub mod paging;
pub mod uaccess;
pub mod user;
pub mod vdso;
pub mod writeback;

pub const PAGE_SIZE: u64 = 4096;

/// The first address above user space (the lower canonical half).
pub const USER_END: u64 = 0x0000_8000_0000_0000;

/// Rounds `x` down to a page boundary.
pub const fn page_down(x: u64) -> u64 {
    x & !(PAGE_SIZE - 1)
}

/// Rounds `x` up to a page boundary (saturating at the top page).
pub const fn page_up(x: u64) -> u64 {
    match x.checked_add(PAGE_SIZE - 1) {
        Some(v) => v & !(PAGE_SIZE - 1),
        None => page_down(u64::MAX),
    }
}

/// The direct-map address of the frame at `paddr` (which must be RAM the kernel owns).
#[track_caller]
pub fn frame_ptr(paddr: u64) -> *mut u8 {
    phys_to_virt(paddr, PAGE_SIZE).expect("frames lie in the direct map")
}

unsafe extern "C" {
    static __kernel_phys_start: u8;
    static __kernel_end: u8;
}

/// Physical range of the kernel image (all segments, `.bss` and stacks included).
pub fn kernel_phys_range() -> (u64, u64) {
    let start = core::ptr::addr_of!(__kernel_phys_start) as u64;
    let end = core::ptr::addr_of!(__kernel_end) as u64 - KERNEL_VMA;
    (start, end)
}

/// Sets up the frame allocator and the kernel heap from the boot memory map.
pub fn init(info: &crate::boot_info::BootInfo) {
    frame::init(info);
    heap::init();
}

/// The physical address of kernel memory at `ptr` (the heap and anything else in the
/// direct map, or the kernel image). Device DMA addresses come from here.
pub fn virt_to_phys(ptr: *const u8) -> u64 {
    let v = ptr as u64;
    if v >= KERNEL_VMA {
        v - KERNEL_VMA
    } else {
        debug_assert!((PHYS_OFFSET..PHYS_OFFSET + DIRECT_MAP_SIZE).contains(&v));
        v - PHYS_OFFSET
    }
}
