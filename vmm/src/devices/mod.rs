//! Emulated devices and the buses that route vCPU exits to them: port I/O ([`IoBus`]) and
//! MMIO ([`MmioBus`]: the virtio-mmio slots).

pub mod debug_exit;
pub mod guest_errors;
pub mod rtc;
pub mod serial;
pub mod virtio;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use debug_exit::DebugExit;
use rtc::Rtc;
use serial::SerialConsole;
use virtio::mmio::MmioTransport;

use crate::console_out::ConsoleOut;

/// What a port write asks of the vCPU loop.
#[derive(Debug, PartialEq, Eq)]
pub enum IoAction {
    Continue,
    /// The guest asked to end the VM with this status.
    Exit(u32),
}

/// The legacy I/O ports the VMM emulates (everything else is in KVM's irqchip or absent).
pub struct IoBus {
    serial: Mutex<SerialConsole>,
    /// The buffer the serial port's output goes to (see [`crate::console_out`]).
    out: Arc<ConsoleOut>,
    debug_exit: DebugExit,
    rtc: Mutex<Rtc>,
}

impl IoBus {
    /// `serial` writes its output to `out`'s writer.
    pub fn new(serial: SerialConsole, out: Arc<ConsoleOut>) -> Self {
        Self { serial: Mutex::new(serial), out, debug_exit: DebugExit, rtc: Mutex::new(Rtc::default()) }
    }

    pub fn write(&self, port: u16, data: &[u8]) -> IoAction {
        if let Some(offset) = serial::offset(port) {
            if offset == 0 {
                // THR (or the divisor latch): when stdout is slow, wait for room before
                // taking the serial lock, never while holding it.
                self.out.wait_for_room();
            }
            let mut serial = self.serial.lock().unwrap_or_else(|e| e.into_inner());
            for &byte in data {
                if let Err(e) = serial.write(offset, byte) {
                    log::warn!("serial: {e:?}");
                }
            }
            IoAction::Continue
        } else if port == debug_exit::PORT {
            self.debug_exit.write(data)
        } else if port == rtc::INDEX_PORT || port == rtc::DATA_PORT {
            let mut rtc = self.rtc.lock().unwrap_or_else(|e| e.into_inner());
            data.iter().for_each(|&b| rtc.write(port, b));
            IoAction::Continue
        } else {
            log::debug!("write to unemulated port {port:#x}: {data:x?}");
            IoAction::Continue
        }
    }

    pub fn read(&self, port: u16, data: &mut [u8]) {
        if let Some(offset) = serial::offset(port) {
            let mut serial = self.serial.lock().unwrap_or_else(|e| e.into_inner());
            for byte in data.iter_mut() {
                *byte = serial.read(offset);
            }
        } else if port == rtc::INDEX_PORT || port == rtc::DATA_PORT {
            let rtc = self.rtc.lock().unwrap_or_else(|e| e.into_inner());
            data.fill(rtc.read(port));
        } else {
            log::debug!("read from unemulated port {port:#x}");
            data.fill(0xff);
        }
    }

    /// The console UART (the stdin feeder puts input into it).
    pub fn serial(&self) -> &Mutex<SerialConsole> {
        &self.serial
    }

    /// The console's output buffer.
    pub fn console_out(&self) -> &Arc<ConsoleOut> {
        &self.out
    }

    /// Waits until the console's output is written out, or until `deadline`; returns
    /// whether it was.
    pub fn flush(&self, deadline: Option<Instant>) -> bool {
        self.out.flush_until(deadline)
    }
}

/// The virtio-mmio devices, each at its slot's base address.
#[derive(Default)]
pub struct MmioBus {
    devices: Vec<(u64, Mutex<MmioTransport>)>,
}

impl MmioBus {
    pub fn add(&mut self, base: u64, transport: MmioTransport) {
        self.devices.push((base, Mutex::new(transport)));
    }

    fn find(&self, addr: u64, len: usize) -> Option<(&Mutex<MmioTransport>, u64)> {
        self.devices.iter().find_map(|(base, dev)| {
            let offset = addr.checked_sub(*base)?;
            (offset + len as u64 <= virtio::MMIO_SLOT_SIZE).then_some((dev, offset))
        })
    }

    /// Handles a read; false when no device is at `addr`.
    pub fn read(&self, addr: u64, data: &mut [u8]) -> bool {
        let Some((dev, offset)) = self.find(addr, data.len()) else { return false };
        dev.lock().unwrap_or_else(|e| e.into_inner()).read(offset, data);
        true
    }

    /// Handles a write; false when no device is at `addr`.
    pub fn write(&self, addr: u64, data: &[u8]) -> bool {
        let Some((dev, offset)) = self.find(addr, data.len()) else { return false };
        dev.lock().unwrap_or_else(|e| e.into_inner()).write(offset, data);
        true
    }
}
