//! Virtio devices over the virtio-mmio transport (virtio 1.x, "modern" only).
//!
//! Three layers, as in rust-vmm's vmm-reference:
//! - spec types and features of each device (`block/mod.rs`, `p9/mod.rs`, `net/mod.rs`);
//! - request processing that knows nothing of the transport (`block/device.rs`,
//!   `p9/server.rs`, `net/device.rs`): it gets a validated [`chain::Chain`] and guest
//!   memory;
//! - the glue: [`mmio::MmioTransport`] (registers, feature negotiation, status),
//!   [`worker`] (one thread per device that serves the queues and raises interrupts, and
//!   busy-polls the queues of polling drivers: [`poll`]) and [`chain`] (descriptor chains
//!   checked against guest memory before anyone reads them).
//!
//! The guest is untrusted: every guest-memory access goes through vm-memory's checked
//! accessors, and a malformed descriptor chain puts the device in DEVICE_NEEDS_RESET
//! (as QEMU's `virtio_error` does) instead of touching the VMM.

pub mod block;
pub mod chain;
pub mod mmio;
pub mod net;
pub mod p9;
pub mod poll;
pub mod worker;

use std::sync::atomic::{AtomicU32, Ordering};

use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

use chain::Chain;

/// Device type ids (virtio 1.x section 5).
pub const TYPE_NET: u32 = 1;
pub const TYPE_BLOCK: u32 = 2;
pub const TYPE_9P: u32 = 9;

/// Feature bits common to all devices.
pub const VIRTIO_F_VERSION_1: u32 = 32;
pub const VIRTIO_RING_F_EVENT_IDX: u32 = 29;

/// Device status bits (section 2.1).
pub mod status {
    pub const ACKNOWLEDGE: u32 = 0x01;
    pub const DRIVER: u32 = 0x02;
    pub const DRIVER_OK: u32 = 0x04;
    pub const FEATURES_OK: u32 = 0x08;
    pub const DEVICE_NEEDS_RESET: u32 = 0x40;
    pub const FAILED: u32 = 0x80;
}

/// InterruptStatus bits (section 4.2.2).
pub const INT_USED_BUFFER: u32 = 0x1;
pub const INT_CONFIG_CHANGE: u32 = 0x2;

/// virtio-mmio slots as QEMU's microvm lays them out with `acpi=off`.
pub const MMIO_BASE: u64 = 0xfeb0_0000;
pub const MMIO_SLOT_SIZE: u64 = 0x200;
pub const MMIO_SLOTS: usize = 8;
pub const MMIO_FIRST_GSI: u32 = 5;

/// Base address and GSI of the `n`-th device: QEMU fills slots from the top, so the first
/// device gets slot 7 (0xfeb00e00, GSI 12), the second slot 6, and so on.
pub fn mmio_slot(n: usize) -> Option<(u64, u32)> {
    let slot = MMIO_SLOTS.checked_sub(n + 1)?;
    Some((MMIO_BASE + slot as u64 * MMIO_SLOT_SIZE, MMIO_FIRST_GSI + slot as u32))
}

/// The kernel command-line entry that announces a device, as QEMU microvm writes it.
pub fn cmdline_entry(base: u64, gsi: u32) -> String {
    format!("virtio_mmio.device={}@{base:#x}:{gsi}", MMIO_SLOT_SIZE)
}

/// Why a device stopped serving its queues: the driver broke the spec, so the device
/// needs a reset (DEVICE_NEEDS_RESET, a config-change interrupt, no further processing).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DeviceError {
    #[error("malformed descriptor chain: {0}")]
    Chain(#[from] chain::ChainError),
    #[error("{0}")]
    Request(String),
    #[error("queue: {0}")]
    Queue(String),
}

/// The device status and interrupt status of one device, shared between the transport
/// (vCPU threads) and the device's worker thread, and the irqfd that raises its GSI.
///
/// Ordering: a worker sets the InterruptStatus bit (Release) before it writes the irqfd;
/// the driver's read of InterruptStatus (Acquire in the transport) then sees the bit.
pub struct Interrupt {
    status: AtomicU32,
    device_status: AtomicU32,
    irqfd: EventFd,
}

impl Interrupt {
    pub fn new(irqfd: EventFd) -> Self {
        Self { status: AtomicU32::new(0), device_status: AtomicU32::new(0), irqfd }
    }

    pub fn irqfd(&self) -> &EventFd {
        &self.irqfd
    }

    /// Sets `bits` in InterruptStatus, then raises the interrupt line.
    pub fn raise(&self, bits: u32) {
        // Release pairs with the Acquire load in `status()`, done by a vCPU thread after the
        // guest took the interrupt.
        self.status.fetch_or(bits, Ordering::Release);
        self.pulse();
    }

    /// Re-raises the line when an interrupt is still pending (the irqfd resample path: the
    /// guest sent EOI while InterruptStatus was not yet acknowledged).
    pub fn resample(&self) {
        if self.status() != 0 {
            self.pulse();
        }
    }

    fn pulse(&self) {
        if let Err(e) = self.irqfd.write(1) {
            log::warn!("virtio: cannot raise the interrupt: {e}");
        }
    }

    pub fn status(&self) -> u32 {
        self.status.load(Ordering::Acquire)
    }

    pub fn ack(&self, bits: u32) {
        self.status.fetch_and(!bits, Ordering::AcqRel);
    }

    pub fn device_status(&self) -> u32 {
        self.device_status.load(Ordering::Acquire)
    }

    pub fn set_device_status(&self, value: u32) {
        self.device_status.store(value, Ordering::Release);
    }

    /// Clears both statuses (device reset).
    pub fn reset(&self) {
        self.device_status.store(0, Ordering::Release);
        self.status.store(0, Ordering::Release);
    }

