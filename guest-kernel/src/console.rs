//! The serial console (16550 UART at I/O port 0x3f8) and the kernel's `log` backend.
//!
//! Output is gathered per line and sent with one `rep outsb`, which costs one VM exit per
//! line. That skips the transmit-ready check a physical 16550 would need; the UARTs of our
//! VMM and of QEMU accept bytes at any speed.

use core::fmt::{self, Write};

use crate::arch::cpu;
use crate::sync::SpinLock;

const COM1: u16 = 0x3f8;

struct Serial {
    buf: [u8; 256],
    len: usize,
}

impl Serial {
    fn flush(&mut self) {
        cpu::outsb(COM1, &self.buf[..self.len]);
        self.len = 0;
    }
}

impl Write for Serial {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len == self.buf.len() {
                self.flush();
            }
            self.buf[self.len] = b;
            self.len += 1;
            if b == b'\n' {
                self.flush();
            }
        }
        Ok(())
    }
}

static SERIAL: SpinLock<Serial> = SpinLock::new(Serial { buf: [0; 256], len: 0 });

/// Programs the UART: 8N1, FIFO on, its interrupts off (output is polled).
pub fn init() {
    cpu::outb(COM1 + 1, 0x00); // IER: no interrupts
    cpu::outb(COM1 + 3, 0x80); // LCR: DLAB to set the divisor
    cpu::outb(COM1, 0x01); // divisor 1: 115200 baud
    cpu::outb(COM1 + 1, 0x00);
    cpu::outb(COM1 + 3, 0x03); // LCR: 8 bits, no parity, one stop bit
    cpu::outb(COM1 + 2, 0xc7); // FCR: FIFO on and cleared
    cpu::outb(COM1 + 4, 0x03); // MCR: DTR | RTS
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments) {
    let mut serial = SERIAL.lock();
    let _ = serial.write_fmt(args);
}

/// Writes raw bytes (user output through the console device).
pub fn write_bytes(bytes: &[u8]) {
    let mut serial = SERIAL.lock();
    serial.flush();
    for chunk in bytes.chunks(serial.buf.len()) {
        cpu::outsb(COM1, chunk);
    }
}

/// Writes raw bytes with each `\n` sent as `\r\n` (a tty's ONLCR). The pieces go out
/// as they are, without a copy: an exit costs less here than copying bytes in ring 0.
pub fn write_bytes_onlcr(bytes: &[u8]) {
    let mut serial = SERIAL.lock();
    serial.flush();
    let mut rest = bytes;
    while let Some(i) = rest.iter().position(|&b| b == b'\n') {
        if i > 0 {
            cpu::outsb(COM1, &rest[..i]);
        }
        cpu::outsb(COM1, b"\r\n");
        rest = &rest[i + 1..];
    }
    if !rest.is_empty() {
        cpu::outsb(COM1, rest);
    }
}

/// Sends whatever is buffered (used before the VM exits).
pub fn flush() {
    SERIAL.lock().flush();
}

/// Prints to the serial console.
#[macro_export]
macro_rules! kprint {
    ($($arg:tt)*) => ($crate::console::_print(format_args!($($arg)*)));
}

/// Prints a line to the serial console.
#[macro_export]
macro_rules! kprintln {
    () => ($crate::kprint!("\n"));
    ($($arg:tt)*) => ($crate::console::_print(format_args!("{}\n", format_args!($($arg)*))));
}

struct Logger;

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            let ms = crate::time::uptime_ms();
            kprintln!("[{:>4}.{:03}] {:<5} {}", ms / 1000, ms % 1000, record.level(), record.args());
        }
    }

    fn flush(&self) {
        flush();
    }
}

static LOGGER: Logger = Logger;

/// Installs the console as the `log` backend at `level`.
pub fn init_log(level: log::LevelFilter) {
    // Only fails if a logger is already set, which would be harmless.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}
