//! Device drivers.

pub mod virtio;

/// Device interrupt on `gsi` (from the IOAPIC), with interrupts off.
pub fn irq(gsi: u32) {
    virtio::irq(gsi);
}
