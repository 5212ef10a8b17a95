//! What the loader tells us: the PVH `hvm_start_info` structure.
//!
//! Layout from Xen's `public/arch-x86/hvm/start_info.h` (version 1). Our VMM and QEMU
//! both fill it; QEMU microvm ends its memory map with an all-zero entry, which is skipped.

use core::mem::size_of;

use crate::mm::phys_to_virt;

pub const HVM_START_MAGIC: u32 = 0x336e_c578;

#[repr(C)]
#[derive(Clone, Copy)]
struct HvmStartInfo {
    magic: u32,
    version: u32,
    flags: u32,
    nr_modules: u32,
    modlist_paddr: u64,
    cmdline_paddr: u64,
    rsdp_paddr: u64,
    memmap_paddr: u64,
    memmap_entries: u32,
    reserved: u32,
}
const _: () = assert!(size_of::<HvmStartInfo>() == 56);

#[repr(C)]
#[derive(Clone, Copy)]
struct HvmModlistEntry {
    paddr: u64,
    size: u64,
    cmdline_paddr: u64,
    reserved: u64,
}
const _: () = assert!(size_of::<HvmModlistEntry>() == 32);

#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct MemoryRegion {
    pub addr: u64,
    pub size: u64,
    pub kind: u32,
    reserved: u32,
}
const _: () = assert!(size_of::<MemoryRegion>() == 24);

/// E820 type of usable RAM.
pub const MEMORY_RAM: u32 = 1;

impl MemoryRegion {
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            1 => "ram",
            2 => "reserved",
            3 => "acpi",
            4 => "nvs",
            5 => "unusable",
            _ => "other",
        }
    }
}

/// A module the loader placed in memory (the initrd).
#[derive(Clone, Copy, Default)]
pub struct Module {
    pub paddr: u64,
    pub size: u64,
}

const MAX_REGIONS: usize = 32;
const MAX_MODULES: usize = 4;
const MAX_CMDLINE: usize = 4096;

pub struct BootInfo {
    regions: [MemoryRegion; MAX_REGIONS],
    nr_regions: usize,
    modules: [Module; MAX_MODULES],
    nr_modules: usize,
    cmdline: &'static str,
}

/// Why `hvm_start_info` could not be read (the fields show in the panic message).
#[derive(Debug)]
#[allow(dead_code)]
pub enum BootInfoError {
    Unmapped(u64),
    BadMagic(u32),
    NoMemoryMap,
}

/// Reads a `T` from physical memory the loader filled.
fn read_phys<T: Copy>(paddr: u64) -> Result<T, BootInfoError> {
    let ptr = phys_to_virt(paddr, size_of::<T>() as u64).ok_or(BootInfoError::Unmapped(paddr))?;
    // SAFETY: the direct map covers the range (checked above) and any bit pattern is a
    // valid `T` for the plain-integer structs read here.
    Ok(unsafe { ptr.cast::<T>().read_unaligned() })
}

impl BootInfo {
    /// Parses `hvm_start_info` at physical address `paddr`.
    pub fn parse(paddr: u64) -> Result<Self, BootInfoError> {
        let info: HvmStartInfo = read_phys(paddr)?;
        if info.magic != HVM_START_MAGIC {
            return Err(BootInfoError::BadMagic(info.magic));
        }
        if info.version < 1 || info.memmap_entries == 0 {
            return Err(BootInfoError::NoMemoryMap);
        }
        let mut regions = [MemoryRegion::default(); MAX_REGIONS];
        let mut nr_regions = 0;
        for i in 0..u64::from(info.memmap_entries) {
            let region: MemoryRegion = read_phys(info.memmap_paddr + i * 24)?;
            if region.size == 0 || nr_regions == MAX_REGIONS {
                continue;
            }
            regions[nr_regions] = region;
            nr_regions += 1;
        }
        let mut modules = [Module::default(); MAX_MODULES];
        let nr_modules = (info.nr_modules as usize).min(MAX_MODULES);
        for (i, module) in modules.iter_mut().enumerate().take(nr_modules) {
            let entry: HvmModlistEntry = read_phys(info.modlist_paddr + i as u64 * 32)?;
            *module = Module { paddr: entry.paddr, size: entry.size };
        }
        let cmdline = if info.cmdline_paddr == 0 { "" } else { read_cstr(info.cmdline_paddr)? };
        Ok(Self { regions, nr_regions, modules, nr_modules, cmdline })
    }

    pub fn memory_map(&self) -> &[MemoryRegion] {
        &self.regions[..self.nr_regions]
    }

    pub fn modules(&self) -> &[Module] {
        &self.modules[..self.nr_modules]
    }

    pub fn cmdline(&self) -> &'static str {
        self.cmdline
    }

    /// Total usable RAM in bytes.
    pub fn ram_bytes(&self) -> u64 {
        self.memory_map().iter().filter(|r| r.kind == MEMORY_RAM).map(|r| r.size).sum()
    }
}

/// The NUL-terminated command line at `paddr`, up to 4 KiB, as text (invalid UTF-8 is cut).
fn read_cstr(paddr: u64) -> Result<&'static str, BootInfoError> {
    let ptr = phys_to_virt(paddr, MAX_CMDLINE as u64).ok_or(BootInfoError::Unmapped(paddr))?;
    // SAFETY: mapped (checked above); the loader's memory is never reused while the kernel
    // runs (the frame allocator will reserve everything below the kernel image).
    let bytes = unsafe { core::slice::from_raw_parts(ptr, MAX_CMDLINE) };
    let len = bytes.iter().position(|&b| b == 0).unwrap_or(MAX_CMDLINE);
    Ok(match core::str::from_utf8(&bytes[..len]) {
        Ok(s) => s,
        Err(e) => core::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""),
    })
}
