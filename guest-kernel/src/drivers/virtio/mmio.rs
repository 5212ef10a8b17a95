//! The virtio-mmio transport, version 2 (virtio 1.x section 4.2.2): registers, feature
//! negotiation, queue setup, notification and interrupt acknowledgement.

use crate::mm::phys_to_virt;

pub const MAGIC: u32 = 0x7472_6976;
const REG_MAGIC: usize = 0x000;
const REG_VERSION: usize = 0x004;
const REG_DEVICE_ID: usize = 0x008;
const REG_DEVICE_FEATURES: usize = 0x010;
const REG_DEVICE_FEATURES_SEL: usize = 0x014;
const REG_DRIVER_FEATURES: usize = 0x020;
const REG_DRIVER_FEATURES_SEL: usize = 0x024;
const REG_QUEUE_SEL: usize = 0x030;
const REG_QUEUE_NUM_MAX: usize = 0x034;
const REG_QUEUE_NUM: usize = 0x038;
const REG_QUEUE_READY: usize = 0x044;
const REG_QUEUE_NOTIFY: usize = 0x050;
const REG_INTERRUPT_STATUS: usize = 0x060;
const REG_INTERRUPT_ACK: usize = 0x064;
const REG_STATUS: usize = 0x070;
const REG_QUEUE_DESC: usize = 0x080;
const REG_QUEUE_DRIVER: usize = 0x090;
const REG_QUEUE_DEVICE: usize = 0x0a0;
const REG_CONFIG: usize = 0x100;

pub const STATUS_ACKNOWLEDGE: u32 = 1;
pub const STATUS_DRIVER: u32 = 2;
pub const STATUS_DRIVER_OK: u32 = 4;
pub const STATUS_FEATURES_OK: u32 = 8;
pub const STATUS_FAILED: u32 = 128;

pub const VIRTIO_F_VERSION_1: u64 = 1 << 32;
pub const VIRTIO_RING_F_EVENT_IDX: u64 = 1 << 29;

pub struct Mmio {
    base: *mut u8,
}

// SAFETY: the registers are MMIO; all access goes through volatile reads and writes, and
// the drivers serialise use with their own locks.
unsafe impl Send for Mmio {}
// SAFETY: as above.
unsafe impl Sync for Mmio {}

impl Mmio {
    /// The transport at physical `base`, if a version-2 virtio-mmio device is there.
    /// Returns it with its device id (0: an empty slot).
    pub fn probe(base: u64, size: u64) -> Option<(Self, u32)> {
        let ptr = phys_to_virt(base, size.max(0x200))?;
        let mmio = Self { base: ptr };
        if mmio.read(REG_MAGIC) != MAGIC {
            return None;
        }
        if mmio.read(REG_VERSION) != 2 {
            log::warn!("virtio-mmio at {base:#x}: legacy device (version 1) not supported; use -global virtio-mmio.force-legacy=false");
            return None;
        }
        let id = mmio.read(REG_DEVICE_ID);
        Some((mmio, id))
    }

    fn read(&self, offset: usize) -> u32 {
        // SAFETY: a 32-bit register inside the device's MMIO window (uncached direct map).
        unsafe { self.base.add(offset).cast::<u32>().read_volatile() }
    }

    fn write(&self, offset: usize, value: u32) {
        // SAFETY: as for `read`.
        unsafe { self.base.add(offset).cast::<u32>().write_volatile(value) }
    }

    pub fn config_u32(&self, offset: usize) -> u32 {
        self.read(REG_CONFIG + offset)
    }

    pub fn config_u64(&self, offset: usize) -> u64 {
        u64::from(self.config_u32(offset)) | (u64::from(self.config_u32(offset + 4)) << 32)
    }

    pub fn config_u8(&self, offset: usize) -> u8 {
        // SAFETY: as for `read`, one byte of device config space.
        unsafe { self.base.add(REG_CONFIG + offset).read_volatile() }
    }

    pub fn set_status(&self, status: u32) {
        self.write(REG_STATUS, status);
    }

    pub fn status(&self) -> u32 {
        self.read(REG_STATUS)
    }

    /// Resets the device and negotiates features: `wanted` (plus VERSION_1) intersected
    /// with what the device offers. Returns the accepted set, or None if the device
    /// rejected it or lacks VERSION_1.
    pub fn negotiate(&self, wanted: u64) -> Option<u64> {
        self.set_status(0);
        self.set_status(STATUS_ACKNOWLEDGE);
        self.set_status(STATUS_ACKNOWLEDGE | STATUS_DRIVER);
        let mut offered = 0u64;
        for sel in 0..2 {
            self.write(REG_DEVICE_FEATURES_SEL, sel);
            offered |= u64::from(self.read(REG_DEVICE_FEATURES)) << (32 * sel);
        }
        if offered & VIRTIO_F_VERSION_1 == 0 {
            self.set_status(STATUS_FAILED);
            return None;
        }
        let accepted = offered & (wanted | VIRTIO_F_VERSION_1);
        for sel in 0..2 {
            self.write(REG_DRIVER_FEATURES_SEL, sel);
            self.write(REG_DRIVER_FEATURES, (accepted >> (32 * sel)) as u32);
        }
        self.set_status(STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK);
        if self.status() & STATUS_FEATURES_OK == 0 {
            self.set_status(STATUS_FAILED);
            return None;
        }
        Some(accepted)
    }

    /// The largest size queue `index` supports (0: no such queue).
    pub fn queue_max(&self, index: u16) -> u16 {
        self.write(REG_QUEUE_SEL, u32::from(index));
        self.read(REG_QUEUE_NUM_MAX).min(u32::from(u16::MAX)) as u16
    }

    /// Tells the device where queue `index`'s three areas are, and enables it.
    pub fn setup_queue(&self, index: u16, size: u16, desc: u64, driver: u64, device: u64) {
        self.write(REG_QUEUE_SEL, u32::from(index));
        self.write(REG_QUEUE_NUM, u32::from(size));
        for (reg, addr) in [(REG_QUEUE_DESC, desc), (REG_QUEUE_DRIVER, driver), (REG_QUEUE_DEVICE, device)] {
            self.write(reg, addr as u32);
            self.write(reg + 4, (addr >> 32) as u32);
        }
        self.write(REG_QUEUE_READY, 1);
    }

    pub fn driver_ok(&self) {
        self.set_status(STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK);
    }

    pub fn notify(&self, queue: u16) {
        self.write(REG_QUEUE_NOTIFY, u32::from(queue));
    }

    /// Reads and acknowledges the interrupt status (bit 0: used buffers, bit 1: config).
    pub fn ack_interrupt(&self) -> u32 {
        let status = self.read(REG_INTERRUPT_STATUS);
        if status != 0 {
            self.write(REG_INTERRUPT_ACK, status);
        }
        status
    }
}
