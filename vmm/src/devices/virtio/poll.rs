//! Busy polling of a virtqueue's available ring by the device (vhost's `busyloop_timeout`).
//!
//! A driver that reaps its completions by polling (the guest's io_uring IOPOLL queue) is
//! in a hurry: a kick (a QueueNotify write, a VM exit) per batch costs it more than the
//! request. So after serving such a queue the device keeps watching its `avail.idx` for a
//! while instead of sleeping on the queue's eventfd, and tells the driver not to kick
//! meanwhile:
//! - without VIRTIO_RING_F_EVENT_IDX, by VRING_USED_F_NO_NOTIFY in the used ring's flags;
//! - with EVENT_IDX (what our guest negotiates) the flag means nothing to the driver, which
//!   kicks when `avail_event` lies in `[old, new)`, the indices its add moved `avail.idx`
//!   across (`vring_need_event`). The device puts `avail_event` half the index space
//!   behind the next index it reads ([`AVAIL_EVENT_BEHIND`]): the driver's `old` can be at
//!   most a queue's size behind that index (the device never reads past `new`), so no add
//!   crosses it; every drain while polling moves it along. One behind would not do: the
//!   device, polling, pops an entry before the driver that published it has read
//!   `avail_event` (our guest's kernel is slow), and `next_avail - 1` is then that
//!   driver's `old`: a kick per request.
//!
//! Which queues: those whose driver asked for no interrupts (VRING_AVAIL_F_NO_INTERRUPT in
//! the avail ring's flags, read each time the queue had work): a polling driver is one
//! that spins, and a queue that takes interrupts gets no busy polling (its driver sleeps;
//! a kick is cheap beside an interrupt). Our guest sets the flag on its IOPOLL queue
//! (queue 1) and keeps it, with EVENT_IDX too.
//!
//! The window: `--blk-poll-us` (see `config::DEFAULT_BLK_POLL_US`). A round starts when a
//! polled queue had work (chains popped, or host I/O of its requests completed) and ends
//! when no such work came for the window; the window restarts with each work found. At the
//! end of a round the device re-arms notifications ([`QueueT::enable_notification`]:
//! clear the flag, or `avail_event` = the next index it will read), then a full fence
//! (SeqCst), then reads `avail.idx` once more: a request the driver published before it
//! could see the re-arming is found by that read, and one published after it is kicked
//! (the driver's own fence between its `avail.idx` store and its read of the flag or
//! `avail_event` pairs with this one: at least one side sees the other). Only then does
//! the worker sleep on the eventfd. So no request is ever left unserved, and the device
//! spins at most one window after the guest's last request.
//!
//! The guest is untrusted: it can write the flags, `avail_event` and the indices at any
//! time. None of that can make polling last longer than a window past the last work
//! found, or make the device read anything but the checked ring fields; a guest that
//! never stops submitting keeps the worker busy serving requests, as it would with kicks
//! (the number in flight stays bounded by the handler, so memory does not grow).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// avail->flags bit 0: the driver asks for no interrupts.
pub const VRING_AVAIL_F_NO_INTERRUPT: u16 = 1;
/// used->flags bit 0: the device asks for no notifications (without EVENT_IDX).
pub const VRING_USED_F_NO_NOTIFY: u16 = 1;

/// How far behind `next_avail` [`suppress`] puts `avail_event`: half the u16 index space,
/// more than any queue's size (at most 2^15; 256 here), so the interval `[old, new)` of any
/// add the driver is making never holds it.
pub const AVAIL_EVENT_BEHIND: u16 = 0x8000;

type Result<T> = std::result::Result<T, virtio_queue::Error>;

/// Whether the driver of `queue` reaps by polling (VRING_AVAIL_F_NO_INTERRUPT is set).
pub fn driver_polls(queue: &Queue, mem: &GuestMemoryMmap) -> Result<bool> {
    // Acquire: pairs with nothing in particular (the driver writes the flag with no
    // ordering promise); a stale value only decides whether this round polls.
    let flags: u16 = mem.load(GuestAddress(queue.avail_ring()), Ordering::Acquire).map_err(virtio_queue::Error::GuestMemory)?;
    Ok(u16::from_le(flags) & VRING_AVAIL_F_NO_INTERRUPT != 0)
}

