//! The MP table (Intel MultiProcessor Specification 1.4) that tells the guest its CPUs.
//!
//! PVH's start info has no CPU list, so, as QEMU microvm's firmware does with
//! `acpi=off`, we write an MP table: a floating pointer structure ("_MP_") at the start
//! of the EBDA ([`MPTABLE_ADDR`]) pointing at a configuration table ("PCMP") in the BIOS
//! area ([`CONFIG_ADDR`]; both inside what the memory map reserves, and the table for
//! 64 CPUs would not fit the EBDA's 1 KiB), with one processor entry per vCPU (local APIC ID =
//! vCPU index, as `cpuid` reports), the ISA bus, the IOAPIC, and the IOAPIC's 24 input
//! lines wired one-to-one to ISA IRQs (what a Linux guest expects to find).

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// Where the floating pointer goes.
pub const MPTABLE_ADDR: u64 = 0x9_fc00;
/// Where the configuration table goes, and the end of the area it must fit in.
pub const CONFIG_ADDR: u64 = 0xf_0000;
const CONFIG_END: u64 = 0x10_0000;
const IOAPIC_ADDR: u32 = 0xfec0_0000;
const LAPIC_ADDR: u32 = 0xfee0_0000;
const IOAPIC_PINS: u8 = 24;
const APIC_VERSION: u8 = 0x14;
const IOAPIC_VERSION: u8 = 0x11;

const PROCESSOR: u8 = 0;
const BUS: u8 = 1;
const IOAPIC: u8 = 2;
const IO_INTERRUPT: u8 = 3;
const CPU_ENABLED: u8 = 1;
const CPU_BSP: u8 = 2;

/// The two's complement of the byte sum, which makes the whole sum 0.
fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |s, &b| s.wrapping_add(b)).wrapping_neg()
}

/// The configuration table for `vcpus` CPUs, with its checksum.
fn config_table(vcpus: u8) -> Vec<u8> {
    let mut entries = Vec::new();
    for id in 0..vcpus {
        let flags = CPU_ENABLED | if id == 0 { CPU_BSP } else { 0 };
        entries.extend([PROCESSOR, id, APIC_VERSION, flags]);
        // CPU signature (family 6) and feature flags (FPU, APIC), then 8 reserved bytes.
        entries.extend(0x600u32.to_le_bytes());
        entries.extend(0x201u32.to_le_bytes());
        entries.extend([0; 8]);
    }
    entries.extend([BUS, 0]);
    entries.extend(*b"ISA   ");
    let ioapic_id = vcpus;
    entries.extend([IOAPIC, ioapic_id, IOAPIC_VERSION, 1]);
    entries.extend(IOAPIC_ADDR.to_le_bytes());
    for pin in 0..IOAPIC_PINS {
        // Interrupt type INT, polarity and trigger "conforms to the bus", ISA bus 0.
        entries.extend([IO_INTERRUPT, 0, 0, 0, 0, pin, ioapic_id, pin]);
    }
    let count = u16::from(vcpus) + 2 + u16::from(IOAPIC_PINS);
    let mut table = Vec::with_capacity(44 + entries.len());
    table.extend(*b"PCMP");
    table.extend(((44 + entries.len()) as u16).to_le_bytes());
    table.extend([4, 0]); // spec revision 1.4, checksum (below)
    table.extend(*b"VMM     ");
    table.extend(*b"MICROVM     ");
    table.extend([0; 4]); // no OEM table
    table.extend([0; 2]);
    table.extend(count.to_le_bytes());
    table.extend(LAPIC_ADDR.to_le_bytes());
    table.extend([0; 4]); // no extended table
    table.extend(entries);
    table[7] = checksum(&table);
    table
}

/// Writes the MP table for `vcpus` CPUs into guest memory.
pub fn write(mem: &GuestMemoryMmap, vcpus: u8) -> Result<(), vm_memory::GuestMemoryError> {
    let table = config_table(vcpus);
    let config_addr = CONFIG_ADDR;
    assert!(config_addr + table.len() as u64 <= CONFIG_END, "the MP table for {vcpus} CPUs fits the BIOS area");
    let mut pointer = Vec::with_capacity(16);
    pointer.extend(*b"_MP_");
    pointer.extend((config_addr as u32).to_le_bytes());
    pointer.extend([1, 4, 0, 0, 0, 0, 0, 0]); // length in 16-byte units, revision 1.4
    pointer[10] = checksum(&pointer);
    mem.write_slice(&pointer, GuestAddress(MPTABLE_ADDR))?;
    mem.write_slice(&table, GuestAddress(config_addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(b: &[u8]) -> u8 {
        b.iter().fold(0u8, |s, &x| s.wrapping_add(x))
    }

    #[test]
    fn tables_sum_to_zero_and_list_every_cpu() {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        write(&mem, 3).unwrap();
        let mut pointer = [0u8; 16];
        mem.read_slice(&mut pointer, GuestAddress(MPTABLE_ADDR)).unwrap();
        assert_eq!(&pointer[..4], b"_MP_");
        assert_eq!(sum(&pointer), 0);
        let table = config_table(3);
        assert_eq!(sum(&table), 0);
        let cpus: Vec<(u8, u8)> = table[44..].chunks(20).take(3).map(|e| (e[1], e[3])).collect();
        assert_eq!(cpus, [(0, 3), (1, 1), (2, 1)]);
        assert_eq!(u16::from_le_bytes([table[34], table[35]]), 3 + 2 + 24);
    }

    #[test]
    fn the_largest_table_fits() {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        write(&mem, crate::config::MAX_VCPUS).unwrap();
    }
}
