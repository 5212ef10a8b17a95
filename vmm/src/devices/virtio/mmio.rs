//! The virtio-mmio transport, version 2 (virtio 1.x section 4.2.2), one per device.
//!
//! Registers 0x000..0x100 are 32-bit, aligned; the device config space starts at 0x100 and
//! takes 1, 2, 4 or 8-byte accesses. Any other access is refused with one warning and
//! otherwise ignored (reads give zeros). The transport keeps the queue configuration the
//! driver writes; at DRIVER_OK it builds virtio-queue `Queue`s from it, checks them
//! against guest memory, and hands them to a [`Worker`] thread with the device's request
//! handler. A write of 0 to Status stops that thread and resets everything.
//!
//! The reset waits for the worker at most [`RESET_TIMEOUT`]: a worker stuck in host I/O
//! (a file on a hung NFS or FUSE mount) must not hold the vCPU. The reset then completes
//! later, as the spec allows (the driver waits for Status to read 0): until the worker
//! has ended, Status reads DEVICE_NEEDS_RESET with the old bits, and every write is
//! ignored, so the worker can only touch the rings the driver had given it.

use std::sync::Arc;
use std::time::Duration;

use virtio_queue::{Queue, QueueT};
use vm_memory::{GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

use super::worker::{Worker, WorkerHandle};
use crate::devices::guest_errors;
use crate::guest_warn;
use super::{status, Interrupt, VirtioDevice, VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX};

pub const MAGIC: u32 = 0x7472_6976; // "virt"
pub const VERSION: u32 = 2;
/// The vendor id QEMU's virtio-mmio reports ("QEMU").
pub const VENDOR_ID: u32 = 0x554d_4551;

/// How long a reset waits for the device's worker to stop before it completes later.
pub const RESET_TIMEOUT: Duration = Duration::from_millis(200);

/// Register offsets (section 4.2.2).
pub mod reg {
    pub const MAGIC_VALUE: u64 = 0x000;
    pub const VERSION: u64 = 0x004;
    pub const DEVICE_ID: u64 = 0x008;
    pub const VENDOR_ID: u64 = 0x00c;
    pub const DEVICE_FEATURES: u64 = 0x010;
    pub const DEVICE_FEATURES_SEL: u64 = 0x014;
    pub const DRIVER_FEATURES: u64 = 0x020;
    pub const DRIVER_FEATURES_SEL: u64 = 0x024;
    pub const QUEUE_SEL: u64 = 0x030;
    pub const QUEUE_NUM_MAX: u64 = 0x034;
    pub const QUEUE_NUM: u64 = 0x038;
    pub const QUEUE_READY: u64 = 0x044;
    pub const QUEUE_NOTIFY: u64 = 0x050;
    pub const INTERRUPT_STATUS: u64 = 0x060;
    pub const INTERRUPT_ACK: u64 = 0x064;
    pub const STATUS: u64 = 0x070;
    pub const QUEUE_DESC_LOW: u64 = 0x080;
    pub const QUEUE_DESC_HIGH: u64 = 0x084;
    pub const QUEUE_DRIVER_LOW: u64 = 0x090;
    pub const QUEUE_DRIVER_HIGH: u64 = 0x094;
    pub const QUEUE_DEVICE_LOW: u64 = 0x0a0;
    pub const QUEUE_DEVICE_HIGH: u64 = 0x0a4;
    pub const SHM_SEL: u64 = 0x0ac;
    pub const SHM_LEN_LOW: u64 = 0x0b0;
    pub const SHM_LEN_HIGH: u64 = 0x0b4;
    pub const SHM_BASE_LOW: u64 = 0x0b8;
    pub const SHM_BASE_HIGH: u64 = 0x0bc;
    pub const CONFIG_GENERATION: u64 = 0x0fc;
    pub const CONFIG: u64 = 0x100;
}

/// What the driver wrote for one queue.
#[derive(Debug, Default, Clone)]
struct QueueConfig {
    max_size: u16,
    size: u16,
    ready: bool,
    desc: u64,
    driver: u64,
    device: u64,
}

fn set_low(v: &mut u64, low: u32) {
    *v = (*v & !0xffff_ffff) | u64::from(low);
}

fn set_high(v: &mut u64, high: u32) {
    *v = (*v & 0xffff_ffff) | (u64::from(high) << 32);
}

pub struct MmioTransport {
    name: String,
    device: Box<dyn VirtioDevice>,
    mem: GuestMemoryMmap,
    interrupt: Arc<Interrupt>,
    resample: Option<EventFd>,
    queue_evts: Vec<EventFd>,
    queues: Vec<QueueConfig>,
    device_features_sel: u32,
    driver_features_sel: u32,
    driver_features: u64,
    queue_sel: u32,
    worker: Option<(EventFd, WorkerHandle)>,
    /// A worker told to stop that had not stopped when the driver reset the device: the
    /// reset completes once it has.
    stopping: Option<WorkerHandle>,
}

impl MmioTransport {
    /// `irqfd` raises the device's GSI; `resample`, when KVM gave one, is written by KVM at
    /// the guest's EOI so that a still-pending interrupt is raised again (level semantics).
    pub fn new(
        name: String,
        device: Box<dyn VirtioDevice>,
        mem: GuestMemoryMmap,
        irqfd: EventFd,
        resample: Option<EventFd>,
    ) -> std::io::Result<Self> {
        let queues: Vec<QueueConfig> = device
            .queue_max_sizes()
            .iter()
            .map(|&max| QueueConfig { max_size: max, size: max, ..Default::default() })
            .collect();
        let queue_evts = queues.iter().map(|_| EventFd::new(libc::EFD_NONBLOCK)).collect::<Result<_, _>>()?;
        Ok(Self {
            name,
            device,
            mem,
            interrupt: Arc::new(Interrupt::new(irqfd)),
            resample,
            queue_evts,
            queues,
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            queue_sel: 0,
            worker: None,
            stopping: None,
        })
    }

    /// The eventfd of each queue, for KVM ioeventfds on QueueNotify (datamatch = index).
    pub fn queue_evts(&self) -> &[EventFd] {
        &self.queue_evts
    }

    pub fn interrupt(&self) -> &Arc<Interrupt> {
        &self.interrupt
    }

    fn status(&self) -> u32 {
        self.interrupt.device_status()
    }

    fn selected_queue(&mut self) -> Option<&mut QueueConfig> {
        self.queues.get_mut(self.queue_sel as usize)
    }

    pub fn read(&mut self, offset: u64, data: &mut [u8]) {
        self.poll_stopping();
        if offset >= reg::CONFIG {
            if !matches!(data.len(), 1 | 2 | 4 | 8) {
                guest_warn!(guest_errors::MMIO, "{}: config read of {} bytes refused", self.name, data.len());
                data.fill(0);
                return;
            }
            super::read_config(self.device.config(), offset - reg::CONFIG, data);
            return;
        }
        if data.len() != 4 || !offset.is_multiple_of(4) {
            guest_warn!(guest_errors::MMIO, "{}: register read at {offset:#x} of {} bytes refused", self.name, data.len());
            data.fill(0);
            return;
        }
        let features = self.device.features();
        let queue = self.queues.get(self.queue_sel as usize);
        let value = match offset {
            reg::MAGIC_VALUE => MAGIC,
            reg::VERSION => VERSION,
            reg::DEVICE_ID => self.device.device_type(),
            reg::VENDOR_ID => VENDOR_ID,
            reg::DEVICE_FEATURES => match self.device_features_sel {
                0 => features as u32,
                1 => (features >> 32) as u32,
                _ => 0,
            },
            reg::QUEUE_NUM_MAX => queue.map_or(0, |q| u32::from(q.max_size)),
            reg::QUEUE_NUM => queue.map_or(0, |q| u32::from(q.size)),
            reg::QUEUE_READY => queue.map_or(0, |q| u32::from(q.ready)),
            reg::QUEUE_DESC_LOW => queue.map_or(0, |q| q.desc as u32),
            reg::QUEUE_DESC_HIGH => queue.map_or(0, |q| (q.desc >> 32) as u32),
            reg::QUEUE_DRIVER_LOW => queue.map_or(0, |q| q.driver as u32),
            reg::QUEUE_DRIVER_HIGH => queue.map_or(0, |q| (q.driver >> 32) as u32),
            reg::QUEUE_DEVICE_LOW => queue.map_or(0, |q| q.device as u32),
            reg::QUEUE_DEVICE_HIGH => queue.map_or(0, |q| (q.device >> 32) as u32),
            reg::INTERRUPT_STATUS => self.interrupt.status(),
            reg::STATUS => self.status(),
            // No shared memory regions: their length reads as -1 (section 4.2.2).
            reg::SHM_LEN_LOW | reg::SHM_LEN_HIGH => u32::MAX,
            reg::SHM_BASE_LOW | reg::SHM_BASE_HIGH => 0,
            reg::CONFIG_GENERATION => 0,
            _ => {
                guest_warn!(guest_errors::MMIO, "{}: read of write-only or unknown register {offset:#x}", self.name);
                0
            }
        };
        data.copy_from_slice(&value.to_le_bytes());
    }

    pub fn write(&mut self, offset: u64, data: &[u8]) {
        if !self.poll_stopping() {
            guest_warn!(guest_errors::MMIO, "{}: register write at {offset:#x} while the reset is under way, ignored", self.name);
            return;
        }
        if offset >= reg::CONFIG {
            guest_warn!(guest_errors::MMIO, "{}: write to read-only config space at {:#x} refused", self.name, offset - reg::CONFIG);
            return;
        }
        let Ok(bytes) = <[u8; 4]>::try_from(data) else {
            guest_warn!(guest_errors::MMIO, "{}: register write at {offset:#x} of {} bytes refused", self.name, data.len());
            return;
        };
        if !offset.is_multiple_of(4) {
            guest_warn!(guest_errors::MMIO, "{}: unaligned register write at {offset:#x} refused", self.name);
            return;
        }
        let value = u32::from_le_bytes(bytes);
        match offset {
            reg::DEVICE_FEATURES_SEL => self.device_features_sel = value,
            reg::DRIVER_FEATURES_SEL => self.driver_features_sel = value,
            reg::DRIVER_FEATURES => {
                if self.status() & (status::FEATURES_OK | status::DRIVER_OK) != 0 {
                    guest_warn!(guest_errors::MMIO, "{}: DriverFeatures written after FEATURES_OK, ignored", self.name);
                    return;
                }
                match self.driver_features_sel {
                    0 => set_low(&mut self.driver_features, value),
                    1 => set_high(&mut self.driver_features, value),
                    sel => guest_warn!(guest_errors::MMIO, "{}: DriverFeatures with select {sel} ignored", self.name),
                }
            }
            reg::QUEUE_SEL => self.queue_sel = value,
            reg::QUEUE_NUM
            | reg::QUEUE_READY
            | reg::QUEUE_DESC_LOW
            | reg::QUEUE_DESC_HIGH
            | reg::QUEUE_DRIVER_LOW
            | reg::QUEUE_DRIVER_HIGH
            | reg::QUEUE_DEVICE_LOW
            | reg::QUEUE_DEVICE_HIGH => self.write_queue(offset, value),
            reg::QUEUE_NOTIFY => match self.queue_evts.get(value as usize) {
                Some(evt) => {
                    if let Some(stats) = self.device.poll_stats() {
                        stats.kicks_by_mmio.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    if let Err(e) = evt.write(1) {
                        log::warn!("{}: cannot notify queue {value}: {e}", self.name);
                    }
                }
                None => guest_warn!(guest_errors::MMIO, "{}: notification of queue {value}, which does not exist", self.name),
            },
            reg::INTERRUPT_ACK => self.interrupt.ack(value),
            reg::STATUS => self.write_status(value),
            reg::SHM_SEL => {}
            _ => guest_warn!(guest_errors::MMIO, "{}: write to read-only or unknown register {offset:#x} refused", self.name),
        }
    }

    fn write_queue(&mut self, offset: u64, value: u32) {
        let name = self.name.clone();
        if self.status() & status::DRIVER_OK != 0 {
            guest_warn!(guest_errors::MMIO, "{name}: queue register {offset:#x} written after DRIVER_OK, ignored");
            return;
        }
        let sel = self.queue_sel;
        let Some(q) = self.selected_queue() else {
            guest_warn!(guest_errors::MMIO, "{name}: queue register {offset:#x} written for queue {sel}, which does not exist");
            return;
        };
        if q.ready && offset != reg::QUEUE_READY {
            guest_warn!(guest_errors::MMIO, "{name}: queue {sel} register {offset:#x} written while the queue is ready, ignored");
            return;
        }
        match offset {
            reg::QUEUE_NUM => match u16::try_from(value) {
                Ok(size) => q.size = size,
                Err(_) => {
                    guest_warn!(guest_errors::MMIO, "{name}: queue {sel} size {value} refused");
                    q.size = 0; // invalid: caught at DRIVER_OK
                }
            },
            reg::QUEUE_READY => q.ready = value & 1 != 0,
            reg::QUEUE_DESC_LOW => set_low(&mut q.desc, value),
            reg::QUEUE_DESC_HIGH => set_high(&mut q.desc, value),
            reg::QUEUE_DRIVER_LOW => set_low(&mut q.driver, value),
            reg::QUEUE_DRIVER_HIGH => set_high(&mut q.driver, value),
            reg::QUEUE_DEVICE_LOW => set_low(&mut q.device, value),
            reg::QUEUE_DEVICE_HIGH => set_high(&mut q.device, value),
            _ => unreachable!("not a queue register"),
        }
    }

    fn write_status(&mut self, value: u32) {
        if value == 0 {
            self.reset();
            return;
        }
        let old = self.status();
        let mut new = value & !status::DEVICE_NEEDS_RESET;
        let kept = old & !status::DEVICE_NEEDS_RESET;
        if new & kept != kept {
            guest_warn!(guest_errors::MMIO, "{}: status {value:#x} clears bits of {old:#x}, ignored", self.name);
            return;
        }
        let added = new & !kept;
        if added & status::FEATURES_OK != 0 {
            let offered = self.device.features();
            let unknown = self.driver_features & !offered;
            if unknown != 0 || self.driver_features & (1 << VIRTIO_F_VERSION_1) == 0 {
                guest_warn!(
                    guest_errors::MMIO,
                    "{}: features {:#x} refused (offered {offered:#x}; VERSION_1 is required)",
                    self.name,
                    self.driver_features
                );
                new &= !status::FEATURES_OK;
            }
        }
        if added & status::DRIVER_OK != 0 && new & status::FEATURES_OK == 0 {
            guest_warn!(guest_errors::MMIO, "{}: DRIVER_OK without FEATURES_OK, ignored", self.name);
            new &= !status::DRIVER_OK;
        }
        self.interrupt.set_device_status(new | (old & status::DEVICE_NEEDS_RESET));
        if new & status::DRIVER_OK != 0 && added & status::DRIVER_OK != 0 {
            self.activate();
        }
    }

    /// DRIVER_OK: build the ready queues and start the worker.
    fn activate(&mut self) {
        let features = self.driver_features;
        let event_idx = features & (1 << VIRTIO_RING_F_EVENT_IDX) != 0;
        let mut queues = Vec::new();
        for (index, cfg) in self.queues.iter().enumerate() {
            if !cfg.ready {
                continue;
            }
            match build_queue(cfg, event_idx, &self.mem) {
                Ok(queue) => match self.queue_evts[index].try_clone() {
                    Ok(evt) => queues.push((index, queue, evt)),
                    Err(e) => {
                        log::warn!("{}: cannot clone an eventfd: {e}", self.name);
                        self.interrupt.needs_reset();
                        return;
                    }
                },
                Err(why) => {
                    guest_warn!(guest_errors::MMIO, "{}: queue {index} refused at DRIVER_OK: {why}", self.name);
                    self.interrupt.needs_reset();
                    return;
                }
            }
        }
        let handler = self.device.activate(features);
        let stop = EventFd::new(libc::EFD_NONBLOCK).and_then(|stop| Ok((stop.try_clone()?, stop)));
        let Ok((stop_for_worker, stop)) = stop else {
            log::warn!("{}: cannot create an eventfd", self.name);
            self.interrupt.needs_reset();
            return;
        };
        let mut worker = Worker::new(
            self.name.clone(),
            self.mem.clone(),
            queues,
            handler,
            Arc::clone(&self.interrupt),
            self.resample.as_ref().and_then(|e| e.try_clone().ok()),
            stop_for_worker,
            self.device.poll_window(),
            self.device.poll_stats(),
        );
        worker.filter = Some(match self.device.device_type() {
            super::TYPE_BLOCK => crate::seccomp::Thread::Block,
            super::TYPE_NET => crate::seccomp::Thread::Net,
            _ => crate::seccomp::Thread::P9,
        });
        match worker.spawn() {
            Ok(handle) => self.worker = Some((stop, handle)),
            Err(e) => {
                log::warn!("{}: cannot start the device thread: {e}", self.name);
                self.interrupt.needs_reset();
            }
        }
    }

    /// Status 0: stop the worker and forget everything the driver set; if the worker does
    /// not stop within [`RESET_TIMEOUT`], the reset completes when it has (see the module
    /// docs).
    pub fn reset(&mut self) {
        if self.stopping.is_some() {
            return;
        }
        if let Some((stop, handle)) = self.worker.take() {
            let _ = stop.write(1);
            if let Err(handle) = handle.join_within(RESET_TIMEOUT) {
                log::warn!("{}: the device thread is still busy (host I/O?); the reset completes when it is done", self.name);
                self.stopping = Some(handle);
                self.interrupt.needs_reset();
                return;
            }
        }
        self.finish_reset();
    }

    /// Completes a reset whose worker has stopped meanwhile. False while it has not.
    fn poll_stopping(&mut self) -> bool {
        let Some(handle) = self.stopping.take() else { return true };
        match handle.join_within(Duration::ZERO) {
            Ok(()) => {
                self.finish_reset();
                true
            }
            Err(handle) => {
                self.stopping = Some(handle);
                false
            }
        }
    }

    fn finish_reset(&mut self) {
        for q in &mut self.queues {
            *q = QueueConfig { max_size: q.max_size, size: q.max_size, ..Default::default() };
        }
        for evt in &self.queue_evts {
            let _ = evt.read(); // drop stale notifications
        }
        self.device_features_sel = 0;
        self.driver_features_sel = 0;
        self.driver_features = 0;
        self.queue_sel = 0;
        self.interrupt.reset();
    }
}

impl Drop for MmioTransport {
    fn drop(&mut self) {
        self.reset();
    }
}

fn build_queue(cfg: &QueueConfig, event_idx: bool, mem: &GuestMemoryMmap) -> Result<Queue, String> {
    let mut q = Queue::new(cfg.max_size).map_err(|e| e.to_string())?;
    q.try_set_size(cfg.size).map_err(|_| format!("size {} (at most {}, a power of 2)", cfg.size, cfg.max_size))?;
    q.try_set_desc_table_address(GuestAddress(cfg.desc)).map_err(|e| format!("descriptor table: {e}"))?;
    q.try_set_avail_ring_address(GuestAddress(cfg.driver)).map_err(|e| format!("driver area: {e}"))?;
    q.try_set_used_ring_address(GuestAddress(cfg.device)).map_err(|e| format!("device area: {e}"))?;
    q.set_event_idx(event_idx);
    q.set_ready(true);
    if !q.is_valid(mem) {
        return Err("rings outside guest memory".to_owned());
    }
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::virtio::block::device::tests::MemDisk;
    use crate::devices::virtio::block::{self, Block};
    use crate::devices::virtio::chain::tests::{TestQueue, AVAIL, DESC, USED};
    use crate::devices::virtio::p9::P9Device;
    use crate::devices::virtio::test_util::TempDir;
    use crate::devices::virtio::{INT_CONFIG_CHANGE, INT_USED_BUFFER};
    use std::sync::Mutex;
    use std::time::{Duration, Instant};
    use vm_memory::Bytes;

    /// Plays the guest driver against a transport, in-process.
    struct Driver {
        t: MmioTransport,
        q: TestQueue,
        irq: EventFd,
        next_desc: u16,
        used_seen: u16,
    }

    const QSIZE: u16 = 16;

    impl Driver {
        fn new(device: Box<dyn VirtioDevice>) -> Self {
            let q = TestQueue::new(QSIZE);
            let irq = EventFd::new(libc::EFD_NONBLOCK).unwrap();
            let t = MmioTransport::new("test".into(), device, q.mem.clone(), irq.try_clone().unwrap(), None).unwrap();
            Driver { t, q, irq, next_desc: 0, used_seen: 0 }
        }

        fn block(disk: &Arc<MemDisk>, read_only: bool) -> Self {
            Self::new(Box::new(Block::new(disk.clone(), read_only, b"id")))
        }

        fn w(&mut self, offset: u64, v: u32) {
            self.t.write(offset, &v.to_le_bytes());
        }

        fn r(&mut self, offset: u64) -> u32 {
            let mut b = [0u8; 4];
            self.t.read(offset, &mut b);
            u32::from_le_bytes(b)
        }

        fn negotiate(&mut self, features: u64) -> bool {
            self.w(reg::STATUS, 0);
            self.w(reg::STATUS, status::ACKNOWLEDGE);
            self.w(reg::STATUS, status::ACKNOWLEDGE | status::DRIVER);
            self.w(reg::DRIVER_FEATURES_SEL, 0);
            self.w(reg::DRIVER_FEATURES, features as u32);
            self.w(reg::DRIVER_FEATURES_SEL, 1);
            self.w(reg::DRIVER_FEATURES, (features >> 32) as u32);
            self.w(reg::STATUS, status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK);
            self.r(reg::STATUS) & status::FEATURES_OK != 0
        }

        /// Full initialization with queue 0 on the TestQueue rings.
        fn init(&mut self, features: u64) {
            assert!(self.negotiate(features));
            self.setup_queue(QSIZE.into(), DESC, AVAIL, USED);
            self.w(reg::STATUS, status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK | status::DRIVER_OK);
        }

        fn setup_queue(&mut self, size: u32, desc: u64, avail: u64, used: u64) {
            self.w(reg::QUEUE_SEL, 0);
            assert!(self.r(reg::QUEUE_NUM_MAX) >= size);
            self.w(reg::QUEUE_NUM, size);
            self.w(reg::QUEUE_DESC_LOW, desc as u32);
            self.w(reg::QUEUE_DESC_HIGH, (desc >> 32) as u32);
            self.w(reg::QUEUE_DRIVER_LOW, avail as u32);
            self.w(reg::QUEUE_DRIVER_HIGH, 0);
            self.w(reg::QUEUE_DEVICE_LOW, used as u32);
            self.w(reg::QUEUE_DEVICE_HIGH, 0);
            self.w(reg::QUEUE_READY, 1);
        }

        /// Publishes a chain and kicks queue 0.
        fn submit(&mut self, bufs: &[(u64, u32, bool)]) {
            let head = self.next_desc;
            self.q.chain(head, bufs);
            self.next_desc = (self.next_desc + bufs.len() as u16) % QSIZE;
            self.q.publish(head);
            self.w(reg::QUEUE_NOTIFY, 0);
        }

        /// Waits for the next used element: (id, len).
        fn wait_used(&mut self) -> Option<(u32, u32)> {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                let (idx, id, len) = self.q.used(self.used_seen);
                if idx != self.used_seen {
                    self.used_seen = self.used_seen.wrapping_add(1);
                    return Some((id, len));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            None
        }

        /// Waits until the device status has `bit`.
        fn wait_status(&mut self, bit: u32) -> bool {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if self.r(reg::STATUS) & bit != 0 {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            false
        }

        /// How many times the irqfd was written since the last call.
        fn interrupts(&self) -> u64 {
            self.irq.read().unwrap_or(0)
        }

        /// Waits for exactly one write of the irqfd (the worker raises it after the used
        /// ring); false on a timeout or if it was written more than once.
        fn wait_interrupt(&self) -> bool {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                match self.interrupts() {
                    0 => {}
                    n => return n == 1,
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            false
        }
    }

    fn disk(sectors: usize) -> Arc<MemDisk> {
        Arc::new(MemDisk { data: Mutex::new(vec![0; sectors * 512]), ..Default::default() })
    }

    const V1: u64 = 1 << VIRTIO_F_VERSION_1;
    const HDR: u64 = 0x10000;
    const DATA: u64 = 0x20000;
    const STATUS_BYTE: u64 = 0x30000;

    fn blk_header(d: &Driver, type_: u32, sector: u64) {
        d.q.mem.write_obj(type_, GuestAddress(HDR)).unwrap();
        d.q.mem.write_obj(0u32, GuestAddress(HDR + 4)).unwrap();
        d.q.mem.write_obj(sector, GuestAddress(HDR + 8)).unwrap();
    }

    #[test]
    fn registers() {
        let mut d = Driver::block(&disk(8), true);
        assert_eq!(d.r(reg::MAGIC_VALUE), MAGIC);
        assert_eq!(d.r(reg::VERSION), 2);
        assert_eq!(d.r(reg::DEVICE_ID), 2);
        assert_eq!(d.r(reg::VENDOR_ID), VENDOR_ID);
        d.w(reg::DEVICE_FEATURES_SEL, 1);
        assert_eq!(d.r(reg::DEVICE_FEATURES), 1); // VERSION_1
        d.w(reg::DEVICE_FEATURES_SEL, 0);
        let low = d.r(reg::DEVICE_FEATURES);
        assert_ne!(low & 1 << block::VIRTIO_BLK_F_RO, 0);
        assert_ne!(low & 1 << VIRTIO_RING_F_EVENT_IDX, 0);
        assert_eq!(d.r(reg::QUEUE_NUM_MAX), u32::from(block::QUEUE_SIZE));
        d.w(reg::QUEUE_SEL, 1);
        assert_eq!(d.r(reg::QUEUE_NUM_MAX), u32::from(block::QUEUE_SIZE), "queue 1: for polled I/O");
        d.w(reg::QUEUE_SEL, 2);
        assert_eq!(d.r(reg::QUEUE_NUM_MAX), 0, "no queue 2");
        // Config space: capacity (u64 at 0) in any width.
        let mut cap = [0u8; 8];
        d.t.read(reg::CONFIG, &mut cap);
        assert_eq!(u64::from_le_bytes(cap), 8);
        let mut b = [0u8; 1];
        d.t.read(reg::CONFIG, &mut b);
        assert_eq!(b[0], 8);
        // Bad sizes and offsets: refused, no effect.
        let mut two = [0xffu8; 2];
        d.t.read(reg::MAGIC_VALUE, &mut two);
        assert_eq!(two, [0, 0]);
        d.t.write(reg::STATUS, &[1, 0]);
        d.t.write(reg::STATUS + 1, &[1, 0, 0, 0]);
        d.t.write(0x1fc, &[1, 0, 0, 0]);
        d.w(0x0f0, 1);
        d.w(reg::MAGIC_VALUE, 0);
        assert_eq!(d.r(reg::STATUS), 0);
        assert_eq!(d.r(reg::MAGIC_VALUE), MAGIC);
        let mut odd = [0u8; 3];
        d.t.read(reg::CONFIG, &mut odd);
        assert_eq!(odd, [0; 3]);
        // Notifying a queue that does not exist is only logged.
        d.w(reg::QUEUE_NOTIFY, 7);
    }

    #[test]
    fn feature_negotiation() {
        let mut d = Driver::block(&disk(8), false);
        assert!(!d.negotiate(0), "VERSION_1 is required");
        assert!(!d.negotiate(V1 | 1 << 40), "unknown features are refused");
        assert!(!d.negotiate(V1 | 1 << block::VIRTIO_BLK_F_RO), "RO is not offered for a writable disk");
        assert!(d.negotiate(V1 | 1 << block::VIRTIO_BLK_F_FLUSH));
        // Features cannot change after FEATURES_OK.
        d.w(reg::DRIVER_FEATURES_SEL, 0);
        d.w(reg::DRIVER_FEATURES, 0xffff_ffff);
        assert_eq!(d.t.driver_features, V1 | 1 << block::VIRTIO_BLK_F_FLUSH);
        // DRIVER_OK without FEATURES_OK is refused.
        d.w(reg::STATUS, 0);
        d.w(reg::STATUS, status::ACKNOWLEDGE | status::DRIVER | status::DRIVER_OK);
        assert_eq!(d.r(reg::STATUS), status::ACKNOWLEDGE | status::DRIVER);
    }

    #[test]
    fn block_end_to_end() {
        let disk = disk(16);
        let mut d = Driver::block(&disk, false);
        d.init(V1 | 1 << block::VIRTIO_BLK_F_FLUSH);
        // Queue registers are frozen once the device is live.
        d.w(reg::QUEUE_NUM, 4);
        assert_eq!(d.r(reg::QUEUE_NUM), u32::from(QSIZE));

        d.q.mem.write_slice(&[0x5a; 512], GuestAddress(DATA)).unwrap();
        blk_header(&d, block::VIRTIO_BLK_T_OUT, 3);
        d.submit(&[(HDR, 16, false), (DATA, 512, false), (STATUS_BYTE, 1, true)]);
        assert_eq!(d.wait_used(), Some((0, 1)));
        assert_eq!(d.q.mem.read_obj::<u8>(GuestAddress(STATUS_BYTE)).unwrap(), block::VIRTIO_BLK_S_OK);
        assert_eq!(&disk.data.lock().unwrap()[3 * 512..4 * 512], &[0x5a; 512]);
        // The interrupt status is set before the irqfd fires.
        assert!(d.wait_interrupt());
        assert_eq!(d.r(reg::INTERRUPT_STATUS) & INT_USED_BUFFER, INT_USED_BUFFER);
        d.w(reg::INTERRUPT_ACK, INT_USED_BUFFER);
        assert_eq!(d.r(reg::INTERRUPT_STATUS), 0);

        blk_header(&d, block::VIRTIO_BLK_T_IN, 3);
        d.q.mem.write_slice(&[0; 512], GuestAddress(DATA)).unwrap();
        d.submit(&[(HDR, 16, false), (DATA, 512, true), (STATUS_BYTE, 1, true)]);
        assert_eq!(d.wait_used(), Some((3, 513)));
        let mut back = [0u8; 512];
        d.q.mem.read_slice(&mut back, GuestAddress(DATA)).unwrap();
        assert_eq!(back, [0x5a; 512]);

        blk_header(&d, block::VIRTIO_BLK_T_FLUSH, 0);
        d.submit(&[(HDR, 16, false), (STATUS_BYTE, 1, true)]);
        assert_eq!(d.wait_used(), Some((6, 1)));
        assert_eq!(disk.flushes.load(std::sync::atomic::Ordering::Relaxed), 1);

        // Reset stops the worker and clears everything.
        d.w(reg::STATUS, 0);
        assert_eq!((d.r(reg::STATUS), d.r(reg::INTERRUPT_STATUS), d.r(reg::QUEUE_READY)), (0, 0, 0));
    }

    /// A file disk through io_uring with a ring of 4: 5 requests published before one kick
    /// are all served (4 in flight, the 5th once one completes), then read back the same
    /// way; a flush; a reset.
    #[test]
    fn block_end_to_end_uring() {
        use crate::devices::virtio::block::engine_uring::UringEngine;
        let dir = TempDir::new("mmioblk");
        let path = dir.path().join("disk.img");
        std::fs::write(&path, vec![0u8; 16 * 512]).unwrap();
        let engine = UringEngine::open(&path, false).unwrap().with_ring_entries(4);
        let mut d = Driver::new(Box::new(Block::new(Arc::new(engine), false, b"id")));
        d.init(V1 | 1 << block::VIRTIO_BLK_F_FLUSH | 1 << VIRTIO_RING_F_EVENT_IDX);
        // Chains of 3 descriptors from 0, 3, ... (5 fill 15 of the 16 descriptors).
        let publish = |d: &mut Driver, type_: u32, fill: bool| {
            for i in 0..5u64 {
                let (hdr, data, st) = (HDR + i * 16, DATA + i * 512, STATUS_BYTE + i);
                d.q.mem.write_obj(type_, GuestAddress(hdr)).unwrap();
                d.q.mem.write_obj(0u32, GuestAddress(hdr + 4)).unwrap();
                d.q.mem.write_obj(i * 2, GuestAddress(hdr + 8)).unwrap();
                d.q.mem.write_slice(&[if fill { i as u8 + 1 } else { 0 }; 512], GuestAddress(data)).unwrap();
                d.q.mem.write_obj(0xffu8, GuestAddress(st)).unwrap();
                let w = type_ == block::VIRTIO_BLK_T_IN;
                d.q.chain(i as u16 * 3, &[(hdr, 16, false), (data, 512, w), (st, 1, true)]);
                d.q.publish(i as u16 * 3);
            }
            d.w(reg::QUEUE_NOTIFY, 0);
            let mut heads: Vec<u32> = (0..5).map(|_| d.wait_used().expect("a used entry").0).collect();
            heads.sort();
            assert_eq!(heads, [0, 3, 6, 9, 12]);
            for i in 0..5u64 {
                assert_eq!(d.q.mem.read_obj::<u8>(GuestAddress(STATUS_BYTE + i)).unwrap(), block::VIRTIO_BLK_S_OK);
            }
        };
        publish(&mut d, block::VIRTIO_BLK_T_OUT, true);
        let disk = std::fs::read(&path).unwrap();
        for i in 0..5usize {
            assert_eq!(&disk[i * 1024..i * 1024 + 512], &[i as u8 + 1; 512]);
        }
        publish(&mut d, block::VIRTIO_BLK_T_IN, false);
        for i in 0..5u64 {
            let mut back = [0u8; 512];
            d.q.mem.read_slice(&mut back, GuestAddress(DATA + i * 512)).unwrap();
            assert_eq!(back, [i as u8 + 1; 512]);
        }
        assert!(d.interrupts() > 0);
        blk_header(&d, block::VIRTIO_BLK_T_FLUSH, 0);
        d.next_desc = 0;
        d.submit(&[(HDR, 16, false), (STATUS_BYTE, 1, true)]);
        assert_eq!(d.wait_used(), Some((0, 1)));
        assert_eq!(d.r(reg::STATUS) & status::DEVICE_NEEDS_RESET, 0);
        d.w(reg::STATUS, 0);
        assert_eq!(d.r(reg::STATUS), 0);
    }

    #[test]
    fn malformed_chain_needs_reset() {
        let disk = disk(16);
        let mut d = Driver::block(&disk, false);
        d.init(V1);
        // A descriptor that loops on itself.
        d.q.set_desc(0, HDR, 16, 1, 0);
        d.q.publish(0);
        d.w(reg::QUEUE_NOTIFY, 0);
        assert!(d.wait_status(status::DEVICE_NEEDS_RESET));
        assert!(d.wait_interrupt());
        assert_eq!(d.r(reg::INTERRUPT_STATUS) & INT_CONFIG_CHANGE, INT_CONFIG_CHANGE);
        // Later kicks are ignored until the reset.
        d.w(reg::QUEUE_NOTIFY, 0);
        // After a reset and a new initialization the device works again.
        d.w(reg::STATUS, 0);
        assert_eq!(d.r(reg::STATUS), 0);
        d.q = TestQueue::new(QSIZE);
        d.t.mem = d.q.mem.clone();
        (d.next_desc, d.used_seen) = (0, 0);
        d.init(V1);
        blk_header(&d, block::VIRTIO_BLK_T_FLUSH, 0);
        d.submit(&[(HDR, 16, false), (STATUS_BYTE, 1, true)]);
        assert_eq!(d.wait_used(), Some((0, 1)));
        assert_eq!(d.r(reg::STATUS) & status::DEVICE_NEEDS_RESET, 0);
    }

    #[test]
    fn buffers_outside_memory_need_reset() {
        let mut d = Driver::block(&disk(16), false);
        d.init(V1);
        d.submit(&[(HDR, 16, false), (0xffff_ffff_0000, 512, true), (STATUS_BYTE, 1, true)]);
        assert!(d.wait_status(status::DEVICE_NEEDS_RESET));
    }

    #[test]
    fn bad_queue_config_needs_reset() {
        for (size, desc, avail, used) in [
            (3, DESC, AVAIL, USED),             // not a power of 2
            (u32::from(QSIZE), 0x1008, AVAIL, USED), // misaligned descriptor table
            (u32::from(QSIZE), 1 << 40, AVAIL, USED), // outside guest memory
        ] {
            let mut d = Driver::block(&disk(16), false);
            assert!(d.negotiate(V1));
            d.setup_queue(size, desc, avail, used);
            d.w(reg::STATUS, status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK | status::DRIVER_OK);
            assert_ne!(d.r(reg::STATUS) & status::DEVICE_NEEDS_RESET, 0, "queue {size} {desc:#x}");
            assert_eq!(d.r(reg::INTERRUPT_STATUS), INT_CONFIG_CHANGE);
        }
    }

    #[test]
    fn event_idx_suppresses_interrupts() {
        let mut d = Driver::block(&disk(16), false);
        d.init(V1 | 1 << VIRTIO_RING_F_EVENT_IDX);
        let used_event = GuestAddress(AVAIL + 4 + 2 * u64::from(QSIZE));
        // The driver wants an interrupt only after the 3rd used buffer (used_event = 2).
        d.q.mem.write_obj(2u16, used_event).unwrap();
        for _ in 0..3 {
            blk_header(&d, block::VIRTIO_BLK_T_FLUSH, 0);
            d.submit(&[(HDR, 16, false), (STATUS_BYTE, 1, true)]);
            assert!(d.wait_used().is_some());
        }
        // Exactly one interrupt, for the 3rd buffer (the eventfd counts every write).
        assert!(d.wait_interrupt());
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(d.interrupts(), 0);
        // The device asks for a kick only when it has caught up: avail_event = next avail.
        let avail_event: u16 = d.q.mem.read_obj(GuestAddress(USED + 4 + 8 * u64::from(QSIZE))).unwrap();
        assert_eq!(avail_event, 3);
    }

    #[test]
    fn no_interrupt_flag_without_event_idx() {
        let mut d = Driver::block(&disk(16), false);
        d.init(V1);
        d.q.mem.write_obj(1u16, GuestAddress(AVAIL)).unwrap(); // VRING_AVAIL_F_NO_INTERRUPT
        blk_header(&d, block::VIRTIO_BLK_T_FLUSH, 0);
        d.submit(&[(HDR, 16, false), (STATUS_BYTE, 1, true)]);
        assert!(d.wait_used().is_some());
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(d.interrupts(), 0, "no interrupt at activation nor for the buffer");
        d.q.mem.write_obj(0u16, GuestAddress(AVAIL)).unwrap();
        d.submit(&[(HDR, 16, false), (STATUS_BYTE, 1, true)]);
        assert!(d.wait_used().is_some());
        assert!(d.wait_interrupt());
    }

    #[test]
    fn p9_end_to_end() {
        let dir = TempDir::new("mmio9p");
        let dev = P9Device::new(dir.path(), "share", false).unwrap();
        let mut d = Driver::new(Box::new(dev));
        assert_eq!(d.r(reg::DEVICE_ID), 9);
        let mut cfg = [0u8; 8];
        d.t.read(reg::CONFIG, &mut cfg);
        assert_eq!(&cfg[..7], b"\x05\x00share");
        d.init(V1 | 1 << super::super::p9::VIRTIO_9P_MOUNT_TAG);
        let msg = crate::devices::virtio::p9::wire::tmsg(100, 0xffff, &[&8192u32.to_le_bytes()[..], b"\x08\x009P2000.L"].concat());
        d.q.mem.write_slice(&msg, GuestAddress(HDR)).unwrap();
        d.submit(&[(HDR, msg.len() as u32, false), (DATA, 8192, true)]);
        let (_, len) = d.wait_used().unwrap();
        let mut reply = vec![0u8; len as usize];
        d.q.mem.read_slice(&mut reply, GuestAddress(DATA)).unwrap();
        assert_eq!(reply[4], 101);
        assert_eq!(&reply[11..], b"\x08\x009P2000.L");
        // A request without a header needs a reset.
        d.submit(&[(HDR, 3, false), (DATA, 8192, true)]);
        assert!(d.wait_status(status::DEVICE_NEEDS_RESET));
    }

    /// A guest hammering the registers with bad accesses: every one is counted, few are
    /// logged.
    #[test]
    fn a_flood_of_bad_accesses_is_counted_but_rate_limited() {
        use crate::devices::guest_errors::{BURST, MMIO};
        let mut d = Driver::block(&disk(8), true);
        let (count, logged) = (MMIO.count(), MMIO.logged());
        for _ in 0..10_000 {
            d.t.write(0x3, &[1, 2, 3, 4]); // unaligned
            let mut b = [0u8; 2];
            d.t.read(reg::STATUS, &mut b); // wrong width
        }
        assert!(MMIO.count() - count >= 20_000);
        // Other tests may log too, but the whole process logs at most the burst and one
        // line per interval.
        assert!(MMIO.logged() - logged <= BURST + 2, "{} logged", MMIO.logged() - logged);
    }

    /// A device whose request handler blocks in host I/O (a read of a pipe nobody
    /// writes, as a file on a hung NFS mount would).
    struct Stuck(Arc<std::fs::File>);

    struct StuckHandler(Arc<std::fs::File>);

    impl VirtioDevice for Stuck {
        fn device_type(&self) -> u32 {
            42
        }
        fn features(&self) -> u64 {
            V1
        }
        fn queue_max_sizes(&self) -> &[u16] {
            &[QSIZE]
        }
        fn config(&self) -> &[u8] {
            &[]
        }
        fn activate(&mut self, _features: u64) -> Box<dyn crate::devices::virtio::QueueHandler> {
            Box::new(StuckHandler(Arc::clone(&self.0)))
        }
    }

    impl crate::devices::virtio::QueueHandler for StuckHandler {
        fn process(
            &mut self,
            _queue: usize,
            _mem: &GuestMemoryMmap,
            _chain: &crate::devices::virtio::chain::Chain,
        ) -> Result<u32, crate::devices::virtio::DeviceError> {
            let mut byte = [0u8; 1];
            let _ = std::io::Read::read(&mut &*self.0, &mut byte);
            Ok(0)
        }
    }

    /// A reset does not wait for a worker stuck in host I/O longer than RESET_TIMEOUT:
    /// the device reads DEVICE_NEEDS_RESET and ignores the driver until the worker is
    /// done, then the reset completes and the device works again.
    #[test]
    fn reset_does_not_wait_for_a_stuck_worker() {
        use std::os::fd::FromRawFd;
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills two descriptors, which we own from here on.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: fresh descriptors owned by nobody else.
        let (r, mut w) = unsafe { (std::fs::File::from_raw_fd(fds[0]), std::fs::File::from_raw_fd(fds[1])) };
        let mut d = Driver::new(Box::new(Stuck(Arc::new(r))));
        d.init(V1);
        d.submit(&[(HDR, 16, false)]);
        std::thread::sleep(Duration::from_millis(50)); // the worker is in its read
        // Unblocks the worker after a while, whatever happens (so a failing test ends).
        let unblock = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(2));
            std::io::Write::write_all(&mut w, b"x").unwrap();
        });
        let start = Instant::now();
        d.w(reg::STATUS, 0);
        assert!(start.elapsed() < RESET_TIMEOUT + Duration::from_millis(500), "reset took {:?}", start.elapsed());
        let before = d.r(reg::STATUS);
        assert_ne!(before & status::DEVICE_NEEDS_RESET, 0, "the reset is not complete");
        assert_ne!(before & status::DRIVER_OK, 0, "the old bits stay");
        d.negotiate(V1);
        assert_eq!(d.r(reg::STATUS), before, "the driver is ignored meanwhile");
        unblock.join().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while d.r(reg::STATUS) != 0 {
            assert!(Instant::now() < deadline, "the reset never completed");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(d.negotiate(V1), "the device works again");
    }
}