/// Whether the driver has published chains the device has not popped yet.
pub fn has_new(queue: &Queue, mem: &GuestMemoryMmap) -> Result<bool> {
    // Acquire: pairs with the driver's Release store of avail.idx (its ring entries and
    // descriptors are read after this).
    Ok(queue.avail_idx(mem, Ordering::Acquire)?.0 != queue.next_avail())
}

/// The address of `avail_event` (after the used ring's elements).
fn avail_event_addr(queue: &Queue) -> GuestAddress {
    GuestAddress(queue.used_ring().wrapping_add(4 + 8 * u64::from(queue.size())))
}

/// Asks the driver not to kick while the device polls: VRING_USED_F_NO_NOTIFY, or with
/// EVENT_IDX `avail_event` [`AVAIL_EVENT_BEHIND`] behind the next index the device reads.
/// No fence: a driver that reads the old value kicks once more, which is harmless.
pub fn suppress(queue: &Queue, mem: &GuestMemoryMmap) -> Result<()> {
    if queue.event_idx_enabled() {
        let behind = queue.next_avail().wrapping_sub(AVAIL_EVENT_BEHIND);
        mem.store(behind.to_le(), avail_event_addr(queue), Ordering::Relaxed).map_err(virtio_queue::Error::GuestMemory)
    } else {
        mem.store(VRING_USED_F_NO_NOTIFY.to_le(), GuestAddress(queue.used_ring()), Ordering::Relaxed)
            .map_err(virtio_queue::Error::GuestMemory)
    }
}

/// Ends suppression before the device sleeps: notifications on again (flag cleared, or
/// `avail_event` = the next index), a SeqCst fence, and one more read of `avail.idx`.
/// True when chains arrived meanwhile: the caller must serve them before sleeping.
pub fn rearm(queue: &mut Queue, mem: &GuestMemoryMmap) -> Result<bool> {
    // virtio-queue's enable_notification is exactly these three steps (store, fence(SeqCst),
    // avail.idx != next_avail); the fence pairs with the driver's fence between its
    // avail.idx store and its read of the flag / avail_event (Linux's virtqueue_kick_prepare,
    // our guest's VirtQueue::add).
    queue.enable_notification(mem)
}

/// One device's polling rounds: when the current one ends.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    length: Duration,
    until: Option<Instant>,
}

impl Window {
    /// `length` zero: never polls.
    pub fn new(length: Duration) -> Self {
        Self { length, until: None }
    }

    pub fn enabled(&self) -> bool {
        !self.length.is_zero()
    }

    /// Work was found at `now`: the round lasts until `now` + the window.
    pub fn work(&mut self, now: Instant) {
        if self.enabled() {
            self.until = Some(now + self.length);
        }
    }

    /// Whether a round is under way at `now`.
    pub fn active(&self, now: Instant) -> bool {
        self.until.is_some_and(|until| now < until)
    }

    /// Whether a round was under way and has ended at `now` (once per round: then the
    /// window is closed until the next work).
    pub fn expired(&mut self, now: Instant) -> bool {
        match self.until {
            Some(until) if now >= until => {
                self.until = None;
                true
            }
            _ => false,
        }
    }

    /// Whether a round is open (not yet ended).
    pub fn open(&self) -> bool {
        self.until.is_some()
    }
}

/// Counters for `vmm run --stats`: how the driver reached the device.
pub struct PollStats {
    /// Notifications (kicks) received on the queues' eventfds.
    pub kicks: std::sync::atomic::AtomicU64,
    /// Of those, the ones that reached the VMM as MMIO exits (no ioeventfd took them).
    pub kicks_by_mmio: std::sync::atomic::AtomicU64,
    /// Polling rounds started.
    pub rounds: std::sync::atomic::AtomicU64,
    /// Chains popped while kicks were suppressed (in a polling round).
    pub polled: std::sync::atomic::AtomicU64,
    /// Chains popped (requests), by queue index; the last entry also counts any higher.
    pub requests: [std::sync::atomic::AtomicU64; STAT_QUEUES],
    /// Interrupts raised (irqfd writes, or injections through the transport).
    pub interrupts: std::sync::atomic::AtomicU64,
}

