//! Ending the VM: the isa-debug-exit device at I/O port 0xf4.
//!
//! The guest writes a 32-bit status. Our `vmm` exits with that status itself; QEMU's
//! `-device isa-debug-exit,iobase=0xf4,iosize=0x04` exits with `(status << 1) | 1`.

use crate::arch::cpu;

/// Exit status of a kernel panic (and of an exception in kernel mode).
pub const EXIT_PANIC: u32 = 101;

const DEBUG_EXIT_PORT: u16 = 0xf4;

/// Flushes the console and ends the VM with `status`.
pub fn exit_vm(status: u32) -> ! {
    crate::console::flush();
    cpu::outl(DEBUG_EXIT_PORT, status);
    // Only reached without an exit device: stop here.
    cpu::halt_forever()
}
