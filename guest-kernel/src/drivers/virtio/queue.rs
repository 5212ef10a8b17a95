//! The split virtqueue, driver side (virtio 1.x section 2.7).
//!
//! It is the same idea as io_uring, one level down: three areas in memory both sides see.
//! - The **descriptor table** holds buffers (guest-physical address, length, flags) chained
//!   by `next`; it plays the part of io_uring's SQE array.
//! - The **available ring** (driver -> device) carries heads of chains, like the SQ ring:
//!   the driver writes entries, then publishes `avail.idx`, as user space publishes
//!   `sq.tail`.
//! - The **used ring** (device -> driver) carries (head, bytes written) pairs, like the CQ
//!   ring: the device writes entries, then publishes `used.idx`, as the kernel does `cq.tail`.
//!
//! Indices are free-running `u16`s, masked on use. The device is told to look by a write to
//! the notify register (io_uring_enter's job) unless it said it is already looking, and
//! tells us by an interrupt (an eventfd, for io_uring) unless we said we are.
//!
//! Barrier pairs (the device side is the VMM's or QEMU's virtqueue code):
//! - `avail.idx` is stored with Release after the ring entry and the descriptors: pairs
//!   with the device's Acquire load of `avail.idx` before it reads them.
//! - `used.idx` is loaded with Acquire before used entries are read: pairs with the
//!   device's Release store after writing them.
//! - With EVENT_IDX, a SeqCst fence separates publishing `avail.idx` from reading the
//!   device's `avail_event` (the device writes `avail_event`, then fences, then re-reads
//!   `avail.idx`), so one side always sees the other's latest index: no lost notification.
//!   Symmetrically after writing `used_event` we fence and re-check `used.idx`.
//!
//! The descriptors we hand out are a trusted shadow: the driver keeps its own record of
//! each chain (in `chains`) and never trusts ids the device returns without checking.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::{fence, AtomicU16, Ordering};

use crate::mm::{frame, frame_ptr};
use crate::trace::{self, Kind};

const DESC_F_NEXT: u16 = 1;
const DESC_F_WRITE: u16 = 2;

/// A buffer for the device: guest-physical address, length, and whether the device
/// writes it (true) or reads it.
#[derive(Clone, Copy, Debug)]
pub struct Buffer {
    pub phys: u64,
    pub len: u32,
    pub device_writes: bool,
}

/// What runs when a chain comes back, with the number of bytes the device wrote. A
/// closure will do; a driver can also implement it on the request it already allocated
/// (one allocation per request).
pub trait Complete: Send {
    fn complete(self: Box<Self>, len: u32);
}

impl<F: FnOnce(u32) + Send> Complete for F {
    fn complete(self: Box<Self>, len: u32) {
        (*self)(len)
    }
}

pub type Completion = Box<dyn Complete>;

pub struct VirtQueue {
    pub index: u16,
    size: u16,
    desc: u64,
    avail: u64,
    used: u64,
    free: Vec<u16>,
    /// Per head descriptor: the chain's completion and length.
    chains: Vec<Option<(Completion, u16)>>,
    /// Our own copy of each descriptor's `next` (the device may scribble on the table).
    next: Vec<u16>,
    avail_idx: u16,
    last_used: u16,
    event_idx: bool,
    /// Reaped by polling, never by interrupt (io_uring IOPOLL's queue).
    polled: bool,
}

fn ptr<T>(phys: u64, offset: usize) -> *mut T {
    frame_ptr(phys).wrapping_add(offset).cast()
}

impl VirtQueue {
    /// Allocates the three areas (one zeroed frame each; enough for 256 entries).
    pub fn new(index: u16, size: u16, event_idx: bool) -> Option<Self> {
        let size = size.min(256);
        let desc = frame::alloc_zeroed()?;
        let avail = frame::alloc_zeroed()?;
        let used = frame::alloc_zeroed()?;
        Some(Self {
            index,
            size,
            desc,
            avail,
            used,
            free: (0..size).rev().collect(),
            chains: (0..size).map(|_| None).collect(),
            next: alloc::vec![0; usize::from(size)],
            avail_idx: 0,
            last_used: 0,
            event_idx,
            polled: false,
        })
    }

    /// Asks the device never to interrupt for this queue (VRING_AVAIL_F_NO_INTERRUPT, and
    /// with EVENT_IDX a `used_event` kept just behind the used index): its completions are
    /// found by `pop_used` alone.
    pub fn set_polled(&mut self) {
        self.polled = true;
        self.avail_word(0).store(1, Ordering::Relaxed);
        self.avail_word(2 + usize::from(self.size)).store(self.last_used.wrapping_sub(1), Ordering::Relaxed);
    }

    pub fn size(&self) -> u16 {
        self.size
    }

    pub fn areas(&self) -> (u64, u64, u64) {
        (self.desc, self.avail, self.used)
    }

    pub fn free_descriptors(&self) -> usize {
        self.free.len()
    }

    fn avail_word(&self, i: usize) -> &AtomicU16 {
        // SAFETY: inside the avail frame (4 + 2 * 256 + 2 bytes at most), which lives as
        // long as the queue; shared with the device, hence atomic.
        unsafe { &*ptr::<AtomicU16>(self.avail, i * 2) }
    }

    fn used_word(&self, byte: usize) -> &AtomicU16 {
        // SAFETY: as above, in the used frame (4 + 8 * 256 + 2 bytes at most).
        unsafe { &*ptr::<AtomicU16>(self.used, byte) }
    }

