//! The guest console: a 16550 UART (vm-superio) at COM1 (0x3f8, IRQ 4) written to stdout.

use std::io::{self, Write};

use vm_superio::{Serial, Trigger};
use vmm_sys_util::eventfd::EventFd;

pub const COM1: u16 = 0x3f8;
pub const COM1_IRQ: u32 = 4;

/// Raises the UART's interrupt line through a KVM irqfd.
pub struct IrqTrigger(pub EventFd);

impl Trigger for IrqTrigger {
    type E = io::Error;
    fn trigger(&self) -> io::Result<()> {
        self.0.write(1)
    }
}

pub type SerialConsole = Serial<IrqTrigger, vm_superio::serial::NoEvents, Box<dyn Write + Send>>;

/// The register offset of `port` within COM1, if it is one.
pub fn offset(port: u16) -> Option<u8> {
    (COM1..COM1 + 8).contains(&port).then(|| (port - COM1) as u8)
}

pub fn new(irq: EventFd, out: Box<dyn Write + Send>) -> SerialConsole {
    Serial::new(IrqTrigger(irq), out)
}
