//! Loading a PVH ELF kernel and writing what the PVH boot protocol hands it.
//!
//! Guest-physical layout (x86-64):
//!
//! | address      | what                                              |
//! |--------------|---------------------------------------------------|
//! | `0x500`      | boot GDT for the 32-bit entry                     |
//! | `0x6000`     | `hvm_start_info`, then the module list            |
//! | `0x7000`     | memory map (E820-style entries)                   |
//! | `0x8000`     | (the guest's AP trampoline; nothing written here) |
//! | `0x20000`    | kernel command line (NUL-terminated)              |
//! | `0x9fc00`    | MP floating pointer (`mptable`)                   |
//! | `0xf0000`    | MP configuration table                            |
//! | `1 MiB ..`   | kernel segments, at their `p_paddr`               |
//! | end of RAM   | initrd, page-aligned, as module 0                 |
//!
//! RAM runs from 0 to `mem`, except the legacy hole `0x9fc00..1 MiB`; above 3 GiB it
//! continues at 4 GiB, leaving 3..4 GiB for MMIO (virtio-mmio, IOAPIC, LAPIC).

use std::fs::File;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

use linux_loader::configurator::pvh::PvhBootConfigurator;
use linux_loader::configurator::{BootConfigurator, BootParams};
use linux_loader::loader::elf::start_info::{hvm_memmap_table_entry, hvm_modlist_entry, hvm_start_info};
use linux_loader::loader::elf::{Elf, PvhBootCapability};
use linux_loader::loader::KernelLoader;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

pub const BOOT_GDT_ADDR: u64 = 0x500;
pub const START_INFO_ADDR: u64 = 0x6000;
const MODLIST_ADDR: u64 = 0x6040;
const MEMMAP_ADDR: u64 = 0x7000;
const CMDLINE_ADDR: u64 = 0x20000;
/// Longest command line accepted, without its NUL.
pub const CMDLINE_MAX: usize = 4095;
const EBDA_START: u64 = 0x9fc00;
pub const HIMEM_START: u64 = 0x10_0000;
pub const MMIO_GAP_START: u64 = 0xc000_0000;
pub const MMIO_GAP_END: u64 = 0x1_0000_0000;

const XEN_HVM_START_MAGIC: u32 = 0x336e_c578;
const E820_RAM: u32 = 1;
const E820_RESERVED: u32 = 2;
const EM_X86_64: u16 = 62;
const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error("cannot read {path}: {source}")]
    Open { path: PathBuf, source: std::io::Error },
    #[error("{0}: not an ELF file")]
    NotElf(PathBuf),
    #[error("{0}: not a 64-bit little-endian ELF file")]
    NotElf64(PathBuf),
    #[error("{path}: ELF for machine {machine}, expected x86-64 ({EM_X86_64})")]
    WrongMachine { path: PathBuf, machine: u16 },
    #[error("{0}: no PVH entry point (ELF note Xen/XEN_ELFNOTE_PHYS32_ENTRY); only PVH kernels can be booted")]
    NoPvhNote(PathBuf),
    #[error("{path}: a segment at {addr:#x} is below 1 MiB, where boot data lives")]
    LowSegment { path: PathBuf, addr: u64 },
    #[error("--mem {mem} bytes is too small: {what} needs memory up to {needed:#x}")]
    TooSmall { what: String, needed: u64, mem: u64 },
    #[error("{path}: cannot load: {source}")]
    Load { path: PathBuf, source: linux_loader::loader::Error },
    #[error("command line is {0} bytes; at most {CMDLINE_MAX} fit")]
    CmdlineTooLong(usize),
    #[error("command line contains a NUL byte")]
    CmdlineNul,
    #[error("writing boot data into guest memory: {0}")]
    Memory(String),
}

impl BootError {
    /// Whether the error is the user's input rather than the machine's state.
    pub fn is_usage(&self) -> bool {
        !matches!(self, BootError::Memory(_))
    }
}

/// The RAM ranges (start, length) of a guest with `mem` bytes.
pub fn ram_ranges(mem: u64) -> Vec<(GuestAddress, usize)> {
    if mem <= MMIO_GAP_START {
        vec![(GuestAddress(0), mem as usize)]
    } else {
        vec![
            (GuestAddress(0), MMIO_GAP_START as usize),
            (GuestAddress(MMIO_GAP_END), (mem - MMIO_GAP_START) as usize),
        ]
    }
}