    /// Adds a chain and publishes it. Returns whether the device wants a notification,
    /// or gives the completion back when there are not enough free descriptors.
    pub fn add(&mut self, buffers: &[Buffer], done: Completion) -> Result<bool, Completion> {
        if buffers.is_empty() || buffers.len() > self.free.len() {
            return Err(done);
        }
        // Take the chain's descriptors from the free stack: ids[i] = free[top - 1 - i].
        let top = self.free.len();
        let id_at = |free: &[u16], i: usize| free[top - 1 - i];
        for (i, b) in buffers.iter().enumerate() {
            let id = id_at(&self.free, i);
            let last = i + 1 == buffers.len();
            let flags = if b.device_writes { DESC_F_WRITE } else { 0 } | if last { 0 } else { DESC_F_NEXT };
            let next = if last { 0 } else { id_at(&self.free, i + 1) };
            self.next[usize::from(id)] = next;
            let d = ptr::<u8>(self.desc, usize::from(id) * 16);
            // SAFETY: descriptor `id` (< size <= 256) lies inside the 4 KiB table; it is
            // free, so the device is not reading it.
            unsafe {
                d.cast::<u64>().write_volatile(b.phys);
                d.add(8).cast::<u32>().write_volatile(b.len);
                d.add(12).cast::<u16>().write_volatile(flags);
                d.add(14).cast::<u16>().write_volatile(next);
            }
        }
        let head = id_at(&self.free, 0);
        self.free.truncate(top - buffers.len());
        self.chains[usize::from(head)] = Some((done, buffers.len() as u16));
        let slot = usize::from(self.avail_idx % self.size);
        self.avail_word(2 + slot).store(head, Ordering::Relaxed);
        let old = self.avail_idx;
        // The trace's time of the publish: before the device can see it.
        let published = if trace::on() { crate::time::rdtsc() } else { 0 };
        self.avail_idx = self.avail_idx.wrapping_add(1);
        // Release: the descriptors and the ring entry before the index (pairs with the
        // device's Acquire load of avail.idx).
        self.avail_word(1).store(self.avail_idx, Ordering::Release);
        // SeqCst: our index store before reading the device's avail_event / flags.
        fence(Ordering::SeqCst);
        let kick = if self.event_idx {
            let avail_event = self.used_word(4 + 8 * usize::from(self.size)).load(Ordering::Relaxed);
            self.avail_idx.wrapping_sub(avail_event).wrapping_sub(1) < self.avail_idx.wrapping_sub(old)
        } else {
            self.used_word(0).load(Ordering::Relaxed) & 1 == 0 // VIRTQ_USED_F_NO_NOTIFY
        };
        if trace::on() {
            let (q, i) = (self.desc, u64::from(self.index));
            trace::write_at(published, Kind::Publish, [trace::request(), q, i, u64::from(head) | u64::from(old) << 16]);
            let kind = if kick { Kind::Kick } else { Kind::KickSuppressed };
            trace::emit(kind, 0, q, i, u64::from(self.avail_idx));
        }
        Ok(kick)
    }

    /// Takes the next chain the device returned, with the bytes written, freeing its
    /// descriptors; None when there is none (and, with EVENT_IDX, the device has been
    /// asked to interrupt at the next one). The caller runs the completion after
    /// releasing its lock.
    pub fn pop_used(&mut self) -> Option<(Completion, u32)> {
        loop {
            // Acquire: pairs with the device's Release store of used.idx.
            let used_idx = self.used_word(2).load(Ordering::Acquire);
            if self.last_used != used_idx {
                let slot = usize::from(self.last_used % self.size);
                let elem = ptr::<u32>(self.used, 4 + slot * 8);
                // SAFETY: a used element inside the used frame, published by the device.
                let (id, len) = unsafe { (elem.read_volatile(), elem.add(1).read_volatile()) };
                self.last_used = self.last_used.wrapping_add(1);
                // Never trust the id: it must name a chain we handed out.
                match self.chains.get_mut(id as usize).and_then(Option::take) {
                    Some((completion, n)) => {
                        let at = u64::from(id) | u64::from(self.last_used.wrapping_sub(1)) << 16 | u64::from(self.polled) << 32;
                        trace::emit(Kind::Used, 0, self.desc, u64::from(self.index), at);
                        let mut d = id as u16;
                        for _ in 0..n {
                            self.free.push(d);
                            d = self.next[usize::from(d)];
                        }
                        return Some((completion, len));
                    }
                    None => {
                        log::warn!("virtqueue {}: device returned unknown descriptor {id}", self.index);
                        continue;
                    }
                }
            }
            if !self.event_idx {
                return None;
            }
            if self.polled {
                // Still no interrupt: used_event stays behind every index the device
                // will publish.
                self.avail_word(2 + usize::from(self.size)).store(self.last_used.wrapping_sub(1), Ordering::Relaxed);
                return None;
            }
            // Ask for an interrupt at the next used entry, then re-check we did not miss
            // one published meanwhile (SeqCst pairs with the device's fence).
            self.avail_word(2 + usize::from(self.size)).store(self.last_used, Ordering::Relaxed);
            fence(Ordering::SeqCst);
            if self.used_word(2).load(Ordering::Acquire) == self.last_used {
                return None;
            }
        }
    }
}
