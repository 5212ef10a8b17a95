//! x86-64: boot entry, descriptor tables, interrupts, local APIC.

mod boot;
pub mod cpu;
mod gdt;
pub mod interrupts;
pub mod lapic;
mod pic;

/// Sets up descriptor tables and interrupts, and starts the periodic timer.
/// Interrupts are enabled on return.
pub fn init() {
    gdt::init();
    interrupts::init();
    pic::disable();
    lapic::init(crate::time::HZ);
    cpu::enable_interrupts();
}