/// Reads and checks the ELF header and program headers, so that each wrong kind of file
/// gets its own message; returns the highest physical address a segment needs.
fn check_elf(path: &Path, file: &mut File, mem: u64) -> Result<u64, BootError> {
    let open_err = |source| BootError::Open { path: path.to_owned(), source };
    let mut ehdr = [0u8; 64];
    let n = file.read(&mut ehdr).map_err(open_err)?;
    if n < 4 || &ehdr[..4] != b"\x7fELF" {
        return Err(BootError::NotElf(path.to_owned()));
    }
    if n < 64 || ehdr[4] != 2 || ehdr[5] != 1 {
        return Err(BootError::NotElf64(path.to_owned()));
    }
    let u16_at = |o: usize| u16::from_le_bytes([ehdr[o], ehdr[o + 1]]);
    let u64_at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"));
    let machine = u16_at(18);
    if machine != EM_X86_64 {
        return Err(BootError::WrongMachine { path: path.to_owned(), machine });
    }
    let (phoff, phentsize, phnum) = (u64_at(&ehdr, 32), u16_at(54), u16_at(56));
    if phentsize != 56 {
        return Err(BootError::NotElf64(path.to_owned()));
    }
    let mut end = 0;
    let mut pvh = false;
    let mut low = None;
    for i in 0..u64::from(phnum) {
        let mut phdr = [0u8; 56];
        file.seek(std::io::SeekFrom::Start(phoff + i * 56)).map_err(open_err)?;
        file.read_exact(&mut phdr).map_err(|_| BootError::NotElf64(path.to_owned()))?;
        let p_type = u32::from_le_bytes(phdr[..4].try_into().expect("4 bytes"));
        let (offset, paddr, filesz, memsz) = (u64_at(&phdr, 8), u64_at(&phdr, 24), u64_at(&phdr, 32), u64_at(&phdr, 40));
        if p_type == PT_NOTE {
            pvh |= has_pvh_note(file, offset, filesz).map_err(open_err)?;
        }
        if p_type != PT_LOAD || memsz == 0 {
            continue;
        }
        low = low.or((paddr < HIMEM_START).then_some(paddr));
        end = end.max(paddr.saturating_add(memsz));
    }
    if !pvh {
        return Err(BootError::NoPvhNote(path.to_owned()));
    }
    if let Some(addr) = low {
        return Err(BootError::LowSegment { path: path.to_owned(), addr });
    }
    if end > mem.min(MMIO_GAP_START) {
        return Err(BootError::TooSmall { what: "the kernel image".into(), needed: end, mem });
    }
    Ok(end)
}

