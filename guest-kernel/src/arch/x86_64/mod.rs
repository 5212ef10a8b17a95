//! x86-64: boot entry, descriptor tables, interrupts, local APIC.

mod boot;
pub mod cpu;
pub mod gdt;
pub mod switch;
pub mod syscall;
pub mod interrupts;
pub mod ioapic;
pub mod lapic;
mod mptable;
pub mod percpu;
mod pic;
pub mod smp;
pub mod rtc;

/// Sets up descriptor tables, interrupts, SSE for user space and the syscall entry, and
/// enables the local APIC (`time::init` starts its timer).
///
/// The kernel runs with interrupts off: they arrive while user code runs and while the CPU
/// waits in [`cpu::wait_for_interrupt`]. Kernel code is therefore never preempted; tasks
/// switch only when they block or on their way back to user space.
pub fn init() {
    gdt::init(None);
    interrupts::init();
    switch::init_fpu();
    syscall::init();
    pic::disable();
    lapic::init();
}
