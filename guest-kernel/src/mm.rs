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