/// Whether the note segment at `offset` holds a Xen `PHYS32_ENTRY` note.
fn has_pvh_note(file: &mut File, offset: u64, size: u64) -> std::io::Result<bool> {
    let mut notes = vec![0u8; size.min(64 * 1024) as usize];
    file.seek(std::io::SeekFrom::Start(offset))?;
    if file.read_exact(&mut notes).is_err() {
        return Ok(false);
    }
    let word = |o: usize| notes.get(o..o + 4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")));
    let mut at = 0;
    while let (Some(namesz), Some(descsz), Some(kind)) = (word(at), word(at + 4), word(at + 8)) {
        let name = notes.get(at + 12..at + 12 + namesz as usize);
        if kind == XEN_ELFNOTE_PHYS32_ENTRY && name == Some(b"Xen\0") {
            return Ok(true);
        }
        at += 12 + (namesz as usize).next_multiple_of(4) + (descsz as usize).next_multiple_of(4);
    }
    Ok(false)
}

/// What the boot vCPU needs to start the kernel.
pub struct BootEntry {
    /// The 32-bit PVH entry point.
    pub entry: u64,
}

/// The end of RAM below the 32-bit MMIO gap.
pub fn low_ram_end(mem_bytes: u64) -> u64 {
    mem_bytes.min(MMIO_GAP_START)
}

/// Loads the kernel (and initrd), and writes the command line, memory map and
/// `hvm_start_info` for the PVH entry. The top `reserved` bytes of low RAM are left out
/// of the guest's RAM (marked reserved: the trace rings of `vmm run --trace`).
pub fn load(
    mem: &GuestMemoryMmap,
    mem_bytes: u64,
    kernel: &Path,
    initrd: Option<&Path>,
    cmdline: &str,
    reserved: u64,
) -> Result<BootEntry, BootError> {
    fn open_err(path: &Path) -> impl FnOnce(std::io::Error) -> BootError + '_ {
        move |source| BootError::Open { path: path.to_owned(), source }
    }
    let mut file = File::open(kernel).map_err(open_err(kernel))?;
    let kernel_end = check_elf(kernel, &mut file, mem_bytes)?;
    let loaded = Elf::load(mem, None, &mut file, Some(GuestAddress(HIMEM_START)))
        .map_err(|source| BootError::Load { path: kernel.to_owned(), source })?;
    let entry = match loaded.pvh_boot_cap {
        PvhBootCapability::PvhEntryPresent(addr) => addr.0,
        _ => return Err(BootError::NoPvhNote(kernel.to_owned())),
    };

    // The command line.
    if cmdline.len() > CMDLINE_MAX {
        return Err(BootError::CmdlineTooLong(cmdline.len()));
    }
    if cmdline.contains('\0') {
        return Err(BootError::CmdlineNul);
    }
    let mut bytes = cmdline.as_bytes().to_vec();
    bytes.push(0);
    let mem_err = |e: vm_memory::GuestMemoryError| BootError::Memory(e.to_string());
    mem.write_slice(&bytes, GuestAddress(CMDLINE_ADDR)).map_err(mem_err)?;

    // The initrd, at the top of low RAM (below what is reserved).
    let low_end = low_ram_end(mem_bytes).checked_sub(reserved).filter(|&end| end > kernel_end);
    let Some(low_end) = low_end else {
        return Err(BootError::TooSmall { what: format!("the trace rings ({reserved} bytes)"), needed: kernel_end + reserved, mem: mem_bytes });
    };
    let mut modules = Vec::new();
    if let Some(path) = initrd {
        let mut file = File::open(path).map_err(open_err(path))?;
        let size = file.metadata().map_err(open_err(path))?.len();
        let addr = low_end.checked_sub(size).map(|a| a & !0xfff).filter(|&a| a >= kernel_end.next_multiple_of(0x1000));
        let Some(addr) = addr else {
            return Err(BootError::TooSmall { what: format!("the initrd ({size} bytes)"), needed: kernel_end + size, mem: mem_bytes });
        };
        mem.read_exact_volatile_from(GuestAddress(addr), &mut file, size as usize).map_err(mem_err)?;
        modules.push(hvm_modlist_entry { paddr: addr, size, ..Default::default() });
    }

    // The memory map, like QEMU's for PVH.
    let entry_of = |addr: u64, size: u64, type_: u32| hvm_memmap_table_entry { addr, size, type_, reserved: 0 };
    let mut memmap = vec![
        entry_of(0, EBDA_START, E820_RAM),
        entry_of(EBDA_START, HIMEM_START - EBDA_START, E820_RESERVED),
        entry_of(HIMEM_START, low_end - HIMEM_START, E820_RAM),
    ];
    if reserved > 0 {
        memmap.push(entry_of(low_end, reserved, E820_RESERVED));
    }
    if mem_bytes > MMIO_GAP_START {
        memmap.push(entry_of(MMIO_GAP_END, mem_bytes - MMIO_GAP_START, E820_RAM));
    }

    let start_info = hvm_start_info {
        magic: XEN_HVM_START_MAGIC,
        version: 1,
        nr_modules: modules.len() as u32,
        cmdline_paddr: CMDLINE_ADDR,
        memmap_paddr: MEMMAP_ADDR,
        memmap_entries: memmap.len() as u32,
        modlist_paddr: if modules.is_empty() { 0 } else { MODLIST_ADDR },
        ..Default::default()
    };
    let mut params = BootParams::new::<hvm_start_info>(&start_info, GuestAddress(START_INFO_ADDR));
    params.set_sections::<hvm_memmap_table_entry>(&memmap, GuestAddress(MEMMAP_ADDR));
    if !modules.is_empty() {
        params.set_modules::<hvm_modlist_entry>(&modules, GuestAddress(MODLIST_ADDR));
    }
    PvhBootConfigurator::write_bootparams::<GuestMemoryMmap>(&params, mem)
        .map_err(|e| BootError::Memory(e.to_string()))?;

    // A flat 32-bit GDT: null, code (0x08), data (0x10), TSS (0x18).
    let gdt: [u64; 4] = [0, 0x00cf_9b00_0000_ffff, 0x00cf_9300_0000_ffff, 0x0000_8b00_0000_0067];
    for (i, d) in gdt.iter().enumerate() {
        mem.write_obj(*d, GuestAddress(BOOT_GDT_ADDR + 8 * i as u64)).map_err(mem_err)?;
    }
    Ok(BootEntry { entry })
}
