//! Device drivers.

pub mod virtio;

/// Device interrupt on `gsi` (from the IOAPIC), with interrupts off.
pub fn irq(gsi: u32) {
    if gsi == crate::tty::uart::IRQ {
        return crate::tty::uart::interrupt();
    }
    virtio::irq(gsi);
}
