//! The IOAPIC (at 0xfec00000 on QEMU microvm and under our VMM): routes device interrupt
//! lines (GSIs) to CPU vectors.

use crate::mm::phys_to_virt;

const IOAPIC_BASE: u64 = 0xfec0_0000;
/// Device interrupts use vectors `IRQ_VECTOR_BASE + gsi`.
pub const IRQ_VECTOR_BASE: u8 = 48;
pub const MAX_GSI: u32 = 24;

fn write(reg: u32, value: u32) {
    let base = phys_to_virt(IOAPIC_BASE, 0x20).expect("the direct map covers the IOAPIC");
    // SAFETY: IOREGSEL (+0) and IOWIN (+0x10) are 32-bit MMIO registers in the uncached
    // part of the direct map; the kernel is their only user.
    unsafe {
        base.cast::<u32>().write_volatile(reg);
        base.add(0x10).cast::<u32>().write_volatile(value);
    }
}

/// Routes `gsi` to vector `IRQ_VECTOR_BASE + gsi` on CPU 0: fixed delivery, active high,
/// edge-triggered (the device's interrupt status register says what happened).
pub fn route(gsi: u32) {
    if gsi >= MAX_GSI {
        return;
    }
    write(0x10 + 2 * gsi + 1, 0); // destination: APIC ID 0
    write(0x10 + 2 * gsi, u32::from(IRQ_VECTOR_BASE) + gsi);
}