    /// The driver broke the spec: set DEVICE_NEEDS_RESET and send a config-change
    /// interrupt (section 2.1.2), once.
    pub fn needs_reset(&self) {
        let old = self.device_status.fetch_or(status::DEVICE_NEEDS_RESET, Ordering::AcqRel);
        if old & status::DEVICE_NEEDS_RESET == 0 && old & status::DRIVER_OK != 0 {
            self.raise(INT_CONFIG_CHANGE);
        }
    }
}

/// What a device offers the transport: identity, features, queues, config space, and a
/// handler for its requests once the driver has set DRIVER_OK.
pub trait VirtioDevice: Send {
    fn device_type(&self) -> u32;
    /// Feature bits offered to the driver.
    fn features(&self) -> u64;
    /// The maximum size of each queue; the number of queues is this slice's length.
    fn queue_max_sizes(&self) -> &[u16];
    /// The device-specific configuration space (at 0x100 in the MMIO window).
    fn config(&self) -> &[u8];
    /// Builds the request handler for the negotiated `features`.
    fn activate(&mut self, features: u64) -> Box<dyn QueueHandler>;
    /// How long the worker busy-polls a queue whose driver polls, after its last work
    /// ([`poll`]); zero (the default): never.
    fn poll_window(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
    /// Where the worker counts kicks and polling, if anywhere.
    fn poll_stats(&self) -> Option<&'static poll::PollStats> {
        None
    }
}

/// Serves the requests of a device, one descriptor chain at a time, with no knowledge of
/// the transport. A handler whose host I/O is asynchronous (virtio-blk on io_uring)
/// overrides [`QueueHandler::start`] and the calls after it; the others only `process`.
pub trait QueueHandler: Send {
    /// Handles one request of queue `queue`. Returns the number of bytes written into
    /// the chain's device-writable buffers (the used element's `len`), or an error that
    /// puts the device in DEVICE_NEEDS_RESET.
    fn process(&mut self, queue: usize, mem: &GuestMemoryMmap, chain: &Chain) -> Result<u32, DeviceError>;

    /// Starts one request of queue `queue`: `Some(len)` when it is done (as [`process`]),
    /// `None` when its host I/O is still in flight: its used entry then comes from
    /// [`complete`] once that I/O is done. The default serves it synchronously.
    ///
    /// [`process`]: QueueHandler::process
    /// [`complete`]: QueueHandler::complete
    fn start(&mut self, queue: usize, mem: &GuestMemoryMmap, chain: Chain) -> Result<Option<u32>, DeviceError> {
        self.process(queue, mem, &chain).map(Some)
    }

    /// False while no further request can be started (too many in flight): the worker
    /// leaves the avail ring alone until [`QueueHandler::complete`] has freed room.
    fn has_room(&self) -> bool {
        true
    }

    /// Hands the requests started since the last call to the host, in one batch.
    fn submit(&mut self) -> Result<(), DeviceError> {
        Ok(())
    }

    /// The requests that the last [`submit`] finished before it returned (host I/O that is
    /// done once submitted: virtio-net's frames to its tap), as [`complete`] reports
    /// them: the worker publishes them with the requests its drain served at once.
    ///
    /// [`submit`]: QueueHandler::submit
    /// [`complete`]: QueueHandler::complete
    fn finished(&mut self, _done: &mut Vec<(usize, u16, u32)>) {}

    /// A file descriptor that becomes readable when started requests may have finished.
    fn completion_fd(&self) -> Option<std::os::fd::RawFd> {
        None
    }

    /// Finishes the started requests whose host I/O is done (status written), appending
    /// (queue, head, used len) for each, for the used ring.
    fn complete(&mut self, _mem: &GuestMemoryMmap, _done: &mut Vec<(usize, u16, u32)>) -> Result<(), DeviceError> {
        Ok(())
    }

    /// Waits for the host I/O of the requests in flight and forgets them (the device is
    /// reset or broken: their used entries are never published).
    fn quiesce(&mut self) {}

    /// Called once on the worker thread before it serves anything, and before it
    /// installs its seccomp filter: the place to create host resources that the filter
    /// then forbids creating (the uring engine's ring).
    fn prepare(&mut self) {}
}

/// Reads little-endian bytes `offset..offset + data.len()` of `config` into `data`;
/// bytes beyond the config space read as zero.
pub fn read_config(config: &[u8], offset: u64, data: &mut [u8]) {
    data.fill(0);
    let Ok(start) = usize::try_from(offset) else { return };
    if start < config.len() {
        let n = data.len().min(config.len() - start);
        data[..n].copy_from_slice(&config[start..start + n]);
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A directory under the system temp dir, removed on drop.
    pub struct TempDir(PathBuf);

    impl TempDir {
        pub fn new(what: &str) -> Self {
            static COUNT: AtomicU32 = AtomicU32::new(0);
            let n = COUNT.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!("vmm-test-{}-{what}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).unwrap();
            Self(path)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_from_the_top() {
        assert_eq!(mmio_slot(0), Some((0xfeb0_0e00, 12)));
        assert_eq!(mmio_slot(1), Some((0xfeb0_0c00, 11)));
        assert_eq!(mmio_slot(7), Some((0xfeb0_0000, 5)));
        assert_eq!(mmio_slot(8), None);
        assert_eq!(cmdline_entry(0xfeb0_0e00, 12), "virtio_mmio.device=512@0xfeb00e00:12");
    }

    #[test]
    fn config_reads_are_bounded() {
        let config = [1u8, 2, 3, 4];
        let mut data = [0xffu8; 4];
        read_config(&config, 2, &mut data);
        assert_eq!(data, [3, 4, 0, 0]);
        read_config(&config, u64::MAX, &mut data);
        assert_eq!(data, [0; 4]);
    }
}
