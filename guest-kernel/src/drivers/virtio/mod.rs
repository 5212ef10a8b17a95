//! virtio over MMIO: device discovery from the kernel command line
//! (`virtio_mmio.device=SIZE@BASE:IRQ`, as QEMU microvm and our VMM announce them), the
//! split virtqueue, and the drivers (block; 9p).

pub mod blk;
pub mod mmio;
pub mod net;
pub mod p9;
pub mod queue;

use alloc::sync::Arc;
use alloc::vec::Vec;

use crate::cmdline::VirtioMmioDevice;
use crate::sync::SpinLock;

pub const DEVICE_ID_NET: u32 = 1;
pub const DEVICE_ID_BLOCK: u32 = 2;
pub const DEVICE_ID_9P: u32 = 9;

/// What every driver here shares: the transport, its queues whose completions come by
/// interrupt, and a wait queue woken when requests complete (synchronous callers and
/// submitters waiting for room).
///
/// A device with several such queues (virtio-blk multiqueue) gets one per CPU: a request
/// goes on its submitting CPU's queue, so CPUs do not take one queue lock by turns. The
/// device's one interrupt line (virtio-mmio has no per-queue vectors) reaps them all.
pub struct Device {
    pub mmio: mmio::Mmio,
    /// Virtqueue `i` is `queues[i]`.
    pub queues: Vec<SpinLock<queue::VirtQueue>>,
    pub completions: crate::task::wait::WaitQueue,
}

impl Device {
    pub fn new(mmio: mmio::Mmio, queues: Vec<queue::VirtQueue>) -> Self {
        assert!(!queues.is_empty(), "a device has a queue");
        Self { mmio, queues: queues.into_iter().map(SpinLock::new).collect(), completions: crate::task::wait::WaitQueue::new() }
    }

    /// The queue of the CPU this runs on.
    fn queue(&self) -> &SpinLock<queue::VirtQueue> {
        &self.queues[crate::arch::cpu::index() % self.queues.len()]
    }

    /// Adds a chain to this CPU's queue and notifies the device if it asks for it. While
    /// the queue is full it waits, or with `wait` false fails with EAGAIN (io_uring's
    /// nonblocking issue). On failure (EAGAIN; EINVAL: the chain can never fit; EINTR) the
    /// completion is given back, not run.
    pub fn add(&self, chain: &[queue::Buffer], mut completion: queue::Completion, wait: bool) -> Result<(), (crate::errno::Errno, queue::Completion)> {
        // The queue is chosen once: a task that moves to another CPU while it waits for
        // room keeps waiting on the queue it saw full.
        let queue = self.queue();
        if chain.len() > usize::from(queue.lock().size()) {
            return Err((crate::errno::EINVAL, completion));
        }
        loop {
            match Self::add_to(&self.mmio, queue, chain, completion) {
                Ok(()) => return Ok(()),
                Err(back) if !wait => return Err((crate::errno::EAGAIN, back)),
                Err(back) => {
                    completion = back;
                    let need = chain.len();
                    if self.completions.wait_until(None, || queue.lock().free_descriptors() >= need).is_err() {
                        return Err((crate::errno::EINTR, completion));
                    }
                }
            }
        }
    }

    /// Adds a chain if there is room now (never waits: usable from interrupt handlers and
    /// under locks). False when the queue is full.
    pub fn try_add(&self, chain: &[queue::Buffer], completion: queue::Completion) -> bool {
        Self::add_to(&self.mmio, self.queue(), chain, completion).is_ok()
    }

    /// Adds a chain to `queue` and notifies the device if it asks for it; the completion
    /// back when the queue is full.
    pub fn add_to(mmio: &mmio::Mmio, queue: &SpinLock<queue::VirtQueue>, chain: &[queue::Buffer], completion: queue::Completion) -> Result<(), queue::Completion> {
        let (added, index) = {
            let mut q = queue.lock();
            (q.add(chain, completion), q.index)
        };
        if added? {
            mmio.notify(index);
        }
        Ok(())
    }

