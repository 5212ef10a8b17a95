//! The thread that serves a device's queues once the driver has set DRIVER_OK.
//!
//! It waits (epoll) on each queue's notification eventfd (written by KVM through an
//! ioeventfd on QueueNotify, or by the transport when the write reached it as an MMIO
//! exit), on the irqfd's resample eventfd when KVM gave one, and on a stop eventfd that
//! the transport writes on device reset. For each notified queue it drains the available
//! ring with virtio-queue's `Queue`, in the usual EVENT_IDX loop: notifications off, pop
//! and serve every chain, notifications on, and again if the driver added more meanwhile;
//! then, if it used any buffer, it asks `needs_notification` (used_event with EVENT_IDX,
//! else the avail ring's NO_INTERRUPT flag) whether to interrupt.
//! InterruptStatus is set before the irqfd is written (see [`Interrupt::raise`]).

use std::sync::Arc;
use std::thread::JoinHandle;

use virtio_queue::{Queue, QueueOwnedT, QueueT};
use std::sync::atomic::Ordering;

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::EventFd;

use super::chain::Chain;
use super::{DeviceError, Interrupt, QueueHandler, INT_USED_BUFFER};

/// Everything a worker owns.
pub struct Worker {
    pub name: String,
    pub mem: GuestMemoryMmap,
    /// (queue index, queue, its notification eventfd), for the queues the driver made ready.
    pub queues: Vec<(usize, Queue, EventFd)>,
    pub handler: Box<dyn QueueHandler>,
    pub interrupt: Arc<Interrupt>,
    pub resample: Option<EventFd>,
    pub stop: EventFd,
}

/// avail->flags bit 0: the driver asks for no interrupts (without EVENT_IDX).
const VRING_AVAIL_F_NO_INTERRUPT: u16 = 1;

const STOP_TOKEN: u64 = u64::MAX;
const RESAMPLE_TOKEN: u64 = u64::MAX - 1;

impl Worker {
    pub fn spawn(self) -> std::io::Result<JoinHandle<()>> {
        std::thread::Builder::new().name(self.name.clone()).spawn(move || self.run())
    }

    fn run(mut self) {
        if let Err(e) = self.serve() {
            log::warn!("{}: {e}; the device needs a reset", self.name);
            self.interrupt.needs_reset();
        }
    }

    fn serve(&mut self) -> Result<(), DeviceError> {
        let epoll = Epoll::new().map_err(|e| DeviceError::Queue(format!("epoll: {e}")))?;
        let add = |fd, token| {
            epoll
                .ctl(ControlOperation::Add, fd, EpollEvent::new(EventSet::IN, token))
                .map_err(|e| DeviceError::Queue(format!("epoll: {e}")))
        };
        use std::os::fd::AsRawFd;
        add(self.stop.as_raw_fd(), STOP_TOKEN)?;
        if let Some(r) = &self.resample {
            add(r.as_raw_fd(), RESAMPLE_TOKEN)?;
        }
        for (slot, (_, _, evt)) in self.queues.iter().enumerate() {
            add(evt.as_raw_fd(), slot as u64)?;
        }
        // Buffers made available before DRIVER_OK (or before this thread ran) are served
        // without waiting for a notification.
        for slot in 0..self.queues.len() {
            self.process_queue(slot)?;
        }
        let mut events = vec![EpollEvent::default(); self.queues.len() + 2];
        loop {
            let n = match epoll.wait(-1, &mut events) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(DeviceError::Queue(format!("epoll_wait: {e}"))),
            };
            for event in &events[..n] {
                match event.data() {
                    STOP_TOKEN => return Ok(()),
                    RESAMPLE_TOKEN => {
                        if let Some(r) = &self.resample {
                            let _ = r.read();
                        }
                        self.interrupt.resample();
                    }
                    slot => {
                        let slot = slot as usize;
                        let _ = self.queues[slot].2.read();
                        self.process_queue(slot)?;
                    }
                }
            }
        }
    }

    /// Serves every available chain of queue `slot`, then interrupts if the driver asked.
    pub fn process_queue(&mut self, slot: usize) -> Result<(), DeviceError> {
        let (index, queue, _) = &mut self.queues[slot];
        let qerr = |e: virtio_queue::Error| DeviceError::Queue(e.to_string());
        let max_descriptors = usize::from(queue.size());
        let mut used = 0usize;
        loop {
            queue.disable_notification(&self.mem).map_err(qerr)?;
            loop {
                let desc = match queue.iter(&self.mem) {
                    Ok(mut iter) => iter.next(),
                    Err(e) => return Err(qerr(e)),
                };
                let Some(desc) = desc else { break };
                let chain = Chain::parse(desc, &self.mem, max_descriptors)?;
                let len = self.handler.process(*index, &self.mem, &chain)?;
                queue.add_used(&self.mem, chain.head, len).map_err(qerr)?;
                used += 1;
            }
            if !queue.enable_notification(&self.mem).map_err(qerr)? {
                break;
            }
        }
        if used == 0 {
            return Ok(());
        }
        // needs_notification fences the used-ring writes before it reads used_event; without
        // EVENT_IDX it says yes, and the driver's VRING_AVAIL_F_NO_INTERRUPT decides.
        let mut notify = queue.needs_notification(&self.mem).map_err(qerr)?;
        if notify && !queue.event_idx_enabled() {
            let flags: u16 = self
                .mem
                .load(GuestAddress(queue.avail_ring()), Ordering::Acquire)
                .map_err(|e| DeviceError::Queue(e.to_string()))?;
            notify = u16::from_le(flags) & VRING_AVAIL_F_NO_INTERRUPT == 0;
        }
        if notify {
            self.interrupt.raise(INT_USED_BUFFER);
        }
        Ok(())
    }
}
