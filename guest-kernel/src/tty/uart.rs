//! Receiving on the 16550 UART at COM1 (IRQ 4): the interrupt drains the receive FIFO into
//! the console tty. Output stays in `console.rs` (polled, one `rep outsb` per chunk).
//!
//! Both UARTs we run on (our VMM's and QEMU's) raise the line when data arrives with IER's
//! receive bit set; the handler reads until LSR says the FIFO is empty, so each interrupt
//! leaves no condition pending (the IOAPIC pin is edge-triggered).

use crate::arch::cpu;

const COM1: u16 = 0x3f8;
pub const IRQ: u32 = 4;
const IER: u16 = COM1 + 1;
const IIR: u16 = COM1 + 2;
const FCR: u16 = COM1 + 2;
const MCR: u16 = COM1 + 4;
const LSR: u16 = COM1 + 5;
const LSR_DATA_READY: u8 = 1;

/// Turns on the receive interrupt and routes IRQ 4.
pub fn init() {
    cpu::outb(FCR, 0x07); // FIFO on and cleared, an interrupt from the first byte
    cpu::outb(MCR, 0x0b); // DTR | RTS | OUT2 (OUT2 gates the IRQ line on PCs)
    cpu::outb(IER, 0x01); // received data available
    crate::arch::ioapic::route(IRQ);
    interrupt(); // input that came before the interrupt was on
}

/// The UART's interrupt: everything received goes to the tty.
pub fn interrupt() {
    let mut buf = [0u8; 64];
    loop {
        let mut n = 0;
        while n < buf.len() && cpu::inb(LSR) & LSR_DATA_READY != 0 {
            buf[n] = cpu::inb(COM1);
            n += 1;
        }
        if n == 0 {
            break;
        }
        super::console().receive(&buf[..n]);
    }
    let _ = cpu::inb(IIR); // acknowledges whatever else the UART reported
}