/// Queues counted apart in [`PollStats::requests`]: one per vCPU and the polled one.
pub const STAT_QUEUES: usize = crate::config::MAX_VCPUS as usize + 1;

impl PollStats {
    const fn new() -> Self {
        use std::sync::atomic::AtomicU64;
        Self {
            kicks: AtomicU64::new(0),
            kicks_by_mmio: AtomicU64::new(0),
            rounds: AtomicU64::new(0),
            polled: AtomicU64::new(0),
            requests: [const { AtomicU64::new(0) }; STAT_QUEUES],
            interrupts: AtomicU64::new(0),
        }
    }

    /// Requests of every queue, and per queue up to the last that had any.
    pub fn requests(&self) -> (u64, Vec<u64>) {
        use std::sync::atomic::Ordering::Relaxed;
        let mut per: Vec<u64> = self.requests.iter().map(|r| r.load(Relaxed)).collect();
        while per.len() > 1 && per.last() == Some(&0) {
            per.pop();
        }
        (per.iter().sum(), per)
    }
}

/// The counters of every virtio-blk device (all queues).
pub static BLK_STATS: PollStats = PollStats::new();
/// The counters of every virtio-9p device (kicks only).
pub static P9_STATS: PollStats = PollStats::new();
/// The counters of every virtio-net device (kicks and interrupts: never busy-polled).
pub static NET_STATS: PollStats = PollStats::new();

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::virtio::chain::tests::{TestQueue, AVAIL, USED};
    use virtio_queue::QueueOwnedT;

    /// The driver's side: Linux's vring_need_event, as our guest's VirtQueue::add uses it.
    fn need_event(event: u16, new: u16, old: u16) -> bool {
        new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old)
    }

    /// Whether the driver, having moved avail.idx from `old` to `new`, would kick.
    fn driver_kicks(t: &TestQueue, q: &Queue, old: u16, new: u16) -> bool {
        if q.event_idx_enabled() {
            let event: u16 = t.mem.read_obj(GuestAddress(USED + 4 + 8 * u64::from(t.size))).unwrap();
            need_event(event, new, old)
        } else {
            let flags: u16 = t.mem.read_obj(GuestAddress(USED)).unwrap();
            flags & VRING_USED_F_NO_NOTIFY == 0
        }
    }

    fn pop_all(t: &TestQueue, q: &mut Queue) -> usize {
        let mut n = 0;
        while q.iter(&t.mem).unwrap().next().is_some() {
            n += 1;
        }
        n
    }

    #[test]
    fn suppressed_driver_does_not_kick_and_rearmed_does() {
        for event_idx in [false, true] {
            let mut t = TestQueue::new(16);
            let mut q = t.queue();
            q.set_event_idx(event_idx);
            t.chain(0, &[(0x10000, 16, false)]);
            // Idle device, notifications armed: the first request kicks.
            assert!(!rearm(&mut q, &t.mem).unwrap());
            t.publish(0);
            assert!(driver_kicks(&t, &q, 0, 1), "event_idx {event_idx}");
            assert!(has_new(&q, &t.mem).unwrap());
            assert_eq!(pop_all(&t, &mut q), 1);
            assert!(!has_new(&q, &t.mem).unwrap());
            // Polling: no kicks however many requests come, one at a time or in batches.
            suppress(&q, &t.mem).unwrap();
            for i in 1..40u16 {
                t.publish(0);
                assert!(!driver_kicks(&t, &q, i, i + 1), "event_idx {event_idx}, request {i}");
                if i % 3 == 0 {
                    pop_all(&t, &mut q);
                    suppress(&q, &t.mem).unwrap();
                }
            }
            pop_all(&t, &mut q);
            suppress(&q, &t.mem).unwrap();
            // Re-armed with nothing new: the next request kicks.
            assert!(!rearm(&mut q, &t.mem).unwrap());
            let flags: u16 = t.mem.read_obj(GuestAddress(USED)).unwrap();
            assert_eq!(flags & VRING_USED_F_NO_NOTIFY, 0);
            t.publish(0);
            assert!(driver_kicks(&t, &q, 40, 41), "event_idx {event_idx}");
        }
    }

    /// The device pops a request before the driver that published it has looked at
    /// avail_event (its kernel is slow): the driver must still see "no kick", for one
    /// request and for a batch of them.
    #[test]
    fn no_kick_when_the_device_was_faster_than_the_driver() {
        for event_idx in [false, true] {
            for batch in [1u16, 2, 32, 255] {
                let mut t = TestQueue::new(256);
                let mut q = t.queue();
                q.set_event_idx(event_idx);
                t.chain(0, &[(0x10000, 16, false)]);
                suppress(&q, &t.mem).unwrap();
                let mut idx = 0u16;
                for _ in 0..600 {
                    let old = idx;
                    for _ in 0..batch {
                        t.publish(0);
                        idx = idx.wrapping_add(1);
                    }
                    // The device, polling, drains them all and moves avail_event along...
                    pop_all(&t, &mut q);
                    suppress(&q, &t.mem).unwrap();
                    // ...before the driver reads it.
                    assert!(!driver_kicks(&t, &q, old, idx), "event_idx {event_idx}, batch {batch}, at {old}");
                }
            }
        }
    }

    /// The lost-wakeup race: the driver published while the device still said "don't
    /// kick" (so it did not); the final re-check after re-arming finds that request.
    #[test]
    fn rearm_finds_what_came_while_suppressed() {
        for event_idx in [false, true] {
            let mut t = TestQueue::new(16);
            let mut q = t.queue();
            q.set_event_idx(event_idx);
            t.chain(0, &[(0x10000, 16, false)]);
            suppress(&q, &t.mem).unwrap();
            t.publish(0);
            assert!(!driver_kicks(&t, &q, 0, 1));
            assert!(rearm(&mut q, &t.mem).unwrap(), "the request is found, event_idx {event_idx}");
            assert_eq!(pop_all(&t, &mut q), 1);
            assert!(!rearm(&mut q, &t.mem).unwrap());
        }
    }

    /// avail_event stays behind across the u16 wrap of the indices.
    #[test]
    fn suppression_across_the_wrap() {
        let t = TestQueue::new(16);
        let mut q = t.queue();
        q.set_event_idx(true);
        let start = u16::MAX - 5;
        q.set_next_avail(start);
        suppress(&q, &t.mem).unwrap();
        for k in 0..12u16 {
            let old = start.wrapping_add(k);
            assert!(!driver_kicks(&t, &q, old, old.wrapping_add(1)), "at {old}");
            assert!(!driver_kicks(&t, &q, old, old.wrapping_add(32)), "a batch at {old}");
        }
    }

    #[test]
    fn driver_polls_reads_the_no_interrupt_flag() {
        let t = TestQueue::new(16);
        let q = t.queue();
        assert!(!driver_polls(&q, &t.mem).unwrap());
        t.mem.write_obj(VRING_AVAIL_F_NO_INTERRUPT.to_le(), GuestAddress(AVAIL)).unwrap();
        assert!(driver_polls(&q, &t.mem).unwrap());
        // Other bits mean nothing.
        t.mem.write_obj(0xfffeu16.to_le(), GuestAddress(AVAIL)).unwrap();
        assert!(!driver_polls(&q, &t.mem).unwrap());
    }

    #[test]
    fn window_rounds() {
        let t0 = Instant::now();
        let mut w = Window::new(Duration::ZERO);
        w.work(t0);
        assert!(!w.enabled() && !w.open() && !w.active(t0) && !w.expired(t0));
        let mut w = Window::new(Duration::from_micros(100));
        assert!(!w.open());
        w.work(t0);
        assert!(w.active(t0 + Duration::from_micros(99)));
        // More work restarts the window.
        w.work(t0 + Duration::from_micros(50));
        assert!(w.active(t0 + Duration::from_micros(149)));
        assert!(!w.expired(t0 + Duration::from_micros(149)));
        assert!(w.expired(t0 + Duration::from_micros(150)));
        assert!(!w.open() && !w.expired(t0 + Duration::from_secs(1)), "once per round");
    }
}