    /// The interrupt: acknowledge, run the completions of the returned chains of every
    /// queue, wake.
    pub fn service(&self) {
        self.mmio.ack_interrupt();
        for queue in &self.queues {
            loop {
                let used = queue.lock().pop_used();
                let Some((completion, len)) = used else { break };
                completion.complete(len);
            }
        }
        self.completions.wake_all();
    }
}

/// A driver that handles its device's interrupt.
pub trait Interrupt: Send + Sync {
    fn interrupt(&self);
}

static HANDLERS: SpinLock<Vec<(u32, Arc<dyn Interrupt>)>> = SpinLock::new(Vec::new());

/// Registers `handler` for interrupts on `gsi` and routes the line.
pub fn register_irq(gsi: u32, handler: Arc<dyn Interrupt>) {
    HANDLERS.lock().push((gsi, handler));
    crate::arch::ioapic::route(gsi);
}

pub fn irq(gsi: u32) {
    crate::trace::emit(crate::trace::Kind::Irq, u64::from(gsi), 0, 0, 0);
    let handlers: Vec<Arc<dyn Interrupt>> =
        HANDLERS.lock().iter().filter(|(g, _)| *g == gsi).map(|(_, h)| Arc::clone(h)).collect();
    for h in handlers {
        h.interrupt();
    }
}

/// The first virtio-net device, started, until the network stack takes it.
static NET: SpinLock<Option<(net::NetPhy, [u8; 6])>> = SpinLock::new(None);

/// The virtio-net device probing found (the first; others are left alone).
pub fn take_net() -> Option<(net::NetPhy, [u8; 6])> {
    NET.lock().take()
}

/// Probes every announced device and starts the drivers we have. Devices are listed in
/// the order of the command line; QEMU and our VMM both fill slots from the top, so the
/// first disk on their command line is the highest slot: we name disks in that order.
pub fn probe_all(devices: &[VirtioMmioDevice]) {
    let mut sorted: Vec<VirtioMmioDevice> = devices.to_vec();
    sorted.sort_by_key(|d| core::cmp::Reverse(d.base));
    for d in sorted {
        let Some((transport, id)) = mmio::Mmio::probe(d.base, d.size) else {
            log::warn!("virtio-mmio at {:#x}: no device", d.base);
            continue;
        };
        match id {
            0 => {}
            DEVICE_ID_BLOCK => blk::probe(transport, d.irq),
            DEVICE_ID_9P => mount_9p(transport, d.irq),
            DEVICE_ID_NET if NET.lock().is_none() => match net::probe(transport, d.irq) {
                Some(n) => *NET.lock() = Some(n),
                None => log::warn!("virtio-net: device setup failed"),
            },
            other => log::info!("virtio-mmio at {:#x}: device type {other} has no driver", d.base),
        }
    }
}

/// Starts a 9p device and mounts its share at `/mnt/TAG`.
fn mount_9p(transport: mmio::Mmio, irq: u32) {
    let Some((p9, _)) = p9::probe(transport, irq) else {
        return log::warn!("virtio-9p: device setup failed");
    };
    let qid = match p9::attach(&p9) {
        Ok(q) => q,
        Err(e) => return log::warn!("virtio-9p: attach to {:?} failed: error {}", p9.tag, e.0),
    };
    let root = crate::fs::ramfs::root();
    use crate::fs::{FileType, Node};
    let mnt = match root.lookup("mnt") {
        Ok(m) => m,
        Err(_) => match root.create("mnt", FileType::Directory, 0o755) {
            Ok(m) => m,
            Err(e) => return log::warn!("cannot create /mnt: error {}", e.0),
        },
    };
    let tag = p9.tag.clone();
    crate::fs::p9::add_share(Arc::clone(&p9), qid);
    match mnt.link(&tag, crate::fs::p9::P9Node::root(Arc::clone(&p9), qid)) {
        Ok(()) => {
            crate::fs::proc::add_mount(&tag, &alloc::format!("/mnt/{tag}"), "9p", "rw,trans=virtio");
            log::info!("virtio-9p: share {tag:?} mounted at /mnt/{tag} (msize {})", p9.msize())
        }
        Err(e) => log::warn!("virtio-9p: cannot mount /mnt/{tag}: error {}", e.0),
    }
}
