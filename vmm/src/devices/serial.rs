//! The guest console: a 16550 UART (vm-superio) at COM1 (0x3f8, IRQ 4). What the guest
//! transmits goes to stdout; what [`push_input`] is given lands in the receive FIFO (64
//! bytes), with LSR's data-ready bit and, when IER enables it, the receive interrupt.
//!
//! The FIFO is the only buffer: when it is full the feeder waits on [`RxSpace`], which the
//! UART signals when the guest has read the FIFO empty. A guest that never reads thus
//! stops the feeder (and with it the reading of stdin), never the VMM's memory.

use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};

use vm_superio::serial::SerialEvents;
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

/// Signalled when the guest has emptied the receive FIFO: room for more input.
pub struct RxSpace(EventFd);

impl RxSpace {
    pub fn new() -> io::Result<Arc<Self>> {
        Ok(Arc::new(RxSpace(EventFd::new(libc::EFD_NONBLOCK)?)))
    }

    /// Waits until the FIFO was emptied since the last wait, or `timeout_ms` passed.
    pub fn wait(&self, timeout_ms: i32) {
        let mut pfd = libc::pollfd { fd: self.0.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd on the stack for the duration of the call.
        unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        let _ = self.0.read(); // consume the signal (EAGAIN when it timed out)
    }
}

impl SerialEvents for RxSpace {
    fn buffer_read(&self) {}
    fn out_byte(&self) {}
    fn tx_lost_byte(&self) {}
    fn in_buffer_empty(&self) {
        let _ = self.0.write(1);
    }
}

pub type SerialConsole = Serial<IrqTrigger, Arc<RxSpace>, Box<dyn Write + Send>>;

/// The register offset of `port` within COM1, if it is one.
pub fn offset(port: u16) -> Option<u8> {
    (COM1..COM1 + 8).contains(&port).then(|| (port - COM1) as u8)
}

pub fn new(irq: EventFd, rx_space: Arc<RxSpace>, out: Box<dyn Write + Send>) -> SerialConsole {
    Serial::with_events(IrqTrigger(irq), rx_space, out)
}

/// Puts `input` into the receive FIFO, waiting for the guest to make room as often as
/// needed; returns once every byte is in. `keep_going` is asked between waits (false:
/// give up, the VM is ending).
pub fn push_input(serial: &Mutex<SerialConsole>, rx_space: &RxSpace, mut input: &[u8], keep_going: impl Fn() -> bool) {
    while !input.is_empty() {
        let taken = {
            let mut s = serial.lock().unwrap_or_else(|e| e.into_inner());
            if s.fifo_capacity() == 0 {
                0
            } else {
                // Ok(0) in loopback mode: the UART takes no input then; wait like when full.
                s.enqueue_raw_bytes(input).unwrap_or_else(|e| {
                    log::warn!("serial input: {e}");
                    0
                })
            }
        };
        input = &input[taken..];
        if taken == 0 {
            if !keep_going() {
                return;
            }
            // The timeout only bounds how long a missed wakeup could cost.
            rx_space.wait(200);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATA: u8 = 0;
    const IER: u8 = 1;
    const IIR: u8 = 2;
    const LSR: u8 = 5;
    const MCR: u8 = 4;

    fn console() -> (Mutex<SerialConsole>, Arc<RxSpace>, EventFd) {
        let irq = EventFd::new(libc::EFD_NONBLOCK).unwrap();
        let rx = RxSpace::new().unwrap();
        let serial = new(irq.try_clone().unwrap(), Arc::clone(&rx), Box::new(io::sink()));
        (Mutex::new(serial), rx, irq)
    }

    #[test]
    fn input_sets_data_ready_and_raises_the_rx_interrupt() {
        let (serial, rx, irq) = console();
        serial.lock().unwrap().write(IER, 0x01).unwrap(); // receive interrupt on
        assert_eq!(serial.lock().unwrap().read(LSR) & 1, 0);
        push_input(&serial, &rx, b"ab", || true);
        assert_eq!(irq.read().unwrap(), 1, "one interrupt for the burst");
        let mut s = serial.lock().unwrap();
        assert_eq!(s.read(IIR) & 0x0f, 0x04, "IIR: received data available");
        assert_eq!(s.read(LSR) & 1, 1);
        assert_eq!(s.read(DATA), b'a');
        assert_eq!(s.read(DATA), b'b');
        assert_eq!(s.read(LSR) & 1, 0, "data ready clears once the FIFO is empty");
        assert_eq!(s.read(IIR) & 0x0f, 0x01, "no interrupt pending");
    }

    #[test]
    fn no_interrupt_while_ier_masks_it_then_one_on_unmask() {
        let (serial, rx, irq) = console();
        push_input(&serial, &rx, b"x", || true);
        assert!(irq.read().is_err(), "no interrupt with IER 0");
        assert_eq!(serial.lock().unwrap().read(LSR) & 1, 1, "polled drivers still see data ready");
        serial.lock().unwrap().write(IER, 0x01).unwrap();
        assert_eq!(irq.read().unwrap(), 1, "enabling RX with data pending interrupts");
    }

    #[test]
    fn a_full_fifo_holds_the_feeder_until_the_guest_reads() {
        let (serial, rx, _irq) = console();
        let serial = Arc::new(serial);
        let rx2 = Arc::clone(&rx);
        let s2 = Arc::clone(&serial);
        let input: Vec<u8> = (0..200u8).collect();
        let feeder = std::thread::spawn(move || push_input(&s2, &rx2, &input, || true));
        // The guest: drain whatever is there, in order, until all 200 bytes came.
        let mut got = Vec::new();
        while got.len() < 200 {
            let mut s = serial.lock().unwrap();
            assert!(s.fifo_capacity() <= 64);
            while s.read(LSR) & 1 != 0 {
                got.push(s.read(DATA));
            }
            drop(s);
            std::thread::yield_now();
        }
        feeder.join().unwrap();
        assert_eq!(got, (0..200u8).collect::<Vec<_>>());
    }

    #[test]
    fn the_feeder_gives_up_when_told_and_loopback_takes_nothing() {
        let (serial, rx, _irq) = console();
        serial.lock().unwrap().write(MCR, 0x10).unwrap(); // loopback mode
        push_input(&serial, &rx, b"lost", || false);
        assert_eq!(serial.lock().unwrap().read(LSR) & 1, 0);
    }

    #[test]
    fn hostile_register_traffic_does_not_panic() {
        let (serial, rx, _irq) = console();
        push_input(&serial, &rx, b"data", || true);
        let mut s = serial.lock().unwrap();
        for offset in 0..8u8 {
            for value in [0u8, 0x80, 0xff, 0x5a] {
                let _ = s.write(offset, value);
                let _ = s.read(offset);
            }
        }
    }
}
