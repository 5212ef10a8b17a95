//! The legacy 8259 PICs: remapped away from the exception vectors, then masked.
//! All interrupts come through the local APIC and the IOAPIC.

use super::cpu::outb;

pub fn disable() {
    // ICW1..ICW4: edge-triggered, cascaded; vectors 0xe0..0xef; then mask every line.
    for (cmd, data, base, cascade) in [(0x20, 0x21, 0xe0, 0x04), (0xa0, 0xa1, 0xe8, 0x02)] {
        outb(cmd, 0x11);
        outb(data, base);
        outb(data, cascade);
        outb(data, 0x01);
        outb(data, 0xff);
    }
}
