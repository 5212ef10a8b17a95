//! Finding the CPUs: the Intel MultiProcessor Specification 1.4 table.
//!
//! PVH's start info names no CPUs, so the machine's firmware tables must. Both of our
//! VMMs write an MP table: `vmm run` at the start of the EBDA (0x9fc00), and QEMU microvm
//! with `acpi=off` through its qboot firmware, at the same place. (With `acpi=on`
//! microvm gives an ACPI MADT instead; `scripts/qemu.sh` keeps ACPI off.) The MP
//! floating pointer structure ("_MP_", 16 bytes, 16-byte aligned) lies in the last KiB of
//! base memory or in the BIOS area 0xf0000..0x100000; it points at the configuration
//! table ("PCMP"), whose processor entries list each CPU's local APIC ID.

use alloc::vec::Vec;

use crate::mm::phys_to_virt;

const SEARCH: [(u64, u64); 2] = [(0x9_fc00, 0xa_0000), (0xf_0000, 0x10_0000)];
const ENTRY_PROCESSOR: u8 = 0;
const CPU_ENABLED: u8 = 1;
const CPU_BSP: u8 = 2;

fn bytes(paddr: u64, len: u64) -> Option<&'static [u8]> {
    let ptr = phys_to_virt(paddr, len)?;
    // SAFETY: low physical memory, mapped by the direct map and never handed out by the
    // frame allocator (the first MiB is reserved); only read here.
    Some(unsafe { core::slice::from_raw_parts(ptr as *const u8, len as usize) })
}

fn checksum_ok(b: &[u8]) -> bool {
    b.iter().fold(0u8, |s, &x| s.wrapping_add(x)) == 0
}

/// The local APIC IDs of the enabled CPUs, the boot CPU first; `None` without a table.
pub fn cpus() -> Option<Vec<u32>> {
    let config = SEARCH.iter().find_map(|&(start, end)| {
        let area = bytes(start, end - start)?;
        area.chunks_exact(16).find(|p| &p[..4] == b"_MP_" && p[8] == 1 && checksum_ok(p)).map(|p| {
            u64::from(u32::from_le_bytes(p[4..8].try_into().expect("4 bytes")))
        })
    })?;
    let header = bytes(config, 44)?;
    if &header[..4] != b"PCMP" {
        return None;
    }
    let len = u64::from(u16::from_le_bytes([header[4], header[5]]));
    let table = bytes(config, len.max(44))?;
    if !checksum_ok(table) {
        log::warn!("MP table at {config:#x}: bad checksum");
        return None;
    }
    // Walked by the table's length, as Linux does: qboot leaves the entry count 0.
    let mut cpus = Vec::new();
    let mut at = 44;
    while let Some(&kind) = table.get(at) {
        if kind > 4 {
            break; // an entry type we cannot size
        }
        let size = if kind == ENTRY_PROCESSOR { 20 } else { 8 };
        let Some(entry) = table.get(at..at + size) else { break };
        if kind == ENTRY_PROCESSOR && entry[3] & CPU_ENABLED != 0 {
            let id = u32::from(entry[1]);
            if entry[3] & CPU_BSP != 0 {
                cpus.insert(0, id);
            } else {
                cpus.push(id);
            }
        }
        at += size;
    }
    Some(cpus)
}
