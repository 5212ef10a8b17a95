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
//!
//! A handler with asynchronous host I/O (virtio-blk on io_uring) starts requests instead:
//! the worker hands the whole batch to the host after draining the avail ring, and also
//! waits on the handler's completion fd; each finished request's used entry is added
//! then, followed by the same interrupt decision. When the handler has no room for more
//! requests, the worker stops popping chains until completions free some. On stop (reset)
//! or a device error, the worker waits for the host I/O in flight before it exits.

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
const COMPLETION_TOKEN: u64 = u64::MAX - 2;

impl Worker {
    pub fn spawn(self) -> std::io::Result<JoinHandle<()>> {
        std::thread::Builder::new().name(self.name.clone()).spawn(move || self.run())
    }

    fn run(mut self) {
        let result = self.serve();
        // No host I/O may still target guest memory once the device is reset.
        self.handler.quiesce();
        if let Err(e) = result {
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
        if let Some(fd) = self.handler.completion_fd() {
            add(fd, COMPLETION_TOKEN)?;
        }
        // Buffers made available before DRIVER_OK (or before this thread ran) are served
        // without waiting for a notification.
        for slot in 0..self.queues.len() {
            self.process_queue(slot)?;
        }
        let mut events = vec![EpollEvent::default(); self.queues.len() + 3];
        let mut done = Vec::new();
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
                    COMPLETION_TOKEN => self.complete(&mut done)?,
                    slot => {
                        let slot = slot as usize;
                        let _ = self.queues[slot].2.read();
                        self.process_queue(slot)?;
                    }
                }
            }
        }
    }

    /// Publishes the used entries of the requests whose host I/O finished, interrupts
    /// where the driver asked, and serves the queues again (room was freed).
    fn complete(&mut self, done: &mut Vec<(usize, u16, u32)>) -> Result<(), DeviceError> {
        let qerr = |e: virtio_queue::Error| DeviceError::Queue(e.to_string());
        done.clear();
        self.handler.complete(&self.mem, done)?;
        let mut touched = vec![false; self.queues.len()];
        for &(index, head, len) in done.iter() {
            let Some(slot) = self.queues.iter().position(|(i, _, _)| *i == index) else {
                return Err(DeviceError::Queue(format!("a completion for queue {index}, which is not ready")));
            };
            self.queues[slot].1.add_used(&self.mem, head, len).map_err(qerr)?;
            touched[slot] = true;
        }
        for (slot, touched) in touched.into_iter().enumerate() {
            // One interrupt decision for the completed requests and those served now.
            if self.drain_queue(slot)? > 0 || touched {
                self.notify(slot)?;
            }
        }
        Ok(())
    }

    /// Serves every available chain of queue `slot`, then interrupts if the driver asked.
    pub fn process_queue(&mut self, slot: usize) -> Result<(), DeviceError> {
        if self.drain_queue(slot)? > 0 {
            self.notify(slot)?;
        }
        Ok(())
    }

    /// Starts every available chain of queue `slot` (while the handler has room) and
    /// submits them; returns the number of used entries added (requests done at once).
    fn drain_queue(&mut self, slot: usize) -> Result<usize, DeviceError> {
        let (index, queue, _) = &mut self.queues[slot];
        let qerr = |e: virtio_queue::Error| DeviceError::Queue(e.to_string());
        let max_descriptors = usize::from(queue.size());
        let mut used = 0usize;
        'drain: loop {
            queue.disable_notification(&self.mem).map_err(qerr)?;
            loop {
                if !self.handler.has_room() {
                    // Completions will free room and serve the queue again; notifications
                    // stay off meanwhile.
                    break 'drain;
                }
                let desc = match queue.iter(&self.mem) {
                    Ok(mut iter) => iter.next(),
                    Err(e) => return Err(qerr(e)),
                };
                let Some(desc) = desc else { break };
                let chain = Chain::parse(desc, &self.mem, max_descriptors)?;
                let head = chain.head;
                if let Some(len) = self.handler.start(*index, &self.mem, chain)? {
                    queue.add_used(&self.mem, head, len).map_err(qerr)?;
                    used += 1;
                }
            }
            if !queue.enable_notification(&self.mem).map_err(qerr)? {
                break;
            }
        }
        self.handler.submit()?;
        Ok(used)
    }

    /// After used entries were added to queue `slot`: interrupts if the driver asked.
    fn notify(&mut self, slot: usize) -> Result<(), DeviceError> {
        let queue = &mut self.queues[slot].1;
        let qerr = |e: virtio_queue::Error| DeviceError::Queue(e.to_string());
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
